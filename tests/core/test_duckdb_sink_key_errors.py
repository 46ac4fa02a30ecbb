"""A DuckDBSink key or stream that the table cannot hold as meant is refused when the sink is made or
attached, naming the sink and the fix.

Before: ``key=('event_id', 'user_id')`` (a tuple) and ``key=5`` were taken as ``'auto'``: rows were
upserted by ``event_id`` alone, so events sharing it replaced each other, silently; ``key=['event_id',
'event_id']`` failed on the first write; a stream with columns ``'A'`` and ``'a'`` was written with the
second renamed ``a_1`` by DuckDB (whose names ignore case), so readers of ``a`` got ``A``'s values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamlab import DuckDBSink, ManualClock, Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

ROWS = [{"event_id": "e", "user_id": "u", "n": 1}, {"event_id": "e", "user_id": "v", "n": 2}]


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (5, "key=5 is not a column name"),
        ({"event_id": 1}, "is not a column name"),
        ([""], "is not a column name"),
        (["event_id", "event_id"], "names 'event_id' twice"),
        (("user_id", "user_id"), "names 'user_id' twice"),
    ],
)
def test_a_key_that_is_not_column_names_is_refused_when_made(key: Any, says: str) -> None:
    with pytest.raises(PipelineConfigError) as e:
        DuckDBSink(":memory:", "t", key=key)
    assert says in e.value.problem and "key=None (append)" in e.value.fix, e.value


def test_a_key_given_as_a_tuple_is_that_key(tmp_path: Path) -> None:
    sink = DuckDBSink(str(tmp_path / "t.duckdb"), "t", key=("event_id", "user_id"))
    p = Pipeline(ListSource(ROWS))
    p.stream.to(sink)
    p.run(clock=ManualClock(0))
    assert sorted(sink.read()["user_id"]) == ["u", "v"]  # was ['v']: upserted by event_id alone


def test_columns_differing_only_in_case_are_refused_when_attached() -> None:
    p = Pipeline(ListSource([{"A": 1, "a": 2}]))
    with pytest.raises(PipelineConfigError) as e:
        p.stream.to(DuckDBSink(":memory:", "t"), step_id="out")
    assert e.value.step_id == "out" and "'A' and 'a' differ only in case" in e.value.problem, e.value


@pytest.mark.parametrize("key", ["auto", None, "event_id", ["event_id", "user_id"], []])
def test_keys_that_work_are_accepted(key: Any) -> None:
    p = Pipeline(ListSource(ROWS))
    p.stream.to(DuckDBSink(":memory:", "t", key=key))
