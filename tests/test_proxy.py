"""``tidyctx proxy``: the real SDK -> the proxy (uvicorn, a free loopback port) -> LocalServer.

Through the proxy, large tool results arrive trimmed and the client gets what the upstream
answered; with no pipeline the client sees byte for byte what it sees calling directly. Each
comparison uses two fresh LocalServers (one called directly, one behind the proxy), so both
answer the same sequence of calls; only the ``date`` header (whole seconds) and the hop-by-hop
headers of each connection (``transfer-encoding``, ``connection``) may differ.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import pytest

import tidyctx as tc
from proxy_helpers import (
    MODEL,
    RawUpstream,
    SlowStream,
    big_output,
    proxy_to,
    reset,
    reset_mid_stream,
    tool_request,
)
from tidyctx.proxy import select_pipeline
from tidyctx.testing import Fail, Hang, LocalServer


def _defaults() -> list[Any]:
    return select_pipeline("defaults", tc.MemoryStore())


@pytest.fixture
def pair() -> Iterator[tuple[LocalServer, LocalServer]]:
    """Two fresh LocalServers: the first called directly, the second behind a proxy."""
    with LocalServer() as direct, LocalServer() as behind:
        yield direct, behind


def _client(base_url: str, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="sk-test-key", max_retries=0, **options)


def _seen(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    # Hop-by-hop headers belong to one connection (RFC 9110 section 7.6.1), not the answer.
    skip = ("date", "transfer-encoding", "connection", "keep-alive")
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in skip]
    return response.status_code, headers, response.content


def _post(base_url: str, path: str, body: bytes, **headers: str) -> httpx.Response:
    sent = {"content-type": "application/json", "x-api-key": "sk-test-key", **headers}
    return httpx.post(base_url + path, content=body, headers=sent, timeout=120)


# ------------------------------------------------------------------------- the real SDKs


def test_sync_sdk_gets_the_upstream_answer_with_the_tool_result_trimmed(
    pair: tuple[LocalServer, LocalServer],
) -> None:
    direct, behind = pair
    request = tool_request(big_output())
    with proxy_to(behind.base_url, _defaults()) as (proxy, rows):
        via_proxy = _client(proxy.base_url).messages.create(**request)
    sent = behind.requests[-1]
    assert len(sent.raw) < len(json.dumps(request)) / 5
    result = sent.body["messages"][2]["content"][0]["content"]
    assert "tidyctx_expand" in json.dumps(result), "the cut names the tool that restores it"
    # Called directly with the body the proxy sent, the API answers the same message.
    direct_reply = _client(direct.base_url).messages.create(**sent.body)
    assert via_proxy.model_dump() == direct_reply.model_dump()
    (row,) = rows
    assert row["status"] == 200 and row["fail_open"] is None
    assert row["tokens_after"] < row["tokens_before"] / 5
    names = [step["transform"] for step in row["changed"]]
    assert "cache(ttl='adaptive', pauses=Pauses())" in names
    # The proxy times each call for the adaptive TTL: a first call gets the 5-minute plan.
    assert row["ttl"]["stable"] == "5m" and "first call" in row["ttl"]["reason"]
    (trim,) = [step for step in row["changed"] if step["transform"].startswith("trim(")]
    assert trim["tokens_saved"] > 0


def test_async_sdk_through_the_proxy(pair: tuple[LocalServer, LocalServer]) -> None:
    _, behind = pair
    request = tool_request(big_output())

    async def calls(base_url: str) -> list[str]:
        async with anthropic.AsyncAnthropic(
            base_url=base_url, api_key="sk-test-key", max_retries=0
        ) as client:
            replies = await asyncio.gather(*(client.messages.create(**request) for _ in range(4)))
        return [r.content[0].text for r in replies]  # type: ignore[union-attr]

    with proxy_to(behind.base_url, _defaults()) as (proxy, rows):
        texts = asyncio.run(calls(proxy.base_url))
    assert texts == ["ok"] * 4
    assert len(rows) == 4 and all(r["status"] == 200 for r in rows)
    assert all(len(r.raw) < 10_000 for r in behind.requests)


def test_streaming_sdk_gets_the_same_events_as_a_direct_stream(
    pair: tuple[LocalServer, LocalServer],
) -> None:
    direct, behind = pair
    request = tool_request(big_output())
    with (
        proxy_to(behind.base_url, _defaults()) as (proxy, rows),
        _client(proxy.base_url).messages.stream(**request) as stream,
    ):
        proxied_events = [event.model_dump() for event in stream]
    sent = behind.requests[-1].body
    assert sent["stream"] is True
    body = {k: v for k, v in sent.items() if k != "stream"}
    with _client(direct.base_url).messages.stream(**body) as stream:
        direct_events = [event.model_dump() for event in stream]
    assert proxied_events == direct_events
    (row,) = rows
    usage = row["usage"]
    # message_delta carries the final usage; the row has the cache split read from the events.
    assert usage["output_tokens"] >= 1 and "ephemeral_5m_input_tokens" in usage
    assert row["stream"] is True and row["cost"] > 0


def test_off_pipeline_relays_every_byte_of_a_stream(pair: tuple[LocalServer, LocalServer]) -> None:
    direct, behind = pair
    body = json.dumps({**tool_request("short"), "stream": True}).encode()
    with proxy_to(behind.base_url) as (proxy, rows):
        via_proxy = _post(proxy.base_url, "/v1/messages", body)
    assert behind.requests[-1].raw == body
    assert _seen(via_proxy) == _seen(_post(direct.base_url, "/v1/messages", body))
    # A recording proxy does not parse the request: model and usage come from the events.
    assert rows[0]["model"] == MODEL and rows[0]["usage"]["output_tokens"] >= 1
    assert "tokens_before" not in rows[0] and rows[0]["cost"] > 0
    # Nothing ran on the request: with no pipeline the call cost what it cost.
    assert rows[0]["baseline_cost"] == rows[0]["cost"]


def test_count_tokens_counts_what_the_pipeline_sends(pair: tuple[LocalServer, LocalServer]) -> None:
    _, behind = pair
    request = tool_request(big_output())
    request.pop("max_tokens")
    with proxy_to(behind.base_url, _defaults()) as (proxy, _):
        counted = _client(proxy.base_url).messages.count_tokens(**request).input_tokens
        sent = behind.requests[-1].body
        create = _client(proxy.base_url).messages.create(**request, max_tokens=16)
    assert behind.requests[-1].path == "/v1/messages"
    assert sent["messages"] == {**behind.requests[-1].body}["messages"]
    billed = create.usage
    total = billed.input_tokens + (billed.cache_read_input_tokens or 0)
    assert counted == total + (billed.cache_creation_input_tokens or 0)


def test_query_string_and_auth_version_beta_headers_reach_the_upstream_untouched(
    pair: tuple[LocalServer, LocalServer],
) -> None:
    _, behind = pair
    headers = {
        "authorization": "Bearer sk-ant-oat-subscription",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "context-management-2025-06-27,effort-2025-11-24",
    }
    body = json.dumps(tool_request("short")).encode()
    with proxy_to(behind.base_url, _defaults()) as (proxy, _):
        answer = _post(proxy.base_url, "/v1/messages?beta=true", body, **headers)
    assert answer.status_code == 200
    seen = behind.requests[-1]
    assert seen.query == {"beta": "true"}
    for key, value in {**headers, "x-api-key": "sk-test-key"}.items():
        assert seen.headers[key] == value


def test_other_endpoints_pass_byte_for_byte(pair: tuple[LocalServer, LocalServer]) -> None:
    _, behind = pair
    batch = json.dumps(
        {"requests": [{"custom_id": "a", "params": tool_request("short")}]}, indent=1
    ).encode()
    with proxy_to(behind.base_url, _defaults()) as (proxy, rows):
        created = _post(proxy.base_url, "/v1/messages/batches", batch)
        path = f"/v1/messages/batches/{created.json()['id']}"
        retrieved = httpx.get(proxy.base_url + path)
        results = httpx.get(proxy.base_url + path + "/results")
        models = httpx.get(proxy.base_url + "/v1/models")
    assert behind.requests[0].raw == batch, "a batch is not transformed"
    # The same batch asked of the same server directly: the same answer (under a new id).
    for proxied, url in ((retrieved, path), (results, path + "/results"), (models, "/v1/models")):
        same = httpx.get(behind.base_url + url)
        assert proxied.headers["request-id"] != same.headers["request-id"]
        ids = {proxied.headers["request-id"].encode(): same.headers["request-id"].encode()}
        del proxied.headers["request-id"], same.headers["request-id"]
        status, headers, body = _seen(proxied)
        for ours, theirs in ids.items():
            body = body.replace(ours, theirs)
        assert (status, headers, body) == _seen(same)
    assert [r["pipeline"] for r in rows] == [None] * 4


# ------------------------------------------------------------------------- fail open


def _raises(request: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("a bug in a transform")


def _orphans_the_result(request: dict[str, Any]) -> dict[str, Any]:
    last = request["messages"][-1]
    block = {**last["content"][0], "tool_use_id": "toolu_unknown"}
    return {**request, "messages": [*request["messages"][:-1], {**last, "content": [block]}]}


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        (_raises, "transform _raises failed: RuntimeError"),
        (
            _orphans_the_result,
            "invalid after the pipeline: ValidationError at messages[2].content[0]",
        ),
    ],
    ids=["transform-raises", "invalid-after-pipeline"],
)
def test_a_failing_pipeline_sends_the_original_bytes(
    pair: tuple[LocalServer, LocalServer], transform: Any, reason: str
) -> None:
    direct, behind = pair
    body = json.dumps(tool_request(big_output(500))).encode()
    with proxy_to(behind.base_url, [tc.order(), transform, tc.cache()]) as (proxy, rows):
        via_proxy = _post(proxy.base_url, "/v1/messages", body)
    assert behind.requests[-1].raw == body
    assert _seen(via_proxy) == _seen(_post(direct.base_url, "/v1/messages", body))
    assert rows[0]["fail_open"] == reason
    assert rows[0]["changed"] == []


@pytest.mark.parametrize(
    "body",
    [b'{"model": "claude-sonnet-4-6", "max_tokens": ', b"[1, 2]", b"\xff\xfe", b""],
    ids=["truncated-json", "not-an-object", "not-utf8", "empty"],
)
def test_a_body_that_is_not_a_request_reaches_the_upstream_as_sent(
    pair: tuple[LocalServer, LocalServer], body: bytes
) -> None:
    direct, behind = pair
    with proxy_to(behind.base_url, _defaults()) as (proxy, rows):
        via_proxy = _post(proxy.base_url, "/v1/messages", body)
    assert behind.requests[-1].raw == body
    assert via_proxy.status_code == 400
    assert _seen(via_proxy) == _seen(_post(direct.base_url, "/v1/messages", body))
    assert rows[0]["fail_open"]


@pytest.mark.parametrize("status", [529, 500, 429, 400])
def test_upstream_errors_reach_the_client_as_sent(
    pair: tuple[LocalServer, LocalServer], status: int
) -> None:
    direct, behind = pair
    headers = {"retry-after": "7", "anthropic-ratelimit-requests-remaining": "0"}
    for server in pair:
        server.fail_next(status, headers=headers)
    body = json.dumps(tool_request("short")).encode()
    with proxy_to(behind.base_url, _defaults()) as (proxy, rows):
        via_proxy = _post(proxy.base_url, "/v1/messages", body)
    assert via_proxy.status_code == status
    assert via_proxy.headers["retry-after"] == "7"
    assert via_proxy.headers["request-id"].startswith("req_")
    assert _seen(via_proxy) == _seen(_post(direct.base_url, "/v1/messages", body))
    (row,) = rows
    assert row["status"] == status
    # As tc.wrap records a failed call: the API's error, nothing billed.
    assert row["error"] == {"type": via_proxy.json()["error"]["type"], "status": status,
                            "source": "api"}  # fmt: skip
    assert row["cost"] == row["baseline_cost"] == 0.0


def test_sdk_raises_the_same_error_through_the_proxy(pair: tuple[LocalServer, LocalServer]) -> None:
    direct, behind = pair
    for server in pair:
        server.script(Fail(529))
    request = tool_request("short")
    with (
        proxy_to(behind.base_url, _defaults()) as (proxy, _),
        pytest.raises(anthropic.OverloadedError) as via_proxy,
    ):
        _client(proxy.base_url).messages.create(**request)
    with pytest.raises(anthropic.OverloadedError) as called_directly:
        _client(direct.base_url).messages.create(**request)
    assert via_proxy.value.body == called_directly.value.body


def test_a_client_timeout_cancels_the_upstream_call(pair: tuple[LocalServer, LocalServer]) -> None:
    direct, behind = pair
    for server in pair:
        server.script(Hang(30))
    request = tool_request("short")
    with proxy_to(behind.base_url, _defaults()) as (proxy, rows):
        with pytest.raises(anthropic.APITimeoutError):
            _client(proxy.base_url, timeout=0.5).messages.create(**request)
        with pytest.raises(anthropic.APITimeoutError):
            _client(direct.base_url, timeout=0.5).messages.create(**request)
    assert rows[0]["error"] == {"type": "client_disconnected", "status": None, "source": "client"}
    assert "status" not in rows[0]


@pytest.mark.parametrize("upstream", [reset, reset_mid_stream], ids=["before", "mid-stream"])
def test_an_upstream_connection_reset_looks_the_same_through_the_proxy(upstream: Any) -> None:
    request = {**tool_request("short"), "stream": True}
    with RawUpstream(upstream) as server, proxy_to(server.base_url, _defaults()) as (proxy, rows):
        errors = []
        for base_url in (server.base_url, proxy.base_url):
            with pytest.raises(anthropic.APIConnectionError) as caught:
                for _ in _client(base_url).messages.create(**request):
                    pass
            errors.append(type(caught.value))
    assert errors[0] is errors[1]
    assert rows[0]["error"]["source"] == "upstream" and rows[0]["error"]["type"]


def test_a_client_that_leaves_mid_stream_closes_the_upstream_connection() -> None:
    slow = SlowStream()
    body = json.dumps({**tool_request("short"), "stream": True}).encode()
    with RawUpstream(slow) as server, proxy_to(server.base_url) as (proxy, rows):
        with httpx.Client(timeout=60) as client:
            headers = {"content-type": "application/json"}
            url = proxy.base_url + "/v1/messages"
            with client.stream("POST", url, content=body, headers=headers) as response:
                first = next(response.iter_raw())
                assert b"ping" in first
        assert slow.closed.wait(60), "the upstream call outlived its client"
    assert rows[0]["error"] == {"type": "client_disconnected", "status": 200, "source": "client"}
    assert rows[0]["complete"] is False


def test_a_30_mb_request(pair: tuple[LocalServer, LocalServer]) -> None:
    direct, behind = pair
    body = json.dumps(tool_request(big_output(520_000))).encode()
    assert 29_000_000 < len(body) < 32 * 1024 * 1024
    with proxy_to(behind.base_url) as (proxy, _):
        recorded = _post(proxy.base_url, "/v1/messages", body)
    assert behind.requests[-1].raw == body
    assert _seen(recorded) == _seen(_post(direct.base_url, "/v1/messages", body))
    behind.reset()
    with proxy_to(behind.base_url, _defaults()) as (proxy, rows):
        trimmed = _post(proxy.base_url, "/v1/messages", body)
    assert trimmed.status_code == 200
    assert len(behind.requests[-1].raw) < 20_000
    assert rows[0]["tokens_before"] > 100 * rows[0]["tokens_after"]


# ------------------------------------------------------------------------- security


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_the_proxy_is_not_an_open_proxy(local_server: LocalServer) -> None:
    body = b'{"model": "claude-sonnet-4-6"}'
    with proxy_to(local_server.base_url) as (proxy, rows):
        absolute = _raw_http(
            proxy.port,
            b"POST http://example.com/v1/messages HTTP/1.1\r\nHost: example.com\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        other_host = httpx.post(
            proxy.base_url + "/v1/messages", content=body, headers={"host": "example.com"}
        )
        loopback = httpx.get(proxy.base_url + "/v1/models", headers={"host": "localhost:1"})
    assert absolute.startswith(b"HTTP/1.1 400")
    assert other_host.status_code == 421
    assert loopback.status_code == 404  # reached the upstream, which has no models endpoint
    assert [r.path for r in local_server.requests] == ["/v1/models"]
    assert len(rows) == 1


def test_the_ledger_holds_no_key_header_or_content(
    local_server: LocalServer, tmp_path: Any
) -> None:
    from tidyctx.proxy import ProxyConfig, RunningProxy, create_app

    path = tmp_path / "ledger.jsonl"
    ledger = tc.Ledger(path)
    secret = "sk-ant-secret-never-logged"
    words = "unmistakable-content-word"
    config = ProxyConfig(
        upstream=local_server.base_url,
        transforms=_defaults(),
        pipeline="defaults",
        record=ledger.record,
    )
    request = tool_request(big_output() + words)
    request["messages"][0]["content"] = words
    with RunningProxy(create_app(config)) as proxy:
        client = anthropic.Anthropic(base_url=proxy.base_url, api_key=secret, max_retries=0)
        client.messages.create(**request)
        with client.messages.stream(**request) as stream:
            stream.until_done()
        client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": words}])
        local_server.fail_next(400, message=words)
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(**request)
    ledger.close()
    text = path.read_text()
    assert secret not in text and words not in text and "x-api-key" not in text
    rows = tc.read_ledger(path)
    # Rows are written as calls end (token counting may finish after the next call).
    assert sorted(r["status"] for r in rows) == [200, 200, 200, 400]
    assert {r["path"] for r in rows} == {"/v1/messages", "/v1/messages/count_tokens"}


def test_a_slow_pipeline_does_not_hold_other_sessions(local_server: LocalServer) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow_for_one(request: dict[str, Any]) -> dict[str, Any]:
        # Blocks only the request marked "slow", as a long transform of a huge request would.
        if request["messages"][0]["content"] == "slow":
            entered.set()
            release.wait(120)
        return request

    slow = {**tool_request("short"), "messages": [{"role": "user", "content": "slow"}]}
    with (
        proxy_to(local_server.base_url, [slow_for_one]) as (proxy, rows),
        ThreadPoolExecutor(1) as pool,
    ):
        blocked = pool.submit(_client(proxy.base_url).messages.create, **slow)
        try:
            assert entered.wait(120)
            # While the slow request is held in the pipeline, another session streams through.
            with _client(proxy.base_url).messages.stream(**tool_request("short")) as stream:
                assert stream.get_final_text() == "ok"
            assert not blocked.done()
        finally:
            release.set()
        assert blocked.result(timeout=120).content
    assert len(rows) == 2
