"""parallel_tools(): ask the model to request independent tool calls together.

Claude may call several tools in one turn unless ``tool_choice.disable_parallel_tool_use``
is set (https://platform.claude.com/docs/en/agents-and-tools/tool-use/parallel-tool-use).
Each turn that makes one lookup the previous one did not need is a round trip that re-reads
the whole context; ``tidyctx report`` counts those turns in a recorded run (see
:mod:`tidyctx._parallelism`).

The transform:

- never sets, removes or changes ``tool_choice`` (parallel tool use is the API's default; a
  caller who disabled it keeps that, and :meth:`ParallelTools.describe` says so): a changed
  ``tool_choice`` would also invalidate the cached messages;
- appends one text block, :data:`PARALLEL_TEXT`, at the end of the system prompt, when the
  request has tools. It goes in the stable prefix, after what the caller wrote: nothing
  before it moves, and since it is the same bytes on every call, the tools and system stay
  byte-identical turn after turn. A string ``system`` becomes that text as one text block
  followed by the instruction (a string is the API's shorthand for exactly that block);
- adds nothing when a system text block already holds the instruction (applying it twice
  changes nothing), or when the request has no tools.

Put it before ``cache()``, so that the system breakpoint lands after the instruction:
``tc.pipe(request, tc.parallel_tools(), *tc.defaults())``.

>>> req = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "You are terse.",
...        "tools": [{"name": "read", "input_schema": {"type": "object"}}],
...        "messages": [{"role": "user", "content": "hi"}]}
>>> out = parallel_tools()(req)
>>> [b["text"][:20] for b in out["system"]]
['You are terse.', 'When you need severa']
>>> parallel_tools()(out) == out
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tidyctx._edge import Edge
from tidyctx._request import Request, ValidationError

__all__ = ["PARALLEL_TEXT", "ParallelTools", "disables_parallel", "parallel_tools"]

PARALLEL_TEXT = (
    "When you need several pieces of information that do not depend on each other (files "
    "to read, searches, listings, lookups), request all of those tool calls together in one "
    "response rather than one per turn: they run at the same time. Wait for a result before "
    "the next call only when that call's input depends on it."
)
"""The instruction :func:`parallel_tools` appends to the system prompt."""


def _holds(system: Any, text: str) -> bool:
    if isinstance(system, str):
        return system == text
    return isinstance(system, list) and any(
        isinstance(b, Mapping) and b.get("type") == "text" and b.get("text") == text for b in system
    )


def disables_parallel(request: Mapping[str, Any]) -> bool:
    """Does the request's ``tool_choice`` set ``disable_parallel_tool_use``?"""
    choice = request.get("tool_choice")
    return isinstance(choice, Mapping) and choice.get("disable_parallel_tool_use") is True


@dataclass(frozen=True, slots=True)
class ParallelTools(Edge):
    """The transform :func:`parallel_tools` returns; call it on a request."""

    text: str = PARALLEL_TEXT

    @property
    def name(self) -> str:
        return "parallel_tools()" if self.text == PARALLEL_TEXT else "parallel_tools(text=...)"

    def apply(self, request: Request) -> Request:
        if not request.get("tools") or _holds(request.get("system"), self.text):
            return dict(request)
        system = request.get("system")
        block = {"type": "text", "text": self.text}
        if system is None or system == "" or system == []:
            blocks: list[Any] = [block]
        elif isinstance(system, str):
            blocks = [{"type": "text", "text": system}, block]
        elif isinstance(system, list):
            blocks = [*system, block]
        else:
            raise ValidationError(
                "system",
                f"expected a string or a list of text blocks, got {type(system).__name__}",
                "parallel_tools() appends its instruction to the system prompt",
            )
        return {**request, "system": blocks}

    def describe(self, before: Request, after: Request) -> str:
        if not after.get("tools"):
            return "no tools: nothing added"
        added = not _holds(before.get("system"), self.text)
        note = "instruction appended to the system prompt" if added else "instruction present"
        if disables_parallel(after):
            note += (
                "; tool_choice sets disable_parallel_tool_use, so the API allows one call per "
                "turn (left as the caller set it)"
            )
        return note


def parallel_tools(text: str = PARALLEL_TEXT) -> ParallelTools:
    """A transform that asks the model, in the cached prefix, to make independent tool calls
    in one turn, and leaves parallel tool use enabled (it never touches ``tool_choice``).

    ``text`` replaces the instruction (:data:`PARALLEL_TEXT`); it must be non-empty, since
    the API refuses an empty text block. See the module documentation for where it goes.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("parallel_tools(text=...) takes a non-empty string")
    return ParallelTools(text)
