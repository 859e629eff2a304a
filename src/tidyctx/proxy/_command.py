"""The ``tidyctx proxy`` and ``tidyctx run`` commands."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from tidyctx._memo import DEFAULT_MAX_BYTES, set_memo_limit
from tidyctx.ledger import Ledger
from tidyctx.proxy._app import DEFAULT_UPSTREAM, ProxyConfig, _is_loopback, create_app
from tidyctx.proxy._dashboard import TOKEN_ENV
from tidyctx.proxy._pipeline import PIPELINES, select_pipeline
from tidyctx.proxy._serve import RunningProxy, default_store_path, open_store, serve
from tidyctx.store import RedisStore

# The built-in pipelines whose work on a small body is short and stays in this process (with a
# memory or SQLite store): the proxy runs it on its event loop (ProxyConfig.inline_bytes).
_LOCAL_PIPELINES = frozenset({"defaults", "cache-only"})
_INLINE_BYTES = 256 * 1024

__all__ = ["UPSTREAM_ENV", "add_proxy_options", "proxy_command", "run_command"]

UPSTREAM_ENV = "TIDYCTX_UPSTREAM"
"""The environment variable that sets the upstream when ``--upstream`` is not given. (Not
``ANTHROPIC_BASE_URL``: ``tidyctx run`` points that at the proxy itself.)"""

DEFAULT_PORT = 8788


def add_proxy_options(parser: argparse.ArgumentParser) -> None:
    """The options ``tidyctx proxy`` and ``tidyctx run`` share."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, loopback)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--upstream",
        help=f"where requests go (default: ${UPSTREAM_ENV}, else {DEFAULT_UPSTREAM})",
    )
    parser.add_argument(
        "--pipeline",
        default="defaults",
        help=f"{', '.join(PIPELINES)} or module:attr (default: defaults; off only records)",
    )
    parser.add_argument(
        "--store",
        help=f"where cut originals are kept: a SQLite path (default {default_store_path()}), "
        "sqlite:///PATH, redis://HOST:PORT/DB for a shared proxy, or memory:",
    )
    parser.add_argument(
        "--memo-mb",
        type=_memo_mb,
        default=DEFAULT_MAX_BYTES >> 20,
        metavar="MB",
        help="bound of the transforms' memo, in MB of text held (default "
        f"{DEFAULT_MAX_BYTES >> 20}); the process grows to about 3-4x this at most",
    )
    parser.add_argument(
        "--ledger",
        help="append one tidyctx/1 ledger row per API call to this file (tidyctx report reads it)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name to answer to (for a non-loopback --host)",
    )
    parser.add_argument(
        "--dashboard-token",
        help=f"what the dashboard and /metrics require (default: ${TOKEN_ENV}); without one "
        "they are served on a loopback --host only",
    )


def _memo_mb(value: str) -> int:
    try:
        mb = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of MB, got {value!r}") from None
    if mb < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {mb}")
    return mb


def _config(args: argparse.Namespace) -> ProxyConfig:
    upstream = args.upstream or os.environ.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM
    # The memo holds what the transforms learned of each conversation (token counts, the
    # state each resumes from); bounded, so a long-running proxy stops growing once it is full.
    set_memo_limit(args.memo_mb << 20)
    store = open_store(args.store)
    local = not isinstance(store, RedisStore)
    transforms = select_pipeline(args.pipeline, store)
    record = _ledger(args.ledger).record if args.ledger else None
    return ProxyConfig(
        upstream=upstream,
        transforms=transforms,
        pipeline=args.pipeline,
        record=record,
        host=args.host,
        allowed_hosts=args.allow_host,
        dashboard_token=_token(args),
        inline_bytes=_INLINE_BYTES if args.pipeline in _LOCAL_PIPELINES and local else 0,
    )


def _ledger(path: str) -> Ledger:
    """The ``--ledger`` file, created readable by its owner only when missing."""
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    return Ledger(path)


def _token(args: argparse.Namespace) -> str | None:
    return getattr(args, "dashboard_token", None) or os.environ.get(TOKEN_ENV) or None


def proxy_command(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except (ValueError, OSError) as err:
        print(f"tidyctx proxy: {err}", file=sys.stderr)
        return 2
    app = create_app(config)

    def listening(port: int) -> None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"tidyctx proxy on http://{host}:{port} -> {config.upstream} (pipeline "
            f"{args.pipeline}); point agents at it: ANTHROPIC_BASE_URL=http://{host}:{port} "
            f"(dashboard: http://{host}:{port}/_tidyctx/)",
            file=sys.stderr,
            flush=True,
        )

    try:
        serve(app, args.host, args.port, on_listen=listening)
    except OSError as err:
        print(f"tidyctx proxy: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    return 0


# The proxy is on loopback: never ask an HTTP(S)_PROXY from the environment to reach it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with _OPENER.open(request, timeout=5) as response:
        return json.loads(response.read())


def _running(host: str, port: int, upstream: str, pipeline: str) -> bool:
    """Whether a tidyctx proxy with this upstream and pipeline answers on ``host:port``."""
    try:
        health = _get_json(f"http://{host}:{port}/_tidyctx/health")
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return (
        isinstance(health, dict)
        and health.get("tidyctx") == "proxy"
        and health.get("upstream") == upstream
        and health.get("pipeline") == pipeline
    )


def run_command(args: argparse.Namespace, command: Sequence[str]) -> int:
    """Run ``command`` behind a proxy; return its exit code; print the command's totals."""
    if not command:
        print("tidyctx run: give the command after --: tidyctx run -- claude", file=sys.stderr)
        return 2
    upstream = args.upstream or os.environ.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM
    if not _token(args) and not _is_loopback(args.host):
        # Off loopback the session totals need a token: the proxy this command starts gets one.
        args.dashboard_token = secrets.token_urlsafe(24)
    own: RunningProxy | None = None
    if _running(args.host, args.port, upstream, args.pipeline):
        base = f"http://{args.host}:{args.port}"
    else:
        try:
            config = _config(args)
        except (ValueError, OSError) as err:
            print(f"tidyctx run: {err}", file=sys.stderr)
            return 2
        try:
            own = RunningProxy(create_app(config), args.host, args.port)
        except OSError:  # the port is taken (by something else): any free port does
            own = RunningProxy(create_app(config), args.host, 0)
        base = own.base_url
    # The session prefix tags this command's calls, so a shared proxy can total them apart.
    session = secrets.token_hex(8)
    env = {**os.environ, "ANTHROPIC_BASE_URL": f"{base}/_tidyctx/s/{session}"}
    try:
        try:
            code = subprocess.call(list(command), env=env)
        except OSError as err:
            print(f"tidyctx run: cannot run {command[0]!r}: {err.strerror or err}", file=sys.stderr)
            return 127
        except KeyboardInterrupt:
            code = 130
        try:
            totals = _get_json(f"{base}/_tidyctx/sessions/{session}", _token(args))
        except (OSError, ValueError, urllib.error.URLError):
            totals = None
        if isinstance(totals, dict):
            print(_summary(totals), file=sys.stderr)
    finally:
        if own is not None:
            own.stop()
    return code


def _summary(totals: dict[str, Any]) -> str:
    before, after = totals.get("tokens_before", 0), totals.get("tokens_after", 0)
    line = (
        f"tidyctx: {totals.get('calls', 0)} API calls, cost ${totals.get('cost_usd', 0.0):.4f}, "
        f"saved ${totals.get('saved_usd', 0.0):.4f}"
    )
    if before:
        line += f" ({before - after:,} of {before:,} input tokens cut, {1 - after / before:.0%})"
    if totals.get("fail_open"):
        line += f"; {totals['fail_open']} requests sent unchanged (see the ledger's fail_open)"
    return line
