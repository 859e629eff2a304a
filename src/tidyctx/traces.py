"""Load recorded agent runs and replay them turn by turn.

Three formats are read:

- a run file (``*.json``): one object with ``system``, ``tools``, ``messages`` (the final
  conversation) and ``turns`` (one ``{"ts", "usage"}`` per assistant message), the format of
  the bundled runs in ``data/traces/``;
- a request log (``*.jsonl``): one Messages API request per line, either the request itself
  or ``{"request": {...}, "ts": ..., "usage": {...}}``;
- a Claude Code session log (``~/.claude/projects/*/<session>.jsonl``): the requests it
  records itself (Claude Code 2.1.337 and later: system prompt, tools, system messages and
  markers as sent), or else its main thread, one turn per API response (older logs hold no
  system prompt or tool definitions).

Files are read as agents and converters write them: a UTF-8 byte-order mark is skipped, and a
lone UTF-16 surrogate (a ``\\ud83d`` escape left by a JavaScript logger that cut an emoji in
half) becomes U+FFFD, as a UTF-8 encoder would send it; the count of those is in
``Run.meta["replaced_surrogates"]``. Python cannot encode a lone surrogate, so a request that
held one could be neither hashed nor sent.

>>> parse_ts("2026-01-21T15:30:20Z")
1769009420.0
>>> parse_ts(1769009420123) == parse_ts("2026-01-21T15:30:20.123Z")
True
"""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tidyctx._recorded_requests import recorded_calls
from tidyctx._request import Request, ValidationError, to_request
from tidyctx._time import parse_ts

__all__ = ["Run", "Turn", "load", "load_run", "parse_ts"]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _repair(data: Any) -> int:
    """Replace lone surrogates in the strings (keys too) of freshly loaded JSON, in place;
    return how many. Iterative: a trace may nest deeper than Python's recursion limit."""
    count = 0

    def fix(text: str) -> str:
        nonlocal count
        new, n = _LONE_SURROGATE.subn("\ufffd", text)
        count += n
        return new

    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if any(_LONE_SURROGATE.search(k) for k in node):
                items = [(fix(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            for k, v in node.items():
                if isinstance(v, str):
                    node[k] = fix(v)
                elif isinstance(v, dict | list):
                    stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = fix(v)
                elif isinstance(v, dict | list):
                    stack.append(v)
    return count


def _json(text: str, where: str) -> tuple[Any, int]:
    """Parsed JSON with lone surrogates repaired, and their count; a ValueError naming
    ``where`` if the text is not JSON Python can read."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err})") from None
    except (ValueError, RecursionError) as err:  # a number of 4300+ digits; nesting
        raise ValueError(f"{where}: cannot read this JSON ({type(err).__name__}: {err})") from None
    # Only an escape can put a surrogate in a parsed string; most files have none.
    fixed = _repair(data) if "\\ud" in text.lower() else 0
    return data, fixed


@dataclass(frozen=True, slots=True)
class Turn:
    """One recorded API call: the request sent, when, and the usage the API reported."""

    request: Request
    ts: float | None = None
    usage: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    """The assistant message the call produced, where the recording has it."""
    diagnostics: dict[str, Any] | None = None
    """The response's ``diagnostics`` (cache_miss_reason), where the log has it."""


@dataclass(frozen=True, slots=True)
class Run:
    """A recorded agent run: its requests in order, with times and usage where known."""

    id: str
    model: str
    turns: tuple[Turn, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    """Everything else the file says: source, license, agent, notes."""

    def requests(self) -> list[Request]:
        return [t.request for t in self.turns]

    def timestamps(self) -> list[float | None]:
        return [t.ts for t in self.turns]

    def usages(self) -> list[dict[str, Any] | None]:
        return [t.usage for t in self.turns]


def _run_from_conversation(data: Mapping[str, Any], name: str) -> Run:
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise ValueError(f"{name}: expected a 'messages' list")
    model = str(data.get("recorded_model") or data.get("model") or "")
    base: Request = {"model": model, "max_tokens": 4096}
    if data.get("system"):
        base["system"] = data["system"]
    if data.get("tools"):
        base["tools"] = data["tools"]
    recorded = list(data.get("turns") or [])
    turns: list[Turn] = []
    k = 0
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        info = recorded[k] if k < len(recorded) and isinstance(recorded[k], Mapping) else {}
        try:
            ts = parse_ts(info.get("ts"))
        except ValueError as err:
            raise ValueError(f"{name}: turns[{k}].ts: {err}") from None
        k += 1
        request = {**base, "messages": messages[:i]}
        turns.append(Turn(request, ts, info.get("usage"), reply=dict(message)))
    if recorded and len(recorded) != len(turns):
        raise ValueError(
            f"{name}: {len(recorded)} recorded turns but {len(turns)} assistant messages"
        )
    meta = {k: v for k, v in data.items() if k not in ("messages", "turns", "system", "tools")}
    return Run(str(data.get("id") or name), model, tuple(turns), meta)


def _lines(text: str, name: str) -> tuple[list[tuple[int, Any]], int, list[str]]:
    """The JSON value of each line (numbered from 1) of a ``.jsonl`` file, the count of lone
    surrogates replaced, and the errors of the lines that are not JSON objects. Blank lines
    and ``//`` comment lines (which some published fixtures start with) are skipped."""
    out: list[tuple[int, Any]] = []
    bad: list[str] = []
    replaced = 0
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 inside a string
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            entry, fixed = _json(line, f"{name}:{n}")
        except ValueError as err:
            bad.append(str(err))
            continue
        replaced += fixed
        if not isinstance(entry, Mapping):
            bad.append(f"{name}:{n}: expected a JSON object")
            continue
        out.append((n, entry))
    return out, replaced, bad


def _run_from_log(entries: list[tuple[int, Any]], name: str) -> Run:
    turns: list[Turn] = []
    for n, entry in entries:
        raw = entry.get("request", entry)
        try:
            request, _ = to_request(raw)
        except ValidationError as err:
            raise ValueError(f"{name}:{n}: {err}") from None
        diagnostics = entry.get("diagnostics") if "request" in entry else None
        if "request" not in entry:
            # A bare request line may carry its log fields beside the request's own keys; a
            # response's diagnostics has a cache_miss_reason, a request's a previous_message_id.
            logged = {"ts", "usage"}
            if isinstance(entry.get("diagnostics"), Mapping) and (
                "cache_miss_reason" in entry["diagnostics"]
            ):
                logged.add("diagnostics")
                diagnostics = entry["diagnostics"]
            request = {k: v for k, v in request.items() if k not in logged}
        try:
            ts = parse_ts(entry.get("ts"))
        except ValueError as err:
            raise ValueError(f"{name}:{n}: ts: {err}") from None
        turns.append(Turn(request, ts, entry.get("usage"), diagnostics=diagnostics))
    model = str(turns[0].request.get("model", "")) if turns else ""
    return Run(Path(name).stem, model, tuple(turns), {})


def _is_session_log(entries: list[tuple[int, Any]]) -> bool:
    # Every conversation line of a Claude Code session log carries the session id; a logged
    # request never does.
    return any(
        "sessionId" in e and "request" not in e and "messages" not in e for _, e in entries[:50]
    )


def _main_thread(entries: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """The lines of the conversation the session ended on, oldest first: from the last user or
    assistant line back along ``parentUuid`` (``logicalParentUuid`` across a compaction).
    Side chains (sub-agents) and abandoned branches (a rewind) drop out."""
    by_uuid = {e["uuid"]: (n, e) for n, e in entries if isinstance(e.get("uuid"), str)}
    talk = [
        (n, e)
        for n, e in entries
        if e.get("type") in ("user", "assistant")
        and not e.get("isSidechain")
        and isinstance(e.get("message"), Mapping)
    ]
    if not talk or not isinstance(talk[-1][1].get("uuid"), str):
        return talk  # no thread ids: file order
    chain: list[tuple[int, Any]] = []
    seen: set[str] = set()
    at: tuple[int, Any] | None = talk[-1]
    while at is not None and at[1].get("uuid") not in seen:
        seen.add(str(at[1].get("uuid")))
        chain.append(at)
        parent = at[1].get("parentUuid") or at[1].get("logicalParentUuid")
        if not isinstance(parent, str):
            break
        at = by_uuid.get(parent)
        if at is None:
            # The parent's line is missing (a damaged or redacted log): go on from the
            # conversation line before this one in the file.
            n = chain[-1][0]
            at = next((t for t in reversed(talk) if t[0] < n), None)
    chain.reverse()
    # Parallel tool calls: each result is a line of its own whose parent is the line of its
    # call, so the walk back from the end passes through one result only. The others are the
    # side lines that answer a call on the thread.
    on_thread = {e.get("uuid") for _, e in chain}
    calls = {b.get("id") for _, e in chain for b in _blocks(e) if b.get("type") == "tool_use"}
    answered = {
        b.get("tool_use_id") for _, e in chain for b in _blocks(e) if b.get("type") == "tool_result"
    }
    missing = calls - answered
    extra = [
        (n, e)
        for n, e in talk
        if missing
        and e.get("type") == "user"
        and e.get("uuid") not in on_thread
        and e.get("parentUuid") in on_thread
        and any(
            b.get("type") == "tool_result" and b.get("tool_use_id") in missing for b in _blocks(e)
        )
    ]
    return sorted(chain + extra, key=lambda item: item[0]) if extra else chain


def _blocks(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = entry["message"].get("content") if isinstance(entry.get("message"), Mapping) else None
    return [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []


LOST_RESULT = "[tidyctx: this tool result is missing from the session log]"
"""The content given to a call whose result line is missing (damaged or redacted) in a log."""


def _paired(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """``messages`` made a valid conversation where lines were missing from a session log: each
    call answered (by :data:`LOST_RESULT` if its result is lost), results whose call is lost
    dropped, results first in their message, and consecutive messages of one role merged.
    Returns the messages and the number of calls and results repaired."""
    out: list[dict[str, Any]] = []
    repairs = 0
    calls: list[str] = []  # the previous assistant message's tool_use ids
    for m in _merged(messages):
        if m["role"] == "assistant":
            if calls:  # the previous calls got no user message at all
                out.append({"role": "user", "content": _lost(calls)})
                repairs += len(calls)
            calls = [str(b.get("id")) for b in m["content"] if b.get("type") == "tool_use"]
            out.append(m)
            continue
        results = [b for b in m["content"] if b.get("type") == "tool_result"]
        kept = [b for b in results if b.get("tool_use_id") in calls]
        have = {b.get("tool_use_id") for b in kept}
        missing = [c for c in calls if c not in have]
        repairs += len(results) - len(kept) + len(missing)
        rest = [b for b in m["content"] if b.get("type") != "tool_result"]
        content = [*kept, *_lost(missing), *rest]
        calls = []
        if content:
            out.append({**m, "content": content})
        elif out and out[-1]["role"] == "assistant":
            continue  # only orphan results: the next message may be an assistant's
    if calls:
        out.append({"role": "user", "content": _lost(calls)})
        repairs += len(calls)
    if repairs == 0:
        return messages, 0
    return _merged(out), repairs  # dropping a message can leave two of one role in a row


def _merged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with each run of one role made one message (copies; content concatenated)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            out[-1]["content"].extend(m["content"])
        else:
            out.append({**m, "content": list(m["content"])})
    return out


def _lost(ids: list[str]) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": i, "content": LOST_RESULT} for i in ids]


def _run_from_records(entries: list[tuple[int, Any]], name: str) -> Run | None:
    """The requests a Claude Code session log records itself (2.1.337 and later; see
    :mod:`tidyctx._recorded_requests`), or None when it records none it can rebuild."""
    calls = recorded_calls(entries)
    if not calls:
        return None
    turns = []
    for call in calls:
        try:
            ts = parse_ts(call.timestamp)
        except ValueError as err:
            raise ValueError(f"{name}: api-request timestamp: {err}") from None
        turns.append(Turn(call.request, ts, call.usage, reply=call.reply))
    versions = {
        str(e.get("version"))
        for _, e in entries
        if e.get("type") == "api-request" and e.get("version")
    }
    meta: dict[str, Any] = {
        "agent": "Claude Code (session log, requests as recorded)",
        "notes": "the requests as the log records them: system prompt, tools, system messages "
        "and markers included; the billing header block is not recorded",
        "betas": list(calls[0].betas),
    }
    if versions:
        meta["claude_code_version"] = ", ".join(sorted(versions))
    model = str(turns[0].request.get("model") or "")
    return Run(Path(name).stem, model, tuple(turns), meta)


def _run_from_session(entries: list[tuple[int, Any]], name: str) -> Run:
    """A Claude Code session log (``~/.claude/projects/*/<session>.jsonl``), one turn per API
    response.

    The main thread (:func:`_main_thread`) is read in order: the lines of one response (one
    ``message.id``, one line per content block) form one assistant message and one turn, with
    the usage of its last line and the time of its first; the user lines between them (tool
    results) follow it; after a compaction the conversation starts again from its summary. The
    log holds no system prompt or tool definitions, and parallel tool results recorded on side
    branches are not followed, so local counts fall short of the recorded usage.
    """
    recorded = _run_from_records(entries, name)
    if recorded is not None:
        return recorded
    messages: list[dict[str, Any]] = []
    turns: list[Turn] = []
    model = ""
    current: tuple[Any, int] | None = None  # (message.id, its index in messages)
    synthetic = 0
    for n, entry in _main_thread(entries):
        if entry.get("parentUuid") is None and entry.get("logicalParentUuid"):
            messages, current = [], None  # a compaction boundary: the summary starts anew
        message = entry.get("message")
        if entry.get("type") not in ("user", "assistant") or not isinstance(message, Mapping):
            continue  # a system, progress or snapshot line on the thread
        content = message.get("content")
        blocks = (
            [{"type": "text", "text": content}]
            if isinstance(content, str)
            else [dict(b) for b in content if isinstance(b, Mapping)]
            if isinstance(content, list)
            else []
        )
        # A response's whitespace-only text block ("\n\n" before a tool call) is logged but
        # not sent back (the API refuses it), so it is not part of later requests.
        blocks = [b for b in blocks if b.get("type") != "text" or str(b.get("text") or "").strip()]
        if not blocks:
            continue
        if entry.get("type") == "user":
            if messages and messages[-1]["role"] == "user":
                messages[-1]["content"].extend(blocks)
            else:
                messages.append({"role": "user", "content": blocks})
            continue
        if message.get("model") == "<synthetic>":
            synthetic += 1  # written by Claude Code itself (an error notice), not an API call
            continue
        mid = message.get("id")
        if current is not None and mid is not None and mid == current[0]:
            messages[current[1]]["content"].extend(blocks)  # another block of that response
            if message.get("usage"):
                turns[-1] = replace(turns[-1], usage=message["usage"])
            continue
        model = model or str(message.get("model") or "")
        request = {
            "model": str(message.get("model") or model),
            "max_tokens": 4096,
            "messages": [{**m, "content": list(m["content"])} for m in messages],
        }
        messages.append({"role": "assistant", "content": blocks})
        current = (mid, len(messages) - 1)
        try:
            ts = parse_ts(entry.get("timestamp"))
        except ValueError as err:
            raise ValueError(f"{name}:{n}: timestamp: {err}") from None
        turns.append(Turn(request, ts, message.get("usage"), reply=messages[-1]))
    # The replies grew block by block; each turn gets its own copy of the finished message.
    repaired = 0
    for i, t in enumerate(turns):
        fixed, count = _paired(t.request["messages"])
        repaired = max(repaired, count)  # later requests hold the earlier ones' repairs
        turns[i] = replace(
            t, request={**t.request, "messages": fixed}, reply=copy.deepcopy(t.reply)
        )
    meta: dict[str, Any] = {
        "agent": "Claude Code (session log)",
        "notes": "the log holds no system prompt or tool definitions",
    }
    if synthetic:
        meta["synthetic_messages_skipped"] = synthetic
    if repaired:
        meta["tool_pairs_repaired"] = repaired
    return Run(Path(name).stem, model, tuple(turns), meta)


MAX_FILE_BYTES = 512 << 20
"""The largest trace :func:`load` reads (its parsed form takes several times as much memory)."""
_PROBE = 1 << 16


def _read_limited(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of ``path``, at most ``limit`` of them: a ``ValueError`` names a larger file,
    and a stream with no end (``/dev/zero``, a pipe), rather than read it all into memory.
    One whose first 64 KiB hold a NUL byte is refused as binary, before reading more."""
    name = Path(path).name
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise ValueError(
                f"{name}: {size:,} bytes, more than a {what} tidyctx reads ({limit:,})"
            )
        head = f.read(_PROBE)
        if b"\x00" in head:
            raise ValueError(f"{name}: not a text file (it holds NUL bytes: binary?)")
        chunks = [head]
        read = len(head)
        while read <= limit and (chunk := f.read(min(1 << 20, limit + 1 - read))):
            chunks.append(chunk)
            read += len(chunk)
    if read > limit:
        raise ValueError(f"{name}: more than {limit:,} bytes, more than a {what} tidyctx reads")
    return b"".join(chunks)


def load(path: str | Path) -> list[Run]:
    """Read the recorded runs in ``path``: a run ``.json``, a request-log ``.jsonl`` or a Claude
    Code session log (``.jsonl``). A file over :data:`MAX_FILE_BYTES`, or that is not text,
    raises ``ValueError``."""
    p = Path(path)
    # A byte-order mark (Windows editors) is skipped.
    text = _read_limited(p, MAX_FILE_BYTES, "trace").decode("utf-8-sig")
    if p.suffix == ".jsonl":
        entries, replaced, bad = _lines(text, p.name)
        if _is_session_log(entries):
            if bad:
                # A session log holds many lines besides the conversation (progress, errors,
                # snapshots), and published ones are sometimes redacted into broken JSON: the
                # thread is read without them, and the caller is told.
                warnings.warn(
                    f"{p.name}: skipped {len(bad)} line(s) that are not JSON objects "
                    f"(first: {bad[0]})",
                    stacklevel=2,
                )
            run = _run_from_session(entries, p.name)
        elif bad:
            raise ValueError(bad[0])  # every line of a request log is a call
        else:
            run = _run_from_log(entries, p.name)
        return (
            [replace(run, meta={**run.meta, "replaced_surrogates": replaced})]
            if replaced
            else [run]
        )
    data, replaced = _json(text, p.name)
    if isinstance(data, list):
        runs = [_run_from_conversation(d, f"{p.name}[{i}]") for i, d in enumerate(data)]
    else:
        runs = [_run_from_conversation(data, p.name)]
    if replaced:
        runs = [replace(r, meta={**r.meta, "replaced_surrogates": replaced}) for r in runs]
    return runs


def load_run(path: str | Path) -> Run:
    """The single run in ``path``; an error if the file holds several."""
    runs = load(path)
    if len(runs) != 1:
        raise ValueError(f"{path}: holds {len(runs)} runs; use load()")
    return runs[0]
