"""Sinks type a parsed field by its declared type, also where a batch or a part holds none of its values.

A DuckDB table typed its columns from the first batch, so a bool field missing from every event of the
first batch became VARCHAR (``true`` stored as the text ``'true'``); a Parquet part whose rows all lacked a
bool or category field typed it ``null``, and a directory with such a part and another could no longer
be read (``Unsupported cast from bool to null``). A category's dictionary index width also varied by part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, ListSink, ParquetSink, Pipeline
from streamlab.testing import ListSource

from ._duck import column_types

SCHEMA = {
    "event_id": "string",
    "timestamp": "timestamp",
    "flag": "bool",
    "color": "category",
    "n": "int64",
    "x": "float64",
    "s": "string",
    "at": "timestamp",
}
WANT = {
    "event_id": "VARCHAR",
    "flag": "BOOLEAN",
    "color": "VARCHAR",
    "n": "BIGINT",
    "x": "DOUBLE",
    "s": "VARCHAR",
    "at": "TIMESTAMP WITH TIME ZONE",
}
VALUES: dict[str, Any] = {
    "flag": st.booleans(),
    "color": st.sampled_from([f"c{i}" for i in range(200)]),  # over 127 categories: a wider index
    "n": st.integers(-(2**63), 2**63 - 1),
    "x": st.floats(allow_nan=False, allow_infinity=False),
    "s": st.text(max_size=5),
    "at": st.sampled_from(["2024-01-01T00:00:00Z", "2030-06-01T12:00:00.5Z"]),
}
events = st.lists(
    st.fixed_dictionaries({}, optional={name: strategy for name, strategy in VALUES.items()}),
    min_size=1,
    max_size=12,
)


def lines(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"value": json.dumps({"event_id": f"e{i:03d}", "timestamp": "2024-01-01T00:00:00Z", **row})}
        for i, row in enumerate(rows)
    ]


@settings(max_examples=40, deadline=None)
@given(events, st.integers(1, 4))
def test_duckdb_columns_take_their_declared_types_whatever_the_first_batch(
    rows: list[dict[str, Any]], batch_size: int
) -> None:
    p = Pipeline(ListSource(lines(rows), batch_size=batch_size))
    sink = DuckDBSink(":memory:", "events")
    p.parse(SCHEMA).to(sink)
    p.run()
    con = sink.connection()
    types = column_types(con, "events")
    assert {c: types[c] for c in WANT} == WANT
    stored = con.sql("select flag, n, s from events order by event_id").fetchall()
    assert stored == [(r.get("flag"), r.get("n"), r.get("s")) for r in rows]


@settings(max_examples=25, deadline=None)
@given(events, st.integers(1, 3))
def test_parquet_parts_read_as_one_whatever_each_part_holds(
    tmp_path_factory: Any, rows: list[dict[str, Any]], batch_size: int
) -> None:
    out: Path = tmp_path_factory.mktemp("parts")
    p = Pipeline(ListSource(lines(rows), batch_size=batch_size))
    p.parse(SCHEMA).to(ParquetSink(out))
    p.run(commit_every=0)  # a part per batch
    assert len(pd.read_parquet(out)) == len(rows)  # one schema: the parts agree
    # (read by Arrow: pandas would read an int column with a missing value as float64)
    stored = pq.read_table(str(out)).sort_by("event_id").to_pylist()
    assert [(r["flag"], r["color"], r["n"]) for r in stored] == [
        (r.get("flag"), r.get("color"), r.get("n")) for r in rows
    ]
    read = duckdb.sql(f"select flag, color from '{out}/*.parquet' order by event_id").fetchall()
    assert read == [(r.get("flag"), r.get("color")) for r in rows]


@settings(max_examples=30, deadline=None)
@given(events, st.integers(1, 4))
def test_collected_frames_keep_a_category_field_categorical_whatever_the_batches(
    rows: list[dict[str, Any]], batch_size: int
) -> None:
    """pandas made a column object when two batches' categories differed (batch sizes 1 and 2 gave
    object, 3 gave a Categorical)."""
    p = Pipeline(ListSource(lines(rows), batch_size=batch_size))
    sink = ListSink()
    parsed = p.parse(SCHEMA)
    parsed.to(sink)
    parsed.select("event_id", "color", step_id="copy")  # collected by the run
    result = p.run()
    for frame in (sink.frame(), result.outputs["copy"]):
        assert isinstance(frame["color"].dtype, pd.CategoricalDtype)
        assert [None if pd.isna(v) else v for v in frame["color"]] == [r.get("color") for r in rows]
