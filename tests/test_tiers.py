"""Every collected test has exactly one tier (unit, integration, browser, notebooks), given by conftest.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIERS = {"unit", "integration", "browser", "notebooks"}


def collected_tiers(config: pytest.Config) -> dict[str, tuple[str, ...]]:
    """The tiers the root conftest gave every item of this session, before ``-m`` deselected any."""
    for plugin in config.pluginmanager.get_plugins():
        key = getattr(plugin, "TIERS_KEY", None)
        if key is not None and key in config.stash:
            return dict(config.stash[key])
    raise AssertionError("the root conftest.py did not record the tiers: was it loaded?")


def test_every_collected_item_has_exactly_one_tier(request: pytest.FixtureRequest) -> None:
    tiers = collected_tiers(request.config)
    assert request.node.nodeid in tiers
    wrong = {nodeid: found for nodeid, found in tiers.items() if len(found) != 1 or found[0] not in TIERS}
    assert not wrong, f"{len(wrong)} items without exactly one tier, e.g. {list(wrong.items())[:5]}"


def test_tiers_follow_location_and_use(request: pytest.FixtureRequest) -> None:
    tiers = {nodeid: found[0] for nodeid, found in collected_tiers(request.config).items()}
    assert tiers[request.node.nodeid] == "unit"
    for nodeid, tier in tiers.items():
        path = nodeid.split("::", 1)[0]
        assert (tier == "notebooks") == path.endswith(".ipynb"), nodeid
        if path.startswith(("tests/faults/", "tests/connectors/test_kafka.py", "tests/export/test_spark")):
            assert tier == "integration", nodeid
        if path.startswith(("tests/widgets/test_browser.py", "tests/docs/")):
            assert tier == "browser", nodeid
        if path.startswith("tests/core/"):
            assert tier == "unit", nodeid


def test_a_tier_is_selected_with_dash_m() -> None:
    """``pytest -m`` selects by tier from the command line, notebooks and doctests included."""
    files = [
        "notebooks/02_windows_watermarks_late_data.ipynb",  # notebooks
        "tests/widgets/test_voila_suite.py",  # browser
        "tests/connectors/test_redis.py",  # integration (redis fixtures)
        "streamlab/clock.py",  # unit (doctests)
    ]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "--nbval-lax"]
    out = subprocess.run(
        [*cmd, "-m", "notebooks or browser", *files], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    selected = {line.split("::", 1)[0] for line in out.stdout.splitlines() if "::" in line}
    assert selected == {files[0], files[1]}, out.stdout[-3000:]


def test_files_stay_whole_for_xdist_and_in_order(request: pytest.FixtureRequest) -> None:
    """scripts/test.sh gives each worker whole files (a notebook's cells share one kernel), in this order."""
    assert "--dist loadfile --no-loadscope-reorder" in (ROOT / "scripts" / "test.sh").read_text()
    seen: list[str] = []
    for item in request.session.items:
        path = item.nodeid.split("::", 1)[0]
        if not seen or seen[-1] != path:
            assert path not in seen, f"the items of {path} are not together"
            seen.append(path)
    assert seen


def test_a_module_collected_before_the_tests_is_the_one_they_import() -> None:
    # With the doctests of a lazily imported module collected first, pytest's importlib mode ran a second
    # copy of it; the step kinds' round trip then pickled a detector class that was "not the same object"
    # as its module's (18 failures). The root conftest imports every module before collection.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "streamlab/detectors/_common.py", "tests/core/test_step_kinds.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_recorded_durations_order_the_files_longest_first(tmp_path: Path) -> None:
    """scripts/test_durations.py reads a CI log's first --durations report into tests/durations.json,
    which conftest.py orders the files by (longest first; the browser tier's report is not read)."""
    log = tmp_path / "ci.log"
    log.write_text(
        "== slowest durations ==\n3.00s call     tests/b.py::t\n1.50s setup    tests/a.py::u[1]\n"
        "0.50s call     tests/a.py::u[1]\n=== short test summary ===\n"
        "== slowest durations ==\n9.00s call     tests/widgets/test_browser.py::t\n"
    )
    out = tmp_path / "durations.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "test_durations.py"), str(log), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"tests/a.py": 2.0, "tests/b.py": 3.0}
    recorded = json.loads((ROOT / "tests" / "durations.json").read_text())
    assert recorded and all(isinstance(s, float | int) and s >= 0 for s in recorded.values())
