"""A keyed feature whose output name is a column the stream has already is refused when it is attached to
a stream whose columns are known: ``s.apply(ZScoreFeature("user_id", "amount", name="label"))`` replaced
the stream's ``label`` with z-scores in every row (only overwriting its own key, value or time column was
refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from streamlab import ListSource, Pipeline, PipelineConfigError, Stream
from streamlab.detectors import (
    DistinctCountFeature,
    RatioToMedianFeature,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)


def events() -> Stream:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [
        {"user_id": "u", "ip": "a", "amount": 1.0, "label": i % 2, "timestamp": t0 + pd.Timedelta(seconds=i)}
        for i in range(5)
    ]
    return Pipeline(ListSource(rows)).stream


FEATURES: dict[str, Callable[[str], Any]] = {
    "zscore": lambda name: ZScoreFeature("user_id", "amount", name=name),
    "ratio": lambda name: RatioToMedianFeature("user_id", "amount", name=name),
    "since": lambda name: TimeSinceLastFeature("user_id", name=name),
    "distinct": lambda name: DistinctCountFeature("user_id", "ip", window="1m", name=name),
}


@pytest.mark.parametrize("feature", list(FEATURES))
def test_a_feature_named_as_an_existing_column_is_refused_naming_step_column_and_fix(feature: str) -> None:
    stream = events()
    with pytest.raises(PipelineConfigError) as e:
        stream.apply(FEATURES[feature]("label"))
    assert "its output column 'label' is a column the stream has already" in e.value.problem
    assert "name=" in e.value.fix and ".with_columns(label_in='label')" in e.value.fix
    assert e.value.step_id  # the step is named in the message
    assert stream.apply(FEATURES[feature]("other")).step_id  # a fresh name is taken


def test_a_velocity_features_count_column_is_checked_too() -> None:
    stream = events().with_columns(tx_count="amount")
    with pytest.raises(PipelineConfigError, match="'tx_count' is a column the stream has already"):
        stream.apply(VelocityFeature("user_id", window="1m", name="tx"))


def test_a_second_rule_may_write_the_alert_columns_again() -> None:
    first = events().apply(VelocityRule("user_id", window="1m", max_count=2, name="fast"))
    assert first.apply(VelocityRule("user_id", window="1m", max_count=1, name="faster")).step_id
    with pytest.raises(PipelineConfigError, match="'fast_count' is a column the stream has already"):
        first.apply(VelocityRule("user_id", window="5m", max_count=2, name="fast"))
