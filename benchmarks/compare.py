"""tidyctx against what a user would pick instead, on the same recorded runs.

    python benchmarks/compare.py [TRACE.json|SESSION.jsonl ...] [--quick] [--jobs N]
        [--only NAME,...] [--pauses] [--out FILE] [--json FILE] [--html FILE] [--readme FILE]

Every run (default: the collection in ../shared/traces or $TIDYCTX_TRACES, else the bundled
traces) is replayed turn by turn through each strategy (benchmarks/peers/sent.py: the main call
as sent plus every side call, such as a summary). Each main call is priced on claude-sonnet-4-6
with tidyctx.cachesim (no pauses unless --pauses: every cache entry lives through the run, as
in the caching floor); side calls are priced with cachesim too, in their own stream per model
(so a summary call below its model's minimum cacheable length is never cached), plus their
answer as output tokens. Input cost is reported as a ratio to the caching floor (every distinct
prefix token of the recorded requests written once, then read) and to sending no cache marker
at all. Recall is tidyctx.recall's reference recall: of the strings the agent later used that
came from a tool result, the share still in the request it saw.

Recovery: a tidyctx cut leaves a marker the agent can read back (tidyctx_expand). Reference
recall assumes it never does; "recovered" assumes it always does when it needs a cut reference
and charges one round trip for each piece of a cut result it needs (the expand tool's default
piece, PIECE characters around the reference): the turn's request re-read from cache, the piece
written to cache, and EXPAND_OUTPUT output tokens; a fetched piece then stays in the
conversation, read from cache on every later turn. The truth sits
between the two.

Strategies (--only takes these names; the peers that are not installed are skipped and named):
see STRATEGIES. Progress goes to stderr. --readme FILE rewrites the part of FILE between the
``<!-- compare:start -->`` and ``<!-- compare:end -->`` lines with the totals.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import replay
from peers.sent import Factory, Sent, SideCall

# Some peers import themselves as benchmarks.peers.<name>: the checkout's root is a path too.
sys.path.append(str(Path(__file__).resolve().parents[1]))

import tidyctx as tc
from tidyctx import pricing
from tidyctx._markers import MARKER_PREFIX, store_ids
from tidyctx._request import unmarked
from tidyctx.recall import _reply_text, reference_recall, references, texts_of
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._expand import DEFAULT_LENGTH as PIECE

EXPAND_OUTPUT = 40
"""Output tokens of one tidyctx_expand call (the tool_use block naming a marker's id)."""

QUICK_RUNS = 6
"""--quick replays this many runs: the smallest by turns, so the suite's shape shows fast."""


# --- strategies ------------------------------------------------------------------------------


def _plain(transform: Callable[[dict[str, Any]], dict[str, Any]]) -> Factory:
    return lambda: lambda r: Sent(transform(r))


def _automatic(r: dict[str, Any]) -> dict[str, Any]:
    return {**unmarked(r), "cache_control": {"type": "ephemeral"}}


def _tidyctx(**overrides: Any) -> Factory:
    """tc.defaults(...) without a client: no summaries."""

    def make() -> Callable[[dict[str, Any]], Sent]:
        steps = tc.defaults(**overrides)
        return lambda r: Sent(tc.pipe(r, *steps))

    return make


class _Summarizing:
    """tc.defaults(client, ...): summaries written by the local server's stand-in, every
    summary call captured as a side call."""

    def __init__(self, **overrides: Any) -> None:
        import anthropic

        from tidyctx.testing import LocalServer, summary_responder

        self.calls: list[SideCall] = []

        def answer(body: Mapping[str, Any]) -> str:
            text = summary_responder(body)
            self.calls.append(SideCall(json.loads(json.dumps(body)), text))
            return text

        self.server = LocalServer(responder=answer)
        self.server.__enter__()
        self.client = anthropic.Anthropic(
            base_url=self.server.base_url, api_key="local", max_retries=0
        )
        self.steps = tc.defaults(self.client, **overrides)

    def __call__(self, r: dict[str, Any]) -> Sent:
        self.calls = []
        out = tc.pipe(r, *self.steps)
        return Sent(out, self.calls)

    def close(self) -> None:
        self.client.close()
        self.server.__exit__(None, None, None)


@dataclass(frozen=True)
class Entry:
    label: str
    """What the README calls it."""
    load: Callable[[], Factory]
    """Imports the peer (an ImportError skips the strategy, its message the reason)."""
    ours: bool = False
    short: str = ""
    """A shorter name for the README's table (default: the label)."""


def _import(module: str, attr: str) -> Factory:
    import importlib

    return getattr(importlib.import_module(f"peers.{module}"), attr)  # type: ignore[no-any-return]


def _peer(module: str, attr: str, *args: Any, **kwargs: Any) -> Callable[[], Factory]:
    """The factory ``peers.<module>.<attr>(*args, **kwargs)`` makes."""
    return lambda: _import(module, attr)(*args, **kwargs)


STRATEGIES: dict[str, Entry] = {
    "none": Entry("no caching", lambda: _plain(unmarked)),
    "auto": Entry("automatic caching", lambda: _plain(_automatic)),
    "lc-cache": Entry(
        "LangChain AnthropicPromptCachingMiddleware",
        _peer("langchain_agent", "caching"),
        short="LangChain caching middleware",
    ),
    "lc-edit": Entry(
        "LangChain + ContextEditingMiddleware(ClearToolUsesEdit()) defaults",
        _peer("langchain_agent", "context_editing"),
        short="LangChain + context editing (defaults: 100k, keep 3)",
    ),
    "lc-edit-30k": Entry(
        "LangChain + ClearToolUsesEdit(trigger=30000, keep=3)",
        _peer("langchain_agent", "context_editing", trigger=30_000, keep=3),
        short="LangChain + context editing (30k, keep 3)",
    ),
    "lc-sum": Entry(
        "LangChain + SummarizationMiddleware(trigger=('tokens', 4000)), the documented example",
        _peer("langchain_agent", "summarization"),
        short="LangChain + summarization (documented example: 4k)",
    ),
    "lc-sum-30k": Entry(
        "LangChain + SummarizationMiddleware(trigger=('tokens', 30000))",
        _peer("langchain_agent", "summarization", trigger=("tokens", 30_000)),
        short="LangChain + summarization (30k)",
    ),
    "lc-all": Entry(
        "LangChain caching + context editing + summarization, defaults",
        _peer("langchain_agent", "summarization", clear=(100_000, 3)),
        short="LangChain, all three middleware (defaults)",
    ),
    "lc-all-30k": Entry(
        "LangChain caching + context editing + summarization, all at 30k",
        _peer("langchain_agent", "summarization", trigger=("tokens", 30_000), clear=(30_000, 3)),
        short="LangChain, all three middleware (30k)",
    ),
    "server-clear": Entry(
        "server clear_tool_uses_20250919 defaults",
        _peer("server_edits", "clear_tool_uses"),
        short="server-side clearing (defaults)",
    ),
    "server-compact": Entry(
        "server compact_20260112 defaults",
        _peer("server_edits", "compact"),
        short="server-side compaction (defaults)",
    ),
    "server-both": Entry(
        "server clear_tool_uses + compact defaults",
        _peer("server_edits", "clear_then_compact"),
        short="server-side clearing + compaction",
    ),
    "headroom": Entry(
        "Headroom 0.42 compress() per turn", lambda: _import("headroom_peer", "headroom_compress")
    ),
    "headroom-own-loop": Entry(
        "Headroom 0.42 compress(), keeping what it returned (frozen_message_count)",
        lambda: _import("headroom_peer", "headroom_compress_frozen"),
        short="Headroom 0.42 compress(), own loop",
    ),
    "tidyctx": Entry(
        "tidyctx tc.defaults()", lambda: _tidyctx(), ours=True, short="tidyctx `tc.defaults()`"
    ),
    "tidyctx-1000": Entry(
        "tc.defaults(trim={'max_tokens': 1000})",
        lambda: _tidyctx(trim={"max_tokens": 1000}),
        ours=True,
        short="tidyctx `tc.defaults(trim={'max_tokens': 1000})`",
    ),
    "tidyctx-sum": Entry(
        "tc.defaults(client): + summarize",
        lambda: lambda: _Summarizing(),
        ours=True,
        short="tidyctx `tc.defaults(client)`: + summarize",
    ),
}
QUICK = ("none", "auto", "lc-cache", "lc-edit-30k", "server-compact", "headroom", "tidyctx")


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    """One strategy on one run."""

    run: str
    name: str
    cost: float = 0.0
    """Input USD of the main calls."""
    side_cost: float = 0.0
    """USD of the side calls, input and output."""
    recalled: int = 0
    references: int = 0
    recovered: int = 0
    """References missing from the request that a tidyctx marker in it can read back."""
    expand_calls: int = 0
    expand_cost: float = 0.0
    side_calls: int = 0
    invalid: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: str = ""
    seconds: float = 0.0


def _price_stream(requests: Sequence[dict[str, Any]], model: str) -> float:
    if not requests:
        return 0.0
    return replay.input_cost(replay.simulate(list(requests), None, model), model)


def side_cost(calls: Sequence[SideCall]) -> float:
    """Side calls priced in one cache stream per model, plus their answers as output."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    out = 0.0
    for call in calls:
        model = str(call.request.get("model") or replay.REPLAY_MODEL)
        by_model.setdefault(model, []).append(call.request)
        price = pricing.lookup(model)
        out += LocalCounter(model).count_text(call.answer) * price.output / 1e6
    for model, requests in sorted(by_model.items()):
        out += _price_stream(requests, model)
    return out


def _results_by_id(request: Mapping[str, Any]) -> dict[str, str]:
    """tool_use_id -> the text of its tool_result, in one request."""
    out: dict[str, str] = {}
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, Mapping) and block.get("type") == "tool_result":
                out[str(block.get("tool_use_id"))] = "\n".join(texts_of(block.get("content")))
    return out


def recovery(
    originals: Sequence[dict[str, Any]],
    replies: Sequence[Mapping[str, Any] | None],
    sent: Sequence[dict[str, Any]],
    model: str = replay.REPLAY_MODEL,
) -> tuple[int, int, float]:
    """(references recoverable, expand calls, their USD). A reference the agent used at turn t
    that the sent request lacks is recoverable when a tidyctx marker covers it: the original
    result holding it has, in the sent request, a result with the same id carrying a marker.

    Each expand call returns one piece of the original: PIECE characters (the tool's default
    length) centred on the reference. A reference outside every piece fetched so far costs one
    call: the turn's request re-read from cache, the piece written to cache, EXPAND_OUTPUT
    output tokens. Fetched pieces then stay in the conversation: every later turn reads them
    from cache again."""
    price = pricing.lookup(model)
    counter = LocalCounter(model)
    recovered = calls = 0
    usd = 0.0
    carried = 0  # tokens of fetched pieces the conversation holds from now on
    fetched: dict[str, list[tuple[int, int]]] = {}  # result id -> character ranges
    for original, reply, request in zip(originals, replies, sent, strict=True):
        usd += carried * price.cache_read / 1e6
        if not reply:
            continue
        before = _results_by_id(original)
        earlier = "\n".join(before.values())
        refs = [r for r in sorted(references(_reply_text(reply))) if r in earlier]
        have = "\n".join(texts_of(request))
        missing = [r for r in refs if r not in have]
        if not missing:
            continue
        after = _results_by_id(request)
        read = 0
        for ref in missing:
            ids = sorted(
                i
                for i, text in before.items()
                if ref in text
                and (store_ids(after.get(i, "")) or MARKER_PREFIX in after.get(i, ""))
            )
            if not ids:
                continue
            recovered += 1
            key = ids[-1]  # the newest result that held it
            text = before[key]
            at = text.index(ref)
            if any(a <= at and at + len(ref) <= b for a, b in fetched.get(key, [])):
                continue  # already in the conversation
            a = max(0, min(at - PIECE // 2, len(text) - PIECE))
            b = min(len(text), a + PIECE)
            fetched.setdefault(key, []).append((a, b))
            piece = counter.count_text(text[a:b])
            read = read or counter.count_request(request)
            calls += 1
            usd += (
                read * price.cache_read
                + piece * price.cache_write_5m
                + EXPAND_OUTPUT * price.output
            ) / 1e6
            carried += piece
    return recovered, calls, usd


def measure(path: str, name: str, pauses: bool) -> Result:
    with warnings.catch_warnings():
        # A log's unreadable lines were named once, when the main process loaded it.
        warnings.simplefilter("ignore")
        return _measure(path, name, pauses)


def _measure(path: str, name: str, pauses: bool) -> Result:
    run = replay.load(Path(path))
    result = Result(run=run.id, name=name)
    started = time.process_time()
    try:
        strategy = STRATEGIES[name].load()()
    except ImportError as e:  # a peer that is not installed
        result.skipped = str(e).splitlines()[0] if str(e) else type(e).__name__
        return result
    requests = replay.requests_of(run)
    replies = [t.reply for t in run.turns]
    ts = run.timestamps() if pauses else None
    sent: list[dict[str, Any]] = []
    sides: list[SideCall] = []
    try:
        for i, r in enumerate(requests):
            try:
                out = strategy(r)
            except ValueError as err:
                if STRATEGIES[name].ours:
                    raise  # tidyctx takes every request the API takes: a failure is a bug
                # A peer that cannot express this run's requests (LangChain has no place for
                # a system message inside the conversation) is left out of it, saying why.
                result.skipped = f"cannot replay {run.id} (turn {i}): {err}"
                return result
            sent.append(out.request)
            sides += out.side_calls
            if out.note:
                result.notes.append(out.note)
    finally:
        close = getattr(strategy, "close", None)
        if close is not None:
            close()
    for request in [*sent, *(c.request for c in sides)]:
        try:
            tc.validate(request, strict=False)  # what the API accepts
        except ValueError:
            result.invalid += 1
    result.cost = replay.input_cost(replay.simulate(sent, ts))
    result.side_calls = len(sides)
    result.side_cost = side_cost(sides)
    recall = reference_recall(requests, replies, sent)
    result.recalled, result.references = recall.recalled, recall.references
    result.recovered, result.expand_calls, result.expand_cost = recovery(requests, replies, sent)
    result.seconds = time.process_time() - started
    return result


def floors(paths: Sequence[Path]) -> dict[Path, tuple[str, float, int]]:
    """path -> (run id, floor USD, turns)."""
    out = {}
    for path in paths:
        run = replay.load(path)
        out[path] = (run.id, replay.floor_cost(replay.requests_of(run)), len(run.turns))
    return out


# --- progress --------------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def step(self, what: str) -> None:
        self.done += 1
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        line = (
            f"[{bar:<30}] {self.done}/{self.total} {time.monotonic() - self.started:5.0f}s {what}"
        )
        if self.tty:
            print("\r" + line[:110].ljust(110), end="", file=sys.stderr, flush=True)
            if self.done == self.total:
                print(file=sys.stderr)
        elif int(share * 10) != self.shown:
            self.shown = int(share * 10)
            print(line, file=sys.stderr, flush=True)


# --- report ----------------------------------------------------------------------------------


@dataclass
class Total:
    name: str
    label: str
    cost: float
    floor: float
    none: float
    recall: float
    recall_recovered: float
    recovered_cost: float
    side_calls: int
    invalid: int
    runs: int
    worse_than_auto: list[str]


def totals(
    results: Sequence[Result], floor: Mapping[str, tuple[float, int]], names: Sequence[str]
) -> list[Total]:
    by = {(r.run, r.name): r for r in results}
    runs = sorted(floor)
    out = []
    for name in names:
        rows = [
            by[(run, name)] for run in runs if (run, name) in by and not by[(run, name)].skipped
        ]
        if len(rows) != len(runs):
            continue
        cost = sum(r.cost + r.side_cost for r in rows)
        refs = sum(r.references for r in rows) or 1
        recalled = sum(r.recalled for r in rows)
        worse = [
            r.run
            for r in rows
            if (r.run, "auto") in by and r.cost + r.side_cost > (by[(r.run, "auto")].cost) * 1.001
        ]
        out.append(
            Total(
                name=name,
                label=STRATEGIES[name].label,
                cost=cost,
                floor=sum(floor[run][0] for run in runs),
                none=sum(by[(run, "none")].cost for run in runs if (run, "none") in by),
                recall=recalled / refs,
                recall_recovered=(recalled + sum(r.recovered for r in rows)) / refs,
                recovered_cost=cost + sum(r.expand_cost for r in rows),
                side_calls=sum(r.side_calls for r in rows),
                invalid=sum(r.invalid for r in rows),
                runs=len(rows),
                worse_than_auto=worse,
            )
        )
    return out


def _cheaper(ours: Total, peer: Total, recovered: bool = False) -> bool:
    """``ours`` costs less than ``peer`` at equal or higher recall (counting read-backs)."""
    if recovered:
        return ours.recovered_cost < peer.cost and ours.recall_recovered >= peer.recall - 1e-9
    return ours.cost < peer.cost and ours.recall >= peer.recall - 1e-9


def _variant(rows: Sequence[Total], peer: Total) -> Total | None:
    """Another tidyctx setting cheaper than ``peer`` at equal or higher recall, if any."""
    return next(
        (t for t in rows if STRATEGIES[t.name].ours and t.name != "tidyctx" and _cheaper(t, peer)),
        None,
    )


def verdicts(rows: Sequence[Total]) -> list[str]:
    """The targets for tc.defaults(), each met or missed with its number."""
    by = {t.name: t for t in rows}
    ours = by.get("tidyctx")
    if ours is None:
        return []
    ratio = ours.cost / ours.floor
    lines = [
        f"tc.defaults() at most 0.55x the caching floor at recall >= 0.97: "
        f"{'met' if ratio <= 0.55 and ours.recall >= 0.97 else 'MISSED'} "
        f"({ratio:.3f}x at {ours.recall:.3f})",
        "never more expensive than automatic caching on any run: "
        + (
            "met"
            if not ours.worse_than_auto
            else f"MISSED on {len(ours.worse_than_auto)} ({', '.join(ours.worse_than_auto)})"
        ),
    ]
    for t in rows:
        if STRATEGIES[t.name].ours or t.name in ("none", "auto"):
            continue
        other = _variant(rows, t)
        verdict = (
            "met"
            if _cheaper(ours, t)
            else "met with recovery only"
            if _cheaper(ours, t, recovered=True)
            else f"MISSED by tc.defaults(), met by {other.name} ({other.cost / other.floor:.3f}x "
            f"at {other.recall:.3f})"
            if other
            else "MISSED"
        )
        lines.append(
            f"cheaper than {t.label} at equal or higher recall: {verdict} ({ratio:.3f}x at "
            f"{ours.recall:.3f}, with recovery {ours.recovered_cost / ours.floor:.3f}x at "
            f"{ours.recall_recovered:.3f}; against {t.cost / t.floor:.3f}x at {t.recall:.3f})"
        )
    return lines


def text_report(
    results: Sequence[Result], floor: Mapping[str, tuple[float, int]], names: Sequence[str]
) -> str:
    by = {(r.run, r.name): r for r in results}
    shown = [n for n in names if any((run, n) in by and not by[(run, n)].skipped for run in floor)]
    out = ["cost / caching floor (reference recall), main and side calls; sonnet-4-6 prices"]
    head = f"{'run':<40} {'floor $':>8}" + "".join(f" {n[:15]:>16}" for n in shown)
    out.append(head)
    for run in sorted(floor):
        cells = []
        for n in shown:
            r = by.get((run, n))
            if r is None or r.skipped:
                cells.append(f" {'-':>16}")
                continue
            rec = r.recalled / r.references if r.references else 1.0
            mark = "!" if r.invalid else " "
            cells.append(f" {(r.cost + r.side_cost) / floor[run][0]:>7.3f} ({rec:.3f}){mark}")
        out.append(f"{run[:40]:<40} {floor[run][0]:>8.3f}" + "".join(cells))
    rows = totals(results, floor, shown)
    out.append("")
    out.append(
        f"{'strategy':<16} {'x floor':>8} {'x none':>7} {'recall':>7} {'+recovery':>16}"
        f" {'side':>5} {'invalid':>7} {'runs > auto':>11}  what"
    )
    for t in rows:
        out.append(
            f"{t.name:<16} {t.cost / t.floor:>8.3f} {t.cost / t.none if t.none else 0:>7.3f}"
            f" {t.recall:>7.3f} {t.recovered_cost / t.floor:>7.3f}x @{t.recall_recovered:.3f}"
            f" {t.side_calls:>5} {t.invalid:>7} {len(t.worse_than_auto):>11}  {t.label}"
        )
    skipped = sorted({(r.name, r.skipped) for r in results if r.skipped})
    for name, why in skipped:
        out.append(f"skipped {name}: {why}")
    noted: dict[str, list[str]] = {}
    for r in sorted(results, key=lambda r: (r.name, r.run)):
        noted.setdefault(r.name, []).extend(f"{r.run}: {n}" for n in r.notes)
    if any(noted.values()):
        out.append("")
        out.append("notes (the first three of each strategy):")
        for name, lines in sorted(noted.items()):
            if lines:
                out.append(f"  {name} ({len(lines)} notes)")
                out += [f"    {line}" for line in lines[:3]]
    out.append("")
    out += verdicts(rows)
    return "\n".join(out)


def headline(rows: Sequence[Total]) -> list[str]:
    """The targets in three lines, the losses named."""
    by = {t.name: t for t in rows}
    ours = by.get("tidyctx")
    if ours is None:
        return []
    ratio = ours.cost / ours.floor
    met = ratio <= 0.55 and ours.recall >= 0.97
    lines = [
        f"`tc.defaults()` at most 0.55x the floor at recall at least 0.97: "
        f"{'met' if met else '**missed**'} ({ratio:.3f}x at {ours.recall:.3f}).",
        "Never costlier than automatic caching: "
        + (
            f"met on all {ours.runs} runs."
            if not ours.worse_than_auto
            else f"**missed** on {len(ours.worse_than_auto)} of {ours.runs} runs "
            f"({', '.join(ours.worse_than_auto)})."
        ),
    ]
    peers = [t for t in rows if not STRATEGIES[t.name].ours and t.name != "none"]
    plain = [t for t in peers if _cheaper(ours, t)]
    recovered = [t for t in peers if t not in plain and _cheaper(ours, t, recovered=True)]
    rest = [t for t in peers if t not in plain and t not in recovered]
    variants = [(t, v) for t in rest if (v := _variant(rows, t)) is not None]
    lost = [t for t in rest if _variant(rows, t) is None]
    line = f"Cheaper than each alternative at equal or higher recall: {len(plain)} of {len(peers)}."
    if recovered:
        names = ", ".join(STRATEGIES[t.name].short or t.label for t in recovered)
        line += (
            f" The other {len(recovered)} keep more of what the agent used ({names}: recall "
            f"{min(t.recall for t in recovered):.3f} to {max(t.recall for t in recovered):.3f}): "
            f"tidyctx is cheaper at their recall only if the agent reads back the cuts it needs "
            f"({ours.recovered_cost / ours.floor:.3f}x at {ours.recall_recovered:.3f})."
        )
    for t, v in variants:
        line += (
            f" {STRATEGIES[t.name].short or t.label} ({t.cost / t.floor:.3f}x at {t.recall:.3f}) "
            f"is cheaper than `tc.defaults()` at lower recall; {STRATEGIES[v.name].short} is "
            f"cheaper at higher recall ({v.cost / v.floor:.3f}x at {v.recall:.3f})."
        )
    if lost:
        names = ", ".join(STRATEGIES[t.name].short or t.label for t in lost)
        line += f" **Missed** against {names}."
    lines.append(line)
    return lines


def markdown(
    results: Sequence[Result],
    floor: Mapping[str, tuple[float, int]],
    names: Sequence[str],
    named: Sequence[str] = (),
) -> str:
    rows = totals(results, floor, names)
    turns = sum(t for _, t in floor.values())
    runs, again = (
        ("the runs named in docs/benchmarks.md", "the command there regenerates it")
        if named
        else ("the shared runs", "`make bench` regenerates it")
    )
    out = [
        "| strategy | cost / floor | recall | if cuts are read back (–: nothing to read) "
        "| summary calls "
        "| runs above automatic caching |",
        "|---|---|---|---|---|---|",
    ]
    for t in rows:
        name = STRATEGIES[t.name].short or t.label
        name = f"**{name}**" if t.name == "tidyctx" else name
        back = (
            f"{t.recovered_cost / t.floor:.3f}x at {t.recall_recovered:.3f}"
            if t.recall_recovered > t.recall
            else "–"
            if t.recall < 1.0
            else ""
        )
        out.append(
            f"| {name} | {t.cost / t.floor:.3f}x | {t.recall:.3f} | {back} | "
            f"{t.side_calls or ''} | {len(t.worse_than_auto)} |"
        )
    out.append("")
    for name, why in sorted({(r.name, r.skipped) for r in results if r.skipped}):
        out.append(f"{STRATEGIES[name].label}: skipped ({why}).")
        out.append("")
    out += [f"- {line}" for line in headline(rows)]
    out.append(
        f"\n<sub>Generated by `benchmarks/compare.py` on {runs} ({len(floor)} runs, {turns:,} "
        f"turns, claude-sonnet-4-6 prices, summary calls included); {again}.</sub>"
    )
    return "\n".join(out)


def chart(
    results: Sequence[Result], floor: Mapping[str, tuple[float, int]], names: Sequence[str]
) -> str:
    """A self-contained page: cost / floor against recall, one point per strategy."""
    rows = totals(results, floor, names)
    width, height, pad = 640, 420, 60
    worst = max([t.cost / t.floor for t in rows] + [1.2])
    low = min([t.recall for t in rows] + [0.9])

    def x(v: float) -> float:
        return pad + (v / worst) * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - (v - low) / (1.0 - low + 1e-9) * (height - 2 * pad)

    dots = []
    for t in rows:
        colour = "#c0392b" if STRATEGIES[t.name].ours else "#2c3e50"
        dots.append(
            f'<circle cx="{x(t.cost / t.floor):.1f}" cy="{y(t.recall):.1f}" r="5" '
            f'fill="{colour}"><title>{html.escape(t.label)}: {t.cost / t.floor:.3f}x, '
            f"recall {t.recall:.3f}</title></circle>"
            f'<text x="{x(t.cost / t.floor) + 7:.1f}" y="{y(t.recall) + 4:.1f}" '
            f'font-size="11">{html.escape(t.name)}</text>'
        )
    floor_x = x(1.0)
    return (
        "<!doctype html><meta charset='utf-8'><title>tidyctx comparison</title>"
        "<h1>Cost against recall</h1>"
        f"<p>{len(floor)} runs. Left is cheaper, up keeps more of what the agent used.</p>"
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#999"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
        f'<line x1="{floor_x:.1f}" y1="{pad}" x2="{floor_x:.1f}" y2="{height - pad}" '
        'stroke="#bbb" stroke-dasharray="4"/>'
        f'<text x="{floor_x + 3:.1f}" y="{pad - 5}" font-size="11">caching floor</text>'
        f'<text x="{width / 2}" y="{height - 20}" font-size="12">cost / caching floor</text>'
        f'<text x="10" y="{pad - 20}" font-size="12">reference recall ({low:.2f} to 1)</text>'
        + "".join(dots)
        + "</svg><pre>"
        + html.escape(text_report(results, floor, names))
        + "</pre>"
    )


def write_readme(path: Path, section: str, name: str = "") -> None:
    """Put ``section`` between the lines ``<!-- compare[:name]:start -->`` and ``...:end -->``."""
    text = path.read_text(encoding="utf-8")
    tag = f"compare:{name}:" if name else "compare:"
    start, end = f"<!-- {tag}start -->", f"<!-- {tag}end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{path}: no {start} ... {end} lines to write between")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{section}\n{end}{tail}", encoding="utf-8")


def replayed(
    traces: Sequence[str], names: Sequence[str], quick: bool, jobs: int, pauses: bool
) -> tuple[dict[str, tuple[float, int]], list[Result]]:
    """Every (run, strategy) measured in a pool of ``jobs`` processes, with a progress bar."""
    paths = replay.replayable(replay.trace_paths(traces))
    if quick and not traces:
        paths = sorted(paths, key=lambda p: (len(replay.load(p).turns), p.name))[:QUICK_RUNS]
    runs = floors(paths)
    floor = {run: (usd, turns) for run, usd, turns in runs.values()}
    # Long runs first, so the pool's last jobs are short ones.
    work = sorted(((p, n) for p in paths for n in names), key=lambda t: -runs[t[0]][2])
    progress = Progress(len(work))
    results: list[Result] = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(measure, str(p), n, pauses) for p, n in work]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            progress.step(f"{result.name} {result.run}")
    return floor, results


# --- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("traces", nargs="*")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_RUNS} small runs, fewer peers"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", help="comma-separated strategy names: " + ", ".join(STRATEGIES))
    parser.add_argument("--pauses", action="store_true", help="let recorded pauses expire entries")
    parser.add_argument("--out", type=Path, help="also write the text report here")
    parser.add_argument("--json", type=Path, help="write every result as JSON here")
    parser.add_argument("--html", type=Path, help="write a chart page here")
    parser.add_argument("--readme", type=Path, help="rewrite this file's results section")
    parser.add_argument(
        "--from-json", type=Path, help="report the results a --json run saved, replaying nothing"
    )
    parser.add_argument(
        "--section",
        default="",
        help="which section --readme rewrites: NAME for <!-- compare:NAME:start --> lines",
    )
    args = parser.parse_args(argv)
    names = list(STRATEGIES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown:
            parser.error(f"unknown strategy {', '.join(unknown)}; known: {', '.join(STRATEGIES)}")
        for base in ("none", "auto"):
            if base not in names:
                names.insert(0, base)
    elif args.quick:
        names = list(QUICK)
    started = time.monotonic()
    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        floor = {run: (usd, turns) for run, (usd, turns) in saved["floors"].items()}
        results = [Result(**r) for r in saved["results"]]
        names = [n for n in saved["names"] if n in STRATEGIES]
        named: Sequence[str] = saved.get("named") or ()
        took = saved.get("took", "")
    else:
        floor, results = replayed(args.traces, names, args.quick, args.jobs, args.pauses)
        named = args.traces
        took = f"{time.monotonic() - started:.0f} s, {args.jobs} jobs"
    report = text_report(results, floor, names) + (f"\n({took})" if took else "")
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")
    if args.json:
        saved = {
            "floors": floor,
            "names": names,
            "named": list(named),
            "took": took,
            "results": [asdict(r) for r in sorted(results, key=lambda r: (r.run, r.name))],
        }
        args.json.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    if args.html:
        args.html.write_text(chart(results, floor, names), encoding="utf-8")
    if args.readme:
        write_readme(args.readme, markdown(results, floor, names, named), args.section)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
