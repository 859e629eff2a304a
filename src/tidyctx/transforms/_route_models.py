"""The models' own rules for a request that changes model, as route() enforces them.

A switch is made only to a model that can take the request as it stands (:func:`fit`), and
changes only what the new model requires (:func:`adapted`):

- the prompt plus ``max_tokens`` fits the model's context window
  (https://platform.claude.com/docs/en/build-with-claude/context-windows);
- ``thinking`` ``enabled`` needs a model with extended thinking
  (https://platform.claude.com/docs/en/build-with-claude/extended-thinking), ``adaptive`` one
  with adaptive thinking (https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking);
- thinking blocks of earlier turns go back unmodified, whichever model wrote them: their
  signature must stay intact (extended-thinking page, "Preserving thinking blocks"), and a
  model that cannot read another model's block drops it from the request without an error
  (https://platform.claude.com/docs/en/build-with-claude/preserved-thinking, "Switching models
  mid-conversation"). route() never edits them;
- a request ending in an assistant message (a prefill) is refused by Opus 4.6, Opus 4.7 and
  Sonnet 4.6 (https://platform.claude.com/docs/en/api/errors), so it never moves to them;
- ``speed`` (fast mode) is a property of one model
  (https://platform.claude.com/docs/en/about-claude/pricing, "Fast mode"): such a request stays;
- server-side compaction (``compact_20260112``) runs on Opus 4.6+ and Sonnet 4.6+ only
  (https://platform.claude.com/docs/en/build-with-claude/compaction);
- ``output_config.effort`` is accepted by the models listed on
  https://platform.claude.com/docs/en/build-with-claude/effort; moving to a model without it
  drops the field, and a level the model lacks (``xhigh``, ``max``) becomes ``high``, the
  level equivalent to leaving it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidyctx import pricing
from tidyctx._request import Request
from tidyctx.tokens import LocalCounter

__all__ = ["adapted", "canonical", "fit"]


# Models with extended thinking ("Supported models" of
# https://platform.claude.com/docs/en/build-with-claude/extended-thinking): every model of the
# price table except these older ones.
_NO_THINKING = frozenset(
    {
        "claude-3-5-haiku-20241022",
        "claude-3-haiku-20240307",
        "claude-3-5-sonnet-20241022",
        "claude-3-opus-20240229",
    }
)
# Adaptive thinking: Opus 4.6, Sonnet 4.6 and later
# (https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking).
_ADAPTIVE = frozenset(
    {
        "claude-opus-4-6",
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-sonnet-4-6",
        "claude-opus-5",
        "claude-opus-5-5",
        "claude-sonnet-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
        "claude-fable-5",
        "claude-fable-5-1",
        "claude-mythos-5",
        "claude-mythos-5-1",
    }
)
# output_config.effort: the supported models of
# https://platform.claude.com/docs/en/build-with-claude/effort.
_EFFORT = frozenset(
    {
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-4-5-20251101",
        "claude-sonnet-5-5",
        "claude-sonnet-5",
        "claude-sonnet-4-6",
        "claude-haiku-5-5",
    }
)
# The effort levels above "high" and the models that take each (the same page's table of
# levels).
_EFFORT_MAX = frozenset(
    {
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-5",
        "claude-sonnet-4-6",
    }
)
_EFFORT_XHIGH = frozenset(
    {"claude-fable-5", "claude-mythos-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7",
     "claude-sonnet-5"}
)  # fmt: skip
# A final assistant message (prefill) is a 400 on these
# (https://platform.claude.com/docs/en/api/errors).
_NO_PREFILL = frozenset({"claude-opus-4-6", "claude-opus-4-7", "claude-sonnet-4-6"})
# Server-side compaction: Opus 4.6+, Sonnet 4.6+
# (https://platform.claude.com/docs/en/build-with-claude/compaction).
_COMPACTION = _ADAPTIVE


def canonical(model: str) -> str:
    return pricing.lookup(model).model


def fit(request: Mapping[str, Any], model: str, tokens: int | None = None) -> str | None:
    """Why ``request`` cannot go to ``model`` as it stands (None: it can, with
    :func:`adapted`). ``tokens`` is the request's input tokens (counted if not given)."""
    price = pricing.lookup(model)
    name = price.model
    if tokens is None:
        tokens = LocalCounter(name).count_request(request)
    max_tokens = request.get("max_tokens")
    need = tokens + (max_tokens if isinstance(max_tokens, int) else 0)
    if need > price.context_window:
        return f"{need:,} tokens with max_tokens exceed {name}'s {price.context_window:,} window"
    thinking = request.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind == "enabled" and name in _NO_THINKING:
        return f"{name} has no extended thinking"
    if kind == "adaptive" and name not in _ADAPTIVE:
        return f"{name} has no adaptive thinking"
    messages = request.get("messages")
    if (
        isinstance(messages, list)
        and messages
        and isinstance(messages[-1], Mapping)
        and messages[-1].get("role") == "assistant"
        and name in _NO_PREFILL
    ):
        return f"{name} refuses a prefilled assistant turn"
    if request.get("speed") is not None:
        return "fast mode (speed) belongs to the model asked"
    edits = request.get("context_management")
    compacts = isinstance(edits, Mapping) and any(
        isinstance(e, Mapping) and str(e.get("type", "")).startswith("compact_")
        for e in edits.get("edits") or ()
    )
    if compacts and name not in _COMPACTION:
        return f"{name} has no server-side compaction"
    return None


def adapted(request: Request, model: str) -> Request:
    """``request`` with ``model`` and the ``output_config.effort`` that model takes."""
    name = canonical(model)
    out = {**request, "model": model}
    config = request.get("output_config")
    if isinstance(config, Mapping) and "effort" in config:
        effort = config.get("effort")
        if name not in _EFFORT:
            rest = {k: v for k, v in config.items() if k != "effort"}
            if rest:
                out["output_config"] = rest
            else:
                del out["output_config"]
        elif (effort == "max" and name not in _EFFORT_MAX) or (
            effort == "xhigh" and name not in _EFFORT_XHIGH
        ):
            out["output_config"] = {**config, "effort": "high"}
    return out
