"""An offline model of Anthropic's prompt caching, and why a request missed.

:func:`simulate` takes a sequence of requests (and, optionally, when each was sent) and
returns for each the ``usage`` the API would report: tokens read from the cache, written to
it (5-minute and 1-hour), and uncached, in the shape of a real response's ``usage``, so
:func:`tidyctx.pricing.cost` prices it. :class:`CacheModel` does the same one call at a time
(the local Messages API server uses it), and each :class:`CacheCall` says, for a miss, where
the prefix diverged and why.

The rules, each from Anthropic's prompt-caching page,
https://platform.claude.com/docs/en/build-with-claude/prompt-caching:

- the prefix is built tools → system → messages; a cache entry is the whole prefix up to and
  including a block that carries ``cache_control`` (a breakpoint); a hit needs an identical
  prefix; entries are written only at breakpoints;
- from each breakpoint the API walks back one block at a time, 20 positions at most (the
  breakpoint included), looking for an entry an earlier request wrote;
- below the model's minimum cacheable length a breakpoint caches nothing;
- entries live 5 minutes (``ttl: "1h"``: an hour), refreshed at no cost on each hit;
- at most 4 breakpoints; the top-level ``cache_control`` (automatic caching) marks the last
  cacheable block and takes one of them;
- mixed TTLs are billed as read up to the hit, 1h write up to the last 1h breakpoint, 5m write
  up to the last breakpoint;
- a different model has its own cache; changed tools invalidate everything; ``tool_choice``,
  thinking settings and adding or removing images invalidate the messages; ``speed`` the
  system and messages;
- on models that drop earlier thinking blocks (:func:`tidyctx.tokens.keeps_prior_thinking`),
  those blocks leave the prompt when a user turn opens with text, and the cache after them
  goes with them.

>>> req = {"model": "claude-sonnet-4-6", "max_tokens": 8,
...        "system": [{"type": "text", "text": "rules " * 1500,
...                    "cache_control": {"type": "ephemeral"}}],
...        "messages": [{"role": "user", "content": "hi"}]}
>>> first, second = simulate([req, req])
>>> first["cache_creation_input_tokens"] > 1000, second["cache_read_input_tokens"] > 1000
(True, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidyctx import pricing
from tidyctx._memo import content_key, memoized, text_size
from tidyctx._request import (
    CACHEABLE_NEVER,
    MAX_BREAKPOINTS,
    ValidationError,
    cache_content,
    can_carry_marker,
    canonical_json,
    is_deferred_tool,
    iter_blocks,
    to_request,
)
from tidyctx._time import parse_ts
from tidyctx.tokens import (
    MESSAGE_OVERHEAD,
    LocalCounter,
    keeps_prior_thinking,
    thinking_cutoff,
    tool_prompt_tokens,
)

__all__ = [
    "LOOKBACK",
    "TTL_SECONDS",
    "CacheCall",
    "CacheModel",
    "Layout",
    "Miss",
    "calls",
    "floor",
    "layout",
    "simulate",
]

LOOKBACK = 20
"""Positions the API checks from a breakpoint backwards, the breakpoint included (prompt-caching
page: the lookback covers 20 blocks)."""

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
"""Cache lifetimes (prompt-caching page: 5 minutes, or 1 hour with ``ttl: "1h"``), refreshed on
each hit."""

DEFAULT_MIN_CACHEABLE = 1024
"""Minimum cacheable length for a model tidyctx has no price row for (the prompt-caching page
lists 1,024 for most models)."""


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.digest()


def _block_digest(body: Any) -> bytes:
    """The digest of a block's canonical JSON, memoized by its content (:mod:`tidyctx._memo`):
    a conversation's old blocks are serialized and hashed once, not on every turn."""

    def digest() -> bytes:
        return hashlib.blake2b(canonical_json(body), digest_size=16).digest()

    try:
        key = content_key(body)
    except TypeError:
        return digest()
    return memoized("layout", key, digest, lambda _: text_size(key) + 16)


def _has_marker(block: Any) -> dict[str, Any] | None:
    if not isinstance(block, Mapping):
        return None
    marker = block.get("cache_control")
    if isinstance(marker, Mapping):
        return dict(marker)
    if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
        # A marker on a block inside a tool_result: the entry ends within this block; treat
        # it as ending at the tool_result (one position in the lookback either way).
        for inner in reversed(block["content"]):
            if isinstance(inner, Mapping) and isinstance(inner.get("cache_control"), Mapping):
                return dict(inner["cache_control"])
    return None


def _count_images(request: Mapping[str, Any]) -> int:
    count = 0
    for ref in iter_blocks(request):
        b = ref.block
        if not isinstance(b, Mapping):
            continue
        if b.get("type") == "image":
            count += 1
        elif b.get("type") == "tool_result" and isinstance(b.get("content"), list):
            count += sum(
                1 for i in b["content"] if isinstance(i, Mapping) and i.get("type") == "image"
            )
    return count


@dataclass(frozen=True, slots=True)
class Layout:
    """A request as the cache sees it: blocks in prefix order with tokens and prefix keys."""

    model: str
    paths: tuple[str, ...]
    sections: tuple[str, ...]
    tokens: tuple[int, ...]
    cum: tuple[int, ...]
    """Tokens of the prefix up to and including each position."""
    keys: tuple[bytes, ...]
    """Hash of the prefix up to and including each position (what a cache entry is keyed by)."""
    breakpoints: tuple[tuple[int, str], ...]
    """(position, ttl) of every breakpoint, in order; automatic caching resolved."""
    total: int
    """All input tokens of the request."""
    content: tuple[Any, ...] = field(repr=False, default=())
    """Each position's block without markers, to show what changed."""
    seeds: tuple[tuple[str, Any], ...] = field(repr=False, default=())
    """Settings mixed into the prefix at section starts (model, tool_choice, ...)."""

    def position_of(self, path: str) -> int:
        return self.paths.index(path)


def layout(request: Any, counter: LocalCounter | None = None, model: str | None = None) -> Layout:
    """Lay ``request`` out as the cache sees it.

    ``counter`` counts tokens (default: a LocalCounter for the model); ``model`` overrides the
    request's model for counting, the minimum length and the cache namespace.

    A conversation that grew since an earlier call is laid out from that call's messages on
    (:mod:`tidyctx._layout_fold`); the result is the same as laying it out whole.
    """
    if type(counter) is LocalCounter or counter is None:
        from tidyctx._layout_fold import folded

        lay = folded(request, counter, model)
        if lay is not None:
            return lay
    return _layout_whole(request, counter, model)


def _layout_whole(
    request: Any, counter: LocalCounter | None = None, model: str | None = None
) -> Layout:
    req, _ = to_request(request)
    name = str(model or req.get("model") or "")
    counter = counter or LocalCounter(name or None)
    per_block = counter.count_blocks({**req, "model": name} if name else req)
    refs = list(iter_blocks(req))
    messages = req.get("messages") if isinstance(req.get("messages"), list) else []
    assert isinstance(messages, list)
    drop_thinking = not keeps_prior_thinking(name)
    drop_before = thinking_cutoff(messages) if drop_thinking else 0

    # Settings the cache keys depend on, mixed in where their section starts (prompt-caching
    # page, "What invalidates the cache"): the model (its own cache), speed (system + messages),
    # and tool_choice, thinking and the number of images (messages).
    thinking = req.get("thinking")
    seeds = {
        "tools": (("model", name),),
        "system": (("speed", req.get("speed")),),
        "messages": (
            ("tool_choice", req.get("tool_choice")),
            ("thinking", thinking if isinstance(thinking, Mapping) else None),
            ("images", _count_images(req)),
        ),
    }
    key = b""
    section = ""
    paths: list[str] = []
    sections: list[str] = []
    tokens: list[int] = []
    keys: list[bytes] = []
    content: list[Any] = []
    blocks: list[Any] = []  # the blocks themselves, by position
    marks: list[tuple[int, str]] = []
    seed_log: list[tuple[str, Any]] = []
    last_message = -1
    pending = 0  # role overhead of a message whose blocks were all stripped
    tool_prompt = tool_prompt_tokens(name, req.get("tool_choice")) if req.get("tools") else 0
    for ref, (_, n) in zip(refs, per_block, strict=True):
        block = ref.block
        if ref.section == "tools" and is_deferred_tool(block):
            continue  # not rendered into the prompt: not part of any prefix
        if (
            ref.message is not None
            and ref.message < drop_before
            and isinstance(block, Mapping)
            and block.get("type") in CACHEABLE_NEVER
        ):
            if ref.message != last_message:  # its role overhead stays with the message
                pending, last_message = pending + MESSAGE_OVERHEAD, ref.message
            continue  # stripped from the prompt by the API: not part of any prefix
        while section != ref.section:
            section = {"": "tools", "tools": "system", "system": "messages"}[section]
            for seed in seeds[section]:
                seed_log.append(seed)
                key = _digest(key, canonical_json(list(seed)))
        if ref.message is not None and ref.message != last_message:
            n += MESSAGE_OVERHEAD
            last_message = ref.message
        n, pending = n + pending, 0
        if not paths:
            n += tool_prompt
        body = cache_content(block)
        position_key = key
        if drop_thinking and isinstance(block, Mapping) and block.get("type") in CACHEABLE_NEVER:
            # On models that strip earlier thinking, thinking does not enter the cache key.
            # Observed in the recorded Sonnet 4.5 run (cc-mclaude-ff59cfd2, turns 93, 126, 182):
            # when a user turn strips the last turn's thinking, the API still reads the whole
            # remaining prompt from the entry the previous call wrote with it in place. No
            # entry ends on the thinking itself, so its position gets a key nothing matches.
            position_key = _digest(key, b"thinking", str(len(paths)).encode())
        else:
            key = position_key = _digest(key, _block_digest(body))
        marker = _has_marker(block)
        if marker is not None:
            marks.append((len(paths), str(marker.get("ttl", "5m"))))
        paths.append(ref.path)
        sections.append(ref.section)
        tokens.append(n)
        keys.append(position_key)
        content.append(body)
        blocks.append(block)
    auto = req.get("cache_control")
    if isinstance(auto, Mapping):
        ttl = str(auto.get("ttl", "5m"))
        pos = next(
            (p for p in range(len(paths) - 1, -1, -1) if can_carry_marker(blocks[p])),
            None,
        )
        if pos is not None:
            existing = dict(marks).get(pos)
            if existing is None:
                if len(marks) >= MAX_BREAKPOINTS:
                    raise ValidationError(
                        "cache_control",
                        f"automatic caching needs a free breakpoint slot, and {len(marks)} "
                        "blocks already carry cache_control",
                        "Remove one explicit marker or the top-level cache_control",
                    )
                marks.append((pos, ttl))
            elif existing != ttl:
                raise ValidationError(
                    "cache_control",
                    f"automatic caching ({ttl}) lands on {paths[pos]}, which already has a "
                    f"{existing} marker",
                    "Use the same ttl, or drop one of the two",
                )
    cum: list[int] = []
    running = 0
    for n in tokens:
        running += n
        cum.append(running)
    total = counter.count_request(req) if not paths else running
    return Layout(
        model=name,
        paths=tuple(paths),
        sections=tuple(sections),
        tokens=tuple(tokens),
        cum=tuple(cum),
        keys=tuple(keys),
        breakpoints=tuple(sorted(marks)),
        total=total,
        content=tuple(content),
        seeds=tuple(seed_log),
    )


@dataclass(frozen=True, slots=True)
class Miss:
    """Why a request read less from the cache than the previous one left there.

    ``type`` uses the API's own words (``diagnostics.cache_miss_reason.type``):
    ``model_changed``, ``system_changed``, ``tools_changed``, ``messages_changed`` or
    ``unavailable`` (a setting such as tool_choice or thinking changed); None when the prefix
    did not change and the cause lies elsewhere. ``cause`` says what tidyctx sees:
    ``changed bytes``, ``ttl expired after N s``, ``under the minimum length``, ``beyond the
    lookback``, ``no breakpoint``.
    """

    type: str | None
    cause: str
    path: str | None
    """The first block that diverged (``system[1]``, ``tools[3]``, ``messages[4].content[0]``),
    or the setting (``model``, ``tool_choice``...)."""
    missed_tokens: int
    """Tokens the previous request left cached that this one did not read."""
    before: str = ""
    """The previous bytes around the change."""
    after: str = ""
    """This request's bytes around the change."""

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        text = f"{self.type or 'miss'}{where}: {self.cause}, {self.missed_tokens:,} tokens missed"
        if self.before or self.after:
            text += f"\n  was: {self.before}\n  now: {self.after}"
        return text


@dataclass(frozen=True, slots=True)
class CacheCall:
    """One simulated request: its usage and, if it missed, why."""

    usage: dict[str, Any]
    read_to: str | None
    """The last block read from the cache (None: nothing read)."""
    written_to: str | None
    """The last block written to the cache (None: nothing written)."""
    miss: Miss | None
    layout: Layout = field(repr=False)

    @property
    def input_total(self) -> int:
        u = self.usage
        return int(
            u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
        )


@dataclass(slots=True)
class _Entry:
    expires: float
    ttl: str
    touched: float


def _same_place(a: str, b: str) -> bool:
    """Do two paths name the same block? A string content (``messages[2].content``) is the one
    text block of the same message in block form (``messages[2].content[0]``)."""
    return a == b or a + "[0]" == b or b + "[0]" == a


def _around(before: Any, after: Any, width: int = 40) -> tuple[str, str]:
    a = canonical_json(before).decode("utf-8") if before is not None else ""
    b = canonical_json(after).decode("utf-8") if after is not None else ""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    start = max(0, i - width)

    def cut(s: str) -> str:
        piece = s[start : i + width]
        return ("…" if start else "") + piece + ("…" if i + width < len(s) else "")

    return cut(a), cut(b)


class CacheModel:
    """The cache of one workspace, fed one request at a time.

    ``call(request, ts)`` returns the :class:`CacheCall` the API would bill. Time is in seconds
    (any epoch); when ``ts`` is None the call happens at the time of the previous one, so no
    entry expires. ``model`` overrides every request's model (for replaying a run as another
    model); ``counter`` overrides token counting; ``min_cacheable`` overrides the model's
    minimum cacheable length.
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        counter: LocalCounter | None = None,
        min_cacheable: int | None = None,
    ) -> None:
        self.model = model
        self.counter = counter
        self.min_cacheable = min_cacheable
        self._entries: dict[bytes, _Entry] = {}
        self._now = 0.0
        self._timed = False
        self._previous: tuple[Layout, int, float] | None = None  # layout, cached pos, time

    def _minimum(self, model: str) -> int:
        if self.min_cacheable is not None:
            return self.min_cacheable
        try:
            return pricing.lookup(model).min_cacheable
        except pricing.UnknownModelError:
            return DEFAULT_MIN_CACHEABLE

    def _live(self, key: bytes, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires < now:
            del self._entries[key]
            return None
        return entry

    def call(self, request: Any, ts: float | None = None) -> CacheCall:
        if ts is not None:
            if not self._timed:
                # The first real time: calls before it had none, so no time passed for them.
                for old in self._entries.values():
                    old.expires += ts - self._now
                    old.touched = ts
                self._now, self._timed = ts, True
            if ts < self._now:
                raise ValueError(f"timestamps must not go backwards ({ts} after {self._now})")
            self._now = ts
        now = self._now
        lay = layout(request, self.counter, self.model)
        minimum = self._minimum(lay.model)
        eligible = [(p, ttl) for p, ttl in lay.breakpoints if lay.cum[p] >= minimum]

        read = -1
        for p, _ in eligible:
            for k in range(p, max(p - LOOKBACK, -1), -1):
                if k > read and self._live(lay.keys[k], now) is not None:
                    read = k
                    break
        if read >= 0:
            # A hit reads the whole prefix, so every entry on it counts as used: shorter
            # entries (the system prompt's) stay alive while longer ones are hit. The recorded
            # Claude Code runs bear this out: their system-prompt entry outlives 5 minutes of
            # hits further down.
            for k in range(read + 1):
                entry = self._live(lay.keys[k], now)
                if entry is not None:
                    entry.expires = now + TTL_SECONDS[entry.ttl]
                    entry.touched = now

        written = [(p, ttl) for p, ttl in eligible if p > read]
        for p, ttl in written:
            self._entries[lay.keys[p]] = _Entry(now + TTL_SECONDS.get(ttl, 300.0), ttl, now)
        base = lay.cum[read] if read >= 0 else 0
        write_1h = write_5m = 0
        end = base
        last_1h = max((p for p, ttl in written if ttl == "1h"), default=None)
        if last_1h is not None:
            write_1h = lay.cum[last_1h] - base
            end = lay.cum[last_1h]
        if written:
            last = written[-1][0]
            write_5m = max(0, lay.cum[last] - end)
            end = max(end, lay.cum[last])
        usage = {
            "input_tokens": lay.total - end,
            "cache_creation_input_tokens": write_1h + write_5m,
            "cache_read_input_tokens": base,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write_5m,
                "ephemeral_1h_input_tokens": write_1h,
            },
            "output_tokens": 0,
        }
        cached_to = max([read, *(p for p, _ in written)])
        miss = self._explain(lay, read, eligible, now, minimum)
        self._previous = (lay, cached_to, now)
        return CacheCall(
            usage=usage,
            read_to=lay.paths[read] if read >= 0 else None,
            written_to=lay.paths[written[-1][0]] if written else None,
            miss=miss,
            layout=lay,
        )

    def _explain(
        self,
        lay: Layout,
        read: int,
        eligible: list[tuple[int, str]],
        now: float,
        minimum: int,
    ) -> Miss | None:
        if self._previous is None:
            return None
        prev, prev_cached, prev_time = self._previous
        if prev_cached < 0:
            return None
        if read >= 0 and prev.keys[prev_cached] in lay.keys[: read + 1]:
            return None  # read all the previous call left (positions may have shifted)
        shared = 0
        limit = min(len(prev.keys), len(lay.keys))
        while shared < limit and prev.keys[shared] == lay.keys[shared]:
            shared += 1
        # Positions 0..shared-1 are identical in both requests.
        got = lay.cum[read] if read >= 0 else 0
        if prev_cached <= shared - 1:
            if got >= prev.cum[prev_cached]:
                return None
            missed = prev.cum[prev_cached] - got
            return Miss(
                None, self._cause(lay, prev_cached, eligible, now, prev_time, minimum), None, missed
            )
        # The content diverged before the end of what was cached.
        missed = prev.cum[prev_cached] - got
        if missed <= 0:
            return None
        kind, path, before, after = self._divergence(prev, lay, shared)
        return Miss(
            kind,
            "changed bytes" if kind != "unavailable" else f"{path} changed",
            path,
            missed,
            before,
            after,
        )

    def _cause(
        self,
        lay: Layout,
        cached: int,
        eligible: list[tuple[int, str]],
        now: float,
        prev_time: float,
        minimum: int,
    ) -> str:
        if not lay.breakpoints:
            return "no breakpoint"
        if not eligible:
            longest = lay.cum[lay.breakpoints[-1][0]]
            return f"under the minimum length ({longest:,} < {minimum:,} tokens)"
        if all(p - cached >= LOOKBACK or p < cached for p, _ in eligible):
            gap = min((p - cached for p, _ in eligible if p >= cached), default=0)
            return (
                f"beyond the lookback (the nearest breakpoint is {gap} blocks after the cached "
                f"prefix; the API looks back {LOOKBACK})"
            )
        return f"ttl expired after {now - prev_time:,.0f} s"

    def _divergence(self, prev: Layout, lay: Layout, shared: int) -> tuple[str, str, str, str]:
        # Which seeds differ? They are mixed in at section starts.
        prev_seeds, seeds = dict(prev.seeds), dict(lay.seeds)
        if prev.model != lay.model:
            return "model_changed", "model", prev.model, lay.model
        if shared < len(prev.paths) and shared < len(lay.paths):
            section = lay.sections[shared]
            if section != prev.sections[shared]:
                section = min(
                    section, prev.sections[shared], key=("tools", "system", "messages").index
                )
            if section == "messages" and _same_place(prev.paths[shared], lay.paths[shared]):
                for name in ("tool_choice", "thinking"):
                    if prev_seeds.get(name) != seeds.get(name):
                        b, a = _around(prev_seeds.get(name), seeds.get(name))
                        return "unavailable", name, b, a
                if prev_seeds.get("images") != seeds.get("images"):
                    return (
                        "messages_changed",
                        "images",
                        f"{prev_seeds.get('images')} images",
                        f"{seeds.get('images')} images",
                    )
            if section == "system" and prev_seeds.get("speed") != seeds.get("speed"):
                return (
                    "model_changed",
                    "speed",
                    str(prev_seeds.get("speed")),
                    str(seeds.get("speed")),
                )
            path = lay.paths[shared] if lay.sections[shared] == section else prev.paths[shared]
            b, a = _around(prev.content[shared], lay.content[shared])
            return f"{section}_changed", path, b, a
        # One is a prefix of the other: blocks were removed at the end.
        path = prev.paths[shared] if shared < len(prev.paths) else lay.paths[-1]
        section = prev.sections[shared] if shared < len(prev.sections) else lay.sections[-1]
        return f"{section}_changed", path, "", "(removed)"

    def usage_for(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The usage fields for ``request`` at the current time: a LocalServer hook."""
        usage = self.call(request).usage
        return {k: v for k, v in usage.items() if k != "output_tokens"}


def simulate(
    requests: Iterable[Any],
    timestamps: Sequence[float | str | None] | None = None,
    *,
    model: str | None = None,
    counter: LocalCounter | None = None,
    output_tokens: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Per request, the usage the API would report: cache reads, writes (5m/1h), uncached.

    ``timestamps`` (epoch seconds or ISO-8601 strings, one per request) drive the TTLs; without
    them no entry expires. ``output_tokens`` fills each usage's ``output_tokens`` (else 0).
    See :func:`calls` for the misses and their causes.
    """
    return [
        c.usage
        for c in calls(
            requests, timestamps, model=model, counter=counter, output_tokens=output_tokens
        )
    ]


def calls(
    requests: Iterable[Any],
    timestamps: Sequence[float | str | None] | None = None,
    *,
    model: str | None = None,
    counter: LocalCounter | None = None,
    output_tokens: Sequence[int] | None = None,
) -> list[CacheCall]:
    """Like :func:`simulate`, with each call's read/write boundaries and miss explanation."""
    cache = CacheModel(model=model, counter=counter)
    out: list[CacheCall] = []
    for i, request in enumerate(requests):
        ts = parse_ts(timestamps[i]) if timestamps is not None and i < len(timestamps) else None
        call = cache.call(request, ts)
        if output_tokens is not None and i < len(output_tokens):
            call.usage["output_tokens"] = int(output_tokens[i])
        out.append(call)
    return out


def floor(
    requests: Iterable[Any],
    *,
    model: str | None = None,
    counter: LocalCounter | None = None,
) -> list[dict[str, Any]]:
    """The caching floor: per request, usage as if a perfect cache served it.

    Every distinct prefix token is written once (at the 5-minute price) and read by every
    later request that shares it; nothing expires, no minimum length, no lookback. A strategy
    that only places breakpoints cannot beat it; one that trims or summarizes can (the
    benchmarks report every cost as a ratio to this floor).
    """
    seen: set[bytes] = set()
    out: list[dict[str, Any]] = []
    for request in requests:
        lay = layout(request, counter, model)
        shared = -1
        for k in range(len(lay.keys) - 1, -1, -1):
            if lay.keys[k] in seen:
                shared = k
                break
        read = lay.cum[shared] if shared >= 0 else 0
        seen.update(lay.keys)
        out.append(
            {
                "input_tokens": 0,
                "cache_creation_input_tokens": lay.total - read,
                "cache_read_input_tokens": read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": lay.total - read,
                    "ephemeral_1h_input_tokens": 0,
                },
                "output_tokens": 0,
            }
        )
    return out
