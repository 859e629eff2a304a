"""Speed and memory of truncate_text on huge tool results: a 50 MB log and a 50 MB JSON array.

    python benchmarks/truncate_speed.py            # 5/10/25/50 MB, both shapes (~30-60 s)
    python benchmarks/truncate_speed.py --sizes 5 10

Each input is truncated to 2,000 tokens with the hints a tool call would give
(``hints_from`` of its input). Reported per size: wall time (best of ``--repeat`` runs),
throughput in MB/s (MB = 10^6 characters, the inputs are ASCII), peak memory that Python
allocated during the call (tracemalloc, measured in a separate run because tracing slows
allocation down; the input itself is not counted) and whether the output kept the budget,
the one marker and the error line planted in the middle. Time per MB should stay flat from
5 to 50 MB: the work is linear.

The log is synthetic but shaped like real agent results: request logs with timestamps, ids
and latencies, pip-style progress spam, warnings, and one traceback in the middle. The JSON
array is pretty-printed rows like the WooCommerce results of the Toolathlon traces. A last
run cuts one 50 MB line (base64, no newline at all), the case of minified files and blobs.
The tokenizer is loaded before timing.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import random
import sys
import time
import tracemalloc
from collections.abc import Callable

from tidyctx._markers import MARKER_KEY, is_marker
from tidyctx.text._hints import hints_from
from tidyctx.text._truncate import truncate_text
from tidyctx.tokens import LocalCounter

BUDGET = 2_000
MB = 1_000_000
ERROR_LINE = "ValueError: order 48213 has no line items (tenant acme-7781)"


def make_log(size: int, seed: int = 7) -> str:
    """About ``size`` characters of a service log, with one traceback in the middle."""
    rng = random.Random(seed)
    paths = ["/api/orders", "/api/users", "/api/cart", "/health", "/api/search?q=lamp"]
    workers = ["alpha", "bravo", "charlie", "delta", "echo"]
    out: list[str] = []
    n = 0
    i = 0
    planted = False
    while n < size:
        i += 1
        sec = i % 86_400
        stamp = f"2024-05-01T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{i % 1000:03d}Z"
        r = rng.random()
        if not planted and n >= size // 2:
            block = [
                f"{stamp} ERROR worker-charlie request failed",
                "Traceback (most recent call last):",
                '  File "/srv/app/orders/service.py", line 212, in load_order',
                "    items = repo.items_for(order_id)",
                ERROR_LINE,
            ]
            planted = True
        elif r < 0.02:  # a burst of progress spam
            block = [
                f"Downloading model-shard-{i % 8}.bin ({p}%) {rng.randint(1, 900)} MB/s"
                for p in range(0, 101, 2)
            ]
        elif r < 0.03:
            block = [f"{stamp} WARNING slow query took {rng.randint(500, 4000)} ms"]
        else:
            path = rng.choice(paths)
            block = [
                f"{stamp} INFO worker-{rng.choice(workers)} {rng.choice(['GET', 'POST'])} "
                f"{path} id={rng.getrandbits(48):012x} status=200 in {rng.randint(1, 250)} ms"
            ]
        for line in block:
            out.append(line)
            n += len(line) + 1
    return "\n".join(out)[:size]


def make_json(size: int, seed: int = 7) -> str:
    """A pretty-printed JSON array of product rows, about ``size`` characters."""
    rng = random.Random(seed)
    sample = [_row(random.Random(k), 10**5 + k) for k in range(50)]
    row_size = len(json.dumps(sample, indent=2)) / len(sample)
    rows = [_row(rng, i) for i in range(max(2, int(size / row_size)))]
    rows[len(rows) // 2]["description"] = ERROR_LINE
    return json.dumps(rows, indent=2)


def _row(rng: random.Random, i: int) -> dict[str, object]:
    brand = rng.choice(["Sony", "Samsung", "LG", "AOC", "Xiaomi"])
    kind = rng.choice(["Laptop", "TV", "Monitor", "Tablet", "Charger"])
    return {
        "id": i,
        "name": f"{brand} {kind} v{i}",
        "slug": f"{brand.lower()}-{kind.lower()}-v{i}",
        "permalink": f"https://localhost:10003/store82/product/{brand.lower()}-v{i}/",
        "price": f"{rng.uniform(5, 2000):.2f}",
        "stock_quantity": rng.randint(0, 500),
        "categories": [{"id": rng.randint(1, 40), "name": kind}],
        "description": f"<p>{brand} {kind} with {rng.randint(2, 64)} GB and free shipping.</p>",
    }


def make_blob(size: int, seed: int = 7) -> str:
    """One line of base64: no newline, no error word, nothing to hold on to."""
    return base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()[:size]


def check(text: str, out: str, counter: LocalCounter, json_shape: bool) -> str:
    ok_budget = counter.count_text(out) <= BUDGET
    if json_shape:
        parsed = json.loads(out)
        marks = sum(1 for x in parsed if isinstance(x, dict) and MARKER_KEY in x)
    else:
        marks = sum(1 for line in out.split("\n") if is_marker(line))
    verdict = "ok" if ok_budget else "OVER"
    result = f"budget {verdict}, markers {marks}"
    if ERROR_LINE in text:
        result += f", error line {'kept' if ERROR_LINE in out else 'lost'}"
    return result


def run(
    name: str,
    make: Callable[[int], str],
    sizes: list[int],
    hints: frozenset[str],
    repeat: int,
    json_shape: bool,
) -> None:
    counter = LocalCounter()
    print(f"\n{name}: truncate to {BUDGET:,} tokens")
    print(f"{'size':>7} {'time':>8} {'MB/s':>7} {'s/MB':>8} {'peak mem':>9}  result")
    for size in sizes:
        text = make(size * MB)
        times = []
        out = None
        for _ in range(repeat):
            gc.collect()
            t0 = time.perf_counter()
            out = truncate_text(text, BUDGET, counter=counter, hints=hints, ref="toolu_bench")
            times.append(time.perf_counter() - t0)
        assert out is not None
        gc.collect()
        tracemalloc.start()
        truncate_text(text, BUDGET, counter=counter, hints=hints, ref="toolu_bench")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        best = min(times)
        mb = len(text) / MB
        print(
            f"{mb:6.1f}M {best:7.2f}s {mb / best:7.1f} {best / mb:8.4f} {peak / MB:7.1f}MB  "
            f"{check(text, out.text, counter, json_shape)}"
        )
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 25, 50], help="MB")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per size (best)")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    truncate_text("warm up " * 2_000, 100)  # load the tokenizer before timing
    hints = hints_from(
        '{"command": "grep -n \\"order 48213\\" /var/log/app.log"}',
        "The failing call is load_order in /srv/app/orders/service.py; check tenant acme-7781.",
    )
    print(f"hints: {sorted(hints)}")
    run("service log", make_log, sizes, hints, args.repeat, json_shape=False)
    run("JSON array (pretty-printed rows)", make_json, sizes, hints, args.repeat, json_shape=True)
    run("one line of base64", make_blob, sizes[-1:], hints, args.repeat, json_shape=False)


if __name__ == "__main__":
    main()
