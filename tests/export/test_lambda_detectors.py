"""Lambda export of detector-package steps: rules, and features and velocity rules with per-key state in
DynamoDB, run in the handler (verified against moto on the bundled transactions); models, drift and patterns
are refused at export time, naming Beam."""

from __future__ import annotations

import json
import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlab.datasets import load

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import (
    Detect,
    DistinctCountFeature,
    DriftDetector,
    FixedThresholdFilter,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    PatternStep,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.errors import PipelineConfigError
from streamlab.export import to_lambda, verify
from streamlab.export.aws_lambda import create_window_table, kinesis_event
from streamlab.export.verify import load_module, sample_lines
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


def features_pipeline() -> Pipeline:
    """Notebook 08's features and rules, every feature kind and a small model per card (a GaussianScorer: its
    Half-Space Trees and its pattern do not fit), counted per minute."""
    p = Pipeline(ListSource([b"{}"]), name="fraud_features")
    features = (
        p.parse(SCHEMA)
        .apply(VelocityFeature("card_id", window="10m", value="amount"))
        .apply(RatioToMedianFeature("card_id", "amount"))
        .apply(DistinctCountFeature("card_id", "country", window="1h"))
        .apply(ZScoreFeature("card_id", "amount"))
        .apply(TimeSinceLastFeature("card_id"))
        .with_columns(amount_vs_usual="ratio_to_median_amount.fillna(1.0)")
    )
    ruled = (
        features.apply(VelocityRule("card_id", window="10m", max_count=2, name="burst"))
        .apply(ThresholdRule("amount_spike", expr="amount_vs_usual > 3 and amount >= 100"))
        .apply(ThresholdRule("second_country", expr="distinct_country_1h > 1"))
    )
    scored = ruled.apply(
        Detect(
            GaussianScorerDetector(grace_period=3),
            features=["amount"],
            key="card_id",
            threshold=FixedThresholdFilter(0.95),
        ),
        step_id="detect",
    )
    scored.window(TumblingWindow("1m"), key="country", delay="2s").agg(
        agg.count(),
        agg.sum("is_anomaly"),
        agg.max("score"),
        agg.sum("is_alert"),
        agg.count_distinct("rule"),
        agg.max("count_10m"),
        agg.sum("sum_amount_10m"),
        agg.sum("amount_vs_usual"),
        agg.max("zscore_amount"),
        agg.sum("seconds_since_last"),
    )
    return p


def busy_cards(n: int = 120) -> list[bytes]:
    """The first ``n`` transactions of the busiest cards: each card has history across invocations."""
    tx = load("transactions")
    cards = tx["card_id"].value_counts().index[:12]
    return sample_lines(tx[tx["card_id"].isin(cards)].head(n))


@pytest.mark.services
def test_features_on_lambda_equal_streamlab_with_state_across_invocations(tmp_path: Path) -> None:
    """Batches of 10: every card's history is carried from invocation to invocation through DynamoDB, and
    through the scenario's retried batch (timed out after writing) and redelivered poison batch."""
    lines = [
        *busy_cards(),
        b"not json",
        b'{"event_id": "x", "amount": 3.0, "timestamp": "2024-03-01T05:00:00Z"}',
    ]
    report = verify(features_pipeline(), lines, "lambda", workdir=tmp_path, lambda_batch_size=10)
    assert report.equal, report.diff.head(20).to_string()
    windows = report.local["window"]
    assert report.counts["window"]["lambda"] == len(windows) > 10
    assert windows["sum_is_alert"].sum() > 0 and windows["max_count_10m"].max() > 1  # history was used
    assert windows["sum_is_anomaly"].sum() > 0
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, "lambda": 1}
    assert sum(c["lambda"] for ref, c in report.counts.items() if ref.endswith(".dead_letter")) == 2


@pytest.fixture
def velocity_handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    """A handler with one VelocityFeature step, its WINDOW_TABLE and dead-letter queue in moto: (module,
    LocalAWS, queue url)."""
    from streamlab.local import LocalAWS

    p = Pipeline(ListSource([b"{}"]), name="big_state")
    p.parse(SCHEMA).apply(VelocityFeature("card_id", window="1h"), step_id="velocity").window(
        TumblingWindow("1h"), key="card_id"
    ).agg(agg.max("count_1h"))
    module = load_module(to_lambda(p, tmp_path).module)
    with LocalAWS() as aws:
        monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", aws.region)
        tag = uuid.uuid4().hex[:8]  # moto's backend outlives one LocalAWS
        monkeypatch.setenv("WINDOW_TABLE", create_window_table(aws.client("dynamodb"), f"state-{tag}"))
        queue = aws.client("sqs").create_queue(QueueName=f"dead-{tag}")["QueueUrl"]
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue)
        yield module, aws, queue


def test_state_beyond_the_item_limit_sends_the_record_to_dead_letter(
    velocity_handler: tuple[Any, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key whose state would pass the item limit: its record goes to the step's dead letter with the reason,
    the state keeps its earlier events, and other keys go on."""
    module, aws, queue = velocity_handler
    assert "the stream's partition key must be 'card_id'" in module.__doc__
    probe = module.make_step(module.VELOCITY_SPEC, module.eval_expr, module.to_ns, module.from_ns)
    probe.process({"card_id": "c1", "timestamp": "2024-03-01T00:00:00Z"})
    probe.process({"card_id": "c1", "timestamp": "2024-03-01T00:00:01Z"})
    two_events = len(pickle.dumps(probe, protocol=4))
    monkeypatch.setattr(module, "STATE_ITEM_MAX_BYTES", two_events + 8)  # room for two events, not three

    def tx(i: int, card: str) -> bytes:
        return f'{{"event_id": "e{i}", "card_id": "{card}", "timestamp": "2024-03-01T00:00:0{i}Z"}}'.encode()

    batch = [(f"{i:03d}", tx(i, "c1" if i < 4 else "c2")) for i in range(1, 6)]
    response = module.handler(kinesis_event(batch[:2], None, False))
    response = module.handler(kinesis_event(batch[2:], response["state"], False))
    assert response["batchItemFailures"] == []
    got = aws.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    dead = [json.loads(m["Body"]) for m in got]
    assert [(d["output"], d["event_id"], d["step_id"]) for d in dead] == [
        ("velocity.dead_letter", "e3", "velocity")
    ]
    assert "over DynamoDB's item limit" in dead[0]["reason"] and "to_beam" in dead[0]["reason"]
    items = aws.client("dynamodb").scan(TableName=os.environ["WINDOW_TABLE"])["Items"]
    held = {i["slot"]["S"].rsplit("|", 1)[1]: pickle.loads(i["state"]["B"]) for i in items}
    events = {k: len(m.state.events[json.loads(k)[0]][0]) for k, m in held.items()}
    assert events == {'["c1"]': 2, '["c2"]': 2}  # c1 kept its first two events; c2 went on


def test_a_concurrent_write_of_a_key_fails_the_later_invocation_not_the_update(
    velocity_handler: tuple[Any, Any, str],
) -> None:
    """Two invocations (two shards: the partition key was not the card) read card c1's state; the one that
    writes second raises, so Lambda retries its batch from the stored state instead of overwriting it."""
    module, _, _ = velocity_handler
    row = {"card_id": "c1", "timestamp": "2024-03-01T00:00:00Z"}
    first, second = module.KeyedState("shardId-1"), module.KeyedState("shardId-2")
    for keyed in (first, second):
        keyed.seq = "001"
        outputs, reason = keyed.process("velocity", "c1", row)
        assert reason is None and outputs[0][1]["count_1h"] == 1
    second.save()
    with pytest.raises(RuntimeError, match="another invocation wrote the state of a key of this batch"):
        first.save()
    third = module.KeyedState("shardId-1")
    third.seq = "002"
    outputs, _ = third.process("velocity", "c1", {**row, "timestamp": "2024-03-01T00:00:01Z"})
    assert outputs[0][1]["count_1h"] == 2  # the retry sees the stored update


@pytest.mark.parametrize(
    ("step", "label", "kind"),
    [
        (
            Detect(
                HalfSpaceTreesDetector(seed=7),
                features=["amount"],
                key="card_id",
                threshold=FixedThresholdFilter(0.99),
            ),
            "HalfSpaceTreesDetector",
            "the step keeps state per key too large for it: its detector's model per key",
        ),
        (
            Detect(GaussianScorerDetector(grace_period=5), features=["amount"]),
            "GaussianScorerDetector",
            "the step keeps state across all keys",
        ),
        (DriftDetector("amount"), "DriftDetector", "the step keeps state across events"),
    ],
)
def test_steps_with_state_are_refused_naming_the_step_and_beam(
    step: object, label: str, kind: str, tmp_path: Path
) -> None:
    """A large model per key, a model over all keys or a drift detector outgrows what the handler keeps (its
    limits named)."""
    p = Pipeline(ListSource([b"{}"]), name="stateful")
    p.parse(SCHEMA).apply(step, step_id="stateful_step").window(TumblingWindow("1m")).agg(agg.count())
    with pytest.raises(PipelineConfigError) as caught:
        to_lambda(p, tmp_path)
    message = str(caught.value)
    # the step named once, by its detector's or config's class: the reason does not repeat it
    assert f"step 'stateful_step' ({label}): cannot export to AWS Lambda: {kind}" in message
    assert message.count(label) == 1
    assert "1 MB per shard" in message and "400 KB" in message and "export to Apache Beam" in message


def test_keyed_steps_must_share_one_key_the_partition_key(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="two_keys")
    p.parse(SCHEMA).apply(VelocityFeature("card_id", window="10m")).apply(
        TimeSinceLastFeature("country"), step_id="by_country"
    ).window(TumblingWindow("1m")).agg(agg.count())
    with pytest.raises(PipelineConfigError, match=r"step 'by_country' .*partition key") as caught:
        to_lambda(p, tmp_path)
    assert "to_beam" in str(caught.value)


def test_a_pattern_is_refused_too(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="patterns")
    p.parse(SCHEMA).pattern("card_id", [PatternStep("a", "amount > 0")], within="1h", step_id="geo")
    with pytest.raises(
        PipelineConfigError,
        match=r"step 'geo' \(Pattern\): cannot export to AWS Lambda: the step keeps state across events",
    ):
        to_lambda(p, tmp_path)
