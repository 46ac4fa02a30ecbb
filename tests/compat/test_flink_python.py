"""PyFlink's virtual environment is made with a Python that apache-flink 2.3.0 installs on.

PyPI's apache-flink 2.3.0 has wheels up to CPython 3.12; on 3.13 (Debian 13's python3) pip fell back to
its source release, which fails to build, so ``ensure_flink_python`` (and every Flink export test, and
scripts/test.sh's background build) failed with pip's error and "make PyPI reachable".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from streamlab.export import flink


def _fake_python(folder: Path, name: str, says: str, status: int = 0) -> Path:
    """An executable ``name`` that prints ``says`` and exits with ``status`` (a pyenv shim: 127)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{says}'\nexit {status}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No interpreter on PATH, an empty home (no ~/.pyenv), and a cache of our own."""
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STREAMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STREAMLAB_FLINK_PYTHON", raising=False)
    return tmp_path


def test_this_python_when_pyflink_installs_on_it() -> None:
    assert flink.flink_base_python([tuple(sys.version_info[:2])]) == sys.executable
    assert (3, 13) not in flink.FLINK_PYTHONS and (3, 12) in flink.FLINK_PYTHONS


def test_another_python_of_a_supported_version_skipping_shims_that_fail(bare: Path) -> None:
    _fake_python(bare / "bin", "python3.98", "pyenv: python3.98: command not found", status=127)
    _fake_python(bare / "bin", "python3.97", "3 96")  # not the version its name says
    pyenv = bare / "home" / ".pyenv" / "versions"
    older = _fake_python(pyenv / "3.97.1" / "bin", "python3.97", "3 97")
    newer = _fake_python(pyenv / "3.97.10" / "bin", "python3.97", "3 97")
    found = flink.flink_base_python([(3, 98), (3, 97)])
    os.remove(found)
    assert {found, flink.flink_base_python([(3, 98), (3, 97)])} == {str(older), str(newer)}


def test_without_one_ensure_flink_python_says_what_to_install_before_running_pip(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flink, "FLINK_PYTHONS", ((3, 98), (3, 97)))
    with pytest.raises(RuntimeError) as raised:
        flink.ensure_flink_python(timeout=30)
    message = str(raised.value)
    assert (
        "cannot install PyFlink 2.3.0: it installs on Python 3.98, 3.97 only" in message
        and "pyenv install 3.98" in message
    )
    assert "STREAMLAB_FLINK_PYTHON" in message
    assert not (flink.flink_env_dir() / "venv").exists()  # no venv made with an interpreter pip fails on


def test_where_no_python_of_those_versions_is_installed_uv_installs_one_into_the_cache(
    bare: Path, fake_uv: Callable[..., None]
) -> None:
    # Ubuntu 26.04 has Python 3.14 only, for which apache-flink has no wheel: the Flink tests of
    # scripts/test.sh failed there for want of an older Python that pyenv or the distribution would give
    standalone = _fake_python(bare / "cache" / "pythons" / "cpython-3.98" / "bin", "python3.98", "3 98")
    log = bare / "uv.log"
    fake_uv(bare / "bin", log, finds=standalone)
    assert flink.flink_base_python([(3, 98), (3, 97)]) == str(standalone)
    calls = log.read_text().splitlines()
    assert calls == [
        f"python install 3.98 | {bare / 'cache' / 'pythons'}",
        f"python find --managed-python 3.98 | {bare / 'cache' / 'pythons'}",
    ]


def test_when_uv_cannot_install_one_the_error_says_why_and_what_to_install(
    bare: Path, fake_uv: Callable[..., None]
) -> None:
    fake_uv(bare / "bin", bare / "uv.log", finds=bare / "nothing", fails="install")
    with pytest.raises(RuntimeError) as raised:
        flink.flink_base_python([(3, 98)])
    message = str(raised.value)
    assert "`uv python install 3.98` failed (error: no network)" in message
    assert "pyenv install 3.98" in message and "STREAMLAB_FLINK_PYTHON" in message


def test_without_uv_the_error_says_to_install_it(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uv", None)  # the dev extra's uv package, not installed
    with pytest.raises(
        RuntimeError, match=r"uv, which could install one, is not installed \(pip install uv\)"
    ):
        flink.flink_base_python([(3, 98)])
