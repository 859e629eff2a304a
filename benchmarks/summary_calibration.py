"""How the local stand-in summarizer compares with a real model's summary of the same span.

    python benchmarks/summary_calibration.py [SESSION.jsonl ...]

summarize()'s benchmark (summarize_replay.py) measures reference recall with the local
server's deterministic extractive summaries (tidyctx.testing.summary_responder), because the
API cannot be reached from here. This script checks how far that stand-in is from a real
summary. Claude Code session logs (``*.jsonl``) record its own compaction: a user message marked
``isCompactSummary`` that replaces the conversation before it, written by the session's model
(not Haiku, and with Claude Code's prompt, not tidyctx's), followed by the turns that continued
from it.

For each compaction: the references of the later assistant turns (docs/benchmarks.md's reference
recall: paths, identifiers, numbers, quoted strings) that occur in a tool result before the
compaction and nowhere in the continued conversation before the turn. Those the agent could
only have had from the summary. Printed: how many of them the real summary holds, and how many
the stand-in holds when it summarizes the same span through summarize()'s own call, at
summarize()'s default target and at the real summary's length. Default input: the Claude Code
logs of the trace collection (benchmarks/replay.py) that hold a compaction.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anthropic
import replay

from tidyctx.recall import references, texts_of
from tidyctx.testing import summary_responder
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._summarize import serialize, summarize

Message = dict[str, Any]
KINDS = ("text", "tool_use", "tool_result")


def conversation(path: Path) -> list[tuple[Message, bool]]:
    """The main thread of a Claude Code log as messages, each with whether it is a compaction
    summary. Claude Code writes one event per content block: consecutive events of one role
    are one message."""
    out: list[tuple[Message, bool]] = []
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines: U+2028 in text
        if not line.strip() or line.startswith("//"):  # blank, or a provenance comment
            continue
        event = json.loads(line)
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
        else:
            out.append(({"role": role, "content": blocks}, summary))
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


def stand_in(span: list[Message], target: int) -> str:
    # summarize()'s own summary request, answered by the local server's responder (no call).
    client = anthropic.Anthropic(api_key="unused", base_url="http://127.0.0.1:9")
    s = summarize(client, target_tokens=target, trigger=max(60_000, 2 * target))
    return summary_responder(s.summary_request(None, serialize(span)))


def main(argv: list[str]) -> int:
    named = [Path(a) for a in argv if not a.startswith("-")]
    paths = named or sorted(replay.SHARED.glob("*.jsonl"))
    counter = LocalCounter()
    found = 0
    for path in paths:
        messages = conversation(path)
        marks = [i for i, (_, is_summary) in enumerate(messages) if is_summary]
        for n, k in enumerate(marks):
            found += 1
            start = marks[n - 1] if n else 0
            end = marks[n + 1] if n + 1 < len(marks) else len(messages)
            span = [m for m, _ in messages[start:k]]
            after = [m for m, _ in messages[k:end]]
            real = "\n".join(texts_of(after[0]["content"]))
            real_tokens = counter.count_text(real)
            summaries = {"real (in the log)": real}
            default = summarize(object()).target_tokens
            for target in sorted({default, max(500, round(real_tokens, -2))}):
                summaries[f"stand-in, target {target:,}"] = stand_in(span, target)
            earlier = results_text(span)
            hits = dict.fromkeys(summaries, 0)
            total = 0
            for t in range(1, len(after)):
                if after[t]["role"] != "assistant":
                    continue
                seen = "\n".join(texts_of([m["content"] for m in after[1:t]]))
                refs = [x for x in references(said(after[t])) if x in earlier and x not in seen]
                total += len(refs)
                for name, text in summaries.items():
                    hits[name] += sum(1 for x in refs if x in text)
            print(
                f"{path.name}, compaction {n + 1}: {len(span)} messages "
                f"({counter.count_request({'messages': span}):,} tokens) summarized; "
                f"{len(after) - 1} messages after it"
            )
            print(
                f"  {total} references of the later turns could only come from the summary "
                f"(in a tool result before it, not seen again after it)"
            )
            print(f"  {'summary':<26}{'tokens':>8}{'holds':>8}{'share':>8}{'per 1k tokens':>15}")
            for name, text in summaries.items():
                size = counter.count_text(text)
                print(
                    f"  {name:<26}{size:>8,}{hits[name]:>8}{hits[name] / max(total, 1):>8.3f}"
                    f"{hits[name] / max(size, 1) * 1000:>15.1f}"
                )
    if not found:
        print("no Claude Code log with a compaction summary (isCompactSummary) was given")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
