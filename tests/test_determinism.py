"""The same input gives the same bytes in every process, whatever Python's hash seed.

Each case replays traces through the pipelines of ``replay_worker.py`` in fresh interpreters
with different ``PYTHONHASHSEED`` values (``random`` included) and compares the hash of every
turn's output. Set and dict iteration order of strings changes with the seed, so any output
that depends on it (a float summed in set order, a tie broken by iteration order) shows up
as a differing line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import BUNDLED_TRACES, SHARED_TRACES

WORKER = Path(__file__).resolve().parent / "replay_worker.py"
SRC = Path(__file__).resolve().parents[1] / "src"
SEEDS = ("0", "1", "2", "random")


def _replay(seed: str, traces: list[Path], stride: int) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, str(WORKER), "--stride", str(stride), *map(str, traces)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.splitlines()


def _same_in_every_seed(traces: list[Path], stride: int) -> None:
    first = _replay(SEEDS[0], traces, stride)
    assert first, "the worker replayed no turn"
    for seed in SEEDS[1:]:
        other = _replay(seed, traces, stride)
        differing = [(a, b) for a, b in zip(first, other, strict=True) if a != b]
        assert not differing, f"PYTHONHASHSEED={seed} differs from {SEEDS[0]}: {differing[:5]}"


def test_bundled_traces_give_the_same_bytes_under_every_hash_seed() -> None:
    _same_in_every_seed(sorted(BUNDLED_TRACES.glob("*.json")), stride=1)


def test_shared_traces_give_the_same_bytes_under_every_hash_seed() -> None:
    traces = sorted(SHARED_TRACES.glob("*.json"))
    if not traces:
        pytest.skip(f"no trace collection at {SHARED_TRACES} (set TIDYCTX_TRACES to one)")
    _same_in_every_seed(traces, stride=8)
