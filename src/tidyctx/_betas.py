"""required_betas(): the ``anthropic-beta`` names a request body needs to be accepted.

The body alone tells: a ``role: "system"`` message inside ``messages``, ``tool_addition`` /
``tool_removal`` blocks in one, or an inline ``tool_definition`` in a ``tool_addition``
(https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages; the
names are the ones the SDK's ``AnthropicBetaParam`` lists, and the mid-conversation system
one is what Claude Code sends with such messages). Newer copies of that page say a system
message alone needs no beta header; sending it anyway is harmless, and older API versions
asked for it.

>>> required_betas({"messages": [
...     {"role": "user", "content": "hi"},
...     {"role": "system", "content": [
...         {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "bash"}}]}]})
['mid-conversation-system-2026-04-07', 'mid-conversation-tool-changes-2026-07-01']
>>> merge_betas("claude-code-20250219", ["inline-tools-2026-09-15"])
'claude-code-20250219,inline-tools-2026-09-15'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "INLINE_TOOLS_BETA",
    "SYSTEM_MESSAGE_BETA",
    "TOOL_CHANGES_BETA",
    "merge_betas",
    "required_betas",
]

SYSTEM_MESSAGE_BETA = "mid-conversation-system-2026-04-07"
"""A ``role: "system"`` message inside ``messages``."""

TOOL_CHANGES_BETA = "mid-conversation-tool-changes-2026-07-01"
"""``tool_addition`` / ``tool_removal`` blocks in a system message."""

INLINE_TOOLS_BETA = "inline-tools-2026-09-15"
"""A ``tool_addition`` that carries its tool by value (``tool_definition``)."""

_ORDER = (SYSTEM_MESSAGE_BETA, TOOL_CHANGES_BETA, INLINE_TOOLS_BETA)


def required_betas(request: Mapping[str, Any]) -> list[str]:
    """The beta names ``request`` needs in its ``anthropic-beta`` header, in a fixed order
    (empty when it needs none of those tidyctx knows of)."""
    needed: set[str] = set()
    messages = request.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping) or message.get("role") != "system":
            continue
        needed.add(SYSTEM_MESSAGE_BETA)
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
