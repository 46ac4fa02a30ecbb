"""DuckDB 2 opens an existing CSV, JSON or Parquet file as a database of that file's rows, held in
memory: a DuckDBSink given such a path (``DuckDBSink("events.jsonl", "t")``, a slip for the input file)
created its table and wrote every row there, the run finished with status 'finished', and nothing was
left anywhere. The sink now refuses the path when it opens, naming the step and the fix; the file is
untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from streamlab import DuckDBSink, ManualClock, Pipeline
from streamlab.errors import SinkFailedError
from streamlab.testing import ListSource


def data_file(tmp_path: Path, kind: str) -> Path:
    frame = pd.DataFrame({"event_id": ["a"], "v": [1]})
    path = tmp_path / f"events.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_a_data_file_as_the_database_is_refused_not_written_to_memory(tmp_path: Path, kind: str) -> None:
    path = data_file(tmp_path, kind)
    before = path.read_bytes()
    p = Pipeline(ListSource([{"x": 1}, {"x": 2}]))
    p.stream.to(DuckDBSink(path, "out"), step_id="results")
    with pytest.raises(SinkFailedError, match=r"step 'results' \(DuckDBSink\) failed opening") as info:
        p.run(clock=ManualClock(0))
    assert "is not a DuckDB database file but a data file" in str(info.value)
    assert "Fix: give a database file path" in str(info.value)
    assert path.read_bytes() == before


def test_a_new_path_of_any_name_and_a_database_file_are_written(tmp_path: Path) -> None:
    for name in ("new.csv", "out.duckdb"):  # a path that does not exist yet becomes a database file
        sink = DuckDBSink(tmp_path / name, "out")
        p = Pipeline(ListSource([{"x": 1}]))
        p.stream.to(sink)
        p.run(clock=ManualClock(0))
        sink.close()
        assert DuckDBSink(tmp_path / name, "out").read()["x"].tolist() == [1]
