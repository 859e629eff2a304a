"""parallel_tools(): the instruction in the stable prefix, tool_choice never touched."""

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
from tidyctx import cachesim
from tidyctx._request import validate
from tidyctx.testing import LocalServer
from tidyctx.transforms._parallel import PARALLEL_TEXT, parallel_tools

PROPS = settings(max_examples=60)
MODEL = "claude-sonnet-4-6"
TOOL = {"name": "read_file", "description": "Read a file.", "input_schema": {"type": "object"}}


def _request(system: Any = None, **extra: Any) -> dict[str, Any]:
    req: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 64, "tools": [TOOL]}
    if system is not None:
        req["system"] = system
    return {**req, **extra, "messages": [{"role": "user", "content": "Read a.py and b.py"}]}


def _texts(system: Any) -> list[str]:
    return [system] if isinstance(system, str) else [b["text"] for b in system]


# ---------------------------------------------------------------------------- properties


@PROPS
@given(gen.requests())
def test_applying_twice_adds_nothing(request: dict[str, Any]) -> None:
    once = parallel_tools()(request)
    assert parallel_tools()(once) == once


@PROPS
@given(gen.requests())
def test_input_is_left_alone(request: dict[str, Any]) -> None:
    before = copy.deepcopy(request)
    parallel_tools()(request)
    assert request == before


@PROPS
@given(gen.requests())
def test_output_is_a_valid_request(request: dict[str, Any]) -> None:
    validate(request)
    validate(parallel_tools()(request))


@PROPS
@given(gen.requests())
def test_only_the_system_gains_one_block_at_its_end(request: dict[str, Any]) -> None:
    out = parallel_tools()(request)
    assert {k: v for k, v in out.items() if k != "system"} == {
        k: v for k, v in request.items() if k != "system"
    }
    if not request.get("tools"):
        assert out == request
        return
    before = request.get("system")
    before_blocks = (
        []
        if not before
        else [{"type": "text", "text": before}]
        if isinstance(before, str)
        else before
    )
    assert out["system"] == [*before_blocks, {"type": "text", "text": PARALLEL_TEXT}]


@PROPS
@given(gen.growing_conversations(), st.booleans())
def test_prefix_is_byte_stable_as_the_conversation_grows(
    turns: list[dict[str, Any]], with_defaults: bool
) -> None:
    steps = [parallel_tools(), tc.order(), tc.cache()] if with_defaults else [parallel_tools()]
    outs = [tc.pipe(t, *steps) for t in turns]
    for a, b in itertools.pairwise(outs):
        # Tools and system: the same bytes on every call (the instruction included).
        assert json.dumps(a.get("tools")) == json.dumps(b.get("tools"))
        assert json.dumps(_unmarked(a.get("system"))) == json.dumps(_unmarked(b.get("system")))
    for t, out in zip(turns, outs, strict=True):
        assert out.get("tool_choice") == t.get("tool_choice")


def _unmarked(system: Any) -> Any:
    if not isinstance(system, list):
        return system
    return [{k: v for k, v in b.items() if k != "cache_control"} for b in system]


# ---------------------------------------------------------------------------- examples


def test_string_system_becomes_its_block_then_the_instruction() -> None:
    out = parallel_tools()(_request("You are terse."))
    assert _texts(out["system"]) == ["You are terse.", PARALLEL_TEXT]


def test_no_system_gets_the_instruction_alone() -> None:
    out = parallel_tools()(_request())
    assert out["system"] == [{"type": "text", "text": PARALLEL_TEXT}]


def test_no_tools_adds_nothing() -> None:
    req = {**_request("Be brief."), "tools": []}
    assert parallel_tools()(req) == req


def test_tool_choice_is_never_changed_and_describe_says_when_it_disables_parallel() -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    req = _request("Be brief.", tool_choice=choice)
    out = parallel_tools()(req)
    assert out["tool_choice"] == choice
    note = tc.explain(req, parallel_tools()).steps[0].note
    assert "disable_parallel_tool_use" in note
    plain = tc.explain(_request("Be brief."), parallel_tools()).steps[0]
    assert "disable_parallel_tool_use" not in plain.note
    assert "tool_choice" not in (plain.first_change or "")


def test_cache_after_it_marks_the_instruction_as_the_end_of_the_system() -> None:
    out = tc.pipe(_request("Rules. " * 800), parallel_tools(), tc.order(), tc.cache())
    assert out["system"][-1]["text"] == PARALLEL_TEXT
    assert "cache_control" in out["system"][-1]
    # Applying the pipeline again changes nothing: the marked block is still found.
    assert tc.pipe(out, parallel_tools(), tc.order(), tc.cache()) == out


def test_order_leaves_the_instruction_in_the_prefix() -> None:
    req = _request("You are terse.\nCurrent time: 2026-11-25T14:03:22Z")
    out = tc.pipe(req, parallel_tools(), tc.order())
    assert out["system"][-1]["text"] == PARALLEL_TEXT
    assert "2026-11-25" not in json.dumps(out["system"])


def test_custom_text_and_bad_text() -> None:
    out = parallel_tools("Batch your reads.")(_request())
    assert _texts(out["system"]) == ["Batch your reads."]
    with pytest.raises(ValueError, match="non-empty string"):
        parallel_tools("  ")


def test_system_of_a_wrong_type_is_named() -> None:
    with pytest.raises(tc.ValidationError, match="system"):
        parallel_tools()(_request(system=42))


def test_the_sdk_accepts_the_request(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    out = tc.pipe(_request("You are terse."), parallel_tools(), tc.order(), tc.cache())
    local_server.script("Done.")
    message = anthropic_client.messages.create(**out)
    assert message.content[0].type == "text"
    sent = local_server.requests[-1].body
    assert sent["system"][-1]["text"] == PARALLEL_TEXT
    assert "tool_choice" not in sent


@PROPS
@given(gen.requests(), st.booleans())
def test_calling_it_is_piping_it(request: dict[str, Any], bare: bool) -> None:
    x = request["messages"] if bare else request
    assert parallel_tools()(x) == tc.pipe(x, parallel_tools())


def test_each_call_of_a_growing_conversation_reads_the_prefix_from_the_cache() -> None:
    system = "You review pull requests for a payments service. " * 200
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Check a.py and b.py."}]
    sent = []
    for i in range(4):
        request = {**_request(system), "messages": copy.deepcopy(messages)}
        sent.append(tc.pipe(request, parallel_tools(), *tc.defaults(slice_code=False)))
        messages += [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": f"toolu_{i}a",
                        "name": "read_file",
                        "input": {"p": "a.py"},
                    },
                    {
                        "type": "tool_use",
                        "id": f"toolu_{i}b",
                        "name": "read_file",
                        "input": {"p": "b.py"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{i}a", "content": f"a {i}"},
                    {"type": "tool_result", "tool_use_id": f"toolu_{i}b", "content": f"b {i}"},
                ],
            },
        ]
    usages = cachesim.simulate(sent)
    prefix = tc.tokens.LocalCounter(MODEL).count_request({**sent[0], "messages": []})
    assert usages[0]["cache_read_input_tokens"] == 0
    for usage in usages[1:]:
        # The tools, the system and its instruction are read back on every later call.
        assert usage["cache_read_input_tokens"] >= prefix - 50
