"""The Lambda handler on records the Kinesis Producer Library aggregated: it processes the user records
inside, as KinesisSource reads them, each with its own partition key (AWS's ``aws-kinesis-agg`` makes
the records). Before, an aggregated record was one dead letter: its framing is no JSON."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from streamlab.export import to_lambda
from streamlab.export.aws_lambda import kinesis_event
from streamlab.export.verify import load_module
from streamlab.local import LocalAWS

from ._lambda_env import handler_env
from ._samples import FIXED_SAMPLE
from .test_lambda_export import dedup_counts


def aggregate(records: list[tuple[str, bytes]]) -> bytes:
    agg = RecordAggregator()
    for key, data in records:
        assert agg.add_user_record(key, data) is None
    return bytes(agg.clear_and_get().get_contents()[2])


@pytest.mark.services
@pytest.mark.parametrize("cuts", [[0, 11], [0, 3, 4, 11], [0, 1, 5, 6, 11]])
def test_aggregated_records_give_the_windows_and_dead_letters_of_the_plain_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuts: list[int]
) -> None:
    module = load_module(to_lambda(dedup_counts("kpl_counts"), tmp_path).module)
    plain = [(f"{i + 1:03d}", data) for i, data in enumerate(FIXED_SAMPLE)]
    keyed = [(f"u{i % 3}", data) for i, data in enumerate(FIXED_SAMPLE)]
    packed = [(f"{j + 1:03d}", aggregate(keyed[a:b])) for j, (a, b) in enumerate(itertools.pairwise(cuts))]
    with LocalAWS() as aws:
        handler_env(aws, monkeypatch)
        sqs = aws.client("sqs")
        outs: dict[str, Any] = {}
        for name, records in (("plain", plain), ("packed", packed)):
            queue = sqs.create_queue(QueueName=f"dead-{uuid.uuid4().hex[:8]}")["QueueUrl"]
            monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue)
            written: list[Any] = []  # the closed windows' results (Timestream's writes)
            monkeypatch.setattr(module, "write_results", lambda results, out=written: out.extend(results))
            response = module.handler(kinesis_event(records, None, True))
            assert response["batchItemFailures"] == []
            dead = []
            while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
                dead += [json.loads(m["Body"]) for m in got]
                sqs.delete_message_batch(
                    QueueUrl=queue,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
                )
            outs[name] = (written, response["state"]["counts"], dead)
    assert outs["packed"][:2] == outs["plain"][:2] and outs["plain"][0]
    plain_dead, packed_dead = outs["plain"][2], outs["packed"][2]
    meta = ("sequenceNumber", "partitionKey", "subSequenceNumber")

    def rows(side: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps({k: v for k, v in d.items() if k not in meta}, sort_keys=True) for d in side)

    assert rows(packed_dead) == rows(plain_dead)
    assert {d["output"] for d in plain_dead} == {"parse.dead_letter", "window.late"}
    for d in (d for d in packed_dead if d["output"] == "parse.dead_letter"):
        index = FIXED_SAMPLE.index(d["raw"].encode())  # each user record's own key and place in its record
        start = max(c for c in cuts if c <= index)
        assert d["partitionKey"] == f"u{index % 3}" and d["subSequenceNumber"] == index - start
        assert d["sequenceNumber"] == f"{cuts.index(start) + 1:03d}"
    assert all("subSequenceNumber" not in d for d in plain_dead)
