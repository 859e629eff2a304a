"""One edge contract: every transform called alone takes the shapes pipe() takes, gives back
the shape given, equals pipe(x, transform), and never mutates its input."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from anthropic.types import TextBlock, ToolUseBlock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import OPTIONS, agent_run
from tidyctx._edge import Edge
from tidyctx._request import ValidationError
from tidyctx.testing import LocalServer

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CLEARING = tc.Clearing(keep=1, trigger=0, clear_at_least=300)

# The transforms that need no client, each made fresh per example.
MAKERS: dict[str, Callable[[], Edge]] = {
    "order": tc.order,
    "cache": lambda: tc.cache(min_tokens=0),
    "trim": lambda: tc.trim(max_tokens=100),
    "trim+clearing": lambda: tc.trim(max_tokens=200, clearing=CLEARING),
    "trim+server_side": lambda: tc.trim(clearing=tc.Clearing(keep=2, server_side=True)),
    "clear": lambda: tc.clear(CLEARING),
    "clear+server_side": lambda: tc.clear(tc.Clearing(server_side=True)),
    "compact": tc.compact,
    "slice_code": lambda: tc.slice_code(max_tokens=200),
    "summarize(server_side)": lambda: tc.summarize(None, server_side=True),
}


def outcome(run: Callable[[], Any]) -> tuple[str, Any]:
    """What ``run()`` gives: ``("ok", value)`` or ``("error", (type, message))``."""
    try:
        return "ok", run()
    except (ValueError, TypeError) as err:
        return "error", (type(err), str(err))


def assert_alone_equals_pipe(t: Edge, x: Any) -> tuple[str, Any]:
    """``t(x)`` and ``pipe(x, t)`` give the same result (or the same error), in x's shape, and
    neither touches ``x``."""
    snapshot = copy.deepcopy(x)
    alone = outcome(lambda: t(x))
    assert x == snapshot
    piped = outcome(lambda: tc.pipe(x, t))
    assert x == snapshot
    assert alone == piped
    if alone[0] == "ok":
        assert isinstance(alone[1], list if isinstance(x, list) else dict)
    return alone


@PROPS
@given(gen.requests(), st.sampled_from(sorted(MAKERS)))
def test_every_transform_alone_equals_pipe_on_dicts_and_bare_lists(
    request: dict[str, Any], name: str
) -> None:
    assert_alone_equals_pipe(MAKERS[name](), request)
    assert_alone_equals_pipe(MAKERS[name](), request["messages"])


def file_reads() -> dict[str, Any]:
    """An agent run whose results are file views (slice_code) and repeat (trim, clear)."""
    run = agent_run(12, lines=120)
    source = "\n".join(f"def handler_{i}(event):\n    return {i}\n" for i in range(80))
    listing = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(source.split("\n"), 1))
    run["messages"][-1]["content"][0]["content"] = listing
    return run


def with_sdk_blocks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with each assistant turn held as SDK objects, as after
    ``messages.append({"role": "assistant", "content": response.content})``."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "assistant":
            blocks: list[Any] = [
                TextBlock(type="text", text=b["text"])
                if b["type"] == "text"
                else ToolUseBlock(type="tool_use", id=b["id"], name=b["name"], input=b["input"])
                for b in m["content"]
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append(copy.deepcopy(m))
    return out


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_sdk_objects_are_taken_like_the_plain_data_they_stand_for(name: str) -> None:
    run = file_reads()
    sdk_messages = with_sdk_blocks(run["messages"])
    sdk_run = {**run, "messages": sdk_messages}
    dumped = [
        [b.model_dump() if not isinstance(b, dict) else b for b in m["content"]]
        for m in sdk_messages
        if isinstance(m["content"], list)
    ]
    for sdk, plain in ((sdk_run, run), (sdk_messages, run["messages"])):
        t = MAKERS[name]()
        got = outcome(lambda: t(sdk))  # noqa: B023 (called at once)
        assert got == outcome(lambda: tc.pipe(sdk, MAKERS[name]()))  # noqa: B023
        assert got == assert_alone_equals_pipe(MAKERS[name](), plain)
    assert dumped == [
        [b.model_dump() if not isinstance(b, dict) else b for b in m["content"]]
        for m in sdk_messages
        if isinstance(m["content"], list)
    ]


def test_a_bare_list_cannot_take_an_added_key_alone_or_in_a_pipe() -> None:
    messages = file_reads()["messages"]
    for t in (MAKERS["trim+server_side"](), MAKERS["summarize(server_side)"]()):
        with pytest.raises(ValueError, match="bare message list cannot carry"):
            t(messages)
        with pytest.raises(ValueError, match="bare message list cannot carry"):
            tc.pipe(messages, t)


def test_order_cache_and_slice_code_take_a_bare_list_alone() -> None:
    """Before: these three raised ValidationError on the list that trim and compact took."""
    messages = file_reads()["messages"]
    for t in (tc.order(), tc.cache(), tc.slice_code(max_tokens=200)):
        out = t(messages)
        assert isinstance(out, list) and out == tc.pipe(messages, t)
    slicer = tc.slice_code(max_tokens=200)
    assert slicer.outcomes(messages) == slicer.outcomes({"messages": messages})
    assert any(o.text is not None for o in slicer.outcomes(messages))
    with pytest.raises(ValidationError, match="got None"):
        tc.order()(None)


def test_summarize_alone_equals_pipe_in_every_shape(anthropic_client: anthropic.Anthropic) -> None:
    run = agent_run(30)
    t = tc.summarize(anthropic_client, **OPTIONS)
    out = assert_alone_equals_pipe(t, run)
    assert out[0] == "ok" and out[1] != run  # a summary was made
    listed = assert_alone_equals_pipe(t, run["messages"])
    assert listed[0] == "ok" and len(listed[1]) < len(run["messages"])
    sdk = with_sdk_blocks(run["messages"])
    assert t(sdk) == tc.pipe(sdk, t) == listed[1]


def test_asummarize_takes_the_same_shapes(local_server: LocalServer) -> None:
    run = agent_run(30)

    async def main() -> tuple[Any, Any, Any]:
        async with anthropic.AsyncAnthropic(
            base_url=local_server.base_url, api_key="test", max_retries=0
        ) as client:
            t = tc.asummarize(client, **OPTIONS)
            return (
                await t.acall(run),
                await t.acall(run["messages"]),
                await t.acall(with_sdk_blocks(run["messages"])),
            )

    snapshot = copy.deepcopy(run)
    as_dict, as_list, as_sdk = asyncio.run(main())
    assert run == snapshot
    with anthropic.Anthropic(base_url=local_server.base_url, api_key="test") as sync:
        t = tc.summarize(sync, **OPTIONS)
        assert as_dict == t(run)
        assert isinstance(as_list, list) and as_list == as_sdk == t(run["messages"])


def test_pipe_runs_a_transform_body_without_converting_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request walks through a whole pipeline with one conversion, at pipe's edge (before:
    trim alone converted the request six times)."""
    import tidyctx._request as rq

    converted: list[Any] = []
    real = rq._own_request

    def counting(x: Any) -> Any:
        if isinstance(x, dict) and "messages" in x:  # a whole request, not a part of one
            converted.append(x)
        return real(x)

    monkeypatch.setattr(rq, "_own_request", counting)
    run = file_reads()
    steps = (
        tc.order(),
        tc.slice_code(max_tokens=200),
        tc.trim(max_tokens=100, clearing=CLEARING),
        tc.clear(CLEARING),
        tc.compact(),
    )
    tc.pipe(run, *steps)
    assert len(converted) == 1
    for t in steps:
        converted.clear()
        t(run)
        assert len(converted) == 1
