/* A ring buffer of bytes. */
#include <stdlib.h>
#include <string.h>

#define RING_MIN 16

/* The buffer itself. */
typedef struct ring {
    unsigned char *data;
    size_t head, tail, cap;
} ring_t;

struct stats {
    size_t pushes;
};

/* Allocates a ring of at least cap bytes. */
ring_t *ring_new(size_t cap);

/*
 * Allocates a ring of at least cap bytes.
 * Returns NULL when out of memory.
 */
ring_t *ring_new(size_t cap)
{
    ring_t *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    r->cap = cap < RING_MIN ? RING_MIN : cap;
    r->data = malloc(r->cap);
    r->head = r->tail = 0;
    return r;
}

static int ring_push(ring_t *r, unsigned char b)
{
    size_t next = (r->head + 1) % r->cap;
    if (next == r->tail)
        return -1;
    r->data[r->head] = b;
    r->head = next;
    return 0;
}

enum ring_error { RING_OK, RING_FULL };
