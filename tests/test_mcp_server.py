"""``tidyctx mcp``: the expand tool served over MCP on stdio, reading the store the transforms
wrote. Every session here is the official MCP SDK's stdio client starting ``python -m tidyctx
mcp --store ...`` as a subprocess (real JSON-RPC over pipes, the initialize handshake); the
store is filled by ``tc.trim`` in this process, as an agent or a proxy would fill it.

The last test runs the real Claude Code CLI (npm ``@anthropic-ai/claude-code``, installed into
the user's cache directory by a fixture; skipped where npm is absent or cannot install) with
the server registered through ``--mcp-config``, against ``LocalServer`` scripted to call the
tool, and checks the tool result Claude Code sends back is the text that was cut.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from tidyctx._cli import main
from tidyctx._markers import store_ids
from tidyctx.store import SQLiteStore, store_text
from tidyctx.testing import LocalServer
from tidyctx.transforms._expand import answer, expand_tool

pytest.importorskip("mcp")

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from tidyctx._mcp import _sendable, expand_server

_LONE = re.compile("[\ud800-\udfff]")

SRC = str(Path(tc.__file__).resolve().parents[1])
T = TypeVar("T")

# A generous bound on one whole session, so that a server that never answers fails the test
# instead of hanging the suite; a busy machine takes seconds.
SESSION_SECONDS = 300


def _log(lines: int = 1_500) -> str:
    """A long tool result with non-ASCII and astral characters, so offsets are checked in
    characters, not bytes or UTF-16 units."""
    return "\n".join(
        f"{i:05d} INFO worker-{i % 7} job {i * 7919 % 10_007} done in {i % 97} ms · é 𝄞"
        for i in range(lines)
    )


def _trim_into(db: Path, original: str) -> tuple[str, str]:
    """Trim a request holding ``original`` as a tool result, with ``db`` as the store; the
    marker the result now holds, and the store id it names."""
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Why did the job fail?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "read_log", "input": {"n": 1}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": original}],
            },
        ],
    }
    with SQLiteStore(db) as store:
        out = tc.trim(max_tokens=400, store=store)(request)
    content = out["messages"][2]["content"][0]["content"]
    text = content if isinstance(content, str) else content[0]["text"]
    marker = next(line for line in text.splitlines() if line.startswith("[tidyctx: "))
    (key,) = store_ids(marker)
    return marker, key


def _server(db: Path | str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "tidyctx", "mcp", "--store", str(db)],
        env={"PYTHONPATH": SRC},
    )


def _session(db: Path | str, body: Callable[[Client], Awaitable[T]], *, mode: str = "legacy") -> T:
    async def run() -> T:
        with anyio.fail_after(SESSION_SECONDS):
            async with Client(_server(db), mode=mode) as client:
                return await body(client)

    return anyio.run(run)


def _text(result: CallToolResult) -> str:
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    return result.content[0].text


# ---------------------------------------------------------------------------- the tool


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_the_server_lists_tidyctx_expand_with_the_expand_tool_schema(
    tmp_path: Path, mode: str
) -> None:
    async def body(client: Client) -> Any:
        return (await client.list_tools()).tools

    tools = _session(tmp_path / "store.db", body, mode=mode)
    assert [tool.name for tool in tools] == ["tidyctx_expand"]
    definition, _ = expand_tool(tc.MemoryStore())
    assert tools[0].input_schema == definition["input_schema"]
    assert tools[0].description is not None
    assert tools[0].description.startswith(definition["description"])
    assert "tidyctx_expand(...)" in tools[0].description
    assert tools[0].annotations is not None and tools[0].annotations.read_only_hint


def test_a_cut_reads_back_exactly_and_page_by_page(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    original = _log()
    SQLiteStore(db).close()  # the server starts first, as it does beside an agent

    async def body(client: Client) -> tuple[str, tuple[int, int], str, list[str], str]:
        await client.list_tools()
        # The cut happens while the server runs: a proxy or an agent writes the store then.
        marker, key = await anyio.to_thread.run_sync(_trim_into, db, original)
        whole = await client.call_tool("tidyctx_expand", {"id": key, "length": 100_000})
        assert not whole.is_error
        call = re.search(r"tidyctx_expand\(id=\"(tc_\w+)\", offset=(\d+), length=(\d+)\)", marker)
        assert call is not None, marker
        offset, length = int(call.group(2)), int(call.group(3))
        pages, at = [], offset
        while at < offset + length:
            args = {"id": key, "offset": at, "length": min(5_000, offset + length - at)}
            page = await client.call_tool("tidyctx_expand", args)
            assert not page.is_error
            pages.append(_text(page))
            at += min(5_000, offset + length - at)
        default = await client.call_tool("tidyctx_expand", {"id": key})
        return key, (offset, length), _text(whole), pages, _text(default)

    key, (offset, length), whole, pages, default = _session(db, body)
    assert len(original) < 100_000 and whole == original
    # Each page is a header line, then exactly the characters asked for.
    cut = ""
    for page in pages:
        head, _, piece = page.partition("\n")
        assert head.startswith(f"[tidyctx: {key} characters ")
        cut += piece
    assert 0 < length < len(original) and cut == original[offset : offset + length]
    head, _, piece = default.partition("\n")
    assert head == f"[tidyctx: {key} characters 0–8,000 of {len(original):,}; next offset 8000]"
    assert piece == original[:8_000]


def test_an_unknown_id_or_bad_arguments_answer_a_text_error_and_the_server_goes_on(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.db"
    with SQLiteStore(db) as store:
        key = store_text(store, "kept text")

    async def body(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("tidyctx_expand", {"id": "tc_0000000000000000"}),
            await client.call_tool("tidyctx_expand", {"id": key, "offset": 50}),
            await client.call_tool("tidyctx_expand", {"id": 7}),
            await client.call_tool("tidyctx_expand", {"id": key}),
        ]

    unknown, past_end, wrong_type, fine = _session(db, body)
    assert unknown.is_error and _text(unknown).startswith(
        "[tidyctx: tidyctx_expand error: no text under id 'tc_0000000000000000'"
    )
    assert past_end.is_error and "past the end" in _text(past_end)
    assert wrong_type.is_error and '"id" must be the id string' in _text(wrong_type)
    assert not fine.is_error and _text(fine) == "kept text"


def test_a_stored_text_that_reads_like_an_error_is_not_flagged_as_one(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    looks_like_error = "[tidyctx: tidyctx_expand error: no text under id 'tc_x']"
    with SQLiteStore(db) as store:
        key = store_text(store, looks_like_error)

    async def body(client: Client) -> CallToolResult:
        return await client.call_tool("tidyctx_expand", {"id": key})

    result = _session(db, body)
    assert not result.is_error and _text(result) == looks_like_error


def test_another_tool_name_is_a_protocol_error(tmp_path: Path) -> None:
    async def body(client: Client) -> str:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("expand", {"id": "tc_0000000000000000"})
        return caught.value.message

    assert "unknown tool 'expand'" in _session(tmp_path / "store.db", body)


def test_lone_surrogates_come_back_as_replacement_characters_under_a_note(
    tmp_path: Path,
) -> None:
    # JSON (and the Messages API) carry a lone surrogate; MCP's UTF-8 JSON-RPC cannot.
    db = tmp_path / "store.db"
    with SQLiteStore(db) as store:
        key = store_text(store, "a\ud800b\udfffc 𝄞")

    async def body(client: Client) -> CallToolResult:
        return await client.call_tool("tidyctx_expand", {"id": key})

    result = _session(db, body)
    assert not result.is_error
    assert _text(result) == (
        "[tidyctx: 2 lone surrogates (unpaired UTF-16 halves) shown as U+FFFD]\na\ufffdb\ufffdc 𝄞"
    )


def test_the_tool_listing_is_the_same_bytes_in_every_process(tmp_path: Path) -> None:
    async def body(client: Client) -> str:
        tools = (await client.list_tools()).tools
        return json.dumps([t.model_dump(mode="json", by_alias=True) for t in tools])

    first = _session(tmp_path / "a.db", body)
    second = _session(tmp_path / "b.db", body)
    assert first == second


# ---------------------------------------------------------------------------- command line


def test_a_store_that_cannot_open_exits_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mcp", "--store", str(tmp_path / "missing" / "store.db")]) == 2
    assert "tidyctx mcp: cannot open the store:" in capsys.readouterr().err
    assert main(["mcp", "--store", "postgres://db/x"]) == 2
    err = capsys.readouterr().err
    assert "unknown kind of store 'postgres'" in err and "redis://" in err


def test_the_server_reads_the_store_in_tidyctx_store_by_default(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with SQLiteStore(db) as store:
        key = store_text(store, "found through the environment")

    async def run() -> CallToolResult:
        server = StdioServerParameters(
            command=sys.executable,
            args=["-m", "tidyctx", "mcp"],
            env={"PYTHONPATH": SRC, "TIDYCTX_STORE": f"sqlite:///{db}"},
        )
        with anyio.fail_after(SESSION_SECONDS):
            async with Client(server, mode="legacy") as client:
                return await client.call_tool("tidyctx_expand", {"id": key})

    result = anyio.run(run)
    assert _text(result) == "found through the environment"


# ---------------------------------------------------------------------------- Claude Code


EXPAND = "mcp__tidyctx__tidyctx_expand"  # Claude Code's name: mcp__<server>__<tool>


def test_claude_code_calls_the_tool_and_gets_the_cut_text_back(
    tmp_path: Path, claude_cli: Path
) -> None:
    db = tmp_path / "store.db"
    original = _log(600)
    _, key = _trim_into(db, original)
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "tidyctx": {
                        "command": sys.executable,
                        "args": ["-m", "tidyctx", "mcp", "--store", str(db)],
                        "env": {"PYTHONPATH": SRC},
                    }
                }
            }
        )
    )
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> Any:
        seen.append(body)
        results = [
            block
            for message in body["messages"]
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]
        if any(block["tool_use_id"] == "toolu_expand1" for block in results):
            return "The log was read back."
        if EXPAND in [tool.get("name") for tool in body.get("tools", [])]:
            return [
                {"type": "tool_use", "id": "toolu_expand1", "name": EXPAND, "input": {"id": key}}
            ]
        return "The tool is missing."

    with LocalServer(responder=responder) as server:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
            "ANTHROPIC_BASE_URL": server.base_url,
            "ANTHROPIC_API_KEY": "test",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            # Wait for the MCP server before the first request (-p connects in the background).
            "MCP_CONNECTION_NONBLOCKING": "false",
        }
        done = subprocess.run(
            [
                str(claude_cli),
                "-p",
                "Read the log back.",
                "--output-format",
                "json",
                "--tools",
                "Read",
                "--mcp-config",
                str(config),
                "--strict-mcp-config",
                "--allowedTools",
                EXPAND,
                "--max-turns",
                "4",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert done.returncode == 0, done.stdout[-2_000:] + done.stderr[-2_000:]
    assert json.loads(done.stdout)["result"] == "The log was read back."
    answered = [
        block
        for message in seen[-1]["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("tool_use_id") == "toolu_expand1"
    ]
    assert len(answered) == 1 and not answered[0].get("is_error")
    content = answered[0]["content"]
    text = content if isinstance(content, str) else "".join(b["text"] for b in content)
    head, _, piece = text.partition("\n")
    assert head == f"[tidyctx: {key} characters 0–8,000 of {len(original):,}; next offset 8000]"
    assert piece == original[:8_000]


# ---------------------------------------------------------------------------- properties

_TEXTS = st.text(st.characters(codec=None, blacklist_categories=()), max_size=300)


@settings(max_examples=60)
@given(
    text=_TEXTS,
    offset=st.one_of(st.none(), st.integers(-2, 400)),
    length=st.one_of(st.none(), st.integers(-1, 400)),
    known=st.booleans(),
)
def test_the_server_answers_what_the_in_process_handler_answers(
    text: str, offset: int | None, length: int | None, known: bool
) -> None:
    store = tc.MemoryStore()
    key = store_text(store, text) if known else "tc_00000000000000ff"
    arguments: dict[str, Any] = {"id": key}
    if offset is not None:
        arguments["offset"] = offset
    if length is not None:
        arguments["length"] = length
    expected, failed = answer(store, "tidyctx_expand", arguments)
    _, handler = expand_tool(store)
    assert handler(arguments) == expected  # the in-process tool and the MCP one agree

    async def call() -> CallToolResult:
        async with Client(expand_server(store), mode="legacy") as client:
            return await client.call_tool("tidyctx_expand", arguments)

    result = anyio.run(call)
    assert result.is_error == failed
    assert _text(result) == _sendable(expected)
    if not _LONE.search(expected):
        assert _text(result) == expected
