"""Load recorded agent runs and replay them turn by turn.

Two formats are read:

- a run file (``*.json``): one object with ``system``, ``tools``, ``messages`` (the final
  conversation) and ``turns`` (one ``{"ts", "usage"}`` per assistant message), the format of
  the project's trace collection;
- a request log (``*.jsonl``): one Messages API request per line, either the request itself
  or ``{"request": {...}, "ts": ..., "usage": {...}}``.

>>> parse_ts("2026-01-21T15:30:20Z")
1769009420.0
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tidyctx.request import Request, ValidationError, to_request

__all__ = ["Run", "Turn", "load", "load_run", "parse_ts"]


def parse_ts(value: Any) -> float | None:
    """An ISO-8601 string or epoch number as epoch seconds; None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    raise ValueError(f"cannot read a timestamp from {value!r}")


@dataclass(frozen=True, slots=True)
class Turn:
    """One recorded API call: the request sent, when, and the usage the API reported."""

    request: Request
    ts: float | None = None
    usage: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    """The assistant message the call produced, where the recording has it."""
    diagnostics: dict[str, Any] | None = None
    """The response's ``diagnostics`` (cache_miss_reason), where the log has it."""


@dataclass(frozen=True, slots=True)
class Run:
    """A recorded agent run: its requests in order, with times and usage where known."""

    id: str
    model: str
    turns: tuple[Turn, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    """Everything else the file says: source, license, agent, notes."""

    def requests(self) -> list[Request]:
        return [t.request for t in self.turns]

    def timestamps(self) -> list[float | None]:
        return [t.ts for t in self.turns]

    def usages(self) -> list[dict[str, Any] | None]:
        return [t.usage for t in self.turns]


def _run_from_conversation(data: Mapping[str, Any], name: str) -> Run:
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise ValueError(f"{name}: expected a 'messages' list")
    model = str(data.get("recorded_model") or data.get("model") or "")
    base: Request = {"model": model, "max_tokens": 4096}
    if data.get("system"):
        base["system"] = data["system"]
    if data.get("tools"):
        base["tools"] = data["tools"]
    recorded = list(data.get("turns") or [])
    turns: list[Turn] = []
    k = 0
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        info = recorded[k] if k < len(recorded) and isinstance(recorded[k], Mapping) else {}
        k += 1
        request = {**base, "messages": messages[:i]}
        turns.append(
            Turn(request, parse_ts(info.get("ts")), info.get("usage"), reply=dict(message))
        )
    if recorded and len(recorded) != len(turns):
        raise ValueError(
            f"{name}: {len(recorded)} recorded turns but {len(turns)} assistant messages"
        )
    meta = {k: v for k, v in data.items() if k not in ("messages", "turns", "system", "tools")}
    return Run(str(data.get("id") or name), model, tuple(turns), meta)


def _run_from_log(lines: list[str], name: str) -> Run:
    turns: list[Turn] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}:{n}: not JSON ({err.msg})") from None
        if not isinstance(entry, Mapping):
            raise ValueError(f"{name}:{n}: expected a JSON object")
        raw = entry.get("request", entry)
        try:
            request, _ = to_request(raw)
        except ValidationError as err:
            raise ValueError(f"{name}:{n}: {err}") from None
        diagnostics = entry.get("diagnostics") if "request" in entry else None
        if "request" not in entry:
            # A bare request line may carry its log fields beside the request's own keys; a
            # response's diagnostics has a cache_miss_reason, a request's a previous_message_id.
            logged = {"ts", "usage"}
            if isinstance(entry.get("diagnostics"), Mapping) and (
                "cache_miss_reason" in entry["diagnostics"]
            ):
                logged.add("diagnostics")
                diagnostics = entry["diagnostics"]
            request = {k: v for k, v in request.items() if k not in logged}
        turns.append(
            Turn(request, parse_ts(entry.get("ts")), entry.get("usage"), diagnostics=diagnostics)
        )
    model = str(turns[0].request.get("model", "")) if turns else ""
    return Run(Path(name).stem, model, tuple(turns))


def load(path: str | Path) -> list[Run]:
    """Read the recorded runs in ``path`` (a run ``.json`` or a request-log ``.jsonl``)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".jsonl":
        return [_run_from_log(text.splitlines(), p.name)]
    data = json.loads(text)
    if isinstance(data, list):
        return [_run_from_conversation(d, f"{p.name}[{i}]") for i, d in enumerate(data)]
    return [_run_from_conversation(data, p.name)]


def load_run(path: str | Path) -> Run:
    """The single run in ``path``; an error if the file holds several."""
    runs = load(path)
    if len(runs) != 1:
        raise ValueError(f"{path}: holds {len(runs)} runs; use load()")
    return runs[0]
