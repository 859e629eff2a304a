"""``tidyctx report --html``: the per-call rows, their folding into bars, and a page that holds
everything it shows (no outside reference) and cannot be broken out of by the run's text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tidyctx import _report
from tidyctx._cli import main
from tidyctx._report import Bars, CallRow, ReportData, from_run, render_html
from tidyctx.traces import load

ROOT = Path(__file__).parent.parent
SMALL = ROOT / "data" / "traces" / "openhands-sdk-claude-sonnet4-hello-world.json"
SESSION = ROOT / "data" / "traces" / "cc-sessionshare-generaltoolcalls.json"


def embedded(page: str) -> dict[str, object]:
    match = re.search(r'<script id=report-data type="application/json">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_a_ledger_row_and_a_usage_dict_read_the_same() -> None:
    ledger = {
        "time": "2026-12-07T10:00:00Z",
        "model": "claude-sonnet-4-6",
        "input": 10,
        "cache_read": 900,
        "cache_write_5m": 40,
        "cache_write_1h": 0,
        "output": 25,
        "cost": 0.001,
        "cost_without": 0.004,
    }
    usage = {
        "ts": 1_796_637_600,
        "model": "claude-sonnet-4-6",
        "input_tokens": 10,
        "cache_read_input_tokens": 900,
        "ephemeral_5m_input_tokens": 40,
        "output_tokens": 25,
        "cost": {"total": 0.001},
        "cost_without": 0.004,
    }
    assert CallRow.from_mapping(ledger) == CallRow.from_mapping(usage)


def test_a_bad_row_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"cache_read: expected a count of tokens, got '9'"):
        CallRow.from_mapping({"cache_read": "9"})
    with pytest.raises(ValueError, match="cost: expected USD"):
        CallRow.from_mapping({"cost": "cheap"})


def test_many_calls_fold_into_bounded_bars_that_keep_the_totals() -> None:
    bars = Bars(limit=100)
    for k in range(10_000):
        bars.add(CallRow(input=k % 7, output=1, cost=0.5, cost_without=1.0))
    assert len(bars.bars) <= 100
    assert bars.width == 128  # 10,000 calls need bars of 128 calls to fit in 100
    assert sum(b.calls for b in bars.bars) == bars.count == 10_000
    assert sum(b.input for b in bars.bars) == bars.total.input == sum(k % 7 for k in range(10_000))
    assert bars.total.cost == pytest.approx(5_000.0)
    starts = [b.first for b in bars.bars]
    assert starts == [1 + 128 * i for i in range(len(starts))]


def test_the_page_holds_its_data_and_refers_to_nothing_outside() -> None:
    data = ReportData(title="run </script><script>alert(1)</script>")
    data.add_rows([{"input": 5, "output": 2, "cost": 0.1, "cost_without": 0.2}] * 3)
    data.chunks = [
        {"tokens": 9, "count": 2, "repeated_tokens": 9, "preview": "</script><img src=x>"}
    ]
    page = render_html(data)
    # The only URL in the page is the SVG namespace name, which is never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(?:link|img|iframe|object|embed)\b", page)
    assert "default-src 'none'" in page
    # The run's own text cannot close the data script or add an element.
    assert page.count("<script") == 2 and "<img src=x>" not in page
    got = embedded(page)
    assert got["title"] == data.title
    assert got["total"]["calls"] == 3  # type: ignore[index]


def test_a_recorded_run_gives_one_row_per_call_with_costs_both_ways() -> None:
    (run,) = load(SMALL)
    data = from_run(run)
    assert data.bars.count == len(run.turns)
    assert all(b.cost > 0 and b.cost_without > 0 for b in data.bars.bars)
    names = [t["name"] for t in data.transforms]
    assert names[0].startswith("order(") and names[-1].startswith("cache(")


def test_a_session_with_timestamps_uses_the_adaptive_ttl_and_says_so() -> None:
    (run,) = load(SESSION)
    data = from_run(run)
    facts = dict(data.facts)
    assert "adaptive TTL" in facts and "rolling 1h" in facts["adaptive TTL"]
    assert data.bars.total.cache_write_1h > 0
    assert any("automatic caching" in n for n in data.notes)
    assert data.bars.total.cost < data.bars.total.cost_without


def test_cli_writes_the_page_quietly_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(SMALL), "--html", str(out)]) == 0
    err = capsys.readouterr().err
    assert "replaying" not in err and f"wrote {out}" in err
    assert embedded(out.read_text(encoding="utf-8"))["title"]
    assert main(["report", str(SMALL), "--html", str(out), "--progress"]) == 0
    err = capsys.readouterr().err
    assert "100%" in err and err.count("\r") >= 1


def test_cli_names_a_page_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "r.html"
    assert main(["report", str(SMALL), "--html", str(out)]) == 2
    assert f"cannot write {out}" in capsys.readouterr().err


def test_progress_stays_silent_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    bar = _report.Progress(10, "x")
    for k in range(10):
        bar.update(k + 1)
    bar.close()
    assert capsys.readouterr().err == ""


def test_ledger_rows_stream_into_a_page_and_bad_lines_are_named(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    row = {"time": 1_796_637_600, "model": "claude-sonnet-4-6", "input": 3, "output": 1}
    ledger.write_text(json.dumps(row) + "\n\n" + json.dumps({**row, "cost": 0.5}) + "\n")
    data = ReportData.from_rows("ledger", _report.read_rows(ledger))
    assert data.bars.count == 2 and dict(data.facts)["cost"] == "$0.5000"
    assert embedded(render_html(data))["total"]["input"] == 6  # type: ignore[index]
    ledger.write_text(json.dumps(row) + "\n" + '{"time": 17966')  # a crash mid-line
    with pytest.raises(ValueError, match=r"ledger.jsonl:2: not JSON"):
        list(_report.read_rows(ledger))
    ledger.write_text(json.dumps({**row, "output": -1}) + "\n")
    with pytest.raises(ValueError, match=r"ledger.jsonl:1: output: expected a count of tokens"):
        list(_report.read_rows(ledger))
