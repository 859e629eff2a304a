"""Replay cost and reference recall of recorded runs with trim, and with trim + summarize.

    python benchmarks/summarize_replay.py [TRACE.json ...] [--trigger N] [--keep N] [--target N]

Each run is replayed turn by turn (benchmarks/replay.py) as in benchmarks/trim_replay.py:
priced on claude-sonnet-4-6 with tidyctx.cachesim at the recorded timestamps, 1h TTL for runs
with pauses over 5 minutes. Strategies:

  +trim        tc.pipe(r, tc.order(), TRIM, cache)          (TRIM as in trim_replay.py)
  +summarize   tc.pipe(r, tc.order(), TRIM, SUMMARIZE, cache)

SUMMARIZE is tc.summarize(client, ...) with its defaults (or the options given), a fresh
MemoryStore per run, and the real anthropic SDK client talking to tidyctx.testing.LocalServer,
whose deterministic extractive summary responder writes the summaries offline. Cost is the
input cost of the replayed requests plus every summary call (input and output, with its
simulated cache use) at the summary model's prices. Recall is reference recall (DESIGN.md):
with the local responder's summaries, not Haiku's.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import anthropic
import replay
from trim_replay import trim_default

import tidyctx as tc
from tidyctx import pricing
from tidyctx.recall import reference_recall
from tidyctx.store import MemoryStore
from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter
from tidyctx.transforms.summarize import SummaryEvent, summarize

BIG = 60_000  # "runs over 60k tokens": the last recorded request, before any transform


def _option(argv: list[str], name: str) -> int | None:
    if name in argv:
        return int(argv[argv.index(name) + 1])
    return None


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    options: dict[str, Any] = {}
    for flag, key in (("--trigger", "trigger_tokens"), ("--keep", "keep_last")):
        value = _option(argv, flag)
        if value is not None:
            options[key] = value
    target = _option(argv, "--target")
    if target is not None:
        options["target_tokens"] = target
    paths = [
        a
        for i, a in enumerate(argv)
        if not a.startswith("-")
        and (i == 0 or argv[i - 1] not in ("--trigger", "--keep", "--target"))
    ]
    counter = LocalCounter(replay.REPLAY_MODEL)
    rows = []
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="local", max_retries=0) as client,
    ):
        probe = summarize(client, **options)
        print(f"summarize settings: {probe.name}")
        for path in replay.trace_paths(paths):
            run = replay.load(path)
            requests = replay.requests_of(run)
            ts = run.timestamps()
            cache = tc.cache(ttl="1h", stable_ttl="1h") if replay.has_pauses(ts) else tc.cache()
            floor = replay.floor_cost(requests)
            replies = [t.reply for t in run.turns]
            events: list[SummaryEvent] = []
            s = summarize(client, store=MemoryStore(), on_summary=events.append, **options)
            result: dict[str, tuple[float, float, int, int]] = {}
            for label, steps in (
                ("+trim", [tc.order(), trim_default(), cache]),
                ("+summarize", [tc.order(), trim_default(), s, cache]),
            ):
                sent = [tc.pipe(r, *steps) for r in requests]
                for request in sent:
                    tc.validate(request)
                cost = replay.input_cost(replay.simulate(sent, ts))
                calls = 0.0
                if label == "+summarize":
                    calls = sum(pricing.cost(u, e.model).total for e in events for u in e.usage)
                recall = reference_recall(requests, replies, sent)
                result[label] = (cost, calls, recall.recalled, recall.references)
            size = counter.count_request(requests[-1])
            n_calls = sum(e.calls for e in events)
            rows.append((run.id, floor, size, len(requests), n_calls, result))
    print("cost / floor  (reference recall); summary calls included in +summarize")
    head = (
        f"{'trace':<44}{'floor $':>9}{'tokens':>9}{'turns':>6}{'calls':>6}"
        f"{'+trim':>20}{'+summarize':>20}{'change':>8}"
    )
    print(head)

    def cell(r: tuple[float, float, int, int], floor: float) -> str:
        return f"{(r[0] + r[1]) / floor:>11.3f} ({r[2] / max(r[3], 1):.3f})"

    for name, floor, size, turns, calls, result in rows:
        a = result["+trim"][0]
        b = result["+summarize"][0] + result["+summarize"][1]
        print(
            f"{name[:43]:<44}{floor:>9.3f}{size:>9,}{turns:>6}{calls:>6}"
            f"{cell(result['+trim'], floor):>20}{cell(result['+summarize'], floor):>20}"
            f"{(b / a - 1) * 100:>7.1f}%"
        )
    for title, chosen in (
        ("all runs", rows),
        (f"runs over {BIG // 1000}k tokens", [r for r in rows if r[2] > BIG]),
    ):
        if not chosen:
            continue
        a = sum(r[5]["+trim"][0] for r in chosen)
        b = sum(r[5]["+summarize"][0] + r[5]["+summarize"][1] for r in chosen)
        calls_usd = sum(r[5]["+summarize"][1] for r in chosen)
        recall = {
            label: sum(r[5][label][2] for r in chosen) / max(sum(r[5][label][3] for r in chosen), 1)
            for label in ("+trim", "+summarize")
        }
        print(
            f"\n{title} ({len(chosen)}): +trim ${a:.3f} (recall {recall['+trim']:.3f}); "
            f"+summarize ${b:.3f} incl. ${calls_usd:.4f} of summary calls "
            f"(recall {recall['+summarize']:.3f}): {(1 - b / a) * 100:.1f}% lower"
        )
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
