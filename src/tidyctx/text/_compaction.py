"""Compact tool results without losing what they say: fewer tokens for the same values.

Tools format their output for people and terminals: pretty-printed JSON, padded tables, colour
codes, progress bars redrawn with carriage returns, trailing blanks. Every one of those tokens is
billed again on every later turn. :func:`compact_text` rewrites a result so it keeps every
identifier, number, path and string, only in fewer tokens:

* **JSON** (the whole text parses): whitespace between tokens is dropped, and an array of 3 or
  more objects with the same keys becomes ``{"columns": [keys], "rows": [[values], ...]}`` (each
  key written once instead of once per row; values that all rows share go once in
  ``"same_in_all_rows"``). Numbers keep their exact spelling (``1.10`` stays
  ``1.10``), strings their value; a text that is JSON cut short (a recorder's size limit) only
  loses the whitespace between tokens.
* **A JSON envelope** ``{"type": "text", "text": "..."}`` (an MCP text content block stored as
  text) is replaced by the text it carries, decoded, then compacted in turn; a truncated envelope
  by the part of the text it holds.
* **Plain text**: ANSI escape codes are dropped; a line redrawn with carriage returns (a
  progress bar: no part says a word the fullest part does not) becomes what a terminal shows
  (carriage returns that end lines are kept: those of a classic Mac file, whose rows say other
  words, of a text of one line, or of one with NULs); CRLF
  becomes LF; trailing blanks go; a run of blank lines becomes one;
  a run of 8 or more of one separator character (``-----``, ``=====``) becomes 3; padding inside
  markdown table cells and runs of 3+ spaces between words (aligned columns) become one and two
  spaces.
* **Viewer output with line numbers** (``cat -n``, ``     12→code``): only the padding before
  the numbers goes. What follows the number (indentation, blanks, carriage returns, escape
  codes) is kept byte for byte, so an edit the agent copies from it still matches the file.

Deterministic, idempotent (``compact_text(compact_text(x)) == compact_text(x)``) and a function
of the text alone, so a result is compacted the same way on every turn and the cached prefix
stays byte-identical. :func:`compact_result` adds what the call tells (its echoes, whether it
is a file view). Only the JSON rewrites keep every character that matters; the others drop
padding, escape codes, CRLFs, long separator runs. :func:`compact_kept` decides what goes out:
JSON shown to hold the same value (:func:`lossless`) as it is, any other rewrite with its
original kept in a store and a note naming it (or not at all, when it saves little). The
transform :func:`tidyctx.compact` applies it to a request's tool results, and ``trim`` applies
it before truncation.

>>> compact_text('{\\n  "id": 7,\\n  "tags": [\\n    "a",\\n    "b"\\n  ]\\n}')
'{"id":7,"tags":["a","b"]}'
>>> compact_text('[{"id": 1, "ok": true}, {"id": 2, "ok": false}, {"id": 3, "ok": true}]')
'{"columns":["id","ok"],"rows":[[1,true],[2,false],[3,true]]}'
>>> compact_text("| Name     | Qty |\\n| -------- | --- |\\n| apple    |   3 |")
'| Name | Qty |\\n| --- | --- |\\n| apple | 3 |'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tidyctx._markers import MARKER_PREFIX, NOTE_START, original_note
from tidyctx.code._views import DEFAULT_TOOLS, GAP, view_path
from tidyctx.store import Store, keep_text, store_key
from tidyctx.tokens import LocalCounter

__all__ = [
    "COLUMNS",
    "MAX_CHARS",
    "MIN_ECHO_LINES",
    "MIN_GAIN",
    "MIN_TABLE_ROWS",
    "ROWS",
    "SAME",
    "compact_kept",
    "compact_result",
    "compact_text",
    "drop_echo",
    "echo_note",
    "is_numbered",
    "lossless",
]

MAX_CHARS = 2_000_000
"""Longer texts are left as they are: compacting runs at a few MB/s, and a result this long
is for truncation (``trim(max_tokens=...)`` cuts it in linear time) to bring down."""

MIN_TABLE_ROWS = 3
"""An array of objects with the same keys becomes a table from this many rows on."""

SAME, COLUMNS, ROWS = "same_in_all_rows", "columns", "rows"
"""Keys of a table: the values all rows share, the names of the others, and the rows."""

_MAX_ROUNDS = 4
_MAX_JSON_DEPTH = 200

# ---------------------------------------------------------------------------- JSON


class _Raw(str):
    """A JSON number (or NaN/Infinity) as spelled in the input."""

    __slots__ = ()


class _Obj(list[tuple[str, Any]]):
    """A parsed JSON object (a list of key-value pairs, to tell it from an array)."""

    __slots__ = ()


def _mark(value: Any, depth: int = 0) -> Any:
    """Tell objects (pair lists from the hook) from arrays; tabulate uniform arrays, bottom up."""
    if depth > _MAX_JSON_DEPTH:
        raise RecursionError("JSON nested too deep")
    if isinstance(value, _Raw | str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, _Obj):
        return _Obj((k, _mark(v, depth + 1)) for k, v in value)
    items = [_mark(v, depth + 1) for v in value]
    return _tabulate(items)


def _tabulate(items: list[Any]) -> Any:
    """An array of objects with the same keys as one table: each key once, then the values
    of each row in that order; values that every row shares are written once, in ``SAME``."""
    if len(items) < MIN_TABLE_ROWS or not all(isinstance(v, _Obj) for v in items):
        return items
    keys = [k for k, _ in items[0]]
    if len(keys) < 2 or len(set(keys)) != len(keys):
        return items
    key_set = set(keys)
    table: list[dict[str, Any]] = []
    for obj in items:
        if len(obj) != len(keys) or {k for k, _ in obj} != key_set:
            return items
        table.append(dict(obj))
    same: list[tuple[str, Any]] = []
    varying: list[str] = []
    for key in keys:
        first = table[0][key]
        if all(_same(row[key], first) for row in table[1:]):
            same.append((key, first))
        else:
            varying.append(key)
    if not varying:  # identical rows: nothing to say per row
        same, varying = [], keys
    rows = [[row[k] for k in varying] for row in table]
    head: list[tuple[str, Any]] = [(SAME, _Obj(same))] if same else []
    return _Obj([*head, (COLUMNS, list(varying)), (ROWS, rows)])


def _same(a: Any, b: Any) -> bool:
    """Whether two marked values are written the same (compared as they stand: writing each
    out at every level of nested tables would take time quadratic in the depth)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, _Obj):
        return len(a) == len(b) and all(
            ka == kb and _same(va, vb) for (ka, va), (kb, vb) in zip(a, b, strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _string(s: str) -> str:
    # A lone surrogate cannot be sent as UTF-8: keep it escaped.
    return json.dumps(s, ensure_ascii=_SURROGATE.search(s) is not None)


def _dump(value: Any, out: list[str]) -> None:
    if isinstance(value, _Raw):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, _Obj):
        out.append("{")
        for k, (key, item) in enumerate(value):
            if k:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _dump(item, out)
        out.append("}")
    else:
        out.append("[")
        for k, item in enumerate(value):
            if k:
                out.append(",")
            _dump(item, out)
        out.append("]")


def _compact_json(text: str) -> str | None:
    """The whole text as compact JSON (uniform arrays tabulated), or None if it is not JSON."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        value = json.loads(
            stripped,
            object_pairs_hook=_Obj,
            parse_int=_Raw,
            parse_float=_Raw,
            parse_constant=_Raw,
        )
        out: list[str] = []
        _dump(_mark(value), out)
    except (ValueError, RecursionError):
        return None
    return "".join(out)


# Tokens of a JSON text: strings (maybe cut short at the very end), whitespace, anything else.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?$)|([ \t\r\n]+)|[^" \t\r\n]+', re.DOTALL)
# A piece outside strings that is JSON: punctuation, and between it numbers and literals.
_JSON_BARE_RUN = re.compile(
    r"(?:[\[\]{},:]|(?:-?[0-9][0-9eE.+\-]*|true|false|null)(?=[\[\]{},:]|\Z))+"
)
_JSON_SPACE = re.compile(r"[ \t\r\n]")
_JSON_TRUST = 64


def _minify_json_prefix(text: str) -> str | None:
    """A text that starts as JSON but does not parse whole (cut short by a recorder's size
    limit, a note after it, a stray quote, JSON lines), with less whitespace: whitespace inside
    brackets goes where one side of it is JSON punctuation or a string. Before the first
    :data:`_JSON_TRUST` JSON tokens, a piece that is not JSON ends the work (the rest is kept
    as it is); after them it is kept as it is, with the whitespace around it. None if nothing
    changes."""
    start = len(text) - len(text.lstrip())
    if start == len(text) or text[start] not in "[{" or _JSON_SPACE.search(text, start) is None:
        return None  # (no whitespace after the start: nothing to drop)
    out: list[str] = [text[:start]]
    depth = seen = 0
    pos = start
    space = ""  # whitespace before the current piece
    prev_hard = True  # the piece before ends with punctuation or a quote
    prev_json = True
    for m in _JSON_TOKENS.finditer(text, start):
        piece = m.group()
        if m.group(1) is not None:
            space = piece
            continue
        is_json = piece[0] == '"' or _JSON_BARE_RUN.fullmatch(piece) is not None
        if not is_json and seen < _JSON_TRUST:
            break
        seen += is_json
        hard = piece[0] in '"[]{},:'
        if space and (depth <= 0 or not (is_json and prev_json) or not (hard or prev_hard)):
            out.append(space)  # between two bare words, around prose, or between JSON lines
        space = ""
        if is_json and piece[0] != '"':  # (a bare piece: its brackets are punctuation)
            depth += piece.count("[") + piece.count("{") - piece.count("]") - piece.count("}")
        out.append(piece)
        prev_hard = piece[-1] in '"[]{},:'
        prev_json = is_json
        pos = m.end()
    rest = text[pos:]
    out.append(rest if rest.strip() else "")  # trailing whitespace goes
    result = "".join(out)
    return None if result == text else result


# ---------------------------------------------------------------------------- envelopes

_ENVELOPE_HEAD = re.compile(r'\{\s*"type"\s*:\s*"text"\s*,\s*"text"\s*:\s*"')
_ENVELOPE_TAIL = re.compile(
    r'\s*(?:,\s*"annotations"\s*:\s*null\s*)?(?:,\s*"_meta"\s*:\s*null\s*)?\}\s*'
)
_STRING_BODY = re.compile(r'(?:[^"\\]|\\.)*', re.DOTALL)
_VALID_STRING = re.compile(r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')


def _unwrap(text: str) -> str | None:
    """The text an MCP text-content envelope carries (decoded), or None if ``text`` is not one.

    ``{"type": "text", "text": "...", "annotations": null}`` exactly (nothing else in it), or
    such an envelope cut short inside its text: then the part it holds."""
    stripped = text.strip()
    head = _ENVELOPE_HEAD.match(stripped)
    if head is None:
        return None
    body = _STRING_BODY.match(stripped, head.end())
    assert body is not None
    end = body.end()
    raw = body.group()
    rest = ""
    if end < len(stripped):  # the closing quote
        if _ENVELOPE_TAIL.fullmatch(stripped, end + 1) is None:
            return None
    else:  # cut short: decode the valid start of the string, keep the rest as it is
        valid = _VALID_STRING.match(raw)
        assert valid is not None
        raw, rest = valid.group(), raw[valid.end() :]
    try:
        inner = json.loads('"' + raw + '"')
    except ValueError:
        return None
    if not isinstance(inner, str):
        return None
    # Half of a surrogate pair cannot be sent as UTF-8: it stays escaped.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", inner) + rest


# ---------------------------------------------------------------------------- plain text

# Every pattern here runs in time linear in the text: Python's engine backtracks, so a pattern
# that can start inside a run it scans to the end (``[ \t]+$`` on a long run of spaces before a
# word) is quadratic; such runs are matched only from their first character (a lookbehind).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_MAX_ANSI_ROUNDS = 8
_NUMBERED = re.compile(r"[ \t]*\d+(?:\t|→|: | \| )")
_NUMBER_PAD = re.compile(r"^[ \t]+(?=\d+(?:\t|→))", re.MULTILINE)
_TRAILING = re.compile(r"(?<![ \t])[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_SEPARATOR_RUNS = re.compile(r"([-=_*~#+.─━═])\1{7,}")
_CELL_PAD = re.compile(r"(?<![ \t])[ \t]{2,}\||\|[ \t]{2,}")
_TABLE_LINE = re.compile(r"^[ \t]*\|.*\|[ \t]*$", re.MULTILINE)
# A quote (that may open a string kept as a value) or a run of 3+ blanks between words.
_QUOTE_OR_BLANKS = re.compile(r"""["']|(?<=\S)[ \t]{3,}(?=\S)""")
_BLANK_RUN = re.compile(r"(?<=\S)[ \t]{3,}(?=\S)")
# The rest of a quoted string on one line, up to its closing quote (if it has one).
_QUOTED_REST = {
    '"': re.compile(r'(?:[^"\\\n]|\\.)*+'),
    "'": re.compile(r"(?:[^'\\\n]|\\.)*+"),
}
# A line of a sliced or cut view that stands for lines not shown: a gutter, then ``⋮``.
_GAP_LINE = re.compile(r"[ \t]*+(?:[→:][ \t]*+)?" + re.escape(GAP))


def is_numbered(text: str) -> bool:
    """Whether ``text`` is viewer output with a line number on most lines (``cat -n``).

    >>> is_numbered("     1\\tdef f():\\n     2\\t    return 1\\n")
    True
    """
    lines = [line for line in text.split("\n", 400)[:400] if line.strip()]
    if len(lines) < 2:
        return False
    numbered = sum(
        1
        for line in lines
        if _NUMBERED.match(line)
        or _GAP_LINE.match(line)
        or line.startswith((NOTE_START, MARKER_PREFIX))
    )
    return numbered * 5 >= len(lines) * 3


def _redraw(line: str) -> str:
    """What a terminal shows for a line with carriage returns: each part overwrites the start.

    >>> _redraw("50% done\\r100%")
    '100%done'
    """
    # Each character shows the last part long enough to reach it: from the last part back,
    # each longer part adds its tail (one pass, where overwriting would copy the line per part).
    shown: list[str] = []
    covered = 0
    for part in reversed(line.split("\r")):
        if len(part) > covered:
            shown.append(part[covered:])
            covered = len(part)
    return "".join(shown)


_WORDS = re.compile(r"[^\W\d_]+")


def _redrawn(line: str) -> bool:
    """Whether the carriage returns of ``line`` are a terminal's redraws: no part says a word
    that the fullest part does not (``Downloading 10%``, ``Downloading 55%``; a progress bar
    whose rate appears late). Else they end lines (a classic Mac file, an Excel CSV), and
    redrawing would keep only the last of them.

    >>> _redrawn("Downloading 10%\\rDownloading 55%"), _redrawn("id,name\\r1,apple\\r2,pear")
    (True, False)
    """
    # Every part's words are in the fullest part's if and only if one part holds them all.
    every = set(_WORDS.findall(line))
    least = sum(map(len, every))  # a part shorter than this lacks one of them
    return any(
        len(part) >= least and set(_WORDS.findall(part)) == every for part in set(line.split("\r"))
    )


def _plain(text: str) -> str:
    if is_numbered(text):
        # The lines are a file: keep every character after the numbers.
        return _NUMBER_PAD.sub("", text)
    text = _strip_ansi(text)
    text = text.replace("\r\n", "\n")
    # Carriage returns in a text of one line (a whole file with classic Mac line endings) or
    # with NULs (a binary file read as text) end lines: no terminal drew them.
    if "\r" in text and "\x00" not in text and "\n" in text.rstrip("\n"):
        text = "\n".join(
            _redraw(line) if "\r" in line and _redrawn(line) else line for line in text.split("\n")
        )
    text = _TRAILING.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    text = _SEPARATOR_RUNS.sub(r"\1\1\1", text)
    text = _TABLE_LINE.sub(lambda m: _CELL_PAD.sub(_cell, m.group()), text)
    return _squeeze_blanks(text)


def _strip_ansi(text: str) -> str:
    """``text`` without ANSI escape codes, including those that removing others joins
    (``\\x1b\\x1b[0m[1m``). Such nesting is not a terminal's output: past a few levels the
    escape characters left are dropped too, so the work stays linear in the text."""
    for _ in range(_MAX_ANSI_ROUNDS):
        if "\x1b" not in text:
            return text
        text, removed = _ANSI.subn("", text)
        if not removed:
            return text
    return _ANSI.sub("", text).replace("\x1b", "")


def _squeeze_blanks(text: str) -> str:
    """Each run of 3+ blanks between two words as two spaces, except inside a quoted string on
    one line (a value: kept as it is).

    >>> _squeeze_blanks("id    name   'a    b'")
    "id  name  'a    b'"
    """
    if _BLANK_RUN.search(text) is None:
        return text
    out: list[str] = []
    done = pos = 0
    # Where a string opened by each quote would run, unclosed, to the end of its line: every
    # later quote of that kind on the line is escaped in it, so it cannot close one either.
    # Remembering that keeps the scan linear on a line of escaped quotes.
    unclosed = {'"': -1, "'": -1}
    while (m := _QUOTE_OR_BLANKS.search(text, pos)) is not None:
        start, quote = m.start(), m.group()
        if quote in unclosed:
            if start < unclosed[quote]:
                pos = start + 1
                continue
            rest = _QUOTED_REST[quote].match(text, start + 1)
            end = rest.end() if rest is not None else start + 1
            if text.startswith(quote, end):
                pos = end + 1  # a quoted string: kept as it is
            else:
                unclosed[quote] = end
                pos = start + 1
            continue
        out.append(text[done:start])
        out.append("  ")
        done = pos = m.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _cell(m: re.Match[str]) -> str:
    return " |" if m.group().endswith("|") else "| "


# ---------------------------------------------------------------------------- echoes

_LINE_NUMBER = re.compile(r"[ \t]*\d+(?:\t|→|: )")
MIN_ECHO_LINES = 4
"""A run of at least this many result lines that the call's input holds is shortened."""


def echo_note(hidden: int) -> str:
    """The line that stands for ``hidden`` lines of a result that its call's input holds.

    >>> print(echo_note(37))
    [… ×37 lines as in the call's input]
    """
    return f"{NOTE_START}{hidden:,} lines as in the call's input]"


def _strings(value: Any, out: list[str], depth: int = 0) -> None:
    if isinstance(value, str):
        out.append(value)
    elif depth < 32 and isinstance(value, dict):
        for item in value.values():
            _strings(item, out, depth + 1)
    elif depth < 32 and isinstance(value, list):
        for item in value:
            _strings(item, out, depth + 1)


def drop_echo(text: str, call_input: Any) -> str:
    """``text`` without the lines it echoes from its call's input (an edit tool that shows the
    edited snippet, a write tool that prints the file back): in each run of at least
    :data:`MIN_ECHO_LINES` lines that appear in the input (line numbers aside), the lines
    between the first and the last become one note. The input is in the request right before
    the result, so nothing is lost; the first and last line keep the line numbers.

    >>> snippet = "\\n".join(f"{n}: step_{n}()" for n in range(10, 16))
    >>> print(drop_echo("Edited:\\n" + snippet, {"new_str": "\\n".join(
    ...     f"step_{n}()" for n in range(10, 16))}))
    Edited:
    10: step_10()
    [… ×4 lines as in the call's input]
    15: step_15()
    """
    strings: list[str] = []
    _strings(call_input, strings)
    known = {line.strip() for s in strings if "\n" in s for line in s.split("\n")}
    known.discard("")
    if len(known) < 2:
        return text
    lines = text.split("\n")
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        k = len(run)
        while k and not run[k - 1].strip():  # a run ends on an echoed line
            k -= 1
        body, trailing = run[:k], run[k:]
        if len(body) >= MIN_ECHO_LINES and sum(1 for line in body if line.strip()) >= 3:
            out.extend([body[0], echo_note(len(body) - 2), body[-1]])
        else:
            out.extend(body)
        out.extend(trailing)
        run.clear()

    for line in lines:
        number = _LINE_NUMBER.match(line)
        body = (line[number.end() :] if number else line).strip()
        if body in known or (not body and run):
            run.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out)


# ---------------------------------------------------------------------------- entry point


def _once(text: str) -> str:
    inner = _unwrap(text)
    if inner is not None:
        return inner
    out = _compact_json(text)
    if out is not None:
        return out
    out = _minify_json_prefix(text)
    if out is not None:
        return out
    return _plain(text)


def compact_text(text: str) -> str:
    """``text`` in fewer tokens, with every identifier, number, path and string value kept.

    See the module docstring for the rules. Idempotent and deterministic. Texts over
    :data:`MAX_CHARS` characters come back unchanged.
    """
    if not isinstance(text, str):
        raise TypeError(f"compact_text() needs a str, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        return text
    for _ in range(_MAX_ROUNDS):
        out = _once(text)
        if out == text:
            return out
        text = out
    return text


def compact_result(
    text: str,
    name: str,
    call_input: Any,
    *,
    compactor: Callable[[str], str] = compact_text,
) -> str:
    """The text of a result of tool ``name`` called with ``call_input``, compacted.

    ``compactor`` (:func:`compact_text`, or a memoized copy of it) and :func:`drop_echo` to a
    fixed point (compacting can make an echoed line match: colour codes, padding; one pass of
    each is not idempotent). A file view (a call
    :data:`~tidyctx.code._views.DEFAULT_TOOLS` recognises: ``cat FILE``, ``read_file``,
    ``Read``...) is the file: the agent copies its lines into edits and counts them, so only
    the padding before its line numbers goes.

    >>> compact_result("x   =  1\\n\\n\\n\\ny = 2", "bash", {"command": "cat a.py"})
    'x   =  1\\n\\n\\n\\ny = 2'
    """
    if view_path(DEFAULT_TOOLS, {"name": name, "input": call_input}) is not None:
        return _NUMBER_PAD.sub("", text) if len(text) <= MAX_CHARS and is_numbered(text) else text
    out = compactor(text)
    for _ in range(_MAX_ROUNDS):
        again = compactor(drop_echo(out, call_input))
        if again == out:
            break
        out = again
    # An empty MCP envelope or a line of colour codes compacts to nothing, and the API
    # refuses a text block without text ("text content blocks must be non-empty",
    # https://github.com/anthropics/anthropic-sdk-python/issues/461): such a result stays.
    return out if out.strip() else text


# ---------------------------------------------------------------------------- what is kept

MIN_GAIN = 2
"""A compaction that drops characters is applied only when it saves at least this many times
the tokens of the note that names the original (else the result stays as it came)."""

_EXACT_GAIN_CHARS = 1 << 18  # longer texts: the saving is estimated, not counted


def _parsed(text: str) -> Any:
    """``text`` as JSON (objects as pair lists, numbers as spelled), or None."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(
            stripped,
            object_pairs_hook=_Obj,
            parse_int=_Raw,
            parse_float=_Raw,
            parse_constant=_Raw,
        )
    except (ValueError, RecursionError):
        return None


def _untable(value: Any) -> Any:
    """The inverse of the tables :func:`compact_text` makes: each ``{"columns", "rows"}``
    object (with its ``same_in_all_rows``) back to the array of objects it stands for."""
    if isinstance(value, _Obj):
        pairs = [(k, _untable(v)) for k, v in value]
        keys = [k for k, _ in pairs]
        if keys == [COLUMNS, ROWS] or keys == [SAME, COLUMNS, ROWS]:
            fields = dict(pairs)
            columns, rows = fields[COLUMNS], fields[ROWS]
            same = fields.get(SAME, _Obj())
            if (
                isinstance(same, _Obj)
                and isinstance(columns, list)
                and not isinstance(columns, _Obj)
                and all(type(c) is str for c in columns)
                and isinstance(rows, list)
                and not isinstance(rows, _Obj)
                and all(
                    isinstance(r, list) and not isinstance(r, _Obj) and len(r) == len(columns)
                    for r in rows
                )
            ):
                return [_Obj([*same, *zip(columns, row, strict=True)]) for row in rows]
        return _Obj(pairs)
    if isinstance(value, list):
        return [_untable(v) for v in value]
    return value


def _canonical(value: Any) -> str:
    """One spelling per JSON value: members of an object sorted (RFC 8259 section 4: an object
    is an unordered collection), numbers as spelled, strings by their value."""
    if isinstance(value, _Raw):
        return str.__str__(value)
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Obj):
        return "{" + ",".join(sorted(f"{_string(k)}:{_canonical(v)}" for k, v in value)) + "}"
    return "[" + ",".join(_canonical(v) for v in value) + "]"


def lossless(original: str, compacted: str) -> bool:
    """Whether ``compacted`` says exactly what ``original`` says: both parse as JSON and, with
    its tables read back as arrays of objects, ``compacted`` holds the same value (every key,
    string and number as spelled; only the whitespace between tokens and the order of keys
    within an object differ). Every other rewrite of :func:`compact_result` drops characters
    (padding, escape codes, a CRLF, a long run of ``=``, the lines of an echo).

    >>> lossless('[\\n {"id": 1, "ok": true},\\n {"id": 2, "ok": true},\\n {"id": 3, "ok": true}]',
    ...          '{"same_in_all_rows":{"ok":true},"columns":["id"],"rows":[[1],[2],[3]]}')
    True
    >>> lossless("total   12\\r\\n", "total  12\\n")
    False
    """
    before = _parsed(original)
    if before is None:
        return False
    after = _parsed(compacted)
    if after is None:
        return False
    try:
        return _canonical(before) == _canonical(_untable(after))
    except RecursionError:
        return False


def _saves(text: str, new: str, note: str, counter: LocalCounter) -> bool:
    """Whether ``new`` (with ``note``) saves at least :data:`MIN_GAIN` notes' worth of tokens."""
    need = MIN_GAIN * counter.count_text(note)
    if len(text) <= _EXACT_GAIN_CHARS:
        return counter.count_text(text) - counter.count_text(new) >= need
    # A long text is not tokenized whole here; what compaction removes (blank runs, padding,
    # escape codes) runs to several characters per token.
    return (len(text) - len(new)) / 8 >= need


def compact_kept(
    text: str,
    name: str,
    call_input: Any,
    *,
    store: Store,
    counter: LocalCounter,
    compactor: Callable[[str], str] = compact_text,
) -> tuple[str, str]:
    """``(text to send, note)``: :func:`compact_result`, with the original kept whenever the
    rewrite drops a character.

    A rewrite that is :func:`lossless` (JSON with the same value) comes back with no note. Any
    other rewrite is applied only if it saves at least :data:`MIN_GAIN` times the tokens of
    its note; then the original goes into ``store`` and the note
    (:func:`~tidyctx._markers.original_note`, a marker line to put after the text) names it,
    so the exact original is one ``tidyctx_expand`` away. Otherwise the text stays as it came:
    a file shown by ``sed -n``, ``head`` or ``git show`` keeps its tabs, its CRLFs and the
    ``"=========="`` in its string literals.

    >>> from tidyctx.store import MemoryStore
    >>> from tidyctx.tokens import LocalCounter
    >>> store, counter = MemoryStore(), LocalCounter()
    >>> compact_kept('{\\n  "id": 7\\n}', "get", {}, store=store, counter=counter)
    ('{"id":7}', '')
    >>> log = "\\n".join(f"\\x1b[32mPASS\\x1b[0m test_{i}   " for i in range(40))
    >>> new, note = compact_kept(log, "bash", {}, store=store, counter=counter)
    >>> new.splitlines()[0], note[:37]
    ('PASS test_0', '[tidyctx: compacted, original id="tc_')
    >>> compact_kept('x = "=========="\\r\\n', "bash", {"command": "sed -n 1,80p a.py"},
    ...              store=store, counter=counter)
    ('x = "=========="\\r\\n', '')
    """
    new = compact_result(text, name, call_input, compactor=compactor)
    if new == text:
        return text, ""
    if lossless(text, new):
        return new, ""
    note = original_note("compacted", store_key(text))
    if not _saves(text, new, note, counter):
        return text, ""
    keep_text(store, text)
    return new, note
