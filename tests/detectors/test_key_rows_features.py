"""The per-key features (z-score, time since last, ratio to median) on integer keys, whose batches take
a path of their own (the columns read in place, the keys mapped to rows through a dense map or a hash
table, one compiled pass), against per-event loops over plain dicts, event by event."""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import stats

from streamlab.detectors import RatioToMedianFeature, TimeSinceLastFeature, ZScoreFeature, _common

T0 = pd.Timestamp("2024-01-01", tz="UTC").value
S = 1_000_000_000
NAT = np.iinfo(np.int64).min


def reference(
    keys: list[int], values: list[float], times: list[int], cuts: list[int], max_keys: int, history: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Each feature event by event over dicts in update order (the least recently updated key forgotten
    beyond ``max_keys`` after each batch); events with a missing time are set aside (no output)."""
    var: dict[int, Any] = {}
    last: dict[int, int] = {}
    recent: dict[int, tuple[deque[float], list[float]]] = {}
    out: dict[str, list[float]] = {"z": [], "t": [], "m": []}
    evictions = {"z": 0, "t": 0, "m": 0}
    for a, b in itertools.pairwise([0, *cuts, len(keys)]):
        for k, v, t in zip(keys[a:b], values[a:b], times[a:b]):
            if t != NAT:  # (a missing time is a dead letter of time since last only)
                p = last.pop(k, None)
                out["t"].append(math.nan if p is None else (t - p) / 1e9)
                last[k] = t if p is None else max(p, t)
            if not math.isfinite(v):
                out["z"].append(math.nan)
            else:
                s = var.pop(k, None) or stats.Var()
                var[k] = s
                std = math.sqrt(s.get()) if s.n >= 2 else 0.0
                out["z"].append((v - s.mean.get()) / std if std > 0 else math.nan)
                s.update(v)
            if math.isnan(v):
                out["m"].append(math.nan)
                continue
            fifo, ordered = recent.pop(k, None) or (deque(), [])
            recent[k] = (fifo, ordered)
            m = len(ordered)
            med = (ordered[m // 2] if m % 2 else 0.5 * (ordered[m // 2 - 1] + ordered[m // 2])) if m else 0.0
            out["m"].append(v / med if med != 0 else math.nan)
            fifo.append(v)
            bisect.insort(ordered, v)
            if len(fifo) > history:
                del ordered[bisect.bisect_left(ordered, fifo.popleft())]
        for name, d in (("z", var), ("t", last), ("m", recent)):
            while len(d) > max_keys:
                del d[next(iter(d))]
                evictions[name] += 1
    return out, evictions


@st.composite
def int_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, list[int], int]:
    """Integer keys from a narrow range (the dense map), from one with far-apart keys (it widens, then
    gives way to the hash table) or from anywhere in int64; values with NaN, inf, signed zeros and
    ties; times out of order, some missing; batch cuts (batches of one included) and a restore point."""
    n = draw(st.integers(1, 70))
    pool = draw(
        st.sampled_from(
            [
                list(range(6)),
                [-3, 0, 5, 40, 1500],
                [7, 2**20, -(2**20), 123_456_789],
                [2**63 - 1, -(2**63), 0, -1, 2**62],
            ]
        )
    )
    keys = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    values = draw(
        st.lists(
            st.sampled_from([1.0, 2.5, 2.5, 0.0, -0.0, -3.0, 40.0, math.nan, math.inf, 1e300]),
            min_size=n,
            max_size=n,
        )
    )
    secs = draw(st.lists(st.integers(0, 900), min_size=n, max_size=n))
    times = [T0 + s * S for s in secs]
    if draw(st.booleans()):
        for i in draw(st.lists(st.integers(0, n - 1), max_size=3)):
            times[i] = NAT
    if n <= 30 and draw(st.booleans()):
        cuts = list(range(1, n))
    else:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=5))))
    df = pd.DataFrame(
        {
            "user_id": np.array(keys, dtype=np.int64),
            "amount": np.array(values, dtype=np.float64),
            "timestamp": pd.to_datetime(np.array(times, dtype=np.int64), utc=True),
        }
    )
    return df, cuts, draw(st.integers(0, n))


@settings(max_examples=60, deadline=None)
@given(int_streams(), st.sampled_from([1, 2, 3, 100]), st.integers(1, 4), st.booleans())
def test_integer_keys_equal_the_per_event_loops(
    stream: tuple[pd.DataFrame, list[int], int], max_keys: int, history: int, compiled: bool
) -> None:
    """Bit for bit, with evictions, a snapshot restored mid-stream, batches of one, compiled and plain
    (numba absent: the columns' general path and the kernels' Python twins)."""
    df, cuts, restore_at = stream
    ts = df["timestamp"].array.asi8.tolist()
    expected, evictions = reference(
        df["user_id"].tolist(), df["amount"].tolist(), ts, cuts, max_keys, history
    )
    steps = {
        "z": ZScoreFeature("user_id", "amount", max_keys=max_keys),
        "t": TimeSinceLastFeature("user_id", max_keys=max_keys),
        "m": RatioToMedianFeature("user_id", "amount", history=history, max_keys=max_keys),
    }
    _common.use_kernels = compiled
    try:
        for name, step in steps.items():
            op, got = step.build(), []
            for a, b in itertools.pairwise([0, *cuts, len(df)]):
                if a == min(restore_at, len(df) - 1) and a > 0:
                    snap = op.snapshot()
                    op.process(df.iloc[a:])  # work after the snapshot must not leak into it
                    op = step.build()
                    op.restore(snap)
                got.append(op.process(df.iloc[a:b])["out"][step.column_name()].to_numpy())
            g, w = np.concatenate(got), np.asarray(expected[name], dtype=np.float64)
            assert np.array_equal(np.isnan(g), np.isnan(w)), name
            assert g[~np.isnan(w)].view(np.int64).tolist() == w[~np.isnan(w)].view(np.int64).tolist(), name
            assert op.open_state()["evictions"] == evictions[name], name
    finally:
        _common.use_kernels = True


@pytest.mark.parametrize(
    "step",
    [
        ZScoreFeature("user_id", "amount"),
        TimeSinceLastFeature("user_id"),
        RatioToMedianFeature("user_id", "amount", history=3),
    ],
)
def test_the_integer_key_path_gives_the_frame_of_the_general_one(step: Any) -> None:
    """Same frame (columns, dtypes, index, attrs) as the general path; the batch is left as it was,
    and writing into the output does not reach it (copy-on-write)."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, 5, 30),
            "amount": rng.choice([1.0, 2.0, np.nan], 30),
            "country": pd.Series(rng.choice(["FR", "US"], 30), dtype="str"),
            "timestamp": pd.to_datetime(T0 + np.sort(rng.integers(0, 600, 30)) * S, utc=True),
        },
        index=np.arange(100, 130),
    )
    df.attrs["source"] = {"topic": "tx"}
    before = df.copy()
    fast = step.build().process(df)["out"]
    _common.use_kernels = False
    try:
        general = step.build().process(df)["out"]
    finally:
        _common.use_kernels = True
    pd.testing.assert_frame_equal(fast, general)
    assert fast.attrs == general.attrs == {"source": {"topic": "tx"}}
    assert fast.attrs["source"] is not df.attrs["source"]  # deep-copied, as reset_index copies them
    fast.loc[0, "amount"] = -1.0
    fast.loc[0, "user_id"] = 99
    pd.testing.assert_frame_equal(df, before)


def test_a_wide_key_range_moves_from_the_dense_map_to_the_hash_table() -> None:
    """Keys first within a narrow range (a dense map), then one far away (the map would be too wide:
    the hash table takes over mid-batch), then the rows compacted after evictions: the values of the
    same keys as strings (the general path), batch after batch."""
    rng = np.random.default_rng(11)
    near = rng.integers(0, 3000, 4000)
    far = np.where(rng.random(4000) < 0.3, rng.integers(-(2**62), 2**62, 4000), near)
    keys = np.r_[near, far]
    n = len(keys)
    df = pd.DataFrame(
        {
            "user_id": keys,
            "amount": rng.choice([1.0, 2.0, 5.0, np.nan], n),
            "timestamp": pd.to_datetime(T0 + np.sort(rng.integers(0, 3600, n)) * S, utc=True),
        }
    )
    text = df.assign(user_id=df["user_id"].astype(str))
    for step in (
        ZScoreFeature("user_id", "amount", max_keys=500),
        TimeSinceLastFeature("user_id", max_keys=500),
        RatioToMedianFeature("user_id", "amount", history=5, max_keys=500),
    ):
        ints, strs = step.build(), step.build()
        for a, b in itertools.pairwise([0, 1000, 3999, 4001, 6000, n]):
            got = ints.process(df.iloc[a:b])["out"][step.column_name()].to_numpy()
            want = strs.process(text.iloc[a:b])["out"][step.column_name()].to_numpy()
            np.testing.assert_array_equal(got, want)
            if b <= 3999:
                assert ints.hashed is None  # the dense map (or none, after a compaction)
            elif b >= 6000:
                assert ints.dense is None
        assert ints.open_state() == strs.open_state()
        assert ints.open_state()["evictions"] > 0


def test_the_medians_first_arrays_leave_room_for_the_next_batchs_new_keys() -> None:
    """The values' arrays (~1.6 kB a key) made for the first batch's keys have spare rows: a next
    batch with a few new keys does not copy every key's values into bigger arrays."""
    op = RatioToMedianFeature("user_id", "amount").build()
    first = pd.DataFrame({"user_id": np.arange(1000, dtype=np.int64), "amount": np.ones(1000)})
    op.process(first)
    ring, ordered = op.ring, op.ordered  # type: ignore[attr-defined]
    more = pd.DataFrame({"user_id": np.arange(990, 1010, dtype=np.int64), "amount": np.full(20, 2.0)})
    out = op.process(more)["out"]["ratio_to_median_amount"].to_numpy()
    assert op.ring is ring and op.ordered is ordered  # type: ignore[attr-defined]
    assert out[:10].tolist() == [2.0] * 10 and np.isnan(out[10:]).all()


@st.composite
def filling_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, list[int], int, int]:
    """Few keys, many values each (windows that fill and slide within a batch), ties and signed
    zeros; batch cuts, a history, and the batch a snapshot is taken before."""
    n = draw(st.integers(1, 120))
    n_keys = draw(st.integers(1, 6))
    keys = draw(st.lists(st.integers(0, n_keys - 1), min_size=n, max_size=n))
    values = draw(
        st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.5, -4.0, math.inf, 7.0]), min_size=n, max_size=n)
    )
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6))))
    df = pd.DataFrame({"user_id": np.array(keys, dtype=np.int64), "amount": np.array(values)})
    return df, [c for c in cuts if c < n], draw(st.integers(1, 12)), draw(st.integers(0, len(cuts)))


@settings(max_examples=60, deadline=None)
@given(filling_streams(), st.booleans(), st.booleans())
def test_median_snapshots_leave_out_spare_rows_and_restore_either_layout(
    stream: tuple[pd.DataFrame, list[int], int, int], compiled: bool, untrimmed: bool
) -> None:
    """A snapshot holds the values of the index's keys only (not the arrays' spare rows); restored
    mid-stream, from it or from one of the whole arrays (as taken before), the run goes on bit for
    bit as the per-event loop, windows filling and sliding, compiled and plain."""
    import pickle

    df, cuts, history, snap_before = stream
    keys, values = df["user_id"].tolist(), df["amount"].tolist()
    expected, _ = reference(keys, values, [0] * len(df), cuts, 100, history)
    step = RatioToMedianFeature("user_id", "amount", history=history)
    bounds = [0, *cuts, len(df)]
    _common.use_kernels = compiled
    try:
        op, got = step.build(), []
        for at, (a, b) in enumerate(itertools.pairwise(bounds)):
            if at == snap_before and a > 0:
                snap = op.snapshot()
                state = pickle.loads(snap)
                n_keys = len(state["index"])
                assert len(state["ring"]) == len(state["ordered"]) == n_keys
                if untrimmed:  # the layout snapshots had before: every row of the arrays, spare ones too
                    snap = pickle.dumps(op.__dict__, protocol=pickle.HIGHEST_PROTOCOL)
                op.process(df.iloc[a:])  # work after the snapshot must not leak into it
                op = step.build()
                op.restore(snap)
            got.append(op.process(df.iloc[a:b])["out"]["ratio_to_median_amount"].to_numpy())
    finally:
        _common.use_kernels = True
    g, w = np.concatenate(got), np.asarray(expected["m"], dtype=np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(w))
    assert g[~np.isnan(w)].view(np.int64).tolist() == w[~np.isnan(w)].view(np.int64).tolist()
