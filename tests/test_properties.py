"""Hypothesis properties of the request model and pipe(), on conversations with real structure."""

from __future__ import annotations

import copy
import inspect
import json
import warnings
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import BUNDLED_TRACES, SHARED_TRACES
from tidyctx import _request as rq
from tidyctx._request import ValidationError, block_hash, canonical_json, errors, normalize
from tidyctx.testing import LocalServer

PROPS = settings(max_examples=80)


@PROPS
@given(gen.requests())
def test_pipe_without_transforms_is_identity_and_pure(request: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(request)
    out = tc.pipe(request)
    assert out == request
    assert request == snapshot
    assert canonical_json(out) == canonical_json(request)


@PROPS
@given(gen.message_lists())
def test_pipe_of_a_list_is_a_list(messages: list[dict[str, Any]]) -> None:
    snapshot = copy.deepcopy(messages)
    out = tc.pipe(messages)
    assert isinstance(out, list) and out == messages and messages == snapshot


@PROPS
@given(gen.requests())
def test_validate_accepts_every_generated_request(request: dict[str, Any]) -> None:
    tc.validate(request)


@PROPS
@given(gen.requests(with_cache_control=True))
def test_validate_accepts_up_to_four_markers(request: dict[str, Any]) -> None:
    tc.validate(request)


@PROPS
@given(gen.requests())
def test_normalize_is_idempotent_pure_and_valid(request: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(request)
    once = normalize(request)
    assert request == snapshot
    assert normalize(once) == once
    tc.validate(once)
    # Normalizing changes form, never what the model reads: the text is the same.
    assert _texts(once) == _texts(request)


def _texts(request: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for key in sorted(value):
                if key in ("text", "content", "system", "thinking", "input") or key in (
                    "messages",
                ):
                    walk(value[key])
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(request)
    return out


@PROPS
@given(gen.requests())
def test_block_hash_ignores_key_order(request: dict[str, Any]) -> None:
    shuffled = json.loads(json.dumps(request, sort_keys=True))
    assert block_hash(shuffled) == block_hash(request)


# ---------------------------------------------------------------------------- corruptions


def _tool_use_places(request: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, m in enumerate(request["messages"])
        if isinstance(m["content"], list)
        for j, b in enumerate(m["content"])
        if b["type"] == "tool_use"
    ]


def _fails_at(request: dict[str, Any], path: str, words: str) -> None:
    found = errors(request)
    assert found, "expected a validation error"
    assert any(e.path == path and words in str(e) for e in found), [str(e) for e in found]
    with pytest.raises(ValidationError):
        tc.validate(request)


@PROPS
@given(gen.requests(), st.data())
def test_dropping_a_tool_result_is_named(request: dict[str, Any], data: st.DataObject) -> None:
    places = _tool_use_places(request)
    if not places:
        return
    i, j = data.draw(st.sampled_from(places))
    tid = request["messages"][i]["content"][j]["id"]
    answer = request["messages"][i + 1]["content"]
    request["messages"][i + 1]["content"] = [
        b for b in answer if not (b["type"] == "tool_result" and b["tool_use_id"] == tid)
    ] or [{"type": "text", "text": "no results"}]
    _fails_at(request, f"messages[{i}].content[{j}]", f"tool_use {tid!r} has no tool_result")


@PROPS
@given(gen.requests())
def test_swapped_roles_are_named(request: dict[str, Any]) -> None:
    messages = request["messages"]
    messages[0]["role"] = "assistant"
    found = errors(request)
    assert any(e.path == "messages[0].role" for e in found), [str(e) for e in found]


@PROPS
@given(gen.requests(with_cache_control=True))
def test_a_fifth_breakpoint_is_named(request: dict[str, Any]) -> None:
    request = normalize(request)
    marker = {"type": "ephemeral"}
    # Mark text blocks of the conversation until there are five markers in all.
    count = len(rq.cache_markers(request))
    added: list[str] = []
    for i, m in enumerate(request["messages"]):
        if not isinstance(m["content"], list):  # a system message's string stays a string
            continue
        for j, b in enumerate(m["content"]):
            if count >= 5:
                break
            if b["type"] == "text" and "cache_control" not in b:
                b["cache_control"] = marker
                count += 1
                added.append(f"messages[{i}].content[{j}]")
    tools = request.get("tools") or []
    for tool in tools:
        if count < 5 and "cache_control" not in tool:
            tool["cache_control"] = marker
            count += 1
    if count < 5:
        request["cache_control"] = marker
        count += 1
    if count < 5:
        return
    found = errors(request)
    assert any("5 cache_control breakpoints" in str(e) for e in found), [str(e) for e in found]


@PROPS
@given(gen.requests())
def test_cache_control_on_thinking_is_named(request: dict[str, Any]) -> None:
    for i, m in enumerate(request["messages"]):
        if m["role"] != "assistant":
            continue
        for j, b in enumerate(m["content"]):
            if b["type"] in ("thinking", "redacted_thinking"):
                b["cache_control"] = {"type": "ephemeral"}
                _fails_at(request, f"messages[{i}].content[{j}].cache_control", "cannot carry")
                return


@PROPS
@given(gen.requests())
def test_a_system_message_is_named(request: dict[str, Any]) -> None:
    request["messages"].insert(0, {"role": "system", "content": "be brief"})
    _fails_at(request, "messages[0].role", "cannot open the conversation")


@PROPS
@given(gen.requests(), st.sampled_from([None, 7, 2.5, {"a": 1}, b"bytes"]))
def test_content_of_the_wrong_type_is_named(request: dict[str, Any], bad: Any) -> None:
    last = max(i for i, m in enumerate(request["messages"]) if m["role"] == "user")
    request["messages"][last]["content"] = bad
    if isinstance(bad, bytes):
        with pytest.raises(ValueError, match="cannot use a bytes"):
            tc.validate(request)
        return
    _fails_at(request, f"messages[{last}].content", "must be a string or a list of blocks")


@PROPS
@given(gen.requests())
def test_a_duplicate_tool_name_is_named(request: dict[str, Any]) -> None:
    tools = request.get("tools")
    if not tools:
        return
    tools.append(copy.deepcopy(tools[0]))
    _fails_at(request, f"tools[{len(tools) - 1}].name", "duplicate tool name")


# ---------------------------------------------------------------------------- real traces


SHARED = SHARED_TRACES
BUNDLED = BUNDLED_TRACES


def _trace_files() -> list[Path]:
    files = sorted(BUNDLED.glob("*.json"))
    if SHARED.is_dir():
        files += sorted(SHARED.glob("*.json"))
    return files


@pytest.mark.parametrize("path", _trace_files(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_trace_validates(path: Path) -> None:
    data = json.loads(path.read_text())
    request = {
        "model": data["recorded_model"],
        "max_tokens": 1024,
        "system": data["system"],
        "tools": data["tools"],
        "messages": data["messages"],
    }
    tc.validate(request)
    tc.validate(normalize(request))
    assert tc.pipe(request) == request


def test_shared_traces_are_present_in_ci() -> None:
    # A larger trace collection may sit beside the checkout; say so plainly when it does not.
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not found: only the bundled traces were validated")
    assert len(list(SHARED.glob("*.json"))) >= 20


# ---------------------------------------------------------------------------- real SDK


@pytest.fixture(scope="module")
def server() -> Any:
    with LocalServer() as srv:
        yield srv


@settings(max_examples=25)
@given(gen.requests())
def test_sdk_round_trips_what_pipe_produces(server: LocalServer, request: dict[str, Any]) -> None:
    out = tc.pipe(request, normalize)
    with anthropic.Anthropic(base_url=server.base_url, api_key="t", max_retries=0) as client:
        # SDK 2.14's create() has no temperature/context_management parameters: send the keys
        # it does not take in the body, as the SDK documents for newer or older fields.
        known = inspect.signature(client.messages.create).parameters
        extra = {k: out.pop(k) for k in list(out) if k not in known}
        with warnings.catch_warnings():
            # The SDK warns on older model ids and on thinking.type=enabled for newer models.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            message = client.messages.create(**out, extra_body=extra or None)
    assert message.type == "message" and message.usage.input_tokens > 0


def test_server_rejects_what_the_api_rejects(server: LocalServer) -> None:
    bad = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}],
            },
            {"role": "user", "content": "no result here"},
        ],
    }
    with pytest.raises(ValidationError) as local:
        tc.validate(bad)
    with (
        anthropic.Anthropic(base_url=server.base_url, api_key="t", max_retries=0) as client,
        pytest.raises(anthropic.BadRequestError) as remote,
    ):
        client.messages.create(**bad)
    assert remote.value.status_code == 400
    body = remote.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert local.value.path in body["error"]["message"]
