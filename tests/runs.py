"""Small recorded-looking agent runs for the tests (plain builders, not strategies)."""

from __future__ import annotations

import json
from typing import Any

OPTIONS: dict[str, Any] = {
    "trigger": 4_000,
    "keep": 3,
    "target_tokens": 400,
    "max_payback_turns": None,  # steps as soon as MIN_STEP allows
}
"""summarize() settings small enough for agent_run() to pass the trigger in a few turns."""


def agent_run(steps: int, lines: int = 40) -> dict[str, Any]:
    """One task, then a tool loop of ``steps`` read_file calls."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix src/app/parse.py."}]
    for i in range(steps):
        call = {
            "type": "tool_use",
            "id": f"toolu_{i:03d}",
            "name": "read_file",
            "input": {"path": f"src/app/mod_{i}.py"},
        }
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "Next."}, call]})
        body = f"def handler_{i}(event):\n    return {7000 + i}\n" + "# unchanged\n" * lines
        result = {"type": "tool_result", "tool_use_id": f"toolu_{i:03d}", "content": body}
        messages.append({"role": "user", "content": [result]})
    return {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": messages}


def turns(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The request of each turn of ``run``: every message up to a tool result."""
    messages = run["messages"]
    return [{**run, "messages": messages[:end]} for end in range(3, len(messages) + 1, 2)]


def cc_line(kind: str, uuid: str, parent: str | None, message: Any, **extra: Any) -> str:
    """One line of a Claude Code session log (main thread unless ``extra`` says otherwise)."""
    entry = {
        "parentUuid": parent,
        "isSidechain": False,
        "sessionId": "s-1",
        "type": kind,
        "uuid": uuid,
        "timestamp": "2026-01-21T15:30:00.000Z",
        "message": message,
        **extra,
    }
    return json.dumps(entry)


SERVER_BLOCKS = (
    "server_tool_use",
    "web_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "code_execution_tool_result",
)
"""Blocks the API writes into the assistant's turn for its own tools; transforms pass them back
as received (some carry encrypted data, and the docs do not say a client may edit them)."""


def server_blocks(request: dict[str, Any]) -> list[str]:
    """The request's :data:`SERVER_BLOCKS`, each as canonical JSON, in order."""
    return [
        json.dumps(b, sort_keys=True)
        for m in request["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") in SERVER_BLOCKS
    ]
