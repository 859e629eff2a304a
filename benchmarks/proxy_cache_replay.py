"""Cache safety of the proxy: per turn, does a request read as much from the prompt cache
through ``tidyctx proxy`` as sent directly?

    python benchmarks/proxy_cache_replay.py [TRACE.json|SESSION.jsonl ...] [--jobs N]
                                            [--pipeline NAME ...] [--out FILE]

Every recorded run benchmarks/replay.py finds (the ``*.json`` runs of $TIDYCTX_TRACES, and
the Claude Code session logs ``*.jsonl`` beside them) is replayed as the agent sent it: the
request for assistant turn t holds system, tools and every message before it, on
``replay.REPLAY_MODEL``. Each turn's request is serialized as the Python SDK sends it
(compact JSON, keys in order) and POSTed over HTTP, non-streaming, with an SDK's headers:

  direct        straight to a LocalServer (its prompt-cache model on)
  PIPELINE      through the proxy's ASGI app (``tidyctx.proxy.create_app``, served by
                uvicorn, ``select_pipeline(PIPELINE)``) to a LocalServer of its own

each for two clients: ``as sent`` (the recorded request, with whatever ``cache_control``
markers it carries: none in the shared runs) and ``auto`` (the same request with the top-level
``cache_control: {"type": "ephemeral"}``, automatic caching). Every route has its own server,
so its own cache. The servers share one clock set to each turn's recorded timestamp before
the turn is sent, so entries expire in the recorded pauses; a run without timestamps has no
pauses (the clock stands still). Each response's ``usage`` gives the turn's cache-read share:
cache_read_input_tokens / (input_tokens + cache_creation_input_tokens +
cache_read_input_tokens).

The condition checked: on every turn, each proxied route's share is at least the best direct
share of that turn (the higher of ``as sent`` and ``auto``). A turn below it is counted, with
whether the proxied request read less than the proxy's previous request had left cached (a
miss: tidyctx.cachesim on the bodies the proxy sent, the model LocalServer runs) and the
transforms that changed it (the proxy's ledger row). A pipeline that trims makes the cached
history shorter, so its share can be lower on a turn that misses nothing; the second condition
is the one that prices: no turn leaves more prompt tokens uncached (input and cache writes)
than the direct route with the fewest. Turns that miss or leave more uncached are listed. Input
cost is priced with tidyctx.pricing on REPLAY_MODEL. A session log whose requests are the
same as an earlier run's (the conversion beside it) is not sent again: its row repeats them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import httpx
import replay

import tidyctx as tc
from tidyctx import cachesim
from tidyctx.proxy import ProxyConfig, RunningProxy, create_app, select_pipeline
from tidyctx.testing import LocalServer

PIPELINES = ("defaults", "cache-only")
CLIENTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "as sent": lambda r: r,
    # Automatic caching: the request asks for it at the top level, and the API places the
    # breakpoint on the last cacheable block (prompt-caching page,
    # https://platform.claude.com/docs/en/build-with-claude/prompt-caching).
    "auto": lambda r: r if "cache_control" in r else {**r, "cache_control": {"type": "ephemeral"}},
}
HEADERS = {
    "content-type": "application/json",
    "accept": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": "replay",
}
EPSILON = 1e-12


def body_bytes(request: dict[str, Any]) -> bytes:
    """The request as the Python SDK sends it: compact JSON, keys in order, UTF-8."""
    return json.dumps(request, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def share(usage: dict[str, Any]) -> float:
    total = (
        usage["input_tokens"]
        + usage["cache_creation_input_tokens"]
        + usage["cache_read_input_tokens"]
    )
    return usage["cache_read_input_tokens"] / total if total else 0.0


class TurnClock:
    """The servers' clock: the recorded time of the turn being sent."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Replayed:
    """One run sent every way: per route (``direct`` or a pipeline, and the client), the usage
    of each turn, the proxy's ledger rows and the bodies the upstream received."""

    usages: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    sent: dict[tuple[str, str], list[Any]] = field(default_factory=dict)


def clock_times(timestamps: Sequence[float | None]) -> list[float]:
    """A time per turn: the recorded one, else the previous turn's (no time passes), and the
    first recorded one for turns before it."""
    first = next((t for t in timestamps if t is not None), 0.0)
    out: list[float] = []
    now = first
    for t in timestamps:
        now = t if t is not None else now
        out.append(now)
    return out


def replay_run(
    requests: Sequence[dict[str, Any]],
    timestamps: Sequence[float | None],
    pipelines: Sequence[str] = PIPELINES,
    clients: Sequence[str] = tuple(CLIENTS),
    keep_bodies: bool = False,
) -> Replayed:
    """Send each turn directly and through a proxy per pipeline, for each client."""
    clock = TurnClock()
    out = Replayed()
    targets: dict[tuple[str, str], str] = {}
    servers: dict[tuple[str, str], LocalServer] = {}
    with ExitStack() as stack:
        for client in clients:
            for route in ("direct", *pipelines):
                server = stack.enter_context(LocalServer(clock=clock))
                servers[route, client] = server
                out.usages[route, client] = []
                if route == "direct":
                    targets[route, client] = server.base_url
                    continue
                rows: list[dict[str, Any]] = []
                out.rows[route, client] = rows
                config = ProxyConfig(
                    upstream=server.base_url,
                    transforms=select_pipeline(route, tc.MemoryStore()),
                    pipeline=route,
                    record=rows.append,
                )
                proxy = stack.enter_context(RunningProxy(create_app(config)))
                targets[route, client] = proxy.base_url
        http = stack.enter_context(httpx.Client(timeout=None, trust_env=False))
        for request, now in zip(requests, clock_times(timestamps), strict=True):
            clock.now = now
            for client in clients:
                body = body_bytes(CLIENTS[client](request))
                for route in ("direct", *pipelines):
                    response = http.post(
                        targets[route, client] + "/v1/messages", content=body, headers=HEADERS
                    )
                    if response.status_code != 200:
                        status = response.status_code
                        raise RuntimeError(f"{route} ({client}): {status}: {response.text[:300]}")
                    out.usages[route, client].append(response.json()["usage"])
        if keep_bodies:
            for key, server in servers.items():
                out.sent[key] = [r.body for r in server.requests]
    return out


@dataclass
class Below:
    turn: int
    direct_share: float
    proxy_share: float
    direct_read: int
    proxy_read: int
    direct_uncached: int
    proxy_uncached: int
    transforms: list[str]
    why: str
    missed: bool
    """The proxied request read less than the proxy's previous request left cached."""
    lower: bool
    """Its share is below the best direct share (else it only left more tokens uncached)."""

    @property
    def worse(self) -> bool:
        return self.proxy_uncached > self.direct_uncached


@dataclass
class RouteResult:
    turns: int
    below: list[Below]
    """The turns below the best direct share, or with more tokens uncached."""
    mean_share: float
    cost: float
    fail_open: int
    more_uncached: int
    """Turns that left more prompt tokens uncached than the best direct route."""


@dataclass
class RunResult:
    name: str
    turns: int
    timed: bool
    pauses: bool
    direct: dict[str, tuple[float, float]]
    """Per client: (mean share, input cost $)."""
    routes: dict[tuple[str, str], RouteResult]
    seconds: float
    same_as: str | None = None


def uncached(usage: dict[str, Any]) -> int:
    """Prompt tokens not read from the cache: billed at the input or the write price."""
    return int(usage["input_tokens"] + usage["cache_creation_input_tokens"])


def misses(bodies: list[Any], times: list[float]) -> list[cachesim.Miss | None]:
    """Per request the proxy sent, why it read less than the proxy's previous request left
    cached (None: it read all of it), from the cache model LocalServer runs."""
    return [c.miss for c in cachesim.calls(bodies, times)]


def analyse(
    name: str,
    requests: Sequence[dict[str, Any]],
    timestamps: Sequence[float | None],
    pipelines: Sequence[str] = PIPELINES,
) -> RunResult:
    began = time.perf_counter()
    replayed = replay_run(requests, timestamps, pipelines, keep_bodies=True)
    times = clock_times(timestamps)
    clients = list(CLIENTS)
    direct = {c: replayed.usages["direct", c] for c in clients}
    # Per turn, the direct usage with the higher share.
    best = [max((direct[c][t] for c in clients), key=share) for t in range(len(requests))]
    routes: dict[tuple[str, str], RouteResult] = {}
    for pipeline in pipelines:
        for client in clients:
            usages = replayed.usages[pipeline, client]
            rows = replayed.rows[pipeline, client]
            below = []
            why: list[cachesim.Miss | None] = []
            more = 0
            for t, usage in enumerate(usages):
                base = best[t]
                lower = share(usage) < share(base) - EPSILON
                worse = uncached(usage) > min(uncached(direct[c][t]) for c in clients)
                more += worse
                if lower or worse:
                    why = why or misses(replayed.sent[pipeline, client], times)
                    miss = why[t]
                    below.append(
                        Below(
                            t,
                            share(base),
                            share(usage),
                            base["cache_read_input_tokens"],
                            usage["cache_read_input_tokens"],
                            uncached(base),
                            uncached(usage),
                            list(rows[t].get("transforms") or []),
                            str(miss).split("\n")[0] if miss else "read all the proxy had cached",
                            miss is not None,
                            lower,
                        )
                    )
            routes[pipeline, client] = RouteResult(
                turns=len(usages),
                below=below,
                mean_share=sum(map(share, usages)) / max(1, len(usages)),
                cost=replay.input_cost(usages),
                fail_open=sum(1 for r in rows if r.get("fail_open")),
                more_uncached=more,
            )
    return RunResult(
        name=name,
        turns=len(requests),
        timed=any(t is not None for t in timestamps),
        pauses=replay.has_pauses(timestamps),
        direct={
            c: (sum(map(share, direct[c])) / max(1, len(requests)), replay.input_cost(direct[c]))
            for c in clients
        },
        routes=routes,
        seconds=time.perf_counter() - began,
    )


def digest(requests: Sequence[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for r in requests:
        h.update(body_bytes(r))
    return h.hexdigest()


def measure(args: tuple[Path, tuple[str, ...]]) -> tuple[Path, RunResult]:
    path, pipelines = args
    run = replay.load(path)
    return path, analyse(path.name, replay.requests_of(run), run.timestamps(), pipelines)


def paths_of(named: Sequence[str]) -> list[Path]:
    """The runs named, else every ``*.json`` run replay.py finds and the session logs beside."""
    paths = replay.trace_paths(named)
    if not named and replay.SHARED.is_dir():
        paths += sorted(replay.SHARED.glob("*.jsonl"))
    return replay.replayable(paths)


def report(results: list[RunResult], pipelines: Sequence[str]) -> list[str]:
    lines: list[str] = []
    clients = list(CLIENTS)
    head = f"{'run':<50}{'turns':>6}{'ts':>6}  " + "".join(f"{'direct ' + c:>18}" for c in clients)
    for pipeline in pipelines:
        head += "".join(f"{pipeline + ' ' + c:>22}" for c in clients)
    lines.append("mean cache-read share per turn, input $ (turns below the best direct share)")
    lines.append(head)
    for r in results:
        timed = ("pause" if r.pauses else "yes") if r.timed else ""
        cells = f"{r.name[:49]:<50}{r.turns:>6}{timed:>6}  "
        cells += "".join(f"{r.direct[c][0]:>8.3f} {r.direct[c][1]:>8.3f}$" for c in clients)
        for pipeline in pipelines:
            for c in clients:
                x = r.routes[pipeline, c]
                count = sum(b.lower for b in x.below)
                cells += f"{x.mean_share:>8.3f} {x.cost:>8.3f}$ ({count:>2})"
        lines.append(cells + (f"  = {r.same_as}" if r.same_as else ""))
    turns = sum(r.turns for r in results)
    lines.append("")
    lines.append(f"all: {len(results)} runs, {turns} turns per route")
    for c in clients:
        mean = sum(r.direct[c][0] * r.turns for r in results) / max(1, turns)
        cost = sum(r.direct[c][1] for r in results)
        lines.append(f"  direct {c:<8}            mean share {mean:.4f}  input ${cost:.3f}")
    for pipeline in pipelines:
        for c in clients:
            xs = [r.routes[pipeline, c] for r in results]
            mean = sum(x.mean_share * x.turns for x in xs) / max(1, turns)
            cost = sum(x.cost for x in xs)
            named = [
                (r.name, b)
                for r in results
                if r.same_as is None
                for b in r.routes[pipeline, c].below
                if b.lower
            ]
            lower = [b for x in xs for b in x.below if b.lower]
            missed = sum(1 for b in lower if b.missed)
            more = sum(x.more_uncached for x in xs)
            fail = sum(x.fail_open for x in xs)
            dips = [b.direct_share - b.proxy_share for b in lower if not b.missed]
            deepest = max(
                ((b.direct_share - b.proxy_share, name, b) for name, b in named if not b.missed),
                default=None,
                key=lambda item: item[0],
            )
            lines.append(
                f"  {pipeline:<10} {c:<8} (proxy)  mean share {mean:.4f}  input ${cost:.3f}  "
                f"failed open: {fail}"
            )
            lines.append(
                f"      turns below the best direct share: {len(lower)}, of which the proxy "
                f"missed what it had cached: {missed}; the others read all of it, their share "
                f"lower by {max(dips, default=0):.3f} at most, {sum(dips) / max(1, len(dips)):.4f}"
                f" on average; turns with more tokens uncached than direct: {more}"
            )
            if deepest is not None:
                _, name, b = deepest
                lines.append(
                    f"      the lowest: {name} turn {b.turn}, share {b.direct_share:.3f} -> "
                    f"{b.proxy_share:.3f}, read {b.direct_read:,} -> {b.proxy_read:,}, uncached "
                    f"{b.direct_uncached:,} -> {b.proxy_uncached:,} (changed by "
                    f"{', '.join(b.transforms) or 'nothing'})"
                )
    listed = [
        (r.name, pipeline, c, b)
        for r in results
        if r.same_as is None
        for (pipeline, c), x in r.routes.items()
        for b in x.below
        if b.missed or b.worse
    ]
    if listed:
        lines.append("")
        lines.append(
            "turns that missed the proxy's own cached prefix or left more tokens uncached than "
            "direct (numbered from 0; direct -> proxied):"
        )
        for name, pipeline, c, b in listed:
            lines.append(
                f"  {name} turn {b.turn} [{pipeline}, {c}]: share {b.direct_share:.3f} -> "
                f"{b.proxy_share:.3f}, read {b.direct_read:,} -> {b.proxy_read:,}, uncached "
                f"{b.direct_uncached:,} -> {b.proxy_uncached:,}; changed by "
                f"{', '.join(b.transforms) or 'nothing'}; {b.why}"
            )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pipeline", action="append", choices=["defaults", "cache-only"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    pipelines = tuple(args.pipeline or PIPELINES)
    started = time.perf_counter()
    paths = paths_of(args.runs)
    if not paths:
        print("no run to replay", file=sys.stderr)
        return 1
    # A session log whose requests equal an earlier run's (its conversion) is not sent again.
    first: dict[str, Path] = {}
    same: dict[Path, Path] = {}
    for path in paths:
        key = digest(replay.requests_of(replay.load(path)))
        if key in first:
            same[path] = first[key]
        else:
            first[key] = path
    todo = [p for p in paths if p not in same]
    done: dict[Path, RunResult] = {}
    with Pool(max(1, min(args.jobs, len(todo)))) as pool:
        for path, result in pool.imap_unordered(measure, [(p, pipelines) for p in todo]):
            done[path] = result
            print(f"  {path.name}: {result.turns} turns, {result.seconds:.0f} s", file=sys.stderr)
    results = []
    for path in paths:
        if path in same:
            twin = done[same[path]]
            results.append(
                RunResult(
                    path.name,
                    twin.turns,
                    twin.timed,
                    twin.pauses,
                    twin.direct,
                    twin.routes,
                    0.0,
                    same_as=same[path].name,
                )
            )
        else:
            results.append(done[path])
    lines = report(results, pipelines)
    lines.append(f"({time.perf_counter() - started:.0f} s)")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
