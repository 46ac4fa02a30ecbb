#!/usr/bin/env bash
# The documentation site: `./scripts/docs.sh build` executes the notebooks, snapshots their live charts and
# builds the site into site/ with MkDocs --strict; `./scripts/docs.sh serve` serves the built site locally.
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
case "${1:-build}" in
  build)
    shift || true
    "$VENV/bin/pip" install -q -e "$ROOT[docs,notebook,all]"
    exec "$VENV/bin/python" scripts/build_docs.py "$@" ;;
  serve)
    [ -f site/index.html ] || { echo "no site yet: run ./scripts/docs.sh build first" >&2; exit 1; }
    echo "serving site/ on http://127.0.0.1:${PORT:-8000}"
    exec "$VENV/bin/python" -m http.server "${PORT:-8000}" --bind 127.0.0.1 --directory site ;;
  *) echo "usage: scripts/docs.sh build [--only 01,08] | serve" >&2; exit 2 ;;
esac
