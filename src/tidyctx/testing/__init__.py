"""A local Messages API server for offline tests: the real SDK talks to it over HTTP.

>>> from tidyctx.testing import local_server
>>> callable(local_server)
True
"""

from tidyctx.testing._batches import BatchOutcome
from tidyctx.testing._http import RecordedRequest
from tidyctx.testing._messages import (
    ERROR_TYPES,
    Fail,
    Hang,
    Reply,
    Responder,
    ScriptItem,
    TokenCounter,
    UsageHook,
    error_type_for,
)
from tidyctx.testing._server import LocalServer, local_server
from tidyctx.testing._summarizer import is_summary_call, summary_responder

__all__ = [
    "ERROR_TYPES",
    "BatchOutcome",
    "Fail",
    "Hang",
    "LocalServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptItem",
    "TokenCounter",
    "UsageHook",
    "error_type_for",
    "is_summary_call",
    "local_server",
    "summary_responder",
]
