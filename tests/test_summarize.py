"""summarize(): the real anthropic SDK against tidyctx.testing.LocalServer, offline.

The payback gate is off here (``builders.OPTIONS``): steps are taken as soon as MIN_STEP allows
(the gate has its own tests in test_summarize_payback.py). Besides the steps themselves: the
answer's format, several event loops, argument checks, explain() notes, warnings at the caller's
line, and the cost of calls reported even when a step fails.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import anthropic
import pytest

import tidyctx as tc
from builders import OPTIONS, agent_run, read_file_loop
from tidyctx import pricing
from tidyctx._request import canonical_json
from tidyctx.store import MemoryStore, RedisStore, SQLiteStore
from tidyctx.testing import Fail, Hang, LocalServer, is_summary_call, summary_responder
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._summarize import (
    ACK,
    COMPACTION_BETA,
    MAX_CALL_TOKENS,
    Summarize,
    SummaryEvent,
    SummaryWarning,
    asummarize,
    cut_points,
    leading_summary,
    serialize,
    summarize,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def chat(turns: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}: what is config_key_{i}? " * 30})
        messages.append({"role": "assistant", "content": f"config_key_{i} is {9000 + i}. " * 30})
    messages.append({"role": "user", "content": "And the last one?"})
    return {"model": "claude-sonnet-4-6", "max_tokens": 256, "messages": messages}


def assistants(messages: list[dict[str, Any]]) -> int:
    return sum(m["role"] == "assistant" for m in messages)


def test_below_the_trigger_nothing_changes_and_nothing_is_called(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = agent_run(3)
    out = summarize(anthropic_client, **OPTIONS)(request)
    assert out == request
    assert local_server.requests == []


def test_old_turns_become_one_summary_and_the_last_turns_stay_byte_for_byte(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = agent_run(30)
    before = copy.deepcopy(request)
    out = summarize(anthropic_client, **OPTIONS)(request)
    assert request == before  # pure
    tc.validate(out)
    first = out["messages"][0]
    assert first["role"] == "user"
    text = first["content"][0]["text"]
    assert text.startswith("<tidyctx-summary v1 span=")
    kept = out["messages"][1:]
    assert kept == request["messages"][-len(kept) :]
    assert canonical_json(kept) == canonical_json(request["messages"][-len(kept) :])
    assert assistants(kept) == OPTIONS["keep"]
    assert kept[0]["role"] == "assistant"  # a tool-loop step: no ack needed
    # The local responder's summary carries the span's paths, names and numbers.
    assert "src/app/parse.py" in text and "src/app/mod_20.py" in text and "handler_26" in text
    assert {k: v for k, v in out.items() if k != "messages"} == {
        k: v for k, v in request.items() if k != "messages"
    }
    (call,) = local_server.summary_calls()
    assert call["model"] == "claude-haiku-4-5"
    transcript = call["messages"][0]["content"][-1]["text"]
    assert "[tool call read_file (toolu_005)]" in transcript and "def handler_5" in transcript
    assert "[result of read_file (toolu_005)]" in transcript
    assert LocalCounter().count_request(out) < OPTIONS["trigger"]


def test_processed_three_times_one_call_same_bytes(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    t = summarize(anthropic_client, **OPTIONS)
    request = agent_run(30)
    outs = [tc.pipe(request, tc.order(), t, tc.cache()) for _ in range(3)]
    assert len(local_server.summary_calls()) == 1
    assert canonical_json(outs[0]) == canonical_json(outs[1]) == canonical_json(outs[2])
    once = t(request)
    assert t(once) == once  # t(t(x)) == t(x)
    assert len(local_server.summary_calls()) == 1


def test_growing_conversation_reuses_the_cut_until_the_trigger_passes_again(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    t = summarize(anthropic_client, **OPTIONS)
    run = agent_run(40)
    counter = LocalCounter()
    outs = [t({**run, "messages": run["messages"][:1]})]
    calls = [0]
    for end in range(3, len(run["messages"]) + 1, 2):
        outs.append(t({**run, "messages": run["messages"][:end]}))
        calls.append(len(local_server.summary_calls()))
        tc.validate(outs[-1])
        # Last turn's request plus the new turn: what the cache holds, and what comes next.
        grown = {**run, "messages": outs[-2]["messages"] + run["messages"][end - 2 : end]}
        if calls[-1] == calls[-2]:
            assert outs[-1] == grown  # the same cut and summary: a byte-identical prefix
            assert counter.count_request(grown) <= OPTIONS["trigger"]
        else:
            assert calls[-1] == calls[-2] + 1  # one call, only when the trigger is passed
            assert counter.count_request(grown) > OPTIONS["trigger"]
            assert counter.count_request(outs[-1]) < OPTIONS["trigger"] // 2
    steps = [k for k in range(1, len(calls)) if calls[k] > calls[k - 1]]
    assert len(steps) >= 2
    assert min(b - a for a, b in itertools.pairwise(steps)) >= 5  # large steps
    first, second = local_server.summary_calls()[:2]
    assert "<previous-summary>" not in json.dumps(first)
    previous = second["messages"][0]["content"][0]["text"]
    assert previous.startswith("<previous-summary>")  # rolling: old summary + next span
    body = leading_summary(outs[steps[0]]["messages"])[1]
    assert body is not None and body in previous
    for out in outs[steps[0] :]:
        rolled = leading_summary(out["messages"])[1]
        assert rolled is not None
        assert LocalCounter("claude-haiku-4-5").count_text(rolled) <= 600  # bounded


def test_a_kept_summarized_history_gives_the_same_request_with_one_call_per_step(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # One agent keeps its full history, another keeps what summarize returned (as Claude
    # Code does after compaction): with a shared store they send the same bytes.
    store = MemoryStore()
    events_full: list[SummaryEvent] = []
    events_kept: list[SummaryEvent] = []
    full = summarize(anthropic_client, store=store, on_summary=events_full.append, **OPTIONS)
    kept = summarize(anthropic_client, store=store, on_summary=events_kept.append, **OPTIONS)
    run = agent_run(40)
    history = run["messages"][:1]
    for end in range(3, len(run["messages"]) + 1, 2):
        history = history + run["messages"][end - 2 : end]
        a = full({**run, "messages": run["messages"][:end]})
        b = kept({**run, "messages": history})
        assert canonical_json(a) == canonical_json(b)
        history = b["messages"]
    # The first step is on an equal history: `kept` finds the cut `full` stored. Later steps
    # are on different histories: `kept` makes the step too, answered by the store.
    assert len(events_full) >= 2 and len(events_kept) == len(events_full) - 1
    assert len(local_server.summary_calls()) == len(events_full)
    assert all(e.calls == 1 for e in events_full) and all(e.calls == 0 for e in events_kept)


def test_chat_cut_before_a_user_turn_adds_the_ack(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = chat(12)
    out = summarize(anthropic_client, **OPTIONS)(request)
    tc.validate(out)  # strict: roles alternate
    assert out["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": ACK}]}
    kept = out["messages"][2:]
    assert kept[0]["role"] == "user" and kept == request["messages"][-len(kept) :]
    assert leading_summary(out["messages"])[0] == 2
    assert summarize(anthropic_client, **OPTIONS)(out) == out


def test_thinking_of_the_kept_turns_is_passed_back_unmodified(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = agent_run(30)
    request["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    request["max_tokens"] = 2048
    for i, m in enumerate(request["messages"]):
        if m["role"] == "assistant":
            thought = {"type": "thinking", "thinking": f"plan {i}", "signature": f"sig{i}"}
            m["content"] = [thought, *m["content"]]
    out = summarize(anthropic_client, **OPTIONS)(request)
    tc.validate(out)
    assert out["messages"][-2] == request["messages"][-2]
    assert out["messages"][-2]["content"][0]["type"] == "thinking"
    transcript = local_server.summary_calls()[0]["messages"][0]["content"][-1]["text"]
    assert "plan 3" not in transcript  # thinking is not serialized for the summarizer
    # The answer to the last call comes back through the LocalServer, which validates it.
    assert local_server.requests[-1].path == "/v1/messages"


@pytest.mark.parametrize(
    "failure",
    [Fail(529), Fail(500), Fail(429), Fail(503), Hang(2.0)],
    ids=["529", "500", "429", "503", "timeout"],
)
def test_a_failed_call_warns_and_drops_nothing(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic, failure: Fail | Hang
) -> None:
    t = summarize(anthropic_client, max_retries=0, timeout=0.3, **OPTIONS)
    request = agent_run(30)
    local_server.script(failure)
    with pytest.warns(SummaryWarning, match="the summary call failed"):
        out = t(request)
    assert out == request
    # The next turn, with the server healthy again, summarizes.
    assert leading_summary(t(request)["messages"])[1] is not None


def test_the_sdk_retries_with_backoff(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    t = summarize(anthropic_client, max_retries=2, **OPTIONS)
    local_server.fail_next(529, times=2, headers={"retry-after-ms": "10"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = t(agent_run(30))
    assert leading_summary(out["messages"])[1] is not None
    assert len(local_server.requests) == 3


def test_the_failure_after_a_summary_keeps_the_old_summary(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    t = summarize(anthropic_client, max_retries=0, **OPTIONS)
    run = agent_run(70)
    first = t({**run, "messages": run["messages"][:61]})
    assert leading_summary(first["messages"])[1] is not None
    local_server.fail_next(529, times=100)
    with pytest.warns(SummaryWarning):
        out = t(run)
    # The stored summary stays in place and the rest follows: nothing is dropped.
    assert out["messages"][: len(first["messages"])] == first["messages"]
    assert out["messages"][len(first["messages"]) :] == run["messages"][61:]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [({"content": []}, "empty answer"), ("word " * 3000, "over-long")],
    ids=["empty", "over-long"],
)
def test_an_unusable_answer_warns_and_is_not_stored(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic, reply: Any, problem: str
) -> None:
    store = MemoryStore()
    t = summarize(anthropic_client, store=store, **OPTIONS)
    request = agent_run(30)
    local_server.script(reply)
    with pytest.warns(SummaryWarning, match=problem):
        assert t(request) == request
    assert len(store) == 0
    assert leading_summary(t(request)["messages"])[1] is not None


def test_on_summary_reports_each_step(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    events: list[SummaryEvent] = []
    t = summarize(anthropic_client, on_summary=events.append, **OPTIONS)
    out = t(agent_run(30))
    t(agent_run(30))
    (event,) = events
    assert event.calls == 1 and event.summary_model == "claude-haiku-4-5"
    assert event.usage[0]["output_tokens"] > 0
    assert event.messages == 61 - (len(out["messages"]) - 1)
    assert event.span_tokens > OPTIONS["trigger"] // 2
    assert event.span in out["messages"][0]["content"][0]["text"]


def test_explain_prices_the_step_then_reports_it_in_place(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    t = summarize(anthropic_client, **OPTIONS)
    run = agent_run(32)
    now = tc.explain({**run, "messages": run["messages"][:61]}, t)
    note = now.steps[0].note
    assert "made this turn" in note and "pays back after" in note and "claude-haiku-4-5" in note
    later = tc.explain(run, t)
    assert "made on an earlier turn, the cached prefix is intact" in later.steps[0].note
    assert "below the trigger" in tc.explain(agent_run(2), t).steps[0].note
    assert len(local_server.summary_calls()) == 1


def test_async_client(local_server: LocalServer) -> None:
    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with anthropic.AsyncAnthropic(
            base_url=local_server.base_url, api_key="test", max_retries=0
        ) as client:
            t = asummarize(client, **OPTIONS)
            with pytest.raises(TypeError, match="acall"):
                t(agent_run(30))
            with pytest.raises(TypeError, match="asummarize"):
                summarize(client, **OPTIONS)
            a, b = await asyncio.gather(t.acall(agent_run(30)), t.acall(agent_run(30)))
            return a, b

    a, b = asyncio.run(go())
    assert a == b and leading_summary(a["messages"])[1] is not None
    assert len(local_server.summary_calls()) == 1
    with anthropic.Anthropic(base_url=local_server.base_url, api_key="t", max_retries=0) as sync:
        assert summarize(sync, **OPTIONS)(agent_run(30)) == a  # same bytes sync and async


def test_async_failure_warns(local_server: LocalServer) -> None:
    async def go() -> dict[str, Any]:
        async with anthropic.AsyncAnthropic(
            base_url=local_server.base_url, api_key="test", max_retries=0
        ) as client:
            local_server.fail_next(500)
            return await asummarize(client, max_retries=0, **OPTIONS).acall(agent_run(30))

    with pytest.warns(SummaryWarning):
        assert asyncio.run(go()) == agent_run(30)


def test_server_side_compaction_config(local_server: LocalServer) -> None:
    t = summarize(None, server_side=True, trigger=80_000)
    out = t(agent_run(3))
    assert out["context_management"] == {
        "edits": [
            {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 80_000}}
        ]
    }
    assert out["messages"] == agent_run(3)["messages"]
    assert t(out) == out
    assert "compact-2026-01-12" in tc.explain(agent_run(3), t).steps[0].note
    with anthropic.Anthropic(base_url=local_server.base_url, api_key="t", max_retries=0) as client:
        client.beta.messages.create(**out, betas=[COMPACTION_BETA])
    assert local_server.requests[-1].headers["anthropic-beta"] == "compact-2026-01-12"
    with pytest.raises(ValueError, match="at least 50,000"):
        summarize(None, server_side=True, trigger=40_000)


def test_defaults_follow_the_trigger(anthropic_client: anthropic.Anthropic) -> None:
    from tidyctx.transforms._summarize import DEFAULT_TARGET, DEFAULT_TRIGGER, MIN_SERVER_TRIGGER

    t = summarize(anthropic_client)
    assert (t.trigger, t.target_tokens) == (DEFAULT_TRIGGER, DEFAULT_TARGET)
    # A small trigger gets a summary of at most a quarter of it, not an error about the target.
    small = summarize(anthropic_client, trigger=6_000)
    assert (small.trigger, small.target_tokens) == (6_000, 1_500)
    assert summarize(anthropic_client, trigger=200_000).target_tokens == DEFAULT_TARGET
    # Server-side, the default is the smallest trigger the server accepts, not an error.
    assert summarize(None, server_side=True).trigger == MIN_SERVER_TRIGGER
    # A target given explicitly is checked as given.
    with pytest.raises(ValueError, match="at most half of trigger"):
        summarize(anthropic_client, trigger=6_000, target_tokens=3_500)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"trigger": 0},
        {"keep": 0},
        {"target_tokens": -1},
        {"trigger": 1000, "target_tokens": 600},
        {"max_retries": -1},
        {"timeout": 0},
        {"summary_model": ""},
        {"model": ""},
    ],
)
def test_bad_options(anthropic_client: anthropic.Anthropic, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"summarize\("):
        summarize(anthropic_client, **kwargs)


def test_no_client(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(ValueError, match="needs an anthropic client"):
        summarize(None)
    with pytest.raises(TypeError, match="async client"):
        asummarize(anthropic_client)


def test_bad_input_names_the_message(anthropic_client: anthropic.Anthropic) -> None:
    request = agent_run(30)
    del request["messages"][10]["content"][0]  # a tool_result goes missing
    request["messages"][10]["content"] = [{"type": "text", "text": "no result"}]
    with pytest.raises(tc.ValidationError, match=r"messages\[9\]\.content\[1\]"):
        summarize(anthropic_client, **OPTIONS)(request)


def test_no_cut_keeps_the_last_turns(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = agent_run(2, lines=2000)  # over the trigger, but only 2 turns
    assert summarize(anthropic_client, **OPTIONS)(request) == request
    assert local_server.requests == []


def test_a_small_span_waits_for_a_large_step(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = agent_run(4, lines=400)  # the last 3 turns alone are near the trigger
    t = summarize(anthropic_client, **OPTIONS)
    assert t(request) == request
    assert "summarizing waits" in tc.explain(request, t).steps[0].note
    assert local_server.requests == []


def test_bare_message_lists(anthropic_client: anthropic.Anthropic) -> None:
    run = agent_run(30)
    out = tc.pipe(run["messages"], summarize(anthropic_client, **OPTIONS))
    assert isinstance(out, list) and out[0]["content"][0]["text"].startswith("<tidyctx-summary")


def test_cut_points_never_split_a_call() -> None:
    messages = agent_run(4)["messages"] + [
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks."},
    ]
    assert cut_points(messages) == [3, 5, 7, 9, 10]


def test_serialize_shows_calls_results_and_images() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    text = serialize(
        [
            {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
            {
                "role": "assistant",
                "content": [
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "tool_use", "id": "t1", "name": "grep", "input": {"q": "TODO"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": True,
                        "content": "x" * 30_000,
                    }
                ],
            },
        ]
    )
    assert "### user\nlook\n[image]" in text
    assert '[tool call grep (t1)] {"q": "TODO"}' in text
    assert "[result of grep (t1), error]" in text
    assert "characters left out" in text and "xyz" not in text
    assert len(text) < 25_000


def test_summary_responder_is_deterministic_and_bounded() -> None:
    t = Summarize(
        None,
        summary_model="claude-haiku-4-5",
        trigger=100_000,
        keep=2,
        target_tokens=300,
        store=None,
        max_retries=None,
        timeout=None,
        on_summary=None,
        server_side=False,
        counter=None,
        is_async=False,
    )
    body = t.summary_request("## Facts\n`old_fact_1`", serialize(agent_run(80)["messages"]))
    assert is_summary_call(body)
    answer = summary_responder(body)
    assert answer == summary_responder(copy.deepcopy(body))
    assert LocalCounter().count_text(answer) <= t.max_tokens
    assert "## Task\nFix the failing test in src/app/parse.py" in answer
    assert "src/app/mod_79.py" in answer and "## State" in answer
    # The agent's own findings and decisions are kept as sentences.
    run = agent_run(3)
    run["messages"][3]["content"][0]["text"] = (
        "The bug is in parse_config: it returns None for an empty file. I will add a guard for it."
    )
    answer = summary_responder(t.summary_request(None, serialize(run["messages"])))
    assert (
        "## Decisions\n- The bug is in parse_config: it returns None for an empty file." in answer
    )
    assert "- I will add a guard for it." in answer
    assert not is_summary_call({"system": "You are helpful.", "messages": []})


def test_summary_responder_keeps_later_user_messages_and_no_tool_input_keys() -> None:
    # Real compactions keep every user message and list facts, not the names of tool inputs'
    # fields (benchmarks/summary_calibration.py).
    call = {"type": "tool_use", "id": "t1", "name": "Edit", "input": {"file_path": "src/a.py"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "updated src/a.py"}
    messages = [
        {"role": "user", "content": "Fix the parser."},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
        {"role": "assistant", "content": "The parser now accepts empty files."},
        {"role": "user", "content": "Also keep the old parse_config name working."},
    ]
    body = {
        "max_tokens": 1500,
        "messages": [
            {"role": "user", "content": f"<transcript>\n{serialize(messages)}\n</transcript>"}
        ],
    }
    answer = summary_responder(body)
    assert answer.startswith("## Task\nFix the parser.\n- Also keep the old parse_config name")
    assert "`src/a.py`" in answer and "`file_path`" not in answer.split("## Facts")[1]


STORE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {src!r})
    sys.path.insert(0, {tests!r})
    import anthropic
    from test_summarize import OPTIONS, agent_run
    from tidyctx.store import RedisStore, SQLiteStore
    from tidyctx.transforms._summarize import summarize

    kind, where, base_url = sys.argv[1:4]
    store = SQLiteStore(where) if kind == "sqlite" else RedisStore(where)
    with anthropic.Anthropic(base_url=base_url, api_key="t", max_retries=0) as client:
        out = summarize(client, store=store, **OPTIONS)(agent_run(30))
    store.close()
    sys.stdout.write(json.dumps(out, sort_keys=True))
    """
)


def run_in_process(kind: str, where: str, server: LocalServer) -> str:
    script = STORE_SCRIPT.format(src=str(SRC), tests=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", script, kind, where, server.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sqlite_store_across_two_processes(local_server: LocalServer, tmp_path: Path) -> None:
    path = str(tmp_path / "summaries.db")
    first = run_in_process("sqlite", path, local_server)  # another process makes the summary
    assert "<tidyctx-summary v1" in first
    assert len(local_server.summary_calls()) == 1
    with (
        SQLiteStore(path) as store,
        anthropic.Anthropic(base_url=local_server.base_url, api_key="t", max_retries=0) as client,
    ):
        here = summarize(client, store=store, **OPTIONS)(agent_run(30))
    assert json.dumps(here, sort_keys=True) == first  # this one finds it on disk
    assert len(local_server.summary_calls()) == 1


def test_redis_store_across_two_processes(local_server: LocalServer, redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    first = run_in_process("redis", redis_url, local_server)
    assert "<tidyctx-summary v1" in first
    assert len(local_server.summary_calls()) == 1
    store = RedisStore(redis_url)
    events: list[SummaryEvent] = []
    with anthropic.Anthropic(base_url=local_server.base_url, api_key="t", max_retries=0) as c:
        t = summarize(c, store=store, on_summary=events.append, **OPTIONS)
        run = agent_run(40)
        outs = [t({**run, "messages": run["messages"][:end]}) for end in range(61, 82, 2)]
    store.close()
    assert json.dumps(outs[0], sort_keys=True) == first  # found in Redis: no call
    assert len(events) == 1 and events[0].calls == 1  # the next step, when the trigger passes
    assert len(local_server.summary_calls()) == 2


def test_threads_asking_at_once_make_one_call(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    t = summarize(anthropic_client, **OPTIONS)
    local_server.script(Hang(0.2, then=None))  # the first call is slow: the others wait
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: t(agent_run(30)), range(4)))
    assert all(canonical_json(o) == canonical_json(outs[0]) for o in outs)
    assert len(local_server.summary_calls()) == 1


# ---------------------------------------------------------------------------- answers, loops


def test_an_answer_in_several_text_blocks_keeps_them_apart(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # Glued, "...parse.py" + "## Facts" would corrupt the path and lose the heading.
    local_server.script(
        {
            "content": [
                {"type": "text", "text": "## Task\nFix src/app/parse.py"},
                {"type": "text", "text": "## Facts\nhandler_3 returns 7003"},
            ]
        }
    )
    out = summarize(anthropic_client, **OPTIONS)(read_file_loop(30))
    body = leading_summary(out["messages"])[1]
    assert body == "## Task\nFix src/app/parse.py\n\n## Facts\nhandler_3 returns 7003"
    tc.validate(out)


class ForgetfulStore:
    """A store whose entries expire (as with RedisStore(ttl_seconds=...)): ``forget()``."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def put(self, key: str, value: str) -> None:
        self.items[key] = value

    def forget(self) -> None:
        self.items.clear()


def test_an_async_transform_serves_several_event_loops(local_server: LocalServer) -> None:
    # asyncio.run() per batch of agents: the same span is summarized again in a new loop (its
    # entry expired), with tasks waiting on the same lock as in the first loop.
    store = ForgetfulStore()
    t = asummarize(
        anthropic.AsyncAnthropic(base_url=local_server.base_url, api_key="test"),
        store=store,
        **OPTIONS,
    )

    async def batch() -> list[Any]:
        async with anthropic.AsyncAnthropic(
            base_url=local_server.base_url, api_key="test", max_retries=0
        ) as client:
            t.client = client
            return await asyncio.gather(*[t.acall(read_file_loop(30)) for _ in range(3)])

    first = asyncio.run(batch())
    assert len(local_server.summary_calls()) == 1
    store.forget()
    second = asyncio.run(batch())
    assert len(local_server.summary_calls()) == 2  # one call per loop, the others waited for it
    outs = {canonical_json(out) for out in first + second}
    assert len(outs) == 1
    assert leading_summary(second[0]["messages"])[1] is not None


# ---------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("client", ["sk-ant-api-key", object()])
def test_a_client_that_is_not_an_anthropic_client_gets_a_clear_error(
    client: object, local_server: LocalServer
) -> None:
    t = summarize(client, **OPTIONS)
    with pytest.raises(TypeError, match=r"needs an anthropic client .*\.messages\.create"):
        t(read_file_loop(30))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"store": "summaries.db"}, r"store=tc\.SQLiteStore\('summaries\.db'\)"),
        ({"store": Path("summaries.db")}, r"must be a Store .*got PosixPath"),
        ({"on_summary": 3}, r"on_summary=\.\.\.\) must be callable"),
        ({"counter": "cl100k"}, r"counter=\.\.\.\) must be a token counter"),
    ],
)
def test_wrong_objects_are_refused_when_the_transform_is_made(
    setting: dict[str, Any], message: str
) -> None:
    # Accepted, they would fail only at the first request over the trigger, possibly hours
    # later: AttributeError ('str' object has no attribute 'get'), "'int' object is not callable".
    with pytest.raises(TypeError, match=message):
        summarize(object(), **setting)
    with pytest.raises(TypeError, match=message):
        asummarize(object(), **setting)


def test_a_timeout_that_is_not_a_number_gets_a_clear_error() -> None:
    # Not "TypeError: '>' not supported between instances of 'str' and 'int'".
    with pytest.raises(ValueError, match=r"summarize\(timeout=\.\.\.\) must be positive seconds"):
        summarize(object(), timeout="30")  # type: ignore[arg-type]


def test_server_side_with_a_small_trigger_names_the_trigger() -> None:
    # Not an error about target_tokens, a setting server-side compaction does not use.
    with pytest.raises(ValueError, match=r"server-side compaction needs a trigger of at least"):
        summarize(None, server_side=True, trigger=3_000)


# ---------------------------------------------------------------------------- explain, warnings


def test_explain_prices_every_call_of_a_step_that_needs_several(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    events: list[SummaryEvent] = []
    t = summarize(
        anthropic_client,
        trigger=60_000,
        keep=3,
        target_tokens=2_000,
        on_summary=events.append,
    )
    request = read_file_loop(700)
    out = t(request)
    (event,) = events
    assert event.calls >= 2  # the span is over MAX_CALL_TOKENS
    assert event.span_tokens > MAX_CALL_TOKENS
    haiku = pricing.lookup("claude-haiku-4-5")
    total = sum(pricing.cost(u, haiku).total for u in event.usage)
    note = t.describe(request, out)
    match = re.search(r"summary call on \S+ \$(\d+\.\d{4}) ", note)
    assert match is not None, note
    assert match.group(1) == f"{total:.4f}"
    # The explain() table carries the same note.
    assert f"${total:.4f}" in str(tc.explain(request, t))


def test_explain_says_when_a_due_step_failed(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # Not just "unchanged", as if the request were below the trigger.
    t = summarize(anthropic_client, **OPTIONS)
    local_server.fail_next(529)
    with pytest.warns(SummaryWarning):
        report = tc.explain(read_file_loop(30), t)
    note = report.steps[0].note
    assert "was due, but none was made" in note and "SummaryWarning" in note, note
    assert note.endswith("unchanged")


def test_summary_warning_points_at_the_callers_line(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # The caller's line, not one inside tidyctx.
    t = summarize(anthropic_client, **OPTIONS)
    for call in (t, lambda r: tc.pipe(r, tc.order(), t), lambda r: tc.explain(r, t)):
        local_server.fail_next(529)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(read_file_loop(30))
        (warning,) = [w for w in caught if issubclass(w.category, SummaryWarning)]
        assert warning.filename == __file__, warning.filename


def test_summary_warning_of_acall_points_at_the_await(local_server: LocalServer) -> None:
    async def main() -> list[warnings.WarningMessage]:
        async with anthropic.AsyncAnthropic(
            base_url=local_server.base_url, api_key="t", max_retries=0
        ) as client:
            t = asummarize(client, **OPTIONS)
            local_server.fail_next(529)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await t.acall(read_file_loop(30))
            return caught

    (warning,) = [w for w in asyncio.run(main()) if issubclass(w.category, SummaryWarning)]
    assert warning.filename == __file__, warning.filename


# ---------------------------------------------------------------------------- cost reporting


class FailingStore(MemoryStore):
    """A store whose ``put`` number ``fail_at`` (1-based) raises, like a full disk."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.puts = 0

    def put(self, key: str, value: str) -> None:
        self.puts += 1
        if self.puts == self.fail_at:
            raise OSError("disk full")
        super().put(key, value)


@pytest.mark.parametrize("fail_at", [1, 2])  # the call's memo, then the cut record
def test_a_store_error_after_the_call_still_reports_the_calls_cost(
    fail_at: int, local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    events: list[SummaryEvent] = []
    store = FailingStore(fail_at)
    t = summarize(anthropic_client, store=store, on_summary=events.append, **OPTIONS)
    with pytest.raises(OSError, match="disk full"):
        t(read_file_loop(30))
    assert len(local_server.summary_calls()) == 1
    (event,) = events
    assert not event.complete and event.calls == 1
    assert event.usage[0]["output_tokens"] > 0
    assert event.span == "" and event.summary_tokens == 0
    # Once the store works again, the step is made (and reported once, as complete).
    t(read_file_loop(30))
    assert [e.complete for e in events] == [False, True]


def test_calls_of_a_step_whose_later_call_fails_are_reported(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # A span over MAX_CALL_TOKENS takes several calls. When the second fails, the first (paid,
    # and memoized, so never made again) still reaches on_summary.
    events: list[SummaryEvent] = []
    t = summarize(
        anthropic_client,
        trigger=60_000,
        keep=3,
        target_tokens=2_000,
        max_payback_turns=None,
        on_summary=events.append,
    )
    local_server.script("## Task\nFix src/app/parse.py", Fail(529))
    request = read_file_loop(700)
    with pytest.warns(SummaryWarning, match="529"):
        assert t(request) == request
    (event,) = events
    assert not event.complete and event.calls == 1 and event.usage[0]["output_tokens"] > 0
    # The retry reuses the first answer: only the later calls are made and reported.
    out = t(request)
    assert leading_summary(out["messages"])[1] is not None
    assert events[1].complete and events[1].calls == len(local_server.summary_calls()) - 2


@pytest.mark.parametrize("is_async", [False, True])
def test_a_refused_answer_is_reported_as_paid(
    is_async: bool, local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # An answer cut at max_tokens is billed like any other.
    events: list[SummaryEvent] = []
    cut_short = {"content": "## Task\nFix", "stop_reason": "max_tokens"}
    local_server.script(cut_short)
    request = read_file_loop(30)
    if is_async:

        async def main() -> dict[str, Any]:
            async with anthropic.AsyncAnthropic(
                base_url=local_server.base_url, api_key="t", max_retries=0
            ) as client:
                t = asummarize(client, on_summary=events.append, **OPTIONS)
                out: dict[str, Any] = await t.acall(request)
                return out

        with pytest.warns(SummaryWarning, match="max_tokens"):
            out = asyncio.run(main())
    else:
        t = summarize(anthropic_client, on_summary=events.append, **OPTIONS)
        with pytest.warns(SummaryWarning, match="max_tokens"):
            out = t(request)
    assert out == request
    (event,) = events
    assert not event.complete and event.calls == 1 and event.usage[0]["output_tokens"] > 0
