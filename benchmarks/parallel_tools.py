"""run_tools(): the tool calls of one assistant turn, run at once rather than one by one.

    python benchmarks/parallel_tools.py [--repeat 3] [--out benchmarks/results/parallel_tools.txt]

The turn comes from the real ``anthropic`` SDK: a local Messages API server
(``tidyctx.testing.LocalServer`` on 127.0.0.1) answers with the ``tool_use`` blocks, and the
user message ``run_tools`` returns is sent back through the SDK, which the server checks
(every call answered, in one message). Each case gives the wall time (best and median of
``--repeat`` runs), the time the calls take one after the other (the sum of their
durations), and checks on the results: the ``tool_use`` order, which are ``is_error``.

Cases: 3 tools of 1 s each (``def`` tools in threads; ``async def`` tools on the loop;
mixed); tools finishing in reverse order; one of 3 raising; one stuck past ``timeout``; 4
tools at ``max_concurrency=2``; 50 tools of 1 s; and the overhead of a turn of 3 instant
tools. The tools sleep (``time.sleep``, ``asyncio.sleep``): they stand for I/O (a file, an
HTTP call), which is what threads and tasks overlap; CPU-bound Python tools share the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic

import tidyctx as tc
from tidyctx.testing import LocalServer

MODEL = "claude-sonnet-4-6"


def sleeper(seconds: float, text: str) -> Callable[[dict[str, Any]], str]:
    def tool(arg: dict[str, Any]) -> str:
        time.sleep(seconds)
        return text

    return tool


def async_sleeper(seconds: float, text: str) -> Callable[[dict[str, Any]], Any]:
    async def tool(arg: dict[str, Any]) -> str:
        await asyncio.sleep(seconds)
        return text

    return tool


def raiser(seconds: float) -> Callable[[dict[str, Any]], str]:
    def tool(arg: dict[str, Any]) -> str:
        time.sleep(seconds)
        raise ConnectionError("upstream closed the connection")

    return tool


class Turn:
    """One assistant turn with ``n`` tool calls, from the SDK against a local server."""

    def __init__(self, client: anthropic.Anthropic, server: LocalServer) -> None:
        self.client, self.server = client, server

    def ask(self, names: list[str]) -> anthropic.types.Message:
        self.server.script(
            [{"type": "tool_use", "name": n, "input": {"n": i}} for i, n in enumerate(names)]
        )
        return self.client.messages.create(
            model=MODEL,
            max_tokens=64,
            tools=[
                {"name": n, "description": n, "input_schema": {"type": "object"}}
                for n in sorted(set(names))
            ],
            messages=[{"role": "user", "content": "Look these up."}],
        )

    def answer(self, message: anthropic.types.Message, results: dict[str, Any]) -> str:
        """Send the results back: the server refuses a message that misses a call."""
        self.server.script("Thanks.")
        try:
            self.send(message, results)
        except anthropic.APIStatusError as err:
            self.server.reset()
            return f"no ({err.status_code}: {err.message})"
        return "yes"

    def send(self, message: anthropic.types.Message, results: dict[str, Any]) -> None:
        self.client.messages.create(
            model=MODEL,
            max_tokens=64,
            tools=[
                {"name": b.name, "description": b.name, "input_schema": {"type": "object"}}
                for b in message.content
                if b.type == "tool_use"
            ][:1],
            messages=[
                {"role": "user", "content": "Look these up."},
                {"role": "assistant", "content": message.content},
                results,  # type: ignore[list-item]
            ],
        )


def case(
    turn: Turn,
    label: str,
    tools: dict[str, Any],
    calls: list[str],
    sequential: float,
    repeat: int,
    **options: Any,
) -> list[str]:
    times: list[float] = []
    results: dict[str, Any] = {}
    message = turn.ask(calls)
    for _ in range(repeat):
        start = time.perf_counter()
        if options.pop("use_async", False):
            results = asyncio.run(tc.arun_tools(message, tools, **options))
            options["use_async"] = True
        else:
            results = tc.run_tools(message, tools, **options)
        times.append(time.perf_counter() - start)
    accepted = turn.answer(message, results)
    ids = [b.id for b in message.content if b.type == "tool_use"]
    in_order = [r["tool_use_id"] for r in results["content"]] == ids
    errors = [i + 1 for i, r in enumerate(results["content"]) if r.get("is_error")]
    shown = [
        str(r.get("content", ""))[:32] for r in results["content"][:4]
    ]  # the first results, short
    return [
        f"{label}",
        f"    wall {min(times):.3f} s best, {statistics.median(times):.3f} s median of "
        f"{repeat}; one after the other {sequential:.1f} s; "
        f"order {'kept' if in_order else 'LOST'}; is_error: {errors or 'none'}; "
        f"accepted by the server: {accepted}",
        f"    results: {shown}{' ...' if len(results['content']) > 4 else ''}",
    ]


def overhead(turn: Turn, rounds: int = 200) -> str:
    message = turn.ask(["a", "b", "c"])
    tools = {n: (lambda arg: "ok") for n in ("a", "b", "c")}
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        tc.run_tools(message, tools)
        times.append(time.perf_counter() - start)
    return (
        f"overhead: 3 instant tools, {rounds} turns: {statistics.median(times) * 1e3:.2f} ms "
        f"median per turn (event loop, 3 threads, the result message)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines = [
        "run_tools: one assistant turn's tool calls run at once (SDK against LocalServer)",
        f"python {sys.version.split()[0]}, anthropic {anthropic.__version__}",
        "",
    ]
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        turn = Turn(client, server)
        r = args.repeat
        three = ["lookup_a", "lookup_b", "lookup_c"]
        lines += case(
            turn,
            "3 def tools of 1 s each (threads)",
            {n: sleeper(1.0, f"{n} done") for n in three},
            three,
            3.0,
            r,
        )
        lines += case(
            turn,
            "3 async def tools of 1 s each (arun_tools, on the loop)",
            {n: async_sleeper(1.0, f"{n} done") for n in three},
            three,
            3.0,
            r,
            use_async=True,
        )
        lines += case(
            turn,
            "3 tools of 1 s, 2 def and 1 async def (run_tools)",
            {
                "lookup_a": sleeper(1.0, "a done"),
                "lookup_b": async_sleeper(1.0, "b done"),
                "lookup_c": sleeper(1.0, "c done"),
            },
            three,
            3.0,
            r,
        )
        lines += case(
            turn,
            "3 tools finishing in reverse order (1.0 s, 0.5 s, 0.1 s)",
            {
                "lookup_a": sleeper(1.0, "first call"),
                "lookup_b": sleeper(0.5, "second call"),
                "lookup_c": sleeper(0.1, "third call"),
            },
            three,
            1.6,
            r,
        )
        lines += case(
            turn,
            "3 tools of 1 s, the second raising after 0.5 s",
            {
                "lookup_a": sleeper(1.0, "a done"),
                "lookup_b": raiser(0.5),
                "lookup_c": sleeper(1.0, "c done"),
            },
            three,
            2.5,
            r,
        )
        lines += case(
            turn,
            "3 tools, the third stuck for 5 s, timeout=1.0",
            {
                "lookup_a": sleeper(0.2, "a done"),
                "lookup_b": sleeper(0.2, "b done"),
                "lookup_c": sleeper(5.0, "too late"),
            },
            three,
            5.4,
            r,
            timeout=1.0,
        )
        four = [*three, "lookup_d"]
        lines += case(
            turn,
            "4 tools of 1 s, max_concurrency=2",
            {n: sleeper(1.0, f"{n} done") for n in four},
            four,
            4.0,
            r,
            max_concurrency=2,
        )
        fifty = [f"lookup_{i:02d}" for i in range(50)]
        lines += case(
            turn,
            "50 tools of 1 s each",
            {n: sleeper(1.0, f"{n} done") for n in fifty},
            fifty,
            50.0,
            r,
        )
        lines.append(overhead(turn))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
