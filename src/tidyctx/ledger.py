"""The usage ledger: one JSON line per API call, appended as it happens, and its totals.

:func:`tidyctx.wrap` writes a row for every call a wrapped client makes (and for every summary
call ``summarize`` makes on its behalf) to a :class:`Ledger`. A row holds numbers and names
only, never an API key, a header or any message content:

``ledger``
    the format, ``"tidyctx/1"``; every row carries it, so a reader knows a ledger from a
    request log by any of its lines.
``ts``, ``run``, ``kind``
    when the call ended (UTC, ISO 8601), the run (one per :class:`Ledger` unless given), and
    ``"call"`` (the agent's own call) or ``"summary"`` (a call ``summarize`` made).
``api``, ``method``, ``stream``, ``model``, ``id``, ``stop_reason``
    ``messages`` or ``beta.messages``; ``create`` or ``stream``; whether the answer was
    streamed; the model that answered; the message id; why it stopped.
``usage``
    the response's ``usage`` as :func:`tidyctx.pricing.usage_dict` reads it: uncached input,
    cache reads, cache writes (``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``)
    and output tokens.
``cost``
    that usage priced by :func:`tidyctx.pricing.cost` in USD (None for a model with no price).
``baseline_cost``, ``baseline_usage``
    what the same call would have cost with no pipeline: the request as the agent built it,
    run through :class:`tidyctx.cachesim.CacheModel` at the same times (its prompt cache as
    the API would have kept it), with the same output. A summary call has none (0): without
    the pipeline it would not have been made.
``sim_cost``
    the request as sent, through the same cache model: beside ``baseline_cost`` it gives the
    pipeline's saving without the model's error.
``tokens_before``, ``tokens_after``
    input tokens of the request as built and as sent (:class:`tidyctx.tokens.LocalCounter`).
``changed``
    the transforms that changed the request, in order, each with the tokens it removed
    (``{"transform": "trim(...)", "tokens_saved": 1234}``).
``latency_s``, ``pipeline_s``
    seconds from sending to the whole answer (a stream: its last event), and seconds the
    pipeline took before it.
``route``
    what ``tc.route()`` chose, when the pipeline has it: ``model`` (chosen; in shadow mode the
    one it would have sent to), ``asked``, ``wanted`` (the policy's model), ``reason``,
    ``shadow``, ``switched``, ``saving`` (estimated USD below the model asked, cache rewrites
    included), ``policy_cost`` (a classifier call's USD) and ``streak``. A classifier's own
    calls are rows of their own (``kind: "route"``).
``cache_miss_reason``, ``diagnostics``
    the response's ``diagnostics`` and its ``cache_miss_reason`` when the response has them
    (requests that set ``diagnostics``); otherwise absent.
``error``, ``complete``
    a call that raised: ``{"type": "RateLimitError", "status": 429}`` (no message: an error
    message can quote the request); a stream closed before its end: ``complete: false``.

A request of a Message Batches job (:class:`tidyctx.BatchJob`) gets a row when its result is
saved: ``kind`` ``"batch"``, ``batch: true`` (the marker that ``cost`` is at the batch
discount, 50 %), ``api`` ``messages.batches``, ``job``, ``batch_id``, ``custom_id`` and
``attempt``; ``standard_cost`` is the same usage at the standard price, and
``baseline_cost`` equals ``cost`` (what a batch saves is the discount, not the pipeline's).

Other writers add fields of their own; a reader ignores the fields it does not know. The
proxy (``tidyctx proxy --ledger``) writes the same rows for the calls it relays, its
``run`` the ``tidyctx run`` session (else the proxy's own id), and adds ``session``,
``http_method``, ``path``, ``pipeline`` (the pipeline's name), ``status``, ``fail_open``,
``ttfb_s``, ``added_s`` and ``request_bytes``; its ``error`` names where the error came from
(``"source"``: ``api``, ``upstream`` or ``client``). A call no pipeline ran on (the proxy's
``--pipeline off``, a body it could not read) has ``baseline_cost`` equal to ``cost``.

:func:`price`, :func:`changed_steps` and :class:`Baseline` compute ``cost``, ``changed`` and
the comparison with no pipeline, for any writer of rows.

**Appending safely.** Each row is one ``write`` of one line to a file opened with ``O_APPEND``,
under an exclusive ``flock`` where the platform has one: several processes (and threads)
appending to one ledger never interleave or lose a row, and a row is on disk (in the operating
system's cache) as soon as the call returns; ``fsync=True`` also flushes it to the device. A
process killed mid-run leaves only whole rows, except in the rare case of a kill during the
write itself; the next writer then starts a new line, and :func:`read_ledger` names the cut
line.

**Reading.** :func:`iter_ledger` streams the rows of a file (memory stays flat on a large
ledger), :func:`read_ledger` lists them, :func:`summarize_ledger` gives the totals overall and
per run, per model and per day. Bad input raises :class:`LedgerError` naming the file and
line: an empty file, a file that is not a ledger, a cut or malformed line.

>>> import json, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "ledger.jsonl")
>>> ledger = Ledger(path, run="demo")
>>> ledger.write({"kind": "call", "model": "claude-sonnet-4-6",
...               "usage": {"input_tokens": 1200, "output_tokens": 80}})
>>> [row["run"] for row in read_ledger(path)]
['demo']
>>> summarize_ledger(path).total.calls
1
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidyctx import pricing
from tidyctx.cachesim import CacheCall, CacheModel
from tidyctx.tokens import LocalCounter, keeps_prior_thinking, thinking_cutoff

try:  # POSIX: an advisory lock around each append
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT",
    "Baseline",
    "Ledger",
    "LedgerError",
    "LedgerSummary",
    "LedgerWarning",
    "Routing",
    "Totals",
    "changed_steps",
    "is_ledger",
    "iter_ledger",
    "price",
    "read_ledger",
    "summarize_ledger",
]

FORMAT = "tidyctx/1"
"""The value of every row's ``ledger`` key."""

_PREFIX = "tidyctx/"


class LedgerError(ValueError):
    """A ledger file that cannot be read: names the file, the line and the problem."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class LedgerWarning(UserWarning):
    """A row could not be written (a full disk, a closed file); the API call went on."""


def _utc(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON cannot hold) as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class Ledger:
    """An append-only JSONL file of API calls (see the module documentation).

    ``path`` is created if missing (its directory must exist). ``run`` names this writer's
    rows (default: a new random id per :class:`Ledger`, so each agent process, or each
    :func:`tidyctx.wrap`, is its own run). ``fsync=True`` flushes each row to the device, not
    only to the operating system (slower; survives a power cut, not only a crash).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, run: str | None = None, fsync: bool = False
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"Ledger(path) must be a file path, got {type(path).__name__}")
        if run is not None and (not isinstance(run, str) or not run):
            raise ValueError(f"Ledger(run=...) must be a non-empty string, got {run!r}")
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"Ledger({str(path)!r}): is a directory, not a file")
        self.run = run or uuid.uuid4().hex[:12]
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, run={self.run!r})"

    def _open(self) -> int:
        # One descriptor per process: a forked child opens its own (same file, O_APPEND).
        if self._fd is None or self._pid != os.getpid():
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o666)
            self._pid = os.getpid()
        return self._fd

    def write(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` (a dict of JSON values), with ``ledger``, ``ts`` and ``run`` filled in
        where missing, as one line. Raises ``OSError`` if the file cannot be written."""
        full: dict[str, Any] = {"ledger": FORMAT, "ts": _utc(time.time()), "run": self.run}
        full.update(row)
        full["ledger"] = FORMAT
        line = json.dumps(
            _json_safe(full), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        data = (line + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                # A writer killed mid-row left a line with no end: start a new one, so this
                # row stays whole (the reader names the cut line).
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                view = memoryview(data)
                while view:
                    done = os.write(fd, view)
                    view = view[done:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def record(self, row: Mapping[str, Any]) -> bool:
        """:meth:`write`, with an error turned into a :class:`LedgerWarning`: for callers (the
        wrapped client) whose API call must not fail because its ledger could not be written.
        Returns whether the row was written."""
        try:
            self.write(row)
        except (OSError, ValueError, TypeError) as err:
            warnings.warn(
                f"tidyctx ledger {self.path}: a row could not be written ({err}); the API call "
                "itself went on",
                LedgerWarning,
                stacklevel=3,
            )
            return False
        return True

    def summary(self) -> LedgerSummary:
        """The totals of the whole file (every run in it, not only this writer's)."""
        return summarize_ledger(self.path)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and getattr(self, "_pid", 0) == os.getpid():
            with contextlib.suppress(OSError):
                os.close(fd)


# ---------------------------------------------------------------------------- row fields

_PRUNE_EVERY = 500
"""Calls between sweeps of expired entries from the cache models (bounded memory)."""


def price(usage: Mapping[str, Any], model: str | None, *, batch: bool = False) -> float | None:
    """A row's ``cost``: ``usage`` priced by :func:`tidyctx.pricing.cost` in USD (``batch``:
    at the Message Batches discount), rounded to 8 places; None for a model with no price."""
    try:
        return round(pricing.cost(usage, model or "", batch=batch).total, 8)
    except pricing.UnknownModelError:
        return None


def changed_steps(
    steps: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]], model: str | None
) -> list[dict[str, Any]]:
    """A row's ``changed``: per ``(transform name, request before, request after)`` of a step
    that changed the request, the input tokens it removed (:class:`tidyctx.tokens.LocalCounter`)."""
    counter = LocalCounter(model or None)
    return [
        {"transform": name, "tokens_saved": _saved(counter, before, after)}
        for name, before, after in steps
    ]


def _saved(counter: LocalCounter, before: Mapping[str, Any], after: Mapping[str, Any]) -> int:
    """``counter.count_request(before) - counter.count_request(after)``, counting only what
    differs: a step changes a few messages of a long conversation, and equal messages count
    the same on both sides (compared in C, most often by identity).

    The whole requests are counted when the message lists differ in length, or, on a model
    that drops earlier thinking, when a message that differs holds thinking or the turn that
    thinking is counted from moved (which thinking counts depends on the whole list)."""
    mb, ma = before.get("messages"), after.get("messages")
    if not isinstance(mb, list) or not isinstance(ma, list) or len(mb) != len(ma):
        return counter.count_request(before) - counter.count_request(after)
    differ = [i for i, (b, a) in enumerate(zip(mb, ma, strict=True)) if b is not a and b != a]
    model = counter.model or before.get("model")
    if not keeps_prior_thinking(model if isinstance(model, str) else None) and (
        thinking_cutoff(mb) != thinking_cutoff(ma)
        or any(_has_thinking(m) for i in differ for m in (mb[i], ma[i]))
    ):
        return counter.count_request(before) - counter.count_request(after)

    def part(request: Mapping[str, Any]) -> int:
        messages = request["messages"]
        return counter.count_request({**request, "messages": [messages[i] for i in differ]})

    return part(before) - part(after)


def _has_thinking(message: Any) -> bool:
    content = message.get("content") if isinstance(message, Mapping) else None
    return isinstance(content, list) and any(
        isinstance(b, Mapping) and b.get("type") in ("thinking", "redacted_thinking")
        for b in content
    )


class Baseline:
    """What each call would have cost with no pipeline: a row's ``tokens_before``,
    ``tokens_after``, ``baseline_usage``, ``baseline_cost`` and ``sim_cost``.

    Two :class:`tidyctx.cachesim.CacheModel` of one workspace's prompt cache, one fed the
    requests as the agent built them, one as they were sent, at the times they were sent (a
    call reported out of order is placed at the latest time seen). Thread-safe; expired cache
    entries are swept every few hundred calls, so memory stays bounded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built = CacheModel()
        self._sent = CacheModel()
        self._last = 0.0
        self._calls = 0

    def compare(
        self,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        *,
        started: float,
        usage: Mapping[str, Any],
        model: str | None = None,
        billed: bool = True,
    ) -> dict[str, Any]:
        """The comparison fields of the row of a call built as ``before`` and sent as
        ``after`` at ``started`` (seconds since the epoch), whose response reported ``usage``
        (its output tokens are the baseline's too) from ``model`` (default: the request's).

        ``billed=False``: a call refused before any work (an error with no usage): no cache
        was read or written, so the cache models do not see it and ``baseline_cost`` is 0.
        """
        name = str(model or after.get("model") or "")
        if not billed:
            counter = LocalCounter(name or None)
            return {
                "tokens_before": counter.count_request(before),
                "tokens_after": counter.count_request(after),
                "baseline_cost": 0.0,
            }
        with self._lock:
            now = max(self._last, started)
            self._last = now
            base: CacheCall = self._built.call(before, now)
            sent: CacheCall = self._sent.call(after, now)
            self._calls += 1
            if self._calls % _PRUNE_EVERY == 0:
                _prune(self._built, now)
                _prune(self._sent, now)
        output = pricing.usage_dict(usage)["output_tokens"]
        baseline_usage = {**pricing.usage_dict(base.usage), "output_tokens": output}
        sim_usage = {**pricing.usage_dict(sent.usage), "output_tokens": output}
        return {
            "tokens_before": base.layout.total,
            "tokens_after": sent.layout.total,
            "baseline_usage": baseline_usage,
            "baseline_cost": price(baseline_usage, name),
            "sim_cost": price(sim_usage, name),
        }


def _prune(model: CacheModel, now: float) -> None:
    """Drop the cache model's expired entries: a long-running writer would keep them all."""
    entries = model._entries
    for key in [k for k, e in entries.items() if e.expires < now]:
        del entries[key]


# ---------------------------------------------------------------------------- reading

_USAGE_KEYS = pricing.USAGE_FIELDS


def _first_line(path: Path, limit: int = 1 << 20) -> bytes:
    with open(path, "rb") as f:
        return f.readline(limit)


def is_ledger(path: str | os.PathLike[str]) -> bool:
    """Does the file's first line look like a ledger row (a JSON object with ``ledger``)?

    Only a regular file is looked at: reading the first line of a pipe or a device would take
    it from the reader that comes next."""
    try:
        if not Path(path).is_file():
            return False
        head = _first_line(Path(path))
    except OSError:
        return False
    text = head.decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        return False
    try:
        row = json.loads(text)
    except ValueError:
        # A cut first line still says what it is.
        return text.startswith('{"ledger":"' + _PREFIX)
    return isinstance(row, dict) and str(row.get("ledger", "")).startswith(_PREFIX)


def _check_row(path: Path, number: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise LedgerError(path, number, f"a row must be a JSON object, got {type(row).__name__}")
    mark = row.get("ledger")
    if mark != FORMAT:
        if isinstance(mark, str) and mark.startswith(_PREFIX):
            raise LedgerError(
                path, number, f"written in ledger format {mark!r}; this tidyctx reads {FORMAT!r}"
            )
        raise LedgerError(
            path,
            number,
            f'not a tidyctx ledger row (no "ledger": {FORMAT!r} key; keys '
            f"{sorted(row)[:6]}); a ledger is written by tc.wrap(client, ledger=...) or "
            "tc.Ledger",
        )
    usage = row.get("usage")
    if usage is not None:
        try:
            row["usage"] = pricing.usage_dict(usage)
        except (TypeError, ValueError) as err:
            raise LedgerError(path, number, f"usage: {err}") from None
    else:
        row["usage"] = dict.fromkeys(_USAGE_KEYS, 0)
    for key in ("cost", "baseline_cost", "sim_cost"):
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise LedgerError(path, number, f"{key} must be a number or null, got {value!r}")
    if not isinstance(row.get("ts", ""), str):
        raise LedgerError(path, number, f"ts must be an ISO 8601 string, got {row['ts']!r}")
    return row


def iter_ledger(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The rows of the ledger at ``path``, one at a time (blank lines skipped); each row's
    ``usage`` normalized by :func:`tidyctx.pricing.usage_dict`.

    Raises :class:`LedgerError` naming the file and line for an empty file, a file that is not
    a ledger, a line cut short (a writer stopped mid-row) or a malformed row, and ``OSError``
    when the file cannot be opened.
    """
    file = Path(path)
    if file.is_dir():
        raise LedgerError(file, None, "is a directory, not a ledger file")
    rows = 0
    number = 0
    with open(file, "rb") as f:
        for number, raw in enumerate(f, 1):
            ended = raw.endswith(b"\n")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise LedgerError(
                    file, number, f"not UTF-8 text ({err.reason}): not a ledger"
                ) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as err:
                if not ended:
                    raise LedgerError(
                        file,
                        number,
                        "the last line is cut short (a writer was stopped in the middle of a "
                        "row); every line before it is whole: delete that line to read them",
                    ) from None
                if rows == 0 and not text.lstrip().startswith("{"):
                    raise LedgerError(
                        file,
                        number,
                        "not a tidyctx ledger (JSON lines, each with "
                        f'"ledger": {FORMAT!r}, written by tc.wrap or tc.Ledger)',
                    ) from None
                raise LedgerError(file, number, f"not a JSON row ({err})") from None
            yield _check_row(file, number, row)
            rows += 1
    if rows == 0:
        what = "empty" if number == 0 else "holds only blank lines"
        raise LedgerError(
            file,
            None,
            f"{what}: no ledger rows (a ledger gets one line per API call made through "
            "tc.wrap(client, ledger=...))",
        )


def read_ledger(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of the ledger at ``path`` (see :func:`iter_ledger` for the errors)."""
    return list(iter_ledger(path))


@dataclass(slots=True)
class Totals:
    """Sums over a set of ledger rows."""

    calls: int = 0
    """Rows of the agent's own calls (``kind == "call"``), failed ones included."""
    summary_calls: int = 0
    route_calls: int = 0
    """Rows of the calls a ``route()`` classifier made (``kind == "route"``)."""
    errors: int = 0
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_USAGE_KEYS, 0))
    cost: float = 0.0
    """What the API billed, priced (calls and summary calls)."""
    baseline_cost: float = 0.0
    """What the calls would have cost with no pipeline (cachesim); summary calls add 0."""
    unpriced: int = 0
    """Rows with no cost (a model with no price): left out of ``cost`` and ``baseline_cost``."""
    tokens_before: int = 0
    tokens_after: int = 0
    unreadable: int = 0
    """Rows with a ``ledger_error``: a response whose usage (or comparison) the writer could
    not compute; their missing numbers are not in the sums."""

    @property
    def saved(self) -> float:
        """``baseline_cost - cost``: what the pipeline saved, summary calls paid."""
        return self.baseline_cost - self.cost

    def add(self, row: Mapping[str, Any]) -> None:
        if row.get("kind") == "summary":
            self.summary_calls += 1
        elif row.get("kind") == "route":
            self.route_calls += 1
        else:
            self.calls += 1
        if row.get("error"):
            self.errors += 1
        if row.get("ledger_error"):
            self.unreadable += 1
        usage = row.get("usage") or {}
        for key in _USAGE_KEYS:
            self.usage[key] += int(usage.get(key) or 0)
        cost = row.get("cost")
        if cost is None:
            if any(usage.get(key) for key in _USAGE_KEYS):
                self.unpriced += 1
        else:
            self.cost += float(cost)
            self.baseline_cost += float(row.get("baseline_cost") or 0.0)
        self.tokens_before += int(row.get("tokens_before") or 0)
        self.tokens_after += int(row.get("tokens_after") or 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "summary_calls": self.summary_calls,
            "route_calls": self.route_calls,
            "errors": self.errors,
            "usage": dict(self.usage),
            "cost": round(self.cost, 6),
            "baseline_cost": round(self.baseline_cost, 6),
            "saved": round(self.saved, 6),
            "unpriced": self.unpriced,
            "unreadable": self.unreadable,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
        }


@dataclass(slots=True)
class Routing:
    """What ``route()`` decided over a ledger's calls (rows with a ``route`` field)."""

    calls: int = 0
    shadow: int = 0
    """Calls decided in shadow mode (the request went to the model asked)."""
    moved: int = 0
    """Calls sent (or, in shadow mode, that would have been sent) to another model."""
    saving: float = 0.0
    """Estimated USD routing saved on the calls it changed."""
    shadow_saving: float = 0.0
    """Estimated USD routing would have saved on the calls decided in shadow mode."""
    policy_cost: float = 0.0
    """USD the policy spent (classifier calls)."""
    models: dict[str, int] = field(default_factory=dict)
    """Calls per model chosen."""

    def add(self, decision: Mapping[str, Any]) -> None:
        self.calls += 1
        model = str(decision.get("model") or "?")
        self.models[model] = self.models.get(model, 0) + 1
        if model != decision.get("asked"):
            self.moved += 1
        saving = decision.get("saving")
        usd = float(saving) if isinstance(saving, int | float) else 0.0
        if decision.get("shadow"):
            self.shadow += 1
            self.shadow_saving += usd
        else:
            self.saving += usd
        cost = decision.get("policy_cost")
        self.policy_cost += float(cost) if isinstance(cost, int | float) else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "shadow": self.shadow,
            "moved": self.moved,
            "saving": round(self.saving, 6),
            "shadow_saving": round(self.shadow_saving, 6),
            "policy_cost": round(self.policy_cost, 6),
            "models": dict(sorted(self.models.items())),
        }

    def lines(self) -> list[str]:
        out = ["", "routing (tc.route)"]
        live = self.calls - self.shadow
        if live:
            out.append(
                f"  {live:,} call{'s' if live != 1 else ''} routed: saved "
                f"${self.saving:.4f} (estimated, cache rewrites included)"
            )
        if self.shadow:
            out.append(
                f"  {self.shadow:,} call{'s' if self.shadow != 1 else ''} in shadow mode: "
                "would have saved "
                f"${self.shadow_saving:.4f} (estimated, cache rewrites included)"
            )
        calls = "call" if self.moved == 1 else "calls"
        out.append(f"  {self.moved:,} {calls} to another model than asked")
        if self.policy_cost:
            out.append(f"  policy calls cost ${self.policy_cost:.4f} (in the savings above)")
        for model, n in sorted(self.models.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {n:>13,}  {model}")
        return out


@dataclass(slots=True)
class LedgerSummary:
    """The totals of a ledger: overall, and per run, per model and per day (UTC)."""

    path: str
    total: Totals = field(default_factory=Totals)
    by_run: dict[str, Totals] = field(default_factory=dict)
    by_model: dict[str, Totals] = field(default_factory=dict)
    by_day: dict[str, Totals] = field(default_factory=dict)
    transforms: dict[str, int] = field(default_factory=dict)
    """Per transform: the tokens it removed over every call (``changed`` of each row)."""
    routing: Routing = field(default_factory=Routing)
    first: str = ""
    last: str = ""

    def add(self, row: Mapping[str, Any]) -> None:
        self.total.add(row)
        ts = str(row.get("ts") or "")
        for table, key in (
            (self.by_run, str(row.get("run") or "?")),
            (self.by_model, str(row.get("model") or "?")),
            (self.by_day, ts[:10] or "?"),
        ):
            table.setdefault(key, Totals()).add(row)
        for step in row.get("changed") or ():
            if isinstance(step, Mapping):
                name = str(step.get("transform"))
                saved = step.get("tokens_saved")
                number = saved if isinstance(saved, int) and not isinstance(saved, bool) else 0
                self.transforms[name] = self.transforms.get(name, 0) + number
        decision = row.get("route")
        if isinstance(decision, Mapping):
            self.routing.add(decision)
        if ts:
            self.first = min(self.first or ts, ts)
            self.last = max(self.last, ts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.path,
            "first": self.first,
            "last": self.last,
            "total": self.total.as_dict(),
            "by_run": {k: v.as_dict() for k, v in sorted(self.by_run.items())},
            "by_model": {k: v.as_dict() for k, v in sorted(self.by_model.items())},
            "by_day": {k: v.as_dict() for k, v in sorted(self.by_day.items())},
            "transforms": dict(sorted(self.transforms.items(), key=lambda kv: -kv[1])),
            "route": self.routing.as_dict(),
        }

    def __str__(self) -> str:
        t = self.total
        u = t.usage
        lines = [
            f"ledger   {self.path}",
            f"period   {self.first} .. {self.last}",
            f"calls    {t.calls:,} ({t.errors:,} failed) + {t.summary_calls:,} summary calls"
            + (f" + {t.route_calls:,} classifier calls" if t.route_calls else ""),
            f"tokens   {u['input_tokens']:,} uncached, {u['cache_read_input_tokens']:,} cache "
            f"read, {u['ephemeral_5m_input_tokens']:,} cache write 5m, "
            f"{u['ephemeral_1h_input_tokens']:,} cache write 1h, {u['output_tokens']:,} output",
            f"cost     ${t.cost:.4f}; with no pipeline ${t.baseline_cost:.4f} (cachesim): "
            f"saved ${t.saved:.4f}"
            + (f" ({t.saved / t.baseline_cost:.0%})" if t.baseline_cost > 0 else ""),
        ]
        if t.tokens_before:
            lines.append(
                f"input    {t.tokens_before:,} tokens built, {t.tokens_after:,} sent "
                f"({t.tokens_after / t.tokens_before:.2f}x)"
            )
        if t.unpriced:
            lines.append(f"note     {t.unpriced:,} rows of models with no price are not in $")
        if t.unreadable:
            lines.append(
                f"note     {t.unreadable:,} rows have a ledger_error: numbers the writer could "
                "not compute are not in the sums"
            )
        for title, table in (("run", self.by_run), ("model", self.by_model), ("day", self.by_day)):
            lines.append("")
            head = f"{'by ' + title:<28}{'calls':>7}{'summary':>8}{'input':>13}{'output':>10}"
            head += f"{'cost $':>11}{'no-pipe $':>11}{'saved $':>10}"
            lines.append(head)
            for key, v in sorted(table.items()):
                total_in = (
                    v.usage["input_tokens"]
                    + v.usage["cache_read_input_tokens"]
                    + v.usage["cache_creation_input_tokens"]
                )
                lines.append(
                    f"{key[:27]:<28}{v.calls:>7,}{v.summary_calls:>8,}{total_in:>13,}"
                    f"{v.usage['output_tokens']:>10,}{v.cost:>11.4f}{v.baseline_cost:>11.4f}"
                    f"{v.saved:>10.4f}"
                )
        if self.transforms:
            lines.append("")
            lines.append("tokens removed per transform (all calls)")
            for name, saved in sorted(self.transforms.items(), key=lambda kv: -kv[1]):
                lines.append(f"  {saved:>13,}  {name}")
        if self.routing.calls:
            lines.extend(self.routing.lines())
        return "\n".join(lines)


def summarize_ledger(
    source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
) -> LedgerSummary:
    """The totals of a ledger file (streamed: memory stays flat) or of rows already read."""
    if isinstance(source, str | os.PathLike):
        summary = LedgerSummary(str(source))
        rows: Iterable[Mapping[str, Any]] = iter_ledger(source)
    else:
        summary = LedgerSummary("(rows)")
        rows = source
    for row in rows:
        summary.add(row)
    return summary
