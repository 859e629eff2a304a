"""How close tidyctx.cachesim comes to what Anthropic billed, on recorded Claude Code runs.

    python benchmarks/cache_fidelity.py [TRACE.json ...]

The Claude Code traces carry the usage the API reported for every call. Each run is replayed
through cachesim with its recorded timestamps and the recorded model, and the simulated
cache reads, cache writes and uncached tokens are printed beside the recorded ones.

What the log does not hold, and how it is estimated (said again in the output):
- Claude Code's system prompt, tool definitions and the context it injects into the first
  user message are not in the log. Their size is the first call's recorded input total minus
  the counted messages. They are modeled as two system blocks, each with a breakpoint: the
  part the first call already read from the cache (Claude Code's shared system prompt, cached
  across sessions) and the rest.
- The shared part is kept warm, as other sessions of the same user keep it: it is read again
  before every call. (The recordings show it read even after pauses of hours.)
- Claude Code marks the last block of the latest message; so does the replay.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import replay

from tidyctx import cachesim, normalize
from tidyctx.tokens import LocalCounter
from tidyctx.traces import Run

FIELDS = ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens")


class FixedPrefixCounter(LocalCounter):
    """A LocalCounter that gives the stand-in system blocks their estimated sizes."""

    def __init__(self, model: str, sizes: dict[str, int]) -> None:
        super().__init__(model)
        self.sizes = sizes

    def count_blocks(self, request: Any) -> list[tuple[str, int]]:
        return [(p, self.sizes.get(p, n)) for p, n in super().count_blocks(request)]


def _mark_last(request: dict[str, Any]) -> dict[str, Any]:
    out = normalize(request)
    last = out["messages"][-1]["content"]
    last[-1] = {**last[-1], "cache_control": {"type": "ephemeral"}}
    return out


def replay_run(
    run: Run,
) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int], dict[str, int], int]:
    """Recorded and simulated totals, the estimated prefix sizes, and the same totals over the
    turns left after setting aside the recorded misses the log cannot explain (how many)."""
    first = run.turns[0].usage or {}
    recorded_first = sum(int(first.get(k) or 0) for k in FIELDS)
    counter = LocalCounter(run.model)
    counted_first = counter.count_request({"model": run.model, **run.turns[0].request})
    shared = int(first.get("cache_read_input_tokens") or 0)
    rest = max(recorded_first - counted_first - shared, 0)
    mark = {"type": "ephemeral"}
    system = [{"type": "text", "text": "shared system prompt", "cache_control": mark}]
    sizes = {"system[0]": shared}
    if rest:
        system.append({"type": "text", "text": "session context", "cache_control": mark})
        sizes["system[1]"] = rest
    fixed = FixedPrefixCounter(run.model, sizes)
    model = cachesim.CacheModel(counter=fixed)
    warm = {
        "model": run.model,
        "system": system[:1],
        "messages": [{"role": "user", "content": "."}],
    }
    recorded = dict.fromkeys(FIELDS, 0)
    simulated = dict.fromkeys(FIELDS, 0)
    rec_kept = dict.fromkeys(FIELDS, 0)
    sim_kept = dict.fromkeys(FIELDS, 0)
    unexplained = 0
    for turn in run.turns:
        if shared:
            model.call(warm, turn.ts)
        request = _mark_last({**turn.request, "model": run.model, "system": system})
        usage = model.call(request, turn.ts).usage
        rec = {k: int((turn.usage or {}).get(k) or 0) for k in FIELDS}
        # A recorded miss the log cannot explain: the request is the size the log says (so
        # nothing unlogged was added), the simulation read it from the cache, the API did not.
        same_size = abs(sum(rec.values()) - sum(usage[k] for k in FIELDS)) <= 0.02 * sum(
            rec.values()
        )
        evicted = rec["cache_read_input_tokens"] < usage["cache_read_input_tokens"] - 1000
        if same_size and evicted:
            unexplained += 1
        for k in FIELDS:
            recorded[k] += rec[k]
            simulated[k] += int(usage[k])
            if not (same_size and evicted):
                rec_kept[k] += rec[k]
                sim_kept[k] += int(usage[k])
    return recorded, simulated, sizes, rec_kept, sim_kept, unexplained


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [p for p in replay.trace_paths() if p.name.startswith("cc-")]
    print(__doc__.split("What the log")[0].strip().splitlines()[0])
    print()
    head = f"{'trace':<36}{'class':<10}{'recorded':>13}{'simulated':>13}{'diff':>8}"
    print(head)
    print("-" * len(head))
    for path in paths:
        run = replay.load(path)
        if not run.turns or not run.turns[0].usage:
            print(f"{run.id:<36}(no recorded usage: skipped)")
            continue
        recorded, simulated, sizes, rec_kept, sim_kept, unexplained = replay_run(run)
        for k, label in zip(FIELDS, ("read", "write", "uncached"), strict=True):
            diff = (simulated[k] - recorded[k]) / recorded[k] * 100 if recorded[k] else 0.0
            name = run.id if label == "read" else ""
            print(f"{name[:35]:<36}{label:<10}{recorded[k]:>13,}{simulated[k]:>13,}{diff:>+7.1f}%")
        print(
            f"{'':<36}fixed prefix estimated: {sizes.get('system[0]', 0):,} shared + "
            f"{sizes.get('system[1]', 0):,} session tokens"
        )
        if unexplained:
            parts = []
            for k, label in zip(FIELDS[:2], ("read", "write"), strict=True):
                diff = (sim_kept[k] - rec_kept[k]) / rec_kept[k] * 100 if rec_kept[k] else 0.0
                parts.append(f"{label} {diff:+.1f}%")
            print(
                f"{'':<36}{unexplained} of {len(run.turns)} calls missed where the logged "
                f"content says hit; without them: {', '.join(parts)}"
            )
    print(
        "\nNot in the log, so not simulated: cache evictions the API made on its own (recorded "
        "misses with no pause and no change in the logged content), and context Claude Code "
        "re-sent on resume. 'uncached' is small in both: Claude Code's last breakpoint sits at "
        "the very end of the request."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
