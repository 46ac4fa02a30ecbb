"""A Kafka reader's ``lag()``, which the run's metrics call from other threads (a live view polling a run
from its start, a test waiting for a count), calls the client only while no thread is inside
``consume()``; otherwise it reads what the consuming thread noted after its last ``consume()``. The
client's cached ``get_watermark_offsets`` holds the GIL while it waits for librdkafka's locks; called
from another thread while ``consume()`` served the group's rebalance (whose callbacks need the GIL), each
waited for the other until a librdkafka timeout, and a run polled from its start read 8,000 records in
25 s instead of 3.3 s (tests/connectors/test_kafka_watermarks.py took 51 s). A paused run, which polls
no more, still sees its lag grow (notebook 11's silent-lag demo)."""

from __future__ import annotations

import threading
from typing import Any

from streamlab.connectors import KafkaSource, LocalKafkaBroker
from streamlab.connectors.kafka import KafkaSourceReader, create_topic

from streamlab.testing import wait_for
from tests.connectors.test_kafka import produce_raw

FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "log_level": 3}


class WatchedClient:
    """The reader's client, recording which thread calls each of its methods while ``watching``, and how
    many threads were inside ``consume()`` then."""

    def __init__(self, inner: Any, reader: Any) -> None:
        self.inner, self.reader, self.calls, self.watching = inner, reader, [], True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.watching:
                self.calls.append((name, threading.get_ident(), self.reader._consuming))
            return attr(*args, **kwargs)

        return call


def topic_reader(broker: LocalKafkaBroker, topic: str, partitions: int, n: int) -> KafkaSourceReader:
    """A reader of a new topic of ``n`` records keyed apart over ``partitions``."""
    boot = broker.bootstrap_servers
    create_topic(boot, topic, partitions=partitions)
    produce_raw(boot, topic, [(f"k{i}".encode(), b"x") for i in range(n)])
    return KafkaSource(topic, bootstrap_servers=boot, group_id=f"g-{topic}", config=FAST_GROUP).open()


def test_lag_from_another_thread_never_calls_the_client_during_consume(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    reader = topic_reader(kafka_broker, unique_name, partitions=3, n=300)
    client = WatchedClient(reader._consumer, reader)
    reader._consumer = client
    read: list[int] = []
    consumer_thread: list[int] = []

    def consume() -> None:
        consumer_thread.append(threading.get_ident())

        def more() -> bool:
            batch = reader.poll(50)
            read.append(0 if batch is None else len(batch))
            return sum(read) >= 300 and reader.lag() == 0

        wait_for(more, timeout=60, what="300 records, and lag 0")

    thread = threading.Thread(target=consume)
    lags = []
    try:
        thread.start()
        while thread.is_alive():  # from the start: through the group's join and the first fetches
            lags.append(reader.lag())
        thread.join()
        client.watching = False
    finally:
        reader.close()
    assert sum(read) == 300 and len(lags) > 100
    assert {c[0] for c in client.calls} >= {"consume", "get_watermark_offsets"}
    others = [(name, inside) for name, ident, inside in client.calls if ident != consumer_thread[0]]
    assert others and {name for name, _ in others} <= {"get_watermark_offsets", "position"}
    assert [x for x in others if x[1]] == []  # none while the consuming thread was inside consume()


def test_a_paused_reader_shows_the_records_that_arrive(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    reader = topic_reader(kafka_broker, unique_name, partitions=2, n=20)
    try:
        read = []
        wait_for(
            lambda: read.append(len(b) if (b := reader.poll(100)) is not None else 0) or sum(read) >= 20,
            timeout=60,
        )
        wait_for(lambda: reader.lag() == 0, timeout=10, what="lag 0")
        produce_raw(
            kafka_broker.bootstrap_servers, unique_name, [(f"k{i}".encode(), b"y") for i in range(50)]
        )
        # no poll from here: the client fetches in the background, and lag() asks it
        wait_for(lambda: reader.lag() == 50, timeout=30, what="lag 50 without a poll")
    finally:
        reader.close()
