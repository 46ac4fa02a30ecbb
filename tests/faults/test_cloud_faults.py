"""Fault suite for the Pub/Sub, Kinesis and Event Hubs sources feeding a DuckDB sink, each server in a
process of its own (the project's Pub/Sub emulator, moto_server, tansu for Event Hubs' Kafka endpoint): the pipeline process killed with SIGKILL at seeded
points and restarted, stopped with SIGTERM, and the server frozen (SIGSTOP) under a running pipeline.

Each fault is compared with an uninterrupted run on the same records: the event table (a DuckDB upsert
by ``event_id``) must be equal — nothing lost; a message delivered twice replaces itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import DuckDBSink, JsonLinesSink, Pipeline, TumblingWindow, agg
from streamlab._checkpoint import CHECKPOINT_FILE
from streamlab.io import Source
from streamlab.local import LocalServer
from streamlab.testing import wait_for

from ._kafka import FAST_GROUP, Broker, make_events, produce
from ._process import kill_at_a_seeded_point, reap, run_killed_until_done, runner

pytestmark = pytest.mark.timeout(150)

SCHEMA = {
    "event_id": "string",
    "event_type": "string",
    "user_id": "string",
    "timestamp": "timestamp",
    "amount": "float64",
}
COLUMNS = list(SCHEMA)


def build(source: Source, db: str, windows: bool = False, lines: Path | None = None) -> Pipeline:
    """source → parse → the events table (DuckDB, upsert by event_id); with ``windows``, also 1-minute
    windows per event type (upsert by window and key); with ``lines``, the events also to that JSON-lines
    file (which a test can watch while the run holds the database)."""
    p = Pipeline(source, name="cloud-faults")
    events = p.parse(SCHEMA)
    events.select(*COLUMNS).to(DuckDBSink(db, "events"))
    if lines is not None:
        events.select(*COLUMNS).to(JsonLinesSink(str(lines)))
    if windows:
        w = events.window(TumblingWindow("1m"), key="event_type", delay="10s")
        w.agg(agg.count(), agg.sum("amount")).to(DuckDBSink(db, "windows"))
    return p


def event_table(db: str) -> pd.DataFrame:
    """The events table (empty before the sink created it)."""
    import duckdb

    con = duckdb.connect(db)  # the same configuration as the sinks' connections in this process
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        if ("events",) not in tables:
            return pd.DataFrame(columns=COLUMNS)
        return con.execute("SELECT * FROM events ORDER BY event_id").df()
    finally:
        con.close()


def window_table(db: str) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect(db)
    try:
        return con.execute("SELECT * FROM windows ORDER BY window_start, event_type").df()
    finally:
        con.close()


def count(db: str) -> int:
    return len(event_table(db)) if Path(db).exists() else 0


def drain(source: Source, db: str, n: int, ckpt: Path | None = None, windows: bool = False) -> None:
    """Run in this process (resuming from ``ckpt``) until the table holds ``n`` events, then stop."""
    handle = build(source, db, windows).start(checkpoint_dir=ckpt, commit_every="100ms", batch_size=100)
    try:
        wait_for(lambda: handle.error is None and count(db) >= n, timeout=60, what=f"{n} events in {db}")
    finally:
        result = handle.stop(timeout=30)
    assert result.status in ("stopped", "finished"), (result.status, handle.error)


def assert_same(got: pd.DataFrame, want: pd.DataFrame, n: int) -> None:
    assert len(want) == n and want["event_id"].is_unique
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_like=True)


def kill_at_seeded_points(spec: Path, ckpt: Path, kills: int, seed: int) -> None:
    """Run the spec in a child ``kills`` times, each killed (SIGKILL) after a new checkpoint plus a
    seeded delay of up to 0.4 s."""
    rng = random.Random(seed)
    checkpoint = ckpt / CHECKPOINT_FILE
    for _ in range(kills):
        before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0
        proc = runner(spec, ckpt, batch_size=100)
        try:
            killed = kill_at_a_seeded_point(proc, ckpt, before, rng)
        finally:
            err = reap(proc)
        assert killed, f"the pipeline ended by itself: {err[-2000:]}"


# --- Pub/Sub -------------------------------------------------------------------------------------------


def pubsub_topic(host: str, records: list[tuple[bytes, bytes]], subscriptions: int) -> list[str]:
    """A topic with ``subscriptions`` subscriptions (10 s ack deadline, nacks redelivered after 1 s) and
    ``records`` published."""
    from google.cloud import pubsub_v1
    from streamlab.connectors.pubsub import create_subscription, create_topic

    from streamlab.local.pubsub import emulator_client_kwargs

    name = f"faults-{uuid.uuid4().hex[:8]}"
    topic = create_topic(name, project="p", emulator_host=host)
    subs = [
        create_subscription(
            f"{name}-{i}",
            topic,
            project="p",
            emulator_host=host,
            ack_deadline=10,
            retry_min_backoff="1s",  # a nacked message comes back after this
            retry_max_backoff="2s",
        )
        for i in range(subscriptions)
    ]
    publisher = pubsub_v1.PublisherClient(**emulator_client_kwargs(host, "publisher"))
    try:
        futures = [publisher.publish(topic, value, key=key.decode()) for key, value in records]
        for f in futures:
            f.result(timeout=30)
    finally:
        publisher.stop()
    return subs


def pubsub_source(sub: str, host: str) -> Source:
    from streamlab.connectors.pubsub import PubSubSource

    # the client extends a held message's lease by its p99 ack latency (up to 600 s): what it held when
    # the pipeline stopped came back only after about a minute under load; bounded here to 10 s
    return PubSubSource(
        sub,
        emulator_host=host,
        timeout=2,
        service_timeout=10,
        max_messages=300,
        flow_control={"max_duration_per_lease_extension": 10},
    )


def test_pubsub_pipeline_killed_at_seeded_points_then_restarted_matches_uninterrupted_run(
    pubsub_process: LocalServer, tmp_path: Path
) -> None:
    host, n = pubsub_process.address, 1500
    sub, reference_sub = pubsub_topic(host, make_events(n, seed=21), subscriptions=2)
    db, ckpt, spec = str(tmp_path / "run.duckdb"), tmp_path / "ckpt", tmp_path / "spec.yaml"
    build(pubsub_source(sub, host), db).to_yaml(str(spec))
    kill_at_seeded_points(spec, ckpt, kills=2, seed=20261205)
    # messages the killed runs held come back after their ack deadline: the restart reads them
    drain(pubsub_source(sub, host), db, n, ckpt)
    reference = str(tmp_path / "reference.duckdb")
    drain(pubsub_source(reference_sub, host), reference, n, tmp_path / "reference-ckpt")
    assert_same(event_table(db), event_table(reference), n)


def test_pubsub_pipeline_sigterm_acks_exactly_what_the_sink_has(
    pubsub_process: LocalServer, tmp_path: Path
) -> None:
    """SIGTERM: the sink is flushed, what it has is acknowledged, everything else comes back."""
    from streamlab.connectors.pubsub import PubSubSource

    host, n = pubsub_process.address, 1500
    records = make_events(n, seed=22)
    (sub,) = pubsub_topic(host, records, subscriptions=1)
    db, ckpt, spec = str(tmp_path / "run.duckdb"), tmp_path / "ckpt", tmp_path / "spec.yaml"
    lines = tmp_path / "events.jsonl"
    build(pubsub_source(sub, host), db, lines=lines).to_yaml(str(spec))
    proc = runner(spec, ckpt, batch_size=100)
    try:
        # a checkpoint is written every 100 ms from the start, before any event: wait for a written event
        wait_for(lambda: lines.exists() and lines.stat().st_size > 0, timeout=60, what="a written event")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        stopped = time.monotonic()
    finally:
        err = reap(proc)
    assert code == 0, err[-2000:]
    kept = set(event_table(db)["event_id"])
    assert kept  # the run had written events before the stop
    assert {json.loads(line)["event_id"] for line in lines.read_text().splitlines()} == kept
    # what was not acknowledged is delivered again; nothing acknowledged is (within the ack deadline)
    reader = PubSubSource(sub, emulator_host=host, timeout=2, max_messages=2 * n).open()
    again: list[str] = []
    try:

        def read() -> bool:
            batch = reader.poll(1000)
            if batch is not None:
                again.extend(json.loads(v)["event_id"] for v in batch["value"])
            return len(kept) + len(again) >= n

        # the nacked ones come back at once; those the stopped client had leased but not handed over
        # come back when their lease (at most 10 s, see pubsub_source) runs out
        with contextlib.suppress(TimeoutError):
            wait_for(read, timeout=40, interval=0.01, what="the rest")
        # a redelivery of something acknowledged would come within a second: read on for one, stopping at
        # the first message too many (an absence has no event to wait for; this bounds the wait)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: read() and len(kept) + len(again) > n, timeout=1.0, interval=0.01, what="")
    finally:
        reader.close()
    t = time.monotonic() - stopped
    assert len(kept) + len(again) == n, f"{len(kept)} in the sink, {len(again)} again after {t:.1f} s"
    assert kept.isdisjoint(again), sorted(kept & set(again))[:10]
    assert kept | set(again) == {json.loads(v)["event_id"] for _k, v in records}


# --- Kinesis -------------------------------------------------------------------------------------------


def kinesis_stream(url: str, records: list[tuple[bytes, bytes]], shards: int = 2) -> str:
    from streamlab.connectors.aws import aws_client

    name = f"faults-{uuid.uuid4().hex[:8]}"
    client = aws_client("kinesis", endpoint_url=url, region="us-east-1")
    client.create_stream(StreamName=name, ShardCount=shards)
    for i in range(0, len(records), 500):
        chunk = records[i : i + 500]
        r = client.put_records(
            StreamName=name, Records=[{"Data": v, "PartitionKey": k.decode()} for k, v in chunk]
        )
        assert r["FailedRecordCount"] == 0
    return name


def kinesis_source(stream: str, url: str, **kw: Any) -> Source:
    from streamlab.connectors.kinesis import KinesisSource

    kw.setdefault("timeout", 2.0)
    return KinesisSource(stream, endpoint_url=url, records_per_call=100, idle_interval="50ms", **kw)


@pytest.mark.parametrize("upstream", [False, True], ids=["runtime-checkpoint", "checkpoint_path"])
def test_kinesis_pipeline_killed_at_seeded_points_then_restarted_matches_uninterrupted_run(
    upstream: bool, moto: LocalServer, tmp_path: Path
) -> None:
    url, n = f"http://{moto.address}", 1500
    stream = kinesis_stream(url, make_events(n, seed=23))
    kw = {"checkpoint_path": str(tmp_path / "shards.json")} if upstream else {}
    db, ckpt, spec = str(tmp_path / "run.duckdb"), tmp_path / "ckpt", tmp_path / "spec.yaml"
    build(kinesis_source(stream, url, **kw), db, windows=True).to_yaml(str(spec))
    kill_at_seeded_points(spec, ckpt, kills=2, seed=20261206)
    drain(kinesis_source(stream, url, **kw), db, n, ckpt, windows=True)
    reference = str(tmp_path / "reference.duckdb")
    drain(kinesis_source(stream, url), reference, n, tmp_path / "reference-ckpt", windows=True)
    assert_same(event_table(db), event_table(reference), n)
    # windows closed by per-shard watermarks: the same after kills and restarts as uninterrupted
    pd.testing.assert_frame_equal(window_table(db), window_table(reference))


def test_kinesis_pipeline_on_a_frozen_server_fails_within_bound_and_resumes_after_thaw(
    moto: LocalServer, tmp_path: Path
) -> None:
    """SIGSTOP of the server under a running pipeline: the run fails by itself, naming the endpoint and
    the call, within attempts × timeout; after SIGCONT a restart from the checkpoint completes the table."""
    url, n = f"http://{moto.address}", 1000
    records = make_events(n, seed=24)
    stream = kinesis_stream(url, records[: n // 2])
    db, ckpt = str(tmp_path / "run.duckdb"), tmp_path / "ckpt"
    handle = build(kinesis_source(stream, url, timeout=1.0), db).start(
        checkpoint_dir=ckpt, commit_every="100ms", batch_size=100
    )
    assert moto.pid is not None
    try:
        wait_for(
            lambda: handle.metrics["events_in"] >= n // 2 and handle.metrics["commits"] >= 1,
            timeout=30,
            what="the first half read and committed",
        )
        os.kill(moto.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=rf"Kinesis at {url} did not answer") as info:
            handle.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        os.kill(moto.pid, signal.SIGCONT)
        handle.stop(timeout=30)
    assert took < 2 * 1.0 + 5, took  # 2 attempts of timeout=1 s, plus a poll interval
    assert "timeout" in str(info.value)
    from streamlab.connectors.aws import aws_client

    client = aws_client("kinesis", endpoint_url=url, region="us-east-1")
    r = client.put_records(
        StreamName=stream, Records=[{"Data": v, "PartitionKey": k.decode()} for k, v in records[n // 2 :]]
    )
    assert r["FailedRecordCount"] == 0
    drain(kinesis_source(stream, url), db, n, ckpt)
    reference = str(tmp_path / "reference.duckdb")
    drain(kinesis_source(stream, url), reference, n, tmp_path / "reference-ckpt")
    assert_same(event_table(db), event_table(reference), n)


def test_kinesis_pipeline_sigterm_commits_exactly_what_the_sink_has(
    moto: LocalServer, tmp_path: Path
) -> None:
    """SIGTERM: the sink is flushed and the shard checkpoint written up to exactly what the sink has."""
    url, n = f"http://{moto.address}", 3000
    records = make_events(n, seed=25)
    stream = kinesis_stream(url, records)
    shards = tmp_path / "shards.json"
    db, ckpt, spec = str(tmp_path / "run.duckdb"), tmp_path / "ckpt", tmp_path / "spec.yaml"
    lines = tmp_path / "events.jsonl"
    build(kinesis_source(stream, url, checkpoint_path=str(shards)), db, lines=lines).to_yaml(str(spec))
    proc = runner(spec, ckpt, batch_size=100)
    try:
        # the shard checkpoint can be written before any event: wait for a written event
        wait_for(lambda: lines.exists() and lines.stat().st_size > 0, timeout=60, what="a written event")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        err = reap(proc)
    assert code == 0, err[-2000:]
    kept = set(event_table(db)["event_id"])
    assert kept
    assert {json.loads(line)["event_id"] for line in lines.read_text().splitlines()} == kept
    # a new reader starting at the shard checkpoint (not the run's) reads exactly what the sink lacks
    reader = kinesis_source(stream, url, checkpoint_path=str(shards)).open()
    rest: list[str] = []
    try:
        for _ in range(200):
            batch = reader.poll(1000)
            if batch is not None:
                rest.extend(json.loads(v)["event_id"] for v in batch["value"])
            if len(kept) + len(rest) >= n:
                break
    finally:
        reader.close()
    assert kept.isdisjoint(rest), sorted(kept & set(rest))[:10]
    assert kept | set(rest) == {json.loads(v)["event_id"] for _k, v in records}


# --- Event Hubs (its Kafka endpoint; tansu stands in) --------------------------------------------------

EH_CONNECTION = "Endpoint=sb://faults.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v"


def test_eventhub_pipeline_killed_at_seeded_points_then_restarted_matches_uninterrupted_run(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlab.connectors.eventhub import EventHubSource
    from streamlab.connectors.kafka import create_topic

    from .test_kafka_faults import assert_same_tables, reference, tables

    monkeypatch.setenv("FAULTS_EVENTHUB", EH_CONNECTION)  # the spec names the variable, the child reads it
    hub, n = "hub", 3000
    create_topic(broker.bootstrap, hub, partitions=2)
    produce(broker.bootstrap, hub, make_events(n, seed=26))
    source = EventHubSource(
        connection_string_env="FAULTS_EVENTHUB",
        eventhub=hub,
        consumer_group="g",
        bootstrap_servers=broker.bootstrap,
        security_protocol="PLAINTEXT",
        config=FAST_GROUP,  # the service's 30 s session would make every join take 15 s on tansu
        stop_at_end=True,
        max_batch=200,
    )
    db, ckpt, spec = str(tmp_path / "run.duckdb"), tmp_path / "ckpt", tmp_path / "spec.yaml"
    p = Pipeline(source, name="faults")
    events = p.parse(SCHEMA)
    events.select(*COLUMNS).to(DuckDBSink(db, "events"))
    windows = events.window(TumblingWindow("1m"), key="event_type", delay="10s")
    windows.agg(agg.count(), agg.sum("amount")).to(DuckDBSink(db, "windows"))
    p.to_yaml(str(spec))
    rng = random.Random(20261207)
    kills = run_killed_until_done(spec, ckpt, rng, max_runs=6, batch_size=100)
    assert kills >= 1
    assert_same_tables(tables(db), reference(broker.bootstrap, hub, tmp_path, n), n)


def test_pubsub_pipeline_resumes_after_a_freeze_shorter_than_its_timeouts(
    pubsub_process: LocalServer, tmp_path: Path
) -> None:
    """SIGSTOP for less than ``timeout`` and ``service_timeout``, then SIGCONT: the run goes on."""
    from streamlab.connectors.pubsub import PubSubSource

    host, n = pubsub_process.address, 3000
    sub, reference_sub = pubsub_topic(host, make_events(n, seed=27), subscriptions=2)
    db = str(tmp_path / "run.duckdb")
    # few messages outstanding and frequent commits: the freeze lands mid-stream, with acks under way
    source = PubSubSource(sub, emulator_host=host, timeout=5, service_timeout=10, max_messages=50)
    handle = build(source, db).start(checkpoint_dir=tmp_path / "ckpt", commit_every="100ms", batch_size=50)
    assert pubsub_process.pid is not None
    try:
        wait_for(lambda: handle.metrics["commits"] >= 2, timeout=30, what="two commits")
        os.kill(pubsub_process.pid, signal.SIGSTOP)
        assert handle.metrics["events_in"] < n
        time.sleep(2.0)  # the outage itself: real time on purpose
        os.kill(pubsub_process.pid, signal.SIGCONT)
        wait_for(lambda: handle.error is None and count(db) >= n, timeout=60, what=f"{n} events")
    finally:
        os.kill(pubsub_process.pid, signal.SIGCONT)
        result = handle.stop(timeout=30)
    assert result.status == "stopped", handle.error
    reference = str(tmp_path / "reference.duckdb")
    drain(pubsub_source(reference_sub, host), reference, n, tmp_path / "reference-ckpt")
    assert_same(event_table(db), event_table(reference), n)


def test_kinesis_pipeline_killed_across_a_split_and_a_merge_matches_uninterrupted_run(
    kinesalite: str, tmp_path: Path
) -> None:
    """kinesalite routes records to child shards (moto does not): kills land while parents end and
    children start; the restart reads each shard after its parents, nothing lost, windows equal."""
    from streamlab.connectors.aws import aws_client

    url, n = kinesalite, 3000
    records = make_events(n, seed=31)
    client = aws_client("kinesis", endpoint_url=url, region="us-east-1")
    stream = f"reshard-{uuid.uuid4().hex[:8]}"

    def active() -> bool:
        summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        return bool(summary["StreamStatus"] == "ACTIVE")

    def put(chunk: list[tuple[bytes, bytes]]) -> None:
        for i in range(0, len(chunk), 500):
            rows = [{"Data": v, "PartitionKey": k.decode()} for k, v in chunk[i : i + 500]]
            assert client.put_records(StreamName=stream, Records=rows)["FailedRecordCount"] == 0

    client.create_stream(StreamName=stream, ShardCount=2)
    wait_for(active, timeout=10, what="the stream")
    put(records[:1000])
    parent = client.list_shards(StreamName=stream)["Shards"][0]
    lo, hi = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    client.split_shard(
        StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((lo + hi) // 2)
    )
    wait_for(active, timeout=10, what="the split")
    put(records[1000:2000])
    children = [
        s["ShardId"]
        for s in client.list_shards(StreamName=stream)["Shards"]
        if s.get("ParentShardId") == parent["ShardId"]
    ]
    client.merge_shards(StreamName=stream, ShardToMerge=children[0], AdjacentShardToMerge=children[1])
    wait_for(active, timeout=10, what="the merge")
    put(records[2000:])
    kw = {"checkpoint_path": str(tmp_path / "shards.json")}
    db, ckpt, spec = str(tmp_path / "run.duckdb"), tmp_path / "ckpt", tmp_path / "spec.yaml"
    build(kinesis_source(stream, url, **kw), db, windows=True).to_yaml(str(spec))
    kill_at_seeded_points(spec, ckpt, kills=3, seed=20261208)
    drain(kinesis_source(stream, url, **kw), db, n, ckpt, windows=True)
    reference = str(tmp_path / "reference.duckdb")
    drain(kinesis_source(stream, url), reference, n, tmp_path / "reference-ckpt", windows=True)
    assert_same(event_table(db), event_table(reference), n)
    pd.testing.assert_frame_equal(window_table(db), window_table(reference))
