"""Puts and gets per second of each Store: memory, SQLite (unbounded and bounded), Redis.

    python benchmarks/store_speed.py                  # starts its own redis-server if on PATH
    python benchmarks/store_speed.py --redis-url redis://127.0.0.1:6379/0
    python benchmarks/store_speed.py --count 5000 --repeat 5

For each store and value size (1 KB and 100 KB of text), one process puts ``--count`` distinct
values under their :func:`~tidyctx.store.store_key`, then gets each back; every value read is
checked against what was put (the bounded SQLite store must have evicted all but the last 1,000
put, so its gets are a mix of misses and hits). Reported: operations per second and MB/s
(MB = 10^6 bytes of UTF-8), best of ``--repeat`` rounds, each round on a fresh store (a new
SQLite file in a temporary directory, a new Redis key prefix). The SQLite file is on the
temporary directory's file system; Redis is reached over TCP on 127.0.0.1, so a Redis op
includes a round trip.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tidyctx.store import MemoryStore, RedisStore, SQLiteStore, Store, store_key

SIZES = {"1 KB": 1_000, "100 KB": 100_000}


def make_values(size: int, count: int) -> list[str]:
    """``count`` distinct texts of ``size`` ASCII characters, log-like."""
    line = "2024-05-01T12:00:00Z INFO worker-alpha GET /api/orders 200 12ms\n"
    body = (line * (size // len(line) + 1))[:size]
    return [f"{i:08d} " + body[9:] for i in range(count)]


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway redis-server on a free port (no persistence), or None if not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", folder,
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            import redis

            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait()


def measure(make: Callable[[], Store], values: list[str], repeat: int) -> tuple[float, float]:
    """Best seconds for putting all ``values``, and for getting them all back."""
    keys = [store_key(v) for v in values]
    best_put = best_get = float("inf")
    for _ in range(repeat):
        store = make()
        try:
            start = time.perf_counter()
            for key, value in zip(keys, values, strict=True):
                store.put(key, value)
            best_put = min(best_put, time.perf_counter() - start)
            start = time.perf_counter()
            got = [store.get(key) for key in keys]
            best_get = min(best_get, time.perf_counter() - start)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
        # A bounded store keeps the most recently put ``max_items``; the rest read back as None.
        limit = getattr(store, "max_items", None)
        kept = len(values) if limit is None else min(limit, len(values))
        if got != [None] * (len(values) - kept) + values[len(values) - kept :]:
            raise AssertionError(f"{type(store).__name__} did not give back what was put")
    return best_put, best_get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="values per 1 KB round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    args = parser.parse_args()

    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {sys.platform}")
    with tempfile.TemporaryDirectory() as tmp, redis_server() as own_url:
        url = args.redis_url or own_url
        counter = iter(range(1_000_000))

        def sqlite(max_items: int | None) -> Callable[[], Store]:
            return lambda: SQLiteStore(
                os.path.join(tmp, f"s{next(counter)}.db"), max_items=max_items
            )

        stores: dict[str, Callable[[], Store] | None] = {
            "MemoryStore": MemoryStore,
            "SQLiteStore": sqlite(None),
            "SQLiteStore(max_items=1000)": sqlite(1000),
            "RedisStore": (lambda: RedisStore(url, prefix=f"bench:{uuid.uuid4().hex}:"))
            if url
            else None,
        }
        if url:
            import redis

            info = redis.Redis.from_url(url).info("server")
            print(f"Redis server {info['redis_version']} at {url}")
        for label, size in SIZES.items():
            count = args.count if size <= 1_000 else max(1, args.count // 10)
            values = make_values(size, count)
            mb = sum(len(v.encode()) for v in values) / 1e6
            print(f"\n{label} values, {count:,} of them ({mb:.1f} MB), best of {args.repeat}")
            print(f"  {'store':<28} {'puts/s':>10} {'MB/s':>8} {'gets/s':>10} {'MB/s':>8}")
            for name, make in stores.items():
                if make is None:
                    print(f"  {name:<28} skipped: redis-server not found (use --redis-url)")
                    continue
                put_s, get_s = measure(make, values, args.repeat)
                print(
                    f"  {name:<28} {count / put_s:>10,.0f} {mb / put_s:>8.1f}"
                    f" {count / get_s:>10,.0f} {mb / get_s:>8.1f}"
                )
    print("\nMemoryStore keeps references (no copy, no encoding): its MB/s is not a transfer rate.")


if __name__ == "__main__":
    main()
