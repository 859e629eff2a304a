"""Hypothesis strategies for Anthropic Messages API requests with real structure.

Everything generated here is a request (or part of one) that the real API would accept:

* conversations start and end with a ``user`` message and strictly alternate roles;
* every ``tool_use`` of an assistant turn is answered by exactly one ``tool_result`` at the
  start of the next user message, ``tool_use`` ids are unique across the conversation and
  name a tool defined in the request;
* text is never empty or whitespace-only, thinking blocks carry signatures, images are real
  PNG/JPEG bytes;
* ``thinking`` is only enabled when it is compatible with the conversation (every assistant
  turn that calls tools starts with a thinking block) and ``max_tokens > budget_tokens``;
* ``cache_control`` only appears with ``with_cache_control=True`` (at most 4 markers, never
  on thinking blocks).

Structural validity only: thinking signatures and redacted data are random base64 (the live
API verifies signatures of the current tool-use loop), and the pass-through keys
(``output_config``, ``diagnostics``, ``context_management``) are not checked per model.

Draws are ordered so that hypothesis shrinks towards small, plain requests: one short user
turn, no tools, no system, no optional parameters. Typical cost: about 10 ms per request.

A "turn" below is one user message, so a conversation of ``n`` turns has ``2 * n - 1``
messages.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import operator
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from builders import payloads

__all__ = [
    "MODELS",
    "broken_requests",
    "conversations",
    "growing_conversations",
    "image_blocks",
    "jpeg_bytes",
    "message_lists",
    "odd_requests",
    "png_bytes",
    "requests",
    "systems",
    "text_blocks",
    "texts",
    "thinking_blocks",
    "tool_names",
    "tool_sessions",
    "tools",
]

Block = dict[str, Any]
Message = dict[str, Any]
Tool = dict[str, Any]
Request = dict[str, Any]

MODELS: tuple[str, ...] = (
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-haiku-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-3-7-sonnet-20250219",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5",
)

# --------------------------------------------------------------------------------------------
# Shared primitives (strategy objects are built once: building them per draw is slow)
# --------------------------------------------------------------------------------------------

_BOOL = st.booleans()


@functools.cache
def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


def _one_in(draw: st.DrawFn, n: int) -> bool:
    """True with probability ~1/n; shrinks to False."""
    return draw(_ints(0, n - 1)) == n - 1


@functools.cache
def _choice(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(options)


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

_SENTENCES: tuple[str, ...] = (
    "Please run the tests.",
    "Fix the bug in src/app.py, line 42: the function returns None instead of a list.",
    "OK",
    "done.",
    "Let me check why the build fails.",
    "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    "I'll read the file first, then make the change.",
    "Can you summarise this?\n\n- point one\n- point two\n- point three",
    "All 17 tests passed.",
    "No matches found.",
    "The weather in Paris is 18°C and sunny.",
    "Here is the plan:\n1. Read plan.md\n2. Update roadmap.md\n3. Commit",
    "?",
    "Continue.",
)

_UNICODE_SNIPPETS: tuple[str, ...] = (
    "naïve café résumé",
    "日本語のテキストです。",
    "中文字符测试",
    "한국어 문장입니다",
    "emoji 🎉🚀✅",
    "👩\u200d💻 and 👨\u200d👩\u200d👧\u200d👦",
    "e\u0301 vs é (combining acute)",
    "Z\u0351\u0328a\u0308\u0324l\u0336g\u0301o\u035c",
    "Ελληνικά κείμενα",
    "עברית",
    "مرحبا بالعالم",
    "Ω≈ç√∫ µ ≤≥ ÷",
    "🇺🇸🇯🇵 flags",
    "zero\u200bwidth",
    "nbsp\u00a0here",
    "ﬁ ligature and ẞ",
)

_CODE_SNIPPETS: tuple[str, ...] = (
    "def f(x):\n    return x + 1",
    "```python\nprint('hello')\n```",
    "$ ls -la\ntotal 0\ndrwxr-xr-x  2 root root 4096 .",
    "Traceback (most recent call last):\n  File \"main.py\", line 3\nKeyError: 'id'",
    "<ide_opened_file>/repo/README.md</ide_opened_file>",
    "diff --git a/x b/x\n-old\n+new",
    "SELECT * FROM users WHERE id = 1;",
    "     1\timport os\n     2\timport sys\n     3\t",
)

_SEPARATORS = (" ", "\n", "\n\n", "\t", "\r\n")
_LONG_WORDS = ("word", "x", "0123456789", "日本", "lorem ipsum", "🎉")
_JSON_KEYS = ("id", "name", "path", "status", "items", "count", "ok", "data")

_FREE_TEXT: st.SearchStrategy[str] = st.text(
    st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=24
).filter(lambda s: bool(s.strip()))

_JSON_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(_SENTENCES),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.sampled_from(_UNICODE_SNIPPETS),
    _FREE_TEXT,
)

_JSON_OBJECTS: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from(_JSON_KEYS),
    st.one_of(_JSON_SCALARS, st.lists(_JSON_SCALARS, max_size=2)),
    min_size=1,
    max_size=3,
)


@st.composite
def _json_piece(draw: st.DrawFn) -> str:
    obj = draw(_JSON_OBJECTS)
    indent = draw(_choice((None, 2)))
    text = json.dumps(obj, indent=indent, ensure_ascii=draw(_BOOL))
    if _one_in(draw, 5):
        text = text[: max(1, len(text) // 2)]  # truncated: JSON-looking but invalid
    return text


@st.composite
def _long_line(draw: st.DrawFn) -> str:
    word: str = draw(_choice(_LONG_WORDS))
    sep: str = draw(_choice(("", " ", ",")))
    return sep.join([word] * draw(_ints(30, 400)))


_PIECES: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(_SENTENCES),
    st.sampled_from(_UNICODE_SNIPPETS),
    _FREE_TEXT,
    _json_piece(),
    st.sampled_from(_CODE_SNIPPETS),
    _long_line(),
)


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Non-empty text with at least one non-whitespace character.

    Mixes plain sentences, unicode (emoji, CJK, RTL, combining marks, ZWJ sequences),
    arbitrary characters, JSON-looking strings, code and long lines, joined by
    spaces/newlines/tabs; sometimes with a leading or trailing newline.
    """
    text = draw(_PIECES)
    for _ in range(draw(_ints(0, 3))):
        text += draw(_choice(_SEPARATORS)) + draw(_PIECES)
    edges = draw(_ints(0, 9))
    if edges == 8:
        text = "\n" + text
    elif edges == 9:
        text += "\n"
    return text


_TEXTS = texts()


@st.composite
def text_blocks(draw: st.DrawFn) -> Block:
    """``{"type": "text", "text": <non-empty>}``."""
    return {"type": "text", "text": draw(_TEXTS)}


_TEXT_BLOCKS = text_blocks()


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 6: 4}  # grayscale, RGB, RGBA (8 bits per channel)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def png_bytes(width: int, height: int, color_type: int, pixels: bytes) -> bytes:
    """A valid, non-interlaced 8-bit PNG. ``pixels`` is cycled to fill the image."""
    channels = _PNG_CHANNELS[color_type]
    row_len = width * channels
    needed = row_len * height
    data = (pixels or b"\x00") * (needed // max(1, len(pixels)) + 1)
    raw = b"".join(b"\x00" + data[y * row_len : (y + 1) * row_len] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_bytes(width: int, height: int, gray: int) -> bytes:
    """A valid baseline grayscale JFIF image of one flat gray level (hand-encoded).

    Quantisation table of all ones except DC=8, so the quantised DC coefficient of a flat
    8x8 block equals ``gray - 128``. Huffman tables contain only the symbols needed: DC
    category 0 (and the category of the first block's DC), and AC end-of-block.
    """
    diff = gray - 128
    category = abs(diff).bit_length()
    dc_symbols = [0] if category == 0 else [0, category]
    dc_counts = [1, 0] if category == 0 else [1, 1]
    dc_table = bytes([0x00, *dc_counts, *([0] * 14), *dc_symbols])
    ac_table = bytes([0x10, 1, *([0] * 15), 0x00])

    blocks = -(-width // 8) * -(-height // 8)
    bits = ""
    if category == 0:
        bits += "0"
    else:
        value = diff if diff > 0 else diff + (1 << category) - 1
        bits += "10" + format(value, f"0{category}b")
    bits += "0"  # EOB
    bits += "00" * (blocks - 1)  # DC diff 0 + EOB for every following block
    bits += "1" * (-len(bits) % 8)
    entropy = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(bits[i : i + 8], 2)
        entropy.append(byte)
        if byte == 0xFF:
            entropy.append(0x00)

    return (
        b"\xff\xd8"
        + _jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + _jpeg_segment(0xDB, bytes([0x00, 8, *([1] * 63)]))
        + _jpeg_segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + _jpeg_segment(0xC4, dc_table)
        + _jpeg_segment(0xC4, ac_table)
        + _jpeg_segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0]))
        + bytes(entropy)
        + b"\xff\xd9"
    )


_IMAGE_HOSTS = (
    "https://upload.wikimedia.org/wikipedia/commons/a/a7",
    "https://example.com/images",
    "https://raw.githubusercontent.com/acme/app/main/docs",
)
_SLUG_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_PNG_COLOR_TYPES = tuple(sorted(_PNG_CHANNELS))
_PIXELS = st.binary(min_size=1, max_size=64)
_SLUGS = st.text(_SLUG_CHARS, min_size=1, max_size=16)


@st.composite
def image_blocks(draw: st.DrawFn) -> Block:
    """An image block: base64 PNG (or JPEG) with real bytes, sometimes a URL source."""
    source: dict[str, Any]
    if _one_in(draw, 5):
        name = draw(_SLUGS)
        ext = draw(_choice(("png", "jpg", "gif", "webp")))
        source = {"type": "url", "url": f"{draw(_choice(_IMAGE_HOSTS))}/{name}.{ext}"}
    else:
        width = draw(_ints(1, 24))
        height = draw(_ints(1, 24))
        if _one_in(draw, 4):
            data = jpeg_bytes(width, height, draw(_ints(0, 255)))
            media_type = "image/jpeg"
        else:
            color_type = draw(_choice(_PNG_COLOR_TYPES))
            data = png_bytes(width, height, color_type, draw(_PIXELS))
            media_type = "image/png"
        source = {
            "type": "base64",
            "media_type": media_type,
            "data": base64.b64encode(data).decode("ascii"),
        }
    return {"type": "image", "source": source}


_IMAGE_BLOCKS = image_blocks()


# --------------------------------------------------------------------------------------------
# Thinking
# --------------------------------------------------------------------------------------------

_OPAQUE = st.binary(min_size=12, max_size=120).map(lambda b: base64.b64encode(b).decode("ascii"))


@st.composite
def thinking_blocks(draw: st.DrawFn) -> Block:
    """A signed ``thinking`` block, occasionally a ``redacted_thinking`` block."""
    if _one_in(draw, 6):
        return {"type": "redacted_thinking", "data": draw(_OPAQUE)}
    return {"type": "thinking", "thinking": draw(_TEXTS), "signature": draw(_OPAQUE)}


_THINKING_BLOCKS = thinking_blocks()


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------

_TOOL_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_COMMON_TOOL_NAMES: tuple[str, ...] = (
    "bash",
    "read_file",
    "str_replace_based_edit_tool",
    "get_weather",
    "Grep",
    "TodoWrite",
    "mcp__github__create_issue",
    "search-docs",
    "execute_sql",
    "web_fetch",
)

#: Tool names as the API accepts them: ``^[a-zA-Z0-9_-]{1,64}$``.
tool_names: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(_COMMON_TOOL_NAMES),
    st.text(_TOOL_NAME_CHARS, min_size=1, max_size=64),
)

_PROPERTY_NAMES: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(
        ("path", "command", "query", "url", "timeout", "recursive", "pattern", "limit", "items")
    ),
    st.builds(
        operator.add,
        st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
        st.text("abcdefghijklmnopqrstuvwxyz0123456789_", max_size=15),
    ),
)
_PROPERTY_NAME_LISTS = st.lists(_PROPERTY_NAMES, max_size=4, unique=True)
_NESTED_NAME_LISTS = st.lists(_PROPERTY_NAMES, min_size=1, max_size=3, unique=True)
_SIMPLE_TYPES = ("string", "integer", "number", "boolean")
_PROPERTY_KINDS = (*_SIMPLE_TYPES, "enum", "array", "object")
_ENUMS = st.lists(
    st.sampled_from(("auto", "fast", "slow", "json", "text", "asc", "desc", "none")),
    min_size=1,
    max_size=4,
    unique=True,
)
_PROPERTY_DESCRIPTIONS = (
    "Absolute path to the file.",
    "The shell command to run.",
    "Maximum number of results (default 10).",
    "Search query; supports regular expressions like ^foo.*bar$.",
    "Ort oder Stadt, z. B. München",
    "検索キーワード",
)


def _property_schema(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(_choice(_PROPERTY_KINDS))
    schema: dict[str, Any]
    if kind == "enum":
        schema = {"type": "string", "enum": draw(_ENUMS)}
    elif kind == "array":
        schema = {"type": "array", "items": {"type": draw(_choice(_SIMPLE_TYPES))}}
    elif kind == "object":
        keys = draw(_NESTED_NAME_LISTS)
        schema = {"type": "object", "properties": {k: {"type": "string"} for k in keys}}
    else:
        schema = {"type": kind}
    if draw(_BOOL):
        schema["description"] = draw(_choice(_PROPERTY_DESCRIPTIONS))
    return schema


_SCALAR_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": _TEXTS,
    "integer": st.integers(-1000, 10**6),
    "number": st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
}
_ARRAY_VALUES = {k: st.lists(v, max_size=3) for k, v in _SCALAR_VALUES.items()}


def _value_for(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    """A JSON value that validates against one of the property schemas made above."""
    if "enum" in schema:
        return draw(_choice(tuple(schema["enum"])))
    kind = schema["type"]
    if kind == "array":
        return draw(_ARRAY_VALUES[schema["items"]["type"]])
    if kind == "object":
        return {k: draw(_TEXTS) for k in schema["properties"] if draw(_BOOL)}
    return draw(_SCALAR_VALUES[kind])


def _maybe_shuffled(draw: st.DrawFn, d: dict[str, Any]) -> dict[str, Any]:
    """The same mapping, sometimes with its key order permuted (for canonical-JSON tests)."""
    if len(d) > 1 and _one_in(draw, 3):
        keys = draw(st.permutations(list(d)))
        return {k: d[k] for k in keys}
    return d


def _tool_definition(draw: st.DrawFn, name: str) -> Tool:
    prop_names = draw(_PROPERTY_NAME_LISTS)
    properties = {p: _property_schema(draw) for p in prop_names}
    required = [p for p in prop_names if draw(_BOOL)]
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": _maybe_shuffled(draw, properties),
        "required": required,
    }
    if _one_in(draw, 4):
        input_schema["additionalProperties"] = False
    if _one_in(draw, 4):
        input_schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    tool: Tool = {
        "name": name,
        "description": draw(_TEXTS),
        "input_schema": _maybe_shuffled(draw, input_schema),
    }
    if _one_in(draw, 6):
        tool["type"] = "custom"
    if _one_in(draw, 8):  # tool search: sent, but not rendered until a tool_reference loads it
        tool["defer_loading"] = True
    return _maybe_shuffled(draw, tool)


@functools.cache
def _name_lists(min_size: int, max_size: int) -> st.SearchStrategy[list[str]]:
    return st.lists(tool_names, min_size=min_size, max_size=max_size, unique=True)


@st.composite
def tools(draw: st.DrawFn, min_size: int = 0, max_size: int = 6) -> list[Tool]:
    """Tool definitions: unique valid names, object input schemas, sometimes shuffled keys."""
    return [_tool_definition(draw, name) for name in draw(_name_lists(min_size, max_size))]


_TOOLS = tools()


def _tool_input(draw: st.DrawFn, tool: Tool) -> dict[str, Any]:
    """Input for ``tool``: all required properties, some optional ones."""
    schema = tool["input_schema"]
    required = set(schema["required"])
    return {
        name: _value_for(draw, prop)
        for name, prop in schema["properties"].items()
        if name in required or draw(_BOOL)
    }


# --------------------------------------------------------------------------------------------
# System
# --------------------------------------------------------------------------------------------

_SYSTEM_BLOCK_LISTS = st.lists(_TEXT_BLOCKS, min_size=1, max_size=3)


@st.composite
def systems(draw: st.DrawFn) -> str | list[Block] | None:
    """``None`` (no system key), a non-empty string, or a list of non-empty text blocks."""
    kind = draw(_ints(0, 2))
    if kind == 0:
        return None
    if kind == 1:
        return draw(_TEXTS)
    return draw(_SYSTEM_BLOCK_LISTS)


_SYSTEMS = systems()


# --------------------------------------------------------------------------------------------
# Conversations
# --------------------------------------------------------------------------------------------

_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SUFFIXES = st.text(_ID_ALPHABET, min_size=1, max_size=24)
_THINKING_STYLES = ("none", "tool_turns", "all")
_USER_BLOCKS = st.one_of(_TEXT_BLOCKS, _TEXT_BLOCKS, _TEXT_BLOCKS, _IMAGE_BLOCKS)
_USER_BLOCK_LISTS = st.lists(_USER_BLOCKS, min_size=1, max_size=3)
_TRAILING_USER_BLOCKS = st.lists(_USER_BLOCKS, max_size=2)
_RESULT_BLOCK_LISTS = st.lists(st.one_of(_TEXT_BLOCKS, _IMAGE_BLOCKS), min_size=1, max_size=3)
_ERROR_BLOCK_LISTS = st.lists(_TEXT_BLOCKS, min_size=1, max_size=2)
_THINKING_LISTS = st.lists(_THINKING_BLOCKS, min_size=1, max_size=2)


def _tool_result(draw: st.DrawFn, tool_use_id: str) -> Block:
    is_error = _one_in(draw, 6)
    content: str | list[Block]
    if draw(_BOOL):
        content = draw(_ERROR_BLOCK_LISTS if is_error else _RESULT_BLOCK_LISTS)
    else:
        content = draw(_TEXTS)
    block: Block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if is_error:
        block["is_error"] = True
    return block


def _user_message(draw: st.DrawFn, answering: Sequence[str]) -> Message:
    """A user message; when ``answering`` is non-empty it starts with their tool_results."""
    if answering:
        order = list(answering)
        if len(order) > 1 and draw(_BOOL):
            order = draw(st.permutations(order))
        content = [_tool_result(draw, tool_use_id) for tool_use_id in order]
        return {"role": "user", "content": content + draw(_TRAILING_USER_BLOCKS)}
    if draw(_BOOL):
        return {"role": "user", "content": draw(_USER_BLOCK_LISTS)}
    return {"role": "user", "content": draw(_TEXTS)}


def _new_tool_use_id(draw: st.DrawFn, used: set[str]) -> str:
    suffix = draw(_ID_SUFFIXES)
    candidate = f"toolu_{suffix}"
    n = 0
    while candidate in used:
        n += 1
        candidate = f"toolu_{suffix}{n}"
    used.add(candidate)
    return candidate


def _assistant_message(
    draw: st.DrawFn, tool_defs: Sequence[Tool], thinking_style: str, used_ids: set[str]
) -> tuple[Message, list[str]]:
    """An assistant message and the ids of its tool_use blocks."""
    # Always drawn, so that deleting every tool while shrinking keeps later draws aligned.
    n_calls = draw(_ints(0, 3))
    if not tool_defs:
        n_calls = 0
    content: list[Block] = []
    if thinking_style == "all" or (thinking_style == "tool_turns" and (n_calls > 0 or draw(_BOOL))):
        content += draw(_THINKING_LISTS)
    if n_calls == 0 or draw(_BOOL):
        content.append(draw(_TEXT_BLOCKS))
    ids: list[str] = []
    for _ in range(n_calls):
        tool = tool_defs[draw(_ints(0, len(tool_defs) - 1))]
        tool_use_id = _new_tool_use_id(draw, used_ids)
        ids.append(tool_use_id)
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id,
                "name": tool["name"],
                "input": _tool_input(draw, tool),
            }
        )
    return {"role": "assistant", "content": content}, ids


def _system_message(draw: st.DrawFn, tool_defs: Sequence[Tool]) -> Message:
    """A ``role: "system"`` message as clients put one after a user message: text, tool
    additions or removals of declared tools, ``clear_at``, a per-turn effort (the SDK's
    ``BetaSystemMessageParam``)."""
    kind = draw(_ints(0, 4))
    message: Message = {"role": "system"}
    if kind == 0:
        message["content"] = draw(_TEXTS)
    elif kind in (1, 2) and tool_defs:
        tool = tool_defs[draw(_ints(0, len(tool_defs) - 1))]
        change = "tool_addition" if kind == 1 else "tool_removal"
        block: Block = {"type": change, "tool": {"type": "tool_reference", "name": tool["name"]}}
        message["content"] = [block]
        if _one_in(draw, 3):
            message["content"].insert(0, draw(_TEXT_BLOCKS))
    else:
        message["content"] = [draw(_TEXT_BLOCKS)]
    if _one_in(draw, 3):
        message["clear_at"] = draw(_choice(("next_user_message", "never")))
    if _one_in(draw, 4):
        message["output_config"] = {"effort": draw(_choice(("low", "medium", "high", "max")))}
    return message


def _with_system(
    draw: st.DrawFn, user: Message, tool_defs: Sequence[Tool], system_messages: bool
) -> list[Message]:
    """The user message, followed by a system message one time in five."""
    if system_messages and _one_in(draw, 5):
        return [user, _system_message(draw, tool_defs)]
    return [user]


@st.composite
def _turn(
    draw: st.DrawFn,
    tool_defs: Sequence[Tool],
    thinking_style: str,
    used_ids: set[str],
    system_messages: bool = False,
) -> list[Message]:
    """An assistant reply and the user message after it, with the system message that may
    follow (one span, so it shrinks away)."""
    assistant, ids = _assistant_message(draw, tool_defs, thinking_style, used_ids)
    return [assistant, *_with_system(draw, _user_message(draw, ids), tool_defs, system_messages)]


def _draw_conversation(
    draw: st.DrawFn,
    min_turns: int,
    max_turns: int,
    tool_defs: Sequence[Tool],
    system_messages: bool = False,
) -> list[Message]:
    thinking_style = draw(_choice(_THINKING_STYLES))
    used_ids: set[str] = set()
    messages = _with_system(draw, _user_message(draw, ()), tool_defs, system_messages)
    for turn in range(2, max_turns + 1):
        # Like st.lists: a "more?" choice before each optional turn lets the shrinker delete
        # any turn, not only the last ones.
        if turn > min_turns and draw(_ints(0, 3)) == 0:
            break
        messages += draw(_turn(tool_defs, thinking_style, used_ids, system_messages))
    return messages


def turn_ends(messages: Sequence[Message]) -> list[int]:
    """Where each request of a growing session ends: after each user message and the system
    messages that follow it."""
    ends: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and i > 0:
            ends.append(i)
    return [*ends, len(messages)]


@st.composite
def conversations(
    draw: st.DrawFn,
    min_turns: int = 1,
    max_turns: int = 8,
    *,
    tool_defs: Sequence[Tool] | None = None,
) -> list[Message]:
    """A valid message list of ``min_turns..max_turns`` user messages (first and last: user).

    ``tool_use`` blocks name tools from ``tool_defs`` (drawn with :func:`tools` when omitted)
    and their inputs follow that tool's input schema.
    """
    if tool_defs is None:
        tool_defs = draw(_TOOLS)
    return _draw_conversation(draw, min_turns, max_turns, tool_defs)


def message_lists(min_turns: int = 1, max_turns: int = 8) -> st.SearchStrategy[list[Message]]:
    """A bare, valid message list (for the ``pipe(list)`` form)."""
    return conversations(min_turns, max_turns)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def _thinking_compatible(messages: Sequence[Message]) -> bool:
    """Some thinking present, and every assistant turn that calls tools starts with it."""
    has_thinking = False
    for message in messages:
        if message["role"] != "assistant":
            continue
        content = message["content"]
        starts = content[0]["type"] in ("thinking", "redacted_thinking")
        has_thinking = has_thinking or starts
        if not starts and any(b["type"] == "tool_use" for b in content):
            return False
    return has_thinking


_TEMPERATURES = st.one_of(st.sampled_from((0.0, 0.7, 1.0)), st.floats(0.0, 1.0))
_STOP_SEQUENCES = st.lists(
    st.sampled_from(("\n\nHuman:", "</answer>", "STOP")), min_size=1, max_size=3, unique=True
)
_HEX8 = st.text("0123456789abcdef", min_size=8, max_size=8)
_MESSAGE_IDS = st.text(_ID_ALPHABET, min_size=22, max_size=22).map(lambda s: f"msg_01{s}")


def _request_parts(
    draw: st.DrawFn, min_turns: int, max_turns: int
) -> tuple[dict[str, Any], list[Message]]:
    """Every request field (``messages`` as a ``None`` placeholder, in its final key
    position), and the messages."""
    model = draw(_choice(MODELS))
    tool_defs = draw(_TOOLS)
    messages = _draw_conversation(draw, min_turns, max_turns, tool_defs, system_messages=True)
    system = draw(_SYSTEMS)
    thinking = _thinking_compatible(messages) and draw(_BOOL)

    fields: dict[str, Any] = {"model": model}
    fields["max_tokens"] = draw(_ints(1025, 8192) if thinking else _ints(1, 8192))
    if system is not None:
        fields["system"] = system
    fields["messages"] = None
    if tool_defs:
        fields["tools"] = tool_defs
        if draw(_BOOL):
            fields["tool_choice"] = {"type": "auto"}
    if thinking:
        fields["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    elif draw(_BOOL):
        fields["temperature"] = draw(_TEMPERATURES)
    if _one_in(draw, 4):
        fields["metadata"] = {"user_id": f"user-{draw(_HEX8)}"}
    if _one_in(draw, 6):
        fields["stop_sequences"] = draw(_STOP_SEQUENCES)
    # Newer or unknown top-level keys, which transforms must pass through untouched.
    if _one_in(draw, 4):
        fields["output_config"] = {"effort": draw(_choice(("low", "medium", "high")))}
    if _one_in(draw, 4):
        previous = draw(_MESSAGE_IDS) if draw(_BOOL) else None
        fields["diagnostics"] = {"previous_message_id": previous}
    if _one_in(draw, 4):
        fields["context_management"] = {"edits": []}
    return _maybe_shuffled(draw, fields), messages


_CACHEABLE_TYPES = frozenset({"text", "image", "tool_use", "tool_result"})


def _cacheable_blocks(request: Request) -> list[Block]:
    blocks: list[Block] = list(request.get("tools", []))
    if isinstance(request.get("system"), list):
        blocks += request["system"]
    for message in request["messages"]:
        if isinstance(message.get("content"), list):
            blocks += [b for b in message["content"] if b["type"] in _CACHEABLE_TYPES]
    return blocks


@st.composite
def requests(
    draw: st.DrawFn,
    min_turns: int = 1,
    max_turns: int = 8,
    *,
    with_cache_control: bool = False,
) -> Request:
    """A full, valid Messages API request dict.

    With ``with_cache_control=True``, 1-4 ``{"type": "ephemeral"}`` markers are put on
    cacheable blocks (tools, system text blocks, text/image/tool_use/tool_result blocks),
    if the request has any.
    """
    fields, messages = _request_parts(draw, min_turns, max_turns)
    request: Request = {**fields, "messages": messages}
    if with_cache_control:
        candidates = _cacheable_blocks(request)
        if candidates:
            chosen = draw(
                st.lists(
                    _ints(0, len(candidates) - 1),
                    min_size=1,
                    max_size=min(4, len(candidates)),
                    unique=True,
                )
            )
            for index in chosen:
                candidates[index]["cache_control"] = {"type": "ephemeral"}
    return request


@st.composite
def growing_conversations(draw: st.DrawFn, min_turns: int = 2, max_turns: int = 8) -> list[Request]:
    """Requests r_1..r_n of one agent session, one per user message (n = number of turns).

    All share every field except ``messages`` (same model, system, tools, ...); r_k's
    messages are a strict prefix of r_{k+1}'s, which adds the assistant reply and the next
    user message. Each request is an independent deep copy: mutating one never affects
    another.
    """
    fields, messages = _request_parts(draw, min_turns, max_turns)
    return [copy.deepcopy({**fields, "messages": messages[:end]}) for end in turn_ends(messages)]


_ODD_PAYLOADS = st.sampled_from(sorted(set(payloads()) - {"one_mb_line"}))


@st.composite
def odd_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request (:func:`requests`) whose tool results hold the odd formats of
    :func:`builders.payloads`, cut short."""
    request = draw(requests(min_turns=2, max_turns=5))
    texts = payloads()
    for message in request["messages"]:
        if not isinstance(message["content"], list):
            continue
        for block in message["content"]:
            if block.get("type") == "tool_result" and draw(st.booleans()):
                text = texts[draw(_ODD_PAYLOADS)]
                block["content"] = text[: draw(st.sampled_from([200, 5_000, 40_000]))]
    return request


# --------------------------------------------------------------------------------------------
# Agent sessions whose tool results the transforms rewrite
# --------------------------------------------------------------------------------------------

_BANNERS: tuple[str, ...] = (
    "** WARNING: connection is not using a post-quantum key exchange algorithm.\n"
    "** This session may be vulnerable to store now, decrypt later attacks.\n"
    "** The server may need to be upgraded. See https://openssh.com/pq.html",
    "npm WARN deprecated inflight@1.0.6: This module is not supported, and leaks memory.\n"
    "npm WARN deprecated glob@7.2.3: Glob versions prior to v9 are no longer supported\n"
    "npm WARN deprecated rimraf@3.0.2: Rimraf versions prior to v4 are no longer supported\n"
    "npm WARN deprecated uuid@3.4.0: Please upgrade to version 7 or higher.",
)
_SESSION_KINDS = ("repeat", "log", "rows", "source", "again", "short", "table", "envelope")
_SESSION_TOOLS = ("bash", "read_file", "sql", "ssh", "mcp__docs__fetch")


def _source(draw: st.DrawFn, n: int) -> str:
    """Python source of ``n`` functions, with what compaction would change in a text that is
    not a recognised file view: a run of ``=`` in a string literal, tabs, trailing blanks,
    padding, sometimes CRLF line ends."""
    parts = ['"""Module docstring."""', "import os", ""]
    for k in range(n):
        parts += [
            f"def handler_{k}(event, root):",
            f'    """Handle event {k} under root."""',
            f'    banner = "{"=" * draw(_ints(8, 30))}"  ',
            f"    path = os.path.join(root,\t'item_{k}')",
            f"    total   =   {1000 + k}    # aligned",
            "    return banner, path, total",
            "",
        ]
    eol = "\r\n" if _one_in(draw, 3) else "\n"
    return eol.join(parts)


def _session_result(
    draw: st.DrawFn, kind: str, k: int, earlier: list[str]
) -> tuple[str, dict[str, Any], str]:
    """(tool, input, result text) of the ``k``-th call of a session."""
    if kind == "repeat":
        banner = draw(_choice(_BANNERS))
        return "ssh", {"cmd": f"uname -{k}"}, f"output of call {k}\n{banner}"
    if kind == "log":
        n = draw(_ints(5, 700))
        ansi = draw(_BOOL)
        lines = []
        for i in range(n):
            line = f"2026-01-02 10:{i % 60:02d}:00 INFO worker-{i % 7} step {i} ok   "
            if i % 97 == 13:
                line = f"ERROR: job {k}-{i} failed: disk quota exceeded on /var/data/{i}"
            if ansi:
                line = f"\x1b[32m{line}\x1b[0m"
            lines.append(line)
        eol = "\r\n" if _one_in(draw, 4) else "\n"
        return "bash", {"command": f"make test JOB={k}"}, eol.join(lines)
    if kind == "rows":
        n = draw(_ints(1, 250))
        rows = [
            {"id": i, "sku": f"SKU-{i:05d}", "status": "open" if i % 5 else "late", "qty": i * 3}
            for i in range(n)
        ]
        return "sql", {"q": f"select * from orders -- {k}"}, json.dumps(rows, indent=2)
    if kind == "source":
        text = _source(draw, draw(_ints(2, 120)))
        if draw(_BOOL):  # a recognised file view: slice_code may slice it, compaction keeps it
            return "read_file", {"path": f"src/app_{k}.py"}, text
        command = draw(_choice(("sed -n 1,400p", "head -n 400", "git show HEAD:")))
        return "bash", {"command": f"{command} src/app_{k}.py"}, text
    if kind == "again" and earlier:
        return "bash", {"command": f"cat out_{k}.txt"}, draw(_choice(tuple(earlier)))
    if kind == "table":
        rows = [
            f"| item_{i:<12} |   {i * 7:>8} | {'yes' if i % 2 else 'no':<6} |" for i in range(60)
        ]
        return "bash", {"command": "report"}, "| name | count | ok |\n" + "\n".join(rows)
    if kind == "envelope":
        inner = "\n".join(f"doc line {i}: see section {i}.{k}" for i in range(draw(_ints(1, 80))))
        return "mcp__docs__fetch", {"page": k}, json.dumps({"type": "text", "text": inner})
    return "bash", {"command": f"echo {k}"}, draw(_TEXTS)


@st.composite
def tool_sessions(draw: st.DrawFn, min_calls: int = 2, max_calls: int = 8) -> Request:
    """A coding agent's session: a task, then one tool call per assistant turn, whose results
    are of the kinds the transforms rewrite: lines an earlier result printed (a banner), long
    logs (colour codes, CRLF, trailing blanks, error lines), pretty JSON rows, Python source
    read through a recognised file view or through ``sed``/``head``/``git show``, a result
    repeated whole, a padded table, an MCP text envelope, plain short text. The request ends
    with the user message holding the last result; each prefix that ends with a user message
    is a turn of the session."""
    messages: list[Message] = [{"role": "user", "content": "Fix the failing job and report."}]
    earlier: list[str] = []
    n = draw(_ints(min_calls, max_calls))
    for k in range(n):
        kind = draw(_choice(_SESSION_KINDS))
        name, args, text = _session_result(draw, kind, k, earlier)
        earlier.append(text)
        call_id = f"toolu_{k:03d}"
        messages += [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Step {k}: {name}."},
                    {"type": "tool_use", "id": call_id, "name": name, "input": args},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": text}],
            },
        ]
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "system": "You are a coding agent.",
        "tools": [
            {"name": t, "description": f"The {t} tool.", "input_schema": {"type": "object"}}
            for t in _SESSION_TOOLS
        ],
        "messages": messages,
    }


# --------------------------------------------------------------------------------------------
# Mutations: requests broken in one to three places
# --------------------------------------------------------------------------------------------

# What a place is set to: numbers JSON cannot carry, lone surrogates, wrong types, empties.
_BAD_VALUES: tuple[Any, ...] = (
    float("nan"),
    float("inf"),
    float("-inf"),
    "\ud83d",
    "half an emoji \ud83d here",
    "\udfff",
    None,
    [],
    {},
    [1, "x"],
    {"k": "v"},
    {"type": ["text"], "text": "x"},
    0,
    -1,
    True,
    "",
    "   ",
    "x" * 300,
    1e308,
    [[[[[]]]]],
    "<dynamic>",
)
# What a block's ``type`` is set to.
_BAD_TYPES: tuple[Any, ...] = (["text"], {"a": 1}, 3, None, True, "no_such_block", "", 1.5)
_BAD_KEYS: tuple[str, ...] = ("\ud800", "key \udc00 here", "", "type", "cache_control", "text")
_MUTATIONS = ("value", "type", "add_key", "drop_key", "wrap", "duplicate")
# (indexes into the tuples: their lists and dicts cannot be hashed for _choice)
_BAD_VALUE_INDEX = st.integers(0, len(_BAD_VALUES) - 1)
_BAD_TYPE_INDEX = st.integers(0, len(_BAD_TYPES) - 1)


def _places(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in ``value``, containers before what they hold."""
    out: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                out.append((item, key))
                stack.append(item[key])
        elif isinstance(item, list):
            for i, element in enumerate(item):
                out.append((item, i))
                stack.append(element)
    return out


def _mutate(draw: st.DrawFn, request: Request) -> None:
    """Break ``request`` in one place, in place."""
    places = _places(request)
    container, key = places[draw(_ints(0, len(places) - 1))]
    kind = draw(_choice(_MUTATIONS))
    if kind == "value":
        container[key] = copy.deepcopy(_BAD_VALUES[draw(_BAD_VALUE_INDEX)])
    elif kind == "type":
        dicts = [c for c, k in places if isinstance(c, dict) and k == "type"]
        target = dicts[draw(_ints(0, len(dicts) - 1))] if dicts else request
        target["type"] = copy.deepcopy(_BAD_TYPES[draw(_BAD_TYPE_INDEX)])
    elif kind == "add_key":
        dicts = [c for c, _ in places if isinstance(c, dict)] or [request]
        target = dicts[draw(_ints(0, len(dicts) - 1))]
        target[draw(_choice(_BAD_KEYS))] = copy.deepcopy(_BAD_VALUES[draw(_BAD_VALUE_INDEX)])
    elif kind == "drop_key" and isinstance(container, dict):
        del container[key]
    elif kind == "wrap":
        container[key] = [container[key]]
    elif kind == "duplicate" and isinstance(container, list):
        container.insert(key, copy.deepcopy(container[key]))


@st.composite
def broken_requests(draw: st.DrawFn, max_mutations: int = 3) -> Request:
    """A valid request (:func:`requests`, sometimes with breakpoints, sometimes with the odd
    tool results of :func:`odd_requests`) broken in 0 to ``max_mutations`` places: a value
    replaced by NaN, infinity, a lone surrogate or the wrong type; a block's ``type`` that is
    not a string; a key added (with a lone surrogate in it) or dropped; a value wrapped in a
    list; a list element doubled. Some stay valid (no mutation, or a harmless one)."""
    if draw(_BOOL):
        request = draw(requests(max_turns=4, with_cache_control=draw(_BOOL)))
    else:
        request = draw(odd_requests())
    for _ in range(draw(_ints(0, max_mutations))):
        _mutate(draw, request)
    return request
