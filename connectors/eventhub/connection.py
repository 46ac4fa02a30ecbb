"""Event Hubs connection strings, and the Kafka client settings that reach a namespace's Kafka endpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from streamlab.errors import ParameterError

KAFKA_PORT = 9093
EMULATOR_KAFKA_PORT = 9092


_KEYS = {
    "endpoint": "Endpoint",
    "sharedaccesskeyname": "SharedAccessKeyName",
    "sharedaccesskey": "SharedAccessKey",
    "sharedaccesssignature": "SharedAccessSignature",
    "entitypath": "EntityPath",
    "usedevelopmentemulator": "UseDevelopmentEmulator",
}
_SECRETS = ("SharedAccessKey", "SharedAccessSignature")
# A known key followed by '=' inside a value: two segments run together ('...=send SharedAccessKey=...').
# Not after a letter or digit, so 'xEndpoint=' inside a word is no key.
_RUN_TOGETHER = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted(_KEYS.values(), key=len, reverse=True)) + r")\s*=", re.IGNORECASE
)
# What an error may echo of a value: cut at the first character outside these (a separator, a secret's
# '+' or '=') and before 'SharedAccess' (a key or signature may follow), so no secret is ever shown.
_SHOWN = re.compile(r"[A-Za-z0-9._:/-]*")
_SEPARATORS = {" ": "a space", ",": "a comma", "\t": "a tab", "\n": "a line break", "\r": "a line break"}


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


def _shown(value: str) -> str:
    """``value`` as an error may quote it: up to the first character that is not a letter, digit or one
    of ``._:/-`` and before any ``SharedAccess`` (what follows may be a key or signature), ``…`` marking
    the cut.

    Examples
    --------
    >>> _shown("sb://ns1.servicebus.windows.net/"), _shown("send SharedAccessKey=abc="), _shown("ab+c")
    ("'sb://ns1.servicebus.windows.net/'", "'send…'", "'ab…'")
    """
    shown = _SHOWN.match(value)
    kept = shown.group() if shown else ""
    marker = kept.lower().find("sharedaccess")
    if marker >= 0:
        kept = kept[:marker]
    return repr(kept + "…") if len(kept) < len(value) else repr(kept)


def _run_together(key: str, value: str) -> tuple[str, str] | None:
    """The known key written inside the value of ``key`` (its segment ran into the next one) and what
    separated them, e.g. ``("SharedAccessKey", "a space")``; None when there is none.

    Examples
    --------
    >>> _run_together("SharedAccessKeyName", "send SharedAccessKey=abc="), _run_together("EntityPath", "h")
    (('SharedAccessKey', 'a space'), None)
    """
    for found in _RUN_TOGETHER.finditer(value):
        before = value[found.start() - 1] if found.start() else ""
        if before and before in "+/" and key in _SECRETS:
            continue  # base64 text of a key, not a separator
        separator = _SEPARATORS.get(before, repr(before)) if before else "nothing (it starts the value)"
        return _KEYS[found.group(1).lower()], separator
    return None


def parse_eventhub_connection_string(
    connection_string: str,
    *,
    owner: str = "parse_eventhub_connection_string",
    parameter: str = "connection_string",
) -> EventHubConnection:
    """Parse and check an Event Hubs connection string.

    Keys are case-insensitive; values may contain ``=`` (base64 keys end with it); empty segments
    (a trailing ``;``) are ignored. The string must have an ``Endpoint`` (``sb://host/``) and either
    ``SharedAccessKeyName`` + ``SharedAccessKey`` or a ``SharedAccessSignature``.

    Parameters
    ----------
    connection_string
        As copied from the Azure portal ("Shared access policies").
    owner, parameter
        Who was given it, for the error (``EventHubSource``, ``connection_string_env``).

    Returns
    -------
    EventHubConnection
        The parsed parts.

    Raises
    ------
    ParameterError
        Saying which part is missing or malformed and how to fix it. The key or signature is never
        echoed: segments run together (``SharedAccessKeyName=send SharedAccessKey=...``, a ``,`` or a
        line break for the ``;``) are named, not quoted, and a value an error quotes is cut at its first
        separator and before any ``SharedAccess``.

    Examples
    --------
    >>> parse_eventhub_connection_string(
    ...     "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v"
    ... ).kafka_bootstrap
    'ns1.servicebus.windows.net:9093'
    >>> parse_eventhub_connection_string("Endpoint=sb://ns1.servicebus.windows.net/")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: parse_eventhub_connection_string(connection_string=...): the Event Hubs connection string has no credentials. Fix: add SharedAccessKeyName=...;SharedAccessKey=... or SharedAccessSignature=... (copy it from the portal's 'Shared access policies')
    """
    what = "the Event Hubs connection string"
    portal = "copy it from the Azure portal's 'Shared access policies'"

    def refuse(problem: str, fix: str) -> ParameterError:
        return ParameterError(owner, parameter, f"{what} {problem}", fix)

    if not isinstance(connection_string, str) or not connection_string.strip():
        raise refuse("is empty", portal)
    parts: dict[str, str] = {}
    for number, segment in enumerate(connection_string.strip().split(";"), 1):
        if not segment.strip():
            continue
        key, sep, value = segment.partition("=")
        key = key.strip()
        if not sep or not key:
            # never the segment's text: without its '=' it may be a key's value ('SharedAccessKey:...')
            named = next((k for k in _KEYS.values() if segment.strip().lower().startswith(k.lower())), None)
            shown = f"starts with {named}" if named else f"{len(segment.strip())} characters, not shown"
            problem = (
                f"has no '=' in segment {number} ({shown})" if not sep else f"has no key in segment {number}"
            )
            raise refuse(
                f"{problem}: each segment is Key=Value",
                "separate the segments by ';', each as Key=Value (" + portal + ")",
            )
        canonical = _KEYS.get(key.lower(), key)
        named = canonical if canonical in _KEYS.values() else _shown(canonical)
        if canonical in parts:
            raise refuse(f"has {named} twice", f"keep one {named}=...")
        inner = _run_together(canonical, value)
        if inner is not None:
            raise refuse(
                f"runs two segments together: segment {number} ({named}=...) holds {inner[0]}= after "
                f"{inner[1]} (its value is not shown)",
                f"separate the segments by ';', as in ...;SharedAccessKeyName=<policy>;SharedAccessKey=<key> "
                f"({portal})",
            )
        parts[canonical] = value.strip()

    endpoint_fix = "start it with Endpoint=sb://<namespace>.servicebus.windows.net/ (" + portal + ")"
    endpoint = parts.get("Endpoint")
    if not endpoint:
        raise refuse("has no Endpoint", endpoint_fix)
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() not in ("sb", "amqps", "amqp", "https"):
        raise refuse(f"has Endpoint {_shown(endpoint)}, which is not an sb:// address", endpoint_fix)
    hostport = rest.split("/", 1)[0]
    host, colon, port_text = hostport.rpartition(":")
    if not colon:
        host, port_text = hostport, ""
    if not host:
        raise refuse(f"has Endpoint {_shown(endpoint)}, which has no valid host name", endpoint_fix)
    if port_text and not port_text.isdigit():
        raise refuse(
            f"has Endpoint {_shown(f'{scheme}://{host}')} + ':...', which has no valid host name and port: "
            f"the {len(port_text)} characters after the last ':' (not shown) are not a port number",
            endpoint_fix,
        )
    emulator_text = parts.get("UseDevelopmentEmulator", "false").lower()
    if emulator_text not in ("true", "false"):
        raise refuse(
            f"has UseDevelopmentEmulator={_shown(emulator_text)}",
            "write UseDevelopmentEmulator=true or false (true for the local emulator), or leave it out",
        )

    key_name = parts.get("SharedAccessKeyName") or None
    has_key = bool(parts.get("SharedAccessKey"))
    has_signature = bool(parts.get("SharedAccessSignature"))
    if key_name and not has_key:
        raise refuse(
            f"has SharedAccessKeyName={_shown(key_name)} but no SharedAccessKey",
            "add SharedAccessKey=... of that policy as a segment of its own, after a ';' (" + portal + ")",
        )
    if has_key and not key_name:
        raise refuse(
            "has a SharedAccessKey but no SharedAccessKeyName",
            "add SharedAccessKeyName=<the policy's name> (" + portal + ")",
        )
    if not (has_key or has_signature):
        raise refuse(
            "has no credentials",
            "add SharedAccessKeyName=...;SharedAccessKey=... or SharedAccessSignature=... (copy it from "
            "the portal's 'Shared access policies')",
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
    owner: str = "eventhub_kafka_config",
    parameter: str = "connection_string",
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
    owner, parameter
        Who was given the connection string, for the error (``EventHubSink``, ``connection_string_env``).

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
    conn = parse_eventhub_connection_string(connection_string, owner=owner, parameter=parameter)
    protocol = security_protocol or ("SASL_PLAINTEXT" if conn.use_development_emulator else "SASL_SSL")
    if protocol not in ("SASL_SSL", "SASL_PLAINTEXT", "PLAINTEXT"):
        raise ParameterError(
            owner,
            "security_protocol",
            f"expected 'SASL_SSL', 'SASL_PLAINTEXT' or 'PLAINTEXT', got {security_protocol!r}",
            "use 'SASL_SSL' (the service), 'SASL_PLAINTEXT' (the emulator) or 'PLAINTEXT' (a local test "
            "broker), or leave it out to pick from the connection string",
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
