"""Stalled and unreachable Pub/Sub and Kinesis endpoints: every call is bounded and its error names
the service, what was tried and for how long.

A *stalled* endpoint is a socket that accepts TCP connections and never answers (what a frozen process
looks like to a client); an *unreachable* one is a port where nothing listens.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab.local import LocalServer
from streamlab.testing import find_free_port, wait_for

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
    from streamlab.connectors.pubsub._client import import_pubsub as _pubsub

    host = request.getfixturevalue("stalled") if where == "stalled" else nowhere()
    source = PubSubSource("s", project="p", emulator_host=host, timeout=2)
    _pubsub()  # the client's first import takes seconds on a loaded machine; it is not the wait measured
    with (
        bounded(5),
        pytest.raises(RuntimeError, match=rf"emulator at {host} did not answer within timeout=2 s"),
    ):
        source.open()  # streaming pull alone would retry forever and read nothing


@pytest.mark.parametrize("what", ["topic", "subscription"])
@pytest.mark.parametrize("where", ["stalled", "unreachable"])
def test_pubsub_create_on_a_dead_endpoint_fails_within_timeout(
    what: str, where: str, request: pytest.FixtureRequest
) -> None:
    """create_topic/create_subscription waited on a stalled emulator without end (over 200 s here)."""
    from streamlab.connectors.pubsub import create_subscription, create_topic
    from streamlab.connectors.pubsub._client import import_pubsub as _pubsub

    host = request.getfixturevalue("stalled") if where == "stalled" else nowhere()
    _pubsub()  # the client's first import is not the wait measured
    with (
        bounded(6),
        pytest.raises(
            RuntimeError, match=rf"create_{what}\(.*emulator at {host} did not answer within timeout=2 s"
        ),
    ):
        if what == "topic":
            create_topic("t", project="p", emulator_host=host, timeout=2)
        else:
            create_subscription("s", "t", project="p", emulator_host=host, timeout=2)


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

    from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs

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


# --- Pub/Sub outage after open (the emulator in its own process, stopped or frozen) --------------------

SERVICE_TIMEOUT = 2.0  # what the tests give a silent Pub/Sub service before the read fails


def pubsub_subscription(host: str, messages: int) -> str:
    """A new topic and subscription on ``host`` with ``messages`` messages published; the subscription."""
    from google.cloud import pubsub_v1
    from streamlab.connectors.pubsub import create_subscription, create_topic

    from streamlab.local.pubsub import emulator_client_kwargs

    name = f"outage-{uuid.uuid4().hex[:8]}"
    topic = create_topic(name, project="p", emulator_host=host)
    sub = create_subscription(f"{name}-sub", topic, project="p", emulator_host=host)
    publisher = pubsub_v1.PublisherClient(**emulator_client_kwargs(host, "publisher"))
    try:
        for i in range(messages):
            publisher.publish(topic, b'{"n": %d}' % i).result(timeout=10)
    finally:
        publisher.stop()
    return sub


def read_all(reader: Any, n: int) -> None:
    got = [0]

    def polled() -> bool:
        batch = reader.poll(100)
        got[0] += 0 if batch is None else len(batch)
        return got[0] >= n

    wait_for(polled, timeout=20, what=f"{n} messages")


def outage(server: LocalServer, how: str) -> None:
    assert server.pid is not None
    if how == "stopped":
        server.stop()
    else:
        os.kill(server.pid, signal.SIGSTOP)


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_pubsub_outage_after_open_fails_within_service_timeout(how: str, pubsub_process: LocalServer) -> None:
    """Streaming pull retries a dead service forever in silence; the reader turns it into an error."""
    from streamlab.connectors.pubsub import PubSubSource, PubSubUnreachableError

    host = pubsub_process.address
    sub = pubsub_subscription(host, 3)
    reader = PubSubSource(sub, emulator_host=host, timeout=1, service_timeout=SERVICE_TIMEOUT).open()
    try:
        read_all(reader, 3)
        reader.commit(reader.snapshot())  # the service answers: acknowledged
        started = time.monotonic()  # the last answer
        outage(pubsub_process, how)
        caught: list[PubSubUnreachableError] = []

        def failed() -> bool:
            try:
                reader.poll(100)
            except PubSubUnreachableError as exc:
                caught.append(exc)
                return True
            return False

        wait_for(failed, timeout=SERVICE_TIMEOUT + 10, interval=0.05, what="the outage to be reported")
        took = time.monotonic() - started
        # the stated bound: service_timeout after the last answer (the acknowledge), plus a poll or two;
        # a stopped emulator may end the stream sooner, a frozen one is silence until the bound
        assert took < SERVICE_TIMEOUT + 1.5, took
        if how == "frozen":
            assert took >= SERVICE_TIMEOUT - 0.5, took
        message = str(caught[0])
        assert sub in message and f"emulator at {host}" in message and "emulator_host" in message
        # silent (frozen, or a stopped one's stream still retrying), or the stream ended by the shutdown
        assert "service_timeout=2 s" in message or "stopped or dropped the stream" in message, message
        with pytest.raises(PubSubUnreachableError):
            reader.poll(100)  # it stays failed while the service is silent
    finally:
        with bounded(2):
            reader.close()  # does not wait on a service found unresponsive


def test_pubsub_idle_subscription_on_a_live_service_is_not_an_outage(pubsub_process: LocalServer) -> None:
    """Health checks answer while nothing is published: no error, however long the silence."""
    from streamlab.connectors.pubsub import PubSubSource

    host = pubsub_process.address
    sub = pubsub_subscription(host, 0)
    # silence of more than twice service_timeout; 3 s leaves the emulator's answer time on a loaded
    # machine (a 1 s timeout failed in a CI run whose cores were busy: the probe took 1.2 s)
    reader = PubSubSource(sub, emulator_host=host, timeout=1, service_timeout=3.0).open()
    try:
        started = time.monotonic()
        wait_for(
            lambda: reader.poll(100) is None and time.monotonic() - started > 7.0,
            timeout=30,
            interval=0.05,
            what="7 s of idle polling",
        )
        assert reader._probe is not None  # the silence was checked, and answered
    finally:
        with bounded(3):
            reader.close()


@pytest.mark.parametrize("action", ["wait", "stop"])
def test_pubsub_pipeline_on_a_frozen_emulator_fails_or_stops_within_bound(
    action: str, pubsub_process: LocalServer, tmp_path: Path
) -> None:
    """A run reading a frozen service fails by itself within service_timeout; a stop returns in time."""
    from streamlab.connectors.pubsub import PubSubSource, PubSubUnreachableError

    from streamlab import ListSink, Pipeline

    host = pubsub_process.address
    sub = pubsub_subscription(host, 5)
    p = Pipeline(
        PubSubSource(sub, emulator_host=host, timeout=1, service_timeout=SERVICE_TIMEOUT), name="ps-outage"
    )
    p.parse().ok.to(ListSink())
    handle = p.start(checkpoint_dir=tmp_path / "ckpt", commit_every="100ms")
    try:
        wait_for(
            lambda: handle.metrics["events_in"] == 5 and handle.metrics["commits"] >= 1,
            timeout=20,
            what="5 events read and committed",
        )
        outage(pubsub_process, "frozen")
        if action == "wait":
            with bounded(SERVICE_TIMEOUT + 3), pytest.raises(PubSubUnreachableError, match=sub):
                handle.wait(timeout=SERVICE_TIMEOUT + 20)
    finally:
        with bounded(2 * 1 + 3):  # the stream's shutdown and the nack, each bounded by timeout
            handle.stop(timeout=30)


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


# --- BigQuery ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["stalled", "unreachable"])
def test_bigquery_sink_on_a_dead_endpoint_fails_at_open_within_timeout(
    where: str, request: pytest.FixtureRequest
) -> None:
    """The client's default retry tried an unreachable endpoint for 600 s whatever timeout was given."""
    from streamlab.connectors.bigquery import BigQuerySink, make_client

    host = request.getfixturevalue("stalled") if where == "stalled" else nowhere()
    endpoint = {"api_endpoint": f"http://{host}"}
    make_client("p", endpoint).close()  # the client's first import is not the wait measured
    sink = BigQuerySink("p.analytics.events", client_options=endpoint, timeout=2)
    with (
        bounded(10),  # the request's timeout, then retries until the same timeout in all
        pytest.raises(RuntimeError, match=rf"BigQuery at http://{host} did not answer within timeout=2 s"),
    ):
        sink.open()
