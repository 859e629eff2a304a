"""The proxy keeps the cached prefix when the agent's tool list changes mid-conversation.

The real SDK (``client.beta.messages``) -> the proxy's default pipeline -> LocalServer. The
agent drops a tool on its third turn and restores it on its fifth: behind the proxy the
``tools`` go out as first sent and the change goes as a ``role: "system"`` message, so the
cache is read on every turn; without the memory the turn of the removal reads nothing.
"""

from __future__ import annotations

from typing import Any

import anthropic

import tidyctx as tc
from proxy_helpers import proxy_to
from tidyctx.proxy import select_pipeline
from tidyctx.store import MemoryStore
from tidyctx.testing import LocalServer

MODEL = "claude-opus-4-8"
CLIENT_BETAS = ["claude-code-20250219"]


def _tool(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"The {name} tool. " + "It does careful work on the repository. " * 40,
        "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}},
    }


TOOLS = {name: _tool(name) for name in ("bash", "edit", "read", "web_fetch")}
# The tools of each turn: web_fetch withdrawn on turn 3, given back on turn 5.
TURNS = [
    ["bash", "edit", "read", "web_fetch"],
    ["bash", "edit", "read", "web_fetch"],
    ["bash", "edit", "read"],
    ["bash", "edit", "read"],
    ["bash", "edit", "read", "web_fetch"],
    ["bash", "edit", "read", "web_fetch"],
]


def _run(base_url: str, betas: list[str] | None = None) -> list[Any]:
    """The six turns of one conversation (sent with ``betas``, default CLIENT_BETAS; [] for no
    header); each turn's usage."""
    client = anthropic.Anthropic(base_url=base_url, api_key="sk-test", max_retries=0)
    system = "You are a careful coding agent. " * 200
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test."}]
    usages = []
    for turn, names in enumerate(TURNS):
        reply = client.beta.messages.create(
            model=MODEL,
            max_tokens=64,
            system=system,
            tools=[TOOLS[n] for n in names],  # type: ignore[misc]
            messages=messages,  # type: ignore[arg-type]
            betas=CLIENT_BETAS if betas is None else betas,
        )
        usages.append(reply.usage)
        messages = [
            *messages,
            {"role": "assistant", "content": f"Step {turn} done. " * 30},
            {"role": "user", "content": f"Go on with step {turn + 1}. " * 30},
        ]
    client.close()
    return usages


def _pipeline(spec: str) -> list[Any]:
    return select_pipeline(spec, MemoryStore())


def test_cache_reads_survive_a_tool_removal_and_restore_behind_the_proxy() -> None:
    with LocalServer() as with_memory, LocalServer() as without:
        with proxy_to(with_memory.base_url, _pipeline("defaults")) as (proxy, rows):
            kept = _run(proxy.base_url)
        # The same turns through order() and cache() with no memory of the tools.
        with proxy_to(without.base_url, [tc.order(), tc.cache()]) as (proxy, _):
            plain = _run(proxy.base_url)

    # Without the memory the removal rewrites the whole cache (the restore reads back only
    # the entry of the first tools, which is still alive, and writes the rest again).
    assert plain[2].cache_read_input_tokens == 0
    written = [u.cache_creation_input_tokens or 0 for u in kept]
    rewritten = [u.cache_creation_input_tokens or 0 for u in plain]
    assert written[2] < rewritten[2] and written[4] < rewritten[4], (written, rewritten)
    reads = [u.cache_read_input_tokens or 0 for u in kept]
    assert all(r > 0 for r in reads[1:]), reads
    # The turn of a change still reads everything cached before it.
    assert reads[2] >= reads[1] and reads[4] >= reads[3], reads

    sent = [r.body for r in with_memory.requests]
    # Every request carries the tools as first sent (sorted by order()).
    assert all([t["name"] for t in body["tools"]] == sorted(TURNS[0]) for body in sent)
    # The removal message sits after the third turn's last user message (messages[5]) and
    # stays there; the restore follows turn five's last user message.
    removal = {
        "role": "system",
        "content": [
            {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "web_fetch"}}
        ],
    }
    restore = {
        "role": "system",
        "content": [
            {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "web_fetch"}}
        ],
    }
    for body in sent[2:]:
        assert body["messages"][5] == removal
    for body in sent[4:]:
        assert body["messages"][10] == restore
    for body in sent:
        tc.validate(body)

    # The forwarded anthropic-beta header gains the betas the change messages need, after the
    # client's own; the first two turns' header goes on as the client sent it.
    betas = [r.headers.get("anthropic-beta", "") for r in with_memory.requests]
    assert betas[:2] == ["claude-code-20250219"] * 2
    for header in betas[2:]:
        assert header == "claude-code-20250219,mid-conversation-tool-changes-2026-07-01"
    assert [row.get("changed") for row in rows][2]  # the ledger names what changed it


def test_a_client_header_that_has_the_betas_goes_on_untouched_and_a_missing_one_is_made() -> None:
    given = ["mid-conversation-tool-changes-2026-07-01", "claude-code-20250219"]
    with LocalServer() as complete, LocalServer() as bare:
        with proxy_to(complete.base_url, _pipeline("cache-only")) as (proxy, _):
            _run(proxy.base_url, betas=given)
        with proxy_to(bare.base_url, _pipeline("cache-only")) as (proxy, _):
            _run(proxy.base_url, betas=[])
    assert {r.headers.get("anthropic-beta") for r in complete.requests} == {",".join(given)}
    headers = [r.headers.get("anthropic-beta") for r in bare.requests]
    assert headers[:2] == ["", ""]  # the SDK sends an empty header for betas=[]
    assert set(headers[2:]) == {"mid-conversation-tool-changes-2026-07-01"}
