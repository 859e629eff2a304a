"""The documentation stands on its own: its links resolve inside the repository, and no file
under src/, README.md or docs/ points at material outside it (working notes, machine paths)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SOURCES = [
    *sorted(p for p in (ROOT / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts),
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*") if p.is_file()),
]

_FENCED = re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")  # https:, mailto:, //host

FORBIDDEN = re.compile(r"ANTHROPIC_FACTS|DESIGN\.md|PEERS\.md|\.\./shared|/work/|/root/|/home/")


def _links(markdown: str) -> list[str]:
    prose = _INLINE_CODE.sub("", _FENCED.sub("", markdown))
    return _INLINE_LINK.findall(prose) + _REFERENCE_DEF.findall(prose)


def _relative(link: str) -> str | None:
    """The file part of a link that points into the repository, or None for other links."""
    if _EXTERNAL.match(link) or link.startswith("#"):
        return None
    return link.split("#", 1)[0].split("?", 1)[0] or None


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_pages_and_their_links_are_found() -> None:
    assert (ROOT / "docs" / "index.md") in PAGES
    assert any(_links(page.read_text(encoding="utf-8")) for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves_to_a_file_in_the_repository(page: Path) -> None:
    broken = []
    for link in _links(page.read_text(encoding="utf-8")):
        target = _relative(link)
        if target is None:
            continue
        resolved = (page.parent / target).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(link)
    assert not broken, f"{_name(page)} links to what the repository does not hold: {broken}"


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_no_file_points_at_working_notes_or_machine_paths(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    found = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for m in FORBIDDEN.finditer(text)
    ]
    assert not found, f"{_name(path)} points outside the repository: {found}"
