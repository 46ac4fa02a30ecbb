"""``KafkaSourceReader``: an open consumer of a ``KafkaSource`` (rebalances, commits, backpressure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._client import (
    AUTHENTICATION_ERRORS,
    AUTHENTICATION_FIX,
    CLOSE_WAIT,
    CONNECTIVITY_ERRORS,
    ClientLog,
    import_confluent,
    new_client,
)
from ._config import parse_start
from .errors import KafkaCommitError, KafkaSourceError, KafkaUnreachableError

if TYPE_CHECKING:
    from .source import KafkaSource

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from streamlab._time import NAT_NS, ns_to_timestamp
from streamlab.io import SourceReader

log = logging.getLogger("streamlab.connectors.kafka")  # one logger for the whole connector
_MS_MAX = np.iinfo(np.int64).max // 1_000_000  # the largest |milliseconds| whose nanoseconds fit int64


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

# Errors meaning "this member no longer owns the partitions": the new owner re-reads from the last
# committed offset, so the data is delivered again (at least once), not lost.
_OWNERSHIP_ERRORS = ("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_ASSIGNMENT_LOST")


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
    >>> from streamlab.connectors.kafka import KafkaSource
    >>> src = KafkaSource("events", bootstrap_servers="127.0.0.1:9092", group_id="g", max_in_flight=10_000)
    >>> reader = src.open()  # doctest: +SKIP
    >>> batch = reader.poll(1000)  # doctest: +SKIP
    >>> reader.commit(reader.snapshot())  # doctest: +SKIP
    >>> reader.close()  # doctest: +SKIP
    >>> src.consumer_config()["enable.auto.offset.store"]
    False
    """

    def __init__(self, source: KafkaSource, resume: Any = None) -> None:
        ck = import_confluent()
        self._ck = ck
        self.source = source
        self._start = parse_start(source.start)
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
        # What lag() reads: each assigned partition's (cached high watermark, position), noted by the
        # polling thread after consume(), or by lag() itself while no thread is inside consume(); lag()
        # runs on other threads (the run's metrics, under the run's lock): see _note_lag
        self._lag_inputs: dict[tuple[str, int], tuple[int, int | None]] = {}
        self._lag_noted = -1.0
        self._user_paused: set[tuple[str, int]] = set()
        # stop_at_end: where each partition's bounded read stops, and the offset of its last end event
        self._end: Position = {}
        self._eof: Position = {}
        self._just_revoked: dict[tuple[str, int], tuple[int, int]] = {}
        # Every partition of the topics (learned at each assignment), and until when (monotonic seconds)
        # those this member does not own still hold the windows' watermark: see partitions().
        self._topic_partitions: set[tuple[str, int]] = set()
        self._unowned_until = 0.0
        self._metadata_due = False  # an assignment came: learn _topic_partitions after the consume()
        self._now = time.monotonic  # replaceable in tests
        self._auto_paused = False
        self._closed = False
        # consume() calls running (on any thread): close() waits for them before the client's close,
        # which blocks while another thread consumes; a closed reader starts none (see _consume)
        self._consuming = 0
        self._idle = threading.Condition()
        #: Retriable errors reported by the client (kept for inspection; newest last).
        self.errors: list[Any] = []
        self._fatal: Any = None
        # The brokers refused the credentials before this member ever got partitions: wrong
        # configuration, which retrying until connect_timeout would only hide behind "unreachable".
        self._refused: Any = None
        self._joined = False
        self._seen_codes: set[int] = set()
        #: Partitions revoked while holding uncommitted records: ``(topic, partition, first, next)``.
        self.revoked_uncommitted: list[tuple[str, int, int, int]] = []
        conf = source.consumer_config()
        # Cooperative assignors hand out partitions incrementally; eager ones replace the assignment.
        self._cooperative = "cooperative" in str(conf.get("partition.assignment.strategy", "")) or (
            str(conf.get("group.protocol", "classic")) == "consumer"
        )
        # Network waits are real time, not the pipeline's (possibly simulated) processing time.
        self._opened = self._observed = time.monotonic()
        self._contact: float | None = None  # when a broker last answered (monotonic seconds)
        # Connections the statistics last showed stuck in the TLS handshake (see _check_contact).
        self._tls_stuck: list[str] = []
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
            logger=ClientLog(),
            on_commit=self._on_commit,
            stats_cb=self._on_stats,
        )
        self._consumer = new_client(ck.Consumer, conf, repr(source))
        # A member that is gone without leaving (a killed process) keeps what the group gave it until
        # its session times out; then the group rebalances, which this member hears of at its next
        # heartbeat. Twice the session plus a heartbeat covers that with room for a loaded machine.
        # (After the client is created: it has checked that these are numbers.)
        self._settle_s = (
            2 * float(conf.get("session.timeout.ms", 45_000))
            + float(conf.get("heartbeat.interval.ms", 3_000))
        ) / 1000
        # Since when this member has owned no partition (see _check_assignment), and whether it said so.
        self._unassigned_since = self._now()
        self._unassigned_reported = False
        self._consumer.subscribe(
            list(source.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    # -- callbacks (run inside consume(), on this thread) ---------------------------------------------
    # No client call that keeps confluent-kafka's call state may run in here: list_topics() (as well as
    # poll(), consume() and close()) clears the state of the consume() that runs the callback, and the
    # next callback that same consume() serves (statistics, an error, a log line) then aborts the
    # process (confluent-kafka 2.16.1: "CallState_get: Assertion `cs != NULL' failed"). committed(),
    # offsets_for_times(), assign() and pause() do not touch it. What needs the others waits for the
    # consume() to return (see _consume).
    def _on_client_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = err
        elif err.name() in AUTHENTICATION_ERRORS and not self._joined:
            self._refused = err
            self._record_error(err)
        elif err.name() in CONNECTIVITY_ERRORS:
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
        brokers = data.get("brokers", {})
        self._tls_stuck = [str(n) for n, b in brokers.items() if b.get("state") == "SSL_HANDSHAKE"]
        idle = [b.get("rxidle", -1) for b in brokers.values()]
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
        self._joined = True
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
        self._metadata_due = True  # read by _consume once consume() returned (see above)
        self._unowned_until = self._now() + self._settle_s
        again = [
            tp for tp in partitions if (tp.topic, tp.partition) in self._user_paused or self._auto_paused
        ]
        if again:
            consumer.pause([ck.TopicPartition(tp.topic, tp.partition) for tp in again])

    def _consume(self, num_messages: int, timeout: float) -> list[Any]:
        """``consume()``, then what the callbacks it ran left for after it (they must not call it).

        A closed reader consumes no more (RuntimeError): a thread that kept calling consume() (a commit
        waiting for its answer, a poll loop) held the client's close, which waits for it, for ever."""
        with self._idle:
            if self._closed:
                raise RuntimeError(f"{self.source!r}: reader is closed")
            self._consuming += 1
        try:
            msgs: list[Any] = self._consumer.consume(num_messages=num_messages, timeout=timeout)
        finally:
            with self._idle:
                self._consuming -= 1
                self._idle.notify_all()
        if self._metadata_due:
            self._metadata_due = False
            self._learn_topic_partitions()
        self._note_lag()
        return msgs

    def _note_lag(self, at_once: bool = False) -> None:
        """Keep what :meth:`lag` reads: after each ``consume()``, at most twice a second once every
        assigned partition's high watermark is known; or ``at_once``, for :meth:`lag` while no thread is
        inside ``consume()``.

        The client's cached ``get_watermark_offsets`` holds the GIL while it waits for librdkafka's
        locks. Called from another thread while ``consume()`` served a rebalance (whose callbacks need
        the GIL), each side waited for the other until a librdkafka timeout: a run whose metrics were
        polled from its start (a live view, a test's wait) read 8,000 records in 25 s instead of 3.5 s.
        """
        now = time.monotonic()
        if not at_once and now - self._lag_noted < 0.5 and self._lag_inputs.keys() >= self._assigned:
            return  # noted lately, and every partition's high watermark is known
        self._lag_noted = now
        noted: dict[tuple[str, int], tuple[int, int | None]] = {}
        for topic, part in list(self._assigned):
            tp = self._ck.TopicPartition(topic, part)
            try:
                _lo, hi = self._consumer.get_watermark_offsets(tp, cached=True)
                at = self._consumer.position([tp])[0].offset
            except self._ck.KafkaException:
                continue
            if hi is not None and hi >= 0:
                noted[(topic, part)] = (hi, at if at >= 0 else None)
        self._lag_inputs = noted

    def _learn_topic_partitions(self) -> None:
        """Every partition of the subscribed topics, from the cluster's metadata (a bounded wait)."""
        for topic in self.source.topics:
            try:
                meta = self._consumer.list_topics(topic, timeout=min(self._wait_limit(5.0), 5.0))
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
        if not self._assigned:
            self._unassigned_since = self._now()

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
        self._raise_if_refused()
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
            if not self._assigned:  # nor could the group assign it anything meanwhile
                self._unassigned_since = self._now()
        if self._buffered:
            msgs, self._buffered = self._buffered[:budget], self._buffered[budget:]
        else:
            # While paused, consume() still serves rebalance callbacks and keeps the membership alive.
            msgs = self._consume(budget, self.source.poll_timeout)
        self._observed = time.monotonic()
        self._raise_if_refused()
        if msgs:
            self._heard()
        else:
            self._check_contact()
        self._check_assignment()
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

    def _raise_if_refused(self) -> None:
        if self._refused is None:
            return
        self._stalled = True  # close() does not wait on a leave-group handshake that cannot happen
        raise KafkaSourceError(
            f"{self.source!r}: the Kafka cluster at {self.source.bootstrap_servers} refused the consumer's "
            f"authentication: {self._refused.str()}. {AUTHENTICATION_FIX}"
        )

    def _check_assignment(self) -> None:
        """Say so when this member has owned no partition for longer than a group takes to settle.

        After ``2 * session.timeout.ms + heartbeat.interval.ms`` without a partition (the time a member
        that is gone without leaving may hold them, see :meth:`partitions`) a warning names the group
        and the likely causes, once. A bounded read (``stop_at_end``) could never finish that way: at
        twice that time (10 s at least) it raises :class:`KafkaSourceError` instead of sitting silent
        for the whole run (or for ever, without a ``duration``).
        """
        if self._assigned:
            self._unassigned_reported = False
            return
        if self._outage_reported or (self._contact is None and self.source.connect_timeout is not None):
            return  # no broker answers: connect_timeout or broker_timeout says so (_check_contact)
        waited = self._now() - self._unassigned_since
        fail_after = max(2 * self._settle_s, 10.0)
        bounded = self.source.stop_at_end
        if waited < self._settle_s or (self._unassigned_reported and not (bounded and waited >= fail_after)):
            return
        group = self.source.group_id
        if self._joined:
            what = f"has owned no partition of {list(self.source.topics)} for {waited:.1f} s"
        else:
            what = (
                f"has been assigned no partition of {list(self.source.topics)} in {waited:.1f} s of joining"
            )
        why = (
            f"consumer group {group!r} at {self.source.bootstrap_servers} {what} (2 x session.timeout.ms "
            f"+ heartbeat.interval.ms = {self._settle_s:g} s). Likely causes: other members of the group hold "
            "every partition (another run or process still consuming as this group, or more members than "
            "partitions), or the group is stuck on the broker (the local broker, LocalKafkaBroker (tansu), "
            "leaves a group unable to assign partitions to anyone after a member closed in the middle of its "
            "first join, until the broker restarts). Fix: stop the other members, or use another group_id "
            "(a new group starts at `start`, as it has no committed offsets), or restart the local broker"
        )
        if bounded and waited >= fail_after:
            raise KafkaSourceError(
                f"{self.source!r}: a bounded read (stop_at_end=True) never finishes without partitions: "
                f"{why}. Nothing is lost: records after the group's last commit are read again by the next run."
            )
        self._unassigned_reported = True
        log.warning("%r: %s", self.source, why)

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
        if self._contact is None and self._tls_stuck:
            # A plaintext listener takes the TLS ClientHello for the size of a request and waits for
            # the rest: the connection is accepted and nothing fails until the client's own setup
            # timeout (30 s), after connect_timeout; librdkafka's statistics show where it hangs.
            what = (
                f"the TLS handshake with {', '.join(self._tls_stuck)} got no answer within {silent:.1f} s "
                "of opening the consumer: the port accepts connections but does not speak TLS "
                "(a PLAINTEXT listener?)"
            )
            protocol = str(self.source.consumer_config().get("security.protocol", "SSL"))
            plain = "SASL_PLAINTEXT" if protocol.upper().startswith("SASL") else "PLAINTEXT"
            fix = (
                f"Set security.protocol to {plain!r} for a plaintext listener, or point "
                "bootstrap_servers at the brokers' TLS listener"
            )
        elif self._contact is None:
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
        # a producer may set any 64-bit time: one beyond int64 nanoseconds (after 2262, before 1677) is
        # missing, where multiplying would wrap it round to another time
        far = np.abs(ts_ms) > _MS_MAX
        missing = (ts_type == self._ck.TIMESTAMP_NOT_AVAILABLE) | far
        ns = np.where(missing, NAT_NS, np.where(far, 0, ts_ms) * 1_000_000)
        columns: dict[str, Any] = {
            "value": pd.Series([m.value() for m in msgs], dtype=object),
            "key": pd.Series([m.key() for m in msgs], dtype=object),
            "headers": pd.Series([m.headers() for m in msgs], dtype=object),
            "topic": pd.Series([m.topic() for m in msgs], dtype=object),
            "partition": np.fromiter((m.partition() for m in msgs), dtype=np.int32, count=len(msgs)),
            "offset": np.fromiter((m.offset() for m in msgs), dtype=np.int64, count=len(msgs)),
            "kafka_timestamp": ns_to_timestamp(ns),
        }
        frame: pd.DataFrame = pd.DataFrame(columns)  # pandas-stubs types the constructor as Any
        return frame

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
            if self._closed:  # close() on another thread: the answer will not be served
                raise KafkaCommitError(
                    f"{self.source!r}: the reader was closed while committing offsets {owned} for group "
                    f"{self.source.group_id!r} waited for the Kafka cluster's answer ({waited:.1f} s); "
                    "whether they were stored is unknown. Nothing is lost: the records after the last "
                    "commit are read again on restart"
                )
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
            try:
                self._buffered.extend(self._consume(self.source.max_batch, wait))
            except RuntimeError:
                if self._closed:
                    continue  # closed since the check above: said there
                raise
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
        with self._idle:  # no consume() starts meanwhile
            if not self._consuming and not self._closed:
                # a paused run polls no more, while the client still learns of new records: ask it.
                # Never while a thread is inside consume() (see _note_lag): then, what it noted last
                self._note_lag(at_once=True)
        total, known = 0, False
        # Copies: the runtime's metrics call this from another thread while poll() may be rebalancing.
        positions = dict(self._positions)
        assigned = set(self._assigned)
        for key, (hi, at) in self._lag_inputs.items():
            if key not in assigned:
                continue
            pos = positions.get(key)
            if pos is None:
                pos = at if at is not None else hi
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

        It may be called from another thread than the one polling or committing: a ``consume()`` running
        there ends within its timeout and none starts after (``poll`` raises, a ``commit`` waiting for
        its answer raises :class:`KafkaCommitError`), so the client's close, which waits for them, is
        not held.

        After the cluster stopped answering (a commit timed out, or it was silent for longer than its
        limit) the consumer is dropped without the leave-group handshake, which would wait on it:
        the group then reassigns the partitions after ``session.timeout.ms``, as after a crash.

        A member that was never assigned (closed while joining: a run stopped or failed right after its
        start) is dropped without the leave-group handshake too: it has nothing to commit or hand back,
        and on the local broker (tansu) a LeaveGroup sent in the middle of a join leaves the group
        unable to assign partitions to anyone. The cost on any broker: the group keeps the half-joined
        member until its session times out, so the next member's join may wait up to
        ``session.timeout.ms`` (6 s by default).
        """
        with self._idle:
            if self._closed:
                return
            self._closed = True  # no consume() starts from now on (_consume)
            # A consume() running on another thread returns within its timeout (poll_timeout, or a
            # commit's 0.05 s); the client's close would wait for it, and for every one after it.
            self._idle.wait_for(
                lambda: self._consuming == 0, timeout=min(self.source.poll_timeout + 1, CLOSE_WAIT)
            )
        self._buffered = []
        consumer = self._consumer
        silent, limit, _ = self._silence()
        # confluent-kafka's close() always sends the LeaveGroup, with no option to skip it; dropping the
        # client instead runs librdkafka's destroy with RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE (its
        # Consumer's dealloc), which sends none and waits on no broker. No assignment yet: see above.
        if self._stalled or (limit is not None and silent > limit) or not self._joined:
            self._consumer = None
            del consumer  # the last reference: the client is destroyed here, without the consumer close
            return
        # Leaving takes milliseconds with a live coordinator; do not let a dying one hold a stop.
        limit = min(self.source.broker_timeout or CLOSE_WAIT, CLOSE_WAIT)
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
