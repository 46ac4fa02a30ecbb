"""scripts/local_bigquery.py finds a Python >= 3.13 where there is no python3.13 (Ubuntu 26.04: python3 is 3.14)."""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable
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


def test_where_the_machine_has_no_python_3_13_uv_installs_one_into_the_cache(
    machine: Path, monkeypatch: pytest.MonkeyPatch, fake_uv: Callable[..., None]
) -> None:
    """Ubuntu 24.04 and Debian 12 have no python3.13 in apt: the BigQuery tests of scripts/test.sh failed
    there, naming what to install, where the Flink tests' environment had uv install a Python."""
    monkeypatch.setenv("STREAMLAB_CACHE", str(machine.parent / "cache"))
    fake_python(machine / "python3", (3, 12))
    standalone = machine.parent / "cache" / "pythons" / "cpython-3.13" / "bin" / "python3.13"
    standalone.parent.mkdir(parents=True)
    standalone.write_text("#!/bin/sh\necho 3 13\n")  # answers runs_as's version question
    standalone.chmod(0o755)
    log = machine.parent / "uv.log"
    fake_uv(machine, log, finds=standalone)
    assert load_module(SCRIPT).base_python(timeout=30) == str(standalone)
    home = machine.parent / "cache" / "pythons"
    assert log.read_text().splitlines() == [
        f"python install 3.13 | {home}",
        f"python find --managed-python 3.13 | {home}",
    ]


def test_when_uv_cannot_install_one_the_error_says_why_and_what_to_install(
    machine: Path, fake_uv: Callable[..., None]
) -> None:
    fake_python(machine / "python3", (3, 12))
    fake_uv(machine, machine.parent / "uv.log", finds="", fails="install")
    with pytest.raises(RuntimeError) as raised:
        load_module(SCRIPT).base_python(timeout=30)
    message = str(raised.value)
    assert "no Python >= 3.13 found, and `uv python install 3.13` failed (error: no network)" in message
    assert "pyenv install 3.13" in message and "STREAMLAB_PYTHON313" in message
