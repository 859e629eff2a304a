"""Timestamps as recorded by agents and loggers, read as epoch seconds.

>>> parse_ts("2026-01-21T15:30:20Z")
1769009420.0
>>> parse_ts(1769009420123) == parse_ts("2026-01-21T15:30:20.123Z")
True
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["parse_ts"]

_EPOCH_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6))
"""Epoch numbers below each bound are in seconds, milliseconds, microseconds; above, in
nanoseconds. 1e11 seconds is the year 5138, 1e11 milliseconds 1973: no recorded run is near."""


def parse_ts(value: Any) -> float | None:
    """An ISO-8601 string or epoch number as epoch seconds; None and ``""`` give None.

    Epoch numbers in milliseconds (JavaScript's ``Date.now()``), microseconds or nanoseconds
    are told from seconds by their size (:data:`_EPOCH_UNITS`); a string of digits is such a
    number. An ISO time without a zone is UTC (not the local zone of the machine that reads it).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"cannot read a timestamp from {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"cannot read a timestamp from {value!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            raise ValueError(f"cannot read a timestamp from {value!r}") from None
        if not math.isfinite(seconds):  # 1e400 in JSON reads as inf
            raise ValueError(f"cannot read a timestamp from {value!r}")
        for bound, per_second in _EPOCH_UNITS:
            if abs(seconds) < bound:
                return seconds / per_second
        return seconds / 1e9
    raise ValueError(f"cannot read a timestamp from {value!r}")
