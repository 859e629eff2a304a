"""The real Claude Code CLI behind ``tidyctx proxy``: no code change, only ANTHROPIC_BASE_URL.

The CLI (installed once per machine from npm, see ``claude_code.py``; skipped, saying why,
where npm is absent) runs a scripted tool loop through a proxy with the default pipeline to a
LocalServer. Every request it sends goes through the pipeline (none fails open), reaches the
server valid, and the long Bash output arrives cut; the session ends with the scripted answer
and the ledger holds one row per call. ``tidyctx run -- claude ...`` does the same with a proxy
of its own and prints the session's cost and saving.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import claude_code
import tidyctx as tc
from proxy_helpers import proxy_to
from tidyctx.proxy._pipeline import select_pipeline
from tidyctx.testing import LocalServer

ANSWER = "All counted: DONE-7."
LINES = 4000


def _responder(body: dict[str, Any]) -> Any:
    if not body.get("tools"):
        return "Counting"  # a side call (a title)
    if claude_code.tool_results(body) == 0:
        command = {"command": f"seq 1 {LINES}", "description": "Count"}
        return [
            {"type": "thinking", "thinking": "Count first."},
            {"type": "tool_use", "name": "Bash", "input": command},
        ]
    return [{"type": "thinking", "thinking": "Done."}, {"type": "text", "text": ANSWER}]


@pytest.fixture(scope="module")
def session(
    claude_cli: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], list[Any], list[dict[str, Any]]]]:
    """(the CLI's JSON result, the requests the server received, the proxy's ledger rows)."""
    work = tmp_path_factory.mktemp("project")
    transforms = select_pipeline("defaults", tc.MemoryStore())
    with (
        LocalServer(responder=_responder) as srv,
        proxy_to(srv.base_url, transforms) as (
            proxy,
            rows,
        ),
    ):
        result = claude_code.run(claude_cli, proxy.base_url, f"Count to {LINES} with seq.", work)
        yield result, [r for r in srv.requests if r.path == "/v1/messages"], rows


def test_claude_code_ends_its_session_through_the_proxy(
    session: tuple[dict[str, Any], list[Any], list[dict[str, Any]]],
) -> None:
    result, requests, _ = session
    assert result["is_error"] is False, result
    assert result["result"] == ANSWER
    tool_calls = [r for r in requests if r.body.get("tools")]
    assert [claude_code.tool_results(r.body) for r in tool_calls] == [0, 1]


def test_every_claude_code_request_goes_through_the_pipeline_and_arrives_valid(
    session: tuple[dict[str, Any], list[Any], list[dict[str, Any]]],
) -> None:
    _, requests, rows = session
    for recorded in requests:
        tc.validate(recorded.body)
        assert any(m.get("role") == "system" for m in recorded.body["messages"]) or not (
            recorded.body.get("tools")
        )
    messages_rows = [
        row for row in rows if row.get("path", "/v1/messages").startswith("/v1/messages")
    ]
    assert len(messages_rows) == len(requests), rows
    assert not [row for row in messages_rows if row.get("fail_open")], messages_rows


def test_the_long_bash_output_reaches_the_server_cut(
    session: tuple[dict[str, Any], list[Any], list[dict[str, Any]]],
) -> None:
    _, requests, rows = session
    last = [r for r in requests if r.body.get("tools")][-1].body
    results = [
        block
        for message in last["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    (bash,) = results
    text = bash["content"] if isinstance(bash["content"], str) else bash["content"][0]["text"]
    assert "[tidyctx: " in text and "tidyctx_expand" in text
    assert text.count("\n") < LINES / 4
    cut = [row for row in rows if row.get("tokens_before") and row.get("tokens_after")]
    assert any(row["tokens_after"] < row["tokens_before"] for row in cut), rows


def test_tidyctx_run_puts_the_proxy_in_front_of_claude_code(
    claude_cli: Path, tmp_path: Path
) -> None:
    """``tidyctx run -- claude ...``: the CLI reaches the server through a proxy it started,
    its exit code and answer come back, and the session's cost and saving are printed."""
    src = str(Path(__file__).resolve().parent.parent / "src")
    home = tmp_path / "home"
    home.mkdir()
    ledger = tmp_path / "ledger.jsonl"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": src,
        "HOME": str(home),
        "ANTHROPIC_API_KEY": "test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    with LocalServer(responder=_responder) as server:
        done = subprocess.run(
            [
                sys.executable, "-m", "tidyctx", "run", "--port", "0",
                "--upstream", server.base_url, "--store", "memory:", "--ledger", str(ledger),
                "--", str(claude_cli), "-p", f"Count to {LINES} with seq.",
                "--output-format", "json", "--allowedTools", "Bash",
            ],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        received = [r for r in server.requests if r.path == "/v1/messages"]
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["result"] == ANSWER
    assert re.search(r"tidyctx: \d+ API calls, cost \$\d+\.\d+, saved \$\d+\.\d+", done.stderr)
    rows = tc.read_ledger(ledger)
    assert len(rows) == len(received) >= 2
    assert not [row for row in rows if row.get("fail_open")]
