"""Rule and feature configurations that cannot work are refused when built (or when added to a pipeline,
where the stream's column types are known), naming the config, the problem and a fix.

Before: ``ThresholdRule(expr='amount >')`` was accepted and sent every row to dead letter; ``value=None``,
``value=nan`` and ``value='10'`` (a quoted YAML number) against a number column never alerted (with
``!=``: always), ``value=[1]`` stopped the run on its first batch; ``RatioToMedianFeature(history=10**12)``
failed on its first batch for want of memory; a feature, a Detect or a Pattern with several mistakes
reported one per attempt; the fix of most argument errors was "give X the parameters its documentation
lists".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline
from streamlab.detectors import (
    Detect,
    GaussianScorerDetector,
    Pattern,
    RatioToMedianFeature,
    ThresholdRule,
    VelocityFeature,
    ZScoreFeature,
)
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

GENERIC_FIX = "the parameters its documentation lists"

#: name -> (a config that cannot work, text its problem holds, text its fix holds)
REFUSED: dict[str, tuple[Callable[[], Any], str, str]] = {
    "expr that is not an expression": (
        lambda: ThresholdRule("big", expr="amount >"),
        "cannot read expression 'amount >'",
        "amount > 100",
    ),
    "value missing": (
        lambda: ThresholdRule("big", column="amount", op=">"),
        "value is missing",
        "expr='amount.isna()'",
    ),
    "value nan": (
        lambda: ThresholdRule("big", column="amount", op="!=", value=float("nan")),
        "value=nan never compares",
        "expr='amount.isna()'",
    ),
    "value a list": (
        lambda: ThresholdRule("big", column="amount", op=">", value=[1]),
        "value=[1] is a list",
        "amount.isin([1, 2])",
    ),
    "value a mapping": (
        lambda: ThresholdRule("big", column="amount", op=">", value={"a": 1}),
        "is a dict",
        "one number, text or true/false",
    ),
    "op misspelled": (
        lambda: ThresholdRule("big", column="amount", op="=>", value=1),
        "op must be one of",
        "op: '>'",
    ),
    "neither condition": (lambda: ThresholdRule("big"), "no condition is given", "expr='amount > 1000'"),
    "both conditions": (
        lambda: ThresholdRule("big", expr="amount > 1", column="amount", op=">", value=1),
        "both expr and column/op/value",
        "not both",
    ),
    "history beyond memory": (
        lambda: RatioToMedianFeature("user_id", "amount", history=10**12),
        "history=1,000,000,000,000 is more than the 1,000,000",
        "at most 1,000,000",
    ),
    "history zero": (
        lambda: RatioToMedianFeature("user_id", "amount", history=0),
        "history must be a positive integer",
        "history=101",
    ),
    "key a list": (lambda: VelocityFeature(["user_id"]), "key must be a non-empty", "key='user_id'"),
    "max_keys text": (
        lambda: ZScoreFeature("user_id", "amount", max_keys="10"),
        "max_keys must be a positive integer",
        "without quotes",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_config_that_cannot_work_is_refused_when_built_with_a_fix(name: str) -> None:
    build, problem, fix = REFUSED[name]
    with pytest.raises(PipelineConfigError) as e:
        build()
    assert problem in e.value.problem, e.value.problem
    assert fix in e.value.fix and GENERIC_FIX not in e.value.fix, e.value.fix


@pytest.mark.parametrize(
    ("build", "problems", "fixes"),
    [
        (
            lambda: VelocityFeature(3, window="x", allowed_lateness="-1s"),  # type: ignore[arg-type]
            ["3 problems: (1) key ", "(2) window", "(3) allowed_lateness must be zero or more"],
            ["(1) pass one name as text", "(2) write it like"],
        ),
        (
            lambda: Detect(GaussianScorerDetector(), ["amount"], key=3, learn="some", max_keys=0),  # type: ignore[arg-type]
            ["3 problems: (1) key ", "(2) learn must be", "(3) max_keys must be a positive integer"],
            ["(2) pass learn='all'", "(3) pass a whole number"],
        ),
        (
            lambda: Pattern(3, [], within=0),  # type: ignore[arg-type]
            ["3 problems: (1) key ", "(2) within must be positive", "(3) steps must be a non-empty list"],
            ["(1) pass one name as text", "(3) pass e.g. steps=[PatternStep("],
        ),
    ],
)
def test_several_mistakes_of_one_config_are_reported_at_once(
    build: Callable[[], Any], problems: list[str], fixes: list[str]
) -> None:
    with pytest.raises(PipelineConfigError) as e:
        build()
    assert all(p in e.value.problem for p in problems), e.value.problem
    assert all(f in e.value.fix for f in fixes), e.value.fix


def test_the_rules_and_features_that_work_are_accepted() -> None:
    ThresholdRule("big", column="amount", op=">", value=10)
    ThresholdRule("fr", column="country", op="==", value="FR")
    ThresholdRule("flag", column="vip", op="==", value=True)
    ThresholdRule("any", column="amount", op="!=", value=0.0)
    ThresholdRule("late", column="timestamp", op=">", value=pd.Timestamp("2024-01-01", tz="UTC"))
    ThresholdRule("quoted", expr="`unit price` > 3")
    RatioToMedianFeature("user_id", "amount", history=1_000_000)
    VelocityFeature("user_id", window="5m", allowed_lateness=0)


def _stream() -> Any:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b"],
            "amount": [1.0, 20.0],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
        }
    )
    return Pipeline(ListSource(frame)).stream


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        # a quoted YAML number: 20.0 == '20' is never true, '>' never holds
        (ThresholdRule("big", column="amount", op=">", value="10"), "compares column 'amount' with a text"),
        (ThresholdRule("big", column="amount", op="==", value="20"), "compares column 'amount' with a text"),
        # a number against a text column: never equal, never ordered
        (ThresholdRule("u", column="user_id", op="==", value=3), "reads column 'user_id' as numbers"),
    ],
)
def test_a_rule_comparing_a_column_with_a_value_of_another_type_is_refused_when_added(
    rule: ThresholdRule, says: str
) -> None:
    with pytest.raises(PipelineConfigError) as e:
        _stream().apply(rule, step_id="rule")
    assert e.value.step_id == "rule" and says in e.value.problem, e.value
    assert "declared by step 'source'" in e.value.problem


def test_rules_comparing_columns_with_values_of_their_type_still_run() -> None:
    s = _stream()
    s.apply(ThresholdRule("big", column="amount", op=">", value=10), step_id="big").apply(
        ThresholdRule("a", column="user_id", op="==", value="a"), step_id="a"
    )
    out = s.pipeline.run(clock=ManualClock(0))["a"]
    assert out["rule"].tolist() == ["a", "big"]
