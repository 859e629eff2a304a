"""The compaction samples of benchmarks/summary_calibration.py (data/compactions/) parse into a
compaction with the span it replaced, its summary and references only it could hold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SAMPLES = sorted((ROOT / "data" / "compactions").glob("*.jsonl"))
sys.path.insert(0, str(BENCHMARKS))
try:
    import summary_calibration as calibration
finally:
    sys.path.remove(str(BENCHMARKS))


def test_there_are_at_least_ten_samples_each_listed_with_its_source() -> None:
    readme = (ROOT / "data" / "compactions" / "README.md").read_text(encoding="utf-8")
    assert len(SAMPLES) >= 10
    for path in SAMPLES:
        assert f"`{path.name}`" in readme, path.name


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_is_one_compaction_with_span_summary_and_later_references(path: Path) -> None:
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert first.startswith("// source: github.com/") and "commit " in first
    assert "license: MIT" in first
    (found,) = calibration.compactions(path)
    assert len(found.span) >= 20
    assert any(b["type"] == "tool_result" for m in found.span for b in m["content"])
    assert found.summary.startswith("This session is being continued from a previous conversation")
    assert found.later >= 2
    assert len(found.references) >= 20
    assert found.model.startswith("claude-")


def test_a_log_that_opens_with_a_summary_has_no_compaction_to_measure(tmp_path: Path) -> None:
    events = [
        {"type": "user", "isCompactSummary": True, "message": {"role": "user", "content": "s"}},
        {"type": "assistant", "message": {"role": "assistant", "content": "go on"}},
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    assert calibration.compactions(log) == []


def test_a_broken_line_is_an_error_naming_the_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('// source: x\n{"type": "user"}\n{"type": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"log\.jsonl:3: not a JSON event"):
        calibration.compactions(log)


def test_references_are_those_only_the_summary_could_hold(tmp_path: Path) -> None:
    def event(role: str, content: object, **extra: object) -> str:
        return json.dumps({"type": role, "message": {"role": role, "content": content}, **extra})

    call = {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a.py"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "def parse_config(): 4711"}
    lines = [
        event("user", "fix the parser"),
        event("assistant", [call]),
        event("user", [result]),
        event("user", "This session is being continued ...", isCompactSummary=True),
        event("assistant", "parse_config returns 4711"),
        event("user", "and again?"),
        event("assistant", "parse_config, as said"),
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (found,) = calibration.compactions(log)
    # Said again after the summary, parse_config no longer needs it: counted once.
    assert found.references == ["4711", "parse_config"]
    assert calibration.held(found.references, "parse_config was found") == 0.5
