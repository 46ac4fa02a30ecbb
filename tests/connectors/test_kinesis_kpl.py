"""Records the Kinesis Producer Library aggregated: KinesisSource delivers the user records inside, as
the KCL does, checked against AWS's own aggregation library (``aws-kinesis-agg``) and moto.

Before, such a record was one event of the KPL's binary framing: every user record in it went to the
parse step's dead letter as "invalid JSON".
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.connectors.kinesis import KinesisSource

from streamlab import ListSink, ManualClock, Pipeline
from streamlab._kpl import KPL_MAGIC, kpl_aggregate, kpl_records
from streamlab.local import LocalAWS

from .test_kinesis import drained, make_stream, read

keys = st.text(min_size=1, max_size=20)
user_records = st.lists(st.tuples(keys, st.binary(max_size=300)), min_size=1, max_size=30)


def aws_aggregate(records: list[tuple[str, bytes]]) -> bytes:
    """One aggregated record as AWS's library (the KPL's format) writes it."""
    agg = RecordAggregator()
    for key, data in records:
        assert agg.add_user_record(key, data) is None  # (all fit in one record)
    return bytes(agg.clear_and_get().get_contents()[2])


@settings(max_examples=200, deadline=None)
@given(user_records)
def test_the_user_records_of_an_aggregated_record_are_those_aws_library_put_in(records: Any) -> None:
    assert kpl_records(aws_aggregate(records)) == records


@settings(max_examples=200, deadline=None)
@given(user_records)
def test_aws_library_reads_back_what_kpl_aggregate_writes(records: Any) -> None:
    import base64

    event = {"kinesis": {"data": base64.b64encode(kpl_aggregate(records)).decode(), "partitionKey": "p"}}
    event["kinesis"].update(sequenceNumber="1", approximateArrivalTimestamp=0.0, kinesisSchemaVersion="1.0")
    got = deaggregate_records([event])
    assert [(r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in got] == records


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_damaged_or_foreign_bytes_are_a_record_of_their_own(tail: bytes, magic: bool) -> None:
    # never raises: a record that only looks aggregated is delivered as it is, as the KCL does
    data = (KPL_MAGIC if magic else b"") + tail
    assert kpl_records(data) is None or data.startswith(KPL_MAGIC)


@pytest.mark.parametrize("cut", [1, 5, 16, 17])
def test_an_aggregated_record_cut_short_or_altered_is_one_record(cut: int) -> None:
    data = aws_aggregate([("k", b"x" * 40), ("j", b"y")])
    assert kpl_records(data[:-cut]) is None
    assert kpl_records(data[:10] + bytes([data[10] ^ 1]) + data[11:]) is None


@pytest.fixture(scope="module")
def aws() -> Any:
    with LocalAWS() as local:
        yield local


def put(client: Any, stream: str, records: list[tuple[str, bytes]]) -> None:
    out = client.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": k} for k, d in records])
    assert out["FailedRecordCount"] == 0


def stream_of_aggregates(aws: LocalAWS) -> tuple[str, list[tuple[str, bytes]]]:
    """One shard holding a plain record, an aggregate of 7, a plain one and an aggregate of 5: the user
    records in order."""
    stream, client = make_stream(aws.endpoint_url, shards=1)
    users = [
        (f"u{i % 3}", json.dumps({"i": i, "timestamp": f"2026-01-01T00:00:{i:02d}Z"}).encode())
        for i in range(14)
    ]
    put(client, stream, [users[0], ("agg-a", aws_aggregate(users[1:8])), users[8]])
    put(client, stream, [("agg-b", aws_aggregate(users[9:14]))])
    return stream, users


@pytest.mark.services
@pytest.mark.parametrize("max_events", [1, 3, 100])
def test_kinesis_source_delivers_user_records_at_most_max_events_a_poll(
    aws: LocalAWS, max_events: int
) -> None:
    stream, users = stream_of_aggregates(aws)
    reader = KinesisSource(stream, endpoint_url=aws.endpoint_url, idle_interval=0).open()
    batches = []
    while (batch := reader.poll(max_events)) is not None or not batches:
        if batch is not None:
            assert 0 < len(batch) <= max_events
            batches.append(batch)
    assert drained(reader)
    got = pd.concat(batches, ignore_index=True)
    assert list(zip(got["partition_key"], got["value"])) == users
    assert got["sub_sequence_number"].tolist() == [0, *range(7), 0, *range(5)]
    assert got["sequence_number"].nunique() == 4
    reader.close()


@pytest.mark.services
@pytest.mark.parametrize("stop_after", [1, 2, 3, 5, 8, 9, 12, 13])
def test_a_reader_resumed_inside_an_aggregated_record_delivers_exactly_the_rest(
    aws: LocalAWS, stop_after: int
) -> None:
    stream, users = stream_of_aggregates(aws)
    source = KinesisSource(stream, endpoint_url=aws.endpoint_url, idle_interval=0)
    reader = source.open()
    first = read(reader, stop_after, max_events=2)
    position = reader.snapshot()
    reader.close()
    resumed = source.open(resume=position)
    rest = read(resumed, len(users) - stop_after, max_events=4)
    assert drained(resumed)
    got = pd.concat([first, rest], ignore_index=True)
    assert list(zip(got["partition_key"], got["value"])) == users
    resumed.close()


@pytest.mark.services
@pytest.mark.timeout(60)  # an unbounded source: the run ends at max_events
def test_a_pipeline_parses_the_user_records_of_aggregated_records(aws: LocalAWS) -> None:
    stream, users = stream_of_aggregates(aws)
    p = Pipeline(KinesisSource(stream, endpoint_url=aws.endpoint_url, idle_interval=0))
    events = p.parse({"i": "int64", "timestamp": "timestamp"})
    ok, dead = ListSink(), ListSink()
    events.to(ok)
    events.dead_letter.to(dead)
    p.run(clock=ManualClock(0), max_events=len(users))
    assert ok.frame()["i"].tolist() == list(range(14)) and dead.frame().empty
