"""Windows over a multi-partition Kafka topic: one watermark per partition keeps events on time."""

from __future__ import annotations

import pandas as pd
from streamlab.connectors import KafkaSource, LocalKafkaBroker
from streamlab.connectors.kafka import create_topic
from streamlab.datasets import generate_clickstream, to_json_lines

from streamlab import ListSink, ManualClock, Pipeline, TumblingWindow, agg

FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "log_level": 3}


def produce(bootstrap: str, topic: str, lines: list[bytes], keys: list[str]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 3})
    for key, line in zip(keys, lines):
        producer.produce(topic, value=line, key=key.encode())
    producer.flush(30)


def clicks_topic(
    bootstrap: str, topic: str, n: int, seed: int, partitions: int, key: str | None = None
) -> tuple[pd.DataFrame, list[bytes]]:
    """A topic of ``n`` clickstream events in order, keyed by user (or all by ``key``)."""
    events = generate_clickstream(n, seed=seed, late_share=0.0, duplicate_share=0.0)
    lines = to_json_lines(events[["event_id", "event_type", "user_id", "timestamp", "properties"]])
    create_topic(bootstrap, topic, partitions=partitions)
    produce(bootstrap, topic, lines, events["user_id"].tolist() if key is None else [key] * n)
    return events, lines


def window_counts(
    bootstrap: str, topic: str, group: str, n: int, watermark_by: str | None
) -> tuple[int, int]:
    src = KafkaSource(topic, bootstrap_servers=bootstrap, group_id=group, config=FAST_GROUP)
    p = Pipeline(src)
    events = p.parse({"event_id": "string", "event_type": "category", "timestamp": "timestamp"})
    counts = events.window(TumblingWindow("1m"), key="event_type", delay="5s", watermark_by=watermark_by)
    out = counts.agg(agg.count())
    results, late = ListSink(), ListSink()
    out.to(results)
    out.late.to(late)
    from streamlab.testing import wait_for

    handle = p.start(clock=ManualClock(0))
    try:
        wait_for(lambda: handle.metrics["events_in"] >= n, timeout=120, what=f"{n} events")
    finally:
        handle.stop(flush_windows=True)
    counted = int(results.frame()["count"].sum()) if len(results.frame()) else 0
    return counted, len(late.frame())


def test_partition_watermarks_on_a_four_partition_topic(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    boot = kafka_broker.bootstrap_servers
    events, lines = clicks_topic(boot, unique_name, 8000, seed=3, partitions=4)
    # the stream's own disorder is a few seconds: with a 5 s delay almost nothing should be late
    behind = (events["timestamp"].cummax() - events["timestamp"]).dt.total_seconds()
    assert (behind > 5).mean() < 0.01
    counted, late = window_counts(boot, unique_name, f"g1-{unique_name}", len(lines), "auto")
    assert counted + late == len(lines)
    assert late < 0.01 * len(lines)
    # one watermark for the whole topic: the consumer reads a partition ahead and the others go late
    counted_single, late_single = window_counts(boot, unique_name, f"g2-{unique_name}", len(lines), None)
    assert counted_single + late_single == len(lines)
    assert late_single > 10 * max(late, 1)


def test_redaction_hides_secrets_but_not_settings_that_mention_connections() -> None:
    from streamlab.connectors.kafka import redact_config

    red = redact_config(
        {
            "sasl.password": "p",
            "sasl.jaas.config": "j",
            "connections.max.idle.ms": 180000,
            "log.connection.close": False,
            "connection_string": "Endpoint=sb://x;SharedAccessKey=k",
        }
    )
    assert red["sasl.password"] == red["sasl.jaas.config"] == red["connection_string"] == "<redacted>"
    assert red["connections.max.idle.ms"] == 180000 and red["log.connection.close"] is False


def test_idle_timeout_closes_windows_when_one_key_fills_one_partition(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    """Every record has the same key, so two of three partitions stay empty and hold the watermark."""
    from streamlab.testing import wait_for

    boot = kafka_broker.bootstrap_servers
    events, lines = clicks_topic(boot, unique_name, 600, seed=5, partitions=3, key="one-key")
    src = KafkaSource(unique_name, bootstrap_servers=boot, group_id=f"g-{unique_name}", config=FAST_GROUP)
    p = Pipeline(src)
    parsed = p.parse({"event_id": "string", "event_type": "category", "timestamp": "timestamp"})
    out = parsed.window(TumblingWindow("1s"), key="event_type", idle_timeout="1s").agg(agg.count())
    results, late = ListSink(), ListSink()
    out.to(results)
    out.late.to(late)
    handle = p.start()
    try:
        wait_for(lambda: handle.metrics["events_in"] >= len(lines), timeout=60, what="the records")
        assert len(handle.metrics["partitions"]["source"]) == 3
        # no more data arrives: after the idle timeout the windows the data closed are emitted
        wait_for(lambda: len(results.frame()) > 0, timeout=30, what="windows closed by the idle timeout")
    finally:
        handle.stop()
    last_end = results.frame()["window_end"].max()
    # every window the watermark (the largest event time) passed is out; the one holding it is open
    assert last_end == events["timestamp"].max().floor("1s")
    # nothing lost: each event before that point is counted once, or on .late if it came out of order
    assert results.frame()["count"].sum() + len(late.frame()) == (events["timestamp"] < last_end).sum()
