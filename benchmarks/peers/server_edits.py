"""Anthropic's server-side context edits as comparison-suite peers, simulated offline.

Measured by benchmarks/compare.py (``--only server-clear,server-compact,server-both``).

The peer is the Messages API itself (beta headers ``context-management-2025-06-27`` and
``compact-2026-01-12``; request shapes as in the ``anthropic`` SDK 2.17.0 beta param types
``BetaClearToolUses20250919EditParam``, ``BetaCompact20260112EditParam``,
``BetaCompactionBlockParam``). The client keeps its whole history and sends it every turn
with ``context_management`` set (:func:`client_edits` gives the exact field) and, as a user
who turns these edits on to save money would also do, top-level automatic caching
``cache_control: {"type": "ephemeral"}``
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching). The server edits the
request before the model reads it and bills the edited prompt, so every :class:`Sent` here
holds the request **as the server processes and bills it**: edited, with that one automatic
cache marker (any marker the recorded request carried is dropped), without the
``context_management`` field.

Factories (benchmarks/peers/sent.py), each made fresh per run:

- :func:`automatic_caching`: no edit, the baseline the edits are measured against.
- :func:`clear_tool_uses` (``clear_tool_uses_20250919``; defaults as documented at
  https://platform.claude.com/docs/en/build-with-claude/context-editing: trigger 100,000
  input tokens, keep 3 tool uses, no ``clear_at_least``, no ``exclude_tools``, results only).
  When the request's input tokens *exceed* the trigger, every tool result but those of the
  newest ``keep`` tool uses (and of ``exclude_tools``) is replaced by :data:`PLACEHOLDER`;
  with ``clear_at_least``, if that would clear fewer tokens the edit is skipped. The server
  recomputes this on every request from the full history the client sends, so once over the
  trigger the cleared boundary moves forward every turn (the newest tool use leaving the keep
  window is cleared) and the cache is rewritten from that result on. The documentation says
  the oldest results are replaced by placeholder text "to let Claude know the tool result was
  removed" but does not publish the text; :data:`PLACEHOLDER` stands in for it (a few tokens
  either way).
- :func:`compact` (``compact_20260112``, https://platform.claude.com/docs/en/build-with-claude/
  compaction: trigger 150,000 input tokens, the request's model summarizes with the default
  prompt :data:`SUMMARY_PROMPT`, ``pause_after_compaction`` false). When the request's input
  tokens exceed the trigger, the server first runs a compaction iteration: the whole context
  plus the summary prompt (a :class:`SideCall` at the same model, answered by the offline
  stand-in ``standin_summary``), then the message iteration on the compaction block alone,
  which opens the assistant's response. The answer the client stores is that response,
  ``[compaction block, *the recorded reply]``; the API ignores every message block before a
  compaction block, so from the next turn on the billed request is that assistant message
  (the block first) and every recorded message after it. Which recorded messages follow the
  compaction point: those after the recorded reply of the turn that compacted, as long as the
  recorded history still starts with the messages that turn sent and its reply; if the
  recorded agent rewrote its history before that point, its client no longer holds the block
  and the request is processed whole again. A later compaction summarizes the block's summary
  (passed to the stand-in as the previous summary) plus what follows it.
- :func:`clear_then_compact`: both edits, ``edits: [clear_tool_uses, compact]``. The server
  applies them in order: the history from the compaction block on is cleared first, and the
  compaction trigger is compared with the cleared request's input tokens.

Summary budget: the documentation caps the summary by no separate number, so the stand-in is
given the request's own ``max_tokens`` (the only output limit a request sets; 4,096 in every
shared run, a ~2,700-token summary, near the 3,500 output tokens of the compaction iteration in
the documentation's usage example).

Pricing of the compaction iteration: its input is the whole context the client sent plus the
summary prompt; the side call carries one explicit ``cache_control`` on the last block of the
client's messages (where the request's automatic marker would be), so replayed through
tidyctx.cachesim in call order it reads the prefix the previous turn cached and writes the
turn's new tail; the summary prompt after it is uncached input. Whether the server caches the
compaction iteration this way is not documented (its usage reports cache reads and writes).

Validation: a compaction block is a valid block in the beta shapes (``BetaCompactionBlockParam``;
tidyctx._request.validate accepts it), and cachesim counts and caches it like text. A request
after compaction starts with an assistant message, which the API accepts and
``validate(strict=False)`` allows (the strict mode refuses it for tidyctx's own transforms).

Tokens are counted with tidyctx.tokens.LocalCounter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidyctx._request import cache_markers, can_carry_marker
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._clear import tool_calls

from .sent import Factory, Sent, SideCall, Strategy
from .standin import standin_summary

__all__ = [
    "AUTOMATIC_CACHING",
    "COMPACT_BETA",
    "CONTEXT_MANAGEMENT_BETA",
    "PLACEHOLDER",
    "SUMMARY_PROMPT",
    "ClearToolUses",
    "Compact",
    "apply_clear",
    "automatic_caching",
    "clear_then_compact",
    "clear_tool_uses",
    "client_edits",
    "compact",
]

CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
COMPACT_BETA = "compact-2026-01-12"
AUTOMATIC_CACHING: dict[str, Any] = {"type": "ephemeral"}
"""Top-level ``cache_control``: the last cacheable block is the breakpoint, 5-minute TTL."""

PLACEHOLDER = "[tool result cleared]"
"""Stands in for the server's undocumented placeholder text."""

# The default summarization prompt, as the compaction documentation quotes it
# (https://platform.claude.com/docs/en/build-with-claude/compaction).
SUMMARY_PROMPT = (
    "You have written a partial transcript for the initial task above. Please write a summary "
    "of the transcript. The purpose of this summary is to provide continuity so you can "
    "continue to make progress towards solving the task in a future context, where the raw "
    "history above may not be accessible and will be replaced with this summary. Write down "
    "anything that would be helpful, including the state, next steps, learnings etc. You must "
    "wrap your summary in a <summary></summary> block."
)

Request = dict[str, Any]


# ---------------------------------------------------------------------------- the edits


def _whole(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"server_edits: {what} must be an int >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class ClearToolUses:
    """The ``clear_tool_uses_20250919`` edit, its documented defaults."""

    trigger: int = 100_000
    keep: int = 3
    clear_at_least: int | None = None
    exclude_tools: tuple[str, ...] = ()
    clear_tool_inputs: bool = False

    def __post_init__(self) -> None:
        _whole(self.trigger, "clear_tool_uses trigger")
        _whole(self.keep, "clear_tool_uses keep")
        if self.clear_at_least is not None:
            _whole(self.clear_at_least, "clear_tool_uses clear_at_least")
        if isinstance(self.exclude_tools, str):
            raise ValueError("server_edits: exclude_tools must be a list of tool names")
        object.__setattr__(self, "exclude_tools", tuple(self.exclude_tools))

    def edit(self) -> dict[str, Any]:
        """The edit as the client sends it in ``context_management.edits``."""
        out: dict[str, Any] = {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "input_tokens", "value": self.trigger},
            "keep": {"type": "tool_uses", "value": self.keep},
        }
        if self.clear_at_least is not None:
            out["clear_at_least"] = {"type": "input_tokens", "value": self.clear_at_least}
        if self.exclude_tools:
            out["exclude_tools"] = list(self.exclude_tools)
        if self.clear_tool_inputs:
            out["clear_tool_inputs"] = True
        return out


@dataclass(frozen=True)
class Compact:
    """The ``compact_20260112`` edit, its documented default trigger (minimum 50,000)."""

    trigger: int = 150_000

    def __post_init__(self) -> None:
        if _whole(self.trigger, "compact trigger") < 50_000:
            raise ValueError(
                f"server_edits: compact trigger must be >= 50,000 input tokens (the API's "
                f"minimum), got {self.trigger:,}"
            )

    def edit(self) -> dict[str, Any]:
        return {
            "type": "compact_20260112",
            "trigger": {"type": "input_tokens", "value": self.trigger},
        }


def client_edits(
    clear: ClearToolUses | None = None, compaction: Compact | None = None
) -> dict[str, Any]:
    """The ``context_management`` field the client sends (clearing first, as applied).

    >>> client_edits(ClearToolUses(), Compact())["edits"][1]
    {'type': 'compact_20260112', 'trigger': {'type': 'input_tokens', 'value': 150000}}
    """
    edits = [e.edit() for e in (clear, compaction) if e is not None]
    return {"edits": edits}


# ---------------------------------------------------------------------------- clearing


def apply_clear(
    request: Mapping[str, Any], edit: ClearToolUses, counter: LocalCounter
) -> tuple[Request, int, int]:
    """``(request as the model reads it, tool uses cleared, tokens cleared)``.

    Pure: ``request`` is not changed; unchanged messages are shared with it.
    """
    out: Request = dict(request)
    if counter.count_request(request) <= edit.trigger:
        return out, 0, 0
    calls = tool_calls(request, counter=counter)
    older = calls[: max(0, len(calls) - edit.keep)]
    excluded = set(edit.exclude_tools)
    chosen = [c for c in older if c.result_path is not None and c.name not in excluded]
    if not chosen:
        return out, 0, 0
    messages = [
        {**m, "content": list(m["content"])} if isinstance(m.get("content"), list) else m
        for m in request["messages"]
    ]
    cleared = 0
    for call in chosen:
        assert call.result_path is not None
        i, j = call.result_path
        block = messages[i]["content"][j]
        new = {**block, "content": [{"type": "text", "text": PLACEHOLDER}]}
        cleared += call.tokens - counter.count_block(new)
        messages[i]["content"][j] = new
        if edit.clear_tool_inputs:
            ui, uj = call.use_path
            use = messages[ui]["content"][uj]
            if use.get("input"):
                before = counter.count_block(use)
                messages[ui]["content"][uj] = {**use, "input": {}}
                cleared += before - counter.count_block(messages[ui]["content"][uj])
    if edit.clear_at_least is not None and cleared < edit.clear_at_least:
        return out, 0, 0
    out["messages"] = messages
    return out, len(chosen), cleared


# ---------------------------------------------------------------------------- compaction


@dataclass
class _Compacted:
    """Where the client's history holds a compaction block: in the assistant message at
    ``point`` (the reply of the turn that compacted), after ``prefix``."""

    point: int
    prefix: list[Any]
    summary: str


def _content(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _block(summary: str) -> dict[str, Any]:
    return {"type": "compaction", "content": summary}


def _view(messages: list[Any], state: _Compacted | None) -> list[Any] | None:
    """The messages the server reads: from the compaction block on, or None when the client's
    history no longer holds the block where it was put."""
    if state is None:
        return None
    n = state.point
    if len(messages) <= n or messages[n].get("role") != "assistant":
        return None
    if messages[:n] != state.prefix:
        return None
    held = {"role": "assistant", "content": [_block(state.summary), *_content(messages[n])]}
    return [held, *messages[n + 1 :]]


def _summary_call(processed: Request) -> Request:
    """The compaction iteration's body: the context the server read plus the summary prompt,
    with a cache marker where the request's automatic one would be."""
    messages = [dict(m) for m in processed["messages"]]
    last = messages[-1]
    content = _content(last)
    for k in range(len(content) - 1, -1, -1):
        if can_carry_marker(content[k]):
            content[k] = {**content[k], "cache_control": dict(AUTOMATIC_CACHING)}
            break
    prompt = {"type": "text", "text": SUMMARY_PROMPT}
    if last.get("role") == "user":
        messages[-1] = {**last, "content": [*content, prompt]}
    else:
        messages[-1] = {**last, "content": content}
        messages.append({"role": "user", "content": [prompt]})
    body = {k: v for k, v in processed.items() if k != "cache_control"}
    body["messages"] = messages
    return body


# ---------------------------------------------------------------------------- strategies


def _unmarked(request: Mapping[str, Any]) -> Request:
    """``request`` without cache_control and context_management (the peer sets its own)."""
    out = {k: v for k, v in request.items() if k not in ("cache_control", "context_management")}
    if not cache_markers(out):
        return out

    def bare(block: Any) -> Any:
        if not isinstance(block, Mapping):
            return block
        clean = {k: v for k, v in block.items() if k != "cache_control"}
        if isinstance(clean.get("content"), list):
            clean["content"] = [bare(b) for b in clean["content"]]
        return clean

    if isinstance(out.get("system"), list):
        out["system"] = [bare(b) for b in out["system"]]
    if isinstance(out.get("tools"), list):
        out["tools"] = [bare(t) for t in out["tools"]]
    out["messages"] = [
        {**m, "content": [bare(b) for b in m["content"]]}
        if isinstance(m.get("content"), list)
        else m
        for m in out.get("messages", [])
    ]
    return out


_COUNTERS: dict[str, LocalCounter] = {}


def _counter(model: Any) -> LocalCounter:
    key = str(model or "")
    if key not in _COUNTERS:
        _COUNTERS[key] = LocalCounter(key or None)
    return _COUNTERS[key]


def _billed(request: Request) -> Request:
    return {**request, "cache_control": dict(AUTOMATIC_CACHING)}


def _server(clear: ClearToolUses | None, compaction: Compact | None) -> Factory:
    def factory() -> Strategy:
        state: _Compacted | None = None

        def strategy(recorded: dict[str, Any]) -> Sent:
            nonlocal state
            request = _unmarked(recorded)
            counter = _counter(request.get("model"))
            messages = list(request.get("messages", []))
            notes: list[str] = []
            view = _view(messages, state)
            if view is None:
                state = None
                processed: Request = request
            else:
                processed = {**request, "messages": view}
            if clear is not None:
                processed, uses, tokens = apply_clear(processed, clear, counter)
                if uses:
                    notes.append(f"cleared {uses} tool results ({tokens:,} tokens)")
            side: list[SideCall] = []
            if compaction is not None and counter.count_request(processed) > compaction.trigger:
                read = processed["messages"]
                previous = state.summary if view is not None and state is not None else None
                since = read[1:] if previous is not None else read
                if previous is not None:  # the held reply follows the block
                    since = [{**read[0], "content": _content(read[0])[1:]}, *since]
                budget = int(request.get("max_tokens") or 4096)
                summary = standin_summary(since, budget, previous=previous)
                side.append(SideCall(request=_summary_call(processed), answer=summary))
                notes.append(
                    f"compacted {counter.count_request(processed):,} input tokens into "
                    f"{counter.count_text(summary):,}"
                )
                state = _Compacted(point=len(messages), prefix=messages, summary=summary)
                held = [{"role": "assistant", "content": [_block(summary)]}]
                processed = {**processed, "messages": held}
            return Sent(request=_billed(processed), side_calls=side, note="; ".join(notes))

        return strategy

    return factory


def automatic_caching() -> Factory:
    """No edit: the full history with top-level automatic caching (the baseline)."""
    return _server(None, None)


def clear_tool_uses(
    trigger: int = 100_000,
    keep: int = 3,
    clear_at_least: int | None = None,
    exclude_tools: Sequence[str] = (),
    clear_tool_inputs: bool = False,
) -> Factory:
    """``clear_tool_uses_20250919`` with these parameters (defaults: the documented ones)."""
    return _server(
        ClearToolUses(trigger, keep, clear_at_least, tuple(exclude_tools), clear_tool_inputs),
        None,
    )


def compact(trigger: int = 150_000) -> Factory:
    """``compact_20260112`` with this trigger (default: the documented 150,000)."""
    return _server(None, Compact(trigger))


def clear_then_compact(
    clear: ClearToolUses | None = None, compaction: Compact | None = None
) -> Factory:
    """Both edits, clearing listed (and applied) first; defaults: the documented ones."""
    return _server(clear or ClearToolUses(), compaction or Compact())
