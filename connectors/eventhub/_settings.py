"""What a source and a sink share: the connection (given or from the environment), the hub, merged settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from streamlab.errors import ParameterError

from ..kafka._client import import_confluent
from ..kafka._config import check_config, config_references
from .connection import EventHubConnection, eventhub_kafka_config, parse_eventhub_connection_string


def connection_text(owner: str, connection_string: str | None, connection_string_env: str | None) -> str:
    if (connection_string is None) == (connection_string_env is None):
        both = connection_string is not None
        raise ParameterError(
            owner,
            "connection_string_env" if both else "connection_string",
            "got both connection_string and connection_string_env" if both else "no connection string given",
            "pass either connection_string_env: VAR (connection_string_env='VAR' in Python; the name of an "
            "environment variable holding it, which keeps the secret out of notebooks and YAML) or "
            "connection_string='Endpoint=sb://...'",
        )
    if connection_string_env is not None:
        value = os.environ.get(connection_string_env)
        if not value:
            raise ParameterError(
                owner,
                "connection_string_env",
                f"the environment variable {connection_string_env!r} is not set",
                f"export {connection_string_env}=<the connection string from the portal's 'Shared access "
                "policies'> before running",
            )
        return value
    return str(connection_string)


def secret_spec(connection_string_env: str | None) -> dict[str, str]:
    """How ``spec()`` names the secret: the variable holding it, never its value."""
    if connection_string_env:
        return {"connection_string_env": connection_string_env}
    return {"connection_string": "<redacted>"}


def resolve_hub(owner: str, conn: EventHubConnection, eventhub: str | None) -> str:
    if eventhub is not None and (not isinstance(eventhub, str) or not eventhub):
        raise ParameterError(
            owner,
            "eventhub",
            f"expected the event hub's name, got {eventhub!r}",
            "write the hub's name, e.g. eventhub: events (eventhub='events' in Python), or leave it out to "
            "use the connection string's EntityPath",
        )
    if conn.entity_path and eventhub and eventhub != conn.entity_path:
        raise ParameterError(
            owner,
            "eventhub",
            f"got {eventhub!r}, but the connection string is scoped to EntityPath={conn.entity_path!r} and "
            "its key only works for that hub",
            f"use eventhub {conn.entity_path!r} (or leave it out), or a namespace-level connection string",
        )
    hub = eventhub or conn.entity_path
    if not hub:
        raise ParameterError(
            owner,
            "eventhub",
            "which event hub? None given, and the connection string has no EntityPath",
            "pass eventhub='<name>' (eventhub: <name> in a spec)",
        )
    return hub


def split_kafka(owner: str, kafka: dict[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    for k in ("bootstrap.servers", "security.protocol", "sasl.mechanisms", "sasl.username", "sasl.password"):
        if config and k in config:
            raise ParameterError(
                owner,
                "config",
                f"sets {k!r}, which comes from the connection string",
                f"remove {k!r} from config; to test locally pass bootstrap_servers=... and "
                "security_protocol='PLAINTEXT' instead",
            )
    return {k: v for k, v in kafka.items() if k != "bootstrap.servers"}


def prepare(
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
    if config is not None:
        config = check_config(owner, config, {})
    text = connection_text(owner, connection_string, connection_string_env)
    parameter = "connection_string" if connection_string_env is None else "connection_string_env"
    conn = parse_eventhub_connection_string(text, owner=owner, parameter=parameter)
    hub = resolve_hub(owner, conn, eventhub)
    kafka = eventhub_kafka_config(
        text,
        bootstrap_servers=bootstrap_servers,
        security_protocol=security_protocol,
        owner=owner,
        parameter=parameter,
    )
    # The service's recommended timeouts would only slow a local test broker down.
    tuned = service_defaults if bootstrap_servers is None else {}
    merged = {**tuned, **split_kafka(owner, kafka, config), **(config or {})}
    return conn, hub, kafka["bootstrap.servers"], merged


def require_client(owner: str) -> None:
    """Raise the ImportError naming Event Hubs' own extra (not Kafka's) when confluent-kafka is missing."""
    try:
        import_confluent()
    except ImportError as exc:
        raise ImportError(f"{owner} needs confluent-kafka: pip install 'streamlab[eventhub]'") from exc


class EventHubClient:
    """What :class:`EventHubSource` and :class:`EventHubSink` add to their Kafka base: the parsed
    connection, and a spec that names the secret's variable but never holds the secret."""

    def _keep(
        self,
        conn: EventHubConnection,
        hub: str,
        connection_string_env: str | None,
        config: Mapping[str, Any] | None,
        bootstrap_servers: str | None,
        security_protocol: str | None,
        **fields: Any,
    ) -> None:
        object.__setattr__(self, "_connection", conn)
        spec = {
            "kind": "eventhub",
            **secret_spec(connection_string_env),
            "eventhub": hub,
            **fields,
            "config": config_references(dict(config or {})),
            "bootstrap_servers": bootstrap_servers,
            "security_protocol": security_protocol,
        }
        object.__setattr__(self, "_spec", spec)

    @property
    def connection(self) -> EventHubConnection:
        """The parsed connection string."""
        conn: EventHubConnection = self.__dict__["_connection"]
        return conn

    def spec(self) -> dict[str, Any]:
        """YAML-ready constructor arguments; a literal connection string is redacted (prefer
        ``connection_string_env``, which is kept)."""
        return dict(self.__dict__["_spec"])
