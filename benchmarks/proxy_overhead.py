"""What the proxy adds to one request, alone: latency and CPU by request size, no concurrency.

    python benchmarks/proxy_overhead.py --pipeline off
    python benchmarks/proxy_overhead.py --pipeline defaults --calls 100 --out FILE

The same three processes as ``proxy_load.py`` (a LocalServer, ``tidyctx proxy``, this one),
but one session at a time. For each size (2 kB to 1 MB) a conversation holds a tool result
that brings the request to that size; each call adds a new short turn after it (a new tool
call and a result of a few words, in place of the previous call's), so every request stays
near its size and each one ends with content the pipeline has not seen, as in an agent.
Each call is streamed twice, straight to the LocalServer and through the proxy, in a random
order; the difference is the latency the proxy adds. The proxy's CPU time (all its
threads, from /proc) is read before and after each size's calls: its CPU per call. Reported
beside one ``json.dumps`` of the request (the yardstick of the targets: p50 added latency at
most 3x that, and under 2 ms below 20 kB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
from typing import Any

import httpx
from proxy_load import Stack, _body, _cpu_seconds, _pct, _stream

SIZES = (2_000, 10_000, 50_000, 200_000, 1_000_000)


def _log(size: int, seed: int) -> str:
    rng = random.Random(seed)
    lines: list[str] = []
    total = 0
    while total < size:
        line = f"{len(lines):06d} INFO worker {rng.randint(0, 99)} step {total} ok"
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def _turn(messages: list[dict[str, Any]], n: int, result: str) -> list[dict[str, Any]]:
    tool_id = f"toolu_{n}"
    return [
        *messages,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_id, "name": "bash", "input": {"n": n}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": result}],
        },
    ]


async def _band(
    client: httpx.AsyncClient, stack: Stack, size: int, calls: int, warmup: int
) -> dict[str, Any]:
    rng = random.Random(size)
    base = _turn([{"role": "user", "content": "build it"}], 0, _log(size, size))
    messages = base
    added: list[float] = []
    ttfb: list[float] = []
    dumps: list[float] = []
    sizes: list[int] = []
    cpu_began = 0.0
    for n in range(1, warmup + calls + 1):
        if n == warmup + 1:
            cpu_began = _cpu_seconds(stack.proxy.pid)
        body, dumps_ms = _body(messages)
        order = [(stack.direct, False), (stack.proxied, True)]
        rng.shuffle(order)
        times: dict[bool, tuple[float, float]] = {}
        for url, via_proxy in order:
            times[via_proxy] = await _stream(client, url + "/v1/messages", body)
        if n > warmup:
            added.append((times[True][0] - times[False][0]) * 1000)
            ttfb.append((times[True][1] - times[False][1]) * 1000)
            dumps.append(dumps_ms)
            sizes.append(len(body))
        words = " ".join(f"word{rng.randint(0, 9999)}" for _ in range(rng.randint(5, 40)))
        messages = _turn(base, n, words)
    cpu = _cpu_seconds(stack.proxy.pid) - cpu_began
    return {
        "size": statistics.median(sizes),
        "n": len(added),
        "added_p50": _pct(added, 0.5),
        "added_p99": _pct(added, 0.99),
        "ttfb_p50": _pct(ttfb, 0.5),
        "dumps": statistics.median(dumps),
        "cpu_ms": cpu / len(added) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="off")
    parser.add_argument("--calls", type=int, default=100, help="measured calls per size")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured calls per size first")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    stack = Stack(args.pipeline)
    load = os.getloadavg()
    results: list[dict[str, Any]] = []

    async def run() -> None:
        async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=2)) as c:
            for size in sizes:
                results.append(await _band(c, stack, size, args.calls, args.warmup))

    try:
        asyncio.run(run())
        time.sleep(0.5)  # the last row is written after its response ends
    finally:
        stack.close()
    rows, bad_lines = stack.rows()
    expected = len(sizes) * (args.calls + args.warmup)

    out: list[str] = []
    say = out.append
    say(f"proxy_overhead: one session at a time, pipeline {args.pipeline}, {args.calls} calls "
        f"per size after {args.warmup} warm-up calls, streamed, against LocalServer")  # fmt: skip
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, proxy: {stack.serving}; load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    errors = [r for r in rows if r.get("error") or r.get("status") != 200]
    say(f"ledger: {len(rows)} rows for {expected} proxied calls, {bad_lines} unparsable lines, "
        f"{len(errors)} with an error or non-200 status")  # fmt: skip
    say("")
    say(f"{'request size':>13} {'n':>5} {'added p50':>10} {'added p99':>10} {'TTFB+ p50':>10} "
        f"{'dumps p50':>10} {'p50/dumps':>10} {'target':>9} {'CPU/call':>9}")  # fmt: skip
    for r in results:
        target = max(3 * r["dumps"], 2.0) if r["size"] < 20_000 else 3 * r["dumps"]
        say(f"{r['size'] / 1000:>10.0f} kB {r['n']:>5} {r['added_p50']:>8.2f}ms "
            f"{r['added_p99']:>8.2f}ms {r['ttfb_p50']:>8.2f}ms {r['dumps']:>8.3f}ms "
            f"{r['added_p50'] / r['dumps']:>10.1f} {target:>7.2f}ms "
            f"{r['cpu_ms']:>7.2f}ms")  # fmt: skip
    pipeline_ms = [r["pipeline_ms"] for r in rows if r.get("pipeline_ms") is not None]
    if pipeline_ms:
        say(f"pipeline time in the proxy (ledger pipeline_ms): p50 {_pct(pipeline_ms, 0.5):.2f} "
            f"ms, p99 {_pct(pipeline_ms, 0.99):.2f} ms")  # fmt: skip
    report = "\n".join(out)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")
    return 1 if errors or bad_lines or len(rows) != expected else 0


if __name__ == "__main__":
    raise SystemExit(main())
