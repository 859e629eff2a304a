"""The HTML report opened in headless Chromium: it draws its charts, logs no error and fetches
nothing. Chromium is driven over the DevTools protocol by ``browser.open_page``; the tests are
skipped (and say why) where Debian's ``chromium`` is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

from browser import needs_chromium, open_page, read_png
from tidyctx._cli import main

ROOT = Path(__file__).parent.parent
TRACE = ROOT / "data" / "traces" / "cc-sessionshare-generaltoolcalls.json"
WINDOW = (1280, 1400)  # tall enough to show the token chart without scrolling

pytestmark = needs_chromium("the HTML report is not opened in a browser here")


def test_the_report_renders_offline_without_errors_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert main(["report", str(TRACE), "--html", str(page)]) == 0
    with open_page(page.as_uri(), tmp_path, window=WINDOW) as browser:
        drawn = browser.evaluate(
            "[document.querySelectorAll('#tokens rect').length,"
            " document.querySelectorAll('#cost rect').length]"
        )
        shot = read_png(browser.screenshot("tokens", scale=0.5))
        errors, requests = browser.errors, browser.requests
    # Both charts drew their bars: 53 calls, a transparent hover strip each, and the bars.
    assert drawn[0] > 2 * 53 and drawn[1] > 2 * 53, drawn
    # The screenshot of the token chart is not blank: several colours, much of it not white.
    assert shot.distinct_colours() >= 5, shot.distinct_colours()
    assert shot.inked() > 0.1, shot.inked()
    # No console error, no uncaught exception, no request leaving the page.
    assert errors == []
    assert requests == [page.as_uri()]


def test_the_browser_checks_see_an_error_and_a_request(tmp_path: Path) -> None:
    # A page that logs an error and loads an image from the discard port of this machine:
    # the checks above would fail on it.
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><div id="box" style="height:40px;background:#c00"></div>'
        '<img src="http://127.0.0.1:9/pixel.png"><script>console.error("boom")</script>'
        "</body></html>",
        encoding="utf-8",
    )
    with open_page(page.as_uri(), tmp_path, window=WINDOW) as browser:
        shot = read_png(browser.screenshot("box", scale=0.5))
        errors, requests = browser.errors, browser.requests
    assert any("boom" in error for error in errors), errors
    assert "http://127.0.0.1:9/pixel.png" in requests, requests
    # The element screenshot is of the element: the red box, nothing else.
    assert set(shot.colours()) == {b"\xcc\x00\x00"}


def test_the_comparison_chart_renders_offline_without_errors_in_chromium(tmp_path: Path) -> None:
    benchmarks = str(ROOT / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        import compare
    finally:
        sys.path.remove(benchmarks)
    page = tmp_path / "compare.html"
    hello = ROOT / "data" / "traces" / "openhands-sdk-claude-sonnet4-hello-world.json"
    assert compare.main([str(hello), "--only", "tidyctx", "--jobs", "1", "--html", str(page)]) == 0
    with open_page(page.as_uri(), tmp_path) as browser:
        points = browser.evaluate("document.querySelectorAll('svg circle').length")
        labels = browser.evaluate(
            "[...document.querySelectorAll('svg text')].map(t => t.textContent)"
        )
        errors, requests = browser.errors, browser.requests
    # One point per strategy: no caching, automatic caching, tidyctx.
    assert points == 3
    assert {"none", "auto", "tidyctx"} <= set(labels)
    assert errors == []
    assert requests == [page.as_uri()]
