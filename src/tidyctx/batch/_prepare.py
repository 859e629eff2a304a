"""Checking batch requests, running them through the pipeline, and splitting them by the limits.

The limits are those of the Message Batches API
(https://platform.claude.com/docs/en/build-with-claude/batch-processing): a batch holds at most
100,000 requests or 256 MB, whichever comes first; each request has a ``custom_id`` of 1 to 64
letters, digits, ``_`` or ``-``, unique in its batch
(https://platform.claude.com/docs/en/api/messages/batches/create).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidyctx._pipeline import Transform, flat, pipe
from tidyctx._request import check_encodable

__all__ = [
    "CUSTOM_ID",
    "MAX_BYTES",
    "MAX_REQUESTS",
    "BatchError",
    "JobBusy",
    "Limits",
    "Prepared",
    "encoded",
    "prepare",
    "split",
]

MAX_REQUESTS = 100_000
"""The most requests one batch holds."""

MAX_BYTES = 256_000_000
"""The most bytes one batch's body holds: 256 MB, read as the smaller 256 x 10^6, so a body
within it is within the limit however the API counts a megabyte."""

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""The pattern of a ``custom_id``, as the API reference gives it."""

# The body is {"requests": [item, item, ...]}: its bytes besides the items.
_BODY_OVERHEAD = len('{"requests": []}')
_SEPARATOR = len(", ")


class BatchError(ValueError):
    """A batch job that cannot go on: bad requests, a state file that is not this job's, a
    request the API refused. The message names the request, file or batch."""


class JobBusy(BatchError):
    """The job is being run by another process (it holds the job's lock)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one batch of the job may hold: at most the API's limits."""

    requests: int = MAX_REQUESTS
    bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        for name, value, most in (
            ("max_requests", self.requests, MAX_REQUESTS),
            ("max_bytes", self.bytes, MAX_BYTES),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ValueError(
                    f"{name} must be an integer from 1 to {most:,} (the Message Batches API's "
                    f"limit), got {value!r}"
                )


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request as it will be sent: its id, its params after the pipeline, its size in the
    body (an upper bound: ASCII-escaped JSON with spaces)."""

    custom_id: str
    params: dict[str, Any]
    size: int

    def item(self) -> dict[str, Any]:
        return {"custom_id": self.custom_id, "params": self.params}


def encoded(item: Mapping[str, Any]) -> bytes:
    """``item`` as JSON, as long as or longer than any encoding the SDK may send it in."""
    return json.dumps(item, ensure_ascii=True, allow_nan=False).encode("ascii")


def _check_item(i: int, item: Any, seen: dict[str, int]) -> tuple[str, dict[str, Any]]:
    where = f"requests[{i}]"
    if not isinstance(item, Mapping):
        raise BatchError(
            f"{where}: must be an object with custom_id and params (the Message Batches request "
            f"shape), got {type(item).__name__}"
        )
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
        raise BatchError(
            f"{where}.custom_id: must be 1 to 64 letters, digits, '_' or '-', got {custom_id!r}"
        )
    if custom_id in seen:
        raise BatchError(
            f"{where}.custom_id: duplicate custom_id {custom_id!r} (also requests"
            f"[{seen[custom_id]}]); each request needs its own, to match its result to it"
        )
    seen[custom_id] = i
    params = item.get("params")
    if not isinstance(params, Mapping):
        raise BatchError(
            f"{where} ({custom_id!r}).params: must be the Messages API request (an object), "
            f"got {type(params).__name__}"
        )
    extra = sorted(set(item) - {"custom_id", "params"})
    if extra:
        raise BatchError(
            f"{where} ({custom_id!r}): unknown keys {extra}; expected custom_id, params"
        )
    # Streaming is not available in a batch request (the batch-processing page).
    if params.get("stream"):
        raise BatchError(f"request {custom_id!r}: stream is not supported in a batch request")
    return custom_id, dict(params)


def prepare(
    requests: Iterable[Any], pipeline: Sequence[Transform], limits: Limits, *, shared: bool
) -> list[Prepared]:
    """Check every request, run its params through ``pipeline``, place the job's cache
    breakpoints (``shared``: :func:`~tidyctx.batch._shared.shared_breakpoints`) and size it.

    Raises :class:`BatchError` naming the request for a bad or duplicate ``custom_id``, a
    request that is not ``{custom_id, params}``, and a request larger than a batch may be.
    """
    from tidyctx.batch._shared import shared_breakpoints

    transforms = flat(pipeline)
    seen: dict[str, int] = {}
    ids: list[str] = []
    sent: list[dict[str, Any]] = []
    for i, item in enumerate(requests):
        custom_id, params = _check_item(i, item, seen)
        ids.append(custom_id)
        try:
            done = pipe(params, *transforms) if transforms else params
            check_encodable(done)  # a lone surrogate, a NaN: named here, not deep in the SDK
        except ValueError as err:
            raise BatchError(f"request {custom_id!r} (requests[{i}]): {err}") from None
        sent.append(done)
    if not sent:
        raise BatchError("no requests: a batch job needs at least one")
    if shared:
        sent = shared_breakpoints(sent)
    out: list[Prepared] = []
    for i, (custom_id, params) in enumerate(zip(ids, sent, strict=True)):
        size = len(encoded({"custom_id": custom_id, "params": params}))
        if size + _BODY_OVERHEAD > limits.bytes:
            raise BatchError(
                f"request {custom_id!r} (requests[{i}]) is {size:,} bytes as JSON; a batch holds "
                f"at most {limits.bytes:,} bytes in all, so it fits in none: make it smaller or "
                "send it with client.messages.create"
            )
        out.append(Prepared(custom_id, params, size))
    return out


def split(sizes: Sequence[int], limits: Limits) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` ranges of requests, each within ``limits`` (requests and
    body bytes); every size must fit in a batch alone (:func:`prepare` checks)."""
    chunks: list[tuple[int, int]] = []
    start, used = 0, _BODY_OVERHEAD
    for i, size in enumerate(sizes):
        grown = used + size + (_SEPARATOR if i > start else 0)
        if i > start and (i - start >= limits.requests or grown > limits.bytes):
            chunks.append((start, i))
            start, grown = i, _BODY_OVERHEAD + size
        used = grown
    if sizes:
        chunks.append((start, len(sizes)))
    return chunks
