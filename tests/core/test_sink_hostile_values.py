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
from streamlab.io import Upstream
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


def halving(writer: Any, verb: str, target: str, batch: pd.DataFrame) -> None:
    """The search DuckDBSink used before: halve a refused batch until the refused rows are alone."""
    if writer._insert_or_fail(verb, target, batch) or len(batch) == 1:
        return
    mid = len(batch) // 2
    halving(writer, verb, target, batch.iloc[:mid])
    halving(writer, verb, target, batch.iloc[mid:])


def write(
    path: Path, batches: list[pd.DataFrame], key: Any, declared: tuple[tuple[str, str], ...] = ()
) -> tuple[list[Any], list[Any], int]:
    """The table's rows, the rejected table's rows (in order) and the number of inserts tried, with
    the column types ``declared`` upstream."""
    from streamlab.sinks import _DuckDBWriter

    sink = DuckDBSink(path, "events", key=key)
    writer = sink.open_for(Upstream(declared=declared))
    assert isinstance(writer, _DuckDBWriter)
    tried = 0
    insert = writer._insert

    def counted(verb: str, target: str, part: pd.DataFrame) -> None:
        nonlocal tried
        tried += target == writer.staged or target == sink.table
        insert(verb, target, part)

    writer._insert = counted  # type: ignore[method-assign]
    logging.disable(logging.WARNING)
    try:
        for b in batches:
            writer.write_batch(b)
        writer.flush()
        writer.commit()
    finally:
        logging.disable(logging.NOTSET)
    rows = sink.query("SELECT * FROM events ORDER BY event_id").astype(object).values.tolist()
    tables = set(sink.query("SELECT table_name FROM information_schema.tables")["table_name"])
    rejected = sink.rejected_sink().read().values.tolist() if "events_rejected" in tables else []
    return rows, rejected, tried


def frame(values: list[Any], start: int = 0, dtype: Any = object) -> pd.DataFrame:
    ids = [f"e{start + i:03d}" for i in range(len(values))]
    return pd.DataFrame({"event_id": ids, "extra": pd.Series(values, dtype=dtype)})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.one_of(st.integers(-5, 5), st.text(max_size=2), st.none(), st.just(10**30)),
        min_size=1,
        max_size=40,
    ),
    key=st.sampled_from([None, "auto"]),
)
def test_a_refused_batch_is_searched_to_the_rows_halving_found(
    tmp_path_factory: Any, values: list[Any], key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same table, same rejected rows with the same reasons, in the same order, as halving found them,
    on an integer column (text and a 30-digit int are refused); never more than two inserts a row."""
    batches = [frame([1, 2]), frame(values, start=2)]
    got = write(tmp_path_factory.mktemp("db") / "new.duckdb", batches, key)
    from streamlab.sinks import _DuckDBWriter

    with monkeypatch.context() as m:
        m.setattr(_DuckDBWriter, "_insert_or_reject", halving)
        want = write(tmp_path_factory.mktemp("db") / "old.duckdb", batches, key)
    assert got[:2] == want[:2]
    assert got[2] <= 2 * len(values) + 2  # (halving's worst case, 2n - 1 for the refused batch)


@pytest.mark.parametrize("n", [1, 2, 64, 300])
def test_a_batch_the_column_type_refuses_whole_is_rejected_in_one_go(tmp_path: Path, n: int) -> None:
    """It took one insert a row (halving about two), each rejected with DuckDB's error of its own."""
    # a declared BIGINT column refuses text (an undeclared one would become JSON, which takes any value)
    batches = [frame([1, 2], dtype="int64"), frame([f"x{i}" for i in range(n)], start=2, dtype="str")]
    rows, rejected, tried = write(tmp_path / "out.duckdb", batches, None, (("extra", "int64"),))
    assert len(rows) == 2 and len(rejected) == n
    assert [json.loads(r)["extra"] for _, r in rejected] == [f"x{i}" for i in range(n)]
    assert len({reason for reason, _ in rejected}) == 1  # one reason for them all, naming column and type
    assert "column 'extra' is BIGINT" in rejected[0][0] and "cannot be cast" in rejected[0][0]
    assert tried == 2  # the first batch, the refused batch; its rows are cast in one query, not inserted


def test_rows_whose_values_fit_the_changed_column_are_written(tmp_path: Path) -> None:
    batches = [frame([1, 2], dtype="int64"), frame(["7", "x", None, "8", "y"], start=2, dtype="str")]
    rows, rejected, tried = write(tmp_path / "out.duckdb", batches, "auto", (("extra", "int64"),))
    assert [None if pd.isna(r[1]) else r[1] for r in rows] == [1, 2, 7, None, 8]
    assert [json.loads(r)["extra"] for _, r in rejected] == ["x", "y"] and tried == 3


def test_a_rerun_with_a_new_column_adds_it_to_the_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's loop (add an aggregator, run again) refused every row, one insert each, and kept
    the old schema: the table had no column for the new aggregate."""
    from streamlab import TumblingWindow, agg

    db = tmp_path / "out.duckdb"
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    events = pd.DataFrame(
        {
            "k": [f"k{i % 3}" for i in range(600)],
            "amount": [float(i % 7) for i in range(600)],
            "timestamp": [t0 + pd.Timedelta(seconds=i) for i in range(600)],
        }
    )
    for aggs, rows in (([agg.count()], events.iloc[:300]), ([agg.count(), agg.mean("amount")], events)):
        p = Pipeline(ListSource(rows, batch_size=100))
        p.stream.window(TumblingWindow("1m"), key="k").agg(*aggs).to(DuckDBSink(db, "counts"))
        with caplog.at_level(logging.WARNING, logger="streamlab"):
            p.run()
    sink = DuckDBSink(db, "counts")
    got = sink.read(order_by="k, window_start")
    assert list(got.columns) == ["k", "window_start", "window_end", "count", "mean_amount"]
    assert (
        dict(sink.query("DESCRIBE counts")[["column_name", "column_type"]].values)["mean_amount"] == "DOUBLE"
    )
    want = events.assign(window_start=events["timestamp"].dt.floor("1min"))
    want = want.groupby(["k", "window_start"])["amount"].agg(["count", "mean"]).reset_index()
    assert len(got) == len(want) and got["mean_amount"].tolist() == want["mean"].tolist()
    assert "counts_rejected" not in set(
        sink.query("SELECT table_name FROM information_schema.tables")["table_name"]
    )
    added = [r.getMessage() for r in caplog.records if "added them" in r.getMessage()]
    assert len(added) == 1 and "['mean_amount']" in added[0] and "mean_amount DOUBLE" in added[0]


@pytest.mark.parametrize("key", [None, "auto"])
def test_rows_written_before_a_new_column_keep_it_missing(tmp_path: Path, key: Any) -> None:
    before = pd.DataFrame({"event_id": ["e1", "e2"], "n": [1, 2]})
    after = pd.DataFrame({"event_id": ["e3"], "n": [3], "extra": [{"a": 1}], "Flag": [True]})
    for batches in ([before], [after]):
        rows, rejected, _ = write(tmp_path / "out.duckdb", batches, key)
    assert [[None if pd.isna(v) else v for v in r] for r in rows] == [
        ["e1", 1, None, None],
        ["e2", 2, None, None],
        ["e3", 3, '{"a":1}', True],
    ]
    assert rejected == []


def test_json_lines_appended_to_a_file_without_a_final_newline_start_their_own_line(tmp_path):
    # the first record was glued onto the file's last line, making one invalid JSON line of two
    import json

    from streamlab import JsonLinesSink, ListSource, ManualClock, Pipeline

    path = tmp_path / "log.jsonl"
    path.write_text('{"old": 1}\n{"old": 2}')  # written by another tool, no newline at the end
    p = Pipeline(ListSource([{"new": 3}, {"new": 4}]))
    p.stream.to(JsonLinesSink(str(path)))
    p.run(clock=ManualClock(0))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"old": 1},
        {"old": 2},
        {"new": 3},
        {"new": 4},
    ]


def test_complex_numbers_are_written_as_json_text_not_a_flush_failing_every_retry(tmp_path: Path) -> None:
    """A complex column (a user function's result, say) failed DuckDB's DESCRIBE ("Data type
    'complex128' not recognized") and Arrow's conversion ("Unsupported numpy type 15") on every retry:
    the run could not get past the batch. Both now write it as JSON text, as other values they cannot
    type."""
    frame = pd.DataFrame({"event_id": ["a", "b"], "z": [1 + 2j, 3j]})
    duck, parquet = DuckDBSink(tmp_path / "o.duckdb", "t"), ParquetSink(tmp_path / "pq")
    p = Pipeline(ListSource(frame))
    p.stream.to(duck, step_id="duck")
    p.stream.to(parquet, step_id="parquet")
    p.run()
    assert duck.read(order_by="event_id")["z"].tolist() == ['"(1+2j)"', '"3j"']
    assert pd.read_parquet(parquet.path)["z"].tolist() == ['"(1+2j)"', '"3j"']


def test_a_column_without_a_name_is_written_to_duckdb_under_an_underscore(tmp_path: Path) -> None:
    # a JSON key "" (valid JSON, which fuzzers and messy producers write) in a file replayed whole makes a
    # column named "": DuckDB has no empty column name, and the sink failed every batch with KeyError('')
    import duckdb

    from streamlab import ManualClock, ReplaySource

    events = tmp_path / "events.jsonl"
    rows = [{"event_id": f"e{i}", "": i, "timestamp": f"2024-01-01T00:00:0{i}Z"} for i in range(3)]
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = Pipeline(ReplaySource(events, speed=None, batch_size=2))
    p.stream.to(DuckDBSink(str(tmp_path / "out.duckdb"), "events"))
    assert p.run(clock=ManualClock(0)).status == "finished"
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        got = con.execute('SELECT event_id, "_" FROM events ORDER BY event_id').fetchall()
    assert got == [("e0", 0), ("e1", 1), ("e2", 2)]
