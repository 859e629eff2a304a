"""File views: which tool calls read a file whole, and their results read as file listings.

Pure Python (no tree-sitter), so that ``compact`` and ``trim`` recognise a file view without
the ``code`` extra. :data:`DEFAULT_TOOLS` names the viewers of common agents and where each
keeps the path; :func:`view_path` applies such a table to a ``tool_use`` block;
:func:`parse_listing` reads a result as the file's lines with their numbers
(:class:`Listing`), which ``slice_code`` cuts down and renders in the viewer's own style.

>>> view_path(DEFAULT_TOOLS, {"name": "bash", "input": {"command": "cat -n src/app.py"}})
'src/app.py'
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tidyctx._memo import memoized

__all__ = [
    "DEFAULT_TOOLS",
    "GAP",
    "Listing",
    "PathSpec",
    "cat_path",
    "parse_listing",
    "view_path",
]

PathSpec = str | Callable[[Mapping[str, Any]], "str | None"]
"""How to find the file path of a call: the input key that holds it, or a function of the
input that returns it (None: this call did not read a file)."""

GAP = "⋮"
"""Lines not shown are replaced by one line holding this character and their range."""


_MAX_COMMAND = 8_192


def cat_path(arguments: Mapping[str, Any]) -> str | None:
    """The file of a shell call that prints one file whole: ``cat FILE`` or ``cat -n FILE``.

    >>> cat_path({"command": "cat -n src/app.py"}), cat_path({"command": "cat a.py | head"})
    ('src/app.py', None)
    """
    command = arguments.get("command")
    # shlex reads a word a character at a time, in time quadratic in its length: a command
    # longer than twice Linux's PATH_MAX (4,096 bytes) names no file it could print anyway.
    if not isinstance(command, str) or len(command) > _MAX_COMMAND or "\n" in command.strip():
        return None
    # shlex is slow and every turn asks again about every earlier call: memoized by command.
    return memoized("cat_path", command, lambda: _cat_words(command), len(command) * 2)


def _cat_words(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) == 2 and words[0] == "cat" and not words[1].startswith("-"):
        return words[1]
    if len(words) == 3 and words[:2] == ["cat", "-n"] and not words[2].startswith("-"):
        return words[2]
    return None


# The text editor tool's reads are its "view" command:
# https://docs.claude.com/en/docs/agents-and-tools/tool-use/text-editor-tool
DEFAULT_TOOLS: Mapping[str, PathSpec] = {
    "Read": "file_path",  # Claude Code
    "str_replace_editor": "path",  # OpenHands, SWE-agent 1.x (command "view")
    "str_replace_based_edit_tool": "path",  # Anthropic's text editor tool (command "view")
    "view": "path",
    "read_file": "path",
    "open": "path",  # SWE-agent's windowed file viewer
    "bash": cat_path,
    "Bash": cat_path,
    "execute_bash": cat_path,
}
"""Tools whose results hold a file's contents, by name, with where the path is. Calls with a
``command`` other than ``view`` (the edit tools' ``create``, ``str_replace``...) are skipped."""


# ---------------------------------------------------------------------------- listings

# A numbered line of a file viewer: ``cat -n`` (``%6d\t``), Claude Code's Read (``%6d→``) and
# SWE-agent's window (``N:``). The number may be padded; the rest is the line, verbatim.
_NUMBERED = re.compile(r"( *)(\d{1,9})(\t|→|:)(.*)", re.DOTALL)
_BARE = re.compile(r" *(\d{1,9})(\r?)")
_CLIPPED = "<response clipped>"  # OpenHands/SWE-agent: the rest of the listing was cut
_MAX_HEAD = 3  # lines of a viewer's header before the first numbered line


@dataclass(frozen=True, slots=True)
class Listing:
    """A tool result read as a file listing: ``text == head + "\n".join(numbered lines) +
    tail``.

    ``head`` and ``tail`` are the result's own text around the file's lines (a viewer's
    header; the newline after the last line and any note after it), verbatim. ``lines`` are
    the file's lines without their numbers (a ``\r`` of ``\r\n`` endings stays on them);
    ``first`` is the number of ``lines[0]``. ``sep`` is the viewer's separator after the
    number (``"\t"``, ``"→"``, ``":"``) and ``width`` the number's padded width; a result
    without numbers has ``sep == ""`` and is all lines.
    """

    head: str
    lines: tuple[str, ...]
    first: int
    sep: str
    width: int
    tail: str

    @property
    def last(self) -> int:
        return self.first + len(self.lines) - 1

    @property
    def source(self) -> str:
        """The file as shown, after ``first - 1`` empty lines, so that line numbers in the
        source are the file's."""
        return "\n" * (self.first - 1) + "\n".join(self.lines)

    def render(self, number: int) -> str:
        """Line ``number`` of the file in the viewer's style (``cat -n``'s if it had none)."""
        line = self.lines[number - self.first]
        if self.sep:
            return f"{number:>{self.width}}{self.sep}{line}"
        return f"{number:>6}\t{line}"

    def gap(self, a: int, b: int) -> str:
        """The line that stands for lines ``a..b``, not shown: in the gutter, ``⋮`` at the
        indentation of the first of them that is not blank, and the range."""
        pad = self.width if self.sep else 6
        indent = ""
        for n in range(a, min(b, a + 50) + 1):
            line = self.lines[n - self.first]
            if line.strip():
                indent = line[: len(line) - len(line.lstrip(" \t"))]
                break
        return f"{'':>{pad}}{self.sep or chr(9)}{indent}{GAP} (lines {a:,}–{b:,} not shown)"


def _raw_listing(text: str) -> Listing:
    return Listing("", tuple(text.split("\n")), 1, "", 6, "")


def parse_listing(text: str) -> Listing | None:
    """Read ``text`` as a file listing; None if its numbered lines are not one contiguous run
    (an abbreviated view, a result already cut). Text without numbered lines near its start
    is read as the file itself.

    >>> parse_listing("Here's the file:\\n     7\\tdef f():\\n     8\\t    pass\\n").first
    7
    >>> parse_listing("    10→a\\n    12→b") is None
    True
    >>> parse_listing("x = 1\\ny = 2").lines
    ('x = 1', 'y = 2')
    """
    at = text.find(_CLIPPED)
    shown, clipped = (text, "") if at < 0 else (text[:at], text[at:])
    raw = shown.split("\n")
    k0 = next((k for k, line in enumerate(raw[: _MAX_HEAD + 1]) if _NUMBERED.fullmatch(line)), -1)
    if k0 < 0:
        return None if clipped else _raw_listing(text)
    m0 = _NUMBERED.fullmatch(raw[k0])
    assert m0 is not None
    sep, first = m0.group(3), int(m0.group(2))
    width = len(m0.group(1)) + len(m0.group(2))
    lines: list[str] = []
    k = k0
    while k < len(raw):
        m = _NUMBERED.fullmatch(raw[k])
        if m is not None and m.group(3) == sep and int(m.group(2)) == first + len(lines):
            lines.append(m.group(4))
        elif (b := _BARE.fullmatch(raw[k])) and int(b.group(1)) == first + len(lines):
            lines.append(b.group(2))  # an empty line whose separator was stripped at the end
        else:
            break
        k += 1
    rest = raw[k:]
    if len(rest) > max(5, len(lines)) and not clipped and k0 == 0 and sep == ":":
        return _raw_listing(text)  # "200: 'OK'" on line 1 of a plain file, not a viewer
    if any((m := _NUMBERED.fullmatch(line)) and m.group(3) == sep for line in rest):
        return None  # numbered lines out of order: not a plain listing
    head = "".join(line + "\n" for line in raw[:k0])
    tail = "".join("\n" + line for line in rest) + clipped
    return Listing(head, tuple(lines), first, sep, width, tail)


def view_path(tools: Mapping[str, PathSpec], block: Mapping[str, Any]) -> str | None:
    """The path of the file a ``tool_use`` block reads whole, by ``tools``; None if it is no
    file view (another tool, an edit command, no path).

    >>> view_path(DEFAULT_TOOLS, {"name": "Read", "input": {"file_path": "src/app.py"}})
    'src/app.py'
    >>> view_path(DEFAULT_TOOLS, {"name": "str_replace_editor", "input": {
    ...     "command": "create", "path": "a.py"}}) is None
    True
    """
    spec = tools.get(str(block.get("name")))
    arguments = block.get("input")
    if spec is None or not isinstance(arguments, Mapping):
        return None
    if isinstance(spec, str):
        command = arguments.get("command")
        if command is not None and command != "view":
            return None
        path = arguments.get(spec)
    else:
        path = spec(arguments)
    return path if isinstance(path, str) and path.strip() else None
