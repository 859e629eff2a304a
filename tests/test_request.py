"""Unit tests of the request model: each kind of bad input gets an error naming its place."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings

import strategies
import tidyctx as tc
from tidyctx._request import (
    ValidationError,
    block_hash,
    cache_markers,
    canonical_json,
    errors,
    iter_blocks,
    normalize,
    normalized,
    plain_copy,
    to_plain,
    to_request,
    validate,
)

EC = {"type": "ephemeral"}


def good() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": "You are terse.",
        "tools": [
            {
                "name": "read_file",
                "description": "Read a file",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            }
        ],
        "messages": [
            {"role": "user", "content": "Read a.py"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should read it.", "signature": "sig"},
                    {"type": "text", "text": "Reading."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "read_file",
                        "input": {"path": "a.py"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "print(1)"},
                    {"type": "text", "text": "Now explain it."},
                ],
            },
        ],
    }


def test_good_request_passes() -> None:
    tc.validate(good())
    tc.validate(good()["messages"])  # a bare message list


def raises_at(request: Any, path: str, *words: str) -> ValidationError:
    with pytest.raises(ValueError) as info:
        tc.validate(request)
    err = info.value
    assert isinstance(err, ValidationError)
    assert err.path == path, str(err)
    assert str(err).startswith(path + ":"), str(err)
    for w in words:
        assert w in str(err), str(err)
    return err


def test_system_role_in_messages_hints_system_param() -> None:
    req = good()
    req["messages"].insert(0, {"role": "system", "content": "be nice"})
    err = raises_at(req, "messages[0].role", "cannot open the conversation", "system=")
    assert err.hint


def test_unknown_role() -> None:
    req = good()
    req["messages"][0]["role"] = "human"
    raises_at(req, "messages[0].role", "unknown role 'human'", '"user", "assistant" or "system"')


def test_non_alternating_roles() -> None:
    req = good()
    req["messages"].append({"role": "user", "content": "and again"})
    raises_at(req, "messages[3].role", "two user messages in a row", "alternate")
    # The API merges consecutive turns; strict=False accepts what the API accepts.
    tc.validate(req, strict=False)


def test_missing_tool_result() -> None:
    req = good()
    del req["messages"][2]["content"][0]
    raises_at(
        req,
        "messages[1].content[2]",
        "tool_use 'toolu_1' has no tool_result in the next user message (messages[2])",
        '"tool_use_id": "toolu_1"',
    )


def test_tool_use_at_the_end_without_result() -> None:
    req = good()
    req["messages"] = req["messages"][:2]
    raises_at(req, "messages[1].content[2]", "no tool_result", "messages[2]")


def test_orphan_tool_result() -> None:
    req = good()
    req["messages"][2]["content"][0]["tool_use_id"] = "toolu_nope"
    err = errors(req)
    paths = [e.path for e in err]
    assert "messages[2].content[0]" in paths
    assert any("has no tool_use in the previous assistant message" in str(e) for e in err)
    assert "messages[1].content[2]" in paths  # and toolu_1 is now unanswered


def test_tool_result_after_text() -> None:
    req = good()
    req["messages"][2]["content"].reverse()
    raises_at(req, "messages[2].content[1]", "must come first")


def test_duplicate_tool_use_ids() -> None:
    req = good()
    req["messages"][1]["content"].append(
        {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "b.py"}}
    )
    raises_at(req, "messages[1].content[3].id", "duplicate tool_use id 'toolu_1'")


def test_five_breakpoints() -> None:
    req = normalize(good())
    req["tools"][0]["cache_control"] = EC
    req["system"][0]["cache_control"] = EC
    req["messages"][0]["content"][0]["cache_control"] = EC
    req["messages"][1]["content"][1]["cache_control"] = EC
    tc.validate(req)
    req["messages"][2]["content"][1]["cache_control"] = EC
    raises_at(
        req, "messages[2].content[1].cache_control", "5 cache_control breakpoints", "at most 4"
    )


def test_top_level_cache_control_takes_a_slot() -> None:
    req = normalize(good())
    for block in (req["tools"][0], req["system"][0], req["messages"][0]["content"][0]):
        block["cache_control"] = EC
    req["messages"][2]["content"][1]["cache_control"] = EC
    req["cache_control"] = EC
    raises_at(req, "cache_control", "5 cache_control breakpoints")


def test_nested_markers_in_tool_results_count() -> None:
    req = normalize(good())
    req["messages"][2]["content"][0]["content"][0]["cache_control"] = EC
    assert [p for p, _ in cache_markers(req)] == ["messages[2].content[0].content[0]"]


def test_cache_control_on_thinking() -> None:
    req = good()
    req["messages"][1]["content"][0]["cache_control"] = EC
    raises_at(req, "messages[1].content[0].cache_control", "thinking block cannot carry")


def test_cache_control_on_empty_text() -> None:
    req = good()
    req["messages"][2]["content"][1] = {"type": "text", "text": "", "cache_control": EC}
    raises_at(req, "messages[2].content[1]", "non-whitespace text")


def test_whitespace_text_block() -> None:
    req = good()
    req["messages"][2]["content"][1]["text"] = "  \n"
    raises_at(req, "messages[2].content[1]", "non-whitespace text")


def test_1h_after_5m() -> None:
    req = normalize(good())
    req["system"][0]["cache_control"] = EC
    req["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    raises_at(req, "messages[0].content[0].cache_control.ttl", "1h breakpoint comes after a 5m")


def test_bad_ttl_and_marker_type() -> None:
    req = normalize(good())
    req["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "10m"}
    raises_at(req, "system[0].cache_control.ttl", "unknown ttl '10m'")
    req["system"][0]["cache_control"] = {"type": "persistent"}
    raises_at(req, "system[0].cache_control", "must be {'type': 'ephemeral'}")


def test_duplicate_tool_names() -> None:
    req = good()
    req["tools"].append(copy.deepcopy(req["tools"][0]))
    raises_at(req, "tools[1].name", "duplicate tool name 'read_file' (also tools[0])")


def test_tool_without_schema() -> None:
    req = good()
    del req["tools"][0]["input_schema"]
    raises_at(req, "tools[0].input_schema", "no input_schema")
    # Server tools have a versioned type instead of a schema.
    req["tools"][0]["type"] = "web_search_20250305"
    tc.validate(req)


@pytest.mark.parametrize(
    ("content", "path", "words"),
    [
        (42, "messages[0].content", "must be a string or a list of blocks, got int"),
        ({"text": "hi"}, "messages[0].content", "got dict"),
        (["hi"], "messages[0].content[0]", "a content block must be a dict with a type, got str"),
        ([{"text": "hi"}], "messages[0].content[0]", "needs a string 'type'"),
        ([{"type": "text", "text": 3}], "messages[0].content[0].text", "must be a string"),
        ("", "messages[0].content", "empty"),
        ([], "messages[0].content", "empty list"),
    ],
)
def test_content_of_the_wrong_type(content: Any, path: str, words: str) -> None:
    raises_at([{"role": "user", "content": content}], path, words)


def test_tool_use_input_must_be_object() -> None:
    req = good()
    req["messages"][1]["content"][2]["input"] = '{"path": "a.py"}'
    raises_at(req, "messages[1].content[2].input", "must be an object, got str")


def test_tool_result_content_wrong_type() -> None:
    req = good()
    req["messages"][2]["content"][0]["content"] = {"rows": []}
    raises_at(req, "messages[2].content[0].content", "got dict", "json.dumps")


def test_image_checks() -> None:
    req = good()
    req["messages"][0]["content"] = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA"}}
    ]
    raises_at(req, "messages[0].content[0].source.media_type", "unsupported image type")


def test_none_and_wrong_top_level() -> None:
    with pytest.raises(ValueError, match=r"^request: got None"):
        tc.validate(None)
    with pytest.raises(ValueError, match="expected a dict of create\\(\\) arguments"):
        tc.validate("hello")
    raises_at({"model": "x"}, "messages", "missing")
    raises_at({"messages": []}, "messages", "is empty")


def test_more_problems_are_counted() -> None:
    req = good()
    req["messages"][0]["role"] = "bot"
    req["tools"].append(copy.deepcopy(req["tools"][0]))
    with pytest.raises(ValueError, match=r"1 more problem"):
        tc.validate(req)


def test_unknown_keys_and_blocks_pass_through() -> None:
    req = good()
    req["output_config"] = {"effort": "low"}
    req["context_management"] = {"edits": []}
    req["diagnostics"] = {"previous_message_id": None}
    req["cache_control"] = EC
    req["messages"][1]["content"].insert(
        0, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    )
    tc.validate(req)
    assert normalize(req)["output_config"] == {"effort": "low"}


def test_normalize_is_idempotent_and_pure() -> None:
    req = good()
    snapshot = copy.deepcopy(req)
    once = normalize(req)
    assert req == snapshot
    assert normalize(once) == once
    assert once["system"] == [{"type": "text", "text": "You are terse."}]
    assert once["messages"][0]["content"] == [{"type": "text", "text": "Read a.py"}]
    assert once["messages"][2]["content"][0]["content"] == [{"type": "text", "text": "print(1)"}]
    tc.validate(once)


def test_canonical_json_and_hash() -> None:
    a = {"b": 1, "a": [1, "é"], "c": {"y": 2, "x": 1}}
    b = {"c": {"x": 1, "y": 2}, "a": [1, "é"], "b": 1}
    assert (
        canonical_json(a) == canonical_json(b) == '{"a":[1,"é"],"b":1,"c":{"x":1,"y":2}}'.encode()
    )
    assert block_hash(a) == block_hash(b)
    assert block_hash(a) != block_hash({**a, "b": 2})
    assert len(block_hash(a)) == 32
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_iter_blocks_prefix_order() -> None:
    paths = [r.path for r in iter_blocks(good())]
    assert paths[:2] == ["tools[0]", "system"]
    assert paths[2:] == [
        "messages[0].content",
        "messages[1].content[0]",
        "messages[1].content[1]",
        "messages[1].content[2]",
        "messages[2].content[0]",
        "messages[2].content[1]",
    ]


def test_sdk_objects_become_dicts() -> None:
    from anthropic.types import TextBlock, ToolUseBlock

    content = [
        TextBlock(type="text", text="Reading."),
        ToolUseBlock(type="tool_use", id="toolu_9", name="read_file", input={"path": "a"}),
    ]
    plain = to_plain(content)
    assert plain[0] == {"type": "text", "text": "Reading."}
    assert plain[1]["id"] == "toolu_9" and plain[1]["input"] == {"path": "a"}
    req, was_list = to_request(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": content}]
    )
    assert was_list and isinstance(req["messages"][1]["content"][0], dict)
    with pytest.raises(TypeError, match="cannot use a object"):
        to_plain(object())


def test_normalize_leaves_whitespace_only_strings_as_strings() -> None:
    # A case hypothesis found in CI: a tool_result whose content is "\n" must not become a
    # whitespace-only text block, which validate() (like the API) rejects.
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "system": "  ",
        "messages": [
            {"role": "user", "content": "Go."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t0", "name": "sh", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t0", "content": "\n"}],
            },
        ],
    }
    validate(request)
    out = normalize(request)
    validate(out)
    assert out["system"] == "  "
    assert out["messages"][2]["content"][0]["content"] == "\n"
    assert out["messages"][0]["content"] == [{"type": "text", "text": "Go."}]
    assert normalize(out) == out


def test_deep_json_is_named_not_a_recursion_error() -> None:
    deep: dict[str, Any] = {}
    at = deep
    for _ in range(3000):
        at["a"] = {}
        at = at["a"]
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "x", "name": "n", "input": deep}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "x", "content": "ok"}],
            },
        ],
    }
    for call in (
        lambda: tc.validate(request),
        lambda: tc.pipe(request, tc.order()),
        lambda: tc.pipe(request, tc.cache()),
        lambda: tc.explain(request, tc.order(), tc.cache()),
    ):
        with pytest.raises(ValidationError, match="levels deep") as err:
            call()
        assert err.value.path.startswith("messages[1].content[0].input.a.a")


@settings(max_examples=60)
@given(strategies.requests())
def test_normalized_equals_normalize_and_shares_the_blocks_it_leaves(
    request: dict[str, Any],
) -> None:
    before = copy.deepcopy(request)
    out = normalized(request)
    assert out == normalize(request)
    assert request == before  # the input is left alone
    assert out["messages"] is not request["messages"]
    for old, new in zip(request["messages"], out["messages"], strict=True):
        assert new is not old  # each message and its content list are the caller's to change
        if isinstance(old["content"], list):
            assert new["content"] is not old["content"]
            for a, b in zip(old["content"], new["content"], strict=True):
                string_result = a.get("type") == "tool_result" and isinstance(a.get("content"), str)
                assert (b is a) or string_result


@settings(max_examples=60)
@given(strategies.requests(with_cache_control=True))
def test_plain_copy_is_an_equal_copy_that_shares_no_container(request: dict[str, Any]) -> None:
    out = plain_copy(request)
    assert out == request and json.dumps(out) == json.dumps(request)

    def containers(value: Any) -> list[int]:
        if isinstance(value, dict):
            return [id(value), *(i for v in value.values() for i in containers(v))]
        if isinstance(value, list):
            return [id(value), *(i for v in value for i in containers(v))]
        return []

    assert not set(containers(out)) & set(containers(request))
