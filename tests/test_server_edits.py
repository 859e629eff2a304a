"""The server-side context edits peer (benchmarks/peers/server_edits.py), offline.

Each test replays a small tool-using conversation built here, turn by turn, through a
strategy, as the comparison suite does, and checks the requests the server would bill.
"""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as gen
from tidyctx import cachesim
from tidyctx._request import validate
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._clear import tool_calls

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
peer = importlib.import_module("benchmarks.peers.server_edits")

MODEL = "claude-sonnet-4-6"
COUNTER = LocalCounter(MODEL)


pytestmark = pytest.mark.usefixtures("offline")


def result_text(i: int, lines: int) -> str:
    return "".join(f"row {i}-{k}: item_{i}_{k} costs {1000 + 7 * k} units\n" for k in range(lines))


def conversation(steps: int, lines: int = 60) -> list[dict[str, Any]]:
    """The recorded requests of a run: turn t holds the opening ask and t tool calls (each
    answered by a ``lines``-line result), ending on the user message."""
    tools = [
        {
            "name": name,
            "description": f"Run {name}.",
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        }
        for name in ("read_log", "note")
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Find the costly items."}]
    requests = [{"model": MODEL, "max_tokens": 1024, "tools": tools, "messages": list(messages)}]
    for i in range(steps):
        name = "note" if i == 1 else "read_log"
        use = {"type": "tool_use", "id": f"toolu_{i:02d}", "name": name, "input": {"n": i}}
        messages.append(
            {"role": "assistant", "content": [{"type": "text", "text": f"Step {i}."}, use]}
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": f"toolu_{i:02d}",
                        "content": [{"type": "text", "text": result_text(i, lines)}],
                    }
                ],
            }
        )
        requests.append({**requests[0], "messages": list(messages)})
    return requests


def replay(factory: Any, requests: list[dict[str, Any]]) -> list[Any]:
    strategy = factory()
    return [strategy(r) for r in requests]


def results(request: dict[str, Any]) -> dict[str, Any]:
    """tool_use_id → the tool_result's content, over the request."""
    out = {}
    for m in request["messages"]:
        for b in m["content"] if isinstance(m["content"], list) else []:
            if b.get("type") == "tool_result":
                out[b["tool_use_id"]] = b["content"]
    return out


PLACED = [{"type": "text", "text": peer.PLACEHOLDER}]


def test_requests_at_or_under_the_trigger_are_billed_as_sent_with_automatic_caching() -> None:
    requests = conversation(6)
    biggest = COUNTER.count_request(requests[-1])
    for sent in replay(peer.clear_tool_uses(trigger=biggest), requests):
        assert sent.request["cache_control"] == {"type": "ephemeral"}
        assert "context_management" not in sent.request
        assert sent.side_calls == [] and sent.note == ""
        assert all(c != PLACED for c in results(sent.request).values())


def test_over_the_trigger_every_result_but_the_newest_keep_holds_the_placeholder() -> None:
    requests = conversation(8)
    last = requests[-1]
    trigger = COUNTER.count_request(requests[-2])  # only the last request exceeds it
    sent = replay(peer.clear_tool_uses(trigger=trigger, keep=3), requests)
    assert all(s.note == "" for s in sent[:-1])
    billed = results(sent[-1].request)
    recorded = results(last)
    assert [k for k, v in billed.items() if v == PLACED] == [f"toolu_{i:02d}" for i in range(5)]
    for i in range(5, 8):
        assert billed[f"toolu_{i:02d}"] == recorded[f"toolu_{i:02d}"]
    assert sent[-1].note.startswith("cleared 5 tool results")
    assert COUNTER.count_request(sent[-1].request) < COUNTER.count_request(last)
    assert all(v != PLACED for v in recorded.values()), "the recorded request was changed"


def test_the_server_moves_the_cleared_boundary_every_turn_over_the_trigger() -> None:
    requests = conversation(9)
    trigger = COUNTER.count_request(requests[5])
    sent = replay(peer.clear_tool_uses(trigger=trigger, keep=2), requests)
    cleared = [sum(v == PLACED for v in results(s.request).values()) for s in sent]
    assert cleared[:6] == [0] * 6
    assert cleared[6:] == [4, 5, 6, 7]  # one more result leaves the keep window each turn


def test_clear_at_least_skips_the_edit_when_less_would_be_cleared() -> None:
    requests = conversation(6)
    trigger = COUNTER.count_request(requests[3])
    one_result = COUNTER.count_block(requests[-1]["messages"][2]["content"][0])
    plain = replay(peer.clear_tool_uses(trigger=trigger, keep=3), requests)
    skipped = replay(
        peer.clear_tool_uses(trigger=trigger, keep=3, clear_at_least=2 * one_result + 1), requests
    )
    # Turns 4 and 5 could clear 1 and 2 results (less their placeholders): under the
    # minimum, so nothing is cleared; turn 6 clears 3.
    assert [bool(s.note) for s in plain[4:]] == [True, True, True]
    assert [bool(s.note) for s in skipped[4:]] == [False, False, True]
    assert skipped[4].request["messages"] == requests[4]["messages"]


def test_excluded_tools_stay_and_cleared_inputs_become_empty() -> None:
    requests = conversation(6)
    factory = peer.clear_tool_uses(
        trigger=0, keep=1, exclude_tools=["note"], clear_tool_inputs=True
    )
    billed = replay(factory, requests)[-1].request
    assert results(billed)["toolu_01"] != PLACED  # the note result is never cleared
    uses = {
        b["id"]: b["input"]
        for m in billed["messages"]
        for b in (m["content"] if isinstance(m["content"], list) else [])
        if b.get("type") == "tool_use"
    }
    assert uses["toolu_00"] == {} and uses["toolu_01"] == {"n": 1} and uses["toolu_05"] == {"n": 5}


def compaction_run() -> tuple[list[dict[str, Any]], int]:
    """A run whose requests cross 50,000 tokens (the API's minimum trigger), and the index
    of the first request over it."""
    requests = conversation(14, lines=260)
    first = next(t for t, r in enumerate(requests) if COUNTER.count_request(r) > 50_000)
    assert 2 < first < len(requests) - 3
    return requests, first


def test_compaction_waits_for_the_trigger_then_summarizes_in_a_side_call() -> None:
    requests, first = compaction_run()
    sent = replay(peer.compact(trigger=50_000), requests)
    assert all(s.side_calls == [] for s in sent[:first])
    assert all(
        s.request["messages"] == r["messages"]
        for s, r in zip(sent[:first], requests[:first], strict=True)
    )
    (call,) = sent[first].side_calls
    # The compaction iteration: the whole context, then the default prompt, same model.
    assert call.request["model"] == MODEL and call.request["tools"] == requests[0]["tools"]
    recorded = requests[first]["messages"]
    assert call.request["messages"][:-1] == recorded[:-1]
    last = call.request["messages"][-1]["content"]
    assert last[-1] == {"type": "text", "text": peer.SUMMARY_PROMPT}
    assert last[-2]["cache_control"] == {"type": "ephemeral"}
    assert "item_" in call.answer  # the stand-in summarized the transcript
    # The message iteration reads the compaction block alone.
    assert sent[first].request["messages"] == [
        {"role": "assistant", "content": [{"type": "compaction", "content": call.answer}]}
    ]


def test_later_turns_are_billed_from_the_compaction_block_on() -> None:
    requests, first = compaction_run()
    sent = replay(peer.compact(trigger=50_000), requests)
    summary = sent[first].side_calls[0].answer
    n = len(requests[first]["messages"])
    for t in range(first + 1, len(requests)):
        recorded = requests[t]["messages"]
        billed = sent[t].request["messages"]
        assert billed[0] == {
            "role": "assistant",
            "content": [{"type": "compaction", "content": summary}, *recorded[n]["content"]],
        }
        assert billed[1:] == recorded[n + 1 :]
        assert sent[t].side_calls == []
        assert COUNTER.count_request(sent[t].request) < 30_000


def test_a_history_rewritten_before_the_compaction_point_is_read_whole_again() -> None:
    requests, first = compaction_run()
    strategy = peer.compact(trigger=50_000)()
    for r in requests[: first + 1]:
        strategy(r)
    short = {**requests[2], "messages": requests[2]["messages"]}
    assert strategy(short).request["messages"] == short["messages"]


def test_the_compaction_iteration_reads_what_the_previous_turn_cached() -> None:
    requests, first = compaction_run()
    sent = replay(peer.compact(trigger=50_000), requests)
    calls = [sent[first - 1].request, sent[first].side_calls[0].request, sent[first].request]
    usage = cachesim.simulate(calls, model=MODEL, counter=COUNTER)
    assert usage[1]["cache_read_input_tokens"] == usage[0]["cache_creation_input_tokens"] > 0
    # The summary prompt after the marker is uncached input.
    assert 0 < usage[1]["input_tokens"] < 200


def test_every_billed_request_validates() -> None:
    requests, _ = compaction_run()
    for factory in (
        peer.automatic_caching(),
        peer.clear_tool_uses(trigger=20_000),
        peer.compact(trigger=50_000),
        peer.clear_then_compact(peer.ClearToolUses(trigger=60_000), peer.Compact(50_000)),
    ):
        for sent in replay(factory, requests):
            # A request after compaction opens with the assistant's compaction block: the API
            # takes that; strict mode refuses it for tidyctx's own transforms only.
            validate(sent.request, strict=sent.request["messages"][0]["role"] == "user")
            for call in sent.side_calls:
                validate(call.request)


def test_clear_then_compact_clears_first_and_compacts_only_what_stays_over() -> None:
    requests, first = compaction_run()
    clear = peer.ClearToolUses(trigger=40_000, keep=3)
    assert [e["type"] for e in peer.client_edits(clear, peer.Compact(50_000))["edits"]] == [
        "clear_tool_uses_20250919",
        "compact_20260112",
    ]
    sent = replay(peer.clear_then_compact(clear, peer.Compact(50_000)), requests)
    assert any(s.note.startswith("cleared") for s in sent)
    assert all(s.side_calls == [] for s in sent)  # cleared under the compaction trigger
    assert (
        COUNTER.count_request(sent[first].request) < 50_000 < COUNTER.count_request(requests[first])
    )


def test_a_compact_trigger_under_the_api_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="50,000"):
        peer.compact(trigger=10_000)
    with pytest.raises(ValueError, match="keep"):
        peer.clear_tool_uses(keep=-1)


def test_each_run_starts_from_a_fresh_factory_call() -> None:
    requests, first = compaction_run()
    factory = peer.compact(trigger=50_000)
    once = [s.request for s in replay(factory, requests)]
    again = [s.request for s in replay(factory, requests)]
    assert once == again
    assert (
        replay(factory, requests[:first])[-1].request["messages"]
        == (requests[first - 1]["messages"])
    )


@settings(
    max_examples=60,
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.data_too_large],
)
@given(
    gen.growing_conversations(max_turns=6),
    st.integers(0, 3_000),
    st.integers(0, 4),
    st.sampled_from([None, 0, 50, 400]),
    st.booleans(),
)
def test_clearing_keeps_the_calls_and_the_newest_results_and_is_pure(
    run: list[dict[str, Any]],
    trigger: int,
    keep: int,
    clear_at_least: int | None,
    inputs: bool,
) -> None:
    frozen = copy.deepcopy(run)
    factory = peer.clear_tool_uses(trigger, keep, clear_at_least, clear_tool_inputs=inputs)
    for recorded, sent in zip(run, replay(factory, run), strict=True):
        billed = sent.request
        validate(billed)
        before = tool_calls(recorded, counter=COUNTER)
        after = tool_calls(billed, counter=COUNTER)
        assert [(c.id, c.use_path, c.result_path) for c in after] == [
            (c.id, c.use_path, c.result_path) for c in before
        ]
        newest = {c.id for c in before[len(before) - keep :]} if keep else set()
        kept = results(recorded)
        assert all(v == kept[k] for k, v in results(billed).items() if k in newest)
        if COUNTER.count_request(recorded) <= trigger:
            assert billed["messages"] == recorded["messages"]
        # A placeholder can outweigh a tiny result by a few tokens, never more.
        slack = 8 * len(before)
        assert COUNTER.count_request(billed) <= COUNTER.count_request(recorded) + slack
    assert run == frozen
