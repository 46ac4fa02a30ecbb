"""A ``DuckDBSink`` lets go of its database file when a run ends.

The sink kept its connection for as long as the pipeline lived: after ``p.run()`` a read-only
connection in the same process (DuckDB refuses a second configuration of an open file) and any other
process (the file's lock) could not open the results, a notebook's next step. The run's writers now
close a database file's connection when they close (at the end of every run: finished, failed,
interrupted, or a background run stopped), and the next run opens it again, keeping the upserts, the
staged appends and their commit ledger.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from streamlab import DuckDBSink, Pipeline, TumblingWindow, agg
from streamlab.clock import Clock
from streamlab.errors import SinkFailedError
from streamlab.io import Sink, SinkWriter
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def events(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(start, start + n)],
            "k": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
            "timestamp": [T0 + pd.Timedelta(seconds=i) for i in range(start, start + n)],
        }
    )


def read_only(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows: list[tuple[Any, ...]] = con.execute(sql).fetchall()
        return rows
    finally:
        con.close()


def test_the_file_opens_read_only_after_a_run_and_a_second_run_still_upserts(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"
    p = Pipeline(ListSource(events(6), batch_size=2))
    p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count()).to(DuckDBSink(path, "counts"))
    p.stream.to(DuckDBSink(path, "events", key="event_id"))
    p.run()
    want = [("a", 3), ("b", 3)]
    assert read_only(path, "select k, count from counts order by k") == want
    assert read_only(path, "select count(*) from events") == [(6,)]
    p.run()  # the same events again: upserted by their keys, not doubled
    assert read_only(path, "select k, count from counts order by k") == want
    assert read_only(path, "select count(*) from events") == [(6,)]


def test_another_process_opens_the_file_while_the_pipeline_lives(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"
    sink = DuckDBSink(path, "events", key=None)
    p = Pipeline(ListSource(events(3)))
    p.stream.to(sink)
    p.run()
    code = f"import duckdb; print(duckdb.connect({str(path)!r}, read_only=True).sql('select count(*) from events').fetchall())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[(3,)]", done.stderr
    assert len(sink.read()) == 3  # the sink reads it too, on a connection of its own, closed after
    assert read_only(path, "select count(*) from events") == [(3,)]


def test_appends_staged_and_committed_stay_exactly_once_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"
    source = ListSource(events(4), batch_size=1)
    p = Pipeline(source)
    p.stream.to(DuckDBSink(path, "events", key=None))
    p.run(checkpoint_dir=tmp_path / "ck", commit_every="0s")
    assert read_only(path, "select count(*) from events") == [(4,)]
    p.run(checkpoint_dir=tmp_path / "ck", commit_every="0s")  # resumed at the end: nothing new
    assert read_only(path, "select count(*) from events") == [(4,)]


def test_rows_the_table_rejects_release_the_file_too(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"
    rows = events(3).astype({"event_id": object})
    rows.loc[1, "event_id"] = None
    p = Pipeline(ListSource(rows))
    p.stream.to(DuckDBSink(path, "events", key="event_id"))
    p.run()
    assert read_only(path, "select count(*) from events_rejected") == [(1,)]


class FailingSink(Sink):
    """A second sink that fails on the batch holding ``e2``."""

    def open(self, clock: Clock | None = None) -> SinkWriter:
        class Writer(SinkWriter):
            def write_batch(self, batch: pd.DataFrame) -> None:
                if "e2" in set(batch["event_id"]):
                    raise RuntimeError("disk on fire")

        return Writer()


def test_a_failed_run_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"
    p = Pipeline(ListSource(events(4), batch_size=1))
    p.stream.to(DuckDBSink(path, "events"))
    p.stream.to(FailingSink())
    with pytest.raises(SinkFailedError):
        p.run(commit_every="0s")
    # upserted as they came (the sinks see each batch in turn): e2 too, which a restart writes again
    assert read_only(path, "select event_id from events order by event_id")[:2] == [("e0",), ("e1",)]


def test_an_interrupted_run_releases_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlab.runtime._executor import Executor

    enter = Executor._enter

    def interrupted(self: Any, sid: Any, batch: pd.DataFrame, parsed: Any = None) -> Any:
        if "e2" in set(batch["event_id"]):
            raise KeyboardInterrupt
        return enter(self, sid, batch, parsed)

    monkeypatch.setattr(Executor, "_enter", interrupted)
    path = tmp_path / "out.duckdb"
    p = Pipeline(ListSource(events(4), batch_size=1))
    p.stream.to(DuckDBSink(path, "events"))
    assert p.run(commit_every="0s").status == "interrupted"
    assert read_only(path, "select count(*) from events") == [(2,)]


def test_a_background_run_releases_the_file_when_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"
    p = Pipeline(ListSource(events(4)))
    p.stream.to(DuckDBSink(path, "events"))
    handle = p.start()
    result = handle.wait(timeout=60)
    assert result is not None and result.status == "finished"
    assert read_only(path, "select count(*) from events") == [(4,)]


def test_a_connection_open_read_only_in_this_process_is_named_with_its_fix(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"
    p = Pipeline(ListSource(events(2)))
    p.stream.to(DuckDBSink(path, "events"))
    p.run()
    con = duckdb.connect(str(path), read_only=True)
    try:
        with pytest.raises(SinkFailedError, match="close that connection"):
            p.run()
    finally:
        con.close()
    p.run()  # once it is closed
    assert read_only(path, "select count(*) from events") == [(2,)]
