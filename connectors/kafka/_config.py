"""Client configuration: validation of user settings, secret redaction, start positions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from streamlab._secrets import env_name, is_reference, redact_url, secret_reference, url_with_reference
from streamlab.errors import ParameterError

#: librdkafka's settings (its CONFIGURATION.md, 2.x) whose values are, or may hold, a credential
LIBRDKAFKA_SECRETS = (
    "sasl.password",
    "sasl.oauthbearer.config",  # clientSecret=..., extension_<name>=... pairs
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",  # its alias
    "sasl.oauthbearer.extensions",  # key=value pairs sent to the broker at login, often tokens
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.kerberos.kinit.cmd",  # a shell command, which may hold a password (echo ... | kinit)
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "ssl_key",  # set through librdkafka's API only, named here in case a client passes it on
    "ssl_engine_callback_data",  # the same (an OpenSSL engine's PIN, for one)
)

#: Secrets of other Kafka clients (the Java client's names) and the words that make any setting a secret,
#: as the whole name, its first parts or its last part: ``password`` covers ``sasl.password`` and
#: ``ssl.truststore.password``, but ``connections.max.idle.ms`` is not a secret.
SECRET_WORDS = (
    "sasl.jaas.config",
    "ssl.truststore.password",
    "connection_string",
    "connection.string",
    "password",
    "passphrase",
    "secret",
    "token",
)

SECRET_KEYS = LIBRDKAFKA_SECRETS + SECRET_WORDS
"""Settings whose values are secrets, matched as whole names, name prefixes or last parts (not substrings)."""

#: Settings whose value is a URL that may hold a password (``https://user:password@host/...`` or
#: ``?client_secret=...``): only that part is a secret.
URL_SETTINGS = ("sasl.oauthbearer.token.endpoint.url",)


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a client config with secret values replaced by ``"<redacted>"``.

    Used by ``repr`` so passwords and connection strings never reach notebooks or logs (``spec()``
    writes environment references instead: ``config_references``). A URL setting keeps its URL, its
    password shown as ``***``.

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
    >>> redact_config({"sasl.oauthbearer.token.endpoint.url": "https://app:hunter2@idp/token"})
    {'sasl.oauthbearer.token.endpoint.url': 'https://app:***@idp/token'}
    """
    return {
        k: "<redacted>" if is_secret(k) else redact_url(v) if _is_url_setting(k, v) else v
        for k, v in config.items()
    }


def config_references(config: Mapping[str, Any]) -> dict[str, Any]:
    """A client config for a spec: each secret becomes an environment reference, ``${KAFKA_<KEY>}``
    unless it already is one (resolved by ``consumer_config()``/``producer_config()`` when connecting).
    A URL setting keeps its URL, its password a reference ``${KAFKA_<KEY>_PASSWORD}``.

    Examples
    --------
    >>> config_references({"sasl.password": "hunter2", "linger.ms": 5})
    {'sasl.password': '${KAFKA_SASL_PASSWORD}', 'linger.ms': 5}
    >>> config_references({"sasl.kerberos.kinit.cmd": "echo pw | kinit app"})
    {'sasl.kerberos.kinit.cmd': '${KAFKA_SASL_KERBEROS_KINIT_CMD}'}
    """
    return {
        k: secret_reference(v, env_name("kafka", k))
        if is_secret(k)
        else url_with_reference(v, env_name("kafka", k, "password"))
        if _is_url_setting(k, v)
        else v
        for k, v in config.items()
    }


def is_secret(key: str) -> bool:
    """Whether the value of the setting ``key`` is a secret (:data:`SECRET_KEYS`).

    Examples
    --------
    >>> is_secret("sasl.oauthbearer.extensions"), is_secret("ssl.keystore.password"), is_secret("linger.ms")
    (True, True, False)
    """
    k = key.lower()
    return any(k == s or k.startswith(s + ".") or k.endswith("." + s) for s in SECRET_KEYS)


def holds_secret(key: str) -> bool:
    """Whether the value of the setting ``key`` is or may hold a secret: :func:`is_secret`, or a URL
    setting (whose password is a secret).

    Examples
    --------
    >>> holds_secret("sasl.oauthbearer.token.endpoint.url"), holds_secret("client.id")
    (True, False)
    """
    return is_secret(key) or key.lower() in URL_SETTINGS


def _is_url_setting(key: str, value: Any) -> bool:
    return key.lower() in URL_SETTINGS and isinstance(value, str)


def check_config(
    owner: str,
    config: Mapping[str, Any],
    reserved: Mapping[str, str],
    role: str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``config`` as a dict, after refusing what librdkafka would refuse or do wrong, naming ``owner``: a
    setting the connector sets itself (``reserved``), a name that is not text, and a pair of settings
    out of order for a client of ``role`` (``"consumer"``, ``"producer"``, ``"admin"``; None: only the
    rules that hold for every client), such as ``fetch.min.bytes`` above ``fetch.max.bytes``. ``defaults``: the settings
    the connector gives the client unless ``config`` sets them.

    Examples
    --------
    >>> check_config("KafkaSource", {"fetch.min.bytes": 10_000_000, "fetch.max.bytes": 1_000_000}, {}, "consumer")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSource(config=...): sets 'fetch.min.bytes': 10000000, 'fetch.max.bytes': 1000000: fetch.min.bytes exceeds fetch.max.bytes; no fetch can bring fetch.min.bytes, so every fetch waits fetch.wait.max.ms for data that cannot come. Fix: make fetch.min.bytes at most fetch.max.bytes, e.g. config: {fetch.min.bytes: 1, fetch.max.bytes: 52428800}
    """
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
    _check_order(owner, out, role, defaults or {})
    return out


_SASL_PROTOCOLS = ("SASL_SSL", "SASL_PLAINTEXT")
_SASL_EXAMPLE = "e.g. config: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.username: ..., sasl.password: ...}"


def _sasl_setting(key: str, value: Any) -> bool:
    """Whether ``key`` is a SASL setting given a value (an empty one, or a flag set false, is as if left out)."""
    k = key.lower()
    sasl = k.startswith("sasl.") or k == "enable.sasl.oauthbearer.unsecure.jwt"
    return sasl and value is not None and value is not False and value != ""


def check_sasl(owner: str, config: Mapping[str, Any]) -> None:
    """Refuse ``sasl.*`` settings in a client's settings whose ``security.protocol`` is not SASL_SSL or
    SASL_PLAINTEXT (or is left out: librdkafka's default is PLAINTEXT), naming ``owner``. Judged on the
    client's whole settings (``_client.check_settings``), as Event Hubs' connectors set the protocol
    themselves, and after librdkafka's verdict on the names (a misspelled ``sasl.*`` name is that).

    librdkafka uses its SASL settings only with a SASL protocol; otherwise it ignores them (it logs a
    warning the connectors' log keeps at INFO) and connects without authenticating: to a broker that
    requires SASL the run then fails at connect time with a vague error, and a broker that does not
    require it takes the client as anonymous. A ``${NAME}`` reference as the protocol is resolved only
    when connecting, so it is not judged here. The error names the settings, never their values.

    Examples
    --------
    >>> check_sasl("KafkaSink", {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"})
    >>> check_sasl("KafkaSink", {"sasl.mechanism": "PLAIN", "sasl.username": "app", "sasl.password": "pw"})
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSink(config=...): sets 'sasl.mechanism', 'sasl.username', 'sasl.password' but no security.protocol: librdkafka uses sasl.* settings only when security.protocol is SASL_SSL or SASL_PLAINTEXT and otherwise ignores them, so the client would connect in plaintext (PLAINTEXT, librdkafka's default) without authenticating. Fix: set security.protocol to SASL_SSL (SASL over TLS, what managed clusters expect) or SASL_PLAINTEXT (SASL without TLS), e.g. config: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.username: ..., sasl.password: ...}; or remove the sasl.* settings for a broker that takes clients without authentication
    """
    names = [k for k, v in config.items() if _sasl_setting(k, v)]
    if not names:
        return
    given = {k.lower(): v for k, v in config.items()}
    protocol = given.get("security.protocol")
    if is_reference(protocol) or str(protocol).strip().upper() in _SASL_PROTOCOLS:
        return
    # the names only: the values are credentials
    listed = ", ".join(repr(k) for k in names)
    if protocol is None:
        set_ = f"sets {listed} but no security.protocol"
        how = "in plaintext (PLAINTEXT, librdkafka's default)"
    else:
        set_ = f"sets {listed} with 'security.protocol': {protocol!r}"
        how = "over TLS" if str(protocol).strip().upper() == "SSL" else "with that protocol"
    raise ParameterError(
        owner,
        "config",
        f"{set_}: librdkafka uses sasl.* settings only when security.protocol is SASL_SSL or SASL_PLAINTEXT "
        f"and otherwise ignores them, so the client would connect {how} without authenticating",
        "set security.protocol to SASL_SSL (SASL over TLS, what managed clusters expect) or SASL_PLAINTEXT "
        f"(SASL without TLS), {_SASL_EXAMPLE}; or remove the sasl.* settings for a broker that takes "
        "clients without authentication",
    )


_ALIASES = {  # librdkafka's aliases of the settings the ordering rules read
    "queue.buffering.max.ms": "linger.ms",
    "delivery.timeout.ms": "message.timeout.ms",
    "max.partition.fetch.bytes": "fetch.message.max.bytes",
}

#: librdkafka's defaults (ms or bytes) of the settings the ordering rules read
_DEFAULTS = {
    "retry.backoff.ms": 100,
    "retry.backoff.max.ms": 1000,
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 10_000,
    "fetch.min.bytes": 1,
    "fetch.max.bytes": 52_428_800,
    "message.max.bytes": 1_000_000,
    "receive.message.max.bytes": 100_000_000,
    "queued.max.messages.kbytes": 65_536,
    "session.timeout.ms": 45_000,
    "max.poll.interval.ms": 300_000,
    "heartbeat.interval.ms": 3000,
    "fetch.wait.max.ms": 500,
    "socket.timeout.ms": 60_000,
    "linger.ms": 5,
    "message.timeout.ms": 300_000,
    "queue.buffering.max.kbytes": 1_048_576,
}


@dataclass(frozen=True)
class _Order:
    """``low + slack <= high * scale`` for a client of ``roles``; ``why`` says what breaks otherwise.
    ``given``: the rule holds only where that setting is given (librdkafka adjusts it to fit when it is
    not). ``scale``: high's unit in low's (1024 for kilobytes against bytes)."""

    low: str
    high: str
    roles: tuple[str, ...]
    why: str
    example: tuple[int, int]
    slack: int = 0
    given: str | None = None
    scale: int = 1


_REFUSED = "librdkafka refuses it when the client is made"
_ANY = ("consumer", "producer", "admin")
_ORDERS = (
    _Order(
        "retry.backoff.ms",
        "retry.backoff.max.ms",
        _ANY,
        f"{_REFUSED}, or waits the maximum every time",
        (100, 1000),
    ),
    _Order(
        "reconnect.backoff.ms",
        "reconnect.backoff.max.ms",
        _ANY,
        f"{_REFUSED}, or waits the maximum every time",
        (100, 10_000),
    ),
    _Order(
        "fetch.min.bytes",
        "fetch.max.bytes",
        ("consumer",),
        "no fetch can bring fetch.min.bytes, so every fetch waits fetch.wait.max.ms for data that cannot "
        "come",
        (1, 52_428_800),
    ),
    _Order(
        "message.max.bytes",
        "fetch.max.bytes",
        ("consumer",),
        _REFUSED,
        (1_000_000, 52_428_800),
        given="fetch.max.bytes",
    ),
    _Order(
        "fetch.max.bytes",
        "receive.message.max.bytes",
        ("consumer",),
        f"{_REFUSED}: a fetch response holds fetch.max.bytes and 512 bytes of framing",
        (52_428_800, 100_000_000),
        slack=512,
        given="receive.message.max.bytes",
    ),
    _Order(
        "session.timeout.ms",
        "max.poll.interval.ms",
        ("consumer",),
        _REFUSED,
        (6000, 300_000),
    ),
    _Order(
        "heartbeat.interval.ms",
        "session.timeout.ms",
        ("consumer",),
        "the group would drop the member as dead between two of its heartbeats",
        (1000, 6000),
        slack=1,
    ),
    _Order(
        "fetch.wait.max.ms",
        "socket.timeout.ms",
        ("consumer",),
        "a fetch the broker holds that long outlives its request's timeout (by 1000 ms at least), so the "
        "connection is dropped and the fetch retried",
        (100, 60_000),
        slack=1000,
    ),
    _Order(
        "message.max.bytes",
        "queue.buffering.max.kbytes",
        ("producer",),
        "a record of message.max.bytes (which librdkafka sends) could never enter the producer's queue: "
        "the sink would wait its flush_timeout on a full queue and fail",
        (1_000_000, 1024),
        scale=1024,
    ),
    _Order(
        "linger.ms",
        "message.timeout.ms",
        ("producer",),
        f"{_REFUSED}: a record would time out while it lingers",
        (5, 300_000),
        slack=1,
    ),
)


def _check_order(owner: str, out: Mapping[str, Any], role: str | None, defaults: Mapping[str, Any]) -> None:
    given = {_ALIASES.get(k, k): (k, v) for k, v in out.items()}  # canonical name -> (name written, value)

    def value(name: str) -> int | None:
        if name in given:
            return setting_int(given[name][1])
        if name in defaults:
            return setting_int(defaults[name])
        if name == "fetch.max.bytes":  # librdkafka's own adjustment of it, when it is not given
            low, queued = value("message.max.bytes"), value("queued.max.messages.kbytes")
            if low is None or queued is None:
                return None
            return max(min(_DEFAULTS[name], queued * 1024), low)
        return _DEFAULTS[name]

    for rule in _ORDERS:
        if rule.roles != _ANY if role is None else role not in rule.roles:
            continue
        if rule.low not in given and rule.high not in given:
            continue
        if rule.given is not None and rule.given not in given:
            continue
        lo, hi = value(rule.low), value(rule.high)
        if rule.high == "message.timeout.ms" and hi == 0:  # 0: no timeout
            continue
        if lo is None or hi is None or lo + rule.slack <= hi * rule.scale:
            continue
        shown = [given[n] for n in (rule.low, rule.high) if n in given]
        text = ", ".join(f"{k!r}: {v!r}" for k, v in shown)
        named = {n: given[n][0] if n in given else n for n in (rule.low, rule.high)}
        low, high = named[rule.low], named[rule.high]
        example_high = high
        if rule.scale != 1:
            high = f"{high} x {rule.scale}"
        unset = [n for n in (rule.low, rule.high) if n not in given]
        by_default = "".join(f" ({n} is {value(n)} by default)" for n in unset)
        relation = {0: f"{low} exceeds {high}", 1: f"{low} is not below {high}"}.get(
            rule.slack, f"{low} + {rule.slack} exceeds {high}"
        )
        at_most = {0: f"at most {high}", 1: f"below {high}"}.get(rule.slack, f"at most {high} - {rule.slack}")
        a, b = rule.example
        raise ParameterError(
            owner,
            "config",
            f"sets {text}: {relation}{by_default}; {rule.why}",
            f"make {low} {at_most}, e.g. config: {{{low}: {a}, {example_high}: {b}}}",
        )


def setting_int(value: Any) -> int | None:
    """A librdkafka integer setting given as a number or its text, else None (librdkafka reports it)."""
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


#: Names of the settings of librdkafka 2.x and of confluent-kafka's Python client, for "did you mean"
#: (whether a name exists is librdkafka's own answer: ``_client.check_settings``)
KNOWN_SETTINGS = [
    "acks",
    "allow.auto.create.topics",
    "api.version.fallback.ms",
    "api.version.request",
    "api.version.request.timeout.ms",
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "background_event_cb",
    "batch.num.messages",
    "batch.size",
    "bootstrap.servers",
    "broker.address.family",
    "broker.address.ttl",
    "broker.version.fallback",
    "builtin.features",
    "check.crcs",
    "client.dns.lookup",
    "client.id",
    "client.rack",
    "client.software.name",
    "client.software.version",
    "compression.codec",
    "compression.level",
    "compression.type",
    "connections.max.idle.ms",
    "consume.callback.max.messages",
    "coordinator.query.interval.ms",
    "debug",
    "default.topic.config",
    "delivery.report.only.error",
    "delivery.timeout.ms",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.gapless.guarantee",
    "enable.idempotence",
    "enable.metrics.push",
    "enable.partition.eof",
    "enable.random.seed",
    "enable.sasl.oauthbearer.unsecure.jwt",
    "enable.sparse.connections",
    "enable.ssl.certificate.verification",
    "error_cb",
    "fetch.error.backoff.ms",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.queue.backoff.ms",
    "fetch.wait.max.ms",
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.protocol.type",
    "group.remote.assignor",
    "heartbeat.interval.ms",
    "https.ca.location",
    "https.ca.pem",
    "isolation.level",
    "linger.ms",
    "log.connection.close",
    "log.queue",
    "log.thread.name",
    "log_level",
    "logger",
    "max.in.flight",
    "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "max.poll.records",
    "message.copy.max.bytes",
    "message.max.bytes",
    "message.send.max.retries",
    "message.timeout.ms",
    "metadata.broker.list",
    "metadata.max.age.ms",
    "metadata.recovery.rebootstrap.trigger.ms",
    "metadata.recovery.strategy",
    "metadata.request.timeout.ms",
    "oauth_cb",
    "offset.store.method",
    "on_commit",
    "on_delivery",
    "partition.assignment.strategy",
    "partitioner",
    "plugin.library.paths",
    "queue.buffering.backpressure.threshold",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "queuing.strategy",
    "receive.message.max.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.required.acks",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "sasl.jaas.config",
    "sasl.kerberos.keytab",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal",
    "sasl.kerberos.service.name",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.oauthbearer.assertion.algorithm",
    "sasl.oauthbearer.assertion.claim.aud",
    "sasl.oauthbearer.assertion.claim.exp.seconds",
    "sasl.oauthbearer.assertion.claim.iss",
    "sasl.oauthbearer.assertion.claim.jti.include",
    "sasl.oauthbearer.assertion.claim.nbf.seconds",
    "sasl.oauthbearer.assertion.claim.sub",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.jwt.template.file",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.client.credentials.client.id",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.grant.type",
    "sasl.oauthbearer.metadata.authentication.type",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.password",
    "sasl.username",
    "security.protocol",
    "session.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "socket.keepalive.enable",
    "socket.max.fails",
    "socket.nagle.disable",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "socket.timeout.ms",
    "ssl.ca.certificate.stores",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.cipher.suites",
    "ssl.crl.location",
    "ssl.curves.list",
    "ssl.endpoint.identification.algorithm",
    "ssl.engine.id",
    "ssl.engine.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.providers",
    "ssl.sigalgs.list",
    "statistics.interval.ms",
    "stats_cb",
    "sticky.partitioning.linger.ms",
    "throttle_cb",
    "topic.metadata.propagation.max.ms",
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.sparse",
    "transaction.timeout.ms",
    "transactional.id",
]

#: The Java client's names for settings librdkafka names otherwise, or does not have
_JAVA_NAMES = {
    "max.request.size": "write message.max.bytes, librdkafka's name for it",
    "buffer.memory": "write queue.buffering.max.kbytes (in kilobytes), librdkafka's name for it",
    "key.serializer": "drop it: the connector writes keys as bytes itself",
    "value.serializer": "drop it: the connector writes values as bytes itself",
    "key.deserializer": "drop it: the connector reads keys as bytes",
    "value.deserializer": "drop it: the connector reads values as bytes",
}


def setting_hint(name: str) -> str:
    """What an unknown setting's name was probably meant to be, as the start of a fix (or ``""``).

    Examples
    --------
    >>> setting_hint("fetch.max.wait.ms")
    "did you mean 'fetch.wait.max.ms'? "
    >>> setting_hint("buffer.memory")
    "buffer.memory is the Java client's name: write queue.buffering.max.kbytes (in kilobytes), librdkafka's name for it; "
    """
    if name in _JAVA_NAMES:
        return f"{name} is the Java client's name: {_JAVA_NAMES[name]}; "
    near = difflib.get_close_matches(name, KNOWN_SETTINGS, n=1, cutoff=0.75)
    if not near:
        near = [k for k in KNOWN_SETTINGS if sorted(k.split(".")) == sorted(name.split("."))][:1]
    return f"did you mean {near[0]!r}? " if near else ""


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


def _separator_name(text: str) -> str | None:
    """How ``text`` (one comma-separated entry) separates brokers otherwise than by commas, else None."""
    if ";" in text:
        return "a semicolon (';')"
    if any(c.isspace() for c in text):
        return "whitespace"
    return None


def check_bootstrap(owner: str, bootstrap_servers: str | Sequence[str]) -> str:
    """``bootstrap_servers`` as librdkafka's text (``host:port`` entries separated by commas), after
    refusing what no broker could answer: a scheme other than librdkafka's security prefixes, an entry
    that is not ``host:port`` (IPv6 hosts in brackets, ``[::1]:9092``), a port outside 1 to 65535, and
    brokers separated by ``;`` or whitespace, which librdkafka reads as one host name (the run then
    failed only after ``connect_timeout``, as "no broker answered").

    Examples
    --------
    >>> check_bootstrap("KafkaSource", ["127.0.0.1:9092", "[::1]:9093"])
    '127.0.0.1:9092,[::1]:9093'
    >>> check_bootstrap("KafkaSource", "127.0.0.1:9092;127.0.0.1:9093")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSource(bootstrap_servers=...): bootstrap server '127.0.0.1:9092;127.0.0.1:9093' holds a semicolon (';'); Kafka clients separate brokers with commas only, and would read all of it as one host name, which no broker answers. Fix: separate brokers with commas: '127.0.0.1:9092,127.0.0.1:9093'
    """
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
        part = part.strip()
        separator = _separator_name(part)
        if separator is not None:
            pieces = [p for p in re.split(r"[;\s]+", text) if p]
            commas = ",".join(p.strip(",") for p in pieces if p.strip(","))
            fix = "separate brokers with commas, e.g. '127.0.0.1:9092,127.0.0.1:9093'"
            if all(_is_host_port(p) for p in commas.split(",")):
                fix = f"separate brokers with commas: {commas!r}"
            raise ParameterError(
                owner,
                "bootstrap_servers",
                f"bootstrap server {part!r} holds {separator}; Kafka clients separate brokers with commas "
                "only, and would read all of it as one host name, which no broker answers",
                fix,
            )
        scheme, has_scheme, address = part.rpartition("://")
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


def check_bootstrap_protocol(owner: str, conf: Mapping[str, Any]) -> None:
    """Refuse a ``PROTOCOL://`` prefix of a broker in a client's settings (``bootstrap.servers``) that is
    not its ``security.protocol`` (left out: PLAINTEXT, librdkafka's default), naming ``owner``'s
    ``bootstrap_servers``. Judged on the client's whole settings, as Event Hubs' connectors set the
    protocol themselves.

    librdkafka takes such a prefix only when it names the client's protocol (any case); otherwise it logs
    ``protocol "SASL_SSL" does not match security.protocol setting`` and drops that broker, so the run
    would fail only after its connect timeout, as if no broker answered. A ``${NAME}`` reference as the
    protocol is resolved only when connecting, so it is not judged here.

    Examples
    --------
    >>> check_bootstrap_protocol("KafkaSink", {"bootstrap.servers": "sasl_ssl://h:9093", "security.protocol": "SASL_SSL"})
    >>> check_bootstrap_protocol("KafkaSink", {"bootstrap.servers": "SASL_SSL://h:9093"})
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSink(bootstrap_servers=...): broker 'SASL_SSL://h:9093' names the protocol SASL_SSL but security.protocol is not set (PLAINTEXT, librdkafka's default); librdkafka drops a broker whose prefix is not the client's protocol, so no broker would be tried. Fix: set security.protocol to SASL_SSL in config (config: {security.protocol: SASL_SSL}), or write the broker without its prefix: 'h:9093'
    """
    given = {str(k).lower(): v for k, v in conf.items()}
    protocol = given.get("security.protocol")
    servers = given.get("bootstrap.servers")
    if not isinstance(servers, str) or is_reference(protocol):
        return
    unset = protocol is None or str(protocol).strip() == ""
    client = "PLAINTEXT" if unset else str(protocol).strip().upper()
    for part in servers.split(","):
        part = part.strip()
        scheme, has_scheme, _ = part.rpartition("://")
        if not has_scheme or scheme.upper() == client:
            continue
        said = "is not set (PLAINTEXT, librdkafka's default)" if unset else f"is {protocol!r}"
        plain = ",".join(p.strip().rpartition("://")[2] for p in servers.split(","))
        raise ParameterError(
            owner,
            "bootstrap_servers",
            f"broker {part!r} names the protocol {scheme.upper()} but security.protocol {said}; librdkafka "
            "drops a broker whose prefix is not the client's protocol, so no broker would be tried",
            f"set security.protocol to {scheme.upper()} in config (config: {{security.protocol: "
            f"{scheme.upper()}}}), or write the broker without its prefix: {plain!r}",
        )


def _is_host_port(entry: str) -> bool:
    """Whether ``entry`` reads as one ``host:port`` (with an optional security prefix)."""
    host, sep, port = entry.rpartition("://")[2].rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


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
