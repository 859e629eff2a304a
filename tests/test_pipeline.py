"""pipe() and explain(): shapes, purity, bad input, and the per-step cache account."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import POLICY
from tidyctx._pipeline import transform_name
from tidyctx._request import Request, normalize
from tidyctx.tokens import LocalCounter


def request() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "system": "You review code. " * 40,
        "messages": [
            {"role": "user", "content": "Look at the log."},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "sh", "input": {"cmd": "cat log"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "line\n" * 500}
                ],
            },
        ],
        "tools": [{"name": "sh", "description": "run", "input_schema": {"type": "object"}}],
    }


def cut_results(req: Request) -> Request:
    """A toy transform: cut every tool result to its first line."""
    out = normalize(req)
    for m in out["messages"]:
        for b in m["content"]:
            if b.get("type") == "tool_result":
                b["content"] = [{"type": "text", "text": b["content"][0]["text"].split("\n")[0]}]
    return out


def mark_system(req: Request) -> Request:
    out = normalize(req)
    out["system"][-1]["cache_control"] = {"type": "ephemeral"}
    return out


def test_pipe_without_transforms_returns_an_equal_copy() -> None:
    req = request()
    out = tc.pipe(req)
    assert out == req and out is not req
    messages = req["messages"]
    assert tc.pipe(messages) == messages and isinstance(tc.pipe(messages), list)


def test_pipe_keeps_the_shape_and_never_mutates() -> None:
    req = request()
    snapshot = copy.deepcopy(req)
    out = tc.pipe(req, cut_results)
    assert req == snapshot
    assert out["messages"][2]["content"][0]["content"] == [{"type": "text", "text": "line"}]
    as_list = tc.pipe(req["messages"], cut_results)
    assert isinstance(as_list, list) and as_list == out["messages"]


def test_pipe_of_a_list_refuses_to_drop_added_keys() -> None:
    with pytest.raises(ValueError, match="bare message list cannot carry"):
        tc.pipe(request()["messages"], lambda r: {**r, "system": "x"})


def test_pipe_bad_input() -> None:
    with pytest.raises(ValueError, match="got None"):
        tc.pipe(None)
    with pytest.raises(TypeError, match="returned NoneType, not a request dict"):
        tc.pipe(request(), lambda r: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="takes transforms"):
        tc.pipe(request(), "trim")  # type: ignore[arg-type]


def test_pipe_accepts_sdk_objects() -> None:
    from anthropic.types import TextBlock

    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [TextBlock(type="text", text="hello")]},
        {"role": "user", "content": "bye"},
    ]
    out = tc.pipe(msgs)
    assert out[1]["content"] == [{"type": "text", "text": "hello"}]


def test_explain_reports_tokens_and_the_cache_break() -> None:
    report = tc.explain(request(), cut_results)
    (step,) = report.steps
    assert step.name == "cut_results"
    assert step.tokens_after < step.tokens_before
    assert step.saved_tokens == step.tokens_before - step.tokens_after
    # normalize turns string content into text blocks: the same prompt, so the first change
    # is the tool result that was cut.
    assert step.first_change == "messages[2].content[0]"
    assert step.prefix_kept_tokens > 0  # tools, system and the first turns are untouched
    assert step.prefix_broken_tokens > 0
    assert report.request == tc.pipe(request(), cut_results)
    assert "breaks at messages[2].content[0]" in str(report)


def test_explain_markers_alone_keep_the_prefix() -> None:
    base = normalize(request())
    report = tc.explain(base, mark_system)
    (step,) = report.steps
    assert step.changed_blocks == 1
    assert step.first_change is None
    assert "prefix intact" in str(report)


def test_explain_names_the_changed_block_and_parameter() -> None:
    base = normalize(request())
    report = tc.explain(base, cut_results)
    assert report.steps[0].first_change == "messages[2].content[0]"
    assert report.steps[0].changed_blocks == 1
    swap = tc.explain(base, lambda r: {**r, "model": "claude-opus-4-6"})
    assert swap.steps[0].first_change == "model"
    assert swap.steps[0].prefix_kept_tokens == 0


def test_explain_uses_describe() -> None:
    class Noted:
        name = "noted"

        def __call__(self, req: Request) -> Request:
            return dict(req)

        def describe(self, before: Request, after: Request) -> str:
            return "nothing to do"

    report = tc.explain(request(), Noted())
    assert report.steps[0].name == "noted" and report.steps[0].note == "nothing to do"
    assert "nothing to do" in str(report)


def test_explain_table_keeps_large_counts_apart() -> None:
    # A 7-digit count must not run into the next column ("1,252,2711,252,271").
    text = "word " * 1_200_000
    report = tc.explain([{"role": "user", "content": text}], lambda r: r)
    row = str(report).splitlines()[2]
    numbers = [part for part in row.split() if part[0].isdigit()]
    assert numbers[:2] == [f"{report.tokens_before:,}", f"{report.tokens_after:,}"]


@settings(max_examples=40)
@given(gen.requests(with_cache_control=True), st.sampled_from(["order", "clock", "choice"]))
def test_explain_kept_plus_rewritten_is_the_whole_request(
    request: dict[str, Any], change: str
) -> None:
    def clock(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "system": "Now: 2026-11-25T10:00:00Z"}

    def choice(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "tool_choice": {"type": "any"}}

    first = {"order": tc.order(), "clock": clock, "choice": choice}[change]
    report = tc.explain(request, first, tc.cache(min_tokens=0))
    for step in report.steps:
        if step.first_change is not None:
            assert step.prefix_kept_tokens + step.prefix_broken_tokens == step.tokens_after
            assert step.prefix_kept_tokens >= 0 and step.prefix_broken_tokens >= 0
    assert str(report)


def test_explain_a_tool_choice_change_keeps_tools_and_system() -> None:
    # Changing tool_choice invalidates the cached messages only; tools and system stay cached
    # (https://docs.claude.com/en/docs/build-with-claude/prompt-caching).
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": POLICY,
        "tools": [{"name": "run", "description": "Run.", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi " * 100}],
    }

    def force(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "tool_choice": {"type": "any"}}

    step = tc.explain(request, force).steps[0]
    assert step.first_change == "tool_choice"
    counter = LocalCounter("claude-sonnet-4-6")
    without_messages = counter.count_request({**force(request), "messages": []})
    assert step.prefix_kept_tokens == without_messages
    assert step.prefix_broken_tokens == step.tokens_after - without_messages


def test_a_list_of_transforms_counts_as_its_transforms_in_order() -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "Summarize the repository layout."}],
    }
    steps = tc.defaults()
    assert tc.pipe(request, steps) == tc.pipe(request, *steps)
    assert tc.pipe(request, tuple(steps[:1]), *steps[1:]) == tc.pipe(request, *steps)
    names = [s.name for s in tc.explain(request, steps).steps]
    assert names == [transform_name(t) for t in steps]


def test_a_non_transform_is_named_in_the_error() -> None:
    with pytest.raises(TypeError, match=r"got str 'trim'; did you mean tc\.trim\(\)\?"):
        tc.pipe([{"role": "user", "content": "hi"}], "trim")
    with pytest.raises(TypeError, match=r"got int 3$"):
        tc.pipe([{"role": "user", "content": "hi"}], 3)
