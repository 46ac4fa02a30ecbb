"""PubSubEmulator driven by the official google-cloud-pubsub client (no mocks: real gRPC on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1.types import PublishRequest, PubsubMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab.clock import ManualClock
from streamlab.local import LocalServer
from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs
from streamlab.testing import wait_for

pytestmark = pytest.mark.services
PROJECT = "emu-test"


class Clients:
    def __init__(self, host: str) -> None:
        self.host = host
        self.pub = pubsub_v1.PublisherClient(**emulator_client_kwargs(host, "publisher"))
        self.sub = pubsub_v1.SubscriberClient(**emulator_client_kwargs(host, "subscriber"))

    def topic(self, **kw: Any) -> str:
        name = f"projects/{PROJECT}/topics/t-{uuid.uuid4().hex[:8]}"
        return self.pub.create_topic(request={"name": name, **kw}).name

    def subscription(self, topic: str, **kw: Any) -> str:
        name = f"projects/{PROJECT}/subscriptions/s-{uuid.uuid4().hex[:8]}"
        return self.sub.create_subscription(request={"name": name, "topic": topic, **kw}).name

    def publish(self, topic: str, *payloads: bytes, **kw: Any) -> list[str]:
        return [self.pub.publish(topic, p, **kw).result(timeout=10) for p in payloads]

    def pull(self, sub: str, n: int = 100, wait: bool = False) -> list[Any]:
        request = {"subscription": sub, "max_messages": n, "return_immediately": not wait}
        return list(self.sub.pull(request=request, timeout=10).received_messages)

    def pull_until(self, sub: str, count: int, timeout: float = 10) -> list[Any]:
        got: list[Any] = []

        def enough() -> bool:
            got.extend(self.pull(sub, count - len(got)))
            return len(got) >= count

        wait_for(enough, timeout=timeout, what=f"{count} messages on {sub}")
        return got

    def ack(self, sub: str, messages: list[Any]) -> None:
        self.sub.acknowledge(request={"subscription": sub, "ack_ids": [m.ack_id for m in messages]})

    def nack(self, sub: str, messages: list[Any]) -> None:
        self.sub.modify_ack_deadline(
            request={"subscription": sub, "ack_ids": [m.ack_id for m in messages], "ack_deadline_seconds": 0}
        )

    def close(self) -> None:
        self.pub.stop()
        self.pub.transport.grpc_channel.close()
        self.sub.close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[PubSubEmulator]:
    with PubSubEmulator() as emu:
        yield emu


@pytest.fixture
def clients(emulator: PubSubEmulator) -> Iterator[Clients]:
    c = Clients(emulator.host)
    yield c
    c.close()


@pytest.fixture
def manual() -> Iterator[tuple[ManualClock, Clients]]:
    clock = ManualClock("2026-01-01T00:00:00Z")
    with PubSubEmulator(clock=clock) as emu:
        c = Clients(emu.host)
        yield clock, c
        c.close()


def test_topic_and_subscription_crud(clients: Clients) -> None:
    topic = clients.topic(labels={"team": "data"})
    sub = clients.subscription(topic, ack_deadline_seconds=30)
    assert clients.pub.get_topic(request={"topic": topic}).labels["team"] == "data"
    got = clients.sub.get_subscription(request={"subscription": sub})
    assert (got.topic, got.ack_deadline_seconds) == (topic, 30)
    assert topic in [t.name for t in clients.pub.list_topics(request={"project": f"projects/{PROJECT}"})]
    assert sub in [s.name for s in clients.sub.list_subscriptions(request={"project": f"projects/{PROJECT}"})]
    assert list(clients.pub.list_topic_subscriptions(request={"topic": topic})) == [sub]
    updated = clients.sub.update_subscription(
        request={
            "subscription": {"name": sub, "ack_deadline_seconds": 45, "labels": {"tier": "gold"}},
            "update_mask": {"paths": ["ack_deadline_seconds", "labels"]},
        }
    )
    assert (updated.ack_deadline_seconds, dict(updated.labels), updated.topic) == (
        45,
        {"tier": "gold"},
        topic,
    )
    with pytest.raises(gexc.InvalidArgument, match="cannot update field 'topic'"):
        clients.sub.update_subscription(
            request={"subscription": {"name": sub, "topic": "x"}, "update_mask": {"paths": ["topic"]}}
        )
    renamed = clients.pub.update_topic(
        request={"topic": {"name": topic, "labels": {"team": "ml"}}, "update_mask": {"paths": ["labels"]}}
    )
    assert dict(renamed.labels) == {"team": "ml"}
    with pytest.raises(gexc.AlreadyExists):
        clients.pub.create_topic(request={"name": topic})
    with pytest.raises(gexc.NotFound):
        clients.subscription(f"projects/{PROJECT}/topics/missing")
    with pytest.raises(gexc.InvalidArgument):
        clients.pub.create_topic(request={"name": "no-project-prefix"})
    with pytest.raises(gexc.MethodNotImplemented, match="plain pull"):
        clients.subscription(topic, filter='attributes.kind = "x"')
    clients.sub.delete_subscription(request={"subscription": sub})
    clients.pub.delete_topic(request={"topic": topic})
    with pytest.raises(gexc.NotFound):
        clients.sub.get_subscription(request={"subscription": sub})


def test_publish_pull_ack_fans_out_to_every_subscription(clients: Clients) -> None:
    topic = clients.topic()
    s1, s2 = clients.subscription(topic), clients.subscription(topic)
    ids = clients.publish(topic, b"a", b"b", b"c", source="test")
    assert len(set(ids)) == 3
    for sub in (s1, s2):
        got = clients.pull_until(sub, 3)
        assert sorted(m.message.data for m in got) == [b"a", b"b", b"c"]
        assert {m.message.attributes["source"] for m in got} == {"test"}
        assert all(m.message.publish_time.timestamp() > 0 for m in got)
        clients.ack(sub, got)
    assert clients.pull(s1, wait=True) == []  # an empty pull is held open briefly, then returns nothing


def test_messages_up_to_pubsubs_limit_pass_and_a_larger_request_is_refused_as_by_pubsub(
    clients: Clients, emulator: PubSubEmulator
) -> None:
    # gRPC's default 4 MiB cap (server and client channel) refused messages Pub/Sub takes
    topic = clients.topic()
    sub = clients.subscription(topic)
    big = bytes(range(256)) * (9_900_000 // 256)
    clients.publish(topic, big, b"small")
    got = clients.pull_until(sub, 2)
    assert sorted(m.message.data for m in got) == sorted([big, b"small"])
    # the official client refuses over 10,000,000 bytes itself; a raw request over 10 MiB gets Pub/Sub's error
    channel = grpc.insecure_channel(emulator.host, options=[("grpc.max_send_message_length", -1)])
    publish = channel.unary_unary(
        "/google.pubsub.v1.Publisher/Publish",
        request_serializer=PublishRequest.serialize,
        response_deserializer=lambda b: b,
    )
    request = PublishRequest(
        topic=topic, messages=[PubsubMessage(data=big), PubsubMessage(data=big[:700_000])]
    )
    with pytest.raises(Exception, match="Request payload size exceeds the limit: 10485760 bytes") as err:
        publish(request, timeout=10)
    assert err.value.code().name == "INVALID_ARGUMENT"  # type: ignore[attr-defined]
    channel.close()


def test_nack_redelivers_and_dead_letters_after_max_attempts(clients: Clients) -> None:
    topic, dead = clients.topic(), clients.topic()
    dead_sub = clients.subscription(dead)
    sub = clients.subscription(
        topic, dead_letter_policy={"dead_letter_topic": dead, "max_delivery_attempts": 5}
    )
    clients.publish(topic, b"poison", kind="bad")
    attempts = []
    for _ in range(5):
        (m,) = clients.pull_until(sub, 1)
        attempts.append(m.delivery_attempt)
        clients.nack(sub, [m])
    assert attempts == [1, 2, 3, 4, 5]
    (dl,) = clients.pull_until(dead_sub, 1)
    assert dl.message.data == b"poison"
    assert dl.message.attributes["kind"] == "bad"
    assert dl.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert clients.pull(sub) == []


def test_ack_deadline_expiry_redelivers_on_the_injected_clock(manual: tuple[ManualClock, Clients]) -> None:
    clock, clients = manual
    topic = clients.topic()
    sub = clients.subscription(topic, ack_deadline_seconds=10)
    clients.publish(topic, b"x")
    (first,) = clients.pull_until(sub, 1)
    clock.advance("5s")
    clients.sub.modify_ack_deadline(
        request={"subscription": sub, "ack_ids": [first.ack_id], "ack_deadline_seconds": 10}
    )
    clock.advance("9s")  # 14 s after delivery but only 9 s after the extension: still leased
    assert clients.pull(sub) == []
    clock.advance("2s")
    (again,) = clients.pull_until(sub, 1)
    assert again.message.message_id == first.message.message_id and again.ack_id != first.ack_id
    clients.ack(sub, [first])  # the expired lease's ack id no longer acks anything
    clock.advance("11s")
    assert [m.message.message_id for m in clients.pull_until(sub, 1)] == [first.message.message_id]


def test_retry_policy_backs_off_exponentially(manual: tuple[ManualClock, Clients]) -> None:
    clock, clients = manual
    topic = clients.topic()
    sub = clients.subscription(
        topic, retry_policy={"minimum_backoff": {"seconds": 4}, "maximum_backoff": {"seconds": 6}}
    )
    clients.publish(topic, b"x")
    clients.nack(sub, clients.pull_until(sub, 1))
    assert clients.pull(sub) == []  # first backoff: 4 s
    clock.advance("4s")
    clients.nack(sub, clients.pull_until(sub, 1))
    clock.advance("5s")  # second backoff would be 8 s, capped at 6 s
    assert clients.pull(sub) == []
    clock.advance("1s")
    assert len(clients.pull_until(sub, 1)) == 1


def test_ordering_keys_hold_back_a_key_until_its_message_is_acked(clients: Clients) -> None:
    topic = clients.topic()
    sub = clients.subscription(topic, enable_message_ordering=True)
    ordered = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        **emulator_client_kwargs(clients.host, "publisher"),
    )
    for i in range(3):
        ordered.publish(topic, f"a{i}".encode(), ordering_key="A").result(timeout=10)
    ordered.publish(topic, b"b0", ordering_key="B").result(timeout=10)
    ordered.stop()
    got = clients.pull_until(sub, 2)
    assert sorted(m.message.data for m in got) == [b"a0", b"b0"]
    assert clients.pull(sub) == []
    a0 = next(m for m in got if m.message.ordering_key == "A")
    clients.nack(sub, [a0])  # a nacked message comes back before later ones of its key
    (again,) = clients.pull_until(sub, 1)
    assert again.message.data == b"a0"
    seen = [b"a0"]
    clients.ack(sub, [again])
    for _ in range(2):
        (m,) = clients.pull_until(sub, 1)
        seen.append(m.message.data)
        clients.ack(sub, [m])
    assert seen == [b"a0", b"a1", b"a2"]


def test_streaming_pull_respects_flow_control(clients: Clients) -> None:
    topic = clients.topic()
    sub = clients.subscription(topic)
    clients.publish(topic, *[f"m{i}".encode() for i in range(5)])
    requests: list[Any] = [
        pubsub_v1.types.StreamingPullRequest(
            subscription=sub, stream_ack_deadline_seconds=30, max_outstanding_messages=2
        )
    ]
    more = threading.Event()

    def request_stream() -> Iterator[Any]:
        yield requests[0]
        more.wait(10)
        yield requests[-1]
        more.clear()
        more.wait(10)

    responses = clients.sub.streaming_pull(requests=request_stream(), timeout=20)
    first = next(responses).received_messages
    assert len(first) == 2  # 5 waiting, but only 2 may be outstanding on this stream
    requests.append(pubsub_v1.types.StreamingPullRequest(ack_ids=[first[0].ack_id]))
    more.set()
    second = next(responses).received_messages
    assert len(second) == 1
    responses.cancel()
    more.set()


def test_subscribe_streaming_pull_with_nack(clients: Clients) -> None:
    topic = clients.topic()
    sub = clients.subscription(topic)
    clients.publish(topic, *[f"m{i}".encode() for i in range(10)])
    seen: list[bytes] = []
    lock = threading.Lock()

    def callback(message: Any) -> None:
        with lock:
            first_time = message.data not in seen
            seen.append(message.data)
        if first_time and message.data == b"m3":
            message.nack()
        else:
            message.ack()

    future = clients.sub.subscribe(sub, callback=callback)
    try:
        wait_for(lambda: len(seen) >= 11, timeout=10, what="10 messages plus one redelivery")
    finally:
        future.cancel()
        future.result(timeout=10)
    assert sorted(set(seen)) == sorted(f"m{i}".encode() for i in range(10))
    assert seen.count(b"m3") == 2


def test_seek_to_a_time_replays_and_skips(manual: tuple[ManualClock, Clients]) -> None:
    clock, clients = manual
    topic = clients.topic()
    sub = clients.subscription(topic, retain_acked_messages=True)
    clients.publish(topic, b"early")
    clock.advance("1m")
    middle = clock.now()
    clients.publish(topic, b"late")
    clients.ack(sub, clients.pull_until(sub, 2))
    clients.sub.seek(request={"subscription": sub, "time": middle.to_pydatetime()})
    assert [m.message.data for m in clients.pull_until(sub, 1)] == [b"late"]
    clients.sub.seek(
        request={"subscription": sub, "time": (middle - __import__("datetime").timedelta(hours=1))}
    )
    assert sorted(m.message.data for m in clients.pull_until(sub, 2)) == [b"early", b"late"]


def test_emulators_are_independent_and_stop_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    with PubSubEmulator() as a, PubSubEmulator() as b:
        ca, cb = Clients(a.host), Clients(b.host)
        topic = ca.topic()
        with pytest.raises(gexc.NotFound):
            cb.pub.get_topic(request={"topic": topic})
        sub = ca.subscription(topic)
        future = ca.sub.subscribe(sub, callback=lambda m: m.ack())  # an open stream must not block stop()
        ca.publish(topic, b"x")
        wait_for(lambda: ca.pull(sub) == [], timeout=10, what="the subscriber to ack")
    # Both emulators stopped while the stream was still open; the client now sees it broken.
    future.cancel()
    with contextlib.suppress(Exception):
        future.result(timeout=10)
    ca.close()
    cb.close()

    def only_old_emulator_threads_left() -> bool:
        return not any(t.name.startswith("pubsub-emu") for t in set(threading.enumerate()) - before)

    wait_for(only_old_emulator_threads_left, timeout=10, what="emulator threads to end")
    with pytest.raises(RuntimeError, match="start"):
        _ = a.host


def test_configuration_errors_are_raised_at_construction() -> None:
    with pytest.raises(ValueError, match="port"):
        PubSubEmulator(port=70000)


def test_runs_as_a_module(tmp_path: Any) -> None:
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "streamlab.connectors.pubsub_emulator", "--port", str(port)]

    with LocalServer("pubsub-emulator", command, startup_timeout=30) as server:
        c = Clients(f"127.0.0.1:{server.port}")
        topic = c.topic()
        sub = c.subscription(topic)
        c.publish(topic, b"hello")
        assert [m.message.data for m in c.pull_until(sub, 1)] == [b"hello"]
        c.close()
    assert not server.running
    assert (
        subprocess.run(
            [sys.executable, "-m", "streamlab.connectors.pubsub_emulator", "--help"],
            check=False,
            capture_output=True,
        ).returncode
        == 0
    )


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.sampled_from(["", "A", "B"])),
        st.tuples(st.just("pull"), st.integers(1, 4)),
        st.tuples(st.sampled_from(["ack", "nack"]), st.integers(0, 10)),
    ),
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_no_message_is_lost_duplicated_or_reordered_within_a_key(clients: Clients, ops: list[Any]) -> None:
    topic = clients.topic()
    sub = clients.subscription(topic, enable_message_ordering=True)
    ordered = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        **emulator_client_kwargs(clients.host, "publisher"),
    )
    published: dict[str, list[str]] = {}  # ordering key -> message ids in publish order
    leased: dict[str, Any] = {}  # ack id -> received message
    acked: list[str] = []

    def check_leases() -> None:
        ids = [m.message.message_id for m in leased.values()]
        assert len(ids) == len(set(ids)), "a message was handed out twice while leased"
        for key, order in published.items():
            if not key:
                continue
            out = [m.message.message_id for m in leased.values() if m.message.ordering_key == key]
            assert len(out) <= 1, f"two messages of key {key} outstanding"
            pending = [i for i in order if i not in acked]
            assert not out or out[0] == pending[0], f"key {key} delivered out of order"

    for op, arg in ops:
        if op == "publish":
            mid = ordered.publish(topic, b"x", ordering_key=arg).result(timeout=10)
            published.setdefault(arg, []).append(mid)
        elif op == "pull":
            for m in clients.pull(sub, arg):
                leased[m.ack_id] = m
        elif leased:
            ack_id = sorted(leased)[arg % len(leased)]
            message = leased.pop(ack_id)
            if op == "ack":
                clients.ack(sub, [message])
                acked.append(message.message.message_id)
            else:
                clients.nack(sub, [message])
        check_leases()
    if leased:
        clients.nack(sub, list(leased.values()))
    total = sum(len(v) for v in published.values())

    def drained() -> bool:
        batch = clients.pull(sub, 100)
        if batch:
            clients.ack(sub, batch)
        acked.extend(m.message.message_id for m in batch)
        return len(acked) >= total

    wait_for(drained, timeout=10, what="every published message to be acked")
    ordered.stop()
    assert sorted(acked) == sorted(i for ids in published.values() for i in ids)
