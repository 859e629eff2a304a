"""What the Messages API accepts, as tables read from the Anthropic SDK's beta param types.

The SDK's ``anthropic.types.beta`` TypedDicts (``BetaMessageParam``, ``BetaContentBlockParam``,
``BetaToolUnionParam``, ``BetaSystemMessageParam``...) are the most precise machine-readable
statement of the request shapes the API takes, betas included. tidyctx keeps the parts it
checks or acts on as plain tables here, so that validation and the transforms do not depend on
which SDK version is installed; ``tests/test_shapes.py`` reads the same tables out of the
installed SDK's types and fails when they differ, so an API change shows up as a failing test
rather than as a user's 400.

The request shapes are described in https://platform.claude.com/docs/en/api/messages and, for
system messages inside ``messages`` and tool changes,
https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages.

>>> "system" in MESSAGE_ROLES
True
>>> sorted(SYSTEM_MESSAGE_BLOCKS)
['text', 'tool_addition', 'tool_removal']
"""

from __future__ import annotations

__all__ = [
    "CLEAR_AT",
    "CONTEXT_EDITS",
    "EFFORTS",
    "MARKERLESS_BLOCKS",
    "MESSAGE_ROLES",
    "NAMELESS_TOOLS",
    "SYSTEM_MESSAGE_BLOCKS",
    "SYSTEM_MESSAGE_KEYS",
    "SYSTEM_OUTPUT_CONFIG_KEYS",
    "THINKING_TYPES",
    "TOOL_ADDITION_REFS",
    "TOOL_CHANGE_BLOCKS",
    "TOOL_REMOVAL_REFS",
]

MESSAGE_ROLES = ("user", "assistant", "system")
"""``role`` of a message (``BetaMessageParam``: user, assistant and system message params)."""

SYSTEM_MESSAGE_KEYS = frozenset({"role", "content", "clear_at", "output_config"})
"""The keys of a ``role: "system"`` message (``BetaSystemMessageParam``)."""

SYSTEM_MESSAGE_BLOCKS = frozenset({"text", "tool_addition", "tool_removal"})
"""Block types a system message's content may hold (``BetaSystemMessageParam.content``)."""

CLEAR_AT = ("next_user_message", "never")
"""``clear_at`` of a system message; ``"never"`` is the default."""

EFFORTS = ("low", "medium", "high", "xhigh", "max")
"""``output_config.effort``, top-level (``BetaOutputConfigParam``) and per system message
(``BetaSystemMessageOutputConfigParam``)."""

SYSTEM_OUTPUT_CONFIG_KEYS = frozenset({"effort"})
"""What a system message's ``output_config`` holds; ``format`` stays top-level only."""

TOOL_CHANGE_BLOCKS = frozenset({"tool_addition", "tool_removal"})
"""Blocks that change the offered tools from their place in the conversation on."""

TOOL_ADDITION_REFS = frozenset(
    {"tool_reference", "mcp_tool_reference", "mcp_toolset_reference", "tool_definition"}
)
"""``tool.type`` of a ``tool_addition`` block (``BetaRequestToolAdditionBlockParam.tool``)."""

TOOL_REMOVAL_REFS = frozenset({"tool_reference", "mcp_tool_reference", "mcp_toolset_reference"})
"""``tool.type`` of a ``tool_removal`` block: a removal names a tool, never defines one."""

MARKERLESS_BLOCKS = frozenset({"thinking", "redacted_thinking", "mcp_tool_listing", "fallback"})
"""Content block types whose param type has no ``cache_control`` field: a breakpoint cannot
sit on them (every other block of ``BetaContentBlockParam`` may carry one)."""

NAMELESS_TOOLS = frozenset({"mcp_toolset", "browser_toolset_20260801", "computer_toolset_20260801"})
"""``tools`` entries (``BetaToolUnionParam``) that have no ``name``: toolsets, which name their
server or kind instead."""

THINKING_TYPES = ("enabled", "disabled", "between_tools", "adaptive")
"""``thinking.type`` (``BetaThinkingConfigParam``)."""

CONTEXT_EDITS = ("clear_tool_uses_20250919", "clear_thinking_20251015", "compact_20260112")
"""``context_management.edits[].type`` (``BetaContextManagementConfigParam``)."""
