"""order(): sorted canonical tools and inputs, volatile system text moved after the prefix."""

from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import with_system_line
from tidyctx import _request as rq
from tidyctx._edge import start
from tidyctx._memo import DEFAULT_MAX_BYTES, clear_memo, set_memo_limit
from tidyctx._request import ValidationError, validate
from tidyctx.transforms._order import (
    DEFAULT_PATTERNS,
    DYNAMIC_FOOTER,
    DYNAMIC_HEADER,
    is_dynamic_block,
    order,
)

PROPS = settings(max_examples=60)

TIME_LINE = "Current time: 2026-11-25T14:03:22Z"
EC = {"type": "ephemeral"}


def _as_blocks(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` with a string content as its one text block (the API's own reading)."""
    content = message["content"]
    if isinstance(content, str):
        return {**message, "content": [{"type": "text", "text": content}] if content else []}
    return message


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def _dump(value: Any) -> str:
    """The bytes the SDK would send: insertion order, not sorted."""
    return json.dumps(value, ensure_ascii=False)


def _dynamic_text(request: dict[str, Any]) -> str:
    last = [m for m in request["messages"] if m["role"] == "user"][-1]
    blocks = [b for b in last["content"] if is_dynamic_block(b)]
    assert len(blocks) == 1, last["content"]
    assert blocks[0] is last["content"][-1]
    text: str = blocks[0]["text"]
    return text


def _system_text(request: dict[str, Any]) -> str:
    system = request.get("system", [])
    return system if isinstance(system, str) else "\n".join(b["text"] for b in system)


def _request(system: Any, content: Any = "Hello.") -> dict[str, Any]:
    req: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 100}
    if system is not None:
        req["system"] = system
    req["messages"] = [{"role": "user", "content": content}]
    return req


# ---------------------------------------------------------------------------- properties


@st.composite
def _maybe_volatile(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = draw(gen.requests(with_cache_control=True))
    if draw(st.booleans()):
        request = with_system_line(request, TIME_LINE)
    return request


@PROPS
@given(_maybe_volatile())
def test_idempotent(request: dict[str, Any]) -> None:
    once = order()(request)
    assert order()(once) == once
    assert _dump(order()(once)) == _dump(once)


@PROPS
@given(_maybe_volatile(), st.data())
def test_idempotent_with_integer_pins(request: dict[str, Any], data: st.DataObject) -> None:
    n = len(tc.normalize(request).get("system") or [])
    indexes = data.draw(st.lists(st.integers(-n, n), max_size=3, unique=True)) if n else []
    split = data.draw(st.integers(0, len(indexes)))
    stable, dynamic = indexes[:split], indexes[split:]
    if {i % n for i in stable if -n <= i < n} & {i % n for i in dynamic if -n <= i < n}:
        return
    t = order(stable=stable, dynamic=dynamic)
    once = t(request)
    assert t(once) == once
    validate(once)


@PROPS
@given(_maybe_volatile())
def test_pure(request: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(request)
    order()(request)
    assert request == snapshot
    assert _dump(request) == _dump(snapshot)


@PROPS
@given(_maybe_volatile())
def test_output_is_valid(request: dict[str, Any]) -> None:
    validate(order()(request))


@PROPS
@given(_maybe_volatile())
def test_the_body_copies_what_it_changes_and_leaves_its_input_alone(
    request: dict[str, Any],
) -> None:
    plain, _ = start(_reversed_keys(request))  # tool inputs out of order: they get rewritten
    snapshot = copy.deepcopy(plain)
    out = order().apply(plain)
    assert _dump(plain) == _dump(snapshot)
    assert _dump(out) == _dump(order().apply(copy.deepcopy(snapshot)))
    assert _dump(order().apply(copy.deepcopy(out))) == _dump(out)


@settings(max_examples=30)
@given(gen.growing_conversations(), st.booleans())
def test_a_remembered_system_scan_changes_no_output(
    session: list[dict[str, Any]], evict: bool
) -> None:
    t = order()
    try:
        for request in session:
            if evict:
                set_memo_limit(500)
            got = _dump(t(with_system_line(request, TIME_LINE)))
            clear_memo()
            assert got == _dump(order()(with_system_line(request, TIME_LINE)))
    finally:
        set_memo_limit(DEFAULT_MAX_BYTES)


@PROPS
@given(gen.requests(with_cache_control=True))
def test_tools_are_sorted_and_canonical(request: dict[str, Any]) -> None:
    out = order()(request)
    tools = out.get("tools", [])
    assert [t["name"] for t in tools] == sorted(t["name"] for t in request.get("tools", []))
    for tool in tools:
        assert json.dumps(tool) == json.dumps(tool, sort_keys=True)
    # Same definitions, only their order and key order changed (markers aside).
    strip = [{k: v for k, v in t.items() if k != "cache_control"} for t in tools]
    given_tools = [
        {k: v for k, v in t.items() if k != "cache_control"} for t in request.get("tools", [])
    ]
    assert sorted(map(rq.canonical_json, strip)) == sorted(map(rq.canonical_json, given_tools))
    assert len(rq.cache_markers(out)) <= len(rq.cache_markers(request))


@PROPS
@given(gen.requests())
def test_tool_inputs_are_canonical_and_messages_stay_in_place(request: dict[str, Any]) -> None:
    out = order()(request)
    assert len(out["messages"]) == len(request["messages"])
    for got, want in zip(out["messages"], request["messages"], strict=True):
        content = got["content"]
        if isinstance(content, list) and content and is_dynamic_block(content[-1]):
            # The one change outside tool inputs: the moved lines, in a block appended to the
            # last user message (a string content becomes its text block to make room).
            content = content[:-1]
            if isinstance(want["content"], str):
                assert content == (
                    [{"type": "text", "text": want["content"]}] if want["content"] else []
                )
                continue
        if isinstance(want["content"], str):
            assert content == want["content"]
            continue
        for b, w in zip(content, want["content"], strict=True):
            if w["type"] == "tool_use":
                assert _dump(b["input"]) == json.dumps(
                    w["input"], sort_keys=True, ensure_ascii=False
                )
                assert _dump({**b, "input": None}) == _dump({**w, "input": None})
            else:
                assert _dump(b) == _dump(w)


@PROPS
@given(gen.growing_conversations(), st.data())
def test_prefix_is_stable_while_the_conversation_grows(
    turns: list[dict[str, Any]], data: st.DataObject
) -> None:
    outs = []
    for k, request in enumerate(turns):
        # A timestamp that changes every turn, and tools rebuilt in another order every turn.
        request = with_system_line(request, f"Now: 2026-11-25T14:{k:02d}:{7 * k % 60:02d}Z")
        if request.get("tools"):
            shuffled = data.draw(st.permutations(request["tools"]))
            request["tools"] = [_reversed_keys(t) if k % 2 else t for t in shuffled]
        out = order()(request)
        validate(out)
        outs.append(out)
    for before, after in itertools.pairwise(outs):
        assert _dump(before.get("tools")) == _dump(after.get("tools"))
        assert _dump(before.get("system")) == _dump(after.get("system"))
        # order() edits the latest user message only; system messages after it stay as sent.
        n = max(i for i, m in enumerate(before["messages"]) if m["role"] == "user") + 1
        assert _dump(before["messages"][: n - 1]) == _dump(after["messages"][: n - 1])
        assert _dump(before["messages"][n:]) == _dump(
            after["messages"][n : len(before["messages"])]
        )
        last = copy.deepcopy(before["messages"][n - 1])
        assert is_dynamic_block(last["content"][-1])
        last["content"] = [b for b in last["content"] if not is_dynamic_block(b)]
        # A string content made room for the dynamic block as its one text block: the
        # Messages API reads the two forms as the same content.
        assert _dump(last) == _dump(_as_blocks(after["messages"][n - 1]))
        assert not any(is_dynamic_block(b) for b in after["messages"][n - 1]["content"])


@PROPS
@given(gen.message_lists())
def test_a_message_list_through_pipe(messages: list[dict[str, Any]]) -> None:
    snapshot = copy.deepcopy(messages)
    out = tc.pipe(messages, order())
    assert isinstance(out, list) and len(out) == len(messages)
    assert messages == snapshot
    validate({"messages": out})
    assert tc.pipe(out, order()) == out


# ---------------------------------------------------------------------------- volatile lines


@pytest.mark.parametrize(
    "line",
    [
        "Session start: 2026-11-25T14:03:22.512+01:00",
        "Today's date is 2026-11-25",
        "Today is Tuesday, November 25.",
        "Current time: 14:03:22",
        "It is 2:03 PM in Paris.",
        "Request id 123e4567-e89b-12d3-a456-426614174000",
        "Previous request: req_011CXqXVfVqMJd8rzkVKPZDM",
        "Trace d41d8cd98f00b204e9800998ecf8427e",
        "Turn 12 of the session",
        "This is iteration 3.",
        "Handling request #42",
        "The session started 5 minutes ago.",
        "Tokens used: 12,345",
        "Clock: 1764079402",
    ],
)
def test_each_default_pattern_moves_its_line(line: str) -> None:
    req = _request(f"You are a careful coding agent.\n{line}\nAnswer briefly.")
    out = order()(req)
    assert _system_text(out) == "You are a careful coding agent.\nAnswer briefly."
    assert _dynamic_text(out) == f"{DYNAMIC_HEADER}\n{line}\n{DYNAMIC_FOOTER}"


@pytest.mark.parametrize(
    "line",
    [
        "You are a helpful assistant.",
        "Step 1: read the file. Step 2: fix it.",
        "Use Python 3.11; dates follow RFC 3339.",
        "Reply in at most 3 sentences per turn.",
        "Screens are 16:9.",
        "Fix the bug in src/app.py, line 42: the function returns None instead of a list.",
    ],
)
def test_a_static_line_stays(line: str) -> None:
    req = _request(line)
    out = order()(req)
    assert _dump(out) == _dump(req)


def test_default_patterns_are_compiled_and_labelled() -> None:
    assert DEFAULT_PATTERNS and all(isinstance(p, re.Pattern) for p in DEFAULT_PATTERNS)
    assert all(p.groupindex for p in DEFAULT_PATTERNS)


def test_lines_move_in_order_and_the_system_keeps_its_shape() -> None:
    req = _request(
        [
            {"type": "text", "text": "Rules.\nTurn 4\nMore rules.\nNow: 14:03:22\n"},
            {"type": "text", "text": "Session 8f14e45fceea167a5a36dedd4bea2543"},
            {"type": "text", "text": "Be brief."},
        ]
    )
    out = order()(req)
    assert out["system"] == [
        {"type": "text", "text": "Rules.\nMore rules.\n"},
        {"type": "text", "text": "Be brief."},
    ]
    assert _dynamic_text(out) == (
        "<system-context>\nTurn 4\nNow: 14:03:22\nSession 8f14e45fceea167a5a36dedd4bea2543\n"
        "</system-context>"
    )


def test_an_all_volatile_system_is_removed() -> None:
    out = order()(_request("Current time: 14:03:22"))
    assert "system" not in out
    assert list(out) == ["model", "max_tokens", "messages"]


def test_a_marker_span_moves_as_a_span() -> None:
    req = _request("Be kind.\nUser: <dynamic>Alice\n3 unread mails</dynamic> (see inbox)\nEnd.")
    out = order()(req)
    assert _system_text(out) == "Be kind.\nUser:  (see inbox)\nEnd."
    assert _dynamic_text(out) == "<system-context>\nAlice\n3 unread mails\n</system-context>"


def test_an_unbalanced_marker_is_named() -> None:
    with pytest.raises(ValidationError, match=r"system: unbalanced <dynamic> tag"):
        order()(_request("Context: <dynamic>Alice"))
    with pytest.raises(ValidationError, match=r"system\[1\]: unbalanced </dynamic> tag"):
        order()(_request([{"type": "text", "text": "A."}, {"type": "text", "text": "</dynamic>"}]))
    # A stable pin keeps such a block verbatim, unscanned.
    out = order(stable=[0])(_request("Context: <dynamic>Alice"))
    assert _system_text(out) == "Context: <dynamic>Alice"


def test_system_given_as_a_string_and_content_as_a_string() -> None:
    out = order()(_request("Be brief.\n" + TIME_LINE, content="What time is it?"))
    assert out["system"] == "Be brief."  # a string stays a string
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "What time is it?"},
        {"type": "text", "text": f"<system-context>\n{TIME_LINE}\n</system-context>"},
    ]


def test_tool_results_stay_first_and_only_the_last_user_message_changes() -> None:
    req = {
        "system": "Agent.\n" + TIME_LINE,
        "messages": [
            {"role": "user", "content": "List files."},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "ls", "input": {"b": 1, "a": 2}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x.py"}],
            },
        ],
    }
    out = order()(req)
    validate(out)
    last = out["messages"][2]["content"]
    assert [b["type"] for b in last] == ["tool_result", "text"]
    assert is_dynamic_block(last[1])
    assert out["messages"][0]["content"] == "List files."
    assert out["messages"][2]["content"][0]["content"] == "x.py"
    assert list(out["messages"][1]["content"][0]["input"]) == ["a", "b"]
    assert list(order(canonical_inputs=False)(req)["messages"][1]["content"][0]["input"]) == [
        "b",
        "a",
    ]


def test_the_dynamic_block_goes_to_the_last_user_message_before_a_prefill() -> None:
    req = _request(TIME_LINE + "\nBe brief.")
    req["messages"].append({"role": "assistant", "content": "Sure:"})
    out = order()(req)
    assert is_dynamic_block(out["messages"][0]["content"][-1])
    assert out["messages"][1]["content"] == "Sure:"


def test_messages_and_tools_are_never_scanned() -> None:
    req = _request("Be brief.", content=TIME_LINE)
    req["tools"] = [{"name": "t", "description": TIME_LINE, "input_schema": {"type": "object"}}]
    out = order()(req)
    assert out["messages"][0]["content"] == TIME_LINE
    assert out["tools"][0]["description"] == TIME_LINE


# ---------------------------------------------------------------------------- options


def test_stable_and_dynamic_pins() -> None:
    system = [
        {"type": "text", "text": "Policy as of 2026-01-01: be polite."},
        {"type": "text", "text": "Context: Alice is on the Pro plan."},
        {"type": "text", "text": "Knowledge cutoff 2025-06-01.\nBe brief."},
    ]
    out = order(stable=[0], dynamic=["Context:"])(_request(system))
    assert [b["text"] for b in out["system"]] == [
        "Policy as of 2026-01-01: be polite.",
        "Be brief.",
    ]
    assert _dynamic_text(out) == (
        "<system-context>\nContext: Alice is on the Pro plan.\nKnowledge cutoff 2025-06-01.\n"
        "</system-context>"
    )
    out = order(stable=["cutoff"], dynamic=[-3])(_request(system))
    assert [b["text"] for b in out["system"]] == [
        "Context: Alice is on the Pro plan.",
        "Knowledge cutoff 2025-06-01.\nBe brief.",
    ]
    with pytest.raises(ValueError, match=r"system\[1\] is pinned both stable"):
        order(stable=[1], dynamic=["Alice"])(_request(system))
    with pytest.raises(TypeError, match="indexes"):
        order(stable=[1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty substring"):
        order(dynamic=[""])


def test_integer_pins_do_not_eat_the_system_when_applied_twice() -> None:
    system = [{"type": "text", "text": f"Block {c}."} for c in "ABC"]
    t = order(dynamic=[-1])
    once = t(_request(system))
    assert [b["text"] for b in once["system"]] == ["Block A.", "Block B."]
    assert t(once) == once


def test_user_patterns_extend_or_replace_the_defaults() -> None:
    req = _request(f"Deployed build 812.\n{TIME_LINE}\nBe brief.")
    out = order(patterns=[r"build \d+"])(req)
    assert _system_text(out) == "Be brief."
    only = order(patterns=[re.compile(r"(?P<build>build \d+)")], default_patterns=False)
    out = only(req)
    assert _system_text(out) == f"{TIME_LINE}\nBe brief."
    assert only.describe(req, out) == "moved 1 volatile system line (build) after the cached prefix"
    assert order(patterns="build", default_patterns=False)(req)["system"] == (
        f"{TIME_LINE}\nBe brief."
    )


def test_a_bad_pattern_is_named() -> None:
    with pytest.raises(ValueError, match=r"invalid regular expression '\[0-9'"):
        order(patterns=["[0-9"])
    with pytest.raises(ValueError, match="matches the empty string"):
        order(patterns=["x*"])
    with pytest.raises(TypeError, match="strings or compiled regexes"):
        order(patterns=[42])  # type: ignore[list-item]


def test_sort_tools_false_leaves_the_tools_alone() -> None:
    tools = [
        {"name": "b", "input_schema": {"type": "object"}, "description": "B"},
        {"name": "a", "description": "A", "input_schema": {"type": "object"}},
    ]
    req = {**_request(None), "tools": tools}
    assert _dump(order(sort_tools=False)(req)["tools"]) == _dump(tools)
    out = order()(req)
    assert _dump(out["tools"]) == _dump(
        [
            {"description": "A", "input_schema": {"type": "object"}, "name": "a"},
            {"description": "B", "input_schema": {"type": "object"}, "name": "b"},
        ]
    )


def test_server_tools_sort_by_name_with_the_others() -> None:
    tools = [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"name": "bash", "input_schema": {"type": "object"}},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    ]
    out = order()({**_request(None), "tools": tools})
    assert [t["name"] for t in out["tools"]] == [
        "bash",
        "str_replace_based_edit_tool",
        "web_search",
    ]
    assert list(out["tools"][2]) == ["max_uses", "name", "type"]


# ---------------------------------------------------------------------------- cache_control


def _tool(name: str, marker: dict[str, str] | None = None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "input_schema": {"type": "object"}}
    if marker is not None:
        tool["cache_control"] = marker
    return tool


def test_the_last_tool_marker_follows_the_end_of_the_list() -> None:
    eph = {"type": "ephemeral"}
    req = {**_request(None), "tools": [_tool("m", eph), _tool("z"), _tool("a", eph)]}
    out = order()(req)
    assert [(t["name"], "cache_control" in t) for t in out["tools"]] == [
        ("a", False),
        ("m", True),
        ("z", True),
    ]
    validate(out)


def test_tool_markers_keep_the_ttl_order() -> None:
    h1, m5 = {"type": "ephemeral", "ttl": "1h"}, {"type": "ephemeral", "ttl": "5m"}
    req = {**_request(None), "tools": [_tool("z", h1), _tool("a", m5), _tool("q", m5)]}
    validate(req)
    out = order()(req)
    validate(out)
    assert [t.get("cache_control") for t in out["tools"]] == [h1, None, m5]


def test_a_system_block_keeps_its_marker_or_hands_it_back() -> None:
    eph = {"type": "ephemeral"}
    system: list[dict[str, Any]] = [
        {"type": "text", "text": "Static rules."},
        {"type": "text", "text": "More rules.\n" + TIME_LINE, "cache_control": eph},
    ]
    out = order()(_request(system))
    assert out["system"][1] == {"type": "text", "text": "More rules.", "cache_control": eph}

    system[1]["text"] = TIME_LINE
    t = order()
    out = t(_request(system))
    assert out["system"] == [{"type": "text", "text": "Static rules.", "cache_control": eph}]
    assert "cache_control" not in out["messages"][0]["content"][-1]
    assert "moved the cache_control of system[1] to the block before" in t.describe(
        _request(system), out
    )
    validate(out)


def test_a_marker_with_no_system_block_before_it_goes_to_the_last_tool() -> None:
    eph = {"type": "ephemeral"}
    system = [{"type": "text", "text": TIME_LINE, "cache_control": eph}]
    req = {**_request(system), "tools": [_tool("b"), _tool("a")]}
    out = order()(req)
    assert "system" not in out
    assert out["tools"][-1] == {
        "cache_control": eph,
        "input_schema": {"type": "object"},
        "name": "b",
    }
    out = order()(_request(system))
    assert rq.cache_markers(out) == []
    assert "dropped a system cache_control" in order().describe(_request(system), out)


# ---------------------------------------------------------------------------- idempotence, shape


def test_an_ordered_request_is_left_as_it_is() -> None:
    once = order()(_request("Be brief.\n" + TIME_LINE))
    # The caller refreshes nothing and sends it again: nothing is added, nothing merged.
    twice = order()(once)
    assert twice == once
    assert order().describe(once, twice) == (
        "system already ordered (the last user message has the dynamic block)"
    )


def test_a_request_without_messages_is_named() -> None:
    with pytest.raises(
        ValidationError, match=r"messages: missing\. order\(\) needs the conversation"
    ):
        order()({"model": "claude-sonnet-4-6", "system": "x"})
    with pytest.raises(ValidationError, match="messages: is empty"):
        order()({"messages": []})
    with pytest.raises(ValidationError, match="expected a dict of create"):
        order()("hi")


def test_a_message_list_gets_no_keys() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert tc.pipe(messages, order()) == messages


def test_name_and_describe() -> None:
    assert order().name == "order()"
    assert order(sort_tools=False, stable=[0]).name == "order(sort_tools=False, stable=[0])"
    tools = [_tool(n) for n in "dcba"]
    req = {
        **_request(
            f"Agent.\nid 123e4567-e89b-12d3-a456-426614174000\n{TIME_LINE}\n"
            "Session started 5 minutes ago"
        ),
        "tools": tools,
    }
    t = order()
    out = t(req)
    assert t.describe(req, out) == (
        "sorted 4 tools; moved 3 volatile system lines (uuid, timestamp, relative time) "
        "after the cached prefix"
    )
    assert t.describe(out, out) == (
        "4 tools already in order; system already ordered (the last user message has the "
        "dynamic block)"
    )
    assert order().describe(_request(None), _request(None)) == "nothing to reorder"
    report = tc.explain(req, t)
    assert "moved 3 volatile system lines" in str(report)


def test_a_whitespace_only_system_string_passes_order() -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": "  \n ",
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = tc.pipe(request, tc.order(), tc.cache())
    assert out["system"] == "  \n "
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": EC}]}
    ]


def test_many_dynamic_tags_are_scanned_in_one_pass() -> None:
    # 10,000 unclosed tags: the first has no close after it, so the scan stops there and names
    # the block (a regex that retried from every tag took seconds on this).
    with pytest.raises(ValidationError, match=r"system: unbalanced <dynamic> tag"):
        order()(_request("<dynamic>x\n" * 10_000))
    text = "".join(f"Rule {i}. <dynamic>v{i}</dynamic>\n" for i in range(10_000))
    out = order()(_request(text))
    assert _system_text(out) == "".join(f"Rule {i}. \n" for i in range(10_000))
    assert _dynamic_text(out).count("\n") == 10_001
