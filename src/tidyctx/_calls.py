"""Calls to the API that a transform makes on its own (the summary calls of ``summarize``),
told to whoever watches: :func:`tidyctx.wrap` records them in its ledger as their own rows.

A transform that calls the API runs the call through :func:`observed` (or :func:`aobserved`);
with no watcher set (the default, and inside a plain ``tc.pipe``) that is the call and nothing
more. A watcher is set for the current context only (:mod:`contextvars`), so two wrapped
clients in one process, or two tasks of one event loop, each see their own calls.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Call", "Watcher", "aobserved", "in_pipeline", "observed", "watching"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Call:
    """One API call a transform made."""

    kind: str
    """What it was for: ``"summary"``."""
    request: dict[str, Any]
    """The keyword arguments given to ``messages.create``."""
    response: Any
    """The message returned, or None if the call raised."""
    error: BaseException | None
    started: float
    """Epoch seconds when it was sent."""
    seconds: float
    """How long it took."""


Watcher = Callable[[Call], None]

_WATCHER: ContextVar[Watcher | None] = ContextVar("tidyctx_call_watcher", default=None)


@contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Tell ``watcher`` of every call :func:`observed` makes in this context until exit."""
    token = _WATCHER.set(watcher)
    try:
        yield
    finally:
        _WATCHER.reset(token)


def in_pipeline() -> bool:
    """Is a watched pipeline running in this context? (A wrapped client's own calls made from
    inside its pipeline, by a transform given the wrapped client, then go straight through.)"""
    return _WATCHER.get() is not None


def observed(kind: str, request: dict[str, Any], call: Callable[[], _T]) -> _T:
    """``call()``, told to the current watcher (if any) with its result or error."""
    watcher = _WATCHER.get()
    if watcher is None:
        return call()
    started, clock = time.time(), time.perf_counter()
    try:
        result = call()
    except BaseException as err:
        watcher(Call(kind, request, None, err, started, time.perf_counter() - clock))
        raise
    watcher(Call(kind, request, result, None, started, time.perf_counter() - clock))
    return result


async def aobserved(kind: str, request: dict[str, Any], call: Callable[[], Awaitable[_T]]) -> _T:
    """:func:`observed` for an awaitable call."""
    watcher = _WATCHER.get()
    if watcher is None:
        return await call()
    started, clock = time.time(), time.perf_counter()
    try:
        result = await call()
    except BaseException as err:
        watcher(Call(kind, request, None, err, started, time.perf_counter() - clock))
        raise
    watcher(Call(kind, request, result, None, started, time.perf_counter() - clock))
    return result
