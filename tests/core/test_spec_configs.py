"""YAML round-trip of feature, rule, detector and pattern steps (the configs of streamlab.detectors):
written, read back and run, they give the same outputs as the pipeline they came from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlab.datasets import load

from streamlab import ManualClock, Pipeline, ReplaySource
from streamlab.detectors import (
    DriftDetector,
    FixedThresholdFilter,
    GaussianScorerDetector,
    RiverDetector,
    VelocityFeature,
)
from streamlab.errors import SpecError
from streamlab.examples import fraud_pipeline
from streamlab.spec import pipeline_from_yaml, pipeline_to_yaml


def iot(path: str) -> Pipeline:
    """Notebook 09's pipeline: per-device Gaussian scorers with a fixed threshold, then drift detection."""
    p = Pipeline(ReplaySource(path), name="iot")
    scored = p.stream.detect(
        GaussianScorerDetector(grace_period=20),
        features=["temperature"],
        key="device_id",
        threshold=FixedThresholdFilter(0.99999),
        step_id="score_temperature",
    )
    scored.filter("~is_anomaly", step_id="unflagged").apply(
        DriftDetector(column="temperature", method="adwin"), step_id="drift"
    )
    return p


@pytest.mark.parametrize(("dataset", "build"), [("transactions", fraud_pipeline), ("iot", iot)])
def test_detector_pipelines_round_trip_through_yaml_and_run_the_same(
    dataset: str, build: object, tmp_path: Path
) -> None:
    path = str(tmp_path / f"{dataset}.parquet")
    data = load(dataset).head(3_000)
    data.drop(columns=[c for c in ("is_anomaly",) if c in data.columns]).to_parquet(path)  # a label
    p = build(path)  # type: ignore[operator]
    text = pipeline_to_yaml(p)
    back = pipeline_from_yaml(text)
    assert pipeline_to_yaml(back) == text
    assert list(back.steps) == list(p.steps)
    ours, theirs = p.run(clock=ManualClock(0)).outputs, back.run(clock=ManualClock(0)).outputs
    assert sorted(ours) == sorted(theirs)
    for ref in ours:
        pd.testing.assert_frame_equal(ours[ref], theirs[ref])
    assert "kind: operator" in text and "type: Detect" in text


def test_a_config_that_cannot_be_described_as_data_is_refused_naming_the_step(tmp_path: Path) -> None:
    from river import anomaly

    path = str(tmp_path / "e.parquet")
    pd.DataFrame({"x": [1.0], "timestamp": pd.to_datetime([0], utc=True)}).to_parquet(path)
    p = Pipeline(ReplaySource(path), name="custom")
    p.stream.detect(RiverDetector(anomaly.HalfSpaceTrees(seed=1)), features=["x"], step_id="custom_model")
    with pytest.raises(ValueError, match=r"step 'custom_model' \(Detect\) cannot be written to YAML"):
        pipeline_to_yaml(p)


def test_an_unknown_or_misconfigured_step_config_is_a_spec_problem(tmp_path: Path) -> None:
    path = str(tmp_path / "e.parquet")
    pd.DataFrame({"card_id": ["c"], "timestamp": pd.to_datetime([0], utc=True)}).to_parquet(path)
    p = Pipeline(ReplaySource(path), name="bad")
    p.stream.apply(VelocityFeature("card_id", window="10m"))
    text = pipeline_to_yaml(p)
    with pytest.raises(
        SpecError, match="unknown step config type str 'VelocityFeatur'.*did you mean 'VelocityFeature'"
    ):
        pipeline_from_yaml(text.replace("type: VelocityFeature", "type: VelocityFeatur"))
    with pytest.raises(SpecError, match=r"processing\[0\].*config"):
        pipeline_from_yaml(text.replace("window: 10m", "window: -5m"))
