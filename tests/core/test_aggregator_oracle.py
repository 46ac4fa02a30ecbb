"""Every aggregator (quantile and a custom one too) against a pandas recomputation over the admitted
events, in tumbling, sliding (size not a multiple of the slide) and session windows: sessions merged
across batches merge the quantile sketches and the custom states."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import (
    ListSink,
    ListSource,
    ManualClock,
    Pipeline,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    agg,
)

from ._streams import event_streams, pandas_window_aggregates, reference_assignments
from .test_checkpoint_boundaries import SortedValues, _sorted

AGGS = [
    agg.count(),
    agg.min("value"),
    agg.max("value"),
    agg.mean("value"),
    agg.count_distinct("label"),
    agg.first("label"),
    agg.last("label"),
    SortedValues("value", refuse=None),
    agg.quantile("value", 0.5),
]


def run(frame: pd.DataFrame, window, delay: int, lateness: int, bs: int | None):
    p = Pipeline(ListSource(frame, batch_size=bs))
    out = p.window(window, key="key", delay=f"{delay}s", lateness=f"{lateness}s").agg(*AGGS)
    results, late = ListSink(), ListSink()
    out.to(results)
    out.late.to(late)
    p.run(clock=ManualClock(0))
    res = results.frame()
    return (
        res.sort_values(["key", "window_start"]).reset_index(drop=True) if len(res) else res
    ), late.frame()


def pandas_sessions(frame: pd.DataFrame, gap: int) -> pd.DataFrame:
    """Sessions of the admitted events (a new one where the gap to the latest event is >= gap) and
    their values, in event-time order (arrival order within a time)."""
    rows = frame.assign(row=np.arange(len(frame))).sort_values(["key", "timestamp", "row"], kind="stable")
    out = []
    for key, g in rows.groupby("key", sort=True):
        ts = g["timestamp"].tolist()
        ids, last = [0], ts[0]
        for t in ts[1:]:
            ids.append(ids[-1] + ((t - last).total_seconds() >= gap))
            last = max(last, t)
        for _, s in g.assign(session=ids).groupby("session"):
            v, lab = s["value"], s["label"]
            out.append(
                {
                    "key": key,
                    "window_start": s["timestamp"].min(),
                    "count": len(s),
                    "min_value": v.min(),
                    "max_value": v.max(),
                    "mean_value": v.mean(),
                    "count_distinct_label": lab.nunique(),
                    "first_label": lab.iloc[0],
                    "last_label": lab.iloc[-1],
                    "values": v.dropna().to_numpy(),
                }
            )
    return pd.DataFrame(out)


def assert_sorted_and_quantile(got: pd.DataFrame, values: list[np.ndarray]) -> None:
    assert got["sorted_value"].tolist() == [repr(_sorted(tuple(float(x) for x in v))) for v in values]
    for q, v in zip(got["p50_value"], values):
        if len(v) == 0:
            assert q != q
            continue
        exact = np.sort(v)[int(0.5 * (len(v) - 1))]
        assert abs(q - exact) <= 0.01 * abs(exact) + 1e-9


@settings(max_examples=40, deadline=None)
@given(
    event_streams(),
    st.sampled_from([3, 5, 10, 30]),
    st.integers(0, 12),
    st.integers(0, 6),
    st.sampled_from([None, 1, 4]),
)
def test_sessions_of_every_aggregator_equal_pandas(frame, gap, delay, lateness, bs):
    got, late = run(frame, SessionWindow(f"{gap}s"), delay, lateness, bs)
    late_ids = set(late["event_id"]) if len(late) else set()
    admitted = frame[~frame["event_id"].isin(late_ids)]
    if admitted.empty:
        assert got.empty
        return
    want = pandas_sessions(admitted, gap)
    cols = [c for c in want.columns if c != "values"]
    pdt.assert_frame_equal(got[cols], want[cols], check_dtype=False, check_exact=False, atol=1e-6)
    assert_sorted_and_quantile(got, want["values"].tolist())


@settings(max_examples=40, deadline=None)
@given(
    event_streams(),
    st.sampled_from(
        [TumblingWindow("10s"), SlidingWindow("25s", every="10s"), SlidingWindow("7s", every="3s")]
    ),
    st.integers(0, 12),
    st.integers(0, 6),
    st.sampled_from([None, 1, 4]),
)
def test_windows_of_every_aggregator_equal_pandas(frame, window, delay, lateness, bs):
    got, _ = run(frame, window, delay, lateness, bs)
    admitted, _ = reference_assignments(frame, window, delay, lateness)
    want = pandas_window_aggregates(frame, admitted)
    if want.empty:
        assert got.empty
        return
    cols = [c for c in want.columns if c != "sum_value"]
    pdt.assert_frame_equal(got[cols], want[cols], check_dtype=False, check_exact=False, atol=1e-6)
    rows = frame.assign(row=np.arange(len(frame))).merge(admitted, on="row")
    groups = rows.sort_values(["timestamp", "row"], kind="stable").groupby(["key", "window_start"], sort=True)
    assert_sorted_and_quantile(got, [g["value"].dropna().to_numpy() for _, g in groups])
