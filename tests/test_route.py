"""route(): a model per call, switching inside a conversation only where the rewrite pays."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings

import strategies as gen
import tidyctx as tc
from proxy_helpers import proxy_to
from tidyctx import pricing
from tidyctx.ledger import read_ledger, summarize_ledger
from tidyctx.proxy._pipeline import prepare
from tidyctx.testing import LocalServer
from tidyctx.transforms._route import HINT_KEY, fit

PROPS = settings(max_examples=40)
SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5"
OPUS = "claude-opus-4-8"
EC = {"type": "ephemeral"}


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _conversation(turns: int, *, system_words: int, reply_words: int, tool: str = "Glob"):
    """Requests of one agent conversation, turn by turn, with automatic caching: each call
    after the first answers a ``tool`` call."""
    base: dict[str, Any] = {
        "model": SONNET,
        "max_tokens": 4096,
        "cache_control": EC,
        "system": "You are a careful agent. " + "Follow the runbook step. " * system_words,
        "tools": [
            {
                "name": tool,
                "description": "Look something up.",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            }
        ],
        "messages": [{"role": "user", "content": "Find the config files."}],
    }
    out = [copy.deepcopy(base)]
    messages = list(base["messages"])
    for k in range(1, turns):
        messages = [
            *messages,
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Looking. " + "detail " * reply_words},
                    {"type": "tool_use", "id": f"toolu_{k:04d}", "name": tool, "input": {"q": "x"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{k:04d}", "content": "a.cfg"}
                ],
            },
        ]
        out.append(copy.deepcopy({**base, "messages": messages}))
    return out


def _always(model: str):
    def policy(request: dict[str, Any]) -> str:
        return model

    return policy


# ---------------------------------------------------------------------------- the decision


def test_a_switch_that_costs_more_in_rewrites_than_it_saves_is_not_made() -> None:
    # A 20k-token cached prefix, short replies: moving to Haiku rewrites it for little saving.
    turns = _conversation(6, system_words=4000, reply_words=5)
    t = tc.route()  # the default rules want Haiku after a Glob call
    for request in turns:
        out = t(request)
        decision = t.decide(request)
        assert out["model"] == SONNET
    assert decision.wanted == HAIKU
    assert "stays on" in decision.reason and "would cost" in decision.reason
    assert not decision.switched and decision.saving == 0


def test_a_switch_at_a_conversations_start_is_made() -> None:
    request = _conversation(1, system_words=4000, reply_words=5)[0]
    t = tc.route(_always(HAIKU))
    out = t(request)
    assert out["model"] == HAIKU
    decision = t.decide(request)
    assert "conversation start" in decision.reason
    assert decision.saving > 0


def test_a_switch_that_pays_back_its_rewrite_is_made_and_kept() -> None:
    # A small prefix and long replies: Haiku's cheaper output pays the rewrite once the policy
    # has wanted it for a few calls in a row.
    turns = _conversation(12, system_words=800, reply_words=900)
    t = tc.route(lambda r: HAIKU if len(r["messages"]) > 2 else None)
    models = [t(request)["model"] for request in turns]
    assert models[0] == SONNET
    first = models.index(HAIKU)
    assert first > 1  # not on the first call the policy wanted it: it had to pay first
    assert set(models[first:]) == {HAIKU}
    assert "switch pays" in t.decide(turns[first]).reason
    assert t.decide(turns[-1]).reason.endswith("already on it")


def test_the_conversation_goes_back_to_its_model_when_the_policy_wants_it() -> None:
    turns = _conversation(12, system_words=300, reply_words=2000)
    t = tc.route(lambda r: HAIKU if 2 < len(r["messages"]) < 20 else None)
    models = [t(request)["model"] for request in turns]
    assert HAIKU in models and models[-1] == SONNET
    back = next(k for k in range(1, len(models)) if models[k - 1] == HAIKU and models[k] == SONNET)
    assert "back up" in t.decide(turns[back]).reason and t.decide(turns[back]).switched
    assert t.decide(turns[back]).saving < 0  # the return writes the prefix again


def test_a_policy_that_keeps_changing_its_mind_does_not_move_the_conversation_each_time() -> None:
    # Haiku for five calls, then Sonnet for one, over and over. The first run starts on a
    # short prompt and moves; later runs, on a longer prompt, would not pay the two rewrites.
    turns = _conversation(40, system_words=300, reply_words=2000)
    t = tc.route(lambda r: None if len(r["messages"]) % 12 == 1 else HAIKU)
    models = [t(request)["model"] for request in turns]
    blind = [t.decide(request).wanted for request in turns]
    switches = sum(a != b for a, b in itertools.pairwise(models))
    assert sum(a != b for a, b in itertools.pairwise(blind)) > 10
    assert HAIKU in models and switches <= 2, models


def test_a_step_wanting_a_dearer_model_than_asked_goes_back_to_the_model_asked() -> None:
    turns = _conversation(10, system_words=300, reply_words=2000)
    t = tc.route(lambda r: HAIKU if len(r["messages"]) < 12 else OPUS)
    models = [t(request)["model"] for request in turns]
    assert HAIKU in models and OPUS not in models and models[-1] == SONNET
    assert "back up to the model asked" in t.decide(turns[models.index(SONNET, 1)]).reason


def test_a_dearer_model_mid_conversation_needs_force() -> None:
    turns = _conversation(3, system_words=10, reply_words=5)
    plain = tc.route([tc.Rule(OPUS, keywords=("config",))])
    forced = tc.route([tc.Rule(OPUS, keywords=("config",), force=True)])
    assert plain(turns[-1])["model"] == SONNET
    assert "costs more" in plain.decide(turns[-1]).reason
    assert forced(turns[-1])["model"] == OPUS


def test_the_decision_is_the_same_whatever_was_seen_before() -> None:
    turns = _conversation(10, system_words=10, reply_words=900)
    policy = lambda r: HAIKU if len(r["messages"]) > 2 else None  # noqa: E731
    seen = tc.route(policy)
    for request in turns:
        seen(request)
    fresh = tc.route(policy)
    assert fresh.decide(turns[-1]) == seen.decide(turns[-1])


def test_each_call_is_decided_once_behind_order_and_cache() -> None:
    # cache() moves its rolling breakpoint and order() its dynamic block every call: the
    # earlier calls are still recognised, so the policy runs once per call.
    seen: list[int] = []

    def policy(request: dict[str, Any]) -> str | None:
        seen.append(len(request["messages"]))
        return HAIKU if len(request["messages"]) > 2 else None

    t = tc.route(policy)
    turns = _conversation(8, system_words=300, reply_words=2000)
    models = []
    for k, request in enumerate(turns):
        request["system"] += f"\nCurrent time: 2026-12-07T10:{k:02d}:00Z"
        models.append(tc.pipe(request, tc.order(), tc.cache(), t)["model"])
    assert seen == [len(r["messages"]) for r in turns]
    assert models[0] == SONNET and models[-1] == HAIKU


# ---------------------------------------------------------------------------- model rules


def test_effort_is_dropped_or_lowered_for_the_model_switched_to() -> None:
    request = {
        "model": OPUS,
        "max_tokens": 100,
        "output_config": {"effort": "max"},
        "messages": [{"role": "user", "content": "Title for: a trip"}],
    }
    assert "output_config" not in tc.route(_always(HAIKU))(request)
    assert tc.route(_always(SONNET))(request)["output_config"] == {"effort": "max"}
    xhigh = {**request, "output_config": {"effort": "xhigh", "format": None}}
    assert tc.route(_always(SONNET))(xhigh)["output_config"] == {"effort": "high", "format": None}
    assert tc.route(_always(HAIKU))(xhigh)["output_config"] == {"format": None}


def test_a_request_the_model_cannot_take_stays() -> None:
    big = {
        "model": SONNET,
        "max_tokens": 8000,
        "messages": [{"role": "user", "content": "word " * 240_000}],
    }
    assert "window" in (fit(big, HAIKU) or "")
    assert tc.route(_always(HAIKU))(big)["model"] == SONNET
    adaptive = {
        "model": OPUS,
        "max_tokens": 2000,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert tc.route(_always(HAIKU))(adaptive)["model"] == OPUS
    assert "adaptive" in tc.route(_always(HAIKU)).decide(adaptive).reason
    prefill = {
        "model": OPUS,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{"}],
    }
    assert fit(prefill, SONNET) is not None
    assert fit(prefill, HAIKU) is None


def test_a_conversation_that_outgrows_the_cheaper_model_goes_back() -> None:
    turns = _conversation(2, system_words=10, reply_words=5)
    t = tc.route(_always(HAIKU))
    assert t(turns[0])["model"] == HAIKU
    grown = copy.deepcopy(turns[1])
    grown["messages"][-1]["content"][0]["content"] = "word " * 240_000
    assert t(grown)["model"] == SONNET
    assert "back to the model asked" in t.decide(grown).reason
    assert "window" in t.decide(grown).reason


def test_thinking_blocks_go_to_the_new_model_unchanged() -> None:
    thinking = {"type": "thinking", "thinking": "Plan: list files.", "signature": "c2lnbmVk"}
    request = {
        "model": SONNET,
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            {"role": "user", "content": "List the files."},
            {
                "role": "assistant",
                "content": [
                    thinking,
                    {"type": "tool_use", "id": "toolu_1", "name": "Glob", "input": {}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
        ],
    }
    out = tc.route(_always(HAIKU), margin=0)(request)
    assert _dump(out["messages"]) == _dump(request["messages"])
    tc.validate(out)


def test_the_hint_is_read_and_taken_out_of_metadata() -> None:
    request = {
        "model": SONNET,
        "max_tokens": 100,
        "metadata": {"user_id": "u-1", HINT_KEY: "easy"},
        "tools": [{"name": "bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "Rename the file."}],
    }
    out = tc.route()(request)
    assert out["model"] == HAIKU and out["metadata"] == {"user_id": "u-1"}
    shadow = tc.route(shadow=True)(request)
    assert shadow["model"] == SONNET and shadow["metadata"] == {"user_id": "u-1"}


def test_a_hint_on_one_call_is_that_calls_own() -> None:
    turns = _conversation(4, system_words=10, reply_words=5, tool="bash")
    t = tc.route()
    for request in turns[:-1]:
        t(request)
    hinted = copy.deepcopy(turns[-1])
    hinted["metadata"] = {HINT_KEY: "hard"}
    assert t(hinted)["model"] == OPUS
    assert t(turns[-1])["model"] == SONNET  # the same call without the hint: not remembered
    assert t.decide(hinted).reason.startswith("rule hint 'hard'")


# ---------------------------------------------------------------------------- bad input


def test_an_unknown_model_is_an_error_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown model 'claude-haiku-9'"):
        tc.Rule("claude-haiku-9", side_call=True)
    with pytest.raises(ValueError, match="unknown model"):
        tc.Rules([], default="gpt-5")
    with pytest.raises(ValueError, match="unknown model"):
        tc.Classifier(anthropic.Anthropic(api_key="x"), model="claude-tiny")
    request = {"model": SONNET, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(ValueError, match="unknown model 'gpt-4o'"):
        tc.route(_always("gpt-4o"))(request)


def test_a_rule_that_matches_nothing_is_named() -> None:
    with pytest.raises(ValueError, match="matches nothing"):
        tc.Rule(HAIKU, keywords=())
    with pytest.raises(ValueError, match="matches nothing"):
        tc.Rule(HAIKU, min_tokens=10, max_tokens=5)
    with pytest.raises(ValueError, match="matches nothing"):
        tc.Rule(HAIKU, side_call=True, first_call=True)
    with pytest.raises(ValueError, match="matches nothing"):
        tc.Rules([])
    with pytest.raises(TypeError, match=r"route\(policy=\.\.\.\)"):
        tc.route("haiku")  # type: ignore[arg-type]
    request = {"model": SONNET, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    t = tc.route([tc.Rule(HAIKU, keywords=("translate",))])
    assert t(request) == request
    assert t.decide(request).reason.startswith("no rule matched")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="a model id"):
        tc.Rule(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="margin"):
        tc.route(margin=-1)
    with pytest.raises(TypeError, match="Classifier\\(client\\)"):
        tc.Classifier(object())
    with pytest.raises(TypeError, match="rules\\[1\\] is a str"):
        tc.Rules([tc.Rule(HAIKU, side_call=True), "haiku"])  # type: ignore[list-item]
    request = {"model": SONNET, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(TypeError, match="returned int, not a model id"):
        tc.route(lambda r: 3)(request)  # type: ignore[arg-type,return-value]
    # A model the price table does not know is left as it is, and the decision says why.
    odd = {**request, "model": "my-finetune"}
    assert tc.route()(odd) == odd
    assert "no price" in tc.route().decide(odd).reason
    # A single rule works as a policy, a string pattern as one tool.
    assert tc.Rule(HAIKU, after_tools="Glob").after_tools == ("glob",)  # type: ignore[arg-type]
    assert tc.route(tc.Rule(HAIKU, keywords="hi"))(request)["model"] == HAIKU  # type: ignore[arg-type]


def test_rules_first_match_wins() -> None:
    request = {
        "model": SONNET,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "Please translate this."}],
    }
    t = tc.route([tc.Rule(OPUS, keywords=("translate",)), tc.Rule(HAIKU, keywords=("translate",))])
    assert t.decide(request).wanted == OPUS


# ---------------------------------------------------------------------------- the classifier


def _grade(answer: str):
    def responder(body: dict[str, Any]) -> Any:
        if "grade how hard" in str(body.get("system")):
            return answer
        return "ok"

    return responder


def test_the_classifier_is_called_once_per_step_and_its_cost_counted() -> None:
    with (
        LocalServer(responder=_grade("easy")) as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        classifier = tc.Classifier(client)
        t = tc.route(classifier)
        first = {
            "model": SONNET,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        }
        other = {**first, "messages": [{"role": "user", "content": "And 3 + 3?"}]}
        assert t(first)["model"] == HAIKU
        t(first)
        tc.route(classifier)(first)  # another transform, same classifier: remembered
        assert t(other)["model"] == HAIKU
        calls = [r for r in server.requests if r.body and "grade how hard" in str(r.body)]
        assert len(calls) == 2 == classifier.calls
        decision = t.decide(first)
        usage = calls[0].body and pricing.cost({"input_tokens": 1}, HAIKU)
        assert usage is not None
        assert decision.policy_cost > 0
        assert classifier.spent == pytest.approx(2 * decision.policy_cost, rel=0.5)
        assert "classifier: easy" in decision.reason


def test_a_classifier_given_a_wrapped_client_calls_the_client_underneath() -> None:
    with (
        LocalServer(responder=_grade("easy")) as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as raw,
    ):
        wrapped = tc.wrap(raw, tc.route(shadow=True))
        t = tc.route(tc.Classifier(wrapped))
        request = {"model": SONNET, "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]}
        assert tc.pipe(request, t)["model"] == HAIKU
        assert len(server.requests) == 1


def test_a_failing_classifier_warns_and_keeps_the_model_asked() -> None:
    with (
        LocalServer(responder=_grade("easy")) as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        server.fail_next(500)
        t = tc.route(tc.Classifier(client))
        request = {
            "model": SONNET,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        }
        with pytest.warns(tc.RouteWarning, match="classifier call failed"):
            out = t(request)
        assert out == request
        assert "classifier failed: InternalServerError" in t.decide(request).reason


def test_a_classifier_answer_that_is_no_grade_warns() -> None:
    with (
        LocalServer(responder=_grade("banana")) as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        request = {"model": SONNET, "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]}
        with pytest.warns(tc.RouteWarning, match="not one of"):
            assert tc.route(tc.Classifier(client))(request)["model"] == SONNET


# ---------------------------------------------------------------------------- the ledger


def test_shadow_decisions_reach_the_ledger_and_the_report(tmp_path: Any) -> None:
    path = tmp_path / "usage.jsonl"
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as raw,
    ):
        client = tc.wrap(raw, tc.route(shadow=True), ledger=path)
        client.messages.create(
            model=SONNET,
            max_tokens=200,
            messages=[{"role": "user", "content": "A title for: my trip to Oslo"}],
        )
    sent = server.requests[-1].body
    assert sent is not None and sent["model"] == SONNET
    (row,) = read_ledger(path)
    assert row["route"]["shadow"] is True
    assert row["route"]["model"] == HAIKU and row["route"]["asked"] == SONNET
    assert row["route"]["saving"] > 0
    text = str(summarize_ledger(path))
    assert "1 call in shadow mode: would have saved $" in text
    assert summarize_ledger(path).as_dict()["route"]["shadow_saving"] > 0


def test_classifier_calls_are_rows_of_their_own(tmp_path: Any) -> None:
    path = tmp_path / "usage.jsonl"
    with (
        LocalServer(responder=_grade("easy")) as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as raw,
    ):
        client = tc.wrap(raw, tc.route(tc.Classifier(raw)), ledger=path)
        reply = client.messages.create(
            model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "hi there"}]
        )
    assert reply.model == HAIKU
    rows = read_ledger(path)
    assert [r["kind"] for r in rows] == ["route", "call"]
    assert rows[1]["route"]["policy_cost"] == pytest.approx(rows[0]["cost"])
    summary = summarize_ledger(path)
    assert (summary.total.calls, summary.total.route_calls) == (1, 1)
    assert "+ 1 classifier calls" in str(summary)


def test_a_routed_call_goes_to_the_new_model_and_its_row_says_why(tmp_path: Any) -> None:
    path = tmp_path / "usage.jsonl"
    with LocalServer() as server:

        async def title() -> Any:
            async with anthropic.AsyncAnthropic(
                base_url=server.base_url, api_key="t", max_retries=0
            ) as raw:
                client = tc.wrap(raw, tc.route(), ledger=path)
                return await client.messages.create(
                    model=SONNET,
                    max_tokens=64,
                    output_config={"effort": "low"},
                    messages=[{"role": "user", "content": "A title for: my trip to Oslo"}],
                )

        reply = asyncio.run(title())
    sent = server.requests[-1].body
    assert reply.model == HAIKU and sent is not None and "output_config" not in sent
    (row,) = read_ledger(path)
    assert row["route"]["shadow"] is False and row["route"]["model"] == HAIKU
    assert "conversation start" in row["route"]["reason"]
    assert summarize_ledger(path).routing.saving == pytest.approx(row["route"]["saving"])


def test_explain_says_what_route_decided() -> None:
    request = {"model": SONNET, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
    report = tc.explain(request, tc.route(shadow=True))
    assert report.steps[0].note.startswith("shadow: would send to claude-haiku-4-5")
    assert report.steps[0].first_change is None


def test_the_proxy_writes_the_decision_in_its_row() -> None:
    with (
        LocalServer() as server,
        proxy_to(server.base_url, [tc.route(shadow=True)]) as (
            proxy,
            rows,
        ),
        anthropic.Anthropic(base_url=proxy.base_url, api_key="t", max_retries=0) as client,
    ):
        client.messages.create(
            model=SONNET, max_tokens=64, messages=[{"role": "user", "content": "Title?"}]
        )
    sent = server.requests[-1].body
    assert sent is not None and sent["model"] == SONNET
    (row,) = rows
    assert row["route"]["shadow"] is True and row["route"]["model"] == HAIKU


def test_the_proxy_keeps_the_decision_for_its_row() -> None:
    raw = json.dumps(
        {"model": SONNET, "max_tokens": 64, "messages": [{"role": "user", "content": "Title?"}]}
    ).encode()
    prepared = prepare(raw, [tc.route()])
    assert prepared.route is not None and prepared.route.model == HAIKU
    assert json.loads(prepared.body)["model"] == HAIKU


# ---------------------------------------------------------------------------- properties


@PROPS
@given(gen.requests(with_cache_control=True))
def test_idempotent(request: dict[str, Any]) -> None:
    t = tc.route(_always(HAIKU))
    once = t(request)
    assert _dump(t(once)) == _dump(once)
    d = tc.route()
    assert _dump(d(d(request))) == _dump(d(request))


@PROPS
@given(gen.requests(with_cache_control=True))
def test_pure(request: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(request)
    tc.route(_always(HAIKU))(request)
    tc.route()(request)
    assert _dump(request) == _dump(snapshot)


@PROPS
@given(gen.requests(with_cache_control=True))
def test_output_is_valid(request: dict[str, Any]) -> None:
    tc.validate(tc.route(_always(HAIKU), margin=0)(request))
    tc.validate(tc.route()(request))
    tc.validate(tc.pipe(request, tc.defaults(slice_code=False), tc.route(_always(HAIKU))))


@PROPS
@given(gen.requests(with_cache_control=True))
def test_shadow_mode_leaves_the_request_byte_identical(request: dict[str, Any]) -> None:
    t = tc.route(_always(HAIKU), shadow=True)
    assert _dump(t(request)) == _dump(request)
    assert _dump(tc.pipe(request, tc.route(shadow=True))) == _dump(request)


@PROPS
@given(gen.growing_conversations())
def test_the_cached_prefix_is_kept_while_the_conversation_grows(
    turns: list[dict[str, Any]],
) -> None:
    t = tc.route(lambda r: HAIKU if len(r["messages"]) % 4 == 3 else None)
    outs = [t(request) for request in turns]
    for (before, after), request in zip(itertools.pairwise(outs), turns[1:], strict=True):
        for key in ("tools", "system"):
            assert _dump(before.get(key)) == _dump(after.get(key))
        n = len(before["messages"])
        assert _dump(before["messages"]) == _dump(after["messages"][:n])
        decision = t.decide(request)
        # The model changes between two calls only where the decision says it switched.
        assert (pricing.lookup(before["model"]).model != pricing.lookup(after["model"]).model) == (
            decision.switched
        )


@PROPS
@given(gen.growing_conversations())
def test_a_decision_depends_on_the_request_alone(turns: list[dict[str, Any]]) -> None:
    def policy(request: dict[str, Any]) -> str | None:
        return HAIKU if len(request["messages"]) % 4 == 3 else None

    seen = tc.route(policy, margin=0)
    decisions = [seen.decide(request) for request in turns]
    assert decisions == [tc.route(policy, margin=0).decide(request) for request in turns]
