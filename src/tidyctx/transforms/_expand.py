"""expand_tool(): a tool the agent calls to read back text that tidyctx removed.

Projection, truncation, compaction, clearing and the notes for repeated lines keep what they
remove in a :class:`~tidyctx.store.Store` and leave a marker naming its id (``[tidyctx: ...
id="tc_..." ...]``). Give the agent the tool definition this module builds and run its handler
on the agent's calls:

>>> from tidyctx.store import MemoryStore, store_text
>>> store = MemoryStore()
>>> key = store_text(store, "0123456789" * 3)
>>> tool, handler = expand_tool(store)
>>> tool["name"], tool["input_schema"]["required"]
('tidyctx_expand', ['id'])
>>> handler({"id": key})
'012345678901234567890123456789'
>>> print(handler({"id": key, "offset": 25, "length": 10}))
[tidyctx: tc_... characters 25–30 of 30]
56789

Offsets and lengths count characters (Python ``str`` code points), not bytes or tokens. A
slice never splits a character; the API's JSON carries astral characters as UTF-16 surrogate
pairs, and a code-point slice never cuts inside one.

Every answer is text, errors included (an unknown or evicted id, an offset past the end, an
argument of the wrong type, a store whose disk or server fails): the model reads it and can
correct its call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tidyctx.store import KEY_PREFIX, Store

__all__ = ["DEFAULT_LENGTH", "MAX_LENGTH", "expand_tool"]

DEFAULT_LENGTH = 8_000
"""Characters returned when the call gives no ``length``."""
MAX_LENGTH = 100_000
"""The most characters one call returns; a longer ``length`` is cut to this."""

# Messages API, tools[].name: "Must match the regex ^[a-zA-Z0-9_-]{1,64}$".
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")

Handler = Callable[[Mapping[str, Any]], str]


def _description() -> str:
    return (
        "Read back text that was removed from this conversation to save context. Where a tool "
        "result was cut, compacted, projected to fewer fields or cleared, a marker such as "
        '[tidyctx: ... id="tc_0123456789abcdef" ...] stands in its place, and lines a result '
        'repeats from earlier ones become a note [… ×N lines as in earlier results, id="..."]; '
        "the id names the original text, which this tool returns. Long texts come back in "
        "pieces: give offset "
        f"(a character index, default 0) and length (characters, default {DEFAULT_LENGTH:,}, "
        f"at most {MAX_LENGTH:,}). A piece that is not the whole text starts with a header "
        "line giving its range, the total length and the offset to ask for next. Only call it "
        "when the removed part is needed for the task."
    )


def _schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "id": {
                "type": "string",
                "description": 'The id from a tidyctx marker, such as "tc_0123456789abcdef".',
            },
            "offset": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "Index of the first character to return (0 is the start).",
            },
            "length": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LENGTH,
                "default": DEFAULT_LENGTH,
                "description": "How many characters to return.",
            },
        },
        "required": ["id"],
        "additionalProperties": False,
    }


def _integer(value: Any, default: int) -> int | None:
    """An integer argument: ints, whole floats and digit strings; None if unusable."""
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    return None


def _error(tool: str, problem: str) -> str:
    return f"[tidyctx: {tool} error: {problem}]"


def _failed(tool: str, problem: str) -> tuple[str, bool]:
    return _error(tool, problem), True


def answer(store: Store, name: str, arguments: Mapping[str, Any]) -> tuple[str, bool]:
    """What the expand tool named ``name`` answers to ``arguments``, and whether that answer
    is an error (a ``[tidyctx: ... error: ...]`` line): the handler of :func:`expand_tool`
    without the guesswork of telling an error from a stored text that reads like one."""
    if not isinstance(arguments, Mapping):
        return _failed(name, f"expected an object of arguments, got {type(arguments).__name__}")
    key = arguments.get("id")
    if not isinstance(key, str) or not key.strip():
        return _failed(name, f'"id" must be the id string from a tidyctx marker, got {key!r}')
    key = key.strip().strip('"')
    offset = _integer(arguments.get("offset"), 0)
    if offset is None or offset < 0:
        return _failed(name, f'"offset" must be an integer >= 0, got {arguments.get("offset")!r}')
    length = _integer(arguments.get("length"), DEFAULT_LENGTH)
    if length is None or length < 1:
        return _failed(
            name,
            f'"length" must be an integer from 1 to {MAX_LENGTH:,}, got '
            f"{arguments.get('length')!r}",
        )
    length = min(length, MAX_LENGTH)
    try:
        text = store.get(key)
    except Exception as err:  # the store's backend failed (disk, Redis, a closed store)
        return _failed(
            name,
            f"the store could not be read for {key!r} ({type(err).__name__}: {err}); "
            "try again later, or run the original tool again",
        )
    if text is not None and not isinstance(text, str):
        return _failed(name, f"the store holds a {type(text).__name__} under {key!r}, not text")
    if text is None:
        hint = "" if key.startswith(KEY_PREFIX) else f' (ids look like "{KEY_PREFIX}" + 16 hex)'
        return _failed(
            name,
            f"no text under id {key!r}{hint}; it is unknown here or no longer available "
            "(evicted from the store). Work with what the conversation still shows, or "
            "run the original tool again",
        )
    total = len(text)
    if offset == 0 and length >= total:
        return (text if text else f"[tidyctx: {key} is empty (0 characters)]"), False
    if offset >= total:
        return _failed(
            name,
            f"offset {offset:,} is past the end of {key} ({total:,} characters); use an "
            f"offset below {total:,}",
        )
    end = min(total, offset + length)
    more = f"; next offset {end}" if end < total else ""
    head = f"[tidyctx: {key} characters {offset:,}–{end:,} of {total:,}{more}]\n"
    return head + text[offset:end], False


def expand_tool(store: Store, *, name: str = "tidyctx_expand") -> tuple[dict[str, Any], Handler]:
    """Return ``(tool, handler)``: a Messages API tool definition and the function behind it.

    Add ``tool`` to the request's ``tools``. When the model calls it, pass the ``tool_use``
    block's ``input`` to ``handler`` and send back what it returns as the ``tool_result``
    content. The handler returns characters ``[offset, offset + length)`` of the text stored
    under ``id``, the whole text as is, or a one-line header
    (``[tidyctx: tc_... characters 0–8,000 of 212,345; next offset 8000]``) then the piece.
    It never raises, on the model's input or when the store fails; problems come back as a
    ``[tidyctx: ... error: ...]`` line.

    The definition is the same for every call with the same ``name``, so it does not disturb
    the cache prefix. ``name`` must be a valid tool name (letters, digits, ``_``, ``-``; at
    most 64).
    """
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise ValueError(
            f"expand_tool(name={name!r}): a tool name is 1 to 64 letters, digits, '_' or '-'"
        )
    if not (callable(getattr(store, "get", None)) and callable(getattr(store, "put", None))):
        raise TypeError(
            f"expand_tool() needs a Store (with get and put), got {type(store).__name__}"
        )
    tool: dict[str, Any] = {"name": name, "description": _description(), "input_schema": _schema()}

    def handler(arguments: Mapping[str, Any]) -> str:
        return answer(store, name, arguments)[0]

    handler.__name__ = handler.__qualname__ = f"{name}_handler"
    return tool, handler
