"""Every transform together, as users call them, on a bundled real trace, through the real SDK.

The pipeline is written two ways: ``order, cache, trim, summarize``, and with ``cache`` last as
in the README. Both must give valid requests the local Messages API accepts and keep the cache
prefix of one turn in the next between summary steps. Only with ``cache`` last is the whole pipe
idempotent: a breakpoint placed before trim shrank a message below the model's minimum
cacheable length is dropped when the pipe runs again (harmless, but not byte-identical).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

import tidyctx as tc
from tidyctx._request import cache_content, canonical_json, iter_blocks
from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter
from tidyctx.traces import load_run

TRACE = Path(__file__).parent.parent / "data" / "traces" / "cc-sessionshare-generaltoolcalls.json"


def _pipeline(client: anthropic.Anthropic, store: tc.Store, design_order: bool) -> list[Any]:
    trim = tc.trim(max_tokens=700, head=0.6, slack=0.5, store=store)
    # A low trigger so that this 53-call run takes summary steps.
    summarize = tc.summarize(client, trigger=12_000, keep=4, store=store)
    code = tc.slice_code(max_tokens=1_000, store=store)
    if design_order:
        return [tc.order(), tc.cache(), code, trim, summarize]
    return [tc.order(), code, trim, summarize, tc.cache()]


def _prefix(request: dict[str, Any], *, last: bool = True) -> list[str]:
    """The cacheable content of each block in prefix order, markers stripped; without the
    last message's blocks when ``last`` is False (order() adds volatile context there)."""
    final = len(request["messages"]) - 1
    return [
        canonical_json(cache_content(ref.block))
        for ref in iter_blocks(request)
        if last or ref.message != final
    ]


@pytest.mark.parametrize("design_order", [True, False], ids=["design-order", "readme-order"])
def test_all_transforms_on_a_real_trace(design_order: bool) -> None:
    run = load_run(TRACE)
    with LocalServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        store = tc.MemoryStore()
        steps = _pipeline(client, store, design_order)
        sent: list[dict[str, Any]] = []
        for turn in run.turns:
            request = {**turn.request, "model": "claude-sonnet-4-6"}
            out = tc.pipe(request, *steps)
            tc.validate(out)
            if not design_order:
                assert tc.pipe(out, *steps) == out, "pipe is not idempotent"
            assert tc.pipe(request, *steps) == out, "a second run gave other bytes"
            sent.append(out)
        summary_calls = server.summary_calls()
        # The last turn goes to the server through the SDK, and is accepted as sent.
        answer = client.messages.create(**{**sent[-1], "max_tokens": 64})
        assert answer.content

    counter = LocalCounter("claude-sonnet-4-6")
    before = sum(
        counter.count_request({**t.request, "model": "claude-sonnet-4-6"}) for t in run.turns
    )
    after = sum(counter.count_request(r) for r in sent)
    assert after < before

    summarized = [i for i, r in enumerate(sent) if "<tidyctx-summary" in str(r["messages"][0])]
    assert summarized, "the trigger was passed but no summary step was taken"
    assert 1 <= len(summary_calls) < len(summarized), "a summary call was not reused"
    # Between summary steps, each request starts with the previous one's content.
    for i in range(1, len(sent)):
        prev, cur = _prefix(sent[i - 1], last=False), _prefix(sent[i])
        if sent[i - 1]["messages"][0] == sent[i]["messages"][0]:
            assert cur[: len(prev)] == prev, f"turn {i} rewrote the cached prefix"
