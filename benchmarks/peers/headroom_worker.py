"""The process that runs Headroom's ``compress()`` for benchmarks/peers/headroom_peer.py.

    <python with headroom-ai installed> headroom_worker.py WORKSPACE_DIR

Writes ``{"version": "<headroom-ai version>"}`` first, then reads one JSON object a line on
stdin, ``{"messages": [...], "model": "...", "options": {...}}``, calls
``headroom.compress(messages, model=model, **options)`` and writes one JSON object a line on
stdout: ``{"messages", "tokens_before", "tokens_after", "transforms",
"seconds", "refused"}``, or ``{"error": "..."}``. Only the standard library is imported
before headroom, so any interpreter that has headroom-ai can run it, without tidyctx.

Offline by construction: ``HEADROOM_OFFLINE=1`` (Headroom's documented no-egress switch,
which also turns its telemetry beacon off), Headroom's workspace and config directories in
WORKSPACE_DIR (its CCR store and learned state stay per worker, so runs do not see each
other), and every socket connection refused here and counted in ``refused``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

refused: list[str] = []


def _refuse(*args: Any, **kwargs: Any) -> Any:
    refused.append(repr(args[:1]))
    raise OSError("headroom_worker: network use refused (the benchmark runs offline)")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: headroom_worker.py WORKSPACE_DIR", file=sys.stderr)
        return 2
    workspace = argv[1]
    os.environ["HEADROOM_OFFLINE"] = "1"
    os.environ["HEADROOM_WORKSPACE_DIR"] = workspace
    os.environ["HEADROOM_CONFIG_DIR"] = os.path.join(workspace, "config")
    socket.socket.connect = _refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
    # The answers go to the original stdout; anything the library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from importlib.metadata import version

    from headroom import compress

    answers.write(json.dumps({"version": version("headroom-ai")}) + "\n")
    answers.flush()
    for line in sys.stdin:
        try:
            job = json.loads(line)
            started = time.perf_counter()
            result = compress(job["messages"], model=job["model"], **job.get("options", {}))
            seconds = time.perf_counter() - started
            answer: dict[str, Any] = {
                "messages": result.messages,
                "tokens_before": result.tokens_before,
                "tokens_after": result.tokens_after,
                "transforms": list(result.transforms_applied),
                "seconds": seconds,
                "refused": len(refused),
            }
        except Exception as e:  # reported to the caller, who raises it with the turn's place
            answer = {"error": f"{type(e).__name__}: {e}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
