"""A demanding user's review of the core: order(), cache(), pipe/explain, the request model
and the `tidyctx report` command, on the input real agents send and on adversarial input.

Each problem the review found has a test here that failed before its fix.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, TextBlock, ThinkingBlock, ToolUseBlock, Usage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from runs import cc_line
from tidyctx import pricing
from tidyctx._cli import main
from tidyctx._request import ValidationError, cache_markers, to_plain
from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter

PROPS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
E5 = {"type": "ephemeral"}
E1H = {"type": "ephemeral", "ttl": "1h"}
POLICY = "Follow the refund policy and answer in the customer's language. " * 160
SHARED = Path("/work/shared/traces")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def client_for(server: LocalServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)


def agent_request(**extra: Any) -> dict[str, Any]:
    """A request as an agent builds it: string system with a clock, tools (one with the user's
    own cache_control, two server tools), the SDK response appended as the assistant turn."""
    reply = Message(
        id="msg_01",
        type="message",
        role="assistant",
        model="claude-sonnet-4-6",
        content=[
            ThinkingBlock(type="thinking", thinking="Need the listing.", signature="sig=="),
            TextBlock(type="text", text="Listing the files.", citations=None),
            ToolUseBlock(
                type="tool_use",
                id="toolu_01",
                name="run",
                input={"cmd": "ls", "env": {"Z": "1", "A": [3, {"y": 2, "x": 1}]}},
            ),
        ],
        stop_reason="tool_use",
        stop_sequence=None,
        usage=Usage(input_tokens=10, output_tokens=5),
    )
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4096,
        "system": POLICY + "\r\nCurrent time: 2026-11-25T10:00:00Z\r\nBe kind.",
        "tools": [
            {
                "name": "run",
                "description": "Run a shell command. " * 300,
                "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
                "cache_control": E5,
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "bash_20250124", "name": "bash"},
        ],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-1"},
        "output_config": {"effort": "high"},
        "messages": [
            {"role": "user", "content": "Which files are here? 😀 Привет\r\n" * 50},
            {"role": "assistant", "content": reply.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": "a.py\r\nb.py\r\nnotes 日本語.txt",
                    }
                ],
            },
        ],
    }
    request.update(extra)
    return request


# ---------------------------------------------------------------------------- real agent input


def test_an_agent_request_with_sdk_objects_goes_through_and_the_sdk_sends_it(
    server: LocalServer,
) -> None:
    request = agent_request()
    snapshot = copy.deepcopy(request)
    out = tc.pipe(request, tc.order(), tc.cache())
    assert request == snapshot  # SDK objects included: nothing mutated
    tc.validate(out)
    assert tc.pipe(out, tc.order(), tc.cache()) == out
    assert json.loads(json.dumps(out)) == out  # plain JSON data only
    markers = cache_markers(out)
    assert len(markers) <= 4
    assert out["tools"][[t["name"] for t in out["tools"]].index("run")]["cache_control"] == E5
    assert out["messages"][1]["content"][0]["type"] == "thinking"  # passed back unmodified
    assert "cache_control" not in out["messages"][1]["content"][0]
    response = client_for(server).messages.create(**out)
    assert response.usage.cache_creation_input_tokens > 0
    # The same request again is read from the cache (the local server runs cachesim).
    again = client_for(server).messages.create(**tc.pipe(request, tc.order(), tc.cache()))
    assert again.usage.cache_read_input_tokens == response.usage.cache_creation_input_tokens


def test_beta_only_keys_pass_through_to_the_beta_client(server: LocalServer) -> None:
    request = agent_request(
        betas=["context-management-2025-06-27"],
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        mcp_servers=[{"type": "url", "url": "https://mcp.example.com/sse", "name": "docs"}],
        extra_headers={"x-trace": "1"},
    )
    out = tc.pipe(request, tc.order(), tc.cache())
    for key in ("betas", "context_management", "mcp_servers", "extra_headers"):
        assert out[key] == request[key]
    tc.validate(out)
    assert client_for(server).beta.messages.create(**out).content


def test_documents_search_results_citations_and_server_blocks(server: LocalServer) -> None:
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "The sky is blue."},
        "title": "facts",
        "citations": {"enabled": True},
    }
    search = {
        "type": "search_result",
        "source": "https://example.com/a",
        "title": "A",
        "content": [{"type": "text", "text": "Result text."}],
    }
    cited = {
        "type": "text",
        "text": "The sky is blue.",
        "citations": [
            {
                "type": "char_location",
                "cited_text": "The sky is blue.",
                "document_index": 0,
                "document_title": "facts",
                "start_char_index": 0,
                "end_char_index": 16,
            }
        ],
    }
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": POLICY,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [
            {"role": "user", "content": [document, search, {"type": "text", "text": "Color?"}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_01",
                        "name": "web_search",
                        "input": {"query": "sky"},
                    },
                    {
                        "type": "web_search_tool_result",
                        "tool_use_id": "srvtoolu_01",
                        "content": [
                            {
                                "type": "web_search_result",
                                "url": "https://example.com/sky",
                                "title": "Sky",
                                "encrypted_content": "EqgfCioIARgBIiQ3",
                            }
                        ],
                    },
                    cited,
                ],
            },
            {"role": "user", "content": "And at night?"},
        ],
    }
    out = tc.pipe(request, tc.order(), tc.cache())
    tc.validate(out)
    assert out["messages"][1] == request["messages"][1]  # server blocks go back as received
    assert client_for(server).messages.create(**out).content


def test_a_2000_turn_conversation() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Start the audit."}]
    for k in range(2000):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": f"t{k}", "name": "run", "input": {"n": k, "a": 1}}
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{k}", "content": f"ok {k}"}],
            }
        )
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": POLICY + "\nToday is 2026-11-25.",
        "tools": [{"name": "run", "description": "Run.", "input_schema": {"type": "object"}}],
        "messages": messages,
    }
    out = tc.pipe(request, tc.order(), tc.cache())
    tc.validate(out)
    assert tc.pipe(out, tc.order(), tc.cache()) == out
    assert [p for p, _ in cache_markers(out)] == ["system[0]", "messages[4000].content[0]"]


# ---------------------------------------------------------------------------- fixed problems


def test_a_lone_surrogate_is_named_not_a_unicode_error(server: LocalServer) -> None:
    # Half of an emoji, as a tool that cuts UTF-16 text leaves it. The SDK cannot send it...
    broken = "partial \ud83d"
    request = agent_request()
    request["messages"][2]["content"][0]["content"] = broken
    with pytest.raises(UnicodeEncodeError):
        client_for(server).messages.create(**to_plain(request))
    # ...so validate() says where it is, and order()/cache() name it instead of crashing.
    where = "messages[2].content[0].content"
    with pytest.raises(ValidationError, match=r"lone UTF-16 surrogate") as err:
        tc.validate(request)
    assert err.value.path == where
    for transform in (tc.order(), tc.cache()):
        with pytest.raises(ValidationError) as err:
            tc.pipe(request, transform)
        assert err.value.path == where


def test_a_whitespace_only_system_string_passes_order() -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": "  \n ",
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = tc.pipe(request, tc.order(), tc.cache())
    assert out["system"] == "  \n "
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def _system(*markers: dict[str, str] | None) -> list[dict[str, Any]]:
    blocks = [{"type": "text", "text": f"Part {i}. " + POLICY} for i in range(len(markers))]
    for block, marker in zip(blocks, markers, strict=True):
        if marker is not None:
            block["cache_control"] = marker
    return blocks


@pytest.mark.parametrize(
    ("extra", "path", "words"),
    [
        ({"system": _system(E5, E5, E5, E5, E5)}, "system[4].cache_control", "5 cache_control"),
        (
            {
                "tools": [
                    {"name": f"t{i}", "input_schema": {"type": "object"}, "cache_control": E5}
                    for i in range(4)
                ],
                "cache_control": E5,
            },
            "cache_control",
            "5 cache_control",
        ),
        ({"system": _system(E5, E1H)}, "system[1].cache_control.ttl", "1h breakpoint comes after"),
    ],
)
def test_cache_refuses_user_markers_the_api_rejects(
    extra: dict[str, Any], path: str, words: str
) -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi " * 2000}],
        **extra,
    }
    with pytest.raises(ValidationError, match=words) as err:
        tc.cache()(request)
    assert err.value.path == path
    assert "cache() keeps your own cache_control markers" in str(err.value)


def test_user_markers_inside_old_tool_results_do_not_hold_a_slot() -> None:
    # The caller caches three tool groups and once marked a tool result's text. Kept, that
    # old marker filled the 4th slot for the rest of the conversation: no rolling breakpoint.
    tools = [
        {
            "name": f"tool_{i}",
            "description": "Does things. " * 500,
            "input_schema": {"type": "object"},
            "cache_control": E5,
        }
        for i in range(3)
    ]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Go."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "a", "name": "tool_0", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "a",
                    "content": [{"type": "text", "text": "rows " * 500, "cache_control": E5}],
                }
            ],
        },
        {"role": "assistant", "content": "Done with the rows."},
        {"role": "user", "content": "Now summarize. " * 100},
    ]
    request = {"model": "claude-sonnet-4-6", "max_tokens": 64, "tools": tools, "messages": messages}
    out = tc.cache()(request)
    assert [p for p, _ in cache_markers(out)] == [
        "tools[0]",
        "tools[1]",
        "tools[2]",
        "messages[4].content[0]",
    ]
    assert tc.cache()(out) == out
    tc.validate(out)


def test_our_breakpoint_before_a_user_1h_marker_is_1h_too() -> None:
    # The caller marks the system 1h; cache() adds the tools breakpoint before it. At 5m that
    # broke "1h before 5m" (PC) and the API would answer 400.
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "tools": [
            {"name": "run", "description": "Run. " * 2000, "input_schema": {"type": "object"}}
        ],
        "system": [{"type": "text", "text": POLICY, "cache_control": E1H}],
        "messages": [{"role": "user", "content": "hi " * 100}],
    }
    out = tc.cache()(request)
    tc.validate(out)
    assert cache_markers(out) == [
        ("tools[0]", E1H),
        ("system[0]", E1H),
        ("messages[0].content[0]", E5),
    ]


def test_deep_json_is_named_not_a_recursion_error() -> None:
    deep: dict[str, Any] = {}
    at = deep
    for _ in range(3000):
        at["a"] = {}
        at = at["a"]
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "x", "name": "n", "input": deep}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "x", "content": "ok"}],
            },
        ],
    }
    for call in (
        lambda: tc.validate(request),
        lambda: tc.pipe(request, tc.order()),
        lambda: tc.pipe(request, tc.cache()),
        lambda: tc.explain(request, tc.order(), tc.cache()),
    ):
        with pytest.raises(ValidationError, match="levels deep") as err:
            call()
        assert err.value.path.startswith("messages[1].content[0].input.a.a")


@PROPS
@given(gen.requests(with_cache_control=True), st.sampled_from(["order", "clock", "choice"]))
def test_explain_kept_plus_rewritten_is_the_whole_request(
    request: dict[str, Any], change: str
) -> None:
    def clock(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "system": "Now: 2026-11-25T10:00:00Z"}

    def choice(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "tool_choice": {"type": "any"}}

    first = {"order": tc.order(), "clock": clock, "choice": choice}[change]
    report = tc.explain(request, first, tc.cache(min_tokens=0))
    for step in report.steps:
        if step.first_change is not None:
            assert step.prefix_kept_tokens + step.prefix_broken_tokens == step.tokens_after
            assert step.prefix_kept_tokens >= 0 and step.prefix_broken_tokens >= 0
    assert str(report)


def test_explain_a_tool_choice_change_keeps_tools_and_system() -> None:
    # PC: tool_choice invalidates the messages only; tools and system stay cached.
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": POLICY,
        "tools": [{"name": "run", "description": "Run.", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi " * 100}],
    }

    def force(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "tool_choice": {"type": "any"}}

    step = tc.explain(request, force).steps[0]
    assert step.first_change == "tool_choice"
    counter = LocalCounter("claude-sonnet-4-6")
    without_messages = counter.count_request({**force(request), "messages": []})
    assert step.prefix_kept_tokens == without_messages
    assert step.prefix_broken_tokens == step.tokens_after - without_messages


_TTL = st.sampled_from([None, E5, E1H])


@PROPS
@given(gen.requests(), st.data())
def test_any_user_markers_give_a_valid_request_or_a_named_error(
    request: dict[str, Any], data: st.DataObject
) -> None:
    """Markers anywhere, any TTL, top-level too: cache() returns a valid request with at most
    4 breakpoints, or (only when the caller's own tools/system/top-level markers break the
    API's rules) a ValidationError naming one."""
    request = copy.deepcopy(request)
    own: list[str] = []
    for tool in request.get("tools", []):
        if (m := data.draw(_TTL)) is not None:
            tool["cache_control"] = m
            own.append(m.get("ttl", "5m"))
    if isinstance(request.get("system"), list):
        for block in request["system"]:
            if (m := data.draw(_TTL)) is not None:
                block["cache_control"] = m
                own.append(m.get("ttl", "5m"))
    for message in request["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                if (m := data.draw(_TTL)) is not None:
                    block["cache_control"] = m  # thinking blocks too: cache() must drop it
                inner = block.get("content") if block["type"] == "tool_result" else None
                if isinstance(inner, list) and inner and (m := data.draw(_TTL)) is not None:
                    inner[-1]["cache_control"] = m
    top = data.draw(_TTL)
    if top is not None:
        request["cache_control"] = top
    snapshot = copy.deepcopy(request)
    try:
        out = tc.pipe(request, tc.order(), tc.cache(min_tokens=0))
    except ValidationError as err:
        assert "cache_control" in err.path
        bad_order = "5m" in own and "1h" in own[own.index("5m") :]
        assert len(own) + (top is not None) > 4 or bad_order or "automatic" in str(err)
        return
    finally:
        assert request == snapshot
    tc.validate(out)
    assert len(cache_markers(out)) <= 4
    assert tc.pipe(out, tc.order(), tc.cache(min_tokens=0)) == out


# ---------------------------------------------------------------------------- the CLI


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
