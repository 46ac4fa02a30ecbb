#!/usr/bin/env bash
# Quick start, command 1: install streamlab (core only, no servers) and run the embedded demo.
source "$(dirname "$0")/_venv.sh"
"$VENV/bin/pip" install -q "$ROOT"
cd "$ROOT"
exec "$VENV/bin/streamlab" demo "$@"
