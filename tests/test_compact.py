"""compact(): tool results in fewer tokens, with every value kept; file views (including
slice_code's) left as the file is, and line endings, quoted spaces and numbers as they were."""

from __future__ import annotations

import copy
import json
import re
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as gen
import tidyctx as tc
from builders import one_call, payloads, result_of, tool_loop
from tidyctx._markers import original_note
from tidyctx._request import canonical_json
from tidyctx.store import MemoryStore, store_key
from tidyctx.text._compaction import (
    COLUMNS,
    MAX_CHARS,
    ROWS,
    SAME,
    compact_result,
    compact_text,
    drop_echo,
    echo_note,
    is_numbered,
)
from tidyctx.tokens import LocalCounter
from tidyctx.transforms._compact import compact
from tidyctx.transforms._slice_code import slice_code

PROPS = settings(max_examples=150)

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}|\d{3,}")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def tokens(text: str) -> set[str]:
    """Identifiers of 4+ characters and numbers of 3+ digits (the references of recall)."""
    return set(_TOKEN.findall(text))


def shown(text: str) -> str:
    """What a terminal shows: no escape codes, each carriage return overwriting the line."""
    prev = None
    while prev != text:
        prev, text = text, _ANSI.sub("", text)
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        out = ""
        for part in line.split("\r"):
            out = part + out[len(part) :]
        lines.append(out)
    return "\n".join(lines)


def json_tokens(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(tokens(k) | json_tokens(v) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(set(), *(json_tokens(v) for v in value))
    return tokens(value) if isinstance(value, str) else set()


def expected_tokens(text: str) -> set[str]:
    try:
        value = json.loads(text, parse_int=str, parse_float=str, parse_constant=str)
    except ValueError:
        return tokens(shown(text))
    if isinstance(value, dict | list):
        return json_tokens(value)
    return tokens(shown(text))


def untabulate(value: Any) -> Any:
    """The JSON value a compacted one stands for (tables back to arrays of objects)."""
    if isinstance(value, list):
        return [untabulate(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) in ({COLUMNS, ROWS}, {SAME, COLUMNS, ROWS}):
        same = value.get(SAME, {})
        return [
            {**untabulate(same), **dict(zip(value[COLUMNS], untabulate(row), strict=True))}
            for row in value[ROWS]
        ]
    return {k: untabulate(v) for k, v in value.items()}


# ---------------------------------------------------------------------------- generators

_KEYS = st.sampled_from(["id", "name", "status", "owner_id", "path", "price", "tags", "meta"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["src/app/main.py", "user_1234", "ERROR: disk full", "  padded  ", ""]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(_KEYS, inner, max_size=5),
    ),
    max_leaves=25,
)


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An array of objects with the same keys, some values shared by every row."""
    keys = draw(st.lists(_KEYS, min_size=2, max_size=5, unique=True))
    shared = {k: draw(_JSON) for k in keys if draw(st.booleans())}
    n = draw(st.integers(0, 8))
    return [{k: shared[k] if k in shared else draw(_JSON) for k in keys} for _ in range(n)]


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    value = draw(st.one_of(_JSON, records(), st.dictionaries(_KEYS, records(), max_size=3)))
    indent = draw(st.sampled_from([None, 1, 2, 4]))
    return json.dumps(value, indent=indent, ensure_ascii=draw(st.booleans()))


_LINES = st.one_of(
    st.sampled_from(
        [
            "",
            "    indented_code(value_1234)   ",
            "| Name        | Qty |",
            "| ----------- | --- |",
            "=" * 40,
            "col_a     col_b      12345",
            "\x1b[31mERROR\x1b[0m build_target failed",
            "Downloading 10%\rDownloading 55%\rDownloading 100%",
            "line with trailing blanks   \t",
        ]
    ),
    st.text(st.characters(exclude_characters="\n\r", exclude_categories=("Cs",)), max_size=40),
)


@st.composite
def plain_texts(draw: st.DrawFn) -> str:
    lines = draw(st.lists(_LINES, min_size=1, max_size=12))
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines)


@st.composite
def numbered_texts(draw: st.DrawFn) -> str:
    lines = draw(st.lists(_LINES, min_size=2, max_size=12))
    arrow = draw(st.sampled_from(["\t", "→"]))
    return "\n".join(f"{k + 1:>6}{arrow}{line}" for k, line in enumerate(lines))


def envelope(text: str, cut: int | None = None) -> str:
    wrapped = json.dumps({"type": "text", "text": text, "annotations": None})
    if cut is None:
        return wrapped
    end = len(wrapped) - len(', "annotations": null}') - 1  # the closing quote of the text
    return wrapped[: min(cut, end)] + " ...\n(output truncated)"


ANY_TEXT = st.one_of(gen.texts(), json_texts(), plain_texts(), numbered_texts())

# ---------------------------------------------------------------------------- properties


@PROPS
@given(ANY_TEXT)
def test_compact_text_is_idempotent_and_deterministic(text: str) -> None:
    once = compact_text(text)
    assert compact_text(once) == once
    assert compact_text(text) == once


@PROPS
@given(ANY_TEXT)
def test_compact_text_never_drops_an_identifier_or_number(text: str) -> None:
    out = compact_text(text)
    assert expected_tokens(text) <= tokens(out) | expected_tokens(out)
    assert len(out) <= len(text) + 2  # "[]" around nothing never; a table may add a header


@PROPS
@given(json_texts())
def test_compact_json_parses_to_the_same_values(text: str) -> None:
    out = compact_text(text)
    value = json.loads(out, parse_float=str, parse_int=str, parse_constant=str)
    original = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    assert untabulate(value) == original
    assert "\n" not in out


@PROPS
@given(st.one_of(plain_texts(), json_texts()), st.integers(1, 400))
def test_an_envelope_is_its_text_even_cut_short(text: str, cut: int) -> None:
    if not re.search("[\ud800-\udfff]", text):  # else it stays escaped: it cannot be sent
        assert compact_text(envelope(text)) == compact_text(text)
    cut_short = compact_text(envelope(text, 25 + cut))
    assert compact_text(cut_short) == cut_short
    assert "type" not in cut_short[:8]  # the envelope is gone


@PROPS
@given(numbered_texts())
def test_numbered_views_keep_every_character_after_the_number(text: str) -> None:
    out = compact_text(text)
    before = [re.sub(r"^ *\d+", "", line) for line in text.split("\n")]
    after = [re.sub(r"^\d+", "", line) for line in out.split("\n")]
    assert after == before


_CODE = st.sampled_from(
    ["def run(job):", "    job.start()", "    return job.result", "", "x = 1", "# done", "}"]
)


@settings(max_examples=150)
@given(st.lists(_CODE, min_size=1, max_size=14), st.lists(_CODE, max_size=10), st.booleans())
def test_echoed_lines_become_one_note_and_nothing_else_goes(
    lines: list[str], written: list[str], numbered: bool
) -> None:
    text = "\n".join(f"{k + 1}\t{line}" if numbered else line for k, line in enumerate(lines))
    call_input = {"path": "a.py", "new_str": "\n".join(written)}
    out = drop_echo(text, call_input)
    assert drop_echo(out, call_input) == out
    known = {line.strip() for line in written} - {""}
    kept = out.split("\n")
    hidden = 0
    for line in kept:
        m = re.fullmatch(r"\[… ×(\d+) lines as in the call's input\]", line)
        hidden += int(m.group(1)) if m else 0
    assert len(kept) - sum(1 for line in kept if line.startswith("[… ×")) + hidden == len(lines)
    # Every line that went is a line the input holds (or a blank line inside a run).
    removed = set(text.split("\n")) - set(kept)
    assert all(re.sub(r"^\d+\t", "", line).strip() in known | {""} for line in removed)
    if len(known) < 2:
        assert out == text


def test_an_edit_result_does_not_repeat_the_edit() -> None:
    new = "\n".join(f"    handle_event_{i}(queue, timeout=30)" for i in range(40))
    shown = "\n".join(f"{120 + i:>6}→{line}" for i, line in enumerate(new.split("\n")))
    result = f"The file src/app.py has been updated. Snippet:\n{shown}"
    out = compact_text(drop_echo(result, {"file_path": "src/app.py", "new_string": new}))
    assert out.split("\n") == [
        "The file src/app.py has been updated. Snippet:",
        "120→    handle_event_0(queue, timeout=30)",
        echo_note(38),
        "159→    handle_event_39(queue, timeout=30)",
    ]


@st.composite
def sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 5))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Go."}]
    requests = []
    for k in range(n):
        text = draw(ANY_TEXT)
        if draw(st.booleans()):
            text = envelope(text)
        args = {"new_str": draw(st.sampled_from(["", "a = 1\nb = 2\nc = 3\nd = 4", text]))}
        messages = [
            *messages,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{k}", "name": "sh", "input": args}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{k}", "content": text}],
            },
        ]
        requests.append({"model": "claude-sonnet-4-6", "max_tokens": 50, "messages": messages})
    return requests


@settings(max_examples=60)
@given(sessions())
def test_compact_is_pure_idempotent_valid_and_prefix_stable(requests: list[dict[str, Any]]) -> None:
    t = compact()
    sent = []
    for request in requests:
        snapshot = copy.deepcopy(request)
        out = t(request)
        assert request == snapshot
        assert t(out) == out
        tc.validate(out)
        sent.append(out)
    for a, b in pairwise(sent):
        assert canonical_json(a["messages"]) == canonical_json(b["messages"][: len(a["messages"])])


# ---------------------------------------------------------------------------- examples


def test_pretty_json_and_uniform_rows_cost_fewer_tokens() -> None:
    rows = [
        {"id": i, "sku": f"SKU-{i:04d}", "status": "publish", "tax": "", "price": f"{i}.10"}
        for i in range(50)
    ]
    text = json.dumps(rows, indent=2)
    out = compact_text(text)
    counter = LocalCounter()
    assert counter.count_text(out) < counter.count_text(text) / 2
    assert json.loads(out)[SAME] == {"status": "publish", "tax": ""}
    assert "SKU-0049" in out and '"49.10"' in out  # every value, spelled as it was


def test_terminal_output_is_what_the_terminal_showed() -> None:
    text = "\x1b[32mok\x1b[0m step_one   \r\n50%\r100%\r\n\n\n\nDone ========================"
    assert compact_text(text) == "ok step_one\n100%\n\nDone ==="


def test_numbers_keep_their_spelling_and_strings_their_value() -> None:
    text = '{"a": 1.10, "b": 1e5, "c": -0.0, "d": "caf\\u00e9 \\/x", "e": "\\ud800"}'
    assert compact_text(text) == '{"a":1.10,"b":1e5,"c":-0.0,"d":"café /x","e":"\\ud800"}'


def test_json_cut_short_only_loses_whitespace() -> None:
    text = json.dumps([{"id": i, "name": f"n{i}"} for i in range(40)], indent=2)[:700]
    out = compact_text(text)
    assert out.rstrip() == re.sub(r'\s+(?=(?:[^"]*"[^"]*")*[^"]*$)', "", text)
    assert tokens(text) == tokens(out)


def test_json_lines_stay_one_per_line() -> None:
    assert compact_text('{"a": 1}\n{"a": 2}\n') == '{"a":1}\n{"a":2}'


def test_code_and_prose_keep_indentation() -> None:
    code = "def f(x):\n    if x:\n        return 1\n"
    assert compact_text(code) == code.rstrip("\n") or compact_text(code) == code
    assert is_numbered("     1\tdef f(x):\n     2\t    return 1")
    assert (
        compact_text("     1\tdef f(x):\n     2\t    return 1") == "1\tdef f(x):\n2\t    return 1"
    )


def test_huge_texts_are_left_to_truncation() -> None:
    huge = json.dumps([{"id": i, "pad": " " * 20} for i in range(MAX_CHARS // 30)], indent=2)
    assert len(huge) > MAX_CHARS and compact_text(huge) is huge


def test_compact_only_named_tools_and_bad_input() -> None:
    request = {
        "model": "claude-sonnet-4-6",
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "a", "name": "sql", "input": {}},
                    {"type": "tool_use", "id": "b", "name": "sh", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": '{"x":  1}'},
                    {"type": "tool_result", "tool_use_id": "b", "content": '{"x":  1}'},
                ],
            },
        ],
    }
    out = compact(tools=["sql"])(request)
    results = out["messages"][2]["content"]
    assert results[0]["content"][0]["text"] == '{"x":1}'
    assert results[1]["content"] == '{"x":  1}'  # not named: left a string, as sent
    with pytest.raises(ValueError, match="list of tool names"):
        compact(tools="sql")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a str"):
        compact_text(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="messages"):
        compact()({"model": "m"})


def result_text(request: dict[str, Any]) -> str:
    """The text of the one tool result of a :func:`builders.one_call` request."""
    return result_of(request["messages"][2])


def test_compact_is_idempotent_when_echoed_lines_carry_colour_codes() -> None:
    # The edit tool echoes the new lines in colour: once the codes are gone, the lines match
    # the call's input. The first pass must already shorten them, not the second.
    lines = [f"step_{n}()" for n in range(10)]
    shown = "Edited:\n" + "\n".join(f"\x1b[32m{line}\x1b[0m" for line in lines)
    request = one_call("edit", {"new_str": "\n".join(lines)}, shown)
    once = compact()(request)
    assert compact()(once) == once
    assert "[… ×8 lines as in the call's input]" in result_text(once)


SOURCE = (
    'LABEL = "a    b"   # four spaces in the value\n\n\n\n'
    "# ------------------------------\n"
    "def f():\t\n    return LABEL\n"
)


def test_compact_leaves_a_file_view_as_the_file_is() -> None:
    # `cat app.py` and read_file show the file itself: the agent copies its lines into
    # str_replace and counts lines to edit, so not a space or a blank line may change.
    for tool, call_input in [
        ("bash", {"command": "cat app.py"}),
        ("read_file", {"path": "app.py"}),
        ("str_replace_based_edit_tool", {"command": "view", "path": "app.json"}),
    ]:
        text = SOURCE if tool != "str_replace_based_edit_tool" else '{\n  "a":   1\n}\n'
        out = compact()(one_call(tool, call_input, text))
        assert result_text(out) == text, tool
    # A tool that is not a file view is still compacted.
    assert result_text(compact()(one_call("run_sql", {"q": 1}, '{\n  "a": 1\n}'))) == '{"a":1}'


def test_compact_text_keeps_the_spaces_inside_quoted_strings() -> None:
    text = "app.py:1:LABEL = \"a    b\"   # aligned\nerror: expected 'x    y'  got   z"
    out = compact_text(text)
    assert '"a    b"' in out and "'x    y'" in out
    assert out == "app.py:1:LABEL = \"a    b\"  # aligned\nerror: expected 'x    y'  got  z"
    assert compact_text(out) == out


def test_a_sliced_view_is_still_a_numbered_view_for_compact() -> None:
    # slice_code's output is the file's own lines with gap lines between them; compaction
    # (trim applies it after slice_code) must keep every character of those lines.
    body = "    path   =   os.path.join(root, name)  \r\n" * 6 + "    return path\r\n"
    source = "import os\r\n\r\n" + "\r\n".join(
        f"def helper_{i}(root, name):\r\n{body}" for i in range(40)
    )
    listing = "\n".join(f"{n:>6}→{line}" for n, line in enumerate(source.split("\n"), 1))
    sliced = result_text(
        slice_code(max_tokens=300)(one_call("Read", {"file_path": "u.py"}, listing))
    )
    assert "⋮" in sliced and "helper_17" in sliced
    assert is_numbered(sliced)
    out = compact_text(sliced)
    for before, after in zip(sliced.split("\n"), out.split("\n"), strict=True):
        assert after == before.lstrip(" ") or after == before, (before, after)
    tc.validate(slice_code(max_tokens=300)(one_call("Read", {"file_path": "u.py"}, listing)))


def test_compact_keeps_json_values_that_python_cannot_hold() -> None:
    # Huge numbers, 1e309, NaN and duplicate keys survive as spelled.
    text = json.dumps({"x": 1}).replace("1", "123456789012345678901234567890")
    text = text[:-1] + ', "f": 1e309, "n": NaN, "x": 2}'
    assert compact_text(text) == ('{"x":123456789012345678901234567890,"f":1e309,"n":NaN,"x":2}')


def test_compact_result_is_what_compact_does_to_one_result() -> None:
    # The function trim() can call instead of compact_text(drop_echo(...)).
    lines = [f"step_{n}()" for n in range(10)]
    shown = "\n".join(f"\x1b[32m{line}\x1b[0m" for line in lines)
    once = compact_result(shown, "edit", {"new_str": "\n".join(lines)})
    assert compact_result(once, "edit", {"new_str": "\n".join(lines)}) == once
    store = MemoryStore()
    sent = result_text(compact(store=store)(one_call("edit", {"new_str": "\n".join(lines)}, shown)))
    # It drops characters (colour codes, echoed lines): sent with a note naming the original.
    assert sent == f"{once}\n{original_note('compacted', store_key(shown))}"
    assert store.get(store_key(shown)) == shown
    assert compact_result(SOURCE, "read_file", {"path": "app.py"}) == SOURCE


def test_a_result_that_compacts_to_nothing_keeps_the_request_valid() -> None:
    # An empty MCP text envelope unwraps to "" (a case hypothesis found): the block must stay
    # valid.
    for text in [
        '{"type": "text", "text": "", "annotations": null}',
        "\x1b[0m\n",
        '{"type":"text","text":"  "}',
    ]:
        out = compact()(one_call("mcp_tool", {"q": 1}, text))
        tc.validate(out)
        assert compact()(out) == out


# ---------------------------------------------------------------------------- line endings


def test_compact_keeps_carriage_return_line_endings() -> None:
    # A classic Mac / Excel CSV ends its rows with \r alone. Taken for a progress bar's
    # redraws, every row would overwrite the one before: 300 rows would become one, unmarked.
    mac = payloads()["mac_csv"]
    assert compact_text(mac) == mac
    assert compact_text("header\n" + mac) == "header\n" + mac
    request = tool_loop("Read the export.", [mac], ("fetch",))
    out = tc.pipe(request, tc.trim())
    assert result_of(out["messages"][2]) == mac


def test_compact_keeps_binary_text_with_carriage_returns() -> None:
    binary = "\x89PNG\x00\x00abc\rdef\x00" * 50 + "\nend"
    assert compact_text(binary) == binary


def test_compact_redraws_progress_bars() -> None:
    log = "pip install x\nDownloading 10%\rDownloading 55%\rDownloading 100%\ndone"
    assert compact_text(log) == "pip install x\nDownloading 100%\ndone"
    bar = "run\n 10%|██        | 1/10\r 50%|█████     | 5/10\r100%|██████████| 10/10\nok"
    assert compact_text(bar) == "run\n100%|██████████| 10/10\nok"
    pip = "x\n ━━━ 0.0/20.2 MB ? eta -:--:--\r ━━━ 20.2/20.2 MB 159.5 MB/s eta 0:00:00\nok"
    assert compact_text(pip) == "x\n ━━━ 20.2/20.2 MB 159.5 MB/s eta 0:00:00\nok"
