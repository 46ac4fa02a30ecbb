"""Conformance suite over every wrapped detector, the Detect step and the threshold filters."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from river import anomaly, preprocessing, stats

from streamlab.detectors import (
    AdaptiveThresholdFilter,
    Detect,
    Detector,
    FixedThresholdFilter,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    LocalOutlierFactorDetector,
    OneClassSVMDetector,
    QuantileThresholdFilter,
    RiverDetector,
    StandardAbsoluteDeviationDetector,
)

FACTORIES: dict[str, Callable[[], Detector]] = {
    "hst": lambda: HalfSpaceTreesDetector(window_size=50, seed=1),
    "ocsvm": lambda: OneClassSVMDetector(seed=1),
    "lof": lambda: LocalOutlierFactorDetector(n_neighbors=5, window_size=100),
    "gaussian": lambda: GaussianScorerDetector(feature="a", grace_period=10),
    "sad": lambda: StandardAbsoluteDeviationDetector(feature="a"),
    # any unsupervised river model: LODA where river has it (0.23+; not 0.22, the newest for Python 3.10)
    "river_unsupervised": lambda: RiverDetector(
        anomaly.LODA(seed=1)
        if hasattr(anomaly, "LODA")
        else preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=1)
    ),
    "river_supervised": lambda: RiverDetector(anomaly.GaussianScorer(grace_period=10), target="a"),
}


def gaussian_stream(n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)} for _ in range(n)]


def run(det: Detector, xs: list[dict[str, float]]) -> list[float]:
    out = []
    for x in xs:
        out.append(det.score_one(x))
        det.learn_one(x)
    return out


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[], Detector]:
    return FACTORIES[request.param]


def test_clone_is_fresh_and_equivalent(factory: Callable[[], Detector]) -> None:
    det = factory()
    xs = gaussian_stream(150)
    run(det, xs)
    clone = det.clone()
    assert clone.describe() == det.describe()
    assert type(clone) is type(det)
    assert run(clone, xs) == run(factory(), xs)


def test_pickle_round_trip_mid_stream(factory: Callable[[], Detector]) -> None:
    det = factory()
    xs = gaussian_stream(200)
    run(det, xs[:120])
    restored = pickle.loads(pickle.dumps(det))
    assert run(restored, xs[120:]) == run(det, xs[120:])


def test_same_seed_same_scores(factory: Callable[[], Detector]) -> None:
    xs = gaussian_stream(200, seed=3)
    assert run(factory(), xs) == run(factory(), xs)


def test_obvious_outlier_scores_higher_than_inliers(factory: Callable[[], Detector]) -> None:
    det = factory()
    run(det, gaussian_stream(300))
    inliers = [det.score_one(x) for x in gaussian_stream(50, seed=9)]
    assert det.score_one({"a": 10.0, "b": -10.0}) > max(inliers)


def test_input_dict_not_mutated_and_scoring_does_not_learn(factory: Callable[[], Detector]) -> None:
    det = factory()
    run(det, gaussian_stream(120))
    x = {"a": 0.3, "b": -0.2}
    before = dict(x)
    first = det.score_one(x)
    assert x == before
    assert det.score_one(x) == first  # score_one is read-only
    det.learn_one(x)
    assert x == before


def test_describe_repr_and_docstring(factory: Callable[[], Detector]) -> None:
    det = factory()
    assert isinstance(det.describe()["kind"], str)
    assert type(det).__name__ in repr(det)
    assert type(det).__doc__ and "Examples" in type(det).__doc__


# ---------------------------------------------------------------------------------------------- Detect


def events(n: int, n_keys: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": [f"u{k}" for k in rng.integers(0, n_keys, n)],
            "amount": rng.gamma(2.0, 10.0, n),
            "items": rng.integers(1, 5, n).astype(float),
            "timestamp": pd.to_datetime(
                pd.Timestamp("2024-01-01", tz="UTC").value + np.arange(n) * 1_000_000_000, utc=True
            ),
        }
    )


def test_detect_equals_manual_score_then_learn_loop_per_key() -> None:
    df = events(300)
    step = Detect(HalfSpaceTreesDetector(window_size=20, seed=5), features=["amount", "items"], key="user_id")
    out = step.build().process(df)["out"]
    models: dict[str, Detector] = {}
    expected = []
    for row in df.itertuples():
        m = models.setdefault(row.user_id, HalfSpaceTreesDetector(window_size=20, seed=5))
        x = {"amount": row.amount, "items": row.items}
        expected.append(m.score_one(x))
        m.learn_one(x)
    assert out["score"].tolist() == expected
    assert (out["detector"] == "half_space_trees").all()
    assert out["event_id"].tolist() == df["event_id"].tolist()


def test_detect_is_batching_independent_and_resumes_from_snapshot() -> None:
    df = events(240)
    step = Detect(
        OneClassSVMDetector(seed=2),
        features=["amount", "items"],
        key="user_id",
        threshold=AdaptiveThresholdFilter(k=2.0, warmup=5),
        learn="unflagged",
    )
    whole = step.build().process(df)["out"]
    op = step.build()
    first = op.process(df.iloc[:100])["out"]
    snap = pickle.dumps(op.snapshot())
    op.process(df.iloc[100:150])  # work done after the snapshot must not leak into it
    resumed = step.build()
    resumed.restore(pickle.loads(snap))
    rest = [resumed.process(df.iloc[a : a + 35])["out"] for a in range(100, 240, 35)]
    pd.testing.assert_frame_equal(pd.concat([first, *rest], ignore_index=True), whole)


def test_learn_unflagged_skips_flagged_events() -> None:
    values = [10.0, 11.0, 9.0, 10.0, 200.0, 10.5, 300.0, 10.0]
    df = pd.DataFrame({"amount": values})
    step = Detect(
        StandardAbsoluteDeviationDetector(grace_period=3),
        features=["amount"],
        threshold=FixedThresholdFilter(3.0),
        learn="unflagged",
    )
    out = step.build().process(df)["out"]
    ref = anomaly.StandardAbsoluteDeviation()
    expected_flags = []
    learned = 0
    for v in values:
        s = ref.score_one(None, v) if learned >= 3 else 0.0  # the detector's warm-up
        expected_flags.append(s > 3.0)
        if not s > 3.0:
            ref.learn_one(None, v)
            learned += 1
    assert out["is_anomaly"].tolist() == expected_flags
    assert out["is_anomaly"].tolist()[4] and out["is_anomaly"].tolist()[6]
    learned_all = Detect(
        StandardAbsoluteDeviationDetector(grace_period=3),
        features=["amount"],
        threshold=FixedThresholdFilter(3.0),
    )
    # learning the first spike widens the spread, so the second spike scores lower than when protected
    assert learned_all.build().process(df)["out"]["score"].iloc[6] < out["score"].iloc[6]


def test_per_key_memory_is_capped_by_lru_and_evictions_counted() -> None:
    df = events(400, n_keys=50)
    op = Detect(
        GaussianScorerDetector(grace_period=2), features=["amount"], key="user_id", max_keys=7
    ).build()
    for a in range(0, 400, 100):
        op.process(df.iloc[a : a + 100])
        assert op.open_state()["keys"] <= 7
    assert op.open_state()["evictions"]["lru"] == _lru_evictions(df["user_id"], 7) > 0


def _lru_evictions(keys: pd.Series, cap: int) -> int:
    """Evictions of a reference LRU of ``cap`` entries fed with ``keys``."""
    lru: OrderedDict[str, None] = OrderedDict()
    evictions = 0
    for k in keys:
        if k in lru:
            lru.move_to_end(k)
            continue
        lru[k] = None
        if len(lru) > cap:
            lru.popitem(last=False)
            evictions += 1
    return evictions


def test_key_ttl_on_event_time_restarts_idle_keys() -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    df = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "a"],
            "amount": [10.0, 12.0, 5.0, 11.0],
            "timestamp": [t, t + pd.Timedelta("1m"), t + pd.Timedelta("3h"), t + pd.Timedelta("3h1m")],
        }
    )
    op = Detect(StandardAbsoluteDeviationDetector(), features=["amount"], key="user_id", key_ttl="1h").build()
    out = op.process(df)["out"]
    assert op.open_state()["evictions"]["ttl"] == 1
    # after the reset, "a" is a fresh model again: the same score as a first-ever event
    fresh = StandardAbsoluteDeviationDetector().score_one({"amount": 11.0})
    assert out["score"].iloc[3] == fresh


def test_bad_rows_go_to_dead_letter_with_reason() -> None:
    df = pd.DataFrame({"user_id": ["a", None, "a", "a"], "amount": [1.0, 2.0, float("nan"), "x"]})
    res = (
        Detect(StandardAbsoluteDeviationDetector(), features=["amount"], key="user_id", key_ttl=None)
        .build()
        .process(df)
    )
    assert len(res["out"]) == 1
    reasons = res["dead_letter"]["reason"].tolist()
    assert len(reasons) == 3
    assert "key column 'user_id' is missing" in reasons
    assert sum("feature 'amount'" in r for r in reasons) == 2


def test_detect_accepts_any_river_detector_and_does_not_mutate_batch() -> None:
    df = events(80)
    before = df.copy()
    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(window_size=20, seed=4)
    step = Detect(model, features=["amount", "items"])
    out = step.build().process(df)["out"]
    pd.testing.assert_frame_equal(df, before)
    ref = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(window_size=20, seed=4)
    expected = []
    for a, b in zip(df["amount"], df["items"]):
        x = {"amount": a, "items": b}
        expected.append(ref.score_one(x))
        ref.learn_one(x)
    assert out["score"].tolist() == expected
    assert step.describe()["detector"]["kind"] == "river"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"detector": object(), "features": ["a"]}, TypeError, "detector must be"),
        ({"detector": HalfSpaceTreesDetector(), "features": []}, ValueError, "features must be"),
        (
            {"detector": HalfSpaceTreesDetector(), "features": ["a"], "learn": "some"},
            ValueError,
            "learn must be",
        ),
        (
            {"detector": HalfSpaceTreesDetector(), "features": ["a"], "learn": "unflagged"},
            ValueError,
            "needs a",
        ),
        ({"detector": HalfSpaceTreesDetector(), "features": ["a"], "max_keys": 0}, ValueError, "max_keys"),
        ({"detector": GaussianScorerDetector(), "features": ["a", "b"]}, ValueError, "single metric"),
        ({"detector": GaussianScorerDetector(feature="c"), "features": ["a", "b"]}, ValueError, "not among"),
        (
            {"detector": RiverDetector(anomaly.GaussianScorer()), "features": ["a", "b"]},
            ValueError,
            "pass target=",
        ),
        ({"detector": HalfSpaceTreesDetector(), "features": ["a"], "key_ttl": "soon"}, ValueError, "key_ttl"),
        (
            {"detector": HalfSpaceTreesDetector(), "features": ["a"], "threshold": AdaptiveThresholdFilter()},
            ValueError,
            "no key column",
        ),
    ],
)
def test_detect_rejects_bad_configuration(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Detect(**kwargs)


def test_detector_config_errors() -> None:
    with pytest.raises(ValueError, match="seed"):
        HalfSpaceTreesDetector(seed="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nu must"):
        OneClassSVMDetector(nu=2)
    with pytest.raises(ValueError, match="must exceed n_neighbors"):
        LocalOutlierFactorDetector(n_neighbors=10, window_size=5)
    with pytest.raises(TypeError, match="no learn_one"):
        RiverDetector(stats.Mean())
    with pytest.raises(ValueError, match="single metric"):
        GaussianScorerDetector().score_one({"a": 1.0, "b": 2.0})


# ---------------------------------------------------------------------------------------------- thresholds


def test_fixed_threshold_is_strictly_greater() -> None:
    out = FixedThresholdFilter(1.0).build().process(pd.DataFrame({"score": [0.5, 1.0, 1.5, np.nan]}))["out"]
    assert out["is_anomaly"].tolist() == [False, False, True, False]


def test_quantile_threshold_matches_river_quantile() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=500)
    op = QuantileThresholdFilter(q=0.95, warmup=50).build()
    got = op.process(pd.DataFrame({"score": scores}))["out"]["is_anomaly"].tolist()
    q = stats.Quantile(0.95)
    expected = []
    for i, s in enumerate(scores):
        expected.append(bool(i >= 50 and s > q.get()))
        q.update(s)
    assert got == expected
    assert 0.02 < np.mean(got[100:]) < 0.10
    # snapshot is a copy: restoring it continues exactly
    clone = QuantileThresholdFilter(q=0.95, warmup=50).build()
    clone.restore(copy.deepcopy(op.snapshot()))
    assert clone.classify_one(10.0) == op.classify_one(10.0)


def test_adaptive_threshold_per_key_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    keys = rng.choice(["a", "b"], 300)
    scores = np.where(keys == "a", rng.normal(0, 1, 300), rng.normal(100, 10, 300))
    out = AdaptiveThresholdFilter(k=2.0, key="user_id", warmup=5).build()
    got = out.process(pd.DataFrame({"user_id": keys, "score": scores}))["out"]["is_anomaly"].to_numpy()
    for i in range(300):
        prev = scores[:i][keys[:i] == keys[i]]
        expected = len(prev) >= 5 and scores[i] > prev.mean() + 2.0 * prev.std(ddof=1)
        assert got[i] == expected
    assert 0 < got.sum() < 60


def test_threshold_config_errors() -> None:
    with pytest.raises(ValueError, match="q must be in"):
        QuantileThresholdFilter(q=1.5)
    with pytest.raises(ValueError, match="value must be a number"):
        FixedThresholdFilter("high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no key column"):
        AdaptiveThresholdFilter().build()
    with pytest.raises(ValueError, match="per_key=False"):
        AdaptiveThresholdFilter(key="u", per_key=False)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: FixedThresholdFilter(float("inf")), "got inf, which flags no score"),
        (lambda: FixedThresholdFilter(-math.inf), "got -inf, which flags every score"),
        (lambda: AdaptiveThresholdFilter(k=math.inf), "k must be a finite number >= 0"),
    ],
)
def test_an_infinite_threshold_is_refused_with_the_fix(make, words) -> None:
    # FixedThresholdFilter(inf) flagged nothing and -inf everything, silently
    with pytest.raises(ValueError, match=words) as e:
        make()
    assert "pass " in str(e.value)
    assert FixedThresholdFilter(1e308).value == 1e308 and AdaptiveThresholdFilter(k=0.0).k == 0.0


def test_detect_refuses_to_overwrite_an_existing_column():
    import pandas as pd
    import pytest

    from streamlab import ListSource, Pipeline, PipelineConfigError
    from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector

    p = Pipeline(
        ListSource(pd.DataFrame({"device": ["d"], "t": [1.0], "is_anomaly": [False], "timestamp": [0]}))
    )
    with pytest.raises(PipelineConfigError, match="overwrite the input column.*is_anomaly"):
        p.detect(GaussianScorerDetector(), ["t"], key="device", threshold=FixedThresholdFilter(0.9))


def test_standard_absolute_deviation_warms_up_before_flagging():
    import pandas as pd

    from streamlab.detectors import Detect, FixedThresholdFilter, StandardAbsoluteDeviationDetector

    batch = pd.DataFrame(
        {"device_id": ["d1"] * 40, "temperature": [20.0 + (i % 3) * 0.5 for i in range(39)] + [45.0]}
    )
    step = Detect(
        StandardAbsoluteDeviationDetector(grace_period=10),
        features=["temperature"],
        key="device_id",
        threshold=FixedThresholdFilter(4.0),
        learn="unflagged",
        key_ttl=None,
    )
    flags = step.build().process(batch)["out"]["is_anomaly"].tolist()
    assert flags == [False] * 39 + [True]


def test_output_frame_equals_column_assignment_and_stays_independent() -> None:
    """The step appends its columns as blocks (``_with_columns``): the frame ``out[name] = values``
    gives, for clean batches, dead-letter rows, a threshold, a chained step and a frame with attrs;
    writing to the output leaves the batch alone and the other way round."""
    from streamlab.detectors._common import _set_column, _with_columns

    batch = pd.DataFrame(
        {
            "user_id": ["a", "b", "a", "c", "b", "a"],
            "amount": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "n": np.arange(6),
            "t": pd.date_range("2024-01-01", periods=6, freq="min", tz="UTC"),
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    batch.attrs["source"] = "test"
    for step in (
        Detect(GaussianScorerDetector(grace_period=1), features=["amount"]),
        Detect(GaussianScorerDetector(grace_period=1), features=["amount"], key="user_id", key_ttl=None),
        Detect(
            StandardAbsoluteDeviationDetector(grace_period=1),
            features=["amount"],
            threshold=FixedThresholdFilter(0.5),
            learn="unflagged",
        ),
    ):
        out = step.build().process(batch)["out"]
        rows = batch[batch["amount"].notna()].reset_index(drop=True)
        expected = rows.copy()
        for name in out.columns[len(batch.columns) :]:
            _set_column(expected, name, out[name].to_numpy())
        pd.testing.assert_frame_equal(out, expected)
        assert out.attrs == {"source": "test"}
        chained = step.build().process(out)["out"]  # score/detector already there: assigned in place
        assert list(chained.columns) == list(out.columns)
    clean = batch.dropna()
    out = _with_columns(
        clean.reset_index(drop=True),
        {"score": np.ones(len(clean)), "flag": np.zeros(len(clean), bool)},
        clean.columns,
    )
    out.loc[0, "amount"] = -1.0
    out.loc[0, "score"] = -1.0
    assert clean["amount"].iloc[0] == 1.0
    clean.loc[clean.index[1], "amount"] = -2.0
    assert out["amount"].iloc[1] == 2.0
    assert out["score"].tolist()[:2] == [-1.0, 1.0] and out["flag"].dtype == bool


def test_with_columns_takes_aligned_series_as_they_are() -> None:
    """A Series on the frame's index is appended with its own dtype (object stays object, where
    ``[]=`` of an object array would infer strings); one on another index aligns, as ``[]=`` does."""
    from streamlab.detectors._common import _with_columns

    frame = pd.DataFrame({"a": [1, 2, 3]})
    rule = pd.Series(["x", None, "y"], dtype=object)
    out = _with_columns(frame.copy(), {"rule": rule, "n": np.arange(3)}, frame.columns)
    expected = frame.copy()
    expected["rule"] = rule
    expected["n"] = np.arange(3)
    pd.testing.assert_frame_equal(out, expected)
    assert out["rule"].dtype == object and out["rule"].tolist() == ["x", None, "y"]
    shifted = pd.Series([1.0, 2.0, 3.0], index=[1, 2, 3])
    out = _with_columns(frame.copy(), {"s": shifted}, frame.columns)
    assert out["s"].tolist()[1:] == [1.0, 2.0] and np.isnan(out["s"].iloc[0])


def test_a_threshold_reading_another_score_column_is_refused_inside_detect() -> None:
    # Detect feeds its own scores to the threshold: FixedThresholdFilter(0.5, score='s') judged them,
    # and score='s' was silently unused
    with pytest.raises(ValueError, match="reads the column 's', but inside Detect it judges the scores") as e:
        Detect(GaussianScorerDetector(), features=["x"], threshold=FixedThresholdFilter(0.5, score="s"))
    assert ".apply(FixedThresholdFilter(..., score='s'))" in str(e.value)
