"""scripts/local_bigquery.py finds a Python >= 3.13 where there is no python3.13 (Ubuntu 26.04: python3 is 3.14)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from streamlab.export.verify import load_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "local_bigquery.py"


def fake_python(path: Path, version: tuple[int, int]) -> str:
    # answers the script's version check as a Python of `version` would
    ok = "exit 0" if version >= (3, 13) else "exit 1"
    path.write_text(f"#!/bin/sh\n{ok}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No python3.13 anywhere, no pyenv, and this interpreter is a 3.11."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("STREAMLAB_PYTHON313", raising=False)
    monkeypatch.setattr(sys, "executable", fake_python(tmp_path / "python3.11", (3, 11)))
    return tmp_path / "bin"


def test_a_python3_newer_than_3_13_will_do(machine: Path) -> None:
    python3 = fake_python(machine / "python3", (3, 14))
    assert load_module(SCRIPT).python313() == python3


def test_a_python3_14_on_path_will_do_when_python3_is_older(machine: Path) -> None:
    fake_python(machine / "python3", (3, 11))
    python314 = fake_python(machine / "python3.14", (3, 14))
    assert load_module(SCRIPT).python313() == python314


def test_python3_13_comes_first_and_none_when_only_older_pythons(machine: Path) -> None:
    fake_python(machine / "python3", (3, 11))
    assert load_module(SCRIPT).python313() is None
    python313 = fake_python(machine / "python3.13", (3, 13))
    fake_python(machine / "python3.14", (3, 14))
    assert load_module(SCRIPT).python313() == python313
