"""What a strategy sends for one recorded turn, as the comparison suite (benchmarks/compare.py)
prices it.

A strategy is made fresh for each run (a ``Factory``), then called once per assistant turn, in
order, with the request the agent recorded for that turn (system, tools and every message
before the turn's assistant message). It returns a :class:`Sent`: the body of the main call as
it would go to the Messages API, and every other call it made on the way (a summary call), each
with the text the stand-in answered. A strategy that keeps state across turns (a summarized
history, a memory of what it cut) keeps it in the closure the factory made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SideCall:
    """A call a strategy made besides the main one: its request body (with its own ``model``)
    and the answer's text (priced as output tokens)."""

    request: dict[str, Any]
    answer: str


@dataclass
class Sent:
    """One turn as a strategy sent it."""

    request: dict[str, Any]
    side_calls: list[SideCall] = field(default_factory=list)
    note: str = ""
    """Anything worth a line in the report (a placeholder written instead of a summary...)."""


Strategy = Callable[[dict[str, Any]], Sent]
Factory = Callable[[], Strategy]
