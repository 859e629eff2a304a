"""The proxy under load: concurrent streaming sessions, the latency it adds, its memory.

    python benchmarks/proxy_load.py                              # 50 sessions x 40 turns
    python benchmarks/proxy_load.py --sessions 50 --turns 200 --pipeline off --max-seconds 900
    python benchmarks/proxy_load.py --out benchmarks/results/proxy_load.txt

Three processes: a LocalServer (the upstream), ``tidyctx proxy`` (its own process, so its
memory is its own) and this one, which runs ``--sessions`` agent sessions at once (asyncio,
httpx). Each session grows one conversation turn by turn: an assistant tool call, then its
result (mostly 0.2-3 kB, one turn in eight a 20-60 kB log). Every turn is sent twice, as a
stream, once straight to the LocalServer and once through the proxy, in a random order; the
difference of the two times is the latency the proxy adds to that request (both see the same
machine load at that moment). Reported per request-size band: the added latency (p50, p99),
the added time to first byte, and one ``json.dumps`` of the request on this machine (the
yardstick of the targets: p50 added latency at most 3x that, and under 2 ms below 20 kB); the
proxy's resident memory sampled every second; the CPU time each process spent per call; the
machine's load average; and the ledger checked line by line (one row per proxied call, every
row parsed, no error). ``--max-seconds`` bounds the run: no turn starts after it, and the
report says how many turns were done. ``--think`` paces each session as an agent is paced
(the model's answer and the tool's run between two calls); without it every session sends its
next turn the moment the last one ends, and the machine is saturated by design: the added
latency then measures waiting for a CPU more than the proxy's work.

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

# The LocalServer records every request it answers; over thousands of megabyte requests that
# would fill the machine's memory, so the recording is cleared every second (nothing reads it).
UPSTREAM = textwrap.dedent(
    """
    import sys, threading
    from tidyctx.testing import LocalServer
    with LocalServer(cache=False) as server:
        done = threading.Event()
        def forget():
            while not done.wait(1.0):
                server.reset()
        threading.Thread(target=forget, daemon=True).start()
        print(server.port, flush=True)
        sys.stdin.read()
        done.set()
    """
)
SERVING = (
    "import importlib.util as u; "
    "print('uvicorn on ' + ('uvloop' if u.find_spec('uvloop') else 'asyncio') + ' with ' "
    "+ ('httptools' if u.find_spec('httptools') else 'h11'))"
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
    rounds_done: dict[int, list[float]] = field(default_factory=dict)
    """Per round, when each worker finished its conversation of that round (monotonic)."""


def _result_text(rng: random.Random, turn: int) -> str:
    if rng.random() < 1 / 8:
        lines = rng.randint(400, 1_200)
        return "\n".join(
            f"{turn}:{i:05d} INFO worker step {i} ok in {i % 97} ms" for i in range(lines)
        )
    return " ".join(f"word{rng.randint(0, 9999)}" for _ in range(rng.randint(20, 300)))


def _body(messages: list[dict[str, Any]]) -> tuple[bytes, float]:
    """The streamed request of a turn with these messages, and the ms one json.dumps of it
    took (the yardstick of the targets)."""
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "stream": True,
        "system": "You are a build agent.",
        "messages": messages,
    }
    began = time.perf_counter()
    body = json.dumps(request).encode()
    return body, (time.perf_counter() - began) * 1000


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


async def _worker(
    n: int,
    sessions: int,
    rounds: int,
    turns: int,
    direct: str,
    proxied: str,
    results: Results,
    deadline: float,
    think: float,
) -> None:
    """One agent: ``rounds`` conversations, one after another (each a new session)."""
    for r in range(rounds):
        await _session(n + r * sessions, turns, direct, proxied, results, deadline, think)
        results.rounds_done.setdefault(r, []).append(time.monotonic())


async def _session(
    n: int,
    turns: int,
    direct: str,
    proxied: str,
    results: Results,
    deadline: float,
    think: float,
) -> None:
    rng = random.Random(n)
    pause = random.Random(-1 - n)  # its own stream: the conversation is the same at any --think
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"session {n}: build it"}]
    limits = httpx.Limits(max_connections=2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        if think:  # sessions start apart, as agents do
            await asyncio.sleep(pause.uniform(0, think))
        for turn in range(turns):
            if think and turn:  # the model's answer and the agent's tool, between two calls
                await asyncio.sleep(pause.uniform(0.5, 1.5) * think)
            if time.monotonic() > deadline:
                return
            body, dumps_ms = _body(messages)
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


class Stack:
    """A LocalServer and a ``tidyctx proxy`` in front of it, each in its own process."""

    def __init__(self, pipeline: str, memo_mb: int | None = None, store: str = "memory:") -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        env.pop("ANTHROPIC_BASE_URL", None)
        self._tmp = tempfile.TemporaryDirectory()
        self.ledger = Path(self._tmp.name) / "ledger.jsonl"
        if store == "sqlite":  # the proxy's default kind of store, in this run's directory
            store = str(Path(self._tmp.name) / "store.db")
        self.upstream = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.upstream.stdout is not None
        self.direct = f"http://127.0.0.1:{self.upstream.stdout.readline().strip()}"
        self.proxy = subprocess.Popen(
            [sys.executable, "-m", "tidyctx", "proxy", "--port", "0", "--upstream", self.direct,
             "--pipeline", pipeline, "--store", store, "--ledger", str(self.ledger),
             *(["--memo-mb", str(memo_mb)] if memo_mb is not None else [])],
            stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert self.proxy.stderr is not None
        line = self.proxy.stderr.readline()
        match = re.search(r"ANTHROPIC_BASE_URL=(http://\S+)", line)
        if not match:
            self.close()
            raise SystemExit(f"the proxy did not start: {line}")
        self.proxied = match.group(1)
        self.serving = subprocess.check_output([sys.executable, "-c", SERVING], env=env, text=True)
        self.serving = self.serving.strip()

    def close(self) -> None:
        self.proxy.terminate()
        self.proxy.wait(60)
        if self.upstream.stdin is not None:
            self.upstream.stdin.close()
        self.upstream.wait(60)

    def rows(self) -> tuple[list[dict[str, Any]], int]:
        """The ledger's rows and the number of lines that did not parse; removes the ledger."""
        rows = []
        bad_lines = 0
        for text in self.ledger.read_text().splitlines():
            try:
                rows.append(json.loads(text))
            except ValueError:
                bad_lines += 1
        self._tmp.cleanup()
        return rows, bad_lines


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


async def _sample(pid: int, out: list[tuple[float, float, float]], stop: asyncio.Event) -> None:
    """Every second: (seconds into the run, the proxy's RSS in MB, the 1-minute load)."""
    began = time.monotonic()
    while not stop.is_set():
        out.append((time.monotonic() - began, _rss_mb(pid), os.getloadavg()[0]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _rss_at(samples: list[tuple[float, float, float]], at: float) -> float:
    """The RSS sampled nearest to ``at`` seconds into the run."""
    return min(samples, key=lambda s: abs(s[0] - at))[1]


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
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds between a session's turns (0: each turn starts as the last ends)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="conversations each session runs one after another (memory over many sessions)",
    )
    parser.add_argument("--memo-mb", type=int, help="the proxy's --memo-mb (default its own)")
    parser.add_argument(
        "--store",
        default="memory:",
        help="the proxy's --store; sqlite: a SQLite file in the run's temporary directory "
        "(memory: keeps every cut original in the proxy's own memory)",
    )
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()

    stack = Stack(args.pipeline, args.memo_mb, args.store)
    direct, proxied, proxy = stack.direct, stack.proxied, stack.proxy

    results = Results()
    samples: list[tuple[float, float, float]] = []
    cpu: dict[str, float] = {}
    load_began = os.getloadavg()
    rounds_began: list[float] = []

    async def run() -> float:
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(proxy.pid, samples, stop))
        deadline = time.monotonic() + args.max_seconds
        # CPU from here on: the processes' start (imports) is not the calls' work.
        cpu["proxy"] = -_cpu_seconds(proxy.pid)
        cpu["upstream"] = -_cpu_seconds(stack.upstream.pid)
        cpu["client"] = -time.process_time()
        began = time.perf_counter()
        rounds_began.append(time.monotonic())
        await asyncio.gather(
            *(
                _worker(
                    n,
                    args.sessions,
                    args.rounds,
                    args.turns,
                    direct,
                    proxied,
                    results,
                    deadline,
                    args.think,
                )
                for n in range(args.sessions)
            )
        )
        wall = time.perf_counter() - began
        cpu["proxy"] += _cpu_seconds(proxy.pid)
        cpu["upstream"] += _cpu_seconds(stack.upstream.pid)
        cpu["client"] += time.process_time()
        stop.set()
        await sampler
        return wall

    try:
        wall = asyncio.run(run())
        time.sleep(0.5)  # the last rows are written after their response ends
    finally:
        stack.close()
    rows, bad_lines = stack.rows()

    out: list[str] = []
    say = out.append
    planned = args.sessions * args.turns * args.rounds
    pace = (
        f"{args.think:g} s (0.5-1.5x) between a session's turns"
        if args.think
        else "each turn as soon as the last ends"
    )
    rounds = f", {args.rounds} in turn per session slot" if args.rounds > 1 else ""
    memo = f", proxy --memo-mb {args.memo_mb}" if args.memo_mb is not None else ""
    memo += f", store {args.store}"
    say(f"proxy_load: {args.sessions} concurrent streaming sessions x up to {args.turns} turns"
        f"{rounds}, {pace}, pipeline {args.pipeline}{memo}, against LocalServer(cache=False) on "
        f"loopback")  # fmt: skip
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; proxy: {stack.serving}")  # fmt: skip
    loads = [load for _, _, load in samples]
    say(f"load average (1 min): {load_began[0]:.1f} at the start, mean "
        f"{statistics.fmean(loads):.1f} and max {max(loads):.1f} over the run (a shared "
        f"machine)")  # fmt: skip
    stopped = (
        f", stopped at --max-seconds {args.max_seconds:.0f}" if wall >= args.max_seconds else ""
    )
    say(f"wall time {wall:.1f} s; turns done {len(results.samples)} of {planned}{stopped} (each "
        f"sent direct and through the proxy); errors {len(results.errors)}")  # fmt: skip
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
    added_in = [r["added_s"] * 1000 for r in rows if r.get("added_s") is not None]
    if added_in:
        say(f"held in the proxy before going upstream (ledger added_s): p50 "
            f"{_pct(added_in, 0.5):.2f} ms, p99 {_pct(added_in, 0.99):.2f} ms")  # fmt: skip
    if rows:
        calls = len(rows)
        say(f"CPU per proxied call over the run: proxy {cpu['proxy'] / calls * 1000:.2f} ms (all "
            f"its threads), LocalServer {cpu['upstream'] / calls / 2 * 1000:.2f} ms per call it "
            f"answered, this load generator {cpu['client'] / calls * 1000:.2f} ms per "
            f"turn")  # fmt: skip
        timed = [r for r in rows if r.get("ttfb_s") is not None]
        inside = [(r["latency_s"] - r["ttfb_s"]) * 1000 for r in timed]
        say(f"upstream time as the proxy saw it (ledger ttfb_s): p50 "
            f"{_pct([r['ttfb_s'] * 1000 for r in timed], 0.5):.2f} ms; relaying "
            f"after the first byte p50 {_pct(inside, 0.5):.2f} ms")  # fmt: skip
    if samples:
        marks = [
            samples[min(len(samples) - 1, int(q * len(samples)))] for q in (0.2, 0.4, 0.6, 0.8)
        ]
        say(f"proxy RSS: start {samples[0][1]:.0f} MB; at 20/40/60/80% of the run "
            f"{' / '.join(f'{m:.0f}' for _, m, _ in marks)} MB; peak "
            f"{max(m for _, m, _ in samples):.0f} MB, end {samples[-1][1]:.0f} MB "
            f"({len(samples)} samples, one a second)")  # fmt: skip
        if args.rounds > 1 and rounds_began:
            # RSS when the last session of each round ended (every conversation of it done).
            start = rounds_began[0]
            ends = [max(done) - start for _, done in sorted(results.rounds_done.items())]
            at = [_rss_at(samples, end) for end in ends]
            say(f"proxy RSS when each round of conversations had ended: "
                f"{' / '.join(f'{m:.0f}' for m in at)} MB")  # fmt: skip
    report = "\n".join(out)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")
    return 1 if results.errors or bad_lines or len(rows) != results.proxied else 0


if __name__ == "__main__":
    raise SystemExit(main())
