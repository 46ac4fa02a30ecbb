"""Event times at the ends of what int64 nanoseconds hold: a window step never wraps a window round.

An event at 2262-04-11T23:50Z had the window [23:50, 1677-09-21T00:12:43) (its end overflowed), and a
session there was reported late; an event in the first minute of 1677-09-21 got a window starting in
2262. Such events now go to the window step's dead-letter output with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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

MIN, MAX = int(np.iinfo(np.int64).min) + 1, int(np.iinfo(np.int64).max)
S = 1_000_000_000


def run(times: list[int], window, delay: int, lateness: int, batch_size: int | None):
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.array(times, dtype=np.int64), unit="ns", utc=True),
            "k": "a",
            "i": range(len(times)),
        }
    )
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    w = p.window(window, key="k", delay=f"{delay}s", lateness=f"{lateness}s").agg(agg.count(), agg.first("i"))
    results, late, dead = ListSink(), ListSink(), ListSink()
    w.to(results)
    w.late.to(late)
    w.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    return results.frame(), late.frame(), dead.frame()


near_ends = st.lists(
    st.one_of(st.integers(0, 400 * S).map(lambda d: MAX - d), st.integers(0, 400 * S).map(lambda d: MIN + d)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    near_ends,
    st.sampled_from([10, 60, 90]),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 20),
    st.sampled_from([None, 1, 3]),
)
def test_a_tumbling_window_places_every_event_exactly_or_dead_letters_it(
    times, size, offset, delay, lateness, bs
):
    off = (offset % size) * S
    results, late, dead = run(times, TumblingWindow(f"{size}s", offset=f"{off // S}s"), delay, lateness, bs)
    size_ns, late_ns = size * S, lateness * S
    assert results["count"].sum() + len(late) + len(dead) == len(times)
    assert (results["window_end"] > results["window_start"]).all()
    assert ((results["window_end"] - results["window_start"]) == pd.Timedelta(size_ns, "ns")).all()
    dead_times = {t.value for t in dead["timestamp"]} if len(dead) else set()
    assert set(dead["reason"]) <= {r for r in dead["reason"] if "event time outside" in r and "Fix:" in r}
    for t in times:
        start = (t - off) // size_ns * size_ns + off
        overflows = start + size_ns + late_ns > MAX
        if overflows:  # exactly those at the top end
            assert t in dead_times
        elif t in dead_times:  # at the bottom end, a margin of the window's reach and delay + lateness
            assert t - off - max(size_ns, delay * S + late_ns) < MIN


@settings(max_examples=40, deadline=None)
@given(
    near_ends, st.sampled_from([(60, 20), (60, 60), (50, 20)]), st.integers(0, 20), st.sampled_from([None, 1])
)
def test_sliding_windows_and_sessions_near_the_ends_never_wrap(times, shape, lateness, bs):
    for window in (SlidingWindow(f"{shape[0]}s", every=f"{shape[1]}s"), SessionWindow(f"{shape[0]}s")):
        results, late, dead = run(times, window, 0, lateness, bs)
        assert (results["window_end"] > results["window_start"]).all()
        for t in dead["timestamp"] if len(dead) else []:
            assert t.value + shape[0] * S + lateness * S > MAX or t.value - shape[0] * S - lateness * S < MIN
        if isinstance(window, SessionWindow):
            assert results["count"].sum() + len(late) + len(dead) == len(times)


def test_the_last_minute_of_2262_is_a_dead_letter_not_a_window_ending_in_1677():
    times = [pd.Timestamp("2024-01-01T00:00:00Z").value, pd.Timestamp("2262-04-11T23:47:16Z").value]
    for window in (TumblingWindow("1m"), SlidingWindow("1h", every="1m"), SessionWindow("1m")):
        results, late, dead = run(times, window, 0, 0, None)
        assert results["window_end"].dt.year.eq(2024).all() and results["first_i"].eq(0).all()
        assert dead["i"].tolist() == [1] and dead["reason"].str.contains("event time outside").all()
        assert late.empty


def test_sessions_of_times_more_than_292_years_apart_stay_apart():
    # their distance overflowed int64: 1900 and 2200 were one session [2200-01-01, 1900-01-01T00:01)
    times = [pd.Timestamp(x).value for x in ("1900-01-01T00:00:00Z", "2200-01-01T00:00:00Z")]
    for bs in (None, 1):
        results, _, dead = run(times, SessionWindow("60s"), 0, 0, bs)
        assert dead.empty
        assert results["count"].tolist() == [1, 1] and results["first_i"].tolist() == [0, 1]
        assert (results["window_end"] - results["window_start"] == pd.Timedelta("60s")).all()


def test_a_join_within_its_delay_after_1677_runs_and_reports_the_earliest_watermark():
    # the watermark (earliest time - delay, below int64) failed the run when its metrics were read
    frame = pd.DataFrame({"timestamp": pd.to_datetime([MIN + S], unit="ns", utc=True), "k": ["a"]})
    p = Pipeline()
    left = p.add_source(ListSource(frame), step_id="left")
    right = p.add_source(ListSource(frame), step_id="right")
    joined = left.join_interval(right, on="k", lower="-1m", upper="1m", delay="1h")
    rows = ListSink()
    joined.to(rows)
    result = p.run(clock=ManualClock(0))
    assert len(rows.frame()) == 1
    assert result.metrics["watermarks"]["join"] == pd.Timestamp.min.tz_localize("UTC")
