"""tidyctx: pure, composable transforms over Anthropic Messages API requests.

>>> import tidyctx as tc
>>> tc.pipe([{"role": "user", "content": "hi"}])
[{'role': 'user', 'content': 'hi'}]
"""

from tidyctx.pipeline import Report, Step, Transform, explain, pipe
from tidyctx.request import Request, ValidationError, normalize, validate
from tidyctx.store import MemoryStore, RedisStore, SQLiteStore, Store, keep
from tidyctx.transforms.cache import cache
from tidyctx.transforms.compact import compact
from tidyctx.transforms.expand import expand_tool
from tidyctx.transforms.order import order
from tidyctx.transforms.slice_code import slice_code
from tidyctx.transforms.slicing import (
    Definition,
    Slice,
    SlicingError,
    SymbolNotFound,
    definitions,
    outline,
    slice_lines,
    slice_symbol,
)
from tidyctx.transforms.summarize import SummaryEvent, SummaryWarning, asummarize, summarize
from tidyctx.transforms.trim import trim

__all__ = [
    "Definition",
    "MemoryStore",
    "RedisStore",
    "Report",
    "Request",
    "SQLiteStore",
    "Slice",
    "SlicingError",
    "Step",
    "Store",
    "SummaryEvent",
    "SummaryWarning",
    "SymbolNotFound",
    "Transform",
    "ValidationError",
    "asummarize",
    "cache",
    "compact",
    "definitions",
    "expand_tool",
    "explain",
    "keep",
    "normalize",
    "order",
    "outline",
    "pipe",
    "slice_code",
    "slice_lines",
    "slice_symbol",
    "summarize",
    "trim",
    "validate",
]
__version__ = "0.1.0.dev0"
