"""profile() on live sources reads a sample and commits nothing: Kafka offsets stay, Pub/Sub acks nothing."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest
from streamlab.connectors.kafka import KafkaAdmin, KafkaSource, LocalKafkaBroker, create_topic

from streamlab import profile
from streamlab.testing import wait_for

FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}


def records(n: int) -> list[bytes]:
    t0 = pd.Timestamp("2026-01-01T00:00:00Z")
    out = []
    for i in range(n):
        late = 8 if i % 10 == 9 else 0  # every tenth event arrives 8 s behind
        ts = t0 + pd.Timedelta(seconds=i - late)
        out.append(
            json.dumps({"event_id": f"e{i}", "kind": "ab"[i % 2], "timestamp": ts.isoformat()}).encode()
        )
    return out


def produce(boot: str, topic: str, values: list[bytes], partitions: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": boot, "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % partitions)
    assert p.flush(15) == 0


@pytest.mark.parametrize("kind", ["kafka", "eventhub"])
def test_profiling_a_kafka_topic_leaves_the_groups_committed_offsets_unchanged(
    kafka_broker: LocalKafkaBroker, unique_name: str, kind: str
) -> None:
    boot = kafka_broker.bootstrap_servers
    topic, group = f"profiled-{unique_name}", f"app-{unique_name}"
    create_topic(boot, topic, partitions=3)  # partition 2 stays silent
    produce(boot, topic, records(60), partitions=2)
    if kind == "kafka":
        src = KafkaSource(topic, bootstrap_servers=boot, group_id=group, config=FAST_GROUP, max_batch=7)
    else:  # Event Hubs through its Kafka endpoint, here the local broker in PLAINTEXT
        from streamlab.connectors.eventhub import EventHubSource

        conn = "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=secret"
        src = EventHubSource(
            f"{conn};EntityPath={topic}", consumer_group=group, bootstrap_servers=boot,
            security_protocol="PLAINTEXT", config=FAST_GROUP, max_batch=7,
        )  # fmt: skip
    reader = src.open()  # the application's group has committed part of the topic
    try:
        wait_for(lambda: (b := reader.poll(10)) is not None and len(b) > 0, timeout=20, what="first batch")
        position = reader.snapshot()
        reader.commit(position)
    finally:
        reader.close()
    admin = KafkaAdmin(boot)
    before = admin.committed_offsets(group, topic)
    assert before

    prof = profile(src, n=1000, timeout="30s")

    assert admin.committed_offsets(group, topic) == before
    assert prof.n == 60
    assert prof.schema == {"event_id": "string", "kind": "category", "timestamp": "timestamp"}
    assert prof.partition_columns == ("topic", "partition")
    assert [p[1] for p in prof.silent_partitions] == [2]
    assert prof.suggestion["idle_timeout"] is not None  # a silent partition would hold the watermark
    assert prof.suggestion["delay"] == "10s"  # the 8 s stragglers (on each partition, 16 s apart)


@pytest.mark.services
def test_profiling_a_pubsub_subscription_acknowledges_nothing() -> None:
    from google.cloud import pubsub_v1
    from streamlab.connectors.pubsub import PubSubSource, create_subscription, create_topic

    from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs

    project = "streamlab-test"
    with PubSubEmulator() as emu:
        suffix = uuid.uuid4().hex[:8]
        topic = create_topic(f"p-{suffix}", project=project, emulator_host=emu.host)
        sub = create_subscription(
            f"p-{suffix}-sub", topic, project=project, retry_min_backoff="0s", retry_max_backoff="0s",
            emulator_host=emu.host,
        )  # fmt: skip
        pub = pubsub_v1.PublisherClient(**emulator_client_kwargs(emu.host, "publisher"))
        sent = records(30)
        for v in sent:
            pub.publish(topic, v).result(timeout=10)
        prof = profile(PubSubSource(sub, emulator_host=emu.host), n=30, timeout="20s")
        assert prof.n == 30
        assert prof.time_field == "timestamp"
        client = pubsub_v1.SubscriberClient(**emulator_client_kwargs(emu.host, "subscriber"))
        got: list[bytes] = []
        try:

            def all_back() -> bool:
                resp = client.pull(request={"subscription": sub, "max_messages": 100}, timeout=10)
                got.extend(m.message.data for m in resp.received_messages)
                return len(set(got)) >= len(sent)

            wait_for(all_back, timeout=20, what="every message redelivered")
        finally:
            client.close()
        assert set(got) == set(sent)  # nothing was acknowledged: all 30 come back


@pytest.mark.services
def test_profiling_a_kinesis_stream_writes_no_checkpoint(tmp_path) -> None:
    from streamlab.connectors.aws import aws_client
    from streamlab.connectors.kinesis import KinesisSource

    from streamlab.local import LocalAWS

    with LocalAWS() as aws:
        client = aws_client("kinesis", endpoint_url=aws.endpoint_url)
        name = f"s-{uuid.uuid4().hex[:8]}"
        client.create_stream(StreamName=name, ShardCount=2)

        def active() -> bool:
            summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            return summary["StreamStatus"] == "ACTIVE"

        wait_for(active, timeout=10, what="an active stream")
        for i, v in enumerate(records(40)):
            client.put_record(StreamName=name, Data=v, PartitionKey=f"k{i % 4}")
        checkpoint = tmp_path / "cp.json"
        src = KinesisSource(name, endpoint_url=aws.endpoint_url, checkpoint_path=checkpoint, idle_interval=0)
        prof = profile(src, n=40, timeout="20s")
        assert prof.n == 40 and prof.partition_columns == ("shard_id",)
        assert not checkpoint.exists()  # nothing committed
