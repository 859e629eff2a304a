"""Slicing on real file views: slice size, speed, and replay cost and recall of slice_code().

    python benchmarks/slice_replay.py [TRACE.json ...] [--budgets 1000,2000,4000] [--parts abc]

On the coding-agent traces (Claude Code, OpenHands, SWE-agent: their file views are real):

(a) For each file view in a language with a grammar: tokens of the view against the slice
    (tidyctx.slice_symbol) of the symbols the agent used *later*, by two rulers printed side
    by side. OLD ("named"): definitions named anywhere in later assistant text or tool inputs
    (qualified name, ``Class.method`` tail, or a bare name shared by at most 3 definitions; a
    named class counts whole), and the definition around the text of later edits. NEW
    ("acted"): the smallest definitions (slice_lines) around the lines the agent later acted
    on in this file (str_replace/Edit/MultiEdit old texts located in the view, inserts,
    line-range views and Reads, traceback frames), and functions and ``Class.method``s named
    later outside edit payloads; a class only when edited at class level. Median ratio over
    the views with at least one; target < 10%. OpenHands clips views at ~16 KB: the ratio is
    against the view as the agent got it. Beside it, what slice_code() actually sends
    (outline + the slices it chose when the view entered the conversation, before any of
    those later turns), how many of the used symbols it showed in full, and a list of those
    it missed with the score they had when the view entered.
(b) Throughput of parse + outline + slice, on first sight of each text (the parse is memoized
    by content hash, so each text is measured once): the trace views, and every .py file of
    this interpreter's standard library; then slice_code's whole work per view (names said
    before it, listing, ranking, slices, exact token counts), with where the time goes.
    Target > 5 MB/s.
(c) Turn replay (benchmarks/replay.py) of the coding traces: input cost as a ratio to the
    caching floor, and reference recall (docs/benchmarks.md), for order+cache and
    order+slice_code+cache at each budget. Target recall >= 0.97.
"""

from __future__ import annotations

import re
import statistics
import sys
import sysconfig
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import replay
from tree_sitter import Parser

import tidyctx as tc
from tidyctx import normalize
from tidyctx import recall as recall_module
from tidyctx.code import _grammars
from tidyctx.code import _slicing as slicing
from tidyctx.code._views import parse_listing
from tidyctx.recall import reference_recall
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._slice_code import (
    Conversation,
    FileView,
    _bodies,
    _terms,
    rank,
    slice_code,
    slice_view,
)

CODING = ("cc-", "openhands-", "sweagent-")
BUDGETS = (1000, 2000, 4000)
COUNTER = LocalCounter(replay.REPLAY_MODEL)
_AMBIGUOUS = 3
LOST_BELOW = 0.98  # runs whose recall is below this get a sample of the lost references
LOST_SAMPLE = 25


def coding_traces(argv: Sequence[str]) -> list[Path]:
    named = [
        a
        for k, a in enumerate(argv)
        if not a.startswith("-") and (k == 0 or argv[k - 1][:2] != "--")
    ]
    paths = replay.trace_paths(named)
    return paths if named else [p for p in paths if p.name.startswith(CODING)]


def _parts(argv: Sequence[str]) -> str:
    for k, a in enumerate(argv):
        if a == "--parts" and k + 1 < len(argv):
            return argv[k + 1]
    return "abc"


def _budgets(argv: Sequence[str]) -> tuple[int, ...]:
    for k, a in enumerate(argv):
        if a == "--budgets" and k + 1 < len(argv):
            return tuple(int(x) for x in argv[k + 1].split(","))
    return BUDGETS


# ---------------------------------------------------------------------------- file views


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(b.get("text") or "")
        for b in content or []
        if isinstance(b, Mapping) and b.get("type") == "text"
    )


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _later(messages: Sequence[Mapping[str, Any]], start: int) -> tuple[str, list[str]]:
    """Assistant text and tool inputs after message ``start``, and the edits' old texts."""
    words: list[str] = []
    edits: list[str] = []
    for m in messages[start + 1 :]:
        if m.get("role") != "assistant" or not isinstance(m.get("content"), list):
            continue
        for b in m["content"]:
            if b.get("type") == "text":
                words.append(str(b.get("text") or ""))
            elif b.get("type") == "tool_use":
                inp = b.get("input") or {}
                words.extend(_strings(inp))
                for key in ("old_str", "old_string"):
                    if isinstance(inp.get(key), str) and inp[key].strip():
                        edits.append(str(inp.get("path") or inp.get("file_path") or ""))
                        edits.append(inp[key])
    return "\n".join(words), edits


def touched(
    defs: Sequence[slicing.Definition], source: str, path: str, later: str, edits: list[str]
) -> list[str]:
    """The OLD ruler, kept for comparison: qualnames of the definitions named after the view
    (anywhere in later assistant text and tool inputs) and around later edits."""
    names = set(re.findall(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*", later))
    parts = {p for n in names for p in n.split(".")}
    tails = {".".join(n.split(".")[-2:]) for n in names if "." in n}
    count: dict[str, int] = {}
    for d in defs:
        count[d.name] = count.get(d.name, 0) + 1
    out: list[str] = []
    for d in defs:
        tail = ".".join(d.qualname.split(".")[-2:])
        if (
            d.qualname in names
            or ("." in d.qualname and tail in tails)
            or (count[d.name] <= _AMBIGUOUS and d.name in parts)
        ):
            out.append(d.qualname)
    # Edits of this file: the innermost definition around the edited text.
    lines = source.split("\n")
    for k in range(0, len(edits), 2):
        edit_path, old = edits[k], edits[k + 1]
        if not edit_path or not (edit_path.endswith(path) or path.endswith(edit_path)):
            continue
        at = source.find(old)
        if at < 0:
            continue
        line = source.count("\n", 0, at) + 1
        last = line + old.count("\n")
        inner = [d for d in defs if d.start_line <= line and last <= d.end_line]
        if inner and len(lines) >= line:
            best = min(inner, key=lambda d: d.end_line - d.start_line)
            out.append(best.qualname)
    # A class whose members were touched is represented by them (their slices carry its
    # header); a class named alone counts whole.
    found = set(out)
    kinds = {d.qualname: d.kind for d in defs}
    return sorted(
        q for q in found if kinds.get(q) != "class" or not any(o.startswith(q + ".") for o in found)
    )


def views_of(path: Path) -> list[tuple[str, FileView, str, Conversation, list[Any], int]]:
    """(trace, view, result text, conversation, messages, index of the result's message)."""
    run = replay.load(path)
    last = run.turns[-1]
    messages = normalize({"messages": [*last.request["messages"], last.reply]})["messages"]
    conversation = Conversation(messages)
    out = []
    for i, m in enumerate(messages):
        for b in m["content"] if isinstance(m.get("content"), list) else []:
            if b.get("type") == "tool_result" and b.get("tool_use_id") in conversation.views:
                view = conversation.views[b["tool_use_id"]]
                out.append((run.id, view, _texts(b.get("content")), conversation, messages, i))
    return out


# ---------------------------------------------------------------------------- later actions

_EDIT_KEYS = ("old_str", "new_str", "file_text", "old_string", "new_string", "content", "edits")
_FRAME = re.compile(r"""File "([^"\n]+)", line (\d+)""")


def _same_path(a: str, b: str) -> bool:
    a, b = a.replace("\\", "/"), b.replace("\\", "/")
    return bool(a and b) and (a.endswith(b) or b.endswith(a))


def _actions(
    messages: Sequence[Mapping[str, Any]], start: int, path: str
) -> tuple[str, list[tuple[str, Any]]]:
    """What the agent did after message ``start``: the words of its later turns (text and
    tool inputs, edit payloads left out), and its actions on ``path``: ("text", old text of
    an edit), ("lines", (a, b)) for an insert, a view or Read with a line range, and a
    traceback frame in a later tool result."""
    words: list[str] = []
    acts: list[tuple[str, Any]] = []
    for m in messages[start + 1 :]:
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for b in content:
            if m.get("role") == "user" and b.get("type") == "tool_result":
                for f in _FRAME.finditer(_texts(b.get("content"))):
                    if _same_path(f.group(1), path):
                        acts.append(("lines", (int(f.group(2)), int(f.group(2)))))
                continue
            if m.get("role") != "assistant":
                continue
            if b.get("type") == "text":
                words.append(str(b.get("text") or ""))
            if b.get("type") != "tool_use" or not isinstance(b.get("input"), Mapping):
                continue
            inp = b["input"]
            words.extend(_strings({k: v for k, v in inp.items() if k not in _EDIT_KEYS}))
            where = str(inp.get("path") or inp.get("file_path") or "")
            if not _same_path(where, path):
                continue
            edits = [inp] + [e for e in inp.get("edits") or [] if isinstance(e, Mapping)]
            for e in edits:  # str_replace, Edit, MultiEdit
                for key in ("old_str", "old_string"):
                    if isinstance(e.get(key), str) and e[key].strip():
                        acts.append(("text", e[key]))
            if inp.get("command") == "insert" and isinstance(inp.get("insert_line"), int):
                n = inp["insert_line"]
                acts.append(("lines", (max(n, 1), n + 1)))
            span = inp.get("view_range")
            if inp.get("command") == "view" and isinstance(span, list) and len(span) == 2:
                acts.append(("lines", (int(span[0]), int(span[1]))))
            if b.get("name") == "Read" and ("offset" in inp or "limit" in inp):
                a = int(inp.get("offset") or 1)
                acts.append(("lines", (a, a + int(inp.get("limit") or 2_000) - 1)))
    return "\n".join(words), acts


def _innermost(source: str, language: str, path: str, lines: Sequence[int]) -> set[str]:
    """The smallest definitions around ``lines`` (slicing.slice_lines), a class only when
    none of its members is among them (the lines were at class level)."""
    if not lines:
        return set()
    piece = slicing.slice_lines(source, sorted(set(lines)), language=language, path=path)
    found = {re.sub(r"#\d+$", "", q) for q in piece.symbols}
    return {q for q in found if not any(o.startswith(q + ".") for o in found)}


def acted_on(
    defs: Sequence[slicing.Definition],
    source: str,
    language: str,
    path: str,
    words: str,
    acts: Sequence[tuple[str, Any]],
) -> list[str]:
    """Qualnames of the definitions the agent acted on after the view: the smallest
    definitions around the lines of later edits (old text located in the view), inserts,
    line-range views and traceback frames of this file, and the functions and
    ``Class.method``s named later (a class named alone does not count)."""
    lines = source.split("\n")
    n = len(lines)
    out: set[str] = set()
    for kind, what in acts:
        if kind == "text":
            at = source.find(what)
            if at < 0:
                continue  # not in the view (clipped, or the file changed since)
            a = source.count("\n", 0, at) + 1
            span = range(a, a + what.count("\n") + 1)
        else:
            b = n if what[1] < 0 else min(what[1], n)
            span = range(max(what[0], 1), b + 1)
        picked = [k for k in span if lines[k - 1].strip()]
        out |= _innermost(source, language, path, picked)
    names = set(re.findall(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*", words))
    tails = {".".join(x.split(".")[-2:]) for x in names if "." in x}
    bare = {x.rsplit(".", 1)[-1] for x in names}
    count: dict[str, int] = {}
    for d in defs:
        count[d.name] = count.get(d.name, 0) + 1
    for d in defs:
        if d.kind == "class":
            continue
        if "." in d.qualname:
            if d.qualname in names or ".".join(d.qualname.split(".")[-2:]) in tails:
                out.add(d.qualname)
        elif count[d.name] == 1 and d.name in bare:
            out.add(d.qualname)
    return sorted(out)


def part_a(paths: Sequence[Path], budget: int) -> list[float]:
    print("(a) file views: the slice of the symbols of the file used later, vs the view (tokens)")
    print(
        "  two rulers for 'used later', side by side:\n"
        "  named = OLD ruler: definitions whose name occurs anywhere in later assistant text or\n"
        "          tool inputs (qualname, Class.method tail, or a bare name shared by <= 3\n"
        "          definitions; a named class counts whole), plus the innermost definition\n"
        "          around later str_replace/Edit old texts\n"
        "  acted = NEW ruler: the smallest definitions (slice_lines) around the lines the agent\n"
        "          later acted on in this file (edit old texts located in the view, inserts,\n"
        "          line-range views, traceback frames), plus functions and Class.methods\n"
        "          explicitly named later (not edit payloads); a class only if edited at\n"
        "          class level\n"
        "  ratio = slice tokens / tokens of the view as the agent got it. OpenHands clips a\n"
        "  view at ~16 KB (~450 lines, 'clip' below): there the ratio is against the clipped\n"
        "  view, not the whole file, and later edits beyond the clip are not counted."
    )
    print(
        f"{'trace':<24}{'file':<20}{'lines':>6}{'view':>6}{'':>5}"
        f"{'named':>6}{'slice':>6}{'ratio':>7}{'acted':>6}{'slice':>6}{'ratio':>7}"
        f"{'sent':>6}{'ratio':>7}{'shown':>7}  note"
    )
    old_ratios: list[float] = []
    new_ratios: list[float] = []
    sent_ratios: list[float] = []
    shown_new = total_new = shown_old = total_old = 0
    missed: list[str] = []
    skipped: dict[str, int] = {}
    clipped_views = 0

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    def cell(hit: Sequence[str], source: str, language: str, path: str, view: int) -> str:
        if not hit:
            return f"{0:>6}{'-':>6}{'-':>7}"
        piece = slicing.slice_symbol(source, hit, language=language, path=path)
        tokens = COUNTER.count_text(str(piece))
        return f"{len(hit):>6}{tokens:>6}{tokens / view:>7.1%}"

    for path in paths:
        for run_id, view, text, conversation, messages, i in views_of(path):
            language = slicing.language_for(view.path)
            name = view.path.replace("\\", "/").rsplit("/", 1)[-1]
            if language is None:
                skip("no grammar for the file type")
                continue
            listing = parse_listing(text)
            if listing is None or listing.first != 1:
                skip("partial view (line range)" if listing else "not a plain listing")
                continue
            source = listing.source
            defs = slicing.definitions(source, language=language, path=view.path)
            later, edits = _later(messages, i)
            old = touched(defs, source, view.path, later, edits)
            words, acts = _actions(messages, i, view.path)
            new = acted_on(defs, source, language, view.path, words, acts)
            view_tokens = COUNTER.count_text(text)
            refs = conversation.references(view)
            outcome = slice_view(text, view.path, refs, budget, counter=COUNTER)
            sent = outcome.tokens_after if outcome.text is not None else view_tokens
            clip = "clip" if "<response clipped>" in text else ""
            clipped_views += bool(clip)
            note = outcome.reason if outcome.text is None else ""
            if not old and not new:
                skip("nothing of it named or acted on later")
            old_cell = cell(old, source, language, view.path, view_tokens)
            new_cell = cell(new, source, language, view.path, view_tokens)
            shown = "-"
            if new:
                piece = slicing.slice_symbol(source, new, language=language, path=view.path)
                new_ratios.append(COUNTER.count_text(str(piece)) / view_tokens)
                k = _shown(outcome, new, defs)
                shown = f"{k}/{len(new)}"
                if view_tokens > budget:
                    shown_new += k
                    total_new += len(new)
                    bodies = _bodies(defs, listing.lines, listing.first)
                    weights = {d.qualname: w for w, d in rank(defs, refs, bodies, view.path)}
                    missed += [
                        f"    {run_id[:40]} {name}: {q} (score {weights.get(q, 0):.2g})"
                        for q in _not_shown(outcome, new, defs)
                    ]
            if old:
                piece = slicing.slice_symbol(source, old, language=language, path=view.path)
                old_ratios.append(COUNTER.count_text(str(piece)) / view_tokens)
                if view_tokens > budget:
                    shown_old += _shown(outcome, old, defs)
                    total_old += len(old)
            if view_tokens > budget and (old or new):
                sent_ratios.append(sent / view_tokens)
            print(
                f"{run_id[:23]:<24}{name[:19]:<20}{len(listing.lines):>6}{view_tokens:>6}"
                f"{clip:>5}{old_cell}{new_cell}{sent:>6}{sent / view_tokens:>7.1%}{shown:>7}  "
                f"{note}"
            )
    if old_ratios:
        print(
            f"OLD ruler (named later): median slice / view over {len(old_ratios)} views: "
            f"{statistics.median(old_ratios):.1%}; mean {statistics.fmean(old_ratios):.1%}"
        )
    if new_ratios:
        print(
            f"NEW ruler (acted on later): median slice / view over {len(new_ratios)} views: "
            f"{statistics.median(new_ratios):.1%} (target < 10%); mean "
            f"{statistics.fmean(new_ratios):.1%}"
        )
    print(f"  {clipped_views} of the views were clipped by the agent (ratio against the view)")
    if sent_ratios:
        print(
            f"slice_code(max_tokens={budget}) on the {len(sent_ratios)} of them over budget: "
            f"median sent / view {statistics.median(sent_ratios):.1%}; shown in full, chosen "
            f"before the agent used them: acted on later {shown_new}/{total_new} "
            f"({shown_new / max(total_new, 1):.0%}), named later {shown_old}/{total_old} "
            f"({shown_old / max(total_old, 1):.0%})"
        )
    if missed:
        print("  acted on later but not shown in full (rank score at the view; 0 = no signal):")
        print("\n".join(missed))
    for why, n in sorted(skipped.items()):
        print(f"  views left out: {n:>3} {why}")
    return new_ratios


def stdlib_ratios(per_file: int = 4) -> None:
    """Median tokens of one function or method's slice against its whole file, over the
    standard library (up to ``per_file`` definitions per file, evenly spaced)."""
    ratios: list[float] = []
    for source, _, _ in _stdlib_files():
        defs = [d for d in slicing.definitions(source, "python") if d.kind != "class"]
        if not defs:
            continue
        whole = COUNTER.count_text(source)
        step = max(1, len(defs) // per_file)
        for d in defs[::step][:per_file]:
            piece = slicing.slice_symbol(source, d.qualname, "python")
            ratios.append(COUNTER.count_text(str(piece)) / max(whole, 1))
    print(
        f"standard library: one function or method's slice / its file, median over "
        f"{len(ratios)} definitions: {statistics.median(ratios):.1%} "
        f"(mean {statistics.fmean(ratios):.1%})"
    )


def _stdlib_files() -> list[tuple[str, str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for p in sorted(stdlib.rglob("*.py")):
        if "site-packages" in p.parts:
            continue
        try:
            files.append((p.read_text(encoding="utf-8"), "python", str(p)))
        except (OSError, UnicodeDecodeError):
            continue
    return files


def _shown(outcome: Any, hit: Sequence[str], defs: Sequence[slicing.Definition]) -> int:
    """How many of ``hit`` slice_code's output shows in full (every line of the definition)."""
    if outcome.text is None:
        return len(hit)  # left whole
    numbers = set()
    for line in outcome.text.split("\n"):
        head = line.lstrip(" ")
        digits = head[: len(head) - len(head.lstrip("0123456789"))]
        if digits and head[len(digits) : len(digits) + 1] in ("\t", "→", ":"):
            numbers.add(int(digits))
    spans = {d.qualname: (d.start_line, d.end_line) for d in defs}
    return sum(1 for q in hit if all(n in numbers for n in range(spans[q][0], spans[q][1] + 1)))


def _not_shown(outcome: Any, hit: Sequence[str], defs: Sequence[slicing.Definition]) -> list[str]:
    return [q for q in hit if not _shown(outcome, [q], defs)]


# ---------------------------------------------------------------------------- throughput


def _slice_all(source: str, language: str, path: str) -> None:
    defs = slicing.definitions(source, language=language, path=path)
    slicing.outline(source, language=language, path=path)
    tops = [d.qualname for d in defs if "." not in d.qualname][:8]
    if tops:
        slicing.slice_symbol(source, tops, language=language, path=path)


def part_b(paths: Sequence[Path]) -> None:
    print("\n(b) throughput: parse + outline + slice of up to 8 definitions, first sight")
    texts: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for path in paths:
        for _, view, text, _, _, _ in views_of(path):
            language = slicing.language_for(view.path)
            listing = parse_listing(text)
            if language and listing is not None and text not in seen:
                seen.add(text)
                texts.append((listing.source + "\n# trace view", language, view.path))
    _rate("trace file views", texts)
    files = _stdlib_files()
    _rate(f"standard library ({sysconfig.get_paths()['stdlib']})", files)
    parser = Parser(_grammars.load("python").language)
    started = time.perf_counter()
    size = 0
    for source, _, _ in files:
        data = source.encode("utf-8")
        size += len(data)
        parser.parse(data)
    elapsed = time.perf_counter() - started
    print(
        f"  for scale, tree-sitter's parse alone (no slicing) on the same files: "
        f"{size / 1e6 / elapsed:.1f} MB/s"
    )
    view_texts = []
    for path in paths:
        for _, view, text, conversation, _, _ in views_of(path):
            view_texts.append((text, view, conversation))
    elapsed, parts = _time_views(view_texts)
    size = sum(len(text.encode("utf-8")) for text, _, _ in view_texts)
    print(
        f"  slice_code's work per view (names and lines said before it, listing parse, parse, "
        f"outline, ranking, slices, token counts) on {len(view_texts)} views, first sight: "
        f"{size / 1e6:.2f} MB in {elapsed:.2f} s = {size / 1e6 / elapsed:.1f} MB/s"
    )
    rest = elapsed - sum(parts.values())
    print(
        "    of which: "
        + ", ".join(f"{name} {t:.2f} s" for name, t in parts.items())
        + f", the rest of slice_view (listing parse, ranking, per-line costs) {rest:.2f} s"
    )


def _time_views(
    items: Sequence[tuple[str, FileView, Conversation]],
) -> tuple[float, dict[str, float]]:
    """Time Conversation.references + slice_view on each view, first sight: the parse memo
    and the memo of names per text are emptied first, the tokenizer is loaded before (a
    one-time cost). The calls into the slicing core and the exact token counts are timed
    apart by wrapping them for the run."""
    COUNTER.count_text("load the tokenizer")
    cache = getattr(slicing, "_CACHE", None)  # slicing's parse memo, if it keeps one
    if cache is not None:
        cache.clear()
    _terms.cache_clear()
    spent = {"references": 0.0, "slicing core (tree-sitter)": 0.0, "exact token counts": 0.0}

    def timed(f: Any, key: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t

        return run

    names = ("definitions", "outline", "slice_symbol")
    originals = {name: getattr(slicing, name) for name in names}
    counter = LocalCounter(replay.REPLAY_MODEL)
    counter.count_text = timed(counter.count_text, "exact token counts")  # type: ignore[method-assign]
    for name in names:
        setattr(slicing, name, timed(originals[name], "slicing core (tree-sitter)"))
    try:
        started = time.perf_counter()
        for text, view, conversation in items:
            t = time.perf_counter()
            refs = conversation.references(view)
            spent["references"] += time.perf_counter() - t
            slice_view(text, view.path, refs, 2000, counter=counter)
        elapsed = time.perf_counter() - started
    finally:
        for name in names:
            setattr(slicing, name, originals[name])
    return elapsed, spent


def _rate(label: str, items: Sequence[tuple[str, str, str]]) -> None:
    size = 0
    started = time.perf_counter()
    failed = 0
    for source, language, path in items:
        size += len(source.encode("utf-8"))
        try:
            _slice_all(source, language, path)
        except slicing.SlicingError:
            failed += 1
    elapsed = time.perf_counter() - started
    extra = f", {failed} refused" if failed else ""
    print(
        f"  {label}: {len(items)} files, {size / 1e6:.2f} MB in {elapsed:.2f} s = "
        f"{size / 1e6 / elapsed:.1f} MB/s{extra}"
    )


# ---------------------------------------------------------------------------- replay


def part_c(paths: Sequence[Path], budgets: Sequence[int]) -> None:
    print("\n(c) turn replay: input cost / caching floor (reference recall)")
    labels = ["order+cache", *(f"+slice_code({b})" for b in budgets)]
    print(f"{'trace':<44}{'floor $':>9}" + "".join(f"{label:>22}" for label in labels))
    totals: dict[str, list[float]] = {label: [0.0, 0, 0] for label in labels}
    total_floor = 0.0
    sliced_views: dict[str, int] = {label: 0 for label in labels}
    lost: list[str] = []
    for path in paths:
        run = replay.load(path)
        requests = replay.requests_of(run)
        ts = run.timestamps()
        cache = tc.cache(ttl="1h", stable_ttl="1h") if replay.has_pauses(ts) else tc.cache()
        floor = replay.floor_cost(requests)
        total_floor += floor
        replies = [t.reply for t in run.turns]
        strategies: dict[str, Any] = {"order+cache": None}
        for b in budgets:
            strategies[f"+slice_code({b})"] = slice_code(max_tokens=b)
        cells = ""
        for label, slicer in strategies.items():
            steps = [tc.order()] + ([slicer] if slicer else []) + [cache]
            sent = [tc.pipe(r, *steps) for r in requests]
            for r in sent:
                tc.validate(r)
            cost = replay.input_cost(replay.simulate(sent, ts))
            recall = reference_recall(requests, replies, sent)
            totals[label][0] += cost
            totals[label][1] += recall.recalled
            totals[label][2] += recall.references
            if slicer:
                sliced_views[label] += sum(
                    1 for o in slicer.outcomes(tc.pipe(requests[-1], tc.order())) if o.text
                )
            cells += f"{cost / floor:>14.3f} ({recall.ratio:.3f})"
            if slicer and recall.ratio < LOST_BELOW:
                lost.append(f"  {run.id[:43]} {label} {recall.ratio:.3f}, lost: ")
                lost[-1] += ", ".join(_lost(requests, replies, sent)[:LOST_SAMPLE])
        print(f"{run.id[:43]:<44}{floor:>9.3f}{cells}")
    cells = ""
    for label in labels:
        cost, hit, refs = totals[label]
        cells += f"{cost / total_floor:>14.3f} ({hit / max(refs, 1):.3f})"
    print(f"{'all':<44}{total_floor:>9.3f}{cells}")
    print(f"references lost where recall < {LOST_BELOW} (a sample; code-like names first):")
    print("\n".join(lost) if lost else "  none")
    base = totals["order+cache"][0]
    for label in labels[1:]:
        print(
            f"  {label}: {sliced_views[label]} file views sliced in the final requests; cost "
            f"{totals[label][0] / base:.3f}x order+cache, recall "
            f"{totals[label][1]}/{totals[label][2]} references"
        )


def _lost(
    originals: Sequence[Mapping[str, Any]],
    replies: Sequence[Mapping[str, Any] | None],
    sent: Sequence[Mapping[str, Any]],
) -> list[str]:
    """The references (tidyctx.recall) the transformed requests lost, code-like ones first."""
    out: list[str] = []
    for original, reply, changed in zip(originals, replies, sent, strict=True):
        if not reply:
            continue
        earlier = recall_module._tool_result_text(original)
        have = "\n".join(recall_module.texts_of(changed))
        out += sorted(
            r
            for r in recall_module.references(recall_module._reply_text(reply))
            if r in earlier and r not in have
        )
    return sorted(dict.fromkeys(out), key=lambda r: (not re.search(r"_|[a-z][A-Z]", r), r))


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    paths = coding_traces(argv)
    budgets = _budgets(argv)
    parts = _parts(argv)
    if "a" in parts:
        part_a(paths, 2000)
        stdlib_ratios()
    if "b" in parts:
        part_b(paths)
    if "c" in parts:
        part_c(paths, budgets)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
