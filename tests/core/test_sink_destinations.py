"""Two file sinks writing the same file, directory or table in one pipeline (tester4 finding 27): their
writers overwrote each other's parts (two ParquetSinks both wrote ``part-000000.parquet``) and rows were
silently lost. Such a pipeline is refused when the second sink is attached, naming both steps and the fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from streamlab import DuckDBSink, JsonLinesSink, ParquetSink, Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.io import Sink
from streamlab.recording import RecordingSink
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def pipeline() -> Pipeline:
    return Pipeline(ListSource(pd.DataFrame({"id": range(10), "timestamp": [T0] * 10}), batch_size=3))


CLASHES: dict[str, Callable[[Path], tuple[Sink, Sink]]] = {
    "parquet_same_dir": lambda d: (ParquetSink(d / "out"), ParquetSink(d / "out")),
    "parquet_other_spelling": lambda d: (
        ParquetSink(d / "out"),
        ParquetSink(str(d / "x" / ".." / "out") + "/"),
    ),
    "jsonl_same_file": lambda d: (JsonLinesSink(d / "o.jsonl"), JsonLinesSink(d / "o.jsonl")),
    "duckdb_same_table": lambda d: (
        DuckDBSink(d / "o.duckdb", "t"),
        DuckDBSink(d / "o.duckdb", "t", key=None),
    ),
    "duckdb_rejected_table": lambda d: (
        DuckDBSink(d / "o.duckdb", "t"),
        DuckDBSink(d / "o.duckdb", "t_rejected"),
    ),
    # DuckDB's names are case-insensitive, and a table without schema is in main
    "duckdb_table_other_case": lambda d: (
        DuckDBSink(d / "o.duckdb", "Counts"),
        DuckDBSink(d / "o.duckdb", "counts"),
    ),
    "duckdb_main_schema": lambda d: (
        DuckDBSink(d / "o.duckdb", "main.counts"),
        DuckDBSink(d / "o.duckdb", "counts"),
    ),
    "jsonl_inside_parquet_dir": lambda d: (ParquetSink(d / "out"), JsonLinesSink(d / "out" / "x.jsonl")),
    "parquet_and_recording": lambda d: (RecordingSink(d / "out"), ParquetSink(d / "out")),
}


@pytest.mark.parametrize("case", list(CLASHES))
def test_two_sinks_on_one_destination_are_refused_naming_both_steps(tmp_path: Path, case: str) -> None:
    first, second = CLASHES[case](tmp_path)
    p = pipeline()
    p.stream.filter("id % 2 == 0").to(first, step_id="evens")
    with pytest.raises(PipelineConfigError) as e:
        p.stream.filter("id % 2 == 1").to(second, step_id="odds")
    msg = str(e.value)
    assert "step 'odds'" in msg and "step 'evens'" in msg and "union" in msg
    assert "odds" not in p.steps  # nothing half-added


def test_one_sink_object_attached_twice_is_refused(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "out")
    p = pipeline()
    p.stream.to(sink)
    with pytest.raises(PipelineConfigError, match="writes too"):
        p.stream.filter("id > 3").to(sink)


SEPARATE: dict[str, Callable[[Path], tuple[Sink, Sink]]] = {
    "parquet_sibling_dirs": lambda d: (ParquetSink(d / "out"), ParquetSink(d / "out2")),
    "duckdb_other_tables": lambda d: (
        DuckDBSink(d / "o.duckdb", "evens"),
        DuckDBSink(d / "o.duckdb", "odds"),
    ),
    "duckdb_in_memory": lambda d: (DuckDBSink(":memory:", "t"), DuckDBSink(":memory:", "t")),  # two databases
    "jsonl_other_files": lambda d: (JsonLinesSink(d / "a.jsonl"), JsonLinesSink(d / "a.jsonl.2")),
}


@pytest.mark.parametrize("case", list(SEPARATE))
def test_sinks_on_separate_destinations_all_get_their_rows(tmp_path: Path, case: str) -> None:
    first, second = SEPARATE[case](tmp_path)
    p = pipeline()
    p.stream.filter("id % 2 == 0").to(first)
    p.stream.filter("id % 2 == 1").to(second)
    p.run()
    if isinstance(first, ParquetSink):
        got = [pd.read_parquet(s.path)["id"].tolist() for s in (first, second)]
    elif isinstance(first, DuckDBSink):
        assert isinstance(second, DuckDBSink)
        got = [first.read(order_by="id")["id"].tolist(), second.read(order_by="id")["id"].tolist()]
    else:
        assert isinstance(first, JsonLinesSink) and isinstance(second, JsonLinesSink)
        got = [pd.read_json(s.path, lines=True)["id"].tolist() for s in (first, second)]
    assert got == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]


def test_the_union_the_error_suggests_keeps_every_row(tmp_path: Path) -> None:
    p = pipeline()
    p.stream.filter("id % 2 == 0").union(p.stream.filter("id % 2 == 1")).to(ParquetSink(tmp_path / "out"))
    p.run()
    assert sorted(pd.read_parquet(tmp_path / "out")["id"].tolist()) == list(range(10))
    assert len(os.listdir(tmp_path / "out")) >= 1
