#!/usr/bin/env bash
# Quick start, command 1: install streamlab (core only, no servers) and run the embedded demo.
started=$SECONDS
echo "streamlab demo: setting up a virtualenv in ${STREAMLAB_VENV:-.venv} (Python >= 3.10)"
source "$(dirname "$0")/_venv.sh"
echo "streamlab demo: installing streamlab and its core dependencies (numpy, pandas, pyarrow, duckdb, river, plotly); the first time takes a minute or two"
"$VENV/bin/pip" install -q --progress-bar off "$ROOT"
echo "streamlab demo: installed in $((SECONDS - started)) s; running 'streamlab demo'"
cd "$ROOT"
exec "$VENV/bin/streamlab" demo "$@"
