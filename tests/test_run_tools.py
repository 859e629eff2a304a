"""run_tools(): one assistant turn's calls run at once, answered in tool_use order."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from tidyctx.testing import LocalServer

TOOLS = [
    {"name": n, "description": f"{n} tool", "input_schema": {"type": "object"}}
    for n in ("alpha", "beta", "gamma")
]
TOOL_NAMES = ("alpha", "beta", "gamma")


def _calls(*names: str) -> list[dict[str, Any]]:
    return [
        {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": {"k": i}}
        for i, n in enumerate(names)
    ]


def _turn(*names: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": "Looking."}, *_calls(*names)]}


def _ask(client: anthropic.Anthropic, server: LocalServer, *names: str) -> anthropic.types.Message:
    server.script([{"type": "tool_use", "name": n, "input": {"k": i}} for i, n in enumerate(names)])
    return client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "Look up three things."}],
    )


def _ids(message: dict[str, Any]) -> list[str]:
    return [b["tool_use_id"] for b in message["content"]]


def test_results_come_back_in_tool_use_order_and_the_api_accepts_them(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    response = _ask(anthropic_client, local_server, "alpha", "beta", "gamma")
    # Each tool waits for the one after it to finish: they finish in reverse order, and only
    # because they run at the same time (one at a time, alpha would wait forever).
    done = {n: threading.Event() for n in ("alpha", "beta", "gamma")}

    def tool(name: str, after: str | None) -> Any:
        def run(arg: dict[str, Any]) -> str:
            if after is not None and not done[after].wait(10):
                raise TimeoutError(f"{after} never finished")
            done[name].set()
            return f"{name} saw k={arg['k']}"

        return run

    tools = {
        "alpha": tool("alpha", "beta"),
        "beta": tool("beta", "gamma"),
        "gamma": tool("gamma", None),
    }
    answer = tc.run_tools(response, tools)
    assert answer["role"] == "user"
    assert _ids(answer) == [b.id for b in response.content if b.type == "tool_use"]
    # The content list alone is read the same way.
    assert tc.run_tools(response.content, tools) == answer
    assert [b["content"] for b in answer["content"]] == [
        "alpha saw k=0",
        "beta saw k=1",
        "gamma saw k=2",
    ]
    local_server.script("All three found.")
    follow = anthropic_client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "Look up three things."},
            {"role": "assistant", "content": response.content},
            answer,  # type: ignore[list-item]
        ],
    )
    assert follow.content[0].type == "text"


def test_a_raising_tool_gives_is_error_and_the_others_return(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    response = _ask(anthropic_client, local_server, "alpha", "beta", "gamma")

    def broken(arg: dict[str, Any]) -> str:
        raise FileNotFoundError("no such file: notes.txt")

    answer = tc.run_tools(
        response, {"alpha": lambda a: "A", "beta": broken, "gamma": lambda a: "C"}
    )
    alpha, beta, gamma = answer["content"]
    assert alpha == {"type": "tool_result", "tool_use_id": alpha["tool_use_id"], "content": "A"}
    assert beta["is_error"] is True
    assert beta["content"] == "FileNotFoundError: no such file: notes.txt"
    assert gamma["content"] == "C" and "is_error" not in gamma


def test_calls_run_concurrently_up_to_max_concurrency() -> None:
    barrier = threading.Barrier(3, timeout=10)
    answer = tc.run_tools(
        _turn("alpha", "beta", "gamma"), dict.fromkeys(TOOL_NAMES, lambda a: str(barrier.wait()))
    )
    assert not any(b.get("is_error") for b in answer["content"])

    running, most = 0, 0
    lock = threading.Lock()

    def counted(arg: dict[str, Any]) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        with lock:
            running -= 1
        return "ok"

    tc.run_tools(
        _turn("alpha", "beta", "gamma", "alpha"),
        dict.fromkeys(TOOL_NAMES, counted),
        max_concurrency=1,
    )
    assert most == 1


def test_a_tool_past_its_timeout_is_an_error_and_the_others_return() -> None:
    release = threading.Event()
    try:
        answer = tc.run_tools(
            _turn("alpha", "beta"),
            {"alpha": lambda a: "quick", "beta": lambda a: str(release.wait(30))},
            timeout=1.5,
        )
    finally:
        release.set()
    quick, stuck = answer["content"]
    assert quick["content"] == "quick"
    assert stuck == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "timed out after 1.5 s",
        "is_error": True,
    }


def test_async_tools_run_on_the_loop_and_are_cancelled_at_the_timeout() -> None:
    cancelled = []

    async def fetch(arg: dict[str, Any]) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return [{"type": "text", "text": f"page {arg['k']}"}]

    async def stuck(arg: dict[str, Any]) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(arg["k"])
            raise
        return "never"

    tools = {"alpha": fetch, "beta": stuck, "gamma": lambda a: "sync"}
    answer = asyncio.run(tc.arun_tools(_turn("alpha", "beta", "gamma"), tools, timeout=1.5))
    first, second, third = answer["content"]
    assert first["content"] == [{"type": "text", "text": "page 0"}]
    assert second["is_error"] is True and "timed out" in second["content"]
    assert third["content"] == "sync"
    assert cancelled == [1]
    # The sync form runs async tools too.
    again = tc.run_tools(_turn("alpha"), {"alpha": fetch})
    assert again["content"][0]["content"] == [{"type": "text", "text": "page 0"}]


def test_the_sync_form_works_inside_a_running_loop() -> None:
    async def main() -> dict[str, Any]:
        return tc.run_tools(_turn("alpha"), {"alpha": lambda a: "from a notebook"})

    assert asyncio.run(main())["content"][0]["content"] == "from a notebook"


def test_values_become_content() -> None:
    tools = {
        "alpha": lambda a: {"rows": 2, "ok": True},
        "beta": lambda a: None,
        "gamma": lambda a: 7,
    }
    answer = tc.run_tools(_turn("alpha", "beta", "gamma"), tools)
    alpha, beta, gamma = answer["content"]
    assert alpha["content"] == '{"rows": 2, "ok": true}'
    assert "content" not in beta
    assert gamma["content"] == "7"


def test_trim_cuts_each_long_result() -> None:
    long = "\n".join(f"row {i}: value {i * 7}" for i in range(4000))
    answer = tc.run_tools(
        {**_turn("alpha", "beta"), "model": "claude-sonnet-4-6"},
        {"alpha": lambda a: long, "beta": lambda a: "short"},
        trim=tc.trim(max_tokens=300),
    )
    cut, short = answer["content"]
    text = cut["content"] if isinstance(cut["content"], str) else cut["content"][0]["text"]
    assert len(text) < len(long) / 4 and "[tidyctx: " in text and "row 0: value 0" in text
    assert short["content"] == "short"


# ---------------------------------------------------------------------------- bad input


def test_an_unknown_tool_name_is_an_error_result_naming_the_tools() -> None:
    answer = tc.run_tools(
        _turn("alpha", "delete_everything"), {"alpha": lambda a: "A", "beta": print}
    )
    assert answer["content"][1] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "no tool named 'delete_everything'; the tools are: alpha, beta",
        "is_error": True,
    }


def test_an_unknown_tool_name_raises_before_anything_runs_when_asked() -> None:
    ran: list[str] = []
    with pytest.raises(ValueError, match=r"content\[2\]: tool_use 'toolu_1' calls no tool named"):
        tc.run_tools(
            _turn("alpha", "delete_everything"),
            {"alpha": lambda a: ran.append("alpha") or "A"},
            unknown="raise",
        )
    assert ran == []


@pytest.mark.parametrize(
    ("response", "tools", "options", "error", "match"),
    [
        (
            {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
            {},
            {},
            ValueError,
            "no tool_use block",
        ),
        ({"role": "user", "content": []}, {}, {}, ValueError, "role"),
        ("not a message", {}, {}, TypeError, "takes the response"),
        (_turn("alpha"), {"alpha": "not callable"}, {}, TypeError, r"tools\['alpha'\]"),
        (_turn("alpha"), {"alpha": print}, {"max_concurrency": 0}, ValueError, "max_concurrency"),
        (_turn("alpha"), {"alpha": print}, {"timeout": -1}, ValueError, "timeout"),
        (_turn("alpha"), {"alpha": print}, {"unknown": "ignore"}, ValueError, "unknown"),
        (
            {"role": "assistant", "content": [*_calls("alpha"), *_calls("beta")]},
            {"alpha": print, "beta": print},
            {},
            ValueError,
            r"content\[1\]\.id",
        ),
        (
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "alpha", "input": [1]}],
            },
            {"alpha": print},
            {},
            ValueError,
            r"content\[0\]\.input",
        ),
    ],
)
def test_bad_input_is_named(
    response: Any,
    tools: dict[str, Any],
    options: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        tc.run_tools(response, tools, **options)


def test_a_tool_returning_no_content_raises_naming_it() -> None:
    with pytest.raises(TypeError, match=r"tool 'alpha' \(content\[1\]\) returned a set"):
        tc.run_tools(_turn("alpha"), {"alpha": lambda a: {1, 2}})


# ---------------------------------------------------------------------------- property

_KINDS = ("ok", "fails", "async_ok", "async_fails", "missing")


async def _async_echo(arg: dict[str, Any]) -> str:
    await asyncio.sleep(0)
    return f"done {arg['k']}"


async def _async_fail(arg: dict[str, Any]) -> str:
    await asyncio.sleep(0)
    raise ValueError(f"bad {arg['k']}")


def _fail(arg: dict[str, Any]) -> str:
    raise ValueError(f"bad {arg['k']}")


PROPERTY_TOOLS: dict[str, Any] = {
    "ok": lambda arg: f"done {arg['k']}",
    "fails": _fail,
    "async_ok": _async_echo,
    "async_fails": _async_fail,
}


@settings(max_examples=40)
@given(
    st.lists(st.sampled_from(_KINDS), min_size=1, max_size=12),
    st.one_of(st.none(), st.integers(1, 4)),
)
def test_every_call_is_answered_once_in_order(kinds: list[str], limit: int | None) -> None:
    turn = {"role": "assistant", "content": _calls(*kinds)}
    answer = tc.run_tools(turn, PROPERTY_TOOLS, max_concurrency=limit)
    assert _ids(answer) == [f"toolu_{i}" for i in range(len(kinds))]
    for i, (kind, result) in enumerate(zip(kinds, answer["content"], strict=True)):
        failed = kind.endswith("fails") or kind == "missing"
        assert result.get("is_error", False) is failed
        if kind.endswith("ok"):
            assert result["content"] == f"done {i}"
        elif kind.endswith("fails"):
            assert result["content"] == f"ValueError: bad {i}"


def test_a_tool_with_the_wrong_signature_is_an_error_result() -> None:
    async def no_arguments() -> str:
        return "never"

    def two_arguments(a: Any, b: Any) -> str:
        return "never"

    answer = tc.run_tools(_turn("alpha", "beta"), {"alpha": no_arguments, "beta": two_arguments})
    assert [r["is_error"] for r in answer["content"]] == [True, True]
    assert all(r["content"].startswith("TypeError: ") for r in answer["content"])


def test_cancelling_the_turn_cancels_its_async_calls() -> None:
    running: list[int] = []
    cancelled: list[int] = []
    both = asyncio.Event()

    async def slow(arg: dict[str, Any]) -> str:
        running.append(arg["k"])
        if len(running) == 2:
            both.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(arg["k"])
            raise
        return "never"

    async def main() -> None:
        turn = asyncio.ensure_future(
            tc.arun_tools(_turn("alpha", "beta"), {"alpha": slow, "beta": slow})
        )
        await both.wait()
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn

    asyncio.run(main())
    assert sorted(cancelled) == [0, 1]
