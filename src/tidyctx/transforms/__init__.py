"""The transforms users compose: factories returning pure ``Request -> Request`` callables."""

from tidyctx.transforms._cache import cache
from tidyctx.transforms._clear import Clearing, clear
from tidyctx.transforms._compact import compact
from tidyctx.transforms._defaults import defaults
from tidyctx.transforms._expand import expand_tool
from tidyctx.transforms._order import SystemLines, order
from tidyctx.transforms._parallel import ParallelTools, parallel_tools
from tidyctx.transforms._pauses import Pauses, TTLDecision
from tidyctx.transforms._route import (
    Classifier,
    RouteDecision,
    RouteWarning,
    Rule,
    Rules,
    route,
)
from tidyctx.transforms._slice_code import slice_code
from tidyctx.transforms._summarize import SummaryEvent, SummaryWarning, asummarize, summarize
from tidyctx.transforms._toolchanges import ToolChanges
from tidyctx.transforms._trim import trim

__all__ = [
    "Classifier",
    "Clearing",
    "ParallelTools",
    "Pauses",
    "RouteDecision",
    "RouteWarning",
    "Rule",
    "Rules",
    "SummaryEvent",
    "SummaryWarning",
    "SystemLines",
    "TTLDecision",
    "ToolChanges",
    "asummarize",
    "cache",
    "clear",
    "compact",
    "defaults",
    "expand_tool",
    "order",
    "parallel_tools",
    "route",
    "slice_code",
    "summarize",
    "trim",
]
