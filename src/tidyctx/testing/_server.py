"""A local Messages API server for tests: the real Anthropic SDK over real HTTP, offline.

:class:`LocalServer` listens on ``127.0.0.1`` (a free port) and answers the endpoints the SDK
calls: ``POST /v1/messages`` (JSON or Server-Sent Events), ``POST /v1/messages/count_tokens``
and the Message Batches endpoints. It validates requests the way the API does
(:func:`tidyctx._request.validate` with ``strict=False``) and answers invalid ones with a 400 in
the API's error shape, so an agent that works against it sends requests the API accepts.
Replies are deterministic; :meth:`LocalServer.script` queues replies and failures (529, 429,
timeouts...) to test retry and error paths. Prompt caching is simulated
(:class:`tidyctx.cachesim.CacheModel`), so ``usage`` reports realistic cache reads and writes.

>>> import anthropic
>>> from tidyctx.testing import Fail, local_server
>>> with local_server() as srv:
...     srv.script("Hello!", Fail(529))
...     with anthropic.Anthropic(base_url=srv.base_url, api_key="test", max_retries=0) as client:
...         request = {"model": "claude-sonnet-4-6", "max_tokens": 64,
...                    "messages": [{"role": "user", "content": "hi"}]}
...         reply = client.messages.create(**request)
...         try:
...             client.messages.create(**request)
...         except anthropic.OverloadedError as err:
...             status = err.status_code
>>> reply.content[0].text, reply.stop_reason, status
('Hello!', 'end_turn', 529)
>>> [r.path for r in srv.requests]
['/v1/messages', '/v1/messages']

With pytest, ``tests/conftest.py`` offers the fixtures ``local_server`` and ``anthropic_client``.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import re
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeAlias, cast
from urllib.parse import parse_qsl, unquote

from tidyctx._request import ValidationError, block_hash, canonical_json, validate

if TYPE_CHECKING:
    from tidyctx.cachesim import CacheModel
    from tidyctx.tokens import LocalCounter

__all__ = [
    "ERROR_TYPES",
    "Fail",
    "Hang",
    "LocalServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "TokenCounter",
    "UsageHook",
    "error_type_for",
    "is_summary_call",
    "local_server",
    "summary_responder",
]

Reply: TypeAlias = str | Sequence[Mapping[str, Any] | str] | Mapping[str, Any]
"""What the server answers a valid request with.

A ``str`` becomes one text block; a list holds content blocks (bare strings in it become text
blocks); a mapping with ``content`` (or ``"type": "message"``) is a full message whose keys
(``stop_reason``, ``usage``, ``id``...) override the defaults; any other mapping is one block.
Missing ``tool_use`` ids and ``thinking`` signatures are filled in deterministically.
"""

Responder: TypeAlias = Callable[[dict[str, Any]], Reply]
"""Called with (a copy of) each valid request body that no scripted reply answers."""

UsageHook: TypeAlias = Callable[[dict[str, Any]], Mapping[str, Any]]
"""Called with (a copy of) each answered request body; its keys override the default usage.

A hook replaces the built-in prompt-cache simulation (the server then reports no cache use
besides what the hook gives).

If it gives ``cache_creation_input_tokens`` but no ``cache_creation`` breakdown, the whole
amount is reported as 5-minute writes. ``output_tokens`` is counted from the reply unless the
hook gives it.
"""

# HTTP status -> error.type (ANTHROPIC_FACTS §6, from the errors page and the SDK's ErrorType).
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_DEFAULT_MESSAGES: Mapping[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API",
    "permission_error": "Your API key does not have permission to use the specified resource",
    "not_found_error": "Not found",
    "conflict_error": "Conflict",
    "request_too_large": "Request exceeds the maximum allowed number of bytes",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}

_REASONS: Mapping[int, str] = {529: "Overloaded"}

# Limits (ANTHROPIC_FACTS §4, §5: key BA and ER).
MAX_BATCH_REQUESTS = 100_000
_MAX_BODY = {"/v1/messages": 32 * 1024 * 1024, "/v1/messages/batches": 256 * 1024 * 1024}
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_BATCH_PATH = re.compile(r"/v1/messages/batches/([^/]+)(/cancel|/results)?")
# Keys that make up the prompt; the rest (max_tokens, stream, metadata...) cost no input tokens.
_PROMPT_KEYS = ("model", "system", "tools", "tool_choice", "messages")


def error_type_for(status: int) -> str:
    """The API's ``error.type`` for an HTTP status (other 4xx: invalid_request_error)."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


@dataclass(frozen=True, slots=True)
class Fail:
    """A scripted error response: ``Fail(529)``, ``Fail(429, headers={"retry-after": "1"})``.

    ``error_type`` defaults to the API's type for ``status`` (:data:`ERROR_TYPES`), ``message``
    to a stock message; ``delay`` seconds pass before the answer.
    """

    status: int
    error_type: str | None = None
    message: str | None = None
    headers: Mapping[str, str] | None = None
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    """A scripted stall: wait ``seconds``, then answer with ``then`` (default: as usual).

    Longer than the client's timeout, it makes the SDK raise ``anthropic.APITimeoutError``.
    :meth:`LocalServer.stop` cuts the wait short.
    """

    seconds: float
    then: Reply | Fail | None = None


ScriptItem: TypeAlias = Reply | Fail | Hang


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


class TokenCounter(Protocol):
    """What the server counts tokens with (``tidyctx.tokens.LocalCounter`` by default)."""

    def count_request(self, request: dict[str, Any]) -> int: ...

    def count_text(self, text: str) -> int: ...


class _ApproxCounter:
    """About 4 characters per token (PR FAQ), over canonical JSON."""

    def count_request(self, request: dict[str, Any]) -> int:
        return max(1, len(canonical_json(request)) // 4)

    def count_text(self, text: str) -> int:
        return len(text) // 4


@functools.cache
def _default_counter() -> TokenCounter:
    # Imported lazily so that this module imports (and the server starts) without it.
    try:
        tokens = importlib.import_module("tidyctx.tokens")
    except ModuleNotFoundError as err:
        if err.name != "tidyctx.tokens":
            raise
        # TODO(tokens): drop this fallback once tidyctx.tokens.LocalCounter has landed.
        return _ApproxCounter()
    return cast(TokenCounter, tokens.LocalCounter())


# ------------------------------------------------------------------------------ responses


@dataclass
class _Out:
    status: int
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] | None = None
    delay: float = 0.0


def _error(status: int, message: str, error_type: str | None = None) -> _Out:
    kind = error_type or error_type_for(status)
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}
    return _Out(status, body)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", text)


def _stream_events(message: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The Server-Sent Events that stream ``message``, as the API sends them.

    ``message_start`` (the message without content, with input usage), a ``ping``, then per
    block ``content_block_start`` / ``content_block_delta``... / ``content_block_stop``, then
    ``message_delta`` (stop_reason, cumulative usage) and ``message_stop``.
    """
    usage = dict(message["usage"])
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))},
    }
    for key in ("stop_details", "container"):
        start.pop(key, None)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]

    def delta(index: int, payload: dict[str, Any]) -> None:
        event = {"type": "content_block_delta", "index": index, "delta": payload}
        events.append(("content_block_delta", event))

    for index, block in enumerate(message["content"]):
        kind = block.get("type")
        if kind == "text":
            first = {key: value for key, value in block.items() if key != "citations"}
            first["text"] = ""
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
            )
            for piece in _words(block["text"]):
                delta(index, {"type": "text_delta", "text": piece})
            for citation in block.get("citations") or []:
                delta(index, {"type": "citations_delta", "citation": citation})
        elif kind in ("tool_use", "server_tool_use"):
            first = {**block, "input": {}}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
            )
            text = json.dumps(block.get("input", {}), ensure_ascii=False)
            pieces = _chunks(text, 12) if block.get("input") else [""]
            for piece in pieces:
                delta(index, {"type": "input_json_delta", "partial_json": piece})
        elif kind == "thinking":
            first = {**block, "thinking": "", "signature": ""}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
            )
            for piece in _words(block["thinking"]):
                delta(index, {"type": "thinking_delta", "thinking": piece})
            delta(index, {"type": "signature_delta", "signature": block["signature"]})
        else:  # redacted_thinking, server tool results...: sent whole
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": dict(block)},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))

    final_usage = {
        key: usage[key]
        for key in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        )
        if key in usage
    }
    final_delta: dict[str, Any] = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": message.get("stop_sequence"),
    }
    for key in ("stop_details", "container"):
        if message.get(key) is not None:
            final_delta[key] = message[key]
    events.append(
        ("message_delta", {"type": "message_delta", "delta": final_delta, "usage": final_usage})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


# ------------------------------------------------------------------------------ batches


@dataclass
class _Batch:
    id: str
    requests: list[tuple[str, dict[str, Any]]]
    created_at: datetime
    polls_left: int
    status: str = "in_progress"
    finishing: bool = False
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None
    results: list[dict[str, Any]] | None = None


# ------------------------------------------------------------------------------ HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    # ThreadingMixIn does not keep daemon threads for server_close() to join, so this class
    # starts its handler threads itself and LocalServer.stop() joins them.
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: LocalServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup; not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"tidyctx-LocalServer-{self.server_port}-conn",
            daemon=True,
        )
        self.owner._track(request, thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        self.owner._untrack(request)
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
    server: _HTTPServer

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
        owner = self.server.owner
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
        except (OSError, ValueError):
            self.close_connection = True
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        out = owner._handle(method, self.path, headers, raw)
        if out.delay > 0 and owner._stopping.wait(out.delay):
            self.close_connection = True
            return
        try:
            self._write(out)
        except OSError:  # the client went away (e.g. it timed out during a Hang)
            self.close_connection = True

    def _write(self, out: _Out) -> None:
        self.send_response(out.status, _REASONS.get(out.status))
        if out.events is not None:
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            for key, value in out.headers.items():
                self.send_header(key, value)
            self.end_headers()
            for name, data in out.events:
                text = f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
                chunk = text.encode("utf-8")
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# ------------------------------------------------------------------------------ the server


class LocalServer:
    """A local, deterministic Anthropic Messages API for tests.

    Args:
        responder: answers each valid request no scripted reply answers (default: ``"ok"``).
        usage_for: overrides the usage fields; see :data:`UsageHook`. When given, ``cache``
            has no effect.
        batch_polls: a new batch ends on its ``batch_polls``-th retrieve call (0: at once).
        counter: counts tokens (default: ``tidyctx.tokens.LocalCounter()``).
        api_key: if given, requests that carry another key (``x-api-key`` or
            ``Authorization: Bearer``; SDK 2.x sends the latter) get a 401.
        cache: simulate prompt caching (default): one :class:`tidyctx.cachesim.CacheModel`
            for the server's lifetime answers every ``/v1/messages`` call (streamed or not,
            pre-warm with ``max_tokens: 0``, and batch requests when the batch is processed)
            with the cache reads and writes the API would bill; ``input_tokens`` is what is
            left of the counted total. ``False``: every call reports no cache use.
        clock: the time in seconds, for the cache TTLs and batch timestamps (default:
            ``time.monotonic`` for the cache, the current UTC time for batches). A clock that
            returns a ``datetime`` works too. Inject a fake one to test expiry.
        host: the interface to bind (default ``127.0.0.1``); the port is picked free.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        usage_for: UsageHook | None = None,
        batch_polls: int = 0,
        counter: TokenCounter | None = None,
        api_key: str | None = None,
        cache: bool = True,
        clock: Callable[[], float | datetime] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if batch_polls < 0:
            raise ValueError(f"batch_polls must be >= 0, got {batch_polls}")
        self.responder = responder
        self.usage_for = usage_for
        self.batch_polls = batch_polls
        self.api_key = api_key
        self._counter = counter
        self.cache = cache
        self._time = clock
        self._cache_model: CacheModel | None = None
        self._host = host
        self._lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._requests: list[RecordedRequest] = []
        self._script: deque[ScriptItem] = deque()
        self._batches: dict[str, _Batch] = {}
        self._request_ids = 0
        self._batch_ids = 0

    # -- lifecycle

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("LocalServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer(self, (self._host, 0))
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"tidyctx-LocalServer-{httpd.server_port}",
            daemon=True,
        )
        self._httpd, self._thread = httpd, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()  # wakes Hang and Fail delays
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections block their handler threads
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()  # closes the listening socket
        thread.join()
        with self._lock:
            handlers, self._handlers = self._handlers, []
        for handler in handlers:
            handler.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LocalServer is not running: call start() first")
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: pass it as ``anthropic.Anthropic(base_url=...)``."""
        return f"http://{self._host}:{self.port}"

    # -- recording and scripting

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def summary_calls(self) -> list[dict[str, Any]]:
        """The bodies of the ``tidyctx.summarize`` calls received so far (:func:`is_summary_call`),
        oldest first."""
        return [r.body for r in self.requests if r.body and is_summary_call(r.body)]

    @property
    def scripted(self) -> tuple[ScriptItem, ...]:
        """The scripted items not consumed yet."""
        with self._lock:
            return tuple(self._script)

    def reset(self) -> None:
        """Forget recorded requests, scripted items, batches and the prompt cache (hooks stay)."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._batches.clear()
        with self._count_lock:
            self._cache_model = None

    def script(self, *items: ScriptItem) -> None:
        """Queue replies and failures for the next ``POST /v1/messages`` calls, in order.

        Each call consumes one item: a :data:`Reply` answers a valid request (an invalid one
        gets its 400 and leaves the reply queued); a :class:`Fail` or :class:`Hang` applies
        whatever the request. Count-tokens and batch requests do not consume items.
        """
        for item in items:
            _check_item(item)
        with self._lock:
            self._script.extend(items)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        error_type: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next ``times`` message calls fail with ``status`` (ahead of the script)."""
        fail = Fail(status, error_type=error_type, message=message, headers=headers)
        with self._lock:
            self._script.extendleft([fail] * times)

    # -- connection tracking (called by the HTTP server)

    def _track(self, conn: socket.socket, handler: threading.Thread) -> None:
        with self._lock:
            self._connections.add(conn)
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(handler)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    # -- request handling

    def _next_request_id(self) -> str:
        with self._lock:
            self._request_ids += 1
            return f"req_local{self._request_ids:015d}"

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Out:
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
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, headers, body, raw))
        request_id = self._next_request_id()
        try:
            out = self._answer(method, path, query, headers, raw, body, bad_json)
        except Exception as err:  # a bug in a hook or here: tell the client, as the API would
            out = _error(500, f"LocalServer failed: {type(err).__name__}: {err}")
        if isinstance(out.body, dict) and out.body.get("type") == "error":
            out.body["request_id"] = request_id
        out.headers["request-id"] = request_id
        return out

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        bad_json: str | None,
    ) -> _Out:
        if self.api_key is not None and self.api_key not in _credentials(headers):
            return _error(401, "invalid x-api-key")
        limit = _MAX_BODY.get(path)
        if limit is not None and len(raw) > limit:
            return _error(413, f"Request exceeds the maximum size of {limit} bytes")
        if bad_json is not None:
            return _error(400, f"The request body is not valid JSON: {bad_json}")
        if method == "POST" and path == "/v1/messages":
            return self._messages(body)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return self._count_tokens(body)
        if path == "/v1/messages/batches":
            if method == "POST":
                return self._create_batch(body)
            if method == "GET":
                return self._list_batches(query)
        match = _BATCH_PATH.fullmatch(path)
        if match:
            batch_id, action = match.group(1), match.group(2)
            if action is None and method == "GET":
                return self._retrieve_batch(batch_id)
            if action is None and method == "DELETE":
                return self._delete_batch(batch_id)
            if action == "/cancel" and method == "POST":
                return self._cancel_batch(batch_id)
            if action == "/results" and method == "GET":
                return self._batch_results(batch_id)
        return _error(404, f"Not found: {method} {path}")

    # -- validation

    def _problem(self, body: Any, endpoint: str) -> str | None:
        """Why the API would reject ``body`` (400), or None. endpoint: messages|count|batch."""
        if not isinstance(body, dict):
            return f"The request body must be a JSON object, got {type(body).__name__}"
        if "model" not in body:
            return "model: Field required"
        if not isinstance(body["model"], str) or not body["model"]:
            return f"model: must be a non-empty string, got {body['model']!r}"
        max_tokens = body.get("max_tokens")
        if endpoint != "count":
            if "max_tokens" not in body:
                return "max_tokens: Field required"
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
                return f"max_tokens: must be an integer, got {max_tokens!r}"
            if max_tokens < 0 or (max_tokens == 0 and endpoint == "batch"):
                return f"max_tokens: must be at least 1, got {max_tokens}" + (
                    " (cache pre-warming with max_tokens 0 is not available in Message Batches)"
                    if max_tokens == 0
                    else ""
                )
            stream = body.get("stream")
            if stream is not None and not isinstance(stream, bool):
                return f"stream: must be a boolean, got {stream!r}"
            if endpoint == "batch":
                if stream:
                    return "stream: streaming is not supported in Message Batches requests"
                if body.get("speed") is not None:
                    return "speed: not supported in Message Batches requests"
            if max_tokens == 0:
                problem = _prewarm_problem(body)
                if problem:
                    return problem
        if "messages" not in body:
            return "messages: Field required"
        problem = _thinking_problem(body, max_tokens if endpoint != "count" else None)
        if problem:
            return problem
        try:
            validate(body, strict=False)
            if endpoint != "count" and self._simulates_cache() and "cache_control" in body:
                # Where automatic caching lands (a block with another ttl: a 400, PC) is known
                # only once the request is laid out.
                from tidyctx.cachesim import layout

                with self._count_lock:
                    layout(body, self._cache_counter())
        except ValidationError as err:
            return str(err)
        return None

    # -- messages

    def _messages(self, body: Any) -> _Out:
        problem = self._problem(body, "messages")
        prewarm = problem is None and body["max_tokens"] == 0
        with self._lock:
            head = self._script[0] if self._script else None
            if isinstance(head, Fail | Hang) or (
                head is not None and problem is None and not prewarm
            ):
                self._script.popleft()
            else:
                head = None
        delay = 0.0
        while isinstance(head, Hang):
            delay += head.seconds
            head = head.then
        if isinstance(head, Fail):
            out = _fail_out(head)
            out.delay += delay
            return out
        if problem is not None:
            out = _error(400, problem)
            out.delay = delay
            return out
        reply: Reply = head if head is not None else self._respond(body)
        message = self._message(body, reply, service_tier="standard")
        if body.get("stream"):
            out = _Out(200, events=_stream_events(message))
        else:
            out = _Out(200, message)
        out.delay = delay
        return out

    def _respond(self, body: dict[str, Any]) -> Reply:
        if self.responder is None:
            # A tidyctx.summarize() call gets a deterministic summary; anything else "ok".
            return summary_responder(body) if is_summary_call(body) else "ok"
        return self.responder(copy.deepcopy(body))

    def _message(self, body: dict[str, Any], reply: Reply, *, service_tier: str) -> dict[str, Any]:
        identity = {key: value for key, value in body.items() if key != "stream"}
        message_id = "msg_" + block_hash(identity)[:24]
        overrides: dict[str, Any] = {}
        raw_blocks: Sequence[Mapping[str, Any] | str]
        if isinstance(reply, str):
            raw_blocks = [reply]
        elif isinstance(reply, Mapping):
            if "content" in reply or reply.get("type") == "message":
                overrides = dict(reply)
                content = overrides.pop("content", [])
                raw_blocks = [content] if isinstance(content, str) else list(content)
            else:
                raw_blocks = [reply]
        else:
            raw_blocks = list(reply)
        prewarm = body["max_tokens"] == 0
        blocks = [] if prewarm else _complete_blocks(raw_blocks, message_id)
        usage = self._usage(body, blocks, prewarm=prewarm, service_tier=service_tier)
        usage.update(overrides.pop("usage", None) or {})
        if prewarm:
            stop_reason = "max_tokens"
        elif any(block.get("type") == "tool_use" for block in blocks):
            stop_reason = "tool_use"
        else:
            stop_reason = "end_turn"
        message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        message.update(overrides)
        return message

    def _usage(
        self,
        body: dict[str, Any],
        blocks: list[dict[str, Any]],
        *,
        prewarm: bool,
        service_tier: str,
    ) -> dict[str, Any]:
        total = self._count_input(body)
        usage: dict[str, Any] = {
            "input_tokens": total,
            "output_tokens": 0 if prewarm else self._count_output(blocks),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": service_tier,
        }
        if self.usage_for is not None:
            extra = dict(self.usage_for(copy.deepcopy(body)))
            if "cache_creation_input_tokens" in extra and "cache_creation" not in extra:
                usage["cache_creation"] = {
                    "ephemeral_5m_input_tokens": extra["cache_creation_input_tokens"],
                    "ephemeral_1h_input_tokens": 0,
                }
            usage.update(extra)
        elif self.cache:
            usage.update(self._cache_usage(body, total))
        return usage

    # -- prompt caching

    def _simulates_cache(self) -> bool:
        return self.cache and self.usage_for is None

    def _cache_counter(self) -> LocalCounter | None:
        """The server's counter if the cache model can use it (a LocalCounter), else None."""
        from tidyctx import tokens

        counter = self._get_counter()
        return counter if isinstance(counter, tokens.LocalCounter) else None

    def _seconds(self) -> float:
        if self._time is None:
            return time.monotonic()
        now = self._time()
        return now.timestamp() if isinstance(now, datetime) else float(now)

    def _clock(self) -> datetime:
        """The time for batch timestamps."""
        if self._time is None:
            return datetime.now(UTC)
        now = self._time()
        return now if isinstance(now, datetime) else datetime.fromtimestamp(now, UTC)

    def _cache_usage(self, body: dict[str, Any], total: int) -> dict[str, Any]:
        """Cache reads and writes for ``body`` from the cache model; input is the rest of total.

        The cache model counts with the server's counter when that is a LocalCounter, so the
        parts add up to ``total`` exactly; with another counter its numbers are scaled to the
        counted total. Either way ``input + writes + reads == total``.
        """
        from tidyctx.cachesim import CacheModel

        with self._count_lock:  # one call at a time, in clock order
            counter = self._cache_counter()
            if self._cache_model is None:
                self._cache_model = CacheModel(counter=counter)
            call = self._cache_model.call(body, self._seconds())
        usage = call.usage
        read = int(usage["cache_read_input_tokens"])
        write_1h = int(usage["cache_creation"]["ephemeral_1h_input_tokens"])
        write_5m = int(usage["cache_creation"]["ephemeral_5m_input_tokens"])
        modeled = call.layout.total
        if counter is None and modeled > 0 and modeled != total:
            read, write_1h, write_5m = (n * total // modeled for n in (read, write_1h, write_5m))
        read = min(read, total)
        write_1h = min(write_1h, total - read)
        write_5m = min(write_5m, total - read - write_1h)
        return {
            "input_tokens": total - read - write_1h - write_5m,
            "cache_creation_input_tokens": write_1h + write_5m,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write_5m,
                "ephemeral_1h_input_tokens": write_1h,
            },
        }

    # -- token counting

    def _get_counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = _default_counter()
        return self._counter

    def _count_input(self, body: Mapping[str, Any]) -> int:
        prompt = {key: copy.deepcopy(body[key]) for key in _PROMPT_KEYS if key in body}
        with self._count_lock:
            return int(self._get_counter().count_request(prompt))

    def _count_output(self, blocks: list[dict[str, Any]]) -> int:
        texts: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "thinking":
                texts.append(str(block.get("thinking", "")))
            elif kind in ("tool_use", "server_tool_use"):
                texts.append(str(block.get("name", "")))
                texts.append(json.dumps(block.get("input", {}), ensure_ascii=False))
            else:
                texts.append(canonical_json(block).decode("utf-8"))
        with self._count_lock:
            counter = self._get_counter()
            total = sum(int(counter.count_text(text)) for text in texts if text)
        # The API reports at least one output token, even for an empty reply (Message docs).
        return max(1, total)

    def _count_tokens(self, body: Any) -> _Out:
        problem = self._problem(body, "count")
        if problem is not None:
            return _error(400, problem)
        return _Out(200, {"input_tokens": self._count_input(body)})

    # -- batches

    def _batch_json(self, batch: _Batch) -> dict[str, Any]:
        total = len(batch.requests)
        counts = {"processing": total, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.results is not None:
            counts["processing"] = 0
            for line in batch.results:
                counts[line["result"]["type"]] += 1
        ended = batch.status == "ended"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "created_at": _timestamp(batch.created_at),
            "expires_at": _timestamp(batch.created_at + timedelta(hours=24)),
            "ended_at": _timestamp(batch.ended_at) if batch.ended_at else None,
            "archived_at": None,
            "cancel_initiated_at": (
                _timestamp(batch.cancel_initiated_at) if batch.cancel_initiated_at else None
            ),
            "results_url": (
                f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }

    def _create_batch(self, body: Any) -> _Out:
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        requests = body.get("requests")
        if not isinstance(requests, list):
            return _error(400, "requests: Field required (a list of {custom_id, params})")
        if not requests:
            return _error(400, "requests: a batch needs at least one request")
        if len(requests) > MAX_BATCH_REQUESTS:
            return _error(
                400,
                f"requests: a batch holds at most {MAX_BATCH_REQUESTS:,} requests, "
                f"got {len(requests):,}",
            )
        seen: dict[str, int] = {}
        parsed: list[tuple[str, dict[str, Any]]] = []
        for i, item in enumerate(requests):
            if not isinstance(item, dict):
                return _error(400, f"requests[{i}]: must be an object with custom_id and params")
            custom_id = item.get("custom_id")
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                return _error(
                    400,
                    f"requests[{i}].custom_id: must be 1 to 64 characters of letters, digits, "
                    f"'_' or '-', got {custom_id!r}",
                )
            if custom_id in seen:
                return _error(
                    400,
                    f"requests[{i}].custom_id: duplicate custom_id {custom_id!r} "
                    f"(also requests[{seen[custom_id]}]); custom_ids must be unique in a batch",
                )
            seen[custom_id] = i
            params = item.get("params")
            if not isinstance(params, dict):
                return _error(400, f"requests[{i}].params: Field required (an object)")
            parsed.append((custom_id, copy.deepcopy(params)))
        with self._lock:
            self._batch_ids += 1
            batch_id = f"msgbatch_local{self._batch_ids:015d}"
            batch = _Batch(batch_id, parsed, self._clock(), polls_left=self.batch_polls)
            self._batches[batch_id] = batch
        if self.batch_polls == 0:
            self._end_batch(batch)
        with self._lock:
            return _Out(200, self._batch_json(batch))

    def _end_batch(self, batch: _Batch) -> None:
        """Process every request (outside the lock: hooks run here) and mark the batch ended."""
        canceled = batch.status == "canceling"
        results = [
            {
                "custom_id": custom_id,
                "result": {"type": "canceled"} if canceled else self._batch_result(params),
            }
            for custom_id, params in batch.requests
        ]
        with self._lock:
            batch.results = results
            batch.status = "ended"
            batch.ended_at = self._clock()
            batch.finishing = False

    def _batch_result(self, params: dict[str, Any]) -> dict[str, Any]:
        # Params are validated only when the batch is processed (ANTHROPIC_FACTS §4, key BA).
        problem = self._problem(params, "batch")
        kind = "invalid_request_error"
        if problem is None:
            try:
                message = self._message(params, self._respond(params), service_tier="batch")
            except Exception as err:  # a failing hook errors this request, not the batch
                problem, kind = f"LocalServer failed: {type(err).__name__}: {err}", "api_error"
            else:
                return {"type": "succeeded", "message": message}
        error = {
            "type": "error",
            "error": {"type": kind, "message": problem},
            "request_id": self._next_request_id(),
        }
        return {"type": "errored", "error": error}

    def _find_batch(self, batch_id: str) -> _Batch | _Out:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return _error(404, f"message_batch {batch_id!r} not found")
        return batch

    def _retrieve_batch(self, batch_id: str) -> _Out:
        found = self._find_batch(batch_id)
        if isinstance(found, _Out):
            return found
        batch = found
        end = False
        with self._lock:
            if batch.status != "ended" and not batch.finishing:
                batch.polls_left -= 1
                if batch.status == "canceling" or batch.polls_left <= 0:
                    batch.finishing = end = True
        if end:
            self._end_batch(batch)
        with self._lock:
            return _Out(200, self._batch_json(batch))

    def _list_batches(self, query: dict[str, str]) -> _Out:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return _error(400, f"limit: must be an integer, got {query.get('limit')!r}")
        if not 1 <= limit <= 1000:
            return _error(400, f"limit: must be between 1 and 1000, got {limit}")
        with self._lock:
            newest_first = list(reversed(self._batches.values()))
            ids = [batch.id for batch in newest_first]
            after, before = query.get("after_id"), query.get("before_id")
            for cursor in (after, before):
                if cursor is not None and cursor not in ids:
                    return _error(400, f"unknown pagination cursor {cursor!r}")
            if before is not None:
                end = ids.index(before)
                page = newest_first[max(0, end - limit) : end]
                has_more = end - limit > 0
            else:
                start = ids.index(after) + 1 if after is not None else 0
                page = newest_first[start : start + limit]
                has_more = start + limit < len(newest_first)
            data = [self._batch_json(batch) for batch in page]
        return _Out(
            200,
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def _cancel_batch(self, batch_id: str) -> _Out:
        found = self._find_batch(batch_id)
        if isinstance(found, _Out):
            return found
        with self._lock:
            if found.status == "in_progress" and not found.finishing:
                found.status = "canceling"
                found.cancel_initiated_at = self._clock()
            return _Out(200, self._batch_json(found))

    def _delete_batch(self, batch_id: str) -> _Out:
        found = self._find_batch(batch_id)
        if isinstance(found, _Out):
            return found
        with self._lock:
            if found.status != "ended":
                return _error(
                    400,
                    f"message_batch {batch_id!r} is still processing; Message Batches can only "
                    "be deleted once they have finished processing (cancel it first)",
                )
            del self._batches[batch_id]
        return _Out(200, {"id": batch_id, "type": "message_batch_deleted"})

    def _batch_results(self, batch_id: str) -> _Out:
        found = self._find_batch(batch_id)
        if isinstance(found, _Out):
            return found
        with self._lock:
            results = found.results
        if results is None:
            return _error(400, f"message_batch {batch_id!r} has not ended yet: no results")
        lines = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in results)
        return _Out(200, raw=lines.encode("utf-8"), content_type="application/binary")


# ------------------------------------------------------------------------------ helpers


def _check_item(item: object) -> None:
    if isinstance(item, Fail | Hang | str | Mapping):
        return
    if isinstance(item, Sequence) and all(isinstance(b, str | Mapping) for b in item):
        return
    raise TypeError(
        f"cannot script a {type(item).__name__}: use a str, a list of content blocks, a "
        "message dict, Fail(...) or Hang(...)"
    )


def _credentials(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    # SDK 2.x sends api_key as "Authorization: Bearer <key>"; the API also takes x-api-key.
    authorization = headers.get("authorization", "")
    bearer = authorization[7:] if authorization[:7].lower() == "bearer " else None
    return headers.get("x-api-key"), bearer


def _fail_out(fail: Fail) -> _Out:
    kind = fail.error_type or error_type_for(fail.status)
    out = _error(fail.status, fail.message or _DEFAULT_MESSAGES.get(kind, "Error"), kind)
    out.headers.update(fail.headers or {})
    out.delay = fail.delay or 0.0
    return out


def _complete_blocks(
    raw_blocks: Sequence[Mapping[str, Any] | str], message_id: str
) -> list[dict[str, Any]]:
    """Copy the reply's blocks, filling tool_use ids/inputs and thinking signatures."""
    blocks: list[dict[str, Any]] = []
    for i, raw in enumerate(raw_blocks):
        block: dict[str, Any] = (
            {"type": "text", "text": raw} if isinstance(raw, str) else copy.deepcopy(dict(raw))
        )
        seed = block_hash([message_id, i, block])
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            prefix = "toolu_" if kind == "tool_use" else "srvtoolu_"
            block.setdefault("id", prefix + seed[:24])
            block.setdefault("input", {})
        elif kind == "thinking":
            block.setdefault("signature", "sig_" + seed)
        blocks.append(block)
    return blocks


def _prewarm_problem(body: Mapping[str, Any]) -> str | None:
    # max_tokens 0 pre-warms the cache; it is refused with these (ANTHROPIC_FACTS §2, key PC).
    thinking = body.get("thinking")
    output_config = body.get("output_config")
    tool_choice = body.get("tool_choice")
    if body.get("stream"):
        return "max_tokens: 0 (cache pre-warming) cannot be used with stream"
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        return "max_tokens: 0 (cache pre-warming) cannot be used with thinking enabled"
    if isinstance(output_config, Mapping) and output_config.get("format") is not None:
        return "max_tokens: 0 (cache pre-warming) cannot be used with output_config.format"
    if isinstance(tool_choice, Mapping) and tool_choice.get("type") in ("any", "tool"):
        return f"max_tokens: 0 (cache pre-warming) cannot be used with tool_choice {tool_choice}"
    return None


def _thinking_problem(body: Mapping[str, Any], max_tokens: int | None) -> str | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            return f"thinking.budget_tokens: must be an integer >= 1024, got {budget!r}"
        if max_tokens and budget >= max_tokens:
            return (
                f"max_tokens: must be greater than thinking.budget_tokens ({budget}), "
                f"got {max_tokens}"
            )
    tool_choice = body.get("tool_choice")
    if (
        kind in ("enabled", "adaptive")
        and isinstance(tool_choice, Mapping)
        and tool_choice.get("type") in ("any", "tool")
    ):
        return (
            f"tool_choice: {tool_choice.get('type')!r} cannot be used with thinking; "
            "use 'auto' or 'none'"
        )
    return None


# ------------------------------------------------------------------------------ summaries

_SUMMARIZER_MARK = "tidyctx-summarizer v1"  # tidyctx.transforms._summarize.SUMMARIZER_MARK
_TAGGED = re.compile(r"<(previous-summary|transcript)>\n(.*)\n</\1>\Z", re.DOTALL)
_PATHLIKE = re.compile(r"~?/?(?:[\w.@+-]+/)+[\w.@+-]+|\b[\w-]+\.[A-Za-z]{1,5}\b")
_CODE_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\b")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,._:-]*\d(?![\w])")
_QUOTED = re.compile(r"\"([^\"\n]{3,80})\"|'([^'\n]{3,80})'|`([^`\n]{3,80})`")
_ERROR_LINE = re.compile(r"error|exception|traceback|failed|failure|fatal|denied|not found", re.I)
_SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z`\"'(])")
_NOTES = 25  # percent of the budget for the agent's own sentences (## Decisions)
_CALL_HEAD = re.compile(r"\[tool call (?P<name>\S+) \((?P<id>[^)]*)\)\] (?P<args>.*)")
_RESULT_HEAD = re.compile(r"\[result of (?P<name>.+?) \((?P<id>[^)]*)\)(?P<error>, error)?\]")


def is_summary_call(body: Mapping[str, Any]) -> bool:
    """Is this request a summary call of ``tidyctx.summarize`` (its system prompt says so)?"""
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(str(b.get("text") or "") for b in system if isinstance(b, Mapping))
    return isinstance(system, str) and _SUMMARIZER_MARK in system


def _code_like(name: str) -> bool:
    # Names a program uses (snake_case, camelCase, dotted, with digits), not plain words.
    if len(name) < 4:
        return False
    return (
        "_" in name
        or "." in name
        or any(c.isdigit() for c in name)
        or any(c.isupper() for c in name[1:])
    )


def _facts(text: str) -> list[str]:
    found: list[str] = []
    found += [m.group(0) for m in _PATHLIKE.finditer(text) if len(m.group(0)) >= 4]
    found += [m.group(0) for m in _CODE_NAME.finditer(text) if _code_like(m.group(0))]
    found += [
        m.group(0) for m in _NUMBER.finditer(text) if sum(c.isdigit() for c in m.group(0)) >= 3
    ]
    found += [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
    return found


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1).strip() if match else ""


def summary_responder(body: Mapping[str, Any]) -> str:
    """A deterministic, extractive summary for a ``tidyctx.summarize`` call.

    It reads the call's ``<previous-summary>`` and ``<transcript>`` and writes the sections
    the prompt asks for from what the text holds: the task (the first user text, or the
    previous summary's), the steps (each tool call with its input and the first line of its
    result, newest kept first), the agent's own sentences (its findings, decisions and plans,
    newest kept first), errors (lines that say error, failed...), and facts: paths,
    code names, numbers of 3+ digits and quoted strings, those the agent itself wrote (in
    its text and tool inputs) first, then by how often they occur. The answer fits in two
    thirds of the call's ``max_tokens`` (counted with :class:`tidyctx.tokens.LocalCounter`),
    so it stands for a summary of the requested length. It never calls a model: tests and
    benchmarks run offline, and its recall is that of an extractive summary, not of Haiku.
    """
    from tidyctx.tokens import LocalCounter

    previous = transcript = ""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        blocks = [content] if isinstance(content, str) else content or []
        for block in blocks:
            text = block if isinstance(block, str) else str(block.get("text") or "")
            match = _TAGGED.match(text)
            if match and match.group(1) == "previous-summary":
                previous = match.group(2)
            elif match:
                transcript = match.group(2)
    max_tokens = body.get("max_tokens")
    budget = max(50, (int(max_tokens) if isinstance(max_tokens, int) else 1024) * 2 // 3)
    counter = LocalCounter()

    task = _section(previous, "Task")
    steps = [s for s in _section(previous, "State").splitlines() if s.startswith("- ")]
    errors = [s for s in _section(previous, "Tried and failed").splitlines() if s.startswith("- ")]
    notes = [s for s in _section(previous, "Decisions").splitlines() if s.startswith("- ")]
    old_facts = re.findall(r"`([^`\n]+)`", _section(previous, "Facts"))
    score: dict[str, int] = {fact: 2 for fact in old_facts}  # still known: weigh as mentioned
    first_seen: dict[str, int] = {fact: i for i, fact in enumerate(old_facts)}
    role = ""
    pending: dict[str, str] = {}
    for part in re.split(r"\n\n(?=### (?:user|assistant)\n)", transcript):
        head, _, rest = part.partition("\n")
        role = head[4:] if head.startswith("### ") else role
        for chunk in re.split(r"\n(?=\[(?:tool call|result of) )", rest):
            call = _CALL_HEAD.match(chunk)
            result = _RESULT_HEAD.match(chunk)
            weight = 3 if role == "assistant" else 1
            if role == "user" and not task and not result and chunk.strip():
                task = " ".join(chunk.split())[:600]
            if role == "assistant" and not call and not result:
                # The agent's own words: its findings, decisions and plans, sentence by sentence.
                for sentence in _SENTENCE.split(" ".join(chunk.split())):
                    if len(sentence) >= 20:
                        notes.append(f"- {sentence[:300]}")
            if call:
                pending[call.group("id")] = f"{call.group('name')} {call.group('args')[:160]}"
            elif result:
                lines = [ln.strip() for ln in chunk.splitlines()[1:] if ln.strip()]
                first = lines[0][:160] if lines else "(empty)"
                what = pending.pop(result.group("id"), result.group("name"))
                steps.append(f"- {what} -> {first}")
                if result.group("error"):
                    errors.append(f"- {what}: {first}")
                for line in lines:
                    if _ERROR_LINE.search(line):
                        errors.append(f"- {line[:200]}")
            for fact in _facts(chunk):
                score[fact] = score.get(fact, 0) + weight
                first_seen.setdefault(fact, len(first_seen))

    def fit(lines: list[str], room: int, newest: bool = False) -> list[str]:
        kept: list[str] = []
        seen: set[str] = set()
        for line in reversed(lines) if newest else lines:
            if room < 3:
                break
            if line in seen:
                continue
            n = counter.count_text(line) + 1
            if n > room:
                continue
            kept.append(line)
            seen.add(line)
            room -= n
        return list(reversed(kept)) if newest else kept

    while task and counter.count_text(task) > budget // 4:
        task = task[: len(task) * 3 // 4]
    out = [f"## Task\n{task or '(not stated in this part)'}"]
    used = counter.count_text(out[0])
    state = fit(steps, budget * 2 // 10, newest=True)
    if state:
        out.append("## State\n" + "\n".join(state))
    decided = fit(notes, budget * _NOTES // 100, newest=True)
    if decided:
        out.append("## Decisions\n" + "\n".join(decided))
    failed = fit(errors, budget // 10, newest=True)
    if failed:
        out.append("## Tried and failed\n" + "\n".join(failed))
    used += sum(counter.count_text(s) + 2 for s in out[1:])
    ranked = sorted(score, key=lambda f: (-score[f], first_seen[f]))
    facts = fit([f"`{f}`" for f in ranked], max(0, budget - used - 10))
    if facts:
        out.append("## Facts\n" + ", ".join(facts))
    return "\n\n".join(out)


@contextmanager
def local_server(**options: Any) -> Iterator[LocalServer]:
    """Start a :class:`LocalServer` (keyword options as its constructor) and stop it after."""
    server = LocalServer(**options)
    with server:
        yield server
