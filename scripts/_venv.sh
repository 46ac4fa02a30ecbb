# Shared by demo.sh and test.sh: make sure a Python >= 3.10 virtualenv exists at $VENV.
# Sourced, not run. On a fresh Debian/Ubuntu the venv module may be missing: install it when we are
# root (as on CI), otherwise say exactly what to install.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${STREAMLAB_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {  # apt_install PKG... : install Debian packages or explain how
  if as_root true 2>/dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "streamlab: these system packages are needed: $*" >&2
    echo "streamlab: install them with:  sudo apt-get install -y $*" >&2
    exit 1
  fi
}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "streamlab needs Python >= 3.10 as '$PY' (found: $("$PY" --version 2>&1)); set PYTHON=python3.11 or similar" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  # quiet: without python3.X-venv, venv prints "ensurepip is not available ... Failing command" on
  # stdout, which reads as the end of the run while we go on to install that package
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "streamlab: $PY cannot create a virtualenv: Debian and Ubuntu ship its venv module as python${pyver}-venv"
    apt_install "python${pyver}-venv" || apt_install python3-venv
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=77" wheel
fi
