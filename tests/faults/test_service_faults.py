"""Stalled and unreachable Pub/Sub and Kinesis endpoints: every call is bounded and its error names
the service, what was tried and for how long.

A *stalled* endpoint is a socket that accepts TCP connections and never answers (what a frozen process
looks like to a client); an *unreachable* one is a port where nothing listens.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
from streamlab.connectors._local_servers import find_free_port, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]


@pytest.fixture
def stalled() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a listening socket nobody accepts from: connects succeed, nothing answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"127.0.0.1:{s.getsockname()[1]}"


def nowhere() -> str:
    return f"127.0.0.1:{find_free_port()}"


def bounded(seconds: float) -> object:
    """Context manager asserting the block took less than ``seconds``."""

    class _Timer:
        def __enter__(self) -> None:
            self.started = time.monotonic()

        def __exit__(self, *exc: object) -> None:
            took = time.monotonic() - self.started
            assert took < seconds, f"took {took:.1f} s, bound {seconds} s"

    return _Timer()


# --- Pub/Sub -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["stalled", "unreachable"])
def test_pubsub_source_on_a_dead_endpoint_fails_at_open_within_timeout(
    where: str, request: pytest.FixtureRequest
) -> None:
    from streamlab.connectors.pubsub import PubSubSource

    host = request.getfixturevalue("stalled") if where == "stalled" else nowhere()
    source = PubSubSource("s", project="p", emulator_host=host, timeout=2)
    with (
        bounded(5),
        pytest.raises(RuntimeError, match=rf"emulator at {host} did not answer within timeout=2 s"),
    ):
        source.open()  # streaming pull alone would retry forever and read nothing


def test_pubsub_flush_to_a_stalled_endpoint_is_bounded_in_all(stalled: str) -> None:
    """One deadline for the whole flush: 20 unconfirmed messages do not wait 20 timeouts."""
    from streamlab.connectors.pubsub import PubSubSink

    writer = PubSubSink("t", project="p", emulator_host=stalled, timeout=2).open()
    writer.write_batch(pd.DataFrame({"n": range(20)}))
    with bounded(5), pytest.raises(RuntimeError, match=rf"20 of 20 .* {stalled} within 2 s"):
        writer.flush()
    with bounded(5):
        writer.close()


def test_pubsub_ack_to_a_stopped_emulator_fails_within_timeout() -> None:
    """The client's default retry tries an unreachable service for 60 s whatever timeout is passed."""
    from google.cloud import pubsub_v1
    from streamlab.connectors.pubsub import PubSubSource, create_subscription, create_topic
    from streamlab.connectors.pubsub_emulator import PubSubEmulator, emulator_client_kwargs

    emulator = PubSubEmulator().start()
    try:
        host, name = emulator.host, f"acks-{uuid.uuid4().hex[:8]}"
        topic = create_topic(name, project="p", emulator_host=host)
        sub = create_subscription(f"{name}-sub", topic, project="p", emulator_host=host)
        publisher = pubsub_v1.PublisherClient(**emulator_client_kwargs(host, "publisher"))
        for i in range(3):
            publisher.publish(topic, b"m%d" % i).result(timeout=10)
        publisher.stop()
        reader = PubSubSource(sub, emulator_host=host, timeout=2).open()
        got: list[pd.DataFrame] = []

        def polled() -> bool:
            batch = reader.poll(10)
            if batch is not None:
                got.append(batch)
            return sum(len(b) for b in got) >= 3

        wait_for(polled, timeout=20, what="3 messages")
    finally:
        emulator.stop()
    with bounded(5), pytest.raises(RuntimeError, match=rf"acknowledging 3 messages to .*{host}.* within 2 s"):
        reader.commit(reader.snapshot())
    assert len(reader.snapshot()) == 3  # still uncommitted: Pub/Sub delivers them again
    with bounded(10):
        reader.close()


# --- Kinesis -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["stalled", "unreachable"])
def test_kinesis_source_on_a_dead_endpoint_fails_within_attempts_times_timeout(
    where: str, request: pytest.FixtureRequest
) -> None:
    from streamlab.connectors.kinesis import KinesisSource

    url = "http://" + (request.getfixturevalue("stalled") if where == "stalled" else nowhere())
    source = KinesisSource("clicks", endpoint_url=url, timeout=1)
    with bounded(8), pytest.raises(RuntimeError, match=rf"Kinesis at {url} did not answer list_shards"):
        source.open()  # botocore's default: 60 s per read, retried


def test_kinesis_sink_flush_to_a_stalled_endpoint_is_bounded(stalled: str) -> None:
    from streamlab.connectors.kinesis import KinesisSink

    url = f"http://{stalled}"
    writer = KinesisSink("alerts", partition_key="k", endpoint_url=url, timeout=1).open()
    writer.write_batch(pd.DataFrame({"k": ["a", "b"], "n": [1, 2]}))
    with bounded(10), pytest.raises(RuntimeError, match=rf"Kinesis at {url} did not answer put_records"):
        writer.flush()


# --- Redis ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["metrics", "stream"])
def test_redis_sink_on_a_stalled_server_fails_within_timeout(kind: str, stalled: str) -> None:
    """redis-py waits forever by default on a server that accepted the connection and never answers."""
    from streamlab.connectors.redis import RedisMetricsSink, RedisStreamSink

    url = f"redis://:hunter2@{stalled}/0"
    sink = (
        RedisMetricsSink(url, key_template="m:{k}", fields=["n"], timeout=1)
        if kind == "metrics"
        else RedisStreamSink(url, "events", timeout=1)
    )
    writer = sink.open()
    with bounded(5), pytest.raises(RuntimeError, match=rf"Redis at {stalled} did not complete") as info:
        writer.write_batch(pd.DataFrame({"k": ["a"], "n": [1]}))
    assert "hunter2" not in str(info.value)
    writer.close()
