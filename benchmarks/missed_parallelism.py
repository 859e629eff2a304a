"""Missed parallelism on recorded runs: the calls that could have joined the call before.

    python benchmarks/missed_parallelism.py [TRACE...]
        [--out benchmarks/results/missed_parallelism.txt]

For every run (the ``*.json`` runs of $TIDYCTX_TRACES, else the bundled ones; then the raw
Claude Code session logs, ``*.jsonl``, of the same folder): the API calls, the calls that
made exactly one read-only tool call, the calls that took nothing from the previous result
and could have joined the call before (the rules: :mod:`tidyctx._parallelism`), the input
tokens those extra round trips re-read and their cost, as a share of the run's cost.

Costs are priced two ways: on the run's own model, as ``tidyctx report`` prices it (recorded
usage where the run has it), and on claude-sonnet-4-6 for every run, so that the totals add
up on one price list. A session log is the raw form of a ``.json`` run of the same name: its
rows are listed apart and left out of the totals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from replay import REPLAY_MODEL, SHARED, trace_paths

from tidyctx._parallelism import MissedParallelism, missed_parallelism
from tidyctx.traces import load_run

HEAD = (
    f"{'run':<46}{'calls':>6}{'single':>7}{'missed':>7}{'re-read tok':>12}"
    f"{'cost $':>9}{'share':>7}{'model':>28}{'sonnet-4.6 $':>13}"
)


def short(name: str) -> str:
    return name if len(name) <= 45 else f"{name[:21]}…{name[-23:]}"


def row(name: str, own: MissedParallelism, sonnet: MissedParallelism) -> str:
    return (
        f"{short(name):<46}{own.calls:>6}{own.single_lookups:>7}{len(own.missed):>7}"
        f"{own.input_tokens:>12,}{own.cost:>9.4f}{100 * own.share:>6.1f}%{own.model[-27:]:>28}"
        f"{sonnet.cost:>13.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("traces", nargs="*")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs = trace_paths(args.traces)
    logs = [] if args.traces or not SHARED.is_dir() else sorted(SHARED.glob("*.jsonl"))
    lines = [
        "Missed parallelism: calls with one read-only tool call that took nothing from the",
        "previous result, each an extra round trip that re-read the whole context.",
        "single: calls with exactly one read-only tool call; missed: of those, the ones that",
        "could have joined the call before; cost: their input as billed plus their output",
        "beyond the tool call, on the run's model; share: of the run's whole cost.",
        "",
        HEAD,
        "-" * len(HEAD),
    ]
    totals = {"calls": 0, "single": 0, "missed": 0, "tokens": 0, "cost": 0.0, "run": 0.0}
    sonnet_total = sonnet_run = 0.0
    with_missed = 0
    for path in runs:
        run = load_run(path)
        if not run.turns:
            print(f"(skipped {path.name}: no assistant turn)", file=sys.stderr)
            continue
        own = missed_parallelism(run)
        sonnet = missed_parallelism(run, model=REPLAY_MODEL)
        lines.append(row(path.stem, own, sonnet))
        totals["calls"] += own.calls
        totals["single"] += own.single_lookups
        totals["missed"] += len(own.missed)
        totals["tokens"] += own.input_tokens
        totals["cost"] += own.cost
        totals["run"] += own.run_cost
        sonnet_total += sonnet.cost
        sonnet_run += sonnet.run_cost
        with_missed += bool(own.missed)
    lines.append("-" * len(HEAD))
    share = 100 * totals["cost"] / totals["run"] if totals["run"] else 0.0
    lines.append(
        f"{f'all {len(runs)} runs':<46}{totals['calls']:>6}{totals['single']:>7}"
        f"{totals['missed']:>7}{totals['tokens']:>12,}{totals['cost']:>9.4f}{share:>6.1f}%"
        f"{'(each its own)':>28}{sonnet_total:>13.4f}"
    )
    lines += [
        "",
        f"{with_missed} of {len(runs)} runs missed at least one; {totals['missed']} of "
        f"{totals['calls']:,} calls ({100 * totals['missed'] / max(totals['calls'], 1):.1f}%) "
        f"could have joined the call before. On claude-sonnet-4-6 they cost "
        f"${sonnet_total:.4f} of ${sonnet_run:.4f} "
        f"({100 * sonnet_total / sonnet_run if sonnet_run else 0:.1f}%).",
    ]
    if logs:
        lines += ["", "Raw Claude Code session logs (the same sessions as the runs above):", HEAD]
        for path in logs:
            run = load_run(path)
            lines.append(
                row(path.name, missed_parallelism(run), missed_parallelism(run, model=REPLAY_MODEL))
            )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
