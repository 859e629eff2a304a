"""How the local stand-in summarizer compares with a real model's summary of the same span.

    python benchmarks/summary_calibration.py [SESSION.jsonl ...] [--out FILE]

summarize()'s benchmark (summarize_replay.py) and the peers' (peers/standin.py) measure
reference recall with the local server's deterministic extractive summaries
(tidyctx.testing.summary_responder), because the API cannot be reached from here. This script
checks how far that stand-in is from real summaries. Claude Code session logs (``*.jsonl``)
record its own compaction: a user message marked ``isCompactSummary`` that replaces the
conversation before it, written by the session's model (with Claude Code's prompt, not
tidyctx's), followed by the turns that continued from it.

For each compaction: the references of the later assistant turns (docs/benchmarks.md's reference
recall: paths, identifiers, numbers, quoted strings) that occur in a tool result before the
compaction and nowhere in the continued conversation before the turn. Those the agent could
only have had from the summary. The table gives, per compaction, how many of them the real
summary holds (its recall) and how many the stand-in holds when it summarizes the same span
through summarize()'s own call at the real summary's length, and at summarize()'s default
target; then the mean and mean absolute per-compaction difference (stand-in minus real).
Default input: the samples in data/compactions/ (their sources and licenses are in its
README.md) and the Claude Code logs of the trace collection (benchmarks/replay.py) that hold a
compaction; a compaction found twice (the same summary text) is counted once.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

import anthropic
import replay

from tidyctx.recall import references, texts_of
from tidyctx.testing import summary_responder
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._summarize import DEFAULT_TARGET, serialize, summarize

Message = dict[str, Any]
KINDS = ("text", "tool_use", "tool_result")
SAMPLES = replay.ROOT / "data" / "compactions"


@dataclass(frozen=True)
class Compaction:
    """One compaction of a log: the span it replaced, the summary, and what the later turns
    could only have had from the summary."""

    name: str
    span: list[Message]
    summary: str
    later: int
    """Messages after the summary, up to the next compaction or the end of the log."""
    references: list[str]
    """References of the later assistant turns found before the compaction and not since (a
    reference counts once for each turn that makes it)."""
    model: str


def conversation(path: Path) -> list[tuple[Message, bool]]:
    """The main thread of a Claude Code log as messages, each with whether it is a compaction
    summary. Claude Code writes one event per content block: consecutive events of one role
    are one message."""
    out: list[tuple[Message, bool]] = []
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 in text
        if not line.strip() or line.startswith("//"):  # blank, or a provenance comment
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not a JSON event ({e})") from None
        if event.get("type") not in ("user", "assistant") or event.get("isSidechain"):
            continue
        message = event.get("message") or {}
        content = message.get("content")
        if isinstance(content, str):
            blocks = [{"type": "text", "text": content}]
        else:
            blocks = [b for b in content or [] if isinstance(b, dict) and b.get("type") in KINDS]
        if not blocks:
            continue
        summary = bool(event.get("isCompactSummary"))
        role = message.get("role")
        if out and out[-1][0]["role"] == role and not summary and not out[-1][1]:
            out[-1][0]["content"].extend(blocks)
            out[-1][0].setdefault("model", message.get("model"))
        else:
            out.append(({"role": role, "content": blocks, "model": message.get("model")}, summary))
    return out


def said(message: Message) -> str:
    parts = []
    for b in message["content"]:
        if b["type"] == "text":
            parts.append(str(b.get("text") or ""))
        elif b["type"] == "tool_use":
            parts.append(json.dumps(b.get("input"), ensure_ascii=False))
    return "\n".join(parts)


def results_text(messages: list[Message]) -> str:
    return "\n".join(
        t
        for m in messages
        for b in m["content"]
        if b["type"] == "tool_result"
        for t in texts_of(b.get("content"))
    )


def compactions(path: Path) -> list[Compaction]:
    """The compactions of a Claude Code log whose span the log holds (a log that opens with a
    summary does not hold what that summary replaced)."""
    messages = conversation(path)
    marks = [i for i, (_, is_summary) in enumerate(messages) if is_summary]
    found = []
    for n, k in enumerate(marks):
        start = marks[n - 1] if n else 0
        if k == start:
            continue
        end = marks[n + 1] if n + 1 < len(marks) else len(messages)
        span = [{"role": m["role"], "content": m["content"]} for m, _ in messages[start:k]]
        after = [m for m, _ in messages[k:end]]
        earlier = results_text(span)
        refs: list[str] = []
        for t in range(1, len(after)):
            if after[t]["role"] != "assistant":
                continue
            seen = "\n".join(texts_of([m["content"] for m in after[1:t]]))
            refs += sorted(x for x in references(said(after[t])) if x in earlier and x not in seen)
        models = [str(m.get("model")) for m, _ in messages[start:end] if m.get("model")]
        found.append(
            Compaction(
                name=f"{path.name} #{n + 1}",
                span=span,
                summary="\n".join(texts_of(after[0]["content"])),
                later=len(after) - 1,
                references=refs,
                model=max(sorted(set(models)), key=models.count) if models else "?",
            )
        )
    return found


def stand_in(span: list[Message], target: int) -> str:
    # summarize()'s own summary request, answered by the local server's responder (no call).
    client = anthropic.Anthropic(api_key="unused", base_url="http://127.0.0.1:9")
    s = summarize(client, target_tokens=target, trigger=max(60_000, 2 * target))
    return summary_responder(s.summary_request(None, serialize(span)))


def held(refs: Sequence[str], text: str) -> float:
    return sum(1 for x in refs if x in text) / max(len(refs), 1)


def default_paths() -> list[Path]:
    paths = sorted(SAMPLES.glob("*.jsonl"))
    if replay.SHARED.is_dir():
        paths += sorted(replay.SHARED.glob("*.jsonl"))
    return paths


def table(samples: Sequence[Compaction]) -> list[str]:
    counter = LocalCounter()
    head = (
        f"{'compaction':<38}{'model':<28}{'span':>9}{'refs':>6}{'real':>7}{'recall':>8}"
        f"{'stand-in':>10}{'recall':>8}{'diff':>8}{f'@{DEFAULT_TARGET:,}':>8}"
    )
    lines = [head]
    diffs: list[float] = []
    refs = 0
    pooled = {"real": 0.0, "ours": 0.0, "default": 0.0}  # recall weighted by references
    for c in samples:
        real_tokens = counter.count_text(c.summary)
        same = stand_in(c.span, max(500, round(real_tokens, -2)))
        default = stand_in(c.span, DEFAULT_TARGET)
        real, ours, at_default = (held(c.references, s) for s in (c.summary, same, default))
        diffs.append(ours - real)
        n = len(c.references)
        refs += n
        pooled["real"] += real * n
        pooled["ours"] += ours * n
        pooled["default"] += at_default * n
        lines.append(
            f"{c.name:<38}{c.model[:27]:<28}{counter.count_request({'messages': c.span}):>9,}"
            f"{n:>6}{real_tokens:>7,}{real:>8.3f}{counter.count_text(same):>10,}{ours:>8.3f}"
            f"{ours - real:>+8.3f}{at_default:>8.3f}"
        )
    n = max(refs, 1)
    lines += [
        "",
        f"{len(samples)} compactions, {refs:,} references",
        f"mean difference (stand-in minus real): {mean(diffs) if diffs else 0:+.3f}",
        f"mean absolute difference: {mean(abs(d) for d in diffs) if diffs else 0:.3f}",
        f"pooled recall: real {pooled['real'] / n:.3f}, stand-in at the real length "
        f"{pooled['ours'] / n:.3f}, stand-in at {DEFAULT_TARGET:,} tokens "
        f"{pooled['default'] / n:.3f}",
    ]
    return lines


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="*", type=Path)
    parser.add_argument(
        "--out", default=str(replay.ROOT / "benchmarks/results/summary_calibration.txt")
    )
    args = parser.parse_args(argv)
    samples: list[Compaction] = []
    known: set[str] = set()
    for path in args.logs or default_paths():
        for c in compactions(path):
            if c.summary not in known:
                known.add(c.summary)
                samples.append(c)
    if not samples:
        print("no Claude Code log with a compaction summary (isCompactSummary) was given")
        return 1
    lines = [
        f"# python benchmarks/summary_calibration.py   ({datetime.date.today().isoformat()})",
        "# real: the compaction Claude Code wrote with the session's model and its own prompt;"
        " stand-in: tidyctx.testing.summary_responder",
        "# answering summarize()'s call for the same span, at the real summary's length"
        f" (and at summarize()'s default target, {DEFAULT_TARGET:,}).",
        "# span: tokens summarized; refs: references of the later turns that only the summary"
        " could hold; real, stand-in: summary tokens.",
        *table(samples),
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
