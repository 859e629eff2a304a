"""What it costs to renew, on every call, the store entries a request's markers name.

    python benchmarks/store_refresh.py                 # starts its own redis-server if on PATH
    python benchmarks/store_refresh.py --redis-url redis://127.0.0.1:6379/0

A transform renews every entry its output names, on every call (tidyctx.transforms._recover):
the store's ``touch`` (MemoryStore: made the newest; SQLiteStore: its ``seq`` bumped, or with no
``max_items`` only looked up; RedisStore: ``EXPIRE`` with a TTL, else ``TOUCH``), never the value
sent again, all of a request's ids at once with ``touch_many`` (SQLite: one transaction; Redis:
one pipelined round trip). This measures, per call, renewing the entries of a request that
names 10, 100 and 1,000 texts of 20 KB each: one ``touch`` per id, one ``touch_many``, and, for
comparison, putting every value again; best of ``--repeat`` rounds. Then the whole check
(``settle``: every tool block of the request scanned for ids, each renewed) on the last turn of
each bundled trace after ``trim``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from store_speed import make_values, redis_server

import tidyctx as tc
from tidyctx.store import (
    MemoryStore,
    RedisStore,
    SQLiteStore,
    Store,
    refresh,
    refresh_all,
    store_key,
)
from tidyctx.traces import load_run
from tidyctx.transforms._recover import block_ids, settle

COUNTS = (10, 100, 1_000)
SIZE = 20_000
ROOT = Path(__file__).resolve().parents[1]


def best(repeat: int, run: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def stores(folder: str, redis_url: str | None) -> list[tuple[str, Callable[[], Store]]]:
    made: list[tuple[str, Callable[[], Store]]] = [
        ("MemoryStore", MemoryStore),
        ("SQLiteStore", lambda: SQLiteStore(os.path.join(folder, f"{uuid.uuid4().hex}.db"))),
        (
            "SQLiteStore(max_items=5000)",
            lambda: SQLiteStore(os.path.join(folder, f"{uuid.uuid4().hex}.db"), max_items=5000),
        ),
    ]
    if redis_url is not None:
        made.append(
            (
                "RedisStore(ttl_seconds=3600)",
                lambda: RedisStore(
                    redis_url, prefix=f"bench-{uuid.uuid4().hex}:", ttl_seconds=3600
                ),
            )
        )
    return made


def block_ids_of(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    return [k for b in content for k in block_ids(b)] if isinstance(content, list) else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {sys.platform}")
    with redis_server() as started, tempfile.TemporaryDirectory() as folder:
        url = args.redis_url or started
        print(f"Redis at {url}" if url else "Redis: redis-server not found, skipped")
        print(f"\nrenewing every entry a request names, per call ({SIZE // 1000} KB values)")
        print(
            f"  {'store':30}{'texts':>7}{'touch ms':>11}{'touch_many ms':>15}{'put again ms':>14}"
        )
        for name, make in stores(folder, url):
            for count in COUNTS:
                store = make()
                values = make_values(SIZE, count)
                keys = [store_key(v) for v in values]
                for key, value in zip(keys, values, strict=True):
                    store.put(key, value)

                def touch_all(store: Store = store, keys: list[str] = keys) -> None:
                    for key in keys:
                        assert refresh(store, key)

                def put_all(
                    store: Store = store, keys: list[str] = keys, values: list[str] = values
                ) -> None:
                    for key, value in zip(keys, values, strict=True):
                        store.put(key, value)

                def touch_batch(store: Store = store, keys: list[str] = keys) -> None:
                    assert all(refresh_all(store, keys))

                touch = best(args.repeat, touch_all)
                batch = best(args.repeat, touch_batch)
                put = best(args.repeat, put_all)
                print(
                    f"  {name:30}{count:>7,}{touch * 1e3:>11.2f}{batch * 1e3:>15.2f}"
                    f"{put * 1e3:>14.2f}"
                )
                close = getattr(store, "close", None)
                if callable(close):
                    close()
        print("\nsettle() after trim(max_tokens=700) on the last turn of each bundled trace")
        for path in sorted((ROOT / "data" / "traces").glob("*.json")):
            run = load_run(path)
            request = {**run.turns[-1].request, "model": "claude-sonnet-4-6"}
            store = MemoryStore()
            out = tc.trim(max_tokens=700, store=store)(request)
            named = len({k for b in out["messages"] for k in block_ids_of(b)})

            def check(
                store: Store = store, request: dict[str, Any] = request, out: dict[str, Any] = out
            ) -> None:
                settle(store, request, out, what="bench")

            took = best(args.repeat, check)
            print(f"  {path.stem[:44]:44} {named:>4} ids  {took * 1e3:7.2f} ms per call")


if __name__ == "__main__":
    main()
