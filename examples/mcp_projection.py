"""Project only the needed columns at the MCP server, before the result reaches the agent.

An orders query returns 12 columns per row; the agent needs three. ``@projected`` sits under
the MCP SDK's ``@server.tool()`` and keeps only ``id``, ``status`` and ``total`` of each row
(and the row ``count``), so the tool result the model reads is a fraction of the size. The
tool's signature and schema are unchanged.

Run it (needs ``pip install mcp``)::

    python examples/mcp_projection.py

It starts the server in-process, connects the SDK's client over its in-memory transport
(real JSON-RPC messages), calls the tool with and without projection and prints the sizes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from tidyctx.text import projected

STATUSES = ("open", "paid", "shipped", "cancelled")


def load_orders(status: str | None = None, limit: int = 500) -> dict[str, Any]:
    """Stand-in for a database query: ``limit`` deterministic orders with 12 columns each."""
    rows = [
        {
            "id": f"ord_{n:05d}",
            "status": STATUSES[n % 4],
            "total": round(10 + (n * 7919) % 50_000 / 100, 2),
            "currency": "EUR",
            "customer_id": f"cus_{n * 31 % 997:04d}",
            "customer_email": f"customer{n * 31 % 997}@example.com",
            "created_at": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
            "shipping_address": f"{n + 1} Long Street, Springfield, 4{n % 1000:03d}",
            "items": 1 + n % 7,
            "notes": "Leave at the door." if n % 3 else "",
            "warehouse": f"wh-{n % 5}",
            "skus": [f"sku-{(n + k) % 300:03d}" for k in range(3)],
        }
        for n in range(limit)
    ]
    if status is not None:
        rows = [row for row in rows if row["status"] == status]
    return {"count": len(rows), "rows": rows, "source": "orders_db"}


server = MCPServer("orders")


@server.tool()
@projected("rows[*].{id,status,total}", "count")
def query_orders(status: str | None = None, limit: int = 500) -> dict[str, Any]:
    """List orders (optionally only those with a status): id, status and total of each."""
    return load_orders(status, limit)


# The same tool without projection, to compare sizes.
unprojected = MCPServer("orders-unprojected")
unprojected.add_tool(load_orders, name="query_orders")


async def call(target: MCPServer, **arguments: Any) -> CallToolResult:
    """Call ``query_orders`` on ``target`` through an MCP client session (in memory)."""
    # mode="legacy": the JSON-RPC handshake and messages over memory streams, as a real
    # client and server exchange them (the default in-process mode skips the framing).
    async with Client(target, mode="legacy") as client:
        return await client.call_tool("query_orders", arguments)


def text_of(result: CallToolResult) -> str:
    """The text the model would read: the result's text content."""
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def main() -> None:
    full = text_of(await call(unprojected, limit=500))
    slim = text_of(await call(server, limit=500))
    rows = json.loads(slim)["rows"]
    print(f"query_orders, {len(rows)} rows; first row as the agent sees it: {rows[0]}")
    print(f"unprojected: {len(full.encode()):>8,} bytes")
    print(f"projected:   {len(slim.encode()):>8,} bytes ({len(slim) / len(full):.0%})")


if __name__ == "__main__":
    asyncio.run(main())
