"""The proxy's dashboard, its JSON and ``/metrics``: real SDK calls through the proxy to a
LocalServer, then the pages read as a person, a browser and a Prometheus scraper would.

The counters of ``/metrics`` (parsed with prometheus_client's own parser) equal the sums of the
ledger rows; the page renders the totals in headless Chromium with no console error and no
request leaving 127.0.0.1; off loopback, or with a token set, every one of these pages needs
the token; none of them shows an API key, a header or message content.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import tidyctx as tc
from browser import needs_chromium, open_page, read_png
from proxy_helpers import MODEL, big_output, proxy_to, tool_request
from tidyctx import ledger, pricing
from tidyctx.proxy import ProxyConfig, RunningProxy, create_app, select_pipeline
from tidyctx.proxy._board import BILLING_CLASSES, Board, _Last, billing, miss_reason
from tidyctx.proxy._command import _config, add_proxy_options
from tidyctx.proxy._dashboard import TOKEN_ENV
from tidyctx.testing import LocalServer

SECRET_KEY = "sk-ant-secret-key-0123456789"
SECRET_TEXT = "the launch code is 7-alpha-zulu"
SESSION = "f00dfeedcafe1234"
PAGES = ("/_tidyctx/", "/_tidyctx/dashboard", "/_tidyctx/stats.json", "/metrics")


@pytest.fixture
def traffic() -> Iterator[tuple[RunningProxy, list[dict[str, Any]]]]:
    """A proxy with the default pipeline in front of a LocalServer, after a mix of real calls:
    sync, streaming, async, count_tokens, a passed-through GET, and one body that fails open."""
    with LocalServer() as server:
        defaults = select_pipeline("defaults", tc.MemoryStore())
        with proxy_to(server.base_url, defaults, "defaults") as (proxy, rows):

            def recorded(n: int) -> None:
                # A call's row is made once its answer has been relayed (a large body's in a
                # worker thread): each call waits for the row of the one before, as a
                # sequential agent's would be, so the board sees them in order on a busy machine.
                deadline = time.monotonic() + 120
                while len(rows) < n:
                    assert time.monotonic() < deadline, f"{len(rows)} rows, expected {n}"
                    time.sleep(0.01)

            session_url = f"{proxy.base_url}/_tidyctx/s/{SESSION}"
            client = anthropic.Anthropic(base_url=session_url, api_key=SECRET_KEY, max_retries=0)
            request = tool_request(big_output() + "\n" + SECRET_TEXT)
            client.messages.create(**request)
            recorded(1)
            client.messages.create(**request)
            recorded(2)
            with client.messages.stream(**request) as stream:
                stream.get_final_message()
            recorded(3)
            client.messages.count_tokens(
                model=MODEL, messages=[{"role": "user", "content": SECRET_TEXT}]
            )
            recorded(4)
            other = anthropic.Anthropic(base_url=proxy.base_url, api_key=SECRET_KEY, max_retries=0)
            other.messages.create(
                model="claude-haiku-4-5",
                max_tokens=16,
                messages=[{"role": "user", "content": SECRET_TEXT}],
            )
            recorded(5)
            httpx.get(f"{proxy.base_url}/v1/models", headers={"x-api-key": SECRET_KEY})
            recorded(6)
            # Not JSON: sent upstream as it came, and the row says why.
            httpx.post(
                f"{proxy.base_url}/v1/messages",
                content=b"{not json",
                headers={"x-api-key": SECRET_KEY, "content-type": "application/json"},
            )
            recorded(7)
            yield proxy, rows


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _total(families: dict[str, Any], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in families[name].samples
        if s.name == f"{name}_total" and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_counters_equal_the_ledger_rows_sums(
    traffic: tuple[RunningProxy, list[dict[str, Any]]],
) -> None:
    proxy, rows = traffic
    answer = httpx.get(f"{proxy.base_url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = _families(answer.text)

    assert _total(families, "tidyctx_proxy_calls") == len(rows) == 7
    failed_open = sum(bool(r.get("fail_open")) for r in rows)
    assert _total(families, "tidyctx_proxy_fail_open") == failed_open == 1
    for name in BILLING_CLASSES:
        expected = sum(billing(r.get("usage"))[name] for r in rows)
        assert _total(families, "tidyctx_proxy_tokens", billing_class=name) == expected
    assert _total(families, "tidyctx_proxy_tokens", billing_class="cache_read") > 0
    totals = ledger.summarize_ledger(rows).total
    assert totals.cost > 0 and totals.baseline_cost > totals.cost
    assert _total(families, "tidyctx_proxy_cost_usd") == pytest.approx(totals.cost)
    assert _total(families, "tidyctx_proxy_baseline_cost_usd") == pytest.approx(
        totals.baseline_cost
    )
    cut = sum(
        r["tokens_before"] - r["tokens_after"] for r in rows if r.get("tokens_before") is not None
    )
    assert _total(families, "tidyctx_proxy_tokens_cut") == cut > 0
    # Per model: the haiku call is counted apart; the passed-through GET has no model.
    assert _total(families, "tidyctx_proxy_calls", model="claude-haiku-4-5") == 1
    assert _total(families, "tidyctx_proxy_calls", model="none", pipeline="none") == 1

    latency = families["tidyctx_proxy_added_latency_seconds"]
    counts = [s.value for s in latency.samples if s.name.endswith("_count")]
    assert sum(counts) == sum(r.get("added_s") is not None for r in rows) == len(rows)


def test_metrics_carry_no_session_key_or_content(
    traffic: tuple[RunningProxy, list[dict[str, Any]]],
) -> None:
    proxy, _ = traffic
    text = httpx.get(f"{proxy.base_url}/metrics").text
    for secret in (SESSION, SECRET_KEY, SECRET_TEXT, "launch"):
        assert secret not in text
    labels = {k for f in _families(text).values() for s in f.samples for k in s.labels}
    assert labels <= {"model", "pipeline", "billing_class", "le"}


def test_the_openmetrics_format_is_served_to_a_scraper_that_asks_for_it(
    traffic: tuple[RunningProxy, list[dict[str, Any]]],
) -> None:
    proxy, _ = traffic
    answer = httpx.get(
        f"{proxy.base_url}/metrics", headers={"accept": "application/openmetrics-text"}
    )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


def test_stats_json_totals_match_the_ledger(
    traffic: tuple[RunningProxy, list[dict[str, Any]]],
) -> None:
    proxy, rows = traffic
    stats = httpx.get(f"{proxy.base_url}/_tidyctx/stats.json").json()
    total = stats["total"]
    # The ledger's own totals of the same rows, as `tidyctx report` computes them.
    totals = ledger.summarize_ledger(rows).total
    assert total["calls"] == totals.calls == len(rows)
    assert total["errors"] == totals.errors
    assert total["cost_usd"] == pytest.approx(totals.cost)
    assert total["cost_without_usd"] == pytest.approx(totals.baseline_cost)
    assert total["saved_usd"] == pytest.approx(totals.saved)
    assert total["cost_without_usd"] == pytest.approx(total["cost_usd"] + total["saved_usd"])
    assert total["tokens_before"] == totals.tokens_before > total["tokens_after"]
    prompt = sum(v for k, v in total["tokens"].items() if k != "output")
    assert total["cache_hit_share"] == pytest.approx(total["tokens"]["cache_read"] / prompt)
    sessions = {s["session"]: s for s in stats["sessions"]}
    assert sessions[SESSION]["calls"] == 4  # two calls, a stream and a count
    assert sessions["(none)"]["calls"] == 3
    assert {m["model"] for m in stats["models"]} == {MODEL, "claude-haiku-4-5", "none"}
    trims = [t for t in stats["transforms"] if t["name"].startswith("trim(")]
    assert trims and trims[0]["calls"] == 3 and trims[0]["tokens_cut"] > 0
    # Each transform's own cut, as the report's tokens removed per transform.
    by_name = ledger.summarize_ledger(rows).transforms
    assert {t["name"]: t["tokens_cut"] for t in stats["transforms"]} == by_name
    assert len(stats["recent"]) == len(rows)
    assert stats["recent"][0]["fail_open"] == "body is not JSON: JSONDecodeError"
    # The agent's first call wrote the cache: a cold start, and the later ones read it all.
    reasons = [m["reason"] for m in stats["misses"] if m["session"] == SESSION]
    assert reasons == ["cold start: nothing cached yet for this agent and model"]


def test_no_page_shows_a_key_a_header_or_content(
    traffic: tuple[RunningProxy, list[dict[str, Any]]],
) -> None:
    proxy, _ = traffic
    for path in PAGES:
        text = httpx.get(proxy.base_url + path).text
        for secret in (SECRET_KEY, SECRET_TEXT, "x-api-key", "build step"):
            assert secret not in text, (path, secret)


@needs_chromium("the dashboard is not opened in a browser here")
def test_the_dashboard_renders_the_totals_in_headless_chromium(
    traffic: tuple[RunningProxy, list[dict[str, Any]]], tmp_path: Path
) -> None:
    proxy, rows = traffic
    with open_page(f"{proxy.base_url}/_tidyctx/", tmp_path) as page:
        # The status line says "updated" once the first poll's answer is rendered.
        assert page.wait_for("document.getElementById('status').textContent.startsWith('upd')")
        calls = page.evaluate("document.getElementById('calls').textContent")
        text = page.evaluate("document.body.innerText")
        shot = page.screenshot()
        shown = list(rows)
        # Live: one more call shows up at a later poll, without reloading the page.
        client = anthropic.Anthropic(base_url=proxy.base_url, api_key=SECRET_KEY, max_retries=0)
        client.messages.create(**tool_request("ok"))
        later = page.wait_for(
            f"document.getElementById('calls').textContent === '{len(shown) + 1}'"
        )
        page.pump(0.5)
        errors, requests = page.errors, page.requests
    assert calls == str(len(shown))
    assert later is True
    total = sum(r.get("cost") or 0.0 for r in shown)
    assert f"${total:.4f}" in text
    for expected in (SESSION, MODEL, "claude-haiku-4-5", "cache write 5m", "cold start", "trim("):
        assert expected in text
    assert "fail open: body is not JSON" in text
    assert errors == []
    assert requests, "the page made no request at all"
    for url in requests:
        assert urlsplit(url).hostname == "127.0.0.1", url
    assert any(url.endswith("/_tidyctx/stats.json") for url in requests)
    (tmp_path / "dashboard.png").write_bytes(shot)
    assert read_png(shot).distinct_colours() > 8, "the screenshot is blank"


# -- the token


def _guarded(host: str, token: str | None) -> RunningProxy:
    # The guard follows the configured bind; the test server itself listens on loopback only.
    config = ProxyConfig(upstream="http://127.0.0.1:9", host=host, dashboard_token=token)
    return RunningProxy(create_app(config))


@pytest.mark.parametrize("path", [*PAGES, "/_tidyctx/metrics", "/_tidyctx/sessions/abc"])
def test_off_loopback_without_a_token_the_pages_are_refused(path: str) -> None:
    with _guarded("0.0.0.0", None) as proxy:
        answer = httpx.get(proxy.base_url + path)
        assert answer.status_code == 403
        assert "--dashboard-token" in answer.json()["error"]["message"]
        # The health check stays open: it holds no numbers.
        assert httpx.get(proxy.base_url + "/_tidyctx/health").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
@pytest.mark.parametrize("path", [*PAGES, "/_tidyctx/sessions/abc"])
def test_with_a_token_the_pages_need_it(host: str, path: str) -> None:
    token = "tok-1234567890abcdef"
    with _guarded(host, token) as proxy:
        url = proxy.base_url + path
        missing = httpx.get(url)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(url, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, params={"token": token[:-1]}).status_code == 401
        assert httpx.get(url, headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(url, params={"token": token}).status_code == 200


def test_on_loopback_without_a_token_the_pages_are_served() -> None:
    with _guarded("127.0.0.1", None) as proxy:
        for path in PAGES:
            assert httpx.get(proxy.base_url + path).status_code == 200


def test_the_dashboard_without_its_slash_redirects_to_it() -> None:
    with _guarded("127.0.0.1", None) as proxy:
        answer = httpx.get(proxy.base_url + "/_tidyctx", params={"token": "t"})
    assert answer.status_code == 308
    assert answer.headers["location"] == "/_tidyctx/?token=t"


def test_the_page_allows_no_other_origin() -> None:
    with _guarded("127.0.0.1", None) as proxy:
        answer = httpx.get(proxy.base_url + "/_tidyctx/")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "://" not in answer.text  # no absolute URL in the page


# -- cache misses


def _tokens(**counts: int) -> dict[str, int]:
    return {**dict.fromkeys(BILLING_CLASSES, 0), **counts}


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_call_that_reads_all_the_previous_prefix_is_no_miss() -> None:
    previous = _Last(NOW, 5000, 300.0)
    later = NOW + timedelta(seconds=10)
    assert miss_reason(_tokens(cache_read=5000, cache_write_5m=300), previous, later) is None


def test_a_call_after_the_cache_lifetime_is_an_expired_miss() -> None:
    previous = _Last(NOW, 5000, 300.0)
    reason = miss_reason(_tokens(cache_write_5m=5300), previous, NOW + timedelta(seconds=400))
    assert reason == "expired: 400 s since the previous call (cache lifetime 300 s)"


def test_a_call_reading_part_of_the_prefix_names_where_it_changed() -> None:
    previous = _Last(NOW, 5000, 300.0)
    later = NOW + timedelta(seconds=5)
    reason = miss_reason(_tokens(cache_read=1200, cache_write_5m=4000), previous, later)
    assert reason == "prefix changed after 1,200 tokens: the previous call cached 5,000"
    assert miss_reason(_tokens(cache_write_5m=5300), previous, later) == (
        "prefix changed: none of the 5,000 tokens cached before was read"
    )


def test_a_call_that_caches_nothing_says_so() -> None:
    reason = miss_reason(_tokens(uncached_input=900), None, NOW)
    assert reason is not None and reason.startswith("not cached: no cache_control breakpoint")


def test_a_write_without_ttl_split_counts_as_five_minutes() -> None:
    assert billing({"cache_creation_input_tokens": 70, "input_tokens": 3}) == _tokens(
        uncached_input=3, cache_write_5m=70
    )
    split = {
        "cache_creation_input_tokens": 70,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 50},
    }
    assert billing(split) == _tokens(cache_write_5m=20, cache_write_1h=50)
    # A ledger row's usage (pricing.usage_dict's keys) reads the same.
    assert billing(pricing.usage_dict(split)) == billing(split)


def test_the_board_keeps_bounded_lists_of_recent_calls_and_misses() -> None:
    board = Board("defaults", recent=5)
    for i in range(20):
        board.add(
            {
                "ledger": ledger.FORMAT,
                "ts": (NOW + timedelta(seconds=i)).isoformat(),
                "session": f"s{i}",
                "model": MODEL,
                "usage": {"input_tokens": 10},
                "cost": 0.001,
                "baseline_cost": 0.001,
            }
        )
    snapshot = board.snapshot()
    assert len(snapshot["recent"]) == len(snapshot["misses"]) == 5
    assert snapshot["recent"][0]["session"] == "s19"
    assert snapshot["total"]["calls"] == 20
    json.dumps(snapshot)  # plain JSON data


def test_model_names_that_are_not_model_ids_are_labelled_other() -> None:
    board = Board("defaults")
    assert board.model_label("<script>alert(1)</script>") == "other"
    assert board.model_label(None) == "none"
    assert board.model_label(MODEL) == MODEL


# -- the command line


def _parsed(*argv: str) -> Any:
    parser = argparse.ArgumentParser()
    add_proxy_options(parser)
    return parser.parse_args([*argv, "--store", "memory:", "--pipeline", "off"])


def test_the_token_comes_from_the_option_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert _config(_parsed()).dashboard_token is None
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert _config(_parsed()).dashboard_token == "from-env"
    assert _config(_parsed("--dashboard-token", "from-flag")).dashboard_token == "from-flag"
