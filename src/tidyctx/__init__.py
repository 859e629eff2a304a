"""tidyctx: pure, composable transforms over Anthropic Messages API requests.

>>> import tidyctx as tc
>>> tc.pipe([{"role": "user", "content": "hi"}])
[{'role': 'user', 'content': 'hi'}]
"""

from tidyctx.pipeline import Report, Step, Transform, explain, pipe
from tidyctx.request import Request, ValidationError, normalize, validate
from tidyctx.store import MemoryStore, RedisStore, SQLiteStore, Store, keep
from tidyctx.transforms.cache import cache
from tidyctx.transforms.expand import expand_tool
from tidyctx.transforms.order import order
from tidyctx.transforms.trim import trim

__all__ = [
    "MemoryStore",
    "RedisStore",
    "Report",
    "Request",
    "SQLiteStore",
    "Step",
    "Store",
    "Transform",
    "ValidationError",
    "cache",
    "expand_tool",
    "explain",
    "keep",
    "normalize",
    "order",
    "pipe",
    "trim",
    "validate",
]
__version__ = "0.1.0.dev0"
