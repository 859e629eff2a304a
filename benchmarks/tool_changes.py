"""Billed input cost of recorded runs whose tool list loses a tool and gets it back.

    python benchmarks/tool_changes.py [TRACE.json|SESSION.jsonl ...]

Each run with at least two tools and six turns is replayed turn by turn (benchmarks/replay.py)
with one tool withdrawn from the first third of the turns on and given back from the second
third on (the tool the run calls least, the last by name on a tie), as an agent does that
drops a tool in a mode switch. Priced on claude-sonnet-4-6 with tidyctx.cachesim, with the
recorded timestamps where the run has them. Strategies:

  steady     order(seen=SystemLines()) + cache() on the run as recorded (no tool change)
  churn      the same on the run with the tool change: each change rewrites the cached tools
  memory     order(seen=SystemLines(), tools=ToolChanges()) + cache() on the run with the tool
             change: the first tools stay, the change goes as a system message in place

Costs are ratios to steady's. The request memory sends is never invalid (tc.validate).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import replay

import tidyctx as tc


def _least_used(requests: list[dict[str, Any]]) -> str:
    calls: Counter[str] = Counter()
    for message in requests[-1]["messages"]:
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_use":
                calls[str(block.get("name"))] += 1
    names = sorted((t["name"] for t in requests[0]["tools"]), reverse=True)
    return min(names, key=lambda name: calls[name])


def with_tool_change(requests: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The run's requests with one tool gone from the first third to the second third."""
    name = _least_used(requests)
    n = len(requests)
    out = []
    for k, request in enumerate(requests):
        if n // 3 <= k < 2 * n // 3:
            request = {**request, "tools": [t for t in request["tools"] if t["name"] != name]}
        out.append(request)
    return out, name


def _cost(sent: list[dict[str, Any]], ts: list[float | None]) -> float:
    for request in sent:
        tc.validate(request, strict=False)
    return replay.input_cost(replay.simulate(sent, ts))


def run_one(requests: list[dict[str, Any]], ts: list[float | None]) -> tuple[float, float, float]:
    def pipeline(memory: bool) -> list[Any]:
        tools = tc.ToolChanges(models=None) if memory else None
        return [tc.order(seen=tc.SystemLines(), tools=tools), tc.cache()]

    steady_steps, churn_steps, memory_steps = pipeline(False), pipeline(False), pipeline(True)
    changed, _ = with_tool_change(requests)
    steady = _cost([tc.pipe(r, steady_steps) for r in requests], ts)
    churn = _cost([tc.pipe(r, churn_steps) for r in changed], ts)
    memory = _cost([tc.pipe(r, memory_steps) for r in changed], ts)
    return steady, churn, memory


def main(argv: list[str]) -> int:
    print(f"{'run':58} {'turns':>5} {'tools':>5}  {'steady $':>9} {'churn':>6} {'memory':>6}")
    totals = [0.0, 0.0, 0.0]
    for path in replay.replayable(replay.trace_paths(argv)):
        run = replay.load(path)
        requests = replay.requests_of(run)
        if len(requests) < 6 or len(requests[0].get("tools") or []) < 2:
            continue
        ts = [t.ts for t in run.turns]
        steady, churn, memory = run_one(requests, ts)
        for i, value in enumerate((steady, churn, memory)):
            totals[i] += value
        name = path.stem[:58]
        tools = len(requests[0]["tools"])
        print(
            f"{name:58} {len(requests):5d} {tools:5d}  {steady:9.4f} "
            f"{churn / steady:6.3f} {memory / steady:6.3f}"
        )
    steady, churn, memory = totals
    print(
        f"{'all (cost-weighted)':58} {'':5} {'':5}  {steady:9.4f} "
        f"{churn / steady:6.3f} {memory / steady:6.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
