"""A window keyed by an integer column gives its keys back in that column's dtype, in every batch.

The keys were given the dtype pandas infers from each output batch's values: a uint64 column's batch
whose keys all fit int64 came out int64, another uint64, so ``ListSink.frame()`` and
``RunResult.outputs`` concatenated them to float64 (``2**63 + 1`` read ``9.223372036854776e+18``), and
a DuckDB table created from the first batch was BIGINT, sending the windows of the large keys to its
``_rejected`` table. Narrower integer keys (int32, uint8) came back int64.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, ListSink, Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.testing import ListSource
from tests.core._duck import column_types

T0 = pd.Timestamp("2024-01-01", tz="UTC")
BIG = [2**63, 2**63 + 1, 2**64 - 1]

# keys mixing small ones (so some batches hold only keys that fit int64) with ones beyond 2**63 - 1
keys = st.one_of(st.integers(0, 4), st.sampled_from(BIG), st.integers(0, 2**64 - 1))
rows_strategy = st.lists(st.tuples(keys, st.integers(0, 119)), min_size=1, max_size=30)


def key_array(values: list[Any], dtype: Any) -> Any:
    """``values`` as an array of ``dtype``, exactly: ``pd.array(values, dtype="uint64")`` of a list
    holding ``2**63 + 1`` gives ``2**63`` (pandas 3 goes through float64), numpy's array does not."""
    if isinstance(pd.api.types.pandas_dtype(dtype), pd.api.extensions.ExtensionDtype):
        return pd.array(np.array(values, dtype=object), dtype=dtype)
    return np.array(values, dtype=dtype)


def frame(rows: list[tuple[int, int]], dtype: Any = "uint64") -> pd.DataFrame:
    """Events of ``rows`` (key, second), ``v`` numbering them, the key column of ``dtype``."""
    out = pd.DataFrame(
        {
            "timestamp": [T0 + pd.Timedelta(seconds=s) for _, s in rows],
            "k": key_array([k for k, _ in rows], dtype),
            "v": np.arange(len(rows), dtype=np.int64),
        }
    )
    assert plain(out["k"]) == [k for k, _ in rows]
    return out


def plain(keys: pd.Series) -> list[Any]:
    """``keys`` as Python values, a missing one as None."""
    return [None if k is pd.NA else k for k in keys.tolist()]


def collected(sink: ListSink) -> pd.DataFrame:
    """What a sink received, checking first that every batch's key column is uint64."""
    assert [str(b["k"].dtype) for b in sink.batches] == ["uint64"] * len(sink.batches)
    out = sink.frame()
    assert len(out) == 0 or str(out["k"].dtype) == "uint64"
    return out


@settings(max_examples=30, deadline=None)
@given(rows_strategy, st.integers(1, 5))
def test_tumbling_uint64_keys_equal_a_pandas_groupby(rows: list[tuple[int, int]], batch_size: int) -> None:
    # disordered times, so some events are late: the oracle groups the events that are not
    events = frame(rows)
    p = Pipeline(ListSource(events, batch_size=batch_size))
    results, late = ListSink(), ListSink()
    w = p.stream.window(TumblingWindow("30s"), key="k", delay="20s").agg(agg.count(), agg.sum("v"))
    w.to(results)
    w.late.to(late)
    p.run()
    got = collected(results)
    p = Pipeline(ListSource(events, batch_size=batch_size))  # the same, collected by the run itself
    p.stream.window(TumblingWindow("30s"), key="k", delay="20s").agg(agg.count(), agg.sum("v"))
    outputs = p.run().outputs["window"]
    assert str(outputs["k"].dtype) == "uint64"
    assert outputs["k"].tolist() == got["k"].tolist()
    late_v = set(late.frame()["v"].tolist()) if late.batches else set()
    on_time = events[~events["v"].isin(late_v)]
    expected = on_time.groupby([on_time["timestamp"].dt.floor("30s"), "k"])["v"].agg(["size", "sum"])
    want = sorted((t, int(k), int(n), int(s)) for (t, k), (n, s) in expected.iterrows())
    have = sorted(
        (t, k, n, s) for t, k, n, s in zip(got["window_start"], got["k"].tolist(), got["count"], got["sum_v"])
    )
    assert have == want  # exact keys: no 2**63 + 1 read back as a float


@settings(max_examples=20, deadline=None)
@given(rows_strategy, st.integers(1, 5), st.sampled_from(["sliding", "session"]))
def test_sliding_and_session_uint64_keys_stay_uint64(
    rows: list[tuple[int, int]], batch_size: int, kind: str
) -> None:
    # times in order, so no event is late: each event is in size / every sliding windows, and in one session
    events = frame(sorted(rows, key=lambda r: r[1]))
    window = SlidingWindow("30s", every="10s") if kind == "sliding" else SessionWindow("10s")
    p = Pipeline(ListSource(events, batch_size=batch_size))
    results = ListSink()
    p.stream.window(window, key="k").agg(agg.count()).to(results)
    p.run()
    got = collected(results)
    per_key = {int(k): int(n) for k, n in got.groupby("k")["count"].sum().items()}
    times = 3 if kind == "sliding" else 1
    assert per_key == {int(k): times * n for k, n in events.groupby("k").size().items()}


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        ("int32", [7, 1, -3]),
        ("uint8", [200, 1, 2]),
        ("int8", [-3, 1, 2]),
        ("uint32", [2**32 - 1, 1, 2]),
        ("UInt64", [2**63 + 1, None, 1]),
        ("Int32", [7, None, 1]),
    ],
)
@pytest.mark.parametrize(
    "window", [TumblingWindow("30s"), SlidingWindow("30s", every="10s"), SessionWindow("10s")]
)
def test_integer_keys_keep_their_dtype(dtype: str, values: list[Any], window: Any) -> None:
    rows = [(values[i % 3], 7 * i) for i in range(12)]
    events = frame(rows, dtype)
    p = Pipeline(ListSource(events, batch_size=2))
    results = ListSink()
    p.stream.window(window, key=["k"]).agg(agg.count()).to(results)
    p.run()
    assert len(results.batches) > 1
    assert {str(b["k"].dtype) for b in results.batches} == {dtype}
    assert set(plain(results.frame()["k"])) == set(values)


def test_dedup_and_keyed_features_pass_uint64_keys_through() -> None:
    from streamlab.detectors import VelocityFeature

    events = frame([(2**63 + 1, 0), (1, 5), (2**63 + 1, 9), (1, 9), (2, 40)])
    p = Pipeline(ListSource(events, batch_size=2))
    deduped, velocity = ListSink(), ListSink()
    p.stream.dedup("k").to(deduped)
    p.stream.apply(VelocityFeature("k", window="20s")).to(velocity)
    p.run()
    assert collected(deduped)["k"].tolist() == [2**63 + 1, 1, 2]
    assert collected(velocity)["count_20s"].tolist() == [1, 1, 2, 2, 1]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # the first window's keys all fit BIGINT
        ([1, 2, 1, 2**63 + 1, 2**64 - 1, 1], [(1, 2), (2, 1), (1, 1), (2**63 + 1, 1), (2**64 - 1, 1)]),
        # the first window's keys are all missing
        ([None, None, None, 2**63 + 1, 2**64 - 1, 1], [(None, 3), (1, 1), (2**63 + 1, 1), (2**64 - 1, 1)]),
    ],
)
def test_duckdb_stores_uint64_keys_as_ubigint(
    tmp_path: Any, keys: list[int | None], expected: list[tuple[int | None, int]]
) -> None:
    events = pd.DataFrame(
        {
            "timestamp": [T0] * 3 + [T0 + pd.Timedelta(minutes=5)] * 3,
            "k": key_array(keys, "UInt64" if None in keys else "uint64"),
        }
    )
    db = str(tmp_path / "u64.duckdb")
    p = Pipeline(ListSource(events, batch_size=3))
    p.stream.window(TumblingWindow("30s"), key="k").agg(agg.count()).to(DuckDBSink(db, "w"))
    p.run()
    con = duckdb.connect(db)
    try:
        assert column_types(con, "w")["k"] == "UBIGINT"
        assert not column_types(con, "w_rejected")  # no window sent aside
        stored = con.execute("select k, count from w order by window_start, k nulls first").fetchall()
    finally:
        con.close()
    assert stored == expected
