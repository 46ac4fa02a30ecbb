"""A ParquetSink that no row reached left an empty directory: ``pd.read_parquet(dir)`` gave a frame
without columns (``df["v"]`` a KeyError) and DuckDB's ``SELECT * FROM 'dir/*.parquet'`` found no file.
Where every column's type is declared upstream, the run now ends with one part of no rows holding those
columns; otherwise nothing is written, as before (the same rule as DuckDBSink's empty table)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from streamlab import ManualClock, ParquetSink, Pipeline, TumblingWindow, agg
from streamlab.testing import ListSource

RECORD = b'{"user_id": "u", "timestamp": "2024-01-01T00:00:00Z", "v": 1.5, "props": {"a": 1}}'
SCHEMA = {"user_id": "string", "timestamp": "timestamp", "v": "float64", "props": "json"}


def run(tmp_path: Path, keep: str, runs: int = 1) -> None:
    for _ in range(runs):
        p = Pipeline(ListSource([RECORD]))
        kept = p.parse(SCHEMA).filter(keep)
        kept.to(ParquetSink(tmp_path / "events"), step_id="events")
        kept.window(TumblingWindow("1m"), key="user_id").agg(agg.count()).to(
            ParquetSink(tmp_path / "windows"), step_id="windows"
        )
        kept.map_many(lambda batch: batch).to(ParquetSink(tmp_path / "hidden"), step_id="hidden")
        p.run(clock=ManualClock(0))


def test_a_quiet_run_leaves_the_declared_columns_to_read(tmp_path: Path) -> None:
    run(tmp_path, "user_id == 'nobody'")
    events = pd.read_parquet(tmp_path / "events")
    assert events.empty and list(events.columns) == ["user_id", "timestamp", "v", "props"]
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]" and events["v"].dtype == "float64"
    described = duckdb.sql(f"DESCRIBE SELECT * FROM '{tmp_path / 'windows'}/*.parquet'").fetchall()
    assert [c[0] for c in described] == ["user_id", "window_start", "window_end", "count"]
    assert list((tmp_path / "hidden").iterdir()) == []  # a function hides the types: nothing, as before


def test_later_rows_read_together_with_the_empty_part(tmp_path: Path) -> None:
    run(tmp_path, "user_id == 'nobody'")
    run(tmp_path, "v > 0", runs=2)
    quiet_then_busy = pd.read_parquet(tmp_path / "events")
    busy = tmp_path / "busy"
    busy.mkdir()
    run(busy, "v > 0", runs=2)
    pd.testing.assert_frame_equal(quiet_then_busy, pd.read_parquet(busy / "events"))
    parts = sorted((tmp_path / "events").glob("part-*.parquet"))
    assert len(parts) == 3  # only the first run's is empty, and its columns are typed as a busy part's
    for directory in ("events", "windows"):
        empty, full = sorted((tmp_path / directory).glob("part-*.parquet"))[:2]
        assert pq.read_schema(empty).remove_metadata() == pq.read_schema(full).remove_metadata()
