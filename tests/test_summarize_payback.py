"""summarize(max_payback_turns=...): a step is taken only when it pays back soon enough.

The real anthropic SDK against tidyctx.testing.LocalServer, offline; summary calls are counted
on the server.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import anthropic
import pytest

import tidyctx as tc
from builders import config_audit_run as turn_run
from builders import turns as prefixes
from tidyctx import pricing
from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._summarize import (
    MAX_PAYBACK_TURNS,
    asummarize,
    leading_summary,
    payback,
    summarize,
)

# Every turn is about the same size (2,000 tokens), so the kept turns (keep=3) weigh about
# 3 turns while the span before them grows by one turn per call: at the first pass of the
# trigger the span is about twice the kept part, and a step then would take more than 10 turns
# to pay back (13 by the arithmetic of payback()).
GATED: dict[str, Any] = {"trigger": 20_000, "keep": 3, "target_tokens": 1_000}


def first_step(t: Any, requests: list[dict[str, Any]]) -> int | None:
    """Index of the first request that ``t`` summarizes (every request is passed through)."""
    first = None
    for i, request in enumerate(requests):
        out = t(request)
        tc.validate(out)
        if first is None and leading_summary(out["messages"])[1] is not None:
            first = i
    return first


def over_trigger(requests: list[dict[str, Any]], trigger: int) -> int:
    counter = LocalCounter("claude-sonnet-4-6")
    return next(i for i, r in enumerate(requests) if counter.count_request(r) > trigger)


def test_the_gate_holds_a_step_with_a_large_kept_part_and_takes_it_once_the_span_grew(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    requests = prefixes(turn_run(15))
    crossing = over_trigger(requests, GATED["trigger"])
    t = summarize(anthropic_client, max_payback_turns=10, **GATED)
    # Held back at the first pass of the trigger: explain() says what it would cost and save.
    held = tc.explain(requests[crossing], t).steps[0].note
    assert "max_payback_turns=10" in held and "summarizing waits" in held, held
    found = re.search(r"would pay back after (\d+) turns", held)
    assert found is not None and int(found.group(1)) > 10, held
    assert "saves $" in held and "summary call on claude-haiku-4-5" in held
    assert len(local_server.summary_calls()) == 0

    step = first_step(t, requests)
    assert step is not None and step > crossing  # it waited for a longer span ...
    assert len(local_server.summary_calls()) == 1  # ... then made one step, reused on later turns
    # The turn before the step was held, the step itself pays back within 10 turns.
    before = tc.explain(requests[step - 1], t).steps[0].note
    assert "summarizing waits" in before, before
    made = re.search(r"pays back after (\d+) turns?", tc.explain(requests[step], t).steps[0].note)
    assert made is not None and int(made.group(1)) <= 10
    assert len(local_server.summary_calls()) == 1  # explain() asked the store, not the server


def test_without_the_gate_the_step_comes_at_the_first_pass_of_the_trigger(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    requests = prefixes(turn_run(15))
    crossing = over_trigger(requests, GATED["trigger"])
    t = summarize(anthropic_client, max_payback_turns=None, **GATED)
    assert first_step(t, requests) == crossing
    assert len(local_server.summary_calls()) == 1
    note = tc.explain(requests[crossing], t).steps[0].note
    turns = re.search(r"pays back after (\d+) turns", note)
    assert turns is not None and int(turns.group(1)) > 10  # what the gate would have held


def test_a_small_kept_part_passes_the_gate_at_once(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # One kept turn: the same span pays back in fewer turns, so the gate lets it through.
    requests = prefixes(turn_run(15))
    options = {**GATED, "keep": 1}
    crossing = over_trigger(requests, options["trigger"])
    t = summarize(anthropic_client, max_payback_turns=10, **options)
    assert first_step(t, requests) == crossing
    assert len(local_server.summary_calls()) == 1


def test_a_model_without_prices_has_no_gate(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    run = {**turn_run(15), "model": "my-finetuned-model"}
    requests = prefixes(run)
    with pytest.raises(pricing.UnknownModelError):
        pricing.lookup("my-finetuned-model")
    gated = summarize(anthropic_client, max_payback_turns=1, **GATED)
    crossing = over_trigger(requests, GATED["trigger"])
    assert first_step(gated, requests) == crossing
    assert len(local_server.summary_calls()) == 1


def test_the_async_transform_is_gated_too(local_server: LocalServer) -> None:
    requests = prefixes(turn_run(15))
    crossing = over_trigger(requests, GATED["trigger"])

    async def run() -> int | None:
        async with anthropic.AsyncAnthropic(
            base_url=local_server.base_url, api_key="test", max_retries=0
        ) as client:
            t = asummarize(client, max_payback_turns=10, **GATED)
            first = None
            for i, request in enumerate(requests):
                out = await t.acall(request)
                if first is None and leading_summary(out["messages"])[1] is not None:
                    first = i
            return first

    step = asyncio.run(run())
    assert step is not None and step > crossing
    assert len(local_server.summary_calls()) == 1


def test_payback_arithmetic() -> None:
    sonnet, haiku = pricing.lookup("claude-sonnet-4-6"), pricing.lookup("claude-haiku-4-5")
    p = payback("claude-sonnet-4-6", "claude-haiku-4-5", replaced=40_000, summary=2_000, kept=9_000)
    assert p is not None
    # The call's input is cached (written at 5-minute price), its summary paid as output.
    assert p.call == pytest.approx((40_000 * haiku.cache_write_5m + 2_000 * haiku.output) / 1e6)
    rewrite = 11_000 * sonnet.cache_write_5m - 9_000 * sonnet.cache_read
    assert p.write == pytest.approx(rewrite / 1e6)
    assert p.saving == pytest.approx(38_000 * sonnet.cache_read / 1e6)
    assert p.turns is not None and (p.turns - 1) * p.saving < p.cost <= p.turns * p.saving
    # A span under the summary model's minimum cacheable length is not written to its cache.
    small = payback("claude-sonnet-4-6", "claude-haiku-4-5", replaced=3_000, summary=500, kept=0)
    assert small is not None
    assert small.call == pytest.approx((3_000 * haiku.input + 500 * haiku.output) / 1e6)
    # A recorded call cost is taken as it is; a summary as long as the span never pays back.
    known = payback("claude-sonnet-4-6", "claude-haiku-4-5", replaced=5, summary=9, kept=1, call=2)
    assert known is not None and known.call == 2 and known.turns is None
    assert payback("my-model", "claude-haiku-4-5", replaced=9, summary=1, kept=1) is None


def test_the_default_gate_and_its_name() -> None:
    t = summarize(object())
    assert t.max_payback_turns == MAX_PAYBACK_TURNS
    assert f"max_payback_turns={MAX_PAYBACK_TURNS}" in t.name
    assert "max_payback_turns=None" in summarize(object(), max_payback_turns=None).name


@pytest.mark.parametrize("value", [0, -3, True, 2.5, "10"])
def test_a_bad_max_payback_turns_is_named(value: Any) -> None:
    with pytest.raises(ValueError, match=r"max_payback_turns=\.\.\.\) must be a positive int"):
        summarize(object(), max_payback_turns=value)
    with pytest.raises(ValueError, match=r"max_payback_turns"):
        asummarize(object(), max_payback_turns=value)


def test_explain_says_why_no_new_step_while_a_summary_is_in_place(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # Turns of about 2,000 tokens, 3 kept: after a step the request grows past the trigger
    # again while the span before the kept turns is still small next to the kept part, so the
    # payback gate holds the next step. explain() says why a request over the trigger is not
    # summarized again, not only "made on an earlier turn".
    trigger = 20_000
    t = summarize(anthropic_client, trigger=trigger, keep=3, target_tokens=1_000)
    counter = LocalCounter("claude-sonnet-4-6")
    held = None
    for request in prefixes(turn_run(25, task="Audit etc/app/ (OPS-3317).")):
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
