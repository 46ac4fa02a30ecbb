"""The core oracle: incremental windows equal a pandas batch recomputation over the admitted events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import given
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
from streamlab._time import to_utc_ns

from ._streams import BASE, event_streams, pandas_sessions, pandas_window_aggregates, reference_assignments

AGGS = [
    agg.count(),
    agg.sum("value"),
    agg.mean("value"),
    agg.min("value"),
    agg.max("value"),
    agg.count_distinct("label"),
    agg.first("label"),
    agg.last("label"),
]

windows = st.one_of(
    st.sampled_from([10, 15, 30, 60]).map(lambda s: TumblingWindow(f"{s}s")),
    st.sampled_from([(20, 10), (30, 10), (60, 15), (25, 10)]).map(
        lambda p: SlidingWindow(f"{p[0]}s", every=f"{p[1]}s")
    ),
)


def run_window(frame: pd.DataFrame, window, delay: int, lateness: int, batch_size: int | None, aggs=AGGS):
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    out = p.window(window, key="key", delay=f"{delay}s", lateness=f"{lateness}s").agg(*aggs)
    results, late = ListSink(), ListSink()
    out.to(results)
    out.late.to(late)
    p.run(clock=ManualClock(0))
    return results.frame(), late.frame()


def late_pairs(late: pd.DataFrame) -> list[tuple[str, pd.Timestamp]]:
    return sorted(zip(late["event_id"], late["window_start"])) if len(late) else []


def canon(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.sort_values(["key", "window_start"]).reset_index(drop=True)


@given(event_streams(), windows, st.integers(0, 15), st.integers(0, 15), st.sampled_from([None, 1, 3, 7]))
def test_windows_equal_batch_recomputation_and_late_exactly_once(frame, window, delay, lateness, batch_size):
    results, late = run_window(frame, window, delay, lateness, batch_size)
    admitted, expected_late = reference_assignments(frame, window, delay, lateness)
    expected = pandas_window_aggregates(frame, admitted)
    if expected.empty:
        assert results.empty
    else:
        got = canon(results)[list(expected.columns)]
        pdt.assert_frame_equal(
            got, canon(expected), check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-6
        )
    # every (event, window) pair that was not admitted is in the late output exactly once
    got_late = late_pairs(late)
    want_late = sorted(zip(frame["event_id"].iloc[expected_late["row"]], expected_late["window_start"]))
    assert got_late == want_late
    # and nothing is both admitted and late
    assert len(admitted) + len(expected_late) == sum(
        len(window.assign(np.array([t]))[0]) for t in to_utc_ns(frame["timestamp"])
    )


@given(event_streams(max_events=40), windows, st.integers(0, 10))
def test_batch_size_does_not_change_results(frame, window, delay):
    base_res, base_late = run_window(frame, window, delay, 0, None)
    for bs in (1, 2, 5):
        res, late = run_window(frame, window, delay, 0, bs)
        pdt.assert_frame_equal(canon(res), canon(base_res), check_dtype=False)
        assert late_pairs(late) == late_pairs(base_late)


@given(
    event_streams(),
    st.sampled_from([5, 10, 30]),
    st.integers(0, 15),
    st.integers(0, 10),
    st.sampled_from([None, 1, 4]),
)
def test_sessions_equal_batch_sessionization_of_admitted_events(frame, gap, delay, lateness, batch_size):
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    out = p.window(SessionWindow(f"{gap}s"), key="key", delay=f"{delay}s", lateness=f"{lateness}s").agg(
        agg.count(), agg.sum("value")
    )
    results, late = ListSink(), ListSink()
    out.to(results)
    out.late.to(late)
    p.run(clock=ManualClock(0))
    res, lt = results.frame(), late.frame()
    late_ids = set(lt["event_id"]) if len(lt) else set()
    # partition: every event is late exactly once or counted in exactly one session
    assert len(lt) == len(late_ids)
    assert (res["count"].sum() if len(res) else 0) + len(late_ids) == len(frame)
    admitted = frame[~frame["event_id"].isin(late_ids)]
    if admitted.empty:
        assert res.empty
        return
    expected = pandas_sessions(admitted, gap)
    got = canon(res)[list(expected.columns)]
    pdt.assert_frame_equal(got, canon(expected), check_dtype=False, check_exact=False, atol=1e-6)


@given(event_streams(max_events=40), st.sampled_from([5, 20]), st.integers(0, 5))
def test_sessions_batch_size_invariant(frame, gap, delay):
    outs = []
    for bs in (None, 1, 3):
        p = Pipeline(ListSource(frame, batch_size=bs))
        out = p.window(SessionWindow(f"{gap}s"), key="key", delay=f"{delay}s").agg(
            agg.count(), agg.sum("value")
        )
        sink = ListSink()
        out.to(sink)
        p.run(clock=ManualClock(0))
        outs.append(canon(sink.frame()))
    for o in outs[1:]:
        pdt.assert_frame_equal(o, outs[0], check_dtype=False)


def test_in_order_stream_with_delay_has_no_late_events():
    frame = pd.DataFrame(
        {
            "key": ["a"] * 5,
            "value": [1.0] * 5,
            "event_id": list("vwxyz"),
            "timestamp": BASE + pd.to_timedelta([0, 10, 20, 15, 30], unit="s"),
        }
    )
    res, late = run_window(
        frame, TumblingWindow("10s"), delay=5, lateness=0, batch_size=None, aggs=[agg.count()]
    )
    assert late.empty
    assert res["count"].tolist() == [1, 2, 1, 1]


def test_event_for_closed_window_goes_to_late_output_with_its_window():
    frame = pd.DataFrame(
        {
            "key": ["a", "a", "a"],
            "value": [1.0, 2.0, 3.0],
            "event_id": ["x", "y", "late"],
            "timestamp": BASE + pd.to_timedelta([5, 25, 8], unit="s"),
        }
    )
    res, late = run_window(
        frame, TumblingWindow("10s"), delay=0, lateness=0, batch_size=None, aggs=[agg.count()]
    )
    assert late["event_id"].tolist() == ["late"]
    assert late["window_start"].tolist() == [BASE]
    assert late["watermark"].tolist() == [BASE + pd.Timedelta(seconds=25)]
    assert res["count"].tolist() == [1, 1]


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]),
)
def test_quantile_within_relative_accuracy(values, q):
    a = agg.quantile("v", q, relative_accuracy=0.01)
    state = a.initial()
    half = len(values) // 2
    left = a.add(a.initial(), np.array(values[:half]))
    right = a.add(state, np.array(values[half:]))
    got = a.result(a.merge(left, right))
    exact = sorted(values)[int(q * (len(values) - 1))]
    assert abs(got - exact) <= 0.01 * abs(exact) + 1e-9


def test_quantile_in_a_window_matches_numpy():
    rng = np.random.default_rng(7)
    vals = rng.lognormal(3, 1, 2000)
    frame = pd.DataFrame(
        {
            "key": "a",
            "event_id": [str(i) for i in range(2000)],
            "value": vals,
            "timestamp": BASE + pd.to_timedelta(np.arange(2000) % 50, unit="s"),
        }
    )
    res, _ = run_window(frame, TumblingWindow("1m"), 60, 0, 128, aggs=[agg.quantile("value", 0.95)])
    exact = np.sort(vals)[int(0.95 * 1999)]
    assert abs(res["p95_value"].iloc[0] - exact) <= 0.01 * exact


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("window", [TumblingWindow("30s"), SlidingWindow("60s", every="20s")])
def test_large_batches_match_the_reference(seed, window):
    # thousands of events per batch exercise the block-bounded lateness check and paned sliding windows
    rng = np.random.default_rng(seed)
    n = 6000
    t = np.arange(n) // 10 + rng.integers(-20, 1, n) - np.where(rng.random(n) < 0.01, 200, 0)
    t = t - t.min()
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "key": rng.choice(["a", "b", "c"], n),
            "value": rng.random(n),
            "label": rng.choice(["l0", "l1"], n),
            "timestamp": BASE + pd.to_timedelta(t, unit="s"),
        }
    )
    for batch_size in (None, 2500):
        results, late = run_window(frame, window, 5, 3, batch_size)
        admitted, expected_late = reference_assignments(frame, window, 5, 3)
        expected = pandas_window_aggregates(frame, admitted)
        got = canon(results)[list(expected.columns)]
        pdt.assert_frame_equal(got, canon(expected), check_dtype=False, check_exact=False, atol=1e-6)
        want_late = sorted(zip(frame["event_id"].iloc[expected_late["row"]], expected_late["window_start"]))
        assert late_pairs(late) == want_late
        assert len(want_late) > 0


def reference_partitioned(frame, window, delay, lateness):
    """Per-event admission with one watermark per partition (the minimum over partitions seen, monotonic)."""
    ts = (frame["timestamp"] - BASE).dt.total_seconds().astype(int).to_numpy()
    size = window.size_ns // 10**9
    slide = getattr(window, "every_ns", window.size_ns) // 10**9
    maxes, floor, admitted, late = {}, None, [], []
    for i, (t, part) in enumerate(zip(ts, frame["partition"])):
        maxes[part] = max(maxes.get(part, t), t)
        wm = min(maxes.values()) - delay
        floor = wm if floor is None else max(floor, wm)
        s = (t // slide) * slide
        while s + size > t:
            row = {
                "row": i,
                "window_start": BASE + pd.Timedelta(seconds=int(s)),
                "window_end": BASE + pd.Timedelta(seconds=int(s + size)),
            }
            (late if s + size + lateness <= floor else admitted).append(row)
            s -= slide
    cols = ["row", "window_start", "window_end"]
    return pd.DataFrame(admitted, columns=cols), pd.DataFrame(late, columns=cols)


@given(event_streams(), windows, st.integers(0, 10), st.sampled_from([None, 1, 4]), st.integers(1, 3))
def test_partitioned_watermarks_equal_their_reference(frame, window, delay, batch_size, n_parts):
    frame = frame.assign(partition=np.arange(len(frame)) % n_parts)
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    out = p.window(window, key="key", delay=f"{delay}s").agg(*AGGS)
    assert p.steps["window"].watermark_by == ("partition",)  # auto-detected
    results, late = ListSink(), ListSink()
    out.to(results)
    out.late.to(late)
    p.run(clock=ManualClock(0))
    admitted, expected_late = reference_partitioned(frame, window, delay, 0)
    expected = pandas_window_aggregates(frame, admitted)
    res = results.frame()
    if expected.empty:
        assert res.empty
    else:
        pdt.assert_frame_equal(
            canon(res)[list(expected.columns)],
            canon(expected),
            check_dtype=False,
            check_exact=False,
            atol=1e-6,
        )
    assert late_pairs(late.frame()) == sorted(
        zip(frame["event_id"].iloc[expected_late["row"]], expected_late["window_start"])
    )


class PartitionedListSource(ListSource):
    """A list source that, like a Kafka consumer, knows its assigned partitions before reading them."""

    def __init__(self, frame, partitions, **kw):
        super().__init__(frame, **kw)
        self.assigned = partitions

    def open(self, resume=None, clock=None):
        reader = super().open(resume, clock)
        reader.partitions = lambda: list(self.assigned)
        return reader


def test_a_partition_read_ahead_does_not_make_the_others_late():
    # a consumer returns partition 0 entirely, then partition 1: both cover the same hour
    n = 3600
    t = np.arange(n)
    frame = pd.DataFrame(
        {
            "key": "a",
            "value": 1.0,
            "event_id": [f"e{i}" for i in range(2 * n)],
            "partition": np.repeat([0, 1], n),
            "label": "x",
            "timestamp": BASE + pd.to_timedelta(np.concatenate([t, t]), unit="s"),
        }
    )
    for watermark_by, expect_late in (("auto", False), (None, True)):
        p = Pipeline(PartitionedListSource(frame, [0, 1], batch_size=1000))
        out = p.window(TumblingWindow("1m"), key="key", delay="5s", watermark_by=watermark_by).agg(
            agg.count()
        )
        res, late = ListSink(), ListSink()
        out.to(res)
        out.late.to(late)
        p.run(clock=ManualClock(0))
        if expect_late:  # one watermark for the whole stream: nearly all of partition 1 is late
            assert len(late.frame()) > n * 0.9
        else:
            assert late.frame().empty and res.frame()["count"].sum() == 2 * n


@given(
    event_streams(max_events=40),
    st.one_of(windows, st.sampled_from([5, 20]).map(lambda g: SessionWindow(f"{g}s"))),
    st.integers(0, 10),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=40, max_size=40),
)
def test_float_sums_are_bit_identical_for_every_batch_size(frame, window, delay, values):
    """A window's sum and mean do not depend on the batch cut, to the last bit: each value goes into
    its window's sum in arrival order (a sum of per-batch partial sums rounded otherwise, so a stream
    stopped and resumed in other places wrote other last digits)."""
    frame = frame.assign(value=np.where(frame["value"].isna(), np.nan, values[: len(frame)]))
    aggs = [agg.count(), agg.sum("value"), agg.mean("value")]
    outs = [canon(run_window(frame, window, delay, 0, bs, aggs)[0]) for bs in (None, 1, 3, 7)]
    for out in outs[1:]:
        pdt.assert_frame_equal(out, outs[0], check_dtype=False, check_exact=True)


def test_a_sliding_window_of_many_panes_closes_in_time_proportional_to_its_data() -> None:
    """A one-day window sliding by the second has 86,400 panes: closing its windows looked up every pane
    of every window (6 events ran for over an hour); the panes with data now go to their windows."""
    times = pd.to_datetime([0, 5, 5, 3600, 7200, 86_000], unit="s", utc=True)
    frame = pd.DataFrame({"key": ["a", "a", "b", "a", "b", "a"], "timestamp": times})
    p = Pipeline(ListSource(frame, batch_size=2))
    out = p.window(SlidingWindow("1d", every="1s"), key="key").agg(agg.count())
    sink = ListSink()
    out.to(sink)
    p.run(clock=ManualClock(0))
    got = sink.frame()
    day = 86_400
    want: dict[tuple[str, int], int] = {}
    for key, t in zip(frame["key"], to_utc_ns(frame["timestamp"]) // 10**9):
        for start in range(int(t) - day + 1, int(t) + 1):
            want[(key, start)] = want.get((key, start), 0) + 1
    seen = dict(zip(zip(got["key"], to_utc_ns(got["window_start"]) // 10**9), got["count"]))
    assert seen == want
