"""MkDocs hook: show the examples in docstrings as Python console code.

The docstrings hold doctests (``>>>`` lines and their output) and Sphinx roles
(``:func:`name```); plain Markdown would render the first as nested block quotes and read
``[0]`` in them as link references. This hook fences each doctest block as ``pycon`` and turns
each role into inline code, for docstrings and pages alike; fenced blocks are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    name = match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"


class _Doctests(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fence: str | None = None
        i = 0
        while i < len(lines):
            line = lines[i]
            opening = _FENCE.match(line)
            if fence is not None:
                out.append(line)
                if (
                    opening
                    and opening.group(1)[0] == fence[0]
                    and len(opening.group(1)) >= len(fence)
                ):
                    fence = None
                i += 1
            elif opening:
                fence = opening.group(1)
                out.append(line)
                i += 1
            elif line.lstrip().startswith(">>>"):
                indent = line[: len(line) - len(line.lstrip())]
                block: list[str] = []
                while i < len(lines) and lines[i].strip():
                    block.append(lines[i])
                    i += 1
                out += ["", f"{indent}```pycon", *block, f"{indent}```", ""]
            else:
                out.append(_ROLE.sub(_role, line))
                i += 1
        return out


class _DoctestExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        # After whitespace normalization (30), before fenced code blocks (25).
        md.preprocessors.register(_Doctests(md), "tidyctx_doctests", 28)


def on_config(config: Any) -> Any:
    config.markdown_extensions.append(_DoctestExtension())
    return config
