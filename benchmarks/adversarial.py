"""Seconds per MB of adversarial inputs through every entry point: no input may stall a pipeline.

    python benchmarks/adversarial.py                 # every case (~2-4 min on a laptop)
    python benchmarks/adversarial.py --mb 0.25       # smaller inputs, a quick look
    python benchmarks/adversarial.py spaces tags     # some cases only

A tool result, a system prompt or a source file can be anything: a run of a million spaces,
JSON or code nested ten thousand deep, thousands of unbalanced tags, one line of a megabyte,
a 10 MB log. Each case is run through the entry points it can reach: ``trim`` (as a bash
result, budget 2,000 tokens), ``compact``, ``slice_code`` (as ``cat x.py``), ``slice_symbol``
(the text as a Python file), ``order`` (as the system prompt), ``validate`` and the command
line's ``report`` (a one-call request log). Printed per case and entry point: the input size,
the best of ``--repeat`` CPU times (``time.process_time``, so other jobs on the machine do not
count), and seconds per MB (MB = 10^6 characters).

Every regular expression and scan is linear, so seconds per MB stay flat as inputs grow; a
quadratic one would show here first (64k spaces took 19 s before the patterns were fixed).
Each entry must stay under ``--limit`` (1 s per MB): the script exits 1 if one does not. For
the two slicing entry points the time tree-sitter's parser (C, not tidyctx) takes for the same
bytes is printed apart and not counted against the limit: on code made of nothing but
brackets or operators it parses at about 1-4 s per MB, linearly, whatever tidyctx does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tree_sitter
from tree_sitter import Parser as _Parser
from truncate_speed import make_log

import tidyctx as tc
from tidyctx import _cli
from tidyctx.code import _slicing
from tidyctx.tokens import LocalCounter, clear_memo

MB = 1_000_000
BUDGET = 2_000


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    make: Callable[[int], str]
    entries: tuple[str, ...]
    mb: float | None = None  # its own size, in MB (else --mb)


ALL = ("trim", "compact", "slice_code", "order", "validate", "cli_report")
TEXT = ("trim", "compact", "order", "validate", "cli_report")
CODE = ("trim", "compact", "slice_code", "slice_symbol", "order", "validate", "cli_report")

CASES = (
    Case(
        "spaces",
        'a run of spaces, then a word: " " * n + "x"',
        lambda n: " " * (n - 1) + "x",
        ALL,
    ),
    Case(
        "tabs",
        "a table row padded with a run of tabs",
        lambda n: "| a |" + "\t" * (n - 8) + "x |",
        ALL,
    ),
    Case(
        "number_spaces",
        'a number, a run of spaces, a word: "5" + " " * n + "x"',
        lambda n: "5" + " " * (n - 2) + "x",
        TEXT,
    ),
    Case(
        "blank_lines",
        "lines of trailing blanks",
        lambda n: ("x" + " " * 998 + "\n") * (n // 1000),
        ALL,
    ),
    Case(
        "json_deep",
        'JSON arrays nested n/2 deep: "[" * k + "]" * k',
        lambda n: "[" * (n // 2) + "]" * (n // 2),
        ALL,
    ),
    Case(
        "json_deep_obj",
        'JSON objects nested n/6 deep: \'{"a": \' * k + "1" + "}" * k',
        lambda n: '{"a": ' * (n // 7) + "1" + "}" * (n // 7),
        ALL,
    ),
    Case(
        "python_deep",
        'Python nested n/6 deep: "x = (" * k + "1" + ")" * k',
        lambda n: "x = (" * (n // 6) + "1" + ")" * (n // 6) + "\n",
        CODE,
    ),
    Case(
        "python_chain",
        'an attribute chain over n/3 lines: "x = (a" + "\\n.a" * k + ")" (a tree n/3 deep)',
        lambda n: "x = (a" + "\n.a" * (n // 3 - 3) + ")\n",
        CODE,
    ),
    Case("tags", 'unbalanced tags: "<dynamic>" * k', lambda n: "<dynamic>" * (n // 9), TEXT),
    Case("long_line", 'one line of words: "word " * k', lambda n: "word " * (n // 5), ALL),
    Case(
        "escapes",
        "quotes and backslashes, nested escape codes, dotted words",
        lambda n: ('"\\' * (n // 8)) + "\x1b" * (n // 8) + "[m" * (n // 8) + "a." * (n // 8),
        ALL,
    ),
    Case("log_10mb", "a 10 MB service log (benchmarks/truncate_speed.py)", make_log, ALL, mb=10.0),
)


def _request(text: str, command: str = "make run") -> dict[str, Any]:
    """A request whose one tool result is ``text``, the output of ``command``."""
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "system": "You are a coding agent.",
        "messages": [
            {"role": "user", "content": "Run it and look at x.py."},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "bash",
                        "input": {"command": command},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": text}],
            },
        ],
    }


def _cli_report(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"request": _request(text), "ts": 1_767_225_600}) + "\n")
        with contextlib.redirect_stdout(io.StringIO()):
            status = _cli.main(["report", path])
    if status != 0:
        raise RuntimeError(f"tidyctx report exited {status}")


def _slice_symbol(text: str) -> None:
    with contextlib.suppress(tc.SlicingError):
        tc.slice_symbol(text, ["x"], "python")


def _run(entry: str, text: str) -> Callable[[], Any]:
    """A fresh call of ``entry`` on ``text`` (fresh transforms and parses: nothing memoized).
    A ValidationError is an answer too (``order`` refuses unbalanced tags)."""
    if entry == "trim":
        call = lambda: tc.trim(max_tokens=BUDGET)(_request(text))  # noqa: E731
    elif entry == "compact":
        call = lambda: tc.compact()(_request(text))  # noqa: E731
    elif entry == "slice_code":
        call = lambda: (  # noqa: E731
            _slicing.clear_cache(),
            tc.slice_code(max_tokens=BUDGET)(_request(text, "cat x.py")),
        )
    elif entry == "slice_symbol":
        call = lambda: (_slicing.clear_cache(), _slice_symbol(text))  # noqa: E731
    elif entry == "order":
        call = lambda: tc.order()({**_request("ok"), "system": text})  # noqa: E731
    elif entry == "validate":
        call = lambda: tc.validate(_request(text))  # noqa: E731
    elif entry == "cli_report":
        call = lambda: _cli_report(text)  # noqa: E731
    else:
        raise ValueError(entry)

    def run() -> None:
        clear_memo()  # token counts memoized by an earlier run would hide the tokenizer's work
        with contextlib.suppress(tc.ValidationError):
            call()

    return run


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """The best of ``repeat`` CPU times of ``run()``, and the parse time of that run."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        _PARSING[0] = 0.0
        start = time.process_time()
        run()
        best = min(best, (time.process_time() - start, _PARSING[0]))
    return best


_PARSING = [0.0]  # seconds tree-sitter spent parsing, since the last reset


class _TimedParser:
    """tree-sitter's Parser, timing each parse. Slicing imports ``tree_sitter.Parser`` when it
    parses, so putting this in its place times the parses inside a slicing call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._parser = _Parser(*args, **kwargs)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return self._parser.parse(*args, **kwargs)
        finally:
            _PARSING[0] += time.process_time() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


tree_sitter.Parser = _TimedParser  # type: ignore[misc,assignment]


@dataclass(frozen=True)
class Result:
    size: float  # MB
    seconds: float
    parse: float  # of which tree-sitter's parse
    growth: float  # s/MB at this size over s/MB at a quarter of it (1: linear, 4: quadratic)
    stopped: bool  # the last size was not reached: it would have run for minutes

    @property
    def counted(self) -> float:
        """Seconds per MB held against the limit: tidyctx's own, without tree-sitter's parse."""
        return max(0.0, self.seconds - self.parse) / self.size


def _measure(case: Case, entry: str, mb: float, repeat: int, cap: float) -> Result:
    """``entry`` on ``case`` at 1/64, 1/16, 1/4 and all of ``mb``: a quadratic entry is stopped
    before a size where it would run past ``cap`` seconds, and measured at the last size run."""
    per_mb: list[float] = []
    result = Result(0.0, 0.0, 0.0, 1.0, False)
    steps = [mb / 64, mb / 16, mb / 4, mb]
    for k, step in enumerate(steps):
        text = case.make(max(64, int(step * MB)))
        times = repeat if k == len(steps) - 1 else 1
        seconds, parse = _best(_run(entry, text), times)
        size = len(text) / MB
        per_mb.append(max(0.0, seconds - parse) / size)
        growth = per_mb[-1] / per_mb[-2] if len(per_mb) > 1 and per_mb[-2] > 0 else 1.0
        result = Result(size, seconds, parse, growth, False)
        # The next size is 4 times this one: at the growth seen so far it would take this long.
        if k < len(steps) - 1 and seconds > 0.05 and seconds * 4 * max(1.0, growth) > cap:
            return Result(size, seconds, parse, growth, True)
    return result


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--mb", type=float, default=1.0, help="input size in MB (default 1)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per entry; the best counts")
    ap.add_argument("--limit", type=float, default=1.0, help="seconds per MB allowed")
    ap.add_argument(
        "--cap", type=float, default=60.0, help="seconds one run may take before it is stopped"
    )
    args = ap.parse_args(argv)
    unknown = set(args.cases) - {c.name for c in CASES}
    if unknown:
        ap.error(f"unknown case(s) {sorted(unknown)}; cases: {[c.name for c in CASES]}")
    # Load the tokenizer and the grammar before timing anything.
    LocalCounter("claude-sonnet-4-6").count_text("warm up")
    tc.slice_symbol("def x():\n    pass\n", ["x"], "python")
    print(f"limit: {args.limit} s per MB; best of {args.repeat} runs; MB = 10^6 characters")
    print("growth: s/MB over s/MB at a quarter of the size (1: linear time, 4: quadratic)")
    print(f"{'case':<14} {'entry':<13} {'size':>8} {'time':>8} {'s/MB':>8} {'growth':>6}  note")
    failed: list[str] = []
    for case in CASES:
        if args.cases and case.name not in args.cases:
            continue
        mb = case.mb or args.mb
        print(f"# {case.name}: {case.what}")
        for entry in case.entries:
            r = _measure(case, entry, mb, args.repeat, args.cap)
            notes = []
            if r.parse:
                notes.append(
                    f"tree-sitter's parse {r.parse / r.size:.2f} s/MB, not counted; "
                    f"tidyctx {r.counted:.2f} s/MB"
                )
            if r.stopped:
                notes.insert(0, f"stopped at {r.size:.3f} MB: {mb} MB would run for minutes")
            if r.counted > args.limit:
                failed.append(f"{case.name}/{entry}")
                notes.insert(0, "OVER THE LIMIT")
            print(
                f"{case.name:<14} {entry:<13} {r.size:>7.3f}M {r.seconds:>7.3f}s "
                f"{r.seconds / r.size:>8.3f} {r.growth:>6.1f}  {'; '.join(notes)}",
                flush=True,
            )
    if failed:
        print(f"\n{len(failed)} over {args.limit} s per MB: {', '.join(failed)}")
        return 1
    print(f"\nevery entry under {args.limit} s per MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
