"""BatchJob: many requests through the Message Batches API, resumable after a kill at any point.

The job's decisions (what to send, what a response means, when it is done) are made here in
plain methods over its :class:`~tidyctx.batch._state.State`; :meth:`BatchJob.run` and
:meth:`BatchJob.arun` only carry each decision to the API, the one with a sync client, the
other with an async one.

**Never twice.** Before a create call the job saves the chunk as ``submitting`` with the time;
right after, it saves the batch id. A process killed in between leaves a ``submitting`` chunk:
the next run lists the batches created since that time (the API lists every batch of the
workspace, newest first), takes those with as many requests as the chunk as *candidates*,
and, once each has ended, compares its results' ``custom_id``\\ s with the chunk's: the batch
that holds exactly them is the chunk's; if none does, the create never reached the API and the
chunk is sent. A create that failed in a way that does not say whether the batch was made (a
5xx, a lost connection, a timeout) is handled the same way. The SDK's own retries are off for
the create call: the API takes no idempotency key for it, so a retried create could make a
second batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from tidyctx import pricing
from tidyctx._pipeline import Transform
from tidyctx.batch._prepare import (
    MAX_BYTES,
    MAX_REQUESTS,
    BatchError,
    Limits,
    encoded,
    prepare,
    split,
)
from tidyctx.batch._state import Chunk, Files, State, job_lock, ranges, write_atomic
from tidyctx.ledger import Ledger, price

__all__ = ["BREAKPOINTS", "BatchJob", "JobStatus"]

BREAKPOINTS = ("shared", "keep")
"""The choices of ``BatchJob(breakpoints=...)``."""

DEFAULT_DIR = Path(".tidyctx") / "batches"

# How far before the recorded intent a batch may have been created by the API's clock and
# still be looked at: clocks differ.
_CLOCK_MARGIN = 600.0

# A result worth a second try: an expired request, or an errored one whose error is not the
# request's own fault. An invalid_request_error fails the same way again; see "Handling
# results" in https://platform.claude.com/docs/en/build-with-claude/batch-processing
_NOT_RETRIED = frozenset({"invalid_request_error"})

# Passing errors (lost connections, 5xx...) waited out in a row before one is raised.
_MAX_ERRORS = 8


@dataclass(frozen=True, slots=True)
class _Submit:
    chunk: Chunk


@dataclass(frozen=True, slots=True)
class _Find:
    chunk: Chunk
    since: float


@dataclass(frozen=True, slots=True)
class _Check:
    chunk: Chunk
    batch_id: str


@dataclass(frozen=True, slots=True)
class _Collect:
    chunk: Chunk


@dataclass(frozen=True, slots=True)
class _Poll:
    batch_ids: list[str]
    wait: float


_Action: TypeAlias = _Submit | _Find | _Check | _Collect | _Poll


@dataclass
class JobStatus:
    """Where a job stands, from its files (no API call)."""

    job: str
    requests: int
    done: int
    by_type: dict[str, int]
    """Final results by type: succeeded, errored, expired, canceled."""
    retried: int
    """Requests sent a second time (their first result errored or expired)."""
    batches: list[dict[str, Any]]
    """Per batch: ``batch_id``, ``attempt``, ``status``, ``requests``."""
    cost: float
    """The succeeded results' usage at the batch price (USD), cache reads and writes in."""
    standard_cost: float
    """The same usage at the standard price."""
    unpriced: int = 0

    @property
    def complete(self) -> bool:
        return self.done == self.requests

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "requests": self.requests,
            "done": self.done,
            "complete": self.complete,
            "results": dict(self.by_type),
            "retried": self.retried,
            "cost": round(self.cost, 6),
            "standard_cost": round(self.standard_cost, 6),
            "unpriced": self.unpriced,
            "batches": self.batches,
        }

    def __str__(self) -> str:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(self.by_type.items()) if n)
        lines = [
            f"job      {self.job}: {self.done:,} of {self.requests:,} requests done"
            + (" (complete)" if self.complete else ""),
            f"results  {kinds or 'none yet'}; {self.retried:,} retried once",
            f"cost     ${self.cost:.4f} at the batch price (${self.standard_cost:.4f} standard)",
        ]
        if self.unpriced:
            lines.append(f"note     {self.unpriced:,} results of models with no price are not in $")
        for b in self.batches:
            lines.append(
                f"batch    {b['batch_id'] or '(not created)'}  attempt {b['attempt']}  "
                f"{b['requests']:,} requests  {b['status']}"
            )
        return "\n".join(lines)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _plain(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict(mode="json"))
    raise TypeError(f"expected an SDK object or a dict, got {type(obj).__name__}")


def _seconds(moment: Any) -> float:
    if isinstance(moment, datetime):
        return moment.timestamp()
    if isinstance(moment, str):
        return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
    return float(moment)


def _total(counts: Any) -> int:
    return sum(
        int(_field(counts, k) or 0)
        for k in ("processing", "succeeded", "errored", "canceled", "expired")
    )


def _new_job_name() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"job-{stamp}-{uuid.uuid4().hex[:6]}"


class BatchJob:
    """Many Messages API requests sent through the Message Batches API at its discount.

    Args:
        requests: ``{"custom_id": ..., "params": {...}}`` items, the shape the API takes;
            each ``params`` goes through ``pipeline`` first. None: open the existing ``job``.
        job: the job's name (default: a new one); its files are ``DIR/JOB.*``. A job of
            that name already in ``dir`` is resumed, if it was started with the same requests.
        dir: where the job's files go (default ``.tidyctx/batches``, created if missing).
        pipeline: the transforms for each request's params (default none), e.g.
            ``tc.defaults(cache=False)``.
        breakpoints: ``"shared"`` (default): after the pipeline, each request's cache
            markers are replaced by 1-hour breakpoints at the ends of the prefixes it shares
            with other requests of the job, and none where it shares nothing
            (:func:`~tidyctx.batch.shared_breakpoints`); ``"keep"``: the markers are left
            as the pipeline (or the request) has them.
        ledger: a :class:`tidyctx.Ledger` (or a path: then the rows' ``run`` is the job's
            name) that gets a row per succeeded request, priced at the batch discount.
        max_requests: the most requests one batch holds (default and at most the API's
            limit, 100,000).
        max_bytes: the most bytes one batch's body holds (default and at most the API's
            limit, 256 MB).
        poll_interval: seconds before the first status check; the wait grows 1.5x while
            nothing changes.
        max_interval: the longest wait between status checks, in seconds.

    :meth:`run` (sync client) and :meth:`arun` (async client) submit, poll, save the results
    and retry the errored and expired requests once; a process killed at any point continues
    where it was when started again with the same job, sending nothing twice.
    """

    def __init__(
        self,
        requests: Iterable[Any] | None = None,
        *,
        job: str | None = None,
        dir: str | Path = DEFAULT_DIR,
        pipeline: Transform | Sequence[Transform] = (),
        breakpoints: str = "shared",
        ledger: Ledger | str | Path | None = None,
        max_requests: int = MAX_REQUESTS,
        max_bytes: int = MAX_BYTES,
        poll_interval: float = 10.0,
        max_interval: float = 120.0,
    ) -> None:
        if not 0 <= poll_interval <= max_interval:
            raise ValueError(
                f"need 0 <= poll_interval <= max_interval, got {poll_interval} and {max_interval}"
            )
        if requests is None and job is None:
            raise ValueError("BatchJob needs requests, or the job name of a job to open")
        self.poll_interval = float(poll_interval)
        self.max_interval = float(max_interval)
        self._interval = self.poll_interval
        self._pause = 0.0
        self._hold_until = 0.0
        self._errors = 0
        self._done: dict[str, int] = {}
        self._ids: dict[int, str] | None = None
        directory = Path(dir)
        self.files = Files(directory, job if job is not None else _new_job_name())
        self.job = self.files.job
        if ledger is None or isinstance(ledger, Ledger):
            self.ledger = ledger
        else:  # the job's rows are its own run in the ledger's totals
            self.ledger = Ledger(ledger, run=self.job)
        if requests is None:
            self.state = self.files.load()
            return
        if isinstance(requests, Mapping | str | bytes):
            raise TypeError(
                "BatchJob(requests): give an iterable of {custom_id, params} items, not a "
                f"{type(requests).__name__}"
            )
        if breakpoints not in BREAKPOINTS:
            raise ValueError(f"breakpoints must be 'shared' or 'keep', got {breakpoints!r}")
        limits = Limits(max_requests, max_bytes)
        transforms = [pipeline] if callable(pipeline) else list(pipeline)
        prepared = prepare(requests, transforms, limits, shared=breakpoints == "shared")
        lines = b"".join(encoded(p.item()) + b"\n" for p in prepared)
        directory.mkdir(parents=True, exist_ok=True)
        with job_lock(self.files):
            if self.files.state.exists():
                self.state = self.files.load()
                if self.state.digest != _sha256(lines):
                    raise BatchError(
                        f"job {self.job!r} in {directory} was started with other requests; "
                        "give another job name, or BatchJob(job=...) with no requests to "
                        "continue it"
                    )
                return
            write_atomic(self.files.requests, lines)
            chunks = [
                Chunk(n, 1, [[start, stop]])
                for n, (start, stop) in enumerate(split([p.size for p in prepared], limits))
            ]
            self.state = State(self.job, len(prepared), _sha256(lines), limits, chunks, time.time())
            self.files.save(self.state)

    @classmethod
    def open(cls, job: str, *, dir: str | Path = DEFAULT_DIR, **options: Any) -> BatchJob:
        """The job ``job`` in ``dir``, as its files left it (``options`` as the constructor's:
        ledger, poll_interval, max_interval)."""
        return cls(None, job=job, dir=dir, **options)

    def __repr__(self) -> str:
        return f"BatchJob({self.job!r}, dir={str(self.files.dir)!r})"

    # ------------------------------------------------------------------ reading, no API calls

    def results(self) -> Iterator[dict[str, Any]]:
        """The final results saved so far: ``{custom_id, attempt, batch_id, result}`` with
        ``result`` as the API gave it (``type`` succeeded, errored, expired or canceled)."""
        return self.files.saved()

    def status(self) -> JobStatus:
        """Where the job stands and what its results cost, from its files."""
        by_type: dict[str, int] = {}
        done = unpriced = 0
        total = standard = 0.0
        for row in self.files.saved():
            done += 1
            result = row.get("result") or {}
            kind = str(result.get("type"))
            by_type[kind] = by_type.get(kind, 0) + 1
            message = result.get("message")
            if kind != "succeeded" or not isinstance(message, Mapping):
                continue
            try:
                total += pricing.cost(message.get("usage"), str(message.get("model")), True).total
                standard += pricing.cost(message.get("usage"), str(message.get("model"))).total
            except pricing.UnknownModelError:
                unpriced += 1
        batches = [
            {
                "batch_id": c.batch_id,
                "attempt": c.attempt,
                "status": c.status,
                "requests": c.size,
            }
            for c in self.state.chunks
        ]
        retried = sum(c.size for c in self.state.chunks if c.attempt > 1)
        return JobStatus(
            self.job, self.state.count, done, by_type, retried, batches, total, standard, unpriced
        )

    # ------------------------------------------------------------------ running

    def run(self, client: Any, *, wait: bool = True) -> JobStatus:
        """Carry the job on with ``client`` (an ``anthropic.Anthropic``) until every request
        has a final result; ``wait=False``: do what can be done now (send what is unsent, check
        each open batch once, save what ended) and return.

        A lost connection, a timeout, a 429 or a 5xx is waited out (with backoff, up to
        8 in a row); any other error is raised, and the job goes on from there when run
        again."""
        with job_lock(self.files):
            self._resume()
            polled = False
            while (action := self._next(wait or not polled, wait)) is not None:
                if isinstance(action, _Poll):
                    polled = True
                    time.sleep(action.wait)
                try:
                    self._do(client, action)
                except Exception as err:
                    time.sleep(self._setback(action, err))
                else:
                    self._errors, self._pause = 0, 0.0
        return self.status()

    async def arun(self, client: Any, *, wait: bool = True) -> JobStatus:
        """:meth:`run` with an ``anthropic.AsyncAnthropic``."""
        with job_lock(self.files):
            self._resume()
            polled = False
            while (action := self._next(wait or not polled, wait)) is not None:
                if isinstance(action, _Poll):
                    polled = True
                    await asyncio.sleep(action.wait)
                try:
                    await self._ado(client, action)
                except Exception as err:
                    await asyncio.sleep(self._setback(action, err))
                else:
                    self._errors, self._pause = 0, 0.0
        return self.status()

    def _do(self, client: Any, action: _Action) -> None:
        """Carry out ``action`` with a sync client."""
        batches = client.messages.batches
        if isinstance(action, _Poll):
            for batch_id in action.batch_ids:
                self._polled(batches.retrieve(batch_id))
        elif isinstance(action, _Submit):
            items = self._submitting(action.chunk)
            creator = client.with_options(max_retries=0).messages.batches
            self._submitted(action.chunk, creator.create(requests=items))
        elif isinstance(action, _Find):
            found = []
            for batch in batches.list(limit=100):
                if _seconds(batch.created_at) < action.since:
                    break
                found.append(batch)
            self._found(action.chunk, found)
        elif isinstance(action, _Check):
            ids = [line.custom_id for line in batches.results(action.batch_id)]
            self._checked(action.chunk, action.batch_id, ids)
        else:
            with self._collecting(action.chunk) as take:
                for line in batches.results(action.chunk.batch_id):
                    take(line)

    async def _ado(self, client: Any, action: _Action) -> None:
        """Carry out ``action`` with an async client."""
        batches = client.messages.batches
        if isinstance(action, _Poll):
            for batch_id in action.batch_ids:
                self._polled(await batches.retrieve(batch_id))
        elif isinstance(action, _Submit):
            items = self._submitting(action.chunk)
            creator = client.with_options(max_retries=0).messages.batches
            self._submitted(action.chunk, await creator.create(requests=items))
        elif isinstance(action, _Find):
            found = []
            async for batch in batches.list(limit=100):
                if _seconds(batch.created_at) < action.since:
                    break
                found.append(batch)
            self._found(action.chunk, found)
        elif isinstance(action, _Check):
            lines = await batches.results(action.batch_id)
            ids = [line.custom_id async for line in lines]
            self._checked(action.chunk, action.batch_id, ids)
        else:
            with self._collecting(action.chunk) as take:
                async for line in await batches.results(action.chunk.batch_id):
                    take(line)

    # ------------------------------------------------------------------ decisions

    def _resume(self) -> None:
        """Reload the state (another process may have moved the job on) and the done set."""
        self.state = self.files.load()
        self._done = self.files.done()
        self._ids = None
        self._pause = self._hold_until = 0.0
        self._errors = 0
        self._interval = self.poll_interval

    def _next(self, poll: bool, wait: bool) -> _Action | None:
        """The next thing to do: look for a batch a kill may have left unrecorded, send what is
        unsent, save what ended, check a candidate, or poll the open batches (``poll``), first
        sleeping the backoff (``wait``); None: nothing left (or only polls, not wanted)."""
        chunks = self.state.chunks
        for chunk in chunks:
            if chunk.status == "submitting":
                return _Find(chunk, (chunk.intent_at or 0.0) - _CLOCK_MARGIN)
        now = time.time()
        held = False  # a create turned away (429, 529): not sent again before _hold_until
        for chunk in chunks:
            if chunk.status == "pending":
                if now >= self._hold_until:
                    return _Submit(chunk)
                held = True
                break
        for chunk in chunks:
            if chunk.status in ("ended", "collecting"):
                return _Collect(chunk)
        for chunk in chunks:
            for batch_id, status in chunk.candidates.items():
                if status == "ended":
                    return _Check(chunk, batch_id)
        open_ids = [c.batch_id for c in chunks if c.status == "in_progress" and c.batch_id]
        open_ids += [b for c in chunks for b, s in c.candidates.items() if s != "ended"]
        if not poll or not (open_ids or held):
            return None
        if not wait:
            return _Poll(open_ids, 0.0) if open_ids else None
        delay = self._interval
        self._interval = min(self.max_interval, self._interval * 1.5)
        if held:
            delay = min(delay, self._hold_until - now)
        return _Poll(open_ids, delay)

    def _save(self) -> None:
        self.files.save(self.state)
        self._interval = self.poll_interval  # something moved: look again soon

    def _items(self, chunk: Chunk) -> list[dict[str, Any]]:
        return [json.loads(line) for _, line in self.files.items(set(chunk.indices()))]

    def _submitting(self, chunk: Chunk) -> list[dict[str, Any]]:
        items = self._items(chunk)
        chunk.status = "submitting"
        chunk.intent_at = time.time()
        self._save()  # on disk before the create call: a kill from here on is looked for
        return items

    def _submitted(self, chunk: Chunk, batch: Any) -> None:
        chunk.batch_id = str(_field(batch, "id"))
        chunk.status = "ended" if _field(batch, "processing_status") == "ended" else "in_progress"
        chunk.counts = _plain(_field(batch, "request_counts"))
        self._save()
        self._hold_until = 0.0

    def _setback(self, action: _Action, err: Exception) -> float:
        """The pause after ``action`` raised ``err``, or ``err`` raised again: it is not
        passing, or it came too many times in a row."""
        self._pause = min(self.max_interval, max(self._pause * 2, self.poll_interval))
        if isinstance(action, _Submit) and self._turned_away(action.chunk, err):
            return 0.0  # the other batches are polled meanwhile
        self._errors += 1
        if not _transient(err) or self._errors >= _MAX_ERRORS:
            raise err
        return self._pause

    def _turned_away(self, chunk: Chunk, err: Exception) -> bool:
        """After a create call raised: True if the API made no batch and will take it later
        (a 429 or 529: sent again after a pause, meanwhile the open batches are polled).
        Raises :class:`BatchError` for a request it refused (another 4xx). Anything else may
        have made the batch: the chunk stays ``submitting``, to be looked for."""
        status = _status(err)
        if status in (429, 529):
            # Turned away before any work: rate limited (the queue of a tier is full) or
            # overloaded (https://platform.claude.com/docs/en/api/errors).
            chunk.status = "pending"
            self._save()
            self._hold_until = time.time() + max(self._pause, _retry_after(err))
            return True
        if status is not None and 400 <= status < 500 and status != 408:
            chunk.status = "pending"
            self._save()
            first, last = chunk.requests[0][0], chunk.requests[-1][1] - 1
            raise BatchError(
                f"the API refused batch {chunk.n} of job {self.job!r} (requests {first} to "
                f"{last}, attempt {chunk.attempt}): {err}"
            ) from err
        return False

    def _found(self, chunk: Chunk, listed: list[Any]) -> None:
        """The batches created since the chunk's intent: those the size of the chunk that no
        other chunk holds become its candidates; none: the create never arrived."""
        taken = {c.batch_id for c in self.state.chunks if c.batch_id}
        chunk.candidates = {
            str(_field(b, "id")): str(_field(b, "processing_status"))
            for b in listed
            if _total(_field(b, "request_counts")) == chunk.size
            and str(_field(b, "id")) not in taken
            and str(_field(b, "id")) not in chunk.rejected
        }
        chunk.status = "matching" if chunk.candidates else "pending"
        self._save()

    def _polled(self, batch: Any) -> None:
        batch_id = str(_field(batch, "id"))
        status = str(_field(batch, "processing_status"))
        for chunk in self.state.chunks:
            if chunk.batch_id == batch_id and chunk.status == "in_progress":
                chunk.counts = _plain(_field(batch, "request_counts"))
                if status == "ended":
                    chunk.status = "ended"
                    self._save()
            elif batch_id in chunk.candidates and chunk.candidates[batch_id] != status:
                chunk.candidates[batch_id] = status
                self._save()

    def _checked(self, chunk: Chunk, batch_id: str, custom_ids: list[str]) -> None:
        ids = self._custom_ids()
        if sorted(custom_ids) == sorted(ids[i] for i in chunk.indices()):
            chunk.batch_id = batch_id
            chunk.status = "ended"
            chunk.candidates = {}
        else:
            chunk.candidates.pop(batch_id, None)
            chunk.rejected.append(batch_id)
            if not chunk.candidates:
                chunk.status = "pending"
        self._save()

    def _custom_ids(self) -> dict[int, str]:
        if self._ids is None:
            self._ids = {
                i: str(json.loads(line)["custom_id"])
                for i, line in self.files.items(set(range(self.state.count)))
            }
        return self._ids

    @contextlib.contextmanager
    def _collecting(self, chunk: Chunk) -> Iterator[Any]:
        """Save the final results of an ended batch (``take`` each line); after the last, the
        chunk is ``collected`` and its retry chunk made, in one save of the state."""
        ids = self._custom_ids()
        wanted = {ids[i]: i for i in chunk.indices()}
        batch_id = str(chunk.batch_id)
        if chunk.status == "collecting":
            # Read before by a process killed midway: some of its ledger rows are written.
            logged = self._logged(batch_id)
        else:
            logged = set()
            chunk.status = "collecting"
            self.files.save(self.state)
        retry: list[int] = []
        with open(self.files.results, "ab") as out:

            def take(line: Any) -> None:
                custom_id = str(_field(line, "custom_id"))
                index = wanted.get(custom_id)
                if index is None:
                    return
                result = _plain(_field(line, "result"))
                kind = result.get("type")
                error = ((result.get("error") or {}).get("error") or {}).get("type")
                if chunk.attempt == 1 and (
                    kind == "expired" or (kind == "errored" and error not in _NOT_RETRIED)
                ):
                    retry.append(index)
                    return
                if custom_id not in self._done:
                    row = {
                        "custom_id": custom_id,
                        "attempt": chunk.attempt,
                        "batch_id": batch_id,
                        "result": result,
                    }
                    out.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
                    self._done[custom_id] = chunk.attempt
                if kind == "succeeded" and self.ledger is not None and custom_id not in logged:
                    out.flush()  # the result is saved before its ledger row
                    self._ledger_row(custom_id, chunk, result.get("message") or {})

            yield take
            out.flush()
            os.fsync(out.fileno())
        chunk.status = "collected"
        if retry:
            sizes = [len(line) for _, line in self.files.items(set(retry))]
            order = sorted(retry)
            for start, stop in split(sizes, self.state.limits):
                n = len(self.state.chunks)
                self.state.chunks.append(Chunk(n, chunk.attempt + 1, ranges(order[start:stop])))
        self._save()

    def _logged(self, batch_id: str) -> set[str]:
        """The requests of ``batch_id`` with a row in the ledger already (a line cut by a
        kill, or another writer's, is passed over)."""
        if self.ledger is None or not self.ledger.path.exists():
            return set()
        out: set[str] = set()
        with open(self.ledger.path, "rb") as f:
            for line in f:
                if batch_id.encode() not in line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if row.get("batch_id") == batch_id and row.get("job") == self.job:
                    out.add(str(row.get("custom_id")))
        return out

    def _ledger_row(self, custom_id: str, chunk: Chunk, message: Mapping[str, Any]) -> None:
        assert self.ledger is not None
        usage = pricing.usage_dict(message.get("usage") or {})
        model = str(message.get("model") or "")
        cost = price(usage, model, batch=True)
        self.ledger.write(
            {
                "kind": "batch",
                "batch": True,
                "api": "messages.batches",
                "job": self.job,
                "batch_id": chunk.batch_id,
                "custom_id": custom_id,
                "attempt": chunk.attempt,
                "model": model,
                "id": message.get("id"),
                "stop_reason": message.get("stop_reason"),
                "usage": usage,
                "cost": cost,
                "standard_cost": price(usage, model),
                "baseline_cost": cost,
            }
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _status(err: Exception) -> int | None:
    """The HTTP status of an error the API answered with (None: no answer, or not the API)."""
    try:
        import anthropic
    except ImportError:  # pragma: no cover - the SDK is what calls us
        return None
    return err.status_code if isinstance(err, anthropic.APIStatusError) else None


def _retry_after(err: Exception) -> float:
    """The seconds the API asked to wait (its ``retry-after`` header), else 0."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return max(0.0, float(headers.get("retry-after", 0)))
    except (TypeError, ValueError):
        return 0.0


def _transient(err: Exception) -> bool:
    """An error that may pass: an SDK connection error or timeout, a 408, 429 or 5xx."""
    try:
        import anthropic
    except ImportError:  # pragma: no cover - the SDK is what calls us
        return False
    if isinstance(err, anthropic.APIConnectionError):
        return True
    status = _status(err)
    return status is not None and (status in (408, 429) or status >= 500)
