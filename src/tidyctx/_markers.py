"""How a cut is written into a tool result, and how it is recognised again.

Every transform that removes text leaves a line that starts with :data:`MARKER_PREFIX` and says
what went and how to get it back. Later passes look for that prefix to leave such text alone
(``slice_code`` does not slice a view that was cut, ``compact`` keeps the lines of a cut view).
Inside a cut, a run of similar lines becomes a note (:func:`collapse_note`) and each further
gap a :data:`GAP` line; in a JSON array the marker is an element ``{"tidyctx": "<marker>"}``
(:func:`json_marker`), so the text still parses.

>>> marker(1, "", 0, 3)
'[tidyctx: 1 token cut; re-run the tool with a narrower query]'
>>> is_marker(json_marker(marker(1, "", 0, 3)) + ",")
True
"""

from __future__ import annotations

import json

__all__ = [
    "GAP",
    "MARKER_KEY",
    "MARKER_PREFIX",
    "NOTE_START",
    "collapse_note",
    "is_marker",
    "json_marker",
    "marker",
    "marker_at",
    "span",
]

MARKER_PREFIX = "[tidyctx: "
"""Every marker line starts with this (after optional indentation)."""

MARKER_KEY = "tidyctx"
"""Key of the marker object that replaces cut rows of a JSON array."""

NOTE_START = "[… ×"
"""Start of a note that stands for lines not shown (:func:`collapse_note`, ``echo_note``)."""

GAP = "…"
"""A gap between kept lines after the first one, which holds the marker."""

_RERUN_TEXT = "re-run the tool with a narrower query"


def marker(
    cut_tokens: int,
    ref: str,
    offset: int,
    length: int,
    detail: str = "",
    *,
    approx: bool = False,
) -> str:
    """The marker line for a cut: how much, where, and how to get it back.

    ``offset`` and ``length`` are in characters of the original text (``original[offset :
    offset + length]`` is the cut span). With an empty ``ref`` the agent is told to re-run the
    tool instead. ``approx`` marks an estimated count with ``~``.

    >>> marker(48213, "toolu_1", 5123, 9000, " (lines 120–4,980 of 5,000)")
    '[tidyctx: 48,213 tokens cut (lines 120–4,980 of 5,000); read them back with tidyctx_expand(id="toolu_1", offset=5123, length=9000)]'
    >>> marker(1, "", 0, 3)
    '[tidyctx: 1 token cut; re-run the tool with a narrower query]'
    """  # noqa: E501
    head = _count_phrase(cut_tokens, approx) + detail
    if not ref:
        return f"{MARKER_PREFIX}{head}; {_RERUN_TEXT}]"
    ident = json.dumps(ref, ensure_ascii=False)
    return (
        f"{MARKER_PREFIX}{head}; read them back with "
        f"tidyctx_expand(id={ident}, offset={offset}, length={length})]"
    )


def _count_phrase(cut_tokens: int, approx: bool) -> str:
    unit = "token" if cut_tokens == 1 and not approx else "tokens"
    return f"{'~' if approx else ''}{cut_tokens:,} {unit} cut"


def marker_at(
    level: int, cut: int, ref: str, offset: int, length: int, detail: str, approx: bool
) -> str:
    """The marker at a level of detail, for budgets too small for the full one: 0 is
    :func:`marker` with ``detail``, 1 without it, 2 the count alone, 3 just ``cut``.

    >>> marker_at(2, 1203, "toolu_1", 0, 9, "", False), marker_at(3, 1, "", 0, 9, "", True)
    ('[tidyctx: 1,203 tokens cut]', '[tidyctx: cut]')
    """
    if level == 0:
        return marker(cut, ref, offset, length, detail, approx=approx)
    if level == 1:
        return marker(cut, ref, offset, length, approx=approx)
    if level == 2:
        return f"{MARKER_PREFIX}{_count_phrase(cut, approx)}]"
    return f"{MARKER_PREFIX}cut]"


def json_marker(mark: str) -> str:
    """The element that holds the marker ``mark`` in a cut JSON array.

    >>> print(json_marker("[tidyctx: cut]"))
    {"tidyctx": "[tidyctx: cut]"}
    """
    return json.dumps({MARKER_KEY: mark}, ensure_ascii=False)


_MARKER_STARTS = (MARKER_PREFIX, '{"' + MARKER_KEY + '": "' + MARKER_PREFIX)


def is_marker(line: str) -> bool:
    """Whether ``line`` is a marker line (text or pretty JSON form).

    >>> is_marker("[tidyctx: 12 tokens cut; re-run the tool with a narrower query]")
    True
    >>> is_marker('  {"tidyctx": "[tidyctx: 12 tokens cut]"},'), is_marker("tidyctx")
    (True, False)
    """
    stripped = line.strip()
    return stripped.startswith(_MARKER_STARTS)


def collapse_note(hidden: int) -> str:
    """The line that stands for ``hidden`` similar lines of a collapsed run.

    >>> collapse_note(1203)
    '[… ×1,203 similar lines]'
    """
    return f"{NOTE_START}{hidden:,} similar lines]"


def span(first: int, last: int, what: str) -> str:
    """A range of lines, rows or characters as a marker names it (numbers from 1).

    >>> span(120, 4980, "line"), span(7, 7, "row")
    ('lines 120–4,980', 'row 7')
    """
    return f"{what} {first:,}" if first == last else f"{what}s {first:,}–{last:,}"
