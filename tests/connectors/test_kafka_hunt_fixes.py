"""Fixes from the connectors QA hunt (/tmp/hunt_conn/REPORT.md), each pinned by a test that failed before.

* Brokers separated by ``;`` or whitespace were accepted when a Kafka connector was built; librdkafka
  reads such a list as one host name, and the run failed only after ``connect_timeout``, as "no broker
  answered".
* A consumer closed in the middle of its first join (a run stopped or failed right after its start)
  sent a LeaveGroup, after which the local broker (tansu) assigned that group's partitions to no member
  while it ran: the next ``stop_at_end`` run of the group read nothing, silently, for its whole duration.
  The reader now drops a member that was never assigned without the LeaveGroup, warns when it has owned
  no partition for ``2 * session.timeout.ms + heartbeat.interval.ms``, and a bounded read fails at twice
  that (10 s at least).
* ``KafkaSink`` wrote the key ``1.0`` of a float64 column as ``b'1.0'`` and the key ``1`` of an int64
  column as ``b'1'``: one key, two partitions. A whole-number float key is now its integer's text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import streamlab.connectors as c
from streamlab.connectors.kafka import KafkaAdmin, KafkaSource, KafkaSourceError, KafkaSourceReader

from streamlab import Pipeline
from streamlab.errors import ParameterError
from streamlab.testing import ListSink

MAKERS: dict[str, Callable[[Any], Any]] = {
    "source": lambda b: c.KafkaSource("t", bootstrap_servers=b, group_id="g"),
    "sink": lambda b: c.KafkaSink("t", bootstrap_servers=b),
    "admin": lambda b: c.KafkaAdmin(b),
}


@pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))
@pytest.mark.parametrize(
    ("servers", "separator", "fix"),
    [
        ("127.0.0.1:9092;127.0.0.1:9093", "a semicolon (';')", "'127.0.0.1:9092,127.0.0.1:9093'"),
        ("127.0.0.1:9092 127.0.0.1:9093", "whitespace", "'127.0.0.1:9092,127.0.0.1:9093'"),
        ("a:9092,b:9093; c:9094", "a semicolon (';')", "'a:9092,b:9093,c:9094'"),
        ("a:9092\tb:9093", "whitespace", "'a:9092,b:9093'"),
        ("host a:9092", "whitespace", "e.g. '127.0.0.1:9092,127.0.0.1:9093'"),
        (["a:9092;b:9093"], "a semicolon (';')", "'a:9092,b:9093'"),
    ],
)
def test_brokers_not_separated_by_commas_are_refused_when_built(
    make: Callable[[Any], Any], servers: Any, separator: str, fix: str
) -> None:
    with pytest.raises(ParameterError, match="bootstrap_servers") as info:
        make(servers)
    text = str(info.value)
    assert f"holds {separator}" in text and "separate brokers with commas" in text
    assert fix in text


@pytest.mark.parametrize(
    "servers",
    ["127.0.0.1:9092", "a:9092,b:9093", "a:9092, b:9093", " a:9092 ", "[::1]:9092", "[::1]:9092,h:1",
     "PLAINTEXT://broker:9093", ["a:9092", " b:9093"]],
)  # fmt: skip
def test_comma_separated_brokers_and_ipv6_still_pass(servers: Any) -> None:
    for make in MAKERS.values():
        make(servers)


@pytest.mark.parametrize(("servers", "words"), [(":9092", "is not 'host:port'"), ("a:0", "port 0")])
def test_each_entry_needs_a_host_and_a_port_in_range(servers: str, words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        MAKERS["source"](servers)


# -- a consumer closed mid-join wedged its group on the local broker ---------------------------------------
FAST = {"session.timeout.ms": 1000, "heartbeat.interval.ms": 250, "log_level": 0}


def _topic_with_events(broker: Any, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    KafkaAdmin(broker.bootstrap_servers, {"log_level": 0}).create_topic(topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "log_level": 0})
    for i in range(n):
        producer.produce(topic, value=b'{"event_id": "e%d", "timestamp": "2024-01-01T00:00:00Z"}' % i)
    assert producer.flush(10) == 0


def _poll_for(reader: KafkaSourceReader, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        reader.poll(100)


def test_a_reader_closed_while_joining_leaves_its_group_usable(kafka_broker: Any, unique_name: str) -> None:
    topic, group = f"joined-{unique_name}", f"g-{unique_name}"
    _topic_with_events(kafka_broker, topic, 500)
    source = KafkaSource(topic, bootstrap_servers=kafka_broker.bootstrap_servers, group_id=group, config=FAST)
    reader = source.open()
    _poll_for(reader, 0.1)  # tansu answers a first join after session.timeout.ms / 2
    assert not reader.assignment
    reader.close()
    bounded = KafkaSource(
        topic, bootstrap_servers=kafka_broker.bootstrap_servers, group_id=group, config=FAST, stop_at_end=True
    )
    sink = ListSink()
    pipeline = Pipeline(bounded, name="after_early_close")
    pipeline.to(sink)
    result = pipeline.run(progress=False, duration="20s")
    assert (result.status, len(sink.frame())) == ("finished", 500)


def _wedge(bootstrap: str, group: str, topic: str) -> None:
    """tansu's own gap, with confluent-kafka alone: a member that close()s in the middle of its first join."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **FAST}
    )
    consumer.subscribe([topic])
    end = time.monotonic() + 0.1
    while time.monotonic() < end:
        consumer.poll(0.05)
    assert not consumer.assignment()
    consumer.close()


@pytest.mark.parametrize("stop_at_end", [True, False])
def test_a_member_without_partitions_says_so_and_a_bounded_read_fails(
    kafka_broker: Any, unique_name: str, stop_at_end: bool, caplog: pytest.LogCaptureFixture
) -> None:
    topic, group = f"wedged-{unique_name}", f"g-{unique_name}"
    _topic_with_events(kafka_broker, topic, 10)
    _wedge(kafka_broker.bootstrap_servers, group, topic)
    source = KafkaSource(
        topic,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=group,
        config=FAST,
        stop_at_end=stop_at_end,
    )
    reader = source.open()
    shift = [0.0]
    reader._now = lambda: time.monotonic() + shift[0]  # the reader's clock for settling (see partitions())
    try:
        _poll_for(reader, 1.5)  # three times what a healthy first join takes on tansu
        assert not reader.assignment
        assert "no partition" not in caplog.text
        shift[0] = 3.0  # past 2 x session.timeout.ms + heartbeat.interval.ms = 2.25 s
        with caplog.at_level(logging.WARNING, logger="streamlab.connectors.kafka"):
            reader.poll(100)
            reader.poll(100)
        warnings = [r.getMessage() for r in caplog.records if "no partition" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert f"consumer group {group!r}" in warnings[0] and "use another group_id" in warnings[0]
        assert "stuck on the broker" in warnings[0]
        shift[0] = 11.0  # past max(2 x 2.25 s, 10 s)
        if stop_at_end:
            with pytest.raises(KafkaSourceError, match=r"bounded read \(stop_at_end=True\) never finishes"):
                reader.poll(100)
        else:
            assert reader.poll(100) is None
    finally:
        reader.close()


# -- a float64 key column (an integer column that met a missing value) --------------------------------------
def test_a_whole_number_float_key_is_written_as_the_integer_it_equals() -> None:
    sink = c.KafkaSink("t", bootstrap_servers="127.0.0.1:9092", key="k")
    ints = sink.encode(pd.DataFrame({"k": pd.Series([1, -3, 0], dtype="int64"), "v": [1, 2, 3]}))
    nullable = sink.encode(pd.DataFrame({"k": pd.Series([1, None], dtype="Int64"), "v": [1, 2]}))
    floats = sink.encode(pd.DataFrame({"k": [1.0, -3.0, -0.0, np.nan], "v": [1, 2, 3, 4]}))
    assert ints[1] == [b"1", b"-3", b"0"]
    assert floats[1] == [*ints[1], None]
    assert nullable[1] == [b"1", None]
    assert floats[0][0] == b'{"k":1.0,"v":1}'  # the JSON value keeps the float


@pytest.mark.parametrize(
    ("key", "expected"),
    [(1.5, b"1.5"), (np.float32(2.0), b"2"), (2.0**63, b"9223372036854775808"), (float("inf"), None),
     (1e300, str(int(1e300)).encode())],
)  # fmt: skip
def test_other_float_keys(key: Any, expected: bytes | None) -> None:
    sink = c.KafkaSink("t", bootstrap_servers="127.0.0.1:9092", key="k")
    keys = sink.encode(pd.DataFrame({"k": pd.Series([key], dtype=object)}))[1]
    if expected is None:  # an infinity has no integer: written as before
        from streamlab.serde import encode_value

        expected = encode_value(key)
    assert keys == [expected]
