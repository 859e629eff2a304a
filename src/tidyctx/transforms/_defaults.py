"""defaults(): the recommended pipeline, as a list of transforms.

``tc.defaults()`` is ``[order(), slice_code(), trim(...), cache()]``, and with a client
``tc.defaults(client)`` adds ``summarize(client)`` before ``cache()``:

- ``order()`` first: byte-stable tools and system prompt, volatile system lines moved out of
  the cached prefix;
- ``slice_code()`` when the ``code`` extra (tree-sitter) is installed: large file views become
  an outline and the definitions the conversation names;
- ``trim(max_tokens=TRIM_MAX_TOKENS, head=0.6, slack=0.5)``: tool results over 1.5x the budget
  cut to it, 60 % from the start, compacted first (see :data:`TRIM` for the measurements);
- ``summarize(client)`` (``asummarize`` for an ``AsyncAnthropic``) when a client is given;
- ``cache(ttl="adaptive", pauses=Pauses())`` last, so its breakpoints sit where the final
  content ends. Called through :func:`~tidyctx.wrap` or the proxy, which record each call's
  time, it keeps the prefix for an hour where the pauses seen make the dearer write pay
  (``benchmarks/adaptive_ttl.py``: 1.084x the floor on 25 runs with recorded timestamps,
  against 1.149x for 5 minutes and 1.129x for an hour); called through ``pipe`` with no
  times recorded it is exactly the 5-minute ``cache()``.

The transforms that keep what they cut share one store, so ``tc.expand_tool(store)`` reads it
all back: pass ``store=`` to choose it (a ``SQLiteStore`` shared by several processes).

>>> [type(t).__name__ for t in defaults(slice_code=False)]
['Order', 'Trim', 'Cache']
>>> defaults(slice_code=False)[-1].ttl, defaults(cache={"ttl": "5m"})[-1].name
('adaptive', 'cache()')
>>> t = defaults(trim={"max_tokens": 800}, slice_code=False)[1]
>>> t.name, t.head, t.slack
('trim(max_tokens=800)', 0.6, 0.5)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from tidyctx._pipeline import Transform
from tidyctx.store import MemoryStore, Store
from tidyctx.transforms._cache import cache
from tidyctx.transforms._order import order
from tidyctx.transforms._pauses import Pauses
from tidyctx.transforms._slice_code import slice_code
from tidyctx.transforms._summarize import _is_async, asummarize, summarize
from tidyctx.transforms._trim import trim

__all__ = ["STEPS", "TRIM", "code_extra_installed", "defaults"]

TRIM: dict[str, Any] = {"max_tokens": 1500, "head": 0.6, "slack": 0.5}
"""The settings of ``trim`` in :func:`defaults`.

A result up to 2,250 tokens (1.5x the budget) stays whole; a longer one is compacted and cut to
1,500 tokens, 60 % from its start. Chosen for recall over the last few percent of cost. On the
23 shared runs replayed turn by turn (``benchmarks/trim_replay.py``, priced on Sonnet 4.6 at
the recorded times; ``benchmarks/results/defaults_replay.txt``), as a ratio to the caching floor
at reference recall:

- ``order() + cache()``: 1.033x at 1.000;
- ``+ trim()`` with its own defaults (compaction and dedupe, no budget): 0.838x at 1.000;
- ``+ trim(max_tokens=1500, head=0.6, slack=0.5)`` (this): 0.573x at 0.984;
- ``+ trim(max_tokens=700, ...)`` (``trim_replay.txt``): 0.511x at 0.970, and on 16 held-out
  Claude Code sessions recall 0.954 (``trim_replay_heldout.txt``);
- this, ``+ summarize(client)`` with its defaults (``summarize_replay.py``): 0.456x at 0.968,
  20.4 % below the same without summaries (23.5 % on the 12 runs over 60k tokens).

A 700-token budget saves another 11 % of cost for 1.4 points of recall on these runs, and loses
more on the held-out sessions; pass ``trim={"max_tokens": 700}`` to choose it.
"""

STEPS = ("order", "slice_code", "trim", "summarize", "cache")
"""The steps of :func:`defaults`, in order; each is a keyword of it."""


def code_extra_installed() -> bool:
    """Is tree-sitter (the ``code`` extra) importable?"""
    return importlib.util.find_spec("tree_sitter") is not None


def _options(name: str, value: Any) -> dict[str, Any] | None:
    """None: leave the step out; else its keyword options (``True``: the defaults)."""
    if value is False:
        return None
    if value is True or value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    raise TypeError(
        f"defaults({name}=...) takes a dict of {name}() options, True or False, got "
        f"{type(value).__name__}"
    )


def defaults(
    client: Any = None,
    *,
    store: Store | None = None,
    model: str | None = None,
    **overrides: Any,
) -> list[Transform]:
    """The recommended pipeline for ``client`` (an ``anthropic.Anthropic`` or
    ``AsyncAnthropic``; None: no summaries), as a list for ``tc.pipe(request, *pipeline)`` or
    ``tc.wrap(client, *pipeline)``.

    Each step is changed or left out by a keyword of its name (:data:`STEPS`): a dict of its
    options merged over the defaults (``trim={"max_tokens": 800}``), ``False`` to leave it out,
    ``True`` to force it in (``slice_code=True`` without the ``code`` extra raises, naming the
    extra; ``summarize=True`` without a client raises). ``store`` is shared by slice_code,
    trim and summarize (default: one new :class:`~tidyctx.store.MemoryStore`); ``model``, the
    model the requests are sent to, is passed to the steps that count or price (default: each
    request's own).
    """
    unknown = sorted(set(overrides) - set(STEPS))
    if unknown:
        raise TypeError(
            f"defaults() got unknown keyword {', '.join(map(repr, unknown))}; the steps are "
            f"{', '.join(STEPS)} (each a dict of options, True or False), plus client, store "
            "and model"
        )
    raw = getattr(client, "_tidyctx_unwrapped", None)
    if raw is not None:
        # A wrapped client: summaries go through the client underneath, recorded as their own
        # ledger rows rather than run through the pipeline again.
        client = raw
    shared: Store = store if store is not None else MemoryStore()
    counted = {"model": model} if model is not None else {}
    out: list[Transform] = []

    opts = _options("order", overrides.get("order"))
    if opts is not None:
        out.append(order(**opts))

    wanted = overrides.get("slice_code")
    opts = _options("slice_code", wanted)
    if opts is not None:
        if code_extra_installed():
            out.append(slice_code(**{"store": shared, **counted, **opts}))
        elif wanted is not None:
            raise ImportError(
                "defaults(slice_code=...): slice_code needs the code extra (tree-sitter): "
                "pip install 'tidyctx[code]'"
            )

    opts = _options("trim", overrides.get("trim"))
    if opts is not None:
        out.append(trim(**{**TRIM, "store": shared, **counted, **opts}))

    wanted = overrides.get("summarize")
    opts = _options("summarize", wanted)
    if opts is not None:
        if client is not None:
            make = asummarize if _is_async(client) else summarize
            out.append(make(client, **{"store": shared, **counted, **opts}))
        elif wanted is not None and not opts.get("server_side"):
            raise ValueError(
                "defaults(summarize=...) needs a client: defaults(client, ...), or "
                "summarize={'server_side': True}"
            )
        elif wanted is not None:
            out.append(summarize(None, **{**counted, **opts}))

    opts = _options("cache", overrides.get("cache"))
    if opts is not None:
        if opts.get("ttl", "adaptive") == "adaptive" and "stable_ttl" not in opts:
            # Exactly ttl="5m" until a sender (tc.wrap, the proxy) records a pause.
            opts = {"ttl": "adaptive", "pauses": Pauses(), **opts}
        out.append(cache(**opts))
    return out
