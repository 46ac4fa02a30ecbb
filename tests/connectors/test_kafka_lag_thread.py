"""A Kafka reader's ``lag()``, which the run's metrics call from other threads (a live view polling a run
from its start, a test waiting for a count), makes no call to the client: it reads what the consuming
thread noted. The client's cached ``get_watermark_offsets`` holds the GIL while it waits for librdkafka's
locks; called from another thread while ``consume()`` served the group's rebalance (whose callbacks need
the GIL), each waited for the other until a librdkafka timeout, and a run polled from its start read
8,000 records in 25 s instead of 3.5 s (tests/connectors/test_kafka_watermarks.py took 51 s)."""

from __future__ import annotations

import threading
from typing import Any

from streamlab.connectors import KafkaSource, LocalKafkaBroker
from streamlab.connectors.kafka import create_topic

from streamlab.testing import wait_for
from tests.connectors.test_kafka import produce_raw

FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "log_level": 3}


class WatchedClient:
    """The reader's client, recording which thread calls each of its methods while ``watching``."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self.watching = inner, [], True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.watching:
                self.calls.append((name, threading.get_ident()))
            return attr(*args, **kwargs)

        return call


def test_lag_from_another_thread_calls_no_client_method(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    boot = kafka_broker.bootstrap_servers
    create_topic(boot, unique_name, partitions=3)
    produce_raw(boot, unique_name, [(f"k{i}".encode(), b"x") for i in range(300)])
    reader = KafkaSource(
        unique_name, bootstrap_servers=boot, group_id=f"g-{unique_name}", config=FAST_GROUP
    ).open()
    client = WatchedClient(reader._consumer)
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
    assert {name for name, _ in client.calls} >= {"consume", "get_watermark_offsets"}
    assert {ident for _, ident in client.calls} == set(consumer_thread)  # none from lag()'s thread
