"""Slice source code with tree-sitter: one symbol, the definition around a line, an outline.

Agents paste whole files when one function would do. :func:`slice_symbol` returns the
definition of a function, method, class or type with the least context that makes it
readable; :func:`slice_lines` the smallest definition around a line (a stack trace or a grep
hit); :func:`outline` every signature with the first line of its doc comment, bodies elided.
Languages: Python, JavaScript, TypeScript/TSX, Go, Rust, Java, C, C++, Ruby, C# and PHP, from
the file name or given explicitly (:data:`LANGUAGES`). Grammars come from the per-language
wheels (``pip install tidyctx[code]``) and load offline.

**What a slice shows.** For each symbol: its leading doc comment, decorators/annotations and
the whole definition; the header (and closing brace) of every enclosing class, function,
``impl`` or namespace; for Python also the header of every enclosing ``if``/``try``/``with``/
``for``/``while``/``match`` block (for ``try``, also its first ``except``/``finally`` line),
so the slice still parses; and the import lines whose bound names occur in the shown lines
(Python: module-level imports only; C/C++ ``#include`` lines are never matched, a header does
not say what it declares). Lines are the source's, verbatim (a trailing ``\\r`` removed),
each with a gutter ``f"{lineno:>{w}}  "`` (``w`` = digits of the file's last line number)
unless ``line_numbers=False``. Each run of two or more hidden lines is one marker line: the
gutter's width in spaces, the indentation of the first hidden code line, then
``⋮ (lines 20-118 elided)``; a single hidden line is shown instead (a marker would cost as
much). In Python, replacing each marker by ``...`` at its indentation gives code that parses.

**Names.** A qualname joins the names of the enclosing definitions with ``.``: ``Class.method``,
``Outer.Inner``, ``outer.inner`` for a function nested in a function (Python's ``__qualname__``
without ``<locals>``), ``Type.method`` for Go receivers, Rust ``impl`` blocks and C++
``Type::method`` definitions. Namespaces (C++, C#, PHP, TypeScript) are not part of it; Rust
``mod`` and Ruby ``module`` are. A symbol may use ``::`` or Ruby's ``#`` for ``.``, and may be
a bare name or any dotted tail of a qualname when only one qualname ends that way (else
:class:`AmbiguousSymbol`). A qualname defined more than once (a property's getter and setter,
overloads, ``if``/``else`` variants) matches all of them; ``spans`` and ``symbols`` key the
second one ``name#2``, the third ``name#3`` (in source order), and ``"name#2"`` selects one.

**Errors.** Unknown language: :class:`UnknownLanguage`; grammar wheel missing:
:class:`GrammarMissing` naming the package; NUL bytes: :class:`SlicingError` ("looks
binary"); unknown symbol: :class:`SymbolNotFound` with close matches. A file with syntax errors
is still sliced (tree-sitter recovers) and ``Slice.errors`` says where.

Parsing is memoized per (content hash, language) in a bounded LRU (:data:`CACHE_SIZE` files,
:data:`CACHE_BYTES` of source), and each language's query is compiled once, so slicing many
symbols of one file parses it once. Every function here is thread-safe, and tree-sitter
releases the GIL while it parses, so many files can be sliced in a thread pool
(``ThreadPoolExecutor().map(lambda p: definitions(p.read_bytes(), path=str(p)), paths)``);
the indexing after each parse is Python and holds the GIL, so the gain is below the number
of cores (``benchmarks/slice_stdlib.py`` measures both).

>>> src = '''import os
... import sys
...
... class Greeter:
...     'Say hello.'
...
...     greeting = "hello"
...
...     @staticmethod
...     def greet(name):
...         return os.path.join(name, "x")
... '''
>>> print(slice_symbol(src, "greet", language="python"))
 1  import os
    ⋮ (lines 2-3 elided)
 4  class Greeter:
        ⋮ (lines 5-8 elided)
 9      @staticmethod
10      def greet(name):
11          return os.path.join(name, "x")
>>> print(outline(src, language="python", line_numbers=False))
⋮ (lines 1-3 elided)
class Greeter:
    'Say hello.'
    ⋮ (lines 6-8 elided)
    @staticmethod
    def greet(name):
        return os.path.join(name, "x")
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidyctx.code._grammars import (
    CLASSLIKE,
    LANGUAGES,
    SPECS,
    Loaded,
    Missing,
    Spec,
    language_for,
    load,
    normalize_language,
)

if TYPE_CHECKING:
    from tree_sitter import Node, Tree

__all__ = [
    "CACHE_BYTES",
    "CACHE_SIZE",
    "LANGUAGES",
    "AmbiguousSymbol",
    "Definition",
    "GrammarMissing",
    "Slice",
    "SlicingError",
    "SymbolNotFound",
    "UnknownLanguage",
    "clear_cache",
    "definitions",
    "language_for",
    "outline",
    "slice_lines",
    "slice_symbol",
]

#: Parsed files kept in memory (least recently used dropped first) ...
CACHE_SIZE = 32
#: ... and their total source bytes (a parsed file takes several times its size in memory);
#: the newest file is kept whatever its size.
CACHE_BYTES = 64_000_000
MARKER = "⋮"
_BINARY_PROBE = 8192
_SIG_CHARS = 300
_DOC_CHARS = 200


class SlicingError(ValueError):
    """Source that cannot be sliced (binary content, a line outside the file, ...)."""


class UnknownLanguage(SlicingError):
    """The language was not given and the file name does not tell, or is not supported."""


class GrammarMissing(SlicingError, ImportError):
    """tree-sitter or the grammar wheel for a language is not installed."""


class SymbolNotFound(SlicingError, KeyError):
    """No definition has that name; ``close_matches`` lists similar qualnames."""

    def __init__(self, symbol: str, close_matches: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.symbol = symbol
        self.close_matches = list(close_matches)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class AmbiguousSymbol(SymbolNotFound):
    """A bare or partial name matches several qualnames (``close_matches`` lists them)."""


@dataclass(frozen=True)
class Definition:
    """One definition of a file. Lines are 1-based and inclusive."""

    name: str
    qualname: str
    kind: str
    start_line: int
    end_line: int
    doc_start_line: int
    signature: str
    doc: str


@dataclass(frozen=True)
class Slice:
    """What :func:`slice_symbol`, :func:`slice_lines` and :func:`outline` return.

    ``ranges`` are the original lines shown (1-based inclusive, sorted, merged); ``spans``
    maps each symbol found (``name#2`` for a repeated qualname) to its definition's own lines
    (``start_line``..``end_line``, decorators included, doc comment not). ``errors`` says what
    the slice may get wrong: where the parser found syntax errors, and bytes that are not
    UTF-8 (shown as U+FFFD).
    """

    text: str
    ranges: tuple[tuple[int, int], ...]
    symbols: tuple[str, ...]
    spans: dict[str, tuple[int, int]] = field(hash=False)
    language: str
    path: str | None
    errors: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.text


class _Item:
    """A definition or scope of a parsed file (rows are 0-based)."""

    __slots__ = (
        "body",
        "doc",
        "doc_rows",
        "doc_start",
        "docs_done",
        "done",
        "end",
        "foot",
        "head_end",
        "is_def",
        "key",
        "kind",
        "name",
        "node",
        "ob",
        "oe",
        "outer",
        "parent",
        "prefix",
        "qualname",
        "rows_done",
        "sig",
        "start",
    )

    def __init__(self, node: Node, outer: Node, kind: str, name: str, is_def: bool) -> None:
        self.node = node
        self.outer = outer
        self.ob = outer.start_byte
        self.oe = outer.end_byte
        self.kind = kind
        self.name = name
        self.is_def = is_def
        self.parent = -1
        self.qualname = ""
        self.prefix = ""  # what this item adds in front of its members' names
        self.key = ""
        self.start = self.end = self.head_end = 0
        self.doc_start = -1  # not computed yet (_doc_start)
        self.foot = -1
        self.doc = ""
        self.doc_rows: tuple[int, ...] = ()
        self.sig = ""
        self.body: Node | None = None
        self.rows_done = False  # start .. foot and body (_rows)
        self.docs_done = False  # doc and doc_rows (_docs)
        self.done = False  # sig (_details)


class _Parsed:
    """One parsed file: lines, definitions and imports, ready to slice.

    Parsing indexes only what every lookup needs (each definition's node, name, qualname and
    parent); rows, doc comments, signatures and imports are computed when first used, for
    the definitions that are used (:func:`_rows`, :func:`_docs`, :func:`_details`,
    :func:`_import_rows`), so slicing one symbol of a large file costs little more than the
    parse. Each lazy step is idempotent and publishes its result last, so threads may race
    on it harmlessly.
    """

    def __init__(
        self, language: str, lines: list[str], tree: Tree, data: bytes, loaded: Loaded
    ) -> None:
        self.language = language
        self.spec: Spec = SPECS[language]
        self.loaded = loaded
        self.lines = lines
        self.tree = tree
        self.data = data
        # lines for _end_row's shortcut, which needs a tree without errors
        self.fast_lines: list[str] | None = None if tree.root_node.has_error else lines
        self.items: list[_Item] = []
        self.by_node: dict[int, int] = {}
        self.by_qualname: dict[str, list[int]] = {}
        self.by_key: dict[str, int] = {}
        self.indexed = False  # items, by_node, by_qualname, by_key, import_nodes (_index)
        # Python definitions found by name without the index (_python_lookup), by node id
        self.found: dict[int, _Item] = {}
        self.import_nodes: list[Node] = []  # captured with the items (not Python)
        self.imports: list[tuple[tuple[tuple[int, int], ...], frozenset[str]]] | None = None
        # comments by their last row (the last one when several end there), once all rows
        # need them; before that, _comment_ending_at queries the rows it needs
        self.comments_by_row: dict[int, Node] | None = None
        self.errors: tuple[str, ...] = ()
        self._definitions: list[Definition] | None = None

    def definitions(self) -> list[Definition]:
        if self._definitions is None:
            _index(self)
            _all_rows(self)
            for it in self.items:
                _details(self, it)
            self._definitions = [
                Definition(
                    name=it.name,
                    qualname=it.qualname,
                    kind=it.kind,
                    start_line=it.start + 1,
                    end_line=it.end + 1,
                    doc_start_line=_doc_start(self, it) + 1,
                    signature=it.sig,
                    doc=it.doc,
                )
                for it in self.items
                if it.is_def
            ]
        return list(self._definitions)


_CACHE: OrderedDict[tuple[bytes, str], _Parsed] = OrderedDict()
_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------
# public API


def definitions(
    source: str | bytes, language: str | None = None, path: str | None = None
) -> list[Definition]:
    """Every definition in the file, nested ones included, in source order.

    >>> [(d.qualname, d.kind, d.start_line, d.end_line)
    ...  for d in definitions("class A:\\n    def f(self):\\n        pass\\n", "python")]
    [('A', 'class', 1, 3), ('A.f', 'method', 2, 3)]
    """
    return _parse(source, language, path).definitions()


def slice_symbol(
    source: str | bytes,
    symbol: str | Sequence[str],
    language: str | None = None,
    path: str | None = None,
    *,
    line_numbers: bool = True,
) -> Slice:
    """The definition(s) of ``symbol`` (one name or several) with their context.

    Raises :class:`SymbolNotFound` (with close matches) when a name matches nothing and
    :class:`AmbiguousSymbol` when a partial name matches several qualnames.
    """
    parsed = _parse(source, language, path)
    wanted = [symbol] if isinstance(symbol, str) else list(symbol)
    if not wanted:
        raise SlicingError("no symbol given: pass a name such as 'Class.method'")
    for name in wanted:
        # "A." or ".m" would otherwise resolve silently to A or m.
        if not isinstance(name, str) or any(not part for part in name.split(".")):
            raise SlicingError(
                f"{name!r} is not a symbol name: pass a name such as 'Class.method' "
                "(no empty parts between dots)"
            )
    found = _python_lookup(parsed, wanted) if parsed.language == "python" else None
    if found is None:
        _index(parsed)
        found = [parsed.items[i] for name in wanted for i in _lookup(parsed, name)]
    targets = sorted({id(it): it for it in found}.values(), key=lambda it: (it.ob, -it.oe))
    spans: list[tuple[int, int]] = []
    for it in targets:
        _rows(parsed, it)
        spans.append((_doc_start(parsed, it), it.end))
        spans.extend(_context(parsed, it.outer))
    spans.extend(_imports_for(parsed, spans))
    return _make_slice(parsed, spans, targets, path, line_numbers)


def slice_lines(
    source: str | bytes,
    line: int | Sequence[int],
    language: str | None = None,
    path: str | None = None,
    *,
    line_numbers: bool = True,
) -> Slice:
    """The smallest definition around each line (1-based), with the same context as
    :func:`slice_symbol`. A line outside every definition gives the top-level statement
    that holds it (or the line itself when it is blank or a comment).
    """
    parsed = _parse(source, language, path)
    wanted = [line] if isinstance(line, int) else list(line)
    if not wanted:
        raise SlicingError("no line given")
    n = len(parsed.lines)
    _index(parsed)
    _all_rows(parsed, docs=True)
    spans: list[tuple[int, int]] = []
    targets: list[int] = []
    for lineno in wanted:
        if not 1 <= lineno <= max(n, 1):
            raise SlicingError(f"line {lineno} is outside the file (lines 1-{n})")
        row = lineno - 1
        best = -1
        for i, it in enumerate(parsed.items):
            # the innermost wins: items are in source order, nested ones after their parent
            if (
                it.is_def
                and it.doc_start <= row <= it.end
                and (
                    best < 0
                    or it.end - it.doc_start
                    <= parsed.items[best].end - parsed.items[best].doc_start
                )
            ):
                best = i
        if best >= 0:
            if best not in targets:
                targets.append(best)
            it = parsed.items[best]
            spans.append((it.doc_start, it.end))
            spans.extend(_context(parsed, it.outer))
        else:
            spans.extend(_statement_at(parsed, row))
    targets.sort()
    spans.extend(_imports_for(parsed, spans))
    items = [parsed.items[i] for i in targets]
    return _make_slice(parsed, spans, items, path, line_numbers)


def outline(
    source: str | bytes,
    language: str | None = None,
    path: str | None = None,
    *,
    line_numbers: bool = True,
) -> Slice:
    """Every signature (classes, functions, methods, types) with the first line of its doc
    comment or docstring, bodies elided; like a repository map of one file.

    A multi-line Python docstring shows its first line of text and its closing line, so the
    outline (markers replaced by ``...``) still parses; outlining that again gives it back.
    """
    parsed = _parse(source, language, path)
    _index(parsed)
    _all_rows(parsed, docs=parsed.language != "python")  # Python: docstrings, not comments
    spans: list[tuple[int, int]] = []
    targets: list[_Item] = []
    for it in parsed.items:
        if it.is_def:
            targets.append(it)
        _docs(parsed, it)
        spans.append((it.start, it.head_end))
        spans.extend((r, r) for r in it.doc_rows)
        spans.extend(_context(parsed, it.outer, stop_at_item=True))
    return _make_slice(parsed, spans, targets, path, line_numbers)


# ---------------------------------------------------------------------------------------------
# parsing


def _resolve(language: str | None, path: str | None) -> str:
    supported = ", ".join(LANGUAGES)
    if language is not None:
        name = normalize_language(language)
        if name is None:
            raise UnknownLanguage(f"unknown language {language!r}; supported: {supported}")
        return name
    if path is None:
        raise UnknownLanguage(
            f"no language given: pass language= or a path with a known extension "
            f"(supported: {supported})"
        )
    name = language_for(path)
    if name is None:
        raise UnknownLanguage(
            f"cannot tell the language of {path!r} from its name; pass language= "
            f"(supported: {supported})"
        )
    return name


def _decode(source: str | bytes) -> tuple[bytes, str]:
    if isinstance(source, str):
        if "\x00" in source[:_BINARY_PROBE]:
            raise SlicingError("source looks binary (it holds NUL characters); not sliced")
        return source.encode("utf-8", "surrogatepass"), source
    if not isinstance(source, bytes | bytearray | memoryview):
        raise SlicingError(f"source must be str or bytes, not {type(source).__name__}")
    data = bytes(source)
    if b"\x00" in data[:_BINARY_PROBE]:
        raise SlicingError("source looks binary (it holds NUL bytes); not sliced")
    return data, data.decode("utf-8", "replace")


def _encoding_note(data: bytes) -> str | None:
    """What the slice should say when ``data`` is not UTF-8 (it is shown with U+FFFD)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (
            f"line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            f"bytes that do not decode are shown as U+FFFD"
        )
    return None


def _split_lines(text: str) -> list[str]:
    # Rows as tree-sitter counts them: split on "\n" only (not str.splitlines, which also
    # splits on form feeds and other separators that the parsers treat as whitespace).
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    if "\r" not in text:
        return lines
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _parse(source: str | bytes, language: str | None, path: str | None) -> _Parsed:
    name = _resolve(language, path)
    data, text = _decode(source)
    key = (hashlib.blake2b(data, digest_size=16).digest(), name)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    parsed = _build(data, text, name)
    with _LOCK:
        _CACHE[key] = parsed
        _CACHE.move_to_end(key)
        # (summed each time, at most CACHE_SIZE entries: stays right if _CACHE is cleared)
        held = sum(len(p.data) for p in _CACHE.values())
        while len(_CACHE) > 1 and (len(_CACHE) > CACHE_SIZE or held > CACHE_BYTES):
            _, old = _CACHE.popitem(last=False)
            held -= len(old.data)
    return parsed


def clear_cache() -> None:
    """Forget every parsed file (benchmarks use it to measure fresh parses)."""
    with _LOCK:
        _CACHE.clear()


def _build(data: bytes, text: str, language: str) -> _Parsed:
    try:
        loaded = load(language)
        from tree_sitter import Parser
    except Missing as exc:
        raise GrammarMissing(
            f"{language} slicing needs the {exc.package!r} package, which is not installed: "
            f"pip install {exc.package}  (or pip install 'tidyctx[code]' for every language)"
        ) from exc
    tree = Parser(loaded.language).parse(data)
    parsed = _Parsed(language, _split_lines(text), tree, data, loaded)
    if tree.root_node.has_error:
        _check_error_runs(tree.root_node, len(data), language)
        parsed.errors = _syntax_errors(tree.root_node)
    if "\ufffd" in text and (note := _encoding_note(data)) is not None:
        parsed.errors = (note, *parsed.errors)
    return parsed


_ERROR_RUN_WORK = 64
"""Per byte of source, the work a tree-sitter query may spend on the tokens of syntax errors."""


def _check_error_runs(root: Node, size: int, language: str) -> None:
    """Raise SlicingError when the syntax errors hold long runs of loose tokens.

    tree-sitter puts the tokens it cannot place (``- - - -``, ``!!!!``) side by side in an
    ERROR node, and its queries, for each token, look through the tokens after it for a named
    one: on a run of n of them, time quadratic in n (20,000 took seconds). Such a run is not
    code; the work is bounded by the sum of the squares of these runs.
    """
    work = worst = row = 0
    # A cursor walk (Node.children makes an object per child: several times slower) through
    # the nodes with errors; ``open`` holds, per node being walked, [is an ERROR node, the run
    # of unnamed tokens so far, its row].
    cursor = root.walk()
    open_: list[list[Any]] = []
    while True:
        node = cursor.node
        assert node is not None
        if open_ and open_[-1][0]:
            if node.is_named:
                work += open_[-1][1] ** 2
                if open_[-1][1] > worst:
                    worst, row = open_[-1][1], open_[-1][2]
                open_[-1][1] = 0
            else:
                open_[-1][1] += 1
        if node.has_error and cursor.goto_first_child():
            open_.append([node.is_error, 0, node.start_point.row])
            continue
        while not cursor.goto_next_sibling():
            if not open_:
                break
            _, run, at = open_.pop()
            work += run * run
            if run > worst:
                worst, row = run, at
            cursor.goto_parent()
        else:
            continue
        break
    if work > _ERROR_RUN_WORK * size + (1 << 24):
        raise SlicingError(
            f"{language} source does not parse: {worst:,} tokens in a row that fit no syntax, "
            f"from line {row + 1}; not sliced"
        )


def _syntax_errors(root: Node, limit: int = 3) -> tuple[str, ...]:
    found: list[str] = []
    stack = [root]
    while stack and len(found) < limit:
        node = stack.pop()
        if node.is_error or node.is_missing:
            what = f"missing {node.type!r}" if node.is_missing else "cannot parse"
            found.append(
                f"syntax error near line {node.start_point.row + 1} ({what}): sliced what parsed"
            )
            continue
        if node.has_error:
            stack.extend(reversed(node.children))
    return tuple(found) or ("syntax error: sliced what parsed",)


def _text(node: Node) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _end_row(
    node: Node,
    comments: tuple[str, ...],
    lines: list[str] | None = None,
    leaders: tuple[str, ...] = (),
) -> int:
    """Last row of real content: trailing comments (which tree-sitter-python puts inside a
    block) and a trailing newline (some tokens include it) do not count.

    Given the file's ``lines`` (of a tree without errors) and the comment ``leaders``: when
    the node's last row is neither blank nor starts like a comment, that row is the answer
    without walking down the tree (the walk costs microseconds per node in a large file).
    """
    start_row = node.start_point.row
    if lines is not None:
        p = node.end_point
        row = p.row - 1 if p.column == 0 and p.row > start_row else p.row
        text = lines[row].lstrip() if row < len(lines) else ""
        if text and not text.startswith(leaders):
            return row
    n: Node = node
    while n.child_count:
        i = n.child_count - 1
        child: Node | None = n.child(i)
        while child is not None and (child.type in comments or child.end_byte == child.start_byte):
            i -= 1
            child = n.child(i) if i >= 0 else None
        if child is None:
            break
        n = child
    p = n.end_point
    return p.row - 1 if p.column == 0 and p.row > start_row else p.row


# --- names ------------------------------------------------------------------------------------

_C_WRAPS = {
    "function_declarator",
    "pointer_declarator",
    "reference_declarator",
    "parenthesized_declarator",
    "attributed_declarator",
    "array_declarator",
}
_JS_FUNCS = {
    "arrow_function",
    "function_expression",
    "function",
    "generator_function",
    "class",
}


def _c_declarator(node: Node) -> tuple[Node | None, bool]:
    """The innermost declarator of a C/C++ declaration and whether it declares a function."""
    d = node.child_by_field_name("declarator")
    is_func = False
    while d is not None and d.type in _C_WRAPS:
        is_func = is_func or d.type == "function_declarator"
        nxt = d.child_by_field_name("declarator")
        if nxt is None:
            nxt = next((c for c in d.named_children if c.type != "type_qualifier"), None)
        d = nxt
    return d, is_func


def _base_name(node: Node | None) -> str:
    """``Foo`` for ``Foo``, ``Foo<T>``, ``&mut Foo<T>``, ``a::b::Foo``."""
    if node is None:
        return ""
    text = _text(node)
    text = re.sub(r"[<\[].*", "", text, flags=re.S)
    text = text.replace("&", "").replace("*", "").replace("mut ", "").strip()
    return re.split(r"::|\.", text)[-1].strip() if text else ""


def _describe(node: Node, language: str) -> tuple[str, str, list[str]] | None:
    """(kind, name, qualifier parts) of a definition node, or None if it is not one."""
    spec = SPECS[language]
    t = node.type
    kind = spec.defs[t]
    if language in ("c", "cpp") and t in (
        "function_definition",
        "declaration",
        "field_declaration",
    ):
        decl, is_func = _c_declarator(node)
        if decl is None or not is_func:
            return None
        if (
            t == "declaration"
            and node.parent is not None
            and node.parent.type in ("compound_statement",)
        ):
            return None
        if decl.type == "qualified_identifier":
            parts = [p for p in re.split(r"::", re.sub(r"<[^<>]*>", "", _text(decl))) if p]
            parts = [p.strip() for p in parts]
            return ("method" if len(parts) > 1 else kind), parts[-1], parts[:-1]
        return kind, _text(decl), []
    if t in ("struct_specifier", "union_specifier", "enum_specifier", "class_specifier"):
        if node.child_by_field_name("body") is None:
            return None
        if node.parent is not None and node.parent.type == "type_definition":
            return None  # the typedef is the definition
        return kind, _base_name(node.child_by_field_name("name")), []
    if t == "type_definition":
        decl = node.child_by_field_name("declarator")
        while decl is not None and decl.type in _C_WRAPS:
            decl = decl.child_by_field_name("declarator")
        inner = node.child_by_field_name("type")
        if inner is not None and inner.child_by_field_name("body") is not None:
            kind = {"enum_specifier": "enum"}.get(inner.type, "struct")
        return kind, _text(decl) if decl is not None else "", []
    if t in ("lexical_declaration", "variable_declaration"):
        decls = [c for c in node.named_children if c.type == "variable_declarator"]
        if len(decls) != 1:
            return None
        value = decls[0].child_by_field_name("value")
        if value is None or value.type not in _JS_FUNCS:
            return None
        return (
            ("class" if value.type == "class" else kind),
            _text(decls[0].child_by_field_name("name") or decls[0]),
            [],
        )
    if t in ("field_definition", "public_field_definition"):
        value = node.child_by_field_name("value")
        if value is None or value.type not in _JS_FUNCS:
            return None
        name_node = node.child_by_field_name("property") or node.child_by_field_name("name")
        return kind, _text(name_node) if name_node is not None else "", []
    if t == "method_definition" and node.parent is not None and node.parent.type != "class_body":
        return None  # an object literal's method
    if t == "method_declaration" and language == "go":
        receiver = node.child_by_field_name("receiver")
        rtype = None
        if receiver is not None:
            for param in receiver.named_children:
                rtype = param.child_by_field_name("type")
        return kind, _text(node.child_by_field_name("name") or node), [_base_name(rtype)]
    if t in ("type_spec", "type_alias"):
        inner = node.child_by_field_name("type")
        if inner is not None and t == "type_spec":
            kind = {"struct_type": "struct", "interface_type": "interface"}.get(inner.type, kind)
    name_node = node.child_by_field_name("name")
    name = _text(name_node) if name_node is not None else ""
    if "<" in name:
        name = name.split("<", 1)[0]
    return kind, name, []


def _body(node: Node, data: bytes) -> tuple[Node | None, bool]:
    """(body node, whether the header ends on the body's first row)."""
    t = node.type
    body = node.child_by_field_name("body")
    if body is None:
        if t in ("type_spec", "type_definition"):
            inner = node.child_by_field_name("type")
            if inner is not None and inner.type in ("struct_type", "interface_type"):
                return inner, True
            if inner is not None:
                inner_body = inner.child_by_field_name("body")
                if inner_body is not None:
                    return inner_body, True
        elif t in ("lexical_declaration", "variable_declaration"):
            decl = next(c for c in node.named_children if c.type == "variable_declarator")
            value = decl.child_by_field_name("value")
            if value is not None:
                return _body(value, data)
        elif t in ("field_definition", "public_field_definition"):
            value = node.child_by_field_name("value")
            if value is not None:
                return _body(value, data)
        elif t == "property_declaration":
            body = node.child_by_field_name("accessors")
        if body is None:
            return None, False
    return body, data[body.start_byte : body.start_byte + 1] == b"{"


def _head_end(
    node: Node, body: Node | None, brace: bool, end: int, comments: tuple[str, ...]
) -> int:
    start = node.start_point.row
    if body is None:
        return end if end - start <= 2 else start
    if brace:
        return body.start_point.row
    # the node's own children (a few) when the body is one of them: cheaper than prev_sibling
    kids = node.children
    at = next((i for i, c in enumerate(kids) if c.id == body.id), -1)
    if at >= 0:
        before = [c for c in kids[:at] if c.type not in comments]
        prev = before[-1] if before else None
    else:
        prev = body.prev_sibling
        while prev is not None and prev.type in comments:
            prev = prev.prev_sibling
    if prev is None:
        return start
    p = prev.end_point
    return max(start, p.row - 1 if p.column == 0 and p.row > start else p.row)


_COMMENT_MARKS = re.compile(r"^\s*(?:/\*\*+|/\*!?|///?!?|#+|\*+/?|<!--)\s?")


def _doc_line(text: str) -> tuple[int, str]:
    """(index of the first line with words, that line) of a comment's text."""
    for i, line in enumerate(text.split("\n")):
        clean = _COMMENT_MARKS.sub("", line)
        clean = re.sub(r"\*+/\s*$", "", clean)
        clean = re.sub(r"</?\w+[^>]*>", "", clean).strip()
        if clean:
            return i, clean[:_DOC_CHARS]
    return 0, ""


def _docstring(node: Node, comments: tuple[str, ...]) -> Node | None:
    body = node.child_by_field_name("body")
    if body is None:
        return None
    first = next((c for c in body.named_children if c.type not in comments), None)
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    string = first.named_children[0]
    return string if string.type == "string" else None


def _collapse(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"([(\[]) ", r"\1", text)
    text = re.sub(r" ([)\],])", r"\1", text)
    return text if len(text) <= _SIG_CHARS else text[: _SIG_CHARS - 1] + "…"


def _may_be_wrapped(node: Node, wrapper_ends: set[int], data: bytes) -> bool:
    """Whether a captured wrapper (``export``, decorators, ``template<>``) ends where ``node``
    does, give or take whitespace and a ``;``: a wrapper ends with what it wraps."""
    if not wrapper_ends:
        return False
    j = node.end_byte
    while True:
        if j in wrapper_ends:
            return True
        if j >= len(data) or data[j] not in b" \t\r\n;":
            return False
        j += 1


def _index(parsed: _Parsed) -> None:
    """Index every definition (one query over the whole tree), once."""
    if parsed.indexed:
        return
    from tree_sitter import QueryCursor

    captures = QueryCursor(parsed.loaded.query).captures(parsed.tree.root_node)
    parsed.import_nodes = captures.get("import", [])
    _index_items(
        parsed, captures.get("item", []), {w.end_byte for w in captures.get("wrapper", [])}
    )
    parsed.indexed = True


def _index_items(parsed: _Parsed, nodes: list[Node], wrapper_ends: set[int]) -> None:
    # Node.parent and Node.prev_named_sibling cost microseconds each in a large file (the
    # tree has no parent links): they are called only where a wrapper, a prefix or a Go type
    # group can be, which keeps indexing a 10 MB file in seconds.
    spec, data, language = parsed.spec, parsed.data, parsed.language
    items: list[_Item] = []
    for node in nodes:
        t = node.type
        if t in spec.scopes:
            if node.child_by_field_name("body") is None:
                continue
            kind = "impl" if t in spec.named_scopes else "scope"
            name = _base_name(node.child_by_field_name("type")) if kind == "impl" else ""
            it = _Item(node, node, kind, name, False)
            it.prefix = name
        else:
            described = _describe(node, language)
            if described is None:
                continue
            kind, name, quals = described
            outer = node
            while _may_be_wrapped(outer, wrapper_ends, data):
                up_node = outer.parent
                if up_node is None or up_node.type not in spec.wrappers:
                    break
                outer = up_node
            decl = node.parent if t in ("type_spec", "type_alias") else None
            if (
                decl is not None
                and decl.type == "type_declaration"
                and sum(1 for c in decl.named_children if c.type in spec.defs) == 1
            ):
                outer = decl
            it = _Item(node, outer, kind, name, True)
            it.prefix = ".".join([*quals, name]) if quals else name
        items.append(it)
    items.sort(key=lambda it: (it.ob, -it.oe))

    stack: list[int] = []
    seen: dict[str, int] = {}
    class_names = {it.name for it in items if it.kind in CLASSLIKE}
    by_node: dict[int, int] = {}
    by_qualname: dict[str, list[int]] = {}
    by_key: dict[str, int] = {}
    for idx, it in enumerate(items):
        ob = it.ob
        while stack and items[stack[-1]].oe <= ob:
            stack.pop()
        it.parent = stack[-1] if stack else -1
        up = items[it.parent] if it.parent >= 0 else None
        # unnamed scopes (namespaces) add nothing: their qualname is their parent's
        if up is None or not up.qualname:
            it.qualname = it.prefix
        else:
            it.qualname = f"{up.qualname}.{it.prefix}" if it.prefix else up.qualname
        member = up is not None and (
            up.kind in CLASSLIKE or (language == "ruby" and up.kind == "module")
        )
        if it.is_def and it.kind == "function" and member:
            it.kind = "method"
        elif it.is_def and it.kind == "method" and up is None and language in ("c", "cpp"):
            owner = it.prefix.rsplit(".", 2)[-2] if "." in it.prefix else ""
            if owner not in class_names:  # ns::f() defines a function, A::f() a method
                it.kind = "function"
        stack.append(idx)
        by_node[it.node.id] = idx
        by_node[it.outer.id] = idx
        if not it.is_def:
            continue
        count = seen.get(it.qualname, 0) + 1
        seen[it.qualname] = count
        it.key = it.qualname if count == 1 else f"{it.qualname}#{count}"
        by_qualname.setdefault(it.qualname, []).append(idx)
        by_key[it.key] = idx
    parsed.by_node, parsed.by_qualname, parsed.by_key = by_node, by_qualname, by_key
    parsed.items = items


def _all_rows(parsed: _Parsed, docs: bool = False) -> None:
    """:func:`_rows` (and with ``docs``, :func:`_doc_start`) of every item."""
    if docs and parsed.comments_by_row is None and any(it.doc_start < 0 for it in parsed.items):
        from tree_sitter import QueryCursor

        own: dict[int, Node] = {}
        cursor = QueryCursor(parsed.loaded.comments)
        for c in cursor.captures(parsed.tree.root_node).get("comment", []):
            ep = c.end_point
            own[ep.row - 1 if ep.column == 0 else ep.row] = c
        parsed.comments_by_row = own
    for it in parsed.items:
        if not it.rows_done:
            _rows(parsed, it)
        if docs and it.doc_start < 0:
            _doc_start(parsed, it)


def _rows(parsed: _Parsed, it: _Item) -> _Item:
    """Fill an item's rows: decorators/attributes before, content end, header, footer."""
    if it.rows_done:
        return it
    spec, lines, node, outer = parsed.spec, parsed.lines, it.node, it.outer
    start = outer.start_point.row
    prev: Node | None = outer.prev_named_sibling if spec.prefixes else None
    while prev is not None and (prev.type in spec.prefixes or prev.type in spec.comments):
        if prev.type in spec.prefixes:
            start = prev.start_point.row
        prev = prev.prev_named_sibling
    end = max(start, _end_row(node, spec.comments, parsed.fast_lines, spec.comment_leaders))
    body, brace = _body(node, parsed.data)
    head_end = max(start, _head_end(node, body, brace, end, spec.comments))
    foot = -1
    if body is not None and end > head_end:
        last = lines[end].strip() if end < len(lines) else ""
        if last.startswith("}") if spec.braces else last == "end" and parsed.language == "ruby":
            foot = end
    it.start, it.end, it.body, it.head_end, it.foot = start, end, body, head_end, foot
    it.rows_done = True
    return it


def _doc_start(parsed: _Parsed, it: _Item) -> int:
    """First row of the doc comment above an item (its start row when it has none): the run
    of comments just above it, each on its own line(s) at the item's indentation."""
    if it.doc_start >= 0:
        return it.doc_start
    lines = parsed.lines
    start = _rows(parsed, it).start
    indent = len(lines[start]) - len(lines[start].lstrip()) if start < len(lines) else 0
    doc_start = start
    while (com := _comment_ending_at(parsed, doc_start - 1)) is not None:
        sp = com.start_point
        line = lines[sp.row]
        if sp.column != indent or len(line) - len(line.lstrip()) != indent:
            break
        doc_start = sp.row
    it.doc_start = doc_start
    return doc_start


def _comment_ending_at(parsed: _Parsed, row: int) -> Node | None:
    """The last comment whose content ends on ``row`` (a comment token that takes the
    newline ends on the next row, column 0), or None."""
    if row < 0:
        return None
    own = parsed.comments_by_row
    if own is not None:
        return own.get(row)
    line = parsed.lines[row] if row < len(parsed.lines) else ""
    if not line.strip():  # (every comment holds a visible character on its last row)
        return None
    from tree_sitter import QueryCursor

    cursor = QueryCursor(parsed.loaded.comments)
    cursor.set_point_range((row, 0), (row + 1, 1))
    found = None
    for c in cursor.captures(parsed.tree.root_node).get("comment", []):
        ep = c.end_point
        if (ep.row - 1 if ep.column == 0 else ep.row) == row:
            found = c
    return found


def _details(parsed: _Parsed, it: _Item) -> _Item:
    """Fill an item's signature (and its doc line, :func:`_docs`), computed on demand."""
    if it.done:
        return it
    _docs(parsed, it)
    node, body = it.node, it.body
    sig_end = body.start_byte if body is not None else node.end_byte
    if body is not None and not parsed.spec.braces:
        # Python, Ruby: the header rows (a Ruby body starts after any comments)
        sig_end = parsed.data.find(b"\n", node.start_byte, body.start_byte)
        sig_end = body.start_byte if sig_end < 0 or parsed.language == "python" else sig_end
    sig = parsed.data[node.start_byte : sig_end].decode("utf-8", "replace")
    if body is None and it.end - node.start_point.row > 2:
        sig = sig.split("\n", 1)[0]
    if node.type == "type_spec":
        sig = _text(node).split("{", 1)[0]
        sig = sig if it.outer is node else "type " + sig
    it.sig = _collapse(sig).rstrip(":{ =").rstrip()
    it.done = True  # last: another thread may read the item meanwhile (it then recomputes)
    return it


def _docs(parsed: _Parsed, it: _Item) -> _Item:
    """Fill an item's doc line and the rows of it an outline shows (and its rows)."""
    if it.docs_done:
        return it
    _rows(parsed, it)
    lines, node = parsed.lines, it.node
    if parsed.language == "python":
        ds = _docstring(node, parsed.spec.comments)
        if ds is not None:
            row0 = ds.start_point.row
            i, it.doc = _doc_line(_strip_quotes(_text(ds)))
            last_row = _end_row(ds, ())
            doc_rows = tuple(range(row0, min(row0 + i, last_row) + 1))
            if last_row > doc_rows[-1]:
                doc_rows += (last_row,)
            it.doc_rows = doc_rows
    elif (doc_start := _doc_start(parsed, it)) < it.start:
        i, it.doc = _doc_line("\n".join(lines[doc_start : it.start]))
        rows = tuple(range(doc_start, doc_start + i + 1))
        if lines[it.start - 1].strip() in ("*/", "**/") and it.start - 1 > rows[-1]:
            rows += (it.start - 1,)
        it.doc_rows = rows
    it.docs_done = True
    return it


def _strip_quotes(text: str) -> str:
    text = text.lstrip("rRuUbBfF")
    for q in ('"""', "'''", '"', "'"):
        if text.startswith(q):
            text = text[len(q) :]
            if text.endswith(q):
                text = text[: -len(q)]
            break
    return text


# --- imports -----------------------------------------------------------------------------------

_KEYWORDS = frozenset(
    [
        "import",
        "from",
        "as",
        "use",
        "using",
        "static",
        "type",
        "typeof",
        "package",
        "namespace",
        "func",
        "require",
        "include",
        "extern",
        "crate",
        "self",
        "super",
        "mod",
        "pub",
        "global",
        "const",
        "function",
        "default",
        "export",
        "let",
        "var",
        "in",
    ]
)
# The rest of a string after its opening quote, up to the closing one if it has one.
_STRING_REST = {
    '"': re.compile(r'(?:\\.|[^"\\])*+'),
    "'": re.compile(r"(?:\\.|[^'\\])*+"),
    "`": re.compile(r"[^`]*+"),
}
_QUOTE = re.compile(r"[\"'`]")
_BOUND = re.compile(r"[A-Za-z_$][\w$]*(?!\s*(?:\.|::|\\|/))")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")


def _without_strings(text: str) -> str:
    """``text`` with each quoted string (``"..."``, ``'...'``, ```...```) replaced by a space.

    Linear: a string that does not close runs to the end of the text (or to a backslash at
    the end of a line), and every later quote of its kind inside that is escaped, so it cannot
    close one either: they are not tried again (a pattern would rescan from each).

    >>> _without_strings("import a from './b'; y = `c`")
    'import a from  ; y =  '
    """
    out: list[str] = []
    done = pos = 0
    unclosed = {'"': -1, "'": -1, "`": -1}
    while (m := _QUOTE.search(text, pos)) is not None:
        start, quote = m.start(), m.group()
        if start < unclosed[quote]:
            pos = start + 1
            continue
        rest = _STRING_REST[quote].match(text, start + 1)
        end = rest.end() if rest is not None else start + 1
        if not text.startswith(quote, end):
            unclosed[quote] = end
            pos = start + 1
            continue
        out.append(text[done:start])
        out.append(" ")
        done = pos = end + 1
    out.append(text[done:])
    return "".join(out)


def _python_import_names(node: Node) -> set[str]:
    names: set[str] = set()
    for child in node.children_by_field_name("name"):
        if child.type == "aliased_import":
            alias = child.child_by_field_name("alias")
            if alias is not None:
                names.add(_text(alias))
        elif node.type == "import_statement":
            names.add(_text(child).split(".", 1)[0].strip())
        else:
            names.add(_text(child).rsplit(".", 1)[-1].strip())
    return names


def _import_rows(parsed: _Parsed) -> list[tuple[tuple[tuple[int, int], ...], frozenset[str]]]:
    """Each import's rows and the names it binds (computed when first needed)."""
    if parsed.imports is not None:
        return parsed.imports
    from tree_sitter import QueryCursor

    spec, language = parsed.spec, parsed.language
    imports: list[tuple[tuple[tuple[int, int], ...], frozenset[str]]] = []
    nodes = parsed.import_nodes
    root = parsed.tree.root_node
    if parsed.loaded.imports is not None and root.type == "module":  # Python
        # only the module's own statements: a query that starts no deeper than its children
        cursor = QueryCursor(parsed.loaded.imports)
        cursor.set_max_start_depth(1)
        nodes = [n for n in cursor.captures(root).get("import", []) if n.id != root.id]
    walker = _Walker(root, frozenset(spec.defs))
    for node in nodes:
        if language != "python":
            k = walker.find(node)
            if k > 0 and walker.counts[k - 1]:  # inside a definition
                continue
            if k < 0 and any(n.type in spec.defs for n in _ancestors(root, node)):
                continue
        first, last = node.start_point.row, _end_row(node, spec.comments)
        if language == "python":
            imports.append((((first, last),), frozenset(_python_import_names(node))))
            continue
        if language == "go":
            specs = [s for s in _descendants(node, "import_spec")]
            for s in specs:
                alias = s.child_by_field_name("name")
                path = s.child_by_field_name("path")
                if alias is not None:
                    name = _text(alias)
                else:  # the last element of the import path
                    name = _text(path).strip('"`').rsplit("/")[-1] if path is not None else ""
                srow, erow = s.start_point.row, _end_row(s, spec.comments)
                rows = ((first, first), (srow, erow), (last, last))
                imports.append((rows, frozenset({name})))
            continue
        bare = _without_strings(_text(node))
        names = {m for m in _BOUND.findall(bare) if m not in _KEYWORDS}
        imports.append((((first, last),), frozenset(names)))
    parsed.imports = imports
    return imports


def _descendants(node: Node, type_name: str) -> list[Node]:
    out: list[Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == type_name:
            out.append(n)
            continue
        stack.extend(reversed(n.named_children))
    return out


def _imports_for(parsed: _Parsed, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    imports = _import_rows(parsed)
    if not imports:
        return []
    lines = parsed.lines
    words: set[str] = set()
    for a, b in _merge(spans):
        words.update(_IDENT.findall("\n".join(lines[max(a, 0) : b + 1])))
    out: list[tuple[int, int]] = []
    for rows, names in imports:
        if names & words:
            out.extend(rows)
    return out


# --- lookup ------------------------------------------------------------------------------------


def _normalize_symbol(symbol: str) -> str:
    s = symbol.strip().replace("::", ".")
    s = re.sub(r"#(?!\d+$)", ".", s)
    s = re.sub(r"\(.*\)$", "", s)  # "f()" as written in prose
    return s.strip(".")


def _lookup(parsed: _Parsed, symbol: str) -> list[int]:
    if not isinstance(symbol, str) or not symbol.strip():
        raise SlicingError(f"symbol must be a non-empty string, not {symbol!r}")
    name = _normalize_symbol(symbol)
    if name in parsed.by_key and "#" in name:
        return [parsed.by_key[name]]
    if name in parsed.by_qualname:
        return list(parsed.by_qualname[name])
    tail = "." + name
    hits = sorted(q for q in parsed.by_qualname if q.endswith(tail))
    if len(hits) == 1:
        return list(parsed.by_qualname[hits[0]])
    if hits:
        raise AmbiguousSymbol(
            symbol,
            hits,
            f"{symbol!r} matches {len(hits)} definitions: {', '.join(hits[:10])}; "
            "pass the qualified name",
        )
    names = list(parsed.by_qualname)
    pool = names + sorted({q.rsplit(".", 1)[-1] for q in names})
    close = difflib.get_close_matches(name, pool, n=5, cutoff=0.6)
    lower = name.lower()
    close += [q for q in names if lower in q.lower() and q not in close][: 5 - len(close)]
    matches: list[str] = []
    for c in close:  # a bare name suggestion is shown as its qualname(s)
        full = [c] if c in parsed.by_qualname else [q for q in names if q.endswith("." + c)]
        for q in full:
            if q not in matches:
                matches.append(q)
    hint = f"; close matches: {', '.join(matches)}" if matches else ""
    if not names:
        hint = "; the file defines nothing"
    raise SymbolNotFound(symbol, matches, f"no definition named {symbol!r}{hint}")


def _python_lookup(parsed: _Parsed, wanted: list[str]) -> list[_Item] | None:
    """Python definitions for ``wanted`` without indexing the file: the definitions whose
    name is each symbol's last part, found by searching the source for that name; None when
    a symbol is not a plain, unambiguous name here (then :func:`_lookup` decides, with the
    full index, and raises the errors)."""
    out: list[_Item] = []
    for symbol in wanted:
        if not isinstance(symbol, str):
            return None
        name = _normalize_symbol(symbol)
        qual, sep, _ = name.rpartition("#") if "#" in name else (name, "", "")
        last = qual.rsplit(".", 1)[-1]
        if not last.isidentifier():
            return None
        found = _python_defs_named(parsed, last)
        if found is None:
            return None
        if sep:
            hit = [it for it in found if it.key == name]
        else:
            hit = [it for it in found if it.qualname == name]
            if not hit:
                tail = "." + name
                quals = {it.qualname for it in found if it.qualname.endswith(tail)}
                hit = [it for it in found if it.qualname in quals] if len(quals) == 1 else []
        if not hit:
            return None
        out.extend(hit)
    return out


_WORD_BYTES = frozenset(
    bytes([c]) for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
)


_MAX_PLACES = 1_000
"""A name found more often than this in a file is looked up in the full index (one query
over the tree) rather than at each place."""


def _python_defs_named(parsed: _Parsed, name: str) -> list[_Item] | None:
    """Every Python definition called ``name``, in source order, keyed as the index would;
    None when the name is found in too many places for this to be the fast way."""
    data, root, defs = parsed.data, parsed.tree.root_node, parsed.spec.defs
    word = name.encode("utf-8", "surrogatepass")
    if data.count(word) > _MAX_PLACES:
        return None
    found: list[_Item] = []
    walker = _Walker(root)  # (a search from the root at each place: quadratic in the depth)
    a = data.find(word)
    while a >= 0:  # (bytes.find is much faster than a regular expression here)
        b = a + len(word)
        nxt = data.find(word, b)
        if (a and data[a - 1 : a] in _WORD_BYTES) or data[b : b + 1] in _WORD_BYTES:
            a = nxt
            continue
        node = walker.to(a, b)
        a = nxt
        if node.end_byte != b or node.start_byte != b - len(word) or not node.is_named:
            continue
        up = walker.path[-2] if len(walker.path) > 1 else None
        if up is None or up.type not in defs:
            continue
        own = up.child_by_field_name("name")
        if own is not None and own.end_byte == b and own.start_byte == node.start_byte:
            found.append(_python_item(parsed, up))
    found.sort(key=lambda it: (it.ob, -it.oe))
    seen: dict[str, int] = {}
    for it in found:
        count = seen.get(it.qualname, 0) + 1
        seen[it.qualname] = count
        it.key = it.qualname if count == 1 else f"{it.qualname}#{count}"
    return found


class _Walker:
    """A tree-sitter cursor that moves from place to place in source order and keeps the nodes
    from the root down to where it is (``path``), with how many of them are of the
    ``counted`` types (``counts``).

    ``Node.parent`` and ``descendant_for_byte_range`` search down from the root, in time linear
    in the depth: called at each of many places of a deeply nested file, they take time
    quadratic in its size. The walker goes up from where it is to a node that holds the next
    place, then down: over places in source order, each node is entered once."""

    def __init__(self, root: Node, counted: frozenset[str] = frozenset()) -> None:
        self.cursor = root.walk()
        self.path = [root]
        self.counted = counted
        self.counts = [int(root.type in counted)]

    def to(self, a: int, b: int) -> Node:
        """The smallest node that holds bytes ``a`` to ``b`` (as ``descendant_for_byte_range``)."""
        cursor, path, counts = self.cursor, self.path, self.counts
        while len(path) > 1 and not (path[-1].start_byte <= a and b <= path[-1].end_byte):
            cursor.goto_parent()
            path.pop()
            counts.pop()
        while cursor.goto_first_child_for_byte(a) is not None:
            child = cursor.node
            assert child is not None
            if not (child.start_byte <= a and b <= child.end_byte):
                cursor.goto_parent()
                break
            path.append(child)
            counts.append(counts[-1] + (child.type in self.counted))
        return path[-1]

    def find(self, node: Node) -> int:
        """Where ``node`` is in ``path`` after :meth:`to` its bytes (-1: not there, for a node
        of zero width)."""
        self.to(node.start_byte, node.end_byte)
        for k in range(len(self.path) - 1, -1, -1):
            if self.path[k].id == node.id:
                return k
            if self.path[k].start_byte != node.start_byte:  # above it: not on the path
                break
        return -1


def _ancestors(root: Node, node: Node) -> list[Node]:
    """The nodes that hold ``node``, its parent first and the root last (walking up with
    ``Node.parent`` takes time quadratic in the depth: see :class:`_Walker`)."""
    walker = _Walker(root)
    k = walker.find(node)
    if k >= 0:
        return walker.path[k - 1 :: -1] if k else []
    out: list[Node] = []  # a node of zero width: walk up from it
    up = node.parent
    while up is not None:
        out.append(up)
        up = up.parent
    return out


def _path_to_point(root: Node, point: tuple[int, int]) -> list[Node]:
    """The nodes from the root down to the smallest one that holds ``point`` (as
    ``descendant_for_point_range(point, point)``), the root first."""
    path = [root]
    cursor = root.walk()
    while cursor.goto_first_child_for_point(point) is not None:
        child = cursor.node
        assert child is not None
        if child.start_point > point:
            break
        path.append(child)
    return path


def _python_item(parsed: _Parsed, node: Node) -> _Item:
    """The item of one Python definition node, as :func:`_index_items` makes it (but its
    ``key`` and ``parent``), found through its ancestors."""
    it = parsed.found.get(node.id)
    if it is not None:
        return it
    spec = parsed.spec
    outer = node
    up = node.parent
    if (
        up is not None
        and up.type in spec.wrappers
        and _may_be_wrapped(node, {up.end_byte}, parsed.data)
    ):
        outer = up
    anc = next((n for n in _ancestors(parsed.tree.root_node, outer) if n.type in spec.defs), None)
    owner = _python_item(parsed, anc) if anc is not None else None
    kind, name, _ = _describe(node, "python") or ("function", "", [])
    it = _Item(node, outer, kind, name, True)
    it.prefix = name
    if owner is None or not owner.qualname:
        it.qualname = name
    else:
        it.qualname = f"{owner.qualname}.{name}" if name else owner.qualname
    if kind == "function" and owner is not None and owner.kind in CLASSLIKE:
        it.kind = "method"
    parsed.found[node.id] = it
    parsed.found[outer.id] = it
    return it


def _item_at(parsed: _Parsed, node: Node) -> _Item | None:
    """The item whose node or outer node is ``node``, if any."""
    if parsed.indexed:
        idx = parsed.by_node.get(node.id)
        return parsed.items[idx] if idx is not None else None
    # not indexed: a Python slice found by name (_python_lookup)
    it = parsed.found.get(node.id)
    if it is not None:
        return it
    if node.type in parsed.spec.defs:
        return _python_item(parsed, node)
    if node.type in parsed.spec.wrappers:
        inner = node.child_by_field_name("definition")
        if inner is not None and inner.type in parsed.spec.defs:
            it = _python_item(parsed, inner)
            return it if it.outer.id == node.id else None
    return None


# --- context and rendering -----------------------------------------------------------------------


def _context(parsed: _Parsed, outer: Node, stop_at_item: bool = False) -> list[tuple[int, int]]:
    """Header (and footer) rows of what encloses a definition or statement."""
    spec = parsed.spec
    out: list[tuple[int, int]] = []
    child = outer
    for node in _ancestors(parsed.tree.root_node, outer):
        it = _item_at(parsed, node)
        if it is not None:
            if it.node.id == node.id or it.outer.id == node.id:
                if stop_at_item:
                    break
                _rows(parsed, it)
                out.append((it.start, it.head_end))
                if it.foot >= 0:
                    out.append((it.foot, it.foot))
        elif node.type in spec.contexts:
            out.append((node.start_point.row, _block_header_end(node)))
            if node.type == "try_statement" and child.type not in (
                "except_clause",
                "except_group_clause",
                "finally_clause",
            ):
                handler = next(
                    (
                        c
                        for c in node.named_children
                        if c.type in ("except_clause", "except_group_clause", "finally_clause")
                    ),
                    None,
                )
                if handler is not None:
                    out.append((handler.start_point.row, _block_header_end(handler)))
        child = node
    return out


def _block_header_end(node: Node) -> int:
    """Row of the ``:`` that ends a Python compound statement's header."""
    prev = None
    for c in node.children:
        if c.type == "block":
            break
        prev = c
    return prev.end_point.row if prev is not None else node.start_point.row


def _statement_at(parsed: _Parsed, row: int) -> list[tuple[int, int]]:
    line = parsed.lines[row]
    col = len(line.encode("utf-8", "surrogatepass")) - len(
        line.lstrip().encode("utf-8", "surrogatepass")
    )
    root = parsed.tree.root_node
    path = _path_to_point(root, (row, col))
    node = path[-1]
    if node.id == root.id or (not line.strip() and not _in_string(node, row)):
        return [(row, row)]
    # up while the parent is not the root, to the child of a definition
    k = len(path) - 1
    while k >= 2 and path[k - 2].id not in parsed.by_node:
        k -= 1
    node = path[k]
    out = [(node.start_point.row, _end_row(node, parsed.spec.comments))]
    out.extend(_context(parsed, node))
    return out


def _in_string(node: Node, row: int) -> bool:
    """Whether ``row`` lies inside a multi-line string (or heredoc) at ``node``: a blank line
    there is part of the string's statement, not a line of its own."""
    n: Node | None = node
    for _ in range(3):  # string content -> string (-> a concatenation)
        if n is None:
            return False
        if ("string" in n.type or "heredoc" in n.type) and n.start_point.row < row:
            return row <= n.end_point.row
        n = n.parent
    return False


_PY_CLAUSES = frozenset(
    {
        "elif_clause",
        "else_clause",
        "except_clause",
        "except_group_clause",
        "finally_clause",
        "case_clause",
    }
)


_PY_CLAUSE_WORDS = ("elif", "else", "except", "finally", "case")


def _python_marker_indent(
    parsed: _Parsed, a: int, b: int, indent: str, merged: list[tuple[int, int]], gap: int
) -> str | None:
    """The indentation for a marker over hidden rows ``a..b`` (0-based), the ``gap``-th gap
    between the ``merged`` shown ranges, such that ``...`` there still parses.

    The marker stands for the first hidden statement, or for the outermost compound statement
    around it whose header an earlier marker already hid: its indentation. When that is a
    clause (``elif``, ``else``, ``except``, ``finally``, ``case``), or when the gap holds only
    comments and the next shown row opens a clause, ``...`` at the clause's depth would split
    its ``if``/``try``/``match`` chain; the marker goes into the body before the clause
    instead. None when no indentation works (that body shares its header's line, as in
    ``if x: pass``): the caller shows the gap.
    """
    lines = parsed.lines
    inner = 0 < gap < len(merged)
    first = next(
        (r for r in range(a, b + 1) if (t := lines[r].strip()) and not t.startswith("#")), -1
    )
    if first < 0:
        if not inner:
            return indent
        first = b + 1  # comments only: the next shown row decides
    line = lines[first]
    above = lines[a - 1].lstrip() if a > 0 else "x"
    if not line.lstrip().startswith(_PY_CLAUSE_WORDS) and above and above[0] != "#":
        # Fast path: no clause, and the row above is code, so every block around the first
        # hidden row has its header shown (context headers come with any shown code row).
        return indent
    col = len(line) - len(line.lstrip())
    point = (first, len(line[:col].encode("utf-8", "surrogatepass")))
    starts = [r0 for r0, _ in merged]
    stand_in: Node | None = None
    for node in reversed(_path_to_point(parsed.tree.root_node, point)[1:]):  # not the root
        row = node.start_point.row
        if node.start_point == point:
            stand_in = node
        elif row < a and node.type != "block":
            k = bisect.bisect_right(starts, row) - 1
            if k < 0 or merged[k][1] < row:  # its header is hidden (by an earlier marker)
                stand_in = node
    if stand_in is None:
        return indent
    if stand_in.type not in _PY_CLAUSES:
        head = lines[stand_in.start_point.row]
        return head[: len(head) - len(head.lstrip())]
    # the body before the clause: the previous sibling block, or the previous clause's block
    prev = stand_in.prev_named_sibling
    while prev is not None and prev.type == "comment":
        prev = prev.prev_named_sibling
    block = prev if prev is None or prev.type == "block" else None
    if prev is not None and block is None:
        block = next((c for c in reversed(prev.children) if c.type == "block"), None)
    if block is not None:
        lead_line = lines[block.start_point.row]
        lead = lead_line[: len(lead_line) - len(lead_line.lstrip())]
        if len(lead.encode("utf-8", "surrogatepass")) == block.start_point.column:
            return lead
    # no body line to stand in (`if x: pass`, or the first `case`)
    return None if inner else indent


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + 1:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _make_slice(
    parsed: _Parsed,
    spans: list[tuple[int, int]],
    targets: list[_Item],
    path: str | None,
    line_numbers: bool,
) -> Slice:
    lines = parsed.lines
    n = len(lines)
    clipped = [(max(a, 0), min(b, n - 1)) for a, b in spans if a <= b and a < n]
    leaders = parsed.spec.comment_leaders

    def shown_instead(a: int, b: int) -> bool:
        # A hidden run of one line is shown instead: a marker would take as much room. So is
        # a short run of blank and comment lines (no code, so a marker there could not take
        # a code line's indentation; in Python a marker at the wrong depth could split an
        # if/elif chain).
        if b <= a:
            return True
        if b - a >= 3:
            return False
        return all(not (t := lines[r].strip()) or t.startswith(leaders) for r in range(a, b + 1))

    merged: list[tuple[int, int]] = []
    for a, b in _merge(clipped):
        if merged and shown_instead(merged[-1][1] + 1, a - 1):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    if merged and merged[0][0] > 0 and shown_instead(0, merged[0][0] - 1):
        merged[0] = (0, merged[0][1])
    if merged and merged[-1][1] < n - 1 and shown_instead(merged[-1][1] + 1, n - 1):
        merged[-1] = (merged[-1][0], n - 1)

    def indent_of(a: int, b: int) -> str:
        # the first hidden code line's indentation, else the next shown line's
        for row in range(a, b + 1):
            stripped = lines[row].lstrip()
            if stripped and not stripped.startswith(leaders):
                return lines[row][: len(lines[row]) - len(stripped)]
        nxt = lines[b + 1] if b + 1 < n else ""
        return nxt[: len(nxt) - len(nxt.lstrip())]

    # Each gap between shown ranges becomes a marker at an indentation; in Python one that
    # would end up between an if/elif/else (or try/except) chain's clauses moves into the
    # block before it, or, when there is no such line (a one-line body), the gap is shown.
    indents: list[str] = []
    i = 0
    while i <= len(merged):
        a = merged[i - 1][1] + 1 if i > 0 else 0
        b = merged[i][0] - 1 if i < len(merged) else n - 1
        if a > b:
            indents.append("")
            i += 1
            continue
        indent = indent_of(a, b)
        if parsed.language == "python":
            fixed = _python_marker_indent(parsed, a, b, indent, merged, i)
            if fixed is None:  # no indentation works: show the gap
                merged[i - 1 : i + 1] = [(merged[i - 1][0], merged[i][1])]
                i -= 1
                indents.pop()
                continue
            indent = fixed
        indents.append(indent)
        i += 1

    width = len(str(max(n, 1)))
    pad = " " * (width + 2) if line_numbers else ""
    out: list[str] = []

    def marker(a: int, b: int, indent: str) -> None:
        span = f"line {a + 1}" if a == b else f"lines {a + 1}-{b + 1}"
        out.append(f"{pad}{indent}{MARKER} ({span} elided)")

    prev_end = -1
    for (a, b), indent in zip(merged, indents, strict=False):
        if a > prev_end + 1:
            marker(prev_end + 1, a - 1, indent)
        if line_numbers:
            out.extend(f"{row + 1:>{width}}  {lines[row]}" for row in range(a, b + 1))
        else:
            out.extend(lines[a : b + 1])
        prev_end = b
    if prev_end < n - 1 and any(line.strip() for line in lines[prev_end + 1 :]):
        marker(prev_end + 1, n - 1, indents[-1])  # (blank lines at the end: nothing to say)
    spans_out = {it.key: (it.start + 1, it.end + 1) for it in targets}
    return Slice(
        text="\n".join(out),
        ranges=tuple((a + 1, b + 1) for a, b in merged),
        symbols=tuple(it.key for it in targets),
        spans=spans_out,
        language=parsed.language,
        path=path,
        errors=parsed.errors,
    )
