"""required_betas(): the ``anthropic-beta`` names a request body needs to be accepted.

The body alone tells: ``tool_addition`` / ``tool_removal`` blocks in a ``role: "system"``
message, or an inline ``tool_definition`` in a ``tool_addition``
(https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages). A
system message alone needs no beta header (the same page); Claude Code 2.1.197 sent
``mid-conversation-system-2026-04-07`` with one, 2.1.337 no longer does, and the SDK's
``AnthropicBetaParam`` does not list it, so tidyctx never adds it. Every name returned here
is one the installed SDK lists (a test checks), so none is one the API does not know.

>>> required_betas({"messages": [
...     {"role": "user", "content": "hi"},
...     {"role": "system", "content": [
...         {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "bash"}}]}]})
['mid-conversation-tool-changes-2026-07-01']
>>> merge_betas("claude-code-20250219", ["inline-tools-2026-09-15"])
'claude-code-20250219,inline-tools-2026-09-15'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "INLINE_TOOLS_BETA",
    "TOOL_CHANGES_BETA",
    "merge_betas",
    "required_betas",
]

TOOL_CHANGES_BETA = "mid-conversation-tool-changes-2026-07-01"
"""``tool_addition`` / ``tool_removal`` blocks in a system message."""

INLINE_TOOLS_BETA = "inline-tools-2026-09-15"
"""A ``tool_addition`` that carries its tool by value (``tool_definition``)."""

_ORDER = (TOOL_CHANGES_BETA, INLINE_TOOLS_BETA)


def required_betas(request: Mapping[str, Any]) -> list[str]:
    """The beta names ``request`` needs in its ``anthropic-beta`` header, in a fixed order
    (empty when it needs none of those tidyctx knows of)."""
    needed: set[str] = set()
    messages = request.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping) or message.get("role") != "system":
            continue
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind in ("tool_addition", "tool_removal"):
                needed.add(TOOL_CHANGES_BETA)
                tool = block.get("tool")
                if isinstance(tool, Mapping) and tool.get("type") == "tool_definition":
                    needed.add(INLINE_TOOLS_BETA)
    return [name for name in _ORDER if name in needed]


def header_betas(value: str | None) -> list[str]:
    """The names in an ``anthropic-beta`` header value (comma-separated, spaces allowed)."""
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def merge_betas(value: str | None, needed: Iterable[str]) -> str:
    """``value`` (an ``anthropic-beta`` header, or None) with each name of ``needed`` it lacks
    appended; ``value`` itself when it lacks none, so a complete header goes on untouched."""
    present = set(header_betas(value))
    missing = [name for name in dict.fromkeys(needed) if name not in present]
    if not missing:
        return value or ""
    return ",".join([value, *missing] if value else missing)
