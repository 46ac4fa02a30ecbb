"""Shared test settings: hypothesis profiles sized for a 2-core CI machine; the benchmark scripts' loader."""

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

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
