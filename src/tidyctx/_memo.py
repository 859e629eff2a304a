"""One bounded memo of derived work, keyed by content: what lets turn n+1 pay only for its
new blocks.

A transform's per-block work (the hints a call points at, the tokens of a block, the cut of
a tool result, a block's cache digest...) is a pure function of the block and what precedes
it. :func:`memoized` remembers such results across calls in one process-wide LRU store,
bounded by bytes (:data:`DEFAULT_MAX_BYTES`, changed with :func:`set_memo_limit`), whose
size :func:`memo_stats` reports.

Rules that keep a memo from ever changing an output:

- **Keys are content**, never object identity: strings, numbers and tuples of them
  (:func:`content_key` turns plain JSON data into one). A caller that edits its list in place
  between calls gets a different key, so never a stale result. A dict's key order is part of
  its key, as it is part of the bytes sent.
- **Values are immutable** (str, int, tuples, frozensets) or copied by the caller before it
  hands them out: a caller that edits an output never edits the memo.
- **Eviction only costs time**: a missing entry is recomputed, and equal to the evicted one.

Sizes are estimates: the characters of the strings an entry holds (its key included: a key
may hold a tool result's text) plus :data:`ENTRY_OVERHEAD` bytes. A key that only indexes
the request's own strings (a message, a block's content, a text whose ids are read) holds
those very objects, not copies: one text is held once however many kinds of work are keyed
by it, so such keys count 8 bytes per item (:func:`shared_size`), and the text is counted
where it is held as itself (its token count's entry, a cut's value).

>>> calls = []
>>> def work(text):
...     calls.append(text)
...     return text.upper()
>>> [memoized("doc", ("x", "abc"), lambda: work("abc"), 3) for _ in range(2)]
['ABC', 'ABC']
>>> calls
['abc']
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENTRY_OVERHEAD",
    "MemoStats",
    "clear_memo",
    "content_key",
    "memo_stats",
    "memoized",
    "owner_token",
    "prefix_tokens",
    "result_key",
    "resume",
    "set_memo_limit",
    "shared_size",
    "suspend",
    "text_size",
]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""The memo's default bound: 256 MiB of held text and values, about what a proxy serving
fifty long agent sessions (5 MB each) at once needs to keep every one of them incremental."""

ENTRY_OVERHEAD = 200
"""Bytes counted per entry beyond its strings: the dict slot, the tuples, small objects."""

_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class MemoStats:
    """What the memo holds (:func:`memo_stats`)."""

    entries: int
    bytes: int
    """Estimated bytes held: the strings of keys and values plus a fixed overhead per entry."""
    max_bytes: int
    """The bound: the least recently used entries are dropped beyond it."""
    hits: int
    misses: int
    evictions: int
    kinds: Mapping[str, tuple[int, int]]
    """Per kind of work (``"hints"``, ``"tokens"``, ``"trim"``...): (entries, bytes)."""


class _Store:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.data: OrderedDict[tuple[str, Hashable], tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0
        self.kinds: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple[str, Hashable]) -> tuple[Any, int] | None:
        with self.lock:
            hit = self.data.get(key)
            if hit is None:
                self.misses += 1
                return None
            self.data.move_to_end(key)
            self.hits += 1
            return hit

    def take(self, key: tuple[str, Hashable]) -> Any:
        with self.lock:
            hit = self.data.pop(key, None)
            if hit is None:
                self.misses += 1
                return None
            self._forget(key[0], hit[1])
            self.hits += 1
            return hit[0]

    def put(self, key: tuple[str, Hashable], value: Any, size: int) -> None:
        size += ENTRY_OVERHEAD
        with self.lock:
            old = self.data.pop(key, None)
            if old is not None:
                self._forget(key[0], old[1])
            if size > self.max_bytes:
                return  # larger than the whole memo: not worth evicting everything for
            self.data[key] = (value, size)
            self.bytes += size
            kind = self.kinds.setdefault(key[0], [0, 0])
            kind[0] += 1
            kind[1] += size
            self._shrink()

    def _forget(self, kind: str, size: int) -> None:
        self.bytes -= size
        counts = self.kinds[kind]
        counts[0] -= 1
        counts[1] -= size

    def _shrink(self) -> None:
        while self.bytes > self.max_bytes and self.data:
            (kind, _), (_, size) = self.data.popitem(last=False)
            self._forget(kind, size)
            self.evictions += 1

    def limit(self, max_bytes: int) -> None:
        with self.lock:
            self.max_bytes = max_bytes
            self._shrink()

    def clear(self, kind: str | None = None) -> None:
        with self.lock:
            if kind is None:
                self.data.clear()
                self.bytes = 0
                self.kinds.clear()
                self.hits = self.misses = self.evictions = 0
                return
            for key in [k for k in self.data if k[0] == kind]:
                self._forget(kind, self.data.pop(key)[1])

    def stats(self) -> MemoStats:
        with self.lock:
            return MemoStats(
                entries=len(self.data),
                bytes=self.bytes,
                max_bytes=self.max_bytes,
                hits=self.hits,
                misses=self.misses,
                evictions=self.evictions,
                kinds={k: (v[0], v[1]) for k, v in sorted(self.kinds.items()) if v[0]},
            )


_STORE = _Store(DEFAULT_MAX_BYTES)


def memoized(
    kind: str,
    key: Hashable,
    compute: Callable[[], _V],
    size: int | Callable[[_V], int],
    *,
    refresh: bool = False,
) -> _V:
    """``compute()``, remembered under ``(kind, key)``: a later call with an equal key gets the
    same value without computing it. ``size`` is the estimated bytes of the strings in the key
    and the value (:func:`text_size`), or a function of the value giving it; the value must be
    immutable (see the module notes). An unhashable key is computed every time. ``refresh``
    computes again even when a value is held, and holds the new one: for work redone on
    purpose, for its side effects.
    """
    full = (kind, key)
    try:
        hit = None if refresh else _STORE.get(full)
    except TypeError:
        return compute()
    if hit is not None:
        value: _V = hit[0]
        return value
    value = compute()
    with contextlib.suppress(TypeError):  # an unhashable key holds nothing
        _STORE.put(full, value, size(value) if callable(size) else size)
    return value


def memo_stats() -> MemoStats:
    """The memo's size and traffic: entries, estimated bytes, bound, hits, misses, evictions.

    >>> memo_stats().max_bytes == DEFAULT_MAX_BYTES or memo_stats().max_bytes > 0
    True
    """
    return _STORE.stats()


def set_memo_limit(max_bytes: int) -> None:
    """Bound the memo to ``max_bytes`` (estimated; default :data:`DEFAULT_MAX_BYTES`), evicting
    the least recently used entries beyond it. 0 turns memoizing off. Outputs never change:
    an evicted result is computed again."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"set_memo_limit: max_bytes must be an int >= 0, got {max_bytes!r}")
    _STORE.limit(max_bytes)


def clear_memo(kind: str | None = None) -> None:
    """Forget everything memoized (for cold-start benchmarks and tests; the counters restart),
    or only the entries of one ``kind`` (``"tokens"``, ``"hints"``...)."""
    _STORE.clear(kind)


# ---------------------------------------------------------------------------- keys

# Tags of a key's tuples. JSON's scalars are tagged so that keys stay as exact as the bytes:
# in Python True == 1 == 1.0 and 0.0 == -0.0, but json.dumps writes each differently.
_DICT, _LIST, _INT, _FLOAT, _BOOL, _OTHER = "\0d", "\0l", "\0i", "\0f", "\0b", "\0o"


def content_key(value: Any) -> Hashable:
    """A hashable key equal for two values exactly when they serialize to the same JSON:
    strings stay themselves (a str caches its hash), containers become tagged tuples, dicts
    in their key order. Raises ``TypeError`` for data that is not plain JSON.

    >>> content_key({"type": "text", "text": "hi"}) == content_key({"type": "text", "text": "hi"})
    True
    >>> content_key([1]) == content_key([True]), content_key(0.0) == content_key(-0.0)
    (False, False)
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        out: list[Hashable] = [_DICT]
        for k, v in value.items():
            out.append(k if isinstance(k, str) else (_OTHER, repr(k)))
            out.append(v if isinstance(v, str) else content_key(v))
        return tuple(out)
    if isinstance(value, list | tuple):  # a tuple is written as the list it stands for
        return (_LIST, *[v if isinstance(v, str) else content_key(v) for v in value])
    if value is None:
        return None
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, int):
        return (_INT, value)
    if isinstance(value, float):
        return (_FLOAT, repr(value))
    raise TypeError(f"not plain JSON data: {type(value).__name__}")


_TOKENS = itertools.count(1)


def _new_token() -> int:
    return next(_TOKENS)


_OWNERS = itertools.count(1)


def owner_token() -> int:
    """A number never given out before in this process: for a transform instance to put in the
    keys of what it holds in the memo, where no other instance finds it."""
    return next(_OWNERS)


def prefix_tokens(items: Sequence[Hashable]) -> list[int]:
    """One token per prefix of ``items``: ``out[i]`` stands for ``items[:i + 1]``. Two calls
    get the same token for equal prefixes (while the memo keeps it), and never one token for
    two different prefixes: tokens are interned, ``(token before, item) -> token``, and a new
    one is never a reused number. So work that depends on everything up to a message can be
    memoized under one small key, found in one pass over the messages.

    >>> a = prefix_tokens(["x", "y", "z"]); b = prefix_tokens(["x", "y", "w"])
    >>> a[:2] == b[:2], a[2] == b[2]
    (True, False)
    """
    out: list[int] = []
    token = 0
    for item in items:
        token = memoized("prefix", (token, item), _new_token, _Sized(item))
        out.append(token)
    return out


class _Sized:
    """The size of a prefix entry, measured only when one is stored (most calls find it)."""

    __slots__ = ("item",)

    def __init__(self, item: Hashable) -> None:
        self.item = item

    def __call__(self, _: object) -> int:
        return shared_size(self.item) + 16


def resume(kind: str, tokens: Sequence[int], least: int = 0) -> tuple[int, Any]:
    """The state of a chained computation that :func:`suspend` left for the longest prefix
    of a sequence, taken out of the memo: ``(k, state)``, where ``state`` stands for the
    first ``k`` items (``tokens`` are the sequence's :func:`prefix_tokens`); ``(0, None)``
    when none is held for a prefix longer than ``least`` items.

    A state is mutable: the caller owns what it takes (no other call can see it while it is
    out, so two threads on one conversation never share one; the second starts over) and
    gives it back, extended, with :func:`suspend`. Looked for from the longest prefix down,
    so a conversation that grew by a turn finds its state at once.

    >>> t = prefix_tokens(["a", "b", "c"])
    >>> suspend("doc-chain", t[1], ["a", "b"], 2)
    >>> resume("doc-chain", t), resume("doc-chain", t)
    ((2, ['a', 'b']), (0, None))
    """
    for k in range(len(tokens), least, -1):
        state = _STORE.take((kind, tokens[k - 1]))
        if state is not None:
            return k, state
    return 0, None


def suspend(kind: str, token: int, state: Any, size: int) -> None:
    """Hold ``state`` (the caller's, handed over: never changed while held) for the prefix
    ``token`` stands for, until :func:`resume` takes it or the memo evicts it. ``size``:
    its estimated bytes, as for :func:`memoized`."""
    _STORE.put((kind, token), state, size)


def result_key(*parts: Any) -> Hashable:
    """A memo key for a tool result's work (its tool, input, content, hints...): the parts'
    :func:`content_key` (a frozenset as itself), or their canonical JSON's hash for data that
    is not plain JSON (:func:`~tidyctx._request.block_hash`)."""
    try:
        return tuple(p if isinstance(p, frozenset) else content_key(p) for p in parts)
    except TypeError:
        from tidyctx._request import block_hash

        return block_hash([sorted(p) if isinstance(p, frozenset) else p for p in parts])


def shared_size(*values: Any) -> int:
    """Estimated bytes of the tuples, lists and dicts of ``values`` whose strings are shared
    with the request (see the module notes): 8 per item at every level, no characters."""
    total = 0
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, tuple | list | frozenset | set):
            total += 8 * len(v)
            stack.extend(x for x in v if not isinstance(x, str))
        elif isinstance(v, dict):
            total += 16 * len(v)
            stack.extend(x for x in v.values() if not isinstance(x, str))
        else:
            total += 8
    return total


def text_size(*values: Any) -> int:
    """Estimated bytes of the strings in ``values`` (nested in tuples, lists, dicts and
    frozensets): their characters, plus a few bytes per other item."""
    total = 0
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, tuple | list | frozenset | set):
            total += 8 * len(v)
            stack.extend(v)
        elif isinstance(v, dict):
            total += 16 * len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            total += 16
            stack.extend(getattr(v, f.name) for f in dataclasses.fields(v))
        else:
            total += 8
    return total
