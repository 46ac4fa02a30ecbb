"""``KafkaSource``: the frozen description of a consumer-group read (its reader is in ``reader``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from streamlab._secrets import resolve_config
from streamlab.clock import Clock
from streamlab.errors import ParameterError, check_flag
from streamlab.io import Source

from .._params import positive_seconds, whole_number
from ._client import check_settings
from ._config import (
    check_bootstrap,
    check_config,
    config_references,
    parse_start,
    redact_config,
    topic_problem,
)
from .reader import KAFKA_COLUMNS, KafkaSourceReader

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
        defaults ``session.timeout.ms=6000, heartbeat.interval.ms=1000``. Checked when the source is
        made: pairs out of order (``fetch.min.bytes`` above ``fetch.max.bytes``, ...) and, where
        confluent-kafka is installed, whatever the installed librdkafka refuses (a misspelled name, with
        the name meant) are a ``ParameterError``, as are ``sasl.*`` settings without ``security.protocol``
        SASL_SSL or SASL_PLAINTEXT (librdkafka would ignore them and connect without authenticating);
        nothing connects until ``open()``. Secrets (``sasl.password``, ``ssl.key.password``, ...) are
        ``<redacted>`` in ``repr`` and ``${KAFKA_<SETTING>}`` references in ``spec()``.
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
        ``setBounded(OffsetsInitializer.latest())``). A member that owns no partition cannot finish: after
        ``2 * session.timeout.ms + heartbeat.interval.ms`` without one, every reader warns (naming the
        group and the likely causes), and a bounded one raises :class:`KafkaSourceError` at twice that
        time (10 s at least).
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
        stop_at_end = check_flag(name, "stop_at_end", stop_at_end)
        if not isinstance(topics, (str, Sequence)) or isinstance(topics, bytes):
            # a mapping would give its keys, a set its names in an order of its own
            kind = "mapping" if isinstance(topics, Mapping) else type(topics).__name__  # not "dict"
            raise ParameterError(
                name,
                "topics",
                f"expected one topic name or a list of names, got {kind} {topics!r}",
                "give a list of the names, e.g. topics: [events, clicks] (topics=['events', 'clicks'] in "
                "Python), or one name as text (topics='events')",
            )
        topic_list = [topics] if isinstance(topics, str) else list(topics)
        if not topic_list or not all(isinstance(t, str) and t for t in topic_list):
            numbers = [t for t in topic_list if isinstance(t, (int, float)) and not isinstance(t, bool)]
            hint = (
                f"; {numbers[0]!r} is a number, not a name: in YAML quote a topic whose name is all digits"
                f" (topics: ['{numbers[0]}'])"
                if numbers
                else ", e.g. topics: events or topics: [events, clicks] (topics=['events'] in Python)"
            )
            raise ParameterError(
                name,
                "topics",
                f"expected one topic name or a non-empty list of names, got {topics!r}",
                f"give one topic name or a non-empty list of names{hint}",
            )
        for t in topic_list:
            problem = topic_problem(t)
            if problem is not None:
                raise ParameterError(
                    name,
                    "topics",
                    f"topic {t!r} cannot exist: {problem}",
                    "write topic names of ASCII letters, digits, '.', '_' and '-' (or a pattern starting "
                    "with '^')",
                )
        if not isinstance(group_id, str) or not group_id:
            raise ParameterError(
                name,
                "group_id",
                f"a consumer group id (a non-empty text) is required, got {group_id!r}",
                "name the consumer group whose offsets this source commits, e.g. group_id: fraud-detector "
                "(group_id='fraud-detector' in Python)",
            )
        parse_start(start, name)
        if not whole_number(max_batch, 1):
            raise ParameterError(
                name,
                "max_batch",
                f"expected a positive integer, got {max_batch!r}",
                "write a number of records such as max_batch: 10000 (max_batch=10_000 in Python)",
            )
        if (
            isinstance(poll_timeout, bool)
            or not isinstance(poll_timeout, (int, float))
            or not 0 <= poll_timeout <= 5
        ):
            raise ParameterError(
                name,
                "poll_timeout",
                f"expected 0 to 5 seconds, got {poll_timeout!r} (poll() must not block)",
                "write a short wait such as poll_timeout: 0.05 (poll_timeout=0.05 in Python)",
            )
        if max_in_flight is not None and not whole_number(max_in_flight, 1):
            raise ParameterError(
                name,
                "max_in_flight",
                f"expected a positive integer or None, got {max_in_flight!r}",
                "write a number of records such as max_in_flight: 100000 (max_in_flight=100_000 in Python), "
                "or leave it out (None) for no limit",
            )
        set_ = object.__setattr__
        set_(self, "topics", tuple(topic_list))
        set_(self, "bootstrap_servers", check_bootstrap(name, bootstrap_servers))
        set_(self, "group_id", group_id)
        set_(self, "start", start)
        set_(self, "config", check_config(name, config or {}, _SOURCE_RESERVED, "consumer", _SOURCE_DEFAULTS))
        set_(self, "max_batch", max_batch)
        set_(self, "poll_timeout", float(poll_timeout))
        if stop_at_end and str((config or {}).get("enable.partition.eof", True)).lower() in ("false", "0"):
            raise ParameterError(
                name,
                "config",
                "sets 'enable.partition.eof' to false with stop_at_end=True, but a bounded read learns that "
                "an empty partition is done from its end event",
                "drop 'enable.partition.eof' from config (or set stop_at_end: false)",
            )
        set_(self, "max_in_flight", max_in_flight)
        set_(self, "stop_at_end", stop_at_end)
        for parameter, seconds, example in (
            ("connect_timeout", connect_timeout, 10),
            ("broker_timeout", broker_timeout, 30),
        ):
            if seconds is not None:
                seconds = positive_seconds(name, parameter, seconds, example, none="wait forever")
            set_(self, parameter, seconds)
        check_settings(name, "consumer", self._settings(self.config))

    def consumer_config(self) -> dict[str, Any]:
        """The librdkafka settings the reader uses (secrets included; do not print).

        Examples
        --------
        >>> cfg = KafkaSource("t", bootstrap_servers="h:1", group_id="g").consumer_config()
        >>> cfg["enable.auto.commit"], cfg["session.timeout.ms"]
        (False, 6000)
        """
        return self._settings(resolve_config(self.config, type(self).__name__))

    def _settings(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The consumer's settings with ``config`` as given (its references resolved, or not yet)."""
        start = parse_start(self.start)
        return {
            **_SOURCE_DEFAULTS,
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "latest" if start == "latest" else "earliest",
            # a bounded read learns that a partition has nothing more from the end-of-partition event
            **({"enable.partition.eof": True} if self.stop_at_end else {}),
            **config,
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
            "config": config_references(self.config),
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
