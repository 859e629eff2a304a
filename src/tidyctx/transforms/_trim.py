"""trim(): tool results that carry only what the agent needs.

Every token carried forward is billed again on every later turn. ``trim`` composes, per tool
result, in this order:

1. deduplication: a result identical to an earlier one (same tool and input, or same
   content) becomes a reference to the earlier call;
2. projection: JSON results of the tools named in ``project`` keep only the named fields;
3. compaction (``compact=True``): the same values in fewer tokens (compact JSON, uniform rows
   as one table, no padding, escape codes or progress redraws), and lines the result echoes
   from its call's input (an edited snippet) as one note; see :mod:`tidyctx.text._compaction`.
   After truncation, runs of lines that an earlier result holds as sent (a banner, a warning
   every command prints, a file read again) become one note naming that call;
4. truncation: results over ``max_tokens`` (``max_tokens * (1 + slack)``, with ``slack``) are
   cut to the budget, keeping head and tail and, in between, the lines that hold what the call
   and the turns before it point at, then the lines with words of their own;
5. clearing (when ``clearing`` is given, a :class:`~tidyctx.transforms._clear.Clearing`):
   results older than the latest ``keep`` calls become short placeholders, in batches of at
   least ``clear_at_least`` tokens so the cached prefix is rewritten rarely.

Only ``tool_result`` blocks (the results of the caller's own tools) are trimmed; the blocks
Anthropic's server tools put in the assistant's turn (``web_search_tool_result``,
``code_execution_tool_result``, ``mcp_tool_result``...) are passed back as received: some carry
encrypted data, and the API documentation does not say a client may edit them.

Steps 1-4 depend only on the result, its call and the turns before it, so a result is cut
the same way on every later turn and the cache prefix stays byte-identical. What is removed
is kept in ``store`` under its content hash; each marker names the id that
:func:`tidyctx.transforms._expand.expand_tool` reads back. Every call renews the entries its
markers name (:func:`tidyctx.transforms._recover.settle`), so a store that evicts or expires
entries keeps them while a request names them; a block whose text the store lost is sent
whole rather than with a marker that leads nowhere.

A call does the work of the messages the conversation gained since the last call only: the
state after a prefix of the messages (calls and hints, the results deduplication compares
with, the lines repeat notes look for, the output of each message) is kept in the memo under
the prefix's token and resumed (:meth:`Trim._fold`). With a
:class:`~tidyctx.store.MemoryStore`, whose generation says whether it evicted anything since,
the old messages' entries are not renewed one by one while it evicts nothing.

>>> t = trim(max_tokens=50)
>>> req = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [
...     {"role": "user", "content": "list"},
...     {"role": "assistant", "content": [
...         {"type": "tool_use", "id": "t1", "name": "ls", "input": {}}]},
...     {"role": "user", "content": [
...         {"type": "tool_result", "tool_use_id": "t1",
...          "content": "\\n".join(f"file_{i}.txt" for i in range(500))}]}]}
>>> out = t(req)["messages"][2]["content"][0]["content"][0]["text"]
>>> "[tidyctx: " in out and "file_0.txt" in out and "file_499.txt" in out
True
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidyctx._edge import Edge
from tidyctx._markers import MARKER_PREFIX, NOTE_START, is_marker, repeat_note
from tidyctx._memo import (
    content_key,
    memoized,
    owner_token,
    prefix_tokens,
    result_key,
    resume,
    suspend,
    text_size,
)
from tidyctx._request import (
    Request,
    ValidationError,
    _normalized_block,
    as_given,
    block_hash,
    input_json,
    normalized,
    plain_copy,
)
from tidyctx.store import MemoryStore, Store, keep_text, store_key
from tidyctx.text._compaction import compact_kept, compact_result
from tidyctx.text._hints import hints_from
from tidyctx.text._project import parse_paths, project_text, warn_missing
from tidyctx.text._truncate import MIN_MAX_TOKENS, truncate_text
from tidyctx.tokens import LocalCounter, TokenCounter, check_counter, local_counter
from tidyctx.transforms._clear import (
    Clear,
    Clearing,
    DedupeFold,
    dedupe_owned,
    result_text,
    with_edit,
)
from tidyctx.transforms._recover import Position, generation, guarded, settle, settled

__all__ = ["Trim", "trim"]

_RECENT_TURNS = 2  # assistant turns before a call whose words guide its cut
_TASK_TEXTS = 4  # the user's latest text blocks (the task and its follow-ups)
_MIN_ROOM = 40  # tokens a projected result keeps beside its note, else both are cut together


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    input: Any
    hints: frozenset[str]


class _Fold:
    """Where :meth:`Trim._fold` stands after the first messages of a conversation."""

    __slots__ = (
        "calls",
        "dedupe",
        "extras",
        "generation",
        "outs",
        "recent",
        "repeats",
        "results",
        "size",
        "task",
    )

    def __init__(self) -> None:
        self.recent: list[str] = []  # the last assistant turns' texts (_calls)
        self.task: list[str] = []  # the user's latest texts
        self.calls: dict[str, _Call] = {}
        self.results: set[str] = set()  # the call id of every tool_result so far
        self.dedupe = DedupeFold()
        self.repeats = _Repeats()
        # Per message: the blocks the output replaces (by index), None when none. Copies,
        # handed out copied: never shared with a caller.
        self.outs: list[dict[int, dict[str, Any]] | None] = []
        # Per replaced result: whether it is a reference to an earlier one (its original
        # kept in the store) and the texts its repeat notes name, for settle's redo.
        self.extras: dict[Position, tuple[bool, tuple[str, ...]]] = {}
        self.generation: Hashable | None = None  # the store's, when all ids were held
        self.size = 0

    def copy(self) -> _Fold:
        """Where this one stands, to go on apart from it (the containers new, what they
        hold shared: it is never changed)."""
        new = _Fold()
        new.recent, new.task = self.recent, self.task  # replaced, never changed in place
        new.calls, new.results = dict(self.calls), set(self.results)
        new.dedupe = self.dedupe.copy()
        new.repeats.seen, new.repeats.size = set(self.repeats.seen), self.repeats.size
        new.outs, new.extras = list(self.outs), dict(self.extras)
        new.generation, new.size = self.generation, self.size
        return new

    def output(self, i: int, message: dict[str, Any]) -> dict[str, Any]:
        """The output of message ``i``, equal by content to the one the state was built on."""
        content = message.get("content")
        if not isinstance(content, list | tuple):
            return dict(message)
        changes = self.outs[i]
        if changes is None:
            return {**message, "content": list(content)}
        out = list(content)
        for j, block in changes.items():
            out[j] = plain_copy(block)
        return {**message, "content": out}


_UNFOLDABLE = object()
"""Held instead of a :class:`_Fold` for a history the fold cannot take."""


@dataclass(eq=False)
class Trim(Edge):
    """The transform :func:`trim` returns; call it on a request."""

    project: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_tokens: int | Mapping[str, int] | None = None
    head: float = 0.5
    smart: bool = True
    compact: bool = True
    slack: float = 0.0
    max_input_tokens: int | None = None
    dedupe: bool = True
    clearing: Clearing | None = None
    store: Store = field(default_factory=MemoryStore)
    model: str | None = None
    counter: TokenCounter | None = None
    _warned: set[str] = field(default_factory=set, repr=False)
    _token: int = field(default_factory=owner_token, init=False, repr=False)
    """Names this transform in memo keys: never reused in the process."""

    @property
    def name(self) -> str:
        opts = []
        if self.project:
            opts.append(f"project={sorted(self.project)}")
        if self.max_tokens is not None:
            opts.append(f"max_tokens={self.max_tokens!r}")
        if self.clearing is not None:
            opts.append(f"keep={self.clearing.keep}")
            if self.clearing.server_side:
                opts.append("server_side=True")
        return f"trim({', '.join(opts)})"

    # -- the transform

    def apply(self, request: Request) -> Request:
        folded = self._fold(request)
        return self._whole(request) if folded is None else folded

    def _whole(self, request: Request) -> Request:
        """The output made from the whole request at once (what :meth:`_fold` gives too)."""
        # Strings the client sent stay strings where nothing was cut from them.
        return as_given(request, self._apply(request))

    def _apply(self, request: Request) -> Request:
        # The edge (Edge.__call__, or pipe) made SDK objects dicts: a ToolUseBlock is no dict,
        # so its result would otherwise be passed over untrimmed. ``out`` is this call's own
        # copy (normalize copies), so the steps below change it in place.
        # Writes go through a store that first renews what the markers passed on name (an
        # earlier transform's, sharing the store): a small store then evicts this transform's
        # own entries, which settle() puts back or answers for, before those.
        store = guarded(self.store, request)
        out, counter = self._steps(request, store)
        if self.clearing is not None and self.clearing.server_side:
            out = with_edit(out, self.clearing.edit())
        elif self.clearing is not None:
            # Plan, clear, then dedupe against what is left (no reference to a placeholder).
            self._clearer(store).apply_owned(out, counter, source=request)
            return self._settle(request, out, counter, store)
        if self.dedupe:
            # The store keeps what the client sent, not the cut (source=request).
            dedupe_owned(out, store=store, counter=counter, source=request)
        if self.compact:
            out = _drop_repeats(out, counter, store)
        return self._settle(request, out, counter, store)

    def _settle(
        self, request: Request, out: Request, counter: LocalCounter, store: Store
    ) -> Request:
        """``out`` with every store entry its markers name renewed; a result whose entry is
        gone (a memoized cut the store evicted since) is cut again, which puts it back."""
        calls: dict[str, _Call] = {}

        def redo(where: Position) -> None:
            i, j = where
            block = request["messages"][i]["content"][j]
            if block.get("type") == "tool_use":
                if self.max_input_tokens is not None and isinstance(block.get("input"), dict):
                    self._input(block, self.max_input_tokens, counter, store, fresh=True)
                return
            if not calls:
                calls.update(self._calls(request["messages"]))
            call = calls.get(str(block.get("tool_use_id")))
            content = block.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if call is not None:
                self._result({**block, "content": content}, call, counter, store, fresh=True)

        return settle(self.store, request, out, what="trim", redo=redo)

    def _steps(self, request: Request, store: Store) -> tuple[Request, LocalCounter]:
        """A copy of the request with each result projected, compacted and truncated (steps
        2-4)."""
        out = normalized(request)
        messages = out.get("messages")
        if not isinstance(messages, list):
            raise ValidationError("messages", "missing", "trim() needs a list of messages")
        counter = local_counter(self.counter, self.model or out.get("model"))
        calls = self._calls(messages)
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for j, block in enumerate(content):
                call = None
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    call = calls.get(str(block.get("tool_use_id")))
                content[j] = self._rewritten(block, call, counter, store)
        return out, counter

    def _rewritten(
        self, block: Any, call: _Call | None, counter: LocalCounter, store: Store
    ) -> Any:
        """``block`` as steps 2-4 leave it: a tool result projected, compacted and cut for
        ``call`` (None: no known call, left as it is), a tool_use with its long input
        strings cut (``max_input_tokens``); any other block as it is."""
        if not isinstance(block, dict):
            return block
        if block.get("type") == "tool_result":
            return block if call is None else self._result(block, call, counter, store)
        if (
            self.max_input_tokens is not None
            and block.get("type") == "tool_use"
            and isinstance(block.get("input"), dict)
        ):
            return self._input(block, self.max_input_tokens, counter, store)
        return block

    # -- the fold: what a turn adds, on the state of the turn before

    def _config(self, counter: LocalCounter) -> str:
        """Everything besides the messages that the output depends on (the store aside:
        markers name texts by their content's hash)."""
        budgets = self.max_tokens
        if isinstance(budgets, Mapping):
            budgets = tuple(budgets.items())  # type: ignore[assignment]
        return repr(
            (
                "\0trim",
                tuple(self.project.items()),
                budgets,
                self.head,
                self.smart,
                self.compact,
                self.slack,
                self.max_input_tokens,
                self.dedupe,
                repr(counter),
                counter.factor(),
                _REPEAT_MIN_CHARS,
            )
        )

    def _fold(self, request: Request) -> Request | None:
        """The output of :meth:`_apply` (made :func:`as_given`), built as a fold over the
        messages: the state after a prefix (:class:`_Fold`: the calls and their hints, the
        results dedupe compares with, the lines repeat notes look for, each message's output)
        is kept in the memo under the prefix's token, so a turn that adds messages resumes
        from the turn before and does the work of the new ones only. None when the request is
        not one the fold takes (clearing on this side, data ``normalized`` would convert, a
        result that changes how an earlier one is cut or deduped): :meth:`_apply` then.

        The prefix tokens are read from each message's content key, never from identity: a
        history edited in place has other tokens and starts over. Old messages' markers are
        not renewed one by one when the store can tell that it lost nothing since the state
        was left (:func:`~tidyctx.transforms._recover.generation`, a MemoryStore's count of
        evictions): then the state's markers all name held texts, as the last call checked,
        and only the new blocks are settled. Any other store (one that expires entries, or is
        shared with other processes) renews every id every turn, as :func:`settle` does."""
        if self.clearing is not None:
            return None
        messages = request.get("messages")
        if type(request) is not dict or type(messages) is not list:
            return None
        counter = local_counter(self.counter, self.model or request.get("model"))
        items: list[Any] = [self._config(counter)]
        try:
            for message in messages:
                if type(message) is not dict:
                    return None
                items.append(content_key(message))
        except TypeError:
            return None
        tokens = prefix_tokens(items)
        k, state = resume("trim", tokens)
        if state is _UNFOLDABLE:
            suspend("trim", tokens[-1], _UNFOLDABLE, 16)
            return None
        out = self._folded(request, state, max(0, k - 1), counter, tokens)
        if out is None:
            # A result that changes an earlier message's output: no prefix of this history
            # (nor of its continuations) is folded again.
            suspend("trim", tokens[-1], _UNFOLDABLE, 16)
        return out

    def _folded(
        self,
        request: Request,
        state: _Fold | None,
        start: int,
        counter: LocalCounter,
        tokens: list[int],
    ) -> Request | None:
        messages: list[Any] = request["messages"]
        now = generation(self.store)
        fast = state is not None and now is not None and state.generation == now
        if state is None:
            state, start = _Fold(), 0
        store = guarded(self.store, request, lean=fast)
        outs: list[Any] = []
        # The state is left for all messages but the last: the one a client marks with its
        # own cache_control breakpoint, which it moves to the next message on the next turn.
        left: _Fold | None = None
        for i, message in enumerate(messages):
            if i < start:
                outs.append(state.output(i, message))
                continue
            if i == len(messages) - 1:
                left = state.copy()
            made = self._fold_message(state, i, message, counter, store)
            if made is None:
                return None
            outs.append(made)
        top = normalized({**request, "messages": []})
        out = as_given({k: v for k, v in request.items() if k != "messages"}, top)
        out["messages"] = outs

        def redo(where: Position) -> None:
            self._redo(request, state, where, counter, store)

        # Old messages' ids are held while the store's generation is the one the state was
        # left with (checked then); an eviction since, even during this call, checks all.
        since, seen = start, now
        if not fast or generation(self.store) != now:
            since, seen = 0, generation(self.store)
        out, kept = settled(self.store, request, out, what="trim", redo=redo, since=since)
        after = generation(self.store)
        if since and after != seen:  # putting a text back evicted another
            seen = after
            out, all_kept = settled(self.store, request, out, what="trim", redo=redo)
            kept, after = kept and all_kept, generation(self.store)
        # What the next call may take as held: every id the state's blocks name, when none
        # was lost (a block sent as it came names an id the store lost) and nothing was
        # evicted while they were checked.
        if left is None:
            left = state  # no message was added: the state is left where it was
        left.generation = after if kept and after == seen else None
        suspend("trim", tokens[len(left.outs)], left, left.size)
        return out

    def _fold_message(
        self, state: _Fold, i: int, message: dict[str, Any], counter: LocalCounter, store: Store
    ) -> dict[str, Any] | None:
        """Message ``i``'s output, ``state`` moved past it (steps 1-4 of :meth:`_apply` for
        its blocks, in the same order); None when it changes what an earlier message gives."""
        content = message.get("content")
        role = message.get("role")
        norm: list[Any] | None = None
        if type(content) is list:
            if any(
                (type(b) is not dict and type(b) is not str)
                or (
                    type(b) is dict
                    and b.get("type") == "tool_result"
                    and isinstance(b.get("content"), tuple)
                )
                for b in content
            ):
                return None  # what normalized() would convert: the whole request is converted
            norm = [_normalized_block(b) for b in content]
            blocks: list[Any] = norm
        elif isinstance(content, list | tuple):
            return None
        else:
            blocks = [content]  # a string stands for its one text block (see _calls)
        # The calls and their hints (_calls).
        texts = [b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        texts += [b for b in blocks if isinstance(b, str)]
        if role == "user":
            state.task = [*state.task, *texts][-_TASK_TEXTS:]
        else:
            state.recent = [*state.recent, *texts][-_RECENT_TURNS * 4 :]
            for b in blocks:
                if isinstance(b, dict) and b.get("type") == "tool_use":
                    call_id = str(b.get("id"))
                    if call_id in state.results:
                        return None  # an earlier result's call would change
                    args = input_json(b.get("input"))
                    hints = (
                        hints_from(args, *state.recent, *state.task) if self.smart else frozenset()
                    )
                    # A copy: the caller may edit its input in place after this call.
                    state.calls[call_id] = _Call(
                        str(b.get("name")), plain_copy(b.get("input")), hints
                    )
                    state.size += 80 + text_size(args)
        if norm is None:
            state.outs.append(None)
            return dict(message)
        assert isinstance(content, list)
        now = list(norm)
        for j, block in enumerate(now):  # projection, compaction, truncation (_steps)
            call = None
            if isinstance(block, dict) and block.get("type") == "tool_result":
                call_id = str(block.get("tool_use_id"))
                if call_id in state.results:
                    return None  # an earlier result with this id would be read as this one's
                state.results.add(call_id)
                call = state.calls.get(call_id)
            now[j] = self._rewritten(block, call, counter, store)
        extras: dict[int, tuple[bool, tuple[str, ...]]] = {}
        for j, block in enumerate(now):  # deduplication (dedupe_owned)
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "tool_use":
                state.dedupe.use(block)
            elif block.get("type") == "tool_result" and self.dedupe:
                original = content[j].get("content")
                same = state.dedupe.result(i, block, original, store=store, counter=counter)
                if same is None:
                    return None
                if same is not block:
                    now[j] = same
                    extras[j] = (True, ())
            elif block.get("type") == "tool_result":
                state.dedupe.open_ids.pop(str(block.get("tool_use_id")), None)
        if self.compact:  # repeat notes (_drop_repeats)
            for j, block in enumerate(now):
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    texts_, notes = _drop_repeated_lines(
                        _result_texts(block), state.repeats, counter, store
                    )
                    if texts_ is not None:
                        now[j] = _with_texts(block, texts_)
                    if notes:
                        extras[j] = (extras.get(j, (False, ()))[0], notes)
        changes: dict[int, dict[str, Any]] = {}
        for j, block in enumerate(now):
            given = content[j]
            if block is norm[j] or (
                type(given) is dict
                and given.get("type") == "tool_result"
                and isinstance(given.get("content"), str)
                and block == {**given, "content": [{"type": "text", "text": given["content"]}]}
            ):
                now[j] = given  # as the client sent it (as_given)
                continue
            changes[j] = plain_copy(block)  # the state's own: the caller may edit its output
            state.size += text_size(block)
        for j, extra in extras.items():
            state.extras[(i, j)] = extra
            state.size += 40 + sum(len(t) for t in extra[1])
        state.outs.append(changes or None)
        state.size += 16
        return {**message, "content": now}

    def _redo(
        self,
        request: Request,
        state: _Fold,
        where: Position,
        counter: LocalCounter,
        store: Store,
    ) -> None:
        """Put back the texts the markers of the block at ``where`` name (settle's redo)."""
        i, j = where
        block = request["messages"][i]["content"][j]
        if block.get("type") == "tool_use":
            if self.max_input_tokens is not None and isinstance(block.get("input"), dict):
                self._input(block, self.max_input_tokens, counter, store, fresh=True)
            return
        content = block.get("content")
        call = state.calls.get(str(block.get("tool_use_id")))
        if call is not None:
            listed = [{"type": "text", "text": content}] if isinstance(content, str) else content
            self._result({**block, "content": listed}, call, counter, store, fresh=True)
        same, notes = state.extras.get(where, (False, ()))
        if same:
            keep_text(store, result_text(content))
        for text in notes:
            keep_text(store, text)

    def _clearer(self, store: Store) -> Clear:
        assert self.clearing is not None
        return Clear(
            clearing=self.clearing,
            dedupe=self.dedupe,
            store=store,
            model=self.model,
            counter=self.counter,
        )

    def describe(self, before: Request, after: Request) -> str:
        counter = local_counter(self.counter, self.model or after.get("model"))
        saved = counter.count_request(before) - counter.count_request(after)
        text = f"removed {saved:,} tokens from tool results"
        if self.clearing is not None and not self.clearing.server_side:
            # Steps 1-4 cut each result the same way every turn; only a clearing batch rewrites
            # the cached prefix, so clearing is priced against the request cut but not cleared
            # (and against last turn's batch, see Clear.describe).
            cut = self._steps(before, self.store)[0]
            # Compared in the normalized form the cut was made in (the output keeps strings).
            text += "; " + self._clearer(self.store).priced(cut, normalized(after), source=before)
        return text

    # -- per result

    def _calls(self, messages: list[Any]) -> dict[str, _Call]:
        """Each call with the hints that guide the cut of its result: its input, the user's
        own words so far (the task), and the last assistant turns' text. All of it comes
        before the result, so the cut never changes as the conversation grows."""
        calls: dict[str, _Call] = {}
        recent: list[str] = []
        task: list[str] = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            blocks = content if isinstance(content, list) else [content]
            texts = [b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
            texts += [b for b in blocks if isinstance(b, str)]
            if message.get("role") == "user":
                task = [*task, *texts][-_TASK_TEXTS:]
                continue
            recent = [*recent, *texts][-_RECENT_TURNS * 4 :]
            for b in blocks:
                if isinstance(b, dict) and b.get("type") == "tool_use":
                    args = input_json(b.get("input"))
                    hints = hints_from(args, *recent, *task) if self.smart else frozenset()
                    calls[str(b.get("id"))] = _Call(str(b.get("name")), b.get("input"), hints)
        return calls

    def _budget(self, tool: str) -> int | None:
        if isinstance(self.max_tokens, Mapping):
            value = self.max_tokens.get(tool, self.max_tokens.get("*"))
            return None if value is None else int(value)
        return self.max_tokens

    def _result(
        self,
        block: dict[str, Any],
        call: _Call,
        counter: LocalCounter,
        store: Store,
        *,
        fresh: bool = False,
    ) -> dict[str, Any]:
        """The result cut (memoized; ``fresh``: cut again, which puts its texts back into the
        store)."""
        content = block.get("content")
        if not isinstance(content, list) or not content:
            return block
        spec = self.project.get(call.name)
        budget = self._budget(call.name)
        if spec is None and budget is None and not self.compact:
            return block
        # In the process's byte-bounded memo (tidyctx._memo), so that the originals its keys
        # hold count against its bound; an evicted cut is made again, equal. Keyed by this
        # transform (its cuts put their texts in its own store) and its settings.
        key = (
            self._token,
            self._config(counter),
            result_key(call.name, call.input, content, call.hints),
        )

        def cut() -> list[Any]:
            out: list[Any] = plain_copy(
                self._trim_content(content, call, spec, budget, counter, store)
            )
            return out

        def size(value: list[Any]) -> int:
            return text_size(call.input, content, value) + 8 * len(call.hints)

        hit = memoized("trim-result", key, cut, size, refresh=fresh)
        if hit == content:
            # Nothing cut (hit was made from a content with this one's exact bytes, as its
            # key says): the block goes on as it came, shared, as an unchanged block should.
            return block
        # Copies: the memo's blocks must not be shared with the caller (nested ones included).
        return {**block, "content": plain_copy(hit)}

    def _input(
        self,
        block: dict[str, Any],
        budget: int,
        counter: LocalCounter,
        store: Store,
        *,
        fresh: bool = False,
    ) -> dict[str, Any]:
        """The call with each long string of its input (file contents it writes, edit strings)
        cut to ``budget`` tokens; what is cut is kept in the store (``fresh``: put again)."""
        args = block["input"]
        changed = False
        out: dict[str, Any] = {}
        for key, value in args.items():
            if (
                isinstance(value, str)
                and len(value) > budget * 2
                and MARKER_PREFIX not in value
                and counter.count_text(value) > budget
            ):
                memo_key = (
                    self._token,
                    self._config(counter),
                    block_hash(["input", value, budget]),
                )

                def cut(value: str = value) -> str:
                    return truncate_text(
                        value,
                        budget,
                        counter=counter,
                        head=self.head,
                        ref=keep_text(store, value),
                        smart=self.smart,
                        overflow=True,
                    ).text

                out[key] = memoized(
                    "trim-input", memo_key, cut, lambda t: len(t) + 100, refresh=fresh
                )
                changed = True
            else:
                out[key] = value
        return {**block, "input": out} if changed else block

    @staticmethod
    def _within(text: str, limit: float, counter: LocalCounter) -> bool:
        # No cl100k token is longer than 128 characters: a long text is over without counting.
        return len(text) / 128 * counter.factor() <= limit and counter.count_text(text) <= limit

    def _trim_content(
        self,
        content: list[Any],
        call: _Call,
        spec: tuple[str, ...] | None,
        budget: int | None,
        counter: LocalCounter,
        store: Store,
    ) -> list[Any]:
        units = _text_units(content)
        # Each text projected and compacted first: the budget is shared by what is left.
        ready: list[tuple[str, str] | None] = []  # (new text, projection note); None: leave it
        for _, _, text in units:
            if MARKER_PREFIX in text and (
                budget is None or self._within(text, budget * (1 + self.slack), counter)
            ):
                # Already trimmed (by this transform on an earlier pass, or upstream): leave
                # it, so trim(trim(x)) == trim(x). A text over budget is cut even so: it only
                # quotes a marker (a transcript, tidyctx's own source read by the agent).
                ready.append(None)
                continue
            new = text
            note = ""  # the projection's marker line, added after compaction and truncation
            if spec is not None:
                parsed = parse_paths(spec)
                projected = project_text(new, parsed)
                if projected.missing and call.name not in self._warned:
                    self._warned.add(call.name)
                    warn_missing(f"trim: tool {call.name!r}", projected.missing, parsed)
                if projected.changed:
                    # Say where the full result went, so the model can ask for it.
                    new = projected.text
                    note = (
                        f"\n{MARKER_PREFIX}projected to {', '.join(spec)}; the full result is "
                        f'id="{keep_text(store, text)}", read it with tidyctx_expand]'
                    )
            if self.compact:
                # Compacted and cut as the JSON it is: with the note still attached it would be
                # neither a table nor rows, only one long line cut in the middle of a row.
                if note:  # projected: its note names the full original already
                    new = compact_result(new, call.name, call.input)
                else:  # a rewrite that drops characters keeps the original, and says where
                    new, kept = compact_kept(
                        new, call.name, call.input, store=store, counter=counter
                    )
                    note = "\n" + kept if kept else ""
            ready.append((new, note))
        # Several texts (text blocks, search results, text documents) share the budget, see
        # _shares. One text gets it all, and is not tokenized whole here: truncate_text bounds
        # its own work on huge results.
        shares: list[int] = []
        if budget is not None and len(units) > 1:
            # Text and note counted apart, as the room for the text is share - note below.
            sizes = [
                counter.count_text(text) if r is None else _count_apart(counter, *r)
                for (_, _, text), r in zip(units, ready, strict=True)
            ]
            shares = _shares(sizes, budget)
        out: list[Any] = list(content)
        for k, ((i, inner, text), r) in enumerate(zip(units, ready, strict=True)):
            if r is None:
                continue
            new, note = r
            if budget is not None:
                share = shares[k] if shares else budget
                room = share - counter.count_text(note) if note else share
                if room < _MIN_ROOM:
                    new, note, room = new + note, "", share  # too small for both: cut it all
                if self.slack and self._within(new + note, share * (1 + self.slack), counter):
                    if new + note != text:
                        out[i] = _with_text(out[i], inner, new + note)
                    continue
                cut = truncate_text(
                    new,
                    room,
                    counter=counter,
                    head=self.head,
                    hints=call.hints,
                    ref=keep_text(store, new),  # marker offsets index this text
                    smart=self.smart,
                    overflow=True,
                )
                new = cut.text
            new += note
            if new != text:
                out[i] = _with_text(out[i], inner, new)
        return out


_DATA = -1  # a unit that is a text document's source data


def _count_apart(counter: LocalCounter, text: str, note: str) -> int:
    return counter.count_text(text) + (counter.count_text(note) if note else 0)


def _shares(sizes: list[int], budget: int) -> list[int]:
    """The budget of each of several texts of one result: if all fit, each its part of the
    budget by size; else those that fit an even split are kept whole and the others share
    what is left by size (at least the smallest budget truncate_text takes), so together they
    stay within ``budget``.

    >>> _shares([20, 5000, 1000], 400)
    [24, 300, 79]
    """
    total = sum(sizes)
    if total <= budget:  # all fit: each gets its part of the whole budget, at least its size
        return [max(MIN_MAX_TOKENS, budget * size // max(1, total)) for size in sizes]
    out = [0] * len(sizes)
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    left, n = budget, len(sizes)
    for pos, k in enumerate(order):
        if sizes[k] * n <= left:
            out[k] = max(MIN_MAX_TOKENS, sizes[k])  # it fits: the floor only keeps it whole
            left, n = left - sizes[k], n - 1
            continue
        rest = order[pos:]
        total = sum(sizes[r] for r in rest)
        spare = max(0, left - MIN_MAX_TOKENS * len(rest))  # over the floor each one needs
        for r in rest:
            out[r] = MIN_MAX_TOKENS + spare * sizes[r] // total
        break
    return out


def _text_units(content: list[Any]) -> list[tuple[int, int | None, str]]:
    """The texts of a tool result the budget applies to, as (block, inner, text): text
    blocks (inner None), the text blocks inside a search_result (inner: their index) and the
    data of a plain-text document (inner :data:`_DATA`)."""
    units: list[tuple[int, int | None, str]] = []
    for i, b in enumerate(content):
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            units.append((i, None, str(b.get("text") or "")))
        elif kind == "search_result" and isinstance(b.get("content"), list):
            for j, inner in enumerate(b["content"]):
                if isinstance(inner, dict) and inner.get("type") == "text":
                    units.append((i, j, str(inner.get("text") or "")))
        elif kind == "document":
            source = b.get("source")
            if isinstance(source, dict) and source.get("type") == "text":
                data = source.get("data")
                if isinstance(data, str):
                    units.append((i, _DATA, data))
    return units


def _with_text(block: dict[str, Any], inner: int | None, text: str) -> dict[str, Any]:
    """``block`` with the text of one of its :func:`_text_units` replaced."""
    if inner is None:
        return {**block, "text": text}
    if inner == _DATA:
        return {**block, "source": {**block["source"], "data": text}}
    content = list(block["content"])
    content[inner] = {**content[inner], "text": text}
    return {**block, "content": content}


_REPEAT_MIN_CHARS = 20
"""Lines shorter than this are never called repeats (a brace, a blank, ``ok``)."""


def _repeatable(line: str) -> bool:
    key = line.strip()
    return len(key) >= _REPEAT_MIN_CHARS and not is_marker(key) and not key.startswith(NOTE_START)


class _Repeats:
    """Where :func:`_drop_repeats` stands after some results: the lines seen so far and, per
    result, its new texts and the texts its notes name (put in the store again on replay)."""

    __slots__ = ("outs", "seen", "size")

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.outs: list[tuple[tuple[str | None, ...] | None, tuple[str, ...]]] = []
        self.size = 0


def _result_texts(block: dict[str, Any]) -> tuple[str | None, ...] | None:
    """What :func:`_drop_repeats` reads of a result: the text of each content block (None for
    a block of another kind), or None when its content is no list."""
    content = block.get("content")
    if not isinstance(content, list):
        return None
    return tuple(
        b.get("text") if isinstance(b, dict) and b.get("type") == "text" else None for b in content
    )


def _drop_repeats(request: Request, counter: LocalCounter, store: Store) -> Request:
    """Each run of 2+ lines of a tool result that earlier results (as sent) hold becomes one
    note naming the store id of the run's lines (not the earlier call: it may be summarized
    away or cleared later), when the note costs fewer tokens than the run. Texts that start as
    JSON are left whole (their lines are not rows). Depends only on earlier results, so the
    prefix stays byte-identical.

    Incremental: the state after the results of the last call (the lines seen, each result's
    new texts) is kept in the memo under the token of those results' texts, so a turn that
    adds results processes only those; the earlier ones are rebuilt from their recorded texts
    and their notes' texts put in the store again, in order, as a fresh run would."""
    places: list[tuple[list[Any], int, dict[str, Any]]] = []
    items: list[Any] = [("\0repeats", _REPEAT_MIN_CHARS, counter.factor())]
    for message in request["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if isinstance(block, dict) and block.get("type") == "tool_result":
                places.append((content, j, block))
                items.append(_result_texts(block))
    tokens = prefix_tokens(items)
    k, state = resume("repeats", tokens)
    if state is None:
        state = _Repeats()
    done = max(0, k - 1)
    for n, (content, j, block) in enumerate(places):
        if n < done:
            texts, notes = state.outs[n]
            for text in notes:
                keep_text(store, text)
        else:
            texts, notes = _drop_repeated_lines(items[n + 1], state, counter, store)
            state.outs.append((texts, notes))
            state.size += 16 + sum(len(t) for t in texts or () if t is not None)
        if texts is not None:
            content[j] = _with_texts(block, texts)
    suspend("repeats", tokens[-1], state, state.size)
    return request


def _with_texts(block: dict[str, Any], texts: tuple[str | None, ...]) -> dict[str, Any]:
    """``block`` with the text of each content block whose entry in ``texts`` is not None."""
    content = block["content"]
    out = [b if t is None else {**b, "text": t} for b, t in zip(content, texts, strict=True)]
    return {**block, "content": out}


def _drop_repeated_lines(
    texts: tuple[str | None, ...] | None, state: _Repeats, counter: LocalCounter, store: Store
) -> tuple[tuple[str | None, ...] | None, tuple[str, ...]]:
    """The new text of each of a result's texts (None: unchanged; None for all when nothing
    changed) and the texts its notes name, the result's lines added to ``state.seen``."""
    if texts is None:
        return None, ()
    seen = state.seen
    out: list[str | None] = []
    notes: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            out.append(None)
            continue
        lines = text.split("\n")
        new: list[str] = []
        if seen and not text.lstrip().startswith(("[", "{")):
            run: list[str] = []
            for line in [*lines, None]:
                if line is not None and _repeatable(line) and line.strip() in seen:
                    run.append(line)
                    continue
                note = None
                if len(run) >= 2 and sum(len(x.strip()) for x in run) >= 3 * _REPEAT_MIN_CHARS:
                    lines_text = "\n".join(run)
                    note = repeat_note(len(run), store_key(lines_text))
                    # Ids are dense in tokens: a short run can cost less than its note, and a
                    # note that adds tokens would also push a result kept whole under slack
                    # over it, so that trim(trim(x)) would cut it.
                    if counter.count_text(note) >= counter.count_text(lines_text):
                        note = None
                    else:
                        keep_text(store, lines_text)
                        notes.append(lines_text)
                if note is not None:
                    new.append(note)
                else:
                    new.extend(run)
                run = []
                if line is not None:
                    new.append(line)
        for line in lines:
            if _repeatable(line):
                key = line.strip()
                if key not in seen:
                    seen.add(key)
                    state.size += len(key) + 60
        if new and new != lines:
            out.append("\n".join(new))
        else:
            out.append(None)
    if all(t is None for t in out):
        return None, tuple(notes)
    return tuple(out), tuple(notes)


def trim(
    *,
    project: Mapping[str, Sequence[str]] | None = None,
    max_tokens: int | Mapping[str, int] | None = None,
    head: float = 0.5,
    smart: bool = True,
    compact: bool = True,
    slack: float = 0.0,
    max_input_tokens: int | None = None,
    dedupe: bool = True,
    clearing: Clearing | None = None,
    store: Store | None = None,
    model: str | None = None,
    counter: TokenCounter | None = None,
) -> Trim:
    """Trim tool results: dedupe, project JSON fields, truncate to a budget, clear old ones.

    ``project`` maps a tool name to the field paths to keep (``rows[*].id``,
    ``data.items[*].{id,status}``). ``max_tokens`` is the budget per tool result (an int, or
    a dict by tool name with ``"*"`` as the default); ``head`` the share of it kept from the
    start. ``slack``: a result up to ``max_tokens * (1 + slack)`` tokens is kept whole (cutting
    a little saves little and loses what the agent may use); a longer one is cut to
    ``max_tokens``. ``smart`` keeps the lines that hold what the call and the turns before it
    name, then the lines with words of their own, and collapses repeated lines. ``compact``
    first rewrites each result in fewer tokens without losing a value
    (:func:`~tidyctx.text._compaction.compact_text`: compact JSON, tables, no padding or
    escape codes), and replaces lines the context already holds (echoed from the call's input,
    or in an earlier result as sent) by a one-line note. ``max_input_tokens`` (off by
    default) cuts each long string of a tool_use input (file contents written, edit strings)
    to that budget when it enters history; what is cut stays in ``store``. ``dedupe`` replaces
    a result identical to an earlier one by a reference to it.

    ``clearing`` (off by default) also clears old results: a
    :class:`~tidyctx.transforms._clear.Clearing`, the options of :func:`~tidyctx.clear` with
    the names and meaning of Anthropic's ``clear_tool_uses_20250919`` edit; with
    ``Clearing(server_side=True)`` that edit is emitted as ``context_management`` instead.
    Clearing plans on the trimmed results, so a batch is priced at what it really removes.

    ``store`` keeps what was removed (default: a :class:`~tidyctx.store.MemoryStore` of this
    transform); give the same store to :func:`~tidyctx.transforms._expand.expand_tool`.
    ``model`` is the model the request is sent to (default: the request's ``model``), for
    counting; ``counter`` a :class:`~tidyctx.tokens.TokenCounter` (default: a
    :class:`~tidyctx.tokens.LocalCounter` for ``model``): a LocalCounter counts the budgets, any
    counter the clearing ``trigger`` (:func:`~tidyctx.tokens.local_counter`).
    """
    if max_tokens is not None:
        budgets = max_tokens.values() if isinstance(max_tokens, Mapping) else [max_tokens]
        for value in budgets:
            if not isinstance(value, int) or value < 40:
                raise ValueError(
                    f"trim(max_tokens={max_tokens!r}): budgets must be integers >= 40 (room for "
                    "the marker line)"
                )
    if max_input_tokens is not None and (
        isinstance(max_input_tokens, bool)
        or not isinstance(max_input_tokens, int)
        or max_input_tokens < 40
    ):
        raise ValueError(
            f"trim(max_input_tokens={max_input_tokens!r}): must be an integer >= 40 (room for "
            "the marker line)"
        )
    if isinstance(slack, bool) or not isinstance(slack, int | float) or slack < 0:
        raise ValueError(
            f"trim(slack={slack!r}): must be a number >= 0 (0.5: keep results "
            "up to 1.5x max_tokens whole)"
        )
    if isinstance(head, bool) or not isinstance(head, int | float) or not 0.0 <= head <= 1.0:
        raise ValueError(f"trim(head={head!r}): the head share must be a number from 0 to 1")
    if project is not None and not isinstance(project, Mapping):
        raise ValueError(
            f"trim(project={project!r}): give a dict of tool name to paths, e.g. "
            '{"sql_query": ["rows[*].id", "count"]}'
        )
    if store is not None and not (
        callable(getattr(store, "get", None)) and callable(getattr(store, "put", None))
    ):
        raise TypeError(f"trim(store=...) needs a Store (with get and put), got {store!r}")
    if clearing is not None and not isinstance(clearing, Clearing):
        raise TypeError(
            f"trim(clearing=...) takes a Clearing, e.g. trim(clearing=tc.Clearing(keep=10)); "
            f"got {type(clearing).__name__}"
        )
    check_counter(counter, "trim(counter=...)")
    specs: dict[str, tuple[str, ...]] = {}
    for tool, paths in (project or {}).items():
        if isinstance(paths, str):
            raise ValueError(
                f"trim(project={{{tool!r}: {paths!r}}}): give a list of paths, e.g. [{paths!r}]"
            )
        parse_paths(list(paths))  # a malformed path fails here, naming itself
        specs[tool] = tuple(paths)
    return Trim(
        project=specs,
        max_tokens=max_tokens,
        head=head,
        smart=smart,
        compact=compact,
        slack=slack,
        max_input_tokens=max_input_tokens,
        dedupe=dedupe,
        clearing=clearing,
        store=store if store is not None else MemoryStore(),
        model=model,
        counter=counter,
    )
