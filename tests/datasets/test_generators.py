"""Generators: determinism, injected shares, and labels that agree with the data."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlab.datasets import (
    SyntheticSource,
    _generators,
    generate_app_logs,
    generate_clickstream,
    generate_iot,
    generate_transactions,
)
from streamlab.datasets._common import BLOCK

from streamlab._time import parse_duration


def _ns(ts: pd.Series) -> np.ndarray:
    return ts.array.asi8


def _prev_max(ns: np.ndarray) -> np.ndarray:
    prev = np.full(len(ns), np.iinfo(np.int64).min, dtype=np.int64)
    prev[1:] = np.maximum.accumulate(ns)[:-1]
    return prev


@pytest.fixture(scope="module")
def clicks() -> pd.DataFrame:
    # Two blocks and a bit, so block boundaries are covered.
    return generate_clickstream(2 * BLOCK + 5000, seed=3, late_share=0.02, duplicate_share=0.02)


@pytest.fixture(scope="module")
def txns() -> pd.DataFrame:
    return generate_transactions(40_000, seed=5, fraud_share=0.02)


# --------------------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("generate", [generate_clickstream, generate_transactions, generate_iot])
def test_same_seed_gives_identical_frames_and_other_seed_differs(generate) -> None:
    a, b = generate(3000, seed=42), generate(3000, seed=42)
    pd.testing.assert_frame_equal(a, b)
    c = generate(3000, seed=43)
    assert not a["timestamp"].equals(c["timestamp"])


@pytest.mark.parametrize(
    "generate",
    # A drift given as a fraction of n moves with n; fix it as a duration to compare prefixes.
    [generate_clickstream, generate_transactions, functools.partial(generate_iot, drift_at="20m")],
)
def test_shorter_frame_is_a_prefix_of_longer_one(generate) -> None:
    long = generate(BLOCK + 100, seed=1)
    short = generate(BLOCK - 7, seed=1)
    pd.testing.assert_frame_equal(short, long.iloc[: BLOCK - 7].reset_index(drop=True))


@pytest.mark.parametrize("generate", [generate_clickstream, generate_transactions, generate_iot])
def test_zero_rows_keeps_the_schema(generate) -> None:
    empty = generate(0)
    assert len(empty) == 0
    assert list(empty.columns) == list(generate(5).columns)
    assert str(empty["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_one_million_clickstream_events_are_built_in_whole_blocks(monkeypatch) -> None:
    # The work is counted, not timed (a time bound fails on a busy machine and proves little on a quiet
    # one; speed belongs in benchmarks/): 1M events are 62 blocks of BLOCK rows, one block call each.
    kind = _generators.CLICKSTREAM
    blocks: list[tuple[int, int]] = []

    def counted(config, k, carry):
        block = kind.make_block(config, k, carry)
        blocks.append((k, len(block.frame)))
        return block

    monkeypatch.setattr(_generators, "CLICKSTREAM", dataclasses.replace(kind, make_block=counted))
    df = generate_clickstream(1_000_000, seed=0)
    assert len(df) == 1_000_000
    assert blocks == [(k, BLOCK) for k in range(-(-1_000_000 // BLOCK))]


# --------------------------------------------------------------------------------------------------
# clickstream
# --------------------------------------------------------------------------------------------------


def test_clickstream_schema(clicks: pd.DataFrame) -> None:
    assert list(clicks.columns) == [
        "event_id",
        "event_type",
        "user_id",
        "timestamp",
        "properties",
        "is_duplicate",
        "is_late",
        "is_burst",
    ]
    assert str(clicks["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert set(clicks["event_type"]) == {"page_view", "click", "add_to_cart", "purchase", "login", "logout"}
    props = clicks["properties"]
    assert all(isinstance(p, dict) and {"page", "device", "country"} <= p.keys() for p in props)
    purchases = props[clicks["event_type"] == "purchase"]
    assert all(p["amount"] > 0 and p["currency"] == "USD" for p in purchases)
    assert (_ns(clicks["timestamp"]) % 1_000_000 == 0).all(), "event times are whole milliseconds"


def test_clickstream_shares_within_tolerance(clicks: pd.DataFrame) -> None:
    n = len(clicks)
    assert abs(clicks["is_duplicate"].mean() - 0.02) < 0.004
    originals = clicks[~clicks["is_duplicate"]]
    assert abs(originals["is_late"].mean() - 0.02) < 0.004
    assert abs(clicks["is_burst"].mean() - 0.05) < 0.01
    shares = clicks["event_type"].value_counts() / n
    assert abs(shares["page_view"] - 0.55) < 0.02
    assert abs(shares["purchase"] - 0.02) < 0.005


def test_every_duplicate_resends_an_earlier_event_unchanged(clicks: pd.DataFrame) -> None:
    dups = clicks.index[clicks["is_duplicate"]]
    first = clicks.drop_duplicates("event_id", keep="first")
    assert not first["is_duplicate"].any(), "the first row of an event_id is the original"
    assert clicks.loc[~clicks["is_duplicate"], "event_id"].is_unique
    by_id = first.set_index("event_id")
    for i in dups[:300]:
        row = clicks.loc[i]
        orig = by_id.loc[row["event_id"]]
        assert orig.name == row["event_id"]
        assert first.index[first["event_id"] == row["event_id"]][0] < i
        assert orig["timestamp"] == row["timestamp"]
        assert orig["properties"] == row["properties"]
        assert orig["user_id"] == row["user_id"]


def test_late_label_matches_running_max_and_disorder_bound(clicks: pd.DataFrame) -> None:
    disorder = parse_duration("5s")
    lateness = parse_duration("2m")
    ns = _ns(clicks["timestamp"])
    prev = _prev_max(ns)
    has_prev = np.arange(len(ns)) > 0
    behind = np.where(has_prev, prev - ns, 0)
    late = clicks["is_late"].to_numpy()
    assert (behind[late] > disorder).all()
    assert (behind[~late] <= disorder).all()
    originals = late & ~clicks["is_duplicate"].to_numpy()
    assert (behind[originals] <= disorder + lateness).all()
    assert not bool(clicks["timestamp"].is_monotonic_increasing)
    on_time = ~late & ~clicks["is_duplicate"].to_numpy()
    assert (behind[on_time] > 0).mean() > 0.3, "on-time events should still be out of order"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    disorder_ms=st.integers(0, 20_000),
    lateness_ms=st.integers(1, 300_000),
    late_share=st.floats(0, 0.3),
    duplicate_share=st.floats(0, 0.3),
    rate=st.floats(0.5, 5000),
)
def test_clickstream_labels_hold_for_any_knobs(
    seed: int, disorder_ms: int, lateness_ms: int, late_share: float, duplicate_share: float, rate: float
) -> None:
    df = generate_clickstream(
        3000,
        seed=seed,
        disorder=f"{disorder_ms}ms",
        lateness=f"{lateness_ms}ms",
        late_share=late_share,
        duplicate_share=duplicate_share,
        events_per_second=rate,
    )
    ns = _ns(df["timestamp"])
    behind = np.where(np.arange(len(ns)) > 0, _prev_max(ns) - ns, 0)
    late = df["is_late"].to_numpy()
    assert (behind[late] > disorder_ms * 1_000_000).all()
    assert (behind[~late] <= disorder_ms * 1_000_000).all()
    dup = df["is_duplicate"].to_numpy()
    seen = set(df.loc[~dup, "event_id"])
    assert set(df.loc[dup, "event_id"]) <= seen
    assert df.loc[~dup, "event_id"].is_unique


def test_clickstream_rate_sets_the_time_span() -> None:
    df = generate_clickstream(10_000, seed=2, rate="50/s", late_share=0, disorder="0s")
    span = (df["timestamp"].max() - df["timestamp"].min()).total_seconds()
    assert 190 < span < 210  # 10 000 events at 50/s is about 200 s
    df2 = generate_clickstream(10_000, seed=2, events_per_second=50.0, late_share=0, disorder="0s")
    pd.testing.assert_frame_equal(df, df2)


def test_clickstream_starts_at_start() -> None:
    df = generate_clickstream(1000, seed=1, start="2024-05-01T12:00:00Z", late_share=0)
    assert df["timestamp"].min() >= pd.Timestamp("2024-05-01T12:00:00Z")
    assert df["timestamp"].min() < pd.Timestamp("2024-05-01T12:00:10Z")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"late_share": 1.5}, "late_share"),
        ({"rate": "fast"}, "rate"),
        ({"rate": "10/s", "events_per_second": 10.0}, "either"),
        ({"disorder": "soon"}, "disorder"),
        ({"lateness": "0s"}, "lateness"),
        ({"start": "not a time"}, "start"),
        ({"n_users": 0}, "n_users"),
    ],
)
def test_clickstream_bad_knobs_fail_at_call_and_say_which(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_clickstream(10, **kwargs)


def test_negative_n_is_rejected() -> None:
    with pytest.raises(ValueError, match="n must be"):
        generate_transactions(-1)


# --------------------------------------------------------------------------------------------------
# transactions
# --------------------------------------------------------------------------------------------------


def test_transactions_fraud_share_and_patterns(txns: pd.DataFrame) -> None:
    assert abs(txns["is_fraud"].mean() - 0.02) < 0.004
    assert set(txns["fraud_pattern"]) == {"none", "velocity", "amount_spike", "geo_jump"}
    assert (txns["is_fraud"] == (txns["fraud_pattern"] != "none")).all()
    assert txns.loc[~txns["is_fraud"], "fraud_burst_id"].isna().all()
    assert txns.loc[txns["is_fraud"], "fraud_burst_id"].notna().all()
    # An incident has one pattern and one card.
    per_burst = (
        txns[txns["is_fraud"]]
        .groupby("fraud_burst_id")
        .agg(patterns=("fraud_pattern", "nunique"), cards=("card_id", "nunique"))
    )
    assert (per_burst["patterns"] == 1).all() and (per_burst["cards"] == 1).all()


def _check_geo_jumps(txns: pd.DataFrame) -> None:
    legit = txns[~txns["is_fraud"]]
    assert (legit.groupby("card_id")["country"].nunique() == 1).all()
    home = legit.groupby("card_id")["country"].first()
    geo = txns[txns["fraud_pattern"] == "geo_jump"]
    assert len(geo) > 20
    for _, row in geo.iterrows():
        assert row["country"] != home.get(row["card_id"], row["country"] + "?")
        card = txns[(txns["card_id"] == row["card_id"]) & (txns["country"] != row["country"])]
        gaps = (row["timestamp"] - card["timestamp"]).dt.total_seconds()
        assert ((gaps > 0) & (gaps <= 3600)).any(), (
            f"no purchase at home within the hour before {row['event_id']}"
        )


def test_legit_transactions_stay_home_and_geo_jumps_go_abroad_within_the_hour(txns: pd.DataFrame) -> None:
    _check_geo_jumps(txns)


def test_geo_jumps_exist_even_when_a_block_spans_seconds() -> None:
    _check_geo_jumps(generate_transactions(20_000, seed=2, events_per_second=2000, fraud_share=0.05))


def test_velocity_bursts_and_amount_spikes_look_like_their_names(txns: pd.DataFrame) -> None:
    # Incidents of the last, partial block may be cut off by n; look at complete blocks only.
    whole = txns[txns["fraud_burst_id"].fillna(0) < 2 * BLOCK]
    vel = whole[whole["fraud_pattern"] == "velocity"].groupby("fraud_burst_id")["timestamp"]
    sizes = vel.size()
    spans = (vel.max() - vel.min()).dt.total_seconds()
    assert (sizes >= 5).all() and (sizes <= 12).all()
    assert (spans <= 10 * 60 + 2).all()
    typical = txns[~txns["is_fraud"]].groupby("card_id")["amount"].median()
    spikes = txns[txns["fraud_pattern"] == "amount_spike"]
    ratio = spikes["amount"].to_numpy() / typical.reindex(spikes["card_id"]).fillna(30).to_numpy()
    assert np.median(ratio) > 10
    assert (spikes["amount"] >= 500).all()


def test_transactions_bad_knobs() -> None:
    with pytest.raises(ValueError, match="fraud_share"):
        generate_transactions(10, fraud_share=0.9)
    with pytest.raises(ValueError, match="pattern_weights"):
        generate_transactions(10, pattern_weights=(1, -1, 0))
    with pytest.raises(ValueError, match="n_cards"):
        generate_transactions(10, n_cards=1)


def test_only_chosen_patterns_appear() -> None:
    df = generate_transactions(5000, seed=9, fraud_share=0.05, pattern_weights=(0, 1, 0))
    assert set(df.loc[df["is_fraud"], "fraud_pattern"]) == {"amount_spike"}


# --------------------------------------------------------------------------------------------------
# iot
# --------------------------------------------------------------------------------------------------


def test_iot_anomalies_and_drift() -> None:
    df = generate_iot(40_000, seed=8, n_devices=10, anomaly_share=0.01, drift_at=0.5)
    assert abs(df["is_anomaly"].mean() - 0.01) < 0.003
    assert (df["is_anomaly"] == (df["anomaly_metric"] != "none")).all()
    drift_start = df.loc[df["is_drift"], "timestamp"].min()
    mid = df["timestamp"].min() + (df["timestamp"].max() - df["timestamp"].min()) / 2
    assert abs((drift_start - mid).total_seconds()) < 5
    drifting = set(df.loc[df["is_drift"], "device_id"])
    assert len(drifting) == 2  # a quarter of 10 devices, rounded
    # The drift is a level shift of about +5 °C on those devices.
    normal = df[~df["is_anomaly"] & df["device_id"].isin(drifting)]
    after = normal[normal["timestamp"] >= drift_start].groupby("device_id")["temperature"].mean()
    before = normal[normal["timestamp"] < drift_start].groupby("device_id")["temperature"].mean()
    assert ((after - before) > 3.5).all()
    # Point anomalies stand out from their device's normal readings.
    temp = df[df["anomaly_metric"] == "temperature"]
    dev_mean = df[~df["is_anomaly"]].groupby("device_id")["temperature"].mean()
    assert (
        np.abs(temp["temperature"].to_numpy() - dev_mean.reindex(temp["device_id"]).to_numpy()) > 5
    ).mean() > 0.9
    hum = df[df["anomaly_metric"] == "humidity"]
    assert hum["humidity"].isin([0.0, 100.0]).all()


def test_iot_drift_can_be_a_time_or_off() -> None:
    df = generate_iot(2000, seed=1, drift_at="2024-01-01T00:01:00Z", n_devices=4)
    assert df.loc[df["is_drift"], "timestamp"].min() >= pd.Timestamp("2024-01-01T00:01:00Z")
    assert df["is_drift"].any()
    assert not generate_iot(2000, seed=1, drift_at=None)["is_drift"].any()
    with pytest.raises(ValueError, match="drift_at"):
        generate_iot(10, drift_at="whenever")


@pytest.mark.parametrize(
    "make",
    [
        lambda: generate_clickstream(10, rate=1e-9),
        lambda: generate_clickstream(2000, start="2262-04-11T23:47:00Z"),
        lambda: generate_transactions(10, rate=1e-9),
        lambda: generate_iot(10, rate=1e-9),
        lambda: generate_app_logs(10, rate=1e-9),
        lambda: SyntheticSource("iot", n=100, start="2262-04-11T23:47:16Z"),
    ],
)
def test_events_past_the_nanosecond_range_are_refused_at_the_call(make) -> None:
    # these overflowed inside numpy (OverflowError: Python int too large), SyntheticSource only mid-run
    with pytest.raises(ValueError, match="would run past 2262-04-10, the last time 64-bit nanoseconds hold"):
        make()
