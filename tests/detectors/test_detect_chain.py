"""A ``detect`` after another one silently overwrote its ``score``/``is_anomaly``/``detector`` (tester4
finding 38): the first detector's flags were lost. It is refused when it is added, unless the first
results were read or kept under other names in between."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from streamlab import Pipeline, Stream
from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector, HalfSpaceTreesDetector
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def stream() -> tuple[Pipeline, Stream]:
    df = pd.DataFrame({"x": [1.0, 2, 3, 4, 50], "k": ["a"] * 5, "timestamp": [T0] * 5})
    p = Pipeline(ListSource(df))
    return p, p.stream


def first(s: Stream) -> Stream:
    return s.detect(GaussianScorerDetector(), ["x"], threshold=FixedThresholdFilter(0.9), step_id="gauss")


def second(s: Stream) -> Stream:
    return s.detect(
        HalfSpaceTreesDetector(seed=1), ["x"], threshold=FixedThresholdFilter(0.99), step_id="hst"
    )


UNREAD: dict[str, Callable[[Stream], Stream]] = {
    "directly": lambda d: d,
    "after_a_filter": lambda d: d.filter("x > 0"),
    "after_with_columns": lambda d: d.with_columns(y="x * 2"),
    "after_select_keeping_them": lambda d: d.select("x", "timestamp", "score", "is_anomaly", "detector"),
    "after_key_by": lambda d: d.key_by("k"),
}


@pytest.mark.parametrize("case", list(UNREAD))
def test_a_detect_overwriting_unread_results_is_refused_with_the_fix(case: str) -> None:
    p, s = stream()
    between = UNREAD[case](first(s))
    with pytest.raises(PipelineConfigError) as e:
        second(between)
    msg = str(e.value)
    assert msg.startswith("step 'hst' (HalfSpaceTreesDetector)") and "step 'gauss' (detect)" in msg
    assert "with_columns(gauss_score='score', gauss_is_anomaly='is_anomaly')" in msg
    assert "hst" not in p.steps


READ: dict[str, Callable[[Stream], Stream]] = {
    "kept_under_other_names": lambda d: d.with_columns(gauss_score="score", gauss_is_anomaly="is_anomaly"),
    "filtered_on_its_flag": lambda d: d.filter("~is_anomaly"),
    "renamed_by_select": lambda d: d.select(
        "x", "timestamp", gauss_score="score", gauss_is_anomaly="is_anomaly"
    ),
}


@pytest.mark.parametrize("case", list(READ))
def test_a_detect_after_the_first_results_were_used_is_accepted(case: str) -> None:
    p, s = stream()
    out = second(READ[case](first(s)))
    r = p.run()
    rows = r[out.ref]
    assert rows["detector"].unique().tolist() == ["half_space_trees"]
    if case != "filtered_on_its_flag":  # both detectors' flags reach the output
        alone = Pipeline(ListSource(pd.DataFrame({"x": [1.0, 2, 3, 4, 50], "timestamp": [T0] * 5})))
        gauss = first(alone.stream)
        expected = alone.run()[gauss.ref]
        assert rows["gauss_is_anomaly"].tolist() == expected["is_anomaly"].tolist()
        assert rows["gauss_score"].tolist() == expected["score"].tolist()


def test_detectors_on_branches_are_accepted() -> None:
    p, s = stream()
    a, b = first(s), second(s)
    r = p.run()
    assert (
        r[a.ref]["detector"].iloc[0] == "gaussian_scorer"
        and r[b.ref]["detector"].iloc[0] == "half_space_trees"
    )
