"""Lambda export: dead letters and late rows over the SQS queue's MaximumMessageSize are not lost, and do not
block their shard. The generated handler runs as deployed, against moto's server (SQS, S3, Timestream)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_lambda
from streamlab.export.aws_lambda import _collect, kinesis_event
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from ._samples import BASE_MS, SCHEMA, record

pytest.importorskip("moto")

LIMIT = 262_144  # SQS's MaximumMessageSize before 2025; moto's default queue takes 1 MiB

NOT_JSON = b'{"event_id": "e9", "note": "' + b"x" * (300 * 1024)  # ~300 KiB, cut off: invalid JSON
NOT_UTF8 = b"\xff\xfe" * 500_000  # 1,000,000 bytes (the parse step's max_record_bytes): invalid UTF-8
LATE = record(8, BASE_MS + 1_000, "click", "u" * (300 * 1024), 1.0)  # late, with a ~300 KiB user id
GOOD = [record(i, BASE_MS + 120_000 + 1_000 * i, "click", f"u{i}", float(i)) for i in range(1, 4)]
BATCH = [
    ("001", GOOD[0]),
    ("002", NOT_JSON),
    ("003", GOOD[1]),
    ("004", NOT_UTF8),
    ("005", LATE),
    ("006", GOOD[2]),
]
RAW = dict(BATCH)


def counts(name: str = "oversized") -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name=name)
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type", delay="5s").agg(agg.count())
    return p


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    from streamlab.local import LocalAWS

    with LocalAWS() as server:
        yield server


@pytest.fixture
def deployed(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh container of the handler with a 256 KiB dead-letter queue and a bucket (not yet in the env)."""
    tag = uuid.uuid4().hex[:8]  # moto's backend outlives the tests
    sqs, s3 = aws.client("sqs"), aws.client("s3")
    queue = sqs.create_queue(QueueName=f"dead-{tag}", Attributes={"MaximumMessageSize": str(LIMIT)})[
        "QueueUrl"
    ]
    bucket = f"dead-letters-{tag}"
    s3.create_bucket(Bucket=bucket)
    ts = aws.client("timestream-write")
    ts.create_database(DatabaseName=f"db_{tag}")
    ts.create_table(DatabaseName=f"db_{tag}", TableName="window")
    for key, value in {
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws.region,
        "TIMESTREAM_DATABASE": f"db_{tag}",
        "TIMESTREAM_TABLE": "window",
        "DEAD_LETTER_QUEUE_URL": queue,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DEAD_LETTER_BUCKET", raising=False)
    module = load_module(to_lambda(counts(), tmp_path).module)
    return {"module": module, "sqs": sqs, "s3": s3, "queue": queue, "bucket": bucket, "db": f"db_{tag}"}


def receive(sqs: Any, queue: str) -> list[str]:
    bodies: list[str] = []
    while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in got]
    return bodies


def full_dead_letters(module: Any) -> dict[str, dict[str, Any]]:
    """The dead letters and late row of BATCH as a queue without a size limit would get them."""
    event = kinesis_event(BATCH, None, False)
    _, side = module.run_records(event["Records"], module.load_state(None))
    return {
        row["sequenceNumber"]: json.loads(module.dump_json({"output": output, **row}))
        for _, output, row in side
    }


@pytest.mark.services
def test_with_a_bucket_the_whole_dead_letter_is_in_s3_and_the_queue_gets_a_pointer(
    deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, sqs, s3, queue, bucket = (deployed[k] for k in ("module", "sqs", "s3", "queue", "bucket"))
    monkeypatch.setenv("DEAD_LETTER_BUCKET", bucket)
    response = module.handler(kinesis_event(BATCH, None, False))
    assert response["batchItemFailures"] == []  # nothing blocks the shard
    assert [acc[0] for acc in response["state"]["windows"].values()] == [3]  # the three good records
    bodies = receive(sqs, queue)
    assert all(len(b.encode()) <= LIMIT and "\n" not in b and ", " not in b for b in bodies)  # compact JSON
    pointers = {p["sequenceNumber"]: p for p in map(json.loads, bodies)}
    assert set(pointers) == {"002", "004", "005"}
    expected = full_dead_letters(module)
    for seq, pointer in pointers.items():
        assert pointer["output"] == expected[seq]["output"]
        assert pointer.get("reason") == expected[seq].get("reason")
        assert (pointer["partitionKey"], pointer["approximateArrivalTimestamp"]) == ("verify", 0)
        assert pointer["queue_limit_bytes"] == LIMIT and pointer["message_bytes"] > LIMIT
        where = pointer["payload_s3"]
        assert where["bucket"] == bucket
        data = s3.get_object(Bucket=bucket, Key=where["key"])["Body"].read()
        assert pointer["payload_bytes"] == len(data)
        whole = json.loads(data)
        if seq == "004":  # not UTF-8: raw is text with U+FFFD, raw_base64 the record's exact bytes
            assert base64.b64decode(whole.pop("raw_base64")) == RAW[seq]
        assert whole == expected[seq]
    assert (
        json.loads(s3.get_object(Bucket=bucket, Key=pointers["002"]["payload_s3"]["key"])["Body"].read())[
            "raw"
        ].encode()
        == RAW["002"]
    )
    assert "invalid UTF-8" in pointers["004"]["reason"] and pointers["005"]["output"] == "window.late"
    assert pointers["005"]["payload_s3"]["key"].endswith("/shardId-000000000000/005/window.late.json")


@pytest.mark.services
def test_a_retried_batch_overwrites_its_s3_objects_and_verify_reads_the_pointers(
    deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, sqs, s3, queue, bucket = (deployed[k] for k in ("module", "sqs", "s3", "queue", "bucket"))
    monkeypatch.setenv("DEAD_LETTER_BUCKET", bucket)
    for _ in range(2):  # the first invocation "timed out" after sending: Lambda retries the batch
        assert module.handler(kinesis_event(BATCH, None, False))["batchItemFailures"] == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 3  # one object per oversized side output, not one per attempt
    assert all(k.startswith("oversized/verify/shardId-000000000000/00") for k in keys)
    collected = _collect(sqs, queue, deployed["db"], "window", counts().steps["window"], "parse")
    dead = collected["parse.dead_letter"]  # read through the pointers, one row per record
    assert sorted(dead["sequenceNumber"]) == ["002", "004"]
    assert dict(zip(dead["sequenceNumber"], dead["raw"]))["002"].encode() == NOT_JSON
    assert collected["window.late"]["user_id"].tolist() == ["u" * (300 * 1024)]


@pytest.mark.services
def test_without_a_bucket_the_dead_letter_is_truncated_visibly(
    deployed: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    module, sqs, queue = deployed["module"], deployed["sqs"], deployed["queue"]
    with caplog.at_level(logging.ERROR, logger=module.__name__):
        response = module.handler(kinesis_event(BATCH, None, False))
    assert response["batchItemFailures"] == []  # not retried forever
    assert caplog.text.count("set DEAD_LETTER_BUCKET to keep whole payloads") == 3
    bodies = receive(sqs, queue)
    assert all(LIMIT - 64 <= len(b.encode()) <= LIMIT for b in bodies)  # cut to fit, not far below
    messages = {m["sequenceNumber"]: m for m in map(json.loads, bodies)}
    assert set(messages) == {"002", "004", "005"}
    expected = full_dead_letters(module)
    for seq, message in messages.items():
        raw = RAW[seq]
        assert message["raw_truncated"] is True
        assert message["raw_bytes"] == len(raw)
        assert message["raw_sha256"] == hashlib.sha256(raw).hexdigest()
        assert len(message["raw"]) > 0 and raw.decode("utf-8", "replace").startswith(message["raw"])
        assert message.get("reason") == expected[seq].get("reason")  # the whole reason
        assert (message["output"], message["partitionKey"]) == (expected[seq]["output"], "verify")
    assert messages["005"]["output"] == "window.late" and "reason" not in messages["005"]


@pytest.mark.services
def test_a_failed_s3_write_retries_the_record_instead_of_losing_it(
    deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    module, sqs, queue = deployed["module"], deployed["sqs"], deployed["queue"]
    monkeypatch.setenv("DEAD_LETTER_BUCKET", "no-such-bucket-" + uuid.uuid4().hex[:8])
    with caplog.at_level(logging.ERROR, logger=module.__name__):
        response = module.handler(kinesis_event(BATCH, None, False))
    assert response["batchItemFailures"] == [{"itemIdentifier": "002"}]  # Lambda redelivers from it
    assert "to s3://no-such-bucket-" in caplog.text and "002" in caplog.text
    assert receive(sqs, queue) == []  # no pointer to an object that is not there
    windows = response["state"]["windows"]
    assert [acc[0] for acc in windows.values()] == [1]  # only record 001 is in the returned state


@pytest.mark.services
def test_the_limit_is_the_queues_and_falls_back_to_256_kib(
    deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, sqs = deployed["module"], deployed["sqs"]
    big = sqs.create_queue(QueueName=f"big-{uuid.uuid4().hex[:8]}")["QueueUrl"]  # moto's default: 1 MiB
    assert module.queue_limit(big) == 1_048_576 == module._queue_limits[big]  # read once, then cached
    assert module.queue_limit(big + "-missing") == 262_144 and big + "-missing" not in module._queue_limits
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", big)  # a queue raised to 1 MiB takes ~300 KiB inline
    assert module.handler(kinesis_event(BATCH[:3], None, False))["batchItemFailures"] == []
    (body,) = receive(sqs, big)
    assert json.loads(body)["raw"].encode() == NOT_JSON and "raw_truncated" not in body
    assert module.message_bytes("é", {"k": {"DataType": "String", "StringValue": "vé"}}) == 2 + 1 + 6 + 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=6_000), limit=st.integers(1_024, 4_096), reason=st.text(max_size=300))
def test_a_truncated_message_is_the_longest_prefix_that_fits(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes, limit: int, reason: str
) -> None:
    module = _module(tmp_path_factory)
    event = kinesis_event([("7", raw)], None, False)
    row = {"raw": raw.decode("utf-8", "replace"), "reason": reason, "step_id": "parse", "sequenceNumber": "7"}
    body = module.dump_json({"output": "parse.dead_letter", **row})
    message = module.truncated("parse.dead_letter", row, event["Records"][0], body, len(body), limit)
    got = json.loads(message)
    text = raw.decode("utf-8", "replace")
    assert len(message.encode()) <= limit  # fits, even when the reason alone would not (all escapes)
    assert text.startswith(got["raw"]) and got["raw_bytes"] == len(raw)
    assert got["raw_sha256"] == hashlib.sha256(raw).hexdigest() and reason.startswith(got["reason"])
    if got["reason"] != reason:
        assert got["raw"] == ""  # the reason is cut only when no raw fits
    if got["raw"] != text:  # one more character would not have fitted
        longer = module.dump_json({**got, "raw": text[: len(got["raw"]) + 1]})
        assert len(longer.encode()) > limit


_MODULES: dict[str, Any] = {}


def _module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if "m" not in _MODULES:
        _MODULES["m"] = load_module(to_lambda(counts(), tmp_path_factory.mktemp("handler")).module)
    return _MODULES["m"]


@pytest.mark.services
def test_a_failed_pointer_send_retries_the_record_and_the_retry_rewrites_the_same_object(
    deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, sqs, s3, queue, bucket = (deployed[k] for k in ("module", "sqs", "s3", "queue", "bucket"))
    monkeypatch.setenv("DEAD_LETTER_BUCKET", bucket)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue + "-gone")  # S3 takes the object, SQS fails
    failed = module.handler(kinesis_event(BATCH[:3], None, False))
    assert failed["batchItemFailures"] == [{"itemIdentifier": "002"}]  # handled only once both succeed
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue)
    retried = module.handler(kinesis_event(BATCH[1:3], failed["state"], False))  # redelivered from 002
    assert retried["batchItemFailures"] == []
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    (pointer,) = map(json.loads, receive(sqs, queue))
    assert pointer["payload_s3"] == {"bucket": bucket, "key": key}
    assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["raw"].encode() == NOT_JSON


@pytest.mark.services
def test_verify_runs_the_handler_with_its_bucket_so_a_large_dead_letter_is_compared_whole(
    tmp_path: Path,
) -> None:
    # the deployed function has DEAD_LETTER_BUCKET (main.tf); verify ran it without one, so a dead
    # letter over the queue's limit arrived cut to fit and was reported as a difference from streamlab
    from streamlab.export import verify

    p = Pipeline(ListSource([b"{}"]), name="large_dead_letters")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    lines = [record(i, BASE_MS + i * 1000, "click", "u1", 1.0) for i in range(4)]
    lines[1:1] = [b'{"event_id": "' + b"x" * 1_500_000, b"\xff" + b"y" * 1_200_000]  # not JSON, not UTF-8
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()[:2000]
    assert report.counts["parse.dead_letter"] == {"streamlab": 2, "lambda": 2}
    assert sorted(len(r) for r in report.exported["parse.dead_letter"]["raw"]) == [1_200_001, 1_500_014]
