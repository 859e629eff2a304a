"""Headless Chromium driven over the DevTools protocol: load a page, read its DOM, its console
and every request it made, and take a screenshot; and the PNG checks that tell a drawn page
from a blank one.

Debian's ``chromium`` is started with a fresh profile in the test's own directory and
``--remote-debugging-port=0``; the port it picked is read from ``DevToolsActivePort`` in the
profile. The protocol: https://chromedevtools.github.io/devtools-protocol/
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

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
)
PATIENCE = 120.0  # seconds: a generous bound for a busy machine, not a speed test


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def needs_chromium(unchecked: str) -> pytest.MarkDecorator:
    """Skip where no Chromium is installed, saying how to get it and what goes unchecked."""
    return pytest.mark.skipif(
        chromium() is None,
        reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs "
        f"it): {unchecked}",
    )


@dataclass
class Page:
    """One page over one DevTools session: commands in order, and what the page did meanwhile
    (console errors, uncaught exceptions, error log entries, the URLs it requested)."""

    ws: ClientConnection
    session: str | None = None  # None: commands go to the browser itself
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _loaded: set[str] = field(default_factory=set)  # loader ids whose load event fired
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _event(self, message: dict[str, Any]) -> None:
        if message.get("sessionId") != self.session:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(json.dumps(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(json.dumps(params["entry"]))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.lifecycleEvent" and params.get("name") == "load":
            self._loaded.add(params["loaderId"])

    def _receive(self, timeout: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        command: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if self.session is not None:
            command["sessionId"] = self.session
        self.ws.send(json.dumps(command))
        while True:
            message = self._receive(PATIENCE)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._event(message)

    def pump(self, seconds: float) -> None:
        """Take the events that arrive within ``seconds``."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                message = self._receive(left)
            except TimeoutError:
                return
            self._event(message)

    def navigate(self, url: str) -> None:
        """Go to ``url`` and return once its load event has fired (its scripts have run)."""
        # The load event of this navigation, not of the about:blank before it: its loader id.
        answer = self.call("Page.navigate", url=url)
        if answer.get("errorText"):
            raise RuntimeError(f"{url}: {answer['errorText']}")
        loader = answer["loaderId"]
        end = time.monotonic() + PATIENCE
        while loader not in self._loaded:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{url} did not load within {PATIENCE:.0f} s")
            self._event(self._receive(left))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = PATIENCE) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        end = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > end:
                return value
            self.pump(0.2)

    def screenshot(self, element: str | None = None, scale: float = 1.0) -> bytes:
        """A PNG of the viewport, or of the element with id ``element`` at ``scale``."""
        params: dict[str, Any] = {"format": "png"}
        if element is not None:
            box = self.evaluate(
                f"(function(){{var e=document.getElementById({json.dumps(element)});"
                "if(!e)return null;var r=e.getBoundingClientRect();"
                "return [r.x+scrollX,r.y+scrollY,r.width,r.height];})()"
            )
            if box is None:
                raise LookupError(f"no element with id {element!r} on the page")
            x, y, width, height = box
            params["clip"] = {"x": x, "y": y, "width": width, "height": height, "scale": scale}
        return base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])


@contextmanager
def open_page(url: str, workdir: Path, *, window: tuple[int, int] = (1200, 900)) -> Iterator[Page]:
    """A fresh headless Chromium showing ``url`` once it has loaded, its profile and its log
    in ``workdir`` (the test's own directory: nothing shared with a test running alongside)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    profile, log_path = workdir / "chromium-profile", workdir / "chromium.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--window-size={window[0]},{window[1]}",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            port, path = _endpoint(profile, process, log_path)
            address = f"ws://127.0.0.1:{port}{path}"
            with connect(address, max_size=None, open_timeout=PATIENCE) as ws:
                page = Page(ws)
                # A page of its own, attached in flat mode: its messages carry its session id.
                target = page.call("Target.createTarget", url="about:blank")["targetId"]
                attached = page.call("Target.attachToTarget", targetId=target, flatten=True)
                page.session = attached["sessionId"]
                for domain in ("Runtime", "Log", "Network", "Page"):
                    page.call(f"{domain}.enable")
                page.call("Page.setLifecycleEventsEnabled", enabled=True)
                page.navigate(url)
                yield page
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _endpoint(profile: Path, process: subprocess.Popen[bytes], log: Path) -> tuple[str, str]:
    """The port and browser path Chromium wrote to ``DevToolsActivePort`` once it listens."""
    active = profile / "DevToolsActivePort"
    end = time.monotonic() + PATIENCE
    while True:
        # Written in one go but read maybe half-way: both lines, or look again.
        lines = active.read_text().splitlines() if active.is_file() else []
        if len(lines) >= 2:
            return lines[0], lines[1]
        if process.poll() is not None or time.monotonic() > end:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"chromium did not start (exit code {process.poll()}):\n{tail}")
        time.sleep(0.1)


@dataclass(frozen=True)
class Png:
    """An 8-bit, non-interlaced PNG, decoded: its size and its pixels' colours, row by row."""

    width: int
    height: int
    channels: int
    rows: list[bytes]

    def colours(self) -> Iterator[bytes]:
        """The red, green and blue of every pixel, row by row (alpha left out)."""
        for row in self.rows:
            for i in range(0, len(row), self.channels):
                yield row[i : i + 3] if self.channels >= 3 else row[i : i + 1] * 3

    def distinct_colours(self) -> int:
        return len(set(self.colours()))

    def inked(self, background: bytes = b"\xff\xff\xff") -> float:
        """The share of pixels not of the ``background`` colour."""
        return sum(c != background for c in self.colours()) / (self.width * self.height)


def read_png(data: bytes) -> Png:
    """Decode an 8-bit, non-interlaced PNG (what Chromium's screenshots are)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and color != 3, "only 8-bit non-interlaced"
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    rows: list[bytes] = []
    # The five filters: https://www.w3.org/TR/png-3/#9Filter-types
    for y in range(height):
        method = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if method == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, previous, strict=True))
        elif method != 0:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up = previous[i]
                if method == 1:
                    line[i] = (line[i] + left) & 255
                elif method == 3:
                    line[i] = (line[i] + (left + up) // 2) & 255
                elif method == 4:
                    corner = previous[i - channels] if i >= channels else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                    line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        previous = line
    return Png(width, height, channels, rows)
