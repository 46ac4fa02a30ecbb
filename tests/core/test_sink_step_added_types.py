"""Sinks type the columns that steps add (window results, rules) by what they hold, also where the first
batch or a part holds none of their values; the window result of the missing key reaches DuckDB.

A window's ``first_s`` of a string field missing from the first window's events was written as a
``double`` (or ``null``) Parquet part and a DuckDB ``DOUBLE`` column: the directory could no longer be
read as one table, and DuckDB rejected every later window. A rule's ``rule`` column (missing until a row
alerts) did the same; a recording whose first session never saw a field could not be replayed. The
window result of the missing key (the key None) went to ``<table>_rejected`` (NULL in a PRIMARY KEY).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, ParquetSink, Pipeline, TumblingWindow, agg
from streamlab._coltypes import declared_type
from streamlab.clock import ManualClock
from streamlab.detectors import ThresholdRule
from streamlab.io import Upstream
from streamlab.recording import record, replay_recording
from streamlab.testing import ListSource

from ._duck import column_types

SCHEMA = {
    "k": "string",
    "s": "string",
    "seen": "timestamp",
    "n": "int64",
    "ok": "bool",
    "props": "json",
    "timestamp": "timestamp",
}
AGGS = (
    agg.first("s"),
    agg.last("s"),
    agg.first("seen"),
    agg.last("n"),
    agg.first("ok"),
    agg.first("props"),
    agg.count(),
    agg.min("n"),
)
DUCK_TYPES = {
    "k": "VARCHAR",
    "window_start": "TIMESTAMP WITH TIME ZONE",
    "first_s": "VARCHAR",
    "last_s": "VARCHAR",
    "first_seen": "TIMESTAMP WITH TIME ZONE",
    "last_n": "BIGINT",
    "first_ok": "BOOLEAN",
    "first_props": "JSON",
    "count": "BIGINT",
    "min_n": "DOUBLE",
}
VALUES: dict[str, Any] = {
    "s": st.text(max_size=3),
    "seen": st.sampled_from(["2024-01-01T00:00:00Z", "2030-06-01T12:00:00.5Z"]),
    "n": st.integers(-(2**40), 2**40),
    "ok": st.booleans(),
    "props": st.one_of(
        st.fixed_dictionaries({"page": st.text(max_size=2)}), st.lists(st.integers(0, 9), max_size=2)
    ),
}
# one event a minute (one window each); the first window never has the optional fields
windows = st.lists(
    st.fixed_dictionaries({}, optional=dict(VALUES.items())),
    min_size=1,
    max_size=5,
).map(lambda rows: [{}, *rows])


def lines(rows: list[dict[str, Any]]) -> list[str]:
    return [
        json.dumps({"k": "a", "timestamp": f"2024-01-01T00:{i:02d}:00Z", **row}) for i, row in enumerate(rows)
    ]


def as_none(values: Any) -> list[Any]:
    """Values with every missing one (None, NaN) as None: pandas reads a missing text as either."""
    return [None if pd.isna(v) else v for v in values]


def window_pipeline(rows: list[dict[str, Any]]) -> tuple[Pipeline, Any]:
    p = Pipeline(ListSource(lines(rows), batch_size=1))
    return p, p.parse(SCHEMA).window(TumblingWindow("1m"), key="k").agg(*AGGS)


def test_window_results_declare_the_types_of_their_columns() -> None:
    p, w = window_pipeline([{}])
    found = {c: declared_type(p, w.ref, c) for c in DUCK_TYPES}
    assert found == {
        "k": ("string", "parse"),
        "window_start": ("timestamp", "window"),
        "first_s": ("string", "parse"),
        "last_s": ("string", "parse"),
        "first_seen": ("timestamp", "parse"),
        "last_n": ("int64", "parse"),
        "first_ok": ("bool", "parse"),
        "first_props": ("json", "parse"),
        "count": ("int64", "window"),
        "min_n": ("float64", "window"),
    }
    rule = p.parse(SCHEMA, step_id="p2").apply(ThresholdRule("big", column="n", op=">", value=1))
    assert [declared_type(p, rule.ref, c) for c in ("rule", "is_alert", "n")] == [
        ("string", rule.step_id),
        ("bool", rule.step_id),
        ("int64", "p2"),
    ]


@settings(max_examples=25, deadline=None)
@given(windows)
def test_duckdb_window_columns_typed_when_the_first_window_has_no_value(rows: list[dict[str, Any]]) -> None:
    p, w = window_pipeline(rows)
    sink = DuckDBSink(":memory:", "w")
    w.to(sink)
    p.run(commit_every="0s")
    con = sink.connection()
    types = column_types(con, "w")
    assert {c: types[c] for c in DUCK_TYPES} == DUCK_TYPES
    stored = con.sql("select first_s, last_n, first_ok from w order by window_start").fetchall()
    assert stored == [(r.get("s"), r.get("n"), r.get("ok")) for r in rows]  # every window, none rejected
    assert "w_rejected" not in {t[0] for t in con.sql("show tables").fetchall()}


@settings(max_examples=20, deadline=None)
@given(windows)
def test_parquet_window_parts_read_as_one_when_the_first_window_has_no_value(
    tmp_path_factory: Any, rows: list[dict[str, Any]]
) -> None:
    out: Path = tmp_path_factory.mktemp("w")
    p, w = window_pipeline(rows)
    w.to(ParquetSink(out))
    p.run(commit_every="0s")  # a part per window
    stored = pq.read_table(str(out)).sort_by("window_start").to_pylist()
    assert [(r["first_s"], r["last_n"], r["first_ok"]) for r in stored] == [
        (r.get("s"), r.get("n"), r.get("ok")) for r in rows
    ]
    # a json field's value is JSON text in every part, whatever its shape
    assert [r["first_props"] for r in stored] == [
        json.dumps(r["props"], separators=(",", ":")) if "props" in r else None for r in rows
    ]
    read = duckdb.sql(f"select first_s from '{out}/*.parquet' order by window_start").fetchall()
    assert read == [(r.get("s"),) for r in rows]


def test_parquet_rule_column_typed_before_any_row_alerts(tmp_path: Path) -> None:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    events = pd.DataFrame({"amount": [5.0, 5000.0], "timestamp": [t0, t0]})
    p = Pipeline(ListSource(events, batch_size=1))
    p.stream.apply(ThresholdRule("big", column="amount", op=">", value=1000)).to(ParquetSink(tmp_path))
    p.run(commit_every="0s")
    assert len(list(tmp_path.glob("part-*.parquet"))) == 2
    frame = pd.read_parquet(tmp_path).sort_values("amount")
    assert as_none(frame["rule"]) == [None, "big"]
    assert frame["is_alert"].tolist() == [False, True]


def test_a_recording_replays_when_a_field_was_always_missing_in_its_first_session(tmp_path: Path) -> None:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    first = ListSource([{"id": 1, "note": None, "timestamp": t0}, {"id": 2, "note": None, "timestamp": t0}])
    record(first, tmp_path, clock=ManualClock("2030-01-01T00:00:00Z"))
    record(
        ListSource([{"id": 3, "note": "vip", "timestamp": t0}]),
        tmp_path,
        clock=ManualClock("2030-01-01T01:00:00Z"),
    )
    frame = replay_recording(tmp_path, speed=None).frame
    assert frame["id"].tolist() == [1, 2, 3]
    assert as_none(frame["note"]) == [None, None, "vip"]
    assert as_none(pd.read_parquet(tmp_path)["note"]) == [None, None, "vip"]  # readable as one


def test_a_recording_with_a_null_typed_part_replays(tmp_path: Path) -> None:
    """Recordings made before all-missing columns were written as text have Arrow ``null`` parts."""
    pd.DataFrame(
        {"note": [None], "_arrival_time": [pd.Timestamp(0, tz="UTC")], "_arrival_seq": [0]}
    ).to_parquet(tmp_path / "part-000000.parquet")
    assert str(pq.read_schema(tmp_path / "part-000000.parquet").field("note").type) == "null"
    pd.DataFrame(
        {"note": ["vip"], "_arrival_time": [pd.Timestamp(1, tz="UTC")], "_arrival_seq": [1]}
    ).to_parquet(tmp_path / "part-000001.parquet")
    assert as_none(replay_recording(tmp_path, speed=None).frame["note"]) == [None, "vip"]


def none_key_run(path: Path, types: list[str | None]) -> DuckDBSink:
    rows = [json.dumps({"event_type": t, "timestamp": "2024-01-01T00:00:00Z"}) for t in types]
    p = Pipeline(ListSource(rows, batch_size=2))
    p.parse({"event_type": "string", "timestamp": "timestamp"}).window(
        TumblingWindow("1m"), key="event_type"
    ).agg(agg.count()).to(DuckDBSink(path, "counts"))
    p.run()
    return DuckDBSink(path, "counts")


@pytest.mark.parametrize("runs", [1, 2])
def test_the_window_result_of_the_missing_key_is_stored_and_upserted(tmp_path: Path, runs: int) -> None:
    path = tmp_path / "db.duckdb"
    for _ in range(runs):  # a re-run replaces its rows, the None key's too
        db = none_key_run(path, ["click", "click", None, None, None])
    frame = db.read().sort_values("count")
    assert list(zip(as_none(frame["event_type"]), frame["count"])) == [("click", 2), (None, 3)]
    tables = {t[0] for t in db.query("show tables").values.tolist()}
    assert "counts_rejected" not in tables


def test_the_missing_key_of_a_window_is_one_key_across_batches(tmp_path: Path) -> None:
    """Early results or a changed result of the None key replace the earlier row (NULL matches NULL)."""
    path = tmp_path / "db.duckdb"
    sink = DuckDBSink(path, "counts")
    w = sink.open_for(Upstream(window_keys=("k",)))
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    base = {"window_start": [t0, t0], "window_end": [t0, t0]}
    w.write_batch(pd.DataFrame({"k": ["a", None], **base, "n": [1, 1]}))
    w.write_batch(pd.DataFrame({"k": [None, None], **base, "n": [2, 3]}))
    w.flush()
    w.commit()
    got = sink.read().sort_values("n")
    assert list(zip(as_none(got["k"]), got["n"])) == [("a", 1), (None, 3)]


def test_a_table_made_with_a_primary_key_rejects_the_missing_key_without_failing(tmp_path: Path) -> None:
    """A results table made by an earlier version (PRIMARY KEY, no NULL) keeps the other rows and sends
    the None key's row to ``<table>_rejected`` with DuckDB's reason, as documented."""
    sink = DuckDBSink(tmp_path / "db.duckdb", "counts")
    sink.connection().execute(
        "create table counts (k VARCHAR, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, n BIGINT, "
        "PRIMARY KEY (k, window_start, window_end))"
    )
    w = sink.open_for(Upstream(window_keys=("k",)))
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    w.write_batch(
        pd.DataFrame({"k": ["a", None], "window_start": [t0, t0], "window_end": [t0, t0], "n": [1, 2]})
    )
    w.flush()
    w.commit()
    assert sink.read()[["k", "n"]].values.tolist() == [["a", 1]]
    rejected = sink.rejected_sink().read()
    assert len(rejected) == 1 and "NOT NULL" in rejected["reject_reason"].iloc[0]
    assert json.loads(rejected["row"].iloc[0])["n"] == 2
