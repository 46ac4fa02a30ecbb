"""Shared test settings: hypothesis profiles sized for a 2-core CI machine; the benchmark scripts' loader;
kinesalite (Kinesis with real resharding) for the connector and fault suites."""

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Every run draws the same examples (derandomize), so a red test run names a change, not a lucky draw;
# STREAMLAB_HYPOTHESIS_EXPLORE=1 draws new ones on each run, to look for what the fixed draw misses.
_fixed = not os.environ.get("STREAMLAB_HYPOTHESIS_EXPLORE")
settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=_fixed,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=25, derandomize=_fixed, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def cap_examples(tests: Iterable[Any], cap: int) -> int:
    """Lower to ``cap`` the examples of each hypothesis test function in ``tests`` that asks for more, also
    those a test sets itself (``@settings``); returns how many were lowered. Hypothesis reads a test's
    settings when it runs, from the attribute its ``@given`` wrapper keeps them in.

    ``STREAMLAB_HYPOTHESIS_MAX_EXAMPLES=N`` applies it to every collected test. The Python 3.10 / pandas 2
    run of tests/test_packaging.py uses it: it repeats the tests that found pandas 2 differences on fewer
    draws of the same fixed sequences (the full counts run in the main suite), so that CI stays within its
    time bound.
    """
    lowered = 0
    for fn in tests:
        own = getattr(fn, "_hypothesis_internal_use_settings", None)
        if own is not None and getattr(fn, "is_hypothesis_test", False) and own.max_examples > cap:
            fn._hypothesis_internal_use_settings = settings(own, max_examples=cap)
            lowered += 1
    return lowered


@pytest.fixture(name="cap_examples")
def cap_examples_fixture() -> Callable[[Iterable[Any], int], int]:
    """:func:`cap_examples`, for its own test."""
    return cap_examples


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``STREAMLAB_HYPOTHESIS_MAX_EXAMPLES``: a cap on every property's examples (:func:`cap_examples`)."""
    cap = os.environ.get("STREAMLAB_HYPOTHESIS_MAX_EXAMPLES")
    if cap:
        cap_examples({getattr(item, "obj", None) for item in items} - {None}, int(cap))


# Checkpoint keys and default checkpoint directories (runs of broker sources without checkpoint_dir) go
# to a directory of this test session, never to the user's home; subprocesses inherit it. Each xdist
# worker gets its own (pipelines of two workers may share a name), under the one its controller made.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if "STREAMLAB_STATE_DIR" not in os.environ or "STREAMLAB_TESTS_HOME" in os.environ:
    import tempfile

    _home = os.environ.get("STREAMLAB_TESTS_HOME") or tempfile.mkdtemp(prefix="streamlab-tests-")
    os.environ["STREAMLAB_TESTS_HOME"] = _home
    os.environ["STREAMLAB_STATE_DIR"] = os.path.join(_home, _worker, "state")
    os.environ["STREAMLAB_CONFIG_DIR"] = os.path.join(_home, _worker, "config")


_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_chromium_finder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "streamlab_tests_chromium", Path(__file__).parent / "_chromium.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium the browser tests drive (tests/_chromium.py: Debian's package, or Ubuntu's snap when it
    runs, or ``$STREAMLAB_CHROMIUM``); fails saying what to install on this distribution when none runs."""
    try:
        return str(_load_chromium_finder().find_chromium())
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def _write_fake_uv(folder: Path, log: Path, finds: str | Path, fails: str = "") -> None:
    """A ``uv`` in ``folder`` that logs its arguments and install directory to ``log``, answers
    ``uv python find`` with ``finds``, and fails its ``fails`` command (e.g. "install") for want of a
    network."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "uv"
    path.write_text(
        "#!/bin/sh\n"
        f'echo "$* | $UV_PYTHON_INSTALL_DIR" >> {log}\n'
        f'if [ "$2" = "{fails}" ]; then echo "error: no network" >&2; exit 2; fi\n'
        f'if [ "$2" = find ]; then echo {finds}; fi\n'
    )
    path.chmod(0o755)


@pytest.fixture
def fake_uv() -> Callable[..., None]:
    """Writes a stand-in ``uv`` (see ``_write_fake_uv``), for the tests of the scripts that install a
    Python with it (the local BigQuery server's and PyFlink's)."""
    return _write_fake_uv


@pytest.fixture(scope="session")
def load_benchmark() -> Iterator[Callable[[str], Any]]:
    """``load_benchmark("bench_windows")``: the script ``benchmarks/bench_windows.py`` imported once per
    session under its own name (registered in ``sys.modules``, which its dataclasses need; removed at the
    end), for the benchmarks' smoke tests."""
    loaded: dict[str, Any] = {}

    def load(name: str) -> Any:
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, _BENCHMARKS / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


KINESALITE_VERSION = "3.3.3"
KINESALITE_DIR = Path(os.environ.get("STREAMLAB_CACHE", Path.home() / ".cache" / "streamlab")) / "kinesalite"
# kinesalite's CLI cannot choose the interface and would listen on all of them; bind loopback ourselves.
# kinesalite throws a request's 'error' event: a client that dies mid-request (a pipeline the fault
# tests SIGKILL) made Node exit with "Error: aborted" (ECONNRESET), and every later call was refused.
# A request aborted by its client is that client's loss, not the server's: logged, and the server stays.
KINESALITE_JS = """
const kinesalite = require('kinesalite')
const server = kinesalite({createStreamMs: 20, deleteStreamMs: 20, updateStreamMs: 20, shardLimit: 100})
server.listen(parseInt(process.argv[2], 10), '127.0.0.1')
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)))
process.on('uncaughtException', (err) => {
  if (err && err.code === 'ECONNRESET') { console.error('kinesalite: a client aborted its request'); return }
  console.error(err)
  process.exit(1)
})
"""


def ensure_kinesalite() -> Path:
    """Install kinesalite into the cache directory once (npm registry); fail loudly without Node.js."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "The Kinesis resharding tests need Node.js and npm to run kinesalite "
            "(Debian: apt-get install nodejs npm). moto cannot stand in: it does not route records to "
            "child shards after a split."
        )
    if not (KINESALITE_DIR / "node_modules" / "kinesalite").is_dir():
        KINESALITE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(KINESALITE_DIR), "--no-audit", "--no-fund", "--silent",
             f"kinesalite@{KINESALITE_VERSION}"],
            check=True, timeout=600,
        )  # fmt: skip
    script = KINESALITE_DIR / "serve_loopback.js"
    if not script.exists() or script.read_text() != KINESALITE_JS:
        script.write_text(KINESALITE_JS)
    return script


@pytest.fixture(scope="module")
def kinesalite() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a kinesalite server (in memory) owned by the test module."""
    from streamlab.local import LocalServer

    script = ensure_kinesalite()
    node = shutil.which("node") or "node"
    env = {"NODE_PATH": str(KINESALITE_DIR / "node_modules")}
    with LocalServer("kinesalite", lambda port: [node, str(script), str(port)], env=env) as server:
        yield f"http://127.0.0.1:{server.port}"
    assert not server.running
