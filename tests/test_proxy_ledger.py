"""The proxy's ledger is a ``tidyctx/1`` ledger: an agent session through the proxy (the real
SDK, JSON and streamed calls, to a LocalServer) is read by ``tidyctx report`` as a ``tc.wrap``
ledger is, its totals are the usage the server returned priced by ``tidyctx.pricing``, and each
row's cost without the pipeline is the one ``tc.wrap`` computes for the same calls.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

import tidyctx as tc
from proxy_helpers import MODEL, proxy_to
from tidyctx import _report, pricing
from tidyctx._cli import ledger_rows, main
from tidyctx.proxy import select_pipeline
from tidyctx.testing import LocalServer

TURNS = 6
SESSION = "c0ffee0123456789"


def _log(turn: int) -> str:
    """A long build log (a few thousand tokens): the default pipeline cuts it."""
    return "\n".join(
        f"10:{turn:02d}:{i % 60:02d} INFO step {i} of job {turn} compiled module_{i}.o"
        for i in range(300)
    )


def _responder(body: dict[str, Any]) -> Any:
    """A tool call per turn until the last, then an answer."""
    turn = len(body["messages"]) // 2
    if turn < TURNS - 1:
        return [
            f"Running step {turn}.",
            {"type": "tool_use", "name": "bash", "input": {"command": f"make step{turn}"}},
        ]
    return "The build passes."


def _first() -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 256,
        "system": "You are a build agent. " * 200,
        "tools": [
            {
                "name": "bash",
                "description": "Run a shell command.",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            }
        ],
        "messages": [{"role": "user", "content": "Build the project."}],
    }


def _next(request: dict[str, Any], message: Any) -> dict[str, Any] | None:
    content = [b.model_dump(mode="json", exclude_none=True) for b in message.content]
    calls = [b for b in content if b["type"] == "tool_use"]
    if not calls:
        return None
    messages = [*request["messages"], {"role": "assistant", "content": content}]
    results = [
        {"type": "tool_result", "tool_use_id": c["id"], "content": _log(len(messages))}
        for c in calls
    ]
    return {**request, "messages": [*messages, {"role": "user", "content": results}]}


def _agent(client: anthropic.Anthropic, recorded: Callable[[int], None] | None = None) -> list[Any]:
    """The session: even turns a JSON answer, odd turns a stream; the usage of each answer as
    the SDK got it. ``recorded(n)``, if given, waits until the ledger holds ``n`` rows."""
    usages: list[Any] = []
    request: dict[str, Any] | None = _first()
    turn = 0
    while request is not None:
        if turn % 2:
            with client.messages.stream(**request) as stream:
                message = stream.get_final_message()
        else:
            message = client.messages.create(**request)
        usages.append(message.usage)
        if recorded is not None:
            recorded(turn + 1)
        request = _next(request, message)
        turn += 1
    return usages


def _proxied(tmp_path: Path, inline_bytes: int = 0) -> tuple[Path, list[Any], list[dict[str, Any]]]:
    """The session through a proxy with the default pipeline, its ledger a tc.Ledger file;
    (the ledger, the usages the SDK got, the requests the server received). ``inline_bytes``:
    bodies up to that size are transformed on the proxy's event loop."""
    path = tmp_path / "proxy-ledger.jsonl"
    ledger = tc.Ledger(path)
    rows = threading.Semaphore(0)

    def record(row: dict[str, Any]) -> None:
        ledger.record(row)
        rows.release()

    def recorded(n: int) -> None:
        # A row is made once its answer has been relayed (in a worker thread for a large
        # body): the agent's next call waits for it, as its cache model must see the calls
        # in the order they were made to price them as tc.wrap does.
        assert rows.acquire(timeout=120), f"no ledger row for call {n}"

    with LocalServer(responder=_responder) as server:
        defaults = select_pipeline("defaults", tc.MemoryStore())
        with proxy_to(
            server.base_url, defaults, "defaults", record=record, inline_bytes=inline_bytes
        ) as (proxy, _):
            client = anthropic.Anthropic(
                base_url=f"{proxy.base_url}/_tidyctx/s/{SESSION}",
                api_key="sk-ant-key",
                max_retries=0,
            )
            usages = _agent(client, recorded)
        received = [r.body for r in server.requests]
    ledger.close()
    return path, usages, received


def _summed(usages: list[Any]) -> dict[str, int]:
    total = dict.fromkeys(pricing.USAGE_FIELDS, 0)
    for usage in usages:
        for key, value in pricing.usage_dict(usage).items():
            total[key] += value
    return total


def test_tidyctx_report_reads_a_proxied_session_with_the_usage_the_server_returned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, usages, received = _proxied(tmp_path)
    assert len(usages) == len(received) == TURNS
    assert sum(bool(body.get("stream")) for body in received) == TURNS // 2

    assert main(["report", "--json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    total = data["total"]
    assert total["calls"] == TURNS and total["errors"] == 0
    assert total["usage"] == _summed(usages)
    assert total["usage"]["cache_read_input_tokens"] > 0, "the session read its cache"
    priced = sum(pricing.cost(usage, MODEL).total for usage in usages)
    assert total["cost"] == pytest.approx(priced, abs=1e-6)
    assert total["unpriced"] == 0 and total["unreadable"] == 0
    # The session is the run; the pipeline cut the logs, and cost less than none would have.
    assert list(data["by_run"]) == [SESSION]
    assert total["tokens_after"] < total["tokens_before"]
    assert 0 < total["cost"] < total["baseline_cost"]
    assert any(name.startswith("trim(") for name in data["transforms"])

    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    assert re.search(rf"calls\s+{TURNS} \(0 failed\)", text)
    assert f"cost     ${total['cost']:.4f}; with no pipeline ${total['baseline_cost']:.4f}" in text
    assert SESSION in text

    page = tmp_path / "report.html"
    assert main(["report", str(path), "--html", str(page)]) == 0
    # The page's data: the calls, billed and without the pipeline, as the ledger totals them.
    drawn = ledger_rows(str(path))
    bars = _report.ReportData.from_rows("proxy", drawn).as_json()["total"]
    assert bars["calls"] == TURNS
    assert bars["cost"] == pytest.approx(total["cost"], abs=1e-6)
    assert bars["cost_without"] == pytest.approx(total["baseline_cost"], abs=1e-6)
    assert bars["cache_read"] == total["usage"]["cache_read_input_tokens"]
    assert json.dumps(bars["cost"]) in page.read_text()

    rows = tc.read_ledger(path)
    assert [row["stream"] for row in rows] == [bool(turn % 2) for turn in range(TURNS)]
    for row, usage in zip(rows, usages, strict=True):
        assert row["usage"] == pricing.usage_dict(usage)
        assert row["cost"] == pytest.approx(pricing.cost(usage, MODEL).total)
        assert row["session"] == SESSION and row["status"] == 200
        assert row["fail_open"] is None and row["id"].startswith("msg_")


def _wrapped(tmp_path: Path) -> Path:
    """The same session through tc.wrap with the same pipeline, to a fresh LocalServer."""
    path = tmp_path / "wrap-ledger.jsonl"
    with LocalServer(responder=_responder) as server:
        raw = anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-key", max_retries=0)
        transforms = select_pipeline("defaults", tc.MemoryStore())
        _agent(tc.wrap(raw, *transforms, ledger=path))
    return path


COMPARED = (
    "model",
    "stop_reason",
    "usage",
    "cost",
    "tokens_before",
    "tokens_after",
    "baseline_usage",
    "baseline_cost",
    "sim_cost",
)


@pytest.mark.parametrize("inline_bytes", [0, 1 << 20], ids=["in-threads", "on-the-loop"])
def test_the_cost_without_the_pipeline_is_the_one_tc_wrap_records(
    tmp_path: Path, inline_bytes: int
) -> None:
    proxied = tc.read_ledger(_proxied(tmp_path, inline_bytes)[0])
    wrapped = tc.read_ledger(_wrapped(tmp_path))
    assert len(proxied) == len(wrapped) == TURNS

    def fields(row: dict[str, Any]) -> dict[str, Any]:
        return {key: row.get(key) for key in COMPARED}

    assert [fields(row) for row in proxied] == [fields(row) for row in wrapped]

    def cut(rows: list[dict[str, Any]], pick: Callable[[str], bool]) -> list[int]:
        return [
            sum(s["tokens_saved"] for s in row["changed"] if pick(s["transform"])) for row in rows
        ]

    # What trim removed, per call, the same in both ledgers.
    def is_trim(name: str) -> bool:
        return name.startswith("trim(")

    assert cut(proxied, is_trim) == cut(wrapped, is_trim)
    assert all(n > 0 for n in cut(proxied, is_trim)[1:])
