"""tidyctx.traces.load on Claude Code session logs as published: damaged lines, Claude Code's
own synthetic messages, compactions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import cc_line as line
from tidyctx.traces import load_run


def reply(mid: str, text: str, model: str = "claude-opus-4-5-20251101") -> dict[str, Any]:
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_a_redacted_line_is_skipped_with_a_warning_and_the_thread_goes_on(tmp_path: Path) -> None:
    lines = [
        line("user", "u1", None, user("first question")),
        line("assistant", "a1", "u1", reply("m1", "first answer")),
        # A redaction tool broke this line's JSON; the next line's parent is on it.
        line("user", "u2", "a1", user("second question")).replace('"u2"', '"u2", x: [REDACTED]'),
        line("assistant", "a2", "u2", reply("m2", "second answer")),
        line("user", "u3", "a2", user("third question")),
        line("assistant", "a3", "u3", reply("m3", "third answer")),
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"skipped 1 line\(s\).*s\.jsonl:3"):
        run = load_run(path)
    # All three responses are turns: the chain is not cut at the missing parent.
    assert [t.reply["content"][0]["text"] for t in run.turns if t.reply] == [
        "first answer",
        "second answer",
        "third answer",
    ]
    last = run.turns[-1].request["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "assistant", "user"]
    assert "third question" in json.dumps(last[-1])


def test_claude_codes_own_messages_are_not_api_calls(tmp_path: Path) -> None:
    lines = [
        line("user", "u1", None, user("go")),
        line("assistant", "a0", "u1", reply("m0", "API Error: overloaded", model="<synthetic>")),
        line("user", "u2", "a0", user("go again")),
        line("assistant", "a1", "u2", reply("m1", "done")),
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = load_run(path)
    assert len(run.turns) == 1 and run.model == "claude-opus-4-5-20251101"
    assert run.meta["synthetic_messages_skipped"] == 1
    # The two user lines around the skipped notice are one user message.
    messages = run.turns[0].request["messages"]
    assert len(messages) == 1 and messages[0]["role"] == "user"


def test_a_request_log_with_a_broken_line_is_an_error(tmp_path: Path) -> None:
    good = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [user("hi")]})
    path = tmp_path / "requests.jsonl"
    path.write_text(good + "\n{broken\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"requests\.jsonl:2: not JSON"):
        load_run(path)


def tool_reply(mid: str, call: str) -> dict[str, Any]:
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-5-20251101",
        "content": [{"type": "tool_use", "id": call, "name": "Read", "input": {"path": call}}],
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def result(call: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call, "content": "x"}],
    }


def test_parallel_results_on_side_lines_and_lost_lines_give_valid_requests(tmp_path: Path) -> None:
    import tidyctx as tc

    space = {**reply("m1", "\n\n")}  # a whitespace-only text block, logged but never sent
    lines = [
        line("user", "u1", None, user("read a, b and c")),
        line("assistant", "a0", "u1", space),
        # One response, three calls (a line each); each result's parent is its call's line.
        line("assistant", "a1", "a0", tool_reply("m1", "t_a")),
        line("assistant", "a2", "a1", tool_reply("m1", "t_b")),
        line("assistant", "a3", "a2", tool_reply("m1", "t_c")),
        line("user", "r1", "a1", result("t_a")),
        line("user", "r3", "a3", result("t_c")),
        # t_b's result line was redacted into broken JSON.
        line("user", "r2", "a2", result("t_b")).replace('"r2"', '"r2" [REDACTED]'),
        line("assistant", "a4", "r3", reply("m2", "all read")),
        line("user", "u5", "a4", result("t_gone")),  # its call's line is lost
        line("assistant", "a5", "u5", reply("m3", "done")),
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="skipped 1 line"):
        run = load_run(path)
    assert len(run.turns) == 3
    for turn in run.turns:
        tc.validate(turn.request)  # strict: roles alternate, every call answered
    second = run.turns[1].request["messages"]
    assert [b["id"] for b in second[1]["content"]] == ["t_a", "t_b", "t_c"]  # no "\n\n" block
    results = {b["tool_use_id"]: b["content"] for b in second[2]["content"]}
    assert results["t_a"] == "x" and results["t_c"] == "x"  # the side line was followed
    assert "missing from the session log" in results["t_b"]
    last = run.turns[2].request["messages"]
    assert "t_gone" not in json.dumps(last)  # a result without its call is dropped
    assert run.meta["tool_pairs_repaired"] >= 2
