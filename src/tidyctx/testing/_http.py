"""The local server's HTTP side: a threaded server, reading requests, routing, writing answers.

Requests are checked the way the API checks them before it reads them: the API key, the body
size and the JSON. Errors have the API's shape, ``{"type": "error", "error": {...},
"request_id": ...}`` (https://docs.claude.com/en/api/errors).
"""

from __future__ import annotations

import json
import re
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from tidyctx.testing._messages import error_type_for
from tidyctx.testing._streaming import Event, encode_event

__all__ = [
    "MAX_BODY",
    "Out",
    "RecordedRequest",
    "Route",
    "ThreadedServer",
    "answer",
    "error_response",
    "parse_request",
]

# The largest request bodies the API takes (413 above them): 32 MB for a message, 256 MB for a
# batch (https://docs.claude.com/en/api/errors,
# https://docs.claude.com/en/docs/build-with-claude/batch-processing).
MAX_BODY: Mapping[str, int] = {
    "/v1/messages": 32 * 1024 * 1024,
    "/v1/messages/batches": 256 * 1024 * 1024,
}

_REASONS: Mapping[int, str] = {529: "Overloaded"}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    """The path without the query string, e.g. ``/v1/messages``."""
    query: dict[str, str]
    headers: dict[str, str]
    """Header names in lower case."""
    body: Any
    """The parsed JSON body; None when empty or malformed (see ``raw``)."""
    raw: bytes = b""


@dataclass
class Out:
    """An answer: JSON ``body``, or ``raw`` bytes, or Server-Sent ``events``, after ``delay``."""

    status: int
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] | None = None
    delay: float = 0.0


def error_response(status: int, message: str, error_type: str | None = None) -> Out:
    """An error in the API's shape; ``error_type`` defaults to the status's."""
    kind = error_type or error_type_for(status)
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}
    return Out(status, body)


# ------------------------------------------------------------------------------ requests


_TOO_DEEP = "nested too deep to read"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_request(
    method: str, target: str, headers: dict[str, str], raw: bytes
) -> tuple[RecordedRequest, str | None]:
    """The request, and why its body is not valid JSON (None when it is, or is empty)."""
    path, _, query_string = target.partition("?")
    path = unquote(path).rstrip("/") or "/"
    query = dict(parse_qsl(query_string))
    body: Any = None
    bad_json: str | None = None
    if raw:
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as err:
            bad_json = str(err)
        except RecursionError:  # valid JSON, but nested deeper than Python's parser goes
            bad_json = _TOO_DEEP
    return RecordedRequest(method, path, query, headers, body, raw), bad_json


@dataclass(frozen=True, slots=True)
class Route:
    """``handler(request, *groups)`` answers ``method`` on paths that fully match ``path``."""

    method: str
    path: str
    """A regular expression; its groups are passed to the handler."""
    handler: Callable[..., Out]


def answer(
    request: RecordedRequest,
    bad_json: str | None,
    routes: Sequence[Route],
    *,
    api_key: str | None,
    request_id: str,
) -> Out:
    """The answer to ``request``, tagged with ``request_id`` as the API tags its answers."""
    try:
        out = _route(request, bad_json, routes, api_key)
    except RecursionError:  # a body that parsed, nested too deep for the handler to walk
        out = error_response(400, f"The request body is {_TOO_DEEP}")
    except Exception as err:  # a bug in a hook or here: tell the client, as the API would
        out = error_response(500, f"LocalServer failed: {type(err).__name__}: {err}")
    if isinstance(out.body, dict) and out.body.get("type") == "error":
        out.body["request_id"] = request_id
    out.headers["request-id"] = request_id
    return out


def _route(
    request: RecordedRequest, bad_json: str | None, routes: Sequence[Route], api_key: str | None
) -> Out:
    if api_key is not None and api_key not in _credentials(request.headers):
        return error_response(401, "invalid x-api-key")
    limit = MAX_BODY.get(request.path)
    if limit is not None and len(request.raw) > limit:
        return error_response(413, f"Request exceeds the maximum size of {limit} bytes")
    if bad_json == _TOO_DEEP:
        return error_response(400, f"The request body is {_TOO_DEEP}")
    if bad_json is not None:
        return error_response(400, f"The request body is not valid JSON: {bad_json}")
    for route in routes:
        match = re.fullmatch(route.path, request.path)
        if match and route.method == request.method:
            return route.handler(request, *match.groups())
    return error_response(404, f"Not found: {request.method} {request.path}")


def _credentials(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    # SDK 2.x sends api_key as "Authorization: Bearer <key>"; the API also takes x-api-key.
    authorization = headers.get("authorization", "")
    bearer = authorization[7:] if authorization[:7].lower() == "bearer " else None
    return headers.get("x-api-key"), bearer


# ------------------------------------------------------------------------------ the server

Respond = Callable[[str, str, dict[str, str], bytes], Out]
"""``respond(method, target, headers, raw)``: the answer to one request."""


class ThreadedServer(ThreadingHTTPServer):
    """An HTTP/1.1 server that answers with ``respond``, each connection in its own thread.

    :meth:`serve_in_thread` starts it; :meth:`stop` ends it and every thread it started.
    """

    # ThreadingMixIn does not keep daemon threads for server_close() to join, so this class
    # starts its handler threads itself and stop() joins them.
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog is 5: with dozens of clients connecting at once
    # (a proxy's connection pool under load) the kernel drops connections past it, and each
    # dropped one costs its client a SYN retransmission (1 s and up) or a reset.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], respond: Respond) -> None:
        self.respond = respond
        self.stopping = threading.Event()
        """Set by :meth:`stop`; delayed answers wait on it."""
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._serving: threading.Thread | None = None
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup; not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def serve_in_thread(self) -> None:
        """Serve in a daemon thread."""
        thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"tidyctx-LocalServer-{self.server_port}",
            daemon=True,
        )
        self._serving = thread
        thread.start()

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread."""
        self.stopping.set()  # wakes Hang and Fail delays
        if self._serving is not None:
            self.shutdown()
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections block their handler threads
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()  # closes the listening socket
        if self._serving is not None:
            self._serving.join()
        with self._conn_lock:
            handlers, self._handlers = self._handlers, []
        for handler in handlers:
            handler.join()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"tidyctx-LocalServer-{self.server_port}-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._connections.add(request)
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (timed out, closed its pool) is not an error of the server.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tidyctx-LocalServer/1"
    sys_version = ""
    server: ThreadedServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate sends; without this, Nagle's algorithm and the
        # peer's delayed ACK stall every response by ~40 ms.
        with suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
        except (OSError, ValueError):
            self.close_connection = True
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        out = self.server.respond(method, self.path, headers, raw)
        if out.delay > 0 and self.server.stopping.wait(out.delay):
            self.close_connection = True
            return
        try:
            self._write(out)
        except OSError:  # the client went away (e.g. it timed out during a Hang)
            self.close_connection = True

    def _write(self, out: Out) -> None:
        self.send_response(out.status, _REASONS.get(out.status))
        if out.events is not None:
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            for key, value in out.headers.items():
                self.send_header(key, value)
            self.end_headers()
            for name, data in out.events:
                chunk = encode_event(name, data)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = (
            out.raw
            if out.raw is not None
            else json.dumps(out.body, ensure_ascii=False).encode("utf-8")
        )
        self.send_header("Content-Type", out.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in out.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)
