"""Through the proxy, a recorded run reads at least as much from the prompt cache, turn by turn,
as the same requests sent directly.

A short bundled run is replayed by ``benchmarks/proxy_cache_replay.py``'s own code: each turn is
POSTed as JSON bytes straight to a LocalServer (its cache model on), and through the proxy's
app (uvicorn, real HTTP) to another LocalServer, for the recorded request and for the same
request asking for automatic caching. The full replay over every shared run is the benchmark.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from builders import BUNDLED_TRACES
from tidyctx.traces import load_run

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
try:
    import proxy_cache_replay as bench
finally:
    sys.path.remove(str(BENCHMARKS))


def _replayed(name: str, turns: int) -> tuple[Any, int]:
    run = load_run(BUNDLED_TRACES / name)
    requests = [{**t.request, "model": "claude-sonnet-4-6"} for t in run.turns[:turns]]
    return bench.replay_run(requests, run.timestamps()[:turns]), len(requests)


@pytest.fixture(scope="module")
def replayed() -> list[tuple[Any, int]]:
    return [
        _replayed("openhands-sdk-claude-sonnet4-hello-world.json", 6),
        # Claude Code with pauses over 5 minutes (TTLs apply) and long Bash outputs (trim cuts).
        _replayed("cc-sessionshare-generaltoolcalls.json", 14),
    ]


def _best_direct(replay: Any, turn: int) -> dict[str, Any]:
    direct = [replay.usages["direct", client][turn] for client in bench.CLIENTS]
    return max(direct, key=bench.share)


@pytest.mark.parametrize("client", list(bench.CLIENTS))
def test_cache_only_reads_a_share_at_least_the_direct_one_every_turn(
    replayed: list[tuple[Any, int]], client: str
) -> None:
    for replay, turns in replayed:
        usages = replay.usages["cache-only", client]
        assert len(usages) == turns
        for t, usage in enumerate(usages):
            best = bench.share(_best_direct(replay, t))
            assert bench.share(usage) >= best - bench.EPSILON, f"turn {t}"


@pytest.mark.parametrize("client", list(bench.CLIENTS))
def test_defaults_leave_no_more_uncached_than_direct_every_turn(
    replayed: list[tuple[Any, int]], client: str
) -> None:
    # trim() makes the cached history shorter, so the share may dip a little on a turn whose
    # new tail was cut less than the history; what is billed at the write or input price
    # never grows.
    for replay, _ in replayed:
        for t, usage in enumerate(replay.usages["defaults", client]):
            assert bench.uncached(usage) <= bench.uncached(_best_direct(replay, t)), f"turn {t}"


def test_the_replay_reads_the_cache_and_fails_nothing_open(
    replayed: list[tuple[Any, int]],
) -> None:
    for replay, turns in replayed:
        assert all(u["cache_read_input_tokens"] == 0 for u in replay.usages["direct", "as sent"])
        assert sum(u["cache_read_input_tokens"] for u in replay.usages["direct", "auto"]) > 0
        for rows in replay.rows.values():
            assert len(rows) == turns
            assert not [r["fail_open"] for r in rows if r["fail_open"]]
