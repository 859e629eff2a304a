"""Checks that tests/strategies.py generates what it promises.

The checker here is written independently of tidyctx (whose own validator is a separate
piece of work): it encodes the Messages API rules the strategies claim to respect.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import re
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

import strategies as gen  # tests/ has no __init__.py: pytest puts it on sys.path

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_USE_ID = re.compile(r"^toolu_[a-zA-Z0-9_-]+$")
USER_BLOCK_TYPES = {"text", "image", "tool_result"}
ASSISTANT_BLOCK_TYPES = {"text", "thinking", "redacted_thinking", "tool_use"}
THINKING_TYPES = {"thinking", "redacted_thinking"}
CACHEABLE = {"text", "image", "tool_use", "tool_result"}
KNOWN_TOP_LEVEL = {
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "temperature",
    "metadata",
    "stop_sequences",
    "output_config",
    "diagnostics",
    "context_management",
}

FAST = settings(max_examples=100)


class Invalid(AssertionError):
    pass


def require(condition: object, message: str) -> None:
    if not condition:
        raise Invalid(message)


# --------------------------------------------------------------------------------------------
# Independent checker
# --------------------------------------------------------------------------------------------


def check_text(text: object, where: str) -> None:
    require(isinstance(text, str) and text.strip(), f"{where}: empty or non-string text {text!r}")


def check_png(data: bytes) -> tuple[int, int]:
    require(data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature")
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        require(zlib.crc32(tag + body) & 0xFFFFFFFF == crc, f"PNG CRC of {tag!r}")
        chunks.append((tag, body))
        pos += 12 + length
    require(chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", "PNG chunk order")
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    require(width > 0 and height > 0 and depth == 8 and interlace == 0, "PNG header")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    raw = zlib.decompress(b"".join(body for tag, body in chunks if tag == b"IDAT"))
    require(len(raw) == height * (1 + width * channels), "PNG pixel data size")
    require(all(raw[y * (1 + width * channels)] <= 4 for y in range(height)), "PNG filters")
    return width, height


def check_jpeg(data: bytes) -> tuple[int, int]:
    require(data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "JPEG SOI/EOI markers")
    pos = 2
    while pos < len(data):
        require(data[pos] == 0xFF, "JPEG marker")
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in (0xC0, 0xC1, 0xC2):
            _, height, width = struct.unpack(">BHH", data[pos + 4 : pos + 9])
            require(width > 0 and height > 0, "JPEG size")
            return width, height
        require(marker != 0xDA, "JPEG scan before frame header")
        pos += 2 + length
    raise Invalid("JPEG without frame header")


def decode_image(block: dict[str, Any]) -> tuple[str, int, int] | None:
    """Validate an image block; (media_type, width, height) for base64 sources."""
    source = block["source"]
    if source["type"] == "url":
        require(re.match(r"^https://\S+$", source["url"]), f"image url {source['url']!r}")
        return None
    require(source["type"] == "base64", "image source type")
    try:
        data = base64.b64decode(source["data"], validate=True)
    except binascii.Error as exc:
        raise Invalid(f"image base64: {exc}") from exc
    media_type = source["media_type"]
    if media_type == "image/png":
        return (media_type, *check_png(data))
    require(media_type == "image/jpeg", f"image media type {media_type}")
    return (media_type, *check_jpeg(data))


def check_block(block: dict[str, Any], where: str) -> None:
    kind = block["type"]
    if "cache_control" in block:
        require(kind in CACHEABLE, f"{where}: cache_control on {kind}")
        require(block["cache_control"] == {"type": "ephemeral"}, f"{where}: cache_control value")
    if kind == "text":
        check_text(block["text"], where)
    elif kind == "image":
        decode_image(block)
    elif kind == "thinking":
        check_text(block["thinking"], where)
        require(isinstance(block["signature"], str) and block["signature"], f"{where}: signature")
        base64.b64decode(block["signature"], validate=True)
    elif kind == "redacted_thinking":
        require(isinstance(block["data"], str) and block["data"], f"{where}: redacted data")
    elif kind == "tool_result":
        content = block["content"]
        if isinstance(content, str):
            check_text(content, where)
        else:
            require(isinstance(content, list) and content, f"{where}: tool_result content")
            for inner in content:
                require(inner["type"] in ("text", "image"), f"{where}: {inner['type']} in result")
                check_block(inner, where)
        require(block.get("is_error", True) is True, f"{where}: is_error must be true if set")
    elif kind == "tool_use":
        require(TOOL_USE_ID.match(block["id"]), f"{where}: tool_use id {block['id']!r}")
        require(isinstance(block["input"], dict), f"{where}: tool_use input")
    else:
        raise Invalid(f"{where}: unknown block type {kind}")


def check_tool_input(value: Any, schema: dict[str, Any], where: str) -> None:
    if "enum" in schema:
        require(value in schema["enum"], f"{where}: {value!r} not in enum")
        return
    kind = schema["type"]
    if kind == "object":
        require(isinstance(value, dict), f"{where}: not an object")
        properties = schema.get("properties", {})
        require(set(value) <= set(properties), f"{where}: unknown keys {set(value)}")
        require(set(schema.get("required", [])) <= set(value), f"{where}: missing required")
        for key, item in value.items():
            check_tool_input(item, properties[key], f"{where}.{key}")
    elif kind == "array":
        require(isinstance(value, list), f"{where}: not an array")
        for item in value:
            check_tool_input(item, schema["items"], where)
    elif kind == "string":
        require(isinstance(value, str), f"{where}: not a string")
    elif kind == "integer":
        require(isinstance(value, int) and not isinstance(value, bool), f"{where}: not int")
    elif kind == "number":
        require(isinstance(value, int | float) and not isinstance(value, bool), where)
    elif kind == "boolean":
        require(isinstance(value, bool), f"{where}: not a boolean")
    else:
        raise Invalid(f"{where}: unknown schema type {kind}")


def check_tools(tools: Any) -> dict[str, dict[str, Any]]:
    require(isinstance(tools, list), "tools must be a list")
    by_name: dict[str, dict[str, Any]] = {}
    for tool in tools:
        name = tool["name"]
        require(isinstance(name, str) and TOOL_NAME.match(name), f"tool name {name!r}")
        require(name not in by_name, f"duplicate tool name {name!r}")
        by_name[name] = tool
        check_text(tool["description"], f"tool {name} description")
        schema = tool["input_schema"]
        require(schema["type"] == "object", "input_schema type")
        require(isinstance(schema["properties"], dict), "input_schema properties")
        require(set(schema["required"]) <= set(schema["properties"]), "required ⊆ properties")
        require(tool.get("type", "custom") == "custom", "tool type")
        if "cache_control" in tool:
            require(tool["cache_control"] == {"type": "ephemeral"}, "tool cache_control")
    return by_name


def check_messages(
    messages: Any, tools: dict[str, dict[str, Any]] | None = None
) -> dict[str, list[str]]:
    """Validate a conversation; ``tools=None`` skips the tool-name check.

    System messages sit after a user message and are checked apart; the user and assistant
    turns around them alternate as if they were not there."""
    require(isinstance(messages, list) and messages, "messages must be a non-empty list")
    require(messages[0]["role"] == "user", "first message must be from the user")
    for i, message in enumerate(messages):
        if message["role"] == "system":
            check_system_message(message, f"messages[{i}]", tools)
            require(messages[i - 1]["role"] in ("user", "system"), "system after a user message")
    messages = [m for m in messages if m["role"] != "system"]
    require(messages[-1]["role"] == "user", "last message must be from the user")
    seen_ids: set[str] = set()
    pending: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        require(set(message) == {"role", "content"}, f"{where}: keys {set(message)}")
        expected = "user" if i % 2 == 0 else "assistant"
        require(message["role"] == expected, f"{where}: roles must alternate")
        content = message["content"]
        if message["role"] == "user":
            if isinstance(content, str):
                check_text(content, where)
                blocks: list[dict[str, Any]] = []
            else:
                require(isinstance(content, list) and content, f"{where}: empty content")
                blocks = content
            results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
            require(len(results) == len(pending), f"{where}: {len(pending)} results expected")
            require(sorted(results) == sorted(pending), f"{where}: results don't match calls")
            require(
                all(b["type"] == "tool_result" for b in blocks[: len(results)]),
                f"{where}: tool_results must come first",
            )
            for b in blocks:
                require(b["type"] in USER_BLOCK_TYPES, f"{where}: {b['type']} in user message")
                check_block(b, where)
            pending = []
        else:
            require(isinstance(content, list) and content, f"{where}: assistant content")
            types = [b["type"] for b in content]
            n_thinking = next(
                (k for k, t in enumerate(types) if t not in THINKING_TYPES), len(types)
            )
            require(n_thinking < len(types), f"{where}: only thinking")
            require(
                not THINKING_TYPES & set(types[n_thinking:]),
                f"{where}: thinking blocks must come first",
            )
            for b in content:
                require(b["type"] in ASSISTANT_BLOCK_TYPES, f"{where}: {b['type']} from assistant")
                check_block(b, where)
                if b["type"] == "tool_use":
                    require(b["id"] not in seen_ids, f"{where}: duplicate tool_use id")
                    seen_ids.add(b["id"])
                    pending.append(b["id"])
                    if tools is not None:
                        require(b["name"] in tools, f"{where}: unknown tool {b['name']!r}")
                        check_tool_input(b["input"], tools[b["name"]]["input_schema"], where)
    require(not pending, "unanswered tool_use at the end")
    return {"tool_use_ids": sorted(seen_ids)}


def check_system_message(
    message: dict[str, Any], where: str, tools: dict[str, dict[str, Any]] | None
) -> None:
    require(set(message) <= {"role", "content", "clear_at", "output_config"}, f"{where}: keys")
    require(message.get("clear_at", "never") in ("next_user_message", "never"), f"{where}")
    content = message["content"]
    if isinstance(content, str):
        check_text(content, where)
        return
    require(isinstance(content, list) and content, f"{where}: empty content")
    for block in content:
        if block["type"] == "text":
            check_block(block, where)
            continue
        require(block["type"] in ("tool_addition", "tool_removal"), f"{where}: {block['type']}")
        ref = block["tool"]
        require(ref["type"] == "tool_reference", f"{where}: tool reference")
        require(tools is None or ref["name"] in tools, f"{where}: unknown tool {ref['name']!r}")


def iter_blocks(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every content block of a request, nested tool_result content included."""
    if isinstance(request.get("system"), list):
        yield from request["system"]
    for message in request["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                yield block
                if block["type"] == "tool_result" and isinstance(block["content"], list):
                    yield from block["content"]


def count_key(value: Any, key: str) -> int:
    if isinstance(value, dict):
        return (key in value) + sum(count_key(v, key) for v in value.values())
    if isinstance(value, list):
        return sum(count_key(v, key) for v in value)
    return 0


def check_request(request: Any, *, cache_control: bool = False) -> None:
    require(isinstance(request, dict), "request must be a dict")
    require(set(request) <= KNOWN_TOP_LEVEL, f"unexpected keys {set(request) - KNOWN_TOP_LEVEL}")
    require(request["model"] in gen.MODELS, f"model {request['model']!r}")
    max_tokens = request["max_tokens"]
    require(isinstance(max_tokens, int) and 1 <= max_tokens <= 8192, "max_tokens")
    json.dumps(request, allow_nan=False)  # serialisable as-is

    tools: dict[str, dict[str, Any]] = {}
    if "tools" in request:
        require(request["tools"], "tools present but empty")
        tools = check_tools(request["tools"])
    check_messages(request["messages"], tools)

    if "system" in request:
        system = request["system"]
        if isinstance(system, str):
            check_text(system, "system")
        else:
            require(isinstance(system, list) and system, "system blocks")
            for block in system:
                require(block["type"] == "text", "system block type")
                check_block(block, "system")
    if "tool_choice" in request:
        require(request["tool_choice"] == {"type": "auto"} and tools, "tool_choice needs tools")
    if "temperature" in request:
        require(0.0 <= request["temperature"] <= 1.0, "temperature range")
    if "thinking" in request:
        thinking = request["thinking"]
        require(thinking["type"] == "enabled", "thinking type")
        require(1024 <= thinking["budget_tokens"] < max_tokens, "budget_tokens < max_tokens")
        require("temperature" not in request, "temperature is incompatible with thinking")
        for message in request["messages"]:
            if message["role"] != "assistant":
                continue
            types = [b["type"] for b in message["content"]]
            if "tool_use" in types:
                require(types[0] in THINKING_TYPES, "tool-use turns must start with thinking")
    if "metadata" in request:
        require(isinstance(request["metadata"].get("user_id"), str), "metadata.user_id")

    markers = count_key(request, "cache_control")
    if cache_control:
        require(markers <= 4, f"{markers} cache_control markers")
        for message in request["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block["type"] == "tool_result" and isinstance(block["content"], list):
                    require(
                        not any("cache_control" in b for b in block["content"]),
                        "cache_control nested in tool_result",
                    )
    else:
        require(markers == 0, "cache_control without with_cache_control=True")


# --------------------------------------------------------------------------------------------
# The checker rejects what it should (so green tests mean something)
# --------------------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "tools": [
        {
            "name": "bash",
            "description": "Run a command.",
            "input_schema": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        }
    ],
    "messages": [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Running."},
                {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}],
        },
    ],
}


THINKING: dict[str, Any] = {"type": "thinking", "thinking": "Hmm."}
ENABLED: dict[str, Any] = {"type": "enabled", "budget_tokens": 1024}


def _broken(mutate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    request = copy.deepcopy(GOOD)
    mutate(request)
    return request


@pytest.mark.parametrize(
    "bad",
    [
        _broken(lambda r: r["messages"].pop()),  # ends on assistant, tool_use unanswered
        _broken(lambda r: r["messages"].insert(0, {"role": "assistant", "content": "x"})),
        _broken(lambda r: r["messages"][2]["content"].clear()),
        _broken(lambda r: r["messages"][2]["content"][0].update(tool_use_id="toolu_2")),
        _broken(lambda r: r["messages"][2]["content"].insert(0, {"type": "text", "text": "a"})),
        _broken(lambda r: r["messages"][1]["content"][1].update(name="zsh")),
        _broken(lambda r: r["messages"][1]["content"][1].update(input={})),
        _broken(lambda r: r["messages"][1]["content"][0].update(text=" \n")),
        _broken(lambda r: r["messages"][1]["content"].append({**THINKING, "signature": "AAAA"})),
        _broken(lambda r: r["messages"][1]["content"].insert(0, THINKING)),  # no signature
        _broken(lambda r: r["messages"][1].update(content=[{**THINKING, "signature": "AAAA"}])),
        _broken(lambda r: r["tools"].append(copy.deepcopy(r["tools"][0]))),
        _broken(lambda r: r["tools"][0].update(name="bad name")),
        _broken(lambda r: r.pop("tools")),
        _broken(lambda r: r.update(max_tokens=2048, thinking=ENABLED)),  # tool turn, no thinking
        _broken(lambda r: r.update(max_tokens=1024, thinking=ENABLED)),  # budget >= max_tokens
        _broken(lambda r: r.update(tool_choice={"type": "auto"}, tools=[])),
        _broken(lambda r: r.update(context_window=1)),  # a key no strategy promises
        _broken(lambda r: r["messages"][0].update(content=[])),
        _broken(lambda r: r["messages"][1]["content"][0].update(cache_control={"type": "x"})),
        _broken(
            lambda r: r["messages"][0].update(
                content=[
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    }
                ]
            )
        ),
    ],
)
def test_checker_rejects_invalid_requests(bad: dict[str, Any]) -> None:
    check_request(GOOD)
    with pytest.raises((Invalid, KeyError, IndexError)):
        check_request(bad)


def test_checker_rejects_duplicate_tool_use_ids() -> None:
    messages = copy.deepcopy(GOOD["messages"] + GOOD["messages"][1:])
    check_messages(messages[:3])
    with pytest.raises(Invalid, match="duplicate tool_use id"):
        check_messages(messages)


# --------------------------------------------------------------------------------------------
# Validity of everything generated
# --------------------------------------------------------------------------------------------


@FAST
@given(gen.requests())
def test_requests_are_valid(request: dict[str, Any]) -> None:
    check_request(request)


@FAST
@given(gen.requests(with_cache_control=True))
def test_cache_control_markers_are_valid(request: dict[str, Any]) -> None:
    check_request(request, cache_control=True)
    candidates = len(request.get("tools", [])) + isinstance(request.get("system"), list)
    for message in request["messages"]:
        if isinstance(message["content"], list):
            candidates += sum(b["type"] in CACHEABLE for b in message["content"])
    assert (1 if candidates else 0) <= count_key(request, "cache_control") <= 4


@FAST
@given(gen.message_lists())
def test_message_lists_are_valid(messages: list[dict[str, Any]]) -> None:
    check_messages(messages)
    assert len(messages) % 2 == 1 and len(messages) <= 15


@FAST
@given(st.data())
def test_conversations_respect_turn_bounds_and_given_tools(data: st.DataObject) -> None:
    low = data.draw(st.integers(1, 5))
    high = data.draw(st.integers(low, 6))
    tool_defs = data.draw(gen.tools(min_size=1, max_size=3))
    messages = data.draw(gen.conversations(low, high, tool_defs=tool_defs))
    check_messages(messages, check_tools(tool_defs))
    assert low <= (len(messages) + 1) // 2 <= high


@FAST
@given(gen.tools(min_size=2, max_size=6))
def test_tools_are_valid(tools: list[dict[str, Any]]) -> None:
    assert 2 <= len(tools) <= 6
    check_tools(tools)
    json.dumps(tools, allow_nan=False)


@FAST
@given(gen.systems())
def test_systems(system: Any) -> None:
    if system is None:
        return
    if isinstance(system, str):
        check_text(system, "system")
    else:
        assert system and all(b["type"] == "text" and set(b) == {"type", "text"} for b in system)
        for block in system:
            check_text(block["text"], "system")


@FAST
@given(st.one_of(gen.text_blocks(), gen.image_blocks(), gen.thinking_blocks()))
def test_single_blocks(block: dict[str, Any]) -> None:
    check_block(block, "block")
    assert "cache_control" not in block


@FAST
@given(gen.image_blocks())
def test_base64_images_decode(block: dict[str, Any]) -> None:
    decoded = decode_image(block)
    if decoded is not None:
        _, width, height = decoded
        assert 1 <= width <= 24 and 1 <= height <= 24


@pytest.mark.parametrize("gray", [0, 1, 127, 128, 129, 255])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (8, 8), (9, 17), (24, 3)])
def test_jpeg_and_png_builders(width: int, height: int, gray: int) -> None:
    assert check_jpeg(gen.jpeg_bytes(width, height, gray)) == (width, height)
    for color_type in (0, 2, 6):
        assert check_png(gen.png_bytes(width, height, color_type, bytes([gray]))) == (width, height)


@FAST
@given(gen.growing_conversations())
def test_growing_conversations(requests: list[dict[str, Any]]) -> None:
    assert len(requests) >= 2
    first = requests[0]
    for k, request in enumerate(requests):
        check_request(request)
        turns = [m for m in request["messages"] if m["role"] != "system"]
        assert len(turns) == 2 * k + 1
        assert {key: v for key, v in request.items() if key != "messages"} == {
            key: v for key, v in first.items() if key != "messages"
        }
        assert list(request) == list(first)  # same key order too
    for shorter, longer in itertools.pairwise(requests):
        n = len(shorter["messages"])
        assert longer["messages"][:n] == shorter["messages"]
        roles = [m["role"] for m in longer["messages"][n:]]
        assert roles in (["assistant", "user"], ["assistant", "user", "system"])
    # Independent copies: mutating one request leaves the others alone.
    last = copy.deepcopy(requests[-1])
    requests[0]["messages"][0]["content"] = "mutated"
    requests[0]["model"] = "mutated"
    assert requests[-1] == last


@settings(max_examples=30)
@given(gen.growing_conversations(min_turns=3, max_turns=4))
def test_growing_conversations_turn_bounds(requests: list[dict[str, Any]]) -> None:
    assert 3 <= len(requests) <= 4


# --------------------------------------------------------------------------------------------
# Variety: the strategies really produce the structures the transforms must handle
# --------------------------------------------------------------------------------------------


def features(request: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    messages = request["messages"]
    found.add(f"system:{type(request.get('system')).__name__}")
    found.update(f"key:{k}" for k in request)
    if list(request)[:2] != ["model", "max_tokens"]:
        found.add("shuffled_top_level")
    if len(messages) == 1:
        found.add("single_message")
    if len(messages) >= 9:
        found.add("long_conversation")
    for tool in request.get("tools", []):
        if next(iter(tool)) != "name":
            found.add("shuffled_tool_keys")
    for i, message in enumerate(messages):
        content = message["content"]
        if isinstance(content, str):
            found.add(f"{message['role']}_string_content")
            continue
        calls = [b["id"] for b in content if b["type"] == "tool_use"]
        if len(calls) >= 2:
            found.add("parallel_tool_calls")
            results = [b["tool_use_id"] for b in messages[i + 1]["content"][: len(calls)]]
            if results != calls:
                found.add("tool_results_reordered")
        if calls and content[0]["type"] == "tool_use":
            found.add("tool_use_without_text")
        if content[-1]["type"] != "tool_result" and content[0]["type"] == "tool_result":
            found.add("text_after_tool_results")
    for block in iter_blocks(request):
        found.add(f"block:{block['type']}")
        if block["type"] == "tool_result":
            if block.get("is_error"):
                found.add("is_error")
            if isinstance(block["content"], list):
                if any(b["type"] == "image" for b in block["content"]):
                    found.add("image_in_tool_result")
            else:
                found.add("tool_result_string")
        if block["type"] == "image":
            source = block["source"]
            found.add(f"image:{source.get('media_type', source['type'])}")
        text = block.get("text") or block.get("thinking") or ""
        if any(ord(c) > 0x2FFF for c in text):
            found.add("text:cjk_or_emoji")
        if any(0x300 <= ord(c) <= 0x36F for c in text):
            found.add("text:combining")
        if "\n" in text:
            found.add("text:newline")
        if '{"' in text:
            found.add("text:json")
        if any(len(line) >= 300 for line in text.splitlines()):
            found.add("text:long_line")
    return found


EXPECTED_FEATURES = {
    "system:NoneType",
    "system:str",
    "system:list",
    "key:tools",
    "key:tool_choice",
    "key:thinking",
    "key:temperature",
    "key:metadata",
    "key:output_config",
    "key:diagnostics",
    "key:context_management",
    "shuffled_top_level",
    "shuffled_tool_keys",
    "single_message",
    "long_conversation",
    "user_string_content",
    "parallel_tool_calls",
    "tool_results_reordered",
    "tool_use_without_text",
    "text_after_tool_results",
    "is_error",
    "image_in_tool_result",
    "tool_result_string",
    "block:thinking",
    "block:redacted_thinking",
    "block:tool_use",
    "image:image/png",
    "image:image/jpeg",
    "image:url",
    "text:cjk_or_emoji",
    "text:combining",
    "text:newline",
    "text:json",
    "text:long_line",
}


def test_requests_have_the_promised_variety() -> None:
    seen: Counter[str] = Counter()

    # Hypothesis also draws literals from the project modules that are loaded, so what it
    # generates depends on which test modules were imported first: 400 examples keep every
    # feature well above the bar in any import order (about 25 for the rarest).
    @settings(
        max_examples=400,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
    )
    @given(gen.requests())
    def collect(request: dict[str, Any]) -> None:
        seen.update(features(request))

    collect()
    missing = EXPECTED_FEATURES - set(seen)
    assert not missing, f"never generated: {sorted(missing)}"
    rare = {f: seen[f] for f in EXPECTED_FEATURES if seen[f] < 3}
    assert not rare, f"generated almost never: {rare}"
    # The structures transforms care most about are common, not one-offs.
    for feature in ("parallel_tool_calls", "block:thinking", "system:str", "system:list"):
        assert seen[feature] >= 15, (feature, seen[feature])


def test_find_locates_rare_structures() -> None:
    # Thinking enabled together with tool use (the strictest combination) is reachable.
    def thinking_with_tools(request: dict[str, Any]) -> bool:
        return "thinking" in request and any(b["type"] == "tool_use" for b in iter_blocks(request))

    quick = settings(max_examples=500, database=None, phases=[Phase.generate], derandomize=True)
    found = find(gen.requests(), thinking_with_tools, settings=quick)
    check_request(found)


def test_shrink_target_is_a_minimal_request() -> None:
    # Hypothesis generates the all-simplest choice sequence first: it is what shrinking heads
    # towards, and it must be the plainest request (one short user turn, no optional keys).
    first = settings(max_examples=1, database=None, phases=[Phase.generate])
    minimal = find(gen.requests(), lambda _: True, settings=first)
    assert minimal == {
        "model": gen.MODELS[0],
        "max_tokens": 1,
        "messages": [{"role": "user", "content": minimal["messages"][0]["content"]}],
    }
    assert isinstance(minimal["messages"][0]["content"], str)
    assert len(minimal["messages"][0]["content"]) < 40
