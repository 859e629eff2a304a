"""slice_code(): file views cut to the outline and the code the conversation names."""

from __future__ import annotations

import copy
import itertools
import json
import re
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from builders import result_of
from strategies import growing_conversations, requests
from tidyctx._edge import start
from tidyctx._markers import MARKER_PREFIX
from tidyctx._memo import DEFAULT_MAX_BYTES, clear_memo, memo_stats, set_memo_limit
from tidyctx.code import _grammars
from tidyctx.code import _slicing as slicing
from tidyctx.code._views import GAP, cat_path, parse_listing
from tidyctx.store import MemoryStore, StoreWarning
from tidyctx.testing import LocalServer
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._expand import expand_tool
from tidyctx.transforms._slice_code import Conversation, SliceCode, _owners, _terms, slice_code

MODEL = "claude-sonnet-4-6"
# A real file of this interpreter's standard library (about 500 lines, 4,800 tokens).
TEXTWRAP = Path(textwrap.__file__).read_text(encoding="utf-8")
HEADER = "Here's the result of running `cat -n` on /repo/lib/textwrap.py:\n"


def cat_n(source: str, first: int = 1, sep: str = "\t") -> str:
    return "\n".join(f"{n:>6}{sep}{line}" for n, line in enumerate(source.split("\n"), first))


def def_lines(source: str, qualname: str) -> tuple[int, int]:
    d = next(d for d in slicing.definitions(source, "python") if d.qualname == qualname)
    return d.start_line, d.end_line


def view_request(
    result: str,
    *,
    before: str = "Fix the wrapping bug.",
    tool: str = "str_replace_editor",
    arguments: dict[str, Any] | None = None,
    after: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    arguments = arguments or {"command": "view", "path": "/repo/lib/textwrap.py"}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": before},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look at the file."},
                {"type": "tool_use", "id": "toolu_view", "name": tool, "input": arguments},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_view", "content": result}],
        },
    ]
    return {"model": MODEL, "max_tokens": 512, "messages": messages + (after or [])}


def result_text(request: dict[str, Any], index: int = 2) -> str:
    block = request["messages"][index]["content"][0]
    if isinstance(block["content"], str):  # left as the client sent it
        return str(block["content"])
    return "".join(b["text"] for b in block["content"] if b["type"] == "text")


def numbered(text: str) -> dict[int, str]:
    """Line number -> code of the numbered lines of a (sliced) listing."""
    out = {}
    for line in text.split("\n"):
        m = re.fullmatch(r" *(\d+)(\t|→|:)(.*)", line, re.DOTALL)
        if m:
            out[int(m.group(1))] = m.group(3)
    return out


def assert_only_source(out: str, original: str, source_lines: list[str], first: int = 1) -> None:
    """Every line of ``out`` is the note, a gap line, a line of the original result, or a
    numbered line whose code is the source's line of that number."""
    original_lines = set(original.split("\n"))
    note, *rest = out.split("\n")
    assert note.startswith(MARKER_PREFIX) and note.endswith("]")
    for line in rest:
        if re.fullmatch(rf" *(\t|→|:)[ \t]*{GAP} \(lines [\d,]+–[\d,]+ not shown\)", line):
            continue
        m = re.fullmatch(r" *(\d+)(\t|→|:)(.*)", line, re.DOTALL)
        if m and first <= int(m.group(1)) < first + len(source_lines):
            assert m.group(3) == source_lines[int(m.group(1)) - first], line
            continue
        assert line in original_lines, f"line not from the source: {line!r}"


# ---------------------------------------------------------------------------- listings


def test_listing_forms_of_real_viewers() -> None:
    openhands = HEADER + cat_n("import os\n\ndef f():\n    pass") + "\n"
    listing = parse_listing(openhands)
    assert listing is not None
    assert (listing.head, listing.first, listing.sep, listing.width) == (HEADER, 1, "\t", 6)
    assert listing.lines == ("import os", "", "def f():", "    pass")
    assert listing.tail == "\n"

    claude = (
        cat_n("a = 1\nb = 2", sep="→") + "\n\n<system-reminder>\nbe careful\n</system-reminder>\n"
    )
    listing = parse_listing(claude)
    assert listing is not None and listing.sep == "→" and listing.lines == ("a = 1", "b = 2")
    assert listing.tail.startswith("\n\n<system-reminder>")

    # SWE-agent: an OBSERVATION line, \r\n endings, and a last empty line without its tab.
    swe = "OBSERVATION:\nHere's the result:\r\n  6035\tx = 1\r\n  6036\t    y = 2\r\n  6037"
    listing = parse_listing(swe)
    assert listing is not None and listing.first == 6035
    assert listing.lines == ("x = 1\r", "    y = 2\r", "")
    assert listing.source.split("\n")[6034] == "x = 1\r"

    clipped = (
        HEADER
        + cat_n("def f():\n    return 1\ndef g():\n    ret")
        + "<response clipped><NOTE>more</NOTE>\n"
    )
    listing = parse_listing(clipped)
    assert listing is not None and listing.lines[-1] == "    ret"
    assert listing.tail == "<response clipped><NOTE>more</NOTE>\n"


def test_listings_that_are_not_plain_files() -> None:
    abbreviated = "     1\timport os\n     2\t\n…\n   120\tdef f():\n   121\t    pass"
    assert parse_listing(abbreviated) is None
    assert (
        parse_listing(
            "[tidyctx: sliced]\n     1\ta\n" + f"      \t{GAP} (lines 2–9 not shown)\n    10\tb"
        )
        is None
    )
    raw = parse_listing("def f():\n    return {200: 'OK'}\n")
    assert raw is not None and raw.sep == "" and raw.first == 1


@given(
    st.lists(st.text(st.characters(exclude_characters="\n"), max_size=30), min_size=1, max_size=30),
    st.sampled_from(["\t", "→"]),
    st.integers(1, 5000),
)
@settings(max_examples=60)
def test_listing_round_trip(lines: list[str], sep: str, first: int) -> None:
    text = HEADER + cat_n("\n".join(lines), first, sep) + "\n"
    listing = parse_listing(text)
    assert listing is not None
    assert listing.lines == tuple(lines) and listing.first == first
    body = "\n".join(f"{n:>6}{sep}{line}" for n, line in enumerate(listing.lines, first))
    assert listing.head + body + listing.tail == text


def test_cat_path_reads_plain_cat_only() -> None:
    assert cat_path({"command": "cat /r/a.py"}) == "/r/a.py"
    assert cat_path({"command": "cat -n 'my file.py'"}) == "my file.py"
    for command in ("cat a.py b.py", "cat a.py | grep x", "cat -A a.py", "grep x a.py", "cat 'a"):
        assert cat_path({"command": command}) is None
    assert cat_path({"cmd": "cat a.py"}) is None


# ---------------------------------------------------------------------------- slicing


def test_slices_a_real_file_to_the_named_function() -> None:
    text = HEADER + cat_n(TEXTWRAP) + "\n"
    request = view_request(text, before="dedent() keeps a tab it should strip; fix `dedent`.")
    store = MemoryStore()
    t = slice_code(max_tokens=1500, store=store)
    out = result_text(t(request))
    counter = LocalCounter(MODEL)
    assert counter.count_text(out) < counter.count_text(text) / 2
    lines = TEXTWRAP.split("\n")
    start, end = def_lines(TEXTWRAP, "dedent")
    shown = numbered(out)
    for n in range(start, end + 1):  # the function, whole, at its own line numbers
        assert shown[n] == lines[n - 1]
    wrap_start, wrap_end = def_lines(TEXTWRAP, "TextWrapper._wrap_chunks")
    assert wrap_start in shown and wrap_end not in shown  # other bodies: signatures only
    assert_only_source(out, text, lines)
    note = out.split("\n")[0]
    assert "sliced /repo/lib/textwrap.py (python)" in note and "dedent" in note
    key = re.search(r'tidyctx_expand\(id="(tc_[0-9a-f]+)"\)', note)
    assert key is not None
    _, handler = expand_tool(store)
    assert handler({"id": key.group(1), "length": 100_000}) == text
    assert out.split("\n")[1] == HEADER.rstrip("\n")  # the viewer's header stays


def test_a_mention_after_the_view_changes_nothing() -> None:
    """The slice depends on the conversation up to the call: later turns do not re-slice."""
    text = cat_n(TEXTWRAP, sep="→")
    t = slice_code(max_tokens=1500)
    first = view_request(text, tool="Read", arguments={"file_path": "/r/textwrap.py"})
    later = view_request(
        text,
        tool="Read",
        arguments={"file_path": "/r/textwrap.py"},
        after=[
            {"role": "assistant", "content": "Now look at `indent` and TextWrapper._split."},
            {"role": "user", "content": "ok"},
        ],
    )
    a, b = t(first), t(later)
    assert a["messages"] == b["messages"][:3]
    _, end = def_lines(TEXTWRAP, "indent")
    assert end not in numbered(result_text(b))


def test_traceback_lines_pick_the_definition_around_them() -> None:
    start, end = def_lines(TEXTWRAP, "TextWrapper._handle_long_word")
    trace = (
        "Traceback (most recent call last):\n"
        f'  File "/repo/lib/textwrap.py", line {start + 5}, in _handle_long_w\n'
        "IndexError: list index out of range"
    )
    messages = [
        {"role": "user", "content": "Run the tests."},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t0", "name": "bash", "input": {"command": "pytest -x"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t0", "content": trace}],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "view",
                    "input": {"path": "/repo/lib/textwrap.py"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": cat_n(TEXTWRAP)}],
        },
    ]
    out = slice_code(max_tokens=1500)({"model": MODEL, "messages": messages})
    shown = numbered(result_text(out, 4))
    assert all(n in shown for n in range(start, end + 1))


def test_grep_hits_of_the_file_count_as_lines() -> None:
    start, end = def_lines(TEXTWRAP, "shorten")
    messages = [
        {"role": "user", "content": "Where is the placeholder handled?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "t0",
                    "name": "bash",
                    "input": {"command": "grep -n placeholder lib/textwrap.py"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t0",
                    "content": f"{start + 3}:    placeholder stuff",
                }
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "bash",
                    "input": {"command": "cat -n lib/textwrap.py"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": cat_n(TEXTWRAP)}],
        },
    ]
    out = result_text(slice_code(max_tokens=1500)({"model": MODEL, "messages": messages}), 4)
    assert out.startswith(MARKER_PREFIX + "sliced lib/textwrap.py")
    assert all(n in numbered(out) for n in range(start, end + 1))


def test_raw_file_content_gets_line_numbers() -> None:
    request = view_request(
        TEXTWRAP, tool="read_file", arguments={"path": "textwrap.py"}, before="fix fill()"
    )
    out = result_text(slice_code(max_tokens=1500)(request))
    start, end = def_lines(TEXTWRAP, "fill")
    lines = TEXTWRAP.split("\n")
    assert all(numbered(out)[n] == lines[n - 1] for n in range(start, end + 1))
    assert_only_source(out, TEXTWRAP, lines)


def test_crlf_partial_view_keeps_its_numbers() -> None:
    body = "\r\n".join(f"{n:>6}\t{line}" for n, line in enumerate(TEXTWRAP.split("\n")[100:], 101))
    text = "OBSERVATION:\nHere's the result of running `cat -n` on /t/textwrap.py:\r\n" + body
    request = view_request(
        text,
        arguments={"command": "view", "path": "/t/textwrap.py", "view_range": [101, 9999]},
        before="check `TextWrapper._split_chunks`",
    )
    out = result_text(slice_code(max_tokens=1500)(request))
    assert out.startswith(MARKER_PREFIX)
    start, end = def_lines(TEXTWRAP, "TextWrapper._split_chunks")
    lines = TEXTWRAP.split("\n")
    shown = numbered(out)
    assert all(shown[n] == lines[n - 1] + "\r" for n in range(start, end + 1))  # \r\n kept
    assert min(shown) >= 101


def test_left_unchanged_and_explained() -> None:
    big_elixir = cat_n("\n".join(f"  def f{i}(x), do: x + {i}" for i in range(600)))
    big_prose = cat_n(
        "\n".join(f"This is line {i} of some notes, not code at all." for i in range(600))
    )
    binary = "\x00\x01" * 4000
    cases = {
        "/r/lib/app.ex": (big_elixir, "language not known"),
        "/r/notes.py": (big_prose, "no definitions found"),
        "/r/blob.py": (binary, "could not parse"),
        "/r/done.py": (
            MARKER_PREFIX + "12 tokens cut]\n" + cat_n(TEXTWRAP),
            "already cut by tidyctx",
        ),
    }
    t = slice_code(max_tokens=300)
    for path, (text, reason) in cases.items():
        request = view_request(text, arguments={"command": "view", "path": path})
        out = t(request)
        assert out == request, path
        assert reason in t.describe(request, out), (path, t.describe(request, out))


def test_syntax_errors_still_slice_and_say_so() -> None:
    broken = TEXTWRAP.replace("def dedent(text):", "def dedent(text:", 1)
    request = view_request(cat_n(broken), before="look at `dedent`")
    t = slice_code(max_tokens=1500)
    out = t(request)
    assert result_text(out).startswith(MARKER_PREFIX)
    assert "cannot parse" in t.describe(request, out) or "syntax" in t.describe(request, out)


def test_missing_grammar_is_left_as_is_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    body = "\n".join(f"  $x = $x * {k} + strlen('padding text {k}');" for k in range(8))
    source = "<?php\n" + "\n".join(
        f"function f{i}($x) {{\n{body}\n  return $x;\n}}" for i in range(60)
    )
    request = view_request(cat_n(source), arguments={"command": "view", "path": "/r/a.php"})
    monkeypatch.setitem(sys.modules, "tree_sitter_php", None)  # as if not installed
    _grammars.load.cache_clear()
    try:
        t = slice_code(max_tokens=300)
        out = t(request)
        assert out == request
        assert "tree-sitter-php" in t.describe(request, out)
    finally:
        monkeypatch.undo()
        _grammars.load.cache_clear()
    t = slice_code(max_tokens=300)
    assert result_text(t(request)).startswith(MARKER_PREFIX + "sliced /r/a.php (php)")


def test_only_views_are_touched() -> None:
    text = cat_n(TEXTWRAP)
    t = slice_code(max_tokens=300)
    edit = view_request(text, arguments={"command": "str_replace", "path": "/r/textwrap.py"})
    assert t(edit) == edit
    error = view_request(text)
    error["messages"][2]["content"][0]["is_error"] = True
    assert t(error) == error
    other = view_request(text, tool="search", arguments={"path": "/r/textwrap.py"})
    assert t(other) == other
    mine = slice_code(max_tokens=300, tools={"search": "path"})
    assert result_text(mine(other)).startswith(MARKER_PREFIX)
    small = view_request(cat_n("def f():\n    return 1"))
    assert t(small) == small


def test_block_keys_and_other_blocks_survive() -> None:
    request = view_request(cat_n(TEXTWRAP))
    block = request["messages"][2]["content"][0]
    block["content"] = [
        {"type": "text", "text": cat_n(TEXTWRAP)},
        {"type": "text", "text": "(end of file)"},
    ]
    block["cache_control"] = {"type": "ephemeral"}
    out = slice_code(max_tokens=300)(request)["messages"][2]["content"][0]
    assert out["cache_control"] == {"type": "ephemeral"}
    assert out["content"][0]["text"].startswith(MARKER_PREFIX)
    assert out["content"][1] == {"type": "text", "text": "(end of file)"}


def test_bad_options_and_requests() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        slice_code(max_tokens=10)
    with pytest.raises(ValueError, match="max_tokens"):
        slice_code(max_tokens=True)
    with pytest.raises(ValueError, match="input key"):
        slice_code(tools={"Read": 3})  # type: ignore[dict-item]
    with pytest.raises(tc.ValidationError, match="messages"):
        slice_code()({"model": MODEL})


def test_explain_reports_the_slicing() -> None:
    request = view_request(HEADER + cat_n(TEXTWRAP), before="fix `dedent`")
    report = tc.explain(request, slice_code(max_tokens=1500))
    step = report.steps[0]
    assert step.saved_tokens > 2000
    assert step.note.startswith("sliced 1 file view (")
    assert step.name == "slice_code(max_tokens=1500)"


def test_conversation_weights_the_call_over_old_turns() -> None:
    messages = [
        {"role": "user", "content": "Fix `indent`."},
        {"role": "assistant", "content": "I will check `wrap` first."},
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading `fill` now."},
                {
                    "type": "tool_use",
                    "id": "t",
                    "name": "Read",
                    "input": {"file_path": "/a/textwrap.py"},
                },
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]},
    ]
    c = Conversation(messages)
    terms = dict(c.references(c.views["t"]).terms)
    assert terms["fill"] > terms["indent"] and terms["fill"] > terms["wrap"]
    assert "textwrap" in terms  # from the call's input


def test_the_task_outweighs_later_user_words() -> None:
    messages = [
        {"role": "user", "content": "Fix `indent`."},
        {"role": "assistant", "content": "Which one?"},
        {"role": "user", "content": "Maybe `wrap` too."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "view", "input": {"path": "a.py"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]},
    ]
    c = Conversation(messages)
    terms = dict(c.references(c.views["t"]).terms)
    assert terms["indent"] == 4 and terms["wrap"] == 3


def test_prose_words_count_only_where_they_look_like_code() -> None:
    found = _terms("We update it, then call close() and `flush`; data.strip().encode(x)", True)
    assert {"close", "flush", "encode", "data.strip", "strip"} <= found
    assert "update" not in found and "then" not in found
    assert {"update", "then"} <= _terms("We update it, then", False)  # code: every name


def _numbered_functions(bodies: dict[str, str], count: int = 40) -> str:
    """A module of ``count`` similar functions, some with the given bodies."""
    parts = []
    for i in range(count):
        name = f"step_{i}"
        body = bodies.get(name, "    value = compute(item, options)\n" * 6 + "    return value\n")
        parts.append(f"def {name}(item, options):\n{body}")
    return "import os\n\n\n" + "\n\n".join(parts)


def test_a_rare_name_of_the_task_picks_the_code_that_uses_it() -> None:
    """No definition is named, but the task quotes an attribute only one function reads:
    that function is shown in full."""
    body = (
        "    unsigned = item.attrs.get('_Unsigned')\n"
        "    if unsigned == 'false':\n"
        "        return item.astype('i1')\n" + "    item = compute(item, options)\n" * 4 + ""
        "    return item\n"
    )
    source = _numbered_functions({"step_23": body})
    request = view_request(
        cat_n(source),
        before="Variables with an `_Unsigned` attribute set to false come back unsigned.",
        arguments={"command": "view", "path": "/repo/coding/variables.py"},
    )
    shown = numbered(result_text(slice_code(max_tokens=1000)(request)))
    start, end = def_lines(source, "step_23")
    assert all(n in shown for n in range(start, end + 1))
    other_start, other_end = def_lines(source, "step_5")
    assert other_start in shown and other_end not in shown  # signature only


def test_the_helpers_a_named_function_calls_are_shown_next() -> None:
    caller = "    prepared = _align_rows(item)\n" + "    item = compute(item, options)\n" * 4
    caller += "    return prepared\n"
    source = _numbered_functions({"step_3": caller}) + (
        "\n\ndef _align_rows(item):\n"
        + "    item = compute(item, 'top')\n" * 5
        + "    return item\n"
    )
    request = view_request(
        cat_n(source),
        before="The rows come out upside down.",
        arguments={"command": "view", "path": "/repo/pack.py"},
    )
    request["messages"][1]["content"][0]["text"] = "Let me look at `step_3`."
    out = result_text(slice_code(max_tokens=1000)(request))
    shown = numbered(out)
    for name in ("step_3", "_align_rows"):
        start, end = def_lines(source, name)
        assert all(n in shown for n in range(start, end + 1)), name
    start, end = def_lines(source, "step_30")
    assert end not in shown
    assert_only_source(out, cat_n(source), source.split("\n"))


def test_tests_named_after_the_class_in_the_turn_are_shown() -> None:
    """Every test uses StratifiedKFold; the one named after it is shown."""
    names = ["group_kfold", "shuffle_split", "leave_one_out"] * 8
    source = "\n\n".join(
        f"def test_{name}_{k}():\n" + f"    check({name.title()}(), StratifiedKFold(), {k})\n" * 6
        for k, name in enumerate(names)
    )
    source += "\n\ndef test_stratified_kfold_ratios():\n" + "    check(StratifiedKFold(), 2)\n" * 6
    request = view_request(
        cat_n(source),
        before="Fix the shuffling.",
        arguments={"command": "view", "path": "/repo/tests/test_split.py"},
    )
    request["messages"][1]["content"][0]["text"] = "Let me find the tests of StratifiedKFold:"
    shown = numbered(result_text(slice_code(max_tokens=600)(request)))
    start, end = def_lines(source, "test_stratified_kfold_ratios")
    assert all(n in shown for n in range(start, end + 1))
    start, end = def_lines(source, "test_group_kfold_0")
    assert end not in shown


# ---------------------------------------------------------------------------- with the SDK


def test_sliced_request_is_accepted_by_the_api(
    anthropic_client: anthropic.Anthropic, local_server: LocalServer
) -> None:
    store = MemoryStore()
    tool, handler = expand_tool(store)
    editor = {
        "name": "str_replace_editor",
        "description": "View and edit files.",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "path": {"type": "string"}},
            "required": ["command", "path"],
        },
    }
    request = view_request(HEADER + cat_n(TEXTWRAP), before="dedent() is wrong; fix `dedent`.")
    request["tools"] = [editor, tool]
    sent = tc.pipe(request, tc.order(), slice_code(max_tokens=1500, store=store), tc.cache())
    tc.validate(sent)
    key = re.search(r'id="(tc_[0-9a-f]+)"', result_text(sent)).group(1)  # type: ignore[union-attr]
    local_server.script([{"type": "tool_use", "name": "tidyctx_expand", "input": {"id": key}}])
    reply = anthropic_client.messages.create(**sent)
    assert reply.stop_reason == "tool_use"
    body = local_server.requests[-1].body
    assert result_text(body).startswith(MARKER_PREFIX + "sliced /repo/lib/textwrap.py")
    call = next(b for b in reply.content if b.type == "tool_use")
    whole = handler({**call.input, "length": 100_000})
    assert whole == HEADER + cat_n(TEXTWRAP)  # the agent can read it all back


# ---------------------------------------------------------------------------- properties

_NAMES = ("parse", "load_config", "Reader", "render_page", "_helper", "Cache", "resolve", "emit")


@st.composite
def python_files(draw: st.DrawFn) -> str:
    """A Python module of functions and classes with bodies long enough to slice."""
    parts = ["import os", "from typing import Any", ""]
    for k in range(draw(st.integers(3, 8))):
        name = f"{draw(st.sampled_from(_NAMES))}_{k}"
        body = [
            f"    value = os.path.join(str(x), '{name}')" for _ in range(draw(st.integers(2, 12)))
        ]
        if draw(st.booleans()):
            methods = []
            for m in range(draw(st.integers(1, 3))):
                methods += [
                    f"    def {draw(st.sampled_from(_NAMES))}_m{m}(self, x):",
                    *("    " + b for b in body),
                    "        return value",
                    "",
                ]
            parts += [f"class {name.title().replace('_', '')}:", '    """A class."""', "", *methods]
        else:
            deco = ["@staticmethod"] if draw(st.booleans()) else []
            parts += [*deco, f"def {name}(x: Any) -> str:", *body, "    return value", ""]
    return "\n".join(parts)


_VIEWERS = ("openhands", "claude", "raw", "cat")


def _view(source: str, viewer: str, path: str) -> tuple[str, dict[str, Any], str]:
    if viewer == "openhands":
        return (
            "str_replace_editor",
            {"command": "view", "path": path},
            HEADER + cat_n(source) + "\n",
        )
    if viewer == "claude":
        return (
            "Read",
            {"file_path": path},
            cat_n(source, sep="→") + "\n\n<system-reminder>\nnote\n</system-reminder>\n",
        )
    if viewer == "cat":
        return "bash", {"command": f"cat -n {path}"}, cat_n(source)
    return "read_file", {"path": path}, source


@st.composite
def view_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Growing requests of a session that reads Python files and talks about their names."""
    words = [*_NAMES, *(f"{n}_{k}" for n in _NAMES for k in range(8))]
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": "Please fix "
            + " and ".join(draw(st.lists(st.sampled_from(words), min_size=1, max_size=3)))
            + ".",
        }
    ]
    for turn in range(draw(st.integers(1, 4))):
        source = draw(python_files())
        viewer = draw(st.sampled_from(_VIEWERS))
        tool, arguments, text = _view(source, viewer, f"/repo/mod_{turn}.py")
        said = draw(st.lists(st.sampled_from(words), max_size=3))
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": "Looking at " + ", ".join(f"`{w}`" for w in said) + "."}]
            if said
            else []
        )
        content.append(
            {"type": "tool_use", "id": f"toolu_{turn}", "name": tool, "input": arguments}
        )
        messages.append({"role": "assistant", "content": content})
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": text}
                ],
            }
        )
    return [
        {"model": MODEL, "max_tokens": 256, "messages": copy.deepcopy(messages[:end])}
        for end in range(1, len(messages) + 1, 2)
    ]


def _first_text(block: dict[str, Any]) -> str:
    """A tool result's text: its content if a string, else its first block's."""
    content = block["content"]
    return str(content if isinstance(content, str) else content[0]["text"])


def _sources(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every tool_result block of ``request``, in order."""
    out = []
    for m in request["messages"]:
        if isinstance(m["content"], list):
            for b in m["content"]:
                if b.get("type") == "tool_result":
                    out.append(b)
    return out


@given(view_conversations())
@settings(max_examples=40)
def test_properties_on_file_view_sessions(session: list[dict[str, Any]]) -> None:
    t = slice_code(max_tokens=150)
    previous: list[Any] | None = None
    for request in session:
        frozen = copy.deepcopy(request)
        out = t(request)
        assert request == frozen  # pure
        tc.validate(out)
        assert t(out) == out  # idempotent
        assert slice_code(max_tokens=150)(request) == out  # no hidden state
        if previous is not None:  # the cache prefix: earlier messages keep their bytes
            assert out["messages"][: len(previous)] == previous
        previous = out["messages"]
        for before, after in zip(_sources(request), _sources(out), strict=True):
            old, new = _first_text(before), _first_text(after)
            if new != old:
                listing = parse_listing(old)
                assert listing is not None
                assert_only_source(new, old, list(listing.lines), listing.first)
    assert previous is not None


@given(requests(max_turns=5))
@settings(max_examples=60)
def test_any_request_stays_valid_and_idempotent(request: dict[str, Any]) -> None:
    t = slice_code(max_tokens=100)
    frozen = copy.deepcopy(request)
    out = t(request)
    assert request == frozen
    tc.validate(out)
    assert t(out) == out


@given(growing_conversations(max_turns=5))
@settings(max_examples=40)
def test_any_growing_conversation_keeps_its_prefix(session: list[dict[str, Any]]) -> None:
    t = slice_code(max_tokens=100)
    outs = [t(r)["messages"] for r in session]
    for a, b in itertools.pairwise(outs):
        assert b[: len(a)] == a


def test_transform_is_a_slicecode() -> None:
    t = slice_code()
    assert isinstance(t, SliceCode) and t.max_tokens == 2000 and "Read" in t.tools


def test_minified_code_is_left_alone_with_the_reason() -> None:
    source = ";".join(f"function f{i}(a,b){{return a+b*{i}}}" for i in range(3_000))
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "read_file",
                        "input": {"path": "a.min.js"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": source}],
            },
        ],
    }
    out = tc.pipe(request, tc.slice_code())
    assert result_of(out["messages"][2]) == source
    assert "minified" in str(tc.explain(request, tc.slice_code()))


def test_a_view_over_a_million_characters_is_left_to_trim_with_the_reason() -> None:
    source = "".join(f"def f{i}(a, b):\n    return a + b * {i}\n\n" for i in range(30_000))
    assert len(source) > 1_000_000
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "g.py"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": source}],
            },
        ],
    }
    out = tc.pipe(request, tc.slice_code())
    assert result_of(out["messages"][2]) == source
    assert "too long to parse" in str(tc.explain(request, tc.slice_code()))


# ---------------------------------------------------------------------------- the fold


class _Logged(MemoryStore):
    """A store that records what is done to it, in order."""

    def __init__(self, max_items: int) -> None:
        super().__init__(max_items=max_items)
        self.log: list[tuple[str, str]] = []

    def put(self, key: str, value: str) -> None:
        self.log.append(("put", key))
        super().put(key, value)

    def touch(self, key: str) -> bool:
        self.log.append(("touch", key))
        return super().touch(key)


def _edit_in_place(request: dict[str, Any], rng: int) -> None:
    """Change, in place, one earlier tool result's text or one call's input."""
    messages = request["messages"]
    blocks = [b for m in messages if isinstance(m["content"], list) for b in m["content"]]
    tools = [b for b in blocks if b.get("type") in ("tool_use", "tool_result")]
    if not tools:
        return
    block = tools[rng % len(tools)]
    if block["type"] == "tool_use":
        block["input"] = {**block["input"], "path": f"/repo/other_{rng}.py"}
    elif isinstance(block["content"], str):
        block["content"] = block["content"].replace("value", f"changed_{rng}")
    else:
        block["content"] = "edited"


def _folded_and_whole(
    requests_: list[dict[str, Any]], max_items: int, edits: list[int] | None = None
) -> None:
    """Each request through one transform (its state resumed from the call before) and
    through another's whole run: the same bytes, outcomes and store traffic."""
    folded = SliceCode(max_tokens=150, store=_Logged(max_items))
    whole = SliceCode(max_tokens=150, store=_Logged(max_items))
    for k, request in enumerate(requests_):
        if edits and 0 < k < len(edits):  # the last request again, edited in place
            _edit_in_place(requests_[k - 1], edits[k])
            got = folded._run(requests_[k - 1])
            assert got == whole._run_whole(copy.deepcopy(requests_[k - 1]))
        frozen = copy.deepcopy(request)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreWarning)  # a store too small: same in both
            out, outcomes = folded._run(request)
            expected, expected_outcomes = whole._run_whole(copy.deepcopy(request))
        assert request == frozen
        assert json.dumps(out) == json.dumps(expected)
        assert outcomes == expected_outcomes
        assert folded.store.log == whole.store.log  # type: ignore[attr-defined]


@given(view_conversations(), st.sampled_from([1, 2, 100_000]))
@settings(max_examples=40)
def test_a_resumed_slice_code_gives_what_a_whole_run_gives(
    session: list[dict[str, Any]], max_items: int
) -> None:
    _folded_and_whole(session, max_items)


@given(view_conversations(), st.lists(st.integers(0, 1_000), min_size=2, max_size=6))
@settings(max_examples=30)
def test_a_caller_that_edits_old_messages_in_place_gets_a_whole_run(
    session: list[dict[str, Any]], edits: list[int]
) -> None:
    _folded_and_whole(session, 100_000, edits)


@given(view_conversations(), view_conversations(), st.booleans())
@settings(max_examples=25)
def test_interleaved_conversations_and_an_evicting_memo_change_no_slice(
    first: list[dict[str, Any]], second: list[dict[str, Any]], evict: bool
) -> None:
    t = slice_code(max_tokens=150)
    turns_ = [r for pair in itertools.zip_longest(first, second) for r in pair if r is not None]
    try:
        if evict:
            set_memo_limit(2_000)
        for request in turns_:
            out = t(request)
            assert out == SliceCode(max_tokens=150)._run_whole(start(request)[0])[0]
    finally:
        set_memo_limit(DEFAULT_MAX_BYTES)


@given(growing_conversations(max_turns=5))
@settings(max_examples=30)
def test_any_growing_conversation_resumes_as_a_whole_run(session: list[dict[str, Any]]) -> None:
    _folded_and_whole(session, 100_000)


def test_a_result_before_its_call_or_an_id_opened_twice_is_read_whole() -> None:
    source = "\n".join(f"def handler_{k}(x):\n" + "    x = x + 1\n" * 8 for k in range(30))
    call = {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "a.py"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": source}
    again = {**call, "input": {"path": "b.py"}}
    t = slice_code(max_tokens=150)
    for messages in (
        [  # the result comes first: the call after it decides what it is
            {"role": "user", "content": [result]},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": "handler_3 please"},
        ],
        [  # the id is opened again: the later view is the one its results get
            {"role": "user", "content": "Fix handler_3."},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
            {"role": "assistant", "content": [again]},
            {"role": "user", "content": [{**result, "content": source + "\n"}]},
        ],
    ):
        request = {"model": MODEL, "max_tokens": 64, "messages": messages}
        for end in range(1, len(messages) + 1):
            part = {**request, "messages": messages[:end]}
            out = t(part)
            assert out == SliceCode(max_tokens=150)._run_whole(start(part)[0])[0]
        assert MARKER_PREFIX in json.dumps(out)


def _with_changing_tail(request: dict[str, Any], k: int, marked: bool) -> dict[str, Any]:
    """``request`` with a block on its latest message that the next turn no longer has (as
    order() appends the volatile system lines), and a cache_control there if ``marked``."""
    out = copy.deepcopy(request)
    last = out["messages"][-1]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    blocks.append({"type": "text", "text": f"<system-context>\nturn {k}\n</system-context>"})
    if marked:
        blocks[-1]["cache_control"] = {"type": "ephemeral"}
    last["content"] = blocks
    return out


@given(view_conversations(), st.booleans())
@settings(max_examples=30)
def test_a_latest_message_that_changes_every_turn_resumes_as_a_whole_run(
    session: list[dict[str, Any]], marked: bool
) -> None:
    requests_ = [_with_changing_tail(r, k, marked) for k, r in enumerate(session)]
    _folded_and_whole(requests_, 100_000)


def test_a_turn_reads_only_the_messages_it_adds_and_the_last_few(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = "\n".join(f"def handler_{k}(x):\n" + "    x = x + 1\n" * 8 for k in range(30))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix handler_3."}]
    for k in range(20):
        call = {"type": "tool_use", "id": f"t{k}", "name": "read_file", "input": {"path": "a.py"}}
        messages.append({"role": "assistant", "content": [call]})
        result = {"type": "tool_result", "tool_use_id": f"t{k}", "content": source}
        messages.append({"role": "user", "content": [result]})
    t = slice_code(max_tokens=150)
    read: list[int] = []
    add = Conversation.add

    def counted(self: Conversation, message: Any) -> list[str]:
        read.append(len(self.said))
        return add(self, message)

    monkeypatch.setattr(Conversation, "add", counted)
    for end in range(3, len(messages) + 1, 2):
        request = _with_changing_tail({"model": MODEL, "messages": messages[:end]}, end, True)
        read.clear()
        out = t(request)
        assert read == list(range(max(0, end - 5), end))  # 2 new messages and the last 3
    assert MARKER_PREFIX in json.dumps(out["messages"][2])


def test_the_slices_of_ended_conversations_are_held_within_the_memo_bound() -> None:
    # Each slice is kept with the file text its key holds, counted in the memo's bytes: a
    # long-running proxy holds no more of them than --memo-mb allows. An evicted slice is
    # made again, byte for byte.
    limit = 400_000
    clear_memo()
    set_memo_limit(limit)
    try:
        t = slice_code(max_tokens=1500, store=MemoryStore())
        first = None
        for n in range(30):  # 30 conversations, each viewing its own version of the file
            source = TEXTWRAP.replace("def dedent(", f"def dedent_{n}(")
            request = view_request(
                HEADER + cat_n(source) + "\n", before=f"Fix `dedent_{n}`, in conversation {n}."
            )
            out = json.dumps(t(request))
            first = first or (request, out)
            stats = memo_stats()
            assert stats.bytes <= limit
        assert stats.evictions > 0
        entries, size = stats.kinds["slice-view"]
        assert entries >= 1 and size >= entries * len(TEXTWRAP)
        assert json.dumps(t(first[0])) == first[1]  # resumed after its slice was evicted
    finally:
        set_memo_limit(DEFAULT_MAX_BYTES)


def test_line_references_past_the_first_definitions_slice_without_error() -> None:
    # Definitions that end before the first line the conversation names must not shorten the
    # line-owner table (a negative slice end used to cut it, and a later line had no owner).
    source = "\n".join(
        f"def f{i}(x):\n    y = x + {i}\n    z = y * {i}\n    w = z - y\n    return w\n"
        for i in range(300)
    )
    request = view_request(
        cat_n(source, sep="→"),
        before="The failure is at app.py:1400 and app.py:1622, in f233 and f270.",
        tool="Read",
        arguments={"file_path": "/repo/app.py"},
    )
    out = result_text(slice_code(max_tokens=300)(request))
    assert out.startswith(MARKER_PREFIX + "sliced /repo/app.py")
    assert "def f233(x):" in out and "def f270(x):" in out


def test_each_line_has_the_innermost_definition_around_it() -> None:
    def definition(name: str, start: int, end: int) -> slicing.Definition:
        return slicing.Definition(name, name, "function", start, end, start, f"def {name}()", "")

    defs = [definition("early", 1, 5), definition("outer", 10, 30), definition("inner", 12, 14)]
    assert _owners(defs, 11, 16) == [1, 2, 2, 2, 1, 1]
    assert _owners(defs, 6, 9) == [-1, -1, -1, -1]
