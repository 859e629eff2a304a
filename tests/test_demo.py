"""`make demo`'s replay script runs offline on a bundled trace and prints every pipeline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_demo_prints_each_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    assert spec and spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    trace = ROOT / "data" / "traces" / "openhands-sdk-claude-sonnet4-hello-world.json"
    assert demo.main([str(trace)]) == 0
    out = capsys.readouterr().out
    rows = [
        line
        for line in out.splitlines()
        if line.startswith(("as sent", "automatic", "order", "..."))
    ]
    assert len(rows) == 5, out
    costs = [float(row.split()[-4]) for row in rows]
    # No caching is dearest; ordering and breakpoints cost no more than automatic caching.
    assert costs[0] == max(costs)
    assert costs[2] <= costs[1]
