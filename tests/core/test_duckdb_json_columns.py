"""DuckDBSink stores JSON objects, arrays and mixed values as JSON, the same however the stream is batched.

It used to let DuckDB type such a column from the first batch's values: a STRUCT of the first object's
keys, which refused every later object of another shape (to ``<table>_rejected``) and cut a value of
another type to the STRUCT's (``{"a": 2.5}`` stored as ``{'a': 2, 'b': None}``), or, for a batch of
several shapes, Python's repr text (``{'a': 1}``), which is not JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, ParquetSink, Pipeline
from streamlab.testing import ListSource

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
objects = st.one_of(st.none(), st.dictionaries(st.text(max_size=4), json_values, max_size=4))

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "properties": "object", "extra": "json"}


def table(events: list[tuple[Any, Any]], batch_size: int) -> list[tuple[str, Any, Any]]:
    lines = [
        {
            "value": json.dumps(
                {"event_id": f"e{i:03d}", "timestamp": "2024-01-01T00:00:00Z", "properties": p, "extra": x}
            )
        }
        for i, (p, x) in enumerate(events)
    ]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    sink = DuckDBSink(":memory:", "events")
    p.parse(SCHEMA).to(sink)
    p.run()
    con = sink.connection()
    tables = {t for (t,) in con.sql("select table_name from information_schema.tables").fetchall()}
    assert "events_rejected" not in tables, sink.rejected_sink().read().to_string()
    rows: list[tuple[str, Any, Any]] = con.sql(
        "select event_id, properties, extra from events order by event_id"
    ).fetchall()
    return rows


def loaded(text: str | float | None) -> Any:
    """The JSON value of a stored text; None for SQL NULL (DuckDB) or a missing text (NaN, from Parquet)."""
    return json.loads(text) if isinstance(text, str) else None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(objects, json_values), min_size=1, max_size=12), st.integers(1, 5))
def test_json_fields_are_stored_as_json_whatever_their_shapes_and_batches(
    events: list[Any], batch_size: int
) -> None:
    rows = table(events, batch_size)
    assert [r[0] for r in rows] == [f"e{i:03d}" for i in range(len(events))]
    for (_, props, extra), (want_props, want_extra) in zip(rows, events):
        assert loaded(props) == want_props
        # a JSON null in a json field is a missing value, stored as SQL NULL
        assert loaded(extra) == want_extra


def test_the_column_is_json_and_queryable_with_duckdbs_json_functions() -> None:
    events = [({"a": 1, "b": "x"}, 1), ({"a": 2.5}, "text"), ({"c": [1, 2]}, {"k": None}), ({}, [1])]
    for batch_size in (1, 4):
        p = Pipeline(
            ListSource(
                [
                    {
                        "value": json.dumps(
                            {
                                "event_id": f"e{i}",
                                "timestamp": "2024-01-01T00:00:00Z",
                                "properties": a,
                                "extra": b,
                            }
                        )
                    }
                    for i, (a, b) in enumerate(events)
                ],
                batch_size=batch_size,
            )
        )
        sink = DuckDBSink(":memory:", "events")
        p.parse(SCHEMA).to(sink)
        p.run()
        got = sink.query("select typeof(properties) t, properties->>'a' a from events order by event_id")
        assert got["t"].tolist() == ["JSON"] * 4
        assert got["a"].tolist()[:2] == ["1", "2.5"] and got["a"][2:].isna().all()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(objects, json_values), min_size=2, max_size=10), st.integers(1, 3))
def test_parquet_parts_agree_on_json_fields_whatever_their_shapes(
    tmp_path_factory: Any, events: list[Any], batch_size: int
) -> None:
    out = tmp_path_factory.mktemp("parquet")
    lines = [
        {
            "value": json.dumps(
                {"event_id": f"e{i:03d}", "timestamp": "2024-01-01T00:00:00Z", "properties": p, "extra": x}
            )
        }
        for i, (p, x) in enumerate(events)
    ]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    p.parse(SCHEMA).to(ParquetSink(out))
    p.run(commit_every=0)  # a part per batch
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == -(-len(events) // batch_size)
    frame = pd.read_parquet(out).sort_values("event_id")  # one schema: the parts agree
    assert [loaded(v) for v in frame["properties"]] == [e[0] for e in events]
    assert [loaded(v) for v in frame["extra"]] == [e[1] for e in events]
