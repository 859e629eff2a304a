"""The scans rewritten to run in linear time do exactly what the patterns they replace did.

Python's regular expressions backtrack: a pattern that can start inside a long run and scan
to its end from every start is quadratic (64k spaces took 19 s to compact). Each rewrite
below is checked against the pattern (or loop) it replaces, on strings drawn from the
characters that matter to it; ``benchmarks/adversarial.py`` measures the speed.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from tidyctx.code import _slicing
from tidyctx.text import _compaction as compaction
from tidyctx.text import _hints as hints
from tidyctx.transforms import _slice_code as slice_code
from tidyctx.transforms._order import DEFAULT_PATTERNS

PROPS = settings(max_examples=400)


def _strings(*pieces: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=30).map("".join)


# ---------------------------------------------------------------------------- compaction

_QUOTED_OR_BLANKS = re.compile(
    r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(?<=\S)[ \t]{3,}(?=\S)"""
)


@PROPS
@given(_strings('"', "'", "\\", "\n", " ", "   ", "\t", "a", "b c"))
def test_blank_runs_are_squeezed_outside_quoted_strings_as_before(text: str) -> None:
    expected = _QUOTED_OR_BLANKS.sub(lambda m: m.group(1) or "  ", text)
    assert compaction._squeeze_blanks(text) == expected


@PROPS
@given(_strings(" ", "\t", "|", "x", "\n", "  ", "→", ":", compaction.GAP))
def test_blank_patterns_match_from_the_start_of_a_run_as_before(text: str) -> None:
    trailing = re.compile(r"[ \t]+$", re.MULTILINE)
    cell = re.compile(r"[ \t]{2,}\||\|[ \t]{2,}")
    gap = re.compile(r"[ \t]*(?:\t|→|:)?[ \t]*" + re.escape(compaction.GAP))
    assert compaction._TRAILING.sub("", text) == trailing.sub("", text)
    assert compaction._CELL_PAD.sub(compaction._cell, text) == cell.sub(compaction._cell, text)
    assert bool(compaction._GAP_LINE.match(text)) == bool(gap.match(text))


@PROPS
@given(_strings("\r", "a", "b", "1", " ", "ab", "a b", ".", "\r\r"))
def test_redraws_are_what_overwriting_shows(line: str) -> None:
    shown = ""
    for part in line.split("\r"):
        shown = part + shown[len(part) :]
    assert compaction._redraw(line) == shown
    words = [frozenset(compaction._WORDS.findall(part)) for part in line.split("\r")]
    fullest = max(words, key=len)
    assert compaction._redrawn(line) == all(w <= fullest for w in words)


@PROPS
@given(_strings("\x1b", "[", "]", "m", "1", ";", "\x07", "\\", "a", "\x1b["))
def test_escape_codes_go_as_with_repeated_substitution(text: str) -> None:
    expected = text
    while (again := compaction._ANSI.sub("", expected)) != expected:
        expected = again
    assert compaction._strip_ansi(text) == expected


def test_escape_codes_nested_deeper_than_terminals_write_still_go() -> None:
    text = "\x1b" * 50_000 + "[0m" * 50_000 + "done"
    out = compaction._strip_ansi(text)
    assert "\x1b" not in out and out.endswith("done")
    assert compaction.compact_text(out) == compaction.compact_text(compaction.compact_text(out))


@PROPS
@given(_strings("[", "]", "{", "}", ",", ":", "1", "-2.5e3", "true", "null", "x", "12true", "t"))
def test_bare_json_pieces_are_told_as_before(piece: str) -> None:
    pieces = re.findall(r"[\[\]{},:]|[^\[\]{},:]+", piece)
    bare = re.compile(r"[\[\]{},:]|-?[0-9][0-9eE.+\-]*|true|false|null")
    expected = all(bare.fullmatch(p) for p in pieces)
    assert (compaction._JSON_BARE_RUN.fullmatch(piece) is not None) == (expected and piece != "")


def test_uniform_rows_nested_deep_are_still_tables() -> None:
    value: object = ["x" * 50]
    for _ in range(90):
        value = [{"a": value, "b": 0}, {"a": 0, "b": 1}, {"a": 0, "b": 2}]
    import json

    out = compaction.compact_text(json.dumps(value))
    assert out.startswith('{"columns":["a","b"],"rows":[[{"columns"')
    assert json.loads(out)


# ---------------------------------------------------------------------------- hints and paths

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>()\[\]{}`,;|]+")


@PROPS
@given(_strings("a", "B", "1", "+", ".", "-", ":", "/", "://", " ", "_", "é", "(", ":/", "x://y"))
def test_urls_are_found_as_the_pattern_finds_them(text: str) -> None:
    assert hints._urls(text) == [m.group() for m in _URL.finditer(text)]


@PROPS
@given(_strings("a", "b.py", ".py", ":", "1", "12", " ", "/", ".", "-", "x.rs:3", "\\", "~", "é"))
def test_path_and_line_hits_are_found_as_the_pattern_finds_them(text: str) -> None:
    expected = [(m.span(), m.groups()) for m in slice_code._PATH_LINE.finditer(text)]
    assert [(m.span(), m.groups()) for m in slice_code._path_lines(text)] == expected


@PROPS
@given(_strings('"', "'", "`", "\\", "\n", "a", " ", "\\\n", "é"))
def test_strings_are_blanked_in_imports_as_before(text: str) -> None:
    pattern = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`")
    assert _slicing._without_strings(text) == pattern.sub(" ", text)


def _find_docs_whole(text: str) -> list[tuple[int, int, str, bool]]:
    """The JSON documents of ``text`` read with the whole text at each start (the old way)."""
    import json

    out = []
    repeated = [False]

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        repeated[0] |= len(dict(items)) != len(items)
        return dict(items)

    decoder = json.JSONDecoder(object_pairs_hook=pairs)
    pos = 0
    while (m := re.compile(r"[\[{]").search(text, pos)) is not None:
        start = m.start()
        repeated[0] = False
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            pos = max(start + 1, err.pos)
            continue
        if not repeated[0]:  # (an object with a repeated key is not taken)
            out.append((start, end, repr(value), True))
        pos = end
    return out


_JSON_PIECES = ("[", "]", "{", "}", ",", ":", '"a"', '"', "\\", " ", "\n", "1", "-2.5e3")
_JSON_PIECES += ("true", "null", "x", "-Infinity", "NaN", "\\u00e9", "\\u12", '"k":', "\t")


@PROPS
@given(text=_strings(*_JSON_PIECES), window=st.sampled_from([1, 2, 5, 9, 256]))
def test_json_documents_are_found_as_when_read_from_the_whole_text(text: str, window: int) -> None:
    from tidyctx.text import _project

    with pytest.MonkeyPatch.context() as patch:  # small windows: reading them must grow
        patch.setattr(_project, "_WINDOW", window)
        found = [(a, b, repr(v), e) for a, b, v, e in _project._find_docs(text)]
    assert [(a, b, v) for a, b, v, _ in found] == [
        (a, b, v) for a, b, v, _ in _find_docs_whole(text)
    ]


def test_a_long_cat_command_is_not_a_file_view() -> None:
    from tidyctx.code._views import cat_path

    assert cat_path({"command": "cat " + "a" * 100_000}) is None
    assert cat_path({"command": "cat src/app.py"}) == "src/app.py"


# ---------------------------------------------------------------------------- slicing

_SOURCES = [
    "import os\n\nclass A:\n    def f(self, x):\n        return g(x.y.z)\n\n    @dec\n"
    "    def g(self):\n        if x:\n            pass\n        else:\n"
    "            return [1, (2, 3)]\n",
    "x = (" * 30 + "1" + ")" * 30 + "\ndef x():\n    return x\n",
    "def f(:\n    a.b.c.d(\n" + "- " * 40 + "\nclass B:\n    pass\n",
]


@pytest.mark.parametrize("source", _SOURCES)
def test_the_walker_finds_what_tree_sitter_finds(source: str) -> None:
    parsed = _slicing._parse(source, "python", None)
    root = parsed.tree.root_node
    size = len(parsed.data)
    walker = _slicing._Walker(root)
    for a in range(size):
        for b in (a + 1, min(size, a + 3)):
            if b <= a:
                continue
            expected = root.descendant_for_byte_range(a, b)
            assert expected is not None
            assert walker.to(a, b).id == expected.id, (a, b)
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        chain = []
        up = node.parent
        while up is not None:
            chain.append(up.id)
            up = up.parent
        assert [n.id for n in _slicing._ancestors(root, node)] == chain
    for row, line in enumerate(source.split("\n")):
        for col in range(len(line) + 1):
            expected = root.descendant_for_point_range((row, col), (row, col))
            assert expected is not None
            assert _slicing._path_to_point(root, (row, col))[-1].id == expected.id


@pytest.mark.parametrize("tokens", ["-", "*", "- ", "+"])
def test_a_long_run_of_tokens_that_fit_no_syntax_is_refused_with_its_line(tokens: str) -> None:
    source = "def f():\n    pass\n" + tokens * 60_000
    with pytest.raises(tc.SlicingError, match=r"tokens in a row that fit no syntax, from line"):
        tc.outline(source, "python")


@pytest.mark.parametrize(
    "source",
    [
        "x = (" * 20_000 + "1" + ")" * 20_000 + "\n",
        "x(" * 20_000 + ")" * 20_000 + "\ndef x():\n    pass\n",
        "x = (a" + "\n.a" * 20_000 + ")\n",
    ],
    ids=["nested-assignments", "nested-calls", "attribute-chain"],
)
def test_deeply_nested_python_is_sliced_or_refused_by_name(source: str) -> None:
    try:
        out = tc.slice_symbol(source, ["x"], "python")
    except tc.SymbolNotFound as err:
        assert "no definition named 'x'" in str(err)
    else:
        assert "def x():" in str(out)
    assert str(tc.slice_lines(source, [1], "python"))


# ---------------------------------------------------------------------------- order


_USAGE_AS_BEFORE = re.compile(
    r"(?i:\b(?:tokens?|credits?|budget|context|quota)\s+(?:used|remaining|left)\b"
    r"\W{0,3}\d|\b\d[\d,.]*\s*k?\s+(?:tokens?|credits?)\s+(?:used|remaining|left)\b)"
)


@PROPS
@given(
    _strings("5", "1,2", ".", " ", "  ", "\t", "k", "K", "tokens", "credits", " used", "left", "x")
)
def test_usage_meters_are_found_as_the_pattern_finds_them(text: str) -> None:
    usage = DEFAULT_PATTERNS[-1]
    assert usage.pattern.startswith("(?P<usage>")
    found = [m.span() for m in usage.finditer(text)]
    assert found == [m.span() for m in _USAGE_AS_BEFORE.finditer(text)]


def test_a_number_before_a_long_run_of_spaces_is_not_a_usage_meter() -> None:
    # the pattern this replaces split the run between two blank classes: 60k spaces took minutes
    system = "5" + " " * 60_000 + "x"
    out = tc.order()(
        {
            "model": "m",
            "max_tokens": 1,
            "system": system,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert out["system"] == system
