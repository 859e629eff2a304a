"""summarize(): hypothesis properties, with the real SDK against tidyctx.testing.LocalServer.

Small triggers make the generated conversations (a few hundred tokens) get summarized. The
payback gate is drawn too: off (None), or so tight or loose that it holds some steps back.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx._request import canonical_json
from tidyctx.testing import Fail, Hang, LocalServer
from tidyctx.transforms._summarize import SummaryEvent, SummaryWarning, leading_summary, summarize

PROPS = settings(max_examples=40)
TRIGGERS = st.sampled_from((80, 150, 300))
KEEP = st.integers(1, 3)
PAYBACK = st.sampled_from((None, None, 1, 5, 50))


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(cache=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LocalServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.base_url, api_key="t", max_retries=0) as c:
        yield c


def calls(server: LocalServer) -> int:
    return len(server.summary_calls())


def check_kept(request: dict[str, Any], out: dict[str, Any], keep: int) -> int:
    """The output is the input, or a summary (and ack) then an unchanged suffix of the input
    holding at least ``keep`` assistant turns. Returns how many messages were kept."""
    if out == request:
        return len(request["messages"])
    lead, body, _ = leading_summary(out["messages"])
    assert lead >= 1 and body
    kept = out["messages"][lead:]
    assert canonical_json(kept) == canonical_json(request["messages"][-len(kept) :])
    # The system messages of the summarized part follow the summary, as sent and in order.
    summarized = request["messages"][: len(request["messages"]) - len(kept)]
    systems = [m for m in summarized if m["role"] == "system"]
    assert [m for m in out["messages"][1:lead] if m["role"] == "system"] == systems
    assert all(m["role"] == "system" for m in out["messages"][1:lead][: len(systems)])
    assert sum(m["role"] == "assistant" for m in kept) >= keep
    assert {k: v for k, v in out.items() if k != "messages"} == {
        k: v for k, v in request.items() if k != "messages"
    }
    return len(kept)


@PROPS
@given(
    request=gen.requests(min_turns=3, max_turns=9),
    trigger=TRIGGERS,
    keep=KEEP,
    payback=PAYBACK,
)
def test_valid_pure_idempotent_and_the_last_turns_kept(
    server: LocalServer,
    client: anthropic.Anthropic,
    request: dict[str, Any],
    trigger: int,
    keep: int,
    payback: int | None,
) -> None:
    t = summarize(
        client,
        trigger=trigger,
        keep=keep,
        target_tokens=40,
        max_payback_turns=payback,
    )
    before = copy.deepcopy(request)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SummaryWarning)
        out = t(request)
    assert request == before
    tc.validate(out)  # strict: roles alternate, every tool_use answered right after
    event(("summarized" if out != request else "unchanged") + f", payback {payback}")
    check_kept(request, out, keep)
    made = calls(server)
    again = t(request)
    assert canonical_json(again) == canonical_json(out)  # same bytes, from the store
    assert t(out) == out  # t(t(x)) == t(x)
    assert calls(server) == made


@PROPS
@given(
    request=gen.requests(min_turns=3, max_turns=9),
    keep=KEEP,
    failure=st.sampled_from((Fail(529), Fail(500), Fail(429), Hang(0.5))),
    payback=PAYBACK,
)
def test_nothing_is_dropped_when_the_summarizer_fails(
    server: LocalServer,
    client: anthropic.Anthropic,
    request: dict[str, Any],
    keep: int,
    failure: Fail | Hang,
    payback: int | None,
) -> None:
    server.reset()
    t = summarize(
        client,
        trigger=120,
        keep=keep,
        target_tokens=40,
        timeout=0.2,
        max_payback_turns=payback,
    )
    server.script(failure)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = t(request)
    # Whatever happened, the request goes on whole, and only a SummaryWarning says why.
    assert out == request
    assert [w.category for w in seen] in ([], [SummaryWarning])
    event("call failed" if seen else "no summary due")
    if calls(server):  # the call reached the server and failed: the caller is told
        assert [w.category for w in seen] == [SummaryWarning]
    # (A call that timed out before the server read it, on a busy machine, is told the same
    # way; the server then has no record of it, so it is checked by the two lines above.)
    server.reset()


@PROPS
@given(
    requests=gen.growing_conversations(min_turns=4, max_turns=12),
    keep=KEEP,
    payback=PAYBACK,
)
def test_the_prefix_is_stable_between_summaries(
    server: LocalServer,
    client: anthropic.Anthropic,
    requests: list[dict[str, Any]],
    keep: int,
    payback: int | None,
) -> None:
    # A step is counted by its event, not by calls: a step whose summary call was made before
    # (the same previous summary and span, e.g. a repeated exchange) makes no new call.
    steps: list[SummaryEvent] = []
    t = summarize(
        client,
        trigger=200,
        keep=keep,
        target_tokens=40,
        on_summary=steps.append,
        max_payback_turns=payback,
    )
    previous: dict[str, Any] | None = None
    sent = 0  # messages in the previous request
    made = 0
    for request in requests:
        out = t(request)
        tc.validate(out)
        check_kept(request, out, keep)
        now = len(steps)
        if now > made:
            event(f"a summary step, payback {payback}")
        if previous is not None and now == made:
            # No new summary: last turn's request is a prefix of this one, byte for byte.
            grown = previous["messages"]
            assert canonical_json(out["messages"][: len(grown)]) == canonical_json(grown)
            assert out["messages"][len(grown) :] == request["messages"][sent:]
        previous, made, sent = out, now, len(request["messages"])
