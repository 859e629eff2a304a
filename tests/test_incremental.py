"""The memo never changes an output: a pipeline that has seen earlier turns (its memos warm)
gives, byte for byte, what a fresh pipeline in a fresh memo gives for the same request.

Checked turn by turn over generated sessions and over the recorded traces; with two
conversations interleaved in one process; with the memo bounded so small that it evicts all
the time; and with a caller that edits its message list in place between calls.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies
import tidyctx as tc
from builders import BUNDLED_TRACES, SHARED_TRACES, agent_run, tool_messages, turns
from tidyctx import tokens
from tidyctx._memo import (
    DEFAULT_MAX_BYTES,
    clear_memo,
    memo_stats,
    prefix_tokens,
    resume,
    set_memo_limit,
    suspend,
)
from tidyctx.traces import load_run

Pipeline = Callable[[], list[Any]]


def recommended() -> list[Any]:
    return [
        tc.order(),
        tc.slice_code(),
        tc.trim(max_tokens=700, head=0.6, slack=0.5),
        tc.cache(),
    ]


def clearing() -> list[Any]:
    clear = tc.Clearing(keep=2, trigger=2_000, clear_at_least=500)
    return [tc.trim(max_tokens=120, clearing=clear), tc.compact(), tc.cache()]


PIPELINES = (recommended, clearing)


def _bytes(request: Any) -> bytes:
    return json.dumps(request, ensure_ascii=False).encode("utf-8")


def from_scratch(request: Any, pipeline: Pipeline) -> bytes:
    """The output of a new pipeline, every memo emptied first (a fresh process's state)."""
    clear_memo()
    tokens.clear_memo()
    return _bytes(tc.pipe(copy.deepcopy(request), *pipeline()))


@pytest.fixture(autouse=True)
def _memo_restored() -> Iterator[None]:
    yield
    set_memo_limit(DEFAULT_MAX_BYTES)


def _incremental(requests: Sequence[Any], pipeline: Pipeline) -> list[bytes]:
    transforms = pipeline()
    return [_bytes(tc.pipe(r, *transforms)) for r in requests]


def _check(requests: Sequence[Any], pipeline: Pipeline) -> None:
    got = _incremental(requests, pipeline)
    for k, (request, out) in enumerate(zip(requests, got, strict=True)):
        assert out == from_scratch(request, pipeline), f"turn {k} differs from a fresh run"


@settings(max_examples=25)
@given(strategies.growing_conversations(), st.sampled_from(PIPELINES))
def test_a_warm_pipeline_gives_the_bytes_of_a_fresh_one(
    session: list[dict[str, Any]], pipeline: Pipeline
) -> None:
    _check(session, pipeline)


@settings(max_examples=15)
@given(strategies.growing_conversations(), strategies.growing_conversations())
def test_interleaved_conversations_share_the_memo_without_mixing(
    first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    transforms = recommended()
    order = [r for pair in zip(first, second, strict=False) for r in pair]
    order += first[len(second) :] + second[len(first) :]
    for request in order:
        out = _bytes(tc.pipe(request, *transforms))
        assert out == from_scratch(request, recommended)


@settings(max_examples=15)
@given(strategies.growing_conversations(), st.sampled_from(PIPELINES))
def test_a_memo_that_evicts_all_the_time_changes_no_output(
    session: list[dict[str, Any]], pipeline: Pipeline
) -> None:
    set_memo_limit(3_000)
    got = _incremental(session, pipeline)
    assert memo_stats().bytes <= 3_000
    for request, out in zip(session, got, strict=True):
        assert out == from_scratch(request, pipeline)
        set_memo_limit(3_000)  # from_scratch cleared it; keep it tiny for the next turn


def test_a_caller_that_edits_its_list_in_place_gets_no_stale_result() -> None:
    run = agent_run(8, lines=400)
    messages = run["messages"]
    transforms = recommended()
    request = {**run, "messages": messages}
    tc.pipe(request, *transforms)
    # Edit, in place, an old tool result's text and an old call's input, then call again.
    result = messages[2]["content"][0]
    result["content"] = result["content"].replace("return", "yield") + "\nchanged 424242"
    messages[1]["content"][-1]["input"]["path"] = "src/other.py"
    out = _bytes(tc.pipe(request, *transforms))
    assert out == from_scratch(request, recommended)
    assert b"424242" in out or b"changed" in out or b"yield" in out
    # And back as it was: the first call's result again, not the edited one's.
    result["content"] = agent_run(8, lines=400)["messages"][2]["content"][0]["content"]
    assert _bytes(tc.pipe(request, *transforms)) == from_scratch(request, recommended)


def test_the_memo_is_bounded_and_observable() -> None:
    clear_memo()
    for request in turns(agent_run(6, lines=300)):
        tc.pipe(request, *recommended())
    stats = memo_stats()
    assert stats.entries > 0 and 0 < stats.bytes <= stats.max_bytes
    assert sum(n for n, _ in stats.kinds.values()) == stats.entries
    set_memo_limit(0)
    assert memo_stats().entries == 0
    with pytest.raises(ValueError, match="max_bytes"):
        set_memo_limit(-1)


def _trace_turns(path: Path) -> list[dict[str, Any]]:
    return [{**t.request, "model": "claude-sonnet-4-6"} for t in load_run(path).turns]


@pytest.mark.parametrize("path", sorted(BUNDLED_TRACES.glob("*.json")), ids=lambda p: p.stem)
def test_bundled_traces_replay_warm_as_fresh(path: Path) -> None:
    requests = _trace_turns(path)
    got = _incremental(requests, recommended)
    for k in sorted({0, len(requests) // 2, len(requests) - 1}):
        assert got[k] == from_scratch(requests[k], recommended), f"turn {k}"


def test_shared_traces_replay_warm_as_fresh() -> None:
    paths = sorted(SHARED_TRACES.glob("*.json"))
    if not paths:
        pytest.skip(f"no trace collection at {SHARED_TRACES} (set TIDYCTX_TRACES to one)")
    for path in paths:
        requests = _trace_turns(path)
        got = _incremental(requests, recommended)
        for k in sorted({len(requests) // 2, len(requests) - 1}):
            assert got[k] == from_scratch(requests[k], recommended), f"{path.stem} turn {k}"


def _repeating_run(steps: int) -> dict[str, Any]:
    """A tool loop whose logs repeat the lines of earlier ones (a test suite run again and
    again), so that trim's repeat notes depend on every earlier result."""
    shared = [f"tests/test_module_{k}.py::test_case_{k} PASSED [{k:>3}%]" for k in range(60)]
    calls = [
        ("run_tests", {"k": k}, "\n".join([*shared[k : k + 30], f"run {k}: {k * 7} passed"]))
        for k in range(steps)
    ]
    messages = tool_messages("Make the suite pass.", calls, say="Run {k}.")
    return {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": messages}


def test_repeat_notes_resume_from_the_last_turn_as_a_fresh_run_would() -> None:
    run = _repeating_run(8)
    transforms = [tc.trim(max_tokens=2000)]
    outs = [_bytes(tc.pipe(r, *transforms)) for r in turns(run)]
    assert b"lines as in earlier results" in outs[-1]
    for request, out in zip(turns(run), outs, strict=True):
        assert out == from_scratch(request, lambda: [tc.trim(max_tokens=2000)])


def test_repeat_notes_follow_an_earlier_result_edited_in_place() -> None:
    run = _repeating_run(6)
    transforms = [tc.trim(max_tokens=2000)]
    tc.pipe(run, *transforms)
    # The first result no longer holds the lines the later ones repeat.
    first = run["messages"][2]["content"][0]
    first["content"] = "nothing to see"
    out = _bytes(tc.pipe(run, *transforms))
    assert out == from_scratch(run, lambda: [tc.trim(max_tokens=2000)])


def test_a_resumed_state_goes_to_one_caller_and_only_for_its_own_prefix() -> None:
    clear_memo()
    mine = prefix_tokens(["config", "a", "b"])
    other = prefix_tokens(["config", "a", "x"])
    suspend("doc-state", mine[-1], ["a", "b"], 10)
    assert resume("doc-state", other) == (0, None)  # a different last item: not this state
    longer = prefix_tokens(["config", "a", "b", "c"])  # the conversation grew by one item
    assert resume("doc-state", longer) == (3, ["a", "b"])
    assert resume("doc-state", mine) == (0, None)  # taken: a second caller starts over
