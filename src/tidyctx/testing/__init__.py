"""A local Messages API server for offline tests: the real SDK talks to it over HTTP.

>>> from tidyctx.testing import local_server
>>> callable(local_server)
True
"""

from tidyctx.testing._server import (
    ERROR_TYPES,
    Fail,
    Hang,
    LocalServer,
    RecordedRequest,
    Reply,
    Responder,
    TokenCounter,
    UsageHook,
    error_type_for,
    is_summary_call,
    local_server,
    summary_responder,
)

__all__ = [
    "ERROR_TYPES",
    "Fail",
    "Hang",
    "LocalServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "TokenCounter",
    "UsageHook",
    "error_type_for",
    "is_summary_call",
    "local_server",
    "summary_responder",
]
