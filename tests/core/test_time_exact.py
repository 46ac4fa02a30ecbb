"""Event times from epoch numbers, datetimes and ISO text are exact to the nanosecond (issue #16's bug:
an int64 epoch-ms 1700000525610 became 1700000525609999872 ns through float64)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from streamlab import ManualClock, Pipeline, SessionWindow, agg
from streamlab._time import NAT_NS, to_utc_ns
from streamlab.testing import ListSource

SECONDS = st.integers(-(9 * 10**9), 9 * 10**9)  # int64 nanoseconds hold about ±292 years
MILLIS = st.integers(10**11 + 1, 9 * 10**12)


@given(st.lists(SECONDS, max_size=30), st.lists(MILLIS, max_size=30))
def test_integer_epoch_seconds_and_milliseconds_are_exact(seconds: list[int], millis: list[int]) -> None:
    values = seconds + millis
    want = [v * 10**9 for v in seconds] + [v * 10**6 for v in millis]
    assert to_utc_ns(pd.Series(values, dtype="int64")).tolist() == want
    # nullable ints, and whole numbers pandas keeps as float64 because of a null, give the same
    with_null = pd.Series([*values, None], dtype="Int64")
    assert to_utc_ns(with_null).tolist() == [*want, NAT_NS]
    as_float = pd.Series([*values, None], dtype="float64")
    exact = [w for v, w in zip(values, want) if abs(v) < 2**53]
    got = to_utc_ns(as_float).tolist()
    assert [g for v, g in zip(values, got) if abs(v) < 2**53] == exact and got[-1] == NAT_NS


def test_epochs_beyond_int64_nanoseconds_are_missing_not_wrapped() -> None:
    huge = pd.Series([10**10, -(10**10), 10**13, 2**63 - 1], dtype="int64")  # seconds, seconds, ms, ms
    assert to_utc_ns(huge).tolist() == [NAT_NS] * 4
    assert to_utc_ns(pd.Series([1e300, float("inf")])).tolist() == [NAT_NS, NAT_NS]


@given(st.lists(st.integers(-(2 * 10**18), 2 * 10**18), max_size=30))
def test_datetimes_and_iso_text_are_exact(ns: list[int]) -> None:
    stamps = pd.Series(pd.to_datetime(ns, unit="ns", utc=True))
    assert to_utc_ns(stamps).tolist() == ns
    text = pd.Series([t.isoformat() for t in stamps])  # nanosecond ISO-8601 text
    assert to_utc_ns(text).tolist() == ns


def test_session_windows_over_epoch_millisecond_ints_start_at_the_input_times() -> None:
    times = [1700000525610, 1700000525611, 1700000535999, 1700000599001]
    frame = pd.DataFrame({"user": ["u"] * 4, "timestamp": times})
    p = Pipeline(ListSource(frame), name="exact")
    p.window(SessionWindow("5s"), key="user").agg(agg.count())
    out = p.run(clock=ManualClock(0))["window"].sort_values("window_start")
    starts = [t.value // 10**6 for t in out["window_start"]]
    assert starts == [1700000525610, 1700000535999, 1700000599001]
    assert all(t.value % 10**6 == 0 for t in out["window_start"])  # whole milliseconds, not 128 ns off
