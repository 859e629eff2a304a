"""The request model: plain dicts, normalized only where needed, validated with clear errors.

A *request* is the dict of keyword arguments to ``client.messages.create``. tidyctx also
accepts a bare message list and SDK pydantic objects, which :func:`to_plain` turns into
plain data at the edge. Keys tidyctx does not know (``output_config``, ``diagnostics``,
``context_management``, ...) pass through untouched.

>>> req = {"model": "claude-sonnet-4-6", "max_tokens": 64,
...        "messages": [{"role": "user", "content": "hi"}]}
>>> validate(req)
>>> normalize(req)["messages"][0]["content"]
[{'type': 'text', 'text': 'hi'}]
>>> validate({"messages": [{"role": "user", "content": "hi"},
...                        {"role": "system", "content": "Answer in French."}]})
>>> validate({"messages": [{"role": "user", "content": "hi"},
...                        {"role": "system", "content": "x", "clear_at": "soon"}]})
Traceback (most recent call last):
...
tidyctx._request.ValidationError: messages[1].clear_at: unknown clear_at 'soon'. ...
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tidyctx._memo import content_key, memoized, shared_size
from tidyctx._shapes import (
    CLEAR_AT,
    EFFORTS,
    MARKERLESS_BLOCKS,
    MESSAGE_ROLES,
    NAMELESS_TOOLS,
    SYSTEM_MESSAGE_BLOCKS,
    SYSTEM_OUTPUT_CONFIG_KEYS,
    TOOL_ADDITION_REFS,
    TOOL_CHANGE_BLOCKS,
    TOOL_REMOVAL_REFS,
)

__all__ = [
    "CACHEABLE_NEVER",
    "MAX_BREAKPOINTS",
    "BlockRef",
    "Request",
    "ValidationError",
    "as_given",
    "block_hash",
    "cache_content",
    "cache_markers",
    "can_carry_marker",
    "canonical_json",
    "check_encodable",
    "errors",
    "input_json",
    "invalid",
    "is_deferred_tool",
    "iter_blocks",
    "marker_errors",
    "normalize",
    "normalized",
    "plain_copy",
    "to_plain",
    "to_request",
    "too_deep",
    "unmarked",
    "validate",
]

Request = dict[str, Any]
"""A Messages API request: the kwargs of ``client.messages.create``."""

# Prompt caching (https://platform.claude.com/docs/en/build-with-claude/prompt-caching): at
# most 4 blocks with cache_control per request.
MAX_BREAKPOINTS = 4
# Blocks that may never carry cache_control (same page; the SDK's ThinkingBlockParam has no
# such field).
CACHEABLE_NEVER = frozenset({"thinking", "redacted_thinking"})

_TTLS = ("5m", "1h")
_IMAGE_MEDIA = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Blocks that may sit inside a tool_result's content list (SDK ToolResultBlockParam).
_TOOL_RESULT_CONTENT = frozenset(
    {"text", "image", "document", "search_result", "tool_reference", "container_upload"}
)


class ValidationError(ValueError):
    """A request the API would reject, or that tidyctx cannot process safely.

    ``path`` names the place (``messages[4].content[1]``), ``problem`` says what is wrong and
    ``hint`` how to fix it. ``str(err)`` is ``"path: problem. hint"``.
    """

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        text = f"{path}: {problem}" if path else problem
        super().__init__(f"{text}. {hint}" if hint else text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its three parts, so that it survives pickling (multiprocessing workers).
        return (type(self), (self.path, self.problem, self.hint))


# ---------------------------------------------------------------------------- conversion


def to_plain(obj: Any) -> Any:
    """Return ``obj`` as plain JSON data: SDK pydantic objects become dicts, tuples lists.

    Plain dicts and lists are copied, so the result never aliases the input.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        # Response objects carry null optional fields (citations=None...) the API does not
        # want back; drop them as the SDK itself does when serializing params.
        return to_plain(dump(mode="json", exclude_none=True))
    raise TypeError(
        f"cannot use a {type(obj).__name__} in a request: expected dicts, lists, strings, "
        "numbers or Anthropic SDK objects"
    )


_PLAIN_DEPTH = 500
"""Data nested deeper is converted (and so copied) rather than shared: the recursion of the
conversion then names it (:func:`too_deep`), as it does for data tidyctx cannot process."""


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain JSON data already (dicts with str keys, lists, scalars), so
    that it can be shared rather than converted. Iterative. ``depth``: where ``value`` sits
    (a message of a request sits at 2)."""
    stack = [(value, depth)]
    while stack:
        v, depth = stack.pop()
        if depth > _PLAIN_DEPTH:
            return False
        if type(v) is dict:
            for k, item in v.items():
                if type(k) is not str:
                    return False
                if type(item) is not str:
                    stack.append((item, depth + 1))
        elif type(v) is list:
            stack.extend((item, depth + 1) for item in v if type(item) is not str)
        elif not (v is None or type(v) in (str, int, float, bool)):
            return False
    return True


def _shared(value: Any) -> Any:
    """``value`` itself when it is plain data, else its plain copy (:func:`to_plain`)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return value if _is_plain(value) else to_plain(value)


_Own = Mapping[str, Any]
"""Per key, the function that owns that key's value (see :func:`_own_dict`)."""


def _own_dict(obj: Any, special: _Own | None = None) -> Any:
    """A new dict of ``obj``'s items, SDK objects converted: each value plain and shared, or
    owned by its function in ``special``."""
    if type(obj) is dict:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if type(k) is not str:
                break
            own = special.get(k) if special is not None else None
            if own is not None:
                out[k] = own(v)
            else:
                out[k] = v if type(v) is str else _shared(v)
        else:
            return out
    if not isinstance(obj, Mapping) and not callable(getattr(obj, "model_dump", None)):
        return to_plain(obj)
    return to_plain(obj)  # an SDK object or a key that is no str: converted whole, all new


def _own_list(own: Any) -> Any:
    def run(items: Any) -> Any:
        if isinstance(items, list | tuple):
            return [own(item) for item in items]
        return items if type(items) is str else _shared(items)

    return run


def _own_inner(block: Any) -> Any:
    return _own_dict(block) if isinstance(block, Mapping) else _shared(block)


def _own_block(block: Any) -> Any:
    """A block the caller may change the top-level keys of (``cache_control``, ``text``,
    ``content``...): a new dict, and for a tool_result a new content list of new dicts.
    Deeper values (a tool input, an image source, a marker) are shared, never edited."""
    if isinstance(block, str):
        return block
    if isinstance(block, Mapping) and block.get("type") == "tool_result":
        return _own_dict(block, _TOOL_RESULT)
    if isinstance(block, Mapping) or callable(getattr(block, "model_dump", None)):
        return _own_dict(block)
    return _shared(block)


_TOOL_RESULT: _Own = {"content": _own_list(_own_inner)}
_MESSAGE: _Own = {"content": _own_list(_own_block)}


def _own_message(message: Any) -> Any:
    return _own_dict(message, _MESSAGE)


_REQUEST: _Own = {
    "messages": _own_list(_own_message),
    "tools": _own_list(_own_inner),
    "system": _own_list(_own_block),
}


def _own_request(x: Any) -> Any:
    """A request the caller may change down to its blocks' top-level keys: new containers for
    the request, tools, system, messages, each message, its content and each block; values
    below a block (a tool input, an image source) shared with ``x`` where they are plain data.
    """
    return _own_dict(x, _REQUEST)


def to_request(x: Any) -> tuple[Request, bool]:
    """Turn a request dict, a bare message list or an SDK object into a new request dict.

    Returns ``(request, was_list)``; ``was_list`` says the caller gave a bare message list,
    so the result can be handed back in the same shape. The containers down to each block
    are new (a transform may set a block's keys without touching ``x``); what lies below a
    block (a tool input, an image source) is shared with ``x`` when it is plain data already,
    so converting costs little more than a walk over the blocks.
    """
    if x is None:
        raise ValidationError(
            "request",
            "got None",
            "Pass the dict you would give client.messages.create(**request), or a list of messages",
        )
    if isinstance(x, list | tuple):
        return {"messages": [_own_message(m) for m in x]}, True
    if isinstance(x, Mapping) or callable(getattr(x, "model_dump", None)):
        plain = _own_request(x)
        if isinstance(plain, dict):
            return plain, False
    raise ValidationError(
        "request",
        f"expected a dict of create() arguments or a list of messages, got {type(x).__name__}",
        "Pass the dict you would give client.messages.create(**request)",
    )


# A lone UTF-16 surrogate (half of an emoji cut in two, or a bad \\ud83d escape) cannot be
# encoded as UTF-8: the anthropic SDK (2.14) raises UnicodeEncodeError sending it, as does
# hashing it here, so it is reported as a validation error with its place. The same holds for
# a float that is not finite: JSON has no NaN or Infinity, and the SDK's encoder refuses them
# (allow_nan=False: "Out of range float values are not JSON compliant").
_SURROGATE = re.compile("[\ud800-\udfff]")

_Where = tuple[Any, Any] | None
"""A place in nested data, as (the place of its container, its key or index); None for the
top. Paths are written out only for what is reported: written for every value, they cost time
proportional to the depth at each value."""


def _walk(value: Any) -> Iterator[tuple[_Where, Any, int]]:
    """Every value nested in ``value`` as ``(place, value, depth)``, without recursion (so
    data nested too deep for Python's recursion limit can still be located)."""
    stack: list[tuple[_Where, Any, int]] = [(None, value, 0)]
    while stack:
        where, item, depth = stack.pop()
        yield where, item, depth
        if isinstance(item, Mapping):
            for key in reversed(list(item)):
                stack.append(((where, key), item[key], depth + 1))
        elif isinstance(item, list | tuple):
            for i in range(len(item) - 1, -1, -1):
                stack.append(((where, i), item[i], depth + 1))


def _may_be_unsendable(value: Any) -> bool:
    """Whether a lone surrogate sits in any string of ``value`` (keys included) or a float in it
    is not finite: one walk with no paths; an ASCII string (``str.isascii`` reads a flag) is
    skipped without a search."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and _SURROGATE.search(item) is not None:
                return True
        elif kind is dict:
            extend(item)
            extend(item.values())
        elif kind is list:
            extend(item)
        elif kind is float or isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, str):
            if _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, Mapping):
            extend(item.keys())
            extend(item.values())
        elif isinstance(item, list | tuple):
            extend(item)
    return False


def _path(where: _Where) -> str:
    """``messages[4].content[1].input.x`` for a place found by :func:`_walk`."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:  # a key's lone surrogate escaped, so the message itself can be printed
            parts.append("." + _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(key)))
    if not parts:
        return "request"
    parts.reverse()
    parts[0] = parts[0].removeprefix(".")
    return "".join(parts)


def _unsendable(request: Any) -> list[ValidationError]:
    """The strings (keys too) and numbers of ``request`` that cannot be sent as JSON."""
    if not _may_be_unsendable(request):
        return []
    found = []
    for where, value, _ in _walk(request):
        if isinstance(value, str):
            if (m := _SURROGATE.search(value)) is not None:
                found.append(_surrogate_error(_path(where), m, "holds"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                found.append(
                    ValidationError(
                        _path(where),
                        f"is {value!r}, which JSON cannot carry (the SDK fails sending it: "
                        "out of range float values are not JSON compliant)",
                        "Send null, a finite number or a string instead",
                    )
                )
        elif isinstance(value, Mapping):
            for key in value:
                if isinstance(key, str) and (m := _SURROGATE.search(key)) is not None:
                    found.append(_surrogate_error(_path((where, key)), m, "is a key that holds"))
    return found


def _surrogate_error(path: str, m: re.Match[str], what: str) -> ValidationError:
    return ValidationError(
        path,
        f"{what} a lone UTF-16 surrogate {m.group()!r} at character {m.start()}, "
        "which cannot be encoded as UTF-8 (the SDK fails sending it)",
        "Repair the text where it was cut or decoded, e.g. "
        "text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace')",
    )


def check_encodable(request: Any) -> None:
    """Raise :class:`ValidationError` naming the first string (or key) that cannot be sent as
    UTF-8, or the first number JSON cannot carry (NaN, infinity).

    >>> check_encodable({"messages": [{"role": "user", "content": "ok \\ud83d"}]})
    Traceback (most recent call last):
    ...
    tidyctx._request.ValidationError: messages[0].content: holds a lone UTF-16 surrogate ...
    >>> check_encodable({"temperature": float("nan")})
    Traceback (most recent call last):
    ...
    tidyctx._request.ValidationError: temperature: is nan, which JSON cannot carry ...
    """
    found = _unsendable(request)
    if found:
        raise found[0]


def too_deep(x: Any) -> ValidationError:
    """The error for data nested deeper than tidyctx can process (a ``RecursionError``),
    naming the deepest place in ``x``."""
    deepest: _Where = None
    depth = 0
    for where, _, d in _walk(x):
        if d > depth:
            deepest, depth = where, d
    path = _path(deepest)
    if len(path) > 100:
        path = path[:100] + "..."
    return ValidationError(
        path,
        f"nested {depth} levels deep, deeper than tidyctx can process "
        f"(Python's recursion limit is {sys.getrecursionlimit()})",
        "Flatten the data, or pass a deep structure as a JSON string",
    )


def _text_blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def normalize(request: Mapping[str, Any]) -> Request:
    """Return a copy with string ``system``/``content`` turned into text blocks (a
    ``role: "system"`` message inside ``messages`` is left as it is).

    The model sees the same prompt either way. Idempotent. Empty and whitespace-only strings
    are left as they are: a text block of only whitespace is invalid (:func:`validate` reports
    one), so turning such a string into a block would break a valid request.

    The copy is the caller's to change down to each block's top-level keys (new containers
    for the request, system, tools, messages, each message, its content, each block and a
    tool_result's content); what lies below (a tool input, an image source, a marker) is
    shared with ``request`` and must be replaced, never edited in place.
    """
    out: Request = _own_dict(request, _REQUEST)  # the copy made at the edge, no conversion
    system = out.get("system")
    if isinstance(system, str) and system.strip():
        out["system"] = _text_blocks(system)
    messages = out.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict) or message.get("role") == "system":
                continue  # a system message inside messages goes on as the client sent it
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                message["content"] = _text_blocks(content)
                continue
            if not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    inner = block.get("content")
                    if isinstance(inner, str) and inner.strip():
                        block["content"] = _text_blocks(inner)
    return out


def input_json(value: Any) -> str:
    """A tool input as the transforms read it: JSON, keys sorted, non-ASCII as it is.
    Remembered by content: every earlier call's input is read again on each turn."""
    try:
        key = content_key(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return memoized(
        "input-json",
        key,
        lambda: json.dumps(value, ensure_ascii=False, sort_keys=True),
        lambda text: len(text) + shared_size(key),
    )


def plain_copy(value: Any) -> Any:
    """A deep copy of plain JSON data, strings and numbers shared (they are immutable): what
    ``copy.deepcopy`` gives for it, in a fifth of the time. Anything else is deep-copied."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) is str else plain_copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) is str else plain_copy(v) for v in value]
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    return copy.deepcopy(value)


def normalized(request: Mapping[str, Any]) -> Request:
    """What :func:`normalize` returns, with less copied: new containers for the request, its
    system and tools (as :func:`normalize`), the messages list, each message and its content
    list; the blocks themselves shared with ``request`` (a tool_result whose content is a
    string gets a new block). For a transform that replaces blocks and never edits one: it
    copies a few containers per message instead of every block and what lies in it.
    """
    messages = request.get("messages") if type(request) is dict else None
    if not isinstance(messages, list) or any(type(m) is not dict for m in messages):
        return normalize(request)
    out: Request = dict(request)
    for key in ("system", "tools"):
        if key in out:
            out[key] = _REQUEST[key](out[key])
    system = out.get("system")
    if isinstance(system, str) and system.strip():
        out["system"] = _text_blocks(system)
    new: list[Any] = []
    for message in messages:
        copied = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            if content.strip() and message.get("role") != "system":  # as normalize() leaves it
                copied["content"] = _text_blocks(content)
        elif isinstance(content, list | tuple):
            if any(type(b) is not dict and type(b) is not str for b in content):
                return normalize(request)  # data the edge did not make plain: convert it
            copied["content"] = [_normalized_block(b) for b in content]
        new.append(copied)
    out["messages"] = new
    return out


def as_given(before: Mapping[str, Any], after: Request) -> Request:
    """``after`` (a transform's own output on ``before``, built from :func:`normalized` or
    :func:`normalize`) with each string the client sent as a string put back where only
    normalizing changed it: a string ``system``, a message's string ``content``, a tool result's
    string ``content`` left whole. The transform's work stays; its conversion of untouched
    strings into text blocks goes, so those bytes leave as the client sent them. Changes
    ``after`` in place (its own containers only) and returns it.

    >>> given = {"messages": [{"role": "user", "content": "hi"}]}
    >>> as_given(given, normalize(given))["messages"][0]["content"]
    'hi'
    """
    system = before.get("system")
    if isinstance(system, str) and after.get("system") == _text_blocks(system):
        after["system"] = system
    old, new = before.get("messages"), after.get("messages")
    if not isinstance(old, list) or not isinstance(new, list) or len(old) != len(new):
        return after  # messages added or removed: no place-by-place match to restore
    for given, made in zip(old, new, strict=True):
        if made is given or type(given) is not dict or type(made) is not dict:
            continue
        was, now = given.get("content"), made.get("content")
        if isinstance(was, str):
            if now == _text_blocks(was):
                made["content"] = was
            continue
        if type(was) is not list or type(now) is not list or now is was or len(now) != len(was):
            continue
        for j, (b_was, b_now) in enumerate(zip(was, now, strict=True)):
            if (
                b_now is not b_was
                and type(b_was) is dict
                and b_was.get("type") == "tool_result"
                and isinstance(b_was.get("content"), str)
                and b_now == {**b_was, "content": _text_blocks(b_was["content"])}
            ):
                now[j] = b_was
    return after


def _normalized_block(block: Any) -> Any:
    if type(block) is dict and block.get("type") == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str) and inner.strip():
            return {**block, "content": _text_blocks(inner)}
        if isinstance(inner, tuple):
            return {**block, "content": list(inner)}
    return block


# ---------------------------------------------------------------------------- bytes


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, NaN refused.

    Two processes that build equal data get equal bytes, whatever their dict order.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def block_hash(block: Any) -> str:
    """A stable content hash of one block (or any JSON value): 32 hex digits."""
    return hashlib.blake2b(canonical_json(block), digest_size=16).hexdigest()


def is_deferred_tool(tool: Any) -> bool:
    """Is ``tool`` (an entry of ``tools``) deferred (``defer_loading: true``)? A deferred tool is
    sent but not rendered into the prompt: it is not part of the cached prefix and counts no
    input tokens until tool search loads it, inline where its ``tool_reference`` sits
    (https://platform.claude.com/docs/en/agents-and-tools/tool-use/tool-use-with-prompt-caching).
    """
    return isinstance(tool, Mapping) and tool.get("defer_loading") is True


def can_carry_marker(block: Any) -> bool:
    """May this block carry ``cache_control``? Not thinking blocks nor the other blocks whose
    param type has no such field (:data:`tidyctx._shapes.MARKERLESS_BLOCKS`), nor empty text.

    A bare string (string ``system`` or ``content``) may, as the text block it stands for.
    """
    if isinstance(block, str):
        return bool(block.strip())
    if not isinstance(block, Mapping):
        return False
    kind = block.get("type")
    if isinstance(kind, str) and kind in MARKERLESS_BLOCKS:
        return False
    if kind == "text":
        return bool(str(block.get("text") or "").strip())
    return True


def cache_content(block: Any) -> Any:
    """What a block contributes to the cached prompt: no cache_control, strings as text blocks.

    Markers are not content (moving one costs nothing), and a string ``system``/``content`` or
    tool_result ``content`` reaches the model as the same text as one text block.
    """
    if isinstance(block, str):
        return {"type": "text", "text": block}
    if not isinstance(block, Mapping):
        return block
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if out.get("type") == "tool_result":
        inner = out.get("content")
        if isinstance(inner, str) and inner:
            out["content"] = [{"type": "text", "text": inner}]
        elif isinstance(inner, list):
            out["content"] = [cache_content(b) for b in inner]
    return out


@dataclass(frozen=True, slots=True)
class BlockRef:
    """One block of a request in cache-prefix order (tools, then system, then messages)."""

    path: str
    """Where it is: ``tools[2]``, ``system[0]``, ``messages[4].content[1]``."""
    section: str
    """``"tools"``, ``"system"`` or ``"messages"``."""
    block: Any
    """The block itself (a dict, or a bare string for string system/content)."""
    message: int | None = None
    """The message index, for blocks in ``messages``."""


def iter_blocks(request: Mapping[str, Any]) -> Iterator[BlockRef]:
    """Yield every top-level block in the order the API builds the cache prefix.

    That order is tools, then system, then messages
    (https://platform.claude.com/docs/en/build-with-claude/prompt-caching). A string ``system``
    or ``content`` is yielded once, as the string, at ``system`` or ``messages[i].content``.
    """
    tools = request.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            yield BlockRef(f"tools[{i}]", "tools", tool)
    system = request.get("system")
    if isinstance(system, str):
        if system:
            yield BlockRef("system", "system", system)
    elif isinstance(system, list):
        for i, block in enumerate(system):
            yield BlockRef(f"system[{i}]", "system", block)
    messages = request.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping):
                continue
            content = message.get("content")
            if isinstance(content, str):
                yield BlockRef(f"messages[{i}].content", "messages", content, i)
            elif isinstance(content, list):
                for j, block in enumerate(content):
                    yield BlockRef(f"messages[{i}].content[{j}]", "messages", block, i)


def unmarked(value: Any) -> Any:
    """``value`` (a request or any part of one) copied without any ``cache_control`` key, at any
    depth: a block's, a tool's, the request's own.

    >>> block = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    >>> unmarked({"cache_control": {"type": "ephemeral"}, "system": [block]})
    {'system': [{'type': 'text', 'text': 'x'}]}
    """
    if isinstance(value, Mapping):
        return {k: unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [unmarked(v) for v in value]
    return value


def cache_markers(request: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every ``cache_control`` marker in the request, as ``(path, marker)``, in prefix order.

    Markers nested in a tool_result's content count too; the top-level ``cache_control``
    (automatic caching) is listed last under the path ``cache_control``.
    """
    found: list[tuple[str, dict[str, Any]]] = []
    for ref in iter_blocks(request):
        block = ref.block
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            for k, inner in enumerate(block["content"]):
                if isinstance(inner, Mapping) and inner.get("cache_control") is not None:
                    found.append((f"{ref.path}.content[{k}]", inner["cache_control"]))
        if block.get("cache_control") is not None:
            found.append((ref.path, block["cache_control"]))
    if request.get("cache_control") is not None:
        found.append(("cache_control", request["cache_control"]))
    return found


# ---------------------------------------------------------------------------- validation


def validate(request: Any, *, strict: bool = True) -> None:
    """Raise :class:`ValidationError` (a ``ValueError``) if the request is not valid.

    Checks roles, alternation, tool_use/tool_result pairing, duplicate ids and tool names,
    cache_control placement and count, and content types. The message names the first
    problem's place (``messages[4].content[1]``), says what is wrong and how to fix it, and
    counts any further problems.

    ``strict=False`` accepts what the API itself accepts but tidyctx's transforms do not:
    consecutive messages of one role (the API merges them) and a conversation that starts
    with an assistant turn.
    """
    found = errors(request, strict=strict)
    if not found:
        return
    first = found[0]
    if len(found) > 1:
        more = len(found) - 1
        first = ValidationError(
            first.path,
            first.problem,
            (first.hint + " " if first.hint else "")
            + f"({more} more problem{'s' if more > 1 else ''}: call tidyctx._request.errors() "
            "to list them)",
        )
    raise first


def errors(request: Any, *, strict: bool = True) -> list[ValidationError]:
    """Every problem :func:`validate` would report, in request order."""
    try:
        # A plain request dict (what a transform gets) is checked as it is: the checks only
        # read, and copying every block of a long conversation cost more than checking it.
        plain = type(request) is dict and _is_plain(request)
        req = request if plain else to_request(request)[0]
    except ValidationError as err:
        return [err]
    except TypeError as err:
        return [ValidationError("request", str(err))]
    except RecursionError:
        return [too_deep(request)]
    try:
        return _Checker(req, strict).run() + _unsendable(req)
    except RecursionError:
        return [too_deep(req)]


def invalid(request: Any) -> ValidationError | None:
    """The first problem that makes the API reject ``request`` (what :func:`validate` with
    ``strict=False`` reports), or None: the error to raise when a transform failed on it."""
    try:
        found = errors(request, strict=False)
    except Exception:  # a request too broken to check: the transform's own error stands
        return None
    return found[0] if found else None


def marker_errors(request: Mapping[str, Any]) -> list[ValidationError]:
    """The problems with the request's ``cache_control`` markers alone: more than 4, or a 1h
    marker after a 5m one."""
    checker = _Checker(dict(request), True)
    checker.check_cache_control()
    return checker.found


def _snippet(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Checker:
    def __init__(self, request: Request, strict: bool) -> None:
        self.request = request
        self.strict = strict
        self.found: list[ValidationError] = []
        # Tool names a tool_reference may name: those in tools, then those defined inline by
        # earlier tool_addition blocks (BetaToolChangeToolReferenceParam).
        self.tool_names: set[str] = set()

    def fail(self, path: str, problem: str, hint: str = "") -> None:
        self.found.append(ValidationError(path, problem, hint))

    def run(self) -> list[ValidationError]:
        self.check_tools()
        self.check_system()
        self.check_messages()
        self.check_cache_control()
        return self.found

    # -- tools and system

    def check_tools(self) -> None:
        tools = self.request.get("tools")
        if tools is None:
            return
        if not isinstance(tools, list):
            self.fail("tools", f"must be a list of tool definitions, got {type(tools).__name__}")
            return
        seen: dict[str, int] = {}
        for i, tool in enumerate(tools):
            path = f"tools[{i}]"
            name = self.check_tool(path, tool)
            if name is None:
                continue
            if name in seen:
                self.fail(
                    f"{path}.name",
                    f"duplicate tool name {name!r} (also tools[{seen[name]}])",
                    "Give each tool a unique name, or drop the duplicate definition",
                )
            seen.setdefault(name, i)
        self.tool_names.update(seen)

    def check_tool(self, path: str, tool: Any) -> str | None:
        """Check one tool definition; its name, or None for a toolset or a broken tool."""
        if not isinstance(tool, dict):
            self.fail(path, f"must be a dict, got {type(tool).__name__}")
            return None
        if isinstance(tool.get("type"), str) and tool["type"] in NAMELESS_TOOLS:
            # Toolsets (MCP, browser, computer) name their server or kind, not a tool.
            self.check_marker_target(path, tool)
            return None
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            self.fail(f"{path}.name", "a tool needs a non-empty string name")
            return None
        # Custom tools carry an input_schema; server tools (web_search_..., bash_...)
        # carry a versioned "type" instead.
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            self.fail(
                f"{path}.type",
                f"must be a string, got {type(kind).__name__} {_snippet(kind)}",
                "Leave it out for a custom tool, or give a server tool's type such as "
                '"bash_20250124"',
            )
            return name
        if (kind is None or kind == "custom") and not isinstance(tool.get("input_schema"), dict):
            self.fail(
                f"{path}.input_schema",
                f"tool {name!r} has no input_schema object",
                'Add "input_schema": {"type": "object", "properties": {...}}',
            )
        self.check_marker_target(path, tool)
        return name

    def check_system(self) -> None:
        system = self.request.get("system")
        if system is None or isinstance(system, str):
            return
        if not isinstance(system, list):
            self.fail(
                "system", f"must be a string or a list of text blocks, got {type(system).__name__}"
            )
            return
        for i, block in enumerate(system):
            path = f"system[{i}]"
            if not isinstance(block, dict) or block.get("type") != "text":
                kind = block.get("type") if isinstance(block, dict) else type(block).__name__
                self.fail(path, f"system blocks must be text blocks, got {kind!r}")
                continue
            self.check_text(path, block)
            self.check_marker_target(path, block)

    # -- messages

    def check_messages(self) -> None:
        messages = self.request.get("messages")
        if messages is None:
            self.fail("messages", "missing", "A request needs a list of messages")
            return
        if not isinstance(messages, list):
            self.fail("messages", f"must be a list, got {type(messages).__name__}")
            return
        if not messages:
            self.fail("messages", "is empty", "Send at least one user message")
            return
        roles: list[str | None] = []
        for i, message in enumerate(messages):
            roles.append(self.check_message(i, message))
        if roles[0] == "system":
            # A system message goes where its instruction becomes relevant, after the turn it
            # follows; the opening instructions belong in the top-level system
            # (https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages).
            self.fail(
                "messages[0].role",
                "a system message cannot open the conversation: it follows a user or assistant "
                "turn",
                "Move this text to the top-level system= parameter",
            )
        self.check_alternation(messages, roles)
        self.check_pairing(messages, roles)

    def check_message(self, i: int, message: Any, last: bool | None = None) -> str | None:
        """Check ``messages[i]``; its role, or None for a broken message. ``last``: whether it
        is the last message (None: as the request says), which may have empty content."""
        path = f"messages[{i}]"
        if last is None:
            last = i == len(self.request["messages"]) - 1
        if not isinstance(message, dict):
            self.fail(
                path,
                f"must be a dict with role and content, got {type(message).__name__}",
                'Use {"role": "user", "content": "..."}',
            )
            return None
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            self.fail(
                f"{path}.role",
                f"unknown role {_snippet(role)}",
                'Use "user", "assistant" or "system"',
            )
            return None
        if role == "system":
            self.check_system_message(path, message)
            return "system"
        if "clear_at" in message:
            self.fail(
                f"{path}.clear_at",
                f"only a system message may carry clear_at, not a {role} message",
                'Drop clear_at, or put the text in a {"role": "system"} message',
            )
        if "content" not in message:
            self.fail(f"{path}.content", "missing", "Give the message a string or block list")
            return str(role)
        content = message["content"]
        if isinstance(content, str):
            if not content.strip():
                last_assistant = role == "assistant" and last
                if not (last_assistant and content == ""):
                    self.fail(
                        f"{path}.content",
                        "is empty or whitespace only",
                        "Drop the message or give it text",
                    )
            return str(role)
        if not isinstance(content, list):
            self.fail(
                f"{path}.content",
                f"must be a string or a list of blocks, got {type(content).__name__}",
                'Wrap text as [{"type": "text", "text": "..."}]',
            )
            return str(role)
        if not content:
            last_assistant = role == "assistant" and last
            if not last_assistant:
                self.fail(
                    f"{path}.content", "is an empty list", "Give the message at least a block"
                )
        seen_other = False
        for j, block in enumerate(content):
            bpath = f"{path}.content[{j}]"
            kind = self.check_block(bpath, block, str(role))
            if kind == "tool_result" and seen_other:
                self.fail(
                    bpath,
                    "tool_result blocks must come first in a user message, before any text",
                    "Move the tool_result blocks to the start of the message",
                )
            elif kind is not None and kind != "tool_result":
                seen_other = True
        return str(role)

    def check_system_message(self, path: str, message: dict[str, Any]) -> None:
        """A ``role: "system"`` message inside ``messages`` (``BetaSystemMessageParam``), see
        https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages
        """
        clear_at = message.get("clear_at")
        if clear_at is not None and clear_at not in CLEAR_AT:
            self.fail(
                f"{path}.clear_at",
                f"unknown clear_at {_snippet(clear_at)}",
                f"Use one of {', '.join(map(repr, CLEAR_AT))}, or leave it out",
            )
        config = message.get("output_config")
        has_config = False
        if config is not None:
            if not isinstance(config, dict):
                self.fail(
                    f"{path}.output_config",
                    f"must be an object, got {type(config).__name__}",
                    'Use {"effort": "high"}',
                )
            else:
                has_config = any(v is not None for v in config.values())
                for key in config:
                    if key not in SYSTEM_OUTPUT_CONFIG_KEYS:
                        self.fail(
                            f"{path}.output_config.{key}",
                            "a system message's output_config holds per-turn settings only "
                            f"({', '.join(sorted(SYSTEM_OUTPUT_CONFIG_KEYS))})",
                            "Set it in the top-level output_config",
                        )
                effort = config.get("effort")
                if effort is not None and effort not in EFFORTS:
                    self.fail(
                        f"{path}.output_config.effort",
                        f"unknown effort {_snippet(effort)}",
                        f"Use one of {', '.join(map(repr, EFFORTS))}",
                    )
        if "content" not in message or message["content"] is None:
            if not has_config:
                self.fail(
                    path,
                    "a system message needs content or output_config fields",
                    "Give it text, or drop the message",
                )
            return
        content = message["content"]
        if isinstance(content, str):
            if not content.strip():
                self.fail(
                    f"{path}.content",
                    "is empty or whitespace only",
                    "Drop the message or give it text",
                )
            return
        if not isinstance(content, list):
            self.fail(
                f"{path}.content",
                f"must be a string or a list of blocks, got {type(content).__name__}",
                'Wrap text as [{"type": "text", "text": "..."}]',
            )
            return
        if not content and not has_config:
            self.fail(f"{path}.content", "is an empty list", "Give the message at least a block")
        for j, block in enumerate(content):
            bpath = f"{path}.content[{j}]"
            kind = block.get("type") if isinstance(block, dict) else None
            if (
                isinstance(block, dict)
                and isinstance(kind, str)
                and kind not in SYSTEM_MESSAGE_BLOCKS
            ):
                self.fail(
                    bpath,
                    f"a system message holds only {', '.join(sorted(SYSTEM_MESSAGE_BLOCKS))} "
                    f"blocks, got {_snippet(kind)}",
                    "Put other blocks in a user or assistant message",
                )
                continue
            self.check_block(bpath, block, "system")

    def check_tool_change(self, path: str, block: dict[str, Any], kind: str) -> None:
        """A ``tool_addition`` or ``tool_removal`` block (``BetaRequestToolAdditionBlockParam``,
        ``BetaRequestToolRemovalBlockParam``)."""
        tool = block.get("tool")
        refs = TOOL_ADDITION_REFS if kind == "tool_addition" else TOOL_REMOVAL_REFS
        if (
            not isinstance(tool, dict)
            or not isinstance(tool.get("type"), str)
            or tool["type"] not in refs
        ):
            got = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            self.fail(
                f"{path}.tool",
                f"a {kind} needs a tool of type {', '.join(sorted(refs))}, got {_snippet(got)}",
                'Name a declared tool: {"type": "tool_reference", "name": "..."}',
            )
            return
        ref = tool["type"]
        if ref == "tool_definition":
            name = self.check_tool(f"{path}.tool.definition", tool.get("definition"))
            if name is not None:
                self.tool_names.add(name)
            return
        for key in ("name", "server_name"):
            needed = (key == "name" and ref != "mcp_toolset_reference") or (
                key == "server_name" and ref != "tool_reference"
            )
            if needed and (not isinstance(tool.get(key), str) or not tool.get(key)):
                self.fail(f"{path}.tool.{key}", f"a {ref} needs a non-empty string {key}")
        name = tool.get("name")
        known = not isinstance(name, str) or not name or name in self.tool_names
        if ref == "tool_reference" and not known:
            self.fail(
                f"{path}.tool.name",
                "names no tool declared in tools or defined by an earlier tool_addition: "
                f"{_snippet(name)}",
                "Declare the tool in tools, or add it inline with a tool_definition first",
            )

    def check_block(self, path: str, block: Any, role: str) -> str | None:
        if not isinstance(block, dict):
            self.fail(
                path,
                f"a content block must be a dict with a type, got {type(block).__name__} "
                f"{_snippet(block)}",
                'Wrap text as {"type": "text", "text": "..."}',
            )
            return None
        kind = block.get("type")
        if not isinstance(kind, str):
            got = "none" if kind is None else f"{type(kind).__name__} {_snippet(kind)}"
            self.fail(path, f"a content block needs a string 'type', got {got}", "")
            return None
        if kind == "text":
            self.check_text(path, block)
        elif kind == "image":
            self.check_image(path, block)
        elif kind == "tool_use":
            if role != "assistant":
                self.fail(path, "tool_use blocks belong in assistant messages", "")
            if not isinstance(block.get("id"), str) or not block.get("id"):
                self.fail(f"{path}.id", "a tool_use needs a non-empty string id", "")
            if not isinstance(block.get("name"), str) or not block.get("name"):
                self.fail(f"{path}.name", "a tool_use needs a non-empty string name", "")
            if not isinstance(block.get("input"), dict):
                self.fail(
                    f"{path}.input",
                    f"must be an object, got {type(block.get('input')).__name__}",
                    "Pass the tool arguments as a dict",
                )
        elif kind == "tool_result":
            if role != "user":
                self.fail(path, "tool_result blocks belong in user messages", "")
            if not isinstance(block.get("tool_use_id"), str):
                self.fail(f"{path}.tool_use_id", "a tool_result needs a string tool_use_id", "")
            if "is_error" in block and not isinstance(block["is_error"], bool):
                self.fail(f"{path}.is_error", "must be true or false", "")
            self.check_tool_result_content(path, block.get("content"))
        elif kind in TOOL_CHANGE_BLOCKS:
            self.check_tool_change(path, block, kind)
        elif kind in CACHEABLE_NEVER:
            if role != "assistant":
                self.fail(path, f"{kind} blocks belong in assistant messages", "")
            field = "thinking" if kind == "thinking" else "data"
            if not isinstance(block.get(field), str):
                self.fail(f"{path}.{field}", f"a {kind} block needs a string {field}", "")
            if kind == "thinking" and not isinstance(block.get("signature"), str):
                self.fail(
                    f"{path}.signature",
                    "a thinking block needs the signature the API returned with it",
                    "Pass the assistant's thinking blocks back unmodified",
                )
        self.check_marker_target(path, block)
        return kind

    def check_text(self, path: str, block: dict[str, Any]) -> None:
        text = block.get("text")
        if not isinstance(text, str):
            self.fail(f"{path}.text", f"must be a string, got {type(text).__name__}")
        elif not text.strip():
            # The API answers 400 "text content blocks must contain non-whitespace text"
            # (quoted in anthropics/claude-code#23440).
            self.fail(
                path,
                "text blocks must contain non-whitespace text",
                "Drop the block or give it text",
            )

    def check_image(self, path: str, block: dict[str, Any]) -> None:
        source = block.get("source")
        if not isinstance(source, dict):
            self.fail(f"{path}.source", "an image block needs a source object", "")
            return
        kind = source.get("type")
        if kind == "base64":
            if source.get("media_type") not in _IMAGE_MEDIA:
                self.fail(
                    f"{path}.source.media_type",
                    f"unsupported image type {_snippet(source.get('media_type'))}",
                    f"Use one of {', '.join(_IMAGE_MEDIA)}",
                )
            if not isinstance(source.get("data"), str) or not source.get("data"):
                self.fail(f"{path}.source.data", "must be a non-empty base64 string", "")
        elif kind == "url":
            if not isinstance(source.get("url"), str):
                self.fail(f"{path}.source.url", "must be a string", "")
        elif kind != "file":
            self.fail(
                f"{path}.source.type",
                f"unknown image source {_snippet(kind)}",
                'Use "base64", "url" or "file"',
            )

    def check_tool_result_content(self, path: str, content: Any) -> None:
        if content is None or isinstance(content, str):
            return
        if not isinstance(content, list):
            self.fail(
                f"{path}.content",
                f"must be a string or a list of blocks, got {type(content).__name__}",
                "Serialize the tool's output to a string, e.g. json.dumps(result)",
            )
            return
        for k, inner in enumerate(content):
            ipath = f"{path}.content[{k}]"
            kind = inner.get("type") if isinstance(inner, dict) else None
            if isinstance(inner, dict) and not isinstance(kind, str):
                got = "none" if kind is None else f"{type(kind).__name__} {_snippet(kind)}"
                self.fail(ipath, f"a content block needs a string 'type', got {got}", "")
                continue
            if not isinstance(inner, dict) or kind not in _TOOL_RESULT_CONTENT:
                what = kind if isinstance(inner, dict) else type(inner).__name__
                self.fail(
                    ipath,
                    f"{_snippet(what)} cannot sit inside a tool_result",
                    "Use text or image blocks",
                )
                continue
            if inner["type"] == "text":
                self.check_text(ipath, inner)
            elif inner["type"] == "image":
                self.check_image(ipath, inner)
            self.check_marker_target(ipath, inner)

    def check_marker_target(self, path: str, block: dict[str, Any]) -> None:
        marker = block.get("cache_control")
        if marker is None:
            return
        kind = block.get("type")
        if isinstance(kind, str) and kind in MARKERLESS_BLOCKS:
            self.fail(
                f"{path}.cache_control",
                f"a {kind} block cannot carry cache_control",
                "Put the breakpoint on the next text, tool_use or tool_result block",
            )
        if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
            self.fail(
                f"{path}.cache_control",
                f"must be {{'type': 'ephemeral'}}, got {_snippet(marker)}",
                "",
            )
        elif marker.get("ttl", "5m") not in _TTLS:
            self.fail(
                f"{path}.cache_control.ttl",
                f"unknown ttl {_snippet(marker.get('ttl'))}",
                'Use "5m" or "1h"',
            )

    def check_alternation(self, messages: list[Any], roles: list[str | None]) -> None:
        # A system message inside messages is an instruction at its place in the
        # conversation, not a turn: user and assistant turns alternate around it
        # (https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages).
        if not self.strict:
            return
        if roles and roles[0] == "assistant":
            self.fail(
                "messages[0].role",
                "the conversation starts with an assistant message",
                "Start with a user message",
            )
        previous: int | None = None
        for i, role in enumerate(roles):
            if role == "system":
                continue
            if previous is not None and role is not None and role == roles[previous]:
                self.fail(
                    f"messages[{i}].role",
                    f"two {role} messages in a row (messages[{previous}] and messages[{i}])",
                    "Roles must alternate user/assistant: merge the two messages' content",
                )
            previous = i

    def check_pairing(self, messages: list[Any], roles: list[str | None]) -> None:
        # Consecutive same-role messages are one turn to the API (merged), so pair by turn.
        # A system message between them does not split a turn, nor pair anything.
        turns: list[tuple[str, list[int]]] = []
        for i, role in enumerate(roles):
            if role is None or role == "system":
                continue
            if turns and turns[-1][0] == role:
                turns[-1][1].append(i)
            else:
                turns.append((role, [i]))
        seen_ids: dict[str, str] = {}
        pending: dict[str, str] = {}  # tool_use id -> path, waiting for the next user turn
        for role, indices in turns:
            blocks = [
                (f"messages[{i}].content[{j}]", b)
                for i in indices
                if isinstance(messages[i].get("content"), list)
                for j, b in enumerate(messages[i]["content"])
                if isinstance(b, dict)
            ]
            if role == "assistant":
                self.report_unanswered(pending, indices[0])
                pending = {}
                for path, block in blocks:
                    if block.get("type") != "tool_use" or not isinstance(block.get("id"), str):
                        continue
                    tid = block["id"]
                    if tid in seen_ids:
                        self.fail(
                            f"{path}.id",
                            f"duplicate tool_use id {tid!r} (first at {seen_ids[tid]})",
                            "Each tool call needs its own id",
                        )
                        continue
                    seen_ids[tid] = path
                    pending[tid] = path
            else:
                for path, block in blocks:
                    if block.get("type") != "tool_result":
                        continue
                    tid = block.get("tool_use_id")
                    if not isinstance(tid, str):
                        continue
                    if tid in pending:
                        del pending[tid]
                    elif tid in seen_ids:
                        self.fail(
                            path,
                            f"tool_result for {tid!r} does not follow its tool_use "
                            f"({seen_ids[tid]}) directly, or answers it twice",
                            "A tool_result goes in the user message right after its tool_use, once",
                        )
                    else:
                        self.fail(
                            path,
                            f"tool_result for {tid!r} has no tool_use in the previous "
                            "assistant message",
                            "Remove it, or restore the assistant tool_use it answers",
                        )
                self.report_unanswered(pending, indices[0])
                pending = {}
        self.report_unanswered(pending, len(messages))

    def report_unanswered(self, pending: dict[str, str], next_index: int) -> None:
        for tid, path in pending.items():
            self.fail(
                path,
                f"tool_use {tid!r} has no tool_result in the next user message "
                f"(messages[{next_index}])",
                f'Add {{"type": "tool_result", "tool_use_id": "{tid}", "content": "..."}} at '
                f"the start of messages[{next_index}]",
            )

    # -- cache_control limits

    def check_cache_control(self) -> None:
        if self.request.get("cache_control") is not None:
            # Automatic caching: one top-level marker.
            self.check_marker_target("request", {"cache_control": self.request["cache_control"]})
        markers = cache_markers(self.request)
        if len(markers) > MAX_BREAKPOINTS:
            where = ", ".join(path for path, _ in markers)
            self.fail(
                markers[MAX_BREAKPOINTS][0] + ".cache_control"
                if markers[MAX_BREAKPOINTS][0] != "cache_control"
                else "cache_control",
                f"{len(markers)} cache_control breakpoints; the API allows at most "
                f"{MAX_BREAKPOINTS} ({where})",
                "Remove the extra markers (tidyctx.cache() places at most 4)",
            )
        # Longer TTLs must come before shorter ones (prompt caching docs, "Mixing different
        # TTLs").
        seen_5m: str | None = None
        for path, marker in markers:
            if not isinstance(marker, dict):
                continue
            ttl = marker.get("ttl", "5m")
            if ttl == "5m" and seen_5m is None:
                seen_5m = path
            elif ttl == "1h" and seen_5m is not None and path != "cache_control":
                self.fail(
                    f"{path}.cache_control.ttl",
                    f"a 1h breakpoint comes after a 5m one ({seen_5m})",
                    "Longer TTLs must come before shorter ones: put 1h markers first",
                )


# ------------------------------------------------------------------ validation, message by message


@dataclass(frozen=True, slots=True)
class Head:
    """What :func:`validate` (``strict=False``) finds in everything of a request but its
    messages (:func:`head_of`), for :class:`Validity`."""

    ok: bool
    """No problem outside the messages, and the request is plain data (checked as it is)."""
    tool_names: frozenset[str]
    """The names of the tools declared in ``tools``."""
    markers: int
    """Cache markers outside the messages (the top-level one included)."""
    has_5m: bool
    """A 5-minute marker in tools or system (before the messages)."""


def head_of(request: Mapping[str, Any]) -> Head:
    """:class:`Head` of ``request``: the checks of :func:`errors` that read no message."""
    head = {k: v for k, v in request.items() if k != "messages"}
    ok = type(request) is dict and _is_plain(head) and type(request.get("messages")) is list
    checker = _Checker(head, False)
    try:
        checker.check_tools()
        checker.check_system()
        checker.check_cache_control()
        ok = ok and not checker.found and not _may_be_unsendable(head)
        markers = cache_markers(head)
    except RecursionError:
        return Head(False, frozenset(), 0, False)
    has_5m = any(
        path != "cache_control" and isinstance(m, dict) and m.get("ttl", "5m") == "5m"
        for path, m in markers
    )
    return Head(ok, frozenset(checker.tool_names), len(markers), has_5m)


class Validity:
    """Whether :func:`validate` with ``strict=False`` passes a request, decided one message at
    a time, so that a conversation grown by a turn is checked for its new messages only.

    Each message gets validate's own checks (:class:`_Checker`), with what they need of the
    messages before it carried along: the tool names added so far, the calls of the current
    turn waiting for results, the call ids seen, the cache markers. It only ever errs on the
    safe side: :meth:`passes` is True only when validate finds no problem; when it is False
    the caller runs validate, which names the problem (or finds none). A state stands for the
    messages added to it, whatever follows them; :meth:`passes` reads the end of the request.
    """

    __slots__ = (
        "_checker",
        "bad",
        "has_1h",
        "last",
        "late_1h",
        "markers",
        "n",
        "pending",
        "role",
        "seen",
        "seen_5m",
    )

    def __init__(self, tool_names: frozenset[str]) -> None:
        self._checker = _Checker({}, False)
        self._checker.tool_names = set(tool_names)
        self.n = 0
        self.bad = False
        """A problem found: in a message before the last, or in the pairing or markers."""
        self.last: bool | None = True
        """The last message added: True if it passed its checks as a message that is not the
        last (or none was added); False if it failed them; None if it is an assistant message
        with empty content (allowed only at the end)."""
        self.role: str | None = None
        """The role of the current turn (consecutive messages of one role are one turn)."""
        self.pending: set[str] = set()
        self.seen: set[str] = set()
        self.markers = 0
        self.seen_5m = self.has_1h = self.late_1h = False

    def add(self, message: Any) -> None:
        """Take ``messages[n]`` in: its own checks, its place in the pairing, its markers."""
        i = self.n
        self.n += 1
        if self.last is not True:
            self.bad = True  # the message before it failed, or was empty, and is not the last
        self.last = False
        if self.bad:
            return  # validate will run: nothing more to learn
        checker = self._checker
        try:
            role = checker.check_message(i, message, last=False)
            failed = bool(checker.found)
            checker.found.clear()
            if role is None or (i == 0 and role == "system"):
                self.bad = True
                return
            if not _is_plain(message, 2) or _may_be_unsendable(message):
                self.bad = True
                return
            if role != "system":
                self._pair(role, message)
            self._marks(message)
        except RecursionError:
            self.bad = True
            return
        if failed:
            content = message.get("content")
            empty = (type(content) is str and content == "") or (
                type(content) is list and not content
            )
            # Empty content is allowed in a last assistant message only.
            self.last = None if role == "assistant" and empty else False
            if self.last is None:
                # Whether that was its only problem: checked again as the last message.
                checker.check_message(i, message, last=True)
                if checker.found:
                    self.last = False
                checker.found.clear()
        else:
            self.last = True

    def _pair(self, role: str, message: dict[str, Any]) -> None:
        """check_pairing, one message at a time."""
        if role != self.role:
            if self.role == "user" and self.pending:
                self.bad = True  # a call of the turn before went unanswered
            if role == "assistant":
                self.pending = set()
            self.role = role
        content = message.get("content")
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict):
                continue
            if role == "assistant":
                tid = block.get("id")
                if block.get("type") != "tool_use" or not isinstance(tid, str):
                    continue
                if tid in self.seen:
                    self.bad = True
                self.seen.add(tid)
                self.pending.add(tid)
            elif block.get("type") == "tool_result":
                tid = block.get("tool_use_id")
                if not isinstance(tid, str):
                    continue
                if tid in self.pending:
                    self.pending.discard(tid)
                else:
                    self.bad = True  # answers twice, late, or nothing

    def _marks(self, message: dict[str, Any]) -> None:
        """check_cache_control's count and TTL order, one message at a time: its markers in
        the order of :func:`cache_markers`."""
        content = message.get("content")
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, Mapping):
                continue
            inner = block.get("content")
            if block.get("type") == "tool_result" and isinstance(inner, list):
                for item in inner:
                    if isinstance(item, Mapping) and item.get("cache_control") is not None:
                        self._mark(item["cache_control"])
            if block.get("cache_control") is not None:
                self._mark(block["cache_control"])

    def _mark(self, marker: Any) -> None:
        self.markers += 1
        if not isinstance(marker, dict):
            return
        ttl = marker.get("ttl", "5m")
        if ttl == "5m":
            self.seen_5m = True
        elif ttl == "1h":
            self.has_1h = True
            if self.seen_5m:
                self.late_1h = True

    def passes(self, head: Head) -> bool:
        """Whether validate(strict=False) finds nothing in the request whose messages are the
        ones added, and whose other parts ``head`` describes."""
        return (
            head.ok
            and self.n > 0
            and not self.bad
            and self.last is not False
            and not self.pending
            and head.markers + self.markers <= MAX_BREAKPOINTS
            and not self.late_1h
            and not (head.has_5m and self.has_1h)
        )
