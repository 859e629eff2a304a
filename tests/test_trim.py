"""trim(): the composition of dedupe, projection, truncation and clearing, as users call it:
budgets over results of many parts, SDK objects, argument checks, and what explain() says."""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import call, conversation, first_texts, request
from tidyctx import cachesim
from tidyctx._request import canonical_json, iter_blocks
from tidyctx.store import MemoryStore, store_key
from tidyctx.text._compaction import compact_text
from tidyctx.text._project import ProjectionWarning
from tidyctx.text._truncate import MIN_MAX_TOKENS
from tidyctx.tokens import LocalCounter

PROPS = settings(max_examples=50)
PROJECTION_NOTE = "\n[tidyctx: projected"


def rows(n: int) -> str:
    return json.dumps(
        {
            "rows": [
                {
                    "id": i,
                    "status": "open" if i % 3 else "done",
                    "owner": f"user{i}",
                    "note": "x" * 40,
                }
                for i in range(n)
            ],
            "count": n,
        }
    )


def log(n: int, marker_line: int = -1) -> str:
    lines = [f"{i:05d} INFO worker heartbeat ok" for i in range(n)]
    if marker_line >= 0:
        lines[marker_line] = f"{marker_line:05d} ERROR parse_config failed: KeyError 'timeout'"
    return "\n".join(lines)


def result_texts(request: dict[str, Any]) -> list[str]:
    out = []
    for ref in iter_blocks(request):
        b = ref.block
        if isinstance(b, dict) and b.get("type") == "tool_result":
            inner = b["content"]
            if isinstance(inner, str):  # left as the client sent it
                out.append(inner)
            else:
                out.append("".join(x.get("text", "") for x in inner))
    return out


def test_projection_keeps_the_named_fields() -> None:
    req = conversation([("sql_query", {"q": "select *"}, rows(50))])
    # compact=False: the projected JSON as it is, not written as a table
    out = tc.trim(project={"sql_query": ["rows[*].{id,status}", "count"]}, compact=False)(req)
    text = result_texts(out)[0]
    data = json.loads(text.split("\n[tidyctx: projected")[0])
    assert data["count"] == 50 and len(data["rows"]) == 50
    assert set(data["rows"][7]) == {"id", "status"}
    assert 'id="tc_' in text  # the marker says where the full result went
    tc.validate(out)


def test_projection_of_a_missing_field_warns_once_and_keeps_the_result() -> None:
    req = conversation([("sql_query", {}, rows(5)), ("sql_query", {}, rows(6))])
    t = tc.trim(project={"sql_query": ["rows[*].price"]}, compact=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = t(req)
    assert [w.category for w in seen] == [ProjectionWarning]
    assert result_texts(out) == [rows(5), rows(6)]
    # With compaction (the default) the same values come in fewer tokens.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compacted = tc.trim(project={"sql_query": ["rows[*].price"]})(req)
    assert result_texts(compacted) == [compact_text(rows(5)), compact_text(rows(6))]


def test_malformed_json_and_plain_text_pass_through() -> None:
    bad = '{"rows": [1, 2,'
    req = conversation([("sql_query", {}, bad), ("sh", {}, "hello")])
    out = tc.trim(project={"sql_query": ["rows"], "sh": ["x"]}, compact=False)(req)
    assert result_texts(out) == [bad, "hello"]
    # JSON cut short is not provably the same value once its whitespace goes, and dropping
    # three blanks saves less than the note naming the original would cost: left as it came.
    out = tc.trim(project={"sql_query": ["rows"], "sh": ["x"]})(req)
    assert result_texts(out) == [bad, "hello"]


def test_truncation_respects_the_budget_and_keeps_what_the_call_names() -> None:
    req = conversation(
        [("sh", {"cmd": "grep -n parse_config app.log"}, log(4000, marker_line=2100))]
    )
    out = tc.trim(max_tokens=300)(req)
    text = result_texts(out)[0]
    assert LocalCounter().count_text(text) <= 300
    assert "[tidyctx: " in text and 'id="tc_' in text
    assert "02100 ERROR parse_config failed" in text
    assert text.startswith("00000 INFO")


def varied(n: int) -> str:
    """Lines that differ in their words, not only their numbers (nothing to collapse)."""
    return "\n".join(f"{i} {hashlib.sha256(str(i).encode()).hexdigest()[:24]}" for i in range(n))


def test_per_tool_budgets() -> None:
    req = conversation([("sh", {}, varied(2000)), ("read_file", {}, varied(2001))])
    out = tc.trim(max_tokens={"sh": 200, "*": 1000})(req)
    counter = LocalCounter()
    sh, read = (counter.count_text(t) for t in result_texts(out))
    assert sh <= 200 < read <= 1000


def test_what_was_cut_can_be_read_back() -> None:
    store = MemoryStore()
    original = log(3000, marker_line=10)
    req = conversation([("sh", {}, original)])
    out = tc.trim(max_tokens=200, store=store)(req)
    text = result_texts(out)[0]
    ref = text.split('id="')[1].split('"')[0]
    tool, handler = tc.expand_tool(store)
    assert tool["name"] == "tidyctx_expand"
    assert handler({"id": ref, "offset": 0, "length": 10_000_000}).endswith(original[-40:])


def test_slack_keeps_results_a_little_over_budget_whole() -> None:
    small, large = varied(15), varied(2000)
    counter = LocalCounter()
    assert 200 < counter.count_text(small) <= 400 < counter.count_text(large)
    req = conversation([("sh", {}, small), ("sh", {}, large)])
    kept, cut = result_texts(tc.trim(max_tokens=200, slack=1.0)(req))
    assert kept == small  # within 2x the budget: whole
    assert "[tidyctx: " in cut and counter.count_text(cut) <= 200  # over it: to the budget
    strict = result_texts(tc.trim(max_tokens=200)(req))
    assert all(counter.count_text(t) <= 200 for t in strict)


def test_long_tool_inputs_are_cut_when_asked_and_can_be_read_back() -> None:
    store = MemoryStore()
    content = "\n".join(f"def handler_{i}(event):\n    return {i}" for i in range(400))
    req = conversation([("Write", {"file_path": "src/app.py", "content": content}, "ok")])
    default = tc.trim(max_tokens=500)(req)
    assert default["messages"][1]["content"][1]["input"]["content"] == content  # off by default
    t = tc.trim(max_tokens=500, max_input_tokens=100, store=store)
    out = t(req)
    call = out["messages"][1]["content"][1]
    assert call["input"]["file_path"] == "src/app.py"
    cut = call["input"]["content"]
    assert LocalCounter().count_text(cut) <= 100 and "[tidyctx: " in cut
    assert cut.startswith("def handler_0(event):")
    ref = cut.split('id="')[1].split('"')[0]
    _, handler = tc.expand_tool(store)
    assert handler({"id": ref, "offset": 0, "length": len(content)}) == content
    assert t(out) == out
    tc.validate(out)
    with pytest.raises(ValueError, match="max_input_tokens"):
        tc.trim(max_input_tokens=10)
    with pytest.raises(ValueError, match="slack"):
        tc.trim(max_tokens=100, slack=-1)


def test_lines_an_earlier_result_holds_become_one_note() -> None:
    banner = (
        "** WARNING: connection is not using a post-quantum key exchange algorithm.\n"
        "** This session may be vulnerable to store now, decrypt later attacks.\n"
        "** The server may need to be upgraded. See https://openssh.com/pq.html"
    )
    calls = [("ssh", {"cmd": f"uname -{c}"}, f"output {c}\n{banner}") for c in "ars"]
    req = conversation(calls)
    store = MemoryStore()
    out = tc.trim(store=store)(req)
    first, second, third = result_texts(out)
    assert first == f"output a\n{banner}"  # the first copy stays whole
    # The note names the lines in the store, not call_0: that may be summarized away later.
    note = f'[… ×3 lines as in earlier results, id="{store_key(banner)}"]'
    assert second == f"output r\n{note}"
    assert third == f"output s\n{note}"
    assert store.get(store_key(banner)) == banner
    assert tc.trim(store=store)(out) == out
    shorter = tc.trim()(conversation(calls[:2]))
    assert shorter["messages"] == out["messages"][: len(shorter["messages"])]
    assert result_texts(tc.trim(compact=False)(req))[1] == f"output r\n{banner}"


def test_dedupe_references_the_earlier_call() -> None:
    same = log(300)
    req = conversation([("sh", {"cmd": "cat a"}, same), ("sh", {"cmd": "cat a"}, same)])
    out = tc.trim(max_tokens=5000)(req)
    first, second = result_texts(out)
    assert first == same
    assert "same result as call_0" in second


def test_clearing_in_batches_keeps_pairs_and_is_error() -> None:
    calls = [("sh", {"n": k}, log(400)) for k in range(12)]
    req = conversation(calls)
    req["messages"][4]["content"][0]["is_error"] = True
    clearing = tc.Clearing(keep=3, trigger=0, clear_at_least=2000)
    out = tc.trim(clearing=clearing, dedupe=False)(req)
    tc.validate(out)
    texts = result_texts(out)
    assert "cleared result of sh (call_0)" in texts[0]
    assert out["messages"][4]["content"][0]["is_error"] is True
    assert texts[-3:] == [log(400)] * 3


def test_server_side_emits_the_context_management_edit() -> None:
    req = conversation([("sh", {}, log(10))])
    clearing = tc.Clearing(keep=3, trigger=50_000, clear_at_least=20_000, server_side=True)
    out = tc.trim(clearing=clearing)(req)
    (edit,) = out["context_management"]["edits"]
    assert edit["type"] == "clear_tool_uses_20250919"
    assert edit["keep"] == {"type": "tool_uses", "value": 3}
    assert edit["trigger"] == {"type": "input_tokens", "value": 50_000}
    assert result_texts(out) == [log(10)]


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="budgets must be integers >= 40"):
        tc.trim(max_tokens=5)
    with pytest.raises(ValueError, match="give a list of paths"):
        tc.trim(project={"sql": "rows[*].id"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="projection path"):
        tc.trim(project={"sql": ["rows[*.id"]})
    with pytest.raises(ValueError, match="head share"):
        tc.trim(head=2.0)


def test_a_result_with_text_and_images() -> None:
    png = gen.png_bytes(8, 8, 0, b"\x80")
    import base64

    req = conversation([("screenshot", {}, "placeholder")])
    req["messages"][2]["content"][0]["content"] = [
        {"type": "text", "text": log(2000)},
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/png",
                "data": base64.b64encode(png).decode(),
            },
        },
    ]
    out = tc.trim(max_tokens=300)(req)
    content = out["messages"][2]["content"][0]["content"]
    assert [b["type"] for b in content] == ["text", "image"]
    assert LocalCounter().count_text(content[0]["text"]) <= 300
    tc.validate(out)


def test_explain_says_what_a_step_saves() -> None:
    req = conversation([("sh", {}, log(3000)) for _ in range(1)])
    report = tc.explain(req, tc.trim(max_tokens=200))
    assert report.steps[0].saved_tokens > 10_000
    assert "removed" in report.steps[0].note


# ---------------------------------------------------------------------------- edge cases


def orders(n: int) -> str:
    rows = [
        {"id": i, "status": "stuck" if i % 97 == 5 else "ok", "owner": f"user{i}", "note": "x" * 30}
        for i in range(n)
    ]
    return json.dumps({"rows": rows, "count": n}, indent=2)


def test_a_projected_result_over_budget_is_cut_row_by_row_and_still_parses() -> None:
    """The projection note goes after the cut, so the kept text still parses as JSON; a big
    projected result is cut row by row, not as one long line in the middle of a row."""
    original = orders(3000)
    spec = ["rows[*].{id,status}", "count"]
    for compact in (True, False):
        t = tc.trim(project={"sql": spec}, max_tokens=300, compact=compact)
        out = t(request(call("sql", {"q": "select * from orders"}, original)))
        text = first_texts(out)[0]
        assert LocalCounter().count_text(text) <= 300
        body, note = text.split(PROJECTION_NOTE)
        assert 'id="tc_' in note  # the full result can still be read back
        data = json.loads(body)  # the kept part is JSON
        assert data["count"] == 3000
        rows = data["rows"]["rows"] if compact else data["rows"]
        kept = [r for r in rows if isinstance(r, list | dict) and "tidyctx" not in r]
        assert len(kept) >= 4
        assert any("tidyctx" in r for r in rows if isinstance(r, dict))  # the row marker
        if not compact:
            assert all(set(r) == {"id", "status"} for r in kept)
        assert t(out) == out
        tc.validate(out)


def test_a_repeated_line_note_never_costs_more_than_the_lines_it_replaces() -> None:
    """Two short lines an earlier result held are not replaced by a note naming a long call id,
    which would cost more tokens than the lines: a result kept whole under slack would then go
    over it, and trim(trim(x)) would cut it (seen on the cc-spotter-fa812bfe-precompact trace,
    turn 100)."""
    shared = "Getting extensions in current project...\nRunning setup for AshSqlite.DataLayer..."
    first = f"{shared}\nok"
    body = "\n".join(f"compiling lib/spotter/module_{i}.ex took {i * 7} ms" for i in range(60))
    second = f"{shared}\n{body}"
    counter = LocalCounter()
    size = counter.count_text(second)
    uid = "toolu_01XtsVqbhT42CZjaDykTzTR7"
    req = request(
        call("mix", {"cmd": "mix setup"}, first, 0), call("mix", {"cmd": "mix test"}, second, 1)
    )
    for m in req["messages"]:  # call ids as the API makes them: long, dense in tokens
        for b in m["content"] if isinstance(m["content"], list) else []:
            for key in ("id", "tool_use_id"):
                if key in b:
                    b[key] = b[key].replace("call_", uid)
    t = tc.trim(max_tokens=size - 10, slack=10 / (size - 10))  # the second is kept whole
    once = t(req)
    assert counter.count_text(first_texts(once)[1]) <= size  # no note that adds tokens
    assert t(once) == once
    tc.validate(once)


def file_reads(n: int) -> dict[str, Any]:
    turns = [
        call(
            "read",
            {"path": f"src/mod_{k}.py"},
            "\n".join(f"{k} line {i} of the file with some words" for i in range(300)),
            k,
        )
        for k in range(n)
    ]
    return request(*turns)


def test_explain_prices_only_a_new_clearing_batch_not_every_turn() -> None:
    """trim with clearing prices clearing against the truncated request, so explain() says it
    rewrites the cached prefix on the turns a clearing batch starts, not on every turn."""
    full = file_reads(13)
    t = tc.trim(clearing=tc.Clearing(keep=2, trigger=0, clear_at_least=600), max_tokens=200)
    notes = []
    for n in range(9, 14):
        req = {**full, "messages": full["messages"][: 1 + 2 * n]}
        notes.append(t.describe(req, t(req)))
    quiet = [note for note in notes if "no new batch" in note]
    batches = [note for note in notes if "rewrites" in note]
    assert quiet and batches  # not every note says "rewrites"
    assert all("the cached prefix is intact" in note for note in quiet)
    assert all(note.startswith("removed ") for note in notes)


def test_wrong_arguments_get_a_clear_error_when_trim_is_made() -> None:
    """Each wrong argument is named when trim() is made, not met later as a TypeError from a
    comparison or an AttributeError, nor accepted (a string exclude_tools would become its
    letters; a dict store would fail on first use)."""
    bad: list[tuple[Any, dict[str, Any], type[Exception], str]] = [
        (tc.Clearing, {"keep": "3"}, ValueError, "keep must be an int"),
        (tc.trim, {"head": "0.5"}, ValueError, "head share"),
        (tc.trim, {"project": ["rows[*].id"]}, ValueError, "dict of tool name to paths"),
        (tc.trim, {"store": {}}, TypeError, "needs a Store"),
        (tc.trim, {"clearing": {"keep": 3}}, TypeError, "takes a Clearing"),
        (tc.trim, {"counter": "cl100k"}, TypeError, "must be a token counter"),
        (tc.Clearing, {"exclude_tools": "grep"}, ValueError, "list of tool names"),
        (tc.Clearing, {"trigger": -5}, ValueError, "trigger must be >= 0"),
        (tc.Clearing, {"clear_at_least": "lots"}, ValueError, "clear_at_least must be an int"),
    ]
    for make, kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            make(**kwargs)


def test_keep_takes_the_server_form_too() -> None:
    """keep={"type": "tool_uses", "value": N}, the form of the server edit, clears as keep=N,
    as clear() and server_side take it."""
    req = file_reads(8)
    by_int = tc.trim(clearing=tc.Clearing(keep=2, trigger=0, clear_at_least=1000))(req)
    form = {"type": "tool_uses", "value": 2}
    by_form = tc.trim(clearing=tc.Clearing(keep=form, trigger=0, clear_at_least=1000))(req)
    assert by_form == by_int
    assert sum("cleared result of read" in t for t in first_texts(by_int)) == 6
    server = tc.trim(clearing=tc.Clearing(keep=form, server_side=True))(req)
    edit = server["context_management"]["edits"][0]
    assert edit["keep"] == {"type": "tool_uses", "value": 2}


def test_the_budget_covers_every_text_of_a_result() -> None:
    """search_result and text document blocks in a tool result are cut too (not left at 11k
    tokens under max_tokens=200), and several text blocks share the budget (five do not take
    at least 64 tokens each, 320 of a 200-token budget)."""
    counter = LocalCounter()
    words = "\n".join(f"row {i} of the index with words" for i in range(800))
    mixed = [
        {
            "type": "search_result",
            "source": "https://example.com/a",
            "title": "A",
            "content": [{"type": "text", "text": words}],
        },
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": words}},
        {"type": "text", "text": words},
    ]
    five = [{"type": "text", "text": f"part {k}\n{words}"} for k in range(5)]
    short = [{"type": "text", "text": "exit code 0"}, {"type": "text", "text": words}]
    for content, budget in ((mixed, 200), (five, 200), (short, 100)):
        t = tc.trim(max_tokens=budget)
        out = t(request(call("search", {"q": "index"}, content)))
        blocks = out["messages"][2]["content"][0]["content"]
        kept = [
            b["content"][0]["text"]
            if b["type"] == "search_result"
            else b["source"]["data"]
            if b["type"] == "document"
            else b["text"]
            for b in blocks
        ]
        assert sum(counter.count_text(x) for x in kept) <= budget
        assert all("[tidyctx: " in x for x in kept if x != "exit code 0")
        assert [b["type"] for b in blocks] == [b["type"] for b in content]
        assert t(out) == out
        tc.validate(out)
    assert "exit code 0" in kept  # a short text that fits is kept whole


def test_sdk_objects_and_bare_message_lists_are_trimmed_when_called_directly() -> None:
    """trim and compact called directly (not through pipe) see a call held as an SDK
    ToolUseBlock (as after messages.append(response.content)), so its 19k-token result is cut
    to max_tokens=100."""
    from anthropic.types import TextBlock, ToolUseBlock

    listing = "\n".join(f"file_{i}.txt" for i in range(3000))
    use = ToolUseBlock(type="tool_use", id="toolu_1", name="sh", input={"cmd": "ls"})
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [TextBlock(type="text", text="listing"), use]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": listing}],
        },
    ]
    req = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": messages}
    for t in (tc.trim(max_tokens=100), tc.trim(max_tokens=100, dedupe=False, compact=False)):
        out = t(req)
        assert isinstance(out["messages"][1]["content"][1], dict)
        assert LocalCounter().count_text(first_texts(out)[0]) <= 100
        tc.validate(out)
        as_list = t(messages)  # a bare message list comes back as a list, as from pipe
        assert as_list == out["messages"]
    assert isinstance(tc.compact()(req)["messages"][1]["content"][1], dict)
    assert isinstance(tc.compact()(messages), list)


def test_a_long_result_that_quotes_a_marker_is_still_cut() -> None:
    """A result that only quotes "[tidyctx: " (a transcript, the log of an agent that uses
    tidyctx, tidyctx's own source) is not taken as trimmed already: it is cut like any other."""
    transcript = "\n".join(
        f"turn {i}: [tidyctx: {i * 10} tokens cut; re-run the tool with a narrower query]"
        if i % 50 == 0
        else f"turn {i}: the agent read src/module_{i}.py"
        for i in range(3000)
    )
    t = tc.trim(max_tokens=200)
    out = t(request(call("cat", {"path": "session.log"}, transcript)))
    assert LocalCounter().count_text(first_texts(out)[0]) <= 200
    assert 'id="tc_' in first_texts(out)[0]
    assert t(out) == out


# ---------------------------------------------------------------------------- properties


@st.composite
def tool_sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Growing conversations of tool calls with results of varied size and shape."""
    n = draw(st.integers(2, 7))
    calls = []
    for k in range(n):
        kind = draw(st.sampled_from(["log", "rows", "short", "dup"]))
        if kind == "log":
            text = log(draw(st.integers(10, 1500)), draw(st.integers(-1, 9)))
        elif kind == "rows":
            text = rows(draw(st.integers(1, 200)))
        elif kind == "dup" and calls:
            text = calls[-1][2]
        else:
            text = draw(gen.texts())
        calls.append((draw(st.sampled_from(["sh", "sql_query"])), {"k": k % 3}, text))
    full = conversation(calls)
    return [{**full, "messages": full["messages"][: 1 + 2 * (k + 1)]} for k in range(n)]


TRIMS = [
    tc.trim(max_tokens=200),
    tc.trim(max_tokens=150, slack=1.0, max_input_tokens=40),
    tc.trim(max_tokens=400, project={"sql_query": ["rows[*].id", "count"]}),
    tc.trim(max_tokens=300, clearing=tc.Clearing(keep=2, trigger=0, clear_at_least=1500)),
]


@pytest.mark.filterwarnings("ignore::tidyctx.text._project.ProjectionWarning")
@PROPS
@given(tool_sessions(), st.sampled_from(range(len(TRIMS))))
def test_trim_is_pure_idempotent_valid_and_within_budget(
    requests: list[dict[str, Any]], which: int
) -> None:
    t = TRIMS[which]
    request = requests[-1]
    snapshot = copy.deepcopy(request)
    once = t(request)
    assert request == snapshot
    assert t(once) == once
    tc.validate(once)
    budget = t.max_tokens if isinstance(t.max_tokens, int) else 10**9
    counter = LocalCounter()
    for text in result_texts(once):
        # A cut result fits the budget; with slack, an uncut one may be up to (1 + slack)x.
        limit = budget if "[tidyctx: " in text else budget * (1 + t.slack)
        assert counter.count_text(text) <= limit


@pytest.mark.filterwarnings("ignore::tidyctx.text._project.ProjectionWarning")
@PROPS
@given(tool_sessions(), st.sampled_from(range(len(TRIMS))))
def test_trim_keeps_the_cached_prefix_between_batches(
    requests: list[dict[str, Any]], which: int
) -> None:
    """Turn n's trimmed request is a prefix of turn n+1's, except where a clearing batch
    starts; order()+trim()+cache() then reads every turn what the previous one cached."""
    t = TRIMS[which]
    sent = [tc.pipe(r, tc.order(), t, tc.cache(min_tokens=0)) for r in requests]
    model = cachesim.CacheModel(min_cacheable=0)
    calls = [model.call(r) for r in sent]
    for prev, cur in pairwise(calls):
        if cur.miss is not None:
            # Only a clearing batch may rewrite history, and it says where.
            assert t.clearing is not None and cur.miss.type == "messages_changed"
            assert "cleared result" in json.dumps(cur.layout.content, ensure_ascii=False)
        else:
            end = max(p for p, _ in prev.layout.breakpoints)
            assert cur.usage["cache_read_input_tokens"] >= prev.layout.cum[end]
    for a, b in pairwise(sent):
        if t.clearing is None:
            n = len(a["messages"]) - 1  # the last message carries no history yet
            assert canonical_json(a["messages"][:n]) == canonical_json(b["messages"][:n])


@st.composite
def mixed_results(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A tool result of several parts: JSON rows (with long-digit numbers), logs, free text
    from the shared strategies, search results and text documents."""
    parts: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["rows", "log", "text", "search", "document"]))
        if kind == "rows":
            n = draw(st.integers(1, 400))
            amount = draw(st.sampled_from(["0.1", "0.123456789012345678", "1e400", "2.50"]))
            text = (
                '{"rows": ['
                + ", ".join(
                    f'{{"id": {i}, "status": "ok", "amount": {amount}, "note": "{"x" * 20}"}}'
                    for i in range(n)
                )
                + f'], "count": {n}}}'
            )
        elif kind == "log":
            text = "\n".join(f"{i} INFO step done" for i in range(draw(st.integers(1, 900))))
        else:
            text = draw(gen.texts())
        if not text.strip():
            text = "empty"
        if kind == "search":
            parts.append(
                {
                    "type": "search_result",
                    "source": "https://example.com",
                    "title": "T",
                    "content": [{"type": "text", "text": text}],
                }
            )
        elif kind == "document":
            parts.append(
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": text},
                }
            )
        else:
            parts.append({"type": "text", "text": text})
    return parts


def unit_texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for b in blocks:
        if b["type"] == "search_result":
            out.append(b["content"][0]["text"])
        elif b["type"] == "document":
            out.append(b["source"]["data"])
        elif b["type"] == "text":
            out.append(b["text"])
    return out


@pytest.mark.filterwarnings("ignore::tidyctx.text._project.ProjectionWarning")
@settings(max_examples=30)
@given(st.lists(mixed_results(), min_size=1, max_size=3), st.sampled_from([60, 200, 700, 700]))
def test_trim_with_projection_and_budget_on_mixed_results(
    results: list[list[dict[str, Any]]], budget: int
) -> None:
    """Pure, idempotent, valid; a result's texts together fit the budget (each cut one holds
    a marker), parts are never dropped (a repeated result becomes a reference), and the JSON
    of a projected text still parses when the budget leaves it room beside the note."""
    req = request(*(call("sql", {"q": f"query {k}"}, r, k) for k, r in enumerate(results)))
    snapshot = copy.deepcopy(req)
    t = tc.trim(project={"sql": ["rows[*].{id,amount}", "count"]}, max_tokens=budget)
    out = t(req)
    assert req == snapshot
    assert t(out) == out
    tc.validate(out)
    counter = LocalCounter()
    for k, before in enumerate(results):
        blocks = out["messages"][2 + 2 * k]["content"][0]["content"]
        if blocks[0].get("text", "").startswith("[tidyctx: same result as call_"):
            assert k > 0 and results[k] in results[:k]  # deduplicated, by design
            continue
        assert [b["type"] for b in blocks] == [b["type"] for b in before]
        kept = unit_texts(blocks)
        if any("[tidyctx: " in x and "tokens cut" in x for x in kept):
            # The floor a cut text needs (its marker, with the id of what it cut) can exceed an
            # even split of tiny budgets.
            floor = MIN_MAX_TOKENS * len(kept)
            assert sum(counter.count_text(x) for x in kept) <= max(budget, floor)
        for x, original in zip(kept, unit_texts(before), strict=True):
            # With little room (a small budget, or a small share of one) JSON is cut as text.
            roomy = budget >= 700 and len(kept) == 1
            if PROJECTION_NOTE in x and roomy and original.startswith('{"rows"'):
                json.loads(x.split(PROJECTION_NOTE)[0])
