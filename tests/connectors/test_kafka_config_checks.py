"""A Kafka ``config`` is judged when the source or sink is built, not when it first connects.

Before, ``fetch.min.bytes`` above ``fetch.max.bytes`` (every fetch then waits ``fetch.wait.max.ms``),
``heartbeat.interval.ms`` not below ``session.timeout.ms`` and the pairs librdkafka itself refuses when a
client is made (``receive.message.max.bytes`` below ``fetch.max.bytes`` + 512, ``session.timeout.ms``
above ``max.poll.interval.ms``, ``linger.ms`` not below ``message.timeout.ms``, ...) were accepted, and
a misspelled setting (``fetch.min.byte``) failed only at connect, without a hint."""

from __future__ import annotations

import select
import socket
import sys
from collections import OrderedDict
from typing import Any

import pytest
import streamlab.connectors as c
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.connectors.eventhub.sink import _SERVICE_PRODUCER_DEFAULTS
from streamlab.connectors.eventhub.source import _SERVICE_CONSUMER_DEFAULTS
from streamlab.connectors.kafka import _client
from streamlab.connectors.kafka._client import _Discard
from streamlab.connectors.kafka._config import check_config

from streamlab.errors import ParameterError

BROKERS = "127.0.0.1:9092"


def source(config: dict[str, Any]) -> c.KafkaSource:
    return c.KafkaSource("events", bootstrap_servers=BROKERS, group_id="g", config=config)


def sink(config: dict[str, Any], **kwargs: Any) -> c.KafkaSink:
    return c.KafkaSink("events", bootstrap_servers=BROKERS, config=config, **kwargs)


@pytest.mark.parametrize(
    ("make", "config", "words"),
    [
        (
            source,
            {"fetch.min.bytes": 10_000_000, "fetch.max.bytes": 1_000_000},
            "fetch.min.bytes exceeds fetch.max.bytes",
        ),
        (source, {"fetch.min.bytes": 60_000_000}, "(fetch.max.bytes is 52428800 by default)"),
        (
            source,
            {"message.max.bytes": 2_000_000, "fetch.max.bytes": 1_000_000},
            "message.max.bytes exceeds fetch.max.bytes",
        ),
        (
            source,
            {"fetch.max.bytes": 2_000_000, "receive.message.max.bytes": 1_000_000},
            "fetch.max.bytes + 512 exceeds receive.message.max.bytes",
        ),
        (source, {"receive.message.max.bytes": 1_000_000}, "(fetch.max.bytes is 52428800 by default)"),
        (source, {"session.timeout.ms": 400_000}, "(max.poll.interval.ms is 300000 by default)"),
        (source, {"heartbeat.interval.ms": 10_000}, "heartbeat.interval.ms is not below session.timeout.ms"),
        (source, {"fetch.wait.max.ms": 60_000}, "fetch.wait.max.ms + 1000 exceeds socket.timeout.ms"),
        (source, {"socket.timeout.ms": 1000}, "(fetch.wait.max.ms is 100 by default)"),  # the source's own
        (
            sink,
            {"message.timeout.ms": 5},
            "linger.ms is not below message.timeout.ms (linger.ms is 5 by default)",
        ),
        (
            sink,
            {"queue.buffering.max.ms": 1000, "delivery.timeout.ms": 500},
            "queue.buffering.max.ms is not below",
        ),
        (
            sink,
            {"queue.buffering.max.kbytes": 512},
            "message.max.bytes exceeds queue.buffering.max.kbytes x 1024 (message.max.bytes is 1000000 "
            "by default); a record of message.max.bytes (which librdkafka sends) could never enter",
        ),
        (
            sink,
            {"message.max.bytes": 3_000_000, "queue.buffering.max.kbytes": 2048},
            "message.max.bytes exceeds queue.buffering.max.kbytes x 1024;",
        ),
    ],
)
def test_a_pair_of_settings_out_of_order_is_refused_naming_both_and_the_fix(make, config, words) -> None:
    with pytest.raises(ParameterError) as e:
        make(config)
    assert e.value.parameter == "config" and words in e.value.problem
    assert e.value.fix.startswith("make ") and "e.g. config: {" in e.value.fix


def test_consumer_rules_do_not_apply_to_a_sink_nor_producer_rules_to_a_source() -> None:
    assert sink({"fetch.min.bytes": 10_000_000, "fetch.max.bytes": 1_000_000}).config["fetch.min.bytes"]
    assert source({"message.timeout.ms": 1}).config == {"message.timeout.ms": 1}
    assert source({"queue.buffering.max.kbytes": 1}).config == {"queue.buffering.max.kbytes": 1}
    assert sink({"queue.buffering.max.kbytes": 977}).config == {"queue.buffering.max.kbytes": 977}
    assert sink({"message.timeout.ms": 0}).config == {"message.timeout.ms": 0}  # 0: no timeout


ORDERED = ["message.max.bytes", "fetch.max.bytes", "receive.message.max.bytes", "session.timeout.ms"]


@settings(max_examples=80, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "message.max.bytes": st.integers(1000, 5_000_000),
            "fetch.max.bytes": st.integers(1000, 5_000_000),
            "receive.message.max.bytes": st.integers(1000, 5_000_000),
            "fetch.min.bytes": st.integers(1, 5_000_000),
            "session.timeout.ms": st.integers(1, 600_000),
            "max.poll.interval.ms": st.integers(1, 600_000),
            "retry.backoff.ms": st.integers(1, 5000),
            "retry.backoff.max.ms": st.integers(1, 5000),
        },
    )
)
def test_the_rules_refuse_every_consumer_config_librdkafka_refuses(config: dict[str, int]) -> None:
    # without the client (check_config alone): nothing it takes fails when librdkafka makes the consumer
    import confluent_kafka

    try:
        check_config("KafkaSource", config, {}, "consumer", {"session.timeout.ms": 6000})
    except ParameterError:
        return
    confluent_kafka.Consumer(
        {"group.id": "g", "session.timeout.ms": 6000, **config, "logger": _Discard()}
    ).close()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_the_rules_refuse_every_producer_linger_librdkafka_refuses(linger: int, timeout: int) -> None:
    import confluent_kafka

    config = {"linger.ms": linger, "message.timeout.ms": timeout}
    try:
        check_config("KafkaSink", config, {}, "producer")
    except ParameterError:
        return
    confluent_kafka.Producer({**config, "logger": _Discard()})


def test_a_record_larger_than_the_producers_queue_never_enters_it() -> None:
    """What the queue rule guards against, in librdkafka itself: with queue.buffering.max.kbytes below a
    record, produce() says the queue is full even when it is empty, so a sink writing records up to
    message.max.bytes waited its flush_timeout (30 s against a live broker) and failed with "the Kafka
    cluster takes no records". A record up to the queue's size enters it."""
    import confluent_kafka

    producer = confluent_kafka.Producer(
        {"bootstrap.servers": BROKERS, "queue.buffering.max.kbytes": 2, "logger": _Discard()}
    )
    producer.produce("events", b"x" * 1500)
    producer.purge()
    with pytest.raises(BufferError, match="Queue full"):
        producer.produce("events", b"x" * 3000)
    with pytest.raises(ParameterError, match="queue.buffering.max.kbytes"):
        sink({"queue.buffering.max.kbytes": 2})


@pytest.mark.parametrize(
    ("make", "name", "hint"),
    [
        (source, "fetch.min.byte", "did you mean 'fetch.min.bytes'?"),
        (source, "fetch.max.wait.ms", "did you mean 'fetch.wait.max.ms'?"),  # the Java client's order
        (sink, "lingerms", "did you mean 'linger.ms'?"),
        (sink, "max.request.size", "max.request.size is the Java client's name: write message.max.bytes"),
    ],
)
def test_a_misspelled_setting_is_refused_when_built_with_did_you_mean(make, name, hint) -> None:
    with pytest.raises(ParameterError) as e:
        make({name: 1})
    assert f'No such configuration property: "{name}"' in e.value.problem and e.value.fix.startswith(hint)


def test_a_referenced_secret_has_its_name_checked_not_its_value() -> None:
    with pytest.raises(ParameterError) as e:
        source({"sasl.pasword": "${KAFKA_SASL_PASSWORD}"})
    assert e.value.fix.startswith("did you mean 'sasl.password'?")
    ok = {
        "fetch.max.bytes": "${FETCH_MAX}",
        "security.protocol": "SASL_SSL",
        "sasl.password": "${KAFKA_SASL_PASSWORD}",
    }
    assert source(ok).config == ok  # resolved when connecting, not now


def test_a_value_librdkafka_refuses_and_the_idempotent_sinks_acks_are_refused_when_built() -> None:
    with pytest.raises(ParameterError, match='Invalid value "read_comitted" for configuration property'):
        source({"isolation.level": "read_comitted"})
    with pytest.raises(ParameterError) as e:
        sink({"acks": 1})
    assert "`acks` must be set to `all`" in e.value.problem and e.value.fix.startswith(
        "pass idempotence=False"
    )
    assert sink({"acks": 1}, idempotence=False).config == {"acks": 1}


# settings the project itself gives the clients, and real ones users write
REAL = {
    "isolation.level": "read_committed",
    "client.id": "fraud-detector",
    "max.poll.interval.ms": 600_000,
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "svc",
    "sasl.password": "${KAFKA_SASL_PASSWORD}",
    "ssl.ca.location": "/etc/does-not-exist/ca.pem",  # read where it connects, not where it is built
    "statistics.interval.ms": 5000,
    "debug": "broker,fetch",
    "topic.metadata.refresh.interval.ms": 60_000,
    "error_cb": print,
}
PRODUCER = {"acks": "all", "batch.size": 100_000, "compression.level": 3, "partitioner": "murmur2_random"}


def test_valid_settings_and_the_projects_own_are_taken() -> None:
    assert source(REAL).config == REAL
    assert source({**_SERVICE_CONSUMER_DEFAULTS, "enable.partition.eof": True}).config[
        "heartbeat.interval.ms"
    ]
    assert sink({**REAL, **PRODUCER, **_SERVICE_PRODUCER_DEFAULTS}).config["acks"] == "all"
    c.KafkaSource("e", bootstrap_servers=BROKERS, group_id="g", stop_at_end=True, start="latest")
    c.KafkaAdmin(BROKERS, {"client.id": "admin", "request.timeout.ms": 5000})
    hub = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=hub"
    c.EventHubSource(connection_string=hub)
    c.EventHubSink(connection_string=hub)


def test_checking_connects_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _client, "_accepted", OrderedDict(), raising=False
    )  # judged here, not remembered from before
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        brokers = f"127.0.0.1:{listener.getsockname()[1]}"
        c.KafkaSource("events", bootstrap_servers=brokers, group_id="g")
        c.KafkaSink("events", bootstrap_servers=brokers)
        c.KafkaAdmin(brokers)
        # the clients were closed before the constructors returned: a connection would be queued now
        assert select.select([listener], [], [], 0)[0] == []


def test_without_the_client_installed_the_rules_still_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    assert source({"fetch.min.byte": 1}).config == {"fetch.min.byte": 1}  # librdkafka judges it at connect
    with pytest.raises(ParameterError, match="fetch.min.bytes exceeds fetch.max.bytes"):
        source({"fetch.min.bytes": 10_000_000, "fetch.max.bytes": 1_000_000})


# The throwaway client that judges a config was built on every construction; a config librdkafka accepted
# is now remembered (bounded, by role and settings, secrets as a keyed digest only).
SECRET = "hunter2-not-in-the-cache"


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The roles of the clients built from now on, with nothing remembered before."""
    import confluent_kafka

    monkeypatch.setattr(_client, "_accepted", OrderedDict(), raising=False)
    built: list[str] = []
    for role, real in (("consumer", confluent_kafka.Consumer), ("producer", confluent_kafka.Producer)):

        def build(conf: dict[str, Any], role: str = role, real: Any = real) -> Any:
            built.append(role)
            return real(conf)

        monkeypatch.setattr(confluent_kafka, role.capitalize(), build)
    return built


def test_a_second_construction_with_the_same_config_builds_no_client(clients: list[str]) -> None:
    config = {
        "client.id": "a",
        "security.protocol": "SASL_SSL",
        "sasl.username": "svc",
        "sasl.password": SECRET,
    }
    source(config)
    assert clients == ["consumer"]
    source(dict(config))  # an equal config, another dict
    c.KafkaSource(
        "other", bootstrap_servers="127.0.0.2:9092", group_id="g", config=config
    )  # brokers unjudged
    assert clients == ["consumer"]
    source({**config, "client.id": "b"})  # another config
    sink(config)  # another role
    sink(config)
    assert clients == ["consumer", "consumer", "producer"]
    assert SECRET not in repr(list(_client._accepted))  # the password is kept as a keyed digest only


def test_a_value_of_another_type_is_judged_again(clients: list[str]) -> None:
    source({"enable.partition.eof": True})
    source({"enable.partition.eof": 1})  # equal in Python, another text for librdkafka
    assert clients == ["consumer", "consumer"]


def test_a_refusal_is_not_remembered_and_the_cache_is_bounded(
    clients: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        with pytest.raises(ParameterError, match="fetch.min.byte"):
            source({"fetch.min.byte": 1})
    assert clients == ["consumer", "consumer"]
    monkeypatch.setattr(_client, "ACCEPTED_MAX", 2)
    for n in range(3):
        source({"client.id": f"c{n}"})
    assert len(_client._accepted) == 2
    source({"client.id": "c0"})  # the least recently used, forgotten: judged again
    assert clients.count("consumer") == 6
