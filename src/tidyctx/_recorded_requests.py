"""The requests a Claude Code session sent, rebuilt from its session log.

Claude Code 2.1.337 writes, beside the conversation lines, a record of every API request:

- ``api-request-shape``: the ``system`` and ``tools`` of a request, under ``shapeHash``;
- ``api-request-blob``: a message the conversation lines do not hold as sent (a user message
  with its reminders, a ``role: "system"`` message), under ``hash``;
- ``api-request``: one call: its ``id``, ``timestamp``, ``shapeHash``, ``params`` (model,
  ``max_tokens``, thinking, effort, context management; ``betas`` go in the header), and its
  messages as the first ``keep`` messages of the call named by ``base`` followed by the
  messages named in ``tail``; ``cacheControl`` lists the markers (``path``, ``value``).

A message is named by the SHA-256 of its JSON with sorted keys and no spaces, markers left
out. The messages ``tail`` names are the blobs, the user lines (``role`` and ``content``) and
each response (its lines, one per content block, joined by ``message.id``); the response lines
carry the id of the call that produced them (``requestRef``) and its usage.

:func:`recorded_calls` gives each call of the session's main loop (the most common
``querySource``; side calls such as a title are left out), or None when the log has no such
records or one of the loop's calls cannot be rebuilt (a message or base call missing), so that
the caller can read the conversation lines instead.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tidyctx._request import Request

__all__ = ["RecordedCall", "recorded_calls"]


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One API call of the log, rebuilt."""

    request: Request
    timestamp: Any
    usage: dict[str, Any] | None
    reply: dict[str, Any] | None
    betas: tuple[str, ...]


def message_hash(message: Any) -> str:
    """The name Claude Code gives a message in its request records."""
    data = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _blank(block: Any) -> bool:
    # A response's whitespace-only text block is logged but not sent back (the API refuses it).
    return (
        isinstance(block, Mapping)
        and block.get("type") == "text"
        and not str(block.get("text") or "").strip()
    )


def _pool(
    entries: list[tuple[int, Any]],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """(hash -> message the records may name, call id -> its reply, call id -> its usage)."""
    pool: dict[str, Any] = {}
    replies: dict[str, list[Any]] = {}
    usages: dict[str, Any] = {}
    for _, entry in entries:
        kind = entry.get("type")
        message = entry.get("message")
        if kind == "api-request-blob" and isinstance(entry.get("hash"), str):
            pool[entry["hash"]] = message
        elif kind == "user" and isinstance(message, Mapping) and "content" in message:
            sent = {"role": message.get("role", "user"), "content": message["content"]}
            pool.setdefault(message_hash(sent), sent)
        elif kind == "assistant" and isinstance(message, Mapping):
            ref = entry.get("requestRef")
            content = message.get("content")
            if not isinstance(ref, str) or not isinstance(content, list):
                continue
            replies.setdefault(ref, []).extend(content)
            if message.get("usage"):
                usages[ref] = message["usage"]  # the response's last line has the final usage
    out: dict[str, dict[str, Any]] = {}
    for ref, blocks in replies.items():
        sent_back = [b for b in blocks if not _blank(b)]
        out[ref] = {"role": "assistant", "content": sent_back}
        pool.setdefault(message_hash(out[ref]), out[ref])
        if len(sent_back) < len(blocks):  # named as logged, should the records keep it so
            logged = {"role": "assistant", "content": blocks}
            pool.setdefault(message_hash(logged), logged)
    return pool, out, usages


def _mark(request: Request, path: Any, value: Any) -> bool:
    """Put ``cache_control: value`` on the block at ``path`` (``["messages", 3, "content", 0]``,
    ``["system", 1]``, ``["tools", 11]``); False when the path names no block.

    Every call's request shares its messages, system and tools with the others; each container
    on the path is copied before it changes, so the marker lands on this request only."""
    if not isinstance(path, list) or len(path) < 2:
        return False
    node: Any = request
    for step in path[:-1]:
        found = (isinstance(node, dict) and isinstance(step, str) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        )
        if not found:
            return False
        child = node[step]
        if step == "content" and isinstance(child, str) and path[-1] == 0:
            # A string content is the one text block it stands for, which can carry a marker.
            child = [{"type": "text", "text": child}]
        elif isinstance(child, dict | list):
            child = copy.copy(child)
        node[step] = child
        node = child
    last = path[-1]
    if not (isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node)):
        return False
    if not isinstance(node[last], Mapping):
        return False
    node[last] = {**node[last], "cache_control": value}
    return True


def recorded_calls(entries: list[tuple[int, Any]]) -> list[RecordedCall] | None:
    """The main loop's calls, rebuilt from the log's request records (see the module notes);
    None when there are none or one cannot be rebuilt."""
    records = [e for _, e in entries if e.get("type") == "api-request"]
    if not records:
        return None
    shapes = {
        e["shapeHash"]: e["shape"]
        for _, e in entries
        if e.get("type") == "api-request-shape"
        and isinstance(e.get("shapeHash"), str)
        and isinstance(e.get("shape"), Mapping)
    }
    # The main loop: the most common query source (a title or a summary call is another).
    main = Counter(str(r.get("querySource")) for r in records).most_common(1)[0][0]
    pool, replies, usages = _pool(entries)
    sent: dict[str, list[Any]] = {}  # call id -> its messages (markers left out)
    rebuilt: list[RecordedCall] = []
    for record in records:
        if str(record.get("querySource")) != main:
            continue
        call_id = record.get("id")
        keep = record.get("keep", 0)
        tail = record.get("tail", [])
        base = record.get("base")
        if not isinstance(call_id, str) or not isinstance(keep, int) or not isinstance(tail, list):
            return None
        if base is None:
            head: list[Any] = []
        elif isinstance(base, str) and base in sent:
            head = sent[base]
        else:
            return None
        if keep > len(head) or any(not isinstance(h, str) or h not in pool for h in tail):
            return None
        messages = [*head[:keep], *(pool[h] for h in tail)]
        sent[call_id] = messages
        params = record.get("params")
        shape = shapes.get(str(record.get("shapeHash")))
        if not isinstance(params, Mapping) or shape is None:
            return None
        # Shared with the other calls, as the conversation-line reader shares its blocks:
        # transforms never change their input, and _mark copies what it marks.
        request: Request = {"model": params.get("model"), "messages": list(messages)}
        for key in ("system", "tools"):
            if key in shape:
                request[key] = shape[key]
        request.update({k: v for k, v in params.items() if k != "betas"})
        for marker in record.get("cacheControl") or []:
            if not isinstance(marker, Mapping) or not _mark(
                request, marker.get("path"), marker.get("value")
            ):
                return None
        betas = params.get("betas")
        rebuilt.append(
            RecordedCall(
                request,
                record.get("timestamp"),
                usages.get(call_id),
                replies.get(call_id),
                tuple(b for b in betas if isinstance(b, str)) if isinstance(betas, list) else (),
            )
        )
    return rebuilt
