"""run_tools(): run the tool calls of one assistant turn at the same time.

Tool calls in one assistant turn are unordered: Claude does not assume one has finished
before another starts, so they may run concurrently, and all their results go back in one
user message
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/parallel-tool-use).
:func:`run_tools` does that:

- ``response`` is the SDK ``Message`` (or ``BetaMessage``) the call returned, its dict, or its
  ``content`` list;
  its ``tool_use`` blocks are the calls (Anthropic's server tools, ``server_tool_use`` and
  ``mcp_tool_use``, ran on Anthropic's side and are skipped);
- ``tools`` maps a tool name to a callable that takes the call's ``input`` dict and returns
  the result's content: a string, a list of content blocks (text, image, document,
  search_result: dicts or SDK params), ``None`` for no content, or a dict, number or bool,
  sent as its JSON text. A ``def`` tool runs in a thread of its own, an
  ``async def`` tool as a task on an event loop;
- the result is the one user message, ``{"role": "user", "content": [...]}``, with a
  ``tool_result`` per call in the order of the ``tool_use`` blocks, however the calls
  finished.

Errors a model can act on become results, not exceptions, so the conversation stays valid
(every ``tool_use`` needs its ``tool_result`` in the next message):

- a tool that raises gives ``is_error: true`` and ``"<ExceptionType>: <message>"``; the
  others still return;
- a tool still running after ``timeout`` seconds (counted from its start) gives
  ``is_error: true`` and ``"timed out after N s"``. An ``async`` tool is cancelled; a thread
  cannot be stopped in Python, so a ``def`` tool keeps running in its (daemon) thread and its
  late result is dropped;
- a call naming a tool that ``tools`` does not have gives ``is_error: true`` with the names it
  has, so the model can call a real one (``unknown="raise"`` refuses the turn instead, with a
  ``ValueError`` naming the block, before any tool runs).

Mistakes of the caller raise before anything runs: a response with no ``tool_use`` block, a
``tools`` value that is not callable, a bad ``max_concurrency`` or ``timeout``. A tool that
returns something that is not content (a set, an object) raises ``TypeError`` naming it.

``trim`` (a transform, ``tc.trim(...)``) is applied to the turn, the assistant message and
the results, and the results it returns are the ones given back: each is cut as trim cuts a
result in the conversation.

>>> msg = {"role": "assistant", "content": [
...     {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 1, "b": 2}},
...     {"type": "tool_use", "id": "t2", "name": "nope", "input": {}}]}
>>> out = run_tools(msg, {"add": lambda i: str(i["a"] + i["b"])})
>>> [(r["tool_use_id"], r["content"], r.get("is_error", False)) for r in out["content"]]
[('t1', '3', False), ('t2', "no tool named 'nope'; the tools are: add", True)]
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tidyctx._request import to_plain

__all__ = ["Tool", "ToolCall", "arun_tools", "run_tools", "tool_calls"]

Tool = Callable[[dict[str, Any]], Any] | Callable[[dict[str, Any]], Awaitable[Any]]
"""A tool: takes the call's input dict, returns (or, ``async``, awaits to) the content."""

# Blocks whose calls Anthropic runs itself: their results are already in the response.
_SERVER_CALLS = frozenset({"server_tool_use", "mcp_tool_use"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One ``tool_use`` block of the turn."""

    index: int
    """Its place in the response's content."""
    id: str
    name: str
    input: dict[str, Any]


def _plain_response(response: Any) -> dict[str, Any]:
    try:
        plain = to_plain(response)
    except TypeError:
        plain = None
    if isinstance(plain, list):  # message.content
        return {"role": "assistant", "content": plain}
    if not isinstance(plain, dict):
        raise TypeError(
            "run_tools() takes the response: an SDK Message, its dict with 'content', or its "
            f"content list; got {type(response).__name__}"
        )
    return plain


def tool_calls(response: Any) -> list[ToolCall]:
    """The ``tool_use`` blocks of ``response`` (a Message or its dict), checked: each names
    its place (``content[2]``) when its ``id``, ``name`` or ``input`` is wrong."""
    plain = _plain_response(response)
    role = plain.get("role", "assistant")
    if role != "assistant":
        raise ValueError(f"role: run_tools() runs an assistant turn's calls, got role {role!r}")
    content = plain.get("content")
    if not isinstance(content, list):
        raise ValueError("content: expected the list of the response's content blocks")
    calls: list[ToolCall] = []
    seen: set[str] = set()
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        where = f"content[{i}]"
        ident, name, arg = block.get("id"), block.get("name"), block.get("input", {})
        if not isinstance(ident, str) or not ident:
            raise ValueError(f"{where}.id: a tool_use needs a non-empty string id")
        if ident in seen:
            raise ValueError(f"{where}.id: {ident!r} is used by an earlier tool_use too")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name: a tool_use needs a non-empty string name")
        if not isinstance(arg, dict):
            raise ValueError(f"{where}.input: expected an object, got {type(arg).__name__}")
        seen.add(ident)
        calls.append(ToolCall(i, ident, name, arg))
    if not calls:
        kinds = sorted({str(b.get("type")) for b in content if isinstance(b, dict)})
        server = (
            " (server tool calls run on Anthropic's side)" if _SERVER_CALLS & set(kinds) else ""
        )
        raise ValueError(
            f"content: the response has no tool_use block to run{server}; its blocks are "
            f"{', '.join(kinds) or 'none'} (stop_reason {plain.get('stop_reason')!r})"
        )
    return calls


def _check(
    tools: Mapping[str, Any], max_concurrency: int | None, timeout: float | None, unknown: str
) -> None:
    if not isinstance(tools, Mapping):
        raise TypeError(
            f"run_tools(tools=...) takes a mapping of tool name to callable, got "
            f"{type(tools).__name__}"
        )
    for name, fn in tools.items():
        if not callable(fn):
            raise TypeError(f"tools[{name!r}]: expected a callable, got {type(fn).__name__}")
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
    ):
        raise TypeError(f"max_concurrency: expected an int or None, got {max_concurrency!r}")
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency: expected 1 or more, got {max_concurrency}")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"timeout: expected a number of seconds above 0, or None; got {timeout!r}")
    if unknown not in ("error", "raise"):
        raise ValueError(f"unknown: expected 'error' or 'raise', got {unknown!r}")


def _unknown_text(name: str, tools: Mapping[str, Any]) -> str:
    names = ", ".join(sorted(tools)) or "none"
    return f"no tool named {name!r}; the tools are: {names}"


def _content(value: Any, call: ToolCall) -> Any:
    """A tool's return value as tool_result content; None for none."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        blocks = to_plain(list(value))
        for j, block in enumerate(blocks):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise TypeError(
                    f"tool {call.name!r} (content[{call.index}]) returned a list whose item "
                    f"{j} is not a content block (a dict with a 'type')"
                )
        return blocks
    if isinstance(value, dict | int | float | bool):
        try:
            return json.dumps(to_plain(value), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"tool {call.name!r} (content[{call.index}]) returned a {type(value).__name__} "
                f"that is not JSON: {err}"
            ) from None
    raise TypeError(
        f"tool {call.name!r} (content[{call.index}]) returned a {type(value).__name__}; a tool "
        "returns a string, a list of content blocks, a JSON-able dict or number, or None"
    )


def _result(call: ToolCall, content: Any, is_error: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "tool_result", "tool_use_id": call.id}
    if content is not None:
        out["content"] = content
    if is_error:
        out["is_error"] = True
    return out


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


def _in_thread(fn: Callable[[Any], Any], arg: Any, name: str) -> asyncio.Future[Any]:
    """``fn(arg)`` in a daemon thread of its own, as a future of this loop. A daemon thread,
    not an executor's: one that outlives its timeout must not hold up the program's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def work() -> None:
        try:
            value, error = fn(arg), None
        except BaseException as err:  # handed to the waiting side, which decides
            value, error = None, err

        def settle() -> None:
            if future.done():  # timed out: nobody waits for this result
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        # A closed loop: the turn finished without this call.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=work, name=f"tidyctx-tool-{name}", daemon=True).start()
    return future


async def _one(
    call: ToolCall,
    fn: Callable[[Any], Any],
    slots: asyncio.Semaphore,
    timeout: float | None,
) -> tuple[Any, bool]:
    """The call's result value and whether it is an error."""
    async with slots:
        if _is_async(fn):
            try:  # calling it only makes the coroutine, but a wrong signature raises here
                job: asyncio.Future[Any] = asyncio.ensure_future(fn(call.input))
            except Exception as err:
                return f"{type(err).__name__}: {err}", True
        else:
            job = _in_thread(fn, call.input, call.name)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            done, _ = await asyncio.wait({job}, timeout=timeout)
        except asyncio.CancelledError:  # the turn itself was cancelled: so is the call
            job.cancel()
            raise
        if not done:
            job.cancel()
            return f"timed out after {timeout:g} s", True
        try:
            value = job.result()
            if inspect.isawaitable(value):  # a def that returned a coroutine
                left = None if deadline is None else max(deadline - loop.time(), 0.0)
                inner = asyncio.ensure_future(value)
                done, _ = await asyncio.wait({inner}, timeout=left)
                if not done:
                    inner.cancel()
                    return f"timed out after {timeout:g} s", True
                value = inner.result()
        except Exception as err:
            return f"{type(err).__name__}: {err}", True
        return value, False


async def _run(
    calls: Sequence[ToolCall],
    tools: Mapping[str, Callable[[Any], Any]],
    max_concurrency: int | None,
    timeout: float | None,
) -> list[dict[str, Any]]:
    slots = asyncio.Semaphore(max_concurrency or len(calls))
    known = [c for c in calls if c.name in tools]
    values = await asyncio.gather(*(_one(c, tools[c.name], slots, timeout) for c in known))
    by_id = {c.id: v for c, v in zip(known, values, strict=True)}
    out = []
    for call in calls:
        if call.id not in by_id:
            out.append(_result(call, _unknown_text(call.name, tools), True))
            continue
        value, failed = by_id[call.id]
        out.append(_result(call, value, True) if failed else _result(call, _content(value, call)))
    return out


def _prepare(
    response: Any,
    tools: Mapping[str, Any],
    max_concurrency: int | None,
    timeout: float | None,
    unknown: str,
) -> list[ToolCall]:
    _check(tools, max_concurrency, timeout, unknown)
    calls = tool_calls(response)
    if unknown == "raise":
        for call in calls:
            if call.name not in tools:
                raise ValueError(
                    f"content[{call.index}]: tool_use {call.id!r} calls "
                    f"{_unknown_text(call.name, tools)}"
                )
    return calls


def _trimmed(response: Any, results: list[dict[str, Any]], trim: Any) -> list[dict[str, Any]]:
    """``results`` as the transform ``trim`` leaves them in a request of this turn."""
    if trim is None:
        return results
    if not callable(trim):
        raise TypeError(f"trim: expected a transform such as tc.trim(...), got {trim!r:.80}")
    from tidyctx._pipeline import step

    plain = _plain_response(response)
    request: dict[str, Any] = {
        "max_tokens": 1,
        "messages": [
            {"role": "assistant", "content": plain["content"]},
            {"role": "user", "content": results},
        ],
    }
    if isinstance(plain.get("model"), str):
        request["model"] = plain["model"]
    out = step(trim, request)
    messages = out.get("messages")
    content = messages[-1].get("content") if isinstance(messages, list) and messages else None
    if not isinstance(content, list) or [
        b.get("tool_use_id") if isinstance(b, dict) else None for b in content
    ] != [r["tool_use_id"] for r in results]:
        raise ValueError(
            "trim: the transform must keep each tool_result of the turn, in order; it "
            "returned a different last message"
        )
    return content


def _message(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "user", "content": content}


async def arun_tools(
    response: Any,
    tools: Mapping[
        str, Callable[[dict[str, Any]], Any] | Callable[[dict[str, Any]], Awaitable[Any]]
    ],
    *,
    max_concurrency: int | None = None,
    timeout: float | None = None,
    trim: Any = None,
    unknown: Literal["error", "raise"] = "error",
) -> dict[str, Any]:
    """:func:`run_tools` on the running event loop: ``async def`` tools run as tasks on it,
    ``def`` tools in threads."""
    calls = _prepare(response, tools, max_concurrency, timeout, unknown)
    results = await _run(calls, tools, max_concurrency, timeout)
    return _message(_trimmed(response, results, trim))


def run_tools(
    response: Any,
    tools: Mapping[
        str, Callable[[dict[str, Any]], Any] | Callable[[dict[str, Any]], Awaitable[Any]]
    ],
    *,
    max_concurrency: int | None = None,
    timeout: float | None = None,
    trim: Any = None,
    unknown: Literal["error", "raise"] = "error",
) -> dict[str, Any]:
    """Run the ``tool_use`` blocks of ``response`` concurrently and return the user message
    that answers them: every ``tool_result`` in ``tool_use`` order.

    ``max_concurrency``: at most this many tools run at once (None: all); ``timeout``: seconds
    a call may run before it becomes an ``is_error`` result (None: no limit); ``trim``: a
    transform (``tc.trim(...)``) each result goes through; ``unknown``: ``"error"`` (an
    ``is_error`` result for a call to a tool not in ``tools``) or ``"raise"``. See the module
    documentation for what each case gives. Use :func:`arun_tools` inside a coroutine.
    """
    calls = _prepare(response, tools, max_concurrency, timeout, unknown)
    coro_results: list[list[dict[str, Any]]] = []

    def main() -> None:
        coro_results.append(asyncio.run(_run(calls, tools, max_concurrency, timeout)))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        main()
    else:
        # Called from inside a running loop (a notebook): a loop of its own in a thread, since
        # asyncio.run refuses to start inside another.
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                main()
            except BaseException as err:
                errors.append(err)

        worker = threading.Thread(target=guarded, name="tidyctx-run-tools")
        worker.start()
        worker.join()
        if errors:
            raise errors[0]
    return _message(_trimmed(response, coro_results[0], trim))
