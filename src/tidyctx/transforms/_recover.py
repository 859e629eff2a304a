"""Every marker a transform sends names a text its store holds, on every turn.

A transform that rewrites a block (cuts, compacts, collapses, clears, dedupes, slices it) keeps
the original in a :class:`~tidyctx.store.Store` and leaves a marker naming its id. The store
may evict entries (``MemoryStore(max_items=...)``, ``SQLiteStore(max_items=...)``, Redis's
``maxmemory-policy``) or expire them (``RedisStore(ttl_seconds=...)``) while the conversation
still sends the marker. So on every call a transform

1. writes through :func:`guarded`: each put first renews the entries that markers already in
   the request name (an earlier transform's, sharing the store), so what this call writes
   evicts this transform's own older entries (which it can put back) before those;
2. finishes with :func:`settle`: every id its output names is renewed
   (:func:`~tidyctx.store.refresh`: made the newest entry, its TTL started again; the store's
   ``touch`` where it has one, so no value is sent again); a block whose id the store no
   longer holds is rewritten again (``redo``: the transform puts its texts back, e.g. a
   memoized cut whose entry expired while the agent paused), and if the store still cannot
   hold it, the block is sent as it came (with its call's input, when that was cleared too),
   with a :class:`~tidyctx.store.StoreWarning`.

A transform that resumes from the state of the turn before (``trim``) may settle the new
messages' blocks only (:func:`settled` with ``since``) when the store can tell that it lost
nothing since the earlier blocks were checked (:func:`generation`: a ``MemoryStore`` loses
entries only by evicting them, and counts that); for other stores, which may expire entries
or share them with other processes, every id is renewed every turn. Its puts then renew the
request's ids only before a put that evicts (``guarded(..., lean=True)``): which entries are
oldest matters to nothing else.

So a marker whose text is gone is never sent. A store that holds every text one request names
loses none that a marker names: what it evicts first is what no request has named for longest.
Only a store too small for one request makes a transform send blocks whole (and the request is
then not the same from turn to turn). On the models that check the prefix of thinking blocks
(:data:`tidyctx.tokens.PRESERVED_THINKING_MODELS`) the marker is sent all the same: a block sent
whole where the turn before sent its marker would change an earlier message, and the API would
reject the request (see ``docs/api-behaviour.md``).
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from tidyctx._markers import store_ids
from tidyctx._request import Request
from tidyctx.store import Store, StoreWarning, refresh, refresh_all
from tidyctx.tokens import runs_prefix_check

__all__ = ["Position", "block_ids", "generation", "guarded", "settle", "settled"]

Position = tuple[int, int]


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif depth < 64 and isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif depth < 64 and isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)


def block_ids(block: Any) -> list[str]:
    """The store ids named by the markers of a ``tool_result`` (its texts) or a ``tool_use``
    (the strings of its input), in order, each once.

    >>> block_ids({"type": "tool_result", "tool_use_id": "t1", "content": [
    ...     {"type": "text", "text": '[tidyctx: cut, id="tc_0123456789abcdef"]'}]})
    ['tc_0123456789abcdef']
    """
    if not isinstance(block, Mapping):
        return []
    kind = block.get("type")
    if kind == "tool_result":
        source: Any = block.get("content")
    elif kind == "tool_use":
        source = block.get("input")
    else:
        return []
    found: dict[str, None] = {}
    for text in _marked(source):
        found.update(dict.fromkeys(store_ids(text)))
    return list(found)


def _marked(source: Any) -> list[str]:
    """The strings of ``source`` (as :func:`_strings` walks them, in order) that hold
    ``tc_``. The usual shapes (a string; a list of blocks whose values are strings) are read
    without a generator per value: this runs over every tool block of every request."""
    if type(source) is str:
        return [source] if "tc_" in source else []
    if type(source) is not list:
        return [t for t in _strings(source) if "tc_" in t]
    out: list[str] = []
    for item in source:
        if type(item) is dict:
            for value in item.values():
                if type(value) is str:
                    if "tc_" in value:
                        out.append(value)
                else:
                    out += [t for t in _strings(value, 2) if "tc_" in t]
        else:
            out += [t for t in _strings(item, 1) if "tc_" in t]
    return out


class _Guarded:
    """A store whose every put first renews ``keys`` (the texts named by markers a transform
    passes on), so that what the transform writes evicts its own entries (which it can put
    back) before those of an earlier transform that shares the store."""

    def __init__(self, store: Store, keys: list[str] | Request) -> None:
        self.store = store
        self._keys = keys

    @property
    def keys(self) -> list[str]:
        """The ids to renew, read from the request at the first put: most calls put nothing
        (every cut memoized), and then never walk the request's markers."""
        if not isinstance(self._keys, list):
            self._keys = _request_ids(self._keys)
        return self._keys

    def get(self, key: str) -> str | None:
        return self.store.get(key)

    def put(self, key: str, value: str) -> None:
        refresh_all(self.store, self.keys)
        self.store.put(key, value)

    def touch(self, key: str) -> bool:
        return refresh(self.store, key)

    def touch_many(self, keys: list[str]) -> list[bool]:
        return refresh_all(self.store, keys)


class _Lean(_Guarded):
    """:class:`_Guarded` for a store that says how many puts it takes before it evicts
    (:meth:`~tidyctx.store.MemoryStore.room`): a put that evicts nothing renews nothing,
    since which entries are oldest only matters to what a put evicts."""

    def put(self, key: str, value: str) -> None:
        room = self.store.room()  # type: ignore[attr-defined]
        if room is None or room > 0:
            self.store.put(key, value)
        else:
            super().put(key, value)


def generation(store: Store) -> Hashable | None:
    """A value that changes whenever ``store`` drops an entry, and that no other store
    shares (:meth:`~tidyctx.store.MemoryStore.generation`); None for a store that cannot
    tell (it may expire entries, or share them with other processes). A caller that checked
    that the store held some ids and finds the same generation later knows it still does,
    without asking the store about each."""
    tell = getattr(store, "generation", None)
    return tell() if callable(tell) else None


def guarded(store: Store, request: Request, *, lean: bool = False) -> Store:
    """``store`` for the writes of one call on ``request``: as it is, or, when markers of the
    request's tool blocks already name ids, a store whose puts renew those first (``lean``:
    only before a put that evicts, in a store that says so, see :func:`generation`). With a
    store that has ``touch`` (the three here) the ids are read at the first put, if any (the
    request is never changed during a call, so they are the same)."""
    if lean and callable(getattr(store, "room", None)) and callable(getattr(store, "touch", None)):
        return _Lean(store, request)  # lean: renew only before a put that evicts
    if callable(getattr(store, "touch", None)):
        return _Guarded(store, request)  # renews nothing when no marker names an id: as store
    keys = _request_ids(request)
    return _Guarded(store, keys) if keys else store


def _request_ids(request: Request) -> list[str]:
    keys: dict[str, None] = {}
    for _, block in _blocks(request):
        keys.update(dict.fromkeys(block_ids(block)))
    return list(keys)


def _blocks(request: Mapping[str, Any], since: int = 0) -> Iterator[tuple[Position, Any]]:
    messages = request.get("messages")
    messages = messages if isinstance(messages, list) else []
    for i in range(since, len(messages)):
        message = messages[i]
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            for j, block in enumerate(content):
                if isinstance(block, Mapping) and block.get("type") in ("tool_result", "tool_use"):
                    yield (i, j), block


def _at(request: Mapping[str, Any], where: Position) -> Any:
    try:
        return request["messages"][where[0]]["content"][where[1]]
    except (KeyError, IndexError, TypeError):
        return None


def settle(
    store: Store,
    before: Request,
    after: Request,
    *,
    what: str,
    redo: Callable[[Position], None] | None = None,
    passed_on: Sequence[str] | None = None,
    rewritten: Iterable[Position] = (),
) -> Request:
    """``after`` (the output of a transform on ``before``) with every id it names renewed in
    ``store``; a block whose new ids the store does not hold is rewritten again by ``redo``
    (which puts its texts back), else sent as it is in ``before``. ``after`` must be the
    caller's own dict, with ``before``'s messages and blocks at the same places; a block sent
    as it came is put into new lists (``after`` may share them with ``before``). ``what``
    names the transform in the warning.

    The ids a block already named in ``before`` (markers of an earlier transform, or of an
    earlier turn's output sent back) are renewed after this transform's own, so that what it
    puts back evicts its own older entries (which it can put back again) before those.

    A caller that knows those ids (from an earlier turn: see ``tidyctx._memo.resume``) gives
    them as ``passed_on``, in block order (the ids a rewritten block names that its block in
    ``before`` named too, at that block's place), and the places of the blocks it rewrote as
    ``rewritten``: then only those blocks are read, and the result is the same.
    """
    return settled(
        store, before, after, what=what, redo=redo, passed_on=passed_on, rewritten=rewritten
    )[0]


def settled(
    store: Store,
    before: Request,
    after: Request,
    *,
    what: str,
    redo: Callable[[Position], None] | None = None,
    since: int = 0,
    passed_on: Sequence[str] | None = None,
    rewritten: Iterable[Position] = (),
) -> tuple[Request, bool]:
    """:func:`settle`, for the blocks of ``messages[since:]`` only (the caller knows the
    store still holds every id the earlier ones name, see :func:`generation`), and whether
    every block kept its markers (False: some went as they came). ``passed_on`` and
    ``rewritten``: as for :func:`settle`."""
    own: dict[Position, list[str]] = {}
    passed: dict[str, None] = {}
    pairs: Iterable[tuple[Position, Any]] = _blocks(after, since)
    if passed_on is not None:
        passed.update(dict.fromkeys(passed_on))
        pairs = [(where, _at(after, where)) for where in rewritten if where[0] >= since]
    for where, block in pairs:
        old = _at(before, where)
        if old is block:  # passed on as it came (shared): every id it names was known
            passed.update(dict.fromkeys(block_ids(block)))
            continue
        known = set(block_ids(old))
        for key in block_ids(block):
            if key in known:
                passed[key] = None
            else:
                own.setdefault(where, []).append(key)

    def gone() -> dict[Position, list[str]]:
        keys = list(dict.fromkeys(k for ks in own.values() for k in ks))
        held = dict(zip(keys, refresh_all(store, keys), strict=True))
        out: dict[Position, list[str]] = {}
        for where, named in own.items():
            lost = [k for k in named if not held[k]]
            if lost:
                out[where] = lost
        return out

    missing = gone()
    # Renewed after this transform's own. One that is gone stays as it came: a marker quoted
    # in a tool's output (a log of another run) looks the same as one passed on.
    refresh_all(store, [k for k in passed if k not in {x for ks in own.values() for x in ks}])
    if missing and redo is not None:
        for where in missing:
            redo(where)
        # Putting texts back may evict others (a store too small for the request): check all.
        missing = gone()
    if missing and runs_prefix_check(before.get("model")):
        # On these models a block sent whole where an earlier turn sent its marker changes an
        # earlier message, and every thinking block after it fails the prefix check (a 400 by
        # default): the marker stays, the same bytes every turn, though it leads nowhere.
        # https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks
        keys = {k for gone_keys in missing.values() for k in gone_keys}
        warnings.warn(
            f"{what}: the store no longer holds {len(keys)} text{'s' if len(keys) != 1 else ''}"
            f" that its markers name; the markers are sent all the same (expanding them finds "
            f"nothing), since {before.get('model')} checks that earlier messages do not change. "
            "Give the store room for every text one request names (MemoryStore(max_items=...), "
            "a ttl_seconds longer than a turn).",
            StoreWarning,
            stacklevel=_outside(),
        )
        return after, True
    if missing:
        _send_as_given(before, after, missing)
        keys = {k for gone_keys in missing.values() for k in gone_keys}
        warnings.warn(
            f"{what}: the store no longer holds {len(keys)} text{'s' if len(keys) != 1 else ''}"
            f" that its markers would name, so {len(missing)} block"
            f"{'s go' if len(missing) != 1 else ' goes'} as it came. The store evicts or "
            "expires entries faster than a request names them: give it room for every text "
            "one request names (MemoryStore(max_items=...), a ttl_seconds longer than a turn).",
            StoreWarning,
            stacklevel=_outside(),
        )
    return after, not missing


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _outside() -> int:
    """The ``stacklevel`` of the first frame outside tidyctx (the user's call)."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _send_as_given(before: Request, after: Request, missing: Mapping[Position, Any]) -> None:
    """Put ``before``'s block back at each place of ``missing``; with a tool_result, its
    call's tool_use too (its input may have been cleared with it)."""
    uses: dict[str, Position] = {}
    for where, block in _blocks(before):
        if block.get("type") == "tool_use":
            uses[str(block.get("id"))] = where
    places = set(missing)
    for where in missing:
        old = _at(before, where)
        if isinstance(old, Mapping) and old.get("type") == "tool_result":
            use = uses.get(str(old.get("tool_use_id")))
            if use is not None:
                places.add(use)
    messages = after["messages"] = list(after["messages"])  # the list may be the input's
    for i, j in sorted(places):
        old = _at(before, (i, j))
        if old is None:
            continue
        message = messages[i]
        content = list(message["content"])
        content[j] = copy.deepcopy(old)  # the output shares nothing with the input
        messages[i] = {**message, "content": content}
