"""The offline stand-in for a model writing a summary, for any peer that summarizes.

The benchmarks cannot reach the API, so every summary a strategy asks for (tidyctx's
summarize(), LangChain's SummarizationMiddleware, the server's compact_20260112 edit) is
written by the same deterministic extractive summarizer, tidyctx.testing.summary_responder,
from the same serialized span. Peers are then compared on what they summarize and when, not on
whose prompt a real model would follow better. benchmarks/summary_calibration.py measures how
far this stand-in's recall is from real models' summaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidyctx.testing import summary_responder
from tidyctx.transforms._summarize import serialize, summary_blocks


def standin_summary(messages: Sequence[Any], max_tokens: int, previous: str | None = None) -> str:
    """The stand-in's summary of ``messages`` (Messages API message dicts), written to fit
    two thirds of ``max_tokens`` as summary_responder does; ``previous`` is an earlier summary
    the new one carries forward."""
    content = summary_blocks(previous or None, serialize(messages))
    body = {"max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]}
    return summary_responder(body)
