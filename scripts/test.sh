#!/usr/bin/env bash
# Quick start, command 2: install everything the tests need and run the whole suite:
# lint, types, unit and property tests, doctests, local-server integration tests, browser tests, notebooks.
# System packages it needs (installed when run as root, as on CI; otherwise it says what to install):
#   chromium (browser tests; Ubuntu has it only as a snap: tests/_chromium.py says what to install),
#   redis-server (Redis sink tests), nodejs + npm (kinesalite, Kinesis resharding),
#   python >= 3.13 (the local BigQuery server, local-bigquery, needs it; where apt has none, as on Ubuntu 24.04,
#   uv installs a standalone one into $STREAMLAB_CACHE; the BigQuery tests say what to install if that fails),
#   a Java 17 runtime (Spark's local mode for the Spark export; PyFlink's mini-cluster for the Flink export).
source "$(dirname "$0")/_venv.sh"
need=()
# one rule with the browser tests (tests/_chromium.py): Debian's /usr/bin/chromium, or a Chromium that runs
chromium() { "$VENV/bin/python" "$ROOT/tests/_chromium.py" "$@"; }
chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
command -v npm >/dev/null || need+=(nodejs npm)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
if ! chromium >/dev/null 2>&1 && command -v snap >/dev/null && as_root true 2>/dev/null; then
  # Ubuntu: apt's chromium is a wrapper of the snap, and installs the snap only where snapd runs
  as_root timeout 900 snap install chromium >/dev/null 2>&1 || true
fi
if ! chromium >/dev/null; then  # it said what to install; the browser tests fail with the same words
  echo "streamlab: the browser tests will fail until Chromium runs (see above); the other tests go on" >&2
fi
if ! command -v python3.13 >/dev/null && as_root true 2>/dev/null; then
  # Debian 13 ships it (Ubuntu 26.04 has python3 3.14, which will do, and no python3.13); elsewhere uv
  # installs one (scripts/local_bigquery.py), and where that fails the
  # BigQuery tests fail and name what to install
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.13 python3.13-venv >/dev/null 2>&1 || true
fi

"$VENV/bin/pip" install -q -e "$ROOT[dev]"
cd "$ROOT"
export PATH="$VENV/bin:$PATH"
echo "== PyFlink's own venv (apache-flink pins conflict with Beam's; built once into \$STREAMLAB_CACHE in the background, tests/export/test_flink_export.py waits for it)"
mkdir -p "$ROOT/build"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT  # background installs and builds end with this script
python -m streamlab.export.flink --prepare >"$ROOT/build/pyflink-env.log" 2>&1 &
echo "== local-bigquery's venv for the BigQuery tests (needs python3.13; built once into \$STREAMLAB_CACHE while ruff and mypy run)"
python scripts/local_bigquery.py >"$ROOT/build/local-bigquery.log" 2>&1 &
bigquery=$!
echo "== documentation site (built in the background from here on, while ruff and mypy leave a core idle, and then beside the tests; tests/docs waits for it and checks it)"
# It executes two notebooks, not all thirteen: 01 (a live Dashboard) and 10 (plotly figures, ipywidgets
# controls) cover every kind of output the build turns into static HTML, and tests/docs checks 01's page.
# The other eleven run under nbval below; executing them a second time here, beside three test workers,
# took about seven CPU-minutes of a two-core machine. scripts/docs.sh (the published site) executes all.
rm -f "$ROOT/build/docs-status"
python scripts/build_docs.py --only 01,10 --jobs 1 --site "$ROOT/build/site" --status "$ROOT/build/docs-status" \
  >"$ROOT/build/docs-build.log" 2>&1 &
export STREAMLAB_DOCS_BUILD="$ROOT/build"
echo "== ruff"
ruff check .
ruff format --check streamlab connectors widgets datasets tests benchmarks scripts conftest.py
echo "== mypy --strict (streamlab and streamlab.connectors, .widgets, .datasets via scripts/typecheck_tree.py)"
python scripts/typecheck_tree.py >/dev/null
if python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  mypy
else
  # the types are written against numpy 2.4's and pandas-stubs 3's stubs, which need Python >= 3.11;
  # on 3.10 pip installs numpy 2.2 and pandas-stubs 2.3, whose stubs differ (hundreds of reports)
  echo "mypy skipped on $(python --version): its stubs (numpy 2.4, pandas-stubs 3) need Python >= 3.11, as CI runs it"
fi
wait "$bigquery" || echo "local-bigquery is not installed (the BigQuery tests say what to install): $(tail -n 3 "$ROOT/build/local-bigquery.log")"
# Tiers (conftest.py): unit, integration and notebooks run on every core, a whole file per worker (a
# notebook's cells share one kernel; an integration file, its servers), the longest files first
# (tests/durations.json); then the browser tests, one at a time, on a machine no other test loads (they
# check live pages under a load they make).
# Every JVM the tests start (Spark's local sessions and the exported Spark programs through
# SPARK_SUBMIT_OPTS, PyFlink's jobs through JVM_ARGS) lives seconds to a minute: the options verify()
# gives its own short runs (streamlab/_jvm.py: the client compiler, the serial collector; about half of a
# small Spark job's time, a fifth of a PyFlink one's on two cores). They change no result. PyFlink's jobs
# also map the class-data archive built with its environment: the flink_python fixture
# (tests/export/conftest.py) sets JVM_ARGS once that environment is ready.
short_jvm=$(python -c 'from streamlab._jvm import short_run_options; print(short_run_options())')
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-$short_jvm}"
pytest=(python -m pytest -p no:cacheprovider --timeout=900 --durations=25 --nbval-lax --nbval-current-env
  --nbval-cell-timeout=300 --nbval-sanitize-with "$ROOT/notebooks/nbval_sanitize.cfg")
# Two workers more than cores: the integration files wait on JVMs, servers and child programs for much of
# their time (two workers on two cores kept about 60 % of the CPU busy; three, about 70 % of the whole
# run's CPU in a 31-minute CI on 2026-12-08), so a third and a fourth keep the cores fed.
workers=${STREAMLAB_TEST_WORKERS:-$(($(nproc) + 2))}
echo "== pytest, $workers workers: unit (tests, doctests), integration (local servers, Beam, Spark, Flink), notebooks (nbval)"
rc=0
"${pytest[@]}" -n "$workers" --dist loadfile --no-loadscope-reorder -m "not browser" \
  tests streamlab connectors widgets datasets notebooks "$@" || rc=$?
echo "== pytest: browser (JupyterLab, Voila, the documentation site in Chromium)"
browser=0
"${pytest[@]}" -m browser tests "$@" || browser=$?
if [ "$browser" -ne 5 ] && [ "$rc" -eq 0 ]; then rc=$browser; fi  # 5: "$@" selected no browser test
exit "$rc"
