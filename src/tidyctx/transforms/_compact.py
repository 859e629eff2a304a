"""compact(): the text of tool results in fewer tokens, every value kept.

The transform over a request: each tool result's text goes through
:func:`~tidyctx.text._compaction.compact_kept` with the call that made it (its name and
input), so lines it echoes from that input are shortened and file views keep their lines
byte for byte. See :mod:`tidyctx.text._compaction` for the rules. JSON that keeps its value
is rewritten as it is; a rewrite that drops characters (padding, escape codes, CRLFs, an
echo) keeps the original in ``store`` and ends with a note naming it, or is not made when it
would save less than twice that note.

>>> request = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [
...     {"role": "user", "content": "list"},
...     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ls",
...         "input": {}}]},
...     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
...         "content": '{\\n  "files": [\\n    "a.py"\\n  ]\\n}'}]}]}
>>> compact()(request)["messages"][2]["content"][0]["content"][0]["text"]
'{"files":["a.py"]}'
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tidyctx._edge import Edge
from tidyctx._markers import MARKER_PREFIX
from tidyctx._request import Request, ValidationError, as_given, normalize
from tidyctx.store import MemoryStore, Store
from tidyctx.text._compaction import compact_kept, compact_text
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._recover import guarded, settle

__all__ = ["Compact", "compact"]


@dataclass(eq=False)
class Compact(Edge):
    """The transform :func:`compact` returns: compacts the text of every tool result (and
    shortens the lines it echoes from its call's input,
    :func:`~tidyctx.text._compaction.drop_echo`)."""

    tools: tuple[str, ...] | None = None
    store: Store = field(default_factory=MemoryStore)
    _memo: OrderedDict[str, str] = field(default_factory=OrderedDict, repr=False)

    @property
    def name(self) -> str:
        return "compact()" if self.tools is None else f"compact(tools={list(self.tools)})"

    def text(self, text: str) -> str:
        """``compact_text(text)``, memoized (a result is compacted once per conversation)."""
        hit = self._memo.get(text)
        if hit is None:
            hit = compact_text(text)
            self._memo[text] = hit
            while len(self._memo) > 4_096:
                self._memo.popitem(last=False)
        return hit

    def apply(self, request: Request) -> Request:
        # The edge made SDK objects dicts: a ToolUseBlock is no dict, and its results would be
        # compacted without their call (no echo removal, a file view taken for a log).
        out = normalize(request)
        messages = out.get("messages")
        if not isinstance(messages, list):
            raise ValidationError("messages", "missing", "compact() needs a list of messages")
        counter = LocalCounter(out.get("model"))
        store = guarded(self.store, request)  # renews first what markers passed on name
        names: dict[str, str] = {}
        inputs: dict[str, Any] = {}
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for j, block in enumerate(content):
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "tool_use":
                    names[str(block.get("id"))] = str(block.get("name"))
                    inputs[str(block.get("id"))] = block.get("input")
                elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                    call = str(block.get("tool_use_id"))
                    if self.tools is not None and names.get(call) not in self.tools:
                        continue
                    parts = [
                        {
                            **b,
                            "text": self._compacted(
                                b["text"], names.get(call, ""), inputs.get(call), store, counter
                            ),
                        }
                        if isinstance(b, dict)
                        and b.get("type") == "text"
                        and isinstance(b.get("text"), str)
                        else b
                        for b in block["content"]
                    ]
                    content[j] = {**block, "content": parts}
        return as_given(request, settle(self.store, request, out, what="compact"))

    def _compacted(
        self, text: str, name: str, call_input: Any, store: Store, counter: LocalCounter
    ) -> str:
        if MARKER_PREFIX in text:  # compacted before, or cut: its lines are kept as they are
            return text
        new, note = compact_kept(
            text, name, call_input, store=store, counter=counter, compactor=self.text
        )
        return f"{new}\n{note}" if note else new

    def describe(self, before: Request, after: Request) -> str:
        from tidyctx.tokens import LocalCounter

        counter = LocalCounter(after.get("model"))
        saved = counter.count_request(before) - counter.count_request(after)
        return (
            f"compacted tool results: {saved:,} tokens fewer, every original that lost a "
            "character kept in the store"
        )


def compact(
    *, tools: list[str] | tuple[str, ...] | None = None, store: Store | None = None
) -> Compact:
    """A transform that compacts the text of tool results (:func:`compact_text`).

    ``tools``: only the results of these tools (default: all). ``store`` keeps the original of
    every result whose compaction drops a character (default: a
    :class:`~tidyctx.store.MemoryStore` of this transform); give the same store to
    :func:`~tidyctx.transforms._expand.expand_tool`. Apply it before ``cache()``; ``trim()``
    already applies it (``trim(compact=False)`` turns that off).
    """
    if isinstance(tools, str):
        raise ValueError(f"compact(tools={tools!r}): give a list of tool names, e.g. [{tools!r}]")
    if store is not None and not (
        callable(getattr(store, "get", None)) and callable(getattr(store, "put", None))
    ):
        raise TypeError(f"compact(store=...) needs a Store (with get and put), got {store!r}")
    return Compact(
        tools=None if tools is None else tuple(tools),
        store=store if store is not None else MemoryStore(),
    )
