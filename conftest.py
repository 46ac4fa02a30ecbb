"""Test tiers and their scheduling, for every test pytest collects (tests, doctests and notebooks).

Each item gets exactly one tier marker, from where it lives and what it uses, so no test file lists it:

* ``notebooks``: a notebook cell run by nbval (``--nbval-lax``);
* ``browser``: drives JupyterLab, Voila or the documentation site in Chromium (marked ``browser``);
* ``integration``: starts a local server or runs an engine: every test of a file that uses a server
  fixture or is marked ``services`` (brokers, emulators, moto, redis, kinesalite, local-bigquery), the
  fault suite, and the files that run Beam's DirectRunner, Spark, Flink or pip; a doctest that starts a
  local server;
* ``unit``: everything else (pure tests and doctests): no server, no engine, no browser.

Run one with ``pytest -m unit`` (see the README). ``scripts/test.sh`` runs all but ``browser`` on both
cores with pytest-xdist (``--dist loadgroup``), then ``browser`` alone: every item also gets an
``xdist_group``, so what must stay together does: the cells of a notebook (they share a kernel, in
order), the tests of an integration file (they share its servers), of a file with a module- or
session-scoped fixture of its own, and every browser test (one at a time: they time a live page).
"""

from __future__ import annotations

import os
import re

import pytest

TIERS = ("unit", "integration", "browser", "notebooks")

# Files whose tests run an engine or an installer rather than a server fixture (those are found by use).
_INTEGRATION_PATHS = (
    "tests/faults/",  # brokers it freezes, kills and restarts
    "tests/export/test_beam_export.py",  # Beam's DirectRunner
    "tests/export/test_lambda_export.py",  # moto and Beam
    "tests/export/test_dedup_parity.py",  # Beam's DirectRunner
    "tests/export/test_parse_parity.py",  # the generated Beam module run as a program
    "tests/export/test_spark_export.py",  # Spark's local mode (a JVM)
    "tests/export/test_flink_export.py",  # PyFlink's mini-cluster (a JVM)
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


def _own_broad_fixture(item: pytest.Item) -> bool:
    """Whether the item uses a module/session-scoped fixture defined in the tests (not by a plugin)."""
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        for fixturedef in defs:
            if fixturedef.scope != "function" and fixturedef.baseid:
                return True
    return False


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


def _order(item: pytest.Item, tier: str) -> int:
    """Start order: long groups first, so that two workers end together; the docs site last."""
    if "tests/docs/" in _path(item):
        return 9  # scripts/test.sh builds the site in the background while the others run
    return {"browser": 0, "notebooks": 1, "integration": 1}.get(
        tier, 2 if item.get_closest_marker("slow") else 3
    )


TIERS_KEY = pytest.StashKey[dict[str, tuple[str, ...]]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every item its tier and xdist group; keep the tiers of all items for tests/test_tiers.py."""
    integration_files = {_path(item) for item in items if _uses_server(item)}
    broad_files = {_path(item) for item in items if _own_broad_fixture(item)}
    tiers: dict[str, str] = {}
    xdist = config.pluginmanager.hasplugin("xdist")  # its marker exists only with it
    for item in items:
        tier = tiers[item.nodeid] = tier_of(item, integration_files)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))
        path = _path(item)
        if tier == "browser":
            group = "browser"
        elif tier != "unit" or path in broad_files:
            group = path
        else:
            group = ""  # independent: scheduled one by one
        if group and xdist:
            item.add_marker(pytest.mark.xdist_group(group))
    order = {item.nodeid: _order(item, tiers[item.nodeid]) for item in items}
    items.sort(key=lambda item: order[item.nodeid])  # stable: file and cell order kept within a group
    config.stash[TIERS_KEY] = {
        item.nodeid: tuple(dict.fromkeys(m.name for m in item.iter_markers() if m.name in TIERS))
        for item in items
    }
