"""The prefix check on thinking blocks: the pure checker, LocalServer's answers, and the
transforms on the models that run it.

https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from proxy_helpers import proxy_to
from tidyctx.store import MemoryStore, StoreWarning
from tidyctx.testing import (
    Binding,
    LocalServer,
    is_summary_call,
    merge_bindings,
    prefix_mismatches,
    summary_responder,
    thinking_bindings,
)
from tidyctx.tokens import PRESERVED_THINKING_MODELS, runs_prefix_check

MODEL = "claude-opus-5-5"
BETA = "thinking-binding-controls-2026-08-01"
SYSTEM = "You are a coding agent.\nCurrent time: 2026-11-25T14:03:22Z"
TOOLS = [
    {
        "name": "run",
        "description": "Run a shell command.",
        "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    },
    {
        "name": "read",
        "description": "Read a file.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
]


def _thinking(sig: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": "", "signature": sig}


def _two_turns() -> tuple[dict[str, Any], dict[str, list[Binding]]]:
    """A request of two answered turns and the bindings of its two thinking blocks."""
    first = {
        "model": MODEL,
        "system": "Be brief.",
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "go"}],
    }
    reply1 = [_thinking("s1"), {"type": "tool_use", "id": "t1", "name": "run", "input": {}}]
    bound = thinking_bindings(first, reply1)
    second = {
        **first,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": reply1},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
            },
        ],
    }
    reply2 = [_thinking("s2"), {"type": "text", "text": "Done."}]
    merge_bindings(bound, thinking_bindings(second, reply2))
    third = {
        **second,
        "messages": [
            *second["messages"],
            {"role": "assistant", "content": reply2},
            {"role": "user", "content": "thanks"},
        ],
    }
    return third, bound


# ------------------------------------------------------------------------- the pure checker


def test_the_preserved_thinking_models_are_the_documented_seven() -> None:
    assert len(PRESERVED_THINKING_MODELS) == 7
    assert runs_prefix_check("claude-haiku-5-5") and runs_prefix_check("CLAUDE-FABLE-5-2")
    assert not runs_prefix_check("claude-opus-5") and not runs_prefix_check(None)


def test_an_appended_conversation_passes() -> None:
    request, bound = _two_turns()
    assert prefix_mismatches(request, bound) == []


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda r: r["messages"][0].update(cache_control={"type": "ephemeral"}), id="marker"
        ),
        pytest.param(
            lambda r: r["tools"].__setitem__(0, dict(reversed(r["tools"][0].items()))),
            id="key-order",
        ),
        pytest.param(
            lambda r: r["messages"][0].update(content=[{"type": "text", "text": "go"}]),
            id="string-as-block",
        ),
        pytest.param(
            lambda r: r.update(system=[{"type": "text", "text": "Be brief."}]), id="system-as-block"
        ),
        pytest.param(
            lambda r: r.update(max_tokens=5, tool_choice={"type": "none"}), id="other-params"
        ),
        pytest.param(
            lambda r: r["messages"][-1].update(content="thanks a lot"), id="after-last-thinking"
        ),
        pytest.param(lambda r: r["messages"][1]["content"].pop(0), id="oldest-thinking-removed"),
        pytest.param(lambda r: r["messages"][3]["content"].pop(0), id="newest-thinking-removed"),
        pytest.param(
            lambda r: r["tools"].append({**TOOLS[0], "name": "late", "defer_loading": True}),
            id="deferred-tool-added",
        ),
    ],
)
def test_what_the_docs_call_valid_passes(edit: Callable[[dict[str, Any]], Any]) -> None:
    request, bound = _two_turns()
    changed = copy.deepcopy(request)
    edit(changed)
    assert prefix_mismatches(changed, bound) == []


@pytest.mark.parametrize(
    ("edit", "path", "says"),
    [
        (lambda r: r.update(system="Be terse."), "messages.1.content.0", "`system`"),
        (lambda r: r["tools"].pop(), "messages.1.content.0", "`tools`"),
        (lambda r: r["messages"][0].update(content="go now"), "messages.1.content.0", "Message 0"),
        (
            lambda r: r["messages"][2]["content"][0].update(content="cut"),
            "messages.3.content.0",
            "Message 2",
        ),
        (
            lambda r: r["messages"][1]["content"][1]["input"].update(cmd="ls"),
            "messages.3.content.0",
            "Message 1",
        ),
    ],
)
def test_an_earlier_change_fails_from_the_first_block_after_it(
    edit: Callable[[dict[str, Any]], Any], path: str, says: str
) -> None:
    request, bound = _two_turns()
    changed = copy.deepcopy(request)
    edit(changed)
    found = prefix_mismatches(changed, bound)
    assert found[0].path == path and says in found[0].changed
    assert [m.follows for m in found] == [False] + [True] * (len(found) - 1)


def test_a_thinking_block_left_out_between_others_fails() -> None:
    request, bound = _two_turns()
    reply3 = [_thinking("s3"), {"type": "text", "text": "Bye."}]
    merge_bindings(bound, thinking_bindings(request, reply3))
    longer = {
        **request,
        "messages": [
            *request["messages"],
            {"role": "assistant", "content": reply3},
            {"role": "user", "content": "?"},
        ],
    }
    assert prefix_mismatches(longer, bound) == []
    gap = copy.deepcopy(longer)
    gap["messages"][3]["content"].pop(0)  # s2, between s1 and s3
    found = prefix_mismatches(gap, bound)
    assert [m.path for m in found] == ["messages.5.content.0"]
    assert "left out" in found[0].changed


# ------------------------------------------------------------------------------ the server


def _agent_responder() -> Callable[[dict[str, Any]], Any]:
    """Five tool calls, each after a thinking block, then an answer; summaries as usual."""
    calls = [0]

    def respond(body: dict[str, Any]) -> Any:
        if is_summary_call(body):
            return summary_responder(body)
        n = calls[0]
        calls[0] += 1
        if n < 5:
            return [
                {"type": "thinking", "thinking": f"step {n}"},
                {"type": "tool_use", "name": "run", "input": {"cmd": f"pytest -k t{n}"}},
            ]
        return [{"type": "thinking", "thinking": "done"}, "All tests pass."]

    return respond


def _output(turn: int) -> str:
    return "\n".join(f"tests/test_{turn}.py::case_{i} PASSED [{i % 100:3d}%]" for i in range(900))


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(responder=_agent_responder()) as srv:
        yield srv


def _client(server: LocalServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url, api_key="test", max_retries=0, _strict_response_validation=True
    )


def _agent(
    client: anthropic.Anthropic, edit: Callable[[list[dict[str, Any]]], None] | None = None
) -> list[dict[str, Any]]:
    """An agent loop with thinking: each assistant turn goes back exactly as returned."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test."}]
    for turn in range(8):
        response = client.messages.create(
            model=MODEL, max_tokens=4096, system=SYSTEM, tools=TOOLS, messages=messages
        )
        blocks = [b.model_dump(mode="json", exclude_none=True) for b in response.content]
        messages.append({"role": "assistant", "content": blocks})
        if response.stop_reason != "tool_use":
            break
        use = next(b for b in response.content if b.type == "tool_use")
        result = {"type": "tool_result", "tool_use_id": use.id, "content": _output(turn)}
        messages.append({"role": "user", "content": [result]})
        if edit is not None and turn == 2:
            edit(messages)
    return messages


def _summarized(request: dict[str, Any]) -> bool:
    first = request["messages"][0]["content"]
    return isinstance(first, list) and str(first[0].get("text")).startswith("<tidyctx-summary")


def _thinking_blocks(request: dict[str, Any]) -> int:
    return sum(
        b.get("type") == "thinking"
        for m in request["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
    )


def test_the_defaults_with_a_summary_keep_every_thinking_block_valid(server: LocalServer) -> None:
    with _client(server) as raw:
        summarize = {"trigger": 4000, "keep": 1, "target_tokens": 60, "max_payback_turns": None}
        client = tc.wrap(raw, *tc.defaults(raw, summarize=summarize))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            messages = _agent(client)
    assert messages[-1]["content"][-1]["text"] == "All tests pass."
    assert server.prefix_mismatches == []
    sent = [r.body for r in server.requests if r.body and not is_summary_call(r.body)]
    assert len(sent) == 6 and len(server.summary_calls()) == 2
    # Thinking went back before the first summary, and after it (produced with it in place).
    assert _thinking_blocks(sent[2]) == 2 and not _summarized(sent[2])
    assert _thinking_blocks(sent[4]) == 1 and _summarized(sent[4])
    assert "[tidyctx:" in str(sent[2]["messages"])  # trim cut the test output
    # order() left the system as sent (cache() put its marker on it as one text block)
    assert all(r["system"][0]["text"] == SYSTEM for r in sent)


def test_an_edited_earlier_message_gets_the_documented_400(server: LocalServer) -> None:
    def edit(messages: list[dict[str, Any]]) -> None:
        messages[0]["content"] = "Fix the failing tests."

    with _client(server) as raw:
        client = tc.wrap(raw, *tc.defaults(raw))
        with pytest.raises(anthropic.BadRequestError) as caught:
            _agent(client, edit)
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith(
        "messages.1.content.0: Invalid `signature` in `thinking` block. The block is bound to a "
        "different conversation. Remove the block, or set `thinking.block_binding."
        'prefix_mismatch_behavior` to "drop_block". That setting requires the '
        "`thinking-binding-controls-2026-08-01` value in the `anthropic-beta` header."
    )
    assert "Message 0" in message
    assert server.prefix_mismatches[0].path == "messages.1.content.0"


def _conversation(server: LocalServer) -> list[dict[str, Any]]:
    server.script([{"type": "thinking", "thinking": "brief it is"}, "Hi."])
    with _client(server) as client:
        reply = client.messages.create(
            model=MODEL,
            max_tokens=64,
            system="Be brief.",
            messages=[{"role": "user", "content": "go"}],
        )
    blocks = [b.model_dump(mode="json", exclude_none=True) for b in reply.content]
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": "more"},
    ]


def test_drop_block_answers_and_lists_the_dropped_blocks(server: LocalServer) -> None:
    messages = _conversation(server)
    with _client(server) as client:
        reply = client.beta.messages.create(
            model=MODEL,
            max_tokens=64,
            system="Be terse.",
            messages=messages,  # type: ignore[arg-type]
            thinking={
                "type": "adaptive",
                "block_binding": {"prefix_mismatch_behavior": "drop_block"},
            },
            betas=[BETA],
        )
    entries = [e.model_dump() for e in reply.input_transformations or []]
    assert entries == [
        {
            "type": "thinking_dropped",
            "path": "messages.1.content.0",
            "reason": "prefix_binding_mismatch",
        }
    ]


def test_record_mode_answers_and_keeps_the_failure() -> None:
    with LocalServer(responder=_agent_responder(), prefix_check="record") as server:
        messages = _conversation(server)
        with _client(server) as client:
            reply = client.beta.messages.create(
                model=MODEL,
                max_tokens=64,
                system="Be terse.",
                messages=messages,
                betas=[BETA],  # type: ignore[arg-type]
            )
            strict = {"type": "adaptive", "block_binding": {"prefix_mismatch_behavior": "error"}}
            with pytest.raises(anthropic.BadRequestError):
                client.beta.messages.create(
                    model=MODEL,
                    max_tokens=64,
                    system="Be terse.",
                    messages=messages,  # type: ignore[arg-type]
                    thinking=strict,
                    betas=[BETA],  # type: ignore[typeddict-item]
                )
        assert [e.type for e in reply.input_transformations or []] == ["thinking_mismatch_allowed"]
        assert [m.path for m in server.prefix_mismatches] == ["messages.1.content.0"] * 2


def test_block_binding_without_the_beta_header_is_rejected(server: LocalServer) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "adaptive", "block_binding": {}},
    }
    with (
        _client(server) as client,
        pytest.raises(anthropic.BadRequestError, match="block_binding: Extra inputs"),
    ):
        client.post("/v1/messages", body=body, cast_to=object)


def test_count_tokens_runs_the_same_check_and_other_models_none(server: LocalServer) -> None:
    messages = _conversation(server)
    with _client(server) as client:
        with pytest.raises(anthropic.BadRequestError, match="bound to a different conversation"):
            client.messages.count_tokens(model=MODEL, system="Be terse.", messages=messages)  # type: ignore[arg-type]
        client.messages.create(
            model="claude-opus-5",
            max_tokens=64,
            system="Be terse.",
            messages=messages,  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------------- the transforms


class _Forgetful(MemoryStore):
    """A store that holds nothing it is given."""

    def put(self, key: str, value: str) -> None:
        return None


def test_a_store_that_lost_a_cut_keeps_sending_its_marker() -> None:
    big = "\n".join(f"row {i}: value {i * 7}" for i in range(3000))
    first = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    _thinking("s1"),
                    {"type": "tool_use", "id": "t1", "name": "run", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": big}],
            },
        ],
    }
    store = _Forgetful()
    with pytest.warns(StoreWarning, match="markers are sent all the same"):
        out1 = tc.trim(max_tokens=200, store=store)(first)
    assert "[tidyctx:" in str(out1["messages"][2])
    reply = [_thinking("s2"), {"type": "text", "text": "ok"}]
    bound = thinking_bindings(out1, reply)
    second = copy.deepcopy(first)
    second["messages"] += [
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "?"},
    ]
    with pytest.warns(StoreWarning, match="markers are sent all the same"):
        out2 = tc.trim(max_tokens=200, store=store)(second)
    assert out2["messages"][2] == out1["messages"][2]
    assert prefix_mismatches(out2, bound) == []
    with pytest.warns(StoreWarning, match="goes as it came"):
        elsewhere = tc.trim(max_tokens=200, store=store)({**second, "model": "claude-opus-5"})
    assert elsewhere["messages"][2] == second["messages"][2]


def test_order_leaves_the_system_as_sent_on_these_models() -> None:
    request = {
        "model": MODEL,
        "max_tokens": 64,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert tc.order()(request)["system"] == SYSTEM
    assert tc.order()({**request, "model": "claude-opus-5"})["system"] != SYSTEM


def _check_growing(requests: list[dict[str, Any]], pipeline: list[Any]) -> None:
    """Each turn's output passes the prefix check against the thinking produced for the
    outputs before it (the assistant turn after each request was its answer)."""
    bound: dict[str, list[Binding]] = {}
    summarized = False
    for k, request in enumerate(requests):
        out = tc.pipe(copy.deepcopy(request), *pipeline)
        assert prefix_mismatches(out, bound) == [], f"turn {k}"
        summarized = summarized or _summarized(out)
        if k + 1 < len(requests):
            answer = requests[k + 1]["messages"][len(request["messages"])]
            assert answer["role"] == "assistant"
            content = answer["content"] if isinstance(answer["content"], list) else []
            merge_bindings(bound, thinking_bindings(out, content))
    checked = sum(len(b) for b in bound.values())
    event(f"{'summarized, ' if summarized else ''}{min(checked, 3)}+ thinking blocks bound")


def _on_model(requests: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    return [{**r, "model": model} for r in requests]


PROPS = settings(max_examples=40)


@PROPS
@given(
    gen.growing_conversations(min_turns=2, max_turns=7),
    st.sampled_from(sorted(PRESERVED_THINKING_MODELS)),
)
def test_the_defaults_pass_the_prefix_check_turn_after_turn(
    requests: list[dict[str, Any]], model: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_growing(_on_model(requests, model), tc.defaults(trim={"max_tokens": 200}))


@pytest.fixture(scope="module")
def summarizer() -> Iterator[anthropic.Anthropic]:
    with LocalServer(cache=False) as srv, _client(srv) as client:
        yield client


@PROPS
@given(gen.growing_conversations(min_turns=3, max_turns=8), st.integers(1, 2))
def test_summaries_pass_the_prefix_check_turn_after_turn(
    summarizer: anthropic.Anthropic, requests: list[dict[str, Any]], keep: int
) -> None:
    pipeline = tc.defaults(
        summarizer,
        trim={"max_tokens": 200},
        summarize={"trigger": 400, "keep": keep, "target_tokens": 40, "max_payback_turns": None},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_growing(_on_model(requests, MODEL), pipeline)


def test_the_proxy_keeps_thinking_valid_and_passes_block_binding_through(
    server: LocalServer,
) -> None:
    with proxy_to(server.base_url, tc.defaults()) as (proxy, rows):
        client = anthropic.Anthropic(base_url=proxy.base_url, api_key="test", max_retries=0)
        with client, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            messages = _agent(client)
            assert server.prefix_mismatches == []
            assert any("trim" in str(row.get("changed")) for row in rows)
            # An edited first message, sent with "drop_block": the proxy forwards the beta
            # header and block_binding, and hands input_transformations back.
            messages[0] = {"role": "user", "content": "Fix the failing tests."}
            reply = client.beta.messages.create(
                model=MODEL,
                max_tokens=64,
                system=SYSTEM,
                tools=TOOLS,  # type: ignore[arg-type]
                messages=[*messages, {"role": "user", "content": "Sum it up."}],  # type: ignore[list-item]
                thinking={
                    "type": "adaptive",
                    "block_binding": {"prefix_mismatch_behavior": "drop_block"},
                },
                betas=[BETA],
            )
    dropped = [e.path for e in reply.input_transformations or []]
    assert dropped == [f"messages.{i}.content.0" for i in range(1, len(messages), 2)]


def test_clearing_on_the_client_leaves_earlier_results_on_these_models() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Find the error."}]
    for i in range(5):
        use = {"type": "tool_use", "id": f"toolu_{i}", "name": "read_log", "input": {"n": i}}
        result = {
            "type": "tool_result",
            "tool_use_id": f"toolu_{i}",
            "content": f"line {i}\n" * 300,
        }
        messages += [
            {"role": "assistant", "content": [_thinking(f"s{i}"), use]},
            {"role": "user", "content": [result]},
        ]
    clearing = tc.Clearing(keep=1, trigger=0, clear_at_least=500)
    request = {"model": MODEL, "max_tokens": 64, "messages": messages}
    assert tc.clear(clearing, dedupe=False)(request) == request
    assert tc.trim(clearing=clearing)(request)["messages"][2] == messages[2]
    older = {**request, "model": "claude-opus-5"}
    assert tc.clear(clearing, dedupe=False)(older)["messages"][2] != messages[2]


def _thoughtful(session: dict[str, Any]) -> list[dict[str, Any]]:
    """The turns of a tool session on MODEL, each assistant turn opening with a thinking
    block: one request per prefix that ends with a user message."""
    messages = copy.deepcopy(session["messages"])
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            message["content"].insert(0, _thinking(f"sig_{i}"))
    ends = [i + 1 for i, m in enumerate(messages) if m["role"] == "user"]
    return [{**session, "model": MODEL, "messages": messages[:end]} for end in ends]


@PROPS
@given(gen.tool_sessions(min_calls=2, max_calls=7))
def test_rewritten_tool_results_pass_the_prefix_check_turn_after_turn(
    session: dict[str, Any],
) -> None:
    # slice_code, trim (compaction, dedupe, repeat notes, cuts) on results of the kinds they
    # rewrite: each is cut when it first appears and the same way on every later turn.
    pipeline = tc.defaults(trim={"max_tokens": 300})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_growing(_thoughtful(session), pipeline)


def test_a_batch_drops_failing_blocks_unless_error_is_asked_for(server: LocalServer) -> None:
    messages = _conversation(server)
    params = {"model": MODEL, "max_tokens": 64, "system": "Be terse.", "messages": messages}
    strict = {"type": "adaptive", "block_binding": {"prefix_mismatch_behavior": "error"}}
    with _client(server) as client:
        batch = client.beta.messages.batches.create(
            requests=[
                {"custom_id": "unset", "params": params},  # type: ignore[typeddict-item]
                {"custom_id": "error", "params": {**params, "thinking": strict}},  # type: ignore[typeddict-item]
            ],
            betas=[BETA],
        )
        results = {r.custom_id: r.result for r in client.beta.messages.batches.results(batch.id)}
    unset, error = results["unset"], results["error"]
    assert unset.type == "succeeded" and error.type == "errored"
    assert [e.type for e in unset.message.input_transformations or []] == ["thinking_dropped"]
    assert "bound to a different conversation" in error.error.error.message


def test_a_thinking_block_put_back_fails_the_ones_made_without_it() -> None:
    request, bound = _two_turns()
    without = copy.deepcopy(request)
    without["messages"][3]["content"].pop(0)  # s2 left out (from the end: valid)
    assert prefix_mismatches(without, bound) == []
    reply3 = [_thinking("s3"), {"type": "text", "text": "Bye."}]
    merge_bindings(bound, thinking_bindings(without, reply3))
    tail = [{"role": "assistant", "content": reply3}, {"role": "user", "content": "?"}]
    assert prefix_mismatches({**without, "messages": [*without["messages"], *tail]}, bound) == []
    back = {**request, "messages": [*request["messages"], *tail]}  # s2 put back
    assert [m.path for m in prefix_mismatches(back, bound)] == ["messages.5.content.0"]
