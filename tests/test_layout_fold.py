"""layout() resumed from an earlier call's layout equals the layout computed whole.

Calls come in any order the callers of layout() make them: conversations that grow by a turn,
several conversations interleaved, a caller that edits its message list in place between
calls (a text changed, a marker moved, a thinking block or an image added), histories that
fork, the top-level cache_control switched on and off, models that drop earlier thinking and
models that keep it, and a memo too small to hold anything.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tidyctx as tc
from strategies import growing_conversations, image_blocks
from tidyctx import _layout_fold
from tidyctx._request import ValidationError
from tidyctx.cachesim import _layout_whole, layout
from tidyctx.tokens import LocalCounter

_THINKING = {"type": "thinking", "thinking": "Let me think.", "signature": "c2lnbmF0dXJl"}


def _same(request: dict[str, Any], counter: LocalCounter | None, model: str | None) -> None:
    """layout() and the whole layout of a copy agree, value for value or error for error."""
    try:
        expected: Any = _layout_whole(copy.deepcopy(request), counter, model)
    except ValidationError as e:
        expected = ("error", str(e))
    before = copy.deepcopy(request)
    fold_from, _layout_fold.FOLD_FROM = _layout_fold.FOLD_FROM, 1  # fold the short ones too
    try:
        got: Any = layout(request, counter, model)
    except ValidationError as e:
        got = ("error", str(e))
    finally:
        _layout_fold.FOLD_FROM = fold_from
    assert request == before  # layout() reads the request, never changes it
    assert got == expected


def _edit(data: st.DataObject, messages: list[Any]) -> None:
    """Change one message of ``messages`` in place, as a caller editing its list does."""
    i = data.draw(st.integers(0, len(messages) - 1))
    message = messages[i]
    content = message.get("content")
    what = data.draw(
        st.sampled_from(
            ("text", "append", "marker", "thinking", "image", "unmark", "input", "drop")
        )
    )
    if what == "text":
        message["content"] = data.draw(st.sampled_from(("edited", "Edited text.")))
    elif what == "append" and isinstance(content, list):
        content.append({"type": "text", "text": "more"})
    elif what == "marker" and isinstance(content, list) and content:
        ttl = data.draw(st.sampled_from(("5m", "1h")))
        content[-1]["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    elif what == "unmark" and isinstance(content, list):
        for block in content:
            block.pop("cache_control", None)
    elif what == "thinking" and message.get("role") == "assistant":
        if isinstance(content, str):
            message["content"] = [dict(_THINKING), {"type": "text", "text": content}]
        elif isinstance(content, list):
            content.insert(0, dict(_THINKING))
    elif what == "image" and message.get("role") == "user":
        image = data.draw(image_blocks())
        if isinstance(content, str):
            message["content"] = [image, {"type": "text", "text": content}]
        elif isinstance(content, list):
            content.append(image)
    elif what == "input" and isinstance(content, list):
        for block in content:
            if block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                block["input"]["edited"] = True
    elif what == "drop" and len(messages) > 1:
        del messages[max(i, 1) :]


@given(
    conversations=st.lists(growing_conversations(max_turns=5), min_size=1, max_size=3),
    data=st.data(),
)
def test_folded_layout_equals_whole_layout(
    conversations: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    limit = tc.memo_stats().max_bytes
    tc.set_memo_limit(data.draw(st.sampled_from((limit, limit, 0, 2048, 50_000))))
    counter = data.draw(
        st.sampled_from(
            (
                None,
                LocalCounter(),
                LocalCounter("claude-sonnet-4-5"),
                LocalCounter("claude-sonnet-4-6"),
            )
        )
    )
    model = data.draw(st.sampled_from((None, None, "claude-sonnet-4-5", "claude-opus-4-6")))
    try:
        # Each conversation's caller holds one request and grows or edits it in place.
        live = [copy.deepcopy(c[0]) for c in conversations]
        turn = [0] * len(conversations)
        for _ in range(data.draw(st.integers(1, 12))):
            which = data.draw(st.integers(0, len(conversations) - 1))
            request = live[which]
            messages = request["messages"]
            step = data.draw(
                st.sampled_from(
                    (
                        "grow",
                        "grow",
                        "grow",
                        "edit",
                        "fork",
                        "auto",
                        "tool",
                        "tool",
                        "opener",
                        "same",
                    )
                )
            )
            if step == "grow" and turn[which] + 1 < len(conversations[which]):
                turn[which] += 1
                after = conversations[which][turn[which]]["messages"]
                messages.extend(copy.deepcopy(after[len(messages) :]))
            elif step == "edit":
                _edit(data, messages)
            elif step == "fork":
                cut = data.draw(st.integers(1, len(messages)))
                request["messages"] = [*messages[:cut], {"role": "user", "content": "forked"}]
            elif step == "auto":
                if "cache_control" in request:
                    del request["cache_control"]
                else:
                    request["cache_control"] = {"type": "ephemeral"}
            elif step == "tool":
                call = f"toolu_{len(messages)}"
                messages.append(
                    {
                        "role": "assistant",
                        "content": [
                            dict(_THINKING),
                            {"type": "tool_use", "id": call, "name": "run", "input": {}},
                        ],
                    }
                )
                messages.append(
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": call, "content": "ok"}],
                    }
                )
            elif step == "opener":
                messages.append(
                    {
                        "role": "assistant",
                        "content": [dict(_THINKING), {"type": "text", "text": "ok"}],
                    }
                )
                messages.append({"role": "user", "content": "next"})
            _same(request, counter, model)
    finally:
        tc.set_memo_limit(limit)


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-sonnet-4-6"])
def test_folded_layout_follows_the_turn_start_over_thinking(model: str) -> None:
    # Each new user text moves the turn's start past the earlier thinking: on a model that
    # drops earlier thinking, those blocks leave the layout, on one that keeps it they stay.
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "start"}],
    }
    lengths = []
    for turn in range(4):
        request["messages"] += [
            {
                "role": "assistant",
                "content": [dict(_THINKING), {"type": "text", "text": f"a{turn}"}],
            },
            {"role": "user", "content": f"next {turn}"},
        ]
        _same(request, None, None)
        lengths.append(len(layout(request).paths))
    if model == "claude-sonnet-4-5":
        assert lengths == [3, 5, 7, 9]
    else:
        assert lengths == [4, 7, 10, 13]
