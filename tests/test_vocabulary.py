"""One vocabulary across the transforms: ``trigger``, ``keep``, ``model``, ``counter`` and the
clearing options (tc.Clearing) mean the same wherever they appear."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

import tidyctx as tc
from builders import OPTIONS, agent_run
from tidyctx.tokens import LocalCounter


class FixedCounter:
    """A TokenCounter that is not a LocalCounter: counts every request as ``n`` tokens."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    def count_request(self, request: Any) -> int:
        self.seen += 1
        return self.n


def cleared(request: dict[str, Any]) -> int:
    return sum(
        "cleared result of" in str(b.get("content"))
        for m in request["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
    )


def test_the_package_exports_the_shared_names() -> None:
    for name in ("clear", "Clearing", "store_text", "LocalCounter", "TokenCounter"):
        assert name in tc.__all__ and hasattr(tc, name)
    assert not hasattr(tc, "keep")  # keep names the parameter only
    store = tc.MemoryStore()
    key = tc.store_text(store, "removed text")
    assert store.get(key) == "removed text"


def test_clear_and_trim_speak_the_same_clearing() -> None:
    run = agent_run(12, lines=120)
    clearing = tc.Clearing(keep=3, trigger=0, clear_at_least=2_000)
    by_clear = tc.clear(clearing)(run)
    by_trim = tc.trim(clearing=clearing, compact=False)(run)
    assert cleared(by_clear) == cleared(by_trim) > 0
    assert tc.clear()(run) == tc.clear(tc.Clearing())(run)  # the defaults are one set
    assert cleared(tc.clear()(run)) == 0  # 100,000 tokens not reached


def test_a_clearing_reaches_the_server_as_the_same_edit_from_trim_and_clear() -> None:
    run = agent_run(4)
    clearing = tc.Clearing(keep=2, trigger=50_000, exclude_tools=["memory"], server_side=True)
    edit = clearing.edit()
    for t in (tc.trim(clearing=clearing), tc.clear(clearing)):
        out = t(run)
        assert out["context_management"]["edits"] == [edit]
        assert cleared(out) == 0
    assert edit["trigger"] == {"type": "input_tokens", "value": 50_000}


def test_a_clearing_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="keep must be an int"):
        tc.Clearing(keep="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a string"):
        tc.Clearing(exclude_tools="grep")
    with pytest.raises(TypeError, match="takes its options as a Clearing"):
        tc.clear(3)  # type: ignore[arg-type]
    assert tc.Clearing(exclude_tools=["a", "b"]).exclude_tools == ("a", "b")


def test_any_token_counter_drives_the_clearing_trigger() -> None:
    run = agent_run(12, lines=120)
    clearing = tc.Clearing(keep=3, trigger=1_000_000, clear_at_least=0)
    assert cleared(tc.clear(clearing)(run)) == 0
    big = FixedCounter(2_000_000)
    assert cleared(tc.clear(clearing, counter=big)(run)) == 9
    assert big.seen > 0
    assert cleared(tc.trim(clearing=clearing, counter=FixedCounter(2_000_000))(run)) == 9


def log_run(lines: int, model: str = "claude-sonnet-4-6") -> dict[str, Any]:
    """One call whose result is a log of ``lines`` distinct lines."""
    use = {"type": "tool_use", "id": "t1", "name": "sh", "input": {"cmd": "cat app.log"}}
    log = "\n".join(f"line {i}: worker {i % 7} handled job {i * 37}" for i in range(lines))
    result = {"type": "tool_result", "tool_use_id": "t1", "content": log}
    return {
        "model": model,
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Read the log."},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ],
    }


def cut(request: dict[str, Any]) -> bool:
    """Was the tool result cut (it carries a marker)?"""
    return "[tidyctx: " in str(request["messages"][2]["content"][0]["content"])


def test_a_local_counter_counts_the_budgets() -> None:
    """A LocalCounter given as ``counter`` counts per block: trim cuts by its counts; cache
    places a breakpoint wherever a slot is free, whatever the count (the counter prices plans
    only when slots compete)."""
    run = log_run(40)
    tokens = LocalCounter().count_block(run["messages"][2]["content"][0])
    dense = LocalCounter(calibration=4.0)
    assert not cut(tc.trim(max_tokens=tokens + 50)(run))
    assert cut(tc.trim(max_tokens=tokens + 50, counter=dense)(run))
    # Below the model's minimum cacheable length too: a breakpoint there is free.
    assert "cache_control" in str(tc.cache()(run))
    assert tc.cache(counter=LocalCounter(calibration=50.0))(run) == tc.cache()(run)


def test_a_counter_that_is_not_a_token_counter_is_refused() -> None:
    for make in (tc.trim, tc.cache, tc.slice_code):
        with pytest.raises(TypeError, match="must be a token counter"):
            make(counter="cl100k")
    with pytest.raises(TypeError, match="must be a token counter"):
        tc.clear(counter=42)  # type: ignore[arg-type]


def test_model_names_the_request_model_everywhere(anthropic_client: anthropic.Anthropic) -> None:
    """``model`` is the model the request goes to, for counting (here: a newer tokenizer
    counts the same text as more tokens); ``summary_model`` the one that writes the summary."""
    run = agent_run(30)
    tokens = LocalCounter("claude-sonnet-4-6").count_request(run)
    assert LocalCounter("claude-opus-4-7").count_request(run) > tokens + 1_000
    options = {**OPTIONS, "trigger": tokens + 500}
    assert tc.summarize(anthropic_client, **options)(run) == run
    t = tc.summarize(anthropic_client, **options, model="claude-opus-4-7")
    assert t.model == "claude-opus-4-7" and t.summary_model == "claude-haiku-4-5"
    assert "summary_model='claude-haiku-4-5'" in t.name
    assert len(t(run)["messages"]) < len(run["messages"])
    assert t.summary_request(None, "x")["model"] == "claude-haiku-4-5"
    with pytest.raises(ValueError, match="summary_model"):
        tc.summarize(anthropic_client, summary_model="")
    newer = log_run(60, model="claude-opus-4-7")
    budget = LocalCounter("claude-haiku-4-5").count_block(newer["messages"][2]["content"][0])
    assert cut(tc.trim(max_tokens=budget + 10)(newer))  # counted for the request's model
    assert not cut(tc.trim(max_tokens=budget + 10, model="claude-haiku-4-5")(newer))


def test_summarize_trigger_and_keep(anthropic_client: anthropic.Anthropic) -> None:
    run = agent_run(30)
    never = tc.summarize(anthropic_client, **{**OPTIONS, "trigger": 1_000_000})
    assert never(run) == run
    out = tc.summarize(anthropic_client, **{**OPTIONS, "keep": 5})(run)
    assert len(out["messages"]) < len(run["messages"])
    assert out["messages"][-10:] == run["messages"][-10:]  # 5 turns kept as they were
    counted = FixedCounter(0)
    assert tc.summarize(anthropic_client, **OPTIONS, counter=counted)(run) == run
    assert counted.seen == 1
