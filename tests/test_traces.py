"""tidyctx.traces: loading trace files and request logs written by other tools (a byte order
mark, lone surrogates, a bad timestamp named by its turn) and reading their timestamps."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anthropic
import pytest

import tidyctx as tc
from builders import as_trace, code, every_transform, scaffold_runs, tool_loop
from tidyctx.testing import LocalServer
from tidyctx.traces import load, load_run, parse_ts


def test_load_skips_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_text(
        json.dumps(as_trace("bom", scaffold_runs()["openai_converted"])), encoding="utf-8-sig"
    )
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert load_run(path).id == "bom"


def test_load_names_the_turn_with_a_bad_timestamp(tmp_path: Path) -> None:
    trace = as_trace("bad", scaffold_runs()["openai_converted"])
    trace["turns"][2]["ts"] = "yesterday"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(trace))
    with pytest.raises(ValueError, match=r"bad\.json: turns\[2\]\.ts: cannot read a timestamp"):
        load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not JSON"):
        load(path)


def test_load_replaces_lone_surrogates(tmp_path: Path) -> None:
    # A JavaScript logger that cut an emoji in half writes "\ud83d": Python reads a lone
    # surrogate that it can neither hash nor send (UnicodeEncodeError in trim, cache, the SDK).
    request = tool_loop("Emoji \ud83d cut.", [f"\ud83d{code(i)}\ude00 tail" for i in range(4)])
    path = tmp_path / "surrogates.json"
    path.write_text(json.dumps(as_trace("surrogates", request)), encoding="ascii")
    run = load_run(path)
    assert run.meta["replaced_surrogates"] == 9  # the task, and two in each result
    last = run.turns[-1].request
    assert "\ufffd" in json.dumps(last, ensure_ascii=False)
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        for turn in run.turns:
            out = tc.pipe(turn.request, *every_transform(client))
            client.messages.create(**out)
    log = tmp_path / "surrogates.jsonl"
    log.write_text(json.dumps({"request": last, "ts": 1}).replace("\\ufffd", "\\udc00") + "\n")
    assert load_run(log).meta["replaced_surrogates"] == 9


def test_parse_ts_reads_epoch_milliseconds_and_digit_strings() -> None:
    seconds = parse_ts("2026-01-21T15:30:20.123Z")
    assert seconds == pytest.approx(1769009420.123)
    assert parse_ts(1769009420123) == pytest.approx(seconds)  # JavaScript Date.now()
    assert parse_ts(1769009420123000) == pytest.approx(seconds)  # microseconds
    assert parse_ts(1769009420123000000) == pytest.approx(seconds)  # nanoseconds
    assert parse_ts("1769009420") == 1769009420.0
    assert parse_ts(1769009420) == 1769009420.0
    assert parse_ts("") is None


def test_parse_ts_reads_a_time_without_zone_as_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pure: the same file gives the same times on every machine, whatever its TZ.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_ts("2026-01-21T15:30:20") == parse_ts("2026-01-21T15:30:20Z")
    finally:
        monkeypatch.undo()
        time.tzset()
