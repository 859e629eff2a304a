"""A batch job's files: its state, its requests and its results, and the lock around a run.

In the job's directory, for job ``JOB``:

``JOB.batch.json``
    the state: the job's name, the digest of its requests, the limits, and per batch (a
    *chunk* of the requests) its requests, its attempt (1, or 2 for the retry), its status and
    the id the API gave it. Replaced whole (a temporary file in the same directory, flushed to
    the device, then ``os.replace``), so a reader sees the old state or the new one, never a
    mix.
``JOB.requests.jsonl``
    the requests as sent (after the pipeline), one ``{custom_id, params}`` a line.
``JOB.results.jsonl``
    one line per request whose result is final, appended as results arrive:
    ``{custom_id, attempt, batch_id, result}`` with ``result`` as the API gave it.
``JOB.lock``
    held (``flock``) by the process running the job, so two never run it at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tidyctx.batch._prepare import BatchError, JobBusy, Limits

try:  # POSIX: one process runs a job at a time
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT",
    "JOB_NAME",
    "STATUSES",
    "Chunk",
    "Files",
    "State",
    "job_lock",
    "ranges",
    "write_atomic",
]

FORMAT = "tidyctx-batch/1"
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

STATUSES = (
    "pending",
    "submitting",
    "matching",
    "in_progress",
    "ended",
    "collecting",
    "collected",
)
"""A chunk's status: not sent; sent or about to be (the API may or may not have it); waiting
for the batches that may be it to end; a batch is processing; it ended; its results are being
saved; they are saved."""


def ranges(indices: list[int]) -> list[list[int]]:
    """Sorted ``indices`` as ``[start, stop)`` ranges of consecutive numbers."""
    out: list[list[int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


@dataclass
class Chunk:
    """One batch's worth of the job's requests (see :data:`STATUSES`)."""

    n: int
    attempt: int
    requests: list[list[int]]
    """``[start, stop)`` ranges of request numbers (lines of the requests file)."""
    status: str = "pending"
    batch_id: str | None = None
    intent_at: float | None = None
    """When the create call was about to be sent (seconds since the epoch)."""
    candidates: dict[str, str] = field(default_factory=dict)
    """While matching: batches that may be this chunk's, and their processing status."""
    rejected: list[str] = field(default_factory=list)
    """Batches found not to be this chunk's."""
    counts: dict[str, int] = field(default_factory=dict)

    def indices(self) -> Iterator[int]:
        for start, stop in self.requests:
            yield from range(start, stop)

    @property
    def size(self) -> int:
        return sum(stop - start for start, stop in self.requests)


@dataclass
class State:
    """What a job has done so far (see the module documentation)."""

    job: str
    count: int
    digest: str
    limits: Limits
    chunks: list[Chunk]
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "job": self.job,
            "count": self.count,
            "requests_sha256": self.digest,
            "limits": {"requests": self.limits.requests, "bytes": self.limits.bytes},
            "created_at": self.created_at,
            "chunks": [asdict(c) for c in self.chunks],
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> State:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BatchError(f'{path}: not a tidyctx batch state file (no "format": {FORMAT!r})')
        try:
            limits = data["limits"]
            return cls(
                job=str(data["job"]),
                count=int(data["count"]),
                digest=str(data["requests_sha256"]),
                limits=Limits(int(limits["requests"]), int(limits["bytes"])),
                chunks=[Chunk(**c) for c in data["chunks"]],
                created_at=float(data["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BatchError(f"{path}: a damaged batch state file ({err})") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a reader, or a process killed at any point, sees the
    old file or the new one whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    # The rename itself is on the device only once the directory is flushed.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class Files:
    """The paths of job ``job`` in ``directory``, and reading and writing them."""

    def __init__(self, directory: Path, job: str) -> None:
        if not isinstance(job, str) or not JOB_NAME.fullmatch(job):
            raise BatchError(
                f"job name {job!r}: use 1 to 100 letters, digits, '_', '-' or '.', starting with "
                "a letter or digit (it names the job's files)"
            )
        self.dir = directory
        self.job = job
        self.state = directory / f"{job}.batch.json"
        self.requests = directory / f"{job}.requests.jsonl"
        self.results = directory / f"{job}.results.jsonl"
        self.lock = directory / f"{job}.lock"

    def save(self, state: State) -> None:
        text = json.dumps(state.to_json(), indent=1, sort_keys=True) + "\n"
        write_atomic(self.state, text.encode("utf-8"))

    def load(self) -> State:
        """The state, refused (:class:`BatchError`) if it is another job's or its requests
        file changed."""
        try:
            raw = self.state.read_bytes()
        except FileNotFoundError:
            raise BatchError(
                f"no batch job {self.job!r} in {self.dir} (no {self.state.name}); start it with "
                "BatchJob(requests, job=...) or tidyctx batch submit"
            ) from None
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise BatchError(f"{self.state}: not JSON ({err})") from None
        state = State.from_json(data, self.state)
        if state.job != self.job:
            raise BatchError(
                f"{self.state} holds the state of job {state.job!r}, not {self.job!r}: a state "
                "file from another job is not used (it would resubmit or skip that job's "
                "requests); move it back or open that job"
            )
        digest = self.digest()
        if digest != state.digest:
            raise BatchError(
                f"{self.requests} is not the requests file job {self.job!r} was started with "
                f"(sha256 {digest[:12]}, the state says {state.digest[:12]})"
            )
        return state

    def digest(self) -> str:
        sha = hashlib.sha256()
        try:
            with open(self.requests, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    sha.update(block)
        except FileNotFoundError:
            raise BatchError(
                f"{self.requests} is missing: job {self.job!r} cannot send its requests"
            ) from None
        return sha.hexdigest()

    def items(self, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
        """The lines (``{custom_id, params}`` as JSON) of the requests numbered ``wanted``."""
        with open(self.requests, "rb") as f:
            for i, line in enumerate(f):
                if i in wanted:
                    yield i, line.rstrip(b"\n")

    def done(self) -> dict[str, int]:
        """Per request with a final result saved, its attempt; a line cut short by a kill
        is removed (it is written again when its batch is read again)."""
        out: dict[str, int] = {}
        try:
            f = open(self.results, "r+b")  # noqa: SIM115 - truncated below, in the loop's scope
        except FileNotFoundError:
            return out
        with f:
            good = 0
            for number, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    break
                try:
                    row = json.loads(line)
                    out[str(row["custom_id"])] = int(row["attempt"])
                except (ValueError, KeyError, TypeError) as err:
                    raise BatchError(
                        f"{self.results}, line {number}: not a result ({err})"
                    ) from None
                good += len(line)
            f.truncate(good)
        return out

    def saved(self) -> Iterator[dict[str, Any]]:
        """The saved results, in the order they came."""
        try:
            f = open(self.results, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        with f:
            for line in f:
                if line.endswith(b"\n"):
                    yield json.loads(line)


@contextlib.contextmanager
def job_lock(files: Files) -> Iterator[None]:
    """Hold the job's lock, or raise :class:`JobBusy` if another process holds it."""
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobBusy(
                    f"batch job {files.job!r} is being run by another process ({files.lock} is "
                    "locked); wait for it, or stop it first"
                ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
