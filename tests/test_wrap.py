"""tc.wrap(client): the real anthropic SDK against tidyctx.testing.LocalServer, offline.

A 20-turn tool loop runs through a wrapped client (sync, async, streamed with ``stream=True``
and with ``messages.stream``, and on ``beta.messages``); its ledger is checked against the usage
the server returned, ``tidyctx.pricing`` and ``tidyctx.cachesim``. Also: summary calls as rows
of their own, what passes through untouched, errors and diagnostics, and that no key, header or
message content reaches the ledger.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings

import strategies as gen
import tidyctx as tc
from tidyctx import cachesim, pricing
from tidyctx._request import cache_markers
from tidyctx.ledger import read_ledger, summarize_ledger
from tidyctx.testing import Fail, LocalServer, is_summary_call, summary_responder
from tidyctx.transforms._summarize import Summarize

MODEL = "claude-sonnet-4-6"
TURNS = 20
SYSTEM = "You are a build agent. SYSTEM-CONTENT-MARK. " + "Follow the runbook. " * 300
TOOLS = [
    {
        "name": "bash",
        "description": "Run a shell command.",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]


def log_output(k: int) -> str:
    """A long build log (about 4k tokens): trim cuts it."""
    return "\n".join(
        f"2026-12-07T10:{k:02d}:{i % 60:02d} INFO step {i} of job {k} compiled module_{i}.o "
        f"TOOL-OUTPUT-MARK"
        for i in range(220)
    )


def responder(body: dict[str, Any]) -> Any:
    """A tool call per turn until the 20th, then an answer; summary calls get a summary."""
    if is_summary_call(body):
        return summary_responder(body)
    # Calls so far, from the last tool result ("of job K", K = messages before it): counting
    # assistant messages would undercount once summarize has replaced the oldest ones.
    found = re.search(r"of job (\d+)", str(body["messages"][-1]["content"]))
    calls = int(found.group(1)) // 2 if found else 0
    if calls < TURNS - 1:
        return [
            f"Running step {calls}.",
            {"type": "tool_use", "name": "bash", "input": {"command": f"make step{calls}"}},
        ]
    return "The build passes."


def first_request() -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 512,
        "system": SYSTEM,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "Build the project. USER-CONTENT-MARK"}],
    }


def next_turn(request: dict[str, Any], content: list[Any]) -> dict[str, Any] | None:
    """The request after the assistant's ``content`` (plain blocks), or None at the end."""
    messages = [*request["messages"], {"role": "assistant", "content": content}]
    calls = [b for b in content if b["type"] == "tool_use"]
    if not calls:
        return None
    results = [
        {"type": "tool_result", "tool_use_id": c["id"], "content": log_output(len(messages))}
        for c in calls
    ]
    return {**request, "messages": [*messages, {"role": "user", "content": results}]}


def blocks(message: Any) -> list[dict[str, Any]]:
    return [b.model_dump(mode="json", exclude_none=True) for b in message.content]


def summed(usages: list[Any]) -> dict[str, int]:
    total = dict.fromkeys(pricing.USAGE_FIELDS, 0)
    for usage in usages:
        for key, value in pricing.usage_dict(usage).items():
            total[key] += value
    return total


def streamed_usage(events: list[Any]) -> dict[str, Any]:
    """The usage of a raw event stream: message_start's, updated by message_delta's counts."""
    usage: dict[str, Any] = {}
    for event in events:
        if event.type == "message_start":
            usage = event.message.usage.model_dump(exclude_none=True)
        elif event.type == "message_delta":
            usage.update(event.usage.model_dump(exclude_none=True))
    return usage


def streamed_content(events: list[Any]) -> list[dict[str, Any]]:
    """The content blocks of a raw event stream (text and tool_use)."""
    out: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for event in events:
        if event.type == "content_block_start":
            out.append(event.content_block.model_dump(mode="json", exclude_none=True))
        elif event.type == "content_block_delta":
            if event.delta.type == "text_delta":
                out[event.index]["text"] += event.delta.text
            elif event.delta.type == "input_json_delta":
                partial[event.index] = partial.get(event.index, "") + event.delta.partial_json
    for index, text in partial.items():
        out[index]["input"] = json.loads(text) if text else {}
    return out


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(responder=responder) as srv:
        yield srv


def raw_client(server: LocalServer, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url, api_key="sk-ant-SECRET-KEY-MARK", max_retries=0, **options
    )


Loop = Callable[[Any], tuple[list[dict[str, Any]], list[Any]]]


def loop_create(client: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    built, usages = [], []
    request: dict[str, Any] | None = first_request()
    while request is not None:
        built.append(copy.deepcopy(request))
        response = client.messages.create(**request)
        usages.append(response.usage)
        request = next_turn(request, blocks(response))
    return built, usages


def loop_create_stream(client: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    built, usages = [], []
    request: dict[str, Any] | None = first_request()
    while request is not None:
        built.append(copy.deepcopy(request))
        events = list(client.messages.create(**request, stream=True))
        usages.append(streamed_usage(events))
        request = next_turn(request, streamed_content(events))
    return built, usages


def loop_stream(client: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    built, usages = [], []
    request: dict[str, Any] | None = first_request()
    while request is not None:
        built.append(copy.deepcopy(request))
        with client.messages.stream(**request) as stream:
            message = stream.get_final_message()
        usages.append(message.usage)
        request = next_turn(request, blocks(message))
    return built, usages


def loop_beta(client: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    built, usages = [], []
    request: dict[str, Any] | None = first_request()
    while request is not None:
        built.append(copy.deepcopy(request))
        response = client.beta.messages.create(**request, betas=["context-1m-2025-08-07"])
        usages.append(response.usage)
        request = next_turn(request, blocks(response))
    return built, usages


def check_ledger(
    path: Path, built: list[dict[str, Any]], usages: list[Any], *, method: str, api: str
) -> list[dict[str, Any]]:
    rows = read_ledger(path)
    calls = [r for r in rows if r["kind"] == "call"]
    assert len(calls) == TURNS == len(usages)
    assert {(r["api"], r["method"]) for r in calls} == {(api, method)}
    # Token totals: exactly the usage the server returned.
    assert summed([r["usage"] for r in calls]) == summed(usages)
    # Cost: tidyctx.pricing of that usage.
    expected = sum(pricing.cost(u, MODEL).total for u in usages)
    assert sum(r["cost"] for r in calls) == pytest.approx(expected, abs=1e-6)
    # Without the pipeline: the requests as built, through the cache model, same output.
    simulated = cachesim.simulate(built)
    baseline = sum(
        pricing.cost({**s, "output_tokens": pricing.usage_dict(u)["output_tokens"]}, MODEL).total
        for s, u in zip(simulated, usages, strict=True)
    )
    assert sum(r["baseline_cost"] for r in calls) == pytest.approx(baseline, abs=1e-6)
    # The pipeline ran: the long logs were cut, breakpoints placed.
    assert all(r["tokens_after"] < r["tokens_before"] for r in calls[1:])
    names = {c["transform"] for r in calls for c in r["changed"]}
    assert any(n.startswith("trim(") for n in names)
    assert "cache(ttl='adaptive', pauses=Pauses())" in names
    assert all(r["latency_s"] >= 0 and r["pipeline_s"] >= 0 for r in calls)
    return rows


@pytest.mark.parametrize(
    ("loop", "method", "api"),
    [
        (loop_create, "create", "messages"),
        (loop_create_stream, "create", "messages"),
        (loop_stream, "stream", "messages"),
        (loop_beta, "create", "beta.messages"),
    ],
    ids=["create", "create-stream", "stream", "beta"],
)
def test_a_wrapped_tool_loop_is_recorded_as_the_server_billed_it(
    server: LocalServer, tmp_path: Path, loop: Loop, method: str, api: str
) -> None:
    path = tmp_path / "usage.jsonl"
    with tc.wrap(raw_client(server), ledger=path) as client:
        built, usages = loop(client)
    rows = check_ledger(path, built, usages, method=method, api=api)
    assert all(r["stream"] == (loop is not loop_create and loop is not loop_beta) for r in rows)
    # Every request reached the server with breakpoints (the pipeline's cache() step).
    sent = [r.body for r in server.requests if r.body]
    assert len(sent) == TURNS and all("cache_control" in str(b) for b in sent)
    # What the caller built was not mutated.
    assert built[0] == first_request()


def test_an_async_wrapped_tool_loop_is_recorded_as_the_server_billed_it(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "usage.jsonl"

    async def run() -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
        raw = anthropic.AsyncAnthropic(
            base_url=server.base_url, api_key="sk-ant-SECRET-KEY-MARK", max_retries=0
        )
        async with tc.wrap(raw, ledger=path) as client:
            assert isinstance(client, anthropic.AsyncAnthropic)
            built, usages, streamed = [], [], []
            request: dict[str, Any] | None = first_request()
            k = 0
            while request is not None:
                built.append(copy.deepcopy(request))
                if k % 3 == 0:
                    response = await client.messages.create(**request)
                    usages.append(response.usage)
                    content = blocks(response)
                elif k % 3 == 1:
                    events = [e async for e in await client.messages.create(**request, stream=True)]
                    usages.append(streamed_usage(events))
                    content = streamed_content(events)
                    streamed.append(k)
                else:
                    async with client.messages.stream(**request) as stream:
                        message = await stream.get_final_message()
                    usages.append(message.usage)
                    content = blocks(message)
                    streamed.append(k)
                request = next_turn(request, content)
                k += 1
        return built, usages, streamed

    built, usages, streamed = asyncio.run(run())
    rows = read_ledger(path)
    calls = [r for r in rows if r["kind"] == "call"]
    assert len(calls) == TURNS
    assert [k for k, r in enumerate(calls) if r["stream"]] == streamed
    assert summed([r["usage"] for r in calls]) == summed(usages)
    expected = sum(pricing.cost(u, MODEL).total for u in usages)
    assert sum(r["cost"] for r in calls) == pytest.approx(expected, abs=1e-6)
    simulated = cachesim.simulate(built)
    baseline = sum(
        pricing.cost({**s, "output_tokens": pricing.usage_dict(u)["output_tokens"]}, MODEL).total
        for s, u in zip(simulated, usages, strict=True)
    )
    assert sum(r["baseline_cost"] for r in calls) == pytest.approx(baseline, abs=1e-6)
    assert all(r["tokens_after"] < r["tokens_before"] for r in calls[1:])


SUMMARY = {"trigger": 12_000, "keep": 2, "target_tokens": 1_000, "max_payback_turns": None}


def test_summary_calls_are_rows_of_their_own(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    raw = raw_client(server)
    pipeline = tc.defaults(raw, trim=False, summarize=SUMMARY)
    with tc.wrap(raw, *pipeline, ledger=path) as client:
        loop_create(client)
    rows = read_ledger(path)
    summaries = [r for r in rows if r["kind"] == "summary"]
    made = server.summary_calls()
    assert made and len(summaries) == len(made)
    assert all(r["model"] == "claude-haiku-4-5" and r["baseline_cost"] == 0.0 for r in summaries)
    assert all(r["usage"]["output_tokens"] > 0 and r["cost"] > 0 for r in summaries)
    # Summary calls went through the unwrapped client: not run through the pipeline again.
    assert next(c for c in pipeline if isinstance(c, Summarize)).client is raw
    calls = [r for r in rows if r["kind"] == "call"]
    assert len(calls) == TURNS
    assert any(c["transform"].startswith("summarize(") for r in calls for c in r["changed"])
    total = summarize_ledger(path).total
    assert (total.calls, total.summary_calls) == (TURNS, len(made))


def test_summarize_given_the_wrapped_client_records_each_summary_once(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "usage.jsonl"
    raw = raw_client(server)
    client = tc.wrap(raw, tc.order(), tc.cache(), ledger=path)
    # defaults() of the wrapped client summarizes through the client underneath.
    pipeline = tc.defaults(client, trim=False, summarize=SUMMARY)
    summarizer = next(t for t in pipeline if isinstance(t, Summarize))
    assert summarizer.client is raw
    # A summarize() given the wrapped client itself: its calls pass straight through.
    own = tc.summarize(client, **SUMMARY)
    loop_create(tc.wrap(raw, tc.order(), own, tc.cache(), ledger=path))
    rows = read_ledger(path)
    assert len([r for r in rows if r["kind"] == "summary"]) == len(server.summary_calls()) > 0
    assert len([r for r in rows if r["kind"] == "call"]) == TURNS


def test_async_summary_calls_are_rows_of_their_own(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"

    async def run() -> None:
        raw = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="k", max_retries=0)
        pipeline = tc.defaults(raw, trim=False, summarize=SUMMARY)
        assert any(isinstance(t, Summarize) and t.is_async for t in pipeline)
        client = tc.wrap(raw, *pipeline, ledger=path)
        request: dict[str, Any] | None = first_request()
        while request is not None:
            response = await client.messages.create(**request)
            request = next_turn(request, blocks(response))

    asyncio.run(run())
    rows = read_ledger(path)
    summaries = [r for r in rows if r["kind"] == "summary"]
    assert summaries and len(summaries) == len(server.summary_calls())


def test_no_key_header_or_content_reaches_the_ledger(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    raw = raw_client(server, default_headers={"X-Team-Secret": "HEADER-VALUE-MARK"})
    client = tc.wrap(raw, ledger=path)
    request = {**first_request(), "metadata": {"user_id": "METADATA-MARK"}}
    client.messages.create(**request, extra_headers={"X-Extra": "EXTRA-HEADER-MARK"})
    client.beta.messages.create(
        **request, betas=["context-1m-2025-08-07"], extra_headers={"X-Extra": "EXTRA-HEADER-MARK"}
    )
    with client.messages.stream(**request) as stream:
        stream.until_done()
    text = path.read_text(encoding="utf-8")
    assert len(read_ledger(path)) == 3
    for secret in (
        "SECRET-KEY-MARK",
        "HEADER-VALUE-MARK",
        "EXTRA-HEADER-MARK",
        "SYSTEM-CONTENT-MARK",
        "USER-CONTENT-MARK",
        "METADATA-MARK",
        "context-1m",
        "Running step",
        "build passes",
    ):
        assert secret not in text, secret


def test_the_wrapped_client_is_the_sdk_client_and_the_rest_passes_through(
    server: LocalServer, tmp_path: Path
) -> None:
    raw = raw_client(server)
    client = tc.wrap(raw, ledger=tmp_path / "usage.jsonl")
    assert isinstance(client, anthropic.Anthropic) and type(client) is not anthropic.Anthropic
    assert client.api_key == raw.api_key and client.base_url == raw.base_url
    assert client.models is raw.models and client.messages.batches is raw.messages.batches
    assert client.beta.models is raw.beta.models
    # count_tokens is the client's own: the request as given, no pipeline, no ledger row.
    counted = client.messages.count_tokens(model=MODEL, messages=first_request()["messages"])
    assert counted.input_tokens > 0
    assert "cache_control" not in str(server.requests[-1].body)
    assert not (tmp_path / "usage.jsonl").exists()
    # with_options keeps the wrapping (same pipeline, same ledger).
    other = client.with_options(timeout=30.0)
    assert isinstance(other, anthropic.Anthropic) and other.timeout == 30.0
    other.messages.create(**first_request())
    assert "cache_control" in str(server.requests[-1].body)
    assert len(read_ledger(tmp_path / "usage.jsonl")) == 1
    # Wrapping again wraps the client underneath: one pipeline, not two.
    again = tc.wrap(client, tc.order())
    again.messages.create(**first_request())
    assert "cache_control" not in str(server.requests[-1].body)


def test_a_failed_call_is_a_row_and_the_error_reaches_the_caller(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "usage.jsonl"
    client = tc.wrap(raw_client(server), ledger=path)
    server.script(Fail(529))
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(**first_request())
    (row,) = read_ledger(path)
    assert row["error"] == {"type": "OverloadedError", "status": 529}
    assert row["cost"] == 0.0 and row["baseline_cost"] == 0.0
    assert summarize_ledger(path).total.errors == 1


def test_the_response_diagnostics_reach_the_ledger(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    client = tc.wrap(raw_client(server), ledger=path)
    reason = {"type": "system_changed", "cache_missed_input_tokens": 1234}
    server.script({"content": "ok", "diagnostics": {"cache_miss_reason": reason}})
    client.messages.create(**first_request(), diagnostics={"previous_message_id": None})
    client.messages.create(**first_request())
    first, second = read_ledger(path)
    assert first["cache_miss_reason"] == reason
    assert first["diagnostics"] == {"cache_miss_reason": reason}
    assert "cache_miss_reason" not in second and "diagnostics" not in second


def test_a_stream_closed_early_is_recorded_as_incomplete(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "usage.jsonl"
    client = tc.wrap(raw_client(server), ledger=path)
    server.script("word " * 200)
    with client.messages.create(**first_request(), stream=True) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    (row,) = read_ledger(path)
    assert row["complete"] is False and row["usage"]["cache_creation_input_tokens"] > 0


def test_wrap_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"anthropic\.Anthropic"):
        tc.wrap(object())  # type: ignore[type-var]
    raw = anthropic.Anthropic(api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(TypeError, match="callables"):
        tc.wrap(raw, "trim")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ledger"):
        tc.wrap(raw, ledger=3)  # type: ignore[arg-type]
    araw = anthropic.AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(TypeError, match="AsyncAnthropic"):
        tc.wrap(raw, tc.asummarize(araw))


def test_defaults_is_the_recommended_pipeline() -> None:
    names = [type(t).__name__ for t in tc.defaults()]
    code = tc.transforms._defaults.code_extra_installed()
    assert names == ["Order", *(["SliceCode"] if code else []), "Trim", "Cache"]
    raw = anthropic.Anthropic(api_key="k", base_url="http://127.0.0.1:9")
    with_client = tc.defaults(raw)
    assert [type(t).__name__ for t in with_client][-2:] == ["Summarize", "Cache"]
    trim = next(t for t in with_client if type(t).__name__ == "Trim")
    assert (trim.max_tokens, trim.head, trim.slack) == (1500, 0.6, 0.5)
    # One store for every step that keeps what it cuts.
    store = tc.MemoryStore()
    steps = tc.defaults(raw, store=store)
    assert all(t.store is store for t in steps if hasattr(t, "store"))
    araw = anthropic.AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9")
    assert any(isinstance(t, Summarize) and t.is_async for t in tc.defaults(araw))
    assert [type(t).__name__ for t in tc.defaults(order=False, slice_code=False)] == [
        "Trim",
        "Cache",
    ]


def test_defaults_names_what_it_cannot_do() -> None:
    with pytest.raises(TypeError, match=r"unknown keyword 'trimm'.*order, slice_code"):
        tc.defaults(trimm={})
    with pytest.raises(ValueError, match="needs a client"):
        tc.defaults(summarize=True)
    with pytest.raises(TypeError, match="dict of trim"):
        tc.defaults(trim=700)
    server_side = tc.defaults(summarize={"server_side": True}, slice_code=False)
    assert "server_side=True" in server_side[-2].name


# ---------------------------------------------------------------------------- properties

PROPS = settings(max_examples=30)


def pipeline() -> list[Any]:
    """defaults() without a client, with breakpoints on short prefixes too (generated
    conversations are small), and a 200-token trim budget so that results are cut."""
    return tc.defaults(trim={"max_tokens": 200}, cache={"min_tokens": 0})


@PROPS
@given(gen.requests())
def test_the_defaults_pipeline_is_pure_idempotent_and_valid(request: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(request)
    steps = pipeline()
    once = tc.pipe(request, *steps)
    assert request == snapshot
    tc.validate(once)
    assert tc.pipe(once, *steps) == once
    assert tc.pipe(request, *pipeline()) == once  # a fresh pipeline gives the same bytes


@PROPS
@given(gen.growing_conversations(min_turns=2, max_turns=6))
def test_the_defaults_pipeline_keeps_each_cached_prefix_on_the_next_turn(
    requests: list[dict[str, Any]],
) -> None:
    steps = pipeline()
    layouts = [cachesim.layout(tc.pipe(r, *steps)) for r in requests]
    for a, b in itertools.pairwise(layouts):
        if dict(a.seeds).get("images") != dict(b.seeds).get("images"):
            continue  # adding or removing an image invalidates the messages (API docs)
        for pos, _ in a.breakpoints:
            assert a.keys[pos] in b.keys, a.paths[pos]


def test_a_response_the_ledger_cannot_read_is_a_row_not_a_failed_call(tmp_path: Path) -> None:
    from tidyctx._wrap import _Outcome, _Prepared, _Recorder

    path = tmp_path / "usage.jsonl"
    recorder = _Recorder([tc.order()], tc.Ledger(path))
    request = first_request()
    bogus = {"model": MODEL, "usage": {"input_tokens": -1, "output_tokens": 1}}
    recorder.finish("messages", "create", False, _Prepared(request, request), _Outcome(bogus))
    (row,) = read_ledger(path)
    assert "could not be read" in row["ledger_error"]
    assert summarize_ledger(path).total.unreadable == 1


def test_a_ledger_reports_as_a_page_with_the_billed_totals(
    server: LocalServer, tmp_path: Path
) -> None:
    from tidyctx._cli import main

    path = tmp_path / "usage.jsonl"
    with tc.wrap(raw_client(server), ledger=path) as client:
        _, usages = loop_create(client)
    page = tmp_path / "report.html"
    assert main(["report", str(path), "--html", str(page)]) == 0
    found = re.search(
        r'<script id=report-data type="application/json">(.*?)</script>',
        page.read_text(encoding="utf-8"),
        re.S,
    )
    assert found
    total = json.loads(found.group(1))["total"]
    rows = read_ledger(path)
    assert total["calls"] == len(rows) == TURNS
    billed = [pricing.usage_dict(u) for u in usages]
    assert total["input"] == sum(u["input_tokens"] for u in billed)
    assert total["cache_read"] == sum(u["cache_read_input_tokens"] for u in billed)
    assert total["cost"] == pytest.approx(sum(r["cost"] for r in rows), abs=1e-6)
    assert total["cost_without"] == pytest.approx(sum(r["baseline_cost"] for r in rows), abs=1e-6)


# ---------------------------------------------------------------------------- adaptive TTL


def test_defaults_cache_is_adaptive_and_a_fixed_ttl_is_one_keyword_away() -> None:
    cache = tc.defaults(slice_code=False)[-1]
    assert cache.ttl == "adaptive" and isinstance(cache.pauses, tc.Pauses)
    assert tc.defaults(cache={"ttl": "5m"})[-1].name == "cache()"
    assert tc.defaults(cache={"ttl": "1h"})[-1].name == "cache(ttl='1h')"
    mine = tc.Pauses(prior=0.05)
    assert tc.defaults(cache={"pauses": mine})[-1].pauses is mine


def test_the_wrapper_times_each_call_for_the_adaptive_ttl_and_records_its_choice(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls 15 s apart, then a 20-minute pause: the wrapper records each call's time, the
    cache keeps the prefix at 1 hour once that pays, and each row says so and why."""
    now = [1_767_225_600.0]
    monkeypatch.setattr("tidyctx.transforms._pauses.time.time", lambda: now[0])
    ledger = tmp_path / "usage.jsonl"
    client = tc.wrap(raw_client(server), *tc.defaults(cache={"min_tokens": 0}), ledger=ledger)
    request: dict[str, Any] | None = first_request()
    gaps = iter([15.0, 15.0, 1_200.0, 15.0, 15.0] + [15.0] * TURNS)
    sent_ttls = []
    while request is not None:
        response = client.messages.create(**request)
        sent = server.requests[-1].body
        sent_ttls.append({m.get("ttl", "5m") for _, m in cache_markers(sent)})
        now[0] += next(gaps)
        request = next_turn(request, blocks(response))
    rows = [r for r in read_ledger(ledger) if r["kind"] == "call"]
    ttls = [r["ttl"] for r in rows]
    assert [t["gaps"] for t in ttls] == list(range(len(rows)))
    assert all(t["stable"] == "5m" and t["rolling"] == "5m" for t in ttls[:3])
    assert "first call" in ttls[0]["reason"] and ttls[3]["last_gap"] == 1_200.0
    # The call after the pause rewrites its whole prefix anyway (the 5-minute entries expired):
    # a 1-hour write of all of it would not pay back. From the next call on, each writes a
    # little onto a large prefix, and one gap in a few has been a pause: an hour pays.
    assert ttls[3]["pauses"] == 1 and ttls[3]["stable"] == "5m"
    assert "would not pay back" in ttls[3]["reason"]
    assert all(t["pauses"] == 1 and t["stable"] == t["rolling"] == "1h" for t in ttls[4:])
    assert all(t == {"5m"} for t in sent_ttls[:4]) and all(t == {"1h"} for t in sent_ttls[4:])
