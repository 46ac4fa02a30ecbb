"""Smoke test of benchmarks/bench_widgets.py on tiny data: it runs bare and with three live charts and
reports each figure (speed and redraw rates are the benchmark's business, not a test's)."""

from __future__ import annotations

from typing import Any

import pytest


def test_bench_widgets_small_run_reports_every_figure(
    load_benchmark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    load_benchmark("bench_widgets").main(["--copies", "2", "--repeat", "1", "--batch-size", "20000"])
    printed = capsys.readouterr().out
    assert "100,000 events, batch size 20,000" in printed
    assert "without charts:" in printed and "with 3 charts:" in printed and "ratio:" in printed
    for chart in ("WindowChart", "WatermarkDebugger", "AnomalyChart"):
        assert f"{chart} redraws/s:" in printed
