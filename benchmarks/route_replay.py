"""What model routing saves on recorded runs, with the cache rewrites of its switches priced in.

    python benchmarks/route_replay.py [TRACE.json ...] [--jobs N] [--margin M] [--out FILE]

Every recorded run benchmarks/replay.py finds is replayed turn by turn as its agent sent it,
on ``replay.REPLAY_MODEL`` (the conversation's model) with automatic prompt caching (the
top-level ``cache_control``). Each turn is sent to a model chosen by one of:

  all-Sonnet   every call on Sonnet 4.6 (the conversation's model: staying on it)
  all-Opus     every call on Opus 4.8
  route        tc.route() with a policy, cache-aware: a running conversation switches only
               where the switch pays
  blind        the same policy with the cache ignored: each call on the model it wants
               (where the request fits that model)

for two policies: the default rules (tidyctx.transforms._route.DEFAULT_RULES), and Haiku
4.5 for every step of a tool loop (a call whose last user turn holds tool results), a policy
that keeps wanting the cheaper model.

and priced on one offline cache model per strategy (tidyctx.cachesim, a cache per model, the
recorded times moving its clock) with tidyctx.pricing, output included: the larger of the
recorded output tokens and the reply counted locally, the same on every model. A switch's cold
cache is in the price: the new model's cache holds nothing of the conversation.

The target: on every run, ``route`` costs no more than ``all-Sonnet``. ``blind-extra`` is what
ignoring the cache costs beyond ``route``. The share of calls per model is printed for both.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import replay

import tidyctx as tc
from tidyctx import cachesim, pricing
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._route import fit

SONNET = replay.REPLAY_MODEL
OPUS = "claude-opus-4-8"
HAIKU = "claude-haiku-4-5"
STRATEGIES = ("all-Sonnet", "all-Opus", "route", "blind")
SHORT = {
    "claude-haiku-4-5-20251001": "haiku",
    "claude-sonnet-4-6": "sonnet",
    "claude-opus-4-8": "opus",
}


@dataclass
class RunResult:
    name: str
    turns: int
    cost: dict[str, float] = field(default_factory=dict)
    calls: dict[str, Counter[str]] = field(default_factory=dict)
    switches: dict[str, int] = field(default_factory=dict)


def outputs(run: Any) -> list[int]:
    """Output tokens per turn: the recorded count or the reply counted, whichever is larger
    (Claude Code's logs record the streamed message's first count, 1 to 3 tokens, for replies
    of hundreds), else 300."""
    counter = LocalCounter(SONNET)
    out = []
    for turn in run.turns:
        recorded = (turn.usage or {}).get("output_tokens")
        found = recorded if isinstance(recorded, int) and recorded > 0 else 0
        if turn.reply is not None:
            found = max(found, counter.count_request({"messages": [turn.reply]}))
        out.append(found or 300)
    return out


def price(
    requests: Sequence[dict[str, Any]],
    models: Sequence[str],
    times: Sequence[float | None],
    output: Sequence[int],
) -> float:
    sim = cachesim.CacheModel()
    total = 0.0
    for request, model, ts, out in zip(requests, models, times, output, strict=True):
        usage = sim.call({**request, "model": model}, ts).usage
        total += pricing.cost({**usage, "output_tokens": out}, model).total
    return total


def tool_steps(request: dict[str, Any]) -> str | None:
    """A second policy: Haiku for every step of a tool loop (a user turn of tool results)."""
    last = request["messages"][-1]
    content = last.get("content")
    if isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    ):
        return HAIKU
    return None


POLICIES: dict[str, Any] = {"default rules": None, "Haiku for tool steps": tool_steps}


def run_one(path: Path, margin: float = 0.25, policy: str = "default rules") -> RunResult:
    run = replay.load(path)
    requests = [
        {**r, "cache_control": {"type": "ephemeral"}} for r in replay.requests_of(run, SONNET)
    ]
    times = run.timestamps()
    output = outputs(run)
    router = tc.route(POLICIES[policy], margin=margin)
    chosen: dict[str, list[str]] = {s: [] for s in STRATEGIES}
    for request in requests:
        decision = router.decide(request)
        chosen["all-Sonnet"].append(SONNET)
        chosen["all-Opus"].append(OPUS)
        if decision.model != request["model"] and fit(request, decision.model) is not None:
            raise AssertionError(f"{path.name}: route() sent a request {decision.model} refuses")
        chosen["route"].append(decision.model)
        wanted = decision.wanted
        chosen["blind"].append(wanted if fit(request, wanted) is None else SONNET)
    result = RunResult(path.stem, len(requests))
    for name, models in chosen.items():
        canonical = [pricing.lookup(m).model for m in models]
        result.cost[name] = price(requests, models, times, output)
        result.calls[name] = Counter(SHORT.get(m, m) for m in canonical)
        result.switches[name] = sum(a != b for a, b in itertools.pairwise(canonical))
    return result


def shares(calls: Counter[str]) -> str:
    total = sum(calls.values()) or 1
    return " ".join(f"{m} {100 * n / total:.0f}%" for m, n in sorted(calls.items()))


def report(results: list[RunResult]) -> list[str]:
    head = (
        f"{'run':<44}{'turns':>6}{'Sonnet $':>10}{'Opus $':>10}{'route $':>10}{'blind $':>10}"
        f"{'blind-extra $':>14}  route<=Sonnet  route calls | blind calls (switches)"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        ok = r.cost["route"] <= r.cost["all-Sonnet"] + 1e-12
        lines.append(
            f"{r.name[:43]:<44}{r.turns:>6}{r.cost['all-Sonnet']:>10.4f}{r.cost['all-Opus']:>10.4f}"
            f"{r.cost['route']:>10.4f}{r.cost['blind']:>10.4f}"
            f"{r.cost['blind'] - r.cost['route']:>14.4f}  {'yes' if ok else 'NO':<13}  "
            f"{shares(r.calls['route'])} ({r.switches['route']}) | "
            f"{shares(r.calls['blind'])} ({r.switches['blind']})"
        )
    total = {s: sum(r.cost[s] for r in results) for s in STRATEGIES}
    calls = {s: sum((r.calls[s] for r in results), Counter()) for s in STRATEGIES}
    held = sum(r.cost["route"] <= r.cost["all-Sonnet"] + 1e-12 for r in results)
    turns = sum(r.turns for r in results)
    lines.append(
        f"total: {len(results)} runs, {turns} turns: all-Sonnet ${total['all-Sonnet']:.4f}, "
        f"all-Opus ${total['all-Opus']:.4f}, route ${total['route']:.4f} "
        f"({total['route'] / total['all-Sonnet'] - 1:+.1%} vs all-Sonnet), blind "
        f"${total['blind']:.4f} ({total['blind'] - total['route']:+.4f} $ against route); "
        f"route <= all-Sonnet on {held} of {len(results)} runs; calls route: "
        f"{shares(calls['route'])}, blind: {shares(calls['blind'])}"
    )
    return lines


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("traces", nargs="*")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--margin", type=float, default=0.25, help="route(margin=...)")
    parser.add_argument("--out", default=str(replay.ROOT / "benchmarks/results/route_replay.txt"))
    args = parser.parse_args(argv)
    paths = replay.replayable(replay.trace_paths(args.traces))
    lines: list[str] = []
    with Pool(args.jobs) as pool:
        for policy in POLICIES:
            results = pool.starmap(run_one, [(p, args.margin, policy) for p in paths])
            lines += [f"policy: {policy}", *report(results), ""]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
