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
from tidyctx.testing._prefix import (
    Binding,
    PrefixMismatch,
    merge_bindings,
    mismatch_message,
    prefix_mismatches,
    thinking_bindings,
)
from tidyctx.testing._server import LocalServer, PrefixCheck, local_server
from tidyctx.testing._summarizer import is_summary_call, summary_responder

__all__ = [
    "ERROR_TYPES",
    "BatchOutcome",
    "Binding",
    "Fail",
    "Hang",
    "LocalServer",
    "PrefixCheck",
    "PrefixMismatch",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptItem",
    "TokenCounter",
    "UsageHook",
    "error_type_for",
    "is_summary_call",
    "local_server",
    "merge_bindings",
    "mismatch_message",
    "prefix_mismatches",
    "summary_responder",
    "thinking_bindings",
]
