"""Pauses: the times of a conversation's API calls, the memory ``cache(ttl="adaptive")`` reads.

A pure transform sees one request and never the clock, so it cannot tell an agent's tool loop
(calls seconds apart) from a human in the loop (minutes or hours between turns). Whoever sends
the calls (a wrapper, a proxy) records each call's time in a :class:`Pauses` just before the
pipeline runs; :func:`~tidyctx.transforms._cache.cache` with ``ttl="adaptive"`` then reads the
gaps between the calls of the request's conversation and writes its choice back, so the next
call knows what the cache holds.

The choice, made per call from the observed gaps and the request's layout, compares three
plans on the offline cache model's terms (:mod:`tidyctx.cachesim`: entries live 5 minutes or
an hour from their last hit; a write is billed up to the last breakpoint of each TTL) at the
model's prices (:mod:`tidyctx.pricing`):

- ``5m``: every breakpoint at 5 minutes (the cheapest write);
- ``1h`` stable: the tools and system breakpoints at 1 hour, the rolling ones at 5 minutes;
- ``1h``: every breakpoint at 1 hour (1h breakpoints must come before 5m ones, so the rolling
  breakpoint can only be 1h when the stable prefix is too).

Each plan's cost is what this call writes (the part of the prefix no live entry holds, at the
plan's write prices) plus what the next call is expected to pay for the same prefix: read when
the next gap is under 5 minutes, read up to the plan's 1h entries and rewritten after them when
it is between 5 minutes and an hour, rewritten when it is longer. The chance of each kind of gap
is its share of the gaps observed so far in the conversation, with one more short gap counted
(so a conversation with no pause yet, or none recorded, stays at 5 minutes). The cheapest plan
wins; ties go to the cheaper write. The 1-hour write costs more on every token it writes, so it
pays only where a pause is likely and the prefix it keeps is large beside what the call writes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tidyctx._time import parse_ts
from tidyctx.cachesim import TTL_SECONDS
from tidyctx.transforms._order import ConversationMemory

__all__ = ["Pauses", "TTLDecision", "record_call"]


@dataclass(frozen=True, slots=True)
class TTLDecision:
    """What ``cache(ttl="adaptive")`` chose for one call, and why.

    ``stable`` is the TTL of the tools and system breakpoints, ``rolling`` that of the
    breakpoints in the messages. ``stable_entry`` is the TTL the cache entry of the stable
    prefix has after this call (an entry keeps the TTL it was written with while hits refresh
    it). ``gaps`` counts the gaps between this conversation's calls seen so far, ``pauses`` those
    between 5 minutes and an hour, ``long_pauses`` those over an hour; ``last_gap`` is the one
    before this call (seconds). ``costs`` is each plan's expected cost in USD (this call's write
    plus the next call's reading of the same prefix). :meth:`as_dict` is the small record a
    wrapper puts in its ledger row.
    """

    stable: str
    rolling: str
    reason: str
    gaps: int = 0
    pauses: int = 0
    long_pauses: int = 0
    last_gap: float | None = None
    stable_entry: str | None = None
    costs: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record: ``{"stable": "1h", "rolling": "5m", "reason": ..., ...}``."""
        out = asdict(self)
        out["costs"] = {name: round(usd, 8) for name, usd in self.costs}
        return out


_Call = list[Any]  # [time, TTLDecision | None]


class Pauses(ConversationMemory):
    """The times of each conversation's API calls, and the TTL chosen at each: pass one to
    ``cache(ttl="adaptive", pauses=...)`` and call :meth:`record` once per API call, just before
    the pipeline runs.

    Conversations are told apart by ``key(request)`` (default:
    :func:`~tidyctx.transforms._order.conversation_key`, the tools and the first message). A
    transform that rewrites the first message (``summarize``) starts a new key; give a ``key``
    that reads something the conversation keeps (a session id in ``metadata``) to keep one
    history across it. At most ``max_conversations`` conversations are kept (the one used
    longest ago is forgotten first) and the last ``max_calls`` calls of each.

    ``prior`` is the share of gaps between 5 minutes and an hour to expect before any is seen,
    counted as :data:`PRIOR_WEIGHT` gaps: the observed gaps outweigh it as they come. The
    default, 0, trusts only what is seen: until a conversation pauses it gets exactly the
    5-minute breakpoints, and its first pause is paid for. With a human in the loop, a prior
    such as 0.05 keeps the prefix at 1 hour from the first calls on where it is large beside
    what each call writes (``benchmarks/adaptive_ttl.py`` measures both).

    Deterministic: the same calls at the same times in the same order leave the same state,
    and the same request with the same state gets the same breakpoints. Thread-safe. Picklable
    when ``key`` is None or a module-level function.

    >>> pauses = Pauses()
    >>> req = {"messages": [{"role": "user", "content": "Plan the trip."}]}
    >>> pauses.record(req, at=1_000.0)
    >>> pauses.record(req, at=1_900.0)
    >>> pauses.gaps(req)
    [900.0]
    """

    def __init__(
        self,
        *,
        key: Callable[[Mapping[str, Any]], str] | None = None,
        max_conversations: int = 4096,
        max_calls: int = 512,
        prior: float = 0.0,
    ) -> None:
        if isinstance(prior, bool) or not isinstance(prior, int | float) or not 0 <= prior < 1:
            raise ValueError(f"Pauses(prior={prior!r}): a share of gaps, 0 <= prior < 1")
        for name, value in (("max_conversations", max_conversations), ("max_calls", max_calls)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Pauses({name}=...) takes an int, got {value!r}")
            if value < 1:
                raise ValueError(f"Pauses({name}={value}): must be >= 1")
        if key is not None and not callable(key):
            raise TypeError(f"Pauses(key=...) takes a function of the request, got {key!r}")
        self.key = key
        self.max_conversations = max_conversations
        self.max_calls = max_calls
        self.prior = float(prior)
        self._calls: OrderedDict[str, list[_Call]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        options = []
        if self.key is not None:
            options.append(f"key={getattr(self.key, '__qualname__', self.key)!s}")
        if self.max_conversations != 4096:
            options.append(f"max_conversations={self.max_conversations}")
        if self.max_calls != 512:
            options.append(f"max_calls={self.max_calls}")
        if self.prior:
            options.append(f"prior={self.prior!r}")
        return f"Pauses({', '.join(options)})"

    def __len__(self) -> int:
        """The number of conversations remembered."""
        return len(self._calls)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pauses):
            return NotImplemented
        return (
            self.key == other.key
            and self.max_conversations == other.max_conversations
            and self.max_calls == other.max_calls
            and self.prior == other.prior
            and self._calls == other._calls
        )

    def record(self, request: Mapping[str, Any], at: float | str | datetime) -> None:
        """Note that a call of ``request``'s conversation is sent at ``at`` (epoch seconds, an
        ISO-8601 string or an aware datetime). Recording the same time twice changes nothing; a
        time before the conversation's latest is put in its place."""
        moment = at.timestamp() if isinstance(at, datetime) else parse_ts(at)
        if moment is None:
            raise ValueError(f"Pauses.record(at={at!r}): needs a time")
        if not isinstance(request, Mapping):
            raise TypeError(f"Pauses.record takes a request dict, got {type(request).__name__}")
        key = self.key_of(request)
        with self._lock:
            calls = self._calls.get(key) or []
            times = [c[0] for c in calls]
            if moment not in times:
                calls.append([moment, None])
                calls.sort(key=lambda c: float(c[0]))
                # A decision made after a call that came in late rests on the wrong history.
                at_index = [c[0] for c in calls].index(moment)
                for later in calls[at_index + 1 :]:
                    later[1] = None
                del calls[: max(0, len(calls) - self.max_calls)]
            self._calls[key] = calls
            self._calls.move_to_end(key)
            while len(self._calls) > self.max_conversations:
                self._calls.popitem(last=False)

    def gaps(self, request: Mapping[str, Any]) -> list[float]:
        """Seconds between the recorded calls of ``request``'s conversation, oldest first."""
        with self._lock:
            times = [float(c[0]) for c in self._calls.get(self.key_of(request)) or []]
        return [b - a for a, b in itertools.pairwise(times)]

    def decision(self, request: Mapping[str, Any]) -> TTLDecision | None:
        """The TTL chosen for the latest recorded call of ``request``'s conversation (None if
        ``cache(ttl="adaptive")`` has not run on it yet): what a wrapper writes to its ledger."""
        with self._lock:
            calls = self._calls.get(self.key_of(request)) or []
            return calls[-1][1] if calls else None

    def history(self, key: str) -> tuple[list[float], TTLDecision | None]:
        """The gaps of conversation ``key`` up to its latest call, and the decision made at the
        call before it."""
        with self._lock:
            calls = list(self._calls.get(key) or [])
        times = [float(c[0]) for c in calls]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return gaps, (calls[-2][1] if len(calls) >= 2 else None)

    def remember(self, key: str, decision: TTLDecision) -> None:
        """Keep ``decision`` as the one made at conversation ``key``'s latest call."""
        with self._lock:
            calls = self._calls.get(key)
            if calls:
                calls[-1][1] = decision
                # Only the latest two decisions are ever read (decision(), history()): an older
                # one would be held for up to max_calls calls of each conversation for nothing.
                if len(calls) >= 3:
                    calls[-3][1] = None


# ---------------------------------------------------------------------------- the choice

_SHORT, _LONG = TTL_SECONDS["5m"], TTL_SECONDS["1h"]

PRIOR_WEIGHT = 20
"""How many observed gaps a :class:`Pauses` ``prior`` counts as."""


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token: 5-minute write, 1-hour write, read."""

    write_5m: float
    write_1h: float
    read: float


def choose(
    gaps: list[float],
    previous: TTLDecision | None,
    *,
    stable_tokens: int,
    prefix_tokens: int,
    previous_tokens: int,
    rates: Rates,
    prior: float = 0.0,
) -> TTLDecision:
    """The plan for one call: see the module's docstring.

    ``stable_tokens`` is the prefix up to the end of the tools and system, ``prefix_tokens`` up to
    the rolling breakpoint, ``previous_tokens`` up to where the previous call's rolling
    breakpoint sat; ``gaps`` ends with the gap before this call (empty on the first call);
    ``previous`` is the decision made at the previous call; ``prior`` the share of pauses
    expected before any is seen (see :class:`Pauses`).
    """
    n = len(gaps)
    mid = sum(1 for g in gaps if _SHORT < g <= _LONG)
    long = sum(1 for g in gaps if g > _LONG)
    last = gaps[-1] if gaps else None
    stable = min(stable_tokens, prefix_tokens)
    total = prefix_tokens
    # What the cache still holds: the previous call's rolling entry and the stable entry, each
    # while the gap since the previous call is within its TTL.
    alive = 0
    old_stable_entry: str | None = None
    if previous is not None and last is not None:
        if last <= TTL_SECONDS[previous.rolling]:
            alive = min(previous_tokens, total)
        entry = previous.stable_entry or previous.stable
        if last <= TTL_SECONDS[entry] and stable:
            alive = max(alive, stable)
            old_stable_entry = entry
    weight = PRIOR_WEIGHT if prior else 0
    p_mid = (mid + prior * weight) / (n + 1 + weight)

    plans: list[tuple[str, str, str]] = [("5m", "5m", "5m")]
    if stable:
        plans.append(("1h stable", "1h", "5m"))
    plans.append(("1h", "1h", "1h"))
    costs: list[tuple[float, str, str, str, str]] = []
    for name, s_ttl, r_ttl in plans:
        s_rate = rates.write_1h if s_ttl == "1h" else rates.write_5m
        r_rate = rates.write_1h if r_ttl == "1h" else rates.write_5m
        written_stable = max(0, stable - alive)
        written_rest = total - max(alive, stable)
        now = written_stable * s_rate + written_rest * r_rate
        # An entry that is read, not written, keeps the TTL it was written with.
        entry = s_ttl if written_stable else (old_stable_entry or s_ttl)
        kept = total if r_ttl == "1h" else (stable if entry == "1h" else 0)
        later = p_mid * (rates.write_5m - rates.read) * (total - kept)
        costs.append((now + later, name, s_ttl, r_ttl, entry))
    # The cheapest; ties (to a millionth of a cent) go to the cheaper write, listed first.
    best = min(costs, key=lambda c: round(c[0], 8))
    usd, name, s_ttl, r_ttl, entry = best
    base = costs[0][0]
    if prior:
        why = f"{mid} of {n} gaps between 5 min and 1 h, {prior:.0%} expected"
        if long:
            why += f", {long} over 1 h"
    elif not n:
        why = "first call of the conversation: no gap seen yet"
    elif not mid:
        why = f"no gap between 5 min and 1 h in {n}" + (f" ({long} over 1 h)" if long else "")
    else:
        why = f"{mid} of {n} gaps between 5 min and 1 h" + (f", {long} over 1 h" if long else "")
    if name == "5m":
        if mid:
            why += f"; the 1h write would not pay back on {total - alive:,} tokens written now"
        reason = f"5m: {why}"
    else:
        reason = (
            f"{name}: {why}; expected ${base - usd:.6f} saved per call against all 5m "
            f"({total:,} prefix tokens, {total - alive:,} written now)"
        )
    return TTLDecision(
        stable=s_ttl,
        rolling=r_ttl,
        reason=reason,
        gaps=n,
        pauses=mid,
        long_pauses=long,
        last_gap=last,
        stable_entry=entry if stable else None,
        costs=tuple((c[1], c[0]) for c in costs),
    )


# ---------------------------------------------------------------------------- the sender's side


def _adaptive(transforms: Sequence[Any]) -> list[Pauses]:
    """The :class:`Pauses` of each ``cache(ttl="adaptive", pauses=...)`` in ``transforms``,
    each once."""
    found: list[Pauses] = []
    for t in transforms:
        pauses = getattr(t, "pauses", None)
        if not isinstance(pauses, Pauses) or getattr(t, "ttl", None) != "adaptive":
            continue
        if not any(p is pauses for p in found):
            found.append(pauses)
    return found


def record_call(
    transforms: Sequence[Any], request: Mapping[str, Any], at: float | None = None
) -> Callable[[], TTLDecision | None]:
    """What a sender (the client wrapper, the proxy) does for ``cache(ttl="adaptive")``: note
    that ``request`` is sent now (``at``, default the clock) in the :class:`Pauses` of every
    adaptive cache of ``transforms``, before they run. Returns a function that, once they have
    run, gives the TTL decision made for this call (None: no adaptive cache, or it made none),
    for the ledger row."""
    found = _adaptive(transforms)
    if not found:
        return lambda: None
    moment = time.time() if at is None else at
    for pauses in found:
        pauses.record(request, at=moment)
    return lambda: found[0].decision(request)
