"""``DuckDBSink(key="auto")`` upserts by ``event_id`` only where it identifies a row. It did so on every
stream with the column, so a dedup's ``.duplicates``, an interval join's pairs and the like kept one row
per id in the table, silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from streamlab import DuckDBSink, Pipeline, Stream
from streamlab.pipeline import repeats_ids
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def events(ids: list[str], user: str = "u", start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": ids,
            "user": [user] * len(ids),
            "amount": [float(i) for i in range(len(ids))],
            "timestamp": [T0 + pd.Timedelta(seconds=start + i) for i in range(len(ids))],
        }
    )


def one_source(build: Callable[[Stream], Stream]) -> Callable[[Pipeline], Stream]:
    return lambda p: build(p.add_source(ListSource(events(["e1", "e1", "e2", "e1"]))))


def joined(p: Pipeline) -> Stream:
    clicks = p.add_source(ListSource(events(["click1"])))
    buys = p.add_source(ListSource(events(["buy1", "buy2", "buy3"], start=1)))
    return clicks.join_interval(buys, "user", lower="0s", upper="10s")


def two_sources(p: Pipeline) -> Stream:
    return p.add_source(ListSource(events(["a1", "a2"]))).union(p.add_source(ListSource(events(["b1"]))))


CASES: dict[str, tuple[Callable[[Pipeline], Stream], int, bool]] = {
    # name: (the stream written, rows the table must hold, whether event_id is its key)
    "events": (one_source(lambda s: s), 2, True),  # a re-delivered event replaces itself, as before
    "duplicates": (one_source(lambda s: s.dedup("event_id", ttl="1h").duplicates), 2, False),
    "deduped": (one_source(lambda s: s.dedup("event_id", ttl="1h")), 2, True),
    "interval_join": (joined, 3, False),
    "joined_then_filtered": (lambda p: joined(p).filter("amount >= 0"), 3, False),
    "joined_then_deduped": (lambda p: joined(p).dedup("event_id", ttl="1h"), 1, True),
    # an enrich's table holds one row per key (a key on two rows is refused): an event stays one row
    "enrich": (
        one_source(lambda s: s.enrich(pd.DataFrame({"user": ["u"], "team": ["a"]}), on="user")),
        2,
        True,
    ),
    "map_many": (one_source(lambda s: s.map_many(lambda b: pd.concat([b, b]))), 8, False),
    "map_one": (one_source(lambda s: s.map_one(lambda e: {**e, "x": 1})), 2, True),
    "union_of_one_source": (
        one_source(lambda s: s.filter("amount >= 0").union(s.filter("amount >= 1"))),
        7,
        False,
    ),
    "union_of_two_sources": (two_sources, 3, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_auto_upserts_by_event_id_only_where_it_identifies_a_row(tmp_path: Path, case: str) -> None:
    build, rows, keyed = CASES[case]
    p = Pipeline()
    stream = build(p)
    stream.to(DuckDBSink(tmp_path / "out.duckdb", "t"))
    assert repeats_ids(p, stream.ref) is not keyed
    p.run()
    sink = DuckDBSink(tmp_path / "out.duckdb", "t")
    assert len(sink.read()) == rows
    keys = sink.query(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' AND table_name = 't'"
    )
    assert [list(k) for k in keys["constraint_column_names"]] == ([["event_id"]] if keyed else [])


def test_late_events_are_appended_every_one(tmp_path: Path) -> None:
    from streamlab import TumblingWindow, agg

    late = events(["e9", "e9", "e9"], start=-600)
    p = Pipeline(ListSource(pd.concat([events(["e1"], start=600), late], ignore_index=True), batch_size=1))
    windows = p.stream.window(TumblingWindow("1m")).agg(agg.count())
    windows.late.to(DuckDBSink(tmp_path / "out.duckdb", "late"))
    p.run()
    assert len(DuckDBSink(tmp_path / "out.duckdb", "late").read()) == 3
