"""Billed input cost of recorded runs whose tool list loses a tool and gets it back.

    python benchmarks/tool_changes.py [TRACE.json|SESSION.jsonl ...]

Each run with at least two tools and six turns is replayed turn by turn (benchmarks/replay.py)
with one tool (the one the run calls least, the last by name on a tie) withdrawn, as an agent
does that drops a tool in a mode switch. Two patterns: "once", the tool gone from the first
third of the turns to the second third; "toggle", the tool off for five turns, on for five,
and so on. Priced on claude-sonnet-4-6 with tidyctx.cachesim, with the recorded timestamps
where the run has them. Strategies:

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


def with_tool_change(
    requests: list[dict[str, Any]], toggle: bool = False
) -> tuple[list[dict[str, Any]], str]:
    """The run's requests with one tool gone from the first third to the second third, or
    (``toggle``) gone for five turns in every ten."""
    name = _least_used(requests)
    n = len(requests)
    out = []
    for k, request in enumerate(requests):
        gone = (k // 5) % 2 == 1 if toggle else n // 3 <= k < 2 * n // 3
        if gone:
            request = {**request, "tools": [t for t in request["tools"] if t["name"] != name]}
        out.append(request)
    return out, name


def _cost(sent: list[dict[str, Any]], ts: list[float | None]) -> float:
    for request in sent:
        tc.validate(request, strict=False)
    return replay.input_cost(replay.simulate(sent, ts))


def _pipeline(memory: bool) -> list[Any]:
    tools = tc.ToolChanges(models=None) if memory else None
    return [tc.order(seen=tc.SystemLines(), tools=tools), tc.cache()]


def run_one(requests: list[dict[str, Any]], ts: list[float | None]) -> list[float]:
    """steady, then churn and memory for "once", then for "toggle"."""
    steps = _pipeline(False)
    costs = [_cost([tc.pipe(r, steps) for r in requests], ts)]
    for toggle in (False, True):
        changed, _ = with_tool_change(requests, toggle)
        for memory in (False, True):
            steps = _pipeline(memory)
            costs.append(_cost([tc.pipe(r, steps) for r in changed], ts))
    return costs


def _row(name: str, turns: str, tools: str, costs: list[float]) -> str:
    steady, *rest = costs
    ratios = " ".join(f"{c / steady:6.3f}" for c in rest)
    return f"{name:54} {turns:>5} {tools:>5}  {steady:9.4f}  {ratios}"


def main(argv: list[str]) -> int:
    print("ratios to steady; once = one tool gone for the middle third, toggle = off 5 / on 5")
    print(
        f"{'run':54} {'turns':>5} {'tools':>5}  {'steady $':>9}  "
        f"{'once':>6} {'+mem':>6} {'toggle':>6} {'+mem':>6}"
    )
    totals = [0.0] * 5
    for path in replay.replayable(replay.trace_paths(argv)):
        run = replay.load(path)
        requests = replay.requests_of(run)
        if len(requests) < 6 or len(requests[0].get("tools") or []) < 2:
            continue
        costs = run_one(requests, [t.ts for t in run.turns])
        totals = [a + b for a, b in zip(totals, costs, strict=True)]
        tools = str(len(requests[0]["tools"]))
        print(_row(path.stem[:54], str(len(requests)), tools, costs))
    print(_row("all (cost-weighted)", "", "", totals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
