"""``Pipeline.head()`` on a Kafka source: a look at the topic that leaves the consumer group alone.

A preview that joined the pipeline's own group would take partitions from its running members (a
rebalance) and, on a quiet topic, wait for ``n`` events forever.
"""

from __future__ import annotations

import json
import time

from streamlab.connectors.kafka import KafkaAdmin, KafkaSource, LocalKafkaBroker, create_topic

from streamlab import ListSink, Pipeline
from streamlab._checkpoint import default_checkpoint_dir
from streamlab.testing import wait_for

from .test_kafka import produce_raw, source


def _records(n: int) -> list[tuple[bytes, bytes]]:
    return [
        (
            f"u{i % 3}".encode(),
            json.dumps(
                {"event_id": f"e{i}", "user_id": f"u{i % 3}", "timestamp": f"2024-01-01T00:00:{i % 60:02d}Z"}
            ).encode(),
        )
        for i in range(n)
    ]


def test_head_neither_joins_the_running_group_nor_commits(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    boot, topic, group = kafka_broker.bootstrap_servers, f"head-{unique_name}", f"g-head-{unique_name}"
    create_topic(boot, topic, partitions=2)
    produce_raw(boot, topic, _records(30))
    p = Pipeline(source(boot, topic, group), name="head-live")
    p.parse().to(ListSink())
    handle = p.start(commit_every="100ms")
    try:
        wait_for(lambda: handle.metrics["events_in"] >= 30, timeout=30, what="the run to read the topic")
        wait_for(lambda: sum(KafkaAdmin(boot).committed_offsets(group, topic).values()) == 30, timeout=30)
        owned = sorted(handle.metrics["partitions"]["source"])
        assert len(owned) == 2  # the running member holds both partitions

        out = p.head(10)  # a second cell, while the run goes on

        assert len(out["parse"]) == 10
        assert set(out["parse"]["event_id"]) <= {f"e{i}" for i in range(30)}
        # the running member kept its partitions: no rebalance moved one to the preview
        assert sorted(handle.metrics["partitions"]["source"]) == owned
        assert sum(KafkaAdmin(boot).committed_offsets(group, topic).values()) == 30
    finally:
        result = handle.stop()
    assert result.status == "stopped" and result.metrics["events_in"] == 30


def test_head_on_a_topic_with_fewer_events_returns_what_there_is(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    boot, topic = kafka_broker.bootstrap_servers, f"head-few-{unique_name}"
    create_topic(boot, topic, partitions=2)
    produce_raw(boot, topic, _records(4))
    p = Pipeline(source(boot, topic, f"g-few-{unique_name}", start="latest"))
    p.parse().to(ListSink())
    started = time.monotonic()
    out = p.head(1_000)
    # the topic's four events (a preview reads from the start, even of a source that starts at the end)
    assert sorted(out["parse"]["event_id"]) == ["e0", "e1", "e2", "e3"]
    assert time.monotonic() - started < 30


def test_head_of_an_empty_topic_returns_no_rows(kafka_broker: LocalKafkaBroker, unique_name: str) -> None:
    boot, topic = kafka_broker.bootstrap_servers, f"head-empty-{unique_name}"
    create_topic(boot, topic, partitions=1)
    name = f"head-empty-{unique_name}"
    p = Pipeline(KafkaSource(topic, bootstrap_servers=boot, group_id=f"g-empty-{unique_name}"), name=name)
    p.parse().to(ListSink())
    out = p.head(5)
    assert out["parse"].empty
    # no checkpoint was written for the preview (a later run would have resumed it)
    state = default_checkpoint_dir(p, "0" * 16).parent
    assert not state.exists() or not [d for d in state.iterdir() if d.name.startswith(name)]
