"""Billed input cost of recorded runs under each prompt-caching strategy, as a ratio to the floor.

    python benchmarks/cache_strategies.py [TRACE.json|SESSION.jsonl ...] [--churn] [--no-langchain]

Each run is replayed turn by turn (benchmarks/replay.py; a ``.jsonl`` Claude Code session log or
request log is read by tidyctx.traces.load) and priced on claude-sonnet-4-6 with
tidyctx.cachesim. Strategies:

  none       no cache_control at all
  system     one breakpoint at the end of the system prompt (the tools when there is none)
  auto       the request's top-level cache_control (automatic caching)
  lc-raw     LangChain's AnthropicPromptCachingMiddleware, driven for real, payload captured
  langchain  the markers of that payload put on the client's own request: LangChain's message
             conversion also changes content (it drops each tool schema's top-level
             "description"), which is not caching; the verdicts compare with this one
  pure       tc.pipe(request, tc.order(), tc.cache()): the pure default, which moves every
             volatile-looking system line
  tidyctx    tc.pipe(request, tc.order(seen=memory), tc.cache()), one tc.SystemLines memory per
             run, as a wrapper or proxy keeps it: a volatile-looking line moves once it changed
  tidy-1h    the same with tc.cache(ttl="1h", stable_ttl="1h")
  chosen     tidy-1h on a run that pauses over 5 minutes (a caller who knows a human is in the
             loop picks the 1-hour TTL), else tidyctx; without timestamps nothing pauses

floor: every distinct prefix token written once and read by every later request.
Each strategy runs with the recorded timestamps (TTLs apply) and without (no entry expires).
--churn adds the same runs with a timestamp and a request id in the system prompt, with the
tool list re-ordered every turn, and with a user breakpoint already in the first message.

Each row ends with the verdict on tidyctx, at the same 5-minute TTL as auto and langchain (and,
in brackets, on chosen): "ok" when it costs at most auto and langchain (to 0.1%), "better"
when it also costs less than both by more than 0.1%, "WORSE" (flagged) when it costs more
than either.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import replay

import tidyctx as tc
from tidyctx import normalize
from tidyctx._request import unmarked

Strategy = Callable[[dict[str, Any]], dict[str, Any]]
Factory = Callable[[], Strategy]
"""A strategy for one run: made fresh per run, so that any memory it keeps is the run's own."""

MARGIN = 0.001
"""The tolerance of the comparison: 0.1% of the peer's cost."""


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


_BODIES: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
"""LangChain's payload per request of the run being replayed (by id; the request is held so
that its id stays its own), so that the two LangChain strategies drive LangChain once."""


def langchain_payload(langchain_request: Strategy) -> Strategy:
    def apply(r: dict[str, Any]) -> dict[str, Any]:
        if id(r) not in _BODIES:
            _BODIES[id(r)] = (r, langchain_request(r))
        return _BODIES[id(r)][1]

    return apply


def langchain_markers(langchain_request: Strategy) -> Strategy:
    """The client's request with the cache_control markers LangChain's payload carries: on the
    tool of the same name, the last system block, the top level (a marker on a message block
    is refused, not dropped: LangChain's middleware uses the top level for those)."""
    payload = langchain_payload(langchain_request)

    def apply(r: dict[str, Any]) -> dict[str, Any]:
        body = payload(r)
        out = copy.deepcopy(r)
        for tool in body.get("tools") or []:
            if "cache_control" in tool:
                (mine,) = [t for t in out["tools"] if t.get("name") == tool["name"]]
                mine["cache_control"] = tool["cache_control"]
        system = body.get("system")
        marked = [
            b["cache_control"] for b in system or [] if isinstance(b, dict) and "cache_control" in b
        ]
        if marked:
            text = out["system"]
            if isinstance(text, str):
                out["system"] = [{"type": "text", "text": text}]
            out["system"][-1] = {**out["system"][-1], "cache_control": marked[-1]}
        for i, message in enumerate(body["messages"]):
            for j, block in enumerate(
                message["content"] if isinstance(message["content"], list) else []
            ):
                if "cache_control" in block:
                    raise ValueError(f"LangChain marked messages[{i}].content[{j}]: map it first")
        if "cache_control" in body:
            out["cache_control"] = body["cache_control"]
        return out

    return apply


def tidyctx_pure(r: dict[str, Any]) -> dict[str, Any]:
    return tc.pipe(r, tc.order(), tc.cache())  # type: ignore[no-any-return]


def tidyctx_with_memory(ttl: str) -> Factory:
    """order(seen=...)+cache() with a memory of the run's system lines."""

    def make() -> Strategy:
        steps = [tc.order(seen=tc.SystemLines()), tc.cache(ttl=ttl, stable_ttl=ttl)]
        return lambda r: tc.pipe(r, *steps)  # type: ignore[no-any-return,unused-ignore]

    return make


def strategies(with_langchain: bool) -> dict[str, Factory]:
    out: dict[str, Factory] = {
        "none": lambda: none,
        "system": lambda: system_only,
        "auto": lambda: automatic,
    }
    if with_langchain:
        try:
            from peers.langchain_caching import langchain_request

            out["lc-raw"] = lambda: langchain_payload(langchain_request)
            out["langchain"] = lambda: langchain_markers(langchain_request)
        except ImportError as err:
            print(f"(langchain strategy skipped: {err})", file=sys.stderr)
    out["pure"] = lambda: tidyctx_pure
    out["tidyctx"] = tidyctx_with_memory("5m")
    out["tidy-1h"] = tidyctx_with_memory("1h")
    return out


# ---------------------------------------------------------------------------- churn


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def with_timestamp(requests: list[dict[str, Any]], ts: list[float | None]) -> list[dict[str, Any]]:
    """A system prompt that states the current time and a request id (changes every turn)."""
    out = []
    for k, r in enumerate(requests):
        given = ts[k]
        when = float(given) if given is not None else 1_767_225_600.0 + 30 * k
        rid = "req_" + hashlib.sha256(f"{k}".encode()).hexdigest()[:24]
        system = r.get("system") or ""
        text = system if isinstance(system, str) else "\n".join(b["text"] for b in system)
        line = f"Current time: {_iso(when)}. Request id: {rid}."
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


# ---------------------------------------------------------------------------- measures


def extra_bytes(sent: list[dict[str, Any]], given: list[dict[str, Any]]) -> float:
    """How much larger the sent JSON is than the client's, markers aside: the block of moved
    system lines, and any change of form (a string turned into blocks)."""

    def size(r: dict[str, Any]) -> int:
        return len(json.dumps(unmarked(r), ensure_ascii=False))

    return sum(size(s) for s in sent) / max(1, sum(size(g) for g in given)) - 1.0


def run_one(
    name: str,
    requests: list[dict[str, Any]],
    ts: list[float | None],
    strats: dict[str, Factory],
    floor: float,
) -> tuple[dict[str, tuple[float, float]], float]:
    """Per strategy: (ratio to floor with the recorded timestamps, without); and tidyctx's
    extra bytes."""
    out: dict[str, tuple[float, float]] = {}
    grown = 0.0
    _BODIES.clear()
    for label, factory in strats.items():
        try:
            strategy = factory()
            sent = [strategy(r) for r in requests]
            for r in sent:
                tc.validate(r, strict=False)
        except Exception as err:  # a strategy that produces an invalid request fails the run
            print(f"  {name}: {label} failed: {type(err).__name__}: {err}", file=sys.stderr)
            out[label] = (math.nan, math.nan)
            continue
        timed = replay.input_cost(replay.simulate(sent, ts))
        untimed = replay.input_cost(replay.simulate(sent, None))
        out[label] = (timed / floor, untimed / floor)
        if label == "tidyctx":
            grown = extra_bytes(sent, requests)
    return out, grown


def verdict(ratios: dict[str, tuple[float, float]], label: str, timed: int) -> str:
    mine = ratios[label][timed]
    peers = [ratios[p][timed] for p in ("auto", "langchain") if p in ratios]
    if math.isnan(mine) or any(mine > p * (1 + MARGIN) for p in peers):
        return "WORSE"
    if all(mine < p * (1 - MARGIN) for p in peers):
        return "better"
    return "ok"


Row = tuple[str, int, bool, float, dict[str, tuple[float, float]], float]


def table(title: str, rows: list[Row]) -> dict[str, int]:
    """Print one variant's tables; return the verdict counts (both timings)."""
    shown = list(rows[0][4]) if rows else []
    counts: dict[str, int] = {}
    print(f"\n{title}")
    for timed, caption in ((0, "with recorded timestamps"), (1, "without timestamps")):
        print(f"\n  ratio to floor, {caption}")
        head = f"  {'trace':<40}{'turns':>6}{'pause':>6}{'floor $':>9}" + "".join(
            f"{label:>10}" for label in shown
        )
        print(head + "  tidyctx (chosen)")
        for name, turns, pauses, floor, ratios, _ in rows:
            v, vc = verdict(ratios, "tidyctx", timed), verdict(ratios, "chosen", timed)
            counts[v] = counts.get(v, 0) + 1
            counts[f"chosen {vc}"] = counts.get(f"chosen {vc}", 0) + 1
            print(
                f"  {name[:39]:<40}{turns:>6}{'yes' if pauses else '':>6}{floor:>9.3f}"
                + "".join(f"{ratios[label][timed]:>10.3f}" for label in shown)
                + f"  {v} ({vc})"
            )
        total_floor = sum(r[3] for r in rows)
        print(
            f"  {'all (cost-weighted)':<40}{'':>6}{'':>6}{total_floor:>9.3f}"
            + "".join(
                f"{sum(r[4][label][timed] * r[3] for r in rows) / total_floor:>10.3f}"
                for label in shown
            )
        )
    grown = sum(r[5] for r in rows) / max(1, len(rows))
    print(
        f"\n  tidyctx sends {100 * grown:+.3f}% JSON bytes beyond the client's, run average "
        "(markers aside: the moved lines' block, and a string content that carries a marker)"
    )
    return counts


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
    results: dict[str, list[Row]] = {v: [] for v in variants}
    for path in replay.replayable(replay.trace_paths(argv)):
        run = replay.load(path)
        requests = replay.requests_of(run)
        ts = run.timestamps()
        floor = replay.floor_cost(requests)
        pauses = replay.has_pauses(ts)
        for variant, make in variants.items():
            ratios, grown = run_one(run.id, make(requests, ts), ts, strats, floor)
            # With timestamps the caller's TTL choice (1h with pauses); without them nothing
            # pauses, and the default is the choice.
            ratios["chosen"] = (
                ratios["tidy-1h" if pauses else "tidyctx"][0],
                ratios["tidyctx"][1],
            )
            results[variant].append((run.id, len(requests), pauses, floor, ratios, grown))
    totals: dict[str, int] = {}
    for variant, rows in results.items():
        counts = table(f"== {variant} (input cost / floor of the run as recorded)", rows)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    cases = sum(v for k, v in totals.items() if not k.startswith("chosen "))
    print(
        f"\ntidyctx against auto and langchain over {cases} cases (runs x variants x with and "
        f"without timestamps): {totals.get('better', 0)} better, {totals.get('ok', 0)} ok, "
        f"{totals.get('WORSE', 0)} WORSE; chosen (1h on runs that pause): "
        f"{totals.get('chosen better', 0)} better, {totals.get('chosen ok', 0)} ok, "
        f"{totals.get('chosen WORSE', 0)} WORSE"
    )
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
