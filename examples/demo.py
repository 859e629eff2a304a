"""What tidyctx saves on a recorded agent run, offline: `make demo` runs this.

Replays the run turn by turn (each request as the agent sent it), once per pipeline, prices
each request with tidyctx's offline prompt-cache model on claude-sonnet-4-6, and prints the
input cost, its ratio to the caching floor (every distinct prefix token written once, then
read) and the reference recall (the share of what the agent later used that the context
still held). Summaries come from `tidyctx.testing.LocalServer`'s deterministic stand-in for
Haiku, reached through the real `anthropic` SDK on 127.0.0.1, and are priced at Haiku's rates.

    python examples/demo.py [TRACE.json]
"""

from __future__ import annotations

import itertools
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anthropic

import tidyctx as tc
from tidyctx import cachesim, pricing
from tidyctx.recall import reference_recall
from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter
from tidyctx.traces import load_run

MODEL = "claude-sonnet-4-6"
TRACE = Path(__file__).parent.parent / "data" / "traces" / "cc-sessionshare-generaltoolcalls.json"


def input_cost(usages: Sequence[dict[str, Any]], model: str = MODEL) -> float:
    return sum(pricing.cost({**u, "output_tokens": 0}, model).total for u in usages)


def main(argv: Sequence[str]) -> int:
    path = Path(argv[0]) if argv else TRACE
    run = load_run(path)
    requests = [{**t.request, "model": MODEL} for t in run.turns]
    stamps = run.timestamps()
    replies = [t.reply for t in run.turns]
    counter = LocalCounter(MODEL)
    floor = input_cost(cachesim.floor(requests, model=MODEL, counter=counter))
    paused = any(
        b - a > 300 for a, b in itertools.pairwise(stamps) if a is not None and b is not None
    )
    ttl = "1h" if paused else "5m"  # the run pauses for over 5 minutes: keep the cache an hour

    print(f"{run.id}: {len(requests)} calls of a recorded agent run, replayed on {MODEL}")
    print(f"caching floor ${floor:.4f}; cache TTL {ttl}\n")
    print(f"{'pipeline':<44}{'input $':>10}{'/ floor':>9}{'recall':>8}{'tokens':>12}")

    events: list[tc.SummaryEvent] = []
    with LocalServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="demo", max_retries=0)
        store = tc.MemoryStore()
        trim = tc.trim(max_tokens=700, head=0.6, slack=0.5, store=store)
        pipelines: dict[str, list[Callable[[Any], Any]]] = {
            "as sent, no caching": [],
            "automatic caching (top-level cache_control)": [
                lambda r: {**r, "cache_control": {"type": "ephemeral"}}
            ],
            "order + cache": [tc.order(), tc.cache(ttl=ttl, stable_ttl=ttl)],
            "order + slice_code + trim + cache": [
                tc.order(),
                tc.slice_code(store=store),
                trim,
                tc.cache(ttl=ttl, stable_ttl=ttl),
            ],
            "... + summarize + cache": [
                tc.order(),
                tc.slice_code(store=store),
                trim,
                tc.summarize(client, store=store, on_summary=events.append),
                tc.cache(ttl=ttl, stable_ttl=ttl),
            ],
        }
        for label, steps in pipelines.items():
            events.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", tc.SummaryWarning)
                sent = [tc.pipe(r, *steps) for r in requests]
            for r in sent:
                tc.validate(r)
            cost = input_cost(cachesim.simulate(sent, stamps, model=MODEL, counter=counter))
            # Summary calls at their own model's price, input and output, as the server billed.
            calls = [(e.summary_model, u) for e in events for u in e.usage]
            cost += sum(pricing.cost(u, model).total for model, u in calls)
            recall = reference_recall(requests, replies, sent).ratio
            tokens = sum(counter.count_request(r) for r in sent)
            plural = "s" if len(calls) != 1 else ""
            print(
                f"{label:<44}{cost:>10.4f}{cost / floor:>8.2f}x{recall:>8.3f}{tokens:>12,}"
                + (f"   ({len(calls)} summary call{plural} included)" if calls else "")
            )
    print(
        "\nrecall 1.000 = everything the agent later quoted was still in its context."
        "\nThe benchmarks in benchmarks/ run the same replay on 23 recorded runs"
        " (docs/benchmarks.md)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
