"""DuckDBSink's table is the same however the stream is cut into batches.

A column the stream does not declare was typed by the batch that created the table: ``VARCHAR`` when
that batch held only text, ``JSON`` when it held text and numbers, ``DATE``/``BLOB``/``INTERVAL`` when it
held only dates, bytes or durations. A later batch's values of another kind were then cast to the
first batch's type (a number stored as the text ``'5'``, text as a blob) or went to ``<table>_rejected``,
so a run with ``batch_size=1`` wrote another table than one with ``batch_size=1000``. Now a column
meeting values of another kind becomes what the whole stream written at once makes it (``JSON``), its
earlier values converted to the same JSON text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, Pipeline
from streamlab.testing import ListSource

#: each undeclared column holds values of several kinds, some rows of one kind before the others
COLUMNS: dict[str, list[Any]] = {
    "mixed": ["a", 5, None, 2.5, "b", -(2**40), "c"],
    "durations": [None, dt.timedelta(seconds=1), "x", dt.timedelta(days=2), 3, None, dt.timedelta(0)],
    "blobs": [b"x", None, b"\xff", "t", b"", None, b"\x00"],
    "dates": [dt.date(2024, 1, 1), None, "2024-01-02", dt.date(2024, 1, 3), 7, None, dt.date(1999, 12, 31)],
    "nested": [None, {"a": 1}, {"b": [1, {"c": None}]}, "s", {"d": dt.date(2024, 1, 1)}, [1, "x"], 2],
    "late": [None, None, None, None, None, dt.date(2024, 1, 5), "later"],
    "counts": [1, 2, 3, 4, 5, 6, 7.5],
}
ROWS = [{"event_id": None if i == 3 else f"e{i}", **{c: v[i] for c, v in COLUMNS.items()}} for i in range(7)]


def table(rows: list[dict[str, Any]], batch_size: int | None, key: str | None) -> dict[str, Any]:
    """What a DuckDB user sees of the table and its rejected rows after a run."""
    p = Pipeline(ListSource(rows, batch_size=batch_size))
    sink = DuckDBSink(":memory:", "events", key=key)
    p.to(sink)
    p.run()
    con = sink.connection()
    tables = {t for (t,) in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}
    rejected = (
        sorted(con.sql("SELECT reject_reason, row FROM events_rejected").fetchall())
        if "events_rejected" in tables
        else []
    )
    return {
        "types": con.sql("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall(),
        "rows": sorted(con.sql("SELECT * FROM events").fetchall(), key=repr),
        "rejected": rejected,
    }


@pytest.mark.parametrize("key", ["auto", None])
def test_the_table_its_types_and_its_rejected_rows_do_not_depend_on_the_batch_size(key: str | None) -> None:
    whole = table(ROWS, None, key)
    for batch_size in (1, 2, 7):
        assert table(ROWS, batch_size, key) == whole, batch_size
    types = dict(whole["types"])
    assert {c: types[c] for c in ("mixed", "durations", "blobs", "dates", "nested", "late")} == dict.fromkeys(
        ("mixed", "durations", "blobs", "dates", "nested", "late"), "JSON"
    )
    assert types["counts"] == "DOUBLE"  # integers first, then a fraction: DuckDB would have rounded it
    # the row without its key is rejected (key='auto' upserts by event_id), whatever the batches
    assert len(whole["rejected"]) == (1 if key == "auto" else 0)
    assert len(whole["rows"]) == (6 if key == "auto" else 7)


def test_a_column_of_one_kind_keeps_its_own_type_and_takes_it_after_missing_values() -> None:
    rows = [
        {"event_id": f"e{i}", "text": t, "day": d, "raw": r}
        for i, (t, d, r) in enumerate(
            [(None, None, None), ("a", None, b"1"), (None, dt.date(2024, 1, 1), None), ("b", None, b"2")]
        )
    ]
    whole = table(rows, None, "auto")
    assert [table(rows, n, "auto") for n in (1, 2, 3)] == [whole] * 3
    assert dict(whole["types"]) == {"event_id": "VARCHAR", "text": "VARCHAR", "day": "DATE", "raw": "BLOB"}


values = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.dates(),
    st.binary(max_size=3),
    st.timedeltas(min_value=dt.timedelta(days=-9), max_value=dt.timedelta(days=9)),
    st.dictionaries(st.text(max_size=2), st.integers(-9, 9) | st.text(max_size=2), max_size=2),
)


@settings(max_examples=12)
@given(st.lists(st.tuples(values, values), min_size=1, max_size=8), st.integers(1, 4))
def test_any_undeclared_values_make_the_same_table_in_any_batches(
    pairs: list[tuple[Any, Any]], batch_size: int
) -> None:
    rows = [{"event_id": f"e{i}", "x": x, "y": y} for i, (x, y) in enumerate(pairs)]
    assert table(rows, batch_size, None) == table(rows, None, None)
