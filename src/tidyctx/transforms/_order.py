"""order(): make the cacheable prefix byte-identical turn after turn and across processes.

Anthropic's prompt cache matches the request prefix in the order tools → system → messages,
and any byte change misses
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching). order() removes the
usual causes of a changing prefix:

1. **Tools** are sorted by name and every definition is rebuilt with its dict keys sorted
   recursively (``input_schema`` included), so two processes that build the same tools in a
   different order, or with a different key order, send the same bytes.
2. **tool_use inputs** in the messages get their keys sorted recursively. Messages and blocks
   are never reordered. The blocks of Anthropic's server tools (``server_tool_use``,
   ``mcp_tool_use`` and their results) are passed back as received.
3. **Volatile lines of the system prompt** (timestamps, dates, times, UUIDs, request ids, long
   hex ids, turn counters, "started 5 minutes ago", or any text between ``<dynamic>`` and
   ``</dynamic>``) are taken out of the system and delivered in one text block at the end of
   the last user message, wrapped in ``<system-context>`` … ``</system-context>``: the model
   still reads them, now after the cached prefix.

Everything else is left as the client sent it: a string ``system`` or ``content`` stays a
string, a tool_result's string content stays a string, keys keep their order, whitespace is
kept. Two things change form because something moved: a system given as a string that loses
a line stays a string without that line, and a last user message given as a string becomes
that text as one text block followed by the ``<system-context>`` block.

Only the system prompt is scanned for volatile text. Old messages were cached as they were
sent; rewriting them would break the cache from that point on, and they do not change from
turn to turn anyway. Tool descriptions are not scanned either: a tool definition describes
the tool, it cannot be split, and any change to it invalidates every cache level.

**Models that check the prefix of thinking blocks**
(:data:`tidyctx.tokens.PRESERVED_THINKING_MODELS`): the system prompt is left as sent. The
dynamic block sits in the last user message, and the next turn's copy of that message goes
without it: an earlier message changes, which fails the check for every thinking block after
it (https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks).

**Lines that only look volatile.** A pure transform sees one request, so it cannot tell a
timestamp that changes every turn from a fixed "The current time is 2024-05-15 15:00" that a
benchmark pins for the whole run. By default every volatile-looking line moves (missing a
changing timestamp re-sends the whole prompt uncached every turn; moving a fixed one re-sends
one line). With ``order(seen=SystemLines())`` the caller passes a memory of the conversation
(see :class:`SystemLines`): a volatile-looking line then moves only once its value has been
seen to change between two requests of the same conversation, and stays in place before.

**Tools that change.** Without a memory the tools go as sent (sorted). With
``order(tools=ToolChanges())`` (:mod:`tidyctx.transforms._toolchanges`) a conversation keeps
its first tools, and a tool dropped or restored later is stated in a ``role: "system"``
message at the place the change was first seen, so the cached prefix survives it.

**Prefix stability.** For a conversation that only grows, whose system prompt carries a
timestamp that changes every turn and whose tools come in any order, the output of order()
at turn *n* and at turn *n+1* has byte-identical tools and system, and the messages of turn
*n* before its last user message are a prefix of turn *n+1*'s. Turn *n*'s last user message
carries the dynamic block and turn *n+1*'s copy of it does not: everything before that block
is identical, so a cache breakpoint on the block before the dynamic block (where ``cache()``
puts it, see :func:`is_dynamic_block`) is read back at turn *n+1*.

>>> req = {"model": "claude-sonnet-4-6", "max_tokens": 64,
...        "system": "You are terse.\\nCurrent time: 2026-11-25T14:03:22Z",
...        "messages": [{"role": "user", "content": "What time is it?"}]}
>>> out = order()(req)
>>> out["system"]
'You are terse.'
>>> print(out["messages"][-1]["content"][-1]["text"])
<system-context>
Current time: 2026-11-25T14:03:22Z
</system-context>
>>> order()(out) == out
True
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidyctx._edge import Edge
from tidyctx._memo import memoized
from tidyctx._request import (
    Request,
    ValidationError,
    cache_content,
    canonical_json,
    check_encodable,
)
from tidyctx.tokens import runs_prefix_check

if TYPE_CHECKING:
    from tidyctx.transforms._toolchanges import ToolChanges

__all__ = [
    "DEFAULT_PATTERNS",
    "DYNAMIC_CLOSE",
    "DYNAMIC_FOOTER",
    "DYNAMIC_HEADER",
    "DYNAMIC_OPEN",
    "ConversationMemory",
    "Order",
    "SystemLines",
    "conversation_key",
    "is_dynamic_block",
    "order",
]

DYNAMIC_OPEN = "<dynamic>"
"""Opens a span of the system prompt that is volatile whatever it says."""
DYNAMIC_CLOSE = "</dynamic>"
"""Closes a span opened by :data:`DYNAMIC_OPEN`."""
DYNAMIC_HEADER = "<system-context>"
"""First line of the block that carries the volatile system text at the end of the last user
message."""
DYNAMIC_FOOTER = "</system-context>"
"""Last line of that block."""

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:mon|tue|tues|wed|wednes|thu|thur|thurs|fri|sat|satur|sun)(?:day)?"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_HOUR = r"(?:[01]?\d|2[0-3])"

# The first named group of each pattern labels its matches in describe() ("_" reads as " ").
DEFAULT_PATTERNS: tuple[re.Pattern[str], ...] = (
    # ISO 8601 date and time: 2026-11-25T14:03:22Z, 2026-11-25 14:03:22.123+01:00
    re.compile(
        r"(?P<timestamp>\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
        r"(?:Z|[+-]\d{2}:?\d{2})?(?!\d))"
    ),
    # Unix time in seconds or milliseconds, 2017 to 2033: 1764079402, 1764079402123
    re.compile(r"(?P<timestamp>(?<!\d)(?<!\d\.)1[5-9]\d{8}(?:\d{3})?(?!\d|\.\d))"),
    # A date: 2026-11-25, 25/11/2026, 11/25/26, Nov 25, 2026, 25th of November 2026,
    # Tuesday, November 25, and "Today is ..." / "Today's date is ..."
    re.compile(
        rf"(?P<date>\b\d{{4}}-(?:0[1-9]|1[0-2])-{_DAY}(?!\d)"
        rf"|(?<![\d/]){_DAY}/{_DAY}/(?:\d{{4}}|\d{{2}})(?![\d/])"
        rf"|(?i:\b{_MONTH}\.?\s+{_DAY}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
        rf"|\b{_DAY}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{4}}\b"
        rf"|\b{_WEEKDAY},?\s+(?:{_MONTH}\.?\s+{_DAY}|{_DAY}(?:st|nd|rd|th)?\s+{_MONTH})\b"
        r"|\btoday(?:'s|’s)?(?:\s+date)?\s+is\b))"
    ),
    # A clock time: 14:03:22, 2:03 PM, 14:03 UTC, 9:30 CEST, "Current time: 14:03", 3pm
    re.compile(
        rf"(?P<time>(?<![\d:]){_HOUR}:[0-5]\d:[0-5]\d(?![\d:])"
        rf"|(?<![\d:]){_HOUR}:[0-5]\d\s*(?:(?i:[ap]m\b|[ap]\.m\.)|UTC\b|GMT\b|Z\b|[A-Z]{{2,4}}T\b)"
        rf"|(?i:\btime\s*(?:is|:|=)\s*){_HOUR}:[0-5]\d(?![\d:])"
        r"|(?i:\b(?:1[0-2]|0?[1-9])\s?(?:[ap]m\b|[ap]\.m\.)))"
    ),
    # A UUID: 123e4567-e89b-12d3-a456-426614174000
    re.compile(
        r"(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
        r"-[0-9a-fA-F]{12}\b)"
    ),
    # An API object id with a digit in it: req_011CXqXVfVqMJd8rzkVKPZDM, msg_01...,
    # toolu_01..., chatcmpl-..., sess_..., run_..., trace_...
    re.compile(
        r"(?P<id>\b(?:req|msg|msgbatch|toolu|srvtoolu|sess|session|chatcmpl|resp|run|trace"
        r"|span|evt|call|conv|thread|job)[_-](?=[A-Za-z0-9]*\d)[A-Za-z0-9]{8,}\b)"
    ),
    # A long hex id or hash, 16 to 64 hex digits with a digit among them: trace ids, SHAs,
    # md5s, snowflake ids (longer runs are data, not ids)
    re.compile(r"(?P<hex_id>\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,64}\b)"),
    # A turn or loop counter: "Turn 12", "iteration 3", "attempt 2 of 5", "request #42",
    # "message No. 7", "3rd retry". Words like "step" or "round" count only with "#"/"No.",
    # so that numbered instructions ("Step 1: read the file") stay in the prefix.
    re.compile(
        r"(?P<counter>(?i:\b(?:turn|iteration|attempt|retry|cycle)\s*(?:#|no\.|number)?\s*\d+\b"
        r"|\b(?:request|call|step|round|message|run|query|task|session|conversation|loop|tick)"
        r"\s*(?:#|no\.|number)\s*\d+\b"
        r"|\b\d+(?:st|nd|rd|th)\s+(?:turn|iteration|attempt|retry|request|message|call|round)\b))"
    ),
    # Relative or elapsed time: "session started 5 minutes ago", "an hour ago", "just now",
    # "elapsed: 42s", "uptime 3 days", "time left: 10 min"
    re.compile(
        r"(?P<relative_time>(?i:\b\d+(?:\.\d+)?\s*(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?"
        r"|hours?|d|days?|w|wks?|weeks?|mos?|months?|y|yrs?|years?)\s+ago\b"
        r"|\b(?:an?|one)\s+(?:second|minute|hour|day|week|month|year)\s+ago\b"
        r"|\bjust now\b|\bmoments ago\b"
        r"|\b(?:elapsed|uptime|running for|time (?:left|remaining))\b\W{0,3}\d))"
    ),
    # A usage meter: "tokens used: 12,345", "4,000 tokens remaining", "budget left: $3.20"
    # ("(?:\s*k)?\s+", not "\s*k?\s+", whose two runs split a run of spaces every way)
    re.compile(
        r"(?P<usage>(?i:\b(?:tokens?|credits?|budget|context|quota)\s+(?:used|remaining|left)\b"
        r"\W{0,3}\d|\b\d[\d,.]*(?:\s*k)?\s+(?:tokens?|credits?)\s+(?:used|remaining|left)\b))"
    ),
)

_TTL_RANK = {"1h": 2, "5m": 1}

Pin = int | str


def is_dynamic_block(block: Any) -> bool:
    """True for the block order() appends to the last user message (volatile system text).

    ``cache()`` uses it to keep the rolling breakpoint off that block: it changes every turn.

    >>> is_dynamic_block({"type": "text", "text": "<system-context>\\nTime: 14:03:22\\n"
    ...                   "</system-context>"})
    True
    >>> is_dynamic_block({"type": "text", "text": "hello"})
    False
    """
    return (
        isinstance(block, Mapping)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
        and block["text"].startswith(DYNAMIC_HEADER)
    )


def _dynamic_block(items: list[str]) -> dict[str, Any]:
    return {"type": "text", "text": "\n".join([DYNAMIC_HEADER, *items, DYNAMIC_FOOTER])}


# ---------------------------------------------------------------------------- helpers


def _canonical(value: Any) -> Any:
    """``value`` with every dict's keys in sorted order, recursively (lists keep their order)."""
    if isinstance(value, Mapping):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _is_canonical(value: Any) -> bool:
    """Whether ``value`` serializes as its :func:`_canonical` copy does: every dict's keys
    already in sorted order (distinct keys serialize differently, so the bytes differ exactly
    when some order does)."""
    if isinstance(value, Mapping):
        keys = list(value)
        if keys != sorted(keys):
            return False
        return all(_is_canonical(v) for v in value.values() if isinstance(v, Mapping | list))
    if isinstance(value, list):
        return all(_is_canonical(v) for v in value if isinstance(v, Mapping | list))
    return True


def _ttl_rank(marker: Any) -> int:
    if not isinstance(marker, Mapping):
        return 0
    return _TTL_RANK.get(str(marker.get("ttl", "5m")), 0)


def _merge_marker(existing: Any, moved: Any) -> Any:
    """One marker where two land on one block: the longer TTL, else the one already there."""
    if existing is None or _ttl_rank(moved) > _ttl_rank(existing):
        return moved
    return existing


def _fix_ttl_order(blocks: list[dict[str, Any]]) -> None:
    """Reassign markers so 1h ones come before 5m ones (the API's rule), if reordering mixed
    them up."""
    places = [i for i, b in enumerate(blocks) if b.get("cache_control") is not None]
    markers = [blocks[i]["cache_control"] for i in places]
    ranks = [_ttl_rank(m) for m in markers]
    if 0 in ranks or ranks == sorted(ranks, reverse=True):
        return
    for i, marker in zip(places, sorted(markers, key=_ttl_rank, reverse=True), strict=True):
        blocks[i]["cache_control"] = marker


def _label(pattern: re.Pattern[str]) -> str:
    names = sorted(pattern.groupindex.items(), key=lambda kv: kv[1])
    return names[0][0].replace("_", " ") if names else "custom pattern"


def _compile(pattern: Any) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError(f"order(patterns=...): {pattern!r} is a bytes pattern; use str")
        compiled: re.Pattern[str] = pattern
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"order(patterns=...): invalid regular expression {pattern!r}: {err}"
            ) from err
    else:
        raise TypeError(
            f"order(patterns=...) takes strings or compiled regexes, got "
            f"{type(pattern).__name__} {pattern!r}"
        )
    if compiled.search("") is not None:
        raise ValueError(
            f"order(patterns=...): {compiled.pattern!r} matches the empty string, so every "
            "line of the system prompt would be volatile; make it match something"
        )
    return compiled


def _pins(option: str, value: Any) -> tuple[Pin, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, int | str) else list(value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise TypeError(
                f"order({option}=...) takes system block indexes (int) or substrings (str), "
                f"got {type(item).__name__} {item!r}"
            )
        if item == "":
            raise ValueError(f"order({option}=...): an empty substring would pin every block")
    return tuple(items)


def _matches(pins: tuple[Pin, ...], index: int, count: int, text: str) -> bool:
    for pin in pins:
        if isinstance(pin, int):
            if -count <= pin < count and pin % count == index:
                return True
        elif pin in text:
            return True
    return False


# ---------------------------------------------------------------------------- memory

Slot = tuple[int, int]
"""A volatile-looking line's place: (system block index, its rank among that block's
volatile-looking lines)."""


def conversation_key(request: Mapping[str, Any]) -> str:
    """What stays the same across the requests of one conversation: its tools and its first
    message, as 32 hex digits.

    Tool order, key order, ``cache_control`` markers, the string or block form of the first
    message and order()'s own ``<system-context>`` block do not change the key, so a request
    and its ordered, cached output have the same key.

    >>> a = {"messages": [{"role": "user", "content": "Fix the bug."}]}
    >>> b = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]},
    ...                   {"role": "assistant", "content": "Done."}]}
    >>> conversation_key(a) == conversation_key(b)
    True
    """
    tools = request.get("tools")
    tool_part = sorted(
        canonical_json(cache_content(t)).decode("utf-8")
        for t in (tools if isinstance(tools, list) else [])
    )
    messages = request.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    role = content = None
    if isinstance(first, Mapping):
        role, content = first.get("role"), first.get("content")
    blocks: Any = content
    if isinstance(content, str):
        blocks = [cache_content(content)] if content else []
    elif isinstance(content, list):
        blocks = [cache_content(b) for b in content if not is_dynamic_block(b)]
    data = canonical_json([tool_part, role, blocks])
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class ConversationMemory:
    """What the memories a wrapper or proxy passes in share (:class:`SystemLines`,
    :class:`~tidyctx.transforms._pauses.Pauses`): state per conversation, known by
    ``key(request)`` (default :func:`conversation_key`), guarded by a lock that pickling
    leaves out and unpickling makes anew."""

    key: Callable[[Mapping[str, Any]], str] | None
    _lock: threading.Lock

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def key_of(self, request: Mapping[str, Any]) -> str:
        """The conversation ``request`` belongs to."""
        key = conversation_key(request) if self.key is None else self.key(request)
        if not isinstance(key, str):
            raise TypeError(f"{type(self).__name__}(key=...) must return a str, got {key!r}")
        return key


class SystemLines(ConversationMemory):
    """What :func:`order` has seen of the system prompt's volatile-looking lines, per
    conversation: pass one to ``order(seen=...)``.

    A pure transform sees one request and cannot tell a timestamp that changes every turn from
    a line that only looks like one (a fixed "The current time is 2024-05-15 15:00" in a
    benchmark's prompt). This object is the memory that tells them apart. For each
    conversation (by ``key(request)``, default :func:`conversation_key`: the tools and the first
    message) it records each volatile-looking line of the system prompt by its place (system
    block, rank among that block's volatile-looking lines) and its text. ``order()`` then moves
    a line only once its text has been seen to change between two requests of the same
    conversation: on first sight, and as long as it stays the same, it stays where it is. Once
    it has changed it moves on every later request of that conversation, so the prefix is
    stable from then on.

    What was learnt also serves the agent's next conversations: a place that changed within
    one conversation is remembered for the *shape* of its system prompt (the prompt with its
    volatile-looking lines blanked out), and in a later conversation whose system prompt has
    that shape the line at that place moves from the first request on, so only the first
    conversation pays for the lesson. A line that differs between conversations but never
    within one (a date fixed per session) is never taught that way.

    The owner is whoever sees the whole conversation: a wrapper or proxy keeps one for the life
    of the process (or pickles it between runs). It is deterministic: the same requests in the
    same order leave it in the same state, and the same request with the same state gives the
    same output bytes. It holds at most ``max_conversations`` conversations and as many prompt
    shapes, forgetting the one used longest ago. Thread-safe. Picklable when ``key`` is None or
    a module-level function.

    >>> seen = SystemLines()
    >>> t = order(seen=seen)
    >>> def turn(k, clock):
    ...     system = f"You are terse.\\nThe current time is {clock}."
    ...     talk = [{"role": "assistant", "content": "Which day?"},
    ...             {"role": "user", "content": "Monday."}]
    ...     return {"system": system, "messages": [{"role": "user", "content": "Book it."},
    ...                                            *talk * k]}
    >>> t(turn(0, "2024-05-15 15:00"))["system"]   # first sight: stays
    'You are terse.\\nThe current time is 2024-05-15 15:00.'
    >>> t(turn(1, "2024-05-15 15:00"))["system"]   # unchanged: stays
    'You are terse.\\nThe current time is 2024-05-15 15:00.'
    >>> t(turn(2, "2024-05-15 15:07"))["system"]   # changed: moves from now on
    'You are terse.'
    >>> def other(clock):                              # another conversation, same prompt
    ...     return {"system": f"You are terse.\\nThe current time is {clock}.",
    ...             "messages": [{"role": "user", "content": "Cancel it."}]}
    >>> t(other("2024-05-16 09:00"))["system"]         # the clock is known to tick: moves
    'You are terse.'
    """

    def __init__(
        self,
        *,
        key: Callable[[Mapping[str, Any]], str] | None = None,
        max_conversations: int = 4096,
    ) -> None:
        if isinstance(max_conversations, bool) or not isinstance(max_conversations, int):
            raise TypeError(
                f"SystemLines(max_conversations=...) takes an int, got {max_conversations!r}"
            )
        if max_conversations < 1:
            raise ValueError(f"SystemLines(max_conversations={max_conversations}): must be >= 1")
        if key is not None and not callable(key):
            raise TypeError(f"SystemLines(key=...) takes a function of the request, got {key!r}")
        self.key = key
        self.max_conversations = max_conversations
        # conversation key -> slot -> (the line's text at last sight, does it move)
        self._conversations: OrderedDict[str, dict[Slot, tuple[str, bool]]] = OrderedDict()
        # system prompt shape -> the slots whose line changed within some conversation
        self._ticking: OrderedDict[str, frozenset[Slot]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        options = []
        if self.key is not None:
            options.append(f"key={getattr(self.key, '__qualname__', self.key)!s}")
        if self.max_conversations != 4096:
            options.append(f"max_conversations={self.max_conversations}")
        return f"SystemLines({', '.join(options)})"

    def __len__(self) -> int:
        """The number of conversations remembered."""
        return len(self._conversations)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SystemLines):
            return NotImplemented
        return (
            self.key == other.key
            and self.max_conversations == other.max_conversations
            and self._conversations == other._conversations
            and self._ticking == other._ticking
        )

    def moves(
        self,
        key: str,
        shape: str,
        lines: Iterable[tuple[Slot, str]],
        *,
        record: bool = True,
    ) -> set[Slot]:
        """Of ``lines`` (place, text) seen in one request of conversation ``key`` whose system
        prompt has ``shape``, the places whose line moves: it changed since an earlier request
        of this conversation (or moved there already), or it changed within an earlier
        conversation of the same shape. With ``record``, remember this request."""
        with self._lock:
            updated: dict[Slot, tuple[str, bool]] = dict(self._conversations.get(key) or {})
            taught = self._ticking.get(shape, frozenset())
            out: set[Slot] = set()
            ticked: set[Slot] = set()
            for slot, text in lines:
                before = updated.get(slot)
                changed = before is not None and before[0] != text
                moves = changed or slot in taught or (before is not None and before[1])
                if changed:
                    ticked.add(slot)
                if moves:
                    out.add(slot)
                updated[slot] = (text, moves)
            if record:
                _remember(self._conversations, key, updated, self.max_conversations)
                if ticked or shape in self._ticking:
                    _remember(self._ticking, shape, taught | ticked, self.max_conversations)
            return out


def _remember(memory: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    """Store ``value`` as the most recently used entry; forget the oldest past ``limit``."""
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > limit:
        memory.popitem(last=False)


def _shape(scans: list[tuple[str, _Scan | None]]) -> str:
    """The system prompt with its volatile-looking lines blanked out, as 32 hex digits: what
    stays the same across the conversations of one agent whose prompt carries a clock."""
    parts = [
        [kind, [line if label is None else None for line, label in scan.lines] if scan else None]
        for kind, scan in scans
    ]
    return hashlib.blake2b(canonical_json(parts), digest_size=16).hexdigest()


# ---------------------------------------------------------------------------- the transform


@dataclass
class _Stats:
    tools: int = 0
    tools_reordered: bool = False
    tools_rewritten: bool = False
    inputs: int = 0
    lines: list[str] = field(default_factory=list)
    kept_lines: int = 0
    spans: int = 0
    blocks: int = 0
    markers: list[str] = field(default_factory=list)
    already: bool = False
    tool_changes: str = ""
    held: bool = False  # a model that checks the prefix of thinking blocks: system left as sent


@dataclass(frozen=True)
class _Item:
    text: str
    kind: str  # "line", "span" or "block"
    label: str


@dataclass(frozen=True)
class _Scan:
    """One system text split for moving: the spans (offset in ``rest``, text), and ``rest``
    (the text without its spans) as lines with the label of the pattern each matched."""

    spans: tuple[tuple[int, str], ...]
    lines: tuple[tuple[str, str | None], ...]


class Order(Edge):
    """The transform :func:`order` returns: call it on a request."""

    def __init__(
        self,
        *,
        sort_tools: bool,
        canonical_inputs: bool,
        patterns: tuple[re.Pattern[str], ...],
        stable: tuple[Pin, ...],
        dynamic: tuple[Pin, ...],
        seen: SystemLines | None,
        tools: ToolChanges | None,
        name: str,
    ) -> None:
        self.sort_tools = sort_tools
        self.canonical_inputs = canonical_inputs
        self.patterns = patterns
        self.stable = stable
        self.dynamic = dynamic
        self.seen = seen
        self.tools = tools
        self.name = name
        self._labels = tuple(_label(p) for p in patterns)
        self._pattern_key = tuple((p.pattern, p.flags) for p in patterns)

    def __repr__(self) -> str:
        return self.name

    def apply(self, request: Request) -> Request:
        return self._apply(request, record=True)[0]

    def describe(self, before: Request, after: Request) -> str:
        """One line for :func:`tidyctx.explain`: what was sorted and what was moved."""
        stats = self._apply(before, record=False)[1]
        parts: list[str] = []
        if stats.tools:
            if stats.tools_reordered:
                parts.append(f"sorted {stats.tools} tools")
            elif stats.tools_rewritten:
                parts.append(f"sorted the keys of {stats.tools} tools")
            else:
                parts.append(f"{stats.tools} tools already in order")
        if stats.inputs:
            parts.append(f"sorted the keys of {stats.inputs} tool inputs")
        moved: list[str] = []
        if stats.lines:
            n = len(stats.lines)
            labels = ", ".join(dict.fromkeys(stats.lines))
            moved.append(f"{n} volatile system line{'s' if n != 1 else ''} ({labels})")
        if stats.spans:
            moved.append(f"{stats.spans} marked span{'s' if stats.spans != 1 else ''}")
        if stats.blocks:
            moved.append(f"{stats.blocks} pinned block{'s' if stats.blocks != 1 else ''}")
        if moved:
            what = moved[0] if len(moved) == 1 else ", ".join(moved[:-1]) + " and " + moved[-1]
            parts.append(f"moved {what} after the cached prefix")
        elif stats.already:
            parts.append("system already ordered (the last user message has the dynamic block)")
        elif stats.held:
            parts.append(
                "system left as sent (the model checks the prefix of thinking blocks: moving a "
                "line would change an earlier message on the next turn)"
            )
        if stats.kept_lines:
            n = stats.kept_lines
            parts.append(
                f"kept {n} volatile-looking system line{'s' if n != 1 else ''} in place "
                "(unchanged in this conversation so far)"
            )
        parts += stats.markers
        if stats.tool_changes:
            parts.insert(0, stats.tool_changes)
        return "; ".join(parts) if parts else "nothing to reorder"

    # -- the work

    def _apply(self, request: Request, *, record: bool) -> tuple[Request, _Stats]:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            problem = "missing" if messages is None else "is empty"
            if messages is not None and not isinstance(messages, list):
                problem = f"must be a list, got {type(messages).__name__}"
            raise ValidationError(
                "messages",
                problem,
                "order() needs the conversation: volatile system lines go to the last user message",
            )
        # Tools are sorted by their canonical JSON, which needs UTF-8: name a lone surrogate.
        check_encodable(request)
        # The client's own form (strings stay strings, keys keep their order), copied where it
        # changes: a message, its content list and a block, before one of them is edited.
        out = dict(request)
        out["messages"] = list(messages)
        stats = _Stats()
        keyed: Mapping[str, Any] = request
        if self.tools is not None:
            from tidyctx.transforms._toolchanges import insert_changes

            # Before sorting: the memory compares the tools as the client sent them.
            rewrite = self.tools.rewrite(request, record=record)
            if rewrite.tools is not None:
                if rewrite.tools:
                    out["tools"] = rewrite.tools
                else:  # the first request had none: every tool since came inline
                    out.pop("tools", None)
                out["messages"] = insert_changes(messages, rewrite.inserts)
                n = len(rewrite.inserts)
                stats.tool_changes = (
                    f"kept the first tools, {n} tool change message{'s' if n != 1 else ''} "
                    "in the messages" + (f" ({rewrite.note})" if rewrite.note else "")
                )
                # The system prompt's memory knows the conversation by its first tools.
                keyed = {**request, "tools": rewrite.tools}
        if self.sort_tools and isinstance(out.get("tools"), list) and out["tools"]:
            out["tools"] = self._order_tools(out["tools"], stats)
        if self.canonical_inputs:
            self._canonical_inputs(out["messages"], stats)
        self._move_volatile(keyed, out, stats, record)
        return out, stats

    def _order_tools(self, tools: list[Any], stats: _Stats) -> list[Any]:
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise ValidationError(f"tools[{i}]", f"must be a dict, got {type(tool).__name__}")
        # A marker on the last tool means "cache the tools": it follows the end of the list.
        # A marker elsewhere was put on that tool on purpose and stays with it.
        last_marker = tools[-1].get("cache_control")
        items = [dict(t) for t in tools]
        if last_marker is not None:
            del items[-1]["cache_control"]
        keyed = sorted(
            enumerate(items),
            key=lambda it: (
                it[1]["name"] if isinstance(it[1].get("name"), str) else "",
                canonical_json({k: v for k, v in it[1].items() if k != "cache_control"}),
            ),
        )
        stats.tools = len(tools)
        stats.tools_reordered = [i for i, _ in keyed] != list(range(len(tools)))
        ordered = [t for _, t in keyed]
        if last_marker is not None:
            ordered[-1]["cache_control"] = _merge_marker(
                ordered[-1].get("cache_control"), last_marker
            )
        _fix_ttl_order(ordered)
        result = [_canonical(t) for t in ordered]
        stats.tools_rewritten = json.dumps(result) != json.dumps(tools)
        return result

    def _canonical_inputs(self, messages: list[Any], stats: _Stats) -> None:
        # Client tool calls only: a server tool's blocks are the API's own and go back as
        # they came.
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            copied: list[Any] | None = None
            for j, block in enumerate(content):
                # An input already canonical (the usual case, and every input on a later
                # turn) is left as it is, without building and serializing its canonical copy.
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_use"
                    and isinstance(block.get("input"), dict)
                    and not _is_canonical(block["input"])
                ):
                    stats.inputs += 1
                    if copied is None:
                        copied = list(content)
                        messages[i] = {**message, "content": copied}
                    copied[j] = {**block, "input": _canonical(block["input"])}

    def _move_volatile(
        self, request: Mapping[str, Any], out: Request, stats: _Stats, record: bool
    ) -> None:
        system = out.get("system")
        if system is None or (isinstance(system, str) and not system.strip()):
            return  # nothing to scan
        if runs_prefix_check(request.get("model")):
            # The moved text goes into the last user message, and the next turn's copy of that
            # message goes without it: an earlier message changes, and on these models every
            # thinking block after it fails the prefix check (a 400 by default). A system the
            # client changes every turn fails it anyway, moved or not.
            # https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks
            stats.held = True
            return
        if isinstance(system, str):
            blocks: list[Any] = [{"type": "text", "text": system}]
        elif isinstance(system, list):
            blocks = system
        else:
            raise ValidationError(
                "system", f"must be a string or a list of text blocks, got {type(system).__name__}"
            )
        messages: list[Any] = out["messages"]
        last_user = next(
            (
                i
                for i in range(len(messages) - 1, -1, -1)
                if isinstance(messages[i], dict) and messages[i].get("role") == "user"
            ),
            None,
        )
        if last_user is not None:
            content = messages[last_user].get("content")
            if isinstance(content, list) and any(is_dynamic_block(b) for b in content):
                # Already ordered: what was volatile sits in that block and the system is what
                # order() left. Scanning again could only move what the caller pinned stable,
                # and integer pins would now name other blocks (order() drops the blocks it
                # empties), so the system is left as it is: order() is idempotent.
                stats.already = True
                return

        # First pass: what each block is (pinned stable, pinned dynamic, or scanned).
        plans: list[tuple[str, _Scan | None]] = []
        for i, block in enumerate(blocks):
            path = f"system[{i}]" if isinstance(system, list) else "system"
            if not isinstance(block, dict) or block.get("type") != "text":
                kind = block.get("type") if isinstance(block, dict) else type(block).__name__
                raise ValidationError(path, f"system blocks must be text blocks, got {kind!r}")
            text = block.get("text")
            if not isinstance(text, str):
                raise ValidationError(
                    f"{path}.text", f"must be a string, got {type(text).__name__}"
                )
            is_stable = _matches(self.stable, i, len(blocks), text)
            is_dynamic = _matches(self.dynamic, i, len(blocks), text)
            if is_stable and is_dynamic:
                raise ValueError(
                    f"{path} is pinned both stable (order(stable={list(self.stable)!r})) and "
                    f"dynamic (order(dynamic={list(self.dynamic)!r})); pin it one way"
                )
            if is_stable:
                plans.append(("stable", None))
            elif is_dynamic:
                plans.append(("dynamic", None))
            else:
                plans.append(("scan", self._scanned(path, text)))

        # Which volatile-looking lines move: all of them, or (with a memory of the
        # conversation) those whose text has changed since an earlier request.
        looks: list[tuple[Slot, str]] = []
        for i, (_, scan) in enumerate(plans):
            if scan is not None:
                rank = 0
                for line, label in scan.lines:
                    if label is not None and line.strip():
                        looks.append(((i, rank), line))
                        rank += 1
        if self.seen is None:
            moving = {slot for slot, _ in looks}
        else:
            key, shape = self.seen.key_of(request), _shape(plans)
            moving = self.seen.moves(key, shape, looks, record=record)
        stats.kept_lines = len(looks) - len(moving)

        kept: list[dict[str, Any]] = []
        items: list[_Item] = []
        changed = False
        orphan_marker: Any = None
        for i, (block, (kind, scan)) in enumerate(zip(blocks, plans, strict=True)):
            path = f"system[{i}]" if isinstance(system, list) else "system"
            text = block["text"]
            if kind == "stable":
                kept.append(block)
                continue
            if kind == "dynamic":
                whole = text.replace(DYNAMIC_OPEN, "").replace(DYNAMIC_CLOSE, "").strip()
                found = [_Item(whole, "block", "pinned")] if whole else []
                rest = ""
            else:
                assert scan is not None
                rest, found = _split(scan, i, moving)
                if not found and rest == text:
                    kept.append(block)
                    continue
            items += found
            changed = True
            if rest.strip():
                # Lost some lines: the block stays, with its cache_control if it had one.
                kept.append({**block, "text": rest})
                continue
            marker = block.get("cache_control")
            if marker is not None:
                # The whole marked block moved. The caller's breakpoint meant "cache up to
                # here": put it on the previous system block, which ends the stable part of
                # the system (with no system block left before it, on the last tool).
                if kept:
                    kept[-1] = {
                        **kept[-1],
                        "cache_control": _merge_marker(kept[-1].get("cache_control"), marker),
                    }
                    stats.markers.append(f"moved the cache_control of {path} to the block before")
                else:
                    orphan_marker = _merge_marker(orphan_marker, marker)

        if not changed:
            return
        if orphan_marker is not None:
            tools = out.get("tools")
            if isinstance(tools, list) and tools and isinstance(tools[-1], dict):
                last = dict(tools[-1])
                last["cache_control"] = _merge_marker(last.get("cache_control"), orphan_marker)
                out["tools"] = [*tools[:-1], _canonical(last) if self.sort_tools else last]
                stats.markers.append("moved a system cache_control to the last tool")
            else:
                stats.markers.append(
                    "dropped a system cache_control: nothing stable was left before it"
                )
        if not kept:
            del out["system"]
        elif isinstance(system, str):
            out["system"] = kept[0]["text"]  # a string stays a string
        else:
            out["system"] = kept
        for item in items:
            if item.kind == "line":
                stats.lines.append(item.label)
            elif item.kind == "span":
                stats.spans += 1
            else:
                stats.blocks += 1
        if not items:
            return
        if last_user is None:
            raise ValidationError(
                "messages",
                "has no user message to carry the volatile system text",
                "Add a user message, or pin the system blocks with order(stable=[...])",
            )
        message = messages[last_user]
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}] if content else []
        if not isinstance(content, list):
            raise ValidationError(
                f"messages[{last_user}].content",
                f"must be a string or a list of blocks, got {type(content).__name__}",
            )
        # Appended last: after any tool_result blocks, which must come first (TU).
        messages[last_user] = {
            **message,
            "content": [*content, _dynamic_block([item.text for item in items])],
        }

    def _scanned(self, path: str, text: str) -> _Scan:
        """:meth:`_scan`, remembered by the text and the patterns: the system prompt is the
        same on every turn, and matching each line against every pattern costs more than the
        rest of order() together."""
        return memoized(
            "order-scan",
            (self._pattern_key, text),
            lambda: self._scan(path, text),
            lambda scan: 2 * len(text) + 16 * len(scan.lines),
        )

    def _scan(self, path: str, text: str) -> _Scan:
        """Split one system text into its ``<dynamic>`` spans and labelled lines.

        Linear in the text: each tag is looked for once, from where the last one ended.
        """
        spans: list[tuple[int, str]] = []
        pieces: list[str] = []
        pos = length = 0
        while (start := text.find(DYNAMIC_OPEN, pos)) != -1:
            end = text.find(DYNAMIC_CLOSE, start + len(DYNAMIC_OPEN))
            if end == -1:
                break  # no span closes after here: the open tag is reported below
            pieces.append(text[pos:start])
            length += start - pos
            inner = text[start + len(DYNAMIC_OPEN) : end].strip()
            if inner:
                spans.append((length, inner))
            pos = end + len(DYNAMIC_CLOSE)
        pieces.append(text[pos:])
        rest = "".join(pieces)
        for tag in (DYNAMIC_OPEN, DYNAMIC_CLOSE):
            if tag in rest:
                raise ValidationError(
                    path,
                    f"unbalanced {tag} tag: every {DYNAMIC_OPEN} needs a {DYNAMIC_CLOSE} after it",
                    "Close the span, or pin the block with order(stable=[...]) to keep it verbatim",
                )
        return _Scan(tuple(spans), tuple((line, self._match(line)) for line in rest.split("\n")))

    def _match(self, line: str) -> str | None:
        if not line.strip():
            return None  # a blank line is never volatile: it stays, whitespace and all
        for pattern, label in zip(self.patterns, self._labels, strict=True):
            if pattern.search(line):
                return label
        return None


def _split(scan: _Scan, block: int, moving: set[Slot]) -> tuple[str, list[_Item]]:
    """What stays of one scanned system text, and what moves (spans, and the volatile-looking
    lines in ``moving``), in text order."""
    found: list[tuple[int, int, _Item]] = [
        (offset, 0, _Item(inner, "span", "marked")) for offset, inner in scan.spans
    ]
    kept: list[str] = []
    offset = rank = 0
    for line, label in scan.lines:
        if label is None:
            kept.append(line)
        else:
            if (block, rank) in moving:
                found.append((offset, 1, _Item(line.strip(), "line", label)))
            else:
                kept.append(line)
            rank += 1
        offset += len(line) + 1
    found.sort(key=lambda f: (f[0], f[1]))
    return "\n".join(kept), [item for _, _, item in found]


def order(
    *,
    sort_tools: bool = True,
    canonical_inputs: bool = True,
    patterns: Iterable[str | re.Pattern[str]] | str | re.Pattern[str] = (),
    default_patterns: bool = True,
    stable: Iterable[Pin] | Pin | None = None,
    dynamic: Iterable[Pin] | Pin | None = None,
    seen: SystemLines | None = None,
    tools: ToolChanges | None = None,
) -> Order:
    """Stable-prefix ordering: a transform that makes tools and system byte-stable.

    - ``sort_tools``: sort the tools by name and sort the keys of each definition recursively
      (``input_schema`` included; this changes the order in which the model reads a schema's
      properties). A ``cache_control`` on the last tool moves to the new last tool; one on
      another tool stays on it. ``False`` leaves the tools exactly as given.
    - ``canonical_inputs``: sort the keys of every tool_use ``input`` in the messages.
    - ``patterns``: more regexes (strings or compiled) marking a system line as volatile;
      ``default_patterns=False`` uses only these instead of :data:`DEFAULT_PATTERNS`. A
      pattern's first named group labels its matches in ``describe()``.
    - ``stable`` / ``dynamic``: system blocks to pin, by index (``0``, ``-1``) or by a
      substring of their text. A ``stable`` block is kept verbatim, never scanned; a
      ``dynamic`` block is moved whole.
    - ``seen``: a :class:`SystemLines`, the memory of the conversation that a wrapper or proxy
      keeps across requests. With it a volatile-looking line moves only once its text has
      changed between two requests of the same conversation; without it (the default, a pure
      transform) every volatile-looking line moves.
    - ``tools``: a :class:`~tidyctx.ToolChanges`, the memory of each conversation's first
      tools. With it a request that drops tools, or restores tools of the first list, keeps
      the first ``tools`` and says the change in a ``role: "system"`` message of
      ``tool_removal`` / ``tool_addition`` blocks at the place it was first seen, so the
      cached prefix survives the change; the request then needs the betas
      :func:`~tidyctx.required_betas` names. Without it the tools go as sent.

    A whole line of a system text block is volatile if a pattern matches in it; text between
    :data:`DYNAMIC_OPEN` and :data:`DYNAMIC_CLOSE` is volatile as a span. Volatile text goes,
    in order, into one block ``<system-context>\\n...\\n</system-context>`` appended to the
    last user message; a block left empty is dropped (its ``cache_control`` goes to the
    previous system block), and an empty system is removed. A request whose last user message
    already holds that block has been ordered: its system is left as it is.

    >>> t = order(patterns=["(?P<build>build [0-9]+)"], stable=["Rules"])
    >>> t.name
    "order(patterns=['(?P<build>build [0-9]+)'], stable=['Rules'])"
    >>> req = {"system": [{"type": "text", "text": "Rules: reply by 2026-12-01."},
    ...                   {"type": "text", "text": "Deployed build 812."}],
    ...        "messages": [{"role": "user", "content": "status?"}]}
    >>> out = t(req)
    >>> [b["text"] for b in out["system"]], out["messages"][0]["content"][1]["text"]
    (['Rules: reply by 2026-12-01.'], '<system-context>\\nDeployed build 812.\\n</system-context>')
    >>> t.describe(req, out)
    'moved 1 volatile system line (build) after the cached prefix'
    >>> order(patterns=["(unclosed"])
    Traceback (most recent call last):
    ...
    ValueError: order(patterns=...): invalid regular expression '(unclosed': ...
    """
    given = [patterns] if isinstance(patterns, str | re.Pattern) else list(patterns)
    compiled = tuple(_compile(p) for p in given)
    stable_pins = _pins("stable", stable)
    dynamic_pins = _pins("dynamic", dynamic)
    options: list[str] = []
    if not sort_tools:
        options.append("sort_tools=False")
    if not canonical_inputs:
        options.append("canonical_inputs=False")
    if compiled:
        options.append(f"patterns={[p.pattern for p in compiled]!r}")
    if not default_patterns:
        options.append("default_patterns=False")
    if stable_pins:
        options.append(f"stable={list(stable_pins)!r}")
    if dynamic_pins:
        options.append(f"dynamic={list(dynamic_pins)!r}")
    if seen is not None:
        if not isinstance(seen, SystemLines):
            raise TypeError(
                f"order(seen=...) takes a tidyctx.SystemLines, got {type(seen).__name__}"
            )
        options.append(f"seen={seen!r}")
    if tools is not None:
        from tidyctx.transforms._toolchanges import ToolChanges

        if not isinstance(tools, ToolChanges):
            raise TypeError(
                f"order(tools=...) takes a tidyctx.ToolChanges, got {type(tools).__name__}"
            )
        options.append(f"tools={tools!r}")
    return Order(
        sort_tools=sort_tools,
        canonical_inputs=canonical_inputs,
        patterns=(DEFAULT_PATTERNS if default_patterns else ()) + compiled,
        stable=stable_pins,
        dynamic=dynamic_pins,
        seen=seen,
        tools=tools,
        name=f"order({', '.join(options)})",
    )
