"""``EventHubSource``: a :class:`~streamlab.connectors.kafka.KafkaSource` configured for an event hub."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from streamlab.clock import Clock

from ..kafka import KafkaSource, KafkaSourceReader
from ._settings import EventHubClient, prepare, require_client

# Client settings Microsoft recommends for the Kafka endpoint (idle connections are closed after
# 240 s by the service's load balancer, so keep-alive and shorter idle/metadata timeouts matter).
_SERVICE_CONSUMER_DEFAULTS: dict[str, Any] = {
    "session.timeout.ms": 30000,
    "heartbeat.interval.ms": 3000,
    "request.timeout.ms": 60000,
    "metadata.max.age.ms": 180000,
    "connections.max.idle.ms": 180000,
    "socket.keepalive.enable": True,
}


@dataclass(frozen=True, repr=False)
class EventHubSource(EventHubClient, KafkaSource):
    """Read an event hub through its Kafka endpoint (a :class:`KafkaSource` configured for Event Hubs).

    Verified locally through the Kafka path only (tansu, PLAINTEXT override); TLS/SASL against Azure
    and the native AMQP client are not exercised here (see the module docstring).

    Parameters
    ----------
    connection_string
        Namespace- or hub-level connection string (kept out of ``repr`` and ``spec``).
    connection_string_env
        Instead: the name of an environment variable holding it (kept in ``spec``).
    eventhub
        Event hub (Kafka topic); default: the connection string's ``EntityPath``.
    consumer_group
        Event Hubs consumer group, used as the Kafka group id.
    start
        ``"earliest"``, ``"latest"`` or a point in time, for partitions without committed offsets.
    config
        Extra librdkafka consumer settings.
    bootstrap_servers
        Override the endpoint (local tests).
    security_protocol
        Override the protocol (``"PLAINTEXT"`` for a local test broker).
    max_batch
        Records per poll at most.
    poll_timeout
        Seconds ``poll`` may wait.
    max_in_flight
        Backpressure limit (see :class:`KafkaSource`).
    stop_at_end
        A bounded read up to each partition's end at the first fetch (see :class:`KafkaSource`).
    connect_timeout, broker_timeout
        How long the endpoint may take to answer at first, and stay silent later, before the run fails
        with an error naming it (see :class:`KafkaSource`).

    Examples
    --------
    >>> src = EventHubSource(
    ...     "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=listen;"
    ...     "SharedAccessKey=secret;EntityPath=clicks"
    ... )
    >>> src
    EventHubSource(eventhub='clicks', namespace='ns1.servicebus.windows.net', consumer_group='$Default')
    >>> src.consumer_config()["bootstrap.servers"]
    'ns1.servicebus.windows.net:9093'
    """

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        connection_string_env: str | None = None,
        eventhub: str | None = None,
        consumer_group: str = "$Default",
        start: str | int | datetime | pd.Timestamp = "earliest",
        config: Mapping[str, Any] | None = None,
        bootstrap_servers: str | None = None,
        security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT", "PLAINTEXT"] | None = None,
        max_batch: int = 10_000,
        poll_timeout: float = 0.05,
        max_in_flight: int | None = None,
        stop_at_end: bool = False,
        connect_timeout: float | None = 10.0,
        broker_timeout: float | None = 30.0,
    ) -> None:
        conn, hub, boot, merged = prepare(
            "EventHubSource",
            connection_string,
            connection_string_env,
            eventhub,
            bootstrap_servers,
            security_protocol,
            config,
            _SERVICE_CONSUMER_DEFAULTS,
        )
        super().__init__(
            hub,
            bootstrap_servers=boot,
            group_id=consumer_group,
            start=start,
            config=merged,
            max_batch=max_batch,
            poll_timeout=poll_timeout,
            max_in_flight=max_in_flight,
            stop_at_end=stop_at_end,
            connect_timeout=connect_timeout,
            broker_timeout=broker_timeout,
        )
        self._keep(
            conn,
            hub,
            connection_string_env,
            config,
            bootstrap_servers,
            security_protocol,
            consumer_group=consumer_group,
            start=start
            if not isinstance(start, (datetime, pd.Timestamp))
            else pd.Timestamp(start).isoformat(),
            max_batch=max_batch,
            poll_timeout=float(poll_timeout),
            max_in_flight=max_in_flight,
            stop_at_end=stop_at_end,
            connect_timeout=self.connect_timeout,
            broker_timeout=self.broker_timeout,
        )

    def open(self, resume: Any = None, clock: Clock | None = None) -> KafkaSourceReader:
        """Join the group and start reading (confluent-kafka: ``pip install 'streamlab[eventhub]'``)."""
        require_client("EventHubSource")
        return super().open(resume, clock)

    @property
    def eventhub(self) -> str:
        """The event hub read (the Kafka topic)."""
        return self.topics[0]

    def __repr__(self) -> str:
        return (
            f"EventHubSource(eventhub={self.eventhub!r}, namespace={self.connection.host!r}, "
            f"consumer_group={self.group_id!r})"
        )
