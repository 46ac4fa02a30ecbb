"""Test tiers and their order, for every test pytest collects (tests, doctests and notebooks).

Each item gets exactly one tier marker, from where it lives and what it uses, so no test file lists it:

* ``notebooks``: a notebook cell run by nbval (``--nbval-lax``);
* ``browser``: drives JupyterLab, Voila or the documentation site in Chromium (marked ``browser``);
* ``integration``: starts a local server or runs an engine: every test of a file that uses a server
  fixture or is marked ``services`` (brokers, emulators, moto, redis, kinesalite, local-bigquery), the
  fault suite, and the files that run Beam's DirectRunner, Spark, Flink or pip; a doctest that starts a
  local server;
* ``unit``: everything else (pure tests and doctests): no server, no engine, no browser.

Run one with ``pytest -m unit`` (see the README). ``scripts/test.sh`` runs all but ``browser`` on both
cores with pytest-xdist, a whole file per worker (``--dist loadfile``: a notebook's cells share one kernel
and run in order, an integration file's tests share its servers), in the order set here
(``--no-loadscope-reorder``): the longest files first (``tests/durations.json``, from a CI run's
``--durations=0`` report by ``scripts/test_durations.py``), so that the workers end together; then ``browser``
alone (the tests time a live page under a load they make themselves). xdist's ``loadgroup`` cannot be
used: it renames items by ``item._nodeid``, which pytest 9.2 no longer reads.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import re
from pathlib import Path

import pytest

# Imported before collection, every module: pytest's importlib mode then finds streamlab's modules in
# sys.modules when it collects their doctests, instead of running a second copy of a module under the same
# name, which would replace the package's copy for later imports while the package keeps using its own (so
# module state, such as the file blocks streamlab._lines registers, would differ between a test and the
# code it tests, and a class pickled by a test would not be "the same object" as its module's). Lazily
# imported subpackages (detectors, export, connectors, ...) count too: `pytest streamlab/detectors/_common.py
# tests/core/test_step_kinds.py` failed 18 of its tests when only the top package was imported here.
for _package in ("streamlab", "streamlab.connectors", "streamlab.widgets", "streamlab.datasets"):
    with contextlib.suppress(ImportError):  # an optional part that is not installed
        _root = importlib.import_module(_package)
        for _module in pkgutil.walk_packages(_root.__path__, f"{_package}."):
            with contextlib.suppress(ImportError):  # its doctests say what to install themselves
                importlib.import_module(_module.name)

TIERS = ("unit", "integration", "browser", "notebooks")

# Files whose tests run an engine or an installer rather than a server fixture (those are found by use).
_INTEGRATION_PATHS = (
    "tests/faults/",  # brokers it freezes, kills and restarts
    "tests/export/test_beam_export.py",  # Beam's DirectRunner
    "tests/export/test_beam_detectors.py",  # Beam's DirectRunner
    "tests/export/test_demo_export.py",  # Beam's DirectRunner and moto
    "tests/export/test_lambda_export.py",  # moto and Beam
    "tests/export/test_lambda_oversized.py",  # moto
    "tests/export/test_lambda_timestream_values.py",  # moto
    "tests/export/test_lambda_timestream_parity.py",  # moto
    "tests/export/test_lambda_long_keys.py",  # moto
    "tests/export/test_lambda_large_partials.py",  # moto
    "tests/export/test_lambda_window_terminated_early.py",  # moto
    "tests/export/test_dedup_parity.py",  # Beam's DirectRunner
    "tests/export/test_parse_parity.py",  # the generated Beam module run as a program
    "tests/export/test_exported_file_lines.py",  # the Beam module and PyFlink jobs run as programs (a JVM)
    "tests/export/test_spark_export.py",  # Spark's local mode (a JVM)
    "tests/export/test_flink_export.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_flink_datastream.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_spark_pattern.py",  # Spark's local mode (a JVM)
    "tests/export/test_backtick_columns.py",  # Beam's DirectRunner and moto (verify)
    "tests/export/test_pattern_backtick_columns.py",  # Beam's DirectRunner, Spark's local mode and PyFlink's mini-cluster
    "tests/export/test_spark_detectors.py",  # Spark's local mode (a JVM)
    "tests/export/test_short_jvm_runs.py",  # Spark's local mode (a JVM)
    "tests/export/test_flink_detectors.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_spark_dedup_rule.py",  # Spark's local mode (a JVM)
    "tests/export/test_flink_sql_dedup_watermark.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_flink_json_numbers.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_spark_json_numbers.py",  # Spark's local mode (a JVM)
    "tests/export/test_spark_json_lines.py",  # Spark's local mode (a JVM)
    "tests/export/test_spark_verify_quiet.py",  # Spark's local mode (a JVM)
    "tests/export/test_spark_gateway_retry.py",  # Spark's local mode (a JVM)
    "tests/export/test_verify_parse_column.py",  # Beam run as a program, moto, Spark and PyFlink (verify)
    "tests/export/test_replay_job_input.py",  # the Beam module run as a program
    "tests/export/test_spark_json_key_order.py",  # Spark's local mode (a JVM)
    "tests/export/test_spark_json_fields.py",  # Spark's local mode (a JVM)
    "tests/export/test_flink_json_lines.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_flink_sql_mistyped.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_flink_sql_time_unit.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_flink_sql_time_text.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_window_time_reason.py",  # Beam, moto, Spark's local mode and PyFlink (JVMs)
    "tests/export/test_flink_datastream_row_outputs.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_flink_sql_agg_types.py",  # PyFlink's mini-cluster (a JVM)
    "tests/export/test_lambda_json_number_keys.py",  # moto
    "tests/export/test_lambda_packaging.py",  # moto, and build.sh run as a program
    "tests/export/test_beam_step_watermark.py",  # Beam's DirectRunner
    "tests/export/test_with_columns_export.py",  # Beam's DirectRunner and moto
    "tests/export/test_verify_row_outputs.py",  # Beam's DirectRunner
    "tests/export/test_beam_documented_commands.py",  # the generated Beam module run as a program
    "tests/export/test_user_function_names.py",  # Beam's DirectRunner and moto
    "tests/export/test_beam_user_functions.py",  # Beam's DirectRunner
    "tests/benchmarks/test_bench_nexmark.py",  # Beam's own Nexmark queries
    "tests/test_packaging.py",  # pip builds the wheel and installs it into a fresh venv
)
# Fixtures that start a local server (tests/connectors/conftest.py and the connector test modules).
_SERVER_FIXTURES = frozenset(
    {"kafka_broker", "redis_server", "redis_client", "broker", "aws", "kinesalite", "endpoint", "emulator"}
)
# A doctest that starts a local server (a ``# doctest: +SKIP`` line does not).
_STARTS_SERVER = re.compile(
    r"^(?!.*doctest: \+SKIP).*\bwith (Local(KafkaBroker|Redis|AWS|BigQuery|Server)|PubSubEmulator)\(", re.M
)


def _path(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0].replace(os.sep, "/")


def _doctest_source(item: pytest.Item) -> str:
    dtest = getattr(item, "dtest", None)
    return "".join(example.source for example in getattr(dtest, "examples", ()))


def tier_of(item: pytest.Item, integration_files: set[str]) -> str:
    """The tier of one collected item (``integration_files``: files with a server-using test)."""
    path = _path(item)
    marked = [name for name in TIERS if item.get_closest_marker(name)]
    if len(marked) == 1:  # given by the test itself (``browser``), or by a conftest of its directory
        return marked[0]
    if path.endswith(".ipynb"):
        return "notebooks"
    if "browser" in getattr(item, "fixturenames", ()):
        return "browser"
    if path in integration_files or path.startswith(_INTEGRATION_PATHS):
        return "integration"
    if type(item).__name__ == "DoctestItem" and _STARTS_SERVER.search(_doctest_source(item)):
        return "integration"
    return "unit"


def _uses_server(item: pytest.Item) -> bool:
    return bool(item.get_closest_marker("services")) or bool(
        _SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
    )


def _group(item: pytest.Item, tier: str) -> int:
    """When its file may start: browser first (it runs alone), the docs site last (its build runs in the
    background), every other file in between, longest first (:func:`_seconds`)."""
    if "tests/docs/" in _path(item):
        return 9
    return 0 if tier == "browser" else 1


#: Each test file's seconds in a CI run (``scripts/test_durations.py`` writes it from a log).
_DURATIONS = Path(__file__).parent / "tests" / "durations.json"


def _recorded_seconds() -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(_DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):  # missing or unreadable: every file is estimated
        return {}


def _seconds(item: pytest.Item, tier: str, recorded: dict[str, float]) -> float:
    """How long its file is expected to run: as recorded, else by its tier (a file with a long test,
    marked ``slow`` or a hypothesis property, counts as a longer one)."""
    if _path(item) in recorded:
        return recorded[_path(item)]
    long = item.get_closest_marker("slow") or getattr(getattr(item, "obj", None), "is_hypothesis_test", False)
    return {"integration": 60.0, "notebooks": 60.0, "browser": 60.0}.get(tier, 10.0 if long else 1.0)


TIERS_KEY = pytest.StashKey[dict[str, tuple[str, ...]]]()


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every item its tier and order the files; keep all items' tiers for tests/test_tiers.py."""
    integration_files = {_path(item) for item in items if _uses_server(item)}
    tiers = {item.nodeid: tier_of(item, integration_files) for item in items}
    recorded = _recorded_seconds()
    starts: dict[str, tuple[int, float]] = {}
    for item in items:
        tier = tiers[item.nodeid]
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))
        key = (_group(item, tier), -_seconds(item, tier, recorded))
        starts[_path(item)] = min(starts.get(_path(item), key), key)
    # stable: a file's items stay together and in their order (a notebook's cells above all); xdist gives
    # each worker the next file when it is free, so the longest files start first and the short ones fill
    # in at the end, and the workers end together
    items.sort(key=lambda item: starts[_path(item)])
    config.stash[TIERS_KEY] = {
        item.nodeid: tuple(dict.fromkeys(m.name for m in item.iter_markers() if m.name in TIERS))
        for item in items
    }
