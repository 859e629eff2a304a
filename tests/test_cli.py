"""The command line: `tidyctx report` and `tidyctx cache-check`, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tidyctx as tc
from tidyctx import pricing
from tidyctx._cli import main
from tidyctx.traces import load_run

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
TRACE = DATA / "cc-sessionshare-generaltoolcalls.json"


def test_report_prices_the_recorded_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(TRACE)]) == 0
    out = capsys.readouterr().out
    run = load_run(TRACE)
    expected = sum(pricing.cost(t.usage, run.model).total for t in run.turns if t.usage)
    assert f"Cost ${expected:.4f}" in out
    assert f"{len(run.turns)} API calls" in out
    assert "license  MIT" in out


def test_report_as_a_subprocess_like_make_demo() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidyctx._cli",
            "report",
            str(DATA / "openhands-sdk-claude-sonnet4-hello-world.json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "6 API calls" in done.stdout


def test_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "no/such/trace.json"]) == 2
    assert "No such file" in capsys.readouterr().err
    assert main(["cache-check", "no/such/log.jsonl"]) == 2


def _volatile_log(tmp_path: Path, *transforms: Any) -> Path:
    system = "You are the support agent for Acme Inc. Follow the refund policy. " * 120
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Where is order 1234?"}]
    lines = []
    for k in range(4):
        request = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 256,
            "system": system + f"\nCurrent time: 2026-11-25T10:0{k}:00Z",
            "messages": json.loads(json.dumps(messages)),
        }
        lines.append(
            json.dumps({"request": tc.pipe(request, *transforms), "ts": 1_767_225_600 + 60 * k})
        )
        messages += [
            {"role": "assistant", "content": f"Checking step {k}."},
            {"role": "user", "content": f"Thanks, and step {k}?"},
        ]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines))
    return path


def test_cache_check_names_a_volatile_timestamp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without order() every turn misses, and cache-check says where and why."""
    assert main(["cache-check", str(_volatile_log(tmp_path, tc.cache()))]) == 0
    out = capsys.readouterr().out
    assert out.count("miss: system_changed at system[0]: changed bytes") == 3
    assert "Current time: 2026-11-25T10:00:00Z" in out  # the bytes around the change
    assert "Current time: 2026-11-25T10:01:00Z" in out
    assert "0% read from the cache" in out


def test_cache_check_after_order_every_turn_hits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache-check", str(_volatile_log(tmp_path, tc.order(), tc.cache()))]) == 0
    out = capsys.readouterr().out
    assert "0 misses explained above." in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    hits = [row[5] for row in rows if len(row) >= 6]
    assert hits[0] == "0%" and all(int(h.rstrip("%")) >= 95 for h in hits[1:])


def test_cache_check_shows_recorded_usage_and_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "rules " * 1500, "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": "hi"}],
    }
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1700}
    diagnostics = {"cache_miss_reason": {"type": "system_changed", "cache_missed_input_tokens": 42}}
    log = tmp_path / "log.jsonl"
    log.write_text(
        json.dumps({**request, "ts": 0, "usage": usage})
        + "\n"
        + json.dumps({"request": request, "ts": 10, "usage": usage, "diagnostics": diagnostics})
    )
    assert main(["cache-check", str(log)]) == 0
    out = capsys.readouterr().out
    assert "rec read" in out and "1,700" in out
    assert "API diagnostics: system_changed (42 missed)" in out
    assert "recorded:" in out


def test_cache_check_says_when_nothing_is_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache-check", str(_volatile_log(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "No request carries a cache_control breakpoint" in out
    assert "tc.cache()" in out
