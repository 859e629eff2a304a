"""The policies of route(): which model a call wants.

:class:`Rules` (readable rules, first match wins), :class:`Classifier` (a cheap call through
the user's client that grades the step) or any function of the request. Each gives a
:class:`Want`: a model (None: the model asked) and why.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tidyctx import pricing
from tidyctx._calls import observed
from tidyctx._request import Request
from tidyctx.tokens import LocalCounter

__all__ = [
    "DEFAULT_RULES",
    "HINT_KEY",
    "SIDE_CALL_MAX_TOKENS",
    "Classifier",
    "FunctionPolicy",
    "RouteWarning",
    "Rule",
    "Rules",
    "Want",
    "hint_of",
    "last_tool_used",
    "latest_user_text",
]

HINT_KEY = "tidyctx_route"
"""The key of ``metadata`` a caller sets to a hint label (``"hard"``, ``"easy"``...) that
:class:`Rule` ``hint=`` matches. The API's ``metadata`` takes ``user_id`` only
(``anthropic.types.beta.BetaMetadataParam``), so route() takes the key out of the request it
sends, in shadow mode too."""

SIDE_CALL_MAX_TOKENS = 1024
"""The most ``max_tokens`` a side call asks for: a conversation's first call asks for more."""


class RouteWarning(UserWarning):
    """A policy could not decide (a classifier call failed): the call keeps its own model."""


@dataclass(frozen=True, slots=True)
class Want:
    """What a policy wants for one call: a model (None: the model asked), and why."""

    model: str | None
    reason: str
    force: bool = False
    """Take the model even mid-conversation when it is dearer than the model asked."""
    cost: float = 0.0
    """USD the policy spent deciding (a classifier call; 0 when remembered)."""


def _model_arg(model: Any, where: str) -> str:
    if not isinstance(model, str) or not model.strip():
        raise TypeError(f"{where}: a model id, got {model!r}")
    try:
        pricing.lookup(model)
    except pricing.UnknownModelError:
        known = ", ".join(p.model for p in pricing.models())
        raise ValueError(
            f"{where}: unknown model {model!r}; known models: {known} (or register one with "
            "tidyctx.pricing.register)"
        ) from None
    return model


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for block in value:
            if isinstance(block, Mapping) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    yield text


def latest_user_text(request: Mapping[str, Any]) -> str:
    """The text the user wrote last: the newest user message with text outside tool results."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            text = "\n".join(_texts(message.get("content")))
            if text.strip():
                return text
    return ""


def last_tool_used(request: Mapping[str, Any]) -> str | None:
    """The name of the tool in the newest assistant ``tool_use`` block, if any."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, list):
                for block in reversed(content):
                    if isinstance(block, Mapping) and block.get("type") == "tool_use":
                        name = block.get("name")
                        return name if isinstance(name, str) else None
            return None
    return None


def _has_reply(request: Mapping[str, Any]) -> bool:
    return any(
        isinstance(m, Mapping) and m.get("role") == "assistant"
        for m in request.get("messages") or []
    )


def hint_of(request: Mapping[str, Any]) -> str | None:
    metadata = request.get("metadata")
    if isinstance(metadata, Mapping):
        hint = metadata.get(HINT_KEY)
        return hint if isinstance(hint, str) else None
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    """One readable rule: the model to use when every condition given holds.

    - ``side_call``: a one-off call asking for a short answer: no tools, no assistant turn
      yet, ``max_tokens`` at most :data:`SIDE_CALL_MAX_TOKENS` (a title, a classification);
    - ``first_call``: an agent's first call (tools, no assistant turn yet), such as a
      subagent's;
    - ``after_tools``: the newest ``tool_use`` names one of these tools (shell-style patterns,
      case-insensitive: ``"*search*"``);
    - ``keywords``: the latest user text contains one of these (case-insensitive);
    - ``min_tokens`` / ``max_tokens``: the request's input tokens are at least / at most this;
    - ``hint``: the caller's ``metadata["tidyctx_route"]`` equals this label.

    ``force=True`` lets the rule move a running conversation to a dearer model than the one
    asked (otherwise that happens only at a conversation's start). A rule with no condition
    matches every call: put it last, as the fallback.
    """

    model: str
    side_call: bool = False
    first_call: bool = False
    after_tools: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    hint: str | None = None
    force: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        where = f"Rule({self.model!r}{', name=' + repr(self.name) if self.name else ''})"
        _model_arg(self.model, where)
        for attr in ("after_tools", "keywords"):
            value = getattr(self, attr)
            if value is None:
                continue
            if isinstance(value, str):
                value = (value,)
            value = tuple(value)
            if not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise ValueError(
                    f"{where}: {attr}={value!r} matches nothing; give non-empty strings, or "
                    "leave it out"
                )
            object.__setattr__(self, attr, tuple(v.lower() for v in value))
        for attr in ("min_tokens", "max_tokens"):
            value = getattr(self, attr)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{where}: {attr} takes an int, got {value!r}")
            if value is not None and value < 0:
                raise ValueError(f"{where}: {attr}={value} must be >= 0")
        if (
            self.min_tokens is not None
            and self.max_tokens is not None
            and self.min_tokens > self.max_tokens
        ):
            raise ValueError(
                f"{where}: min_tokens={self.min_tokens} > max_tokens={self.max_tokens} "
                "matches nothing"
            )
        if self.side_call and self.first_call:
            raise ValueError(
                f"{where}: side_call (no tools) and first_call (tools) together matches nothing"
            )
        if self.hint is not None and (not isinstance(self.hint, str) or not self.hint):
            raise ValueError(f"{where}: hint takes a non-empty label, got {self.hint!r}")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = []
        if self.side_call:
            parts.append("side call")
        if self.first_call:
            parts.append("first call")
        if self.after_tools:
            parts.append(f"after {'/'.join(self.after_tools)}")
        if self.keywords:
            parts.append(f"keyword {'/'.join(self.keywords)}")
        if self.min_tokens is not None:
            parts.append(f">= {self.min_tokens:,} tokens")
        if self.max_tokens is not None:
            parts.append(f"<= {self.max_tokens:,} tokens")
        if self.hint is not None:
            parts.append(f"hint {self.hint!r}")
        return ", ".join(parts) or "fallback"

    def matches(self, request: Mapping[str, Any], tokens: Callable[[], int]) -> bool:
        if self.hint is not None and hint_of(request) != self.hint:
            return False
        if (self.side_call or self.first_call) and (
            _has_reply(request) or bool(request.get("tools")) != self.first_call
        ):
            return False
        if self.side_call:
            limit = request.get("max_tokens")
            if not isinstance(limit, int) or limit > SIDE_CALL_MAX_TOKENS:
                return False
        if self.after_tools is not None:
            tool = last_tool_used(request)
            if tool is None or not any(
                fnmatch.fnmatchcase(tool.lower(), p) for p in self.after_tools
            ):
                return False
        if self.keywords is not None:
            text = latest_user_text(request).lower()
            if not any(k in text for k in self.keywords):
                return False
        if self.min_tokens is not None and tokens() < self.min_tokens:
            return False
        return not (self.max_tokens is not None and tokens() > self.max_tokens)


HAIKU = "claude-haiku-4-5"
OPUS = "claude-opus-4-8"

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(OPUS, hint="hard", force=True, name="hint 'hard'"),
    Rule(HAIKU, hint="easy", name="hint 'easy'"),
    Rule(HAIKU, side_call=True, name="side call with no tools"),
    Rule(
        HAIKU,
        after_tools=("todowrite", "glob", "ls", "*list*", "*search*"),
        name="after a lookup or bookkeeping tool",
    ),
)
"""The rules of ``route()`` with no policy, first match wins; no match: the model asked.

Haiku 4.5 for side calls with no tools (titles, classifications) and for the step after a
lookup or bookkeeping tool (``TodoWrite``, ``Glob``, ``LS``, a ``*list*`` or ``*search*``
tool); Opus 4.8 when the caller's hint says ``"hard"``, Haiku 4.5 when it says ``"easy"``."""


class Rules:
    """A policy of :class:`Rule` s, first match wins; no match: the model asked.

    ``Rules([...], default="claude-sonnet-4-6")`` names the model for calls no rule matches.
    """

    costly = False

    def __init__(self, rules: Iterable[Rule], *, default: str | None = None) -> None:
        found = tuple(rules)
        for i, rule in enumerate(found):
            if not isinstance(rule, Rule):
                raise TypeError(f"Rules: rules[{i}] is a {type(rule).__name__}, not a Rule")
        if not found and default is None:
            raise ValueError("Rules([]) with no default matches nothing: give rules or default=")
        self.rules = found
        self.default = None if default is None else _model_arg(default, "Rules(default=...)")

    def __repr__(self) -> str:
        return (
            f"Rules({len(self.rules)} rules{', default=' + self.default if self.default else ''})"
        )

    def want(self, request: Mapping[str, Any]) -> Want:
        count: list[int] = []

        def tokens() -> int:
            if not count:
                count.append(LocalCounter(request.get("model")).count_request(request))
            return count[0]

        for rule in self.rules:
            if rule.matches(request, tokens):
                return Want(rule.model, f"rule {rule.label}", rule.force)
        if self.default is not None:
            return Want(self.default, "no rule matched: the default")
        return Want(None, "no rule matched")


_CLASSIFY = (
    "You grade how hard the next step of an AI agent is. Read the latest input and answer "
    "with one word: easy (lookup, formatting, bookkeeping, a short factual reply), medium "
    "(ordinary coding or writing), or hard (multi-step reasoning, design, a subtle bug)."
)


class Classifier:
    """A policy that asks a cheap model (through ``client``, the user's ``anthropic.Anthropic``)
    how hard the step is, and maps the grade to a model.

    The call sends the latest user text and tool results (at most ``max_chars``), asks for one
    word, and is remembered by the hash of what it sends: one call per distinct step. Its
    price (:mod:`tidyctx.pricing`) goes into the decision. A failed call or an answer that is
    no grade warns (:class:`RouteWarning`) and keeps the model asked.
    """

    costly = True

    def __init__(
        self,
        client: Any,
        *,
        model: str = HAIKU,
        grades: Mapping[str, str | None] | None = None,
        max_chars: int = 4000,
        max_remembered: int = 4096,
    ) -> None:
        create = getattr(getattr(client, "messages", None), "create", None)
        if not callable(create):
            raise TypeError(
                "Classifier(client) takes an anthropic.Anthropic client, got "
                f"{type(client).__name__}"
            )
        # A client wrapped by tc.wrap would run its pipeline, this route() included, on the
        # classifier's own call: the client underneath makes it.
        self.client = getattr(client, "_tidyctx_unwrapped", None) or client
        self.model = _model_arg(model, "Classifier(model=...)")
        default: dict[str, str | None] = {"easy": HAIKU, "medium": None, "hard": OPUS}
        chosen: dict[str, str | None] = dict(grades or default)
        for grade, target in chosen.items():
            if target is not None:
                _model_arg(target, f"Classifier(grades={{{grade!r}: ...}})")
        self.grades: dict[str, str | None] = chosen
        self.max_chars = max_chars
        self.calls = 0
        """Classifier calls made (remembered answers are not calls)."""
        self.spent = 0.0
        """USD of those calls."""
        self._memo: OrderedDict[str, str] = OrderedDict()
        self._max = max_remembered
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Classifier(model={self.model!r})"

    def _step_text(self, request: Mapping[str, Any]) -> str:
        parts: list[str] = []
        for message in reversed(request.get("messages") or []):
            if not isinstance(message, Mapping) or message.get("role") != "user":
                continue
            content = message.get("content")
            for block in content if isinstance(content, list) else [content]:
                if isinstance(block, str):
                    parts.append(block)
                elif isinstance(block, Mapping) and block.get("type") == "tool_result":
                    parts.append("[tool result] " + "\n".join(_texts(block.get("content"))))
                elif isinstance(block, Mapping) and block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
            break
        text = "\n".join(p for p in parts if p)
        return text[: self.max_chars]

    def want(self, request: Mapping[str, Any]) -> Want:
        text = self._step_text(request) or "(no text)"
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            grade = self._memo.get(key)
            if grade is not None:
                self._memo.move_to_end(key)
        cost = 0.0
        if grade is None:
            body = {
                "model": self.model,
                "max_tokens": 5,
                "system": _CLASSIFY,
                "messages": [{"role": "user", "content": text}],
            }
            try:
                response = observed("route", body, lambda: self.client.messages.create(**body))
                usage = pricing.usage_dict(response.usage)
                cost = pricing.cost(usage, self.model).total
                answer = "".join(
                    getattr(b, "text", "") for b in response.content if b.type == "text"
                )
            except Exception as err:
                warnings.warn(
                    f"route(): the classifier call failed ({type(err).__name__}); the call "
                    "keeps the model asked",
                    RouteWarning,
                    stacklevel=2,
                )
                return Want(None, f"classifier failed: {type(err).__name__}")
            with self._lock:
                self.calls += 1
                self.spent += cost
            found = re.search(r"[a-z]+", answer.lower())
            grade = found.group(0) if found else ""
            if grade not in self.grades:
                warnings.warn(
                    f"route(): the classifier answered {answer[:40]!r}, not one of "
                    f"{sorted(self.grades)}; the call keeps the model asked",
                    RouteWarning,
                    stacklevel=2,
                )
                return Want(None, "classifier gave no grade", cost=cost)
            with self._lock:
                self._memo[key] = grade
                while len(self._memo) > self._max:
                    self._memo.popitem(last=False)
        return Want(self.grades[grade], f"classifier: {grade}", cost=cost)


class FunctionPolicy:
    """A function of the request as a policy: its model id, or None for the model asked."""

    costly = False

    def __init__(self, fn: Callable[[Request], Any]) -> None:
        self.fn = fn
        self.label = getattr(fn, "__qualname__", None) or repr(fn)

    def want(self, request: Request) -> Want:
        result = self.fn(request)
        if result is None:
            return Want(None, f"{self.label} chose the model asked")
        if not isinstance(result, str):
            raise TypeError(
                f"route(policy={self.label}): the function returned {type(result).__name__}, "
                "not a model id or None"
            )
        _model_arg(result, f"route(policy={self.label}) returned")
        return Want(result, f"{self.label}")
