"""VelocityFeature and DistinctCountFeature against a per-event reference that retains what they retain.

The reference keeps every event of a key in a list and, between batches, drops the events no later
than ``newest time - window - allowed_lateness`` (what the steps' state keeps); each event then
counts its key's kept events and the batch's earlier ones in ``(t - window, t]``. So late events
beyond the lateness, batch cuts (batches of one included), disorder, a snapshot/restore mid-stream,
integer and string keys, the compiled kernels and the numpy path are all held to the same counts.
Value columns of 3, 20 and 70 values reach each way the compiled distinct count tells values apart
(each value's newest time, bits of one word, a slot per value).
"""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab.detectors import DistinctCountFeature, VelocityFeature, VelocityRule
from streamlab.operators import Operator

T0 = pd.Timestamp("2024-01-01", tz="UTC").value
S = 1_000_000_000


def reference(batches: list[pd.DataFrame], window_ns: int, lateness_ns: int, value: str | None) -> list[int]:
    """Counts (distinct counts of ``value`` when given) event by event, state pruned between batches."""
    kept: dict[Any, list[tuple[int, Any]]] = {}
    newest: int | None = None
    out = []
    for batch in batches:
        if newest is not None:
            horizon = newest - window_ns - lateness_ns
            kept = {k: [(t, v) for t, v in entries if t > horizon] for k, entries in kept.items()}
        values = batch[value].tolist() if value is not None else [None] * len(batch)
        times = batch["timestamp"].array.asi8.tolist()
        for key, t, v in zip(batch["user_id"].tolist(), times, values):
            entries = kept.setdefault(key, [])
            entries.append((t, v))
            inside = [w for u, w in entries if t - window_ns < u <= t]
            out.append(len({w for w in inside if w is not None}) if value is not None else len(inside))
            newest = t if newest is None else max(newest, t)
    return out


@st.composite
def cut_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, list[int], int]:
    """Few or many keys (integers or text), times mostly ascending with steps back (some far beyond a
    short lateness), value columns of few or many values with missing ones, cuts and a restore point."""
    n = draw(st.integers(1, 120))
    n_keys = draw(st.sampled_from([1, 2, 5, 40]))
    keys = draw(st.lists(st.integers(0, n_keys - 1), min_size=n, max_size=n))
    steps = draw(st.lists(st.sampled_from([0, 1, 2, 5, 20, -3, -40]), min_size=n, max_size=n))
    n_values = draw(st.sampled_from([3, 20, 70]))
    codes = draw(st.lists(st.integers(-1, n_values - 1), min_size=n, max_size=n))
    user = np.array(keys, dtype=np.int64) * 7919 - 2**40
    df = pd.DataFrame(
        {
            "user_id": user if draw(st.booleans()) else user.astype(str),
            "timestamp": pd.to_datetime(np.cumsum(steps) * S + T0, utc=True),
            "country": pd.Series([None if c < 0 else f"v{c}" for c in codes], dtype=object),
        }
    )
    if n <= 40 and draw(st.booleans()):
        cuts = list(range(1, n))  # batches of one event
    else:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6))))
    return df, cuts, draw(st.integers(0, n))


def run_cut(
    step: Any, df: pd.DataFrame, cuts: list[int], restore_at: int
) -> tuple[list[int], list[pd.DataFrame]]:
    """The step's output column over the batches, restored from a pickled snapshot before the first
    batch starting at or after ``restore_at``; and the batches."""
    op: Operator = step.build()
    parts, batches, restored = [], [], False
    for a, b in itertools.pairwise([0, *cuts, len(df)]):
        if b <= a:
            continue
        if not restored and a >= restore_at:
            fresh = step.build()
            fresh.restore(pickle.loads(pickle.dumps(op.snapshot())))
            op, restored = fresh, True
        batches.append(df.iloc[a:b])
        parts.append(op.process(df.iloc[a:b])["out"])
    if isinstance(step, VelocityRule):
        column = f"{step.name}_count"
    else:
        column = step.column_names()[0] if isinstance(step, VelocityFeature) else step.column_name()
    return pd.concat(parts, ignore_index=True)[column].astype("int64").tolist(), batches


@settings(max_examples=160, deadline=None)
@given(
    cut_streams(),
    st.sampled_from([1, 5, 30]),
    st.sampled_from([0, 2, 3600]),
    st.booleans(),
    st.sampled_from(["velocity", "distinct"]),
)
def test_counts_equal_the_per_event_reference(
    stream: tuple[pd.DataFrame, list[int], int], window_s: int, lateness_s: int, compiled: bool, kind: str
) -> None:
    """Compiled (the merge kernels) and without numba (the numpy paths)."""
    from streamlab.detectors import _common

    df, cuts, restore_at = stream
    durations = {"window": f"{window_s}s", "allowed_lateness": f"{lateness_s}s"}
    step: VelocityFeature | DistinctCountFeature = (
        VelocityFeature("user_id", **durations)
        if kind == "velocity"
        else DistinctCountFeature("user_id", "country", **durations)
    )
    _common.use_kernels = compiled
    try:
        got, batches = run_cut(step, df, cuts, restore_at)
    finally:
        _common.use_kernels = True
    value = "country" if kind == "distinct" else None
    assert got == reference(batches, window_s * S, lateness_s * S, value)


@settings(max_examples=40, deadline=None)
@given(cut_streams(), st.sampled_from([1, 30]), st.sampled_from([0, 3600]))
def test_velocity_rule_counts_equal_the_per_event_reference(
    stream: tuple[pd.DataFrame, list[int], int], window_s: int, lateness_s: int
) -> None:
    df, cuts, restore_at = stream
    step = VelocityRule(
        "user_id", f"{window_s}s", max_count=2, name="burst", allowed_lateness=f"{lateness_s}s"
    )
    got, batches = run_cut(step, df, cuts, restore_at)
    assert got == reference(batches, window_s * S, lateness_s * S, None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-3, 3), max_size=6),
    st.lists(st.integers(-3, 3), max_size=6),
)
def test_same_array_is_array_equal(a: list[int], b: list[int]) -> None:
    """The look at both ends before the pass (the sort cache's and ``SharedCounts``' check) answers
    as ``np.array_equal``, differences in the middle included."""
    from streamlab.detectors._windowcount import _same_array

    x, y = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
    assert _same_array(x, y) == bool(np.array_equal(x, y))
    assert _same_array(x, x.copy())
