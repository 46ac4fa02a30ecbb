"""Lambda export of detector-package steps: stateless rules run in the handler (verified against moto on
the bundled transactions); steps with state across events are refused at export time, naming Beam."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlab.datasets import load

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import (
    Detect,
    FixedThresholdFilter,
    GaussianScorerDetector,
    PatternStep,
    ThresholdRule,
    VelocityFeature,
)
from streamlab.errors import PipelineConfigError
from streamlab.export import to_lambda, verify
from streamlab.export.verify import sample_lines
from streamlab.testing import ListSource

pytest.importorskip("moto")

SCHEMA = {
    "event_id": "string",
    "card_id": "string",
    "country": "string",
    "amount": "float64",
    "timestamp": "timestamp",
}


def rules_pipeline() -> Pipeline:
    """Notebook 08's hand-written rules, alerts counted per country and minute."""
    p = Pipeline(ListSource([b"{}"]), name="fraud_rules")
    ruled = (
        p.parse(SCHEMA)
        .apply(ThresholdRule("big_abroad", expr="amount >= 200 and country != 'FR'"), step_id="big_abroad")
        .apply(ThresholdRule("tiny", column="amount", op="<", value=2.0), step_id="tiny")
    )
    ruled.window(TumblingWindow("1m"), key="country", delay="2s").agg(
        agg.count(), agg.sum("is_alert"), agg.count_distinct("rule")
    )
    return p


@pytest.mark.services
def test_rules_on_lambda_equal_streamlab_on_transactions(tmp_path: Path) -> None:
    lines = [*sample_lines(load("transactions").head(300)), b"not json"]
    report = verify(rules_pipeline(), lines, "lambda", workdir=tmp_path, lambda_batch_size=50)
    assert report.equal, report.diff.head(20).to_string()
    windows = report.local["window"]
    assert report.counts["window"]["lambda"] == len(windows) > 10
    assert windows["sum_is_alert"].sum() > 0  # the rules fired
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, "lambda": 1}


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        (
            Detect(
                GaussianScorerDetector(grace_period=5),
                features=["amount"],
                key="card_id",
                threshold=FixedThresholdFilter(0.99),
            ),
            "Detect",
        ),
        (VelocityFeature("card_id", window="10m", value="amount"), "VelocityFeature"),
    ],
)
def test_steps_with_state_are_refused_naming_the_step_and_beam(
    step: object, kind: str, tmp_path: Path
) -> None:
    """A model's or a feature's state outlives an invocation: beyond what the handler keeps (its limits named)."""
    p = Pipeline(ListSource([b"{}"]), name="stateful")
    p.parse(SCHEMA).apply(step, step_id="stateful_step").window(TumblingWindow("1m")).agg(agg.count())
    with pytest.raises(PipelineConfigError) as caught:
        to_lambda(p, tmp_path)
    message = str(caught.value)
    assert f"step 'stateful_step' (operator): cannot export to AWS Lambda: {kind} keeps state" in message
    assert "1 MB per shard" in message and "400 KB" in message and "export to Apache Beam" in message


def test_a_pattern_is_refused_too(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="patterns")
    p.parse(SCHEMA).pattern("card_id", [PatternStep("a", "amount > 0")], within="1h", step_id="geo")
    with pytest.raises(
        PipelineConfigError, match=r"step 'geo' \(operator\): cannot export to AWS Lambda: Pattern"
    ):
        to_lambda(p, tmp_path)
