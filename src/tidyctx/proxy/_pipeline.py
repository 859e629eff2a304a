"""What the proxy does to one request body: parse, run the pipeline, validate, serialize.

Everything here runs in a worker thread (see ``_app``), never on the event loop, and never
raises: any failure gives back the original bytes and the reason, so the agent behind the
proxy is never failed by tidyctx (fail open).
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tidyctx._edge import guarded, start, transform_name
from tidyctx._pipeline import Transform, run_step
from tidyctx._request import Request, ValidationError, validate
from tidyctx.ledger import changed_steps
from tidyctx.store import Store
from tidyctx.transforms._pauses import TTLDecision, record_call
from tidyctx.transforms._route import RouteDecision, collecting

__all__ = ["PIPELINES", "Prepared", "prepare", "select_pipeline"]

PIPELINES = ("defaults", "cache-only", "off")
"""The named pipelines; ``module:attr`` names a pipeline of your own."""


def select_pipeline(spec: str, store: Store) -> list[Transform]:
    """The transforms of pipeline ``spec``, keeping cut originals in ``store``.

    ``defaults``: :func:`tidyctx.defaults` (order with a :class:`~tidyctx.SystemLines` and a
    :class:`~tidyctx.ToolChanges` memory, slice_code when the ``code`` extra is installed,
    trim and the adaptive cache);
    ``cache-only``: order (with its memories) and cache; ``off``: nothing (a recording proxy);
    ``module:attr``: a list of transforms, or a function of no arguments returning one (such
    as a factory of your own), imported from an installed module.
    """
    from tidyctx import SystemLines, ToolChanges, cache, defaults, order

    if spec == "off":
        return []
    # The proxy sees every request of a conversation, so order() remembers the system prompt's
    # volatile-looking lines and moves one only once it has changed: a fixed "The current time
    # is ..." stays in the cached system prompt rather than be sent uncached every turn. It
    # also remembers each conversation's first tools, so a tool the agent drops or restores
    # goes as a change message inside the messages instead of rewriting the cached tools.
    if spec == "cache-only":
        return [order(seen=SystemLines(), tools=ToolChanges()), cache()]
    if spec == "defaults":
        # The library's recommended pipeline (no client: the proxy makes no summary calls).
        return defaults(store=store, order={"seen": SystemLines(), "tools": ToolChanges()})
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"--pipeline {spec!r}: expected one of {', '.join(PIPELINES)} or module:attr"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--pipeline {spec!r}: cannot import {module_name!r}: {err}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"--pipeline {spec!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if callable(target) and not isinstance(target, list | tuple):
        target = target()
    if not isinstance(target, list | tuple) or not all(callable(t) for t in target):
        raise ValueError(
            f"--pipeline {spec!r}: {attr} must be a list of transforms, or a function of no "
            "arguments returning one"
        )
    return list(target)


@dataclass
class Prepared:
    """One request body after the pipeline: what to send upstream and what happened."""

    body: bytes
    """The bytes to send: the pipeline's output, or the original bytes."""
    model: str | None = None
    changed: list[str] = field(default_factory=list)
    """The transforms that changed the request, in order."""
    steps: list[dict[str, Any]] = field(default_factory=list)
    """Each changing transform and the input tokens it removed (the ledger's ``changed``);
    filled by :meth:`count`."""
    fail_open: str | None = None
    """Why the original bytes went upstream although a pipeline is set; None otherwise."""
    ttl: TTLDecision | None = None
    """What ``cache(ttl="adaptive")`` chose for this call, for the ledger."""
    route: RouteDecision | None = None
    """What ``route()`` chose for this call, for the ledger."""
    seconds: float = 0.0
    before: Request | None = field(default=None, repr=False)
    """The request as the client sent it, once the pipeline could read it."""
    after: Request | None = field(default=None, repr=False)
    """The request as sent, when the pipeline changed it."""
    _changes: list[tuple[str, Request, Request]] = field(default_factory=list, repr=False)

    @property
    def sent(self) -> Request | None:
        """The request that went upstream, as read (None: the pipeline could not read it)."""
        return self.after if self.changed and self.after is not None else self.before

    def count(self) -> None:
        """Fill ``steps``: the input tokens each changing transform removed (counted locally,
        only where it changed the request).

        Separate from :func:`prepare` so the proxy counts while the request is upstream. The
        whole request's tokens before and after come with the ledger row (``_ledger``).
        """
        changes, self._changes = self._changes, []
        if self.before is None or self.sent is None or not self.changed:
            return
        try:
            self.steps = changed_steps(changes, self.model)
        except Exception:  # counting is for the ledger only; never let it fail the request
            self.steps = [{"transform": name, "tokens_saved": None} for name in self.changed]


def _where(err: BaseException) -> str:
    # Name the place and the kind of error, never the message: a ValidationError's message can
    # quote the request's content, which the ledger must not hold.
    if isinstance(err, ValidationError):
        return f"{type(err).__name__} at {err.path}"
    return type(err).__name__


def prepare(raw: bytes, transforms: Sequence[Transform]) -> Prepared:
    """Run ``transforms`` over the JSON request ``raw``; fail open on any error."""
    began = time.perf_counter()
    out = Prepared(raw)
    try:
        _prepare(raw, transforms, out)
    except Exception as err:  # fail open whatever went wrong, and say what it was
        out.body = raw
        out.changed, out._changes = [], []
        out.fail_open = out.fail_open or f"proxy error: {_where(err)}"
    out.seconds = time.perf_counter() - began
    return out


def _prepare(raw: bytes, transforms: Sequence[Transform], out: Prepared) -> None:
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        if transforms:
            out.fail_open = f"body is not JSON: {type(err).__name__}"
        return
    if not isinstance(parsed, dict):
        if transforms:
            out.fail_open = "body is not a JSON object"
        return
    model = parsed.get("model")
    out.model = model if isinstance(model, str) else None
    if not transforms:
        return
    try:
        request, _ = start(parsed)
    except Exception as err:
        out.fail_open = f"request not read: {_where(err)}"
        return
    out.before = current = request
    decided = record_call(transforms, request)
    with collecting() as routed:
        for t in transforms:
            name = transform_name(t)
            try:
                result = guarded(current, partial(run_step, t, current))
            except Exception as err:
                out.changed, out._changes = [], []
                out.fail_open = f"transform {name} failed: {_where(err)}"
                return
            if not isinstance(result, dict):
                out.changed, out._changes = [], []
                out.fail_open = f"transform {name} returned {type(result).__name__}"
                return
            if result != current:
                out.changed.append(name)
                out._changes.append((name, current, result))
            current = result
    out.route = routed[-1] if routed else None
    out.ttl = decided()
    if not out.changed:
        return
    try:
        validate(current, strict=False)
    except Exception as err:
        out.changed, out._changes, out.route = [], [], None
        out.fail_open = f"invalid after the pipeline: {_where(err)}"
        return
    try:
        body = json.dumps(
            current, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError) as err:
        out.changed, out._changes, out.route = [], [], None
        out.fail_open = f"not serializable after the pipeline: {type(err).__name__}"
        return
    out.after = current
    out.body = body
