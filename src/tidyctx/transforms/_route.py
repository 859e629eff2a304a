"""route(): the right model for each call, without paying for it in cache rewrites.

A policy says which model a call wants (:class:`Rules`, :class:`Classifier`, or a function of
the request). Where that differs from the model the call went to before, the cache decides:
the prompt cache is per model
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching, "What invalidates the
cache"), so a switch inside a running conversation writes the whole prefix again on the new
model. route() switches there only when, on the request's cache layout
(:func:`tidyctx.cachesim.layout`) and the models' prices (:mod:`tidyctx.pricing`), the cheaper
model's saving over the turns it is expected to keep serving exceeds that rewrite, the rewrite
back on the conversation's own model when the policy wants it again, and the classifier's
cost. At a conversation's start (no assistant turn yet) nothing is cached and the policy's
model is taken as it is.

**What the previous call went to.** A transform sees one request. The calls before it are the
same request cut before each assistant turn, so route() decides for those first (remembered
by their content, so each is decided once) and knows the model each went to: the decision is
a function of the request alone, and a conversation stays where its earlier calls put it.

**The models' own rules.** A switch is made only to a model that can take the request as it
stands, and changes only what the new model requires (:mod:`tidyctx.transforms._route_models`).

**Shadow mode.** ``route(shadow=True)`` decides and records the same way and sends the request
as it came: its ledger rows say what routing would have saved.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from tidyctx import pricing
from tidyctx._edge import Edge
from tidyctx._request import Request, cache_content, canonical_json
from tidyctx.cachesim import Layout, layout
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._order import is_dynamic_block
from tidyctx.transforms._route_models import adapted, fit
from tidyctx.transforms._route_models import canonical as _canonical
from tidyctx.transforms._route_policies import (
    DEFAULT_RULES,
    HINT_KEY,
    SIDE_CALL_MAX_TOKENS,
    Classifier,
    FunctionPolicy,
    RouteWarning,
    Rule,
    Rules,
    Want,
    hint_of,
)

__all__ = [
    "DEFAULT_RULES",
    "HINT_KEY",
    "SIDE_CALL_MAX_TOKENS",
    "Classifier",
    "Route",
    "RouteDecision",
    "RouteWarning",
    "Rule",
    "Rules",
    "Want",
    "adapted",
    "collecting",
    "fit",
    "route",
]

DEFAULT_OUTPUT_TOKENS = 300
"""Output tokens expected of a call with no earlier reply to go by."""


# ---------------------------------------------------------------------------- the decision


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What route() chose for one call, and why; :meth:`as_dict` is the ledger's ``route``."""

    model: str
    """The model chosen (in shadow mode: the one it would have sent to)."""
    asked: str
    """The model the request asked for."""
    wanted: str
    """The model the policy wanted."""
    reason: str
    shadow: bool = False
    switched: bool = False
    """The model differs from the one the previous call of the conversation went to."""
    saving: float = 0.0
    """Estimated USD this call costs less than on the model asked (negative: more), the
    cache rewrite of a switch included."""
    policy_cost: float = 0.0
    """USD the policy spent on this call (a classifier call)."""
    streak: int = 1
    """Calls in a row, this one included, for which the policy wanted ``wanted``."""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["saving"] = round(self.saving, 8)
        out["policy_cost"] = round(self.policy_cost, 8)
        return out


_COLLECT: ContextVar[list[RouteDecision] | None] = ContextVar("tidyctx_route", default=None)


@contextmanager
def collecting() -> Iterator[list[RouteDecision]]:
    """Collect the decisions route() makes in this context (what a sender writes to its ledger
    row: the last one)."""
    found: list[RouteDecision] = []
    token = _COLLECT.set(found)
    try:
        yield found
    finally:
        _COLLECT.reset(token)


@dataclass(frozen=True, slots=True)
class _Level:
    """One call of a conversation as route() decided it."""

    decision: RouteDecision
    chosen: str  # canonical id of the model the call went to
    ended: int = 0
    """Runs of calls wanting a cheaper model than asked that have ended (a call wanted the
    model asked, or a dearer one, again)."""
    ended_calls: int = 0
    """The calls of those runs."""


@dataclass(slots=True)
class _Costs:
    """Token counts of one call, as the cache sees them: total, cacheable end, and what the
    previous call left cached."""

    total: int
    cached_end: int
    previous_end: int
    output: int
    growth: int = 0
    """Mean tokens a call of this conversation has added to the prompt so far."""

    def usage(self, model: str, warm: bool) -> dict[str, int]:
        price = pricing.lookup(model)
        end = self.cached_end if self.cached_end >= price.min_cacheable else 0
        read = min(self.previous_end, end) if warm else 0
        if read < price.min_cacheable:
            read = 0
        return {
            "input_tokens": self.total - end,
            "cache_creation_input_tokens": end - read,
            "cache_read_input_tokens": read,
            "output_tokens": self.output,
        }

    def cost(self, model: str, warm: bool) -> float:
        return pricing.cost(self.usage(model, warm), model).total

    def next_cost(self, model: str) -> float:
        """A later call on a warm cache: this prompt read, a mean call's growth written."""
        price = pricing.lookup(model)
        read = self.cached_end if self.cached_end >= price.min_cacheable else 0
        usage = {
            "input_tokens": self.total - self.cached_end,
            "cache_creation_input_tokens": self.growth,
            "cache_read_input_tokens": read,
            "output_tokens": self.output,
        }
        if not read:
            usage["input_tokens"] += usage.pop("cache_creation_input_tokens") + self.cached_end
        return pricing.cost(usage, model).total

    def rewrite(self, model: str, tokens: int) -> float:
        """USD of writing ``tokens`` to ``model``'s cache beyond reading them."""
        price = pricing.lookup(model)
        return tokens * (price.cache_write_5m - price.cache_read) / 1e6


def _message_index(path: str) -> int | None:
    if not path.startswith("messages["):
        return None
    return int(path[9 : path.index("]")])


def _levels(request: Request, lay: Layout) -> list[_Costs]:
    """The costs of each call of the conversation: the request cut before each assistant
    turn, then the request itself."""
    messages = request["messages"]
    bounds = [
        i
        for i, m in enumerate(messages)
        if i > 0 and isinstance(m, Mapping) and m.get("role") == "assistant"
    ]
    bounds.append(len(messages))
    # The last position of each message, and the cumulative tokens up to the end of
    # messages[:b] for each bound.
    end_of: dict[int, int] = {}
    first_message = len(lay.paths)
    for pos, path in enumerate(lay.paths):
        i = _message_index(path)
        if i is not None:
            end_of[i] = pos
            first_message = min(first_message, pos)
    before_messages = lay.cum[first_message - 1] if first_message > 0 else 0
    reply_tokens = {
        i: lay.cum[end_of[i]] - (lay.cum[end_of[i - 1]] if i - 1 in end_of else before_messages)
        for i in bounds[:-1]
        if i in end_of
    }

    def cum_before(b: int) -> int:
        last = max((i for i in end_of if i < b), default=None)
        return lay.cum[end_of[last]] if last is not None else before_messages

    marks = [pos for pos, _ in lay.breakpoints]
    rolling = any(
        lay.sections[pos] == "messages" for pos in marks
    )  # the cache follows each call's end
    out: list[_Costs] = []
    previous = 0
    replies: list[int] = []
    for b in bounds:
        total = cum_before(b) if b < len(messages) else lay.total
        if rolling:
            cached = total
        else:
            inside = [lay.cum[p] for p in marks if lay.cum[p] <= total]
            cached = max(inside, default=0)
        if b < len(messages):
            output = reply_tokens.get(b, DEFAULT_OUTPUT_TOKENS)
        else:
            output = round(sum(replies) / len(replies)) if replies else DEFAULT_OUTPUT_TOKENS
        # The mean of the growths between calls: their sum runs from the first call to this.
        growth = round((total - out[0].total) / len(out)) if out else 0
        out.append(_Costs(total, cached, previous, output, max(0, growth)))
        previous = cached
        if b < len(messages):
            replies.append(output)
    return out


class Route(Edge):
    """The transform :func:`route` returns."""

    __slots__ = ("_lock", "_memo", "margin", "max_remembered", "name", "policy", "shadow")

    def __init__(
        self, policy: Any, shadow: bool, name: str, max_remembered: int, margin: float
    ) -> None:
        self.policy = policy
        self.shadow = shadow
        self.margin = margin
        self.name = name
        self.max_remembered = max_remembered
        self._memo: OrderedDict[bytes, _Level] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return self.name

    def apply(self, request: Request) -> Request:
        decision = self.decide(request)
        found = _COLLECT.get()
        if found is not None:
            found.append(decision)
        out = request
        if hint_of(request) is not None:
            metadata = {k: v for k, v in request["metadata"].items() if k != HINT_KEY}
            out = {**request, "metadata": metadata}
            if not metadata:
                del out["metadata"]
        if self.shadow or decision.model == request.get("model"):
            return out
        return adapted(out, decision.model)

    def describe(self, before: Request, after: Request) -> str:
        d = self.decide(before)
        mode = "shadow: would send to" if d.shadow else "sent to"
        return f"{mode} {d.model} (asked {d.asked}): {d.reason}; saving ${d.saving:.6f}"

    # -- deciding

    def decide(self, request: Mapping[str, Any]) -> RouteDecision:
        """The decision for ``request`` (remembered by content: deciding twice is free)."""
        asked = request.get("model")
        messages = request.get("messages")
        if not isinstance(asked, str) or not isinstance(messages, list):
            return RouteDecision(str(asked), str(asked), str(asked), "no model or messages",
                                 self.shadow)  # fmt: skip
        try:
            home = _canonical(asked)
        except pricing.UnknownModelError:
            return RouteDecision(asked, asked, asked, "the model asked has no price: left as "
                                 "it is", self.shadow)  # fmt: skip
        plain: Request = dict(request)
        keys = self._keys(plain)
        with self._lock:
            start = len(keys)
            while start > 0 and keys[start - 1] not in self._memo:
                start -= 1
            previous = self._memo[keys[start - 1]] if start > 0 else None
        if start == len(keys) and previous is not None:
            return previous.decision
        lay = layout(plain, LocalCounter(home), home)
        costs = _levels(plain, lay)
        bounds = [
            i for i, m in enumerate(messages)
            if i > 0 and isinstance(m, Mapping) and m.get("role") == "assistant"
        ] + [len(messages)]  # fmt: skip
        for k in range(start, len(keys)):
            cut = plain if k == len(keys) - 1 else {**plain, "messages": messages[: bounds[k]]}
            level = self._decide_one(
                cut, asked, home, previous, costs[k], k == len(keys) - 1, k + 1
            )
            with self._lock:
                self._memo[keys[k]] = level
                self._memo.move_to_end(keys[k])
                while len(self._memo) > self.max_remembered:
                    self._memo.popitem(last=False)
            previous = level
        assert previous is not None
        return previous.decision

    def _keys(self, request: Request) -> list[bytes]:
        """A content key for each call of the conversation (the request cut before each
        assistant turn, then the request): the fields besides messages, then message by
        message. Cache markers and order()'s dynamic block are left out: they move from call
        to call, and the calls before are the same calls. So is the caller's hint, which is
        this call's own: it goes into the last key only."""
        messages = request["messages"]
        head = {
            k: [cache_content(b) for b in v] if k in ("tools", "system") and isinstance(v, list)
            else v
            for k, v in request.items()
            if k not in ("messages", "cache_control", "metadata")
        }  # fmt: skip
        metadata = request.get("metadata")
        if isinstance(metadata, Mapping):
            head["metadata"] = {k: v for k, v in metadata.items() if k != HINT_KEY}
        h = hashlib.blake2b(canonical_json(head), digest_size=16)
        keys: list[bytes] = []
        for i, message in enumerate(messages):
            if i > 0 and isinstance(message, Mapping) and message.get("role") == "assistant":
                keys.append(h.copy().digest())
            h.update(hashlib.blake2b(canonical_json(_key_body(message)), digest_size=16).digest())
        hint = hint_of(request)
        if hint is not None:
            h.update(b"hint:" + hint.encode("utf-8", "surrogatepass"))
        keys.append(h.digest())
        return keys

    def _want(self, request: Request, is_current: bool) -> Want:
        if not is_current and getattr(self.policy, "costly", False):
            # An earlier call this transform did not see: not worth a classifier call now.
            return Want(None, "earlier call not seen: assumed on the model asked")
        return self.policy.want(request)  # type: ignore[no-any-return]

    def _decide_one(
        self,
        request: Request,
        asked: str,
        home: str,
        previous: _Level | None,
        costs: _Costs,
        is_current: bool,
        calls: int = 1,
    ) -> _Level:
        want = self._want(request, is_current)
        wanted = want.model or asked
        target = _canonical(wanted)
        streak = 1
        if previous is not None and _canonical(previous.decision.wanted) == target:
            streak = previous.decision.streak + 1
        current = previous.chosen if previous is not None else None
        tokens = costs.total
        ended = previous.ended if previous is not None else 0
        ended_calls = previous.ended_calls if previous is not None else 0
        if (
            previous is not None
            and _dearer(home, _canonical(previous.decision.wanted))
            and not _dearer(home, target)
        ):
            ended, ended_calls = ended + 1, ended_calls + previous.decision.streak

        def done(model: str, chosen: str, reason: str) -> _Level:
            warm = current == chosen
            saving = costs.cost(home, previous is not None) - costs.cost(chosen, warm)
            decision = RouteDecision(
                model=model,
                asked=asked,
                wanted=wanted,
                reason=f"{want.reason}; {reason}",
                shadow=self.shadow,
                switched=current is not None and current != chosen,
                saving=saving - want.cost,
                policy_cost=want.cost,
                streak=streak,
            )
            return _Level(decision, chosen, ended, ended_calls)

        def stay(reason: str) -> _Level:
            if current is None or current == home:
                return done(asked, home, reason)
            assert previous is not None
            return done(previous.decision.model, current, reason)

        if current is not None and current != home:
            # The cheaper model the conversation is on must still take the request (it grows).
            problem = fit(request, current, tokens)
            if problem is not None:
                return done(asked, home, f"back to the model asked: {problem}")
        if target == (current or home):
            return stay("already on it")
        problem = fit(request, wanted, tokens)
        if problem is not None:
            return stay(f"stays: {problem}")
        if current is None:
            if not want.force and _dearer(target, home):
                return stay(f"{target} costs more than {home}, the model asked")
            return done(wanted, target, "conversation start: nothing cached, switch is free")
        if _dearer(target, current):
            if target == home or not _dearer(target, home):
                return done(wanted, target, "back up to the model the step needs")
            if want.force:
                return done(wanted, target, "dearer model, forced by the rule")
            if current != home:
                return done(asked, home, f"back up to the model asked: {target} costs more")
            return stay(f"{target} costs more than {home}, the model asked")
        # A cheaper model mid-conversation: does it pay back the rewrite?
        # The calls to come on the cheaper model: as many as the policy has wanted it in a row
        # (a run that has lasted n calls is expected to last about n more), and no more than
        # this conversation's earlier runs lasted on average.
        future = streak - 1
        if ended:
            future = min(future, ended_calls // ended)
        now = costs.cost(current, True) - costs.cost(target, False)
        per_turn = costs.next_cost(current) - costs.next_cost(target)
        # When the policy wants the conversation's model again, what the cheaper model served
        # (this prompt and what the coming calls add) is written on it again: counted whole,
        # as its old entries may have expired by then. Weighted by the chance that happens
        # before the conversation ends: certain once a run of cheaper wants has ended here;
        # before that, the run and the conversation are each expected to last as long again
        # as they have, so the run ends first with odds calls / (calls + streak).
        odds = 1.0 if ended else calls / (calls + streak)
        # Nor more calls than the cheaper model's window holds at the conversation's growth:
        # past that, the way back is certain.
        limit = request.get("max_tokens")
        room = pricing.lookup(target).context_window - tokens
        room -= limit if isinstance(limit, int) else 0
        if costs.growth > 0 and room // costs.growth < future + 1:
            future, odds = max(0, room // costs.growth), 1.0
        rewrite_back = costs.rewrite(home, costs.cached_end + future * costs.growth)
        back = odds * rewrite_back
        gain = now + future * per_turn - back - want.cost
        # Estimates err (the output to come, when the conversation ends): a switch must save
        # ``margin`` of the rewrites it can cause, unweighted, beyond them.
        if gain > self.margin * (rewrite_back + max(0.0, -now)):
            return done(
                wanted,
                target,
                f"switch pays: ${gain:.6f} over {future} expected turns after the rewrite",
            )
        outcome = f"would cost ${-gain:.6f} more" if gain <= 0 else f"would save only ${gain:.6f}"
        return stay(
            f"stays on {current}: a switch to {target} {outcome} (rewrite ${-now:.6f} now and "
            f"${back:.6f} back, {future} expected turns at ${per_turn:.6f})"
        )


def _key_body(message: Any) -> Any:
    """What of ``message`` identifies it across calls: its content without cache markers and
    without order()'s dynamic block, a string content as its text block."""
    if not isinstance(message, Mapping):
        return message
    content = message.get("content")
    if isinstance(content, str):
        blocks: Any = [cache_content(content)] if content else []
    elif isinstance(content, list):
        blocks = [cache_content(b) for b in content if not is_dynamic_block(b)]
    else:
        blocks = content
    return {**{k: v for k, v in message.items() if k != "content"}, "content": blocks}


def _dearer(a: str, b: str) -> bool:
    pa, pb = pricing.lookup(a), pricing.lookup(b)
    return (pa.input, pa.output) > (pb.input, pb.output)


def route(
    policy: Rules
    | Rule
    | Sequence[Rule]
    | Classifier
    | Callable[[Request], str | None]
    | None = None,
    *,
    shadow: bool = False,
    margin: float = 0.25,
    max_remembered: int = 65536,
) -> Route:
    """A transform that sets each call's ``model``: the policy's choice where it pays.

    ``policy`` is :class:`Rules` (or a list of :class:`Rule`, or one), a :class:`Classifier`, or a
    function of the request returning a model id (None: the model asked); with none,
    :data:`DEFAULT_RULES`. See the module documentation for when a running conversation
    switches and for the request changes a switch makes. ``shadow=True`` decides and records
    without changing the request (the ledger's ``route`` field says what it would have done).
    ``margin``: a switch inside a running conversation must save this share more than the
    cache rewrites it causes (the estimates of the output and of the turns to come err).
    ``max_remembered`` bounds the calls remembered. Put it last in a pipeline: it reads the
    cache breakpoints ``cache()`` placed.

    >>> t = route()
    >>> req = {"model": "claude-sonnet-4-6", "max_tokens": 20,
    ...        "messages": [{"role": "user", "content": "A title for: my trip to Oslo"}]}
    >>> t(req)["model"]
    'claude-haiku-4-5'
    >>> t.decide(req).reason
    'rule side call with no tools; conversation start: nothing cached, switch is free'
    >>> route(shadow=True)(req) == req
    True
    """
    if policy is None:
        chosen: Any = Rules(DEFAULT_RULES)
        label = "route()"
    elif isinstance(policy, Rules | Classifier):
        chosen, label = policy, f"route({policy!r})"
    elif isinstance(policy, list | tuple):
        chosen, label = Rules(policy), f"route({len(policy)} rules)"
    elif isinstance(policy, Rule):
        chosen, label = Rules([policy]), f"route({policy.label})"
    elif callable(policy):
        chosen = FunctionPolicy(policy)
        label = f"route({chosen.label})"
    else:
        raise TypeError(
            "route(policy=...) takes tidyctx.Rules, a list of tidyctx.Rule, a "
            f"tidyctx.Classifier or a function of the request, got {type(policy).__name__}"
        )
    if not isinstance(shadow, bool):
        raise TypeError(f"route(shadow=...) takes True or False, got {shadow!r}")
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin >= 0:
        raise ValueError(f"route(margin={margin!r}): a share >= 0")
    if (
        isinstance(max_remembered, bool)
        or not isinstance(max_remembered, int)
        or max_remembered < 1
    ):
        raise ValueError(f"route(max_remembered={max_remembered!r}): an int >= 1")
    if shadow:
        label = label[:-1] + (", " if label[-2] != "(" else "") + "shadow=True)"
    return Route(chosen, shadow, label, max_remembered, float(margin))
