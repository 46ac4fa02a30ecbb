"""Other Python interpreters the tests' helper environments are built with: found, or installed by uv.

PyFlink's environment needs a Python that ``apache-flink`` has wheels for (3.10 to 3.12), and the
local BigQuery server one of at least 3.13; a machine may have neither (Ubuntu 24.04 has 3.12 only,
Ubuntu 26.04 3.14 only). ``uv`` (the ``dev`` extra installs it) then installs a standalone build into
streamlab's cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["runs_as", "uv_python"]


def runs_as(candidate: str, major: int, minor: int) -> bool:
    """Whether the executable ``candidate`` runs and is Python ``major.minor``.

    Examples
    --------
    >>> import sys
    >>> runs_as(sys.executable, *sys.version_info[:2]), runs_as(sys.executable, 2, 7), runs_as("", 3, 12)
    (True, False, False)
    """
    if not candidate or not os.access(candidate, os.X_OK):
        return False
    try:  # a pyenv shim is on PATH for every version pyenv knows, and fails for the others
        said = subprocess.run(
            [candidate, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return said.returncode == 0 and said.stdout.split() == [str(major), str(minor)]


def uv_python(version: tuple[int, int], timeout: float) -> tuple[str | None, str]:
    """Python ``version`` installed by uv into streamlab's cache (``uv python install``, a standalone
    build it downloads), or ``(None, why not)``.

    Examples
    --------
    >>> found, why = uv_python((2, 7), timeout=60)  # uv has no Python 2 to install
    >>> found is None and why.startswith(("`uv python install 2.7` failed", "uv, which could"))
    True
    """
    uv = shutil.which("uv")
    if uv is None:
        try:
            from uv import find_uv_bin  # the uv package of the dev extra, in a venv not on PATH

            uv = find_uv_bin()
        except (ImportError, FileNotFoundError):
            return None, "uv, which could install one, is not installed (pip install uv)"
    wanted = "{}.{}".format(*version)
    from streamlab._checkpoint import cache_dir

    home = cache_dir() / "pythons"
    env = {**os.environ, "UV_PYTHON_INSTALL_DIR": str(home)}
    said = ""
    for args in (["install", wanted], ["find", "--managed-python", wanted]):
        try:
            done = subprocess.run(
                [uv, "python", *args], capture_output=True, text=True, timeout=timeout, env=env
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"`uv python {' '.join(args)}` did not finish ({type(e).__name__})"
        said = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            last = said.splitlines()[-1] if said else f"exit {done.returncode}"
            return None, f"`uv python {' '.join(args)}` failed ({last})"
    found = said.splitlines()[-1].strip() if said else ""
    if not runs_as(found, *version):
        return None, f"uv installed Python {wanted} but its interpreter {found!r} does not run"
    return found, ""
