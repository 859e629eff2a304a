"""``tidyctx mcp``: the expand tool as an MCP server, for agents that cannot be given a tool
in code (Claude Code, or any agent behind ``tidyctx proxy``).

The server speaks MCP over stdio (https://modelcontextprotocol.io/specification) with the
official SDK (the ``mcp`` extra) and offers one tool, ``tidyctx_expand``: the definition and
handler of :func:`tidyctx.transforms._expand.expand_tool`, over the store the transforms
wrote the cuts to (:func:`tidyctx.store.open_store`: the same URL, or the default SQLite file
in the user's cache directory). Register it with the agent once::

    claude mcp add tidyctx -- tidyctx mcp

The tool keeps the name the markers write (``tidyctx_expand(id=...)``). An agent sees an MCP
tool under a name its client makes (Claude Code: ``mcp__<server>__<tool>``, so
``mcp__tidyctx__tidyctx_expand``); keeping ``tidyctx_expand`` inside that name, and saying so
in the description, lets the model match a marker to the tool whatever the client and
whatever the server was registered as, while the markers stay the same bytes in every setup
(in process, behind a proxy, in a replay), so cached prefixes and store ids stay shared.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tidyctx import __version__
from tidyctx._markers import EXPAND_TOOL
from tidyctx.store import Store
from tidyctx.transforms._expand import answer, expand_tool

if TYPE_CHECKING:
    from mcp.server import Server

__all__ = ["SERVER_NAME", "TOOL_NAME", "expand_server", "serve_stdio"]

SERVER_NAME = "tidyctx"
"""The server's name in the MCP handshake; also the name the docs register it under."""

TOOL_NAME = EXPAND_TOOL
"""The tool's name: the one the markers write."""

_INSTRUCTIONS = (
    "tidyctx shortens large tool results to save context. A line that starts with "
    '"[tidyctx: " (or a JSON element {"tidyctx": "[tidyctx: ..."}) stands for text that was '
    'cut, compacted or cleared, and names its id (id="tc_..."); call the tidyctx_expand tool '
    "of this server with that id, and the offset and length the marker gives, to read the "
    "original text when the task needs it."
)


def _description(base: str) -> str:
    return (
        base + " Markers call it tidyctx_expand(...): that is this tool, under whatever prefix "
        "the client puts before the names of MCP tools."
    )


# Surrogate code points: a lone half (JSON's "\ud800"), or, rarely, the two halves of a pair
# kept as two code points; UTF-8 encodes neither.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _sendable(text: str) -> str:
    """``text`` as MCP can carry it: the SDK writes JSON-RPC as UTF-8, which has no lone
    surrogates (JSON and the Messages API do), so each becomes U+FFFD, one character for one
    so that offsets still count the same, under a line saying so."""
    found = len(_LONE_SURROGATE.findall(text))
    if not found:
        return text
    what = "lone surrogate" if found == 1 else "lone surrogates"
    note = f"[tidyctx: {found:,} {what} (unpaired UTF-16 halves) shown as U+FFFD]\n"
    return note + _LONE_SURROGATE.sub("\ufffd", text)


def _import_mcp() -> Any:
    try:
        import mcp.server
        import mcp_types
    except ImportError as err:
        raise ImportError("tidyctx mcp needs the MCP SDK: pip install 'tidyctx[mcp]'") from err
    return mcp.server, mcp_types


def expand_server(store: Store) -> Server[Any]:
    """An MCP server (the SDK's low-level ``mcp.server.Server``) offering ``tidyctx_expand``
    over ``store``.

    ``tools/list`` gives the tool with the expand tool's input schema, as
    :func:`~tidyctx.transforms._expand.expand_tool` defines it; ``tools/call`` answers with
    one text block: the stored text (or a piece of it), or an error the model can act on
    (unknown id, bad argument, a store that fails) with ``isError`` set. A call naming another
    tool gets an MCP ``invalid params`` error. The store is read in a worker thread, so a slow
    disk or Redis server never stalls the connection.
    """
    server_module, types = _import_mcp()
    import anyio.to_thread
    from mcp.shared.exceptions import MCPError

    definition, _ = expand_tool(store, name=TOOL_NAME)  # checks that ``store`` is a Store
    tool = types.Tool(
        name=TOOL_NAME,
        title="Read back text tidyctx removed",
        description=_description(definition["description"]),
        input_schema=definition["input_schema"],
        annotations=types.ToolAnnotations(
            read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: Any) -> Any:
        if params.name != TOOL_NAME:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name!r}; use {TOOL_NAME}")
        arguments = params.arguments if params.arguments is not None else {}
        text, failed = await anyio.to_thread.run_sync(answer, store, TOOL_NAME, arguments)
        content = [types.TextContent(text=_sendable(text))]
        return types.CallToolResult(content=content, is_error=failed)

    server: Server[Any] = server_module.Server(
        SERVER_NAME,
        version=__version__,
        instructions=_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    return server


async def serve_stdio(store: Store) -> None:
    """Serve :func:`expand_server` over this process's stdin and stdout until stdin closes."""
    server = expand_server(store)
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
