"""The proxy's dashboard (one self-contained HTML page), its JSON and ``/metrics``, guarded.

The page is ours alone: inline CSS and JavaScript, no font, script or image from elsewhere; a
Content-Security-Policy (with the hashes of the inline style and script) lets the browser
load nothing else and connect only to the proxy. It polls ``/_tidyctx/stats.json`` and fills
its tables with ``textContent`` only (a model name is the client's text, never markup).

On a loopback bind these pages are open to local processes, like the proxy itself. On any
other bind, and whenever a token is set, they need the token: ``Authorization: Bearer TOKEN``
or ``?token=TOKEN``, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tidyctx.proxy._board import Board, ProxyMetrics

__all__ = ["TOKEN_ENV", "Guard", "dashboard_page", "metrics_response", "stats_response"]

TOKEN_ENV = "TIDYCTX_DASHBOARD_TOKEN"
"""The environment variable ``tidyctx proxy`` reads the dashboard token from."""

_STYLE = """
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--mute:#5f6b76;--line:#d8dee4;
--card:#f6f8fa;--good:#1a7f37;--bad:#cf222e;--bar:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--mute:#8d96a0;
--line:#30363d;--card:#161b22;--good:#3fb950;--bad:#f85149;--bar:#4493f8}}
*{box-sizing:border-box}
body{margin:0;padding:1.2rem 1.6rem;font:14px/1.45 system-ui,sans-serif;color:var(--fg);
background:var(--bg)}
h1{font-size:1.3rem;margin:0 0 .2rem}h2{font-size:1.05rem;margin:1.6rem 0 .5rem}
.mute{color:var(--mute)}.bad{color:var(--bad)}.good{color:var(--good)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.7rem;
margin-top:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem}
.card b{display:block;font-size:1.35rem;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:right;padding:.25rem .5rem;border-bottom:1px solid var(--line);
white-space:nowrap}
th:first-child,td:first-child,td.l,th.l{text-align:left}
td.wrap{white-space:normal;text-align:left}
.bar{display:inline-block;height:.7rem;background:var(--bar);vertical-align:middle}
#status{float:right}
"""

_BODY = """
<span id="status" class="mute">loading</span>
<h1>tidyctx proxy</h1>
<div class="mute">pipeline <span id="pipeline"></span>, since <span id="started"></span></div>
<div class="cards">
<div class="card">calls<b id="calls">0</b></div>
<div class="card">cost<b id="cost">$0</b></div>
<div class="card">without tidyctx<b id="cost-without">$0</b></div>
<div class="card">saved<b id="saved">$0</b></div>
<div class="card">cache-hit share<b id="hit-share">-</b></div>
<div class="card">input tokens cut<b id="cut">0</b></div>
<div class="card">failed open<b id="fail-open">0</b></div>
<div class="card">errors<b id="errors">0</b></div>
</div>
<h2>Tokens by billing class</h2>
<table id="billing"><thead><tr><th class="l">class</th><th>tokens</th><th class="l">share</th>
</tr></thead><tbody></tbody></table>
<h2>Models</h2>
<table id="models"><thead></thead><tbody></tbody></table>
<h2>Sessions</h2>
<table id="sessions"><thead></thead><tbody></tbody></table>
<h2>Transforms</h2>
<p class="mute">A call's cut counts for every transform that changed it.</p>
<table id="transforms"><thead><tr><th class="l">transform</th><th>calls changed</th>
<th>tokens cut</th><th>saved</th></tr></thead><tbody></tbody></table>
<h2>Recent cache misses</h2>
<table id="misses"><thead><tr><th class="l">time</th><th class="l">session</th>
<th class="l">model</th><th>read</th><th>written</th><th>uncached</th><th class="l">reason</th>
</tr></thead><tbody></tbody></table>
<h2>Recent calls</h2>
<table id="recent"><thead><tr><th class="l">time</th><th class="l">session</th>
<th class="l">model</th><th>status</th><th>uncached</th><th>cache write</th><th>cache read</th>
<th>output</th><th>cost</th><th>saved</th><th>ms</th><th class="l">note</th></tr></thead>
<tbody></tbody></table>
"""

_SCRIPT = """
"use strict";
const token = new URLSearchParams(location.search).get("token");
const headers = token ? {Authorization: "Bearer " + token} : {};
const LABEL = {uncached_input: "uncached input", cache_write_5m: "cache write 5m",
  cache_write_1h: "cache write 1h", cache_read: "cache read", output: "output"};
const int = n => (n || 0).toLocaleString("en-US");
const usd = n => "$" + (n || 0).toFixed(4);
const pct = x => x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%";
const hhmm = t => t ? t.slice(11, 19) : "";
function set(id, text) { document.getElementById(id).textContent = text; }
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function fill(id, rows, draw) {
  const body = document.querySelector("#" + id + " tbody");
  const trs = rows.map(r => { const tr = document.createElement("tr"); draw(tr, r); return tr; });
  if (!trs.length) {
    const tr = document.createElement("tr");
    cell(tr, "none yet", "mute l");
    trs.push(tr);
  }
  body.replaceChildren(...trs);
}
const GROUP = ["calls", "cost", "without tidyctx", "saved", "cache-hit share", "uncached",
  "cache write", "cache read", "output", "failed open"];
function group(id, key, rows) {
  const head = document.querySelector("#" + id + " thead");
  if (!head.firstChild) {
    const tr = document.createElement("tr");
    [key, ...GROUP].forEach((h, i) => {
      const th = document.createElement("th"); th.textContent = h;
      if (!i) th.className = "l";
      tr.appendChild(th);
    });
    head.appendChild(tr);
  }
  fill(id, rows, (tr, r) => {
    const t = r.tokens;
    cell(tr, r[key]); cell(tr, int(r.calls)); cell(tr, usd(r.cost_usd));
    cell(tr, usd(r.cost_without_usd)); cell(tr, usd(r.saved_usd));
    cell(tr, pct(r.cache_hit_share)); cell(tr, int(t.uncached_input));
    cell(tr, int(t.cache_write_5m + t.cache_write_1h)); cell(tr, int(t.cache_read));
    cell(tr, int(t.output)); cell(tr, int(r.fail_open));
  });
}
function render(s) {
  const t = s.total;
  set("pipeline", s.pipeline); set("started", s.started.replace("T", " "));
  set("calls", int(t.calls)); set("cost", usd(t.cost_usd));
  set("cost-without", usd(t.cost_without_usd));
  set("saved", usd(t.saved_usd) + (t.cost_without_usd > 0 ?
    " (" + pct(t.saved_usd / t.cost_without_usd) + ")" : ""));
  set("hit-share", pct(t.cache_hit_share));
  set("cut", int(t.tokens_before - t.tokens_after));
  set("fail-open", int(t.fail_open)); set("errors", int(t.errors));
  const all = s.billing_classes.reduce((a, k) => a + t.tokens[k], 0);
  fill("billing", s.billing_classes, (tr, k) => {
    cell(tr, LABEL[k] || k); cell(tr, int(t.tokens[k]));
    const td = cell(tr, "", "l");
    const share = all ? t.tokens[k] / all : 0;
    const bar = document.createElement("span");
    bar.className = "bar"; bar.style.width = (share * 12).toFixed(2) + "rem";
    td.append(bar, " " + pct(share));
  });
  group("models", "model", s.models);
  group("sessions", "session", s.sessions);
  fill("transforms", s.transforms, (tr, r) => {
    cell(tr, r.name); cell(tr, int(r.calls)); cell(tr, int(r.tokens_cut));
    cell(tr, usd(r.saved_usd));
  });
  fill("misses", s.misses, (tr, r) => {
    cell(tr, hhmm(r.time)); cell(tr, r.session || "-", "l"); cell(tr, r.model, "l");
    cell(tr, int(r.cache_read)); cell(tr, int(r.cache_write)); cell(tr, int(r.uncached_input));
    cell(tr, r.reason, "wrap");
  });
  fill("recent", s.recent, (tr, r) => {
    const k = r.tokens;
    cell(tr, hhmm(r.time)); cell(tr, r.session || "-", "l"); cell(tr, r.model, "l");
    cell(tr, r.status === null || r.status === undefined ? "-" : String(r.status),
      r.status >= 400 ? "bad" : "");
    cell(tr, int(k.uncached_input)); cell(tr, int(k.cache_write_5m + k.cache_write_1h));
    cell(tr, int(k.cache_read)); cell(tr, int(k.output));
    cell(tr, r.cost_usd === null ? "-" : usd(r.cost_usd));
    cell(tr, r.saved_usd === null ? "-" : usd(r.saved_usd));
    cell(tr, r.latency_ms === null ? "-" : Math.round(r.latency_ms).toString());
    const note = [r.transforms.join(", "), r.fail_open ? "fail open: " + r.fail_open : "",
      r.error || ""].filter(Boolean).join("; ");
    cell(tr, note, "wrap" + (r.fail_open || r.error ? " bad" : ""));
  });
}
async function poll() {
  try {
    const answer = await fetch("stats.json", {headers, cache: "no-store"});
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    render(await answer.json());
    set("status", "updated " + new Date().toLocaleTimeString());
    document.getElementById("status").className = "mute";
  } catch (err) {
    set("status", "not updated: " + err.message);
    document.getElementById("status").className = "bad";
  }
  setTimeout(poll, 2000);
}
poll();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    '<meta name="referrer" content="no-referrer">'
    '<link rel="icon" href="data:,"><title>tidyctx proxy</title>'
    f"<style>{_STYLE}</style></head><body>{_BODY}<script>{_SCRIPT}</script></body></html>\n"
).encode()
# The browser may load and connect to nothing but the proxy itself, and run only our script.
_CSP = (
    f"default-src 'none'; style-src {_sha256(_STYLE)}; script-src {_sha256(_SCRIPT)}; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_PRIVATE = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_BEARER = re.compile(r"bearer\s+(\S+)", re.IGNORECASE)


class Guard:
    """Who may see the dashboard, its JSON and the metrics.

    With no token, only a loopback bind serves them (403 otherwise: set a token to expose them
    on a network). With a token, every request must carry it (401 otherwise).
    """

    def __init__(self, token: str | None, loopback: bool) -> None:
        self.token = token.encode() if token else None
        self.loopback = loopback

    def refusal(self, request: Request) -> Response | None:
        if self.token is None:
            if self.loopback:
                return None
            return _refuse(
                403,
                "the dashboard and /metrics of a proxy bound to a non-loopback address need a "
                "token: start it with --dashboard-token or TIDYCTX_DASHBOARD_TOKEN",
            )
        given = request.query_params.get("token")
        match = _BEARER.fullmatch(request.headers.get("authorization", "").strip())
        if match:
            given = match.group(1)
        if given is not None and hmac.compare_digest(given.encode(), self.token):
            return None
        response = _refuse(401, "a dashboard token is required (Authorization: Bearer TOKEN)")
        response.headers["www-authenticate"] = 'Bearer realm="tidyctx"'
        return response


def _refuse(status: int, message: str) -> Response:
    kind = "authentication_error" if status == 401 else "permission_error"
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}
    return JSONResponse(body, status_code=status, headers=_PRIVATE)


def dashboard_page() -> Response:
    return Response(
        _PAGE,
        media_type="text/html; charset=utf-8",
        headers={**_PRIVATE, "content-security-policy": _CSP, "x-frame-options": "DENY"},
    )


def stats_response(board: Board) -> Response:
    return JSONResponse(board.snapshot(), headers=_PRIVATE)


def metrics_response(metrics: ProxyMetrics, accept: str | None) -> Response:
    encoder, content_type = choose_encoder(accept or "")
    return Response(encoder(metrics.registry), headers={**_PRIVATE, "content-type": content_type})
