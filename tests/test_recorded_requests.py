"""Claude Code session logs that record the requests themselves (2.1.337 and later) load as
the requests sent: system prompt, tools, system messages and markers included.

A hand-built log checks the rebuilding offline; the real CLI (installed from npm, skipped
where npm is absent) then writes a log against a LocalServer, and every request the log gives
back is the request the server received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import claude_code
from builders import cc_line
from tidyctx._cli import main
from tidyctx._recorded_requests import message_hash
from tidyctx.testing import LocalServer
from tidyctx.traces import load_run

SYSTEM = [{"type": "text", "text": "You are a build agent."}, {"type": "text", "text": "Rules."}]
TOOLS = [
    {"name": "Bash", "description": "Run.", "input_schema": {"type": "object"}},
    {
        "name": "Later",
        "description": "x",
        "input_schema": {"type": "object"},
        "defer_loading": True,
    },
]
PARAMS = {
    "model": "claude-opus-5-5",
    "betas": ["claude-code-20250219", "effort-2025-11-24"],
    "max_tokens": 128000,
    "thinking": {"type": "adaptive", "display": "omitted"},
    "output_config": {"effort": "medium"},
}
FIRST = {
    "role": "user",
    "content": [{"type": "text", "text": "<reminder/>"}, {"type": "text", "text": "Go."}],
}
NOTE = {"role": "system", "content": [{"type": "text", "text": "# Environment\nlinux"}]}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
THINK = {"type": "thinking", "thinking": "", "signature": "sig_1"}
RESULT = {
    "role": "user",
    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}],
}
USAGE = {
    "input_tokens": 3,
    "cache_creation_input_tokens": 900,
    "cache_read_input_tokens": 0,
    "output_tokens": 20,
}


def _record(
    call_id: str,
    base: str | None,
    keep: int,
    tail: list[Any],
    marks: list[Any],
    source: str = "sdk",
) -> str:
    entry: dict[str, Any] = {
        "type": "api-request",
        "sessionId": "s-1",
        "id": call_id,
        "timestamp": "2026-12-07T10:00:00.000Z",
        "version": "2.1.337",
        "querySource": source,
        "shapeHash": "shape1",
        "params": PARAMS,
        "keep": keep,
        "tail": [message_hash(m) for m in tail],
        "cacheControl": [{"path": p, "value": {"type": "ephemeral"}} for p in marks],
    }
    if base is not None:
        entry["base"] = base
    return json.dumps(entry)


def _log(tmp_path: Path, *, lose_blob: bool = False) -> Path:
    lines = [
        json.dumps(
            {
                "type": "api-request-shape",
                "sessionId": "s-1",
                "shapeHash": "shape1",
                "shape": {"system": SYSTEM, "tools": TOOLS},
            }
        ),
        cc_line("user", "u1", None, {"role": "user", "content": "Go."}),
        json.dumps(
            {
                "type": "api-request-blob",
                "sessionId": "s-1",
                "hash": message_hash(NOTE),
                "message": NOTE,
            }
        ),
        _record("r1", None, 0, [FIRST, NOTE], [["system", 1], ["messages", 1, "content", 0]]),
        # One line per block of the response, both naming the call that produced them.
        cc_line(
            "assistant",
            "a1",
            "u1",
            {"id": "msg_1", "role": "assistant", "model": "claude-opus-5-5", "content": [THINK]},
            requestRef="r1",
        ),
        cc_line(
            "assistant",
            "a2",
            "a1",
            {
                "id": "msg_1",
                "role": "assistant",
                "model": "claude-opus-5-5",
                "content": [CALL],
                "usage": USAGE,
            },
            requestRef="r1",
        ),
        cc_line("user", "u2", "a2", RESULT),
        _record("t1", None, 0, [{"role": "user", "content": "Title?"}], [], source="title"),
        _record(
            "r2",
            "r1",
            2,
            [{"role": "assistant", "content": [THINK, CALL]}, RESULT],
            [["system", 1], ["messages", 3, "content", 0]],
        ),
    ]
    if not lose_blob:
        lines.insert(
            1,
            json.dumps(
                {
                    "type": "api-request-blob",
                    "sessionId": "s-1",
                    "hash": message_hash(FIRST),
                    "message": FIRST,
                }
            ),
        )
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _marked(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "cache_control": {"type": "ephemeral"}}


def test_the_recorded_requests_come_back_as_sent(tmp_path: Path) -> None:
    run = load_run(_log(tmp_path))
    assert [len(t.request["messages"]) for t in run.turns] == [
        2,
        4,
    ]  # the title call is not the loop's
    first, second = (t.request for t in run.turns)
    assert first["system"] == [SYSTEM[0], _marked(SYSTEM[1])]
    assert first["tools"] == TOOLS
    assert first["messages"] == [
        FIRST,
        {"role": "system", "content": [_marked(NOTE["content"][0])]},
    ]
    assert second["messages"] == [
        FIRST,
        NOTE,
        {"role": "assistant", "content": [THINK, CALL]},
        {"role": "user", "content": [_marked(RESULT["content"][0])]},
    ]
    assert {k: first[k] for k in ("model", "max_tokens", "thinking", "output_config")} == {
        k: PARAMS[k] for k in ("model", "max_tokens", "thinking", "output_config")
    }
    assert "betas" not in first and run.meta["betas"] == PARAMS["betas"]
    assert run.turns[0].usage == USAGE and run.turns[1].usage is None
    assert run.turns[0].reply == {"role": "assistant", "content": [THINK, CALL]}
    assert run.meta["claude_code_version"] == "2.1.337"


def test_a_log_whose_records_cannot_be_rebuilt_is_read_from_its_conversation_lines(
    tmp_path: Path,
) -> None:
    run = load_run(_log(tmp_path, lose_blob=True))
    assert "requests as recorded" not in run.meta["agent"]
    assert all("system" not in t.request for t in run.turns)
    assert run.turns[0].request["messages"][0] == {
        "role": "user",
        "content": [{"type": "text", "text": "Go."}],
    }


# ---------------------------------------------------------------------------- the real CLI


def test_claude_codes_own_log_gives_back_every_request_it_sent(
    claude_cli: Path, tmp_path: Path
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / "app.py").write_text("def f(x):\n    return x\n", encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()

    def responder(body: dict[str, Any]) -> Any:
        if not body.get("tools"):
            return "A title"
        done = claude_code.tool_results(body)
        if done < 4:
            call = (
                {"name": "Bash", "input": {"command": f"seq {done} 3000", "description": "Count"}}
                if done % 2 == 0
                else {"name": "Read", "input": {"file_path": str(work / "app.py")}}
            )
            return [{"type": "thinking", "thinking": f"Step {done}."}, {"type": "tool_use", **call}]
        return [{"type": "thinking", "thinking": "Done."}, {"type": "text", "text": "DONE"}]

    with LocalServer(responder=responder) as server:
        result = claude_code.run(claude_cli, server.base_url, "Work through it.", work, home=home)
        received = [
            r.body for r in server.requests if r.path == "/v1/messages" and r.body.get("tools")
        ]
    assert result["result"] == "DONE"
    (log,) = (home / ".claude" / "projects").glob("*/*.jsonl")
    run = load_run(log)
    assert "requests as recorded" in run.meta["agent"]
    assert len(run.turns) == len(received) == 5

    def as_sent(body: dict[str, Any]) -> dict[str, Any]:
        # The log leaves out the billing header block and the metadata; a string content is
        # the one text block it stands for (the same prompt and cache keys).
        out = {k: v for k, v in body.items() if k not in ("metadata", "stream")}
        out["system"] = [
            b for b in body["system"] if not b["text"].startswith("x-anthropic-billing-header:")
        ]
        out["messages"] = [
            {**m, "content": [{"type": "text", "text": m["content"]}]}
            if isinstance(m["content"], str)
            else m
            for m in body["messages"]
        ]
        return out

    for turn, body in zip(run.turns, received, strict=True):
        assert turn.request == as_sent(body)
        assert turn.usage is not None and turn.reply is not None


def test_the_report_counts_a_recorded_log_as_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(_log(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "requests as recorded" in out
    assert "'counted' is tidyctx's local estimate of the request as recorded." in out
    assert "lacks the system prompt" not in out
