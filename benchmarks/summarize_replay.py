"""Replay cost and reference recall of recorded runs with trim, and with trim + summarize.

    python benchmarks/summarize_replay.py [TRACE.json ...] [--trigger N] [--keep N]
        [--target N] [--payback N|none] [--config trigger=N,keep=N,target=N,payback=N|none ...]
        [--jobs N] [--events]

Each run is replayed turn by turn (benchmarks/replay.py) as in benchmarks/trim_replay.py:
priced on claude-sonnet-4-6 with tidyctx.cachesim at the recorded timestamps, 1h TTL for runs
with pauses over 5 minutes. Strategies:

  +trim        tc.pipe(r, tc.order(), TRIM, cache)          (TRIM as in trim_replay.py)
  +summarize   tc.pipe(r, tc.order(), TRIM, SUMMARIZE, cache)

SUMMARIZE is tc.summarize(client, ...) with its defaults (or the options given: --trigger,
--keep, --target, --payback (max_payback_turns; ``none`` turns the payback gate off) for one
setting, or one --config per setting, compared in one table at the
end; ``--config default`` is the defaults), a fresh MemoryStore and a fresh local server
per run and setting, and the real anthropic SDK client talking to that
tidyctx.testing.LocalServer, whose deterministic extractive summary responder writes the
summaries offline. Cost is the input cost of the replayed requests plus every summary call
(input and output, with its simulated cache use) at the summary model's prices. Recall is
reference recall (docs/benchmarks.md): with the local responder's summaries, not Haiku's. --events
lists each summary step (turn, tokens replaced, summary size, request size before and after).
Runs are measured in --jobs worker processes (default 1), each with its own local server.
"""

from __future__ import annotations

import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import anthropic
import replay
import trim_replay

import tidyctx as tc
from tidyctx import SummaryEvent, pricing, summarize
from tidyctx.recall import reference_recall
from tidyctx.store import MemoryStore
from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter

BIG = 60_000  # "runs over 60k tokens": the last recorded request, before any transform
KEYS = {
    "trigger": "trigger",
    "keep": "keep",
    "target": "target_tokens",
    "payback": "max_payback_turns",
}
FLAGS = ("--trigger", "--keep", "--target", "--payback", "--config", "--jobs")
Options = dict[str, int | None]

Result = tuple[float, float, int, int]  # replay cost, summary calls cost, recalled, references


def trim_step() -> Any:
    # trim_replay's measured setting (its TIDYCTX_TRIM override included).
    return tc.trim(**trim_replay.trim_options())


def _option(argv: list[str], name: str) -> int | None:
    if name in argv:
        return int(argv[argv.index(name) + 1])
    return None


def _value(text: str) -> int | None:
    """An option's value: an int, or ``none`` (only max_payback_turns takes None)."""
    return None if text.strip().lower() == "none" else int(text)


def configs(argv: list[str]) -> list[Options]:
    """One dict of summarize() options per setting asked for (``{}``: the defaults)."""
    out: list[Options] = []
    for i, a in enumerate(argv):
        if a == "--config":
            pairs = [p.split("=", 1) for p in argv[i + 1].split(",") if "=" in p]
            out.append({KEYS[k.strip()]: _value(v) for k, v in pairs})
    single: Options = {}
    for name, key in KEYS.items():
        flag = f"--{name}"
        if flag in argv:
            single[key] = _value(argv[argv.index(flag) + 1])
    return [single, *out] if single or not out else out


def measure(args: tuple[Path, list[Options], bool]) -> dict[str, Any]:
    path, settings, show = args
    run = replay.load(path)
    requests = replay.requests_of(run)
    ts = run.timestamps()
    cache = tc.cache(ttl="1h", stable_ttl="1h") if replay.has_pauses(ts) else tc.cache()
    replies = [t.reply for t in run.turns]
    trim = trim_step()
    # pipe(r, order, trim, s, cache) == pipe(pipe(r, order, trim), s, cache): trim once.
    trimmed = [tc.pipe(r, tc.order(), trim) for r in requests]

    def score(sent: list[dict[str, Any]], calls: float) -> Result:
        for request in sent:
            tc.validate(request)
        cost = replay.input_cost(replay.simulate(sent, ts))
        recall = reference_recall(requests, replies, sent)
        return cost, calls, recall.recalled, recall.references

    base = score([tc.pipe(r, cache) for r in trimmed], 0.0)
    results: list[Result] = []
    notes: list[list[str]] = []
    counter = LocalCounter(replay.REPLAY_MODEL)
    for options in settings:
        # A server per setting: its simulated prompt cache must not carry one setting's
        # summary calls over to the next.
        with (
            LocalServer() as server,
            anthropic.Anthropic(base_url=server.base_url, api_key="local", max_retries=0) as client,
        ):
            made: list[SummaryEvent] = []
            events: list[tuple[int, SummaryEvent]] = []
            s = summarize(client, store=MemoryStore(), on_summary=made.append, **options)
            sent = []
            for t, r in enumerate(trimmed):
                sent.append(tc.pipe(r, s, cache))
                events += [(t, e) for e in made]
                made.clear()
            calls = sum(pricing.cost(u, e.summary_model).total for _, e in events for u in e.usage)
            results.append(score(sent, calls))
            lines = []
            if show:
                for t, e in (x for x in events if x[1].complete):
                    before = counter.count_request(trimmed[t])
                    after = counter.count_request(sent[t])
                    lines.append(
                        f"    turn {t + 1}/{len(requests)}: {e.span_tokens:,} tokens replaced "
                        f"by {e.summary_tokens:,}; request {before:,} -> {after:,}"
                    )
            notes.append(lines)
    return {
        "id": run.id,
        "floor": replay.floor_cost(requests),
        "size": counter.count_request(requests[-1]),
        "turns": len(requests),
        "base": base,
        "results": results,
        "notes": notes,
    }


def cell(r: Result, floor: float) -> str:
    return f"{(r[0] + r[1]) / floor:>11.3f} ({r[2] / max(r[3], 1):.3f})"


def total(r: Result) -> float:
    return r[0] + r[1]


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    settings = configs(argv)
    jobs = _option(argv, "--jobs") or 1
    show = "--events" in argv
    paths = [
        a
        for i, a in enumerate(argv)
        if not a.startswith("-") and (i == 0 or argv[i - 1] not in FLAGS)
    ]
    names = [summarize(object(), **options).name for options in settings]
    work = [(p, settings, show) for p in replay.replayable(replay.trace_paths(paths))]
    if not work:
        print("no run to replay", file=sys.stderr)
        return 1
    if jobs > 1:
        with Pool(jobs) as pool:
            rows = pool.map(measure, work, chunksize=1)
    else:
        rows = [measure(w) for w in work]
    summary: list[tuple[str, list[str]]] = []
    for i, name in enumerate(names):
        print(f"summarize settings: {name}")
        print("cost / floor  (reference recall); summary calls included in +summarize")
        print(
            f"{'trace':<44}{'floor $':>9}{'tokens':>9}{'turns':>6}"
            f"{'+trim':>20}{'+summarize':>20}{'change':>8}"
        )
        for row in rows:
            a, b = total(row["base"]), total(row["results"][i])
            print(
                f"{row['id'][:43]:<44}{row['floor']:>9.3f}{row['size']:>9,}{row['turns']:>6}"
                f"{cell(row['base'], row['floor']):>20}"
                f"{cell(row['results'][i], row['floor']):>20}{(b / a - 1) * 100:>7.1f}%"
            )
            for line in row["notes"][i]:
                print(line)
        cells = []
        for title, chosen in (
            ("all runs", rows),
            (f"runs over {BIG // 1000}k tokens", [r for r in rows if r["size"] > BIG]),
        ):
            a = sum(total(r["base"]) for r in chosen)
            b = sum(total(r["results"][i]) for r in chosen)
            calls_usd = sum(r["results"][i][1] for r in chosen)
            recall = {
                label: sum(x[2] for x in picked) / max(sum(x[3] for x in picked), 1)
                for label, picked in (
                    ("+trim", [r["base"] for r in chosen]),
                    ("+summarize", [r["results"][i] for r in chosen]),
                )
            }
            steps = sum(len(r["notes"][i]) for r in chosen) if show else None
            print(
                f"\n{title} ({len(chosen)}): +trim ${a:.3f} (recall {recall['+trim']:.4f}); "
                f"+summarize ${b:.3f} incl. ${calls_usd:.4f} of summary calls "
                f"(recall {recall['+summarize']:.4f}): {(1 - b / a) * 100:.1f}% lower"
                + (f"; {steps} summary steps" if steps is not None else "")
            )
            cells.append(f"{(1 - b / a) * 100:>6.1f}% {recall['+summarize']:.4f}")
        losses = [
            f"{r['id'][:24]} +{(total(r['results'][i]) / total(r['base']) - 1) * 100:.1f}%"
            for r in rows
            if total(r["results"][i]) > total(r["base"]) * 1.001
        ]
        summary.append((name, [*cells, ", ".join(losses) or "none"]))
        print()
    if len(settings) > 1:
        print("setting: lower cost and recall on all runs | on runs over 60k | runs that cost more")
        for name, (every, big, losses) in summary:
            print(f"{name}\n    {every} | {big} | {losses}")
    print(f"({time.perf_counter() - started:.0f} s, {jobs} job{'s' if jobs > 1 else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
