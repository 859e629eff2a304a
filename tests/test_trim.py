"""trim(): the composition of dedupe, projection, truncation and clearing, as users call it."""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx import cachesim
from tidyctx._request import canonical_json, iter_blocks
from tidyctx.store import MemoryStore
from tidyctx.text._project import ProjectionWarning
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._compact import compact_text

PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def conversation(results: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
    """A request whose assistant turns call tools with these (name, input, result text)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Investigate the failing job."}]
    for k, (name, args, text) in enumerate(results):
        messages += [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Step {k}: calling {name}."},
                    {"type": "tool_use", "id": f"call_{k}", "name": name, "input": args},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"call_{k}", "content": text}],
            },
        ]
    tools = [
        {"name": n, "description": f"The {n} tool.", "input_schema": {"type": "object"}}
        for n in sorted({r[0] for r in results})
    ]
    return {"model": "claude-sonnet-4-6", "max_tokens": 100, "tools": tools, "messages": messages}


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
            out.append("".join(x.get("text", "") for x in b["content"]))
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
    out = tc.trim(project={"sql_query": ["rows"], "sh": ["x"]})(req)
    assert result_texts(out) == ['{"rows":[1,2,', "hello"]  # only whitespace goes


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
    out = tc.trim()(req)
    first, second, third = result_texts(out)
    assert first == f"output a\n{banner}"  # the first copy stays whole
    assert second == "output r\n[… ×3 lines as in the results of call_0]"
    assert third == "output s\n[… ×3 lines as in the results of call_0]"
    assert tc.trim()(out) == out
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
