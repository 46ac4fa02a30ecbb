"""The confluent-kafka client: imported lazily; its log lines and errors routed to Python logging."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import logging
import re
import secrets
import socket
import struct
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Literal

from streamlab._secrets import stand_in
from streamlab.errors import ParameterError

from ._config import check_bootstrap_protocol, check_sasl, holds_secret, setting_hint

log = logging.getLogger("streamlab.connectors.kafka")  # one logger for the whole connector


def import_confluent() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("Kafka connectors need confluent-kafka: pip install 'streamlab[kafka]'") from exc
    return confluent_kafka


def import_admin_types() -> Any:
    """``confluent_kafka.admin`` (its request types are not re-exported for type checkers)."""
    import_confluent()
    import confluent_kafka.admin as admin

    return admin


def new_client(factory: Any, conf: dict[str, Any], owner: str) -> Any:
    """``factory(conf)``: a confluent-kafka Consumer, Producer or AdminClient. A setting librdkafka refuses
    (an unknown name, a value of the wrong form) is a ``ParameterError`` naming the owner and the setting,
    when the client is created, instead of a bare ``KafkaException``."""
    ck = import_confluent()
    try:
        return factory(conf)
    except ck.KafkaException as exc:
        raise _refused(owner, exc) from exc


def _refused(owner: str, exc: Exception) -> ParameterError:
    """librdkafka's refusal of a configuration as a ``ParameterError``; an unknown setting's name with the
    known one it is closest to."""
    err = exc.args[0] if exc.args else exc
    text = err.str() if hasattr(err, "str") else str(err)
    fix = (
        "correct or remove that setting in config (librdkafka's settings: "
        "https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)"
    )
    unknown = re.search(r'No such configuration property: "(.*)"', text)
    if unknown is not None:
        fix = f"{setting_hint(unknown.group(1))}{fix}"
    elif "when `enable.idempotence` is true" in text:  # the sink's idempotence=True (its default)
        fix = f"pass idempotence=False to set it otherwise, or {fix}"
    return ParameterError(owner, "config", f"the Kafka client refused its configuration: {text}", fix)


class _Discard:
    """The ``logger`` of a client made only to check settings: its lines (no bootstrap servers ...) go
    nowhere."""

    def log(self, *args: Any) -> None:
        pass


#: Settings a client made only to check the others goes without: the brokers (it connects nowhere), the
#: security protocol (TLS and SASL would load certificates and start logins) and plugins (loaded when set).
_UNCHECKED = (
    "bootstrap.servers",
    "metadata.broker.list",
    "security.protocol",
    "plugin.library.paths",
    "logger",
)


#: How many distinct accepted configurations :func:`check_settings` remembers (least recently used out).
ACCEPTED_MAX = 256
_accepted: OrderedDict[Hashable, None] = OrderedDict()
_accepted_lock = threading.Lock()
# Secret values enter a cache key only as a keyed digest: the key lives in this process alone, so what
# the cache holds tells nothing of a password without it, and nothing outlives the process.
_DIGEST_KEY = secrets.token_bytes(32)


def _verdict_key(role: str, checked: Mapping[str, Any]) -> Hashable | None:
    """What librdkafka's verdict on ``checked`` depends on, frozen: the role and each setting's name,
    value type and value (a secret's value as a keyed digest); None when a value is unhashable (not
    cached). The type is kept because ``True == 1`` while librdkafka reads ``"true"`` and ``"1"``."""
    items: list[tuple[str, str, Any]] = []
    for name, value in checked.items():
        if holds_secret(name):
            text = str(value).encode("utf-8", "surrogatepass")
            value = hmac.new(_DIGEST_KEY, text, hashlib.sha256).digest()
        items.append((name, type(value).__qualname__, value))
    key = (role, tuple(items))
    try:
        hash(key)
    except TypeError:  # a list or a dict as a value: judged each time
        return None
    return key


def _remember(key: Hashable | None) -> None:
    if key is None:
        return
    with _accepted_lock:
        _accepted[key] = None
        _accepted.move_to_end(key)
        while len(_accepted) > ACCEPTED_MAX:
            _accepted.popitem(last=False)


def _known_good(key: Hashable | None) -> bool:
    if key is None:
        return False
    with _accepted_lock:
        if key not in _accepted:
            return False
        _accepted.move_to_end(key)
        return True


def check_settings(owner: str, role: Literal["consumer", "producer"], conf: Mapping[str, Any]) -> None:
    """Refuse settings the installed librdkafka refuses (an unknown or misspelled name, with the name it
    is closest to; a value of the wrong form or range; a combination it does not take) when a connector is
    made, not when it first connects; then settings it would ignore (``sasl.*`` without a SASL
    ``security.protocol``: :func:`~._config.check_sasl`) and a broker whose ``PROTOCOL://`` prefix is
    not the ``security.protocol`` (:func:`~._config.check_bootstrap_protocol`).

    The judge is librdkafka itself: a client of ``role`` is made from ``conf`` without its brokers,
    security protocol and plugins, so it connects nowhere, and is closed at once (about a millisecond). A
    value that is a ``${NAME}`` reference (resolved when connecting) has only its name checked, but a
    secret (text) counts as given, so that settings librdkafka requires together (OIDC's client secret)
    are judged. Without confluent-kafka installed nothing is checked here (nothing could connect either).

    A configuration librdkafka accepted is remembered (the last :data:`ACCEPTED_MAX` distinct ones, by
    role and settings, secrets as a keyed digest only): connectors made again with it build no client.
    A refusal is not remembered (librdkafka's message may quote the refused value); it raises again.

    Examples
    --------
    >>> check_settings("KafkaSource", "consumer", {"group.id": "g", "fetch.min.byte": 1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSource(config=...): the Kafka client refused its configuration: No such configuration property: "fetch.min.byte". Fix: did you mean 'fetch.min.bytes'? ...
    """
    _judge(owner, role, conf)
    check_sasl(owner, conf)
    check_bootstrap_protocol(owner, conf)


def _judge(owner: str, role: Literal["consumer", "producer"], conf: Mapping[str, Any]) -> None:
    """librdkafka's verdict on ``conf`` (see :func:`check_settings`)."""
    if importlib.util.find_spec("confluent_kafka") is None:
        return
    checked = {k: v for k, v in conf.items() if k not in _UNCHECKED}
    key = _verdict_key(role, checked)
    if _known_good(key):
        return
    ck = import_confluent()
    references = [k for k, v in checked.items() if isinstance(v, str) and "${" in v]
    for name in references:  # its value is not known yet: only its name (a Producer takes every name)
        value = checked.pop(name)
        try:
            ck.Producer({name: value, "logger": _Discard()})
        except ck.KafkaException as exc:
            if "No such configuration property" in str(exc):
                raise _refused(owner, exc) from None
        if holds_secret(name):
            # a secret is text, which librdkafka may require (OIDC's client secret): judged with a stand-in,
            # so a spec, which holds secrets as references, builds the connector it was saved from
            checked[name] = stand_in(value)
    checked["logger"] = _Discard()
    try:
        client = ck.Consumer(checked) if role == "consumer" else ck.Producer(checked)
    except ck.KafkaException as exc:
        raise _refused(owner, exc) from None
    if role == "consumer":
        client.close()
    _remember(key)


client_log = logging.getLogger("streamlab.connectors.kafka.librdkafka")
CLOSE_WAIT = 10.0  # seconds close() waits for the leave-group handshake at most
# Errors meaning "no broker answers": the client retries them by itself, many times a second.
CONNECTIVITY_ERRORS = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT", "_TIMED_OUT_QUEUE")
# The broker refused the client's credentials or SASL mechanism: retrying does not change that.
AUTHENTICATION_ERRORS = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "UNSUPPORTED_SASL_MECHANISM")
AUTHENTICATION_FIX = (
    "Check security.protocol, sasl.mechanism, sasl.username and sasl.password in config (for Event "
    "Hubs, the connection string), and that the brokers expect that protocol"
)


class ClientLog:
    """Where librdkafka's log lines go (the client's ``logger`` setting) instead of stderr.

    A client that cannot reach a broker repeats the same few lines many times a second; each kind of
    line (numbers ignored) is logged once at INFO (at most), repeats at DEBUG. Problems reach the user
    through ``error_cb`` and the connectors' own errors, which say what was tried and for how long.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def log(self, level: int, fmt: str, *args: Any) -> None:
        fac, text = (str(args[0]), str(args[-1])) if len(args) >= 2 else ("", fmt % args)
        key = (fac, re.sub(r"\d+", "#", text))
        if key in self._seen:
            level = logging.DEBUG
        else:
            if len(self._seen) < 1000:
                self._seen.add(key)
            level = min(level, logging.INFO)
        client_log.log(level, fmt, *args)


class ClientErrors:
    """``error_cb`` of a producer or admin client: each kind of error logged once, kept for inspection."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.errors: list[Any] = []
        self._seen: set[int] = set()

    def __call__(self, err: Any) -> None:
        self.errors.append(err)
        del self.errors[:-100]
        # "cannot connect" comes as several codes (transport, all brokers down, ...): one kind here
        kind = -1 if err.name() in CONNECTIVITY_ERRORS else err.code()
        level = logging.DEBUG if kind in self._seen else logging.WARNING
        self._seen.add(kind)
        log.log(level, "%s: Kafka reported %s (the client keeps retrying)", self.owner, err)


def _answers_plaintext(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers a plaintext Kafka ApiVersions (v0) request within ``timeout``."""
    request = struct.pack(">hhih", 18, 0, 0x5EED, -1)  # ApiVersions v0, correlation id, null client id
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(struct.pack(">i", len(request)) + request)
            head = b""
            while len(head) < 8:
                chunk = conn.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    size, correlation = struct.unpack(">ii", head)
    return bool(correlation == 0x5EED and size >= 4)


def plaintext_listener_hint(bootstrap_servers: str, conf: Mapping[str, Any], timeout: float = 3.0) -> str:
    """For a client set to TLS that got no answer: a sentence saying that a bootstrap broker answers
    plaintext Kafka (so the TLS handshake can never finish) and how to fix it; ``""`` otherwise.

    A plaintext listener takes the TLS ClientHello for the length of a request and waits for the rest,
    so librdkafka sees only silence until its own connection setup timeout (30 s). One plaintext
    ApiVersions request, bounded by ``timeout`` per broker, tells the two apart.

    Examples
    --------
    >>> plaintext_listener_hint("127.0.0.1:9092", {"security.protocol": "PLAINTEXT"})
    ''
    """
    protocol = str(conf.get("security.protocol", "PLAINTEXT")).upper()
    if "SSL" not in protocol:
        return ""
    for address in [a.strip() for a in str(bootstrap_servers).split(",") if a.strip()]:
        hostport = address.split("://", 1)[-1]
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            continue
        if _answers_plaintext(host.strip("[]"), int(port), timeout):
            plain = "SASL_PLAINTEXT" if protocol.startswith("SASL") else "PLAINTEXT"
            return (
                f" The broker at {hostport} answers Kafka requests without TLS, so the TLS handshake of "
                f"security.protocol={protocol!r} never completes: set security.protocol to {plain!r} for "
                "this listener, or point bootstrap_servers at the brokers' TLS listener."
            )
    return ""
