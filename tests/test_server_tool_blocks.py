"""Requests that hold the blocks of Anthropic's server tools (web search, code execution, the MCP
connector), documents, search results, containers and redacted thinking, through every
transform: valid, idempotent, the API's own blocks passed back unchanged, accepted by the SDK."""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

import anthropic

import tidyctx as tc
from builders import server_blocks
from tidyctx.testing import LocalServer

BIG = "\n".join(f"line {i}: value_{i} = {i * 7}" for i in range(3000))


def zoo() -> dict[str, Any]:
    assistant = [
        {"type": "thinking", "thinking": "Search first.", "signature": "c2lnbmF0dXJl"},
        {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search",
         "input": {"query": "weather"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
            {"type": "web_search_result", "url": "https://w.example", "title": "Weather",
             "encrypted_content": "ZW5j" * 500, "page_age": "1 day"}]},
        {"type": "text", "text": "Found it.", "citations": [
            {"type": "web_search_result_location", "url": "https://w.example",
             "title": "Weather", "encrypted_index": "aWR4", "cited_text": "sunny"}]},
        {"type": "mcp_tool_use", "id": "mcptoolu_01", "name": "query", "server_name": "db",
         "input": {"sql": "select *"}},
        {"type": "mcp_tool_result", "tool_use_id": "mcptoolu_01", "is_error": False,
         "content": [{"type": "text", "text": BIG}]},
        {"type": "server_tool_use", "id": "srvtoolu_02", "name": "code_execution",
         "input": {"code": "print(1)"}},
        {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_02", "content": {
            "type": "code_execution_result", "stdout": BIG, "stderr": "", "return_code": 0,
            "content": []}},
        {"type": "tool_use", "id": "toolu_01", "name": "read", "input": {"path": "data.csv"}},
    ]  # fmt: skip
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [
            {"type": "text", "text": "Find the weather and look at data.csv."},
            {"type": "document", "title": "notes",
             "source": {"type": "text", "media_type": "text/plain", "data": BIG}},
            {"type": "search_result", "source": "https://x.example", "title": "r",
             "content": [{"type": "text", "text": BIG[:5000]}]}]},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": [
            {"type": "text", "text": BIG},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}}]}]},
        {"role": "assistant", "content": [
            {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="},
            {"type": "tool_use", "id": "toolu_02", "name": "read", "input": {"path": "b.csv"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": True,
             "content": "boom " + BIG},
            {"type": "container_upload", "file_id": "file_01"}]},
    ]  # fmt: skip
    for i in range(8):
        messages += [
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": f"toolu_x{i}", "name": "read", "input": {"k": i}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"toolu_x{i}", "content": BIG}],
            },
        ]
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "system": "You are terse.",
        "tools": [
            {"name": "read", "description": "Read.", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "messages": messages,
    }


def test_every_transform_passes_server_tool_blocks_back_unchanged(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = zoo()
    tc.validate(request)
    before = copy.deepcopy(request)
    steps = [
        tc.order(),
        tc.slice_code(),
        tc.trim(max_tokens=300, slack=0.5),
        tc.summarize(anthropic_client, trigger=5_000, keep=2),
        tc.cache(),
    ]
    for k in range(1, len(steps) + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no transform warns about a block it knows
            out = tc.pipe(request, *steps[:k])
            tc.validate(out)
            assert tc.pipe(out, *steps[:k]) == out, steps[k - 1]
        anthropic_client.messages.create(**out)  # the local server validates the body
        if k < 4:  # before summarize replaces them with the rest of the old turns
            assert server_blocks(out) == server_blocks(request), steps[k - 1]
    assert request == before
    # The client tools' results were cut; the summary call saw the server blocks' text.
    trimmed = tc.pipe(request, tc.trim(max_tokens=300))
    assert len(json.dumps(trimmed)) < len(json.dumps(request)) // 2
    assert len(local_server.summary_calls()) == 1


def test_clearing_keeps_server_tool_blocks_and_pairs() -> None:
    request = zoo()
    out = tc.pipe(
        request,
        tc.trim(
            clearing=tc.Clearing(
                keep=1, trigger=0, clear_at_least=1_000, clear_tool_inputs=True, clear_images=True
            )
        ),
    )
    tc.validate(out)
    assert server_blocks(out) == server_blocks(request)
    results = [
        b
        for m in out["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert len(results) == 10 and any(b.get("is_error") for b in results)
