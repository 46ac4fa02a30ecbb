"""``PubSubSource``: streaming pull of a subscription, acked when the runtime commits, nacked on close."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Source, SourceReader

from .._params import check_emulator_host, positive_seconds, whole_number
from ._client import bounded_retry, client_kwargs, describe_service, import_pubsub, resource_path

log = logging.getLogger("streamlab.connectors.pubsub")  # one logger for the whole connector

# Acknowledge/ModifyAckDeadline requests are limited in size; 1000 ack ids stay well below it.
_ACK_CHUNK = 1000
_SOURCE_COLUMNS = ("value", "attributes", "message_id", "publish_time", "ordering_key", "delivery_attempt")


# Seconds without a poll after which silence says nothing about the service (a paused run, a slow sink).
_UNOBSERVED = 2.0


class PubSubUnreachableError(RuntimeError):
    """The Pub/Sub service stopped answering a reader for longer than its ``service_timeout``.

    The message names the subscription, the service, how long it was silent and the last error a
    health check saw. Nothing is lost: messages that were not acknowledged are delivered again.

    Examples
    --------
    >>> issubclass(PubSubUnreachableError, RuntimeError)
    True
    """


class PubSubSource(Source):
    """Read a Pub/Sub subscription with streaming pull; ack on commit, nack what was never committed.

    Messages stay leased (the client extends their deadlines) from delivery until the runtime commits the
    position covering them, so the client's flow control (``max_messages``) also bounds how many
    uncommitted messages a pipeline holds. The position is the ack id and message id of each message
    polled and not yet committed. Pub/Sub redelivers every message that was not acked, so a resume needs
    no position to read on, but it uses the message ids: a run stopped after a checkpoint was saved and
    before its acks reached Pub/Sub (a kill, a lost connection) gets those messages again, and resumed
    from that checkpoint the reader acknowledges them at its next commit without delivering them, since
    the checkpointed state holds them already (as Dataflow drops a redelivered message id). Otherwise
    delivery is at least once: a message whose lease was lost can come twice, so deduplicate on an event
    id downstream (``Stream.dedup``) when duplicates matter. On a stop, the messages polled and not
    committed are nacked and come back at once; those the client still held back (beyond
    ``max_messages``) come back when their lease runs out, which the client extends by its 99th
    percentile ack latency (up to 10 minutes): bound it with
    ``flow_control={"max_duration_per_lease_extension": 60}`` to get them sooner after a restart.

    Parameters
    ----------
    subscription
        Subscription name, short (with ``project``) or ``projects/P/subscriptions/S``.
    project
        Google Cloud project id.
    max_messages
        Flow control: most messages outstanding (delivered, not yet committed) at once.
    flow_control
        Further ``google.cloud.pubsub_v1.types.FlowControl`` fields, e.g. ``{"max_bytes": 10_000_000}``.
    emulator_host
        ``"HOST:PORT"`` of a Pub/Sub emulator; default: ``PUBSUB_EMULATOR_HOST`` or Google Cloud.
    timeout
        Seconds the service has to answer: ``open()`` checks it answers within this time, and an
        acknowledge, a nack or the shutdown that takes longer (retries with backoff included) raises an
        error naming the service.
    service_timeout
        Seconds the reader waits on a service that stopped answering after ``open()`` (stopped, frozen,
        or the network gone): streaming pull alone retries such a service forever without a word. While
        no message arrives, the reader asks the service for the subscription (in the background, at
        most every ``min(service_timeout / 4, 10)`` s, each check bounded by ``timeout``); when neither
        a message nor an answer came for ``service_timeout`` seconds, ``poll`` raises
        :class:`PubSubUnreachableError` naming the subscription and the service. An idle subscription
        on a live service is not an outage. ``close()`` then does not wait on the service (at most
        ``timeout`` otherwise, twice: the stream's shutdown and the nack). None: wait forever.

    Examples
    --------
    >>> source = PubSubSource("events-sub", project="demo", max_messages=500)
    >>> source.spec()["subscription"]
    'projects/demo/subscriptions/events-sub'
    >>> source.service_timeout
    60.0
    >>> PubSubSource("events-sub", project="demo", service_timeout=0)
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: PubSubSource(service_timeout=...): expected a positive number of seconds or None (wait forever) for subscription 'events-sub', got 0. Fix: write a number of seconds such as service_timeout: 60 (service_timeout=60 in Python), or null (None in Python) to wait forever
    >>> reader = source.open()  # doctest: +SKIP
    """

    columns = _SOURCE_COLUMNS

    def __init__(
        self,
        subscription: str,
        *,
        project: str = "",
        max_messages: int = 1000,
        flow_control: Mapping[str, Any] | None = None,
        emulator_host: str | None = None,
        timeout: float = 30.0,
        service_timeout: float | None = 60.0,
    ) -> None:
        where = type(self).__name__
        self.subscription = resource_path(subscription, project, "subscriptions", where, "subscription")
        if not whole_number(max_messages, 1):
            raise ParameterError(
                where,
                "max_messages",
                f"expected a positive integer for subscription {subscription!r}, got {max_messages!r}",
                "write a number of messages such as max_messages: 1000 (max_messages=1000 in Python)",
            )
        allowed = {"max_bytes", "max_lease_duration", "min_duration_per_lease_extension"}
        allowed |= {"max_duration_per_lease_extension"}
        unknown = set(flow_control or {}) - allowed
        if unknown:
            raise ParameterError(
                where,
                "flow_control",
                f"unknown keys {sorted(unknown)} for subscription {subscription!r}",
                f"use only {sorted(allowed)}",
            )
        lease = dict(flow_control or {})
        low, high = (
            lease.get(k) for k in ("min_duration_per_lease_extension", "max_duration_per_lease_extension")
        )
        if (
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
            and 0 < high < low  # type: ignore[operator]
        ):  # (0 is the client's "no bound"); the client silently extended leases by the minimum
            raise ParameterError(
                where,
                "flow_control",
                f"min_duration_per_lease_extension {low!r} exceeds max_duration_per_lease_extension {high!r} "
                f"(subscription {subscription!r})",
                "make the minimum at most the maximum, e.g. flow_control: {min_duration_per_lease_extension: "
                "10, max_duration_per_lease_extension: 60}",
            )
        self.max_messages = max_messages
        self.flow_control = dict(flow_control or {})
        about = f"subscription {subscription!r}"
        self.emulator_host = check_emulator_host(where, emulator_host)
        self.timeout = positive_seconds(where, "timeout", timeout, 30, about=about)
        self.service_timeout = (
            None
            if service_timeout is None
            else positive_seconds(
                where, "service_timeout", service_timeout, 60, about=about, none="wait forever"
            )
        )

    @property
    def commits_upstream(self) -> bool:
        """Acks are upstream: a message acked is never redelivered."""
        return True

    def open(self, resume: Any = None, clock: Clock | None = None) -> _PubSubReader:
        """Start streaming pull; messages of ``resume`` (a position) that come again are not delivered.

        Unacked messages come back anyway; those a checkpoint's state holds already (its position's
        message ids) are acknowledged at the next commit instead of delivered a second time.
        """
        return _PubSubReader(self, _message_ids(resume))

    def spec(self) -> dict[str, Any]:
        """YAML-ready description.

        Examples
        --------
        >>> PubSubSource("s", project="p").spec()["kind"]
        'pubsub'
        """
        return {
            "kind": "pubsub",
            "subscription": self.subscription,
            "max_messages": self.max_messages,
            "flow_control": dict(self.flow_control),
            "emulator_host": self.emulator_host,
            "timeout": self.timeout,
            "service_timeout": self.service_timeout,
        }

    def __repr__(self) -> str:
        return f"PubSubSource({self.subscription!r}, max_messages={self.max_messages})"


def _ack_id(entry: Any) -> str:
    """The ack id of a position's entry: (ack id, message id), or an ack id alone (older checkpoints)."""
    return entry if isinstance(entry, str) else str(entry[0])


def _message_ids(position: Any) -> frozenset[str]:
    """The message ids of a position (none in a checkpoint written before they were kept).

    Examples
    --------
    >>> sorted(_message_ids((("ack-1", "m1"), ("ack-2", "m2")))), _message_ids(("ack-1",)), _message_ids(None)
    (['m1', 'm2'], frozenset(), frozenset())
    """
    return frozenset(str(e[1]) for e in position or () if not isinstance(e, str))


class _PubSubReader(SourceReader):
    """Open streaming pull of a :class:`PubSubSource` (made by ``PubSubSource.open``)."""

    def __init__(self, source: PubSubSource, delivered: frozenset[str] = frozenset()) -> None:
        pubsub_v1 = import_pubsub()
        self._source = source
        self._lock = threading.Lock()
        self._buffer: collections.deque[Any] = collections.deque()
        self._pending: dict[str, Any] = {}
        # message ids the resumed checkpoint's state holds: acked at the next commit, not delivered again
        self._delivered = set(delivered)
        self.redelivered = 0  # messages so acked without being delivered
        self._closed = False
        self._client = pubsub_v1.SubscriberClient(**client_kwargs(source.emulator_host, "subscriber"))
        self._check_reachable()
        # Liveness (see service_timeout): when the service last answered, monotonic seconds; the health
        # check running in the background, if any, and the last error one saw.
        self._contact = self._observed = time.monotonic()
        self._probe: threading.Thread | None = None
        self._probe_error: str | None = None
        self._stalled = False  # found unresponsive: close() does not wait on it
        flow = pubsub_v1.types.FlowControl(max_messages=source.max_messages, **source.flow_control)
        self._future = self._client.subscribe(source.subscription, callback=self._receive, flow_control=flow)

    def _check_reachable(self) -> None:
        """Ask for the subscription once, within ``timeout``: streaming pull retries an unreachable
        service forever without a word, so a wrong address would read nothing and never fail."""
        from google.api_core import exceptions

        timeout = self._source.timeout
        started = time.monotonic()
        try:
            self._client.get_subscription(
                request={"subscription": self._source.subscription},
                retry=bounded_retry(timeout),
                timeout=timeout,
            )
        except exceptions.NotFound:
            return  # reachable; the stream reports the missing subscription with its fix
        except (exceptions.RetryError, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded) as exc:
            self._client.close()
            raise RuntimeError(
                f"PubSubSource({self._source.subscription!r}): {describe_service(self._source.emulator_host)} did "
                f"not answer within timeout={timeout:g} s (retried for {time.monotonic() - started:.1f} s) when "
                f"asked for the subscription: {exc}. Check emulator_host / PUBSUB_EMULATOR_HOST and "
                "that the service runs"
            ) from exc
        except Exception:
            return  # permissions and the like: the stream reports them

    def _receive(self, message: Any) -> None:
        # Runs on the client's callback threads; the flow control bounds the buffer's size.
        with self._lock:
            self._buffer.append(message)
            self._contact = time.monotonic()

    def _heard(self, at: float) -> None:
        with self._lock:
            self._contact = max(self._contact, at)

    def _check_service(self) -> None:
        """Raise :class:`PubSubUnreachableError` once the service was silent for ``service_timeout``.

        Silence is time without a message or an answer to a health check. A check (a bounded
        ``get_subscription``) starts in the background after ``min(service_timeout / 4, 10)`` s of
        silence, so ``poll`` never blocks on the service; streaming pull itself reports nothing while
        its retries fail.
        """
        limit = self._source.service_timeout
        if limit is None:
            return
        now = time.monotonic()
        if now - self._observed > _UNOBSERVED:
            # Not polled for a while (a paused run, a slow sink): measure the silence from now.
            self._heard(now)
        self._observed = now
        with self._lock:
            silent = now - self._contact
        if silent >= min(limit / 4, 10.0) and (self._probe is None or not self._probe.is_alive()):
            self._probe = threading.Thread(
                target=self._probe_service, name=f"pubsub-health-{self._source.subscription}", daemon=True
            )
            self._probe.start()
        if silent <= limit:
            return
        self._stalled = True
        last = f"; last health check: {self._probe_error}" if self._probe_error else ""
        raise PubSubUnreachableError(
            f"PubSubSource({self._source.subscription!r}): {describe_service(self._source.emulator_host)} has not "
            f"answered for {silent:.1f} s (service_timeout={limit:g} s): no message arrived and asking "
            f"for the subscription got no answer{last}. The service is stopped, stalled or unreachable: "
            "check that it runs (emulator_host / PUBSUB_EMULATOR_HOST), or raise service_timeout to "
            "wait longer. Messages not acknowledged are delivered again on restart"
        )

    def _probe_service(self) -> None:
        """Health check (background thread): ask for the subscription; an answer is contact."""
        from google.api_core import exceptions

        timeout = min(self._source.timeout, self._source.service_timeout or self._source.timeout)
        asked = time.monotonic()
        try:
            self._client.get_subscription(
                request={"subscription": self._source.subscription},
                retry=bounded_retry(timeout),
                timeout=timeout,
            )
        except (exceptions.RetryError, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded) as exc:
            self._probe_error = f"no answer within {timeout:g} s ({type(exc).__name__}: {exc})"
            return
        except exceptions.GoogleAPICallError:
            pass  # an answer all the same (a deleted subscription, permissions): the stream reports it
        except Exception as exc:  # the client closed under the check: nothing to learn
            log.debug("PubSubSource(%r): health check ended: %s", self._source.subscription, exc)
            return
        self._probe_error = None
        self._heard(asked)

    def _check_stream(self) -> None:
        if not self._future.done() or self._future.cancelled():
            return
        exc = self._future.exception()
        if exc is None:
            return
        from google.api_core import exceptions

        refused = (
            exceptions.NotFound,
            exceptions.PermissionDenied,
            exceptions.Unauthenticated,
            exceptions.InvalidArgument,
            exceptions.FailedPrecondition,
        )
        if isinstance(exc, refused):
            raise RuntimeError(
                f"PubSubSource({self._source.subscription!r}): streaming pull failed: {exc}. "
                "Check that the subscription exists and that credentials/emulator_host are right."
            ) from exc
        # The client retries transient errors by itself; anything else ending the stream (a service
        # shutting down, say) is an outage, not a configuration problem.
        self._stalled = True
        raise PubSubUnreachableError(
            f"PubSubSource({self._source.subscription!r}): streaming pull from "
            f"{describe_service(self._source.emulator_host)} ended with {type(exc).__name__}: {exc}. The service "
            "stopped or dropped the stream: check that it runs (emulator_host / PUBSUB_EMULATOR_HOST). "
            "Messages not acknowledged are delivered again on restart"
        ) from exc

    def poll(self, max_events: int) -> pd.DataFrame | None:
        """Return up to ``max_events`` received messages, or ``None`` when none are waiting."""
        with self._lock:
            n = min(max_events, len(self._buffer))
            messages = [self._buffer.popleft() for _ in range(n)]
            for m in messages:
                self._pending[m.ack_id] = m
        if self._delivered and messages:
            again = [m for m in messages if m.message_id in self._delivered]
            if again:  # in the resumed state already: acked with the others at the next commit
                self._delivered.difference_update(m.message_id for m in again)
                self.redelivered += len(again)
                held = {m.message_id for m in again}
                messages = [m for m in messages if m.message_id not in held]
        if not messages:
            self._check_stream()
            self._check_service()
            return None
        self._observed = time.monotonic()
        attempts = [m.delivery_attempt for m in messages]
        frame: pd.DataFrame = pd.DataFrame(  # pandas-stubs types the constructor as Any
            {
                "value": pd.Series([m.data for m in messages], dtype=object),
                "attributes": pd.Series([dict(m.attributes) for m in messages], dtype=object),
                "message_id": pd.Series([m.message_id for m in messages], dtype=object),
                "publish_time": pd.to_datetime([m.publish_time for m in messages], utc=True).astype(
                    "datetime64[ns, UTC]"
                ),
                "ordering_key": pd.Series([m.ordering_key for m in messages], dtype=object),
                "delivery_attempt": pd.array(attempts, dtype="Int64"),
            }
        )
        return frame

    def snapshot(self) -> tuple[tuple[str, str], ...]:
        """(ack id, message id) of each message polled and not yet committed, in delivery order."""
        with self._lock:
            return tuple((a, m.message_id) for a, m in self._pending.items())

    def commit(self, position: Any) -> None:
        """Acknowledge exactly the messages in ``position`` (synchronously) and release their leases."""
        with self._lock:
            messages = [
                m for m in (self._pending.pop(_ack_id(a), None) for a in position or ()) if m is not None
            ]
        if not messages:
            return
        ack_ids = [m.ack_id for m in messages]
        timeout = self._source.timeout
        deadline = time.monotonic() + timeout
        try:
            for i in range(0, len(ack_ids), _ACK_CHUNK):
                left = max(deadline - time.monotonic(), 0.001)
                self._client.acknowledge(
                    request={
                        "subscription": self._source.subscription,
                        "ack_ids": ack_ids[i : i + _ACK_CHUNK],
                    },
                    retry=bounded_retry(left),
                    timeout=left,
                )
        except Exception as exc:
            from google.api_core import exceptions

            with self._lock:  # keep them uncommitted: a later commit retries, close() nacks them
                self._pending = {**{m.ack_id: m for m in messages}, **self._pending}
            unanswered = (exceptions.RetryError, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded)
            self._stalled = self._stalled or isinstance(exc, unanswered)
            raise RuntimeError(
                f"PubSubSource({self._source.subscription!r}): acknowledging {len(ack_ids)} messages to "
                f"{describe_service(self._source.emulator_host)} failed within {timeout:g} s (timeout): {exc}. "
                "They were not acknowledged: Pub/Sub delivers them again"
            ) from exc
        self._heard(time.monotonic())
        for m in messages:
            m.ack()  # frees the client's flow control and lease bookkeeping; the ack itself is already done

    def lag(self) -> int | None:
        """Messages received by the client and not yet polled (the backlog upstream is not visible)."""
        with self._lock:
            return len(self._buffer)

    def close(self) -> None:
        """Stop streaming pull and nack every message not committed, so Pub/Sub redelivers it."""
        if self._closed:
            return
        self._closed = True
        self._future.cancel()
        with self._lock:
            leftovers = list(self._pending.values()) + list(self._buffer)
            self._pending.clear()
            self._buffer.clear()
        ack_ids = [m.ack_id for m in leftovers]
        if self._stalled:
            # Found unresponsive: waiting on it again would only hold up the stop. Unacked messages
            # come back after their ack deadline.
            log.info(
                "PubSubSource(%r): closed without waiting on the unresponsive service; %d uncommitted "
                "messages are delivered again after their ack deadline",
                self._source.subscription,
                len(ack_ids),
            )
            self._client.close()
            return
        # A cancelled stream reports its cancellation here; there is nothing to handle.
        with contextlib.suppress(Exception):
            self._future.result(timeout=self._source.timeout)
        deadline = time.monotonic() + self._source.timeout
        try:
            for i in range(0, len(ack_ids), _ACK_CHUNK):
                left = max(deadline - time.monotonic(), 0.001)
                self._client.modify_ack_deadline(
                    request={
                        "subscription": self._source.subscription,
                        "ack_ids": ack_ids[i : i + _ACK_CHUNK],
                        "ack_deadline_seconds": 0,
                    },
                    retry=bounded_retry(left),
                    timeout=left,
                )
        except Exception as exc:
            # The nack only hurries redelivery: unacked messages come back after their ack deadline anyway.
            log.warning(
                "PubSubSource(%r): could not nack %d uncommitted messages (%s); Pub/Sub redelivers them "
                "after their ack deadline",
                self._source.subscription,
                len(ack_ids),
                exc,
            )
        finally:
            self._client.close()
