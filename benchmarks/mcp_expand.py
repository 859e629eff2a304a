"""What ``tidyctx mcp`` costs an agent: the time from starting the server to its first answer,
and the round trip of one ``tidyctx_expand`` call, over stdio with the official MCP SDK's
client (as Claude Code runs it: a subprocess, JSON-RPC over pipes).

    python benchmarks/mcp_expand.py [--calls 200] [--out benchmarks/results/mcp_expand.txt]

The store is a SQLite file holding one 200,000-character text; calls read pieces of 1,000,
8,000 (the default) and 100,000 (the most one call returns) characters at spread offsets.
Per size: median and 90th percentile of the round trip in the client, ``--calls`` calls.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

import tidyctx as tc
from tidyctx.store import SQLiteStore, store_text

SRC = str(Path(tc.__file__).resolve().parents[1])


async def measure(db: Path, key: str, calls: int) -> tuple[float, dict[int, list[float]]]:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tidyctx", "mcp", "--store", str(db)],
        env={"PYTHONPATH": SRC},
    )
    started = time.perf_counter()
    async with Client(server, mode="legacy") as client:
        await client.list_tools()
        startup = time.perf_counter() - started
        times: dict[int, list[float]] = {}
        for length in (1_000, 8_000, 100_000):
            spent = times.setdefault(length, [])
            for i in range(calls):
                offset = (i * 7_919) % 100_000
                t0 = time.perf_counter()
                result = await client.call_tool(
                    "tidyctx_expand", {"id": key, "offset": offset, "length": length}
                )
                spent.append(time.perf_counter() - t0)
                assert not result.is_error
    return startup, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = "".join(f"{i:06d} a line of a long tool result, é 𝄞\n" for i in range(5_000))[:200_000]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.db"
        with SQLiteStore(db) as store:
            key = store_text(store, text)
        startup, times = anyio.run(measure, db, key, args.calls)
    lines = [
        f"tidyctx mcp over stdio, MCP SDK client; {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}; {args.calls} calls per size",
        f"start to first answer (process start, imports, handshake, tools/list): {startup:.2f} s",
        "piece (characters)   median ms   p90 ms",
    ]
    for length, spent in times.items():
        ms = sorted(t * 1000 for t in spent)
        p90 = ms[int(len(ms) * 0.9) - 1]
        lines.append(f"{length:>18,}   {statistics.median(ms):>9.2f}   {p90:>6.2f}")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.out:
        args.out.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
