"""``tidyctx proxy`` and ``tidyctx run`` as a user starts them: real processes, real SDK."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anthropic
import httpx

import tidyctx as tc
from proxy_helpers import tool_request
from tidyctx.proxy import ProxyConfig, RunningProxy, create_app, select_pipeline
from tidyctx.proxy._command import _config, add_proxy_options
from tidyctx.testing import LocalServer

SRC = str(Path(tc.__file__).resolve().parent.parent)

# The agent: one SDK call with a large tool result through ANTHROPIC_BASE_URL, then the exit
# code it was given.
AGENT = textwrap.dedent(
    """
    import sys, anthropic
    from proxy_helpers import big_output, tool_request
    client = anthropic.Anthropic(api_key="sk-test", max_retries=0)
    client.messages.create(**tool_request(big_output()))
    sys.exit(int(sys.argv[1]))
    """
)
TESTS = str(Path(__file__).resolve().parent)


def _env() -> dict[str, str]:
    path = os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("ANTHROPIC_BASE_URL", None)
    env.pop("TIDYCTX_UPSTREAM", None)
    return env


def _tidyctx(*args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidyctx", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        **options,
    )


def _agent(code: int) -> list[str]:
    return [sys.executable, "-c", AGENT, str(code)]


def test_run_passes_the_exit_code_through_and_prints_cost_and_savings(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    with LocalServer() as server:
        done = _tidyctx(
            "run", "--port", "0", "--upstream", server.base_url, "--store", "memory:",
            "--ledger", str(ledger), "--", *_agent(5),
        )  # fmt: skip
        assert len(server.requests) == 1 and len(server.requests[0].raw) < 10_000
    assert done.returncode == 5, done.stderr
    assert re.search(r"tidyctx: 1 API calls, cost \$0\.\d+, saved \$0\.\d+ \(", done.stderr)
    (row,) = tc.read_ledger(ledger)
    assert row["session"] and row["status"] == 200 and row["tokens_after"] < row["tokens_before"]
    assert row["run"] == row["session"]
    # Its owner's only: the rows name sessions.
    assert ledger.stat().st_mode & 0o777 == 0o600


def test_run_reuses_a_proxy_running_on_its_port() -> None:
    rows: list[dict[str, Any]] = []
    with LocalServer() as server:
        config = ProxyConfig(
            upstream=server.base_url,
            transforms=select_pipeline("defaults", tc.MemoryStore()),
            pipeline="defaults",
            record=rows.append,
        )
        with RunningProxy(create_app(config)) as proxy:
            done = _tidyctx(
                "run", "--port", str(proxy.port), "--upstream", server.base_url, "--",
                *_agent(0),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "tidyctx: 1 API calls" in done.stderr
    (row,) = rows
    assert row["session"] in config.sessions


def test_run_says_what_is_wrong_with_its_command() -> None:
    missing = _tidyctx("run", "--port", "0", "--store", "memory:")
    assert missing.returncode == 2 and "give the command after --" in missing.stderr
    absent = _tidyctx("run", "--port", "0", "--store", "memory:", "--", "no-such-command-here")
    assert absent.returncode == 127 and "cannot run 'no-such-command-here'" in absent.stderr


def test_proxy_rejects_an_unknown_pipeline() -> None:
    done = _tidyctx("proxy", "--port", "0", "--pipeline", "fastest", "--store", "memory:")
    assert done.returncode == 2
    assert "expected one of defaults, cache-only, off or module:attr" in done.stderr


def test_proxy_command_serves_until_interrupted(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    with LocalServer() as server:
        env = {**_env(), "TIDYCTX_UPSTREAM": server.base_url}
        process = subprocess.Popen(
            [sys.executable, "-m", "tidyctx", "proxy", "--port", "0", "--store", "memory:",
             "--pipeline", "cache-only", "--ledger", str(ledger)],
            stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            match = re.search(r"ANTHROPIC_BASE_URL=(http://\S+)", line)
            assert match, line
            client = anthropic.Anthropic(base_url=match.group(1), api_key="k", max_retries=0)
            reply = client.messages.create(**tool_request("short"))
            assert reply.content
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
        # uvicorn ends on SIGINT as an interrupted program does: killed by the signal it got.
        assert process.returncode in (0, -signal.SIGINT)
        assert "cache_control" in server.requests[0].raw.decode()
    (row,) = tc.read_ledger(ledger)
    assert row["pipeline"] == "cache-only"
    assert [step["transform"] for step in row["changed"]] == ["cache()"]


def test_only_built_in_pipelines_on_a_local_store_run_on_the_event_loop(
    redis_url: str,
) -> None:
    parser = argparse.ArgumentParser()
    add_proxy_options(parser)

    def inline(*argv: str) -> int:
        return _config(parser.parse_args(list(argv))).inline_bytes

    # Short, local work on a small body is cheaper on the loop than two thread hops.
    assert inline("--pipeline", "defaults", "--store", "memory:") == 256 * 1024
    assert inline("--pipeline", "cache-only", "--store", "memory:") == 256 * 1024
    # A pipeline of the user's own may block (a network call), and so may a Redis store.
    assert inline("--pipeline", "tidyctx:defaults", "--store", "memory:") == 0
    assert inline("--pipeline", "defaults", "--store", redis_url) == 0
    assert inline("--pipeline", "off", "--store", "memory:") == 0


def test_memo_mb_bounds_the_memo_of_the_process_serving_the_proxy() -> None:
    parser = argparse.ArgumentParser()
    add_proxy_options(parser)
    before = tc.memo_stats().max_bytes
    try:
        _config(parser.parse_args(["--store", "memory:", "--memo-mb", "8"]))
        assert tc.memo_stats().max_bytes == 8 << 20
    finally:
        tc.set_memo_limit(before)
    done = _tidyctx("proxy", "--port", "0", "--store", "memory:", "--memo-mb", "-1")
    assert done.returncode == 2 and "--memo-mb: must be 0 or more, got -1" in done.stderr


def test_the_proxy_keeps_the_totals_of_its_most_recent_sessions_only() -> None:
    with LocalServer() as server:
        config = ProxyConfig(upstream=server.base_url, pipeline="off", max_sessions=3)
        with RunningProxy(create_app(config)) as proxy:
            for name in ("a", "b", "c", "a", "d", "e"):
                client = anthropic.Anthropic(
                    base_url=f"{proxy.base_url}/_tidyctx/s/{name}", api_key="test", max_retries=0
                )
                with client:
                    client.messages.create(**tool_request("ok"))
            kept = dict(config.sessions)
            evicted = httpx.get(f"{proxy.base_url}/_tidyctx/sessions/b").json()
            recent = httpx.get(f"{proxy.base_url}/_tidyctx/sessions/a").json()
    # "a" came back after "b" and "c", so "b" and "c" went first.
    assert list(kept) == ["a", "d", "e"]
    assert recent["calls"] == 2 and evicted["calls"] == 0
