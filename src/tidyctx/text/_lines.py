"""The line cutter: plain text, logs and file reads cut line by line.

Whole lines are kept from the head (``head`` share of the budget) and the tail (the rest); a
line is only cut inside when it alone exceeds the budget (a minified file, a one-line JSON
blob), and then between code points, never inside a JSON ``\\uXXXX`` or ``\\"`` escape, a
surrogate pair or a combining sequence. With ``smart``, runs of 3+ lines that are equal once
digits are masked become their first line, a note (:func:`~tidyctx._markers.collapse_note`)
and their last line, and hint, error and rare lines from the middle are kept (see
:func:`~tidyctx.text._cutting.select`). The marker sits in the first gap; each further gap is a
``…`` line.

Inputs longer than three :data:`WINDOW_CHARS` windows are split into lines only in a head and
a tail window; the middle is only scanned for hint and error lines.
"""

from __future__ import annotations

import math
import unicodedata

from tidyctx._markers import GAP, collapse_note, marker_at, span
from tidyctx.text._cutting import (
    COLLAPSE_MAX_LINE,
    DIGITS,
    MAX_TOKEN_CHARS,
    RARE,
    RARE_WORD,
    Ctx,
    Piece,
    Unit,
    cut_count,
    select,
)
from tidyctx.text._hints import scan

__all__ = ["WINDOW_CHARS", "Lines"]

WINDOW_CHARS = 1 << 20
"""Inputs longer than three windows are split into lines only in a head and a tail window of
about this many characters (or 16 per token of the budget, if more); the middle is only
scanned for hint and error lines."""

_MIN_PARTIAL = 4

# ---------------------------------------------------------------------------- cutting inside a line

_ZW = frozenset("\u200d\u200c\ufe0e\ufe0f")


def _grapheme_safe(s: str, c: int, lo: int, hi: int, forward: bool) -> int:
    """Move the cut ``c`` off a surrogate pair, combining mark or zero-width joiner."""
    for _ in range(16):
        if c <= lo or c >= hi:
            break
        prev, nxt = s[c - 1], s[c]
        if (
            "\ud800" <= prev <= "\udbff"
            or prev == "\u200d"
            or nxt in _ZW
            or unicodedata.combining(nxt)
            or "\U0001f3fb" <= nxt <= "\U0001f3ff"  # skin tone modifiers
        ):
            c = c + 1 if forward else c - 1
            continue
        break
    return c


def _escape_start(s: str, c: int, lo: int) -> tuple[int, int] | None:
    """The JSON escape ``\\x`` or ``\\uXXXX`` that the cut ``c`` falls inside, as (start, end)."""
    j = c - 1
    stop = max(lo, c - 6)
    while j >= stop:
        if s[j] == "\\":
            r = j
            while r > lo and s[r - 1] == "\\":
                r -= 1
            p = j if (j - r) % 2 == 0 else j - 1
            end = p + 6 if p + 1 < len(s) and s[p + 1] == "u" else p + 2
            return (p, end) if end > c else None
        j -= 1
    return None


def _cut_back(s: str, c: int, lo: int, hi: int) -> int:
    c = _grapheme_safe(s, c, lo, hi, forward=False)
    esc = _escape_start(s, c, lo)
    if esc is not None:
        c = _grapheme_safe(s, esc[0], lo, hi, forward=False)
    return c


def _cut_forward(s: str, c: int, lo: int, hi: int) -> int:
    c = _grapheme_safe(s, c, lo, hi, forward=True)
    esc = _escape_start(s, c, lo)
    if esc is not None:
        c = _grapheme_safe(s, min(hi, esc[1]), lo, hi, forward=True)
    return c


# ---------------------------------------------------------------------------- text and logs


class Lines:
    """Line-aware truncation of plain text, logs and file reads."""

    def __init__(self, ctx: Ctx, head: float, hints: list[tuple[str, int]], smart: bool) -> None:
        self.ctx = ctx
        self.head = head
        self.smart = smart
        text = ctx.text
        first_nl = text.find("\n")
        self.eol = "\r" if first_nl > 0 and text[first_nl - 1] == "\r" else ""
        self.n_lines = text.count("\n") + 1
        self.units: list[Unit] = []
        self.extra: list[Unit] = []
        self.split: int | None = None
        self._costs: dict[int, int] = {}
        segments = self._segments()
        hits = scan(ctx.text, 0, len(text), hints, self._line_of) if smart else {}
        for k, (seg_start, seg_end, line0) in enumerate(segments):
            if k == 1:
                self.split = len(self.units)
            self._add_units(seg_start, seg_end, line0, hits)
        for k, u in enumerate(self.units):
            u.index = k
        if smart and RARE:
            self._rarity()
        self.scored = [u for u in self.units if u.score > 0 or u.rare > 0]
        if len(segments) == 2:  # hint and error lines between the windows
            hole_lo, hole_hi = segments[0][1] + 1, segments[1][0]
            line_no = text.count("\n", 0, hole_lo)
            pos = hole_lo
            for start in sorted(s for s in hits if hole_lo <= s < hole_hi):
                line_no += text.count("\n", pos, start)
                pos = start
                score, end, _ = hits[start]
                self.extra.append(Unit(line_no, start, end, score=score))

    def _rarity(self) -> None:
        """Score each line by the words it holds that few other lines of the text hold: a
        word in k lines adds 1/k, per character of the line. Boilerplate scores low, the lines
        that carry names, numbers and paths of their own high."""
        text = self.ctx.text
        words: list[set[str] | None] = []
        seen: dict[str, int] = {}
        for u in self.units:
            if u.hidden or u.end - u.start > COLLAPSE_MAX_LINE:
                words.append(None)
                continue
            found = set(RARE_WORD.findall(text, u.start, u.end))
            words.append(found)
            for w in found:
                seen[w] = seen.get(w, 0) + 1
        for u, own in zip(self.units, words, strict=True):
            if own:
                # fsum is exact, so the score does not depend on the set's order (which
                # changes with the process's hash seed) and ties break the same everywhere.
                u.rare = math.fsum(1.0 / seen[w] for w in own) / (u.end - u.start + 8)

    def _line_of(self, p: int) -> tuple[int, int]:
        text = self.ctx.text
        e = text.find("\n", p)
        return text.rfind("\n", 0, p) + 1, len(text) if e < 0 else e

    def _segments(self) -> list[tuple[int, int, int]]:
        """(start, end, first line number) of the parts that are split into lines."""
        text = self.ctx.text
        size = len(text)
        window = max(WINDOW_CHARS, 16 * self.ctx.max_tokens)
        if size <= 3 * window:
            return [(0, size, 0)]
        a_end = text.rfind("\n", 0, window)
        if a_end < 0:
            a_end = text.find("\n")
        z_start = text.find("\n", size - window) + 1
        if z_start <= 0:
            z_start = text.rfind("\n") + 1
        if a_end < 0 or z_start <= a_end + 1:
            return [(0, size, 0)]
        return [(0, a_end, 0), (z_start, size, text.count("\n", 0, z_start))]

    def _add_units(self, lo: int, hi: int, line0: int, hits: dict[int, list[int]]) -> None:
        """Units of the lines of ``text[lo:hi]``: single lines, and collapsed runs if smart."""
        text = self.ctx.text
        lines: list[str] | None = None
        if hi - lo <= 3 * max(WINDOW_CHARS, 16 * self.ctx.max_tokens):
            lines = text[lo:hi].split("\n")
            lengths = [len(line) for line in lines]
        else:  # only a huge line makes a segment this long: find the few lines, copy nothing
            lengths = []
            pos = lo
            while (e := text.find("\n", pos, hi)) >= 0:
                lengths.append(e - pos)
                pos = e + 1
            lengths.append(hi - pos)
        starts: list[int] = []
        pos = lo
        for length in lengths:
            starts.append(pos)
            pos += length + 1
        n = len(lengths)
        if not self.smart:
            self.units.extend(Unit(line0 + k, starts[k], starts[k] + lengths[k]) for k in range(n))
            return
        # Lines equal once digits are masked form runs; long lines never do.
        masked: list[str | None]
        if lines is not None and max(lengths) <= COLLAPSE_MAX_LINE:
            masked = list(DIGITS.sub("0", text[lo:hi]).split("\n"))
        else:
            masked = [
                DIGITS.sub("0", text[a : a + m]) if m <= COLLAPSE_MAX_LINE else None
                for a, m in zip(starts, lengths, strict=True)
            ]
        no_hit = [0, 0, 0]
        k = 0
        while k < n:
            hit = hits.get(starts[k], no_hit)
            run_end = k + 1
            key = masked[k]
            if hit[2] == 0 and key is not None:  # hint lines stay whole
                while (
                    run_end < n
                    and masked[run_end] == key
                    and hits.get(starts[run_end], no_hit)[0] == hit[0]
                ):
                    run_end += 1
            run = run_end - k
            hidden_chars = sum(lengths[j] + 1 for j in range(k + 1, run_end - 1))
            if run >= 3 and hidden_chars >= 24:
                last = run_end - 1
                self.units.append(
                    Unit(
                        line0 + k,
                        starts[k],
                        starts[k] + lengths[k],
                        line1=line0 + last,
                        start1=starts[last],
                        end1=starts[last] + lengths[last],
                        hidden=run - 2,
                        score=hit[0],
                    )
                )
            else:
                self.units.extend(
                    Unit(line0 + j, starts[j], starts[j] + lengths[j], score=hit[0])
                    for j in range(k, run_end)
                )
            k = run_end

    # -- costs

    def _line_cost(self, start: int, end: int) -> int:
        """Raw tokens of a line and its newline (a lower bound past the budget for huge lines)."""
        cached = self._costs.get(start)
        if cached is None:
            if (end - start) / MAX_TOKEN_CHARS > self.ctx.raw_budget:
                cached = self.ctx.raw_budget + 2 + (end - start) // MAX_TOKEN_CHARS
            else:
                cached = self.ctx.raw(self.ctx.text[start:end]) + 1
            self._costs[start] = cached
        return cached

    def cost(self, u: Unit) -> int:
        if u.cost < 0:
            c = self._line_cost(u.start, u.end)
            if u.hidden:
                c += self._line_cost(u.start1, u.end1) + self.ctx.raw(collapse_note(u.hidden)) + 1
            u.cost = c
        return u.cost

    def dedupe_key(self, u: Unit) -> str:
        return DIGITS.sub("0", self.ctx.text[u.start : min(u.end, u.start + 2_000)])

    def partial(self, u: Unit, head: bool, room: int, other: Piece | None) -> Piece | None:
        """The longest prefix (head) or suffix of a line that alone exceeds the budget."""
        ctx, text = self.ctx, self.ctx.text
        target = room - 1  # its newline
        if u.hidden or target < _MIN_PARTIAL or self.cost(u) - 1 <= ctx.raw_budget:
            return None
        lo, hi = u.start, u.end
        if other is not None and other.line == u.line:  # the other end of the same line
            if head:
                hi = other.start
            else:
                lo = other.end
        if hi <= lo:
            return None
        best = best_cost = 0
        k = min(hi - lo, target * 4)
        for _ in range(12):
            if head:
                c = _cut_back(text, lo + k, lo, hi)
                got, n = c - lo, ctx.raw(text[lo:c])
            else:
                c = _cut_forward(text, hi - k, lo, hi)
                got, n = hi - c, ctx.raw(text[c:hi])
            if n <= target:
                if got > best:
                    best, best_cost = got, n
                if got >= hi - lo or n >= target - 1:
                    break
                k = min(hi - lo, max(k + 1, int(k * target / max(n, 1))))
            else:
                k = int(k * target / n * 0.97)
            if k <= 0:
                break
        if best <= 0:
            return None
        if head:
            return Piece(u.line, lo, lo + best, cut_after=True, cost=best_cost + 1)
        return Piece(u.line, hi - best, hi, cut_before=True, cost=best_cost + 1)

    # -- assembly

    def render(self, budget: int, level: int, total: tuple[float, bool]) -> tuple[str, int]:
        pick = select(
            self.units,
            self.scored,
            self.split,
            self.extra,
            budget,
            self.head,
            self.cost,
            self.ctx.raw(GAP + self.eol) + 1,
            self.smart,
            self.dedupe_key,
            self.partial,
        )
        n = len(self.units)
        head, tail = self.units[: pick.head], self.units[n - pick.tail :]
        opened = self._open_runs([*head, *pick.middle, *tail], budget - pick.used)
        items: list[Piece | int] = []  # an int is a collapse note for that many lines
        for u in head:
            self._add_items(items, u, opened)
        if pick.head_part is not None:
            items.append(pick.head_part)
        for u in pick.middle:
            self._add_items(items, u, opened)
        if pick.tail_part is not None:
            items.append(pick.tail_part)
        for u in tail:
            self._add_items(items, u, opened)
        return self._assemble(items, level, total)

    def _open_runs(self, kept: list[Unit], room: int) -> dict[int, tuple[list[Piece], ...]]:
        """Spend what the selection left over on showing more lines of the kept collapsed runs.

        Runs are opened a line at a time, from the front and the back in turn, round-robin over
        the runs, so that collapsing never shows less than the budget allows. Returns, per run
        (by its first line), the extra pieces after its first line and before its last.
        """
        text = self.ctx.text
        runs = [u for u in kept if u.hidden]
        opened: dict[int, tuple[list[Piece], ...]] = {u.line: ([], []) for u in runs}
        while runs and room > 0:
            still: list[Unit] = []
            for u in runs:
                front, back = opened[u.line]
                if len(front) <= len(back):
                    s = (front[-1].end if front else u.end) + 1
                    e = text.find("\n", s)
                    piece = Piece(u.line + 1 + len(front), s, e)
                else:
                    e = (back[-1].start if back else u.start1) - 1
                    s = text.rfind("\n", 0, e) + 1
                    piece = Piece(u.line1 - 1 - len(back), s, e)
                piece.cost = self._line_cost(s, e)
                last = len(front) + len(back) + 1 == u.hidden  # the note goes away
                cost = piece.cost - (self.ctx.raw(collapse_note(u.hidden)) + 1 if last else 0)
                if cost > room:
                    continue
                room -= cost
                (front if piece.line == u.line + 1 + len(front) else back).append(piece)
                if not last:
                    still.append(u)
            runs = still
        return opened

    def _add_items(
        self, items: list[Piece | int], u: Unit, opened: dict[int, tuple[list[Piece], ...]]
    ) -> None:
        items.append(Piece(u.line, u.start, u.end, cost=self._line_cost(u.start, u.end)))
        if u.hidden:
            front, back = opened.get(u.line, ([], []))
            items.extend(front)
            if u.hidden > len(front) + len(back):
                items.append(u.hidden - len(front) - len(back))
            items.extend(reversed(back))
            items.append(Piece(u.line1, u.start1, u.end1, cost=self._line_cost(u.start1, u.end1)))

    def _omission(self, prev: Piece | None, nxt: Piece | None) -> tuple[int, int, int, int] | None:
        """(start char, end char, first line, last line) cut between two pieces, or None."""
        size, last = len(self.ctx.text), self.n_lines - 1
        if prev is None and nxt is None:
            return 0, size, 0, last
        if prev is None:
            assert nxt is not None
            if nxt.cut_before:
                return 0, nxt.start, 0, nxt.line
            return None if nxt.line == 0 else (0, nxt.start - 1, 0, nxt.line - 1)
        if nxt is None:
            if prev.cut_after:
                return prev.end, size, prev.line, last
            return None if prev.line == last else (prev.end + 1, size, prev.line + 1, last)
        if nxt.line == prev.line:  # the two cut ends of one line
            return (prev.end, nxt.start, prev.line, prev.line) if nxt.start > prev.end else None
        a = prev.end if prev.cut_after else prev.end + 1
        b = nxt.start if nxt.cut_before else nxt.start - 1
        la = prev.line if prev.cut_after else prev.line + 1
        lb = nxt.line if nxt.cut_before else nxt.line - 1
        return (a, max(a, b), la, lb) if lb >= la else None

    def _assemble(
        self, items: list[Piece | int], level: int, total: tuple[float, bool]
    ) -> tuple[str, int]:
        ctx, text = self.ctx, self.ctx.text
        out: list[str] = []
        gaps: list[int] = []  # where in out the gap lines go
        notes: list[int] = []
        cuts: list[tuple[int, int, int, int]] = []
        prev: Piece | None = None
        note = 0
        kept_raw = 0
        whole: list[int] = []
        for it in items:
            if isinstance(it, int):
                note = it
                continue
            om = self._omission(prev, it)
            if om is not None:
                cuts.append(om)
            if note:
                notes.append(len(out))
                out.append(collapse_note(note) + self.eol)
                note = 0
            elif om is not None:
                gaps.append(len(out))
                out.append("")
            out.append(text[it.start : it.end])
            kept_raw += it.cost
            if not (it.cut_before or it.cut_after):
                whole.append(it.line)
            prev = it
        om = self._omission(prev, None)
        if om is not None:
            cuts.append(om)
            gaps.append(len(out))
            out.append("")
        if not cuts:
            return text, 0
        a, b = min(c[0] for c in cuts), max(c[1] for c in cuts)
        la, lb = min(c[2] for c in cuts), max(c[3] for c in cuts)
        cut = cut_count(ctx, kept_raw, total)
        if self.n_lines == 1:
            detail = f" ({span(a + 1, b, 'character')} of {len(text):,})"
        else:
            shown = sum(1 for line in whole if la <= line <= lb)
            detail = f" ({span(la + 1, lb + 1, 'line')} of {self.n_lines:,}"
            detail += f", {shown:,} of them shown)" if shown else ")"
        mark = marker_at(level, cut, ctx.ref, a, b - a, detail, total[1]) + self.eol
        if gaps:
            out[gaps[0]] = mark
            for index in gaps[1:]:
                out[index] = GAP + self.eol
        else:  # only collapsed runs were cut: the marker follows the first note
            out.insert(notes[0] + 1, mark)
        return "\n".join(out), cut

    def worst_marker(self, level: int) -> str:
        n, size = self.n_lines, len(self.ctx.text)
        if n == 1:
            detail = f" ({span(size - 1, size, 'character')} of {size:,})"
        else:
            detail = f" ({span(n - 1, n, 'line')} of {n:,}, {n:,} of them shown)"
        approx = self.ctx.sampled()
        return marker_at(level, size, self.ctx.ref, size, size, detail, approx) + self.eol
