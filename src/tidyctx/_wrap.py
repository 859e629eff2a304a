"""wrap(): put the pipeline in front of a live Anthropic client and record every call.

``client = tc.wrap(anthropic.Anthropic(), ledger="usage.jsonl")`` gives a client that behaves as
the SDK's own (``isinstance`` included) but runs ``messages.create`` (streamed or not) and
``messages.stream``, on ``client.messages`` and ``client.beta.messages``, through the pipeline
(default: :func:`tidyctx.defaults` of the client) and writes one :class:`tidyctx.Ledger` row per
call. Everything else (batches, count_tokens, models, files, ``with_raw_response``...) is the
client's own, untouched; ``with_options()`` and ``copy()`` give a wrapped client again.

What the ledger gets, per call (see :mod:`tidyctx.ledger`): the response's usage and its price,
the latency, the request's tokens as built and as sent, the transforms that changed it, the
response's cache diagnostics, and what the call would have cost without the pipeline: the
request as built, run through a :class:`tidyctx.cachesim.CacheModel` of this client's
workspace cache at the same times.

The summary calls ``summarize`` makes go through the client it was given (for ``defaults``,
the unwrapped one) and are written as rows of their own (``kind: "summary"``).

Async clients: the pipeline's steps run in a worker thread (``asyncio.to_thread``), so a long
conversation does not hold up the event loop; ``asummarize`` is awaited on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tidyctx import pricing
from tidyctx._betas import merge_betas, required_betas
from tidyctx._calls import Call, in_pipeline, watching
from tidyctx._edge import guarded, start, transform_name
from tidyctx._pipeline import Transform, flat, step
from tidyctx._request import Request, normalize, to_plain
from tidyctx.ledger import Baseline, Ledger, changed_steps, price
from tidyctx.transforms._defaults import defaults
from tidyctx.transforms._order import SystemLines
from tidyctx.transforms._pauses import TTLDecision, record_call
from tidyctx.transforms._route import RouteDecision, collecting
from tidyctx.transforms._summarize import Summarize, _is_async

if TYPE_CHECKING:
    import anthropic

__all__ = ["wrap"]

ClientT = TypeVar("ClientT", bound="anthropic.Anthropic | anthropic.AsyncAnthropic")

OPTION_KEYS = frozenset(
    {"extra_headers", "extra_query", "extra_body", "timeout", "stream", "output_format"}
)
"""Keyword arguments of ``create`` / ``stream`` that are options of the SDK call, not the
request body (in the SDK's method signatures but not in ``MessageCreateParams``): passed on as
given, never shown to the pipeline or written to the ledger."""

HEADER_KEYS = frozenset({"betas", "user_profile_id", "workspace_id"})
"""Parameters the SDK sends as HTTP headers (``anthropic-beta``, ``anthropic-user-profile-id``,
``anthropic-workspace-id``): passed on as given, never shown to the pipeline or the ledger."""


def _absent(value: Any) -> bool:
    """The SDK's ``omit`` / ``NOT_GIVEN`` markers: the same as leaving the argument out."""
    return type(value).__name__ in ("Omit", "NotGiven")


def _split(kwargs: Mapping[str, Any]) -> tuple[Request, dict[str, Any]]:
    body: Request = {}
    options: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in OPTION_KEYS or key in HEADER_KEYS:
            options[key] = value
        elif not _absent(value):
            body[key] = value
    return body, options


@dataclass(slots=True)
class _Prepared:
    """A request before and after the pipeline, and what each step did."""

    before: Request
    after: Request
    changed: list[tuple[str, Request, Request]] = field(default_factory=list)
    pipeline_s: float = 0.0
    ran: bool = True
    """False: the pipeline did not run (a request the SDK itself will refuse)."""
    ttl: TTLDecision | None = None
    """What ``cache(ttl="adaptive")`` chose for this call, for the ledger."""
    route: RouteDecision | None = None
    """What ``route()`` chose for this call, for the ledger."""


def _sent(prep: _Prepared, options: dict[str, Any], kwargs: dict[str, Any], api: str) -> Any:
    """The SDK call's arguments: the pipeline's request and the call's options, with the betas
    the pipeline's output needs and its input did not (a tool change message order()
    inserted) added: to ``betas`` on ``beta.messages``, to the ``anthropic-beta`` header in
    ``extra_headers`` on ``messages`` (https://platform.claude.com/docs/en/api/beta-headers)."""
    if not prep.ran:
        return dict(kwargs)
    sent = {**prep.after, **options}
    if prep.after is prep.before:
        return sent
    had = set(required_betas(prep.before))
    needed = [name for name in required_betas(prep.after) if name not in had]
    if not needed:
        return sent
    if api == "beta.messages":
        given = sent.get("betas")
        betas = [] if given is None or _absent(given) else list(given)
        sent["betas"] = betas + [name for name in needed if name not in betas]
    else:
        headers = dict(sent.get("extra_headers") or {})
        value = next((v for k, v in headers.items() if k.lower() == "anthropic-beta"), None)
        headers = {k: v for k, v in headers.items() if k.lower() != "anthropic-beta"}
        headers["anthropic-beta"] = merge_betas(value if isinstance(value, str) else None, needed)
        sent["extra_headers"] = headers
    return sent


@dataclass(slots=True)
class _Outcome:
    """What came back: a message (or a stream's snapshot) or an error."""

    message: Any = None
    error: BaseException | None = None
    complete: bool = True
    started: float = 0.0
    latency_s: float = 0.0


class _Recorder:
    """The pipeline and the ledger of one wrapped client (shared by its ``with_options``
    copies)."""

    def __init__(self, transforms: Sequence[Transform], ledger: Ledger | None) -> None:
        self.transforms = tuple(transforms)
        self.ledger = ledger
        self._baseline = Baseline()

    # -- the pipeline

    def _runnable(self, body: Request) -> bool:
        return all(k in body for k in ("model", "messages", "max_tokens"))

    def prepare(self, body: Request) -> _Prepared:
        if not self._runnable(body):
            return _Prepared(body, body, ran=False)
        clock = time.perf_counter()
        request, _ = start(body)
        prep = _Prepared(request, request)
        decided = record_call(self.transforms, request)
        with watching(self._on_call), collecting() as routed:
            current = request
            for t in self.transforms:
                out = guarded(current, functools.partial(step, t, current))
                if self.ledger is not None and _changed(current, out):
                    prep.changed.append((transform_name(t), current, out))
                current = out
        prep.route = routed[-1] if routed else None
        prep.after = current
        prep.ttl = decided()
        prep.pipeline_s = time.perf_counter() - clock
        return prep

    async def aprepare(self, body: Request) -> _Prepared:
        if not self._runnable(body):
            return _Prepared(body, body, ran=False)
        clock = time.perf_counter()
        request, _ = start(body)
        prep = _Prepared(request, request)
        decided = record_call(self.transforms, request)
        with watching(self._on_call), collecting() as routed:
            current = request
            for t in self.transforms:
                if isinstance(t, Summarize) and t.is_async:
                    out = await t.acall(current)
                else:
                    # The context (and so the watcher) goes with the call into the thread.
                    out = await asyncio.to_thread(self._guarded_step, t, current)
                if self.ledger is not None and _changed(current, out):
                    prep.changed.append((transform_name(t), current, out))
                current = out
        prep.route = routed[-1] if routed else None
        prep.after = current
        prep.ttl = decided()
        prep.pipeline_s = time.perf_counter() - clock
        return prep

    def _guarded_step(self, t: Transform, request: Request) -> Request:
        return guarded(request, lambda: step(t, request))

    # -- the ledger

    def _on_call(self, call: Call) -> None:
        """A call a transform made (a summary): its own row."""
        if self.ledger is None:
            return
        outcome = _Outcome(call.response, call.error, True, call.started, call.seconds)
        try:
            row = self._row(call.kind, "messages", "create", False, call.request, outcome)
        except Exception as err:  # the summary call has been made: never fail it here
            row = _unreadable(call.kind, "messages", "create", False, err)
        row["baseline_cost"] = 0.0  # without the pipeline this call would not have been made
        self.ledger.record(row)

    def finish(
        self, api: str, method: str, stream: bool, prep: _Prepared, outcome: _Outcome
    ) -> None:
        if self.ledger is None:
            return
        # The agent's call has been made: whatever fails here must not fail it.
        try:
            row = self._row("call", api, method, stream, prep.after, outcome)
        except Exception as err:
            row = _unreadable("call", api, method, stream, err)
        else:
            if prep.ran:
                try:
                    row.update(self._compare(prep, outcome, row))
                except Exception as err:
                    row["ledger_error"] = f"{type(err).__name__}: no comparison with no pipeline"
        self.ledger.record(row)

    def _row(
        self,
        kind: str,
        api: str,
        method: str,
        stream: bool,
        request: Mapping[str, Any],
        outcome: _Outcome,
    ) -> dict[str, Any]:
        message = outcome.message
        plain = _plain_message(message)
        model = str(plain.get("model") or request.get("model") or "")
        row: dict[str, Any] = {
            "kind": kind,
            "api": api,
            "method": method,
            "stream": stream,
            "model": model,
            "id": plain.get("id"),
            "stop_reason": plain.get("stop_reason"),
            "latency_s": round(outcome.latency_s, 4),
        }
        usage = pricing.usage_dict(plain.get("usage") or {})
        row["usage"] = usage
        row["cost"] = price(usage, model) if outcome.error is None or any(usage.values()) else 0.0
        if outcome.error is not None:
            err = outcome.error
            status = getattr(err, "status_code", None)
            row["error"] = {"type": type(err).__name__, "status": status}
        if not outcome.complete:
            row["complete"] = False
        diagnostics = _diagnostics(message)
        if diagnostics is not None:
            row["diagnostics"] = diagnostics
            row["cache_miss_reason"] = diagnostics.get("cache_miss_reason")
        return row

    def _compare(
        self, prep: _Prepared, outcome: _Outcome, row: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What the call would have cost with no pipeline; tokens before and after; what each
        changing step removed."""
        model = str(prep.after.get("model") or "")
        out: dict[str, Any] = {"pipeline_s": round(prep.pipeline_s, 4)}
        out["changed"] = changed_steps(prep.changed, model)
        if prep.ttl is not None:
            out["ttl"] = prep.ttl.as_dict()
        if prep.route is not None:
            out["route"] = prep.route.as_dict()
        # Refused before any work (an error with no usage): no cache was read or written.
        billed = outcome.error is None or any(row["usage"].values())
        out.update(
            self._baseline.compare(
                prep.before,
                prep.after,
                started=outcome.started,
                usage=row["usage"],
                model=row["model"] or model,
                billed=billed,
            )
        )
        return out


def _unreadable(kind: str, api: str, method: str, stream: bool, err: Exception) -> dict[str, Any]:
    """The row of a call whose response could not be read: what is known, and why not more."""
    return {
        "kind": kind,
        "api": api,
        "method": method,
        "stream": stream,
        "ledger_error": f"{type(err).__name__}: the response's usage could not be read",
    }


def _changed(before: Request, after: Request) -> bool:
    """Did a step change the request? A string content written as the same text block is no
    change (the API reads both alike)."""
    return before != after and normalize(before) != normalize(after)


def _plain_message(message: Any) -> dict[str, Any]:
    """The message's fields the ledger reads (id, model, stop_reason, usage) as plain data."""
    if message is None:
        return {}
    if isinstance(message, Mapping):
        source: Mapping[str, Any] = message
        get: Callable[[str], Any] = source.get
    else:
        get = lambda key: getattr(message, key, None)  # noqa: E731
    out: dict[str, Any] = {}
    for key in ("id", "model", "stop_reason"):
        value = get(key)
        if isinstance(value, str):
            out[key] = value
    usage = get("usage")
    if usage is not None:
        out["usage"] = to_plain(usage)
    return out


def _diagnostics(message: Any) -> dict[str, Any] | None:
    if message is None:
        return None
    value = (
        message.get("diagnostics")
        if isinstance(message, Mapping)
        else getattr(message, "diagnostics", None)
    )
    if value is None:
        return None
    dump = getattr(value, "model_dump", None)
    plain = dump(mode="json") if callable(dump) else to_plain(value)
    return plain if isinstance(plain, dict) else None


# ---------------------------------------------------------------------------- streams


class _Usage:
    """A streamed message's id, model, stop reason, usage and diagnostics, from its events."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}
        self.diagnostics: Any = None
        self.stopped = False

    def feed(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = event.message
            for key in ("id", "model"):
                self.fields[key] = getattr(message, key, None)
            self.usage = _merge({}, to_plain(message.usage))
            self.diagnostics = getattr(message, "diagnostics", None)
        elif kind == "message_delta":
            self.usage = _merge(self.usage, to_plain(getattr(event, "usage", None) or {}))
            self.fields["stop_reason"] = getattr(event.delta, "stop_reason", None)
        elif kind == "message_stop":
            self.stopped = True

    def message(self) -> dict[str, Any]:
        return {**self.fields, "usage": self.usage, "diagnostics": self.diagnostics}


def _merge(usage: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A message_delta's usage is cumulative: its non-null counts replace the start's."""
    out = dict(usage)
    for key, value in update.items():
        if value is not None:
            out[key] = value
    return out


class _Stream:
    """``create(stream=True)``'s stream, recording the call when it ends or is closed."""

    def __init__(self, raw: Any, done: Callable[[_Usage, bool], None]) -> None:
        self._raw = raw
        self._done = done
        self._usage = _Usage()
        self._ended = False

    def _end(self, complete: bool) -> None:
        if not self._ended:
            self._ended = True
            self._done(self._usage, complete and self._usage.stopped)

    def __next__(self) -> Any:
        try:
            event = self._raw.__next__()
        except StopIteration:
            self._end(True)
            raise
        except BaseException:
            self._end(False)
            raise
        self._usage.feed(event)
        return event

    def __iter__(self) -> Any:
        while True:
            try:
                yield self.__next__()
            except StopIteration:
                return

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._end(False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # a finalizer must not raise
            self._end(False)


class _AStream:
    """``await create(stream=True)``'s async stream, recording the call when it ends."""

    def __init__(self, raw: Any, done: Callable[[_Usage, bool], None]) -> None:
        self._raw = raw
        self._done = done
        self._usage = _Usage()
        self._ended = False

    def _end(self, complete: bool) -> None:
        if not self._ended:
            self._ended = True
            self._done(self._usage, complete and self._usage.stopped)

    async def __anext__(self) -> Any:
        try:
            event = await self._raw.__anext__()
        except StopAsyncIteration:
            self._end(True)
            raise
        except BaseException:
            self._end(False)
            raise
        self._usage.feed(event)
        return event

    async def __aiter__(self) -> Any:
        while True:
            try:
                yield await self.__anext__()
            except StopAsyncIteration:
                return

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._raw.close()
        finally:
            self._end(False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # a finalizer must not raise
            self._end(False)


def _snapshot(stream: Any) -> tuple[Any, bool]:
    """A MessageStream's accumulated message (None before its first event) and whether it
    reached its end."""
    try:
        message = stream.current_message_snapshot
    except (AssertionError, AttributeError):
        return None, False
    return message, getattr(message, "stop_reason", None) is not None


# ---------------------------------------------------------------------------- resources


class _Messages:
    """``client.messages`` (or ``client.beta.messages``) with create and stream recorded."""

    def __init__(self, raw: Any, recorder: _Recorder, api: str) -> None:
        self._raw = raw
        self._recorder = recorder
        self._api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __repr__(self) -> str:
        return f"<tidyctx-wrapped {self._raw!r}>"

    def _done(
        self, method: str, stream: bool, prep: _Prepared, started: float, clock: float
    ) -> Callable[[_Usage, bool], None]:
        def done(usage: _Usage, complete: bool) -> None:
            outcome = _Outcome(usage.message(), None, complete, started)
            outcome.latency_s = time.perf_counter() - clock
            self._recorder.finish(self._api, method, stream, prep, outcome)

        return done

    def create(self, **kwargs: Any) -> Any:
        if in_pipeline():  # a transform's own call (summarize given this client): as is
            return self._raw.create(**kwargs)
        body, options = _split(kwargs)
        prep = self._recorder.prepare(body)
        sent = _sent(prep, options, kwargs, self._api)
        stream = bool(options.get("stream"))
        started, clock = time.time(), time.perf_counter()
        try:
            result = self._raw.create(**sent)
        except BaseException as err:
            outcome = _Outcome(None, err, True, started, time.perf_counter() - clock)
            self._recorder.finish(self._api, "create", stream, prep, outcome)
            raise
        if stream:
            return _Stream(result, self._done("create", True, prep, started, clock))
        outcome = _Outcome(result, None, True, started, time.perf_counter() - clock)
        self._recorder.finish(self._api, "create", False, prep, outcome)
        return result

    def stream(self, **kwargs: Any) -> Any:
        if in_pipeline():
            return self._raw.stream(**kwargs)
        return _StreamManager(self, kwargs)


class _StreamManager:
    """``messages.stream(...)``: the pipeline runs when the ``with`` block is entered."""

    def __init__(self, messages: _Messages, kwargs: dict[str, Any]) -> None:
        self._messages = messages
        self._kwargs = kwargs
        self._inner: Any = None
        self._stream: Any = None
        self._prep: _Prepared | None = None
        self._started = 0.0
        self._clock = 0.0

    def __enter__(self) -> Any:
        m = self._messages
        body, options = _split(self._kwargs)
        prep = self._prep = m._recorder.prepare(body)
        sent = _sent(prep, options, self._kwargs, m._api)
        self._started, self._clock = time.time(), time.perf_counter()
        self._inner = m._raw.stream(**sent)
        try:
            self._stream = self._inner.__enter__()
        except BaseException as err:
            outcome = _Outcome(None, err, True, self._started, time.perf_counter() - self._clock)
            m._recorder.finish(m._api, "stream", True, prep, outcome)
            raise
        return self._stream

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._inner.__exit__(*exc)
        finally:
            self._record(exc[1] if len(exc) > 1 else None)

    def _record(self, error: Any) -> None:
        m = self._messages
        assert self._prep is not None
        message, complete = _snapshot(self._stream)
        outcome = _Outcome(message, None, complete, self._started)
        if message is None and isinstance(error, BaseException):
            outcome.error = error
        outcome.latency_s = time.perf_counter() - self._clock
        m._recorder.finish(m._api, "stream", True, self._prep, outcome)


class _AsyncMessages(_Messages):
    """``client.messages`` of an ``AsyncAnthropic``."""

    async def create(self, **kwargs: Any) -> Any:
        if in_pipeline():
            return await self._raw.create(**kwargs)
        body, options = _split(kwargs)
        prep = await self._recorder.aprepare(body)
        sent = _sent(prep, options, kwargs, self._api)
        stream = bool(options.get("stream"))
        started, clock = time.time(), time.perf_counter()
        try:
            result = await self._raw.create(**sent)
        except BaseException as err:
            outcome = _Outcome(None, err, True, started, time.perf_counter() - clock)
            self._recorder.finish(self._api, "create", stream, prep, outcome)
            raise
        if stream:
            return _AStream(result, self._done("create", True, prep, started, clock))
        outcome = _Outcome(result, None, True, started, time.perf_counter() - clock)
        self._recorder.finish(self._api, "create", False, prep, outcome)
        return result

    def stream(self, **kwargs: Any) -> Any:
        if in_pipeline():
            return self._raw.stream(**kwargs)
        return _AsyncStreamManager(self, kwargs)


class _AsyncStreamManager(_StreamManager):
    """``messages.stream(...)`` of an async client: ``async with``."""

    def __enter__(self) -> Any:
        raise TypeError("an AsyncAnthropic client's messages.stream() is used with `async with`")

    async def __aenter__(self) -> Any:
        m = self._messages
        body, options = _split(self._kwargs)
        prep = self._prep = await m._recorder.aprepare(body)
        sent = _sent(prep, options, self._kwargs, m._api)
        self._started, self._clock = time.time(), time.perf_counter()
        self._inner = m._raw.stream(**sent)
        try:
            self._stream = await self._inner.__aenter__()
        except BaseException as err:
            outcome = _Outcome(None, err, True, self._started, time.perf_counter() - self._clock)
            m._recorder.finish(m._api, "stream", True, prep, outcome)
            raise
        return self._stream

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._inner.__aexit__(*exc)
        finally:
            self._record(exc[1] if len(exc) > 1 else None)


class _Beta:
    """``client.beta`` with its ``messages`` wrapped."""

    def __init__(self, raw: Any, messages: _Messages) -> None:
        self._raw = raw
        self.messages = messages

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __repr__(self) -> str:
        return f"<tidyctx-wrapped {self._raw!r}>"


_OWN = frozenset({"_tidyctx_unwrapped", "_tidyctx_recorder", "messages", "beta"})


class _Client:
    """The wrapped client: the SDK client's attributes, with ``messages`` and ``beta``
    wrapped. ``isinstance(wrapped, anthropic.Anthropic)`` holds (``__class__`` is the
    client's), and ``type()`` tells them apart."""

    def __init__(self, raw: Any, recorder: _Recorder) -> None:
        cls = _AsyncMessages if _is_async(raw) else _Messages
        object.__setattr__(self, "_tidyctx_unwrapped", raw)
        object.__setattr__(self, "_tidyctx_recorder", recorder)
        object.__setattr__(self, "messages", cls(raw.messages, recorder, "messages"))
        beta = getattr(raw, "beta", None)
        beta_messages = getattr(beta, "messages", None)
        if beta is not None and beta_messages is not None:
            wrapped = _Beta(beta, cls(beta_messages, recorder, "beta.messages"))
            object.__setattr__(self, "beta", wrapped)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._tidyctx_unwrapped)

    def __getattr__(self, name: str) -> Any:
        if name == "_tidyctx_unwrapped":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._tidyctx_unwrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            raise AttributeError(f"{name} of a wrapped client cannot be replaced")
        setattr(self._tidyctx_unwrapped, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._tidyctx_unwrapped)))

    def __repr__(self) -> str:
        return f"tc.wrap({self._tidyctx_unwrapped!r})"

    def with_options(self, **options: Any) -> Any:
        """The SDK's ``with_options``: a copy with other options, wrapped the same way (same
        pipeline, same ledger)."""
        raw = self._tidyctx_unwrapped.with_options(**options)
        return _Client(raw, self._tidyctx_recorder)

    def copy(self, **options: Any) -> Any:
        """The SDK's ``copy``, wrapped the same way."""
        raw = self._tidyctx_unwrapped.copy(**options)
        return _Client(raw, self._tidyctx_recorder)

    def __enter__(self) -> Any:
        self._tidyctx_unwrapped.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._tidyctx_unwrapped.__exit__(*exc)

    async def __aenter__(self) -> Any:
        await self._tidyctx_unwrapped.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._tidyctx_unwrapped.__aexit__(*exc)


def _ledger(ledger: Any) -> Ledger | None:
    if ledger is None or isinstance(ledger, Ledger):
        return ledger
    if isinstance(ledger, str | os.PathLike):
        return Ledger(ledger)
    raise TypeError(
        f"wrap(ledger=...) takes a path to a JSONL file or a tc.Ledger, got {type(ledger).__name__}"
    )


def wrap(
    client: ClientT,
    *transforms: Transform | Sequence[Transform],
    ledger: Ledger | str | os.PathLike[str] | None = None,
) -> ClientT:
    """``client`` with ``transforms`` (default: :func:`tidyctx.defaults` of the client, its
    ``order()`` with a :class:`~tidyctx.SystemLines` memory; a list of transforms counts as its
    transforms, as in :func:`~tidyctx.pipe`) applied
    to every ``messages.create`` / ``messages.stream`` call, on ``messages`` and
    ``beta.messages``, and each call written to ``ledger`` (a path or a
    :class:`~tidyctx.Ledger`; None: no ledger). See the module documentation.

    ``client`` is an ``anthropic.Anthropic`` or ``anthropic.AsyncAnthropic``; the result is
    typed as it. Wrapping a wrapped client wraps the client underneath again. To record calls
    without changing them, give a transform that changes nothing:
    ``tc.wrap(client, lambda request: request, ledger=...)``.
    """
    raw = getattr(client, "_tidyctx_unwrapped", None) or client
    create = getattr(getattr(raw, "messages", None), "create", None)
    if not callable(create):
        raise TypeError(
            "wrap() takes an anthropic.Anthropic or anthropic.AsyncAnthropic client (an object "
            f"with .messages.create), got {type(client).__name__}"
        )
    # The wrapper sees every call of a conversation, so order() can remember the system
    # prompt's volatile-looking lines and move one only once it has changed (SystemLines).
    chosen = flat(transforms) if transforms else defaults(raw, order={"seen": SystemLines()})
    is_async = _is_async(raw)
    for t in chosen:
        if not callable(t):
            raise TypeError(
                f"wrap() takes transforms (callables Request -> Request) after the client, got "
                f"{type(t).__name__} {t!r}"
            )
        if isinstance(t, Summarize) and t.is_async and not is_async:
            raise TypeError(
                "wrap(): an asummarize() transform needs an AsyncAnthropic client; use "
                "tc.summarize(client) with a sync client"
            )
    return cast(ClientT, _Client(raw, _Recorder(chosen, _ledger(ledger))))
