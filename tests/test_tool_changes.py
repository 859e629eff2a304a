"""order(tools=ToolChanges()): a conversation keeps its first tools; changes go inside messages."""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import threading
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from tidyctx._request import (
    ValidationError,
    cache_content,
    canonical_json,
    is_deferred_tool,
    iter_blocks,
)
from tidyctx.testing import LocalServer
from tidyctx.transforms._toolchanges import first_message_key

PROPS = settings(max_examples=40)
MODEL = "claude-opus-4-8"


def _tool(name: str, text: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "description": f"The {name} tool.{text}",
        "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}},
    }


def _turns(n: int) -> list[dict[str, Any]]:
    """The messages of a conversation of ``n`` user turns."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test."}]
    for k in range(1, n):
        messages += [
            {"role": "assistant", "content": f"Step {k} done."},
            {"role": "user", "content": f"Go on with step {k + 1}."},
        ]
    return messages


def _request(n: int, names: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "system": "You are a careful coding agent.",
        "tools": [_tool(name) for name in names],
        "messages": _turns(n),
        **extra,
    }


def _change(kind: str, *names: str) -> dict[str, Any]:
    return {
        "role": "system",
        "content": [
            {"type": kind, "tool": {"type": "tool_reference", "name": name}} for name in names
        ],
    }


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_a_removal_keeps_the_first_tools_and_says_it_after_the_last_message() -> None:
    t = tc.order(tools=tc.ToolChanges())
    t(_request(1, ["bash", "edit", "read"]))
    out = t(_request(2, ["bash", "read"]))
    assert [x["name"] for x in out["tools"]] == ["bash", "edit", "read"]
    assert out["messages"][3] == _change("tool_removal", "edit")
    assert len(out["messages"]) == 4
    tc.validate(out)
    assert tc.required_betas(out) == ["mid-conversation-tool-changes-2026-07-01"]
    # Later turns carry the same message at the same place.
    later = t(_request(4, ["bash", "read"]))
    assert later["messages"][3] == _change("tool_removal", "edit")
    assert len(later["messages"]) == 8
    assert later["tools"] == out["tools"]


def test_a_restored_tool_is_added_back_by_reference() -> None:
    t = tc.order(tools=tc.ToolChanges())
    t(_request(1, ["bash", "edit"]))
    t(_request(2, ["bash"]))
    out = t(_request(3, ["edit", "bash"]))  # given back, in another order
    assert [x["name"] for x in out["tools"]] == ["bash", "edit"]
    assert out["messages"][3] == _change("tool_removal", "edit")
    assert out["messages"][6] == _change("tool_addition", "edit")
    tc.validate(out)


def test_a_new_tool_goes_as_sent_and_starts_a_new_first_list() -> None:
    changes = tc.ToolChanges()
    t = tc.order(tools=changes)
    t(_request(1, ["bash", "edit"]))
    out = t(_request(2, ["bash", "web"]))
    assert [x["name"] for x in out["tools"]] == ["bash", "web"]
    assert all(m["role"] != "system" for m in out["messages"])
    # The new list is the one later changes are measured against.
    out = t(_request(3, ["web"]))
    assert [x["name"] for x in out["tools"]] == ["bash", "web"]
    assert out["messages"][5] == _change("tool_removal", "bash")


def test_inline_adds_a_new_tool_with_its_definition() -> None:
    t = tc.order(tools=tc.ToolChanges(inline=True))
    t(_request(1, ["bash"]))
    out = t(_request(2, ["bash", "web"]))
    assert [x["name"] for x in out["tools"]] == ["bash"]
    assert out["messages"][3] == {
        "role": "system",
        "content": [
            {
                "type": "tool_addition",
                "tool": {"type": "tool_definition", "definition": _tool("web")},
            }
        ],
    }
    tc.validate(out)
    assert tc.required_betas(out)[-1] == "inline-tools-2026-09-15"
    # Withdrawn again: by name, as the API allows for a tool defined earlier in messages.
    out = t(_request(3, ["bash"]))
    assert out["messages"][6] == _change("tool_removal", "web")
    tc.validate(out)


def test_a_changed_definition_goes_as_sent() -> None:
    t = tc.order(tools=tc.ToolChanges(inline=True))
    t(_request(1, ["bash", "edit"]))
    changed = _request(2, ["bash"])
    changed["tools"].append(_tool("edit", " Now with undo."))
    out = t(changed)
    assert out["tools"][1]["description"].endswith("undo.")
    assert all(m["role"] != "system" for m in out["messages"])


def test_only_the_tool_order_changed_is_sorted_as_without_the_memory() -> None:
    t = tc.order(tools=tc.ToolChanges())
    t(_request(1, ["bash", "edit"]))
    request = _request(2, ["edit", "bash"])
    assert _dump(t(request)) == _dump(tc.order()(request))


def test_without_the_memory_the_tools_go_as_sent() -> None:
    t = tc.order()
    t(_request(1, ["bash", "edit"]))
    out = t(_request(2, ["bash"]))
    assert [x["name"] for x in out["tools"]] == ["bash"]
    assert len(out["messages"]) == 3


def test_a_model_without_tool_changes_gets_its_tools_as_sent() -> None:
    changes = tc.ToolChanges()
    t = tc.order(tools=changes)
    t(_request(1, ["bash", "edit"], model="claude-sonnet-4-6"))
    out = t(_request(2, ["bash"], model="claude-sonnet-4-6"))
    assert [x["name"] for x in out["tools"]] == ["bash"]
    assert len(changes) == 0


def test_a_history_that_stops_growing_starts_afresh() -> None:
    t = tc.order(tools=tc.ToolChanges())
    t(_request(1, ["bash", "edit"]))
    t(_request(3, ["bash"]))
    # The same first message, a shorter history (a new run, or a rewind): as sent.
    out = t(_request(2, ["bash"]))
    assert [x["name"] for x in out["tools"]] == ["bash"]
    assert all(m["role"] != "system" for m in out["messages"])


def test_a_token_count_is_rewritten_but_not_remembered() -> None:
    changes = tc.ToolChanges()
    t = tc.order(tools=changes)
    t(_request(1, ["bash", "edit"]))
    t(_request(2, ["bash"]))
    count = _request(1, ["bash"])
    del count["max_tokens"]
    t(count)  # shorter, but no turn of the conversation
    out = t(_request(3, ["bash"]))
    assert out["messages"][3] == _change("tool_removal", "edit")


def test_a_client_stating_its_own_tool_changes_is_left_alone() -> None:
    changes = tc.ToolChanges()
    t = tc.order(tools=changes)
    t(_request(1, ["bash", "edit"]))
    request = _request(2, ["bash"])
    request["messages"].insert(1, _change("tool_removal", "bash"))
    out = t(request)
    assert [x["name"] for x in out["tools"]] == ["bash"]
    assert out["messages"][1] == _change("tool_removal", "bash")
    assert len(out["messages"]) == 4
    assert len(changes) == 0


def test_order_given_its_own_output_changes_nothing() -> None:
    t = tc.order(tools=tc.ToolChanges())
    t(_request(1, ["bash", "edit"]))
    out = t(_request(2, ["bash"]))
    assert _dump(t(copy.deepcopy(out))) == _dump(out)
    # And the memory still continues the conversation.
    later = t(_request(3, ["bash"]))
    assert later["messages"][3] == _change("tool_removal", "edit")


def test_describe_names_the_change() -> None:
    changes = tc.ToolChanges()
    t = tc.order(tools=changes)
    t(_request(1, ["bash", "edit"]))
    request = _request(2, ["bash"])
    out = t(request)
    remembered = pickle.dumps(changes)
    line = t.describe(request, out)
    assert "removed edit at messages[3]" in line
    assert pickle.dumps(changes) == remembered  # describe remembers nothing


def test_the_memory_pickles_and_is_bounded() -> None:
    changes = tc.ToolChanges(max_conversations=2)
    t = tc.order(tools=changes)
    for first in ("a", "b", "c"):
        request = _request(1, ["bash", "edit"])
        request["messages"][0]["content"] = first
        t(request)
        request["messages"] += [
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "next"},
        ]
        request["tools"] = [_tool("bash")]
        t(request)
    assert len(changes) == 2
    copied = pickle.loads(pickle.dumps(changes))
    assert copied == changes
    assert repr(copied) == "ToolChanges(max_conversations=2)"


def test_bad_options_are_named() -> None:
    with pytest.raises(TypeError, match=r"order\(tools=...\)"):
        tc.order(tools=tc.SystemLines())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_changes=0"):
        tc.ToolChanges(max_changes=0)
    with pytest.raises(TypeError, match="models"):
        tc.ToolChanges(models=[1])  # type: ignore[list-item]


def test_past_max_changes_the_tools_go_as_sent() -> None:
    t = tc.order(tools=tc.ToolChanges(max_changes=1))
    t(_request(1, ["bash", "edit"]))
    t(_request(2, ["bash"]))
    out = t(_request(3, ["bash", "edit"]))
    assert all(m["role"] != "system" for m in out["messages"])


def test_threads_sharing_one_memory_each_keep_their_conversation() -> None:
    t = tc.order(tools=tc.ToolChanges())
    found: dict[int, list[Any]] = {}

    def run(k: int) -> None:
        first = _request(1, ["bash", "edit"])
        first["messages"][0]["content"] = f"conversation {k}"
        t(first)
        second = _request(2, ["bash"])
        second["messages"][0]["content"] = f"conversation {k}"
        found[k] = t(second)["messages"]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(found[k][3] == _change("tool_removal", "edit") for k in range(8))


def test_validate_rejects_a_change_naming_an_undeclared_tool() -> None:
    request = _request(2, ["bash"])
    request["messages"].append(_change("tool_removal", "edit"))
    with pytest.raises(ValidationError, match="names no tool declared"):
        tc.validate(request)
    request["messages"][-1] = _change("tool_addition", "bash")
    tc.validate(request)


def test_required_betas_of_a_request_without_system_messages_is_empty() -> None:
    assert tc.required_betas(_request(2, ["bash"])) == []


def test_the_first_message_key_ignores_the_tools() -> None:
    assert first_message_key(_request(1, ["bash"])) == first_message_key(_request(3, []))


# ---------------------------------------------------------------------------- properties


def _rendered(request: dict[str, Any]) -> list[Any]:
    """The blocks the prompt holds: deferred tools are sent but not rendered into it."""
    return [
        r for r in iter_blocks(request) if not (r.section == "tools" and is_deferred_tool(r.block))
    ]


def _cached_prefix(request: dict[str, Any]) -> list[bytes]:
    """The blocks up to the last cache breakpoint, as the cache sees them."""
    blocks = _rendered(request)
    marked = [
        k
        for k, r in enumerate(blocks)
        if isinstance(r.block, dict) and r.block.get("cache_control")
    ]
    end = marked[-1] + 1 if marked else 0
    return [canonical_json(cache_content(r.block)) for r in blocks[:end]]


def _all_blocks(request: dict[str, Any]) -> list[bytes]:
    return [canonical_json(cache_content(r.block)) for r in _rendered(request)]


@st.composite
def _changing_conversations(draw: st.DrawFn, first_full: bool = True) -> list[dict[str, Any]]:
    """A growing conversation whose tool list loses and regains tools from turn to turn (all
    of them on the first turn when ``first_full``)."""
    turns = draw(gen.growing_conversations(min_turns=2, max_turns=6))
    tools = draw(gen.tools(min_size=1, max_size=5))
    out = []
    for k, request in enumerate(turns):
        # The client's own system messages (tool changes among them) are left out: a client
        # that states its own tool changes is left alone (tested on its own).
        request["messages"] = [m for m in request["messages"] if m["role"] != "system"]
        keep = draw(st.lists(st.booleans(), min_size=len(tools), max_size=len(tools)))
        if k == 0 and first_full:
            keep = [True] * len(tools)
        chosen = [copy.deepcopy(t) for t, k in zip(tools, keep, strict=True) if k]
        request = {**request, "tools": chosen}
        if not chosen:
            del request["tools"]
        out.append(request)
    return out


@PROPS
@given(st.data())
def test_each_turn_s_cached_prefix_is_a_byte_prefix_of_the_next(data: st.DataObject) -> None:
    # Inline definitions take any new tool; by reference, the first turn declares them all.
    inline = data.draw(st.booleans())
    turns = data.draw(_changing_conversations(first_full=not inline))
    steps = [tc.order(tools=tc.ToolChanges(models=None, inline=inline)), tc.cache()]
    outs = []
    for request in turns:
        snapshot = copy.deepcopy(request)
        out = tc.pipe(request, steps)
        assert _dump(request) == _dump(snapshot)  # pure: the input is left as it was
        tc.validate(out)
        outs.append(out)
    for before, after in itertools.pairwise(outs):
        prefix = _cached_prefix(before)
        assert _all_blocks(after)[: len(prefix)] == prefix


@PROPS
@given(_changing_conversations())
def test_the_same_turns_give_the_same_bytes_and_order_is_idempotent(
    turns: list[dict[str, Any]],
) -> None:
    first, second = tc.ToolChanges(models=None), tc.ToolChanges(models=None)
    for request in turns:
        a = tc.order(tools=first)(copy.deepcopy(request))
        b = tc.order(tools=second)(copy.deepcopy(request))
        assert _dump(a) == _dump(b)
        assert _dump(tc.order(tools=first)(copy.deepcopy(a))) == _dump(a)
    assert first == second


@settings(max_examples=15)
@given(_changing_conversations())
def test_defaults_keep_the_change_messages_in_place(turns: list[dict[str, Any]]) -> None:
    t = tc.defaults(order={"seen": tc.SystemLines(), "tools": tc.ToolChanges(models=None)})
    placed: dict[int, Any] = {}
    for request in turns:
        out = tc.pipe(request, t)
        tc.validate(out)
        system = {i: m for i, m in enumerate(out["messages"]) if m["role"] == "system"}
        # Every change message seen before is still there, at its place, byte for byte.
        for i, message in placed.items():
            if any(m["role"] == "system" for m in request["messages"]):
                break  # the strategy's own system messages: not ours to follow
            assert _dump(system.get(i)) == _dump(message)
        placed.update(system)


# ---------------------------------------------------------------------------- wrap


def test_wrap_adds_the_needed_betas_to_a_beta_call() -> None:
    with LocalServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        wrapped = tc.wrap(client, tc.order(tools=tc.ToolChanges()), tc.cache())
        for n, names in ((1, ["bash", "edit"]), (2, ["bash"])):
            request = _request(n, names)
            wrapped.beta.messages.create(**request, betas=["claude-code-20250219"])
        request = _request(3, ["bash"])
        wrapped.messages.create(**request)
        client.close()
        headers = [r.headers.get("anthropic-beta") for r in server.requests]
    assert headers[0] == "claude-code-20250219"
    assert headers[1] == "claude-code-20250219,mid-conversation-tool-changes-2026-07-01"
    assert headers[2] == "mid-conversation-tool-changes-2026-07-01"


def _bash_turns(n: int) -> list[dict[str, Any]]:
    """A conversation of ``n`` user turns, each answering a bash call with a long output."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Build the project."}]
    for k in range(1, n):
        output = "\n".join(f"{i:05d} step {i} of build {k} finished" for i in range(2_000))
        messages += [
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": f"toolu_{k}", "name": "bash", "input": {"c": "make"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{k}", "content": output}
                ],
            },
        ]
    return messages


def test_trim_leaves_the_change_message_in_place_through_defaults() -> None:
    pipeline = tc.defaults(order={"seen": tc.SystemLines(), "tools": tc.ToolChanges()})
    outs = []
    for n in range(1, 7):
        names = ["bash", "edit", "read"] if n < 3 else ["bash", "read"]
        request = {**_request(1, names), "messages": _bash_turns(n)}
        out = tc.pipe(request, pipeline)
        tc.validate(out)
        # trim cut the long outputs to a fraction of what was sent
        assert len(_dump(out)) < len(_dump(request)) / 5 or n == 1
        outs.append(out)
    for out in outs[2:]:
        assert [x["name"] for x in out["tools"]] == ["bash", "edit", "read"]
        assert out["messages"][5] == _change("tool_removal", "edit")
        assert sum(m["role"] == "system" for m in out["messages"]) == 1


def test_summarize_keeps_the_change_message_after_the_summary() -> None:
    with LocalServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        pipeline = tc.defaults(
            client,
            order={"seen": tc.SystemLines(), "tools": tc.ToolChanges()},
            trim=False,
            summarize={"trigger": 20_000, "keep": 2, "max_payback_turns": 1_000},
        )
        for n in range(1, 9):
            names = ["bash", "edit", "read"] if n < 3 else ["bash", "read"]
            request = {**_request(1, names), "messages": _bash_turns(n)}
            out = tc.pipe(request, pipeline)
            tc.validate(out)
        client.close()
        summarized = len(server.summary_calls()) > 0
    assert summarized
    assert "tidyctx-summary" in _dump(out["messages"][0])
    assert [x["name"] for x in out["tools"]] == ["bash", "edit", "read"]
    assert [m for m in out["messages"] if m["role"] == "system"] == [
        _change("tool_removal", "edit")
    ]


def test_the_system_prompt_memory_follows_the_conversation_across_a_tool_change() -> None:
    t = tc.order(seen=tc.SystemLines(), tools=tc.ToolChanges())
    systems = []
    for n, (clock, names) in enumerate(
        [("14:00", ["bash", "edit"]), ("14:05", ["bash", "edit"]), ("14:09", ["bash"])], 1
    ):
        request = _request(n, names, system=f"Be careful.\nCurrent time: 2026-11-25 {clock}")
        systems.append(t(request)["system"])
    # The clock moved out once it changed, and stays out after the tools changed.
    assert systems[1:] == ["Be careful.", "Be careful."]


def test_conversations_with_the_same_tools_share_one_copy_in_the_memory() -> None:
    def remembered(conversations: int) -> int:
        changes = tc.ToolChanges()
        t = tc.order(tools=changes)
        names = [f"tool_{i}" for i in range(20)]
        for k in range(conversations):
            request = _request(1, names)
            request["tools"] = [_tool(n, " It works hard." * 50) for n in names]
            request["messages"][0]["content"] = f"conversation {k}"
            t(request)
        return len(pickle.dumps(changes))

    one, hundred = remembered(1), remembered(100)
    # Each conversation adds its key, digests and names, not another copy of the tools.
    assert hundred - one < 99 * one / 3


def test_a_change_goes_before_an_assistant_prefill() -> None:
    t = tc.order(tools=tc.ToolChanges())
    t(_request(1, ["bash", "edit"]))
    request = _request(2, ["bash"])
    request["messages"].append({"role": "assistant", "content": "The plan:"})
    out = t(request)
    assert out["messages"][3] == _change("tool_removal", "edit")
    assert out["messages"][4] == {"role": "assistant", "content": "The plan:"}
    tc.validate(out)


def test_every_beta_tidyctx_may_add_is_one_the_installed_sdk_lists() -> None:
    from typing import get_args

    from anthropic.types import AnthropicBetaParam

    from tidyctx._betas import _ORDER

    known = {
        name
        for arm in get_args(AnthropicBetaParam)
        for name in get_args(arm)
        if isinstance(name, str)
    }
    assert known, "the SDK's AnthropicBetaParam lists no names"
    assert set(_ORDER) <= known


def test_deferred_tools_go_as_sent_and_are_never_stated_as_changes() -> None:
    t = tc.order(tools=tc.ToolChanges())

    def deferred(name: str) -> dict[str, Any]:
        return {"name": name, "input_schema": {"type": "object"}, "defer_loading": True}

    first = _request(1, ["bash", "edit"])
    first["tools"].append(deferred("mcp__a"))
    t(first)
    # edit dropped, the deferred tool gone and another one come: only edit's removal is stated.
    later = _request(2, ["bash"])
    later["tools"].append(deferred("mcp__b"))
    out = t(later)
    assert [x["name"] for x in out["tools"]] == ["bash", "edit", "mcp__b"]
    assert out["messages"][3] == _change("tool_removal", "edit")
    assert len(out["messages"]) == 4
    tc.validate(out)
