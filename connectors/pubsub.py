"""Google Cloud Pub/Sub source, sink and admin helpers (official ``google-cloud-pubsub`` client).

:class:`PubSubSource` reads a subscription with streaming pull and acknowledges messages only when the
runtime commits (after the sinks flushed); whatever was never committed is nacked on ``close()`` and
redelivered. :class:`PubSubSink` publishes rows as JSON. Locally, point both at
:class:`~streamlab.local.PubSubEmulator` with ``emulator_host=`` (or set
``PUBSUB_EMULATOR_HOST``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from streamlab._time import Duration, parse_duration
from streamlab.clock import Clock
from streamlab.io import Sink, SinkWriter, Source, SourceReader
from streamlab.serde import encode_rows

__all__ = [
    "PubSubSink",
    "PubSubSource",
    "PubSubUnreachableError",
    "create_subscription",
    "create_topic",
    "encode_json_rows",
]

#: One JSON object per row as bytes: :func:`streamlab.serde.encode_rows` (the name this module exported).
encode_json_rows = encode_rows

_EXTRA = "pip install 'streamlab[pubsub]'"
_log = logging.getLogger(__name__)
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


def _pubsub() -> Any:
    try:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ImportError(f"Pub/Sub connectors need google-cloud-pubsub: {_EXTRA}") from exc
    return pubsub_v1


def _where(emulator_host: str | None) -> str:
    """The service a client talks to, for error messages."""
    host = emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST")
    return f"the Pub/Sub emulator at {host}" if host else "Google Cloud Pub/Sub (pubsub.googleapis.com)"


def _bounded_retry(timeout: float) -> Any:
    """Retry transient errors with backoff for at most ``timeout`` seconds in all.

    The client's default retry of acknowledge/modify_ack_deadline keeps trying an unreachable service
    for 60 s whatever per-call ``timeout`` is given.
    """
    from google.api_core import retry as retries

    return retries.Retry(
        predicate=retries.if_transient_error, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout
    )


def _client_kwargs(emulator_host: str | None, kind: str) -> dict[str, Any]:
    if emulator_host is None:
        return {}
    from streamlab.local.pubsub import emulator_client_kwargs

    return emulator_client_kwargs(emulator_host, kind)


def _path(name: str, project: str, kind: str, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: the {kind[:-1]} name must be a non-empty string, got {name!r}")
    if name.startswith("projects/"):
        parts = name.split("/")
        if len(parts) != 4 or parts[2] != kind:
            raise ValueError(
                f"{where}: {name!r} is not a {kind[:-1]} path; write projects/PROJECT/{kind}/NAME"
            )
        return name
    if "/" in name:
        raise ValueError(f"{where}: {name!r} contains '/'; pass a short name or projects/PROJECT/{kind}/NAME")
    if not project:
        raise ValueError(f"{where}: project= is required with a short {kind[:-1]} name such as {name!r}")
    return f"projects/{project}/{kind}/{name}"


def _duration_pb(value: Duration, where: str) -> dict[str, int]:
    ns = parse_duration(value, what=where)
    if not 0 <= ns <= 600 * 1_000_000_000:
        raise ValueError(f"{where}: must be between 0s and 600s (Pub/Sub's limits), got {value!r}")
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}


class PubSubSource(Source):
    """Read a Pub/Sub subscription with streaming pull; ack on commit, nack what was never committed.

    Messages stay leased (the client extends their deadlines) from delivery until the runtime commits the
    position covering them, so the client's flow control (``max_messages``) also bounds how many
    uncommitted messages a pipeline holds. The position is the tuple of ack ids polled and not yet
    committed; resuming needs no position, because Pub/Sub redelivers every message that was not acked.
    Delivery is at least once: a message whose lease was lost can come twice, so deduplicate on an event
    id downstream (``Stream.dedup``) when duplicates matter.

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
    ValueError: PubSubSource('events-sub'): service_timeout must be a positive number of seconds or None (wait forever), got 0
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
        where = f"PubSubSource({subscription!r})"
        self.subscription = _path(subscription, project, "subscriptions", where)
        if not isinstance(max_messages, int) or max_messages < 1:
            raise ValueError(f"{where}: max_messages must be a positive integer, got {max_messages!r}")
        allowed = {"max_bytes", "max_lease_duration", "min_duration_per_lease_extension"}
        allowed |= {"max_duration_per_lease_extension"}
        unknown = set(flow_control or {}) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown flow_control keys {sorted(unknown)}; use {sorted(allowed)}")
        self.max_messages = max_messages
        self.flow_control = dict(flow_control or {})
        for name, value, optional in (
            ("timeout", timeout, False),
            ("service_timeout", service_timeout, True),
        ):
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                what = "a positive number of seconds" + (" or None (wait forever)" if optional else "")
                raise ValueError(f"{where}: {name} must be {what}, got {value!r}")
        self.emulator_host = emulator_host
        self.timeout = float(timeout)
        self.service_timeout = None if service_timeout is None else float(service_timeout)

    @property
    def commits_upstream(self) -> bool:
        """Acks are upstream: a message acked is never redelivered."""
        return True

    def open(self, resume: Any = None, clock: Clock | None = None) -> _PubSubReader:
        """Start streaming pull; ``resume`` is accepted and unused (unacked messages come back anyway)."""
        return _PubSubReader(self)

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


class _PubSubReader(SourceReader):
    """Open streaming pull of a :class:`PubSubSource` (made by ``PubSubSource.open``)."""

    def __init__(self, source: PubSubSource) -> None:
        pubsub_v1 = _pubsub()
        self._source = source
        self._lock = threading.Lock()
        self._buffer: collections.deque[Any] = collections.deque()
        self._pending: dict[str, Any] = {}
        self._closed = False
        self._client = pubsub_v1.SubscriberClient(**_client_kwargs(source.emulator_host, "subscriber"))
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
                retry=_bounded_retry(timeout),
                timeout=timeout,
            )
        except exceptions.NotFound:
            return  # reachable; the stream reports the missing subscription with its fix
        except (exceptions.RetryError, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded) as exc:
            self._client.close()
            raise RuntimeError(
                f"PubSubSource({self._source.subscription!r}): {_where(self._source.emulator_host)} did "
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
            f"PubSubSource({self._source.subscription!r}): {_where(self._source.emulator_host)} has not "
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
                retry=_bounded_retry(timeout),
                timeout=timeout,
            )
        except (exceptions.RetryError, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded) as exc:
            self._probe_error = f"no answer within {timeout:g} s ({type(exc).__name__}: {exc})"
            return
        except exceptions.GoogleAPICallError:
            pass  # an answer all the same (a deleted subscription, permissions): the stream reports it
        except Exception as exc:  # the client closed under the check: nothing to learn
            _log.debug("PubSubSource(%r): health check ended: %s", self._source.subscription, exc)
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
            f"{_where(self._source.emulator_host)} ended with {type(exc).__name__}: {exc}. The service "
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
        if not messages:
            self._check_stream()
            self._check_service()
            return None
        self._observed = time.monotonic()
        attempts = [m.delivery_attempt for m in messages]
        return pd.DataFrame(
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

    def snapshot(self) -> tuple[str, ...]:
        """Ack ids polled and not yet committed, in delivery order."""
        with self._lock:
            return tuple(self._pending)

    def commit(self, position: Any) -> None:
        """Acknowledge exactly the messages in ``position`` (synchronously) and release their leases."""
        with self._lock:
            messages = [m for m in (self._pending.pop(a, None) for a in position or ()) if m is not None]
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
                    retry=_bounded_retry(left),
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
                f"{_where(self._source.emulator_host)} failed within {timeout:g} s (timeout): {exc}. "
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
            _log.info(
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
                    retry=_bounded_retry(left),
                    timeout=left,
                )
        except Exception as exc:
            # The nack only hurries redelivery: unacked messages come back after their ack deadline anyway.
            _log.warning(
                "PubSubSource(%r): could not nack %d uncommitted messages (%s); Pub/Sub redelivers them "
                "after their ack deadline",
                self._source.subscription,
                len(ack_ids),
                exc,
            )
        finally:
            self._client.close()


class PubSubSink(Sink):
    """Publish each row as a JSON message to a Pub/Sub topic.

    Parameters
    ----------
    topic
        Topic name, short (with ``project``) or ``projects/P/topics/T``.
    project
        Google Cloud project id.
    ordering_key
        Column whose values become ordering keys (turns on ordered publishing); ``None`` for none.
    attributes
        Message attributes: a mapping of constant attributes, or a sequence of column names whose values
        (as text) become attributes of the same names.
    emulator_host
        ``"HOST:PORT"`` of a Pub/Sub emulator; default: ``PUBSUB_EMULATOR_HOST`` or Google Cloud.
    timeout
        Seconds ``flush()`` waits, in all, for the messages written so far to be confirmed; past it,
        it raises an error naming the service.

    Examples
    --------
    >>> sink = PubSubSink("alerts", project="demo", ordering_key="user_id", attributes=["event_type"])
    >>> sink.spec()["topic"]
    'projects/demo/topics/alerts'
    """

    def __init__(
        self,
        topic: str,
        *,
        project: str = "",
        ordering_key: str | None = None,
        attributes: Mapping[str, str] | Sequence[str] | None = None,
        emulator_host: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        where = f"PubSubSink({topic!r})"
        self.topic = _path(topic, project, "topics", where)
        if ordering_key is not None and (not isinstance(ordering_key, str) or not ordering_key):
            raise ValueError(f"{where}: ordering_key must be a column name or None, got {ordering_key!r}")
        self.ordering_key = ordering_key
        self.static_attributes: dict[str, str] = {}
        self.attribute_columns: tuple[str, ...] = ()
        if isinstance(attributes, Mapping):
            bad = {k: v for k, v in attributes.items() if not isinstance(k, str) or not isinstance(v, str)}
            if bad:
                raise ValueError(f"{where}: constant attributes must map text to text; fix {bad!r}")
            self.static_attributes = dict(attributes)
        elif attributes is not None:
            if isinstance(attributes, str) or not all(isinstance(c, str) for c in attributes):
                raise ValueError(
                    f"{where}: attributes must be a list of column names or a dict of constants, "
                    f"got {attributes!r} (wrap a single column in a list)"
                )
            self.attribute_columns = tuple(attributes)
        self.emulator_host = emulator_host
        self.timeout = timeout

    def open(self, clock: Clock | None = None) -> _PubSubWriter:
        """Create the publisher client."""
        return _PubSubWriter(self)

    def spec(self) -> dict[str, Any]:
        """YAML-ready description.

        Examples
        --------
        >>> PubSubSink("t", project="p").spec()["kind"]
        'pubsub'
        """
        attributes: Any = (
            dict(self.static_attributes) if self.static_attributes else list(self.attribute_columns)
        )
        return {
            "kind": "pubsub",
            "topic": self.topic,
            "ordering_key": self.ordering_key,
            "attributes": attributes,
            "emulator_host": self.emulator_host,
            "timeout": self.timeout,
        }

    def __repr__(self) -> str:
        return f"PubSubSink({self.topic!r}, ordering_key={self.ordering_key!r})"


class _PubSubWriter(SinkWriter):
    """Open publisher of a :class:`PubSubSink`."""

    def __init__(self, sink: PubSubSink) -> None:
        pubsub_v1 = _pubsub()
        self._sink = sink
        options = pubsub_v1.types.PublisherOptions(enable_message_ordering=sink.ordering_key is not None)
        self._client = pubsub_v1.PublisherClient(
            publisher_options=options, **_client_kwargs(sink.emulator_host, "publisher")
        )
        self._futures: list[tuple[Any, str]] = []
        self._closed = False
        self._failed = False

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Publish every row (asynchronously; :meth:`flush` waits for confirmation)."""
        if batch.empty:
            return
        needed = self._missing_columns(batch)
        if needed:
            raise KeyError(
                f"{self._sink!r}: the batch has no column(s) {needed}; it has {list(batch.columns)}"
            )
        payloads = encode_rows(batch)
        n = len(batch)
        keys = (
            batch[self._sink.ordering_key].astype("string").fillna("").tolist()
            if self._sink.ordering_key
            else [""] * n
        )
        columns = {c: batch[c].astype("string").fillna("").tolist() for c in self._sink.attribute_columns}
        static = self._sink.static_attributes
        for i, payload in enumerate(payloads):
            attrs = {**static, **{c: values[i] for c, values in columns.items()}}
            future = self._client.publish(self._sink.topic, payload, ordering_key=keys[i], **attrs)
            self._futures.append((future, keys[i]))

    def _missing_columns(self, batch: pd.DataFrame) -> list[str]:
        wanted = list(self._sink.attribute_columns) + (
            [self._sink.ordering_key] if self._sink.ordering_key else []
        )
        return [c for c in wanted if c not in batch.columns]

    def flush(self) -> None:
        """Wait until every message written so far is confirmed; raise if any publish failed."""
        pending, self._futures = self._futures, []
        errors: list[BaseException] = []
        # One deadline for the whole flush: a per-message timeout would add up over a stalled service.
        deadline = time.monotonic() + self._sink.timeout
        for future, key in pending:
            try:
                future.result(timeout=max(deadline - time.monotonic(), 0.0))
            except Exception as exc:
                errors.append(exc)
                if key:
                    # An ordered publish failure pauses its key until told to resume.
                    self._client.resume_publish(self._sink.topic, key)
        if errors:
            import concurrent.futures

            self._failed = True
            if isinstance(errors[0], (TimeoutError, concurrent.futures.TimeoutError)):
                first = (
                    f"no confirmation from {_where(self._sink.emulator_host)} within "
                    f"{self._sink.timeout:g} s (timeout); is the service running and reachable?"
                )
            else:
                first = f"first error: {errors[0]!r}. Check that the topic exists and the credentials can publish."
            raise RuntimeError(
                f"{self._sink!r}: {len(errors)} of {len(pending)} messages were not published; {first}"
            ) from errors[0]

    def close(self) -> None:
        """Flush, stop the publisher's batching thread and close its channel."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._client.stop()
            if not self._failed:
                # After a failed flush the client's publish threads still retry (for their own bounded
                # time); closing the channel under them would only turn that into thread tracebacks.
                self._client.transport.grpc_channel.close()


def create_topic(
    name: str, *, project: str = "", emulator_host: str | None = None, exist_ok: bool = True
) -> str:
    """Create a topic and return its path; an existing one is kept when ``exist_ok``.

    Parameters
    ----------
    name
        Topic name, short (with ``project``) or ``projects/P/topics/T``.
    project
        Google Cloud project id.
    emulator_host
        ``"HOST:PORT"`` of a Pub/Sub emulator; default: ``PUBSUB_EMULATOR_HOST`` or Google Cloud.
    exist_ok
        Return the path of an existing topic instead of raising ``AlreadyExists``.

    Returns
    -------
    str
        ``projects/P/topics/T``.

    Examples
    --------
    >>> from streamlab.local import PubSubEmulator
    >>> with PubSubEmulator() as emulator:
    ...     create_topic("events", project="demo", emulator_host=emulator.host)
    'projects/demo/topics/events'
    """
    path = _path(name, project, "topics", f"create_topic({name!r})")
    pubsub_v1 = _pubsub()
    from google.api_core import exceptions

    client = pubsub_v1.PublisherClient(**_client_kwargs(emulator_host, "publisher"))
    try:
        client.create_topic(request={"name": path})
    except exceptions.AlreadyExists:
        if not exist_ok:
            raise
    finally:
        client.stop()
        client.transport.grpc_channel.close()
    return path


def create_subscription(
    name: str,
    topic: str,
    *,
    project: str = "",
    dead_letter_topic: str | None = None,
    max_delivery_attempts: int = 5,
    retry_min_backoff: Duration = "10s",
    retry_max_backoff: Duration = "600s",
    ack_deadline: int = 60,
    enable_message_ordering: bool = False,
    retain_acked_messages: bool = False,
    emulator_host: str | None = None,
    exist_ok: bool = True,
) -> str:
    """Create a pull subscription configured like a production deployment would (dead letters, backoff).

    Parameters
    ----------
    name
        Subscription name, short (with ``project``) or ``projects/P/subscriptions/S``.
    topic
        Topic it reads, short or full path.
    project
        Google Cloud project id.
    dead_letter_topic
        Topic receiving messages after ``max_delivery_attempts`` failed deliveries; ``None`` for none.
        (On Google Cloud, the Pub/Sub service account also needs publish rights on it.)
    max_delivery_attempts
        Deliveries before dead-lettering, 5..100 (used only with ``dead_letter_topic``).
    retry_min_backoff, retry_max_backoff
        Exponential redelivery backoff after a nack or an expired deadline, 0s..600s.
    ack_deadline
        Seconds a delivered message stays leased without extension, 10..600.
    enable_message_ordering
        Deliver messages with the same ordering key in publish order, one at a time.
    retain_acked_messages
        Keep acked messages so that ``seek`` to a past time replays them.
    emulator_host
        ``"HOST:PORT"`` of a Pub/Sub emulator; default: ``PUBSUB_EMULATOR_HOST`` or Google Cloud.
    exist_ok
        Return the path of an existing subscription instead of raising ``AlreadyExists``.

    Returns
    -------
    str
        ``projects/P/subscriptions/S``.

    Examples
    --------
    >>> from streamlab.local import PubSubEmulator
    >>> with PubSubEmulator() as emulator:
    ...     host = emulator.host
    ...     topic = create_topic("events", project="demo", emulator_host=host)
    ...     create_subscription("events-sub", topic, project="demo", ack_deadline=30, emulator_host=host)
    'projects/demo/subscriptions/events-sub'
    """
    where = f"create_subscription({name!r})"
    path = _path(name, project, "subscriptions", where)
    topic_path = _path(topic, project, "topics", where)
    if not isinstance(ack_deadline, int) or not 10 <= ack_deadline <= 600:
        raise ValueError(f"{where}: ack_deadline must be 10..600 seconds, got {ack_deadline!r}")
    request: dict[str, Any] = {
        "name": path,
        "topic": topic_path,
        "ack_deadline_seconds": ack_deadline,
        "enable_message_ordering": bool(enable_message_ordering),
        "retain_acked_messages": bool(retain_acked_messages),
        "retry_policy": {
            "minimum_backoff": _duration_pb(retry_min_backoff, f"{where}: retry_min_backoff"),
            "maximum_backoff": _duration_pb(retry_max_backoff, f"{where}: retry_max_backoff"),
        },
    }
    if parse_duration(retry_min_backoff) > parse_duration(retry_max_backoff):
        raise ValueError(f"{where}: retry_min_backoff {retry_min_backoff!r} exceeds retry_max_backoff")
    if dead_letter_topic is not None:
        if not isinstance(max_delivery_attempts, int) or not 5 <= max_delivery_attempts <= 100:
            raise ValueError(f"{where}: max_delivery_attempts must be 5..100, got {max_delivery_attempts!r}")
        request["dead_letter_policy"] = {
            "dead_letter_topic": _path(dead_letter_topic, project, "topics", where),
            "max_delivery_attempts": max_delivery_attempts,
        }
    pubsub_v1 = _pubsub()
    from google.api_core import exceptions

    client = pubsub_v1.SubscriberClient(**_client_kwargs(emulator_host, "subscriber"))
    try:
        client.create_subscription(request=request)
    except exceptions.AlreadyExists:
        if not exist_ok:
            raise
    finally:
        client.close()
    return path
