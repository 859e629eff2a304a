"""tidyctx.cachesim: one test per rule of Anthropic's prompt caching.

Each docstring states the rule it checks, keyed by where it is documented: PC, the prompt-caching
page (https://docs.claude.com/en/docs/build-with-claude/prompt-caching); CD, the API's cache
diagnostics (``cache_miss_reason``); TC, the token-counting page
(https://docs.claude.com/en/docs/build-with-claude/token-counting). Token counts are exact: most
tests count with :class:`CharCounter` (one token per character of text, fixed counts for other
blocks), whose numbers can be added up by hand; the tests of minimum lengths and thinking use
the real :class:`LocalCounter`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from builders import PNG
from tidyctx import pricing
from tidyctx._request import ValidationError, iter_blocks, to_request, validate
from tidyctx.cachesim import LOOKBACK, CacheCall, CacheModel, calls, layout, simulate
from tidyctx.tokens import MESSAGE_OVERHEAD, LocalCounter

MODEL = "claude-sonnet-4-5"  # minimum cacheable length 1,024; drops earlier thinking
EPH: dict[str, Any] = {"type": "ephemeral"}
EPH_1H: dict[str, Any] = {"type": "ephemeral", "ttl": "1h"}
# The tool-use system prompt of Claude 4.x models with tool_choice auto/none, from the pricing
# page (https://docs.claude.com/en/docs/about-claude/pricing).
TOOL_PROMPT = 346
TOOL_TOKENS = 50
TOOL_USE_TOKENS = 10
TOOL_RESULT_TOKENS = 10
IMAGE_TOKENS = 100


class CharCounter(LocalCounter):
    """One token per character of text or thinking; fixed counts for other blocks.

    A tool definition is TOOL_TOKENS, a tool_use TOOL_USE_TOKENS, a tool_result
    TOOL_RESULT_TOKENS plus its string content, an image IMAGE_TOKENS.
    """

    @staticmethod
    def tokens(section: str, block: Any) -> int:
        if section == "tools":
            return TOOL_TOKENS
        if isinstance(block, str):
            return len(block)
        kind = block.get("type")
        if kind == "text":
            return len(block["text"])
        if kind == "thinking":
            return len(block["thinking"])
        if kind == "tool_use":
            return TOOL_USE_TOKENS
        if kind == "tool_result":
            content = block.get("content")
            return TOOL_RESULT_TOKENS + (len(content) if isinstance(content, str) else 0)
        if kind == "image":
            return IMAGE_TOKENS
        raise AssertionError(f"CharCounter does not count {kind!r} blocks")

    def count_blocks(self, request: Any) -> list[tuple[str, int]]:
        req = request if isinstance(request, Mapping) else to_request(request)[0]
        return [(ref.path, self.tokens(ref.section, ref.block)) for ref in iter_blocks(req)]

    def count_request(self, request: Any) -> int:
        return sum(n for _, n in self.count_blocks(request)) + self.overhead(request)


def cache(**options: Any) -> CacheModel:
    return CacheModel(counter=CharCounter(), **options)


def text(n: int, fill: str = "x", **extra: Any) -> dict[str, Any]:
    """A text block of exactly ``n`` CharCounter tokens."""
    return {"type": "text", "text": fill * n, **extra}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def request(
    messages: list[dict[str, Any]], system: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "messages": messages, **extra}
    if system is not None:
        body["system"] = system
    return body


def msg_tokens(*blocks: dict[str, Any]) -> int:
    """CharCounter tokens of one message with these blocks, role markers included."""
    return sum(CharCounter.tokens("messages", b) for b in blocks) + MESSAGE_OVERHEAD


def tool_use(i: int) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{i:04d}", "name": "lookup", "input": {"i": i}}


def tool_result(i: int, **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": f"toolu_{i:04d}", "content": "ok", **extra}


def check(
    call: CacheCall, *, total: int, read: int = 0, write_5m: int = 0, write_1h: int = 0
) -> None:
    """The whole usage, exactly; the parts add up to ``total`` (PC: usage line)."""
    assert call.usage == {
        "input_tokens": total - read - write_5m - write_1h,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write_5m,
            "ephemeral_1h_input_tokens": write_1h,
        },
        "output_tokens": 0,
    }
    assert call.input_total == call.layout.total == total


SYSTEM = 2000  # tokens of the system prompt in most tests: above every minimum used


def base(marker: dict[str, Any] | None = EPH, question: str = "what now?") -> dict[str, Any]:
    """A system prompt of SYSTEM tokens (marked) and one user question."""
    system = text(SYSTEM, "s", **({"cache_control": marker} if marker else {}))
    return request([user({"type": "text", "text": question})], [system])


# ---------------------------------------------------------------------------- identical prefix


def test_identical_request_reads_what_the_first_wrote() -> None:
    """PC: "an entry covers all blocks up to and including the marked one"; a hit needs an
    identical prefix (PC: "Any byte change misses")."""
    model = cache()
    req = base()
    total = SYSTEM + len("what now?") + MESSAGE_OVERHEAD
    first = model.call(req, 0)
    check(first, total=total, write_5m=SYSTEM)
    assert (first.read_to, first.written_to, first.miss) == (None, "system[0]", None)
    second = model.call(copy.deepcopy(req), 1)
    check(second, total=total, read=SYSTEM)
    assert (second.read_to, second.written_to, second.miss) == ("system[0]", None, None)


def test_one_byte_change_in_system_misses_with_system_changed() -> None:
    """PC: "Any byte change misses"; CD: cache_miss_reason.type ``system_changed``."""
    model = cache()
    before = "r" * 100 + "X" + "r" * 100
    system = [text(1000, "a"), {"type": "text", "text": before, "cache_control": EPH}]
    first = request([user(text(700, "q"))], system)
    second = copy.deepcopy(first)
    second["system"][1]["text"] = before.replace("X", "Y")
    total = 1000 + 201 + 700 + MESSAGE_OVERHEAD
    check(model.call(first, 0), total=total, write_5m=1201)
    missed = model.call(second, 1)
    check(missed, total=total, write_5m=1201)
    assert missed.miss is not None
    assert (missed.miss.type, missed.miss.path, missed.miss.cause) == (
        "system_changed",
        "system[1]",
        "changed bytes",
    )
    assert missed.miss.missed_tokens == 1201
    # 40 characters either side of the first differing byte of the block's canonical JSON.
    assert missed.miss.before == "…" + "r" * 40 + "X" + "r" * 39 + "…"
    assert missed.miss.after == "…" + "r" * 40 + "Y" + "r" * 39 + "…"


def tools_request(description: str = "Look a thing up.") -> dict[str, Any]:
    tools = [
        {"name": "search", "description": "Search.", "input_schema": {"type": "object"}},
        {"name": "lookup", "description": description, "input_schema": {"type": "object"}},
    ]
    return request(
        [user(text(20, "q", cache_control=EPH))],
        [text(SYSTEM, "s", cache_control=EPH)],
        tools=tools,
    )


TOOLS_PREFIX = 2 * TOOL_TOKENS + TOOL_PROMPT


def test_tool_change_misses_every_level() -> None:
    """PC: "Invalidation: tool definitions → all levels"; CD: ``tools_changed``."""
    model = cache()
    total = TOOLS_PREFIX + SYSTEM + 20 + MESSAGE_OVERHEAD
    check(model.call(tools_request(), 0), total=total, write_5m=total)
    changed = model.call(tools_request("Look a thing up!"), 1)
    check(changed, total=total, write_5m=total)  # not even the system prompt is read
    assert changed.miss is not None
    assert (changed.miss.type, changed.miss.path) == ("tools_changed", "tools[1]")
    assert changed.miss.missed_tokens == total
    assert (
        changed.miss.before
        == '{"description":"Look a thing up.","input_schema":{"type":"object"},"nam…'
    )
    assert (
        changed.miss.after
        == '{"description":"Look a thing up!","input_schema":{"type":"object"},"nam…'
    )


def test_history_edit_misses_from_the_edited_block() -> None:
    """CD: ``messages_changed`` (history edited, not appended); PC: "Any byte change misses".
    The system prompt before the edit is still read."""
    model = cache()
    messages = [
        user(text(10, "a"), text(10, "b")),
        assistant(text(30, "c")),
        user(text(40, "d", cache_control=EPH)),
    ]
    req = request(messages, [text(SYSTEM, "s", cache_control=EPH)])
    total = SYSTEM + 20 + 30 + 40 + 3 * MESSAGE_OVERHEAD
    check(model.call(req, 0), total=total, write_5m=total)
    edited = copy.deepcopy(req)
    edited["messages"][0]["content"][1]["text"] = "b" * 9 + "B"
    call = model.call(edited, 1)
    check(call, total=total, read=SYSTEM, write_5m=total - SYSTEM)
    assert call.miss is not None
    assert (call.miss.type, call.miss.path, call.miss.cause) == (
        "messages_changed",
        "messages[0].content[1]",
        "changed bytes",
    )
    assert call.miss.missed_tokens == total - SYSTEM
    assert (call.miss.before, call.miss.after) == (
        '{"text":"bbbbbbbbbb","type":"text"}',
        '{"text":"bbbbbbbbbB","type":"text"}',
    )


def test_a_different_model_has_its_own_cache() -> None:
    """PC: "Per model (CD)"; CD: ``model_changed`` (model/speed)."""
    model = cache()
    req = base()
    total = SYSTEM + len("what now?") + MESSAGE_OVERHEAD
    check(model.call(req, 0), total=total, write_5m=SYSTEM)
    other = model.call({**req, "model": "claude-sonnet-4-6"}, 1)
    check(other, total=total, write_5m=SYSTEM)
    assert other.miss is not None
    assert (other.miss.type, other.miss.path, other.miss.missed_tokens) == (
        "model_changed",
        "model",
        SYSTEM,
    )
    assert (other.miss.before, other.miss.after) == ("claude-sonnet-4-5", "claude-sonnet-4-6")
    check(model.call(req, 2), total=total, read=SYSTEM)  # the first model's entry is still there


# ---------------------------------------------------------------------------- breakpoints


def test_writes_happen_only_at_breakpoints() -> None:
    """PC: "writes happen only at breakpoints (hash of the prefix)"; Lookback: the API looks
    for an entry an earlier request *wrote* (it never caches stable content by itself)."""
    model = cache()
    messages = [
        user(text(10, "a")),
        assistant(text(30, "b")),
        user(text(40, "c", cache_control=EPH)),
    ]
    first = request(messages, [text(SYSTEM, "s")])
    total = SYSTEM + 10 + 30 + 40 + 3 * MESSAGE_OVERHEAD
    check(model.call(first, 0), total=total, write_5m=total)
    # Same system, first user and assistant turn; a different last turn. Nothing was written
    # at the shared blocks, so nothing is read.
    second = copy.deepcopy(first)
    second["messages"][2]["content"][0]["text"] = "C" * 40
    call = model.call(second, 1)
    check(call, total=total, write_5m=total)
    assert call.read_to is None
    # With a breakpoint on the assistant turn the shared prefix is written, then read.
    model = cache()
    first["messages"][1]["content"][0]["cache_control"] = EPH
    second["messages"][1]["content"][0]["cache_control"] = EPH
    shared = SYSTEM + 10 + 30 + 2 * MESSAGE_OVERHEAD
    check(model.call(first, 0), total=total, write_5m=total)
    call = model.call(second, 1)
    check(call, total=total, read=shared, write_5m=total - shared)
    assert (call.read_to, call.written_to) == ("messages[1].content[0]", "messages[2].content[0]")


def test_input_tokens_count_only_what_follows_the_last_breakpoint() -> None:
    """PC: "`input_tokens` (after last breakpoint only) + `cache_creation_input_tokens` +
    `cache_read_input_tokens` = total input"."""
    model = cache()
    req = request(
        [user(text(20, "a", cache_control=EPH), text(500, "b"))],
        [text(SYSTEM, "s")],
    )
    call = model.call(req, 0)
    check(call, total=SYSTEM + 520 + MESSAGE_OVERHEAD, write_5m=SYSTEM + 20 + MESSAGE_OVERHEAD)
    assert call.usage["input_tokens"] == 500


def test_top_level_cache_control_takes_one_of_the_four_slots() -> None:
    """PC: "max **4** per request"; automatic caching "using one of the 4 slots; **400** if it
    has another TTL or 4 explicit breakpoints exist"."""
    system = [text(600, str(i), cache_control=EPH) for i in range(4)]
    req = request([user(text(10, "q"))], system, cache_control=EPH)
    with pytest.raises(ValidationError, match="automatic caching needs a free breakpoint slot"):
        layout(req, CharCounter())
    with pytest.raises(ValidationError, match="automatic caching needs a free breakpoint slot"):
        cache().call(req, 0)
    with pytest.raises(ValidationError, match="5 cache_control breakpoints"):
        validate(req)
    del system[3]["cache_control"]
    assert layout(req, CharCounter()).breakpoints == ((0, "5m"), (1, "5m"), (2, "5m"), (4, "5m"))


# ---------------------------------------------------------------------------- minimum length


def sized(counter: LocalCounter, tokens: int) -> str:
    """A text of exactly ``tokens`` tokens for ``counter`` (cl100k "a a a ..." scaled)."""
    k = round(tokens / counter.factor())
    for n in (k - 1, k, k + 1):
        candidate = "a" + " a" * (n - 1)
        if counter.count_text(candidate) == tokens:
            return candidate
    raise AssertionError(f"no text of exactly {tokens} tokens")


@pytest.mark.parametrize(
    ("model", "minimum"), [("claude-sonnet-4-5", 1024), ("claude-haiku-4-5", 4096)]
)
def test_minimum_cacheable_length_per_model(model: str, minimum: int) -> None:
    """PC: "Minimum cacheable prefix (below it: no error, not cached, both cache fields 0).
    ... 1,024 ... Sonnet ... 4.5 ...; 4,096 Opus 4.6/4.5, Haiku 4.5"."""
    assert pricing.lookup(model).min_cacheable == minimum
    counter = LocalCounter(model)
    question = {"type": "text", "text": "what now?"}
    tail = counter.count_text("what now?") + MESSAGE_OVERHEAD

    def req(system_tokens: int) -> dict[str, Any]:
        system = {"type": "text", "text": sized(counter, system_tokens), "cache_control": EPH}
        return {"model": model, "max_tokens": 8, "system": [system], "messages": [user(question)]}

    under = CacheModel()  # the model's own minimum and LocalCounter
    for ts in (0, 1):
        call = under.call(req(minimum - 1), ts)
        check(call, total=minimum - 1 + tail)
        assert (call.read_to, call.written_to) == (None, None)
    at = CacheModel()
    check(at.call(req(minimum), 0), total=minimum + tail, write_5m=minimum)
    check(at.call(req(minimum), 1), total=minimum + tail, read=minimum)


def test_miss_cause_under_the_minimum_length() -> None:
    """PC: "Minimum cacheable prefix (below it: no error, not cached, both cache fields 0)";
    the miss says so when the only breakpoint moved onto a prefix under the minimum."""
    model = CacheModel(counter=CharCounter(), min_cacheable=1024)
    long = request([user(text(1000, "q", cache_control=EPH))], [text(900, "s")])
    total = 900 + 1000 + MESSAGE_OVERHEAD
    check(model.call(long, 0), total=total, write_5m=total)
    short = request([user(text(1000, "q"))], [text(900, "s", cache_control=EPH)])
    call = model.call(short, 1)
    check(call, total=total)
    assert call.miss is not None
    assert (call.miss.type, call.miss.path, call.miss.missed_tokens) == (None, None, total)
    assert call.miss.cause == "under the minimum length (900 < 1,024 tokens)"


# ---------------------------------------------------------------------------- lookback


def parallel_turn(start: int, calls_: int, text_after: bool) -> list[dict[str, Any]]:
    """An assistant message with ``calls_`` tool_use blocks and the user message answering them
    (plus a text block if ``text_after``); the last block carries the breakpoint."""
    results = [tool_result(start + i) for i in range(calls_)]
    if text_after:
        results.append(text(4, "n"))
    results[-1] = {**results[-1], "cache_control": EPH}
    return [assistant(*(tool_use(start + i) for i in range(calls_))), user(*results)]


def without_markers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(messages)
    for m in out:
        for b in m["content"]:
            b.pop("cache_control", None)
    return out


def turn_tokens(turn: list[dict[str, Any]]) -> int:
    return sum(msg_tokens(*m["content"]) for m in turn)


def test_lookback_reads_the_previous_turn_when_fewer_than_20_blocks_were_added() -> None:
    """PC: "Lookback: from each breakpoint the API walks back one block at a time, **20
    positions** max (breakpoint included), looking for an entry an earlier request *wrote*"."""
    model = cache()
    system = [text(SYSTEM, "s", cache_control=EPH)]
    history = [user(text(5, "u", cache_control=EPH))]
    prefix = SYSTEM + 5 + MESSAGE_OVERHEAD
    check(model.call(request(history, system), 0), total=prefix, write_5m=prefix)
    for turn_no in range(3):
        turn = parallel_turn(100 * turn_no, 9, text_after=True)  # 9 + 10 = 19 blocks
        assert sum(len(m["content"]) for m in turn) == LOOKBACK - 1
        history = without_markers(history) + turn
        added = turn_tokens(turn)
        call = model.call(request(history, system), 10 + turn_no)
        check(call, total=prefix + added, read=prefix, write_5m=added)
        assert call.miss is None
        prefix += added


def test_a_turn_of_20_blocks_is_beyond_the_lookback_unless_a_second_breakpoint() -> None:
    """PC: "20 positions max (breakpoint included) ... If a turn adds ≥20 blocks, add a second
    breakpoint"."""
    system = [text(SYSTEM, "s", cache_control=EPH)]
    history = [user(text(5, "u", cache_control=EPH))]
    prefix = SYSTEM + 5 + MESSAGE_OVERHEAD
    turn = parallel_turn(0, 10, text_after=False)  # 10 tool_use + 10 tool_result blocks
    assert sum(len(m["content"]) for m in turn) == LOOKBACK
    grown = request(without_markers(history) + turn, system)
    added = turn_tokens(turn)

    model = cache()
    check(model.call(request(history, system), 0), total=prefix, write_5m=prefix)
    call = model.call(grown, 1)
    check(call, total=prefix + added, read=SYSTEM, write_5m=prefix + added - SYSTEM)
    assert call.miss is not None
    assert call.miss.type is None and call.miss.path is None
    assert call.miss.cause.startswith("beyond the lookback")
    assert call.miss.cause == (
        "beyond the lookback (the nearest breakpoint is 20 blocks after the cached prefix; "
        "the API looks back 20)"
    )
    assert call.miss.missed_tokens == prefix - SYSTEM

    # A second breakpoint on the first tool_result (11 positions after the cached prefix).
    fixed = copy.deepcopy(grown)
    fixed["messages"][2]["content"][0]["cache_control"] = EPH
    model = cache()
    check(model.call(request(history, system), 0), total=prefix, write_5m=prefix)
    call = model.call(fixed, 1)
    check(call, total=prefix + added, read=prefix, write_5m=added)
    assert call.miss is None


# ---------------------------------------------------------------------------- TTL


def test_ttl_5m_hits_at_299_s_and_expires_at_301_s() -> None:
    """PC: "TTL 5 min"; TTL_SECONDS["5m"] == 300."""
    total = SYSTEM + len("what now?") + MESSAGE_OVERHEAD
    model = cache()
    check(model.call(base(), 1000), total=total, write_5m=SYSTEM)
    check(model.call(base(), 1299), total=total, read=SYSTEM)
    model = cache()
    check(model.call(base(), 1000), total=total, write_5m=SYSTEM)
    call = model.call(base(), 1301)
    check(call, total=total, write_5m=SYSTEM)
    assert call.miss is not None
    assert (call.miss.type, call.miss.cause, call.miss.missed_tokens) == (
        None,
        "ttl expired after 301 s",
        SYSTEM,
    )


def test_ttl_is_refreshed_on_each_hit() -> None:
    """PC: "TTL 5 min, refreshed free on each hit"."""
    model = cache()
    total = SYSTEM + len("what now?") + MESSAGE_OVERHEAD
    check(model.call(base(), 0), total=total, write_5m=SYSTEM)
    for ts in (200, 400, 600):
        check(model.call(base(), ts), total=total, read=SYSTEM)


def test_ttl_1h_survives_3000_s() -> None:
    """PC: "1h costs 2x to write" (`ttl: "1h"`: an hour, TTL_SECONDS["1h"] == 3600)."""
    model = cache()
    total = SYSTEM + len("what now?") + MESSAGE_OVERHEAD
    check(model.call(base(EPH_1H), 0), total=total, write_1h=SYSTEM)
    check(model.call(base(EPH_1H), 3000), total=total, read=SYSTEM)
    call = model.call(base(EPH_1H), 3000 + 3601)
    check(call, total=total, write_1h=SYSTEM)
    assert call.miss is not None and call.miss.cause == "ttl expired after 3,601 s"


def test_a_hit_on_a_longer_prefix_keeps_the_shorter_entry_alive() -> None:
    """PC: "refreshed free on each hit"; cachesim (documented as observed in the recorded Claude
    Code runs): a hit reads the whole prefix, so the system prompt's own entry is refreshed by
    hits further down."""
    model = cache()
    conversation = request(
        [user(text(50, "a", cache_control=EPH))], [text(SYSTEM, "s", cache_control=EPH)]
    )
    total = SYSTEM + 50 + MESSAGE_OVERHEAD
    check(model.call(conversation, 0), total=total, write_5m=total)
    check(model.call(conversation, 250), total=total, read=total)
    # At 500 s the system entry written at 0 s would have expired without the refresh at 250 s.
    other = request(
        [user(text(60, "b", cache_control=EPH))], [text(SYSTEM, "s", cache_control=EPH)]
    )
    other_total = SYSTEM + 60 + MESSAGE_OVERHEAD
    call = model.call(other, 500)
    check(call, total=other_total, read=SYSTEM, write_5m=60 + MESSAGE_OVERHEAD)
    assert call.read_to == "system[0]"


def test_mixed_ttls_bill_read_then_1h_then_5m() -> None:
    """PC: "Mixed TTLs: 1h markers must precede 5m ones; billed as read to A (last hit), 1h
    write A→B (last 1h marker), 5m write B→C (last marker)"."""
    system = [text(SYSTEM, "s", cache_control=EPH_1H)]
    first = request([user(text(10, "a"))], system)
    model = cache()
    total1 = SYSTEM + 10 + MESSAGE_OVERHEAD
    check(model.call(first, 0), total=total1, write_1h=SYSTEM)  # A written (1h)

    messages = [
        user(text(10, "a", cache_control=EPH_1H)),  # B
        assistant(text(30, "b")),
        user(text(40, "c", cache_control=EPH), text(7, "d")),  # C, then 7 uncached tokens
    ]
    a = SYSTEM
    b = a + 10 + MESSAGE_OVERHEAD
    c = b + 30 + MESSAGE_OVERHEAD + 40 + MESSAGE_OVERHEAD
    call = model.call(request(messages, system), 1)
    check(call, total=c + 7, read=a, write_1h=b - a, write_5m=c - b)

    # Both kinds written at once, nothing read: 1h up to the 1h marker, 5m the rest.
    call = cache().call(request(messages, system), 0)
    check(call, total=c + 7, write_1h=b, write_5m=c - b)


# ---------------------------------------------------------------------------- automatic caching


def test_automatic_caching_marks_the_last_block() -> None:
    """PC: "Automatic caching: top-level `cache_control` marks the last cacheable block"."""
    req = request(
        [user(text(10, "a")), assistant(text(30, "b")), user(text(40, "c"), text(5, "d"))],
        [text(SYSTEM, "s")],
        cache_control=EPH_1H,
    )
    lay = layout(req, CharCounter())
    assert lay.paths[-1] == "messages[2].content[1]"
    assert lay.breakpoints == ((len(lay.paths) - 1, "1h"),)
    total = SYSTEM + 10 + 30 + 45 + 3 * MESSAGE_OVERHEAD
    check(cache().call(req, 0), total=total, write_1h=total)


def test_automatic_caching_moves_forward_each_turn() -> None:
    """PC: automatic caching "marks the last cacheable block (moves forward each turn)", so a
    growing conversation reads the previous turn's prefix."""
    model = cache()
    messages = [user(text(10, "a"))]
    prefix = SYSTEM + 10 + MESSAGE_OVERHEAD
    check(
        model.call(request(messages, [text(SYSTEM, "s")], cache_control=EPH), 0),
        total=prefix,
        write_5m=prefix,
    )
    for turn in range(1, 4):
        messages = [*messages, assistant(text(20 + turn, "b")), user(text(30 + turn, "c"))]
        added = 20 + turn + 30 + turn + 2 * MESSAGE_OVERHEAD
        call = model.call(request(messages, [text(SYSTEM, "s")], cache_control=EPH), turn)
        check(call, total=prefix + added, read=prefix, write_5m=added)
        assert call.written_to == f"messages[{2 * turn}].content[0]"
        prefix += added


def test_automatic_caching_is_a_no_op_on_a_block_with_the_same_marker() -> None:
    """PC: automatic caching is a "no-op if that block has the same TTL marker"."""
    req = request([user(text(10, "a", cache_control=EPH))], [text(SYSTEM, "s")], cache_control=EPH)
    lay = layout(req, CharCounter())
    assert lay.breakpoints == ((1, "5m"),)


def test_automatic_caching_on_a_block_with_another_ttl_is_rejected() -> None:
    """PC: automatic caching gets a "**400** if it has another TTL"."""
    req = request(
        [user(text(10, "a", cache_control=EPH))], [text(SYSTEM, "s")], cache_control=EPH_1H
    )
    with pytest.raises(ValidationError, match="already has a 5m marker"):
        layout(req, CharCounter())


# ---------------------------------------------------------------------------- invalidation


def invalidation_pair(**change: Any) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """A request with tools, system and messages (all marked) and a copy with ``change``."""
    req = tools_request()
    req["tool_choice"] = {"type": "auto"}
    req["messages"] = [
        user(text(10, "a")),
        assistant(text(30, "b")),
        user(text(40, "c", cache_control=EPH)),
    ]
    total = TOOLS_PREFIX + SYSTEM + 80 + 3 * MESSAGE_OVERHEAD
    return req, {**copy.deepcopy(req), **change}, TOOLS_PREFIX + SYSTEM, total


@pytest.mark.parametrize(
    ("setting", "value"),
    [("tool_choice", {"type": "none"}), ("thinking", {"type": "enabled", "budget_tokens": 1024})],
)
def test_tool_choice_or_thinking_change_invalidates_the_messages(setting: str, value: Any) -> None:
    """PC: "Invalidation: ... `tool_choice`, any image added/removed, thinking settings →
    messages"; CD: ``unavailable`` (e.g. `tool_choice`, `thinking` ... changed)."""
    req, changed, kept, total = invalidation_pair(**{setting: value})
    model = cache()
    check(model.call(req, 0), total=total, write_5m=total)
    call = model.call(changed, 1)
    check(call, total=total, read=kept, write_5m=total - kept)
    assert call.read_to == "system[0]"
    assert call.miss is not None
    assert (call.miss.type, call.miss.path, call.miss.cause) == (
        "unavailable",
        setting,
        f"{setting} changed",
    )
    assert call.miss.missed_tokens == total - kept


def test_adding_an_image_anywhere_invalidates_the_messages() -> None:
    """PC: "Invalidation: ... any image added/removed ... → messages"."""
    req, _, kept, total = invalidation_pair()
    model = cache()
    check(model.call(req, 0), total=total, write_5m=total)
    grown = copy.deepcopy(req)
    grown["messages"][2]["content"][0].pop("cache_control")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    grown["messages"] += [assistant(text(5, "e")), user(image, text(6, "f", cache_control=EPH))]
    added = 5 + IMAGE_TOKENS + 6 + 2 * MESSAGE_OVERHEAD
    call = model.call(grown, 1)
    # Appended, not edited: without the image the previous prefix would be read in full.
    check(call, total=total + added, read=kept, write_5m=total + added - kept)
    assert call.miss is not None
    assert (call.miss.type, call.miss.path, call.miss.missed_tokens) == (
        "messages_changed",
        "images",
        total - kept,
    )
    assert (call.miss.before, call.miss.after) == ("0 images", "1 images")


# ---------------------------------------------------------------------------- thinking


THINKING: dict[str, Any] = {
    "type": "thinking",
    "thinking": "Let me think about it. " * 40,
    "signature": "sig",
}


def tool_loop(model: str, system: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A tool call answered (thinking in the current assistant turn), then a new user turn."""
    first: dict[str, Any] = {
        "model": model,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "system": [{"type": "text", "text": system}],
        "messages": [
            user({"type": "text", "text": "Check the weather."}),
            assistant(THINKING, tool_use(1)),
            user(tool_result(1, cache_control=EPH)),
        ],
    }
    second = copy.deepcopy(first)
    second["messages"][2]["content"][0].pop("cache_control")
    second["messages"] += [
        assistant({"type": "text", "text": "It is sunny."}),
        user({"type": "text", "text": "Thanks. And tomorrow?", "cache_control": EPH}),
    ]
    return first, second


def test_dropped_thinking_counts_zero_and_keeps_the_prefix() -> None:
    """PC: "A non-tool-result user turn strips earlier thinking ... on older Opus/Sonnet and
    all Haiku"; TC: "Thinking blocks from previous assistant turns are ignored and do not count
    toward your input tokens". cachesim: the prefix still reads (observed on Sonnet 4.5)."""
    model = "claude-sonnet-4-5"
    counter = LocalCounter(model)
    first, second = tool_loop(model, sized(counter, 1500))
    thinking = counter.count_block(THINKING)
    assert thinking > 0
    sim = CacheModel()
    written = counter.count_request(first)  # the breakpoint is on the last block
    check(sim.call(first, 0), total=written, write_5m=written)
    total = counter.count_request(second)
    stripped = copy.deepcopy(second)
    del stripped["messages"][1]["content"][0]
    assert total == counter.count_request(stripped)  # the old thinking counts 0
    call = sim.call(second, 1)
    assert "messages[1].content[0]" not in call.layout.paths
    check(call, total=total, read=written - thinking, write_5m=total - (written - thinking))


def test_dropped_thinking_is_not_reported_as_a_miss() -> None:
    """PC: the API strips earlier thinking itself; CD: ``messages_changed`` means "history
    edited, not appended", and here nothing was edited."""
    model = "claude-sonnet-4-5"
    first, second = tool_loop(model, sized(LocalCounter(model), 1500))
    sim = CacheModel()
    sim.call(first, 0)
    assert sim.call(second, 1).miss is None


def test_kept_thinking_stays_in_the_prefix_on_opus_4_6() -> None:
    """PC: thinking is stripped "not on Opus 4.5+/Sonnet 4.6+"; PC: thinking blocks are
    "cached only inside a prefix, counted as input when read"."""
    model = "claude-opus-4-6"
    counter = LocalCounter(model)
    first, second = tool_loop(model, sized(counter, 4500))
    thinking = counter.count_block(THINKING)
    sim = CacheModel()
    written = counter.count_request(first)
    check(sim.call(first, 0), total=written, write_5m=written)
    total = counter.count_request(second)
    stripped = copy.deepcopy(second)
    del stripped["messages"][1]["content"][0]
    assert total == counter.count_request(stripped) + thinking
    call = sim.call(second, 1)
    assert "messages[1].content[0]" in call.layout.paths
    check(call, total=total, read=written, write_5m=total - written)


def test_current_turn_thinking_is_not_read_from_an_entry_that_lacks_it() -> None:
    """PC: "an entry covers all blocks up to and including the marked one" and thinking is
    "cached only inside a prefix": an entry written before the thinking existed cannot hold it,
    so a tool-use loop on Sonnet 4.5 reads exactly what the previous call wrote."""
    model = "claude-sonnet-4-5"
    counter = LocalCounter(model)
    system = sized(counter, 1500)
    first: dict[str, Any] = {
        "model": model,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "system": [{"type": "text", "text": system}],
        "messages": [user({"type": "text", "text": "Check the weather.", "cache_control": EPH})],
    }
    second = copy.deepcopy(first)
    second["messages"][0]["content"][0].pop("cache_control")
    second["messages"] += [
        assistant(THINKING, tool_use(1)),
        user(tool_result(1, cache_control=EPH)),
    ]
    sim = CacheModel()
    written = counter.count_request(first)
    check(sim.call(first, 0), total=written, write_5m=written)
    total = counter.count_request(second)
    check(sim.call(second, 1), total=total, read=written, write_5m=total - written)


def test_layout_total_matches_the_counter_when_a_message_is_all_dropped_thinking() -> None:
    """PC: "`input_tokens` ... + `cache_creation_input_tokens` + `cache_read_input_tokens` =
    total input": the total must be the counted one."""
    req = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8,
        "messages": [
            user({"type": "text", "text": "q"}),
            assistant(THINKING),
            user({"type": "text", "text": "next"}),
        ],
    }
    validate(req, strict=False)
    assert layout(req).total == LocalCounter().count_request(req)


# ---------------------------------------------------------------------------- simulate()


def test_simulate_reads_iso_timestamps_and_prices_with_pricing_cost() -> None:
    """PC: "TTL 5 min"; the output is a real response's ``usage`` (PC: usage line), so
    :func:`tidyctx.pricing.cost` prices it."""
    req = base(question="hello")
    stamps = ["2025-06-01T12:00:00Z", "2025-06-01T12:04:59Z", "2025-06-01T12:10:00+00:00"]
    usages = simulate([req] * 3, stamps, counter=CharCounter(), output_tokens=[5, 6, 7])
    tail = len("hello") + MESSAGE_OVERHEAD
    assert [(u["cache_read_input_tokens"], u["cache_creation_input_tokens"]) for u in usages] == [
        (0, SYSTEM),
        (SYSTEM, 0),
        (0, SYSTEM),  # 301 s after the previous call
    ]
    assert [u["input_tokens"] for u in usages] == [tail] * 3
    assert [u["output_tokens"] for u in usages] == [5, 6, 7]
    explained = calls([req] * 3, stamps, counter=CharCounter())
    assert explained[2].miss is not None
    assert explained[2].miss.cause == "ttl expired after 301 s"
    price = pricing.lookup(MODEL)
    for usage, output in zip(usages, (5, 6, 7), strict=True):
        cost = pricing.cost(usage, MODEL)
        written, read = usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]
        assert cost.input == tail * price.input / 1_000_000
        assert cost.cache_write_5m == written * price.cache_write_5m / 1_000_000
        assert cost.cache_write_1h == 0.0
        assert cost.cache_read == read * price.cache_read / 1_000_000
        assert cost.output == output * price.output / 1_000_000


def test_simulate_rejects_timestamps_that_go_backwards() -> None:
    """TTLs are measured forward in time: a call before the previous one is an error."""
    req = base()
    with pytest.raises(ValueError, match="timestamps must not go backwards"):
        simulate([req, req], ["2025-06-01T12:00:10Z", "2025-06-01T12:00:09Z"])
    with pytest.raises(ValueError, match="timestamps must not go backwards"):
        simulate([req, req], [100.0, 99.5], counter=CharCounter())


# ---------------------------------------------------------------------------- deferred tools


def _deferred_requests() -> tuple[dict[str, Any], dict[str, Any]]:
    """A turn with one rendered tool, and the next turn with a deferred tool added (as Claude
    Code adds an MCP server's tools once it connects)."""
    rendered = {
        "name": "bash",
        "description": "Run a command. " * 300,
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
    deferred = {
        "name": "search_issues",
        "description": "Search the tracker. " * 300,
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "defer_loading": True,
    }
    first = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "tools": [rendered],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Look around. " * 300,
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            }
        ],
    }
    later = {**first, "tools": [first["tools"][0], deferred]}
    return first, later


def test_a_deferred_tool_counts_no_input_tokens() -> None:
    first, later = _deferred_requests()
    counter = LocalCounter()
    assert counter.count_request(later) == counter.count_request(first)
    assert layout(later).total == layout(first).total
    assert not any(p.startswith("tools[1]") for p in layout(later).paths)


def test_adding_a_deferred_tool_keeps_the_cached_prefix() -> None:
    first, later = _deferred_requests()
    one, two = calls([first, later])
    assert one.usage["cache_creation_input_tokens"] > 0
    assert two.miss is None
    assert two.usage["cache_read_input_tokens"] == one.usage["cache_creation_input_tokens"]


def test_adding_a_rendered_tool_misses_as_before() -> None:
    first, later = _deferred_requests()
    rendered = {**later["tools"][1]}
    del rendered["defer_loading"]
    _, two = calls([first, {**later, "tools": [later["tools"][0], rendered]}])
    assert two.usage["cache_read_input_tokens"] == 0
    assert two.miss is not None
