"""Which Chromium the browser tests drive, and what to install when there is none.

Debian ships Chromium as a package (``/usr/bin/chromium``). Ubuntu ships it only as a snap: its
``chromium`` / ``chromium-browser`` packages are a wrapper that runs ``/snap/bin/chromium`` and fails
(``requires the chromium snap``) where the snap is not installed, as in containers and chroots without
snapd. So a candidate counts only when it exists and ``--version`` runs. ``$STREAMLAB_CHROMIUM``, when set,
is the only candidate. Playwright's own browser download is never used.

``python tests/_chromium.py`` prints the Chromium found, or says on stderr what to install and exits 1:
scripts/test.sh asks it, so the script and the tests apply one rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "/snap/bin/chromium", "chromium-browser")
"""Debian's package, a ``chromium`` on ``PATH``, Ubuntu's snap, Ubuntu's wrapper of the snap; in that order."""


def runs(path: str) -> bool:
    """Whether ``path --version`` exits 0 (Ubuntu's snap wrapper exits 1 when the snap is missing)."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def is_ubuntu(os_release: str) -> bool:
    """Whether ``/etc/os-release``'s text names Ubuntu or a derivative of it.

    >>> is_ubuntu('NAME="Ubuntu"\\nID=ubuntu\\nID_LIKE=debian\\n'), is_ubuntu("ID=linuxmint\\nID_LIKE=ubuntu\\n")
    (True, True)
    >>> is_ubuntu("ID=debian\\n")
    False
    """
    fields = dict(line.split("=", 1) for line in os_release.splitlines() if "=" in line)
    names = f"{fields.get('ID', '')} {fields.get('ID_LIKE', '')}".replace('"', "").split()
    return "ubuntu" in names


def install_hint(os_release: str) -> str:
    """What to run to get a Chromium the tests can drive on this distribution.

    >>> "snap install chromium" in install_hint("ID=ubuntu\\n")
    True
    >>> "apt-get install -y chromium" in install_hint("ID=debian\\n")
    True
    """
    if is_ubuntu(os_release):
        return (
            "Ubuntu ships Chromium only as a snap (its chromium-browser package is a wrapper of the snap): "
            "run `sudo snap install chromium`. Where snapd does not run (containers, chroots), install "
            "another Chromium build and set STREAMLAB_CHROMIUM=/path/to/chromium. Never `playwright install`."
        )
    return (
        "install Debian's Chromium: `sudo apt-get update && sudo apt-get install -y chromium`, or set "
        "STREAMLAB_CHROMIUM=/path/to/chromium. Never `playwright install`."
    )


def find_chromium(
    env: Mapping[str, str] | None = None,
    candidates: Sequence[str] = CANDIDATES,
    os_release: str | None = None,
) -> str:
    """The first candidate that exists and runs; raises RuntimeError saying what to install otherwise.

    >>> find_chromium({"STREAMLAB_CHROMIUM": "/nonexistent/chromium"}, os_release="ID=debian\\n")
    Traceback (most recent call last):
    ...
    RuntimeError: no Chromium that runs: tried /nonexistent/chromium...
    """
    env = os.environ if env is None else env
    wanted = env.get("STREAMLAB_CHROMIUM")
    tried = [wanted] if wanted else list(candidates)
    for name in tried:
        path = name if os.sep in name else shutil.which(name, path=env.get("PATH"))
        if path and Path(path).exists() and runs(path):
            return path
    if os_release is None:
        release = Path("/etc/os-release")
        os_release = release.read_text(errors="replace") if release.exists() else ""
    raise RuntimeError(f"no Chromium that runs: tried {', '.join(tried)}. {install_hint(os_release)}")


if __name__ == "__main__":
    try:
        print(find_chromium())
    except RuntimeError as e:
        print(f"streamlab: {e}", file=sys.stderr)
        sys.exit(1)
