"""order(seen=SystemLines()): a volatile-looking system line moves only once it has changed
within the conversation; the memory is explicit, deterministic and picklable."""

from __future__ import annotations

import json
import pickle
import threading
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import with_system_line
from tidyctx import cachesim
from tidyctx.transforms._order import conversation_key, is_dynamic_block

PROPS = settings(max_examples=60)
FIXED = "The current time is 2024-05-15 15:00:00 EST."


def _turn(
    k: int, clock: str = FIXED, task: str = "Change my flight.", agent: str = "an airline agent"
) -> dict[str, Any]:
    """Turn ``k`` of one conversation: a fixed task, ``k`` exchanges, a system with ``clock``."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    for i in range(k):
        messages += [
            {"role": "assistant", "content": f"Which reservation, {i}?"},
            {"role": "user", "content": f"Reservation {i}."},
        ]
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": f"You are {agent}.\n" + clock + "\nFollow the policy.",
        "messages": messages,
    }


def _moved(out: dict[str, Any]) -> bool:
    """Whether order() moved lines to the latest user message (system messages may follow)."""
    last = next(m for m in reversed(out["messages"]) if m["role"] == "user")["content"]
    return isinstance(last, list) and any(is_dynamic_block(b) for b in last)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_a_line_stays_until_it_changes_then_moves_for_good() -> None:
    t = tc.order(seen=tc.SystemLines())
    assert _dump(t(_turn(0))) == _dump(_turn(0))  # first sight: left as sent
    assert _dump(t(_turn(1))) == _dump(_turn(1))  # the same value: still left
    later = "The current time is 2024-05-15 15:07:00 EST."
    out = t(_turn(2, later))
    assert _moved(out) and out["system"] == "You are an airline agent.\nFollow the policy."
    assert later in out["messages"][-1]["content"][-1]["text"]
    # Once seen changing, it moves on every later turn, even back at its first value.
    assert _moved(t(_turn(3, FIXED)))
    assert _moved(t(_turn(4, "The current time is 2024-05-15 15:09:00 EST.")))


def test_without_a_memory_every_volatile_looking_line_moves() -> None:
    out = tc.order()(_turn(0))
    assert _moved(out) and FIXED not in out["system"]


def test_conversations_are_kept_apart() -> None:
    seen = tc.SystemLines()
    t = tc.order(seen=seen)
    t(_turn(0, task="First task."))
    # Another conversation (another first message): first sight there too.
    assert not _moved(t(_turn(0, "The current time is 2030-01-01 09:00:00 EST.", "Other.")))
    assert len(seen) == 2
    assert not _moved(t(_turn(1, task="First task.")))


def test_a_caller_key_names_the_conversation() -> None:
    seen = tc.SystemLines(key=_session)
    t = tc.order(seen=seen)
    t(_turn(0, task="A."))
    # A different first message, the same session: the change is seen.
    assert _moved(t(_turn(1, "The current time is 2024-05-15 15:07:00 EST.", "B.")))
    assert pickle.loads(pickle.dumps(seen)) == seen


def _session(request: Any) -> str:
    return "session-1"


def test_conversation_key_ignores_what_order_and_cache_change() -> None:
    request = {
        "tools": [
            {"name": "b", "input_schema": {"type": "object"}},
            {"input_schema": {"type": "object"}, "name": "a"},
        ],
        "system": "Now: 2026-11-25T14:03:22Z",
        "messages": [{"role": "user", "content": "Go."}],
    }
    out = tc.pipe(request, tc.order(), tc.cache())
    assert _moved(out)
    assert conversation_key(out) == conversation_key(request)
    other = {**request, "messages": [{"role": "user", "content": "Stop."}]}
    assert conversation_key(other) != conversation_key(request)


def test_same_requests_same_state_same_bytes_and_pickling_keeps_it() -> None:
    clocks = [FIXED, FIXED, "The current time is 2024-05-15 15:07:00 EST.", FIXED]
    turns = [_turn(k, c) for k, c in enumerate(clocks)]
    a, b = tc.SystemLines(), tc.SystemLines()
    outs_a = [_dump(tc.order(seen=a)(r)) for r in turns]
    outs_b = []
    for k, r in enumerate(turns):
        if k == 2:
            b = pickle.loads(pickle.dumps(b))  # a proxy restarts with its saved memory
        outs_b.append(_dump(tc.order(seen=b)(r)))
    assert outs_a == outs_b
    assert a == b
    assert a != tc.SystemLines()


def test_describe_and_explain_leave_the_memory_alone() -> None:
    seen = tc.SystemLines()
    t = tc.order(seen=seen)
    request = _turn(0)
    out = t(request)
    before = pickle.loads(pickle.dumps(seen))
    assert t.describe(request, out) == (
        "kept 1 volatile-looking system line in place (unchanged in this conversation so far)"
    )
    assert seen == before
    # A describe of a request with the changed line reports the move, and records nothing.
    changed = _turn(1, "The current time is 2024-05-15 15:07:00 EST.")
    assert t.describe(changed, changed).startswith("moved 1 volatile system line (timestamp)")
    assert seen == before
    assert not _moved(t(_turn(1)))
    assert "kept 1 volatile-looking system line" in str(tc.explain(request, t))
    assert t.name == "order(seen=SystemLines())"


def test_a_clock_that_ticked_in_one_conversation_moves_from_the_start_of_the_next() -> None:
    seen = tc.SystemLines()
    t = tc.order(seen=seen)
    later = "The current time is 2024-05-15 15:07:00 EST."
    t(_turn(0, task="A."))
    assert _moved(t(_turn(1, later, task="A.")))
    # The same agent's prompt in a new conversation: its clock is known to tick.
    assert _moved(t(_turn(0, "The current time is 2024-05-16 08:00:00 EST.", task="B.")))
    # Another agent's prompt has its own lessons to learn.
    assert not _moved(t(_turn(0, later, task="C.", agent="a hotel agent")))


def test_a_line_fixed_within_each_conversation_is_never_taught() -> None:
    t = tc.order(seen=tc.SystemLines())
    for day in range(1, 6):
        clock = f"Today's date is 2026-01-0{day}."
        assert not any(_moved(t(_turn(k, clock, task=f"Day {day}."))) for k in range(3))


def test_the_memory_forgets_the_conversation_used_longest_ago() -> None:
    seen = tc.SystemLines(max_conversations=2)
    t = tc.order(seen=seen)
    for task in ("A.", "B.", "A.", "C."):
        t(_turn(0, task=task, agent=f"agent {task}"))
    assert len(seen) == 2
    assert repr(seen) == "SystemLines(max_conversations=2)"
    # A was used after B: remembered, its changed clock moves. B was forgotten: first sight.
    later = "The current time is 2024-05-15 15:07:00 EST."
    assert _moved(t(_turn(1, later, "A.", agent="agent A.")))
    assert not _moved(t(_turn(1, later, "B.", agent="agent B.")))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="SystemLines"):
        tc.order(seen={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_conversations=0"):
        tc.SystemLines(max_conversations=0)
    with pytest.raises(TypeError, match="must return a str"):
        tc.order(seen=tc.SystemLines(key=lambda r: 7))(_turn(0))  # type: ignore[arg-type,return-value]


def test_threads_sharing_one_memory_see_their_own_conversations() -> None:
    seen = tc.SystemLines()
    t = tc.order(seen=seen)
    later = "The current time is 2024-05-15 15:07:00 EST."
    results: dict[str, list[bool]] = {}

    def talk(task: str) -> None:
        results[task] = [
            _moved(t(_turn(k, FIXED if k < 2 else later, task, agent=task))) for k in range(4)
        ]

    threads = [threading.Thread(target=talk, args=(f"Task {i}.",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {f"Task {i}.": [False, False, True, True] for i in range(4)}


# ---------------------------------------------------------------------------- properties


@PROPS
@given(gen.growing_conversations(min_turns=3, max_turns=6), st.booleans())
def test_with_a_memory_the_prefix_is_stable_once_the_line_has_changed(
    turns: list[dict[str, Any]], ticking: bool
) -> None:
    """A clock that ticks every turn moves from the second request on, and from there each
    turn reads what the last one cached; a clock that never ticks stays in the system and
    the prefix is stable from the first request."""
    seen = tc.SystemLines()
    steps = (tc.order(seen=seen), tc.cache(min_tokens=0))
    requests = [
        with_system_line(r, f"Now: 2026-11-25T14:{k if ticking else 0:02d}:00Z")
        for k, r in enumerate(turns)
    ]
    sent = []
    for request in requests:
        snapshot = _dump(request)
        out = tc.pipe(request, *steps)
        assert _dump(request) == snapshot
        tc.validate(out)
        sent.append(out)
    assert [_moved(s) for s in sent] == [ticking and k > 0 for k in range(len(sent))]
    model = cachesim.CacheModel(min_cacheable=0)
    calls = [model.call(r, ts=30.0 * k) for k, r in enumerate(sent)]
    start = 2 if ticking else 1
    for prev, cur in pairwise(calls[start - 1 :]):
        if dict(prev.layout.seeds).get("images") != dict(cur.layout.seeds).get("images"):
            continue  # adding an image invalidates the messages (the docs)
        assert cur.miss is None, cur.miss


@PROPS
@given(gen.requests(with_cache_control=True), st.booleans())
def test_with_a_memory_order_is_idempotent_pure_and_valid(
    request: dict[str, Any], tick: bool
) -> None:
    seen = tc.SystemLines()
    t = tc.order(seen=seen)
    t(with_system_line(request, "Now: 2026-11-25T14:00:00Z"))
    request = with_system_line(request, f"Now: 2026-11-25T14:0{int(tick)}:00Z")
    snapshot = _dump(request)
    once = t(request)
    assert _dump(request) == snapshot
    tc.validate(once)
    assert _dump(t(once)) == _dump(once)
    assert _moved(once) == tick
