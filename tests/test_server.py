"""tidyctx.testing.LocalServer, driven by the real anthropic SDK over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import Message
from anthropic.types.messages import (
    DeletedMessageBatch,
    MessageBatch,
    MessageBatchCanceledResult,
    MessageBatchErroredResult,
    MessageBatchSucceededResult,
)

from builders import PNG
from tidyctx.testing import ERROR_TYPES, Fail, Hang, LocalServer, local_server

MODEL = "claude-sonnet-4-6"
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TOOL_REPLY: list[dict[str, Any]] = [
    {"type": "text", "text": "Let me look that up."},
    {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "get_weather",
        # Non-ASCII, nesting, floats and null: streamed as partial JSON cut at arbitrary points.
        "input": {"city": "Zürich ☃", "days": 3, "extra": {"hours": [1, 2.5, None]}},
    },
]
THINKING_REPLY: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "Two plus two is four.", "signature": "sig_abc"},
    {"type": "text", "text": "4"},
]


def ask(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def full_request() -> dict[str, Any]:
    """A valid request using system blocks, tools, tool_use/tool_result, an image, thinking."""
    return {
        "model": MODEL,
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [WEATHER_TOOL],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "cache_control": {"type": "ephemeral"},
        "diagnostics": {"previous_message_id": None},
        "output_config": {"effort": "low"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's the weather where this photo was taken?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "It is Paris.", "signature": "sig_1"},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C, clear"},
                    {"type": "text", "text": "Answer in one line."},
                ],
            },
        ],
    }


# context_management is not a create() keyword in the SDK; it goes through extra_body.
CONTEXT_MANAGEMENT = {"edits": [{"type": "clear_tool_uses_20250919"}]}


def make_client(server: LocalServer, **options: Any) -> anthropic.Anthropic:
    options.setdefault("max_retries", 0)
    return anthropic.Anthropic(
        base_url=server.base_url, api_key="test", _strict_response_validation=True, **options
    )


def raw_http(
    server: LocalServer, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    """Plain urllib, for requests the SDK cannot send (malformed JSON, unknown paths)."""
    request = urllib.request.Request(
        server.base_url + path,
        data=body,
        method=method,
        headers={"content-type": "application/json", "x-api-key": "test"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), json.loads(err.read())


def dump(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = message.model_dump(mode="json", exclude_none=True)
    return result


def server_threads(port: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"tidyctx-LocalServer-{port}")]


# ---------------------------------------------------------------------------- messages


def test_create_round_trips_a_full_request(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    request = full_request()
    message = anthropic_client.messages.create(
        **request, extra_body={"context_management": CONTEXT_MANAGEMENT}
    )
    assert isinstance(message, Message)
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert message.role == "assistant" and message.type == "message"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text" and message.content[0].text == "ok"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert usage.service_tier == "standard"
    assert message._request_id is not None and message._request_id.startswith("req_")

    (seen,) = local_server.requests
    assert (seen.method, seen.path) == ("POST", "/v1/messages")
    assert seen.headers["authorization"] == "Bearer test"  # SDK 2.x: no x-api-key header
    assert "anthropic-version" in seen.headers
    assert seen.body == {**request, "context_management": CONTEXT_MANAGEMENT}


def test_replies_are_deterministic(anthropic_client: anthropic.Anthropic) -> None:
    first = anthropic_client.messages.create(**ask("same"))
    second = anthropic_client.messages.create(**ask("same"))
    other = anthropic_client.messages.create(**ask("different"))
    assert dump(first) == dump(second)
    assert first.id != other.id


def test_scripted_replies_are_consumed_in_order(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    full = {"content": "custom", "stop_reason": "stop_sequence", "stop_sequence": "END"}
    local_server.script("first", [{"type": "text", "text": "second"}], full)
    texts = []
    for _ in range(4):
        message = anthropic_client.messages.create(**ask())
        assert message.content[0].type == "text"
        texts.append((message.content[0].text, message.stop_reason))
    assert texts == [
        ("first", "end_turn"),
        ("second", "end_turn"),
        ("custom", "stop_sequence"),
        ("ok", "end_turn"),
    ]
    assert not local_server.scripted


def test_tool_use_reply_fills_ids_and_stop_reason(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    local_server.script([{"type": "tool_use", "name": "get_weather", "input": {"city": "Oslo"}}])
    message = anthropic_client.messages.create(**ask(tools=[WEATHER_TOOL]))
    (block,) = message.content
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert block.input == {"city": "Oslo"}
    assert message.stop_reason == "tool_use"


def test_hooks_answer_and_count_usage() -> None:
    def responder(request: dict[str, Any]) -> str:
        return f"you said {request['messages'][-1]['content']}"

    def usage_for(request: dict[str, Any]) -> dict[str, int]:
        return {
            "input_tokens": 7,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 50,
        }

    with local_server(responder=responder, usage_for=usage_for) as srv, make_client(srv) as client:
        message = client.messages.create(**ask("hello"))
    assert message.content[0].type == "text" and message.content[0].text == "you said hello"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_creation_input_tokens) == (7, 100)
    assert usage.cache_read_input_tokens == 50 and usage.output_tokens > 0
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 100


def test_a_failing_hook_answers_500_and_errors_batch_requests() -> None:
    def responder(request: dict[str, Any]) -> str:
        raise RuntimeError("boom")

    with local_server(responder=responder) as srv, make_client(srv) as client:
        with pytest.raises(anthropic.InternalServerError, match="RuntimeError: boom") as caught:
            client.messages.create(**ask())
        assert caught.value.status_code == 500 and caught.value.type == "api_error"
        batch = client.messages.batches.create(
            requests=[{"custom_id": "a", "params": ask()}]  # type: ignore[typeddict-item]
        )
        assert batch.request_counts.errored == 1
        (line,) = client.messages.batches.results(batch.id)
        assert isinstance(line.result, MessageBatchErroredResult)
        assert line.result.error.error.type == "api_error"


def test_prewarm_with_max_tokens_zero(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(**{**ask(), "max_tokens": 0})
    assert message.content == [] and message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 0 and message.usage.input_tokens > 0
    with pytest.raises(anthropic.BadRequestError, match="pre-warming"):
        anthropic_client.messages.create(**{**ask(), "max_tokens": 0}, stream=True)


# ---------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("reply", [None, TOOL_REPLY, THINKING_REPLY], ids=["ok", "tool", "think"])
def test_stream_final_message_equals_create(
    local_server: LocalServer,
    anthropic_client: anthropic.Anthropic,
    reply: list[dict[str, Any]] | None,
) -> None:
    request = ask(tools=[WEATHER_TOOL], max_tokens=2048)
    if reply is not None:
        local_server.script(reply, reply)
    created = anthropic_client.messages.create(**request)
    with anthropic_client.messages.stream(**request) as stream:
        streamed_text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert dump(final) == dump(created)
    assert streamed_text == "".join(b.text for b in created.content if b.type == "text")
    assert local_server.requests[-1].body["stream"] is True
    assert local_server.requests[-1].headers["x-stainless-helper-method"] == "stream"


def test_create_stream_true_yields_the_api_event_sequence(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    local_server.script(THINKING_REPLY + TOOL_REPLY)
    events = list(anthropic_client.messages.create(**ask(max_tokens=2048), stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    start = events[0]
    assert start.type == "message_start"
    assert start.message.content == [] and start.message.stop_reason is None
    assert start.message.usage.input_tokens > 0
    deltas = {e.delta.type for e in events if e.type == "content_block_delta"}
    assert deltas == {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"}
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text", "text", "tool_use"]
    assert kinds.count("content_block_stop") == 4
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "tool_use" and delta.usage.output_tokens > 1


# ---------------------------------------------------------------------------- count_tokens


def test_count_tokens_grows_with_the_request(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    count = anthropic_client.messages.count_tokens
    small = count(model=MODEL, messages=[{"role": "user", "content": "hi"}]).input_tokens
    longer = count(
        model=MODEL, messages=[{"role": "user", "content": "hi " + "lorem ipsum " * 50}]
    ).input_tokens
    with_tools = count(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ).input_tokens
    assert isinstance(small, int) and small > 0
    assert longer > small and with_tools > small
    # The same counter fills usage.input_tokens.
    created = anthropic_client.messages.create(**ask("hi"))
    assert created.usage.input_tokens == small
    assert local_server.requests[0].path == "/v1/messages/count_tokens"


def test_count_tokens_validates(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"messages\[0\]\.role"):
        anthropic_client.messages.count_tokens(
            model=MODEL,
            messages=[{"role": "system", "content": "x"}],
        )


# ---------------------------------------------------------------------------- validation


def _five_markers() -> dict[str, Any]:
    marker = {"type": "ephemeral"}
    return ask(
        system=[{"type": "text", "text": f"rule {i}", "cache_control": marker} for i in range(5)]
    )


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "system message first": (
        {"messages": [{"role": "system", "content": "be brief"}]},
        r"messages\[0\]\.role: a system message cannot open the conversation",
    ),
    "missing tool_result": (
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}],
                },
                {"role": "user", "content": "and?"},
            ]
        },
        r"messages\[1\]\.content\[0\]: tool_use 't1' has no tool_result",
    ),
    "orphan tool_result": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "x"}],
                }
            ]
        },
        r"messages\[0\]\.content\[0\]: tool_result for 't9' has no tool_use",
    ),
    "5 cache_control": (_five_markers(), r"system\[4\]\.cache_control: 5 cache_control"),
    "cache_control on thinking": (
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "thinking",
                            "thinking": "hmm",
                            "signature": "s",
                            "cache_control": {"type": "ephemeral"},
                        },
                        {"type": "text", "text": "hello"},
                    ],
                },
                {"role": "user", "content": "go on"},
            ]
        },
        r"messages\[1\]\.content\[0\]\.cache_control: a thinking block cannot carry",
    ),
    "whitespace text": (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "  \n "}]}]},
        r"messages\[0\]\.content\[0\]: text blocks must contain non-whitespace text",
    ),
    "duplicate tool names": (
        {"tools": [WEATHER_TOOL, WEATHER_TOOL]},
        r"tools\[1\]\.name: duplicate tool name 'get_weather'",
    ),
    "content of wrong type": (
        {"messages": [{"role": "user", "content": 42}]},
        r"messages\[0\]\.content: must be a string or a list of blocks, got int",
    ),
    "thinking budget": (
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        r"max_tokens: must be greater than thinking\.budget_tokens",
    ),
    "negative max_tokens": ({"max_tokens": -1}, r"max_tokens: must be at least 1"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_requests_are_rejected_with_400(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic, case: str
) -> None:
    change, place = INVALID[case]
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(**{**ask(), **change})
    err = caught.value
    assert err.api_message is not None and re.match(place, err.api_message), err.api_message
    assert err.status_code == 400
    assert isinstance(err.body, dict)
    assert err.body["type"] == "error"
    assert err.body["error"]["type"] == "invalid_request_error"
    assert err.type == "invalid_request_error"
    assert err.request_id is not None and err.request_id.startswith("req_")
    assert err.body["request_id"] == err.request_id == err.response.headers["request-id"]
    assert len(local_server.requests) == 1  # max_retries=0: no second try


def test_invalid_request_leaves_the_scripted_reply_queued(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    local_server.script("kept")
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.create(**{**ask(), "max_tokens": -1})
    message = anthropic_client.messages.create(**ask())
    assert message.content[0].type == "text" and message.content[0].text == "kept"


def test_malformed_json_unknown_path_and_missing_fields(local_server: LocalServer) -> None:
    status, headers, body = raw_http(local_server, "POST", "/v1/messages", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert headers["request-id"] == body["request_id"]

    status, headers, body = raw_http(local_server, "GET", "/v1/nothing")
    assert status == 404 and body["error"]["type"] == "not_found_error"
    assert headers["request-id"].startswith("req_")

    for missing in ("model", "max_tokens", "messages"):
        request = {key: value for key, value in ask().items() if key != missing}
        status, _, body = raw_http(
            local_server, "POST", "/v1/messages", json.dumps(request).encode()
        )
        assert status == 400, missing
        assert body["error"]["message"] == f"{missing}: Field required"


def test_api_key_is_checked_when_configured() -> None:
    with local_server(api_key="test") as srv:
        with make_client(srv) as client:
            assert client.messages.create(**ask()).content
        wrong = anthropic.Anthropic(base_url=srv.base_url, api_key="wrong", max_retries=0)
        with wrong, pytest.raises(anthropic.AuthenticationError) as caught:
            wrong.messages.create(**ask())
        assert caught.value.type == "authentication_error"
        status, _, _ = raw_http(srv, "POST", "/v1/messages", json.dumps(ask()).encode())
        assert status == 200  # x-api-key: test


# ---------------------------------------------------------------------------- failures


EXPECTED_CLASS: dict[int, type[anthropic.APIStatusError]] = {
    400: anthropic.BadRequestError,
    401: anthropic.AuthenticationError,
    402: anthropic.PaymentRequiredError,
    403: anthropic.PermissionDeniedError,
    404: anthropic.NotFoundError,
    409: anthropic.ConflictError,
    413: anthropic.ContentTooLargeError,
    429: anthropic.RateLimitError,
    500: anthropic.InternalServerError,
    503: anthropic.ServiceUnavailableError,
    504: anthropic.GatewayTimeoutError,
    529: anthropic.OverloadedError,
}


@pytest.mark.parametrize("status", list(EXPECTED_CLASS))
def test_scripted_failures_map_to_sdk_exceptions(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic, status: int
) -> None:
    local_server.script(Fail(status))
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_client.messages.create(**ask())
    err = caught.value
    assert type(err) is EXPECTED_CLASS[status]
    assert err.status_code == status
    assert err.type == ERROR_TYPES.get(status, "api_error")
    if status >= 500:
        assert isinstance(err, anthropic.InternalServerError)


def test_overloaded_and_rate_limited(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    local_server.script(
        Fail(529),
        Fail(429, headers={"retry-after": "7"}, message="slow down"),
    )
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        anthropic_client.messages.create(**ask())
    assert isinstance(overloaded.value, anthropic.InternalServerError)
    assert overloaded.value.status_code == 529 and overloaded.value.type == "overloaded_error"
    with pytest.raises(anthropic.RateLimitError) as limited:
        anthropic_client.messages.create(**ask())
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.api_message == "slow down"


def test_retry_after_an_overload_succeeds(local_server: LocalServer) -> None:
    local_server.script(Fail(529, headers={"retry-after-ms": "5"}), "recovered")
    with make_client(local_server, max_retries=2) as client:
        message = client.messages.create(**ask())
    assert message.content[0].type == "text" and message.content[0].text == "recovered"
    seen = local_server.requests
    assert len(seen) == 2
    assert [r.headers["x-stainless-retry-count"] for r in seen] == ["0", "1"]


def test_retries_run_out_and_x_should_retry_is_obeyed(local_server: LocalServer) -> None:
    local_server.fail_next(529, times=3, headers={"retry-after-ms": "1"})
    with make_client(local_server, max_retries=2) as client:
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(**ask())
        assert len(local_server.requests) == 3
        local_server.reset()
        local_server.script(Fail(500, headers={"x-should-retry": "false"}))
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(**ask())
        assert len(local_server.requests) == 1


def test_fail_next_jumps_the_queue(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    local_server.script("queued")
    local_server.fail_next(500)
    with pytest.raises(anthropic.InternalServerError):
        anthropic_client.messages.create(**ask())
    message = anthropic_client.messages.create(**ask())
    assert message.content[0].type == "text" and message.content[0].text == "queued"


def test_hang_longer_than_the_timeout_times_out(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # A hang far longer than any stall of a busy machine: a timely error is not the answer.
    local_server.script(Hang(30), "after the hang")
    with pytest.raises(anthropic.APITimeoutError):  # the hang would have answered a message
        anthropic_client.with_options(timeout=0.1).messages.create(**ask())
    # On a busy machine the server may read the request after the client gave up: wait (a
    # bounded time) until it has taken the hang from its script.
    deadline = time.monotonic() + 120
    while any(isinstance(i, Hang) for i in local_server.scripted):
        assert time.monotonic() < deadline, "the server never read the timed-out request"
        time.sleep(0.01)
    # The hang consumed its item only; the next call gets the next one, at once.
    message = anthropic_client.messages.create(**ask())
    assert message.content[0].type == "text" and message.content[0].text == "after the hang"


def test_hang_shorter_than_the_timeout_answers(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    local_server.script(Hang(0.05, then="late"))
    message = anthropic_client.with_options(timeout=30).messages.create(**ask())
    assert message.content[0].type == "text" and message.content[0].text == "late"


# ---------------------------------------------------------------------------- batches


@pytest.fixture
def slow_batches() -> Iterator[tuple[LocalServer, anthropic.Anthropic]]:
    with LocalServer(batch_polls=2) as srv, make_client(srv) as client:
        yield srv, client


def test_batch_lifecycle(slow_batches: tuple[LocalServer, anthropic.Anthropic]) -> None:
    srv, client = slow_batches
    invalid = {**ask(), "messages": [{"role": "system", "content": "nope"}]}
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": "first", "params": ask("one")},  # type: ignore[typeddict-item]
            {"custom_id": "bad-one", "params": invalid},  # type: ignore[typeddict-item]
            {"custom_id": "third_3", "params": ask("three")},  # type: ignore[typeddict-item]
        ]
    )
    assert isinstance(batch, MessageBatch)
    assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3 and batch.results_url is None
    assert batch.ended_at is None and batch.expires_at > batch.created_at

    polled = [client.messages.batches.retrieve(batch.id) for _ in range(2)]
    assert [b.processing_status for b in polled] == ["in_progress", "ended"]
    ended = polled[-1]
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 2, 1)
    assert (counts.canceled, counts.expired) == (0, 0)
    assert ended.ended_at is not None and ended.ended_at >= ended.created_at
    assert ended.results_url == f"{srv.base_url}/v1/messages/batches/{batch.id}/results"

    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert set(results) == {"first", "bad-one", "third_3"}
    ok = results["first"]
    assert isinstance(ok, MessageBatchSucceededResult)
    assert ok.message.content[0].type == "text" and ok.message.content[0].text == "ok"
    assert ok.message.usage.service_tier == "batch"
    assert isinstance(results["third_3"], MessageBatchSucceededResult)
    errored = results["bad-one"]
    assert isinstance(errored, MessageBatchErroredResult)
    assert errored.error.error.type == "invalid_request_error"
    assert "messages[0].role" in errored.error.error.message
    assert srv.requests[-1].path == f"/v1/messages/batches/{batch.id}/results"

    deleted = client.messages.batches.delete(batch.id)
    assert isinstance(deleted, DeletedMessageBatch) and deleted.id == batch.id
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_batch_ends_at_once_by_default(anthropic_client: anthropic.Anthropic) -> None:
    batch = anthropic_client.messages.batches.create(
        requests=[
            {"custom_id": "a", "params": ask()},  # type: ignore[typeddict-item]
            {"custom_id": "b", "params": {**ask(), "stream": True}},  # type: ignore[typeddict-item]
        ]
    )
    assert batch.processing_status == "ended" and batch.results_url is not None
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    assert isinstance(results["a"], MessageBatchSucceededResult)
    streamed = results["b"]
    assert isinstance(streamed, MessageBatchErroredResult)
    assert "stream" in streamed.error.error.message


def test_batch_cancel_and_delete(slow_batches: tuple[LocalServer, anthropic.Anthropic]) -> None:
    _, client = slow_batches
    batch = client.messages.batches.create(
        requests=[{"custom_id": f"r{i}", "params": ask()} for i in range(3)]  # type: ignore[typeddict-item]
    )
    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        client.messages.batches.delete(batch.id)
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 3
    results = list(client.messages.batches.results(batch.id))
    assert all(isinstance(r.result, MessageBatchCanceledResult) for r in results)
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_batch_list_paginates(anthropic_client: anthropic.Anthropic) -> None:
    ids = [
        anthropic_client.messages.batches.create(
            requests=[{"custom_id": "x", "params": ask(str(i))}]  # type: ignore[typeddict-item]
        ).id
        for i in range(3)
    ]
    page = anthropic_client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == [ids[2], ids[1]]
    assert page.has_more is True and page.first_id == ids[2] and page.last_id == ids[1]
    # Auto-pagination follows after_id to the end, newest first.
    assert [b.id for b in anthropic_client.messages.batches.list(limit=2)] == ids[::-1]


BAD_BATCHES: dict[str, tuple[list[dict[str, Any]], str]] = {
    "bad characters": ([{"custom_id": "no spaces!", "params": ask()}], r"requests\[0\]\.custom_id"),
    "too long": ([{"custom_id": "x" * 65, "params": ask()}], r"1 to 64 characters"),
    "empty": ([{"custom_id": "", "params": ask()}], r"requests\[0\]\.custom_id"),
    "duplicate": (
        [{"custom_id": "a", "params": ask()}, {"custom_id": "a", "params": ask()}],
        r"requests\[1\]\.custom_id: duplicate custom_id 'a'",
    ),
    "no requests": ([], r"at least one request"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES), ids=list(BAD_BATCHES))
def test_invalid_batches_are_rejected(anthropic_client: anthropic.Anthropic, case: str) -> None:
    requests, message = BAD_BATCHES[case]
    with pytest.raises(anthropic.BadRequestError, match=message) as caught:
        anthropic_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert caught.value.type == "invalid_request_error"


def test_too_many_batch_requests_are_rejected(local_server: LocalServer) -> None:
    requests = [{"custom_id": "r", "params": {}}] * 100_001  # the count is checked first
    body = json.dumps({"requests": requests}).encode()
    status, _, answer = raw_http(local_server, "POST", "/v1/messages/batches", body)
    assert status == 400 and "at most 100,000 requests" in answer["error"]["message"]


# ---------------------------------------------------------------------------- lifecycle


def test_stop_closes_the_port_and_joins_every_thread() -> None:
    srv = LocalServer().start()
    port = srv.port
    client = make_client(srv)
    try:
        # Leave a keep-alive connection open in the client's pool while the server stops.
        client.messages.create(**ask())
        assert server_threads(port)
        srv.stop()
        assert not server_threads(port)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        srv.stop()  # idempotent
        assert not srv.running
    finally:
        client.close()
        srv.stop()


def test_stop_cuts_a_hang_short() -> None:
    srv = LocalServer().start()
    port = srv.port
    srv.script(Hang(30))
    errors: list[BaseException] = []

    def call() -> None:
        with make_client(srv, timeout=10) as client:
            try:
                client.messages.create(**ask())
            except anthropic.APIConnectionError as err:
                errors.append(err)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 30
    while not srv.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 10  # not the 30 s of the hang, even on a busy machine
    caller.join(timeout=30)
    assert not caller.is_alive() and len(errors) == 1
    assert not server_threads(port)


def test_context_manager_and_reset() -> None:
    with local_server() as srv:
        assert srv.running and srv.base_url.startswith("http://127.0.0.1:")
        with make_client(srv) as client:
            client.messages.create(**ask())
        srv.script("pending")
        assert len(srv.requests) == 1 and len(srv.scripted) == 1
        srv.reset()
        assert srv.requests == [] and not srv.scripted
    assert not srv.running
    with pytest.raises(RuntimeError):
        srv.base_url  # noqa: B018


@pytest.mark.parametrize("depth", [900, 5_000, 200_000])
def test_deeply_nested_json_is_a_400_not_a_dropped_connection(
    local_server: LocalServer, depth: int
) -> None:
    body = (
        b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", '
        b'"content": "hi"}], "metadata": ' + b"[" * depth + b"]" * depth + b"}"
    )
    status, _, answer = raw_http(local_server, "POST", "/v1/messages", body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    status, _, answer = raw_http(local_server, "POST", "/v1/messages/count_tokens", body)
    assert status == 400


def test_omitted_thinking_display_returns_the_signature_without_the_text() -> None:
    reply = [{"type": "thinking", "thinking": "Work it out. " * 50}, {"type": "text", "text": "4"}]
    request: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "max_tokens": 256,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "messages": [{"role": "user", "content": "2+2?"}],
    }
    with LocalServer(responder=lambda body: reply) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        whole = client.messages.create(**request)
        with client.messages.stream(**request) as stream:
            streamed = stream.get_final_message()
        shown = client.messages.create(**{**request, "thinking": {"type": "adaptive"}})
    for message in (whole, streamed):
        thinking = message.content[0]
        assert thinking.type == "thinking"
        assert thinking.thinking == "" and thinking.signature
        assert message.content[1].type == "text"
    # Billed as written: the same output tokens as with the thinking shown.
    assert whole.usage.output_tokens == shown.usage.output_tokens
    assert shown.content[0].type == "thinking" and shown.content[0].thinking
