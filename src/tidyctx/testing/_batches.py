"""The Message Batches API of the local server: create, list, retrieve, cancel, delete, results.

A batch ends on its ``batch_polls``-th retrieve (or at once), or on the first retrieve 24 hours
after its creation by the server's clock; its requests are processed then, each answered as
``POST /v1/messages`` would answer it, as described in
https://platform.claude.com/docs/en/build-with-claude/batch-processing. A
:data:`BatchOutcome` hook can make a request end ``errored`` or ``expired`` instead.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

from tidyctx.testing._http import Out, error_response
from tidyctx.testing._messages import DEFAULT_MESSAGES, Fail, MessagesAPI, error_type_for

__all__ = ["MAX_BATCH_REQUESTS", "BatchOutcome", "Batches"]

BatchOutcome: TypeAlias = Callable[[str, dict[str, Any]], "Fail | Literal['expired'] | None"]
"""Called with each request's ``custom_id`` and (a copy of) its params when its batch is
processed: ``None`` processes it as usual, ``"expired"`` ends it ``expired`` (as a request the
API did not reach within 24 hours), a :class:`~tidyctx.testing.Fail` ends it ``errored`` with
that error's type and message (``Fail(500)``: an ``api_error``)."""

_EXPIRY = timedelta(hours=24)

# A batch holds at most 100,000 requests (and 256 MB, see _http.MAX_BODY):
# https://docs.claude.com/en/docs/build-with-claude/batch-processing
MAX_BATCH_REQUESTS = 100_000
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    id: str
    requests: list[tuple[str, dict[str, Any]]]
    created_at: datetime
    polls: int = 0
    status: str = "in_progress"
    finishing: bool = False
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None
    results: list[dict[str, Any]] | None = None
    headers: Mapping[str, str] | None = None


PrefixHook = Callable[[dict[str, Any], Mapping[str, str]], tuple[str | None, Any]]
"""The server's prefix check of one batch request: the error, or None and the
``input_transformations`` to answer with."""

BindHook = Callable[[dict[str, Any], Mapping[str, Any]], None]
"""The server's record of what the thinking blocks of an answer are bound to."""


class Batches:
    """The batches of one server.

    ``messages`` answers each request of a batch; ``request_id`` gives the ids of errored
    results; ``clock`` is the server's (see :class:`~tidyctx.testing.LocalServer`);
    ``base_url`` gives the server's address for ``results_url``; ``outcome`` is the
    :data:`BatchOutcome` hook (may be replaced while the server runs); ``prefix`` and ``bind``:
    the server's prefix check on thinking blocks, run on each request when the batch is
    processed (with the headers of the call that created the batch).
    """

    def __init__(
        self,
        messages: MessagesAPI,
        *,
        request_id: Callable[[], str],
        clock: Callable[[], float | datetime] | None,
        base_url: Callable[[], str],
        outcome: BatchOutcome | None = None,
        prefix: PrefixHook | None = None,
        bind: BindHook | None = None,
    ) -> None:
        self.outcome = outcome
        self._messages = messages
        self._prefix = prefix
        self._bind = bind
        self._request_id = request_id
        self._time = clock
        self._base_url = base_url
        self._lock = threading.RLock()
        self._batches: dict[str, _Batch] = {}
        self._batch_ids = 0

    def clear(self) -> None:
        """Forget every batch."""
        with self._lock:
            self._batches.clear()

    def _now(self) -> datetime:
        """The time for batch timestamps."""
        if self._time is None:
            return datetime.now(UTC)
        now = self._time()
        return now if isinstance(now, datetime) else datetime.fromtimestamp(now, UTC)

    def _json(self, batch: _Batch) -> dict[str, Any]:
        total = len(batch.requests)
        counts = {"processing": total, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.results is not None:
            counts["processing"] = 0
            for line in batch.results:
                counts[line["result"]["type"]] += 1
        ended = batch.status == "ended"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "created_at": _timestamp(batch.created_at),
            "expires_at": _timestamp(batch.created_at + _EXPIRY),
            "ended_at": _timestamp(batch.ended_at) if batch.ended_at else None,
            "archived_at": None,
            "cancel_initiated_at": (
                _timestamp(batch.cancel_initiated_at) if batch.cancel_initiated_at else None
            ),
            "results_url": (
                f"{self._base_url()}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }

    def create(self, body: Any, polls: int, headers: Mapping[str, str] | None = None) -> Out:
        """``POST /v1/messages/batches``: a batch that ends at once when ``polls`` is 0, else on
        a later retrieve (see :meth:`retrieve`); ``headers``: the creating call's, for the
        prefix check of its requests."""
        if not isinstance(body, dict):
            return error_response(400, "The request body must be a JSON object")
        requests = body.get("requests")
        if not isinstance(requests, list):
            return error_response(400, "requests: Field required (a list of {custom_id, params})")
        if not requests:
            return error_response(400, "requests: a batch needs at least one request")
        if len(requests) > MAX_BATCH_REQUESTS:
            return error_response(
                400,
                f"requests: a batch holds at most {MAX_BATCH_REQUESTS:,} requests, "
                f"got {len(requests):,}",
            )
        seen: dict[str, int] = {}
        parsed: list[tuple[str, dict[str, Any]]] = []
        for i, item in enumerate(requests):
            if not isinstance(item, dict):
                return error_response(
                    400, f"requests[{i}]: must be an object with custom_id and params"
                )
            custom_id = item.get("custom_id")
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                return error_response(
                    400,
                    f"requests[{i}].custom_id: must be 1 to 64 characters of letters, digits, "
                    f"'_' or '-', got {custom_id!r}",
                )
            if custom_id in seen:
                return error_response(
                    400,
                    f"requests[{i}].custom_id: duplicate custom_id {custom_id!r} "
                    f"(also requests[{seen[custom_id]}]); custom_ids must be unique in a batch",
                )
            seen[custom_id] = i
            params = item.get("params")
            if not isinstance(params, dict):
                return error_response(400, f"requests[{i}].params: Field required (an object)")
            parsed.append((custom_id, copy.deepcopy(params)))
        with self._lock:
            self._batch_ids += 1
            batch_id = f"msgbatch_local{self._batch_ids:015d}"
            batch = _Batch(batch_id, parsed, self._now(), headers=headers)
            self._batches[batch_id] = batch
        if polls == 0:
            self._end(batch)
        with self._lock:
            return Out(200, self._json(batch))

    def _end(self, batch: _Batch, *, expired: bool = False) -> None:
        """Process every request (outside the lock: hooks run here) and mark the batch ended;
        ``expired``: none is processed, each ends ``expired``."""
        canceled = batch.status == "canceling"
        results = []
        for custom_id, params in batch.requests:
            if canceled:
                result: dict[str, Any] = {"type": "canceled"}
            elif expired:
                result = {"type": "expired"}
            else:
                result = self._outcome(custom_id, params) or self._result(
                    params, batch.headers or {}
                )
            results.append({"custom_id": custom_id, "result": result})
        with self._lock:
            batch.results = results
            batch.status = "ended"
            batch.ended_at = self._now()
            batch.finishing = False

    def _outcome(self, custom_id: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The result the :data:`BatchOutcome` hook chose, or None to process as usual."""
        hook = self.outcome
        chosen = hook(custom_id, copy.deepcopy(params)) if hook is not None else None
        if chosen is None:
            return None
        if chosen == "expired":
            return {"type": "expired"}
        if isinstance(chosen, Fail):
            kind = chosen.error_type or error_type_for(chosen.status)
            error = {
                "type": "error",
                "error": {
                    "type": kind,
                    "message": chosen.message or DEFAULT_MESSAGES.get(kind, "Error"),
                },
                "request_id": self._request_id(),
            }
            return {"type": "errored", "error": error}
        raise TypeError(
            f"batch_outcome returned {chosen!r} for {custom_id!r}: expected None, 'expired' or "
            "a Fail"
        )

    def _result(self, params: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        # The API validates a request's params only when the batch is processed, see
        # https://docs.claude.com/en/docs/build-with-claude/batch-processing
        problem = self._messages.problem(params, "batch")
        kind = "invalid_request_error"
        transformations: Any = None
        if problem is None and self._prefix is not None:
            problem, transformations = self._prefix(params, headers)
        if problem is None:
            try:
                message = self._messages.message(
                    params, self._messages.reply_for(params), service_tier="batch"
                )
            except Exception as err:  # a failing hook errors this request, not the batch
                problem, kind = f"LocalServer failed: {type(err).__name__}: {err}", "api_error"
            else:
                if transformations is not None:
                    message["input_transformations"] = transformations
                if self._bind is not None:
                    self._bind(params, message)
                return {"type": "succeeded", "message": message}
        error = {
            "type": "error",
            "error": {"type": kind, "message": problem},
            "request_id": self._request_id(),
        }
        return {"type": "errored", "error": error}

    def _find(self, batch_id: str) -> _Batch | Out:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return error_response(404, f"message_batch {batch_id!r} not found")
        return batch

    def retrieve(self, batch_id: str, polls: int) -> Out:
        """``GET /v1/messages/batches/{id}``: the batch ends on its ``polls``-th retrieve (the
        server's ``batch_polls`` now, so changing it applies to open batches), on the first
        after a cancel, or, with every request expired, on the first 24 hours after creation
        (the documented expiry)."""
        found = self._find(batch_id)
        if isinstance(found, Out):
            return found
        batch = found
        end = expired = False
        with self._lock:
            if batch.status != "ended" and not batch.finishing:
                batch.polls += 1
                expired = batch.status != "canceling" and (
                    self._now() >= batch.created_at + _EXPIRY
                )
                if batch.status == "canceling" or expired or batch.polls >= polls:
                    batch.finishing = end = True
        if end:
            self._end(batch, expired=expired)
        with self._lock:
            return Out(200, self._json(batch))

    def list_batches(self, query: dict[str, str]) -> Out:
        """``GET /v1/messages/batches``: newest first, paged (limit, after_id, before_id)."""
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return error_response(400, f"limit: must be an integer, got {query.get('limit')!r}")
        if not 1 <= limit <= 1000:
            return error_response(400, f"limit: must be between 1 and 1000, got {limit}")
        with self._lock:
            newest_first = list(reversed(self._batches.values()))
            ids = [batch.id for batch in newest_first]
            after, before = query.get("after_id"), query.get("before_id")
            for cursor in (after, before):
                if cursor is not None and cursor not in ids:
                    return error_response(400, f"unknown pagination cursor {cursor!r}")
            if before is not None:
                end = ids.index(before)
                page = newest_first[max(0, end - limit) : end]
                has_more = end - limit > 0
            else:
                start = ids.index(after) + 1 if after is not None else 0
                page = newest_first[start : start + limit]
                has_more = start + limit < len(newest_first)
            data = [self._json(batch) for batch in page]
        return Out(
            200,
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def cancel(self, batch_id: str) -> Out:
        """``POST /v1/messages/batches/{id}/cancel``: the next poll ends it, all canceled."""
        found = self._find(batch_id)
        if isinstance(found, Out):
            return found
        with self._lock:
            if found.status == "in_progress" and not found.finishing:
                found.status = "canceling"
                found.cancel_initiated_at = self._now()
            return Out(200, self._json(found))

    def delete(self, batch_id: str) -> Out:
        """``DELETE /v1/messages/batches/{id}``, once it has ended."""
        found = self._find(batch_id)
        if isinstance(found, Out):
            return found
        with self._lock:
            if found.status != "ended":
                return error_response(
                    400,
                    f"message_batch {batch_id!r} is still processing; Message Batches can only "
                    "be deleted once they have finished processing (cancel it first)",
                )
            del self._batches[batch_id]
        return Out(200, {"id": batch_id, "type": "message_batch_deleted"})

    def results(self, batch_id: str) -> Out:
        """``GET /v1/messages/batches/{id}/results``: JSON Lines, one result per request."""
        found = self._find(batch_id)
        if isinstance(found, Out):
            return found
        with self._lock:
            results = found.results
        if results is None:
            return error_response(400, f"message_batch {batch_id!r} has not ended yet: no results")
        lines = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in results)
        return Out(200, raw=lines.encode("utf-8"), content_type="application/binary")
