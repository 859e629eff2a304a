"""cache(): put ``cache_control`` breakpoints where they pay, within the API's limits.

The default strategy, for a request laid out tools → system → messages:

1. the end of the tools;
2. the end of the system prompt (tools + system);
3. a rolling breakpoint on the last cacheable block of the messages, so the history is read
   from the cache turn after turn and each turn writes only what it added;
4. a bridge when the latest turn added 20 blocks or more (parallel tool calls): the API looks
   back only 20 blocks from a breakpoint for an earlier entry, so a breakpoint within 20
   blocks after the previous turn's end carries the read across.

Every one of them is placed whenever a slot is free, also on a prefix that counts under the
model's minimum cacheable length: a breakpoint costs nothing by itself (writes are billed by
the tokens up to the last one), the API ignores one on a prefix under the minimum, and a
local count can be wrong by more than the margin, while a missing breakpoint costs a whole
re-read. Only when the candidates do not fit in the slots are some dropped, by expected
value: each plan is priced on the offline cache model over the previous call and this one.

The API's rules (https://platform.claude.com/docs/en/build-with-claude/prompt-caching): at
most 4 breakpoints, the top-level ``cache_control`` included; none on thinking or empty text
blocks; 1h breakpoints must come before 5m ones.

With ``ttl="adaptive"`` and a :class:`~tidyctx.transforms._pauses.Pauses` (the call times the
sender records), the TTLs are chosen per call from the pauses seen in the conversation, on the
cache model's rules at the model's prices (:mod:`tidyctx.transforms._pauses`); the placement is
the same as with the chosen fixed TTLs.

Markers the caller put on tools, system blocks or ``role: "system"`` messages are kept and
count toward the 4 (a system message is left exactly as sent); if they alone break the API's
rules (more than 4 with the top-level one, a 1h marker after a 5m one) cache() raises
:class:`~tidyctx._request.ValidationError` naming the marker. Markers in user and assistant
messages (inside a tool_result's content too) are treated as rolling breakpoints: cache()
removes them and places its own, so applying it to its own output changes nothing
(idempotent) and markers never pile up past 4.

Nothing else changes: a marker is the only edit. A string ``system`` or message ``content``
that gets a breakpoint becomes that text as one text block carrying the marker (a string is
the API's shorthand for exactly that block, and a string has nowhere to hold a marker); a
tool_result whose content is a string gets the marker on the tool_result itself, its content
left a string.

>>> req = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "Be brief. " * 400,
...        "messages": [{"role": "user", "content": "hi " * 1200}]}
>>> out = cache()(req)
>>> [p for p, _ in tidyctx._request.cache_markers(out)]
['system[0]', 'messages[0].content[0]']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tidyctx._request
from tidyctx import pricing
from tidyctx._edge import Edge
from tidyctx._request import (
    MAX_BREAKPOINTS,
    Request,
    ValidationError,
    cache_markers,
    can_carry_marker,
    check_encodable,
    marker_errors,
    plain_copy,
)
from tidyctx.cachesim import LOOKBACK, CacheModel, layout
from tidyctx.tokens import LocalCounter, TokenCounter, check_counter, local_counter
from tidyctx.transforms._order import is_dynamic_block
from tidyctx.transforms._pauses import Pauses, Rates, TTLDecision, choose

__all__ = ["Cache", "cache"]

_TTLS = ("5m", "1h")
_ADAPTIVE = "adaptive"


def _marker(ttl: str) -> dict[str, str]:
    # The 5m marker is written without a ttl: 5 minutes is the API's default.
    return {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}


def _eligible(block: Any) -> bool:
    """May carry a breakpoint (not thinking, not empty text; a non-empty string stands for its
    text block) and is not order()'s dynamic block, which changes every turn."""
    return (
        isinstance(block, Mapping | str) and can_carry_marker(block) and not is_dynamic_block(block)
    )


@dataclass(frozen=True, slots=True)
class Cache(Edge):
    """The transform :func:`cache` returns; call it on a request."""

    ttl: str = "5m"
    stable_ttl: str | None = None
    automatic: bool = False
    bridge: bool = True
    model: str | None = None
    min_tokens: int | None = None
    counter: TokenCounter | None = field(default=None, compare=False)
    pauses: Pauses | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        opts = [f"ttl={self.ttl!r}"] if self.ttl != "5m" else []
        if self.stable_ttl and self.stable_ttl != self.ttl:
            opts.append(f"stable_ttl={self.stable_ttl!r}")
        if self.automatic:
            opts.append("automatic=True")
        if self.pauses is not None:
            opts.append(f"pauses={self.pauses!r}")
        return f"cache({', '.join(opts)})"

    def apply(self, request: Request) -> Request:
        return self._apply(request, record=True)[0]

    def decide(self, request: Request) -> TTLDecision | None:
        """With ``ttl="adaptive"``, the TTLs this transform picks for ``request`` now (nothing
        is recorded); else None."""
        if self.ttl != _ADAPTIVE:
            return None
        return self._apply(request, record=False)[1]

    def _apply(self, request: Request, *, record: bool) -> tuple[Request, TTLDecision | None]:
        # Block hashes need UTF-8; name a lone surrogate rather than fail deep inside.
        check_encodable(request)
        # A copy in the client's own form: only markers change below.
        out: Request = plain_copy(request)
        messages = out.get("messages")
        if not isinstance(messages, list):
            raise tidyctx._request.ValidationError(
                "messages", "missing", "cache() needs a request with a list of messages"
            )
        # Drop the rolling markers (ours, from an earlier pass, or the caller's) in messages,
        # those inside a tool_result's content too: left there, an old one would hold one of
        # the 4 slots for the rest of the conversation. A system message keeps the caller's
        # marker, as tools and system do: it is left exactly as sent (a client such as Claude
        # Code ends its first request with one, marked), and its marker counts toward the 4.
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "system":
                continue
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                for i, block in enumerate(content):
                    if isinstance(block, dict):
                        content[i] = _unmarked(block)
        # The caller's markers on tools, system and system messages are kept, so they must
        # already be valid: at most 4 with the top-level one, 1h before 5m. Refuse rather than
        # send a request the API rejects, or drop a marker the caller placed.
        for err in marker_errors(out)[:1]:
            raise ValidationError(
                err.path,
                err.problem,
                "cache() keeps your own cache_control markers on tools, system and system "
                "messages. " + (err.hint or "Remove the extra ones"),
            )
        model = self.model or str(out.get("model") or "")
        counter = local_counter(self.counter, model)
        lay = layout(out, counter, model or None)
        kept = cache_markers(out)
        budget = max(MAX_BREAKPOINTS - len(kept), 0)
        index = {path: pos for pos, path in enumerate(lay.paths)}
        # A system message inside messages is left as the client sent it (its string content
        # is not made a block to carry a marker): breakpoints go on the turns around it.
        instructions = {
            f"messages[{i}]"
            for i, m in enumerate(messages)
            if isinstance(m, dict) and m.get("role") == "system"
        }
        blocks = {
            path: block
            for path, block in _blocks_by_path(out).items()
            if path.split(".", 1)[0] not in instructions
        }
        decision: TTLDecision | None = None
        if self.ttl == _ADAPTIVE:
            decision = self._decide(out, lay, blocks, index, messages, model, record)
            ttl, stable_ttl = decision.rolling, decision.stable
        else:
            ttl, stable_ttl = self.ttl, self.stable_ttl or self.ttl

        rolling_plan: list[tuple[int, str]] = []
        bridges: list[tuple[int, str]] = []
        stable: list[tuple[int, str]] = []
        # 3. rolling: the last block of the messages that may carry a marker (walking back
        # past thinking and order()'s dynamic block, as automatic caching walks back), and
        # before what the next request will not send the same way.
        changing = _changing(lay, blocks, messages)
        rolling = _last_in_section(lay, blocks, "messages", changing)
        use_auto = False
        if rolling is not None:
            # Automatic caching would mark the very last block, past what changes.
            tail_changes = changing is not None
            if self.automatic and not tail_changes and "cache_control" not in out:
                use_auto = True
                budget = max(budget - 1, 0)
            elif "cache_control" not in out or tail_changes:
                # The caller's own automatic breakpoint serves as the rolling one, unless the
                # tail changes: it lands on the last block, past what the next request sends
                # otherwise, so its entry is never read again; ours goes before the change.
                rolling_plan.append((rolling, ttl))
            # 4. bridges: the previous request ended at the user message before the last
            # reply; a chain of breakpoints less than LOOKBACK apart carries the read to here.
            previous_end = _previous_end(lay.paths, blocks, index, messages)
            if self.bridge and previous_end is not None and previous_end < rolling:
                bridges = [
                    (b, ttl) for b in _bridge_chain(lay.paths, blocks, previous_end, rolling)
                ]
        # 2. and 1.: the stable prefix, unless the caller marked it already.
        if not any(p.startswith("system") for p, _ in kept):
            end_system = _last_in_section(lay, blocks, "system")
            if end_system is not None:
                stable.append((end_system, stable_ttl))
        if not any(p.startswith("tools") for p, _ in kept):
            end_tools = _last_in_section(lay, blocks, "tools")
            if end_tools is not None:
                stable.append((end_tools, stable_ttl))
        placer = self if self.ttl != _ADAPTIVE else _fixed(self, ttl, stable_ttl)
        chosen = placer._plan(out, lay, counter, budget, rolling_plan, bridges, stable)
        # Longer TTLs must come before shorter ones: one of ours before a 1h marker of the
        # caller's is raised to 1h (the write up to the last 1h marker is billed at the 1h
        # price anyway), and a 1h marker of ours after any 5m one is lowered to 5m.
        existing = [(_position(p, index, len(lay.paths)), m) for p, m in kept]
        last_1h = max((pos for pos, m in existing if m.get("ttl") == "1h"), default=-1)
        marks: list[tuple[float, str, int]] = sorted(
            [(pos, str(m.get("ttl", "5m")), -1) for pos, m in existing]
            + [(pos, "1h" if pos < last_1h else ttl, pos) for pos, ttl in chosen]
        )
        seen_5m = False
        for _, ttl, ours in marks:  # ours: the layout position of one of ours, else -1
            if ttl == "5m":
                seen_5m = True
            elif seen_5m and ours >= 0:
                ttl = "5m"
            if ours >= 0:
                _set_marker(out, lay.paths[ours], _marker(ttl))
        if use_auto:
            out["cache_control"] = _marker(ttl)
        return out, decision

    def _decide(
        self,
        request: Request,
        lay: Any,
        blocks: dict[str, Any],
        index: dict[str, int],
        messages: list[Any],
        model: str,
        record: bool,
    ) -> TTLDecision:
        """The adaptive choice for this call (:mod:`tidyctx.transforms._pauses`), kept in the
        memory when ``record``."""
        assert self.pauses is not None
        key = self.pauses.key_of(request)
        gaps, previous = self.pauses.history(key)
        stable_end = _last_in_section(lay, blocks, "system")
        if stable_end is None:
            stable_end = _last_in_section(lay, blocks, "tools")
        rolling = _last_in_section(lay, blocks, "messages")
        previous_end = _previous_end(lay.paths, blocks, index, messages)
        end = rolling if rolling is not None else len(lay.paths) - 1
        decision = choose(
            gaps,
            previous,
            stable_tokens=lay.cum[stable_end] if stable_end is not None else 0,
            prefix_tokens=lay.cum[end] if end >= 0 else 0,
            previous_tokens=lay.cum[previous_end] if previous_end is not None else 0,
            rates=_rates(self.model or model),
            prior=self.pauses.prior,
        )
        if record:
            self.pauses.remember(key, decision)
        return decision

    def _plan(
        self,
        request: Request,
        lay: Any,
        counter: LocalCounter,
        budget: int,
        rolling: list[tuple[int, str]],
        bridges: list[tuple[int, str]],
        stable: list[tuple[int, str]],
    ) -> list[tuple[int, str]]:
        """The breakpoints to place: every candidate when they fit in ``budget``; else, of the
        plans that keep the rolling breakpoint and the first ``b`` bridges and fill the rest
        with the stable ones (system first), the one the cache model prices lowest over the
        previous call and this one (ties: fewer bridges, so the stable prefix keeps its
        breakpoints)."""
        every = sorted(set(rolling + bridges + stable))
        if len(every) <= budget:
            return every
        plans: list[list[tuple[int, str]]] = []
        for b in range(len(bridges) + 1):
            plan = sorted(set((rolling + bridges[:b] + stable)[:budget]))
            if plan not in plans:
                plans.append(plan)
        if len(plans) == 1:
            return plans[0]
        costs = self._costs(request, lay, counter, plans)
        return min(zip(costs, range(len(plans)), plans, strict=True))[2]

    def _costs(
        self,
        request: Request,
        lay: Any,
        counter: LocalCounter,
        plans: list[list[tuple[int, str]]],
    ) -> list[float]:
        """The cost of each plan over the previous call and this one, on the offline cache
        model, in input-token equivalents (the API's multipliers: write 1.25x for 5m, 2x for
        1h, read 0.1x).

        The previous call is this request without its last reply and user turn, placed by
        this strategy without bridges; without one, each plan is priced on this call alone.
        """
        messages = request["messages"]
        previous: Request | None = None
        if len(messages) >= 3:
            assert self.ttl != _ADAPTIVE  # _fixed(...) prices the plans of an adaptive one
            previous = Cache(
                ttl=self.ttl,
                stable_ttl=self.stable_ttl,
                bridge=False,
                model=self.model,
                min_tokens=self.min_tokens,
                counter=self.counter,
            ).apply({**request, "messages": messages[:-2]})

        def cost(plan: list[tuple[int, str]]) -> float:
            current = plain_copy(request)
            for pos, ttl in plan:
                _set_marker(current, lay.paths[pos], _marker(ttl))
            model = CacheModel(model=self.model, min_cacheable=self.min_tokens, counter=counter)
            if previous is not None:
                model.call(previous)
            u = model.call(current).usage
            parts = u["cache_creation"]
            return float(
                u["input_tokens"]
                + 1.25 * parts["ephemeral_5m_input_tokens"]
                + 2.0 * parts["ephemeral_1h_input_tokens"]
                + 0.1 * u["cache_read_input_tokens"]
            )

        return [cost(plan) for plan in plans]

    def describe(self, before: Request, after: Request) -> str:
        marks = cache_markers(after)
        placed = ", ".join(f"{p} ({m.get('ttl', '5m')})" for p, m in marks)
        text = f"{len(marks)} breakpoint{'s' if len(marks) != 1 else ''}: {placed or 'none'}"
        if self.ttl == _ADAPTIVE:
            decision = self._apply(before, record=False)[1]
            if decision is not None:
                text += f"; adaptive TTL {decision.reason}"
        return text


def cache(
    *,
    ttl: str = "5m",
    stable_ttl: str | None = None,
    automatic: bool = False,
    bridge: bool = True,
    model: str | None = None,
    min_tokens: int | None = None,
    counter: TokenCounter | None = None,
    pauses: Pauses | None = None,
) -> Cache:
    """Place ``cache_control`` breakpoints: tools, system, rolling, and a lookback bridge.

    ``ttl`` is the lifetime of the rolling (conversation) breakpoints; ``stable_ttl`` that of
    the tools and system breakpoints (default: ``ttl``). Use ``stable_ttl="1h"`` when the agent
    pauses longer than 5 minutes between calls (a human in the loop): the stable prefix then
    survives the pause for twice the write price. ``automatic=True`` uses the request's
    top-level ``cache_control`` for the rolling breakpoint where that serves as well (no
    dynamic block from :func:`~tidyctx.transforms._order.order` at the end).

    Breakpoints are placed whenever a slot is free, whatever the prefix counts. ``model`` (the
    model the request is sent to, default: the request's ``model``), ``min_tokens`` (its
    minimum cacheable length, default: the price table's) and ``counter`` (a
    :class:`~tidyctx.tokens.TokenCounter`, default: a :class:`~tidyctx.tokens.LocalCounter`
    for ``model``) only price the plans when more breakpoints are wanted than the 4 slots
    hold; the block sizes this needs come from a LocalCounter, so another counter is not used
    here (:func:`~tidyctx.tokens.local_counter`). ``bridge=False`` never places the lookback
    bridge.

    ``ttl="adaptive"`` with ``pauses`` (a :class:`~tidyctx.transforms._pauses.Pauses` the sender
    fills with each call's time) chooses the TTLs per call from the gaps seen so far in the
    request's conversation: the stable prefix, and the rolling breakpoint where it pays, go to
    1 hour when the dearer write is expected to pay back at the model's prices, and back to 5
    minutes when not (:mod:`tidyctx.transforms._pauses`). With no pause seen it is exactly
    ``ttl="5m"``. ``describe()`` gives the choice and its reason, ``pauses.decision(request)``
    the record of the latest call for a ledger.

    >>> pauses = tidyctx.Pauses()
    >>> t = cache(ttl="adaptive", pauses=pauses)
    >>> req = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "Be brief. " * 900,
    ...        "messages": [{"role": "user", "content": "hi"}]}
    >>> turn = lambda k: {**req, "messages": req["messages"] + [
    ...     {"role": "assistant", "content": "Yes?"}, {"role": "user", "content": "go on"}] * k}
    >>> for k, at in enumerate([0, 20, 40, 1240, 1260]):   # a 20-minute pause after call 3
    ...     pauses.record(turn(k), at=at)
    ...     out = t(turn(k))
    >>> [m.get("ttl", "5m") for _, m in tidyctx._request.cache_markers(out)]
    ['1h', '1h']
    >>> pauses.decision(turn(4)).reason[:42]
    '1h: 1 of 4 gaps between 5 min and 1 h; exp'
    """
    check_counter(counter, "cache(counter=...)")
    if min_tokens is not None and min_tokens < 0:
        raise ValueError(f"cache(min_tokens={min_tokens}): must be >= 0")
    if pauses is not None and not isinstance(pauses, Pauses):
        raise TypeError(f"cache(pauses=...) takes a tidyctx.Pauses, got {type(pauses).__name__}")
    if ttl == _ADAPTIVE:
        if pauses is None:
            raise ValueError(
                "cache(ttl='adaptive') needs pauses=tidyctx.Pauses(), the call times the "
                "sender records (Pauses.record) before each call"
            )
        if stable_ttl is not None:
            raise ValueError(
                "cache(ttl='adaptive', stable_ttl=...): the adaptive TTL chooses both; "
                "drop stable_ttl"
            )
        return Cache(
            ttl=ttl,
            automatic=automatic,
            bridge=bridge,
            model=model,
            min_tokens=min_tokens,
            counter=counter,
            pauses=pauses,
        )
    if pauses is not None:
        raise ValueError(
            f"cache(ttl={ttl!r}, pauses=...): pauses are read only with ttl='adaptive'"
        )
    for name, value in (("ttl", ttl), ("stable_ttl", stable_ttl or ttl)):
        if value not in _TTLS:
            raise ValueError(
                f"cache({name}={value!r}): the API knows only '5m' and '1h' "
                "(or ttl='adaptive' with pauses=...)"
            )
    if ttl == "1h" and (stable_ttl or ttl) == "5m":
        raise ValueError(
            "cache(ttl='1h', stable_ttl='5m'): 1h breakpoints must come before 5m ones; "
            "use stable_ttl='1h' too"
        )
    return Cache(
        ttl=ttl,
        stable_ttl=stable_ttl,
        automatic=automatic,
        bridge=bridge,
        model=model,
        min_tokens=min_tokens,
        counter=counter,
    )


# ---------------------------------------------------------------------------- helpers


def _fixed(adaptive: Cache, ttl: str, stable_ttl: str) -> Cache:
    """The fixed-TTL transform an adaptive one acts as for one call."""
    return Cache(
        ttl=ttl,
        stable_ttl=stable_ttl,
        automatic=adaptive.automatic,
        bridge=adaptive.bridge,
        model=adaptive.model,
        min_tokens=adaptive.min_tokens,
        counter=adaptive.counter,
    )


def _rates(model: str) -> Rates:
    """USD per token of the model's cache writes and reads; for a model with no price, the
    API's usual multipliers of an input price of 1 (1.25x, 2x, 0.1x)."""
    try:
        price = pricing.lookup(model)
    except (pricing.UnknownModelError, ValueError, TypeError):
        return Rates(write_5m=1.25e-6, write_1h=2e-6, read=1e-7)
    return Rates(
        write_5m=price.cache_write_5m / 1e6,
        write_1h=price.cache_write_1h / 1e6,
        read=price.cache_read / 1e6,
    )


def _unmarked(block: dict[str, Any]) -> dict[str, Any]:
    """``block`` without cache_control, on itself and on the blocks of a tool_result."""
    out = {k: v for k, v in block.items() if k != "cache_control"}
    inner = out.get("content")
    if out.get("type") == "tool_result" and isinstance(inner, list):
        out["content"] = [
            {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b
            for b in inner
        ]
    return out


def _blocks_by_path(request: Request) -> dict[str, Any]:
    return {ref.path: ref.block for ref in tidyctx._request.iter_blocks(request)}


def _last_eligible(
    paths: tuple[str, ...], blocks: dict[str, Any], index: dict[str, int], prefix: str
) -> int | None:
    for path in reversed(paths):
        if path.startswith(prefix + ".") and _eligible(blocks.get(path)):
            return index[path]
    return None


def _last_in_section(
    lay: Any, blocks: dict[str, Any], section: str, before: int | None = None
) -> int | None:
    end = len(lay.paths) if before is None else before
    for pos in range(end - 1, -1, -1):
        if lay.sections[pos] == section and _eligible(blocks.get(lay.paths[pos])):
            return pos
    return None


def _changing(lay: Any, blocks: dict[str, Any], messages: list[Any]) -> int | None:
    """The first prefix position the next request of the conversation will not repeat: order()'s
    dynamic block (its lines move on to the next user message), or a system message shown only
    until the next user message (``clear_at: "next_user_message"``, see
    https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages).
    A breakpoint after it would write an entry no later request reads."""
    last_user = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
        default=-1,
    )
    shown_once = {
        f"messages[{i}]"
        for i in range(last_user + 1, len(messages))
        if isinstance(messages[i], dict)
        and messages[i].get("role") == "system"
        and messages[i].get("clear_at") == "next_user_message"
    }
    for pos, path in enumerate(lay.paths):
        if lay.sections[pos] != "messages":
            continue
        if is_dynamic_block(blocks.get(path)) or path.split(".", 1)[0] in shown_once:
            return pos
    return None


def _previous_end(
    paths: tuple[str, ...], blocks: dict[str, Any], index: dict[str, int], messages: list[Any]
) -> int | None:
    """Where the previous request's rolling breakpoint sat: the end of the user message
    before the latest assistant reply (the previous request ended there)."""
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if len(users) < 2:
        return None
    return _last_eligible(paths, blocks, index, f"messages[{users[-2]}]")


def _bridge_chain(
    paths: tuple[str, ...], blocks: dict[str, Any], previous_end: int, rolling: int
) -> list[int]:
    """Breakpoints between the previous request's end and ``rolling``, each less than the
    lookback window after the one before, furthest first (empty when none is needed or the
    gap cannot be bridged)."""
    chain: list[int] = []
    at = previous_end
    while rolling - at >= LOOKBACK:
        step = next(
            (
                pos
                for pos in range(min(at + LOOKBACK - 1, rolling - 1), at, -1)
                if _eligible(blocks.get(paths[pos]))
            ),
            None,
        )
        if step is None:
            return []  # a run of 20 thinking blocks: nothing to hold a marker
        chain.append(step)
        at = step
    return chain


def _position(path: str, index: dict[str, int], end: int) -> float:
    """The prefix position of a marker's path; nested tool_result markers sit at their
    tool_result, the top-level (automatic) marker at the end. A deferred tool is not laid out
    (it is not in the prompt), but its marker still counts where the tools array has it for
    the TTL order: just after the rendered tools before it."""
    if path == "cache_control":
        return end
    if path.count(".content[") == 2:
        path = path.rsplit(".content[", 1)[0]
    if path in index:
        return index[path]
    if path.startswith("tools[") and path.endswith("]") and path[6:-1].isdigit():
        before = [index[f"tools[{j}]"] for j in range(int(path[6:-1])) if f"tools[{j}]" in index]
        return (max(before) if before else -1) + 0.5
    return end


def _set_marker(request: Request, path: str, marker: dict[str, str]) -> None:
    """Put ``marker`` on the block at ``path``. A string ``system`` or message ``content``
    (paths ``system``, ``messages[i].content``) becomes its one text block, which carries it."""
    if path.startswith("tools["):
        i = int(path[6:-1])
        request["tools"][i] = {**request["tools"][i], "cache_control": marker}
        return
    if path == "system":
        request["system"] = [{"type": "text", "text": request["system"], "cache_control": marker}]
        return
    if path.startswith("system["):
        i = int(path[7:-1])
        request["system"][i] = {**request["system"][i], "cache_control": marker}
        return
    head, _, tail = path.partition(".content")
    message = request["messages"][int(head[9:-1])]
    if not tail:
        message["content"] = [{"type": "text", "text": message["content"], "cache_control": marker}]
        return
    j = int(tail[1:-1])
    message["content"][j] = {**message["content"][j], "cache_control": marker}
