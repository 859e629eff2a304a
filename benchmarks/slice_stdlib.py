"""Ground truth for Python slicing: every definition of the standard library against ``ast``.

    python benchmarks/slice_stdlib.py              # the whole stdlib of this interpreter
    python benchmarks/slice_stdlib.py --limit 50   # the first 50 files

For every ``.py`` file under ``sysconfig.get_paths()["stdlib"]`` (test directories excluded,
and files that ``ast`` cannot parse or that are not UTF-8), every class and function, top-level
or nested, as ``ast`` sees it, is sliced with ``slice_symbol(source, key)``. It agrees when

* the set of keys matches: qualnames join enclosing class/function names with ``.``
  (``Outer.method.inner``), a qualname seen again in the file gets ``#2``, ``#3``, ...;
* ``Slice.spans[key]`` equals ``(first decorator lineno or lineno, end_lineno)`` from ``ast``;
* the slice's text, gutters removed and each ``⋮`` marker line replaced by ``...`` at its
  indentation, then ``textwrap.dedent``-ed, parses with ``ast.parse`` (for a method, the
  slice holds its class header, so this checks that the context is well formed).

Then speed, with the load average printed beside each number: parse+slice throughput in MB/s
(MB = 10^6 bytes of source) over the same files, each parsed once (the memo cleared first):
a bare tree-sitter parse for reference; ``definitions`` + ``outline`` + ``slice_symbol`` of
every top-level definition, in one thread (wall and CPU time) and in a thread pool (tree-sitter
releases the GIL while parsing); the ``slice_symbol`` path alone (parse, find, one slice of
each file's middle top-level definition), ``outline`` alone and ``definitions`` alone; and
one 10 MB file made by concatenating stdlib files. Also the median share of the file's
tokens (tidyctx's local counter) that one definition's slice takes.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import statistics
import sys
import sysconfig
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Parser

from tidyctx.code import _slicing as slicing
from tidyctx.code import definitions, outline, slice_symbol
from tidyctx.code._grammars import load

_GUTTER = re.compile(r"^ *\d+  ")
_TEST_DIRS = {"test", "tests", "idle_test", "lib2to3", "__pycache__", "site-packages"}


def stdlib_files() -> list[Path]:
    """The interpreter's stdlib ``.py`` files, test directories excluded, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for p in sorted(root.rglob("*.py")):
        parts = set(p.relative_to(root).parts[:-1])
        if parts & _TEST_DIRS:
            continue
        out.append(p)
    return out


def ast_spans(source: str) -> dict[str, tuple[int, int]]:
    """Key -> (first decorator or def line, end line) of every class/function ``ast`` sees."""
    tree = ast.parse(source)
    spans: dict[str, tuple[int, int]] = {}
    seen: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qual = f"{prefix}.{child.name}" if prefix else child.name
                count = seen.get(qual, 0) + 1
                seen[qual] = count
                key = qual if count == 1 else f"{qual}#{count}"
                start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                assert child.end_lineno is not None
                spans[key] = (start, child.end_lineno)
                visit(child, qual)
            else:
                visit(child, prefix)

    # ast.walk order is breadth first; visit in source order so #2 keys agree.
    visit(tree, "")
    return dict(sorted(spans.items(), key=lambda kv: kv[1]))


def as_code(text: str, numbered: bool = True) -> str:
    """A Python slice's text as code: gutters removed, markers replaced by ``...``."""
    lines = text.split("\n")
    pad = next((m.end() for m in map(_GUTTER.match, lines) if m), 0) if numbered else 0
    out = []
    for line in lines:
        m = _GUTTER.match(line) if numbered else None
        if not numbered and not line.strip().startswith(slicing.MARKER):
            out.append(line)
        elif m:
            out.append(line[m.end() :])
        elif line.strip().startswith(slicing.MARKER):
            rest = line[pad:]  # after the gutter: the code's indentation, then the marker
            out.append(rest[: rest.index(slicing.MARKER)] + "...")
        else:
            raise AssertionError(f"line is neither numbered nor a marker: {line!r}")
    return "\n".join(out)


@dataclass
class FileResult:
    path: str
    defs: int = 0
    agree: int = 0
    problems: list[str] = field(default_factory=list)


def check_source(source: str, path: str = "<source>") -> FileResult:
    """Compare every definition's slice with ``ast`` (see the module docstring)."""
    truth = ast_spans(source)
    res = FileResult(path, defs=len(truth))
    mine = outline(source, language="python").spans
    for key in sorted(set(mine) - set(truth)):
        res.problems.append(f"{path}: extra definition {key} at {mine[key]}")
    for key, span in truth.items():
        if key not in mine:
            res.problems.append(f"{path}: missed {key} {span}")
            continue
        sl = slice_symbol(source, key, language="python")
        got = sl.spans.get(key)
        if got != span:
            res.problems.append(f"{path}: {key} span {got}, ast says {span}")
            continue
        code = textwrap.dedent(as_code(sl.text))
        try:
            ast.parse(code)
        except SyntaxError as exc:
            res.problems.append(f"{path}: slice of {key} does not parse: {exc}")
            continue
        res.agree += 1
    return res


def read_source(p: Path) -> str | None:
    """The file's text if it is UTF-8 and ``ast`` parses it, else None."""
    try:
        text = p.read_bytes().decode("utf-8")
        ast.parse(text)
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return None
    return text


def work(data: bytes) -> None:
    """What the throughput runs do to one file: parse, outline, slice every top-level def."""
    defs = definitions(data, language="python")
    outline(data, language="python")
    tops = sorted({d.qualname for d in defs if "." not in d.qualname})
    if tops:
        slice_symbol(data, tops, language="python")


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N files")
    ap.add_argument("--show", type=int, default=20, help="problems to print")
    ap.add_argument("--workers", type=int, default=0, help="threads (default: CPU count)")
    args = ap.parse_args()

    files = stdlib_files()
    if args.limit:
        files = files[: args.limit]
    sources: list[tuple[Path, str]] = []
    skipped = 0
    for p in files:
        text = read_source(p)
        if text is None:
            skipped += 1
        else:
            sources.append((p, text))
    root = Path(sysconfig.get_paths()["stdlib"])
    print(f"Python {sys.version.split()[0]} stdlib at {root}")
    print(f"files: {len(sources)} checked, {skipped} skipped (ast cannot parse or not UTF-8)")

    total = agree = 0
    problems: list[str] = []
    syntax_flagged = 0
    t0 = time.perf_counter()
    for p, text in sources:
        r = check_source(text, str(p.relative_to(root)))
        total += r.defs
        agree += r.agree
        problems.extend(r.problems)
        if outline(text, language="python").errors:
            syntax_flagged += 1
    elapsed = time.perf_counter() - t0
    print(
        f"definitions: {total}; slice agrees with ast (span and parse): {agree} "
        f"= {100 * agree / max(total, 1):.3f}%  ({elapsed:.1f}s)"
    )
    print(f"files where tree-sitter reported a syntax error: {syntax_flagged}")
    for line in problems[: args.show]:
        print("  ", line)
    if len(problems) > args.show:
        print(f"   ... {len(problems) - args.show} more")

    # Throughput: a fresh parse of every file, then outline + a slice of every top-level
    # definition (what slice_code does to a file, at most). Wall and CPU time; the machine's
    # load average is printed beside (other processes slow the wall clock).
    nbytes = sum(len(t.encode()) for _, t in sources)
    mb = nbytes / 1e6
    datas = [t.encode() for _, t in sources]
    print(f"load average before the speed runs: {_load()}")
    parser = Parser(load("python").language)
    w0, c0 = time.perf_counter(), time.process_time()
    for data in datas:
        parser.parse(data)
    w1, c1 = time.perf_counter(), time.process_time()
    print(
        f"bare tree-sitter parse, one thread: {mb:.1f} MB in {w1 - w0:.2f}s wall = "
        f"{mb / (w1 - w0):.1f} MB/s ({mb / (c1 - c0):.1f} MB/s of CPU time)  load {_load()}"
    )
    slicing.clear_cache()
    w0, c0 = time.perf_counter(), time.process_time()
    for data in datas:
        work(data)
    w1, c1 = time.perf_counter(), time.process_time()
    print(
        f"parse + outline + slice of all top-level defs, one thread: {mb:.1f} MB in "
        f"{w1 - w0:.2f}s wall = {mb / (w1 - w0):.1f} MB/s ({mb / (c1 - c0):.1f} MB/s of CPU "
        f"time)  load {_load()}"
    )
    # The slice_symbol path on a fresh file (parse + find + one slice: what an agent asking
    # for one function pays), and outline alone; the symbol is picked with ast beforehand.
    picks = []
    for data, (_, text) in zip(datas, sources, strict=True):
        tops = [k for k in ast_spans(text) if "." not in k]
        if tops:
            picks.append((data, tops[len(tops) // 2]))
    pmb = sum(len(d) for d, _ in picks) / 1e6
    for label, run in (
        ("parse+index+one slice (slice_symbol, fresh)", lambda d, k: slice_symbol(d, k, "python")),
        ("outline (fresh)", lambda d, k: outline(d, language="python")),
    ):
        slicing.clear_cache()
        w0, c0 = time.perf_counter(), time.process_time()
        for data, key in picks:
            run(data, key)
        w1, c1 = time.perf_counter(), time.process_time()
        print(
            f"{label}, one thread, {len(picks)} files: {pmb:.1f} MB in {w1 - w0:.2f}s wall = "
            f"{pmb / (w1 - w0):.1f} MB/s ({c1 - c0:.2f}s CPU = {pmb / (c1 - c0):.1f} MB/s of "
            f"CPU time)  load {_load()}"
        )
    slicing.clear_cache()
    w0, c0 = time.perf_counter(), time.process_time()
    for data in datas:
        definitions(data, language="python")
    w1, c1 = time.perf_counter(), time.process_time()
    print(
        f"parse + definitions (every signature and doc line), one thread: {mb / (w1 - w0):.1f} "
        f"MB/s wall ({mb / (c1 - c0):.1f} MB/s of CPU time)  load {_load()}"
    )
    workers = args.workers or os.cpu_count() or 1
    slicing.clear_cache()
    w0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, datas))
    w1 = time.perf_counter()
    print(
        f"parse + outline + slice of all top-level defs, {workers} threads "
        f"({os.cpu_count()} cores): {mb / (w1 - w0):.1f} MB/s wall  load {_load()}"
    )
    slicing.clear_cache()

    big_parts: list[str] = []
    size = 0
    for _, text in sorted(sources, key=lambda s: -len(s[1])):
        big_parts.append(text)
        size += len(text.encode())
        if size >= 10_000_000:
            break
    big = "\n".join(big_parts)
    t0 = time.perf_counter()
    defs = definitions(big, language="python")
    t1 = time.perf_counter()
    sl = slice_symbol(big, defs[len(defs) // 2].qualname + "", language="python")
    t2 = time.perf_counter()
    ol = outline(big, language="python")
    t3 = time.perf_counter()
    mb = len(big.encode()) / 1e6
    print(
        f"one {mb:.1f} MB file ({len(defs)} definitions): parse+index+definitions "
        f"{t1 - t0:.2f}s ({mb / (t1 - t0):.1f} MB/s), then one slice {t2 - t1:.3f}s "
        f"({len(sl.text):,} chars), outline {t3 - t2:.2f}s ({len(ol.text):,} chars)  "
        f"load {_load()}"
    )
    slicing.clear_cache()
    t0 = time.perf_counter()
    slice_symbol(big, defs[len(defs) // 2].qualname, language="python")
    print(
        f"the same file, fresh: slice_symbol end to end {time.perf_counter() - t0:.2f}s  "
        f"load {_load()}"
    )
    slicing.clear_cache()

    try:
        from tidyctx.tokens import LocalCounter
    except ImportError:  # pragma: no cover
        return
    counter = LocalCounter()
    ratios = []
    for _, text in sources[::10]:
        defs = [d for d in definitions(text, language="python") if "." not in d.qualname]
        if not defs:
            continue
        whole = counter.count_text(text)
        d = defs[len(defs) // 2]
        ratios.append(counter.count_text(slice_symbol(text, d.qualname, "python").text) / whole)
    print(
        f"tokens of one top-level definition's slice / whole file (every 10th file, its "
        f"middle definition): median {statistics.median(ratios):.3f} over {len(ratios)} files"
    )


if __name__ == "__main__":
    main()
