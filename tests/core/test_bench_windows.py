"""Smoke run of benchmarks/bench_windows.py on small data: every workload runs and agrees with pandas."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bench_windows")


def test_smoke_run_checks_every_workload_against_pandas(bench, capsys):
    rows = bench.main(["--smoke"])  # each workload asserts its output equals the pandas answer
    workloads = {r["workload"].split(":")[0] for r in rows}
    assert any(w.startswith("W1") for w in workloads) and any(w.startswith("W2") for w in workloads)
    assert any(w.startswith("JSON lines file") for w in workloads) and "many keys" in workloads
    assert any("default schema" in w for w in workloads)  # properties as a Python object
    assert len(rows) == 17 and all(r["M events/s"] > 0 for r in rows)
    # the first run's time beside the best, where one-time costs show (all but sessions and dedup)
    timed = [r for r in rows if not r["implementation"].startswith(("sessions", "dedup"))]
    assert len(timed) == 13 and all(r["first_s"] > 0 for r in timed)
    out = capsys.readouterr().out
    assert "| workload | implementation |" in out and "| first run s |" in out


def test_readme_table_is_replaced_between_the_markers(bench, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.BEGIN}\nold table\n{bench.END}\nafter\n")
    bench.write_readme("| new | table |", readme)
    assert readme.read_text() == f"intro\n{bench.BEGIN}\n| new | table |\n{bench.END}\nafter\n"


def test_the_pane_based_ceiling_counts_every_window_of_every_event(bench):
    df = bench.loaded_events(3_000, 50)
    codes, ts, _ = bench.numpy_prep(df)
    windows = bench.numpy_w2_panes(codes, ts, 700, len(bench.TYPES), 5)
    want = bench.pandas_windows(df, "event_type", 300, 60)
    assert int(windows.sum()) == int(want["count"].sum()) == 5 * len(df)
    assert sorted(windows[windows > 0].tolist()) == sorted(want["count"].tolist())
