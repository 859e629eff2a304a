"""summarize(): regressions found by reviewing it as a user (real SDK against LocalServer)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest

import tidyctx as tc
from runs import OPTIONS, agent_run
from tidyctx import pricing
from tidyctx._request import canonical_json
from tidyctx.store import SQLiteStore
from tidyctx.testing import LocalServer
from tidyctx.transforms._summarize import (
    MAX_CALL_TOKENS,
    SummaryEvent,
    asummarize,
    leading_summary,
    summarize,
)


def test_an_answer_in_several_text_blocks_keeps_them_apart(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    # Glued, "...parse.py" + "## Facts" would corrupt the path and lose the heading.
    local_server.script(
        {
            "content": [
                {"type": "text", "text": "## Task\nFix src/app/parse.py"},
                {"type": "text", "text": "## Facts\nhandler_3 returns 7003"},
            ]
        }
    )
    out = summarize(anthropic_client, **OPTIONS)(agent_run(30))
    body = leading_summary(out["messages"])[1]
    assert body == "## Task\nFix src/app/parse.py\n\n## Facts\nhandler_3 returns 7003"
    tc.validate(out)


@pytest.mark.parametrize("client", ["sk-ant-api-key", object()])
def test_a_client_that_is_not_an_anthropic_client_gets_a_clear_error(
    client: object, local_server: LocalServer
) -> None:
    t = summarize(client, **OPTIONS)
    with pytest.raises(TypeError, match=r"needs an anthropic client .*\.messages\.create"):
        t(agent_run(30))


class ForgetfulStore:
    """A store whose entries expire (as with RedisStore(ttl_seconds=...)): ``forget()``."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def put(self, key: str, value: str) -> None:
        self.items[key] = value

    def forget(self) -> None:
        self.items.clear()


def test_an_async_transform_serves_several_event_loops(local_server: LocalServer) -> None:
    # asyncio.run() per batch of agents: the same span is summarized again in a new loop (its
    # entry expired), with tasks waiting on the same lock as in the first loop.
    store = ForgetfulStore()
    t = asummarize(
        anthropic.AsyncAnthropic(base_url=local_server.base_url, api_key="test"),
        store=store,
        **OPTIONS,
    )

    async def batch() -> list[Any]:
        async with anthropic.AsyncAnthropic(
            base_url=local_server.base_url, api_key="test", max_retries=0
        ) as client:
            t.client = client
            return await asyncio.gather(*[t.acall(agent_run(30)) for _ in range(3)])

    first = asyncio.run(batch())
    assert len(local_server.summary_calls()) == 1
    store.forget()
    second = asyncio.run(batch())
    assert len(local_server.summary_calls()) == 2  # one call per loop, the others waited for it
    outs = {canonical_json(out) for out in first + second}
    assert len(outs) == 1
    assert leading_summary(second[0]["messages"])[1] is not None


def test_explain_prices_every_call_of_a_step_that_needs_several(
    local_server: LocalServer, anthropic_client: anthropic.Anthropic
) -> None:
    events: list[SummaryEvent] = []
    t = summarize(
        anthropic_client,
        trigger=60_000,
        keep=3,
        target_tokens=2_000,
        on_summary=events.append,
    )
    request = agent_run(700)
    out = t(request)
    (event,) = events
    assert event.calls >= 2  # the span is over MAX_CALL_TOKENS
    assert event.span_tokens > MAX_CALL_TOKENS
    haiku = pricing.lookup("claude-haiku-4-5")
    total = sum(pricing.cost(u, haiku).total for u in event.usage)
    note = t.describe(request, out)
    match = re.search(r"summary call on \S+ \$(\d+\.\d{4}) ", note)
    assert match is not None, note
    assert match.group(1) == f"{total:.4f}"
    # The explain() table carries the same note.
    assert f"${total:.4f}" in str(tc.explain(request, t))


def test_sqlite_store_opens_a_new_file_while_another_process_writes_it(tmp_path: Path) -> None:
    # Several agent processes opening a fresh store file at once: switching it to WAL needs an
    # exclusive lock, and SQLite answers "database is locked" at once, without its busy
    # timeout, while another connection holds the write lock. The store must wait instead.
    path = tmp_path / "summaries.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other (a)")
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, other.execute, ["COMMIT"])
    release.start()
    start = time.monotonic()
    try:
        with SQLiteStore(path, timeout=10) as store:
            store.put("tc_0123456789abcdef", "a summary")
            assert store.get("tc_0123456789abcdef") == "a summary"
    finally:
        release.join()
        other.close()
    assert time.monotonic() - start >= 0.25  # it waited for the other writer
