"""The ``tidyctx`` command line.

``tidyctx report TRACE``: a run's per-turn tokens and cost (``--html OUT``: as a page); of a
ledger (``tc.wrap``), its totals per run, model and day. ``--json`` for machines.
``tidyctx cache-check LOG``: per request, the simulated cache hit rate and why each miss missed.
``tidyctx slice FILE SYMBOL...`` (or ``--line N``): the code of definitions, with line numbers.
``tidyctx outline FILE``: a file's classes, functions and methods, signatures only.
``tidyctx mcp [--store URL]``: an MCP server (stdio) whose ``tidyctx_expand`` tool reads cuts back.
``tidyctx proxy``: the pipeline in front of any agent that reads ANTHROPIC_BASE_URL.
``tidyctx run -- COMMAND...``: run COMMAND behind the proxy; print what it cost and saved.
``tidyctx batch submit FILE.jsonl | status JOB | results JOB``: a Message Batches job.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tidyctx import cachesim, ledger, pricing
from tidyctx._request import ValidationError
from tidyctx.batch._command import add_batch_command, batch_main
from tidyctx.store import STORE_ENV, default_store_path, open_store
from tidyctx.tokens import LocalCounter
from tidyctx.traces import Run, _read_limited, load

__all__ = ["cache_check", "code", "load_any", "main", "mcp_server", "report"]

# A run recorded with a model that has no Anthropic price (a GPT run, an unknown id) is priced
# on this model, the one the benchmarks replay every run on.
REPLAY_MODEL = "claude-sonnet-4-6"


_FORMATS = (
    "expected a run .json (with 'messages' and 'turns'), a request log .jsonl (one request, "
    "or {'request': ..., 'ts': ..., 'usage': ...}, per line) or a Claude Code session log"
)


def load_any(path: str) -> list[Run]:
    """:func:`tidyctx.traces.load`, with a ``ValueError`` naming the file (and line) and the
    formats read for anything that is not a trace."""
    name = Path(path).name
    try:
        runs = load(path)
    except OSError:
        raise
    except UnicodeDecodeError as err:
        raise ValueError(f"{name}: not a UTF-8 text file ({err.reason})") from None
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        # traces.load reads the file's structure as it goes; a wrong shape surfaces as one
        # of these. Name the file and the formats rather than print a traceback.
        text = str(err)
        raise ValueError(text if name in text else f"{name}: {text}; {_FORMATS}") from None
    if not runs or all(not run.turns for run in runs):
        raise ValueError(f"{name}: holds no recorded calls; {_FORMATS}")
    return runs


def _price_model(run: Run, override: str | None) -> tuple[pricing.ModelPrice, str]:
    if override:
        return pricing.lookup(override), ""
    try:
        return pricing.lookup(run.model), ""
    except pricing.UnknownModelError:
        return pricing.lookup(REPLAY_MODEL), (
            f"(recorded model {run.model!r} has no Anthropic price; priced as {REPLAY_MODEL})"
        )


def report(run: Run, *, model: str | None = None, out: Any = None) -> dict[str, float]:
    """Print the per-turn token and cost table of ``run``; return the totals.

    Where the run recorded the API's usage, the table shows it (input split into uncached,
    cache write and cache read) and prices it; it also prices the same input with no caching
    at all. Where it did not, input is counted locally and priced uncached.
    """
    out = out or sys.stdout
    price, note = _price_model(run, model)
    counter = LocalCounter(price.model)
    meta = run.meta
    print(f"run      {run.id}", file=out)
    for key in ("agent", "source", "license"):
        if meta.get(key):
            print(f"{key:<9}{str(meta[key])[:110]}", file=out)
    print(f"model    {run.model or '?'}  priced as {price.model} {note}".rstrip(), file=out)
    print(file=out)
    head = (
        f"{'turn':>4} {'t+':>7} {'msgs':>5} {'counted':>9} {'recorded':>9} {'uncached':>9} "
        f"{'write':>8} {'read':>9} {'output':>7} {'cost $':>9} {'no-cache $':>10}"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    totals = dict.fromkeys(("counted", "input", "write", "read", "output", "cost", "nocache"), 0.0)
    start = next((t.ts for t in run.turns if t.ts is not None), None)
    for k, turn in enumerate(run.turns, 1):
        counted = counter.count_request(turn.request)
        if turn.usage:
            u = pricing.usage_dict(turn.usage)
        else:
            reply = turn.reply or {"role": "assistant", "content": []}
            out_tokens = counter.count_request({"messages": [reply]})
            u = {"input_tokens": counted, "output_tokens": out_tokens}
            u = pricing.usage_dict(u)
        total_in = sum(
            u[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        cost = pricing.cost(u, price).total
        nocache = pricing.cost(
            {"input_tokens": total_in, "output_tokens": u["output_tokens"]}, price
        ).total
        rel = "" if turn.ts is None or start is None else _clock(turn.ts - start)
        print(
            f"{k:>4} {rel:>7} {len(turn.request.get('messages', [])):>5} {counted:>9,} "
            f"{total_in:>9,} {u['input_tokens']:>9,} {u['cache_creation_input_tokens']:>8,} "
            f"{u['cache_read_input_tokens']:>9,} {u['output_tokens']:>7,} {cost:>9.4f} "
            f"{nocache:>10.4f}",
            file=out,
        )
        for key, value in (
            ("counted", counted),
            ("input", total_in),
            ("write", u["cache_creation_input_tokens"]),
            ("read", u["cache_read_input_tokens"]),
            ("output", u["output_tokens"]),
            ("cost", cost),
            ("nocache", nocache),
        ):
            totals[key] += value
    print("-" * len(head), file=out)
    print(
        f"{'all':>4} {'':>7} {'':>5} {totals['counted']:>9,.0f} {totals['input']:>9,.0f} "
        f"{totals['input'] - totals['write'] - totals['read']:>9,.0f} {totals['write']:>8,.0f} "
        f"{totals['read']:>9,.0f} {totals['output']:>7,.0f} {totals['cost']:>9.4f} "
        f"{totals['nocache']:>10.4f}",
        file=out,
    )
    print(file=out)
    source = "recorded usage" if any(t.usage for t in run.turns) else "local token counts"
    ratio = totals["nocache"] / totals["cost"] if totals["cost"] else 1.0
    print(
        f"{len(run.turns)} API calls, {totals['input']:,.0f} input tokens sent in all "
        f"({source}). Cost ${totals['cost']:.4f}; with no prompt caching ${totals['nocache']:.4f} "
        f"({ratio:.2f}x).",
        file=out,
    )
    if any(t.usage for t in run.turns):
        # A log without the system prompt and tools (older Claude Code logs) counts short.
        lacks = all("system" not in t.request and "tools" not in t.request for t in run.turns)
        print(
            "'counted' is tidyctx's local estimate of the request as recorded"
            + (
                "; where it falls short of 'recorded', the log lacks the system prompt and "
                "tool definitions."
                if lacks
                else "."
            ),
            file=out,
        )
    from tidyctx import _parallelism

    missed = _parallelism.missed_parallelism(run, model=price.model)
    print(file=out)
    for line in _parallelism.describe(missed):
        print(line, file=out)
    totals["missed_calls"] = len(missed.missed)
    totals["missed_cost"] = missed.cost
    return totals


def write_html(
    runs: Sequence[Run], out: str, *, model: str | None = None, progress: bool = False
) -> int:
    """Write the HTML report of ``runs`` (one page; several runs are one after the other) to
    ``out``; return the exit status (2, with the reason on stderr, when it cannot be written)."""
    from tidyctx import _report

    calls = sum(len(run.turns) for run in runs)
    bar = _report.Progress(calls, "tidyctx report: replaying", force=progress)
    try:
        data = _report.from_run(runs, model=model, progress=bar.update)
    finally:
        bar.close()
    try:
        Path(out).write_text(_report.render_html(data), encoding="utf-8")
    except OSError as err:
        print(f"tidyctx report: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


def ledger_rows(path: str) -> Iterator[dict[str, Any]]:
    """A ledger's rows as the HTML report's per-call rows: the billed usage, its cost, and
    ``baseline_cost`` (the same call with no pipeline) as the cost without."""
    for row in ledger.iter_ledger(path):
        usage = row.get("usage") or {}
        yield {
            "ts": row.get("ts"),
            "model": row.get("model"),
            **{k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)},
            "cost": row.get("cost") or 0.0,
            "cost_without": row.get("baseline_cost") or 0.0,
        }


def write_ledger_html(path: str, out: str) -> int:
    """Write the HTML report of a usage ledger to ``out`` (its rows are read in one pass,
    memory flat); return the exit status."""
    from tidyctx import _report

    try:
        data = _report.ReportData.from_rows(f"Usage ledger {Path(path).name}", ledger_rows(path))
        Path(out).write_text(_report.render_html(data), encoding="utf-8")
    except ledger.LedgerError as err:
        print(f"tidyctx report: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # a row's field of the wrong type, named by CallRow
        print(f"tidyctx report: {Path(path).name}: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"tidyctx report: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _recorded_reason(diagnostics: Any) -> str:
    if not isinstance(diagnostics, dict):
        return ""
    reason = diagnostics.get("cache_miss_reason")
    if isinstance(reason, dict):
        missed = reason.get("cache_missed_input_tokens")
        return str(reason.get("type", "?")) + (f" ({missed:,} missed)" if missed else "")
    return "pending" if "cache_miss_reason" in diagnostics else ""


def cache_check(run: Run, *, model: str | None = None, out: Any = None) -> list[cachesim.CacheCall]:
    """Print, per request, the simulated hit rate and, for each miss, the reason and the place.

    Where the log holds the usage the API recorded, the recorded figures stand beside the
    simulated ones; where it holds the API's ``diagnostics``, its ``cache_miss_reason`` too.
    """
    out = out or sys.stdout
    cache = cachesim.CacheModel(model=model)
    recorded = any(t.usage for t in run.turns)
    head = f"{'#':>4} {'t+':>7} {'input':>9} {'read':>9} {'write':>8} {'hit':>5}"
    if recorded:
        head += f"  | {'rec read':>9} {'rec write':>9} {'rec hit':>7}"
    print(f"{run.id}: {len(run.turns)} requests", file=out)
    print(head, file=out)
    print("-" * len(head), file=out)
    start = next((t.ts for t in run.turns if t.ts is not None), None)
    results: list[cachesim.CacheCall] = []
    totals = {"input": 0, "read": 0, "write": 0, "rec_input": 0, "rec_read": 0, "rec_write": 0}
    for k, turn in enumerate(run.turns, 1):
        call = cache.call(turn.request, turn.ts)
        results.append(call)
        u = call.usage
        total = call.input_total
        rel = "" if turn.ts is None or start is None else _clock(turn.ts - start)
        line = (
            f"{k:>4} {rel:>7} {total:>9,} {u['cache_read_input_tokens']:>9,} "
            f"{u['cache_creation_input_tokens']:>8,} {_pct(u['cache_read_input_tokens'], total):>5}"
        )
        totals["input"] += total
        totals["read"] += u["cache_read_input_tokens"]
        totals["write"] += u["cache_creation_input_tokens"]
        if recorded:
            if turn.usage:
                r = pricing.usage_dict(turn.usage)
                rt = sum(
                    r[x]
                    for x in (
                        "input_tokens",
                        "cache_read_input_tokens",
                        "cache_creation_input_tokens",
                    )
                )
                hit = _pct(r["cache_read_input_tokens"], rt)
                line += (
                    f"  | {r['cache_read_input_tokens']:>9,} "
                    f"{r['cache_creation_input_tokens']:>9,} {hit:>7}"
                )
                totals["rec_input"] += rt
                totals["rec_read"] += r["cache_read_input_tokens"]
                totals["rec_write"] += r["cache_creation_input_tokens"]
            else:
                line += f"  | {'-':>9} {'-':>9} {'-':>7}"
        print(line, file=out)
        if call.miss is not None:
            print(f"{'':>13}miss: {call.miss}".replace("\n", "\n" + " " * 13), file=out)
        api = _recorded_reason(turn.diagnostics)
        if api:
            print(f"{'':>13}API diagnostics: {api}", file=out)
    print("-" * len(head), file=out)
    summary = (
        f"simulated: {totals['input']:,} input tokens, {_pct(totals['read'], totals['input'])} "
        f"read from the cache, {totals['write']:,} written"
    )
    print(summary, file=out)
    if recorded and totals["rec_input"]:
        print(
            f"recorded:  {totals['rec_input']:,} input tokens, "
            f"{_pct(totals['rec_read'], totals['rec_input'])} read from the cache, "
            f"{totals['rec_write']:,} written",
            file=out,
        )
    misses = sum(1 for c in results if c.miss is not None)
    print(f"{misses} miss{'es' if misses != 1 else ''} explained above.", file=out)
    if results and not any(c.layout.breakpoints for c in results):
        print(
            "No request carries a cache_control breakpoint, so nothing is ever read from the "
            "cache: add them with tc.pipe(request, tc.order(), tc.cache()).",
            file=out,
        )
    return results


def _ledger_report(path: str, *, as_json: bool, model: str | None) -> int:
    """``tidyctx report LEDGER``: the totals of a usage ledger (text, or JSON)."""
    if model:
        print(
            "tidyctx report: --model does not apply to a ledger (each row was priced with the "
            "model that answered)",
            file=sys.stderr,
        )
        return 2
    try:
        summary = ledger.summarize_ledger(path)
    except OSError as err:
        print(f"tidyctx report: {path}: {err.strerror or err}", file=sys.stderr)
        return 2
    except ledger.LedgerError as err:
        print(f"tidyctx report: {err}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(summary.as_dict(), indent=2) if as_json else str(summary))
        sys.stdout.flush()
    except OSError as exc:
        return _output_failed("report", exc, sys.stdout, sys.stderr)
    return 0


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def code(
    command: str,
    file: str,
    symbols: Sequence[str] = (),
    lines: Sequence[int] = (),
    *,
    language: str | None = None,
    line_numbers: bool = True,
    out: Any = None,
    err: Any = None,
) -> int:
    """``tidyctx slice`` and ``tidyctx outline``: print the slice of ``file``; return the exit
    status (2, with the reason on ``err``, when the file cannot be read or sliced)."""
    from tidyctx.code import _slicing as slicing  # grammars load lazily, on first use

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        source = _read_limited(file, MAX_SOURCE_BYTES, "source file")
    except OSError as exc:
        print(f"tidyctx {command}: cannot read {file}: {exc.strerror or exc}", file=err)
        return 2
    except ValueError as exc:
        print(_printable(f"tidyctx {command}: {exc}", err), file=err)
        return 2
    try:
        if command == "outline":
            result = slicing.outline(source, language, file, line_numbers=line_numbers)
        elif lines:
            result = slicing.slice_lines(
                source, list(lines), language, file, line_numbers=line_numbers
            )
        else:
            result = slicing.slice_symbol(
                source, list(symbols), language, file, line_numbers=line_numbers
            )
    except slicing.SlicingError as exc:
        # KeyError's str() quotes its message (SymbolNotFound is one); print it plain.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(_printable(f"tidyctx {command}: {message}", err), file=err)
        return 2
    text = str(result)
    try:
        print(_printable(text, out), file=out, end="" if text.endswith("\n") else "\n")
        out.flush()
    except OSError as exc:
        return _output_failed(command, exc, out, err)
    for problem in result.errors:
        print(_printable(f"tidyctx {command}: note: {problem}", err), file=err)
    return 0


MAX_SOURCE_BYTES = 64 << 20
"""The largest source file ``tidyctx slice`` and ``outline`` read."""


def _output_failed(command: str, exc: OSError, out: Any, err: Any) -> int:
    """Exit status 1 when the output cannot be written: quietly when the reader went away
    (``| head``), as other command-line tools do; else (a full disk, ``/dev/full``) with the
    reason on ``err``. Standard output is pointed at the null device, so that Python's own
    flush at exit does not fail a second time with a traceback."""
    if not isinstance(exc, BrokenPipeError):
        print(f"tidyctx {command}: cannot write the output: {exc.strerror or exc}", file=err)
    if out is sys.stdout and sys.stdout is not None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    return 1


def _printable(text: str, stream: Any) -> str:
    """``text`` with what ``stream``'s encoding cannot hold escaped (``\\u22ee``), not a
    UnicodeEncodeError: a Windows console redirected to a file is cp1252."""
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str) or encoding.lower().replace("-", "") == "utf8":
        return text
    try:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        return text


def _add_code_commands(sub: Any) -> None:
    sl = sub.add_parser(
        "slice",
        help="the code of functions, classes or methods of a file, with line numbers",
        description="Print the definitions of SYMBOLs (Class.method for methods) in FILE with "
        "their decorators, doc comments, enclosing class header and the imports they use, "
        "each line with its number in the file; or, with --line, the smallest definitions "
        "around those lines (for stack traces and grep hits).",
    )
    sl.add_argument("file", help="a source file (the language comes from its name)")
    sl.add_argument("symbols", nargs="*", metavar="SYMBOL", help="names such as parse or Foo.bar")
    sl.add_argument(
        "--line", type=int, action="append", default=[], metavar="N", help="a line number"
    )
    ol = sub.add_parser(
        "outline",
        help="a file's classes, functions and methods: signatures only",
        description="Print the signatures of the classes, functions and methods in FILE, each "
        "with the first line of its doc comment, bodies elided, with line numbers.",
    )
    ol.add_argument("file", help="a source file (the language comes from its name)")
    for p in (sl, ol):
        p.add_argument("--language", help="the language, if the file name does not say it")
        p.add_argument(
            "--no-line-numbers", action="store_true", help="print the code without the gutter"
        )


def _add_mcp_command(sub: Any) -> None:
    mcp = sub.add_parser(
        "mcp",
        help="an MCP server (stdio) whose tidyctx_expand tool reads back what tidyctx cut",
        description="Serve the tidyctx_expand tool over MCP on standard input and output, "
        "reading the store that the transforms (or tidyctx proxy) put the cut texts in. "
        "Register it with the agent, e.g. `claude mcp add tidyctx -- tidyctx mcp`.",
    )
    mcp.add_argument(
        "--store",
        metavar="URL",
        help="a SQLite file path or sqlite:///path, redis://host:port/db, or memory:// "
        f"(default: ${STORE_ENV}, else {default_store_path()})",
    )


def mcp_server(store_url: str | None, *, err: Any = None) -> int:
    """``tidyctx mcp``: serve the expand tool over stdio until the client closes stdin."""
    err = sys.stderr if err is None else err
    try:
        import anyio

        from tidyctx._mcp import serve_stdio
    except ImportError as exc:
        print(f"tidyctx mcp: {exc}; pip install 'tidyctx[mcp]'", file=err)
        return 2
    try:
        store = open_store(store_url)
    except (OSError, ValueError, TypeError, ImportError, sqlite3.Error) as exc:
        print(f"tidyctx mcp: cannot open the store: {exc}", file=err)
        return 2
    try:
        anyio.run(serve_stdio, store)
    except KeyboardInterrupt:
        pass
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    return 0


def _add_proxy_commands(sub: Any) -> None:
    from tidyctx.proxy._command import add_proxy_options

    px = sub.add_parser(
        "proxy",
        help="a local Anthropic API proxy that applies the pipeline to every request",
        description="Serve a proxy for the Anthropic API: POST /v1/messages and count_tokens "
        "go through the pipeline (failing open: any error sends the original request), "
        "everything else is forwarded untouched; one ledger row per call. Point an agent at "
        "it with ANTHROPIC_BASE_URL.",
    )
    add_proxy_options(px)
    rn = sub.add_parser(
        "run",
        help="run a command behind the proxy and print what its API calls cost and saved",
        description="Start a proxy (or reuse one running on --port with the same upstream and "
        "pipeline), run COMMAND with ANTHROPIC_BASE_URL pointing at it, print the command's "
        "cost and savings, and exit with COMMAND's exit code.",
    )
    add_proxy_options(rn)
    rn.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...")


def _proxy_main(args: argparse.Namespace) -> int:
    from tidyctx.proxy._command import proxy_command, run_command

    if args.command == "proxy":
        return proxy_command(args)
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    return run_command(args, argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidyctx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "report",
        help="per-turn tokens and cost of a recorded run, or the totals of a usage ledger",
        description="Read a run .json, a request-log .jsonl, a Claude Code session log, or a "
        "usage ledger written by tc.wrap(client, ledger=...) or tidyctx proxy --ledger (one "
        "JSON row per API call), and "
        "print its tokens and cost: per turn for a run, totals per run, model and day for a "
        "ledger.",
    )
    rep.add_argument("trace", help="a run .json, a request-log .jsonl or a ledger .jsonl")
    rep.add_argument("--model", help="price as this model instead of the recorded one")
    rep.add_argument(
        "--html",
        metavar="OUT",
        help="also write a self-contained HTML page (works offline): tokens per call by "
        "billing class, cost per call with and without the pipeline, per-transform savings, "
        "the largest repeated chunks",
    )
    rep.add_argument(
        "--progress",
        action="store_true",
        help="show the progress of --html on stderr even when it is not a terminal",
    )
    rep.add_argument("--json", action="store_true", help="print the totals as JSON")
    chk = sub.add_parser(
        "cache-check",
        help="per request: simulated cache hit rate, and why each miss missed",
        description="Read a JSONL of requests (one per line, or {'request', 'ts', 'usage', "
        "'diagnostics'}) or a run .json, simulate Anthropic's prompt cache over them, and "
        "explain every miss: the API's reason, the first block that diverged and the cause.",
    )
    chk.add_argument("log", help="a request-log .jsonl or a run .json")
    chk.add_argument("--model", help="simulate as this model instead of each request's")
    _add_code_commands(sub)
    _add_mcp_command(sub)
    _add_proxy_commands(sub)
    add_batch_command(sub)
    args = parser.parse_args(argv)
    if args.command == "mcp":  # standard output carries the protocol
        return mcp_server(args.store)
    if args.command in ("proxy", "run"):
        return _proxy_main(args)
    if args.command == "batch":
        return batch_main(args)
    if sys.stdout is None:  # started with its standard output closed (``>&-``)
        print(
            f"tidyctx {args.command}: standard output is closed; nothing to write to",
            file=sys.stderr,
        )
        return 2
    if args.command in ("slice", "outline"):
        symbols = getattr(args, "symbols", [])
        lines = getattr(args, "line", [])
        if args.command == "slice" and bool(symbols) == bool(lines):
            parser.error("slice takes SYMBOL names or --line N, not both and not neither")
        return code(
            args.command,
            args.file,
            symbols,
            lines,
            language=args.language,
            line_numbers=not args.no_line_numbers,
        )
    path = args.trace if args.command == "report" else args.log
    if args.command == "report" and ledger.is_ledger(path):
        status = _ledger_report(path, as_json=args.json, model=args.model)
        if status == 0 and args.html:
            status = write_ledger_html(path, args.html)
        return status
    try:
        runs = load_any(path)
    except OSError as err:
        print(f"tidyctx {args.command}: {path}: {err.strerror or err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"tidyctx {args.command}: {err}", file=sys.stderr)
        return 2
    try:
        found: list[dict[str, Any]] = []
        for run in runs:
            if args.command == "report" and args.json:
                totals = report(run, model=args.model, out=io.StringIO())
                found.append({"run": run.id, "model": run.model, "calls": len(run.turns)})
                found[-1].update({k: round(v, 6) for k, v in totals.items()})
            elif args.command == "report":
                report(run, model=args.model)
            else:
                cache_check(run, model=args.model)
        if found:
            print(json.dumps({"runs": found}, indent=2))
        sys.stdout.flush()
        if args.command == "report" and args.html:
            status = write_html(runs, args.html, model=args.model, progress=args.progress)
            if status:
                return status
    except (ValueError, pricing.UnknownModelError) as err:
        # A bad usage record, timestamp or request in the trace (ValidationError is one).
        where = err.path if isinstance(err, ValidationError) else ""
        print(
            f"tidyctx {args.command}: {Path(path).name}: {err}"
            + (f" (in run {run.id})" if where else ""),
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # the output cannot be written (see _output_failed)
        return _output_failed(args.command, exc, sys.stdout, sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
