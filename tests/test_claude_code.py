"""Claude Code's requests: today's Messages API as a real client sends it.

Claude Code 2.1 sends a ``role: "system"`` message inside ``messages`` (2.1.337 ends its first
request with one, carrying the cache breakpoint), adaptive thinking, an effort,
context-management edits and a row of betas that changes from release to release. Every
request it sends must pass ``validate`` and ``LocalServer``, and every transform (and the
recommended pipeline) must give a request the API accepts, with the system messages where the
client put them.

A first request of two releases, captured from the CLI (session and device ids and temporary
paths replaced), is kept in ``tests/data/claude_code/first_request_<version>.json`` so that
the shapes are tested without npm; the
tests at the end install the CLI itself (once per machine, see ``claude_code.py``) and run it
through a scripted tool loop against a LocalServer.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import anthropic
import pytest

import claude_code
import tidyctx as tc
from tidyctx import cachesim
from tidyctx._request import cache_markers
from tidyctx.testing import LocalServer

CAPTURES = sorted((Path(__file__).parent / "data" / "claude_code").glob("first_request_*.json"))
RELEASES = [path.stem.removeprefix("first_request_") for path in CAPTURES]

PIPELINE = (tc.order(), tc.slice_code(), tc.trim(max_tokens=400), tc.cache())
"""The recommended pipeline (docs/recipes.md)."""


def _captured(release: str) -> dict[str, Any]:
    path = CAPTURES[RELEASES.index(release)]
    captured: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return captured


def test_both_captured_releases_are_here() -> None:
    assert RELEASES == ["2.1.197", "2.1.337"]


def _systems(request: dict[str, Any]) -> list[tuple[int, Any]]:
    return [(i, m) for i, m in enumerate(request["messages"]) if m.get("role") == "system"]


def _post(server: LocalServer, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    data = json.dumps({**body, "stream": False}).encode("utf-8")
    request = urllib.request.Request(
        f"{server.base_url}/v1/messages?beta=true",
        data=data,
        method="POST",
        headers={**headers, "content-type": "application/json", "x-api-key": "test"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LocalServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as c:
        yield c


def _transforms(client: anthropic.Anthropic) -> dict[str, Callable[[Any], Any]]:
    return {
        "order": tc.order(),
        "cache": tc.cache(),
        "trim": tc.trim(max_tokens=400),
        "clear": tc.clear(tc.Clearing(keep=0, trigger=0, clear_at_least=0)),
        "compact": tc.compact(),
        "slice_code": tc.slice_code(max_tokens=100),
        "summarize": tc.summarize(client, trigger=500, keep=1, target_tokens=200),
    }


NAMES = ("order", "cache", "trim", "clear", "compact", "slice_code", "summarize")


def check_sent(
    request: dict[str, Any], out: dict[str, Any], server: LocalServer, headers: dict[str, str]
) -> None:
    """``out`` (a transform's result for ``request``) is valid, accepted by the local API, and
    keeps every system message as sent, in the same order."""
    tc.validate(out)
    status, answer = _post(server, out, headers)
    assert status == 200, answer
    before = [m for _, m in _systems(request)]
    assert [m for _, m in _systems(out)] == before
    if len(out["messages"]) == len(request["messages"]):  # nothing summarized: same places
        assert [i for i, _ in _systems(out)] == [i for i, _ in _systems(request)]


# ---------------------------------------------------------------------------- the captured shape


@pytest.mark.parametrize("release", RELEASES)
def test_the_captured_request_holds_todays_shapes(release: str) -> None:
    captured = _captured(release)
    request = captured["body"]
    assert request["messages"][1]["role"] == "system"
    assert request["thinking"]["type"] == "adaptive"
    assert request["output_config"]["effort"] in ("low", "medium", "high", "xhigh", "max")
    assert request["context_management"]["edits"][0]["type"] == "clear_thinking_20251015"
    assert "claude-code-20250219" in captured["headers"]["anthropic-beta"]
    assert captured["headers"]["user-agent"].startswith(f"claude-cli/{release} ")
    tc.validate(request)


def test_the_newer_release_marks_the_system_message_that_ends_its_first_request() -> None:
    request = _captured("2.1.337")["body"]
    last = request["messages"][-1]
    assert last["role"] == "system"
    assert last["content"][-1]["cache_control"] == {"type": "ephemeral"}
    out = tc.cache()(request)
    # Kept as sent, marker included; the breakpoint there still covers the whole prefix.
    assert out["messages"][-1] == last
    assert len(cache_markers(out)) <= 4


@pytest.mark.parametrize("release", RELEASES)
def test_the_local_server_accepts_the_captured_request(server: LocalServer, release: str) -> None:
    captured = _captured(release)
    status, answer = _post(server, captured["body"], captured["headers"])
    assert status == 200, answer
    assert answer["content"][0]["type"] == "text"


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", NAMES)
def test_each_transform_keeps_the_captured_request_valid(
    name: str, release: str, server: LocalServer, client: anthropic.Anthropic
) -> None:
    captured = _captured(release)
    request = captured["body"]
    before = copy.deepcopy(request)
    out = _transforms(client)[name](request)
    assert request == before
    check_sent(request, out, server, captured["headers"])


@pytest.mark.parametrize("release", RELEASES)
def test_the_pipeline_keeps_the_captured_request_valid(server: LocalServer, release: str) -> None:
    captured = _captured(release)
    out = tc.pipe(captured["body"], *PIPELINE)
    check_sent(captured["body"], out, server, captured["headers"])
    assert tc.pipe(out, *PIPELINE) == out


# ---------------------------------------------------------------------------- the real CLI

ANSWER = "The build is green: DONE-42."
LINES = 3000


@pytest.fixture(scope="module")
def claude_session(
    claude_cli: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], list[Any]]:
    """A three-call tool loop: Bash (a long output), Read (a source file), then the answer;
    each reply opens with a thinking block, as adaptive thinking gives."""
    work = tmp_path_factory.mktemp("project")
    source = "\n".join(
        f"def helper_{i}(x):\n    '''Step {i}.'''\n    return x + {i}\n" for i in range(120)
    )
    (work / "app.py").write_text(source, encoding="utf-8")

    def responder(body: dict[str, Any]) -> Any:
        if not body.get("tools"):
            return "Tool loop"  # a side call (a title, a summary)
        done = claude_code.tool_results(body)
        if done == 0:
            command = {"command": f"seq 1 {LINES}", "description": "Count"}
            return [
                {"type": "thinking", "thinking": "Run the counter first."},
                {"type": "tool_use", "name": "Bash", "input": command},
            ]
        if done == 1:
            return [
                {"type": "thinking", "thinking": "Now read the source."},
                {"type": "tool_use", "name": "Read", "input": {"file_path": str(work / "app.py")}},
            ]
        return [{"type": "thinking", "thinking": "Done."}, {"type": "text", "text": ANSWER}]

    with LocalServer(responder=responder) as srv:
        result = claude_code.run(
            claude_cli, srv.base_url, "Count to 3000 with seq, then read app.py.", work
        )
        return result, [r for r in srv.requests if r.path == "/v1/messages"]


def test_claude_code_runs_its_tool_loop_to_the_scripted_answer(
    claude_session: tuple[dict[str, Any], list[Any]],
) -> None:
    result, requests = claude_session
    assert result["is_error"] is False, result
    assert result["result"] == ANSWER
    calls = [r for r in requests if r.body.get("tools")]
    assert [claude_code.tool_results(r.body) for r in calls] == [0, 1, 2]
    for recorded in calls:
        assert _systems(recorded.body), "Claude Code sends a system message inside messages"
        assert "claude-code-20250219" in recorded.headers.get("anthropic-beta", "")


def test_every_request_claude_code_sends_is_valid(
    claude_session: tuple[dict[str, Any], list[Any]],
) -> None:
    for recorded in claude_session[1]:
        tc.validate(recorded.body)


def test_the_pipeline_keeps_every_claude_code_request_valid(
    claude_session: tuple[dict[str, Any], list[Any]], server: LocalServer
) -> None:
    for recorded in claude_session[1]:
        headers = {"anthropic-beta": recorded.headers.get("anthropic-beta", "")}
        out = tc.pipe(recorded.body, *PIPELINE)
        check_sent(recorded.body, out, server, headers)
    # The long Bash output was cut: the last request is smaller than Claude Code sent it.
    last = claude_session[1][-1].body
    counter = tc.LocalCounter()
    assert counter.count_request(tc.pipe(last, *PIPELINE)) < counter.count_request(last)


@pytest.mark.parametrize("name", NAMES)
def test_each_transform_keeps_every_claude_code_request_valid(
    name: str,
    claude_session: tuple[dict[str, Any], list[Any]],
    server: LocalServer,
    client: anthropic.Anthropic,
) -> None:
    transform = _transforms(client)[name]
    for recorded in claude_session[1]:
        headers = {"anthropic-beta": recorded.headers.get("anthropic-beta", "")}
        check_sent(recorded.body, transform(recorded.body), server, headers)


def test_each_claude_code_turn_reads_what_the_pipeline_cached_before(
    claude_session: tuple[dict[str, Any], list[Any]],
) -> None:
    calls = [r.body for r in claude_session[1] if r.body.get("tools")]
    sent = [tc.pipe(body, *PIPELINE) for body in calls]
    model = cachesim.CacheModel(min_cacheable=0)
    results = [model.call(r, ts=10.0 * k) for k, r in enumerate(sent)]
    for prev, cur in pairwise(results):
        cached = max(p for p, _ in prev.layout.breakpoints)
        assert cur.usage["cache_read_input_tokens"] >= prev.layout.cum[cached], cur.miss
