"""order() + cache() change only what they are for: the output of
``pipe(x, order(), cache())`` differs from ``x`` only in ``cache_control`` markers and in what
order() documents that it moves (tools sorted with their keys, tool_use input keys sorted,
volatile system lines moved to the last user message). String contents stay strings, keys keep
their order, whitespace stays, and the API's own blocks (thinking with its signature, server
tools) go back byte for byte."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx._markers import MARKER_PREFIX
from tidyctx._request import canonical_json
from tidyctx.transforms._order import DYNAMIC_FOOTER, DYNAMIC_HEADER, is_dynamic_block

PROPS = settings(max_examples=150)

_SERVER_PAIRS: list[list[dict[str, Any]]] = [
    [
        {"type": "server_tool_use", "id": "srvtoolu_{k}", "name": "web_search",
         "input": {"query": "weather", "allowed_domains": ["w.example"]}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_{k}", "content": [
            {"type": "web_search_result", "url": "https://w.example", "title": "W",
             "encrypted_content": "ZW5jcnlwdGVk", "page_age": "1 day"}]},
    ],
    [
        {"type": "mcp_tool_use", "id": "mcptoolu_{k}", "name": "query", "server_name": "db",
         "input": {"z": 1, "sql": "select 1", "a": {"y": 2, "b": 3}}},
        {"type": "mcp_tool_result", "tool_use_id": "mcptoolu_{k}", "is_error": False,
         "content": [{"type": "text", "text": "rows: 1\n  trailing  "}]},
    ],
    [
        {"type": "server_tool_use", "id": "srvtoolu_c{k}", "name": "code_execution",
         "input": {"code": "print(1)"}},
        {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_c{k}", "content": {
            "type": "code_execution_result", "stdout": "1\n", "stderr": "", "return_code": 0,
            "content": []}},
    ],
]  # fmt: skip

_SYSTEM_LINES = (
    "Current time: 2026-11-25T14:03:22Z",
    "The current time is 2024-05-15 15:00:00 EST.",
    "Session 8f14e45fceea167a5a36dedd4bea2543",
)


def _fill(block: Any, k: int) -> Any:
    text = json.dumps(block).replace("{k}", str(k))
    return json.loads(text)


def _shuffled_keys(value: Any, rnd: Any) -> Any:
    """``value`` with every dict's keys in a drawn order (a client that builds its dicts in
    another order than tidyctx would)."""
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: _shuffled_keys(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [_shuffled_keys(v, rnd) for v in value]
    return value


@st.composite
def client_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request as a client builds it: string and block contents and tool results,
    signed thinking, server-tool blocks, keys in any order, a system prompt with or without a
    volatile-looking line, odd whitespace, the caller's own markers sometimes."""
    request: dict[str, Any] = draw(gen.requests(with_cache_control=draw(st.booleans())))
    k = 0
    for message in request["messages"]:
        if message["role"] != "assistant" or not draw(st.booleans()):
            continue
        content = message["content"]
        at = next(
            (
                i
                for i, b in enumerate(content)
                if b["type"] not in ("thinking", "redacted_thinking")
            ),
            len(content),
        )
        pair = _SERVER_PAIRS[draw(st.integers(0, len(_SERVER_PAIRS) - 1))]
        content[at:at] = [_fill(b, k) for b in pair]
        k += 1
    if draw(st.booleans()):
        line = draw(st.sampled_from(_SYSTEM_LINES))
        edge = draw(st.sampled_from(("\n", "\r\n", "\n  \n", "\n\t")))
        system = request.get("system")
        if system is None:
            request["system"] = line + edge + "Be brief.  "
        elif isinstance(system, str):
            request["system"] = system + edge + line + draw(st.sampled_from(("", "  ", "\n")))
        else:
            system[-1]["text"] += edge + line
    rnd = draw(st.randoms(use_true_random=False))
    messages = _shuffled_keys(request.pop("messages"), rnd)
    tools = request.pop("tools", None)
    request["messages"] = messages
    if tools is not None:
        request["tools"] = _shuffled_keys(tools, rnd)
    tc.validate(request)
    return request


# ---------------------------------------------------------------------------- what may change


def _dump(value: Any) -> str:
    """The bytes the SDK sends: keys in insertion order."""
    return json.dumps(value, ensure_ascii=False)


def _no_marker(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if out.get("type") == "tool_result" and isinstance(out.get("content"), list):
        out["content"] = [_no_marker(b) for b in out["content"]]
    return out


def _content(got: Any, given: Any, *, made_room: bool = False) -> Any:
    """``got`` (a system or message content of the output) without markers; where the client
    gave a string, the one text block that carries a marker (or that made room for the moved
    lines) is read back as that string. Any other change of form fails."""
    if isinstance(given, str) and isinstance(got, list):
        if not given:
            assert got == [], got
            return given
        (block,) = got
        assert "cache_control" in block or made_room, block
        assert _dump(_no_marker(block)) == _dump({"type": "text", "text": given})
        return given
    if isinstance(got, list):
        return [_no_marker(b) for b in got]
    return got


def _lines(system: Any) -> list[str]:
    if system is None:
        return []
    if isinstance(system, str):
        return system.split("\n")
    return [line for b in system for line in b["text"].split("\n")]


def _expected_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    plain = [_no_marker(t) for t in tools]
    ordered = sorted(plain, key=lambda t: (t.get("name", ""), canonical_json(t)))
    return [json.loads(canonical_json(t)) for t in ordered]


def check_minimal(given: dict[str, Any], out: dict[str, Any], *, ordered: bool = True) -> None:
    """``out`` is ``given`` up to markers and (``ordered``) order()'s documented moves, byte
    for byte."""
    got = copy.deepcopy(out)
    want = copy.deepcopy(given)
    want.pop("cache_control", None)
    got.pop("cache_control", None)
    # Tools: sorted by name, keys sorted (a marker may move).
    if "tools" in want:
        tools = (
            _expected_tools(want["tools"]) if ordered else [_no_marker(t) for t in want["tools"]]
        )
        assert _dump([_no_marker(t) for t in got["tools"]]) == _dump(tools)
        got["tools"] = want["tools"] = None
    # The last user message may carry one block of moved system lines, appended.
    users = [i for i, m in enumerate(got["messages"]) if m["role"] == "user"]
    moved: list[str] = []
    room = -1
    last = got["messages"][users[-1]]["content"]
    if isinstance(last, list) and last and is_dynamic_block(last[-1]):
        text = last[-1]["text"]
        assert text.startswith(DYNAMIC_HEADER + "\n") and text.endswith("\n" + DYNAMIC_FOOTER)
        assert set(last[-1]) == {"type", "text"}
        moved = text[len(DYNAMIC_HEADER) + 1 : -len(DYNAMIC_FOOTER) - 1].split("\n")
        got["messages"][users[-1]]["content"] = last[:-1]
        room = users[-1]
    assert not any(
        is_dynamic_block(b)
        for m in got["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
    )
    # System: the same, less the moved lines (each whole, in order).
    if moved:
        kept = _lines(got.get("system"))
        given_lines = iter(_lines(want.get("system")))
        taken = []
        for line in kept:
            for candidate in given_lines:
                if candidate == line:
                    break
                taken.append(candidate.strip())
        taken += [c.strip() for c in given_lines]
        assert taken == moved
        got.pop("system", None)
        want.pop("system", None)
    elif "system" in want:
        assert _dump(_content(got["system"], want["system"])) == _dump(
            _content(want["system"], want["system"])
        )
        got["system"] = want["system"] = None
    # Messages: only tool_use inputs (keys sorted) and markers.
    assert len(got["messages"]) == len(want["messages"])
    for i, (g, w) in enumerate(zip(got["messages"], want["messages"], strict=True)):
        g["content"] = _content(g["content"], w["content"], made_room=i == room)
        w["content"] = _content(w["content"], w["content"])
        if ordered and isinstance(w["content"], list):
            for b in w["content"]:
                if b.get("type") == "tool_use":
                    b["input"] = json.loads(canonical_json(b["input"]))
    # Everything, keys in their order, byte for byte.
    assert _dump(got) == _dump(want)


@PROPS
@given(client_requests(), st.booleans())
def test_order_and_cache_change_only_markers_and_what_order_moves(
    request: dict[str, Any], remember: bool
) -> None:
    snapshot = _dump(request)
    first = tc.order(seen=tc.SystemLines()) if remember else tc.order()
    out = tc.pipe(request, first, tc.cache())
    assert _dump(request) == snapshot
    tc.validate(out)
    check_minimal(request, out)


@PROPS
@given(client_requests())
def test_cache_alone_changes_only_markers(request: dict[str, Any]) -> None:
    snapshot = _dump(request)
    out = tc.pipe(request, tc.cache())
    assert _dump(request) == snapshot
    tc.validate(out)
    check_minimal(request, out, ordered=False)


@PROPS
@given(client_requests())
def test_the_api_blocks_go_back_byte_for_byte(request: dict[str, Any]) -> None:
    out = tc.pipe(request, tc.order(), tc.cache())
    api_types = (
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "code_execution_tool_result",
    )

    def api_blocks(r: dict[str, Any]) -> list[str]:
        return [
            _dump(b)
            for m in r["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") in api_types
        ]

    assert api_blocks(out) == api_blocks(request)


# ---------------------------------------------------------------------------- cutting transforms

_CUTTERS: dict[str, Any] = {
    "trim()": lambda: [tc.trim()],
    "trim(max_tokens=40)": lambda: [tc.trim(max_tokens=40, head=0.6, slack=0.5)],
    "slice_code(max_tokens=100)": lambda: [tc.slice_code(max_tokens=100)],
    "compact()": lambda: [tc.compact()],
    "slice_code(max_tokens=100)+trim(max_tokens=40)": lambda: [
        tc.slice_code(max_tokens=100),
        tc.trim(max_tokens=40, head=0.6, slack=0.5),
    ],
}


def _as_blocks(value: Any) -> Any:
    """``value`` with string contents read as the one text block they stand for."""
    if isinstance(value, dict):
        out = {k: _as_blocks(v) for k, v in value.items()}
        if isinstance(value.get("content"), str) and value["content"]:
            out["content"] = [{"type": "text", "text": value["content"]}]
        return out
    if isinstance(value, list):
        return [_as_blocks(v) for v in value]
    return value


def _same_text(got: Any, given: Any) -> bool:
    return _dump(_as_blocks(got)) == _dump(_as_blocks(given))


@PROPS
@given(client_requests(), st.sampled_from(sorted(_CUTTERS)))
def test_cutting_transforms_leave_every_block_they_do_not_change_as_given(
    request: dict[str, Any], name: str
) -> None:
    """Whatever a transform leaves with the same text keeps its bytes: a string stays a
    string, keys keep their order."""
    snapshot = _dump(request)
    out = tc.pipe(request, *_CUTTERS[name]())
    assert _dump(request) == snapshot
    tc.validate(out)
    rest = {k: v for k, v in out.items() if k != "messages"}
    assert _dump(rest) == _dump({k: v for k, v in request.items() if k != "messages"})
    assert len(out["messages"]) == len(request["messages"])
    for got, sent in zip(out["messages"], request["messages"], strict=True):
        if _same_text(got, sent):
            assert _dump(got) == _dump(sent)
            continue
        assert isinstance(got["content"], list)
        assert isinstance(sent["content"], list)  # only tool blocks change
        assert len(got["content"]) == len(sent["content"])
        for block, was in zip(got["content"], sent["content"], strict=True):
            if _same_text(block, was):
                assert _dump(block) == _dump(was)


def test_a_string_tool_result_stays_a_string_unless_it_is_cut() -> None:
    log = "\n".join(f"line {k}: compiling module_{k}.c ... ok" for k in range(400))
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Build it."},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "make"}},
                {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "pwd"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": log},
                {"type": "tool_result", "tool_use_id": "t2", "content": "/src"}]},
        ],
    }  # fmt: skip
    out = tc.pipe(request, *tc.defaults()[:-1])  # all but cache(): no markers
    assert out["system"] == "You are terse."
    assert out["messages"][0] == {"role": "user", "content": "Build it."}
    cut, short = out["messages"][2]["content"]
    assert short == {"type": "tool_result", "tool_use_id": "t2", "content": "/src"}
    assert MARKER_PREFIX in _dump(cut) and len(_dump(cut)) < len(log)
