"""LangChain's ``AnthropicPromptCachingMiddleware`` as a benchmark peer, run for real, offline.

    python benchmarks/peers/langchain_caching.py TRACE.json [--turn 3] [--ttl 5m]

:func:`langchain_request` replays one request of a recorded conversation through
``langchain.agents.create_agent(ChatAnthropic(...), tools, system_prompt=...,
middleware=[AnthropicPromptCachingMiddleware(ttl=ttl)])`` and returns the JSON body that
LangChain's own code sends to the Messages API. The ``anthropic`` client inside the
``ChatAnthropic`` model talks to an ``httpx2.MockTransport``: it records the body and answers
with a canned text-only message, so the agent makes exactly one model call and stops. Nothing
is hand-built: message conversion, tool formatting and every ``cache_control`` marker come
from LangChain's code path, captured at the HTTP layer.

How the conversation is handed to LangChain (the form an ordinary LangChain agent's state
would hold after recording the same run):

- ``system`` → ``system_prompt`` (a string stays a string; text blocks become a
  ``SystemMessage`` with those blocks);
- ``tools`` → one ``StructuredTool(name, description, args_schema=<input_schema dict>)``
  each (``tools_as="tool"``, the default), because the middleware tags only ``BaseTool``
  objects; ``tools_as="dict"`` passes the dicts themselves, which ``create_agent`` treats as
  provider built-in tools and the middleware leaves untagged;
- user text, image and document blocks → ``HumanMessage`` (string content stays a string);
- ``tool_result`` blocks → ``ToolMessage(content, tool_call_id, name, status="error" if
  is_error)``, in their order within the user message;
- assistant messages → the ``AIMessage`` that ``ChatAnthropic`` itself builds from an API
  response with that content (``ChatAnthropic._format_output``): content blocks, with
  ``tool_calls`` extracted from the ``tool_use`` blocks, a lone text block as a string.

Any ``cache_control`` already in the input is dropped first: the peer places its own.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import anthropic
import httpx2
import langchain_core.messages.content as lc_content
from anthropic.types import Message
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langsmith.run_helpers import tracing_context
from pydantic import SecretStr

__all__ = ["Recorder", "ToolsAs", "answered", "langchain_request", "marker_paths"]

ToolsAs = Literal["tool", "dict"]

# Request keys that map onto ChatAnthropic fields; anything else is refused rather than
# silently dropped.
_MODEL_FIELDS = (
    "thinking",
    "temperature",
    "top_k",
    "top_p",
    "stop_sequences",
    "output_config",
    "context_management",
)
_KNOWN_KEYS = frozenset(
    {"model", "max_tokens", "system", "tools", "messages", "cache_control", *_MODEL_FIELDS}
)


class Recorder:
    """An ``anthropic.Anthropic`` client whose HTTP layer records each Messages API body and
    answers it with a text-only message, ``answer(body)`` (default "ok"); it never connects."""

    def __init__(self, answer: Callable[[dict[str, Any]], str] = lambda body: "ok") -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answers: list[str] = []
        self.lock = threading.Lock()
        self._answer = answer
        self.client = anthropic.Anthropic(
            api_key="offline",
            base_url="https://api.anthropic.com",
            max_retries=0,
            # An explicit timeout: the SDK then skips its "non-streaming call may exceed
            # 10 minutes" refusal, so the request's own max_tokens can be sent unchanged.
            timeout=60.0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(self._handle)),
        )

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or not request.url.path.endswith("/v1/messages"):
            return httpx2.Response(404, json={"type": "error", "error": {"type": "not_found"}})
        body: dict[str, Any] = json.loads(request.content)
        text = self._answer(body)
        self.bodies.append(body)
        self.answers.append(text)
        return httpx2.Response(
            200,
            json={
                "id": "msg_offline",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", ""),
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        )

    def take(self) -> list[tuple[dict[str, Any], str]]:
        """The (body, answer) pairs recorded since the last take."""
        out = list(zip(self.bodies, self.answers, strict=True))
        self.bodies.clear()
        self.answers.clear()
        return out


_TRANSPORT = Recorder()


@contextlib.contextmanager
def _memoized_block_types() -> Iterator[None]:
    """Memoize ``langchain_core``'s ``_get_data_content_block_types`` while LangChain runs.

    ``is_data_content_block`` calls it for every content block, and it recomputes
    ``typing.get_type_hints`` over a fixed union of TypedDicts each time (~0.4 ms a block,
    over 80% of a long conversation's cost). Its result never changes, so caching it changes
    nothing but the time. The original is put back afterwards.
    """
    original = lc_content._get_data_content_block_types
    lc_content._get_data_content_block_types = _BLOCK_TYPES
    try:
        yield
    finally:
        lc_content._get_data_content_block_types = original


_BLOCK_TYPES = functools.cache(lc_content._get_data_content_block_types)


def _not_run(**_: Any) -> str:
    raise RuntimeError("benchmark peer: recorded tools are never executed")


def _dumps(value: Any) -> str:
    """A cache key that keeps key order: LangChain sends the tools' bytes in their order."""
    return json.dumps(value, separators=(",", ":"))


@functools.lru_cache(maxsize=32)
def _model(model: str, max_tokens: int | None, settings: str) -> ChatAnthropic:
    kwargs: dict[str, Any] = json.loads(settings)
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    llm = ChatAnthropic(model_name=model, api_key=SecretStr("offline"), max_retries=0, **kwargs)
    # ChatAnthropic builds its client lazily in a cached_property; pre-filling the cache
    # routes every call through the recording transport.
    llm.__dict__["_client"] = _TRANSPORT.client
    return llm


def system_prompt(system: Any) -> str | SystemMessage | None:
    """``create_agent``'s ``system_prompt`` for a request's ``system``: a string stays a
    string; text blocks become a ``SystemMessage`` with those blocks."""
    if isinstance(system, list):
        return SystemMessage(content=system) if system else None
    return system or None


def agent_tools(tool_dicts: Sequence[Mapping[str, Any]], tools_as: ToolsAs = "tool") -> list[Any]:
    """``create_agent``'s ``tools`` for a request's tool definitions (see the module doc)."""
    if tools_as == "dict":
        return [dict(t) for t in tool_dicts]
    return [
        StructuredTool(
            name=t["name"],
            description=t.get("description", ""),
            args_schema=t.get("input_schema", {"type": "object", "properties": {}}),
            func=_not_run,
        )
        for t in tool_dicts
    ]


@functools.lru_cache(maxsize=32)
def _agent(
    model: str,
    max_tokens: int | None,
    settings: str,
    system: str,
    tools: str,
    ttl: str,
    tools_as: ToolsAs,
) -> Any:
    return create_agent(
        _model(model, max_tokens, settings),
        tools=agent_tools(json.loads(tools), tools_as),
        system_prompt=system_prompt(json.loads(system)),
        middleware=[
            AnthropicPromptCachingMiddleware(
                ttl=cast(Literal["5m", "1h"], ttl), unsupported_model_behavior="raise"
            )
        ],
    )


def _unmarked_list(blocks: list[Any]) -> list[Any]:
    out = [_unmarked(b) for b in blocks]
    return blocks if all(x is y for x, y in zip(out, blocks, strict=True)) else out


def _unmarked(block: Any) -> Any:
    """``block`` without its ``cache_control`` (and a tool_result's inner blocks without
    theirs); the same object when it has none."""
    if not isinstance(block, Mapping):
        return block
    inner = block.get("content")
    new_inner = (
        _unmarked_list(inner)
        if block.get("type") == "tool_result" and isinstance(inner, list)
        else inner
    )
    if "cache_control" not in block and new_inner is inner:
        return block
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if new_inner is not inner:
        out["content"] = new_inner
    return out


def _strip_markers(request: Mapping[str, Any]) -> Mapping[str, Any]:
    """``request`` without the ``cache_control`` markers the API reads: top level, tools,
    system blocks, message blocks and tool_result content blocks. Keys of that name inside
    tool inputs or schemas are data and stay. Unmarked parts are the input's own objects.
    """
    out = {k: v for k, v in request.items() if k != "cache_control"}
    if isinstance(out.get("tools"), list):
        out["tools"] = _unmarked_list(out["tools"])
    if isinstance(out.get("system"), list):
        out["system"] = _unmarked_list(out["system"])
    if isinstance(out.get("messages"), list):
        messages = []
        for m in out["messages"]:
            content = m.get("content") if isinstance(m, Mapping) else None
            if isinstance(content, list) and (new := _unmarked_list(content)) is not content:
                m = {**m, "content": new}
            messages.append(m)
        out["messages"] = messages
    return out


# id(assistant message dict) -> (that dict, a copy of its content, model, AIMessage). Requests
# of one run share their message dicts, so each assistant message is converted once; the copy
# catches a dict edited in place since.
_AI_MEMO: dict[int, tuple[Mapping[str, Any], Any, str, AIMessage]] = {}
_AI_MEMO_LIMIT = 20_000


def answered(message: Mapping[str, Any], model: str, llm: ChatAnthropic, usage: Any) -> AIMessage:
    """The AIMessage ``llm`` (ChatAnthropic) builds from an API response with this message's
    content and this usage."""
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    response = Message.construct(
        id="msg_recorded",
        type="message",
        role="assistant",
        model=model,
        content=copy.deepcopy(blocks),
        stop_reason="end_turn",
        stop_sequence=None,
        usage=usage,
    )
    generated = llm._format_output(response).generations[0].message
    assert isinstance(generated, AIMessage)
    return generated


def _ai_message(message: Mapping[str, Any], model: str) -> AIMessage:
    """The AIMessage ChatAnthropic builds from an API response carrying this content."""
    content = message.get("content")
    hit = _AI_MEMO.get(id(message))
    if hit is not None and hit[0] is message and hit[2] == model and hit[1] == content:
        ai = hit[3]
    else:
        usage = {"input_tokens": 0, "output_tokens": 0}
        ai = answered(message, model, _model(model, None, "{}"), usage)
        if len(_AI_MEMO) >= _AI_MEMO_LIMIT:
            _AI_MEMO.clear()
        _AI_MEMO[id(message)] = (message, copy.deepcopy(content), model, ai)
    # A fresh message each time: LangGraph assigns ids to the messages it is given.
    return ai.model_copy(update={"content": copy.deepcopy(ai.content)})


def _to_langchain(messages: Sequence[Mapping[str, Any]], model: str) -> list[BaseMessage]:
    """Messages API messages as the LangChain messages an agent's state would hold."""
    out: list[BaseMessage] = []
    tool_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            ai = _ai_message(message, model)
            tool_names.update((tc["id"] or "", tc["name"]) for tc in ai.tool_calls)
            out.append(ai)
            continue
        if role != "user":
            raise ValueError(f"messages[{i}]: role {role!r} is neither 'user' nor 'assistant'")
        if isinstance(content, str):
            out.append(HumanMessage(content=content))
            continue
        if not isinstance(content, list):
            raise ValueError(f"messages[{i}]: content must be a string or a list of blocks")
        pending: list[Any] = []
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "tool_result":
                if pending:
                    out.append(HumanMessage(content=pending))
                    pending = []
                result = block.get("content", "")
                tool_use_id = str(block.get("tool_use_id", ""))
                out.append(
                    ToolMessage(
                        content=copy.deepcopy(result) if result is not None else "",
                        tool_call_id=tool_use_id,
                        name=tool_names.get(tool_use_id),
                        status="error" if block.get("is_error") else "success",
                    )
                )
            else:
                pending.append(copy.deepcopy(block))
        if pending:
            out.append(HumanMessage(content=pending))
    return out


def langchain_request(
    request: Mapping[str, Any], *, ttl: str = "5m", tools_as: ToolsAs = "tool"
) -> dict[str, Any]:
    """The request body LangChain sends for ``request`` under AnthropicPromptCachingMiddleware.

    ``request`` is a Messages API request dict (``model``, ``max_tokens``, optional
    ``system`` and ``tools``, ``messages``; ``thinking``, ``temperature``, ``top_k``,
    ``top_p`` and ``stop_sequences`` are passed to ``ChatAnthropic``). ``ttl`` is the
    middleware's (``"5m"`` or ``"1h"``). ``tools_as="tool"`` hands the tools to the agent as
    ``StructuredTool`` objects (tagged by the middleware), ``"dict"`` as plain dicts
    (untagged). The input is not modified. Raises ``ValueError`` for keys it cannot carry.
    """
    unknown = sorted(set(request) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"langchain_request: cannot pass {unknown} through ChatAnthropic")
    if ttl not in ("5m", "1h"):
        raise ValueError(f"langchain_request: ttl must be '5m' or '1h', not {ttl!r}")
    request = _strip_markers(request)
    tools = list(request.get("tools") or [])
    names = [t.get("name") for t in tools]
    if len(set(names)) != len(names):
        # create_agent keys its tools by name; duplicates would silently vanish.
        raise ValueError("langchain_request: duplicate tool names")
    model = str(request["model"])
    max_tokens = request.get("max_tokens")
    settings = _dumps({k: request[k] for k in _MODEL_FIELDS if k in request})
    agent = _agent(
        model,
        None if max_tokens is None else int(max_tokens),
        settings,
        _dumps(request.get("system") or ""),
        _dumps(tools),
        ttl,
        tools_as,
    )
    with _TRANSPORT.lock, _memoized_block_types():
        state = {"messages": _to_langchain(request.get("messages") or [], model)}
        _TRANSPORT.take()
        with tracing_context(enabled=False), warnings.catch_warnings():
            # The SDK warns, on every call, that an old recorded model is deprecated.
            warnings.filterwarnings(
                "ignore", r"The model '.*' is deprecated", category=DeprecationWarning
            )
            agent.invoke(state)
        bodies = [body for body, _ in _TRANSPORT.take()]
    if len(bodies) != 1:
        raise RuntimeError(f"langchain_request: expected one model call, saw {len(bodies)}")
    return bodies[0]


def marker_paths(body: Mapping[str, Any]) -> list[str]:
    """Where ``cache_control`` sits in ``body``: ``tools[2]``, ``system[0]``,
    ``messages[4].content[1]``, nested tool_result content, and ``cache_control`` (top level).
    """
    found: list[str] = []
    for i, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, Mapping) and "cache_control" in tool:
            found.append(f"tools[{i}]")
    system = body.get("system")
    if isinstance(system, list):
        found.extend(
            f"system[{i}]"
            for i, b in enumerate(system)
            if isinstance(b, Mapping) and "cache_control" in b
        )
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, Mapping):
                continue
            if "cache_control" in block:
                found.append(f"messages[{i}].content[{j}]")
            inner = block.get("content")
            if isinstance(inner, list):
                found.extend(
                    f"messages[{i}].content[{j}].content[{k}]"
                    for k, b in enumerate(inner)
                    if isinstance(b, Mapping) and "cache_control" in b
                )
    if "cache_control" in body:
        found.append("cache_control")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="a run file (JSON with system, tools, messages, turns)")
    parser.add_argument(
        "--turn",
        type=int,
        default=3,
        help="which assistant message's request to replay, counting from 1 (default 3)",
    )
    parser.add_argument("--ttl", choices=("5m", "1h"), default="5m")
    parser.add_argument("--tools-as", choices=("tool", "dict"), default="tool")
    args = parser.parse_args(argv)

    with open(args.trace, encoding="utf-8") as f:
        trace = json.load(f)
    messages = trace["messages"]
    assistant_at = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not 1 <= args.turn <= len(assistant_at):
        parser.error(f"--turn must be 1..{len(assistant_at)}")
    request: dict[str, Any] = {
        "model": trace.get("recorded_model") or "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": messages[: assistant_at[args.turn - 1]],
    }
    if trace.get("system"):
        request["system"] = trace["system"]
    if trace.get("tools"):
        request["tools"] = trace["tools"]

    langchain_request(request, ttl=args.ttl, tools_as=args.tools_as)  # warm the caches
    start = time.perf_counter()
    body = langchain_request(request, ttl=args.ttl, tools_as=args.tools_as)
    elapsed = time.perf_counter() - start

    paths = marker_paths(body)
    print(
        f"{args.trace}: turn {args.turn} ({len(request['messages'])} messages in, "
        f"{len(body['messages'])} out), {elapsed * 1000:.1f} ms"
    )
    for path in paths:
        print(f"  {path}")
    print(f"{len(paths)} cache_control marker{'s' if len(paths) != 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
