"""A DuckDBSink that no row reached created no table (its column types were unknown without rows), so a
user's ``SELECT`` after a quiet run failed with "Table ... does not exist". Where every column's type is
declared upstream (a parse schema, a source's frame, a window's results), the table is now created at the
end of the run, empty, with those types (and the key a first batch would have given it); where a type is
unknown it stays missing and ``read()`` says why, as before."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from streamlab import DuckDBSink, ManualClock, Pipeline, TumblingWindow, agg
from streamlab.testing import ListSource

T0 = "2024-01-01T00:00:00Z"


def parsed(records: list[bytes]) -> tuple[Pipeline, object]:
    p = Pipeline(ListSource(records))
    schema = {"user_id": "string", "timestamp": "timestamp", "v": "float64", "n": "int64", "ok": "bool"}
    return p, p.parse({**schema, "props": "json"})


def table_types(db: Path, table: str) -> dict[str, str]:
    with duckdb.connect(str(db)) as con:
        return {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()}


def test_a_quiet_run_creates_the_declared_tables_empty_and_typed(tmp_path: Path) -> None:
    db = tmp_path / "o.duckdb"
    p, events = parsed([b'{"user_id": "u", "timestamp": "' + T0.encode() + b'", "v": 1.5}'])
    quiet = events.filter("user_id == 'nobody'")  # type: ignore[attr-defined]
    quiet.to(DuckDBSink(db, "events", key=None), step_id="events")
    quiet.window(TumblingWindow("1m"), key="user_id").agg(agg.count(), agg.sum("v")).to(
        DuckDBSink(db, "analytics.per_minute"), step_id="windows"
    )
    p.run(clock=ManualClock(0))
    assert table_types(db, "events") == {
        "user_id": "VARCHAR",
        "timestamp": "TIMESTAMP WITH TIME ZONE",
        "v": "DOUBLE",
        "n": "BIGINT",
        "ok": "BOOLEAN",
        "props": "JSON",
    }
    assert table_types(db, "analytics.per_minute") == {
        "user_id": "VARCHAR",
        "window_start": "TIMESTAMP WITH TIME ZONE",
        "window_end": "TIMESTAMP WITH TIME ZONE",
        "count": "BIGINT",
        "sum_v": "DOUBLE",
    }
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
        assert con.execute("SELECT sum(count) FROM analytics.per_minute").fetchall() == [(None,)]
    assert DuckDBSink(db, "events").read().empty


def test_the_table_made_empty_takes_a_later_runs_rows_as_a_first_batch_would(tmp_path: Path) -> None:
    """Same types and key as a table made from rows: a later run upserts its window results into it."""
    db_quiet, db_busy = tmp_path / "quiet.duckdb", tmp_path / "busy.duckdb"
    record = b'{"user_id": "u", "timestamp": "' + T0.encode() + b'", "v": 1.5, "props": {"a": [1]}}'
    runs = [(db_quiet, "user_id == 'nobody'")] + [(db, "v > 0") for db in (db_quiet, db_busy) for _ in "ab"]
    for db, keep in runs:
        p, events = parsed([record])
        kept = events.filter(keep)  # type: ignore[attr-defined]
        kept.to(DuckDBSink(db, "events"), step_id="events")
        kept.window(TumblingWindow("1m"), key="user_id").agg(agg.count()).to(DuckDBSink(db, "w"), step_id="w")
        p.run(clock=ManualClock(0))
    for table in ("events", "w"):
        assert table_types(db_quiet, table) == table_types(db_busy, table)
        quiet = DuckDBSink(db_quiet, table).read()
        busy = DuckDBSink(db_busy, table).read()
        pd.testing.assert_frame_equal(quiet, busy)  # events appended twice, window results upserted
    with duckdb.connect(str(db_quiet)) as con, duckdb.connect(str(db_busy)) as con2:
        for table in ("events", "w"):
            keys = "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = ? ORDER BY 1"
            assert con.execute(keys, [table]).fetchall() == con2.execute(keys, [table]).fetchall()


@pytest.mark.parametrize(
    "shape",
    [
        lambda s: s.map_many(lambda batch: batch),  # a function hides the columns
        lambda s: s.with_columns(twice="v * 2"),  # an expression's type is not declared
    ],
)
def test_a_stream_whose_types_are_not_all_known_still_gets_no_table_and_read_says_why(
    tmp_path: Path, shape: object
) -> None:
    db = tmp_path / "o.duckdb"
    p, events = parsed([b'{"user_id": "u", "timestamp": "' + T0.encode() + b'", "v": 1.5}'])
    shape(events.filter("user_id == 'nobody'")).to(DuckDBSink(db, "t", key=None))  # type: ignore[attr-defined, operator]
    p.run(clock=ManualClock(0))
    with pytest.raises(LookupError, match="written no rows to it.*column types are all declared"):
        DuckDBSink(db, "t").read()
