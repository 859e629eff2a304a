"""tidyctx's tables of request shapes equal what the installed Anthropic SDK's beta param types
say, so that the next API change (a new block, role, effort level or toolset) fails here rather
than as a user's 400 or a valid request tidyctx rejects."""

from __future__ import annotations

import typing
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import typing_extensions

from tidyctx import _shapes

beta = pytest.importorskip("anthropic.types.beta")

_WRAPPERS = {
    typing.Required,
    typing.NotRequired,
    typing_extensions.Required,
    typing_extensions.NotRequired,
    typing.Annotated,
}


def _members(t: Any) -> list[Any]:
    """The members of a (nested) Union, Required/Optional wrappers removed."""
    while get_origin(t) in _WRAPPERS:
        t = get_args(t)[0]
    if get_origin(t) is Union:
        return [m for a in get_args(t) for m in _members(a)]
    return [t]


def _hints(td: Any) -> dict[str, Any]:
    return typing.get_type_hints(td, include_extras=True)


def _literals(td: Any, key: str) -> tuple[str, ...]:
    """The Literal values of ``td[key]`` (None and other members ignored)."""
    values: list[str] = []
    for member in _members(_hints(td)[key]):
        if get_origin(member) is Literal:
            values.extend(get_args(member))
    return tuple(values)


def _typed_dicts(union: Any) -> list[Any]:
    # BetaContentBlockParam also lists the response models (pydantic); only params count.
    return [m for m in _members(union) if typing_extensions.is_typeddict(m)]


def _types(union: Any) -> set[str]:
    return {v for m in _typed_dicts(union) for v in _literals(m, "type")}


def test_message_roles_are_the_sdks() -> None:
    roles = [r for m in _members(beta.BetaMessageParam) for r in _literals(m, "role")]
    assert tuple(roles) == _shapes.MESSAGE_ROLES


def test_system_message_keys_and_values_are_the_sdks() -> None:
    from anthropic.types.beta.beta_system_message_output_config_param import (
        BetaSystemMessageOutputConfigParam,
    )
    from anthropic.types.beta.beta_system_message_param import BetaSystemMessageParam

    assert set(_hints(BetaSystemMessageParam)) == _shapes.SYSTEM_MESSAGE_KEYS
    assert _literals(BetaSystemMessageParam, "clear_at") == _shapes.CLEAR_AT
    content = _hints(BetaSystemMessageParam)["content"]
    blocks = {
        v
        for m in _members(content)
        if get_origin(m) is not None and m is not str
        for inner in get_args(m)
        for v in _types(inner)
    }
    assert blocks == _shapes.SYSTEM_MESSAGE_BLOCKS
    assert set(_hints(BetaSystemMessageOutputConfigParam)) == _shapes.SYSTEM_OUTPUT_CONFIG_KEYS
    assert _literals(BetaSystemMessageOutputConfigParam, "effort") == _shapes.EFFORTS


def test_effort_levels_are_the_sdks() -> None:
    assert _literals(beta.BetaOutputConfigParam, "effort") == _shapes.EFFORTS


def test_tool_change_references_are_the_sdks() -> None:
    from anthropic.types.beta.beta_request_tool_addition_block_param import (
        BetaRequestToolAdditionBlockParam,
    )
    from anthropic.types.beta.beta_request_tool_removal_block_param import (
        BetaRequestToolRemovalBlockParam,
    )

    adds = _types(_hints(BetaRequestToolAdditionBlockParam)["tool"])
    removes = _types(_hints(BetaRequestToolRemovalBlockParam)["tool"])
    assert adds == _shapes.TOOL_ADDITION_REFS
    assert removes == _shapes.TOOL_REMOVAL_REFS
    kinds = {
        _literals(BetaRequestToolAdditionBlockParam, "type")[0],
        _literals(BetaRequestToolRemovalBlockParam, "type")[0],
    }
    assert kinds == _shapes.TOOL_CHANGE_BLOCKS
    # Both may carry a breakpoint: they are cached like any other block.
    assert "cache_control" in _hints(BetaRequestToolAdditionBlockParam)
    assert "cache_control" in _hints(BetaRequestToolRemovalBlockParam)


def test_blocks_without_cache_control_are_the_sdks() -> None:
    markerless = {
        v
        for m in _typed_dicts(beta.BetaContentBlockParam)
        if "cache_control" not in _hints(m)
        for v in _literals(m, "type")
    }
    assert markerless == _shapes.MARKERLESS_BLOCKS
    # Every tool_change block type is a content block the SDK knows.
    assert _types(beta.BetaContentBlockParam) >= _shapes.TOOL_CHANGE_BLOCKS


def test_toolsets_without_a_name_are_the_sdks() -> None:
    nameless = {
        v
        for m in _typed_dicts(beta.BetaToolUnionParam)
        if "name" not in _hints(m)
        for v in _literals(m, "type")
    }
    assert nameless == _shapes.NAMELESS_TOOLS


def test_thinking_types_are_the_sdks() -> None:
    kinds = [v for m in _typed_dicts(beta.BetaThinkingConfigParam) for v in _literals(m, "type")]
    assert tuple(kinds) == _shapes.THINKING_TYPES


def test_context_edits_are_the_sdks() -> None:
    edits = _hints(beta.BetaContextManagementConfigParam)["edits"]
    (inner,) = get_args(_members(edits)[0])
    kinds = [v for m in _typed_dicts(inner) for v in _literals(m, "type")]
    assert tuple(kinds) == _shapes.CONTEXT_EDITS
