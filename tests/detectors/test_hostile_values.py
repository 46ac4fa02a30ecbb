"""Hostile values through every detector, feature and rule: nothing raises, nothing vanishes.

A 400-digit JSON number kept as a Python int, text in a number column, infinities, missing keys and
times: each step either scores the row or sets it aside with a reason, in every batch size, and the
exported per-record code (``streamlab._detector_record``) reads the same values the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamlab as sl
from streamlab import _detector_record as rec
from streamlab._compat import PANDAS_3
from streamlab._floats import float_values
from streamlab.detectors import (
    Detect,
    DistinctCountFeature,
    DriftDetector,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    Pattern,
    PatternStep,
    QuantileThresholdFilter,
    RatioToMedianFeature,
    StandardAbsoluteDeviationDetector,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.export._detectors import row_step_spec
from streamlab.export._snippets import eval_expr

# hostile values give scores (inf, nan, 0) as river does, without numpy warnings in a notebook
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HUGE = 10**400

# values whose reading pandas and Python's float() agree on (text such as "1_0" they read differently)
hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**1000, max_value=2**1100).flatmap(lambda n: st.sampled_from([n, -n])),
    st.just(HUGE),
    st.floats(),
    st.sampled_from(["1", "-2.5", "1e400", "-1e400", "x", "", "nan", "inf", "12abc", "\x00"]),
    st.integers(-(10**30), 10**30).map(str),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(hostile_values, max_size=20))
def test_columns_read_as_the_exported_code_reads_each_value(values: list[Any]) -> None:
    got = float_values(pd.Series(values, dtype=object))
    want = [rec.as_number(v) for v in values]
    assert got.dtype == np.float64 and len(got) == len(values)
    assert all((a != a and b != b) or a == b for a, b in zip(got.tolist(), want)), (values, got, want)


def test_integers_beyond_a_double_are_infinite_numpy_columns_untouched() -> None:
    assert float_values(pd.Series([HUGE, -HUGE, 1], dtype=object)).tolist() == [math.inf, -math.inf, 1.0]
    assert rec.as_number(HUGE) == math.inf and rec.as_number(-HUGE) == -math.inf
    ints = pd.Series(np.array([2**53 + 1, -3], dtype=np.int64))
    assert float_values(ints).tolist() == [float(2**53 + 1), -3.0]


def hostile_frame() -> pd.DataFrame:
    """The seed's event shape with every kind of bad value among good ones."""
    amounts = ["1", HUGE, -HUGE, 2.0, None, "x", math.inf, math.nan, 1e308, 5, 3.5, True]
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(12)],
            "user_id": ["a", None, "a", 3, 2.5, "b", {"id": 1}, "a", HUGE, "b", [1], "a"],
            "amount": pd.Series(amounts, dtype=object),
            "country": ["FR", None, "DE", "FR", "\x00", "é" * 5, "FR", "", "US", {"c": 1}, "GB", "FR"],
            "timestamp": [pd.NaT]
            + [T0 + pd.Timedelta(seconds=s) for s in [5, 3, 7, 100, 1, 2, 9, 4, 4, 4, 9]],
        }
    )


STEPS: dict[str, Callable[[], Any]] = {
    "velocity": lambda: VelocityFeature("user_id", window="10m"),
    "velocity sum": lambda: VelocityFeature("user_id", window="10m", value="amount"),
    "velocity rule": lambda: VelocityRule("user_id", window="10m", max_count=2, name="fast"),
    "z-score": lambda: ZScoreFeature("user_id", "amount"),
    "time since last": lambda: TimeSinceLastFeature("user_id"),
    "distinct": lambda: DistinctCountFeature("user_id", "country", window="1h"),
    "ratio to median": lambda: RatioToMedianFeature("user_id", "amount"),
    "rule expr": lambda: ThresholdRule("big", expr="amount > 100"),
    "rule column": lambda: ThresholdRule("big", column="amount", op=">", value=100),
    "drift": lambda: DriftDetector("amount"),
    "hst": lambda: Detect(HalfSpaceTreesDetector(seed=1, window_size=3), features=["amount"]),
    "hst keyed, quantile": lambda: Detect(
        HalfSpaceTreesDetector(seed=1, window_size=3),
        features=["amount"],
        key="user_id",
        threshold=QuantileThresholdFilter(0.9, warmup=2),
        learn="unflagged",
    ),
    "gaussian": lambda: Detect(GaussianScorerDetector(grace_period=2), features=["amount"]),
    "gaussian keyed": lambda: Detect(
        GaussianScorerDetector(grace_period=2), features=["amount"], key="user_id"
    ),
    "sad": lambda: Detect(StandardAbsoluteDeviationDetector(grace_period=2), features=["amount"]),
    "pattern": lambda: Pattern(
        key="user_id",
        steps=[PatternStep("big", "amount > 100"), PatternStep("any", "amount == amount")],
        within="1h",
    ),
}


@pytest.mark.parametrize("batch", [1, 5, 12])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_every_step_scores_or_sets_aside_each_row(name: str, batch: int) -> None:
    frame = hostile_frame()
    op = STEPS[name]().build()
    out, dead = 0, []
    for start in range(0, len(frame), batch):
        res = op.process(frame.iloc[start : start + batch].reset_index(drop=True))
        out += len(res["out"])
        if len(res.get("dead_letter", ())):
            dead.append(res["dead_letter"])
    letters = pd.concat(dead, ignore_index=True) if dead else pd.DataFrame({"reason": []})
    if name == "pattern":  # its outputs are matches, not rows: the rows without a usable key are set aside
        op.on_end()
        assert {"{'id': 1}", "[1]", "None"} <= set(map(repr, letters["user_id"]))
        return
    if hasattr(op, "on_end"):
        out += len(op.on_end().get("out", ()))
    assert out + len(letters) == len(frame)
    assert letters["reason"].map(lambda r: isinstance(r, str) and len(r) > 0).all()
    if name.startswith(("hst", "gaussian", "sad")):  # a huge number is no finite feature
        assert {HUGE, -HUGE} <= set(letters["amount"].tolist())


hostile_amounts = st.lists(
    st.one_of(
        st.none(),
        st.floats(-500, 500),
        st.integers(-500, 500),
        st.just(HUGE),
        st.sampled_from(["7", "x", ""]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(hostile_amounts, st.lists(st.integers(1, 30), max_size=4))
def test_rules_agree_with_the_exported_rule_on_values_they_cannot_compare(
    amounts: list[Any], cuts: list[int]
) -> None:
    frame = pd.DataFrame({"event_id": range(len(amounts)), "amount": pd.Series(amounts, dtype=object)})
    for rule in (
        ThresholdRule("big", expr="amount > 100"),
        ThresholdRule("big", column="amount", op=">", value=100),
        ThresholdRule("other", column="amount", op="!=", value=7),
    ):
        op = rule.build()
        kept, dead, start = [], [], 0
        for end in [*sorted({c for c in cuts if c < len(frame)}), len(frame)]:
            if end <= start:
                continue
            res = op.process(frame.iloc[start:end].reset_index(drop=True))
            kept += list(zip(res["out"]["event_id"], res["out"]["is_alert"]))
            if "dead_letter" in res:
                dead += res["dead_letter"]["event_id"].tolist()
            start = end
        machine = rec.make_step(row_step_spec(rule, "rule"), eval_expr, None, None)
        want_kept, want_dead = [], []
        for row in frame.to_dict("records"):
            [(output, got)] = machine.process(row)
            if output == "dead_letter":
                want_dead.append(row["event_id"])
                assert (
                    got["reason"] == f"rule 'big' cannot evaluate 'amount > 100' on amount={row['amount']!r}"
                )
            else:
                want_kept.append((row["event_id"], got["is_alert"]))
        assert (kept, dead) == (want_kept, want_dead), rule


def test_a_pipeline_with_hostile_values_runs_to_the_end() -> None:
    records = hostile_frame().drop(columns=["timestamp"]).assign(timestamp=T0).to_dict("records")
    p = sl.Pipeline(sl.ListSource(records))
    (
        p.apply(ZScoreFeature("user_id", "amount"))
        .apply(ThresholdRule("big", expr="amount > 100"))
        .detect(GaussianScorerDetector(grace_period=1), features=["amount"])
    )
    result = p.run()
    counts = {name: len(frame) for name, frame in result.outputs.items()}
    assert sum(counts.values()) == len(records), counts  # the scored rows and every step's dead letters
    rules = result.outputs["threshold_rule.dead_letter"]
    assert rules["step_id"].eq("threshold_rule").all() and len(rules) >= 2  # "1" and "x" cannot be compared


def test_a_rule_that_fails_on_every_row_stops_with_the_fix() -> None:
    """A missing column, or a typed column compared with a value of another type: no row could pass, so
    the run stops with the fix (setting aside every row one by one would take minutes per batch)."""
    with pytest.raises(ValueError, match="no column 'amont'.*Fix:"):
        ThresholdRule("big", expr="amont > 100").build().process(hostile_frame())
    # typed text: pandas 3's str ("str" on pandas 2 is objects, whose failures are the values')
    typed = pd.DataFrame({"country": pd.Series(["FR", "US"] * 5000, dtype="str" if PANDAS_3 else "string")})
    with pytest.raises(ValueError, match="columns of types.*'country'.*Fix: compare"):
        ThresholdRule("odd", expr="country > 5").build().process(typed)


def test_a_rule_on_text_with_missing_values_sets_aside_the_text_as_the_exported_rule_does() -> None:
    """A missing text compared with a number is False (no alert) there and here; the other rows cannot be
    compared and go to dead letter, where the whole batch stopped the run as a column of the wrong type."""
    countries = ["FR", None, "US", None] * 2500
    frame = pd.DataFrame({"event_id": range(len(countries)), "country": pd.Series(countries, dtype="str")})
    rule = ThresholdRule("odd", expr="country > 5")
    res = rule.build().process(frame)
    machine = rec.make_step(row_step_spec(rule, "rule"), eval_expr, None, None)
    want = [machine.process(row)[0] for row in frame.to_dict("records")]
    assert res["out"]["event_id"].tolist() == [r["event_id"] for o, r in want if o == "out"]
    assert not res["out"]["is_alert"].any()
    dead = res["dead_letter"]
    assert list(zip(dead["event_id"], dead["reason"])) == [
        (r["event_id"], r["reason"]) for o, r in want if o == "dead_letter"
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("ab"),
            st.integers(-20, 40),
            hostile_amounts.map(lambda v: v[0]),
            st.sampled_from(["FR", "US", None, {"c": 1}, ["FR"]]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(1, 40), max_size=4),
    st.sampled_from(["0s", "10s"]),
)
def test_patterns_agree_with_the_exported_pattern_on_values_they_cannot_compare(
    events: list[tuple[str, int, Any, Any]], cuts: list[int], delay: str
) -> None:
    """Disorder, late rows, rows whose condition cannot be evaluated and ``differs_from`` values that
    cannot be told apart (a dict, a list): the runtime's batches give the per-record machine's matches,
    late rows and dead letters (with its reasons), whatever the cuts."""
    times, clock = [], 0
    for _, step, _, _ in events:
        clock += max(step, -10)
        times.append(T0 + pd.Timedelta(seconds=clock))
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(events))],
            "user_id": [k for k, _, _, _ in events],
            "amount": pd.Series([v for _, _, v, _ in events], dtype=object),
            "country": pd.Series([c for _, _, _, c in events], dtype=object),
            "timestamp": times,
        }
    )
    pattern = Pattern(
        key="user_id",
        steps=[
            PatternStep("big", "amount > 100"),
            PatternStep("small", "amount < 10", differs_from={"country": "big"}),
        ],
        within="60s",
        delay=delay,
        name="p",
    )
    op = pattern.build()
    got: dict[str, list[Any]] = {"out": [], "late": [], "dead_letter": []}
    start = 0
    for end in [*sorted({c for c in cuts if c < len(frame)}), len(frame)]:
        if end <= start:
            continue
        res = op.process(frame.iloc[start:end].reset_index(drop=True))
        for name in got:
            if len(res.get(name, ())):
                got[name].append(res[name])
        start = end
    got["out"].append(op.on_end()["out"])
    machine = rec.make_step(
        row_step_spec(pattern, "p"), eval_expr, lambda t: pd.Timestamp(t).value, pd.Timestamp
    )
    want: dict[str, list[Any]] = {"out": [], "late": [], "dead_letter": []}
    for row in frame.to_dict("records"):
        for name, r in machine.process(row):
            want[name].append(r)
    want["out"] += [r for _, r in machine.finish()]
    frames = {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in got.items()}
    assert [list(ids) for ids in frames["out"].get("event_ids", [])] == [
        list(r["event_ids"]) for r in want["out"]
    ]
    assert frames["late"].get("event_id", pd.Series([])).tolist() == [r["event_id"] for r in want["late"]]
    dead = frames["dead_letter"]
    assert sorted(zip(dead.get("event_id", []), dead.get("reason", []))) == sorted(
        (r["event_id"], r["reason"]) for r in want["dead_letter"]
    )


@pytest.mark.parametrize(
    "step",
    [
        VelocityFeature("user_id", window="10m"),
        DistinctCountFeature("user_id", "country", window="1h"),
        ZScoreFeature("user_id", "amount"),
        TimeSinceLastFeature("user_id"),
        RatioToMedianFeature("user_id", "amount"),
        VelocityRule("user_id", window="10m", max_count=2, name="fast"),
    ],
    ids=lambda s: type(s).__name__,
)
def test_keys_and_values_that_cannot_be_told_apart_are_set_aside_as_the_exported_code_does(step: Any) -> None:
    frame = hostile_frame().iloc[1:].reset_index(drop=True)  # (the first row has no time)
    frame["amount"] = 1.0
    res = step.build().process(frame)
    got = sorted(zip(res["dead_letter"]["event_id"], res["dead_letter"]["reason"]))
    machine = rec.make_step(
        row_step_spec(step, "f"), eval_expr, lambda t: pd.Timestamp(t).value, pd.Timestamp
    )
    want = sorted(
        (row["event_id"], r["reason"])
        for row in frame.to_dict("records")
        for name, r in machine.process(row)
        if name == "dead_letter"
    )
    assert got == want and any("cannot be" in reason or "cannot tell" in reason for _, reason in got)


@pytest.mark.parametrize("batch", [1, 5, 12])
def test_a_differs_from_value_that_cannot_be_told_apart_is_set_aside_as_the_exported_code_does(
    batch: int,
) -> None:
    """A dict or a list in a ``differs_from`` column (a ``json`` field) sends its row to dead letter with
    the per-record code's reason, where it failed the batch (the values are hashed to be compared)."""
    frame = hostile_frame().iloc[1:].reset_index(drop=True)  # (the first row has no time)
    frame["country"] = pd.Series(
        ["DE", {"c": 1}, "FR", ["US"], "DE", "FR", {"c": 1}, "US", "GB", None, "FR"], dtype=object
    )
    frame["user_id"] = "a"
    frame["amount"] = 1.0
    pattern = Pattern(
        key="user_id",
        steps=[
            PatternStep("first", "amount > 0"),
            PatternStep("second", "amount > 0", differs_from={"country": "first"}),
        ],
        within="1h",
        name="p",
    )
    op = pattern.build()
    dead, ids = [], []
    for start in range(0, len(frame), batch):
        res = op.process(frame.iloc[start : start + batch].reset_index(drop=True))
        ids += [list(x) for x in res["out"]["event_ids"]]
        if len(res.get("dead_letter", ())):
            dead.append(res["dead_letter"])
    ids += [list(x) for x in op.on_end()["out"]["event_ids"]]
    letters = pd.concat(dead, ignore_index=True)
    machine = rec.make_step(
        row_step_spec(pattern, "p"), eval_expr, lambda t: pd.Timestamp(t).value, pd.Timestamp
    )
    want_dead, want_ids = [], []
    for row in frame.to_dict("records"):
        for name, r in [*machine.process(row)]:
            if name == "dead_letter":
                want_dead.append((row["event_id"], r["reason"]))
            elif name == "out":
                want_ids.append(list(r["event_ids"]))
    want_ids += [list(r["event_ids"]) for _, r in machine.finish()]
    assert sorted(zip(letters["event_id"], letters["reason"])) == sorted(want_dead)
    assert ids == want_ids and ids
    reason = "value column 'country' holds a dict or a list, which differs_from cannot tell apart"
    assert {e for e, r in want_dead if r == reason} == {"e2", "e4", "e7"}


@pytest.mark.parametrize("method", ["adwin", "page_hinkley"])
@pytest.mark.parametrize("hostile", [float("inf"), float("-inf"), float("nan")])
def test_one_infinite_value_does_not_disable_drift_detection(method, hostile):
    # river's running mean became inf (or NaN) for good after one infinity: no drift was ever detected
    from streamlab import ListSource, Pipeline
    from streamlab._detector_record import DriftState
    from streamlab.detectors import DriftDetector

    values = [1.0] * 200 + [hostile] + [50.0] * 200
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    frame = pd.DataFrame(
        {"score": values, "timestamp": [t0 + pd.Timedelta(seconds=i) for i in range(len(values))]}
    )
    p = Pipeline(ListSource(frame))
    d = p.stream.apply(DriftDetector(method=method))
    drift = p.run()[d.step_id + ".drift"]
    assert len(drift) >= 1 and (drift["value"] == 50.0).all()
    state = DriftState(method, {})  # the exported code's rule
    seen = [state.update(v) for v in values]
    assert [n for n in seen if n is not None] == drift["n_seen"].tolist()


def test_an_infinite_score_is_judged_but_not_learned_by_the_adaptive_threshold():
    from streamlab._detector_record import AdaptiveThreshold
    from streamlab.detectors import AdaptiveThresholdFilter

    base = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95] * 5
    scores = [*base, float("inf"), *base, 50.0, float("-inf"), 1.0]
    op = AdaptiveThresholdFilter(per_key=False, warmup=5).build()
    flags = op.process(pd.DataFrame({"score": scores}))["out"]["is_anomaly"].tolist()
    assert flags[len(base)] is True and flags[2 * len(base) + 1] is True  # +inf, then 50 still flagged
    assert flags[-2:] == [False, False]
    rule = AdaptiveThreshold(3.0, 5, False, 10)
    assert [rule.classify(s) for s in scores] == flags


def test_an_infinite_score_is_judged_but_not_learned_by_the_quantile_threshold():
    # river's P² quantile stayed at inf after one infinite score: nothing was ever flagged again
    from streamlab._detector_record import QuantileThreshold

    base = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95] * 5
    scores = [*base, float("inf"), *base, 50.0, float("-inf"), 1.0]
    flags = QuantileThresholdFilter(q=0.9, warmup=5).build().process(pd.DataFrame({"score": scores}))["out"]
    flags = flags["is_anomaly"].tolist()
    assert flags[len(base)] is True and flags[2 * len(base) + 1] is True  # +inf, then 50 still flagged
    assert flags[-2:] == [False, False]
    one_by_one = QuantileThresholdFilter(q=0.9, warmup=5).build()
    assert [one_by_one.classify_one(s) for s in scores] == flags
    rule = QuantileThreshold(0.9, 5)  # the exported code's rule
    assert [rule.classify(s) for s in scores] == flags


@pytest.mark.parametrize("compiled", [True, False])
def test_a_detector_scoring_inf_does_not_disable_its_quantile_threshold(compiled, monkeypatch):
    # a feature of 1e308 scores inf with the absolute-deviation detector; the threshold learned it and
    # flagged nothing after it, in the compiled score-judge-learn loop and in the chunked numpy path
    from streamlab.detectors import _common

    monkeypatch.setattr(_common, "use_kernels", compiled)
    normal = [1.0, 2.0, 1.5, 1.0, 2.0, 1.5] * 5
    values = [*normal, 1e308, -1e308, *normal, 1e6]
    step = Detect(
        StandardAbsoluteDeviationDetector(grace_period=3),
        features=["x"],
        threshold=QuantileThresholdFilter(q=0.9, warmup=10),
        learn="unflagged",
    )
    op = step.build()
    out = op.process(pd.DataFrame({"x": values}))["out"]
    assert np.isinf(out["score"].iloc[len(normal)])
    assert out["is_anomaly"].iloc[-1]
    assert math.isfinite(op.threshold.quantile.get())


def test_missing_keys_are_one_key_of_the_standalone_adaptive_threshold():
    # each NaN key was a key of its own: ten rows without a key evicted every real key (max_keys=5),
    # so key 1's outlier was judged by a fresh, warming-up state; None was already one key
    from streamlab._detector_record import AdaptiveThreshold
    from streamlab.detectors import AdaptiveThresholdFilter

    keys = [1.0] * 6 + [math.nan] * 10 + [1.0]
    scores = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0] + [1.0] * 10 + [50.0]
    op = AdaptiveThresholdFilter(k=1.0, key="k", warmup=2, max_keys=5).build()
    flags = op.process(pd.DataFrame({"k": keys, "score": scores}))["out"]["is_anomaly"].tolist()
    assert flags[-1] is True and op.evictions == 0 and len(op.stats) == 2
    as_none = AdaptiveThresholdFilter(k=1.0, key="k", warmup=2, max_keys=5).build()
    none_keys = pd.Series([None if k != k else k for k in keys], dtype=object)
    assert (
        as_none.process(pd.DataFrame({"k": none_keys, "score": scores}))["out"]["is_anomaly"].tolist()
        == flags
    )
    rule = AdaptiveThreshold(1.0, 2, True, 5)  # the exported code's rule
    assert [rule.classify(s, k) for k, s in zip(keys, scores)] == flags


def test_a_dict_or_list_key_of_the_standalone_adaptive_threshold_goes_to_dead_letter():
    # a json key field holding a list raised TypeError (unhashable) and failed the whole run
    from streamlab import ListSource, Pipeline
    from streamlab.detectors import AdaptiveThresholdFilter

    frame = pd.DataFrame({"k": [["a"], "b", {"x": 1}, "b"], "score": [1.0, 2.0, 3.0, 2.5]})
    p = Pipeline(ListSource(frame))
    step = p.stream.apply(AdaptiveThresholdFilter(key="k", warmup=2), step_id="thr")
    result = p.run()
    assert step.step_id == "thr" and result.status == "finished"
    letters = result["thr.dead_letter"]
    assert letters["score"].tolist() == [1.0, 3.0]
    assert set(letters["reason"]) == {rec.unkeyable_reason("k")}
    assert result["thr"]["score"].tolist() == [2.0, 2.5]
    assert result["thr"]["is_anomaly"].tolist() == [False, False]
