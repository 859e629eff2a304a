"""Projection: keep only the named fields of JSON tool results.

A *spec* is a list of paths, parsed once by :func:`parse_paths`:

=============================  ==================================================
``meta.count``                 key ``count`` of the object under ``meta``
``rows[*].id``                 ``id`` of every element of the list ``rows``
``rows[0]``                    element 0 of ``rows`` (``[N]``: an index, N >= 0)
``data.items[*].{id,status}``  several keys at once (a group ends a path)
``rows[*].owner.name``         any depth
``[*].id`` / ``{id,name}``     paths may start at a top-level list or object
``"order id"`` / ``a."b.c"``   a key that is not a bare word goes in JSON quotes
=============================  ==================================================

Bare keys are runs of any characters but ``. [ ] { } , "`` and whitespace.

What a projection keeps (:func:`project_value`):

* the value at the end of each path, whole;
* the objects and lists on the way, holding only what the paths select, in their original
  key order;
* lists walked by ``[*]`` keep their length and order: an object or list element with
  nothing selected stays as an empty ``{}`` or ``[]``, so positions still match the input;
* ``[N]`` keeps a list up to the last index that selected something: elements before it
  become placeholders (``{}``, ``[]``, or a scalar as it is), later ones go;
* a key on a list applies to every element (``rows.id`` is ``rows[*].id``), and ``[*]`` on
  an object means every value;
* a path that meets a scalar (``null``, a number, a string) before its end keeps that
  scalar, so ``owner: null`` is not silently turned into a missing owner.

The result is a *structural subset* of the input: every object and list of the output sits
at the same place as one in the input, with a subset of its keys or a prefix of its
elements, and every scalar has the same value as in the input. A path that matches nothing
is reported in ``missing``; when *no* path matches anything, the value comes back unchanged
(projecting it to ``{}`` would lose everything).

:func:`project_text` applies a spec to tool-result text: JSON text, or JSON objects/arrays
inside other text (``"Query returned:\\n[...]\\n(5000 rows)"``, JSON lines). Text that is not
JSON, or JSON that is malformed, passes through unchanged.

Tool authors can project at the source with :func:`projected` (a decorator) or
:func:`project` (a function).

>>> spec = parse_paths(["rows[*].id", "count"])
>>> project_value({"rows": [{"id": 1, "x": 2}, {"id": 3, "x": 4}], "count": 2, "q": "..."},
...               spec)
({'rows': [{'id': 1}, {'id': 3}], 'count': 2}, [])
>>> project_text('Found:\\n{"rows": [{"id": 1, "x": 2}], "count": 1}\\nDone.', spec).text
'Found:\\n{"rows":[{"id":1}],"count":1}\\nDone.'
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import re
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar, cast

__all__ = [
    "Projected",
    "ProjectionWarning",
    "Spec",
    "parse_paths",
    "project",
    "project_text",
    "project_value",
    "projected",
    "warn_missing",
]

F = TypeVar("F", bound=Callable[..., Any])


class ProjectionWarning(UserWarning):
    """A projection path matched nothing, or a value could not be projected."""


# ---------------------------------------------------------------------------- the spec


@dataclass(eq=False)
class _Node:
    """One place in the trie of paths."""

    keys: dict[str, _Node] = field(default_factory=dict)
    indices: dict[int, _Node] = field(default_factory=dict)
    every: _Node | None = None
    ends: list[int] = field(default_factory=list)
    """Leaves (indices into Spec.leaves) that end here."""
    _by_key: _Node | None = None

    def child_key(self, key: str) -> _Node:
        node = self.keys.get(key)
        if node is None:
            node = self.keys[key] = _Node()
        return node

    def child_index(self, index: int) -> _Node:
        node = self.indices.get(index)
        if node is None:
            node = self.indices[index] = _Node()
        return node

    def child_every(self) -> _Node:
        if self.every is None:
            self.every = _Node()
        return self.every

    @property
    def by_key(self) -> _Node:
        """This node with only its key steps: what applies to each element of a list."""
        if self._by_key is None:
            self._by_key = _Node(keys=self.keys)
        return self._by_key


@dataclass(frozen=True)
class Spec:
    """Parsed projection paths (from :func:`parse_paths`). Equal paths give equal specs.

    ``paths`` are the paths as given; ``leaves`` the same with every ``{a,b}`` group spelled
    out as one path per key. Missing fields are reported by leaf.
    """

    paths: tuple[str, ...]
    leaves: tuple[str, ...] = field(compare=False)
    _root: _Node = field(compare=False, repr=False)

    def __str__(self) -> str:
        return ", ".join(self.paths)


_BARE_KEY = re.compile(r"[^.\[\]{},\"\s]+")
_JSON_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_BRACKET = re.compile(r"\*|[0-9]+")

# Parsed steps: ("key", str), ("index", int), ("every", None) and, last only,
# ("group", (the path text before "{", the keys)).
_Step = tuple[str, Any]


def _key_text(key: str) -> str:
    """A key as a path spells it: bare if it can be, else in JSON quotes."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


class _PathParser:
    def __init__(self, path: str) -> None:
        self.path = path
        self.pos = 0

    def at(self, chars: str) -> bool:
        return self.pos < len(self.path) and self.path[self.pos] in chars

    def fail(self, expected: str) -> ValueError:
        got = repr(self.path[self.pos]) if self.pos < len(self.path) else "the end"
        return ValueError(
            f"projection path {self.path!r} at position {self.pos}: expected {expected}, got "
            f"{got}. Paths look like rows[*].id, meta.count, data.items[*].{{id,status}}"
        )

    def key(self, expected: str) -> str:
        if self.at('"'):
            m = _JSON_STRING.match(self.path, self.pos)
            if m is None:
                raise self.fail('a closed JSON string such as "order id"')
            self.pos = m.end()
            return str(json.loads(m.group()))
        m = _BARE_KEY.match(self.path, self.pos)
        if m is None:
            raise self.fail(expected)
        self.pos = m.end()
        return m.group()

    def skip_space(self) -> None:
        while self.at(" \t\r\n\f\v"):
            self.pos += 1

    def group(self) -> _Step:
        prefix = self.path[: self.pos]
        self.pos += 1  # "{"
        members: list[str] = []
        while True:
            self.skip_space()
            members.append(self.key("a key inside {...}"))
            self.skip_space()
            if self.at(","):
                self.pos += 1
            elif self.at("}"):
                self.pos += 1
                break
            else:
                raise self.fail("',' or '}'")
        if self.pos != len(self.path):
            raise self.fail("the end of the path after a {...} group")
        return ("group", (prefix, tuple(dict.fromkeys(members))))

    def bracket(self) -> _Step:
        self.pos += 1  # "["
        m = _BRACKET.match(self.path, self.pos)
        if m is None:
            raise self.fail("'*' or an index (0, 1, ...) inside [...]")
        self.pos = m.end()
        if not self.at("]"):
            raise self.fail("']'")
        self.pos += 1
        return ("every", None) if m.group() == "*" else ("index", int(m.group()))

    def parse(self) -> list[_Step]:
        steps: list[_Step] = []
        if self.at("{"):
            steps.append(self.group())
        elif self.at("["):
            steps.append(self.bracket())
        else:
            steps.append(("key", self.key("a key, [*], [N] or {...}")))
        while self.pos < len(self.path):
            if self.at("["):
                steps.append(self.bracket())
            elif self.at("."):
                self.pos += 1
                if self.at("{"):
                    steps.append(self.group())
                else:
                    steps.append(("key", self.key("a key or {...} after '.'")))
            else:
                raise self.fail("'.', '[' or the end of the path")
        return steps


def _parse(paths: tuple[str, ...]) -> Spec:
    root = _Node()
    leaves: list[str] = []

    def leaf(text: str) -> int:
        if text not in leaves:
            leaves.append(text)
        return leaves.index(text)

    for path in paths:
        node = root
        for kind, arg in _PathParser(path).parse():
            if kind == "key":
                node = node.child_key(arg)
            elif kind == "index":
                node = node.child_index(arg)
            elif kind == "every":
                node = node.child_every()
            else:  # a group: always the last step
                prefix, members = arg
                for member in members:
                    node.child_key(member).ends.append(leaf(prefix + _key_text(member)))
                break
        else:
            node.ends.append(leaf(path))
    return Spec(paths, tuple(leaves), root)


@functools.lru_cache(maxsize=1024)
def _parse_cached(paths: tuple[str, ...]) -> Spec:
    return _parse(paths)


def parse_paths(paths: Spec | Sequence[str]) -> Spec:
    """Parse projection paths (grammar in the module docstring) into a :class:`Spec`.

    Raises ``ValueError`` naming the path and the position of the first problem, or for an
    empty list; ``TypeError`` for a bare string (pass ``["a.b"]``, not ``"a.b"``) or a path
    that is not a string. A :class:`Spec` is returned as is.

    >>> parse_paths(["rows[*].{id,status}", "count"]).leaves
    ('rows[*].id', 'rows[*].status', 'count')
    >>> parse_paths(["rows[*.id"])
    Traceback (most recent call last):
    ...
    ValueError: projection path 'rows[*.id' at position 6: expected ']', got '.'. ...
    """
    if isinstance(paths, Spec):
        return paths
    if isinstance(paths, str):
        raise TypeError(
            f"parse_paths() takes a list of paths, got the string {paths!r}; write [{paths!r}]"
        )
    given = tuple(paths)
    for path in given:
        if not isinstance(path, str):
            raise TypeError(f"projection paths are strings, got {type(path).__name__} {path!r}")
    if not given:
        raise ValueError("a projection needs at least one path, such as 'rows[*].id'")
    return _parse_cached(tuple(dict.fromkeys(given)))


def _spec(spec: Spec | Sequence[str]) -> Spec:
    return spec if isinstance(spec, Spec) else parse_paths(spec)


# ---------------------------------------------------------------------------- values

_Walked = tuple[Any, bool]
"""(projected value, whether it belongs in the output)."""


def _placeholder(value: Any) -> Any:
    """What stands for a list element with nothing selected: an empty container, or the
    scalar itself (scalars are small, and anything else would not be in the input)."""
    if isinstance(value, Mapping):
        return {}
    if isinstance(value, list | tuple):
        return []
    return value


def _walk(value: Any, nodes: list[_Node], matched: set[int], fresh: bool) -> _Walked:
    ends = [i for n in nodes for i in n.ends]
    if not ends:
        return _walk_children(value, nodes, matched, fresh)
    matched.update(ends)
    if any(n.keys or n.indices or n.every is not None for n in nodes):
        _walk_children(value, nodes, matched, fresh)  # only to see which deeper paths exist
    return (value if fresh else copy.deepcopy(value)), True


def _walk_children(value: Any, nodes: list[_Node], matched: set[int], fresh: bool) -> _Walked:
    if isinstance(value, Mapping):
        every = [n.every for n in nodes if n.every is not None]
        keyed = [n for n in nodes if n.keys]
        out: dict[Any, Any] = {}
        if not every and not keyed:
            return out, False
        for k, v in value.items():
            name = k if isinstance(k, str) else str(k)
            sub = [n.keys[name] for n in keyed if name in n.keys] + every
            if sub:
                r, ok = _walk(v, sub, matched, fresh)
                if ok:
                    out[k] = r
        return out, bool(out)
    if isinstance(value, list | tuple):
        mapped = [n.every for n in nodes if n.every is not None]
        mapped += [n.by_key for n in nodes if n.keys]
        indexed = [n for n in nodes if n.indices]
        items: list[Any] = []
        last_ok = -1
        if mapped:
            for i, element in enumerate(value):
                sub = mapped + [n.indices[i] for n in indexed if i in n.indices]
                r, ok = _walk(element, sub, matched, fresh)
                items.append(r if ok else _placeholder(element))
                last_ok = i if ok else last_ok
            return items, last_ok >= 0
        wanted = {i for n in indexed for i in n.indices if i < len(value)}
        for i in range(max(wanted, default=-1) + 1):
            ok = False
            if i in wanted:
                r, ok = _walk(
                    value[i], [n.indices[i] for n in indexed if i in n.indices], matched, fresh
                )
            items.append(r if ok else _placeholder(value[i]))
            last_ok = i if ok else last_ok
        # [N] keeps the list up to the last element it selected.
        return items[: last_ok + 1], last_ok >= 0
    # A scalar where the path goes on: keep it (null owner stays null), match nothing.
    return value, True


def _project(value: Any, spec: Spec, fresh: bool) -> tuple[Any, list[str]]:
    matched: set[int] = set()
    out, _ = _walk(value, [spec._root], matched, fresh)
    missing = [leaf for i, leaf in enumerate(spec.leaves) if i not in matched]
    if not matched:
        return (value if fresh else copy.deepcopy(value)), missing
    return out, missing


def project_value(value: Any, spec: Spec | Sequence[str]) -> tuple[Any, list[str]]:
    """Project JSON-like data (dicts, lists, scalars) to the fields ``spec`` names.

    Returns ``(projected, missing)``: a new value (the input is never changed or shared) and
    the leaf paths of ``spec`` that matched nothing anywhere. When no path matches anything,
    ``projected`` is an equal copy of ``value``. The rules are in the module docstring.

    >>> project_value([{"id": 1, "x": 2}, {"x": 3}], ["[*].id"])
    ([{'id': 1}, {}], [])
    >>> project_value({"a": 1}, ["b"])
    ({'a': 1}, ['b'])
    """
    return _project(value, _spec(spec), fresh=False)


# ---------------------------------------------------------------------------- text


@dataclass(frozen=True, slots=True)
class Projected:
    """What :func:`project_text` made of a text."""

    text: str
    changed: bool
    """``text`` differs from the input."""
    missing: tuple[str, ...]
    """Leaf paths that matched nothing in any JSON of the text; empty when the text holds no
    JSON object or array (then nothing was expected of it)."""


# Where a JSON object or array may start: the bracket and, after any whitespace, what can
# follow it (the parser's own first step; a bracket that fails it is not tried).
_DOC_START = re.compile(r'\{[ \t\n\r]*+["}]|\[[ \t\n\r]*+[\[\]{"\-0-9tfnNI]')
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class _Literal(float):
    """A JSON number a float would change (more digits than a double holds, or out of its
    range: ``0.123456789012345678``, ``1e400``); written back as it was, never rounded."""

    literal: str


_EXACT_DIGITS = 15
"""A decimal of up to 15 significant digits survives a trip through a double unchanged (away
from the ends of its range, where it underflows or overflows)."""


_INT_DIGITS = 4_000
"""Longer integers are not converted to int (Python limits that conversion to 4300 digits)."""


def _parse_float(s: str) -> float:
    value = float(s)
    if repr(value) == s:  # the common case: written by a shortest-repr printer
        return value
    mantissa = s.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    if len(mantissa) <= _EXACT_DIGITS and (not mantissa or 1e-300 < abs(value) < 1e300):
        return value
    if math.isfinite(value) and Decimal(s) == Decimal(repr(value)):
        return value
    kept = _Literal(value)
    kept.literal = s
    return kept


def _find_docs(text: str) -> list[tuple[int, int, Any, bool]]:
    """The JSON objects and arrays in ``text``, left to right, as (start, end, value, exact).

    A span that starts like JSON but is malformed is skipped whole, so the pieces of a broken
    document are never taken for documents of their own. Objects with a repeated key are
    skipped too (re-serializing them would drop a value). ``exact`` is False when the value
    holds a :class:`_Literal` number (it must be written back with :func:`_dump_literal`).
    Linear in ``len(text)``.
    """
    docs: list[tuple[int, int, Any, bool]] = []
    duplicate = False
    exact = True

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicate
        out = dict(items)
        if len(out) != len(items):
            duplicate = True
        return out

    def number(s: str) -> float:
        nonlocal exact
        value = _parse_float(s)
        if isinstance(value, _Literal):
            exact = False
        return value

    def integer(s: str) -> int | float:
        nonlocal exact
        if len(s) <= _INT_DIGITS:
            return int(s)
        # Python refuses to convert longer digit strings (sys.get_int_max_str_digits(), 4300
        # by default, https://docs.python.org/3/library/stdtypes.html#int-max-str-digits)
        # with a ValueError; such a number is kept as spelled, like a long float.
        exact = False
        kept = _Literal(float(s))
        kept.literal = s
        return kept

    decoder = json.JSONDecoder(object_pairs_hook=pairs, parse_float=number, parse_int=integer)
    pos = 0
    n = len(text)
    while (m := _DOC_START.search(text, pos)) is not None:
        start = m.start()
        # A JSONDecodeError counts the lines from the start of the text it was given to say
        # where it is: given the whole text at each of many failed starts, quadratic. So the
        # document is read from a window that grows while it is cut short.
        size = _WINDOW
        while True:
            stop = min(n, start + size)
            window = text[start:stop]
            duplicate = False
            exact = True
            try:
                value, length = decoder.raw_decode(window)
            except json.JSONDecodeError as err:
                if stop < n and _cut_short(err, len(window)):
                    size *= 4
                    continue
                pos = max(start + 1, start + err.pos)
                break
            except RecursionError:
                return docs  # nested deeper than Python can parse: leave the rest alone
            if not duplicate:
                docs.append((start, start + length, value, exact))
            pos = start + length
            break
    return docs


_WINDOW = 256
"""The first window a JSON document is read from (see :func:`_find_docs`)."""


def _cut_short(err: json.JSONDecodeError, length: int) -> bool:
    """Whether a document read from a window of ``length`` characters failed because the window
    ended: the parser wanted more at the end (a value, a delimiter, the rest of a literal such
    as ``-Infinity`` or of a ``\\uXXXX`` escape), or a string ran to the end."""
    return err.pos >= length - 9 or err.msg.startswith("Unterminated string")


def _dumps(value: Any) -> str:
    out = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _SURROGATE.search(out):
        # A lone surrogate (legal in JSON as an escape) cannot be encoded as UTF-8 raw.
        out = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return out


def _dump_literal(value: Any, out: list[str]) -> None:
    """:func:`_dumps` for a value holding :class:`_Literal` numbers (json.dumps would round
    them, or write ``Infinity``, which is not JSON)."""
    if isinstance(value, _Literal):
        out.append(value.literal)
    elif isinstance(value, dict):
        out.append("{")
        for k, (key, item) in enumerate(value.items()):
            out.append(("," if k else "") + _dumps(key) + ":")
            _dump_literal(item, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for k, item in enumerate(value):
            if k:
                out.append(",")
            _dump_literal(item, out)
        out.append("]")
    else:
        out.append(_dumps(value))


def project_text(text: str, spec: Spec | Sequence[str]) -> Projected:
    """Project the JSON in a tool result's text, keeping any text around it.

    Each JSON object or array in ``text`` (the whole text, or embedded:
    ``"Query returned:\\n[...]\\n(5000 rows)"``, or one per line) is projected with
    :func:`project_value` and, if that dropped anything, written back compactly
    (``separators=(",", ":")``, non-ASCII kept). Everything else is kept byte for byte:
    non-JSON text and malformed JSON pass through unchanged. Never raises on a string;
    deterministic and idempotent.

    >>> project_text('{"a": 1, "b": 2}', ["a"])
    Projected(text='{"a":1}', changed=True, missing=())
    >>> project_text("no json here", ["a"])
    Projected(text='no json here', changed=False, missing=())
    >>> project_text('{"a": 1,', ["a"]).changed
    False
    """
    if not isinstance(text, str):
        raise TypeError(f"project_text() takes a str, got {type(text).__name__}")
    spec = _spec(spec)
    docs = _find_docs(text)
    if not docs:
        return Projected(text, False, ())
    pieces: list[str] = []
    last = 0
    missing: set[str] | None = None
    for start, end, value, exact in docs:
        out, doc_missing = _project(value, spec, fresh=True)
        missing = set(doc_missing) if missing is None else missing & set(doc_missing)
        if out == value:
            continue
        if exact:
            dumped = _dumps(out)
        else:
            parts: list[str] = []
            _dump_literal(out, parts)
            dumped = "".join(parts)
        pieces += [text[last:start], dumped]
        last = end
    pieces.append(text[last:])
    new = "".join(pieces)
    gone = tuple(leaf for leaf in spec.leaves if leaf in (missing or ()))
    return Projected(new, new != text, gone)


# ---------------------------------------------------------------------------- for tool authors


def warn_missing(
    where: str, missing: Sequence[str], spec: Spec | None = None, *, stacklevel: int = 2
) -> None:
    """Emit one :class:`ProjectionWarning` for paths that matched nothing (none if empty).

    ``where`` names the place (a tool, a message block); with ``spec``, the message says
    whether the result was returned unchanged (no path matched at all).
    """
    if not missing:
        return
    names = ", ".join(missing)
    if spec is not None and len(missing) >= len(spec.leaves):
        what = f"no projection path matched ({names}); the result is kept as is"
    else:
        what = f"projection path(s) {names} matched nothing; the other fields are kept"
    warnings.warn(ProjectionWarning(f"{where}: {what}"), stacklevel=stacklevel + 1)


def _project_any(value: Any, spec: Spec, where: str, stacklevel: int) -> Any:
    if isinstance(value, str):
        done = project_text(value, spec)
        warn_missing(where, done.missing, spec, stacklevel=stacklevel + 1)
        return done.text
    if isinstance(value, Mapping | list | tuple | int | float) or value is None:
        out, missing = project_value(value, spec)
        warn_missing(where, missing, spec, stacklevel=stacklevel + 1)
        return out
    warnings.warn(
        ProjectionWarning(
            f"{where}: cannot project a {type(value).__name__} (only JSON data or JSON text); "
            "returned unchanged"
        ),
        stacklevel=stacklevel + 1,
    )
    return value


def project(value: Any, *paths: str) -> Any:
    """Project ``value`` to ``paths``: data gives data, a string gives a string.

    Data (dicts, lists, JSON scalars) goes through :func:`project_value`, text through
    :func:`project_text`. Paths that match nothing raise one :class:`ProjectionWarning`.

    >>> project({"id": 7, "blob": "..."}, "id")
    {'id': 7}
    >>> project('[{"id": 7, "blob": "..."}]', "[*].id")
    '[{"id":7}]'
    """
    return _project_any(value, parse_paths(paths), "project()", stacklevel=2)


def projected(*paths: str) -> Callable[[F], F]:
    """Decorator: project a tool function's return value to ``paths`` (see :func:`project`).

    Works on plain and ``async`` functions and keeps their signature (``functools.wraps``),
    so frameworks that read it (MCP servers among them) see the original tool::

        @server.tool()
        @projected("rows[*].{id,status,total}", "count")
        def query_orders(status: str) -> dict[str, Any]: ...

    The paths are parsed once, here: a malformed one raises ``ValueError`` at import time.
    A path that matches nothing in a result raises one :class:`ProjectionWarning` naming the
    function.
    """
    if len(paths) == 1 and callable(paths[0]):
        raise TypeError("use @projected('field', ...) with the paths to keep, not bare @projected")
    spec = parse_paths(paths)

    def decorate(fn: F) -> F:
        where = f"@projected {getattr(fn, '__qualname__', None) or repr(fn)}"

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return _project_any(await fn(*args, **kwargs), spec, where, stacklevel=2)

            return cast(F, async_wrapper)

        async def later(result: Awaitable[Any]) -> Any:
            return _project_any(await result, spec, where, stacklevel=2)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                return later(result)
            return _project_any(result, spec, where, stacklevel=2)

        return cast(F, wrapper)

    return decorate
