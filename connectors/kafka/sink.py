"""``KafkaSink`` and ``KafkaDeadLetterSink``: produce rows; ``flush()`` raises on failed delivery."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from streamlab._dead_letter import fit_message
from streamlab._secrets import resolve_config
from streamlab._serde_values import dump_json
from streamlab.clock import Clock
from streamlab.errors import ParameterError, check_flag
from streamlab.io import Sink, SinkWriter, Upstream, missing_columns_problem
from streamlab.serde import encode_keys, encode_rows, encode_values

from .._params import positive_seconds
from ._client import (
    AUTHENTICATION_ERRORS,
    AUTHENTICATION_FIX,
    ClientErrors,
    ClientLog,
    check_settings,
    import_confluent,
    new_client,
    plaintext_listener_hint,
)
from ._config import TOPIC_MAX, check_bootstrap, check_config, config_references, setting_int, topic_problem
from .errors import KafkaDeliveryError

log = logging.getLogger("streamlab.connectors.kafka")  # one logger for the whole connector
RECORD_OVERHEAD = 512
"""Bytes kept free of a record's ``message.max.bytes`` for its framing (beside its key and headers)."""
_CUT_FACTS = 256  # bytes kept for a cut record's raw_truncated, raw_bytes and raw_sha256
_LEAST_CUT = 1024  # bytes of a record a cut keeps at least
CUT_ROOM = RECORD_OVERHEAD + _CUT_FACTS + _LEAST_CUT
"""The least ``message.max.bytes`` in which the sink can cut a record too large to fit (without key or headers)."""
RAW_NULL_HEADER = ("raw_null", b"true")
"""The header of a dead letter whose record arrived without a value (a tombstone), not with an empty one."""


# ---------------------------------------------------------------------------------------------------
# Sinks

_SINK_RESERVED = {
    "bootstrap.servers": "pass bootstrap_servers=...",
    "compression.type": "pass compression=...",
    "enable.idempotence": "pass idempotence=...",
}
_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
_SINK_DEFAULTS = {"linger.ms": 5, "log.connection.close": False}


@dataclass(frozen=True, repr=False)
class KafkaSink(Sink):
    """Produce result rows to a Kafka topic.

    Parameters
    ----------
    topic
        Destination topic.
    bootstrap_servers
        ``host:port[,host:port]``.
    key
        Column whose values become record keys (same key → same partition), or None. A key is written
        as bytes: bytes as they are, text as UTF-8, a time as ISO-8601 UTC text, a float that is a whole
        number as that integer (``1.0`` as ``b'1'``, the key of the integer ``1``: pandas makes an integer
        column float64 once it meets a missing value), any other value as its JSON text; a missing value
        is no key. (The JSON value keeps ``1.0``.) This is every sink's key rule,
        :func:`streamlab.serde.encode_keys`.
    value
        ``"json"`` to serialize each row as a JSON object, or the name of a bytes/str column to send
        as is.
    headers
        Columns sent as record headers: a list of column names, or a mapping header name → column.
        A value is written as a key is (:func:`streamlab.serde.encode_keys`): text as UTF-8, a float that
        is a whole number as that integer (``7.0`` as ``b'7'``, as in a batch where the column is int64),
        a time as ISO-8601 UTC text, any other value as its JSON text; a missing value is a header
        without a value.
    compression
        ``"zstd"``, ``"lz4"``, ``"snappy"``, ``"gzip"`` or ``"none"``.
    idempotence
        Enable the idempotent producer (no duplicates from retries; implies ``acks=all``).
    config
        Extra librdkafka producer settings, checked when the sink is made as ``KafkaSource`` checks its
        own (``linger.ms`` not below ``message.timeout.ms``, a misspelled name, ...).
    flush_timeout
        Seconds ``flush()`` waits for outstanding deliveries before failing.

    Examples
    --------
    >>> sink = KafkaSink("alerts", bootstrap_servers="127.0.0.1:9092", key="user_id")
    >>> sink
    KafkaSink(topic='alerts', bootstrap_servers='127.0.0.1:9092', key='user_id', value='json')
    >>> KafkaSink("alerts", bootstrap_servers="127.0.0.1:9092", compression="brotli")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSink(compression=...): expected one of none, gzip, snappy, lz4, zstd, got 'brotli'. Fix: write one of none, gzip, snappy, lz4, zstd, e.g. compression: zstd (compression='zstd' in Python)
    """

    topic: str
    bootstrap_servers: str
    key: str | None = None
    value: str = "json"
    headers: Mapping[str, str] = field(default_factory=dict)
    compression: str = "zstd"
    idempotence: bool = True
    config: Mapping[str, Any] = field(default_factory=dict)
    flush_timeout: float = 30.0

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | Sequence[str],
        key: str | None = None,
        value: str = "json",
        headers: Sequence[str] | Mapping[str, str] | None = None,
        compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd",
        idempotence: bool = True,
        config: Mapping[str, Any] | None = None,
        flush_timeout: float = 30.0,
    ) -> None:
        name = type(self).__name__
        idempotence = check_flag(name, "idempotence", idempotence)
        if not isinstance(topic, str) or not topic:
            raise ParameterError(
                name,
                "topic",
                f"a topic name (a non-empty text) is required, got {topic!r}",
                f"write the topic to write to, e.g. topic: events ({name}('events', ...) in Python)",
            )
        problem = topic_problem(topic)
        if problem is not None or topic.startswith("^"):
            raise ParameterError(
                name,
                "topic",
                f"the broker would refuse every record to {topic!r}: "
                f"{problem or 'a pattern (^...) names no topic to write to'}",
                f"write one topic name of ASCII letters, digits, '.', '_' and '-' (at most {TOPIC_MAX})",
            )
        if compression not in _COMPRESSIONS:
            raise ParameterError(
                name,
                "compression",
                f"expected one of {', '.join(_COMPRESSIONS)}, got {compression!r}",
                f"write one of {', '.join(_COMPRESSIONS)}, e.g. compression: zstd (compression='zstd' in Python)",
            )
        if not isinstance(value, str) or not value:
            raise ParameterError(
                name,
                "value",
                f"expected 'json' or a column name, got {value!r}",
                "use 'json' (the whole row as JSON) or the name of a bytes/str column",
            )
        if key is not None and (not isinstance(key, str) or not key):
            raise ParameterError(
                name,
                "key",
                f"expected a column name or None, got {key!r}",
                "name the column whose values become record keys, or leave key out (None) for no key",
            )
        if headers is None:
            header_map: dict[str, str] = {}
        elif isinstance(headers, Mapping):
            header_map = {str(h): str(c) for h, c in headers.items()}
        elif isinstance(headers, str):
            raise ParameterError(
                name,
                "headers",
                f"expected a list of columns or a mapping header -> column, got the text {headers!r}",
                f"pass a list, e.g. headers: [{headers}] (headers=[{headers!r}] in Python)",
            )
        else:
            header_map = {str(c): str(c) for c in headers}
        flush_timeout = positive_seconds(name, "flush_timeout", flush_timeout, 30)
        set_ = object.__setattr__
        set_(self, "topic", topic)
        set_(self, "bootstrap_servers", check_bootstrap(name, bootstrap_servers))
        set_(self, "key", key)
        set_(self, "value", value)
        set_(self, "headers", header_map)
        set_(self, "compression", compression)
        set_(self, "idempotence", bool(idempotence))
        set_(self, "config", check_config(name, config or {}, _SINK_RESERVED, "producer", _SINK_DEFAULTS))
        given = self.config.get("message.max.bytes")
        if given is not None and (max_bytes := setting_int(given)) is not None and max_bytes < CUT_ROOM:
            raise ParameterError(
                name,
                "config",
                f"sets 'message.max.bytes': {given!r}: below {CUT_ROOM:,} bytes, a record over it cannot be "
                f"cut to fit (the sink keeps {RECORD_OVERHEAD} bytes for framing and {_CUT_FACTS} for "
                f"raw_truncated, raw_bytes and raw_sha256, and writes at least {_LEAST_CUT:,} bytes of the "
                "record), so the first such record would fail the run",
                f"make message.max.bytes at least {CUT_ROOM}, e.g. config: {{message.max.bytes: 1000000}} "
                "(librdkafka's default)",
            )
        set_(self, "flush_timeout", float(flush_timeout))
        check_settings(name, "producer", self._settings(self.config))

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The ``key``, ``value`` and ``headers`` columns the stream lacks, as ``(problem, fix)``, else None.

        Examples
        --------
        >>> sink = KafkaSink("t", bootstrap_servers="h:1", key="user", headers=["kind"])
        >>> sink.columns_problem(["user", "kind"], Upstream()) is None
        True
        >>> sink.columns_problem(["user_id", "kind"], Upstream())[0]
        "KafkaSink(key='user') names column(s) ['user'] that the stream does not have (its columns: ['user_id', 'kind']); the first write would fail"
        """
        return (
            missing_columns_problem(
                f"{type(self).__name__}(key={self.key!r})",
                [self.key] if self.key is not None else [],
                columns,
                "name the column whose values become record keys, or key=None",
            )
            or missing_columns_problem(
                f"{type(self).__name__}(value={self.value!r})",
                [self.value] if self.value != "json" else [],
                columns,
                "use value='json' for the whole row, or name a bytes/str column",
            )
            or missing_columns_problem(
                f"{type(self).__name__}(headers={dict(self.headers)!r})",
                self.headers.values(),
                columns,
                "name columns of the stream in headers=[...] (or {header: column})",
            )
        )

    def fit(self, value: bytes, headers: Any, limit: int) -> tuple[bytes, Any]:
        """A record's value (and headers) cut to ``limit`` bytes: a JSON row keeps its reason and step and the
        start of its ``raw`` text (a dead letter's; another row's JSON), with ``raw_truncated``, ``raw_bytes``
        and ``raw_sha256`` of the whole text (``streamlab._dead_letter.fit_message``). A value that is not a
        JSON row is cut as bytes, the three facts in headers.

        Examples
        --------
        >>> sink = KafkaSink("t", bootstrap_servers="h:1")
        >>> value, _ = sink.fit(b'{"raw":"' + b"x" * 2000 + b'","reason":"bad"}', None, 1024)
        >>> len(value) <= 1024, json.loads(value)["raw_bytes"]
        (True, 2000)
        """
        if self.value == "json":
            try:
                row = json.loads(value)
            except ValueError:
                row = None
            if isinstance(row, dict):
                return fit_message(row, limit, dump_json)[0].encode("utf-8"), headers
        return value[: max(limit - 128, 0)], [*(headers or []), *_facts("raw", value)]

    def producer_config(self) -> dict[str, Any]:
        """The librdkafka settings the writer uses (secrets included; do not print).

        Examples
        --------
        >>> KafkaSink("t", bootstrap_servers="h:1").producer_config()["compression.type"]
        'zstd'
        """
        return self._settings(resolve_config(self.config, type(self).__name__))

    def _settings(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The producer's settings with ``config`` as given (its references resolved, or not yet)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "compression.type": self.compression,
            "enable.idempotence": self.idempotence,
            **_SINK_DEFAULTS,
        }
        if self.idempotence:
            conf["acks"] = "all"
        conf.update(config)
        return conf

    def open(self, clock: Clock | None = None) -> KafkaSinkWriter:
        """Create the producer."""
        return KafkaSinkWriter(self)

    def encode(self, batch: pd.DataFrame) -> tuple[list[bytes | None], list[bytes | None], list[Any]]:
        """Turn a batch into per-record ``(values, keys, headers)`` lists.

        Examples
        --------
        >>> sink = KafkaSink("t", bootstrap_servers="h:1", key="k", headers=["h"])
        >>> values, keys, headers = sink.encode(pd.DataFrame({"k": ["a"], "h": ["x"], "n": [1]}))
        >>> values, keys, headers
        ([b'{"k":"a","h":"x","n":1}'], [b'a'], [[('h', b'x')]])
        """
        name = type(self).__name__
        needed = ([self.key] if self.key else []) + list(self.headers.values())
        if self.value != "json":
            needed.append(self.value)
        missing = [c for c in needed if c not in batch.columns]
        if missing:
            raise KeyError(
                f"{name}(topic={self.topic!r}): batch has no column(s) {missing}; "
                f"it has {list(batch.columns)}"
            )
        n = len(batch)
        values: list[bytes | None] = (
            list[bytes | None](encode_rows(batch))
            if self.value == "json"
            else encode_values(batch[self.value])
        )
        keys: list[bytes | None] = encode_keys(batch[self.key]) if self.key else [None] * n
        if self.headers:
            cols = {h: encode_keys(batch[c]) for h, c in self.headers.items()}
            headers: list[Any] = [list(zip(cols, vals)) for vals in zip(*cols.values())]
        else:
            headers = [None] * n
        return values, keys, headers

    def spec(self) -> dict[str, Any]:
        """YAML-ready description; secrets in ``config`` are written as ``${KAFKA_...}`` references."""
        return {
            "kind": "kafka",
            "topic": self.topic,
            "bootstrap_servers": self.bootstrap_servers,
            "key": self.key,
            "value": self.value,
            "headers": dict(self.headers),
            "compression": self.compression,
            "idempotence": self.idempotence,
            "config": config_references(self.config),
            "flush_timeout": self.flush_timeout,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(topic={self.topic!r}, bootstrap_servers={self.bootstrap_servers!r}, "
            f"key={self.key!r}, value={self.value!r})"
        )


class KafkaDeadLetterSink(KafkaSink):
    """Write a dead-letter batch to a DLQ topic: ``raw`` as the record value, other columns as headers.

    A dead-letter batch has the columns ``raw`` (the record as received), ``reason`` and ``step_id``
    plus whatever else the step adds; every column except ``raw`` becomes a header of the same name, so
    ``reason`` travels with the record and consumers of the DLQ can filter on it without parsing.

    A dead letter keeps what arrived. A record that arrived without a value (a Kafka tombstone: ``raw``
    is None) is written without one (a null value) and with the header ``raw_null: true``; an empty
    record (``raw`` is ``b""``) is written as an empty value, without that header. The parse step's
    reasons tell them apart too (``null value (tombstone)`` against ``empty record``), as does the value
    (:class:`KafkaSource` reads None against ``b""``) where nothing on the way reads a null value as
    empty or as a deletion (Kafka Streams and ksqlDB tables, Kafka Connect sinks, many command-line
    consumers). A missing value of another column is likewise a header with a null value, not an empty
    one.

    A dead letter's key is its record's key (the ``key`` column, as Kafka Connect's dead-letter queue
    keeps it), else the record's position ``topic/partition/offset`` (those columns of a
    :class:`KafkaSource`'s records), else none: a log-compacted DLQ topic (``cleanup.policy=compact``)
    refuses a record without a key, so dead letters of Kafka records are always keyed. A compacted DLQ
    keeps the last dead letter per key. Header values are written as :class:`KafkaSink`'s (an ``offset`` of ``3.0``, in a batch where
    another dead letter has none, is ``b'3'``).

    Parameters
    ----------
    topic
        DLQ topic.
    bootstrap_servers
        ``host:port``.
    compression
        Producer compression.
    idempotence
        Idempotent producer.
    config
        Extra producer settings.

    Examples
    --------
    >>> dlq = KafkaDeadLetterSink("events.dlq", bootstrap_servers="127.0.0.1:9092")
    >>> values, keys, headers = dlq.encode(
    ...     pd.DataFrame({"raw": [b"{oops"], "reason": ["invalid JSON"], "step_id": ["parse"]})
    ... )
    >>> values, headers
    ([b'{oops'], [[('reason', b'invalid JSON'), ('step_id', b'parse')]])
    >>> dlq.encode(pd.DataFrame({"raw": [b"{", b"["], "key": [b"k1", None], "topic": ["events"] * 2,
    ...                          "partition": [0, 0], "offset": [41, 42]}))[1]
    [b'k1', b'events/0/42']
    >>> reasons = ["null value (tombstone)", "empty record"]
    >>> values, _, headers = dlq.encode(pd.DataFrame({"raw": [None, b""], "reason": reasons}))
    >>> values, headers
    ([None, b''], [[('reason', b'null value (tombstone)'), ('raw_null', b'true')], [('reason', b'empty record')]])
    """

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | Sequence[str],
        compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd",
        idempotence: bool = True,
        config: Mapping[str, Any] | None = None,
        flush_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            topic,
            bootstrap_servers=bootstrap_servers,
            value="raw",
            compression=compression,
            idempotence=idempotence,
            config=config,
            flush_timeout=flush_timeout,
        )

    def encode(self, batch: pd.DataFrame) -> tuple[list[bytes | None], list[bytes | None], list[Any]]:
        """``raw`` → value; every other column → a header of the same name."""
        if "raw" not in batch.columns:
            raise KeyError(
                f"KafkaDeadLetterSink(topic={self.topic!r}): a dead-letter batch needs a 'raw' column; "
                f"it has {list(batch.columns)}"
            )
        values = encode_values(batch["raw"])
        others = [c for c in batch.columns if c != "raw"]
        cols = {str(c): encode_keys(batch[c]) for c in others}
        headers: list[Any] = (
            [list(zip(cols, vals)) for vals in zip(*cols.values())] if cols else [None] * len(batch)
        )
        for i, value in enumerate(values):
            if value is None:  # arrived without a value: say so, as not every reader keeps a null value
                headers[i] = [*(headers[i] or []), RAW_NULL_HEADER]
        return values, _dead_letter_keys(cols, len(batch)), headers

    def spec(self) -> dict[str, Any]:
        """YAML-ready description; secrets in ``config`` are written as ``${KAFKA_...}`` references."""
        return {
            "kind": "kafka_dead_letter",
            "topic": self.topic,
            "bootstrap_servers": self.bootstrap_servers,
            "compression": self.compression,
            "idempotence": self.idempotence,
            "config": config_references(self.config),
            "flush_timeout": self.flush_timeout,
        }

    def __repr__(self) -> str:
        return f"KafkaDeadLetterSink(topic={self.topic!r}, bootstrap_servers={self.bootstrap_servers!r})"


def _dead_letter_keys(cols: Mapping[str, list[bytes | None]], n: int) -> list[bytes | None]:
    """Each dead letter's key: its record's ``key``, else its ``topic/partition/offset``, else None."""
    own = cols.get("key", [None] * n)
    where = [cols.get(c) for c in ("topic", "partition", "offset")]
    keys: list[bytes | None] = []
    for i in range(n):
        key = own[i]
        if key is None:
            at = [w[i] for w in where if w is not None]
            if len(at) == 3 and all(a is not None for a in at):
                key = b"/".join(a for a in at if a is not None)
        keys.append(key)
    return keys


class KafkaSinkWriter(SinkWriter):
    """An open producer of a :class:`KafkaSink`.

    ``write_batch`` hands records to the producer without waiting; ``flush()`` waits for every
    delivery report and raises :class:`KafkaDeliveryError` if any record failed. Once a delivery has
    failed the writer stays failed (every later ``flush`` raises), so the runtime never commits a
    source position past lost records; reopen the sink after restarting from the last commit.

    Examples
    --------
    >>> writer = KafkaSink("t", bootstrap_servers="127.0.0.1:9092").open()
    >>> writer.write_batch(pd.DataFrame({"n": [1, 2]}))  # doctest: +SKIP
    >>> writer.close()  # nothing queued, so nothing to wait for
    >>> writer.delivered
    0
    """

    def __init__(self, sink: KafkaSink) -> None:
        ck = import_confluent()
        self._ck = ck
        self.sink = sink
        self._errors = ClientErrors(repr(sink))
        self._producer = new_client(
            ck.Producer,
            {**sink.producer_config(), "logger": ClientLog(), "error_cb": self._errors},
            repr(sink),
        )
        self._stalled = False  # a flush timed out: close() must not wait on the cluster again
        self._max_bytes = int(sink.producer_config().get("message.max.bytes", 1_000_000))
        self.delivered = 0
        self.failures: list[str] = []
        self._failed_total = 0
        self._failed_codes: set[str] = set()  # error names of failed deliveries, for the fix to suggest
        self._failure_raised = False  # flush() raised the failures: close() does not raise them again
        self._closed = False

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self._failed_total += 1
            self._failed_codes.add(err.name())
            if len(self.failures) < 100:
                self.failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Queue every row of ``batch`` for delivery."""
        if self._closed:
            raise RuntimeError(f"{self.sink!r}: writer is closed")
        if batch.empty:
            return
        values, keys, headers = self.sink.encode(batch)
        produce = self._producer.produce
        topic, cb = self.sink.topic, self._on_delivery
        room = self._max_bytes - RECORD_OVERHEAD
        for v, k, h in zip(values, keys, headers):
            if len(v or b"") + _size(k, h) > room:
                v, k, h = self._fit(v, k, h)
            full_since: float | None = None
            while True:
                try:
                    produce(topic, value=v, key=k, headers=h, on_delivery=cb)
                    break
                except BufferError:
                    # Local queue full: serve delivery reports until there is room, for a bounded time.
                    now = time.monotonic()
                    full_since = now if full_since is None else full_since
                    if now - full_since > self.sink.flush_timeout:
                        self._stalled = True
                        raise KafkaDeliveryError(
                            f"{self.sink!r}: the producer's queue stayed full for {self.sink.flush_timeout:g} s "
                            f"(flush_timeout): the Kafka cluster at {self.sink.bootstrap_servers} takes no "
                            f"records{self._last_error()}{self._tls_hint()}"
                        ) from None
                    self._producer.poll(0.05)
                except self._ck.KafkaException as exc:
                    self._failed_total += 1
                    self._failed_codes.add(exc.args[0].name())
                    if len(self.failures) < 100:
                        self.failures.append(f"{topic}: {exc.args[0]}")
                    break
        self._producer.poll(0)

    def _fit(
        self, value: bytes | None, key: bytes | None, headers: Any
    ) -> tuple[bytes | None, bytes | None, Any]:
        """A record over the producer's ``message.max.bytes`` (refused on every retry) cut to fit, saying so.

        The value is cut first (see :meth:`KafkaSink.fit`). When the key and headers alone leave it less
        than 1,024 bytes, they are cut too (:func:`cut_key_and_headers`), each noted in headers.
        """
        room = self._max_bytes - RECORD_OVERHEAD
        size = len(value or b"")
        cut_key, cut_headers = cut_key_and_headers(key, headers, room - min(size, _LEAST_CUT + _CUT_FACTS))
        if (cut_key, cut_headers) != (key, headers):
            log.error(
                "%r: a record's key and headers (%d bytes) leave no room in message.max.bytes (%d): key "
                "and headers written cut (<name>_truncated, <name>_bytes, <name>_sha256)",
                self.sink,
                _size(key, headers),
                self._max_bytes,
            )
        if value is None or size + _size(cut_key, cut_headers) <= room:
            return value, cut_key, cut_headers
        limit = max(room - _size(cut_key, cut_headers) - _CUT_FACTS, _LEAST_CUT)
        fitted, cut_headers = self.sink.fit(value, cut_headers, limit)
        log.error(
            "%r: a record of %d bytes is over message.max.bytes (%d): written cut to %d bytes "
            "(raw_truncated, raw_bytes, raw_sha256)",
            self.sink,
            size,
            self._max_bytes,
            len(fitted),
        )
        return fitted, cut_key, cut_headers

    def _tls_hint(self) -> str:
        """Why nothing arrives when the producer speaks TLS to a plaintext listener (else "")."""
        return plaintext_listener_hint(self.sink.bootstrap_servers, self.sink.producer_config())

    def _last_error(self) -> str:
        return f"; last client error: {self._errors.errors[-1].str()}" if self._errors.errors else ""

    def flush(self) -> None:
        """Wait for all deliveries; raise :class:`KafkaDeliveryError` if any failed or timed out."""
        if self._producer is None:
            raise KafkaDeliveryError(f"{self.sink!r}: the writer is closed")
        left = self._producer.flush(self.sink.flush_timeout)
        refused = next((e for e in self._errors.errors if e.name() in AUTHENTICATION_ERRORS), None)
        if left and refused is not None:
            self._stalled = True
            raise KafkaDeliveryError(
                f"{self.sink!r}: {left} record(s) undelivered after {self.sink.flush_timeout:g} s "
                f"(flush_timeout): the Kafka cluster at {self.sink.bootstrap_servers} refused the "
                f"producer's authentication: {refused.str()}. {AUTHENTICATION_FIX}"
            )
        if left:
            self._stalled = True
            raise KafkaDeliveryError(
                f"{self.sink!r}: {left} record(s) still undelivered after {self.sink.flush_timeout:g} s "
                f"(flush_timeout): is the Kafka cluster at {self.sink.bootstrap_servers} running and "
                f"reachable?{self._last_error()}{self._tls_hint()}"
            )
        if self._failed_total:
            self._failure_raised = True
            raise KafkaDeliveryError(
                f"{self.sink!r}: {self._failed_total} record(s) failed delivery, e.g. {self.failures[:3]}"
                f"{self._fix()}"
            )

    def _fix(self) -> str:
        """What to do about the failed deliveries, for the errors that have one fix."""
        topic, codes = self.sink.topic, self._failed_codes
        if codes & {"_UNKNOWN_TOPIC", "UNKNOWN_TOPIC_OR_PART"}:
            return (
                f". Topic {topic!r} does not exist and the cluster does not create topics on first "
                "write: create it (streamlab.connectors.kafka.create_topic) or fix the name"
            )
        if "TOPIC_AUTHORIZATION_FAILED" in codes:
            return (
                f". The cluster does not let these credentials write to {topic!r}: grant WRITE on the "
                "topic, or check the sasl.* settings in config"
            )
        if "TOPIC_EXCEPTION" in codes:
            return f". The cluster refuses {topic!r} as a topic name: pick another name"
        if "MSG_SIZE_TOO_LARGE" in codes:
            return (
                ". A record is over the topic's max.message.bytes: raise it on the topic, or set "
                "message.max.bytes in config to that limit so the sink cuts records to fit"
            )
        return ""

    def close(self) -> None:
        """Flush (raising on failures) and release the producer, within ``flush_timeout``.

        After a flush timed out the cluster is not waited on again: undelivered records are dropped
        (the runtime did not commit past them, so they are produced again on restart). Delivery
        failures a ``flush()`` raised already are not raised again.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._stalled or self._failure_raised:
                # Undelivered records are dropped: the runtime did not commit past them. Failures flush()
                # raised already are not raised again (the run failed on them; once is enough).
                self._producer.purge()
            else:
                self.flush()
        finally:
            self._producer = None

    def __repr__(self) -> str:
        return f"KafkaSinkWriter({self.sink!r}, delivered={self.delivered}, failed={self._failed_total})"


def _size(key: bytes | None, headers: Any) -> int:
    """Bytes of a record's key and headers."""
    return len(key or b"") + sum(len(n) + len(v or b"") for n, v in headers or [])


def _facts(name: str, whole: bytes) -> list[tuple[str, bytes]]:
    """The headers that say a part of a record (its key, a header) was cut: as ``raw_*`` for a value."""
    return [
        (f"{name}_truncated", b"true"),
        (f"{name}_bytes", str(len(whole)).encode()),
        (f"{name}_sha256", hashlib.sha256(whole).hexdigest().encode()),
    ]


def cut_key_and_headers(key: bytes | None, headers: Any, room: int) -> tuple[bytes | None, Any]:
    """A record's key and header values cut so that they, with the headers saying what was cut, take at
    most ``room`` bytes; unchanged when they fit.

    The bytes go to the parts in turn from the smallest, each taking at most an equal share of what is
    left (so a small key stays whole beside one huge header). Each cut part keeps its first bytes and
    is named in ``<name>_truncated``, ``<name>_bytes`` and ``<name>_sha256`` headers (``key_*`` for the
    key): the same cut of the same key always goes to the same partition.

    Examples
    --------
    >>> key, headers = cut_key_and_headers(b"k" * 5000, [("kind", b"click")], 2000)
    >>> len(key), headers[0], [n for n, _ in headers[1:]]
    (1887, ('kind', b'click'), ['key_truncated', 'key_bytes', 'key_sha256'])
    >>> cut_key_and_headers(b"user-1", [("kind", b"click")], 2000)
    (b'user-1', [('kind', b'click')])
    """
    if _size(key, headers) <= room:
        return key, headers
    parts: list[tuple[str, bytes]] = [("key", key or b""), *((n, v or b"") for n, v in headers or [])]
    names = sum(len(n) for n, _ in parts[1:])
    cut: set[int] = set()
    while True:  # the facts of the parts cut take room too: share again until the cut parts stay the same
        left = max(room - names - sum(_size(None, _facts(*parts[i])) for i in cut), 0)
        keep = [0] * len(parts)
        for turn, i in enumerate(sorted(range(len(parts)), key=lambda i: len(parts[i][1]))):
            keep[i] = min(len(parts[i][1]), left // (len(parts) - turn))
            left -= keep[i]
        now = {i for i, (_, whole) in enumerate(parts) if keep[i] < len(whole)}
        if now <= cut:
            break
        cut |= now
    noted: list[tuple[str, bytes]] = []
    for (name, whole), n in zip(parts, keep):
        if n < len(whole):
            noted.extend(_facts(name, whole))
    cut_key = key if key is None or keep[0] == len(key) else key[: keep[0]]
    cut_headers = [
        (n, v if v is None or k == len(v) else v[:k]) for (n, v), k in zip(headers or [], keep[1:])
    ]
    return cut_key, [*cut_headers, *noted] if (headers or noted) else headers
