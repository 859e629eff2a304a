"""Replay cost and reference recall of recorded runs with and without trim().

    python benchmarks/trim_replay.py [TRACE.json ...] [--naive]

Each run is replayed turn by turn (benchmarks/replay.py), priced on claude-sonnet-4-6 with
tidyctx.cachesim at the recorded timestamps, with the TTL a caller would pick (1h for runs
with pauses over 5 minutes). Costs are input cost as a ratio to the caching floor of the run
as recorded; recall is reference recall (DESIGN.md). Strategies:

  order+cache   tc.pipe(r, tc.order(), tc.cache())
  +trim         tc.pipe(r, tc.order(), TRIM, tc.cache()) with TRIM below
--naive adds the anchors: every tool result cut to its first and last N tokens (N = 1000,
750, 500), and clearing all but the last 10 results in 30k-token batches.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import replay

import tidyctx as tc
from tidyctx.recall import reference_recall
from tidyctx.request import normalize
from tidyctx.tokens import LocalCounter, get_encoding

Strategy = Callable[[dict[str, Any]], dict[str, Any]]


TRIM = {"max_tokens": 1000, "head": 0.7}


def trim_default() -> Any:
    options = json.loads(os.environ["TIDYCTX_TRIM"]) if "TIDYCTX_TRIM" in os.environ else TRIM
    return tc.trim(**options)


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


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    labels = ["order+cache", "+trim"]
    if "--naive" in argv:
        labels += ["head/tail 1000", "head/tail 750", "head/tail 500", "clear 10/30k"]
    rows = []
    for path in replay.trace_paths(argv):
        run = replay.load(path)
        requests = replay.requests_of(run)
        ts = run.timestamps()
        pauses = replay.has_pauses(ts)
        cache = tc.cache(ttl="1h", stable_ttl="1h") if pauses else tc.cache()
        floor = replay.floor_cost(requests)
        replies = [t.reply for t in run.turns]
        trimmers: dict[str, Strategy] = {
            "order+cache": lambda r: r,
            "+trim": trim_default(),
        }
        if "--naive" in argv:
            trimmers["head/tail 1000"] = naive_cut(1000)
            trimmers["head/tail 750"] = naive_cut(750)
            trimmers["head/tail 500"] = naive_cut(500)
            trimmers["clear 10/30k"] = tc.trim(keep=10, clear_at_least=30_000, dedupe=False)
        result: dict[str, tuple[float, float, int, int]] = {}
        for label, trimmer in trimmers.items():
            sent = [tc.pipe(r, tc.order(), trimmer, cache) for r in requests]
            cost = replay.input_cost(replay.simulate(sent, ts))
            recall = reference_recall(requests, replies, sent)
            result[label] = (cost, cost / floor, recall.recalled, recall.references)
        rows.append((run.id, floor, tool_result_tokens(requests[-1]), result))
    head = f"{'trace':<44}{'floor $':>9}{'results':>9}" + "".join(
        f"{label:>22}" for label in labels
    )
    print("cost / floor  (reference recall)")
    print(head)
    for name, floor, results, result in rows:
        cells = "".join(
            f"{result[label][1]:>14.3f} ({result[label][2] / max(result[label][3], 1):.3f})"
            for label in labels
        )
        print(f"{name[:43]:<44}{floor:>9.3f}{results:>9,}{cells}")
    total_floor = sum(r[1] for r in rows)
    cells = ""
    for label in labels:
        cost = sum(r[3][label][0] for r in rows)
        hit = sum(r[3][label][2] for r in rows)
        refs = sum(r[3][label][3] for r in rows)
        cells += f"{cost / total_floor:>14.3f} ({hit / max(refs, 1):.3f})"
    print(f"{'all':<44}{total_floor:>9.3f}{'':>9}{cells}")
    big = [r for r in rows if r[2] > 30_000]
    if big:
        base = sum(r[3]["order+cache"][0] for r in big)
        trimmed = sum(r[3]["+trim"][0] for r in big)
        print(
            f"\nruns with over 30k tokens of tool results ({len(big)}): +trim costs "
            f"{trimmed / base:.3f}x order+cache alone ({(1 - trimmed / base) * 100:.0f}% lower)"
        )
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
