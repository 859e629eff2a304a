"""The official TypeScript SDK (``@anthropic-ai/sdk`` from npm) streams through the proxy.

The package is installed once per machine into a cache directory (``$TIDYCTX_NPM_CACHE``,
default ``~/.cache/tidyctx-tests/npm``; ``.ci/run`` installs it there); without Node.js, or
when npm cannot install it (offline), the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

import tidyctx as tc
from proxy_helpers import big_output, proxy_to, tool_request
from tidyctx.proxy import select_pipeline
from tidyctx.testing import LocalServer

PACKAGE = "@anthropic-ai/sdk@1"

SCRIPT = textwrap.dedent(
    """
    const fs = require("fs");
    const sdk = require("@anthropic-ai/sdk");
    const Anthropic = sdk.default || sdk;
    (async () => {
      const client = new Anthropic({ baseURL: process.argv[2], apiKey: "sk-test", maxRetries: 0 });
      const request = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
      const stream = client.messages.stream(request);
      const events = [];
      for await (const event of stream) events.push(event.type);
      const message = await stream.finalMessage();
      console.log(JSON.stringify({ events, text: message.content[0].text, usage: message.usage }));
    })().catch((err) => { console.error(String(err)); process.exit(1); });
    """
)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm and node are not installed: the TypeScript SDK test needs Node.js")
    default = Path.home() / ".cache" / "tidyctx-tests" / "npm"
    prefix = Path(os.environ.get("TIDYCTX_NPM_CACHE") or default)
    modules = prefix / "node_modules"
    if not (modules / "@anthropic-ai" / "sdk" / "package.json").is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install {PACKAGE}: {done.stderr.strip()[-300:]}")
    return modules


def test_typescript_sdk_streams_through_the_proxy(node_modules: Path, tmp_path: Path) -> None:
    script = tmp_path / "stream.js"
    script.write_text(SCRIPT)
    request = tmp_path / "request.json"
    request.write_text(json.dumps(tool_request(big_output())))
    with (
        LocalServer() as server,
        proxy_to(server.base_url, select_pipeline("defaults", tc.MemoryStore())) as (proxy, rows),
    ):
        done = subprocess.run(
            ["node", str(script), proxy.base_url, str(request)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "NODE_PATH": str(node_modules)},
        )
        assert done.returncode == 0, done.stderr
        sent = server.requests[-1]
    out = json.loads(done.stdout)
    assert out["text"] == "ok"
    assert out["events"][0] == "message_start" and out["events"][-1] == "message_stop"
    assert sent.body["stream"] is True and len(sent.raw) < 10_000, "the tool result was trimmed"
    # The SDK's own headers arrive as it sent them (SDK 1.x sends the key as a Bearer token).
    key = sent.headers.get("x-api-key") or sent.headers["authorization"].removeprefix("Bearer ")
    assert key == "sk-test" and sent.headers["x-stainless-lang"] == "js"
    (row,) = rows
    assert row["usage"]["output_tokens"] == out["usage"]["output_tokens"]
