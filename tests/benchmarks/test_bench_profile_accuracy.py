"""Smoke run of benchmarks/bench_profile_accuracy.py on tiny streams: every case runs and reports (accuracy
needs the full sizes, so it is not checked here)."""

from __future__ import annotations

from typing import Any

import pytest


def test_smoke_run_reports_every_case(load_benchmark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_benchmark("bench_profile_accuracy").main(["--smoke"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| stream |"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")]
    rows = [
        dict(zip(columns, (c.strip() for c in line.strip("|").split("|")))) for line in lines[header + 2 :]
    ]
    # synthetic delays x partitions, the generator's three settings, two streams with a silent partition
    assert len(rows) == 9 + 3 + 2
    assert "synthetic pareto delay, 8 partition(s)" in {r["stream"] for r in rows}
    for column in ("predicted late", "full run late"):
        shares = [float(r[column].rstrip("%")) for r in rows]
        assert all(0 <= x <= 100 for x in shares), column
    assert {r["within target"] for r in rows} <= {"yes", "NO"} and all(r["delay"] for r in rows)
