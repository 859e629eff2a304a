"""Clear old tool results in rare, large batches; dedupe repeated results; or let the server.

Agents pile up tool results (file reads, logs, search hits) that the model has long used. This
module replaces old ones with a short placeholder that names the tool and the call. The options
(:class:`Clearing`, shared by :func:`clear` and ``trim(clearing=...)``) have the names and
meaning of the parameters of Anthropic's server-side context edit ``clear_tool_uses_20250919``
(https://platform.claude.com/docs/en/build-with-claude/context-editing): ``trigger``, ``keep``,
``clear_at_least``, ``exclude_tools``, ``clear_tool_inputs``, so a user can move between
clearing here and clearing on the server (``Clearing(server_side=True)``,
:func:`server_side_edit`, :func:`with_server_side`).

Every rewrite of history invalidates the cache from the rewritten block on, so a clearer should
rewrite history rarely. One that recomputes "everything but the last 3 results" each turn, like
LangChain's ``ClearToolUsesEdit``
(https://reference.langchain.com/python/langchain/agents/middleware/context_editing/ClearToolUsesEdit),
moves its boundary every turn and rewrites the cache every turn. :func:`clear_plan` instead cuts
the clearable results into chunks of ``clear_at_least`` tokens and clears only whole chunks, so
the request it yields is the same as last turn's, plus the new turn, until another chunk fills.

The pieces, each a pure function of the request:

- :func:`tool_calls`: every tool_use with its tool_result, in order;
- :func:`clear_plan`: which tool_use ids to clear (the batch rule);
- :func:`clear_results`: replace those results (and optionally inputs, images) by placeholders;
- :func:`dedupe`: replace a repeated result by a reference to its first copy;
- :func:`clearing_tradeoff`: what a clearing step costs (cache rewrite) and saves;
- :func:`clear`: all of it as one transform, for ``tc.pipe``.

>>> from tidyctx.tokens import LocalCounter
>>> counter = LocalCounter(calibration=1.0)
>>> def turn(i, text):
...     use = {"type": "tool_use", "id": f"toolu_{i}", "name": "read_log", "input": {"n": i}}
...     result = {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": text}
...     return [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
>>> messages = [{"role": "user", "content": "Find the error."}]
>>> for i in range(5):
...     messages += turn(i, f"line {i}: ok\\n" * 200)
>>> request = {"model": "claude-sonnet-4-6", "messages": messages}
>>> [c.tokens for c in tool_calls(request, counter=counter)]
[1240, 1240, 1240, 1240, 1240]
>>> ids = clear_plan(request, keep=1, trigger=0, clear_at_least=3_000, counter=counter)
>>> sorted(ids)  # 1,240 + 1,240 + 1,240 reach 3,000; toolu_3 waits for the next chunk
['toolu_0', 'toolu_1', 'toolu_2']
>>> out = clear_results(request, ids, counter=counter)
>>> out["messages"][2]["content"][0]["content"][0]["text"]
'[tidyctx: cleared result of read_log (toolu_0), 1,240 tokens]'
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tidyctx._edge import Edge, shaped, start
from tidyctx._markers import expand_call
from tidyctx._memo import content_key, memoized, shared_size
from tidyctx._request import (
    Request,
    ValidationError,
    block_hash,
    cache_content,
    canonical_json,
    iter_blocks,
    to_plain,
)
from tidyctx.cachesim import layout
from tidyctx.store import Store, keep_text, store_key
from tidyctx.tokens import (
    LocalCounter,
    TokenCounter,
    check_counter,
    local_counter,
    runs_prefix_check,
)
from tidyctx.transforms._recover import guarded, settle

__all__ = [
    "CACHE_READ",
    "CACHE_WRITE",
    "CLEAR_THINKING",
    "CLEAR_TOOL_USES",
    "CONTEXT_MANAGEMENT_BETA",
    "DEDUPE_MIN_TOKENS",
    "EXPAND_TOOL",
    "Call",
    "Clear",
    "Clearing",
    "DedupeFold",
    "clear",
    "clear_plan",
    "clear_results",
    "clearing_tradeoff",
    "dedupe",
    "result_text",
    "server_side_edit",
    "tool_calls",
    "with_server_side",
]

# The context editing API: https://platform.claude.com/docs/en/build-with-claude/context-editing
CLEAR_TOOL_USES = "clear_tool_uses_20250919"
"""The server-side edit this module mirrors."""
CLEAR_THINKING = "clear_thinking_20251015"
"""The thinking-clearing edit; when present it must be listed first in ``edits``."""
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
"""The beta header (``anthropic-beta``) a request with ``context_management`` needs."""
EXPAND_TOOL = "tidyctx_expand"
"""The tool a placeholder names to read a stored original back."""
DEDUPE_MIN_TOKENS = 50
"""Results with fewer content tokens are cheaper to repeat than to reference."""
# Prompt caching prices: https://platform.claude.com/docs/en/build-with-claude/prompt-caching
CACHE_WRITE = 1.25
"""5-minute cache write, in input-token prices."""
CACHE_READ = 0.1
"""Cache read, in input-token prices."""

_CLEARED_HEAD = "[tidyctx: cleared result of "
_SAME_HEAD = "[tidyctx: same result as "
_EXPAND = re.escape(EXPAND_TOOL)
_CLEARED_TAIL = re.compile(
    r", (?P<tokens>\d[\d,]*) tokens(?: and (?P<images>\d+) images?)?"
    rf'(?:; read it back with {_EXPAND}\(id="(?P<key>[^"]*)"\))?'
    rf'(?P<input>; its input was cleared too(?:: {_EXPAND}\(id="(?P<ikey>[^"]*)"\))?)?\]\Z'
)
_SAME = re.compile(
    r"\[tidyctx: same result as (?P<id>[^\s]+) \((?P<name>.*), messages\[(?P<msg>\d+)\]\), "
    rf'(?P<tokens>\d[\d,]*) tokens(?:; read it back with {_EXPAND}\(id="(?P<key>[^"]*)"\))?'
    r"\]\Z"
)


# ---------------------------------------------------------------------------- calls


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call: a ``tool_use`` and the ``tool_result`` that answers it."""

    id: str
    name: str
    input: Any = field(hash=False)
    use_path: tuple[int, int]
    """``(i, j)``: the tool_use is ``messages[i]["content"][j]``."""
    result_path: tuple[int, int] | None
    """Where the tool_result is, or None when the call has none."""
    tokens: int
    """Tokens of the tool_result block (LocalCounter). For a result tidyctx already replaced
    by a placeholder, the tokens of the original it stands for (read from the placeholder), so
    that a plan is the same whether computed on the original or on the trimmed request."""
    is_error: bool = False
    placeholder: str | None = None
    """``"cleared"`` or ``"same"`` when the result already is a tidyctx placeholder."""


def _counter(request: Mapping[str, Any], counter: TokenCounter | None) -> LocalCounter:
    """The LocalCounter for block counts (see :func:`~tidyctx.tokens.local_counter`)."""
    return local_counter(counter, request.get("model"))


def _spine(request: Request) -> Request:
    """A copy of ``request`` in which blocks can be replaced without touching ``request``: its
    messages list, the messages and their content lists are new, the blocks shared."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        return dict(request)
    return {
        **request,
        "messages": [
            {**m, "content": list(m["content"])}
            if isinstance(m, dict) and isinstance(m.get("content"), list)
            else m
            for m in messages
        ],
    }


def _placeholder_text(block: Mapping[str, Any]) -> str | None:
    """The text of a tool_result whose content is one text block (or a string), else None."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if (
        isinstance(content, list)
        and len(content) == 1
        and isinstance(content[0], Mapping)
        and content[0].get("type") == "text"
        and isinstance(content[0].get("text"), str)
    ):
        return str(content[0]["text"])
    return None


def _parse_cleared(text: str, name: str, call_id: str) -> re.Match[str] | None:
    head = f"{_CLEARED_HEAD}{name} ({call_id})"
    if not text.startswith(head):
        return None
    return _CLEARED_TAIL.match(text, len(head))


def _placeholder_kind(
    block: Mapping[str, Any], name: str, call_id: str
) -> tuple[str, int, re.Match[str]] | None:
    """``(kind, original tokens, match)`` when ``block`` is a tidyctx placeholder."""
    text = _placeholder_text(block)
    if text is None or not text.startswith("[tidyctx: "):
        return None
    m = _parse_cleared(text, name, call_id)
    if m is not None:
        return "cleared", int(m["tokens"].replace(",", "")), m
    m = _SAME.match(text)
    if m is not None:
        return "same", int(m["tokens"].replace(",", "")), m
    return None


def _messages(request: Mapping[str, Any]) -> list[Any]:
    messages = request.get("messages")
    return messages if isinstance(messages, list) else []


def tool_calls(request: Any, *, counter: TokenCounter | None = None) -> list[Call]:
    """Every tool_use and its tool_result, in the order of the tool_use blocks.

    A tool_result is matched by ``tool_use_id`` to the latest tool_use before it. Calls
    without a result get ``result_path=None`` and ``tokens=0``; results without a call are
    not listed.
    """
    req = request if isinstance(request, Mapping) else start(request)[0]
    counter = _counter(req, counter)
    uses: list[tuple[str, str, Any, tuple[int, int]]] = []
    open_ids: dict[str, int] = {}
    results: dict[int, tuple[tuple[int, int], Mapping[str, Any]]] = {}
    for i, message in enumerate(_messages(req)):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind == "tool_use" and isinstance(block.get("id"), str):
                open_ids[block["id"]] = len(uses)
                uses.append((block["id"], str(block.get("name", "")), block.get("input"), (i, j)))
            elif kind == "tool_result":
                k = open_ids.pop(str(block.get("tool_use_id")), None)
                if k is not None:
                    results[k] = ((i, j), block)
    calls: list[Call] = []
    for k, (call_id, name, args, use_path) in enumerate(uses):
        found = results.get(k)
        if found is None:
            calls.append(Call(call_id, name, args, use_path, None, 0))
            continue
        path, block = found
        parsed = _placeholder_kind(block, name, call_id)
        tokens = parsed[1] if parsed else counter.count_block(block)
        calls.append(
            Call(
                call_id,
                name,
                args,
                use_path,
                path,
                tokens,
                is_error=block.get("is_error") is True,
                placeholder=parsed[0] if parsed else None,
            )
        )
    return calls


# ---------------------------------------------------------------------------- the plan


def _amount(value: Any, what: str, kinds: tuple[str, ...]) -> tuple[str, int]:
    """``(kind, value)`` from an int (the first kind) or a server-style ``{"type", "value"}``."""
    if value is None:
        return kinds[0], 0
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{what} must be >= 0, got {value}")
        return kinds[0], value
    if isinstance(value, Mapping):
        kind, number = value.get("type"), value.get("value")
        if kind not in kinds:
            raise ValueError(
                f"{what}: unknown type {kind!r}; the server's clear_tool_uses_20250919 takes "
                + " or ".join(f'{{"type": "{k}", "value": N}}' for k in kinds)
            )
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ValueError(f"{what}: value must be an int >= 0, got {number!r}")
        return str(kind), number
    raise ValueError(
        f"{what} must be an int or {{'type': {kinds[0]!r}, 'value': N}}, got {value!r}"
    )


def _tool_set(tools: bool | Iterable[str] | None, name: str) -> bool:
    if tools is None or isinstance(tools, bool):
        return bool(tools)
    return name in set(tools)


def _effective_tokens(
    req: Mapping[str, Any], calls: Sequence[Call], counter: TokenCounter | None, local: LocalCounter
) -> int:
    """Input tokens of the request as the agent built it, a count that only grows as the
    conversation does.

    Every block counts, the thinking of earlier turns included (:meth:`LocalCounter.
    count_request` drops it on models that do, so its total can fall when a user turn opens
    with text, and a trigger on it could fire and then stop). tidyctx placeholders count at
    the size of what they replaced. A ``counter`` that is not a LocalCounter counts the
    request whole (what it counts, as it counts it), and the placeholders are added on top;
    ``local`` counts the blocks.
    """
    if counter is None or isinstance(counter, LocalCounter):
        total = local.overhead(req)
        for ref in iter_blocks(req):
            total += (
                local.count_tool(ref.block)
                if ref.section == "tools"
                else (local.count_block(ref.block))
            )
    else:
        total = counter.count_request(req)
    messages = _messages(req)
    for call in calls:
        if call.placeholder is None or call.result_path is None:
            continue
        i, j = call.result_path
        total += call.tokens - local.count_block(messages[i]["content"][j])
    return total


def clear_plan(
    request: Any,
    *,
    keep: int | Mapping[str, Any] = 3,
    trigger: int | Mapping[str, Any] | None = 100_000,
    clear_at_least: int | Mapping[str, Any] | None = 30_000,
    exclude_tools: Collection[str] = (),
    model: str | None = None,
    counter: TokenCounter | None = None,
) -> frozenset[str]:
    """The tool_use ids whose results to clear: a pure function of the request that, as a
    conversation grows, changes only in steps of ``clear_at_least`` tokens.

    The rule:

    1. If the request holds fewer than ``trigger`` input tokens, clear nothing. ``trigger`` is
       tokens (an int, or ``{"type": "input_tokens", "value": N}``) or a count of tool calls
       (``{"type": "tool_uses", "value": N}``), as in the server's edit. The tokens are
       counted on the request as given, with two choices that keep the count growing with
       the conversation: earlier turns' thinking counts even on models that drop it, and
       results tidyctx already replaced count at their original size (so the plan for an
       already-trimmed request is the same as for the original).
    2. The candidates are every answered call except the last ``keep`` (an int or
       ``{"type": "tool_uses", "value": K}``) and calls of ``exclude_tools``.
    3. Walk the candidates in order, adding up their result tokens, and cut the run where the
       running sum reaches a multiple of ``clear_at_least`` (an int or
       ``{"type": "input_tokens", "value": N}``). Clear the complete chunks only: every
       candidate up to the last cut.

    Worked example: results of 4k tokens each, ``keep=1``, ``clear_at_least=10k``. With
    candidates c1..c2 (8k) nothing is cleared; c1..c3 reach 12k ≥ 10k, so c1..c3 are cleared;
    c4 (16k) changes nothing; c5 reaches 20k: c1..c5; c6, c7 (24k, 28k) nothing; c8 (32k):
    c1..c8. The request changes in the history at turns 3, 5 and 8 only, each time clearing
    about ``clear_at_least`` tokens.

    Why this keeps the cached prefix intact: a growing conversation only appends calls, so the
    candidates only append (the keep window slides forward) and the running sums of the earlier
    candidates never change. The cleared set is therefore monotone, and it changes only when
    the candidates' total crosses another multiple of ``clear_at_least``; between those turns
    the cleared request is last turn's request plus the new turn, byte for byte, and the cache
    written last turn is read whole. Each step clears about ``clear_at_least`` tokens (a chunk
    holds between ``clear_at_least`` minus one result and ``clear_at_least`` plus one result),
    so one rewrite of the cache buys a large saving (see :func:`clearing_tradeoff`).

    With ``clear_at_least`` 0 or None every candidate is cleared, which is what the server and
    LangChain's ``ClearToolUsesEdit(clear_at_least=0)`` do: the boundary then moves every turn
    (each call leaving the keep window is cleared at once) and every turn rewrites the cache
    from that call on, which can cost more than never clearing.

    ``model`` is the model the request is sent to (default: the request's ``model``);
    ``counter`` counts the tokens the trigger compares (default: a LocalCounter for
    ``model``), and the results when it is a LocalCounter
    (:func:`~tidyctx.tokens.local_counter`).
    """
    req = request if isinstance(request, Mapping) else start(request)[0]
    keep_n = _amount(keep, "keep", ("tool_uses",))[1]
    trigger_kind, trigger_n = _amount(trigger, "trigger", ("input_tokens", "tool_uses"))
    chunk = _amount(clear_at_least, "clear_at_least", ("input_tokens",))[1]
    if isinstance(exclude_tools, str):
        raise ValueError("exclude_tools must be a list of tool names, not a string")
    local = local_counter(counter, model or req.get("model"))
    calls = tool_calls(req, counter=local)
    if trigger_kind == "tool_uses":
        if len(calls) < trigger_n:
            return frozenset()
    elif trigger_n > 0 and _effective_tokens(req, calls, counter, local) < trigger_n:
        return frozenset()
    older = calls[: max(0, len(calls) - keep_n)]
    excluded = set(exclude_tools)
    candidates = [c for c in older if c.result_path is not None and c.name not in excluded]
    if not chunk:
        return frozenset(c.id for c in candidates)
    running = 0
    cut = 0
    for k, call in enumerate(candidates):
        before = running // chunk
        running += call.tokens
        if running // chunk > before:
            cut = k + 1
    return frozenset(c.id for c in candidates[:cut])


# ---------------------------------------------------------------------------- clearing


def result_text(content: Any) -> str:
    """A tool_result's content as text: what a placeholder's store key holds, the exact
    original of a cleared or deduplicated result.

    A string is itself; text blocks are joined by newlines; every other block (an image, a
    document, a search result) is its canonical JSON (:func:`~tidyctx._request.cache_content`:
    without its ``cache_control``), so an image comes back with its data.

    >>> result_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    'a\\nb'
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return canonical_json(content).decode("utf-8")
    parts: list[str] = []
    for block in content:
        if isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            parts.append(canonical_json(cache_content(block)).decode("utf-8"))
    return "\n".join(parts)


def _images(content: Any) -> list[Mapping[str, Any]]:
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, Mapping) and b.get("type") == "image"]


def _inner_marker(content: Any) -> Any:
    """The last cache_control inside a tool_result's content, to carry over."""
    if not isinstance(content, list):
        return None
    for block in reversed(content):
        if isinstance(block, Mapping) and block.get("cache_control") is not None:
            return block["cache_control"]
    return None


def _expand(key: str) -> str:
    return expand_call(key)


def _cleared_text(
    name: str,
    call_id: str,
    tokens: int,
    images: int,
    key: str | None,
    input_cleared: bool,
    input_key: str | None,
) -> str:
    text = f"{_CLEARED_HEAD}{name} ({call_id}), {tokens:,} tokens"
    if images:
        text += f" and {images} image{'s' if images > 1 else ''}"
    if key is not None:
        text += f"; read it back with {_expand(key)}"
    if input_cleared:
        text += "; its input was cleared too"
        if input_key is not None:
            text += f": {_expand(input_key)}"
    return text + "]"


def _with_text(block: Mapping[str, Any], text: str, marker: Any = None) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": "text", "text": text}
    if marker is not None:
        inner["cache_control"] = marker
    return {**block, "content": [inner]}


def _image_placeholder(
    image: Mapping[str, Any], counter: LocalCounter, store: Store | None
) -> dict[str, Any]:
    bare = {k: v for k, v in image.items() if k != "cache_control"}
    tokens = counter.count_block(bare)
    text = f"[tidyctx: image cleared (~{tokens:,} tokens)"
    if store is not None:  # its JSON, data included: the exact block
        text += f"; its block: {_expand(keep_text(store, canonical_json(bare).decode('utf-8')))}"
    out: dict[str, Any] = {"type": "text", "text": text + "]"}
    if image.get("cache_control") is not None:
        out["cache_control"] = image["cache_control"]
    return out


def clear_results(
    request: Any,
    ids: Collection[str],
    *,
    clear_tool_inputs: bool | Collection[str] = False,
    clear_images: bool = False,
    store: Store | None = None,
    counter: TokenCounter | None = None,
) -> Any:
    """Replace the results of the calls in ``ids`` by a placeholder; the input is not changed.

    A cleared result stays a ``tool_result`` with the same ``tool_use_id``, ``is_error`` and
    ``cache_control``; its content becomes one text block::

        [tidyctx: cleared result of read_file (toolu_01), 5,012 tokens and 2 images;
         read it back with tidyctx_expand(id="tc_0123456789abcdef")]

    (on one line). The tokens are the result block's (:class:`Call`), images included. The
    "read it back" part is there when a ``store`` is given: the original content, as
    :func:`result_text`, is kept in it under that key.

    ``clear_tool_inputs`` (True, or a list of tool names) also replaces the ``input`` of those
    cleared calls with ``{}`` (an input must be an object); the placeholder says so and, with a
    store, names the key of the original input (its canonical JSON).

    ``clear_images`` also replaces, by ``[tidyctx: image cleared (~1,600 tokens); its block:
    tidyctx_expand(id="tc_...")]`` (the id with a ``store``: the image block's canonical JSON),
    the images in results that are kept (not in ``ids``) but older than the last call in ``ids``:
    excluded tools' results, for instance. The line follows the cleared batch, never the keep
    window, because adding or removing an image anywhere invalidates the cached messages
    (https://platform.claude.com/docs/en/build-with-claude/prompt-caching, "What invalidates
    the cache"); so images go only when a batch rewrites history anyway.

    Results already replaced by tidyctx are left as they are (so the function is idempotent),
    and a request or bare message list comes back in the shape given.
    """
    req, was_list = start(request)
    _clear_in_place(
        req,
        ids,
        clear_tool_inputs=clear_tool_inputs,
        clear_images=clear_images,
        store=store,
        counter=_counter(req, counter),
    )
    return shaped(req, was_list)


class _Sources:
    """What the store keeps for a result or an input that is cleared or deduplicated: its
    content as ``source`` (the request a transform was given) holds it, when that differs
    from the request being cleared (``trim`` clears results it cut: the store gets the
    original, not the cut)."""

    def __init__(self, source: Mapping[str, Any] | None) -> None:
        self.results: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        for message in _messages(source or {}):
            content = message.get("content") if isinstance(message, Mapping) else None
            for block in content if isinstance(content, list) else []:
                if not isinstance(block, Mapping):
                    continue
                if block.get("type") == "tool_result":
                    self.results[str(block.get("tool_use_id"))] = block.get("content")
                elif block.get("type") == "tool_use":
                    self.inputs[str(block.get("id"))] = block.get("input")

    def result(self, call_id: str, content: Any) -> Any:
        return self.results.get(call_id, content)

    def input(self, call_id: str, args: Any) -> Any:
        return self.inputs.get(call_id, args)


def _clear_in_place(
    req: Request,
    ids: Collection[str],
    *,
    clear_tool_inputs: bool | Collection[str],
    clear_images: bool,
    store: Store | None,
    counter: LocalCounter,
    source: Mapping[str, Any] | None = None,
) -> None:
    """:func:`clear_results` on a request the caller owns (a fresh copy, or a :func:`_spine`):
    its blocks are replaced in place. ``source``: the request whose contents the store keeps
    (see :class:`_Sources`; default ``req``)."""
    sources = _Sources(source)
    wanted = set(ids)
    calls = tool_calls(req, counter=counter)
    messages = _messages(req)
    last = max((k for k, c in enumerate(calls) if c.id in wanted), default=-1)
    for k, call in enumerate(calls):
        if call.result_path is None:
            continue
        i, j = call.result_path
        block = messages[i]["content"][j]
        if call.id in wanted:
            clear_input = _tool_set(clear_tool_inputs, call.name)
            messages[i]["content"][j] = _cleared(call, block, req, clear_input, store, sources)
        elif clear_images and k < last and call.placeholder is None:
            content = block.get("content")
            if _images(content):
                messages[i]["content"][j] = {
                    **block,
                    "content": [
                        _image_placeholder(b, counter, store)
                        if isinstance(b, Mapping) and b.get("type") == "image"
                        else b
                        for b in content
                    ],
                }


def _cleared(
    call: Call,
    block: dict[str, Any],
    req: Request,
    clear_input: bool,
    store: Store | None,
    sources: _Sources,
) -> dict[str, Any]:
    """The cleared form of one result (and, when asked, its tool_use's input, in place)."""
    ui, uj = call.use_path
    use = req["messages"][ui]["content"][uj]
    args = use.get("input")
    input_cleared = clear_input and isinstance(args, Mapping) and bool(args)
    input_key = None
    if input_cleared:
        if store is not None:
            kept = sources.input(call.id, args)
            input_key = keep_text(store, canonical_json(kept).decode("utf-8"))
        req["messages"][ui]["content"][uj] = {**use, "input": {}}
    marker = _inner_marker(block.get("content"))
    parsed = _placeholder_kind(block, call.name, call.id)
    if parsed is not None:
        kind, tokens, m = parsed
        if kind == "cleared":
            if not input_cleared:
                return block
            # Cleared before without its input: say so now.
            images = int(m["images"] or 0)
            text = _cleared_text(call.name, call.id, tokens, images, m["key"], True, input_key)
            return _with_text(block, text, marker)
        # A dedupe reference ("same result as ...") that is now cleared itself.
        key = m["key"]
        text = _cleared_text(call.name, call.id, tokens, 0, key, input_cleared, input_key)
        return _with_text(block, text, marker)
    content = block.get("content")
    original = sources.result(call.id, content)
    key = keep_text(store, result_text(original)) if store is not None else None
    text = _cleared_text(
        call.name, call.id, call.tokens, len(_images(content)), key, input_cleared, input_key
    )
    return _with_text(block, text, marker)


# ---------------------------------------------------------------------------- dedupe


def _content_hash(content: Any) -> str | None:
    if isinstance(content, str):
        return block_hash([{"type": "text", "text": content}]) if content else None
    if isinstance(content, list) and content:
        try:
            key = content_key(content)
        except TypeError:
            key = None
        if key is None:
            return block_hash([cache_content(b) for b in content])
        # Remembered by content: the hash of every earlier result is asked for on each turn.
        return memoized(
            "content-hash",
            key,
            lambda: block_hash([cache_content(b) for b in content]),
            lambda _: shared_size(key) + 64,
        )
    return None


def _content_tokens(content: Any, counter: LocalCounter) -> int:
    if isinstance(content, str):
        return counter.count_text(content)
    if isinstance(content, list):
        return sum(counter.count_block(cache_content(b)) for b in content)
    return 0


def dedupe(
    request: Any,
    *,
    store: Store | None = None,
    counter: TokenCounter | None = None,
    cleared: Collection[str] = frozenset(),
    min_tokens: int = DEDUPE_MIN_TOKENS,
) -> Any:
    """Replace a result identical to an earlier one by a reference to that earlier call.

    A duplicate has the same content as an earlier result (same content hash, cache markers
    aside) and the same ``is_error``; its content becomes one text block::

        [tidyctx: same result as toolu_01 (read_file, messages[4]), 5,012 tokens;
         read it back with tidyctx_expand(id="tc_0123456789abcdef")]

    (the "read it back" part when a ``store`` is given; the content is kept under that key).
    The same call repeated (same tool, same input) is a duplicate only when it returned the
    same content: a file read again after an edit is news, and calling it "the same result"
    would tell the model the file had not changed.

    The copy kept whole is the first one that is not in ``cleared`` (the ids a clearing batch
    removes, see :func:`clear_plan`), and later copies point back to it. So when the earlier
    copy is cleared, a later copy is kept whole instead of pointing at a placeholder. A
    reference always points backwards, so appending turns never changes how an earlier result
    looks; only a clearing batch (a larger ``cleared``) can move the whole copy forward.

    Results with fewer than ``min_tokens`` content tokens are left alone (cheaper to repeat
    than to reference), as are results in ``cleared`` and results tidyctx already replaced.
    """
    req, was_list = start(request)
    dedupe_owned(
        req, store=store, counter=_counter(req, counter), cleared=cleared, min_tokens=min_tokens
    )
    return shaped(req, was_list)


def dedupe_owned(
    req: Request,
    *,
    store: Store | None,
    counter: LocalCounter,
    cleared: Collection[str] = frozenset(),
    min_tokens: int = DEDUPE_MIN_TOKENS,
    source: Mapping[str, Any] | None = None,
) -> None:
    """:func:`dedupe` in place, on a request the caller owns (a fresh copy, or a
    :func:`_spine`): its blocks are replaced, the request not copied. ``source``: the request
    whose contents the store keeps (see :class:`_Sources`; default ``req``)."""
    sources = _Sources(source)
    gone = set(cleared)
    messages = _messages(req)
    anchors: dict[tuple[str, bool], Call] = {}
    for call in tool_calls(req, counter=counter):
        if call.result_path is None or call.placeholder is not None or call.id in gone:
            continue
        i, j = call.result_path
        block = messages[i]["content"][j]
        content = block.get("content")
        digest = _content_hash(content)
        if digest is None:
            continue
        group = (digest, call.is_error)
        anchor = anchors.get(group)
        if anchor is None:
            anchors[group] = call
            continue
        size = _content_tokens(content, counter)
        if size < min_tokens:
            continue
        assert anchor.result_path is not None
        where = (anchor.id, anchor.name, anchor.result_path[0])
        original = sources.result(call.id, content)
        same = _same_as(block, where, call.tokens, size, original, store, counter)
        if same is not None:
            messages[i]["content"][j] = same


def _same_as(
    block: Mapping[str, Any],
    anchor: tuple[str, str, int],
    tokens: int,
    size: int,
    original: Any,
    store: Store | None,
    counter: LocalCounter,
) -> dict[str, Any] | None:
    """``block`` as a reference to the earlier result ``anchor`` (its call id, tool name and
    message index); ``original`` (the content as sent) is kept in ``store``. None when the
    reference would be as long as the result (``size`` tokens) it stands for: long call ids
    and a short result save nothing, so the result is repeated and nothing is stored."""
    call_id, name, message = anchor
    text = f"{_SAME_HEAD}{call_id} ({name}, messages[{message}]), {tokens:,} tokens"
    raw = result_text(original) if store is not None else ""
    if store is not None:
        text += f"; read it back with {_expand(store_key(raw))}"
    if counter.count_text(text + "]") >= size:
        return None
    if store is not None:
        keep_text(store, raw)
    return _with_text(block, text + "]", _inner_marker(block.get("content")))


class DedupeFold:
    """:func:`dedupe_owned` (no ``cleared`` ids) one result at a time, in the order of the
    messages: what a transform that resumes from an earlier prefix of the conversation keeps.

    :func:`dedupe_owned` takes calls in the order of their tool_use blocks, this in the order
    of their results. The two agree unless a result comes before that of an earlier call with
    the same content (results sent in another order than their calls); :meth:`result` then
    answers ``None``, and the caller dedupes the whole request instead.
    """

    __slots__ = ("anchors", "open_ids", "uses")

    def __init__(self) -> None:
        self.open_ids: dict[str, tuple[int, str]] = {}  # call id -> (tool_use index, name)
        self.uses = 0
        # (content hash, is_error) -> the first result's (tool_use index, call id, name, message)
        self.anchors: dict[tuple[str, bool], tuple[int, str, str, int]] = {}

    def copy(self) -> DedupeFold:
        """Where this one stands, to go on apart from it."""
        new = DedupeFold()
        new.open_ids, new.uses, new.anchors = dict(self.open_ids), self.uses, dict(self.anchors)
        return new

    def use(self, block: Mapping[str, Any]) -> None:
        """A tool_use block, as :func:`tool_calls` reads it."""
        if isinstance(block.get("id"), str):
            self.open_ids[block["id"]] = (self.uses, str(block.get("name", "")))
            self.uses += 1

    def result(
        self,
        message: int,
        block: Mapping[str, Any],
        original: Any,
        *,
        store: Store | None,
        counter: LocalCounter,
        min_tokens: int = DEDUPE_MIN_TOKENS,
    ) -> Mapping[str, Any] | None:
        """The tool_result ``block`` of ``messages[message]`` as :func:`dedupe_owned` leaves
        it (``original``: its content as sent), or None when the order of the calls decides
        otherwise (see the class notes)."""
        call_id = str(block.get("tool_use_id"))
        found = self.open_ids.pop(call_id, None)
        if found is None:
            return block
        index, name = found
        if _placeholder_kind(block, name, call_id) is not None:
            return block
        content = block.get("content")
        digest = _content_hash(content)
        if digest is None:
            return block
        group = (digest, block.get("is_error") is True)
        anchor = self.anchors.get(group)
        if anchor is None:
            self.anchors[group] = (index, call_id, name, message)
            return block
        if anchor[0] > index:
            return None
        size = _content_tokens(content, counter)
        if size < min_tokens:
            return block
        same = _same_as(
            block, anchor[1:], counter.count_block(block), size, original, store, counter
        )
        return block if same is None else same


# ---------------------------------------------------------------------------- server side


def server_side_edit(
    *,
    keep: int | Mapping[str, Any] | None = None,
    trigger: int | Mapping[str, Any] | None = None,
    clear_at_least: int | Mapping[str, Any] | None = None,
    exclude_tools: Collection[str] | None = None,
    clear_tool_inputs: bool | Collection[str] | None = None,
) -> dict[str, Any]:
    """The ``clear_tool_uses_20250919`` edit with the same meaning as these parameters.

    Only the keys given (not None) are set; the server's defaults are a 100,000-token trigger
    and ``keep`` 3 tool uses, no ``clear_at_least``
    (https://platform.claude.com/docs/en/build-with-claude/context-editing). Ints become the
    server's objects. Note the server's ``clear_at_least`` is a minimum per clearing (the edit
    is skipped when less can be cleared), not a chunk size: when the edit applies, the server
    clears the oldest tool uses down to ``keep``, so its boundary follows the keep window
    rather than the chunks of :func:`clear_plan`.

    >>> server_side_edit(keep=3, trigger=100_000, clear_at_least=30_000)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'type': 'clear_tool_uses_20250919',
     'trigger': {'type': 'input_tokens', 'value': 100000},
     'keep': {'type': 'tool_uses', 'value': 3},
     'clear_at_least': {'type': 'input_tokens', 'value': 30000}}
    """
    edit: dict[str, Any] = {"type": CLEAR_TOOL_USES}
    if trigger is not None:
        kind, n = _amount(trigger, "trigger", ("input_tokens", "tool_uses"))
        edit["trigger"] = {"type": kind, "value": n}
    if keep is not None:
        edit["keep"] = {"type": "tool_uses", "value": _amount(keep, "keep", ("tool_uses",))[1]}
    if clear_at_least is not None:
        n = _amount(clear_at_least, "clear_at_least", ("input_tokens",))[1]
        if n:
            edit["clear_at_least"] = {"type": "input_tokens", "value": n}
    if exclude_tools is not None:
        if isinstance(exclude_tools, str):
            raise ValueError("exclude_tools must be a list of tool names, not a string")
        edit["exclude_tools"] = list(exclude_tools)
    if clear_tool_inputs is not None:
        if isinstance(clear_tool_inputs, str):
            raise ValueError("clear_tool_inputs must be a bool or a list of tool names")
        edit["clear_tool_inputs"] = (
            clear_tool_inputs if isinstance(clear_tool_inputs, bool) else list(clear_tool_inputs)
        )
    return edit


def with_server_side(request: Any, edit: Mapping[str, Any]) -> Any:
    """Add ``edit`` to the request's ``context_management.edits``; the history is not touched.

    An edit of the same type already there is replaced in place; other edits are kept, and a
    ``clear_thinking_20251015`` edit is moved first, where the API requires it
    (https://platform.claude.com/docs/en/build-with-claude/context-editing).

    The request is then for the beta endpoint: the caller must send the beta header
    ``context-management-2025-06-27`` (:data:`CONTEXT_MANAGEMENT_BETA`), e.g.
    ``client.beta.messages.create(**request, betas=[CONTEXT_MANAGEMENT_BETA])``; the plain
    ``client.messages.create`` takes no ``context_management``.

    >>> out = with_server_side({"messages": [], "context_management": {"edits": [
    ...     {"type": "clear_thinking_20251015", "keep": "all"}]}}, server_side_edit(keep=2))
    >>> [e["type"] for e in out["context_management"]["edits"]]
    ['clear_thinking_20251015', 'clear_tool_uses_20250919']
    """
    req, was_list = start(request)
    if was_list:
        raise ValidationError(
            "request",
            "a bare message list cannot carry context_management",
            "Pass the request dict (model, messages, ...)",
        )
    return with_edit(req, edit)


def with_edit(request: Request, edit: Mapping[str, Any]) -> Request:
    """:func:`with_server_side` on a plain request: a new request dict, ``request`` left alone
    (the new one shares its history)."""
    new = to_plain(dict(edit))
    if not isinstance(new.get("type"), str):
        raise ValueError(f"an edit needs a string 'type', got {edit!r}")
    config = request.get("context_management")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValidationError(
            "context_management", f"must be an object, got {type(config).__name__}"
        )
    edits = config.get("edits") or []
    if not isinstance(edits, list):
        raise ValidationError("context_management.edits", "must be a list")
    replaced = False
    merged: list[Any] = []
    for old in edits:
        if isinstance(old, Mapping) and old.get("type") == new["type"]:
            if not replaced:
                merged.append(new)
                replaced = True
            continue
        merged.append(old)
    if not replaced:
        merged.append(new)
    first = [e for e in merged if isinstance(e, Mapping) and e.get("type") == CLEAR_THINKING]
    rest = [e for e in merged if not (isinstance(e, Mapping) and e.get("type") == CLEAR_THINKING)]
    return {**request, "context_management": {**config, "edits": first + rest}}


# ---------------------------------------------------------------------------- tradeoff


def clearing_tradeoff(
    request_before: Any, request_after: Any, counter: LocalCounter | None = None
) -> str:
    """What a clearing step costs and saves, in input-token equivalents.

    ``request_before`` is what the cache holds (the request as it would be sent without this
    step), ``request_after`` the request with it. Saved: the tokens the step removed, each
    read from the cache (0.1x) on every later turn. Cost: the step rewrites the cache from the
    first changed block to the end of the request, once, at the 5-minute write price (1.25x).
    It pays back after ``write / saving`` later turns. (The estimate is conservative: it does
    not credit the read of that tail the turn would have paid anyway.) ``counter``: a
    LocalCounter to count with (default: one for the request's model).

    >>> use = {"type": "tool_use", "id": "t1", "name": "cat", "input": {}}
    >>> res = {"type": "tool_result", "tool_use_id": "t1", "content": "x " * 5000}
    >>> req = {"model": "claude-sonnet-4-6", "messages": [
    ...     {"role": "user", "content": "go"}, {"role": "assistant", "content": [use]},
    ...     {"role": "user", "content": [res]}]}
    >>> clearing_tradeoff(req, clear_results(req, {"t1"}))
    'cleared 1 result (5,581 tokens): rewrites 68 cached tokens once (≈85 token-equivalents), \
saves 558 token-equivalents per later turn: pays back after 1 turn'
    """
    return _tradeoff(start(request_before)[0], start(request_after)[0], counter)


def _tradeoff(before: Request, after: Request, counter: LocalCounter | None) -> str:
    """:func:`clearing_tradeoff` of two plain requests."""
    model = str(after.get("model") or before.get("model") or "") or None
    counter = counter or LocalCounter(model)
    old = {c.id: c for c in tool_calls(before, counter=counter)}
    newly = [
        c
        for c in tool_calls(after, counter=counter)
        if c.placeholder is not None and (c.id not in old or old[c.id].placeholder is None)
    ]
    removed = counter.count_request(before) - counter.count_request(after)
    lay_before = layout(before, counter, model)
    lay_after = layout(after, counter, model)
    shared = 0
    for a, b in zip(lay_before.keys, lay_after.keys, strict=False):
        if a != b:
            break
        shared += 1
    if shared == len(lay_after.keys) and len(lay_after.keys) <= len(lay_before.keys):
        rewrite = 0
    else:
        rewrite = lay_after.total - (lay_after.cum[shared - 1] if shared else 0)
    if not newly and removed <= 0:
        return (
            "nothing cleared: the cached prefix is intact"
            if not rewrite
            else (f"nothing cleared, but the history changed: rewrites {rewrite:,} cached tokens")
        )
    n = len(newly)
    what = f"cleared {n} result{'s' if n != 1 else ''} ({removed:,} tokens)"
    write = rewrite * CACHE_WRITE
    saving = removed * CACHE_READ
    head = (
        f"{what}: rewrites {rewrite:,} cached tokens once (≈{round(write):,} "
        f"token-equivalents), saves {round(saving):,} token-equivalents per later turn"
    )
    if saving <= 0:
        return head + ": never pays back"
    turns = max(1, math.ceil(write / saving))
    return head + f": pays back after {turns} turn{'s' if turns != 1 else ''}"


# ---------------------------------------------------------------------------- transform


def _names(value: Any, what: str, *, flag: bool) -> Any:
    """A list of tool names as a tuple (or a bool, for ``flag`` options); a string refused."""
    if flag and isinstance(value, bool):
        return value
    if isinstance(value, str):
        kind = "a bool or a list of tool names" if flag else "a list of tool names, not a string"
        raise ValueError(f"{what} must be {kind}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Clearing:
    """When and which old tool results to clear: the options of :func:`clear` and of
    ``trim(clearing=...)``.

    The names and meaning are those of Anthropic's server-side edit ``clear_tool_uses_20250919``
    (https://platform.claude.com/docs/en/build-with-claude/context-editing), and each option
    takes the server's form too (``{"type": "tool_uses", "value": 3}``):

    - ``keep``: the latest tool uses whose results stay whole (an int or ``{"type":
      "tool_uses", "value": N}``).
    - ``trigger``: clear nothing while the request holds fewer input tokens than this (an int
      or ``{"type": "input_tokens", "value": N}``), or fewer tool uses (``{"type": "tool_uses",
      "value": N}``). 0 or None: no threshold. The default is the server's, 100,000.
    - ``clear_at_least``: clear in chunks of at least this many tokens, so that the cached
      prefix is rewritten rarely (see :func:`clear_plan`); 0 or None clears every result
      older than ``keep`` at once, every turn.
    - ``exclude_tools``: tool names whose results are never cleared.
    - ``clear_tool_inputs``: True, or a list of tool names: also replace the cleared calls'
      inputs by ``{}``.
    - ``clear_images``: also replace the images in results that are kept but older than the
      cleared batch (see :func:`clear_results`).
    - ``server_side``: clear nothing here; add the equivalent edit (:meth:`edit`) to the
      request's ``context_management`` instead, and let the server clear. Send such a request
      with ``client.beta.messages.create(**request, betas=[CONTEXT_MANAGEMENT_BETA])``.

    The local plan and the server differ in one way: the server's ``clear_at_least`` is a
    minimum per clearing, not a chunk size (see :func:`server_side_edit`).

    >>> Clearing(keep=10, trigger=0).edit()  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'clear_tool_uses_20250919', 'keep': {'type': 'tool_uses', 'value': 10},
     'clear_at_least': {'type': 'input_tokens', 'value': 30000}, 'exclude_tools': [],
     'clear_tool_inputs': False}
    """

    keep: int | Mapping[str, Any] = 3
    trigger: int | Mapping[str, Any] | None = 100_000
    clear_at_least: int | Mapping[str, Any] | None = 30_000
    exclude_tools: Collection[str] = ()
    clear_tool_inputs: bool | Collection[str] = False
    clear_images: bool = False
    server_side: bool = False

    def __post_init__(self) -> None:
        # Checked now, in the server edit's forms too, not on the first request.
        _amount(self.keep, "keep", ("tool_uses",))
        _amount(self.trigger, "trigger", ("input_tokens", "tool_uses"))
        _amount(self.clear_at_least, "clear_at_least", ("input_tokens",))
        tools = _names(self.exclude_tools, "exclude_tools", flag=False)
        inputs = _names(self.clear_tool_inputs, "clear_tool_inputs", flag=True)
        object.__setattr__(self, "exclude_tools", tools)
        object.__setattr__(self, "clear_tool_inputs", inputs)

    def plan(
        self, request: Any, *, model: str | None = None, counter: TokenCounter | None = None
    ) -> frozenset[str]:
        """The tool_use ids to clear in ``request`` (:func:`clear_plan` with these options).

        None on a model that checks the prefix of thinking blocks
        (:data:`tidyctx.tokens.PRESERVED_THINKING_MODELS`): clearing an earlier result there
        fails the check for every later thinking block, a 400 by default
        (https://platform.claude.com/docs/en/build-with-claude/preserved-thinking, "What counts
        as an edit"). The server-side edit (``server_side=True``) is not an edit in that sense.
        """
        target = model or (request.get("model") if isinstance(request, Mapping) else None)
        if runs_prefix_check(target if isinstance(target, str) else None):
            return frozenset()
        return clear_plan(
            request,
            keep=self.keep,
            trigger=self.trigger,
            clear_at_least=self.clear_at_least,
            exclude_tools=self.exclude_tools,
            model=model,
            counter=counter,
        )

    def edit(self) -> dict[str, Any]:
        """The equivalent server-side edit (:func:`server_side_edit`). A ``trigger`` of 0 or
        None is left out of it, so the server's default (100,000 input tokens) applies there:
        give a trigger to clear at the same point both ways."""
        return server_side_edit(
            keep=self.keep,
            trigger=self.trigger if self.trigger else None,
            clear_at_least=self.clear_at_least,
            exclude_tools=self.exclude_tools,
            clear_tool_inputs=self.clear_tool_inputs,
        )


@dataclass(frozen=True, slots=True)
class Clear(Edge):
    """The transform :func:`clear` returns; call it on a request."""

    clearing: Clearing = field(default_factory=Clearing)
    dedupe: bool = True
    store: Store | None = field(default=None, compare=False)
    model: str | None = None
    counter: TokenCounter | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        c = self.clearing
        side = ", server_side=True" if c.server_side else ""
        return (
            f"clear(keep={c.keep!r}, trigger={c.trigger!r}, "
            f"clear_at_least={c.clear_at_least!r}{side})"
        )

    def _counter(self, request: Mapping[str, Any]) -> LocalCounter:
        return local_counter(self.counter, self.model or request.get("model"))

    def _plan(self, request: Request) -> frozenset[str]:
        return self.clearing.plan(request, model=self.model, counter=self.counter)

    def _cleared(
        self,
        request: Request,
        ids: frozenset[str],
        counter: LocalCounter,
        source: Request | None = None,
    ) -> Request:
        """``request`` with the results of ``ids`` cleared, then deduplicated (a new request;
        ``request`` is left alone)."""
        out = _spine(request)
        self._clear_owned(out, ids, counter, source)
        return out

    def apply_owned(
        self, request: Request, counter: LocalCounter, source: Request | None = None
    ) -> None:
        """The clearing step (plan, clear, dedupe) in place, on a request the caller owns:
        ``trim`` runs it on its own copy, and so converts nothing again. ``source``: the
        request the caller was given, whose contents the store keeps."""
        self._clear_owned(request, self._plan(request), counter, source)

    def _clear_owned(
        self,
        request: Request,
        ids: frozenset[str],
        counter: LocalCounter,
        source: Request | None = None,
    ) -> None:
        """Clear ``ids`` and dedupe in place, in a request the caller owns."""
        _clear_in_place(
            request,
            ids,
            clear_tool_inputs=self.clearing.clear_tool_inputs,
            clear_images=self.clearing.clear_images,
            store=self.store,
            counter=counter,
            source=source,
        )
        if self.dedupe:
            dedupe_owned(request, store=self.store, counter=counter, cleared=ids, source=source)

    def apply(self, request: Request) -> Request:
        counter = self._counter(request)
        # Writes renew first what the markers passed on name (see transforms._recover).
        writer = self if self.store is None else replace(self, store=guarded(self.store, request))
        if self.clearing.server_side:
            out = with_edit(request, self.clearing.edit())
            if self.dedupe:
                out = _spine(out)
                dedupe_owned(out, store=writer.store, counter=counter)
        else:
            out = writer._cleared(request, self._plan(request), counter)
        # Every id a placeholder names renewed; a placeholder whose text the store lost since
        # this call put it (a store too small for the request) goes back to the result.
        return out if self.store is None else settle(self.store, request, out, what="clear")

    def describe(self, before: Request, after: Request) -> str:
        """For :func:`tidyctx.explain`: what this step costs and saves this turn.

        The cache holds last turn's request as this transform sent it, so the step is priced
        against this request cleared with last turn's plan (the request without its last
        assistant turn and the user message after it): between batches nothing is rewritten.
        """
        return self.priced(before, after)

    def priced(self, before: Request, after: Request, source: Request | None = None) -> str:
        """:meth:`describe`; ``source``: the request whose contents the store keeps, when the
        step ran on a cut copy of it (``trim``)."""
        if self.clearing.server_side:
            return (
                f"server-side clearing ({CLEAR_TOOL_USES}); send it with "
                f"client.beta.messages.create(..., betas=[{CONTEXT_MANAGEMENT_BETA!r}])"
            )
        req = before
        counter = self._counter(req)
        messages = _messages(req)
        baseline = req
        last_reply = messages[-2] if len(messages) >= 3 else None
        if isinstance(last_reply, Mapping) and last_reply.get("role") == "assistant":
            previous = {**req, "messages": messages[:-2]}
            baseline = self._cleared(req, self._plan(previous), counter, source)
        if baseline != req and baseline == after:
            kept = sum(1 for c in tool_calls(after, counter=counter) if c.placeholder)
            removed = counter.count_request(req) - counter.count_request(after)
            return (
                f"no new batch: {kept} result{'s' if kept != 1 else ''} stay cleared "
                f"({removed:,} tokens); the cached prefix is intact"
            )
        return _tradeoff(baseline, after, counter)


def clear(
    clearing: Clearing | None = None,
    /,
    *,
    dedupe: bool = True,
    store: Store | None = None,
    model: str | None = None,
    counter: TokenCounter | None = None,
) -> Clear:
    """A transform: :func:`clear_plan`, then :func:`clear_results`, then :func:`dedupe`.

    ``clearing`` says when and which results to clear (:class:`Clearing`; default
    ``Clearing()``: keep the last 3 tool uses, from 100,000 input tokens on, in chunks of
    30,000). ``dedupe`` then replaces a result identical to an earlier one by a reference to
    it. ``store`` keeps what is removed, for :func:`~tidyctx.transforms._expand.expand_tool`.
    ``model`` is the model the request is sent to (default: the request's ``model``), for
    counting; ``counter`` a :class:`~tidyctx.tokens.TokenCounter` (default: a
    :class:`~tidyctx.tokens.LocalCounter` for ``model``) for the ``trigger``; block sizes are
    counted with it when it is a LocalCounter (:func:`~tidyctx.tokens.local_counter`). With
    ``explain()`` the step reports what it cost and saved (:func:`clearing_tradeoff`).

    >>> clear(Clearing(keep=5, trigger=50_000)).name
    'clear(keep=5, trigger=50000, clear_at_least=30000)'
    """
    if clearing is None:
        clearing = Clearing()
    if not isinstance(clearing, Clearing):
        raise TypeError(
            f"clear() takes its options as a Clearing, e.g. clear(tc.Clearing(keep=5)); got "
            f"{type(clearing).__name__}"
        )
    check_counter(counter, "clear(counter=...)")
    return Clear(clearing=clearing, dedupe=dedupe, store=store, model=model, counter=counter)
