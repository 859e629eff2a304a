"""Headless Chromium driven over the DevTools protocol: load a page, read its DOM, its console
and every request it made, and take a screenshot.

Debian's ``chromium`` (``/usr/bin/chromium``) is started with a fresh profile and
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
    "--remote-debugging-port=0",
    "--window-size=1200,900",
)
STARTUP = 120.0  # seconds: generous, for a busy machine


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Page:
    """What one page did: console errors, uncaught exceptions, the URLs it requested."""

    ws: ClientConnection
    session: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(json.dumps(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(json.dumps(params["entry"]))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self.ws.send(
            json.dumps({"id": ident, "method": method, "params": params, "sessionId": self.session})
        )
        while True:
            message = json.loads(self.ws.recv(timeout=STARTUP))
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
                message = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return
            self._event(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = STARTUP) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        end = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > end:
                return value
            self.pump(0.2)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


@contextmanager
def open_page(binary: str, profile: Path, url: str) -> Iterator[Page]:
    """Chromium with a fresh ``profile`` directory, showing ``url`` once it has loaded."""
    process = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        end = time.monotonic() + STARTUP
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):
            if process.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"chromium did not start (exit code {process.poll()})")
            time.sleep(0.1)
        port, path = active.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as ws:
            create = {"id": 0, "method": "Target.createTarget", "params": {"url": "about:blank"}}
            ws.send(json.dumps(create))
            target = _answer(ws, 0)["targetId"]
            ws.send(
                json.dumps(
                    {
                        "id": -1,
                        "method": "Target.attachToTarget",
                        "params": {"targetId": target, "flatten": True},
                    }
                )
            )
            page = Page(ws, _answer(ws, -1)["sessionId"])
            for domain in ("Runtime", "Log", "Network", "Page"):
                page.call(f"{domain}.enable")
            page.call("Page.navigate", url=url)
            page.wait_for("document.readyState === 'complete'")
            yield page
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answer(ws: ClientConnection, ident: int) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=STARTUP))
        if message.get("id") == ident:
            result: dict[str, Any] = message["result"]
            return result


def png_colors(data: bytes, limit: int = 64) -> int:
    """How many distinct pixel values an 8-bit, non-interlaced PNG has (up to ``limit``)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0, "only 8-bit non-interlaced PNGs"
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 255
        for x in range(0, stride, channels * 7):  # a sample of each row is enough
            seen.add(bytes(line[x : x + channels]))
        if len(seen) >= limit:
            break
        previous = line
    return len(seen)
