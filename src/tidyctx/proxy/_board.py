"""Live totals of a running proxy, fed by its ledger rows: for the dashboard and ``/metrics``.

:class:`Board` keeps running totals per session and per model (tokens by billing class, cost
with and without tidyctx, cache-hit share), the totals of each transform, the most recent
calls and the most recent cache misses with a reason, all in bounded memory. It sees only the
rows, which hold numbers and names, never content. :class:`ProxyMetrics` exposes the same
counts in the Prometheus text format through the official client, in a registry of its own
(so several proxies in one process do not collide), labelled by model and pipeline only.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from tidyctx import ledger, pricing

__all__ = ["BILLING_CLASSES", "Board", "ProxyMetrics", "Totals", "billing", "error_text", "saved"]

BILLING_CLASSES = ("uncached_input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
"""How the API bills a call's tokens (https://docs.claude.com/en/docs/about-claude/pricing)."""

_MAX_KEYS = 500  # sessions kept on the board; the least recently active go first
_MAX_MODELS = 50  # distinct model labels; more (a client sending arbitrary names) are "other"
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}")
_TTL_5M, _TTL_1H = 300.0, 3600.0


def billing(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """A row's ``usage`` as tokens per billing class (:func:`tidyctx.pricing.usage_dict`: a
    cache write with no TTL split is 5m, the API's default lifetime)."""
    counts = pricing.usage_dict(usage or {})
    return {
        "uncached_input": counts["input_tokens"],
        "cache_write_5m": counts["ephemeral_5m_input_tokens"],
        "cache_write_1h": counts["ephemeral_1h_input_tokens"],
        "cache_read": counts["cache_read_input_tokens"],
        "output": counts["output_tokens"],
    }


def started(row: Mapping[str, Any]) -> datetime | None:
    """When the call's request arrived: the row's ``ts`` (its end) less its latency."""
    try:
        end = datetime.fromisoformat(str(row["ts"]))
    except (KeyError, ValueError):
        return None
    latency = row.get("latency_s")
    if isinstance(latency, int | float) and not isinstance(latency, bool):
        return end - timedelta(seconds=latency)
    return end


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="milliseconds") if at is not None else None


def saved(row: Mapping[str, Any]) -> float | None:
    """What the pipeline saved on one call: its cost with no pipeline less its cost."""
    cost, baseline = row.get("cost"), row.get("baseline_cost")
    if cost is None or baseline is None:
        return None
    return float(baseline) - float(cost)


def error_text(error: Any) -> str | None:
    """A row's ``error`` as the dashboard says it: ``api error: overloaded_error``,
    ``upstream: ReadError``, ``client disconnected``."""
    if not isinstance(error, Mapping):
        return str(error) if error else None
    kind, source = error.get("type"), error.get("source")
    if source == "client":
        return "client disconnected"
    if source == "upstream":
        return f"upstream: {kind}"
    return f"api error: {kind}"


@dataclass
class Totals:
    """Running totals of a group of calls (a session, a model, the whole proxy): the ledger's
    own :class:`tidyctx.ledger.Totals`, and the calls that failed open."""

    totals: ledger.Totals = field(default_factory=ledger.Totals)
    fail_open: int = 0
    last: str | None = None

    def add(self, row: Mapping[str, Any]) -> None:
        self.totals.add(row)
        self.fail_open += bool(row.get("fail_open"))
        self.last = _iso(started(row))

    def view(self) -> dict[str, Any]:
        t = self.totals
        tokens = billing(t.usage)
        prompt = sum(v for k, v in tokens.items() if k != "output")
        return {
            "calls": t.calls,
            "errors": t.errors,
            "fail_open": self.fail_open,
            "cost_usd": t.cost,
            "saved_usd": t.saved,
            "cost_without_usd": t.baseline_cost,
            "tokens_before": t.tokens_before,
            "tokens_after": t.tokens_after,
            "tokens": tokens,
            "cache_hit_share": tokens["cache_read"] / prompt if prompt else None,
            "last": self.last,
        }


@dataclass
class _Last:
    at: datetime | None
    cached: int  # the prompt tokens the call left in the cache (read + written)
    ttl: float


def miss_reason(tokens: dict[str, int], previous: _Last | None, at: datetime | None) -> str | None:
    """Why a call read less from the cache than it could have, or None when it did not."""
    read = tokens["cache_read"]
    written = tokens["cache_write_5m"] + tokens["cache_write_1h"]
    if previous is None or previous.cached == 0:
        if read:
            return None
        if written:
            return "cold start: nothing cached yet for this agent and model"
        return (
            "not cached: no cache_control breakpoint, or the prefix is shorter than the "
            "model's minimum cacheable length"
        )
    if read >= previous.cached:
        return None
    idle = (at - previous.at).total_seconds() if at and previous.at else None
    if read == 0 and idle is not None and idle > previous.ttl:
        ttl = previous.ttl
        return f"expired: {idle:.0f} s since the previous call (cache lifetime {ttl:.0f} s)"
    if read == 0:
        return f"prefix changed: none of the {previous.cached:,} tokens cached before was read"
    return f"prefix changed after {read:,} tokens: the previous call cached {previous.cached:,}"


def _model_name(value: Any, known: set[str]) -> str:
    if not isinstance(value, str):
        return "none"
    if not _MODEL.fullmatch(value):
        return "other"
    if value not in known:
        if len(known) >= _MAX_MODELS:
            return "other"
        known.add(value)
    return value


class Board:
    """The live state the dashboard shows; :meth:`add` takes each ledger row."""

    def __init__(self, pipeline: str, recent: int = 100) -> None:
        self.pipeline = pipeline
        self.started = datetime.now(UTC)
        self.total = Totals()
        self.sessions: OrderedDict[str, Totals] = OrderedDict()
        self.models: dict[str, Totals] = {}
        self.transforms: dict[str, dict[str, Any]] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.misses: deque[dict[str, Any]] = deque(maxlen=recent)
        self._last: OrderedDict[tuple[str, str], _Last] = OrderedDict()
        self._known: set[str] = set()
        # Rows arrive on the event loop; a snapshot may be asked for from another thread.
        self._lock = threading.Lock()

    def model_label(self, value: Any) -> str:
        with self._lock:
            return _model_name(value, self._known)

    def add(self, row: Mapping[str, Any]) -> None:
        tokens = billing(row.get("usage"))
        session = row.get("session") or "(none)"
        at = started(row)
        latency = row.get("latency_s")
        with self._lock:
            model = _model_name(row.get("model"), self._known)
            self.total.add(row)
            totals = self.sessions.pop(session, None) or Totals()
            totals.add(row)
            self.sessions[session] = totals
            if len(self.sessions) > _MAX_KEYS:
                self.sessions.popitem(last=False)
            self.models.setdefault(model, Totals()).add(row)
            self._transforms(row)
            steps = [s for s in row.get("changed") or () if isinstance(s, Mapping)]
            call = {
                "time": _iso(at),
                "session": row.get("session"),
                "model": model,
                "path": row.get("path"),
                "status": row.get("status"),
                "tokens": tokens,
                "cost_usd": row.get("cost"),
                "saved_usd": saved(row),
                "tokens_before": row.get("tokens_before"),
                "tokens_after": row.get("tokens_after"),
                "transforms": [str(s.get("transform")) for s in steps],
                "fail_open": row.get("fail_open"),
                "error": error_text(row.get("error")),
                "latency_ms": latency * 1000 if isinstance(latency, int | float) else None,
            }
            self.recent.append(call)
            if any(tokens.values()):
                self._cache(row, session, model, tokens, at)

    def _transforms(self, row: Mapping[str, Any]) -> None:
        # Each transform's own cut (``tokens_saved``); the call's saving in dollars is not
        # split by transform, so it is credited to every transform that changed the call.
        for step in row.get("changed") or ():
            if not isinstance(step, Mapping):
                continue
            name = str(step.get("transform"))
            entry = self.transforms.setdefault(
                name, {"name": name, "calls": 0, "tokens_cut": 0, "saved_usd": 0.0}
            )
            entry["calls"] += 1
            cut = step.get("tokens_saved")
            entry["tokens_cut"] += cut if isinstance(cut, int) else 0
            entry["saved_usd"] += saved(row) or 0.0

    def _cache(
        self,
        row: Mapping[str, Any],
        session: str,
        model: str,
        tokens: dict[str, int],
        at: datetime | None,
    ) -> None:
        key = (session, model)
        previous = self._last.pop(key, None)
        reason = miss_reason(tokens, previous, at)
        if reason is not None:
            if row.get("fail_open"):
                reason += "; the request was sent unchanged (fail open)"
            self.misses.append(
                {
                    "time": _iso(at),
                    "session": row.get("session"),
                    "model": model,
                    "reason": reason,
                    "cache_read": tokens["cache_read"],
                    "cache_write": tokens["cache_write_5m"] + tokens["cache_write_1h"],
                    "uncached_input": tokens["uncached_input"],
                }
            )
        cached = tokens["cache_read"] + tokens["cache_write_5m"] + tokens["cache_write_1h"]
        ttl = _TTL_1H if tokens["cache_write_1h"] and not tokens["cache_write_5m"] else _TTL_5M
        self._last[key] = _Last(at, cached, ttl)
        if len(self._last) > _MAX_KEYS:
            self._last.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        """Everything the dashboard shows, as plain JSON data (newest calls first)."""
        with self._lock:
            sessions = [{"session": k, **v.view()} for k, v in reversed(self.sessions.items())]
            return {
                "pipeline": self.pipeline,
                "started": self.started.isoformat(timespec="seconds"),
                "now": datetime.now(UTC).isoformat(timespec="seconds"),
                "billing_classes": list(BILLING_CLASSES),
                "total": self.total.view(),
                "sessions": sessions,
                "models": [{"model": k, **v.view()} for k, v in sorted(self.models.items())],
                "transforms": sorted(
                    (dict(v) for v in self.transforms.values()), key=lambda t: -t["tokens_cut"]
                ),
                "recent": list(reversed(self.recent)),
                "misses": list(reversed(self.misses)),
            }


_LABELS = ("model", "pipeline")
# Seconds: the pipeline of a small request takes well under a millisecond, a 30 MB one seconds.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProxyMetrics:
    """The proxy's Prometheus metrics, in a registry of their own (``registry``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter("tidyctx_proxy_calls", "API calls relayed", _LABELS, registry=r)
        self.errors = Counter(
            "tidyctx_proxy_errors",
            "calls answered with an error status, or broken off",
            _LABELS,
            registry=r,
        )
        self.fail_open = Counter(
            "tidyctx_proxy_fail_open",
            "calls sent upstream unchanged because the pipeline failed",
            _LABELS,
            registry=r,
        )
        self.tokens = Counter(
            "tidyctx_proxy_tokens",
            "tokens the upstream billed, by billing class",
            (*_LABELS, "billing_class"),
            registry=r,
        )
        self.cost = Counter(
            "tidyctx_proxy_cost_usd", "what the calls cost (USD)", _LABELS, registry=r
        )
        self.baseline = Counter(
            "tidyctx_proxy_baseline_cost_usd",
            "what the calls would have cost with no pipeline (USD, the prompt-cache model)",
            _LABELS,
            registry=r,
        )
        self.cut = Counter(
            "tidyctx_proxy_tokens_cut",
            "input tokens the pipeline removed (counted locally)",
            _LABELS,
            registry=r,
        )
        self.added = Histogram(
            "tidyctx_proxy_added_latency_seconds",
            "time the proxy held a request before sending it upstream (the pipeline included)",
            _LABELS,
            buckets=_BUCKETS,
            registry=r,
        )

    def add(self, row: Mapping[str, Any], model: str) -> None:
        labels = (model, row.get("pipeline") or "none")
        self.calls.labels(*labels).inc()
        if row.get("error"):
            self.errors.labels(*labels).inc()
        if row.get("fail_open"):
            self.fail_open.labels(*labels).inc()
        for name, value in billing(row.get("usage")).items():
            self.tokens.labels(*labels, name).inc(value)
        # As the ledger's totals count them: a row with no price adds to neither.
        cost = row.get("cost")
        if cost is not None:
            self.cost.labels(*labels).inc(cost)
            self.baseline.labels(*labels).inc(row.get("baseline_cost") or 0.0)
        before, after = row.get("tokens_before"), row.get("tokens_after")
        if before is not None and after is not None:
            self.cut.labels(*labels).inc(max(before - after, 0))
        if row.get("added_s") is not None:
            self.added.labels(*labels).observe(row["added_s"])
