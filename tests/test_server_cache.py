"""LocalServer simulates prompt caching (tidyctx.cachesim), seen through the real anthropic SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter

MODEL = "claude-sonnet-4-6"  # minimum cacheable length 1,024 (pricing)
RULES = "Follow the house rules. " * 300  # ~1,500 tokens


def ask(question: str = "What is the rule?", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "system": [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": question}],
        **extra,
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_for(server: LocalServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url,
        api_key="test",
        max_retries=0,
        _strict_response_validation=True,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cached(clock: FakeClock) -> Iterator[tuple[LocalServer, anthropic.Anthropic]]:
    with LocalServer(clock=clock) as server, client_for(server) as client:
        yield server, client


def usage_tuple(usage: Any) -> tuple[int, int, int, int, int]:
    assert usage.cache_creation is not None
    return (
        usage.input_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation.ephemeral_5m_input_tokens,
        usage.cache_creation.ephemeral_1h_input_tokens,
    )


def counted(client: anthropic.Anthropic, request: dict[str, Any]) -> int:
    """count_tokens for ``request`` (without the keys count_tokens does not take)."""
    params = {k: v for k, v in request.items() if k not in ("max_tokens", "stream")}
    return client.messages.count_tokens(**params).input_tokens


def system_tokens() -> int:
    return LocalCounter(MODEL).count_text(RULES)


def test_second_call_reads_what_the_first_wrote(anthropic_client: anthropic.Anthropic) -> None:
    """The conftest fixtures (default clock); input + writes + reads == count_tokens."""
    total = counted(anthropic_client, ask())
    first = anthropic_client.messages.create(**ask()).usage
    written = first.cache_creation_input_tokens
    assert written == system_tokens() > 1024
    assert usage_tuple(first) == (total - written, written, 0, written, 0)

    second = anthropic_client.messages.create(**ask()).usage
    assert usage_tuple(second) == (total - written, 0, written, 0, 0)
    # count_tokens is unaffected by the cache.
    assert counted(anthropic_client, ask()) == total


def test_a_fake_clock_expires_the_entry_after_5_minutes(
    cached: tuple[LocalServer, anthropic.Anthropic], clock: FakeClock
) -> None:
    _, client = cached
    first = client.messages.create(**ask()).usage
    written = first.cache_creation_input_tokens
    assert written == system_tokens()
    clock.now += 299
    assert client.messages.create(**ask()).usage.cache_read_input_tokens == written
    clock.now += 301
    third = client.messages.create(**ask()).usage
    assert usage_tuple(third) == usage_tuple(first)  # written again, nothing read


def test_streaming_reports_the_same_usage_as_a_plain_call(clock: FakeClock) -> None:
    """message_start carries the input usage, message_delta the cumulative usage."""
    with LocalServer(clock=clock) as plain, client_for(plain) as client:
        expected = [client.messages.create(**ask()).usage for _ in range(2)]
    with LocalServer(clock=clock) as streamed, client_for(streamed) as client:
        for want in expected:
            starts: list[Any] = []
            deltas: list[Any] = []
            for event in client.messages.create(**ask(), stream=True):
                if event.type == "message_start":
                    starts.append(event.message.usage)
                elif event.type == "message_delta":
                    deltas.append(event.usage)
            (start,), (delta,) = starts, deltas
            assert usage_tuple(start) == usage_tuple(want)
            assert (
                delta.input_tokens,
                delta.cache_creation_input_tokens,
                delta.cache_read_input_tokens,
                delta.output_tokens,
            ) == (
                want.input_tokens,
                want.cache_creation_input_tokens,
                want.cache_read_input_tokens,
                want.output_tokens,
            )
    assert expected[0].cache_creation_input_tokens == expected[1].cache_read_input_tokens > 0


def test_the_stream_helper_sees_the_cache_read(
    cached: tuple[LocalServer, anthropic.Anthropic],
) -> None:
    _, client = cached
    written = client.messages.create(**ask()).usage.cache_creation_input_tokens
    with client.messages.stream(**ask()) as stream:
        final = stream.get_final_message()
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (
        written,
        0,
    )


def test_a_prewarm_request_writes_the_cache(
    cached: tuple[LocalServer, anthropic.Anthropic],
) -> None:
    """PC: "Pre-warm: `max_tokens:0` writes the cache, returns empty `content`"."""
    _, client = cached
    warm = client.messages.create(**{**ask(), "max_tokens": 0})
    assert warm.content == [] and warm.stop_reason == "max_tokens"
    written = warm.usage.cache_creation_input_tokens
    assert written == system_tokens() and warm.usage.output_tokens == 0
    reply = client.messages.create(**ask())
    assert reply.usage.cache_read_input_tokens == written
    assert reply.usage.cache_creation_input_tokens == 0


def test_mixed_ttls_and_a_growing_conversation(
    cached: tuple[LocalServer, anthropic.Anthropic],
) -> None:
    """A 1h marker on the system prompt, automatic caching (5m) on the conversation."""
    _, client = cached
    system = [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    messages: list[Any] = [{"role": "user", "content": "First question?"}]
    base: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 64,
        "system": system,
        "cache_control": {"type": "ephemeral"},
    }
    total_1 = counted(client, {**base, "messages": messages})
    first = client.messages.create(**base, messages=messages).usage
    # Billed as 1h write up to the 1h marker, 5m write from there to the last block.
    sys_tokens = system_tokens()
    assert usage_tuple(first) == (0, total_1, 0, total_1 - sys_tokens, sys_tokens)
    messages += [
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Second question?"},
    ]
    total_2 = counted(client, {**base, "messages": messages})
    second = client.messages.create(**base, messages=messages).usage
    # The automatic marker moved forward; the first call's prefix (both entries) is read.
    added = total_2 - total_1
    assert usage_tuple(second) == (0, added, total_1, added, 0)


def test_batch_requests_use_the_cache_too(
    cached: tuple[LocalServer, anthropic.Anthropic],
) -> None:
    _, client = cached
    written = client.messages.create(**ask()).usage.cache_creation_input_tokens
    batch = client.messages.batches.create(
        requests=[{"custom_id": "a", "params": ask()}]  # type: ignore[typeddict-item]
    )
    (result,) = list(client.messages.batches.results(batch.id))
    assert result.result.type == "succeeded"
    usage = result.result.message.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (written, 0)
    assert usage.service_tier == "batch"


def test_automatic_caching_with_another_ttl_is_a_400(
    cached: tuple[LocalServer, anthropic.Anthropic],
) -> None:
    """PC: automatic caching: "**400** if it has another TTL"."""
    server, client = cached
    server.script("never sent")
    request = ask(cache_control={"type": "ephemeral", "ttl": "1h"})
    request["messages"] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        }
    ]
    with pytest.raises(anthropic.BadRequestError, match="already has a 5m marker"):
        client.messages.create(**request)
    assert server.scripted == ("never sent",)  # an invalid request leaves the reply queued


def test_cache_false_reports_no_cache_use(clock: FakeClock) -> None:
    with LocalServer(cache=False, clock=clock) as server, client_for(server) as client:
        for _ in range(2):
            usage = client.messages.create(**ask()).usage
            assert usage_tuple(usage)[1:] == (0, 0, 0, 0)
            assert usage.input_tokens > system_tokens()


def test_a_usage_hook_replaces_the_simulation(clock: FakeClock) -> None:
    with (
        LocalServer(clock=clock, usage_for=lambda body: {"cache_read_input_tokens": 5}) as server,
        client_for(server) as client,
    ):
        for _ in range(2):
            usage = client.messages.create(**ask()).usage
            assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (5, 0)


def test_reset_forgets_the_cache(cached: tuple[LocalServer, anthropic.Anthropic]) -> None:
    server, client = cached
    first = client.messages.create(**ask()).usage
    server.reset()
    assert usage_tuple(client.messages.create(**ask()).usage) == usage_tuple(first)


def test_a_fake_clock_dates_batches(clock: FakeClock) -> None:
    with LocalServer(clock=clock) as server, client_for(server) as client:
        batch = client.messages.batches.create(
            requests=[{"custom_id": "a", "params": ask()}]  # type: ignore[typeddict-item]
        )
    assert batch.created_at.timestamp() == clock.now


def test_a_tool_change_message_is_part_of_the_cached_prefix(
    cached: tuple[LocalServer, anthropic.Anthropic],
) -> None:
    """A role: "system" message of tool changes is cached like any block: a breakpoint on it
    is read back by a later turn that sends it at the same place, and by no turn that drops
    it."""
    _, client = cached
    tools = [
        {"name": n, "input_schema": {"type": "object"}, "description": f"The {n} tool."}
        for n in ("bash", "edit")
    ]
    removal = {
        "role": "system",
        "content": [
            {
                "type": "tool_removal",
                "tool": {"type": "tool_reference", "name": "edit"},
                "cache_control": {"type": "ephemeral"},
            }
        ],
    }
    talk = [
        {"role": "user", "content": "Fix the bug. " * 200},
        {"role": "assistant", "content": "Done. " * 200},
        {"role": "user", "content": "Now stop editing."},
    ]
    first = client.beta.messages.create(**ask(tools=tools, messages=[*talk, removal])).usage
    unmarked = {
        **removal,
        "content": [{k: v for k, v in removal["content"][0].items() if k != "cache_control"}],
    }
    later = [
        *talk,
        unmarked,
        {"role": "assistant", "content": "Stopped."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Go on.", "cache_control": {"type": "ephemeral"}}],
        },
    ]
    second = client.beta.messages.create(**ask(tools=tools, messages=later)).usage
    written = first.cache_creation_input_tokens
    assert written > 0 and second.cache_read_input_tokens == written
    # The same turn without the change message reads only the system prompt's entry.
    dropped = [m for m in later if m is not unmarked]
    third = client.beta.messages.create(**ask(tools=tools, messages=dropped)).usage
    assert 0 < third.cache_read_input_tokens < written
