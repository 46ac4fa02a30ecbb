"""A position is committed upstream (Pub/Sub ack, Kafka offset, Kinesis checkpoint) only once everything
derived from it is in a sink or in a saved checkpoint: a run stopped in the middle of open windows
without ``checkpoint_dir`` loses nothing, on the project's Pub/Sub emulator, a local Kafka broker (tansu)
and Kinesis on moto."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from streamlab import ListSink, Pipeline, TumblingWindow, agg
from streamlab.io import Source
from streamlab.testing import wait_for

pytestmark = pytest.mark.services
N = 600  # one event a second: ten 1-minute windows
STOP_AT = 400  # the first run stops here: watermark 400 s - 5 min, so most read events are in open windows
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def payloads() -> list[bytes]:
    return [
        json.dumps(
            {"event_id": f"e{i}", "k": "ab"[i % 2], "timestamp": (T0 + pd.Timedelta(i, "s")).isoformat()}
        ).encode()
        for i in range(N)
    ]


def check_nothing_lost(make_source: Callable[[], Source]) -> None:
    """Run 1 stops after STOP_AT events with windows open and no checkpoint_dir; run 2 reads the rest and
    emits every window: each event is counted exactly once over both runs."""
    counted, late = ListSink(), ListSink()

    def build() -> Pipeline:
        p = Pipeline(make_source(), name="acks")
        parsed = p.parse(schema={"event_id": "string", "k": "string", "timestamp": "timestamp"})
        windows = parsed.window(TumblingWindow("1m"), key="k", delay="5m")
        counts = windows.agg(agg.count())
        counts.to(counted)
        counts.late.to(late)
        return p

    first = build().run(max_events=STOP_AT, batch_size=50)
    assert first.status == "stopped" and first.metrics["events_in"] == STOP_AT
    assert first.metrics["checkpoint_dir"].startswith(os.environ["STREAMLAB_STATE_DIR"])
    emitted_first = int(counted.frame()["count"].sum()) if len(counted.frame()) else 0
    assert emitted_first < STOP_AT  # the rest was only in open windows when positions were committed

    handle = build().start(batch_size=50)
    try:
        wait_for(
            lambda: handle.metrics["events_in"] >= N - STOP_AT, timeout=60, what="the rest of the events"
        )
    finally:
        result = handle.stop(flush_windows=True)
    assert result.metrics["events_in"] == N - STOP_AT  # the acked ones did not come again
    total = int(counted.frame()["count"].sum()) + len(late.frame())
    assert total == N  # nothing lost with the open windows, nothing counted twice


@pytest.fixture
def fresh_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("STREAMLAB_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path / "state"


def test_pubsub_acks_only_what_a_checkpoint_or_sink_holds(fresh_state_dir: Path) -> None:
    from google.cloud import pubsub_v1
    from streamlab.connectors.pubsub import PubSubSource

    from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs

    with PubSubEmulator() as emu:
        pub = pubsub_v1.PublisherClient(**emulator_client_kwargs(emu.host, "publisher"))
        sub = pubsub_v1.SubscriberClient(**emulator_client_kwargs(emu.host, "subscriber"))
        topic = pub.create_topic(request={"name": f"projects/p/topics/t-{uuid.uuid4().hex[:8]}"}).name
        name = f"projects/p/subscriptions/s-{uuid.uuid4().hex[:8]}"
        sub.create_subscription(request={"name": name, "topic": topic, "ack_deadline_seconds": 60})
        for future in [pub.publish(topic, data) for data in payloads()]:
            future.result(timeout=10)
        try:
            check_nothing_lost(lambda: PubSubSource(name, emulator_host=emu.host))
        finally:
            pub.stop()
            pub.transport.grpc_channel.close()
            sub.close()


def test_kafka_commits_only_what_a_checkpoint_or_sink_holds(
    kafka_broker: object, fresh_state_dir: Path
) -> None:
    from confluent_kafka import Producer
    from streamlab.connectors.kafka import KafkaSource, create_topic

    boot = kafka_broker.bootstrap_servers  # type: ignore[attr-defined]
    topic = f"acks-{uuid.uuid4().hex[:8]}"
    create_topic(boot, topic, partitions=1)
    producer = Producer({"bootstrap.servers": boot, "linger.ms": 5})
    for data in payloads():
        producer.produce(topic, value=data)
    assert producer.flush(15) == 0
    group = f"g-{uuid.uuid4().hex[:8]}"
    fast = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}
    check_nothing_lost(lambda: KafkaSource(topic, bootstrap_servers=boot, group_id=group, config=fast))


def test_kinesis_checkpoints_only_what_a_checkpoint_or_sink_holds(
    fresh_state_dir: Path, tmp_path: Path
) -> None:
    from streamlab.connectors.aws import aws_client
    from streamlab.connectors.kinesis import KinesisSource

    from streamlab.local import LocalAWS

    with LocalAWS() as aws:
        client = aws_client("kinesis", endpoint_url=aws.endpoint_url)
        stream = f"s-{uuid.uuid4().hex[:8]}"
        client.create_stream(StreamName=stream, ShardCount=1)
        wait_for(
            lambda: (
                client.describe_stream(StreamName=stream)["StreamDescription"]["StreamStatus"] == "ACTIVE"
            ),
            timeout=10,
            what="the stream",
        )
        data = payloads()
        for i in range(0, N, 200):
            records = [{"Data": d, "PartitionKey": "k"} for d in data[i : i + 200]]
            assert client.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0
        positions = tmp_path / "kinesis.json"
        check_nothing_lost(
            lambda: KinesisSource(
                stream, endpoint_url=aws.endpoint_url, checkpoint_path=positions, idle_interval=0
            )
        )
