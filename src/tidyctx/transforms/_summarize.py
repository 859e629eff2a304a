"""summarize(): roll old turns into one summary written by a small model, in rare large steps.

Once a conversation is long, carrying every old turn costs more on each later call than a
summary of them does. :func:`summarize` returns a transform that, when the request passes
``trigger`` tokens, replaces the oldest messages by one user message holding a summary written
by ``summary_model`` (Haiku by default) through the ``anthropic`` client you pass, and keeps
the last ``keep`` assistant turns byte for byte.

**Where it cuts.** A *turn* is one assistant message and the user message that answers it
(one API call of the agent). A cut is made only

- before a user message that holds no ``tool_result`` (a new instruction from the user), or
- before an assistant message whose previous user message holds ``tool_result`` blocks (a
  step of a tool loop: its calls and their results are both in the summarized part).

So no ``tool_use`` is separated from its ``tool_result``, the history never starts with a
stray ``tool_result``, and the thinking blocks of the kept assistant turns (the last one
included) are passed back unmodified, except on the models that check the prefix of thinking
blocks (:data:`tidyctx.tokens.PRESERVED_THINKING_MODELS`): there the kept turns that were in the
history when the summary was put in place lose their thinking blocks, which were produced
against the replaced messages and would fail the check (see :func:`_build`). Agents that get
one task and then run a long tool loop have no user message to cut at; the second kind of cut
serves them. If no cut keeps
``keep`` turns, the request goes on unchanged.

**What it produces.** ``[summary message, (ack,) kept messages...]``: the summary message is a
user message with one text block that starts ``<tidyctx-summary v1 span=HASH>``; when the kept
part starts with a user message, a short assistant acknowledgement (:data:`ACK`) follows the
summary so roles alternate. System messages inside the summarized part (``role: "system"``,
with their tool additions and removals) are never summarized away: they follow the summary,
as sent and in their order. Every other request key is left as it is.

**Rolling, in large steps.** When the request (with the summary in place) passes the trigger
again, the current summary and the next span are summarized together, so the summary stays
bounded by ``target_tokens``. A step happens only if it replaces at least half of
``trigger`` (:data:`MIN_STEP`), so rewrites (which rewrite the cached prefix) stay rare.

**Only steps that pay back.** A step costs once: the summary call (the replaced tokens written
to the summary model's prompt cache, the summary at its output price) and the cache write of the
rewritten prefix (the summary and the kept turns, which the next turn would otherwise have read
from the cache at 0.1x). It saves the replaced tokens minus the summary, read from the cache, on
every later turn. If the one-off cost takes more than ``max_payback_turns`` later turns to pay
back, the step waits: the replaced span grows each turn while the kept turns stay about the same
size, so a later step costs less per token it saves. :func:`payback` is that estimate (the
5-minute cache prices of the request's ``model``; ``explain()`` reports the same arithmetic).
With a model that has no price (``tidyctx.pricing``) there is no gate.

**Memoized, prefix-stable.** Summaries are kept in ``store`` (a :class:`~tidyctx.store.Store`):
each summary call under the content hash of its input (the previous summary and the serialized
span, with the settings that change the answer: summary model, target, prompt version), and
each cut
under the hash of the history before it. On every call the transform looks for the longest
stored cut that is a prefix of the given history and reuses it, so as a conversation grows the
output of turn *n+1* starts with the same bytes as turn *n* until the trigger fires again.
Running it twice on the same input makes no second call and gives byte-identical output, and
``t(t(x)) == t(x)``. What a plan reads of the history (token totals, the hash chain, cut
points, validation) is kept per prefix in tidyctx's memo, so a turn reads only the messages
added since the last one, with the same result as a reading of all of them. A history that
already starts with a tidyctx summary (an agent that keeps the summarized history) works the
same way. The cut in use, and the records of its calls, are
renewed in the store on every call (:func:`~tidyctx.store.refresh`), so a store that evicts or
expires entries does not lose them while the conversation goes on. A summary stands for the
turns it replaces; unlike a cut, it does not keep them (their text is not in the store).

**Safe failure.** The SDK retries with backoff (``max_retries``); a call that still fails
(timeout, 429, 5xx, 529), an empty answer or one over :data:`OVERLONG` times ``target_tokens``
makes the transform warn (:class:`SummaryWarning`) and return the request without a new summary.
No turn is ever dropped without a summary. Store errors are not caught (see ``tidyctx.store``);
either way the calls already made (and paid for) reach ``on_summary`` (``complete=False``).

**Async.** ``pipe`` is synchronous. With ``anthropic.AsyncAnthropic`` use :func:`asummarize`
and await the step between the others::

    s = tc.asummarize(async_client)
    request = tc.pipe(request, tc.order(), tc.trim())
    request = await s.acall(request)
    request = tc.pipe(request, tc.cache())

Put summarize before ``cache()``, so that breakpoints are placed on the summarized request.

>>> s = summarize(None, server_side=True, trigger=100_000)
>>> s({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]})
... # doctest: +NORMALIZE_WHITESPACE
{'model': 'claude-sonnet-4-6', 'messages': [{'role': 'user', 'content': 'hi'}],
 'context_management': {'edits': [{'type': 'compact_20260112',
                                   'trigger': {'type': 'input_tokens', 'value': 100000}}]}}
>>> cut_points([{"role": "user", "content": "go"},
...             {"role": "assistant", "content": [
...                 {"type": "tool_use", "id": "t1", "name": "ls", "input": {}}]},
...             {"role": "user", "content": [
...                 {"type": "tool_result", "tool_use_id": "t1", "content": "a.py"}]},
...             {"role": "assistant", "content": "a.py is there."},
...             {"role": "user", "content": "Thanks. Now b.py?"}])
[3, 4]
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import inspect
import json
import math
import os
import re
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, overload

from tidyctx import pricing
from tidyctx._calls import aobserved, observed
from tidyctx._edge import Edge, shaped, start, transform_name
from tidyctx._memo import content_key, memoized, prefix_tokens, resume, shared_size, suspend
from tidyctx._request import (
    Head,
    Request,
    ValidationError,
    Validity,
    block_hash,
    cache_content,
    head_of,
    to_plain,
    too_deep,
    validate,
)
from tidyctx.store import MemoryStore, Store, refresh, store_key
from tidyctx.tokens import (
    MESSAGE_OVERHEAD,
    LocalCounter,
    TokenCounter,
    check_counter,
    keeps_prior_thinking,
    local_counter,
    message_tokens,
    opens_turn,
    runs_prefix_check,
)

__all__ = [
    "ACK",
    "COMPACTION_BETA",
    "COMPACT_EDIT",
    "DEFAULT_SUMMARY_MODEL",
    "DEFAULT_TARGET",
    "DEFAULT_TRIGGER",
    "MAX_PAYBACK_TURNS",
    "MIN_SERVER_TRIGGER",
    "SUMMARIZER_MARK",
    "Payback",
    "Summarize",
    "SummaryEvent",
    "SummaryWarning",
    "asummarize",
    "cut_points",
    "leading_summary",
    "payback",
    "serialize",
    "summarize",
    "summary_message",
]

DEFAULT_SUMMARY_MODEL = "claude-haiku-4-5"
PROMPT_VERSION = 1
"""Bump when the prompt or the serialization changes: stored summaries are keyed by it."""
SUMMARIZER_MARK = "tidyctx-summarizer v1"
"""In the summary call's system prompt; tidyctx.testing.LocalServer answers such calls."""
ACK = "Understood. I will continue from this summary."
"""The assistant message between the summary and a kept part that starts with a user turn."""
DEFAULT_TRIGGER = 30_000
"""Default ``trigger`` (client-side; server-side the default is :data:`MIN_SERVER_TRIGGER`).

Low enough that long runs are summarized early, when each later turn still pays back the step
(benchmarks/results/summarize_replay.txt: 60k saved 14 % on the runs over 60k tokens, 30k
25 %); the payback gate (:data:`MAX_PAYBACK_TURNS`), not the trigger, keeps out the steps
that would not pay."""
DEFAULT_TARGET = 3_000
"""Default ``target_tokens`` (at most a quarter of ``trigger``). Real compaction
summaries of coding agents' runs ran to a median 3.9k tokens (1.6k to 6.5k over 17,
benchmarks/summary_calibration.py); on the recorded runs 3k kept recall over 0.95 where 2k
did not, for about 1 % less saving."""
MIN_STEP = 0.5
"""A new summary must replace at least this share of ``trigger`` (rare, large steps)."""
MAX_PAYBACK_TURNS = 10
"""Default ``max_payback_turns``: a step must pay back within this many later turns.

However long the span, a step cannot pay back in fewer turns than the summary model's cache
write price over the request model's cache read price (the call reads the span once, the step
saves it once per turn): 4.2 turns for Haiku 4.5 summarizing for Sonnet 4.6 ($1.25 / $0.30),
6.25 for Sonnet 5 or Opus 5.5 ($0.20 reads). 10 leaves room above those floors, so the gate
holds back steps whose kept part is large for their span without ruling out summaries for any
of these models. (benchmarks/results/summarize_replay.txt compares 8, 10 and no gate.)"""
OVERLONG = 1.5
"""An answer over ``OVERLONG * target_tokens`` is refused; it is also the call's max_tokens."""
MAX_BLOCK_CHARS = 24_000
"""A text or tool result longer than this is shown to the summarizer as head and tail."""
MAX_CALL_TOKENS = 100_000
"""A span larger than this is summarized in several rolling calls (Haiku's context: 200k)."""
# Server-side compaction: https://platform.claude.com/docs/en/build-with-claude/compaction
COMPACT_EDIT = "compact_20260112"
"""Anthropic's server-side compaction edit."""
COMPACTION_BETA = "compact-2026-01-12"
"""The ``anthropic-beta`` header a request with :data:`COMPACT_EDIT` needs."""
MIN_SERVER_TRIGGER = 50_000
"""The smallest trigger the server accepts for :data:`COMPACT_EDIT`."""

_LOCKS = 64
_OPEN = "<tidyctx-summary v1 span="
_CLOSE = "</tidyctx-summary>"
_INTRO = (
    "The earlier part of this conversation was replaced by this summary (written by tidyctx). "
    "Treat it as your own notes of that work; the messages after it continue from there."
)
_SUMMARY = re.compile(
    re.escape(_OPEN)
    + r"(?P<span>[0-9a-f]{16})>\n"
    + re.escape(_INTRO)
    + r"\n\n(?P<body>.*)\n"
    + re.escape(_CLOSE)
    + r"\Z",
    re.DOTALL,
)

_SYSTEM = """\
You write the working notes of an AI agent ({mark}). The agent's context is full: the \
transcript below will be removed from it and replaced by your summary, and the agent will go \
on with its task from your summary and the messages that follow the transcript. Whatever you \
leave out is lost to it.

Write at most {target} tokens, in these sections (leave out a section that would be empty):

## Task
The user's goal and every requirement, constraint and preference they stated.
## State
What has been done and where the work stands; the step the agent was about to take next.
## Decisions
Decisions made, and why.
## Facts
What was learned that the agent may need again, copied exactly: file paths, function, class \
and variable names, ids, URLs, commands, numbers, versions, settings, error messages.
## Tried and failed
Approaches that did not work, and why, so that they are not tried again.
## Open questions
What is still unknown or unresolved.

Copy identifiers, paths, numbers and error messages exactly. Prefer facts to narration. \
Never invent anything. When a previous summary is given, merge it and the transcript into one \
summary (keep its facts unless the transcript supersedes them). Reply with the summary only."""


class SummaryWarning(UserWarning):
    """The summary call failed or its answer was unusable; the request went on unsummarized."""


@dataclass(frozen=True, slots=True)
class SummaryEvent:
    """What one summarizing step did; given to ``on_summary``."""

    span: str
    """The hash in the summary's header (``span=``): the hash of the last call's input."""
    messages: int
    """Messages of the given request the summary now stands for (from its start)."""
    span_tokens: int
    """Tokens of the messages this step replaced (the previous summary not included)."""
    summary_tokens: int
    summary_model: str
    """The model that wrote the summary."""
    calls: int
    """Calls made to the client (0: every answer came from the store)."""
    usage: tuple[dict[str, Any], ...]
    """The ``usage`` of each call made, as the API returned it."""
    complete: bool = True
    """False: the step made calls (paid for) but did not finish: a later call of it failed
    (:class:`SummaryWarning`) or the store raised. The request then went on without a new
    summary (or the store's error was raised); ``span`` is empty, ``summary_tokens`` 0, and
    ``messages`` the cut the step aimed at. Summing ``usage`` over every event gives what
    the summary calls cost."""


# ---------------------------------------------------------------------------- structure


def _content(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def _has_result(message: Any) -> bool:
    return any(isinstance(b, Mapping) and b.get("type") == "tool_result" for b in _content(message))


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, Mapping) else None


def cut_points(messages: Sequence[Any]) -> list[int]:
    """Indices ``k`` where ``messages[:k]`` may be replaced by a summary (see the module doc).

    ``k`` is a user message without tool_result blocks, or an assistant message right after a
    user message with tool_result blocks. Never 0, never the last message alone.
    """
    out: list[int] = []
    for k in range(1, len(messages)):
        role = _role(messages[k])
        new_instruction = role == "user" and not _has_result(messages[k])
        loop_step = (
            role == "assistant"
            and _role(messages[k - 1]) == "user"
            and _has_result(messages[k - 1])
        )
        if new_instruction or loop_step:
            out.append(k)
    return out


def summary_message(body: str, span: str) -> dict[str, Any]:
    """The user message that stands for the summarized messages.

    >>> summary_message("## Task\\nFix it.", "0123456789abcdef")["content"][0]["text"][:40]
    '<tidyctx-summary v1 span=0123456789abcde'
    """
    text = f"{_OPEN}{span}>\n{_INTRO}\n\n{body}\n{_CLOSE}"
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def _ack() -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": ACK}]}


def leading_summary(messages: Sequence[Any]) -> tuple[int, str | None, str | None]:
    """``(n, body, span)``: a tidyctx summary at the start of ``messages`` and its ack.

    ``n`` is how many messages it takes: the summary, the system messages kept with it and its
    ack; ``body`` and ``span`` are None when there is none. A ``cache_control`` marker on the
    summary block does not matter.
    """
    if not messages:
        return 0, None, None
    blocks = _content(messages[0])
    if _role(messages[0]) != "user" or len(blocks) != 1 or not isinstance(blocks[0], Mapping):
        return 0, None, None
    match = (
        _SUMMARY.match(str(blocks[0].get("text") or ""))
        if blocks[0].get("type") == "text"
        else None
    )
    if match is None:
        return 0, None, None
    # The system messages kept with the summary (see _build) follow it, before its ack.
    n = next((k for k in range(1, len(messages)) if _role(messages[k]) != "system"), 1)
    if n < len(messages) and _role(messages[n]) == "assistant":
        second = [cache_content(b) for b in _content(messages[n])]
        if second == [{"type": "text", "text": ACK}]:
            n += 1
    return n, match.group("body"), match.group("span")


# ---------------------------------------------------------------------------- serialization


def _cap(text: str, limit: int = MAX_BLOCK_CHARS) -> str:
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    left = len(text) - head - tail
    return f"{text[:head]}\n[... {left:,} characters left out ...]\n{text[-tail:]}"


def _inner_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text") or ""))
        elif block.get("type") == "image":
            parts.append("[image]")
        else:
            parts.append(f"[{block.get('type')}]")
    return "\n".join(parts)


def summary_blocks(previous: str | None, transcript: str) -> list[dict[str, Any]]:
    """The user content of a summary call: the earlier summary, if any, then the transcript
    (:func:`serialize`), each in its own tag."""
    blocks: list[dict[str, Any]] = []
    if previous is not None:
        text = f"<previous-summary>\n{previous}\n</previous-summary>"
        blocks.append({"type": "text", "text": text})
    blocks.append({"type": "text", "text": f"<transcript>\n{transcript}\n</transcript>"})
    return blocks


def serialize(messages: Sequence[Any]) -> str:
    """The messages as the summarizer reads them: roles, text, tool calls with their names and
    inputs, tool results, ``[image]`` placeholders. Thinking is left out (the model's private
    reasoning, often long); so are cache markers and signatures.

    >>> print(serialize([
    ...     {"role": "assistant", "content": [
    ...         {"type": "thinking", "thinking": "hmm", "signature": "s"},
    ...         {"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "a.py"}}]},
    ...     {"role": "user", "content": [
    ...         {"type": "tool_result", "tool_use_id": "t1", "content": "x = 1"}]}]))
    ### assistant
    [tool call read (t1)] {"path": "a.py"}
    <BLANKLINE>
    ### user
    [result of read (t1)]
    x = 1
    """
    return "\n\n".join(_parts(messages))


def _parts(messages: Sequence[Any]) -> list[str]:
    """One text per message that has any (see :func:`serialize`)."""
    names: dict[str, str] = {}
    parts: list[str] = []
    for message in messages:
        lines: list[str] = []
        for block in _content(message):
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind == "text":
                lines.append(_cap(str(block.get("text") or "")))
            elif kind in ("tool_use", "server_tool_use"):
                name, call = str(block.get("name")), str(block.get("id"))
                names[call] = name
                args = json.dumps(block.get("input"), ensure_ascii=False, sort_keys=True)
                lines.append(f"[tool call {name} ({call})] {_cap(args)}")
            elif kind == "tool_result":
                call = str(block.get("tool_use_id"))
                error = ", error" if block.get("is_error") else ""
                head = f"[result of {names.get(call, 'a tool')} ({call}){error}]"
                lines.append(f"{head}\n{_cap(_inner_text(block.get('content')))}")
            elif kind in ("thinking", "redacted_thinking"):
                continue
            elif kind == "image":
                lines.append("[image]")
            elif kind == "document":
                title = block.get("title")
                source = block.get("source")
                text = source.get("data") if isinstance(source, Mapping) else None
                if isinstance(source, Mapping) and source.get("type") == "text":
                    lines.append(f"[document {title or ''}]\n{_cap(str(text or ''))}")
                else:
                    lines.append(f"[document {title or ''}]")
            elif kind == "compaction" and isinstance(block.get("content"), str):
                lines.append(_cap(block["content"]))
            else:
                lines.append(f"[{kind}]")
        if lines:
            parts.append(f"### {_role(message)}\n" + "\n".join(lines))
    return parts


# ---------------------------------------------------------------------------- payback


@dataclass(frozen=True, slots=True)
class Payback:
    """What a summarizing step costs once and saves on every later turn, in USD."""

    call: float
    """The summary call."""
    write: float
    """The cache write of the rewritten prefix, less the cache read of the kept turns that the
    next turn would have paid anyway."""
    saving: float
    """Per later turn: the tokens the step removes, no longer read from the cache."""

    @property
    def cost(self) -> float:
        return self.call + self.write

    @property
    def turns(self) -> int | None:
        """Later turns until the saving covers the cost (at least 1); None: never."""
        if self.saving <= 0:
            return None
        return max(1, math.ceil(self.cost / self.saving))


def payback(
    model: str | None,
    summary_model: str,
    *,
    replaced: int,
    summary: int,
    kept: int,
    call: float | None = None,
) -> Payback | None:
    """The cost and saving of a step (None if either model has no price).

    ``replaced``: tokens of the messages the summary stands in for (a previous summary
    included); ``summary``: tokens of the summary; ``kept``: tokens of the messages after it.
    ``call``: the summary call's cost when known (its recorded usage); else it is estimated:
    the summary request is cached like any other (``cache()``), so the replaced tokens are
    written to the summary model's cache (5-minute price, when over its minimum cacheable
    length) and the summary is paid as output. Cache writes cost 1.25x the input price, reads
    0.1x (https://platform.claude.com/docs/en/about-claude/pricing); the actual rates come from
    ``tidyctx.pricing``. The
    rewrite is priced at the 5-minute write price: with 1-hour breakpoints it costs more.

    >>> p = payback("claude-sonnet-4-6", "claude-haiku-4-5",
    ...             replaced=50_000, summary=2_000, kept=8_000)
    >>> round(p.call, 4), round(p.write, 4), round(p.saving, 4), p.turns
    (0.0725, 0.0351, 0.0144, 8)
    """
    try:
        price = pricing.lookup(model or "")
        small = pricing.lookup(summary_model)
    except pricing.UnknownModelError:
        return None
    if call is None:
        rate = small.cache_write_5m if replaced >= small.min_cacheable else small.input
        call = (replaced * rate + summary * small.output) / 1e6
    write = ((summary + kept) * price.cache_write_5m - kept * price.cache_read) / 1e6
    saving = (replaced - summary) * price.cache_read / 1e6
    return Payback(call, write, saving)


def _costs(p: Payback, summary_model: str) -> str:
    return (
        f"costs ${p.cost:.4f} once (summary call on {summary_model} ${p.call:.4f} + cache "
        f"rewrite ${p.write:.4f}), saves ${p.saving:.4f} per later turn"
    )


# ---------------------------------------------------------------------------- the transform


def _message_hash(message: Any, key: Any = None) -> str:
    """Content hash of a message: markers left out, string content as a text block.
    Remembered by content (``key``: its :func:`~tidyctx._memo.content_key`, when known)."""
    if key is None:
        try:
            key = content_key(message)
        except TypeError:
            return _hash_message(message)
    return memoized(
        "message-hash", key, lambda: _hash_message(message), lambda _: shared_size(key) + 64
    )


def _hash_message(message: Any) -> str:
    if not isinstance(message, Mapping):
        return block_hash(message)
    return block_hash([message.get("role"), [cache_content(b) for b in _content(message)]])


def _link(previous: str, message_hash: str) -> str:
    """The chain's next hash (remembered: two short strings in, one out)."""
    return memoized(
        "chain", (previous, message_hash), lambda: block_hash([previous, message_hash]), 200
    )


_Part = tuple[int, int] | dict[str, Any]
"""A run of a request's messages, as seen by :class:`_Fold`: ``(a, b)`` for its
``messages[a:b]``, or one message of its own (a summary, an acknowledgement)."""


class _Fold:
    """What :meth:`Summarize._plan` reads of the messages, for ``messages[:n]``, built one
    message at a time: a turn extends the state the previous turn left in the memo
    (``resume``/``suspend`` under the token of the messages' content) by its new messages.

    Per prefix: the token counts at each counter factor (with and without the thinking blocks
    that earlier turns' counts leave out), where the current turn opens, the assistant
    messages, the hash chain the stored cuts are keyed by, the cut points, the system messages
    and whether the messages pass validation (:class:`~tidyctx._request.Validity`). Every
    value is a function of the messages' content only, so a resumed state gives what a fresh
    one would."""

    __slots__ = (
        "assistants",
        "bare",
        "chain",
        "cut_assistants",
        "cuts",
        "factors",
        "full",
        "opened",
        "previous",
        "systems",
        "validity",
    )

    def __init__(self, settings: str, factors: tuple[float, ...], validity: Validity) -> None:
        self.factors = factors
        self.full: list[list[int]] = [[0] for _ in factors]
        """Per factor, the tokens of ``messages[:i]``'s blocks at ``[i]``."""
        self.bare: list[list[int]] = [[0] for _ in factors]
        """The same without thinking blocks."""
        self.opened = [-1]
        """At ``[i]``: the last message before ``i`` that opens a turn (opens_turn), or -1."""
        self.assistants = [0]
        """At ``[i]``: the assistant messages before ``i``."""
        self.chain = [settings]
        self.cuts: list[int] = []
        self.cut_assistants: list[int] = []
        """The assistant messages before each cut (ascending, as the cuts are)."""
        self.systems: list[int] = []
        self.previous: tuple[Any, bool] = (None, False)
        """The last message's role and whether it holds tool results."""
        self.validity = validity

    @property
    def size(self) -> int:
        n = len(self.chain)
        return 400 + n * (120 + 80 * len(self.factors)) + 16 * len(self.validity.seen)

    def add(self, message: Any, key: Any) -> None:
        i = len(self.chain) - 1
        for full, bare, factor in zip(self.full, self.bare, self.factors, strict=True):
            whole, without = message_tokens(message, factor)
            full.append(full[-1] + whole)
            bare.append(bare[-1] + without)
        self.opened.append(i if opens_turn(message) else self.opened[-1])
        role, result = _role(message), _has_result(message)
        if i >= 1 and (
            (role == "user" and not result)
            or (role == "assistant" and self.previous == ("user", True))
        ):
            self.cuts.append(i)
            self.cut_assistants.append(self.assistants[-1])
        self.assistants.append(self.assistants[-1] + (role == "assistant"))
        self.previous = (role, result)
        if role == "system":
            self.systems.append(i)
        self.chain.append(_link(self.chain[-1], _message_hash(message, key)))
        self.validity.add(message)

    def tokens(self, at: int, keeps: bool, parts: Sequence[_Part]) -> int:
        """``count_request({"messages": [...]})`` (without tools and system) of the messages
        ``parts`` stand for, at ``self.factors[at]``; ``keeps``: the model keeps earlier
        turns' thinking (else the thinking before the last message opening a turn counts 0,
        see :func:`~tidyctx.tokens.thinking_cutoff`)."""
        full, bare, opened = self.full[at], self.bare[at], self.opened
        where, cutoff = -1, 0  # the part holding the message that opens the current turn
        if not keeps:
            for p in range(len(parts) - 1, -1, -1):
                part = parts[p]
                if isinstance(part, tuple):
                    q = opened[part[1]]
                    if q >= part[0]:
                        where, cutoff = p, q
                        break
                elif opens_turn(part):
                    where = p
                    break
        total = 0
        for p, part in enumerate(parts):
            if isinstance(part, tuple):
                a, b = part
                total += MESSAGE_OVERHEAD * (b - a)
                if p < where:
                    total += bare[b] - bare[a]
                elif p == where:
                    total += bare[cutoff] - bare[a] + full[b] - full[cutoff]
                else:
                    total += full[b] - full[a]
            else:
                whole, without = message_tokens(part, self.factors[at])
                total += MESSAGE_OVERHEAD + (without if p < where else whole)
        return total


@dataclass(frozen=True, slots=True)
class _Counting:
    """How :meth:`Summarize._plan_folded` counts with a :class:`_Fold`."""

    request: int
    """The factor (index in the fold's) of the request's own count, against the trigger."""
    request_keeps: bool
    """Whether that model keeps earlier turns' thinking."""
    alone: int
    """The factor of a list of messages counted alone (spans, kept turns)."""
    alone_keeps: bool
    outside: int
    """The request's tokens outside its messages: tools, system, the tools' prompt."""
    head: Head
    """What validation finds outside the messages."""


@dataclass(frozen=True, slots=True)
class _Plan:
    state: Request
    """The request with the stored (or given) summary in place: the output if nothing fires."""
    base: int
    """Index in the given messages where the kept part of ``state`` starts."""
    body: str | None
    span: str | None
    tokens: int
    chain: tuple[str, ...] = ()
    fire: int | None = None
    """Cut for a new summary (index in the given messages), or None."""
    note: str = ""


class Summarize(Edge):
    """The transform :func:`summarize` and :func:`asummarize` return.

    Call it on a request (sync client), or ``await t.acall(request)`` (async client).
    """

    def __init__(
        self,
        client: Any,
        *,
        summary_model: str,
        trigger: int,
        keep: int,
        target_tokens: int,
        store: Store | None,
        max_retries: int | None,
        timeout: float | None,
        on_summary: Callable[[SummaryEvent], Any] | None,
        server_side: bool,
        counter: TokenCounter | None,
        is_async: bool,
        max_payback_turns: int | None = MAX_PAYBACK_TURNS,
        model: str | None = None,
    ) -> None:
        self.client = client
        self.summary_model = summary_model
        self.trigger = trigger
        self.keep = keep
        self.model = model
        self.target_tokens = target_tokens
        self.max_payback_turns = max_payback_turns
        self.store: Store = store if store is not None else MemoryStore()
        self.max_retries = max_retries
        self.timeout = timeout
        self.on_summary = on_summary
        self.server_side = server_side
        self.counter = counter
        self.is_async = is_async
        prompt = self.system_prompt()
        settings = ["tidyctx.summarize", PROMPT_VERSION, summary_model, target_tokens, prompt]
        self.settings = block_hash(settings)[:16]
        # One call per span, however many threads (or tasks) ask at once: a lock per span hash,
        # from a fixed set so that memory stays bounded.
        self._locks = [threading.Lock() for _ in range(_LOCKS)]
        # asyncio locks per event loop: a lock that once waited in one loop raises
        # "bound to a different event loop" in another (asyncio.run per request, a loop per thread).
        self._alocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Lock]]
        self._alocks = weakref.WeakKeyDictionary()
        self._alocks_guard = threading.Lock()

    @property
    def name(self) -> str:
        if self.server_side:
            return f"summarize(server_side=True, trigger={self.trigger})"
        model = f", model={self.model!r}" if self.model else ""
        return (
            f"summarize(trigger={self.trigger}, keep={self.keep}, "
            f"target_tokens={self.target_tokens}, summary_model={self.summary_model!r}, "
            f"max_payback_turns={self.max_payback_turns}{model})"
        )

    def __repr__(self) -> str:
        return self.name

    def system_prompt(self) -> str:
        """The summary call's system prompt."""
        return _SYSTEM.format(mark=SUMMARIZER_MARK, target=f"{self.target_tokens:,}")

    def summary_request(self, previous: str | None, transcript: str) -> Request:
        """The request of one summary call, ordered and cached like any other (order, cache)."""
        from tidyctx._pipeline import pipe
        from tidyctx.transforms._cache import cache
        from tidyctx.transforms._order import order

        request: Request = {
            "model": self.summary_model,
            "max_tokens": self.max_tokens,
            "system": self.system_prompt(),
            "messages": [{"role": "user", "content": summary_blocks(previous, transcript)}],
        }
        out: Request = pipe(request, order(), cache())
        return out

    @property
    def max_tokens(self) -> int:
        """The summary call's ``max_tokens``: an answer that reaches it is refused."""
        return math.ceil(self.target_tokens * OVERLONG)

    # -- planning (store lookups, no calls)

    def _target(self, request: Mapping[str, Any]) -> str | None:
        """The model the request is sent to: ``model``, else the request's own."""
        return self.model or _model_of(request)

    def _local(self, request: Mapping[str, Any]) -> LocalCounter:
        """The counter for the sizes of spans (:func:`~tidyctx.tokens.local_counter`)."""
        return local_counter(self.counter, self._target(request))

    def _count(self, request: Request) -> int:
        counter = self.counter or LocalCounter(self._target(request))
        return int(counter.count_request(request))

    def _prefix_key(self, chain_hash: str) -> str:
        return store_key(f"tidyctx.summarize.cut|{self.settings}|{chain_hash}")

    def _call_key(self, previous: str | None, transcript: str) -> str:
        return store_key(
            f"tidyctx.summarize.call|{self.settings}|{block_hash([previous, transcript])}"
        )

    def _chain(self, messages: Sequence[Any]) -> tuple[str, ...]:
        chain = [self.settings]
        for message in messages:
            chain.append(_link(chain[-1], _message_hash(message)))
        return tuple(chain)

    def _stored_cut(self, key: str, k: int) -> tuple[str, str, int | None] | None:
        raw = self.store.get(key)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(record, dict) or record.get("messages") != k:
            return None
        body, span = record.get("summary"), record.get("span")
        if not isinstance(body, str) or not isinstance(span, str) or not body.strip():
            return None
        upto = record.get("upto")
        # In use again: renewed with the records of its calls, so that a store that evicts
        # or expires entries keeps them while the conversation goes on (without them the
        # step would be taken, and paid for, again).
        refresh(self.store, key)
        calls = record.get("calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, str):
                refresh(self.store, call)
        return body, span, upto if isinstance(upto, int) and not isinstance(upto, bool) else None

    def _plan(self, request: Request) -> _Plan:
        messages = request.get("messages")
        if not isinstance(messages, list):
            raise ValidationError("messages", "missing", "summarize() needs a list of messages")
        folded = self._fold(request, messages)
        if folded is None:
            return self._plan_anew(request, messages)
        fold, token, counting = folded
        try:
            return self._plan_folded(request, messages, fold, counting)
        finally:
            suspend("summarize", token, fold, fold.size)

    def _fold(self, request: Request, messages: list[Any]) -> tuple[_Fold, int, _Counting] | None:
        """The :class:`_Fold` of ``messages`` (resumed from an earlier turn's, extended by the
        new messages), the token to suspend it under, and how to count with it; None when
        the messages cannot be folded (not plain data, a counter that is not a LocalCounter,
        data a count or hash refuses): :meth:`_plan_anew` then reads them whole, and raises
        what it raises."""
        counter = self.counter
        if counter is not None and type(counter) is not LocalCounter:
            return None
        try:
            target = self._target(request)
            trigger = counter if counter is not None else LocalCounter(target)
            local = self._local(request)
            # The models counted for: the request's (for the trigger), and that of a list of
            # messages counted alone (spans, kept turns), as count_request sees each.
            model, alone = trigger.model or request.get("model"), local.model
            if not (model is None or isinstance(model, str)):
                return None
            factors = (trigger.factor(model), local.factor(alone))
            distinct = tuple(dict.fromkeys(factors))
            head = head_of(request)
            rest = {k: v for k, v in request.items() if k != "messages"}
            outside = trigger._total(rest) + trigger.overhead(rest)
            keys = [content_key(m) if type(m) is dict else None for m in messages]
            if None in keys:
                return None
            item = ("\0summarize", self.settings, distinct, head.tool_names)
            tokens = prefix_tokens([item, *keys])
            k, fold = resume("summarize", tokens)
            if not isinstance(fold, _Fold) or len(fold.chain) != k:
                k, fold = 1, _Fold(self.settings, distinct, Validity(head.tool_names))
            for i in range(k - 1, len(messages)):
                fold.add(messages[i], keys[i])
        except Exception:
            return None  # what the whole reading raises, it raises again
        counting = _Counting(
            distinct.index(factors[0]),
            keeps_prior_thinking(model),
            distinct.index(factors[1]),
            keeps_prior_thinking(alone),
            outside,
            head,
        )
        return fold, tokens[-1], counting

    def _plan_folded(
        self, request: Request, messages: list[Any], fold: _Fold, counting: _Counting
    ) -> _Plan:
        """:meth:`_plan_anew`, reading the messages through their :class:`_Fold`: the same
        plan (the same notes, the same store lookups in the same order), in time that does
        not grow with the history once the fold is warm."""
        n = len(messages)

        def count(parts: Sequence[_Part]) -> int:  # count_request of the request, in parts
            request_tokens = fold.tokens(counting.request, counting.request_keeps, parts)
            return counting.outside + request_tokens

        def alone(parts: Sequence[_Part]) -> int:  # count_request of a list of messages
            return fold.tokens(counting.alone, counting.alone_keeps, parts)

        tokens = count([(0, n)])
        if tokens <= self.trigger:
            note = f"below the trigger ({tokens:,} of {self.trigger:,} tokens): unchanged"
            return _Plan(request, 0, None, None, tokens, note=note)
        if not fold.validity.passes(counting.head):
            validate(request, strict=False)  # names the problem (if it finds one)
        lead, body, span = leading_summary(messages)
        # The cuts that keep `keep` assistant messages after them: a prefix of the cuts, as
        # the assistant messages before a cut only grow.
        last = bisect.bisect_right(fold.cut_assistants, fold.assistants[n] - self.keep)
        first = bisect.bisect_right(fold.cuts, lead, 0, last)
        cuts = fold.cuts[first:last]
        chain = tuple(fold.chain)
        base, state = lead, request
        head: list[_Part] = [(0, lead)]  # what stands before messages[base:] in `state`
        for k in reversed(cuts):
            found = self._stored_cut(self._prefix_key(chain[k]), k)
            if found is not None:
                base, (body, span, upto) = k, found
                assert span is not None
                systems = [messages[i] for i in fold.systems if i < k]
                state = _build(request, k, body, span, systems, upto=upto)
                head = [state["messages"][0], *[(i, i + 1) for i in fold.systems if i < k]]
                if _role(messages[k]) == "user":
                    head.append(state["messages"][len(head)])
                tokens = count([*head, (k, n)])
                break
        cut = cuts[-1] if cuts and cuts[-1] > base else None
        return self._decide(
            request,
            _Plan(state, base, body, span, tokens, chain),
            cut,
            lambda c: alone([(base, c)]),
            lambda c: (alone([*head, (base, c)]), alone([(c, n)])),
        )

    def _decide(
        self,
        request: Request,
        kept: _Plan,
        cut: int | None,
        replaced: Callable[[int], int],
        sizes: Callable[[int], tuple[int, int]],
    ) -> _Plan:
        """The plan once the stored summary (if any) is in place: ``kept`` sends the request
        so; a new summary is made at ``cut`` (the last cut that keeps ``keep`` turns after
        it, None if none) unless the request is within the trigger, the span before it
        (``replaced(cut)`` tokens) is too short, or the step would not pay back
        (``sizes(cut)``: the tokens summarized and kept)."""
        tokens = kept.tokens
        if tokens <= self.trigger:
            return kept
        if cut is None:
            note = (
                f"over the trigger ({tokens:,} tokens) but no cut keeps the last "
                f"{self.keep} turns: unchanged"
            )
            return replace(kept, note=note)
        span = replaced(cut)
        if span < self.trigger * MIN_STEP:
            note = (
                f"over the trigger ({tokens:,} tokens), but only {span:,} tokens lie before "
                f"the last {self.keep} turns; summarizing waits until that is at least "
                f"{int(self.trigger * MIN_STEP):,}"
            )
            return replace(kept, note=note)
        if self.max_payback_turns is not None:
            note = self._held(request, tokens, sizes(cut))
            if note:
                return replace(kept, note=note)
        return replace(kept, fire=cut)

    def _held(self, request: Request, tokens: int, sizes: tuple[int, int]) -> str:
        """Why the payback gate holds a step back (replacing ``sizes[0]`` tokens, keeping
        ``sizes[1]``), or "" when it lets it through."""
        p = payback(
            self._target(request),
            self.summary_model,
            replaced=sizes[0],
            summary=self.target_tokens,
            kept=sizes[1],
        )
        if p is None or (p.turns is not None and p.turns <= (self.max_payback_turns or 0)):
            return ""
        back = "never" if p.turns is None else f"after {p.turns} turns"
        return (
            f"over the trigger ({tokens:,} tokens), but summarizing {sizes[0]:,} "
            f"tokens and keeping {sizes[1]:,} would pay back {back}, more than "
            f"max_payback_turns={self.max_payback_turns} (estimate: "
            f"{_costs(p, self.summary_model)}); summarizing waits for a longer span"
        )

    def _plan_anew(self, request: Request, messages: list[Any]) -> _Plan:
        """The plan, reading every message (what :meth:`_plan_folded` gives incrementally)."""
        tokens = self._count(request)
        if tokens <= self.trigger:
            note = f"below the trigger ({tokens:,} of {self.trigger:,} tokens): unchanged"
            return _Plan(request, 0, None, None, tokens, note=note)
        validate(request, strict=False)
        lead, body, span = leading_summary(messages)
        after = [0] * (len(messages) + 1)  # assistant messages from k on
        for k in range(len(messages) - 1, -1, -1):
            after[k] = after[k + 1] + (_role(messages[k]) == "assistant")
        cuts = [k for k in cut_points(messages) if k > lead and after[k] >= self.keep]
        chain = self._chain(messages)
        base, state = lead, request
        for k in reversed(cuts):
            found = self._stored_cut(self._prefix_key(chain[k]), k)
            if found is not None:
                base, (body, span, upto) = k, found
                assert span is not None
                state = _build(request, k, body, span, upto=upto)
                tokens = self._count(state)
                break
        counter = self._local(request)
        later = [k for k in cuts if k > base]
        return self._decide(
            request,
            _Plan(state, base, body, span, tokens, chain),
            later[-1] if later else None,
            lambda c: counter.count_request({"messages": messages[base:c]}),
            lambda c: _sizes(counter, state["messages"], messages[c:]),
        )

    def _chunks(self, messages: Sequence[Any], counter: LocalCounter) -> list[str]:
        """The span serialized, split at message boundaries into calls of MAX_CALL_TOKENS."""
        chunks: list[list[str]] = [[]]
        size = 0
        for text in _parts(messages):
            n = counter.count_text(text)
            if chunks[-1] and size + n > MAX_CALL_TOKENS:
                chunks.append([])
                size = 0
            chunks[-1].append(text)
            size += n
        return ["\n\n".join(c) for c in chunks if c] or ["(no text)"]

    # -- answers

    def _accept(self, message: Any) -> tuple[str | None, str, dict[str, Any]]:
        plain = to_plain(message)
        usage = plain.get("usage") if isinstance(plain, dict) else None
        usage = dict(usage) if isinstance(usage, dict) else {}
        content = plain.get("content") if isinstance(plain, dict) else None
        # Blocks are joined as paragraphs: glued ("...parse.py" + "## Facts") they would merge
        # a heading or an identifier into the line before it. (The call has no documents, so no
        # citations split one sentence into blocks.)
        texts = [
            str(b.get("text") or "").strip()
            for b in content or []
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        text = "\n\n".join(t for t in texts if t)
        if not text:
            return None, "the summarizer returned an empty answer", usage
        if plain.get("stop_reason") == "max_tokens":
            return None, f"the summary reached max_tokens ({self.max_tokens:,}): cut short", usage
        n = LocalCounter(self.summary_model).count_text(text)
        if n > self.max_tokens:
            return None, f"the summary is over-long ({n:,} tokens > {self.max_tokens:,})", usage
        return text, "", usage

    def _memo(self, key: str) -> str | None:
        raw = self.store.get(key)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        text = record.get("summary") if isinstance(record, dict) else None
        return text if isinstance(text, str) and text.strip() else None

    def _remember(self, key: str, text: str, usage: dict[str, Any]) -> None:
        self.store.put(key, json.dumps({"summary": text, "usage": usage}, ensure_ascii=False))

    def _alock(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._alocks_guard:
            locks = self._alocks.get(loop)
            if locks is None:
                locks = self._alocks[loop] = [asyncio.Lock() for _ in range(_LOCKS)]
        return locks[int(key[3:], 16) % _LOCKS]

    def _client(self) -> Any:
        create = getattr(getattr(self.client, "messages", None), "create", None)
        if not callable(create):
            raise TypeError(
                f"summarize() needs an anthropic client (anthropic.Anthropic(), or any object "
                f"with .messages.create(...)) to write the summary, got "
                f"{type(self.client).__name__}: {self.client!r:.80}"
            )
        options: dict[str, Any] = {}
        if self.max_retries is not None:
            options["max_retries"] = self.max_retries
        if self.timeout is not None:
            options["timeout"] = self.timeout
        with_options = getattr(self.client, "with_options", None)
        if options and callable(with_options):
            return with_options(**options)
        return self.client

    def _warn(self, problem: str) -> None:
        warnings.warn(
            f"summarize: {problem}; the request goes on without a new summary "
            "(no turn was dropped)",
            SummaryWarning,
            stacklevel=_outside(),
        )

    def _finish(
        self,
        request: Request,
        plan: _Plan,
        body: str,
        keys: list[str],
        calls: list[dict[str, Any]],
    ) -> Request:
        assert plan.fire is not None
        span = keys[-1][3:]
        # "calls": the store keys of every call of this step, so that explain() prices them all
        # (a span over MAX_CALL_TOKENS takes several).
        # "upto": how many messages the request held when the step was taken; the thinking of
        # the kept ones among them was produced before the summary (see _build).
        record = {
            "messages": plan.fire,
            "summary": body,
            "span": span,
            "calls": keys,
            "upto": len(request["messages"]),
        }
        key = self._prefix_key(plan.chain[plan.fire])
        try:
            self.store.put(key, json.dumps(record, ensure_ascii=False))
        except BaseException:
            self._report(request, plan, calls)
            raise
        out = _build(request, plan.fire, body, span, upto=len(request["messages"]))
        self._report(request, plan, calls, body, span)
        return out

    def _report(
        self,
        request: Request,
        plan: _Plan,
        calls: list[dict[str, Any]],
        body: str | None = None,
        span: str = "",
    ) -> None:
        """Tell ``on_summary`` about a step: made (``body``), or left unfinished after calls
        that cost money (no ``body``; nothing to tell if it made no call)."""
        if self.on_summary is None or (body is None and not calls):
            return
        assert plan.fire is not None
        counter = self._local(request)
        messages = request["messages"][plan.base : plan.fire]
        self.on_summary(
            SummaryEvent(
                span=span,
                messages=plan.fire,
                span_tokens=counter.count_request({"messages": messages}),
                summary_tokens=LocalCounter(self.summary_model).count_text(body) if body else 0,
                summary_model=self.summary_model,
                calls=len(calls),
                usage=tuple(calls),
                complete=body is not None,
            )
        )

    def _server_side(self, req: Request) -> Request:
        from tidyctx.transforms._clear import with_edit

        edit = {
            "type": COMPACT_EDIT,
            "trigger": {"type": "input_tokens", "value": self.trigger},
        }
        return with_edit(req, edit)

    def apply(self, request: Request) -> Request:
        if self.is_async:
            raise TypeError(
                "this summarize() transform has an async client: use `await t.acall(request)` "
                "(tc.pipe is synchronous; see the tidyctx.transforms._summarize docs)"
            )
        if self.server_side:
            return self._server_side(request)
        plan = self._plan(request)
        if plan.fire is None:
            return plan.state
        return self._roll(request, plan)

    def _roll(self, req: Request, plan: _Plan) -> Request:
        assert plan.fire is not None
        counter = LocalCounter(self.summary_model)
        previous, key = plan.body, ""
        calls: list[dict[str, Any]] = []
        keys: list[str] = []
        failed = False
        # A call made is paid for: on_summary hears of it even if the step then fails.
        try:
            for transcript in self._chunks(req["messages"][plan.base : plan.fire], counter):
                key = self._call_key(previous, transcript)
                keys.append(key)
                with self._locks[int(key[3:], 16) % _LOCKS]:
                    text = self._memo(key)
                    if text is None:
                        text, usage = self._call(previous, transcript)
                        if text is None:
                            if usage:  # a refused answer (empty, cut short) is billed too
                                calls.append(usage)
                            failed = True
                            break
                        calls.append(usage)
                        self._remember(key, text, usage)
                previous = text
        except BaseException:
            self._report(req, plan, calls)
            raise
        if failed:
            self._report(req, plan, calls)
            return plan.state
        assert previous is not None
        return self._finish(req, plan, previous, keys, calls)

    def _call(self, previous: str | None, transcript: str) -> tuple[str | None, dict[str, Any]]:
        import anthropic

        request = self.summary_request(previous, transcript)
        try:
            message = observed(
                "summary", request, lambda: self._client().messages.create(**request)
            )
        except anthropic.APIError as err:
            self._warn(f"the summary call failed ({type(err).__name__}: {err})")
            return None, {}
        text, problem, usage = self._accept(message)
        if text is None:
            self._warn(problem)
        return text, usage

    @overload
    async def acall(self, request: list[Any] | tuple[Any, ...]) -> list[Any]: ...
    @overload
    async def acall(self, request: Mapping[str, Any]) -> Request: ...
    @overload
    async def acall(self, request: Any) -> Any: ...
    async def acall(self, request: Any) -> Any:
        """The transform for an async client (``anthropic.AsyncAnthropic``): await it. It takes
        and gives back the same shapes as calling the transform."""
        req, was_list = start(request)
        try:
            out = await self._aapply(req)
        except RecursionError:
            raise too_deep(req) from None
        return shaped(out, was_list, transform_name(self))

    async def _aapply(self, req: Request) -> Request:
        """:meth:`apply` for an async client."""
        import anthropic

        if self.server_side:
            return self._server_side(req)
        plan = self._plan(req)
        if plan.fire is None:
            out = plan.state
        else:
            if not self.is_async:
                raise TypeError("acall() needs an async client: use tc.asummarize(client)")
            out = plan.state
            counter = LocalCounter(self.summary_model)
            previous, key = plan.body, ""
            calls: list[dict[str, Any]] = []
            keys: list[str] = []
            failed = False
            try:
                for transcript in self._chunks(req["messages"][plan.base : plan.fire], counter):
                    key = self._call_key(previous, transcript)
                    keys.append(key)
                    async with self._alock(key):
                        text = self._memo(key)
                        if text is None:
                            request = self.summary_request(previous, transcript)
                            try:
                                message = await aobserved(
                                    "summary",
                                    request,
                                    functools.partial(self._client().messages.create, **request),
                                )
                            except anthropic.APIError as err:
                                self._warn(f"the summary call failed ({type(err).__name__}: {err})")
                                failed = True
                                break
                            text, problem, usage = self._accept(message)
                            if text is None:
                                self._warn(problem)
                                if usage:  # a refused answer (empty, cut short) is billed too
                                    calls.append(usage)
                                failed = True
                                break
                            calls.append(usage)
                            self._remember(key, text, usage)
                    previous = text
            except BaseException:
                self._report(req, plan, calls)
                raise
            if failed:
                self._report(req, plan, calls)
            else:
                assert previous is not None
                out = self._finish(req, plan, previous, keys, calls)
        return out

    # -- explain()

    def describe(self, before: Request, after: Request) -> str:
        """For :func:`tidyctx.explain`: what this step costs and what it saves per later turn.

        The cache holds last turn's request as this transform sent it. If that already had
        this summary in place, nothing is rewritten. Otherwise the step is priced by
        :func:`payback`, the arithmetic of the ``max_payback_turns`` gate, with the actual
        summary and the recorded usage of its calls (estimated when a record is missing).
        A step held back by the gate is reported with the gate's estimate.
        """
        if self.server_side:
            return (
                f"server-side compaction ({COMPACT_EDIT}) at {self.trigger:,} input "
                f"tokens; send it with client.beta.messages.create(..., "
                f"betas=[{COMPACTION_BETA!r}])"
            )
        req, out = before, after
        plan = self._plan(req)
        if plan.fire is not None:
            # The transform has run: had its step succeeded, the cut would be in the store.
            return (
                f"over the trigger ({plan.tokens:,} tokens): a summary of messages[{plan.base}:"
                f"{plan.fire}] was due, but none was made (the summary call failed or its "
                "answer was refused, see the SummaryWarning); "
                + ("unchanged" if out == req else "the summary already in place was kept")
            )
        if out == req or plan.span is None:
            return plan.note or "unchanged"
        counter = self._local(req)
        n_before, n_after = counter.count_request(req), counter.count_request(out)
        summary_tokens = LocalCounter(self.summary_model).count_text(plan.body or "")
        what = (
            f"summary of {plan.base} messages in place ({n_before - n_after:,} tokens fewer, "
            f"{summary_tokens:,}-token summary)"
        )
        # What this turn would have sent without the step: last turn's summary (if any) and
        # everything after it.
        prior = req
        previous = _previous_turn(req)
        if previous is not None:
            last = self._plan(previous)
            if last.span == plan.span and last.base == plan.base:
                # Why no new step now (held by the gate, too short a span...), if over the trigger.
                why = f"; {plan.note}" if plan.note else ""
                return what + ": made on an earlier turn, the cached prefix is intact" + why
            if last.body is not None and last.span is not None and last.base > 0:
                prior = _build(req, last.base, last.body, last.span)
        tail = req["messages"][plan.base :]
        replaced, kept = _sizes(counter, prior["messages"], tail)
        summary = _sizes(counter, out["messages"], tail)[0]
        usages = self._usages(plan)
        small = self.summary_model
        p = payback(
            self._target(req),
            small,
            replaced=replaced,
            summary=summary,
            kept=kept,
            call=sum(pricing.cost(u, small).total for u in usages) if usages else None,
        )
        if p is None:
            return what + ": made this turn (no prices for this model)"
        head = f"{what}, made this turn: {_costs(p, small)}"
        if p.turns is None:
            return head + ": never pays back"
        return head + f": pays back after {p.turns} turn{'s' if p.turns != 1 else ''}"

    def _usages(self, plan: _Plan) -> list[dict[str, Any]]:
        """The recorded usage of every call of the step that made ``plan``'s summary; [] if
        one is missing (the caller then estimates)."""
        keys: Any = None
        if plan.chain and 0 < plan.base < len(plan.chain):
            cut = self._record(self._prefix_key(plan.chain[plan.base]))
            keys = cut.get("calls") if cut is not None else None
        if not isinstance(keys, list) or not keys:
            keys = ["tc_" + str(plan.span)]  # a cut stored without its call keys
        usages: list[dict[str, Any]] = []
        for key in keys:
            record = self._record(str(key))
            usage = record.get("usage") if record is not None else None
            if not isinstance(usage, dict) or not usage:
                return []
            usages.append(usage)
        return usages

    def _record(self, key: str) -> dict[str, Any] | None:
        raw = self.store.get(key)
        try:
            record = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return record if isinstance(record, dict) else None


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _outside() -> int:
    """The ``stacklevel`` that makes a warning raised by the caller of this function point at
    the first frame outside tidyctx: the user's ``pipe()``, ``explain()`` or transform call,
    however deep inside tidyctx the warning was raised (sync or ``await t.acall(...)``)."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _model_of(request: Mapping[str, Any]) -> str | None:
    model = request.get("model")
    return model if isinstance(model, str) and model else None


def _build(
    request: Request,
    cut: int,
    body: str,
    span: str,
    systems: list[Any] | None = None,
    *,
    upto: int | None = None,
) -> Request:
    """``request`` with ``messages[:cut]`` replaced by the summary; ``systems``: the system
    messages among them, when known; ``upto``: how many messages the request held when the
    summary was first put in place (None: unknown).

    On a model that checks the prefix of thinking blocks, the kept messages before ``upto``
    lose their thinking blocks: they were produced while the summarized messages stood before
    them, and would fail the check. The docs' advice for a summary written on the client
    (https://platform.claude.com/docs/en/build-with-claude/preserved-thinking, "Compact on the
    client"): strip ``thinking`` and ``redacted_thinking`` from the turns carried across, keep
    their text and tool_use. Removing the oldest thinking blocks is valid; the thinking
    produced after the summary (from ``upto`` on) follows it and stays. With ``upto`` unknown
    (a summary stored before it was recorded) every kept turn loses its thinking: removing all
    of them is valid too."""
    messages = request["messages"]
    # System messages are instructions (and tool additions or removals) the client placed in
    # the conversation: never summarized away, they stay as sent and in their order, after the
    # summary (a user message, as each followed a user message).
    kept = [m for m in messages[:cut] if _role(m) == "system"] if systems is None else systems
    head = [summary_message(body, span), *kept]
    if _role(messages[cut]) == "user":
        head.append(_ack())
    tail = list(messages[cut:])
    if runs_prefix_check(_model_of(request)):
        stale = len(messages) if upto is None else min(upto, len(messages))
        tail = [_unthought(m) if cut + i < stale else m for i, m in enumerate(tail)]
    return {**request, "messages": head + tail}


def _unthought(message: Any) -> Any:
    """``message`` without its thinking blocks (itself if it has none)."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list) or not any(
        isinstance(b, Mapping) and b.get("type") in ("thinking", "redacted_thinking")
        for b in content
    ):
        return message
    kept = [
        b
        for b in content
        if not (isinstance(b, Mapping) and b.get("type") in ("thinking", "redacted_thinking"))
    ]
    # An assistant turn of thinking only: an empty content list is not valid; its text is none.
    return {**message, "content": kept or [{"type": "text", "text": "(no text)"}]}


def _sizes(counter: LocalCounter, messages: Sequence[Any], tail: Sequence[Any]) -> tuple[int, int]:
    """Tokens of ``messages`` before ``tail`` (their last messages) and of ``tail``."""
    head = list(messages[: len(messages) - len(tail)])
    return counter.count_request({"messages": head}), counter.count_request(
        {"messages": list(tail)}
    )


def _previous_turn(request: Request) -> Request | None:
    """The request of the turn before: without the last assistant message and what follows."""
    messages = request.get("messages") or []
    for k in range(len(messages) - 1, 0, -1):
        if _role(messages[k]) == "assistant":
            return {**request, "messages": messages[:k]} if k > 0 else None
    return None


# ---------------------------------------------------------------------------- factories


def _check(
    *,
    summary_model: str,
    trigger: int,
    keep: int,
    target_tokens: int,
    max_retries: int | None,
    timeout: float | None,
    server_side: bool,
    max_payback_turns: int | None,
    model: str | None,
) -> None:
    def positive(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"summarize({name}=...) must be a positive int, got {value!r}")

    positive("trigger", trigger)
    positive("keep", keep)
    positive("target_tokens", target_tokens)
    if not isinstance(summary_model, str) or not summary_model:
        raise ValueError(f"summarize(summary_model=...) must be a model id, got {summary_model!r}")
    if model is not None and (not isinstance(model, str) or not model):
        raise ValueError(f"summarize(model=...) must be a model id or None, got {model!r}")
    # Before the target check: server-side compaction has no target, so that message would
    # name the wrong setting.
    if server_side and trigger < MIN_SERVER_TRIGGER:
        raise ValueError(
            f"summarize(server_side=True, trigger={trigger}): server-side "
            f"compaction needs a trigger of at least {MIN_SERVER_TRIGGER:,} input tokens"
        )
    if target_tokens * 2 > trigger:
        raise ValueError(
            f"summarize(target_tokens={target_tokens}) must be at most half of trigger "
            f"({trigger}), or the summary would take the room it frees"
        )
    if max_payback_turns is not None and (
        isinstance(max_payback_turns, bool)
        or not isinstance(max_payback_turns, int)
        or max_payback_turns < 1
    ):
        raise ValueError(
            f"summarize(max_payback_turns=...) must be a positive int (later turns) or None "
            f"(no payback gate), got {max_payback_turns!r}"
        )
    if max_retries is not None and (
        isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
    ):
        raise ValueError(f"summarize(max_retries=...) must be an int >= 0, got {max_retries!r}")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise ValueError(f"summarize(timeout=...) must be positive seconds, got {timeout!r}")


def _check_parts(store: Any, on_summary: Any, counter: Any) -> None:
    """The objects given to :func:`summarize`: checked now, not at the first long request."""
    if store is not None and not (
        callable(getattr(store, "get", None)) and callable(getattr(store, "put", None))
    ):
        hint = (
            f"; for a file use store=tc.SQLiteStore({store!r})"
            if isinstance(store, str | os.PathLike)
            else ""
        )
        raise TypeError(
            "summarize(store=...) must be a Store (an object with get(key) and put(key, "
            f"value), such as tc.MemoryStore() or tc.SQLiteStore(path)), got "
            f"{type(store).__name__}{hint}"
        )
    if on_summary is not None and not callable(on_summary):
        raise TypeError(
            f"summarize(on_summary=...) must be callable (it gets a SummaryEvent), got "
            f"{type(on_summary).__name__}"
        )
    check_counter(counter, "summarize(counter=...)")


def _is_async(client: Any) -> bool:
    create = getattr(getattr(client, "messages", None), "create", None)
    return create is not None and inspect.iscoroutinefunction(inspect.unwrap(create))


def _new(client: Any, *, is_async: bool, **settings: Any) -> Summarize:
    """Check the settings and the client for :func:`summarize` / :func:`asummarize`."""
    server_side = settings["server_side"]
    if settings["trigger"] is None:
        settings["trigger"] = MIN_SERVER_TRIGGER if server_side else DEFAULT_TRIGGER
    if settings["target_tokens"] is None:
        trigger = settings["trigger"]
        # A smaller trigger gets a smaller summary, so that a step still frees most of it.
        small = trigger // 4 if isinstance(trigger, int) and not isinstance(trigger, bool) else 0
        settings["target_tokens"] = max(1, min(DEFAULT_TARGET, small))
    _check(**{k: v for k, v in settings.items() if k not in ("store", "on_summary", "counter")})
    _check_parts(settings["store"], settings["on_summary"], settings["counter"])
    name = "asummarize" if is_async else "summarize"
    if client is None and not server_side:
        raise ValueError(f"{name}() needs an anthropic client (or server_side=True)")
    if is_async and client is not None and not _is_async(client) and not server_side:
        raise TypeError("asummarize() takes an async client; use tc.summarize() for a sync one")
    if not is_async and _is_async(client):
        raise TypeError(
            "summarize() got an async client; use tc.asummarize(client, ...) and "
            "`await t.acall(request)`"
        )
    return Summarize(client, is_async=is_async, **settings)


def summarize(
    client: Any,
    *,
    trigger: int | None = None,
    keep: int = 6,
    summary_model: str = DEFAULT_SUMMARY_MODEL,
    target_tokens: int | None = None,
    store: Store | None = None,
    max_retries: int | None = None,
    timeout: float | None = 120.0,
    on_summary: Callable[[SummaryEvent], Any] | None = None,
    server_side: bool = False,
    model: str | None = None,
    counter: TokenCounter | None = None,
    max_payback_turns: int | None = MAX_PAYBACK_TURNS,
) -> Summarize:
    """Roll old turns into a summary written by ``summary_model`` through ``client`` (an
    ``anthropic.Anthropic``); see the module doc for where it cuts and how it stays stable.

    - ``trigger``: summarize when the request (as ``counter`` counts it) holds more input
      tokens than this. Default (None): :data:`DEFAULT_TRIGGER` (30,000), or with
      ``server_side=True`` the smallest trigger the server accepts (:data:`MIN_SERVER_TRIGGER`,
      50,000).
    - ``keep``: assistant turns (with the user messages that answer them) kept as they are.
    - ``summary_model``: the model that writes the summary (default
      :data:`DEFAULT_SUMMARY_MODEL`, Haiku 4.5).
    - ``target_tokens``: the summary's length, asked of the summary model; an answer over 1.5
      times that is refused. Default (None): :data:`DEFAULT_TARGET` (3,000), or a quarter of
      ``trigger`` if that is less.
    - ``store``: where summaries are kept (default: a new :class:`~tidyctx.store.MemoryStore`);
      share a ``SQLiteStore`` or ``RedisStore`` between processes.
    - ``max_retries``, ``timeout``: for the summary call, through ``client.with_options``
      (None: the client's own; the SDK's default is 2 retries). The SDK retries connection
      errors, timeouts, 408, 409, 429 and 5xx (529 included) with exponential backoff and
      honors ``retry-after`` (https://github.com/anthropics/anthropic-sdk-python#retries). The
      120 s default timeout keeps a stalled summary from holding up the agent for the SDK's
      default 10 minutes.
    - ``on_summary``: called with a :class:`SummaryEvent` after each new summary, and after a
      step that made calls but did not finish (``complete=False``), so that every call's cost
      reaches it.
    - ``server_side=True``: no call here; the request gets Anthropic's compaction edit
      (:data:`COMPACT_EDIT`) with this trigger (at least 50,000). Send it with
      ``client.beta.messages.create(**request, betas=[COMPACTION_BETA])``, and send back the
      ``compaction`` block the API returns. ``client`` may be None.
    - ``model``: the model the request is sent to (default: the request's ``model``), for
      counting and for the prices of the payback gate.
    - ``counter``: a :class:`~tidyctx.tokens.TokenCounter` for the ``trigger`` (default: a
      :class:`~tidyctx.tokens.LocalCounter` for ``model``); when it is a LocalCounter it also
      counts the spans (:func:`~tidyctx.tokens.local_counter`).
    - ``max_payback_turns``: a step is taken only if its one-off cost (the summary call and the
      cache rewrite) is paid back by its saving (fewer tokens read from the cache) within this
      many later turns (:func:`payback`); otherwise it waits for a longer span, and
      ``explain()`` says why. None turns the gate off. With a model that has no price in
      ``tidyctx.pricing`` there is no gate.

    The defaults (:data:`DEFAULT_TRIGGER`, 6 turns kept, a 3k summary) leave room for many
    turns between summaries: after a step the request holds the summary and the last turns, a
    fraction of the trigger. On the recorded runs a 60k trigger saved 14 % against 25 % at
    30k (benchmarks/results/summarize_replay.txt), because a run summarized later carries its
    long history on more turns.
    """
    return _new(
        client,
        is_async=False,
        summary_model=summary_model,
        trigger=trigger,
        keep=keep,
        target_tokens=target_tokens,
        store=store,
        max_retries=max_retries,
        timeout=timeout,
        on_summary=on_summary,
        server_side=server_side,
        model=model,
        counter=counter,
        max_payback_turns=max_payback_turns,
    )


def asummarize(
    client: Any,
    *,
    trigger: int | None = None,
    keep: int = 6,
    summary_model: str = DEFAULT_SUMMARY_MODEL,
    target_tokens: int | None = None,
    store: Store | None = None,
    max_retries: int | None = None,
    timeout: float | None = 120.0,
    on_summary: Callable[[SummaryEvent], Any] | None = None,
    server_side: bool = False,
    model: str | None = None,
    counter: TokenCounter | None = None,
    max_payback_turns: int | None = MAX_PAYBACK_TURNS,
) -> Summarize:
    """:func:`summarize` for ``anthropic.AsyncAnthropic``: ``await t.acall(request)``."""
    return _new(
        client,
        is_async=True,
        summary_model=summary_model,
        trigger=trigger,
        keep=keep,
        target_tokens=target_tokens,
        store=store,
        max_retries=max_retries,
        timeout=timeout,
        on_summary=on_summary,
        server_side=server_side,
        model=model,
        counter=counter,
        max_payback_turns=max_payback_turns,
    )
