"""Reference recall: how much of what the agent actually used a transformed context still holds.

The measure: the references of assistant turn *t* are the strings in
its text and tool_use inputs (file paths, identifiers of 4+ characters, numbers of 3+ digits,
quoted strings) that occur in an earlier tool_result. A reference is recalled when it is still
present somewhere in the transformed request for turn *t*. Recall = recalled / references,
over the run.

>>> sorted(references('Open "src/app.py" and fix parse_config at line 1204'))
['1204', 'Open', 'line', 'parse_config', 'src/app.py']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Recall", "reference_recall", "references", "texts_of"]

_PATH = re.compile(r"(?:[\w.~-]*/)+[\w.-]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"(?<![\w.])\d{3,}(?![\w])")
_QUOTED = re.compile(r"\"([^\"\n]{2,200})\"|'([^'\n]{2,200})'|`([^`\n]{2,200})`")


def references(text: str) -> frozenset[str]:
    """Candidate references in ``text``: paths, identifiers (4+), numbers (3+ digits), quotes."""
    found: set[str] = set()
    found.update(m.group(0) for m in _PATH.finditer(text))
    for m in _IDENT.finditer(text):
        for part in m.group(0).split("."):
            if len(part) >= 4:
                found.add(part)
    found.update(m.group(0) for m in _NUMBER.finditer(text))
    for m in _QUOTED.finditer(text):
        found.add(next(g for g in m.groups() if g is not None))
    return frozenset(found)


def texts_of(value: Any) -> Iterator[str]:
    """Every string a block (or request) carries that the model reads, recursively."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        if value.get("type") in ("image", "redacted_thinking"):
            return  # no text the model reads as such
        for key, item in value.items():
            if key in ("cache_control", "signature", "source", "id", "tool_use_id", "type"):
                continue
            if key == "input" and isinstance(item, Mapping):
                yield json.dumps(item, ensure_ascii=False)
            yield from texts_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts_of(item)


def _tool_result_text(request: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, Mapping) and block.get("type") == "tool_result":
                    parts.extend(texts_of(block.get("content")))
    return "\n".join(parts)


def _reply_text(reply: Mapping[str, Any]) -> str:
    content = reply.get("content")
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            parts.extend(_strings(block.get("input")))
    return "\n".join(parts)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


@dataclass(frozen=True, slots=True)
class Recall:
    recalled: int
    references: int
    per_turn: tuple[tuple[int, int], ...] = ()

    @property
    def ratio(self) -> float:
        return self.recalled / self.references if self.references else 1.0


def reference_recall(
    originals: Sequence[Mapping[str, Any]],
    replies: Sequence[Mapping[str, Any] | None],
    transformed: Sequence[Mapping[str, Any]],
) -> Recall:
    """Recall over a run: ``originals[t]`` is the request for turn t as recorded,
    ``replies[t]`` the assistant message the turn produced, ``transformed[t]`` the request
    after the transforms."""
    recalled = total = 0
    per_turn: list[tuple[int, int]] = []
    for original, reply, changed in zip(originals, replies, transformed, strict=True):
        if not reply:
            per_turn.append((0, 0))
            continue
        earlier = _tool_result_text(original)
        refs = [r for r in references(_reply_text(reply)) if r in earlier]
        if not refs:
            per_turn.append((0, 0))
            continue
        have = "\n".join(texts_of(changed))
        hit = sum(1 for r in refs if r in have)
        per_turn.append((hit, len(refs)))
        recalled += hit
        total += len(refs)
    return Recall(recalled, total, tuple(per_turn))
