"""Peak memory of the HTML report of a 200 MB ledger (one JSON row per API call).

    python benchmarks/report_memory.py [MB]

Writes a JSONL of ledger-style rows (time, model, tokens by billing class, cost, cost without
the pipeline, and the fields a ledger adds: latency, tokens before and after, the transforms
that changed the request, the TTL decision) to a temporary file of about MB megabytes (200 by
default), then, in a fresh process, reads it row by row (tidyctx._report.read_rows), folds the
rows into the page's bars and writes the page, and reports that process's peak resident memory
(getrusage ru_maxrss). The target: under 300 MB for 200 MB of ledger.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import resource, sys, time
from tidyctx import _report
started = time.perf_counter()
data = _report.ReportData.from_rows("ledger", _report.read_rows(sys.argv[1]))
page = _report.render_html(data)
open(sys.argv[2], "w", encoding="utf-8").write(page)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{data.bars.count} {len(data.bars.bars)} {data.bars.width} {len(page)} {peak:.1f} "
      f"{time.perf_counter() - started:.1f}")
"""


def write_ledger(path: Path, megabytes: float) -> int:
    rng = random.Random(7)
    target = int(megabytes * 1_000_000)
    written = rows = 0
    at = 1_796_637_600.0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            at += rng.choice((4.0, 9.0, 15.0, 30.0, 700.0))
            read = rng.randrange(2_000, 150_000)
            row = {
                "time": at,
                "model": "claude-sonnet-4-6",
                "input": rng.randrange(0, 400),
                "cache_read": read,
                "cache_write_5m": rng.randrange(0, 3_000),
                "cache_write_1h": rng.choice((0, 0, 0, rng.randrange(0, 2_000))),
                "output": rng.randrange(20, 900),
                "cost": round(read * 3e-7 + 0.004, 6),
                "cost_without": round(read * 3e-7 + 0.009, 6),
                "latency_s": round(rng.uniform(0.4, 9.0), 3),
                "tokens_before": read + 4_000,
                "tokens_after": read,
                "changed_by": ["order()", "trim(max_tokens=700)", "cache(ttl='adaptive')"],
                "ttl": {"stable": "1h", "rolling": "5m", "reason": "5m: no gap over 5 min"},
            }
            line = json.dumps(row) + "\n"
            out.write(line)
            written += len(line)
            rows += 1
    return rows


def main(argv: list[str]) -> int:
    megabytes = float(argv[0]) if argv else 200.0
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.jsonl"
        started = time.perf_counter()
        rows = write_ledger(ledger, megabytes)
        size = ledger.stat().st_size / 1e6
        took = time.perf_counter() - started
        print(f"ledger: {rows:,} rows, {size:.1f} MB (written in {took:.0f} s)")
        src = str(Path(__file__).resolve().parents[1] / "src")
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(ledger), str(Path(tmp) / "report.html")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        calls, bars, width, page, peak, seconds = result.stdout.split()
        print(
            f"report: {int(calls):,} calls in {bars} bars of {width} calls, page "
            f"{int(page) / 1e3:.0f} kB, {float(seconds):.0f} s; peak resident memory {peak} MB "
            f"(target < 300 MB): {'ok' if float(peak) < 300 else 'OVER'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
