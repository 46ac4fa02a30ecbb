"""Event times nanoseconds cannot hold (after 2262-04-11, before 1677-09-21) are missing times, not a
crash: ``9999-12-31`` ("valid until further notice") or a year 3000 typo in text, a ``datetime``, or a
second/millisecond/microsecond datetime column stopped the whole run with OutOfBoundsDatetime."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, ManualClock, Pipeline, SessionWindow, TumblingWindow, agg
from streamlab._time import NAT_NS, to_utc_ns, unreadable_time_reason


def reference(t: dt.datetime) -> int:
    """One time at a time, in Python integers: its nanoseconds, or missing beyond what int64 holds."""
    aware = t if t.tzinfo is not None else t.replace(tzinfo=dt.timezone.utc)
    delta = aware - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return ns if NAT_NS < ns <= 2**63 - 1 else NAT_NS


times = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)) | st.sampled_from(
    [
        dt.datetime(2262, 4, 11, 23, 47, 16, 854775),
        dt.datetime(2262, 4, 11, 23, 47, 16, 854776),
        dt.datetime(9999, 12, 31),
    ]
)


@given(
    st.lists(times, min_size=1, max_size=8), st.sampled_from(["text", "datetime", "aware", "s", "ms", "us"])
)
def test_every_kind_of_time_column_gives_nanoseconds_or_missing(values, kind):
    want = [reference(t) for t in values]
    if kind == "text":
        column = pd.Series([t.isoformat() + "Z" for t in values])
    elif kind == "datetime":
        column = pd.Series(values, dtype=object)
    elif kind == "aware":
        column = pd.Series([t.replace(tzinfo=dt.timezone.utc) for t in values], dtype=object)
    else:
        column = pd.Series(np.array([np.datetime64(t, kind) for t in values], dtype=f"datetime64[{kind}]"))
        want = [
            reference(t.replace(microsecond=t.microsecond // 1000 * 1000) if kind == "ms" else t)
            for t in values
        ]
        if kind == "s":
            want = [reference(t.replace(microsecond=0)) for t in values]
    assert to_utc_ns(column).tolist() == want


@pytest.mark.parametrize(
    "far",
    [
        "9999-12-31T23:59:59Z",
        dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc),
        pd.Timestamp("1500-01-01", tz="UTC"),
    ],
)
@pytest.mark.parametrize("window", [TumblingWindow("1m"), SessionWindow("1m")])
def test_a_window_sends_a_far_time_to_dead_letter_and_runs_on(far, window):
    events = [
        {"timestamp": "2024-01-01T00:00:00Z", "k": "a"},
        {"timestamp": far, "k": "a"},
        {"timestamp": "2024-01-01T00:00:10Z", "k": "a"},
    ]
    for batch_size in (None, 1):
        p = Pipeline(ListSource(events, batch_size=batch_size))
        counts = p.window(window, key="k").agg(agg.count())
        results, dead = ListSink(), ListSink()
        counts.to(results)
        counts.dead_letter.to(dead)
        p.run(clock=ManualClock(0))
        assert results.frame()["count"].tolist() == [2]
        assert dead.frame()["reason"].tolist() == [unreadable_time_reason("timestamp")]
