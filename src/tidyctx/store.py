"""Where removed text goes: a small key-value :class:`Store`, keyed by content hash.

Projection, truncation and clearing take text out of a request; nothing is lost for good,
because the original goes into a store under :func:`store_key` of its text, and the marker
left in its place names that key. :func:`tidyctx.transforms.expand.expand_tool` gives the
agent a tool that reads it back.

The key depends on the text alone, so the same text gets the same key in every process and
putting it twice is harmless (:func:`keep` is idempotent). A store only has to offer ``get``
and ``put``; :class:`MemoryStore` is the default, and disk or Redis stores can follow the same
protocol.

>>> store = MemoryStore()
>>> key = keep(store, "a long tool result")
>>> key
'tc_...'
>>> store.get(key)
'a long tool result'
>>> keep(store, "a long tool result") == key
True
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

__all__ = ["MemoryStore", "Store", "keep", "store_key"]

KEY_PREFIX = "tc_"


@runtime_checkable
class Store(Protocol):
    """Key-value storage for removed text. Keys come from :func:`store_key`.

    ``get`` returns None for a key it does not hold (never stored, or evicted); ``put`` stores
    ``value`` under ``key``, replacing what was there (always the same text, since keys are
    content hashes).
    """

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...


class MemoryStore:
    """A thread-safe in-memory :class:`Store` holding at most ``max_items`` texts.

    When full, the oldest entry goes first; putting a key again makes it the newest. An
    evicted key reads back as None, so the expand tool answers that the text is no longer
    available. ``max_items=None`` keeps everything (memory grows with every removed text).
    """

    def __init__(self, max_items: int | None = 100_000) -> None:
        if max_items is not None and (
            isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1
        ):
            raise ValueError(
                f"MemoryStore(max_items=...) must be a positive int or None, got {max_items!r}"
            )
        self.max_items = max_items
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"MemoryStore.put takes str key and value, got {type(key).__name__} and "
                f"{type(value).__name__}"
            )
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if self.max_items is not None:
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __repr__(self) -> str:
        return f"MemoryStore({len(self)} items, max_items={self.max_items})"


def store_key(text: str) -> str:
    """The key of ``text``: ``"tc_"`` and 16 hex digits of its BLAKE2b hash (UTF-8).

    Stable across processes and Python versions, so markers written by one run can be read
    back by another that shares the store. Lone surrogates (which JSON can carry) are hashed
    as their UTF-8-style bytes rather than refused.

    >>> store_key("hello")
    'tc_...'
    >>> len(store_key("hello"))
    19
    """
    return (
        KEY_PREFIX
        + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    )


def keep(store: Store, text: str) -> str:
    """Put ``text`` into ``store`` under :func:`store_key` and return the key. Idempotent."""
    if not isinstance(text, str):
        raise TypeError(f"keep() stores text, got {type(text).__name__}")
    key = store_key(text)
    store.put(key, text)
    return key
