"""Generic checks over every public step of streamlab.detectors.

Config: frozen, picklable, ``describe()`` is plain data with a ``kind``, docstring with an example.
Operator: picklable, does not mutate its input, and snapshot-and-restore mid-stream equals an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import streamlab.detectors as sd
from streamlab.detectors import (
    AdaptiveThresholdFilter,
    Detect,
    DistinctCountFeature,
    DriftDetector,
    FixedThresholdFilter,
    HalfSpaceTreesDetector,
    Pattern,
    PatternStep,
    QuantileThresholdFilter,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.detectors.evaluation import DelayedLabelEvaluation


def stream(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.integers(0, 3600, n)) + rng.integers(-20, 20, n)  # mild disorder
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": rng.choice(["a", "b", "c", "d"], n),
            "event_type": rng.choice(["login_failed", "login_success", "payment"], n, p=[0.5, 0.2, 0.3]),
            "country": rng.choice(["FR", "US", "DE"], n),
            "amount": rng.gamma(2.0, 10.0, n),
            "score": rng.random(n),
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(secs, unit="s"),
        }
    )


STEPS: dict[str, Callable[[], Any]] = {
    "detect_global": lambda: Detect(
        HalfSpaceTreesDetector(window_size=30, seed=3),
        features=["amount"],
        threshold=QuantileThresholdFilter(q=0.9, warmup=20),
    ),
    "detect_keyed": lambda: Detect(
        HalfSpaceTreesDetector(n_trees=3, height=4, window_size=10, seed=3),
        features=["amount", "score"],
        key="user_id",
        threshold=AdaptiveThresholdFilter(k=2.0, warmup=5),
        learn="unflagged",
        max_keys=3,
        key_ttl="10m",
    ),
    "fixed_threshold": lambda: FixedThresholdFilter(0.5),
    "quantile_threshold": lambda: QuantileThresholdFilter(q=0.9, warmup=10),
    "adaptive_threshold": lambda: AdaptiveThresholdFilter(key="user_id", warmup=3),
    "velocity": lambda: VelocityFeature("user_id", window="5m", value="amount"),
    "zscore": lambda: ZScoreFeature("user_id", "amount"),
    "time_since_last": lambda: TimeSinceLastFeature("user_id"),
    "distinct": lambda: DistinctCountFeature("user_id", "country", window="10m"),
    "ratio_to_median": lambda: RatioToMedianFeature("user_id", "amount", history=7),
    "threshold_rule": lambda: ThresholdRule("big", expr="amount > 40"),
    "velocity_rule": lambda: VelocityRule("user_id", window="2m", max_count=3, name="burst"),
    "pattern": lambda: Pattern(
        key="user_id",
        within="10m",
        delay="30s",
        steps=[("failed", "event_type == 'login_failed'", 2), ("success", "event_type == 'login_success'")],
    ),
    "pattern_differs": lambda: Pattern(
        key="user_id",
        within="30m",
        steps=[
            PatternStep("first", "event_type == 'payment'"),
            PatternStep("second", "event_type == 'payment'", differs_from={"country": "first"}),
        ],
    ),
    "drift": lambda: DriftDetector(column="score", method="page_hinkley"),
}


@pytest.fixture(params=sorted(STEPS))
def make(request: pytest.FixtureRequest) -> Callable[[], Any]:
    return STEPS[request.param]


def run(op: Any, parts: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    collected: dict[str, list[pd.DataFrame]] = {}
    for p in parts:
        for name, df in op.process(p).items():
            collected.setdefault(name, []).append(df)
    for name, df in op.on_end().items():
        collected.setdefault(name, []).append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in collected.items()}


def test_config_is_frozen_picklable_and_described(make: Callable[[], Any]) -> None:
    step = make()
    assert dataclasses.is_dataclass(step)
    field = dataclasses.fields(step)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(step, field, None)
    desc = step.describe()
    assert isinstance(desc["kind"], str)
    assert yaml.safe_load(yaml.safe_dump(desc)) == desc  # plain data, YAML-ready
    assert pickle.loads(pickle.dumps(step)).describe() == desc
    assert type(step).__doc__ and "Examples" in type(step).__doc__


def test_snapshot_restore_mid_stream_equals_uninterrupted(make: Callable[[], Any]) -> None:
    df = stream()
    parts = [df.iloc[a : a + 60] for a in range(0, len(df), 60)]
    whole = run(make().build(), parts)
    op = make().build()
    head = run_partial(op, parts[:2])
    snap = pickle.dumps(op.snapshot())
    op.process(parts[2])  # work after the snapshot must not leak into it
    resumed = make().build()
    resumed.restore(pickle.loads(snap))
    tail = run(resumed, parts[2:])
    for name in whole:
        combined = pd.concat(
            [x for x in (head.get(name), tail.get(name)) if x is not None], ignore_index=True
        )
        pd.testing.assert_frame_equal(combined, whole[name])


def run_partial(op: Any, parts: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    collected: dict[str, list[pd.DataFrame]] = {}
    for p in parts:
        for name, df in op.process(p).items():
            collected.setdefault(name, []).append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in collected.items()}


def test_operator_is_picklable_and_does_not_mutate_input(make: Callable[[], Any]) -> None:
    df = stream(120)
    before = df.copy()
    op = make().build()
    op.process(df.iloc[:60])
    clone = pickle.loads(pickle.dumps(op))
    a, b = op.process(df.iloc[60:]), clone.process(df.iloc[60:])
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    pd.testing.assert_frame_equal(df, before)
    assert isinstance(op.open_state(), dict)


def test_every_public_name_is_documented() -> None:
    for name in sd.__all__:
        obj = getattr(sd, name)
        assert obj.__doc__, name
    assert DelayedLabelEvaluation.__doc__


def test_empty_batches_pass_through(make: Callable[[], Any]) -> None:
    df = stream(50)
    op = make().build()
    empty = op.process(df.iloc[0:0])
    assert all(len(frame) == 0 for frame in empty.values())
    after = op.process(df)
    reference = make().build().process(df)
    for name in reference:
        pd.testing.assert_frame_equal(after[name], reference[name])
