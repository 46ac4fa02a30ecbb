"""Smoke test of benchmarks/bench_detectors.py on tiny data: every output agrees with river's (speed unchecked)."""

from __future__ import annotations

import datetime as dt
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


def test_the_bare_river_velocity_loop_counts_each_key_apart(load_benchmark: Any) -> None:
    # river 0.22's TimeRolling updates the Sum it is given: one Sum for all keys counted every key's events
    t0 = dt.datetime(2024, 1, 1)
    times = [t0 + dt.timedelta(seconds=s) for s in (0, 1, 2, 3, 700)]
    counts = load_benchmark("bench_detectors").river_velocity(
        ["a", "b", "a", "b", "a"], times, dt.timedelta(minutes=10)
    )
    assert counts == [1, 1, 2, 2, 1]
