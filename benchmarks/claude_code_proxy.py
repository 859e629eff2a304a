"""The real Claude Code CLI, sent directly and through ``tidyctx proxy``: what reaches the API.

    python benchmarks/claude_code_proxy.py [--steps N] [--out FILE]

The CLI (npm ``@anthropic-ai/claude-code``, the release the tests install; see
``tests/claude_code.py``) runs one scripted session twice against a LocalServer: directly, and
through the proxy's ``defaults`` pipeline. The script alternates a long Bash output (``seq``
over 2,500 lines) with a short one, each reply opening with a thinking block, for ``--steps``
tool calls, then answers. The requests the server received on each path are priced with the
offline cache model (``tidyctx.cachesim``, the request's own model): cache writes and reads
after the first call, misses, and input cost with ``tidyctx.pricing``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import claude_code
import tidyctx as tc
from proxy_helpers import proxy_to
from tidyctx import cachesim, pricing
from tidyctx.proxy._pipeline import select_pipeline
from tidyctx.testing import LocalServer


def _responder(steps: int) -> Any:
    def answer(body: dict[str, Any]) -> Any:
        if not body.get("tools"):
            return "A title"
        done = claude_code.tool_results(body)
        if done >= steps:
            return [{"type": "thinking", "thinking": "Done."}, {"type": "text", "text": "DONE"}]
        command = f"seq {done * 1000} {done * 1000 + 2500}" if done % 2 == 0 else f"echo {done}"
        return [
            {"type": "thinking", "thinking": f"Step {done}."},
            {
                "type": "tool_use",
                "name": "Bash",
                "input": {"command": command, "description": "Run"},
            },
        ]

    return answer


def _session(cli: Path, steps: int, via_proxy: bool) -> tuple[str, list[dict[str, Any]]]:
    work = Path(tempfile.mkdtemp(prefix="cc-bench."))
    with LocalServer(responder=_responder(steps)) as server:
        if via_proxy:
            pipeline = select_pipeline("defaults", tc.MemoryStore())
            with proxy_to(server.base_url, pipeline) as (proxy, _):
                result = claude_code.run(cli, proxy.base_url, "Run the steps.", work)
        else:
            result = claude_code.run(cli, server.base_url, "Run the steps.", work)
        bodies = [
            r.body for r in server.requests if r.path == "/v1/messages" and r.body.get("tools")
        ]
    return str(result.get("result")), bodies


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    cli = claude_code.install()
    if isinstance(cli, str):
        print(f"claude_code_proxy: {cli}", file=sys.stderr)
        return 2
    lines = [
        f"claude_code_proxy: Claude Code {claude_code.VERSION}, {args.steps} tool calls "
        "(2,500-line Bash outputs every other call), direct and through the proxy (defaults)",
        f"{'path':<8} {'calls':>5} {'answer':>7} {'writes after 1st':>17} {'reads after 1st':>16}"
        f" {'misses':>6} {'input $':>9}",
    ]
    for via_proxy in (False, True):
        answer, bodies = _session(cli, args.steps, via_proxy)
        calls = cachesim.calls(bodies)
        model = str(bodies[0]["model"])
        writes = sum(c.usage["cache_creation_input_tokens"] for c in calls[1:])
        reads = sum(c.usage["cache_read_input_tokens"] for c in calls[1:])
        misses = sum(1 for c in calls if c.miss is not None)
        usd = sum(pricing.cost({**c.usage, "output_tokens": 0}, model).total for c in calls)
        lines.append(
            f"{'proxy' if via_proxy else 'direct':<8} {len(bodies):>5} {answer:>7} {writes:>17,}"
            f" {reads:>16,} {misses:>6} {usd:>9.4f}"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
