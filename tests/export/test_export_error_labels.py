"""Export errors name a detector, feature, rule, drift or pattern step by its config's class
(``VelocityFeature``), as the pipeline's own errors and diagram do; they said "(operator)", the
internal kind every such step shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import HalfSpaceTreesDetector, RiverDetector, VelocityFeature
from streamlab.errors import PipelineConfigError
from streamlab.export import to_beam, to_lambda, to_spark
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "user": "string", "timestamp": "timestamp", "amount": "float64"}


def test_a_spark_refusal_names_the_feature_class(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="late_feature")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="user").agg(agg.count()).apply(
        VelocityFeature(key="user", value="count", time="window_end"), step_id="velo"
    )
    with pytest.raises(
        PipelineConfigError, match=r"^step 'velo' \(VelocityFeature\): cannot export to Spark"
    ):
        to_spark(p, tmp_path)


def test_a_lambda_refusal_names_the_feature_class(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="no_window")
    p.parse(SCHEMA).apply(VelocityFeature(key="user", value="amount"), step_id="velo")
    with pytest.raises(PipelineConfigError, match=r"^step 'velo' \(VelocityFeature\): cannot export to AWS"):
        to_lambda(p, tmp_path)


def test_a_row_step_without_a_per_record_form_names_its_class(tmp_path: Path) -> None:
    from river import anomaly

    p = Pipeline(ListSource([b"{}"]), name="custom")
    p.parse(SCHEMA).detect(RiverDetector(anomaly.HalfSpaceTrees(seed=1)), features=["amount"], step_id="mine")
    with pytest.raises(
        PipelineConfigError,
        match=r"^step 'mine' \(RiverDetector\): its detector wraps an arbitrary river model",
    ):
        to_beam(p, tmp_path)


def test_a_detect_step_is_named_by_its_detector_once(tmp_path: Path) -> None:
    """A detect step was "(Detect)", the class every detect step shares; it is named by its detector, as
    the pipeline's own errors and diagram name it, and the reason does not repeat it."""
    p = Pipeline(ListSource([b"{}"]), name="unseeded")
    p.parse(SCHEMA).detect(HalfSpaceTreesDetector(), features=["amount"], step_id="trees")
    with pytest.raises(PipelineConfigError) as caught:
        to_beam(p, tmp_path)
    message = str(caught.value)
    assert message.startswith("step 'trees' (HalfSpaceTreesDetector): the detector has seed=None")
    assert message.count("HalfSpaceTreesDetector") == 2  # the label, and the fix: pass seed=42 to it
