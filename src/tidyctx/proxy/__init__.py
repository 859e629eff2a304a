"""``tidyctx proxy``: the pipeline in front of any agent that reads ``ANTHROPIC_BASE_URL``.

A local HTTP proxy for the Anthropic API: ``POST /v1/messages`` and ``count_tokens`` go
through a pipeline of tidyctx transforms, everything else is forwarded untouched, responses are
relayed as they arrive, and each call becomes a ``tidyctx/1`` ledger row. See ``docs/proxy.md``.

>>> from tidyctx.proxy import ProxyConfig, create_app
>>> app = create_app(ProxyConfig(upstream="http://127.0.0.1:9"))
>>> type(app).__mro__[1].__name__
'Starlette'
"""

from tidyctx.proxy._app import DEFAULT_UPSTREAM, ProxyConfig, SessionTotals, create_app
from tidyctx.proxy._ledger import Record, UsageTap
from tidyctx.proxy._pipeline import PIPELINES, Prepared, prepare, select_pipeline
from tidyctx.proxy._serve import RunningProxy, open_store, serve, start_in_thread

__all__ = [
    "DEFAULT_UPSTREAM",
    "PIPELINES",
    "Prepared",
    "ProxyConfig",
    "Record",
    "RunningProxy",
    "SessionTotals",
    "UsageTap",
    "create_app",
    "open_store",
    "prepare",
    "select_pipeline",
    "serve",
    "start_in_thread",
]
