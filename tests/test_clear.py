"""Clearing old tool results in batches, dedupe, and the server-side edit."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import Call
from builders import plain_conversation as conversation
from tidyctx import cachesim, pricing
from tidyctx._request import cache_content, canonical_json, iter_blocks, validate
from tidyctx.store import MemoryStore, store_key
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._cache import cache
from tidyctx.transforms._clear import (
    CONTEXT_MANAGEMENT_BETA,
    Clearing,
    clear,
    clear_plan,
    clear_results,
    clearing_tradeoff,
    dedupe,
    result_text,
    server_side_edit,
    tool_calls,
    with_server_side,
)

MODEL = "claude-sonnet-4-6"
COUNTER = LocalCounter(MODEL)
SETTINGS = settings(
    max_examples=60,
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.data_too_large],
)


def text_of(n_lines: int, tag: str) -> str:
    """Deterministic log text of about 12 tokens per line."""
    return "\n".join(
        f"{tag} line {i}: status ok, latency {i * 37 % 997} ms" for i in range(n_lines)
    )


def png(width: int = 200, height: int = 200) -> dict[str, Any]:
    data = gen.png_bytes(width, height, 0, b"\x00" * (width * height))
    return {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(data).decode(),
        },
    }


def result_block(request: dict[str, Any], k: int) -> dict[str, Any]:
    block: dict[str, Any] = request["messages"][2 + 2 * k]["content"][0]
    return block


def use_block(request: dict[str, Any], k: int) -> dict[str, Any]:
    block: dict[str, Any] = request["messages"][1 + 2 * k]["content"][0]
    return block


def placeholder(request: dict[str, Any], k: int) -> str:
    text: str = result_block(request, k)["content"][0]["text"]
    return text


def blocks(request: Any) -> list[bytes]:
    """Canonical bytes of every block in cache-prefix order (markers aside)."""
    return [canonical_json(cache_content(ref.block)) for ref in iter_blocks(request)]


def first_difference(a: list[bytes], b: list[bytes]) -> int:
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return k
    return min(len(a), len(b))


# ---------------------------------------------------------------------------- tool_calls


def test_tool_calls_pairs_in_order() -> None:
    req = conversation([("read", {"p": 1}, "one"), ("grep", {"q": "x"}, text_of(10, "g"))])
    calls = tool_calls(req, counter=COUNTER)
    assert [(c.id, c.name, c.input) for c in calls] == [
        ("toolu_000", "read", {"p": 1}),
        ("toolu_001", "grep", {"q": "x"}),
    ]
    assert calls[0].use_path == (1, 0) and calls[0].result_path == (2, 0)
    assert calls[1].tokens == COUNTER.count_block(result_block(req, 1))
    assert calls[0].placeholder is None and not calls[0].is_error


def test_tool_calls_unanswered_call_has_no_result() -> None:
    req = conversation([("read", {}, "one")])
    req["messages"].append(
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "x", "name": "n", "input": {}}],
        }
    )
    last = tool_calls(req)[-1]
    assert last.result_path is None and last.tokens == 0


# ---------------------------------------------------------------------------- clear_results


def test_placeholder_text_and_is_error_kept() -> None:
    req = conversation([("run_tests", {"path": "tests"}, text_of(50, "t"), True)])
    ids = {"toolu_000"}
    tokens = tool_calls(req, counter=COUNTER)[0].tokens
    out = clear_results(req, ids, counter=COUNTER)
    block = result_block(out, 0)
    assert block["type"] == "tool_result" and block["tool_use_id"] == "toolu_000"
    assert block["is_error"] is True
    assert block["content"] == [
        {
            "type": "text",
            "text": f"[tidyctx: cleared result of run_tests (toolu_000), {tokens:,} tokens]",
        }
    ]
    assert use_block(out, 0) == use_block(req, 0)  # input kept
    validate(out)


def test_clear_results_does_not_mutate_and_keeps_pairs() -> None:
    req = conversation([(f"tool{k % 2}", {"k": k}, text_of(20, str(k))) for k in range(6)])
    frozen = copy.deepcopy(req)
    out = clear_results(req, {"toolu_000", "toolu_002", "toolu_004"}, clear_tool_inputs=True)
    assert req == frozen
    validate(out)
    assert [c.id for c in tool_calls(out)] == [c.id for c in tool_calls(req)]
    assert [c.placeholder for c in tool_calls(out)] == ["cleared", None] * 3


def test_clear_results_keeps_cache_control_and_inner_marker() -> None:
    req = conversation([("read", {}, [{"type": "text", "text": text_of(20, "a")}])])
    result_block(req, 0)["cache_control"] = {"type": "ephemeral"}
    result_block(req, 0)["content"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    out = clear_results(req, {"toolu_000"})
    block = result_block(out, 0)
    assert block["cache_control"] == {"type": "ephemeral"}
    assert block["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_store_round_trip() -> None:
    content = [{"type": "text", "text": text_of(30, "a")}, {"type": "text", "text": "tail"}]
    req = conversation([("read", {"path": "a.log"}, content)])
    store = MemoryStore()
    out = clear_results(req, {"toolu_000"}, store=store)
    key = store_key(result_text(content))
    assert f'read it back with tidyctx_expand(id="{key}")' in placeholder(out, 0)
    assert store.get(key) == text_of(30, "a") + "\ntail"


@pytest.mark.parametrize(
    ("option", "cleared_inputs"),
    [(True, {"read", "grep"}), (["grep"], {"grep"}), (False, set())],
)
def test_clear_tool_inputs(option: Any, cleared_inputs: set[str]) -> None:
    req = conversation([("read", {"path": "a.py"}, "x " * 100), ("grep", {"q": "TODO"}, "y " * 99)])
    store = MemoryStore()
    out = clear_results(req, {"toolu_000", "toolu_001"}, clear_tool_inputs=option, store=store)
    validate(out)
    for k, name in enumerate(("read", "grep")):
        text = placeholder(out, k)
        if name in cleared_inputs:
            assert use_block(out, k)["input"] == {}
            original = use_block(req, k)["input"]
            key = store_key(canonical_json(original).decode())
            assert text.endswith(f'; its input was cleared too: tidyctx_expand(id="{key}")]')
            assert json.loads(store.get(key) or "") == original
        else:
            assert use_block(out, k)["input"] == use_block(req, k)["input"]
            assert "input" not in text


def test_clear_tool_inputs_without_store_and_empty_input() -> None:
    req = conversation([("read", {"path": "a.py"}, "x " * 100), ("ls", {}, "y " * 100)])
    out = clear_results(req, {"toolu_000", "toolu_001"}, clear_tool_inputs=True)
    assert placeholder(out, 0).endswith("tokens; its input was cleared too]")
    assert placeholder(out, 1).endswith("tokens]")  # nothing to clear in {}
    assert use_block(out, 0)["input"] == {}


def test_images_counted_and_replaced() -> None:
    content = [{"type": "text", "text": "two screenshots"}, png(), png(400, 300)]
    req = conversation([("screenshot", {}, content)])
    tokens = tool_calls(req, counter=COUNTER)[0].tokens
    out = clear_results(req, {"toolu_000"}, counter=COUNTER)
    assert placeholder(out, 0) == (
        f"[tidyctx: cleared result of screenshot (toolu_000), {tokens:,} tokens and 2 images]"
    )
    assert "image" not in json.dumps([b.get("type") for b in result_block(out, 0)["content"]])
    validate(out)


def test_clear_images_in_kept_results_follow_the_batch() -> None:
    shot = [{"type": "text", "text": "screen"}, png()]
    req = conversation(
        [
            ("screenshot", {}, shot),  # excluded tool, before the batch: image goes
            ("read", {}, text_of(30, "a")),  # cleared
            ("screenshot", {}, shot),  # after the last cleared call: kept whole
            ("read", {}, text_of(30, "b")),
        ]
    )
    out = clear_results(req, {"toolu_001"}, clear_images=True, counter=COUNTER)
    image_tokens = COUNTER.count_block(png())
    assert result_block(out, 0)["content"] == [
        {"type": "text", "text": "screen"},
        {"type": "text", "text": f"[tidyctx: image cleared (~{image_tokens:,} tokens)]"},
    ]
    assert result_block(out, 2) == result_block(req, 2)
    assert result_block(out, 3) == result_block(req, 3)
    validate(out)
    # No cleared batch, no image change (an image removed anywhere invalidates the messages).
    assert clear_results(req, set(), clear_images=True) == req


# ---------------------------------------------------------------------------- clear_plan


def log_conversation(n: int, lines: int = 40, names: Sequence[str] = ("read",)) -> dict[str, Any]:
    return conversation(
        [(names[k % len(names)], {"chunk": k}, text_of(lines, f"c{k}")) for k in range(n)]
    )


def test_keep_and_trigger() -> None:
    req = log_conversation(6)
    assert clear_plan(req, keep=2, trigger=0, clear_at_least=0) == {
        f"toolu_{k:03d}" for k in range(4)
    }
    assert clear_plan(req, keep=6, trigger=0, clear_at_least=0) == set()
    assert clear_plan(req, keep=0, trigger=0, clear_at_least=None) == {
        f"toolu_{k:03d}" for k in range(6)
    }
    total = COUNTER.count_request(req)
    assert clear_plan(req, keep=2, trigger=total + 1, clear_at_least=0, counter=COUNTER) == set()
    assert len(clear_plan(req, keep=2, trigger=total, clear_at_least=0, counter=COUNTER)) == 4


def test_exclude_tools() -> None:
    req = log_conversation(8, names=("read", "memory"))
    ids = clear_plan(req, keep=1, trigger=0, clear_at_least=0, exclude_tools=["memory"])
    assert ids == {"toolu_000", "toolu_002", "toolu_004", "toolu_006"}


def test_dict_forms_match_the_server_config() -> None:
    req = log_conversation(10)
    tokens = tool_calls(req, counter=COUNTER)[0].tokens
    plain = clear_plan(req, keep=2, trigger=1_000, clear_at_least=3 * tokens, counter=COUNTER)
    dicts = clear_plan(
        req,
        keep={"type": "tool_uses", "value": 2},
        trigger={"type": "input_tokens", "value": 1_000},
        clear_at_least={"type": "input_tokens", "value": 3 * tokens},
        counter=COUNTER,
    )
    assert plain == dicts == {f"toolu_{k:03d}" for k in range(6)}
    by_uses = {"type": "tool_uses", "value": 10}
    assert len(clear_plan(req, keep=2, trigger=by_uses, clear_at_least=0)) == 8
    assert clear_plan(req, keep=2, trigger={"type": "tool_uses", "value": 11}) == set()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"keep": {"type": "input_tokens", "value": 3}},
        {"trigger": {"type": "messages", "value": 3}},
        {"clear_at_least": {"type": "tool_uses", "value": 3}},
        {"keep": -1},
        {"trigger": "100k"},
        {"clear_at_least": {"type": "input_tokens", "value": 1.5}},
        {"exclude_tools": "read"},
    ],
)
def test_bad_forms_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        clear_plan(log_conversation(2), **kwargs)


def test_batches_in_chunks_of_clear_at_least() -> None:
    # Each result is t tokens; keep=1, clear_at_least = 2.5 t: the running sum over the
    # candidates reaches a multiple at candidates 3, 5, 8, 10, ... (2.5t, 5t, 7.5t, 10t).
    history = log_conversation(14)
    t = tool_calls(history, counter=COUNTER)[0].tokens
    cleared = []
    for n in range(1, 15):
        req = {**history, "messages": history["messages"][: 1 + 2 * n]}
        ids = clear_plan(req, keep=1, trigger=0, clear_at_least=int(2.5 * t), counter=COUNTER)
        cleared.append(len(ids))
    assert cleared == [0, 0, 0, 3, 3, 5, 5, 5, 8, 8, 10, 10, 10, 13]


def test_plan_is_the_same_on_the_cleared_and_deduped_request() -> None:
    same = text_of(40, "same")
    req = conversation(
        [("read", {"k": k}, same if k % 3 == 0 else text_of(40, str(k))) for k in range(12)]
    )
    kw: dict[str, Any] = {"keep": 2, "trigger": 3_000, "clear_at_least": 2_000, "counter": COUNTER}
    ids = clear_plan(req, **kw)
    assert ids
    cleared = clear_results(req, ids, counter=COUNTER)
    assert clear_plan(cleared, **kw) == ids
    deduped = dedupe(req, counter=COUNTER)
    assert deduped != req and clear_plan(deduped, **kw) == ids
    total = COUNTER.count_request(req)
    # The trigger counts placeholders at the size of what they replaced.
    kw["trigger"] = total
    assert clear_plan(cleared, **kw) == clear_plan(req, **kw) == ids


# ---------------------------------------------------------------------------- dedupe


def test_dedupe_same_call_same_content() -> None:
    body = text_of(30, "file")
    req = conversation(
        [("read", {"path": "a"}, body), ("ls", {}, "x"), ("read", {"path": "a"}, body)]
    )
    store = MemoryStore()
    out = dedupe(req, store=store, counter=COUNTER)
    tokens = tool_calls(req, counter=COUNTER)[2].tokens
    key = store_key(body)
    assert placeholder(out, 2) == (
        f"[tidyctx: same result as toolu_000 (read, messages[2]), {tokens:,} tokens; "
        f'read it back with tidyctx_expand(id="{key}")]'
    )
    assert store.get(key) == body
    assert result_block(out, 0) == result_block(req, 0)
    validate(out)


def test_dedupe_same_call_new_content_is_not_a_duplicate() -> None:
    # A file read again after an edit is news: never call it "the same result".
    req = conversation(
        [("read", {"path": "a"}, text_of(30, "v1")), ("read", {"path": "a"}, text_of(30, "v2"))]
    )
    assert dedupe(req) == req


def test_dedupe_by_content_hash_across_tools() -> None:
    body = text_of(30, "x")
    req = conversation(
        [("grep", {"q": "x"}, body), ("search", {"query": "x"}, [{"type": "text", "text": body}])]
    )
    out = dedupe(req)
    assert placeholder(out, 1).startswith("[tidyctx: same result as toolu_000 (grep, messages[2])")


def test_dedupe_never_across_is_error() -> None:
    body = text_of(30, "boom")
    req = conversation([("run", {}, body, True), ("run", {}, body), ("run", {}, body, True)])
    out = dedupe(req)
    assert result_block(out, 1) == result_block(req, 1)
    assert result_block(out, 2)["is_error"] is True
    assert placeholder(out, 2).startswith("[tidyctx: same result as toolu_000 (run,")


def test_dedupe_small_results_are_repeated() -> None:
    req = conversation([("ls", {}, "a.py b.py"), ("ls", {}, "a.py b.py")])
    assert dedupe(req) == req


def test_dedupe_repeats_a_result_its_reference_would_not_shorten() -> None:
    # A 57-token result under a long tool name: "same result as ..." with the read-back call
    # is longer than the result itself, so the result is sent again as it is.
    name = "mcp__filesystem__read_text_file_with_line_numbers"
    body = text_of(4, "x")
    req = conversation([(name, {"p": 1}, body), (name, {"p": 1}, body)])
    store = MemoryStore()
    note = (
        f"[tidyctx: same result as toolu_000 ({name}, messages[2]), 57 tokens; read it back "
        f'with tidyctx_expand(id="{store_key(body)}")]'
    )
    assert COUNTER.count_text(note) >= COUNTER.count_text(body) >= 50
    assert dedupe(req, store=store, counter=COUNTER) == req
    assert store.get(store_key(body)) is None  # nothing referenced, nothing kept
    # Without the read-back call the reference is shorter, and used.
    assert placeholder(dedupe(req, counter=COUNTER), 1).startswith("[tidyctx: same result as")


def test_dedupe_keeps_the_first_copy_that_is_not_cleared() -> None:
    body = text_of(30, "same")
    req = conversation([("read", {"p": 1}, body), ("x", {}, "filler " * 80)] * 3)
    # Copies at calls 0, 2, 4. Without clearing, 2 and 4 point at 0.
    out = dedupe(req)
    assert "same result as toolu_000" in placeholder(out, 2)
    assert "same result as toolu_000" in placeholder(out, 4)
    # Call 0 cleared: call 2 is kept whole and 4 points at it, never at a placeholder.
    ids = {"toolu_000", "toolu_001"}
    for out in (
        dedupe(clear_results(req, ids), cleared=ids),
        clear_results(dedupe(req, cleared=ids), ids),
    ):
        assert placeholder(out, 0).startswith("[tidyctx: cleared result of read (toolu_000)")
        assert result_block(out, 2) == result_block(req, 2)
        assert placeholder(out, 4).startswith("[tidyctx: same result as toolu_002 (read,")
    # Both copies before the last cleared: the last one is the one kept whole.
    ids = {"toolu_000", "toolu_001", "toolu_002", "toolu_003"}
    out = dedupe(clear_results(req, ids), cleared=ids)
    assert result_block(out, 4) == result_block(req, 4)


def test_dedupe_is_idempotent_and_pure() -> None:
    body = text_of(30, "same")
    req = conversation([("read", {}, body)] * 4)
    frozen = copy.deepcopy(req)
    once = dedupe(req)
    assert req == frozen
    assert dedupe(once) == once


# ---------------------------------------------------------------------------- server side


def test_server_side_edit_keys() -> None:
    assert server_side_edit() == {"type": "clear_tool_uses_20250919"}
    assert server_side_edit(
        keep=3,
        trigger={"type": "tool_uses", "value": 20},
        clear_at_least={"type": "input_tokens", "value": 5_000},
        exclude_tools=("memory",),
        clear_tool_inputs=["bash"],
    ) == {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "tool_uses", "value": 20},
        "keep": {"type": "tool_uses", "value": 3},
        "clear_at_least": {"type": "input_tokens", "value": 5_000},
        "exclude_tools": ["memory"],
        "clear_tool_inputs": ["bash"],
    }
    assert "clear_at_least" not in server_side_edit(clear_at_least=0)
    with pytest.raises(ValueError):
        server_side_edit(keep={"type": "input_tokens", "value": 3})


def test_with_server_side_merges_edits() -> None:
    req = conversation([("read", {}, "x")])
    req["context_management"] = {
        "edits": [
            {"type": "clear_tool_uses_20250919", "keep": {"type": "tool_uses", "value": 9}},
            {"type": "clear_thinking_20251015", "keep": "all"},
        ]
    }
    frozen = copy.deepcopy(req)
    edit = server_side_edit(keep=3, trigger=50_000)
    out = with_server_side(req, edit)
    assert req == frozen
    assert out["context_management"]["edits"] == [
        {"type": "clear_thinking_20251015", "keep": "all"},
        edit,
    ]
    assert out["messages"] == req["messages"]
    assert with_server_side(out, edit) == out
    fresh = with_server_side(conversation([("read", {}, "x")]), edit)
    assert fresh["context_management"] == {"edits": [edit]}
    assert CONTEXT_MANAGEMENT_BETA == "context-management-2025-06-27"


def test_server_side_config_is_accepted_by_the_sdk_types() -> None:
    from anthropic.types.beta import BetaContextManagementConfigParam

    edit = Clearing(keep=2, trigger=60_000, exclude_tools=["memory"]).edit()
    config: BetaContextManagementConfigParam = {"edits": [edit]}  # type: ignore[list-item]
    assert config["edits"][0]["trigger"] == {"type": "input_tokens", "value": 60_000}  # type: ignore[index]


# ---------------------------------------------------------------------------- transform, tradeoff


def test_clearing_tradeoff_says_cost_and_saving() -> None:
    req = log_conversation(12, lines=300, names=("read",))
    req["system"] = "You read logs. " * 200
    ids = clear_plan(req, keep=3, trigger=0, clear_at_least=10_000, counter=COUNTER)
    after = clear_results(req, ids, counter=COUNTER)
    text = clearing_tradeoff(req, after, counter=COUNTER)
    n = len(ids)
    removed = COUNTER.count_request(req) - COUNTER.count_request(after)
    assert text.startswith(f"cleared {n} results ({removed:,} tokens): rewrites ")
    assert (
        f"saves {round(removed * 0.1):,} token-equivalents per later turn: pays back after" in text
    )
    assert clearing_tradeoff(req, req) == "nothing cleared: the cached prefix is intact"


def test_clear_transform_in_explain_and_idempotent() -> None:
    req = log_conversation(12, lines=300)
    t = clear(Clearing(keep=3, trigger=0, clear_at_least=10_000))
    report = tc.explain(req, t)
    assert "pays back after" in report.steps[0].note
    once = tc.pipe(req, t)
    assert tc.pipe(once, t) == once
    validate(once)
    assert tc.pipe(req["messages"], t) == once["messages"]


def test_explain_prices_a_turn_against_last_turns_request() -> None:
    history = log_conversation(8, lines=100)
    t = tool_calls(history, counter=COUNTER)[0].tokens
    step = clear(Clearing(keep=1, trigger=0, clear_at_least=int(2.5 * t)))
    notes = []
    for n in range(1, 9):
        req = {**history, "messages": history["messages"][: 1 + 2 * n]}
        notes.append(tc.explain(req, step).steps[0].note)
    # Batches at turns 4 (3 results) and 6 (2 more); between them the prefix is intact.
    assert notes[3].startswith("cleared 3 results (")
    assert notes[4].startswith("no new batch: 3 results stay cleared (")
    assert notes[5].startswith("cleared 2 results (")
    assert notes[6].startswith("no new batch: 5 results stay cleared")
    assert notes[0] == "nothing cleared: the cached prefix is intact"


# ---------------------------------------------------------------------------- properties


@st.composite
def tool_sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Growing requests of one session of tool calls with random result sizes (r_1..r_n)."""
    n = draw(st.integers(2, 14))
    specs: list[Call] = []
    for k in range(n):
        name = draw(st.sampled_from(("read", "grep", "memory")))
        size = draw(st.integers(0, 60))
        repeat = k > 0 and draw(st.integers(0, 5)) == 0
        content: Any = specs[draw(st.integers(0, k - 1))][2] if repeat else text_of(size, f"{k}")
        if not content:
            content = "ok"
        if draw(st.integers(0, 5)) == 0:
            content = [{"type": "text", "text": "shot"}, png(64, 64)]
        specs.append((name, {"k": k % 3}, content, draw(st.integers(0, 7)) == 0))
    full = conversation(specs, system=draw(st.sampled_from([None, "Be brief."])))
    return [{**full, "messages": full["messages"][: 1 + 2 * m]} for m in range(1, n + 1)]


PLAN_ARGS = st.fixed_dictionaries(
    {
        "keep": st.integers(0, 3),
        "trigger": st.sampled_from([0, 300, 1_500, {"type": "tool_uses", "value": 4}]),
        "clear_at_least": st.sampled_from([0, 1, 150, 400, 1_000]),
        "exclude_tools": st.sampled_from([(), ("memory",)]),
    }
)


def clearable_total(request: dict[str, Any], keep: int, exclude: Sequence[str]) -> int:
    calls = tool_calls(request, counter=COUNTER)
    older = calls[: max(0, len(calls) - keep)]
    return sum(c.tokens for c in older if c.result_path is not None and c.name not in exclude)


def triggered(request: dict[str, Any], args: dict[str, Any]) -> bool:
    """Whether the plan fires at all: with keep=0, clear_at_least=0 it clears every call."""
    full = clear_plan(request, keep=0, trigger=args["trigger"], clear_at_least=0, counter=COUNTER)
    return bool(full) or not tool_calls(request)


def path_of(where: tuple[int, int]) -> str:
    return f"messages[{where[0]}].content[{where[1]}]"


def check_growth(session: list[dict[str, Any]], args: dict[str, Any], transform: Any) -> None:
    """Monotone plans, changes only at multiples, byte-stable prefix between batches."""
    plans = [clear_plan(r, counter=COUNTER, **args) for r in session]
    outs = [transform(r, p) for r, p in zip(session, plans, strict=True)]
    chunk = args["clear_at_least"]
    for n in range(len(session) - 1):
        before, after = plans[n], plans[n + 1]
        assert before <= after
        a, b = blocks(outs[n]), blocks(outs[n + 1])
        if before == after:
            # Between batches: the bytes up to the first block that differs from the uncleared
            # request are the same on both turns; in fact last turn's whole request is a prefix
            # of this one, byte for byte.
            first = first_difference(a, blocks(session[n]))
            assert a[:first] == b[:first]
            assert b[: len(a)] == a
        else:
            # A batch rewrites the history from the new batch on: not before the first block
            # this turn edits, nor before the first newly cleared call (its tool_use, when
            # inputs are cleared; parallel calls share messages) or the first block after the
            # results cleared last turn (images of kept calls go with a batch).
            d = first_difference(a, b)
            if d < len(a):
                assert d >= first_difference(b, blocks(session[n + 1]))
                at = {ref.path: k for k, ref in enumerate(iter_blocks(session[n + 1]))}
                calls = tool_calls(session[n + 1])
                new_uses = [at[path_of(c.use_path)] for c in calls if c.id in after - before]
                done = [
                    at[path_of(c.result_path)] for c in calls if c.id in before and c.result_path
                ]
                assert d >= min(min(new_uses), max(done, default=-1) + 1)
        if chunk and triggered(session[n], args):
            keep, exclude = args["keep"], args["exclude_tools"]
            s_before = clearable_total(session[n], keep, exclude) // chunk
            s_after = clearable_total(session[n + 1], keep, exclude) // chunk
            if s_before == s_after:
                assert before == after
            else:
                assert s_after > s_before


@SETTINGS
@given(tool_sessions(), PLAN_ARGS)
def test_plan_grows_in_batches_and_keeps_the_prefix(
    session: list[dict[str, Any]], args: dict[str, Any]
) -> None:
    def transform(request: dict[str, Any], ids: frozenset[str]) -> Any:
        out = clear_results(request, ids, clear_images=True, counter=COUNTER)
        return dedupe(out, cleared=ids, counter=COUNTER)

    check_growth(session, args, transform)


@SETTINGS
@given(gen.growing_conversations(max_turns=6), PLAN_ARGS)
def test_plan_properties_on_general_conversations(
    session: list[dict[str, Any]], args: dict[str, Any]
) -> None:
    args = {**args, "clear_at_least": min(args["clear_at_least"], 150)}

    def transform(request: dict[str, Any], ids: frozenset[str]) -> Any:
        return clear_results(request, ids, clear_tool_inputs=True, counter=COUNTER)

    check_growth(session, args, transform)


@SETTINGS
@given(gen.requests(max_turns=6, with_cache_control=True), st.data())
def test_clear_results_pure_idempotent_valid(request: dict[str, Any], data: st.DataObject) -> None:
    calls = tool_calls(request)
    ids = data.draw(st.sets(st.sampled_from([c.id for c in calls]))) if calls else set()
    options: list[bool | list[str]] = [False, True, [c.name for c in calls[:1]]]
    inputs = data.draw(st.sampled_from(options))
    images = data.draw(st.booleans())
    store = MemoryStore()
    frozen = copy.deepcopy(request)
    once = clear_results(request, ids, clear_tool_inputs=inputs, clear_images=images, store=store)
    assert request == frozen
    again = clear_results(once, ids, clear_tool_inputs=inputs, clear_images=images, store=store)
    assert again == once
    assert clear_results(request, ids, clear_tool_inputs=inputs, clear_images=images) == (
        clear_results(frozen, ids, clear_tool_inputs=inputs, clear_images=images)
    )
    validate(once)
    validate(dedupe(once, cleared=ids, min_tokens=0))
    for call in tool_calls(once):
        assert (call.placeholder == "cleared") == (call.id in ids and call.result_path is not None)
    # The whole step is idempotent: the plan for the output is the plan for the input.
    t = clear(Clearing(keep=1, trigger=0, clear_at_least=100, clear_images=images), store=store)
    out = t(request)
    assert t(out) == out


# ---------------------------------------------------------------------------- cost-benefit


TURNS = 50


def log_session() -> list[dict[str, Any]]:
    """50 turns; each an assistant tool_use and a ~5,000-token tool_result (numbered log lines)."""
    tools = [
        {
            "name": "read_log",
            "description": "Read one chunk of the service log.",
            "input_schema": {
                "type": "object",
                "properties": {"chunk": {"type": "integer"}},
                "required": ["chunk"],
            },
        }
    ]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Find the cause of the latency spikes in the service log."}
    ]
    session = []
    for t in range(TURNS):
        lines = "\n".join(
            f"[{t:02d}:{i:04d}] worker-{i % 7} processed batch {t * 1000 + i} status=ok "
            f"latency={(i * 37 + t) % 997}ms"
            for i in range(212)
        )
        tid = f"toolu_{t:03d}"
        messages = [
            *messages,
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Reading chunk {t}."},
                    {"type": "tool_use", "id": tid, "name": "read_log", "input": {"chunk": t}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tid, "content": lines}],
            },
        ]
        session.append(
            {
                "model": MODEL,
                "max_tokens": 1024,
                "system": "You are a careful log analysis agent. " * 250,
                "tools": tools,
                "messages": messages,
            }
        )
    return session


def priced(session: list[dict[str, Any]]) -> float:
    placed = [cache(min_tokens=0)(r) for r in session]
    usage = cachesim.simulate(placed, model=MODEL)
    return sum(pricing.cost(u, MODEL).total for u in usage)


def test_batches_cost_less_than_never_and_than_every_turn() -> None:
    session = log_session()
    sizes = {c.tokens for c in tool_calls(session[-1], counter=COUNTER)}
    assert min(sizes) >= 4_500 and max(sizes) <= 5_500

    def run(**kw: Any) -> list[dict[str, Any]]:
        return [
            clear_results(r, clear_plan(r, counter=COUNTER, **kw), counter=COUNTER) for r in session
        ]

    never = priced(session)
    every_turn = priced(run(keep=3, trigger=30_000, clear_at_least=0))
    batches = priced(run(keep=3, trigger=30_000, clear_at_least=30_000))
    print(
        f"\n{TURNS} turns of ~5k-token tool results on {MODEL}: never clearing ${never:.4f}, "
        f"clearing every turn ${every_turn:.4f}, clearing in 30k batches ${batches:.4f}"
    )
    assert batches < never
    assert batches < every_turn
