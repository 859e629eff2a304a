"""System messages inside ``messages`` and tool changes: what validate accepts and rejects, and
that every transform keeps them where the client put them, as it sent them.

The shapes are the SDK's ``BetaSystemMessageParam`` and ``BetaRequestToolAdditionBlockParam``
(tabled in ``tidyctx._shapes``); their use is described in
https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx._request import errors
from tidyctx.cachesim import layout
from tidyctx.testing import LocalServer

PROPS = settings(max_examples=60)

TOOLS = [
    {"name": "read", "description": "Read a file.", "input_schema": {"type": "object"}},
    {"type": "mcp_toolset", "mcp_server_name": "github"},
]


def _request(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 1024,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "Fix the failing test."}, *messages],
        **extra,
    }


def _system(*content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "system", "content": list(content) if len(content) > 1 else content[0], **extra}


ADD_READ = {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "read"}}


# ---------------------------------------------------------------------------- validate


def test_a_system_message_after_a_user_message_is_valid() -> None:
    tc.validate(_request(_system("Answer in French.", clear_at="next_user_message")))
    tc.validate(_request(_system([{"type": "text", "text": "Be brief."}, ADD_READ])))
    tc.validate(_request({"role": "system", "output_config": {"effort": "low"}}))


def test_turns_alternate_around_system_messages() -> None:
    reply = {"role": "assistant", "content": "Done."}
    tc.validate(_request(_system("Be brief."), reply, {"role": "user", "content": "Thanks."}))
    # Two user turns are still two in a row with a system message between them.
    found = errors(_request(_system("Be brief."), {"role": "user", "content": "Again."}))
    assert [e.path for e in found] == ["messages[2].role"]


def test_a_tool_result_pairs_with_its_tool_use_across_a_system_message() -> None:
    call = {"type": "tool_use", "id": "t1", "name": "read", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
    tc.validate(
        _request(
            {"role": "assistant", "content": [call]},
            _system("The file is large."),
            {"role": "user", "content": [result]},
        )
    )


@pytest.mark.parametrize(
    ("message", "path", "words"),
    [
        ({"role": "system"}, "messages[1]", "needs content or output_config"),
        ({"role": "system", "output_config": {}}, "messages[1]", "needs content or output_config"),
        (_system(" "), "messages[1].content", "empty or whitespace"),
        (_system("x", output_config={"effort": "huge"}), "messages[1].output_config.effort", ""),
        (
            _system("x", output_config={"format": {"type": "json_schema", "schema": {}}}),
            "messages[1].output_config.format",
            "top-level output_config",
        ),
        (
            _system([{"type": "tool_use", "id": "t", "name": "read", "input": {}}]),
            "messages[1].content[0]",
            "holds only text, tool_addition, tool_removal",
        ),
        (
            _system(
                [{"type": "tool_addition", "tool": {"type": "tool_reference", "name": "nope"}}]
            ),
            "messages[1].content[0].tool.name",
            "names no tool declared",
        ),
        (
            _system([{"type": "tool_removal", "tool": {"type": "tool_definition"}}]),
            "messages[1].content[0].tool",
            "a tool_removal needs a tool of type",
        ),
        (
            {"role": "assistant", "content": "ok", "clear_at": "never"},
            "messages[1].clear_at",
            "only a system message may carry clear_at",
        ),
    ],
)
def test_a_broken_system_message_is_named(message: dict[str, Any], path: str, words: str) -> None:
    found = errors(_request(message))
    assert any(e.path == path and words in str(e) for e in found), [str(e) for e in found]


def test_an_inline_tool_definition_can_be_referenced_later() -> None:
    define = {
        "type": "tool_addition",
        "tool": {
            "type": "tool_definition",
            "definition": {"name": "grep", "input_schema": {"type": "object"}},
        },
    }
    remove = {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "grep"}}
    reply = {"role": "assistant", "content": "ok"}
    tc.validate(
        _request(_system([define]), reply, {"role": "user", "content": "go"}, _system([remove]))
    )
    # Referenced before it is defined: named.
    found = errors(
        _request(_system([remove]), reply, {"role": "user", "content": "go"}, _system([define]))
    )
    assert [e.path for e in found] == ["messages[1].content[0].tool.name"]


def test_toolsets_need_no_name_and_markerless_blocks_refuse_a_marker() -> None:
    tc.validate(_request(tools=[{"type": "computer_toolset_20260801"}]))
    listing = {"type": "mcp_tool_listing", "cache_control": {"type": "ephemeral"}}
    found = errors(_request({"role": "assistant", "content": [listing]}))
    assert any(e.path == "messages[1].content[0].cache_control" for e in found)


def test_cache_control_on_a_tool_addition_is_valid() -> None:
    marked = {**ADD_READ, "cache_control": {"type": "ephemeral"}}
    tc.validate(_request(_system([marked])))


# ---------------------------------------------------------------------------- transforms

TRANSFORMS = {
    "order": tc.order(),
    "cache": tc.cache(),
    "trim": tc.trim(max_tokens=50),
    "clear": tc.clear(tc.Clearing(keep=0, trigger=0, clear_at_least=0)),
    "compact": tc.compact(),
    "slice_code": tc.slice_code(max_tokens=100),
}


def _systems(request: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (i, json.dumps(m, sort_keys=True))
        for i, m in enumerate(request["messages"])
        if m["role"] == "system"
    ]


def _with_systems(request: dict[str, Any]) -> bool:
    return any(m["role"] == "system" for m in request["messages"])


@PROPS
@given(gen.requests(min_turns=2).filter(_with_systems), st.sampled_from(sorted(TRANSFORMS)))
def test_every_transform_keeps_system_messages_where_and_as_they_were(
    request: dict[str, Any], name: str
) -> None:
    before = copy.deepcopy(request)
    out = TRANSFORMS[name](request)
    assert request == before
    tc.validate(out)
    assert _systems(out) == _systems(request)
    assert TRANSFORMS[name](out) == out


@settings(max_examples=25)
@given(gen.growing_conversations(min_turns=2, max_turns=6).filter(lambda rs: _with_systems(rs[-1])))
def test_the_pipeline_keeps_system_messages_and_the_cached_prefix(
    requests: list[dict[str, Any]],
) -> None:
    steps = (tc.order(), tc.slice_code(), tc.trim(max_tokens=200), tc.cache())
    sent = [tc.pipe(r, *steps) for r in requests]
    for request, out in zip(requests, sent, strict=True):
        tc.validate(out)
        assert _systems(out) == _systems(request)
    for before, after in itertools.pairwise(sent):
        a, b = layout(before), layout(after)
        if dict(a.seeds).get("images") != dict(b.seeds).get("images"):
            continue  # adding or removing an image invalidates the messages (prompt caching docs)
        for pos, _ in a.breakpoints:
            assert a.keys[pos] in b.keys, a.paths[pos]


def test_the_rolling_breakpoint_stays_before_a_message_shown_once() -> None:
    request = _request(
        _system("Today only: answer in French.", clear_at="next_user_message"),
    )
    out = tc.cache()(request)
    assert out["messages"][1] == request["messages"][1]
    assert out["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}


# ---------------------------------------------------------------------------- LocalServer


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}}, None),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"context_management": {"edits": [{"type": "clear_everything"}]}}, r"edits\[0\]\.type"),
        (
            {
                "context_management": {
                    "edits": [
                        {"type": "clear_tool_uses_20250919"},
                        {"type": "clear_thinking_20251015", "keep": "all"},
                    ]
                }
            },
            "must be listed first",
        ),
    ],
)
def test_the_local_server_checks_todays_settings(extra: dict[str, Any], words: str | None) -> None:
    request = _request(_system("Be brief."), **extra)
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="t", max_retries=0) as client,
    ):
        if words is None:
            reply = client.beta.messages.create(**request)
            assert reply.content
            return
        with pytest.raises(anthropic.BadRequestError, match=words):
            client.beta.messages.create(**request)
