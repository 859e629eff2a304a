"""Missed parallelism in a recorded run: one-lookup turns that took nothing from the previous
result, found, priced, and shown by ``tidyctx report`` (text, JSON and HTML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidyctx import _report, pricing
from tidyctx._cli import main
from tidyctx._parallelism import missed_parallelism, read_only
from tidyctx.tokens import LocalCounter
from tidyctx.traces import load_run

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
MODEL = "claude-sonnet-4-6"


def _call(i: int, name: str, arg: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{i:02d}", "name": name, "input": arg}


def _result(i: int, text: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i:02d}", "content": text},
            *extra,
        ],
    }


# The calls, numbered from 1, and what each shows.
CALLS: list[tuple[str, dict[str, Any], str]] = [
    # 1: a lookup.
    (
        "Read",
        {"file_path": "src/app/loader.py"},
        "def load_config():\n    return parse(settings_schema.json)",
    ),
    # 2: a lookup that takes nothing from 1's result: it could have joined call 1.
    ("Grep", {"pattern": "DEBUG", "path": "docs"}, "docs/usage.md:12: DEBUG=1"),
    # 3: reads the file named in 1's result: depends on the chain, starts a new one.
    ("Read", {"file_path": "settings_schema.json"}, '{"type": "object"}'),
    # 4: an edit is not a lookup: the chain ends.
    ("Edit", {"file_path": "docs/usage.md", "old_string": "a", "new_string": "b"}, "ok"),
    # 5: a lookup, new chain.
    ("Bash", {"command": "cat README.md | head -20"}, "# app"),
    # 6: a person spoke between 5 and 6 (see below): not joinable.
    ("Bash", {"command": "ls tests 2>/dev/null"}, "test_loader.py"),
    # 7: independent of 6 and read-only: joins call 6.
    ("WebSearch", {"query": "python config loading"}, "results"),
    # 8: writes.
    ("Bash", {"command": "rm -rf build"}, ""),
]


def _trace(tmp_path: Path, calls: list[tuple[str, dict[str, Any], str]] = CALLS) -> Path:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Find how the app loads config."}]
    for i, (name, arg, shown) in enumerate(calls, 1):
        messages.append({"role": "assistant", "content": [_call(i, name, arg)]})
        extra = [{"type": "text", "text": "Also look at the tests."}] if i == 5 else []
        messages.append(_result(i, shown, *extra))
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "Done."}]})
    turns = [
        {
            "ts": None,
            "usage": {"input_tokens": 20, "cache_read_input_tokens": 1000 * k, "output_tokens": 80},
        }
        for k in range(1, len(calls) + 2)
    ]
    data = {
        "id": "synthetic",
        "recorded_model": MODEL,
        "system": "You are a coding agent.",
        "tools": [],
        "messages": messages,
        "turns": turns,
    }
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_finds_the_calls_that_took_nothing_from_the_previous_result(tmp_path: Path) -> None:
    found = missed_parallelism(load_run(_trace(tmp_path)))
    assert [(m.call, m.joins, m.tool) for m in found.missed] == [
        (2, 1, "Grep"),
        (7, 6, "WebSearch"),
    ]
    assert found.calls == 9
    assert found.single_lookups == 6  # 1, 2, 3, 5, 6, 7


def test_a_view_of_the_lines_a_grep_found_depends_on_it(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("Read", {"file_path": "a.py"}, "x = 1"),
        ("Bash", {"command": "grep -n 'class Loader' src/app.py"}, "131:class Loader:"),
        # Lines 125 to 150: around line 131, which the grep found.
        (
            "str_replace_editor",
            {"command": "view", "path": "src/app.py", "view_range": [125, 150]},
            "...",
        ),
        # Lines 400 to 420 of another file: nothing the grep said.
        (
            "str_replace_editor",
            {"command": "view", "path": "src/b.py", "view_range": [400, 420]},
            "...",
        ),
    ]
    found = missed_parallelism(load_run(_trace(tmp_path, calls)))
    assert [(m.call, m.joins) for m in found.missed] == [(2, 1), (4, 3)]


def test_an_id_a_result_brought_makes_the_next_lookup_depend_on_it(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("list_orders", {"customer": "acme"}, '[{"id": "ORD-771204"}]'),
        ("get_order", {"id": "ORD-771204"}, '{"status": "late"}'),
        ("get_customer", {"name": "acme"}, '{"tier": "gold"}'),
    ]
    found = missed_parallelism(load_run(_trace(tmp_path, calls)))
    assert [(m.call, m.joins) for m in found.missed] == [(3, 2)]


def test_prices_the_extra_calls_input_as_billed_and_output_beyond_the_call(tmp_path: Path) -> None:
    found = missed_parallelism(load_run(_trace(tmp_path)))
    first = found.missed[0]
    usage = {"input_tokens": 20, "cache_read_input_tokens": 2000}
    assert first.input_tokens == 2020
    assert first.input_cost == pytest.approx(pricing.cost(usage, MODEL).total)
    counter = LocalCounter(MODEL)
    call = counter.count_blocks(
        {"messages": [{"role": "assistant", "content": [_call(2, *CALLS[1][:2])]}]}
    )
    assert first.output_tokens == 80 - sum(n for _, n in call)
    assert first.cost == pytest.approx(
        first.input_cost + pricing.cost({"output_tokens": first.output_tokens}, MODEL).total
    )
    assert found.cost == pytest.approx(sum(m.cost for m in found.missed))
    whole = sum(
        pricing.cost(t.usage, MODEL).total for t in load_run(_trace(tmp_path)).turns if t.usage
    )
    assert found.run_cost == pytest.approx(whole)


def test_a_run_without_usage_is_priced_on_the_cache_model(tmp_path: Path) -> None:
    data = json.loads(_trace(tmp_path).read_text())
    data["turns"] = [{"ts": None, "usage": None} for _ in data["turns"]]
    path = tmp_path / "unrecorded.json"
    path.write_text(json.dumps(data))
    found = missed_parallelism(load_run(path))
    assert [m.call for m in found.missed] == [2, 7]
    assert all(m.input_tokens > 0 and m.input_cost > 0 for m in found.missed)


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("Read", {"file_path": "a.py"}, True),
        ("Grep", {"pattern": "x"}, True),
        ("Glob", {"pattern": "*.py"}, True),
        ("LS", {"path": "."}, True),
        ("WebFetch", {"url": "https://example.com"}, True),
        ("snowflake-read_query", {"query": "select 1"}, True),
        ("get_reservation_details", {"reservation_id": "X1"}, True),
        ("snowflake-write_query", {"query": "insert"}, False),
        ("google-cloud-bigquery_run_query", {"query": "select 1"}, False),
        ("TodoWrite", {"todos": []}, False),
        ("Edit", {"file_path": "a.py"}, False),
        ("str_replace_editor", {"command": "view", "path": "a.py"}, True),
        ("str_replace_editor", {"command": "str_replace", "path": "a.py"}, False),
        ("Bash", {"command": "cd /repo && grep -rn foo src | head -5"}, True),
        ("execute_bash", {"command": "git log --oneline -3 && git status"}, True),
        ("Bash", {"command": "find . -name '*.pyc' -delete"}, False),
        ("Bash", {"command": "sed -i 's/a/b/' f.txt"}, False),
        ("Bash", {"command": "cat a.txt > b.txt"}, False),
        ("Bash", {"command": "echo $(rm x)"}, False),
        ("Bash", {"command": "git branch new-feature"}, False),
        ("Bash", {"command": "python -m pytest"}, False),
        ("Bash", {"command": "find . -name '*.py' | xargs grep -l Loader"}, True),
        ("Bash", {"command": "find . -name '*.pyc' | xargs -0 rm"}, False),
        ("Bash", {}, False),
    ],
)
def test_read_only_tools(name: str, arguments: dict[str, Any], expected: bool) -> None:
    assert read_only(name, arguments) is expected


def test_the_text_and_json_reports_show_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _trace(tmp_path)
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Missed parallelism: 2 of 9 calls made one read-only tool call" in out
    assert 'Grep {"path": "docs", "pattern": "DEBUG"}' in out
    assert main(["report", "--json", str(path)]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    found = missed_parallelism(load_run(path))
    assert run["missed_calls"] == 2
    assert run["missed_cost"] == pytest.approx(found.cost, abs=1e-6)


def test_the_html_report_shows_it(tmp_path: Path) -> None:
    page = _report.render_html(_report.from_run(load_run(_trace(tmp_path))))
    assert "Tool calls that could have run in parallel" in page
    assert "2 of 9 calls could have joined the call before" in page
    assert "WebSearch {&quot;query&quot;: &quot;python config loading&quot;}" in page


def test_on_a_bundled_claude_code_run_every_missed_call_is_a_lookup() -> None:
    run = load_run(DATA / "cc-sessionshare-generaltoolcalls.json")
    found = missed_parallelism(run)
    assert found.missed
    for m in found.missed:
        reply = run.turns[m.call - 1].reply
        assert reply is not None
        (call,) = [b for b in reply["content"] if b.get("type") == "tool_use"]
        assert read_only(call["name"], call["input"])
        assert m.joins < m.call
    assert 0 < found.cost < found.run_cost


def test_a_run_with_no_tool_calls_misses_nothing(tmp_path: Path) -> None:
    data = {
        "id": "chat",
        "recorded_model": MODEL,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
        "turns": [{"ts": None, "usage": {"input_tokens": 5, "output_tokens": 2}}],
    }
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(data))
    found = missed_parallelism(load_run(path))
    assert found.missed == () and found.cost == 0 and found.share == 0
