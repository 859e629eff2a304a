"""The proxy's ledger rows: one ``tidyctx/1`` row per API call, handed to a ``record(row)``.

A row is what :class:`tidyctx.Ledger` writes for :func:`tidyctx.wrap` (see
:mod:`tidyctx.ledger`): the model, the usage the response reported and its cost, the latency,
the tokens before and after the pipeline, the transforms that changed the request, the
response's diagnostics, and what the call would have cost with no pipeline (the same
:class:`tidyctx.ledger.Baseline` as the wrapper's), plus the proxy's own facts: the session,
the HTTP method and path, the pipeline's name, the status, why it failed open, the time to
the first byte and the time the proxy held the request. Numbers and names only: never an API
key, a header or message content. ``tidyctx proxy --ledger PATH`` appends the rows to a
:class:`tidyctx.Ledger`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tidyctx import pricing
from tidyctx._request import Request
from tidyctx.ledger import FORMAT, Baseline, price
from tidyctx.proxy._pipeline import Prepared
from tidyctx.tokens import LocalCounter

__all__ = ["Record", "Rows", "UsageTap"]

Record = Callable[[dict[str, Any]], object]
"""Receives each ledger row (plain JSON data), such as ``tidyctx.Ledger(path).record``."""

_MESSAGES = "/v1/messages"


def _utc(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _seconds(ms: Any) -> float | None:
    return round(ms / 1000, 6) if isinstance(ms, int | float) else None


def _error(facts: dict[str, Any], tap: UsageTap | None) -> dict[str, Any] | None:
    """The row's ``error``: the wrapper's ``{"type", "status"}``, with where it came from."""
    status = facts.get("status")
    said = facts.get("error")
    if said == "client disconnected":
        return {"type": "client_disconnected", "status": status, "source": "client"}
    if isinstance(said, str) and said.startswith("upstream: "):
        return {"type": said.removeprefix("upstream: "), "status": status, "source": "upstream"}
    kind = tap.error_type if tap is not None else None
    if kind is None and isinstance(status, int) and status >= 400:
        kind = f"HTTP {status}"
    if kind is not None:
        return {"type": kind, "status": status, "source": "api"}
    return None


class Rows:
    """Turns what the proxy saw of each call into its ledger row.

    One per proxy: ``run`` names the rows of calls outside a ``tidyctx run`` session (a
    session's rows are the run of that session), and one :class:`tidyctx.ledger.Baseline`
    models the prompt cache of the calls it relays, as one workspace's.
    """

    def __init__(self, run: str | None = None) -> None:
        self.run = run or uuid.uuid4().hex[:12]
        self.baseline = Baseline()

    def row(
        self,
        facts: dict[str, Any],
        prepared: Prepared | None,
        tap: UsageTap | None,
        arrived: float,
        ended: float,
    ) -> dict[str, Any]:
        """The row of one call. ``facts``: what the relay recorded (``session``, ``method``,
        ``path``, ``pipeline``, ``status``, ``error``, ``complete``, ``latency_ms``,
        ``ttfb_ms``, ``added_ms``); ``arrived`` and ``ended`` in seconds since the epoch.
        Runs the cache models: call it off the event loop."""
        session = facts.get("session")
        row: dict[str, Any] = {
            "ledger": FORMAT,
            "ts": _utc(ended),
            "run": session or self.run,
            "kind": "call",
            "session": session,
            "http_method": facts.get("method"),
            "path": facts.get("path"),
            "pipeline": facts.get("pipeline"),
        }
        if tap is not None:
            tap.finish()
            row["stream"] = tap.streaming
        model = tap.model if tap is not None else None
        if model is None and prepared is not None:
            model = prepared.model
        row["model"] = model
        if tap is not None:
            row["id"] = tap.id
            row["stop_reason"] = tap.stop_reason
        if facts.get("status") is not None:
            row["status"] = facts["status"]
        row["latency_s"] = _seconds(facts.get("latency_ms"))
        for key in ("ttfb", "added"):
            if facts.get(f"{key}_ms") is not None:
                row[f"{key}_s"] = _seconds(facts[f"{key}_ms"])
        try:
            usage = pricing.usage_dict(tap.usage if tap is not None else {})
        except (TypeError, ValueError):
            usage = pricing.usage_dict({})
            row["ledger_error"] = "the response's usage could not be read"
        error = _error(facts, tap)
        row["usage"] = usage
        billed = error is None or any(usage.values())
        row["cost"] = price(usage, model) if billed else 0.0
        if error is not None:
            row["error"] = error
        if facts.get("status") is not None and not facts.get("complete"):
            row["complete"] = False
        if tap is not None and isinstance(tap.diagnostics, dict):
            row["diagnostics"] = tap.diagnostics
            row["cache_miss_reason"] = tap.diagnostics.get("cache_miss_reason")
        if prepared is None:
            row["baseline_cost"] = row["cost"]
            return row
        row["fail_open"] = prepared.fail_open
        row["pipeline_s"] = round(prepared.seconds, 6)
        row["request_bytes"] = len(prepared.body)
        row["changed"] = prepared.steps
        if prepared.ttl is not None:
            row["ttl"] = prepared.ttl.as_dict()
        if prepared.route is not None:
            row["route"] = prepared.route.as_dict()
        before, sent = prepared.before, prepared.sent
        prepared.before = prepared.after = None  # the requests are not kept past their row
        if before is None or sent is None:
            row["baseline_cost"] = row["cost"] if billed else 0.0
            return row
        if facts.get("path") != _MESSAGES or not billed:
            # Not a billed call (count_tokens, a refused call): without the pipeline it would
            # have cost the same.
            row.update(_totals(before, sent, prepared.model))
            row["baseline_cost"] = row["cost"] if billed else 0.0
            return row
        try:
            row.update(
                self.baseline.compare(before, sent, started=arrived, usage=usage, model=model)
            )
        except Exception as err:
            row["ledger_error"] = f"{type(err).__name__}: no comparison with no pipeline"
            row.update(_totals(before, sent, prepared.model))
        return row


def _totals(before: Request, sent: Request, model: str | None) -> dict[str, int]:
    """A row's ``tokens_before`` and ``tokens_after`` counted locally, where the cache models
    that give them did not run; nothing if they cannot be counted."""
    try:
        counter = LocalCounter(model)
        tokens_before = counter.count_request(before)
        tokens_after = tokens_before if sent is before else counter.count_request(sent)
    except Exception:  # for the ledger only
        return {}
    return {"tokens_before": tokens_before, "tokens_after": tokens_after}


class UsageTap:
    """Reads ``usage`` from a response as its bytes pass, without holding the stream.

    For Server-Sent Events it parses only the ``message_start`` and ``message_delta`` events
    (the ones that carry usage, https://docs.claude.com/en/docs/build-with-claude/streaming);
    for JSON it keeps the body (up to ``limit`` bytes) and parses it at the end.
    """

    def __init__(self, streaming: bool = False, limit: int = 8 * 1024 * 1024) -> None:
        self.streaming = streaming
        """Read as Server-Sent Events; set from the response's ``content-type``."""
        self.usage: dict[str, Any] = {}
        self.model: str | None = None
        self.id: str | None = None
        self.stop_reason: str | None = None
        self.diagnostics: dict[str, Any] | None = None
        self.error_type: str | None = None
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._tail = b""
        self._event = b""

    def feed(self, chunk: bytes) -> None:
        if not self.streaming:
            self._size += len(chunk)
            if self._size <= self._limit:
                self._parts.append(chunk)
            return
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self._limit:  # a line this long is no usage event: drop it
            self._tail = b""
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def _line(self, line: bytes) -> None:
        if line.startswith(b"event:"):
            self._event = line[6:].strip()
        elif line.startswith(b"data:") and self._event in (
            b"message_start",
            b"message_delta",
            b"error",
        ):
            try:
                data = json.loads(line[5:])
            except ValueError:
                return
            if isinstance(data, dict):
                self._read(data)
        elif not line:
            self._event = b""

    def _read(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self._message(data["message"])
        elif kind == "message_delta":
            self._merge(data.get("usage"))
            delta = data.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
        elif kind == "error" and isinstance(data.get("error"), dict):
            error_type = data["error"].get("type")
            self.error_type = error_type if isinstance(error_type, str) else "error"
        elif kind == "message":
            self._message(data)

    def _message(self, message: dict[str, Any]) -> None:
        # The message's names and numbers only; its content never leaves here.
        self._merge(message.get("usage"))
        for key in ("model", "id", "stop_reason"):
            if isinstance(message.get(key), str):
                setattr(self, key, message[key])
        if isinstance(message.get("diagnostics"), dict):
            self.diagnostics = message["diagnostics"]

    def _merge(self, usage: Any) -> None:
        # message_delta's usage is cumulative: its counts replace message_start's.
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def finish(self) -> None:
        if self.streaming or not self._parts or self._size > self._limit:
            return
        try:
            data = json.loads(b"".join(self._parts))
        except ValueError:
            return
        finally:
            self._parts = []
        if isinstance(data, dict):
            self._read(data)
