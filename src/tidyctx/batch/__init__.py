"""Message Batches jobs: many requests at the batch discount, resumable after a kill.

:class:`BatchJob` takes ``{custom_id, params}`` requests, runs each ``params`` through a
pipeline, places 1-hour cache breakpoints at the ends of the prefixes the requests share (and
nowhere else: :func:`shared_breakpoints`), splits them into batches within the API's limits
(100,000 requests or 256 MB per batch), submits them with the caller's client, polls with
backoff, saves each result matched to its ``custom_id``, retries the errored and expired
requests once in a new batch, and writes a ledger row per succeeded request priced at the batch
discount. Its state is saved atomically after every step, so a process killed at any point
continues, when started again, without sending anything twice.
See https://platform.claude.com/docs/en/build-with-claude/batch-processing.

>>> from tidyctx.batch import Limits, split
>>> split([10, 10, 10], Limits(requests=2))
[(0, 2), (2, 3)]
"""

from tidyctx.batch._job import BREAKPOINTS, DEFAULT_DIR, BatchJob, JobStatus
from tidyctx.batch._prepare import (
    CUSTOM_ID,
    MAX_BYTES,
    MAX_REQUESTS,
    BatchError,
    JobBusy,
    Limits,
    split,
)
from tidyctx.batch._shared import shared_breakpoints

__all__ = [
    "BREAKPOINTS",
    "CUSTOM_ID",
    "DEFAULT_DIR",
    "MAX_BYTES",
    "MAX_REQUESTS",
    "BatchError",
    "BatchJob",
    "JobBusy",
    "JobStatus",
    "Limits",
    "shared_breakpoints",
    "split",
]
