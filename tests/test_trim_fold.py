"""trim resumes from the state of the turn before and gives, byte for byte, what a fresh run
gives: over sessions whose results repeat (deduplication, repeat notes), come back in another
order than their calls, or reuse a call id; interleaved; with the memo evicting; with a caller
that edits its list, or an output, in place; and its markers always name held texts, even in
a store that evicts between turns.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from tidyctx import tokens
from tidyctx._markers import store_ids
from tidyctx._memo import DEFAULT_MAX_BYTES, clear_memo, memo_stats, set_memo_limit
from tidyctx.store import MemoryStore

Request = dict[str, Any]

_LINES = [f"tests/test_part_{k}.py::test_case_{k} PASSED   [{k * 3:>3}%]" for k in range(40)]
_POOL = [
    "\n".join(_LINES[:30]),  # long enough to be deduplicated and cut
    "\n".join(_LINES[10:40]),  # repeats most lines of the first
    json.dumps({"rows": [{"id": k, "status": "ok", "name": f"row {k}"} for k in range(60)]}),
    "short answer",
    "\n".join(f"src/mod_{k}.py:{k}: def handler_{k}(request):" for k in range(80)),
]

CONFIGS: dict[str, dict[str, Any]] = {
    "recommended": {"max_tokens": 700, "head": 0.6, "slack": 0.5},
    "tight": {"max_tokens": 60},
    "inputs": {"max_tokens": 120, "max_input_tokens": 40, "dedupe": False},
    "plain": {"compact": False, "smart": False},
    "projected": {"project": {"query": ["rows[*].id"]}, "max_tokens": {"*": 200, "grep": 80}},
}


@st.composite
def sessions(draw: st.DrawFn) -> list[Request]:
    """Requests of one tool loop, one per turn, each a prefix of the next: results drawn from
    a small pool (so they repeat), sometimes sent in another order than their calls, as a
    string or a text block, sometimes an error; a call id now and then used again."""
    messages: list[Any] = [{"role": "user", "content": "Fix the failing tests."}]
    out: list[Request] = []
    used: list[str] = []
    for turn in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 3))
        calls = []
        for k in range(n):
            call_id = f"toolu_{turn}_{k}"
            if used and draw(st.integers(0, 24)) == 0:
                call_id = draw(st.sampled_from(used))  # an id used before
            used.append(call_id)
            name = draw(st.sampled_from(["run_tests", "grep", "query"]))
            args = {"arg": draw(st.sampled_from(["a", "b", "a" * 300, "src\n" * 80]))}
            calls.append({"type": "tool_use", "id": call_id, "name": name, "input": args})
        said = {"type": "text", "text": draw(st.sampled_from(["Run them.", "Look at handler_3."]))}
        messages.append({"role": "assistant", "content": [said, *calls]})
        results = []
        for call in calls:
            text = draw(st.sampled_from(_POOL))
            content: Any = text if draw(st.booleans()) else [{"type": "text", "text": text}]
            result = {"type": "tool_result", "tool_use_id": call["id"], "content": content}
            if draw(st.integers(0, 5)) == 0:
                result["is_error"] = True
            results.append(result)
        if len(results) > 1 and draw(st.integers(0, 3)) == 0:
            results = draw(st.permutations(results))
        messages.append({"role": "user", "content": results})
        out.append({"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": messages})
        messages = copy.deepcopy(messages)
    return [copy.deepcopy(r) for r in out]


def _bytes(request: Any) -> bytes:
    return json.dumps(request, ensure_ascii=False).encode("utf-8")


def fresh(request: Request, config: str) -> bytes:
    """What a new trim gives in a fresh process (every memo emptied, a new store), made from
    the whole request at once, not folded message by message; checked to be what a fresh
    fold gives too."""
    clear_memo()
    tokens.clear_memo()
    whole = _bytes(tc.trim(**CONFIGS[config])._whole(copy.deepcopy(request)))
    clear_memo()
    assert _bytes(tc.trim(**CONFIGS[config])(copy.deepcopy(request))) == whole
    return whole


@pytest.fixture(autouse=True)
def _memo_restored() -> Iterator[None]:
    yield
    set_memo_limit(DEFAULT_MAX_BYTES)


@settings(max_examples=40)
@given(sessions(), st.sampled_from(sorted(CONFIGS)))
def test_a_trim_that_resumes_each_turn_gives_the_bytes_of_a_fresh_one(
    session: list[Request], config: str
) -> None:
    trim = tc.trim(**CONFIGS[config])
    got = [_bytes(trim(r)) for r in session]
    for k, (request, out) in enumerate(zip(session, got, strict=True)):
        assert out == fresh(request, config), f"turn {k}"


@settings(max_examples=20)
@given(sessions(), sessions())
def test_interleaved_sessions_resume_each_its_own_state(
    first: list[Request], second: list[Request]
) -> None:
    trim = tc.trim(**CONFIGS["recommended"])
    order = [r for pair in zip(first, second, strict=False) for r in pair]
    order += first[len(second) :] + second[len(first) :]
    for request in order:
        assert _bytes(trim(request)) == fresh(request, "recommended")


@settings(max_examples=20)
@given(sessions(), st.sampled_from([0, 2_000, 20_000]))
def test_a_memo_that_evicts_changes_no_output_of_trim(session: list[Request], limit: int) -> None:
    trim = tc.trim(**CONFIGS["tight"])
    for request in session:
        set_memo_limit(limit)
        out = _bytes(trim(request))
        assert out == fresh(request, "tight")


@settings(max_examples=20)
@given(sessions(), st.data())
def test_an_old_message_edited_in_place_gives_a_fresh_output(
    session: list[Request], data: st.DataObject
) -> None:
    request = session[-1]
    trim = tc.trim(**CONFIGS["tight"])
    trim(request)
    messages = request["messages"]
    i = data.draw(st.integers(1, len(messages) - 1))
    block = messages[i]["content"][-1]
    edit = data.draw(st.sampled_from(["text", "marker", "input", "error"]))
    if block["type"] == "tool_use" and edit == "input":
        block["input"]["arg"] = "changed"
    elif block["type"] == "tool_result" and edit == "text":
        content = block["content"]
        block["content"] = (content if isinstance(content, str) else content[0]["text"]) + "!"
    elif edit == "error":
        block["is_error"] = True
    else:
        block["cache_control"] = {"type": "ephemeral"}
    assert _bytes(trim(request)) == fresh(request, "tight")


def test_an_output_edited_in_place_leaves_the_next_turn_as_a_fresh_one() -> None:
    results = [{"type": "text", "text": _POOL[0]}]
    messages: list[Any] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tc_use("t1")]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": results}],
        },
    ]
    trim = tc.trim(**CONFIGS["tight"])
    out = trim({"model": "claude-sonnet-4-6", "max_tokens": 9, "messages": messages})
    # The caller writes into the output it got, cut blocks included.
    cut = out["messages"][2]["content"][0]
    assert cut["content"] != results
    cut["content"][0]["text"] = "overwritten"
    cut["cache_control"] = {"type": "ephemeral"}
    grown = [*copy.deepcopy(messages), {"role": "assistant", "content": "done"}]
    request = {"model": "claude-sonnet-4-6", "max_tokens": 9, "messages": grown}
    assert _bytes(trim(request)) == fresh(request, "tight")


def test_a_forked_history_edited_in_place_by_one_caller_leaves_the_other_fresh() -> None:
    base = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tc_use("t1")]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": _POOL[4],
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    trim = tc.trim(**CONFIGS["tight"])
    mine = copy.deepcopy(base)
    trim({"model": "claude-sonnet-4-6", "max_tokens": 9, "messages": mine})
    # The first caller moves its marker in place (as clients move their breakpoint).
    mine[2]["content"][0]["cache_control"]["ttl"] = "1h"
    other = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 9,
        "messages": [*copy.deepcopy(base), {"role": "assistant", "content": "done"}],
    }
    assert _bytes(trim(other)) == fresh(other, "tight")


def tc_use(call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "grep", "input": {"arg": "handler"}}


@pytest.mark.filterwarnings("ignore::tidyctx.store.StoreWarning")  # a store this small loses texts
@settings(max_examples=20)
@given(sessions(), st.integers(1, 6))
def test_every_marker_names_a_held_text_in_a_store_that_evicts(
    session: list[Request], max_items: int
) -> None:
    store = MemoryStore(max_items=max_items)
    trim = tc.trim(**CONFIGS["tight"], store=store)
    other = MemoryStore(max_items=max_items)
    for request in session:
        out = trim(request)
        for message in out["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block.get("type") != "tool_result" or isinstance(block["content"], str):
                    continue
                for inner in block["content"]:
                    for key in store_ids(inner.get("text", "")):
                        assert store.get(key) is not None, key
        # Another conversation fills the store between turns: evictions the next turn sees.
        for k in range(max_items):
            other.put(f"tc_{k:016x}", "x")
            store.put(f"tc_{k + 99:016x}", "filler")


class _CountingStore(MemoryStore):
    """A MemoryStore that counts the entries it is asked about."""

    asked = 0

    def touch(self, key: str) -> bool:
        self.asked += 1
        return super().touch(key)


class _BlindStore(_CountingStore):
    """As a store that cannot say whether it lost an entry (one that expires them)."""

    generation = None  # type: ignore[assignment]


def _results_conversation(intro: str, texts: list[str]) -> list[Request]:
    """The requests of a conversation whose turns each read one long result."""
    messages: list[Any] = [{"role": "user", "content": intro}]
    out = []
    for k, text in enumerate(texts):
        messages = [
            *messages,
            {"role": "assistant", "content": [tc_use(f"t{k}")]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{k}", "content": text}],
            },
        ]
        out.append(
            {"model": "claude-sonnet-4-6", "max_tokens": 9, "messages": copy.deepcopy(messages)}
        )
    return out


def _long_results(turns: int) -> list[Request]:
    texts = [
        "\n".join(f"def handler_{k}_{n}(request): return {n * k}" for n in range(200))
        for k in range(turns)
    ]
    return _results_conversation("Read every module.", texts)


def test_a_turn_asks_a_store_that_evicted_nothing_about_its_new_blocks_only() -> None:
    session = _long_results(12)
    asked = {}
    for tells in (True, False):
        store = _CountingStore() if tells else _BlindStore()
        trim = tc.trim(max_tokens=60, store=store)
        for request in session[:-1]:
            trim(request)
        store.asked = 0
        out = trim(session[-1])
        named = {key for m in out["messages"] for key in store_ids(json.dumps(m["content"]))}
        assert len(named) >= 12 and all(store.get(key) is not None for key in named)
        asked[tells] = store.asked
    # The markers of the new result and of the one before it: the last message is read again
    # on the next call (a client moves its own breakpoint off it).
    assert asked[True] <= 4
    assert asked[False] >= 12  # every marker, every turn


def test_a_client_that_moves_its_breakpoint_each_turn_is_resumed_and_fresh() -> None:
    session = _long_results(10)
    for request in session:  # the client's own breakpoint on its latest message only
        request["messages"][-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    store = _CountingStore()
    trim = tc.trim(**CONFIGS["tight"], store=store)
    got = []
    for request in session:
        store.asked = 0
        got.append(_bytes(trim(request)))
    assert store.asked <= 4  # the last call renewed the markers of its last two results only
    for request, out in zip(session, got, strict=True):
        assert out == fresh(request, "tight")


def _conversation(n: int, turns: int) -> list[Request]:
    """Conversation ``n``: long results of its own (no text shared with another)."""
    texts = [
        "\n".join(f"def handler_{n}_{k}_{i}(request): return {i * k}" for i in range(150))
        for k in range(turns)
    ]
    return _results_conversation(f"Conversation {n}: read every module.", texts)


def test_the_cuts_of_ended_conversations_are_held_within_the_memo_bound() -> None:
    # The cut results (and the originals their keys hold) are counted in the memo's bytes, so
    # a long-running proxy holds no more of them than --memo-mb allows however many
    # conversations it has seen.
    limit = 200_000
    clear_memo()
    set_memo_limit(limit)
    trim = tc.trim(**CONFIGS["tight"])
    seen = []
    for n in range(40):
        for request in _conversation(n, 3):
            trim(request)
        stats = memo_stats()
        assert stats.bytes <= limit
        seen.append(stats.kinds.get("trim-result", (0, 0)))
    held, size = seen[-1]
    assert held >= 1 and size >= held * 150 * 30  # each counts the original text it keys on
    assert memo_stats().evictions > 0


def test_a_conversation_resumed_after_its_cuts_were_evicted_gets_the_same_bytes() -> None:
    session = _conversation(0, 6)
    trim = tc.trim(**CONFIGS["tight"])
    kept = [_bytes(trim(r)) for r in session]
    evicted = tc.trim(**CONFIGS["tight"])
    got = []
    for request in session:
        clear_memo()  # every cut, fold state and count gone between two turns
        got.append(_bytes(evicted(request)))
    assert got == kept
    for request, out in zip(session, got, strict=True):
        assert out == fresh(request, "tight")


def test_two_trims_with_one_config_keep_their_cuts_apart() -> None:
    # Each trim's cuts put their originals in its own store: a cut found in the memo must
    # have been made by the same trim, or this store would lack the text its marker names.
    session = _conversation(1, 3)
    first = tc.trim(**CONFIGS["tight"], store=MemoryStore())
    for request in session:
        first(request)
    store = MemoryStore()
    second = tc.trim(**CONFIGS["tight"], store=store)
    out = second(session[-1])
    named = {key for m in out["messages"] for key in store_ids(json.dumps(m["content"]))}
    assert named and all(store.get(key) is not None for key in named)
