"""Headroom's library ``compress()`` as a compared strategy, run for real, offline.

Measured by benchmarks/compare.py (``--only headroom,headroom-own-loop``).

Peer: ``headroom-ai`` 0.42.0 (PyPI, Apache-2.0), its inline library mode as its README shows
it (``result = compress(messages, model=...)``; send ``result.messages``). Per recorded turn
the strategy calls::

    headroom.compress(request["messages"], model=request["model"], kompress_model="disabled")

and sends the request with ``messages`` replaced by ``result.messages``; ``system``, ``tools``
and every other key go as recorded (``compress()`` takes only the messages, so Headroom never
sees them). Everything else is ``compress()``'s default: ``CompressConfig()`` (tool results
compressed, user text left alone, the last 4 messages protected, ``min_tokens_to_compress``
250, ``frozen_message_count`` 0, CCR on) and the default pipeline (CacheAligner, then the
ContentRouter: SmartCrusher for JSON, log/search/diff/HTML compressors, CodeCompressor off as
by default).

Offline configuration, and why:

- ``kompress_model="disabled"``: Headroom's prose compressor is an ML model
  (chopratejas/kompress-v2-base) downloaded from Hugging Face at run time, and needs the
  ``headroom-ai[ml]`` extra besides; the documented way to skip it is this value ("only
  SmartCrusher + CacheAligner will run" for text). Without the extra the output is the same.
- ``HEADROOM_OFFLINE=1`` (its documented no-egress switch; also turns off its telemetry
  beacon, which is on by default).
- Headroom counts Claude tokens with tiktoken's ``o200k_base``, whose vocabulary tiktoken
  downloads on first use; ``HEADROOM_OFFLINE`` does not stop that attempt (0.42.0). The
  worker refuses every socket, so the load fails and Headroom falls back, as it does on any
  machine without that vocabulary, to its character estimator (3.5 characters a token for
  Claude). That count only gates what Headroom compresses; costs here are counted by tidyctx.
- Headroom's workspace (its CCR store ``ccr_store.db`` and learned state) is a fresh
  temporary directory per run, so runs do not see each other.

Caching: ``compress()`` adds no ``cache_control`` and the recorded requests carry none, so
each request gets top-level automatic caching, ``cache_control: {"type": "ephemeral"}`` (5
minutes), as a Headroom library user's own request would. If a request came back with
markers of its own they would be kept as they are, with no top-level one added.

CCR: when Headroom cuts content it leaves a marker such as ``<<ccr:9cd2dbcd0c45,string,773B>>``
and keeps the original in its local store, for a ``headroom_retrieve`` tool. ``compress()``
adds no such tool to the request (that needs Headroom's MCP server or proxy), so what it cut
is gone for the model here, which reference recall measures.

Where it runs: headroom-ai 0.42.0 pins ``botocore<1.45`` (through litellm and boto3), which
needs ``python-dateutil<3``, so installing it into an environment with python-dateutil 4
downgrades that. The strategy therefore always runs Headroom in its own process (``python
headroom_worker.py``): the interpreter named by ``TIDYCTX_HEADROOM_PYTHON`` (e.g. a separate
venv: ``python -m venv hr && hr/bin/pip install headroom-ai==0.42.0``), else this interpreter
if it has headroom-ai (``pip install 'tidyctx[bench]'``). Without either, calling a factory
raises ``ImportError(NOT_INSTALLED)``, which names both ways to provide it.

Factories (benchmarks/peers/sent.py): :func:`headroom_compress` (the configuration above) and
:func:`headroom_compress_frozen`, a caller that runs its own conversation loop as
``CompressConfig``'s documentation tells it to: it keeps the messages ``compress()`` returned,
appends the turn's new ones and passes ``frozen_message_count`` = the previous request's
message count (when a recorded request does not extend the previous one, as after a
compaction, that turn starts over from the recorded messages).

On the 23 shared runs the cuts land on JSON tool output (the Toolathlon runs), where what
was cut cannot be read back; on the OpenHands and SWE-agent code runs the cost moves little.
The two differ on a Claude Code run: Headroom's stale-Read rewrite replaces old file reads
deep in the history on later turns, which re-writes the cache from there; the own-loop
caller avoids it. The sent bodies are the same under PYTHONHASHSEED 0 and 1.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import IO, Any

from tidyctx._request import cache_markers

try:
    from .sent import Sent
except ImportError:  # run as a script: benchmarks/peers is on sys.path
    from sent import Sent  # type: ignore[no-redef]

__all__ = [
    "HEADROOM_VERSION",
    "NOT_INSTALLED",
    "HeadroomStrategy",
    "headroom_compress",
    "headroom_compress_frozen",
    "headroom_python",
]

HEADROOM_VERSION = "0.42.0"
"""The version measured and documented here; another installed version is named in the notes."""

NOT_INSTALLED = (
    "headroom-ai not installed (make bench makes .venv-headroom; or set "
    "TIDYCTX_HEADROOM_PYTHON to a Python that has headroom-ai==0.42.0)"
)

AUTOMATIC_CACHING = {"type": "ephemeral"}
"""What a Headroom library user's request carries: Headroom adds no cache_control."""

OPTIONS: dict[str, Any] = {"kompress_model": "disabled"}
"""compress() options besides ``model``: the ML text compressor needs a download."""

WORKER = Path(__file__).with_name("headroom_worker.py")


def headroom_python() -> str:
    """The interpreter that runs Headroom: ``$TIDYCTX_HEADROOM_PYTHON``, else this one if it
    has headroom-ai; raises ImportError(NOT_INSTALLED) if neither."""
    named = os.environ.get("TIDYCTX_HEADROOM_PYTHON")
    if named:
        if not Path(named).is_file():
            raise ImportError(f"{NOT_INSTALLED}: TIDYCTX_HEADROOM_PYTHON={named} does not exist")
        return named
    try:
        importlib.metadata.version("headroom-ai")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(NOT_INSTALLED) from None
    return sys.executable


class _Worker:
    """One headroom_worker.py process, with its own temporary Headroom workspace."""

    def __init__(self, python: str) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="tidyctx-headroom-")
        self.log_path = Path(self.dir.name) / "stderr.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [python, str(WORKER), str(Path(self.dir.name) / "workspace")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            encoding="utf-8",
        )
        first = self._read()
        if "version" not in first:
            self.close()
            raise RuntimeError(f"headroom worker did not start: {first}")
        self.version: str = first["version"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            if "No module named 'headroom'" in tail:
                raise ImportError(f"{NOT_INSTALLED}: not in {self.proc.args[0]}")
            raise RuntimeError(f"headroom worker exited ({self.proc.returncode}): {tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, job: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(job) + "\n")
        stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        self.dir.cleanup()


class HeadroomStrategy:
    """One run's strategy: calls ``compress()`` in its worker once per turn.

    Besides the :class:`Sent`, it keeps what the report needs: ``seconds`` (compress() time
    a turn, measured in the worker), ``fallbacks`` (turns where compress() caught an error
    and returned the messages unchanged) and ``refused`` (connections the worker refused).
    """

    def __init__(self, python: str, *, frozen: bool) -> None:
        self.frozen = frozen
        self.worker = _Worker(python)
        self.version = self.worker.version
        self.seconds: list[float] = []
        self.fallbacks = 0
        self.refused = 0
        self._recorded: list[Any] = []  # the previous turn's messages as recorded
        self._history: list[Any] = []  # the same messages as this strategy sent them
        self._close = weakref.finalize(self, self.worker.close)

    def describe(self) -> str:
        extra = (
            ", frozen_message_count=<previous request's>, on the messages it returned before"
            if self.frozen
            else ""
        )
        return (
            f"headroom-ai {self.version}: compress(messages, model=<request's>, "
            f"kompress_model='disabled'{extra}), HEADROOM_OFFLINE=1, "
            "top-level cache_control {'type': 'ephemeral'} when it carries none"
        )

    def __call__(self, request: dict[str, Any]) -> Sent:
        model = request.get("model")
        messages = request.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list):
            raise ValueError(
                "headroom peer: the request needs a 'model' string and a 'messages' list"
            )
        options = dict(OPTIONS)
        given = messages
        n = len(self._recorded)
        if self.frozen and n and messages[:n] == self._recorded:
            # The caller's own loop: it kept what compress() returned and appended the new
            # messages, and says how many were sent before (CompressConfig's advice).
            given = self._history + messages[n:]
            options["frozen_message_count"] = n
        answer = self.worker.call({"messages": given, "model": model, "options": options})
        if "error" in answer:
            raise RuntimeError(
                f"headroom compress() on turn {len(self.seconds)}: {answer['error']}"
            )
        if self.frozen:
            # Kept apart from what is returned, which the caller may change.
            self._recorded = copy.deepcopy(messages)
            self._history = copy.deepcopy(answer["messages"])
        self.seconds.append(answer["seconds"])
        notes = []
        if not self.seconds[:-1]:
            notes.append(self.describe())
        if answer["tokens_before"] == 0 and messages:
            # compress() logs and returns the input unchanged when its pipeline raises.
            self.fallbacks += 1
            notes.append("compress() failed and returned the messages unchanged")
        if answer["refused"] > self.refused:
            notes.append(f"{answer['refused'] - self.refused} connection(s) refused")
            self.refused = answer["refused"]
        out = {k: copy.deepcopy(v) for k, v in request.items() if k != "messages"}
        out["messages"] = answer["messages"]
        if not cache_markers(out):
            out["cache_control"] = dict(AUTOMATIC_CACHING)
        return Sent(request=out, note="; ".join(notes))

    def close(self) -> None:
        self._close()


def headroom_compress() -> HeadroomStrategy:
    """Factory: per-turn ``compress()`` with the model set and the offline compressors."""
    return HeadroomStrategy(headroom_python(), frozen=False)


def headroom_compress_frozen() -> HeadroomStrategy:
    """Factory: a caller running its own loop, as CompressConfig's documentation advises:
    the history is what ``compress()`` returned last turn plus the new messages, with
    ``frozen_message_count`` = the previous request's message count."""
    return HeadroomStrategy(headroom_python(), frozen=True)
