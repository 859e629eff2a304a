"""The JSON-row cutter: a JSON array cut row by row, still valid JSON.

The text is a JSON array, or an object whose largest field, holding at least half the text,
leads to one (:func:`json_rows`). The first and last rows that fit are kept, hint, error and
rare rows from the middle as for lines (:func:`~tidyctx.text._cutting.select`), and the cut rows
are replaced by one element ``{"tidyctx": "<marker>"}`` (further gaps by ``"…"``), so the
output still parses with :func:`json.loads`. Other JSON is cut as text.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from array import array
from dataclasses import dataclass

from tidyctx._markers import GAP, json_marker, marker_at, span
from tidyctx.text._cutting import (
    COLLAPSE_MAX_LINE,
    DIGITS,
    MAX_TOKEN_CHARS,
    RARE,
    RARE_WORD,
    Ctx,
    Unit,
    cut_count,
    select,
)
from tidyctx.text._hints import scan

__all__ = ["Rows", "json_rows"]

_JSON_MAX_DEPTH = 8
_RARE_MAX_ROWS = 5_000
_GAP_JSON = json.dumps(GAP, ensure_ascii=False)

_WS_RE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass(slots=True)
class _JNode:
    """An array or object: where its children's values start and end (and, for an object,
    their keys and the scanned containers among them)."""

    is_array: bool
    start: int
    end: int
    starts: array[int]
    ends: array[int]
    keys: list[str]
    nodes: list[_JNode | None]


def _ws(s: str, i: int) -> int:
    m = _WS_RE.match(s, i)
    return i if m is None else m.end()


def _scan_json(s: str, i: int, depth: int) -> _JNode:
    """Spans of the children of the array or object at ``i``; raises ValueError if invalid.

    Array elements are decoded whole, one at a time (they are the rows); object values that are
    containers are scanned in turn, so that a dominant field is not parsed twice.
    """
    is_array = s[i] == "["
    node = _JNode(is_array, i, i, array("q"), array("q"), [], [])
    close = "]" if is_array else "}"
    j = _ws(s, i + 1)
    if s[j : j + 1] == close:
        node.end = j + 1
        return node
    while True:
        if is_array:
            _, e = _DECODER.raw_decode(s, j)
        else:
            if s[j : j + 1] != '"':
                raise ValueError("expected a key")
            key, e = _DECODER.raw_decode(s, j)
            j = _ws(s, e)
            if s[j : j + 1] != ":":
                raise ValueError("expected ':'")
            j = _ws(s, j + 1)
            sub: _JNode | None = None
            if s[j : j + 1] in ("[", "{") and depth < _JSON_MAX_DEPTH:
                sub = _scan_json(s, j, depth + 1)
                e = sub.end
            else:
                _, e = _DECODER.raw_decode(s, j)
            node.keys.append(str(key))
            node.nodes.append(sub)
        node.starts.append(j)
        node.ends.append(e)
        j = _ws(s, e)
        c = s[j : j + 1]
        if c == ",":
            j = _ws(s, j + 1)
        elif c == close:
            node.end = j + 1
            return node
        else:
            raise ValueError("expected ',' or " + close)


def json_rows(s: str) -> tuple[_JNode, str] | None:
    """The row array of a JSON text (the text itself, or reached through dominant fields:
    each holding at least half of the text) and its path, or None."""
    i = _ws(s, 0)
    if i >= len(s) or s[i] not in "[{":
        return None
    try:
        node = _scan_json(s, i, 0)
        if _ws(s, node.end) != len(s):
            return None
        path = ""
        for _ in range(_JSON_MAX_DEPTH):
            n = len(node.starts)
            if node.is_array and n >= 2:
                return node, path
            if n == 0:
                return None
            k = max(range(n), key=lambda c: node.ends[c] - node.starts[c])
            a, b = node.starts[k], node.ends[k]
            if 2 * (b - a) < len(s) or s[a] not in "[{":
                return None
            sub = None if node.is_array else node.nodes[k]
            path += f"[{k}]" if node.is_array else ("." if path else "") + node.keys[k]
            node = sub if sub is not None else _scan_json(s, a, 0)
        return None
    except (ValueError, RecursionError, IndexError):
        return None


class _RowUnits:
    """Units for the rows of an array, made when first asked for."""

    def __init__(
        self,
        starts: array[int],
        ends: array[int],
        scores: dict[int, int],
        rare: dict[int, float] | None = None,
    ) -> None:
        self.starts = starts
        self.ends = ends
        self.scores = scores
        self.rare = rare or {}
        self.made: dict[int, Unit] = {}

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int, /) -> Unit:
        u = self.made.get(k)
        if u is None:
            if not 0 <= k < len(self.starts):
                raise IndexError(k)
            u = Unit(k, self.starts[k], self.ends[k], score=self.scores.get(k, 0), index=k)
            u.rare = self.rare.get(k, 0.0)
            self.made[k] = u
        return u


class Rows:
    """Row-aware truncation of a JSON array; the output stays valid JSON."""

    def __init__(
        self,
        ctx: Ctx,
        node: _JNode,
        path: str,
        head: float,
        hints: list[tuple[str, int]],
        smart: bool,
    ) -> None:
        self.ctx = ctx
        self.head = head
        self.smart = smart
        self.path = path
        text = ctx.text
        self.starts, self.ends = node.starts, node.ends
        self.n = len(self.starts)
        self.prefix = text[: self.starts[0]]
        self.suffix = text[self.ends[-1] :]
        self.sep = text[self.ends[0] : self.starts[1]]
        self.sep_cost = ctx.raw(self.sep)
        scores: dict[int, int] = {}
        if smart:
            hits = scan(ctx.text, self.starts[0], self.ends[-1], hints, self._row_of)
            for start, hit in hits.items():
                scores[bisect.bisect_left(self.starts, start)] = hit[0]
        rare = self._rarity(text) if smart and RARE and self.n <= _RARE_MAX_ROWS else {}
        self.units = _RowUnits(self.starts, self.ends, scores, rare)
        self.scored = [self.units[k] for k in sorted(scores.keys() | rare.keys())]
        around = len(self.prefix) + len(self.suffix)
        if around / MAX_TOKEN_CHARS > ctx.raw_budget:
            self.fixed = ctx.raw_budget + 1
        else:
            self.fixed = ctx.raw(self.prefix) + ctx.raw(self.suffix)

    def _rarity(self, text: str) -> dict[int, float]:
        """Per row, the words few other rows hold, per character (as for lines)."""
        words = [
            set(RARE_WORD.findall(text, a, min(b, a + COLLAPSE_MAX_LINE)))
            for a, b in zip(self.starts, self.ends, strict=True)
        ]
        seen: dict[str, int] = {}
        for found in words:
            for w in found:
                seen[w] = seen.get(w, 0) + 1
        return {
            # fsum: exact, so independent of the set's (hash-seeded) order; see Lines._rarity
            k: math.fsum(1.0 / seen[w] for w in found) / (self.ends[k] - self.starts[k] + 8)
            for k, found in enumerate(words)
            if found
        }

    def _row_of(self, p: int) -> tuple[int, int] | None:
        k = bisect.bisect_right(self.starts, p) - 1
        return (self.starts[k], self.ends[k]) if k >= 0 and p < self.ends[k] else None

    def cost(self, u: Unit) -> int:
        if u.cost < 0:
            if (u.end - u.start) / MAX_TOKEN_CHARS > self.ctx.raw_budget:
                u.cost = self.ctx.raw_budget + 1
            else:
                u.cost = self.ctx.raw(self.ctx.text[u.start : u.end]) + self.sep_cost
        return u.cost

    def dedupe_key(self, u: Unit) -> str:
        return DIGITS.sub("0", self.ctx.text[u.start : min(u.end, u.start + 2_000)])

    def render(self, budget: int, level: int, total: tuple[float, bool]) -> tuple[str, int]:
        ctx, text = self.ctx, self.ctx.text
        pick = select(
            self.units,
            self.scored,
            None,
            [],
            budget - self.fixed,
            self.head,
            self.cost,
            ctx.raw(_GAP_JSON) + self.sep_cost,
            self.smart,
            self.dedupe_key,
        )
        n = self.n
        kept = [self.units[k] for k in range(pick.head)] + pick.middle
        kept += [self.units[k] for k in range(n - pick.tail, n)]
        parts: list[str] = []
        gaps: list[int] = []
        cut_rows: list[int] = []
        prev = -1
        kept_raw = self.fixed
        for u in kept:
            if u.line > prev + 1:
                gaps.append(len(parts))
                parts.append("")
                cut_rows += [prev + 1, u.line - 1]
            parts.append(text[u.start : u.end])
            kept_raw += self.cost(u)
            prev = u.line
        if prev < n - 1:
            gaps.append(len(parts))
            parts.append("")
            cut_rows += [prev + 1, n - 1]
        if not gaps:
            return text, 0
        ra, rb = min(cut_rows), max(cut_rows)
        offset = self.starts[ra]
        shown = sum(1 for u in kept if ra <= u.line <= rb)
        cut = cut_count(ctx, kept_raw, total)
        where = f" in {self.path}" if self.path else ""
        detail = f" ({span(ra + 1, rb + 1, 'row')} of {n:,}{where}"
        detail += f", {shown:,} of them shown)" if shown else ")"
        mark = marker_at(level, cut, ctx.ref, offset, self.ends[rb] - offset, detail, total[1])
        parts[gaps[0]] = json_marker(mark)
        for k in gaps[1:]:
            parts[k] = _GAP_JSON
        return self.prefix + self.sep.join(parts) + self.suffix, cut

    def worst_marker(self, level: int) -> str:
        n, size = self.n, len(self.ctx.text)
        where = f" in {self.path}" if self.path else ""
        detail = f" ({span(n - 1, n, 'row')} of {n:,}{where}, {n:,} of them shown)"
        approx = self.ctx.sampled()
        return json_marker(marker_at(level, size, self.ctx.ref, size, size, detail, approx))
