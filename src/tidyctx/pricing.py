"""Model prices, prompt-cache multipliers and the batch discount, and the cost of a response.

``cost(usage, model)`` prices the ``usage`` of a real Messages API response (a dict, the SDK's
``anthropic.types.Usage``, or any object with the same attributes) at the documented per-model
rates, split by token class:

>>> from tidyctx.pricing import cost
>>> usage = {
...     "input_tokens": 1_000,
...     "cache_creation_input_tokens": 2_500,
...     "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 500},
...     "cache_read_input_tokens": 10_000,
...     "output_tokens": 300,
... }
>>> c = cost(usage, "claude-sonnet-4-6")
>>> print(c)
$0.0210 (input $0.0030, write $0.0105, read $0.0030, output $0.0045)
>>> round(cost(usage, "claude-sonnet-4-6", batch=True).total, 6)
0.0105

Rates are USD per million tokens, from https://platform.claude.com/docs/en/about-claude/pricing
unless the table says otherwise. ``cache_creation`` splits the cache writes by TTL; when it is
missing or ``None`` every write is priced as a 5-minute write (the default TTL), and when its
parts add up to less than ``cache_creation_input_tokens`` the remainder is priced as 5-minute
writes too. ``batch=True`` applies the Message Batches discount (50%) to every token class; it
stacks with the cache multipliers
(https://platform.claude.com/docs/en/build-with-claude/batch-processing).

Modelled: base input, 5-minute and 1-hour cache writes, cache reads, output, the batch discount,
and Claude Haiku 5.5's prompt-length tier (prompt = input + cache writes + cache reads over
100,000 tokens: every token of the request at 5x, per its model page).

Not modelled (priced at the standard rate; add your own correction if you use them):

- the long-context premium of Sonnet 4.5 / Sonnet 4 with the ``context-1m-2025-08-07`` beta
  header (> 200K input tokens: $6 in / $22.50 out on the whole request). The header is not
  visible in ``usage``, and that beta is reported to have ended;
- ``inference_geo: "us"`` (1.1x on every token class, Opus 4.6 and later) and fast mode
  (``speed: "fast"``, e.g. Opus 4.6 at $30 / $150), although ``usage`` reports both;
- server tools billed per use (``usage.server_tool_use``, e.g. web search);
- ``usage.iterations`` (server-side compaction): the top-level fields count the message
  iteration only, so price each entry of ``iterations`` with ``cost()`` to include the
  compaction step;
- price changes over time: one price per model, the latest documented one (see the table).

An unknown model raises :class:`UnknownModelError`; it never prices at zero. Add or override a
model at run time with ``register(ModelPrice(...))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "USAGE_FIELDS",
    "Cost",
    "ModelPrice",
    "UnknownModelError",
    "cost",
    "lookup",
    "models",
    "register",
    "usage_dict",
]

# Sources. The comments in the table name the page each value comes from:
#   pricing  https://platform.claude.com/docs/en/about-claude/pricing
#   models   https://platform.claude.com/docs/en/about-claude/models/overview and each model's
#            own page under https://platform.claude.com/docs/en/models/
#   caching  https://platform.claude.com/docs/en/build-with-claude/prompt-caching (its table of
#            minimum cacheable prompt lengths)
#   batches  https://platform.claude.com/docs/en/build-with-claude/batch-processing
#   SDK      https://github.com/anthropics/anthropic-sdk-python (anthropic/types/model_param.py
#            lists the model ids, anthropic/types/usage.py the usage fields)
# "third-party" = only quoted by third-party pages; "unconfirmed" = on no Anthropic page found;
# "inferred" = not documented for this model, taken from its nearest sibling.
#
# The less certain values:
# - Fable 5.1 / Mythos 5.1 cache read $0.25: in the pricing table.
# - Opus 5.5 4/5/8/0.20/20, Sonnet 5 / Sonnet 5.5 2/2.50/4/0.20/10 and Opus 5 5/6.25/10/0.50/25:
#   on their model pages.
# - claude-mythos-5 (the Fable 5 migration guide) and claude-mythos-5-1 (SDK model_param.py)
#   are the ids; the pricing table lists Mythos 5 / 5.1 at Fable 5 / 5.1 prices.
# - Haiku 5.5: its model page gives $0.10 in, $0.50 out, $0.125 5m write, $0.20 1h write up to
#   a 100,000-token prompt and 5x above it; its $0.01 cache read is third-party.
# - Sonnet 5.5 cache read: the model page says $0.20, kept here; third-party changelogs report
#   $0.10 from 2026-10-07.
# - Minimum cacheable lengths: Anthropic's own page confirms Opus 4.8 (1,024, "What's new in
#   Opus 4.8"); the rest of the current caching table (512 / 1,024 / 2,048 / 4,096) is quoted
#   identically by third parties. An earlier version of that table had Opus 4.7 at 4,096 and
#   Sonnet 4.6 at 2,048; the current one wins. 512 for Opus 5.5 and Haiku 5.5: unconfirmed.
# - 200K context for the 3.x models: unconfirmed (third-party model lists only).

_MTOK = 1_000_000
_K200 = 200_000
_M1 = 1_000_000

USAGE_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "output_tokens",
)
"""Keys of :func:`usage_dict`, in order."""

_TOP_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "cache_creation",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
)
_CC_FIELDS = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


def _check_rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"ModelPrice.{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"ModelPrice.{name} must be a finite number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPrice:
    """Prices of one model, in USD per million tokens, and its caching limits.

    The cache rates are stored explicitly: they are normally 1.25x (5-minute write), 2x (1-hour
    write) and 0.1x (read) of ``input``, but newer models differ (e.g. Opus 5.5 reads at 0.05x).
    """

    model: str
    """Canonical API id (the dated id where one exists)."""
    aliases: tuple[str, ...] = ()
    """Other ids that name the same model: the undated alias, older dated ids."""
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    min_cacheable: int
    """Minimum cacheable prompt length in tokens: a shorter prefix is silently not cached."""
    context_window: int
    """Context window in tokens."""
    batch_discount: float = 0.5
    """Price factor of the Message Batches API, applied to every token class."""
    long_prompt_threshold: int | None = None
    """If set, a request whose prompt (input + cache writes + cache reads) is longer than this
    many tokens pays ``long_prompt_factor`` times every rate, output included."""
    long_prompt_factor: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"ModelPrice.model must be a non-empty string, got {self.model!r}")
        object.__setattr__(self, "model", self.model.strip())
        if isinstance(self.aliases, str) or not all(isinstance(a, str) for a in self.aliases):
            raise TypeError(f"ModelPrice.aliases must be a tuple of str, got {self.aliases!r}")
        object.__setattr__(self, "aliases", tuple(a.strip() for a in self.aliases))
        for name in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read"):
            object.__setattr__(self, name, _check_rate(name, getattr(self, name)))
        for name in ("min_cacheable", "context_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ModelPrice.{name} must be an int >= 0, got {value!r}")
        discount = _check_rate("batch_discount", self.batch_discount)
        if not 0 < discount <= 1:
            raise ValueError(f"ModelPrice.batch_discount must be in (0, 1], got {discount!r}")
        object.__setattr__(self, "batch_discount", discount)
        threshold = self.long_prompt_threshold
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
        ):
            raise ValueError(
                f"ModelPrice.long_prompt_threshold must be None or an int >= 0, got {threshold!r}"
            )
        factor = _check_rate("long_prompt_factor", self.long_prompt_factor)
        object.__setattr__(self, "long_prompt_factor", factor)

    @property
    def ids(self) -> tuple[str, ...]:
        """The canonical id followed by the aliases."""
        return (self.model, *self.aliases)

    def prompt_factor(self, prompt_tokens: int) -> float:
        """Rate factor for a request with this many prompt tokens (1.0 below the tier)."""
        if self.long_prompt_threshold is not None and prompt_tokens > self.long_prompt_threshold:
            return self.long_prompt_factor
        return 1.0


class UnknownModelError(ValueError):
    """The model id is in no price table; nothing is priced at zero."""

    def __init__(self, model: str, known: list[str]) -> None:
        self.model = model
        self.known = known
        super().__init__(
            f"unknown model {model!r}: no price is known for it. Known models: "
            f"{', '.join(known)}. To price it, register it first: "
            f"tidyctx.pricing.register(ModelPrice(model={model!r}, input=..., output=..., "
            "cache_write_5m=..., cache_write_1h=..., cache_read=..., min_cacheable=..., "
            "context_window=...)) with USD-per-million-token rates from "
            "https://platform.claude.com/docs/en/about-claude/pricing"
        )


# fmt: off
_TABLE: tuple[ModelPrice, ...] = (
    # ---- newest (model pages, pricing; ids: SDK model_param.py; 1M context: models) ---------
    ModelPrice(
        model="claude-fable-5-1",
        input=10, cache_write_5m=12.50, cache_write_1h=20, output=50,  # pricing, models
        cache_read=0.25,  # pricing (0.025x input: a footnote of its table)
        min_cacheable=512,  # inferred from Fable 5 (not on the caching page): unconfirmed
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-mythos-5-1",  # id: SDK; limited availability (pricing)
        input=10, cache_write_5m=12.50, cache_write_1h=20, output=50,  # pricing (= Fable 5.1)
        cache_read=0.25,  # pricing
        min_cacheable=512,  # inferred from Mythos 5: unconfirmed
        context_window=_M1,  # models (shares Fable's specifications)
    ),
    ModelPrice(
        model="claude-fable-5",
        # pricing, models
        input=10, cache_write_5m=12.50, cache_write_1h=20, cache_read=1, output=50,
        min_cacheable=512,  # caching, current version (third-party quotes agree)
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-mythos-5",  # id: models (Fable 5 migration guide), SDK
        # pricing, models
        input=10, cache_write_5m=12.50, cache_write_1h=20, cache_read=1, output=50,
        min_cacheable=512,  # caching, current version (third-party quotes agree)
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-opus-5-5",
        input=4, cache_write_5m=5, cache_write_1h=8, output=20,  # models
        cache_read=0.20,  # models: 0.05x input, not 0.1x
        min_cacheable=512,  # caching, current version: unconfirmed
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-opus-5",
        # models, pricing
        input=5, cache_write_5m=6.25, cache_write_1h=10, cache_read=0.50, output=25,
        min_cacheable=512,  # caching, current version (third-party quotes agree)
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-sonnet-5-5",
        input=2, cache_write_5m=2.50, cache_write_1h=4, output=10,  # models
        # models: $0.20. Third-party changelogs report $0.10 from 2026-10-07 (not confirmed);
        # register() an override if your bill shows $0.10.
        cache_read=0.20,
        min_cacheable=1_024,  # inferred from Sonnet 5 (not on the caching page): unconfirmed
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-sonnet-5",
        # models, pricing. One version announced $3/$15 from 2026-09-01; later ones keep $2/$10.
        input=2, cache_write_5m=2.50, cache_write_1h=4, cache_read=0.20, output=10,
        min_cacheable=1_024,  # caching, current version (third-party quotes agree)
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-haiku-5-5",
        # models: rates for prompts up to 100,000 tokens ("from $0.10 / $0.50").
        input=0.10, cache_write_5m=0.125, cache_write_1h=0.20, output=0.50,  # models
        cache_read=0.01,  # third-party guides only (not found on the model page)
        long_prompt_threshold=100_000, long_prompt_factor=5.0,  # models: 5x over 100K
        min_cacheable=512,  # caching, current version: unconfirmed
        context_window=_M1,  # models
    ),
    # ---- Claude 4.x (pricing, caching; ids and contexts: models) ------------------------------
    ModelPrice(
        model="claude-opus-4-8",
        input=5, cache_write_5m=6.25, cache_write_1h=10, cache_read=0.50, output=25,  # pricing
        min_cacheable=1_024,  # caching; "What's new in Opus 4.8" (models) agrees
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-opus-4-7",
        input=5, cache_write_5m=6.25, cache_write_1h=10, cache_read=0.50, output=25,  # pricing
        min_cacheable=2_048,  # caching, current version (an earlier one: 4,096)
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-opus-4-6",
        input=5, cache_write_5m=6.25, cache_write_1h=10, cache_read=0.50, output=25,  # pricing
        min_cacheable=4_096,  # caching (every version)
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-opus-4-5-20251101", aliases=("claude-opus-4-5",),  # models, SDK
        input=5, cache_write_5m=6.25, cache_write_1h=10, cache_read=0.50, output=25,  # pricing
        min_cacheable=4_096,  # caching
        context_window=_K200,  # models
    ),
    ModelPrice(
        model="claude-opus-4-1-20250805", aliases=("claude-opus-4-1",),  # models
        input=15, cache_write_5m=18.75, cache_write_1h=30, cache_read=1.50, output=75,  # pricing
        min_cacheable=1_024,  # caching
        context_window=_K200,  # models
    ),
    ModelPrice(
        model="claude-opus-4-20250514", aliases=("claude-opus-4-0",),  # models
        input=15, cache_write_5m=18.75, cache_write_1h=30, cache_read=1.50, output=75,  # pricing
        min_cacheable=1_024,  # caching
        context_window=_K200,  # models
    ),
    ModelPrice(
        model="claude-sonnet-4-6",
        input=3, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.30, output=15,  # pricing
        min_cacheable=1_024,  # caching, current version (an earlier one: 2,048)
        context_window=_M1,  # models
    ),
    ModelPrice(
        model="claude-sonnet-4-5-20250929", aliases=("claude-sonnet-4-5",),  # models, SDK
        input=3, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.30, output=15,  # pricing
        min_cacheable=1_024,  # caching
        context_window=_K200,  # models (1M beta and its premium: not modelled)
    ),
    ModelPrice(
        model="claude-sonnet-4-20250514", aliases=("claude-sonnet-4-0",),  # models
        input=3, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.30, output=15,  # pricing
        min_cacheable=1_024,  # caching
        context_window=_K200,  # models (1M beta and its premium: not modelled)
    ),
    ModelPrice(
        model="claude-haiku-4-5-20251001", aliases=("claude-haiku-4-5",),  # models, SDK
        input=1, cache_write_5m=1.25, cache_write_1h=2, cache_read=0.10, output=5,  # pricing
        min_cacheable=4_096,  # caching
        context_window=_K200,  # models
    ),
    # ---- Claude 3.x, retired or deprecated but still in logs (pricing, batches; older) ------
    ModelPrice(
        model="claude-3-7-sonnet-20250219", aliases=("claude-3-7-sonnet-latest",),  # models
        input=3, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.30, output=15,  # pricing
        min_cacheable=1_024,  # caching (older versions)
        context_window=_K200,  # unconfirmed
    ),
    ModelPrice(
        # Both dated ids (June and October 2024) share one price; "-latest" alias: third-party.
        model="claude-3-5-sonnet-20241022",
        aliases=("claude-3-5-sonnet-20240620", "claude-3-5-sonnet-latest"),
        # pricing, batches
        input=3, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.30, output=15,
        min_cacheable=1_024,  # caching (older versions)
        context_window=_K200,  # unconfirmed
    ),
    ModelPrice(
        model="claude-3-5-haiku-20241022", aliases=("claude-3-5-haiku-latest",),  # models
        input=0.80, cache_write_5m=1, cache_write_1h=1.60, cache_read=0.08, output=4,  # pricing
        min_cacheable=2_048,  # caching
        context_window=_K200,  # unconfirmed
    ),
    ModelPrice(
        # models; alias: third-party
        model="claude-3-opus-20240229", aliases=("claude-3-opus-latest",),
        input=15, cache_write_5m=18.75, cache_write_1h=30, cache_read=1.50, output=75,  # pricing
        min_cacheable=1_024,  # caching (older versions)
        context_window=_K200,  # unconfirmed
    ),
    ModelPrice(
        model="claude-3-haiku-20240307",  # models
        # pricing
        input=0.25, cache_write_5m=0.30, cache_write_1h=0.50, cache_read=0.03, output=1.25,
        min_cacheable=2_048,  # caching (older versions)
        context_window=_K200,  # unconfirmed
    ),
)
# fmt: on

_MODELS: dict[str, ModelPrice] = {}  # canonical id (lower case) -> price, in registration order
_INDEX: dict[str, ModelPrice] = {}  # every id and alias (lower case) -> price


def _reindex() -> None:
    _INDEX.clear()
    for price in _MODELS.values():  # later registrations win a contested alias
        for name in price.ids:
            _INDEX[name.lower()] = price


def register(price: ModelPrice) -> None:
    """Add a model, or replace the one with the same canonical id, for the rest of the process.

    Its id and aliases then resolve to ``price`` in :func:`lookup` (taking an alias over from an
    earlier model if needed).
    """
    if not isinstance(price, ModelPrice):
        raise TypeError(f"register() takes a ModelPrice, got {type(price).__name__}")
    key = price.model.lower()
    _MODELS.pop(key, None)  # re-registering moves it last, so its aliases win
    _MODELS[key] = price
    _reindex()


def models() -> list[ModelPrice]:
    """Every known model price, in table order (then registration order)."""
    return list(_MODELS.values())


for _price in _TABLE:
    register(_price)
del _price


_BRACKET_SUFFIX = re.compile(r"\[[^\]]*\]$")  # Claude Code: "claude-opus-4-6[1m]"
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z][a-z-]{1,9}\.)?anthropic\.")  # "[us.]anthropic."
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")  # "-v2:0"
_DOTTED_VERSION = re.compile(r"(?<=\d)\.(?=\d)")  # OpenRouter: "claude-sonnet-4.5"


def _candidates(model: str) -> Iterator[str]:
    """Spellings to try, from exact to most rewritten (cheap provider prefixes/suffixes)."""
    name = model.strip().lower()
    yield name
    name = _BRACKET_SUFFIX.sub("", name)
    name = name.rsplit("/", 1)[-1]  # "anthropic/claude-...", "models/claude-..."
    name = _BEDROCK_PREFIX.sub("", name)
    name = _BEDROCK_VERSION.sub("", name)
    yield name
    if "@" in name:  # Vertex AI: "claude-sonnet-4-5@20250929", "claude-3-5-sonnet-v2@20241022"
        base, _, date = name.partition("@")
        yield f"{base}-{date}"
        yield f"{_BEDROCK_VERSION.sub('', base)}-{date}"
        yield base
    yield _DOTTED_VERSION.sub("-", name)


def lookup(model: str) -> ModelPrice:
    """The price of ``model``: a canonical id or alias, case-insensitive.

    Also accepts common provider spellings: ``anthropic/claude-sonnet-4-5`` (gateways),
    ``anthropic/claude-sonnet-4.5`` (OpenRouter), ``[us.]anthropic.claude-…-v2:0`` (Bedrock),
    ``claude-sonnet-4-5@20250929`` (Vertex AI) and ``claude-opus-4-6[1m]`` (Claude Code).
    Raises :class:`UnknownModelError` (a ``ValueError``) for anything else.
    """
    if not isinstance(model, str):
        raise TypeError(f"model must be a str or ModelPrice, got {type(model).__name__}")
    for name in _candidates(model):
        price = _INDEX.get(name)
        if price is not None:
            return price
    raise UnknownModelError(model, [p.model for p in _MODELS.values()])


# ---- usage ------------------------------------------------------------------------------------


def _as_mapping(obj: object, fields: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        dumped = dump()
        if isinstance(dumped, Mapping):
            return dumped
    found = {name: getattr(obj, name) for name in fields if hasattr(obj, name)}
    if not found:
        raise TypeError(
            f"{what} must be a dict, an anthropic.types.Usage or an object with usage "
            f"attributes ({', '.join(fields[:4])}, ...), got {type(obj).__name__}"
        )
    return found


def _count(value: object, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"usage field {field!r} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"usage field {field!r} must be a non-negative integer, got {value}")
    return value


def usage_dict(usage: object) -> dict[str, int]:
    """Normalize a response ``usage`` to a flat dict of token counts (keys: ``USAGE_FIELDS``).

    Accepts a dict, an ``anthropic.types.Usage`` (or any pydantic model: ``model_dump()``), an
    object with the usage attributes, or a dict this function returned (it is idempotent).
    Missing and ``None`` counts are 0. The 5m/1h split comes from ``cache_creation``; without
    it all of ``cache_creation_input_tokens`` counts as 5-minute writes, and a shortfall of the
    parts against ``cache_creation_input_tokens`` is added to the 5-minute writes.

    Raises ``ValueError`` naming the field for a negative or non-integer count, or when the
    ``cache_creation`` parts exceed ``cache_creation_input_tokens``.

    >>> usage_dict({"input_tokens": 5, "cache_creation_input_tokens": 7, "output_tokens": 2})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'input_tokens': 5, 'cache_creation_input_tokens': 7, 'cache_read_input_tokens': 0,
     'ephemeral_5m_input_tokens': 7, 'ephemeral_1h_input_tokens': 0, 'output_tokens': 2}
    """
    data = _as_mapping(usage, _TOP_FIELDS, "usage")
    if data and not any(name in data for name in _TOP_FIELDS):
        hint = " (pass response['usage'], not the whole response)" if "usage" in data else ""
        raise ValueError(
            f"no usage fields found in {sorted(map(str, data))}; expected some of "
            f"{', '.join(USAGE_FIELDS)}{hint}"
        )
    input_tokens = _count(data.get("input_tokens"), "input_tokens")
    read = _count(data.get("cache_read_input_tokens"), "cache_read_input_tokens")
    output = _count(data.get("output_tokens"), "output_tokens")
    raw_total = data.get("cache_creation_input_tokens")
    total = _count(raw_total, "cache_creation_input_tokens")

    parts: Mapping[str, Any] | None = None
    prefix = "cache_creation."
    breakdown = data.get("cache_creation")
    if breakdown is not None:
        parts = _as_mapping(breakdown, _CC_FIELDS, "usage.cache_creation")
    elif any(data.get(name) is not None for name in _CC_FIELDS):  # flat: our own output
        parts, prefix = data, ""

    if parts is None:
        write_5m, write_1h = total, 0
    else:
        part_5m = _count(parts.get(_CC_FIELDS[0]), prefix + _CC_FIELDS[0])
        part_1h = _count(parts.get(_CC_FIELDS[1]), prefix + _CC_FIELDS[1])
        if raw_total is None:
            total = part_5m + part_1h
        elif part_5m + part_1h > total:
            raise ValueError(
                f"usage field {prefix}ephemeral_5m_input_tokens ({part_5m}) + "
                f"{prefix}ephemeral_1h_input_tokens ({part_1h}) exceeds "
                f"cache_creation_input_tokens ({total})"
            )
        write_5m, write_1h = total - part_1h, part_1h  # any shortfall counts as 5m writes

    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": total,
        "cache_read_input_tokens": read,
        "ephemeral_5m_input_tokens": write_5m,
        "ephemeral_1h_input_tokens": write_1h,
        "output_tokens": output,
    }


# ---- cost ---------------------------------------------------------------------------------------


def _usd(value: float) -> str:
    return f"${value:.4f}" if value == 0 or abs(value) >= 0.001 else f"${value:.6f}"


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one response (or a sum of them) in USD, by token class."""

    input: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    output: float
    model: str
    """Canonical model id, or ``"mixed"`` for a sum over several models."""
    batch: bool
    """Priced at the Message Batches discount (for a sum: every part was)."""

    @property
    def cache_write(self) -> float:
        """Both cache-write classes together."""
        return self.cache_write_5m + self.cache_write_1h

    @property
    def total(self) -> float:
        """Sum of every token class."""
        return self.input + self.cache_write + self.cache_read + self.output

    def __add__(self, other: object) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(
            input=self.input + other.input,
            cache_write_5m=self.cache_write_5m + other.cache_write_5m,
            cache_write_1h=self.cache_write_1h + other.cache_write_1h,
            cache_read=self.cache_read + other.cache_read,
            output=self.output + other.output,
            model=self.model if self.model == other.model else "mixed",
            batch=self.batch and other.batch,
        )

    def __radd__(self, other: object) -> Cost:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # sum(costs) starts from 0
        if isinstance(other, Cost):
            return other + self
        return NotImplemented

    def __str__(self) -> str:
        return (
            f"{_usd(self.total)} (input {_usd(self.input)}, write {_usd(self.cache_write)}, "
            f"read {_usd(self.cache_read)}, output {_usd(self.output)})"
        )


def cost(usage: object, model: str | ModelPrice, batch: bool = False) -> Cost:
    """Price the ``usage`` of one Messages API response (see :func:`usage_dict` for its forms).

    ``model`` is an id or alias (see :func:`lookup`) or a :class:`ModelPrice`. ``batch=True``
    applies the batch discount to every token class (it stacks with the cache rates).
    """
    price = lookup(model) if not isinstance(model, ModelPrice) else model
    counts = usage_dict(usage)
    prompt = (
        counts["input_tokens"]
        + counts["cache_creation_input_tokens"]
        + counts["cache_read_input_tokens"]
    )
    factor = price.prompt_factor(prompt) * (price.batch_discount if batch else 1.0)

    def usd(tokens: int, rate: float) -> float:
        return tokens * rate * factor / _MTOK

    return Cost(
        input=usd(counts["input_tokens"], price.input),
        cache_write_5m=usd(counts["ephemeral_5m_input_tokens"], price.cache_write_5m),
        cache_write_1h=usd(counts["ephemeral_1h_input_tokens"], price.cache_write_1h),
        cache_read=usd(counts["cache_read_input_tokens"], price.cache_read),
        output=usd(counts["output_tokens"], price.output),
        model=price.model,
        batch=bool(batch),
    )
