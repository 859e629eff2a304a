"""Truncate one tool result to a token budget, keeping what the conversation points at.

:func:`truncate_text` cuts a tool result's text to at most ``max_tokens`` tokens, counted by
:class:`~tidyctx.tokens.LocalCounter` (a hard bound: the output is checked with
``counter.count_text`` and shrunk until it fits; the marker counts). Whatever is cut, in one
span or several, is announced by exactly one marker line
(:func:`~tidyctx._markers.marker`); its offsets (characters of the original) span from the
first to the last character cut, so an expand tool that slices the stored original returns
all of it (with any kept lines in between)::

    [tidyctx: 48,213 tokens cut (lines 120–4,980 of 5,000, 7 of them shown); read them back
    with tidyctx_expand(id="toolu_01", offset=5123, length=998877)]

(one line; with an empty ``ref``: ``...; re-run the tool with a narrower query]``). Small
budgets get a shorter marker: without the detail, then the count and the id alone
(``[tidyctx: 1,203 tokens cut, id="tc_..."]``); every level names ``ref``. How the budget is
spent:

* **Text and logs** are cut line by line (:mod:`tidyctx.text._lines`): whole lines from the
  head (``head`` share of the budget) and from the tail (the rest). A line is only ever cut
  inside when it alone exceeds the budget (a minified file, a one-line JSON blob); then it is
  cut between code points, never inside a JSON ``\\uXXXX`` or ``\\"`` escape, a surrogate
  pair or a combining sequence.
* **Smart** (the default): runs of 3+ repeated or near-identical lines (equal once digits are
  masked: ``Downloading 12%`` ... ``Downloading 97%``) become their first line, a note
  ``[… ×N similar lines]`` and their last line; budget left over at the end opens kept runs
  again from both ends, so collapsing never shows less than the budget allows. Lines of the
  middle that hold a hint (a path, identifier, number or quoted string the conversation used,
  see :func:`~tidyctx.text._hints.hints_from`) or an error word
  (:data:`~tidyctx.text._hints.ERROR_WORDS`) are kept over plain lines: up to
  :data:`~tidyctx.text._cutting.MIDDLE_SHARE` of the budget goes to them, in their original
  order, one per distinct line (digits masked). After them come lines (and JSON rows) with
  words of their own (:data:`~tidyctx.text._cutting.RARE`): each word of 4+ characters or
  number of 3+ digits counts 1/k for the k lines that hold it, per character of the line, so
  boilerplate yields to the lines that name something only they name. The marker sits in the
  first gap; each further gap is a ``…`` line.
* **JSON arrays** (:mod:`tidyctx.text._rows`; the text is a JSON array, or an object whose
  largest field, holding at least half the text, leads to one) are cut row by row: the first
  and last rows that fit are kept, hint and error rows from the middle as above, and the cut
  rows are replaced by one element ``{"tidyctx": "<marker>"}`` (further gaps by ``"…"``), so
  the output still parses with :func:`json.loads`. Other JSON is cut as text.

Linear time: a text is tokenized whole only when it is small (up to
:data:`~tidyctx.text._cutting.EXACT_COUNT_CHARS` characters, or too short to exceed the
budget); otherwise only the pieces that may be kept are counted. Inputs over three
:data:`~tidyctx.text._lines.WINDOW_CHARS` windows are split into lines only in a head and a
tail window; the middle is searched for hint and error lines by a linear scan, and the number
of tokens cut is estimated from samples (shown as ``~48,213``).

Pure and deterministic; a text within budget is returned unchanged, so truncating an output
again with the same budget is a no-op. The selection both cutters share (budget, units, head,
tail and middle) is in :mod:`tidyctx.text._cutting`; this module checks the budget and picks
the cutter.

>>> from tidyctx.tokens import LocalCounter
>>> log = "\\n".join(f"step {i} ok" for i in range(400)) + "\\nERROR: disk full\\ndone"
>>> out = truncate_text(log, 60, ref="toolu_1", counter=LocalCounter())
>>> out.changed, LocalCounter().count_text(out.text) <= 60, "ERROR: disk full" in out.text
(True, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from tidyctx._markers import marker_at, span
from tidyctx.text._cutting import MAX_TOKEN_CHARS, Ctx, choose_level, cut_count
from tidyctx.text._hints import ordered_hints
from tidyctx.text._lines import Lines
from tidyctx.text._rows import Rows, json_rows
from tidyctx.tokens import LocalCounter

__all__ = ["MIN_MAX_TOKENS", "Truncated", "truncate_text"]

MIN_MAX_TOKENS = 24
"""The smallest budget accepted: enough for the shortest marker of any cut, its store id
included (``[tidyctx: cut, id="tc_..."]``: 18 tokens, 23 on the models that count 1.46x)."""

_PRECOUNT_CHARS = 1 << 16


@dataclass(frozen=True)
class Truncated:
    """The result of :func:`truncate_text`.

    ``text``: what to send. ``cut_tokens``: tokens of the original that are not in ``text``
    (by the counter; estimated from samples for inputs over
    :data:`~tidyctx.text._cutting.EXACT_COUNT_CHARS`). ``kept_tokens``: tokens of ``text``,
    marker included. ``changed``: whether anything was cut.
    """

    text: str
    cut_tokens: int
    kept_tokens: int
    changed: bool


def _fits(ctx: Ctx) -> bool:
    """Whether the text is within budget, without counting all of a text that is far over.

    No cl100k token is longer than 128 characters, which bounds the count from below; a long
    text is then counted in pieces cut after newlines (where cl100k pieces nearly add up) until
    it is clearly over. Only a text that may fit is counted whole, and that count decides.
    """
    text = ctx.text
    if ctx.calibrated(math.ceil(len(text) / MAX_TOKEN_CHARS)) > ctx.max_tokens:
        return False
    if len(text) > 2 * _PRECOUNT_CHARS:
        raw = pieces = 0
        pos = 0
        while pos < len(text):
            end = text.find("\n", pos + _PRECOUNT_CHARS, pos + 4 * _PRECOUNT_CHARS) + 1
            end = end or min(len(text), pos + _PRECOUNT_CHARS)
            raw += ctx.raw(text[pos:end])
            pieces += 1
            pos = end
            if raw > ctx.raw_budget * 1.1 + 4 * pieces:
                return False
    ctx.total = ctx.counter.count_text(text)
    return ctx.total <= ctx.max_tokens


def _run(ctx: Ctx, shape: Lines | Rows, reserve_extra: int = 0) -> tuple[str, int] | None:
    """Render within budget, shrinking until the counter agrees; None if nothing fits."""
    total = ctx.total_raw()
    level = choose_level(ctx, shape.worst_marker)
    budget = ctx.raw_budget - ctx.raw(shape.worst_marker(level)) - 1 - reserve_extra
    for _ in range(24):
        if budget < 0:
            return None
        out, cut = shape.render(budget, level, total)
        tokens = ctx.counter.count_text(out)
        if tokens <= ctx.max_tokens:
            return out, cut
        budget -= max(math.ceil((tokens - ctx.max_tokens) / ctx.factor) + 1, budget // 16)
    return None


def _marker_only(ctx: Ctx, overflow: bool) -> tuple[str, int]:
    total_raw, approx = ctx.total_raw()
    cut = cut_count(ctx, 0, (total_raw, approx))
    lines = ctx.text.count("\n") + 1
    detail = f" ({span(1, lines, 'line')} of {lines:,})" if lines > 1 else ""
    for level in (0, 1, 2):
        mark = marker_at(level, cut, ctx.ref, 0, len(ctx.text), detail, approx)
        if ctx.counter.count_text(mark) <= ctx.max_tokens:
            return mark, cut
    mark = marker_at(3, cut, ctx.ref, 0, len(ctx.text), detail, approx)
    need = ctx.counter.count_text(mark)
    if need > ctx.max_tokens and not overflow:
        # A marker that names its id is what makes the cut recoverable; a long ref under a
        # counter with more tokens per character can outgrow a small budget.
        raise ValueError(
            f"max_tokens={ctx.max_tokens} cannot hold the shortest marker naming "
            f"ref {ctx.ref!r}: it counts {need} tokens; give max_tokens of at least {need}"
        )
    return mark, cut


def truncate_text(
    text: str,
    max_tokens: int,
    *,
    counter: LocalCounter | None = None,
    head: float = 0.5,
    hints: Collection[str] = (),
    ref: str = "",
    smart: bool = True,
    overflow: bool = False,
) -> Truncated:
    """Cut ``text`` to at most ``max_tokens`` tokens (by ``counter.count_text``), marker included.

    ``head``: share of the budget for the start of the text (the rest goes to the end).
    ``hints``: terms the conversation points at (:func:`~tidyctx.text._hints.hints_from`); with
    ``smart``, lines and rows that hold them or an error word are kept from the middle, and
    runs of similar lines are collapsed. ``ref``: the id an expand tool knows the original
    by (a tool_use id); when empty the marker tells the agent to re-run the tool instead.

    A text within budget comes back unchanged (``changed`` False). Otherwise exactly one marker
    (:func:`~tidyctx._markers.is_marker`) stands for everything cut, with offsets into ``text``
    that span it; further gaps between kept lines are ``…`` lines, collapsed runs
    ``[… ×N similar lines]``.
    For a JSON array the marker is an element ``{"tidyctx": ...}`` and the output parses.

    Raises ValueError if ``max_tokens`` is below :data:`MIN_MAX_TOKENS`, if ``head`` is outside
    [0, 1], or if the budget cannot hold even the shortest marker naming ``ref`` (a long ref
    counted by a model with more tokens per character; the message gives the least budget).
    With ``overflow`` that marker is returned instead, over budget: ``trim`` shares a budget
    among the parts of a result with a floor per part, and a part cut to its marker is still
    the least it can send.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int, not {type(max_tokens).__name__}")
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}")
    if isinstance(head, bool) or not isinstance(head, int | float) or not 0 <= head <= 1:
        raise ValueError(f"head must be a number from 0 to 1, got {head!r}")
    ctx = Ctx(text, counter if counter is not None else LocalCounter(), max_tokens, ref)
    if _fits(ctx):
        assert ctx.total is not None
        return Truncated(text, 0, ctx.total, False)
    ordered = ordered_hints(hints) if smart else []
    result: tuple[str, int] | None = None
    found = json_rows(text)
    if found is not None:
        rows = Rows(ctx, found[0], found[1], float(head), ordered, smart)
        if rows.fixed <= ctx.raw_budget // 2:
            result = _run(ctx, rows)
    if result is None:
        result = _run(ctx, Lines(ctx, float(head), ordered, smart))
    if result is None:
        result = _marker_only(ctx, overflow)
    out, cut = result
    return Truncated(out, cut, ctx.counter.count_text(out), True)
