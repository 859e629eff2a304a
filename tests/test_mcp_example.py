"""examples/mcp_projection.py: @projected on a real MCP tool, called through the official MCP
SDK's client over its in-memory transport (JSON-RPC messages, initialize handshake)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("mcp")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mcp_projection.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcp_projection_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_client_receives_only_the_projected_columns(example: ModuleType) -> None:
    result = asyncio.run(example.call(example.server, limit=500))
    assert not result.is_error
    payload = json.loads(example.text_of(result))
    assert set(payload) == {"count", "rows"}
    assert payload["count"] == 500 and len(payload["rows"]) == 500
    assert all(set(row) == {"id", "status", "total"} for row in payload["rows"])
    original = example.load_orders(limit=500)
    assert payload["rows"] == [
        {k: row[k] for k in ("id", "status", "total")} for row in original["rows"]
    ]
    # The structured result carries the same projection.
    assert result.structured_content == payload


def test_projection_makes_the_payload_much_smaller(example: ModuleType) -> None:
    full = example.text_of(asyncio.run(example.call(example.unprojected, limit=500)))
    slim = example.text_of(asyncio.run(example.call(example.server, limit=500)))
    assert len(json.loads(full)["rows"][0]) == 12
    assert len(slim.encode()) * 4 < len(full.encode())


def test_tool_arguments_and_schema_are_unchanged(example: ModuleType) -> None:
    from mcp import Client

    async def listed() -> dict[str, Any]:
        async with Client(example.server, mode="legacy") as client:
            tools = (await client.list_tools()).tools
            return {tool.name: tool for tool in tools}

    tools = asyncio.run(listed())
    schema = tools["query_orders"].input_schema
    assert set(schema["properties"]) == {"status", "limit"}
    result = asyncio.run(example.call(example.server, status="paid", limit=40))
    payload = json.loads(example.text_of(result))
    assert payload["count"] == 10
    assert {row["status"] for row in payload["rows"]} == {"paid"}


def test_main_prints_the_sizes(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(example.main())
    out = capsys.readouterr().out
    assert "unprojected:" in out and "projected:" in out and "500 rows" in out
