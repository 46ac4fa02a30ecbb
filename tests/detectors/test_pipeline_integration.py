"""Detector steps inside a streamlab pipeline (``Stream.apply``), run on the local runtime."""

from __future__ import annotations

import pandas as pd
import pytest

from streamlab import Pipeline
from streamlab.detectors import Detect, FixedThresholdFilter, GaussianScorerDetector, Pattern, VelocityFeature
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSink, ListSource, ManualClock

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def rows(n: int = 60) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"e{i}",
            "user_id": f"u{i % 2}",
            "amount": 500.0 if i == 41 else float(i % 5 + 10),
            "event_type": "login_success" if i % 4 == 3 else "login_failed",
            "timestamp": T0 + pd.Timedelta(seconds=i),
        }
        for i in range(n)
    ]


def test_features_detect_and_pattern_run_in_a_pipeline() -> None:
    scored, matches = ListSink(), ListSink()
    p = Pipeline(ListSource(rows()))
    velocity = VelocityFeature("user_id", window="10s", value="amount")
    detect = Detect(
        GaussianScorerDetector(feature="amount", grace_period=5),
        features=["amount", "count_10s"],
        key="user_id",
        threshold=FixedThresholdFilter(0.999),
    )
    p.apply(velocity).apply(detect).to(scored)
    pattern = Pattern(
        key="user_id",
        within="1m",
        steps=[("failed", "event_type == 'login_failed'", 2), ("success", "event_type == 'login_success'")],
    )
    p.apply(pattern).to(matches)
    p.run(clock=ManualClock(0))
    out = pd.DataFrame(scored.rows())
    assert len(out) == 60
    assert out.loc[out["is_anomaly"], "event_id"].tolist() == ["e41"]
    assert {"count_10s", "sum_amount_10s", "score", "detector"} <= set(out.columns)
    found = pd.DataFrame(matches.rows())
    assert len(found) > 0
    assert (found["pattern"] == "pattern").all()


def test_missing_columns_are_reported_when_the_pipeline_is_built() -> None:
    p = Pipeline(ListSource(rows(3)))
    with pytest.raises(PipelineConfigError, match=r"no column\(s\) \['nope'\]"):
        p.apply(Detect(GaussianScorerDetector(), features=["nope"]))
