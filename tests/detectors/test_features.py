"""Feature and rule steps against a brute-force pandas recomputation over the whole stream."""

from __future__ import annotations

import itertools
import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab.detectors import (
    DistinctCountFeature,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.operators import Operator

T0 = pd.Timestamp("2024-01-01", tz="UTC").value
S = 1_000_000_000


@st.composite
def streams(draw: st.DrawFn) -> tuple[pd.DataFrame, list[int]]:
    """A stream with few keys, duplicate and out-of-order times, missing values, cut into batches."""
    n = draw(st.integers(1, 60))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    secs = draw(st.lists(st.integers(0, 900), min_size=n, max_size=n))
    amounts = draw(
        st.lists(st.one_of(st.none(), st.sampled_from([1.0, 2.5, 10.0, 40.0, -3.0])), min_size=n, max_size=n)
    )
    countries = draw(st.lists(st.sampled_from(["FR", "US", "DE", None]), min_size=n, max_size=n))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=4))))
    df = pd.DataFrame(
        {
            "user_id": keys,
            "timestamp": pd.to_datetime(np.array(secs, dtype=np.int64) * S + T0, utc=True),
            "amount": pd.array(amounts, dtype="Float64").astype("float64"),
            "country": pd.Series(countries, dtype=object),
        }
    )
    return df, cuts


def run_batches(op: Operator, df: pd.DataFrame, cuts: list[int]) -> pd.DataFrame:
    bounds = [0, *cuts, len(df)]
    parts = [op.process(df.iloc[a:b])["out"] for a, b in itertools.pairwise(bounds) if b > a]
    return pd.concat(parts, ignore_index=True)


def earlier_same_key(df: pd.DataFrame, i: int, include_self: bool) -> pd.DataFrame:
    upto = df.iloc[: i + 1] if include_self else df.iloc[:i]
    return upto[upto["user_id"] == df["user_id"].iloc[i]]


@settings(max_examples=40, deadline=None)
@given(streams(), st.sampled_from(["30s", "2m", "10m"]), st.booleans())
def test_velocity_equals_bruteforce(
    stream: tuple[pd.DataFrame, list[int]], window: str, compiled: bool
) -> None:
    """Out-of-order keys included (compiled, or the Python path without numba)."""
    from streamlab.detectors import _common

    df, cuts = stream
    w = pd.Timedelta(window)
    _common.use_kernels = compiled
    try:
        out = run_batches(VelocityFeature("user_id", window=window, value="amount").build(), df, cuts)
    finally:
        _common.use_kernels = True
    for i in range(len(df)):
        hist = earlier_same_key(df, i, include_self=True)
        t = df["timestamp"].iloc[i]
        inside = hist[(hist["timestamp"] > t - w) & (hist["timestamp"] <= t)]
        count_col, sum_col = VelocityFeature("user_id", window=window, value="amount").column_names()
        assert out[count_col].iloc[i] == len(inside)
        assert out[sum_col].iloc[i] == pytest.approx(inside["amount"].fillna(0).sum(), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    streams(),
    st.sampled_from(["30s", "2m", "10m"]),
    st.booleans(),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=60, max_size=60),
)
def test_velocity_sums_equal_the_exported_state_machine_bit_for_bit(
    stream: tuple[pd.DataFrame, list[int]], window: str, compiled: bool, amounts: list[float]
) -> None:
    """Each window's values added one by one in time order, as the exported code's ``WindowEvents``
    adds them: an event alone in its window sums to its own amount (a difference of running sums
    cancelled, e.g. 21.2 -> 21.19999999999999) and no sum depends on the batch cut."""
    from streamlab import _detector_record
    from streamlab.detectors import _common

    df, cuts = stream
    df = df.assign(amount=np.where(df["amount"].isna(), np.nan, amounts[: len(df)]))
    config = VelocityFeature("user_id", window=window, value="amount")
    count_col, sum_col = config.column_names()
    _common.use_kernels = compiled
    try:
        outs = [run_batches(config.build(), df, c) for c in (cuts, [], list(range(1, len(df))))]
    finally:
        _common.use_kernels = True
    reference = _detector_record.WindowEvents(pd.Timedelta(window).value, config_lateness(config))
    want = [
        reference.update(k, int(t), None if v != v else v)
        for k, t, v in zip(df["user_id"], df["timestamp"].array.asi8, df["amount"])
    ]
    for out in outs:
        assert out[count_col].tolist() == [c for c, _ in want]
        assert out[sum_col].tolist() == [s for _, s in want]  # exact: the same additions in the same order


def config_lateness(config: VelocityFeature) -> int:
    return int(pd.Timedelta(config.allowed_lateness).value)


@settings(max_examples=40, deadline=None)
@given(streams())
def test_zscore_equals_bruteforce(stream: tuple[pd.DataFrame, list[int]]) -> None:
    df, cuts = stream
    out = run_batches(ZScoreFeature("user_id", "amount").build(), df, cuts)
    for i in range(len(df)):
        hist = earlier_same_key(df, i, include_self=False)["amount"].dropna()
        x = df["amount"].iloc[i]
        expected = np.nan
        if not np.isnan(x) and len(hist) >= 2 and hist.std(ddof=1) > 1e-12:
            expected = (x - hist.mean()) / hist.std(ddof=1)
        got = out["zscore_amount"].iloc[i]
        if np.isnan(expected):
            assert np.isnan(got)
        else:
            assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(streams())
def test_time_since_last_equals_bruteforce(stream: tuple[pd.DataFrame, list[int]]) -> None:
    df, cuts = stream
    out = run_batches(TimeSinceLastFeature("user_id").build(), df, cuts)
    for i in range(len(df)):
        hist = earlier_same_key(df, i, include_self=False)
        got = out["seconds_since_last"].iloc[i]
        if hist.empty:
            assert np.isnan(got)
        else:
            assert got == (df["timestamp"].iloc[i] - hist["timestamp"].max()).total_seconds()


@settings(max_examples=40, deadline=None)
@given(streams(), st.sampled_from(["1m", "5m"]), st.booleans())
def test_distinct_count_equals_bruteforce(
    stream: tuple[pd.DataFrame, list[int]], window: str, compiled: bool
) -> None:
    """Out-of-order streams (the compiled any-order pass, or its plain-Python twin without numba)."""
    from streamlab.detectors import _common

    df, cuts = stream
    step = DistinctCountFeature("user_id", "country", window=window)
    _common.use_kernels = compiled
    try:
        out = run_batches(step.build(), df, cuts)
    finally:
        _common.use_kernels = True
    w = pd.Timedelta(window)
    for i in range(len(df)):
        hist = earlier_same_key(df, i, include_self=True)
        t = df["timestamp"].iloc[i]
        inside = hist[(hist["timestamp"] > t - w) & (hist["timestamp"] <= t)]
        assert out[step.column_name()].iloc[i] == inside["country"].dropna().nunique()


@settings(max_examples=40, deadline=None)
@given(streams(), st.sampled_from(["1m", "5m"]), st.booleans(), st.integers(0, 4))
def test_distinct_count_vectorized_in_order_equals_bruteforce(
    stream: tuple[pd.DataFrame, list[int]], window: str, disorder: bool, restore_after: int
) -> None:
    """Streams in event-time order take the vectorized path (a few disordered rows send batches back
    to the per-event loop); both, and a snapshot/restore between batches, give the brute-force counts."""
    df, cuts = stream
    df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if disorder and len(df) > 3:
        df = df.iloc[[*range(len(df) - 3), len(df) - 1, len(df) - 3, len(df) - 2]].reset_index(drop=True)
    step = DistinctCountFeature("user_id", "country", window=window)
    op = step.build()
    bounds = [0, *cuts, len(df)]
    parts = []
    for j, (a, b) in enumerate(itertools.pairwise(bounds)):
        if j == restore_after:
            fresh = step.build()
            fresh.restore(pickle.loads(pickle.dumps(op.snapshot())))
            op = fresh
        parts.append(op.process(df.iloc[a:b])["out"])
    out = pd.concat(parts, ignore_index=True)
    w = pd.Timedelta(window)
    for i in range(len(df)):
        hist = earlier_same_key(df, i, include_self=True)
        t = df["timestamp"].iloc[i]
        inside = hist[(hist["timestamp"] > t - w) & (hist["timestamp"] <= t)]
        assert out[step.column_name()].iloc[i] == inside["country"].dropna().nunique()


_VALUE_COLUMNS: dict[str, Callable[[list[int | None]], Any]] = {
    "object": lambda v: pd.Series([None if x is None else f"v{x}" for x in v], dtype=object),
    "str": lambda v: pd.Series([None if x is None else f"v{x}" for x in v], dtype="str"),
    "float": lambda v: np.array([np.nan if x is None else float(x) for x in v]),
    "int": lambda v: np.array([-1 if x is None else x for x in v], dtype=np.int64),
}


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 70),
    st.sampled_from(sorted(_VALUE_COLUMNS)),
    st.sampled_from(["0s", "30s", "1h"]),
    st.booleans(),
    st.data(),
)
def test_distinct_count_of_integer_keys_equals_the_per_event_record(
    n: int, value_type: str, lateness: str, missing_time: bool, data: st.DataObject
) -> None:
    """Integer keys with UTC times (the batch path that skips ``process``' checks and copies): the
    per-event record's counts (the exported code's), with times going back, every batch size, a
    restore mid-stream, each kind of value column; and the frames (out and dead letters) of the
    checked path, a missing time sending its batch there."""
    from streamlab import _detector_record as rec
    from streamlab.detectors import FeatureOperator

    keys = data.draw(st.lists(st.sampled_from([0, 1, -7, 2**40]), min_size=n, max_size=n))
    steps = data.draw(st.lists(st.integers(-90, 60), min_size=n, max_size=n))
    values = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=n, max_size=n))
    times = pd.to_datetime(np.cumsum(steps) * S + T0, utc=True)
    df = pd.DataFrame(
        {
            "user_id": np.array(keys, dtype=np.int64),
            "timestamp": times,
            "country": _VALUE_COLUMNS[value_type](values),
            "amount": np.arange(n, dtype=np.float64),
        }
    )
    if missing_time:
        df.loc[data.draw(st.integers(0, n - 1)), "timestamp"] = pd.NaT
    if lateness != "1h" or data.draw(st.booleans()):
        cuts = list(range(1, n))  # (beyond lateness a batch's horizon moves as the record's per event)
    else:
        cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=5))))
    restore_at = data.draw(st.integers(0, n))
    step = DistinctCountFeature("user_id", "country", window="2m", allowed_lateness=lateness)
    got = _run_with_restore(lambda: step, df, cuts, restore_at)
    checked_op = step.build()
    bounds = [0, *cuts, len(df)]
    checked = [FeatureOperator.process(checked_op, df.iloc[a:b]) for a, b in itertools.pairwise(bounds)]
    fast_op = step.build()
    fast = [fast_op.process(df.iloc[a:b]) for a, b in itertools.pairwise(bounds)]
    for want, have in zip(checked, fast):
        assert want.keys() == have.keys()
        for port in want:
            pd.testing.assert_frame_equal(have[port], want[port], check_exact=True)
    pd.testing.assert_frame_equal(got, pd.concat([r["out"] for r in checked], ignore_index=True))
    if not missing_time:
        lateness_ns = pd.Timedelta(lateness).value
        record = rec.DistinctValues(120 * S, lateness_ns)
        value_list = [None if v is None else df["country"].iloc[i] for i, v in enumerate(values)]
        want_counts = [
            record.update(k, t, v) for k, t, v in zip(keys, df["timestamp"].array.asi8.tolist(), value_list)
        ]
        if value_type == "int":  # (-1 is a value there, not a missing one)
            record = rec.DistinctValues(120 * S, lateness_ns)
            want_counts = [
                record.update(k, t, int(v))
                for k, t, v in zip(keys, df["timestamp"].array.asi8.tolist(), df["country"].tolist())
            ]
        assert got[step.column_name()].tolist() == want_counts


def _distinct_stream(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, n).astype(str),
            "timestamp": pd.to_datetime(T0 + np.sort(rng.integers(0, 3 * 3600, n)) * S, utc=True),
            "country": rng.choice(["FR", "US", "DE"], n, p=[0.8, 0.1, 0.1]),
        }
    )


def test_distinct_count_state_is_the_retained_events() -> None:
    """Integer arrays of the events inside ``window + allowed_lateness`` of the newest, by key and time."""
    df = _distinct_stream(2_000, 0)
    df.loc[df.index % 7 == 0, "country"] = None  # missing values are not retained
    step = DistinctCountFeature("user_id", "country", window="10m", allowed_lateness="5m")
    op = step.build()
    for a in range(0, len(df), 500):
        op.process(df.iloc[a : a + 500])
    counter = op.counter  # type: ignore[attr-defined]
    times = df["timestamp"].array.asi8
    kept = df[(times > times.max() - 15 * 60 * S) & df["country"].notna()]
    expected = sorted(zip(kept["user_id"], kept["timestamp"].array.asi8.tolist(), kept["country"]))
    keys = counter.keys.index[counter.s_key].tolist()
    values = counter.values.index[counter.s_val].tolist()
    got = list(zip(keys, counter.s_time.tolist(), values))
    assert sorted(got) == expected
    order = np.lexsort((counter.s_time, counter.s_key))
    assert (order == np.arange(len(order))).all()  # sorted by key code, then time


def test_distinct_count_restores_a_snapshot_of_the_dict_state() -> None:
    """A snapshot taken before the state moved to arrays (key -> value -> times) still restores."""
    df = _distinct_stream(600, 1)
    step = DistinctCountFeature("user_id", "country", window="10m")
    whole = step.build().process(df)["out"]
    first, rest = df.iloc[:300], df.iloc[300:]
    times = first["timestamp"].array.asi8
    seen: dict[Any, dict[Any, list[int]]] = {}
    for k, t, v in zip(first["user_id"], times.tolist(), first["country"]):
        seen.setdefault(k, {}).setdefault(v, []).append(t)
    old_op = step.build()
    legacy = {
        "where": "DistinctCountFeature",
        "key": "user_id",
        "time": "timestamp",
        "value": "country",
        "step": step,
        "window_ns": 600 * S,
        "lateness_ns": 3600 * S,
        "seen": seen,
        "max_seen_ns": int(times.max()),
    }
    old_op.restore(pickle.dumps(legacy))
    out = old_op.process(rest)["out"]
    assert out["distinct_country_10m"].tolist() == whole["distinct_country_10m"].iloc[300:].tolist()


def test_velocity_restores_a_snapshot_holding_key_values() -> None:
    """A snapshot taken when the window counter held the key values (not codes) still restores."""
    df = _distinct_stream(600, 2)
    step = VelocityFeature("user_id", window="10m")
    whole = step.build().process(df)["out"]["count_10m"]
    op = step.build()
    op.process(df.iloc[:300])
    counter = op.counter  # type: ignore[attr-defined]
    legacy = dict(counter.__dict__)
    legacy["keys"] = np.asarray(counter.vocab.index[counter.codes], dtype=object)
    for name in ("vocab", "codes"):
        del legacy[name]
    fresh = type(counter).__new__(type(counter))
    fresh.__setstate__(legacy)
    op.counter = fresh  # type: ignore[attr-defined]
    assert op.process(df.iloc[300:])["out"]["count_10m"].tolist() == whole.iloc[300:].tolist()


@settings(max_examples=40, deadline=None)
@given(streams(), st.integers(1, 5))
def test_ratio_to_median_equals_bruteforce(stream: tuple[pd.DataFrame, list[int]], history: int) -> None:
    df, cuts = stream
    out = run_batches(RatioToMedianFeature("user_id", "amount", history=history).build(), df, cuts)
    for i in range(len(df)):
        hist = earlier_same_key(df, i, include_self=False)["amount"].dropna().tail(history)
        x = df["amount"].iloc[i]
        got = out["ratio_to_median_amount"].iloc[i]
        if np.isnan(x) or hist.empty or hist.median() == 0:
            assert np.isnan(got)
        else:
            assert got == pytest.approx(x / hist.median())


@settings(max_examples=40, deadline=None)
@given(streams())
def test_velocity_rule_matches_feature_and_snapshot_resume(stream: tuple[pd.DataFrame, list[int]]) -> None:
    df, _ = stream
    rule = VelocityRule("user_id", window="2m", max_count=2, name="burst")
    full = run_batches(rule.build(), df, [])
    feature = run_batches(VelocityFeature("user_id", window="2m").build(), df, [])
    assert full["burst_count"].tolist() == feature["count_2m"].tolist()
    assert full["is_alert"].tolist() == (feature["count_2m"] > 2).tolist()
    # snapshot mid-stream, restore into a fresh operator, continue: same as uninterrupted
    mid = len(df) // 2
    op = rule.build()
    first = op.process(df.iloc[:mid])["out"]
    resumed = rule.build()
    resumed.restore(pickle.loads(pickle.dumps(op.snapshot())))
    second = resumed.process(df.iloc[mid:])["out"]
    pd.testing.assert_frame_equal(pd.concat([first, second], ignore_index=True), full)


def test_missing_key_or_time_goes_to_dead_letter_with_reason() -> None:
    df = pd.DataFrame(
        {
            "user_id": ["a", None, "a"],
            "timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:01", None], utc=True),
        }
    )
    res = VelocityFeature("user_id", window="5m").build().process(df)
    assert len(res["out"]) == 1
    assert res["dead_letter"]["reason"].str.contains("missing").all()
    assert len(res["dead_letter"]) == 2


def test_rules_chain_and_first_alerting_rule_is_named() -> None:
    df = pd.DataFrame({"amount": [1.0, 500.0, 5000.0], "items": [50, 1, 1]})
    a = ThresholdRule("many_items", column="items", op=">=", value=10).build().process(df)["out"]
    b = ThresholdRule("big", expr="amount > 100").build().process(a)["out"]
    assert b["rule"].tolist() == ["many_items", "big", "big"]
    assert b["is_alert"].tolist() == [True, True, True]


def test_input_batch_is_not_mutated() -> None:
    df = pd.DataFrame(
        {"user_id": ["a", "a"], "amount": [1.0, 2.0], "timestamp": pd.to_datetime([0, 10**9], utc=True)}
    )
    before = df.copy()
    for step in (VelocityFeature("user_id", value="amount"), ZScoreFeature("user_id", "amount")):
        step.build().process(df)
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: VelocityFeature("user_id", window="-5m"), "window must be positive"),
        (lambda: VelocityFeature("", window="5m"), "key must be a non-empty"),
        (lambda: ThresholdRule("r"), "give either expr"),
        (lambda: ThresholdRule("r", column="a", op="=>", value=1), "op must be one of"),
        (lambda: VelocityRule("user_id", "1m", max_count=-1, name="r"), "max_count must be"),
        (lambda: RatioToMedianFeature("user_id", "amount", history=0), "history must be"),
    ],
)
def test_bad_configuration_is_rejected_at_construction(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_velocity_rule_wide_time_span_uses_rank_packing() -> None:
    # 150 years between events forces the dense-rank path; results must not change
    times = pd.to_datetime([T0, T0 + 10**9, T0 + 150 * 365 * 86400 * S], utc=True)
    df = pd.DataFrame({"user_id": np.arange(3) % 2 + 10**12, "timestamp": times})
    out = VelocityRule("user_id", window="1d", max_count=0, name="r").build().process(df)["out"]
    assert out["r_count"].tolist() == [1, 1, 1]
    df2 = pd.DataFrame({"user_id": [7, 7, 7], "timestamp": times})
    out2 = VelocityRule("user_id", window="1d", max_count=1, name="r").build().process(df2)["out"]
    assert out2["r_count"].tolist() == [1, 2, 1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ZScoreFeature("user_id", "amount", max_keys=2),
        lambda: TimeSinceLastFeature("user_id", max_keys=2),
        lambda: RatioToMedianFeature("user_id", "amount", max_keys=2),
    ],
)
def test_per_key_state_is_capped_and_evicted_keys_restart(make: Callable[[], Any]) -> None:
    step = make()
    col = step.column_name()
    df = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "c", "a"],
            "amount": [1.0, 2.0, 4.0, 5.0, 6.0, 3.0],
            "timestamp": pd.to_datetime(np.arange(6) * S + T0, utc=True),
        }
    )
    op = step.build()
    first = op.process(df.iloc[:5])["out"]
    assert op.open_state() == {"keys": 2, "evictions": 1}  # "a" was least recently updated
    assert not np.isnan(first[col].iloc[2])
    again = op.process(df.iloc[5:])["out"]
    assert np.isnan(again[col].iloc[0])  # "a" starts over: no history
    assert op.open_state()["evictions"] == 2


def test_events_later_than_allowed_lateness_see_only_retained_history() -> None:
    step = VelocityFeature("user_id", window="10m", allowed_lateness="1m")
    t = [T0, T0 + 60 * S, T0 + 30 * 60 * S, T0 + 2 * 60 * S]  # the last one is 28 minutes late
    df = pd.DataFrame({"user_id": ["a"] * 4, "timestamp": pd.to_datetime(t, utc=True)})
    op = step.build()
    counts = [op.process(df.iloc[i : i + 1])["out"]["count_10m"].iloc[0] for i in range(4)]
    # exact would be 3 for the late event (itself and the two at 0m and 1m); both were dropped
    # from the retained state once the 30m event arrived, so it counts only itself
    assert counts == [1, 2, 1, 1]
    exact = step.build().process(df)["out"]["count_10m"].tolist()
    assert exact == [1, 2, 1, 3]  # within one batch nothing had been dropped yet


def ratio_to_median_reference(
    df: pd.DataFrame, cuts: list[int], history: int, max_keys: int
) -> tuple[list[float], int]:
    """The per-event loop the compiled feature replaced (deque + sorted list per key, LRU by update)."""
    import bisect
    from collections import deque

    recent: dict[Any, tuple[deque[float], list[float]]] = {}
    out, evictions = [], 0
    bounds = [0, *cuts, len(df)]
    for a, b in itertools.pairwise(bounds):
        part = df.iloc[a:b]
        for k, v in zip(part["user_id"].tolist(), part["amount"].tolist()):
            if np.isnan(v):
                out.append(np.nan)
                continue
            entry = recent.pop(k, None) or (deque(), [])
            recent[k] = entry
            fifo, ordered = entry
            m = len(ordered)
            med = (ordered[m // 2] if m % 2 else 0.5 * (ordered[m // 2 - 1] + ordered[m // 2])) if m else 0.0
            out.append(v / med if med != 0 else np.nan)
            fifo.append(v)
            bisect.insort(ordered, v)
            if len(fifo) > history:
                del ordered[bisect.bisect_left(ordered, fifo.popleft())]
        while len(recent) > max_keys:
            del recent[next(iter(recent))]
            evictions += 1
    return out, evictions


@settings(max_examples=40, deadline=None)
@given(
    streams(),
    st.integers(1, 5),
    st.integers(1, 3),
    st.booleans(),
    st.sampled_from([0.0, -0.0, 1.0]),
    st.integers(0, 60),
)
def test_ratio_to_median_bit_identical_to_the_per_event_loop(
    stream: tuple[pd.DataFrame, list[int]],
    history: int,
    max_keys: int,
    compiled: bool,
    zero: float,
    restore_at: int,
) -> None:
    """Every cut, evictions, signed zeros and ties, a snapshot restored mid-stream; compiled and plain."""
    from streamlab.detectors import _common

    df, cuts = stream
    df = df.copy()
    df.loc[df["amount"] == 2.5, "amount"] = zero  # zeros of either sign among ties
    step = RatioToMedianFeature("user_id", "amount", history=history, max_keys=max_keys)
    expected, evictions = ratio_to_median_reference(df, cuts, history, max_keys)
    _common.use_kernels = compiled
    try:
        op = step.build()
        parts = []
        for a, b in itertools.pairwise([0, *cuts, len(df)]):
            if a == min(restore_at, len(df) - 1) and a > 0:
                snap = op.snapshot()
                op.process(df.iloc[a:])  # work after the snapshot must not leak into it
                op = step.build()
                op.restore(snap)
            parts.append(op.process(df.iloc[a:b])["out"])
    finally:
        _common.use_kernels = True
    got = pd.concat(parts, ignore_index=True)["ratio_to_median_amount"].to_numpy()
    want = np.asarray(expected, dtype=np.float64)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert got[~nan].view(np.int64).tolist() == want[~nan].view(np.int64).tolist()  # bit for bit
    assert op.open_state()["evictions"] == evictions


@settings(max_examples=30, deadline=None)
@given(streams(), st.integers(1, 3), st.booleans(), st.integers(0, 60))
def test_zscore_and_time_since_last_bit_identical_to_per_key_loops(
    stream: tuple[pd.DataFrame, list[int]], max_keys: int, compiled: bool, restore_at: int
) -> None:
    """z-scores equal a loop over river's ``stats.Var`` per key; seconds since last a dict loop; with
    LRU evictions by last update, a restore mid-stream, compiled and plain."""
    from river import stats

    from streamlab.detectors import _common

    df, cuts = stream
    var: dict[Any, Any] = {}
    last: dict[Any, int] = {}
    want_z, want_t = [], []
    for a, b in itertools.pairwise([0, *cuts, len(df)]):
        part = df.iloc[a:b]
        for k, v, t in zip(part["user_id"], part["amount"].tolist(), part["timestamp"].array.asi8.tolist()):
            p = last.pop(k, None)
            want_t.append(np.nan if p is None else (t - p) / 1e9)
            last[k] = t if p is None else max(p, t)
            if not np.isfinite(v):
                want_z.append(np.nan)
                continue
            s = var.pop(k, None) or stats.Var()
            var[k] = s
            std = math.sqrt(s.get()) if s.n >= 2 else 0.0
            want_z.append((v - s.mean.get()) / std if std > 0 else np.nan)
            s.update(v)
        for d in (var, last):
            while len(d) > max_keys:
                del d[next(iter(d))]
    got: dict[str, list[np.ndarray]] = {"z": [], "t": []}
    _common.use_kernels = compiled
    try:
        for col, step in (
            ("z", ZScoreFeature("user_id", "amount", max_keys=max_keys)),
            ("t", TimeSinceLastFeature("user_id", max_keys=max_keys)),
        ):
            op = step.build()
            for a, b in itertools.pairwise([0, *cuts, len(df)]):
                if a == min(restore_at, len(df) - 1) and a > 0:
                    snap = op.snapshot()
                    op.process(df.iloc[a:])  # work after the snapshot must not leak into it
                    op = step.build()
                    op.restore(snap)
                got[col].append(op.process(df.iloc[a:b])["out"][step.column_name()].to_numpy())
    finally:
        _common.use_kernels = True
    for col, want in (("z", want_z), ("t", want_t)):
        g, w = np.concatenate(got[col]), np.asarray(want, dtype=np.float64)
        assert np.array_equal(np.isnan(g), np.isnan(w))
        assert g[~np.isnan(w)].tolist() == w[~np.isnan(w)].tolist()


@pytest.mark.parametrize(
    "make",
    [
        lambda: ZScoreFeature("user_id", "amount", max_keys=2),
        lambda: TimeSinceLastFeature("user_id", max_keys=2),
        lambda: RatioToMedianFeature("user_id", "amount", history=3, max_keys=2),
    ],
)
def test_snapshot_of_the_dict_versions_restores(make: Callable[[], Any]) -> None:
    """A checkpoint taken before per-key state moved to rows (a dict per key, in recency order) resumes."""
    from collections import deque

    step = make()
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "user_id": rng.choice(["a", "b", "c"], 40),
            "amount": rng.choice([1.0, 2.0, 5.0, np.nan], 40),
            "timestamp": pd.to_datetime(np.sort(rng.integers(0, 600, 40)) * S + T0, utc=True),
        }
    )
    whole = run_batches(step.build(), df, [20])[step.column_name()].to_numpy()
    op = step.build()
    first = op.process(df.iloc[:20])["out"][step.column_name()].to_numpy()
    live = np.flatnonzero(op.alive)
    live = live[np.argsort(op.tick[live])]  # oldest first: the dict's order
    keys = op.index[live].tolist()
    old = {
        k: v for k, v in op.__dict__.items() if k not in ("index", "tick", "alive", "next_tick", *op._arrays)
    }
    if isinstance(step, ZScoreFeature):
        old["stats"] = {k: tuple(op.state[r].tolist()) for k, r in zip(keys, live.tolist())}
    elif isinstance(step, TimeSinceLastFeature):
        old["last"] = {k: int(op.last[r]) for k, r in zip(keys, live.tolist())}
    else:
        old["recent"] = {}
        for k, r in zip(keys, live.tolist()):
            m, h = int(op.length[r]), int(op.head[r])
            fifo = deque(op.ring[r, (h + np.arange(m)) % op.ring.shape[1]].tolist())
            old["recent"][k] = (fifo, op.ordered[r, :m].tolist())
    resumed = step.build()
    resumed.restore(pickle.dumps(old))
    second = resumed.process(df.iloc[20:])["out"][step.column_name()].to_numpy()
    np.testing.assert_array_equal(np.r_[first, second], whole)
    assert resumed.open_state()["keys"] == len(keys)


def _run_with_restore(
    make: Callable[[], Any], df: pd.DataFrame, cuts: list[int], restore_at: int
) -> pd.DataFrame:
    """Batches cut at ``cuts``; after the batch ending at or past ``restore_at``, a fresh operator
    restored from a snapshot takes over."""
    op = make().build()
    bounds = [0, *cuts, len(df)]
    parts, restored = [], False
    for a, b in itertools.pairwise(bounds):
        if b > a:
            parts.append(op.process(df.iloc[a:b])["out"])
        if not restored and b >= restore_at:
            fresh = make().build()
            fresh.restore(op.snapshot())
            op, restored = fresh, True
    return pd.concat(parts, ignore_index=True)


_KEY_ROWS_STEPS: list[Callable[[int], Any]] = [
    lambda cap: ZScoreFeature("user_id", "amount", max_keys=cap),
    lambda cap: TimeSinceLastFeature("user_id", max_keys=cap),
    lambda cap: RatioToMedianFeature("user_id", "amount", history=3, max_keys=cap),
]


@settings(max_examples=30, deadline=None)
@given(streams(), st.integers(1, 3), st.integers(0, 60), st.sampled_from([0, -5, 2**40]))
def test_integer_keys_give_the_results_of_the_same_keys_as_strings(
    stream: tuple[pd.DataFrame, list[int]], max_keys: int, restore_at: int, base: int
) -> None:
    """Integer key columns are looked up in a compiled hash table instead of the index: same values,
    with evictions and across a snapshot/restore."""
    df, cuts = stream
    codes = {"a": base, "b": base + 1, "c": -base - 7}
    ints = df.assign(user_id=df["user_id"].map(codes).astype("int64"))
    for make in _KEY_ROWS_STEPS:
        col = make(max_keys).column_name()
        expected = run_batches(make(max_keys).build(), df, cuts)[col]
        got = _run_with_restore(lambda make=make: make(max_keys), ints, cuts, restore_at)[col]
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("max_keys", [100, 100_000])
def test_integer_keys_many_keys_grow_and_compact_the_table(max_keys: int) -> None:
    """Thousands of keys: the hash table doubles mid-batch, and evictions compact the rows."""
    rng = np.random.default_rng(5)
    n = 6000
    keys = rng.integers(-(2**62), 2**62, 2500)[rng.integers(0, 2500, n)]
    df = pd.DataFrame(
        {
            "user_id": keys,
            "amount": rng.choice([1.0, 2.0, 5.0, np.nan], n),
            "timestamp": pd.to_datetime(T0 + np.sort(rng.integers(0, 3600, n)) * S, utc=True),
        }
    )
    as_text = df.assign(user_id=df["user_id"].astype(str))
    cuts = [1500, 3100, 4000]
    for make in _KEY_ROWS_STEPS:
        col = make(max_keys).column_name()
        expected = run_batches(make(max_keys).build(), as_text, cuts)[col]
        got = _run_with_restore(lambda make=make: make(max_keys), df, cuts, 3100)[col]
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


def test_integer_keys_index_is_the_plain_index_of_first_appearances() -> None:
    """The index of integer keys, built without ``pd.Index``'s checks, is the int64 ``pd.Index`` of the
    keys in order of first appearance, across batches and a snapshot; a step built later starts with
    no keys (the empty index the steps share is never changed in place)."""
    df = pd.DataFrame(
        {
            "user_id": np.array([7, -3, 7, 2**40, -3, 5], dtype=np.int64),
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "timestamp": pd.to_datetime(T0 + np.arange(6) * S, utc=True),
        }
    )
    expected = pd.Index([7, -3, 2**40, 5], dtype="int64")
    for make in _KEY_ROWS_STEPS:
        op = make(100).build()
        run_batches(op, df, [2, 4])
        pd.testing.assert_index_equal(op.index, expected, exact=True)  # type: ignore[attr-defined]
        restored = make(100).build()
        restored.restore(op.snapshot())
        pd.testing.assert_index_equal(restored.index, expected, exact=True)  # type: ignore[attr-defined]
        assert len(make(100).build().index) == 0  # type: ignore[attr-defined]


@st.composite
def windowed_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, list[int], int]:
    """Integer or string keys (up to 40), times mostly in order with some going back, batch cuts
    (batches of one included) and a restore point."""
    n = draw(st.integers(1, 80))
    n_keys = draw(st.integers(1, 40))
    keys = draw(st.lists(st.integers(0, n_keys - 1), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(-40, 90), min_size=n, max_size=n))
    secs = np.cumsum(steps)
    countries = draw(st.lists(st.sampled_from(["FR", "US", "DE", None]), min_size=n, max_size=n))
    amounts = draw(st.lists(st.sampled_from([1.0, 2.5, 0.1, np.nan, -3.0]), min_size=n, max_size=n))
    user = np.array(keys, dtype=np.int64) * 7919 - 2**40
    df = pd.DataFrame(
        {
            "user_id": user if draw(st.booleans()) else user.astype(str),
            "timestamp": pd.to_datetime(secs * S + T0, utc=True),
            "amount": np.array(amounts, dtype="float64"),
            "country": pd.Series(countries, dtype=object),
        }
    )
    if n <= 30 and draw(st.booleans()):  # batches of one event
        cuts = list(range(1, n))
    else:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6))))
    return df, cuts, draw(st.integers(0, n))


_WINDOWED_STEPS: list[Callable[[str], Any]] = [
    lambda late: VelocityFeature("user_id", window="2m", value="amount", allowed_lateness=late),
    lambda late: VelocityRule("user_id", window="1m", max_count=2, name="burst", allowed_lateness=late),
    lambda late: VelocityFeature("user_id", window="30s", allowed_lateness=late),  # counts only
    lambda late: DistinctCountFeature("user_id", "country", window="3m", allowed_lateness=late),
]


@settings(max_examples=25, deadline=None)
@given(windowed_streams(), st.sampled_from(["0s", "30s", "1h"]))
def test_windowed_compiled_merge_equals_the_numpy_path(
    stream: tuple[pd.DataFrame, list[int], int], lateness: str
) -> None:
    """The compiled merge of velocity and distinct count (sorted batch merged into the retained
    entries, integer keys through a hash table) gives the numpy path's outputs, with late events,
    every batch size and a snapshot/restore mid-stream: counts exactly; sums bit for bit except for
    keys whose batch rows go back in time, which both paths recompute event by event, the compiled
    one adding in time order and the numpy one with ``numpy.sum``'s pairwise order (last bits)."""
    df, cuts, restore_at = stream
    for make in _WINDOWED_STEPS:
        got = _run_with_restore(lambda make=make: make(lateness), df, cuts, restore_at)
        _expect_numpy_path(make(lateness), df, cuts, got)


def _expect_numpy_path(step: Any, df: pd.DataFrame, cuts: list[int], got: pd.DataFrame) -> None:
    from streamlab.detectors import _common

    _common.use_kernels = False
    try:
        expected = run_batches(step.build(), df, cuts)
    finally:
        _common.use_kernels = True
    sums = [c for c in expected.columns if c.startswith("sum_")]
    for c in sums:
        np.testing.assert_allclose(got[c].to_numpy(), expected[c].to_numpy(), rtol=1e-13, atol=1e-13)
    pd.testing.assert_frame_equal(got.drop(columns=sums), expected.drop(columns=sums), check_exact=True)


def test_windowed_many_integer_keys_compact_the_vocabulary() -> None:
    """Thousands of integer keys with a short retention: the key vocabulary's hash table grows mid-batch
    and is rebuilt after compactions; outputs stay the numpy path's."""
    rng = np.random.default_rng(3)
    n = 9000
    df = pd.DataFrame(
        {
            "user_id": rng.integers(-(2**62), 2**62, 4000)[rng.integers(0, 4000, n)],
            "amount": rng.choice([1.0, 2.0, np.nan], n),
            "country": rng.choice(["FR", "US", "DE"], n),
            "timestamp": pd.to_datetime(T0 + np.sort(rng.integers(0, 7200, n)) * S, utc=True),
        }
    )
    cuts = [2000, 2001, 5000, 7000]
    for make in _WINDOWED_STEPS:
        got = _run_with_restore(lambda make=make: make("10s"), df, cuts, 5000)
        _expect_numpy_path(make("10s"), df, cuts, got)


@settings(max_examples=25, deadline=None)
@given(
    windowed_streams(), st.sampled_from(["0s", "1h"]), st.sampled_from(["none", "rule", "feature"]), st.data()
)
def test_velocity_rule_after_its_feature_takes_the_features_count(
    stream: tuple[pd.DataFrame, list[int], int], lateness: str, restore: str, data: st.DataObject
) -> None:
    """A VelocityRule fed the batches its VelocityFeature (same key, window, lateness) has just counted
    takes the feature's counts and state (``SharedCounts``) instead of counting again: outputs and state
    equal those of a rule counting alone, across a snapshot/restore of either step mid-stream (states
    then compared by content) and batches that differ from the feature's (a row dropped: counted)."""
    from streamlab.detectors._windowcount import SHARED_COUNTS, SharedCounts

    df, cuts, restore_at = stream
    feature = VelocityFeature("user_id", window="2m", value="amount", allowed_lateness=lateness)
    rule = VelocityRule("user_id", window="2m", max_count=2, name="burst", allowed_lateness=lateness)
    f_op, r_op = feature.build(), rule.build()
    hits: list[bool] = []
    take = SHARED_COUNTS.take

    def counted_take(counter: Any, token: Any, times: np.ndarray) -> np.ndarray | None:
        got = take(counter, token, times)
        hits.append(got is not None)
        return got

    fed, parts, dropped, restored = [], [], False, False
    SHARED_COUNTS.take = counted_take  # type: ignore[method-assign]
    try:
        for a, b in itertools.pairwise([0, *cuts, len(df)]):
            if b <= a:
                continue
            batch = f_op.process(df.iloc[a:b])["out"]
            if len(batch) > 1 and data.draw(st.integers(0, 5)) == 0:
                batch, dropped = batch.iloc[1:], True  # another batch than the feature's: counted
            fed.append(batch)
            parts.append(r_op.process(batch)["out"])
            if restore != "none" and not restored and b >= restore_at:
                old = r_op if restore == "rule" else f_op
                fresh = (rule if restore == "rule" else feature).build()
                fresh.restore(pickle.loads(pickle.dumps(old.snapshot())))
                r_op, f_op = (fresh, f_op) if restore == "rule" else (r_op, fresh)
                restored = True
    finally:
        del SHARED_COUNTS.take
    token = SharedCounts.token
    SharedCounts.token = staticmethod(lambda keys: None)  # type: ignore[method-assign]
    try:
        alone = rule.build()
        expected = [alone.process(batch)["out"] for batch in fed]
    finally:
        SharedCounts.token = token  # type: ignore[method-assign]
    pd.testing.assert_frame_equal(
        pd.concat(parts, ignore_index=True), pd.concat(expected, ignore_index=True), check_exact=True
    )
    got_c, want_c = r_op.counter, alone.counter
    assert got_c.max_seen_ns == want_c.max_seen_ns
    np.testing.assert_array_equal(got_c.times, want_c.times)
    np.testing.assert_array_equal(got_c.vocab.values(got_c.codes), want_c.vocab.values(want_c.codes))
    if not dropped:  # every batch of the rule was the feature's: every one was taken, none counted
        assert hits == [True] * len(fed)


@settings(max_examples=20, deadline=None)
@given(
    st.integers(60, 300),
    st.integers(1, 3),
    st.sampled_from([3, 40, 100]),
    st.integers(0, 3),
    st.booleans(),
    st.data(),
)
def test_distinct_count_long_blocks_and_many_values_equal_the_numpy_path(
    n: int, n_keys: int, n_values: int, back: int, as_text: bool, data: st.DataObject
) -> None:
    """Few keys with many events each (a key's merged block beyond 64 entries) and up to 100 values
    (codes beyond 64): the compiled distinct count takes its counting passes instead of the bit mask
    of short blocks, and still gives the numpy path's outputs, with times going back, missing values,
    batches of every size and a restore mid-stream."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    steps = rng.integers(0, 20, n)
    steps[rng.random(n) < back / 20] = -30  # some events older than the one before them
    values = rng.integers(0, n_values, n).astype(object)
    values[rng.random(n) < 0.1] = None
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, n_keys, n) if not as_text else rng.choice(["a", "b", "c"][:n_keys], n),
            "timestamp": pd.to_datetime(np.cumsum(steps) * S + T0, utc=True),
            "country": pd.Series([None if v is None else f"v{v}" for v in values], dtype=object),
        }
    )
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=5))))
    restore_at = data.draw(st.integers(0, n))
    for late in ("0s", "1m", "1h"):
        step = DistinctCountFeature("user_id", "country", window="5m", allowed_lateness=late)
        got = _run_with_restore(lambda step=step: step, df, cuts, restore_at)
        _expect_numpy_path(step, df, cuts, got)


def test_velocity_sums_of_a_dense_key_cost_a_pass_and_agree_compiled_and_numpy() -> None:
    """A window of more than WIDE_WINDOW entries sums through its key's running sums: a key with
    thousands of events in its window costs no more than a pass (adding each window's values would
    cost its width per event), both paths give the same bits, within a few ulps of the one-by-one sum."""
    from streamlab import _detector_record
    from streamlab.detectors import _common
    from streamlab.detectors._windowcount import WIDE_WINDOW

    n = 4 * WIDE_WINDOW
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "user_id": rng.choice(["dense", "a", "b"], n, p=[0.9, 0.05, 0.05]),
            "timestamp": pd.to_datetime(T0 + np.arange(n) * S // 10, utc=True),
            "amount": rng.uniform(-500, 500, n).round(2),
        }
    )
    config = VelocityFeature("user_id", window="1h", value="amount")
    count_col, sum_col = config.column_names()
    outs = {}
    for compiled in (True, False):
        _common.use_kernels = compiled
        try:
            outs[compiled] = run_batches(config.build(), df, [n // 3, n // 2])
        finally:
            _common.use_kernels = True
    assert outs[True][sum_col].tolist() == outs[False][sum_col].tolist()
    reference = _detector_record.WindowEvents(pd.Timedelta("1h").value, config_lateness(config))
    want = [
        reference.update(k, int(t), v)
        for k, t, v in zip(df["user_id"], df["timestamp"].array.asi8, df["amount"])
    ]
    assert outs[True][count_col].tolist() == [c for c, _ in want]
    np.testing.assert_allclose(outs[True][sum_col], [s for _, s in want], rtol=0, atol=1e-9)
    narrow = np.asarray([c for c, _ in want]) <= WIDE_WINDOW
    assert (outs[True][sum_col].to_numpy()[narrow] == np.asarray([s for _, s in want])[narrow]).all()


@settings(max_examples=60, deadline=None)
@given(
    streams(),
    st.sampled_from(["30s", "2m", "10m"]),
    st.booleans(),
    st.sampled_from(
        [
            [1.5, -2.0, np.inf, -np.inf],
            [1.5, -2.0, 1e308],
            [1.5, np.inf, 1e308],
            [1.5, -np.inf, 1e308],
            [1.5, np.inf, -np.inf, 1e308, -1e308],
        ]
    ).flatmap(lambda values: st.lists(st.sampled_from(values), min_size=60, max_size=60)),
    st.integers(0, 60),
)
def test_velocity_sums_with_infinities_are_the_one_by_one_sums(
    stream: tuple[pd.DataFrame, list[int]], window: str, compiled: bool, amounts: list[float], restore_at: int
) -> None:
    """An infinity is a number: a window holding +inf sums to inf, -inf to -inf, both to NaN, and the
    sums are finite again once it has left (they read DBL_MAX, ``np.nan_to_num``'s inf, before), for
    every batch cut and across a snapshot and restore; as the exported code's ``WindowEvents`` adds.
    Finite values that overflow (1e308 twice) read inf as added one by one; beside an infinity of the
    other sign such a sum depends on the order of the additions (1e308, 1e308, -inf is NaN; -inf, 1e308,
    1e308 is -inf): the runtime read the infinity's sign whatever the order, where the exported code reads
    NaN, until such windows were added one by one (``WindowCounter._added_one_by_one``)."""
    from streamlab import _detector_record
    from streamlab.detectors import _common

    df, cuts = stream
    df = df.assign(amount=np.where(df["amount"].isna(), np.nan, amounts[: len(df)]))
    config = VelocityFeature("user_id", window=window, value="amount")
    count_col, sum_col = config.column_names()
    reference = _detector_record.WindowEvents(pd.Timedelta(window).value, config_lateness(config))
    want = [
        reference.update(k, int(t), None if v != v else v)
        for k, t, v in zip(df["user_id"], df["timestamp"].array.asi8, df["amount"])
    ]
    _common.use_kernels = compiled
    try:
        for c in (cuts, [], list(range(1, len(df)))):
            out = run_batches(config.build(), df, c)
            assert out[count_col].tolist() == [c for c, _ in want]
            np.testing.assert_array_equal(
                out[sum_col].to_numpy(), np.array([s for _, s in want], dtype=float)
            )
        op = config.build()
        first = op.process(df.iloc[:restore_at])["out"] if restore_at else df.iloc[:0]
        resumed = config.build()
        resumed.restore(op.snapshot())
        rest = resumed.process(df.iloc[restore_at:])["out"] if restore_at < len(df) else df.iloc[:0]
        got = pd.concat([first, rest], ignore_index=True)[sum_col].to_numpy(dtype=float)
        np.testing.assert_array_equal(got, np.array([s for _, s in want], dtype=float))
    finally:
        _common.use_kernels = True


def test_velocity_sums_of_a_dense_key_with_an_infinity_recover_once_it_leaves() -> None:
    """A window wider than WIDE_WINDOW entries (running sums): an infinity in it makes its sums inf, and
    the sums after it has left are finite (a running sum through an infinity would be NaN for good)."""
    from streamlab.detectors._windowcount import WIDE_WINDOW

    n = 4 * WIDE_WINDOW
    amounts = np.ones(n)
    amounts[WIDE_WINDOW] = np.inf
    df = pd.DataFrame(
        {"user_id": "dense", "timestamp": pd.to_datetime(T0 + np.arange(n) * S, utc=True), "amount": amounts}
    )
    config = VelocityFeature("user_id", window=f"{2 * WIDE_WINDOW}s", value="amount")
    _, sum_col = config.column_names()
    sums = run_batches(config.build(), df, [n // 3]).loc[:, sum_col].to_numpy()
    inside = (np.arange(n) >= WIDE_WINDOW) & (np.arange(n) < 3 * WIDE_WINDOW)
    assert np.isposinf(sums[inside]).all()
    assert np.isfinite(sums[~inside]).all() and sums[-1] == 2 * WIDE_WINDOW


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: ZScoreFeature("user", "x", name="user"), "output column 'user' is the key column it reads"),
        (
            lambda: RatioToMedianFeature("user", "x", name="x"),
            "output column 'x' is the value column it reads",
        ),
        (lambda: TimeSinceLastFeature("user", name="timestamp"), "'timestamp' is the time column it reads"),
        (lambda: DistinctCountFeature("user", "country", name="country"), "'country' is the value column"),
    ],
)
def test_a_feature_named_as_a_column_it_reads_is_refused(make, words) -> None:
    # ZScoreFeature('user', 'x', name='user') replaced every key with its z-score, silently
    with pytest.raises(ValueError, match=words) as e:
        make()
    assert "give the output another name (name=...)" in str(e.value)
    assert ZScoreFeature("user", "x", name="x_z").added_columns() == ("x_z",)


_VALUES_OF_KIND = {
    "bool": [True, False],
    "int": [1, 0, 2**53 + 1],
    "float": [1.0, 0.0, -0.0, 2.0, float(2**53), math.nan],
    "str": ["1", "a"],
    "any": [True, 1, 1.0, 0, -0.0, 2**53 + 1, float(2**53), "1", None, math.nan],
}


@st.composite
def _mixed_value_batches(draw: st.DrawFn) -> list[list[tuple[str, Any, int]]]:
    """Batches of (key, value, seconds after the previous event); a batch's values mostly of one kind,
    so its column is float64, int64, bool, strings or objects."""
    batches = []
    for _ in range(draw(st.integers(1, 8))):
        pool = _VALUES_OF_KIND[draw(st.sampled_from(list(_VALUES_OF_KIND)))]
        event = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(pool), st.integers(0, 40))
        batches.append(draw(st.lists(event, min_size=1, max_size=4)))
    return batches


@settings(max_examples=40, deadline=None)
@given(_mixed_value_batches(), st.booleans(), st.booleans())
def test_distinct_count_of_mixed_values_across_batches_equals_the_per_event_record(
    batches: list[list[tuple[str, Any, int]]], as_objects: bool, compiled: bool
) -> None:
    """Values compared as Python compares them (``True == 1 == 1.0``, ``2**53 + 1 != 2.0**53``) in
    whichever batch they arrive, each batch's column of the dtype pandas infers for it (float64 for
    ``[1.0]``, bool for ``[True]``) or of objects. A float64 vocabulary did not find a later batch's
    ``True``, numbered it apart from 1.0, and the next lookup raised ``InvalidIndexError``."""
    from streamlab import _detector_record as rec
    from streamlab.detectors import _common

    t = T0
    frames = []
    for events in batches:
        times = t + np.cumsum([s for _, _, s in events]) * S
        t = int(times[-1])
        values = [v for _, v, _ in events]
        frames.append(
            pd.DataFrame(
                {
                    "user_id": [k for k, _, _ in events],
                    "timestamp": pd.to_datetime(times, utc=True),
                    "country": pd.Series(values, dtype=object) if as_objects else pd.Series(values),
                }
            )
        )
    step = DistinctCountFeature("user_id", "country", window="1m")
    record = rec.DistinctValues(60 * S, pd.Timedelta(step.allowed_lateness).value)
    want = [  # the values as each batch's column holds them (an int64 column's 2**53 + 1 stays an int)
        record.update(k, t, v)
        for frame in frames
        for k, t, v in zip(
            frame["user_id"], frame["timestamp"].array.asi8.tolist(), frame["country"].tolist()
        )
    ]
    _common.use_kernels = compiled
    try:
        op = step.build()
        got = [c for frame in frames for c in op.process(frame)["out"][step.column_name()].tolist()]
    finally:
        _common.use_kernels = True
    assert got == want


def test_distinct_count_of_one_point_zero_then_true_in_other_batches() -> None:
    values = [2.0, 1.0, True, 2.0]
    frame = pd.DataFrame(
        {
            "user_id": ["c"] * 4,
            "timestamp": pd.to_datetime(T0 + np.arange(4) * S, utc=True),
            "country": pd.Series(values, dtype=object),
        }
    )
    step = DistinctCountFeature("user_id", "country", window="1h")
    assert step.build().process(frame)["out"][step.column_name()].tolist() == [1, 2, 2, 2]
    assert run_batches(step.build(), frame, [1, 2, 3])[step.column_name()].tolist() == [1, 2, 2, 2]


@pytest.mark.parametrize("compiled", [True, False])
def test_velocity_sum_of_an_overflow_then_an_infinity_of_the_other_sign_is_nan(compiled: bool) -> None:
    """1e308 + 1e308 + -inf added in time order is NaN (IEEE: inf + -inf), as Python and the exported code
    add; -inf first stays -inf. The runtime read -inf for both."""
    from streamlab import _detector_record
    from streamlab.detectors import _common

    for values, want in (
        ([1e308, 1e308, -np.inf], [1e308, np.inf, np.nan]),
        ([-np.inf, 1e308, 1e308], [-np.inf, -np.inf, -np.inf]),
        ([1e308, 1e308, -np.inf, -1e308, 1e308], [1e308, np.inf, np.nan, np.nan, np.nan]),
    ):
        df = pd.DataFrame(
            {
                "user_id": "a",
                "timestamp": pd.to_datetime(T0 + np.arange(len(values)) * S, utc=True),
                "amount": values,
            }
        )
        config = VelocityFeature("user_id", window="1m", value="amount")
        _, sum_col = config.column_names()
        record = _detector_record.WindowEvents(60 * S, config_lateness(config))
        assert [
            record.update("a", int(t), v)[1] for t, v in zip(df["timestamp"].array.asi8, values)
        ] == pytest.approx(want, nan_ok=True)
        _common.use_kernels = compiled
        try:
            for cuts in ([], list(range(1, len(values)))):
                got = run_batches(config.build(), df, cuts)[sum_col].to_numpy()
                np.testing.assert_array_equal(got, np.array(want))
        finally:
            _common.use_kernels = True
