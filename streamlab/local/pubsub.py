"""A local Google Cloud Pub/Sub emulator for machines without the gcloud SDK.

:class:`PubSubEmulator` is a gRPC server speaking the ``google.pubsub.v1`` Publisher and Subscriber
services, so the official ``google-cloud-pubsub`` client talks to it through ``PUBSUB_EMULATOR_HOST``
(or ``emulator_host=`` on streamlab's Pub/Sub connectors). It keeps everything in memory and is meant for
notebooks, demos and tests, like Google's own emulator.

Implemented: topic and subscription create/get/list/update/delete, publish, pull, streaming pull (with the
client's flow control), acknowledge, modify ack deadline (0 = nack), ack-deadline expiry and redelivery,
``delivery_attempt`` with forwarding to a dead-letter topic after ``max_delivery_attempts``, ordering keys
(no new message for a key while one is outstanding), retry policy backoff, and seek to a time.
Not implemented: push and export subscriptions, filters, schemas, snapshots, exactly-once delivery, IAM.

Run it standalone with ``python -m streamlab.local.pubsub --port 8085``.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from streamlab._compat import without_python_support_notices
from streamlab.clock import Clock, SystemClock

__all__ = ["PubSubEmulator", "emulator_client_kwargs", "main"]

_NS = 1_000_000_000
# Real Pub/Sub clamps ack deadlines to [10 s, 600 s]; the client relies on the lower bound.
_MIN_ACK_S, _MAX_ACK_S, _DEFAULT_ACK_S = 10, 600, 10
_MAX_BATCH = 1000
PUBLISH_REQUEST_LIMIT = 10 * 1024 * 1024
"""Pub/Sub's largest publish request, in bytes (10 MiB): a larger one fails with INVALID_ARGUMENT, as on Google's."""
_DEFAULT_MAX_OUTSTANDING = 1000
# When an injected clock is not the wall clock, its time may jump without anyone telling the scheduler.
_MANUAL_CLOCK_RECHECK_S = 0.2


# Pub/Sub's per-message limits (cloud.google.com/pubsub/quotas, "Resource limits"), which Google's service
# enforces on publish and the emulator therefore does too (PubSubSink keeps its rows within them)
ATTRIBUTES_MAX, ATTRIBUTE_KEY_MAX_BYTES, ATTRIBUTE_VALUE_MAX_BYTES, ORDERING_KEY_MAX_BYTES = (
    100,
    256,
    1024,
    1024,
)


def message_problem(message: Any) -> str | None:
    """Why Pub/Sub refuses a message to publish (an attribute or ordering key over its limits), or None.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> message_problem(SimpleNamespace(attributes={"kind": "x" * 1025}, ordering_key=""))
    'Attribute value for key kind is 1025 bytes; the limit is 1024 bytes'
    >>> message_problem(SimpleNamespace(attributes={}, ordering_key="k" * 1024)) is None
    True
    """
    attributes = dict(message.attributes)
    if len(attributes) > ATTRIBUTES_MAX:
        return f"A message has {len(attributes)} attributes; the limit is {ATTRIBUTES_MAX}"
    for name, value in attributes.items():
        if len(name.encode("utf-8", "surrogatepass")) > ATTRIBUTE_KEY_MAX_BYTES:
            return f"Attribute key {name[:64]!r}... is over {ATTRIBUTE_KEY_MAX_BYTES} bytes"
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > ATTRIBUTE_VALUE_MAX_BYTES:
            return f"Attribute value for key {name} is {size} bytes; the limit is {ATTRIBUTE_VALUE_MAX_BYTES} bytes"
    size = len(message.ordering_key.encode("utf-8", "surrogatepass"))
    if size > ORDERING_KEY_MAX_BYTES:
        return f"Ordering key is {size} bytes; the limit is {ORDERING_KEY_MAX_BYTES} bytes"
    return None


def _import_grpc() -> tuple[Any, Any]:
    try:
        import grpc

        with without_python_support_notices():
            from google.pubsub_v1 import types as pubsub_types
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "PubSubEmulator needs grpcio and google-cloud-pubsub: pip install 'streamlab[pubsub]'"
        ) from exc
    return grpc, pubsub_types


@dataclass(eq=False)
class _Message:
    seq: int
    message_id: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    publish_ns: int


@dataclass(eq=False)
class _Lease:
    message: _Message
    deadline_ns: int
    attempt: int
    stream: _Stream | None


@dataclass(eq=False)
class _Stream:
    """Flow-control bookkeeping of one StreamingPull call."""

    max_messages: int
    max_bytes: int
    deadline_s: int
    ack_ids: set[str] = field(default_factory=set)
    bytes: int = 0
    closed: bool = False

    def room(self) -> tuple[int, int]:
        return self.max_messages - len(self.ack_ids), self.max_bytes - self.bytes


class _Subscription:
    def __init__(self, proto: Any) -> None:
        self.proto = proto
        # Waiting messages sorted by publish sequence, with the time each becomes deliverable (backoff).
        self.backlog: list[tuple[int, int, _Message]] = []
        self.leases: dict[str, _Lease] = {}
        self.attempts: dict[str, int] = {}
        self.busy_keys: set[str] = set()
        self.retained: list[_Message] = []

    def enqueue(self, message: _Message, available_ns: int = 0) -> None:
        bisect.insort(self.backlog, (message.seq, available_ns, message), key=lambda e: e[0])


class _State:
    """Everything one emulator knows; guarded by ``cond``."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.cond = threading.Condition(threading.RLock())
        self.topics: dict[str, Any] = {}
        self.subscriptions: dict[str, _Subscription] = {}
        self.seq = itertools.count(1)
        self.ack_seq = itertools.count(1)
        # (due_ns, tiebreak, subscription name, ack id or "" for a backoff wake-up)
        self.timers: list[tuple[int, int, str, str]] = []
        self.timer_seq = itertools.count()
        self.stopping = False


class _Servicer:
    """The RPC handlers; every method takes the raw request protobuf and the gRPC context."""

    def __init__(self, state: _State, grpc: Any, pt: Any, reader_pool: futures.ThreadPoolExecutor) -> None:
        self._s = state
        self._grpc = grpc
        self._pt = pt
        self._readers = reader_pool
        from google.protobuf import empty_pb2

        self._empty = empty_pb2.Empty

    # -- helpers -----------------------------------------------------------------------------------
    def _pb(self, name: str) -> Any:
        return getattr(self._pt, name).pb()

    def _now(self) -> int:
        return self._s.clock.now_ns()

    def _abort(self, ctx: Any, code: str, text: str) -> None:
        ctx.abort(getattr(self._grpc.StatusCode, code), text)

    def _check_name(self, ctx: Any, name: str, kind: str) -> None:
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != kind or not parts[1] or not parts[3]:
            self._abort(
                ctx,
                "INVALID_ARGUMENT",
                f"Invalid resource name {name!r}: expected projects/PROJECT/{kind}/NAME",
            )

    def _sub(self, ctx: Any, name: str) -> _Subscription:
        sub = self._s.subscriptions.get(name)
        if sub is None:
            self._abort(ctx, "NOT_FOUND", f"Subscription does not exist: {name}")
        return sub  # type: ignore[return-value]

    def _timer(self, due_ns: int, sub_name: str, ack_id: str) -> None:
        heapq.heappush(self._s.timers, (due_ns, next(self._s.timer_seq), sub_name, ack_id))
        self._s.cond.notify_all()

    # -- publisher ---------------------------------------------------------------------------------
    def create_topic(self, req: Any, ctx: Any) -> Any:
        self._check_name(ctx, req.name, "topics")
        with self._s.cond:
            if req.name in self._s.topics:
                self._abort(ctx, "ALREADY_EXISTS", f"Topic already exists: {req.name}")
            topic = self._pb("Topic")()
            topic.CopyFrom(req)
            self._s.topics[req.name] = topic
            return topic

    def get_topic(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            if req.topic not in self._s.topics:
                self._abort(ctx, "NOT_FOUND", f"Topic does not exist: {req.topic}")
            return self._s.topics[req.topic]

    def update_topic(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            topic = self._s.topics.get(req.topic.name)
            if topic is None:
                self._abort(ctx, "NOT_FOUND", f"Topic does not exist: {req.topic.name}")
            problem = _apply_mask(topic, req.topic, req.update_mask.paths)
            if problem:
                self._abort(ctx, "INVALID_ARGUMENT", problem)
            return topic

    def list_topics(self, req: Any, ctx: Any) -> Any:
        prefix = req.project + "/topics/"
        with self._s.cond:
            topics = [t for n, t in sorted(self._s.topics.items()) if n.startswith(prefix)]
        return self._pb("ListTopicsResponse")(topics=topics)

    def list_topic_subscriptions(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            names = sorted(n for n, s in self._s.subscriptions.items() if s.proto.topic == req.topic)
        return self._pb("ListTopicSubscriptionsResponse")(subscriptions=names)

    def delete_topic(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            if self._s.topics.pop(req.topic, None) is None:
                self._abort(ctx, "NOT_FOUND", f"Topic does not exist: {req.topic}")
            for sub in self._s.subscriptions.values():
                if sub.proto.topic == req.topic:
                    sub.proto.topic = "_deleted-topic_"
            return self._empty()

    def publish(self, req: Any, ctx: Any) -> Any:
        if not req.messages:
            self._abort(ctx, "INVALID_ARGUMENT", "Publish needs at least one message")
        if req.ByteSize() > PUBLISH_REQUEST_LIMIT:
            self._abort(
                ctx,
                "INVALID_ARGUMENT",
                f"Request payload size exceeds the limit: {PUBLISH_REQUEST_LIMIT} bytes.",
            )
        for m in req.messages:
            problem = message_problem(m)
            if problem is not None:  # Google's service refuses the whole request
                self._abort(ctx, "INVALID_ARGUMENT", problem)
        with self._s.cond:
            if req.topic not in self._s.topics:
                self._abort(ctx, "NOT_FOUND", f"Topic does not exist: {req.topic}")
            now = self._now()
            messages = []
            for m in req.messages:
                seq = next(self._s.seq)
                messages.append(_Message(seq, str(seq), m.data, dict(m.attributes), m.ordering_key, now))
            self._fan_out(req.topic, messages)
        return self._pb("PublishResponse")(message_ids=[m.message_id for m in messages])

    def _fan_out(self, topic: str, messages: list[_Message]) -> None:
        for sub in self._s.subscriptions.values():
            if sub.proto.topic == topic and not sub.proto.detached:
                for m in messages:
                    sub.enqueue(m)
        self._s.cond.notify_all()

    # -- subscriber admin --------------------------------------------------------------------------
    def create_subscription(self, req: Any, ctx: Any) -> Any:
        self._check_name(ctx, req.name, "subscriptions")
        if req.push_config.push_endpoint or req.filter or req.enable_exactly_once_delivery:
            self._abort(
                ctx,
                "UNIMPLEMENTED",
                "The streamlab emulator supports plain pull subscriptions only (no push, filter or exactly-once)",
            )
        with self._s.cond:
            if req.name in self._s.subscriptions:
                self._abort(ctx, "ALREADY_EXISTS", f"Subscription already exists: {req.name}")
            if req.topic not in self._s.topics:
                self._abort(ctx, "NOT_FOUND", f"Topic does not exist: {req.topic}")
            dlp = req.dead_letter_policy
            if dlp.dead_letter_topic and dlp.dead_letter_topic not in self._s.topics:
                self._abort(ctx, "NOT_FOUND", f"Dead-letter topic does not exist: {dlp.dead_letter_topic}")
            if (
                dlp.dead_letter_topic
                and dlp.max_delivery_attempts
                and not 5 <= dlp.max_delivery_attempts <= 100
            ):
                self._abort(ctx, "INVALID_ARGUMENT", "max_delivery_attempts must be between 5 and 100")
            proto = self._pb("Subscription")()
            proto.CopyFrom(req)
            if not proto.ack_deadline_seconds:
                proto.ack_deadline_seconds = _DEFAULT_ACK_S
            proto.ack_deadline_seconds = min(max(proto.ack_deadline_seconds, _MIN_ACK_S), _MAX_ACK_S)
            if dlp.dead_letter_topic and not dlp.max_delivery_attempts:
                proto.dead_letter_policy.max_delivery_attempts = 5
            proto.state = 1  # ACTIVE
            self._s.subscriptions[req.name] = _Subscription(proto)
            return proto

    def get_subscription(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            return self._sub(ctx, req.subscription).proto

    def update_subscription(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            sub = self._sub(ctx, req.subscription.name)
            problem = _apply_mask(sub.proto, req.subscription, req.update_mask.paths)
            if problem:
                self._abort(ctx, "INVALID_ARGUMENT", problem)
            return sub.proto

    def list_subscriptions(self, req: Any, ctx: Any) -> Any:
        prefix = req.project + "/subscriptions/"
        with self._s.cond:
            subs = [s.proto for n, s in sorted(self._s.subscriptions.items()) if n.startswith(prefix)]
        return self._pb("ListSubscriptionsResponse")(subscriptions=subs)

    def delete_subscription(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            self._sub(ctx, req.subscription)
            del self._s.subscriptions[req.subscription]
            self._s.cond.notify_all()
            return self._empty()

    # -- delivery ----------------------------------------------------------------------------------
    def _deliver(
        self, name: str, sub: _Subscription, max_messages: int, max_bytes: int, deadline_s: int, stream: Any
    ) -> list[Any]:
        """Lease up to ``max_messages`` deliverable messages (caller holds the lock)."""
        now = self._now()
        ordered = sub.proto.enable_message_ordering
        dlp = sub.proto.dead_letter_policy
        held_keys: set[str] = set(sub.busy_keys) if ordered else set()
        received: list[Any] = []
        keep: list[tuple[int, int, _Message]] = []
        size = 0
        for index, entry in enumerate(sub.backlog):
            _, available_ns, m = entry
            if len(received) >= max_messages or (received and size + len(m.data) > max_bytes):
                keep.extend(sub.backlog[index:])
                break
            blocked = ordered and m.ordering_key and m.ordering_key in held_keys
            if blocked or available_ns > now:
                if ordered and m.ordering_key:
                    held_keys.add(m.ordering_key)  # nothing for this key may overtake a waiting message
                keep.append(entry)
                continue
            attempt = sub.attempts.get(m.message_id, 0) + 1
            sub.attempts[m.message_id] = attempt
            ack_id = f"{m.message_id}-{next(self._s.ack_seq)}"
            deadline_ns = now + deadline_s * _NS
            sub.leases[ack_id] = _Lease(m, deadline_ns, attempt, stream)
            self._timer(deadline_ns, name, ack_id)
            if stream is not None:
                stream.ack_ids.add(ack_id)
                stream.bytes += len(m.data)
            if ordered and m.ordering_key:
                sub.busy_keys.add(m.ordering_key)
                held_keys.add(m.ordering_key)
            size += len(m.data)
            received.append(
                self._pb("ReceivedMessage")(
                    ack_id=ack_id,
                    delivery_attempt=attempt if dlp.dead_letter_topic else 0,
                    message=self._pb("PubsubMessage")(
                        data=m.data,
                        attributes=m.attributes,
                        message_id=m.message_id,
                        publish_time=_timestamp(m.publish_ns),
                        ordering_key=m.ordering_key,
                    ),
                )
            )
        sub.backlog = keep
        return received

    def _release(self, sub: _Subscription, lease: _Lease) -> None:
        if lease.stream is not None:
            lease.stream.bytes -= len(lease.message.data)
        if lease.message.ordering_key:
            sub.busy_keys.discard(lease.message.ordering_key)
        self._s.cond.notify_all()

    def _ack(self, sub: _Subscription, ack_ids: Any) -> None:
        for ack_id in ack_ids:
            lease = sub.leases.pop(ack_id, None)
            if lease is None:
                continue  # an expired lease: the message is already back in the backlog
            if lease.stream is not None:
                lease.stream.ack_ids.discard(ack_id)
            sub.attempts.pop(lease.message.message_id, None)
            if sub.proto.retain_acked_messages:
                sub.retained.append(lease.message)
            self._release(sub, lease)

    def _nack(self, name: str, sub: _Subscription, ack_id: str) -> None:
        lease = sub.leases.pop(ack_id, None)
        if lease is None:
            return
        if lease.stream is not None:
            lease.stream.ack_ids.discard(ack_id)
        m = lease.message
        dlp = sub.proto.dead_letter_policy
        if dlp.dead_letter_topic and lease.attempt >= dlp.max_delivery_attempts:
            sub.attempts.pop(m.message_id, None)
            self._forward_dead_letter(name, sub, m, lease.attempt)
        else:
            available_ns = 0
            if sub.proto.HasField("retry_policy"):
                rp = sub.proto.retry_policy
                lo = rp.minimum_backoff.ToNanoseconds() if rp.HasField("minimum_backoff") else 10 * _NS
                hi = rp.maximum_backoff.ToNanoseconds() if rp.HasField("maximum_backoff") else 600 * _NS
                available_ns = self._now() + min(hi, lo * 2 ** min(lease.attempt - 1, 32))
                self._timer(available_ns, name, "")
            sub.enqueue(m, available_ns)
        self._release(sub, lease)

    def _forward_dead_letter(self, name: str, sub: _Subscription, m: _Message, attempts: int) -> None:
        topic = sub.proto.dead_letter_policy.dead_letter_topic
        if topic not in self._s.topics:
            sub.enqueue(m)  # real Pub/Sub keeps redelivering when the dead-letter topic is gone
            return
        seq = next(self._s.seq)
        attributes = dict(m.attributes)
        attributes.update(
            CloudPubSubDeadLetterSourceSubscription=name.rsplit("/", 1)[-1],
            CloudPubSubDeadLetterSourceSubscriptionProject=name.split("/")[1],
            CloudPubSubDeadLetterSourceTopicPublishTime=_timestamp(m.publish_ns).ToJsonString(),
            CloudPubSubDeadLetterSourceDeliveryCount=str(attempts),
        )
        self._fan_out(topic, [_Message(seq, str(seq), m.data, attributes, m.ordering_key, self._now())])

    def _modify(self, name: str, sub: _Subscription, ack_id: str, seconds: int) -> None:
        if seconds == 0:
            self._nack(name, sub, ack_id)
            return
        lease = sub.leases.get(ack_id)
        if lease is not None:
            lease.deadline_ns = self._now() + min(max(seconds, 0), _MAX_ACK_S) * _NS
            self._timer(lease.deadline_ns, name, ack_id)

    def expire_due(self) -> int | None:
        """Nack leases past their deadline; return when the next timer is due (caller holds the lock)."""
        now = self._now()
        timers = self._s.timers
        while timers and timers[0][0] <= now:
            _, _, name, ack_id = heapq.heappop(timers)
            sub = self._s.subscriptions.get(name)
            if sub is None:
                continue
            if not ack_id:
                self._s.cond.notify_all()  # a backed-off message became deliverable
                continue
            lease = sub.leases.get(ack_id)
            if lease is not None and lease.deadline_ns <= now:  # stale timers of extended leases do nothing
                self._nack(name, sub, ack_id)
        return timers[0][0] if timers else None

    def pull(self, req: Any, ctx: Any) -> Any:
        max_messages = min(req.max_messages or _MAX_BATCH, _MAX_BATCH)
        waited = False
        with self._s.cond:
            while True:
                sub = self._sub(ctx, req.subscription)
                got = self._deliver(
                    req.subscription, sub, max_messages, 1 << 62, sub.proto.ack_deadline_seconds, None
                )
                if got or waited or req.return_immediately or self._s.stopping:
                    return self._pb("PullResponse")(received_messages=got)
                # Like the service, hold an empty pull open briefly instead of making the client spin.
                self._s.cond.wait(timeout=min(ctx.time_remaining() or 1.0, 1.0))
                waited = True

    def acknowledge(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            self._ack(self._sub(ctx, req.subscription), req.ack_ids)
            return self._empty()

    def modify_ack_deadline(self, req: Any, ctx: Any) -> Any:
        with self._s.cond:
            sub = self._sub(ctx, req.subscription)
            for ack_id in req.ack_ids:
                self._modify(req.subscription, sub, ack_id, req.ack_deadline_seconds)
            return self._empty()

    def _handle_stream_request(self, name: str, stream: _Stream, req: Any) -> None:
        with self._s.cond:
            sub = self._s.subscriptions.get(name)
            if sub is None:
                return
            self._ack(sub, req.ack_ids)
            for ack_id, seconds in zip(req.modify_deadline_ack_ids, req.modify_deadline_seconds):
                self._modify(name, sub, ack_id, seconds)
            if req.stream_ack_deadline_seconds:
                stream.deadline_s = min(max(req.stream_ack_deadline_seconds, _MIN_ACK_S), _MAX_ACK_S)

    def streaming_pull(self, requests: Iterator[Any], ctx: Any) -> Iterator[Any]:
        first = next(requests)
        name = first.subscription
        with self._s.cond:
            sub = self._sub(ctx, name)
            stream = _Stream(
                max_messages=first.max_outstanding_messages or _DEFAULT_MAX_OUTSTANDING,
                max_bytes=first.max_outstanding_bytes or (1 << 62),
                deadline_s=first.stream_ack_deadline_seconds or sub.proto.ack_deadline_seconds,
            )
        self._handle_stream_request(name, stream, first)

        def end_stream() -> None:
            with self._s.cond:
                stream.closed = True
                self._s.cond.notify_all()

        ctx.add_callback(end_stream)

        def read_requests() -> None:
            try:
                for req in requests:
                    self._handle_stream_request(name, stream, req)
            except Exception:  # the client closed or cancelled the stream: nothing left to read
                pass
            finally:
                end_stream()

        self._readers.submit(read_requests)
        while True:
            with self._s.cond:
                got: list[Any] = []
                while not got:
                    if stream.closed or self._s.stopping or name not in self._s.subscriptions:
                        return
                    n_room, b_room = stream.room()
                    if n_room > 0 and b_room > 0:
                        got = self._deliver(
                            name, sub, min(n_room, _MAX_BATCH), b_room, stream.deadline_s, stream
                        )
                    if not got:
                        self._s.cond.wait()
            yield self._pb("StreamingPullResponse")(received_messages=got)

    def seek(self, req: Any, ctx: Any) -> Any:
        if req.snapshot:
            self._abort(ctx, "UNIMPLEMENTED", "The streamlab emulator supports seek to a time, not snapshots")
        target_ns = req.time.ToNanoseconds()
        with self._s.cond:
            sub = self._sub(ctx, req.subscription)
            unacked = [lease.message for lease in sub.leases.values()] + [e[2] for e in sub.backlog]
            candidates = {m.seq: m for m in unacked + sub.retained}
            for stream in {lease.stream for lease in sub.leases.values() if lease.stream is not None}:
                stream.ack_ids.clear()
                stream.bytes = 0
            sub.leases.clear()
            sub.busy_keys.clear()
            sub.attempts.clear()
            sub.backlog = []
            sub.retained = [m for m in sub.retained if m.publish_ns < target_ns]
            for seq in sorted(candidates):
                if candidates[seq].publish_ns >= target_ns:
                    sub.enqueue(candidates[seq])
            self._s.cond.notify_all()
        return self._pb("SeekResponse")()

    # -- wiring ------------------------------------------------------------------------------------
    def handlers(self) -> tuple[Any, Any]:
        grpc, pt = self._grpc, self._pt
        from google.protobuf import empty_pb2

        def unary(fn: Callable[[Any, Any], Any], req: str, resp: str | None) -> Any:
            out = empty_pb2.Empty if resp is None else getattr(pt, resp).pb()
            return grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=getattr(pt, req).pb().FromString,
                response_serializer=out.SerializeToString,
            )

        publisher = {
            "CreateTopic": unary(self.create_topic, "Topic", "Topic"),
            "UpdateTopic": unary(self.update_topic, "UpdateTopicRequest", "Topic"),
            "GetTopic": unary(self.get_topic, "GetTopicRequest", "Topic"),
            "ListTopics": unary(self.list_topics, "ListTopicsRequest", "ListTopicsResponse"),
            "ListTopicSubscriptions": unary(
                self.list_topic_subscriptions,
                "ListTopicSubscriptionsRequest",
                "ListTopicSubscriptionsResponse",
            ),
            "DeleteTopic": unary(self.delete_topic, "DeleteTopicRequest", None),
            "Publish": unary(self.publish, "PublishRequest", "PublishResponse"),
        }
        subscriber = {
            "CreateSubscription": unary(self.create_subscription, "Subscription", "Subscription"),
            "GetSubscription": unary(self.get_subscription, "GetSubscriptionRequest", "Subscription"),
            "UpdateSubscription": unary(
                self.update_subscription, "UpdateSubscriptionRequest", "Subscription"
            ),
            "ListSubscriptions": unary(
                self.list_subscriptions, "ListSubscriptionsRequest", "ListSubscriptionsResponse"
            ),
            "DeleteSubscription": unary(self.delete_subscription, "DeleteSubscriptionRequest", None),
            "Pull": unary(self.pull, "PullRequest", "PullResponse"),
            "Acknowledge": unary(self.acknowledge, "AcknowledgeRequest", None),
            "ModifyAckDeadline": unary(self.modify_ack_deadline, "ModifyAckDeadlineRequest", None),
            "Seek": unary(self.seek, "SeekRequest", "SeekResponse"),
            "StreamingPull": grpc.stream_stream_rpc_method_handler(
                self.streaming_pull,
                request_deserializer=pt.StreamingPullRequest.pb().FromString,
                response_serializer=pt.StreamingPullResponse.pb().SerializeToString,
            ),
        }
        return (
            grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", publisher),
            grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", subscriber),
        )


def _timestamp(ns: int) -> Any:
    from google.protobuf import timestamp_pb2

    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(ns)
    return ts


_IMMUTABLE_FIELDS = frozenset({"name", "topic"})


def _is_repeated(fd: Any) -> bool:
    # protobuf >= 5.28 has ``is_repeated``; ``label`` is gone in protobuf 7.
    flag = getattr(fd, "is_repeated", None)
    return bool(flag) if flag is not None else fd.label == fd.LABEL_REPEATED


def _apply_mask(target: Any, source: Any, paths: Any) -> str | None:
    """Copy the top-level fields named in an update mask; return an error text for a bad mask."""
    if not paths:
        return "update_mask must name at least one field"
    fields = target.DESCRIPTOR.fields_by_name
    for path in paths:
        if path not in fields or path in _IMMUTABLE_FIELDS:
            return f"cannot update field {path!r} (the emulator updates top-level mutable fields only)"
    for path in paths:
        fd = fields[path]
        repeated = _is_repeated(fd)
        if fd.message_type is not None and not repeated:
            if source.HasField(path):
                getattr(target, path).CopyFrom(getattr(source, path))
            else:
                target.ClearField(path)
            continue
        target.ClearField(path)
        value = getattr(source, path)
        if repeated and fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            getattr(target, path).update(value)
        elif repeated:
            getattr(target, path).extend(value)
        else:
            setattr(target, path, value)
    return None


class PubSubEmulator:
    """An in-memory Pub/Sub emulator served over gRPC on a loopback port.

    Each instance owns its state, its gRPC thread pool and one timer thread for ack deadlines and retry
    backoff; two emulators in one process are independent. ``stop()`` (or leaving the ``with`` block)
    ends every thread it started.

    Parameters
    ----------
    port
        TCP port; 0 picks a free one (read it back from :attr:`host`).
    host
        Interface to bind. Keep the loopback default unless other machines must reach it.
    clock
        Time source for publish times, ack deadlines and backoff; defaults to the wall clock.
    max_workers
        Size of the gRPC thread pool; every open streaming pull holds one worker.

    Examples
    --------
    >>> with PubSubEmulator() as emulator:
    ...     emulator.host.startswith("127.0.0.1:"), sorted(emulator.env())
    (True, ['PUBSUB_EMULATOR_HOST'])

    The official client finds it through ``PUBSUB_EMULATOR_HOST``:

    >>> from google.cloud import pubsub_v1
    >>> with PubSubEmulator() as emulator:
    ...     publisher = pubsub_v1.PublisherClient(**emulator.client_kwargs("publisher"))
    ...     topic = publisher.create_topic(name="projects/demo/topics/events").name
    ...     publisher.publish(topic, b"hello").result(timeout=10)
    '1'
    """

    def __init__(
        self, port: int = 0, host: str = "127.0.0.1", *, clock: Clock | None = None, max_workers: int = 32
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"PubSubEmulator(port={port!r}): use a TCP port 0..65535 (0 picks a free one)")
        if max_workers < 2:
            raise ValueError(f"PubSubEmulator(max_workers={max_workers}): needs at least 2 workers")
        self._port = port
        self._bind = host
        self._clock = clock if clock is not None else SystemClock()
        self._max_workers = max_workers
        self._server: Any = None
        self._pools: list[futures.ThreadPoolExecutor] = []
        self._timer_thread: threading.Thread | None = None
        self._state: _State | None = None
        self._servicer: _Servicer | None = None

    @property
    def host(self) -> str:
        """``"HOST:PORT"`` as ``PUBSUB_EMULATOR_HOST`` expects it (only known once started)."""
        if self._server is None:
            raise RuntimeError("PubSubEmulator.host: start() the emulator first")
        bind = f"[{self._bind}]" if ":" in self._bind else self._bind  # IPv6 literals need brackets
        return f"{bind}:{self._port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point the official client at this emulator.

        Returns
        -------
        dict
            ``{"PUBSUB_EMULATOR_HOST": "127.0.0.1:PORT"}``.

        Examples
        --------
        >>> with PubSubEmulator() as emulator:
        ...     emulator.env()["PUBSUB_EMULATOR_HOST"] == emulator.host
        True
        """
        return {"PUBSUB_EMULATOR_HOST": self.host}

    def client_kwargs(self, kind: str) -> dict[str, Any]:
        """Keyword arguments making a ``PublisherClient``/``SubscriberClient`` use this emulator.

        Unlike setting ``PUBSUB_EMULATOR_HOST``, this changes nothing process-wide.

        Parameters
        ----------
        kind
            ``"publisher"`` or ``"subscriber"``.

        Returns
        -------
        dict
            ``{"transport": ...}`` with an insecure channel to :attr:`host`.

        Examples
        --------
        >>> with PubSubEmulator() as emulator:
        ...     sorted(emulator.client_kwargs("subscriber"))
        ['transport']
        """
        return emulator_client_kwargs(self.host, kind)

    def start(self) -> PubSubEmulator:
        """Bind the port and start serving; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("PubSubEmulator.start: already started")
        grpc, pt = _import_grpc()
        state = _State(self._clock)
        rpc_pool = futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="pubsub-emulator-rpc")
        reader_pool = futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="pubsub-emu-stream")
        servicer = _Servicer(state, grpc, pt, reader_pool)
        # gRPC's default 4 MiB would refuse messages Pub/Sub takes: up to its 10 MiB request limit (checked in
        # publish, with Pub/Sub's own error), plus room for the framing
        limits = [("grpc.max_receive_message_length", 2 * PUBLISH_REQUEST_LIMIT)]
        limits.append(("grpc.max_send_message_length", 2 * PUBLISH_REQUEST_LIMIT))
        server = grpc.server(rpc_pool, maximum_concurrent_rpcs=None, options=limits)
        server.add_generic_rpc_handlers(servicer.handlers())
        port = server.add_insecure_port(f"{self._bind}:{self._port}")
        if port == 0:
            rpc_pool.shutdown()
            reader_pool.shutdown()
            raise OSError(f"PubSubEmulator: cannot bind {self._bind}:{self._port}; choose another port, or 0")
        server.start()
        self._port, self._server, self._state, self._servicer = port, server, state, servicer
        self._pools = [rpc_pool, reader_pool]
        self._timer_thread = threading.Thread(target=self._run_timers, name="pubsub-emulator-timers")
        self._timer_thread.start()
        return self

    def _run_timers(self) -> None:
        state, servicer = self._state, self._servicer
        if state is None or servicer is None:  # pragma: no cover - start() sets both before the thread
            return
        wall = isinstance(state.clock, SystemClock)
        with state.cond:
            while not state.stopping:
                next_ns = servicer.expire_due()
                if next_ns is None:
                    state.cond.wait()
                else:
                    timeout = max(0.0, (next_ns - state.clock.now_ns()) / _NS)
                    state.cond.wait(timeout if wall else min(timeout, _MANUAL_CLOCK_RECHECK_S))

    def stop(self, grace: float = 0.5) -> None:
        """Stop serving, end open streams and join every thread this emulator started."""
        if self._server is None:
            return
        state = self._state
        if state is not None:
            with state.cond:
                state.stopping = True
                state.cond.notify_all()
        self._server.stop(grace).wait()
        for pool in self._pools:
            pool.shutdown(wait=True)
        if self._timer_thread is not None:
            self._timer_thread.join()
        self._server, self._pools, self._timer_thread = None, [], None

    def __enter__(self) -> PubSubEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self._bind}:{self._port}" if self._server is not None else "stopped"
        return f"PubSubEmulator({where})"


def emulator_client_kwargs(host: str, kind: str) -> dict[str, Any]:
    """Client keyword arguments for a Pub/Sub emulator at ``host`` (``"HOST:PORT"``).

    Parameters
    ----------
    host
        Emulator address, as in ``PUBSUB_EMULATOR_HOST``.
    kind
        ``"publisher"`` or ``"subscriber"``.

    Returns
    -------
    dict
        ``{"transport": ...}`` for ``PublisherClient(**kwargs)`` or ``SubscriberClient(**kwargs)``.

    Examples
    --------
    >>> list(emulator_client_kwargs("127.0.0.1:8085", "publisher"))
    ['transport']
    """
    grpc, _ = _import_grpc()
    with without_python_support_notices():
        from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
        from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    transports: dict[str, Any] = {"publisher": PublisherGrpcTransport, "subscriber": SubscriberGrpcTransport}
    if kind not in transports:
        raise ValueError(f"emulator_client_kwargs(kind={kind!r}): use 'publisher' or 'subscriber'")
    # as Google's own transports: no gRPC message size cap (its default 4 MiB would refuse a message of
    # up to 10 MB that Pub/Sub delivers)
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    return {"transport": transports[kind](channel=grpc.insecure_channel(host, options=unlimited))}


def main(argv: list[str] | None = None) -> None:
    """Run an emulator until SIGINT/SIGTERM: ``python -m streamlab.local.pubsub --port 8085``.

    Parameters
    ----------
    argv
        Command-line arguments (defaults to ``sys.argv[1:]``).

    Examples
    --------
    >>> main(["--port", "8085"])  # doctest: +SKIP
    >>> callable(main)
    True
    """
    parser = argparse.ArgumentParser(description="streamlab's local Pub/Sub emulator (in-memory)")
    parser.add_argument("--port", type=int, default=8085, help="TCP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with PubSubEmulator(args.port, args.host) as emulator:
        print(f"Pub/Sub emulator listening on {emulator.host}; export {emulator.env()}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
