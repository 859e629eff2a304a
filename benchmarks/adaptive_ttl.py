"""Adaptive TTL beside fixed 5-minute and fixed 1-hour caching, per run and pause pattern.

    python benchmarks/adaptive_ttl.py [TRACE.json|SESSION.jsonl ...]

Each run is replayed turn by turn (benchmarks/replay.py) and priced on claude-sonnet-4-6 with
tidyctx.cachesim, under three strategies that differ only in the TTL:

  5m        tc.pipe(r, tc.order(seen=memory), tc.cache())
  1h        the same with tc.cache(ttl="1h", stable_ttl="1h")
  adaptive  the same with tc.cache(ttl="adaptive", pauses=p), where p.record(r, at=t) runs
            before each call, as a wrapper or proxy does; p = tc.Pauses()
  prior     the same with p = tc.Pauses(prior=0.05): a pause expected in 1 gap in 20 until
            the gaps seen say otherwise

    --recorded   only the recorded timestamps (no pause models)

and under pause patterns (the times the calls are sent at):

  recorded  the run's own timestamps (runs that have them)
  agent     a call every 15 s: a tool loop with nobody waiting
  human     15 s between calls, and a 10-minute pause before every 6th
  away      15 s between calls, and a 2-hour pause before every 6th
  mixed     per gap, from a seeded generator: 80% 5-60 s, 12% 6-50 min, 8% 70-180 min

Each row gives the input cost as a ratio to the run's floor (every distinct prefix token
written once) and the verdict on adaptive against the better fixed TTL of that row: "better"
when it costs less than both by more than 0.1%, "tie" within 0.1% of the better one, "LOSES"
(flagged) otherwise.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import replay

import tidyctx as tc

MARGIN = 0.001
"""Within 0.1% of the better fixed TTL counts as a tie."""

START = 1_767_225_600.0


def _series(gaps: Sequence[float]) -> list[float | None]:
    out: list[float | None] = [START]
    for g in gaps:
        out.append(float(out[-1] or START) + g)
    return out


def agent(n: int) -> list[float | None]:
    return _series([15.0] * (n - 1))


def every(pause: float) -> Callable[[int], list[float | None]]:
    def model(n: int) -> list[float | None]:
        return _series([pause if (k + 1) % 6 == 0 else 15.0 for k in range(n - 1)])

    return model


def mixed(n: int) -> list[float | None]:
    rng = random.Random(n)  # seeded by the run's length: the same run gets the same gaps
    gaps = []
    for _ in range(n - 1):
        x = rng.random()
        if x < 0.80:
            gaps.append(rng.uniform(5, 60))
        elif x < 0.92:
            gaps.append(rng.uniform(360, 3000))
        else:
            gaps.append(rng.uniform(4200, 10800))
    return _series(gaps)


PATTERNS: dict[str, Callable[[int], list[float | None]]] = {
    "agent": agent,
    "human": every(600.0),
    "away": every(7200.0),
    "mixed": mixed,
}


def fixed(ttl: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def run(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        steps = [tc.order(seen=tc.SystemLines()), tc.cache(ttl=ttl, stable_ttl=ttl)]
        return [tc.pipe(r, *steps) for r in requests]

    return run


def adaptive(
    requests: list[dict[str, Any]], ts: Sequence[float | None], prior: float = 0.0
) -> tuple[list[dict[str, Any]], list[tc.TTLDecision | None]]:
    pauses = tc.Pauses(prior=prior)
    steps = [tc.order(seen=tc.SystemLines()), tc.cache(ttl="adaptive", pauses=pauses)]
    sent, decisions = [], []
    for r, t in zip(requests, ts, strict=True):
        if t is not None:
            pauses.record(r, at=t)
        sent.append(tc.pipe(r, *steps))
        decisions.append(pauses.decision(r))
    return sent, decisions


def verdict(five: float, hour: float, mine: float) -> str:
    best = min(five, hour)
    if math.isnan(mine) or mine > best * (1 + MARGIN):
        return "LOSES"
    if mine < best * (1 - MARGIN):
        return "better"
    return "tie"


Row = tuple[str, str, int, float, dict[str, float], str]


def measure(path: Path, only_recorded: bool) -> list[Row]:
    run = replay.load(path)
    requests = replay.requests_of(run)
    floor = replay.floor_cost(requests)
    recorded = run.timestamps()
    patterns: dict[str, list[float | None]] = {}
    if sum(t is not None for t in recorded) >= 2:
        patterns["recorded"] = list(recorded)
    if not only_recorded:
        for name, model in PATTERNS.items():
            patterns[name] = model(len(requests))
    if not patterns:
        return []
    fixed_sent = {"5m": fixed("5m")(requests), "1h": fixed("1h")(requests)}
    rows: list[Row] = []
    for name, ts in patterns.items():
        costs = {
            k: replay.input_cost(replay.simulate(v, ts)) / floor for k, v in fixed_sent.items()
        }
        share = ""
        for label, prior in (("adaptive", 0.0), ("prior", PRIOR)):
            sent, decisions = adaptive(requests, ts, prior)
            for r in sent:
                tc.validate(r, strict=False)
            costs[label] = replay.input_cost(replay.simulate(sent, ts)) / floor
            if label == "adaptive":
                hours = sum(1 for d in decisions if d is not None and d.rolling == "1h")
                share = f"{hours}/{len(decisions)}"
        rows.append((run.id, name, len(requests), floor, costs, share))
        print(
            f"  {run.id[:38]:<39}{name:<9}" + "".join(f"{v:8.3f}" for v in costs.values()),
            file=sys.stderr,
        )
    return rows


PRIOR = 0.05
"""The prior of the second adaptive column: a human in the loop, 1 gap in 20 a pause."""


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    only_recorded = "--recorded" in argv
    rows: list[Row] = []
    for path in replay.replayable(replay.trace_paths(argv)):
        rows.extend(measure(path, only_recorded))
    print(
        "input cost / floor per run and pause pattern, claude-sonnet-4-6 prices; adaptive is "
        f"Pauses(), prior is Pauses(prior={PRIOR});\n1h calls: the calls adaptive sent with the "
        "rolling breakpoint at 1h; verdicts against the better fixed TTL (0.1%: tie)\n"
    )
    head = (
        f"{'run':<40}{'pauses':<10}{'turns':>6}{'floor $':>9}{'5m':>8}{'1h':>8}"
        f"{'adaptive':>10}{'prior':>8}  {'1h calls':<10}{'adaptive':<10}prior"
    )
    print(head)
    print("-" * len(head))
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for rid, name, turns, floor, c, share in rows:
        va = verdict(c["5m"], c["1h"], c["adaptive"])
        vp = verdict(c["5m"], c["1h"], c["prior"])
        print(
            f"{rid[:39]:<40}{name:<10}{turns:>6}{floor:>9.3f}{c['5m']:>8.3f}{c['1h']:>8.3f}"
            f"{c['adaptive']:>10.3f}{c['prior']:>8.3f}  {share:<10}{va:<10}{vp}"
        )
        for label, v in (("adaptive", va), ("prior", vp)):
            tally = counts.setdefault((name, label), {})
            tally[v] = tally.get(v, 0) + 1
    print()
    for name in ("recorded", *PATTERNS):
        group = [r for r in rows if r[1] == name]
        if not group:
            continue
        total = sum(r[3] for r in group)
        weighted = {
            k: sum(r[3] * r[4][k] for r in group) / total for k in ("5m", "1h", "adaptive", "prior")
        }
        tallies = []
        for label in ("adaptive", "prior"):
            t = counts.get((name, label), {})
            tallies.append(
                f"{label} {t.get('better', 0)} better, {t.get('tie', 0)} tie, "
                f"{t.get('LOSES', 0)} LOSES"
            )
        print(
            f"{name:<9}{len(group):>3} runs, cost-weighted "
            + "  ".join(f"{k} {v:.3f}" for k, v in weighted.items())
            + "; "
            + "; ".join(tallies)
        )
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
