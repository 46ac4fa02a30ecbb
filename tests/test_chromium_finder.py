"""tests/_chromium.py: the browser tests find Debian's Chromium or Ubuntu's snap, and say what to install."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path
from typing import Any

import pytest

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
UBUNTU = 'PRETTY_NAME="Ubuntu 26.04 LTS"\nID=ubuntu\nID_LIKE=debian\n'


def load() -> Any:
    spec = importlib.util.spec_from_file_location("chromium_finder", Path(__file__).parent / "_chromium.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_ubuntus_snap_wrapper_without_the_snap_is_no_chromium_and_the_hint_says_snap(tmp_path: Path) -> None:
    # Ubuntu's chromium-browser package: a wrapper that fails where the snap is not installed
    wrapper = script(tmp_path / "chromium-browser", 'echo "requires the chromium snap" >&2; exit 1')
    finder = load()
    with pytest.raises(RuntimeError) as e:
        finder.find_chromium({}, candidates=[str(tmp_path / "chromium"), wrapper], os_release=UBUNTU)
    assert "sudo snap install chromium" in str(e.value) and wrapper in str(e.value)
    assert "STREAMLAB_CHROMIUM" in str(e.value) and "apt-get install -y chromium" not in str(e.value)


def test_on_debian_the_hint_is_the_chromium_package(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"apt-get install -y chromium"):
        load().find_chromium({}, candidates=[str(tmp_path / "none")], os_release=DEBIAN)


def test_the_first_candidate_that_runs_wins_and_names_are_looked_up_on_path(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    broken = script(tmp_path / "broken", "exit 1")
    snap = script(tmp_path / "bin" / "chromium", "echo Chromium 140")
    found = load().find_chromium(
        {"PATH": str(tmp_path / "bin")},
        candidates=[str(tmp_path / "missing"), broken, "chromium"],
        os_release=UBUNTU,
    )
    assert found == snap


def test_streamlab_chromium_is_the_only_candidate_when_set(tmp_path: Path) -> None:
    good = script(tmp_path / "good", "echo Chromium 140")
    other = script(tmp_path / "other", "echo Chromium 139")
    finder = load()
    assert finder.find_chromium({"STREAMLAB_CHROMIUM": good}, candidates=[other], os_release=DEBIAN) == good
    with pytest.raises(RuntimeError, match="tried /nowhere/chromium"):
        finder.find_chromium(
            {"STREAMLAB_CHROMIUM": "/nowhere/chromium"}, candidates=[other], os_release=DEBIAN
        )
