"""Lambda export: window results Timestream cannot hold go to the dead-letter queue, as TimestreamSink's do.

The handler is driven as a Kinesis event-source mapping invokes it (``verify``), against moto.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_lambda, verify
from streamlab.export.aws_lambda import kinesis_event
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

pytest.importorskip("moto")

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "x": "float64", "note": "string"}


def sums_and_notes() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="ts_values")
    p.parse(SCHEMA).window(TumblingWindow("10s")).agg(agg.sum("x"), agg.first("note"))
    return p


def event(i: int, second: int, x: float, note: str) -> bytes:
    stamp = f"2024-01-01T00:00:{second:02d}Z"
    return json.dumps({"event_id": f"e{i}", "timestamp": stamp, "x": x, "note": note}).encode()


LINES = [
    event(0, 1, 1.0, "ok"),  # written
    event(1, 11, 1e308, "a"),  # the window's sum overflows to inf
    event(2, 12, 1e308, "b"),
    event(3, 21, 1.0, ""),  # an empty text measure: botocore refuses the whole request
    event(4, 31, 1.0, "x" * 2049),  # over Timestream's 2,048 bytes
    event(5, 41, -1e308, "c"),  # -inf
    event(6, 42, -1e308, "d"),
    event(7, 51, 2.0, "é" * 1024),  # 2,048 bytes: written
]


def handler_environment(
    aws: Any, monkeypatch: pytest.MonkeyPatch, queue: str, bucket: str | None = None
) -> None:
    """A Timestream table ``values.window`` on the local AWS, and the handler's environment pointing at it,
    its dead-letter ``queue`` and (if any) ``bucket``."""
    ts = aws.client("timestream-write")
    ts.create_database(DatabaseName="values")
    ts.create_table(DatabaseName="values", TableName="window")
    for key, value in {
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws.region,
        "TIMESTREAM_DATABASE": "values",
        "TIMESTREAM_TABLE": "window",
        "DEAD_LETTER_QUEUE_URL": queue,
        **({"DEAD_LETTER_BUCKET": bucket} if bucket else {}),
    }.items():
        monkeypatch.setenv(key, value)


@pytest.mark.services
def test_results_timestream_cannot_hold_go_to_the_dead_letter_queue_and_the_rest_are_written(
    tmp_path: Path,
) -> None:
    # the handler wrote an infinite sum as the text "inf" (Timestream refuses it; moto stores it) and an
    # empty first(note) failed botocore's check for the whole WriteRecords call: the invocation raised on
    # every retry of the batch, and the shard stopped
    report = verify(sums_and_notes(), LINES, "lambda", workdir=tmp_path, lambda_batch_size=3)
    assert report.equal, report.diff.to_string()
    written = report.exported["window"].sort_values("window_start")
    assert written["first_note"].tolist() == ["ok", "é" * 1024]
    dead = report.exported["window.timestream_dead_letter"].sort_values("window_start")
    assert dead["reject_reason"].tolist() == [  # TimestreamSink's reasons (connectors/timestream.py)
        "measure(s) ['sum_x'] are infinite (inf), which a Timestream DOUBLE cannot hold",
        "text measure(s) ['first_note'] are 0 bytes long; Timestream takes 1 to 2,048 bytes (an empty text is refused)",
        "text measure(s) ['first_note'] are 2,049 bytes long; Timestream takes 1 to 2,048 bytes (an empty text is refused)",
        "measure(s) ['sum_x'] are infinite (-inf), which a Timestream DOUBLE cannot hold",
    ]
    assert set(dead["step_id"]) == {"window"} and report.counts["window.timestream_dead_letter"] == {
        "streamlab": 4,
        "lambda": 4,
    }


def test_without_a_queue_such_a_result_fails_the_invocation_rather_than_vanish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL", raising=False)
    module = load_module(to_lambda(sums_and_notes(), tmp_path).module)
    batch = [(f"{i:03d}", line) for i, line in enumerate(LINES[1:3])]
    with pytest.raises(RuntimeError, match=r"no DEAD_LETTER_QUEUE_URL for 1 window result.*infinite \(inf\)"):
        module.handler(kinesis_event(batch, None, True))


@pytest.mark.services
def test_records_timestream_rejects_go_to_the_dead_letter_queue_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a RejectedRecordsException (a time outside the memory store's retention, ...) failed the invocation,
    # so Lambda retried the batch forever; TimestreamSink sends those records to its dead_letter
    from streamlab.local import LocalAWS

    with LocalAWS() as aws:
        sqs = aws.client("sqs")
        queue = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
        handler_environment(aws, monkeypatch, queue)
        module = load_module(to_lambda(sums_and_notes(), tmp_path).module)
        why = "The record timestamp is outside the time range of the data ingestion window."

        def reject(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:  # moto never rejects
            http_response.status_code = 419
            parsed["Error"] = {"Code": "RejectedRecordsException", "Message": "rejected"}
            parsed["RejectedRecords"] = [{"RecordIndex": 1, "Reason": why}]

        module.client("timestream-write").meta.events.register(
            "after-call.timestream-write.WriteRecords", reject
        )
        batch = [("001", LINES[0]), ("002", event(8, 52, 3.0, "z"))]
        response = module.handler(kinesis_event(batch, None, True))
        assert response["batchItemFailures"] == []
        [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        body = json.loads(message["Body"])
        assert body["output"] == "window.timestream_dead_letter" and body["reject_reason"] == why
        assert (body["first_note"], body["sum_x"], body["window_start"]) == (
            "z",
            3.0,
            "2024-01-01T00:00:50.000000Z",
        )


@pytest.mark.services
@pytest.mark.parametrize("bucket", [True, False])
def test_an_oversized_rejected_result_is_kept_whole_in_s3_or_sent_cut_to_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bucket: bool
) -> None:
    # a first(note) of 300 KiB is over Timestream's 2,048 bytes, and its dead letter over the queue's
    # 256 KiB: as the handler's other side outputs, it goes whole to DEAD_LETTER_BUCKET (a retry rewrites
    # the same object) with a pointer in the queue, or without a bucket is sent cut to fit, saying so
    from streamlab.export.aws_lambda import _collect
    from streamlab.local import LocalAWS

    with LocalAWS() as aws:
        sqs, s3 = aws.client("sqs"), aws.client("s3")
        queue = sqs.create_queue(QueueName="dead", Attributes={"MaximumMessageSize": "262144"})["QueueUrl"]
        s3.create_bucket(Bucket="dead-letters")
        handler_environment(aws, monkeypatch, queue, bucket="dead-letters" if bucket else None)
        if not bucket:
            monkeypatch.delenv("DEAD_LETTER_BUCKET", raising=False)
        module = load_module(to_lambda(sums_and_notes(), tmp_path).module)
        note = "n" * (300 * 1024)
        batch = [("001", LINES[0]), ("002", event(9, 12, 1.0, note))]
        for _ in range(2):  # the first invocation "timed out" after sending: Lambda retries the batch
            assert module.handler(kinesis_event(batch, None, True))["batchItemFailures"] == []
        reason = f"text measure(s) ['first_note'] are {len(note):,} bytes long; Timestream takes 1 to 2,048 bytes (an empty text is refused)"
        if bucket:
            assert len(s3.list_objects_v2(Bucket="dead-letters")["Contents"]) == 1
            got = _collect(sqs, queue, "values", "window", sums_and_notes().steps["window"], "parse")
            [row] = got["window.timestream_dead_letter"].to_dict("records")
            assert (row["first_note"], row["reject_reason"], row["version"]) == (note, reason, 1)
        else:
            bodies = [
                json.loads(m["Body"])
                for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
            ]
            assert len(bodies) == 2 and all(
                b["raw_truncated"] and b["reject_reason"] == reason for b in bodies
            )
            assert {b["window_start"] for b in bodies} == {"2024-01-01T00:00:10.000000Z"}


@pytest.mark.services
def test_a_window_dead_lettered_after_a_first_write_keeps_that_record_and_says_which_version_supersedes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Timestream has no delete: the window written at version 1 (one event) stays when its cumulative
    # result (two events: an infinite sum) goes to the dead-letter queue; the handler's docstring says so,
    # and the dead letter's version (2, above the record's) tells a reader which one holds the window
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    from streamlab.export.aws_lambda import create_window_table
    from streamlab.local import LocalAWS

    with LocalAWS() as aws:
        sqs = aws.client("sqs")
        queue = sqs.create_queue(QueueName="superseded")["QueueUrl"]
        handler_environment(aws, monkeypatch, queue)
        monkeypatch.setenv("WINDOW_TABLE", create_window_table(aws.client("dynamodb"), "superseded"))
        module = load_module(to_lambda(sums_and_notes(), tmp_path).module)
        assert "Timestream has no delete" in module.__doc__
        for seq, line, lambda_window in (("001", LINES[1], "T00:00"), ("002", LINES[2], "T00:15")):
            e = kinesis_event([(seq, line)], None, True)  # the final invocation of each Lambda window
            e["window"] = {"start": f"2024-01-01{lambda_window}:00Z", "end": f"2024-01-01{lambda_window}:00Z"}
            assert module.handler(e)["batchItemFailures"] == []
        [record] = (
            timestreamwrite_backends[DEFAULT_ACCOUNT_ID][aws.region]
            .describe_database("values")
            .describe_table("window")
            .records
        )
        [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert (record["Version"], dict((m["Name"], m["Value"]) for m in record["MeasureValues"])["sum_x"]) == (
        1,
        "1e+308",
    )
    assert body["version"] == 2 and body["reject_reason"].startswith(
        "measure(s) ['sum_x'] are infinite (inf)"
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("time", "'time' is a name Timestream reserves"),
        ("measure_value_x", "starts with measure_value"),
        ("ts_host", "starts with ts_"),
        ("h" * 61, "61 bytes long"),
    ],
)
def test_a_window_key_timestream_refuses_as_a_dimension_name_is_refused_at_export(
    tmp_path: Path, key: str, problem: str
) -> None:
    # moto took a dimension named "time"; Timestream refuses it, so every write of the window's results
    # failed and Lambda retried the batch for ever: the export now says so and how to fix it
    from streamlab.errors import PipelineConfigError

    p = Pipeline(ListSource([b"{}"]), name="names")
    p.parse({**SCHEMA, key: "string"}).window(TumblingWindow("10s"), key=key).agg(agg.count())
    with pytest.raises(PipelineConfigError, match=rf"{problem}.*rename the column before the window"):
        to_lambda(p, tmp_path)
