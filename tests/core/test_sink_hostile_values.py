"""The embedded sinks take every row a pipeline can hand them: a ``json`` field of any type and shape,
an event without its key, a first batch whose column is all missing. DuckDB writes what its table can
hold and keeps the rest in ``<table>_rejected`` (the reason and the whole row as JSON text); Parquet
writes a column Arrow cannot convert as JSON text. Nothing fails a flush, nothing vanishes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, ParquetSink, Pipeline
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "extra": "json", "timestamp": "timestamp"}
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=6,
)


def lines(values: list[Any], missing_id: set[int] = frozenset()) -> list[bytes]:  # type: ignore[assignment]
    out = []
    for i, v in enumerate(values):
        event = {"event_id": f"e{i}", "extra": v, "timestamp": "2024-01-01T00:00:00Z"}
        if i in missing_id:
            del event["event_id"]
        out.append(json.dumps(event).encode())
    return out


def run(records: list[bytes], sink: Any, batch: int) -> None:
    p = Pipeline(ListSource(records, batch_size=batch))
    p.parse(SCHEMA).to(sink)
    p.run()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(json_values, min_size=1, max_size=25),
    st.integers(1, 10),
    st.sets(st.integers(0, 24), max_size=3),
)
def test_duckdb_keeps_every_row_in_its_table_or_the_rejected_one(
    tmp_path_factory: Any, values: list[Any], batch: int, missing_id: set[int]
) -> None:
    logging.disable(logging.WARNING)
    try:
        sink = DuckDBSink(tmp_path_factory.mktemp("db") / "out.duckdb", "events")
        run(lines(values, missing_id), sink, batch)
    finally:
        logging.disable(logging.NOTSET)
    tables = set(sink.query("SELECT table_name FROM information_schema.tables")["table_name"])
    written = sink.query("SELECT event_id FROM events")["event_id"].tolist() if "events" in tables else []
    rejected = (
        sink.rejected_sink().read()
        if "events_rejected" in tables
        else pd.DataFrame({"row": [], "reject_reason": []})
    )
    rows = [json.loads(r) for r in rejected["row"]]
    ids = [r["event_id"] for r in rows]
    present = [f"e{i}" for i in range(len(values)) if i not in missing_id]
    assert sorted(written + [i for i in ids if i is not None]) == sorted(present)
    assert ids.count(None) == len([i for i in missing_id if i < len(values)])
    assert rejected["reject_reason"].map(bool).all()


def test_a_first_batch_of_missing_values_leaves_the_column_open_to_later_ones(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "out.duckdb", "events")
    run(lines([None, None, 1.5, "x", {"a": 1}]), sink, 2)
    assert sink.query("SELECT count(*) AS n FROM events")["n"][0] == 5
    assert "events_rejected" not in set(
        sink.query("SELECT table_name FROM information_schema.tables")["table_name"]
    )


@pytest.mark.parametrize("batch", [1, 3, 100])
def test_parquet_writes_a_column_arrow_cannot_convert_as_json_text(tmp_path: Path, batch: int) -> None:
    values = [1, "x", {"a": 1}, {"a": "s", "b": [1]}, [1, 2], None, 10**30, True]
    run(lines(values), ParquetSink(tmp_path / "pq"), batch)
    parts = sorted((tmp_path / "pq").glob("part-*.parquet"))
    frame = pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True)
    assert sorted(frame["event_id"]) == sorted(f"e{i}" for i in range(len(values)))
    if batch == 100:  # one part holding every type: its column is JSON text, missing stays missing
        got = dict(zip(frame["event_id"], frame["extra"]))
        assert (
            got["e2"] == '{"a":1}' and got["e6"] == "1000000000000000000000000000000" and pd.isna(got["e5"])
        )
