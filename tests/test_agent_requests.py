"""order() and cache() on requests as agents build them: SDK objects in the history, beta-only
keys, documents, search results, citations and server-tool blocks, a 2,000-turn conversation,
a lone surrogate. Each result is valid, stable, and sent by the real SDK to the local server."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, TextBlock, ThinkingBlock, ToolUseBlock, Usage

import tidyctx as tc
from builders import POLICY
from tidyctx._request import ValidationError, cache_markers, to_plain
from tidyctx.testing import LocalServer

EC = {"type": "ephemeral"}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def client_for(server: LocalServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)


def agent_request(**extra: Any) -> dict[str, Any]:
    """A request as an agent builds it: string system with a clock, tools (one with the user's
    own cache_control, two server tools), the SDK response appended as the assistant turn."""
    reply = Message(
        id="msg_01",
        type="message",
        role="assistant",
        model="claude-sonnet-4-6",
        content=[
            ThinkingBlock(type="thinking", thinking="Need the listing.", signature="sig=="),
            TextBlock(type="text", text="Listing the files.", citations=None),
            ToolUseBlock(
                type="tool_use",
                id="toolu_01",
                name="run",
                input={"cmd": "ls", "env": {"Z": "1", "A": [3, {"y": 2, "x": 1}]}},
            ),
        ],
        stop_reason="tool_use",
        stop_sequence=None,
        usage=Usage(input_tokens=10, output_tokens=5),
    )
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4096,
        "system": POLICY + "\r\nCurrent time: 2026-11-25T10:00:00Z\r\nBe kind.",
        "tools": [
            {
                "name": "run",
                "description": "Run a shell command. " * 300,
                "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
                "cache_control": EC,
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "bash_20250124", "name": "bash"},
        ],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-1"},
        "output_config": {"effort": "high"},
        "messages": [
            {"role": "user", "content": "Which files are here? 😀 Привет\r\n" * 50},
            {"role": "assistant", "content": reply.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": "a.py\r\nb.py\r\nnotes 日本語.txt",
                    }
                ],
            },
        ],
    }
    request.update(extra)
    return request


def test_an_agent_request_with_sdk_objects_goes_through_and_the_sdk_sends_it(
    server: LocalServer,
) -> None:
    request = agent_request()
    snapshot = copy.deepcopy(request)
    out = tc.pipe(request, tc.order(), tc.cache())
    assert request == snapshot  # SDK objects included: nothing mutated
    tc.validate(out)
    assert tc.pipe(out, tc.order(), tc.cache()) == out
    assert json.loads(json.dumps(out)) == out  # plain JSON data only
    markers = cache_markers(out)
    assert len(markers) <= 4
    assert out["tools"][[t["name"] for t in out["tools"]].index("run")]["cache_control"] == EC
    assert out["messages"][1]["content"][0]["type"] == "thinking"  # passed back unmodified
    assert "cache_control" not in out["messages"][1]["content"][0]
    response = client_for(server).messages.create(**out)
    assert response.usage.cache_creation_input_tokens > 0
    # The same request again is read from the cache (the local server runs cachesim).
    again = client_for(server).messages.create(**tc.pipe(request, tc.order(), tc.cache()))
    assert again.usage.cache_read_input_tokens == response.usage.cache_creation_input_tokens


def test_beta_only_keys_pass_through_to_the_beta_client(server: LocalServer) -> None:
    request = agent_request(
        betas=["context-management-2025-06-27"],
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        mcp_servers=[{"type": "url", "url": "https://mcp.example.com/sse", "name": "docs"}],
        extra_headers={"x-trace": "1"},
    )
    out = tc.pipe(request, tc.order(), tc.cache())
    for key in ("betas", "context_management", "mcp_servers", "extra_headers"):
        assert out[key] == request[key]
    tc.validate(out)
    assert client_for(server).beta.messages.create(**out).content


def test_documents_search_results_citations_and_server_blocks_go_back_as_received(
    server: LocalServer,
) -> None:
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "The sky is blue."},
        "title": "facts",
        "citations": {"enabled": True},
    }
    search = {
        "type": "search_result",
        "source": "https://example.com/a",
        "title": "A",
        "content": [{"type": "text", "text": "Result text."}],
    }
    cited = {
        "type": "text",
        "text": "The sky is blue.",
        "citations": [
            {
                "type": "char_location",
                "cited_text": "The sky is blue.",
                "document_index": 0,
                "document_title": "facts",
                "start_char_index": 0,
                "end_char_index": 16,
            }
        ],
    }
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": POLICY,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [
            {"role": "user", "content": [document, search, {"type": "text", "text": "Color?"}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_01",
                        "name": "web_search",
                        "input": {"query": "sky"},
                    },
                    {
                        "type": "web_search_tool_result",
                        "tool_use_id": "srvtoolu_01",
                        "content": [
                            {
                                "type": "web_search_result",
                                "url": "https://example.com/sky",
                                "title": "Sky",
                                "encrypted_content": "EqgfCioIARgBIiQ3",
                            }
                        ],
                    },
                    cited,
                ],
            },
            {"role": "user", "content": "And at night?"},
        ],
    }
    out = tc.pipe(request, tc.order(), tc.cache())
    tc.validate(out)
    assert out["messages"][1] == request["messages"][1]  # server blocks go back as received
    assert client_for(server).messages.create(**out).content


def test_a_2000_turn_conversation_is_valid_stable_and_marked_at_both_ends() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Start the audit."}]
    for k in range(2000):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": f"t{k}", "name": "run", "input": {"n": k, "a": 1}}
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{k}", "content": f"ok {k}"}],
            }
        )
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": POLICY + "\nToday is 2026-11-25.",
        "tools": [{"name": "run", "description": "Run.", "input_schema": {"type": "object"}}],
        "messages": messages,
    }
    out = tc.pipe(request, tc.order(), tc.cache())
    tc.validate(out)
    assert tc.pipe(out, tc.order(), tc.cache()) == out
    assert [p for p, _ in cache_markers(out)] == [
        "tools[0]",
        "system[0]",
        "messages[4000].content[0]",
    ]


def test_a_lone_surrogate_is_named_not_a_unicode_error(server: LocalServer) -> None:
    # Half of an emoji, as a tool that cuts UTF-16 text leaves it. The SDK cannot send it...
    broken = "partial \ud83d"
    request = agent_request()
    request["messages"][2]["content"][0]["content"] = broken
    with pytest.raises(UnicodeEncodeError):
        client_for(server).messages.create(**to_plain(request))
    # ...so validate() says where it is, and order()/cache() name it instead of crashing.
    where = "messages[2].content[0].content"
    with pytest.raises(ValidationError, match=r"lone UTF-16 surrogate") as err:
        tc.validate(request)
    assert err.value.path == where
    for transform in (tc.order(), tc.cache()):
        with pytest.raises(ValidationError) as err:
            tc.pipe(request, transform)
        assert err.value.path == where
