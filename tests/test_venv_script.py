"""scripts/_venv.sh (sourced by demo.sh and test.sh) on a fresh Debian/Ubuntu whose Python lacks its venv package."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "_venv.sh"

# A Python 3.14 whose `-m venv` fails as Ubuntu's does until python3.14-venv is installed (apt-get below
# leaves the marker file), then makes a venv whose python accepts anything (the pip upgrade).
FAKE_PYTHON = r"""#!/bin/sh
here=$(dirname "$0")
case "$1" in
  -c) case "$2" in *print*) echo 3.14 ;; esac; exit 0 ;;
  -m)
    if [ ! -e "$here/venv-installed" ]; then
      echo "The virtual environment was not created successfully because ensurepip is not"
      echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv"
      echo "Failing command: $3/bin/python3"
      exit 1
    fi
    mkdir -p "$3/bin" && printf '#!/bin/sh\nexit 0\n' > "$3/bin/python" && chmod +x "$3/bin/python" ;;
esac
"""
FAKE_APT = r"""#!/bin/sh
echo "$*" >> "$(dirname "$0")/apt-calls"
case "$*" in *python3.14-venv*) touch "$(dirname "$0")/venv-installed" ;; esac
"""


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_missing_venv_package_is_installed_without_venvs_failure_text(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    python = executable(bin_ / "python3", FAKE_PYTHON)
    for name in ("apt-get", "sudo"):  # as root, apt_install calls apt-get; otherwise sudo apt-get
        executable(bin_ / name, FAKE_APT if name == "apt-get" else '#!/bin/sh\nexec "$@"\n')
    env = {
        "PATH": f"{bin_}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHON": str(python),
        "STREAMLAB_VENV": str(tmp_path / "venv"),
    }
    done = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}" && echo "venv ok: $VENV"'],
        env={**env, "LANG": os.environ.get("LANG", "C.UTF-8")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "python3.14-venv" in (bin_ / "apt-calls").read_text()
    assert f"venv ok: {tmp_path / 'venv'}" in said
    assert "ensurepip is not" not in said and "Failing command" not in said, said
    assert "ship its venv module as python3.14-venv" in said
