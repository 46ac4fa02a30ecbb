"""A window keyed by a category column gives what the same keys as text give. Categorical codes are
int8 for a few categories: session windows with out-of-order events computed ``code * (number of
times)`` in int8 and failed the run with ``OverflowError: Python integer 276 out of bounds for int8`` (the
demo's clickstream keyed by its category ``event_type`` with SessionWindow('30s') did)."""

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

from ._streams import event_streams


def run(frame: pd.DataFrame, window, delay: int, batch_size: int | None) -> pd.DataFrame:
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    out = p.window(window, key="key", delay=f"{delay}s").agg(agg.count(), agg.sum("value"))
    results = ListSink()
    out.to(results)
    p.run(clock=ManualClock(0))
    got = results.frame()
    got["key"] = got["key"].astype(str)
    return got.sort_values(["key", "window_start"]).reset_index(drop=True)


@settings(max_examples=40, deadline=None)
@given(
    event_streams(max_events=150),
    st.sampled_from(
        [SessionWindow("5s"), SessionWindow("20s"), TumblingWindow("10s"), SlidingWindow("20s", every="10s")]
    ),
    st.integers(0, 15),
    st.sampled_from([None, 7, 40]),
)
def test_category_keys_give_what_text_keys_give(frame, window, delay, batch_size):
    as_text = run(frame, window, delay, batch_size)
    as_category = run(frame.assign(key=frame["key"].astype("category")), window, delay, batch_size)
    pdt.assert_frame_equal(as_category, as_text)


def test_sessions_by_a_category_over_out_of_order_events_run_and_equal_text_keys():
    rng = np.random.default_rng(0)
    n = 400
    seconds = np.sort(rng.integers(0, 3000, n)) + rng.integers(-60, 1, n)  # up to a minute out of order
    frame = pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s"),
            "key": rng.choice(["a", "b", "c"], n),
            "value": rng.normal(size=n),
        }
    )
    for batch_size in (None, 200):
        as_text = run(frame, SessionWindow("30s"), 5, batch_size)
        as_category = run(
            frame.assign(key=frame["key"].astype("category")), SessionWindow("30s"), 5, batch_size
        )
        assert len(as_text) > 100
        pdt.assert_frame_equal(as_category, as_text)
