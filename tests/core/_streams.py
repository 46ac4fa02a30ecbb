"""Random event streams with disorder, duplicates and late events, and a reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import strategies as st

BASE = pd.Timestamp("2024-01-01T00:00:00Z")


@st.composite
def event_streams(draw: st.DrawFn, max_events: int = 60) -> pd.DataFrame:
    """Events in arrival order: mostly increasing time with jitter, some far-behind (late) ones, repeats."""
    n = draw(st.integers(1, max_events))
    steps = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
    jitter = draw(st.lists(st.integers(-12, 3), min_size=n, max_size=n))
    far = draw(st.lists(st.sampled_from([0] * 8 + [60, 150]), min_size=n, max_size=n))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    values = draw(
        st.lists(
            st.one_of(
                st.floats(-1000, 1000, allow_nan=False, width=32),
                st.just(math.nan),
                st.integers(0, 5).map(float),
            ),
            min_size=n,
            max_size=n,
        )
    )
    t = np.cumsum(steps) + np.asarray(jitter) - np.asarray(far)
    t = t - t.min()
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "key": keys,
            "value": values,
            "label": [f"l{int(v) % 3}" if v == v else None for v in values],
            "timestamp": BASE + pd.to_timedelta(t, unit="s"),
        }
    )
    return frame


def reference_assignments(
    frame: pd.DataFrame, window, delay_s: int, lateness_s: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-event, per-window admission with the watermark at each arrival (the semantics, spelled out)."""
    ts = (frame["timestamp"] - BASE).dt.total_seconds().astype(int).to_numpy()
    size = window.size_ns // 10**9
    slide = getattr(window, "every_ns", window.size_ns) // 10**9
    admitted, late = [], []
    running_max = None
    for i, t in enumerate(ts):
        running_max = t if running_max is None else max(running_max, t)
        wm = running_max - delay_s
        first = (t // slide) * slide
        starts = []
        s = first
        while s + size > t:
            starts.append(s)
            s -= slide
        for s in sorted(starts):
            row = {
                "row": i,
                "window_start": BASE + pd.Timedelta(seconds=int(s)),
                "window_end": BASE + pd.Timedelta(seconds=int(s + size)),
            }
            (late if s + size + lateness_s <= wm else admitted).append(row)
    cols = ["row", "window_start", "window_end"]
    return pd.DataFrame(admitted, columns=cols), pd.DataFrame(late, columns=cols)


def pandas_window_aggregates(frame: pd.DataFrame, admitted: pd.DataFrame) -> pd.DataFrame:
    """Batch recomputation of every aggregator over the admitted (event, window) pairs."""
    rows = frame.assign(row=np.arange(len(frame))).merge(admitted, on="row")
    rows = rows.sort_values(["timestamp", "row"], kind="stable")
    g = rows.groupby(["key", "window_start", "window_end"], sort=True)
    out = pd.DataFrame(
        {
            "count": g.size(),
            "sum_value": g["value"].sum(),
            "mean_value": g["value"].mean(),
            "min_value": g["value"].min(),
            "max_value": g["value"].max(),
            "count_distinct_label": g["label"].nunique(),
            "first_label": g["label"].agg(lambda s: s.iloc[0]),
            "last_label": g["label"].agg(lambda s: s.iloc[-1]),
        }
    ).reset_index()
    return out


def pandas_sessions(frame: pd.DataFrame, gap_s: int) -> pd.DataFrame:
    """Batch sessionization: a new session when the gap to the previous event of the key is >= gap."""
    rows = frame.sort_values(["key", "timestamp"], kind="stable")
    out = []
    for key, grp in rows.groupby("key", sort=True):
        ts = grp["timestamp"].tolist()
        vals = grp["value"].tolist()
        start, last, n, total = ts[0], ts[0], 1, np.nansum([vals[0]])
        for t, v in zip(ts[1:], vals[1:]):
            if (t - last).total_seconds() < gap_s:
                last, n, total = max(last, t), n + 1, total + np.nansum([v])
            else:
                out.append((key, start, last + pd.Timedelta(seconds=gap_s), n, total))
                start, last, n, total = t, t, 1, np.nansum([v])
        out.append((key, start, last + pd.Timedelta(seconds=gap_s), n, total))
    return pd.DataFrame(out, columns=["key", "window_start", "window_end", "count", "sum_value"])
