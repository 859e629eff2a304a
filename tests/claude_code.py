"""The Claude Code CLI (npm ``@anthropic-ai/claude-code``) as a test client: installed once per
machine into a cache directory, run headless against a :class:`~tidyctx.testing.LocalServer`
with a scripted multi-turn tool loop.

The CLI is a native binary that runs offline: ``ANTHROPIC_BASE_URL`` points it at the server,
``ANTHROPIC_API_KEY=test`` passes for a key, a throwaway ``HOME`` keeps the user's settings out,
and ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` stops its other calls
(https://docs.anthropic.com/en/docs/claude-code/settings#environment-variables).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

VERSION = os.environ.get("TIDYCTX_CLAUDE_CODE_VERSION", "2.1.337")
"""The CLI version the tests install (``latest`` to try the newest)."""

PACKAGE = "@anthropic-ai/claude-code"


def cache_dir() -> Path:
    """Where the CLI is installed: ``$TIDYCTX_TEST_CACHE`` or ``~/.cache/tidyctx-tests``."""
    base = os.environ.get("TIDYCTX_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tidyctx-tests"
    )
    return Path(base) / "npm" / f"claude-code-{VERSION}"


def install() -> Path | str:
    """The path of the ``claude`` binary, installing it first if needed; or why it cannot be
    had (no npm, no network), for a skip reason."""
    target = cache_dir()
    binary = target / "node_modules" / ".bin" / "claude"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed: cannot install the Claude Code CLI"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Installed beside the target and renamed into place, so that a run cut short (or another
    # process installing at the same time) never leaves a half-installed CLI behind.
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),  # else npm installs into the nearest directory with a package.json
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"{PACKAGE}@{VERSION}",
            ],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"npm install {PACKAGE}@{VERSION} failed (offline?): {' / '.join(tail)}"
        with contextlib.suppress(OSError):  # another process got there first
            staging.rename(target)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"npm install {PACKAGE}@{VERSION} failed: {err}"
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return binary if binary.exists() else f"npm installed no claude binary under {target}"


def run(
    binary: Path,
    base_url: str,
    prompt: str,
    workdir: Path,
    *,
    timeout: float = 300,
    home: Path | None = None,
) -> dict[str, Any]:
    """Run ``claude -p PROMPT --output-format json`` against ``base_url``; its JSON result.
    ``home``: the HOME to run in, kept afterwards (its session log is under
    ``.claude/projects/``); by default a throwaway one."""
    keep = home is not None
    home = home or Path(tempfile.mkdtemp(prefix="claude-home."))
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "test",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        done = subprocess.run(
            [
                str(binary),
                "-p",
                prompt,
                "--output-format",
                "json",
                "--allowedTools",
                "Bash,Read",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0 and not done.stdout.strip():
        raise AssertionError(f"claude exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def tool_results(body: Mapping[str, Any]) -> int:
    """How many tool_result blocks the request's messages hold."""
    return sum(
        1
        for message in body.get("messages", [])
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    )
