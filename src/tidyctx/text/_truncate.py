"""Truncate one tool result to a token budget, keeping what the conversation points at.

:func:`truncate_text` cuts a tool result's text to at most ``max_tokens`` tokens, counted by
:class:`~tidyctx.tokens.LocalCounter` (a hard bound: the output is checked with
``counter.count_text`` and shrunk until it fits; the marker counts). Whatever is cut, in one
span or several, is announced by exactly one marker line made by :func:`marker`; its offsets
(characters of the original) span from the first to the last character cut, so an expand
tool that slices the stored original returns all of it (with any kept lines in between)::

    [tidyctx: 48,213 tokens cut (lines 120–4,980 of 5,000, 7 of them shown); read them back
    with tidyctx_expand(id="toolu_01", offset=5123, length=998877)]

(one line; with an empty ``ref``: ``...; re-run the tool with a narrower query]``). Small
budgets get a shorter marker: without the detail, then the count alone. How the budget is
spent:

* **Text and logs** are cut line by line: whole lines from the head (``head`` share of the
  budget) and from the tail (the rest). A line is only ever cut inside when it alone exceeds
  the budget (a minified file, a one-line JSON blob); then it is cut between code points,
  never inside a JSON ``\\uXXXX`` or ``\\"`` escape, a surrogate pair or a combining
  sequence.
* **Smart** (the default): runs of 3+ repeated or near-identical lines (equal once digits are
  masked: ``Downloading 12%`` ... ``Downloading 97%``) become their first line, a note
  ``[… ×N similar lines]`` and their last line; budget left over at the end opens kept runs
  again from both ends, so collapsing never shows less than the budget allows. Lines of the
  middle that hold a hint (a path, identifier, number or quoted string the conversation used,
  see :func:`hints_from`) or an error word (:data:`ERROR_WORDS`) are kept over plain lines:
  up to :data:`MIDDLE_SHARE` of the budget goes to them, in their original order, one per
  distinct line (digits masked). After them come lines (and JSON rows) with words of their
  own (:data:`RARE`): each word of 4+ characters or number of 3+ digits counts 1/k for the k
  lines that hold it, per character of the line, so boilerplate yields to the lines that name
  something only they name. The marker sits in the first gap; each further gap is a ``…``
  line.
* **JSON arrays** (the text is a JSON array, or an object whose largest field, holding at least
  half the text, leads to one) are cut row by row: the first and last rows that fit are kept,
  hint and error rows from the middle as above, and the cut rows are replaced by one element
  ``{"tidyctx": "<marker>"}`` (further gaps by ``"…"``), so the output still parses with
  :func:`json.loads`. Other JSON is cut as text.

Linear time: a text is tokenized whole only when it is small (up to
:data:`EXACT_COUNT_CHARS` characters, or too short to exceed the budget); otherwise only the
pieces that may be kept are counted. Inputs over three :data:`WINDOW_CHARS` windows are split
into lines only in a head and a tail window; the middle is searched for hint and error lines
by a linear scan, and the number of tokens cut is estimated from samples (shown as
``~48,213``).

Pure and deterministic; a text within budget is returned unchanged, so truncating an output
again with the same budget is a no-op.

>>> from tidyctx.tokens import LocalCounter
>>> log = "\\n".join(f"step {i} ok" for i in range(400)) + "\\nERROR: disk full\\ndone"
>>> out = truncate_text(log, 60, ref="toolu_1", counter=LocalCounter())
>>> out.changed, LocalCounter().count_text(out.text) <= 60, "ERROR: disk full" in out.text
(True, True, True)
"""

from __future__ import annotations

import bisect
import json
import math
import re
import unicodedata
from array import array
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from tidyctx.tokens import LocalCounter, get_encoding

__all__ = [
    "ERROR_WORDS",
    "EXACT_COUNT_CHARS",
    "MARKER_KEY",
    "MARKER_PREFIX",
    "MIDDLE_SHARE",
    "MIN_MAX_TOKENS",
    "WINDOW_CHARS",
    "Truncated",
    "collapse_note",
    "hints_from",
    "is_marker",
    "marker",
    "truncate_text",
]

MARKER_PREFIX = "[tidyctx: "
"""Every marker line starts with this (after optional indentation)."""

MARKER_KEY = "tidyctx"
"""Key of the marker object that replaces cut rows of a JSON array."""

MIN_MAX_TOKENS = 16
"""The smallest budget accepted: enough for the shortest marker of any cut."""

EXACT_COUNT_CHARS = 1 << 19
"""Texts up to this many characters are tokenized whole for an exact count of what was cut;
longer ones get an estimate from samples (the marker then shows ``~``)."""

WINDOW_CHARS = 1 << 20
"""Inputs longer than three windows are split into lines only in a head and a tail window of
about this many characters (or 16 per token of the budget, if more); the middle is only
scanned for hint and error lines."""

RARE = True
"""Whether lines with words of their own are kept from the middle after hint and error lines."""

_RARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}|\d{3,}")
_RARE_MAX_ROWS = 5_000

MIDDLE_SHARE = 0.55
"""Largest share of the budget spent on hint and error lines from the middle."""

_RERUN_TEXT = "re-run the tool with a narrower query"
_GAP = "…"
_GAP_JSON = '"…"'
_MAX_TOKEN_CHARS = 128
"""No cl100k token is longer than 128 bytes, so a text has at least len(text) / 128 tokens."""
_MAX_HINTS = 64
_HINT_UNIT_CAP = 2_000
"""A hint found in more lines (or rows) than this is not telling: it is ignored."""
_ERROR_UNIT_CAP = 20_000
_MISS_CAP = 50_000
"""A term whose occurrences fail this often (inside longer words, ``exit code 0``...) is
noise in this text: the scan stops looking for it."""
_SCAN_CHUNK = 1 << 22
_PRECOUNT_CHARS = 1 << 16
_MAX_CANDIDATES = 4_000
_MIN_PARTIAL = 4
_COLLAPSE_MAX_LINE = 4_096
_JSON_MAX_DEPTH = 8
_SAMPLES = 64
_SAMPLE_CHARS = 4_096

# ---------------------------------------------------------------------------- error words

# (stem, pattern): each pattern's match starts with its stem, case-insensitively, so a fast
# search for the lower-cased stems finds every place ERROR_WORDS can match.
_ERROR_TERMS: tuple[tuple[str, str], ...] = (
    ("error", r"errors?\b"),  # also ValueError, OSError
    ("errno", r"errno\b"),
    ("exception", r"exceptions?\b"),
    ("traceback", r"\btraceback\b"),
    ("fail", r"\bfail(?:s|ed|ure|ures|ing)?\b"),
    ("fatal", r"\bfatal\b"),
    ("panic", r"\bpanic(?:s|ked)?\b"),
    ("warn", r"warn(?:s|ing|ings)?\b"),  # also DeprecationWarning
    ("denied", r"\bdenied\b"),
    ("refused", r"\brefused\b"),
    ("not found", r"\bnot found\b"),
    ("no such file", r"\bno such file\b"),
    ("cannot", r"\bcannot\b"),
    ("can't", r"\bcan't\b"),
    ("unable to", r"\bunable to\b"),
    ("timed out", r"\btimed out\b"),
    ("timeout", r"\btimeout\b"),
    ("segmentation fault", r"\bsegmentation fault\b"),
    ("segfault", r"\bsegfault\b"),
    ("abort", r"\babort(?:s|ed|ing)?\b"),
    ("assert", r"\bassert(?:ion)?\w*"),
    ("critical", r"\bcritical\b"),
    ("crash", r"\bcrash(?:es|ed)?\b"),
    ("killed", r"\bkilled\b"),
    ("out of memory", r"\bout of memory\b"),
    ("unhandled", r"\bunhandled\b"),
    ("uncaught", r"\buncaught\b"),
    ("undefined reference", r"\bundefined reference\b"),
    ("exit", r"\bexit(?:ed)?(?:\s+with)?(?:\s+(?:code|status))?[\s:=]*-?[1-9]\d*\b"),
    ("non-zero", r"\bnon-zero (?:exit|status|return)"),
)

ERROR_WORDS: re.Pattern[str] = re.compile(
    "(?i)(?:" + "|".join(pattern for _, pattern in _ERROR_TERMS) + ")"
)
"""Words of error and failure lines: error, exception, traceback, failed, fatal, panic,
warning, denied, not found, exit code N (N != 0), assert... Lines it matches are kept over
plain lines when a result is cut."""

_ERROR_STEMS = tuple(sorted({stem for stem, _ in _ERROR_TERMS}))
_STEM_OVERLAP = max(len(stem) for stem, _ in _ERROR_TERMS)

# ---------------------------------------------------------------------------- hints

_STOPWORD_TEXT = """
    about above after again against also although always among another anything around
    because been before being below between both cannot could does doing done down during
    each either else enough even ever every everything first following from further gets
    given goes going good great have having here hers herself himself however into itself
    just know last less like look looks looking made make makes making many maybe might more
    most much must myself need needs never next none nothing okay only onto other others
    ours over perhaps please quite rather really same seem seems seen should show shows
    since some something still such sure take than that thats their theirs them themselves
    then there these they thing things think this those though through thus together under
    until upon using very want wants well were what whatever when where whether which while
    will with within without would your yours yourself
    true false null self return import from
    check file files line lines code value values data name type test tests result results
    output input error errors let's lets found find note use used uses call calls
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_URL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>()\[\]{}`,;|]+")
_PATH_RE = re.compile(r"(?<![\w@+.~/-])~?[\w@+.-]*(?:/[\w@+.-]+)+/?")
_WINPATH_RE = re.compile(r"\b[A-Za-z]:\\[\w@+.\\-]+")
_IDENT_RE = re.compile(r"(?<![\w$])[A-Za-z_$][\w$]*(?:(?:\.|::)[A-Za-z_$][\w$]*)*")
_NUMBER_RE = re.compile(r"(?<!\d)\d{3,}(?!\d)")
_QUOTED_RE = re.compile(
    r"\"([^\"\\\n]{3,120})\"|(?<![\w])'([^'\\\n]{3,120})'(?![\w])|`([^`\n]{3,120})`"
)
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]*")
_DIGITS = re.compile(r"\d+")


def _add_term(out: set[str], term: str) -> None:
    term = term.strip()
    if len(term) < 3:
        return
    if _PLAIN_WORD.fullmatch(term) and (len(term) < 4 or term.lower() in _STOPWORDS):
        return
    out.add(term)


def _extract(text: str, out: set[str]) -> None:
    for m in _URL_RE.finditer(text):
        url = m.group().rstrip(".:")
        _add_term(out, url)
        rest = url.split("://", 1)[1]
        slash = rest.find("/")
        if slash >= 0 and len(rest) - slash >= 4:
            _add_term(out, rest[slash:].rstrip("/"))
    for m in _PATH_RE.finditer(text):
        path = m.group().rstrip(".-")
        if not any(c.isalnum() for c in path) or text[m.start() - 1 : m.start()] == ":":
            continue  # "//host" of a URL, or no name at all
        _add_term(out, path.rstrip("/") or path)
        base = path.rstrip("/").rsplit("/", 1)[-1]
        if len(base) >= 4 and base != path:
            _add_term(out, base)
    for m in _WINPATH_RE.finditer(text):
        _add_term(out, m.group())
    for m in _IDENT_RE.finditer(text):
        ident = m.group().rstrip(".")
        if len(ident) >= 4:
            _add_term(out, ident)
        if "." in ident or "::" in ident:
            for part in re.split(r"\.|::", ident):
                if len(part) >= 4:
                    _add_term(out, part)
    for m in _NUMBER_RE.finditer(text):
        out.add(m.group())
    for m in _QUOTED_RE.finditer(text):
        _add_term(out, m.group(1) or m.group(2) or m.group(3) or "")


def _json_values(value: Any, out: list[str], depth: int = 0) -> None:
    if depth > 32:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        if isinstance(value, int) and abs(value) >= 100:
            out.append(str(value))
    elif isinstance(value, dict):
        for item in value.values():
            _json_values(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_values(item, out, depth + 1)


def hints_from(*texts: str) -> frozenset[str]:
    """The terms a conversation points at, to keep the lines that hold them.

    From each text (a tool_use input as JSON, recent assistant text): URLs and file paths
    (``src/a/b.py``, ``./x``, ``/etc/hosts``, and their file names), identifiers of 4+
    characters (snake, camel, dotted: ``parse_config``, ``UserService.get`` and its parts),
    numbers of 3+ digits and quoted strings. A text that parses as JSON contributes its values,
    not its keys; each short string value also counts as a quoted string. Plain words of the
    stoplist (``this``, ``should``, ``file``...) are dropped. Error words are not hints: they
    are matched by :data:`ERROR_WORDS`.

    >>> sorted(hints_from('{"path": "src/app/config.py", "line": 1200}', "Now parse_config."))
    ['1200', 'config', 'config.py', 'parse_config', 'src/app/config.py']
    """
    out: set[str] = set()
    for text in texts:
        if not isinstance(text, str) or not text:
            continue
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                value = None
            if isinstance(value, dict | list):
                strings: list[str] = []
                _json_values(value, strings)
                for s in strings:
                    if 3 <= len(s) <= 120 and "\n" not in s:
                        _add_term(out, s)
                    _extract(s, out)
                continue
        _extract(text, out)
    return frozenset(out)


def _hint_weight(term: str) -> int:
    if term.isdigit():
        return 2
    if _PLAIN_WORD.fullmatch(term):
        return 1  # a plain word: weak
    return 4  # a path, identifier, quoted phrase: strong


def _ordered_hints(hints: Collection[str]) -> list[tuple[str, int]]:
    terms = {h for h in hints if isinstance(h, str) and len(h.strip()) >= 3 and "\n" not in h}
    ranked = sorted(terms, key=lambda h: (-_hint_weight(h), -len(h), h))
    return [(h, _hint_weight(h)) for h in ranked[:_MAX_HINTS]]


# ---------------------------------------------------------------------------- markers


@dataclass(frozen=True)
class Truncated:
    """The result of :func:`truncate_text`.

    ``text``: what to send. ``cut_tokens``: tokens of the original that are not in ``text``
    (by the counter; estimated from samples for inputs over :data:`EXACT_COUNT_CHARS`).
    ``kept_tokens``: tokens of ``text``, marker included. ``changed``: whether anything was cut.
    """

    text: str
    cut_tokens: int
    kept_tokens: int
    changed: bool


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


def _marker_at(
    level: int, cut: int, ref: str, offset: int, length: int, detail: str, approx: bool
) -> str:
    if level == 0:
        return marker(cut, ref, offset, length, detail, approx=approx)
    if level == 1:
        return marker(cut, ref, offset, length, approx=approx)
    if level == 2:
        return f"{MARKER_PREFIX}{_count_phrase(cut, approx)}]"
    return f"{MARKER_PREFIX}cut]"


_MARKER_STARTS = (MARKER_PREFIX, '{"' + MARKER_KEY + '": "' + MARKER_PREFIX)


def is_marker(line: str) -> bool:
    """Whether ``line`` is a marker line of :func:`truncate_text` (text or pretty JSON form).

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
    return f"[… ×{hidden:,} similar lines]"


def _span(first: int, last: int, what: str) -> str:
    return f"{what} {first:,}" if first == last else f"{what}s {first:,}–{last:,}"


# ---------------------------------------------------------------------------- cutting


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


# ---------------------------------------------------------------------------- model


@dataclass(slots=True)
class _Unit:
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


class _Units(Protocol):
    """A sequence of units, built lazily for JSON rows."""

    def __len__(self) -> int: ...

    def __getitem__(self, k: int, /) -> _Unit: ...


@dataclass(slots=True)
class _Piece:
    line: int
    start: int
    end: int
    cut_before: bool = False  # starts inside its line
    cut_after: bool = False  # ends inside its line
    cost: int = 0


@dataclass(slots=True)
class _Pick:
    head: int
    tail: int
    head_part: _Piece | None
    tail_part: _Piece | None
    middle: list[_Unit]
    used: int


class _Ctx:
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

    def total_raw(self) -> tuple[float, bool]:
        """Raw tokens of the whole text and whether that is an estimate."""
        if self.total is not None:
            return self.total / self.factor, False
        text = self.text
        if len(text) <= EXACT_COUNT_CHARS:
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


# ---------------------------------------------------------------------------- scanning


def _scan(
    ctx: _Ctx,
    lo: int,
    hi: int,
    hints: list[tuple[str, int]],
    unit_of: Callable[[int], tuple[int, int] | None],
) -> dict[int, list[int]]:
    """Units of ``text[lo:hi]`` that hold an error word or a hint.

    Returns ``{unit start: [score, unit end, number of hints]}``; an error word scores 2, a hint
    its weight. Linear: each error stem is searched with ``str.find`` in lower-cased chunks and
    verified with :data:`ERROR_WORDS` in place; each hint is searched case-sensitively, as a
    whole word where it starts or ends with a word character. After a hit the search for that
    term resumes at the end of its unit. A hint found in more than ``_HINT_UNIT_CAP`` units is
    dropped (it tells nothing apart); a term that misses ``_MISS_CAP`` times is given up.
    """
    text = ctx.text
    found: dict[int, list[int]] = {}
    n_err = 0
    misses = dict.fromkeys(_ERROR_STEMS, 0)
    for cstart in range(lo, hi, _SCAN_CHUNK):
        cend = min(hi, cstart + _SCAN_CHUNK + _STEM_OVERLAP)
        # U+0130 is the one character whose lower case is longer: keep offsets aligned.
        low = text[cstart:cend].replace("\u0130", "i").lower()
        for stem in _ERROR_STEMS:
            i = low.find(stem)
            while i >= 0 and n_err < _ERROR_UNIT_CAP and misses[stem] < _MISS_CAP:
                p = cstart + i
                unit = unit_of(p) if ERROR_WORDS.match(text, p) is not None else None
                if unit is None:
                    misses[stem] += 1
                    i = low.find(stem, i + 1)
                    continue
                if unit[0] not in found:
                    found[unit[0]] = [2, unit[1], 0]
                    n_err += 1
                i = low.find(stem, max(i + 1, unit[1] + 1 - cstart))
    for term, weight in hints:
        word_start = term[0].isalnum() or term[0] == "_"
        word_end = term[-1].isalnum() or term[-1] == "_"
        touched: list[int] = []
        miss = 0
        p = text.find(term, lo, hi)
        while p >= 0 and len(touched) <= _HINT_UNIT_CAP and miss < _MISS_CAP:
            q = p + len(term)
            unit = (
                None
                if (word_start and p > 0 and (text[p - 1].isalnum() or text[p - 1] == "_"))
                or (word_end and q < len(text) and (text[q].isalnum() or text[q] == "_"))
                else unit_of(p)
            )
            if unit is None:  # inside a longer word, or outside any unit
                miss += 1
                p = text.find(term, p + 1, hi)
                continue
            touched.append(unit[0])
            entry = found.get(unit[0])
            if entry is None:
                found[unit[0]] = [weight, unit[1], 1]
            else:
                entry[0] += weight
                entry[2] += 1
            p = text.find(term, unit[1] + 1, hi)
        if len(touched) > _HINT_UNIT_CAP:  # in too many units to tell them apart: take it back
            for start in touched:
                found[start][0] -= weight
                found[start][2] -= 1
    return {k: v for k, v in found.items() if v[0] > 0}


# ---------------------------------------------------------------------------- selection


def _pick(
    units: _Units,
    scored: list[_Unit],
    split: int | None,
    extra: list[_Unit],
    budget: int,
    head_share: float,
    cost: Callable[[_Unit], int],
    gap_cost: int,
    smart: bool,
    dedupe_key: Callable[[_Unit], str],
    partial: Callable[[_Unit, bool, int, _Piece | None], _Piece | None] | None = None,
) -> _Pick:
    """Choose head units, tail units and middle units within ``budget`` raw tokens.

    ``units`` are in order; with ``split`` the head may only use ``units[:split]`` and the tail
    ``units[split:]`` (head and tail windows of a huge text), else they share the list.
    ``scored`` are the units with a score (hint or error), ``extra`` middle-only candidates
    (hint and error lines between the windows).
    ``partial(unit, head, room, other)`` cuts a line that alone exceeds the budget.
    """

    def fill(limit_total: int) -> _Pick:
        n = len(units)
        head_max = n if split is None else split
        tail_min = 0 if split is None else split
        h = t = used_h = used_t = 0
        ph: _Piece | None = None
        pt: _Piece | None = None

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
        return _Pick(h, t, ph, pt, [], used_h + used_t)

    def candidates(p: _Pick) -> list[_Unit]:
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


def _choose_level(ctx: _Ctx, worst: Callable[[int], str]) -> int:
    """The most telling marker that costs at most half the budget (a bare count if none)."""
    for level in (0, 1):
        if ctx.raw(worst(level)) + 1 <= ctx.raw_budget // 2:
            return level
    return 2 if ctx.raw(worst(2)) + 1 <= ctx.raw_budget else 3


def _cut_count(ctx: _Ctx, kept_raw: int, total: tuple[float, bool]) -> int:
    if ctx.total is not None:
        return max(0, ctx.total - ctx.calibrated(kept_raw))
    return max(0, ctx.calibrated(max(0, round(total[0]) - kept_raw)))


# ---------------------------------------------------------------------------- text and logs


class _Lines:
    """Line-aware truncation of plain text, logs and file reads."""

    def __init__(self, ctx: _Ctx, head: float, hints: list[tuple[str, int]], smart: bool) -> None:
        self.ctx = ctx
        self.head = head
        self.smart = smart
        text = ctx.text
        first_nl = text.find("\n")
        self.eol = "\r" if first_nl > 0 and text[first_nl - 1] == "\r" else ""
        self.n_lines = text.count("\n") + 1
        self.units: list[_Unit] = []
        self.extra: list[_Unit] = []
        self.split: int | None = None
        self._costs: dict[int, int] = {}
        segments = self._segments()
        hits = _scan(ctx, 0, len(text), hints, self._line_of) if smart else {}
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
                self.extra.append(_Unit(line_no, start, end, score=score))

    def _rarity(self) -> None:
        """Score each line by the words it holds that few other lines of the text hold: a
        word in k lines adds 1/k, per character of the line. Boilerplate scores low, the lines
        that carry names, numbers and paths of their own high."""
        text = self.ctx.text
        words: list[set[str] | None] = []
        seen: dict[str, int] = {}
        for u in self.units:
            if u.hidden or u.end - u.start > _COLLAPSE_MAX_LINE:
                words.append(None)
                continue
            found = set(_RARE_WORD.findall(text, u.start, u.end))
            words.append(found)
            for w in found:
                seen[w] = seen.get(w, 0) + 1
        for u, own in zip(self.units, words, strict=True):
            if own:
                u.rare = sum(1.0 / seen[w] for w in own) / (u.end - u.start + 8)

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
            self.units.extend(_Unit(line0 + k, starts[k], starts[k] + lengths[k]) for k in range(n))
            return
        # Lines equal once digits are masked form runs; long lines never do.
        masked: list[str | None]
        if lines is not None and max(lengths) <= _COLLAPSE_MAX_LINE:
            masked = list(_DIGITS.sub("0", text[lo:hi]).split("\n"))
        else:
            masked = [
                _DIGITS.sub("0", text[a : a + m]) if m <= _COLLAPSE_MAX_LINE else None
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
                    _Unit(
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
                    _Unit(line0 + j, starts[j], starts[j] + lengths[j], score=hit[0])
                    for j in range(k, run_end)
                )
            k = run_end

    # -- costs

    def _line_cost(self, start: int, end: int) -> int:
        """Raw tokens of a line and its newline (a lower bound past the budget for huge lines)."""
        cached = self._costs.get(start)
        if cached is None:
            if (end - start) / _MAX_TOKEN_CHARS > self.ctx.raw_budget:
                cached = self.ctx.raw_budget + 2 + (end - start) // _MAX_TOKEN_CHARS
            else:
                cached = self.ctx.raw(self.ctx.text[start:end]) + 1
            self._costs[start] = cached
        return cached

    def cost(self, u: _Unit) -> int:
        if u.cost < 0:
            c = self._line_cost(u.start, u.end)
            if u.hidden:
                c += self._line_cost(u.start1, u.end1) + self.ctx.raw(collapse_note(u.hidden)) + 1
            u.cost = c
        return u.cost

    def dedupe_key(self, u: _Unit) -> str:
        return _DIGITS.sub("0", self.ctx.text[u.start : min(u.end, u.start + 2_000)])

    def partial(self, u: _Unit, head: bool, room: int, other: _Piece | None) -> _Piece | None:
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
            return _Piece(u.line, lo, lo + best, cut_after=True, cost=best_cost + 1)
        return _Piece(u.line, hi - best, hi, cut_before=True, cost=best_cost + 1)

    # -- assembly

    def render(self, budget: int, level: int, total: tuple[float, bool]) -> tuple[str, int]:
        pick = _pick(
            self.units,
            self.scored,
            self.split,
            self.extra,
            budget,
            self.head,
            self.cost,
            self.ctx.raw(_GAP + self.eol) + 1,
            self.smart,
            self.dedupe_key,
            self.partial,
        )
        n = len(self.units)
        head, tail = self.units[: pick.head], self.units[n - pick.tail :]
        opened = self._open_runs([*head, *pick.middle, *tail], budget - pick.used)
        items: list[_Piece | int] = []  # an int is a collapse note for that many lines
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

    def _open_runs(self, kept: list[_Unit], room: int) -> dict[int, tuple[list[_Piece], ...]]:
        """Spend what the selection left over on showing more lines of the kept collapsed runs.

        Runs are opened a line at a time, from the front and the back in turn, round-robin over
        the runs, so that collapsing never shows less than the budget allows. Returns, per run
        (by its first line), the extra pieces after its first line and before its last.
        """
        text = self.ctx.text
        runs = [u for u in kept if u.hidden]
        opened: dict[int, tuple[list[_Piece], ...]] = {u.line: ([], []) for u in runs}
        while runs and room > 0:
            still: list[_Unit] = []
            for u in runs:
                front, back = opened[u.line]
                if len(front) <= len(back):
                    s = (front[-1].end if front else u.end) + 1
                    e = text.find("\n", s)
                    piece = _Piece(u.line + 1 + len(front), s, e)
                else:
                    e = (back[-1].start if back else u.start1) - 1
                    s = text.rfind("\n", 0, e) + 1
                    piece = _Piece(u.line1 - 1 - len(back), s, e)
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
        self, items: list[_Piece | int], u: _Unit, opened: dict[int, tuple[list[_Piece], ...]]
    ) -> None:
        items.append(_Piece(u.line, u.start, u.end, cost=self._line_cost(u.start, u.end)))
        if u.hidden:
            front, back = opened.get(u.line, ([], []))
            items.extend(front)
            if u.hidden > len(front) + len(back):
                items.append(u.hidden - len(front) - len(back))
            items.extend(reversed(back))
            items.append(_Piece(u.line1, u.start1, u.end1, cost=self._line_cost(u.start1, u.end1)))

    def _omission(
        self, prev: _Piece | None, nxt: _Piece | None
    ) -> tuple[int, int, int, int] | None:
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
        self, items: list[_Piece | int], level: int, total: tuple[float, bool]
    ) -> tuple[str, int]:
        ctx, text = self.ctx, self.ctx.text
        out: list[str] = []
        gaps: list[int] = []  # where in out the gap lines go
        notes: list[int] = []
        cuts: list[tuple[int, int, int, int]] = []
        prev: _Piece | None = None
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
        cut = _cut_count(ctx, kept_raw, total)
        if self.n_lines == 1:
            detail = f" ({_span(a + 1, b, 'character')} of {len(text):,})"
        else:
            shown = sum(1 for line in whole if la <= line <= lb)
            detail = f" ({_span(la + 1, lb + 1, 'line')} of {self.n_lines:,}"
            detail += f", {shown:,} of them shown)" if shown else ")"
        mark = _marker_at(level, cut, ctx.ref, a, b - a, detail, total[1]) + self.eol
        if gaps:
            out[gaps[0]] = mark
            for index in gaps[1:]:
                out[index] = _GAP + self.eol
        else:  # only collapsed runs were cut: the marker follows the first note
            out.insert(notes[0] + 1, mark)
        return "\n".join(out), cut

    def worst_marker(self, level: int) -> str:
        n, size = self.n_lines, len(self.ctx.text)
        if n == 1:
            detail = f" ({_span(size - 1, size, 'character')} of {size:,})"
        else:
            detail = f" ({_span(n - 1, n, 'line')} of {n:,}, {n:,} of them shown)"
        approx = len(self.ctx.text) > EXACT_COUNT_CHARS
        return _marker_at(level, size, self.ctx.ref, size, size, detail, approx) + self.eol


# ---------------------------------------------------------------------------- JSON arrays

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


def _json_rows(s: str) -> tuple[_JNode, str] | None:
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
        self.made: dict[int, _Unit] = {}

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int, /) -> _Unit:
        u = self.made.get(k)
        if u is None:
            if not 0 <= k < len(self.starts):
                raise IndexError(k)
            u = _Unit(k, self.starts[k], self.ends[k], score=self.scores.get(k, 0), index=k)
            u.rare = self.rare.get(k, 0.0)
            self.made[k] = u
        return u


class _Rows:
    """Row-aware truncation of a JSON array; the output stays valid JSON."""

    def __init__(
        self,
        ctx: _Ctx,
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
            hits = _scan(ctx, self.starts[0], self.ends[-1], hints, self._row_of)
            for start, hit in hits.items():
                scores[bisect.bisect_left(self.starts, start)] = hit[0]
        rare = self._rarity(text) if smart and RARE and self.n <= _RARE_MAX_ROWS else {}
        self.units = _RowUnits(self.starts, self.ends, scores, rare)
        self.scored = [self.units[k] for k in sorted(scores.keys() | rare.keys())]
        around = len(self.prefix) + len(self.suffix)
        if around / _MAX_TOKEN_CHARS > ctx.raw_budget:
            self.fixed = ctx.raw_budget + 1
        else:
            self.fixed = ctx.raw(self.prefix) + ctx.raw(self.suffix)

    def _rarity(self, text: str) -> dict[int, float]:
        """Per row, the words few other rows hold, per character (as for lines)."""
        words = [
            set(_RARE_WORD.findall(text, a, min(b, a + _COLLAPSE_MAX_LINE)))
            for a, b in zip(self.starts, self.ends, strict=True)
        ]
        seen: dict[str, int] = {}
        for found in words:
            for w in found:
                seen[w] = seen.get(w, 0) + 1
        return {
            k: sum(1.0 / seen[w] for w in found) / (self.ends[k] - self.starts[k] + 8)
            for k, found in enumerate(words)
            if found
        }

    def _row_of(self, p: int) -> tuple[int, int] | None:
        k = bisect.bisect_right(self.starts, p) - 1
        return (self.starts[k], self.ends[k]) if k >= 0 and p < self.ends[k] else None

    def cost(self, u: _Unit) -> int:
        if u.cost < 0:
            if (u.end - u.start) / _MAX_TOKEN_CHARS > self.ctx.raw_budget:
                u.cost = self.ctx.raw_budget + 1
            else:
                u.cost = self.ctx.raw(self.ctx.text[u.start : u.end]) + self.sep_cost
        return u.cost

    def dedupe_key(self, u: _Unit) -> str:
        return _DIGITS.sub("0", self.ctx.text[u.start : min(u.end, u.start + 2_000)])

    @staticmethod
    def _element(mark: str) -> str:
        return json.dumps({MARKER_KEY: mark}, ensure_ascii=False)

    def render(self, budget: int, level: int, total: tuple[float, bool]) -> tuple[str, int]:
        ctx, text = self.ctx, self.ctx.text
        pick = _pick(
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
        cut = _cut_count(ctx, kept_raw, total)
        where = f" in {self.path}" if self.path else ""
        detail = f" ({_span(ra + 1, rb + 1, 'row')} of {n:,}{where}"
        detail += f", {shown:,} of them shown)" if shown else ")"
        mark = _marker_at(level, cut, ctx.ref, offset, self.ends[rb] - offset, detail, total[1])
        parts[gaps[0]] = self._element(mark)
        for k in gaps[1:]:
            parts[k] = _GAP_JSON
        return self.prefix + self.sep.join(parts) + self.suffix, cut

    def worst_marker(self, level: int) -> str:
        n, size = self.n, len(self.ctx.text)
        where = f" in {self.path}" if self.path else ""
        detail = f" ({_span(n - 1, n, 'row')} of {n:,}{where}, {n:,} of them shown)"
        approx = size > EXACT_COUNT_CHARS
        return self._element(_marker_at(level, size, self.ctx.ref, size, size, detail, approx))


# ---------------------------------------------------------------------------- entry point


def _fits(ctx: _Ctx) -> bool:
    """Whether the text is within budget, without counting all of a text that is far over.

    No cl100k token is longer than 128 characters, which bounds the count from below; a long
    text is then counted in pieces cut after newlines (where cl100k pieces nearly add up) until
    it is clearly over. Only a text that may fit is counted whole, and that count decides.
    """
    text = ctx.text
    if ctx.calibrated(math.ceil(len(text) / _MAX_TOKEN_CHARS)) > ctx.max_tokens:
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


def _run(ctx: _Ctx, shape: _Lines | _Rows, reserve_extra: int = 0) -> tuple[str, int] | None:
    """Render within budget, shrinking until the counter agrees; None if nothing fits."""
    total = ctx.total_raw()
    level = _choose_level(ctx, shape.worst_marker)
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


def _marker_only(ctx: _Ctx) -> tuple[str, int]:
    total_raw, approx = ctx.total_raw()
    cut = _cut_count(ctx, 0, (total_raw, approx))
    lines = ctx.text.count("\n") + 1
    detail = f" ({_span(1, lines, 'line')} of {lines:,})" if lines > 1 else ""
    for level in (0, 1, 2):
        mark = _marker_at(level, cut, ctx.ref, 0, len(ctx.text), detail, approx)
        if ctx.counter.count_text(mark) <= ctx.max_tokens:
            return mark, cut
    return f"{MARKER_PREFIX}cut]", cut


def truncate_text(
    text: str,
    max_tokens: int,
    *,
    counter: LocalCounter | None = None,
    head: float = 0.5,
    hints: Collection[str] = (),
    ref: str = "",
    smart: bool = True,
) -> Truncated:
    """Cut ``text`` to at most ``max_tokens`` tokens (by ``counter.count_text``), marker included.

    ``head``: share of the budget for the start of the text (the rest goes to the end).
    ``hints``: terms the conversation points at (:func:`hints_from`); with ``smart``, lines and
    rows that hold them or an error word are kept from the middle, and runs of similar lines
    are collapsed. ``ref``: the id an expand tool knows the original by (a tool_use id); when
    empty the marker tells the agent to re-run the tool instead.

    A text within budget comes back unchanged (``changed`` False). Otherwise exactly one marker
    (:func:`is_marker`) stands for everything cut, with offsets into ``text`` that span it;
    further gaps between kept lines are ``…`` lines, collapsed runs ``[… ×N similar lines]``.
    For a JSON array the marker is an element ``{"tidyctx": ...}`` and the output parses.

    Raises ValueError if ``max_tokens`` is below :data:`MIN_MAX_TOKENS` or ``head`` is outside
    [0, 1].
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int, not {type(max_tokens).__name__}")
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}")
    if isinstance(head, bool) or not isinstance(head, int | float) or not 0 <= head <= 1:
        raise ValueError(f"head must be a number from 0 to 1, got {head!r}")
    ctx = _Ctx(text, counter if counter is not None else LocalCounter(), max_tokens, ref)
    if _fits(ctx):
        assert ctx.total is not None
        return Truncated(text, 0, ctx.total, False)
    ordered = _ordered_hints(hints) if smart else []
    result: tuple[str, int] | None = None
    found = _json_rows(text)
    if found is not None:
        rows = _Rows(ctx, found[0], found[1], float(head), ordered, smart)
        if rows.fixed <= ctx.raw_budget // 2:
            result = _run(ctx, rows)
    if result is None:
        result = _run(ctx, _Lines(ctx, float(head), ordered, smart))
    if result is None:
        result = _marker_only(ctx)
    out, cut = result
    return Truncated(out, cut, ctx.counter.count_text(out), True)
