"""The layer rule: no import runs upward, and the engines run without the ``code`` extra.

Core modules (request model, markers, memo, tokens, stores, pricing, simulation, traces) import
nothing above them; the engines (``tidyctx.code``, ``tidyctx.text``) never import the
transforms; only ``__main__`` imports the CLI. Every import statement counts, including those
inside functions and ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tidyctx

PACKAGE = Path(tidyctx.__file__).resolve().parent
SRC = PACKAGE.parent

CORE = (
    "tidyctx._request",
    "tidyctx._shapes",
    "tidyctx._markers",
    "tidyctx._time",
    "tidyctx._memo",
    "tidyctx.tokens",
    "tidyctx.store",
    "tidyctx.pricing",
    "tidyctx.cachesim",
    "tidyctx.traces",
    "tidyctx.recall",
    "tidyctx._pipeline",
    "tidyctx._calls",
    "tidyctx.ledger",
)
ENGINES = ("tidyctx.code", "tidyctx.text")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The tidyctx modules that module ``name`` imports, wherever the import statement is.

    ``from tidyctx import pricing`` imports the module ``tidyctx.pricing``;
    ``from tidyctx import pipe`` imports the package ``tidyctx`` (its public surface).
    """
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if _is_module(sub) else source)
    return {m for m in found if m == "tidyctx" or m.startswith("tidyctx.")}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(importers: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in importers:
        bad = sorted(m for m in imports_of(name) if m == "tidyctx" or _within(m, forbidden))
        if bad:
            out[name] = bad
    return out


def test_import_scan_sees_imports_inside_functions() -> None:
    # slice_view imports the slicing engine when it runs, compact's describe the counter.
    assert "tidyctx.code._slicing" in imports_of("tidyctx.transforms._slice_code")
    assert "tidyctx.tokens" in imports_of("tidyctx.transforms._compact")
    assert "tidyctx.pricing" in imports_of("tidyctx.cachesim")


def test_every_core_module_and_engine_exists() -> None:
    assert all(name in MODULES for name in CORE)
    assert [m for m in MODULES if _within(m, ENGINES)]


def test_engines_import_no_transforms_and_no_cli() -> None:
    engines = [m for m in MODULES if _within(m, ENGINES)]
    forbidden = ("tidyctx.transforms", "tidyctx._cli", "tidyctx.testing")
    assert _violations(engines, forbidden) == {}


def test_core_imports_no_transforms_engines_or_cli() -> None:
    forbidden = (
        "tidyctx.transforms",
        "tidyctx.code",
        "tidyctx.text",
        "tidyctx._cli",
        "tidyctx.testing",
    )
    assert _violations(list(CORE), forbidden) == {}


def test_only_main_imports_the_cli() -> None:
    importers = sorted(m for m in MODULES if "tidyctx._cli" in imports_of(m))
    assert importers == ["tidyctx.__main__"]


_WITHOUT_TREE_SITTER = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class NoTreeSitter(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0].startswith("tree_sitter"):
                raise ImportError(f"{name} is blocked: the code extra is not installed")
            return None

    sys.meta_path.insert(0, NoTreeSitter())
    sys.modules["tree_sitter"] = None

    import tidyctx as tc
    import tidyctx.text

    log = "\\n".join(f"12:00:{i % 60:02d} INFO request {i} served" for i in range(3000))
    listing = "\\n".join(f"{n:>6}\\tvalue_{n}   =  {n}" for n in range(1, 400))
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Why is request 1717 slow?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "bash",
                 "input": {"command": "tail -n 3000 app.log"}},
                {"type": "tool_use", "id": "t2", "name": "Read",
                 "input": {"file_path": "conf.py"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": log},
                {"type": "tool_result", "tool_use_id": "t2", "content": listing},
            ]},
        ],
    }
    out = tc.pipe(request, tc.trim(max_tokens=200))
    cut = out["messages"][2]["content"][0]["content"][0]["text"]
    assert "[tidyctx: " in cut and len(cut) < len(log) // 10, cut[:200]
    view = tc.pipe(request, tc.compact())["messages"][2]["content"][1]["content"][0]["text"]
    assert view.startswith("1\\tvalue_1   =  1"), view[:80]
    assert not any(m.startswith("tree_sitter") for m in sys.modules if sys.modules[m]), sorted(
        m for m in sys.modules if m.startswith("tree_sitter")
    )
    print("ok")
    """
)


def test_trim_and_compact_run_without_tree_sitter() -> None:
    paths = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TREE_SITTER],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_only_the_package_imports_the_wrapper() -> None:
    importers = sorted(m for m in MODULES if "tidyctx._wrap" in imports_of(m))
    assert importers == ["tidyctx"]
