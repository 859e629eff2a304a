"""Slicing on real file views: slice size, speed, and replay cost and recall of slice_code().

    python benchmarks/slice_replay.py [TRACE.json ...] [--budgets 1000,2000,4000]

On the coding-agent traces (Claude Code, OpenHands, SWE-agent: their file views are real):

(a) For each file view in a language with a grammar: tokens of the view against the slice
    (tidyctx.slice_symbol) of the symbols the agent touched *later*: definitions named in later
    assistant text or tool inputs (qualified name, ``Class.method`` tail, or a bare name shared
    by at most 3 definitions), and the definitions around the text of later edits of the same
    file. Median ratio over the views with at least one touched symbol; target < 10%. Beside
    it, what slice_code() actually sends (outline + the slices it chose when the view entered
    the conversation, before any of those later turns) and how many of the later-touched
    symbols it showed in full.
(b) Throughput of parse + outline + slice, on first sight of each text (the parse is memoized
    by content hash, so each text is measured once): the trace views, and every .py file of
    this interpreter's standard library. Target > 5 MB/s.
(c) Turn replay (benchmarks/replay.py) of the coding traces: input cost as a ratio to the
    caching floor, and reference recall (DESIGN.md), for order+cache and
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
from tidyctx.recall import reference_recall
from tidyctx.request import normalize
from tidyctx.tokens import LocalCounter
from tidyctx.transforms import _grammars, slicing
from tidyctx.transforms.slice_code import (
    Conversation,
    FileView,
    parse_listing,
    slice_code,
    slice_view,
)

CODING = ("cc-", "openhands-", "sweagent-")
BUDGETS = (1000, 2000, 4000)
COUNTER = LocalCounter(replay.REPLAY_MODEL)
_AMBIGUOUS = 3


def coding_traces(argv: Sequence[str]) -> list[Path]:
    paths = replay.trace_paths(argv)
    named = [a for a in argv if not a.startswith("-")]
    return paths if named else [p for p in paths if p.name.startswith(CODING)]


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
    """Qualnames of the definitions the agent touched after the view."""
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


def part_a(paths: Sequence[Path], budget: int) -> list[float]:
    print("(a) file views: slice of the symbols touched later, vs the view (tokens)")
    print(
        f"{'trace':<30}{'file':<28}{'lines':>6}{'view':>7}{'touched':>8}{'slice':>7}"
        f"{'ratio':>7}  {'sent':>6}{'ratio':>7}{'shown':>7}  note"
    )
    ratios: list[float] = []
    sent_ratios: list[float] = []
    shown_total = touched_total = 0
    skipped: dict[str, int] = {}
    for path in paths:
        for run_id, view, text, conversation, messages, i in views_of(path):
            language = slicing.language_for(view.path)
            name = view.path.replace("\\", "/").rsplit("/", 1)[-1]
            if language is None:
                skipped["no grammar for the file type"] = (
                    skipped.get("no grammar for the file type", 0) + 1
                )
                continue
            listing = parse_listing(text)
            if listing is None or listing.first != 1:
                why = "partial view (line range)" if listing else "not a plain listing"
                skipped[why] = skipped.get(why, 0) + 1
                continue
            source = listing.source
            defs = slicing.definitions(source, language=language, path=view.path)
            later, edits = _later(messages, i)
            hit = touched(defs, source, view.path, later, edits)
            view_tokens = COUNTER.count_text(text)
            outcome = slice_view(
                text, view.path, conversation.references(view), budget, counter=COUNTER
            )
            sent = outcome.tokens_after if outcome.text is not None else view_tokens
            shown = _shown(outcome, hit, defs)
            note = outcome.reason if outcome.text is None else ""
            if not hit:
                skipped["no symbol of it touched later"] = (
                    skipped.get("no symbol of it touched later", 0) + 1
                )
                print(
                    f"{run_id[:29]:<30}{name[:27]:<28}{len(listing.lines):>6}{view_tokens:>7}"
                    f"{0:>8}{'-':>7}{'-':>7}  {sent:>6}{sent / view_tokens:>7.1%}{'-':>7}  "
                    f"{note or 'nothing touched later'}"
                )
                continue
            piece = slicing.slice_symbol(source, hit, language=language, path=view.path)
            tokens = COUNTER.count_text(str(piece))
            ratio = tokens / view_tokens
            ratios.append(ratio)
            if view_tokens > budget:
                sent_ratios.append(sent / view_tokens)
                shown_total += shown
                touched_total += len(hit)
            print(
                f"{run_id[:29]:<30}{name[:27]:<28}{len(listing.lines):>6}{view_tokens:>7}"
                f"{len(hit):>8}{tokens:>7}{ratio:>7.1%}  {sent:>6}{sent / view_tokens:>7.1%}"
                f"{shown:>4}/{len(hit):<2}  {note}"
            )
    if ratios:
        print(
            f"median slice / view over {len(ratios)} views with a touched symbol: "
            f"{statistics.median(ratios):.1%} (target < 10%); mean {statistics.fmean(ratios):.1%}"
        )
    if sent_ratios:
        print(
            f"slice_code(max_tokens={budget}) on the {len(sent_ratios)} of them over budget: "
            f"median sent / view {statistics.median(sent_ratios):.1%}; later-touched symbols "
            f"shown in full: {shown_total}/{touched_total} "
            f"({shown_total / max(touched_total, 1):.0%}), chosen before the agent touched them"
        )
    for why, n in sorted(skipped.items()):
        print(f"  views left out of the ratio: {n:>3} {why}")
    return ratios


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
            view_texts.append((text + "\n", view, conversation))
    started = time.perf_counter()
    size = 0
    for text, view, conversation in view_texts:
        size += len(text.encode("utf-8"))
        slice_view(text, view.path, conversation.references(view), 2000, counter=COUNTER)
    elapsed = time.perf_counter() - started
    print(
        f"  slice_view (listing parse, parse, outline, ranking, slices, token counts) on "
        f"{len(view_texts)} views: {size / 1e6:.2f} MB in {elapsed:.2f} s = "
        f"{size / 1e6 / elapsed:.1f} MB/s"
    )


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
        print(f"{run.id[:43]:<44}{floor:>9.3f}{cells}")
    cells = ""
    for label in labels:
        cost, hit, refs = totals[label]
        cells += f"{cost / total_floor:>14.3f} ({hit / max(refs, 1):.3f})"
    print(f"{'all':<44}{total_floor:>9.3f}{cells}")
    base = totals["order+cache"][0]
    for label in labels[1:]:
        print(
            f"  {label}: {sliced_views[label]} file views sliced in the final requests; cost "
            f"{totals[label][0] / base:.3f}x order+cache, recall "
            f"{totals[label][1]}/{totals[label][2]} references"
        )


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    paths = coding_traces(argv)
    budgets = _budgets(argv)
    part_a(paths, 2000)
    stdlib_ratios()
    part_b(paths)
    part_c(paths, budgets)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
