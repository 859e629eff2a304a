"""The command line: `tidyctx report` and `tidyctx cache-check`, run as a user would, on the
bundled traces, a Claude Code session log, the shared trace collection where present, unreadable
files, and a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import tidyctx as tc
from builders import SHARED_TRACES, cc_line
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


def _claude_code_log(path: Path) -> Path:
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 0,
        "output_tokens": 30,
    }
    usage2 = {**usage, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000}

    def reply(mid: str, block: dict[str, Any], u: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-5-20251101",
            "content": [block],
            "stop_reason": None,
            "usage": u,
        }

    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}
    lines = [
        "// Source: a published fixture with a comment header",
        json.dumps({"type": "file-history-snapshot", "messageId": "m0", "snapshot": {}}),
        # A JavaScript logger that cut an emoji in half leaves a lone surrogate escape.
        cc_line("user", "u1", None, {"role": "user", "content": "List the files \ud83d"}),
        cc_line("assistant", "a1", "u1", reply("msg_1", {"type": "text", "text": "Sure."}, usage)),
        cc_line("assistant", "a2", "a1", reply("msg_1", tool_use, usage)),
        cc_line("user", "u2", "a2", {"role": "user", "content": [result]}),
        cc_line(
            "assistant",
            "side",
            "u2",
            reply("msg_side", {"type": "text", "text": "sub-agent"}, usage),
            isSidechain=True,
        ),
        cc_line("assistant", "a3", "u2", reply("msg_2", {"type": "text", "text": "a.py"}, usage2)),
    ]
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")  # with a BOM
    return path


def test_report_reads_a_claude_code_session_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _claude_code_log(tmp_path / "session.jsonl")
    assert main(["report", str(log)]) == 0
    out = capsys.readouterr().out
    assert "2 API calls" in out  # two responses; the side chain is not the main thread
    model = pricing.lookup("claude-opus-4-5-20251101")
    cost = (
        pricing.cost(
            {"input_tokens": 10, "cache_creation_input_tokens": 2000, "output_tokens": 30}, model
        ).total
        + pricing.cost(
            {
                "input_tokens": 10,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 2000,
                "output_tokens": 30,
            },
            model,
        ).total
    )
    assert f"Cost ${cost:.4f}" in out
    assert main(["cache-check", str(log)]) == 0


SHARED = SHARED_TRACES


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared trace collection is not here")
@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in SHARED.glob("*.json*")) if SHARED.is_dir() else [],
)
def test_report_runs_on_every_shared_trace(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(SHARED / name)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    calls = int(captured.out.split(" API calls")[0].rsplit("\n", 1)[-1])
    assert calls > 0
    if name.endswith(".jsonl") and (SHARED / name.replace(".jsonl", ".json")).exists():
        # A session log reads as the same API calls as its conversion to a run file.
        assert "input tokens sent in all (recorded usage)" in captured.out


GARBAGE = {
    "list.json": "[1, 2, 3]",
    "usage.json": json.dumps(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
            ],
            "turns": [{"usage": {"input_tokens": "many", "output_tokens": 1}}],
        }
    ),
    "empty.jsonl": "\n\n",
    "empty.json": "",
    "binary.jsonl": "\udcff\udcfe",
    "when.json": json.dumps(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
            ],
            "turns": [{"ts": "yesterday"}],
        }
    ),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
@pytest.mark.parametrize("command", ["report", "cache-check"])
def test_garbage_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, command: str
) -> None:
    path = tmp_path / name
    path.write_bytes(GARBAGE[name].encode("utf-8", "surrogateescape"))
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tidyctx {command}: {name}")
    assert "Traceback" not in err


def test_report_into_a_closed_pipe_stops_quietly() -> None:
    trace = Path(__file__).resolve().parents[1] / "data" / "traces"
    done = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidyctx._cli",
            "report",
            str(trace / "cc-sessionshare-generaltoolcalls.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert done.stdout is not None and done.stderr is not None
    done.stdout.close()  # like `| head -0`: the reader is gone before the first line
    err = done.stderr.read().decode()
    assert done.wait(timeout=60) in (0, 1)
    assert "Traceback" not in err


def _cli(*args: str, **popen: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidyctx._cli", *args],
        capture_output="stdout" not in popen,
        stderr=subprocess.PIPE if "stdout" in popen else None,
        text=True,
        timeout=120,
        **popen,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX file descriptors")
@pytest.mark.parametrize("args", [["report", str(TRACE)], ["outline", __file__]])
def test_a_closed_standard_output_is_a_clear_error(args: list[str]) -> None:
    done = _cli(*args, stdout=None, preexec_fn=lambda: os.close(1))
    assert done.returncode == 2
    assert "standard output is closed" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["report", str(TRACE)], ["outline", __file__]])
def test_a_full_device_is_a_clear_error(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = _cli(*args, stdout=full)
    assert done.returncode == 1
    assert "cannot write the output: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("command", ["report", "cache-check", "outline"])
def test_an_endless_binary_stream_is_refused_at_once(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "/dev/zero"]) == 2
    assert "not a text file" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_an_endless_text_stream_is_read_up_to_a_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tc.traces, "MAX_FILE_BYTES", 1 << 20)
    fifo = tmp_path / "endless.jsonl"
    os.mkfifo(fifo)

    def write_forever() -> None:
        try:
            with open(fifo, "w") as f:
                while True:
                    f.write('{"request": {"messages": []}}\n' * 1000)
        except OSError:  # the reader closed the pipe
            pass

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    assert main(["report", str(fifo)]) == 2
    assert "more than 1,048,576 bytes" in capsys.readouterr().err
    writer.join(timeout=60)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "log.jsonl",
            "\n".join(
                json.dumps({"request": {"messages": [{"role": "user", "content": "hi"}]}, "ts": t})
                for t in (1_767_225_600, 1_767_225_660)
            ).replace("1767225660", "1e400"),
        ),
        (
            "run.json",
            json.dumps(
                {
                    "model": "claude-sonnet-4-6",
                    "messages": [
                        {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "yo"},
                    ],
                    "turns": [{"ts": 1_767_225_600}],
                }
            ).replace("1767225600", "1e400"),
        ),
    ],
)
@pytest.mark.parametrize("command", ["report", "cache-check"])
def test_a_timestamp_beyond_any_float_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, command: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot read a timestamp from inf" in err
    assert err.startswith(f"tidyctx {command}: {name}")
