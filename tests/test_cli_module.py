"""``python -m streamlab`` is the ``streamlab`` command: the same output and the same exit statuses (it
did not exist: "'streamlab' is a package and cannot be directly executed")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPT = Path(sys.executable).with_name("streamlab")


def _module(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamlab", *argv], capture_output=True, text=True, timeout=90, cwd=ROOT
    )


def _script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CONSOLE_SCRIPT), *argv], capture_output=True, text=True, timeout=90, cwd=ROOT)


def test_help_is_the_commands_help() -> None:
    done = _module("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: streamlab ")
    if CONSOLE_SCRIPT.exists():
        assert done.stdout == _script("--help").stdout


def test_a_run_writes_its_output_and_exits_0(tmp_path: Path) -> None:
    events, out = tmp_path / "e.jsonl", tmp_path / "out.jsonl"
    events.write_text("".join(json.dumps({"x": i}) + "\n" for i in range(3)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"streaming:\n  sources:\n    - {{step_id: events, kind: replay, path: {events}}}\n"
        f"  sinks:\n    - {{step_id: out, kind: jsonl, input: events, path: {out}}}\n"
    )
    done = _module("run", str(spec), "--quiet")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["x"] for line in out.read_text().splitlines()] == [0, 1, 2]


def test_a_usage_mistake_exits_2_with_the_commands_message(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    done = _module("run", missing)
    assert done.returncode == 2
    assert done.stderr.startswith(f"streamlab run: {missing}: no such file")
    if CONSOLE_SCRIPT.exists():
        script = _script("run", missing)
        assert (script.returncode, script.stderr) == (done.returncode, done.stderr)
