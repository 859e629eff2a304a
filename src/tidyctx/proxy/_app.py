"""The proxy as an ASGI application (Starlette), forwarding to one upstream with httpx.

``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` go through the pipeline (in a
worker thread, so one large request never stalls the streams of other sessions); every other
request is forwarded as received. Responses (status, headers, body; JSON, Server-Sent Events
and errors alike) are relayed chunk by chunk as they arrive. Paths under ``/_tidyctx/`` are
the proxy's own: ``/_tidyctx/health``, ``/_tidyctx/sessions/ID`` (a session's totals), the
dashboard ``/_tidyctx/`` with its ``/_tidyctx/stats.json``, ``/metrics`` (Prometheus) and the
session prefix ``/_tidyctx/s/ID/`` that ``tidyctx run`` puts in ``ANTHROPIC_BASE_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from tidyctx._betas import merge_betas, required_betas
from tidyctx._pipeline import Transform
from tidyctx.proxy._board import Board, ProxyMetrics
from tidyctx.proxy._board import Totals as SessionTotals
from tidyctx.proxy._dashboard import Guard, dashboard_page, metrics_response, stats_response
from tidyctx.proxy._ledger import Record, Rows, UsageTap
from tidyctx.proxy._pipeline import Prepared, prepare

__all__ = ["DEFAULT_UPSTREAM", "ProxyConfig", "SessionTotals", "create_app"]

DEFAULT_UPSTREAM = "https://api.anthropic.com"

_log = logging.getLogger("tidyctx.proxy")

_PIPELINE_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
# Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection and are not forwarded;
# host and content-length are set for the upstream request by httpx.
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_SESSION = re.compile(r"/_tidyctx/s/([A-Za-z0-9_-]{1,64})(/.*)")
_RAW_SEND = "tidyctx.raw_send"
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass
class ProxyConfig:
    """What a proxy needs: where to forward, which pipeline, where rows go."""

    upstream: str = DEFAULT_UPSTREAM
    transforms: Sequence[Transform] = ()
    pipeline: str = "off"
    """The pipeline's name, for the ledger and ``/_tidyctx/health``."""
    record: Record | None = None
    """Receives each call's ledger row (``tidyctx.Ledger(path).record`` appends it to a file)."""
    host: str = "127.0.0.1"
    """The interface the proxy binds; with a loopback one only loopback Host names pass."""
    allowed_hosts: Sequence[str] = ()
    """More Host names the proxy answers to (for a non-loopback bind)."""
    connect_timeout: float = 30.0
    read_timeout: float | None = None
    """None: the client's own timeout decides (a long generation may take minutes)."""
    max_connections: int = 200
    transport: httpx.AsyncBaseTransport | None = None
    sessions: dict[str, SessionTotals] = field(default_factory=dict)
    """Totals per ``tidyctx run`` session (``/_tidyctx/sessions/ID``), most recent last."""
    max_sessions: int = 10_000
    """Sessions whose totals are kept: a long-lived proxy drops the least recently active
    first, so its memory stays bounded however many runs it serves."""
    inline_bytes: int = 0
    """Bodies up to this size are transformed, counted and priced on the event loop itself,
    larger ones in worker threads. Only for pipelines whose work on a small body is short and
    local (the command sets 256 KiB for ``defaults`` and ``cache-only`` with a local store): a
    worker thread keeps a slow transform from holding other connections, but its two hops cost
    more latency than a millisecond of work, and a thread running beside the relay holds the
    GIL the relay needs."""
    dashboard_token: str | None = None
    """What the dashboard, its JSON, the session totals and ``/metrics`` require when set
    (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``); without one, they are served on a
    loopback bind only."""


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    if value.startswith("["):  # [::1]:8788
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def _with_betas(
    headers: list[tuple[bytes, bytes]], prepared: Prepared
) -> list[tuple[bytes, bytes]]:
    """``headers`` with the ``anthropic-beta`` names the pipeline's output needs and its input
    did not (a tool change message order() inserted), appended to the client's value; the
    client's header goes on untouched otherwise."""
    if not prepared.changed or prepared.after is None or prepared.before is None:
        return headers
    had = set(required_betas(prepared.before))
    needed = [name for name in required_betas(prepared.after) if name not in had]
    if not needed:
        return headers
    values = [v.decode("latin-1") for k, v in headers if k == b"anthropic-beta"]
    given = ",".join(values) if values else None
    merged = merge_betas(given, needed)
    if merged == given:
        return headers
    rest = [(k, v) for k, v in headers if k != b"anthropic-beta"]
    return [*rest, (b"anthropic-beta", merged.encode("latin-1"))]


def _error_body(status: int, kind: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}
    ).encode()


class _Proxy:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        upstream = httpx.URL(config.upstream)
        if upstream.scheme not in ("http", "https") or not upstream.host:
            raise ValueError(f"upstream must be an http(s) URL, got {config.upstream!r}")
        self.upstream = upstream
        self.base_path = upstream.raw_path.rstrip(b"/")
        allowed = {h.lower() for h in config.allowed_hosts}
        if not _is_loopback(config.host) and config.host not in ("0.0.0.0", "::"):
            allowed.add(config.host.lower())
        self.allowed_hosts = allowed
        self._transport: httpx.AsyncBaseTransport | None = None
        self.board = Board(config.pipeline)
        self.metrics = ProxyMetrics()
        self.rows = Rows()
        # None: the client's own timeout decides (a long generation may take minutes).
        self.timeout = httpx.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.read_timeout,
            pool=None,
        ).as_dict()

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The connection pool to the upstream, created on first use (or at startup).

        Requests go to it directly, not through an ``httpx.AsyncClient``: a client would add
        its default headers (``user-agent``, ``accept``, ``accept-encoding``) to requests that
        did not carry them, keep the upstream's cookies in one jar for every agent, and spend
        more time per call on redirects, auth and cookies than the forwarding itself.
        """
        if self._transport is None:
            limits = httpx.Limits(
                max_connections=self.config.max_connections,
                max_keepalive_connections=self.config.max_connections,
            )
            # TCP_NODELAY: httpx writes a request's headers and body in separate sends, and
            # the socket it opens does not disable Nagle's algorithm, so with the upstream's
            # delayed ACK every POST would wait ~10-40 ms for the body to leave.
            # A transport never reads HTTP(S)_PROXY from the environment (a client would): the
            # proxy forwards only to its configured upstream.
            self._transport = self.config.transport or httpx.AsyncHTTPTransport(
                limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            )
        return self._transport

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    # -- ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        session = None
        match = _SESSION.fullmatch(path)
        if match:
            session, path = match.group(1), match.group(2)
        elif path.startswith("/_tidyctx/"):
            await _answer(send, 404, _error_body(404, "not_found_error", f"no such path: {path}"))
            return
        await self._forward(scope, receive, send, path, session)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        # Never an open proxy: a request target must be a path on the configured upstream.
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if not raw_path.startswith(b"/") or scope["method"] == "CONNECT":
            return 400, "tidyctx proxy forwards only to its configured upstream"
        for name, value in scope["headers"]:
            if name == b"host":
                host = _host_name(value.decode("latin-1")).lower()
                if not _is_loopback(host) and host not in self.allowed_hosts:
                    return 421, f"tidyctx proxy does not serve host {host!r}"
        return None

    # -- forwarding

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, path: str, session: str | None
    ) -> None:
        began, arrived = time.perf_counter(), time.time()
        body = await _read_body(receive)
        if body is None:  # the client left before sending its request
            return
        received = time.perf_counter()
        method: str = scope["method"]
        in_pipeline = method == "POST" and path in _PIPELINE_PATHS
        prepared: Prepared | None = None
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP and k != b"host"]
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        # Small bodies of a pipeline that allows it are worked on here, on the event loop, from
        # the pipeline to the ledger row; the others in worker threads (ProxyConfig.inline_bytes).
        inline = len(body) <= self.config.inline_bytes
        if in_pipeline:
            transforms = self.config.transforms
            if transforms and inline:
                prepared = prepare(body, transforms)
            elif transforms:
                prepared = await anyio.to_thread.run_sync(prepare, body, transforms)
            else:  # recording only: the model and usage are read from the response
                prepared = Prepared(body)
            body = prepared.body
            headers = _with_betas(headers, prepared)
            # Usage is read from the response as it passes, so it must arrive uncompressed.
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"]
            headers.append((b"accept-encoding", b"identity"))
        query: bytes = scope.get("query_string") or b""
        url = self.upstream.copy_with(
            raw_path=self.base_path + path.encode() + (b"?" + query if query else b"")
        )
        request = httpx.Request(
            method, url, headers=headers, content=body, extensions={"timeout": self.timeout}
        )
        # What the relay sees of the call; its ledger row is made of it at the end.
        row: dict[str, Any] = {
            "session": session,
            "method": method,
            "path": path,
            "pipeline": self.config.pipeline if in_pipeline else None,
        }
        tap = UsageTap() if prepared is not None else None
        raw_send = scope.get(_RAW_SEND, send)
        relay = asyncio.ensure_future(
            self._relay(request, send, raw_send, tap, row, began, received)
        )
        # Each step's tokens are counted for the ledger while the request is upstream.
        counting = None
        if prepared is not None and prepared.before is not None and not inline:
            counting = asyncio.ensure_future(anyio.to_thread.run_sync(prepared.count))
        left = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({relay, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The server reports a disconnect as soon as the response is complete too; only a
            # client that left before its answer ended cancels the upstream call.
            if not relay.done() and not row.get("complete"):
                relay.cancel()
                row["error"] = "client disconnected"
            left.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            with contextlib.suppress(asyncio.CancelledError):
                await left
        row["latency_ms"] = round((time.perf_counter() - began) * 1000, 3)
        if counting is not None:
            await counting
        elif prepared is not None and prepared.before is not None:
            prepared.count()
        ended = time.time()
        if prepared is not None and prepared.before is not None and not inline:
            # The cache models behind the row's cost without the pipeline: off the loop too.
            record = await anyio.to_thread.run_sync(
                self.rows.row, row, prepared, tap, arrived, ended
            )
        else:
            record = self.rows.row(row, prepared, tap, arrived, ended)
        self._record(record)

    async def _relay(
        self,
        request: httpx.Request,
        send: Send,
        raw_send: Send,
        tap: UsageTap | None,
        row: dict[str, Any],
        began: float,
        received: float,
    ) -> None:
        # What the proxy adds before the upstream sees the request: the pipeline and its own work.
        row["added_ms"] = round((time.perf_counter() - received) * 1000, 3)
        try:
            try:
                response = await self.transport.handle_async_request(request)
            except httpx.RemoteProtocolError:
                # The upstream closed a pooled keep-alive connection as this request went out
                # on it ("disconnected without sending a response"): a race of the proxy's own
                # pool, which a direct call would not have met; send once more, on a new one.
                response = await self.transport.handle_async_request(request)
        except httpx.TransportError as err:
            row["error"] = f"upstream: {type(err).__name__}"
            # The client sees a dropped connection, as it would have; say why here (no content).
            _log.warning("upstream %s failed: %s", self.config.upstream, type(err).__name__)
            await _drop(send, raw_send)
            return
        try:
            row["status"] = response.status_code
            if tap is not None:
                content_type = response.headers.get("content-type", "")
                tap.streaming = content_type.startswith("text/event-stream")
            row["ttfb_ms"] = round((time.perf_counter() - began) * 1000, 3)
            headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            ahead = _ReadAhead(response.aiter_raw())
            try:
                while True:
                    try:
                        chunk, last = await ahead.next()
                    except httpx.TransportError as err:
                        # The upstream broke off mid-response: break off too, at the same point.
                        row["error"] = f"upstream: {type(err).__name__}"
                        await _drop(send, raw_send)
                        return
                    if tap is not None:
                        tap.feed(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                    if last:
                        break
            finally:
                await ahead.aclose()
            row["complete"] = True
        finally:
            await response.aclose()

    def _record(self, row: dict[str, Any]) -> None:
        session = row.get("session")
        if session:
            sessions = self.config.sessions
            totals = sessions.pop(session, None) or SessionTotals()
            sessions[session] = totals  # now the most recent
            totals.add(row)
            while len(sessions) > max(1, self.config.max_sessions):
                del sessions[next(iter(sessions))]
        try:
            self.board.add(row)
            self.metrics.add(row, self.board.model_label(row.get("model")))
        except Exception:  # the live totals are for display; never lose the row for them
            _log.exception("tidyctx proxy: a row could not be added to the live totals")
        if self.config.record is not None:
            self.config.record(row)


class _ReadAhead:
    """A response's chunks, read in a task of their own while the previous ones are sent.

    What arrived meanwhile goes to the client in one write (an upstream that sends a burst of
    events costs one write, not one per event), and the end of the body goes with the last
    bytes. Nothing waits for more bytes than have arrived, and at most ``limit`` bytes are
    held: past that the reading waits for the client, as a direct relay would.
    """

    def __init__(self, chunks: AsyncIterator[bytes], limit: int = 1 << 20) -> None:
        self._pending: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._done = False
        self._error: Exception | None = None
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task = asyncio.ensure_future(self._pump(chunks))

    async def _pump(self, chunks: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in chunks:
                self._pending.append(chunk)
                self._size += len(chunk)
                self._ready.set()
                if self._size >= self._limit:
                    self._room.clear()
                    await self._room.wait()
        except Exception as err:  # raised to the reader once what came before is sent
            self._error = err
        finally:
            self._done = True
            self._ready.set()

    async def next(self) -> tuple[bytes, bool]:
        """The bytes read since the last call (waiting for some), and whether they end it."""
        while not self._pending and not self._done:
            self._ready.clear()
            await self._ready.wait()
        if not self._pending:
            if self._error is not None:
                raise self._error
            return b"", True
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        self._room.set()
        return data, self._done and self._error is None

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _read_body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send, raw_send: Send) -> None:
    """Close the client's connection without an answer, as a failed upstream connection would.

    uvicorn hands the application its connection's ``send`` (a method of the request cycle,
    which holds the transport); aborting that transport resets the connection. Under another
    server the client gets a 502 in the API's error shape instead (or, mid-response, an
    incomplete body).
    """
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        await asyncio.sleep(0)
        return
    body = _error_body(502, "api_error", "tidyctx proxy: the upstream connection failed")
    with contextlib.suppress(Exception):
        await _answer(send, 502, body)


class _App(Starlette):
    proxy: _Proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Before any routing, so the proxy's own endpoints are guarded too.
            refusal = self.proxy.refusal(scope)
            if refusal is not None:
                status, message = refusal
                await _answer(send, status, _error_body(status, "invalid_request_error", message))
                return
            if _forwarded(scope["path"]):
                # Straight to the proxy: Starlette's middleware and routing would wrap every
                # chunk sent and cost more than the forwarding itself.
                await self.proxy(scope, receive, send)
                return
        # Starlette's error middleware wraps send; the proxy needs the server's own to drop a
        # connection (see _drop). Routing updates the scope in place, so the key reaches it.
        scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


def _forwarded(path: str) -> bool:
    """Whether ``path`` goes upstream: not one of the proxy's own pages (a session prefix
    ``/_tidyctx/s/ID/...`` goes upstream too)."""
    if path.startswith("/_tidyctx"):
        return path.startswith("/_tidyctx/s/")
    return path != "/metrics"


def create_app(config: ProxyConfig) -> Starlette:
    """The proxy as a Starlette application: its own routes, then everything forwarded."""
    proxy = _Proxy(config)

    async def health(request: StarletteRequest) -> JSONResponse:
        return JSONResponse(
            {"tidyctx": "proxy", "upstream": config.upstream, "pipeline": config.pipeline}
        )

    guard = Guard(config.dashboard_token, _is_loopback(config.host))

    async def session_totals(request: StarletteRequest) -> Response:
        refused = guard.refusal(request)
        if refused is not None:
            return refused
        totals = config.sessions.get(request.path_params["session"], SessionTotals())
        return JSONResponse(totals.view())

    async def dashboard(request: StarletteRequest) -> Response:
        return guard.refusal(request) or dashboard_page()

    async def to_dashboard(request: StarletteRequest) -> Response:
        # The page fetches stats.json relative to itself, so it must be served under the slash.
        query = request.url.query
        return RedirectResponse("/_tidyctx/" + ("?" + query if query else ""), status_code=308)

    async def stats(request: StarletteRequest) -> Response:
        return guard.refusal(request) or stats_response(proxy.board)

    async def metrics(request: StarletteRequest) -> Response:
        refused = guard.refusal(request)
        return refused or metrics_response(proxy.metrics, request.headers.get("accept"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        proxy.transport  # noqa: B018 - its TLS context takes ~50 ms to load: not on a call
        try:
            yield
        finally:
            await proxy.aclose()

    app = _App(
        routes=[
            Route("/_tidyctx/health", health),
            Route("/_tidyctx/sessions/{session:str}", session_totals),
            Route("/_tidyctx", to_dashboard),
            Route("/_tidyctx/", dashboard),
            Route("/_tidyctx/dashboard", dashboard),
            Route("/_tidyctx/stats.json", stats),
            Route("/_tidyctx/metrics", metrics),
            Route("/metrics", metrics),
            Mount("/", app=proxy),
        ],
        lifespan=lifespan,
    )
    app.proxy = proxy
    return app
