"""Lambda export: keys over DynamoDB's 2,048-byte partition key limit do not stop the shard.

The handler keeps window partials (WINDOW_TABLE), dedup ids (IDEMPOTENCY_TABLE) and keyed steps' state in
DynamoDB, keyed by the window key, event id or key. A longer key failed every request (ValidationException:
"Size of hashkey has exceeded the maximum size limit of 2048 bytes"), so the invocation raised on every
retry of the batch; such a key is now stored under its digest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_lambda, verify
from streamlab.export.aws_lambda import kinesis_event
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from ._lambda_env import dedup_handler_env

pytest.importorskip("moto")

pytestmark = pytest.mark.services

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "host": "string", "x": "float64"}
LONG = "h" * 3000  # a window key (and, below, an event id) over 2,048 bytes


def event(i: int | str, second: int, host: str, x: float) -> bytes:
    stamp = f"2024-01-01T00:00:{second:02d}Z"
    return json.dumps({"event_id": str(i), "timestamp": stamp, "host": host, "x": x}).encode()


def test_a_window_key_over_dynamodbs_key_limit_is_counted(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="long")
    p.parse(SCHEMA).window(TumblingWindow("10s"), key="host").agg(agg.count(), agg.sum("x"))
    lines = [event(i, 1 + i, LONG if i % 2 else "web", float(i)) for i in range(8)]
    lines.append(event(8, 15, LONG, 1.0))  # a second window of the long key
    # verify drives it as an event-source mapping does, with WINDOW_TABLE and batches of 3
    report = verify(p, lines, "lambda", workdir=tmp_path, lambda_batch_size=3)
    assert report.equal, report.diff.to_string()
    # the long key's windows were counted through DynamoDB; Timestream cannot hold a 3,000-byte
    # dimension (2 KB a series), so their results are the handler's Timestream dead letters
    assert report.exported["window"][["host", "count"]].values.tolist() == [["web", 4]]
    dead = report.exported["window.timestream_dead_letter"]
    assert set(dead["host"]) == {LONG} and sorted(dead["count"].tolist()) == [1, 4]
    assert dead["reject_reason"].str.contains("Timestream takes at most 2,048 per series").all()


def test_a_long_event_id_is_remembered_across_lambda_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlab.local import LocalAWS

    p = Pipeline(ListSource([b"{}"]), name="long_ids")
    p.parse(SCHEMA).dedup("event_id", ttl="1h").window(TumblingWindow("10s")).agg(agg.count())
    with LocalAWS() as aws:
        dynamodb = dedup_handler_env(aws, monkeypatch, "long-ids", "long_ids")
        module = load_module(to_lambda(p, tmp_path).module)
        first = module.handler(kinesis_event([("001", event(LONG, 1, "a", 1.0))], None, True))
        assert first["batchItemFailures"] == []
        module._remembered.clear()  # a fresh container: the id is read from the table
        # the next Lambda window gets the same event again (Kinesis redelivers it): dropped as a repeat
        again = module.handler(kinesis_event([("002", event(LONG, 2, "a", 1.0))], None, False))
        assert again["batchItemFailures"] == []
        assert again["state"]["counts"] == {"dedup.duplicates": 1}
        [item] = dynamodb.scan(TableName="long-ids")["Items"]
        assert item["event_id"]["S"].startswith("#sha256:")


def test_a_keyed_steps_long_key_keeps_its_state(tmp_path: Path) -> None:
    from streamlab.detectors import VelocityFeature

    p = Pipeline(ListSource([b"{}"]), name="long_state")
    p.parse({**SCHEMA, "card_id": "string"}).apply(
        VelocityFeature("card_id", window="1h"), step_id="velocity"
    ).window(TumblingWindow("10s"), key="card_id").agg(agg.max("count_1h"))

    def tx(i: int, card: str) -> bytes:
        stamp = f"2024-01-01T00:00:{i:02d}Z"
        return json.dumps({"event_id": f"e{i}", "timestamp": stamp, "card_id": card, "x": 1.0}).encode()

    lines = [tx(i, LONG if i % 3 else "c1") for i in range(1, 9)]
    report = verify(p, lines, "lambda", workdir=tmp_path, lambda_batch_size=3)
    assert report.equal, report.diff.to_string()
    assert report.exported["window"].set_index("card_id")["max_count_1h"].to_dict() == {"c1": 2}
    # the long key's state counted on (6 in the hour) through DynamoDB; its result is a Timestream dead
    # letter (a dimension of 3,000 bytes: Timestream holds 2 KB a series)
    dead = report.exported["window.timestream_dead_letter"]
    assert dead.set_index("card_id")["max_count_1h"].to_dict() == {LONG: 6}
