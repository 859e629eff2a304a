"""A reply as the API streams it: the Server-Sent Events of ``"stream": true``.

The event flow follows https://docs.claude.com/en/docs/build-with-claude/streaming.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["encode_event", "stream_events"]

Event = tuple[str, dict[str, Any]]
"""An event's name and its data."""


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", text)


def stream_events(message: Mapping[str, Any]) -> list[Event]:
    """The Server-Sent Events that stream ``message``, as the API sends them.

    ``message_start`` (the message without content, with input usage), a ``ping``, then per
    block ``content_block_start`` / ``content_block_delta``... / ``content_block_stop``, then
    ``message_delta`` (stop_reason, cumulative usage) and ``message_stop``.
    """
    usage = dict(message["usage"])
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))},
    }
    for key in ("stop_details", "container"):
        start.pop(key, None)
    events: list[Event] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]

    def delta(index: int, payload: dict[str, Any]) -> None:
        event = {"type": "content_block_delta", "index": index, "delta": payload}
        events.append(("content_block_delta", event))

    for index, block in enumerate(message["content"]):
        kind = block.get("type")
        if kind == "text":
            first = {key: value for key, value in block.items() if key != "citations"}
            first["text"] = ""
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
            )
            for piece in _words(block["text"]):
                delta(index, {"type": "text_delta", "text": piece})
            for citation in block.get("citations") or []:
                delta(index, {"type": "citations_delta", "citation": citation})
        elif kind in ("tool_use", "server_tool_use"):
            first = {**block, "input": {}}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
            )
            text = json.dumps(block.get("input", {}), ensure_ascii=False)
            pieces = _chunks(text, 12) if block.get("input") else [""]
            for piece in pieces:
                delta(index, {"type": "input_json_delta", "partial_json": piece})
        elif kind == "thinking":
            first = {**block, "thinking": "", "signature": ""}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
            )
            for piece in _words(block["thinking"]):
                delta(index, {"type": "thinking_delta", "thinking": piece})
            delta(index, {"type": "signature_delta", "signature": block["signature"]})
        else:  # redacted_thinking, server tool results...: sent whole
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": dict(block)},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))

    final_usage = {
        key: usage[key]
        for key in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        )
        if key in usage
    }
    final_delta: dict[str, Any] = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": message.get("stop_sequence"),
    }
    for key in ("stop_details", "container"):
        if message.get(key) is not None:
            final_delta[key] = message[key]
    events.append(
        ("message_delta", {"type": "message_delta", "delta": final_delta, "usage": final_usage})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def encode_event(name: str, data: Mapping[str, Any]) -> bytes:
    """One event in the text/event-stream format."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
