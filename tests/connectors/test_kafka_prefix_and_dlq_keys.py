"""Two Kafka connector gaps, each pinned by tests that failed before.

* A broker written with a security prefix (``SASL_SSL://host:9093``) was accepted whatever the client's
  ``security.protocol``. librdkafka takes such a prefix only when it names the client's protocol, and
  otherwise drops that broker (it logs ``does not match security.protocol setting``), so the run failed
  only after its connect timeout, as if no broker answered. A mismatch is now a ParameterError of
  ``bootstrap_servers`` when the connector is built; a matching prefix is passed on to librdkafka.
* ``KafkaDeadLetterSink`` wrote every dead letter without a key, which a log-compacted DLQ topic
  (``cleanup.policy=compact``) refuses. A dead letter now keeps its record's key (as Kafka Connect's
  DLQ does), else gets its record's ``topic/partition/offset``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import streamlab.connectors as c
from streamlab.connectors.kafka import (
    KafkaDeadLetterSink,
    KafkaSink,
    KafkaSource,
    LocalKafkaBroker,
    create_topic,
)

from streamlab import Pipeline
from streamlab.errors import ParameterError
from streamlab.testing import ListSink

FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}

MAKERS: dict[str, Callable[[str, dict[str, Any]], object]] = {
    "source": lambda boot, config: c.KafkaSource("t", bootstrap_servers=boot, group_id="g", config=config),
    "sink": lambda boot, config: c.KafkaSink("t", bootstrap_servers=boot, config=config),
    "dead_letter": lambda boot, config: c.KafkaDeadLetterSink("t", bootstrap_servers=boot, config=config),
    "admin": lambda boot, config: c.KafkaAdmin(boot, config),
}
OWNERS = {
    "source": "KafkaSource",
    "sink": "KafkaSink",
    "dead_letter": "KafkaDeadLetterSink",
    "admin": "KafkaAdmin",
}


# ---------------------------------------------------------------------------------------------------
# 1. a broker's PROTOCOL:// prefix against security.protocol


@pytest.mark.parametrize("role", list(MAKERS))
@pytest.mark.parametrize(
    ("boot", "config", "said"),
    [
        ("SASL_SSL://b1:9093", {}, "security.protocol is not set"),
        (
            "b0:9092,SASL_SSL://b1:9093",
            {"security.protocol": "PLAINTEXT"},
            "security.protocol is 'PLAINTEXT'",
        ),
        ("ssl://b1:9093", {"security.protocol": "SASL_SSL"}, "security.protocol is 'SASL_SSL'"),
        ("PLAINTEXT://b1:9092", {"security.protocol": "ssl"}, "security.protocol is 'ssl'"),
    ],
)
def test_a_prefix_that_is_not_the_protocol_is_refused_when_built(
    role: str, boot: str, config: dict[str, Any], said: str
) -> None:
    with pytest.raises(ParameterError) as e:
        MAKERS[role](boot, config)
    error = e.value
    assert (error.owner, error.parameter) == (OWNERS[role], "bootstrap_servers")
    prefix = boot.rpartition("://")[0].split(",")[-1].upper()
    assert said in error.problem and f"names the protocol {prefix}" in error.problem
    assert error.fix.startswith(f"set security.protocol to {prefix}")
    plain = ",".join(b.rpartition("://")[2] for b in boot.split(","))
    assert error.fix.endswith(f"or write the broker without its prefix: {plain!r}")


@pytest.mark.parametrize("role", list(MAKERS))
def test_a_prefix_that_is_the_protocol_is_taken_as_given(role: str) -> None:
    for boot, config in (
        ("PLAINTEXT://b1:9092", {}),  # librdkafka's default protocol
        ("plaintext://b1:9092,b2:9092", {"security.protocol": "PLAINTEXT"}),
        ("sasl_ssl://b1:9093", {"security.protocol": "SASL_SSL"}),  # any case, as librdkafka reads it
        ("SSL://b1:9093", {"security.protocol": "${KAFKA_SECURITY_PROTOCOL}"}),  # known when connecting
        ("b1:9092", {"security.protocol": "SSL"}),
    ):
        built: Any = MAKERS[role](boot, config)
        assert built.bootstrap_servers == boot


def test_event_hubs_connectors_judge_the_prefix_with_the_protocol_they_set() -> None:
    hub = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=hub"
    local = c.EventHubSource(
        connection_string=hub, bootstrap_servers="PLAINTEXT://127.0.0.1:9092", security_protocol="PLAINTEXT"
    )
    assert local.consumer_config()["bootstrap.servers"] == "PLAINTEXT://127.0.0.1:9092"
    with pytest.raises(
        ParameterError, match="names the protocol SASL_SSL but security.protocol is 'PLAINTEXT'"
    ):
        c.EventHubSink(
            connection_string=hub,
            bootstrap_servers="SASL_SSL://127.0.0.1:9092",
            security_protocol="PLAINTEXT",
        )


class _Lines:
    """A client's ``logger``: its lines kept here, not written to stderr."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, level: int, fmt: str, *args: Any) -> None:
        self.lines.append(str(args[-1]) if args else fmt)


def test_librdkafka_drops_a_mismatched_prefix_and_takes_a_matching_one(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    """What the rule prevents (librdkafka's own log of the dropped broker), and that a matching prefix
    the connectors pass on reaches the broker: a record written and read back through it."""
    from confluent_kafka import Producer

    boot = kafka_broker.bootstrap_servers
    lines = _Lines()
    Producer({"bootstrap.servers": f"SASL_SSL://{boot}", "logger": lines}).flush(0)
    assert any("does not match security.protocol setting" in line for line in lines.lines), lines.lines

    topic = f"prefixed-{unique_name}"
    create_topic(boot, topic, partitions=1)
    sink = KafkaSink(topic, bootstrap_servers=f"PLAINTEXT://{boot}", value="n")
    writer = sink.open()
    writer.write_batch(pd.DataFrame({"n": [b"1", b"2"]}))
    writer.close()
    assert writer.delivered == 2
    p = Pipeline(
        KafkaSource(
            topic,
            bootstrap_servers=f"plaintext://{boot}",
            group_id=unique_name,
            stop_at_end=True,
            config=FAST_GROUP,
        ),
        name="read_back",
    )
    got = ListSink()
    p.to(got)
    assert p.run(progress=False, duration="30s").status == "finished"
    assert got.frame()["value"].tolist() == [b"1", b"2"]


# ---------------------------------------------------------------------------------------------------
# 2. dead letters carry a key, which a compacted DLQ topic requires


def test_a_dead_letter_keeps_its_records_key_else_gets_its_position() -> None:
    dlq = KafkaDeadLetterSink("dlq", bootstrap_servers="127.0.0.1:9092")
    batch = pd.DataFrame(
        {
            "raw": [b"{", b"[", None, b"x"],
            "reason": ["invalid JSON"] * 4,
            "key": [b"user-1", None, None, b""],
            "topic": ["events"] * 4,
            "partition": pd.array([0, 3, 3, 1], dtype="int32"),
            "offset": [41, 7, 8, 9],
        }
    )
    _, keys, headers = dlq.encode(batch)
    assert keys == [b"user-1", b"events/3/7", b"events/3/8", b""]  # an empty key is a key
    assert all(dict(h)["offset"] is not None for h in headers)  # the headers are as they were
    # no record key nor position (another source's dead letters): no key to give
    assert dlq.encode(pd.DataFrame({"raw": [b"{"], "reason": ["invalid JSON"]}))[1] == [None]
    assert dlq.encode(batch.assign(key=None, offset=None))[1] == [None] * 4


def test_dead_letters_reach_a_compacted_dlq_topic_with_their_keys(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    """The local broker does not enforce compaction's rule (it takes keyless records on a compacted
    topic; a Kafka broker refuses them with INVALID_RECORD), so this checks what a Kafka broker would
    judge: the key of every dead letter written to a compacted DLQ topic."""
    from confluent_kafka import Producer

    boot = kafka_broker.bootstrap_servers
    events, dlq = f"events-{unique_name}", f"dlq-{unique_name}"
    create_topic(boot, events, partitions=1)
    create_topic(boot, dlq, partitions=1, topic_config={"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": boot, "logger": _Lines()})
    for key, value in [(b"keyed", b"{oops"), (None, b"[1]"), (None, None), (b"good", b'{"n": 1}')]:
        producer.produce(events, key=key, value=value)
    assert producer.flush(15) == 0

    pipeline = Pipeline(
        KafkaSource(
            events, bootstrap_servers=boot, group_id=unique_name, stop_at_end=True, config=FAST_GROUP
        ),
        name="dead_letters",
    )
    pipeline.parse({"n": "int64"}, time=None).dead_letter.to(
        KafkaDeadLetterSink(dlq, bootstrap_servers=boot), step_id="dlq"
    )
    assert pipeline.run(progress=False, duration="30s").status == "finished"

    back = Pipeline(
        KafkaSource(
            dlq, bootstrap_servers=boot, group_id=f"r-{unique_name}", stop_at_end=True, config=FAST_GROUP
        ),
        name="read_back",
    )
    got = ListSink()
    back.to(got)
    assert back.run(progress=False, duration="30s").status == "finished"
    frame = got.frame()
    assert frame["key"].tolist() == [b"keyed", f"{events}/0/1".encode(), f"{events}/0/2".encode()]
    assert frame["value"].tolist() == [b"{oops", b"[1]", None]
