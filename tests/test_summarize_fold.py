"""summarize() reads a growing conversation incrementally and still answers as a fresh run.

A turn resumes what the previous turn left in the memo about the messages (their token
counts, hash chain, cut points, validation) and reads only its new messages. Whatever the
memo holds, the output and every error are those of a fresh transform in an empty memo with
the same store: checked turn by turn over growing conversations, two conversations
interleaved, a memo that evicts all the time, a caller that edits its list in place, and
requests broken in a few places.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx import tokens
from tidyctx._memo import DEFAULT_MAX_BYTES, clear_memo, set_memo_limit
from tidyctx._request import Validity, errors, head_of
from tidyctx.testing import LocalServer
from tidyctx.transforms._summarize import Summarize, SummaryWarning, summarize

PROPS = settings(max_examples=25)
TRIGGERS = st.sampled_from((80, 150, 300))
PAYBACK = st.sampled_from((None, 1, 50))


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(cache=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LocalServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.base_url, api_key="t", max_retries=0) as c:
        yield c


@pytest.fixture(autouse=True)
def _memo_restored() -> Iterator[None]:
    yield
    set_memo_limit(DEFAULT_MAX_BYTES)


Factory = Callable[[tc.MemoryStore], Summarize]


def _factory(client: anthropic.Anthropic, trigger: int, payback: int | None) -> Factory:
    def make(store: tc.MemoryStore) -> Summarize:
        return summarize(
            client,
            trigger=trigger,
            keep=1,
            target_tokens=40,
            max_payback_turns=payback,
            store=store,
        )

    return make


def _copy(store: tc.MemoryStore) -> tc.MemoryStore:
    out = tc.MemoryStore(max_items=None)
    for key, value in store._items.items():
        out.put(key, value)
    return out


def _outcome(t: Summarize, request: Any) -> str:
    """The output's bytes, or the error's type and text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SummaryWarning)
            return json.dumps(t(request), ensure_ascii=False)
    except Exception as err:  # compared with a fresh run's, whatever it is
        return f"{type(err).__name__}: {err}"


class Run:
    """One warm transform over a sequence of requests, with what a fresh run needs to
    answer each: the store as it was before that request."""

    def __init__(self, make: Factory) -> None:
        self.make = make
        self.store = tc.MemoryStore(max_items=None)
        self.t = make(self.store)
        self.seen: list[tuple[Any, tc.MemoryStore, str]] = []

    def __call__(self, request: Any, limit: int | None = None) -> str:
        before = _copy(self.store)
        if limit is not None:
            set_memo_limit(limit)
        out = _outcome(self.t, request)
        self.seen.append((copy.deepcopy(request), before, out))
        return out

    def check(self) -> None:
        """Each outcome is a fresh transform's, in an empty memo, on the same store."""
        set_memo_limit(DEFAULT_MAX_BYTES)
        for k, (request, store, out) in enumerate(self.seen):
            clear_memo()
            tokens.clear_memo()
            assert _outcome(self.make(store), request) == out, f"call {k} differs from a fresh run"


@PROPS
@given(
    requests=gen.growing_conversations(min_turns=3, max_turns=10), trigger=TRIGGERS, payback=PAYBACK
)
def test_a_warm_summarize_gives_the_bytes_of_a_fresh_one(
    client: anthropic.Anthropic,
    requests: list[dict[str, Any]],
    trigger: int,
    payback: int | None,
) -> None:
    run = Run(_factory(client, trigger, payback))
    outs = [run(r) for r in requests]
    event("summarized" if any("tidyctx-summary" in o for o in outs) else "unchanged")
    run.check()


@settings(max_examples=15)
@given(
    first=gen.growing_conversations(min_turns=3, max_turns=8),
    second=gen.growing_conversations(min_turns=3, max_turns=8),
)
def test_interleaved_conversations_are_summarized_as_each_alone(
    client: anthropic.Anthropic, first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    run = Run(_factory(client, 150, None))
    order = [r for pair in zip(first, second, strict=False) for r in pair]
    for request in order + first[len(second) :] + second[len(first) :]:
        run(request)
    run.check()


@settings(max_examples=15)
@given(
    requests=gen.growing_conversations(min_turns=3, max_turns=8),
    limit=st.sampled_from((0, 2_000, 20_000)),
)
def test_a_memo_that_evicts_changes_no_summary(
    client: anthropic.Anthropic, requests: list[dict[str, Any]], limit: int
) -> None:
    run = Run(_factory(client, 150, None))
    for request in requests:
        run(request, limit=limit)
    run.check()


def _edits(request: dict[str, Any]) -> list[Callable[[], None]]:
    """In-place edits of an earlier message that == alone would not see, and plain ones."""
    messages = request["messages"]
    out: list[Callable[[], None]] = []
    for message in messages[:-1]:
        content = message["content"]
        if isinstance(content, str):
            out.append(lambda m=message: m.update(content=m["content"] + " (edited)"))
            continue
        for block in content:
            if block.get("type") == "tool_use":
                args = block["input"]
                out.append(lambda a=args: a.update(n=1))
                out.append(lambda a=args: a.update(n=True))  # 1 == True, not the same JSON
                out.append(lambda a=args: a.update(n=1.0))
            if block.get("type") == "text":
                # The same keys in another order: equal dicts, other bytes.
                out.append(lambda b=block: [b.update({k: b.pop(k)}) for k in list(b)[:1]])
            if block.get("type") == "tool_result":
                out.append(lambda b=block: b.update(is_error=True))
    out.append(lambda: messages.insert(0, copy.deepcopy(messages[0])))  # two users in a row
    out.append(lambda: messages[0].update(role="assistant"))
    return out


@PROPS
@given(requests=gen.growing_conversations(min_turns=3, max_turns=8), data=st.data())
def test_a_history_edited_in_place_is_read_again(
    client: anthropic.Anthropic, requests: list[dict[str, Any]], data: st.DataObject
) -> None:
    run = Run(_factory(client, 150, None))
    for request in requests[:-1]:
        run(request)
    request = requests[-1]
    run(request)
    edits = _edits(request)
    for k in data.draw(st.lists(st.integers(0, len(edits) - 1), min_size=1, max_size=3)):
        edits[k]()
        run(request)  # the same list, edited since the call before
    run.check()


@st.composite
def _broken_turns(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A growing conversation, then its last request broken in a few places."""
    requests = draw(gen.growing_conversations(min_turns=2, max_turns=6))
    broken = copy.deepcopy(requests[-1])
    for _ in range(draw(st.integers(1, 3))):
        gen._mutate(draw, broken)
    return requests, broken


@PROPS
@given(turns=_broken_turns(), trigger=st.sampled_from((80, 150)))
def test_a_broken_request_after_warm_turns_raises_what_a_fresh_run_raises(
    client: anthropic.Anthropic,
    turns: tuple[list[dict[str, Any]], dict[str, Any]],
    trigger: int,
) -> None:
    requests, broken = turns
    run = Run(_factory(client, trigger, None))
    for request in requests:
        run(request)
    out = run(broken)
    event("raised" if out.startswith("ValidationError") else "passed")
    run.check()


@settings(max_examples=200)
@given(request=gen.broken_requests())
def test_validity_by_message_passes_only_what_validate_passes(request: dict[str, Any]) -> None:
    messages = request.get("messages")
    if type(messages) is not list:
        return
    head = head_of(request)
    validity = Validity(head.tool_names)
    for message in messages:
        validity.add(message)
    found = errors(request, strict=False)
    event("valid" if not found else "invalid")
    if validity.passes(head):
        assert found == []


@settings(max_examples=100)
@given(request=gen.requests(max_turns=6, with_cache_control=True))
def test_validity_by_message_passes_valid_requests(request: dict[str, Any]) -> None:
    head = head_of(request)
    validity = Validity(head.tool_names)
    for message in request["messages"]:
        validity.add(message)
    assert errors(request, strict=False) == []
    assert validity.passes(head)


def test_what_only_the_last_message_may_be_is_checked_again_when_it_is_no_longer_last(
    client: anthropic.Anthropic,
) -> None:
    long = "Please look at the parser and the config loader again. " * 30
    call = {"type": "tool_use", "id": "t1", "name": "run", "input": {"cmd": "ls"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "a.py"}
    run = Run(_factory(client, 80, None))
    messages: list[dict[str, Any]] = [{"role": "user", "content": long}]
    request = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": messages}
    messages.append({"role": "assistant", "content": ""})  # prefill: allowed only at the end
    assert not run(request).startswith("ValidationError")
    messages.append({"role": "user", "content": long})
    assert "is empty" in run(request)
    messages[1:] = [{"role": "assistant", "content": [call]}]  # a call waiting for its result
    assert "has no tool_result" in run(request)
    messages.append({"role": "user", "content": [result]})
    assert not run(request).startswith("ValidationError")
    messages.append({"role": "assistant", "content": [{**call, "id": "t1"}]})  # the id again
    messages.append({"role": "user", "content": [result]})
    assert "duplicate tool_use id" in run(request)
    run.check()


COUNTERS = {
    "none": None,
    "modelless": tokens.LocalCounter(),  # counts spans at another factor than the request
    "calibrated": tokens.LocalCounter("claude-sonnet-4-5", calibration=1.0),
}


@PROPS
@given(
    requests=gen.growing_conversations(min_turns=3, max_turns=9),
    model=st.sampled_from((None, "claude-opus-4-7", "claude-sonnet-4-5", "claude-haiku-4-5")),
    request_model=st.sampled_from(("claude-opus-4-7", "claude-sonnet-4-5", "claude-opus-4-6")),
    counter=st.sampled_from(sorted(COUNTERS)),
    payback=PAYBACK,
)
def test_the_folded_plan_is_the_plan_of_a_whole_reading(
    client: anthropic.Anthropic,
    requests: list[dict[str, Any]],
    model: str | None,
    request_model: str,
    counter: str,
    payback: int | None,
) -> None:
    t = summarize(
        client,
        trigger=100,
        keep=1,
        target_tokens=40,
        model=model,
        counter=COUNTERS[counter],
        max_payback_turns=payback,
    )
    for request in requests:
        request = {**request, "model": request_model}
        folded = t._plan(request)
        assert folded == t._plan_anew(request, request["messages"])
        event("fires" if folded.fire is not None else "no step")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SummaryWarning)
            t(request)  # the steps the plans lead to, so that later plans find stored cuts


def _marked(value: Any) -> list[dict[str, Any]]:
    """Every dict in ``value`` that carries a cache_control marker."""
    out: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "cache_control" in item:
                out.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


@settings(max_examples=100)
@given(
    request=gen.requests(max_turns=5, with_cache_control=True),
    ttls=st.lists(st.sampled_from((None, "5m", "1h")), min_size=4, max_size=4),
    top=st.sampled_from((None, "5m", "1h")),
)
def test_validity_by_message_counts_and_orders_markers_as_validate(
    request: dict[str, Any], ttls: list[str | None], top: str | None
) -> None:
    for block, ttl in zip(_marked(request), ttls, strict=False):
        block["cache_control"] = {"type": "ephemeral"} | ({"ttl": ttl} if ttl else {})
    if top is not None:
        request["cache_control"] = {"type": "ephemeral", "ttl": top}
    head = head_of(request)
    validity = Validity(head.tool_names)
    for message in request["messages"]:
        validity.add(message)
    found = errors(request, strict=False)
    event("valid" if not found else found[0].problem[:30])
    assert validity.passes(head) == (found == [])
