package com.example.store;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * An in-memory repository.
 *
 * @param <T> the entity type
 */
@SuppressWarnings("unchecked")
public class Repository<T extends Entity> {
    private final Map<Long, T> items = new ConcurrentHashMap<>();

    /** Creates an empty repository. */
    public Repository() {}

    /** Finds an entity by id. */
    @Deprecated
    public T find(long id) {
        return items.get(id);
    }

    /** Finds entities by ids. */
    public List<T> find(List<Long> ids) {
        return ids.stream().map(items::get).toList();
    }

    public <R> R fold(R init, Folder<T, R> f) {
        R acc = init;
        for (T t : items.values()) {
            acc = f.apply(acc, t);
        }
        return acc;
    }

    /** Combines an accumulator with an entity. */
    @FunctionalInterface
    public interface Folder<T, R> {
        R apply(R acc, T item);
    }

    static class Stats {
        int hits;

        void hit() {
            hits++;
        }
    }
}
