"""Serving the proxy: the store, uvicorn on a socket, in the foreground or in a thread.

uvicorn runs on uvloop and parses HTTP with httptools (both C extensions, in the ``proxy``
extra) when they are installed, else on asyncio with its pure-Python parser (h11): the proxy's
own CPU per call is mostly reading and writing HTTP, and these take it down by up to half
(docs/benchmarks.md, "The proxy under load").
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette

from tidyctx.store import MemoryStore, RedisStore, SQLiteStore, Store

__all__ = ["RunningProxy", "default_store_path", "open_store", "serve", "start_in_thread"]


def default_store_path() -> Path:
    """Where the proxy keeps cut originals by default: the user's cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tidyctx" / "proxy-store.sqlite"


def open_store(url: str | None) -> Store:
    """The store named by ``url``: ``redis://...`` (or ``rediss://``), ``memory:``, a SQLite
    file path (or ``sqlite:///path``); None for the default SQLite file."""
    if url is None:
        path = default_store_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    if url == "memory:":
        return MemoryStore()
    if url.startswith("sqlite:///"):
        url = url[len("sqlite://") :]
    elif "://" in url:
        raise ValueError(
            f"--store {url!r}: expected redis://..., sqlite:///PATH, memory: or a path"
        )
    return SQLiteStore(url)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and accepted connections inherit it; with proto 0, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every response written in two parts.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _http_protocol() -> Any:
    """uvicorn's httptools protocol, made to keep an absolute request target, or "h11"."""
    if not _installed("httptools"):
        return "h11"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Protocol(HttpToolsProtocol):
        # httptools splits a request target into its parts and uvicorn keeps only the path, so
        # `POST http://elsewhere/v1/messages` would look like `/v1/messages`; h11 passes the
        # target as sent. Keep it as h11 does, so the proxy refuses it (never an open proxy).
        def on_headers_complete(self) -> None:
            url: bytes = getattr(self, "url", b"/")
            super().on_headers_complete()
            if not url.startswith(b"/"):
                self.scope["raw_path"] = url.partition(b"?")[0]

    return Protocol


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed, else None (asyncio's own)."""
    if not _installed("uvloop"):
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = importlib.import_module(
        "uvloop"
    ).new_event_loop
    return factory


def _server(app: Starlette, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        http=_http_protocol(),
        loop="asyncio" if loop_factory() is None else "uvloop",
        # The proxy does not use the client's address: X-Forwarded-* headers are not its own.
        proxy_headers=False,
        log_level=log_level,
        access_log=False,  # the ledger is the record; an access log adds nothing private-safe
        # The upstream's own Date and Server headers are relayed; uvicorn must not add its own.
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        lifespan="on",
    )
    return uvicorn.Server(config)


def serve(
    app: Starlette,
    host: str,
    port: int,
    *,
    log_level: str = "warning",
    on_listen: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (0: a free port) until interrupted; ``on_listen`` gets
    the port once the socket listens."""
    sock = _bind(host, port)
    if on_listen is not None:
        on_listen(sock.getsockname()[1])
    # The pipeline's worker threads hold the GIL for milliseconds at a time; by default a
    # thread that wants it back (the event loop, relaying other streams) waits up to 5 ms
    # each time (https://docs.python.org/3/library/sys.html#sys.setswitchinterval). This
    # process serves the proxy alone, so it hands the GIL over every 0.5 ms instead.
    sys.setswitchinterval(0.0005)
    _server(app, log_level).run(sockets=[sock])


class RunningProxy:
    """A proxy served by uvicorn in a background thread; :meth:`stop` ends it."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._sock = _bind(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._server = _server(app, "warning")
        self._thread = threading.Thread(
            target=self._run,
            name=f"tidyctx-proxy-{self.port}",
            daemon=True,
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the proxy stopped while starting")
            self._thread.join(0.01)

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(self._server.serve(sockets=[self._sock]))

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join()
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> RunningProxy:
    """Serve ``app`` in a background thread on ``host:port`` (0: a free port)."""
    return RunningProxy(app, host, port)
