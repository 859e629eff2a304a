"""The prefix check on thinking blocks, as a pure function.

On the models with preserved thinking (:data:`tidyctx.tokens.PRESERVED_THINKING_MODELS`) a
thinking block a request sends back is bound to its prefix: the top-level ``system``, the
``tools`` and every message before it, as they were in the request Claude produced it in
(https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks). If
the prefix differs on a later request, that block and every later thinking block are invalid.
Thinking blocks are not part of the prefix, but each records the thinking block that came
before it: the kept ones must be an unbroken run of the original sequence (removing some from
the start, from the end, or all of them is fine; one left out in the middle, moved, or put
back is not).

What counts as a change, from
https://platform.claude.com/docs/en/build-with-claude/preserved-thinking ("What counts as an
edit", and its FAQ on resuming a saved conversation):

- values compare, not bytes: "JSON formatting and key order don't matter; the values do";
- ``cache_control`` markers are not part of the prefix (added, moved or removed: valid), nor
  any parameter outside ``system``, ``tools`` and ``messages``;
- a string ``content`` or ``system`` is the API's shorthand for one text block
  (https://platform.claude.com/docs/en/api/messages: "Using a string for content is shorthand
  for an array of one content block of type text"), so the two forms compare equal here (the
  docs do not say so of the check itself);
- a tool with ``defer_loading: true`` that no ``tool_reference`` names yet is ignored;
- with server-side compaction the checked messages start at the latest ``compaction`` block.

:func:`thinking_bindings` records what a reply's thinking blocks are bound to;
:func:`prefix_mismatches` checks a later request against such records. ``LocalServer`` uses
both (see its ``prefix_check`` option); a test can use them on requests directly.

>>> first = {"model": "claude-opus-5-5", "system": "Be brief.",
...          "messages": [{"role": "user", "content": "hi"}]}
>>> reply = [{"type": "thinking", "thinking": "", "signature": "sig1"},
...          {"type": "text", "text": "Hello."}]
>>> bound = thinking_bindings(first, reply)
>>> later = {**first, "messages": [*first["messages"], {"role": "assistant", "content": reply},
...                                {"role": "user", "content": "and?"}]}
>>> prefix_mismatches(later, bound)
[]
>>> [m.path for m in prefix_mismatches({**later, "system": "Be very brief."}, bound)]
['messages.1.content.0']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Binding",
    "PrefixMismatch",
    "block_key",
    "merge_bindings",
    "mismatch_message",
    "prefix_mismatches",
    "thinking_bindings",
]

_THINKING = ("thinking", "redacted_thinking")


@dataclass(frozen=True, slots=True)
class Binding:
    """What one thinking block is bound to: digests of the canonical ``system``, ``tools`` and
    each message before it (its own message's earlier blocks last), and the key of the
    thinking block before it in the request it was produced for (None: none)."""

    system: str
    tools: str
    messages: tuple[str, ...]
    previous: str | None


@dataclass(frozen=True, slots=True)
class PrefixMismatch:
    """A thinking block of a request that fails the prefix check.

    ``path`` is ``messages.{i}.content.{j}`` in the request as sent (the form the API's errors
    and ``input_transformations`` use); ``block`` its type; ``changed`` a sentence naming what
    changed; ``follows`` is True when the block itself would pass but comes after one that
    fails (the docs: "that block and every later thinking block are invalid")."""

    path: str
    block: str
    changed: str
    follows: bool = False


def block_key(block: Mapping[str, Any]) -> str | None:
    """What identifies a thinking block: its ``signature`` (``data`` for a redacted one)."""
    value = block.get("signature" if block.get("type") == "thinking" else "data")
    return value if isinstance(value, str) and value else None


def _strip_markers(value: Any) -> Any:
    """``value`` without any ``cache_control`` key, the string ``content`` of a message or a
    ``tool_result`` as its one text block."""
    if isinstance(value, Mapping):
        shorthand = "role" in value or value.get("type") == "tool_result"
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "cache_control":
                continue
            if key == "content" and shorthand and isinstance(item, str):
                item = [{"type": "text", "text": item}]
            out[str(key)] = _strip_markers(item)
        return out
    if isinstance(value, list | tuple):
        return [_strip_markers(item) for item in value]
    return value


def _digest(value: Any) -> str:
    raw = json.dumps(
        _strip_markers(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _system(request: Mapping[str, Any]) -> str:
    system = request.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    return _digest(system if system else None)


def _referenced(messages: Any) -> set[str]:
    """The tool names a ``tool_reference`` in the messages names (a ``tool_addition``)."""
    names: set[str] = set()
    stack: list[Any] = [messages]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            if value.get("type") == "tool_reference" and isinstance(value.get("name"), str):
                names.add(value["name"])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return names


def _tools(request: Mapping[str, Any]) -> str:
    tools = request.get("tools")
    if not isinstance(tools, list):
        return _digest(None)
    named = _referenced(request.get("messages"))
    # A deferred tool nothing references yet is ignored by the check (the docs: "Add a tool
    # with defer_loading: true that nothing has referenced yet": valid).
    kept = [
        tool
        for tool in tools
        if not (
            isinstance(tool, Mapping)
            and tool.get("defer_loading") is True
            and tool.get("name") not in named
        )
    ]
    return _digest(kept or None)


def _content(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def _is_thinking(block: Any) -> bool:
    return isinstance(block, Mapping) and block.get("type") in _THINKING


def _message_digest(message: Any, blocks: Sequence[Any] | None = None) -> str:
    """A message's digest without its thinking blocks (not part of the prefix); ``blocks``:
    only these of its blocks (the ones before a thinking block in its own message)."""
    if not isinstance(message, Mapping):
        return _digest(message)
    content = _content(message) if blocks is None else list(blocks)
    return _digest(
        {
            **{k: v for k, v in message.items() if k != "content"},
            "content": [b for b in content if not _is_thinking(b)],
        }
    )


def _compaction_start(messages: Sequence[Any], upto: int) -> int:
    """Where the checked messages start: the message holding the latest ``compaction`` block
    before ``upto`` (server-side compaction), else 0."""
    for i in range(min(upto, len(messages)) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, Mapping) and any(
            isinstance(b, Mapping) and b.get("type") == "compaction" for b in _content(message)
        ):
            return i
    return 0


def _thinking_places(messages: Sequence[Any]) -> list[tuple[int, int, Mapping[str, Any]]]:
    places: list[tuple[int, int, Mapping[str, Any]]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), list):
            continue
        for j, block in enumerate(message["content"]):
            if _is_thinking(block):
                places.append((i, j, block))
    return places


def _last_thinking(messages: Sequence[Any]) -> str | None:
    places = _thinking_places(messages)
    return block_key(places[-1][2]) if places else None


def thinking_bindings(
    request: Mapping[str, Any], content: Sequence[Any]
) -> dict[str, list[Binding]]:
    """The bindings of the thinking blocks in ``content`` (a reply's content blocks), produced
    for ``request`` (as sent): by block key (:func:`block_key`), one each."""
    messages = request.get("messages")
    history = list(messages) if isinstance(messages, list) else []
    start = _compaction_start(history, len(history))
    digests = [_message_digest(m) for m in history[start:]]
    system, tools = _system(request), _tools(request)
    previous = _last_thinking(history)
    out: dict[str, list[Binding]] = {}
    for j, block in enumerate(content):
        if not _is_thinking(block):
            continue
        key = block_key(block)
        if key is None:
            continue
        own = _message_digest({"role": "assistant"}, content[:j])
        binding = Binding(system, tools, (*digests, own), previous)
        out.setdefault(key, []).append(binding)
        previous = key
    return out


def merge_bindings(
    into: dict[str, list[Binding]], more: Mapping[str, Iterable[Binding]]
) -> dict[str, list[Binding]]:
    """Add ``more`` to ``into`` (a block key produced twice keeps both bindings: a scripted
    reply may reuse a signature)."""
    for key, bindings in more.items():
        known = into.setdefault(key, [])
        known.extend(b for b in bindings if b not in known)
    return into


def _changed(binding: Binding, now: Binding) -> str | None:
    """A sentence naming the first difference between a block's binding and its place now,
    None when they agree."""
    if binding.system != now.system:
        return "The `system` prompt differs from when the block was created."
    if binding.tools != now.tools:
        return "The `tools` list differs from when the block was created."
    for i, (was, is_) in enumerate(zip(binding.messages, now.messages, strict=False)):
        if was != is_:
            return f"Message {i} before the block differs from when the block was created."
    if len(binding.messages) != len(now.messages):
        return "The messages before the block differ in number from when it was created."
    # The kept thinking blocks must be an unbroken run of the original sequence: the one
    # before this block (if any is kept) must be the one that was before it.
    if now.previous is not None and binding.previous != now.previous:
        return "A thinking block before it was left out, moved or put back."
    return None


def prefix_mismatches(
    request: Mapping[str, Any], bindings: Mapping[str, Sequence[Binding]]
) -> list[PrefixMismatch]:
    """The thinking blocks of ``request`` that fail the prefix check against ``bindings``
    (what :func:`thinking_bindings` recorded when they were produced): the first failing
    block and every thinking block after it, in request order; [] when all pass.

    A block whose key ``bindings`` does not know (produced elsewhere) is not checked itself;
    blocks after it still are. A block known under several bindings passes if one matches.
    """
    messages = request.get("messages")
    history = list(messages) if isinstance(messages, list) else []
    system, tools = _system(request), _tools(request)
    out: list[PrefixMismatch] = []
    previous: str | None = None
    digests: list[str] = []
    done = 0  # messages digested so far
    for i, j, block in _thinking_places(history):
        key = block_key(block)
        kind = str(block.get("type"))
        path = f"messages.{i}.content.{j}"
        known = bindings.get(key, ()) if key is not None else ()
        if out:
            out.append(PrefixMismatch(path, kind, "It follows an invalid thinking block.", True))
        elif known:
            while done < i:
                digests.append(_message_digest(history[done]))
                done += 1
            start = _compaction_start(history, i + 1)
            own = _message_digest({"role": "assistant"}, _content(history[i])[:j])
            now = Binding(system, tools, (*digests[start:i], own), previous)
            reasons = [_changed(b, now) for b in known]
            if all(reason is not None for reason in reasons):
                out.append(PrefixMismatch(path, kind, str(reasons[0])))
        previous = key
    return out


def mismatch_message(mismatch: PrefixMismatch, *, beta: bool) -> str:
    """The API's 400 message for ``mismatch`` (the first failing block), as documented in
    https://platform.claude.com/docs/en/build-with-claude/preserved-thinking: the first two
    sentences verbatim, the header note when the request did not send the beta header, and a
    sentence naming what changed (its wording is ours; the docs say only that it names it)."""
    text = (
        f"{mismatch.path}: Invalid `signature` in `{mismatch.block}` block. The block is bound "
        "to a different conversation. Remove the block, or set "
        '`thinking.block_binding.prefix_mismatch_behavior` to "drop_block".'
    )
    if not beta:
        text += (
            " That setting requires the `thinking-binding-controls-2026-08-01` value in the "
            "`anthropic-beta` header."
        )
    return f"{text} {mismatch.changed}"
