"""Keys a spec check did not know were dropped without a word when they sat beside ``streaming:`` or
were read by YAML as numbers or dates: a ``sinks:`` indented one level too little ran with no sink (exit
0, no file), ``1:`` in ``streaming:`` passed, and ``2024-01-01:`` on a sink gave only ``TypeError:
keywords must be strings``. Each is now a problem at its path, naming the key.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.errors import SpecError


def _source(tmp_path: Path, extra: str = "") -> str:
    events = tmp_path / "e.jsonl"
    events.write_text('{"k": "x", "timestamp": 1}\n')
    return f"streaming:\n  sources:\n  - {{step_id: src, kind: replay, path: {events}{extra}}}\n"


def _sink(tmp_path: Path, extra: str = "", indent: str = "  ") -> str:
    return f"{indent}sinks:\n{indent}- {{step_id: out, kind: jsonl, input: src, path: {tmp_path / 'out.jsonl'}{extra}}}\n"


_WINDOW = "  processing:\n  - {step_id: w, kind: window, input: src, window: {kind: tumbling, size: 1m%s}, aggregate: [{kind: count%s}]}\n"

# (name, spec text from tmp_path, the problem's path, words the problem holds)
CASES = [
    ("sinks indented too little", lambda t: _source(t) + _sink(t, indent=""), "sinks", "indent 'sinks:'"),
    (
        "a version beside streaming",
        lambda t: "version: 1\n" + _source(t),
        "version",
        "top-level key 'version'",
    ),
    ("a number beside streaming", lambda t: _source(t) + "7: x\n", "7", "top-level key 7"),
    ("a number in streaming", lambda t: _source(t) + "  1: typo\n", "streaming.1", "unknown key 1"),
    ("a date in streaming", lambda t: _source(t) + "  2024-01-01: x\n", "streaming.2024-01-01", "a date"),
    (
        "a date on a sink",
        lambda t: _source(t) + _sink(t, ", 2024-01-01: x"),
        "streaming.sinks[0] (step 'out').2024-01-01",
        "unknown key 2024-01-01 for a jsonl sink",
    ),
    (
        "null on a source",
        lambda t: _source(t, ", null: x"),
        "streaming.sources[0] (step 'src').null",
        "unknown key null for a replay source",
    ),
    (
        "a number on a source's dead-letter sink",
        lambda t: _source(t, f", dead_letter: {{kind: jsonl, path: {t / 'dl.jsonl'}, 7: x}}"),
        "streaming.sources[0] (step 'src').dead_letter.7",
        "unknown key 7 for a dead-letter sink",
    ),
    (
        "a number on a window",
        lambda t: _source(t) + _WINDOW % (", 3: x", ""),
        "streaming.processing[0] (step 'w').window.3",
        "unknown key 3 for a tumbling window",
    ),
    (
        "a date on an aggregator",
        lambda t: _source(t) + _WINDOW % ("", ", 2024-01-01: x"),
        "streaming.processing[0] (step 'w').aggregate[0].2024-01-01",
        "for a count aggregator",
    ),
    (
        "a number on a processing step",
        lambda t: (
            _source(t) + "  processing:\n  - {step_id: f, kind: filter, input: src, expr: 'k == 1', 3: x}\n"
        ),
        "streaming.processing[0] (step 'f').3",
        "unknown key 3 for a filter step",
    ),
]


@pytest.mark.parametrize(("name", "text", "path", "words"), CASES, ids=[c[0] for c in CASES])
def test_from_yaml_names_the_key_and_its_path(tmp_path: Path, name: str, text, path: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        Pipeline.from_yaml(text(tmp_path))
    problems = info.value.problems
    assert [p.path for p in problems] == [path], str(info.value)
    assert words in problems[0].problem or words in problems[0].fix


def test_a_true_key_is_reported_once(tmp_path: Path) -> None:
    # a boolean key (YAML 1.1's yes/on as a key, written true here) keeps its own message, once
    with pytest.raises(SpecError) as info:
        Pipeline.from_yaml(_source(tmp_path) + _WINDOW % (", true: x", ""))
    assert [p.path for p in info.value.problems] == ["streaming.processing[0] (step 'w').window.True"]


def test_a_spec_as_to_yaml_writes_it_is_still_read(tmp_path: Path) -> None:
    p = Pipeline.from_yaml(_source(tmp_path) + _sink(tmp_path))
    assert Pipeline.from_yaml(p.to_yaml()).to_yaml() == p.to_yaml()


@pytest.mark.parametrize(
    ("name", "text", "path", "words"),
    [c for c in CASES if c[0] in ("sinks indented too little", "a number in streaming", "a date on a sink")],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_streamlab_run_exits_2_with_one_line(tmp_path: Path, name: str, text, path: str, words: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text(tmp_path))
    run = subprocess.run(
        [sys.executable, "-m", "streamlab.cli", "run", str(spec), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}: " in lines[0] and words in lines[0], run.stderr
    assert not (tmp_path / "out.jsonl").exists()
