"""slice_code(): file views cut down to the outline and the code the conversation names.

Agents read whole files when one function would do, and every later turn pays for the file
again. ``slice_code`` finds tool results that hold a file's contents (a ``Read``, a
``str_replace_editor`` ``view``, a ``read_file``... see
:data:`~tidyctx.code._views.DEFAULT_TOOLS`) and, when one is over ``max_tokens``, replaces it
with

* a note (a ``[tidyctx: ...]`` marker line) saying what was left out and how to get it back:
  the original goes into ``store`` and ``tidyctx_expand(id=...)`` (see
  :func:`tidyctx.transforms._expand.expand_tool`) returns it, or the agent re-reads lines with
  its own file tool;
* the file's outline (:func:`tidyctx.code._slicing.outline`: every class, function and
  method signature with its doc comment's first line);
* in full, the definitions the conversation refers to, most relevant first while they fit in
  the budget (:func:`tidyctx.code._slicing.slice_symbol`: with decorators, the header of
  the enclosing class and the imports they use).

Lines keep the numbers they have in the file, in the viewer's own style (``     1\\t`` of
``cat -n``, Claude Code's ``     1→``), so the agent can still edit by line or by text; each
run of lines not shown is one ``⋮`` line. Apart from the marker, the ``⋮`` lines and the
numbers, every line of the output is a line of the original result.

Which definitions: the names that occur in the conversation *up to the call* that read the
file: the call's input, the assistant turn that made it, the user's text, earlier assistant
turns, and the latest tool results (stack traces, ``grep -n`` hits: lines of this file are
mapped to the definitions around them). Weaker signals fill the rest of the budget: a
definition whose code holds a rare code-like name said before (an attribute quoted in the
task), one whose name holds a name of the call, its turn or the task (``test_foo_bar`` for
``FooBar``), and the functions a chosen definition calls. Nothing after the call counts,
so a result is cut once, when it enters the conversation, and gives the same bytes on every
later turn (the cache prefix stays intact). Results of recognised file views never count as
references (they are what this transform rewrites), which keeps ``slice_code`` idempotent.

Results are left as they are, and :meth:`SliceCode.describe` says why, when the language is
not known from the path, its grammar is not installed, nothing in the file parses, the
result is not a plain listing (already cut, or an abbreviated view), or slicing would not
make it much smaller. Put ``slice_code`` before ``trim``/``clear`` in a pipe: it reads the
earlier tool results as they were recorded.

>>> body = "    path = os.path.join(root, name)\\n" * 6 + "    return path\\n"
>>> defs = [f"def helper_{i}(root, name):\\n{body}" for i in range(40)]
>>> source = "import os\\n\\n" + "\\n".join(defs)
>>> listing = "\\n".join(f"{n:>6}\\t{line}" for n, line in enumerate(source.split("\\n"), 1))
>>> request = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [
...     {"role": "user", "content": "Why does helper_17 return a bad path?"},
...     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1",
...         "name": "str_replace_editor", "input": {"command": "view", "path": "/src/util.py"}}]},
...     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
...         "content": listing}]}]}
>>> out = slice_code(max_tokens=500)(request)["messages"][2]["content"][0]["content"][0]["text"]
>>> print(out[:95])
[tidyctx: sliced /src/util.py (python): showing the outline and helper_17; 314 of 362 lines not
>>> print("\\n".join(out.splitlines()[1:6]))
     1\timport os
     2\t
     3\tdef helper_0(root, name):
      \t    ⋮ (lines 4–11 not shown)
    12\tdef helper_1(root, name):
>>> print("\\n".join(out.splitlines()[37:41]))
   156\tdef helper_17(root, name):
   157\t    path = os.path.join(root, name)
   158\t    path = os.path.join(root, name)
   159\t    path = os.path.join(root, name)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from tidyctx._edge import Edge, start
from tidyctx._markers import MARKER_PREFIX
from tidyctx._memo import (
    content_key,
    memoized,
    owner_token,
    prefix_tokens,
    resume,
    suspend,
    text_size,
)
from tidyctx._request import Request, ValidationError, as_given, input_json, normalized
from tidyctx.code._views import DEFAULT_TOOLS, Listing, PathSpec, parse_listing, view_path
from tidyctx.store import MemoryStore, Store, keep_text, refresh, store_key
from tidyctx.tokens import (
    LocalCounter,
    TokenCounter,
    check_counter,
    get_encoding,
    local_counter,
)
from tidyctx.transforms._recover import block_ids, guarded, settle

if TYPE_CHECKING:
    from tidyctx.code._slicing import Definition

__all__ = [
    "DEFAULT_TOOLS",
    "Conversation",
    "FileView",
    "Outcome",
    "PathSpec",
    "References",
    "SliceCode",
    "rank",
    "slice_code",
    "slice_view",
]

MIN_MAX_TOKENS = 100
"""The smallest budget accepted: room for the note and a few signatures."""

_MAX_CANDIDATES = 48  # definitions tried against the budget, most relevant first
_AMBIGUOUS = 3  # a bare name shared by more definitions than this needs its class too
_SHRINK = 0.9  # slice only when the result gets at least 10% smaller
_TERM_CHARS = 200_000  # characters of one text searched for names
_MIN_INNER_NAME = 6  # shortest name looked for inside definitions' names
_TASK = 4  # weight of the names in the task: the first user message with text
_RARE = 3  # a name in the code of more definitions than this says nothing about one of them
_TAIL = (
    3  # the last messages, read again each turn: the latest user message, its call, the one before
)


# ---------------------------------------------------------------------------- references

_CHAIN = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|#|->)[A-Za-z_$][\w$]*)*")
_SPLIT = re.compile(r"\.|::|#|->")
_PLAIN = re.compile(r"[a-z]+")
# A plain word of prose that is marked as code: called, or after a backtick or a quote.
_MARKED = re.compile(r"(?<![\w$])[a-z]+(?=\()|(?<=[`'\"])[a-z]+(?![\w$])")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
# A name that is surely code, not a word of prose: snake_case, camelCase, a digit inside.
_CODE_LIKE = re.compile(r"(?=.{4})[\w$]*(?:[A-Za-z0-9]_|_[A-Za-z0-9]|[a-z][A-Z]|[A-Za-z]\d)[\w$]*")
_TRACE_LINE = re.compile(r"""File "([^"\n]+)", line (\d+)""")
_PATH_LINE = re.compile(r"([\w./\\~@+-]*[\w-]\.[A-Za-z0-9+]{1,6}):(\d+)\b")
# The same, only from the first character of a run of path characters (see _path_lines).
_PATH_LINE_RUN = re.compile(r"(?<![\w./\\~@+-])" + _PATH_LINE.pattern)
_GREP_LINE = re.compile(r"^(\d+)[:-]", re.MULTILINE)


@functools.lru_cache(maxsize=8_192)
def _terms(text: str, prose: bool) -> frozenset[str]:
    """Names in ``text``: dotted chains (``a.b``, ``A::b``, ``a->b``, kept with dots) and
    their parts of 3+ characters.

    In prose, a plain lower-case word (``open``, ``update``) only counts where it looks like
    code: followed by ``(``, or after a backtick or quote.

    >>> sorted(_terms("Call `render` on self.figure.canvas, not draw.", True))
    ['Call', 'canvas', 'figure', 'render', 'self', 'self.figure.canvas']
    """
    text = text[:_TERM_CHARS]
    out: set[str] = set()
    marked: set[str] | None = None
    for chain in set(_CHAIN.findall(text)):  # each distinct chain once: texts repeat names
        parts = [p for p in _SPLIT.split(chain) if p]
        if len(parts) > 1:
            out.add(".".join(parts))
            out.update(p for p in parts if len(p) >= 3)
            continue
        word = parts[0]
        if len(word) < 3:
            continue
        if prose and _PLAIN.fullmatch(word):
            if marked is None:
                marked = set(_MARKED.findall(text))
            if word not in marked:
                continue
        out.add(word)
    return frozenset(out)


def _same_file(mentioned: str, path: str) -> bool:
    """Whether a path seen in a traceback or a grep hit names the file at ``path``."""
    a = mentioned.replace("\\", "/").lstrip("./")
    b = path.replace("\\", "/").lstrip("./")
    if not a or not b or a.rsplit("/", 1)[-1] != b.rsplit("/", 1)[-1]:
        return False
    return a.endswith(b) or b.endswith(a)


def _line_refs(text: str, path: str, producer: str) -> set[int]:
    """Line numbers of ``path`` named in ``text``: traceback frames, ``path:N`` hits, and the
    ``N:`` lines of a ``grep -n`` whose call (``producer``, its input as JSON) named the file.

    >>> trace = 'File "/r/src/app.py", line 42, in run\\napp.py:7: E501'
    >>> sorted(_line_refs(trace, "src/app.py", ""))
    [7, 42]
    """
    text = text[:_TERM_CHARS]
    found: set[int] = set()
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    if base and base in producer and "grep" in producer and "-n" in producer:
        found.update(int(m.group(1)) for m in _GREP_LINE.finditer(text))
    name = path.replace("\\", "/").lstrip("./").rsplit("/", 1)[-1]
    if not name or name not in text:
        return found  # a frame or a hit of the file names it (see _same_file)
    if 'File "' in text:
        for m in _TRACE_LINE.finditer(text):
            if _same_file(m.group(1), path):
                found.add(int(m.group(2)))
    if name + ":" in text:
        for m in _path_lines(text):
            if _same_file(m.group(1), path):
                found.add(int(m.group(2)))
    return found


def _path_lines(text: str) -> Iterator[re.Match[str]]:
    """``_PATH_LINE.finditer(text)``, in linear time.

    The pattern can start at every character of a long run of path characters and scan to its
    end from each. A match that starts inside a run would also start at the run's first
    character, so only the place where the last match ended is tried inside a run.
    """
    pos = 0
    while True:
        m = (_PATH_LINE.match(text, pos) if pos else None) or _PATH_LINE_RUN.search(text, pos)
        if m is None:
            return
        yield m
        pos = m.end()


class _Said(NamedTuple):
    """What one message said: its text, its tool inputs (as JSON) and its tool results (with
    the input of the call behind each); results of file views are left out. A tuple: hashed
    and compared in C, once per message per call (the key of its prefix token)."""

    role: str
    prose: tuple[str, ...]
    code: tuple[str, ...]
    results: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FileView:
    """A call that read a file: its tool, the path and where it sits in the conversation."""

    id: str
    tool: str
    path: str
    input: str
    """The call's input as canonical JSON."""
    message: int
    """Index of the assistant message that made the call."""


@dataclass(frozen=True, slots=True)
class References:
    """Names and lines of one file that the conversation pointed at, with weights."""

    terms: tuple[tuple[str, int], ...]
    lines: tuple[tuple[int, int], ...]


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    out: list[str] = []
    for b in content:
        if isinstance(b, str):
            out.append(b)
        elif isinstance(b, Mapping) and b.get("type") == "text":
            out.append(str(b.get("text") or ""))
    return out


class Conversation:
    """The file views of a message list and, for each, what was said before it.

    >>> messages = [
    ...     {"role": "user", "content": "Fix `load_config` in src/config.py"},
    ...     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read",
    ...         "input": {"file_path": "src/config.py"}}]},
    ...     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
    ...         "content": "     1→def load_config(): ..."}]}]
    >>> c = Conversation(messages)
    >>> c.views["t1"].path, dict(c.references(c.views["t1"]).terms)["load_config"]
    ('src/config.py', 4)
    """

    def __init__(
        self,
        messages: Sequence[Any] = (),
        tools: Mapping[str, PathSpec] = DEFAULT_TOOLS,
        *,
        prefix: Sequence[int] | None = None,
    ):
        self.said: list[_Said] = []
        self.views: dict[str, FileView] = {}
        self.tools = tools
        self._refs: dict[FileView, References] = {}
        self._inputs: dict[str, str] = {}
        for message in messages:
            self.add(message)
        # A view's references depend on its prefix. ``prefix``: tokens of the messages the
        # caller has already (one per message), else tokens of what each message said.
        self._prefix = list(prefix) if prefix is not None else prefix_tokens(self.said)

    def add(self, message: Any) -> list[str]:
        """Read one more message; returns the ids of the file views its calls open."""
        opened: list[str] = []
        if not isinstance(message, Mapping):
            self.said.append(_Said("", (), (), ()))
            return opened
        i = len(self.said)
        content = message.get("content")
        blocks = content if isinstance(content, list) else [content]
        code: list[str] = []
        results: list[tuple[str, str]] = []
        for b in blocks:
            if not isinstance(b, Mapping):
                continue
            if b.get("type") == "tool_use":
                ident = str(b.get("id"))
                text = input_json(b.get("input"))
                self._inputs[ident] = text
                code.append(text)
                path = view_path(self.tools, b)
                if path is not None:
                    self.views[ident] = FileView(ident, str(b.get("name")), path, text, i)
                    opened.append(ident)
            elif b.get("type") == "tool_result":
                ident = str(b.get("tool_use_id"))
                if ident not in self.views:
                    producer = self._inputs.get(ident, "")
                    results += [(t, producer) for t in _block_texts(b.get("content"))]
        prose = tuple(_block_texts(content))
        self.said.append(_Said(str(message.get("role")), prose, tuple(code), tuple(results)))
        return opened

    def prefix(self, view: FileView) -> int:
        """A token for the messages up to ``view``'s call (:func:`~tidyctx._memo.prefix_tokens`):
        equal on two calls exactly when those messages said the same."""
        return self._prefix[view.message]

    def references(self, view: FileView) -> References:
        """The names and lines of ``view.path`` pointed at up to the call, weighted: the call's
        input 8; the assistant turn that made it 6; lines in the latest results 5; the task
        (the first user message with text) 4; the user's other words and the latest results
        3; the three assistant turns before 2, older turns and the results before the latest
        1-2. Only what came before the result counts."""
        hit = self._refs.get(view)
        if hit is None:
            key = (self._prefix[view.message], view.path, view.input)
            hit = memoized("references", key, lambda: self._references(view), 1_000)
            self._refs[view] = hit
        return hit

    def _references(self, view: FileView) -> References:
        named: dict[int, set[str]] = {}  # by weight: set unions run in C, texts are long
        lines: dict[int, int] = {}

        def add(names: frozenset[str], weight: int) -> None:
            if names:
                named.setdefault(weight, set()).update(names)

        def add_lines(numbers: Iterable[int], weight: int) -> None:
            for n in numbers:
                if lines.get(n, 0) < weight:
                    lines[n] = weight

        path = view.path
        add(_terms(view.input, False), 8)
        turn = self.said[view.message]
        for text in turn.prose:
            add(_terms(text, True), 6)
            add_lines(_line_refs(text, path, ""), 6)
        for text in turn.code:
            add(_terms(text, False), 6)
        assistant_age = user_age = 0
        task = next((k for k, s in enumerate(self.said) if s.role == "user" and s.prose), -1)
        for k in range(view.message - 1, -1, -1):
            said = self.said[k]
            if said.role == "assistant":
                assistant_age += 1
                weight = 2 if assistant_age <= 3 else 1
                for text in said.prose:
                    add(_terms(text, True), weight)
                for text in said.code:
                    add(_terms(text, False), weight)
                continue
            user_age += 1
            for text in said.prose:
                add(_terms(text, True), _TASK if k == task else 3)
                add_lines(_line_refs(text, path, ""), 3)
            if user_age <= 2:
                for text, producer in said.results:
                    add(_terms(text, False), 3 if user_age == 1 else 2)
                    add_lines(_line_refs(text, path, producer), 5 if user_age == 1 else 3)
        terms: dict[str, int] = {}
        for weight in sorted(named):  # a heavier mention of a name wins
            terms.update(dict.fromkeys(named[weight], weight))
        return References(tuple(sorted(terms.items())), tuple(sorted(lines.items())))


def _owners(defs: Sequence[Definition], first: int, last: int) -> list[int]:
    """For each line ``first..last``, the index of the innermost definition around it
    (doc comment included), or -1."""
    owner = [-1] * (last - first + 1)
    for k, d in enumerate(defs):  # source order: a nested definition comes after its parent
        a, b = max(d.doc_start_line, first), min(d.end_line, last)
        if a > b:  # outside the lines asked for (a negative slice end would cut the list)
            continue
        owner[a - first : b - first + 1] = [k] * (b - a + 1)
    return owner


def _bodies(defs: Sequence[Definition], lines: Sequence[str], first: int) -> list[set[str]]:
    """The identifiers of each definition's own lines (those of nested definitions go to
    them)."""
    own: list[list[str]] = [[] for _ in defs]
    owner = _owners(defs, first, first + len(lines) - 1)
    for line, k in zip(lines, owner, strict=True):
        if k >= 0:
            own[k].append(line)
    return [set(_IDENT.findall("\n".join(part))) for part in own]


def rank(
    defs: Sequence[Definition],
    refs: References,
    bodies: Sequence[set[str]] | None = None,
    path: str = "",
) -> list[tuple[float, Definition]]:
    """The definitions ``refs`` point at, as (score, definition), most relevant first.

    A definition is named by its qualname (``Class.method``), its last two parts, or its bare
    name when at most three definitions share it; a line names the innermost definition
    around it; both score the reference's weight. With ``bodies`` (the identifiers of each
    definition, :func:`_bodies`) two weaker signals count too: a definition whose own code
    holds a name the conversation used (one that looks like code: ``snake_case``,
    ``camelCase``, a digit) that few definitions hold (``_Unsigned`` in a bug report, found in
    one method) scores up to 3/4 of that name's weight; a function or method whose name holds
    a name of the call, its turn or the task (``test_stratified_kfold`` for
    ``StratifiedKFold``) scores half its weight; one that a named definition uses scores half
    the caller's. Ties go to the shorter
    definition, then the earlier.
    """
    weights = dict(refs.terms)
    by_name: dict[str, list[int]] = {}
    for k, d in enumerate(defs):
        by_name.setdefault(d.name, []).append(k)
    scores: dict[int, float] = {}
    for k, d in enumerate(defs):
        score = weights.get(d.qualname, 0)
        if "." in d.qualname:
            score = max(score, weights.get(".".join(d.qualname.split(".")[-2:]), 0))
        if len(by_name[d.name]) <= _AMBIGUOUS:
            score = max(score, weights.get(d.name, 0))
        if score:
            scores[k] = score
    if refs.lines:
        first = min(line for line, _ in refs.lines)
        last = max(line for line, _ in refs.lines)
        owner = _owners(defs, first, last)
        for line, weight in refs.lines:
            inner = owner[line - first]
            if inner >= 0 and scores.get(inner, 0) < weight:
                scores[inner] = weight
    if bodies is not None:
        skip = set(_terms(path, False))  # the file's own path is no clue inside it
        found = _body_scores(defs, bodies, weights, by_name, scores, skip)
        for k, weak in found.items():
            if scores.get(k, 0) < weak:
                scores[k] = weak
    order = sorted(
        scores,
        key=lambda k: (-scores[k], defs[k].end_line - defs[k].start_line, defs[k].start_line),
    )
    return [(scores[k], defs[k]) for k in order[:_MAX_CANDIDATES]]


def _body_scores(
    defs: Sequence[Definition],
    bodies: Sequence[set[str]],
    weights: Mapping[str, int],
    by_name: Mapping[str, list[int]],
    direct: Mapping[int, float],
    skip: set[str],
) -> dict[int, float]:
    """The weaker signals of :func:`rank`: rare names used in a definition's code, names
    that hold a name said, and the callees of the definitions named directly."""
    out: dict[int, float] = {}
    holders: dict[str, list[int]] = {}
    for term, weight in weights.items():
        if weight >= 2 and term not in skip and _CODE_LIKE.fullmatch(term):
            holders[term] = []
    if holders:
        for k, body in enumerate(bodies):
            for term in body & holders.keys():
                holders[term].append(k)
    rare = max(1, min(_RARE, len(defs) // 5))
    sums: dict[int, float] = {}
    tops: dict[int, int] = {}
    for term, ks in holders.items():
        if not 0 < len(ks) <= rare:
            continue
        weight = weights[term]
        for k in ks:
            if defs[k].name == term:
                continue
            sums[k] = sums.get(k, 0.0) + weight / len(ks)
            tops[k] = max(tops.get(k, 0), weight)
    for k, total in sums.items():
        out[k] = min(total / 2, tops[k] * 0.75)
    # Names that hold a name said in the turn, the call or the task: test_stratified_kfold_x
    # for StratifiedKFold; normalized (no underscores, lower case).
    said = {
        norm: weight
        for term, weight in weights.items()
        if weight >= _TASK and term not in skip and _CODE_LIKE.fullmatch(term)
        for norm in [term.replace("_", "").lower()]
        if len(norm) >= _MIN_INNER_NAME
    }
    if said:
        for k, d in enumerate(defs):
            if d.kind not in ("function", "method"):
                continue
            name = d.name.replace("_", "").lower()
            best = max((w for t, w in said.items() if t in name and t != name), default=0)
            if best and out.get(k, 0) < best / 2:
                out[k] = best / 2
    for k, score in direct.items():
        caller = defs[k]
        scope = caller.qualname.rsplit(".", 1)[0] + "." if "." in caller.qualname else ""
        used = set(bodies[k])
        inside = {caller.name}
        for j in range(k + 1, len(defs)):  # what its methods use, if it is a class
            if defs[j].start_line > caller.end_line:
                break
            used |= bodies[j]
            inside.add(defs[j].name)
        used -= inside  # its own methods show with it, or it is too long to show
        for name in used & by_name.keys():
            for j in by_name[name]:
                callee = defs[j]
                if j == k or callee.kind not in ("function", "method"):
                    continue
                same_scope = scope and callee.qualname.startswith(scope)
                if "." in callee.qualname and not same_scope and len(by_name[name]) > 1:
                    continue
                if out.get(j, 0) < score / 2:
                    out[j] = score / 2
    return out


# ---------------------------------------------------------------------------- slicing


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one file view: the new text (None if left unchanged) and why."""

    path: str
    text: str | None
    reason: str
    tokens_before: int = 0
    tokens_after: int = 0
    shown: tuple[str, ...] = ()
    """Qualnames of the definitions shown in full."""


def _lines_of(ranges: Iterable[tuple[int, int]]) -> set[int]:
    out: set[int] = set()
    for a, b in ranges:
        out.update(range(a, b + 1))
    return out


def _runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _body(listing: Listing, shown: set[int]) -> list[str]:
    """The listing's lines in ``shown``, in order, with one gap line per run not shown."""
    out: list[str] = []
    n = listing.first
    for a, b in [*_runs(x for x in shown if listing.first <= x <= listing.last), (0, -1)]:
        end = listing.last if a == 0 else a - 1
        if end == n:  # one hidden line: showing it costs no more than a gap line
            out.append(listing.render(n))
        elif end > n:
            out.append(listing.gap(n, end))
        out.extend(listing.render(k) for k in range(a, b + 1))
        n = b + 1
    return out


class _Cost:
    """Tokens of a set of listing lines, each line encoded once (an estimate: the sum of
    per-line counts, calibrated); the final text is counted exactly. ``raw`` sums are
    added up as lines are shown, so a candidate costs only its new lines."""

    def __init__(self, listing: Listing, factor: float) -> None:
        self.listing = listing
        self.factor = factor
        self.encoding = get_encoding()
        self.memo: dict[int, int] = {}

    def raw(self, numbers: Iterable[int]) -> int:
        total = 0
        for n in numbers:
            c = self.memo.get(n)
            if c is None:
                c = len(self.encoding.encode_ordinary(self.listing.render(n) + "\n"))
                self.memo[n] = c
            total += c
        return total

    def tokens(self, raw: int) -> int:
        return int(raw * self.factor) + 1


LONG_LINE = 5_000
"""A view with a line longer than this (characters) is left as it is (minified code)."""

MAX_VIEW_CHARS = 1_000_000
"""A view longer than this (characters) is left to ``trim``: tree-sitter parses 0.2 to 2.6 s
per MB (a 10 MB log shown as ``x.py``: 26 s), and a file that size is generated code."""


def slice_view(
    text: str,
    path: str,
    refs: References,
    budget: int,
    *,
    counter: LocalCounter | None = None,
    store: Store | None = None,
) -> Outcome:
    """Slice one file view's text (see :func:`slice_code`); pure apart from ``store.put``."""
    from tidyctx.code import _slicing as slicing

    counter = counter or LocalCounter()
    if MARKER_PREFIX in text:
        return Outcome(path, None, "already cut by tidyctx")
    language = slicing.language_for(path)
    if language is None:
        return Outcome(path, None, "language not known from the file name")
    before = counter.count_text(text)
    if before <= budget:
        return Outcome(path, None, "within budget", before, before)
    listing = parse_listing(text)
    if listing is None or not any(line.strip() for line in listing.lines):
        return Outcome(path, None, "not a plain file listing", before, before)
    if len(text) > MAX_VIEW_CHARS:
        return Outcome(path, None, f"{len(text):,} characters, too long to parse", before, before)
    longest = max(map(len, listing.lines))
    if longest > LONG_LINE and "\x00" not in text:  # binary gets its own reason below
        # Minified or generated code: slices are whole lines, so they could not cut it, and
        # parsing megabytes to find that out costs seconds.
        return Outcome(path, None, f"a line of {longest:,} characters (minified?)", before, before)
    source = listing.source
    try:
        defs = slicing.definitions(source, language=language, path=path)
        if not defs:
            return Outcome(path, None, f"no definitions found ({language})", before, before)
        shape = slicing.outline(source, language=language, path=path)
    except slicing.GrammarMissing as err:
        return Outcome(path, None, f"grammar missing ({err})", before, before)
    except slicing.SlicingError as err:
        return Outcome(path, None, f"could not parse ({err})", before, before)
    shown = _lines_of(shape.ranges)
    cost = _Cost(listing, counter.factor())
    used = cost.raw(shown)
    room = max(budget, cost.tokens(used) + budget // 2)
    chosen: list[str] = []
    skipped: list[str] = []
    bodies = _bodies(defs, listing.lines, listing.first)
    for _, d in rank(defs, refs, bodies, path):
        if d.qualname in chosen or d.qualname in skipped:
            continue
        own = range(max(d.doc_start_line, listing.first), min(d.end_line, listing.last) + 1)
        if cost.tokens(used + cost.raw(n for n in own if n not in shown)) > room:
            skipped.append(d.qualname)  # its own lines do not fit: no need to slice it
            continue
        try:
            piece = slicing.slice_symbol(source, d.qualname, language=language, path=path)
        except slicing.SlicingError:
            continue
        new = _lines_of(piece.ranges) - shown
        extra = cost.raw(new)
        if cost.tokens(used + extra) <= room:
            shown |= new
            used += extra
            chosen.append(d.qualname)
        else:
            skipped.append(d.qualname)
    key = keep_text(store, text) if store is not None else ""
    body = _body(listing, shown)
    hidden = len(listing.lines) - sum(1 for n in shown if listing.first <= n <= listing.last)
    what = f"the outline and {', '.join(chosen)}" if chosen else "the outline"
    also = f"; named but too long to show: {', '.join(skipped[:5])}" if skipped else ""
    back = f'the whole result with tidyctx_expand(id="{key}")' if key else "the whole file"
    note = (
        f"{MARKER_PREFIX}sliced {path} ({language}): showing {what}; {hidden:,} of "
        f"{len(listing.lines):,} lines not shown{also}. Read other lines with the file tool "
        f"(by line number), or {back}]"
    )
    tail = listing.tail
    if tail and not tail.startswith("\n"):
        tail = "\n" + tail  # a note that followed a clipped line goes on its own line
    out = note + "\n" + listing.head + "\n".join(body) + tail
    after = counter.count_text(out)
    if after > before * _SHRINK:
        return Outcome(path, None, "slicing would not make it much smaller", before, before)
    reason = "sliced" + (f" ({'; '.join(shape.errors)})" if shape.errors else "")
    return Outcome(path, out, reason, before, after, tuple(chosen))


# ---------------------------------------------------------------------------- the transform


@dataclass(eq=False)
class SliceCode(Edge):
    """The transform :func:`slice_code` returns; call it on a request."""

    max_tokens: int = 2_000
    tools: Mapping[str, PathSpec] = field(default_factory=lambda: dict(DEFAULT_TOOLS))
    store: Store = field(default_factory=MemoryStore)
    model: str | None = None
    counter: TokenCounter | None = None
    _token: int = field(default_factory=owner_token, repr=False)
    """This transform's own: its state in the memo is found by no other."""

    @property
    def name(self) -> str:
        return f"slice_code(max_tokens={self.max_tokens})"

    def apply(self, request: Request) -> Request:
        return self._run(request)[0]

    def outcomes(self, request: Any) -> list[Outcome]:
        """What happens to each file view of ``request`` (any shape the transform takes):
        sliced, or why it is left as is."""
        return self._run(start(request)[0])[1]

    def describe(self, before: Request, after: Request) -> str:
        outcomes = self._run(before)[1]
        sliced = [o for o in outcomes if o.text is not None]
        left = [o for o in outcomes if o.text is None and o.reason != "within budget"]
        parts = []
        if sliced:
            s = "s" if len(sliced) != 1 else ""
            parts.append(
                f"sliced {len(sliced)} file view{s} ({sum(o.tokens_before for o in sliced):,} "
                f"-> {sum(o.tokens_after for o in sliced):,} tokens)"
            )
            parts += [f"{_short(o.path)}: {o.reason}" for o in sliced if o.reason != "sliced"][:3]
        if left:
            why = "; ".join(f"{_short(o.path)}: {o.reason}" for o in left[:4])
            more = f" and {len(left) - 4} more" if len(left) > 4 else ""
            parts.append(f"left unchanged: {why}{more}")
        if not parts:
            return f"no file view over {self.max_tokens:,} tokens ({len(outcomes)} within budget)"
        return "; ".join(parts)

    def _run(self, request: Request) -> tuple[Request, list[Outcome]]:
        folded = self._run_folded(request)
        return folded if folded is not None else self._run_whole(request)

    def _run_whole(self, request: Request) -> tuple[Request, list[Outcome]]:
        out = normalized(request)
        messages = out.get("messages")
        if not isinstance(messages, list):
            raise ValidationError("messages", "missing", "slice_code() needs a list of messages")
        conversation = Conversation(messages, self.tools)
        outcomes: list[Outcome] = []
        if not conversation.views:
            return as_given(request, out), outcomes
        counter = local_counter(self.counter, self.model or out.get("model"))
        store = guarded(self.store, request)  # renews first what markers passed on name
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for j, block in enumerate(content):
                if not (isinstance(block, dict) and block.get("type") == "tool_result"):
                    continue
                view = conversation.views.get(str(block.get("tool_use_id")))
                inner = block.get("content")
                if view is None or block.get("is_error") or not isinstance(inner, list):
                    continue
                new: list[Any] = []
                for b in inner:
                    if isinstance(b, dict) and b.get("type") == "text" and b.get("text"):
                        outcome = self._outcome(str(b["text"]), view, conversation, counter, store)
                        outcomes.append(outcome)
                        if outcome.text is not None:
                            b = {**b, "text": outcome.text}
                    new.append(b)
                if new != inner:
                    content[j] = {**block, "content": new}
        # A view whose original the store lost within this call (a store too small for the
        # request) goes whole: its note would name nothing.
        return as_given(request, settle(self.store, request, out, what="slice_code")), outcomes

    def _run_folded(self, request: Request) -> tuple[Request, list[Outcome]] | None:
        """What :meth:`_run_whole` returns, paying only for the messages added since the last
        call on this conversation: the state after its messages (:class:`_Fold`) is kept in
        the memo under their token (``resume``/``suspend``), keyed by each message's content.
        None for a request it leaves to :meth:`_run_whole` (not plain data, or a call whose
        id an earlier result already answered)."""
        messages = request.get("messages") if type(request) is dict else None
        if type(messages) is not list:
            return None
        counter = local_counter(self.counter, self.model or request.get("model"))
        items: list[Any] = [
            ("\0slice_code", self._token, self.max_tokens, counter.factor(), *self.tools.items())
        ]
        for message in messages:
            key = _message_key(message)
            if key is None:
                return None
            items.append(key)
        try:
            tokens = prefix_tokens(items)
        except TypeError:  # a tool spec that cannot be a key
            return None
        _, state = resume("slice_code", tokens)
        if not isinstance(state, _Fold):
            state = _Fold(self.tools)
        done = len(state.conversation.said)
        # The last messages change between turns (a block appended to the latest user message,
        # a cache_control moved on): they are read each turn and taken out of the state again,
        # so that the next turn finds it for the messages before them.
        cut = max(done, len(messages) - _TAIL)
        # The messages added: their calls and what they said first, so that one whose call
        # answers an earlier result (the whole request decides its view) leaves the state
        # before anything is written to the store.
        conversation = state.conversation
        for i in range(done, cut):
            if not state.add(i, messages[i]):
                return None
        mark = state.mark()
        for i in range(cut, len(messages)):
            if not state.add(i, messages[i], mark):
                return None
        conversation._prefix = tokens[1:]
        store = guarded(self.store, request)  # renews first what markers passed on name
        for i, j, _, keys in state.edits:  # as each hit of _outcome renews its original
            inner = messages[i]["content"][j]["content"]
            blocks = [{"type": "text", "text": inner}] if isinstance(inner, str) else inner
            for b, key in zip(blocks, keys, strict=True):
                if key is not None:
                    _keep(store, key, str(b["text"]))
        size = state.size
        for i in range(done, cut):
            self._fold_results(state, i, messages[i], counter, store)
        mark.edits, mark.outcomes = len(state.edits), len(state.outcomes)
        mark.size += state.size - size  # what the messages before the mark's results hold
        for i in range(cut, len(messages)):
            self._fold_results(state, i, messages[i], counter, store)
        out = dict(request)
        out["messages"] = new_messages = list(messages)
        outcomes = list(state.outcomes)
        if conversation.views:
            copied: dict[int, list[Any]] = {}
            for i, j, texts, _ in state.edits:
                content = copied.get(i)
                if content is None:
                    content = copied[i] = list(messages[i]["content"])
                    new_messages[i] = {**messages[i], "content": content}
                block = content[j]
                inner = block["content"]
                blocks = [{"type": "text", "text": inner}] if isinstance(inner, str) else inner
                new = [
                    b if t is None else {**b, "text": t} for b, t in zip(blocks, texts, strict=True)
                ]
                content[j] = {**block, "content": new}
            rewritten = [(i, j) for i, j, _, _ in state.edits]
            places = set(rewritten)
            passed: list[str] = []
            for i, j, ids in state.marked:
                if (i, j) in places:  # what settle finds passed on in a rewritten block
                    passed += [x for x in block_ids(new_messages[i]["content"][j]) if x in ids]
                else:
                    passed += ids
            settle(
                self.store, request, out, what="slice_code", passed_on=passed, rewritten=rewritten
            )
        state.rollback(mark)
        suspend("slice_code", tokens[cut], state, state.size)
        return out, outcomes

    def _fold_results(
        self, state: _Fold, i: int, message: dict[str, Any], counter: LocalCounter, store: Store
    ) -> None:
        """The outcomes of the file views message ``i`` answers, as :meth:`_run_whole` finds
        them, recorded in ``state``."""
        content = message.get("content")
        if not isinstance(content, list):
            return
        conversation = state.conversation
        for j, block in enumerate(content):
            if not (isinstance(block, dict) and block.get("type") == "tool_result"):
                continue
            view = conversation.views.get(str(block.get("tool_use_id")))
            inner = block.get("content")
            if isinstance(inner, str) and inner.strip():  # as normalized() reads it
                inner = [{"type": "text", "text": inner}]
            elif isinstance(inner, tuple):
                inner = list(inner)
            if view is None or block.get("is_error") or not isinstance(inner, list):
                continue
            texts: list[str | None] = []
            keys: list[str | None] = []
            for b in inner:
                text = key = None
                if isinstance(b, dict) and b.get("type") == "text" and b.get("text"):
                    original = str(b["text"])
                    outcome = self._outcome(original, view, conversation, counter, store)
                    state.outcomes.append(outcome)
                    if outcome.text is not None:
                        text, key = outcome.text, store_key(original)
                        state.size += len(text) + 64
                texts.append(text)
                keys.append(key)
            if any(t is not None for t in texts):
                state.edits.append((i, j, tuple(texts), tuple(keys)))

    def _outcome(
        self,
        text: str,
        view: FileView,
        conversation: Conversation,
        counter: LocalCounter,
        store: Store,
    ) -> Outcome:
        # Cheap checks first: most views are small or in a language without a grammar.
        if MARKER_PREFIX in text:
            return Outcome(view.path, None, "already cut by tidyctx")
        if len(text) <= self.max_tokens:  # a token is at least one character
            return Outcome(view.path, None, "within budget")
        # The references are a function of the prefix up to the call, the path and the input:
        # keyed by those (one prefix token, not the references' thousands of terms), a hit
        # costs no walk over the conversation.
        key = (
            text,
            view.path,
            conversation.prefix(view),
            view.input,
            self.max_tokens,
            counter.factor(),
        )
        # In the process's byte-bounded memo (tidyctx._memo), where the file text its key holds
        # counts against the bound; under this transform's token (its store got the text).
        made: list[Outcome] = []

        def make() -> Outcome:
            refs = conversation.references(view)
            made.append(
                slice_view(text, view.path, refs, self.max_tokens, counter=counter, store=store)
            )
            return made[0]

        hit = memoized("slice-view", (self._token, *key), make, lambda out: text_size(key, out))
        if not made and hit.text is not None:
            keep_text(store, text)  # renewed, or put back if the store evicted it
        return hit


# ---------------------------------------------------------------------------- the fold


def _message_key(message: Any) -> Hashable | None:
    """A key of everything :class:`SliceCode` reads of ``message`` (all of it, as JSON:
    :func:`~tidyctx._memo.content_key`), or None for a message that is not plain data in the
    shape :func:`~tidyctx._request.normalized` shares."""
    if type(message) is not dict:
        return None
    content = message.get("content")
    if type(content) is list:
        for b in content:
            if type(b) is not dict and type(b) is not str:
                return None
    elif type(content) is tuple:
        return None
    try:
        return content_key(message)
    except (TypeError, RecursionError):
        return None


def _keep(store: Store, key: str, text: str) -> None:
    """:func:`~tidyctx.store.keep_text` of ``text`` whose key is known (hashed once, when its
    view was sliced)."""
    if not callable(getattr(store, "touch", None)) or not refresh(store, key):
        store.put(key, text)


@dataclass(slots=True)
class _Mark:
    """Where a :class:`_Fold` was (see :meth:`_Fold.mark`), and what it overwrote since."""

    said: int
    marked: int
    edits: int
    outcomes: int
    size: int
    overwritten: list[tuple[str, FileView | None, str | None]] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)


class _Fold:
    """What :class:`SliceCode` knows of the first messages of a conversation: what they said
    and the views they open (``conversation``), the outcome of each view they answer, the
    blocks it rewrites, and the store ids each tool block names. Kept in the memo under the
    token of those messages (:func:`~tidyctx._memo.resume`), so the next turn reads only the
    messages it adds."""

    def __init__(self, tools: Mapping[str, PathSpec]) -> None:
        self.conversation = Conversation((), tools, prefix=())
        self.answered: set[str] = set()
        """The ids of the calls that the results read so far answer."""
        self.outcomes: list[Outcome] = []
        self.edits: list[tuple[int, int, tuple[str | None, ...], tuple[str | None, ...]]] = []
        """Per rewritten block (message, block): each text's new text (None: unchanged) and
        the store key of its original."""
        self.marked: list[tuple[int, int, tuple[str, ...]]] = []
        """Per tool block that names store ids (message, block): those ids."""
        self.size = 0

    def mark(self) -> _Mark:
        """A mark to go back to with :meth:`rollback`; :meth:`add` records in it what it
        overwrites."""
        said = len(self.conversation.said)
        return _Mark(said, len(self.marked), len(self.edits), len(self.outcomes), self.size)

    def rollback(self, mark: _Mark) -> None:
        """Forget what was read since ``mark``: the state is as it was then."""
        conversation = self.conversation
        del conversation.said[mark.said :]
        for ident, view, text in reversed(mark.overwritten):
            if view is None:
                conversation.views.pop(ident, None)
            else:
                conversation.views[ident] = view
            if text is None:
                conversation._inputs.pop(ident, None)
            else:
                conversation._inputs[ident] = text
        for view in [v for v in conversation._refs if v.message >= mark.said]:
            del conversation._refs[view]
        self.answered -= mark.answered
        del self.marked[mark.marked :]
        del self.edits[mark.edits :]
        del self.outcomes[mark.outcomes :]
        self.size = mark.size

    def add(self, i: int, message: dict[str, Any], mark: _Mark | None = None) -> bool:
        """Read message ``i`` (recording in ``mark`` what that changes); False when one of its
        calls opens a view under an id that an earlier result answers: which view that result
        gets depends on the whole request."""
        conversation = self.conversation
        content = message.get("content")
        if mark is not None:  # the calls' ids, whose views and inputs the message may replace
            for b in content if isinstance(content, list) else [content]:
                if isinstance(b, Mapping) and b.get("type") == "tool_use":
                    ident = str(b.get("id"))
                    old = (conversation.views.get(ident), conversation._inputs.get(ident))
                    mark.overwritten.append((ident, *old))
        opened = conversation.add(message)
        if any(ident in self.answered for ident in opened):
            return False
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict):
                    continue
                kind = block.get("type")
                if kind == "tool_use" or kind == "tool_result":
                    ids = block_ids(block)
                    if ids:
                        self.marked.append((i, j, tuple(ids)))
                if kind == "tool_result":
                    ident = str(block.get("tool_use_id"))
                    if mark is not None and ident not in self.answered:
                        mark.answered.add(ident)
                    self.answered.add(ident)
        said = conversation.said[-1]
        # Result texts are the request's own (see tidyctx._memo): counted as references.
        self.size += 64 + text_size(said.prose, said.code) + 16 * len(said.results)
        return True


def _short(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def slice_code(
    *,
    max_tokens: int = 2_000,
    tools: Mapping[str, PathSpec] | None = None,
    store: Store | None = None,
    model: str | None = None,
    counter: TokenCounter | None = None,
) -> SliceCode:
    """Replace file views over ``max_tokens`` by the outline and the code the conversation
    names (see the module documentation).

    ``max_tokens`` is counted with ``counter`` when it is a
    :class:`~tidyctx.tokens.LocalCounter`, else with a LocalCounter for ``model`` (the model the
    request is sent to; default: the request's ``model``): budgets are per text, which only a
    LocalCounter counts (:func:`~tidyctx.tokens.local_counter`). It is the size over which a
    view is sliced and the budget of the slice: the outline always shows, and named
    definitions are added while the whole stays within
    ``max_tokens`` (or the outline plus ``max_tokens / 2``, for a file whose outline alone is
    large). ``tools`` maps a tool name to the input key that holds the file path, or to a
    function of the input that returns it (default :data:`DEFAULT_TOOLS`; to add a tool, pass
    ``{**DEFAULT_TOOLS, "my_viewer": "file"}``). ``store`` keeps the originals (default: a
    :class:`~tidyctx.store.MemoryStore` of this transform); give the same store to
    :func:`~tidyctx.transforms._expand.expand_tool`.

    Needs the ``code`` extra (``pip install tidyctx[code]``) for the grammars; a view whose
    grammar is missing is left as it is, and :func:`tidyctx.explain` says so.
    """
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        max_tokens_ok = False
    else:
        max_tokens_ok = max_tokens >= MIN_MAX_TOKENS
    if not max_tokens_ok:
        raise ValueError(
            f"slice_code(max_tokens={max_tokens!r}): the budget must be an integer >= "
            f"{MIN_MAX_TOKENS} (room for the note and the outline)"
        )
    check_counter(counter, "slice_code(counter=...)")
    chosen = dict(DEFAULT_TOOLS if tools is None else tools)
    for tool, spec in chosen.items():
        if not isinstance(tool, str) or not tool:
            raise ValueError(f"slice_code(tools=...): tool names are strings, got {tool!r}")
        if not (isinstance(spec, str) and spec) and not callable(spec):
            raise ValueError(
                f"slice_code(tools={{{tool!r}: {spec!r}}}): give the input key that holds the "
                'path (e.g. "path") or a function of the input that returns it'
            )
    return SliceCode(
        max_tokens=max_tokens,
        tools=chosen,
        store=store if store is not None else MemoryStore(),
        model=model,
        counter=counter,
    )
