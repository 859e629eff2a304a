"""Helpers for the proxy tests: a proxy in a thread in front of a LocalServer, raw upstreams."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from tidyctx._pipeline import Transform
from tidyctx.proxy import ProxyConfig, RunningProxy, create_app

MODEL = "claude-sonnet-4-6"


def big_output(lines: int = 3_000) -> str:
    return "\n".join(
        f"{i:05d} build step {i} finished, {i * 7} files checked" for i in range(lines)
    )


def tool_request(result: str, **extra: Any) -> dict[str, Any]:
    """A request whose latest turn carries a bash tool result ``result``."""
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "build the project"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"cmd": "make"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": result}],
            },
        ],
        **extra,
    }


@contextmanager
def proxy_to(
    upstream: str,
    transforms: list[Transform] | None = None,
    pipeline: str = "test",
    record: Callable[[dict[str, Any]], None] | None = None,
    inline_bytes: int = 0,
) -> Iterator[tuple[RunningProxy, list[dict[str, Any]]]]:
    """A proxy on a free loopback port forwarding to ``upstream``; yields it and its rows
    (kept in the list unless ``record`` takes them). ``inline_bytes``: see ProxyConfig."""
    rows: list[dict[str, Any]] = []
    config = ProxyConfig(
        upstream=upstream,
        transforms=transforms or [],
        pipeline=pipeline,
        record=record or rows.append,
        inline_bytes=inline_bytes,
    )
    with RunningProxy(create_app(config)) as proxy:
        yield proxy, rows


class RawUpstream:
    """A one-purpose TCP server: ``serve(conn, request_bytes)`` answers each connection."""

    def __init__(self, serve: Callable[[socket.socket, bytes], None]) -> None:
        self._serve = serve
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._accept = threading.Thread(target=self._loop, daemon=True)
        self._accept.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._one, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            self._serve(conn, head)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(30)

    def __enter__(self) -> RawUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reset(conn: socket.socket, _: bytes) -> None:
    """Close the connection with a TCP reset, before any answer."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def reset_mid_stream(conn: socket.socket, _: bytes) -> None:
    """Start an SSE answer, then reset the connection."""
    event = b'event: message_start\ndata: {"type":"message_start"}\n\n'
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(event), event)
    )
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class SlowStream:
    """An upstream that sends one SSE event, then waits until its peer closes the connection."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __call__(self, conn: socket.socket, _: bytes) -> None:
        event = b'event: ping\ndata: {"type": "ping"}\n\n'
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(event), event)
        )
        with suppress(OSError):
            while conn.recv(65536):
                pass
        self.closed.set()
