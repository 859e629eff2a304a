"""The ``tidyctx`` command line. ``tidyctx report TRACE``: a run's per-turn tokens and cost."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from tidyctx import pricing
from tidyctx.tokens import LocalCounter
from tidyctx.traces import Run, load

__all__ = ["main", "report"]

# Turn replay prices runs on this model unless the recording names a known one (DESIGN.md).
REPLAY_MODEL = "claude-sonnet-4-6"


def _price_model(run: Run, override: str | None) -> tuple[pricing.ModelPrice, str]:
    if override:
        return pricing.lookup(override), ""
    try:
        return pricing.lookup(run.model), ""
    except pricing.UnknownModelError:
        return pricing.lookup(REPLAY_MODEL), (
            f"(recorded model {run.model!r} has no Anthropic price; priced as {REPLAY_MODEL})"
        )


def report(run: Run, *, model: str | None = None, out: Any = None) -> dict[str, float]:
    """Print the per-turn token and cost table of ``run``; return the totals.

    Where the run recorded the API's usage, the table shows it (input split into uncached,
    cache write and cache read) and prices it; it also prices the same input with no caching
    at all. Where it did not, input is counted locally and priced uncached.
    """
    out = out or sys.stdout
    price, note = _price_model(run, model)
    counter = LocalCounter(price.model)
    meta = run.meta
    print(f"run      {run.id}", file=out)
    for key in ("agent", "source", "license"):
        if meta.get(key):
            print(f"{key:<9}{str(meta[key])[:110]}", file=out)
    print(f"model    {run.model or '?'}  priced as {price.model} {note}".rstrip(), file=out)
    print(file=out)
    head = (
        f"{'turn':>4} {'t+':>7} {'msgs':>5} {'counted':>9} {'recorded':>9} {'uncached':>9} "
        f"{'write':>8} {'read':>9} {'output':>7} {'cost $':>9} {'no-cache $':>10}"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    totals = dict.fromkeys(("counted", "input", "write", "read", "output", "cost", "nocache"), 0.0)
    start = next((t.ts for t in run.turns if t.ts is not None), None)
    for k, turn in enumerate(run.turns, 1):
        counted = counter.count_request(turn.request)
        if turn.usage:
            u = pricing.usage_dict(turn.usage)
        else:
            reply = turn.reply or {"role": "assistant", "content": []}
            out_tokens = counter.count_request({"messages": [reply]})
            u = {"input_tokens": counted, "output_tokens": out_tokens}
            u = pricing.usage_dict(u)
        total_in = sum(
            u[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        cost = pricing.cost(u, price).total
        nocache = pricing.cost(
            {"input_tokens": total_in, "output_tokens": u["output_tokens"]}, price
        ).total
        rel = "" if turn.ts is None or start is None else _clock(turn.ts - start)
        print(
            f"{k:>4} {rel:>7} {len(turn.request.get('messages', [])):>5} {counted:>9,} "
            f"{total_in:>9,} {u['input_tokens']:>9,} {u['cache_creation_input_tokens']:>8,} "
            f"{u['cache_read_input_tokens']:>9,} {u['output_tokens']:>7,} {cost:>9.4f} "
            f"{nocache:>10.4f}",
            file=out,
        )
        for key, value in (
            ("counted", counted),
            ("input", total_in),
            ("write", u["cache_creation_input_tokens"]),
            ("read", u["cache_read_input_tokens"]),
            ("output", u["output_tokens"]),
            ("cost", cost),
            ("nocache", nocache),
        ):
            totals[key] += value
    print("-" * len(head), file=out)
    print(
        f"{'all':>4} {'':>7} {'':>5} {totals['counted']:>9,.0f} {totals['input']:>9,.0f} "
        f"{totals['input'] - totals['write'] - totals['read']:>9,.0f} {totals['write']:>8,.0f} "
        f"{totals['read']:>9,.0f} {totals['output']:>7,.0f} {totals['cost']:>9.4f} "
        f"{totals['nocache']:>10.4f}",
        file=out,
    )
    print(file=out)
    source = "recorded usage" if any(t.usage for t in run.turns) else "local token counts"
    ratio = totals["nocache"] / totals["cost"] if totals["cost"] else 1.0
    print(
        f"{len(run.turns)} API calls, {totals['input']:,.0f} input tokens sent in all "
        f"({source}). Cost ${totals['cost']:.4f}; with no prompt caching ${totals['nocache']:.4f} "
        f"({ratio:.2f}x).",
        file=out,
    )
    if any(t.usage for t in run.turns):
        print(
            "'counted' is tidyctx's local estimate of the request as recorded; where it falls "
            "short of 'recorded', the log lacks the system prompt and tool definitions.",
            file=out,
        )
    return totals


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidyctx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="per-turn tokens and cost of a recorded run")
    rep.add_argument("trace", help="a run .json or a request-log .jsonl")
    rep.add_argument("--model", help="price as this model instead of the recorded one")
    args = parser.parse_args(argv)
    if args.command == "report":
        try:
            runs = load(args.trace)
        except (OSError, ValueError) as err:
            print(f"tidyctx report: {err}", file=sys.stderr)
            return 2
        for run in runs:
            report(run, model=args.model)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
