"""KafkaSourceReader.close() from another thread than the one consuming, against a real broker.

A commit waiting for its answer (``broker_timeout=None``: as long as it takes) calls consume() until the
answer comes. When close() ran on another thread meanwhile, the client's close waited for that thread's
consume() calls, which never stopped: close() gave up after its 10 s limit, the commit never returned,
and the member never left its group. A closed reader now starts no consume(): the commit raises
KafkaCommitError at once, and close() waits only for the consume() then running (its timeout).
"""

from __future__ import annotations

import threading
import time

import pytest
from streamlab.connectors.kafka import KafkaSource, KafkaSourceReader, LocalKafkaBroker, create_topic
from streamlab.connectors.kafka.errors import KafkaCommitError

from streamlab.testing import wait_for

FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}


def _produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(topic, value=b"%d" % i)
    assert p.flush(20) == 0


def test_close_on_another_thread_ends_a_commit_that_keeps_consuming(
    kafka_broker: LocalKafkaBroker, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"close-{unique_name}"
    create_topic(kafka_broker.bootstrap_servers, topic, partitions=1)
    _produce(kafka_broker.bootstrap_servers, topic, 20)
    # the commit's answer never reaches the reader (as from a broker that stopped answering commits),
    # so the commit keeps calling consume() for as long as broker_timeout=None lets it
    monkeypatch.setattr(KafkaSourceReader, "_on_commit", lambda self, err, partitions: None)
    source = KafkaSource(
        topic,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=f"g-{unique_name}",
        config=FAST_GROUP,
        broker_timeout=None,
    )
    reader = source.open()
    got = [0]

    def read_all() -> bool:
        batch = reader.poll(100)
        got[0] += 0 if batch is None else len(batch)
        return got[0] == 20

    wait_for(read_all, timeout=30, what="the 20 records")
    outcome: list[BaseException | None] = []

    def commit() -> None:
        try:
            reader.commit(reader.snapshot())
            outcome.append(None)
        except BaseException as e:  # what the commit ended with is the test's subject
            outcome.append(e)

    committer = threading.Thread(target=commit, daemon=True)
    committer.start()
    wait_for(lambda: reader._commits_sent == 1, timeout=10, what="the commit sent")
    assert committer.is_alive()  # waiting for the answer, consuming

    started = time.monotonic()
    closer = threading.Thread(target=reader.close, daemon=True)
    closer.start()
    closer.join(8)  # before: 10 s (close gave up on the client's close), the commit never ended
    took = time.monotonic() - started
    assert not closer.is_alive(), "close() did not return within 8 s"
    committer.join(2)
    assert not committer.is_alive(), "the commit kept consuming after close()"
    assert took < 5, f"close() took {took:.1f} s"
    [error] = outcome
    assert isinstance(error, KafkaCommitError) and "closed while committing" in str(error)
    with pytest.raises(RuntimeError, match="reader is closed"):
        reader.poll(10)


def test_close_on_another_thread_while_polls_go_on_returns_and_stops_them(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    topic = f"close-{unique_name}"
    create_topic(kafka_broker.bootstrap_servers, topic, partitions=2)
    _produce(kafka_broker.bootstrap_servers, topic, 50)
    source = KafkaSource(
        topic,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=f"g-{unique_name}",
        config=FAST_GROUP,
        poll_timeout=1.0,  # each consume() waits up to 1 s: close() waits for the one running
    )
    reader = source.open()
    stop, errors, read = threading.Event(), [], [0]

    def loop() -> None:
        while not stop.is_set():
            try:
                batch = reader.poll(10)
            except RuntimeError as e:
                errors.append(e)
                return
            read[0] += 0 if batch is None else len(batch)

    poller = threading.Thread(target=loop, daemon=True)
    poller.start()
    wait_for(lambda: read[0] == 50, timeout=30, what="the 50 records")
    started = time.monotonic()
    closer = threading.Thread(target=reader.close, daemon=True)
    closer.start()
    closer.join(8)
    assert not closer.is_alive() and time.monotonic() - started < 5
    poller.join(3)
    stop.set()
    assert not poller.is_alive() and "reader is closed" in str(errors[0])
