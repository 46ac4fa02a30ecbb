"""Every sink writes a key with one text, whatever dtype pandas gave its column in that batch.

An integer key column becomes float64 once it meets a missing value, so the key 7 arrived as 7 in one
batch and 7.0 in the next. KafkaSink wrote both as b'7' (108470b); KinesisSink put the partition keys
'7' and '7.0' (two shards: per-key order lost), PubSubSink the ordering keys '7' and '7.0', and
BigQuerySink the insert ids '7' and '7.0' (a replay cut into other batches was not deduplicated). They
now share streamlab.serde's key rule (encode_keys / key_texts / text_values).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.connectors.aws import aws_client
from streamlab.connectors.bigquery import stream_requests
from streamlab.connectors.kafka import KafkaSink
from streamlab.connectors.kinesis import KinesisSink
from streamlab.connectors.pubsub import PubSubSink, PubSubSource, create_subscription, create_topic
from streamlab.connectors.redis._client import parse_template, render
from streamlab.connectors.timestream import TimestreamSink, build_records

from streamlab.local import LocalAWS
from streamlab.local.pubsub import PubSubEmulator
from streamlab.serde import encode_keys, key_texts, text_values
from streamlab.testing import ListSink, wait_for

ALONE = pd.DataFrame({"user_id": [7], "n": [1]})  # int64
WITH_MISSING = pd.DataFrame({"user_id": [7, None], "n": [2, 3]})  # float64: 7.0 and NaN


# -- the rule -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "dtype", "texts"),
    [
        ([7, None], "float64", ["7", None]),
        ([7, None], "Int64", ["7", None]),
        ([7, None], "Float64", ["7", None]),
        ([7.0], "float32", ["7"]),
        ([-0.0, 1.5, float("inf"), -np.inf], "float64", ["0", "1.5", "null", "null"]),
        # 2**63 + 1 has no float64: the column holds 2.0**63, written as that integer (as KafkaSink)
        ([2**63 + 1, None], "float64", ["9223372036854775808", None]),
        ([2**64 - 1], "uint64", ["18446744073709551615"]),
        ([1e22, 2.0**70], "float64", ["10000000000000000000000", "1180591620717411303424"]),
        ([True, None], "boolean", ["true", None]),
        ([True, False], "bool", ["true", "false"]),
        ([7, 7.0, "7", "7.0", True, None], object, ["7", "7", "7", "7.0", "true", None]),
        (["u1", "", None], "string", ["u1", "", None]),
        ([7.0, None], "category", ["7", None]),
    ],
)
def test_key_text_of_each_kind_of_value(values: list[Any], dtype: Any, texts: list[str | None]) -> None:
    s = pd.Series(values, dtype=dtype)
    assert key_texts(s) == texts
    assert key_texts(s.astype(object)) == texts  # value by value, as the column at a time
    assert encode_keys(s) == [None if t is None else t.encode() for t in texts]
    assert text_values(s) == ["" if t is None else t for t in texts]


def test_a_time_key_has_one_text_whatever_else_its_batch_holds() -> None:
    # pandas' text of a time column has the precision of the column's most precise value
    alone = pd.Series([pd.Timestamp("2024-01-01 00:00:04")])
    with_fraction = pd.Series([pd.Timestamp("2024-01-01 00:00:04"), pd.Timestamp("2024-01-01 00:00:03.5")])
    assert text_values(alone)[0] == text_values(with_fraction)[0] == "2024-01-01T00:00:04.000000Z"


_KINDS = st.sampled_from(["int64", "uint64", "Int64", "float64", "float32", "Float64", "bool", "boolean"])


def _column(kind: str, data: st.DataObject) -> pd.Series:
    """A column of dtype ``kind`` with drawn values."""
    if kind in ("bool", "boolean"):
        values: list[Any] = data.draw(st.lists(st.booleans(), max_size=8))
    elif kind in ("int64", "Int64"):
        values = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8))
    elif kind == "uint64":
        values = data.draw(st.lists(st.integers(0, 2**64 - 1), max_size=8))
    else:
        width = 32 if kind == "float32" else 64
        values = data.draw(
            st.lists(st.floats(width=width) | st.integers(-(2**64), 2**64).map(float), max_size=8)
        )
    if kind in ("Int64", "Float64", "boolean"):
        values = [None if data.draw(st.booleans()) else v for v in values]
    return pd.Series(values, dtype=kind)


@settings(max_examples=50, deadline=None)
@given(kind=_KINDS, data=st.data())
def test_the_column_rule_equals_the_value_rule(kind: str, data: st.DataObject) -> None:
    s = _column(kind, data)
    assert key_texts(s) == key_texts(s.astype(object))
    assert encode_keys(s) == encode_keys(s.astype(object))


@settings(max_examples=50, deadline=None)
@given(kind=_KINDS, data=st.data())
def test_headers_dimensions_and_redis_keys_are_key_texts(kind: str, data: st.DataObject) -> None:
    # Kafka headers, Timestream dimensions and Redis key templates wrote 7.0 as '7.0' (another header,
    # series or hash than the 7 of an int64 batch), True as 'True' and times as pandas' text
    s = _column(kind, data)
    texts = key_texts(s)
    frame = pd.DataFrame({"x": s, "n": 1, "t": pd.Timestamp("2024-01-01", tz="UTC")})
    _, _, headers = KafkaSink("k", bootstrap_servers="h:1", headers=["x"]).encode(frame)
    assert [h[0][1] for h in headers] == [None if t is None else t.encode() for t in texts]
    sink = TimestreamSink("d", "t", dimensions=["x"], measures=["n"], time="t")
    records, positions, _ = build_records(sink, frame)
    dims: list[str | None] = [None] * len(s)
    for record, i in zip(records, positions):
        dims[i] = next((d["Value"] for d in record["Dimensions"]), None)
    # a dimension's infinities stay apart ('inf', '-inf'; key_texts writes both null)
    infinite = [isinstance(v, float) and np.isinf(v) for v in s.astype(object).tolist()]
    assert dims == [str(float(v)) if inf else t for v, t, inf in zip(s.tolist(), texts, infinite)]
    parts = parse_template("RedisMetricsSink", "key_template", "m:{x}")
    assert render("RedisMetricsSink", parts, frame).tolist() == [
        "m:None" if t is None else f"m:{t}" for t in texts
    ]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-(2**53), 2**53), min_size=1, max_size=8))
def test_an_integer_key_has_one_text_in_an_int64_and_a_float64_column(keys: list[int]) -> None:
    ints = pd.Series(keys, dtype="int64")
    floats = pd.Series([*keys, None], dtype="float64")
    assert key_texts(floats) == [*key_texts(ints), None] == [*(str(k) for k in keys), None]


# -- the sinks ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAWS]:
    with LocalAWS() as local:
        yield local


@pytest.mark.services
def test_kinesis_puts_one_partition_key_and_shard_for_a_key_in_any_batch(aws: LocalAWS) -> None:
    client = aws_client("kinesis", endpoint_url=aws.endpoint_url)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=stream, ShardCount=4)
    wait_for(
        lambda: (
            client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        ),
        timeout=10,
        what=f"stream {stream} to become ACTIVE",
    )
    dead = ListSink()
    writer = KinesisSink(
        stream, partition_key="user_id", endpoint_url=aws.endpoint_url, dead_letter=dead
    ).open()
    writer.write_batch(ALONE)
    writer.write_batch(WITH_MISSING)
    writer.close()
    stored: list[tuple[int, str, str]] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        it = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in client.get_records(ShardIterator=it)["Records"]:
            stored.append((json.loads(record["Data"])["n"], record["PartitionKey"], shard["ShardId"]))
    stored.sort()
    assert [(n, key) for n, key, _ in stored] == [(1, "7"), (2, "7")]  # it was '7' then '7.0'
    assert stored[0][2] == stored[1][2]
    # a missing key is a dead letter, as before
    assert dead.frame()["n"].tolist() == [3]
    assert dead.frame()["reject_reason"].tolist() == ["the partition key is missing"]


@pytest.mark.services
def test_pubsub_sends_one_ordering_key_for_a_key_in_any_batch() -> None:
    with PubSubEmulator() as emulator:
        host, suffix = emulator.host, uuid.uuid4().hex[:8]
        topic = create_topic(f"k-{suffix}", project="streamlab-test", emulator_host=host)
        sub = create_subscription(
            f"k-{suffix}", topic, project="streamlab-test", enable_message_ordering=True, emulator_host=host
        )
        writer = PubSubSink(topic, ordering_key="user_id", attributes=["user_id"], emulator_host=host).open()
        writer.write_batch(ALONE)
        writer.write_batch(WITH_MISSING)
        writer.flush()
        writer.close()
        reader = PubSubSource(sub, emulator_host=host).open()
        seen: list[dict[str, Any]] = []

        def all_read() -> bool:
            batch = reader.poll(100)
            if batch is not None:
                seen.extend(batch.to_dict("records"))
                reader.commit(reader.snapshot())
            return len(seen) >= 3

        try:
            wait_for(all_read, timeout=10, what="3 messages")
        finally:
            reader.close()
    got = sorted((json.loads(r["value"])["n"], r["ordering_key"] or "", r["attributes"]) for r in seen)
    # it was '7' then '7.0'; a missing key is still no ordering key and an empty attribute
    assert got == [(1, "7", {"user_id": "7"}), (2, "7", {"user_id": "7"}), (3, "", {"user_id": ""})]


def test_bigquery_insert_ids_of_a_key_are_the_same_in_any_batch() -> None:
    [(_, alone, _)] = stream_requests(ALONE, "user_id")
    [(rows, with_missing, _)] = stream_requests(WITH_MISSING, "user_id")
    assert alone == ["7"] and with_missing == ["7", ""]  # it was '7' then '7.0'; missing: no id, as before
    assert rows[0]["user_id"] == 7.0  # the row itself keeps its float
