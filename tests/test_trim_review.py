"""trim() and its parts as a demanding new user tries them: regressions for what a review found."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx.tokens import LocalCounter

PROJECTION_NOTE = "\n[tidyctx: projected"


def call(name: str, args: dict[str, Any], result: Any, k: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": f"call_{k}", "name": name, "input": args}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": f"call_{k}", "content": result}],
        },
    ]


def request(*turns: list[dict[str, Any]]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Find the stuck orders."}]
    for turn in turns:
        messages += turn
    return {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": messages}


def texts(req: dict[str, Any]) -> list[str]:
    out = []
    for message in req["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result":
                content = block["content"]
                out.append(content if isinstance(content, str) else content[0]["text"])
    return out


def orders(n: int) -> str:
    rows = [
        {"id": i, "status": "stuck" if i % 97 == 5 else "ok", "owner": f"user{i}", "note": "x" * 30}
        for i in range(n)
    ]
    return json.dumps({"rows": rows, "count": n}, indent=2)


def test_a_projected_result_over_budget_is_cut_row_by_row_and_still_parses() -> None:
    """Before: the projection note was appended before truncation, so the text was no JSON
    any more, and a big projected result was cut as one long line in the middle of a row."""
    original = orders(3000)
    spec = ["rows[*].{id,status}", "count"]
    for compact in (True, False):
        t = tc.trim(project={"sql": spec}, max_tokens=300, compact=compact)
        out = t(request(call("sql", {"q": "select * from orders"}, original)))
        text = texts(out)[0]
        assert LocalCounter().count_text(text) <= 300
        body, note = text.split(PROJECTION_NOTE)
        assert 'id="tc_' in note  # the full result can still be read back
        data = json.loads(body)  # raises before the fix
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
    """Before: two short lines an earlier result held became a note naming a long call id,
    which cost more tokens than the lines; a result kept whole under slack then went over
    it, and trim(trim(x)) cut it (found on cc-spotter-fa812bfe-precompact, turn 100)."""
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
    assert counter.count_text(texts(once)[1]) <= size  # before: the note added tokens
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
    """Before: trim with clearing priced clearing against the request before truncation, so
    every turn explain() said it rewrote the cached prefix, even between clearing batches."""
    full = file_reads(13)
    t = tc.trim(clearing=tc.Clearing(keep=2, trigger=0, clear_at_least=600), max_tokens=200)
    notes = []
    for n in range(9, 14):
        req = {**full, "messages": full["messages"][: 1 + 2 * n]}
        notes.append(t.describe(req, t(req)))
    quiet = [note for note in notes if "no new batch" in note]
    batches = [note for note in notes if "rewrites" in note]
    assert quiet and batches  # before: every note said "rewrites"
    assert all("the cached prefix is intact" in note for note in quiet)
    assert all(note.startswith("removed ") for note in notes)


def test_projection_writes_numbers_back_as_they_were() -> None:
    """Before: projected JSON went through float, so 0.123456789012345678 lost digits and
    1e400 became Infinity, which is not JSON."""
    from tidyctx.text._project import project_text

    text = (
        '{"rows": [{"id": 1, "amount": 0.123456789012345678, "big": 1e400, "tiny": -1e-400,'
        ' "plain": 2.5, "note": "x"}], "count": 1}'
    )
    out = project_text(text, ["rows[*].{amount,big,tiny,plain}", "count"]).text
    assert out == (
        '{"rows":[{"amount":0.123456789012345678,"big":1e400,"tiny":-1e-400,"plain":2.5}],'
        '"count":1}'
    )
    req = request(call("sql", {"q": "select"}, text))
    trimmed = texts(tc.trim(project={"sql": ["rows[*].amount"]}, compact=False)(req))[0]
    assert trimmed.startswith('{"rows":[{"amount":0.123456789012345678}]}\n[tidyctx: projected')


def test_wrong_arguments_get_a_clear_error_when_trim_is_made() -> None:
    """Before: a TypeError from a comparison, an AttributeError, or nothing at all (a string
    exclude_tools became its letters; a dict store failed on first use)."""
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
    """keep={"type": "tool_uses", "value": N}, the form of the server edit, clears as keep=N
    (before: TypeError in trim(), though clear() and server_side take it)."""
    req = file_reads(8)
    by_int = tc.trim(clearing=tc.Clearing(keep=2, trigger=0, clear_at_least=1000))(req)
    form = {"type": "tool_uses", "value": 2}
    by_form = tc.trim(clearing=tc.Clearing(keep=form, trigger=0, clear_at_least=1000))(req)
    assert by_form == by_int
    assert sum("cleared result of read" in t for t in texts(by_int)) == 6
    server = tc.trim(clearing=tc.Clearing(keep=form, server_side=True))(req)
    edit = server["context_management"]["edits"][0]
    assert edit["keep"] == {"type": "tool_uses", "value": 2}


def test_the_budget_covers_every_text_of_a_result() -> None:
    """Before: search_result and text document blocks in a tool result were never cut (a
    max_tokens=200 result stayed 11k tokens), and several text blocks each got at least 64
    tokens, so five of them took 320 of a 200-token budget."""
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


PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
@PROPS
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
            # The floor of 16 tokens a cut text needs can exceed an even split of tiny budgets.
            assert sum(counter.count_text(x) for x in kept) <= max(budget, 16 * len(kept))
        for x, original in zip(kept, unit_texts(before), strict=True):
            # With little room (a small budget, or a small share of one) JSON is cut as text.
            roomy = budget >= 700 and len(kept) == 1
            if PROJECTION_NOTE in x and roomy and original.startswith('{"rows"'):
                json.loads(x.split(PROJECTION_NOTE)[0])


def test_sdk_objects_and_bare_message_lists_are_trimmed_when_called_directly() -> None:
    """Before: trim and compact called directly (not through pipe) skipped the result of a
    call held as an SDK ToolUseBlock (as after messages.append(response.content)): the result
    stayed 19k tokens under max_tokens=100."""
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
        assert LocalCounter().count_text(texts(out)[0]) <= 100
        tc.validate(out)
        as_list = t(messages)  # a bare message list comes back as a list, as from pipe
        assert as_list == out["messages"]
    assert isinstance(tc.compact()(req)["messages"][1]["content"][1], dict)
    assert isinstance(tc.compact()(messages), list)


def test_a_long_result_that_quotes_a_marker_is_still_cut() -> None:
    """Before: any result holding "[tidyctx: " was taken as trimmed already and kept whole,
    whatever its size (a transcript, a log of an agent that uses tidyctx, its own source)."""
    transcript = "\n".join(
        f"turn {i}: [tidyctx: {i * 10} tokens cut; re-run the tool with a narrower query]"
        if i % 50 == 0
        else f"turn {i}: the agent read src/module_{i}.py"
        for i in range(3000)
    )
    t = tc.trim(max_tokens=200)
    out = t(request(call("cat", {"path": "session.log"}, transcript)))
    assert LocalCounter().count_text(texts(out)[0]) <= 200
    assert 'id="tc_' in texts(out)[0]
    assert t(out) == out
