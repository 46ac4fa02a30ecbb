"""Outputs that received no rows had no columns (tester4 finding 15): ``r["window"]["count"].sum()`` raised
KeyError instead of giving 0, and so did ``ListSink.frame()``. They now carry the declared columns."""

from __future__ import annotations

import pandas as pd
import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.testing import ListSink, ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def pipeline() -> Pipeline:
    return Pipeline(ListSource(pd.DataFrame({"event_id": ["e1"], "k": ["u"], "t": ["a"], "timestamp": [T0]})))


def test_collected_outputs_without_rows_have_their_declared_columns() -> None:
    p = pipeline()
    pat = p.stream.pattern("k", [("a", "t == 'a'"), ("b", "t == 'b'")], within="1m")
    w = p.stream.filter("t == 'zzz'").window(TumblingWindow("1m"), key="k").agg(agg.count())
    r = p.run()
    for ref in (pat.ref, w.ref, f"{w.ref}.late", f"{pat.ref}.late", "filter.dead_letter"):
        assert len(r[ref]) == 0
        assert tuple(r[ref].columns) == p.columns_of(ref), ref
    assert r[w.ref]["count"].sum() == 0


@pytest.mark.parametrize("keep", ["t == 'zzz'", "t == 'a'"])
def test_a_list_sink_has_the_streams_columns_with_or_without_rows(keep: str) -> None:
    p = pipeline()
    sink = ListSink()
    s = p.stream.filter(keep).with_columns(n="1")
    s.to(sink)
    p.run()
    assert list(sink.frame().columns) == list(s.columns or ())
    assert len(sink.frame()) == (keep == "t == 'a'")


def test_a_list_sink_after_a_function_hiding_columns_stays_without_them() -> None:
    p = pipeline()
    sink = ListSink()
    p.stream.filter("t == 'zzz'").map_many(lambda b: b).to(sink)
    p.run()
    assert sink.frame().empty and list(sink.frame().columns) == []
