"""LangChain's agent middleware as comparison strategies (benchmarks/peers/langchain_agent.py).

Every test runs LangChain's real ``create_agent`` with its middleware and ``ChatAnthropic``;
the ``anthropic`` clients answer from an ``httpx2.MockTransport``, and the ``offline`` fixture
makes any socket use an error.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import tool_messages
from tidyctx._request import validate
from tidyctx.traces import load_run

pytest.importorskip("langchain_anthropic", reason="benchmark peer: pip install langchain-anthropic")
pytest.importorskip("langchain.agents", reason="benchmark peer: pip install langchain")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
peer = importlib.import_module("benchmarks.peers.langchain_agent")
caching_peer = importlib.import_module("benchmarks.peers.langchain_caching")
standin = importlib.import_module("benchmarks.peers.standin")

HELLO_WORLD = ROOT / "data" / "traces" / "openhands-sdk-claude-sonnet4-hello-world.json"
MODEL = "claude-sonnet-4-6"


pytestmark = pytest.mark.usefixtures("offline")


TOOL = {
    "name": "sh",
    "description": "Run a shell command.",
    "input_schema": {
        "type": "object",
        "properties": {"arg": {"type": "string"}},
        "required": ["arg"],
    },
}


def output(n: int) -> str:
    """A tool result of about 1,000 characters, distinct per call."""
    return "\n".join(f"out{n}-line{i} " + "x" * 40 for i in range(20))


def conversation(steps: int = 5) -> list[dict[str, Any]]:
    """A user question, ``steps`` tool calls with ~1k-character results, a final answer."""
    calls = [("sh", {"arg": str(n)}, output(n)) for n in range(steps)]
    messages = tool_messages(
        "Find the failing test.", calls, call_id="toolu_{k:02d}", say="Step {k}."
    )
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "Done."}]})
    return messages


def requests(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request behind each assistant message, as a recording replays them."""
    base = {"model": MODEL, "max_tokens": 1024, "system": "You debug.", "tools": [TOOL]}
    return [
        {**base, "messages": messages[:i]}
        for i, m in enumerate(messages)
        if m["role"] == "assistant"
    ]


def tool_results(body: dict[str, Any]) -> list[Any]:
    return [
        block["content"]
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def texts(body: dict[str, Any]) -> str:
    return repr(body["messages"])


def test_every_strategy_sends_a_valid_request_each_turn() -> None:
    for path_requests in (requests(conversation()), hello_world_requests()):
        for label, factory in peer.strategies().items():
            strategy = factory()
            for request in path_requests:
                sent = strategy(request)
                validate(sent.request, strict=False)
                assert sent.request["model"] == request["model"], label
                assert sent.request["cache_control"] == {"type": "ephemeral", "ttl": "5m"}


def hello_world_requests() -> list[dict[str, Any]]:
    run = load_run(HELLO_WORLD)
    return [{**t.request, "model": MODEL} for t in run.turns]


def test_caching_is_the_captured_caching_middleware_body() -> None:
    strategy = peer.caching()()
    for request in requests(conversation(2)):
        assert strategy(request).request == caching_peer.langchain_request(request)


def test_context_editing_clears_old_results_only_over_its_trigger() -> None:
    reqs = requests(conversation())
    under = peer.context_editing(trigger=100_000, keep=1)()
    assert all("[cleared]" not in tool_results(under(r).request) for r in reqs)

    # ~250 approximate tokens a result: from the third request on, the messages exceed 600.
    over = peer.context_editing(trigger=600, keep=1)()
    sent = [over(r).request for r in reqs]
    assert [tool_results(b).count("[cleared]") for b in sent] == [0, 0, 1, 2, 3, 4]
    last = tool_results(sent[-1])
    assert last[:-1] == ["[cleared]"] * 4
    assert last[-1] == output(4)


def summarizing() -> tuple[list[dict[str, Any]], list[Any]]:
    reqs = requests(conversation())
    strategy = peer.summarization(trigger=("messages", 6), keep=("messages", 2))()
    return reqs, [strategy(r) for r in reqs]


def test_summarization_replaces_early_history_with_the_standin_summary() -> None:
    reqs, sent = summarizing()
    # Requests 1-3 hold 1, 3 and 5 messages: under the 6-message trigger, sent whole.
    for request, turn in zip(reqs[:3], sent[:3], strict=True):
        assert len(turn.request["messages"]) == len(request["messages"])
        assert turn.side_calls == [] and turn.note == ""
    # Request 4 holds 7 messages: all but the last 2 (one call and its result) are summarized.
    fourth = sent[3]
    assert fourth.note == "summarized 5 messages"
    assert len(fourth.side_calls) == 1
    summary = fourth.side_calls[0].answer
    first = fourth.request["messages"][0]
    assert first["role"] == "user"
    assert first["content"] == peer.SUMMARY_PREFIX + summary
    assert [m["role"] for m in fourth.request["messages"]] == ["user", "assistant", "user"]
    assert tool_results(fourth.request) == [output(2)]
    assert output(0) not in texts(fourth.request)
    assert output(1) not in texts(fourth.request)


def test_the_summary_call_is_a_side_call_answered_from_langchains_span() -> None:
    reqs, sent = summarizing()
    call = sent[3].side_calls[0]
    assert call.request["model"] == MODEL
    prompt = call.request["messages"][0]["content"]
    assert "Messages to summarize:" in prompt
    # The span LangChain handed to its summary prompt: the five messages before the kept pair.
    assert output(1) in prompt and output(2) not in prompt
    assert call.answer.strip()
    assert call.answer == standin.standin_summary(
        reqs[3]["messages"][:5], int(call.request["max_tokens"])
    )


def test_the_summarized_state_carries_to_the_next_turn() -> None:
    _, sent = summarizing()
    fourth, fifth, sixth = sent[3], sent[4], sent[5]
    # Turn 5 starts from turn 4's summarized state (summary, call 2, result 2) plus the
    # recorded reply and result: 5 messages, under the trigger, so it is sent as the state is.
    assert fifth.note == "" and fifth.side_calls == []
    assert fifth.request["messages"][0] == fourth.request["messages"][0]
    assert tool_results(fifth.request) == [output(2), output(3)]
    assert len(fifth.request["messages"]) == 5
    # Turn 6 holds 7 messages again: the previous summary is summarized with what followed.
    assert sixth.note == "summarized 5 messages"
    span = sixth.side_calls[0].request["messages"][0]["content"]
    assert fourth.side_calls[0].answer[:40] in span
    assert tool_results(sixth.request) == [output(4)]
    assert (
        sixth.request["messages"][0]["content"] == peer.SUMMARY_PREFIX + sixth.side_calls[0].answer
    )


def test_a_span_with_no_human_message_left_gets_the_placeholder_without_a_call() -> None:
    # One ~25k-token result: LangChain keeps the last 4000 tokens of the span starting on a
    # human message, finds none, and writes its placeholder without calling the model.
    messages = conversation(3)
    messages[2]["content"][0]["content"] = "y" * 100_000
    reqs = requests(messages)
    strategy = peer.summarization(trigger=("messages", 6), keep=("messages", 2))()
    sent = [strategy(r) for r in reqs]
    fourth = sent[3]
    assert fourth.note.startswith(peer.PLACEHOLDER_NOTE)
    assert fourth.side_calls == []
    first = fourth.request["messages"][0]["content"]
    assert first == peer.SUMMARY_PREFIX + peer.PLACEHOLDER


def test_the_full_stack_clears_and_summarizes() -> None:
    reqs = requests(conversation())
    strategy = peer.summarization(trigger=("messages", 6), keep=("messages", 4), clear=(200, 1))()
    sent = [strategy(r) for r in reqs]
    last = sent[-1]
    assert last.request["messages"][0]["content"].startswith(peer.SUMMARY_PREFIX)
    assert tool_results(last.request) == ["[cleared]", output(4)]
    assert sum(len(s.side_calls) for s in sent) >= 1
    for turn in sent:
        validate(turn.request, strict=False)


def test_bad_input_names_the_place() -> None:
    strategy = peer.context_editing()()
    with pytest.raises(ValueError, match="langchain_agent: cannot pass \\['metadata'\\]"):
        strategy({**requests(conversation(1))[0], "metadata": {}})


def test_a_recorded_run_summarized_often_stays_a_valid_request() -> None:
    strategy = peer.summarization(trigger=("messages", 4), keep=("messages", 2))()
    sent = [strategy(r) for r in hello_world_requests()]
    for turn in sent:
        validate(turn.request, strict=False)
    summarized = [turn for turn in sent if turn.side_calls]
    assert summarized
    for turn in summarized:
        assert turn.request["messages"][0]["content"] == (
            peer.SUMMARY_PREFIX + turn.side_calls[-1].answer
        )


def test_a_recording_that_does_not_extend_the_last_turn_starts_a_fresh_state() -> None:
    reqs = requests(conversation())
    strategy = peer.summarization(trigger=("messages", 6), keep=("messages", 2))()
    for request in reqs[:4]:
        strategy(request)
    # The next request rewrites the history (as a client-side compaction would).
    rewritten = {**reqs[1], "messages": [{"role": "user", "content": "Start over."}]}
    sent = strategy(rewritten)
    assert "does not extend the previous turn" in sent.note
    assert sent.request["messages"] == [{"role": "user", "content": "Start over."}]
