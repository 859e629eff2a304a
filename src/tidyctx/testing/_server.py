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

The server is made of: ``_http`` (the threaded HTTP server, reading and routing requests),
``_messages`` (what a request means and what answers it), ``_streaming`` (a reply as
Server-Sent Events), ``_batches`` (the Message Batches API) and ``_summarizer`` (the stand-in
for ``tidyctx.summarize``'s model). This module ties them together and holds the script.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

from tidyctx.testing._batches import Batches, BatchOutcome
from tidyctx.testing._http import (
    Out,
    RecordedRequest,
    Route,
    ThreadedServer,
    answer,
    error_response,
    parse_request,
)
from tidyctx.testing._messages import (
    DEFAULT_MESSAGES,
    Fail,
    Hang,
    MessagesAPI,
    Reply,
    Responder,
    ScriptItem,
    TokenCounter,
    UsageHook,
    error_type_for,
)
from tidyctx.testing._prefix import (
    Binding,
    PrefixMismatch,
    merge_bindings,
    mismatch_message,
    prefix_mismatches,
    thinking_bindings,
)
from tidyctx.testing._streaming import stream_events
from tidyctx.testing._summarizer import is_summary_call
from tidyctx.tokens import runs_prefix_check

__all__ = ["LocalServer", "PrefixCheck", "local_server"]

_BATCH_PATH = r"/v1/messages/batches/([^/]+)"

PrefixCheck: TypeAlias = Literal["enforce", "record", "off"]
"""How :class:`LocalServer` answers a request whose thinking blocks fail the prefix check."""

# https://platform.claude.com/docs/en/build-with-claude/preserved-thinking: the beta that
# adds thinking.block_binding and the response's input_transformations.
BINDING_BETA = "thinking-binding-controls-2026-08-01"
_BEHAVIOURS = ("error", "drop_block")


class LocalServer:
    """A local, deterministic Anthropic Messages API for tests.

    Args:
        responder: answers each valid request no scripted reply answers (default: a
            :func:`~tidyctx.testing.summary_responder` summary for a ``tidyctx.summarize``
            call, ``"ok"`` for anything else).
        usage_for: overrides the usage fields; see :data:`UsageHook`. When given, ``cache``
            has no effect.
        batch_polls: a new batch ends on its ``batch_polls``-th retrieve call (0: at once). It
            may be changed while the server runs: open batches end on their next retrieve once
            they have been retrieved that many times.
        batch_outcome: decides a batch request's result when its batch is processed (``None``:
            as usual; ``"expired"``; a :class:`Fail`: ``errored`` with that error); see
            :data:`~tidyctx.testing.BatchOutcome`. May be replaced while the server runs.
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
        prefix_check: the prefix check on thinking blocks, for the models that run it
            (:data:`tidyctx.tokens.PRESERVED_THINKING_MODELS`), as documented in
            https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks.
            The server remembers what each thinking block it produced is bound to (the
            ``system``, ``tools`` and messages before it, :mod:`tidyctx.testing._prefix`);
            a later request (``/v1/messages`` or ``count_tokens``) that changed that prefix,
            or left out or moved a thinking block between others, fails it. ``"enforce"``
            (default; the API's default for accounts created on or after 2026-08-31): a 400
            in the API's words, unless the request sets
            ``thinking.block_binding.prefix_mismatch_behavior`` to ``"drop_block"`` (then
            the answer lists the blocks in ``input_transformations`` as dropped).
            ``"record"`` (older accounts, and the models where a failure gives no error):
            the request is answered as usual unless it sets that field; with the
            ``thinking-binding-controls-2026-08-01`` beta the answer lists each failing
            block as ``thinking_mismatch_allowed``. ``"off"``: no check. Every failure is
            kept in :attr:`prefix_mismatches` whatever the mode.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        usage_for: UsageHook | None = None,
        batch_polls: int = 0,
        batch_outcome: BatchOutcome | None = None,
        counter: TokenCounter | None = None,
        api_key: str | None = None,
        cache: bool = True,
        clock: Callable[[], float | datetime] | None = None,
        host: str = "127.0.0.1",
        prefix_check: PrefixCheck = "enforce",
    ) -> None:
        if batch_polls < 0:
            raise ValueError(f"batch_polls must be >= 0, got {batch_polls}")
        if prefix_check not in ("enforce", "record", "off"):
            raise ValueError(
                f"prefix_check must be 'enforce', 'record' or 'off', got {prefix_check!r}"
            )
        self.prefix_check: PrefixCheck = prefix_check
        self._bindings: dict[str, list[Binding]] = {}
        self._mismatches: list[PrefixMismatch] = []
        self.batch_polls = batch_polls
        self.api_key = api_key
        self._api = MessagesAPI(
            responder=responder, usage_for=usage_for, counter=counter, cache=cache, clock=clock
        )
        self._batches = Batches(
            self._api,
            request_id=self._next_request_id,
            clock=clock,
            base_url=lambda: self.base_url,
            outcome=batch_outcome,
            prefix=lambda body, headers: self._prefix(body, headers, batch=True),
            bind=self._bind,
        )
        self._host = host
        self._lock = threading.RLock()
        self._httpd: ThreadedServer | None = None
        self._requests: list[RecordedRequest] = []
        self._script: deque[ScriptItem] = deque()
        self._request_ids = 0
        batches = self._batches
        self._routes = (
            Route("POST", "/v1/messages", lambda r: self._messages(r.body, r.headers)),
            Route(
                "POST",
                "/v1/messages/count_tokens",
                lambda r: self._count_tokens(r.body, r.headers),
            ),
            Route(
                "POST",
                "/v1/messages/batches",
                lambda r: batches.create(r.body, self.batch_polls, r.headers),
            ),
            Route("GET", "/v1/messages/batches", lambda r: batches.list_batches(r.query)),
            Route(
                "GET",
                _BATCH_PATH,
                lambda _, batch_id: batches.retrieve(batch_id, self.batch_polls),
            ),
            Route("DELETE", _BATCH_PATH, lambda _, batch_id: batches.delete(batch_id)),
            Route("POST", _BATCH_PATH + "/cancel", lambda _, batch_id: batches.cancel(batch_id)),
            Route("GET", _BATCH_PATH + "/results", lambda _, batch_id: batches.results(batch_id)),
        )

    # -- options read on every request

    @property
    def responder(self) -> Responder | None:
        """See the class doc; may be replaced while the server runs."""
        return self._api.responder

    @responder.setter
    def responder(self, responder: Responder | None) -> None:
        self._api.responder = responder

    @property
    def usage_for(self) -> UsageHook | None:
        """See the class doc; may be replaced while the server runs."""
        return self._api.usage_for

    @usage_for.setter
    def usage_for(self, usage_for: UsageHook | None) -> None:
        self._api.usage_for = usage_for

    @property
    def batch_outcome(self) -> BatchOutcome | None:
        """See the class doc; may be replaced while the server runs."""
        return self._batches.outcome

    @batch_outcome.setter
    def batch_outcome(self, outcome: BatchOutcome | None) -> None:
        self._batches.outcome = outcome

    @property
    def cache(self) -> bool:
        """See the class doc; may be changed while the server runs."""
        return self._api.cache

    @cache.setter
    def cache(self, cache: bool) -> None:
        self._api.cache = cache

    # -- lifecycle

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("LocalServer is already running")
        httpd = ThreadedServer((self._host, 0), self._handle)
        self._httpd = httpd
        httpd.serve_in_thread()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread. Idempotent."""
        if self._httpd is None:
            return
        self._httpd.stop()
        self._httpd = None

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

    @property
    def prefix_mismatches(self) -> list[PrefixMismatch]:
        """Every thinking block that failed the prefix check so far, in the order found
        (answered with a 400, dropped or let through: see ``prefix_check``)."""
        with self._lock:
            return list(self._mismatches)

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
            self._bindings.clear()
            self._mismatches.clear()
        self._batches.clear()
        self._api.reset_cache()

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

    # -- request handling

    def _next_request_id(self) -> str:
        with self._lock:
            self._request_ids += 1
            return f"req_local{self._request_ids:015d}"

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Out:
        request, bad_json = parse_request(method, target, headers, raw)
        with self._lock:
            self._requests.append(request)
        request_id = self._next_request_id()
        return answer(request, bad_json, self._routes, api_key=self.api_key, request_id=request_id)

    def _prefix(
        self, body: Any, headers: Mapping[str, str], *, batch: bool = False
    ) -> tuple[str | None, Any]:
        """The prefix check on a valid ``body``: the 400 message, or None and the
        ``input_transformations`` to answer with (None without the beta header). In a batch
        (``batch``), a request that leaves the behaviour unset is not failed: where the check
        is enforced by default the failing blocks are dropped (the docs: "In the Message
        Batches API, an item that leaves the field unset doesn't fail")."""
        betas = {b.strip() for b in headers.get("anthropic-beta", "").split(",")}
        beta = BINDING_BETA in betas
        thinking = body.get("thinking")
        binding = thinking.get("block_binding") if isinstance(thinking, Mapping) else None
        if binding is not None and not beta:
            # https://platform.claude.com/docs/en/build-with-claude/preserved-thinking
            return "thinking.block_binding: Extra inputs are not permitted", None
        behaviour = (
            binding.get("prefix_mismatch_behavior") if isinstance(binding, Mapping) else None
        )
        if behaviour is not None and behaviour not in _BEHAVIOURS:
            return (
                "thinking.block_binding.prefix_mismatch_behavior: Input should be 'error' or "
                f"'drop_block', got {behaviour!r}",
                None,
            )
        entries: list[dict[str, str]] = []
        if self.prefix_check != "off" and runs_prefix_check(body.get("model")):
            with self._lock:
                found = prefix_mismatches(body, self._bindings)
                self._mismatches.extend(found)
            if behaviour is None and self.prefix_check == "enforce":
                behaviour = "drop_block" if batch else "error"
            if found and behaviour == "error":
                return mismatch_message(found[0], beta=beta), None
            for mismatch in found:
                if behaviour == "drop_block":
                    kind = "thinking_dropped"
                elif mismatch.follows:
                    continue  # not enforced: each block is judged on its own
                else:
                    kind = "thinking_mismatch_allowed"
                entries.append(
                    {"type": kind, "path": mismatch.path, "reason": "prefix_binding_mismatch"}
                )
        return None, entries if beta else None

    def _bind(self, body: dict[str, Any], message: Mapping[str, Any]) -> None:
        """Remember what the thinking blocks of ``message``, the answer to ``body``, are
        bound to."""
        if self.prefix_check == "off" or not runs_prefix_check(body.get("model")):
            return
        bound = thinking_bindings(body, message.get("content") or [])
        if bound:
            with self._lock:
                merge_bindings(self._bindings, bound)

    def _messages(self, body: Any, headers: Mapping[str, str]) -> Out:
        """``POST /v1/messages``: the next scripted item, else the responder's reply."""
        problem = self._api.problem(body, "messages")
        transformations: Any = None
        if problem is None:
            problem, transformations = self._prefix(body, headers)
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
            out = error_response(400, problem)
            out.delay = delay
            return out
        reply: Reply = head if head is not None else self._api.reply_for(body)
        message = self._api.message(body, reply, service_tier="standard")
        if transformations is not None:
            message["input_transformations"] = transformations
        if not prewarm:
            self._bind(body, message)
        out = Out(200, events=stream_events(message)) if body.get("stream") else Out(200, message)
        out.delay = delay
        return out

    def _count_tokens(self, body: Any, headers: Mapping[str, str]) -> Out:
        """``POST /v1/messages/count_tokens`` (it runs the same prefix check: see
        https://platform.claude.com/docs/en/build-with-claude/preserved-thinking)."""
        problem = self._api.problem(body, "count")
        if problem is None:
            problem = self._prefix(body, headers)[0]
        if problem is not None:
            return error_response(400, problem)
        return Out(200, {"input_tokens": self._api.count_input(body)})


def _check_item(item: object) -> None:
    if isinstance(item, Fail | Hang | str | Mapping):
        return
    if isinstance(item, Sequence) and all(isinstance(b, str | Mapping) for b in item):
        return
    raise TypeError(
        f"cannot script a {type(item).__name__}: use a str, a list of content blocks, a "
        "message dict, Fail(...) or Hang(...)"
    )


def _fail_out(fail: Fail) -> Out:
    kind = fail.error_type or error_type_for(fail.status)
    out = error_response(fail.status, fail.message or DEFAULT_MESSAGES.get(kind, "Error"), kind)
    out.headers.update(fail.headers or {})
    out.delay = fail.delay or 0.0
    return out


@contextmanager
def local_server(**options: Any) -> Iterator[LocalServer]:
    """Start a :class:`LocalServer` (keyword options as its constructor) and stop it after."""
    server = LocalServer(**options)
    with server:
        yield server
