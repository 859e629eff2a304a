"""The HTML report opened in headless Chromium: it draws its charts, logs no error and fetches
nothing. Chromium is driven over the DevTools protocol with the ``websockets`` client; the test
is skipped (and says why) where Debian's ``chromium`` is not installed."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest

from tidyctx._cli import main

ROOT = Path(__file__).parent.parent
TRACE = ROOT / "data" / "traces" / "cc-sessionshare-generaltoolcalls.json"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",  # the browser picks a free port and writes it to the profile
    "--window-size=1280,1400",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it): "
    "the HTML report is not opened in a browser here",
)


class DevTools:
    """A minimal DevTools protocol session on one page: commands in order, events kept."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=120))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            message = json.loads(self.ws.recv(timeout=120))
            self.events.append(message)
            if message.get("method") == method:
                return


def _port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 120  # a generous bound for a busy machine, not a speed test
    while time.monotonic() < deadline:
        if active.is_file():
            text = active.read_text().split()
            if text:
                return int(text[0])
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"chromium wrote no DevToolsActivePort (exit status {proc.poll()})")


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB or RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6), (depth, color)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prior = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prior[i]
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 255
            elif kind == 4:
                upper_left = prior[i - bpp] if i >= bpp else 0
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prior = line
    return width, height, [bytes(r) for r in rows]


Opened = tuple[Any, dict[str, Any], list[dict[str, Any]]]


def open_in_chromium(page: Path, tmp_path: Path, expression: str, element: str) -> Opened:
    """Load ``page`` in a fresh headless Chromium; return the value of ``expression``, a PNG
    screenshot of the element with id ``element`` (half scale) and every DevTools event."""
    from websockets.sync.client import connect

    profile = tmp_path / "profile"
    assert CHROMIUM is not None
    with (tmp_path / "chromium.log").open("wb") as log:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            port = _port(profile, proc)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=60) as r:
                targets = json.load(r)
            target = next(t for t in targets if t.get("type") == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=64 << 20, open_timeout=60) as ws:
                tools = DevTools(ws)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    tools.send(f"{domain}.enable")
                tools.send("Page.navigate", url=page.as_uri())
                tools.wait_for("Page.loadEventFired")
                value = tools.send("Runtime.evaluate", expression=expression, returnByValue=True)
                box = tools.send(
                    "Runtime.evaluate",
                    expression=f"(function(){{var r=document.getElementById('{element}')"
                    ".getBoundingClientRect();return [r.x,r.y+scrollY,r.width,r.height];})()",
                    returnByValue=True,
                )["result"]["value"]
                clip = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 0.5}
                shot = tools.send("Page.captureScreenshot", format="png", clip=clip)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return value["result"].get("value"), shot, tools.events


def errors_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Console errors, failed assertions, uncaught exceptions and error log entries."""
    return [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.exceptionThrown"
        or (
            e.get("method") == "Runtime.consoleAPICalled"
            and e["params"].get("type") in ("error", "assert")
        )
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
    ]


def requests_of(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]


def test_the_report_renders_offline_without_errors_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert main(["report", str(TRACE), "--html", str(page)]) == 0
    drawn, shot, events = open_in_chromium(
        page,
        tmp_path,
        "[document.querySelectorAll('#tokens rect').length,"
        " document.querySelectorAll('#cost rect').length]",
        "tokens",
    )
    # Both charts drew their bars: 53 calls, a transparent hover strip each, and the bars.
    assert drawn[0] > 2 * 53 and drawn[1] > 2 * 53, drawn
    # The screenshot of the token chart is not blank: several colours, much of it not white.
    width, height, rows = _pixels(base64.b64decode(shot["data"]))
    bpp = len(rows[0]) // width
    colours = {row[i : i + 3] for row in rows for i in range(0, len(row), bpp)}
    inked = sum(
        1 for row in rows for i in range(0, len(row), bpp) if row[i : i + 3] != b"\xff\xff\xff"
    )
    assert len(colours) >= 5, len(colours)
    assert inked > 0.1 * width * height, (inked, width * height)
    # No console error, no uncaught exception, no request leaving the page.
    assert errors_of(events) == []
    assert requests_of(events) == [page.as_uri()]


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
    _, _, events = open_in_chromium(page, tmp_path, "1", "box")
    assert any("boom" in json.dumps(e) for e in errors_of(events))
    assert "http://127.0.0.1:9/pixel.png" in requests_of(events)
