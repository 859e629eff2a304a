"""The stand-in summarizer: what :class:`~tidyctx.testing.LocalServer` answers a summary call
of ``tidyctx.summarize`` with, so that tests and benchmarks run offline.

Its output is extractive and deterministic: the summarize benchmarks measure their recall with
it, so any change to what it writes changes their results.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tidyctx.tokens import LocalCounter
from tidyctx.transforms._summarize import SUMMARIZER_MARK

__all__ = ["is_summary_call", "summary_responder"]

_TAGGED = re.compile(r"<(previous-summary|transcript)>\n(.*)\n</\1>\Z", re.DOTALL)
_PATHLIKE = re.compile(r"~?/?(?:[\w.@+-]+/)+[\w.@+-]+|\b[\w-]+\.[A-Za-z]{1,5}\b")
_CODE_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\b")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,._:-]*\d(?![\w])")
_QUOTED = re.compile(r"\"([^\"\n]{3,80})\"|'([^'\n]{3,80})'|`([^`\n]{3,80})`")
_ERROR_LINE = re.compile(r"error|exception|traceback|failed|failure|fatal|denied|not found", re.I)
_SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z`\"'(])")
# Shares of the budget, in percent (tuned against real compactions: see summary_responder).
_TASK = 25  # at most, for the first user text
_ASKS = 10  # the user's later messages
_STATE = 10  # the steps (## State)
_NOTES = 55  # the agent's own sentences (## Decisions)
_SPREAD = 50  # of _NOTES: older sentences picked evenly over the span; the rest newest first
_FAILED = 5  # errors (## Tried and failed)
_FACT_CAP = 6  # a fact's weight stops counting here: past it, earlier facts rank first
_JSON_KEY = re.compile(r'"[\w-]+":\s')  # a tool input's keys are no facts, its values are
_CALL_HEAD = re.compile(r"\[tool call (?P<name>\S+) \((?P<id>[^)]*)\)\] (?P<args>.*)")
_RESULT_HEAD = re.compile(r"\[result of (?P<name>.+?) \((?P<id>[^)]*)\)(?P<error>, error)?\]")


def is_summary_call(body: Mapping[str, Any]) -> bool:
    """Is this request a summary call of ``tidyctx.summarize`` (its system prompt says so)?"""
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(str(b.get("text") or "") for b in system if isinstance(b, Mapping))
    return isinstance(system, str) and SUMMARIZER_MARK in system


def _code_like(name: str) -> bool:
    # Names a program uses (snake_case, camelCase, dotted, with digits), not plain words.
    if len(name) < 4:
        return False
    return (
        "_" in name
        or "." in name
        or any(c.isdigit() for c in name)
        or any(c.isupper() for c in name[1:])
    )


def _facts(text: str) -> list[str]:
    found: list[str] = []
    found += [m.group(0) for m in _PATHLIKE.finditer(text) if len(m.group(0)) >= 4]
    found += [m.group(0) for m in _CODE_NAME.finditer(text) if _code_like(m.group(0))]
    found += [
        m.group(0) for m in _NUMBER.finditer(text) if sum(c.isdigit() for c in m.group(0)) >= 3
    ]
    found += [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
    return found


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1).strip() if match else ""


def _fit(lines: list[str], room: int, counter: LocalCounter, newest: bool = False) -> list[str]:
    """The lines that fit in ``room`` tokens, in their order (the newest first if ``newest``),
    each once."""
    kept: list[str] = []
    seen: set[str] = set()
    for line in reversed(lines) if newest else lines:
        if room < 3:
            break
        if line in seen:
            continue
        n = counter.count_text(line) + 1
        if n > room:
            continue
        kept.append(line)
        seen.add(line)
        room -= n
    return list(reversed(kept)) if newest else kept


def _notes(lines: list[str], room: int, counter: LocalCounter) -> list[str]:
    """The newest of the agent's sentences in ``room - _SPREAD %``, then older ones picked at
    even steps over the span in what is left, all in their order."""
    newest = _fit(lines, room * (100 - _SPREAD) // 100, counter, newest=True)
    chosen = set(newest)
    cut = lines.index(newest[0]) if newest else len(lines)
    older = [line for line in lines[:cut] if line not in chosen]
    left = room - sum(counter.count_text(line) + 1 for line in newest)
    if not older or left <= 0:
        return newest
    each = sum(counter.count_text(line) + 1 for line in older) / len(older)
    k = min(len(older), max(1, int(left / each)))
    return _fit([older[i * len(older) // k] for i in range(k)], left, counter) + newest


def summary_responder(body: Mapping[str, Any]) -> str:
    """A deterministic, extractive summary for a ``tidyctx.summarize`` call.

    It reads the call's ``<previous-summary>`` and ``<transcript>`` and writes the sections
    the prompt asks for from what the text holds: the task (the first user text, or the
    previous summary's, then the user's later messages, newest kept first), the steps (each
    tool call with its input and the first line of its result, newest kept first), the agent's
    own sentences (its findings, decisions and plans: half of their room for the newest, half
    for older ones picked at even steps over the span), errors (lines that say error,
    failed...), and facts: paths, code names, numbers of 3+ digits and quoted strings (from
    tool inputs' values, not their keys), weighted by mention (the agent's own three times a
    tool result's) up to a cap, then in the order they first occur. The answer fits in two
    thirds of the call's ``max_tokens`` (counted with :class:`tidyctx.tokens.LocalCounter`),
    so it stands for a summary of the requested length. It never calls a model: tests and
    benchmarks run offline, and its recall is that of an extractive summary, not of Haiku.

    Calibration (benchmarks/summary_calibration.py, docs/benchmarks.md): against 17 real
    compactions that Claude Code wrote with the session's model (data/compactions/), the
    recall of the later turns' references this summary holds at the real summary's length
    differs from the real one's by -0.010 on average (0.037 per compaction, absolute). Before
    the tuning it was -0.037 (0.068). On 38 compactions kept out of the tuning: -0.012
    (0.067), before -0.030 (0.070); so the stand-in is unbiased on average, and one run's
    figure is good to about 0.07 either way. Real summaries are prose over the whole span: they keep
    every user message, tell what the agent found and did from the start, and name many
    distinct facts once. The stand-in kept too few of the agent's sentences (25 % of the
    budget, now 55 %, taken from the steps, 20 % to 10 %, and errors, 10 % to 5 %) and only
    the newest, ranked facts by raw frequency (so a few names used everywhere, tool input
    keys among them, filled the Facts section), and left out the user's later messages.
    Recall counts every identifier of 4+ characters, plain words included, so prose in the
    agent's own wording is what a summary's recall rests on.
    """
    previous = transcript = ""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        blocks = [content] if isinstance(content, str) else content or []
        for block in blocks:
            text = block if isinstance(block, str) else str(block.get("text") or "")
            match = _TAGGED.match(text)
            if match and match.group(1) == "previous-summary":
                previous = match.group(2)
            elif match:
                transcript = match.group(2)
    max_tokens = body.get("max_tokens")
    budget = max(50, (int(max_tokens) if isinstance(max_tokens, int) else 1024) * 2 // 3)
    counter = LocalCounter()

    told = _section(previous, "Task").splitlines()
    task = "\n".join(s for s in told if not s.startswith("- ")).strip()
    asks = [s for s in told if s.startswith("- ")]
    steps = [s for s in _section(previous, "State").splitlines() if s.startswith("- ")]
    errors = [s for s in _section(previous, "Tried and failed").splitlines() if s.startswith("- ")]
    notes = [s for s in _section(previous, "Decisions").splitlines() if s.startswith("- ")]
    old_facts = re.findall(r"`([^`\n]+)`", _section(previous, "Facts"))
    score: dict[str, int] = {fact: 2 for fact in old_facts}  # still known: weigh as mentioned
    first_seen: dict[str, int] = {fact: i for i, fact in enumerate(old_facts)}
    role = ""
    pending: dict[str, str] = {}
    for part in re.split(r"\n\n(?=### (?:user|assistant)\n)", transcript):
        head, _, rest = part.partition("\n")
        role = head[4:] if head.startswith("### ") else role
        for chunk in re.split(r"\n(?=\[(?:tool call|result of) )", rest):
            call = _CALL_HEAD.match(chunk)
            result = _RESULT_HEAD.match(chunk)
            weight = 3 if role == "assistant" else 1
            if role == "user" and not result and chunk.strip():
                said = " ".join(chunk.split())
                if not task:
                    task = said[:600]
                else:
                    asks.append(f"- {said[:300]}")
            if role == "assistant" and not call and not result:
                # The agent's own words: its findings, decisions and plans, sentence by sentence.
                for sentence in _SENTENCE.split(" ".join(chunk.split())):
                    if len(sentence) >= 20:
                        notes.append(f"- {sentence[:300]}")
            if call:
                pending[call.group("id")] = f"{call.group('name')} {call.group('args')[:160]}"
            elif result:
                lines = [ln.strip() for ln in chunk.splitlines()[1:] if ln.strip()]
                first = lines[0][:160] if lines else "(empty)"
                what = pending.pop(result.group("id"), result.group("name"))
                steps.append(f"- {what} -> {first}")
                if result.group("error"):
                    errors.append(f"- {what}: {first}")
                for line in lines:
                    if _ERROR_LINE.search(line):
                        errors.append(f"- {line[:200]}")
            for fact in _facts(_JSON_KEY.sub(" ", chunk) if call else chunk):
                score[fact] = score.get(fact, 0) + weight
                first_seen.setdefault(fact, len(first_seen))

    while task and counter.count_text(task) > budget * _TASK // 100:
        task = task[: len(task) * 3 // 4]
    later = _fit(asks, budget * _ASKS // 100, counter, newest=True)
    out = ["## Task\n" + "\n".join([task or "(not stated in this part)", *later])]
    used = counter.count_text(out[0])
    for title, lines, share in (
        ("State", steps, _STATE),
        ("Decisions", notes, _NOTES),
        ("Tried and failed", errors, _FAILED),
    ):
        room = min(budget * share // 100, budget - used)
        kept = (
            _notes(lines, room, counter)
            if title == "Decisions"
            else _fit(lines, room, counter, newest=True)
        )
        if kept:
            out.append(f"## {title}\n" + "\n".join(kept))
            used += counter.count_text(out[-1]) + 2
    ranked = sorted(score, key=lambda f: (-min(score[f], _FACT_CAP), first_seen[f]))
    facts = _fit([f"`{f}`" for f in ranked], max(0, budget - used - 10), counter)
    if facts:
        out.append("## Facts\n" + ", ".join(facts))
    return "\n\n".join(out)
