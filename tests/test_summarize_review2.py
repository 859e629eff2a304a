"""summarize() and the stores: regressions found by a second review as a new user.

The real anthropic SDK against tidyctx.testing.LocalServer, offline.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import anthropic
import pytest

import tidyctx as tc
from runs import OPTIONS, agent_run, turns
from tidyctx.store import MemoryStore, SQLiteStore, store_key
from tidyctx.testing import Fail, LocalServer
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._summarize import (
    SummaryEvent,
    SummaryWarning,
    asummarize,
    leading_summary,
    summarize,
)

# ---------------------------------------------------------------------------- settings


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
    # Before: accepted, then AttributeError ('str' object has no attribute 'get') or "'int'
    # object is not callable" at the first request over the trigger, possibly hours later.
    with pytest.raises(TypeError, match=message):
        summarize(object(), **setting)
    with pytest.raises(TypeError, match=message):
        asummarize(object(), **setting)


def test_a_timeout_that_is_not_a_number_gets_a_clear_error() -> None:
    # Before: TypeError: '>' not supported between instances of 'str' and 'int'.
    with pytest.raises(ValueError, match=r"summarize\(timeout=\.\.\.\) must be positive seconds"):
        summarize(object(), timeout="30")  # type: ignore[arg-type]


def test_server_side_with_a_small_trigger_names_the_trigger() -> None:
    # Before: "summarize(target_tokens=2000) must be at most half of trigger", a setting
    # server-side compaction does not even use.
    with pytest.raises(ValueError, match=r"server-side compaction needs a trigger of at least"):
        summarize(None, server_side=True, trigger=3_000)


# ---------------------------------------------------------------------------- explain()


def config_run(steps: int) -> dict[str, Any]:
    """A task and a tool loop of ``steps`` calls, each result about 2,000 tokens."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Audit etc/app/ (OPS-3317)."}]
    for i in range(steps):
        call = {"type": "tool_use", "id": f"toolu_{i:03d}", "name": "cat", "input": {"n": i}}
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "Next."}, call]})
        body = "\n".join(
            f"etc/app/f{i}.conf line {j}: key_{i}_{j} = {1000 * i + j}" for j in range(90)
        )
        result = {"type": "tool_result", "tool_use_id": f"toolu_{i:03d}", "content": body}
        messages.append({"role": "user", "content": [result]})
    return {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": messages}


def test_explain_says_why_no_new_step_while_a_summary_is_in_place(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # Turns of about 2,000 tokens, 3 kept: after a step the request grows past the trigger
    # again while the span before the kept turns is still small next to the kept part, so the
    # payback gate holds the next step. explain() used to say only "made on an earlier turn",
    # hiding why a request over the trigger was not summarized again.
    trigger = 20_000
    t = summarize(anthropic_client, trigger=trigger, keep=3, target_tokens=1_000)
    counter = LocalCounter("claude-sonnet-4-6")
    held = None
    for request in turns(config_run(25)):
        out = t(request)
        tc.validate(out)
        if leading_summary(out["messages"])[1] is not None and counter.count_request(out) > trigger:
            held = request
            break
    assert held is not None, "no turn over the trigger with a summary in place"
    assert len(local_server.summary_calls()) == 1  # the gate held the second step
    note = tc.explain(held, t).steps[0].note
    assert "made on an earlier turn, the cached prefix is intact" in note, note
    assert "over the trigger" in note and "would pay back after" in note, note
    assert "max_payback_turns=10" in note and "summarizing waits" in note, note


def test_explain_says_when_a_due_step_failed(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # Before: "unchanged", as if the request were below the trigger.
    t = summarize(anthropic_client, **OPTIONS)
    local_server.fail_next(529)
    with pytest.warns(SummaryWarning):
        report = tc.explain(agent_run(30), t)
    note = report.steps[0].note
    assert "was due, but none was made" in note and "SummaryWarning" in note, note
    assert note.endswith("unchanged")


# ---------------------------------------------------------------------------- warnings


def test_summary_warning_points_at_the_callers_line(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # Before: the warning named a line inside summarize.py, whatever the caller.
    t = summarize(anthropic_client, **OPTIONS)
    for call in (t, lambda r: tc.pipe(r, tc.order(), t), lambda r: tc.explain(r, t)):
        local_server.fail_next(529)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(agent_run(30))
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
                await t.acall(agent_run(30))
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
        t(agent_run(30))
    assert len(local_server.summary_calls()) == 1
    (event,) = events
    assert not event.complete and event.calls == 1
    assert event.usage[0]["output_tokens"] > 0
    assert event.span == "" and event.summary_tokens == 0
    # Once the store works again, the step is made (and reported once, as complete).
    t(agent_run(30))
    assert [e.complete for e in events] == [False, True]


def test_calls_of_a_step_whose_later_call_fails_are_reported(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # A span over MAX_CALL_TOKENS takes several calls. Before, when the second failed, the
    # first (paid, and memoized, so never made again) reached no on_summary at all.
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
    request = agent_run(700)
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
    request = agent_run(30)
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


# ---------------------------------------------------------------------------- stores


def test_memory_store_refuses_a_key_that_is_not_a_str_like_the_other_stores(
    tmp_path: Path,
) -> None:
    # Before: MemoryStore.get(1) was None while SQLiteStore.get(1) raised TypeError.
    with SQLiteStore(tmp_path / "s.db") as disk:
        for store in (MemoryStore(), disk):
            with pytest.raises(TypeError, match=r"\.get takes a str key, got int"):
                store.get(1)  # type: ignore[arg-type]


def test_sqlite_store_on_a_directory_says_so(tmp_path: Path) -> None:
    # Before: sqlite3.OperationalError "unable to open database file".
    with pytest.raises(IsADirectoryError, match=r"is a directory; .*tidyctx\.db"):
        SQLiteStore(tmp_path)


def test_store_key_of_bytes_is_a_type_error() -> None:
    # Before: AttributeError: 'bytes' object has no attribute 'encode'.
    with pytest.raises(TypeError, match=r"store_key\(\) hashes text \(str\), got bytes"):
        store_key(b"abc")  # type: ignore[arg-type]
