"""Create topics and subscriptions (dead-letter and retry policies) on Pub/Sub or its emulator."""

from __future__ import annotations

import time
from typing import Any

from streamlab._time import Duration, parse_duration
from streamlab.errors import ParameterError

from .._params import check_emulator_host, positive_seconds, whole_number
from ._client import bounded_retry, client_kwargs, describe_service, duration_pb, import_pubsub, resource_path


def create_topic(
    name: str,
    *,
    project: str = "",
    emulator_host: str | None = None,
    exist_ok: bool = True,
    timeout: float = 30.0,
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
    timeout
        Seconds the service has to answer, retries included; then a ``RuntimeError`` names the
        service (the client alone waits on a stalled one without end).

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
    path = resource_path(name, project, "topics", "create_topic", "name")
    _create("topic", {"name": path}, emulator_host, exist_ok, timeout)
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
    timeout: float = 30.0,
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
    timeout
        Seconds the service has to answer, retries included; then a ``RuntimeError`` names the service.

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
    where = "create_subscription"
    path = resource_path(name, project, "subscriptions", where, "name")
    topic_path = resource_path(topic, project, "topics", where, "topic")
    if not whole_number(ack_deadline, 10, 600):
        raise ParameterError(
            where,
            "ack_deadline",
            f"expected 10..600 seconds (Pub/Sub's limits) for {name!r}, got {ack_deadline!r}",
            "pass a whole number of seconds from 10 to 600, e.g. ack_deadline=60",
        )
    request: dict[str, Any] = {
        "name": path,
        "topic": topic_path,
        "ack_deadline_seconds": ack_deadline,
        "enable_message_ordering": bool(enable_message_ordering),
        "retain_acked_messages": bool(retain_acked_messages),
        "retry_policy": {
            "minimum_backoff": duration_pb(retry_min_backoff, where, "retry_min_backoff"),
            "maximum_backoff": duration_pb(retry_max_backoff, where, "retry_max_backoff"),
        },
    }
    if parse_duration(retry_min_backoff) > parse_duration(retry_max_backoff):
        raise ParameterError(
            where,
            "retry_min_backoff",
            f"{retry_min_backoff!r} exceeds retry_max_backoff {retry_max_backoff!r} (subscription {name!r})",
            "make retry_min_backoff at most retry_max_backoff",
        )
    if dead_letter_topic is not None:
        if not whole_number(max_delivery_attempts, 5, 100):
            raise ParameterError(
                where,
                "max_delivery_attempts",
                f"expected 5..100 (Pub/Sub's limits) for {name!r}, got {max_delivery_attempts!r}",
                "pass a whole number from 5 to 100, e.g. max_delivery_attempts=5",
            )
        request["dead_letter_policy"] = {
            "dead_letter_topic": resource_path(
                dead_letter_topic, project, "topics", where, "dead_letter_topic"
            ),
            "max_delivery_attempts": max_delivery_attempts,
        }
    _create("subscription", request, emulator_host, exist_ok, timeout)
    return path


def _create(
    what: str, request: dict[str, Any], emulator_host: str | None, exist_ok: bool, timeout: float
) -> None:
    """Send one create request for a ``"topic"`` or a ``"subscription"`` within ``timeout`` seconds (retries
    included); close the client whatever happens."""
    positive_seconds(f"create_{what}", "timeout", timeout, 30, about=f"{what} {request['name']!r}")
    check_emulator_host(f"create_{what}", emulator_host)
    pubsub_v1 = import_pubsub()
    from google.api_core import exceptions

    if what == "topic":
        client = pubsub_v1.PublisherClient(**client_kwargs(emulator_host, "publisher"))
        create = client.create_topic
    else:
        client = pubsub_v1.SubscriberClient(**client_kwargs(emulator_host, "subscriber"))
        create = client.create_subscription
    name = request["name"]
    started = time.monotonic()
    try:
        create(request=request, retry=bounded_retry(timeout), timeout=timeout)
    except exceptions.AlreadyExists:
        if not exist_ok:
            raise
    except (exceptions.RetryError, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded) as exc:
        raise RuntimeError(
            f"create_{what}({name!r}): {describe_service(emulator_host)} did not answer within "
            f"timeout={timeout:g} s (tried for {time.monotonic() - started:.1f} s): {exc}. Check "
            "emulator_host / PUBSUB_EMULATOR_HOST and that the service runs"
        ) from exc
    finally:
        if what == "topic":
            client.stop()
            client.transport.grpc_channel.close()
        else:
            client.close()
