"""What makes a line of a tool result worth keeping when it is cut: hints and error words.

:func:`hints_from` collects the terms a conversation points at (paths, identifiers, numbers,
quoted strings of a tool call's input and the recent assistant text); :data:`ERROR_WORDS`
matches the words of error and failure lines. :func:`scan` finds, in linear time, the lines
(or JSON rows) of a text that hold either, for the cutters to keep them over plain lines.

>>> sorted(hints_from("grep -n parse_config src/app/config.py"))
['config', 'config.py', 'grep', 'parse_config', 'src/app/config.py']
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any

from tidyctx._memo import memoized, text_size

__all__ = ["ERROR_WORDS", "MAX_HINTS", "hints_from", "ordered_hints", "scan"]

MAX_HINTS = 64
"""At most this many hints are searched for, the strongest first."""
_HINT_UNIT_CAP = 2_000
"""A hint found in more lines (or rows) than this is not telling: it is ignored."""
_ERROR_UNIT_CAP = 20_000
_MISS_CAP = 50_000
"""A term whose occurrences fail this often (inside longer words, ``exit code 0``...) is
noise in this text: the scan stops looking for it."""
_SCAN_CHUNK = 1 << 22

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

# A URL is found from its "://" (see _urls): a pattern that starts at every word of a long
# run of scheme characters (``a.b.c.d...``) scans to the end of the run from each.
_URL_TAIL = re.compile(r"://[^\s\"'<>()\[\]{}`,;|]+")
_SCHEME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_PATH_RE = re.compile(r"(?<![\w@+.~/-])~?[\w@+.-]*(?:/[\w@+.-]+)+/?")
_WINPATH_RE = re.compile(r"\b[A-Za-z]:\\[\w@+.\\-]+")
_IDENT_RE = re.compile(r"(?<![\w$])[A-Za-z_$][\w$]*(?:(?:\.|::)[A-Za-z_$][\w$]*)*")
_NUMBER_RE = re.compile(r"(?<!\d)\d{3,}(?!\d)")
_QUOTED_RE = re.compile(
    r"\"([^\"\\\n]{3,120})\"|(?<![\w])'([^'\\\n]{3,120})'(?![\w])|`([^`\n]{3,120})`"
)
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]*")


def _add_term(out: set[str], term: str) -> None:
    term = term.strip()
    if len(term) < 3:
        return
    if _PLAIN_WORD.fullmatch(term) and (len(term) < 4 or term.lower() in _STOPWORDS):
        return
    out.add(term)


def _urls(text: str) -> list[str]:
    """The URLs of ``text``: a scheme (a letter at the start of a word, then letters, digits,
    ``+.-``), ``://`` and what follows up to a space, quote, bracket or separator. Linear: each
    ``://`` looks back over its scheme once.

    >>> _urls("see https://example.com/a?b=1, or git+ssh://host/r.git")
    ['https://example.com/a?b=1', 'git+ssh://host/r.git']
    """
    found: list[str] = []
    done = 0  # where the last URL ends: the next one starts after it
    i = text.find("://")
    while i >= 0:
        tail = _URL_TAIL.match(text, i)
        start = -1
        if tail is not None:
            j = i
            while j > done and text[j - 1] in _SCHEME:
                j -= 1
            for s in range(j, i):  # the first letter that starts a word
                if text[s] in _LETTERS and (s == 0 or not _word_char(text[s - 1])):
                    start = s
                    break
        if start < 0:
            i = text.find("://", i + 1)
            continue
        assert tail is not None
        found.append(text[start : tail.end()])
        done = tail.end()
        i = text.find("://", done)
    return found


def _word_char(c: str) -> bool:
    """Whether ``c`` is a word character (what ``\\w`` matches)."""
    return c.isalnum() or c == "_"


def _extract(text: str, out: set[str]) -> None:
    for found in _urls(text):
        url = found.rstrip(".:")
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

    Memoized by the texts (:mod:`tidyctx._memo`): a call's hints are derived once, not again
    on every later turn.
    """
    if all(isinstance(text, str) for text in texts):
        return memoized("hints", texts, lambda: _hints(texts), lambda v: text_size(texts, v))
    return _hints(texts)


def _hints(texts: tuple[str, ...]) -> frozenset[str]:
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


def ordered_hints(hints: Collection[str]) -> list[tuple[str, int]]:
    """The hints worth searching for, with their weights: strongest and longest first, at most
    :data:`MAX_HINTS` of them.

    >>> ordered_hints(["config", "src/app/config.py", "1200", "x"])
    [('src/app/config.py', 4), ('1200', 2), ('config', 1)]
    """
    terms = {h for h in hints if isinstance(h, str) and len(h.strip()) >= 3 and "\n" not in h}
    ranked = sorted(terms, key=lambda h: (-_hint_weight(h), -len(h), h))
    return [(h, _hint_weight(h)) for h in ranked[:MAX_HINTS]]


# ---------------------------------------------------------------------------- scanning


def scan(
    text: str,
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
