"""Python slicing: ground truth from ``ast`` on stdlib files, properties, bad input."""

from __future__ import annotations

import ast
import importlib
import re
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tree_sitter_python", reason="pip install 'tidyctx[code]'")

from tidyctx.code import _grammars
from tidyctx.code import _slicing as slicing
from tidyctx.code._slicing import (
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


@settings(max_examples=40)
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
    slicing.clear_cache()
    slice_symbol(CODE, "helper", "python")
    slice_symbol(CODE, "Widget", "python")
    outline(CODE.encode(), "python")  # same bytes, same entry
    assert len(slicing._CACHE) == 1
    outline(CODE + "\n# changed\n", "python")
    assert len(slicing._CACHE) == 2


def test_memo_is_bounded_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    slicing.clear_cache()
    size = len(CODE.encode())
    monkeypatch.setattr(slicing, "CACHE_BYTES", 3 * size + 100)
    for i in range(6):
        outline(CODE + f"\n# {i}\n", "python")
    assert len(slicing._CACHE) == 3  # by bytes, though CACHE_SIZE would allow 32
    assert sum(len(p.data) for p in slicing._CACHE.values()) <= 3 * size + 100
    monkeypatch.setattr(slicing, "CACHE_BYTES", 10)
    outline(CODE, "python")
    assert len(slicing._CACHE) == 1  # the newest stays, whatever its size
    slicing.clear_cache()
    assert not slicing._CACHE


def test_threads_share_the_memo_safely() -> None:
    from concurrent.futures import ThreadPoolExecutor

    slicing.clear_cache()
    sources = [CODE + f"\n# {i}\n" for i in range(8)] * 4
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda src: outline(src, "python").text, sources))
    assert len(slicing._CACHE) == 8
    assert got == [outline(src, "python").text for src in sources]


# --- markers inside if/elif/else, try/except and match chains -----------------------------------
# Slicing every variant of a name defined once per branch (ctypes/util.py's find_library,
# multiprocessing/heap.py's Arena) must not put a marker at the clause's depth, between two
# clauses: the slice (markers as `...`) would not parse.

CHAIN = """\
import os
import sys

if os.name == "nt":
    def find(name):
        return name

elif sys.platform == "darwin":
    from os import path
    def find(name):
        for n in [name]:
            return path.join(n)
        return None

elif sys.platform.startswith("aix"):
    # a clause that holds no definition
    # and only comments and an import

    from os import sep as find

elif os.name == "posix":
    import re
    def helper():
        return 1

    def find(name):
        return re.escape(name)

else:
    def find(name):
        return None
"""

HEAP = """\
import sys

if sys.platform == 'win32':
    class Arena(object):
        def __init__(self, size):
            self.size = size
            self.buffer = bytearray(size)
            # XXX a trailing comment block
            # XXX that ends the branch
            #assert something

else:

    class Arena(object):
        def __init__(self, size, fd=-1):
            self.size = size
            self.fd = fd
"""

TRY_MATCH = """\
try:
    def a():
        return 1
except ImportError:
    x = 1
    y = 2
    z = 3
except OSError:
    def a():
        return 2
else:
    w = 1
    v = 2
    u = 3
finally:
    def b():
        return 3

match sys.argv:
    case [one]:
        def m():
            return 1
    case [one, two]:
        p = 1
        q = 2
        r = 3
    case _:
        def n():
            return 2
"""

ONE_LINERS = """\
if a: x = 1
elif b:
    y = 2
    z = 3
    w = 4
else:
    def f():
        return 5
"""


def _parses(sl: slicing.Slice) -> str:
    code = textwrap.dedent(as_code(sl.text))
    ast.parse(code)
    return code


@pytest.mark.parametrize(
    "src", [CHAIN, HEAP, TRY_MATCH, ONE_LINERS], ids=["chain", "heap", "try", "one"]
)
def test_every_variant_at_once_parses(src: str) -> None:
    result = bench.check_source(src)
    assert result.problems == [] and result.agree == result.defs
    keys = list(bench.ast_spans(src))
    for chosen in [keys, keys[::2], keys[1::2], [keys[-1]]]:
        if chosen:
            _parses(slice_symbol(src, chosen, "python"))
    _parses(outline(src, "python"))
    for line in range(1, src.count("\n") + 1):
        _parses(slice_lines(src, line, "python"))
        _parses(slice_lines(src, [line, src.count("\n") + 1 - line], "python"))


def test_marker_between_clauses_goes_into_the_body_before() -> None:
    s = slice_symbol(CHAIN, "find", "python")
    assert s.symbols == ("find", "find#2", "find#3", "find#4")
    # the aix branch is hidden by one marker at the darwin body's depth, not at column 0
    assert "\n        ⋮ (lines 14-20 elided)\n21  elif os.name ==" in s.text
    _parses(s)
    h = slice_symbol(HEAP, "Arena", "python")
    assert h.symbols == ("Arena", "Arena#2")
    # comments only before `else:`: the marker stays in the if body
    assert "\n        ⋮ (lines 8-11 elided)\n12  else:" in h.text
    _parses(h)
    # a branch whose body shares its header's line cannot hold a marker: the gap is shown
    o = slice_symbol(ONE_LINERS, "f", "python")
    assert "⋮" not in o.text and o.ranges == ((1, 8),)


@pytest.mark.parametrize(
    "name, symbol", [("ctypes/util.py", "find_library"), ("multiprocessing/heap.py", "Arena")]
)
def test_stdlib_variants_at_once_parse(name: str, symbol: str) -> None:
    path = Path(sysconfig.get_paths()["stdlib"]) / name
    if not path.exists():
        pytest.skip(f"{name} is not in this interpreter's stdlib")
    src = bench.read_source(path)
    assert src is not None
    s = slice_symbol(src, symbol, "python")
    assert len(s.symbols) >= 2
    _parses(s)
    assert bench.check_source(src, name).problems == []


@pytest.mark.parametrize("name", ["A.", ".m", "A..m", ""])
def test_a_name_with_empty_parts_is_refused(name: str) -> None:
    source = "class A:\n    def m(self):\n        return 1\n"
    with pytest.raises(SlicingError, match="not a symbol name"):
        slice_symbol(source, name, language="python")


def test_bytes_that_are_not_utf8_are_sliced_with_a_note() -> None:
    latin1 = 'x = 1\ndef f():\n    return "café"\n'.encode("latin-1")
    s = slice_symbol(latin1, "f", language="python")
    assert "def f():" in s.text and "\ufffd" in s.text
    assert len(s.errors) == 1
    assert "line 3: not UTF-8 (byte 0xe9" in s.errors[0]
    clean = slice_symbol(latin1.decode("latin-1").encode("utf-8"), "f", language="python")
    assert clean.errors == () and "café" in clean.text


@pytest.mark.parametrize("source", ["", "\n", "\n\n  \n"])
def test_outline_of_an_empty_file_is_empty(source: str) -> None:
    out = outline(source, language="python")
    assert out.text == "" and out.ranges == () and out.symbols == ()
