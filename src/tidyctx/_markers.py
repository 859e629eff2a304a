"""How a cut is written into a tool result, and how it is recognised again.

Every transform that removes text leaves a line that starts with :data:`MARKER_PREFIX` and says
what went and how to get it back. Later passes look for that prefix to leave such text alone
(``slice_code`` does not slice a view that was cut, ``compact`` keeps the lines of a cut view).
Inside a cut, a run of similar lines becomes a note (:func:`collapse_note`) and each further
gap a :data:`GAP` line; in a JSON array the marker is an element ``{"tidyctx": "<marker>"}``
(:func:`json_marker`), so the text still parses.

Every marker or note that stands for text which the request no longer holds names the store
id of that text (``id="tc_..."``, :func:`store_ids` finds them): a cut (:func:`marker`, at
every level of detail), a compacted original (:func:`original_note`), lines that repeat an
earlier result (:func:`repeat_note`). A collapse note and a gap line sit inside a cut, whose
marker names the whole text before the cut.

>>> marker(1, "", 0, 3)
'[tidyctx: 1 token cut; re-run the tool with a narrower query]'
>>> is_marker(json_marker(marker(1, "", 0, 3)) + ",")
True
"""

from __future__ import annotations

import json
import re

from tidyctx._memo import memoized

__all__ = [
    "EXPAND_TOOL",
    "GAP",
    "MARKER_KEY",
    "MARKER_PREFIX",
    "NOTE_START",
    "collapse_note",
    "expand_call",
    "is_marker",
    "json_marker",
    "marker",
    "marker_at",
    "original_note",
    "repeat_note",
    "span",
    "store_ids",
]

MARKER_PREFIX = "[tidyctx: "
"""Every marker line starts with this (after optional indentation)."""

MARKER_KEY = "tidyctx"
"""Key of the marker object that replaces cut rows of a JSON array."""

NOTE_START = "[… ×"
"""Start of a note that stands for lines not shown (:func:`collapse_note`, ``echo_note``)."""

GAP = "…"
"""A gap between kept lines after the first one, which holds the marker."""

EXPAND_TOOL = "tidyctx_expand"
"""The tool a marker names to read a stored text back (:func:`expand_call`)."""

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
    :func:`marker` with ``detail``, 1 without it, 2 the count and the id, 3 ``cut`` and the id
    (a text cut is always one call away: every level names ``ref`` when there is one).

    >>> marker_at(2, 1203, "tc_1", 0, 9, "", False), marker_at(3, 1, "", 0, 9, "", True)
    ('[tidyctx: 1,203 tokens cut, id="tc_1"]', '[tidyctx: cut]')
    """
    if level == 0:
        return marker(cut, ref, offset, length, detail, approx=approx)
    if level == 1:
        return marker(cut, ref, offset, length, approx=approx)
    ident = f", id={json.dumps(ref, ensure_ascii=False)}" if ref else ""
    if level == 2:
        return f"{MARKER_PREFIX}{_count_phrase(cut, approx)}{ident}]"
    return f"{MARKER_PREFIX}cut{ident}]"


def expand_call(key: str) -> str:
    """How a marker says to read the text stored under ``key`` back.

    >>> expand_call("tc_0123456789abcdef")
    'tidyctx_expand(id="tc_0123456789abcdef")'
    """
    return f"{EXPAND_TOOL}(id={json.dumps(key, ensure_ascii=False)})"


def original_note(what: str, key: str) -> str:
    """The marker line after a text that was rewritten in a way that loses characters
    (``what``: ``compacted``), naming the store id of the exact original.

    >>> original_note("compacted", "tc_0123456789abcdef")
    '[tidyctx: compacted, original id="tc_0123456789abcdef"]'
    """
    return f"{MARKER_PREFIX}{what}, original id={json.dumps(key, ensure_ascii=False)}]"


def repeat_note(hidden: int, key: str) -> str:
    """The line that stands for ``hidden`` lines that earlier results hold as sent; ``key``
    names those lines in the store. It names no call: the earlier result may later be
    summarized away or cleared, and the note must still say where its lines are.

    >>> repeat_note(12, "tc_0123456789abcdef")
    '[… ×12 lines as in earlier results, id="tc_0123456789abcdef"]'
    """
    return f"{NOTE_START}{hidden:,} lines as in earlier results, id={json.dumps(key)}]"


# A store id as a marker writes it: id="tc_..." (escaped inside a JSON marker element).
_STORE_ID = re.compile(r'\bid=\\?"(tc_[0-9a-f]{16})\\?"')


def _ids_size(ids: tuple[str, ...]) -> int:
    # The key is the request's own text (shared, see tidyctx._memo): the ids are what it adds.
    return 8 + 27 * len(ids)


def store_ids(text: str) -> list[str]:
    """The store ids that the markers and notes of ``text`` name, in order, each once.

    >>> store_ids('[tidyctx: cut, id="tc_0123456789abcdef"]\\n{"tidyctx": "[tidyctx: cut, '
    ...           'id=\\\\"tc_00000000000000ff\\\\"]"}')
    ['tc_0123456789abcdef', 'tc_00000000000000ff']
    """
    if "tc_" not in text:
        return []
    # Remembered by text: every transform reads the ids of every marked result on each turn.
    found = memoized(
        "store-ids", text, lambda: tuple(dict.fromkeys(_STORE_ID.findall(text))), _ids_size
    )
    return list(found)


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
