"""tidyctx: pure, composable transforms over Anthropic Messages API requests.

>>> import tidyctx as tc
>>> tc.pipe([{"role": "user", "content": "hi"}])
[{'role': 'user', 'content': 'hi'}]
"""

from tidyctx._betas import required_betas
from tidyctx._memo import MemoStats, clear_memo, memo_stats, set_memo_limit
from tidyctx._pipeline import Report, Step, Transform, explain, pipe
from tidyctx._request import Request, ValidationError, normalize, validate
from tidyctx._tools import arun_tools, run_tools
from tidyctx._wrap import wrap
from tidyctx.batch import BatchError, BatchJob
from tidyctx.code import (
    Definition,
    Slice,
    SlicingError,
    SymbolNotFound,
    definitions,
    outline,
    slice_lines,
    slice_symbol,
)
from tidyctx.ledger import Ledger, LedgerError, read_ledger
from tidyctx.store import MemoryStore, RedisStore, SQLiteStore, Store, store_text
from tidyctx.tokens import LocalCounter, TokenCounter
from tidyctx.transforms import (
    Classifier,
    Clearing,
    ParallelTools,
    Pauses,
    RouteDecision,
    RouteWarning,
    Rule,
    Rules,
    SummaryEvent,
    SummaryWarning,
    SystemLines,
    ToolChanges,
    TTLDecision,
    asummarize,
    cache,
    clear,
    compact,
    defaults,
    expand_tool,
    order,
    parallel_tools,
    route,
    slice_code,
    summarize,
    trim,
)

__all__ = [
    "BatchError",
    "BatchJob",
    "Classifier",
    "Clearing",
    "Definition",
    "Ledger",
    "LedgerError",
    "LocalCounter",
    "MemoStats",
    "MemoryStore",
    "ParallelTools",
    "Pauses",
    "RedisStore",
    "Report",
    "Request",
    "RouteDecision",
    "RouteWarning",
    "Rule",
    "Rules",
    "SQLiteStore",
    "Slice",
    "SlicingError",
    "Step",
    "Store",
    "SummaryEvent",
    "SummaryWarning",
    "SymbolNotFound",
    "SystemLines",
    "TTLDecision",
    "TokenCounter",
    "ToolChanges",
    "Transform",
    "ValidationError",
    "arun_tools",
    "asummarize",
    "cache",
    "clear",
    "clear_memo",
    "compact",
    "defaults",
    "definitions",
    "expand_tool",
    "explain",
    "memo_stats",
    "normalize",
    "order",
    "outline",
    "parallel_tools",
    "pipe",
    "read_ledger",
    "required_betas",
    "route",
    "run_tools",
    "set_memo_limit",
    "slice_code",
    "slice_lines",
    "slice_symbol",
    "store_text",
    "summarize",
    "trim",
    "validate",
    "wrap",
]
__version__ = "0.1.0.dev0"
