"""Turn replay of recorded runs, shared by the benchmarks (method: docs/benchmarks.md).

A recorded run is replayed as the agent sent it: the request for assistant turn t holds
system, tools and every message before it. Costs are priced on ``REPLAY_MODEL`` whatever
model recorded the run.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tidyctx import cachesim, pricing
from tidyctx.tokens import LocalCounter
from tidyctx.traces import Run, load_run

REPLAY_MODEL = "claude-sonnet-4-6"
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TIDYCTX_TRACES", ROOT.parent / "shared" / "traces"))
BUNDLED = ROOT / "data" / "traces"


def trace_paths(argv: Sequence[str] = ()) -> list[Path]:
    """Trace files named on the command line, else the collection beside the checkout (or at
    $TIDYCTX_TRACES), else the bundled ones."""
    named = [Path(a) for a in argv if not a.startswith("-")]
    if named:
        return named
    folder = SHARED if SHARED.is_dir() else BUNDLED
    if folder == BUNDLED:
        print(f"({SHARED} not found: using the bundled traces)", file=sys.stderr)
    return sorted(folder.glob("*.json"))


def load(path: Path) -> Run:
    return load_run(path)


def replayable(paths: Sequence[Path]) -> list[Path]:
    """The runs with at least one assistant turn to replay; the others are named on stderr."""
    kept = []
    for path in paths:
        if load(path).turns:
            kept.append(path)
        else:
            print(f"(skipped {path}: no assistant turn to replay)", file=sys.stderr)
    return kept


def requests_of(run: Run, model: str = REPLAY_MODEL) -> list[dict[str, Any]]:
    return [{**t.request, "model": model} for t in run.turns]


def input_cost(usages: Sequence[dict[str, Any]], model: str = REPLAY_MODEL) -> float:
    """USD of the input side of a run (output is the same whatever the strategy)."""
    price = pricing.lookup(model)
    total = 0.0
    for u in usages:
        c = pricing.cost({**u, "output_tokens": 0}, price)
        total += c.total
    return total


def simulate(
    requests: Sequence[dict[str, Any]],
    timestamps: Sequence[float | None] | None,
    model: str = REPLAY_MODEL,
) -> list[dict[str, Any]]:
    return cachesim.simulate(requests, timestamps, model=model, counter=_counter(model))


def floor_cost(requests: Sequence[dict[str, Any]], model: str = REPLAY_MODEL) -> float:
    return input_cost(cachesim.floor(requests, model=model, counter=_counter(model)), model)


_COUNTERS: dict[str, LocalCounter] = {}


def _counter(model: str) -> LocalCounter:
    if model not in _COUNTERS:
        _COUNTERS[model] = LocalCounter(model)
    return _COUNTERS[model]


def has_pauses(timestamps: Sequence[float | None], seconds: float = 300.0) -> bool:
    ts = [t for t in timestamps if t is not None]
    return any(b - a > seconds for a, b in itertools.pairwise(ts))


Strategy = Callable[[dict[str, Any]], dict[str, Any]]
