"""The proxy's upstream bodies keep the cached prefix of a growing conversation.

Definition checked: a client sends turn n and then turn n+1 of one conversation (turn n+1's
messages start with turn n's), each serialized as compact JSON with keys in order (what the
Python SDK sends). For each, take the body the proxy sends upstream and remove every
``cache_control`` marker (``cache()`` moves the rolling one to the newest message). Then the
tools, the system prompt and every message of turn n but its last serialize to the same bytes
in turn n+1. The last message is left out because ``order()`` appends the volatile system lines
to the newest user message, and the proxy's bytes are checked to be exactly that compact
serialization (or the client's own bytes), so the comparison is one of the bytes sent.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from strategies import conversations, systems, tools
from tidyctx.proxy import prepare, select_pipeline


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _unmarked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value


def _pipeline(name: str) -> list[Any]:
    store = tc.MemoryStore()
    if name == "tight-trim":  # small budgets, so that most results are cut
        return [tc.order(), tc.trim(max_tokens=150, slack=0.0, store=store), tc.cache()]
    return select_pipeline(name, store)


@pytest.mark.parametrize("pipeline", ["defaults", "cache-only", "tight-trim"])
@settings(max_examples=40)
@given(
    messages=conversations(min_turns=2, max_turns=6),
    tool_defs=tools(min_size=1),
    system=systems(),
    model=st.sampled_from(["claude-sonnet-4-6", "claude-haiku-4-5"]),
)
def test_each_upstream_body_keeps_the_previous_ones_prefix(
    pipeline: str, messages: list[Any], tool_defs: list[Any], system: Any, model: str
) -> None:
    transforms = _pipeline(pipeline)
    ends = [i + 1 for i, m in enumerate(messages) if m["role"] == "user"]
    sent: list[dict[str, Any]] = []
    for end in ends:
        request: dict[str, Any] = {"model": model, "max_tokens": 256, "tools": tool_defs}
        if system is not None:
            request["system"] = system
        request["messages"] = messages[:end]
        raw = _compact(request)
        prepared = prepare(raw, transforms)
        assert prepared.fail_open is None, prepared.fail_open
        body = json.loads(prepared.body)
        assert prepared.body == _compact(body), "the proxy sends compact JSON, keys in order"
        sent.append(_unmarked(body))
    for before, after in itertools.pairwise(sent):
        assert _compact(after.get("tools")) == _compact(before.get("tools"))
        assert _compact(after.get("system")) == _compact(before.get("system"))
        kept = len(before["messages"]) - 1
        for i in range(kept):
            assert _compact(after["messages"][i]) == _compact(before["messages"][i]), (
                f"message {i} changed between turns"
            )


@pytest.mark.parametrize("pipeline", ["defaults", "cache-only"])
def test_a_fixed_time_line_stays_in_the_system_prompt_and_a_changing_one_moves(
    pipeline: str,
) -> None:
    # A benchmark's prompt states a fixed "current time": moved out, it would be sent uncached
    # on every turn. The proxy's order() moves such a line only once it has changed.
    transforms = select_pipeline(pipeline, tc.MemoryStore())
    messages: list[Any] = [{"role": "user", "content": "Book the flight."}]
    systems = []
    for k in range(3):
        system = "You are an airline agent.\nThe current time is 2024-05-15 15:00:00 EST."
        raw = _compact(
            {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": system, "messages": messages}
        )
        systems.append(_unmarked(json.loads(prepare(raw, transforms).body))["system"])
        messages = [
            *messages,
            {"role": "assistant", "content": f"Step {k}."},
            {"role": "user", "content": "Go on."},
        ]
    assert all("2024-05-15 15:00:00" in json.dumps(s) for s in systems)
    assert _compact(systems[0]) == _compact(systems[1]) == _compact(systems[2])
    messages = [{"role": "user", "content": "Another task."}]
    for k in range(3):
        system = f"You are an airline agent.\nThe current time is 2024-05-15 15:00:0{k} EST."
        raw = _compact(
            {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": system, "messages": messages}
        )
        body = json.loads(prepare(raw, transforms).body)
        # Left in place on first sight; moved once it has changed, and on every later turn.
        assert ("15:00:0" in json.dumps(body["system"])) == (k == 0), f"request {k}"
        messages = [
            *messages,
            {"role": "assistant", "content": "Done."},
            {"role": "user", "content": "Next."},
        ]
