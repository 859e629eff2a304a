"""Replay cost and reference recall of recorded runs with and without trim().

    python benchmarks/trim_replay.py [TRACE.json|SESSION.jsonl ...] [--naive] [--jobs N]

Each run is replayed turn by turn (benchmarks/replay.py), priced on claude-sonnet-4-6 with
tidyctx.cachesim at the recorded timestamps, with the TTL a caller would pick (1h for runs
with pauses over 5 minutes). Costs are input cost as a ratio to the caching floor of the run
as recorded; recall is reference recall (docs/benchmarks.md). Strategies:

  order+cache   tc.pipe(r, tc.order(), tc.cache())
  +trim         tc.pipe(r, tc.order(), TRIM, tc.cache()) with TRIM below (or the JSON of the
                TIDYCTX_TRIM environment variable)
--naive adds the anchors: every tool result cut to its first and last N tokens (N = 1000,
750, 500, 350), clearing all but the last 10 results in 30k-token batches, and the trim frontier
(TRIM at other budgets); for each trim point it prints the naive cost at the same recall
(interpolated between the head/tail points) and how much cheaper trim is.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import replay

import tidyctx as tc
from tidyctx import normalize
from tidyctx.recall import reference_recall
from tidyctx.tokens import LocalCounter, get_encoding

Strategy = Callable[[dict[str, Any]], dict[str, Any]]

TRIM: dict[str, Any] = {"max_tokens": 700, "head": 0.6, "slack": 0.5}
"""The measured setting: results up to 1.5x the budget whole, longer ones cut to 700 tokens
(60% from the start), compacted first (the default)."""

FRONTIER = (500, 600, 800)
"""Other budgets of the trim frontier (with TRIM's other options)."""

NAIVE = (1000, 750, 500, 350)


def trim_options() -> dict[str, Any]:
    if "TIDYCTX_TRIM" in os.environ:
        options: dict[str, Any] = json.loads(os.environ["TIDYCTX_TRIM"])
        return options
    return dict(TRIM)


def naive_cut(n: int) -> Strategy:
    enc = get_encoding()
    memo: dict[str, str] = {}

    def cut(text: str) -> str:
        if text not in memo:
            ids = enc.encode(text, disallowed_special=())
            memo[text] = (
                text
                if len(ids) <= 2 * n
                else enc.decode(ids[:n]) + "\n[cut]\n" + enc.decode(ids[-n:])
            )
        return memo[text]

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        out = normalize(request)
        for m in out["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else []:
                if b.get("type") == "tool_result" and isinstance(b.get("content"), list):
                    b["content"] = [
                        {**x, "text": cut(x["text"])} if x.get("type") == "text" else x
                        for x in b["content"]
                    ]
        return out

    return apply


def tool_result_tokens(request: dict[str, Any]) -> int:
    counter = LocalCounter(replay.REPLAY_MODEL)
    total = 0
    for m in request["messages"]:
        for b in m["content"] if isinstance(m["content"], list) else []:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                total += counter.count_block(b)
    return total


def strategies(naive: bool) -> dict[str, Strategy]:
    options = trim_options()
    out: dict[str, Strategy] = {"order+cache": lambda r: r, "+trim": tc.trim(**options)}
    if naive:
        for n in NAIVE:
            out[f"head/tail {n}"] = naive_cut(n)
        clearing = tc.Clearing(keep=10, trigger=0, clear_at_least=30_000)
        out["clear 10/30k"] = tc.trim(clearing=clearing, dedupe=False, compact=False)
        for budget in FRONTIER:
            out[f"trim {budget}"] = tc.trim(**{**options, "max_tokens": budget})
    return out


Row = tuple[str, float, int, dict[str, tuple[float, int, int]]]


def measure(args: tuple[Path, bool]) -> Row:
    """One run: (id, floor $, tool-result tokens, {label: (cost $, recalled, references)})."""
    path, naive = args
    run = replay.load(path)
    requests = replay.requests_of(run)
    ts = run.timestamps()
    cache = tc.cache(ttl="1h", stable_ttl="1h") if replay.has_pauses(ts) else tc.cache()
    floor = replay.floor_cost(requests)
    replies = [t.reply for t in run.turns]
    result: dict[str, tuple[float, int, int]] = {}
    for label, trimmer in strategies(naive).items():
        sent = [tc.pipe(r, tc.order(), trimmer, cache) for r in requests]
        cost = replay.input_cost(replay.simulate(sent, ts))
        recall = reference_recall(requests, replies, sent)
        result[label] = (cost, recall.recalled, recall.references)
    return run.id, floor, tool_result_tokens(requests[-1]), result


def naive_at(points: list[tuple[float, float]], recall: float) -> float | None:
    """The naive cost at ``recall``, linear between the (recall, cost) points around it."""
    points = sorted(points)
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        if r0 <= recall <= r1 and r1 > r0:
            return c0 + (c1 - c0) * (recall - r0) / (r1 - r0)
    return None


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    naive = "--naive" in argv
    jobs = int(argv[argv.index("--jobs") + 1]) if "--jobs" in argv else (os.cpu_count() or 1)
    named = [a for a in argv if a.endswith((".json", ".jsonl"))]  # run files, session logs
    paths = replay.replayable(replay.trace_paths(named))
    if not paths:
        print("no run to replay", file=sys.stderr)
        return 1
    labels = list(strategies(naive))
    with Pool(max(1, jobs)) as pool:
        rows = sorted(pool.map(measure, [(p, naive) for p in paths], chunksize=1))
    print(f"trim options: {json.dumps(trim_options())}")
    print("cost / floor  (reference recall)")
    print(f"{'trace':<44}{'floor $':>9}{'results':>9}" + "".join(f"{x:>22}" for x in labels))
    for name, floor, results, result in rows:
        cells = "".join(
            f"{result[x][0] / floor:>14.3f} ({result[x][1] / max(result[x][2], 1):.3f})"
            for x in labels
        )
        print(f"{name[:43]:<44}{floor:>9.3f}{results:>9,}{cells}")
    total_floor = sum(r[1] for r in rows)
    totals: dict[str, tuple[float, float]] = {}
    for x in labels:
        cost = sum(r[3][x][0] for r in rows) / total_floor
        recall = sum(r[3][x][1] for r in rows) / max(sum(r[3][x][2] for r in rows), 1)
        totals[x] = (cost, recall)
    cells = "".join(f"{totals[x][0]:>13.3f} ({totals[x][1]:.4f})" for x in labels)
    print(f"{'all':<44}{total_floor:>9.3f}{'':>9}{cells}")
    big = [r for r in rows if r[2] > 30_000]
    if big:
        base = sum(r[3]["order+cache"][0] for r in big)
        trimmed = sum(r[3]["+trim"][0] for r in big)
        print(
            f"\nruns with over 30k tokens of tool results ({len(big)}): +trim costs "
            f"{trimmed / base:.3f}x order+cache alone ({(1 - trimmed / base) * 100:.0f}% lower)"
        )
    if naive:
        anchors = [(totals[f"head/tail {n}"][1], totals[f"head/tail {n}"][0]) for n in NAIVE]
        print("\nfrontier (all runs): trim point vs the naive head/tail frontier at its recall")
        for x in ["+trim"] + [f"trim {b}" for b in FRONTIER]:
            cost, recall = totals[x]
            at = naive_at(anchors, recall)
            versus = (
                f"naive {at:.3f}x floor: {(1 - cost / at) * 100:.0f}% cheaper"
                if at is not None
                else "outside the naive points' recall range"
            )
            print(f"  {x:<12} {cost:.3f}x floor at recall {recall:.4f}; {versus}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
