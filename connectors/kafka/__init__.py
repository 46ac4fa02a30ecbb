"""Apache Kafka source, sinks and admin helpers (confluent-kafka).

``KafkaSource`` reads a consumer group in micro-batches and commits offsets only when the runtime says
the sinks hold the data (``enable.auto.commit=false``), so a restart re-reads exactly what was not
committed. ``KafkaSink`` produces rows (JSON or a bytes column) and its ``flush()`` raises if any
delivery failed. ``confluent_kafka`` is imported only when a connection is opened:
``pip install 'streamlab[kafka]'``. The local broker, :class:`~streamlab.local.LocalKafkaBroker`, lives in
:mod:`streamlab.local` (re-exported here).

Modules: ``source`` (the frozen read description), ``reader`` (the open consumer), ``sink``, ``admin``,
``errors``; the private ``_config`` (settings checks, redaction) and ``_client`` (client import, logging).
Records are encoded by :mod:`streamlab.serde`; ``rows_to_json`` here is its ``encode_rows`` (one JSON
object per row, as bytes).

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
* A member that sends LeaveGroup (confluent-kafka's ``close()``) in the middle of its first join leaves
  the group unable to assign partitions to any member until the broker restarts. The reader therefore
  drops a member that was never assigned without the LeaveGroup (the group forgets it after
  ``session.timeout.ms``, on any broker), and a reader that owns no partition for
  ``2 * session.timeout.ms + heartbeat.interval.ms`` warns, naming the group (a ``stop_at_end`` one fails
  at twice that time): a group wedged by another client is left for good; use another ``group_id``.

Examples
--------
>>> from streamlab.connectors.kafka import KafkaSource
>>> KafkaSource("events", bootstrap_servers="127.0.0.1:9092", group_id="g").topics
('events',)
"""

from __future__ import annotations

from streamlab.local.kafka import LocalKafkaBroker
from streamlab.serde import encode_rows as rows_to_json

from ._config import redact_config
from .admin import KafkaAdmin, create_topic
from .errors import KafkaCommitError, KafkaDeliveryError, KafkaSourceError, KafkaUnreachableError
from .reader import KAFKA_COLUMNS, KafkaSourceReader, Position
from .sink import KafkaDeadLetterSink, KafkaSink, KafkaSinkWriter
from .source import KafkaSource

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
    "Position",
    "create_topic",
    "redact_config",
    "rows_to_json",
]
