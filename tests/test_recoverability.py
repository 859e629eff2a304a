"""Nothing a transform rewrites is lost: every rewritten block's exact original is one
``tidyctx_expand`` away, at every turn, across summarize steps, store TTLs and eviction.

The recommended pipeline (``order, slice_code, trim(max_tokens=700, head=0.6, slack=0.5),
summarize, cache``, summaries from the local stand-in) runs turn by turn over generated agent
sessions (``strategies.tool_sessions``) and over every recorded trace. At each turn, every
tool result of the request sent is compared with the result the agent recorded, and every
store id a marker or note names is read back through the expand tool's handler, piece by
piece, as the model would. What "the exact original" is, per kind of rewrite:

* **cut** (``trim`` truncation, a JSON array cut row by row, a ``slice_code`` view, a
  projection, a cut tool input): the id names the whole text before the cut, byte for byte;
  read back, it is decoded again (a sliced view that trim then cut names the sliced text,
  whose note names the file view). A run collapsed inside a cut (``[… ×N similar lines]``)
  and each gap line are covered by the cut's id.
* **compacted**: JSON rewritten without whitespace, its uniform arrays as tables, is the same
  JSON value (``lossless``: tables read back as arrays of objects, members in any order, every
  key, string and number as spelled). Any other compaction (padding, escape codes, CRLF,
  separator runs, an echo) ends with a note whose id names the original byte for byte.
* **collapsed** (lines an earlier result holds as sent): the note's id names those lines,
  byte for byte; put back in the note's place they give the text before the collapse.
* **cleared**, **deduplicated**: the placeholder's id names ``result_text`` of the original
  content (every text block's text, joined by newlines; every other block as its canonical
  JSON).

A summary stands for the turns it replaced and keeps nothing of them: the blocks checked are
those the request still holds. A marker a tool's own output quotes (an id the original already
holds) is not a rewrite.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import event, given, settings

import strategies as gen
import tidyctx as tc
from builders import BUNDLED_TRACES, PNG, SHARED_TRACES, agent_run, exchange, result_of, tool_loop
from tidyctx._markers import NOTE_START, store_ids
from tidyctx._request import cache_content, canonical_json
from tidyctx.store import (
    MemoryStore,
    SQLiteStore,
    Store,
    StoreWarning,
    keep_text,
    refresh,
    refresh_all,
    store_key,
)
from tidyctx.testing import LocalServer
from tidyctx.text._compaction import lossless
from tidyctx.traces import load_run
from tidyctx.transforms._clear import result_text
from tidyctx.transforms._expand import MAX_LENGTH
from tidyctx.transforms._recover import guarded
from tidyctx.transforms._trim import _text_units

MODEL = "claude-sonnet-4-6"
SUMMARY = {"trigger": 2_000, "keep": 2, "target_tokens": 300, "max_payback_turns": None}
"""summarize() settings under which a generated session of a few results takes steps."""

# ---------------------------------------------------------------------------- reading back

Handler = Callable[[dict[str, Any]], str]
_HEADER = re.compile(
    r"\[tidyctx: (tc_[0-9a-f]{16}) characters [\d,]+–[\d,]+ of [\d,]+"
    r"(?:; next offset (\d+))?\]\n"
)


def read_back(expand: Handler, key: str) -> str:
    """The whole text under ``key``, through the expand handler, piece by piece."""
    answer = expand({"id": key})
    assert not answer.startswith("[tidyctx: tidyctx_expand error"), answer
    if answer == f"[tidyctx: {key} is empty (0 characters)]":
        return ""
    head = _HEADER.match(answer)
    if head is None or head.group(1) != key:
        return answer
    pieces = [answer[head.end() :]]
    while head.group(2) is not None:
        answer = expand({"id": key, "offset": int(head.group(2)), "length": MAX_LENGTH})
        head = _HEADER.match(answer)
        assert head is not None, answer[:200]
        pieces.append(answer[head.end() :])
    return "".join(pieces)


def decode(text: str, expand: Handler, quoted: set[str], depth: int = 0) -> str:
    """The text that ``text`` (a tool result's text as sent) stands for, undoing the rewrites
    in the reverse of the order they were made.

    First each repeat note is replaced by the lines it names (collapsing repeats comes last).
    Then a marker that names a whole text (a cut, a compacted original, a projection, a sliced
    view) is read back and decoded in turn; one that names the exact original (``exact
    original id=``, ``the full result is``) goes first. Ids in ``quoted`` (the original holds
    them: a tool's output quoting a marker) are not markers."""
    assert depth < 8, "markers name each other in a loop"
    lines = text.split("\n")
    for k, line in enumerate(lines):
        ids = [i for i in store_ids(line) if i not in quoted]
        if ids and line.lstrip().startswith(NOTE_START):
            lines[k] = read_back(expand, ids[0])
    text = "\n".join(lines)
    first: list[str] = []
    other: list[str] = []
    for line in text.split("\n"):
        ids = [i for i in store_ids(line) if i not in quoted]
        if ids and not line.lstrip().startswith(NOTE_START):
            exact = "original id=" in line or "the full result is" in line
            (first if exact else other).append(ids[0])
    whole = first + other
    if whole:
        return decode(read_back(expand, whole[0]), expand, quoted, depth + 1)
    return text


def recovers(shown: str, original: str, expand: Handler) -> bool:
    """Whether ``shown`` gives ``original`` back: exactly, or as the same JSON value."""
    quoted = set(store_ids(original))
    for key in store_ids(shown):  # every id named resolves, whether decoding needs it or not
        if key not in quoted:
            read_back(expand, key)
    back = decode(shown, expand, quoted)
    return back == original or lossless(original, back)


# ---------------------------------------------------------------------------- the check

_PLACEHOLDER = re.compile(
    r"\[tidyctx: (?:cleared result of|same result as) .*?tidyctx_expand\(id=\"(tc_[0-9a-f]{16})\""
)
_INPUT_KEY = re.compile(r"its input was cleared too: tidyctx_expand\(id=\"(tc_[0-9a-f]{16})\"")


def _blocks(request: dict[str, Any], kind: str, key: str) -> dict[str, Any]:
    found = {}
    for message in request["messages"]:
        if isinstance(message.get("content"), list):
            for block in message["content"]:
                if isinstance(block, dict) and block.get("type") == kind:
                    found[str(block.get(key))] = block
    return found


def _image_back(shown: dict[str, Any], image: dict[str, Any], expand: Handler) -> None:
    key = _IMAGE_KEY.search(shown.get("text", ""))
    assert key is not None, shown
    assert read_back(expand, key.group(1)) == canonical_json(cache_content(image)).decode()


_IMAGE_KEY = re.compile(r"image cleared .*its block: tidyctx_expand\(id=\"(tc_[0-9a-f]{16})\"")


def check_turn(given_request: dict[str, Any], sent: dict[str, Any], expand: Handler) -> int:
    """Assert that every tool result of ``sent`` gives back the result of ``given_request``;
    returns how many were rewritten."""
    originals = _blocks(tc.normalize(given_request), "tool_result", "tool_use_id")
    uses = _blocks(given_request, "tool_use", "id")
    rewritten = 0
    for call_id, block in _blocks(sent, "tool_result", "tool_use_id").items():
        original = originals[call_id]
        if cache_content(block) == cache_content(original):
            continue
        rewritten += 1
        content = block["content"]
        only = content[0].get("text", "") if len(content) == 1 else ""
        placeholder = _PLACEHOLDER.match(only)
        if placeholder is not None:
            assert read_back(expand, placeholder.group(1)) == result_text(original["content"])
            cleared_input = _INPUT_KEY.search(only)
            if cleared_input is not None:
                back = read_back(expand, cleared_input.group(1))
                assert back == canonical_json(uses[call_id]["input"]).decode("utf-8")
            continue
        assert len(content) == len(original["content"]), call_id
        for shown, was in zip(content, original["content"], strict=True):
            if cache_content(shown) == cache_content(was):
                continue
            if was["type"] == "image":
                _image_back(shown, was, expand)
                continue
            units, before = _text_units([shown]), _text_units([was])
            assert [u[:2] for u in units] == [u[:2] for u in before], call_id
            for (_, _, text), (_, _, old) in zip(units, before, strict=True):
                if text != old:
                    assert recovers(text, old, expand), (call_id, text[:300])
    return rewritten


# ---------------------------------------------------------------------------- stores


class ClockStore:
    """A store whose entries expire ``ttl`` seconds after they were last put, by a clock the
    test moves (``now``); no ``touch``: the transforms renew an entry by reading it and putting
    it back (:func:`tidyctx.store.refresh`)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.now = 0.0
        self.items: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        item = self.items.get(key)
        return item[0] if item is not None and item[1] > self.now else None

    def put(self, key: str, value: str) -> None:
        self.items[key] = (value, self.now + self.ttl)

    def later(self) -> None:
        """Move the clock past every entry's expiry: the agent paused between turns."""
        self.now += self.ttl + 1


class TouchClockStore(ClockStore):
    """:class:`ClockStore` with a ``touch`` that restarts an entry's TTL, as Redis's EXPIRE."""

    def touch(self, key: str) -> bool:
        item = self.items.get(key)
        if item is None or item[1] <= self.now:
            return False
        self.items[key] = (item[0], self.now + self.ttl)
        return True


def _between_turns(store: Store) -> None:
    if isinstance(store, ClockStore):
        store.later()


StoreFactory = Callable[[], Store]
STORES: dict[str, StoreFactory] = {
    "memory": MemoryStore,
    "memory-max-4": lambda: MemoryStore(max_items=4),
    "memory-max-12": lambda: MemoryStore(max_items=12),
    "ttl-refresh-by-put": lambda: ClockStore(ttl=60),
    "ttl-refresh-by-touch": lambda: TouchClockStore(ttl=60),
}


@pytest.fixture(scope="module")
def client() -> Iterator[anthropic.Anthropic]:
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as sdk,
    ):
        yield sdk


def pipeline(client: anthropic.Anthropic, store: Store, **summary: Any) -> list[Any]:
    """The recommended pipeline, every marker's text in ``store``; summarize keeps its own
    records apart (they are no markers' texts) unless the store holds everything."""
    records = store if type(store) is MemoryStore and store.max_items == 100_000 else None
    return [
        tc.order(),
        tc.slice_code(store=store),
        tc.trim(max_tokens=700, head=0.6, slack=0.5, store=store),
        tc.summarize(client, store=records, **{**SUMMARY, **summary}),
        tc.cache(),
    ]


def replay(turns: list[dict[str, Any]], steps: list[Any], store: Store) -> tuple[int, int, int]:
    """Run ``steps`` turn by turn and check each request sent; (rewritten results, summarized
    turns, turns sent with a store warning)."""
    _, expand = tc.expand_tool(store)
    rewritten = summarized = warned = 0
    for request in turns:
        snapshot = copy.deepcopy(request)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StoreWarning)
            sent = tc.pipe(request, *steps)
        assert request == snapshot
        warned += any(issubclass(w.category, StoreWarning) for w in caught)
        tc.validate(sent)
        summarized += "<tidyctx-summary" in json.dumps(sent["messages"][0])
        rewritten += check_turn(request, sent, expand)
        _between_turns(store)
    return rewritten, summarized, warned


def session_turns(session: dict[str, Any]) -> list[dict[str, Any]]:
    messages = session["messages"]
    return [{**session, "messages": messages[:end]} for end in range(1, len(messages) + 1, 2)]


# ---------------------------------------------------------------------------- properties


@pytest.mark.parametrize("kind", sorted(STORES))
@settings(max_examples=25)
@given(session=gen.tool_sessions(max_calls=9))
def test_every_rewritten_result_comes_back_at_every_turn(
    client: anthropic.Anthropic, kind: str, session: dict[str, Any]
) -> None:
    store = STORES[kind]()
    rewritten, summarized, warned = replay(session_turns(session), pipeline(client, store), store)
    event(f"results rewritten: {'some' if rewritten else 'none'}")
    event(f"summary steps: {'some' if summarized else 'none'}")
    event(f"store warnings: {'some' if warned else 'none'}")


@settings(max_examples=20)
@given(session=gen.tool_sessions(max_calls=7))
def test_expiring_entries_change_nothing_sent_and_the_prefix_holds(
    session: dict[str, Any],
) -> None:
    # A store whose every entry expires between turns gives the same requests, byte for byte,
    # as one that keeps everything: what the markers name is put back, not cut again another
    # way. Each transform stays pure and idempotent, and each turn's request starts with the
    # last one's messages (no summarize here: it rewrites history by design).
    kept, expiring = MemoryStore(), ClockStore(ttl=5)

    def steps(store: Store) -> list[Any]:
        trim = tc.trim(max_tokens=700, head=0.6, slack=0.5, store=store)
        return [tc.order(), tc.slice_code(store=store), trim, tc.cache()]

    a, b = steps(kept), steps(expiring)
    previous: list[Any] = []
    for request in session_turns(session):
        snapshot = copy.deepcopy(request)
        sent = tc.pipe(request, *a)
        assert request == snapshot
        assert tc.pipe(request, *b) == sent
        assert tc.pipe(sent, *a) == sent
        messages = [cache_content_of(m) for m in sent["messages"][:-1]]
        assert messages[: len(previous)] == previous
        previous = messages
        expiring.later()


def cache_content_of(message: dict[str, Any]) -> Any:
    content = message["content"]
    return [cache_content(b) for b in content] if isinstance(content, list) else content


def test_a_redis_store_whose_entries_expire_between_turns(
    client: anthropic.Anthropic, redis_url: str
) -> None:
    import redis

    prefix = f"tidyctx-test-{uuid.uuid4().hex}:"
    with (
        redis.Redis.from_url(redis_url) as raw,
        tc.RedisStore(raw, prefix=prefix, ttl_seconds=3600) as store,
    ):
        _, expand = tc.expand_tool(store)
        steps = pipeline(client, store)
        rewritten = 0
        for request in session_turns(long_session()):
            sent = tc.pipe(request, *steps)
            rewritten += check_turn(request, sent, expand)
            names = list(raw.scan_iter(match=f"{prefix}*"))
            # Every entry this request names was renewed by it: its TTL starts over.
            assert all(raw.ttl(name) > 3000 for name in names)
            if names:  # the agent pauses past the TTL: every entry expires
                raw.delete(*names)
        assert rewritten


def test_touch_restarts_a_redis_ttl_without_sending_the_value(redis_url: str) -> None:
    import redis

    prefix = f"tidyctx-test-{uuid.uuid4().hex}:"
    with redis.Redis.from_url(redis_url) as raw:
        store = tc.RedisStore(raw, prefix=prefix, ttl_seconds=3600)
        key = tc.store_text(store, "a long tool result")
        raw.expire(prefix + key, 5)
        assert store.touch(key) is True
        assert raw.ttl(prefix + key) > 3000
        raw.delete(prefix + key)
        assert store.touch(key) is False
        lasting = tc.RedisStore(raw, prefix=prefix)
        tc.store_text(lasting, "kept")
        assert lasting.touch(store_key("kept")) is True
        assert raw.ttl(prefix + store_key("kept")) == -1  # no TTL given: none set


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_touch_makes_an_entry_the_newest_without_writing_it(kind: str, tmp_path: Path) -> None:
    store: Any
    if kind == "memory":
        store = MemoryStore(max_items=2)
    else:
        store = SQLiteStore(tmp_path / "s.db", max_items=2)
    a = tc.store_text(store, "text a")
    b = tc.store_text(store, "text b")
    assert store.touch(a) is True  # a is now newer than b
    c = tc.store_text(store, "text c")
    assert store.get(b) is None and store.get(a) == "text a" and store.get(c) == "text c"
    assert store.touch(b) is False and len(store) == 2  # a touch never adds an entry


@pytest.mark.parametrize("kind", ["memory", "sqlite", "sqlite-bounded", "redis", "other"])
def test_touch_many_says_which_entries_are_held(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: Any
    if kind == "memory":
        store = MemoryStore()
    elif kind.startswith("sqlite"):
        bounded = 10 if kind == "sqlite-bounded" else None
        store = SQLiteStore(tmp_path / "s.db", max_items=bounded)
    elif kind == "redis":
        url = request.getfixturevalue("redis_url")
        store = tc.RedisStore(url, prefix=f"tidyctx-test-{uuid.uuid4().hex}:", ttl_seconds=60)
    else:
        store = ClockStore(ttl=60)  # no touch_many: refresh_all renews one by one
    held = [tc.store_text(store, f"text {k}") for k in range(3)]
    keys = [held[0], store_key("never put"), held[2], held[1]]
    assert refresh_all(store, keys) == [True, False, True, True]
    assert refresh_all(store, []) == []
    if kind != "other":
        assert store.touch_many(keys[:1]) == [True]


def test_refresh_renews_any_store_and_keep_text_puts_only_what_is_gone() -> None:
    store = ClockStore(ttl=10)  # no touch: refresh reads the value and puts it back
    key = tc.store_text(store, "a cut")
    store.now = 9
    assert refresh(store, key) is True  # put again at 9: lives until 19
    store.now = 15
    assert store.get(key) == "a cut"
    store.now = 30
    assert refresh(store, key) is False
    assert keep_text(store, "a cut") == key and store.get(key) == "a cut"
    touching = TouchClockStore(ttl=10)
    key = keep_text(touching, "a cut")
    touching.items[key] = ("changed", touching.items[key][1])
    keep_text(touching, "a cut")  # held: renewed, not written again
    assert touching.get(key) == "changed"


def test_a_transform_writes_evict_its_own_entries_before_those_it_passes_on() -> None:
    store = MemoryStore(max_items=3)
    sliced = tc.store_text(store, "the file view slice_code replaced")
    request = tool_loop("Read.", [f'[tidyctx: sliced a.py; tidyctx_expand(id="{sliced}")]'])
    guard = guarded(store, request)
    for k in range(5):
        tc.store_text(guard, f"a cut of trim's, number {k}")
    assert store.get(sliced) is not None


def test_a_small_sqlite_store_keeps_what_the_request_names(
    client: anthropic.Anthropic, tmp_path: Path
) -> None:
    with SQLiteStore(tmp_path / "removed.db", max_items=6) as store:
        rewritten, summarized, _ = replay(
            session_turns(long_session()), pipeline(client, store), store
        )
    assert rewritten and summarized


# ---------------------------------------------------------------------------- the findings


def long_session() -> dict[str, Any]:
    """A session with a banner repeated by later results, long logs, and enough turns for
    summarize to fold the first ones away (the last two, kept, repeat the banner)."""
    banner = (
        "** WARNING: connection is not using a post-quantum key exchange algorithm.\n"
        "** This session may be vulnerable to store now, decrypt later attacks.\n"
        "** The server may need to be upgraded. See https://openssh.com/pq.html"
    )
    log = "\n".join(f"2026-01-02 INFO step {i} of the build finished ok" for i in range(400))
    results = [f"uname {c}\n{banner}" for c in "ar"]
    results += [log.replace("ok", f"done {k}") for k in range(5)]
    results += [f"host {c}\n{banner}" for c in "xy"]
    return tool_loop("Check the hosts, then the build.", results, ("ssh", "bash"))


def test_a_repeat_note_still_names_its_lines_once_summarize_removes_the_call(
    client: anthropic.Anthropic,
) -> None:
    store = MemoryStore()
    turns = session_turns(long_session())
    steps = pipeline(client, store)
    last = tc.pipe(turns[-1], *steps)
    assert "<tidyctx-summary" in json.dumps(last["messages"][0])  # toolu_0000 is gone
    texts = json.dumps(last["messages"])
    assert "lines as in earlier results" in texts
    assert '"toolu_0000"' not in texts
    _, expand = tc.expand_tool(store)
    assert check_turn(turns[-1], last, expand)


def test_markers_outlive_an_evicting_store(client: anthropic.Anthropic) -> None:
    # Three entries, more cuts than that over the run: each turn's request names its texts
    # again, and a store too small for one request sends those results whole, with a warning,
    # rather than markers that lead nowhere.
    store = MemoryStore(max_items=3)
    run = agent_run(12, lines=400)
    _, _, warned = replay(session_turns(run), pipeline(client, store), store)
    assert warned  # twelve cut results do not fit in three entries


def test_markers_outlive_expired_entries() -> None:
    store = ClockStore(ttl=2)
    t = tc.trim(max_tokens=200, store=store)
    _, expand = tc.expand_tool(store)
    rewritten = 0
    for request in session_turns(agent_run(6, lines=300)):
        rewritten += check_turn(request, t(request), expand)
        store.later()  # every entry expires before the next turn
    assert rewritten == 6 * 7 // 2  # each turn cuts every result so far, each comes back


SOURCE = 'def banner():\n\treturn "=========="  \r\n\n\n\nx   =   1\r\n' * 40


@pytest.mark.parametrize(
    "command", ["cat app.py", "sed -n 1,80p app.py", "git show HEAD:app.py", "head app.py"]
)
def test_a_file_shown_by_any_command_comes_back_exactly(command: str) -> None:
    store = MemoryStore()
    request = tool_loop("Read app.py.", [SOURCE], ("bash",))
    request["messages"][1]["content"][1]["input"] = {"command": command}
    for t in (tc.trim(store=store), tc.compact(store=store)):
        sent = t(request)
        text = result_of(sent["messages"][2])
        _, expand = tc.expand_tool(store)
        assert text == SOURCE or recovers(text, SOURCE, expand)
        assert '"=========="' in text or "original id=" in text


def test_compaction_that_keeps_the_json_value_needs_no_note() -> None:
    rows = [{"id": i, "status": "open", "qty": i * 3} for i in range(20)]
    text = json.dumps(rows, indent=2)
    request = tool_loop("Orders.", [text], ("sql",))
    sent = result_of(tc.trim()(request)["messages"][2])
    assert "[tidyctx:" not in sent and lossless(text, sent) and len(sent) < len(text) / 2


def test_cleared_and_deduplicated_results_come_back() -> None:
    store = MemoryStore()
    _, expand = tc.expand_tool(store)
    screenshot = [
        {"type": "text", "text": "screenshot of the settings page"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
        },
    ]
    results = [screenshot, "log line\n" * 300, "other\n" * 300, "log line\n" * 300]
    run = tool_loop("Read the logs.", results)
    run["messages"][1]["content"][1]["name"] = "look"  # a tool whose results are kept
    run["messages"] += exchange("toolu_9", "read_file", {"path": "y"}, "tail\n" * 100)
    # A duplicate becomes a reference that names its text.
    assert check_turn(run, tc.trim(store=store)(run), expand) == 1
    # Cleared results, their inputs, and the images of a result kept whole.
    clearing = tc.Clearing(
        keep=1,
        trigger=0,
        clear_at_least=0,
        clear_tool_inputs=True,
        exclude_tools=["look"],
        clear_images=True,
    )
    for t in (tc.trim(store=store, clearing=clearing), tc.clear(clearing, store=store)):
        sent = t(run)
        assert "image cleared" in json.dumps(sent["messages"][2])
        assert check_turn(run, sent, expand) == 4  # three cleared, one image cleared


# ---------------------------------------------------------------------------- traces


def _trace_cases() -> list[tuple[Path, str]]:
    """Every trace with a store that holds everything; the bundled ones also with a store that
    evicts and one whose entries expire between turns."""
    bundled = sorted(BUNDLED_TRACES.glob("*.json"))
    shared = sorted(SHARED_TRACES.glob("*.json")) if SHARED_TRACES.is_dir() else []
    cases = [(path, "memory") for path in bundled + shared]
    return cases + [(p, k) for p in bundled for k in ("memory-max-12", "ttl-refresh-by-touch")]


@pytest.mark.parametrize(
    ("path", "kind"), _trace_cases(), ids=lambda c: c if isinstance(c, str) else c.stem
)
def test_every_rewrite_of_a_recorded_run_comes_back(
    client: anthropic.Anthropic, path: Path, kind: str
) -> None:
    store = STORES[kind]()
    run = load_run(path)
    turns = [{**turn.request, "model": MODEL} for turn in run.turns]
    _, _, warned = replay(turns, pipeline(client, store, **TRACE_SUMMARY), store)
    if kind != "memory-max-12":
        assert not warned  # a store that keeps what a request names never loses a text


TRACE_SUMMARY = {"trigger": 30_000, "keep": 6, "target_tokens": 3_000}


def test_the_shared_traces_are_here() -> None:
    if not SHARED_TRACES.is_dir():
        pytest.skip(f"{SHARED_TRACES} not found: only the bundled traces were replayed")
    assert len(list(SHARED_TRACES.glob("*.json"))) >= 20
