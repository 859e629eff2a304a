"""The proxy under load: concurrent streaming sessions, the latency it adds, its memory.

    python benchmarks/proxy_load.py                              # 50 sessions x 40 turns
    python benchmarks/proxy_load.py --sessions 50 --turns 200 --pipeline off
    python benchmarks/proxy_load.py --out benchmarks/results/proxy_load.txt

Three processes: a LocalServer (the upstream), ``tidyctx proxy`` (its own process, so its
memory is its own) and this one, which runs ``--sessions`` agent sessions at once (asyncio,
httpx). Each session grows one conversation turn by turn: an assistant tool call, then its
result (mostly 0.2-3 kB, one turn in eight a 20-60 kB log). Every turn is sent twice, as a
stream, once straight to the LocalServer and once through the proxy, in a random order; the
difference of the two times is the latency the proxy adds to that request (both see the same
machine load at that moment). Reported per request-size band: the added latency (p50, p99),
the added time to first byte, and one ``json.dumps`` of the request on this machine (the
issue's yardstick: p50 added latency at most 3x that, and under 2 ms below 20 kB); the proxy's
resident memory sampled every second (after warm-up and at the end); and the ledger checked
line by line (one row per proxied call, every row parsed, no error).

The upstream answers at once, so the added latency is all the proxy's: reading the body,
the pipeline in its worker thread, the upstream connection, relaying the events. With
``--pipeline defaults`` that includes the transforms' own time (order, trim, cache); with
``off`` it is the pure forwarding cost. A busy machine inflates the p99; the p50 holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BANDS = ((0, 20_000), (20_000, 100_000), (100_000, 500_000), (500_000, 10**9))

UPSTREAM = textwrap.dedent(
    """
    import sys, threading
    from tidyctx.testing import LocalServer
    with LocalServer(cache=False) as server:
        print(server.port, flush=True)
        sys.stdin.read()
    """
)


@dataclass
class Sample:
    size: int
    dumps_ms: float
    added_ms: float
    added_ttfb_ms: float


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    proxied: int = 0


def _result_text(rng: random.Random, turn: int) -> str:
    if rng.random() < 1 / 8:
        lines = rng.randint(400, 1_200)
        return "\n".join(
            f"{turn}:{i:05d} INFO worker step {i} ok in {i % 97} ms" for i in range(lines)
        )
    return " ".join(f"word{rng.randint(0, 9999)}" for _ in range(rng.randint(20, 300)))


async def _stream(client: httpx.AsyncClient, url: str, body: bytes) -> tuple[float, float]:
    began = time.perf_counter()
    first = None
    headers = {"content-type": "application/json", "x-api-key": "bench"}
    async with client.stream("POST", url, content=body, headers=headers) as response:
        async for _ in response.aiter_raw():
            if first is None:
                first = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"status {response.status_code}")
    end = time.perf_counter()
    return end - began, (first or end) - began


async def _session(
    n: int, turns: int, direct: str, proxied: str, results: Results, deadline: float
) -> None:
    rng = random.Random(n)
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"session {n}: build it"}]
    limits = httpx.Limits(max_connections=2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        for turn in range(turns):
            if time.monotonic() > deadline:
                return
            request = {
                "model": "claude-sonnet-4-6",
                "max_tokens": 64,
                "stream": True,
                "system": "You are a build agent.",
                "messages": messages,
            }
            began = time.perf_counter()
            body = json.dumps(request).encode()
            dumps_ms = (time.perf_counter() - began) * 1000
            order = [(direct, False), (proxied, True)]
            rng.shuffle(order)
            times: dict[bool, tuple[float, float]] = {}
            try:
                for url, via_proxy in order:
                    times[via_proxy] = await _stream(client, url + "/v1/messages", body)
                    results.proxied += via_proxy
            except Exception as err:
                results.errors.append(f"session {n} turn {turn}: {type(err).__name__}: {err}")
                return
            results.samples.append(
                Sample(
                    size=len(body),
                    dumps_ms=dumps_ms,
                    added_ms=(times[True][0] - times[False][0]) * 1000,
                    added_ttfb_ms=(times[True][1] - times[False][1]) * 1000,
                )
            )
            tool_id = f"toolu_{n}_{turn}"
            messages = [
                *messages,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": tool_id, "name": "bash", "input": {"n": turn}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": tool_id,
                            "content": _result_text(rng, turn),
                        }
                    ],
                },
            ]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


async def _sample_memory(pid: int, out: list[tuple[float, float]], stop: asyncio.Event) -> None:
    began = time.monotonic()
    while not stop.is_set():
        out.append((time.monotonic() - began, _rss_mb(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--pipeline", default="defaults")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop starting turns after")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    env.pop("ANTHROPIC_BASE_URL", None)
    tmp = tempfile.TemporaryDirectory()
    ledger = Path(tmp.name) / "ledger.jsonl"
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert upstream.stdout is not None
    direct = f"http://127.0.0.1:{upstream.stdout.readline().strip()}"
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tidyctx", "proxy", "--port", "0", "--upstream", direct,
         "--pipeline", args.pipeline, "--store", "memory:", "--ledger", str(ledger)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proxy.stderr is not None
    line = proxy.stderr.readline()
    match = re.search(r"ANTHROPIC_BASE_URL=(http://\S+)", line)
    if not match:
        raise SystemExit(f"the proxy did not start: {line}{proxy.stderr.read()}")
    proxied = match.group(1)

    results = Results()
    memory: list[tuple[float, float]] = []
    cpu: list[float] = []

    async def run() -> float:
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_memory(proxy.pid, memory, stop))
        deadline = time.monotonic() + args.max_seconds
        began = time.perf_counter()
        await asyncio.gather(
            *(
                _session(n, args.turns, direct, proxied, results, deadline)
                for n in range(args.sessions)
            )
        )
        wall = time.perf_counter() - began
        cpu.append(_cpu_seconds(proxy.pid))
        stop.set()
        await sampler
        return wall

    try:
        wall = asyncio.run(run())
        time.sleep(0.5)  # the last rows are written after their response ends
    finally:
        proxy.terminate()
        proxy.wait(60)
        upstream.stdin.close()  # type: ignore[union-attr]
        upstream.wait(60)
    rows = []
    bad_lines = 0
    for text in ledger.read_text().splitlines():
        try:
            rows.append(json.loads(text))
        except ValueError:
            bad_lines += 1
    tmp.cleanup()

    out: list[str] = []
    say = out.append
    say(f"proxy_load: {args.sessions} concurrent streaming sessions x up to {args.turns} turns, "
        f"pipeline {args.pipeline}, against LocalServer(cache=False) on loopback")  # fmt: skip
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    say(f"wall time {wall:.1f} s; turns done {len(results.samples)} (each sent direct and "
        f"through the proxy); errors {len(results.errors)}")  # fmt: skip
    for error in results.errors[:5]:
        say(f"  error: {error}")
    failed = [r for r in rows if r.get("error") or r.get("status") != 200]
    say(f"ledger: {len(rows)} rows for {results.proxied} proxied calls, {bad_lines} unparsable "
        f"lines, {len(failed)} rows with an error or non-200 status, "
        f"{sum(1 for r in rows if r.get('fail_open'))} fail-open")  # fmt: skip
    kinds = Counter(str(r.get("error") or r.get("status")) for r in failed)
    for kind, count in kinds.most_common(5):
        say(f"  ledger row: {kind} x {count}")
    say("")
    say(f"{'request size':>16} {'n':>6} {'added p50':>10} {'added p99':>10} "
        f"{'TTFB+ p50':>10} {'TTFB+ p99':>10} {'dumps p50':>10} {'p50/dumps':>10}")  # fmt: skip
    for low, high in BANDS:
        band = [s for s in results.samples if low <= s.size < high]
        if not band:
            continue
        added = [s.added_ms for s in band]
        ttfb = [s.added_ttfb_ms for s in band]
        dumps = statistics.median(s.dumps_ms for s in band)
        label = f"{low // 1000}-{high // 1000} kB" if high < 10**9 else f">{low // 1000} kB"
        p50 = _pct(added, 0.5)
        say(f"{label:>16} {len(band):>6} {p50:>8.2f}ms {_pct(added, 0.99):>8.2f}ms "
            f"{_pct(ttfb, 0.5):>8.2f}ms {_pct(ttfb, 0.99):>8.2f}ms {dumps:>8.3f}ms "
            f"{p50 / dumps if dumps else float('nan'):>10.1f}")  # fmt: skip
    pipeline_ms = [r["pipeline_s"] * 1000 for r in rows if r.get("pipeline_s") is not None]
    if pipeline_ms:
        p50, p99 = _pct(pipeline_ms, 0.5), _pct(pipeline_ms, 0.99)
        say(f"pipeline time in the proxy (ledger pipeline_s): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    if cpu and rows:
        per_call = cpu[0] / len(rows) * 1000
        say(f"proxy CPU: {cpu[0]:.1f} s over the run, {per_call:.2f} ms per call (all its threads)")
        timed = [r for r in rows if r.get("ttfb_s") is not None]
        inside = [(r["latency_s"] - r["ttfb_s"]) * 1000 for r in timed]
        say(f"upstream time as the proxy saw it (ledger ttfb_s): p50 "
            f"{_pct([r['ttfb_s'] * 1000 for r in timed], 0.5):.2f} ms; relaying "
            f"after the first byte p50 {_pct(inside, 0.5):.2f} ms")  # fmt: skip
    if memory:
        warm = [m for t, m in memory if t >= wall * 0.2]
        say(f"proxy RSS: start {memory[0][1]:.0f} MB, after warm-up (20% of the run) "
            f"{warm[0] if warm else float('nan'):.0f} MB, peak {max(m for _, m in memory):.0f} MB, "
            f"end {memory[-1][1]:.0f} MB ({len(memory)} samples)")  # fmt: skip
    report = "\n".join(out)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")
    return 1 if results.errors or bad_lines or len(rows) != results.proxied else 0


if __name__ == "__main__":
    raise SystemExit(main())
