"""Python slicing: ground truth from ``ast`` on stdlib files, properties, bad input."""

from __future__ import annotations

import ast
import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tree_sitter_python", reason="pip install 'tidyctx[code]'")

from tidyctx.transforms import _grammars, slicing
from tidyctx.transforms.slicing import (
    AmbiguousSymbol,
    GrammarMissing,
    SlicingError,
    SymbolNotFound,
    UnknownLanguage,
    definitions,
    language_for,
    outline,
    slice_lines,
    slice_symbol,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
bench = importlib.import_module("benchmarks.slice_stdlib")
as_code = bench.as_code

# A fixed sample of stdlib files: every 20th of the sorted list (about 33 files).
SAMPLE = bench.stdlib_files()[::20]


@pytest.mark.parametrize("path", SAMPLE, ids=lambda p: p.name)
def test_stdlib_spans_and_parse_agree_with_ast(path: Path) -> None:
    source = bench.read_source(path)
    if source is None:
        pytest.skip("ast cannot parse it")
    result = bench.check_source(source, path.name)
    assert result.problems == []
    assert result.agree == result.defs


def test_sample_is_not_trivial() -> None:
    defs = 0
    for p in SAMPLE:
        src = bench.read_source(p)
        if src is not None:
            defs += len(bench.ast_spans(src))
    assert len(SAMPLE) >= 30 and defs > 500


CODE = '''\
"""Module doc."""
import os
import re as regex
from typing import Any, Callable

CONST = 1


# Leading comment for helper.
def helper(x: Any) -> int:
    """Return one."""
    return 1


class Base:
    pass


@dataclass_like
class Widget(Base):
    """A widget.

    More text.
    """

    size = 3

    def __init__(self, name):
        self.name = name

    @property
    def area(self):
        return self.size * 2

    @area.setter
    def area(self, value):
        self.size = value

    def render(self, fn: Callable) -> str:
        def inner(y):
            return regex.sub("a", "b", y)

        return inner(self.name)

    class Meta:
        ordering = ["name"]


if os.name == "nt":
    def platform():
        return "win"
else:
    def platform():
        return "posix"

try:
    from _speedups import fast
except ImportError:
    def fast(x):
        return x
'''


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def test_qualnames_kinds_and_spans() -> None:
    got: dict[str, tuple[str, int, int]] = {}
    for d in definitions(CODE, "python"):
        got.setdefault(d.qualname, (d.kind, d.start_line, d.end_line))
    assert got["helper"] == ("function", 10, 12)
    assert got["Widget"] == ("class", 19, 46)
    assert got["Widget.area"] == ("method", 31, 33)  # first of two; decorator included
    assert got["Widget.render.inner"] == ("function", 40, 41)
    assert got["Widget.Meta"] == ("class", 45, 46)
    (helper,) = [d for d in definitions(CODE, "python") if d.name == "helper"]
    assert helper.doc_start_line == 9 and helper.doc == "Return one."
    assert helper.signature == "def helper(x: Any) -> int"


def test_slice_method_with_class_header_imports_and_gutter() -> None:
    s = slice_symbol(CODE, "Widget.render", language="python")
    assert s.symbols == ("Widget.render",)
    assert s.spans == {"Widget.render": (39, 43)}
    text = str(s)
    assert "20  class Widget(Base):" in text
    assert "39      def render(self, fn: Callable) -> str:" in text
    assert " 3  import re as regex" in text  # `regex` is used in the slice
    assert " 4  from typing import Any, Callable" in text  # `Callable` too
    assert "import os" not in text  # `os` is not
    assert "⋮ (lines 21-38 elided)" in text
    assert s.ranges == ((3, 4), (19, 20), (39, 43))
    ast.parse(textwrap.dedent(as_code(text)))


def test_duplicates_are_all_returned_and_numbered() -> None:
    s = slice_symbol(CODE, "Widget.area", language="python")
    assert s.symbols == ("Widget.area", "Widget.area#2")
    assert s.spans == {"Widget.area": (31, 33), "Widget.area#2": (35, 37)}
    one = slice_symbol(CODE, "Widget.area#2", language="python")
    assert one.symbols == ("Widget.area#2",) and "@area.setter" in one.text
    assert "@property" not in one.text


def test_defs_inside_if_and_try_keep_block_headers() -> None:
    s = slice_symbol(CODE, "platform#2", language="python")
    text = str(s)
    assert '49  if os.name == "nt":' in text and "52  else:" in text
    ast.parse(as_code(text))
    t = slice_symbol(CODE, "fast", language="python")
    assert "56  try:" in t.text and "58  except ImportError:" in t.text
    ast.parse(as_code(t.text))


def test_bare_names_tails_and_separators() -> None:
    assert slice_symbol(CODE, "inner", "python").symbols == ("Widget.render.inner",)
    assert slice_symbol(CODE, "render.inner", "python").symbols == ("Widget.render.inner",)
    assert slice_symbol(CODE, "Widget::render", "python").symbols == ("Widget.render",)
    assert slice_symbol(CODE, "render()", "python").symbols == ("Widget.render",)


def test_several_symbols_at_once_merge_context() -> None:
    s = slice_symbol(CODE, ["helper", "Widget.__init__", "Widget.Meta"], "python")
    assert s.symbols == ("helper", "Widget.__init__", "Widget.Meta")
    assert s.text.count("class Widget(Base):") == 1
    ast.parse(as_code(s.text))


def test_no_line_numbers_gives_source_lines_and_markers() -> None:
    s = slice_symbol(CODE, "helper", "python", line_numbers=False)
    src = set(lines_of(CODE))
    for line in lines_of(s.text):
        assert line in src or line.lstrip().startswith("⋮")
    assert s.text.splitlines() == [
        "⋮ (lines 1-3 elided)",
        "from typing import Any, Callable",
        "⋮ (lines 5-8 elided)",
        "# Leading comment for helper.",
        "def helper(x: Any) -> int:",
        '    """Return one."""',
        "    return 1",
        "⋮ (lines 13-60 elided)",
    ]


def test_slice_lines_smallest_enclosing_definition() -> None:
    assert slice_lines(CODE, 41, "python").symbols == ("Widget.render.inner",)
    assert slice_lines(CODE, 42, "python").symbols == ("Widget.render",)
    assert slice_lines(CODE, [11, 29], "python").symbols == ("helper", "Widget.__init__")
    module_level = slice_lines(CODE, 6, "python")  # CONST = 1
    assert module_level.symbols == () and (6, 6) in module_level.ranges
    with pytest.raises(SlicingError, match="outside the file"):
        slice_lines(CODE, 999, "python")


def test_outline_signatures_docs_and_parse() -> None:
    o = outline(CODE, "python")
    text = as_code(o.text)
    ast.parse(text)
    assert "def __init__(self, name):" in text and "self.name = name" not in text
    assert '    """A widget.' in text  # first doc line, and the closing quotes
    assert "More text." not in text
    assert set(o.symbols) == {d.qualname for d in definitions(CODE, "python")} | {
        "Widget.area#2",
        "platform#2",
    }


# --- hypothesis ----------------------------------------------------------------------------------

names = st.sampled_from(["alpha", "beta", "gamma", "delta", "run", "get"])
docs = st.sampled_from(["", '"""One line."""', '"""First line.\n\nMore.\n"""', "# note"])
bodies = st.sampled_from(["return 1", "x = 1\nreturn x", "pass", "if x:\n    return 2\nreturn 3"])
decorators = st.sampled_from(["", "@staticmethod", "@functools.cache", "@a.b(1,\n   2)"])


@st.composite
def function(draw: st.DrawFn, depth: int = 0) -> str:
    deco = draw(decorators)
    doc = draw(docs)
    head = f"def {draw(names)}(x):"
    body = [doc] if doc and not doc.startswith("#") else []
    if depth < 2 and draw(st.booleans()):
        body.append(draw(function(depth + 1)))
    body.append(draw(bodies))
    inner = textwrap.indent("\n".join(body), "    ")
    pre = [doc] if doc.startswith("#") else []
    return "\n".join([*pre, *([deco] if deco else []), head, inner])


@st.composite
def klass(draw: st.DrawFn) -> str:
    members = draw(st.lists(st.one_of(function(), st.just("attr = 1")), min_size=1, max_size=4))
    head = f"class {draw(names).title()}(object):"
    return head + "\n" + textwrap.indent("\n\n".join(members), "    ")


@st.composite
def module(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(function(), klass()), min_size=1, max_size=5))
    wrap = draw(st.sampled_from(["", "if X:", "try:"]))
    if wrap:
        last = textwrap.indent(parts.pop(), "    ")
        parts.append(f"{wrap}\n{last}" + ("\nexcept E:\n    pass" if wrap == "try:" else ""))
    return "import functools\n\n" + "\n\n\n".join(parts) + "\n"


@settings(max_examples=40, deadline=None)
@given(module())
def test_generated_sources_match_ast_and_outline_is_idempotent(src: str) -> None:
    result = bench.check_source(src)
    assert result.problems == [] and result.agree == result.defs
    once = outline(src, "python")
    again = outline(src, "python")
    assert once == again
    # outlining the outline (markers as `...`) gives it back, line for line
    code = as_code(outline(src, "python", line_numbers=False).text, numbered=False)
    ast.parse(code)
    assert as_code(outline(code, "python", line_numbers=False).text, numbered=False) == code
    # nothing but source lines and markers
    src_lines = set(src.split("\n"))
    for s in (once, slice_lines(src, len(src.split("\n")) // 2 or 1, "python")):
        for line in s.text.split("\n"):
            stripped = line.lstrip()
            if stripped.startswith("⋮"):
                continue
            m = re.match(r"^ *\d+  (.*)$", line)
            assert m is not None and m.group(1) in src_lines


# --- bad input -----------------------------------------------------------------------------------


def test_syntax_error_still_slices_what_parses() -> None:
    broken = CODE.replace("    def __init__(self, name):", "    def __init__(self, name:")
    s = slice_symbol(broken, "helper", "python")
    assert s.spans == {"helper": (10, 12)}
    assert s.errors and "syntax error near line" in s.errors[0]
    assert "sliced what parsed" in s.errors[0]
    assert slice_symbol(CODE, "helper", "python").errors == ()


def test_unknown_symbol_lists_close_matches() -> None:
    with pytest.raises(SymbolNotFound) as exc:
        slice_symbol(CODE, "Widget.rendr", "python")
    assert "Widget.render" in exc.value.close_matches
    assert "close matches: " in str(exc.value) and "Widget.render" in str(exc.value)
    assert exc.value.symbol == "Widget.rendr"
    with pytest.raises(KeyError):  # also a KeyError and a ValueError
        slice_symbol(CODE, "nothing_like_it", "python")


def test_ambiguous_bare_name_lists_candidates() -> None:
    src = "class A:\n    def f(self): pass\nclass B:\n    def f(self): pass\n"
    with pytest.raises(AmbiguousSymbol) as exc:
        slice_symbol(src, "f", "python")
    assert exc.value.close_matches == ["A.f", "B.f"]
    assert "A.f, B.f" in str(exc.value)


def test_unknown_language_and_file_names() -> None:
    with pytest.raises(UnknownLanguage, match="supported: python, javascript"):
        slice_symbol(CODE, "helper", language="cobol")
    with pytest.raises(UnknownLanguage, match=r"notes\.txt"):
        slice_symbol(CODE, "helper", path="notes.txt")
    with pytest.raises(UnknownLanguage, match="no language given"):
        outline(CODE)
    assert language_for("a/b.PY") == "python" and language_for("Rakefile") == "ruby"
    assert slice_symbol(CODE, "helper", path="pkg/mod.py").path == "pkg/mod.py"
    assert slice_symbol(CODE, "helper", language="py").language == "python"


def test_binary_content_is_refused() -> None:
    with pytest.raises(SlicingError, match="looks binary"):
        outline(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "python")
    with pytest.raises(SlicingError, match="looks binary"):
        outline("abc\x00def", "python")


def test_missing_grammar_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    _grammars.load.cache_clear()
    monkeypatch.setitem(sys.modules, "tree_sitter_ruby", None)  # import now fails
    try:
        with pytest.raises(GrammarMissing) as exc:
            outline("def f\nend\n", "ruby")
        assert "pip install tree-sitter-ruby" in str(exc.value)
        assert "tidyctx[code]" in str(exc.value)
        assert isinstance(exc.value, ImportError)
    finally:
        monkeypatch.undo()
        _grammars.load.cache_clear()
    assert outline("def f\nend\n", "ruby").symbols == ("f",)


def test_empty_and_definition_free_sources() -> None:
    assert outline("", "python").symbols == ()
    with pytest.raises(SymbolNotFound, match="defines nothing"):
        slice_symbol("x = 1\n", "f", "python")
    with pytest.raises(SlicingError, match="no symbol"):
        slice_symbol(CODE, [], "python")


def test_ten_megabyte_file() -> None:
    header, body = CODE.split("CONST = 1\n")
    unit = body.replace("class Widget", "class Widget{n}").replace("def helper", "def helper{n}")
    parts = [header]
    size = 0
    n = 0
    while size < 10_000_000:
        part = unit.replace("{n}", str(n))
        parts.append(part)
        size += len(part)
        n += 1
    big = "".join(parts)
    target = f"Widget{n // 2}.render"
    s = slice_symbol(big, target, "python")
    assert s.symbols == (target,) and "def render(self, fn: Callable) -> str:" in s.text
    assert len(s.text) < 1_000 and s.errors == ()
    start, end = s.spans[target]
    assert big.split("\n")[start - 1].strip().startswith("def render")
    assert end - start == 4


def test_parse_is_memoized_per_content() -> None:
    slicing._CACHE.clear()
    slice_symbol(CODE, "helper", "python")
    slice_symbol(CODE, "Widget", "python")
    outline(CODE.encode(), "python")  # same bytes, same entry
    assert len(slicing._CACHE) == 1
    outline(CODE + "\n# changed\n", "python")
    assert len(slicing._CACHE) == 2
