"""The proxy's live memory over rounds of conversations, in process, and what grew.

    python benchmarks/proxy_memory.py                      # 5 at a time x 50 turns, 4 rounds
    python benchmarks/proxy_memory.py --sessions 10 --turns 60 --rounds 5 --memo-mb 8

The conversations of ``proxy_load.py`` (a tool call, then its result, turn by turn), each
request run through what the proxy runs on it (``prepare`` with the ``defaults`` pipeline over
a SQLite store, the token counts, the ledger row and the dashboard's totals), without HTTP.
After each round: the bytes tracemalloc sees alive, the memo's estimate, the RSS, and from
the second round on the source lines whose live bytes grew most since the round before. With
``--memo-mb`` small the memo is full after the first round, so live memory that still grows
is held outside it. RSS includes tracemalloc's own bookkeeping.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from proxy_load import _body, _result_text

from tidyctx._memo import memo_stats, set_memo_limit
from tidyctx.proxy._board import Board, ProxyMetrics
from tidyctx.proxy._ledger import Rows, UsageTap
from tidyctx.proxy._pipeline import prepare, select_pipeline
from tidyctx.store import SQLiteStore


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--memo-mb", type=int, default=4)
    parser.add_argument("--top", type=int, default=8, help="growing source lines shown")
    args = parser.parse_args()
    set_memo_limit(args.memo_mb << 20)
    with tempfile.TemporaryDirectory() as tmp:
        transforms = select_pipeline("defaults", SQLiteStore(str(Path(tmp) / "store.db")))
        rows, board, metrics = Rows(), Board("defaults"), ProxyMetrics()
        tracemalloc.start(1)
        ignored = [tracemalloc.Filter(False, tracemalloc.__file__)]
        before = None
        began = time.time()
        for r in range(args.rounds):
            convs: list[tuple[int, random.Random, list[dict[str, Any]]]] = [
                (n, random.Random(n), [{"role": "user", "content": f"session {n}: build it"}])
                for n in range(r * args.sessions, (r + 1) * args.sessions)
            ]
            for turn in range(args.turns):  # the conversations of a round interleaved
                for i, (n, rng, messages) in enumerate(convs):
                    prepared = prepare(_body(messages)[0], transforms)
                    prepared.count()
                    tap = UsageTap()
                    tap.usage = {"input_tokens": 10, "output_tokens": 5}
                    facts = {"method": "POST", "path": "/v1/messages", "status": 200}
                    row = rows.row(facts, prepared, tap, began + turn, began + turn + 1)
                    board.add(row)
                    metrics.add(row, board.model_label(row.get("model")))
                    tool_id = f"toolu_{n}_{turn}"
                    use = {"type": "tool_use", "id": tool_id, "name": "bash", "input": {"n": turn}}
                    result = {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": _result_text(rng, turn),
                    }
                    messages = [
                        *messages,
                        {"role": "assistant", "content": [use]},
                        {"role": "user", "content": [result]},
                    ]
                    convs[i] = (n, rng, messages)
            del convs
            gc.collect()
            snapshot = tracemalloc.take_snapshot().filter_traces(ignored)
            stats = memo_stats()
            print(
                f"round {r}: live {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MB, "
                f"memo {stats.bytes / 2**20:.1f} MB estimated ({stats.entries} entries, "
                f"{stats.evictions} evicted), RSS {_rss_mb():.0f} MB",
                flush=True,
            )
            if before is not None:
                for diff in snapshot.compare_to(before, "lineno")[: args.top]:
                    print(f"    {diff}")
            before = snapshot


if __name__ == "__main__":
    main()
