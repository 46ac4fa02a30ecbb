"""Export a pipeline to a PySpark Structured Streaming job, plus its README and deployment descriptors.

The generated module imports PySpark and PyArrow only (no streamlab): the per-record parser of
``streamlab._record`` is copied in, so rows and dead-letter reasons are the ones streamlab gives.
Raw records are parsed in ``mapInArrow`` (bytes in, typed rows out); each output is its own streaming
query with its own checkpoint, the dead letters included. Where Spark differs from streamlab's
per-event rules is written into the module's docstring; the short version:

* Spark's watermark advances once per micro-batch (to the largest event time of the batches before,
  minus the delay); rows behind it are dropped, not reported: there is no ``late`` output, and
  ``numRowsDroppedByWatermark`` in the query progress counts them.
* A window result is written (append mode) once the watermark passes ``end + lateness``; a bounded
  input (``--input`` with ``--available-now``) ends with the windows still open unless its last line
  is the end-of-input marker (``END_OF_INPUT``), which moves every watermark past every window.
* Dedup is streamlab's own rule (``Dedup``) in one ``applyInPandasWithState`` group, on rows in arrival
  order (:func:`rule_dedups`): the same repeats as streamlab, ``ttl`` and ``max_ids`` included, on one
  Python worker; no ``duplicates`` output. Where the query already has another
  ``applyInPandasWithState`` (Spark allows one per query: a detector or pattern step after the dedup)
  or the input has no arrival sequence (after a window or join), it is ``dropDuplicatesWithinWatermark``
  (``DEDUP_FALLBACK_WHY`` says what differs; ``verify`` repeats it in its notes). Spark allows one
  watermark per chain, so a window after such a dedup runs on the dedup's (the ttl behind): it takes
  the rows streamlab reports late within the ttl (``verify`` leaves those windows out;
  :func:`inherited_watermarks` names such steps).
* Pattern steps run streamlab's rule per key in ``applyInPandasWithState`` (the key's buffered events
  and open candidates are its group state; see ``streamlab.export.spark_pattern``): the matches are
  streamlab's on inputs without late rows.
* Detector, feature, rule and drift steps, with the with_columns, filter and select steps after them,
  run streamlab's per-record machines in one ``applyInPandasWithState`` per run of such steps (Spark
  allows one per query), on rows sorted by their arrival sequence (``_src``, ``_seq``), with output
  schemas derived from the step definitions; that query writes all their outputs (``write_tagged``).
  See ``streamlab.export.spark_detectors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamlab._dead_letter import RAW, REASON, STEP_ID, dead_letter_types
from streamlab._time import parse_duration, unreadable_time_reason
from streamlab.aggregators import CountAggregator
from streamlab.errors import PipelineConfigError
from streamlab.export import _detectors, _plan
from streamlab.export._input import replay_input_block
from streamlab.export.beam import ExportedFiles, copy_user_modules, user_modules
from streamlab.pipeline import Pipeline
from streamlab.steps import (
    DedupStep,
    FilterStep,
    IntervalJoinStep,
    KeyByStep,
    MapStep,
    OperatorStep,
    ParseStep,
    SelectStep,
    SinkStep,
    SourceStep,
    WindowStep,
)
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow

__all__ = ["END_OF_INPUT", "SPARK_VERSION", "TICK", "inherited_watermarks", "to_spark"]

SPARK_VERSION = "4.3.0"
SCALA_VERSION = "2.13"
END_OF_INPUT = b"\x00streamlab:end-of-input"
"""The raw line that ends a bounded replay: the generated job turns it into a row at END_TIME on every
timestamp column, which moves each query's watermark past every window and is never written out."""
TICK = b"\x00streamlab:tick"
"""A raw line the generated job ignores: a file holding only it is a micro-batch without rows, after
which Spark's watermark for late rows (the one of the batch before) has caught up."""

_ARROW = {
    "string": "pa.string()",
    "category": "pa.string()",
    "int64": "pa.int64()",
    "float64": "pa.float64()",
    "bool": "pa.bool_()",
    "timestamp": 'pa.timestamp("us", tz="UTC")',
    "object": "pa.string()",
    "json": "pa.string()",
    "bytes": "pa.binary()",
}
_SPARK = {
    "string": "STRING",
    "category": "STRING",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "object": "STRING",
    "json": "STRING",
    "bytes": "BINARY",
}
_SIMPLE_AGGS = {"sum": "F.sum", "mean": "F.avg", "min": "F.min", "max": "F.max"}


def _connectors() -> dict[str, str]:
    return {
        "kafka": f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_VERSION}:{SPARK_VERSION}",
        "eventhubs": f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_VERSION}:{SPARK_VERSION}  (Event Hubs' Kafka endpoint)",
        "kinesis": "the Kinesis source of Databricks (format 'kinesis', built in) or, elsewhere, "
        "https://github.com/awslabs/spark-sql-kinesis-connector (format 'aws-kinesis')",
        "pubsub": "the Pub/Sub source of Databricks (format 'pubsub', built in); open-source Spark has none",
        "jdbc": "the database's JDBC driver jar (e.g. org.postgresql:postgresql:42.7.4)",
    }


_HEADER = '''"""PySpark Structured Streaming job {name!r}, exported from streamlab.

Steps: {steps}.

Run it (the exact command and a Databricks job are in README.md next to this file)::

    spark-submit --packages {kafka_pkg} {module} \\
        --kafka-bootstrap BROKERS --topic TOPIC --output OUT_DIR --checkpoint CHECKPOINT_DIR

    spark-submit {module} --input 'DIR/*.jsonl' --output OUT_DIR --checkpoint CHECKPOINT_DIR --available-now

Every output is its own streaming query with its own checkpoint directory (CHECKPOINT_DIR/<output>);
the dead letters of the parse step are one of them.

Semantics (streamlab -> Spark)
------------------------------
* Parse: streamlab's own per-record parser (copied below) in ``mapInArrow``: the same typed rows and
  the same dead-letter reasons (``raw``, ``reason``, ``step_id``). Timestamps are microseconds here
  (streamlab keeps nanoseconds).
* Watermark: streamlab's moves after every event (largest event time seen minus the delay). Spark's
  moves once per micro-batch: rows of a batch are judged against the watermark of the batches before
  it, so within one batch nothing is late, and the watermark of a query is the minimum over its inputs.
* Late rows: streamlab reports them on a ``late`` output; Spark drops them (windows, joins, dedup) and
  only counts them (``numRowsDroppedByWatermark`` in ``StreamingQuery.lastProgress``). There is no
  ``late`` output here.
* Windows: one final result per window and key (append mode) once the watermark passes
  ``end + lateness``: the job's watermark delay is the window's delay plus its lateness. A bounded
  input ends with its last windows open (append mode writes nothing for them) unless its last line is
  END_OF_INPUT; the job turns that line into a row at END_TIME that moves the watermark past every
  window and is never written out. ``first``/``last`` are ``min_by``/``max_by`` on event time, then
  on the arrival sequence (``_src``, ``_seq``: a file's order and line, a partition's offset), so ties
  in event time go to the earliest (``first``) or latest (``last``) arrival, as in streamlab; across
  Kafka partitions or Kinesis shards arrival has no order, and a tie there may go to another row.
* Sessions: ``session_window`` (a session ends ``gap`` after its last event, as in streamlab; an event
  exactly ``gap`` after the last starts a new session, so the job's gap is one microsecond shorter, as
  Spark merges sessions that touch, and the end is written back one microsecond later).
* Dedup: streamlab's own rule (``Dedup``, copied below: an id is remembered while the largest event
  time seen is within ttl of its first occurrence, at most max_ids of them) in ``first_occurrences``,
  one ``applyInPandasWithState`` group for all ids (the rule reads the largest event time and the order
  of first occurrences across ids), rows sorted by their arrival sequence (``_src``, ``_seq``) in each
  micro-batch; the rule's state is the group's state. Rows go through it pickled (``pack_rows``), so
  pandas does not touch their values. All rows pass one Python worker, and the rule's state (up to
  ``max_ids`` ids) is pickled into the state store after each micro-batch. No ``duplicates`` output.
  Where a comment at the step says so (another ``applyInPandasWithState`` in the same query, which
  Spark refuses, or an input without arrival sequence) the dedup is ``dropDuplicatesWithinWatermark``
  with the ttl as watermark delay instead: an id is forgotten only when the watermark moves, between
  micro-batches, so a repeat more than the ttl after its first occurrence is dropped when both are in
  one micro-batch (streamlab passes it); ``max_ids`` is not reproduced; rows behind the watermark are
  dropped.
* One watermark per chain: Spark fails a query with a second ``withWatermark`` downstream of
  another ("Redefining watermark is disallowed"), so a window, join or pattern after a
  ``dropDuplicatesWithinWatermark`` dedup runs on the dedup's watermark (the ttl behind the latest
  event time), not its own delay (+ lateness). Such a window still takes the rows streamlab reports
  late when they are within the ttl, and a ttl shorter than the window's size + delay drops rows at
  the dedup (Spark's dedup drops rows behind its watermark) that streamlab's window may still take.
  No one delay gives both rules (the dedup judges a row by its own event time, the window by its
  window's end), so the dedup keeps its ttl: windows without late rows are streamlab's. The code says
  so where it happens.
* Functions (``filter_one``) get each row as a dict of Python values: a missing number is None here,
  where streamlab's per-event functions see NaN; a function that fails on None sends the row to
  ``dead_letter`` here, while ``NaN > 1`` is simply False in streamlab.
* Interval joins: an inner stream-stream join with watermarks on both sides and the time range in the
  join condition; rows behind the watermark are dropped (streamlab reports them on ``late``).
"""

from __future__ import annotations

import argparse
import base64
import heapq
import json
import math
import os
import re
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812 - PySpark's own convention
'''

_RUNTIME = '''

def to_arrow_value(kind, value):
    """A parsed value as the Arrow column of its field type holds it."""
    if value is None:
        return None
    if kind in ("object", "json"):
        # keys in the record's order, as streamlab's sinks write the value (sorted, the job's files
        # held {"alpha": .., "zeta": ..} where streamlab's hold {"zeta": .., "alpha": ..})
        return json.dumps(value)
    return value


def json_values(row, decode):
    """``row`` with the JSON text of its ``decode`` columns (json and object fields, which the job holds
    as text) read back as the values streamlab's columns hold, for an expression to read. A missing text
    is None, as streamlab holds a json null (pandas 3 hands a missing string over as NaN)."""
    if not decode:
        return row
    return {**row, **{c: json.loads(row[c]) if isinstance(row[c], str) else None for c in decode if c in row}}


def split_lines(content):
    """Raw records of one file: its lines, without line ends (a trailing newline ends the last one); a
    UTF-8 byte order mark that starts the file is not part of its first record (as in streamlab's replay)."""
    parts = content.removeprefix(b"\\xef\\xbb\\xbf").split(b"\\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p[:-1] if p.endswith(b"\\r") else p for p in parts]


def parse_batches(batches, column, split, step_id, fields, required, max_record_bytes):
    """``mapInArrow`` body: raw records to typed rows, and bad records to dead-letter rows.

    Every output row has the fields plus ``_ok`` (False for a dead letter), ``_raw``, ``_reason`` and
    its arrival sequence ``_src``, ``_seq`` (see ``read_raw``; for a file, ``_seq`` is the line number).
    The END_OF_INPUT line that ends a file becomes a row with every timestamp field at END_TIME, and the
    TICK line that ends one is skipped; anywhere else (inside a file, or a Kafka, Kinesis or Pub/Sub
    message) either is a bad record like any other, a dead letter, as in streamlab: one message could
    otherwise close every window (every later row dropped behind the watermark) or vanish.
    """
    schema = pa.schema(
        [(name, ARROW_TYPES[kind]) for name, kind, _ in fields]
        + [("_ok", pa.bool_()), ("_raw", pa.string()), ("_reason", pa.string())]
        + [("_src", pa.string()), ("_seq", pa.int64())]
    )
    for batch in batches:
        contents = batch.column(column).to_pylist()
        names = batch.schema.names
        srcs = batch.column("_src").to_pylist() if "_src" in names else [None] * len(contents)
        seqs = batch.column("_seq").to_pylist() if "_seq" in names else [None] * len(contents)
        if split:
            raws, order, ends = [], [], []
            for content, src in zip(contents, srcs):
                lines = split_lines(content)
                raws += lines
                order += [(src, i) for i in range(len(lines))]
                ends += [i == len(lines) - 1 for i in range(len(lines))]
        else:
            raws, order, ends = contents, list(zip(srcs, seqs)), [False] * len(contents)
        rows = []
        for raw, (src, seq), last in zip(raws, order, ends):
            if last and raw == TICK:
                continue
            if last and raw == END_OF_INPUT:
                row = {name: (END_TIME if kind == "timestamp" else None) for name, kind, _ in fields}
                rows.append({**row, "_ok": True, "_raw": None, "_reason": None, "_src": src, "_seq": seq})
                continue
            try:
                parsed = parse_record(raw, fields, required, max_record_bytes)
            except BadRecordError as e:
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                row = {name: None for name, _, _ in fields}
                rows.append({**row, "_ok": False, "_raw": text, "_reason": str(e), "_src": src, "_seq": seq})
                continue
            row = {name: to_arrow_value(kind, parsed[name]) for name, kind, _ in fields}
            rows.append({**row, "_ok": True, "_raw": None, "_reason": None, "_src": src, "_seq": seq})
        yield pa.RecordBatch.from_pylist(rows, schema=schema)


def filter_batches(batches, schema, what, predicate, time):
    """``mapInArrow`` body: rows the predicate keeps (``_ok``) or fails on (``_reason``).

    END_OF_INPUT rows (``time`` at END_TIME) always pass, so that the watermark behind the filter moves.
    """
    out_schema = pa.schema([*schema, ("_ok", pa.bool_()), ("_reason", pa.string())])
    for batch in batches:
        rows = []
        for row in batch.to_pylist():
            if time is not None and row.get(time) == END_TIME:
                rows.append({**row, "_ok": True, "_reason": None})
                continue
            try:
                keep = bool(predicate(row))
            except Exception as e:
                rows.append({**row, "_ok": False, "_reason": f"{what} raised {type(e).__name__}: {e}"})
                continue
            if keep:
                rows.append({**row, "_ok": True, "_reason": None})
        yield pa.RecordBatch.from_pylist(rows, schema=out_schema)


def unfit_batches(batches, schema, keys, checks, decode, numbers):
    """``mapInArrow`` body of a window whose key or numeric aggregator reads a ``json`` or ``object``
    field: streamlab's rule (``unfit_reason``) on each row, with those fields' JSON text read back.

    Every row gets ``_ok`` and ``_reason`` (why the window cannot take it: a key that is an object or an
    array, a value that is no number), and ``_num_<column>`` per column of ``numbers``: the value as
    streamlab's aggregators read it (``as_number``: the text "2" is 2, true is 1, an integer beyond a
    double an infinity), which the window aggregates. A CAST of the JSON text would fail the query (ANSI
    mode) on every retry of its micro-batch.
    """
    out_schema = pa.schema(
        [*schema, ("_ok", pa.bool_()), ("_reason", pa.string())] + [(f"_num_{c}", pa.float64()) for c in numbers]
    )
    for batch in batches:
        rows = []
        for row in batch.to_pylist():
            values = json_values(row, decode)
            reason = unfit_reason(values, keys, checks)
            nums = {f"_num_{c}": None if missing_value(values[c]) else as_number(values[c]) for c in numbers}
            for k in keys:  # streamlab keys -0.0 as 0.0 (typed_id): one group, as its JSON text "0.0"
                if k in decode and isinstance(values[k], float) and values[k] == 0:
                    row[k] = "0.0"
            rows.append({**row, "_ok": reason is None, "_reason": reason, **nums})
        yield pa.RecordBatch.from_pylist(rows, schema=out_schema)


def unfit_schema(schema, numbers):
    """The Spark schema ``unfit_batches`` returns: ``schema`` with ``_ok``, ``_reason`` and ``_num_<column>``."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    return StructType([*with_flags(schema).fields, *[StructField(f"_num_{c}", DoubleType()) for c in numbers]])


def with_flags(schema):
    """A Spark schema plus the ``_ok`` and ``_reason`` columns of ``filter_batches``."""
    from pyspark.sql.types import BooleanType, StringType, StructField, StructType

    return StructType([*schema.fields, StructField("_ok", BooleanType()), StructField("_reason", StringType())])


def real_rows(df, time):
    """Rows that are not the END_OF_INPUT row. The condition reads the event-time column, so Spark
    cannot push it below a watermark (a filter on other columns it may move before the watermark,
    which would then never see the END_OF_INPUT row)."""
    if time is None or time not in df.columns:
        return df
    return df.where(F.col(time).isNull() | (F.col(time) < F.lit(END_TIME)))


def read_raw(spark, args):
    """The raw records: a DataFrame of a binary column, and whether each row is a file of lines.

    ``_src`` (and ``_seq``, Kafka's offset) give each record's arrival sequence, which steps whose
    results depend on the order of rows (detectors, features) sort by (see the module docstring)."""
    if args.input:
        reader = spark.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA)
        if args.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", args.max_files_per_trigger)
        # arrival sequence: the order the file source reads files in (modification time, then path)
        src = F.format_string("%020d %s", F.unix_micros("modificationTime"), F.col("path"))
        return reader.load(args.input).select("content", src.alias("_src")), "content", True
    if args.kinesis_stream:
        fmt = "kinesis" if args.kinesis_format == "databricks" else "aws-kinesis"
        reader = (
            spark.readStream.format(fmt)
            .option("streamName", args.kinesis_stream)
            .option("region", args.region)
            .option("initialPosition", "TRIM_HORIZON")
        )
        # arrival sequence: shard (where the connector gives it), then the zero-padded sequence number
        df = reader.load()
        parts = [F.col(c) for c in ("shardId",) if c in df.columns] + [F.lpad(F.col("sequenceNumber"), 64, "0")]
        return df.select(F.col("data").alias("value"), F.concat_ws(" ", *parts).alias("_src")), "value", False
    if args.pubsub_subscription:
        project, _, sub = args.pubsub_subscription.removeprefix("projects/").partition("/subscriptions/")
        reader = (
            spark.readStream.format("pubsub")
            .option("subscriptionId", sub)
            .option("topicId", args.topic)
            .option("projectId", project)
        )
        # Pub/Sub has no order: publish time stands for the arrival sequence
        src = F.format_string("%020d", F.col("publishTimestampInMillis").cast("long"))
        return reader.load().select(F.col("payload").alias("value"), src.alias("_src")), "value", False
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.kafka_bootstrap)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
    )
    if args.eventhubs_connection_env:
        # Event Hubs' Kafka endpoint: SASL PLAIN with the connection string, read from the environment
        conn = os.environ[args.eventhubs_connection_env]
        jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="$ConnectionString" password="{conn}";'
        )
        reader = (
            reader.option("kafka.security.protocol", "SASL_SSL")
            .option("kafka.sasl.mechanism", "PLAIN")
            .option("kafka.sasl.jaas.config", jaas)
        )
    # arrival sequence: Kafka orders each partition (by offset), not the topic
    src = F.format_string("%010d", F.col("partition"))
    return reader.load().select("value", src.alias("_src"), F.col("offset").alias("_seq")), "value", False


def _writer(df, name, args):
    """The stream writer of a query named ``name``: append mode, its own checkpoint directory, the trigger."""
    writer = (
        df.writeStream.queryName(name)
        .outputMode("append")
        .option("checkpointLocation", f"{args.checkpoint.rstrip('/')}/{name}")
    )
    if args.available_now:
        return writer.trigger(availableNow=True)
    if args.trigger_interval:
        return writer.trigger(processingTime=args.trigger_interval)
    return writer


KAFKA_MESSAGE_LIMIT = 1_000_000 - 1024
"""Largest side-output message: Kafka's producers and brokers refuse records over 1 MB by default
(``max.request.size``, ``message.max.bytes``), and a refused record fails its micro-batch on every retry."""


def fit_kafka_value(value):
    """A side output's JSON message cut to KAFKA_MESSAGE_LIMIT when it is larger (``fit_message``: its reason,
    step and the start of its ``raw`` text, with ``raw_truncated``, ``raw_bytes`` and ``raw_sha256``)."""
    if value is None or len(value.encode("utf-8")) <= KAFKA_MESSAGE_LIMIT:
        return value
    return fit_message(json.loads(value), KAFKA_MESSAGE_LIMIT, lambda r: json.dumps(r, separators=(",", ":")))[0]


def finite_json_texts(texts):
    """JSON texts of json and object values (as the job holds them: ``json.dumps``, which writes ``NaN``
    and ``Infinity``) with NaN and the infinities null at any depth, as streamlab's JSON sinks write
    them; the other texts as they are. A pandas UDF: one Python call a batch of rows, and a row is
    decoded only when its text may hold such a number."""
    suspect = texts.str.contains("NaN|Infinity", regex=True, na=False)
    if not suspect.any():
        return texts
    out = texts.copy()
    out[suspect] = [json.dumps(_plain(json.loads(t))) for t in texts[suspect]]  # keys in their order
    return out


def sorted_json_texts(texts):
    """JSON texts with the keys of every object sorted: the identity streamlab's dedup gives an object
    (``dedup_key``), whose keys the job's texts keep in their record's order. A pandas UDF."""
    return texts.map(lambda t: json.dumps(json.loads(t), sort_keys=True) if isinstance(t, str) else None)


def sorted_json(col):
    """The column ``col`` of JSON texts through ``sorted_json_texts``."""
    return F.pandas_udf(sorted_json_texts, "string")(col)


def finite_json(col):
    """The column ``col`` of JSON texts through ``finite_json_texts``."""
    return F.pandas_udf(finite_json_texts, "string")(col)


def finite_json_columns(df, name):
    """``df`` with its json and object fields (``JSON_COLUMNS``) through ``finite_json``: the JSON text a
    Parquet file or a JDBC table holds is then JSON (``json.dumps`` writes ``Infinity``), as streamlab's
    sinks write it."""
    nested = [c for c in JSON_COLUMNS.get(name, ()) if c in df.columns]
    if not nested:
        return df
    return df.withColumns({c: finite_json(F.col("`" + c.replace("`", "``") + "`")) for c in nested})


JSON_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
"""Times in JSON outputs: ISO-8601 in UTC to the microsecond, as streamlab's JSON sinks write them."""


def json_lines(df, name):
    """One JSON text per row (the column ``value``), as streamlab's JSON sinks write rows.

    Every field is written, a missing one as null (Spark's own writer leaves it out); a json or object
    field (which the job holds as its JSON text, ``JSON_COLUMNS``) is the nested value, not a quoted
    text; NaN and the infinities are null (Spark's writer quotes them: ``"Infinity"``); times are
    ``JSON_TIME_FORMAT``. Built from Spark's own expressions: no Python runs per row."""
    nested = set(JSON_COLUMNS.get(name, ()))
    options = {"ignoreNullFields": "false", "timestampFormat": JSON_TIME_FORMAT}
    pieces = []
    for field in df.schema.fields:
        col = F.col("`" + field.name.replace("`", "``") + "`")
        if field.name in nested:
            text = F.coalesce(finite_json(col), F.lit("null"))
        else:
            if field.dataType.typeName() in ("double", "float"):
                col = F.when(F.isnan(col) | (F.abs(col) == F.lit(math.inf)), F.lit(None)).otherwise(col)
            one = F.to_json(F.struct(col.alias("v")), options)  # {"v":...}: the value is the text after
            text = one.substr(F.lit(6), F.length(one) - F.lit(6))
        pieces.append(F.concat(F.lit(json.dumps(field.name) + ":"), text))
    return df.select(F.concat(F.lit("{"), F.concat_ws(",", *pieces), F.lit("}")).alias("value"))


def kafka_values(df, name):
    """One JSON message per row (``value``, ``json_lines``); a side output's (dead letters, late rows) cut
    to fit Kafka."""
    lines = json_lines(df, name)
    if is_side(name):  # a Python function, on side outputs only: their rows are few
        return lines.select(F.udf(fit_kafka_value, "string")(F.col("value")).alias("value"))
    return lines


def is_side(name):
    """Whether an output (by its name) is a side output: dead letters or late rows."""
    return name.endswith(("_dead_letter", "_late"))


def write_stream(df, name, args):
    """Start the streaming query that writes one output (its own checkpoint directory)."""
    if args.sink == "kafka":  # one JSON message per row
        df = kafka_values(df, name)
    elif args.sink == "files" and args.format == "json":
        df = json_lines(df, name)
    else:  # Parquet files, JDBC tables: json fields stay JSON text, valid JSON
        df = finite_json_columns(df, name)
    writer = _writer(df, name, args)
    if args.sink == "kafka":
        return (
            writer.format("kafka")
            .option("kafka.bootstrap.servers", args.kafka_bootstrap)
            .option("topic", f"{args.output_topic_prefix}{name}")
            .start()
        )
    if args.sink == "jdbc":
        url = os.environ[args.jdbc_url_env]  # secrets by reference: the URL (with credentials) comes from the environment

        def write_batch(batch, _batch_id):
            batch.write.mode("append").jdbc(url, f"{args.jdbc_table_prefix}{name}")

        return writer.foreachBatch(write_batch).start()
    if args.format == "json":  # the rows' JSON texts (json_lines), one per line
        return writer.format("text").option("path", f"{args.output.rstrip('/')}/{name}").start()
    return writer.format(args.format).option("path", f"{args.output.rstrip('/')}/{name}").start()


def session(app_name=None):
    """The job's SparkSession: UTC session time zone (window bounds and timestamps are UTC)."""
    return (
        SparkSession.builder.appName(app_name or PIPELINE_NAME)
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="directory or glob of files of raw JSON lines (one record per line)")
    source.add_argument("--kafka-bootstrap", help="Kafka (or Event Hubs: NAMESPACE.servicebus.windows.net:9093)")
    source.add_argument("--kinesis-stream", help="Kinesis stream name (see --kinesis-format, --region)")
    source.add_argument("--pubsub-subscription", help="projects/P/subscriptions/S (Databricks' pubsub source)")
    parser.add_argument("--topic", help="Kafka / Event Hubs topic (or the Pub/Sub topic id)")
    parser.add_argument(
        "--eventhubs-connection-env",
        help="name of the environment variable holding the Event Hubs connection string (never the string)",
    )
    parser.add_argument("--kinesis-format", choices=("databricks", "awslabs"), default="databricks")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--output", help="directory (or s3://, abfss://, dbfs:/ prefix) for --sink files")
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (one sub-directory per output)")
    parser.add_argument("--sink", choices=("files", "kafka", "jdbc"), default="files")
    parser.add_argument("--format", choices=("json", "parquet"), default="json", help="file format of --sink files")
    parser.add_argument("--output-topic-prefix", default=PIPELINE_NAME + ".", help="--sink kafka: topic per output")
    parser.add_argument("--jdbc-url-env", default="JDBC_URL", help="--sink jdbc: variable holding the JDBC URL")
    parser.add_argument("--jdbc-table-prefix", default="", help="--sink jdbc: table name prefix")
    parser.add_argument("--available-now", action="store_true", help="process what is there, then stop")
    parser.add_argument("--trigger-interval", default=None, help="micro-batch interval, e.g. '10 seconds'")
    parser.add_argument("--max-files-per-trigger", type=int, default=None, help="--input: files per micro-batch")
    parser.add_argument(
        "--outputs", default=None, help="comma-separated stream references to write (default: OUTPUTS)"
    )
    args = parser.parse_args(argv)
    if args.sink == "files" and not args.output:
        parser.error("--sink files needs --output DIR")
    if args.kafka_bootstrap and not args.topic:
        parser.error("--kafka-bootstrap needs --topic")
    return args


def write_tagged(df, anchor, refs, args):
    """Start the one streaming query of a run of detector steps: its operator returns every output tagged
    with ``_output``, and each micro-batch is split into the outputs (one state, computed once).

    Files go to ``OUTPUT/<output>/batch=<id>`` (rewritten whole if Spark retries the batch, so exactly
    once); Kafka and JDBC get the rows appended (at least once on a retry)."""
    from pyspark import StorageLevel

    def write_batch(batch, batch_id):
        batch.persist(StorageLevel.MEMORY_AND_DISK)
        present = {r["_output"] for r in batch.select("_output").distinct().collect()}
        for ref in refs:
            if ref not in present:
                continue
            name = OUTPUTS.get(ref, ref.replace(".", "_"))
            part = batch.where(F.col("_output") == ref).select(*[F.col(a).alias(b) for a, b in SPLIT[ref]])
            if args.sink == "kafka":
                (
                    kafka_values(part, name)
                    .write.format("kafka")
                    .option("kafka.bootstrap.servers", args.kafka_bootstrap)
                    .option("topic", f"{args.output_topic_prefix}{name}")
                    .save()
                )
            elif args.sink == "jdbc":
                table = f"{args.jdbc_table_prefix}{name}"
                finite_json_columns(part, name).write.mode("append").jdbc(os.environ[args.jdbc_url_env], table)
            else:
                where = f"{args.output.rstrip('/')}/{name}/batch={batch_id:010d}"
                if args.format == "json":  # the rows' JSON texts (json_lines), one per line
                    json_lines(part, name).write.mode("overwrite").text(where)
                else:
                    finite_json_columns(part, name).write.mode("overwrite").format(args.format).save(where)
        batch.unpersist()

    return _writer(df, anchor, args).foreachBatch(write_batch).start()


def start(spark, args):
    """Build the streams and start one query per output (one per run of detector steps, for all its
    outputs: ``write_tagged``); returns the queries by stream reference."""
    raw, column, split = read_raw(spark, args)
    streams = build(raw, column, split)
    wanted = args.outputs.split(",") if args.outputs else list(OUTPUTS)
    queries = {}
    tagged = {}
    for ref in wanted:
        if ref in SEGMENT_OF:
            tagged.setdefault(SEGMENT_OF[ref], []).append(ref)
            continue
        name = OUTPUTS.get(ref, ref.replace(".", "_"))
        queries[ref] = write_stream(streams[ref], name, args)
    for anchor, refs in tagged.items():
        query = write_tagged(streams["@" + anchor], anchor, refs, args)
        queries.update(dict.fromkeys(refs, query))
    return queries


def main(argv=None):
    args = parse_args(argv)
    spark = session()
    queries = start(spark, args)
    for q in queries.values():
        q.awaitTermination()
'''

# last in the module: spark-submit runs it as __main__, and main() needs build(), written after _RUNTIME
_MAIN = """

if __name__ == "__main__":
    main()
"""


def _interval(ns: int) -> str:
    """A Spark interval string of a duration in nanoseconds (microsecond resolution)."""
    if ns % 1_000_000 == 0:
        return f"{ns // 1_000_000} milliseconds"
    return f"{ns // 1_000} microseconds"


def _touch(w: SessionWindow) -> int:
    """How much shorter the Spark job's session gap is (ns): Spark merges two sessions that touch (an event
    exactly ``gap`` after the last), where streamlab's session is ``[first, last + gap)``; one microsecond,
    Spark's resolution, unless the gap is not longer than that."""
    return 1_000 if w.gap_ns >= 2_000 else 0


def _interval_sql(ns: int) -> str:
    if ns % 1_000_000 == 0:
        return f"INTERVAL {ns // 1_000_000} MILLISECONDS"
    return f"INTERVAL {ns // 1_000} MICROSECONDS"


class _Generator:
    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.types = spark_types(p)
        # detector, feature, rule and drift steps: rows carry their arrival sequence (_src, _seq) to them
        # dedup steps that run streamlab's rule (rule_dedups): they read rows in arrival order too
        self.rule_dedups = rule_dedups(p)
        # windows with first/last: their ties in event time go to the earliest (latest) arrival, as in streamlab
        self.ordered = any(_is_row_step(s) or _takes_first_or_last(s) for s in p.steps.values()) or bool(
            self.rule_dedups
        )
        self.with_order: set[str] = set()  # streams that carry _src and _seq
        self.row_steps = False
        self.member = segments(p)  # step -> the first step of its run of detector steps
        self.split: dict[str, tuple[str, list[tuple[str, str]]]] = {}  # output -> (its run, columns)
        self.tagged: dict[str, str] = {}  # run (first step) -> its tagged DataFrame
        self.parse: ParseStep = next(s for s in p.steps.values() if isinstance(s, ParseStep))
        # dead_letter_row brings fit_message, which cuts Kafka side outputs; dump_json the row encoding
        # (finite_json_texts' _plain)
        self.snippets: set[str] = {"dead_letter_row", "dump_json"}
        self.consts: list[str] = []
        self.user_imports: list[str] = []
        self.user_code: list[str] = []
        self.user_fns: dict[str, str] = {}
        self.body: list[str] = []
        self.streams: list[str] = []
        self.time_of: dict[str, str | None] = {}  # stream reference -> its END_OF_INPUT time column
        # streams that already carry a watermark (Spark allows one per chain): ref -> (column, delay ns,
        # the step that defined it)
        self.watermark: dict[str, tuple[str | None, int, str]] = {}
        # steps that close on their chain's watermark, whose delay is not theirs: step -> (the step that
        # defined it, its delay ns, the step's own delay ns)
        self.inherited: dict[str, tuple[str, int, int]] = {}

    def emit(self, line: str = "") -> None:
        self.body.append(("    " + line) if line else "")

    def var(self, ref: str) -> str:
        return _plan.step_ref_name(ref)

    def add(self, ref: str) -> None:
        self.streams.append(ref)

    def fields_of(self, ref: str) -> list[str]:
        return list(self.types.get(ref, {})) + (["_src", "_seq"] if ref in self.with_order else [])

    def step(self, step: Any) -> None:
        sid = step.step_id
        v = self.var(sid)
        src = self.var(step.inputs[0]) if step.inputs else "raw"
        tin = self.time_of.get(step.inputs[0]) if step.inputs else None
        wm_in = self.watermark.get(step.inputs[0]) if step.inputs else None
        if wm_in is not None and isinstance(step, (FilterStep, KeyByStep)):
            self.watermark[sid] = wm_in
        if wm_in is not None and isinstance(step, SelectStep):
            self.watermark[sid] = (dict(step.columns).get(wm_in[0] or ""), wm_in[1], wm_in[2])
        if sid in self.member:
            if self.member[sid] == sid:
                self._segment(sid)
            return
        if isinstance(step, SourceStep):
            self.time_of[sid] = None
            return
        if isinstance(step, ParseStep):
            fields = tuple((f.name, f.type, f.path) for f in step.fields)
            req = tuple(dict.fromkeys(((step.time,) if step.time else ()) + step.required))
            c = _plan.ident(sid).upper()
            self.consts += [_plan.const(f"{c}_FIELDS", fields), _plan.const(f"{c}_REQUIRED", req)]
            ddl = ", ".join(f"`{f.name}` {_SPARK[f.type]}" for f in step.fields)
            self.consts.append(
                _plan.const(
                    f"{c}_SCHEMA",
                    f"{ddl}, `_ok` BOOLEAN, `_raw` STRING, `_reason` STRING, `_src` STRING, `_seq` BIGINT",
                )
            )
            names = ", ".join(repr(f.name) for f in step.fields)
            if self.ordered:
                names += ", '_src', '_seq'"
                self.with_order.add(sid)
            self.emit(f"{v} = raw.mapInArrow(")
            self.emit("    lambda batches: parse_batches(")
            self.emit(
                f"        batches, column, split, {sid!r}, {c}_FIELDS, {c}_REQUIRED, {step.max_record_bytes!r}"
            )
            self.emit("    ),")
            self.emit(f"    {c}_SCHEMA,")
            self.emit(")")
            dl = self.var(sid + ".dead_letter")
            self.emit(
                f'{dl} = {v}.where(~F.col("_ok")).select('
                f'F.col("_raw").alias({RAW!r}), F.col("_reason").alias({REASON!r}), F.lit({sid!r}).alias({STEP_ID!r}))'
            )
            self.emit(f'{v} = {v}.where(F.col("_ok")).select({names})')
            self.time_of[sid] = step.time
            self.time_of[sid + ".dead_letter"] = None
            self.add(sid)
            self.add(sid + ".dead_letter")
        elif isinstance(step, FilterStep):
            if step.expr is not None:
                # streamlab's filter: a missing string is a missing value of its type (``s.str.contains``
                # is missing, not an error), and a missing answer drops the row (as Beam and Lambda)
                self.snippets.add("filter_keeps")
                types = self.types.get(step.inputs[0], {})
                numeric, typed = _plan.numeric_columns(types), _plan.typed_columns(types)
                decode = filter_reads(types, step.expr)
                row = f"json_values(row, {decode!r})" if decode else "row"
                pred = f"lambda row: filter_keeps({step.expr!r}, {row}, {numeric!r}, {typed!r})"
                what = f"filter {step.expr!r}"
            else:
                assert step.fn is not None
                if not step.per_event:
                    raise _plan.unsupported(
                        step,
                        "Spark",
                        "filter_many (a function of a whole batch) is not translated",
                        "use filter_one(fn) or a filter expression, or export to Beam",
                    )
                pred = self._fn(step.fn, sid, "filter")
                what = f"filter_one({step.fn.name})"
            cols = self.fields_of(step.inputs[0])
            self.emit(f"{v}_arrow = arrow_schema({src}.schema)")
            self.emit(f"{v} = {src}.mapInArrow(")
            self.emit(
                f"    lambda batches, schema={v}_arrow: filter_batches(batches, schema, {what!r}, {pred}, {tin!r}),"
            )
            self.emit(f"    with_flags({src}.schema),")
            self.emit(")")
            dl = self.var(sid + ".dead_letter")
            self.emit(
                f'{dl} = {v}.where(~F.col("_ok")).select(F.col("_reason").alias({REASON!r}), '
                f"F.lit({sid!r}).alias({STEP_ID!r}), *{cols!r})"
            )
            self.emit(f'{v} = {v}.where(F.col("_ok")).select(*{cols!r})')
            if step.inputs[0] in self.with_order:
                self.with_order.add(sid)
            self.time_of[sid] = tin
            self.time_of[sid + ".dead_letter"] = None
            self.add(sid)
            self.add(sid + ".dead_letter")
        elif isinstance(step, SelectStep):
            sel = ", ".join(f"F.col({old!r}).alias({new!r})" for old, new in step.columns)
            if step.inputs[0] in self.with_order:
                sel += ", '_src', '_seq'"
                self.with_order.add(sid)
            mapping = dict(step.columns)
            if tin and tin not in mapping:  # the END_OF_INPUT row is known by its time: it stops here
                src = f"real_rows({src}, {tin!r})"
            self.emit(f"{v} = {src}.select({sel})")
            self.time_of[sid] = mapping.get(tin) if tin else None
            self.add(sid)
        elif isinstance(step, KeyByStep):
            self.emit(f"{v} = {src}  # key_by {list(step.keys)}: windows below group by these columns")
            if step.inputs[0] in self.with_order:
                self.with_order.add(sid)
            self.time_of[sid] = tin
        elif isinstance(step, DedupStep):
            if sid in self.rule_dedups:
                self._dedup_rule(step, v, src, tin)
            elif step.time and step.ttl_ns is not None:
                # another applyInPandasWithState shares the query (Spark allows one), so not streamlab's
                # rule: the ttl is the watermark's delay, and Spark forgets an id once the watermark
                # passes its first event time + the delay. The watermark moves between micro-batches
                # only: a repeat more than the ttl after the first occurrence, in the same micro-batch,
                # is dropped here and passes in streamlab (verify says so in its notes)
                watermarked = self._watermarked(step, src, step.inputs[0], step.time, step.ttl_ns, 0)
                self.emit(
                    f"# {sid}: dropDuplicatesWithinWatermark, not streamlab's rule: {DEDUP_FALLBACK_WHY}"
                )
                self.emit(self._drop_duplicates(step, v, watermarked, "dropDuplicatesWithinWatermark"))
                self.watermark[sid] = wm_in or (step.time, step.ttl_ns, sid)
            else:
                self.emit(f"# {sid}: dropDuplicates, not streamlab's rule: {DEDUP_FALLBACK_WHY}")
                self.emit(self._drop_duplicates(step, v, src, "dropDuplicates"))
            if step.inputs[0] in self.with_order:
                self.with_order.add(sid)
            self.time_of[sid] = tin
            self.add(sid)
        elif isinstance(step, WindowStep):
            self._window(step, v, src, tin)
        elif isinstance(step, IntervalJoinStep):
            self._join(step, v)
        elif isinstance(step, SinkStep):
            return
        elif _plan.is_pattern_step(step):
            self._pattern(step, v, src)
        elif isinstance(step, MapStep):
            self._map(step, v, src)
        else:  # pragma: no cover - check() rejects the rest
            raise _plan.unsupported(step, "Spark", "not translated", "remove it")

    def _fn(self, fn: Any, sid: str, kind: str) -> str:
        code = _plan.function_code(fn, sid, kind)
        for imp in code.imports:
            if imp not in self.user_imports:
                self.user_imports.append(imp)
        if code.source:
            self.user_code.append(
                f"# step {sid!r}: the user's function, copied from the notebook\n{code.source}"
            )
        # build() names its DataFrames after the steps, which may be the functions' names: it reaches
        # the functions through this table
        self.user_fns[sid] = code.name
        return f"USER_FUNCTIONS[{sid!r}]"

    def _agg(self, a: Any, step: WindowStep, numbers: tuple[str, ...] = ()) -> str:
        name = a.name
        kind = type(a).__name__.removesuffix("Aggregator").lower()
        if kind in _SIMPLE_AGGS and a.column in numbers:  # a json/object field, read as streamlab reads it
            read = f"F.col({'_num_' + a.column!r})"
            if kind == "sum":
                return f"F.coalesce(F.sum({read}), F.lit(0.0)).alias({name!r})"
            return f"{_SIMPLE_AGGS[kind]}({read}).alias({name!r})"
        if isinstance(a, CountAggregator):
            inner = "F.lit(1)" if a.column is None else f"F.col({a.column!r})"
            return f"F.count({inner}).alias({name!r})"
        kind = type(a).__name__.removesuffix("Aggregator").lower()
        if kind == "sum":
            return f"F.coalesce(F.sum(F.col({a.column!r}).cast('double')), F.lit(0.0)).alias({name!r})"
        if kind in _SIMPLE_AGGS:
            return f"{_SIMPLE_AGGS[kind]}(F.col({a.column!r}).cast('double')).alias({name!r})"
        if kind in ("first", "last"):
            fn = "F.min_by" if kind == "first" else "F.max_by"
            # by event time, then arrival (the file's order and line, a partition's offset), as streamlab
            order = f"F.col({step.time!r})"
            if step.inputs[0] in self.with_order:
                order = f"F.struct({order}, F.col('_src'), F.col('_seq'))"
            return f"{fn}(F.col({a.column!r}), {order}).alias({name!r})"
        raise PipelineConfigError(
            step.step_id,
            "window",
            f"cannot export to Spark: aggregator {name!r} ({kind}) has no streaming equivalent here "
            "(distinct counts and exact quantiles are not streaming aggregations in Spark)",
            "use count, sum, mean, min, max, first or last, or export to Beam",
        )

    def _window(self, step: WindowStep, v: str, src: str, tin: str | None) -> None:
        sid = step.step_id
        w = step.window
        if isinstance(w, TumblingWindow):
            start = f", startTime={_interval(w.offset_ns % w.size_ns)!r}" if w.offset_ns % w.size_ns else ""
            size = _interval(w.size_ns)
            fn = f"F.window({step.time!r}, {size!r}, {size!r}{start})"
        elif isinstance(w, SlidingWindow):
            start = f", startTime={_interval(w.offset_ns % w.every_ns)!r}" if w.offset_ns % w.every_ns else ""
            fn = f"F.window({step.time!r}, {_interval(w.size_ns)!r}, {_interval(w.every_ns)!r}{start})"
        else:
            assert isinstance(w, SessionWindow)
            # a session is [first, last + gap): an event at last + gap starts a new one (as Beam's Sessions);
            # Spark merges sessions that touch, so it gets a gap 1 microsecond shorter and the end back
            fn = f"F.session_window({step.time!r}, {_interval(w.gap_ns - _touch(w))!r})"
        kinds = self.types.get(step.inputs[0], {})
        decode = tuple(c for c, k in kinds.items() if k in ("json", "object"))
        checks = tuple(
            c for c in _plan.unfit_checks(step) if c[2]
        )  # numeric ones: Spark has no count_distinct
        numbers = tuple(dict.fromkeys(col for _, col, _ in checks if col in decode))
        unfit = bool(numbers) or any(k in decode for k in step.keys)
        aggs = ", ".join(self._agg(a, step, numbers) for a in step.aggs)
        keys = ", ".join(repr(k) for k in step.keys)
        cols = self.fields_of(step.inputs[0])
        t = step.time
        dl = self.var(sid + ".dead_letter")
        reason = unreadable_time_reason(t)
        required_time = tin == t and t == self.parse.time
        dead = []
        if unfit:
            # streamlab sets aside (on the window's dead letters) a key that is an object or an array and a
            # value its numeric aggregators cannot read, before the event time
            self.emit(f"{v}_arrow = arrow_schema({src}.schema)")
            self.emit(f"{v}_fit = {src}.mapInArrow(")
            self.emit(
                f"    lambda batches, schema={v}_arrow: unfit_batches(batches, schema, {tuple(step.keys)!r}, "
                f"{checks!r}, {decode!r}, {numbers!r}),"
            )
            self.emit(f"    unfit_schema({src}.schema, {numbers!r}),")
            self.emit(")")
            self.emit(
                f"{dl}_unfit = {v}_fit.where(~F.col('_ok')).select("
                f"F.col('_reason').alias('reason'), F.lit({sid!r}).alias('step_id'), *{cols!r})"
            )
            dead.append(f"{dl}_unfit")
            src = f"{v}_fit.where(F.col('_ok'))"
        if not required_time:  # the parse step's event time is required: never missing here
            self.emit(
                f"{dl}_time = {src}.where(F.col({t!r}).isNull()).select("
                f"F.lit({reason!r}).alias('reason'), F.lit({sid!r}).alias('step_id'), *{cols!r})"
            )
            dead.append(f"{dl}_time")
        if dead:
            self.emit(f"{dl} = {'.unionByName('.join(dead)}{')' * (len(dead) - 1)}")
        reach = w.gap_ns if isinstance(w, SessionWindow) else w.size_ns
        watermarked = self._watermarked(step, src, step.inputs[0], t, step.delay_ns + step.lateness_ns, reach)
        self.emit(f"{v} = (")
        self.emit(f"    real_rows({watermarked}, {t!r})")
        self.emit(f"    .groupBy({fn}.alias('w'){', ' + keys if keys else ''})")
        self.emit(f"    .agg({aggs})")
        names = ", ".join(repr(a.name) for a in step.aggs)
        end = "F.col('w.end')"
        if isinstance(w, SessionWindow) and _touch(w):
            end = "(F.col('w.end') + F.expr('INTERVAL 1 MICROSECOND'))"
        self.emit(
            f"    .select({keys + ', ' if keys else ''}F.col('w.start').alias('window_start'), "
            f"{end}.alias('window_end'), {names})"
        )
        self.emit(")")
        self.time_of[sid] = None
        self.add(sid)
        if dead:
            self.time_of[sid + ".dead_letter"] = None
            self.add(sid + ".dead_letter")

    def _pattern(self, step: OperatorStep, v: str, src: str) -> None:
        """A pattern step: its key's events and open candidates in Spark's group state."""
        from streamlab.export.spark_pattern import rule_source

        sid, cfg = step.step_id, step.config
        steps = [(s.name, s.times, dict(s.differs_from)) for s in cfg.steps]
        c = _plan.ident(sid).upper()
        fn = f"pattern_{_plan.ident(sid)}"
        if "def advance(" not in "\n".join(self.user_code):
            self.user_code.append(
                "# streamlab's pattern rule (streamlab.export.spark_pattern), copied\n" + rule_source()
            )
        self.consts += [
            _plan.const(f"{c}_STEPS", steps),
            _plan.const(f"{c}_WHERE", [s.where for s in cfg.steps]),
            f"{c}_WITHIN_NS = {parse_duration(cfg.within)!r}",
            _plan.const(f"{c}_COLUMNS", (cfg.key, cfg.time, cfg.id_column)),
            _plan.const(f"{c}_VALUE_COLUMNS", sorted({col for s in cfg.steps for col in s.differs_from})),
            f"{c}_NAME = {cfg.name!r}",
        ]
        self.snippets.add("json_default")
        self.user_code.append(_PATTERN_FN.replace("@FN@", fn).replace("@C@", c).replace("@SID@", repr(sid)))
        key_type = _SPARK.get(self.types.get(step.inputs[0], {}).get(cfg.key, "string"), "STRING")
        out = (
            f"`{cfg.key}` {key_type}, `pattern` STRING, `first_time` TIMESTAMP, `last_time` TIMESTAMP, "
            "`event_ids` ARRAY<STRING>, `n_events` BIGINT"
        )
        t = cfg.time
        # streamlab's dead letters of a pattern step: the row, then why (its key first), then the step
        types = self.types.get(step.inputs[0], {})
        no_key = f"F.col({cfg.key!r}).isNull()"
        if types.get(cfg.key) == "float64":
            no_key = f"({no_key} | F.isnan({cfg.key!r}))"
        bad = f"{no_key} | F.col({t!r}).isNull()"
        reason = (
            f"F.when({no_key}, F.lit({f'key column {cfg.key!r} is missing'!r}))"
            f".otherwise(F.lit({unreadable_time_reason(t)!r}))"
        )
        tin = self.time_of.get(step.inputs[0])
        self.emit(
            f"{self.var(sid + '.dead_letter')} = real_rows({src}, {tin!r}).where({bad}).select("
            f"*{self.fields_of(step.inputs[0])!r}, {reason}.alias({REASON!r}), F.lit({sid!r}).alias({STEP_ID!r}))"
        )
        watermarked = self._watermarked(step, src, step.inputs[0], t, parse_duration(cfg.delay), 0)
        self.emit("from pyspark.sql.streaming.state import GroupStateTimeout")
        self.emit(f"{v} = (")
        self.emit(f"    real_rows({watermarked}, {t!r})")
        self.emit(f"    .where(~({bad}))")
        self.emit(f"    .groupBy({cfg.key!r})")
        self.emit(
            f"    .applyInPandasWithState({fn}, {out!r}, 'state STRING', 'append', GroupStateTimeout.EventTimeTimeout)"
        )
        self.emit(")")
        self.time_of[sid] = None
        self.time_of[sid + ".dead_letter"] = None
        self.add(sid)
        self.add(sid + ".dead_letter")

    def _carry_row_code(self) -> None:
        """The per-record code of detector steps (``streamlab._detector_record``), once."""
        if self.row_steps:
            return
        self.row_steps = True
        self.snippets.add("eval_expr")
        self.user_code.append(
            "# streamlab's per-record detectors, features, rules and drift (streamlab._detector_record), copied\n"
            "import bisect  # noqa: E402\n"
            "from collections import OrderedDict, deque  # noqa: E402\n\n"
            + _detectors.detector_record_source()
        )

    def _carry_group_functions(self) -> None:
        """Spark's side of detector and with_columns steps (``streamlab.export.spark_detectors``), once."""
        from streamlab.export.spark_detectors import GROUP_FUNCTIONS

        self.snippets.update({"eval_expr", "filter_keeps"})
        if "def spark_rows(" not in "\n".join(self.user_code):
            self.user_code.append(
                "# Spark's side of them (streamlab.export.spark_detectors), copied" + GROUP_FUNCTIONS
            )

    def _tagged_schema(self, sid: str, columns: dict[str, str], extra: dict[str, str]) -> list[str]:
        """Constants of a Spark operator that returns several streams tagged with ``_output``:
        ``<C>_COLUMNS`` (names), ``<C>_TIMES`` (timestamp columns) and ``<C>_SCHEMA`` (DDL)."""
        union = {"_output": "string", **columns}
        for name, kind in extra.items():
            union.setdefault(name, kind)
        c = _plan.ident(sid).upper()
        ddl = ", ".join(
            f"`{n}` {'BIGINT' if n == '_seq' else _SPARK.get(k, 'STRING')}" for n, k in union.items()
        )
        times = [n for n, k in union.items() if k == "timestamp"]
        self.consts += [
            _plan.const(f"{c}_COLUMNS", list(union)),
            _plan.const(f"{c}_TIMES", times),
            _plan.const(f"{c}_SCHEMA", ddl),
        ]
        return list(union)

    def _segment(self, anchor: str) -> None:
        """A run of detector, feature, rule and drift steps (with the with_columns, filter and select
        steps after them) as one ``applyInPandasWithState``: Spark allows one per query, so the steps
        share it, their machines pickled together in the group's state (``spark_detectors``)."""
        p = self.p
        members = [sid for sid, a in self.member.items() if a == anchor]
        root = p.steps[anchor]
        root_ref = root.inputs[0]
        if root_ref not in self.with_order:
            raise _plan.unsupported(
                root,
                "Spark",
                f"its input {root_ref!r} (a window or join result) has no arrival sequence, which its "
                "per-record state needs",
                "put the step before the window or join, or export to Beam",
            )
        self._carry_row_code()
        self._carry_group_functions()
        plan: list[tuple[str, str, str, Any]] = []
        keys: set[str | None] = set()
        for sid in members:
            step = p.steps[sid]
            source = "" if sid == anchor else step.inputs[0]
            if isinstance(step, OperatorStep):  # a row step (a pattern cannot follow one: segments())
                plan.append((sid, "row", source, _detectors.row_step_spec(step.config, sid)))
                keys.add(_detectors.state_key(step.config))
            elif isinstance(step, MapStep):
                what = "with_columns(" + ", ".join(f"{k}={e!r}" for k, e in step.columns) + ")"
                mapped: dict[str, Any] = {"exprs": list(step.columns), "what": what}
                plan.append((sid, "map", source, mapped | self._eval_keywords(step)))
            elif isinstance(step, FilterStep):
                if step.expr is None:
                    assert step.fn is not None
                    if not step.per_event:
                        raise _plan.unsupported(
                            step,
                            "Spark",
                            "filter_many (a function of a whole batch) is not translated",
                            "use filter_one(fn) or a filter expression, or export to Beam",
                        )
                    self._fn(step.fn, sid, "filter")
                    what = f"filter_one({step.fn.name})"
                else:
                    what = f"filter {step.expr!r}"
                types = self.types.get(step.inputs[0], {})
                conf: dict[str, Any] = {"expr": step.expr, "what": what}
                conf |= {"numeric": _plan.numeric_columns(types), "typed": _plan.typed_columns(types)}
                if step.expr is not None:
                    conf["decode"] = filter_reads(types, step.expr)
                plan.append((sid, "filter", source, conf))
            elif isinstance(step, SelectStep):
                plan.append((sid, "select", source, list(step.columns)))
            else:
                plan.append((sid, "pass", source, None))
        outputs = _plan.sink_outputs(p)
        wanted = [
            ref
            for sid in members
            for name in p.steps[sid].outputs
            if (ref := sid if name == "out" else f"{sid}.{name}") in outputs
        ]
        columns: dict[str, str] = {}
        for ref in wanted:
            kinds = self.types.get(ref, {})
            if ref.endswith(".drift"):
                kinds = {f"_drift_{n}": k for n, k in kinds.items()}
            for n, k in kinds.items():
                if columns.setdefault(n, k) != k and {columns[n], k} != {"int64", "float64"}:
                    raise _plan.unsupported(
                        p.steps[ref.split(".")[0]],
                        "Spark",
                        f"column {n!r} is {columns[n]} in one output and {k} in another of the steps that "
                        "share one Spark operator",
                        "rename the column with select or with_columns",
                    )
        c = _plan.ident(anchor).upper()
        self._tagged_schema(anchor, columns, {"_src": "string", "_seq": "int64"})
        self.consts += [_plan.const(f"{c}_PLAN", plan), _plan.const(f"{c}_WANTED", wanted)]
        key = next(iter(keys)) if len(keys) == 1 else None
        v = self.var(anchor) + "_all"
        tin = self.time_of.get(root_ref)
        self.emit(f"# steps {', '.join(members)}: one applyInPandasWithState (Spark allows one per query)")
        self.emit("from pyspark.sql.streaming.state import GroupStateTimeout")
        self.emit(f"{v} = (")
        self.emit(f"    real_rows({self.var(root_ref)}, {tin!r})")
        if key is None:  # a step's state spans all keys: one group
            self.emit("    .withColumn('_group', F.lit(''))")
        self.emit(f"    .groupBy({key or '_group'!r})")
        self.emit("    .applyInPandasWithState(")
        self.emit(
            f"        lambda _key, frames, state: run_segment({c}_PLAN, {c}_WANTED, {c}_COLUMNS, {c}_TIMES, "
            "state, frames),"
        )
        self.emit(f"        {c}_SCHEMA, 'machines STRING', 'append', GroupStateTimeout.NoTimeout,")
        self.emit("    )")
        self.emit(")")
        for ref in wanted:
            kinds = self.types.get(ref, {})
            pairs = [(f"_drift_{n}" if ref.endswith(".drift") else n, n) for n in kinds]
            self.split[ref] = (anchor, pairs)
            sel = ", ".join(f"F.col({a!r}).alias({b!r})" for a, b in pairs)
            self.emit(f"{self.var(ref)} = {v}.where(F.col('_output') == {ref!r}).select({sel})")
            self.time_of[ref] = None  # the end-of-input row stops before these steps (see spark_detectors)
            self.add(ref)
        self.tagged[anchor] = v

    def _drop_duplicates(self, step: DedupStep, v: str, src: str, method: str) -> str:
        """``v = src.<method>([id])``; on an id of JSON text (a json or object field) by its text with
        sorted keys, as streamlab tells objects apart (the job keeps the record's key order)."""
        kind = self.types.get(step.inputs[0], {}).get(step.id_column)
        if kind not in ("json", "object"):
            return f"{v} = {src}.{method}([{step.id_column!r}])"
        col = "`" + step.id_column.replace("`", "``") + "`"
        return (
            f"{v} = {src}.withColumn('_dedup_id', sorted_json(F.col({col!r})))"
            f".{method}(['_dedup_id']).drop('_dedup_id')"
        )

    def _dedup_rule(self, step: DedupStep, v: str, src: str, tin: str | None) -> None:
        """A dedup as streamlab's own rule (``Dedup``, copied into the module) in one
        ``applyInPandasWithState`` group: every row in arrival order, the rule pickled into the group's
        state. The rows travel through pandas packed (``pack_rows``), so their values stay exact."""
        sid = step.step_id
        if "def first_occurrences(" not in "\n".join(self.user_code):
            self.user_code.append("# the dedup steps' side of Spark, copied" + _DEDUP_FN)
        c = _plan.ident(sid).upper()
        kind = self.types.get(step.inputs[0], {}).get(step.id_column, "object")
        settings = (step.id_column, kind, step.time, tin, step.ttl_ns, step.max_ids)
        self.consts.append(_plan.const(f"{c}_RULE", settings))
        self.emit(f"# {sid}: streamlab's dedup rule in one applyInPandasWithState group, in arrival order")
        self.emit("from pyspark.sql.streaming.state import GroupStateTimeout")
        self.emit(f"{v}_schema = {src}.schema")
        self.emit(f"{v}_arrow = arrow_schema({v}_schema)")
        self.emit(f"{v} = (")
        self.emit(f"    {src}.mapInArrow(pack_rows, PACKED_SCHEMA)")
        self.emit("    .groupBy('_group')")
        self.emit("    .applyInPandasWithState(")
        self.emit(f"        lambda _key, frames, state: first_occurrences(frames, state, *{c}_RULE),")
        self.emit("        '`_row` BINARY', 'rule STRING', 'append', GroupStateTimeout.NoTimeout,")
        self.emit("    )")
        self.emit(
            f"    .mapInArrow(lambda batches, schema={v}_arrow: unpack_rows(batches, schema), {v}_schema)"
        )
        self.emit(")")

    def _eval_keywords(self, step: MapStep) -> dict[str, Any]:
        """``eval_columns``' keywords for a ``with_columns`` step: the input's numeric and typed columns,
        with which a row is evaluated as streamlab reads it (``eval_expr``), and for a step that reads a
        json or object field, those fields and the columns computed from them (``json_reads``: row by
        row, with the field's values read back and the computed columns written as JSON text)."""
        types = self.types.get(step.inputs[0], {})
        decode, encode = json_reads(types, tuple(step.columns))
        numeric, typed = _plan.numeric_columns(types), _plan.typed_columns(types)
        json = {"decode": decode, "encode": encode} if decode or encode else {}
        return {"numeric": numeric, "typed": typed, **json}

    def _map(self, step: MapStep, v: str, src: str) -> None:
        """``with_columns``: pandas expressions on each Arrow batch, failing rows to ``dead_letter``."""
        sid, inp = step.step_id, step.inputs[0]
        self._carry_group_functions()
        c = _plan.ident(sid).upper()
        columns = tuple(step.columns)
        what = "with_columns(" + ", ".join(f"{k}={e!r}" for k, e in columns) + ")"
        self.consts.append(_plan.const(f"{c}_EXPRS", columns))
        in_types, out_types = self.types.get(inp, {}), self.types.get(sid, {})
        order = {"_src": "string", "_seq": "int64"} if inp in self.with_order else {}
        self._tagged_schema(sid, out_types, {"reason": "string", "step_id": "string", **in_types, **order})
        tin = self.time_of.get(inp)
        self.consts.append(_plan.const(f"{c}_EVAL", self._eval_keywords(step)))
        # Arrow: the end-of-input row passes (unevaluated), so that a window after the step closes
        self.emit("from pyspark.sql.types import StructType")
        self.emit(f"{v}_arrow = arrow_schema(StructType.fromDDL({c}_SCHEMA))")
        self.emit(f"{v}_all = {src}.mapInArrow(")
        self.emit(
            f"    lambda batches, schema={v}_arrow: map_columns(batches, {sid!r}, {what!r}, {c}_EXPRS, "
            f"{c}_TIMES, {c}_COLUMNS, schema, {tin!r}, **{c}_EVAL),"
        )
        self.emit(f"    {c}_SCHEMA,")
        self.emit(")")
        self.emit(f"{v} = {v}_all.where(F.col('_output') == 'out').select(*{[*out_types, *order]!r})")
        if order:
            self.with_order.add(sid)
        dl = self.var(sid + ".dead_letter")
        cols = [REASON, STEP_ID, *in_types]
        self.emit(f"{dl} = {v}_all.where(F.col('_output') == 'dead_letter').select(*{cols!r})")
        self.time_of[sid] = tin if tin in out_types else None  # the end-of-input row passes it
        self.time_of[sid + ".dead_letter"] = None
        self.add(sid)
        self.add(sid + ".dead_letter")

    def _watermarked(self, step: Any, src: str, ref: str, column: str, delay_ns: int, reach_ns: int) -> str:
        """``src`` with the step's watermark, or as it is when its chain has one already (Spark allows
        one per chain; a second ``withWatermark`` fails with "Redefining watermark is disallowed"); then
        the step closes on the chain's, and where that delay is not its own the code says what differs.
        ``reach_ns``: how far after an event its results may still be open (a window's size)."""
        sid = step.step_id
        upstream = self.watermark.get(ref)
        self.watermark[sid] = (None, 0, sid)
        if upstream is None:
            return f"{src}.withWatermark({column!r}, {_interval(delay_ns)!r})"
        self._same_watermark(step, ref, column)
        _, chain_ns, origin = upstream
        if chain_ns != delay_ns:
            self.inherited[sid] = (origin, chain_ns, delay_ns)
            self.emit(
                f"# {sid}: runs on the watermark of {origin!r} ({_interval(chain_ns)} behind the latest event "
                f"time), not on its own ({_interval(delay_ns)}): Spark allows one watermark per chain"
            )
            if chain_ns > delay_ns:
                self.emit(
                    f"# so it still takes the rows streamlab reports late (behind {_interval(delay_ns)}, "
                    f"within {_interval(chain_ns)})"
                )
            if chain_ns < delay_ns + reach_ns:
                self.emit(
                    f"# and rows more than {_interval(chain_ns)} behind are dropped at {origin!r} although "
                    f"streamlab's {sid!r} may still take them"
                )
        return src

    def _same_watermark(self, step: Any, ref: str, column: str) -> None:
        upstream = self.watermark[ref]
        if upstream[0] is None:  # a window's, join's or pattern's output: its watermark is on no column
            raise _plan.unsupported(
                step,
                "Spark",
                f"its input comes out of {upstream[2]!r}, whose watermark governs this chain, and Spark "
                "allows one watermark per chain: an event-time step cannot follow a window, join or "
                "pattern there",
                f"run it on a branch that does not go through {upstream[2]!r}, or export to Beam or Flink",
            )
        if upstream[0] != column:
            raise _plan.unsupported(
                step,
                "Spark",
                f"its input already has a watermark (on {upstream[0]!r}) and Spark allows one per chain",
                f"use the same event-time column as the step before it, or put it on a branch that "
                f"does not go through {ref!r}",
            )

    def _join(self, step: IntervalJoinStep, v: str) -> None:
        sid = step.step_id
        left_ref, right_ref = step.inputs
        lv, rv = self.var(left_ref), self.var(right_ref)
        # the arrival sequence does not travel through a join (its rows pair two arrivals)
        lcols, rcols = list(self.types.get(left_ref, {})), list(self.types.get(right_ref, {}))
        lt, rt = step.left_time, step.right_time
        cond = [f"l.`{k}` = r.`{k}`" for k in step.on]
        cond += _plan.keyable_join_sql(step.on, self.types.get(left_ref, {}), "l")
        cond.append(f"r.`{rt}` >= l.`{lt}` + {_interval_sql(step.lower_ns)}")
        cond.append(f"r.`{rt}` <= l.`{lt}` + {_interval_sql(step.upper_ns)}")
        both = set(lcols) & set(rcols) - set(step.on)
        sel = [f"F.col('l.`{c}`').alias({(c + step.suffixes[0] if c in both else c)!r})" for c in lcols]
        sel += [
            f"F.col('r.`{c}`').alias({(c + step.suffixes[1] if c in both else c)!r})"
            for c in rcols
            if c not in step.on
        ]
        lw = self._watermarked(step, lv, left_ref, lt, step.delay_ns, 0)
        rw = self._watermarked(step, rv, right_ref, rt, step.delay_ns, 0)
        self.emit(f"{v} = (")
        self.emit(f"    {lw}.alias('l')")
        self.emit("    .join(")
        self.emit(f"        {rw}.alias('r'),")
        self.emit(f"        F.expr({' AND '.join(cond)!r}),")
        self.emit("        'inner',")
        self.emit("    )")
        self.emit("    .select(")
        for s in sel:
            self.emit(f"        {s},")
        self.emit("    )")
        self.emit(")")
        out_time = lt + step.suffixes[0] if lt in both else lt
        self.time_of[sid] = out_time
        self.add(sid)

    def module(self, module_name: str) -> str:
        for step in self.p.steps.values():
            self.step(step)
        text_body = "\n".join(self.body)
        self.emit_end = [
            "    streams = {}",
            *[
                f"    streams[{ref!r}] = real_rows({self.var(ref)}, {self.time_of.get(ref)!r})"
                + (".drop('_src', '_seq')" if self.ordered else "")
                for ref in self.streams
            ],
            *[f"    streams[{'@' + a!r}] = {v}" for a, v in self.tagged.items()],
            "    return streams",
        ]
        outputs = {r: n for r, n in _plan.sink_outputs(self.p).items() if r in self.streams}
        steps = " -> ".join(self.p.steps)
        kafka_pkg = _connectors()["kafka"]
        header = _HEADER.format(name=self.p.name, steps=steps, module=module_name, kafka_pkg=kafka_pkg)
        if self.row_steps or any(isinstance(s, MapStep) for s in self.p.steps.values()):
            from streamlab.export.spark_detectors import SEMANTICS

            header = header.replace(
                '\n"""\n\nfrom __future__', "\n" + SEMANTICS + '"""\n\nfrom __future__', 1
            )
        parts = [header]
        if self.user_imports:
            parts.append("\n".join(sorted(self.user_imports)) + "\n")
        parts.append(f"PIPELINE_NAME = {self.p.name!r}")
        parts.append(f"END_OF_INPUT = {END_OF_INPUT!r}  # the last line of a bounded replay (see above)")
        parts.append("END_TIME = datetime(3000, 1, 1, tzinfo=timezone.utc)")
        parts.append(f"TICK = {TICK!r}  # a line that is skipped: a micro-batch without rows")
        parts.append(
            'BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"'
        )
        parts.append(
            "ARROW_TYPES = {"
            + ", ".join(f"{k!r}: {t}" for k, t in _ARROW.items())
            + "}  # streamlab field type -> Arrow type"
        )
        parts.append("# which stream goes to which output (file directory, topic suffix or table name)")
        parts.append(_plan.const("OUTPUTS", outputs))
        parts.append("# the json and object fields of each output, held as their JSON text (json_lines)")
        parts.append(_plan.const("JSON_COLUMNS", json_columns(self.p, outputs)))
        parts.append("# outputs of a run of detector steps: written by its one query (write_tagged)")
        parts.append(_plan.const("SEGMENT_OF", {r: a for r, (a, _) in self.split.items()}))
        parts.append(_plan.const("SPLIT", {r: cols for r, (_, cols) in self.split.items()}))
        parts.append("\n\n# -- helpers copied from streamlab: this module must not import it\n")
        parts.append(_plan.snippet_source(self.snippets))
        parts.append("\n\n# -- step settings\n")
        parts += self.consts
        for code in self.user_code:
            parts.append("\n\n" + code)
        if not self.row_steps:  # the per-record detector code holds it too
            parts.append(
                "\n\n# streamlab's rule of the rows a window cannot take (unfit_batches), copied\n"
                + _plan.unfit_source()
            )
        # always bound: the per-record filter code names it (for a filter given as a function) even in a
        # pipeline without one, where the name would otherwise be undefined (ruff F821)
        table = ", ".join(f"{sid!r}: {name}" for sid, name in self.user_fns.items())
        parts.append(f"\n\nUSER_FUNCTIONS = {{{table}}}  # step id -> the user's function")
        parts.append(
            "\n\ndef arrow_schema(spark_schema):\n"
            '    """The Arrow schema of a DataFrame\'s rows (what ``mapInArrow`` hands a function)."""\n'
            "    from pyspark.sql.pandas.types import to_arrow_schema\n\n"
            '    return to_arrow_schema(spark_schema, timezone="UTC", prefers_large_types=False)\n'
        )
        parts.append(_RUNTIME)
        parts.append(
            "\n\ndef build(raw, column, split):\n"
            '    """Every stream of the pipeline by streamlab reference (``"window"``, ``"parse.dead_letter"``).\n\n'
            "    ``raw`` has the raw records in ``column`` (bytes); ``split``: each value is a file of lines.\n"
            '    END_OF_INPUT rows are removed from every stream here."""\n'
            + text_body
            + "\n"
            + "\n".join(self.emit_end)
            + "\n"
        )
        parts.append(_MAIN)
        text = "\n".join(parts)
        return _tidy(text)


_PATTERN_FN = """
def @FN@(key, frames, state):
    \"\"\"Step @SID@ for one key: buffer its events until Spark's watermark passes them, then match
    them in event-time order with streamlab's rule; the buffer and open candidates are the group state.\"\"\"
    import pandas as pd

    key_col, time_col, id_col = @C@_COLUMNS
    buffer, runs, seq = json.loads(state.get[0]) if state.exists else ([], [], 0)
    for frame in frames:
        masks = [
            pd.Series(frame.eval(where, engine="python"), index=frame.index).fillna(False).astype(bool).tolist()
            for where in @C@_WHERE
        ]
        # Spark hands UTC times without a zone: epoch nanoseconds, as streamlab keeps them
        times = pd.to_datetime(frame[time_col], utc=True).dt.as_unit("ns").astype("int64").tolist()
        ids = frame[id_col].tolist()
        values = {c: frame[c].tolist() for c in @C@_VALUE_COLUMNS}
        for i in range(len(frame)):
            mask = [m[i] for m in masks]
            if any(mask):
                vals = {c: (None if v[i] != v[i] else v[i]) for c, v in values.items()}
                buffer.append([int(times[i]), seq, mask, ids[i], vals])
            seq += 1
    watermark = state.getCurrentWatermarkMs() * 1_000_000
    buffer.sort(key=lambda e: (e[0], e[1]))
    ready = [e for e in buffer if e[0] <= watermark]
    buffer = buffer[len(ready) :]
    matches = []
    for t, _, mask, eid, vals in ready:
        runs, match = advance(@C@_STEPS, @C@_WITHIN_NS, runs, t, mask, eid, vals)
        if match is not None:
            matches.append(match)
    if buffer or runs:
        state.update((json.dumps([buffer, runs, seq], default=json_default),))
        if buffer:
            state.setTimeoutTimestamp(max(buffer[0][0] // 1_000_000, watermark // 1_000_000 + 1))
    else:
        state.remove()
    yield pd.DataFrame(
        {
            key_col: [key[0]] * len(matches),
            "pattern": [@C@_NAME] * len(matches),
            "first_time": pd.to_datetime([m[0] for m in matches], utc=True),
            "last_time": pd.to_datetime([m[1] for m in matches], utc=True),
            "event_ids": [[str(x) for x in m[2]] for m in matches],
            "n_events": [len(m[2]) for m in matches],
        }
    )
"""


DEDUP_FALLBACK_WHY = (
    "a query through it has another applyInPandasWithState (Spark allows one per query), or its input "
    "has no arrival sequence: a repeat more than the ttl after its id's first occurrence is dropped "
    "when both are in one micro-batch (streamlab passes it), and max_ids is not reproduced"
)
"""Why a dedup step is not streamlab's rule in the Spark job (:func:`rule_dedups`)."""

_DEDUP_FN = '''

PACKED_SCHEMA = "`_group` STRING, `_src` STRING, `_seq` BIGINT, `_row` BINARY"


def pack_rows(batches):
    """``mapInArrow`` body before a dedup: each row pickled whole into ``_row`` (with its arrival
    sequence beside it), so that pandas, which the dedup's ``applyInPandasWithState`` hands rows through,
    cannot change a value (an integer column with a missing value would come back float64)."""
    import pickle

    schema = pa.schema([("_group", pa.string()), ("_src", pa.string()), ("_seq", pa.int64()), ("_row", pa.binary())])
    for batch in batches:
        rows = batch.to_pylist()
        yield pa.RecordBatch.from_pydict(
            {
                "_group": [""] * len(rows),
                "_src": [r.get("_src") for r in rows],
                "_seq": [r.get("_seq") for r in rows],
                "_row": [pickle.dumps(r) for r in rows],
            },
            schema=schema,
        )


def unpack_rows(batches, schema):
    """``mapInArrow`` body after a dedup: the rows ``pack_rows`` packed, as they were."""
    import pickle

    for batch in batches:
        rows = [pickle.loads(b) for b in batch.column("_row").to_pylist()]
        yield pa.RecordBatch.from_pylist(rows, schema=schema)


def first_occurrences(frames, state, id_column, kind, time, end_time, ttl_ns, max_ids):
    """``applyInPandasWithState`` body of a dedup step (one group: the rule reads the largest event time
    seen and the order of first occurrences across all ids): the micro-batch's packed rows in arrival
    order (``_src``, ``_seq``) through streamlab's rule (``Dedup``), the rows it passes returned packed.
    The END_OF_INPUT row (``end_time`` at END_TIME) passes without reaching the rule. The state is the
    rule's fields pickled (ids, first times, the expiry heap: plain values)."""
    import base64
    import pickle

    import pandas as pd

    rule = Dedup(ttl_ns, max_ids)
    if state.exists:  # the rule's fields (plain values: the class itself is not importable on workers)
        rule.__dict__.update(pickle.loads(base64.b64decode(state.get[0])))
    frame = pd.concat(list(frames), ignore_index=True).sort_values(["_src", "_seq"], kind="stable")
    kept = []
    for packed in frame["_row"].tolist():
        row = pickle.loads(packed)
        if end_time is not None and row.get(end_time) == END_TIME:
            kept.append(packed)
            continue
        value = row.get(id_column)
        if kind in ("json", "object") and value is not None:
            value = json.loads(value)  # the column holds the value's JSON text
        t = row.get(time) if time else None
        if not rule.is_duplicate(typed_id(dedup_key(value)), None if t is None else to_ns(t)):
            kept.append(packed)
    state.update((base64.b64encode(pickle.dumps(vars(rule))).decode("ascii"),))
    yield pd.DataFrame({"_row": pd.Series(kept, dtype=object)})
'''


def rule_dedups(p: Pipeline) -> set[str]:
    """Dedup steps the Spark job runs as streamlab's own rule (``Dedup``, one ``applyInPandasWithState``
    group): those whose input carries the arrival sequence (only parse, filter, select, key_by,
    with_columns and dedup steps before them) and where no query through them has another
    ``applyInPandasWithState`` (a detector, feature, rule, drift or pattern step, or another such dedup:
    Spark allows one per query). The others are ``dropDuplicatesWithinWatermark`` (``DEDUP_FALLBACK_WHY``).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> uniq = p.parse().dedup("event_id", ttl="10m")
    >>> rule_dedups(p)
    {'dedup'}
    >>> _ = uniq.dedup("user_id", ttl="1m", step_id="again")  # two in one query: neither
    >>> sorted(rule_dedups(p))
    []
    """
    steps = p.steps
    ancestors: dict[str, set[str]] = {}
    for sid, step in steps.items():  # steps are in the order they were added: inputs come first
        mine: set[str] = set()
        for ref in step.inputs:
            up = ref.split(".", 1)[0]
            mine |= {up} | ancestors.get(up, set())
        ancestors[sid] = mine
    ordered_kinds = (SourceStep, ParseStep, FilterStep, SelectStep, KeyByStep, MapStep, DedupStep)
    chosen = {
        sid
        for sid, step in steps.items()
        if isinstance(step, DedupStep)
        and all("." not in ref for ref in step.inputs)
        and all(isinstance(steps[a], ordered_kinds) for a in ancestors[sid])
    }
    others = {sid for sid, step in steps.items() if isinstance(step, OperatorStep)}  # detectors, patterns
    changed = True
    while changed:
        changed = False
        for sid in steps:
            query = ancestors[sid] | {sid}
            mine = query & chosen
            if mine and len(mine) + len(query & others) > 1:
                chosen -= mine
                changed = True
    return chosen


def _takes_first_or_last(step: Any) -> bool:
    """A window step with a ``first`` or ``last`` aggregator (its ties go by arrival)."""
    return isinstance(step, WindowStep) and any(
        type(a).__name__ in ("FirstAggregator", "LastAggregator") for a in step.aggs
    )


def _is_row_step(step: Any) -> bool:
    """A detector, feature, rule or drift step (a pattern step has its own translation)."""
    return isinstance(step, OperatorStep) and not _plan.is_pattern_step(step)


def segments(p: Pipeline) -> dict[str, str]:
    """Steps that run in one ``applyInPandasWithState`` with the detector steps before them: each
    detector, feature, rule or drift step, and the with_columns, filter, select and key_by steps after
    one, mapped to the first step of their run (Spark allows one such operator per query).

    Raises
    ------
    PipelineConfigError
        For a step after a detector step that cannot share its operator (a window, dedup, join or
        pattern: its own stateful operator would be a second one in the query).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.detectors import ZScoreFeature
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> events = p.parse({"k": "string", "x": "float64", "timestamp": "timestamp"})
    >>> s = events.apply(ZScoreFeature("k", "x"), step_id="z")
    >>> _ = s.filter("zscore_x > 3", step_id="high")
    >>> segments(p)
    {'z': 'z', 'high': 'z'}
    """
    member: dict[str, str] = {}
    for sid, step in p.steps.items():
        src = step.inputs[0].split(".", 1)[0] if step.inputs else None
        if _is_row_step(step):
            member[sid] = member.get(src or "", sid)
        elif src in member and isinstance(step, (MapStep, FilterStep, SelectStep, KeyByStep)):
            if isinstance(step, MapStep) and not step.columns:
                continue  # check() refuses it
            member[sid] = member[src]
        elif src in member and not isinstance(step, SinkStep):
            raise _plan.unsupported(
                step,
                "Spark",
                f"it follows the detector, feature or rule step {src!r}, which runs in an "
                "applyInPandasWithState, and Spark allows one such stateful operator per query",
                "put it before the detector steps or on a branch that does not go through them, or export to Beam",
            )
    return member


def json_columns(p: Pipeline, outputs: dict[str, str]) -> dict[str, list[str]]:
    """The ``json`` and ``object`` columns of each output the job writes, by output name (``outputs``, or
    the reference with ``_`` for ``.``, as the job names them): the job holds them as their JSON text,
    and its JSON writer (``json_lines``) nests them as values.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> _ = p.parse({"properties": "json", "x": "float64", "timestamp": "timestamp"}).filter("x > 0", step_id="big")
    >>> json_columns(p, {"big": "big"})["big"]
    ['properties']
    """
    types = spark_types(p)
    out: dict[str, list[str]] = {}
    for ref in _plan.sink_outputs(p):
        nested = [c for c, kind in types.get(ref, {}).items() if kind in ("json", "object")]
        if nested:
            out[outputs.get(ref, ref.replace(".", "_"))] = nested
    return out


def json_reads(types: dict[str, str], columns: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], ...]:
    """For expressions ``columns`` ((name, expression) pairs, as ``with_columns`` evaluates them, one after
    the other) on an input of field ``types``: the ``json`` and ``object`` columns of the input they read,
    and the columns computed from such a value (or from one computed so).

    The job holds those fields as their JSON text: an expression reads them back first, as the values
    streamlab's columns hold, and a column computed from them may hold any value (``a * 2`` is 6 for 3
    and ``"xx"`` for ``"x"``), so the job holds it as JSON text too (type ``json``).

    Examples
    --------
    >>> json_reads({"a": "json", "b": "float64"}, (("x", "a * 2"), ("y", "b + 1"), ("z", "x + b")))
    (('a',), ('x', 'z'))
    """
    from streamlab._expr import expression_names

    kinds = dict(types)
    reads: dict[str, None] = {}
    computed: dict[str, None] = {}
    for name, expr in columns:
        names = expression_names(expr)
        read = [c for c, k in kinds.items() if k in ("json", "object") and (names is None or c in names)]
        reads.update(dict.fromkeys(c for c in read if c not in computed))
        if read:
            computed[name] = None
            kinds[name] = "json"
        else:
            kinds[name] = _plan.with_columns_types(kinds, ((name, expr),))[name]
            computed.pop(name, None)
    return tuple(reads), tuple(computed)


def filter_reads(types: dict[str, str], expr: str) -> tuple[str, ...]:
    """The ``json`` and ``object`` fields (of ``types``) a filter's expression reads, which the job reads
    back from their JSON text first (see :func:`json_reads`).

    Examples
    --------
    >>> filter_reads({"a": "json", "b": "float64", "c": "object"}, "a > b")
    ('a',)
    """
    return json_reads(types, (("", expr),))[0]


def spark_types(p: Pipeline) -> dict[str, dict[str, str]]:
    """Field types of every stream of the Spark job: ``_plan.column_types``, with the columns detector
    steps add (``_detectors.output_types``) and ``with_columns`` typed from its expressions.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> events = p.parse({"a": "float64", "b": "float64", "timestamp": "timestamp"})
    >>> _ = events.with_columns(big="a > b", step_id="flags")
    >>> spark_types(p)["flags"]
    {'a': 'float64', 'b': 'float64', 'timestamp': 'timestamp', 'big': 'bool'}
    """
    from streamlab.export.spark_detectors import with_columns_types

    types = _plan.column_types(p)
    for sid, step in p.steps.items():
        base = types.get(step.inputs[0], {}) if step.inputs else {}
        if isinstance(step, MapStep) and step.columns:
            types[sid] = with_columns_types(base, tuple(step.columns))
            types[sid].update(dict.fromkeys(json_reads(base, tuple(step.columns))[1], "json"))
            types[f"{sid}.dead_letter"] = dead_letter_types(base)
        elif isinstance(step, (FilterStep, DedupStep, KeyByStep)):
            types[sid] = base
            if isinstance(step, FilterStep):
                types[f"{sid}.dead_letter"] = dead_letter_types(base)
        elif isinstance(step, SelectStep):
            types[sid] = {new: base.get(old, "string") for old, new in step.columns}
        elif _is_row_step(step):
            mine = _detectors.output_types(p, types)
            types.update({r: t for r, t in mine.items() if r == sid or r.startswith(sid + ".")})
    return types


def _tidy(text: str) -> str:
    import re

    text = re.sub(r"\n{4,}", "\n\n\n", text)
    text = re.sub(r"\n\n\n+(\s+)", r"\n\n\1", text)
    return text.strip() + "\n"


def check(p: Pipeline) -> None:
    """Raise a PipelineConfigError naming the first step the Spark export cannot express."""

    # the shared checks (one source, a parse step, no early results) on the pipeline without its
    # interval joins, which Spark translates and the shared check refuses
    without_joins = Pipeline(name=p.name, time=p.time)
    without_joins.steps = {sid: st for sid, st in p.steps.items() if not isinstance(st, IntervalJoinStep)}
    _plan.check_steps(without_joins, "Spark", operators=True)
    for step in p.steps.values():
        if _plan.is_pattern_step(step):
            continue  # applyInPandasWithState with streamlab's rule (streamlab.export.spark_pattern)
        if isinstance(step, OperatorStep):
            # applyInPandasWithState with streamlab's per-record machine (streamlab.export.spark_detectors);
            # a step without one is refused, naming it
            _detectors.row_step_spec(step.config, step.step_id)
            continue
        if isinstance(step, MapStep) and not step.columns:
            raise _plan.unsupported(
                step,
                "Spark",
                "map steps with functions (map_one, map_many) have no declared Spark schema for their results",
                "use with_columns (pandas expressions, typed from the input) or select/filter, or export to Beam",
            )
        if step.kind in ("enrich", "union"):
            why = {
                "enrich": "enrich joins with a table held in memory; the exported job cannot ship it",
                "union": "union of several streams is not translated",
            }[step.kind]
            raise _plan.unsupported(step, "Spark", why, "keep this step in the notebook, or export to Beam")
    _check_column_names(p)


def _check_column_names(p: Pipeline) -> None:
    """Refuse, naming the step that makes it, a column whose name Spark reads as something else: the
    generated job names columns as text (``select('a.b')``, ``F.col('a.b')``, ``groupBy('a.b')``), where
    Spark reads ``a.b`` as the field ``b`` of a struct ``a`` and a backtick as quoting, so the job failed
    when it started (``UNRESOLVED_COLUMN``) though streamlab, Beam, Lambda and Flink take the name."""
    seen: set[str] = set()
    for sid, step in p.steps.items():
        for output in step.outputs:
            for column in p.columns_of(sid if output == "out" else f"{sid}.{output}") or ():
                if column in seen or not ("." in column or "`" in column):
                    continue
                seen.add(column)
                mark = "." if "." in column else "`"
                better = column.replace(".", "_").replace("`", "")
                what = (
                    f"an aggregator's name: agg.{a.kind}(..., name={better!r})"
                    if isinstance(step, WindowStep)
                    and (a := next((a for a in step.aggs if a.name == column), None))
                    else f"a name without it, e.g. {better!r}"
                )
                raise _plan.unsupported(
                    step,
                    "Spark",
                    f"its column {column!r} holds {mark!r}, which Spark reads "
                    f"{'as the path of a field in a struct' if mark == '.' else 'as quoting'} where the job names "
                    "the column, so the job would fail when it starts (UNRESOLVED_COLUMN)",
                    f"give the column {what} (a parse field keeps its JSON key with path=), or export to Beam",
                )


def _readme(p: Pipeline, module: str, outputs: dict[str, str], shipped: tuple[str, ...] = ()) -> str:
    name = _plan.ident(p.name)
    ship = (
        f" The user's own modules its functions come from ({', '.join(f'`{m}`' for m in shipped)}) are "
        "copied beside it, where it imports them from: give them to spark-submit with `--py-files` (a "
        "package directory as a zip) so that the executors import them too."
        if shipped
        else ""
    )
    c = _connectors()
    out_rows = "\n".join(f"| `{ref}` | `{dest}` |" for ref, dest in outputs.items())
    return f"""# {p.name}: PySpark Structured Streaming job exported from streamlab

`{module}` is a standalone PySpark {SPARK_VERSION} job (no streamlab import). Each output is its own
streaming query with its own checkpoint (`CHECKPOINT_DIR/<output>`); the dead letters of the parse step
are one of them. What differs from streamlab's per-event semantics is in the module's docstring: the
watermark moves once per micro-batch, late rows are dropped (counted in `numRowsDroppedByWatermark`)
instead of reported on a `late` output, and dedup has no `duplicates` output. Detector, feature, rule
and drift steps run streamlab's own per-record code in one `applyInPandasWithState` per run of such
steps (state: the pickled models per key, in the checkpoint), whose one query writes all their
outputs, as files under `OUT_DIR/<output>/batch=<micro-batch id>/`.

{replay_input_block(p, f"put that file in a directory of its own and give it to --input: spark-submit {module} --input DIR --output OUT_DIR --checkpoint CHECKPOINT_DIR --available-now")}| stream | output (directory / topic suffix / table) |
|---|---|
{out_rows}

## Run it

Kafka (or Event Hubs through its Kafka endpoint) to files:

```sh
spark-submit --master 'local[2]' \\
  --packages {c["kafka"]} \\
  {module} --kafka-bootstrap BROKER:9092 --topic events \\
  --output /data/{name}/out --checkpoint /data/{name}/checkpoints
```

Event Hubs: `--kafka-bootstrap NAMESPACE.servicebus.windows.net:9093 --topic HUB
--eventhubs-connection-env EVENTHUBS_CONNECTION_STRING` (the connection string is read from that
environment variable, never passed on the command line).

A backfill of files of raw JSON lines, stopping when done (`--available-now`):

```sh
spark-submit --master 'local[2]' {module} --input '/data/events/' \\
  --output /data/{name}/out --checkpoint /data/{name}/checkpoints --available-now
```

Append mode writes a window once the watermark passes it, so the last windows of a bounded input stay
open unless its last file ends with the end-of-input line (a NUL byte then `streamlab:end-of-input`):
`printf '\\0streamlab:end-of-input\\n' > /data/events/zz-end.jsonl`, written after every other file
(the file source reads files in the order of their modification times).

Sinks: `--sink files` (`--format json|parquet`), `--sink kafka` (one topic per output,
`--output-topic-prefix`), `--sink jdbc` (the JDBC URL with its credentials is read from the environment
variable named by `--jdbc-url-env`, default `JDBC_URL`).

## Connector artefacts

| source / sink | artefact |
|---|---|
| Kafka | `{c["kafka"]}` (`--packages`) |
| Event Hubs | {c["eventhubs"]} |
| Kinesis | {c["kinesis"]} |
| Pub/Sub | {c["pubsub"]} |
| JDBC sink | {c["jdbc"]} |
| files | built in |

Python: `requirements.txt` (pyspark and pyarrow; the parse runs in `mapInArrow` on the executors, which
need pyarrow too).{ship}

## What was verified, and how

`streamlab.export.verify(pipeline, sample, target="spark")` runs this module on Spark in local mode
(`local[2]`, from the `pyspark` wheel) with a **file source**: the sample is written to files (then the
end-of-input line), read with `--available-now`, and every output is compared with streamlab's own run.
**The Kafka, Kinesis, Pub/Sub and JDBC paths are generated but not executed here**: their connector jars
cannot be fetched on the machine that verifies, so only the file source and file sink run.

## Deploy

`databricks_job.json` is a Databricks Jobs API 2.1 job (a `spark_python_task` on a job cluster with the
Kafka package as a library); upload `{module}` to the workspace path it names, then
`databricks jobs create --json @databricks_job.json`. `emr_serverless.json` is the `start-job-run`
request for EMR Serverless (`aws emr-serverless start-job-run --cli-input-json file://emr_serverless.json`).
Secrets stay out of both: Event Hubs and JDBC credentials come from environment variables that the
cluster sets from a secret scope (Databricks) or the job's runtime role (EMR).
"""


def _databricks(p: Pipeline, module: str) -> dict[str, Any]:
    name = _plan.ident(p.name)
    return {
        "name": f"streamlab-{name}",
        "max_concurrent_runs": 1,
        "tasks": [
            {
                "task_key": name,
                "spark_python_task": {
                    "python_file": f"/Workspace/streamlab/{name}/{module}",
                    "parameters": [
                        "--kafka-bootstrap",
                        "{{job.parameters.bootstrap}}",
                        "--topic",
                        "{{job.parameters.topic}}",
                        "--output",
                        f"dbfs:/streamlab/{name}/out",
                        "--checkpoint",
                        f"dbfs:/streamlab/{name}/checkpoints",
                    ],
                },
                "new_cluster": {
                    "spark_version": "16.4.x-scala2.13",
                    "node_type_id": "i3.xlarge",
                    "num_workers": 1,
                    "spark_conf": {"spark.sql.session.timeZone": "UTC"},
                    "spark_env_vars": {
                        "EVENTHUBS_CONNECTION_STRING": "{{secrets/streamlab/eventhubs-connection-string}}"
                    },
                },
                "libraries": [
                    {"maven": {"coordinates": _connectors()["kafka"]}},
                    {"pypi": {"package": "pyarrow"}},
                ],
            }
        ],
        "parameters": [
            {"name": "bootstrap", "default": "BROKER:9092"},
            {"name": "topic", "default": "events"},
        ],
    }


def _emr(p: Pipeline, module: str) -> dict[str, Any]:
    name = _plan.ident(p.name)
    return {
        "applicationId": "APPLICATION_ID",
        "executionRoleArn": "arn:aws:iam::ACCOUNT:role/streamlab-emr-serverless",
        "name": f"streamlab-{name}",
        "mode": "STREAMING",
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": f"s3://BUCKET/streamlab/{name}/{module}",
                "entryPointArguments": [
                    "--kafka-bootstrap",
                    "BROKER:9092",
                    "--topic",
                    "events",
                    "--output",
                    f"s3://BUCKET/streamlab/{name}/out",
                    "--checkpoint",
                    f"s3://BUCKET/streamlab/{name}/checkpoints",
                ],
                "sparkSubmitParameters": f"--packages {_connectors()['kafka']} "
                "--conf spark.sql.session.timeZone=UTC",
            }
        },
    }


def to_spark(pipeline: Pipeline, path: str | Path, *, module_name: str | None = None) -> ExportedFiles:
    """Write a PySpark Structured Streaming job for ``pipeline`` and its deployment files into ``path``.

    Parameters
    ----------
    pipeline
        The pipeline (one source, a parse step, then filters, selects, with_columns, dedup, windows,
        interval joins, patterns, and detector, feature, rule and drift steps).
    path
        Directory to write (created if missing).
    module_name
        File name of the module; defaults to ``<pipeline name>_spark.py``.

    Returns
    -------
    ExportedFiles
        The module, ``README.md``, ``requirements.txt``, ``databricks_job.json`` and ``emr_serverless.json``.

    Raises
    ------
    PipelineConfigError
        Naming the first step the export cannot express and the alternative.

    Examples
    --------
    >>> import tempfile
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    >>> out = to_spark(p, tempfile.mkdtemp())
    >>> sorted(out.files)
    ['README.md', 'databricks_job.json', 'demo_spark.py', 'emr_serverless.json', 'requirements.txt']
    >>> "F.window('timestamp', '60000 milliseconds'" in out.read("demo_spark.py")
    True
    """
    _plan.check_pipeline(pipeline, "to_spark")
    check(pipeline)
    gen = _Generator(pipeline)
    name = module_name or f"{_plan.ident(pipeline.name)}_spark.py"
    code = gen.module(name)
    out = ExportedFiles.at(path, name, "spark")
    write = out.write
    write(name, code)
    reqs = [f"pyspark=={SPARK_VERSION}", "pyarrow>=18"]
    if "eval_expr(" in code or "mapInPandas(" in code:
        reqs.append("pandas>=2.2")
    if "from river import" in code:
        from importlib.metadata import version

        reqs.append(f"river=={version('river')}")
    distributions, local = user_modules(gen.user_imports)
    reqs += distributions  # (a module of the user's is no requirement: it is copied beside the job)
    write("requirements.txt", "\n".join(reqs) + "\n")
    if local:
        copy_user_modules(out, local, name)
    outputs = {r: n for r, n in _plan.sink_outputs(pipeline).items() if r in gen.streams}
    write("README.md", _readme(pipeline, name, outputs, tuple(sorted(m for m, f in local.items() if f))))
    write("databricks_job.json", json.dumps(_databricks(pipeline, name), indent=2) + "\n")
    write("emr_serverless.json", json.dumps(_emr(pipeline, name), indent=2) + "\n")
    return out


def inherited_watermarks(pipeline: Pipeline) -> dict[str, tuple[str, int, int]]:
    """Steps of the Spark job that run on a watermark defined upstream, whose delay is not their own.

    Spark allows one watermark per chain, so a window (join, pattern or dedup) downstream of a dedup
    with a ttl that is ``dropDuplicatesWithinWatermark`` (not :func:`rule_dedups`: here, because a
    feature step shares its query) runs on the dedup's watermark (see the generated module's docstring).

    Returns
    -------
    dict
        Step id -> ``(the step that defines the watermark, its delay ns, the step's own delay ns)``.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> from streamlab.detectors import ZScoreFeature
    >>> events = p.parse({"event_id": "string", "event_type": "string", "x": "float64", "timestamp": "timestamp"})
    >>> uniq = events.dedup("event_id", ttl="10m")
    >>> _ = uniq.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(agg.count())
    >>> _ = uniq.apply(ZScoreFeature("event_type", "x"), step_id="z")
    >>> inherited_watermarks(p)
    {'window': ('dedup', 600000000000, 5000000000)}
    """
    check(pipeline)
    gen = _Generator(pipeline)
    gen.module("job.py")
    return dict(gen.inherited)


# -- verification on Spark in local mode ---------------------------------------------------------
_SESSION: Any = None


def spark_session() -> Any:
    """The local SparkSession verifications share (``local[2]``, UI off, 2 shuffle partitions, UTC; its
    JVM with the options of a short run, :mod:`streamlab._jvm`).

    Created on first use and kept for the next verification (the JVM ends with this Python process);
    an active session (a test fixture's) is used as it is.

    Raises
    ------
    ImportError
        When pyspark is not installed, naming what to install (never a silent skip).
    """
    global _SESSION
    import os
    import shutil
    import sys
    import warnings

    from streamlab._jvm import short_run_options

    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise ImportError(
            "verifying a Spark export needs PySpark and a Java 17+ runtime: "
            f"pip install 'streamlab[spark]' (pyspark=={SPARK_VERSION}) and apt-get install "
            f"openjdk-17-jre-headless ({e})"
        ) from e
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise RuntimeError(
            "verifying a Spark export needs a Java 17+ runtime (java on PATH or JAVA_HOME): "
            "apt-get install openjdk-17-jre-headless"
        )
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if _SESSION is None:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            SparkSession.builder.master("local[2]")
            .appName("streamlab-verify")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
        )
        # a short local run: the client compiler and the serial collector (streamlab._jvm)
        java_options = [short_run_options()]
        if not os.environ.get("SPARK_CONF_DIR"):  # (a user's own Spark configuration keeps its logging)
            # errors only from the JVM's start on: its default profile's WARN lines (a loopback hostname,
            # no native Hadoop) would otherwise land in the notebook that verifies
            java_options.append(f"-Dlog4j2.configurationFile={_quiet_log4j().as_uri()}")
        if " ".join(java_options).strip():
            builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options).strip())
        with warnings.catch_warnings():
            # PySpark's own check of pandas' version ("does not yet fully support pandas >= 3.0.0"):
            # the verification's reads and writes are tested on the pandas installed with streamlab
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
            _SESSION = _started(builder, quiet=not os.environ.get("SPARK_CONF_DIR"))
        _SESSION.sparkContext.setLogLevel("ERROR")
    return _SESSION


GATEWAY_ATTEMPTS = 3


def _started(builder: Any, quiet: bool = False) -> Any:
    """``builder.getOrCreate()``, tried again where the JVM's launcher died before it ran.

    PySpark starts its JVM through ``Popen(preexec_fn=...)``, so a real ``fork()``: in a process where
    gRPC is busy (a Pub/Sub or BigQuery client, Beam), gRPC's fork handler can abort the forked child
    before it runs ``spark-submit`` ("epoll_wait error: Bad file descriptor", about 1 fork in 50 here),
    and PySpark raises ``JAVA_GATEWAY_EXITED``. Nothing was started then, so the launch is tried again,
    up to :data:`GATEWAY_ATTEMPTS` times; a JVM that cannot start (no Java, bad options) fails every
    time and its error is raised, with the gRPC remedy named.

    ``quiet``: the JVM's own stdout and stderr go to a file, not to the process's (a notebook cell's output):
    Spark 4's launcher always adds ``--add-modules=jdk.incubator.vector``, and the JVM then prints
    "WARNING: Using incubator modules" at its start, which no option silences. What the JVM wrote there
    is quoted in the error when it does not start (its logged errors are already in the exceptions
    PySpark raises).
    """
    import tempfile

    from pyspark import SparkContext

    error: Exception | None = None
    said = ""
    for _ in range(GATEWAY_ATTEMPTS):
        launch = quiet and SparkContext._gateway is None
        # a started JVM has its own descriptor of the file: it lives, unnamed, as long as the JVM
        with tempfile.TemporaryFile() as log:
            try:
                if launch:
                    _launch_gateway(builder, log)
                return builder.getOrCreate()
            except Exception as e:  # PySparkRuntimeError (PySpark's class, imported with it)
                if "JAVA_GATEWAY_EXITED" not in str(e):
                    raise
                error = e
                if launch:
                    log.seek(0)
                    text = log.read().decode("utf-8", "replace").strip()
                    said = text if len(text) <= 2000 else f"{text[:1000]} ... {text[-1000:]}"
    if said:
        where = f"what the JVM said: {said!r}"
    else:
        where = "that the JVM can start (it wrote nothing)" if quiet else "the JVM's error above"
    raise RuntimeError(
        f"Spark's JVM exited before it started, {GATEWAY_ATTEMPTS} times: check that `java -version` "
        f"runs (Java 17+) and {where}; where gRPC clients run in this process, "
        "GRPC_ENABLE_FORK_SUPPORT=0 set before they start keeps gRPC out of the fork that launches "
        f"the JVM ({error})"
    ) from error


def _launch_gateway(builder: Any, log: Any) -> None:
    """Start the JVM of ``builder``'s session as PySpark does, its stdout and stderr written to ``log``: the
    session ``builder.getOrCreate()`` makes next runs in it (PySpark's ``SparkContext(gateway=)``)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    conf = SparkConf(loadDefaults=False)
    for key, value in builder._options.items():  # what getOrCreate hands spark-submit as --conf
        conf.set(key, value)
    gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
    SparkContext._ensure_initialized(gateway=gateway, conf=conf)


def _quiet_log4j() -> Path:
    """A log4j2 configuration that writes the JVM's errors only, to stderr (in streamlab's cache)."""
    import os

    from streamlab._checkpoint import cache_dir

    path = cache_dir() / "spark-log4j2-errors.properties"
    text = (
        "rootLogger.level = error\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex\n"
        # Spark's loggers set to the root's level: else PySpark's JVM, which Spark takes for a shell,
        # says "Setting default log level to WARN" and how to change it (two lines in every notebook
        # cell that starts it; see Logging.initializeLogging: a logger's own level wins over WARN)
        "logger.spark.name = org.apache.spark\n"
        "logger.spark.level = error\n"
    )
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def compared_streams(p: Pipeline, streams: list[str]) -> dict[str, tuple[list[str], set[str]]]:
    """Every output the Spark job writes, with the columns compared (json and object ones by value) and
    which of them are times."""
    types = spark_types(p)
    out: dict[str, tuple[list[str], set[str]]] = {}
    for ref in _plan.sink_outputs(p):
        if ref not in streams:
            continue
        step = p.steps.get(ref.split(".", 1)[0])
        if _plan.is_pattern_step(step) and ref == step.step_id:  # matches: fixed columns
            matches = [step.config.key, "pattern", "first_time", "last_time", "event_ids", "n_events"]
            out[ref] = (matches, {"first_time", "last_time"})
            continue
        kinds = types.get(ref, {})
        if _plan.is_pattern_step(step) and ref.endswith(".dead_letter"):  # the rows, their reason
            kinds = dead_letter_types(types.get(step.inputs[0], {}))
        cols = dict(kinds)  # json and object fields too: the job writes them nested (json_lines)
        times = {c for c, t in cols.items() if t == "timestamp"}
        out[ref] = (list(cols), times)
    return out


def run_spark(
    module_path: str | Path,
    lines: list[bytes],
    refs: list[str],
    workdir: str | Path,
    *,
    batch_records: int | None = None,
    timeout_s: float = 600.0,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Run a generated Spark module on ``lines`` written to files (``--available-now``).

    The sample goes into one file (one micro-batch), or files of ``batch_records`` lines read one per
    micro-batch; a last file holds END_OF_INPUT so that every window closes. Returns the rows of each
    stream in ``refs`` (as frames) and, per stream, the rows Spark dropped behind the watermark.
    """
    import os
    import shutil

    from streamlab.export.verify import fresh_dir, load_module, rows_frame

    if any(b"\n" in line for line in lines):
        raise ValueError("a sample record holds a newline; the Spark verification writes one record per line")
    firsts = lines[:: batch_records or len(lines) or 1]  # the records that start the files written below
    if any(line.startswith(b"\xef\xbb\xbf") for line in firsts):
        raise ValueError(
            "a sample record that starts a file of the Spark verification starts with a byte order mark, "
            "which the job (as streamlab's replay) takes for the file's, not the record's; put another "
            "record before it"
        )
    work = Path(workdir).resolve()  # Spark's JVM resolves a relative path against its own cwd
    module_path = Path(module_path).resolve()
    src, out, ckpt = work / "input", work / "output", work / "checkpoints"
    fresh_dir(src)  # an earlier run's input files, outputs and offsets are not this run's
    for d in (out, ckpt):
        shutil.rmtree(d, ignore_errors=True)
    if batch_records:
        # Spark drops a row as late against the watermark of the batch before its own (the "watermark
        # for late events"), which reflects the rows up to two batches back: a batch without rows (TICK)
        # after each batch of records makes it the watermark of every record before.
        chunks = []
        for i in range(0, len(lines), batch_records):
            chunks += [lines[i : i + batch_records], [TICK]]
        chunks.append([END_OF_INPUT])
    else:
        chunks = [[*lines, END_OF_INPUT]]
    for i, chunk in enumerate(chunks):
        f = src / f"part-{i:06d}.jsonl"
        f.write_bytes(b"".join(x + b"\n" for x in chunk))
        os.utime(f, (1_000_000_000 + i, 1_000_000_000 + i))  # the file source reads in modification order
    spark = spark_session()
    module = load_module(module_path)
    try:
        from pyspark import cloudpickle

        pickler: Any = cloudpickle  # untyped
        pickler.register_pickle_by_value(module)  # executors cannot import the generated module
        argv = ["--input", str(src), "--output", str(out), "--checkpoint", str(ckpt), "--available-now"]
        argv += ["--outputs", ",".join(refs)]
        if batch_records:
            argv += ["--max-files-per-trigger", "1"]
        queries = module.start(spark, module.parse_args(argv))
        dropped: dict[str, int] = {}
        try:
            for ref, q in queries.items():
                if not q.awaitTermination(timeout_s):
                    raise TimeoutError(
                        f"verify(target='spark'): the Spark query for {ref!r} did not finish in "
                        f"{timeout_s:g} s and was stopped. Fix: verify a smaller sample, or allow it "
                        "longer with verify(..., timeout_s=...)"
                    )
                dropped[ref] = sum(
                    int(s.get("numRowsDroppedByWatermark", 0))
                    for prog in q.recentProgress
                    for s in prog.get("stateOperators", [])
                )
        finally:
            for q in queries.values():
                if q.isActive:
                    q.stop()
        frames: dict[str, Any] = {}
        for ref in refs:
            name = module.OUTPUTS.get(ref, ref.replace(".", "_"))
            rows = []
            for part in sorted((out / name).rglob("part-*")):
                rows += [json.loads(x) for x in part.read_text().splitlines() if x.strip()]
            frames[ref] = rows_frame(rows)
        return frames, dropped
    finally:
        import sys

        from pyspark import cloudpickle

        unpickler: Any = cloudpickle  # untyped
        unpickler.unregister_pickle_by_value(module)
        sys.modules.pop(module.__name__, None)


def compare_spark(
    pipeline: Pipeline,
    local: dict[str, Any],
    exported: dict[str, Any],
    compared: dict[str, tuple[list[str], set[str]]],
    dropped: dict[str, int],
    batch_records: int | None = None,
    inherited: dict[str, tuple[str, int, int]] | None = None,
) -> tuple[bool, Any, dict[str, dict[str, int]], list[str]]:
    """Compare the Spark job's outputs with streamlab's as multisets of rows on the compared columns.

    With one record per micro-batch (``batch_records=1``, each followed by a batch without rows) Spark
    judges each row against the watermark of the rows before it, as streamlab does: the rows a window
    dropped behind its watermark must then equal the count of streamlab's ``late`` output
    (``counts["<step>.late"]``); otherwise the counts are reported in the notes only. So are those of
    the windows in ``inherited`` (:func:`inherited_watermarks`), which run on another step's watermark.

    Returns
    -------
    tuple
        ``(equal, diff, counts, notes)``.
    """
    import pandas as pd

    from streamlab.export.verify import TIME_UNIT_NS, _multiset_diff, _normalise, finer_time_notes

    diffs = []
    counts: dict[str, dict[str, int]] = {}
    unit = TIME_UNIT_NS["spark"]  # Spark's TIMESTAMP is microseconds: times compared so, and said so
    for ref, (cols, times) in compared.items():
        left = _normalise(local.get(ref, pd.DataFrame()), cols, times, unit)
        right = _normalise(exported.get(ref, pd.DataFrame()), cols, times, unit)
        counts[ref] = {"streamlab": len(left), "spark": len(right)}
        d = _multiset_diff(ref, left, right, "spark")
        if len(d):
            diffs.append(d)
    notes = [
        "Spark has no late or duplicates outputs: late rows are dropped (counted below), repeats dropped",
        "the sample was read from files (Kafka, Kinesis, Pub/Sub and JDBC connectors are not run here)",
        "one micro-batch for the whole sample"
        if not batch_records
        else f"micro-batches of {batch_records} records (Spark's watermark moves between them)",
        *finer_time_notes(local, compared, "spark", unit),
    ]
    by_rule = rule_dedups(pipeline)
    for sid, step in pipeline.steps.items():
        if isinstance(step, DedupStep):
            notes.append(
                f"{sid}: streamlab's dedup rule (one applyInPandasWithState group, rows in arrival order)"
                if sid in by_rule
                else f"{sid}: dropDuplicates{'WithinWatermark' if step.ttl_ns is not None else ''}, not "
                f"streamlab's rule: {DEDUP_FALLBACK_WHY}"
            )
    for sid, step in pipeline.steps.items():
        if isinstance(step, (WindowStep, IntervalJoinStep)) and sid in dropped:
            late = local.get(f"{sid}.late")
            n_local = 0 if late is None else len(late)
            notes.append(
                f"{sid}: streamlab reported {n_local} late rows; Spark dropped {dropped[sid]} behind its watermark"
            )
            if sid in (inherited or {}):
                origin, chain_ns, own_ns = (inherited or {})[sid]
                notes.append(
                    f"{sid}: runs on the watermark of {origin!r} ({_interval(chain_ns)} behind, not its own "
                    f"{_interval(own_ns)}; Spark allows one per chain), so its late rows are not compared"
                )
            elif batch_records == 1 and isinstance(step, WindowStep):
                counts[f"{sid}.late"] = {"streamlab": n_local, "spark": dropped[sid]}
                if n_local != dropped[sid]:
                    diffs.append(
                        pd.DataFrame(
                            [
                                {
                                    "output": f"{sid}.late",
                                    "side": "count",
                                    "streamlab": n_local,
                                    "spark": dropped[sid],
                                }
                            ]
                        )
                    )
    diff = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame(columns=["output", "side"])
    return not diffs, diff, counts, notes


def verify_spark(
    pipeline: Pipeline,
    lines: list[bytes],
    local: dict[str, Any],
    workdir: str | Path,
    *,
    batch_records: int | None = None,
    timeout_s: float = 600.0,
    **options: Any,
) -> tuple[ExportedFiles, dict[str, Any], bool, Any, dict[str, dict[str, int]], list[str]]:
    """Export to Spark, run the job in local mode on ``lines`` and compare with ``local``.

    Unless each record is its own micro-batch (``batch_records=1``), windows that got late rows in
    streamlab are left out of the comparison and named in the notes: Spark's watermark only moves
    between micro-batches, so it may still count those rows. Windows on another step's watermark
    (:func:`inherited_watermarks`: a window after a ``dropDuplicatesWithinWatermark`` dedup) are compared
    that way in any case.
    ``timeout_s``: how long each query may run (:func:`run_spark`)."""
    files = to_spark(pipeline, Path(workdir) / "export", **options)
    gen_streams = [r for r in _plan.sink_outputs(pipeline)]
    module_text = files.module.read_text()
    streams = [r for r in gen_streams if f"streams[{r!r}]" in module_text]
    compared = compared_streams(pipeline, streams)
    exported, dropped = run_spark(
        files.module,
        lines,
        list(compared),
        Path(workdir) / "run",
        batch_records=batch_records,
        timeout_s=timeout_s,
    )
    from streamlab.export._late import leave_out_late_windows

    # Spark's watermark moves between micro-batches only, so it may still count a row streamlab reports
    # late: windows that got late rows in streamlab are left out, and named in the notes. With one
    # record per micro-batch only those of steps on another step's watermark (whose delay is longer)
    inherited = inherited_watermarks(pipeline)
    steps = None if batch_records != 1 else set(inherited)
    kept, theirs, left_out = leave_out_late_windows(pipeline, local, exported, "Spark", steps)
    equal, diff, counts, notes = compare_spark(
        pipeline, kept, theirs, compared, dropped, batch_records, inherited
    )
    return files, exported, equal, diff, counts, notes + left_out
