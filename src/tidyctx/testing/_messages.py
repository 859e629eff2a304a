"""What the local server answers, in the Messages API's terms.

Validation of a request, the reply types and scripted failures, token counting, ``usage``
with simulated prompt caching, and the message that answers a request, as documented in
https://docs.claude.com/en/api/messages. Nothing here speaks HTTP.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias

from tidyctx._request import ValidationError, block_hash, canonical_json, validate
from tidyctx._shapes import CONTEXT_EDITS, EFFORTS, THINKING_TYPES
from tidyctx.cachesim import CacheModel, layout
from tidyctx.testing._summarizer import is_summary_call, summary_responder
from tidyctx.tokens import LocalCounter

__all__ = [
    "DEFAULT_MESSAGES",
    "ERROR_TYPES",
    "Fail",
    "Hang",
    "MessagesAPI",
    "Reply",
    "Responder",
    "ScriptItem",
    "TokenCounter",
    "UsageHook",
    "default_counter",
    "error_type_for",
]

Reply: TypeAlias = str | Sequence[Mapping[str, Any] | str] | Mapping[str, Any]
"""What the server answers a valid request with.

A ``str`` becomes one text block; a list holds content blocks (bare strings in it become text
blocks); a mapping with ``content`` (or ``"type": "message"``) is a full message whose keys
(``stop_reason``, ``usage``, ``id``...) override the defaults; any other mapping is one block.
Missing ``tool_use`` ids and ``thinking`` signatures are filled in deterministically.
"""

Responder: TypeAlias = Callable[[dict[str, Any]], Reply]
"""Called with (a copy of) each valid request body that no scripted reply answers."""

UsageHook: TypeAlias = Callable[[dict[str, Any]], Mapping[str, Any]]
"""Called with (a copy of) each answered request body; its keys override the default usage.

A hook replaces the built-in prompt-cache simulation (the server then reports no cache use
besides what the hook gives).

If it gives ``cache_creation_input_tokens`` but no ``cache_creation`` breakdown, the whole
amount is reported as 5-minute writes. ``output_tokens`` is counted from the reply unless the
hook gives it.
"""

# HTTP status -> error.type, as listed in https://docs.claude.com/en/api/errors (the SDK's
# ErrorType names the same types).
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_MESSAGES: Mapping[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API",
    "permission_error": "Your API key does not have permission to use the specified resource",
    "not_found_error": "Not found",
    "conflict_error": "Conflict",
    "request_too_large": "Request exceeds the maximum allowed number of bytes",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}

# Keys that make up the prompt; the rest (max_tokens, stream, metadata...) cost no input tokens.
_PROMPT_KEYS = ("model", "system", "tools", "tool_choice", "messages")


def error_type_for(status: int) -> str:
    """The API's ``error.type`` for an HTTP status (other 4xx: invalid_request_error)."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


@dataclass(frozen=True, slots=True)
class Fail:
    """A scripted error response: ``Fail(529)``, ``Fail(429, headers={"retry-after": "1"})``.

    ``error_type`` defaults to the API's type for ``status`` (:data:`ERROR_TYPES`), ``message``
    to a stock message; ``delay`` seconds pass before the answer.
    """

    status: int
    error_type: str | None = None
    message: str | None = None
    headers: Mapping[str, str] | None = None
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    """A scripted stall: wait ``seconds``, then answer with ``then`` (default: as usual).

    Longer than the client's timeout, it makes the SDK raise ``anthropic.APITimeoutError``.
    :meth:`~tidyctx.testing.LocalServer.stop` cuts the wait short.
    """

    seconds: float
    then: Reply | Fail | None = None


ScriptItem: TypeAlias = Reply | Fail | Hang
"""What :meth:`~tidyctx.testing.LocalServer.script` queues: a reply, a failure or a stall."""


class TokenCounter(Protocol):
    """What the server counts tokens with (``tidyctx.tokens.LocalCounter`` by default)."""

    def count_request(self, request: dict[str, Any]) -> int: ...

    def count_text(self, text: str) -> int: ...


@functools.cache
def default_counter() -> TokenCounter:
    """The counter a server uses when given none: one ``LocalCounter`` shared by all."""
    return LocalCounter()


Endpoint: TypeAlias = Literal["messages", "count", "batch"]
"""Which request is validated: a message, a token count, or one request of a batch."""


class MessagesAPI:
    """The Messages API's behaviour for one server: validation, counts, usage and replies.

    ``responder``, ``usage_for``, ``counter``, ``cache`` and ``clock`` are
    :class:`~tidyctx.testing.LocalServer`'s options of the same names. One
    :class:`~tidyctx.cachesim.CacheModel` lives as long as this object (or until
    :meth:`reset_cache`).
    """

    def __init__(
        self,
        *,
        responder: Responder | None,
        usage_for: UsageHook | None,
        counter: TokenCounter | None,
        cache: bool,
        clock: Callable[[], float | datetime] | None,
    ) -> None:
        self.responder = responder
        self.usage_for = usage_for
        self.cache = cache
        self._counter = counter
        self._time = clock
        self._cache_model: CacheModel | None = None
        self._count_lock = threading.Lock()

    def reset_cache(self) -> None:
        """Forget the prompt cache."""
        with self._count_lock:
            self._cache_model = None

    # -- validation

    def problem(self, body: Any, endpoint: Endpoint) -> str | None:
        """Why the API would reject ``body`` (400), or None."""
        if not isinstance(body, dict):
            return f"The request body must be a JSON object, got {type(body).__name__}"
        if "model" not in body:
            return "model: Field required"
        if not isinstance(body["model"], str) or not body["model"]:
            return f"model: must be a non-empty string, got {body['model']!r}"
        max_tokens = body.get("max_tokens")
        if endpoint != "count":
            if "max_tokens" not in body:
                return "max_tokens: Field required"
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
                return f"max_tokens: must be an integer, got {max_tokens!r}"
            if max_tokens < 0 or (max_tokens == 0 and endpoint == "batch"):
                return f"max_tokens: must be at least 1, got {max_tokens}" + (
                    " (cache pre-warming with max_tokens 0 is not available in Message Batches)"
                    if max_tokens == 0
                    else ""
                )
            stream = body.get("stream")
            if stream is not None and not isinstance(stream, bool):
                return f"stream: must be a boolean, got {stream!r}"
            if endpoint == "batch":
                if stream:
                    return "stream: streaming is not supported in Message Batches requests"
                if body.get("speed") is not None:
                    return "speed: not supported in Message Batches requests"
            if max_tokens == 0:
                problem = _prewarm_problem(body)
                if problem:
                    return problem
        if "messages" not in body:
            return "messages: Field required"
        problem = _config_problem(body) or _thinking_problem(
            body, max_tokens if endpoint != "count" else None
        )
        if problem:
            return problem
        try:
            validate(body, strict=False)
            if endpoint != "count" and self._simulates_cache() and "cache_control" in body:
                # Where automatic caching puts its breakpoint, and whether that clashes with a
                # block's own ttl (a 400), is known only once the request is laid out; see
                # https://docs.claude.com/en/docs/build-with-claude/prompt-caching
                with self._count_lock:
                    layout(body, self._cache_counter())
        except ValidationError as err:
            return str(err)
        return None

    # -- replies

    def reply_for(self, body: dict[str, Any]) -> Reply:
        """The responder's reply to ``body`` (default: a summary for a summary call, else "ok")."""
        if self.responder is None:
            # A tidyctx.summarize() call gets a deterministic summary; anything else "ok".
            return summary_responder(body) if is_summary_call(body) else "ok"
        return self.responder(copy.deepcopy(body))

    def message(self, body: dict[str, Any], reply: Reply, *, service_tier: str) -> dict[str, Any]:
        """The message that answers the valid request ``body`` with ``reply``."""
        identity = {key: value for key, value in body.items() if key != "stream"}
        message_id = "msg_" + block_hash(identity)[:24]
        overrides: dict[str, Any] = {}
        raw_blocks: Sequence[Mapping[str, Any] | str]
        if isinstance(reply, str):
            raw_blocks = [reply]
        elif isinstance(reply, Mapping):
            if "content" in reply or reply.get("type") == "message":
                overrides = dict(reply)
                content = overrides.pop("content", [])
                raw_blocks = [content] if isinstance(content, str) else list(content)
            else:
                raw_blocks = [reply]
        else:
            raw_blocks = list(reply)
        prewarm = body["max_tokens"] == 0
        blocks = [] if prewarm else _complete_blocks(raw_blocks, message_id)
        usage = self._usage(body, blocks, prewarm=prewarm, service_tier=service_tier)
        usage.update(overrides.pop("usage", None) or {})
        if _thinking_omitted(body):
            # Billed as written, returned empty with its signature, as Claude Code 2.1.337
            # asks: https://platform.claude.com/docs/en/build-with-claude/thinking
            blocks = [
                {**block, "thinking": ""} if block.get("type") == "thinking" else block
                for block in blocks
            ]
        if prewarm:
            stop_reason = "max_tokens"
        elif any(block.get("type") == "tool_use" for block in blocks):
            stop_reason = "tool_use"
        else:
            stop_reason = "end_turn"
        message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        message.update(overrides)
        return message

    def _usage(
        self,
        body: dict[str, Any],
        blocks: list[dict[str, Any]],
        *,
        prewarm: bool,
        service_tier: str,
    ) -> dict[str, Any]:
        total = self.count_input(body)
        usage: dict[str, Any] = {
            "input_tokens": total,
            "output_tokens": 0 if prewarm else self._count_output(blocks),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": service_tier,
        }
        if self.usage_for is not None:
            extra = dict(self.usage_for(copy.deepcopy(body)))
            if "cache_creation_input_tokens" in extra and "cache_creation" not in extra:
                usage["cache_creation"] = {
                    "ephemeral_5m_input_tokens": extra["cache_creation_input_tokens"],
                    "ephemeral_1h_input_tokens": 0,
                }
            usage.update(extra)
        elif self.cache:
            usage.update(self._cache_usage(body, total))
        return usage

    # -- prompt caching

    def _simulates_cache(self) -> bool:
        return self.cache and self.usage_for is None

    def _cache_counter(self) -> LocalCounter | None:
        """The server's counter if the cache model can use it (a LocalCounter), else None."""
        counter = self._get_counter()
        return counter if isinstance(counter, LocalCounter) else None

    def _seconds(self) -> float:
        if self._time is None:
            return time.monotonic()
        now = self._time()
        return now.timestamp() if isinstance(now, datetime) else float(now)

    def _cache_usage(self, body: dict[str, Any], total: int) -> dict[str, Any]:
        """Cache reads and writes for ``body`` from the cache model; input is the rest of total.

        The cache model counts with the server's counter when that is a LocalCounter, so the
        parts add up to ``total`` exactly; with another counter its numbers are scaled to the
        counted total. Either way ``input + writes + reads == total``.
        """
        with self._count_lock:  # one call at a time, in clock order
            counter = self._cache_counter()
            if self._cache_model is None:
                self._cache_model = CacheModel(counter=counter)
            call = self._cache_model.call(body, self._seconds())
        usage = call.usage
        read = int(usage["cache_read_input_tokens"])
        write_1h = int(usage["cache_creation"]["ephemeral_1h_input_tokens"])
        write_5m = int(usage["cache_creation"]["ephemeral_5m_input_tokens"])
        modeled = call.layout.total
        if counter is None and modeled > 0 and modeled != total:
            read, write_1h, write_5m = (n * total // modeled for n in (read, write_1h, write_5m))
        read = min(read, total)
        write_1h = min(write_1h, total - read)
        write_5m = min(write_5m, total - read - write_1h)
        return {
            "input_tokens": total - read - write_1h - write_5m,
            "cache_creation_input_tokens": write_1h + write_5m,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write_5m,
                "ephemeral_1h_input_tokens": write_1h,
            },
        }

    # -- token counting

    def _get_counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = default_counter()
        return self._counter

    def count_input(self, body: Mapping[str, Any]) -> int:
        """The input tokens of ``body``'s prompt, as the server's counter counts them."""
        prompt = {key: copy.deepcopy(body[key]) for key in _PROMPT_KEYS if key in body}
        with self._count_lock:
            return int(self._get_counter().count_request(prompt))

    def _count_output(self, blocks: list[dict[str, Any]]) -> int:
        texts: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "thinking":
                texts.append(str(block.get("thinking", "")))
            elif kind in ("tool_use", "server_tool_use"):
                texts.append(str(block.get("name", "")))
                texts.append(json.dumps(block.get("input", {}), ensure_ascii=False))
            else:
                texts.append(canonical_json(block).decode("utf-8"))
        with self._count_lock:
            counter = self._get_counter()
            total = sum(int(counter.count_text(text)) for text in texts if text)
        # The API reports at least one output token, even for an empty reply (see usage in
        # https://docs.claude.com/en/api/messages).
        return max(1, total)


# ------------------------------------------------------------------------------ helpers


def _thinking_omitted(body: Mapping[str, Any]) -> bool:
    """Whether the request asks for thinking blocks without their text
    (``thinking.display: "omitted"``)."""
    thinking = body.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("display") == "omitted"


def _complete_blocks(
    raw_blocks: Sequence[Mapping[str, Any] | str], message_id: str
) -> list[dict[str, Any]]:
    """Copy the reply's blocks, filling tool_use ids/inputs and thinking signatures."""
    blocks: list[dict[str, Any]] = []
    for i, raw in enumerate(raw_blocks):
        block: dict[str, Any] = (
            {"type": "text", "text": raw} if isinstance(raw, str) else copy.deepcopy(dict(raw))
        )
        seed = block_hash([message_id, i, block])
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            prefix = "toolu_" if kind == "tool_use" else "srvtoolu_"
            block.setdefault("id", prefix + seed[:24])
            block.setdefault("input", {})
        elif kind == "thinking":
            block.setdefault("signature", "sig_" + seed)
        blocks.append(block)
    return blocks


def _prewarm_problem(body: Mapping[str, Any]) -> str | None:
    # max_tokens 0 pre-warms the prompt cache without generating; the API refuses it together
    # with these (https://docs.claude.com/en/docs/build-with-claude/prompt-caching).
    thinking = body.get("thinking")
    output_config = body.get("output_config")
    tool_choice = body.get("tool_choice")
    if body.get("stream"):
        return "max_tokens: 0 (cache pre-warming) cannot be used with stream"
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        return "max_tokens: 0 (cache pre-warming) cannot be used with thinking enabled"
    if isinstance(output_config, Mapping) and output_config.get("format") is not None:
        return "max_tokens: 0 (cache pre-warming) cannot be used with output_config.format"
    if isinstance(tool_choice, Mapping) and tool_choice.get("type") in ("any", "tool"):
        return f"max_tokens: 0 (cache pre-warming) cannot be used with tool_choice {tool_choice}"
    return None


def _config_problem(body: Mapping[str, Any]) -> str | None:
    """The settings the API checks against its param types (the SDK's
    ``BetaThinkingConfigParam``, ``BetaOutputConfigParam``, ``BetaContextManagementConfigParam``,
    tabled in ``tidyctx._shapes``)."""
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, Mapping) else None
        if kind not in THINKING_TYPES:
            return f"thinking.type: must be one of {', '.join(THINKING_TYPES)}, got {kind!r}"
    output_config = body.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, Mapping):
            return f"output_config: must be an object, got {type(output_config).__name__}"
        effort = output_config.get("effort")
        if effort is not None and effort not in EFFORTS:
            return f"output_config.effort: must be one of {', '.join(EFFORTS)}, got {effort!r}"
    management = body.get("context_management")
    if management is not None:
        edits = management.get("edits") if isinstance(management, Mapping) else None
        if edits is not None and not isinstance(edits, list):
            return "context_management.edits: must be a list"
        for i, edit in enumerate(edits or []):
            kind = edit.get("type") if isinstance(edit, Mapping) else None
            if kind not in CONTEXT_EDITS:
                return (
                    f"context_management.edits[{i}].type: must be one of "
                    f"{', '.join(CONTEXT_EDITS)}, got {kind!r}"
                )
            # https://platform.claude.com/docs/en/build-with-claude/context-editing
            if kind == "clear_thinking_20251015" and i > 0:
                return (
                    f"context_management.edits[{i}]: clear_thinking_20251015 must be listed first"
                )
    return None


def _thinking_problem(body: Mapping[str, Any], max_tokens: int | None) -> str | None:
    # The limits of extended thinking:
    # https://docs.claude.com/en/docs/build-with-claude/extended-thinking
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            return f"thinking.budget_tokens: must be an integer >= 1024, got {budget!r}"
        if max_tokens and budget >= max_tokens:
            return (
                f"max_tokens: must be greater than thinking.budget_tokens ({budget}), "
                f"got {max_tokens}"
            )
    tool_choice = body.get("tool_choice")
    if (
        kind in ("enabled", "adaptive")
        and isinstance(tool_choice, Mapping)
        and tool_choice.get("type") in ("any", "tool")
    ):
        return (
            f"tool_choice: {tool_choice.get('type')!r} cannot be used with thinking; "
            "use 'auto' or 'none'"
        )
    return None
