"""Benchmark LocalCounter on a growing 1,000-turn conversation, and refit its calibration.

    python benchmarks/token_counting.py          # timings and memo memory (a few seconds)
    python benchmarks/token_counting.py --fit    # calibration fit on the recorded traces

The conversation is synthesized from real blocks: system prompt and tools of the OpenHands
Sonnet 4 trace, assistant text, tool_use inputs and tool results (cut to ~1,200 characters,
a few hundred tokens) of the Claude Code trace cc-mclaude-ff59cfd2 (CC0), each turn made
unique so that no block repeats.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from replay import SHARED

import tidyctx as tc
from tidyctx import tokens
from tidyctx._request import iter_blocks
from tidyctx.tokens import LocalCounter

TRACES = SHARED
SONNET4 = TRACES / "openhands-sdk-claude-sonnet4-hello-world.json"
CLAUDE_CODE = TRACES / "cc-mclaude-ff59cfd2.json"
TURNS = 1000
REPORT_AT = (10, 100, 500, 999, 1000)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def total_input(usage: dict[str, Any]) -> int:
    return int(
        usage["input_tokens"]
        + usage.get("cache_creation_input_tokens", 0)
        + usage.get("cache_read_input_tokens", 0)
    )


def turn_requests(trace: dict[str, Any]) -> list[tuple[dict[str, Any], int | None]]:
    """(request, recorded input total) behind each assistant message of a trace."""
    out: list[tuple[dict[str, Any], int | None]] = []
    messages = trace["messages"]
    turns = trace["turns"]
    k = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        request: dict[str, Any] = {"model": trace["recorded_model"], "messages": messages[:i]}
        if trace["system"]:
            request["system"] = trace["system"]
        if trace["tools"]:
            request["tools"] = trace["tools"]
        usage = turns[k]["usage"] if k < len(turns) else None
        out.append((request, None if usage is None else total_input(usage)))
        k += 1
    return out


# ---------------------------------------------------------------------------- conversation


def _pieces() -> tuple[list[str], list[dict[str, Any]], list[str]]:
    texts: list[str] = []
    inputs: list[dict[str, Any]] = []
    results: list[str] = []
    for message in load(CLAUDE_CODE)["messages"]:
        if not isinstance(message["content"], list):
            continue
        for block in message["content"]:
            if block["type"] == "text" and message["role"] == "assistant":
                texts.append(block["text"][:600])
            elif block["type"] == "tool_use":
                inputs.append(block["input"])
            elif block["type"] == "tool_result":
                content = block.get("content")
                if isinstance(content, list):
                    content = "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
                if isinstance(content, str) and len(content) > 200:
                    results.append(content[:1200])
    return texts, inputs, results


def conversation(turns: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A base request (system, tools) and 2*turns+1 messages: user, then per turn an assistant
    message (text + tool_use) and a user message (tool_result)."""
    base = load(SONNET4)
    texts, inputs, results = _pieces()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing tests."}]}
    ]
    for n in range(turns):
        tool_id = f"toolu_{n:06d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Step {n}: {texts[n % len(texts)]}"},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "terminal",
                        "input": {**inputs[n % len(inputs)], "step": n},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": f"[{n}] {results[n % len(results)]}",
                    }
                ],
            }
        )
    request = {"model": "claude-sonnet-4-5", "system": base["system"], "tools": base["tools"]}
    return request, messages


def request_at(base: dict[str, Any], messages: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The request of turn n: everything up to the tool result of turn n."""
    return {**base, "messages": messages[: 2 * n + 1]}


def _timed(counter: LocalCounter, request: dict[str, Any]) -> tuple[int, float]:
    t0 = time.perf_counter()
    total = counter.count_request(request)
    return total, time.perf_counter() - t0


def bench() -> None:
    base, messages = conversation(TURNS)
    tokens.get_encoding()  # load the encoding outside the timings
    gc.collect()
    counter = LocalCounter()
    tokens.clear_memo()
    rows = []
    for n in REPORT_AT:
        counter.count_request(request_at(base, messages, n - 1))  # warm: turns up to n-1
        request = request_at(base, messages, n)
        total, new_turn = _timed(counter, request)  # encodes only turn n's blocks
        recount = statistics.median(_timed(counter, request)[1] for _ in range(7))
        rows.append((n, total, new_turn, recount))

    last = request_at(base, messages, TURNS)
    tokens.clear_memo()
    cold_total, cold = _timed(LocalCounter(), last)
    assert cold_total == rows[-1][1], (cold_total, rows[-1][1])

    tokens.clear_memo()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    LocalCounter().count_request(last)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    entries = tc.memo_stats().kinds.get("tokens", (0, 0))[0]

    blocks = sum(1 for _ in iter_blocks(last))
    print(f"conversation: {TURNS} turns, {blocks} blocks, {cold_total:,} tokens at turn {TURNS}")
    print("count_request(turn n), shared LocalCounter, memo warm with turns 1..n-1:")
    print(f"{'turn n':>7} {'blocks':>7} {'tokens':>9} {'new turn (us)':>14} {'recount (us)':>13}")
    for n, total, new_turn, recount in rows:
        nblocks = sum(1 for _ in iter_blocks(request_at(base, messages, n)))
        print(f"{n:>7} {nblocks:>7} {total:>9,} {new_turn * 1e6:>14,.0f} {recount * 1e6:>13,.0f}")
    print(f"cold count of turn {TURNS} (empty memo): {cold * 1e6:,.0f} us")
    print(
        f"memo after a cold count of turn {TURNS}: {entries:,} entries, "
        f"{(after - before) / 1e6:.2f} MB retained, {(peak - before) / 1e6:.2f} MB peak "
        "(tracemalloc; the peak includes transient JSON while hashing)"
    )


# ---------------------------------------------------------------------------- calibration


def fit() -> None:
    raw = LocalCounter(calibration=1.0)
    trace = load(SONNET4)
    rows = []
    for request, recorded in turn_requests(trace):
        assert recorded is not None
        overhead = raw.overhead(request)
        rows.append((raw.count_request(request) - overhead, overhead, recorded))
    factor = sum(t * (r - o) for t, o, r in rows) / sum(t * t for t, o, r in rows)
    print(f"{SONNET4.name} ({trace['recorded_model']}): least-squares factor {factor:.4f}")
    print(f"  with constants as shipped, BASE_CALIBRATION = {tokens.BASE_CALIBRATION}")
    print(f"  {'turn':>4} {'cl100k':>7} {'fixed':>6} {'recorded':>9} {'counted':>8} {'resid':>7}")
    shipped = LocalCounter()
    for k, ((t, o, r), (request, _)) in enumerate(zip(rows, turn_requests(trace), strict=True)):
        counted = shipped.count_request(request)
        print(f"  {k:>4} {t:>7} {o:>6} {r:>9} {counted:>8} {(counted - r) / r * 100:>+6.2f}%")

    # Joint fit of the factor and the tool_use+tool_result overhead: overheads set to 0.
    saved = tokens.TOOL_USE_OVERHEAD, tokens.TOOL_RESULT_OVERHEAD
    tokens.TOOL_USE_OVERHEAD = tokens.TOOL_RESULT_OVERHEAD = 0
    tokens.clear_memo()
    joint_x: list[tuple[float, float]] = []
    joint_y: list[float] = []
    for request, recorded in turn_requests(trace):
        assert recorded is not None
        pairs = sum(
            1
            for m in request["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b["type"] == "tool_use"
        )
        overhead = raw.overhead(request)
        joint_x.append((raw.count_request(request) - overhead, pairs))
        joint_y.append(recorded - overhead)
    tokens.TOOL_USE_OVERHEAD, tokens.TOOL_RESULT_OVERHEAD = saved
    tokens.clear_memo()
    a = (
        sum(x * x for x, _ in joint_x),
        sum(x * p for x, p in joint_x),
        sum(p * p for _, p in joint_x),
    )
    b = sum(x * y for (x, _), y in zip(joint_x, joint_y, strict=True))
    c = sum(p * y for (_, p), y in zip(joint_x, joint_y, strict=True))
    det = a[0] * a[2] - a[1] * a[1]
    joint, pair = (b * a[2] - a[1] * c) / det, (a[0] * c - a[1] * b) / det
    print(
        f"  joint fit without tool overheads: factor {joint:.4f}, tool_use+tool_result pair "
        f"{pair:.1f} Claude tokens = {pair / joint:.1f} cl100k (shipped: "
        f"{tokens.TOOL_USE_OVERHEAD + tokens.TOOL_RESULT_OVERHEAD})"
    )

    print("\nsecond check: Claude Code traces (no system/tools: growth between turns)")
    for path in sorted(TRACES.glob("cc-*.json")):
        trace = load(path)
        points = [(raw.count_request(q), raw.overhead(q), r) for q, r in turn_requests(trace)]
        xs, ys = [], []
        for (c0, o0, r0), (c1, o1, r1) in itertools.pairwise(points):
            if r0 is None or r1 is None:
                continue
            dx, dy = (c1 - o1) - (c0 - o0), (r1 - r0) - (o1 - o0)
            if dx > 0 and dy > 0:  # skip compactions and thinking drops
                xs.append(dx)
                ys.append(dy)
        ls = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
        ratios = [y / x for x, y in zip(xs, ys, strict=True) if x >= 100]
        print(
            f"  {path.name:40} {trace['recorded_model']:28} deltas={len(xs):>3} "
            f"least-squares={ls:.3f} median={statistics.median(ratios):.3f}"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the calibration factor")
    args = parser.parse_args(argv)
    if args.fit:
        fit()
    else:
        bench()


if __name__ == "__main__":
    main(sys.argv[1:])
