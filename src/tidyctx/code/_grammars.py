"""Per-language facts for :mod:`tidyctx.code._slicing`: grammar packages, file names and
the tree-sitter node types that make a definition, a scope, an import or a comment.

Grammars are imported lazily from the per-language wheels (``pip install tidyctx[code]``), so
``import tidyctx`` works without tree-sitter. Node type names were read off the parse trees of
the grammar versions pinned in ``pyproject.toml`` (tree-sitter-python 0.25, -javascript 0.25,
-typescript 0.23, -go 0.25, -rust 0.24, -java 0.23, -c 0.24, -cpp 0.23, -ruby 0.23,
-c-sharp 0.23, -php 0.25).
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Language, Query

__all__ = [
    "CLASSLIKE",
    "EXTENSIONS",
    "LANGUAGES",
    "SPECS",
    "Loaded",
    "Missing",
    "Spec",
    "language_for",
    "load",
    "normalize_language",
]

#: Language name -> the pip package that holds its grammar.
LANGUAGES: dict[str, str] = {
    "python": "tree-sitter-python",
    "javascript": "tree-sitter-javascript",
    "typescript": "tree-sitter-typescript",
    "tsx": "tree-sitter-typescript",
    "go": "tree-sitter-go",
    "rust": "tree-sitter-rust",
    "java": "tree-sitter-java",
    "c": "tree-sitter-c",
    "cpp": "tree-sitter-cpp",
    "ruby": "tree-sitter-ruby",
    "csharp": "tree-sitter-c-sharp",
    "php": "tree-sitter-php",
}

# Python module and the function in it that returns the grammar pointer.
_MODULES: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "php": ("tree_sitter_php", "language_php"),
}

#: File extension (lower case, with the dot) or whole file name -> language.
#: ``.h`` is read as C; pass ``language="cpp"`` for C++ headers named ``.h``.
EXTENSIONS: dict[str, str] = {
    **dict.fromkeys([".py", ".pyi", ".pyw"], "python"),
    **dict.fromkeys([".js", ".mjs", ".cjs", ".jsx"], "javascript"),
    **dict.fromkeys([".ts", ".mts", ".cts"], "typescript"),
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    **dict.fromkeys([".c", ".h"], "c"),
    **dict.fromkeys(
        [".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".tpp"], "cpp"
    ),
    **dict.fromkeys([".rb", ".rake", ".gemspec", ".ru"], "ruby"),
    **dict.fromkeys(["rakefile", "gemfile", "podfile", "vagrantfile"], "ruby"),
    ".cs": "csharp",
    **dict.fromkeys([".php", ".phtml", ".php8"], "php"),
}

_ALIASES = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "ts": "typescript",
    "golang": "go",
    "rs": "rust",
    "c++": "cpp",
    "cxx": "cpp",
    "rb": "ruby",
    "c#": "csharp",
    "cs": "csharp",
    "c-sharp": "csharp",
    "c_sharp": "csharp",
}


def normalize_language(name: str) -> str | None:
    """The canonical language name for ``name`` (``"py"`` -> ``"python"``), or None."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in LANGUAGES else None


def language_for(path: str) -> str | None:
    """The language of a file by its extension or name, None when unknown.

    >>> language_for("src/app/main.py"), language_for("a/B.TSX"), language_for("README")
    ('python', 'tsx', None)
    """
    base = os.path.basename(path).lower()
    if base in EXTENSIONS:
        return EXTENSIONS[base]
    return EXTENSIONS.get(os.path.splitext(base)[1])


@dataclass(frozen=True)
class Spec:
    """What the slicer needs to know about one grammar."""

    #: definition node type -> kind ("function", "class", ...). Function kinds become "method"
    #: inside a class-like parent.
    defs: dict[str, str]
    #: containers that are not definitions themselves (impl blocks, namespaces).
    scopes: tuple[str, ...] = ()
    #: scopes whose name is part of a member's qualname (Rust ``impl Foo`` -> ``Foo.bar``).
    named_scopes: tuple[str, ...] = ()
    comments: tuple[str, ...] = ("comment",)
    imports: tuple[str, ...] = ()
    #: parents that belong to the definition (Python decorators, ``export``, ``template<>``).
    wrappers: tuple[str, ...] = ()
    #: preceding siblings that belong to the definition (Rust attributes, TS decorators).
    prefixes: tuple[str, ...] = ()
    #: compound statements whose header is kept around a definition (Python: so a slice of a
    #: def inside ``if``/``try`` still parses).
    contexts: tuple[str, ...] = ()
    #: what a comment line starts with (to skip comments when indenting an elision marker).
    comment_leaders: tuple[str, ...] = ("//", "/*", "*")
    #: the body of a definition opens with ``{`` (else ``:``/newline, as in Python and Ruby).
    braces: bool = True
    #: extra fields beyond ``body`` where a definition's body may sit, by node type.
    extra: dict[str, Any] = field(default_factory=dict)


_FUNCS = frozenset({"function", "method"})

_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "method",
    "lexical_declaration": "function",
    "variable_declaration": "function",
    "field_definition": "method",
}
_TS_DEFS = {
    **_JS_DEFS,
    "public_field_definition": "method",
    "function_signature": "function",
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "method_signature": "method",
    "abstract_method_signature": "method",
}
_C_DEFS = {
    "function_definition": "function",
    "declaration": "function",
    "struct_specifier": "struct",
    "union_specifier": "struct",
    "enum_specifier": "enum",
    "type_definition": "type",
    "preproc_function_def": "macro",
}

SPECS: dict[str, Spec] = {
    "python": Spec(
        defs={"function_definition": "function", "class_definition": "class"},
        imports=("import_statement", "import_from_statement"),
        wrappers=("decorated_definition",),
        contexts=(
            "if_statement",
            "elif_clause",
            "else_clause",
            "try_statement",
            "except_clause",
            "except_group_clause",
            "finally_clause",
            "for_statement",
            "while_statement",
            "with_statement",
            "match_statement",
            "case_clause",
        ),
        comment_leaders=("#",),
        braces=False,
    ),
    "javascript": Spec(
        defs=_JS_DEFS,
        imports=("import_statement",),
        wrappers=("export_statement",),
        prefixes=("decorator",),
    ),
    "typescript": Spec(
        defs=_TS_DEFS,
        scopes=("internal_module", "module"),
        imports=("import_statement",),
        wrappers=("export_statement", "ambient_declaration"),
        prefixes=("decorator",),
    ),
    "go": Spec(
        defs={
            "function_declaration": "function",
            "method_declaration": "method",
            "type_spec": "type",
            "type_alias": "type",
            "method_elem": "method",
        },
        imports=("import_declaration",),
    ),
    "rust": Spec(
        defs={
            "function_item": "function",
            "function_signature_item": "function",
            "struct_item": "struct",
            "enum_item": "enum",
            "union_item": "struct",
            "trait_item": "trait",
            "type_item": "type",
            "mod_item": "module",
            "macro_definition": "macro",
        },
        scopes=("impl_item", "foreign_mod_item"),
        named_scopes=("impl_item",),
        comments=("line_comment", "block_comment"),
        imports=("use_declaration",),
        prefixes=("attribute_item",),
    ),
    "java": Spec(
        defs={
            "class_declaration": "class",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "record_declaration": "class",
            "annotation_type_declaration": "interface",
            "method_declaration": "method",
            "constructor_declaration": "method",
            "compact_constructor_declaration": "method",
        },
        comments=("line_comment", "block_comment"),
        imports=("import_declaration",),
    ),
    "c": Spec(defs=_C_DEFS, scopes=("linkage_specification",)),
    "cpp": Spec(
        defs={
            **_C_DEFS,
            "class_specifier": "class",
            "field_declaration": "method",
            "alias_declaration": "type",
        },
        scopes=("namespace_definition", "linkage_specification"),
        imports=("using_declaration",),
        wrappers=("template_declaration",),
    ),
    "ruby": Spec(
        defs={
            "method": "function",
            "singleton_method": "method",
            "class": "class",
            "module": "module",
        },
        scopes=("singleton_class",),
        comment_leaders=("#",),
        braces=False,
    ),
    "csharp": Spec(
        defs={
            "class_declaration": "class",
            "struct_declaration": "struct",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "record_declaration": "class",
            "record_struct_declaration": "struct",
            "delegate_declaration": "type",
            "method_declaration": "method",
            "constructor_declaration": "method",
            "destructor_declaration": "method",
            "operator_declaration": "method",
            "conversion_operator_declaration": "method",
            "property_declaration": "property",
            "local_function_statement": "function",
        },
        scopes=("namespace_declaration",),
        imports=("using_directive",),
    ),
    "php": Spec(
        defs={
            "function_definition": "function",
            "method_declaration": "method",
            "class_declaration": "class",
            "interface_declaration": "interface",
            "trait_declaration": "trait",
            "enum_declaration": "enum",
        },
        scopes=("namespace_definition",),
        imports=("namespace_use_declaration",),
        comment_leaders=("//", "/*", "*", "#"),
    ),
}
SPECS["tsx"] = SPECS["typescript"]

#: kinds whose functions are methods.
CLASSLIKE = frozenset({"class", "struct", "interface", "trait", "enum", "impl", "record"})


@dataclass(frozen=True)
class Loaded:
    """A grammar with its queries, compiled once.

    ``query`` captures ``item`` and ``wrapper`` (and ``import``, except for Python);
    ``comments`` captures ``comment``, run only when doc comments are needed (often on a
    small range of rows); ``imports`` (Python) captures module-level ``import`` statements,
    run with a start depth of 1 so it does not walk the whole tree.
    """

    language: Language
    query: Query
    comments: Query
    imports: Query | None = None


class Missing(ImportError):
    """Raised by :func:`load` when tree-sitter or a grammar wheel is not installed."""

    def __init__(self, package: str) -> None:
        super().__init__(package)
        self.package = package


@functools.cache
def load(name: str) -> Loaded:
    """The grammar for a canonical language name, its query compiled once (cached)."""
    try:
        from tree_sitter import Language, Query
    except ImportError as exc:
        raise Missing("tree-sitter") from exc
    module_name, func = _MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Missing(LANGUAGES[name]) from exc
    language = Language(getattr(module, func)())
    spec = SPECS[name]

    def alternatives(types: tuple[str, ...]) -> str:
        # Node types shared by related grammars (JS/TS, C/C++) that this one lacks are skipped.
        known = [t for t in types if language.id_for_node_kind(t, True)]
        return f"[{' '.join(f'({t})' for t in known)}]"

    parts = [f"{alternatives((*spec.defs, *spec.scopes))} @item"]
    if spec.imports and name != "python":
        parts.append(f"{alternatives(spec.imports)} @import")
    if spec.wrappers:
        parts.append(f"{alternatives(spec.wrappers)} @wrapper")
    comments = Query(language, f"{alternatives(spec.comments)} @comment")
    imports = None
    if name == "python":  # only module-level imports count (see slicing._index_imports)
        imports = Query(language, f"{alternatives(spec.imports)} @import")
    return Loaded(language, Query(language, "\n".join(parts)), comments, imports)
