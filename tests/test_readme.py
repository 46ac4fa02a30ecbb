"""The README's Python code runs as written, and its numbers agree with ``streamlab demo``'s."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_python_code() -> None:
    assert python_blocks(README.read_text(encoding="utf-8")), "the README's examples are ```python blocks"


def test_the_demo_tables_the_readme_names_unkeyed_are_the_demos() -> None:
    """The README named `dead_letters` and `duplicates`; the demo writes `late_events` and `dead_letters`."""
    from streamlab import DuckDBSink
    from streamlab.cli import build_demo_pipeline

    named = re.search(r"DuckDB without a key \(`key=None`, e\.g\.\s+the demo's (.*?)\)", README.read_text())
    assert named is not None, "the README's sentence on DuckDB without a key"
    sinks = [getattr(step, "sink", None) for step in build_demo_pipeline(":memory:").steps.values()]
    unkeyed = {s.table for s in sinks if isinstance(s, DuckDBSink) and s.key is None}
    assert set(re.findall(r"`(\w+)`", named.group(1))) == unkeyed


@pytest.mark.slow
def test_readme_code_runs_as_written_and_agrees_with_the_demo(tmp_path: Path, monkeypatch) -> None:
    from streamlab import ManualClock
    from streamlab.cli import build_demo_pipeline

    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    for block in python_blocks(README.read_text(encoding="utf-8")):
        exec(compile(block, str(README), "exec"), scope)
    result = scope["result"]
    readme = result.metrics  # type: ignore[attr-defined]
    demo = build_demo_pipeline(str(tmp_path / "demo.duckdb")).run(clock=ManualClock(0)).metrics
    # the same dataset, schema and dedup: the same records are dead letters and duplicates
    assert readme["dead_letter"] == demo["dead_letter"] and readme["duplicates"] == demo["duplicates"]
    assert len(result["parse.dead_letter"]) == readme["dead_letter"]  # type: ignore[index]
    assert (tmp_path / "out.duckdb").exists()


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted((README.parent / "docs").glob("*.md")), ids=lambda p: p.name)
def test_documentation_code_runs_as_written(page: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    for block in python_blocks(page.read_text(encoding="utf-8")):
        exec(compile(block, str(page), "exec"), scope)
