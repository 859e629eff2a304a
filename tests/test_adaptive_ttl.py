"""cache(ttl="adaptive", pauses=...): the TTL follows the observed gaps between calls, the
choice is readable, and the transform stays pure, idempotent, valid and prefix-stable."""

from __future__ import annotations

import copy
import json
import pickle
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx import cachesim
from tidyctx._request import cache_markers, marker_errors
from tidyctx.transforms._pauses import Rates, choose

PROPS = settings(max_examples=40)
SONNET = Rates(write_5m=3.75e-6, write_1h=6e-6, read=3e-7)


def ttls(request: dict[str, Any]) -> list[str]:
    return [m.get("ttl", "5m") for _, m in cache_markers(request)]


def conversation(turns: int, result_words: int = 300) -> list[dict[str, Any]]:
    """A tool loop with a large system prompt: turn k holds k tool calls and their results."""
    first = {"role": "user", "content": "Audit the repository. " * 40}
    out, messages = [], [first]
    for k in range(turns):
        out.append(
            {
                "model": "claude-sonnet-4-6",
                "max_tokens": 64,
                "system": "Follow the audit policy. " * 700,
                "messages": copy.deepcopy(messages),
            }
        )
        messages += [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{k}", "name": "read", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"t{k}", "content": "x " * result_words}
                ],
            },
        ]
    return out


def run(requests: list[dict[str, Any]], gaps: list[float]) -> tuple[list[dict[str, Any]], Any]:
    pauses = tc.Pauses()
    t = tc.cache(ttl="adaptive", pauses=pauses)
    at, sent = 1_000.0, []
    for k, r in enumerate(requests):
        at += gaps[k - 1] if k else 0.0
        pauses.record(r, at=at)
        sent.append(t(r))
    return sent, pauses


# ---------------------------------------------------------------------------- the choice


def test_an_agent_loop_with_no_pause_gets_exactly_the_5m_breakpoints() -> None:
    requests = conversation(8)
    sent, pauses = run(requests, [12.0] * 7)
    assert sent == [tc.cache()(r) for r in requests]
    decision = pauses.decision(requests[-1])
    assert decision is not None and decision.rolling == "5m"
    assert decision.reason.startswith("5m: no gap between 5 min and 1 h in 7")


def test_without_recorded_times_the_choice_is_5m() -> None:
    requests = conversation(3)
    t = tc.cache(ttl="adaptive", pauses=tc.Pauses())
    assert [t(r) for r in requests] == [tc.cache()(r) for r in requests]


def price(requests: list[dict[str, Any]], gaps: list[float]) -> float:
    """USD of the calls on the cache model, sent ``gaps`` seconds apart."""
    times = [1_000.0 + sum(gaps[:k]) for k in range(len(requests))]
    usages = cachesim.simulate(requests, times)
    return sum(tc.pricing.cost(u, "claude-sonnet-4-6").total for u in usages)


def test_after_a_human_pause_the_prefix_goes_to_1h() -> None:
    requests = conversation(10)
    gaps = [15.0, 15.0, 900.0, 15.0, 15.0, 15.0, 900.0, 15.0, 15.0]
    sent, pauses = run(requests, gaps)
    assert ttls(sent[0]) == ["5m", "5m"]  # nothing seen yet
    assert ttls(sent[-1]) == ["1h", "1h"]
    decision = pauses.decision(requests[-1])
    assert decision is not None and decision.pauses == 2 and decision.gaps == 9
    # The second pause finds the prefix in the cache: cheaper than 5m all along.
    assert price(sent, gaps) < price([tc.cache()(r) for r in requests], gaps)


def test_on_mixed_pauses_adaptive_costs_less_than_either_fixed_ttl() -> None:
    requests = conversation(16)
    gaps = [15.0, 15.0, 900.0, 15.0, 15.0, 900.0, 15.0, 15.0, 7_200.0, 15.0, 15.0, 15.0]
    gaps += [900.0, 15.0, 15.0]
    sent, _ = run(requests, gaps)
    five = price([tc.cache()(r) for r in requests], gaps)
    hour = price([tc.cache(ttl="1h", stable_ttl="1h")(r) for r in requests], gaps)
    assert price(sent, gaps) < min(five, hour)


def test_pauses_over_an_hour_keep_5m() -> None:
    requests = conversation(6)
    sent, pauses = run(requests, [7_200.0] * 5)
    assert all(ttls(r) == ["5m", "5m"] for r in sent)
    decision = pauses.decision(requests[-1])
    assert decision is not None and "5 over 1 h" in decision.reason


def test_the_1h_write_is_skipped_when_the_call_writes_most_of_its_prefix() -> None:
    # One pause in two gaps, but the prefix is all new (nothing cached before): 0.75x more on
    # every token against an even chance of saving 1.15x on them is not worth it.
    decision = choose(
        [15.0, 900.0],
        None,
        stable_tokens=10_000,
        prefix_tokens=12_000,
        previous_tokens=0,
        rates=SONNET,
    )
    assert (decision.stable, decision.rolling) == ("5m", "5m")
    assert "would not pay back on 12,000 tokens" in decision.reason


def test_a_small_write_on_a_large_cached_prefix_goes_to_1h() -> None:
    warm = choose(
        [15.0], None, stable_tokens=10_000, prefix_tokens=40_000, previous_tokens=0, rates=SONNET
    )
    decision = choose(
        [15.0, 900.0, 15.0],
        warm,
        stable_tokens=10_000,
        prefix_tokens=41_000,
        previous_tokens=40_000,
        rates=SONNET,
    )
    assert (decision.stable, decision.rolling) == ("1h", "1h")
    costs = dict(decision.costs)
    assert costs["1h"] < costs["5m"]
    # The stable entry is read, not written, at this call: it keeps its 5m TTL either way.
    assert costs["1h stable"] == costs["5m"]
    assert decision.reason.startswith("1h: 1 of 3 gaps between 5 min and 1 h")


def test_the_decision_is_a_small_json_record() -> None:
    requests = conversation(4)
    _, pauses = run(requests, [15.0, 900.0, 15.0])
    decision = pauses.decision(requests[-1])
    assert decision is not None
    record = json.loads(json.dumps(decision.as_dict()))
    assert set(record) >= {"stable", "rolling", "reason", "gaps", "pauses", "costs"}
    assert set(record["costs"]) == {"5m", "1h stable", "1h"}


def test_describe_and_explain_give_the_reason() -> None:
    requests = conversation(4)
    pauses = tc.Pauses()
    t = tc.cache(ttl="adaptive", pauses=pauses)
    for k, r in enumerate(requests):
        pauses.record(r, at=[0, 15, 915, 930][k])
        t(r)
    assert t.name == "cache(ttl='adaptive', pauses=Pauses())"
    report = tc.explain(requests[-1], t)
    assert "adaptive TTL 1h" in str(report)
    # explain() and describe() read the memory, never write it.
    assert pauses.decision(requests[-1]) == t.decide(requests[-1])


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"needs pauses=tidyctx.Pauses\(\)"):
        tc.cache(ttl="adaptive")
    with pytest.raises(ValueError, match="drop stable_ttl"):
        tc.cache(ttl="adaptive", stable_ttl="1h", pauses=tc.Pauses())
    with pytest.raises(ValueError, match="only with ttl='adaptive'"):
        tc.cache(pauses=tc.Pauses())
    with pytest.raises(TypeError, match=r"takes a tidyctx.Pauses, got SystemLines"):
        tc.cache(ttl="adaptive", pauses=tc.SystemLines())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="or ttl='adaptive'"):
        tc.cache(ttl="30m")
    with pytest.raises(ValueError, match="cannot read a timestamp"):
        tc.Pauses().record({"messages": []}, at="yesterday")
    with pytest.raises(ValueError, match="must be >= 1"):
        tc.Pauses(max_calls=0)


# ---------------------------------------------------------------------------- the memory


def test_pauses_keep_order_bounds_and_pickle() -> None:
    req = {"messages": [{"role": "user", "content": "one"}]}
    other = {"messages": [{"role": "user", "content": "two"}]}
    pauses = tc.Pauses(max_conversations=1, max_calls=3)
    for at in (10.0, 40.0, 20.0, 40.0, 100.0):
        pauses.record(req, at=at)
    assert pauses.gaps(req) == [20.0, 60.0]  # sorted, the repeated time once, the oldest gone
    assert pickle.loads(pickle.dumps(pauses)) == pauses
    pauses.record(other, at="2026-12-07T10:00:00Z")
    assert len(pauses) == 1 and pauses.gaps(req) == []


def test_the_same_calls_give_the_same_state_and_bytes() -> None:
    requests = conversation(6)
    gaps = [15.0, 900.0, 15.0, 15.0, 15.0]
    a, pa = run(requests, gaps)
    b, pb = run(requests, gaps)
    assert a == b and pa == pb


# ---------------------------------------------------------------------------- properties

GAPS = st.lists(st.sampled_from([5.0, 120.0, 400.0, 1_800.0, 4_000.0]), min_size=8, max_size=8)


@PROPS
@given(gen.requests(with_cache_control=True), GAPS)
def test_adaptive_cache_is_pure_idempotent_and_valid(
    request: dict[str, Any], gaps: list[float]
) -> None:
    pauses = tc.Pauses()
    t = tc.cache(ttl="adaptive", pauses=pauses, min_tokens=0)
    at = 0.0
    for g in gaps[:3]:
        at += g
        pauses.record(request, at=at)
        t(request)
    snapshot = copy.deepcopy(request)
    state = pickle.dumps(pauses)
    once = t(request)
    assert request == snapshot
    assert t(once) == once
    # The same request and memory give the same bytes.
    assert tc.cache(ttl="adaptive", pauses=pickle.loads(state), min_tokens=0)(request) == once
    tc.validate(once)
    assert marker_errors(once) == []  # at most 4, and every 1h marker before any 5m one
    assert len(cache_markers(once)) <= 4


@PROPS
@given(gen.growing_conversations(min_turns=2, max_turns=6), GAPS)
def test_adaptive_prefix_up_to_every_breakpoint_survives_the_next_turn(
    requests: list[dict[str, Any]], gaps: list[float]
) -> None:
    pauses = tc.Pauses()
    steps = (tc.order(), tc.cache(ttl="adaptive", pauses=pauses, min_tokens=0))
    sent, at = [], 0.0
    for k, r in enumerate(requests):
        at += gaps[k]
        pauses.record(r, at=at)
        sent.append(tc.pipe(r, *steps))
    for r in sent:
        tc.validate(r)
        ordered = ttls(r)
        assert ordered == sorted(ordered, key=lambda ttl: ttl != "1h")  # 1h before 5m
    layouts = [cachesim.layout(r) for r in sent]
    for a, b in pairwise(layouts):
        if dict(a.seeds).get("images") != dict(b.seeds).get("images"):
            continue  # adding or removing an image invalidates the messages
        for pos, _ in a.breakpoints:
            assert a.keys[pos] in b.keys, a.paths[pos]


@PROPS
@given(gen.growing_conversations(min_turns=2, max_turns=6))
def test_with_short_gaps_adaptive_is_byte_for_byte_the_5m_default(
    requests: list[dict[str, Any]],
) -> None:
    pauses = tc.Pauses()
    adaptive = (tc.order(), tc.cache(ttl="adaptive", pauses=pauses))
    fixed = (tc.order(), tc.cache())
    for k, r in enumerate(requests):
        pauses.record(r, at=30.0 * k)
        assert tc.pipe(r, *adaptive) == tc.pipe(r, *fixed)


def test_a_prior_protects_a_large_prefix_before_the_first_pause() -> None:
    requests = conversation(8, result_words=60)  # each call writes little beside its prefix
    gaps = [15.0] * 5 + [900.0, 15.0]
    plain, _ = run(requests, gaps)
    assert plain == [tc.cache()(r) for r in requests[:6]] + plain[6:]
    pauses = tc.Pauses(prior=0.05)
    t = tc.cache(ttl="adaptive", pauses=pauses)
    at, expecting = 1_000.0, []
    for k, r in enumerate(requests):
        at += gaps[k - 1] if k else 0.0
        pauses.record(r, at=at)
        expecting.append(t(r))
    assert ttls(plain[5]) == ["5m", "5m"]  # no prior: the first pause is paid for
    assert ttls(expecting[5]) == ["1h", "1h"]  # a prior: the prefix was kept through it
    assert price(expecting, gaps) < price(plain, gaps)
    decision = pauses.decision(requests[-1])
    assert decision is not None and "5% expected" in decision.reason
    with pytest.raises(ValueError, match="0 <= prior < 1"):
        tc.Pauses(prior=1.5)


class _KeepsAll(tc.Pauses):
    """Pauses that keeps every call's decision: what the choices are checked against."""

    def remember(self, key: str, decision: Any) -> None:
        with self._lock:
            calls = self._calls.get(key)
            if calls:
                calls[-1][1] = decision


def test_a_long_conversation_holds_only_the_decisions_still_read() -> None:
    # The decision of the latest call is what a ledger reads; the one before it, what the
    # next choice reads. Older ones are dropped, so a conversation's memory is its times,
    # and every choice and byte is what keeping them all gives.
    requests = conversation(30, result_words=20)
    gaps = [15.0, 900.0, 15.0, 4_000.0, 400.0] * 6
    made = {}
    for kind in (tc.Pauses, _KeepsAll):
        pauses = kind()
        t = tc.cache(ttl="adaptive", pauses=pauses)
        at, out = 1_000.0, []
        for k, r in enumerate(requests):
            at += gaps[k - 1] if k else 0.0
            pauses.record(r, at=at)
            out.append((json.dumps(t(r)), pauses.decision(r)))
        made[kind] = out
        held = [d for _, d in pauses._calls[pauses.key_of(requests[-1])] if d is not None]
        assert len(held) == (2 if kind is tc.Pauses else 30)
    assert made[tc.Pauses] == made[_KeepsAll]
