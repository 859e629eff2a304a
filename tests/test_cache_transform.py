"""cache() and order()+cache(): placement rules, the caller's own markers, and the cache-prefix
properties on growing conversations (each turn reads what the last one cached), checked with the
offline cache model."""

from __future__ import annotations

import copy
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import POLICY
from tidyctx import cachesim
from tidyctx._request import ValidationError, cache_markers, canonical_json, normalize
from tidyctx.tokens import keeps_prior_thinking
from tidyctx.transforms._order import is_dynamic_block

PROPS = settings(max_examples=60)
EC = {"type": "ephemeral"}
EC_1H = {"type": "ephemeral", "ttl": "1h"}


def placed(request: dict[str, Any]) -> list[str]:
    return [p for p, _ in cache_markers(request)]


def big_request(n_tools: int = 3, system_words: int = 1500, turns: int = 1) -> dict[str, Any]:
    tools = [
        {
            "name": f"tool_{i}",
            "description": "Does a thing. " * 120,
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        for i in range(n_tools)
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Start. " * 300}]
    for k in range(turns - 1):
        messages += [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{k}", "name": "tool_0", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{k}", "content": "ok " * 50}],
            },
        ]
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "tools": tools,
        "system": "Policy text. " * system_words,
        "messages": messages,
    }


# ---------------------------------------------------------------------------- placement


def test_default_places_tools_system_and_rolling() -> None:
    out = tc.cache()(big_request())
    assert placed(out) == ["tools[2]", "system[0]", "messages[0].content[0]"]
    tc.validate(out)


def test_breakpoints_go_under_the_minimum_too() -> None:
    # A breakpoint on a prefix under the minimum costs nothing (the API ignores it); one
    # missing where the local count was too low costs a re-read. So every free slot is used.
    req = big_request(n_tools=1)
    req["tools"][0]["description"] = "tiny"
    out = tc.cache()(req)
    assert placed(out) == ["tools[0]", "system[0]", "messages[0].content[0]"]
    req = {
        "model": "claude-haiku-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert placed(tc.cache()(req)) == ["messages[0].content[0]"]
    req["system"] = "word " * 1800
    assert placed(tc.cache()(req)) == ["system[0]", "messages[0].content[0]"]
    # Under the minimum the cache model (as the API) caches nothing, and bills nothing extra.
    usage = cachesim.simulate([tc.cache()(req)])[0]
    assert usage["cache_creation_input_tokens"] == 0


def test_only_markers_change_and_strings_carry_theirs_as_one_text_block() -> None:
    req = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Read a.py."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"p": 1}}],
            },
            {
                "role": "user",
                "content": [{"tool_use_id": "t1", "type": "tool_result", "content": "x = 1"}],
            },
        ],
    }
    out = tc.cache()(req)
    assert out["system"] == [{"type": "text", "text": "Be brief.", "cache_control": EC}]
    assert out["messages"][0] == req["messages"][0]  # no marker: still a string
    # The marker sits on the tool_result; its content stays a string, its keys in order.
    assert out["messages"][2]["content"] == [
        {"tool_use_id": "t1", "type": "tool_result", "content": "x = 1", "cache_control": EC}
    ]
    out["messages"][2]["content"][0].pop("cache_control")
    assert out["messages"][1:] == req["messages"][1:]


def test_user_markers_on_tools_and_system_are_kept_and_count() -> None:
    req = normalize(big_request())
    req["tools"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    req["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    out = tc.cache()(req)
    assert placed(out) == ["tools[0]", "system[0]", "messages[0].content[0]"]
    assert out["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    tc.validate(out)


def test_four_user_markers_leave_no_room() -> None:
    req = normalize(big_request(n_tools=4))
    for tool in req["tools"]:
        tool["cache_control"] = EC
    out = tc.cache()(req)
    assert len(cache_markers(out)) == 4
    tc.validate(out)


def test_message_markers_roll() -> None:
    req = normalize(big_request(turns=3))
    req["messages"][0]["content"][0]["cache_control"] = EC
    out = tc.cache()(req)
    assert "messages[0].content[0]" not in placed(out)
    assert placed(out)[-1] == "messages[4].content[0]"


def test_never_on_thinking_or_the_dynamic_block() -> None:
    req = big_request(turns=1)
    req["messages"] = [
        {"role": "user", "content": "Start. " * 300},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "tool_0", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ]
    req["system"] = "Policy text. " * 1500 + "\nToday's date is 2026-11-25."
    out = tc.pipe(req, tc.order(), tc.cache())
    last = out["messages"][-1]["content"]
    assert is_dynamic_block(last[-1]) and "cache_control" not in last[-1]
    assert "cache_control" in last[0]
    for m in out["messages"]:
        for b in m["content"] if isinstance(m["content"], list) else []:
            if b["type"] == "thinking":
                assert "cache_control" not in b


def test_bridge_for_a_turn_of_many_parallel_calls() -> None:
    req = big_request()
    calls = [{"type": "tool_use", "id": f"p{i}", "name": "tool_0", "input": {}} for i in range(15)]
    results = [
        {"type": "tool_result", "tool_use_id": f"p{i}", "content": "r " * 30} for i in range(15)
    ]
    req["messages"] += [
        {"role": "assistant", "content": calls},
        {"role": "user", "content": [*results, {"type": "text", "text": "go on"}]},
    ]
    out = tc.cache()(req)
    paths = placed(out)
    # 31 blocks after the previous end (messages[0]): a bridge within 20 of it, plus rolling.
    assert paths[-1] == "messages[2].content[15]"
    lay = cachesim.layout(out)
    previous_end = lay.position_of("messages[0].content")  # a string, unmarked now
    bridge = lay.position_of(paths[-2])
    assert 0 < bridge - previous_end < cachesim.LOOKBACK
    assert len(paths) == 4
    prev = tc.cache()(big_request())
    sim = cachesim.calls([prev, out])
    assert sim[1].usage["cache_read_input_tokens"] == sim[0].layout.cum[-1]
    no_bridge = cachesim.calls([prev, tc.cache(bridge=False)(req)])
    assert no_bridge[1].usage["cache_read_input_tokens"] < sim[1].usage["cache_read_input_tokens"]


def test_ttl_options() -> None:
    out = tc.cache(stable_ttl="1h")(big_request())
    assert [m.get("ttl", "5m") for _, m in cache_markers(out)] == ["1h", "1h", "5m"]
    out = tc.cache(ttl="1h", stable_ttl="1h")(big_request())
    assert [m.get("ttl") for _, m in cache_markers(out)] == ["1h", "1h", "1h"]
    with pytest.raises(ValueError, match="1h breakpoints must come before 5m"):
        tc.cache(ttl="1h", stable_ttl="5m")
    with pytest.raises(ValueError, match="only '5m' and '1h'"):
        tc.cache(ttl="10m")


def test_a_5m_user_marker_before_lowers_our_1h() -> None:
    req = normalize(big_request())
    req["tools"][-1]["cache_control"] = EC  # the caller's 5m marker on the tools
    out = tc.cache(stable_ttl="1h")(req)
    tc.validate(out)
    assert out["system"][0]["cache_control"] == EC


def test_automatic_option() -> None:
    out = tc.cache(automatic=True)(big_request())
    assert out["cache_control"] == EC
    assert placed(out) == ["tools[2]", "system[0]", "cache_control"]
    tc.validate(out)
    # With order()'s dynamic block at the end, automatic caching would land on it: not used.
    req = big_request()
    req["system"] += "\nCurrent time: 10:00:01"
    out = tc.pipe(req, tc.order(), tc.cache(automatic=True))
    assert "cache_control" not in out


def test_describe_and_explain() -> None:
    report = tc.explain(big_request(), tc.cache())
    assert report.steps[0].first_change is None  # markers are not content
    assert "3 breakpoints" in str(report)


# ---------------------------------------------------------------------------- the caller's markers


def marked_system(*markers: dict[str, str] | None) -> list[dict[str, Any]]:
    blocks = [{"type": "text", "text": f"Part {i}. " + POLICY} for i in range(len(markers))]
    for block, marker in zip(blocks, markers, strict=True):
        if marker is not None:
            block["cache_control"] = marker
    return blocks


@pytest.mark.parametrize(
    ("extra", "path", "words"),
    [
        (
            {"system": marked_system(EC, EC, EC, EC, EC)},
            "system[4].cache_control",
            "5 cache_control",
        ),
        (
            {
                "tools": [
                    {"name": f"t{i}", "input_schema": {"type": "object"}, "cache_control": EC}
                    for i in range(4)
                ],
                "cache_control": EC,
            },
            "cache_control",
            "5 cache_control",
        ),
        (
            {"system": marked_system(EC, EC_1H)},
            "system[1].cache_control.ttl",
            "1h breakpoint comes after",
        ),
    ],
)
def test_cache_refuses_user_markers_the_api_rejects(
    extra: dict[str, Any], path: str, words: str
) -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi " * 2000}],
        **extra,
    }
    with pytest.raises(ValidationError, match=words) as err:
        tc.cache()(request)
    assert err.value.path == path
    assert "cache() keeps your own cache_control markers" in str(err.value)


def test_user_markers_inside_old_tool_results_do_not_hold_a_slot() -> None:
    # The caller caches three tool groups and once marked a tool result's text. Kept, that
    # old marker would fill the 4th slot for the rest of the conversation: no rolling breakpoint.
    tools = [
        {
            "name": f"tool_{i}",
            "description": "Does things. " * 500,
            "input_schema": {"type": "object"},
            "cache_control": EC,
        }
        for i in range(3)
    ]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Go."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "a", "name": "tool_0", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "a",
                    "content": [{"type": "text", "text": "rows " * 500, "cache_control": EC}],
                }
            ],
        },
        {"role": "assistant", "content": "Done with the rows."},
        {"role": "user", "content": "Now summarize. " * 100},
    ]
    request = {"model": "claude-sonnet-4-6", "max_tokens": 64, "tools": tools, "messages": messages}
    out = tc.cache()(request)
    assert [p for p, _ in cache_markers(out)] == [
        "tools[0]",
        "tools[1]",
        "tools[2]",
        "messages[4].content[0]",
    ]
    assert tc.cache()(out) == out
    tc.validate(out)


def test_our_breakpoint_before_a_user_1h_marker_is_1h_too() -> None:
    # The caller marks the system 1h; cache() adds the tools breakpoint before it. At 5m it
    # would break "1h before 5m", and the API would answer 400
    # (https://docs.claude.com/en/docs/build-with-claude/prompt-caching).
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "tools": [
            {"name": "run", "description": "Run. " * 2000, "input_schema": {"type": "object"}}
        ],
        "system": [{"type": "text", "text": POLICY, "cache_control": EC_1H}],
        "messages": [{"role": "user", "content": "hi " * 100}],
    }
    out = tc.cache()(request)
    tc.validate(out)
    assert cache_markers(out) == [
        ("tools[0]", EC_1H),
        ("system[0]", EC_1H),
        ("messages[0].content[0]", EC),
    ]


# ---------------------------------------------------------------------------- properties


def _with_clock(requests: list[dict[str, Any]], shuffle: bool = True) -> list[dict[str, Any]]:
    """Put a per-turn timestamp in the system prompt, and shuffle the tools per turn."""
    out = []
    for k, r in enumerate(requests):
        r = copy.deepcopy(r)
        system = r.get("system") or ""
        text = system if isinstance(system, str) else "\n".join(b["text"] for b in system)
        r["system"] = f"{text}\nCurrent time: 2026-11-25T10:{k:02}:00Z"
        if shuffle and r.get("tools"):
            r["tools"] = r["tools"][k % len(r["tools"]) :] + r["tools"][: k % len(r["tools"])]
        out.append(r)
    return out


PIPELINE = (tc.order(), tc.cache(min_tokens=0))


@PROPS
@given(gen.requests(with_cache_control=True))
def test_cache_is_pure_idempotent_and_valid(request: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(request)
    once = tc.pipe(request, tc.cache(min_tokens=0))
    assert request == snapshot
    assert tc.pipe(once, tc.cache(min_tokens=0)) == once
    tc.validate(once)
    both = tc.pipe(request, *PIPELINE)
    assert tc.pipe(both, *PIPELINE) == both
    tc.validate(both)
    assert len(cache_markers(both)) <= 4


def _prefix_bytes(lay: cachesim.Layout, pos: int) -> bytes:
    """The cached content up to ``pos``. On models that strip earlier thinking it is not part
    of the cache key (see cachesim.layout), so it is left out here too."""
    drop = not keeps_prior_thinking(lay.model)
    return b"".join(
        canonical_json(c)
        for c in lay.content[: pos + 1]
        if not (drop and isinstance(c, dict) and c.get("type") in ("thinking", "redacted_thinking"))
    )


def _images(lay: cachesim.Layout) -> Any:
    return dict(lay.seeds).get("images")


@PROPS
@given(gen.growing_conversations(min_turns=2, max_turns=6), st.booleans())
def test_prefix_up_to_every_breakpoint_survives_the_next_turn(
    requests: list[dict[str, Any]], churn: bool
) -> None:
    if churn:
        requests = _with_clock(requests)
    sent = [tc.pipe(r, *PIPELINE) for r in requests]
    layouts = [cachesim.layout(r) for r in sent]
    for a, b in pairwise(layouts):
        if _images(a) != _images(b):
            continue  # the docs: adding or removing an image invalidates the messages
        for pos, _ in a.breakpoints:
            # The entry turn n wrote at this breakpoint is on turn n+1's prefix...
            assert a.keys[pos] in b.keys, a.paths[pos]
            # ...because the bytes up to it are a prefix of turn n+1's bytes.
            q = b.keys.index(a.keys[pos])
            assert _prefix_bytes(a, pos) == _prefix_bytes(b, q)


@PROPS
@given(gen.growing_conversations(min_turns=2, max_turns=6), st.booleans())
def test_each_turn_reads_what_the_last_one_cached(
    requests: list[dict[str, Any]], churn: bool
) -> None:
    if churn:
        requests = _with_clock(requests)
    sent = [tc.pipe(r, *PIPELINE) for r in requests]
    model = cachesim.CacheModel(min_cacheable=0)
    results = [model.call(r, ts=60.0 * k) for k, r in enumerate(sent)]
    for prev, cur in pairwise(results):
        if _images(prev.layout) != _images(cur.layout):
            assert cur.miss is not None and cur.miss.path == "images"
            continue
        cached = max((p for p, _ in prev.layout.breakpoints), default=-1)
        expected = prev.layout.cum[cached] if cached >= 0 else 0
        # Stripped thinking (older models) leaves the prompt: count what is still there.
        assert cur.usage["cache_read_input_tokens"] >= expected - _stripped(prev, cur), cur.miss
        assert cur.miss is None


def _stripped(prev: cachesim.CacheCall, cur: cachesim.CacheCall) -> int:
    if keeps_prior_thinking(prev.layout.model):
        return 0
    old = {
        p: n
        for p, n, c in zip(prev.layout.paths, prev.layout.tokens, prev.layout.content, strict=True)
        if isinstance(c, dict) and c.get("type") in ("thinking", "redacted_thinking")
    }
    return sum(n for p, n in old.items() if p not in cur.layout.paths)


def test_without_order_a_clock_in_the_system_misses_every_turn() -> None:
    requests = _with_clock([big_request(turns=k) for k in range(1, 5)], shuffle=False)
    plain = cachesim.calls([tc.pipe(r, tc.cache()) for r in requests])
    assert all(c.usage["cache_read_input_tokens"] <= plain[0].layout.cum[2] for c in plain[1:])
    assert all(c.miss is not None and c.miss.type == "system_changed" for c in plain[1:])
    assert all(c.miss is not None and c.miss.path == "system[0]" for c in plain[1:])
    ordered = cachesim.calls([tc.pipe(r, tc.order(), tc.cache()) for r in requests])
    assert all(c.miss is None for c in ordered[1:])
    for prev, cur in pairwise(ordered):
        assert (
            cur.usage["cache_read_input_tokens"] >= prev.layout.cum[prev.layout.breakpoints[-1][0]]
        )


def _parallel_turn(req: dict[str, Any], n: int) -> dict[str, Any]:
    calls = [{"type": "tool_use", "id": f"q{i}", "name": "tool_0", "input": {}} for i in range(n)]
    results = [
        {"type": "tool_result", "tool_use_id": f"q{i}", "content": "r " * 30} for i in range(n)
    ]
    return {
        **req,
        "messages": [
            *req["messages"],
            {"role": "assistant", "content": calls},
            {"role": "user", "content": results},
        ],
    }


def test_a_very_wide_turn_needs_one_bridge_and_keeps_the_stable_breakpoints() -> None:
    """A turn of 25 parallel calls adds 50 blocks. A bridge within 20 blocks of the previous
    end reads all the previous call cached; a second one would read nothing more (the lookback
    finds entries earlier calls wrote), so the 4th slot goes to the tools, as the cache
    model's prices decide."""
    prev = big_request(n_tools=1)
    cur = _parallel_turn(prev, 25)
    out = tc.cache()(cur)
    lay = cachesim.layout(out)
    marks = [p for p, _ in lay.breakpoints]
    start = lay.position_of("messages[0].content")
    chain = [start, *(p for p in marks if p > start)]
    assert len(chain) == 3  # the previous end, one bridge, the rolling breakpoint
    assert 0 < chain[1] - chain[0] < cachesim.LOOKBACK
    assert placed(out)[:2] == ["tools[0]", "system[0]"]
    sim = cachesim.calls([tc.cache()(prev), out])
    assert sim[1].miss is None
    assert sim[1].usage["cache_read_input_tokens"] == sim[0].layout.cum[-1]


def test_when_the_chain_does_not_fit_part_of_it_still_carries_the_read() -> None:
    """With the tools and system already marked by the caller, two slots are left: a chain
    that needs three breakpoints does not fit. Its first bridge still reads the previous
    entry, and the cache model prices that plan below the rolling breakpoint alone."""
    prev = normalize(big_request())
    prev["tools"][-1]["cache_control"] = EC
    prev["system"][-1]["cache_control"] = EC
    cur = _parallel_turn(prev, 25)
    out = tc.cache()(cur)
    assert len(cache_markers(out)) == 4
    assert placed(out)[-1] == "messages[2].content[24]"
    tc.validate(out)
    previous = tc.cache()(prev)
    partial = cachesim.calls([previous, out])[1].usage
    rolling_only = cachesim.calls([previous, tc.cache(bridge=False)(cur)])[1].usage
    assert partial["cache_read_input_tokens"] > rolling_only["cache_read_input_tokens"]
    assert partial["input_tokens"] == rolling_only["input_tokens"] == 0


def test_bridges_displace_stable_breakpoints_only_when_cheaper() -> None:
    """Two slots are free (the caller marked two tools): the bridge chain for a wide turn fits
    only by dropping cache()'s own system breakpoint. The simulated cost decides; the plan
    it picks is never more expensive than the other over the previous call and this one."""
    prev = normalize(big_request(n_tools=3))
    prev["tools"][0]["cache_control"] = EC
    prev["tools"][1]["cache_control"] = EC
    cur = _parallel_turn(prev, 12)  # 24 blocks: one bridge needed
    out = tc.cache()(cur)
    tc.validate(out)
    alternative = tc.cache(bridge=False)(cur)
    previous = tc.cache(bridge=False)(prev)

    def cost(request: dict[str, Any]) -> float:
        model = cachesim.CacheModel()
        model.call(previous)
        u = model.call(request).usage
        return (
            u["input_tokens"]
            + 1.25 * u["cache_creation_input_tokens"]
            + 0.1 * u["cache_read_input_tokens"]
        )

    assert cost(out) <= cost(alternative)


_TTL = st.sampled_from([None, EC, EC_1H])


@settings(max_examples=40)
@given(gen.requests(), st.data())
def test_any_user_markers_give_a_valid_request_or_a_named_error(
    request: dict[str, Any], data: st.DataObject
) -> None:
    """Markers anywhere, any TTL, top-level too: cache() returns a valid request with at most
    4 breakpoints, or (only when the caller's own tools/system/system-message/top-level
    markers break the API's rules) a ValidationError naming one."""
    request = copy.deepcopy(request)
    own: list[str] = []
    for tool in request.get("tools", []):
        if (m := data.draw(_TTL)) is not None:
            tool["cache_control"] = m
            own.append(m.get("ttl", "5m"))
    if isinstance(request.get("system"), list):
        for block in request["system"]:
            if (m := data.draw(_TTL)) is not None:
                block["cache_control"] = m
                own.append(m.get("ttl", "5m"))
    for message in request["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                if (m := data.draw(_TTL)) is not None:
                    block["cache_control"] = m  # thinking blocks too: cache() must drop it
                    if message["role"] == "system":  # kept as sent, so it counts
                        own.append(m.get("ttl", "5m"))
                inner = block.get("content") if block["type"] == "tool_result" else None
                if isinstance(inner, list) and inner and (m := data.draw(_TTL)) is not None:
                    inner[-1]["cache_control"] = m
    top = data.draw(_TTL)
    if top is not None:
        request["cache_control"] = top
    snapshot = copy.deepcopy(request)
    try:
        out = tc.pipe(request, tc.order(), tc.cache(min_tokens=0))
    except ValidationError as err:
        assert "cache_control" in err.path
        bad_order = "5m" in own and "1h" in own[own.index("5m") :]
        assert len(own) + (top is not None) > 4 or bad_order or "automatic" in str(err)
        return
    finally:
        assert request == snapshot
    tc.validate(out)
    assert len(cache_markers(out)) <= 4
    assert tc.pipe(out, tc.order(), tc.cache(min_tokens=0)) == out


# ---------------------------------------------------------------------------- automatic caching


def _clocked(request: dict[str, Any], k: int) -> dict[str, Any]:
    """``request`` asking for automatic caching, its system prompt ending with a clock line that
    changes every turn (order() moves it to the end of the newest user message)."""
    system = request.get("system") or ""
    text = system if isinstance(system, str) else "\n".join(b["text"] for b in system)
    return {
        **request,
        "system": f"{text}\nCurrent time: 2026-01-01T10:00:{k:02d}Z",
        "cache_control": EC,
    }


def test_a_callers_automatic_caching_still_reads_the_history_past_a_moved_line() -> None:
    # The automatic breakpoint lands on the moved line, which the next request sends elsewhere:
    # cache() adds its rolling breakpoint before the line, so each turn reads the one before.
    sent, plain = [], []
    for k, turns in enumerate((3, 4, 5, 6)):
        request = _clocked(big_request(turns=turns), k)
        out = tc.pipe(request, tc.order(), tc.cache())
        tc.validate(out)
        assert out["cache_control"] == EC  # the caller's own, kept
        assert tc.cache()(out) == out
        sent.append(out)
        plain.append(
            tc.pipe(
                {k: v for k, v in request.items() if k != "cache_control"}, tc.order(), tc.cache()
            )
        )
    with_auto = cachesim.simulate(sent)
    without = cachesim.simulate(plain)
    for k in range(1, len(sent)):
        read = with_auto[k]["cache_read_input_tokens"]
        assert read == without[k]["cache_read_input_tokens"] > 0
        assert (
            read > cachesim.layout(sent[k]).cum[cachesim.layout(sent[k]).sections.index("messages")]
        ), f"turn {k} read no message"


@settings(max_examples=40)
@given(
    messages=gen.conversations(min_turns=2, max_turns=6),
    tool_defs=gen.tools(min_size=1),
    system=gen.systems(),
)
def test_automatic_caching_with_a_moved_line_keeps_each_turns_entry_in_the_next(
    messages: list[Any], tool_defs: list[Any], system: Any
) -> None:
    ends = [i + 1 for i, m in enumerate(messages) if m["role"] == "user"]
    layouts = []
    for k, end in enumerate(ends):
        request: dict[str, Any] = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 64,
            "tools": tool_defs,
            "messages": messages[:end],
        }
        if system is not None:
            request["system"] = system
        request = _clocked(request, k)
        before = copy.deepcopy(request)
        out = tc.pipe(request, tc.order(), tc.cache())
        assert request == before  # pure
        tc.validate(out)
        assert tc.pipe(out, tc.order(), tc.cache()) == out  # idempotent
        lay = cachesim.layout(out)
        moved = [p for p, block in enumerate(lay.content) if is_dynamic_block(block)]
        ours = [p for p, _ in lay.breakpoints if lay.sections[p] == "messages"]
        if moved:
            # A breakpoint of ours before the moved line, on the last block that may carry one.
            eligible = [
                p for p in range(moved[0]) if lay.sections[p] == "messages" and lay.tokens[p] > 0
            ]
            assert not eligible or max(p for p in ours if p < moved[0]) >= 0
        layouts.append((lay, [p for p in ours if not moved or p < moved[0]]))
    for (lay, entries), (after, _) in pairwise(layouts):
        # The entry the history's breakpoint wrote is in the next turn's prefix (the automatic
        # one, on the moved line, is never read). An image added invalidates the messages.
        if entries and dict(lay.seeds)["images"] == dict(after.seeds)["images"]:
            assert lay.keys[max(entries)] in after.keys, "the history's entry is not read next"


def test_the_tools_breakpoint_goes_on_the_last_rendered_tool_never_a_deferred_one() -> None:
    schema = {"type": "object", "properties": {}}
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "tools": [
            {"name": "bash", "description": "Run. " * 500, "input_schema": schema},
            {
                "name": "zz_later",
                "description": "Deferred.",
                "input_schema": schema,
                "defer_loading": True,
            },
        ],
        "system": "Be brief. " * 500,
        "messages": [{"role": "user", "content": "hi " * 500}],
    }
    out = tc.pipe(request, tc.order(), tc.cache(min_tokens=0))
    assert "cache_control" in out["tools"][0]
    assert "cache_control" not in out["tools"][1]
    assert out["tools"][1] == request["tools"][1]


def test_a_callers_marker_on_a_deferred_tool_keeps_its_place_in_the_ttl_order() -> None:
    # A deferred tool is not laid out, but its marker still sits where the tools array has it:
    # with a 1h marker on one deferred tool and a 5m one on a later one, ours stays 5m (raised
    # to 1h it would come after that 5m marker, which the API refuses).
    schema = {"type": "object", "properties": {}}
    hour = {"type": "ephemeral", "ttl": "1h"}
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 8,
        "tools": [
            {"name": "grep", "input_schema": schema},
            {
                "name": "later_a",
                "input_schema": schema,
                "defer_loading": True,
                "cache_control": hour,
            },
            {"name": "read_file", "input_schema": schema},
            {
                "name": "later_b",
                "input_schema": schema,
                "defer_loading": True,
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "messages": [{"role": "user", "content": "Please run the tests. " * 300}],
    }
    out = tc.cache(min_tokens=0)(request)
    tc.validate(out)
    assert [out["tools"][k] for k in (1, 3)] == [request["tools"][k] for k in (1, 3)]
    assert out["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
