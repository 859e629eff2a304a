"""ToolChanges: keep a conversation's first ``tools`` and send later changes inside messages.

The prompt cache hashes ``tools`` first, so an agent that drops or restores a tool mid-way
rewrites every cached token (https://platform.claude.com/docs/en/build-with-claude/prompt-caching).
The API lets a request keep its first ``tools`` and state the change where it happens: a
``role: "system"`` message inside ``messages`` with ``tool_removal`` / ``tool_addition``
blocks, which name a tool declared in ``tools`` or (beta ``inline-tools-2026-09-15``) carry
its definition (https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages).

:class:`ToolChanges` is the memory :func:`~tidyctx.order` uses for that
(``order(tools=ToolChanges())``): per conversation it keeps the tools as first sent and
every change seen since, each with the place it was first seen at (right after the last
message of that request). A request whose tools differ from the tools in effect only by
removing tools, or by restoring tools of the first list, goes out with the first list and
the change messages at their places, the same bytes on every later turn; any other change
(a tool the first list lacks, unless ``inline=True``, or a tool whose definition changed)
goes out as sent and becomes the conversation's new first list. Deferred tools
(``defer_loading: true``) are not part of the cached prefix, so they are left out of all this:
they go as sent, after the kept tools.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tidyctx._request import cache_content, canonical_json, is_deferred_tool
from tidyctx.transforms._order import ConversationMemory, is_dynamic_block

__all__ = ["TOOL_CHANGE_MODELS", "ToolChanges", "first_message_key"]

TOOL_CHANGE_MODELS = (
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-fable-5",
    "claude-mythos-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
)
"""Model name prefixes that take mid-conversation system messages and tool changes: Fable 5
and 5.x, Mythos 5 and 5.x, Opus 4.8, Opus 5 and 5.5, Sonnet 5.5 and Haiku 5.5 (not Sonnet 5)
(https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages).
Other models get their tools as sent."""


def _message_digest(message: Any) -> str:
    """A message's content as the cache sees it (no markers, no order() dynamic block)."""
    role = content = None
    if isinstance(message, Mapping):
        role, content = message.get("role"), message.get("content")
    blocks: Any = content
    if isinstance(content, str):
        blocks = [cache_content(content)] if content else []
    elif isinstance(content, list):
        blocks = [cache_content(b) for b in content if not is_dynamic_block(b)]
    return hashlib.blake2b(canonical_json([role, blocks]), digest_size=16).hexdigest()


def first_message_key(request: Mapping[str, Any]) -> str:
    """What stays the same across one conversation whose tools change: its model and its first
    message, as 32 hex digits (:func:`~tidyctx.transforms._order.conversation_key` holds the
    tools, which are what changes here)."""
    messages = request.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    model = request.get("model")
    data = canonical_json([model if isinstance(model, str) else None, _message_digest(first)])
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class _Change:
    at: int
    """How many of the client's messages come before the change message."""
    message: dict[str, Any]
    seen: int
    """How many messages the request that first showed the change had."""


@dataclass(frozen=True)
class _Conversation:
    first: tuple[dict[str, Any], ...]
    """The tools as first sent (one object for every conversation that sent the same list)."""
    known: tuple[tuple[str, str], ...]
    """The first tools: (name, digest of the definition), by name."""
    changes: tuple[_Change, ...]
    active: tuple[tuple[str, str], ...]
    """The tools in effect after the changes: (name, digest of the definition), by name."""
    length: int
    """How many messages the last request had."""
    last: str
    """The digest of the last request's last message."""


@dataclass(frozen=True)
class Rewrite:
    """What :meth:`ToolChanges.rewrite` decided for one request."""

    tools: list[Any] | None
    """The tools to send (None: as sent)."""
    inserts: tuple[_Change, ...]
    """The change messages to put into the messages, by the client's message count before."""
    note: str = ""
    """For ``describe()``: what changed this time, if anything."""


_AS_SENT = Rewrite(None, ())


def _identities(tools: list[Any]) -> dict[str, str] | None:
    """name -> digest of the canonical definition (no cache_control), or None if some tool
    has no string name or a name is used twice (left to the API to reject). Digests, not the
    definitions: the memory keeps them for every conversation."""
    out: dict[str, str] = {}
    for tool in tools:
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            return None
        name = tool["name"]
        if name in out:
            return None
        data = canonical_json(cache_content(tool))
        out[name] = hashlib.blake2b(data, digest_size=16).hexdigest()
    return out


def _reference(kind: str, name: str) -> dict[str, Any]:
    return {"type": kind, "tool": {"type": "tool_reference", "name": name}}


class ToolChanges(ConversationMemory):
    """The tools each conversation was first sent with, and the changes since: pass one to
    ``order(tools=...)``.

    For each conversation (by ``key(request)``, default :func:`first_message_key`: the model
    and the first message; a conversation whose history stops growing as it did starts
    afresh) it remembers the tools as first sent. A later request whose tools are that list
    minus some tools, or with tools of that list restored, goes out with the first list
    unchanged and a ``{"role": "system"}`` message of ``tool_removal`` / ``tool_addition``
    blocks (by ``tool_reference``) right after the last message present when the change was
    first seen; the same message goes back to the same place on every later turn, so what
    was cached before it stays a byte prefix. A tool that is not in the first list, or whose
    definition changed, makes the request go out as sent and become the new first list;
    with ``inline=True`` a new tool is added with its definition instead
    (``tool_definition``, beta ``inline-tools-2026-09-15``).

    Requests for a model outside ``models`` (name prefixes, default
    :data:`TOOL_CHANGE_MODELS`; None: every model), and requests whose messages already hold
    tool changes of the client's own, go out as sent and are not remembered.
    The request then needs the betas :func:`tidyctx.required_betas` names; the proxy and
    :func:`tidyctx.wrap` add them to the ``anthropic-beta`` header.

    Deterministic (the same requests in the same order give the same state and the same
    output), thread-safe, picklable when ``key`` is None or a module-level function. It holds
    at most ``max_conversations`` conversations, forgetting the one used longest ago, and at
    most ``max_changes`` changes per conversation (past that the tools go as sent and the
    list starts afresh).

    >>> import tidyctx as tc
    >>> t = tc.order(tools=ToolChanges())
    >>> def tool(name):
    ...     return {"name": name, "input_schema": {"type": "object"}}
    >>> talk = [{"role": "user", "content": "Fix the bug."}]
    >>> def turn(names):
    ...     return {"model": "claude-opus-4-8", "max_tokens": 64,
    ...             "tools": [tool(n) for n in names], "messages": list(talk)}
    >>> out = t(turn(["bash", "edit"]))
    >>> talk += [{"role": "assistant", "content": "Done."},
    ...          {"role": "user", "content": "Now stop."}]
    >>> out = t(turn(["bash"]))             # edit dropped: the tools stay, the change inside
    >>> [x["name"] for x in out["tools"]]
    ['bash', 'edit']
    >>> out["messages"][-1]["content"]
    [{'type': 'tool_removal', 'tool': {'type': 'tool_reference', 'name': 'edit'}}]
    >>> tc.required_betas(out)
    ['mid-conversation-tool-changes-2026-07-01']
    """

    def __init__(
        self,
        *,
        inline: bool = False,
        models: Iterable[str] | None = TOOL_CHANGE_MODELS,
        key: Callable[[Mapping[str, Any]], str] | None = None,
        max_conversations: int = 4096,
        max_changes: int = 64,
    ) -> None:
        if not isinstance(inline, bool):
            raise TypeError(f"ToolChanges(inline=...) takes True or False, got {inline!r}")
        for option, value in (
            ("max_conversations", max_conversations),
            ("max_changes", max_changes),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"ToolChanges({option}=...) takes an int, got {value!r}")
            if value < 1:
                raise ValueError(f"ToolChanges({option}={value}): must be >= 1")
        if key is not None and not callable(key):
            raise TypeError(f"ToolChanges(key=...) takes a function of the request, got {key!r}")
        prefixes: tuple[str, ...] | None = None
        if models is not None:
            prefixes = (models,) if isinstance(models, str) else tuple(models)
            if not all(isinstance(m, str) and m for m in prefixes):
                raise TypeError(
                    f"ToolChanges(models=...) takes model name prefixes (strings), got {models!r}"
                )
        self.inline = inline
        self.models = prefixes
        self.key = key
        self.max_conversations = max_conversations
        self.max_changes = max_changes
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        # canonical digest of a tools list -> the one copy conversations share
        self._firsts: OrderedDict[str, tuple[dict[str, Any], ...]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        options = []
        if self.inline:
            options.append("inline=True")
        if self.models != TOOL_CHANGE_MODELS:
            options.append(f"models={list(self.models) if self.models is not None else None!r}")
        if self.key is not None:
            options.append(f"key={getattr(self.key, '__qualname__', self.key)!s}")
        if self.max_conversations != 4096:
            options.append(f"max_conversations={self.max_conversations}")
        if self.max_changes != 64:
            options.append(f"max_changes={self.max_changes}")
        return f"ToolChanges({', '.join(options)})"

    def __len__(self) -> int:
        """The number of conversations remembered."""
        return len(self._conversations)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ToolChanges):
            return NotImplemented
        return (
            self.inline == other.inline
            and self.models == other.models
            and self.key == other.key
            and self.max_conversations == other.max_conversations
            and self.max_changes == other.max_changes
            and self._conversations == other._conversations
        )

    def key_of(self, request: Mapping[str, Any]) -> str:
        key = first_message_key(request) if self.key is None else self.key(request)
        if not isinstance(key, str):
            raise TypeError(f"ToolChanges(key=...) must return a str, got {key!r}")
        return key

    def applies_to(self, model: Any) -> bool:
        """Whether requests for ``model`` get their tool changes inside the messages."""
        if self.models is None:
            return True
        return isinstance(model, str) and model.startswith(self.models)

    def rewrite(self, request: Mapping[str, Any], *, record: bool = True) -> Rewrite:
        """What to send for ``request`` (the client's request, before order() changes it):
        the tools and the change messages to insert. With ``record``, remember it."""
        messages = request.get("messages")
        tools = request.get("tools", [])
        if not isinstance(messages, list) or not messages or not isinstance(tools, list):
            return _AS_SENT
        if not self.applies_to(request.get("model")):
            return _AS_SENT
        # Deferred tools are not part of the cached prefix: they go as sent, whatever changes
        # among them, and only the rendered ones are kept and stated as changes.
        deferred = [t for t in tools if is_deferred_tool(t)]
        tools = [t for t in tools if not is_deferred_tool(t)]
        wanted = _identities(tools)
        if wanted is None:
            return _AS_SENT
        key = self.key_of(request)
        # A token count (no max_tokens) gets the same rewrite but is no turn of the
        # conversation: remembering it would end the history the next turn continues.
        record = record and "max_tokens" in request
        with self._lock:
            state = self._conversations.get(key)
            if state is not None and _carries(state, messages, wanted):
                # order()'s own output (the change messages in place): leave it as it is.
                return Rewrite(None, ())
            if _own_changes(messages):
                # The client states its tool changes itself: its tools are its own business.
                if record:
                    self._conversations.pop(key, None)
                return _AS_SENT
            if state is not None and not _continues(state, messages):
                state = None
            rewrite, after = self._decide(state, tools, wanted, messages, record)
            if rewrite.tools is not None and deferred:
                rewrite = replace(rewrite, tools=[*rewrite.tools, *copy.deepcopy(deferred)])
            if record:
                self._conversations[key] = after
                self._conversations.move_to_end(key)
                while len(self._conversations) > self.max_conversations:
                    self._conversations.popitem(last=False)
            return rewrite

    def _decide(
        self,
        state: _Conversation | None,
        tools: list[Any],
        wanted: dict[str, str],
        messages: list[Any],
        record: bool,
    ) -> tuple[Rewrite, _Conversation]:
        length, last = len(messages), _message_digest(messages[-1])

        def fresh() -> tuple[Rewrite, _Conversation]:
            active = tuple(sorted(wanted.items()))
            return _AS_SENT, _Conversation(
                self._shared(tools) if record else tuple(tools), active, (), active, length, last
            )

        if state is None:
            return fresh()
        first = dict(state.known)
        active = dict(state.active)
        removed = sorted(name for name in active if name not in wanted)
        added: list[str] = []
        for name, definition in sorted(wanted.items()):
            if name in active:
                if active[name] != definition:
                    return fresh()  # a changed definition: no reference can say that
            elif first.get(name) == definition or (self.inline and name not in first):
                added.append(name)
            else:
                return fresh()  # a new tool (without inline) or a first-list tool redefined
        changes = state.changes
        if removed or added:
            if len(changes) >= self.max_changes:
                return fresh()
            blocks = [_reference("tool_removal", name) for name in removed]
            for name in added:
                if name in first:
                    blocks.append(_reference("tool_addition", name))
                else:
                    definition = copy.deepcopy(next(t for t in tools if t["name"] == name))
                    blocks.append(
                        {
                            "type": "tool_addition",
                            "tool": {"type": "tool_definition", "definition": definition},
                        }
                    )
            # After the request's last message; before it when that is an assistant prefill,
            # which must stay last to be continued.
            last_role = messages[-1].get("role") if isinstance(messages[-1], Mapping) else None
            at = length - 1 if last_role == "assistant" and length > 1 else length
            changes = (*changes, _Change(at, {"role": "system", "content": blocks}, length))
        active_now = tuple(sorted(wanted.items()))
        after = _Conversation(state.first, state.known, changes, active_now, length, last)
        if not changes:
            # Nothing changed yet: the tools go as sent (a new order is order()'s to sort).
            return _AS_SENT, after
        note = _note(changes, length)
        return Rewrite(copy.deepcopy(list(state.first)), changes, note), after

    def _shared(self, tools: list[Any]) -> tuple[dict[str, Any], ...]:
        """A copy of ``tools``, the same object for every conversation that sent the same list
        (an agent's conversations mostly do): the memory holds each distinct list once."""
        # The list as sent (its key order too: sort_tools=False sends it so), not canonical.
        data = json.dumps(tools, ensure_ascii=False, default=repr).encode("utf-8", "replace")
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        first = self._firsts.get(digest)
        if first is None:
            first = tuple(copy.deepcopy(tools))
        self._firsts[digest] = first
        self._firsts.move_to_end(digest)
        while len(self._firsts) > self.max_conversations:
            self._firsts.popitem(last=False)
        return first

    def changes(self, key: str) -> list[dict[str, Any]]:
        """The change messages remembered for conversation ``key``, in order (copies)."""
        with self._lock:
            state = self._conversations.get(key)
            return [copy.deepcopy(c.message) for c in state.changes] if state else []


def _note(changes: tuple[_Change, ...], length: int) -> str:
    """What the changes first seen on a request of ``length`` messages say, for describe()."""
    parts = []
    for shift, change in enumerate(changes):
        if change.seen != length:
            continue
        said: dict[str, list[str]] = {"tool_removal": [], "tool_addition": []}
        for block in change.message["content"]:
            tool = block["tool"]
            name = tool.get("name") or tool.get("definition", {}).get("name", "?")
            said[block["type"]].append(str(name))
        what = [
            f"{verb} {', '.join(said[kind])}"
            for verb, kind in (("removed", "tool_removal"), ("added", "tool_addition"))
            if said[kind]
        ]
        parts.append(f"{' and '.join(what)} at messages[{change.at + shift}]")
    return "; ".join(parts)


def _own_changes(messages: list[Any]) -> bool:
    """Whether the client's messages carry tool_addition / tool_removal blocks of their own."""
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "system":
            continue
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            if isinstance(block, Mapping) and block.get("type") in (
                "tool_addition",
                "tool_removal",
            ):
                return True
    return False


def _continues(state: _Conversation, messages: list[Any]) -> bool:
    """Whether ``messages`` grows the conversation last seen (the last message then is still
    in its place): a shorter or rewritten history starts afresh."""
    return len(messages) >= state.length and _message_digest(messages[state.length - 1]) == (
        state.last
    )


def _carries(state: _Conversation, messages: list[Any], tools: dict[str, str]) -> bool:
    """Whether the request already holds this conversation's change messages at their places
    and its first tools: order()'s own output, given back."""
    if not state.changes or tuple(sorted(tools.items())) != state.known:
        return False
    for shift, change in enumerate(state.changes):
        at = change.at + shift
        if at >= len(messages) or messages[at] != change.message:
            return False
    return True


def insert_changes(messages: list[Any], changes: Iterable[_Change]) -> list[Any]:
    """``messages`` with each change message put after its count of the client's messages."""
    out = list(messages)
    for shift, change in enumerate(changes):
        out.insert(change.at + shift, copy.deepcopy(change.message))
    return out
