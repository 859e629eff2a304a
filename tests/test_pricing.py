"""Tests for tidyctx.pricing.

The expected prices and dollar figures below are copied or computed by hand from Anthropic's
public pages (PR: https://docs.claude.com/en/docs/about-claude/pricing, PC:
https://docs.claude.com/en/docs/build-with-claude/prompt-caching, MO: a model's page under
https://docs.claude.com/en/docs/about-claude/models), never from the module's own table, so a
wrong entry in the table makes these tests fail.
"""

from __future__ import annotations

import doctest
import math
from types import SimpleNamespace
from typing import Any

import pytest
from anthropic.types import CacheCreation, Usage
from hypothesis import given
from hypothesis import strategies as st

from tidyctx import pricing
from tidyctx.pricing import (
    USAGE_FIELDS,
    Cost,
    ModelPrice,
    UnknownModelError,
    cost,
    lookup,
    models,
    register,
    usage_dict,
)

# model id -> (input, 5m write, 1h write, cache read, output), USD per MTok, by hand from the
# pricing page (PR). Haiku 5.5's cache rates are not on it: 0.125 / 0.20 from its MO page,
# 0.01 read 2nd-hand (third-party guides).
PRICES: dict[str, tuple[float, float, float, float, float]] = {
    "claude-opus-4-8": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-7": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-6": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-5-20251101": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-1-20250805": (15, 18.75, 30, 1.50, 75),
    "claude-opus-4-20250514": (15, 18.75, 30, 1.50, 75),
    "claude-sonnet-4-6": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-5-20250929": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-20250514": (3, 3.75, 6, 0.30, 15),
    "claude-3-7-sonnet-20250219": (3, 3.75, 6, 0.30, 15),
    "claude-3-5-sonnet-20241022": (3, 3.75, 6, 0.30, 15),
    "claude-haiku-4-5-20251001": (1, 1.25, 2, 0.10, 5),
    "claude-3-5-haiku-20241022": (0.80, 1, 1.60, 0.08, 4),
    "claude-3-opus-20240229": (15, 18.75, 30, 1.50, 75),
    "claude-3-haiku-20240307": (0.25, 0.30, 0.50, 0.03, 1.25),
    "claude-opus-5": (5, 6.25, 10, 0.50, 25),
    "claude-opus-5-5": (4, 5, 8, 0.20, 20),
    "claude-sonnet-5": (2, 2.50, 4, 0.20, 10),
    "claude-sonnet-5-5": (2, 2.50, 4, 0.20, 10),
    "claude-fable-5": (10, 12.50, 20, 1, 50),
    "claude-fable-5-1": (10, 12.50, 20, 0.25, 50),
    "claude-mythos-5": (10, 12.50, 20, 1, 50),
    "claude-mythos-5-1": (10, 12.50, 20, 0.25, 50),
    "claude-haiku-5-5": (0.10, 0.125, 0.20, 0.01, 0.50),
}

# The reference usage: input 1000, 5m write 2000, 1h write 500, read 10000, output 300.
USAGE: dict[str, Any] = {
    "input_tokens": 1_000,
    "cache_creation_input_tokens": 2_500,
    "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 500},
    "cache_read_input_tokens": 10_000,
    "output_tokens": 300,
}

# Hand-computed totals for USAGE, in USD: 1000*in + 2000*5m + 500*1h + 10000*read + 300*out
# over 1e6. E.g. Sonnet 4.6: 3000 + 7500 + 3000 + 3000 + 4500 = 21000 -> $0.021.
TOTALS: dict[str, float] = {
    "claude-opus-4-8": 0.035,  # 5000 + 12500 + 5000 + 5000 + 7500
    "claude-opus-4-7": 0.035,
    "claude-opus-4-6": 0.035,
    "claude-opus-4-5-20251101": 0.035,
    "claude-opus-4-1-20250805": 0.105,  # 15000 + 37500 + 15000 + 15000 + 22500
    "claude-opus-4-20250514": 0.105,
    "claude-sonnet-4-6": 0.021,
    "claude-sonnet-4-5-20250929": 0.021,
    "claude-sonnet-4-20250514": 0.021,
    "claude-3-7-sonnet-20250219": 0.021,
    "claude-3-5-sonnet-20241022": 0.021,
    "claude-haiku-4-5-20251001": 0.007,  # 1000 + 2500 + 1000 + 1000 + 1500
    "claude-3-5-haiku-20241022": 0.0056,  # 800 + 2000 + 800 + 800 + 1200
    "claude-3-opus-20240229": 0.105,
    "claude-3-haiku-20240307": 0.001775,  # 250 + 600 + 250 + 300 + 375
    "claude-opus-5": 0.035,
    "claude-opus-5-5": 0.026,  # 4000 + 10000 + 4000 + 2000 + 6000
    "claude-sonnet-5": 0.014,  # 2000 + 5000 + 2000 + 2000 + 3000
    "claude-sonnet-5-5": 0.014,
    "claude-fable-5": 0.070,  # 10000 + 25000 + 10000 + 10000 + 15000
    "claude-fable-5-1": 0.0625,  # 10000 + 25000 + 10000 + 2500 + 15000
    "claude-mythos-5": 0.070,
    "claude-mythos-5-1": 0.0625,
    "claude-haiku-5-5": 0.0007,  # 100 + 250 + 100 + 100 + 150 (prompt 13,500 < 100K)
}

# Minimum cacheable prompt length (PC, latest copy; see the module for which are inferred).
MIN_CACHEABLE: dict[str, int] = {
    "claude-opus-4-8": 1024,
    "claude-opus-4-7": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5-20251101": 4096,
    "claude-opus-4-1-20250805": 1024,
    "claude-opus-4-20250514": 1024,
    "claude-sonnet-4-6": 1024,
    "claude-sonnet-4-5-20250929": 1024,
    "claude-sonnet-4-20250514": 1024,
    "claude-3-7-sonnet-20250219": 1024,
    "claude-3-5-sonnet-20241022": 1024,
    "claude-haiku-4-5-20251001": 4096,
    "claude-3-5-haiku-20241022": 2048,
    "claude-3-opus-20240229": 1024,
    "claude-3-haiku-20240307": 2048,
    "claude-opus-5": 512,
    "claude-opus-5-5": 512,
    "claude-sonnet-5": 1024,
    "claude-sonnet-5-5": 1024,
    "claude-fable-5": 512,
    "claude-fable-5-1": 512,
    "claude-mythos-5": 512,
    "claude-mythos-5-1": 512,
    "claude-haiku-5-5": 512,
}

CONTEXT_1M = {
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-5",
    "claude-opus-5-5",
    "claude-sonnet-5",
    "claude-sonnet-5-5",
    "claude-fable-5",
    "claude-fable-5-1",
    "claude-mythos-5",
    "claude-mythos-5-1",
    "claude-haiku-5-5",
}

# (alias or other dated id, canonical id), from the models pages (MO).
ALIASES = [
    ("claude-opus-4-5", "claude-opus-4-5-20251101"),
    ("claude-opus-4-1", "claude-opus-4-1-20250805"),
    ("claude-opus-4-0", "claude-opus-4-20250514"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("claude-sonnet-4-0", "claude-sonnet-4-20250514"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219"),
    ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022"),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"),
]


def test_table_covers_exactly_the_expected_models() -> None:
    assert {p.model for p in pricing._TABLE} == set(PRICES)
    assert set(PRICES) == set(TOTALS) == set(MIN_CACHEABLE)
    assert {p.model for p in models()} >= set(PRICES)


@pytest.mark.parametrize("model", sorted(PRICES))
def test_prices_match_facts_sheet(model: str) -> None:
    p = lookup(model)
    assert p.model == model
    assert (p.input, p.cache_write_5m, p.cache_write_1h, p.cache_read, p.output) == PRICES[model]
    assert p.min_cacheable == MIN_CACHEABLE[model]
    assert p.context_window == (1_000_000 if model in CONTEXT_1M else 200_000)
    assert p.batch_discount == 0.5


@pytest.mark.parametrize("model", sorted(TOTALS))
def test_cost_reproduces_hand_computed_figure(model: str) -> None:
    c = cost(USAGE, model)
    assert c.total == pytest.approx(TOTALS[model], rel=1e-12)
    i, w5, w1, r, o = PRICES[model]
    assert c.input == pytest.approx(1_000 * i / 1e6)
    assert c.cache_write_5m == pytest.approx(2_000 * w5 / 1e6)
    assert c.cache_write_1h == pytest.approx(500 * w1 / 1e6)
    assert c.cache_read == pytest.approx(10_000 * r / 1e6)
    assert c.output == pytest.approx(300 * o / 1e6)
    assert c.model == model
    assert c.batch is False


def test_hand_computed_literals() -> None:
    c = cost(USAGE, "claude-sonnet-4-6")
    assert isinstance(c, Cost)
    assert c.input == pytest.approx(0.003)
    assert c.cache_write_5m == pytest.approx(0.0075)
    assert c.cache_write_1h == pytest.approx(0.003)
    assert c.cache_write == pytest.approx(0.0105)
    assert c.cache_read == pytest.approx(0.003)
    assert c.output == pytest.approx(0.0045)
    assert c.total == pytest.approx(0.021)
    one_mtok = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    assert cost(one_mtok, "claude-opus-4-1").total == pytest.approx(90.0)
    assert cost(one_mtok, "claude-3-haiku-20240307").total == pytest.approx(1.5)


@pytest.mark.parametrize("model", sorted(TOTALS))
def test_batch_halves_every_part(model: str) -> None:
    full = cost(USAGE, model)
    half = cost(USAGE, model, batch=True)
    assert half.batch is True
    assert half.total == pytest.approx(TOTALS[model] / 2, rel=1e-12)
    for name in ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output"):
        assert getattr(half, name) == pytest.approx(getattr(full, name) / 2)


def test_batch_literal() -> None:
    # Haiku 3 batch in/out = 0.125 / 0.625 (BA table).
    c = cost(
        {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "claude-3-haiku-20240307", True
    )
    assert c.input == pytest.approx(0.125)
    assert c.output == pytest.approx(0.625)


def test_haiku_5_5_long_prompt_tier() -> None:
    at_limit = {"input_tokens": 99_999, "cache_read_input_tokens": 1, "output_tokens": 300}
    assert cost(at_limit, "claude-haiku-5-5").total == pytest.approx(
        (99_999 * 0.10 + 1 * 0.01 + 300 * 0.50) / 1e6
    )
    over = {"input_tokens": 100_000, "cache_read_input_tokens": 1, "output_tokens": 300}
    # 5x on every class (MO): 0.50 in, 0.05 read, 2.50 out.
    assert cost(over, "claude-haiku-5-5").total == pytest.approx(
        (100_000 * 0.50 + 1 * 0.05 + 300 * 2.50) / 1e6
    )
    assert cost(over, "claude-haiku-5-5", batch=True).total == pytest.approx(
        (100_000 * 0.50 + 1 * 0.05 + 300 * 2.50) / 2e6
    )
    # Other models have no tier.
    big = {"input_tokens": 500_000}
    assert cost(big, "claude-sonnet-4-6").total == pytest.approx(1.5)


def test_sdk_usage_object() -> None:
    u = Usage(
        input_tokens=1_000,
        output_tokens=300,
        cache_creation_input_tokens=2_500,
        cache_read_input_tokens=10_000,
        cache_creation=CacheCreation(
            ephemeral_5m_input_tokens=2_000, ephemeral_1h_input_tokens=500
        ),
    )
    assert cost(u, "claude-sonnet-4-6") == cost(USAGE, "claude-sonnet-4-6")
    assert usage_dict(u) == usage_dict(USAGE)
    # The SDK's optional fields left as None.
    bare = Usage(input_tokens=10, output_tokens=20)
    assert usage_dict(bare) == dict.fromkeys(USAGE_FIELDS, 0) | {
        "input_tokens": 10,
        "output_tokens": 20,
    }


def test_attribute_object() -> None:
    u = SimpleNamespace(
        input_tokens=1_000,
        output_tokens=300,
        cache_creation_input_tokens=2_500,
        cache_read_input_tokens=10_000,
        cache_creation=SimpleNamespace(
            ephemeral_5m_input_tokens=2_000, ephemeral_1h_input_tokens=500
        ),
    )
    assert cost(u, "claude-sonnet-4-6").total == pytest.approx(0.021)
    with pytest.raises(TypeError):
        usage_dict(42)


@pytest.mark.parametrize("cache_creation", ["missing", None])
def test_missing_cache_creation_is_all_5m(cache_creation: object) -> None:
    u: dict[str, Any] = {"input_tokens": 10, "cache_creation_input_tokens": 4_000}
    if cache_creation != "missing":
        u["cache_creation"] = cache_creation
    d = usage_dict(u)
    assert d["ephemeral_5m_input_tokens"] == 4_000
    assert d["ephemeral_1h_input_tokens"] == 0
    # 10 * 3 + 4000 * 3.75 = 15030 micro-dollars
    assert cost(u, "claude-sonnet-4-6").total == pytest.approx(0.01503)
    assert cost(u, "claude-sonnet-4-6").cache_write_1h == 0


def test_cache_creation_shortfall_counts_as_5m() -> None:
    u = {
        "cache_creation_input_tokens": 1_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 300},
    }
    d = usage_dict(u)
    assert (d["ephemeral_5m_input_tokens"], d["ephemeral_1h_input_tokens"]) == (700, 300)
    # Parts without a total: the total is their sum.
    d = usage_dict({"cache_creation": {"ephemeral_1h_input_tokens": 300}})
    assert d["cache_creation_input_tokens"] == 300
    assert d["ephemeral_1h_input_tokens"] == 300


def test_cache_creation_parts_exceeding_total_rejected() -> None:
    u = {
        "cache_creation_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 1},
    }
    with pytest.raises(ValueError, match="exceeds cache_creation_input_tokens"):
        usage_dict(u)


def test_missing_and_none_fields_count_as_zero() -> None:
    assert usage_dict({}) == dict.fromkeys(USAGE_FIELDS, 0)
    d = usage_dict({"input_tokens": 5, "output_tokens": None, "cache_read_input_tokens": None})
    assert d == dict.fromkeys(USAGE_FIELDS, 0) | {"input_tokens": 5}
    assert cost({"output_tokens": 1_000}, "claude-sonnet-4-6").total == pytest.approx(0.015)


def test_usage_dict_is_idempotent_and_flat() -> None:
    d = usage_dict(USAGE)
    assert list(d) == list(USAGE_FIELDS)
    assert d == {
        "input_tokens": 1_000,
        "cache_creation_input_tokens": 2_500,
        "cache_read_input_tokens": 10_000,
        "ephemeral_5m_input_tokens": 2_000,
        "ephemeral_1h_input_tokens": 500,
        "output_tokens": 300,
    }
    assert usage_dict(d) == d
    assert cost(d, "claude-sonnet-4-6") == cost(USAGE, "claude-sonnet-4-6")


def test_whole_response_is_rejected_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"response\['usage'\]"):
        usage_dict({"id": "msg_1", "usage": USAGE})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_tokens", -1),
        ("output_tokens", 1.5),
        ("cache_read_input_tokens", "12"),
        ("cache_creation_input_tokens", True),
    ],
)
def test_bad_counts_rejected_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        cost({field: value}, "claude-sonnet-4-6")


def test_bad_cache_creation_part_rejected_naming_the_field() -> None:
    u = {"cache_creation": {"ephemeral_1h_input_tokens": -5}}
    with pytest.raises(ValueError, match=r"cache_creation\.ephemeral_1h_input_tokens"):
        usage_dict(u)


def test_integral_float_counts_accepted() -> None:
    assert usage_dict({"input_tokens": 3.0})["input_tokens"] == 3


def test_unknown_model_error() -> None:
    with pytest.raises(UnknownModelError) as info:
        lookup("claude-imaginary-9")
    err = info.value
    assert isinstance(err, ValueError)
    assert not isinstance(err, KeyError)
    message = str(err)
    assert "'claude-imaginary-9'" in message
    for model in ("claude-sonnet-4-6", "claude-opus-4-1-20250805", "claude-3-haiku-20240307"):
        assert model in message
    assert "register(ModelPrice(" in message
    assert err.model == "claude-imaginary-9"
    with pytest.raises(UnknownModelError, match="gpt-4o"):
        cost(USAGE, "gpt-4o")


@pytest.mark.parametrize(("alias", "canonical"), ALIASES)
def test_alias_and_dated_id_give_the_same_price(alias: str, canonical: str) -> None:
    assert lookup(alias) is lookup(canonical)
    assert lookup(alias).model == canonical
    assert cost(USAGE, alias) == cost(USAGE, canonical)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("CLAUDE-SONNET-4-6", "claude-sonnet-4-6"),
        ("  claude-sonnet-4-6 ", "claude-sonnet-4-6"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5-20250929"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022"),
        ("claude-opus-4-6[1m]", "claude-opus-4-6"),
    ],
)
def test_provider_spellings(spelling: str, canonical: str) -> None:
    assert lookup(spelling).model == canonical


def test_lookup_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        lookup(None)  # type: ignore[arg-type]


def test_cost_add() -> None:
    a = cost(USAGE, "claude-sonnet-4-6")
    b = cost({"input_tokens": 1_000_000}, "claude-sonnet-4-6")
    s = a + b
    assert s.model == "claude-sonnet-4-6"
    assert s.total == pytest.approx(0.021 + 3.0)
    assert s.input == pytest.approx(0.003 + 3.0)
    assert s.cache_write == pytest.approx(0.0105)
    mixed = a + cost(USAGE, "claude-haiku-4-5")
    assert mixed.model == "mixed"
    assert mixed.total == pytest.approx(0.021 + 0.007)
    assert (mixed + a).model == "mixed"
    assert sum([a, a, a]) == a + a + a
    assert sum([a, a, a]).total == pytest.approx(0.063)  # type: ignore[union-attr]
    assert (a + cost(USAGE, "claude-sonnet-4-6", batch=True)).batch is False
    batched = cost(USAGE, "claude-sonnet-4-6", batch=True)
    assert (batched + batched).batch is True
    with pytest.raises(TypeError):
        _ = a + 1.0


def test_cost_str() -> None:
    assert str(cost(USAGE, "claude-sonnet-4-6")) == (
        "$0.0210 (input $0.0030, write $0.0105, read $0.0030, output $0.0045)"
    )
    tiny = cost({"input_tokens": 10}, "claude-3-haiku-20240307")  # $0.0000025
    assert str(tiny).startswith("$0.000003 (input $0.000003,")


def test_model_may_be_a_model_price() -> None:
    p = ModelPrice(
        model="my-finetune",
        input=1,
        output=2,
        cache_write_5m=1.25,
        cache_write_1h=2,
        cache_read=0.1,
        min_cacheable=1024,
        context_window=200_000,
    )
    c = cost({"input_tokens": 1_000_000, "output_tokens": 1_000_000}, p)
    assert c.total == pytest.approx(3.0)
    assert c.model == "my-finetune"
    with pytest.raises(UnknownModelError):
        lookup("my-finetune")  # passing a ModelPrice does not register it


def test_register_adds_and_overrides() -> None:
    new = ModelPrice(
        model="claude-test-9",
        aliases=("claude-test-9-20990101",),
        input=1,
        output=2,
        cache_write_5m=1.25,
        cache_write_1h=2,
        cache_read=0.1,
        min_cacheable=1024,
        context_window=200_000,
    )
    original = lookup("claude-sonnet-4-6")
    saved = dict(pricing._MODELS)
    try:
        register(new)
        assert lookup("Claude-Test-9-20990101") is new
        assert new in models()
        cheaper = ModelPrice(
            model="claude-sonnet-4-6",
            input=1,
            output=5,
            cache_write_5m=1.25,
            cache_write_1h=2,
            cache_read=0.05,
            min_cacheable=1024,
            context_window=1_000_000,
        )
        register(cheaper)
        assert lookup("claude-sonnet-4-6") is cheaper
        assert sum(p.model == "claude-sonnet-4-6" for p in models()) == 1
        assert cost({"input_tokens": 1_000_000}, "claude-sonnet-4-6").total == pytest.approx(1.0)
    finally:  # restore the registry exactly, order included
        pricing._MODELS.clear()
        pricing._MODELS.update(saved)
        pricing._reindex()
    assert lookup("claude-sonnet-4-6") is original
    with pytest.raises(UnknownModelError):
        lookup("claude-test-9")
    with pytest.raises(TypeError):
        register("claude-sonnet-4-6")  # type: ignore[arg-type]


def test_model_price_validation() -> None:
    base: dict[str, Any] = {
        "model": "x",
        "input": 1,
        "output": 2,
        "cache_write_5m": 1.25,
        "cache_write_1h": 2,
        "cache_read": 0.1,
        "min_cacheable": 1024,
        "context_window": 200_000,
    }
    ModelPrice(**base)
    for bad in ({"input": -1}, {"cache_read": math.nan}, {"model": ""}, {"batch_discount": 0}):
        with pytest.raises(ValueError):
            ModelPrice(**(base | bad))
    with pytest.raises(TypeError):
        ModelPrice(**(base | {"aliases": "x-latest"}))
    with pytest.raises(TypeError):
        untyped: Any = ModelPrice
        untyped("x", 1, 2)  # keyword-only
    p = ModelPrice(**base)
    with pytest.raises(AttributeError):
        p.input = 2  # type: ignore[misc]


def test_module_doctests() -> None:
    result = doctest.testmod(pricing)
    assert result.attempted >= 3
    assert result.failed == 0


counts = st.integers(min_value=0, max_value=10**9)


@given(
    model=st.sampled_from(sorted(TOTALS)),
    inp=counts,
    w5=counts,
    w1=counts,
    read=counts,
    out=counts,
)
def test_cost_properties(model: str, inp: int, w5: int, w1: int, read: int, out: int) -> None:
    u = {
        "input_tokens": inp,
        "cache_creation_input_tokens": w5 + w1,
        "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1},
        "cache_read_input_tokens": read,
        "output_tokens": out,
    }
    d = usage_dict(u)
    assert usage_dict(d) == d
    c = cost(u, model)
    assert min(c.input, c.cache_write_5m, c.cache_write_1h, c.cache_read, c.output) >= 0
    assert cost(u, model, batch=True).total == pytest.approx(c.total / 2)
    i, p5, p1, r, o = PRICES[model]
    factor = 5.0 if model == "claude-haiku-5-5" and inp + w5 + w1 + read > 100_000 else 1.0
    expected = (inp * i + w5 * p5 + w1 * p1 + read * r + out * o) * factor / 1e6
    assert c.total == pytest.approx(expected)
