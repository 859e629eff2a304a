"""The usage ledger: appends that survive a killed writer and four concurrent writers, totals,
and clear errors for files that are not (whole) ledgers, in the reader and in `tidyctx report`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx._cli import main
from tidyctx.ledger import (
    FORMAT,
    Ledger,
    LedgerError,
    LedgerWarning,
    changed_steps,
    is_ledger,
    iter_ledger,
    read_ledger,
    summarize_ledger,
)
from tidyctx.testing import LocalServer

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
}


def row(model: str = "claude-sonnet-4-6", **extra: Any) -> dict[str, Any]:
    usage = {"input_tokens": 100, "cache_read_input_tokens": 1000, "output_tokens": 20}
    return {"kind": "call", "model": model, "usage": usage, "cost": 0.001, **extra}


def test_rows_carry_the_format_time_and_run(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    with Ledger(path, run="agent-7") as ledger:
        ledger.write(row())
        ledger.write(row(kind="summary", model="claude-haiku-4-5"))
    first, second = read_ledger(path)
    assert first["ledger"] == FORMAT and first["run"] == "agent-7"
    assert first["ts"].endswith("Z") and first["usage"]["cache_read_input_tokens"] == 1000
    assert second["kind"] == "summary"
    assert is_ledger(path)
    # Each row is one line, flushed: readable while the writer is still open.
    assert path.read_bytes().count(b"\n") == 2


def test_totals_per_run_model_and_day(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    a, b = Ledger(path, run="a"), Ledger(path, run="b")
    a.write({**row(), "baseline_cost": 0.004, "ts": "2026-12-06T23:59:00.000Z"})
    a.write({**row("claude-haiku-4-5", kind="summary"), "baseline_cost": 0.0})
    b.write(
        {**row(), "baseline_cost": 0.003, "changed": [{"transform": "trim()", "tokens_saved": 7}]}
    )
    b.write({"kind": "call", "model": "claude-sonnet-4-6", "error": {"type": "X", "status": 529}})
    s = summarize_ledger(path)
    assert (s.total.calls, s.total.summary_calls, s.total.errors) == (3, 1, 1)
    assert s.total.cost == pytest.approx(0.003) and s.total.baseline_cost == pytest.approx(0.007)
    assert s.total.saved == pytest.approx(0.004)
    assert s.total.usage["cache_read_input_tokens"] == 3000
    assert sorted(s.by_run) == ["a", "b"] and s.by_run["a"].summary_calls == 1
    assert sorted(s.by_model) == ["claude-haiku-4-5", "claude-sonnet-4-6"]
    assert "2026-12-06" in s.by_day and len(s.by_day) == 2
    assert s.transforms == {"trim()": 7}
    as_json = s.as_dict()
    assert as_json["total"]["calls"] == 3 and json.dumps(as_json)


_WRITER = textwrap.dedent(
    """
    import sys
    from tidyctx.ledger import Ledger
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = Ledger(path, run=name)
    pad = name * (6000 // len(name))  # rows over a page: no help from small atomic writes
    for seq in range(n):
        ledger.write({"kind": "call", "model": "claude-sonnet-4-6", "seq": seq, "pad": pad,
                      "usage": {"input_tokens": 1, "output_tokens": 1}, "cost": 0.0})
    """
)


def test_four_processes_appending_to_one_ledger_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    n = 300
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"w{k}", str(n)], env=ENV)
        for k in range(4)
    ]
    for w in writers:
        assert w.wait(timeout=600) == 0
    rows = read_ledger(path)
    assert len(rows) == 4 * n
    seen = {(r["run"], r["seq"]) for r in rows}
    assert seen == {(f"w{k}", seq) for k in range(4) for seq in range(n)}
    assert all(set(r["pad"]) == set(r["run"]) for r in rows)  # no row mixed with another
    assert summarize_ledger(path).total.calls == 4 * n


_AGENT = textwrap.dedent(
    """
    import sys
    import anthropic
    import tidyctx as tc
    base_url, path = sys.argv[1], sys.argv[2]
    client = tc.wrap(anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0),
                     ledger=path)
    request = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "rules " * 1500,
               "messages": [{"role": "user", "content": "go"}]}
    while True:  # until killed
        reply = client.messages.create(**request)
        request["messages"] += [{"role": "assistant", "content": "step done"},
                                {"role": "user", "content": "next"}]
    """
)


def test_a_process_killed_mid_run_leaves_a_ledger_whose_every_line_parses(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.jsonl"
    with LocalServer() as server:
        agent = subprocess.Popen(
            [sys.executable, "-c", _AGENT, server.base_url, str(path)], env=ENV
        )
        try:
            deadline = time.monotonic() + 300  # a bound for a busy machine, not a speed check
            while time.monotonic() < deadline and agent.poll() is None:
                if path.exists() and path.read_bytes().count(b"\n") >= 8:
                    break
                time.sleep(0.05)
            assert agent.poll() is None, "the agent stopped by itself"
            agent.send_signal(signal.SIGKILL)
        finally:
            agent.kill()
            agent.wait()
    rows = read_ledger(path)  # raises LedgerError naming any line that does not parse
    assert len(rows) >= 8
    assert all(sum(r["usage"].values()) > 0 and r["cost"] > 0 for r in rows)
    # The next writer appends after the last whole row.
    Ledger(path).write(row())
    assert len(read_ledger(path)) == len(rows) + 1


def test_a_writer_after_a_cut_row_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).write(row())
    with open(path, "ab") as f:
        f.write(b'{"ledger":"tidyctx/1","ts":"2026-12-07T')  # a writer killed mid-row
    with pytest.raises(LedgerError, match=r"l\.jsonl, line 2: the last line is cut short"):
        read_ledger(path)
    Ledger(path).write(row())
    lines = path.read_bytes().split(b"\n")
    assert json.loads(lines[2])["kind"] == "call"  # whole, on its own line
    with pytest.raises(LedgerError, match=r"line 2: not a JSON row"):
        read_ledger(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.jsonl: empty: no ledger rows"),
        (b"\n\n  \n", r"empty\.jsonl: holds only blank lines"),
        (
            b'{"model": "claude-sonnet-4-6", "messages": []}\n',
            r"empty\.jsonl, line 1: not a tidyctx ledger row",
        ),
        (b"hello, world\n", r"empty\.jsonl, line 1: not a tidyctx ledger"),
        (b"\xff\xfe\x00binary", r"empty\.jsonl, line 1: not UTF-8 text"),
        (b'{"ledger": "tidyctx/9"}\n', r"line 1: written in ledger format 'tidyctx/9'"),
        (
            b'{"ledger": "tidyctx/1", "usage": {"input_tokens": -3}}\n',
            r"line 1: usage: .*non-negative",
        ),
        (b'{"ledger": "tidyctx/1", "cost": "3"}\n', r"line 1: cost must be a number"),
        (b"[1, 2]\n", r"line 1: a row must be a JSON object"),
    ],
    ids=["empty", "blank", "request-log", "text", "binary", "newer", "usage", "cost", "array"],
)
def test_bad_ledger_files_get_errors_naming_file_and_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(LedgerError, match=message):
        read_ledger(path)


def test_a_directory_is_no_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="is a directory"):
        read_ledger(tmp_path)
    with pytest.raises(IsADirectoryError):
        Ledger(tmp_path)
    with pytest.raises(ValueError, match="run"):
        Ledger(tmp_path / "x.jsonl", run="")


def test_an_unwritable_ledger_warns_and_the_call_goes_on(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "missing-dir" / "l.jsonl")
    with pytest.warns(LedgerWarning, match="could not be written"):
        assert ledger.record(row()) is False


def test_report_prints_a_ledgers_totals_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "usage.jsonl"
    ledger = Ledger(path, run="r1")
    for _ in range(3):
        ledger.write({**row(), "baseline_cost": 0.002})
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "calls    3 (0 failed) + 0 summary calls" in out and "by model" in out and "r1" in out
    assert main(["report", "--json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["calls"] == 3 and data["by_run"]["r1"]["cost"] == pytest.approx(0.003)
    assert data["total"]["saved"] == pytest.approx(0.003)


def test_report_names_the_cut_line_of_a_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "usage.jsonl"
    Ledger(path).write(row())
    with open(path, "ab") as f:
        f.write(b'{"ledger":"tidyctx/1","ts":')
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "usage.jsonl, line 2: the last line is cut short" in err


def test_iter_ledger_streams(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    for _ in range(5):
        ledger.write(row())
    rows = iter_ledger(path)
    assert next(rows)["kind"] == "call"  # a generator: one row at a time
    assert sum(1 for _ in rows) == 4
    assert tc.read_ledger is read_ledger and tc.LedgerError is LedgerError


def test_report_json_of_a_recorded_run(capsys: pytest.CaptureFixture[str]) -> None:
    trace = SRC.parent / "data" / "traces" / "openhands-sdk-claude-sonnet4-hello-world.json"
    assert main(["report", "--json", str(trace)]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["calls"] > 0 and run["cost"] > 0 and run["nocache"] >= run["cost"]


@settings(max_examples=60)
@given(
    st.one_of(gen.tool_sessions(), gen.requests()),
    st.sampled_from(["claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"]),
    st.sampled_from(["order", "trim", "cache", "summarize-like"]),
)
def test_a_steps_tokens_saved_is_the_difference_of_the_whole_counts(
    request: dict[str, Any], model: str, step: str
) -> None:
    before = {**request, "model": model}
    if step == "summarize-like":  # fewer messages: the whole requests are counted
        messages = before["messages"]
        after = (
            {**before, "messages": [messages[0], *messages[3:]]} if len(messages) > 3 else before
        )
    else:
        transform = {
            "order": tc.order(),
            "trim": tc.trim(max_tokens=40, store=tc.MemoryStore()),
            "cache": tc.cache(),
        }[step]
        after = tc.pipe(before, transform)
    counter = tc.LocalCounter(model)
    whole = counter.count_request(before) - counter.count_request(after)
    assert changed_steps([(step, before, after)], model) == [
        {"transform": step, "tokens_saved": whole}
    ]
