"""PubSubSource / PubSubSink / admin helpers against streamlab's PubSubEmulator with the official client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from google.cloud import pubsub_v1
from streamlab.connectors.pubsub import (
    PubSubSink,
    PubSubSource,
    create_subscription,
    create_topic,
    encode_json_rows,
)

from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs
from streamlab.testing import wait_for

pytestmark = pytest.mark.services
PROJECT = "streamlab-test"


@pytest.fixture(scope="module")
def emulator() -> Iterator[PubSubEmulator]:
    with PubSubEmulator() as emu:
        yield emu


@pytest.fixture
def names(emulator: PubSubEmulator) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    topic = create_topic(f"events-{suffix}", project=PROJECT, emulator_host=emulator.host)
    # No retry backoff: the tests reopen readers right after a nack and expect the message at once.
    sub = create_subscription(
        f"events-{suffix}-sub", topic, project=PROJECT, retry_min_backoff="0s", retry_max_backoff="0s",
        emulator_host=emulator.host,
    )  # fmt: skip
    return topic, sub


def events(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "event_type": ["click" if i % 2 else "view" for i in range(n)],
            "user_id": [f"u{i % 3}" for i in range(n)],
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
            "properties": [{"i": i} for i in range(n)],
        }
    )


def publish_raw(host: str, topic: str, payloads: list[bytes]) -> None:
    client = pubsub_v1.PublisherClient(**emulator_client_kwargs(host, "publisher"))
    for p in payloads:
        client.publish(topic, p).result(timeout=10)
    client.stop()


def read(reader: Any, count: int, timeout: float = 10) -> pd.DataFrame:
    batches: list[pd.DataFrame] = []

    def enough() -> bool:
        batch = reader.poll(count - sum(len(b) for b in batches))
        if batch is not None:
            batches.append(batch)
        return sum(len(b) for b in batches) >= count

    wait_for(enough, timeout=timeout, what=f"{count} messages from the reader")
    return pd.concat(batches, ignore_index=True)


def test_uncommitted_messages_come_back_after_reopen(
    emulator: PubSubEmulator, names: tuple[str, str]
) -> None:
    topic, sub = names
    writer = PubSubSink(topic, attributes=["event_type"], emulator_host=emulator.host).open()
    writer.write_batch(events(17))
    writer.close()
    publish_raw(emulator.host, topic, [b"{not json", b"\xff\xfe", b""])

    source = PubSubSource(sub, emulator_host=emulator.host)
    reader = source.open()
    first = read(reader, 12)
    assert list(first.columns) == list(PubSubSource.columns)
    assert str(first["publish_time"].dtype) == "datetime64[ns, UTC]"
    assert first["delivery_attempt"].isna().all()  # no dead-letter policy: Pub/Sub does not count
    position = reader.snapshot()
    assert len(position) == 12
    rest = read(reader, 8)
    assert reader.poll(10) is None
    reader.commit(position)  # only the first 12: the other 8 were never flushed downstream
    reader.close()
    everything = pd.concat([first, rest], ignore_index=True)
    assert everything["message_id"].nunique() == 20
    good = [json.loads(v) for v in everything["value"] if v.startswith(b'{"')]
    assert sorted(e["event_id"] for e in good) == sorted(f"e{i}" for i in range(17))
    assert {a["event_type"] for a in everything["attributes"] if a} == {"click", "view"}

    reader = source.open(resume=position)
    again = read(reader, 8)
    assert sorted(again["message_id"]) == sorted(rest["message_id"])
    assert sorted(again["value"]) == sorted(rest["value"])
    reader.commit(reader.snapshot())
    reader.close()
    assert nothing_left(emulator.host, sub)


def test_flow_control_bounds_uncommitted_messages(emulator: PubSubEmulator, names: tuple[str, str]) -> None:
    topic, sub = names
    publish_raw(emulator.host, topic, [f"m{i}".encode() for i in range(10)])
    reader = PubSubSource(sub, emulator_host=emulator.host, max_messages=4).open()
    try:
        first = read(reader, 4)
        # The stream may not hand out a fifth message while four are uncommitted.
        for _ in range(5):
            assert reader.poll(10) is None
        assert reader.lag() == 0
        reader.commit(reader.snapshot())
        second = read(reader, 4)
        assert set(first["message_id"]).isdisjoint(second["message_id"])
    finally:
        reader.close()


def test_dead_letter_after_repeated_failures(emulator: PubSubEmulator) -> None:
    host, suffix = emulator.host, uuid.uuid4().hex[:8]
    topic = create_topic(f"t-{suffix}", project=PROJECT, emulator_host=host)
    dead = create_topic(f"dead-{suffix}", project=PROJECT, emulator_host=host)
    dead_sub = create_subscription(f"dead-{suffix}", dead, project=PROJECT, emulator_host=host)
    sub = create_subscription(
        f"s-{suffix}",
        topic,
        project=PROJECT,
        dead_letter_topic=dead,
        max_delivery_attempts=5,
        retry_min_backoff="0s",
        retry_max_backoff="0s",
        emulator_host=host,
    )
    publish_raw(host, topic, [b"poison"])
    source = PubSubSource(sub, emulator_host=host)
    for attempt in range(1, 6):  # each run fails before committing, so close() nacks the message
        reader = source.open()
        batch = read(reader, 1)
        assert batch["delivery_attempt"].tolist() == [attempt]
        reader.close()
    dead_reader = PubSubSource(dead_sub, emulator_host=host).open()
    dead_letter = read(dead_reader, 1)
    dead_reader.commit(dead_reader.snapshot())
    dead_reader.close()
    assert dead_letter["value"].tolist() == [b"poison"]
    assert dead_letter["attributes"][0]["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"


def read_ordered(host: str, sub: str, n: int) -> list[dict[str, Any]]:
    """``n`` messages of an ordered subscription as rows, each batch acked as read (ordered delivery
    sends a key's next message only after the previous one's ack)."""
    reader = PubSubSource(sub, emulator_host=host).open()
    seen: list[dict[str, Any]] = []
    try:

        def all_read() -> bool:
            batch = reader.poll(100)
            if batch is not None:
                seen.extend(batch.to_dict("records"))
                reader.commit(reader.snapshot())
            return len(seen) >= n

        wait_for(all_read, timeout=10, what=f"{n} ordered messages")
    finally:
        reader.close()
    return seen


def test_sink_ordering_keys_and_static_attributes(emulator: PubSubEmulator) -> None:
    host, suffix = emulator.host, uuid.uuid4().hex[:8]
    topic = create_topic(f"o-{suffix}", project=PROJECT, emulator_host=host)
    sub = create_subscription(
        f"o-{suffix}", topic, project=PROJECT, enable_message_ordering=True, emulator_host=host
    )
    writer = PubSubSink(
        topic, ordering_key="user_id", attributes={"app": "streamlab"}, emulator_host=host
    ).open()
    writer.write_batch(events(9))
    writer.flush()
    writer.close()
    seen = read_ordered(host, sub, 9)
    by_key: dict[str, list[int]] = {}
    for row in seen:
        assert row["attributes"] == {"app": "streamlab"}
        by_key.setdefault(row["ordering_key"], []).append(json.loads(row["value"])["properties"]["i"])
    assert by_key == {"u0": [0, 3, 6], "u1": [1, 4, 7], "u2": [2, 5, 8]}


def test_flush_raises_when_publishing_fails(emulator: PubSubEmulator) -> None:
    writer = PubSubSink("never-created", project=PROJECT, emulator_host=emulator.host).open()
    writer.write_batch(events(2))
    with pytest.raises(RuntimeError, match="2 of 2 messages were not published"):
        writer.flush()
    writer.close()


def test_source_reports_a_missing_subscription(emulator: PubSubEmulator) -> None:
    reader = PubSubSource("missing", project=PROJECT, emulator_host=emulator.host).open()
    try:
        with pytest.raises(RuntimeError, match="streaming pull failed"):
            wait_for(lambda: reader.poll(1) is not None, timeout=10, what="the stream to fail")
    finally:
        reader.close()


def test_create_subscription_configures_production_policies(emulator: PubSubEmulator) -> None:
    host, suffix = emulator.host, uuid.uuid4().hex[:8]
    topic = create_topic(f"p-{suffix}", project=PROJECT, emulator_host=host)
    dead = create_topic(f"p-dead-{suffix}", project=PROJECT, emulator_host=host)
    path = create_subscription(
        f"p-{suffix}", topic, project=PROJECT, dead_letter_topic=dead, max_delivery_attempts=7,
        retry_min_backoff="15s", retry_max_backoff="5m", ack_deadline=45, enable_message_ordering=True,
        emulator_host=host,
    )  # fmt: skip
    assert create_subscription(f"p-{suffix}", topic, project=PROJECT, emulator_host=host) == path  # exist_ok
    client = pubsub_v1.SubscriberClient(**emulator_client_kwargs(host, "subscriber"))
    got = client.get_subscription(request={"subscription": path})
    client.close()
    assert got.ack_deadline_seconds == 45 and got.enable_message_ordering
    assert (got.dead_letter_policy.dead_letter_topic, got.dead_letter_policy.max_delivery_attempts) == (
        dead,
        7,
    )
    assert got.retry_policy.minimum_backoff.total_seconds() == 15
    assert got.retry_policy.maximum_backoff.total_seconds() == 300


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PubSubSource("s"), "a project is required"),
        (lambda: PubSubSource("s", project="p", max_messages=0), "max_messages"),
        (
            lambda: PubSubSource("s", project="p", flow_control={"max_msgs": 1}),
            r"flow_control=\.\.\.\): unknown keys",
        ),
        (lambda: PubSubSource("projects/p/topics/t"), "not a subscription path"),
        (lambda: PubSubSink("t", project="p", attributes="event_type"), "wrap a single column"),
        (lambda: create_subscription("s", "t", project="p", ack_deadline=5), "ack_deadline"),
        (lambda: create_subscription("s", "t", project="p", retry_min_backoff="1h"), "600s"),
        (
            lambda: create_subscription(
                "s", "t", project="p", dead_letter_topic="d", max_delivery_attempts=2
            ),
            "5..100",
        ),
    ],
)
def test_configuration_errors_say_what_to_fix(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_encode_json_rows_round_trips_the_event_schema() -> None:
    frame = events(3)
    decoded = [json.loads(b) for b in encode_json_rows(frame)]
    assert [d["event_id"] for d in decoded] == ["e0", "e1", "e2"]
    assert decoded[1]["timestamp"] == "2026-01-01T00:00:01.000000Z"
    assert decoded[2]["properties"] == {"i": 2}
    assert encode_json_rows(frame.iloc[:0]) == []


def test_pipeline_stopped_mid_stream_and_restarted_delivers_each_good_event_once(
    emulator: PubSubEmulator, names: tuple[str, str]
) -> None:
    from streamlab import ListSink, Pipeline

    topic, sub = names
    good = events(40)
    writer = PubSubSink(topic, emulator_host=emulator.host).open()
    writer.write_batch(good)
    writer.close()
    poison = [b"{not json", b'{"event_id": "p2", "event_type": "click"}', b"\xff\xfe"]
    publish_raw(emulator.host, topic, poison)
    ok, dead = ListSink(), ListSink()

    def build() -> Any:
        pipeline = Pipeline(PubSubSource(sub, emulator_host=emulator.host), name="pubsub-e2e")
        parsed = pipeline.parse()
        parsed.ok.to(ok)
        parsed.dead_letter.to(dead)
        return pipeline

    first = build().run(max_events=15, batch_size=5)
    assert first.status == "stopped"
    assert 15 <= len(ok.frame()) + len(dead.frame()) < 43

    handle = build().start(batch_size=5)
    try:
        wait_for(lambda: len(ok.frame()) + len(dead.frame()) >= 43, timeout=20, what="all 43 messages")
    finally:
        handle.stop()
    assert sorted(ok.frame()["event_id"]) == sorted(good["event_id"])  # each good event exactly once
    letters = dead.frame()
    assert sorted(letters["raw"], key=len) == sorted(poison, key=len)
    assert letters["reason"].str.len().gt(0).all()

    assert nothing_left(emulator.host, sub)  # everything was acked


def nothing_left(host: str, sub: str) -> bool:
    client = pubsub_v1.SubscriberClient(**emulator_client_kwargs(host, "subscriber"))
    try:
        # A pull without return_immediately is held open for a moment when nothing is there.
        return not client.pull(
            request={"subscription": sub, "max_messages": 100}, timeout=10
        ).received_messages
    finally:
        client.close()


def test_spec_round_trips_through_the_constructor() -> None:
    for obj in (
        PubSubSource(
            "s", project="p", max_messages=10, flow_control={"max_bytes": 1000}, emulator_host="h:1"
        ),
        PubSubSink("t", project="p", ordering_key="user_id", attributes=["event_type"]),
        PubSubSink("t", project="p", attributes={"app": "streamlab"}),
    ):
        spec = obj.spec()
        params = {k: v for k, v in spec.items() if k != "kind"}
        assert type(obj)(**params).spec() == spec


def test_importing_the_connectors_loads_no_cloud_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import streamlab.connectors.pubsub, streamlab.connectors.pubsub_emulator, streamlab.connectors.kinesis\n"
        "import streamlab.connectors.timestream, streamlab.connectors.aws_local, streamlab.connectors.bigquery\n"
        "heavy = ('grpc', 'boto3', 'botocore', 'moto', 'google.cloud', 'google.pubsub')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CRASHING_READER = """
import os, sys, threading
from streamlab.connectors.pubsub import PubSubSource
reader = PubSubSource(sys.argv[1], emulator_host=sys.argv[2]).open()
got, tick = 0, threading.Event()
for _ in range(2000):
    batch = reader.poll(100)
    got += 0 if batch is None else len(batch)
    if got >= int(sys.argv[3]):
        break
    tick.wait(0.01)
print(got, flush=True)
os._exit(1)  # a crash: no commit, no close, no nack
"""


def test_messages_of_a_crashed_reader_return_after_the_ack_deadline() -> None:
    import subprocess
    import sys

    from streamlab.clock import ManualClock

    clock = ManualClock("2026-01-01T00:00:00Z")
    with PubSubEmulator(clock=clock) as emulator:
        host = emulator.host
        topic = create_topic("crash", project=PROJECT, emulator_host=host)
        sub = create_subscription("crash", topic, project=PROJECT, retry_min_backoff="0s", emulator_host=host)
        publish_raw(host, topic, [f"m{i}".encode() for i in range(6)])
        crashed = subprocess.run(
            [sys.executable, "-c", CRASHING_READER, sub, host, "6"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert crashed.returncode == 1 and crashed.stdout.strip() == "6", crashed.stderr[-2000:]
        assert nothing_left(host, sub)  # still leased to the dead reader
        reader = PubSubSource(sub, emulator_host=host).open()
        try:
            clock.advance("601s")  # past any ack deadline the client may have asked for (at most 600 s)
            again = read(reader, 6)
            assert sorted(again["value"]) == sorted(f"m{i}".encode() for i in range(6))
            reader.commit(reader.snapshot())
        finally:
            reader.close()


def test_pipeline_forwards_dead_letters_to_a_topic(emulator: PubSubEmulator, names: tuple[str, str]) -> None:
    import base64

    from streamlab import ListSink, Pipeline

    topic, sub = names
    host = emulator.host
    dlq = create_topic(f"dlq-{uuid.uuid4().hex[:6]}", project=PROJECT, emulator_host=host)
    dlq_sub = create_subscription(f"dlq-{uuid.uuid4().hex[:6]}", dlq, project=PROJECT, emulator_host=host)
    poison = [b"\xff\xfe not utf-8", b'{"event_id": "no-time"}']
    writer = PubSubSink(topic, emulator_host=host).open()
    writer.write_batch(events(3))
    writer.close()
    publish_raw(host, topic, poison)
    ok = ListSink()
    pipeline = Pipeline(PubSubSource(sub, emulator_host=host))
    parsed = pipeline.parse()
    parsed.ok.to(ok)
    parsed.dead_letter.to(PubSubSink(dlq, attributes=["step_id"], emulator_host=host))
    handle = pipeline.start(commit_every="100ms")
    try:
        reader = PubSubSource(dlq_sub, emulator_host=host).open()
        letters = read(reader, 2)
        reader.commit(reader.snapshot())
        reader.close()
    finally:
        handle.stop()
    assert len(ok.frame()) == 3
    decoded = [json.loads(v) for v in letters["value"]]
    assert sorted(base64.b64decode(d["raw"]) for d in decoded) == sorted(poison)
    assert all(d["reason"] for d in decoded)
    assert {a["step_id"] for a in letters["attributes"]} == {decoded[0]["step_id"]}


def test_a_row_over_pubsubs_message_limit_is_published_cut_to_fit(
    emulator: PubSubEmulator, names: tuple[str, str]
) -> None:
    import base64
    import hashlib

    topic, sub = names
    raw = b'{"event_id": "' + b"x" * 9_000_000 + b'"}'  # base64 in the dead letter: 12 MB
    dead = pd.DataFrame({"raw": [raw], "reason": ["record too large"], "step_id": ["parse"]})
    writer = PubSubSink(topic, emulator_host=emulator.host).open()
    writer.write_batch(pd.concat([dead, dead.assign(raw=[b"small"])], ignore_index=True))
    writer.close()  # flushes: raised before (the client refused the message)
    reader = PubSubSource(sub, emulator_host=emulator.host).open()
    got = read(reader, 2, timeout=30)
    reader.commit(reader.snapshot())
    reader.close()
    letters = sorted((json.loads(v) for v in got["value"]), key=lambda d: len(d["raw"]))
    assert base64.b64decode(letters[0]["raw"]) == b"small" and "raw_truncated" not in letters[0]
    cut, whole = letters[1], base64.b64encode(raw).decode()
    assert cut["raw_truncated"] is True and (cut["reason"], cut["step_id"]) == ("record too large", "parse")
    assert whole.startswith(cut["raw"]) and len(cut["raw"]) > 9_000_000
    assert (cut["raw_bytes"], cut["raw_sha256"]) == (len(whole), hashlib.sha256(whole.encode()).hexdigest())


def test_a_resume_after_a_kill_between_the_checkpoint_and_its_acks_counts_each_message_once(
    emulator: PubSubEmulator, names: tuple[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run saves its checkpoint (windows open, 30 messages in their counts) and dies before
    its acks reach Pub/Sub; the messages come again. Resumed from that checkpoint, the reader acks them
    without delivering them, so every window counts each message once (twice before: at least once).

    Pub/Sub does not keep publish order (the client hands messages over on a pool of callback threads),
    so no window closes on the way (``delay="1h"``): the windows are emitted when the resumed run stops,
    after it has read the 31 messages that the checkpoint does not hold. With ``delay="0s"`` the counts
    depended on arrival order, and on Python 3.14 messages of the first minute came late."""
    from streamlab.connectors.pubsub import source as source_module

    from streamlab import ListSink, Pipeline, TumblingWindow, agg

    topic, sub = names
    n = 60
    stamps = [
        *pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
        pd.Timestamp("2026-01-01 01:00", tz="UTC"),
    ]
    rows = pd.DataFrame({"event_id": [f"e{i}" for i in range(n + 1)], "timestamp": stamps})
    writer = PubSubSink(topic, emulator_host=emulator.host).open()
    writer.write_batch(rows)
    writer.close()
    sink = ListSink()

    def build() -> Any:
        pipeline = Pipeline(PubSubSource(sub, emulator_host=emulator.host), name="pubsub-once")
        events = pipeline.parse({"event_id": "string", "timestamp": "timestamp"})
        events.window(TumblingWindow("10s"), key=None, delay="1h").agg(agg.count()).to(sink)
        return pipeline

    class KilledError(Exception):
        pass

    real_commit = source_module._PubSubReader.commit

    def killed_before_acking(self: Any, position: Any) -> None:
        raise KilledError("the process died after saving its checkpoint, before acknowledging")

    monkeypatch.setattr(source_module._PubSubReader, "commit", killed_before_acking)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Exception) as died:
        build().run(max_events=30, batch_size=5, checkpoint_dir=ckpt)
    assert "the process died" in str(died.value) or isinstance(died.value.__cause__, KilledError)
    assert any(ckpt.iterdir())
    monkeypatch.setattr(source_module._PubSubReader, "commit", real_commit)

    assert len(sink.frame()) == 0  # every window still open, in the checkpoint's state
    handle = build().start(batch_size=5, checkpoint_dir=ckpt, commit_every="100ms")
    try:
        wait_for(lambda: handle.metrics["events_in"] >= n + 1 - 30, timeout=30, what="the 31 messages left")
    finally:
        result = handle.stop(flush_windows=True)
    assert result.metrics["events_in"] == n + 1 - 30  # the 30 of the checkpoint were not delivered again
    got = sink.frame()
    first_minute = got[got["window_start"] < pd.Timestamp("2026-01-01 00:01", tz="UTC")]
    assert first_minute["count"].tolist() == [10] * 6, got
    assert nothing_left(emulator.host, sub)


def test_a_row_whose_attribute_value_is_over_1024_bytes_goes_to_dead_letter(
    emulator: PubSubEmulator, names: tuple[str, str]
) -> None:
    """Pub/Sub refuses an attribute value over 1,024 bytes (its quotas page; the emulator refuses it too):
    such a row failed the whole flush on Google Cloud; it goes to ``dead_letter`` with the reason now, and
    the other rows are published."""
    from streamlab.testing import ListSink

    topic, sub = names
    batch = events(3).assign(event_type=["view", "é" * 513, "x" * 1024])  # 1,026 bytes; 1,024 bytes
    dead = ListSink()
    writer = PubSubSink(
        topic, attributes=["event_type"], emulator_host=emulator.host, dead_letter=dead
    ).open()
    writer.write_batch(batch)
    writer.close()
    rows = dead.frame()
    assert rows["event_id"].tolist() == ["e1"]
    assert rows["reject_reason"].tolist() == [
        "attribute 'event_type' is 1026 bytes long; Pub/Sub takes attribute values of at most 1024 bytes"
    ]
    reader = PubSubSource(sub, emulator_host=emulator.host).open()
    try:
        got = read(reader, 2)
        reader.commit(reader.snapshot())
    finally:
        reader.close()
    assert sorted(json.loads(v)["event_id"] for v in got["value"]) == ["e0", "e2"]


def test_without_a_dead_letter_sink_flush_names_the_row_too_long_for_pubsub(
    emulator: PubSubEmulator, names: tuple[str, str]
) -> None:
    topic, _ = names
    writer = PubSubSink(topic, attributes=["event_type"], emulator_host=emulator.host).open()
    writer.write_batch(events(2).assign(event_type=["view", "x" * 1025]))
    with pytest.raises(RuntimeError, match=r"1 row\(s\) were not published: attribute 'event_type' is 1025"):
        writer.flush()
    writer.close()


def test_a_row_whose_ordering_key_is_over_1024_bytes_goes_to_dead_letter_and_its_key_order_holds(
    emulator: PubSubEmulator,
) -> None:
    """An ordering key over 1,024 bytes (one hostile event's id as the key) is refused by Pub/Sub, as the
    emulator now refuses it: the publish failed and the flush with it, on every retry and restart. Such a
    row goes to ``dead_letter`` now; the other keys are published in their order."""
    from streamlab.testing import ListSink

    host, suffix = emulator.host, uuid.uuid4().hex[:8]
    topic = create_topic(f"k-{suffix}", project=PROJECT, emulator_host=host)
    sub = create_subscription(
        f"k-{suffix}", topic, project=PROJECT, enable_message_ordering=True, emulator_host=host
    )
    batch = events(6).assign(user_id=["u0", "é" * 513, "u1", "k" * 1024, "u0", "u1"])  # 1,026 bytes; 1,024
    dead = ListSink()
    writer = PubSubSink(topic, ordering_key="user_id", emulator_host=host, dead_letter=dead).open()
    writer.write_batch(batch)
    writer.flush()  # raised before: the service refused the publish of the 1,026-byte key
    writer.close()
    rows = dead.frame()
    assert rows["event_id"].tolist() == ["e1"]
    assert rows["reject_reason"].tolist() == [
        "ordering key (column 'user_id') is 1026 bytes long; Pub/Sub takes ordering keys of at most 1024 bytes"
    ]
    seen = read_ordered(host, sub, 5)
    by_key: dict[str, list[str]] = {}
    for row in seen:
        by_key.setdefault(row["ordering_key"][:2], []).append(json.loads(row["value"])["event_id"])
    assert by_key == {"u0": ["e0", "e4"], "u1": ["e2", "e5"], "kk": ["e3"]}
    without = PubSubSink(topic, ordering_key="user_id", emulator_host=host).open()
    without.write_batch(events(1).assign(user_id=["x" * 1025]))
    with pytest.raises(
        RuntimeError, match=r"1 row\(s\) were not published: ordering key \(column 'user_id'\) is 1025"
    ):
        without.flush()
    without.close()


def test_the_emulator_refuses_what_pubsub_refuses(emulator: PubSubEmulator) -> None:
    # Google's limits per message (attribute values and ordering keys of 1,024 bytes, keys of 256, 100
    # attributes): the emulator took any, so a sink's mistakes there passed every local test
    from google.api_core import exceptions

    topic = create_topic(f"lim-{uuid.uuid4().hex[:8]}", project=PROJECT, emulator_host=emulator.host)
    client = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        **emulator_client_kwargs(emulator.host, "publisher"),
    )
    try:
        for kwargs, words in [
            ({"kind": "x" * 1025}, "Attribute value for key kind is 1025 bytes"),
            ({"k" * 257: "v"}, "Attribute key"),
            ({f"a{i}": "v" for i in range(101)}, "101 attributes"),
            ({"ordering_key": "o" * 1025}, "Ordering key is 1025 bytes"),
        ]:
            with pytest.raises(exceptions.InvalidArgument, match=words):
                client.publish(topic, b"x", **kwargs).result(timeout=10)
            if "ordering_key" in kwargs:
                client.resume_publish(topic, kwargs["ordering_key"])
        at_limits = {"kind": "x" * 1024, "k" * 256: "v", "ordering_key": "o" * 1024}
        assert client.publish(topic, b"x", **at_limits).result(timeout=10)
    finally:
        client.stop()


def test_a_lone_surrogate_in_an_ordering_key_or_attribute_is_published_escaped(
    emulator: PubSubEmulator,
) -> None:
    # a lone surrogate ("\ud800", which a json field or a user function can hold) cannot be text in a
    # message: converting the column raised UnicodeEncodeError in write_batch, on every retry and restart.
    # It is written as the escape \ud800 (the six characters JSON writes), as the Redis and Kafka sinks do
    host, suffix = emulator.host, uuid.uuid4().hex[:8]
    topic = create_topic(f"s-{suffix}", project=PROJECT, emulator_host=host)
    sub = create_subscription(
        f"s-{suffix}", topic, project=PROJECT, enable_message_ordering=True, emulator_host=host
    )
    batch = events(2).assign(user_id=pd.Series(["u0", "u\ud800"], dtype=object))
    batch["kind"] = pd.Series(["a", "b\udcff"], dtype=object)
    writer = PubSubSink(topic, ordering_key="user_id", attributes=["kind"], emulator_host=host).open()
    writer.write_batch(batch)
    writer.flush()
    writer.close()
    reader = PubSubSource(sub, emulator_host=host).open()
    try:
        got = read(reader, 2)
        reader.commit(reader.snapshot())
    finally:
        reader.close()
    pairs = sorted(zip(got["ordering_key"], [a["kind"] for a in got["attributes"]]))
    assert pairs == [("u0", "a"), ("u\\ud800", "b\\udcff")]
