"""LangChain v1's agent middleware as comparison-suite strategies, driven for real, offline.

Measured by benchmarks/compare.py (``--only lc-cache,lc-edit,...``), with langchain 1.5.2,
langchain-anthropic 1.7.10, langchain-core 1.8.3, langgraph 1.2.24. Each factory
(benchmarks/peers/sent.py) replays a recorded run turn by turn through
``langchain.agents.create_agent(ChatAnthropic(...), tools, system_prompt=..., middleware=[...])``;
the ``anthropic`` clients inside the models talk to an ``httpx2.MockTransport`` that records
every body and never connects. Messages, tools and system prompt are handed over as
benchmarks/peers/langchain_caching.py does (its docstring).

Strategies and their exact configurations:

- :func:`caching` - ``[AnthropicPromptCachingMiddleware()]`` (``ttl="5m"``): the body
  langchain_caching.langchain_request captures; no state.
- :func:`context_editing` - ``[AnthropicPromptCachingMiddleware(),
  ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger=..., keep=...)])]`` with the
  default ``token_count_method="approximate"`` (``count_tokens_approximately`` on the messages
  only, 4 characters a token). LangChain's default edit is ``trigger=100_000, keep=3``
  (``DEFAULTS``); ``TUNED`` is ``trigger=30_000, keep=3``. It edits a deep copy of each call's
  messages, so nothing persists.
- :func:`summarization` - ``[AnthropicPromptCachingMiddleware(),
  SummarizationMiddleware(model=ChatAnthropic(<the run's model>), trigger=..., keep=...)]``,
  other parameters at their defaults (``trim_tokens_to_summarize=4000``, the Anthropic-tuned
  approximate counter at 3.3 characters a token). ``trigger=None``, the signature's default,
  never summarizes (``_should_summarize`` returns False without a clause), which is
  :func:`caching` again; so the "default" measured here is the configuration LangChain's
  documentation shows (https://docs.langchain.com/oss/python/langchain/context-engineering):
  ``trigger=("tokens", 4000)`` with the default ``keep=("messages", 20)``. ``TUNED`` is
  ``trigger=("tokens", 30_000)``, ``keep=("messages", 20)``.
- ``full=True`` stacks all three: ``[AnthropicPromptCachingMiddleware(),
  ContextEditingMiddleware(edits=[ClearToolUsesEdit(<same>)]),
  SummarizationMiddleware(<same>)]``, at the defaults (100k clearing, 4000-token trigger) and
  tuned (30k clearing, 30k trigger).

How the agent's state carries across turns. SummarizationMiddleware rewrites the state
(``RemoveMessage(REMOVE_ALL_MESSAGES)``, a summary ``HumanMessage``, the kept tail), so turn t
must start from what the agent held after turn t-1. Each turn the agent is invoked once with
``{"messages": state}``, where ``state`` is the ``messages`` the previous invocation returned
(summary and all, as LangGraph's ``add_messages`` reducer left them) minus its own canned
answer, plus the messages the recording adds since: the recorded assistant reply of turn t-1
and the user / tool-result messages after it. The reply becomes the ``AIMessage`` that
``ChatAnthropic._format_output`` builds from an API response with that content and the usage
the API would report for the body this strategy sent (its input tokens counted by
tidyctx.tokens.LocalCounter, the reply's as output), so the middleware's usage-scaled token
count and its reported-token trigger see what they would see live. The model's answer to the
captured call is a canned text message, so the agent stops after one model call; tools are
never run. A recording whose next request does not extend the previous one (a client-side
compaction) starts a fresh state from that request (said in ``Sent.note``).

The summary call. The summary model is a second ``ChatAnthropic`` on its own recording
transport. Its body becomes a ``SideCall``; its answer is benchmarks/peers/standin.py's
``standin_summary(messages, max_tokens)`` of exactly the messages LangChain put into the
summary prompt (recorded where ``SummarizationMiddleware._format_summary_prompt`` receives
them, after its own ``trim_messages``), converted to Messages API form by langchain-anthropic's
``_format_messages``, and the body's own ``max_tokens``. When LangChain's trim leaves nothing it
writes "Previous conversation was too long to summarize." without calling the model; that turn's
``Sent.note`` starts with ``PLACEHOLDER_NOTE``.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ClearToolUsesEdit,
    ContextEditingMiddleware,
    SummarizationMiddleware,
)
from langchain_anthropic import ChatAnthropic
from langchain_anthropic.chat_models import _format_messages
from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langsmith.run_helpers import tracing_context
from pydantic import SecretStr

if __package__ in (None, ""):  # run as a script: make `benchmarks.peers` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.peers.langchain_caching import (
    _KNOWN_KEYS,
    _MODEL_FIELDS,
    Recorder,
    _memoized_block_types,
    _strip_markers,
    _to_langchain,
    agent_tools,
    answered,
    langchain_request,
    system_prompt,
)
from benchmarks.peers.sent import Factory, Sent, SideCall, Strategy
from benchmarks.peers.standin import standin_summary

from tidyctx.tokens import LocalCounter

__all__ = [
    "DEFAULTS",
    "PLACEHOLDER",
    "PLACEHOLDER_NOTE",
    "TUNED",
    "caching",
    "context_editing",
    "strategies",
    "summarization",
]

PLACEHOLDER = "Previous conversation was too long to summarize."
"""What SummarizationMiddleware writes when its trim leaves nothing to summarize."""

PLACEHOLDER_NOTE = "placeholder summary"

SUMMARY_PREFIX = "Here is a summary of the conversation to date:\n\n"


@dataclass(frozen=True)
class Setting:
    """One configuration of the clearing edit and the summarization trigger."""

    clear_trigger: int
    clear_keep: int
    summary_trigger: tuple[str, int]
    summary_keep: tuple[str, int]


DEFAULTS = Setting(100_000, 3, ("tokens", 4000), ("messages", 20))
"""ClearToolUsesEdit()'s defaults; SummarizationMiddleware's documented example (its own
default trigger, None, never fires) with its default keep."""

TUNED = Setting(30_000, 3, ("tokens", 30_000), ("messages", 20))


def _chat_model(model: str, recorder: Recorder, **kwargs: Any) -> ChatAnthropic:
    llm = ChatAnthropic(model_name=model, api_key=SecretStr("offline"), max_retries=0, **kwargs)
    # ChatAnthropic builds its client lazily in a cached_property; pre-filling the cache
    # routes every call through the recording transport.
    llm.__dict__["_client"] = recorder.client
    return llm


class _Summarization(SummarizationMiddleware):
    """SummarizationMiddleware unchanged, except that it remembers what it did: the messages
    it put into each summary prompt and each summary it wrote."""

    def __init__(self, model: ChatAnthropic, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.prompted: list[list[AnyMessage]] = []
        self.written: list[tuple[int, str]] = []

    def _format_summary_prompt(self, messages: list[AnyMessage]) -> str:
        self.prompted.append(list(messages))
        return str(super()._format_summary_prompt(messages))

    def _create_summary(self, messages_to_summarize: list[AnyMessage]) -> str:
        summary = str(super()._create_summary(messages_to_summarize))
        self.written.append((len(messages_to_summarize), summary))
        return summary


@dataclass
class _Config:
    cache: bool = True
    clear: tuple[int, int] | None = None
    summary: tuple[tuple[str, int], tuple[str, int]] | None = None
    summary_model: str | None = None
    summary_max_tokens: int | None = None


@dataclass
class _State:
    """What the agent holds between turns."""

    messages: list[BaseMessage] = field(default_factory=list)
    recorded: list[Mapping[str, Any]] | None = None
    """The previous turn's request messages, as recorded (markers stripped)."""
    sent: dict[str, Any] | None = None
    """The body sent for the previous turn."""


def _usage(counter: LocalCounter, sent: Mapping[str, Any], reply: Mapping[str, Any]) -> Any:
    content = reply.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    return {
        "input_tokens": counter.count_request(sent),
        "output_tokens": sum(counter.count_block(b) for b in blocks),
    }


class _Runner:
    """One run through one middleware stack: called once per recorded turn."""

    def __init__(self, config: _Config) -> None:
        self.config = config
        self.state = _State()
        self.main = Recorder(lambda body: "ok")
        self.summary = Recorder(self._summarize)
        self.agents: dict[str, tuple[Any, _Summarization | None, ChatAnthropic]] = {}
        self.counters: dict[str, LocalCounter] = {}
        # The agent of the turn being sent: its summarizer holds the span of a summary call.
        self._current: tuple[Any, _Summarization | None, ChatAnthropic] | None = None

    def _counter(self, model: str) -> LocalCounter:
        if model not in self.counters:
            self.counters[model] = LocalCounter(model)
        return self.counters[model]

    def _summarize(self, body: dict[str, Any]) -> str:
        middleware = self._current[1] if self._current else None
        if middleware is None or not middleware.prompted:
            raise RuntimeError("langchain_agent: a summary call without a recorded span")
        span = middleware.prompted[-1]
        _, messages = _format_messages(span, model=str(body.get("model", "")))
        return standin_summary(messages, int(body["max_tokens"]))

    def _agent(
        self, request: Mapping[str, Any]
    ) -> tuple[Any, _Summarization | None, ChatAnthropic]:
        model = str(request["model"])
        settings = {k: request[k] for k in _MODEL_FIELDS if k in request}
        key = json.dumps(
            [
                model,
                request.get("max_tokens"),
                settings,
                request.get("system"),
                request.get("tools"),
            ],
            separators=(",", ":"),
        )
        if key in self.agents:
            return self.agents[key]
        llm = _chat_model(model, self.main, max_tokens=request.get("max_tokens"), **settings)
        middleware: list[AgentMiddleware[Any, Any, Any]] = []
        if self.config.cache:
            middleware.append(AnthropicPromptCachingMiddleware(unsupported_model_behavior="raise"))
        if self.config.clear is not None:
            trigger, keep = self.config.clear
            middleware.append(
                ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger=trigger, keep=keep)])
            )
        summarizer: _Summarization | None = None
        if self.config.summary is not None:
            summary_trigger, summary_keep = self.config.summary
            summary_llm = _chat_model(
                self.config.summary_model or model,
                self.summary,
                max_tokens=self.config.summary_max_tokens,
            )
            summarizer = _Summarization(
                summary_llm,
                trigger=summary_trigger,
                keep=summary_keep,
            )
            middleware.append(summarizer)
        agent = create_agent(
            llm,
            tools=agent_tools(list(request.get("tools") or [])),
            system_prompt=system_prompt(request.get("system") or ""),
            middleware=middleware,
        )
        self.agents[key] = (agent, summarizer, llm)
        return self.agents[key]

    def __call__(self, request: dict[str, Any]) -> Sent:
        unknown = sorted(set(request) - _KNOWN_KEYS)
        if unknown:
            raise ValueError(f"langchain_agent: cannot pass {unknown} through ChatAnthropic")
        request = dict(_strip_markers(request))
        names = [t.get("name") for t in request.get("tools") or []]
        if len(set(names)) != len(names):
            raise ValueError("langchain_agent: duplicate tool names")
        model = str(request["model"])
        messages = list(request.get("messages") or [])
        agent, summarizer, llm = self._current = self._agent(request)
        notes: list[str] = []
        previous = self.state.recorded
        with _memoized_block_types():
            if previous is not None and messages[: len(previous)] == previous:
                added = _to_langchain(messages[len(previous) :], model)
                if added and isinstance(added[0], AIMessage) and self.state.sent is not None:
                    usage = _usage(self._counter(model), self.state.sent, messages[len(previous)])
                    added[0] = answered(messages[len(previous)], model, llm, usage)
                state_in = [*self.state.messages, *added]
            else:
                if previous is not None:
                    notes.append("the recording does not extend the previous turn: fresh state")
                state_in = _to_langchain(messages, model)
            before = (len(summarizer.prompted), len(summarizer.written)) if summarizer else (0, 0)
            with tracing_context(enabled=False), warnings.catch_warnings():
                # The SDK warns, on every call, that an old recorded model is deprecated.
                warnings.filterwarnings(
                    "ignore", r"The model '.*' is deprecated", category=DeprecationWarning
                )
                result = agent.invoke({"messages": state_in})
        bodies = self.main.take()
        side = self.summary.take()
        if len(bodies) != 1:
            raise RuntimeError(f"langchain_agent: expected one model call, saw {len(bodies)}")
        out = list(result["messages"])
        if not out or not isinstance(out[-1], AIMessage) or out[-1].text != "ok":
            raise RuntimeError("langchain_agent: the agent's last message is not its answer")
        self.state = _State(out[:-1], messages, bodies[0][0])
        if summarizer is not None:
            for spanned, summary in summarizer.written[before[1] :]:
                if summary == PLACEHOLDER and len(summarizer.prompted) == before[0]:
                    notes.insert(0, f"{PLACEHOLDER_NOTE}: {spanned} messages dropped unread")
                else:
                    notes.append(f"summarized {spanned} messages")
        return Sent(
            request=bodies[0][0],
            side_calls=[SideCall(request=body, answer=text) for body, text in side],
            note="; ".join(notes),
        )


def _factory(config: _Config) -> Factory:
    def make() -> Strategy:
        return _Runner(config)

    return make


def caching(*, ttl: str = "5m") -> Factory:
    """``[AnthropicPromptCachingMiddleware(ttl=ttl)]``: langchain_caching's body, no state."""

    def make() -> Strategy:
        def turn(request: dict[str, Any]) -> Sent:
            return Sent(request=langchain_request(request, ttl=ttl))

        return turn

    return make


def context_editing(*, trigger: int = 100_000, keep: int = 3) -> Factory:
    """Caching plus ``ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger, keep)])``."""
    return _factory(_Config(clear=(trigger, keep)))


def summarization(
    *,
    trigger: tuple[str, int] = DEFAULTS.summary_trigger,
    keep: tuple[str, int] = DEFAULTS.summary_keep,
    clear: tuple[int, int] | None = None,
    summary_model: str | None = None,
    summary_max_tokens: int | None = None,
) -> Factory:
    """Caching plus ``SummarizationMiddleware(model=ChatAnthropic(summary_model or the run's
    model, max_tokens=summary_max_tokens), trigger=trigger, keep=keep)``; ``clear=(trigger,
    keep)`` adds ``ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger, keep)])`` between
    them (the full stack). ``summary_max_tokens=None`` is ChatAnthropic's default (the model
    profile's ``max_output_tokens``: 128,000 for claude-sonnet-4-6), and the stand-in writes
    to fit two thirds of it, so its summaries stay close to the span's length."""
    return _factory(
        _Config(
            clear=clear,
            summary=(trigger, keep),
            summary_model=summary_model,
            summary_max_tokens=summary_max_tokens,
        )
    )


def strategies(summary_max_tokens: int | None = None) -> dict[str, Factory]:
    """The measured configurations, by label (``summary_max_tokens``: see summarization)."""
    d, t = DEFAULTS, TUNED
    cap = summary_max_tokens
    return {
        "lc caching": caching(),
        "lc clear 100k/3": context_editing(trigger=d.clear_trigger, keep=d.clear_keep),
        "lc clear 30k/3": context_editing(trigger=t.clear_trigger, keep=t.clear_keep),
        "lc summary 4k": summarization(
            trigger=d.summary_trigger, keep=d.summary_keep, summary_max_tokens=cap
        ),
        "lc summary 30k": summarization(
            trigger=t.summary_trigger, keep=t.summary_keep, summary_max_tokens=cap
        ),
        "lc full default": summarization(
            trigger=d.summary_trigger,
            keep=d.summary_keep,
            clear=(d.clear_trigger, d.clear_keep),
            summary_max_tokens=cap,
        ),
        "lc full tuned": summarization(
            trigger=t.summary_trigger,
            keep=t.summary_keep,
            clear=(t.clear_trigger, t.clear_keep),
            summary_max_tokens=cap,
        ),
    }
