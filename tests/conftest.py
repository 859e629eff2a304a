"""Shared pytest fixtures and the hypothesis settings profiles.

Profiles (choose one with ``HYPOTHESIS_PROFILE``; without it, ``ci`` where hypothesis detects a
CI machine, else ``default``):

* ``default``: random examples, no per-example deadline and no ``too_slow`` health check, so a
  busy machine never fails a property on timing. Tests set ``max_examples`` themselves.
* ``ci``: the same, printing the blob that reproduces a failure (``@reproduce_failure``), with
  no example database (a CI checkout starts empty anyway).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, settings

import claude_code
from tidyctx.testing import LocalServer

# hypothesis has loaded its own "ci" profile (derandomized) on a CI machine: build on its
# built-in "default" instead, and keep its choice of profile (with the definitions below).
settings.register_profile(
    "default",
    parent=settings.get_profile("default"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci", parent=settings.get_profile("default"), print_blob=True, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", settings.get_current_profile_name()))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any network use in this process, and check afterwards that none was even
    attempted (for code that must run offline: the benchmark peers)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network use attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for var in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"):
        monkeypatch.delenv(var, raising=False)
    yield attempts
    assert attempts == [], "a real connection was attempted"


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """A started :class:`tidyctx.testing.LocalServer` (a local Messages API), stopped after."""
    with LocalServer() as server:
        yield server


@pytest.fixture
def anthropic_client(local_server: LocalServer) -> Iterator[anthropic.Anthropic]:
    """A real SDK client talking to ``local_server``: no retries, responses validated strictly."""
    with anthropic.Anthropic(
        base_url=local_server.base_url,
        api_key="test",
        max_retries=0,
        _strict_response_validation=True,
    ) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` (Debian's package) on 127.0.0.1, for the session; its URL.

    No persistence (``--save "" --appendonly no``), its files in a temporary directory,
    stopped after the session. Skipped where the binary is absent; ``.ci/run`` installs it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server not found; install Debian's redis-server "
            "(apt-get install redis-server) — .ci/run does this"
        )
    folder = tmp_path_factory.mktemp("redis")
    log = folder / "redis.log"
    for _attempt in range(3):  # another process may take the free port before the server does
        port = _free_port()
        server = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(folder),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while server.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                break
            time.sleep(0.02)
        else:
            server.kill()
            server.wait()
            continue
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        return
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"redis-server ({binary}) did not answer PING; its log ends:\n{tail}")


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The Claude Code CLI's ``claude`` binary (npm ``@anthropic-ai/claude-code``), installed
    once into the test cache (``claude_code.py``); skipped, saying why, where npm cannot."""
    found = claude_code.install()
    if isinstance(found, str):
        pytest.skip(found)
    return found
