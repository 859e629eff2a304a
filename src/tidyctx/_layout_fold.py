"""The cache layout of a conversation, resumed from the layout of its earlier turn.

:func:`tidyctx.cachesim.layout` walks every block of a request: its token count, its prefix
key (a hash chained over every block before it), its marker. For a conversation that grew by
a turn, all of that is the same as on the previous call up to the new messages, so
:func:`folded` keeps the messages' part of the layout in the memo (:func:`tidyctx._memo.resume`
and :func:`~tidyctx._memo.suspend`, one state per prefix of the messages' content keys) and
lays out only the messages after it.

What a message's place in the layout depends on besides its own content, and how each is
kept equal to a fresh layout:

- everything before the messages (model, counter, tools, system, the settings mixed into the
  keys, the hidden tool prompt): laid out on every call, and part of the first prefix item,
  so a different head finds no state;
- the number of images in the whole request (mixed into every message key): the state holds
  the count it was laid out with, and a request with another count starts over;
- the current turn's start (:func:`tidyctx.tokens.thinking_cutoff`), which says which earlier
  thinking blocks a model strips: the state holds, for each message with thinking, which side
  of it the message was laid out on, and is cut back to the first message now on the other
  side.

Anything else (data that is not plain JSON, a counter that is not a LocalCounter) is laid out
whole, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidyctx._memo import content_key, prefix_tokens, resume, shared_size, suspend
from tidyctx._request import (
    CACHEABLE_NEVER,
    MAX_BREAKPOINTS,
    _is_plain,
    cache_content,
    can_carry_marker,
    canonical_json,
    is_deferred_tool,
    iter_blocks,
    to_request,
)
from tidyctx.cachesim import Layout, _block_digest, _count_images, _digest, _has_marker
from tidyctx.tokens import (
    MESSAGE_OVERHEAD,
    LocalCounter,
    _memo_raw,
    keeps_prior_thinking,
    opens_turn,
    tool_prompt_tokens,
)

_NEXT = {"": "tools", "tools": "system", "system": "messages"}


def _copy(value: Any) -> Any:
    """A copy of plain JSON data down to its strings: what a state holds must not change when
    the caller edits its request after the call."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def _images(message: Mapping[str, Any]) -> int:
    """The images :func:`tidyctx.cachesim._count_images` counts in one message."""
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return _count_images({"messages": [{"content": content}]})


def _unmarked(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` without its blocks' ``cache_control`` (a copy only when one is there): the
    key a state is kept under, so that a conversation whose breakpoints moved still resumes."""
    content = message.get("content")
    if type(content) is not list or not any(_marked(b) for b in content):
        return message
    return {**message, "content": [_strip(b) if _marked(b) else b for b in content]}


def _marked(block: Any) -> bool:
    # Where cache_content() drops markers: on the block, and on a tool_result's own blocks.
    if type(block) is not dict:
        return False
    if "cache_control" in block:
        return True
    inner = block.get("content")
    return (
        block.get("type") == "tool_result"
        and type(inner) is list
        and any(type(b) is dict and "cache_control" in b for b in inner)
    )


def _strip(block: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in block.items() if k != "cache_control"}
    inner = out.get("content")
    if out.get("type") == "tool_result" and type(inner) is list:
        out["content"] = [
            {k: v for k, v in b.items() if k != "cache_control"} if type(b) is dict else b
            for b in inner
        ]
    return out


def _marks(state: _State, messages: list[Any], base: int) -> list[tuple[int, str]]:
    """The breakpoints among the messages' positions, read from this call's blocks."""
    out: list[tuple[int, str]] = []
    for p, (i, j) in enumerate(state.refs):
        if j < 0:
            continue
        marker = _has_marker(messages[i]["content"][j])
        if marker is not None:
            out.append((base + p, str(marker.get("ttl", "5m"))))
    return out


class _State:
    """The messages' part of a layout, for the first ``n`` messages."""

    __slots__ = (
        "carry",
        "content",
        "images",
        "key",
        "keys",
        "last_opener",
        "n",
        "paths",
        "pending",
        "refs",
        "section",
        "seed_log",
        "sensitive",
        "size",
        "starts",
        "tokens",
        "total_images",
    )

    def __init__(self, key: bytes, section: str, total_images: int) -> None:
        self.paths: list[str] = []
        self.tokens: list[int] = []
        self.keys: list[bytes] = []
        self.content: list[Any] = []
        self.carry: list[bool] = []
        self.refs: list[tuple[int, int]] = []
        """Each position's (message, block) index, -1 for a string content: where its marker
        is read on every call (markers move from call to call; the rest does not)."""
        self.seed_log: list[tuple[str, Any]] = []
        self.key = key
        self.section = section
        self.pending = 0
        self.n = 0
        self.images = 0
        self.total_images = total_images
        self.last_opener = -1
        self.sensitive: list[tuple[int, bool]] = []
        """(message, laid out before the turn's start) for each message with thinking."""
        self.starts: list[tuple[Any, ...]] = []
        """What the state was at the start of each message, to cut it back there."""
        self.size = 400

    def cut_back(self, m: int) -> None:
        """Forget messages ``m`` on."""
        pos, key, pending, section, seeds, images, opener, size = self.starts[m]
        for lst in (self.paths, self.tokens, self.keys, self.content, self.carry, self.refs):
            del lst[pos:]
        del self.seed_log[seeds:]
        del self.starts[m:]
        self.sensitive = [s for s in self.sensitive if s[0] < m]
        self.key, self.pending, self.section = key, pending, section
        self.images, self.last_opener, self.size, self.n = images, opener, size, m


FOLD_FROM = 24
"""Requests with fewer messages are laid out whole: below this the fold's own bookkeeping (a
content key and a prefix token per message, copies of the new messages) costs about as much
as the whole layout (0.3-0.5 ms more per call on a proxied 11 kB request)."""


def folded(request: Any, counter: LocalCounter | None, model: str | None) -> Layout | None:
    """The layout of ``request`` resumed from an earlier call's, or None when it cannot be
    folded or is short (:data:`FOLD_FROM`): the caller lays it out whole, and raises what that
    raises."""
    if type(request) is not dict:
        return None
    messages = request.get("messages")
    if type(messages) is not list or len(messages) < max(FOLD_FROM, 1):
        return None
    try:
        return _folded(request, messages, counter, model)
    except Exception:
        return None


def _folded(
    request: dict[str, Any], messages: list[Any], counter: LocalCounter | None, model: str | None
) -> Layout | None:
    head, _ = to_request({k: v for k, v in request.items() if k != "messages"})
    name = str(model or head.get("model") or "")
    if not name:
        return None
    counter = counter or LocalCounter(name or None)
    count_model = counter.model or name or None
    factor = counter.factor(count_model)
    drop_layout = not keeps_prior_thinking(name)
    drop_count = not keeps_prior_thinking(count_model)
    thinking = head.get("thinking")
    seeds: dict[str, tuple[tuple[str, Any], ...]] = {
        "tools": (("model", name),),
        "system": (("speed", head.get("speed")),),
        "messages": (
            ("tool_choice", head.get("tool_choice")),
            ("thinking", thinking if isinstance(thinking, Mapping) else None),
        ),
    }
    tool_prompt = tool_prompt_tokens(name, head.get("tool_choice")) if head.get("tools") else 0
    scale = LocalCounter._scale

    # The head: tools and system, laid out as layout() does.
    key = b""
    section = ""
    paths: list[str] = []
    sections: list[str] = []
    tokens: list[int] = []
    keys: list[bytes] = []
    content: list[Any] = []
    carry: list[bool] = []
    marks: list[tuple[int, str]] = []
    seed_log: list[tuple[str, Any]] = []
    for ref in iter_blocks(head):
        block = ref.block
        if ref.section == "tools" and is_deferred_tool(block):
            continue  # not rendered into the prompt: not part of any prefix (as in layout())
        n = scale(_memo_raw("t" if ref.section == "tools" else "b", block), factor)
        while section != ref.section:
            section = _NEXT[section]
            for seed in seeds[section]:
                seed_log.append(seed)
                key = _digest(key, canonical_json(list(seed)))
        if not paths:
            n += tool_prompt
        body = cache_content(block)
        if drop_layout and isinstance(block, Mapping) and block.get("type") in CACHEABLE_NEVER:
            keys.append(_digest(key, b"thinking", str(len(paths)).encode()))
        else:
            key = _digest(key, _block_digest(body))
            keys.append(key)
        marker = _has_marker(block)
        if marker is not None:
            marks.append((len(paths), str(marker.get("ttl", "5m"))))
        paths.append(ref.path)
        sections.append(ref.section)
        tokens.append(n)
        content.append(body)
        carry.append(can_carry_marker(block))
    first = (
        "\0layout",
        name,
        factor,
        drop_layout,
        drop_count,
        tool_prompt,
        key,
        section,
        len(paths),
        canonical_json([list(s) for s in seeds["tools"] + seeds["system"] + seeds["messages"]]),
    )

    message_keys: list[Any] = []
    for message in messages:
        if type(message) is not dict:
            return None
        message_keys.append(content_key(_unmarked(message)))
    prefix = prefix_tokens([first, *message_keys])
    k, state = resume("layout-fold", prefix)
    head_images = _count_images(head)
    if isinstance(state, _State) and state.n == k - 1:
        for message in messages[state.n :]:
            if not _is_plain(message, 2):
                return None
        total_images = head_images + state.images + sum(_images(m) for m in messages[state.n :])
        if total_images != state.total_images:
            state = None
    else:
        state = None
    if state is None:
        for message in messages:
            if not _is_plain(message, 2):
                return None
        total_images = head_images + sum(_images(m) for m in messages)
        state = _State(key, section, total_images)

    # The current turn's start, from the new messages or the state's.
    opener = state.last_opener
    for i in range(len(messages) - 1, state.n - 1, -1):
        if opens_turn(messages[i]):
            opener = i
            break
    cut = max(opener, 0)
    for i, before in state.sensitive:
        if (i < cut) != before:
            state.cut_back(i)
            break

    seeds_all = {**seeds, "messages": (*seeds["messages"], ("images", total_images))}
    base = len(paths)
    _extend(state, messages, cut, base, seeds_all, factor, drop_layout, drop_count, tool_prompt)

    all_paths = paths + state.paths
    all_marks = marks + _marks(state, messages, base)
    auto = head.get("cache_control")
    if isinstance(auto, Mapping):
        ttl = str(auto.get("ttl", "5m"))
        all_carry = carry + state.carry
        pos = next((p for p in range(len(all_paths) - 1, -1, -1) if all_carry[p]), None)
        if pos is not None:
            existing = dict(all_marks).get(pos)
            if existing is None and len(all_marks) < MAX_BREAKPOINTS:
                all_marks.append((pos, ttl))
            elif existing != ttl:
                all_paths = []  # an error: laid out whole, which names it
    if not all_paths:
        suspend("layout-fold", prefix[state.n], state, state.size)
        return None
    all_tokens = tokens + state.tokens
    cum: list[int] = []
    running = 0
    for n in all_tokens:
        running += n
        cum.append(running)
    lay = Layout(
        model=name,
        paths=tuple(all_paths),
        sections=(*sections, *("messages",) * len(state.paths)),
        tokens=tuple(all_tokens),
        cum=tuple(cum),
        keys=(*keys, *state.keys),
        breakpoints=tuple(sorted(all_marks)),
        total=running,
        content=(*content, *state.content),
        seeds=(*seed_log, *state.seed_log),
    )
    suspend("layout-fold", prefix[state.n], state, state.size)
    return lay


def _extend(
    state: _State,
    messages: list[Any],
    cut: int,
    base: int,
    seeds: dict[str, tuple[tuple[str, Any], ...]],
    factor: float,
    drop_layout: bool,
    drop_count: bool,
    tool_prompt: int,
) -> None:
    """Lay out ``messages[state.n:]`` onto ``state``, as layout() does."""
    scale = LocalCounter._scale
    key, section, pending = state.key, state.section, state.pending
    for i in range(state.n, len(messages)):
        message = messages[i]
        state.starts.append(
            (
                len(state.paths),
                key,
                pending,
                section,
                len(state.seed_log),
                state.images,
                state.last_opener,
                state.size,
            )
        )
        raw_content = message.get("content")
        if isinstance(raw_content, str):
            blocks: list[tuple[str, int, Any]] = [(f"messages[{i}].content", -1, raw_content)]
        elif isinstance(raw_content, list):
            blocks = [(f"messages[{i}].content[{j}]", j, b) for j, b in enumerate(raw_content)]
        else:
            blocks = []
        last_message = -1
        sensitive = False
        for path, j, block in blocks:
            is_thinking = isinstance(block, Mapping) and block.get("type") in CACHEABLE_NEVER
            sensitive = sensitive or is_thinking
            if is_thinking and drop_count and i < cut:
                n = 0
            else:
                n = scale(_memo_raw("b", block), factor)
            if is_thinking and drop_layout and i < cut:
                if last_message != i:  # its role overhead stays with the message
                    pending, last_message = pending + MESSAGE_OVERHEAD, i
                continue
            while section != "messages":
                section = _NEXT[section]
                for seed in seeds[section]:
                    state.seed_log.append(seed)
                    key = _digest(key, canonical_json(list(seed)))
            if last_message != i:
                n += MESSAGE_OVERHEAD
                last_message = i
            n, pending = n + pending, 0
            position = base + len(state.paths)
            if not position:
                n += tool_prompt
            body = _copy(cache_content(block))
            if drop_layout and is_thinking:
                position_key = _digest(key, b"thinking", str(position).encode())
            else:
                key = position_key = _digest(key, _block_digest(body))
            state.refs.append((i, j))
            state.paths.append(path)
            state.tokens.append(n)
            state.keys.append(position_key)
            state.content.append(body)
            state.carry.append(can_carry_marker(block))
            state.size += 120 + len(path) + shared_size(body)
        if sensitive and (drop_layout or drop_count):
            state.sensitive.append((i, i < cut))
        state.images += _images(message)
        if opens_turn(message):
            state.last_opener = i
        state.n = i + 1
    state.key, state.section, state.pending = key, section, pending
