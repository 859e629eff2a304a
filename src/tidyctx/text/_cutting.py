"""What the line cutter and the JSON-row cutter share: the budget, the units, the selection.

A cut keeps units (lines, collapsed runs of lines, or JSON rows) from the head and the tail of a
text, and spends a share of the budget on telling units from the middle (hint and error lines,
then lines with words of their own). :class:`Ctx` holds the text, the counter and the budget in
raw cl100k tokens; :func:`select` chooses the units; :func:`choose_level` sizes the marker to the
budget. The cutters (:mod:`tidyctx.text._lines`, :mod:`tidyctx.text._rows`) turn a pick into
text, and :func:`tidyctx.text._truncate.truncate_text` chooses between them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tidyctx.tokens import LocalCounter, get_encoding

__all__ = [
    "COLLAPSE_MAX_LINE",
    "DIGITS",
    "EXACT_COUNT_CHARS",
    "MAX_TOKEN_CHARS",
    "MIDDLE_SHARE",
    "RARE",
    "RARE_WORD",
    "Ctx",
    "Pick",
    "Piece",
    "Unit",
    "Units",
    "choose_level",
    "cut_count",
    "select",
]

EXACT_COUNT_CHARS = 1 << 19
"""Texts up to this many characters are tokenized whole for an exact count of what was cut;
longer ones get an estimate from samples (the marker then shows ``~``)."""

MIDDLE_SHARE = 0.55
"""Largest share of the budget spent on hint and error lines from the middle."""

RARE = True
"""Whether lines (and JSON rows) with words of their own are kept from the middle after hint
and error lines. The cutters import it by name: to switch it off for one, set it there."""

RARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}|\d{3,}")
"""A word that counts towards a line's own words: 4+ characters, or a number of 3+ digits."""

MAX_TOKEN_CHARS = 128
"""No cl100k token is longer than 128 bytes, so a text has at least len(text) / 128 tokens."""

COLLAPSE_MAX_LINE = 4_096
"""Longer lines are never collapsed into runs nor scored for words of their own; of a JSON row,
only this many characters are read for them."""

DIGITS = re.compile(r"\d+")
"""Masked to ``0`` when lines are compared: ``Downloading 12%`` and ``Downloading 97%`` match."""

_MAX_CANDIDATES = 4_000
_SAMPLES = 64
_SAMPLE_CHARS = 4_096


@dataclass(slots=True)
class Unit:
    """A line, a collapsed run of lines (first, note, last) or a JSON row."""

    line: int  # index of the (first) line or row in the original
    start: int
    end: int
    line1: int = -1  # last line of a collapsed run
    start1: int = 0
    end1: int = 0
    hidden: int = 0  # lines inside a collapsed run
    score: int = 0
    rare: float = 0.0  # new words per character: how much the line says that others do not
    cost: int = -1
    index: int = -1  # position in the unit list of head/tail candidates; -1 for middle-only


class Units(Protocol):
    """A sequence of units, built lazily for JSON rows."""

    def __len__(self) -> int: ...

    def __getitem__(self, k: int, /) -> Unit: ...


@dataclass(slots=True)
class Piece:
    """A span of the text that is kept: a whole line, or the start or end of a line that alone
    exceeds the budget."""

    line: int
    start: int
    end: int
    cut_before: bool = False  # starts inside its line
    cut_after: bool = False  # ends inside its line
    cost: int = 0


@dataclass(slots=True)
class Pick:
    """What :func:`select` keeps: the first ``head`` and last ``tail`` units, the part of a line
    cut inside at either end, the units from the middle, and the raw tokens they use."""

    head: int
    tail: int
    head_part: Piece | None
    tail_part: Piece | None
    middle: list[Unit]
    used: int


class Ctx:
    """What one call shares: the text, the encoder, the counter and cached costs."""

    def __init__(self, text: str, counter: LocalCounter, max_tokens: int, ref: str) -> None:
        self.text = text
        self.counter = counter
        self.max_tokens = max_tokens
        self.ref = ref
        self.factor = counter.factor()
        self.encoding = get_encoding()
        # Raw (cl100k) tokens a text may have so that count_text stays within max_tokens.
        self.raw_budget = max(0, math.ceil((max_tokens + 0.5) / self.factor) - 1)
        self.total: int | None = None  # calibrated count of the whole text, when known

    def raw(self, s: str) -> int:
        return len(self.encoding.encode_ordinary(s)) if s else 0

    def calibrated(self, raw: int) -> int:
        return int(raw * self.factor + 0.5)

    def sampled(self) -> bool:
        """Whether the text is too long to be tokenized whole: its count is estimated."""
        return len(self.text) > EXACT_COUNT_CHARS

    def total_raw(self) -> tuple[float, bool]:
        """Raw tokens of the whole text and whether that is an estimate."""
        if self.total is not None:
            return self.total / self.factor, False
        text = self.text
        if not self.sampled():
            self.total = self.counter.count_text(text)
            return self.total / self.factor, False
        step = len(text) / _SAMPLES
        tokens = chars = 0
        for k in range(_SAMPLES):
            a = int(k * step)
            piece = text[a : a + _SAMPLE_CHARS]
            tokens += self.raw(piece)
            chars += len(piece)
        return tokens / max(1, chars) * len(text), True


# ---------------------------------------------------------------------------- selection


def select(
    units: Units,
    scored: list[Unit],
    split: int | None,
    extra: list[Unit],
    budget: int,
    head_share: float,
    cost: Callable[[Unit], int],
    gap_cost: int,
    smart: bool,
    dedupe_key: Callable[[Unit], str],
    partial: Callable[[Unit, bool, int, Piece | None], Piece | None] | None = None,
) -> Pick:
    """Choose head units, tail units and middle units within ``budget`` raw tokens.

    ``units`` are in order; with ``split`` the head may only use ``units[:split]`` and the tail
    ``units[split:]`` (head and tail windows of a huge text), else they share the list.
    ``scored`` are the units with a score (hint or error), ``extra`` middle-only candidates
    (hint and error lines between the windows).
    ``partial(unit, head, room, other)`` cuts a line that alone exceeds the budget.
    """

    def fill(limit_total: int) -> Pick:
        n = len(units)
        head_max = n if split is None else split
        tail_min = 0 if split is None else split
        h = t = used_h = used_t = 0
        ph: Piece | None = None
        pt: Piece | None = None

        def grow_head(limit: int) -> None:
            nonlocal h, used_h, ph
            while ph is None and h < head_max and h <= n - 1 - t:
                u = units[h]
                c = cost(u)
                if h < n - t - (pt is not None) and used_h + c <= limit:
                    used_h += c
                    h += 1
                    continue
                if partial is not None:
                    ph = partial(u, True, limit - used_h, pt)
                    used_h += ph.cost if ph is not None else 0
                break

        def grow_tail(limit: int) -> None:
            nonlocal t, used_t, pt
            while pt is None:
                k = n - 1 - t
                if k < tail_min or k < h:
                    break
                u = units[k]
                c = cost(u)
                if k >= h + (ph is not None) and used_t + c <= limit:
                    used_t += c
                    t += 1
                    continue
                if partial is not None:
                    pt = partial(u, False, limit - used_t, ph)
                    used_t += pt.cost if pt is not None else 0
                break

        grow_head(int(limit_total * head_share))
        grow_tail(limit_total - used_h)
        grow_head(limit_total - used_t)
        return Pick(h, t, ph, pt, [], used_h + used_t)

    def candidates(p: Pick) -> list[Unit]:
        lo = p.head + (p.head_part is not None)
        hi = len(units) - p.tail - (p.tail_part is not None)
        pool = [u for u in scored if lo <= u.index < hi] + extra
        pool.sort(key=lambda u: (-u.score, -u.rare, u.line))
        return pool[:_MAX_CANDIDATES]

    first = fill(budget)
    pool = candidates(first) if smart else []
    if not pool:
        return first
    cap = int(budget * MIDDLE_SHARE)
    # What the plain fill kept at the edges, the reserve for middle units may not take away:
    # the first and last lines (rows) stay when they fit.
    if first.head and head_share > 0:
        cap = min(cap, budget - math.ceil(cost(units[0]) / head_share))
    if first.tail and head_share < 1:
        cap = min(cap, budget - math.ceil(cost(units[len(units) - 1]) / (1 - head_share)))
    reserve = 0
    seen: set[str] = set()
    for u in pool:
        if cap - reserve <= gap_cost:
            break
        key = dedupe_key(u)
        c = cost(u) + gap_cost
        if key not in seen and reserve + c <= cap:
            reserve += c
            seen.add(key)
    if reserve == 0:
        return first
    chosen = fill(budget - reserve)
    room = budget - chosen.used
    seen = set()
    for u in candidates(chosen):
        if room <= gap_cost:
            break
        key = dedupe_key(u)
        c = cost(u) + gap_cost
        if key not in seen and c <= room:
            room -= c
            seen.add(key)
            chosen.middle.append(u)
    chosen.middle.sort(key=lambda u: u.line)
    chosen.used = budget - room
    return chosen


def choose_level(ctx: Ctx, worst: Callable[[int], str]) -> int:
    """The most telling marker that costs at most half the budget (a bare count if none)."""
    for level in (0, 1):
        if ctx.raw(worst(level)) + 1 <= ctx.raw_budget // 2:
            return level
    return 2 if ctx.raw(worst(2)) + 1 <= ctx.raw_budget else 3


def cut_count(ctx: Ctx, kept_raw: int, total: tuple[float, bool]) -> int:
    if ctx.total is not None:
        return max(0, ctx.total - ctx.calibrated(kept_raw))
    return max(0, ctx.calibrated(max(0, round(total[0]) - kept_raw)))
