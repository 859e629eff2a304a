"""The Headroom peer (benchmarks/peers/headroom_peer.py): headroom-ai's real ``compress()``,
run offline in its worker process.

The tests that run Headroom need an interpreter with headroom-ai: this one (``pip install
'tidyctx[bench]'``) or the one ``TIDYCTX_HEADROOM_PYTHON`` names; without either they are
skipped. In this process any socket use is an error (the ``offline`` fixture).
"""

from __future__ import annotations

import importlib
import itertools
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import tool_messages
from tidyctx._request import validate

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
peer = importlib.import_module("benchmarks.peers.headroom_peer")

HELLO_WORLD = ROOT / "data" / "traces" / "openhands-sdk-claude-sonnet4-hello-world.json"


def headroom_or_skip() -> str:
    try:
        python: str = peer.headroom_python()
    except ImportError as e:
        pytest.skip(f"benchmark peer: {e}")
    return python


pytestmark = pytest.mark.usefixtures("offline")


def records(n: int) -> str:
    """A JSON array of ``n`` similar records, the kind of tool output SmartCrusher targets."""
    rows = [
        {"id": i, "sku": f"SKU-{i:05d}", "name": f"Product {i}", "stock": i % 7, "status": "ok"}
        for i in range(n)
    ]
    return json.dumps(rows)


def agent_request(result: str) -> dict[str, Any]:
    """Three tool calls; the first one's result is ``result`` (outside the 4 last messages
    Headroom protects by default)."""
    tools = [
        {
            "name": "query",
            "description": "Query the store.",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    calls = [("query", {"q": "x"}, text) for text in (result, "done", "nothing else")]
    messages = tool_messages("Which products are low?", calls, call_id="toolu_{k}")
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "system": "You manage a store.",
        "tools": tools,
        "messages": messages,
    }


def result_text(request: dict[str, Any], message: int) -> str:
    block = request["messages"][message]["content"][0]
    assert block["type"] == "tool_result"
    return json.dumps(block["content"])


def test_a_large_json_tool_result_gets_smaller_and_the_request_stays_valid() -> None:
    python = headroom_or_skip()
    request = agent_request(records(400))
    strategy = peer.HeadroomStrategy(python, frozen=False)
    try:
        sent = strategy(request)
    finally:
        strategy.close()
    validate(sent.request)
    assert len(result_text(sent.request, 2)) < len(result_text(request, 2)) / 2
    # Headroom adds no cache_control, so the request gets the user's automatic caching;
    # system and tools go as recorded.
    assert sent.request["cache_control"] == {"type": "ephemeral"}
    assert sent.request["system"] == request["system"]
    assert sent.request["tools"] == request["tools"]
    assert "headroom-ai" in sent.note and "kompress_model='disabled'" in sent.note
    assert strategy.fallbacks == 0


def test_every_turn_of_a_recorded_run_validates() -> None:
    headroom_or_skip()
    from tidyctx.traces import load_run

    run = load_run(HELLO_WORLD)
    strategy = peer.headroom_compress()
    try:
        for turn in run.turns:
            sent = strategy({**turn.request, "model": "claude-sonnet-4-6"})
            validate(sent.request)
    finally:
        strategy.close()
    assert len(strategy.seconds) == len(run.turns)


def test_the_output_does_not_depend_on_the_hash_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    python = headroom_or_skip()
    request = agent_request(records(300))
    bodies = []
    for seed in ("1", "2"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        strategy = peer.HeadroomStrategy(python, frozen=False)
        try:
            bodies.append(json.dumps(strategy(request).request, sort_keys=True))
        finally:
            strategy.close()
    assert bodies[0] == bodies[1]


def test_no_connection_leaves_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every HTTP client in the worker is pointed at a listener here: whatever Headroom tries
    (a vocabulary or model download, its beacon) is refused before it reaches it."""
    python = headroom_or_skip()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.0)
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "HF_ENDPOINT"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    strategy = peer.HeadroomStrategy(python, frozen=False)
    try:
        sent = strategy(agent_request(records(300)))
    finally:
        strategy.close()
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    validate(sent.request)
    if strategy.refused:
        assert "connection(s) refused" in sent.note


def test_without_headroom_the_factory_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDYCTX_HEADROOM_PYTHON", raising=False)

    def missing(name: str) -> str:
        raise peer.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(peer.importlib.metadata, "version", missing)
    with pytest.raises(ImportError) as raised:
        peer.headroom_compress()
    assert str(raised.value) == (
        "headroom-ai not installed (make bench makes .venv-headroom; or set "
        "TIDYCTX_HEADROOM_PYTHON to a Python that has headroom-ai==0.42.0)"
    )


def test_an_interpreter_without_headroom_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    has = subprocess.run(
        [sys.executable, "-c", "import headroom"], capture_output=True, check=False
    )
    if has.returncode == 0:
        pytest.skip("this interpreter has headroom-ai")
    monkeypatch.setenv("TIDYCTX_HEADROOM_PYTHON", sys.executable)
    with pytest.raises(ImportError, match=r"headroom-ai not installed .*not in "):
        peer.headroom_compress()


def test_a_request_without_a_model_is_refused_by_name() -> None:
    python = headroom_or_skip()
    request = agent_request("x")
    del request["model"]
    strategy = peer.HeadroomStrategy(python, frozen=False)
    try:
        with pytest.raises(ValueError, match="'model'"):
            strategy(request)
    finally:
        strategy.close()


def test_the_own_loop_caller_sends_what_it_sent_before_unchanged() -> None:
    python = headroom_or_skip()
    full = agent_request(records(400))
    # The requests behind its assistant messages, each extending the one before.
    requests = [{**full, "messages": full["messages"][:n]} for n in (1, 3, 5, 7)]
    strategy = peer.HeadroomStrategy(python, frozen=True)
    try:
        sent = [strategy(r).request["messages"] for r in requests]
    finally:
        strategy.close()
    for before, after in itertools.pairwise(sent):
        assert after[: len(before)] == before
    assert len(json.dumps(sent[-1][2])) < len(json.dumps(full["messages"][2])) / 2
