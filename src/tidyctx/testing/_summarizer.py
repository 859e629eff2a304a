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
_NOTES = 25  # percent of the budget for the agent's own sentences (## Decisions)
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


def summary_responder(body: Mapping[str, Any]) -> str:
    """A deterministic, extractive summary for a ``tidyctx.summarize`` call.

    It reads the call's ``<previous-summary>`` and ``<transcript>`` and writes the sections
    the prompt asks for from what the text holds: the task (the first user text, or the
    previous summary's), the steps (each tool call with its input and the first line of its
    result, newest kept first), the agent's own sentences (its findings, decisions and plans,
    newest kept first), errors (lines that say error, failed...), and facts: paths,
    code names, numbers of 3+ digits and quoted strings, those the agent itself wrote (in
    its text and tool inputs) first, then by how often they occur. The answer fits in two
    thirds of the call's ``max_tokens`` (counted with :class:`tidyctx.tokens.LocalCounter`),
    so it stands for a summary of the requested length. It never calls a model: tests and
    benchmarks run offline, and its recall is that of an extractive summary, not of Haiku.
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

    task = _section(previous, "Task")
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
            if role == "user" and not task and not result and chunk.strip():
                task = " ".join(chunk.split())[:600]
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
            for fact in _facts(chunk):
                score[fact] = score.get(fact, 0) + weight
                first_seen.setdefault(fact, len(first_seen))

    def fit(lines: list[str], room: int, newest: bool = False) -> list[str]:
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

    while task and counter.count_text(task) > budget // 4:
        task = task[: len(task) * 3 // 4]
    out = [f"## Task\n{task or '(not stated in this part)'}"]
    used = counter.count_text(out[0])
    state = fit(steps, budget * 2 // 10, newest=True)
    if state:
        out.append("## State\n" + "\n".join(state))
    decided = fit(notes, budget * _NOTES // 100, newest=True)
    if decided:
        out.append("## Decisions\n" + "\n".join(decided))
    failed = fit(errors, budget // 10, newest=True)
    if failed:
        out.append("## Tried and failed\n" + "\n".join(failed))
    used += sum(counter.count_text(s) + 2 for s in out[1:])
    ranked = sorted(score, key=lambda f: (-score[f], first_seen[f]))
    facts = fit([f"`{f}`" for f in ranked], max(0, budget - used - 10))
    if facts:
        out.append("## Facts\n" + ", ".join(facts))
    return "\n\n".join(out)
