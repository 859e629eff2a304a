"""Replays traces through fixed pipelines and prints one hash per turn: run in a subprocess by
tests/test_determinism.py, once per Python hash seed.

    python tests/replay_worker.py [--stride-shared N] TRACE.json ...

Prints ``trace pipeline turn sha256`` lines, the hash over the JSON bytes the SDK would send
(keys in the dict's own order, so a reordered key counts as a difference). Pipelines:
``recommended`` (order, slice_code, trim(max_tokens=700, head=0.6, slack=0.5), cache),
``summary`` (the same with summarize answered by a LocalServer, see builders.every_transform)
and ``clearing`` (trim with a Clearing, compact, cache). Each trace is replayed turn by turn
through one instance of each pipeline, as an agent calls it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import anthropic

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import builders  # noqa: E402
import tidyctx as tc  # noqa: E402
from tidyctx.testing import LocalServer  # noqa: E402
from tidyctx.traces import load_run  # noqa: E402


def _digest(request: object) -> str:
    wire = json.dumps(request, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(wire.encode("utf-8")).hexdigest()[:24]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("traces", nargs="+")
    parser.add_argument("--stride", type=int, default=1, help="every Nth turn (and the last)")
    args = parser.parse_args(argv)
    with (
        LocalServer() as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        for path in args.traces:
            run = load_run(Path(path))
            clearing = tc.Clearing(keep=3, trigger=5_000, clear_at_least=2_000)
            pipelines = {
                "recommended": [
                    tc.order(),
                    tc.slice_code(),
                    tc.trim(max_tokens=700, head=0.6, slack=0.5),
                    tc.cache(),
                ],
                "summary": builders.every_transform(client),
                "clearing": [
                    tc.trim(max_tokens=500, clearing=clearing),
                    tc.compact(),
                    tc.cache(),
                ],
            }
            last = len(run.turns) - 1
            for k, turn in enumerate(run.turns):
                if k % args.stride and k != last:
                    continue
                request = {**turn.request, "model": builders.MODEL}
                for name, transforms in pipelines.items():
                    out = tc.pipe(request, *transforms)
                    print(Path(path).name, name, k, _digest(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
