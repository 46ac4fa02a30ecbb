"""``EventHubSink``: a :class:`~streamlab.connectors.kafka.KafkaSink` configured for an event hub."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from streamlab.clock import Clock

from ..kafka import KafkaSink, KafkaSinkWriter
from ._settings import EventHubClient, prepare, require_client

# Client settings Microsoft recommends for the Kafka endpoint (idle connections are closed after
# 240 s by the service's load balancer, so keep-alive and shorter idle/metadata timeouts matter).


_SERVICE_PRODUCER_DEFAULTS: dict[str, Any] = {
    "request.timeout.ms": 60000,
    "metadata.max.age.ms": 180000,
    "connections.max.idle.ms": 180000,
    "socket.keepalive.enable": True,
}


@dataclass(frozen=True, repr=False)
class EventHubSink(EventHubClient, KafkaSink):
    """Send rows to an event hub through its Kafka endpoint (a :class:`KafkaSink` for Event Hubs).

    Verified locally through the Kafka path only (tansu, PLAINTEXT override).

    Parameters
    ----------
    connection_string
        Namespace- or hub-level connection string with Send rights.
    connection_string_env
        Instead: the name of an environment variable holding it (kept in ``spec``).
    eventhub
        Event hub (Kafka topic); default: ``EntityPath``.
    key
        Column used as the partition key.
    value
        ``"json"`` or a bytes/str column.
    headers
        Columns sent as headers (Event Hubs shows them as application properties).
    compression
        Producer compression; gzip by default, the codec the Kafka endpoint has supported longest.
    idempotence
        Idempotent producer.
    config
        Extra librdkafka producer settings.
    bootstrap_servers
        Override the endpoint (local tests).
    security_protocol
        Override the protocol (``"PLAINTEXT"`` for a local test broker).

    Examples
    --------
    >>> sink = EventHubSink(
    ...     "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=secret",
    ...     eventhub="alerts",
    ...     key="user_id",
    ... )
    >>> sink
    EventHubSink(eventhub='alerts', namespace='ns1.servicebus.windows.net', key='user_id')
    >>> "secret" in str(sink.spec())
    False
    """

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        connection_string_env: str | None = None,
        eventhub: str | None = None,
        key: str | None = None,
        value: str = "json",
        headers: Sequence[str] | Mapping[str, str] | None = None,
        compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "gzip",
        idempotence: bool = True,
        config: Mapping[str, Any] | None = None,
        bootstrap_servers: str | None = None,
        security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT", "PLAINTEXT"] | None = None,
        flush_timeout: float = 60.0,
    ) -> None:
        conn, hub, boot, merged = prepare(
            "EventHubSink",
            connection_string,
            connection_string_env,
            eventhub,
            bootstrap_servers,
            security_protocol,
            config,
            _SERVICE_PRODUCER_DEFAULTS,
        )
        super().__init__(
            hub,
            bootstrap_servers=boot,
            key=key,
            value=value,
            headers=headers,
            compression=compression,
            idempotence=idempotence,
            config=merged,
            flush_timeout=flush_timeout,
        )
        self._keep(
            conn,
            hub,
            connection_string_env,
            config,
            bootstrap_servers,
            security_protocol,
            key=key,
            value=value,
            headers=dict(self.headers),
            compression=compression,
            idempotence=idempotence,
            flush_timeout=float(flush_timeout),
        )

    def open(self, clock: Clock | None = None) -> KafkaSinkWriter:
        """Connect the producer (confluent-kafka: ``pip install 'streamlab[eventhub]'``)."""
        require_client("EventHubSink")
        return super().open(clock)

    @property
    def eventhub(self) -> str:
        """The event hub written (the Kafka topic)."""
        return self.topic

    def __repr__(self) -> str:
        return (
            f"EventHubSink(eventhub={self.eventhub!r}, namespace={self.connection.host!r}, key={self.key!r})"
        )
