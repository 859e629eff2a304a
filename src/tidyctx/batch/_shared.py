"""Cache breakpoints for a batch job: at the ends of the prefixes its requests share, nowhere else.

A breakpoint writes the prefix up to it to the cache, at 2x the input price for a 1-hour entry;
only a later request with the same prefix reads it back, at 0.1x
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching). In a batch the requests
are known before any is sent, so the prefixes worth writing are known too: those that at least
two requests of the job share. A breakpoint on a request's own tail (where a per-request
``cache()`` puts its rolling one) writes text no other request reads, at twice the price of
sending it uncached.

So each request gets 1-hour breakpoints (the lifetime the batch page recommends:
https://platform.claude.com/docs/en/build-with-claude/batch-processing) at the end of every
stretch it shares with a different set of requests (a system prompt all share, then a document
a few share), at most 4, none below the model's minimum cacheable length, and no other marker.

>>> system = "Grade the answer against the rubric. " * 300
>>> ask = lambda q: {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": system,
...                  "messages": [{"role": "user", "content": q}]}
>>> marked = shared_breakpoints([ask("first"), ask("second")])
>>> [b.get("cache_control") for b in marked[0]["system"]]
[{'type': 'ephemeral', 'ttl': '1h'}]
>>> marked[0]["messages"]
[{'role': 'user', 'content': 'first'}]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tidyctx import pricing
from tidyctx._request import MAX_BREAKPOINTS, can_carry_marker, iter_blocks, unmarked
from tidyctx.cachesim import DEFAULT_MIN_CACHEABLE, Layout, layout

__all__ = ["shared_breakpoints"]


def _strip(request: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in request.items() if k != "cache_control"}
    for key in ("tools", "system", "messages"):
        if key in out:
            out[key] = unmarked(out[key])
    return out


def _minimum(model: str) -> int:
    try:
        return pricing.lookup(model).min_cacheable
    except pricing.UnknownModelError:
        return DEFAULT_MIN_CACHEABLE


def _ends(lay: Layout, blocks: Mapping[str, Any], counts: Counter[bytes]) -> list[int]:
    """The positions to mark: where a shared stretch ends (the next block is shared by fewer
    requests), moved back to a block that may carry a marker."""
    minimum = _minimum(lay.model)
    ends: list[int] = []
    for p, key in enumerate(lay.keys):
        shared = counts[key]
        if shared < 2:
            break  # a prefix is shared by at most the requests that share a shorter one
        if p + 1 < len(lay.keys) and counts[lay.keys[p + 1]] == shared:
            continue
        q = p
        while q >= 0 and not can_carry_marker(blocks.get(lay.paths[q])):
            q -= 1
        if q >= 0 and lay.cum[q] >= minimum and q not in ends:
            ends.append(q)
    if len(ends) > MAX_BREAKPOINTS:  # keep the widest shared stretch and the deepest ones
        ends = [ends[0], *ends[-(MAX_BREAKPOINTS - 1) :]]
    return ends


def _mark(request: dict[str, Any], path: str, marker: dict[str, str]) -> None:
    """Put ``marker`` on the block at ``path`` of a request this module copied; a string
    ``system`` or message ``content`` becomes the one text block it stands for."""
    if path == "system":
        request["system"] = [{"type": "text", "text": request["system"], "cache_control": marker}]
        return
    head, _, tail = path.partition(".content")
    if head.startswith("messages["):
        message = request["messages"][int(head[len("messages[") : -1])]
        if not tail:
            text = message["content"]
            message["content"] = [{"type": "text", "text": text, "cache_control": marker}]
            return
        container, i = message["content"], int(tail[1:-1])
    else:
        key, _, index = path.partition("[")
        container, i = request[key], int(index[:-1])
    container[i] = {**container[i], "cache_control": marker}


def shared_breakpoints(
    params: Sequence[Mapping[str, Any]], ttl: str = "1h"
) -> list[dict[str, Any]]:
    """The requests (Messages API params) with their markers replaced by ``ttl`` breakpoints at
    the ends of the prefixes they share with other requests of the list (see the module
    documentation). A request that shares nothing cacheable is sent with no marker.
    """
    stripped = [_strip(p) for p in params]
    lays = [layout(p) for p in stripped]
    counts: Counter[bytes] = Counter(key for lay in lays for key in lay.keys)
    marker = {"type": "ephemeral", "ttl": ttl} if ttl != "5m" else {"type": "ephemeral"}
    out: list[dict[str, Any]] = []
    for request, lay in zip(stripped, lays, strict=True):
        blocks = {ref.path: ref.block for ref in iter_blocks(request)}
        ends = _ends(lay, blocks, counts)
        if not ends:
            out.append(request)
            continue
        for q in ends:
            _mark(request, lay.paths[q], marker)
        out.append(request)
    return out
