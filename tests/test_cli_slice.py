"""The command line: `tidyctx slice` and `tidyctx outline`, run as a user would, also into a
stdout that is not UTF-8 and into a pipe closed early."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidyctx._cli import main
from tidyctx.code import _slicing as slicing

TEXTWRAP = Path(textwrap.__file__)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def span(qualname: str) -> tuple[int, int]:
    source = TEXTWRAP.read_text(encoding="utf-8")
    d = next(d for d in slicing.definitions(source, "python") if d.qualname == qualname)
    return d.start_line, d.end_line


def test_slice_a_function_and_a_method(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "slice", str(TEXTWRAP), "dedent", "TextWrapper._split")
    assert code == 0 and err == ""
    lines = TEXTWRAP.read_text(encoding="utf-8").split("\n")
    for name in ("dedent", "TextWrapper._split"):
        start, end = span(name)
        assert f"{start}  {lines[start - 1]}" in out
        assert f"{end}  {lines[end - 1]}".rstrip() in out
    assert "class TextWrapper:" in out  # the enclosing class header
    assert "import re" in out  # the import the slice uses


def test_slice_by_line_gives_the_definition_around_it(capsys: pytest.CaptureFixture[str]) -> None:
    start, _ = span("fill")
    code, out, _ = run(capsys, "slice", str(TEXTWRAP), "--line", str(start + 1))
    assert code == 0
    assert "def fill(text, width=70, **kwargs):" in out
    assert "def wrap(" not in out


def test_outline_lists_signatures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "outline", str(TEXTWRAP))
    assert code == 0
    assert "class TextWrapper:" in out and "def dedent(text):" in out
    assert "⋮" in out
    assert len(out) < TEXTWRAP.stat().st_size / 2
    code, plain, _ = run(capsys, "outline", str(TEXTWRAP), "--no-line-numbers")
    assert code == 0 and "\ndef dedent(text):\n" in plain


def test_unknown_symbol_lists_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "slice", str(TEXTWRAP), "dednet")
    assert code == 2 and out == ""
    assert err.startswith("tidyctx slice: ") and "dedent" in err
    assert not err.startswith("tidyctx slice: '")  # plain text, not a KeyError repr


def test_language_errors_and_override(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/usr/bin/env python3\ndef main():\n    return 1\n")
    code, _, err = run(capsys, "outline", str(script))
    assert code == 2 and "cannot tell the language" in err and "python" in err
    code, out, _ = run(capsys, "outline", str(script), "--language", "python")
    assert code == 0 and "def main():" in out
    code, _, err = run(capsys, "outline", str(script), "--language", "cobol")
    assert code == 2 and "unknown language 'cobol'" in err


def test_bad_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "outline", str(tmp_path / "missing.py"))
    assert code == 2 and "cannot read" in err and "missing.py" in err
    blob = tmp_path / "blob.py"
    blob.write_bytes(b"\x00\x01\x02" * 100)
    code, _, err = run(capsys, "outline", str(blob))
    assert code == 2 and "binary" in err
    broken = tmp_path / "broken.py"
    broken.write_text("def ok():\n    return 1\n\ndef bad(:\n    pass\n")
    code, out, err = run(capsys, "slice", str(broken), "ok")
    assert code == 0 and "def ok():" in out
    assert "note:" in err  # the syntax error is reported, the rest still sliced


def test_slice_needs_symbols_or_lines(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["slice", str(TEXTWRAP)], ["slice", str(TEXTWRAP), "fill", "--line", "3"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "SYMBOL names or --line N" in capsys.readouterr().err


def test_as_a_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidyctx._cli", "slice", str(TEXTWRAP), "shorten"],
        capture_output=True,
        text=True,
        check=True,
    )
    start, _ = span("shorten")
    assert f"{start}  def shorten(text, width, **kwargs):" in done.stdout


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
