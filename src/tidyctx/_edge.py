"""The edge of every transform: the caller's input is converted once, and the result handed
back in the caller's shape.

Callers give a request dict (the kwargs of ``client.messages.create``), a bare list of
messages, or Anthropic SDK objects: a pydantic request, or SDK blocks inside the messages, as
after ``messages.append({"role": "assistant", "content": response.content})``. A transform's
body works on one thing only, a *plain request*: a dict of plain JSON data (dicts, lists,
strings, numbers) that the body never mutates. It copies what it changes and may share what it
leaves alone with its input.

The contract, one place for every transform (``order``, ``cache``, ``trim``, ``clear``,
``compact``, ``summarize``, ``slice_code``):

- Each transform is an :class:`Edge`. Its ``apply(request)`` is the body: plain request in,
  new plain request out. Its ``__call__`` is the edge: :func:`start` converts the input once
  (new containers down to each block, so nothing the body does reaches the caller's data;
  what lies below a block, a tool input or an image source, is shared while it is plain
  data, and unchanged blocks' contents go out shared too), ``apply`` runs, and
  :func:`shaped` gives the result back as the caller gave it: a bare list in, a list out; a
  dict or SDK object in, a dict out.
- :func:`tidyctx.pipe` and :func:`tidyctx.explain` convert once at their own edge and then
  call ``apply`` of each :class:`Edge` directly, so a request walks through a whole pipeline
  with one conversion. Other callables in a pipe get the plain request and must return plain
  data too.

So ``t(x) == pipe(x, t)`` for every transform ``t`` and every input ``x``, and neither
mutates ``x``.

>>> class Shout(Edge):
...     name = "shout"
...     def apply(self, request):
...         return {**request, "messages": [{"role": "user", "content": "HI"}]}
>>> Shout()([{"role": "user", "content": "hi"}])
[{'role': 'user', 'content': 'HI'}]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from tidyctx._request import Request, ValidationError, invalid, to_request, too_deep

__all__ = ["Edge", "guarded", "shaped", "start", "transform_name"]

_T = TypeVar("_T")


def transform_name(t: Callable[..., Any]) -> str:
    """A readable name for a transform: its ``name`` attribute, else its function name."""
    name = getattr(t, "name", None)
    if isinstance(name, str) and name:
        return name
    return str(getattr(t, "__qualname__", None) or getattr(t, "__name__", None) or repr(t))


def start(x: Any) -> tuple[Request, bool]:
    """``x`` as a new plain request (new containers down to each block, plain values below
    shared), and whether it was a bare message list.

    Raises :class:`~tidyctx.ValidationError` for anything that is not a request (None, a
    string...) and for data nested too deep to copy.
    """
    try:
        return to_request(x)
    except RecursionError:
        raise too_deep(x) from None


def guarded(request: Request, run: Callable[[], _T]) -> _T:
    """``run()``, with a ``RecursionError`` (data nested too deep to copy or hash) turned into
    a :class:`~tidyctx.ValidationError` naming where, not a thousand-frame traceback.

    Any other error a transform raises on a request the API would reject (a NaN it cannot
    hash, a block ``type`` it cannot look up) becomes the :class:`~tidyctx.ValidationError`
    that names the problem's place, with the original error as its cause. On a valid request
    the error is raised as it is."""
    try:
        return run()
    except RecursionError:
        raise too_deep(request) from None
    except ValidationError:
        raise
    except Exception as err:
        found = invalid(request)
        if found is not None:
            raise found from err
        raise


def shaped(request: Request, was_list: bool, name: str = "") -> Any:
    """``request`` in the shape the caller gave: its messages for a bare list, else itself.

    A bare list cannot carry other keys: if the transform ``name`` added one (``system``,
    ``context_management``...), this raises ``ValueError`` rather than drop it.
    """
    if not was_list:
        return request
    extra = sorted(set(request) - {"messages"})
    if extra:
        raise ValueError(
            f"transform {name or '?'} added {', '.join(map(repr, extra))}, which a bare message "
            "list cannot carry; pass a request dict (with model, system, tools, messages) instead"
        )
    return request.get("messages", [])


class Edge:
    """The base class of tidyctx's transforms: ``apply`` is the body, ``__call__`` the edge.

    A subclass defines ``name`` and ``apply(request) -> request`` (plain request in, new plain
    request out, the input left alone); calling the transform accepts every input shape.
    """

    __slots__ = ()

    def apply(self, request: Request) -> Request:
        """The transform on a plain request (see the module documentation)."""
        raise NotImplementedError

    @overload
    def __call__(self, request: list[Any] | tuple[Any, ...]) -> list[Any]: ...
    @overload
    def __call__(self, request: Mapping[str, Any]) -> Request: ...
    @overload
    def __call__(self, request: Any) -> Any: ...
    def __call__(self, request: Any) -> Any:
        req, was_list = start(request)
        out = guarded(req, lambda: self.apply(req))
        return shaped(out, was_list, transform_name(self))
