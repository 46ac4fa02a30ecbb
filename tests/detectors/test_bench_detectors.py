"""Smoke test of benchmarks/bench_detectors.py on tiny data: every output agrees with river's (speed unchecked)."""

from __future__ import annotations

from typing import Any

import pytest


def test_bench_detectors_small_run_agrees_with_river(
    load_benchmark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_benchmark("bench_detectors").main(["--small"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("outputs agree: True") == 11  # 10 rows and the velocity count against river
    assert "outputs agree: False" not in printed
    assert "notebook 08 pipeline" in printed
