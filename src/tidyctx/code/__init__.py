"""Code slicing engine: tree-sitter definitions, outlines and slices of source files.

Independent of the request transforms (``tidyctx.transforms.slice_code`` builds on it). The
grammars come from the per-language wheels of the ``code`` extra and load lazily, offline;
importing this package does not import tree-sitter. File-view recognition (``_views``: which
calls read a file, and their results as listings) is pure Python.
"""

from tidyctx.code._slicing import (
    AmbiguousSymbol,
    Definition,
    GrammarMissing,
    Slice,
    SlicingError,
    SymbolNotFound,
    UnknownLanguage,
    clear_cache,
    definitions,
    outline,
    slice_lines,
    slice_symbol,
)

__all__ = [
    "AmbiguousSymbol",
    "Definition",
    "GrammarMissing",
    "Slice",
    "SlicingError",
    "SymbolNotFound",
    "UnknownLanguage",
    "clear_cache",
    "definitions",
    "outline",
    "slice_lines",
    "slice_symbol",
]
