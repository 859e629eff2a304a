"""Robustness on agent runs unlike the bundled traces: other scaffolds' shapes, odd tool-result
formats, screenshots, parallel calls, thinking, server-tool blocks, earlier tidyctx output.

Every run is generated here (small, offline) and replayed turn by turn through
``order, slice_code, trim, summarize, cache`` with the real SDK against the local server; the
loaders, reference recall and the replay benchmarks are run on the same runs written as traces.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from runs import server_blocks
from tidyctx._request import cache_content, canonical_json, iter_blocks
from tidyctx.recall import reference_recall
from tidyctx.testing import LocalServer
from tidyctx.text._project import project_text
from tidyctx.traces import load, load_run, parse_ts
from tidyctx.transforms._compact import compact_text
from tidyctx.transforms._summarize import ACK, summary_message

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SUMMARY = {"trigger": 3_000, "keep": 2, "max_payback_turns": None}

# ---------------------------------------------------------------------------- run builders

_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def image() -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _PNG}}


def call(i: int, name: str, args: dict[str, Any], prefix: str = "toolu_") -> dict[str, Any]:
    return {"type": "tool_use", "id": f"{prefix}{i:04d}", "name": name, "input": args}


def result(i: int, content: Any, prefix: str = "toolu_", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": f"{prefix}{i:04d}", "content": content, **extra}


def tool(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool.", "input_schema": {"type": "object"}}


def code(i: int, n: int = 120) -> str:
    return "\n".join(f"def handler_{i}_{k}(event):\n    return {1000 + k}" for k in range(n))


def tool_loop(
    task: str, results: list[Any], names: tuple[str, ...] = ("read_file",), prefix: str = "toolu_"
) -> dict[str, Any]:
    """One task, then one call per assistant turn, answered by ``results`` in order."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    for i, content in enumerate(results):
        name = names[i % len(names)]
        args = {"path": f"src/m{i}.py", "n": i}
        messages.append(
            {
                "role": "assistant",
                "content": [{"type": "text", "text": f"Step {i}."}, call(i, name, args, prefix)],
            }
        )
        messages.append({"role": "user", "content": [result(i, content, prefix)]})
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": "You are an agent.",
        "tools": [tool(n) for n in sorted(set(names))],
        "messages": messages,
    }


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


def runs() -> dict[str, dict[str, Any]]:
    """Requests shaped like other scaffolds' runs, each ending with a user message."""
    out: dict[str, dict[str, Any]] = {}
    out["langchain_names"] = tool_loop(
        "Find the bug.", [code(i) for i in range(8)], ("search-docs", "fs_read-file", "repl-run")
    )
    openai = tool_loop("Book it.", ["ok " * 2000] * 6, ("get_weather",), prefix="call_")
    openai["system"] = [{"type": "text", "text": "Converted from an OpenAI chat log."}]
    out["openai_converted"] = openai
    aider: list[dict[str, Any]] = []
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
    out["aider_text_only"] = {"model": "claude-sonnet-4-6", "max_tokens": 256, "messages": aider}
    out["computer_use"] = tool_loop(
        "Open the settings page.",
        [
            [image(), {"type": "text", "text": f"screenshot {i} at (120, {i * 7})"}]
            for i in range(30)
        ],
        ("computer",),
    )
    parallel: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "tools": [tool("grep")],
        "messages": [{"role": "user", "content": "Grep for every pattern."}],
    }
    for t in range(3):
        ids = [t * 100 + k for k in range(12)]
        parallel["messages"] += [
            {"role": "assistant", "content": [call(i, "grep", {"q": f"pat{i}"}) for i in ids]},
            {"role": "user", "content": [result(i, code(i % 100, 40)) for i in ids]},
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
    server["messages"][1]["content"][:0] = SERVER_BLOCKS
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


SERVER_BLOCKS: list[dict[str, Any]] = [
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

# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[LocalServer, anthropic.Anthropic]]:
    """One local server and real SDK client for the module (hypothesis needs no per-test
    fixture); the tests that count summary calls use their own server."""
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        yield server, client


def steps(client: Any, **summary: Any) -> list[Any]:
    return [
        tc.order(),
        tc.slice_code(),
        tc.trim(max_tokens=700, head=0.6, slack=0.5),
        tc.summarize(client, **{**SUMMARY, **summary}),
        tc.cache(),
    ]


def turn_requests(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The request of each turn: every prefix of the messages that ends with a user message."""
    messages = request["messages"]
    return [
        {**request, "messages": messages[:end]}
        for end in range(1, len(messages) + 1)
        if messages[end - 1]["role"] == "user"
    ]


def unanswered(request: dict[str, Any]) -> list[str]:
    """tool_use ids without a tool_result in the next message."""
    messages = request["messages"]
    missing = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or not isinstance(message["content"], list):
            continue
        after = messages[i + 1]["content"] if i + 1 < len(messages) else []
        answered = {b.get("tool_use_id") for b in after if isinstance(b, dict)}
        missing += [
            b["id"]
            for b in message["content"]
            if b.get("type") == "tool_use" and b["id"] not in answered
        ]
    return missing


def cached_prefix(request: dict[str, Any]) -> list[bytes]:
    """The blocks up to the last cache breakpoint, as the cache sees them."""
    blocks = list(iter_blocks(request))
    marked = [
        k
        for k, r in enumerate(blocks)
        if isinstance(r.block, dict) and r.block.get("cache_control")
    ]
    end = marked[-1] + 1 if marked else 0
    return [canonical_json(cache_content(r.block)) for r in blocks[:end]]


def as_trace(name: str, request: dict[str, Any]) -> dict[str, Any]:
    """A run in the trace format of ../shared/traces/README.md: the request's conversation
    with a final assistant message that names what it used."""
    messages = [
        *request["messages"],
        {"role": "assistant", "content": "Done: src/m1.py handler_1_2 1002."},
    ]
    count = sum(m["role"] == "assistant" for m in messages)
    return {
        "id": name,
        "source": "generated by tests/test_review_robust.py",
        "license": "MIT",
        "agent": "generated",
        "recorded_model": "claude-sonnet-4-6",
        "system": request.get("system", ""),
        "tools": request.get("tools", []),
        "messages": messages,
        "turns": [
            {"ts": f"2026-01-01T00:{k // 60:02d}:{k % 60:02d}Z", "usage": None}
            for k in range(count)
        ],
    }


# ---------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("name", sorted(runs()))
def test_pipeline_replays_unseen_runs(name: str) -> None:
    run = runs()[name]
    tc.validate(run)
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        pipeline = steps(client)
        previous: dict[str, Any] | None = None
        calls = 0
        for request in turn_requests(run):
            before = copy.deepcopy(request)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # none of these inputs is one a warning is for
                out = tc.pipe(request, *pipeline)
                assert tc.pipe(out, *pipeline) == out, "not idempotent"
            assert request == before, "input mutated"
            tc.validate(out)
            assert unanswered(out) == []
            client.messages.create(**out)  # the local server checks the body too
            made = len(server.summary_calls())
            if previous is not None and made == calls:
                # No summary step in between: the cached prefix of the last turn is kept.
                prefix = cached_prefix(previous)
                assert [canonical_json(cache_content(r.block)) for r in iter_blocks(out)][
                    : len(prefix)
                ] == prefix
            previous, calls = out, made


def test_server_tool_blocks_pass_through_with_other_names(served: Any) -> None:
    _, client = served
    request = runs()["server_tools"]
    out = tc.pipe(request, *steps(client)[:3])
    assert server_blocks(out) == server_blocks(request) != []


def test_summarize_fires_on_text_only_and_screenshot_runs() -> None:
    # Not a pass-through by accident: the runs without tool loops are summarized too.
    for name in ("aider_text_only", "computer_use", "earlier_tidyctx_output"):
        with (
            LocalServer() as server,
            anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
        ):
            out = tc.pipe(runs()[name], *steps(client))
            assert len(server.summary_calls()) >= 1, name
            assert out["messages"][0]["content"][0]["text"].startswith("<tidyctx-summary v1"), name
            assert tc.pipe(out, *steps(client)) == out


# ---------------------------------------------------------------------------- fixes


def test_trim_projection_keeps_integers_too_long_for_python() -> None:
    # Python refuses int() of 4,300+ digits with a ValueError, which escaped trim(project=...).
    text = '{"id": 7, "secret": "s", "big": ' + "9" * 5000 + ', "neg": -' + "1" * 4500 + "}"
    projected = project_text(text, ["id", "big", "neg"])
    assert projected.text == '{"id":7,"big":' + "9" * 5000 + ',"neg":-' + "1" * 4500 + "}"
    request = tool_loop("Query.", [text], ("sql",))
    out = tc.pipe(request, tc.trim(project={"sql": ["id", "big"]}))
    tc.validate(out)
    kept = out["messages"][2]["content"][0]["content"][0]["text"]
    assert kept.startswith('{"id":7,"big":' + "9" * 5000 + "}\n[tidyctx: projected to id, big")


def test_compact_keeps_carriage_return_line_endings() -> None:
    # A classic Mac / Excel CSV ends its rows with \r alone: taken for a progress bar's
    # redraws, every row overwrote the one before and 300 rows became one, with no marker.
    mac = payloads()["mac_csv"]
    assert compact_text(mac) == mac
    assert compact_text("header\n" + mac) == "header\n" + mac
    request = tool_loop("Read the export.", [mac], ("fetch",))
    out = tc.pipe(request, tc.trim())
    assert out["messages"][2]["content"][0]["content"][0]["text"] == mac


def test_compact_keeps_binary_text_with_carriage_returns() -> None:
    binary = "\x89PNG\x00\x00abc\rdef\x00" * 50 + "\nend"
    assert compact_text(binary) == binary


def test_compact_still_redraws_progress_bars() -> None:
    log = "pip install x\nDownloading 10%\rDownloading 55%\rDownloading 100%\ndone"
    assert compact_text(log) == "pip install x\nDownloading 100%\ndone"
    bar = "run\n 10%|██        | 1/10\r 50%|█████     | 5/10\r100%|██████████| 10/10\nok"
    assert compact_text(bar) == "run\n100%|██████████| 10/10\nok"
    pip = "x\n ━━━ 0.0/20.2 MB ? eta -:--:--\r ━━━ 20.2/20.2 MB 159.5 MB/s eta 0:00:00\nok"
    assert compact_text(pip) == "x\n ━━━ 20.2/20.2 MB 159.5 MB/s eta 0:00:00\nok"


def test_load_skips_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_text(json.dumps(as_trace("bom", runs()["openai_converted"])), encoding="utf-8-sig")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert load_run(path).id == "bom"


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
            out = tc.pipe(turn.request, *steps(client))
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


def test_load_names_the_turn_with_a_bad_timestamp(tmp_path: Path) -> None:
    trace = as_trace("bad", runs()["openai_converted"])
    trace["turns"][2]["ts"] = "yesterday"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(trace))
    with pytest.raises(ValueError, match=r"bad\.json: turns\[2\]\.ts: cannot read a timestamp"):
        load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not JSON"):
        load(path)


# ---------------------------------------------------------------------------- loaders, recall


def write_traces(folder: Path) -> list[Path]:
    paths = []
    for name, request in runs().items():
        if name == "formats":
            continue  # its 1 MB line makes the replay benchmarks slow; covered above
        path = folder / f"{name}.json"
        path.write_text(json.dumps(as_trace(name, request)))
        paths.append(path)
    return paths


def test_traces_load_and_recall_on_generated_runs(tmp_path: Path) -> None:
    for path in write_traces(tmp_path):
        run = load_run(path)
        requests = run.requests()
        assert len(requests) == len(run.turns) >= 1
        assert all(t.ts is not None for t in run.turns)
        pipeline = [tc.order(), tc.trim(max_tokens=700, head=0.6, slack=0.5), tc.cache()]
        sent = [tc.pipe(r, *pipeline) for r in requests]
        replies = [t.reply for t in run.turns]
        recall = reference_recall(requests, replies, sent)
        assert 0.0 <= recall.ratio <= 1.0
        assert len(recall.per_turn) == len(requests)
        # The untransformed requests recall every reference, by definition.
        same = reference_recall(requests, replies, requests)
        assert same.recalled == same.references
    run = load_run(tmp_path / "langchain_names.json")
    refs = reference_recall(run.requests(), [t.reply for t in run.turns], run.requests())
    assert refs.references > 0  # the final reply names src/m1.py, read by the first call


def test_replay_benchmarks_run_on_generated_traces(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import summarize_replay
        import trim_replay
    finally:
        sys.path.remove(str(BENCHMARKS))
    paths = write_traces(tmp_path)
    for path in paths:
        name, floor, _, result = trim_replay.measure((path, False))
        assert floor > 0 and set(result) == {"order+cache", "+trim"}, name
        for cost, recalled, references in result.values():
            assert cost > 0 and 0 <= recalled <= references
    row = summarize_replay.measure((tmp_path / "parallel_12.json", [dict(SUMMARY)], True))
    assert row["notes"][0], "no summary step on a 26k-token run with a 3k trigger"
    cost, calls, recalled, references = row["results"][0]
    assert cost > 0 and calls > 0 and 0 <= recalled <= references


# ---------------------------------------------------------------------------- properties

_PAYLOADS = st.sampled_from(sorted(set(payloads()) - {"one_mb_line"}))


@st.composite
def odd_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request (tests/strategies.py) whose tool results hold odd formats, cut short."""
    request = draw(gen.requests(min_turns=2, max_turns=5))
    texts = payloads()
    for message in request["messages"]:
        if not isinstance(message["content"], list):
            continue
        for block in message["content"]:
            if block.get("type") == "tool_result" and draw(st.booleans()):
                text = texts[draw(_PAYLOADS)]
                block["content"] = text[: draw(st.sampled_from([200, 5_000, 40_000]))]
    return request


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_requests())
def test_pipeline_properties_on_odd_results(served: Any, request: dict[str, Any]) -> None:
    _, client = served
    pipeline = steps(client, trigger=2_000, keep=1)
    before = copy.deepcopy(request)
    out = tc.pipe(request, *pipeline)
    assert request == before
    tc.validate(out)
    assert unanswered(out) == []
    assert tc.pipe(out, *pipeline) == out
