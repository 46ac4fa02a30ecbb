"""A detector, feature or drift detector given a column declared text or timestamp upstream (by a parse
schema or a source's frame) is refused when the step is added, as agg.sum of such a column is: it built
and then scored nothing (detect), or gave NaN (z-score, ratio to median) or 0 (velocity sum) for every
row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from streamlab import ListSource, Pipeline, PipelineConfigError, Stream
from streamlab.detectors import (
    DriftDetector,
    HalfSpaceTreesDetector,
    RatioToMedianFeature,
    VelocityFeature,
    ZScoreFeature,
)


def events() -> Stream:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [
        {"user_id": "u", "event_type": "a", "amount": 1.0, "timestamp": t0 + pd.Timedelta(seconds=i)}
        for i in range(5)
    ]
    return Pipeline(ListSource(rows)).stream


def parsed() -> Stream:
    schema = {"user_id": "string", "event_type": "string", "amount": "float64", "timestamp": "timestamp"}
    return Pipeline(ListSource([b"{}"])).parse(schema)


STEPS: dict[str, Callable[[Stream, str], Any]] = {
    "detect": lambda s, c: s.detect(HalfSpaceTreesDetector(seed=1), [c]),
    "zscore": lambda s, c: s.apply(ZScoreFeature("user_id", c)),
    "ratio": lambda s, c: s.apply(RatioToMedianFeature("user_id", c)),
    "velocity": lambda s, c: s.apply(VelocityFeature("user_id", window="1m", value=c)),
    "drift": lambda s, c: s.apply(DriftDetector(column=c)),
}


@pytest.mark.parametrize("stream", [events, parsed])
@pytest.mark.parametrize("column", ["event_type", "timestamp"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_non_numeric_column_is_refused_naming_it_and_its_type(
    stream: Callable[[], Stream], column: str, step: str
) -> None:
    with pytest.raises(PipelineConfigError) as e:
        STEPS[step](stream(), column)
    assert repr(column) in e.value.problem and "numeric" in e.value.fix


@pytest.mark.parametrize("stream", [events, parsed])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_numeric_column_is_accepted(stream: Callable[[], Stream], step: str) -> None:
    assert STEPS[step](stream(), "amount").step_id
