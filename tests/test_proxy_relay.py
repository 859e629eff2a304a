"""The proxy's relay path: what it adds to a request (nothing), and how it passes a response on.

The response's bytes are read ahead while the previous ones are written: what arrived meanwhile
goes out in one write, the end of the body with the last bytes, never more than a bounded
amount held, and an upstream failure reaches the client after every byte that came before it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from proxy_helpers import proxy_to
from tidyctx.proxy._app import _ReadAhead
from tidyctx.testing import LocalServer

_BODY = b'{"model":"claude-sonnet-4-6","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'


def _raw_post(port: int, body: bytes) -> bytes:
    """A request with no header but Host, Content-Type and Content-Length; the whole answer."""
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_the_proxy_adds_no_header_of_its_own(local_server: LocalServer) -> None:
    body = _BODY
    with proxy_to(local_server.base_url) as (proxy, rows):
        answer = _raw_post(proxy.port, body)
    assert answer.startswith(b"HTTP/1.1 200")
    (seen,) = local_server.requests
    # Host and Content-Length describe the request sent; identity lets usage be read.
    assert set(seen.headers) == {"host", "content-type", "content-length", "accept-encoding"}
    assert seen.headers["accept-encoding"] == "identity"
    assert seen.raw == body
    assert len(rows) == 1


def test_a_cookie_the_upstream_sets_is_not_sent_for_another_call(
    local_server: LocalServer,
) -> None:
    local_server.fail_next(429, headers={"set-cookie": "session=from-upstream; Path=/"})
    body = _BODY
    with proxy_to(local_server.base_url) as (proxy, _):
        first = httpx.post(proxy.base_url + "/v1/messages", content=body, timeout=60)
        second = httpx.post(proxy.base_url + "/v1/messages", content=body, timeout=60)
    assert first.status_code == 429 and first.headers["set-cookie"].startswith("session=")
    assert second.status_code == 200
    assert [r.headers.get("cookie") for r in local_server.requests] == [None, None]


async def _chunks(parts: list[bytes], gate: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    for i, part in enumerate(parts):
        if gate is not None and i == 1:
            await gate.wait()
        yield part


def test_chunks_that_arrived_together_go_out_as_one_with_the_end() -> None:
    async def run() -> list[tuple[bytes, bool]]:
        ahead = _ReadAhead(_chunks([b"event: a\n\n", b"event: b\n\n", b"event: c\n\n"]))
        await asyncio.sleep(0)  # the three arrive before the first is asked for
        out = [await ahead.next()]
        await ahead.aclose()
        return out

    assert asyncio.run(run()) == [(b"event: a\n\nevent: b\n\nevent: c\n\n", True)]


def test_the_first_chunk_goes_out_without_waiting_for_the_next() -> None:
    async def run() -> list[tuple[bytes, bool]]:
        gate = asyncio.Event()
        ahead = _ReadAhead(_chunks([b"first", b"second"], gate))
        out = [await ahead.next()]
        gate.set()
        out.append(await ahead.next())
        await ahead.aclose()
        return out

    assert asyncio.run(run()) == [(b"first", False), (b"second", True)]


def test_reading_ahead_holds_at_most_its_limit() -> None:
    read: list[int] = []

    async def many() -> AsyncIterator[bytes]:
        for i in range(100):
            read.append(i)
            yield b"x" * 10

    async def run() -> tuple[int, bytes]:
        ahead = _ReadAhead(many(), limit=35)
        for _ in range(10):
            await asyncio.sleep(0)
        held = len(read)
        data, _ = await ahead.next()
        await ahead.aclose()
        return held, data

    held, data = asyncio.run(run())
    assert held == 4  # stopped at the first chunk that reached the limit, until sent
    assert data == b"x" * 40


def test_an_upstream_failure_comes_after_the_bytes_before_it() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"event: message_start\n\n"
        raise httpx.ReadError("connection reset")

    async def run() -> tuple[bytes, bool]:
        ahead = _ReadAhead(broken())
        await asyncio.sleep(0)
        first = await ahead.next()
        with pytest.raises(httpx.ReadError):
            await ahead.next()
        await ahead.aclose()
        return first

    assert asyncio.run(run()) == (b"event: message_start\n\n", False)
