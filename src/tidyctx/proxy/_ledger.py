"""The proxy's ledger: one row per API call, handed to a ``record(row)`` callable.

A row holds numbers and names only: the time, endpoint, status, model, the usage the
response reported (cache writes split by TTL), its cost, the latency, the tokens before and
after the pipeline, the transforms that changed the request and why the proxy failed open.
Never an API key, a header or message content.

:class:`JsonlLedger` is the default ``record``: it appends each row as one JSON line with a
single ``os.write`` on a file opened with ``O_APPEND``, so a crash loses no completed row and
several proxies can append to one file.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from tidyctx import pricing

__all__ = ["JsonlLedger", "Record", "UsageTap", "cost_of", "usage_fields"]

Record = Callable[[dict[str, Any]], None]
"""Receives each ledger row (plain JSON data)."""


class JsonlLedger:
    """Append ledger rows to ``path`` as JSON lines (created with mode 0600 if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()

    def __call__(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"ledger {self.path} is closed")
            # One write per row: with O_APPEND the line lands whole at the end of the file,
            # whatever other processes append meanwhile.
            written = os.write(self._fd, data)
            while written < len(data):  # a short write (a full disk, a signal): finish it
                written += os.write(self._fd, data[written:])

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def usage_fields(usage: Any) -> dict[str, int]:
    """The usage counts a row keeps, with cache writes split into 5-minute and 1-hour."""
    if not isinstance(usage, dict):
        return {}
    out: dict[str, int] = {}
    for key in (
        "input_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "output_tokens",
    ):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = value
    creation = usage.get("cache_creation")
    if isinstance(creation, dict):
        for key, name in (
            ("ephemeral_5m_input_tokens", "cache_creation_5m_input_tokens"),
            ("ephemeral_1h_input_tokens", "cache_creation_1h_input_tokens"),
        ):
            value = creation.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                out[name] = value
    return out


def cost_of(usage: Any, model: str | None) -> float | None:
    """The cost in USD of ``usage`` on ``model``, or None for an unknown model or usage."""
    if not model or not isinstance(usage, dict):
        return None
    try:
        total: float = pricing.cost(usage, model).total
        return total
    except (ValueError, TypeError, pricing.UnknownModelError):
        return None


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
            message = data["message"]
            self._merge(message.get("usage"))
            if isinstance(message.get("model"), str):
                self.model = message["model"]
        elif kind == "message_delta":
            self._merge(data.get("usage"))
        elif kind == "error" and isinstance(data.get("error"), dict):
            error_type = data["error"].get("type")
            self.error_type = error_type if isinstance(error_type, str) else "error"
        elif kind == "message":
            self._merge(data.get("usage"))
            if isinstance(data.get("model"), str):
                self.model = data["model"]

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
