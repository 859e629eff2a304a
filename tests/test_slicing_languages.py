"""Slicing the other languages: real-looking files in tests/data/code (see its README)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("tree_sitter", reason="pip install 'tidyctx[code]'")

from tidyctx.code._slicing import definitions, outline, slice_lines, slice_symbol

DATA = Path(__file__).parent / "data" / "code"
FILES = sorted(p for p in DATA.iterdir() if p.name != "README.md")
_GUTTER = re.compile(r"^ *(\d+)  (.*)$")


def read(name: str) -> str:
    return (DATA / name).read_text()


def shown(text: str) -> dict[int, str]:
    """Line number -> line of a numbered slice (markers skipped)."""
    out = {}
    for line in text.split("\n"):
        m = _GUTTER.match(line)
        if m:
            out[int(m.group(1))] = m.group(2)
        else:
            assert line.lstrip().startswith("⋮"), line
    return out


def defs(name: str) -> dict[str, tuple[str, int, int, int]]:
    out: dict[str, tuple[str, int, int, int]] = {}
    for d in definitions(read(name), path=name):
        key = d.qualname
        n = 2
        while key in out:
            key, n = f"{d.qualname}#{n}", n + 1
        out[key] = (d.kind, d.doc_start_line, d.start_line, d.end_line)
    return out


# (file, qualname) -> (kind, doc_start_line, start_line, end_line), checked against the files.
EXPECTED = {
    ("Repository.java", "Repository"): ("class", 7, 12, 51),
    ("Repository.java", "Repository.find"): ("method", 19, 20, 23),
    ("Repository.java", "Repository.find#2"): ("method", 25, 26, 28),  # overload
    ("Repository.java", "Repository.Folder"): ("interface", 38, 39, 42),
    ("Repository.java", "Repository.Stats.hit"): ("method", 47, 47, 49),
    ("cache.rs", "Lru"): ("struct", 6, 7, 12),  # doc, then #[derive]
    ("cache.rs", "Lru.put"): ("method", 20, 21, 29),
    ("cache.rs", "Sized2.size"): ("method", 34, 34, 34),
    ("cache.rs", "Lru.size"): ("method", 41, 41, 43),  # impl Sized2 for Lru<K, V>
    ("cache.rs", "tests.helper"): ("function", 52, 52, 54),
    ("matrix.hpp", "Matrix"): ("class", 9, 10, 30),  # template<> line included
    ("matrix.hpp", "Matrix.cols"): ("method", 21, 21, 21),  # declaration in the class
    ("matrix.hpp", "Matrix.cols#2"): ("method", 36, 36, 39),  # out-of-class definition
    ("matrix.hpp", "Matrix.Shape"): ("struct", 23, 23, 25),
    ("matrix.hpp", "sum"): ("function", 41, 42, 48),
    ("ring.c", "ring_t"): ("struct", 7, 8, 11),
    ("ring.c", "ring_new"): ("function", 17, 18, 18),  # prototype
    ("ring.c", "ring_new#2"): ("function", 20, 24, 33),
    ("ring.c", "ring_push"): ("function", 35, 35, 43),
    ("server.go", "Store"): ("struct", 10, 11, 14),
    ("server.go", "Getter.Get"): ("method", 21, 21, 21),
    ("server.go", "Store.Get"): ("method", 30, 31, 36),
    ("server.go", "NewStore"): ("function", 25, 26, 28),
    ("shapes.ts", "Point"): ("interface", 4, 5, 8),
    ("shapes.ts", "ShapeStore"): ("class", 12, 17, 39),  # decorator line included
    ("shapes.ts", "ShapeStore.add"): ("method", 24, 25, 30),
    ("shapes.ts", "ShapeStore.onChange"): ("method", 36, 36, 38),
    ("shapes.ts", "distance"): ("function", 41, 42, 42),  # overload signatures
    ("shapes.ts", "distance#3"): ("function", 44, 44, 46),
    ("widget.js", "Counter.render"): ("method", 10, 11, 13),
    ("widget.js", "useCounter.inc"): ("function", 23, 23, 25),
    ("widget.js", "double"): ("function", 29, 29, 29),
    ("Orders.cs", "Line"): ("class", 6, 7, 7),
    ("Orders.cs", "OrderBook"): ("class", 9, 12, 41),
    ("Orders.cs", "OrderBook.Add"): ("method", 20, 21, 30),
    ("Orders.cs", "OrderBook.Add#2"): ("method", 32, 32, 35),
    ("Orders.cs", "OrderBook.IVisitor.Visit"): ("method", 39, 39, 39),
    ("inventory.rb", "Shop.Inventory"): ("class", 5, 6, 28),
    ("inventory.rb", "Shop.Inventory.add"): ("method", 14, 15, 17),
    ("inventory.rb", "Shop.Inventory.load"): ("method", 19, 19, 21),
    ("inventory.rb", "helper"): ("function", 31, 31, 33),
    ("Cart.php", "Cart"): ("class", 8, 11, 34),  # #[Entity] attribute included
    ("Cart.php", "Cart.add"): ("method", 21, 24, 28),
    ("Cart.php", "Priced.price"): ("method", 38, 38, 38),
    ("Cart.php", "total"): ("function", 41, 41, 44),
}


@pytest.mark.parametrize(("name", "qualname"), sorted(EXPECTED))
def test_definition_ranges(name: str, qualname: str) -> None:
    assert defs(name)[qualname] == EXPECTED[name, qualname]


@pytest.mark.parametrize(("name", "qualname"), sorted(EXPECTED))
def test_slice_shows_source_lines_with_enclosing_headers(name: str, qualname: str) -> None:
    src = read(name)
    lines = src.split("\n")
    s = slice_symbol(src, qualname, path=name)
    _kind, doc, start, end = EXPECTED[name, qualname]
    # a repeated qualname without "#n" returns every definition of it, in source order
    assert s.symbols[0] == qualname if "#" not in qualname else s.symbols == (qualname,)
    assert s.spans[qualname] == (start, end)
    got = shown(s.text)
    for n, line in got.items():
        assert lines[n - 1] == line  # verbatim, at its original number
    assert set(range(doc, end + 1)) <= set(got)  # doc comment, decorators, whole body


def test_java_overloads_and_class_context() -> None:
    s = slice_symbol(read("Repository.java"), "find", path="Repository.java")
    assert s.symbols == ("Repository.find", "Repository.find#2")
    assert s.ranges == ((3, 3), (12, 13), (19, 28), (51, 51))
    got = shown(s.text)
    assert got[3] == "import java.util.List;"  # List<T> is used
    assert got[51] == "}"  # the class's closing brace


def test_rust_impl_header_and_use() -> None:
    s = slice_symbol(read("cache.rs"), "Lru.put", path="cache.rs")
    got = shown(s.text)
    assert got[14] == "impl<K: Hash + Eq + Clone, V> Lru<K, V> {"
    assert got[4] == "use std::hash::Hash;" and 3 not in got  # HashMap is not used
    assert got[21] == "    #[inline]" and got[30] == "}"


def test_cpp_namespace_template_and_out_of_class_definition() -> None:
    s = slice_symbol(read("matrix.hpp"), "Matrix::cols", path="matrix.hpp")
    assert s.symbols == ("Matrix.cols", "Matrix.cols#2")
    got = shown(s.text)
    assert got[7] == "namespace linalg {" and got[10] == "template <typename T>"
    assert got[37] == "std::size_t Matrix<T>::cols() const {"
    assert got[50] == "}  // namespace linalg"


def test_go_receiver_methods_and_grouped_types() -> None:
    d = {x.qualname: x for x in definitions(read("server.go"), path="server.go")}
    assert d["Store.ServeHTTP"].signature.startswith("func (s *Store[K, V]) ServeHTTP(")
    assert d["Key"].doc == "Key names an item." and d["Store"].kind == "struct"
    s = slice_symbol(read("server.go"), "ServeHTTP", path="server.go")
    got = shown(s.text)
    assert got[6] == '\t"net/http"' and got[4] == "import (" and got[8] == ")"
    # the unused imports between are single hidden lines, shown rather than marked
    far = shown(slice_symbol(read("server.go"), "NewStore", path="server.go").text)
    assert 4 not in far and 6 not in far  # NewStore uses no import


def test_typescript_decorators_docs_generics_and_tsx() -> None:
    d = {x.qualname: x for x in definitions(read("shapes.ts"), path="shapes.ts")}
    assert d["ShapeStore"].doc == "Stores shapes by id."
    assert d["ShapeStore"].signature == "class ShapeStore<S extends Point>"
    assert d["Pair"].kind == "type" and d["Geometry" if "Geometry" in d else "area"]
    tsx = "export function App<T>(p: { x: T }) {\n  return <div>{p.x}</div>;\n}\n"
    assert slice_symbol(tsx, "App", path="app.tsx").spans == {"App": (1, 3)}


def test_csharp_namespace_attributes_and_xml_doc() -> None:
    d = {x.qualname: x for x in definitions(read("Orders.cs"), path="Orders.cs")}
    assert d["OrderBook"].doc == "Keeps orders in memory."
    assert d["OrderBook.Count"].kind == "property"
    s = slice_symbol(read("Orders.cs"), "OrderBook.Add", path="Orders.cs")
    got = shown(s.text)
    assert got[4] == "namespace Shop.Orders" and got[21] == '        [Obsolete("use AddRange")]'


def test_ruby_modules_and_php_namespaces() -> None:
    got = shown(slice_symbol(read("inventory.rb"), "Item.to_s", path="inventory.rb").text)
    assert got[4] == "module Shop" and got[23] == "    class Item" and got[29] == "end"
    php = read("Cart.php")
    got = shown(slice_symbol(php, "Cart.add", path="Cart.php").text)
    assert got[5] == "use App\\Models\\Product;" and 6 not in got  # Logger is not used here


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_outline_and_lines_on_every_file(path: Path) -> None:
    src = path.read_text()
    lines = src.split("\n")
    o = outline(src, path=path.name)
    assert o == outline(src, path=path.name) and o.errors == ()
    got = shown(o.text)
    for n, line in got.items():
        assert lines[n - 1] == line
    ds = definitions(src, path=path.name)
    for d in ds:  # every signature's first line is in the outline
        assert d.start_line in got or any(a <= d.start_line <= b for a, b in o.ranges)
    inner = max(ds, key=lambda d: (d.start_line, -d.end_line))
    s = slice_lines(src, inner.end_line, path=path.name)
    assert s.spans[s.symbols[0]] == (inner.start_line, inner.end_line)
