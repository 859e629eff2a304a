"""Billed input cost of recorded runs under each prompt-caching strategy, as a ratio to the floor.

    python benchmarks/cache_strategies.py [TRACE.json ...] [--churn] [--no-langchain]

Each run is replayed turn by turn (benchmarks/replay.py) and priced on claude-sonnet-4-6 with
tidyctx.cachesim. Strategies:

  none       no cache_control at all
  system     one breakpoint at the end of the system prompt (the tools when there is none)
  auto       the request's top-level cache_control (automatic caching)
  langchain  LangChain's AnthropicPromptCachingMiddleware, driven for real, payload captured
  tidyctx    tc.pipe(request, tc.order(), tc.cache())
  tidy-1h    tc.pipe(request, tc.order(), tc.cache(ttl="1h", stable_ttl="1h")), for runs with pauses

floor: every distinct prefix token written once and read by every later request.
Each strategy runs with the recorded timestamps (TTLs apply) and without (no entry expires).
--churn adds the same runs with a timestamp and a request id in the system prompt, with the
tool list re-ordered every turn, and with a user breakpoint already in the first message.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import replay

import tidyctx as tc
from tidyctx import normalize

Strategy = Callable[[dict[str, Any]], dict[str, Any]]


def none(r: dict[str, Any]) -> dict[str, Any]:
    return r


def system_only(r: dict[str, Any]) -> dict[str, Any]:
    out = normalize(r)
    if out.get("system"):
        out["system"][-1] = {**out["system"][-1], "cache_control": {"type": "ephemeral"}}
    elif out.get("tools"):
        out["tools"][-1] = {**out["tools"][-1], "cache_control": {"type": "ephemeral"}}
    return out


def automatic(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "cache_control": {"type": "ephemeral"}}


def tidyctx_default(r: dict[str, Any]) -> dict[str, Any]:
    return tc.pipe(r, tc.order(), tc.cache())  # type: ignore[no-any-return]


def tidyctx_1h(r: dict[str, Any]) -> dict[str, Any]:
    return tc.pipe(r, tc.order(), tc.cache(ttl="1h", stable_ttl="1h"))  # type: ignore[no-any-return]


def tidyctx_chosen(pauses: bool) -> Strategy:
    """order()+cache() with the TTL a caller picks: 1h when it expects pauses over 5 minutes
    (a human in the loop), else the default."""
    return tidyctx_1h if pauses else tidyctx_default


def strategies(with_langchain: bool) -> dict[str, Strategy]:
    out: dict[str, Strategy] = {
        "none": none,
        "system": system_only,
        "auto": automatic,
    }
    if with_langchain:
        try:
            from peers.langchain_caching import langchain_request

            out["langchain"] = langchain_request
        except ImportError as err:
            print(f"(langchain strategy skipped: {err})", file=sys.stderr)
    out["tidy-5m"] = tidyctx_default
    out["tidy-1h"] = tidyctx_1h
    return out


# ---------------------------------------------------------------------------- churn


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def with_timestamp(requests: list[dict[str, Any]], ts: list[float | None]) -> list[dict[str, Any]]:
    """A system prompt that states the current time and a request id (changes every turn)."""
    out = []
    for k, r in enumerate(requests):
        when = ts[k] if ts[k] is not None else 1_767_225_600 + 30 * k
        rid = "req_" + hashlib.sha256(f"{k}".encode()).hexdigest()[:24]
        system = r.get("system") or ""
        text = system if isinstance(system, str) else "\n".join(b["text"] for b in system)
        line = f"Current time: {_iso(float(when))}. Request id: {rid}."
        out.append({**r, "system": (text + "\n\n" + line).strip()})
    return out


def with_shuffled_tools(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools re-listed in a different order every turn, as MCP clients that re-list do."""
    out = []
    for k, r in enumerate(requests):
        tools = list(r.get("tools") or [])
        random.Random(k).shuffle(tools)
        out.append({**r, "tools": tools} if tools else r)
    return out


def with_user_breakpoint(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The caller already marks the first user message (a document it wants cached)."""
    out = []
    for r in requests:
        n = normalize(r)
        first = n["messages"][0]["content"]
        first[-1] = {**first[-1], "cache_control": {"type": "ephemeral"}}
        out.append(n)
    return out


# ---------------------------------------------------------------------------- main


def run_one(
    name: str,
    requests: list[dict[str, Any]],
    ts: list[float | None],
    strats: dict[str, Strategy],
    floor: float,
) -> dict[str, tuple[float, float]]:
    """Per strategy: (ratio to floor with the recorded timestamps, without)."""
    out: dict[str, tuple[float, float]] = {}
    for label, strategy in strats.items():
        try:
            sent = [strategy(r) for r in requests]
            for r in sent:
                tc.validate(r, strict=False)
        except Exception as err:  # a strategy that produces an invalid request fails the run
            print(f"  {name}: {label} failed: {type(err).__name__}: {err}", file=sys.stderr)
            out[label] = (float("nan"), float("nan"))
            continue
        timed = replay.input_cost(replay.simulate(sent, ts))
        untimed = replay.input_cost(replay.simulate(sent, None))
        out[label] = (timed / floor, untimed / floor)
    return out


def table(
    title: str, rows: list[tuple[str, int, bool, float, dict[str, tuple[float, float]]]]
) -> None:
    labels = list(rows[0][4]) if rows else []
    print(f"\n{title}")
    for timed, caption in ((0, "with recorded timestamps"), (1, "without timestamps")):
        print(f"\n  ratio to floor, {caption}")
        head = f"  {'trace':<44}{'turns':>6}{'pause':>6}{'floor $':>9}" + "".join(
            f"{label:>10}" for label in labels
        )
        print(head)
        for name, turns, pauses, floor, ratios in rows:
            print(
                f"  {name[:43]:<44}{turns:>6}{'yes' if pauses else '':>6}{floor:>9.3f}"
                + "".join(f"{ratios[label][timed]:>10.3f}" for label in labels)
            )
        total_floor = sum(r[3] for r in rows)
        print(
            f"  {'all (cost-weighted)':<44}{'':>6}{'':>6}{total_floor:>9.3f}"
            + "".join(
                f"{sum(r[4][label][timed] * r[3] for r in rows) / total_floor:>10.3f}"
                for label in labels
            )
        )


def main(argv: list[str]) -> int:
    churn = "--churn" in argv
    strats = strategies(with_langchain="--no-langchain" not in argv)
    variants: dict[str, Callable[[list[dict[str, Any]], list[float | None]], list[dict[str, Any]]]]
    variants = {"as recorded": lambda rs, ts: rs}
    if churn:
        variants["timestamp + request id in the system prompt"] = with_timestamp
        variants["tools re-ordered every turn"] = lambda rs, ts: with_shuffled_tools(rs)
        variants["user breakpoint on the first message"] = lambda rs, ts: with_user_breakpoint(rs)
    started = time.perf_counter()
    results: dict[str, list[Any]] = {v: [] for v in variants}
    for path in replay.trace_paths(argv):
        run = replay.load(path)
        requests = replay.requests_of(run)
        ts = run.timestamps()
        floor = replay.floor_cost(requests)
        pauses = replay.has_pauses(ts)
        for variant, make in variants.items():
            ratios = run_one(run.id, make(requests, ts), ts, strats, floor)
            # Without timestamps nothing pauses: the caller's choice is then the default.
            ratios["tidyctx"] = (
                ratios["tidy-1h" if pauses else "tidy-5m"][0],
                ratios["tidy-5m"][1],
            )
            results[variant].append((run.id, len(requests), replay.has_pauses(ts), floor, ratios))
    for variant, rows in results.items():
        table(f"== {variant} (input cost / floor of the run as recorded)", rows)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
