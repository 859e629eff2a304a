"""Message Batches jobs: many requests at the batch discount, resumable after a kill.

:class:`BatchJob` takes ``{custom_id, params}`` requests, runs each ``params`` through a
pipeline (by default 1-hour cache breakpoints, so requests that share a prefix can read it from
the cache), splits them into batches within the API's limits (100,000 requests or 256 MB per
batch), submits them with the caller's client, polls with backoff, saves each result matched to
its ``custom_id``, retries the errored and expired requests once in a new batch, and writes a
ledger row per succeeded request priced at the batch discount. Its state is saved atomically
after every step, so a process killed at any point continues, when started again, without
sending anything twice. See https://platform.claude.com/docs/en/build-with-claude/batch-processing.

>>> from tidyctx.batch import Limits, split
>>> split([10, 10, 10], Limits(requests=2))
[(0, 2), (2, 3)]
"""

from tidyctx.batch._job import DEFAULT_DIR, BatchJob, JobStatus, default_pipeline
from tidyctx.batch._prepare import (
    CUSTOM_ID,
    MAX_BYTES,
    MAX_REQUESTS,
    BatchError,
    Limits,
    split,
)

__all__ = [
    "CUSTOM_ID",
    "DEFAULT_DIR",
    "MAX_BYTES",
    "MAX_REQUESTS",
    "BatchError",
    "BatchJob",
    "JobStatus",
    "Limits",
    "default_pipeline",
    "split",
]
