"""Bugs found by using compact(), slice_code() and `tidyctx slice/outline` as a new user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import tidyctx as tc
from tidyctx.text._compaction import compact_result, compact_text, is_numbered
from tidyctx.transforms._compact import compact
from tidyctx.transforms._slice_code import slice_code


def _request(tool: str, call_input: dict[str, Any], result: str) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Why does helper_17 return a bad path?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": tool, "input": call_input}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": result}],
            },
        ],
    }


def _result(request: dict[str, Any]) -> str:
    text = request["messages"][2]["content"][0]["content"][0]["text"]
    assert isinstance(text, str)
    return text


def test_compact_is_idempotent_when_echoed_lines_carry_colour_codes() -> None:
    # The edit tool echoes the new lines in colour: once the codes are gone, the lines match
    # the call's input. The first pass must already shorten them, not the second.
    lines = [f"step_{n}()" for n in range(10)]
    shown = "Edited:\n" + "\n".join(f"\x1b[32m{line}\x1b[0m" for line in lines)
    request = _request("edit", {"new_str": "\n".join(lines)}, shown)
    once = compact()(request)
    assert compact()(once) == once
    assert "[… ×8 lines as in the call's input]" in _result(once)


CODE = (
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
        text = CODE if tool != "str_replace_based_edit_tool" else '{\n  "a":   1\n}\n'
        out = compact()(_request(tool, call_input, text))
        assert _result(out) == text, tool
    # A tool that is not a file view is still compacted.
    assert _result(compact()(_request("run_sql", {"q": 1}, '{\n  "a": 1\n}'))) == '{"a":1}'


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
    sliced = _result(slice_code(max_tokens=300)(_request("Read", {"file_path": "u.py"}, listing)))
    assert "⋮" in sliced and "helper_17" in sliced
    assert is_numbered(sliced)
    out = compact_text(sliced)
    for before, after in zip(sliced.split("\n"), out.split("\n"), strict=True):
        assert after == before.lstrip(" ") or after == before, (before, after)
    tc.validate(slice_code(max_tokens=300)(_request("Read", {"file_path": "u.py"}, listing)))


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tidyctx._cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def test_cli_prints_to_a_stdout_that_is_not_utf8(tmp_path: Path) -> None:
    # A Windows console redirected to a file is cp1252: "⋮" is not in it.
    file = tmp_path / "app.py"
    file.write_text("import os\n\ndef f():\n    return 1\n\ndef g():\n    return 2\n")
    proc = _cli(["slice", str(file), "g"], {"PYTHONIOENCODING": "cp1252"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"def g():" in out and b"Traceback" not in err


def test_cli_piped_into_head_exits_quietly(tmp_path: Path) -> None:
    file = tmp_path / "big.py"
    file.write_text("".join(f"def f{i}():\n    return {i}\n\n" for i in range(20_000)))
    proc = _cli(["outline", str(file)], {})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -1` has read what it wanted and gone
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    assert proc.returncode != 0  # the output was not all written


def test_compact_keeps_json_values_that_python_cannot_hold() -> None:
    # Not a bug: a guard that huge numbers, 1e309, NaN and duplicate keys survive as spelled.
    text = json.dumps({"x": 1}).replace("1", "123456789012345678901234567890")
    text = text[:-1] + ', "f": 1e309, "n": NaN, "x": 2}'
    assert compact_text(text) == ('{"x":123456789012345678901234567890,"f":1e309,"n":NaN,"x":2}')


def test_compact_result_is_what_compact_does_to_one_result() -> None:
    # The function trim() can call instead of compact_text(drop_echo(...)).
    lines = [f"step_{n}()" for n in range(10)]
    shown = "\n".join(f"\x1b[32m{line}\x1b[0m" for line in lines)
    once = compact_result(shown, "edit", {"new_str": "\n".join(lines)})
    assert compact_result(once, "edit", {"new_str": "\n".join(lines)}) == once
    assert once == _result(compact()(_request("edit", {"new_str": "\n".join(lines)}, shown)))
    assert compact_result(CODE, "read_file", {"path": "app.py"}) == CODE


def test_a_result_that_compacts_to_nothing_keeps_the_request_valid() -> None:
    # Found by test_compact's hypothesis session: an empty MCP text envelope unwrapped to "".
    for text in [
        '{"type": "text", "text": "", "annotations": null}',
        "\x1b[0m\n",
        '{"type":"text","text":"  "}',
    ]:
        out = compact()(_request("mcp_tool", {"q": 1}, text))
        tc.validate(out)
        assert compact()(out) == out
