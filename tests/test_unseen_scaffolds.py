"""Robustness on agent runs unlike the bundled traces: other scaffolds' shapes, odd tool-result
formats, screenshots, parallel calls, thinking, server-tool blocks, earlier tidyctx output.

Every run is generated (``builders.scaffold_runs``, small, offline) and replayed turn by turn
through ``order, slice_code, trim, summarize, cache`` with the real SDK against the local server;
the loaders, reference recall and the replay benchmarks are run on the same runs written as
traces.
"""

from __future__ import annotations

import copy
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings

import strategies as gen
import tidyctx as tc
from builders import SCAFFOLD_SUMMARY, as_trace, every_transform, scaffold_runs, server_blocks
from tidyctx._request import cache_content, canonical_json, iter_blocks
from tidyctx.recall import reference_recall
from tidyctx.testing import LocalServer
from tidyctx.traces import load_run

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[LocalServer, anthropic.Anthropic]]:
    """One local server and real SDK client for the module (hypothesis needs no per-test
    fixture); the tests that count summary calls use their own server."""
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        yield server, client


def turn_requests(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The request of each turn: every prefix of the messages that ends with a user message."""
    messages = request["messages"]
    return [
        {**request, "messages": messages[:end]}
        for end in range(1, len(messages) + 1)
        if messages[end - 1]["role"] == "user"
    ]


def unanswered(request: dict[str, Any]) -> list[str]:
    """tool_use ids without a tool_result in the next message."""
    messages = request["messages"]
    missing = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or not isinstance(message["content"], list):
            continue
        after = messages[i + 1]["content"] if i + 1 < len(messages) else []
        answered = {b.get("tool_use_id") for b in after if isinstance(b, dict)}
        missing += [
            b["id"]
            for b in message["content"]
            if b.get("type") == "tool_use" and b["id"] not in answered
        ]
    return missing


def cached_prefix(request: dict[str, Any]) -> list[bytes]:
    """The blocks up to the last cache breakpoint, as the cache sees them."""
    blocks = list(iter_blocks(request))
    marked = [
        k
        for k, r in enumerate(blocks)
        if isinstance(r.block, dict) and r.block.get("cache_control")
    ]
    end = marked[-1] + 1 if marked else 0
    return [canonical_json(cache_content(r.block)) for r in blocks[:end]]


# ---------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("name", sorted(scaffold_runs()))
def test_pipeline_replays_unseen_runs(name: str) -> None:
    run = scaffold_runs()[name]
    tc.validate(run)
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        pipeline = every_transform(client)
        previous: dict[str, Any] | None = None
        calls = 0
        for request in turn_requests(run):
            before = copy.deepcopy(request)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # none of these inputs is one a warning is for
                out = tc.pipe(request, *pipeline)
                assert tc.pipe(out, *pipeline) == out, "not idempotent"
            assert request == before, "input mutated"
            tc.validate(out)
            assert unanswered(out) == []
            client.messages.create(**out)  # the local server checks the body too
            made = len(server.summary_calls())
            if previous is not None and made == calls:
                # No summary step in between: the cached prefix of the last turn is kept.
                prefix = cached_prefix(previous)
                assert [canonical_json(cache_content(r.block)) for r in iter_blocks(out)][
                    : len(prefix)
                ] == prefix
            previous, calls = out, made


def test_server_tool_blocks_pass_through_with_other_names(served: Any) -> None:
    _, client = served
    request = scaffold_runs()["server_tools"]
    out = tc.pipe(request, *every_transform(client)[:3])
    assert server_blocks(out) == server_blocks(request) != []


def test_summarize_fires_on_text_only_and_screenshot_runs() -> None:
    # Not a pass-through by accident: the runs without tool loops are summarized too.
    for name in ("aider_text_only", "computer_use", "earlier_tidyctx_output"):
        with (
            LocalServer() as server,
            anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
        ):
            out = tc.pipe(scaffold_runs()[name], *every_transform(client))
            assert len(server.summary_calls()) >= 1, name
            assert out["messages"][0]["content"][0]["text"].startswith("<tidyctx-summary v1"), name
            assert tc.pipe(out, *every_transform(client)) == out


# ---------------------------------------------------------------------------- as traces


def write_traces(folder: Path) -> list[Path]:
    paths = []
    for name, request in scaffold_runs().items():
        if name == "formats":
            continue  # its 1 MB line makes the replay benchmarks slow; covered above
        path = folder / f"{name}.json"
        path.write_text(json.dumps(as_trace(name, request)))
        paths.append(path)
    return paths


def test_traces_load_and_recall_on_generated_runs(tmp_path: Path) -> None:
    for path in write_traces(tmp_path):
        run = load_run(path)
        requests = run.requests()
        assert len(requests) == len(run.turns) >= 1
        assert all(t.ts is not None for t in run.turns)
        pipeline = [tc.order(), tc.trim(max_tokens=700, head=0.6, slack=0.5), tc.cache()]
        sent = [tc.pipe(r, *pipeline) for r in requests]
        replies = [t.reply for t in run.turns]
        recall = reference_recall(requests, replies, sent)
        assert 0.0 <= recall.ratio <= 1.0
        assert len(recall.per_turn) == len(requests)
        # The untransformed requests recall every reference, by definition.
        same = reference_recall(requests, replies, requests)
        assert same.recalled == same.references
    run = load_run(tmp_path / "langchain_names.json")
    refs = reference_recall(run.requests(), [t.reply for t in run.turns], run.requests())
    assert refs.references > 0  # the final reply names src/m1.py, read by the first call


def test_replay_benchmarks_run_on_generated_traces(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import summarize_replay
        import trim_replay
    finally:
        sys.path.remove(str(BENCHMARKS))
    paths = write_traces(tmp_path)
    for path in paths:
        name, floor, _, result = trim_replay.measure((path, False))
        assert floor > 0 and set(result) == {"order+cache", "+trim"}, name
        for cost, recalled, references in result.values():
            assert cost > 0 and 0 <= recalled <= references
    row = summarize_replay.measure((tmp_path / "parallel_12.json", [dict(SCAFFOLD_SUMMARY)], True))
    assert row["notes"][0], "no summary step on a 26k-token run with a 3k trigger"
    cost, calls, recalled, references = row["results"][0]
    assert cost > 0 and calls > 0 and 0 <= recalled <= references


# ---------------------------------------------------------------------------- properties


@settings(max_examples=30)
@given(gen.odd_requests())
def test_pipeline_properties_on_odd_results(served: Any, request: dict[str, Any]) -> None:
    _, client = served
    pipeline = every_transform(client, trigger=2_000, keep=1)
    before = copy.deepcopy(request)
    out = tc.pipe(request, *pipeline)
    assert request == before
    tc.validate(out)
    assert unanswered(out) == []
    assert tc.pipe(out, *pipeline) == out
