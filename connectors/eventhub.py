"""Azure Event Hubs through its Kafka-compatible endpoint.

An Event Hubs namespace speaks the Kafka protocol on ``<namespace>.servicebus.windows.net:9093``
(SASL_SSL, mechanism PLAIN, user name ``$ConnectionString``, password = the connection string); an
event hub is a Kafka topic and an Event Hubs consumer group is a Kafka group id. ``EventHubSource``
and ``EventHubSink`` are therefore :class:`~streamlab.connectors.kafka.KafkaSource` and
:class:`~streamlab.connectors.kafka.KafkaSink` with that configuration filled in from the connection
string, and they need only ``pip install 'streamlab[kafka]'``.

What is verified locally: the Kafka path, against the tansu broker with a PLAINTEXT override
(``bootstrap_servers=..., security_protocol="PLAINTEXT"``), plus the connection-string parsing and the
generated configuration. Not verified here: TLS/SASL against the real service, and the native AMQP
client (``azure-eventhub``), because no local server speaks Event Hubs' AMQP dialect (generic AMQP
brokers reject its ``$cbs`` links; see ``/work/shared/services/README.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from .kafka import KafkaSink, KafkaSource, redact_config

__all__ = [
    "EventHubConnection",
    "EventHubSink",
    "EventHubSource",
    "eventhub_kafka_config",
    "parse_eventhub_connection_string",
]

KAFKA_PORT = 9093
EMULATOR_KAFKA_PORT = 9092

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
_SERVICE_PRODUCER_DEFAULTS: dict[str, Any] = {
    "request.timeout.ms": 60000,
    "metadata.max.age.ms": 180000,
    "connections.max.idle.ms": 180000,
    "socket.keepalive.enable": True,
}

_KEYS = {
    "endpoint": "Endpoint",
    "sharedaccesskeyname": "SharedAccessKeyName",
    "sharedaccesskey": "SharedAccessKey",
    "sharedaccesssignature": "SharedAccessSignature",
    "entitypath": "EntityPath",
    "usedevelopmentemulator": "UseDevelopmentEmulator",
}


@dataclass(frozen=True)
class EventHubConnection:
    """The parts of an Event Hubs connection string.

    Attributes
    ----------
    host
        Namespace host name, e.g. ``mynamespace.servicebus.windows.net``.
    port
        Port given in the endpoint, if any (the emulator's ``sb://localhost:5672``).
    key_name
        ``SharedAccessKeyName``.
    entity_path
        ``EntityPath``: the event hub the key is scoped to, if any.
    use_development_emulator
        ``UseDevelopmentEmulator=true``.
    connection_string
        The original text (the Kafka password); hidden from ``repr``.

    Examples
    --------
    >>> c = parse_eventhub_connection_string(
    ...     "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=send;"
    ...     "SharedAccessKey=abc=;EntityPath=hub"
    ... )
    >>> c.host, c.entity_path, c.namespace
    ('ns1.servicebus.windows.net', 'hub', 'ns1')
    """

    host: str
    port: int | None
    key_name: str | None
    entity_path: str | None
    use_development_emulator: bool
    has_key: bool
    has_signature: bool
    connection_string: str = field(repr=False)

    @property
    def namespace(self) -> str:
        """The first label of the host name (the namespace name in Azure)."""
        return self.host.split(".", 1)[0]

    @property
    def kafka_bootstrap(self) -> str:
        """``host:9093`` for the service; ``host:9092`` for the local emulator."""
        return f"{self.host}:{EMULATOR_KAFKA_PORT if self.use_development_emulator else KAFKA_PORT}"


def parse_eventhub_connection_string(connection_string: str) -> EventHubConnection:
    """Parse and check an Event Hubs connection string.

    Keys are case-insensitive; values may contain ``=`` (base64 keys end with it); empty segments
    (a trailing ``;``) are ignored. The string must have an ``Endpoint`` (``sb://host/``) and either
    ``SharedAccessKeyName`` + ``SharedAccessKey`` or a ``SharedAccessSignature``.

    Parameters
    ----------
    connection_string
        As copied from the Azure portal ("Shared access policies").

    Returns
    -------
    EventHubConnection
        The parsed parts.

    Raises
    ------
    ValueError
        Saying which part is missing or malformed and how to fix it (the secret is never echoed).

    Examples
    --------
    >>> parse_eventhub_connection_string(
    ...     "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v"
    ... ).kafka_bootstrap
    'ns1.servicebus.windows.net:9093'
    >>> parse_eventhub_connection_string("Endpoint=sb://ns1.servicebus.windows.net/")
    Traceback (most recent call last):
    ...
    ValueError: Event Hubs connection string has no credentials: add SharedAccessKeyName=...;SharedAccessKey=... or SharedAccessSignature=... (copy it from the portal's 'Shared access policies')
    """
    what = "Event Hubs connection string"
    if not isinstance(connection_string, str) or not connection_string.strip():
        raise ValueError(f"{what} is empty; copy it from the Azure portal ('Shared access policies')")
    parts: dict[str, str] = {}
    for segment in connection_string.strip().split(";"):
        if not segment.strip():
            continue
        key, sep, value = segment.partition("=")
        key = key.strip()
        if not sep or not key:
            shown = key if len(key) <= 30 else key[:30] + "..."
            raise ValueError(f"{what}: segment {shown!r} is not 'Key=Value'; segments are separated by ';'")
        canonical = _KEYS.get(key.lower(), key)
        if canonical in parts:
            raise ValueError(f"{what}: {canonical} appears twice; keep one")
        parts[canonical] = value.strip()

    endpoint = parts.get("Endpoint")
    if not endpoint:
        raise ValueError(f"{what} has no Endpoint=sb://<namespace>.servicebus.windows.net/")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() not in ("sb", "amqps", "amqp", "https"):
        raise ValueError(
            f"{what}: Endpoint {endpoint!r} must look like sb://<namespace>.servicebus.windows.net/"
        )
    hostport = rest.split("/", 1)[0]
    host, colon, port_text = hostport.rpartition(":")
    if not colon:
        host, port_text = hostport, ""
    if not host or (port_text and not port_text.isdigit()):
        raise ValueError(f"{what}: Endpoint {endpoint!r} has no valid host name")
    emulator_text = parts.get("UseDevelopmentEmulator", "false").lower()
    if emulator_text not in ("true", "false"):
        raise ValueError(f"{what}: UseDevelopmentEmulator must be true or false, got {emulator_text!r}")

    key_name = parts.get("SharedAccessKeyName") or None
    has_key = bool(parts.get("SharedAccessKey"))
    has_signature = bool(parts.get("SharedAccessSignature"))
    if key_name and not has_key:
        raise ValueError(f"{what}: SharedAccessKeyName={key_name!r} is given but SharedAccessKey is missing")
    if has_key and not key_name:
        raise ValueError(f"{what}: SharedAccessKey is given but SharedAccessKeyName is missing")
    if not (has_key or has_signature):
        raise ValueError(
            f"{what} has no credentials: add SharedAccessKeyName=...;SharedAccessKey=... or "
            "SharedAccessSignature=... (copy it from the portal's 'Shared access policies')"
        )
    entity = parts.get("EntityPath") or None
    return EventHubConnection(
        host=host.lower(),
        port=int(port_text) if port_text else None,
        key_name=key_name,
        entity_path=entity,
        use_development_emulator=emulator_text == "true",
        has_key=has_key,
        has_signature=has_signature,
        connection_string=connection_string.strip(),
    )


def eventhub_kafka_config(
    connection_string: str,
    *,
    bootstrap_servers: str | None = None,
    security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT", "PLAINTEXT"] | None = None,
) -> dict[str, Any]:
    """confluent-kafka settings for an Event Hubs namespace's Kafka endpoint.

    Parameters
    ----------
    connection_string
        Namespace- or hub-level connection string.
    bootstrap_servers
        Override the broker address (tests point it at a local broker).
    security_protocol
        Override the protocol; ``"PLAINTEXT"`` drops the SASL settings (local tests only).

    Returns
    -------
    dict
        ``bootstrap.servers``, ``security.protocol`` and, unless PLAINTEXT, the SASL settings.

    Examples
    --------
    >>> cfg = eventhub_kafka_config(
    ...     "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v"
    ... )
    >>> cfg["bootstrap.servers"], cfg["security.protocol"], cfg["sasl.mechanisms"], cfg["sasl.username"]
    ('ns1.servicebus.windows.net:9093', 'SASL_SSL', 'PLAIN', '$ConnectionString')
    >>> cfg["sasl.password"].startswith("Endpoint=sb://ns1")
    True
    """
    conn = parse_eventhub_connection_string(connection_string)
    protocol = security_protocol or ("SASL_PLAINTEXT" if conn.use_development_emulator else "SASL_SSL")
    if protocol not in ("SASL_SSL", "SASL_PLAINTEXT", "PLAINTEXT"):
        raise ValueError(
            f"eventhub_kafka_config(security_protocol={security_protocol!r}): use 'SASL_SSL' (the service), "
            "'SASL_PLAINTEXT' (the emulator) or 'PLAINTEXT' (a local test broker)"
        )
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers or conn.kafka_bootstrap,
        "security.protocol": protocol,
    }
    if protocol != "PLAINTEXT":
        config.update(
            {
                "sasl.mechanisms": "PLAIN",
                "sasl.username": "$ConnectionString",
                "sasl.password": conn.connection_string,
            }
        )
    return config


def _connection_text(owner: str, connection_string: str | None, connection_string_env: str | None) -> str:
    if (connection_string is None) == (connection_string_env is None):
        raise ValueError(
            f"{owner}: pass either connection_string='Endpoint=sb://...' or connection_string_env='VAR' "
            "(the name of an environment variable holding it; keeps the secret out of notebooks and YAML)"
        )
    if connection_string_env is not None:
        value = os.environ.get(connection_string_env)
        if not value:
            raise ValueError(
                f"{owner}(connection_string_env={connection_string_env!r}): that environment variable is "
                "not set; export it with the connection string from the portal's 'Shared access policies'"
            )
        return value
    return str(connection_string)


def _secret_spec(connection_string_env: str | None) -> dict[str, str]:
    """How ``spec()`` names the secret: the variable holding it, never its value."""
    if connection_string_env:
        return {"connection_string_env": connection_string_env}
    return {"connection_string": "<redacted>"}


def _resolve_hub(owner: str, conn: EventHubConnection, eventhub: str | None) -> str:
    if eventhub is not None and (not isinstance(eventhub, str) or not eventhub):
        raise ValueError(f"{owner}(eventhub={eventhub!r}): give the event hub name")
    if conn.entity_path and eventhub and eventhub != conn.entity_path:
        raise ValueError(
            f"{owner}(eventhub={eventhub!r}): the connection string is scoped to EntityPath="
            f"{conn.entity_path!r}; its key only works for that hub. Use that name or a namespace-level "
            "connection string"
        )
    hub = eventhub or conn.entity_path
    if not hub:
        raise ValueError(
            f"{owner}: which event hub? The connection string has no EntityPath; pass eventhub='<name>'"
        )
    return hub


def _split_kafka(owner: str, kafka: dict[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    for k in ("bootstrap.servers", "security.protocol", "sasl.mechanisms", "sasl.username", "sasl.password"):
        if config and k in config:
            raise ValueError(
                f"{owner}: {k!r} comes from the connection string; to test locally pass "
                "bootstrap_servers=... and security_protocol='PLAINTEXT' instead"
            )
    return {k: v for k, v in kafka.items() if k != "bootstrap.servers"}


def _prepare(
    owner: str,
    connection_string: str | None,
    connection_string_env: str | None,
    eventhub: str | None,
    bootstrap_servers: str | None,
    security_protocol: Any,
    config: Mapping[str, Any] | None,
    service_defaults: Mapping[str, Any],
) -> tuple[EventHubConnection, str, str, dict[str, Any]]:
    """Parse the connection, pick the hub, and build the Kafka client settings for a source or sink."""
    text = _connection_text(owner, connection_string, connection_string_env)
    conn = parse_eventhub_connection_string(text)
    hub = _resolve_hub(owner, conn, eventhub)
    kafka = eventhub_kafka_config(
        text, bootstrap_servers=bootstrap_servers, security_protocol=security_protocol
    )
    # The service's recommended timeouts would only slow a local test broker down.
    tuned = service_defaults if bootstrap_servers is None else {}
    merged = {**tuned, **_split_kafka(owner, kafka, config), **(config or {})}
    return conn, hub, kafka["bootstrap.servers"], merged


@dataclass(frozen=True, repr=False)
class EventHubSource(KafkaSource):
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
        conn, hub, boot, merged = _prepare(
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
        object.__setattr__(self, "_connection", conn)
        object.__setattr__(
            self,
            "_spec",
            {
                "kind": "eventhub",
                **_secret_spec(connection_string_env),
                "eventhub": hub,
                "consumer_group": consumer_group,
                "start": start
                if not isinstance(start, (datetime, pd.Timestamp))
                else pd.Timestamp(start).isoformat(),
                "config": redact_config(dict(config or {})),
                "bootstrap_servers": bootstrap_servers,
                "security_protocol": security_protocol,
                "max_batch": max_batch,
                "poll_timeout": float(poll_timeout),
                "max_in_flight": max_in_flight,
                "stop_at_end": stop_at_end,
                "connect_timeout": self.connect_timeout,
                "broker_timeout": self.broker_timeout,
            },
        )

    @property
    def connection(self) -> EventHubConnection:
        """The parsed connection string."""
        conn: EventHubConnection = self.__dict__["_connection"]
        return conn

    @property
    def eventhub(self) -> str:
        """The event hub read (the Kafka topic)."""
        return self.topics[0]

    def spec(self) -> dict[str, Any]:
        """YAML-ready constructor arguments; a literal connection string is redacted (prefer
        ``connection_string_env``, which is kept)."""
        return dict(self.__dict__["_spec"])

    def __repr__(self) -> str:
        return (
            f"EventHubSource(eventhub={self.eventhub!r}, namespace={self.connection.host!r}, "
            f"consumer_group={self.group_id!r})"
        )


@dataclass(frozen=True, repr=False)
class EventHubSink(KafkaSink):
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
        conn, hub, boot, merged = _prepare(
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
        object.__setattr__(self, "_connection", conn)
        object.__setattr__(
            self,
            "_spec",
            {
                "kind": "eventhub",
                **_secret_spec(connection_string_env),
                "eventhub": hub,
                "key": key,
                "value": value,
                "headers": dict(self.headers),
                "compression": compression,
                "idempotence": idempotence,
                "config": redact_config(dict(config or {})),
                "bootstrap_servers": bootstrap_servers,
                "security_protocol": security_protocol,
                "flush_timeout": float(flush_timeout),
            },
        )

    @property
    def connection(self) -> EventHubConnection:
        """The parsed connection string."""
        conn: EventHubConnection = self.__dict__["_connection"]
        return conn

    @property
    def eventhub(self) -> str:
        """The event hub written (the Kafka topic)."""
        return self.topic

    def spec(self) -> dict[str, Any]:
        """YAML-ready constructor arguments; a literal connection string is redacted."""
        return dict(self.__dict__["_spec"])

    def __repr__(self) -> str:
        return (
            f"EventHubSink(eventhub={self.eventhub!r}, namespace={self.connection.host!r}, key={self.key!r})"
        )
