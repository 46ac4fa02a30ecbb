"""Smoke test of benchmarks/bench_widgets.py on tiny data: it runs bare and with three live charts and
reports each figure (speed and redraw rates are the benchmark's business, not a test's)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_widgets.py"


def test_bench_widgets_small_run_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_widgets", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_widgets"] = module
    try:
        spec.loader.exec_module(module)
        module.main(["--copies", "2", "--repeat", "1", "--batch-size", "20000"])
    finally:
        del sys.modules["bench_widgets"]
    printed = capsys.readouterr().out
    assert "100,000 events, batch size 20,000" in printed
    assert "without charts:" in printed and "with 3 charts:" in printed and "ratio:" in printed
    for chart in ("WindowChart", "WatermarkDebugger", "AnomalyChart"):
        assert f"{chart} redraws/s:" in printed
