"""Kafka into the sinks that promise exactly once (JSON lines, gzipped too, Parquet, DuckDB without a key), with
session windows and dedup: a consumer killed (SIGKILL) at seeded points and restarted leaves every sink
as an uninterrupted run does. The other Kafka fault tests compare tables that upsert by key, which
hide a record read twice."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from streamlab.connectors.kafka import KafkaSource, create_topic

from streamlab import DuckDBSink, JsonLinesSink, ParquetSink, Pipeline, SessionWindow, agg
from streamlab.io import Source
from streamlab.local import LocalServer
from streamlab.testing import wait_for

from ._kafka import FAST_GROUP, Broker, make_events, produce
from ._process import run_killed_until_done
from .test_cloud_faults import SCHEMA, kill_at_seeded_points, kinesis_source, kinesis_stream

pytestmark = pytest.mark.timeout(180)


def build(boot: str, topic: str, group: str, out: Path, **source_kw: Any) -> Pipeline:
    """Kafka → :func:`build_on`."""
    source = KafkaSource(
        topic,
        bootstrap_servers=boot,
        group_id=group,
        config=dict(FAST_GROUP),
        broker_timeout=3.0,
        **source_kw,
    )
    return build_on(source, out)


def build_on(source: Source, out: Path) -> Pipeline:
    """source → parse → JSON lines and Parquet of every event, dedup → its duplicates appended to DuckDB
    (no key), 2-minute sessions per user to Parquet."""
    p = Pipeline(source, name="exactly-once")
    events = p.parse(SCHEMA)
    events.to(JsonLinesSink(out / "events.jsonl"))
    events.to(JsonLinesSink(out / "events.jsonl.gz"))  # a gzip member per commit
    events.to(ParquetSink(out / "events"))
    unique = events.dedup("event_id", ttl="1h")
    unique.duplicates.to(DuckDBSink(out / "out.duckdb", "duplicates", key=None))
    sessions = unique.window(SessionWindow("2m"), key="user_id", delay="10s")
    sessions.agg(agg.count(), agg.sum("amount")).to(ParquetSink(out / "sessions"))
    return p


def contents(out: Path) -> dict[str, list[str]]:
    """Each sink's rows as a sorted list of JSON texts (a multiset: a row written twice shows)."""

    def rows(frame: pd.DataFrame) -> list[str]:
        return sorted(json.dumps(r, sort_keys=True, default=str) for r in frame.to_dict("records"))

    def parts(d: Path) -> pd.DataFrame:
        files = sorted(d.glob("part-*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()

    con = duckdb.connect(str(out / "out.duckdb"))
    try:
        duplicates = con.execute("SELECT * FROM duplicates").df()
    finally:
        con.close()
    return {
        "jsonl": sorted((out / "events.jsonl").read_text().splitlines()),
        "jsonl.gz": sorted(gzip.decompress((out / "events.jsonl.gz").read_bytes()).decode().splitlines()),
        "events": rows(parts(out / "events").drop(columns=["value"], errors="ignore")),
        "sessions": rows(parts(out / "sessions")),
        "duplicates": rows(duplicates.drop(columns=["value"], errors="ignore")),
    }


def test_consumer_killed_at_seeded_points_writes_each_record_once_to_append_sinks(
    broker: Broker, tmp_path: Path
) -> None:
    topic, n = "exactly-once", 3000
    create_topic(broker.bootstrap, topic, partitions=3)
    records = make_events(n, seed=5)
    records += records[::50]  # repeated events: dedup's .duplicates
    produce(broker.bootstrap, topic, records)

    clean = tmp_path / "clean"
    clean.mkdir()
    result = build(broker.bootstrap, topic, "reference", clean, stop_at_end=True).run(
        checkpoint_dir=tmp_path / "clean-ckpt"
    )
    assert result.status == "finished" and result.metrics["events_in"] == len(records)
    want = contents(clean)
    assert len(want["jsonl"]) == len(records) and len(want["duplicates"]) == len(records) - n
    assert want["jsonl.gz"] == want["jsonl"]

    out, ckpt, spec = tmp_path / "out", tmp_path / "ckpt", tmp_path / "spec.yaml"
    out.mkdir()
    build(broker.bootstrap, topic, "g", out, stop_at_end=True, max_batch=150).to_yaml(str(spec))
    kills = run_killed_until_done(spec, ckpt, random.Random(20261205), max_runs=8, batch_size=150)
    assert kills >= 1
    got = contents(out)
    for name in want:
        assert got[name] == want[name], name


def _event_ids(out: Path) -> set[str]:
    path = out / "events.jsonl"
    return (
        {json.loads(line)["event_id"] for line in path.read_text().splitlines()} if path.exists() else set()
    )


def test_kinesis_consumer_killed_at_seeded_points_writes_each_record_once_to_append_sinks(
    moto: LocalServer, tmp_path: Path
) -> None:
    """Kinesis resumes from the checkpoint's sequence numbers exactly: no record twice in a file."""
    url, n = f"http://{moto.address}", 1500
    stream = kinesis_stream(url, make_events(n, seed=29))
    out, ckpt, spec = tmp_path / "out", tmp_path / "ckpt", tmp_path / "spec.yaml"
    out.mkdir()
    build_on(kinesis_source(stream, url), out).to_yaml(str(spec))
    kill_at_seeded_points(spec, ckpt, kills=2, seed=20261208)
    handle = build_on(kinesis_source(stream, url), out).start(
        checkpoint_dir=ckpt, commit_every="100ms", batch_size=100
    )
    try:
        wait_for(lambda: handle.error is None and len(_event_ids(out)) >= n, timeout=60, what="every event")
    finally:
        handle.stop(timeout=30)
    lines = (out / "events.jsonl").read_text().splitlines()
    ids = [json.loads(line)["event_id"] for line in lines]
    assert len(ids) == n == len(set(ids))
