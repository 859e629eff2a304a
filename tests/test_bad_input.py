"""Bad input gets a ValidationError naming its place, from validate and from every transform.

The API cannot receive NaN or infinity (JSON has neither; the SDK's encoder refuses them), a
lone UTF-16 surrogate anywhere (the SDK fails encoding it, in a key as in a value), or a block
whose ``type`` is not a string. ``validate`` names each; a transform that fails on such a
request raises that same error. A fuzz over valid requests broken in a few places checks
that no transform, alone or in a pipe, lets any other exception out.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, event, given, settings

import strategies as gen
import tidyctx as tc
from tidyctx._request import errors
from tidyctx.testing import LocalServer


def _request(**parts: Any) -> dict[str, Any]:
    """A valid request with one tool call; ``parts`` replace its pieces."""
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "tools": [{"name": "run", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "run", "input": {"cmd": "ls"}}
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ],
    }
    request["messages"][2]["content"][0]["content"] = parts.pop("result", "a.py\nb.py")
    request["messages"][1]["content"][0]["input"] = parts.pop("input", {"cmd": "ls"})
    request.update(parts)
    return request


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "order": tc.order(),
    "cache": tc.cache(),
    "trim": tc.trim(),
    "compact": tc.compact(),
    "clear": tc.clear(tc.Clearing(keep=0, trigger=0, clear_at_least=0)),
    "slice_code": tc.slice_code(max_tokens=100),
    "parallel_tools": tc.parallel_tools(),
}

BAD = [
    pytest.param(
        _request(input={"n": float("nan")}),
        "messages[1].content[0].input.n",
        "is nan, which JSON cannot carry",
        id="nan-in-a-tool-input",
    ),
    pytest.param(
        _request(input={"xs": [1, float("inf")]}),
        "messages[1].content[0].input.xs[1]",
        "is inf, which JSON cannot carry",
        id="inf-in-a-list",
    ),
    pytest.param(
        _request(temperature=float("-inf")),
        "temperature",
        "is -inf, which JSON cannot carry",
        id="-inf-at-the-top",
    ),
    pytest.param(
        _request(input={"a\ud800": 1}),
        "messages[1].content[0].input.a\\ud800",
        "is a key that holds a lone UTF-16 surrogate",
        id="surrogate-in-a-key",
    ),
    pytest.param(
        _request(metadata={"user_id": "u", "\udc00": "x"}),
        "metadata.\\udc00",
        "is a key that holds a lone UTF-16 surrogate",
        id="surrogate-in-a-top-level-key",
    ),
    pytest.param(
        _request(result=[{"type": ["text"], "text": "x"}]),
        "messages[2].content[0].content[0]",
        "needs a string 'type', got list",
        id="list-type-in-a-tool-result",
    ),
    pytest.param(
        _request(tools=[{"name": "run", "type": ["custom"], "input_schema": {"type": "object"}}]),
        "tools[0].type",
        "must be a string, got list",
        id="list-type-of-a-tool",
    ),
    pytest.param(
        _request(
            messages=[
                {"role": "user", "content": "go"},
                {"role": "system", "content": "Be brief.", "clear_at": "later"},
            ]
        ),
        "messages[1].clear_at",
        "unknown clear_at 'later'",
        id="unknown-clear-at",
    ),
    pytest.param(
        _request(
            messages=[
                {"role": "user", "content": "go"},
                {
                    "role": "system",
                    "content": [{"type": "tool_addition", "tool": {"type": ["tool_reference"]}}],
                },
            ]
        ),
        "messages[1].content[0].tool",
        "a tool_addition needs a tool of type",
        id="list-type-of-a-tool-reference",
    ),
    pytest.param(
        _request(
            messages=[
                {"role": "user", "content": "go"},
                {
                    "role": "system",
                    "content": [
                        {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "rm"}}
                    ],
                },
            ]
        ),
        "messages[1].content[0].tool.name",
        "names no tool declared in tools",
        id="removal-of-an-unknown-tool",
    ),
    pytest.param(
        _request(
            messages=[
                {"role": "user", "content": "go"},
                {"role": "system", "content": [{"type": "image", "source": {"type": "url"}}]},
            ]
        ),
        "messages[1].content[0]",
        "a system message holds only text, tool_addition, tool_removal blocks",
        id="image-in-a-system-message",
    ),
]


@pytest.mark.parametrize(("request_", "path", "problem"), BAD)
def test_validate_names_the_place_of_what_json_or_the_api_cannot_take(
    request_: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(tc.ValidationError) as info:
        tc.validate(request_)
    assert info.value.path == path
    assert problem in info.value.problem
    str(info.value).encode("utf-8")  # the message itself can be printed


@pytest.mark.parametrize(("request_", "path", "problem"), BAD)
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_a_transform_that_fails_on_it_names_the_same_place(
    name: str, request_: dict[str, Any], path: str, problem: str
) -> None:
    try:
        TRANSFORMS[name](copy.deepcopy(request_))
    except tc.ValidationError as err:
        assert err.path == path
        assert problem in err.problem
    # (or it passes the request through: what it does not read cannot make it fail)


def test_the_sdk_cannot_send_what_validate_rejects() -> None:
    # The SDK serializes with allow_nan=False and UTF-8: NaN and lone surrogates fail there.
    from anthropic._utils._json import openapi_dumps

    with pytest.raises(ValueError, match="JSON compliant"):
        openapi_dumps(_request(input={"n": float("nan")}))
    with pytest.raises(UnicodeEncodeError):
        openapi_dumps(_request(input={"a\ud800": 1}))


# ---------------------------------------------------------------------------- the fuzz


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(cache=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LocalServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.base_url, api_key="t", max_retries=0) as c:
        yield c


def _every_transform(client: anthropic.Anthropic) -> dict[str, Callable[[Any], Any]]:
    return {
        **TRANSFORMS,
        "trim(max_tokens)": tc.trim(max_tokens=50),
        "trim(clearing)": tc.trim(clearing=tc.Clearing(keep=1, trigger=0, clear_at_least=0)),
        "summarize": tc.summarize(client, trigger=100, keep=1, target_tokens=40),
        "pipe": lambda r: tc.pipe(
            r,
            tc.order(),
            tc.slice_code(max_tokens=100),
            tc.trim(max_tokens=50),
            tc.summarize(client, trigger=100, keep=1, target_tokens=40),
            tc.cache(),
        ),
        "explain": lambda r: tc.explain(r, tc.order(), tc.trim(max_tokens=50), tc.cache()),
    }


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=gen.broken_requests())
def test_no_transform_raises_anything_but_a_validation_error(
    client: anthropic.Anthropic, request: dict[str, Any]
) -> None:
    valid = not errors(request)
    event("valid" if valid else "invalid")
    before = copy.deepcopy(request)
    for name, transform in _every_transform(client).items():
        try:
            transform(request)
        except tc.ValidationError as err:
            assert not valid, f"{name} rejected a request validate accepts: {err}"
            str(err).encode("utf-8")
        assert json.dumps(request, sort_keys=True, default=repr) == json.dumps(
            before, sort_keys=True, default=repr
        ), f"{name} changed its input"
