"""Detect with both ``key_ttl`` and ``max_keys``: the keys the TTL has expired never hold an LRU place.

Results are those of handling events one by one (``streamlab._detector_record.DetectState``, which
drops the expired keys after every event), whatever the batch size, also when events arrive more
than ``key_ttl`` behind the newest and the LRU is full.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import ManualClock, Pipeline
from streamlab.detectors import (
    Detect,
    Detector,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    QuantileThresholdFilter,
    StandardAbsoluteDeviationDetector,
)
from streamlab.testing import ListSource

from .test_detector_record import _detect_record

S = 1_000_000_000
T0 = pd.Timestamp("2024-01-01 10:00", tz="UTC").value
BATCH_SIZES = (1, 2, 7, 50, 100_000)

DETECTORS: dict[str, Callable[[], Detector]] = {
    # no vectorized twin (window_size): the event-by-event path
    "per_event": lambda: GaussianScorerDetector(grace_period=2, window_size=4),
    "hst": lambda: HalfSpaceTreesDetector(n_trees=3, height=3, window_size=5, seed=1),
    "gaussian": lambda: GaussianScorerDetector(grace_period=2),
    "sad": lambda: StandardAbsoluteDeviationDetector(grace_period=2),
}


def test_the_vectorized_detectors_are_vectorized_and_the_other_is_not() -> None:
    assert DETECTORS["per_event"]().vectorized(("v",)) is None
    for name in ("hst", "gaussian", "sad"):
        assert DETECTORS[name]().vectorized(("v",)) is not None


@st.composite
def streams(draw: st.DrawFn) -> pd.DataFrame:
    """A few keys, times mostly increasing, some events far (up to 200 s) behind the newest."""
    n = draw(st.integers(1, 100))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(0, 10), min_size=n, max_size=n))
    late = draw(st.lists(st.one_of(st.just(0), st.just(0), st.integers(0, 200)), min_size=n, max_size=n))
    noise = draw(st.lists(st.floats(-100, 100), min_size=n, max_size=n))
    # values that vary even where hypothesis shrinks the noise to 0: a fresh model and a trained
    # one then score them differently
    values = np.arange(n) * 7.3 % 11 + np.array(noise)
    times = (np.cumsum(steps) - np.array(late)) * S + T0
    return pd.DataFrame({"k": keys, "v": values, "timestamp": pd.to_datetime(times, utc=True)})


def run_cut(step: Detect, frame: pd.DataFrame, size: int) -> pd.DataFrame:
    op = step.build()
    parts = [
        op.process(frame.iloc[i : i + size].reset_index(drop=True))["out"] for i in range(0, len(frame), size)
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("name", sorted(DETECTORS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=streams(),
    max_keys=st.integers(1, 4),
    ttl=st.sampled_from(["30s", "1m"]),
    unflagged=st.booleans(),
)
def test_scores_do_not_depend_on_the_batch_size(
    frame: pd.DataFrame, name: str, max_keys: int, ttl: str, unflagged: bool
) -> None:
    step = Detect(
        DETECTORS[name](),
        features=["v"],
        key="k",
        key_ttl=ttl,
        max_keys=max_keys,
        threshold=QuantileThresholdFilter(0.8, warmup=3) if unflagged else None,
        learn="unflagged" if unflagged else "all",
    )
    expected, reasons = _detect_record(step, frame)  # the per-record semantics the exported jobs run
    assert reasons == []
    for size in BATCH_SIZES:
        out = run_cut(step, frame, size)
        np.testing.assert_allclose(
            out["score"], [s for s, _ in expected], rtol=1e-9, atol=0, err_msg=f"{size=}"
        )
        if unflagged:
            assert out["is_anomaly"].tolist() == [f for _, f in expected], size


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_snapshot_mid_stream_resumes_as_an_uninterrupted_run(name: str) -> None:
    rng = np.random.default_rng(5)
    n = 300
    times = (np.cumsum(rng.integers(0, 20, n)) - rng.integers(0, 300, n) * (rng.random(n) < 0.3)) * S + T0
    frame = pd.DataFrame(
        {
            "k": rng.choice(list("abcde"), n),
            "v": rng.normal(0, 1, n),
            "timestamp": pd.to_datetime(times, utc=True),
        }
    )
    step = Detect(DETECTORS[name](), features=["v"], key="k", key_ttl="1m", max_keys=3)
    whole = run_cut(step, frame, 40)["score"].to_numpy()
    op = step.build()
    first = [op.process(frame.iloc[i : i + 40].reset_index(drop=True))["out"] for i in range(0, 120, 40)]
    resumed = step.build()
    resumed.restore(pickle.loads(pickle.dumps(op.snapshot())))
    rest = [resumed.process(frame.iloc[i : i + 40].reset_index(drop=True))["out"] for i in range(120, n, 40)]
    got = pd.concat(first + rest, ignore_index=True)["score"].to_numpy()
    np.testing.assert_array_equal(got, whole)


def event(user: str, amount: float, minute: int) -> dict[str, object]:
    at = pd.Timestamp("2024-01-01 10:00", tz="UTC") + pd.Timedelta(minutes=minute)
    return {"user": user, "amount": amount, "timestamp": at}


#: B's three events at 10:05, then A's at 10:00: more than key_ttl="1m" behind B
B_TRAINED_THEN_A_BEHIND = [event("B", 1.0, 5), event("B", 2.0, 5), event("B", 3.0, 5), event("A", 1.0, 0)]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_an_event_behind_the_ttl_does_not_keep_its_place(name: str) -> None:
    """The QA report's case: A arrives more than key_ttl behind B; its model is dropped after it, so
    the new key C fits under max_keys=2 and B keeps its model, in one batch as one by one."""

    events = [*B_TRAINED_THEN_A_BEHIND, event("C", 1.0, 5), event("B", 10.0, 5)]
    scores = {}
    for size in (1, 10):
        p = Pipeline(ListSource(events))
        p.stream.detect(DETECTORS[name](), ["amount"], key="user", key_ttl="1m", max_keys=2, step_id="det")
        scores[size] = p.run(clock=ManualClock(0), batch_size=size)["det"]["score"].to_numpy()
    np.testing.assert_allclose(scores[10], scores[1], rtol=1e-9, atol=0)
    if name == "sad":  # B's fourth event is scored by B's trained model
        assert scores[10].round(3).tolist() == [0.0, 0.0, 2.121, 0.0, 0.0, 8.0]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_new_key_already_past_the_ttl_evicts_no_live_key(name: str) -> None:
    """A new key A arrives more than key_ttl behind B with the LRU full (max_keys=1): it is scored by a
    fresh model and dropped after its event, so B keeps its model (it was evicted for A, which the
    sweep then dropped: B's next event met a fresh model), in one batch as one by one and as the
    exported jobs' per-record state."""

    events = [*B_TRAINED_THEN_A_BEHIND, event("B", 10.0, 5)]
    step = Detect(DETECTORS[name](), features=["amount"], key="user", key_ttl="1m", max_keys=1)
    frame = pd.DataFrame(events)
    expected, reasons = _detect_record(step, frame)
    assert reasons == []
    for size in (1, 2, 10):
        out = run_cut(step, frame, size)
        np.testing.assert_allclose(
            out["score"], [s for s, _ in expected], rtol=1e-9, atol=0, err_msg=f"{size=}"
        )
    if name == "sad":  # B's fourth event is scored by B's trained model, A's by a fresh one
        assert np.round([s for s, _ in expected], 3).tolist() == [0.0, 0.0, 2.121, 0.0, 8.0]
