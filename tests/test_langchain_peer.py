"""The LangChain prompt-caching peer (benchmarks/peers/langchain_caching.py), run offline.

Every test runs LangChain's real ``create_agent`` + ``AnthropicPromptCachingMiddleware`` +
``ChatAnthropic`` stack; the ``anthropic`` client answers from an ``httpx2.MockTransport``,
and the ``offline`` fixture makes any socket use an error.
"""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from tidyctx._request import cache_markers, validate
from tidyctx.traces import load_run

pytest.importorskip("langchain_anthropic", reason="benchmark peer: pip install langchain-anthropic")
pytest.importorskip("langchain.agents", reason="benchmark peer: pip install langchain")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
peer = importlib.import_module("benchmarks.peers.langchain_caching")

HELLO_WORLD = ROOT / "data" / "traces" / "openhands-sdk-claude-sonnet4-hello-world.json"
EPHEMERAL_5M = {"type": "ephemeral", "ttl": "5m"}


pytestmark = pytest.mark.usefixtures("offline")


def tool(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"Run {name}.",
        "input_schema": {
            "type": "object",
            "properties": {"arg": {"type": "string", "description": "what to run"}},
            "required": ["arg"],
        },
    }


def conversation() -> dict[str, Any]:
    """A 3-turn tool-using conversation: the requests behind assistant messages 1, 3 and 5."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are a careful shell assistant.",
        "tools": [tool("sh"), tool("read")],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is in /tmp?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "sh", "input": {"arg": "ls"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "a.txt"}
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_01B", "name": "read", "input": {"arg": "a"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01B",
                        "content": [{"type": "text", "text": "no such file"}],
                        "is_error": True,
                    }
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "It holds a.txt."}]},
        ],
    }


def turns(full: dict[str, Any]) -> list[dict[str, Any]]:
    messages = full["messages"]
    return [
        {**full, "messages": messages[:i]}
        for i, m in enumerate(messages)
        if m["role"] == "assistant"
    ]


def ids(body: dict[str, Any], block_type: str, key: str) -> list[str]:
    return [
        block[key]
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == block_type
    ]


def test_three_turns_markers_land_where_the_middleware_puts_them() -> None:
    requests = turns(conversation())
    assert len(requests) == 3
    for request in requests:
        body = peer.langchain_request(request)
        validate(body, strict=False)
        # langchain-anthropic 1.7.10 marks the last system block, the last tool, and sets a
        # top-level `cache_control` (automatic caching, which the API puts on the last
        # cacheable block): 3 of the 4 slots, none on message blocks.
        assert peer.marker_paths(body) == ["tools[1]", "system[0]", "cache_control"]
        markers = cache_markers(body)
        assert len(markers) <= 4
        assert all(marker == EPHEMERAL_5M for _, marker in markers)
        assert body["model"] == request["model"]
        assert body["max_tokens"] == request["max_tokens"]
        assert [t["name"] for t in body["tools"]] == ["sh", "read"]
        assert len(body["messages"]) == len(request["messages"])
        # tool_use ids and their tool_result ids come through unchanged and paired.
        sent = ids(request, "tool_use", "id")
        assert ids(body, "tool_use", "id") == sent
        assert ids(body, "tool_result", "tool_use_id") == sent


def test_a_string_system_prompt_becomes_one_marked_text_block() -> None:
    body = peer.langchain_request(turns(conversation())[0])
    assert body["system"] == [
        {
            "type": "text",
            "text": "You are a careful shell assistant.",
            "cache_control": EPHEMERAL_5M,
        }
    ]


def test_system_blocks_get_the_marker_on_the_last_block() -> None:
    request = turns(conversation())[1]
    request["system"] = [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]
    body = peer.langchain_request(request)
    assert peer.marker_paths(body) == ["tools[1]", "system[1]", "cache_control"]


def test_ttl_reaches_every_marker() -> None:
    body = peer.langchain_request(turns(conversation())[2], ttl="1h")
    markers = cache_markers(body)
    assert len(markers) == 3
    assert all(marker == {"type": "ephemeral", "ttl": "1h"} for _, marker in markers)


def test_no_tools_and_no_system_leaves_only_the_top_level_marker() -> None:
    request = turns(conversation())[0]
    del request["tools"], request["system"]
    body = peer.langchain_request(request)
    assert "tools" not in body and "system" not in body
    assert peer.marker_paths(body) == ["cache_control"]


def test_dict_tools_are_sent_verbatim_and_never_tagged() -> None:
    # create_agent treats dict tools as provider built-ins; the middleware only tags
    # BaseTool objects (via extras["cache_control"]), so the tools breakpoint is lost.
    request = turns(conversation())[1]
    body = peer.langchain_request(request, tools_as="dict")
    assert body["tools"] == request["tools"]
    assert peer.marker_paths(body) == ["system[0]", "cache_control"]


def test_base_tools_keep_name_description_and_schema() -> None:
    request = turns(conversation())[0]
    request["tools"][0]["input_schema"]["description"] = "schema-level description"
    body = peer.langchain_request(request)
    sent = {k: v for k, v in body["tools"][0].items() if k != "cache_control"}
    expected = copy.deepcopy(request["tools"][0])
    # LangChain's BaseTool → Anthropic conversion drops the schema's own top-level
    # description (and any "title" keys); everything else is kept.
    del expected["input_schema"]["description"]
    assert sent == expected


def test_conversion_differences_are_langchains() -> None:
    body = peer.langchain_request(turns(conversation())[2])
    results = [b for m in body["messages"] for b in m["content"] if b["type"] == "tool_result"]
    # ChatAnthropic always writes is_error, false where the input had none.
    assert [r["is_error"] for r in results] == [False, True]
    # A lone assistant text block would come back from the API as one TextBlock, which
    # ChatAnthropic stores as a string AIMessage: it is sent as string content.
    request = conversation()
    request["messages"] = [*request["messages"], {"role": "user", "content": "Thanks."}]
    body = peer.langchain_request(request)
    assert body["messages"][-2] == {"role": "assistant", "content": "It holds a.txt."}
    assert body["messages"][-1] == {"role": "user", "content": "Thanks."}


def test_invalid_tool_ids_are_rewritten_consistently() -> None:
    request = turns(conversation())[1]
    request["messages"][1]["content"][1]["id"] = "functions.sh:0"
    request["messages"][2]["content"][0]["tool_use_id"] = "functions.sh:0"
    body = peer.langchain_request(request)
    (new_id,) = ids(body, "tool_use", "id")
    assert new_id.startswith("toolu_") and new_id != "functions.sh:0"
    assert ids(body, "tool_result", "tool_use_id") == [new_id]


def test_input_is_not_modified_and_its_own_markers_are_dropped() -> None:
    request = turns(conversation())[2]
    request["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    request["messages"][3]["content"][0]["input"] = {"arg": "a", "cache_control": "data"}
    before = copy.deepcopy(request)
    body = peer.langchain_request(request)
    assert request == before
    assert peer.marker_paths(body) == ["tools[1]", "system[0]", "cache_control"]
    # A tool input that happens to use the key is data, not a marker.
    assert body["messages"][3]["content"][0]["input"] == {"arg": "a", "cache_control": "data"}


def test_repeated_calls_give_the_same_body() -> None:
    request = turns(conversation())[2]
    assert peer.langchain_request(request) == peer.langchain_request(copy.deepcopy(request))


def test_unsupported_keys_and_ttls_are_refused() -> None:
    with pytest.raises(ValueError, match="tool_choice"):
        peer.langchain_request({**turns(conversation())[0], "tool_choice": {"type": "auto"}})
    with pytest.raises(ValueError, match="ttl"):
        peer.langchain_request(turns(conversation())[0], ttl="10m")


def test_hello_world_trace_every_turn() -> None:
    run = load_run(HELLO_WORLD)
    assert len(run.turns) == 6
    last = len(run.turns[0].request["tools"]) - 1
    for turn in run.turns:
        request = turn.request
        body = peer.langchain_request(request)
        validate(body, strict=False)
        assert peer.marker_paths(body) == [f"tools[{last}]", "system[0]", "cache_control"]
        assert len(cache_markers(body)) <= 4
        assert len(body["messages"]) == len(request["messages"])
        assert body["system"][0]["text"] == request["system"]
        sent = ids(request, "tool_use", "id")
        assert ids(body, "tool_use", "id") == sent
        assert ids(body, "tool_result", "tool_use_id") == sent
