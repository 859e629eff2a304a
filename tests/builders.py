"""Test data builders: requests, agent runs, Claude Code log lines and trace files.

Plain, deterministic functions (the hypothesis strategies are in ``strategies.py``). Every tool
loop below is made of :func:`exchange`, one assistant ``tool_use`` and the user turn holding its
``tool_result``; the builders differ in the task, the call ids, the text before each call, and
the request's other keys, which the tests that use them depend on.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tidyctx as tc
from tidyctx.transforms._summarize import ACK, summary_message

BUNDLED_TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"
"""The traces shipped with the repository."""
SHARED_TRACES = Path(
    os.environ.get("TIDYCTX_TRACES", Path(__file__).resolve().parents[2] / "shared" / "traces")
)
"""A larger trace collection beside the checkout (or at $TIDYCTX_TRACES); tests that need it
skip, saying so, where it is absent."""

Block = dict[str, Any]
Message = dict[str, Any]
Request = dict[str, Any]
Call = tuple[str, dict[str, Any], Any] | tuple[str, dict[str, Any], Any, bool]
"""(tool name, input, result content), with an optional is_error flag."""

MODEL = "claude-sonnet-4-6"

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
"""A 1x1 PNG, base64: the ``data`` of an image block's source."""

POLICY = "Follow the refund policy and answer in the customer's language. " * 160
"""A system prompt long enough to cache on every model (about 1,900 tokens)."""

# ---------------------------------------------------------------------------- blocks and turns


def tool_use(call_id: str, name: str, args: dict[str, Any]) -> Block:
    return {"type": "tool_use", "id": call_id, "name": name, "input": args}


def tool_result(call_id: str, content: Any, **extra: Any) -> Block:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def tool_definition(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool.", "input_schema": {"type": "object"}}


def exchange(
    call_id: str,
    name: str,
    args: dict[str, Any],
    content: Any,
    *,
    say: str | None = None,
    is_error: bool = False,
) -> list[Message]:
    """An assistant turn calling ``name`` (after a text block ``say``, if given) and the user
    turn holding its result."""
    call = tool_use(call_id, name, args)
    said = [] if say is None else [{"type": "text", "text": say}]
    result = tool_result(call_id, content, **({"is_error": True} if is_error else {}))
    return [{"role": "assistant", "content": [*said, call]}, {"role": "user", "content": [result]}]


def tool_messages(
    task: str, calls: Sequence[Call], *, call_id: str = "call_{k}", say: str | None = None
) -> list[Message]:
    """The user's ``task``, then one :func:`exchange` per call. ``call_id`` and ``say`` are
    formatted with the call's index ``k`` and tool ``name``."""
    messages: list[Message] = [{"role": "user", "content": task}]
    for k, (name, args, content, *flag) in enumerate(calls):
        messages += exchange(
            call_id.format(k=k),
            name,
            args,
            content,
            say=None if say is None else say.format(k=k, name=name),
            is_error=bool(flag and flag[0]),
        )
    return messages


# ---------------------------------------------------------------------------- tool loops


def conversation(results: Sequence[Call]) -> Request:
    """A request whose assistant turns call tools with these (name, input, result text), each
    call after a line that says so (ids ``call_0``...); the tools are defined."""
    messages = tool_messages(
        "Investigate the failing job.", results, say="Step {k}: calling {name}."
    )
    tools = [tool_definition(n) for n in sorted({r[0] for r in results})]
    return {"model": MODEL, "max_tokens": 100, "tools": tools, "messages": messages}


def plain_conversation(specs: Sequence[Call], *, system: str | None = None) -> Request:
    """One user prompt, then per spec an assistant tool_use (ids ``toolu_000``...) and its
    tool_result: no text besides, no tool definitions."""
    messages = tool_messages("Investigate.", specs, call_id="toolu_{k:03d}")
    request: Request = {"model": MODEL, "max_tokens": 1024, "messages": messages}
    if system:
        request["system"] = system
    return request


def call(name: str, args: dict[str, Any], result: Any, k: int = 0) -> list[Message]:
    """One call (id ``call_{k}``) and its result, a turn for :func:`request`."""
    return exchange(f"call_{k}", name, args, result)


def request(*turns: list[Message]) -> Request:
    """The task "Find the stuck orders.", then these turns (see :func:`call`)."""
    messages: list[Message] = [{"role": "user", "content": "Find the stuck orders."}]
    for turn in turns:
        messages += turn
    return {"model": MODEL, "max_tokens": 100, "messages": messages}


def with_system_line(request: Request, line: str) -> Request:
    """A copy of ``request`` whose system prompt has ``line`` appended (as a new line)."""
    out = copy.deepcopy(request)
    system = out.get("system")
    if system is None:
        out["system"] = line
    elif isinstance(system, str):
        out["system"] = system + "\n" + line
    else:
        system[-1]["text"] += "\n" + line
    return out


def first_texts(request: Request) -> list[str]:
    """The text of each tool result: its content if a string, else its first block's text."""
    out = []
    for message in request["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result":
                content = block["content"]
                out.append(content if isinstance(content, str) else content[0]["text"])
    return out


def result_of(message: Message, index: int = 0) -> str:
    """The text of the tool result at ``index`` of ``message``: its content if a string (as the
    client sent it), else its first block's text."""
    content = message["content"][index]["content"]
    text = content if isinstance(content, str) else content[0]["text"]
    assert isinstance(text, str)
    return text


def one_call(tool: str, call_input: dict[str, Any], result: str) -> Request:
    """A question, one call of ``tool`` (id ``t1``) and its result."""
    messages = tool_messages(
        "Why does helper_17 return a bad path?", [(tool, call_input, result)], call_id="t1"
    )
    return {"model": MODEL, "max_tokens": 64, "messages": messages}


def tool_loop(
    task: str, results: list[Any], names: tuple[str, ...] = ("read_file",), prefix: str = "toolu_"
) -> Request:
    """One task, then one call per assistant turn (tools taken in turn from ``names``, ids
    ``{prefix}0000``...), answered by ``results`` in order; a system prompt and the tools."""
    calls: list[Call] = [
        (names[i % len(names)], {"path": f"src/m{i}.py", "n": i}, content)
        for i, content in enumerate(results)
    ]
    return {
        "model": MODEL,
        "max_tokens": 256,
        "system": "You are an agent.",
        "tools": [tool_definition(n) for n in sorted(set(names))],
        "messages": tool_messages(task, calls, call_id=prefix + "{k:04d}", say="Step {k}."),
    }


# ---------------------------------------------------------------------------- agent runs

OPTIONS: dict[str, Any] = {
    "trigger": 4_000,
    "keep": 3,
    "target_tokens": 400,
    "max_payback_turns": None,  # steps as soon as MIN_STEP allows
}
"""summarize() settings small enough for the agent runs below to pass the trigger in a few
turns."""


def _read_file_calls(steps: int, lines: int) -> list[Call]:
    return [
        (
            "read_file",
            {"path": f"src/app/mod_{i}.py"},
            f"def handler_{i}(event):\n    return {7000 + i}\n" + "# unchanged\n" * lines,
        )
        for i in range(steps)
    ]


def read_file_loop(steps: int, lines: int = 40) -> Request:
    """One task, then a tool loop of ``steps`` read_file calls with results of about ``lines``
    lines; no system prompt, no tool definitions."""
    messages = tool_messages(
        "Fix src/app/parse.py.",
        _read_file_calls(steps, lines),
        call_id="toolu_{k:03d}",
        say="Next.",
    )
    return {"model": MODEL, "max_tokens": 1024, "messages": messages}


def agent_run(steps: int, lines: int = 40) -> Request:
    """A coding agent's run: its system prompt and read_file tool, one task, then a tool loop of
    ``steps`` calls with results of about ``lines`` lines."""
    messages = tool_messages(
        "Fix the failing test in src/app/parse.py (CI job 4521).",
        _read_file_calls(steps, lines),
        call_id="toolu_{k:03d}",
        say="Reading module {k}.",
    )
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "system": "You are a coding agent.",
        "tools": [
            {
                "name": "read_file",
                "description": "Read a file.",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            }
        ],
        "messages": messages,
    }


def config_audit_run(
    steps: int,
    lines: int = 90,
    *,
    task: str = "Audit the config files under etc/app/ (ticket OPS-3317).",
) -> Request:
    """A task and a tool loop of ``steps`` cat calls, each result about ``lines`` * 9 tokens
    (about 2,000 tokens at the default)."""
    calls: list[Call] = [
        (
            "cat",
            {"n": i},
            "\n".join(
                f"etc/app/f{i}.conf line {j}: key_{i}_{j} = {1000 * i + j}" for j in range(lines)
            ),
        )
        for i in range(steps)
    ]
    messages = tool_messages(task, calls, call_id="toolu_{k:03d}", say="Next.")
    return {"model": MODEL, "max_tokens": 1024, "messages": messages}


def turns(run: Request) -> list[Request]:
    """The request of each turn of a tool-loop ``run``: every message up to a tool result."""
    messages = run["messages"]
    return [{**run, "messages": messages[:end]} for end in range(3, len(messages) + 1, 2)]


# ---------------------------------------------------------------------------- other scaffolds

_SCREENSHOT = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def image() -> Block:
    """A 1x1 PNG image block, as a computer-use screenshot."""
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": _SCREENSHOT},
    }


def code(i: int, n: int = 120) -> str:
    """``n`` small Python functions, named after ``i``."""
    return "\n".join(f"def handler_{i}_{k}(event):\n    return {1000 + k}" for k in range(n))


def deep_json(depth: int) -> str:
    return '{"a":' * depth + "0" + "}" * depth


def payloads() -> dict[str, str]:
    """Tool-result texts of the kinds real tools return, none of them friendly."""
    rnd = random.Random(7)
    return {
        "html": "<html><body>"
        + "".join(f"<div class='row'><a href='/p/{i}'>item {i}</a></div>" for i in range(800))
        + "</body></html>",
        "csv": "id,name,price\n" + "\n".join(f"{i},item{i},{i * 3.5}" for i in range(2000)),
        "mac_csv": "id,name,qty\r"
        + "\r".join(f"{i},{'abcdefgh'[i % 8] * 3},{i * 3}" for i in range(300)),
        "minified_js": "".join(f"function f{i}(a){{return a*{i}+g{i}(a)}};" for i in range(3000)),
        "base64": base64.b64encode(bytes(rnd.randrange(256) for _ in range(60_000))).decode(),
        "binary_nul": "".join(chr(rnd.randrange(0, 32)) + "abc\x00def" for _ in range(5000)),
        "crlf_log": "\r\n".join(f"2026-01-01 INFO line {i} ok" for i in range(2000)),
        "ansi": "\n".join(
            f"\x1b[32mPASS\x1b[0m test_{i} \x1b[1m({i}ms)\x1b[0m" for i in range(2000)
        ),
        "one_mb_line": "x" * 1_000_000,
        "deep_json": deep_json(500),
        "duplicate_keys": "{" + ",".join(f'"k":{i}' for i in range(3000)) + "}",
        "huge_numbers": '{"rows":['
        + ",".join(f'{{"id":{i},"v":1e308,"w":{"9" * 50}}}' for i in range(300))
        + '],"big":'
        + "9" * 5000
        + "}",
        "nan": '{"rows":['
        + ",".join(f'{{"id":{i},"v":NaN,"w":Infinity}}' for i in range(800))
        + "]}",
        "old_marker": '[tidyctx: 3,000 tokens cut; id="0123abcd", read it with tidyctx_expand]\n'
        + code(9),
    }


_SEARCH_AND_MCP: list[Block] = [
    {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"q": "x"}},
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://w.example",
                "title": "W",
                "encrypted_content": "ZW5j" * 300,
            }
        ],
    },
    {"type": "mcp_tool_use", "id": "mcptoolu_01", "name": "q", "server_name": "db", "input": {}},
    {
        "type": "mcp_tool_result",
        "tool_use_id": "mcptoolu_01",
        "is_error": False,
        "content": [{"type": "text", "text": code(5, 400)}],
    },
]


def scaffold_runs() -> dict[str, Request]:
    """Requests shaped like other scaffolds' runs, each ending with a user message."""
    out: dict[str, Request] = {}
    out["langchain_names"] = tool_loop(
        "Find the bug.", [code(i) for i in range(8)], ("search-docs", "fs_read-file", "repl-run")
    )
    openai = tool_loop("Book it.", ["ok " * 2000] * 6, ("get_weather",), prefix="call_")
    openai["system"] = [{"type": "text", "text": "Converted from an OpenAI chat log."}]
    out["openai_converted"] = openai
    aider: list[Message] = []
    for i in range(10):
        aider.append({"role": "user", "content": f"Change handler_{i}_3 in app.py\n" + code(i, 60)})
        aider.append(
            {
                "role": "assistant",
                "content": f"app.py\n```python\n<<<<<<< SEARCH\n{code(i, 5)}\n=======\n"
                f"pass\n>>>>>>> REPLACE\n```",
            }
        )
    aider.append({"role": "user", "content": "Thanks, now the tests."})
    out["aider_text_only"] = {"model": MODEL, "max_tokens": 256, "messages": aider}
    out["computer_use"] = tool_loop(
        "Open the settings page.",
        [
            [image(), {"type": "text", "text": f"screenshot {i} at (120, {i * 7})"}]
            for i in range(30)
        ],
        ("computer",),
    )
    parallel: Request = {
        "model": MODEL,
        "max_tokens": 256,
        "tools": [tool_definition("grep")],
        "messages": [{"role": "user", "content": "Grep for every pattern."}],
    }
    for t in range(3):
        ids = [t * 100 + k for k in range(12)]
        uses = [tool_use(f"toolu_{i:04d}", "grep", {"q": f"pat{i}"}) for i in ids]
        results = [tool_result(f"toolu_{i:04d}", code(i % 100, 40)) for i in ids]
        parallel["messages"] += [
            {"role": "assistant", "content": uses},
            {"role": "user", "content": results},
        ]
    out["parallel_12"] = parallel
    shapes = tool_loop("Odd results.", ["x"] * 7)
    odd: list[Any] = ["plain string " * 500, [], [image()], None, "", "Traceback: boom\n" * 300]
    for k, content in enumerate(odd):
        block = shapes["messages"][2 + 2 * k]["content"][0]
        if content is None:
            del block["content"]
        else:
            block["content"] = content
    shapes["messages"][12]["content"][0]["is_error"] = True
    out["result_shapes"] = shapes
    out["formats"] = tool_loop("Look at these.", list(payloads().values()), ("fetch", "run"))
    thinking = tool_loop("Think first.", [code(i) for i in range(5)])
    for k, message in enumerate(thinking["messages"]):
        if message["role"] == "assistant":
            first = (
                {"type": "thinking", "thinking": f"plan {k}", "signature": "c2ln"}
                if k % 4 == 1
                else {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="}
            )
            message["content"].insert(0, first)
    thinking.update(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2000})
    out["thinking"] = thinking
    server = tool_loop("Search, then read.", [code(i) for i in range(4)], ("mcp__fs-read",))
    server["tools"].append({"type": "web_search_20250305", "name": "web_search"})
    server["messages"][1]["content"][:0] = _SEARCH_AND_MCP
    out["server_tools"] = server
    out["huge_first_message"] = tool_loop(
        "Summarize this file:\n" + code(0, 4000), [code(i) for i in range(3)]
    )
    marker = payloads()["old_marker"].split("\n", 1)[0]
    earlier = tool_loop("Go on.", [f"{marker}\n{code(i)}" for i in range(5)])
    earlier["messages"][:1] = [
        summary_message("## Task\nFix src/m1.py.", "0123456789abcdef"),
        {"role": "assistant", "content": [{"type": "text", "text": ACK}]},
        {"role": "user", "content": "Continue."},
    ]
    out["earlier_tidyctx_output"] = earlier
    return out


SCAFFOLD_SUMMARY: dict[str, Any] = {
    "trigger": 3_000,
    "keep": 2,
    "max_payback_turns": None,
}
"""summarize() settings under which most of :func:`scaffold_runs` get a summary step."""


def every_transform(client: Any, **summary: Any) -> list[Any]:
    """``order, slice_code, trim, summarize, cache`` (summarize with ``client``, under
    :data:`SCAFFOLD_SUMMARY` updated by ``summary``)."""
    return [
        tc.order(),
        tc.slice_code(),
        tc.trim(max_tokens=700, head=0.6, slack=0.5),
        tc.summarize(client, **{**SCAFFOLD_SUMMARY, **summary}),
        tc.cache(),
    ]


def as_trace(name: str, request: Request) -> dict[str, Any]:
    """``request`` as a trace file (the format tidyctx.traces.load reads): its conversation with
    a final assistant message that names what it used, one timestamp per assistant turn."""
    messages = [
        *request["messages"],
        {"role": "assistant", "content": "Done: src/m1.py handler_1_2 1002."},
    ]
    count = sum(m["role"] == "assistant" for m in messages)
    return {
        "id": name,
        "source": "generated by tests/builders.py",
        "license": "MIT",
        "agent": "generated",
        "recorded_model": MODEL,
        "system": request.get("system", ""),
        "tools": request.get("tools", []),
        "messages": messages,
        "turns": [
            {"ts": f"2026-01-01T00:{k // 60:02d}:{k % 60:02d}Z", "usage": None}
            for k in range(count)
        ],
    }


# ---------------------------------------------------------------------------- logs and blocks


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


SERVER_BLOCK_TYPES = (
    "server_tool_use",
    "web_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "code_execution_tool_result",
)
"""Blocks the API writes into the assistant's turn for its own tools; transforms pass them back
as received (some carry encrypted data, and the docs do not say a client may edit them)."""


def server_blocks(request: Request) -> list[str]:
    """The request's blocks of :data:`SERVER_BLOCK_TYPES`, each as canonical JSON, in order."""
    return [
        json.dumps(b, sort_keys=True)
        for m in request["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") in SERVER_BLOCK_TYPES
    ]
