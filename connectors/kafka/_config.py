"""Client configuration: validation of user settings, secret redaction, start positions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from streamlab._secrets import env_name, secret_reference
from streamlab.errors import ParameterError

# Settings whose values are secrets. Matched as whole names or name prefixes, not substrings: a
# setting such as ``connections.max.idle.ms`` is not a secret.
SECRET_KEYS = (
    "sasl.password",
    "sasl.jaas.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "connection_string",
    "connection.string",
    "password",
    "secret",
    "token",
)


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a client config with secret values replaced by ``"<redacted>"``.

    Used by ``repr`` so passwords and connection strings never reach notebooks or logs (``spec()``
    writes environment references instead: ``config_references``).

    Parameters
    ----------
    config
        A librdkafka configuration mapping.

    Returns
    -------
    dict
        The same keys, secrets masked.

    Examples
    --------
    >>> redact_config({"sasl.password": "hunter2", "linger.ms": 5})
    {'sasl.password': '<redacted>', 'linger.ms': 5}
    """
    return {k: ("<redacted>" if is_secret(k) else v) for k, v in config.items()}


def config_references(config: Mapping[str, Any]) -> dict[str, Any]:
    """A client config for a spec: each secret becomes an environment reference, ``${KAFKA_<KEY>}``
    unless it already is one (resolved by ``consumer_config()``/``producer_config()`` when connecting).

    Examples
    --------
    >>> config_references({"sasl.password": "hunter2", "linger.ms": 5})
    {'sasl.password': '${KAFKA_SASL_PASSWORD}', 'linger.ms': 5}
    """
    return {k: (secret_reference(v, env_name("kafka", k)) if is_secret(k) else v) for k, v in config.items()}


def is_secret(key: str) -> bool:
    k = key.lower()
    return any(k == s or k.startswith(s + ".") or k.endswith("." + s) for s in SECRET_KEYS)


def check_config(owner: str, config: Mapping[str, Any], reserved: Mapping[str, str]) -> dict[str, Any]:
    example = "write settings as a mapping, e.g. config: {linger.ms: 5} (config={'linger.ms': 5} in Python)"
    if not isinstance(config, Mapping):
        raise ParameterError(
            owner,
            "config",
            # not the value itself: it may hold a password written as "sasl.password=..."
            f"expected a mapping of librdkafka settings, got {type(config).__name__}",
            example,
        )
    out: dict[str, Any] = {}
    for k, v in config.items():
        if not isinstance(k, str):
            raise ParameterError(
                owner,
                "config",
                f"expected setting names as text such as 'linger.ms', got the key {k!r}",
                example,
            )
        if k in reserved:
            raise ParameterError(
                owner,
                "config",
                f"sets {k!r}, which the connector sets itself",
                f"remove {k!r}; {reserved[k]}",
            )
        out[k] = v
    for low, high in _BACKOFF_PAIRS:
        if low not in out and high not in out:
            continue
        lo, hi = _ms(out.get(low, _DEFAULT_MS[low])), _ms(out.get(high, _DEFAULT_MS[high]))
        if lo is not None and hi is not None and lo > hi:
            given = ", ".join(f"{k!r}: {out[k]!r}" for k in (low, high) if k in out)
            defaults = "".join(f" ({k} is {_DEFAULT_MS[k]} by default)" for k in (low, high) if k not in out)
            raise ParameterError(
                owner,
                "config",
                f"sets {given}: {low} exceeds {high}{defaults}; librdkafka refuses it when the client is "
                "made, or waits the maximum every time",
                f"make {low} at most {high}, e.g. config: {{{low}: 100, {high}: 1000}}",
            )
    return out


#: librdkafka's backoff settings whose first must not exceed the second, and their defaults (ms)
_BACKOFF_PAIRS = (
    ("retry.backoff.ms", "retry.backoff.max.ms"),
    ("reconnect.backoff.ms", "reconnect.backoff.max.ms"),
)
_DEFAULT_MS = {
    "retry.backoff.ms": 100,
    "retry.backoff.max.ms": 1000,
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 10_000,
}


def _ms(value: Any) -> int | None:
    """A librdkafka integer setting given as a number or its text, else None (librdkafka reports it)."""
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
TOPIC_MAX = 249
"""Longest topic name Kafka accepts."""


def topic_problem(topic: str) -> str | None:
    """Why Kafka refuses ``topic`` as a name (ASCII letters, digits, ``.``, ``_``, ``-``; 1 to 249 of them;
    not ``.`` or ``..``), else None. A name starting with ``^`` is a subscription pattern, not checked.

    Examples
    --------
    >>> topic_problem("events.v2") is None
    True
    >>> topic_problem("my events")
    "it has characters Kafka does not allow in a topic name ([' ']); use ASCII letters, digits, '.', '_' and '-'"
    """
    if topic.startswith("^"):
        return None
    bad = sorted({c for c in topic if c not in _TOPIC_CHARS})
    if bad:
        return (
            f"it has characters Kafka does not allow in a topic name ({bad}); "
            "use ASCII letters, digits, '.', '_' and '-'"
        )
    if len(topic) > TOPIC_MAX:
        return f"it is {len(topic)} characters long; Kafka allows {TOPIC_MAX} at most"
    if topic in (".", ".."):
        return "Kafka does not allow '.' or '..' as a topic name"
    return None


_SCHEMES = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")  # librdkafka's optional prefixes


def check_bootstrap(owner: str, bootstrap_servers: str | Sequence[str]) -> str:
    if isinstance(bootstrap_servers, str):
        text = bootstrap_servers.strip()
    else:
        text = ",".join(str(s).strip() for s in bootstrap_servers)
    if not text:
        raise ParameterError(
            owner,
            "bootstrap_servers",
            f"no broker given, got {bootstrap_servers!r}",
            "write the brokers as 'host:port', e.g. bootstrap_servers: 127.0.0.1:9092 "
            "(bootstrap_servers='127.0.0.1:9092' in Python)",
        )
    for part in text.split(","):
        scheme, has_scheme, address = part.strip().rpartition("://")
        if has_scheme and scheme.upper() not in _SCHEMES:
            raise ParameterError(
                owner,
                "bootstrap_servers",
                f"bootstrap server {part!r} starts with {scheme + '://'!r}, which Kafka clients do not read "
                "(the brokers answer the Kafka protocol, not HTTP)",
                "write 'host:port', and set security.protocol in config for TLS or SASL",
            )
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ParameterError(
                owner,
                "bootstrap_servers",
                f"bootstrap server {part!r} is not 'host:port'",
                "write e.g. '127.0.0.1:9092' (several separated by commas)",
            )
        if not 0 < int(port) < 65536:
            # librdkafka takes the port modulo 65536: 99999 would connect to 34463
            raise ParameterError(
                owner,
                "bootstrap_servers",
                f"bootstrap server {part!r} has port {port}; ports are 1 to 65535",
                "write the broker's port, e.g. '127.0.0.1:9092'",
            )
    return text


def parse_start(start: Any, owner: str = "KafkaSource") -> str | int:
    """``"earliest"``/``"latest"`` or epoch milliseconds for a point in time; anything else is a
    :class:`ParameterError` of ``owner``'s ``start``.

    Examples
    --------
    >>> parse_start("2024-01-01T00:00:00Z")
    1704067200000
    >>> parse_start(-1)
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSource(start=...): expected 'earliest', 'latest' or a point in time since 1970, got -1. Fix: use 'earliest', 'latest', or a point in time (ISO text like '2024-01-01T00:00:00Z', a datetime, or epoch milliseconds)
    """
    if isinstance(start, str) and start in ("earliest", "latest"):
        return start
    ms: int | None = None
    if isinstance(start, (int, np.integer)) and not isinstance(start, bool):
        ms = int(start)
    elif isinstance(start, (str, datetime, pd.Timestamp)):
        try:
            ts = pd.Timestamp(start)
        except (TypeError, ValueError):
            ts = None
        if ts is not None and not pd.isna(ts):  # '' and 'NaT' read as NaT, whose value is the smallest int64
            ms = int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).value // 1_000_000)
    # librdkafka reads -1 and -2 as the end and the start of the partition, any other negative number
    # as an error: a time before 1970 is no Kafka timestamp
    if ms is None or ms < 0:
        raise ParameterError(
            owner,
            "start",
            f"expected 'earliest', 'latest' or a point in time since 1970, got {start!r}",
            "use 'earliest', 'latest', or a point in time (ISO text like '2024-01-01T00:00:00Z', a "
            "datetime, or epoch milliseconds)",
        )
    return ms
