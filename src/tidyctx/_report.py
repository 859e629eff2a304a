"""The data of ``tidyctx report --html`` and the page it writes.

The page is drawn from a :class:`ReportData`: a list of per-call :class:`CallRow` (time, model,
tokens by billing class, cost with and without the pipeline), the tokens each transform
removed, and the largest chunks the conversation repeats. :func:`from_run` builds one by
replaying a recorded run through a pipeline on the offline cache model; a usage ledger (one
JSON row per API call) maps onto the same rows with :meth:`CallRow.from_mapping`. Rows are
folded into at most :data:`MAX_BARS` bars as they come (:class:`Bars`), so a report of a
million calls holds a few thousand numbers, not the calls.

:func:`render_html` writes one self-contained page: the data as JSON in the page, the charts
drawn as inline SVG by a short script of our own, the style inline. No font, script or image
is fetched: the page works offline, from a file.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TextIO

from tidyctx import cachesim, pricing
from tidyctx._parallelism import missed_parallelism
from tidyctx._request import canonical_json
from tidyctx.tokens import LocalCounter
from tidyctx.traces import Run

__all__ = [
    "MAX_BARS",
    "Bars",
    "CallRow",
    "Progress",
    "ReportData",
    "from_run",
    "read_rows",
    "render_html",
    "report_pipeline",
]

MAX_BARS = 1500
"""The most bars a chart draws; more calls are summed into bars of 2, 4, 8, ... calls."""

CLASSES = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
"""The billing classes of a call's tokens, in the order the chart stacks them."""


@dataclass(slots=True)
class CallRow:
    """One API call (or, in a chart bar, a run of consecutive calls summed).

    ``input`` is the uncached input; ``cost`` what the call was billed (USD) and
    ``cost_without`` what the same call would have cost with no pipeline. ``calls`` counts the
    calls summed into the row; ``first`` is the 1-based number of the first.
    """

    time: float | None = None
    model: str = ""
    input: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0
    cost: float = 0.0
    cost_without: float = 0.0
    calls: int = 1
    first: int = 1

    # A ledger row, a usage dict, or this class's own field names.
    _ALIASES: ClassVar[dict[str, tuple[str, ...]]] = {
        "input": ("input", "input_tokens"),
        "cache_read": ("cache_read", "cache_read_tokens", "cache_read_input_tokens"),
        "cache_write_5m": ("cache_write_5m", "cache_write_5m_tokens", "ephemeral_5m_input_tokens"),
        "cache_write_1h": ("cache_write_1h", "cache_write_1h_tokens", "ephemeral_1h_input_tokens"),
        "output": ("output", "output_tokens"),
        "time": ("time", "ts", "timestamp"),
    }

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any], number: int = 1) -> CallRow:
        """A row from a ledger line or any mapping with these fields (``input_tokens`` and the
        usage names are read too). A missing class counts 0; a wrong type is a ValueError
        naming the field."""
        out = cls(first=number)
        for name in ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output"):
            for alias in cls._ALIASES[name]:
                if alias in row:
                    value = row[alias]
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError(f"{alias}: expected a count of tokens, got {value!r}")
                    setattr(out, name, value)
                    break
        for alias in cls._ALIASES["time"]:
            if row.get(alias) is not None:
                from tidyctx._time import parse_ts

                out.time = parse_ts(row[alias])
                break
        for name in ("cost", "cost_without"):
            value = row.get(name, 0.0)
            if isinstance(value, Mapping):  # a pricing.Cost as a dict
                value = value.get("total", 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: expected USD, got {value!r}")
            setattr(out, name, float(value))
        model = row.get("model")
        out.model = model if isinstance(model, str) else ""
        return out

    def add(self, other: CallRow) -> None:
        for name in (*CLASSES, "cost", "cost_without", "calls"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.model and other.model != self.model:
            self.model = "several" if self.model else other.model

    def as_list(self) -> list[Any]:
        return [
            self.first,
            self.calls,
            self.time,
            *(getattr(self, c) for c in CLASSES),
            round(self.cost, 8),
            round(self.cost_without, 8),
        ]


class Bars:
    """Per-call rows folded, as they come, into at most ``limit`` bars of equal width (a power
    of two calls), and their totals: memory stays bounded however many calls there are."""

    def __init__(self, limit: int = MAX_BARS) -> None:
        self.limit = max(2, limit)
        self.width = 1
        self.bars: list[CallRow] = []
        self.total = CallRow(calls=0)
        self.count = 0
        self.models: dict[str, int] = {}

    def add(self, row: CallRow) -> None:
        self.count += 1
        row.first = self.count
        self.total.add(row)
        if row.model:
            self.models[row.model] = self.models.get(row.model, 0) + 1
        if self.bars and self.bars[-1].calls < self.width:
            self.bars[-1].add(row)
        else:
            self.bars.append(row)
        if len(self.bars) > self.limit:
            self._halve()

    def _halve(self) -> None:
        self.width *= 2
        merged: list[CallRow] = []
        for i in range(0, len(self.bars), 2):
            bar = self.bars[i]
            if i + 1 < len(self.bars):
                bar.add(self.bars[i + 1])
            merged.append(bar)
        self.bars = merged


@dataclass
class ReportData:
    """Everything the page shows: see the module docstring."""

    title: str
    bars: Bars = field(default_factory=Bars)
    transforms: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    parallel: list[dict[str, Any]] = field(default_factory=list)
    """Per run, the calls that could have joined the call before
    (:meth:`tidyctx._parallelism.MissedParallelism.as_dict`)."""
    facts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pipeline: str = ""
    about: str = ""

    def add_rows(self, rows: Iterable[Mapping[str, Any] | CallRow]) -> None:
        for k, row in enumerate(rows, 1):
            self.bars.add(row if isinstance(row, CallRow) else CallRow.from_mapping(row, k))

    @classmethod
    def from_rows(cls, title: str, rows: Iterable[Mapping[str, Any] | CallRow]) -> ReportData:
        """A page of per-call rows alone (a ledger's): the charts and the totals."""
        data = cls(title=title)
        data.add_rows(rows)
        total = data.bars.total
        data.facts = [
            ("calls", f"{data.bars.count:,}"),
            ("cost", f"${total.cost:,.4f}"),
            ("without the pipeline", f"${total.cost_without:,.4f}"),
        ]
        if total.cost_without:
            data.facts.append(("saved", f"{100 * (1 - total.cost / total.cost_without):.1f}%"))
        models = sorted(data.bars.models, key=lambda m: -data.bars.models[m])
        if models:
            data.facts.append(("models", ", ".join(models[:3])))
        return data

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "pipeline": self.pipeline,
            "columns": ["first", "calls", "time", *CLASSES, "cost", "cost_without"],
            "bars": [b.as_list() for b in self.bars.bars],
            "width": self.bars.width,
            "total": asdict(self.bars.total) | {"calls": self.bars.count},
            "transforms": self.transforms,
            "chunks": self.chunks,
            "parallel": self.parallel,
        }


def read_rows(path: str | Path) -> Iterator[CallRow]:
    """The per-call rows of a JSONL file (a usage ledger: one JSON object per line), one at a
    time: memory stays flat however long the file. A line that is not a JSON object, or whose
    fields are wrong, is a ValueError naming the file and the line; blank lines are skipped."""
    name = Path(path).name
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{name}:{number}: not JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{name}:{number}: expected a JSON object per line")
            try:
                yield CallRow.from_mapping(row, number)
            except ValueError as err:
                raise ValueError(f"{name}:{number}: {err}") from None


# ---------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on ``stream`` (stderr) when it is a terminal or ``force``; else
    silent. ``update(done)`` redraws at most once per percent."""

    def __init__(
        self, total: int, label: str, *, stream: TextIO | None = None, force: bool = False
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.total = max(total, 1)
        self.label = label
        isatty = getattr(self.stream, "isatty", None)
        self.on = force or bool(callable(isatty) and isatty())
        self._shown = -1

    def update(self, done: int) -> None:
        if not self.on:
            return
        pct = min(100, 100 * done // self.total)
        if pct == self._shown:
            return
        self._shown = pct
        filled = pct * 30 // 100
        bar = "#" * filled + "-" * (30 - filled)
        self.stream.write(f"\r{self.label} [{bar}] {pct:3d}% {done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        if self.on and self._shown >= 0:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------- from a run


def report_pipeline(timed: bool) -> tuple[Any, ...]:
    """The pipeline a recorded run is replayed through: the recommended order, trim and cache
    (adaptive TTL when the run has timestamps: the memories a wrapper keeps, one per run)."""
    import tidyctx as tc

    seen = tc.SystemLines()
    trim = tc.trim(max_tokens=700, head=0.6, slack=0.5)
    if timed:
        return (tc.order(seen=seen), trim, tc.cache(ttl="adaptive", pauses=tc.Pauses()))
    return (tc.order(seen=seen), trim, tc.cache())


def _has_markers(request: Mapping[str, Any]) -> bool:
    from tidyctx._request import cache_markers

    return bool(cache_markers(request))


def from_run(
    run: Run | Sequence[Run],
    *,
    model: str | None = None,
    pipeline: Callable[[bool], Sequence[Any]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReportData:
    """Replay ``run`` (or several runs, one after the other) through a pipeline (default
    :func:`report_pipeline`; ``pipeline(timed)`` gives a fresh one per run) on the offline
    cache model, with the run's timestamps, priced on ``model`` (default: the run's, or
    claude-sonnet-4-6 for a model with no price); the rows say what each call would be billed
    with the pipeline and as the agent sent it. ``progress(done)`` is called after each call.
    """
    runs = [run] if isinstance(run, Run) else list(run)
    data = ReportData(title=" + ".join(r.id for r in runs))
    saved: dict[str, list[int]] = {}
    notes: list[str] = []
    recorded_cost = 0.0
    decisions: dict[str, int] = {}
    chunks: list[dict[str, Any]] = []
    timed_any = False
    done = 0
    price = pricing.lookup("claude-sonnet-4-6")
    for one in runs:
        price, timed, recorded = _replay(
            one,
            model,
            pipeline or report_pipeline,
            data,
            saved,
            notes,
            decisions,
            chunks,
            functools.partial(_offset, progress, done),
        )
        done += len(one.turns)
        recorded_cost += recorded
        data.parallel.append(missed_parallelism(one, model=price.model).as_dict())
        timed_any = timed_any or timed
    data.pipeline = ", ".join(saved)
    data.transforms = [
        {"name": name, "tokens_saved": v[0], "calls_changed": v[1]} for name, v in saved.items()
    ]
    chunks.sort(key=lambda c: (-c["repeated_tokens"], c["preview"]))
    data.chunks = chunks[:12]
    total = data.bars.total
    data.facts = [
        ("calls", f"{data.bars.count:,}"),
        ("priced as", price.model),
        ("with the pipeline", f"${total.cost:,.4f}"),
        ("without", f"${total.cost_without:,.4f}"),
    ]
    if total.cost_without:
        data.facts.append(("saved", f"{100 * (1 - total.cost / total.cost_without):.1f}%"))
    if recorded_cost:
        data.facts.append(("billed as recorded", f"${recorded_cost:,.4f}"))
    missed = sum(p["missed_calls"] for p in data.parallel)
    if missed:
        cost = sum(p["missed_cost"] for p in data.parallel)
        data.facts.append(("calls that could have run in parallel", f"{missed:,}: ${cost:,.4f}"))
    if decisions:
        data.facts.append(
            ("adaptive TTL", "; ".join(f"{n} calls {label}" for label, n in decisions.items()))
        )
    if len(runs) == 1:
        meta = runs[0].meta
        data.about = "; ".join(
            f"{key} {str(meta[key])[:160]}"
            for key in ("agent", "source", "license")
            if meta.get(key)
        )
    data.notes = [
        *dict.fromkeys(notes),
        "Costs are simulated on tidyctx's offline model of the prompt cache "
        + ("with the recorded timestamps" if timed_any else "(no timestamps: nothing expires)")
        + "; output tokens are the recorded ones (or counted from the reply). Tokens removed "
        "are counted locally, per call, summed over the calls.",
    ]
    return data


def _offset(progress: Callable[[int], None] | None, done: int, k: int) -> None:
    if progress is not None:
        progress(done + k)


def _replay(
    run: Run,
    model: str | None,
    pipeline: Callable[[bool], Sequence[Any]],
    data: ReportData,
    saved: dict[str, list[int]],
    notes: list[str],
    decisions: dict[str, int],
    chunks: list[dict[str, Any]],
    progress: Callable[[int], None],
) -> tuple[pricing.ModelPrice, bool, float]:
    """One run into ``data`` and the tallies; returns the price used, whether the run had
    timestamps and the cost of its recorded usage."""
    import tidyctx as tc

    try:
        price = pricing.lookup(model or run.model)
    except pricing.UnknownModelError:
        price = pricing.lookup("claude-sonnet-4-6")
        notes.append(f"The run's model {run.model!r} has no price: priced as {price.model}.")
    counter = LocalCounter(price.model)
    timestamps = run.timestamps()
    timed = sum(t is not None for t in timestamps) >= 2
    steps = tuple(pipeline(timed))
    # The memory a wrapper would keep (an empty Pauses is falsy: compare with None).
    found = [getattr(s, "pauses", None) for s in steps]
    pauses = next((p for p in found if p is not None), None)

    requests = [{**t.request, "model": price.model} for t in run.turns]
    # The baseline is the run as the agent sent it. A log that kept no cache_control of the
    # agent's own while the API billed cache reads lost the markers, not the caching: the
    # baseline then caches automatically (one top-level marker), as the agent did at least.
    recorded_reads = any(
        pricing.usage_dict(t.usage)["cache_read_input_tokens"] for t in run.turns if t.usage
    )
    baseline = requests
    if recorded_reads and not any(_has_markers(r) for r in requests):
        baseline = [{**r, "cache_control": {"type": "ephemeral"}} for r in requests]
        notes.append(
            "The log kept no cache_control markers but the API billed cache reads: the cost "
            "without the pipeline is priced with automatic caching (one top-level marker)."
        )
    with_cache = cachesim.CacheModel(model=price.model, counter=counter)
    without_cache = cachesim.CacheModel(model=price.model, counter=counter)
    recorded_cost = 0.0
    for k, (turn, request, plain) in enumerate(zip(run.turns, requests, baseline, strict=True)):
        ts = timestamps[k]
        if pauses is not None and ts is not None:
            pauses.record(request, at=ts)
        report = tc.explain(request, *steps, counter=counter)
        for step in report.steps:
            tally = saved.setdefault(step.name, [0, 0])
            tally[0] += step.tokens_before - step.tokens_after
            tally[1] += 1 if step.changed_blocks else 0
        if pauses is not None:
            decision = pauses.decision(request)
            if decision is not None:
                label = f"stable {decision.stable}, rolling {decision.rolling}"
                decisions[label] = decisions.get(label, 0) + 1
        if turn.usage:
            output = pricing.usage_dict(turn.usage)["output_tokens"]
            recorded_cost += pricing.cost(turn.usage, price).total
        else:
            reply = turn.reply or {"role": "assistant", "content": []}
            output = counter.count_request({"messages": [reply]})
        u = with_cache.call(report.request, ts).usage
        u["output_tokens"] = output
        b = without_cache.call(plain, ts).usage
        b["output_tokens"] = output
        parts = u["cache_creation"]
        data.bars.add(
            CallRow(
                time=ts,
                model=price.model,
                input=u["input_tokens"],
                cache_read=u["cache_read_input_tokens"],
                cache_write_5m=parts["ephemeral_5m_input_tokens"],
                cache_write_1h=parts["ephemeral_1h_input_tokens"],
                output=output,
                cost=pricing.cost(u, price).total,
                cost_without=pricing.cost(b, price).total,
            )
        )
        progress(k + 1)
    chunks.extend(repeated_chunks(requests, counter))
    return price, timed, recorded_cost


def repeated_chunks(
    requests: Sequence[Mapping[str, Any]], counter: LocalCounter, limit: int = 12
) -> list[dict[str, Any]]:
    """The message blocks whose content occurs at more than one place in the conversation,
    largest repeated tokens first: ``{"tokens", "count", "repeated_tokens", "preview"}``.

    Only the last request of each stretch in which the conversation only grew is read (a
    later request holds the earlier ones), so a long run is read about once."""
    seen: set[tuple[int, bytes]] = set()
    found: dict[bytes, list[Any]] = {}  # digest -> [count, tokens, preview]
    for k, request in enumerate(requests):
        messages = request.get("messages")
        if not isinstance(messages, list):
            continue
        following = requests[k + 1].get("messages") if k + 1 < len(requests) else None
        if isinstance(following, list) and len(following) >= len(messages):
            continue  # the next request holds this one's messages
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, Mapping) else None
            for block in content if isinstance(content, list) else []:
                text = _block_text(block)
                if len(text) < 200:
                    continue
                digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()
                if (i, digest) in seen:
                    continue
                seen.add((i, digest))
                entry = found.get(digest)
                if entry is None:
                    found[digest] = [1, 0, text]
                else:
                    entry[0] += 1
    out = []
    for count, _, text in found.values():
        if count < 2:
            continue
        tokens = counter.count_text(text)
        out.append(
            {
                "tokens": tokens,
                "count": count,
                "repeated_tokens": tokens * (count - 1),
                "preview": " ".join(text[:160].split()),
            }
        )
    out.sort(key=lambda c: (-c["repeated_tokens"], c["preview"]))
    return out[:limit]


def _block_text(block: Any) -> str:
    if not isinstance(block, Mapping):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text") or "")
    if kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, list):
            return "\n".join(str(b.get("text", "")) for b in inner if isinstance(b, Mapping))
        return ""
    if kind == "tool_use":
        return canonical_json(block.get("input")).decode("utf-8", "replace")
    return ""


# ---------------------------------------------------------------------------- the page


def _parallel_html(runs: list[dict[str, Any]], limit: int = 30) -> str:
    """The missed-parallelism section: per run the total, then its missed calls."""
    esc = html.escape
    if not runs:
        return "<p class=muted>No run to read.</p>"
    parts = []
    for run in runs:
        n = run["missed_calls"]
        share = 100 * run["missed_cost"] / run["run_cost"] if run["run_cost"] else 0.0
        head = (
            f"<p><b>{esc(run['run'])}</b>: {n:,} of {run['calls']:,} calls could have joined "
            f"the call before; those extra round trips re-read "
            f"{run['missed_input_tokens']:,} input tokens, ${run['missed_cost']:,.4f} on "
            f"{esc(run['model'])} ({share:.1f}% of the run's ${run['run_cost']:,.4f}).</p>"
        )
        rows = "".join(
            f"<tr><td class=n>{m['call']}</td><td class=n>{m['joins']}</td>"
            f"<td class=n>{m['input_tokens']:,}</td><td class=n>${m['cost']:.4f}</td>"
            f"<td class=pre>{esc(m['summary'])}</td></tr>"
            for m in run["missed"][:limit]
        )
        more = f"<p class=muted>... and {n - limit} more.</p>" if n > limit else ""
        table = (
            "<table><thead><tr><th class=n>call</th><th class=n>could join call</th>"
            "<th class=n>input tokens</th><th class=n>cost</th><th>tool call</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{more}"
            if rows
            else ""
        )
        parts.append(head + table)
    return "".join(parts)


def render_html(data: ReportData) -> str:
    """The self-contained page of ``data``."""
    payload = json.dumps(data.as_json(), ensure_ascii=True, separators=(",", ":"))
    # Inside a <script> element "</script" or "<!--" would end or bend it: no "<" at all
    # (it occurs only in JSON strings, where "\\u003c" reads the same).
    payload = payload.replace("<", "\\u003c")
    esc = html.escape
    facts = "".join(
        f"<div class=fact><b>{esc(v)}</b><span>{esc(k)}</span></div>" for k, v in data.facts
    )
    rows = "".join(
        f"<tr><td><code>{esc(t['name'])}</code></td><td class=n>{t['tokens_saved']:,}</td>"
        f"<td class=n>{t['calls_changed']:,}</td></tr>"
        for t in data.transforms
    )
    transforms = (
        "<table><thead><tr><th>transform</th><th class=n>input tokens removed, all calls</th>"
        f"<th class=n>calls it changed</th></tr></thead><tbody>{rows}</tbody></table>"
        if data.transforms
        else "<p class=muted>No per-transform figures for this input.</p>"
    )
    rows = "".join(
        f"<tr><td class=n>{c['repeated_tokens']:,}</td><td class=n>{c['count']}</td>"
        f"<td class=n>{c['tokens']:,}</td><td class=pre>{esc(c['preview'])}</td></tr>"
        for c in data.chunks
    )
    chunks = (
        "<table><thead><tr><th class=n>tokens repeated</th><th class=n>times</th>"
        f"<th class=n>tokens each</th><th>starts with</th></tr></thead><tbody>{rows}</tbody>"
        "</table>"
        if data.chunks
        else "<p class=muted>No block of 200 characters or more occurs twice.</p>"
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in data.notes)
    parallel = _parallel_html(data.parallel)
    width = data.bars.width
    per_bar = (
        ""
        if width == 1
        else f"<p class=muted>{data.bars.count:,} calls: each bar sums {width} calls.</p>"
    )
    page = resources.files("tidyctx").joinpath("_report.html").read_text(encoding="utf-8")
    return (
        page.replace("{{title}}", esc(data.title))
        .replace("{{pipeline}}", esc(data.pipeline or "none"))
        .replace("{{about}}", f"<div class=muted>{esc(data.about)}</div>" if data.about else "")
        .replace("{{facts}}", facts)
        .replace("{{per_bar}}", per_bar)
        .replace("{{transforms}}", transforms)
        .replace("{{chunks}}", chunks)
        .replace("{{parallel}}", parallel)
        .replace("{{notes}}", notes)
        .replace("{{data}}", payload)
    )
