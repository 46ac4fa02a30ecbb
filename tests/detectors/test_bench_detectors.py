"""Smoke test of benchmarks/bench_detectors.py on tiny data: every output agrees with river's (speed unchecked)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_detectors.py"


def test_bench_detectors_small_run_agrees_with_river(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_detectors", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_detectors"] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--small"]) == 0
    finally:
        del sys.modules["bench_detectors"]
    printed = capsys.readouterr().out
    assert printed.count("outputs agree: True") == 11  # 10 rows and the velocity count against river
    assert "outputs agree: False" not in printed
    assert "notebook 08 pipeline" in printed
