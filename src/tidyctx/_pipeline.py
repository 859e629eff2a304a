"""pipe() runs transforms over a request; explain() says what each one bought and cost.

A transform is any callable ``Request -> Request`` that returns a new dict and leaves its
input alone. Factories such as ``tc.trim(...)`` return one; a plain function works too.

``pipe`` converts its input once (a request dict, a bare message list or SDK objects, see
:mod:`tidyctx._edge`) and hands each transform the plain request: tidyctx's own transforms
(:class:`~tidyctx._edge.Edge`) run their body, ``apply``, without converting again; other
callables are called with the plain request and must return plain data. The result comes
back in the shape given.

>>> def shout(request):
...     return {**request, "messages": [{"role": "user", "content": "HI"}]}
>>> pipe([{"role": "user", "content": "hi"}], shout)
[{'role': 'user', 'content': 'HI'}]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidyctx._edge import Edge, guarded, shaped, start, transform_name
from tidyctx._request import Request, block_hash, cache_content, iter_blocks
from tidyctx.tokens import MESSAGE_OVERHEAD, LocalCounter, TokenCounter, tool_prompt_tokens

__all__ = ["Report", "Step", "Transform", "explain", "pipe", "transform_name"]

Transform = Callable[[Request], Request]
"""A pure function from request to request."""

# Top-level parameters whose change invalidates cached content
# (https://platform.claude.com/docs/en/build-with-claude/prompt-caching, "What invalidates the
# cache"): the model has its own cache; tool_choice, thinking settings
# invalidate the messages part only (tools and system stay cached).
_PARAMS_THAT_MISS = ("model", "tool_choice", "thinking")
_PARAMS_THAT_MISS_MESSAGES = frozenset({"tool_choice", "thinking"})


def flat(transforms: Sequence[Any]) -> list[Transform]:
    """The transforms, a list or tuple of them (``tc.defaults()``) taken as its items."""
    out: list[Transform] = []
    for t in transforms:
        if isinstance(t, list | tuple):
            out.extend(t)
        else:
            out.append(t)
    return out


def _apply(request: Request, transforms: Sequence[Transform]) -> list[tuple[str, Request]]:
    return guarded(request, lambda: _run(request, transforms))


def run_step(t: Transform, request: Request) -> Any:
    """What transform ``t`` returns for ``request``: tidyctx's own transforms run their body
    (``Edge.apply``) on the request converted once, as pipe() does; others are called."""
    return t.apply(request) if isinstance(t, Edge) else t(request)


def step(t: Transform, request: Request) -> Request:
    """:func:`run_step`, refusing a result that is not a request dict."""
    result = run_step(t, request)
    if not isinstance(result, dict):
        raise TypeError(
            f"transform {transform_name(t)} returned {type(result).__name__}, not a request "
            "dict; a transform must return the new request"
        )
    return result


def _run(request: Request, transforms: Sequence[Transform]) -> list[tuple[str, Request]]:
    out: list[tuple[str, Request]] = []
    for t in transforms:
        if not callable(t):
            hint = f"; did you mean tc.{t}()?" if isinstance(t, str) and t.isidentifier() else ""
            raise TypeError(
                f"pipe() takes transforms (callables Request -> Request), got "
                f"{type(t).__name__} {t!r:.200}{hint}"
            )
        request = step(t, request)
        out.append((transform_name(t), request))
    return out


def pipe(x: Any, *transforms: Transform | Sequence[Transform]) -> Any:
    """Apply ``transforms`` left to right and return the result in the shape given.

    A list or tuple of transforms (``tc.defaults()``) counts as its transforms in order:
    ``pipe(x, tc.defaults())`` is ``pipe(x, *tc.defaults())``.

    ``x`` is a request dict (the kwargs of ``client.messages.create``), a bare list of
    messages, or an SDK object; a list gives back a list, anything else a dict. The input is
    never mutated: the transforms work on a copy. With no transforms, an equal copy of ``x``
    comes back.
    """
    request, was_list = start(x)
    steps = _apply(request, flat(transforms))
    if not steps:
        return shaped(request, was_list)
    name, final = steps[-1]
    return shaped(final, was_list, name)


@dataclass(frozen=True, slots=True)
class Step:
    """What one transform did to the request."""

    name: str
    tokens_before: int
    tokens_after: int
    changed_blocks: int
    """Blocks added, removed or whose bytes changed (cache_control markers included)."""
    first_change: str | None
    """Where the cached prefix first differs: a block path (``messages[4].content[0]``) or a
    parameter (``model``, ``tool_choice``, ``thinking``); None if the content is unchanged.
    cache_control markers are not content: moving them alone does not break the prefix."""
    prefix_kept_tokens: int
    """Tokens before ``first_change``: what a cache written before this step still serves."""
    prefix_broken_tokens: int
    """Tokens of the output from ``first_change`` on: written to the cache again next call."""
    note: str = ""

    @property
    def saved_tokens(self) -> int:
        return self.tokens_before - self.tokens_after


@dataclass(frozen=True, slots=True)
class Report:
    """The per-step account of a pipeline run; ``str(report)`` is a table."""

    steps: tuple[Step, ...]
    request: Any = field(repr=False)
    """The final request, in the shape given (as :func:`pipe` returns it)."""

    @property
    def tokens_before(self) -> int:
        return self.steps[0].tokens_before if self.steps else 0

    @property
    def tokens_after(self) -> int:
        return self.steps[-1].tokens_after if self.steps else 0

    def __str__(self) -> str:
        numbers = [
            f"{n:,}"
            for s in self.steps
            for n in (s.tokens_before, s.tokens_after, s.saved_tokens, s.changed_blocks)
        ]
        # Columns as wide as the largest number, so 7-digit counts do not run together.
        w = max([8, *map(len, numbers)]) + 1
        head = f"{'step':<28}{'before':>{w}}{'after':>{w}}{'saved':>{w}}{'changed':>{w}}  cache"
        lines = [head, "-" * len(head)]
        for s in self.steps:
            if s.first_change is None:
                cache = "prefix intact"
            else:
                cache = (
                    f"breaks at {s.first_change}: {s.prefix_kept_tokens:,} kept, "
                    f"{s.prefix_broken_tokens:,} rewritten"
                )
            lines.append(
                f"{s.name[:27]:<28}{s.tokens_before:>{w},}{s.tokens_after:>{w},}"
                f"{s.saved_tokens:>{w},}{s.changed_blocks:>{w}}  {cache}"
            )
            if s.note:
                lines.append(f"{'':<28}{s.note}")
        return "\n".join(lines)


def _diff(
    before: Request, after: Request, counter: LocalCounter | TokenCounter, after_tokens: int
) -> tuple[int, str | None, int, int]:
    old = list(iter_blocks(before))
    new = list(iter_blocks(after))
    changed = 0
    matcher = difflib.SequenceMatcher(
        a=[block_hash(r.block) for r in old], b=[block_hash(r.block) for r in new], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            changed += max(i2 - i1, j2 - j1)

    first: str | None = next((p for p in _PARAMS_THAT_MISS if before.get(p) != after.get(p)), None)
    cut: int | None = None
    if first in _PARAMS_THAT_MISS_MESSAGES:
        cut = next((k for k, r in enumerate(new) if r.section == "messages"), len(new))
    elif first is not None:
        cut = 0
    else:
        for k in range(max(len(old), len(new))):
            if k >= len(old) or k >= len(new):
                if k < len(new):
                    # The output only grew: the old prefix is intact.
                    break
                first, cut = "end of request (blocks removed)", k
                break
            if block_hash(cache_content(old[k].block)) != block_hash(cache_content(new[k].block)):
                first, cut = new[k].path, k
                break
    if first is None or cut is None:
        return changed, None, 0, 0
    kept = _prefix_tokens(after, new[:cut], counter, after_tokens)
    return changed, first, kept, after_tokens - kept


def _prefix_tokens(
    request: Request, prefix: list[Any], counter: LocalCounter | TokenCounter, total: int
) -> int:
    """Tokens of the first blocks of ``request`` (``prefix``, from iter_blocks) as a share of
    ``total``, its full count: the blocks, plus the overheads that :meth:`LocalCounter.
    count_request` adds beyond them (per message, hidden tool prompt), so that kept plus
    rewritten adds up to the request's count."""
    if not prefix:
        return 0
    local = counter if isinstance(counter, LocalCounter) else LocalCounter(request.get("model"))
    per_block = [n for _, n in local.count_blocks(request)]
    kept = sum(per_block[: len(prefix)])
    kept += MESSAGE_OVERHEAD * len({r.message for r in prefix if r.message is not None})
    if request.get("tools"):
        kept += tool_prompt_tokens(local.model or request.get("model"), request.get("tool_choice"))
    if isinstance(counter, LocalCounter):
        return min(kept, total)
    # An exact counter prices whole requests only; spread its total by the local shares.
    whole = local.count_request(request) or 1
    return min(round(kept * total / whole), total)


def explain(
    x: Any,
    *transforms: Transform | Sequence[Transform],
    counter: LocalCounter | TokenCounter | None = None,
) -> Report:
    """Run the pipeline like :func:`pipe` and report, per step, tokens and cache effect.

    For each transform: input tokens before and after (``counter``, by default a
    :class:`~tidyctx.tokens.LocalCounter` for the request's model), how many blocks changed,
    and the first place the cacheable content changed, with the tokens before it (still
    served by a cache written before this step) and after it (to be written again).
    A transform may add a line of its own with a ``describe(before, after) -> str`` method.
    """
    steps_in = flat(transforms)
    request, was_list = start(x)
    if counter is None:
        counter = LocalCounter(request.get("model"))
    steps: list[Step] = []
    before = request
    before_tokens = counter.count_request(before)
    for (name, after), t in zip(_apply(request, steps_in), steps_in, strict=True):
        after_tokens = counter.count_request(after)
        changed, first, kept, broken = _diff(before, after, counter, after_tokens)
        note = ""
        describe = getattr(t, "describe", None)
        if callable(describe):
            note = str(describe(before, after))
        steps.append(Step(name, before_tokens, after_tokens, changed, first, kept, broken, note))
        before, before_tokens = after, after_tokens
    final_name = steps[-1].name if steps else ""
    return Report(tuple(steps), shaped(before, was_list, final_name))
