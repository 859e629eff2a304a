"""LocalServer's Message Batches, as tc.BatchJob's tests drive them: a hook that makes a
request end errored or expired, batch_polls read at each retrieve, and the 24-hour expiry."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types.messages import (
    MessageBatchErroredResult,
    MessageBatchExpiredResult,
    MessageBatchSucceededResult,
)

from tidyctx.testing import Fail, LocalServer

MODEL = "claude-sonnet-4-6"


def item(custom_id: str) -> Any:
    params = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "params": params}


def client_for(server: LocalServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url, api_key="test", max_retries=0, _strict_response_validation=True
    )


def test_batch_outcome_ends_requests_errored_or_expired() -> None:
    seen: list[tuple[str, str]] = []

    def outcome(custom_id: str, params: dict[str, Any]) -> Any:
        seen.append((custom_id, params["model"]))
        return {"late": "expired", "down": Fail(500), "busy": Fail(529)}.get(custom_id)

    with LocalServer(batch_outcome=outcome) as srv, client_for(srv) as client:
        batch = client.messages.batches.create(
            requests=[item(i) for i in ("ok", "late", "down", "busy")]
        )
        results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
        srv.batch_outcome = None
        again = client.messages.batches.create(requests=[item("late")])
        retried = list(client.messages.batches.results(again.id))
    assert batch.request_counts.succeeded == 1
    assert (batch.request_counts.errored, batch.request_counts.expired) == (2, 1)
    assert isinstance(results["ok"], MessageBatchSucceededResult)
    assert isinstance(results["late"], MessageBatchExpiredResult)
    down, busy = results["down"], results["busy"]
    assert isinstance(down, MessageBatchErroredResult)
    assert isinstance(busy, MessageBatchErroredResult)
    assert down.error.error.type == "api_error" and busy.error.error.type == "overloaded_error"
    assert down.error.request_id and down.error.request_id != busy.error.request_id
    assert [r.result.type for r in retried] == ["succeeded"]
    assert seen == [(i, MODEL) for i in ("ok", "late", "down", "busy")]


def test_changing_batch_polls_applies_to_open_batches() -> None:
    with LocalServer(batch_polls=1_000) as srv, client_for(srv) as client:
        batch = client.messages.batches.create(requests=[item("a")])
        polled = [client.messages.batches.retrieve(batch.id) for _ in range(3)]
        assert {b.processing_status for b in polled} == {"in_progress"}
        srv.batch_polls = 4  # retrieved 3 times: the 4th ends it
        assert client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_a_batch_not_ended_in_24_hours_expires_every_request() -> None:
    now = [5_000.0]
    with (
        LocalServer(batch_polls=1_000, clock=lambda: now[0]) as srv,
        client_for(srv) as client,
    ):
        batch = client.messages.batches.create(requests=[item("a"), item("b")])
        now[0] += 24 * 3600 - 1
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
        now[0] += 1
        ended = client.messages.batches.retrieve(batch.id)
        results = list(client.messages.batches.results(batch.id))
    assert ended.processing_status == "ended" and ended.request_counts.expired == 2
    assert ended.ended_at is not None and ended.ended_at == ended.expires_at
    assert {r.result.type for r in results} == {"expired"}
