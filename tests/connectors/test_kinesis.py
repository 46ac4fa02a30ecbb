"""KinesisSource / KinesisSink against moto (LocalAWS) and, for resharding, kinesalite (npm)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlab.connectors.aws import aws_client
from streamlab.connectors.kinesis import SHARD_END, KinesisSink, KinesisSource, load_checkpoint

from streamlab.clock import ManualClock
from streamlab.local import LocalAWS
from streamlab.sinks import ListSink
from streamlab.testing import wait_for

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAWS]:
    with LocalAWS() as local:
        yield local
    assert not local.running


def make_stream(endpoint: str, shards: int) -> tuple[str, Any]:
    client = aws_client("kinesis", endpoint_url=endpoint)
    name = f"s-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    wait_active(client, name)
    return name, client


def wait_active(client: Any, name: str) -> None:
    def active() -> bool:
        return (
            client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        )

    wait_for(active, timeout=10, what=f"stream {name} to become ACTIVE")


def events(start: int, n: int, users: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(start, start + n)],
            "event_type": "click",
            "user_id": [f"u{i % users}" for i in range(start, start + n)],
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
            "properties": [{"i": i} for i in range(start, start + n)],
        }
    )


def read(reader: Any, count: int, max_events: int = 7, timeout: float = 15) -> pd.DataFrame:
    batches: list[pd.DataFrame] = []

    def enough() -> bool:
        batch = reader.poll(min(max_events, count - sum(len(b) for b in batches)))
        if batch is not None:
            assert len(batch) <= max_events
            batches.append(batch)
        return sum(len(b) for b in batches) >= count

    wait_for(enough, timeout=timeout, what=f"{count} records")
    out = pd.concat(batches, ignore_index=True)
    assert len(out) == count
    return out


def drained(reader: Any) -> bool:
    """True when a few more polls (each shard asked at least once) return nothing."""
    return all(reader.poll(100) is None for _ in range(3))


def event_index(values: pd.Series) -> list[int]:
    return [json.loads(v)["properties"]["i"] for v in values]


def test_resume_from_checkpoint_returns_exactly_the_uncommitted(aws: LocalAWS, tmp_path: Path) -> None:
    stream, client = make_stream(aws.endpoint_url, shards=2)
    writer = KinesisSink(stream, partition_key="user_id", endpoint_url=aws.endpoint_url).open()
    writer.write_batch(events(0, 26))
    writer.close()
    poison = [{"Data": b"{not json", "PartitionKey": "u1"}, {"Data": b"\xff", "PartitionKey": "u2"}]
    poison += [{"Data": b"[1, 2", "PartitionKey": "x"}, {"Data": b"null", "PartitionKey": "y"}]
    assert client.put_records(StreamName=stream, Records=poison)["FailedRecordCount"] == 0

    checkpoint = tmp_path / "kinesis.json"
    source = KinesisSource(stream, endpoint_url=aws.endpoint_url, checkpoint_path=checkpoint, idle_interval=0)
    reader = source.open()
    first = read(reader, 12)
    assert list(first.columns) == list(KinesisSource.columns)
    assert str(first["approximate_arrival"].dtype) == "datetime64[ns, UTC]"
    position = reader.snapshot()
    rest = read(reader, 18)
    assert drained(reader)
    reader.commit(position)
    reader.close()
    assert load_checkpoint(checkpoint, stream) == position

    everything = pd.concat([first, rest], ignore_index=True)
    assert len(set(zip(everything["shard_id"], everything["sequence_number"]))) == 30
    assert sum(v.startswith(b'{"event_id"') for v in everything["value"]) == 26

    reader = source.open()  # no resume position: the checkpoint file is the position
    again = read(reader, 18)
    assert drained(reader)
    key = ["shard_id", "sequence_number"]
    assert sorted(map(tuple, again[key].to_numpy())) == sorted(map(tuple, rest[key].to_numpy()))
    reader.close()

    reader = source.open(resume=reader.snapshot())  # an explicit position wins over the file
    assert drained(reader)
    reader.close()


def test_start_latest_and_at_timestamp(aws: LocalAWS) -> None:
    stream, client = make_stream(aws.endpoint_url, shards=1)
    client.put_record(StreamName=stream, Data=b"old", PartitionKey="k")
    latest = KinesisSource(stream, endpoint_url=aws.endpoint_url, start="LATEST", idle_interval=0).open()
    assert drained(latest)
    client.put_record(StreamName=stream, Data=b"new", PartitionKey="k")
    assert read(latest, 1)["value"].tolist() == [b"new"]
    latest.close()
    arrivals = read(KinesisSource(stream, endpoint_url=aws.endpoint_url).open(), 2)["approximate_arrival"]
    at = KinesisSource(stream, endpoint_url=aws.endpoint_url, start=arrivals.iloc[1], idle_interval=0).open()
    got = read(at, 1)
    assert drained(at) and got["value"].tolist() == [b"new"]
    at.close()


class PutRecordsFaults:
    """Marks chosen records of real PutRecords responses as failed (the records did reach moto)."""

    def __init__(self, client: Any, fail: Any) -> None:
        self.fail = fail
        self.sent: list[list[str]] = []
        client.meta.events.register("provide-client-params.kinesis.PutRecords", self.before)
        client.meta.events.register("after-call.kinesis.PutRecords", self.after)

    def before(self, params: dict[str, Any], **_: Any) -> None:
        self.sent.append([json.loads(r["Data"])["event_id"] for r in params["Records"]])

    def after(self, parsed: dict[str, Any], **_: Any) -> None:
        failed = 0
        for event_id, result in zip(self.sent[-1], parsed["Records"]):
            if self.fail(len(self.sent), event_id):
                result.clear()
                result.update(
                    ErrorCode="ProvisionedThroughputExceededException", ErrorMessage="Rate exceeded"
                )
                failed += 1
        parsed["FailedRecordCount"] = failed


def test_sink_retries_only_the_failed_records_with_backoff(aws: LocalAWS) -> None:
    stream, _ = make_stream(aws.endpoint_url, shards=2)
    clock = ManualClock("2026-01-01T00:00:00Z")
    writer = KinesisSink(
        stream, partition_key="user_id", endpoint_url=aws.endpoint_url, backoff="250ms"
    ).open(clock)
    first_try = {1, 3}  # calls 1 and 3 are the first tries of the two chunks

    faults = PutRecordsFaults(writer._client, lambda call, eid: call in first_try and int(eid[1:]) % 4 == 0)
    writer.write_batch(events(0, 600))  # one full chunk of 500 goes out at once
    assert [len(s) for s in faults.sent] == [500, 125]
    writer.flush()
    writer.close()
    assert [len(s) for s in faults.sent] == [500, 125, 100, 25]
    assert set(faults.sent[1]) == {f"e{i}" for i in range(0, 500, 4)}
    assert clock.now() == pd.Timestamp("2026-01-01T00:00:00.5Z")  # two retries waited 250 ms each

    reader = KinesisSource(stream, endpoint_url=aws.endpoint_url, idle_interval=0).open()
    stored = read(reader, 750, max_events=1000)
    reader.close()
    counts = pd.Series(event_index(stored["value"])).value_counts()
    # The faults were injected into responses only, so the "failed" records exist twice in moto.
    assert (counts[[i for i in range(600) if i % 4 == 0]] == 2).all()
    assert (counts[[i for i in range(600) if i % 4]] == 1).all()


def test_sink_raises_after_max_attempts(aws: LocalAWS) -> None:
    stream, _ = make_stream(aws.endpoint_url, shards=1)
    writer = KinesisSink(stream, partition_key="user_id", endpoint_url=aws.endpoint_url, max_attempts=3).open(
        ManualClock(0)
    )
    faults = PutRecordsFaults(writer._client, lambda call, eid: eid == "e1")
    writer.write_batch(events(0, 3))
    with pytest.raises(RuntimeError, match=r"1 records still failed after 3 attempts.*ProvisionedThroughput"):
        writer.flush()
    assert [len(s) for s in faults.sent] == [3, 1, 1]


def test_sink_rejects_unusable_partition_keys(aws: LocalAWS) -> None:
    stream, _ = make_stream(aws.endpoint_url, shards=1)
    writer = KinesisSink(stream, partition_key="user_id", endpoint_url=aws.endpoint_url).open()
    bad = events(0, 3).assign(user_id=["u1", None, ""])
    with pytest.raises(ValueError, match=r"rows \[1, 2\]"):
        writer.write_batch(bad)
    with pytest.raises(KeyError, match="no column 'user_id'"):
        writer.write_batch(bad.drop(columns="user_id"))
    odd = events(0, 2).assign(user_id=pd.Series(["u1", "\ud800"], dtype=object))
    with pytest.raises(ValueError, match=r"rows \[1\].*not UTF-8 text.*pass dead_letter="):
        writer.write_batch(odd)  # it raised pyarrow's UnicodeEncodeError, naming neither sink nor fix
    writer.close()


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_sink_sends_rows_with_unusable_partition_keys_to_its_dead_letter(
    aws: LocalAWS, batch_size: int
) -> None:
    # one such row failed write_batch, so the whole batch on every retry; now it is a dead letter
    stream, _ = make_stream(aws.endpoint_url, shards=1)
    dead = ListSink()
    writer = KinesisSink(
        stream, partition_key="user_id", endpoint_url=aws.endpoint_url, dead_letter=dead
    ).open()
    rows = events(0, 7)
    keys: list[Any] = ["u0", None, "", "x" * 257, "\ud800", "u5", "x" * 256]
    rows["user_id"] = pd.Series(keys, dtype=object)
    for start in range(0, len(rows), batch_size):
        writer.write_batch(rows.iloc[start : start + batch_size])
    writer.close()
    got = dead.frame()
    assert got["event_id"].tolist() == ["e1", "e2", "e3", "e4"]
    assert got["reject_reason"].tolist() == [
        "the partition key is missing",
        "the partition key is empty",
        "the partition key has 257 characters, over 256",
        "the partition key is not UTF-8 text (surrogates not allowed at character 0)",
    ]
    reader = KinesisSource(stream, endpoint_url=aws.endpoint_url, idle_interval=0).open()
    stored = read(reader, 3, max_events=100)
    assert drained(reader)
    reader.close()
    assert [json.loads(v)["event_id"] for v in stored["value"]] == ["e0", "e5", "e6"]
    assert KinesisSink("s", partition_key="k", dead_letter=dead).spec()["dead_letter"] == dead.spec()


def test_sink_dead_letters_reach_a_sink_that_publishes_on_commit(aws: LocalAWS, tmp_path: Path) -> None:
    # a DuckDBSink without a key stages rows until its commit(), which the runtime never calls on a
    # writer inside another sink: the dead-letter writer is committed after each flush
    from streamlab.sinks import DuckDBSink

    stream, _ = make_stream(aws.endpoint_url, shards=1)
    db = str(tmp_path / "dead.duckdb")
    dead = DuckDBSink(db, "dead", key=None)
    writer = KinesisSink(
        stream, partition_key="user_id", endpoint_url=aws.endpoint_url, dead_letter=dead
    ).open()
    writer.write_batch(events(0, 3).assign(user_id=["u0", None, "u2"]).drop(columns="properties"))
    writer.close()
    got = dead.read()
    assert got[["event_id", "reject_reason"]].values.tolist() == [["e1", "the partition key is missing"]]


def test_sink_writes_a_row_over_the_1_mib_record_cut_to_fit(aws: LocalAWS) -> None:
    # a dead letter of a 900 kB record: base64 in a JSON row, 1.2 MB; it raised, failing every retry
    import base64
    import hashlib

    stream, client = make_stream(aws.endpoint_url, shards=1)
    raw = b"x" * 900_000
    dead = pd.DataFrame(
        {"raw": [raw], "reason": ["record too large"], "step_id": ["parse"], "user_id": ["u1"]}
    )
    writer = KinesisSink(stream, partition_key="user_id", endpoint_url=aws.endpoint_url).open()
    writer.write_batch(dead)
    writer.close()
    shard = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    [record] = client.get_records(ShardIterator=it["ShardIterator"])["Records"]
    row, whole = json.loads(record["Data"]), base64.b64encode(raw).decode()
    assert len(record["Data"]) + len(b"u1") <= 1024 * 1024
    assert row["raw_truncated"] is True and (row["reason"], row["step_id"]) == ("record too large", "parse")
    assert whole.startswith(row["raw"]) and len(row["raw"]) > 1_000_000
    assert (row["raw_bytes"], row["raw_sha256"]) == (len(whole), hashlib.sha256(whole.encode()).hexdigest())


def test_resharding_reads_children_only_after_their_parents(kinesalite: str, tmp_path: Path) -> None:
    stream, client = make_stream(kinesalite, shards=1)
    sink = KinesisSink(stream, partition_key="user_id", endpoint_url=kinesalite)
    writer = sink.open()
    writer.write_batch(events(0, 20))
    writer.flush()
    parent = client.list_shards(StreamName=stream)["Shards"][0]
    lo, hi = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    client.split_shard(
        StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((lo + hi) // 2)
    )
    wait_active(client, stream)
    writer.write_batch(events(20, 20))
    writer.flush()
    children = [
        s["ShardId"] for s in client.list_shards(StreamName=stream)["Shards"] if s.get("ParentShardId")
    ]
    client.merge_shards(StreamName=stream, ShardToMerge=children[0], AdjacentShardToMerge=children[1])
    wait_active(client, stream)
    writer.write_batch(events(40, 10))
    writer.close()
    shards = client.list_shards(StreamName=stream)["Shards"]
    merged = next(s["ShardId"] for s in shards if s.get("AdjacentParentShardId"))
    generation = {parent["ShardId"]: 0, children[0]: 1, children[1]: 1, merged: 2}

    checkpoint = tmp_path / "cp.json"
    source = KinesisSource(stream, endpoint_url=kinesalite, checkpoint_path=checkpoint, idle_interval=0)
    reader = source.open()
    head = read(reader, 10, max_events=4)
    reader.commit(reader.snapshot())
    reader.close()
    reader = source.open()
    tail = read(reader, 40, max_events=4)
    assert drained(reader)
    reader.commit(reader.snapshot())
    reader.close()
    assert load_checkpoint(checkpoint, stream)[parent["ShardId"]] == SHARD_END

    got = pd.concat([head, tail], ignore_index=True)
    assert sorted(event_index(got["value"])) == list(range(50))
    gens = got["shard_id"].map(generation).tolist()
    assert gens == sorted(gens), "a child shard was read before its parent was finished"
    assert {g: gens.count(g) for g in set(gens)} == {0: 20, 1: 20, 2: 10}
    for _, rows in got.assign(i=event_index(got["value"])).groupby("partition_key"):
        assert rows["i"].tolist() == sorted(rows["i"]), "per-key order broke across the reshard"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: KinesisSource(""), "non-empty"),
        (lambda: KinesisSource("s", start="yesterday-ish"), "neither 'TRIM_HORIZON'"),
        (lambda: KinesisSource("s", records_per_call=0), "records_per_call"),
        (lambda: KinesisSource("s", idle_interval="soon"), "idle_interval"),
        (lambda: KinesisSink("s", partition_key=""), "partition_key"),
        (lambda: KinesisSink("s", partition_key="k", max_attempts=0), "max_attempts"),
    ],
)
def test_configuration_errors_say_what_to_fix(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_checkpoint_of_another_stream_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text(json.dumps({"stream": "other", "shards": {"shardId-000000000000": "1"}}))
    with pytest.raises(ValueError, match="belongs to stream 'other'"):
        load_checkpoint(path, "mine")


def test_pipeline_stopped_mid_stream_and_restarted_delivers_each_good_event_once(
    aws: LocalAWS, tmp_path: Path
) -> None:
    from streamlab import ListSink, Pipeline

    stream, client = make_stream(aws.endpoint_url, shards=2)
    good = events(0, 40)
    writer = KinesisSink(stream, partition_key="user_id", endpoint_url=aws.endpoint_url).open()
    writer.write_batch(good)
    writer.close()
    poison = [b"{not json", b'{"event_id": "p2", "event_type": "click"}', b"\xff\xfe"]
    records = [{"Data": p, "PartitionKey": f"bad{i}"} for i, p in enumerate(poison)]
    assert client.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0
    ok, dead = ListSink(), ListSink()

    def build() -> Any:
        pipeline = Pipeline(
            KinesisSource(stream, endpoint_url=aws.endpoint_url, idle_interval=0), name="kinesis-e2e"
        )
        parsed = pipeline.parse()
        parsed.ok.to(ok)
        parsed.dead_letter.to(dead)
        return pipeline

    checkpoints = tmp_path / "checkpoints"
    first = build().run(max_events=15, batch_size=5, checkpoint_dir=checkpoints)
    assert first.status == "stopped"
    assert 15 <= len(ok.frame()) + len(dead.frame()) < 43

    handle = build().start(batch_size=5, checkpoint_dir=checkpoints)  # resumes from the runtime's checkpoint
    try:
        wait_for(lambda: len(ok.frame()) + len(dead.frame()) >= 43, timeout=20, what="all 43 records")
    finally:
        handle.stop()
    assert sorted(ok.frame()["event_id"]) == sorted(good["event_id"])  # each good event exactly once
    letters = dead.frame()
    assert sorted(letters["raw"], key=len) == sorted(poison, key=len)
    assert set(letters["shard_id"]) <= {s["ShardId"] for s in client.list_shards(StreamName=stream)["Shards"]}

    # A third run starts after the checkpoint: only an event added now comes through.
    writer = KinesisSink(stream, partition_key="user_id", endpoint_url=aws.endpoint_url).open()
    writer.write_batch(events(40, 1))
    writer.close()
    again = build().start(batch_size=5, checkpoint_dir=checkpoints)
    try:
        wait_for(lambda: len(ok.frame()) >= 41, timeout=20, what="the new event")
    finally:
        result = again.stop()
    assert result.metrics["events_in"] == 1
    assert ok.frame()["event_id"].tolist()[40:] == ["e40"]


def test_spec_round_trips_through_the_constructor() -> None:
    for obj in (
        KinesisSource("s", start="2026-01-01T00:00:00Z", checkpoint_path="/tmp/cp.json", idle_interval="1s"),
        KinesisSink("s", partition_key="user_id", backoff="50ms", endpoint_url="http://127.0.0.1:1"),
    ):
        spec = obj.spec()
        params = {k: v for k, v in spec.items() if k != "kind"}
        assert type(obj)(**params).spec() == spec


def test_local_aws_stop_leaves_no_threads_and_frees_the_port() -> None:
    import socket
    import threading

    before = set(threading.enumerate())
    with LocalAWS(region="eu-west-1") as local:
        client = local.client("kinesis")
        client.create_stream(StreamName="threads", ShardCount=1)
        assert client.meta.region_name == "eu-west-1"
        client.close()
        port = int(local.endpoint_url.rsplit(":", 1)[1])
    wait_for(lambda: not (set(threading.enumerate()) - before), timeout=10, what="moto's threads to end")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the listening socket was closed
    with pytest.raises(RuntimeError, match="start"):
        _ = local.endpoint_url


# --- configuration errors from the service -------------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere boto3 looks (and no instance metadata to ask: nothing goes out)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # nor boto3's default session, which keeps the credentials it resolved first (an earlier test's, in
    # this worker) for the life of the process
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def test_a_missing_stream_is_named_with_its_fix(aws: LocalAWS) -> None:
    """It was botocore's bare ResourceNotFoundException, naming neither the source/sink nor the fix."""
    name = f"missing-{uuid.uuid4().hex[:6]}"
    with pytest.raises(RuntimeError, match=rf"KinesisSource\('{name}'\): stream '{name}' does not exist"):
        KinesisSource(name, endpoint_url=aws.endpoint_url).open()
    writer = KinesisSink(name, partition_key="k", endpoint_url=aws.endpoint_url).open()
    writer.write_batch(pd.DataFrame({"k": ["a"]}))
    with pytest.raises(RuntimeError, match=r"KinesisSink\(.*does not exist.*Create it first"):
        writer.flush()


@pytest.mark.usefixtures("no_credentials")
def test_missing_credentials_are_named_with_their_fix() -> None:
    """It was botocore's bare NoCredentialsError ("Unable to locate credentials")."""
    with pytest.raises(RuntimeError, match=r"KinesisSource\('s'\): no usable AWS credentials.*endpoint_url="):
        KinesisSource("s", region="eu-west-1").open()
    writer = KinesisSink("s", partition_key="k", region="eu-west-1").open()
    writer.write_batch(pd.DataFrame({"k": ["a"]}))
    with pytest.raises(RuntimeError, match=r"KinesisSink\(.*no usable AWS credentials.*AWS_ACCESS_KEY_ID"):
        writer.flush()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("UnrecognizedClientException", "refused the AWS credentials"),
        ("ExpiredTokenException", "refused the AWS credentials"),
        ("AccessDeniedException", "may not use stream 's'"),
        ("ThrottlingException", None),
        ("ExpiredIteratorException", None),
    ],
)
def test_service_errors_from_configuration_are_explained_and_others_pass(
    code: str, message: str | None
) -> None:
    from botocore.exceptions import ClientError
    from streamlab.connectors.aws import configuration_error

    exc = ClientError({"Error": {"Code": code, "Message": "m"}}, "PutRecords")
    err = configuration_error(
        exc, owner="KinesisSink('s')", target="stream 's'", region="r", endpoint_url=None
    )
    assert (err is None) if message is None else (message in str(err) and "KinesisSink('s')" in str(err))


def test_close_after_a_failed_send_neither_sends_again_nor_raises_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """close() flushed what was still buffered after a send had failed: it waited on the failing
    service again (attempts x timeout per chunk) and raised the same kind of error a second time."""
    import logging

    from streamlab.testing import find_free_port

    url = f"http://127.0.0.1:{find_free_port()}"  # nothing listens here
    writer = KinesisSink("s", partition_key="k", endpoint_url=url, timeout=1).open()
    attempts: list[int] = []
    writer._client.meta.events.register("before-send.kinesis.PutRecords", lambda **_: attempts.append(1))
    with pytest.raises(RuntimeError, match="did not answer put_records"):
        writer.write_batch(pd.DataFrame({"k": [f"k{i}" for i in range(600)]}))  # a full chunk goes out
    tried = len(attempts)
    with caplog.at_level(logging.WARNING, logger="streamlab"):
        writer.close()  # 100 records were left
    assert len(attempts) == tried >= 1
    assert "100 record(s) not sent" in caplog.text


def test_a_pipeline_read_back_from_yaml_sends_the_same_rows_to_the_same_dead_letter_sink(
    aws: LocalAWS, dead_letters_both_ways: Any
) -> None:
    # to_yaml nested the dead-letter sink's spec, but from_yaml passed it on as a dict, not a sink
    stream, _ = make_stream(aws.endpoint_url, shards=1)
    rows = events(0, 4).assign(user_id=["u0", "", "x" * 257, "u3"])
    built, read_back = dead_letters_both_ways(
        rows,
        lambda dead: KinesisSink(
            stream, partition_key="user_id", endpoint_url=aws.endpoint_url, dead_letter=dead
        ),
    )
    assert built["event_id"].tolist() == ["e1", "e2"]
    pd.testing.assert_frame_equal(read_back, built)


def test_kinesalite_outlives_a_client_that_dies_mid_request(kinesalite: str) -> None:
    # kinesalite rethrew a request's "aborted" error, so one client killed mid-request (the fault tests
    # SIGKILL pipelines) ended the server and failed every later test of the module ("could not
    # connect"); the stand-in now logs it and serves on, as a real endpoint would
    import socket
    import struct
    from urllib.parse import urlsplit

    port = urlsplit(kinesalite).port
    assert port is not None
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
                b"X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 1000\r\n\r\n{"
            )
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
    name, client = make_stream(kinesalite, shards=1)  # refused before: the server had exited
    assert name in client.list_streams()["StreamNames"]
