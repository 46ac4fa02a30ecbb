"""The vectorized kernels under the window operators, each against a plain recomputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, ManualClock, Pipeline, TumblingWindow, agg
from streamlab._windowing import _NO_WATERMARK, KeyIndex, late_rows, present_codes


def late_rows_reference(ts, kwin, slide, close_shift, prev_max, delay):
    """Per event: the watermark at its arrival, and whether its window had closed by then."""
    rows, wms, top = [], [], prev_max
    for i, (t, k) in enumerate(zip(ts.tolist(), kwin.tolist())):
        top = t if top == _NO_WATERMARK else max(top, t)
        if k * slide + close_shift <= top - delay:
            rows.append(i)
            wms.append(top - delay)
    return rows, wms


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.sampled_from([1, 1023, 1024, 1025, 2049, 6000]), st.integers(1, 6000)),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.001, 0.05, 0.6]),
    st.integers(0, 30),
    st.integers(0, 20),
    st.booleans(),
)
def test_late_rows_equals_per_event_reference(n, seed, far_share, delay, lateness, has_prev):
    rng = np.random.default_rng(seed)
    # about 10 events per second, a few seconds of disorder, and a share of events far in the past
    ts = np.arange(n) // 10 + rng.integers(-5, 1, n) - np.where(rng.random(n) < far_share, 300, 0)
    size = 30
    kwin = ts // size
    prev_max = int(ts[: max(1, n // 3)].max()) if has_prev else _NO_WATERMARK
    close_shift = size + lateness
    pos, wm = late_rows(ts, kwin, size, close_shift, prev_max, delay)
    want_rows, want_wm = late_rows_reference(ts, kwin, size, close_shift, prev_max, delay)
    assert pos.tolist() == want_rows
    assert wm.tolist() == want_wm


@given(st.lists(st.integers(0, 300), max_size=500), st.integers(0, 5000))
def test_present_codes_equals_unique(codes, extra):
    codes = np.asarray(codes, dtype=np.int64)
    n = int(codes.max()) + 1 + extra if len(codes) else 1 + extra
    present, group, sizes = present_codes(codes, n)
    want, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    assert present.tolist() == want.tolist()
    assert group.tolist() == inverse.tolist()
    assert sizes.tolist() == counts.tolist()


def test_local_codes_map_categorical_codes_and_missing_keys_to_stable_ids():
    index = KeyIndex(1)
    frame = pd.DataFrame({"k": pd.Categorical(["b", None, "a", "b"], categories=["a", "b", "unused"])})
    local, ids_of = index.local_codes(frame, ["k"])
    ids = ids_of(np.unique(local))[np.unique(local, return_inverse=True)[1]]
    assert [index.values[i] for i in ids.tolist()] == ["b", None, "a", "b"]
    assert "unused" not in index.live_values()  # only keys present get an id
    local2, values2 = index.local_keys(pd.DataFrame({"k": ["a", "b", np.nan]}), ["k"])
    again = [index.id_of(values2[c]) for c in local2.tolist()]
    assert again == [ids[2], ids[0], ids[1]]  # NaN and None are the same missing key


def test_session_keys_seen_only_in_late_rows_leave_no_state():
    from streamlab import ListSink, ListSource, ManualClock, Pipeline, SessionWindow, agg

    base = pd.Timestamp("2024-01-01", tz="UTC")
    on_time = [{"user": "u0", "timestamp": base + pd.Timedelta(minutes=m)} for m in range(0, 600, 60)]
    # after each on-time event: 50 late events of users never seen before (far behind the watermark)
    rows = []
    for i, e in enumerate(on_time):
        rows.append(e)
        rows += [{"user": f"late-{i}-{j}", "timestamp": base} for j in range(50)]
    p = Pipeline(ListSource(pd.DataFrame(rows), batch_size=17))
    out = p.window(SessionWindow("5m"), key="user").agg(agg.count())
    late = ListSink()
    out.late.to(late)
    from streamlab.runtime import Executor

    ex = Executor(p, clock=ManualClock(0))
    ex.open()
    while ex.poll_once():
        pass
    op = ex.operators["window"]
    assert len(late.frame()) == 50 * (len(on_time) - 1)  # all but the first group come after a session
    # the first 50 were on time and had sessions (their ids are free again); the 450 late-only keys got none
    assert set(op.key_index.live_values()) <= {"u0"} and op.key_index.n_ids <= 51
    ex.close()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([5, 200, 50_000]), st.sampled_from([37, 1000]))
def test_categorical_keys_with_missing_values_equal_pandas(seed, n_categories, batch_size):
    # a categorical key column with unused categories (many of them) and missing values
    rng = np.random.default_rng(seed)
    n = 2000
    cats = [f"k{i}" for i in range(n_categories)]
    codes = rng.integers(-1, min(n_categories, 40), n)
    frame = pd.DataFrame(
        {
            "key": pd.Categorical.from_codes(codes, categories=cats),
            "value": rng.random(n),
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
        }
    )
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    sink = ListSink()
    p.window(TumblingWindow("60s"), key="key").agg(agg.count(), agg.sum("value")).to(sink)
    p.run(clock=ManualClock(0))
    got = sink.frame()
    got = got.assign(key=got["key"].astype(object).where(got["key"].notna(), "<NA>"))
    want = (
        frame.assign(
            key=frame["key"].astype(object).where(frame["key"].notna(), "<NA>"),
            window_start=frame["timestamp"].dt.floor("60s"),
        )
        .groupby(["key", "window_start"])["value"]
        .agg(count="count", sum_value="sum")
        .reset_index()
    )
    got = got.sort_values(["window_start", "key"]).reset_index(drop=True)
    want = want.sort_values(["window_start", "key"]).reset_index(drop=True)
    assert got["key"].tolist() == want["key"].tolist()
    assert got["window_start"].tolist() == want["window_start"].tolist()
    assert got["count"].tolist() == want["count"].tolist()
    np.testing.assert_allclose(got["sum_value"].to_numpy(), want["sum_value"].to_numpy())
