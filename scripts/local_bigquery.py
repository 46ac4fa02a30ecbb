"""Install local-bigquery (a BigQuery REST server on DuckDB) for the BigQuery tests, once per cache.

Usage: ``python scripts/local_bigquery.py`` (``scripts/test.sh`` runs it before the tests, so no test
installs anything). local-bigquery needs Python >= 3.13 (where the machine has none, uv installs a
standalone one into streamlab's cache, as for PyFlink's environment) and DuckDB extensions that DuckDB would download
at run time, so it gets its own virtual environment under ``$STREAMLAB_CACHE/local-bigquery`` (about
20 s): local-bigquery 0.4.0 with duckdb pinned to 1.5.5 plus the PyPI wheels of the icu/ducklake/spatial
extensions. tests/connectors/test_bigquery.py loads this file to find it, and fails with
:data:`HOW_TO_INSTALL` when it is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from streamlab._pythons import uv_python

VERSION = "0.4.0"
DUCKDB_PINS = [
    "duckdb==1.5.5",
    "duckdb-extensions==1.5.5",
    "duckdb-extension-ducklake==1.5.5",
    "duckdb-extension-icu==1.5.5",
    "duckdb-extension-spatial==1.5.5",
]
HOW_TO_INSTALL = (
    "local-bigquery runs the BigQuery tests and is installed by scripts/test.sh, or by "
    "`python scripts/local_bigquery.py`. It needs Python >= 3.13: install one (Debian 13: "
    "apt-get install -y python3.13 python3.13-venv; Ubuntu 26.04's python3, 3.14, will do; elsewhere "
    "the script installs one with uv, or pyenv install 3.13) or point "
    "STREAMLAB_PYTHON313 at it, then run `python scripts/local_bigquery.py`"
)


def venv_dir() -> Path:
    cache = Path(os.environ.get("STREAMLAB_CACHE", Path.home() / ".cache" / "streamlab"))
    return cache / "local-bigquery" / "venv"


def installed() -> Path | None:
    """The ``local-bigquery`` command if it is installed and ready, else None."""
    venv = venv_dir()
    command = venv / "bin" / "local-bigquery"
    return command if (venv / ".streamlab-ready").exists() and command.exists() else None


def python313() -> str | None:
    """A Python >= 3.13 to build the venv with: ``$STREAMLAB_PYTHON313``, else ``python3.13`` (on PATH or
    pyenv's), else this interpreter or ``python3`` when they are newer (Ubuntu 26.04's python3 is 3.14 and
    it has no python3.13), else the first ``python3.N`` (N > 13) found; None when there is none."""
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates = [os.environ.get("STREAMLAB_PYTHON313", ""), shutil.which("python3.13") or ""]
    candidates += sorted(glob.glob(str(pyenv / "3.13*" / "bin" / "python3.13")))
    candidates += [sys.executable, shutil.which("python3") or ""]
    newer = [shutil.which(f"python3.{minor}") or "" for minor in range(14, 20)]
    candidates += newer + sorted(glob.glob(str(pyenv / "3.1[4-9]*" / "bin" / "python3")))
    for candidate in filter(None, candidates):
        ok = subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info >= (3, 13)"], capture_output=True
        )
        if ok.returncode == 0:
            return candidate
    return None


def base_python(timeout: float = 600) -> str:
    """The Python the venv is made with: :func:`python313`'s, else one uv installs into streamlab's cache
    (Ubuntu 24.04 and Debian 12 have no python3.13 in apt); RuntimeError saying what to install."""
    python = python313()
    if python is None:
        python, why = uv_python((3, 13), timeout)
        if python is None:
            raise RuntimeError(f"no Python >= 3.13 found, and {why}. {HOW_TO_INSTALL}")
    return python


def install() -> Path:
    """Build the virtual environment (unless it is ready) and return the ``local-bigquery`` command."""
    command = installed()
    if command is not None:
        return command
    python = base_python()
    venv = venv_dir()
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, f"local-bigquery=={VERSION}"], check=True, timeout=600)
    # local-bigquery declares duckdb>=2, but only 1.5.5 has offline extension wheels; it works with them.
    subprocess.run([*pip, *DUCKDB_PINS], check=True, timeout=600)
    code = "from duckdb_extensions import import_extension\nfor e in ('ducklake', 'icu', 'spatial'): import_extension(e)"
    subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, timeout=120)
    (venv / ".streamlab-ready").write_text(f"local-bigquery {VERSION}, duckdb 1.5.5\n")
    return venv / "bin" / "local-bigquery"


def main() -> int:
    try:
        print(f"local-bigquery: {install()}")
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"local-bigquery could not be installed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
