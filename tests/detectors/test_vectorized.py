"""The vectorized detectors against river's per-event loop.

The reference is the detect step's per-event path (river models called with ``score_one`` then
``learn_one``, with the same per-key LRU and TTL bookkeeping), reached through subclasses whose
``vectorized()`` returns None; the single-model case is also checked against a bare river loop.
Half-Space Trees scores must be bit-identical; the running-moment scorers (Gaussian scorer,
standard absolute deviation) equal river's within their stated tolerance (see ``MomentsBank``).
"""

from __future__ import annotations

import itertools
import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import anomaly, datasets, metrics, preprocessing

from streamlab.detectors import (
    AdaptiveThresholdFilter,
    Detect,
    FixedThresholdFilter,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    QuantileThresholdFilter,
    StandardAbsoluteDeviationDetector,
)
from streamlab.detectors._vectorized import ModelBank, MomentsBank, erf
from streamlab.detectors.evaluation import DelayedLabelEvaluation, roc_auc, threshold_sweep


class RiverHalfSpaceTrees(HalfSpaceTreesDetector):
    """The same detector without its vectorized twin: river's per-event path."""

    def vectorized(self, features: tuple[str, ...]) -> ModelBank | None:
        return None


class RiverGaussianScorer(GaussianScorerDetector):
    def vectorized(self, features: tuple[str, ...]) -> ModelBank | None:
        return None


class RiverStandardAbsoluteDeviation(StandardAbsoluteDeviationDetector):
    def vectorized(self, features: tuple[str, ...]) -> ModelBank | None:
        return None


T0 = pd.Timestamp("2024-01-01", tz="UTC")


@st.composite
def streams(draw: Any, max_events: int = 160) -> tuple[pd.DataFrame, int, int]:
    """Events with 1-3 features (spikes and repeated values included), keys, minutes-apart times."""
    n = draw(st.integers(1, max_events))
    n_features = draw(st.integers(1, 3))
    n_keys = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    values = np.round(rng.gamma(2.0, 10.0, (n, n_features)), draw(st.sampled_from([0, 2, 6])))
    values[rng.random((n, n_features)) < 0.05] *= 50  # outliers that move the scaler's extrema
    gaps = rng.choice([0, 1, 5, 90], n, p=[0.3, 0.4, 0.2, 0.1])  # minutes; 90 exceeds a 1h TTL
    frame = pd.DataFrame(values, columns=[f"f{j}" for j in range(n_features)])
    frame["user_id"] = rng.integers(0, n_keys, n).astype(str)
    frame["timestamp"] = T0 + pd.to_timedelta(np.cumsum(gaps), unit="min")
    batch = draw(st.integers(1, n))
    restore_at = draw(st.integers(0, n))
    return frame, batch, restore_at


def run_detect(step: Detect, frame: pd.DataFrame, batch: int, restore_at: int | None = None) -> pd.DataFrame:
    """Run in micro-batches; optionally snapshot after ``restore_at`` rows and continue from a restored copy."""
    op = step.build()
    outs = []
    cuts = sorted({*range(0, len(frame), batch), *([restore_at] if restore_at else []), len(frame)})
    for a, b in itertools.pairwise(cuts):
        if a == restore_at:
            snap = pickle.dumps(op.snapshot())
            op.process(frame.iloc[a:])  # work after the snapshot must not leak into it
            op = step.build()
            op.restore(pickle.loads(snap))
        outs.append(op.process(frame.iloc[a:b])["out"])
    return pd.concat(outs, ignore_index=True)


hst_params = st.fixed_dictionaries(
    {
        "n_trees": st.integers(1, 4),
        "height": st.integers(1, 5),
        "window_size": st.integers(1, 30),
        "seed": st.integers(0, 1000),
    }
)


@settings(max_examples=40)
@given(data=streams(), params=hst_params, keyed=st.booleans(), max_keys=st.integers(1, 6), ttl=st.booleans())
def test_half_space_trees_bit_identical_to_river(
    data: tuple[pd.DataFrame, int, int], params: dict[str, int], keyed: bool, max_keys: int, ttl: bool
) -> None:
    frame, batch, restore_at = data
    features = [c for c in frame.columns if c.startswith("f")]
    kw: dict[str, Any] = {"features": features}
    if keyed:
        kw |= {"key": "user_id", "max_keys": max_keys, "key_ttl": "1h" if ttl else None}
    fast_step = Detect(HalfSpaceTreesDetector(**params), **kw)
    fast = run_detect(fast_step, frame, batch, restore_at)
    ref_op = Detect(RiverHalfSpaceTrees(**params), **kw).build()
    ref = ref_op.process(frame)["out"]
    assert fast["score"].tolist() == ref["score"].tolist()
    if keyed:
        whole = fast_step.build()
        whole.process(frame)
        assert whole.open_state() == ref_op.open_state()  # same keys kept, same evictions


@settings(max_examples=25)
@given(data=streams(), params=hst_params, keyed=st.booleans(), quantile=st.booleans())
def test_half_space_trees_learn_unflagged_identical_to_river(
    data: tuple[pd.DataFrame, int, int], params: dict[str, int], keyed: bool, quantile: bool
) -> None:
    frame, batch, restore_at = data
    features = [c for c in frame.columns if c.startswith("f")]
    threshold: Any = QuantileThresholdFilter(q=0.8, warmup=5) if quantile else FixedThresholdFilter(0.6)
    kw: dict[str, Any] = {"features": features, "threshold": threshold, "learn": "unflagged"}
    if keyed:
        kw |= {"key": "user_id", "max_keys": 3}
    fast = run_detect(Detect(HalfSpaceTreesDetector(**params), **kw), frame, batch, restore_at)
    ref = Detect(RiverHalfSpaceTrees(**params), **kw).build().process(frame)["out"]
    assert fast["score"].tolist() == ref["score"].tolist()
    assert fast["is_anomaly"].tolist() == ref["is_anomaly"].tolist()


def test_half_space_trees_equals_a_bare_river_loop_across_window_boundaries() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.gamma(2.0, 10.0, (300, 2)), columns=["a", "b"])
    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
        n_trees=10, height=8, window_size=64, seed=9
    )
    expected = []
    for x in frame.to_dict("records"):
        expected.append(float(model.score_one(x)))
        model.learn_one(x)
    step = Detect(HalfSpaceTreesDetector(n_trees=10, height=8, window_size=64, seed=9), features=["a", "b"])
    for batch in (1, 63, 64, 65, 300):
        assert run_detect(step, frame, batch)["score"].tolist() == expected


moment_detectors = st.sampled_from(["gaussian", "sad"])


def _moments(kind: str, grace: int, reference: bool) -> Any:
    if kind == "gaussian":
        return (RiverGaussianScorer if reference else GaussianScorerDetector)(
            feature="f0", grace_period=grace
        )
    return (RiverStandardAbsoluteDeviation if reference else StandardAbsoluteDeviationDetector)(
        feature="f0", grace_period=grace
    )


def assert_moments_close(fast: np.ndarray, ref: np.ndarray) -> None:
    """The running-moment scorers' stated tolerance: ``|fast - river| <= 1e-9 * (1 + |river|)``."""
    fast, ref = np.asarray(fast, dtype=float), np.asarray(ref, dtype=float)
    assert np.all(np.abs(fast - ref) <= 1e-9 * (1 + np.abs(ref))), np.max(np.abs(fast - ref))


@settings(max_examples=40)
@given(
    data=streams(),
    kind=moment_detectors,
    grace=st.integers(0, 5),
    keyed=st.booleans(),
    max_keys=st.integers(1, 6),
)
def test_running_moment_scorers_equal_river_within_tolerance(
    data: tuple[pd.DataFrame, int, int], kind: str, grace: int, keyed: bool, max_keys: int
) -> None:
    frame, batch, restore_at = data
    features = [c for c in frame.columns if c.startswith("f")]
    kw: dict[str, Any] = {"features": features}
    if keyed:
        kw |= {"key": "user_id", "max_keys": max_keys, "key_ttl": "1h"}
    fast = run_detect(Detect(_moments(kind, grace, False), **kw), frame, batch, restore_at)
    ref = Detect(_moments(kind, grace, True), **kw).build().process(frame)["out"]
    assert_moments_close(fast["score"], ref["score"])


@settings(max_examples=25)
@given(
    n=st.integers(1, 3000),
    n_keys=st.sampled_from([1, 2, 50, 400]),
    level=st.sampled_from([0.0, 1e-3, 1.0, 1e4]),
    drift=st.booleans(),
    batch=st.integers(1, 3000),
    seed=st.integers(0, 2**16),
)
def test_running_moments_long_runs_and_many_keys(
    n: int, n_keys: int, level: float, drift: bool, batch: int, seed: int
) -> None:
    """Both vectorized paths (closed form for long runs, exact replay across many keys) against river."""
    rng = np.random.default_rng(seed)
    values = level + rng.standard_normal(n) * max(level, 1.0) * 1e-2
    if drift:
        values += np.linspace(0.0, 5.0 * max(level, 1.0), n)
    keys = rng.integers(0, n_keys, n)
    bank = MomentsBank("gaussian", 2, 0)
    sad = MomentsBank("sad", 0, 0)
    slot_of = {k: (bank.allocate(), sad.allocate()) for k in range(n_keys)}
    slots = np.array([slot_of[k] for k in keys.tolist()])
    fast = [
        np.concatenate(
            [
                b.score_learn_many(values[a : a + batch, None], slots[a : a + batch, j])
                for a in range(0, n, batch)
            ]
        )
        for j, b in enumerate((bank, sad))
    ]
    models: dict[int, tuple[Any, Any]] = {}
    ref: tuple[list[float], list[float]] = ([], [])
    for v, k in zip(values.tolist(), keys.tolist()):
        g, d = models.setdefault(
            k, (anomaly.GaussianScorer(grace_period=2), anomaly.StandardAbsoluteDeviation())
        )
        ref[0].append(float(g.score_one(None, v)))
        ref[1].append(float(d.score_one(None, v)))
        g.learn_one(None, v)
        d.learn_one(None, v)
    assert_moments_close(fast[0], np.asarray(ref[0]))
    assert_moments_close(fast[1], np.asarray(ref[1]))


@settings(max_examples=20)
@given(data=streams(), kind=moment_detectors, keyed=st.booleans())
def test_running_moment_scorers_learn_unflagged_match_river(
    data: tuple[pd.DataFrame, int, int], kind: str, keyed: bool
) -> None:
    frame, batch, restore_at = data
    kw: dict[str, Any] = {
        "features": ["f0"],
        "threshold": FixedThresholdFilter(0.95 if kind == "gaussian" else 2.5),
        "learn": "unflagged",
    }
    if keyed:
        kw |= {"key": "user_id", "max_keys": 3}
    fast = run_detect(Detect(_moments(kind, 3, False), **kw), frame, batch, restore_at)
    ref = Detect(_moments(kind, 3, True), **kw).build().process(frame)["out"]
    assert_moments_close(fast["score"], ref["score"])
    assert fast["is_anomaly"].tolist() == ref["is_anomaly"].tolist()


def test_vectorized_erf_matches_math_erf() -> None:
    rng = np.random.default_rng(0)
    xs = np.r_[
        np.linspace(-8.0, 8.0, 20_001), rng.normal(0.0, 2.0, 20_000), [0.0, -0.0, 1.5, 6.0, np.inf, -np.inf]
    ]
    expected = np.array([math.erf(x) for x in xs.tolist()])
    assert np.max(np.abs(erf(xs) - expected)) <= 4.5e-16
    assert np.isnan(erf(np.array([np.nan])))[0]


def test_gaussian_with_a_window_keeps_the_per_event_path() -> None:
    assert GaussianScorerDetector(window_size=10).vectorized(("a",)) is None
    assert GaussianScorerDetector().vectorized(("a",)) is not None


@pytest.mark.skipif(
    not hasattr(datasets, "Shuttle"), reason="river 0.22 (Python 3.10's) bundles no Shuttle data"
)
def test_shuttle_scores_and_roc_auc_identical_to_river() -> None:
    """river's bundled Shuttle data (49,097 labelled events, no download): MinMaxScaler | HST, seed 42."""
    rows, labels = zip(*datasets.Shuttle())
    frame = pd.DataFrame(list(rows), dtype="float64")
    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
    expected = []
    for x in rows:
        expected.append(float(model.score_one(x)))
        model.learn_one(x)
    out = run_detect(Detect(HalfSpaceTreesDetector(seed=42), features=list(frame.columns)), frame, 5_000)
    assert out["score"].tolist() == expected
    y = np.asarray(labels, dtype=bool)
    auc = roc_auc(out["score"], y)
    assert auc == roc_auc(np.asarray(expected), y)
    assert auc > 0.95
    # river's own (binned) ROC AUC, fed with each score sequence
    river_auc = [metrics.ROCAUC(), metrics.ROCAUC()]
    for yi, a, b in zip(labels, out["score"].tolist(), expected):
        river_auc[0].update(yi, a)
        river_auc[1].update(yi, b)
    assert river_auc[0].get() == river_auc[1].get() == pytest.approx(0.958, abs=0.001)


def test_evaluation_and_sweeps_take_vectorized_scores_unchanged() -> None:
    rng = np.random.default_rng(5)
    n = 600
    frame = pd.DataFrame(
        {
            "event_id": np.arange(n),
            "card_id": rng.integers(0, 20, n).astype(str),
            "amount": rng.gamma(2.0, 10.0, n),
            "timestamp": T0 + pd.to_timedelta(np.arange(n), unit="s"),
        }
    )
    frame["is_fraud"] = rng.random(n) < 0.05
    frame.loc[frame.is_fraud, "amount"] *= 20
    kw: dict[str, Any] = {"features": ["amount"], "key": "card_id", "threshold": FixedThresholdFilter(0.9)}
    fast = run_detect(
        Detect(HalfSpaceTreesDetector(window_size=8, seed=1), **kw), frame.drop(columns="is_fraud"), 100
    )
    ref = (
        Detect(RiverHalfSpaceTrees(window_size=8, seed=1), **kw)
        .build()
        .process(frame.drop(columns="is_fraud"))
    )
    ref_out = ref["out"]
    y = frame["is_fraud"].to_numpy()
    pd.testing.assert_frame_equal(
        threshold_sweep(fast["score"], y, [0.5, 0.8, 0.9]),
        threshold_sweep(ref_out["score"], y, [0.5, 0.8, 0.9]),
    )
    reports = []
    for out in (fast, ref_out):
        ev = DelayedLabelEvaluation(score="score", flag="is_anomaly", label="is_fraud", window="1m").build()
        ev.add_predictions(out)
        ev.process(frame[["event_id", "is_fraud", "timestamp"]], port=1)
        reports.append(ev.report())
    assert reports[0] == reports[1]
    assert reports[0]["n"] == n


def test_snapshot_from_before_the_key_table_restores() -> None:
    """A checkpoint whose per-key slots are still an OrderedDict (older streamlab) resumes identically."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"f0": rng.gamma(2.0, 10.0, 300), "user_id": rng.integers(0, 7, 300).astype(str)})
    step = Detect(
        HalfSpaceTreesDetector(n_trees=3, height=3, window_size=5, seed=1),
        features=["f0"],
        key="user_id",
        key_ttl=None,
    )
    whole = step.build().process(frame)["out"]["score"].tolist()
    op = step.build()
    head = op.process(frame.iloc[:150])["out"]["score"].tolist()
    state = pickle.loads(op.snapshot())
    state["models"] = state.pop("table").to_models()  # the old layout
    old = step.build()
    old.restore(pickle.dumps(state))
    assert head + old.process(frame.iloc[150:])["out"]["score"].tolist() == whole


def test_the_gaussian_z_is_the_installed_rivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """river 0.26's Gaussian CDF divides by sigma, then sqrt(2); river 0.22's (Python 3.10) by sigma * sqrt(2)
    at once: the vectorized scorer (bit-identical to river) takes the formula river has."""
    import math

    from river import proba

    from streamlab.detectors import _common

    sqrt2 = math.sqrt(2.0)
    at_once = lambda self, x: 0.5 * (1.0 + math.erf((x - self.mu) / (self.sigma * sqrt2)))
    in_turn = lambda self, x: 0.5 * (1.0 + math.erf((x - self.mu) / self.sigma / sqrt2))
    monkeypatch.setattr(proba.Gaussian, "cdf", at_once)
    assert _common._gaussian_z_scales() == (sqrt2, 1.0)
    monkeypatch.setattr(proba.Gaussian, "cdf", in_turn)
    assert _common._gaussian_z_scales() == (1.0, sqrt2)


def _assert_scores_match(fast: pd.Series, ref: pd.Series) -> None:
    """:func:`assert_moments_close`, with NaN equal to NaN and infinities equal to themselves."""
    a, b = fast.to_numpy(dtype=float), ref.to_numpy(dtype=float)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= 1e-9 * (1 + np.abs(b))
    assert np.all(same | close), list(zip(a[~(same | close)].tolist(), b[~(same | close)].tolist()))


_huge = st.sampled_from([1e308, -1e308, 1e200, -1e200, 1e160, -2e154, 1.4e154, 0.0])


@pytest.mark.parametrize("compiled", [True, False])
@settings(max_examples=30)
@given(
    values=st.lists(st.one_of(_huge, st.floats(-10.0, 10.0)), min_size=1, max_size=60),
    n_keys=st.integers(1, 3),
    kind=moment_detectors,
    threshold=st.sampled_from(["none", "fixed", "quantile", "adaptive"]),
    seed=st.integers(0, 2**16),
)
def test_running_moments_with_overflowing_values_equal_river(
    compiled: bool, values: list[float], n_keys: int, kind: str, threshold: str, seed: int
) -> None:
    """Squared deviations past float's range: river's S turns inf and its scores 0, on both paths.

    Without numba the closed form computed ``S + sum(d**2) - sum(d)**2 / n`` as ``inf - inf`` and every
    later score of the model was NaN (and the threshold learned from them).
    """
    from streamlab.detectors import _common

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"f0": values, "user_id": rng.integers(0, n_keys, len(values)).astype(str)})
    kw: dict[str, Any] = {"features": ["f0"], "key": "user_id", "key_ttl": None}
    if threshold != "none":
        kw |= {
            "learn": "unflagged",
            "threshold": {
                "fixed": FixedThresholdFilter(0.95 if kind == "gaussian" else 2.5),
                "quantile": QuantileThresholdFilter(q=0.8, warmup=5),
                "adaptive": AdaptiveThresholdFilter(k=2.0, warmup=3),
            }[threshold],
        }
    ref = Detect(_moments(kind, 2, True), **kw).build().process(frame)["out"]
    _common.use_kernels = compiled
    try:
        for batch in (1, 3, len(values)):
            fast = run_detect(Detect(_moments(kind, 2, False), **kw), frame, batch)
            _assert_scores_match(fast["score"], ref["score"])
            if threshold != "none":
                assert fast["is_anomaly"].tolist() == ref["is_anomaly"].tolist()
    finally:
        _common.use_kernels = True


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("kind", ["gaussian", "sad"])
def test_one_model_after_an_overflowing_deviation_scores_as_a_bare_river_loop(
    compiled: bool, kind: str
) -> None:
    from streamlab.detectors import _common

    values = [-1e200, 1.5, 1.0, -0.9, 2.0]
    model = (
        anomaly.GaussianScorer(grace_period=2) if kind == "gaussian" else anomaly.StandardAbsoluteDeviation()
    )
    expected = []
    for i, v in enumerate(values):
        expected.append(0.0 if i < 2 else float(model.score_one(None, v)))  # streamlab's grace period
        model.learn_one(None, v)
    assert expected == [0.0] * 5
    _common.use_kernels = compiled
    try:
        for batch in (1, 3, 5):
            out = run_detect(
                Detect(_moments(kind, 2, False), features=["f0"]), pd.DataFrame({"f0": values}), batch
            )
            assert out["score"].tolist() == expected
    finally:
        _common.use_kernels = True
