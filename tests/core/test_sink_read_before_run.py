"""Reading a sink before its pipeline ran says so, instead of an empty frame or a bare database error."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import DuckDBSink, ManualClock, Pipeline
from streamlab.testing import ListSink, ListSource


def test_duckdb_sink_read_before_run_names_the_table_and_the_fix(tmp_path: Path) -> None:
    sink = DuckDBSink(str(tmp_path / "out.duckdb"), "counts", key=None)
    p = Pipeline(ListSource([{"x": 1}]))
    p.stream.to(sink)
    with pytest.raises(
        LookupError, match=r"table 'counts' does not exist yet: its pipeline has written no rows.*p.run\(\)"
    ):
        sink.read()
    p.run(clock=ManualClock(0))
    assert sink.read()["x"].tolist() == [1]
    with pytest.raises(Exception, match="nope"):  # a bad order_by stays DuckDB's own error about the query
        sink.read(order_by="nope")
    sink.close()


def test_list_sink_read_before_run_warns() -> None:
    sink = ListSink()
    with pytest.warns(UserWarning, match="has not run"):
        assert sink.frame().empty


def test_duckdb_sink_fed_no_rows_says_so_after_the_run(tmp_path: Path) -> None:
    """A run whose rows all missed the sink (a filter kept none) creates no table: read() says that no rows
    reached it, where it told the user to run a pipeline that had run (tester4 finding 15)."""
    sink = DuckDBSink(str(tmp_path / "out.duckdb"), "big", key=None)
    p = Pipeline(ListSource([{"x": 1}]))
    # (a function hides the stream's columns and types: a stream whose types are declared gets its
    # table even without rows; see test_duckdb_empty_run.py)
    p.stream.filter("x > 5").map_many(lambda batch: batch).to(sink)
    p.run(clock=ManualClock(0))
    with pytest.raises(LookupError, match="written no rows to it.*check that rows reach this sink"):
        sink.read()
    sink.close()
