"""Missed parallelism: the calls of a recorded run that could have joined the call before.

Claude may make several tool calls in one turn
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/parallel-tool-use). A run that
makes one lookup per turn when the lookups do not depend on each other pays an extra API
call per lookup, and each call re-reads the whole context. :func:`missed_parallelism` finds
those calls in a :class:`~tidyctx.traces.Run` and prices them.

**Which calls count.** Call *k* (an API call, one assistant turn) could have joined call
*k-1* when all of these hold:

1. both turns made exactly one tool call (a turn with several already ran them together; a
   turn with none ended the chain);
2. both tools are read-only (:func:`read_only`): a lookup changes nothing, so it may run
   beside another lookup in any order;
3. the user message between them holds the tool result only (Claude Code's
   ``<system-reminder>`` text aside): no person spoke in between;
4. call *k*'s input takes nothing from the result of call *k-1*: no word or path of 6
   characters or more that first appeared in the conversation in that result (not in the
   system prompt, the earlier messages or the call's own input) appears in call *k*'s input,
   and no number in call *k*'s input lies within 10 of a number of 10 or more that first
   appeared in that result (line numbers: a grep answers ``131:class DatetimeIndex``, the
   next call views lines 130 to 150).

A chain of such calls could all have been one turn: call *k+1* joins the same turn if it
takes nothing from the results of any call in the chain. The rule reads text, not intent: a
call that the previous result made the model choose without quoting it (a test failed, so
it reads the test) is counted as independent, and a call that happens to repeat a new word
of the result is not. Tool names and commands outside the lists below are not read-only, so
the count leans low.

**Read-only** (:func:`read_only`), by the tool's name and input:

- a shell tool (``Bash``, ``bash``, ``execute_bash``, ``terminal``, ``shell``,
  ``run_command``...) whose ``command`` is one or more simple commands joined by ``&&``,
  ``||``, ``;`` or ``|``, each a program of :data:`READ_ONLY_COMMANDS` (``cat``, ``ls``,
  ``grep``, ``find``, ``head``, ``git log``...; ``xargs`` running one of them), with no
  output redirection other than to ``/dev/null`` or ``2>&1``, no command substitution, no
  ``-exec``/``-delete`` (``find``) and no ``-i`` (``sed``);
- a text editor tool (its name holds ``editor`` or ``edit_tool``: ``str_replace_editor``,
  ``str_replace_based_edit_tool``) called with ``command: "view"``;
- any other tool whose name, split into words (``WebSearch`` → web, search;
  ``snowflake-read_query`` → snowflake, read, query), holds a word of :data:`READ_WORDS`
  (read, get, list, search, grep, glob, ls, view, fetch, describe...) and none of
  :data:`WRITE_WORDS` (write, create, update, delete, send, run, execute, navigate...).

**What a missed call cost.** Merged into the call before, the extra call's whole input is
not sent again: its input as billed (recorded usage where the run has it; else simulated on
:mod:`tidyctx.cachesim`, with automatic caching where the request has no
``cache_control`` of its own, so the re-read is priced as a cache read, the least it could
cost). Its output is written anyway except the tool call itself, which the merged turn
writes too: the output counted is the call's output less its ``tool_use`` block. Prices are
:mod:`tidyctx.pricing`'s for the run's model (``claude-sonnet-4-6`` for a model with none).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidyctx import cachesim, pricing
from tidyctx._request import cache_markers
from tidyctx.tokens import LocalCounter
from tidyctx.traces import Run

__all__ = [
    "MIN_SHARED",
    "NEAR_LINES",
    "READ_ONLY_COMMANDS",
    "READ_WORDS",
    "WRITE_WORDS",
    "MissedCall",
    "MissedParallelism",
    "describe",
    "missed_parallelism",
    "read_only",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


MIN_SHARED = 6
"""The shortest word or path that, taken from a result into the next call's input, makes
the call depend on the result."""

NEAR_LINES = 10
"""A number in a call's input within this distance of a number (10 or more) that first
appeared in the previous result makes the call depend on it: a grep answers
``131:class DatetimeIndex`` and the next call views lines 130 to 150."""

READ_WORDS = _words(
    "read get list ls search find grep glob view show describe fetch lookup query info "
    "inspect peek cat head tail stat count"
)
"""Words of a tool's name that make it a lookup (when no word of :data:`WRITE_WORDS` is
there)."""

WRITE_WORDS = _words(
    "write create update delete remove send set put post edit insert upload enroll rename "
    "move run execute exec submit apply navigate click type press select fill drop add "
    "modify patch replace cancel book pay transfer commit push deploy install kill start "
    "stop reset save copy evaluate todo think task"
)
"""Words of a tool's name that make it not read-only, whatever else it says."""

READ_ONLY_COMMANDS = _words(
    "cat head tail less more ls tree find grep egrep fgrep rg ag ack wc sort uniq cut nl "
    "file stat du df pwd echo printf which whereis type realpath readlink dirname "
    "basename jq diff cmp sed awk date uname whoami id hostname env printenv true cd "
    "column tr sha256sum md5sum od xxd strings"
)
"""Programs a read-only shell command may run (``git`` only with :data:`_GIT_READS`)."""

_GIT_READS = _words(
    "status log show diff grep ls-files ls-tree blame rev-parse describe shortlog "
    "cat-file branch tag remote config"
)
_GIT_LISTS = _words("branch tag remote config")
_SHELL_TOOLS = _words(
    "bash execute_bash terminal shell run_command terminal-run_command run_shell_command "
    "exec_command local-run_command"
)
_SEGMENTS = re.compile(r"&&|\|\||[;|\n]")
_SAFE_REDIRECT = re.compile(r"\d?>\s*/dev/null|\d?>&\d")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# A word or a path of MIN_SHARED characters or more (letters, digits, _, and inside . / -).
_TOKENS = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_./-]*[A-Za-z0-9_])?")
_REMINDER = "<system-reminder>"
_BLOCKS = frozenset({"text", "tool_use", "tool_result", "server_tool_use", "mcp_tool_use"})
# A whole number of 2 to 9 digits, not part of a word, a version or a decimal.
_NUMBERS = re.compile(r"(?<![\w.])\d{2,9}(?![\w.]|\.\d)")


def _name_words(name: str) -> set[str]:
    return {w.lower() for w in _WORDS.findall(name)}


def _shell_read_only(command: str) -> bool:
    if "$(" in command or "`" in command or "<<" in command:
        return False
    if ">" in _SAFE_REDIRECT.sub("", command):
        return False
    return all(_segment_read_only(segment) for segment in _SEGMENTS.split(command))


def _segment_read_only(segment: str) -> bool:
    words = segment.split()
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return True
    program, args = words[0].rsplit("/", 1)[-1], words[1:]
    if program == "xargs":  # runs the program after its options on what it reads
        rest = list(args)
        while rest and rest[0].startswith("-"):
            rest = rest[1:]
        return bool(rest) and _segment_read_only(" ".join(rest))
    if program == "git":
        rest = [a for a in args if not a.startswith("-")]
        if not rest or rest[0] not in _GIT_READS:
            return False
        # "git branch NAME", "git tag NAME", "git config KEY VALUE" write.
        return rest[0] not in _GIT_LISTS or len(rest) == 1
    if program not in READ_ONLY_COMMANDS:
        return False
    if program == "find":
        return not any(a in ("-exec", "-execdir", "-delete", "-ok", "-fprint") for a in args)
    if program == "sed":
        return not any(a.startswith("-i") or a == "--in-place" for a in args)
    return not (program == "awk" and "system(" in segment)


def read_only(name: str, arguments: Mapping[str, Any]) -> bool:
    """Is a call of tool ``name`` with ``arguments`` a lookup that changes nothing (see the
    module documentation for the lists)?"""
    lowered = name.lower()
    if lowered in _SHELL_TOOLS:
        command = arguments.get("command")
        return isinstance(command, str) and _shell_read_only(command)
    if "editor" in lowered or "edit_tool" in lowered:
        return arguments.get("command") == "view"
    words = _name_words(name)
    return bool(words & READ_WORDS) and not words & WRITE_WORDS


def _tokens(text: str) -> set[str]:
    found = set()
    for token in _TOKENS.findall(text):
        if len(token) >= MIN_SHARED:
            found.add(token)
        # The parts of a path or dotted name count on their own ("numbers" of "core/numbers.py").
        if "/" in token or "." in token or "-" in token:
            found.update(p for p in re.split(r"[./-]", token) if len(p) >= MIN_SHARED)
    return found


def _text_of(value: Any) -> Iterable[str]:
    """Every string (and number) in a JSON value, keys aside, and the texts of blocks."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float):
            yield str(item)
        elif isinstance(item, Mapping):
            kind = item.get("type")
            if kind in ("image", "document") and "source" in item:
                continue
            # A block's own type and ids are not what it says; a tool input's "id" is.
            skip = ("type", "id", "tool_use_id") if kind in _BLOCKS else ()
            stack.extend(v for k, v in item.items() if k not in skip)
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _scan(value: Any) -> tuple[set[str], set[int]]:
    """The words (:func:`_tokens`) and the whole numbers in a JSON value."""
    words: set[str] = set()
    numbers: set[int] = set()
    for text in _text_of(value):
        words |= _tokens(text)
        numbers.update(int(n) for n in _NUMBERS.findall(text))
    return words, numbers


class _Known:
    """The words and numbers seen in a conversation so far."""

    __slots__ = ("numbers", "words")

    def __init__(self) -> None:
        self.words: set[str] = set()
        self.numbers: set[int] = set()

    def add(self, value: Any) -> None:
        words, numbers = _scan(value)
        self.words |= words
        self.numbers |= numbers


def _near(wanted: set[int], numbers: list[int]) -> bool:
    """Is a number of ``wanted`` within :data:`NEAR_LINES` of one of ``numbers`` (sorted)?"""
    for n in wanted:
        i = bisect.bisect_left(numbers, n - NEAR_LINES)
        if i < len(numbers) and numbers[i] <= n + NEAR_LINES:
            return True
    return False


@dataclass(frozen=True, slots=True)
class MissedCall:
    """An API call that could have joined the call before it."""

    call: int
    """The call's number in the run, from 1."""
    joins: int
    """The number of the call whose turn it could have joined (the chain's first)."""
    tool: str
    summary: str
    """The tool call, short: its name and input."""
    input_tokens: int
    output_tokens: int
    """The call's output less its tool_use block."""
    input_cost: float
    output_cost: float

    @property
    def cost(self) -> float:
        return self.input_cost + self.output_cost


@dataclass(frozen=True, slots=True)
class MissedParallelism:
    """What :func:`missed_parallelism` found in one run."""

    run: str
    model: str
    """The model the costs are priced on."""
    calls: int
    """API calls in the run."""
    single_lookups: int
    """Calls that made exactly one read-only tool call."""
    run_cost: float
    """The whole run's cost (recorded usage where there is some, else simulated)."""
    missed: tuple[MissedCall, ...] = field(default=())

    @property
    def cost(self) -> float:
        return sum(m.cost for m in self.missed)

    @property
    def input_tokens(self) -> int:
        return sum(m.input_tokens for m in self.missed)

    @property
    def share(self) -> float:
        """The missed calls' cost as a share of the run's."""
        return self.cost / self.run_cost if self.run_cost else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "model": self.model,
            "calls": self.calls,
            "single_lookups": self.single_lookups,
            "missed_calls": len(self.missed),
            "missed_input_tokens": self.input_tokens,
            "missed_cost": round(self.cost, 6),
            "run_cost": round(self.run_cost, 6),
            "missed": [
                {
                    "call": m.call,
                    "joins": m.joins,
                    "tool": m.tool,
                    "summary": m.summary,
                    "input_tokens": m.input_tokens,
                    "output_tokens": m.output_tokens,
                    "cost": round(m.cost, 6),
                }
                for m in self.missed
            ],
        }


def _one_call(reply: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The reply's only tool_use block, or None (no reply, none, or several)."""
    content = reply.get("content") if isinstance(reply, Mapping) else None
    if not isinstance(content, list):
        return None
    calls = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
    return calls[0] if len(calls) == 1 else None


def _result_only(message: Any, call_id: str) -> Any:
    """The content of the result of ``call_id`` when ``message`` holds that result and nothing
    a person wrote; else None."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list) or message.get("role") != "user":
        return None
    found = None
    for block in content:
        if not isinstance(block, Mapping):
            return None
        if block.get("type") == "tool_result" and block.get("tool_use_id") == call_id:
            found = block
        elif block.get("type") == "text" and str(block.get("text", "")).lstrip().startswith(
            _REMINDER
        ):
            continue
        else:
            return None
    return found


def _input(call: Mapping[str, Any]) -> Mapping[str, Any]:
    arg = call.get("input")
    return arg if isinstance(arg, Mapping) else {}


def _summary(call: Mapping[str, Any]) -> str:
    arg = call.get("input")
    text = json.dumps(arg, ensure_ascii=False, sort_keys=True) if arg is not None else ""
    text = " ".join(text.split())
    return f"{call.get('name')} {text[:100]}{'…' if len(text) > 100 else ''}"


def _usage(run: Run, price: pricing.ModelPrice, counter: LocalCounter) -> list[dict[str, Any]]:
    """Per call, the usage as recorded, or simulated (automatic caching where the request has
    no marker of its own) for calls the run did not record."""
    if all(t.usage for t in run.turns):
        return [pricing.usage_dict(t.usage) for t in run.turns]
    requests = [
        {**t.request, "model": price.model}
        if cache_markers(t.request)
        else {**t.request, "model": price.model, "cache_control": {"type": "ephemeral"}}
        for t in run.turns
    ]
    cache = cachesim.CacheModel(model=price.model, counter=counter)
    out = []
    for turn, request in zip(run.turns, requests, strict=True):
        simulated = cache.call(request, turn.ts).usage
        if turn.usage:
            out.append(pricing.usage_dict(turn.usage))
            continue
        reply = turn.reply or {"role": "assistant", "content": []}
        simulated["output_tokens"] = counter.count_request({"messages": [reply]})
        out.append(pricing.usage_dict(simulated))
    return out


def _call_tokens(counter: LocalCounter, call: Mapping[str, Any]) -> int:
    blocks = counter.count_blocks({"messages": [{"role": "assistant", "content": [call]}]})
    return sum(n for _, n in blocks)


def missed_parallelism(run: Run, *, model: str | None = None) -> MissedParallelism:
    """The calls of ``run`` that could have joined the call before them, and their cost,
    priced on ``model`` (default: the run's; ``claude-sonnet-4-6`` when it has no price).
    See the module documentation for the rules."""
    try:
        price = pricing.lookup(model or run.model)
    except pricing.UnknownModelError:
        if model:
            raise
        price = pricing.lookup("claude-sonnet-4-6")
    counter = LocalCounter(price.model)
    usages = _usage(run, price, counter)
    run_cost = sum(pricing.cost(u, price).total for u in usages)
    turns = run.turns
    missed: list[MissedCall] = []
    singles = 0
    known = _Known()  # the words and numbers of the conversation so far
    seen_messages: Sequence[Any] = ()
    chain_start = -1  # the first call of the current chain, or -1
    chain_new: set[str] = set()  # the words the chain's results brought in
    chain_numbers: list[int] = []  # the numbers they brought in, sorted
    for k, turn in enumerate(turns):
        messages = turn.request.get("messages")
        messages = messages if isinstance(messages, list) else []
        grew = len(messages) >= len(seen_messages) and all(
            a is b or a == b
            for a, b in zip(seen_messages[-1:], messages[len(seen_messages) - 1 :], strict=False)
        )
        start = len(seen_messages)
        if not grew or k == 0:
            known, start = _Known(), 0
            known.add(turn.request.get("system"))
            known.add(turn.request.get("tools"))
        for message in messages[start:]:
            known.add(message.get("content") if isinstance(message, Mapping) else None)
        seen_messages = messages
        call = _one_call(turn.reply)
        if call is None or not read_only(str(call.get("name", "")), _input(call)):
            chain_start, chain_new, chain_numbers = -1, set(), []
            continue
        singles += 1
        # Does this call follow the chain: the message before it is the previous call's
        # result only, and its input takes no new word from the chain's results?
        follows = False
        if chain_start >= 0 and messages:
            previous = _one_call(turns[k - 1].reply)
            between = messages[-1]
            if previous is not None and _result_only(between, str(previous.get("id"))) is not None:
                words, numbers = _scan(call.get("input"))
                follows = not (words & chain_new) and not _near(numbers, chain_numbers)
        if follows:
            usage = usages[k]
            billed = pricing.cost({**usage, "output_tokens": 0}, price)
            extra = max(usage["output_tokens"] - _call_tokens(counter, call), 0)
            missed.append(
                MissedCall(
                    call=k + 1,
                    joins=chain_start + 1,
                    tool=str(call.get("name")),
                    summary=_summary(call),
                    input_tokens=usage["input_tokens"]
                    + usage["cache_creation_input_tokens"]
                    + usage["cache_read_input_tokens"],
                    output_tokens=extra,
                    input_cost=billed.total,
                    output_cost=pricing.cost({"output_tokens": extra}, price).total,
                )
            )
        else:
            chain_start, chain_new, chain_numbers = k, set(), []
        # The words this call's result brings in: found in the next request, after the reply.
        known.add(call.get("input"))
        if k + 1 < len(turns):
            following = turns[k + 1].request.get("messages")
            if isinstance(following, list) and len(following) > len(messages) + 1:
                result = _result_only(following[len(messages) + 1], str(call.get("id")))
                if result is not None:
                    words, numbers = _scan(result.get("content"))
                    chain_new |= words - known.words
                    found = {n for n in numbers - known.numbers if n >= 10}
                    chain_numbers = sorted({*chain_numbers, *found})
    return MissedParallelism(
        run=run.id,
        model=price.model,
        calls=len(turns),
        single_lookups=singles,
        run_cost=run_cost,
        missed=tuple(missed),
    )


def describe(found: MissedParallelism, *, limit: int = 8) -> list[str]:
    """The report's lines on ``found``: the total, then the first ``limit`` missed calls."""
    n = len(found.missed)
    head = (
        f"Missed parallelism: {n} of {found.calls} calls made one read-only tool call that "
        "took nothing from the previous result and could have joined the call before"
    )
    if not n:
        return [
            f"{head}: none ({found.single_lookups} calls made a single lookup; each depended "
            "on the one before, or followed a call that was not a lookup)."
        ]
    lines = [
        f"{head}. Those {n} extra round trips re-read {found.input_tokens:,} input tokens: "
        f"${found.cost:.4f} on {found.model}, {100 * found.share:.1f}% of the run's "
        f"${found.run_cost:.4f}.",
        f"{'call':>6} {'joins':>6} {'input':>9} {'cost $':>9}  tool call",
    ]
    for m in found.missed[:limit]:
        lines.append(f"{m.call:>6} {m.joins:>6} {m.input_tokens:>9,} {m.cost:>9.4f}  {m.summary}")
    if n > limit:
        lines.append(f"{'':>6} ... and {n - limit} more (--json lists them all)")
    return lines
