"""Per-turn time of ``tc.pipe`` as a conversation grows, beside json.dumps and two peers.

    python benchmarks/speed.py [--sizes 10,100,1000,5000] [--no-peers] [--no-traces]
                               [--profile results/speed_profile.txt]

The pipeline is the recommended one: ``order(), slice_code(), trim(max_tokens=700, head=0.6,
slack=0.5), summarize(client), cache()``, its summary calls answered by
:class:`tidyctx.testing.LocalServer` and their time (measured at the HTTP transport) left out.

The conversation is synthetic and deterministic (:func:`conversation`): a coding agent's tool
loop with a Claude Code-sized system prompt and tool list, file reads, test and build logs,
grep hits and JSON API answers, most results a few kB and one in a few hundred up to 1 MB.
For each size (messages in the request):

- **warm**: the previous turn (two messages shorter) was processed by the same process, as
  when an agent calls ``pipe`` before each API call; the median of a few such turns;
- **warm, parsed**: the same, with the request parsed from JSON afresh each turn (a proxy
  that receives every request as bytes; parsing left out of the time);
- **cold**: a fresh process sees the conversation first at that length;
- **dumps**: one ``json.dumps`` of the same request, the yardstick;
- **peak**: the memory the cold ``pipe`` allocates at its peak (tracemalloc, in another fresh
  process, untimed); **memo**:
  the bytes the memo holds after the warm turns (``tc.memo_stats()``).

The growth exponent is the slope of log(time) against log(messages) fitted over the sizes
from 100 up. Beside them, the floors (:func:`floors`): tiktoken over every text of the
request, one exact walk of its messages, and ``==`` against a private copy. Peers, on the
same requests: LangChain v1's middleware stack
(``SummarizationMiddleware`` + ``ContextEditingMiddleware`` + ``AnthropicPromptCachingMiddleware``
in ``create_agent``, with a ChatAnthropic whose model call returns at once) and Headroom's
``compress()`` where it is installed (``--headroom-python``, a separate interpreter). Then the
recorded runs (``replay.SHARED``): each replayed turn by turn in one process, the median of
its first ten turns against its last ten. Method and results: docs/benchmarks.md#speed.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import io
import json
import math
import os
import pstats
import random
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import replay

import tidyctx as tc
from tidyctx.testing import LocalServer
from tidyctx.traces import load_run

HERE = Path(__file__).resolve().parent
_clock = time.process_time
"""Every time here is CPU time of the process (``time.process_time``), so that other work on
a shared machine does not count; the local server's CPU during a summary call is left out
with the call."""
MODEL = "claude-sonnet-4-6"
SIZES = (10, 100, 1_000, 5_000)
SEED = 17

# ---------------------------------------------------------------------------- the conversation

_WORDS = [
    "config",
    "parser",
    "request",
    "handler",
    "session",
    "cache",
    "token",
    "stream",
    "buffer",
    "record",
    "schema",
    "index",
    "worker",
    "queue",
    "client",
    "server",
    "route",
    "model",
    "view",
    "batch",
    "event",
    "state",
    "retry",
    "limit",
    "offset",
    "payload",
    "header",
    "status",
    "result",
    "value",
    "entry",
    "table",
    "column",
    "filter",
    "order",
    "group",
    "merge",
]
_TOOLS = ("Read", "Bash", "Grep", "Edit", "WebFetch", "Glob", "Write", "TodoWrite")


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}"


def _path(rng: random.Random) -> str:
    return f"src/{rng.choice(_WORDS)}/{_name(rng)}.py"


def _fill(rng: random.Random, size: int, line: Callable[[int], str]) -> str:
    out: list[str] = []
    n = 0
    k = 0
    while n < size:
        k += 1
        text = line(k)
        out.append(text)
        n += len(text) + 1
    return "\n".join(out)


def _source(rng: random.Random, size: int) -> str:
    def line(k: int) -> str:
        r = rng.random()
        if r < 0.12:
            body = f"def {_name(rng)}(self, {rng.choice(_WORDS)}, {rng.choice(_WORDS)}=None):"
        elif r < 0.16:
            body = f"class {rng.choice(_WORDS).title()}{rng.choice(_WORDS).title()}:"
        elif r < 0.25:
            body = ""
        elif r < 0.35:
            body = f"    return {_name(rng)}({rng.choice(_WORDS)}, {rng.randint(0, 9999)})"
        else:
            body = (
                f"        {_name(rng)} = self.{_name(rng)}."
                f"{rng.choice(_WORDS)}({rng.randint(0, 99)})"
            )
        return f"{k:>6}\t{body}"

    return _fill(rng, size, line)


def _log(rng: random.Random, size: int) -> str:
    def line(k: int) -> str:
        r = rng.random()
        if r < 0.6:
            return (
                f"tests/test_{rng.choice(_WORDS)}.py::test_{_name(rng)} PASSED"
                f"{'':<8}[{k % 100:>3}%]"
            )
        if r < 0.85:
            return (
                f"Downloading {rng.choice(_WORDS)}-{rng.randint(1, 9)}.{rng.randint(0, 30)}"
                f".whl ({rng.randint(10, 900)} kB)"
            )
        if r < 0.97:
            return (
                f"  {_path(rng)}:{rng.randint(1, 900)}: "
                f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} ok"
            )
        return (
            f"ERROR tests/test_{rng.choice(_WORDS)}.py::test_{_name(rng)} - AssertionError: "
            f"{rng.randint(0, 999)} != {rng.randint(0, 999)}"
        )

    return _fill(rng, size, line)


def _grep(rng: random.Random, size: int) -> str:
    return _fill(
        rng,
        size,
        lambda k: f"{_path(rng)}:{rng.randint(1, 2000)}:    {_name(rng)} = {_name(rng)}(...)",
    )


def _records(rng: random.Random, size: int) -> str:
    rows: list[dict[str, Any]] = []
    n = 2
    while n < size:
        row = {
            "id": rng.randint(1, 10**6),
            "name": _name(rng),
            "status": rng.choice(("active", "pending", "closed")),
            "total": round(rng.random() * 1000, 2),
            "tags": [rng.choice(_WORDS) for _ in range(3)],
        }
        rows.append(row)
        n += len(json.dumps(row)) + 2
    text = json.dumps({"count": len(rows), "items": rows}, indent=1)
    while len(text) > size and len(rows) > 1:  # indented, it came out longer: drop rows
        rows = rows[: len(rows) * 9 // 10]
        text = json.dumps({"count": len(rows), "items": rows}, indent=1)
    return text


def _result(rng: random.Random, tool: str, k: int) -> str:
    # Most results are a few kB (lognormal); one in about 400 is a 1 MB log or JSON answer.
    if k % 400 == 399:
        size = 1_000_000
        return _log(rng, size) if k % 800 == 399 else _records(rng, size)
    size = min(1_000_000, int(rng.lognormvariate(math.log(2_500), 1.0)))
    if tool in ("Read", "Write"):
        return _source(rng, size)
    if tool == "Bash":
        return _log(rng, size)
    if tool in ("Grep", "Glob"):
        return _grep(rng, size)
    if tool == "WebFetch":
        return _records(rng, size)
    return f"The file {_path(rng)} has been updated. Here's the result of running `cat -n`:\n" + (
        _source(rng, min(size, 1_500))
    )


def _input(rng: random.Random, tool: str) -> dict[str, Any]:
    if tool in ("Read", "Write", "Edit"):
        args: dict[str, Any] = {"file_path": "/repo/" + _path(rng)}
        if tool == "Edit":
            args |= {"old_string": _name(rng), "new_string": _name(rng)}
        return args
    if tool == "Bash":
        return {"command": f"pytest -q tests/test_{rng.choice(_WORDS)}.py -k {_name(rng)}"}
    if tool in ("Grep", "Glob"):
        return {"pattern": _name(rng), "path": "src"}
    if tool == "WebFetch":
        return {"url": f"https://api.example.com/v1/{rng.choice(_WORDS)}?page={rng.randint(1, 9)}"}
    return {"todos": [{"content": _name(rng), "status": "pending"}]}


def conversation(messages: int, seed: int = SEED) -> dict[str, Any]:
    """A request of ``messages`` messages (the largest odd count not over it, so that it ends
    with a user message): a coding agent's tool loop, deterministic for a seed."""
    rng = random.Random(seed)
    system = "\n".join(
        f"- {rng.choice(_WORDS).title()} {' '.join(rng.choice(_WORDS) for _ in range(14))}."
        for _ in range(120)
    )
    tools = [
        {
            "name": name,
            "description": " ".join(rng.choice(_WORDS) for _ in range(150)),
            "input_schema": {
                "type": "object",
                "properties": {
                    f"{w}_{i}": {"type": "string", "description": " ".join(rng.sample(_WORDS, 8))}
                    for i, w in enumerate(rng.sample(_WORDS, 4))
                },
                "required": [],
            },
        }
        for name in _TOOLS
    ]
    out: list[dict[str, Any]] = [
        {"role": "user", "content": f"Fix the failing test in {_path(rng)} and run the suite."}
    ]
    k = 0
    while len(out) < messages:
        if rng.random() < 0.05 and out[-1]["role"] == "user":
            # A text reply, and the user's next instruction.
            out.append(
                {"role": "assistant", "content": [{"type": "text", "text": "Done. " + _name(rng)}]}
            )
            out.append({"role": "user", "content": f"Now look at {_path(rng)} and {_name(rng)}."})
            continue
        calls = []
        for _ in range(1 if rng.random() < 0.8 else 2):
            tool = rng.choice(_TOOLS)
            calls.append((f"toolu_{k:06d}", tool, _input(rng, tool), _result(rng, tool, k)))
            k += 1
        text = f"Let me check {_name(rng)} in {_path(rng)}."
        out.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": text},
                    *(
                        {"type": "tool_use", "id": cid, "name": tool, "input": args}
                        for cid, tool, args, _ in calls
                    ),
                ],
            }
        )
        out.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": cid, "content": result}
                    for cid, _, _, result in calls
                ],
            }
        )
    n = messages if messages % 2 else messages - 1
    return {
        "model": MODEL,
        "max_tokens": 4096,
        "system": system,
        "tools": tools,
        "messages": out[:n],
    }


def request_at(full: dict[str, Any], messages: int) -> dict[str, Any]:
    """The request of the first ``messages`` messages (odd: it ends with a user message)."""
    n = messages if messages % 2 else messages - 1
    while n > 1 and full["messages"][n - 1]["role"] != "user":
        n -= 2
    return {**full, "messages": full["messages"][:n]}


# ---------------------------------------------------------------------------- timing pipe


class _TimedTransport(httpx2.BaseTransport):
    """The HTTP transport of the summary client, adding up the time its calls take."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.seconds = 0.0
        self.calls = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        start = _clock()
        response = self.inner.handle_request(request)
        response.read()
        with self.lock:
            self.seconds += _clock() - start
            self.calls += 1
        return response

    def close(self) -> None:
        self.inner.close()


class Pipeline:
    """The recommended pipeline, its summary client talking to a LocalServer."""

    def __init__(self) -> None:
        self.server = LocalServer()
        self.server.start()
        self.transport = _TimedTransport()
        self.client = anthropic.Anthropic(
            base_url=self.server.base_url,
            api_key="offline",
            max_retries=0,
            http_client=httpx2.Client(transport=self.transport),
        )
        self.transforms = (
            tc.order(),
            tc.slice_code(),
            tc.trim(max_tokens=700, head=0.6, slack=0.5),
            tc.summarize(self.client),
            tc.cache(),
        )

    def run(self, request: Any) -> float:
        """Seconds ``pipe`` took on ``request``, summary calls left out."""
        before = self.transport.seconds
        gc.collect()
        start = _clock()
        tc.pipe(request, *self.transforms)
        took = _clock() - start
        return took - (self.transport.seconds - before)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def dumps_seconds(request: Any, repeat: int = 5) -> float:
    best = math.inf
    for _ in range(repeat):
        start = _clock()
        json.dumps(request)
        best = min(best, _clock() - start)
    return best


def memo_bytes() -> int | None:
    stats = getattr(tc, "memo_stats", None)
    return None if stats is None else int(stats().bytes)


def warm(pipeline: Pipeline, full: dict[str, Any], size: int, turns: int, parsed: bool) -> float:
    """Median seconds of ``turns`` turns ending at ``size`` messages, each after the one before
    it in the same process (the first of them after its own previous turn)."""
    times: list[float] = []
    sizes = [size - 2 * k for k in range(turns, -1, -1) if size - 2 * k >= 1]
    for k, n in enumerate(sizes):
        request = request_at(full, n)
        if parsed:
            request = json.loads(json.dumps(request))
        took = pipeline.run(request)
        if k:
            times.append(took)
    return statistics.median(times) if times else math.nan


def cold(size: int) -> dict[str, float]:
    """Time of the first ``pipe`` of a fresh process on the request at ``size``, and (in
    another fresh process, traced, so not timed) the peak memory it allocates."""
    result: dict[str, float] = {}
    for flag in ("--cold", "--cold-memory"):
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), flag, str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return result


def _cold_child(size: int, memory: bool) -> None:
    full = conversation(size)
    request = request_at(full, size)
    del full
    pipeline = Pipeline()
    json.dumps(request)
    gc.collect()
    if not memory:
        print(json.dumps({"seconds": pipeline.run(request)}))
        pipeline.close()
        return
    tracemalloc.start()
    pipeline.run(request)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pipeline.close()
    print(json.dumps({"peak_mb": peak / 1e6}))


def floors(request: dict[str, Any]) -> dict[str, float]:
    """What bounds the figures from below, on one request (best of 3, CPU seconds):

    - ``tokenize``: tiktoken's cl100k encoding of every text of the request once, what a cold
      run cannot avoid (every block's tokens are counted to place budgets and breakpoints);
    - ``scan``: one walk of the messages that tells an edited history from an unchanged one
      (:func:`tidyctx._memo.content_key` of each message, exact to the byte: what any
      incremental path has to pay before it may trust what it remembers);
    - ``compare``: ``==`` of the messages against a private copy (C speed, but not exact:
      ``1 == 1.0 == True`` and dicts equal in any key order, so it cannot stand alone).
    """
    from tidyctx._memo import content_key
    from tidyctx.tokens import get_encoding

    encode = get_encoding().encode
    texts: list[str] = []
    stack: list[Any] = [request]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    messages = request["messages"]
    private = copy.deepcopy(messages)

    def best(run: Callable[[], Any]) -> float:
        times = []
        for _ in range(3):
            start = _clock()
            run()
            times.append(_clock() - start)
        return min(times)

    return {
        "tokenize": best(lambda: [encode(t, disallowed_special=()) for t in texts]),
        "scan": best(lambda: [content_key(m) for m in messages]),
        "compare": best(lambda: private == messages),
    }


def exponent(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of log(seconds) against log(messages)."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(max(t, 1e-9)) for _, t in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


# ---------------------------------------------------------------------------- peers


class LangChainStack:
    """LangChain v1's middleware stack around a ChatAnthropic whose model call returns at once.

    The same conversation is handed to ``create_agent`` as the LangChain messages an agent's
    state would hold (converted once per request, outside the timing, by the peer module
    ``peers.langchain_caching``); the time is that of ``agent.invoke``, less the two fake
    model calls (the agent's and, when it fires, the summary's).
    """

    def __init__(self, full: dict[str, Any]) -> None:
        from langchain.agents import create_agent
        from langchain.agents.middleware import (
            ClearToolUsesEdit,
            ContextEditingMiddleware,
            SummarizationMiddleware,
        )
        from langchain_anthropic import ChatAnthropic
        from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
        from langchain_core.messages import AIMessage
        from langchain_core.outputs import ChatGeneration, ChatResult
        from langchain_core.tools import StructuredTool
        from pydantic import SecretStr

        stack = self
        self.model_seconds = 0.0

        class Instant(ChatAnthropic):
            def _generate(
                self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
            ) -> Any:
                start = _clock()
                out = ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])
                stack.model_seconds += _clock() - start
                return out

        def model() -> Any:
            return Instant(model_name=MODEL, api_key=SecretStr("offline"), max_retries=0)

        def not_run(**_: Any) -> str:
            raise RuntimeError("never executed")

        tools = [
            StructuredTool(
                name=t["name"],
                description=t["description"],
                args_schema=t["input_schema"],
                func=not_run,
            )
            for t in full["tools"]
        ]
        self.agent = create_agent(
            model(),
            tools=tools,
            system_prompt=full["system"],
            middleware=[
                # The same thresholds as the tidyctx pipeline's defaults: summarize past 30k
                # tokens; clear all but the last 3 tool results past 100k.
                SummarizationMiddleware(model(), trigger=("tokens", 30_000), keep=("messages", 12)),
                ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger=100_000, keep=3)]),
                AnthropicPromptCachingMiddleware(ttl="5m", unsupported_model_behavior="raise"),
            ],
        )

    @staticmethod
    def messages(request: dict[str, Any]) -> list[Any]:
        sys.path.insert(0, str(HERE / "peers"))
        from langchain_caching import _to_langchain

        return _to_langchain(request["messages"], MODEL)

    def run(self, messages: list[Any]) -> float:
        from langsmith.run_helpers import tracing_context

        before = self.model_seconds
        gc.collect()
        with tracing_context(enabled=False):
            start = _clock()
            self.agent.invoke({"messages": messages})
            took = _clock() - start
        return took - (self.model_seconds - before)


def langchain_times(full: dict[str, Any], size: int, turns: int) -> tuple[float, float]:
    """(cold, warm) seconds of the LangChain stack at ``size`` messages, in this process: cold
    is its first call here on a fresh stack."""
    sizes = [size - 2 * k for k in range(turns, -1, -1) if size - 2 * k >= 1]
    converted = [LangChainStack.messages(request_at(full, n)) for n in sizes]
    stack = LangChainStack(full)
    first = stack.run(LangChainStack.messages(request_at(full, size)))
    stack = LangChainStack(full)
    times = [stack.run(m) for m in converted]
    return first, statistics.median(times[1:]) if len(times) > 1 else times[0]


_HEADROOM_CHILD = r"""
import json, sys, time, statistics
from headroom import compress
size, turns = int(sys.argv[1]), int(sys.argv[2])
requests = json.load(sys.stdin)
first = None
times = []
for k, request in enumerate(requests):
    start = time.process_time()
    compress(request["messages"], model=request["model"])
    took = time.process_time() - start
    if first is None:
        first = took
    elif k >= 2:  # k = 1 is the previous turn, which warms it
        times.append(took)
print(json.dumps({"cold": first, "warm": statistics.median(times) if times else first}))
"""


def headroom_times(
    python: str, full: dict[str, Any], size: int, turns: int
) -> tuple[float, float] | str:
    sizes = [size - 2 * k for k in range(turns, -1, -1) if size - 2 * k >= 1]
    # The request at ``size`` first, cold; then the warm run of turns up to it.
    requests = [request_at(full, size)] + [request_at(full, n) for n in sizes]
    done = subprocess.run(
        [python, "-c", _HEADROOM_CHILD, str(size), str(turns)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return float(out["cold"]), float(out["warm"])


# ---------------------------------------------------------------------------- recorded runs


def traces(paths: Sequence[Path]) -> list[str]:
    lines = [
        f"{'trace':<44}{'msgs':>6}{'MB':>7}{'first10 ms':>12}{'last10 ms':>11}{'dumps ms':>10}"
        f"{'x dumps':>9}{'cold ms/MB':>12}"
    ]
    for path in paths:
        run = load_run(path)
        requests = replay.requests_of(run)
        if len(requests) < 20:
            continue
        pipeline = Pipeline()
        times = [pipeline.run(r) for r in requests]
        first, last = statistics.median(times[:10]), statistics.median(times[-10:])
        final = requests[-1]
        mb = len(json.dumps(final)) / 1e6
        dumps = dumps_seconds(final)
        clear = getattr(tc, "clear_memo", None)
        if clear is not None:
            clear()
        fresh = Pipeline()
        cold_s = fresh.run(final)
        fresh.close()
        pipeline.close()
        lines.append(
            f"{path.stem[:43]:<44}{len(final['messages']):>6}{mb:>7.2f}{first * 1e3:>12.1f}"
            f"{last * 1e3:>11.1f}{dumps * 1e3:>10.2f}{last / dumps:>9.1f}{cold_s * 1e3 / mb:>12.1f}"
        )
    return lines


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--turns", type=int, default=5, help="warm turns timed per size")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-traces", action="store_true")
    parser.add_argument("--headroom-python", default=os.environ.get("HEADROOM_PYTHON", ""))
    parser.add_argument("--profile", default="", help="write a profile of the largest case here")
    parser.add_argument("--cold", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cold-memory", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold or args.cold_memory:
        _cold_child(args.cold or args.cold_memory, memory=bool(args.cold_memory))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    full = conversation(max(sizes))
    pipeline = Pipeline()
    rows: list[dict[str, Any]] = []
    for size in sizes:
        request = request_at(full, size)
        turns = args.turns if size < 5_000 else max(2, args.turns // 2)
        row: dict[str, Any] = {
            "size": len(request["messages"]),
            "mb": len(json.dumps(request)) / 1e6,
            "dumps": dumps_seconds(request),
            "warm": warm(pipeline, full, size, turns, parsed=False),
            "parsed": warm(pipeline, full, size, turns, parsed=True),
            "memo": memo_bytes(),
            "floors": floors(request),
        }
        row.update(cold(size))
        if not args.no_peers:
            row["lc_cold"], row["lc_warm"] = langchain_times(full, size, turns)
            if args.headroom_python:
                row["headroom"] = headroom_times(args.headroom_python, full, size, turns)
        rows.append(row)
        print(f"(done {size})", file=sys.stderr, flush=True)
    if args.profile:
        largest = request_at(full, max(sizes))
        pipeline.run(request_at(full, max(sizes) - 2))
        profiler = cProfile.Profile()
        profiler.enable()
        pipeline.run(largest)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(45)
        Path(args.profile).write_text(
            f"warm pipe at {len(largest['messages'])} messages, cProfile, by cumulative time\n"
            + "\n".join(line.rstrip() for line in text.getvalue().splitlines()).replace(
                str(Path(tc.__file__).resolve().parents[1]), "src"
            )
            + "\n"
        )
    pipeline.close()
    print(report(rows))
    if not args.no_traces:
        paths = replay.trace_paths([])
        print()
        print("recorded runs, replayed turn by turn in one process (warm); cold: memo cleared")
        print("\n".join(traces(paths)))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "tidyctx pipe: order, slice_code, trim(max_tokens=700, head=0.6, slack=0.5), "
        "summarize (local server, calls not timed), cache",
        f"{'messages':>9}{'MB':>7}{'dumps ms':>10}{'warm ms':>9}{'x dumps':>8}{'parsed ms':>10}"
        f"{'cold ms':>10}{'cold ms/MB':>11}{'peak MB':>9}{'memo MB':>9}",
    ]
    for r in rows:
        memo = "-" if r["memo"] is None else f"{r['memo'] / 1e6:.1f}"
        lines.append(
            f"{r['size']:>9,}{r['mb']:>7.2f}{r['dumps'] * 1e3:>10.2f}{_ms(r['warm']):>9}"
            f"{r['warm'] / r['dumps']:>8.1f}{_ms(r['parsed']):>10}{_ms(r['seconds']):>10}"
            f"{r['seconds'] * 1e3 / r['mb']:>11.1f}{r['peak_mb']:>9.1f}{memo:>9}"
        )
    fit = [(r["size"], r["warm"]) for r in rows if r["size"] >= 99]
    if len(fit) >= 2:
        lines.append(
            f"growth exponent of warm time, {fit[0][0]:,} to {fit[-1][0]:,} messages: "
            f"{exponent(fit):.2f}"
        )
    lines += [
        "",
        "floors on the same requests: tiktoken over every text once (a cold run counts each "
        "block), one exact walk of the messages (content keys), == against a private copy",
        f"{'messages':>9}{'tokenize ms':>13}{'ms/MB':>8}{'scan ms':>9}{'x dumps':>8}"
        f"{'== ms':>8}{'x dumps':>8}",
    ]
    for r in rows:
        f = r["floors"]
        lines.append(
            f"{r['size']:>9,}{_ms(f['tokenize']):>13}{f['tokenize'] * 1e3 / r['mb']:>8.0f}"
            f"{_ms(f['scan']):>9}{f['scan'] / r['dumps']:>8.2f}{f['compare'] * 1e3:>8.2f}"
            f"{f['compare'] / r['dumps']:>8.2f}"
        )
    scan = [(r["size"], r["floors"]["scan"]) for r in rows if r["size"] >= 99]
    if len(scan) >= 2:
        lines.append(f"growth exponent of the exact walk alone: {exponent(scan):.2f}")
    if any("lc_warm" in r for r in rows):
        lines += ["", "peers on the same requests (ratio: peer time / tidyctx time)"]
        lines.append(
            f"{'messages':>9}{'LC cold ms':>12}{'LC warm ms':>12}{'LC/tidyctx warm':>17}"
            f"{'Headroom cold ms':>18}{'Headroom warm ms':>18}{'HR/tidyctx warm':>17}"
        )
        for r in rows:
            hr = r.get("headroom")
            if isinstance(hr, tuple):
                hr_text = f"{_ms(hr[0]):>18}{_ms(hr[1]):>18}{hr[1] / r['warm']:>17.2f}"
            else:
                hr_text = f"{'(' + (hr or 'not run') + ')':>53}"
            lines.append(
                f"{r['size']:>9,}{_ms(r['lc_cold']):>12}{_ms(r['lc_warm']):>12}"
                f"{r['lc_warm'] / r['warm']:>17.2f}{hr_text}"
            )
        lc = [(r["size"], r["lc_warm"]) for r in rows if r["size"] >= 99]
        if len(lc) >= 2:
            lines.append(f"growth exponent, LangChain stack: {exponent(lc):.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
