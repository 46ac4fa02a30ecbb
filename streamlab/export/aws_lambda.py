"""Export a pipeline to an AWS Lambda handler for a Kinesis event source, plus Terraform.

The handler (``handler.py``) needs only boto3 (in the Lambda runtime) and, for filter/map expressions,
pandas. It parses base64 Kinesis records with streamlab's checks, drops repeated event ids, aggregates
event-time tumbling windows in Lambda's tumbling-window ``state``, writes final results to Timestream
as MULTI-measure records and sends dead letters and late rows to an SQS queue. Records it cannot
handle now are reported in ``batchItemFailures`` so Lambda retries from them instead of losing them.
Rules, per-key features, velocity rules and keyed small models (GaussianScorer, StandardAbsoluteDeviation)
run streamlab's per-record state machines, each key's state in DynamoDB (one item per step and key).

Only linear pipelines with at most one tumbling window translate: sessions, sliding windows, joins,
large or global models, drift detectors and patterns fail the export with a message naming the step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from streamlab._step_kinds import label_of
from streamlab._time import unreadable_time_reason
from streamlab._timestream_values import dimension_name_problem
from streamlab.detectors import (
    Detect,
    DistinctCountFeature,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.errors import PipelineConfigError
from streamlab.export import _detectors, _plan, _registry
from streamlab.export._input import replay_input_block
from streamlab.export.beam import ExportedFiles
from streamlab.pipeline import Pipeline
from streamlab.steps import (
    DedupStep,
    FilterStep,
    KeyByStep,
    MapStep,
    OperatorStep,
    ParseStep,
    SelectStep,
    SinkStep,
    SourceStep,
    Step,
    WindowStep,
)
from streamlab.windows import TumblingWindow

__all__ = ["create_window_table", "run_lambda", "to_lambda"]

_KEYED_TYPES = (
    VelocityFeature,
    ZScoreFeature,
    TimeSinceLastFeature,
    DistinctCountFeature,
    RatioToMedianFeature,
    VelocityRule,
)
"""Steps whose per-key state the handler keeps in DynamoDB (``KeyedState``), with the keyed detect steps
of a small model (:func:`_small_model`)."""

_SMALL_MODELS = ("gaussian_scorer", "standard_absolute_deviation")
"""Detectors whose per-key state is a few running statistics (GaussianScorer without a window: mean and
variance; StandardAbsoluteDeviation: a running variance): a few KB pickled, far below the item limit.
Half-Space Trees (a forest of mass trees, ~100 KB and more per key), one-class SVM (its weights and
random features) and LOF (a buffer of past points) are refused."""

STATE_ITEM_MAX_BYTES = 380_000
"""A key's state and its previous snapshot, pickled, must fit in this: DynamoDB's item limit is 400 KB
(attribute names and the key included)."""

_KEYED_DOC = """
Per-key state (features, velocity rules, small models)
------------------------------------------------------
* These steps keep each key's history or model (streamlab's per-record state machine, copied below):
{keyed}.
  Their state is in WINDOW_TABLE: one item per step and key (``KeyedState``), read at the key's first
  record of an invocation and written after its records, conditionally on the version read, so a retried
  or concurrent invocation cannot lose an update (the handler raises and Lambda retries the batch). The
  item's key holds a hash of the step's settings: a redeployment with other settings starts afresh.
* Order: streamlab applies events in arrival order. Kinesis orders records within a shard only, so
  **the stream's partition key must be {key!r}** (every record of a key in one shard, in order). A key
  whose state was last written from another shard is logged as a warning.
* A key's history is kept against that key's own newest event (streamlab: against the whole stream's),
  so results differ only for events later than ``allowed_lateness`` behind the stream; ``max_keys``
  and ``key_ttl``
  bounds each key's state alone. A key whose state would exceed DynamoDB's 400 KB item limit
  (STATE_ITEM_MAX_BYTES = {limit}, with its previous snapshot) sends the record to the step's dead letter
  with the reason, and its state stays as it was.
"""

_HEADER = '''"""AWS Lambda handler for streamlab pipeline {name!r} on a Kinesis event source.

Steps: {steps}.

{replay_input}Environment
-----------
TIMESTREAM_DATABASE, TIMESTREAM_TABLE  where final window results go (MULTI-measure records; the window
                                       keys are dimensions, which Timestream holds as text: ``str(value)``,
                                       so a reader converts an int64, float64 or bool key back; a ``json``
                                       key is its JSON text, so ``1``, ``1.0``, ``true`` and ``"1"`` stay
                                       four keys and ``json.loads`` reads one back; a missing or empty key
                                       is left out of the record, as TimestreamSink does: Timestream has
                                       no empty dimension value, so both read as null, and a window's
                                       results for both keys are one record (TimestreamSink's too): the
                                       higher version is kept, a write of the same version with other
                                       values is rejected (a dead letter, below), and ``verify`` notes
                                       that the writes collide; the first/last of a
                                       ``json`` field is a VARCHAR measure holding its JSON text likewise,
                                       the empty json string ``""``; of an ``object`` field, such as the
                                       default schema's ``properties``, its JSON text too;
                                       a time-valued result (``window_end``, first/last/min/max of a
                                       ``timestamp`` field) is a TIMESTAMP measure in epoch milliseconds,
                                       as TimestreamSink writes it: what is below the millisecond is lost
                                       (floored, as the record's time), a time before 1970 is a dead letter)
DEAD_LETTER_QUEUE_URL                  SQS queue for dead letters and late rows (JSON, with ``output``)
DEAD_LETTER_BUCKET                     optional S3 bucket for side outputs over the queue's
                                       MaximumMessageSize: the whole message is written there and the
                                       queue gets a pointer (``payload_s3``); without it such a message
                                       is sent truncated (``raw_truncated``, ``raw_bytes``, ``raw_sha256``)
WINDOW_TABLE                           DynamoDB table (hash key ``slot``, range key ``part``) merging the
                                       partial aggregates of windows written by several invocations,
                                       Lambda windows or shards (a partial over DynamoDB's 400 KB item
                                       limit in pieces of PART_MAX_CHARS); WINDOW_TABLE_TTL_DAYS (default
                                       7) keeps its items that long (DynamoDB TTL on ``expires_at``)
IDEMPOTENCY_TABLE                      optional DynamoDB table (key ``event_id``) remembering the ids of
                                       earlier Lambda windows, whose state Lambda does not carry over
AWS_ENDPOINT_URL                       optional endpoint for every client (a local stand-in such as moto)

Semantics (streamlab -> Lambda)
-------------------------------
* Records are base64-decoded and parsed with streamlab's checks; a record that fails goes to the
  dead-letter queue with ``raw``, ``reason`` and ``step_id``. If that send fails (or no queue is set),
  the record is reported in ``batchItemFailures``: Lambda retries from it (returning an empty list
  always would acknowledge, and lose, everything) and, after ``maximum_retry_attempts``, hands the batch
  to the event-source mapping's on-failure destination.
* Oversized side outputs (the SQS Extended Client pattern): a message over the queue's MaximumMessageSize
  (read once per container; 262,144 bytes if that fails) would fail on every retry and block its shard.
  With DEAD_LETTER_BUCKET it is written whole to S3 (key: pipeline/stream/shard/sequence number/output,
  so a retry overwrites it; ``raw_base64`` holds the record's exact bytes when ``raw`` is not valid UTF-8)
  and SQS gets a pointer: ``output``, ``reason``, the record's metadata, ``payload_s3`` (bucket, key) and
  ``payload_bytes``; a failure of either write retries the record. Without a bucket SQS gets the
  message truncated to fit, saying so: the reason, the metadata, the raw record cut to fit,
  ``raw_truncated``, ``raw_bytes`` and ``raw_sha256`` (of the whole record), and an error is logged.
* Window results Timestream cannot hold (an infinite DOUBLE measure, a text measure that is empty or
  over 2,048 bytes, dimensions over 2,048 bytes with their names: TimestreamSink's rules, copied from
  streamlab._timestream_values) are not written,
  which would fail the request on every retry: each goes to the dead-letter queue as output
  ``<window step>.timestream_dead_letter`` with the result's columns, ``reject_reason`` (TimestreamSink's
  text), ``step_id`` and ``version``; the other results are written. So do the records Timestream
  rejects (RejectedRecordsException: a time outside the memory store's retention, a version conflict),
  with Timestream's reason. If that send fails (or no queue is set) the invocation raises, and Lambda
  retries the batch.
  Timestream has no delete: a window written earlier (a lower version, from the events seen then) whose
  later, cumulative result goes to the dead-letter queue keeps that earlier record in Timestream, which
  then holds a partial result. The dead letter carries the window's keys, ``window_start`` and the
  ``version`` that superseded it: a reader should take a window with a dead letter of a higher version
  than its record from the dead letter, not from Timestream.
* State lives in Lambda's tumbling-window ``state`` (JSON, at most 1 MB): the watermark (largest event
  time seen minus the delay), open event-time windows with their aggregator accumulators, and the ids
  seen by dedup. Lambda's tumbling window is processing time; event-time windows inside it close as in
  streamlab, once the watermark reaches ``end + lateness``. At the final invocation of a Lambda window
  (``isFinalInvokeForWindow``) every still-open event-time window is written, as streamlab does at the
  end of input: choose ``tumbling_window_in_seconds`` well above window size + delay + lateness.
* Lambda ends a tumbling window early when its state exceeds 1 MB (``isWindowTerminatedEarly``; the
  next invocation continues that window with a fresh state). The handler does not let it come to that:
  a state over STATE_FLUSH_BYTES (900,000 bytes of JSON) is written out before it is returned, as at a
  final invocation (every open event-time window's partial, merged later through WINDOW_TABLE; the dedup
  ids to IDEMPOTENCY_TABLE), keeping the watermark. An invocation Lambda ends early anyway is taken as
  final, so nothing stays in a state Lambda drops.
* Windows that span invocations, Lambda windows or shards: Lambda's state does not carry over from one
  of its tumbling windows to the next, and each shard has its own. Every write of an event-time window
  therefore stores this writer's partial aggregate in WINDOW_TABLE (DynamoDB, one item per window, key
  and writer: the shard, Lambda's window start and the record its state started at, so a state begun
  afresh after an early end or a write-out is another writer), merges all partials of that window and writes the
  cumulative result to Timestream with the next version of the window (a conditional write on a
  version item), so the record with the highest version holds every event of the window; a retried
  invocation rewrites its own partial, never adds it twice. Without WINDOW_TABLE each writer's partial
  is written as it is (version 1): right only when every window lies inside one Lambda window of one
  shard whose state stays under STATE_FLUSH_BYTES.
* Idempotency: the state is returned only for records handled completely, so a retried batch starts
  from the state before it; Timestream keeps the highest version of each record; dedup drops
  repeated event ids within ``ttl``: ids of this Lambda window from the state, ids of earlier windows
  from IDEMPOTENCY_TABLE (written at each window's final invocation; DynamoDB's TTL, on ``expires_at``,
  runs on wall-clock time, while streamlab's ttl is event time). Dead letters and late rows are sent at least once: each message
  carries the Kinesis ``sequenceNumber`` to deduplicate on.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import logging
import math
import os
import re
import time
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

log = logging.getLogger(__name__)
'''

_BODY = '''

_clients = {{}}


def client(service):
    """A boto3 client, created once per container; AWS_ENDPOINT_URL points it at a local stand-in."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    if (service, endpoint) not in _clients:
        import boto3

        _clients[(service, endpoint)] = boto3.client(service, endpoint_url=endpoint)
    return _clients[(service, endpoint)]


def load_state(data):
    """Lambda's tumbling-window state (JSON) as working state."""
    data = data or {{}}
    windows = {{k: COMBINE.from_json(v) for k, v in data.get("windows", {{}}).items()}}
    return {{
        "max_ns": data.get("max_ns"),
        "dedup": load_dedup(data.get("dedup")),
        "windows": windows,
        "counts": dict(data.get("counts", {{}})),
        "since": data.get("since"),  # the sequence number this state started at: see window_writer
    }}


def dump_state(state):
    windows = {{k: COMBINE.to_json(v) for k, v in state["windows"].items()}}
    kept = {{k: v for k, v in state.items() if k != "keyed"}}
    return {{**kept, "windows": windows, "dedup": dump_dedup(state["dedup"])}}


STATE_FLUSH_BYTES = 900_000
"""Lambda keeps a tumbling window's state up to 1 MB per shard and ends the window early past that
(``isWindowTerminatedEarly``); a state over this many bytes of JSON is written out before it is returned
(see ``handler``)."""


def state_bytes(state):
    """Bytes of the state as Lambda receives it (JSON)."""
    return len(json.dumps(dump_state(state), default=json_default).encode("utf-8"))


def count(state, name):
    state["counts"][name] = state["counts"].get(name, 0) + 1


{steps}


def handle_record(record, state, side, index):
    """One Kinesis record through every step; side outputs are collected as (index, output, row).

    A record the Kinesis Producer Library aggregated is its user records, each with its own partition key
    and its place in the record (``subSequenceNumber``), as the KCL and streamlab's KinesisSource deliver
    them: the Lambda event source hands the aggregated record over as it is."""
    kinesis = record["kinesis"]
    data = kinesis.get("data")
    if data is None:  # a record without data: the parse step's dead letter (a tombstone), not a failed batch
        inside, aggregated = [(kinesis.get("partitionKey"), None)], False
    else:
        inside, aggregated = user_records(base64.b64decode(data), kinesis.get("partitionKey"))
    state["keyed"].seq = kinesis["sequenceNumber"]
    for sub, (key, raw) in enumerate(inside):
        meta = {{
            "sequenceNumber": kinesis["sequenceNumber"],
            "partitionKey": key,
            "approximateArrivalTimestamp": kinesis.get("approximateArrivalTimestamp"),
        }}
        if aggregated:
            meta["subSequenceNumber"] = sub
        try:
            row = parse_record(raw, PARSE_FIELDS, PARSE_REQUIRED, MAX_RECORD_BYTES)
        except BadRecordError as e:
            dead = {{**raw_dead_letter_row(raw, str(e), PARSE_STEP), **meta}}
            side.append((index, PARSE_STEP + ".dead_letter", dead))
            continue
        process_row(row, state, lambda output, r, meta=meta: side.append((index, output, {{**r, **meta}})))


def run_records(records, state, keyed=None):
    """Every record through the steps (``keyed``: the invocation's per-key state; a fresh one by default)."""
    state["keyed"] = KeyedState("") if keyed is None else keyed
    side = []
    for i, record in enumerate(records):
        handle_record(record, state, side, i)
    return state, side


FALLBACK_MESSAGE_BYTES = 262_144
"""SQS's default MaximumMessageSize before 2025: assumed when the queue's cannot be read."""

_queue_limits = {{}}


def queue_limit(queue):
    """The queue's MaximumMessageSize in bytes, read once per container (FALLBACK_MESSAGE_BYTES for this
    invocation if the read fails: a smaller limit only sends more dead letters the oversized way)."""
    if queue not in _queue_limits:
        try:
            attrs = client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["MaximumMessageSize"])
            _queue_limits[queue] = int(attrs["Attributes"]["MaximumMessageSize"])
        except Exception:
            log.warning("reading MaximumMessageSize of %s failed; assuming %s", queue, FALLBACK_MESSAGE_BYTES)
            return FALLBACK_MESSAGE_BYTES
    return _queue_limits[queue]


def message_bytes(body, attributes=None):
    """What SQS counts against MaximumMessageSize: the body and each attribute's name, type and value
    (UTF-8 bytes)."""
    size = len(body.encode("utf-8"))
    for name, attr in (attributes or {{}}).items():
        value = attr.get("StringValue")
        value = value.encode("utf-8") if value is not None else attr.get("BinaryValue", b"")
        size += len(name.encode("utf-8")) + len(attr["DataType"].encode("utf-8")) + len(value)
    return size


def record_raw(record):
    """The Kinesis record's bytes (None without a record)."""
    data = ((record or {{}}).get("kinesis") or {{}}).get("data")
    return None if data is None else base64.b64decode(data)


def dead_letter_key(record, shard, output, nth):
    """The S3 key of an oversized side output: the same for a retried record, so a retry overwrites it."""
    kinesis = (record or {{}}).get("kinesis") or {{}}
    stream = (record or {{}}).get("eventSourceARN", "").rsplit("/", 1)[-1] or "stream"
    shard = ((record or {{}}).get("eventID") or "").split(":", 1)[0] or shard or "shard"
    suffix = f".{{nth}}" if nth else ""
    return f"{{PIPELINE_NAME}}/{{stream}}/{{shard}}/{{kinesis.get('sequenceNumber')}}/{{output}}{{suffix}}.json"


def oversized_head(output, row, record, size, limit):
    """What a pointer or a truncated message keeps of a side output: its name, reason and the record's
    metadata."""
    kinesis = (record or {{}}).get("kinesis") or {{}}
    head = {{"output": output}}
    for name in ("reason", "reject_reason", "step_id"):
        if row.get(name) is not None:
            head[name] = str(row[name])[:4096]
    if "version" in row:  # a rejected window result: which window
        head["window_start"], head["version"] = row["window_start"], row["version"]
    head["sequenceNumber"] = row.get("sequenceNumber", kinesis.get("sequenceNumber"))
    head["partitionKey"] = row.get("partitionKey", kinesis.get("partitionKey"))
    arrival = "approximateArrivalTimestamp"
    head[arrival] = row.get(arrival, kinesis.get(arrival))
    head["message_bytes"] = size
    head["queue_limit_bytes"] = limit
    return head


def offload(bucket, key, output, row, record, body, size, limit):
    """Write the whole side output to S3 and return the pointer message for SQS (None if the write failed).

    The object is the message that did not fit (``raw`` as text, invalid UTF-8 replaced); when that text is
    not the record's exact bytes, ``raw_base64`` holds them.
    """
    raw = record_raw(record)
    payload = body
    if raw is not None and isinstance(row.get("raw"), str):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            exact = base64.b64encode(raw).decode("ascii")
            payload = dump_json({{"output": output, **row, "raw_base64": exact}})
    data = payload.encode("utf-8")
    try:
        client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
    except Exception:
        log.exception(
            "writing %s of record %s (%s bytes) to s3://%s/%s failed; Lambda will retry it",
            output, row.get("sequenceNumber"), len(data), bucket, key,
        )
        return None
    pointer = oversized_head(output, row, record, size, limit)
    pointer["payload_s3"] = {{"bucket": bucket, "key": key}}
    return dump_json({{**pointer, "payload_bytes": len(data)}})


def truncated(output, row, record, body, size, limit):
    """A message that fits ``limit``: the reason, the record's metadata and its raw bytes cut to fit, with
    ``raw_truncated``, ``raw_bytes`` and ``raw_sha256`` (of the whole record) saying what was cut."""
    raw = record_raw(record)
    if raw is None:
        raw = body.encode("utf-8")  # no record at hand: the message itself is what gets cut
    head = {{
        **oversized_head(output, row, record, size, limit),
        "raw_truncated": True,
        "raw_bytes": len(raw),
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
    }}
    if "reason" in head and message_bytes(dump_json({{**head, "raw": ""}})) > limit:  # a reason of escapes
        reason = head["reason"]
        head["reason"] = longest_prefix(lambda r: dump_json({{**head, "reason": r, "raw": ""}}), reason, limit)
    text = longest_prefix(lambda r: dump_json({{**head, "raw": r}}), raw.decode("utf-8", "replace"), limit)
    return dump_json({{**head, "raw": text}})


def longest_prefix(message, text, limit):
    """The longest prefix of ``text`` whose ``message(prefix)`` fits ``limit`` bytes (a binary search: a
    character takes a byte or more)."""
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if message_bytes(message(text[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def send_side_outputs(side, records=(), shard=""):
    """Send dead letters and late rows to SQS; the index of the first record that failed, or None.

    A message over the queue's MaximumMessageSize goes to S3 (DEAD_LETTER_BUCKET) whole, and SQS gets a
    pointer to it; without a bucket SQS gets it truncated to fit, saying so (it would fail on every retry).
    """
    queue = os.environ.get("DEAD_LETTER_QUEUE_URL")
    bucket = os.environ.get("DEAD_LETTER_BUCKET")
    limit = None
    nth = {{}}
    for index, output, row in side:
        if not queue:
            log.error("no DEAD_LETTER_QUEUE_URL: retrying record %s (%s)", row.get("sequenceNumber"), output)
            return index
        record = records[index] if index < len(records) else None
        ident = (index, output)
        nth[ident] = nth.get(ident, -1) + 1
        try:
            body = dump_json({{"output": output, **row}})
            limit = queue_limit(queue) if limit is None else limit
            size = message_bytes(body)
            if size > limit and bucket:
                key = dead_letter_key(record, shard, output, nth[ident])
                body = offload(bucket, key, output, row, record, body, size, limit)
                if body is None:
                    return index
            elif size > limit:
                log.error(
                    "%s of record %s is %s bytes, over the queue's MaximumMessageSize of %s: sent truncated "
                    "(raw_truncated); set DEAD_LETTER_BUCKET to keep whole payloads in S3",
                    output, row.get("sequenceNumber"), size, limit,
                )
                body = truncated(output, row, record, body, size, limit)
            client("sqs").send_message(QueueUrl=queue, MessageBody=body)
        except Exception:
            log.exception("sending %s of record %s failed; Lambda will retry it", output, row.get("sequenceNumber"))
            return index
    return None


def timestream_record(result, version=1):
    dimensions = [{{"Name": "pipeline", "Value": PIPELINE_NAME}}]
    for k in WINDOW_KEYS:  # a missing or empty key is left out: Timestream has no empty dimension
        text = dimension_text(result[k], k in JSON_KEYS)
        if text is not None:
            dimensions.append({{"Name": k, "Value": text}})
    measures = [{{"Name": "window_end", "Value": timestamp_text(to_ns(result["window_end"])), "Type": "TIMESTAMP"}}]
    for name, kind in MEASURE_TYPES:
        value = result[name]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # Timestream has no NaN: a missing measure reads as null
        if kind == "BOOLEAN":
            text = "true" if value else "false"  # Timestream's booleans
        elif kind == "TIMESTAMP":  # epoch milliseconds, as TimestreamSink (the record's TimeUnit)
            text = timestamp_text(to_ns(value))
        elif kind == "VARCHAR":  # TimestreamSink's text: a json value's JSON text
            text = text_value(value, name in JSON_MEASURES)
        else:
            text = str(value)
        measures.append({{"Name": name, "Value": text, "Type": kind}})
    return {{
        "Dimensions": dimensions,
        "MeasureName": WINDOW_STEP,
        "MeasureValueType": "MULTI",
        "MeasureValues": measures,
        "Time": timestamp_text(to_ns(result["window_start"])),
        "TimeUnit": "MILLISECONDS",
        "Version": version,
    }}


def window_writer(event, state):
    """Who writes a partial aggregate: the shard, Lambda's window start and the sequence number its state
    started at, the same on a retry. A window Lambda ends early (``isWindowTerminatedEarly``: its state
    over 1 MB) continues with a fresh state, which starts at a later record: its partial of an event-time
    window is another writer's, merged with the earlier one, not written over it."""
    window = event.get("window") or {{}}
    return f"{{event.get('shardId', '')}}|{{window.get('start', '')}}|{{state.get('since') or ''}}"


KEY_MAX_BYTES = 2048
"""DynamoDB's limit on a partition key value, in UTF-8 bytes."""


def dynamodb_key(text):
    """``text`` as a DynamoDB partition key: itself, or over the 2,048 bytes DynamoDB takes (a long window
    key, event id or keyed step's key) ``#sha256:`` and its digest: sent as it is, it would fail the
    request on every retry of the batch and stop the shard. No other key the handler writes starts with ``#``."""
    data = text.encode("utf-8", "surrogatepass")
    return text if len(data) <= KEY_MAX_BYTES else "#sha256:" + hashlib.sha256(data).hexdigest()


PART_MAX_CHARS = 300_000
"""Characters of a partial aggregate's JSON text (ASCII) per WINDOW_TABLE item: DynamoDB's item limit is
400 KB, and a window's partial (a count_distinct of many values) can be larger."""


def put_partial(db, table, slot, writer, text, expires):
    """Store ``writer``'s partial aggregate (its JSON text) in items of at most PART_MAX_CHARS: the item
    ``writer`` holds the first piece with the number of pieces and the digest of the whole text, the
    items ``writer#<i>`` the others. In one item, a partial over 400 KB failed the request on every retry
    of the batch and stopped the shard. The pieces are written before the first: a reader checks the digest."""
    pieces = [text[i : i + PART_MAX_CHARS] for i in range(0, len(text), PART_MAX_CHARS)] or [""]
    for i in range(len(pieces) - 1, -1, -1):
        item = {{"slot": {{"S": slot}}, "part": {{"S": writer if i == 0 else f"{{writer}}#{{i}}"}}}}
        item.update(acc={{"S": pieces[i]}}, expires_at={{"N": expires}})
        if i == 0:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            item.update(pieces={{"N": str(len(pieces))}}, digest={{"S": digest}})
        db.put_item(TableName=table, Item=item)


def read_partials(items):
    """The partial aggregates (JSON texts) of a window's items, one per writer. A writer whose pieces do
    not match its digest is being rewritten, by a retry of its batch after a failure: it is left out
    here, and its own write then merges every writer's partial with a higher version."""
    pieces = {{i["part"]["S"]: i["acc"]["S"] for i in items}}
    texts = []
    for item in items:
        if "#" in item["part"]["S"]:  # a later piece, or the version item
            continue
        writer, count = item["part"]["S"], int(item["pieces"]["N"]) if "pieces" in item else 1
        text = "".join([pieces[writer]] + [pieces.get(f"{{writer}}#{{k}}", "") for k in range(1, count)])
        if "digest" in item and hashlib.sha256(text.encode("utf-8")).hexdigest() != item["digest"]["S"]:
            log.warning("the partial of %s in window item %s is being rewritten: left out", writer, item["slot"]["S"])
            continue
        texts.append(text)
    return texts


def merge_partial(table, slot, writer, acc):
    """Store ``writer``'s partial aggregate of a window and merge every writer's: (merged, version).

    The version item is written conditionally on the version read before the partials were, so of two
    concurrent writers the one with the higher version has read both partials.
    """
    db = client("dynamodb")
    expires = str(int(time.time()) + 86_400 * int(os.environ.get("WINDOW_TABLE_TTL_DAYS", "7")))
    put_partial(db, table, slot, writer, json.dumps(COMBINE.to_json(acc), default=json_default), expires)
    version_key = {{"slot": {{"S": slot}}, "part": {{"S": "#version"}}}}
    while True:
        head = db.get_item(TableName=table, Key=version_key, ConsistentRead=True).get("Item")
        version = int(head["version"]["N"]) if head else 0
        parts, query = [], {{
            "TableName": table,
            "KeyConditionExpression": "slot = :s",
            "ExpressionAttributeValues": {{":s": {{"S": slot}}}},
            "ConsistentRead": True,
        }}
        while True:
            page = db.query(**query)
            parts += [i for i in page["Items"] if i["part"]["S"] != "#version"]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        merged = COMBINE.merge_accumulators([COMBINE.from_json(json.loads(t)) for t in read_partials(parts)])
        try:
            db.put_item(
                TableName=table,
                Item={{**version_key, "version": {{"N": str(version + 1)}}, "expires_at": {{"N": expires}}}},
                ConditionExpression="attribute_not_exists(version)" if head is None else "version = :v",
                **({{}} if head is None else {{"ExpressionAttributeValues": {{":v": {{"N": str(version)}}}}}}),
            )
        except db.exceptions.ConditionalCheckFailedException:
            continue  # another writer merged in between: read again
        return merged, version + 1


def window_results(closed, writer):
    """Result rows of closed windows, each with its Timestream version (cumulative over writers)."""
    table = os.environ.get("WINDOW_TABLE")
    results = []
    for start, key, acc in closed:
        version = 1
        if table:
            acc, version = merge_partial(table, dynamodb_key(f"{{start}}|{{key}}"), writer, acc)
        keys = dict(zip(WINDOW_KEYS, json.loads(key)))
        window = {{"window_start": from_ns(start), "window_end": from_ns(start + WINDOW_SIZE_NS)}}
        results.append(({{**keys, **window, **COMBINE.extract_output(acc)}}, version))
    return results


REJECTED_OUTPUT = WINDOW_STEP + {rejected!r}
"""The dead-letter queue's ``output`` of window results Timestream cannot hold (TimestreamSink's dead_letter)."""


def rejected_key(row):
    """The S3 key of an oversized rejected result: its window, keys and version, so a retry overwrites it."""
    keys = hashlib.sha256(dump_json([row.get(k) for k in WINDOW_KEYS]).encode("utf-8")).hexdigest()[:16]
    start = to_ns(row["window_start"]) // 1_000_000
    return f"{{PIPELINE_NAME}}/{{REJECTED_OUTPUT}}/{{start}}/{{keys}}/v{{row['version']}}.json"


def send_rejected(rows):
    """Send window results Timestream cannot hold to the dead-letter queue (over its MaximumMessageSize:
    whole to DEAD_LETTER_BUCKET with a pointer, or cut to fit), as TimestreamSink sends them to its
    dead_letter; raise when a send fails or no queue is set, so Lambda retries the batch rather than lose them."""
    queue = os.environ.get("DEAD_LETTER_QUEUE_URL")
    bucket = os.environ.get("DEAD_LETTER_BUCKET")
    if rows and not queue:
        raise RuntimeError(
            f"no DEAD_LETTER_QUEUE_URL for {{len(rows)}} window result(s) Timestream cannot hold "
            f"({{rows[0]['reject_reason']}}): retrying the batch"
        )
    for row in rows:
        body = dump_json({{"output": REJECTED_OUTPUT, **row}})
        limit = queue_limit(queue)
        size = message_bytes(body)
        if size > limit and bucket:
            body = offload(bucket, rejected_key(row), REJECTED_OUTPUT, row, None, body, size, limit)
            if body is None:
                raise RuntimeError(f"writing a rejected window result to s3://{{bucket}} failed: retrying the batch")
        elif size > limit:
            log.error(
                "a rejected window result is %s bytes, over the queue's MaximumMessageSize of %s: sent "
                "truncated (raw_truncated); set DEAD_LETTER_BUCKET to keep whole payloads in S3", size, limit,
            )
            body = truncated(REJECTED_OUTPUT, row, None, body, size, limit)
        client("sqs").send_message(QueueUrl=queue, MessageBody=body)


def write_results(results):
    """Write (result, version) pairs to Timestream, 100 records per call (the API's limit). A result with a
    measure Timestream cannot hold (``measure_problem``: an infinite DOUBLE, an empty or oversized text)
    or dimensions over its 2 KB a series (``series_problem``) goes to the dead-letter queue with
    ``reject_reason`` instead: sent as text, Timestream would refuse the request (or botocore before
    sending), on every retry of the batch."""
    database = os.environ.get("TIMESTREAM_DATABASE", {database!r})
    table = os.environ.get("TIMESTREAM_TABLE", {table!r})
    records, rejected = [], []

    def dead(result, version, reason):
        return {{**result, "reject_reason": reason, "step_id": WINDOW_STEP, "version": version}}

    for result, version in results:
        record = timestream_record(result, version)
        problem = measure_problem([(m["Name"], m["Type"], m["Value"]) for m in record["MeasureValues"]])
        problem = problem or series_problem([(d["Name"], d["Value"]) for d in record["Dimensions"]])
        if problem:
            rejected.append(dead(result, version, problem))
        else:
            records.append((record, result, version))
    send_rejected(rejected)
    for i in range(0, len(records), 100):
        chunk = records[i : i + 100]
        timestream = client("timestream-write")
        try:
            timestream.write_records(DatabaseName=database, TableName=table, Records=[r for r, _, _ in chunk])
        except timestream.exceptions.RejectedRecordsException as e:
            # the request's other records were written; these were not, and would be refused on every
            # retry: dead letters with Timestream's reason, as TimestreamSink's
            refused = e.response.get("RejectedRecords", [])
            send_rejected(
                [dead(*chunk[int(r["RecordIndex"])][1:], str(r.get("Reason", "rejected"))) for r in refused]
            )


def handler(event, context=None):
    """Kinesis batch in, partial-batch response (and the tumbling-window state) out."""
    records = event.get("Records") or []
    keyed = KeyedState(event.get("shardId", ""))
    state, side = run_records(records, load_state(event.get("state")), keyed)
    failed_at = send_side_outputs(side, records, event.get("shardId", ""))
    if failed_at is not None:
        # keep only what the records before the failed one did; Lambda redelivers from it
        keyed.reset()
        state, _ = run_records(records[:failed_at], load_state(event.get("state")), keyed)
    if state["since"] is None and records:
        state["since"] = records[0]["kinesis"]["sequenceNumber"]
    keyed.save()  # before the results: if another invocation wrote a key's state meanwhile, this raises
    # A window Lambda ended early (its state over 1 MB) continues with a fresh state: the state returned
    # now would be dropped, so this is its final invocation, whether or not isFinalInvokeForWindow says so.
    ends = event.get("isFinalInvokeForWindow", "window" not in event) or event.get("isWindowTerminatedEarly")
    final = bool(ends) and failed_at is None
    write_results(window_results(close_windows(state, final), window_writer(event, state)))
    if final:
        on_final(state)
    elif failed_at is None and state_bytes(state) > STATE_FLUSH_BYTES:
        # Returned, this state would make Lambda end the window early: write every open window now, as a
        # final invocation does (WINDOW_TABLE merges the rest of each with it later), remember the dedup
        # ids in IDEMPOTENCY_TABLE, and go on with a new writer, the watermark kept.
        write_results(window_results(close_windows(state, True), window_writer(event, state)))
        on_final(state)
        state.update(windows={{}}, dedup=shed_dedup(state["dedup"]), since=None)
        if state_bytes(state) > STATE_FLUSH_BYTES:
            log.warning(
                "the state is %s bytes with every window written (the dedup ids: set IDEMPOTENCY_TABLE to "
                "keep them there); Lambda will end its window early and start afresh", state_bytes(state),
            )
    failures = [] if failed_at is None else [{{"itemIdentifier": records[failed_at]["kinesis"]["sequenceNumber"]}}]
    return {{"state": dump_state(state), "batchItemFailures": failures}}
'''


_IDEMPOTENCY = '''

def load_dedup(data):
    """The dedup step's state (streamlab's ``Dedup`` rule) from Lambda's JSON state."""
    return Dedup.from_json(data, DEDUP_TTL_NS, DEDUP_MAX_IDS)


def dump_dedup(rule):
    return rule.to_json()


_remembered = {{}}


def remembered_first_seen(event_id):
    """``(True, first event time ns or None)`` for an id seen in an earlier Lambda window (from
    IDEMPOTENCY_TABLE, if set), ``(False, None)`` otherwise.

    Lambda's state starts empty in every tumbling window; the table carries the ids across windows.
    """
    table = os.environ.get("IDEMPOTENCY_TABLE")
    if not table:
        return False, None
    name = dynamodb_key(json.dumps([event_id], default=json_default))  # the item key earlier exports wrote too
    if name not in _remembered:
        item = client("dynamodb").get_item(
            TableName=table, Key={{"event_id": {{"S": name}}}}, ConsistentRead=True
        ).get("Item")
        first = None if item is None or "N" not in item["first_seen_ns"] else int(item["first_seen_ns"]["N"])
        _remembered[name] = (item is not None, first)
    return _remembered[name]


def shed_dedup(rule):
    """The dedup state once ``on_final`` wrote its ids to IDEMPOTENCY_TABLE: without them (the table
    answers for them), its watermark kept; without a table, as it is."""
    if not os.environ.get("IDEMPOTENCY_TABLE"):
        return rule
    return Dedup.from_json({{"max_ns": rule.max_ns, "forgotten": rule.forgotten}}, DEDUP_TTL_NS, DEDUP_MAX_IDS)


def on_final(state):
    """End of a Lambda window: remember its ids in IDEMPOTENCY_TABLE for the next windows.

    Runs after the results are written, so a retried final invocation writes the same items again.
    ``expires_at`` (DynamoDB TTL, epoch seconds) is the first event time plus the dedup ttl.
    """
    table = os.environ.get("IDEMPOTENCY_TABLE")
    if not table:
        return
    items = []
    held = {{dynamodb_key(json.dumps([k], default=json_default)): t for k, t in state["dedup"].seen.items()}}
    for name, first_ns in held.items():
        first = {{"NULL": True}} if first_ns is None else {{"N": str(first_ns)}}
        item = {{"event_id": {{"S": name}}, "first_seen_ns": first}}
        if DEDUP_TTL_NS is not None and first_ns is not None:
            item["expires_at"] = {{"N": str((first_ns + DEDUP_TTL_NS) // 1_000_000_000)}}
        items.append({{"PutRequest": {{"Item": item}}}})
    for i in range(0, len(items), 25):  # the BatchWriteItem limit
        pending = {{table: items[i : i + 25]}}
        while pending:
            pending = client("dynamodb").batch_write_item(RequestItems=pending).get("UnprocessedItems") or {{}}
    _remembered.update({{name: (True, t) for name, t in held.items()}})
'''

_NO_IDEMPOTENCY = '''

def load_dedup(data):
    return None


def dump_dedup(rule):
    return None


def shed_dedup(rule):
    return rule


def on_final(state):
    """End of a Lambda window: nothing to carry over (the pipeline has no dedup step)."""
'''
_KEYED = '''

class KeyedState:
    """The per-key state of the feature and velocity steps: one DynamoDB item per step and key.

    Each item (in WINDOW_TABLE, hash key ``state|<step>|<spec hash>|<key>``, or its digest over DynamoDB's
    2,048 bytes: ``dynamodb_key``; range key ``#state``) holds
    the key's state machine (streamlab's ``make_step``, pickled) after the last record applied, that
    record's shard and sequence number, and the snapshot it started from (``start``, ``start_seq``). A
    key's items (of every keyed step: they share the key column) are read consistently at its first
    record in an invocation (BatchGetItem) and written once after the invocation's records
    (TransactWriteItems), each conditionally on the version read: if another invocation wrote one meanwhile,
    the handler raises and Lambda retries the batch from the state now stored, so no update is lost. A
    retried batch (the first attempt timed out after writing) reaches records at or before the stored
    sequence number of the same shard: it starts again from the stored ``start``, so each record counts
    once. A record whose key's item would exceed DynamoDB's 400 KB item limit (STATE_ITEM_MAX_BYTES with
    the start snapshot) goes to the step's dead letter with the reason, and leaves the state as it was.
    """

    def __init__(self, shard):
        self.shard = shard
        self.seq = None
        # keyed by (step, typed_id(key)): a json key's true, 1 and 1.0 are three keys, as in streamlab
        self.items = {}  # (step, key) -> what was read: the start snapshot, its sequence number, the version
        self.machines = {}  # (step, key) -> [machine, its pickle, sequence number of its last record]

    def reset(self):
        """Forget this invocation's updates (the reads stay): the records are run again from the start."""
        self.machines = {}

    def slot(self, sid, key):
        return dynamodb_key(f"state|{sid}|{KEYED_SPECS[sid][1]}|{json.dumps([key], default=json_default)}")

    def fetch(self, key):
        """Read ``key``'s items of every keyed step (one BatchGetItem: the steps share their key column)."""
        table = os.environ.get("WINDOW_TABLE")
        if not table:
            raise RuntimeError(
                f"steps {list(KEYED_SPECS)} keep per-key state in DynamoDB: set WINDOW_TABLE (the Terraform "
                "creates it)"
            )
        slots = {self.slot(sid, key): sid for sid in KEYED_SPECS}
        request = {table: {"Keys": [{"slot": {"S": s}, "part": {"S": "#state"}} for s in slots], "ConsistentRead": True}}
        found = {}
        while request:
            page = client("dynamodb").batch_get_item(RequestItems=request)
            found.update({i["slot"]["S"]: i for i in page["Responses"].get(table, [])})
            request = page.get("UnprocessedKeys") or {}
        for slot, sid in slots.items():
            self.items[(sid, typed_id(key))] = self.read(sid, key, table, slot, found.get(slot))

    def read(self, sid, key, table, slot, item):
        """Where this invocation starts the key's state: the stored state, or on a retry its start."""
        read = {"table": table, "slot": slot, "version": 0, "start": None, "start_seq": None}
        if item is None:
            return read
        read["version"] = int(item["version"]["N"])
        stored_seq = item["seq"]["S"]
        if item["shard"]["S"] == self.shard and int(self.seq) <= int(stored_seq):
            # a retry of the batch that wrote the item: start again from the state before it
            if "start_seq" in item and int(self.seq) <= int(item["start_seq"]["S"]):
                raise RuntimeError(
                    f"step {sid!r}, key {key!r}: record {self.seq} was applied before the stored snapshot "
                    f"(up to {item['start_seq']['S']}); its state cannot be rebuilt"
                )
            read["start"] = bytes(item["start"]["B"]) if "start" in item else None
            read["start_seq"] = item["start_seq"]["S"] if "start_seq" in item else None
        else:
            if item["shard"]["S"] != self.shard:
                log.warning(
                    "step %r, key %r: state last written from %s, now read from %s; records of one key must "
                    "go to one shard (partition key = %r) to keep their order",
                    sid, key, item["shard"]["S"], self.shard, KEYED_SPECS[sid][0]["key"],
                )
            read["start"], read["start_seq"] = bytes(item["state"]["B"]), stored_seq
        return read

    def process(self, sid, key, row):
        """The step's outputs for ``row`` (of this invocation's record ``self.seq``), or None with the reason
        when the key's state would grow past the item limit."""
        ident = (sid, typed_id(key))
        held = self.machines.get(ident)
        if held is None:
            read = self.items.get(ident)
            if read is None:
                self.fetch(key)
                read = self.items[ident]
            held = self.machines[ident] = [self.load(sid, read["start"]), read["start"], None]
        outputs = held[0].process(row)
        after = pickle.dumps(held[0], protocol=4)
        size = len(after) + len(self.items[ident]["start"] or b"")
        if size > STATE_ITEM_MAX_BYTES:
            held[0] = self.load(sid, held[1])
            return None, (
                f"the state of key {key!r} would grow to {size} bytes, over DynamoDB's item limit "
                f"({STATE_ITEM_MAX_BYTES} bytes with its previous snapshot): the record is not applied; "
                "lower max_keys/history/window, or export to Apache Beam (to_beam)"
            )
        held[1], held[2] = after, self.seq
        return outputs, None

    def load(self, sid, data):
        if data is None:
            return make_step(KEYED_SPECS[sid][0], eval_expr, to_ns, from_ns)
        machine = pickle.loads(data)
        machine.bind(eval_expr, to_ns, from_ns)
        return machine

    def save(self):
        """Write each changed key's state, conditionally on the version read (see the class docstring), in
        transactions of 100 items (the API's limit)."""
        writes = []
        for ident, (_, data, seq) in self.machines.items():
            if seq is None:
                continue
            read = self.items[ident]
            item = {
                "slot": {"S": read["slot"]},
                "part": {"S": "#state"},
                "version": {"N": str(read["version"] + 1)},
                "shard": {"S": self.shard},
                "seq": {"S": seq},
                "state": {"B": data},
            }
            if read["start"] is not None:
                item["start"] = {"B": read["start"]}
                item["start_seq"] = {"S": read["start_seq"]}
            put = {"TableName": read["table"], "Item": item, "ConditionExpression": "attribute_not_exists(version)"}
            if read["version"]:
                put["ConditionExpression"] = "version = :v"
                put["ExpressionAttributeValues"] = {":v": {"N": str(read["version"])}}
            writes.append({"Put": put})
        db = client("dynamodb")
        for i in range(0, len(writes), 100):
            try:
                db.transact_write_items(TransactItems=writes[i : i + 100])
            except db.exceptions.TransactionCanceledException as e:
                raise RuntimeError(
                    "another invocation wrote the state of a key of this batch meanwhile (records of one key in "
                    "several shards, or a timed-out invocation still running); Lambda retries the batch from the "
                    f"state now stored ({e})"
                ) from None
'''


_NO_KEYED = '''

class KeyedState:
    """No step keeps per-key state: nothing to load or save."""

    def __init__(self, shard):
        self.seq = None

    def reset(self):
        pass

    def save(self):
        pass
'''


def _chain(p: Pipeline) -> list[Step]:
    """The steps from parse to the window as one line; anything else cannot run in one handler."""
    consumers = p.consumers()
    parse = [s for s in p.steps.values() if isinstance(s, ParseStep)]
    if len(parse) != 1:
        raise PipelineConfigError(
            "pipeline",
            "pipeline",
            "cannot export to AWS Lambda: expected exactly one parse step",
            "parse once",
        )
    chain: list[Step] = []
    step: Step = parse[0]
    while True:
        chain.append(step)
        nexts = [
            p.steps[sid]
            for sid, _ in consumers.get(step.step_id, [])
            if not isinstance(p.steps[sid], SinkStep)
        ]
        if not nexts:
            break
        if len(nexts) > 1:
            raise _plan.unsupported(
                step,
                "AWS Lambda",
                f"its output feeds {len(nexts)} steps ({', '.join(s.step_id for s in nexts)}); the handler runs one chain",
                "export one branch per function, or use to_beam for branching pipelines",
            )
        step = nexts[0]
    for step in p.steps.values():
        if isinstance(step, (SourceStep, SinkStep)) or step in chain:
            continue
        raise _plan.unsupported(
            step, "AWS Lambda", "it reads a side output; the handler runs one chain", "remove it"
        )
    return chain


def _check(p: Pipeline) -> list[Step]:
    for step in p.steps.values():
        if isinstance(step, WindowStep) and isinstance(step.window, TumblingWindow):
            parts = _plan.window_geometry(step)
            why = "Timestream keeps times in milliseconds: windows finer than that would collide in it"
            _plan.refuse_finer_than(step, {k: parts[k] for k in ("size", "offset")}, "ms", "AWS Lambda", why)
        if isinstance(step, WindowStep) and not isinstance(step.window, TumblingWindow):
            kind = "session" if step.window.kind == "session" else "sliding"
            raise _plan.unsupported(
                step,
                "AWS Lambda",
                f"{kind} windows do not map to Lambda's tumbling-window state (one state per tumbling "
                "window of processing time, no merging and no overlap)",
                "use a TumblingWindow for Lambda, or export to Beam (to_beam) which supports it",
            )
    _plan.check_steps(p, "AWS Lambda", operators=True)
    keyed: OperatorStep | None = None
    for step in p.steps.values():
        if not isinstance(step, OperatorStep) or isinstance(step.config, ThresholdRule):
            continue
        if not _keyed(step.config):
            raise _plan.unsupported(
                step,
                "AWS Lambda",
                _why_not(step.config),
                "export to Apache Beam instead (to_beam: per-key state and river models as Beam state), or run "
                "the pipeline with streamlab itself (Pipeline.to_yaml, `streamlab run`)",
            )
        if keyed is not None and _detectors.state_key(step.config) != _detectors.state_key(keyed.config):
            raise _plan.unsupported(
                step,
                "AWS Lambda",
                f"it keeps state per {_detectors.state_key(step.config)!r} while step {keyed.step_id!r} keeps "
                f"it per {_detectors.state_key(keyed.config)!r}; Kinesis orders records per shard only, so the "
                "stream's partition key must be the one key of every keyed step",
                "key the features and velocity rules by one column, export one function per key, or export to "
                "Apache Beam (to_beam)",
            )
        keyed = keyed or step
    chain = _chain(p)
    dedups = [s for s in chain if isinstance(s, DedupStep)]
    if len(dedups) > 1:
        raise _plan.unsupported(
            dedups[1],
            "AWS Lambda",
            "the handler holds one dedup state (and one idempotency table)",
            "dedup once, or export to Beam (to_beam)",
        )
    windows = [s for s in chain if isinstance(s, WindowStep)]
    if len(windows) != 1 or chain[-1] is not windows[0]:
        raise PipelineConfigError(
            chain[-1].step_id,
            label_of(chain[-1]),
            "cannot export to AWS Lambda: the handler writes tumbling-window results to Timestream, so the "
            "chain must end in exactly one window step",
            "end the pipeline with .window(TumblingWindow(...)).agg(...)",
        )
    window = windows[0]
    taken = {"pipeline": "the dimension naming the pipeline", "window_end": "the measure of the window's end"}
    for key in window.keys:  # an aggregator's name is refused by the window step itself
        if key in taken:
            raise PipelineConfigError(
                window.step_id,
                window.kind,
                f"cannot export to AWS Lambda: the window key column {key!r} would be a Timestream dimension "
                f"named like {taken[key]}; a Timestream record needs distinct dimension and measure names",
                f"rename the column before the window (.select(..., {key}_key={key!r}), key='{key}_key')",
            )
        problem = dimension_name_problem(key)
        if problem:
            raise PipelineConfigError(
                window.step_id,
                window.kind,
                f"cannot export to AWS Lambda: the window key column {key!r} would be a Timestream dimension, "
                f"and {problem}: every write of the window's results would fail (Lambda retrying the batch)",
                f"rename the column before the window to a name Timestream takes (.select(..., key_name={key!r}), "
                "key='key_name')",
            )
    return chain


def _small_model(config: Any) -> bool:
    """A detect step whose state splits by key and whose model per key is small (``_SMALL_MODELS``)."""
    return (
        isinstance(config, Detect)
        and config.detector.describe()["kind"] in _SMALL_MODELS
        and _detectors.state_key(config) is not None
    )


def _keyed(config: Any) -> bool:
    """Whether the handler keeps the step's state per key in DynamoDB."""
    return isinstance(config, _KEYED_TYPES) or _small_model(config)


def _why_not(config: Any) -> str:
    """Why a step's state does not fit the handler, with the limits."""
    limits = (
        "the handler keeps Lambda's tumbling-window state (at most 1 MB per shard, reset at each Lambda "
        "window) and one DynamoDB item per step and key (at most 400 KB)"
    )
    kinds = "rules, per-key features and keyed GaussianScorer/StandardAbsoluteDeviation detect steps"
    if isinstance(config, Detect) and _detectors.state_key(config) is None:
        return (
            f"the step keeps state across all keys (no key, or a threshold that learns from every key's "
            f"scores), which every invocation of every shard would contend on; {limits}, so it translates "
            f"{kinds} only"
        )
    if isinstance(config, Detect):
        return (
            "the step keeps state per key too large for it: its detector's model per key (trees, weights or "
            f"a buffer of points) passes what {limits} can hold, so it translates {kinds} only"
        )
    return (
        "the step keeps state across events (a drift detector's statistics or a pattern's buffer, over all "
        f"keys) that outgrows what the handler keeps: {limits}, so it translates {kinds} only"
    )


class _Steps:
    def __init__(self, p: Pipeline, chain: list[Step]) -> None:
        self.p = p
        self.chain = chain
        self.snippets: set[str] = {
            "parse_record",
            "json_default",
            "dead_letter_row",
            "to_ns",
            "from_ns",
            "RowCombine",
            "group_key",
        }
        self.consts: list[str] = []
        self.imports: list[str] = []
        self.user_code: list[str] = []
        self.lines: list[str] = []
        self.row_steps = False
        self.unfit = False  # the window checks its rows with ``unfit_reason``
        self.keyed: dict[str, tuple[str, str]] = {}  # step id -> (spec constant, spec hash)
        self.types: dict[str, dict[str, str]] | None = None

    def numeric(self, step: Step) -> str:
        """Two constants, as ``eval_expr``'s last arguments: the numeric columns of ``step``'s input
        (``eval_expr`` reads their missing values as NaN, as streamlab's columns hold them) and the
        (column, type) pairs of its other typed columns."""
        if self.types is None:
            self.types = _detectors.output_types(self.p, _plan.column_types(self.p))
        name = f"{_plan.ident(step.step_id).upper()}_NUMERIC"
        typed = f"{_plan.ident(step.step_id).upper()}_TYPED"
        types = self.types.get(step.inputs[0], {})
        self.consts.append(f"{name} = {_plan.numeric_columns(types)!r}")
        self.consts.append(f"{typed} = {_plan.typed_columns(types)!r}")
        return f"{name}, {typed}"

    def emit(self, line: str = "") -> None:
        self.lines.append(("    " + line) if line else "")

    def fn(self, step: Any, kind: str) -> str:
        code = _plan.function_code(step.fn, step.step_id, kind)
        self.imports += [i for i in code.imports if i not in self.imports]
        if code.source:
            self.user_code.append(
                f"# step {step.step_id!r}: the user's function, copied from the notebook\n{code.source}"
            )
        return code.name

    def build(self) -> str:
        parse = self.chain[0]
        assert isinstance(parse, ParseStep)
        fields = tuple((f.name, f.type, f.path) for f in parse.fields)
        req = tuple(dict.fromkeys(((parse.time,) if parse.time else ()) + parse.required))
        self.consts += [
            f"PARSE_STEP = {parse.step_id!r}",
            _plan.const("PARSE_FIELDS", fields),
            f"PARSE_REQUIRED = {req!r}",
            f"MAX_RECORD_BYTES = {parse.max_record_bytes!r}",
        ]
        self.lines.append("def process_row(row, state, emit):")
        self.lines.append(
            '    """The steps after parse, for one row; ``emit(output, row)`` sends a side output."""'
        )
        for step in self.chain[1:]:
            self.emit(f"# step {step.step_id!r} ({step.kind})")
            self.step(step)
        if any(isinstance(s, DedupStep) for s in self.chain):
            self.lines.append(_IDEMPOTENCY.format())
        else:
            self.lines.append(_NO_IDEMPOTENCY)
        self.lines.append(_KEYED if self.keyed else _NO_KEYED)
        if self.keyed:
            self.consts.append(f"STATE_ITEM_MAX_BYTES = {STATE_ITEM_MAX_BYTES!r}")
            entries = ", ".join(
                f"{sid!r}: ({const}, {digest!r})" for sid, (const, digest) in self.keyed.items()
            )
            self.consts.append(f"KEYED_SPECS = {{{entries}}}")
        return "\n".join(self.lines)

    def dead_letter(self, sid: str, what: str) -> None:
        self.emit("except Exception as e:")
        reason = f'{what!r} + f" raised {{type(e).__name__}}: {{e}}"'
        self.emit(f"    emit({sid + '.dead_letter'!r}, dead_letter_row({reason}, {sid!r}, row))")
        self.emit("    return")

    def step(self, step: Step) -> None:
        _registry.emitter_for("lambda", step)(self, step)

    def window(self, step: WindowStep) -> None:
        w = step.window
        assert isinstance(w, TumblingWindow)
        sid = step.step_id
        aggs = []
        types = _plan.column_types(self.p).get(step.inputs[0], {})
        measure_types = []
        for a in step.aggs:
            cls, expr = _plan.aggregator_code(a, sid, step.time)
            self.snippets.add(cls)
            aggs.append(f"({a.name!r}, {expr})")
            rt = _plan.result_type(a, types)
            measure_types.append(
                (
                    a.name,
                    {"int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}.get(
                        rt, "VARCHAR"
                    ),
                )
            )
        self.consts += [
            f"WINDOW_STEP = {sid!r}",
            f"WINDOW_KEYS = {tuple(step.keys)!r}",
            f"JSON_KEYS = {tuple(k for k in step.keys if types.get(k) == 'json')!r}  # dimensions as JSON text",
            f"WINDOW_SIZE_NS = {w.size_ns!r}",
            f"WINDOW_OFFSET_NS = {w.offset_ns!r}",
            f"DELAY_NS = {step.delay_ns!r}",
            f"LATENESS_NS = {step.lateness_ns!r}",
            "COMBINE = RowCombine([" + ", ".join(aggs) + "])",
            f"MEASURE_TYPES = {tuple(measure_types)!r}",
            f"JSON_MEASURES = {tuple(a.name for a in step.aggs if _plan.result_type(a, types) == 'json')!r}"
            "  # VARCHAR measures holding JSON text",
        ]
        checks = _plan.unfit_checks(step)
        if step.keys or checks:
            self.consts.append(f"WINDOW_UNFIT_CHECKS = {checks!r}  # (aggregator, column, numeric)")
            self.emit("unfit = unfit_reason(row, WINDOW_KEYS, WINDOW_UNFIT_CHECKS)")
            self.emit("if unfit is not None:")
            self.emit(f"    emit({sid + '.dead_letter'!r}, dead_letter_row(unfit, {sid!r}, row))")
            self.emit("    return")
            self.unfit = True
        self.emit("try:")
        self.emit(f"    ts = to_ns(row[{step.time!r}])")
        self.emit("except (KeyError, TypeError, ValueError, OverflowError):")
        reason = unreadable_time_reason(step.time)
        self.emit(f"    emit({sid + '.dead_letter'!r}, dead_letter_row({reason!r}, {sid!r}, row))")
        self.emit("    return")
        self.emit('state["max_ns"] = ts if state["max_ns"] is None else max(state["max_ns"], ts)')
        self.emit('watermark = state["max_ns"] - DELAY_NS')
        self.emit("start = (ts - WINDOW_OFFSET_NS) // WINDOW_SIZE_NS * WINDOW_SIZE_NS + WINDOW_OFFSET_NS")
        self.emit("end = start + WINDOW_SIZE_NS")
        self.emit("if end + LATENESS_NS <= watermark:")
        self.emit(
            f'    emit({sid + ".late"!r}, {{**row, "window_start": from_ns(start), "window_end": from_ns(end), '
            '"watermark": from_ns(watermark)})'
        )
        self.emit("    return")
        self.emit('slot = f"{start}|{group_key(row, WINDOW_KEYS)}"')
        self.emit('acc = state["windows"].get(slot)')
        self.emit(
            'state["windows"][slot] = COMBINE.add_input(acc if acc is not None else COMBINE.create_accumulator(), row, ts)'
        )
        self.lines += [
            "",
            "",
            "def close_windows(state, final):",
            '    """Pop the windows the watermark closed (every window when ``final``): (start, key, accumulator)."""',
            '    watermark = None if state["max_ns"] is None else state["max_ns"] - DELAY_NS',
            "    closed = []",
            '    for slot in sorted(state["windows"], key=lambda s: (int(s.split("|", 1)[0]), s)):',
            '        start_text, key = slot.split("|", 1)',
            "        start = int(start_text)",
            "        if not final and (watermark is None or start + WINDOW_SIZE_NS + LATENESS_NS > watermark):",
            "            continue",
            '        closed.append((start, key, state["windows"].pop(slot)))',
            "    return closed",
        ]


# -- what each step kind becomes in the handler (see streamlab.export._registry)


@_registry.emits("lambda", FilterStep)
def _lambda_filter(steps: _Steps, step: FilterStep) -> None:
    sid = step.step_id
    if step.expr is not None:
        steps.snippets.add("filter_keeps")
        test, what = f"filter_keeps({step.expr!r}, row, {steps.numeric(step)})", f"filter {step.expr!r}"
    elif step.per_event:
        test, what = f"{steps.fn(step, 'filter')}(row)", f"filter_one({step.fn.name})"  # type: ignore[union-attr]  # no expr: fn is set
    else:
        if "import pandas" not in steps.imports:
            steps.imports.append("import pandas")
        name = steps.fn(step, "filter")
        test, what = f"list({name}(pandas.DataFrame([row])))[0]", f"filter_many({step.fn.name})"  # type: ignore[union-attr]  # no expr: fn is set
    steps.emit("try:")
    steps.emit(f"    keep = bool({test})")
    steps.dead_letter(sid, what)
    steps.emit("if not keep:")
    steps.emit("    return")


@_registry.emits("lambda", MapStep)
def _lambda_map(steps: _Steps, step: MapStep) -> None:
    sid = step.step_id
    if step.columns:
        steps.snippets.add("assign_exprs")
        what = "with_columns(" + ", ".join(f"{k}={e!r}" for k, e in step.columns) + ")"
        steps.emit("try:")
        steps.emit(f"    row = assign_exprs(row, {tuple(step.columns)!r}, {steps.numeric(step)})")
    elif step.per_event:
        what = f"map_one({step.fn.name})"  # type: ignore[union-attr]  # no columns: fn is set
        steps.emit("try:")
        steps.emit(f"    row = {steps.fn(step, 'map')}(row)")
    else:
        raise _plan.unsupported(
            step,
            "AWS Lambda",
            "map_many may return several rows per row",
            "use map_one or with_columns",
        )
    steps.dead_letter(sid, what)


@_registry.emits("lambda", OperatorStep)
def _lambda_rule(steps: _Steps, step: OperatorStep) -> None:
    """A rule or a per-key feature (``_check`` refused the others): streamlab's row step, carried; a keyed
    step's machine per key comes from ``KeyedState`` (DynamoDB), a row without a key from a fresh one."""
    c = _plan.ident(step.step_id).upper()
    sid = step.step_id
    spec = _detectors.row_step_spec(step.config, sid)
    steps.row_steps = True
    steps.snippets.add("eval_expr")
    steps.consts.append(_plan.const(f"{c}_SPEC", spec))
    steps.consts.append(f"{c}_RULE = make_step({c}_SPEC, eval_expr, to_ns, from_ns)")
    dead = sid + ".dead_letter"
    if not _keyed(step.config):
        steps.emit(f"output, row = {c}_RULE.process(row)[0]")
        steps.emit('if output == "dead_letter":  # the rule\'s condition cannot take this row')
        steps.emit(f'    emit({dead!r}, {{**row, "step_id": {sid!r}}})')
        steps.emit("    return")
        return
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]
    steps.keyed[sid] = (f"{c}_SPEC", digest)
    steps.emit(f"key = row.get({spec['key']!r})")
    steps.emit(
        "if missing_value(key) or isinstance(key, (dict, list)):  # no state to touch (a dict cannot key it):"
        " the step sends the row to dead letter"
    )
    steps.emit(f"    outputs, reason = {c}_RULE.process(row), None")
    steps.emit("else:")
    steps.emit(f'    outputs, reason = state["keyed"].process({sid!r}, key, row)')
    steps.emit("if reason is not None:")
    steps.emit(f'    emit({dead!r}, {{**row, "reason": reason, "step_id": {sid!r}}})')
    steps.emit("    return")
    steps.emit("output, row = outputs[0]")
    steps.emit('if output == "dead_letter":')
    steps.emit(f'    emit({dead!r}, {{**row, "step_id": {sid!r}}})')
    steps.emit("    return")


@_registry.emits("lambda", SelectStep)
def _lambda_select(steps: _Steps, step: SelectStep) -> None:
    steps.emit(f"row = {{new: row.get(old) for old, new in {list(step.columns)!r}}}")


@_registry.emits("lambda", KeyByStep)
def _lambda_key_by(steps: _Steps, step: KeyByStep) -> None:
    steps.emit(f"# key_by {list(step.keys)}: the window below groups by these columns")


@_registry.emits("lambda", DedupStep)
def _lambda_dedup(steps: _Steps, step: DedupStep) -> None:
    sid = step.step_id
    # streamlab's own rule, carried in the module (Dedup); its state is Lambda's JSON state
    steps.consts += [f"DEDUP_TTL_NS = {step.ttl_ns!r}", f"DEDUP_MAX_IDS = {step.max_ids!r}"]
    if step.time:
        steps.emit(f"ts = None if row.get({step.time!r}) is None else to_ns(row[{step.time!r}])")
    else:
        steps.emit("ts = None")
    steps.emit(
        f'if state["dedup"].is_duplicate(typed_id(dedup_key(row.get({step.id_column!r}))), ts, remembered_first_seen):'
    )
    steps.emit(f"    count(state, {sid + '.duplicates'!r})")
    steps.emit("    return  # a repeat: at-least-once delivery or a producer retry")


@_registry.emits("lambda", WindowStep)
def _lambda_window(steps: _Steps, step: WindowStep) -> None:
    steps.window(step)


def _terraform(p: Pipeline, window: WindowStep, dedup: bool, partition_key: str | None = None) -> str:
    name = _plan.ident(p.name).replace("_", "-")
    size_ns = int(getattr(window.window, "size_ns", 0))
    window_s = max(1, (size_ns + window.delay_ns + window.lateness_ns) // 1_000_000_000)
    tumbling = min(900, max(60, 2 * window_s))
    stream_note = (
        ""
        if partition_key is None
        else f"# Producers must use the record's {partition_key!r} as partition key: the handler's per-key state "
        "needs\n# every record of a key in one shard, in order (see handler.py).\n"
    )
    text = f'''# Kinesis -> Lambda (tumbling-window state) -> Timestream, with SQS for dead letters and failed batches.
# No credentials here: Terraform uses the caller's AWS credentials (profile, SSO or environment).

terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }}
  }}
}}

variable "region" {{
  type    = string
  default = "eu-west-1"
}}

variable "name" {{
  type    = string
  default = "{name}"
}}

variable "lambda_zip" {{
  type        = string
  description = "zip of handler.py and the packages of requirements.txt for the python3.12 runtime (build it with: sh build.sh)"
  default     = "lambda.zip"
}}

variable "shard_count" {{
  type    = number
  default = 1
}}

variable "batch_size" {{
  type    = number
  default = 500
}}

variable "maximum_batching_window_in_seconds" {{
  type    = number
  default = 5
}}

variable "maximum_retry_attempts" {{
  type    = number
  default = 5
}}

variable "tumbling_window_in_seconds" {{
  type        = number
  description = "Lambda's state window (processing time, at most 900 s); keep it above window size + delay + lateness"
  default     = {tumbling}
}}

provider "aws" {{
  region = var.region
}}

data "aws_caller_identity" "this" {{}}

{stream_note}resource "aws_kinesis_stream" "events" {{
  name             = "${{var.name}}-events"
  shard_count      = var.shard_count
  retention_period = 24
}}

resource "aws_sqs_queue" "dead_letter" {{
  name                      = "${{var.name}}-dead-letter"
  message_retention_seconds = 1209600
}}

# Dead letters and late rows over the queue's MaximumMessageSize, whole (the queue gets a pointer to each).
# Kept as long as the queue keeps its messages.
resource "aws_s3_bucket" "dead_letters" {{
  bucket_prefix = "${{var.name}}-dead-letters-"
}}

resource "aws_s3_bucket_public_access_block" "dead_letters" {{
  bucket                  = aws_s3_bucket.dead_letters.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}}

resource "aws_s3_bucket_lifecycle_configuration" "dead_letters" {{
  bucket = aws_s3_bucket.dead_letters.id
  rule {{
    id     = "expire-with-the-queue"
    status = "Enabled"
    filter {{
      prefix = ""
    }}
    expiration {{
      days = 14
    }}
  }}
}}

resource "aws_sqs_queue" "on_failure" {{
  name                      = "${{var.name}}-failed-batches"
  message_retention_seconds = 1209600
}}

resource "aws_timestreamwrite_database" "this" {{
  database_name = var.name
}}

resource "aws_timestreamwrite_table" "results" {{
  database_name = aws_timestreamwrite_database.this.database_name
  table_name    = "{window.step_id}"
  retention_properties {{
    memory_store_retention_period_in_hours  = 24
    magnetic_store_retention_period_in_days = 365
  }}
}}

# Partial aggregates of windows written by several invocations, Lambda windows or shards (merged).
resource "aws_dynamodb_table" "windows" {{
  name         = "${{var.name}}-windows"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "slot"
  range_key    = "part"
  attribute {{
    name = "slot"
    type = "S"
  }}
  attribute {{
    name = "part"
    type = "S"
  }}
  ttl {{
    attribute_name = "expires_at"
    enabled        = true
  }}
}}

resource "aws_cloudwatch_log_group" "handler" {{
  name              = "/aws/lambda/${{var.name}}"
  retention_in_days = 14
}}

data "aws_iam_policy_document" "assume" {{
  statement {{
    actions = ["sts:AssumeRole"]
    principals {{
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }}
  }}
}}

resource "aws_iam_role" "handler" {{
  name               = "${{var.name}}-handler"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}}

# Least privilege: read this stream, write these tables, send to these two queues (read the dead-letter
# queue's size limit), write oversized dead letters to this bucket, log to this group.
data "aws_iam_policy_document" "handler" {{
  statement {{
    sid       = "ReadStream"
    actions   = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"]
    resources = [aws_kinesis_stream.events.arn]
  }}
  statement {{
    sid       = "ListStreams"
    actions   = ["kinesis:ListStreams"]
    resources = ["*"]
  }}
  statement {{
    sid       = "WriteResults"
    actions   = ["timestream:WriteRecords"]
    resources = [aws_timestreamwrite_table.results.arn]
  }}
  statement {{
    sid       = "TimestreamEndpoints"
    actions   = ["timestream:DescribeEndpoints"]
    resources = ["*"]
  }}
  statement {{
    sid       = "WindowPartials"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"]
    resources = [aws_dynamodb_table.windows.arn]
  }}
  statement {{
    sid       = "SideOutputs"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letter.arn, aws_sqs_queue.on_failure.arn]
  }}
  statement {{
    sid       = "DeadLetterLimit"
    actions   = ["sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.dead_letter.arn]
  }}
  statement {{
    sid       = "OversizedSideOutputs"
    actions   = ["s3:PutObject"]
    resources = ["${{aws_s3_bucket.dead_letters.arn}}/*"]
  }}
  statement {{
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${{aws_cloudwatch_log_group.handler.arn}}:*"]
  }}
}}

resource "aws_iam_role_policy" "handler" {{
  name   = "${{var.name}}-handler"
  role   = aws_iam_role.handler.id
  policy = data.aws_iam_policy_document.handler.json
}}

resource "aws_lambda_function" "handler" {{
  function_name    = var.name
  role             = aws_iam_role.handler.arn
  runtime          = "python3.12"
  handler          = "handler.handler"
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  timeout          = 60
  memory_size      = 512
  environment {{
    variables = {{
      TIMESTREAM_DATABASE   = aws_timestreamwrite_database.this.database_name
      TIMESTREAM_TABLE      = aws_timestreamwrite_table.results.table_name
      DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letter.url
      DEAD_LETTER_BUCKET    = aws_s3_bucket.dead_letters.id
      WINDOW_TABLE          = aws_dynamodb_table.windows.name
    }}
  }}
  depends_on = [aws_cloudwatch_log_group.handler]
}}

resource "aws_lambda_event_source_mapping" "events" {{
  event_source_arn                   = aws_kinesis_stream.events.arn
  function_name                      = aws_lambda_function.handler.arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.maximum_retry_attempts
  tumbling_window_in_seconds         = var.tumbling_window_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]
  destination_config {{
    on_failure {{
      destination_arn = aws_sqs_queue.on_failure.arn
    }}
  }}
}}
'''
    if not dedup:
        return text
    table = """
resource "aws_dynamodb_table" "idempotency" {
  name         = "${var.name}-event-ids"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "event_id"
  attribute {
    name = "event_id"
    type = "S"
  }
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
}
"""
    statement = (
        "  statement {\n"
        '    sid       = "EventIds"\n'
        '    actions   = ["dynamodb:GetItem", "dynamodb:BatchWriteItem"]\n'
        "    resources = [aws_dynamodb_table.idempotency.arn]\n"
        "  }\n"
        "  statement {\n"
        '    sid       = "Logs"'
    )
    text = text.replace(
        'resource "aws_cloudwatch_log_group"', table.lstrip() + '\nresource "aws_cloudwatch_log_group"'
    )
    text = text.replace('  statement {\n    sid       = "Logs"', statement)
    return text.replace(
        "      DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letter.url\n",
        "      DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letter.url\n"
        "      IDEMPOTENCY_TABLE     = aws_dynamodb_table.idempotency.name\n",
    )


def to_lambda(pipeline: Pipeline, path: str | Path, *, database: str | None = None) -> ExportedFiles:
    """Write an AWS Lambda handler (Kinesis in, Timestream out) and its Terraform into ``path``.

    Parameters
    ----------
    pipeline
        One source, one parse step, then filters/maps/dedup, rules, features and keyed small models in a
        line (the keyed steps by one key: the stream's partition key), ending in one tumbling window.
    path
        Directory to write (created if missing).
    database
        Default Timestream database (the handler reads ``TIMESTREAM_DATABASE`` first).

    Returns
    -------
    ExportedFiles
        ``handler.py``, ``requirements.txt``, ``build.sh`` (builds ``lambda.zip``: the handler with
        requirements.txt's packages, which the Lambda runtime lacks) and ``main.tf``.

    Examples
    --------
    >>> import tempfile
    >>> from streamlab import Pipeline, SessionWindow, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    >>> sorted(to_lambda(p, tempfile.mkdtemp()).files)
    ['build.sh', 'handler.py', 'main.tf', 'requirements.txt']
    >>> q = Pipeline(ListSource([b'{}']), name="demo")
    >>> _ = q.parse().window(SessionWindow("30m"), key="user_id").agg(agg.count())
    >>> to_lambda(q, tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: step 'window' (window): cannot export to AWS Lambda: session windows ...
    """
    _plan.check_pipeline(pipeline, "to_lambda")
    chain = _check(pipeline)
    window = chain[-1]
    assert isinstance(window, WindowStep)
    gen = _Steps(pipeline, chain)
    steps_code = gen.build()
    header = _HEADER.format(
        name=pipeline.name,
        steps=" -> ".join(pipeline.steps),
        replay_input=replay_input_block(
            pipeline, "put each of its lines on the Kinesis stream as one record"
        ),
    )
    parts = [header]
    if gen.imports:
        parts.append("\n".join(sorted(gen.imports)) + "\n")
    parts.append(f"PIPELINE_NAME = {pipeline.name!r}")
    parts.append("\n\n# -- helpers copied from streamlab: this module must not import it\n")
    parts.append(_plan.snippet_source(gen.snippets))
    parts.append("\n\n# -- streamlab._timestream_values: the measure values Timestream cannot hold\n")
    parts.append(_plan.timestream_values_source())
    parts.append(
        "\n\n# -- streamlab._kpl: the user records of a record the Kinesis Producer Library aggregated\n"
    )
    parts.append(_plan.kpl_source())
    if gen.row_steps:
        parts.append("\n\n# -- streamlab._detector_record: per-record rules\n")
        parts.append(_detectors.detector_record_source())
        header = header.replace("import base64\n", "import base64\nimport bisect\n", 1)
        header = header.replace(
            "from datetime import", "from collections import OrderedDict, deque\nfrom datetime import", 1
        )
        parts[0] = header
    elif gen.unfit:
        parts.append(
            "\n\n# -- from streamlab._detector_record: the rows a window's aggregators cannot take\n"
        )
        parts.append(_plan.unfit_source())
    partition_key = None
    if gen.keyed:
        key = partition_key = next(_detectors.state_key(s.config) for s in chain if s.step_id in gen.keyed)  # type: ignore[attr-defined]
        import textwrap

        listed = "\n".join(
            textwrap.wrap(", ".join(map(repr, gen.keyed)), 100, initial_indent="  ", subsequent_indent="  ")
        )
        doc = _KEYED_DOC.format(keyed=listed, key=key, limit=STATE_ITEM_MAX_BYTES)
        parts[0] = parts[0].replace('"""\n\nfrom __future__', doc + '"""\n\nfrom __future__', 1)
        parts[0] = parts[0].replace("import os\n", "import os\nimport pickle\n", 1)
    parts.append("\n\n# -- step settings\n")
    parts += gen.consts
    for code in gen.user_code:
        parts.append("\n\n" + code)
    db = database or _plan.ident(pipeline.name)
    parts.append(_BODY.format(steps=steps_code, database=db, table=window.step_id, rejected="." + REJECTED))
    from streamlab.export.beam import _tidy

    code = _tidy("\n".join(parts))
    out = ExportedFiles.at(path, "handler.py", "lambda")
    needs_pandas = "eval_expr(" in code or "pandas" in gen.imports
    reqs = ("pandas>=2.0\n" if needs_pandas else "") + "boto3>=1.34\n"
    packages = ["pandas"] if needs_pandas else []
    if any(isinstance(s, OperatorStep) and isinstance(s.config, Detect) for s in chain):
        from importlib.metadata import version

        reqs += f"river=={version('river')}\n"  # the models' pickled state is read back by the same river
        packages.append("river")
    if packages:  # the Lambda runtime has boto3 only: say so at the cold start, not row by row
        code = code.replace(_BODY_START, _PACKAGE_CHECK.format(packages=tuple(packages)) + _BODY_START, 1)
    dedup = any(isinstance(s, DedupStep) for s in chain)
    for fname, text in (
        ("handler.py", code),
        ("requirements.txt", reqs),
        ("build.sh", _BUILD_SH),
        ("main.tf", _terraform(pipeline, window, dedup, partition_key)),
    ):
        out.write(fname, text)
    out.files["build.sh"].chmod(0o755)
    return out


REJECTED = "timestream_dead_letter"
"""The handler's output (``<window step>.timestream_dead_letter``) of the window results Timestream cannot
hold, which TimestreamSink sends to its ``dead_letter``."""


LAMBDA_RUNTIME = "python3.12"
"""The Lambda runtime ``main.tf`` declares; ``build.sh`` installs requirements.txt for it."""

_BUILD_SH = f"""#!/bin/sh
# Build lambda.zip (main.tf's var.lambda_zip): handler.py with the packages of requirements.txt next to
# it. The {LAMBDA_RUNTIME} runtime has boto3 only; pandas evaluates filter and with_columns expressions
# (s.str.startswith('a'), abs(n) > 1, ...) and river holds the detectors' models. Wheels are for
# Linux x86_64 (main.tf's default architecture), whatever machine builds the zip.
set -eu
cd "$(dirname "$0")"
PIP="${{PIP:-python3 -m pip}}"
rm -rf build lambda.zip
mkdir build
$PIP install --quiet --target build --platform manylinux2014_x86_64 --implementation cp \\
    --python-version {LAMBDA_RUNTIME.removeprefix("python")} --only-binary=:all: -r requirements.txt
cp handler.py build/
(cd build && python3 -m zipfile -c ../lambda.zip $(ls -A))
echo "built lambda.zip"
"""

_BODY_START = "\n\n_clients = {}\n"

_PACKAGE_CHECK = """

def check_packages(names={packages!r}):
    \"\"\"Fail the cold start when the deployment package lacks requirements.txt's packages (``zip lambda.zip
    handler.py`` alone): without them every row of an expression that needs pandas would go to the
    dead letters one by one as "raised ModuleNotFoundError".\"\"\"
    from importlib.util import find_spec

    missing = [name for name in names if find_spec(name) is None]
    if missing:
        raise ImportError(
            f"handler.py needs {{', '.join(missing)}} (requirements.txt), which the Lambda runtime does not "
            "have: build lambda.zip with build.sh, which packages them next to handler.py"
        )


check_packages()
"""


# -- verification --------------------------------------------------------------------------------------
def kinesis_event(records: list[tuple[str, bytes]], state: Any, final: bool) -> dict[str, Any]:
    """A Kinesis event as Lambda sends it with tumbling windows (``state``, ``window``, final flag).

    Examples
    --------
    >>> e = kinesis_event([("1", b"{}")], None, False)
    >>> e["Records"][0]["kinesis"]["data"], e["isFinalInvokeForWindow"]
    ('e30=', False)
    """
    import base64

    recs = [
        {
            "eventSource": "aws:kinesis",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/verify",
            "kinesis": {
                "sequenceNumber": seq,
                "partitionKey": "verify",
                "data": base64.b64encode(data).decode(),
                "approximateArrivalTimestamp": 0,
            },
        }
        for seq, data in records
    ]
    return {
        "Records": recs,
        "window": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:15:00Z"},
        "state": state,
        "shardId": "shardId-000000000000",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/verify",
        "isFinalInvokeForWindow": final,
        "isWindowTerminatedEarly": False,
    }


def create_window_table(dynamodb: Any, name: str) -> str:
    """Create the handler's WINDOW_TABLE (as its Terraform does) with a boto3 DynamoDB client.

    Examples
    --------
    >>> from streamlab.local import LocalAWS
    >>> with LocalAWS() as aws:
    ...     create_window_table(aws.client("dynamodb"), "demo-windows")
    'demo-windows'
    """
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "slot", "KeyType": "HASH"},
            {"AttributeName": "part", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "slot", "AttributeType": "S"},
            {"AttributeName": "part", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def dimension_value(text: str, field_type: str | None) -> Any:
    """A window key as the handler had it, from its Timestream dimension (``str(value)``: dimensions are
    text by Timestream's design; a ``json`` key's JSON text), given the key column's streamlab type; text
    for the other types.

    Examples
    --------
    >>> dimension_value("4611686018427387907", "int64"), dimension_value("1.5", "float64")
    (4611686018427387907, 1.5)
    >>> dimension_value("True", "bool"), dimension_value("7", "string")
    (True, '7')
    >>> dimension_value('"1"', "json"), dimension_value("1", "json"), dimension_value("true", "json")
    ('1', 1, True)
    >>> dimension_value('{"page":"/"}', "object")
    {'page': '/'}
    >>> dimension_value("Infinity", "json"), dimension_value("2024-01-01T00:00:03.000001Z", "timestamp")
    (inf, Timestamp('2024-01-01 00:00:03.000001+0000', tz='UTC'))
    """
    if field_type in ("json", "object"):  # a JSON object (``object``) is written as its JSON text too
        return json.loads(text)
    if field_type == "int64":
        return int(text)
    if field_type == "float64":
        return float(text)
    if field_type == "bool":
        return text == "True"
    if field_type == "timestamp":  # a time key: ISO-8601 text to the microsecond
        t = pd.Timestamp(text)
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return text


def _results_from_timestream(
    records: list[dict[str, Any]],
    keys: tuple[str, ...],
    key_types: dict[str, str] | None = None,
    rejected: list[str] | None = None,
    measure_types: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The table as Timestream keeps it: one record per dimensions, time and measure name; the keys read
    back as their columns' types (``key_types``, by streamlab type; text without it), and a VARCHAR
    measure whose streamlab type (``measure_types``, by aggregator name) is ``json`` from its JSON text.

    A ``json`` column keeps each value's Python type (pandas would read ints next to floats as float64).

    Of two writes of one record the higher ``Version`` wins; Timestream rejects a write with the same
    version and other values (moto stores both): such a pair raises here, or, given ``rejected``, the
    first write is kept and why the second would be rejected is appended to it (``verify`` reports it).
    """
    from streamlab.export.verify import rows_frame

    latest: dict[Any, dict[str, Any]] = {}
    for rec in records:
        dims = {d["Name"]: d["Value"] for d in rec.get("Dimensions", [])}
        ident = (tuple(sorted(dims.items())), rec["Time"], rec["MeasureName"])
        version = int(rec.get("Version", 1))
        held = latest.setdefault(ident, rec)
        held_version = int(held.get("Version", 1))
        if held_version == version and held["MeasureValues"] != rec["MeasureValues"]:
            why = (
                f"Timestream would reject a write of {dict(ident[0])} at {rec['Time']}: version {version} "
                f"holds {held['MeasureValues']}, the new write {rec['MeasureValues']}"
            )
            if rejected is None:
                raise AssertionError(why)
            rejected.append(why)
            continue
        if version > held_version:
            latest[ident] = rec
    rows = []
    for rec in latest.values():
        dims = {d["Name"]: d["Value"] for d in rec.get("Dimensions", [])}
        types = key_types or {}
        row: dict[str, Any] = {
            k: None if dims.get(k) is None else dimension_value(dims[k], types.get(k)) for k in keys
        }
        row["window_start"] = pd.Timestamp(int(rec["Time"]), unit="ms", tz="UTC")
        for m in rec["MeasureValues"]:
            v = m["Value"]
            row[m["Name"]] = (
                pd.Timestamp(int(v), unit="ms", tz="UTC")
                if m["Type"] == "TIMESTAMP"
                else int(v)
                if m["Type"] == "BIGINT"
                else float(v)
                if m["Type"] == "DOUBLE"
                else v == "true"
                if m["Type"] == "BOOLEAN"
                else dimension_value(v, (measure_types or {}).get(m["Name"]))
            )
        rows.append(row)
    frame = rows_frame(rows)
    json_columns = [k for k in keys if (key_types or {}).get(k) == "json"]
    json_columns += [m for m, kind in (measure_types or {}).items() if kind == "json"]
    for c in json_columns:
        # pandas reads a column of ints and floats (json values 1 and 2.5) as float64, and 1 became 1.0,
        # which streamlab tells apart from 1 (a json value keeps its type): keep the values as they were
        values = [r.get(c) for r in rows]
        if (
            c in frame.columns
            and frame[c].dtype.kind == "f"
            and any(type(v) not in (float, type(None)) for v in values)
        ):
            frame[c] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def timestream_rejections(pipeline: Pipeline, local: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """streamlab's outputs as a deployment writing the window's results through a ``TimestreamSink`` has
    them: the results that sink sends to its ``dead_letter`` (``build_records``' problems: an infinite
    ``DOUBLE``, a text measure empty or over 2,048 bytes, the handler's dimensions, the pipeline's name
    and the keys, over 2,048 bytes with their names) moved from the window's output to
    ``<window>.timestream_dead_letter`` with their ``reject_reason``, as the handler sends them; and a
    key that is the empty string is missing (None), as Timestream holds a record whose dimension the
    sink and the handler leave out (Timestream has no empty dimension value); a time-valued result is
    floored to the millisecond, as both write it (a ``TIMESTAMP`` in epoch milliseconds).

    The sink is given the columns' declared types, as a pipeline's sink step gives them: a ``json``
    value is its JSON text to both (the empty json string is ``""``, two bytes, written).

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]), name="doc")
    >>> _ = p.parse({"x": "float64", "timestamp": "timestamp"}).window(TumblingWindow("1m")).agg(agg.sum("x"))
    >>> t = pd.Timestamp("2024-01-01", tz="UTC")
    >>> rows = pd.DataFrame({"window_start": [t, t], "window_end": [t, t], "sum_x": [1.0, float("inf")]})
    >>> out = timestream_rejections(p, {"window": rows})
    >>> out["window"]["sum_x"].tolist(), out["window.timestream_dead_letter"]["reject_reason"].tolist()
    ([1.0], ["measure(s) ['sum_x'] are infinite (inf), which a Timestream DOUBLE cannot hold"])
    """
    from streamlab.connectors.timestream import REASON_COLUMN, TimestreamSink, build_records

    window = _check(pipeline)[-1]
    assert isinstance(window, WindowStep)  # _check ends the chain in one
    frame = local.get(window.step_id)
    if frame is None or frame.empty:
        return local
    frame = frame.reset_index(drop=True)
    key_types = _plan.column_types(pipeline).get(window.inputs[0], {})
    types = {a.name: _plan.result_type(a, key_types) for a in window.aggs}
    types.update({k: key_types[k] for k in window.keys if k in key_types}, window_end="timestamp")
    measures = [a.name for a in window.aggs] + ["window_end"]
    # the handler's dimensions: one naming the pipeline (a key may not take that name), then the keys
    dimensions = ["pipeline", *window.keys]
    sink = TimestreamSink(
        "verify", window.step_id, dimensions=dimensions, measures=measures, time="window_start"
    )
    as_written = frame.assign(pipeline=pipeline.name)
    problems = pd.Series(build_records(sink, as_written, types)[2], index=frame.index)
    bad = problems != ""
    written = frame[~bad].reset_index(drop=True)
    for k in window.keys:  # an empty dimension is left out: the written key reads back as missing
        if k in written.columns and types.get(k) != "json":
            values = written[k].astype(object)
            empty = values.map(lambda v: isinstance(v, str) and v == "")
            if empty.any():
                written[k] = values.where(~empty, None)
    for name in measures:  # a TIMESTAMP measure holds milliseconds (timestamp_text): compared at that
        if types.get(name) == "timestamp" and name in written.columns:
            written[name] = pd.to_datetime(written[name], utc=True).dt.floor("ms")
    out = dict(local)
    out[window.step_id] = written
    out[f"{window.step_id}.{REJECTED}"] = (
        frame[bad].assign(**{REASON_COLUMN: problems[bad]}).reset_index(drop=True)
    )
    return out


def lambda_notes(pipeline: Pipeline, chain: list[Step], batch_size: int) -> list[str]:
    """What ``verify(target="lambda")`` did with this pipeline's chain, and what it did not compare.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]), name="doc")
    >>> _ = p.parse().window(TumblingWindow("1m")).agg(agg.count())
    >>> notes = lambda_notes(p, _check(p), 5)
    >>> len(notes), any("dedup" in n or "text by design" in n for n in notes)
    (2, False)
    """
    window = chain[-1]
    assert isinstance(window, WindowStep)
    notes = [
        f"the handler ran against moto as a Kinesis event-source mapping invokes it: {batch_size} records per "
        "batch, the second retried as after a timeout, the one of the first dead letter (if any) redelivered "
        "after an unreachable dead-letter queue",
        f"{window.step_id}: Timestream holds one record per dimensions, time and measure, so re-written "
        "results count once",
    ]
    for step in chain:
        if isinstance(step, DedupStep):
            notes.append(
                f"{step.step_id}: the handler keeps the first id and drops repeats (counted in its state); "
                f"{step.step_id}.duplicates is not compared"
            )
    if window.keys:
        notes.append(
            f"{window.step_id}: the keys {', '.join(window.keys)} are Timestream dimensions, text by design "
            "(str(value), a json key's JSON text), read back as their columns' types"
        )
    types = _plan.column_types(pipeline).get(window.inputs[0], {})
    times = [a.name for a in window.aggs if _plan.result_type(a, types) == "timestamp"]
    if times:
        notes.append(
            f"{window.step_id}: {', '.join(times)} (times) are TIMESTAMP measures in epoch milliseconds, as "
            "TimestreamSink writes them: compared to the millisecond (streamlab's times floored)"
        )
    return notes


def run_lambda(
    pipeline: Pipeline, files: ExportedFiles, lines: list[bytes], *, batch_size: int = 5
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Drive the generated handler as a Kinesis event-source mapping would, against moto.

    The function is configured as ``main.tf`` deploys it (its queue, its bucket for side outputs over
    the queue's limit, its window table). The scenario: batches of ``batch_size`` records; the second
    batch is retried once as if its first invocation timed out after writing (its state is discarded);
    the batch holding the first dead letter is first invoked with an unreachable dead-letter queue, so
    the handler reports that record in ``batchItemFailures`` and the batch is redelivered from it; a
    final invocation ends the window.

    Returns
    -------
    tuple
        Outputs by streamlab reference (window results from Timestream, side outputs from SQS) and notes.
    """
    from streamlab.export.verify import load_module
    from streamlab.local import LocalAWS

    chain = _check(pipeline)
    window = chain[-1]
    assert isinstance(window, WindowStep)
    notes = lambda_notes(pipeline, chain, batch_size)
    env_keys = (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "TIMESTREAM_DATABASE",
        "TIMESTREAM_TABLE",
        "DEAD_LETTER_QUEUE_URL",
        "DEAD_LETTER_BUCKET",
        "WINDOW_TABLE",
    )
    saved = {k: os.environ.get(k) for k in env_keys}
    import uuid

    tag = uuid.uuid4().hex[:8]
    # the scenario makes the handler log failures on purpose; keep them (and moto's access log) quiet
    quiet = [logging.getLogger("werkzeug")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    with LocalAWS() as aws:
        try:
            sqs = aws.client("sqs")
            ts = aws.client("timestream-write")
            database, table = f"verify_{tag}", window.step_id
            ts.create_database(DatabaseName=database)
            ts.create_table(DatabaseName=database, TableName=table)
            queue = sqs.create_queue(QueueName=f"verify-{tag}")["QueueUrl"]
            # as deployed (main.tf): a side output over the queue's limit goes whole to the bucket
            bucket = f"verify-{tag}-dead-letters"
            aws.client("s3").create_bucket(Bucket=bucket)
            windows = create_window_table(aws.client("dynamodb"), f"verify-{tag}-windows")
            os.environ.update(
                AWS_ENDPOINT_URL=aws.endpoint_url,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
                AWS_DEFAULT_REGION=aws.region,
                TIMESTREAM_DATABASE=database,
                TIMESTREAM_TABLE=table,
                DEAD_LETTER_QUEUE_URL=queue,
                DEAD_LETTER_BUCKET=bucket,
                WINDOW_TABLE=windows,
            )
            module = load_module(files.module)
            quiet.append(logging.getLogger(module.__name__))
            levels.append(logging.NOTSET)
            quiet[-1].setLevel(logging.CRITICAL)
            try:
                _drive(module, lines, batch_size, queue)
            finally:
                sys.modules.pop(module.__name__, None)
            key_types = _plan.column_types(pipeline).get(window.inputs[0], {})
            rejected: list[str] = []
            outputs = _collect(sqs, queue, database, table, window, chain[0].step_id, key_types, rejected)
            notes += [f"the handler's writes collide: {why}" for why in rejected]
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return outputs, notes


def _drive(module: Any, lines: list[bytes], batch_size: int, queue: str) -> None:
    records = [(f"{i + 1:020d}", line) for i, line in enumerate(lines)]
    first_bad = None
    for seq, raw in records:
        try:
            module.parse_record(raw, module.PARSE_FIELDS, module.PARSE_REQUIRED, module.MAX_RECORD_BYTES)
        except module.BadRecordError:
            first_bad = seq
            break
    state = None
    pos = 0
    invocation = 0
    broke_dlq = False
    while pos < len(records):
        batch = records[pos : pos + batch_size]
        invocation += 1
        if invocation == 2:
            module.handler(kinesis_event(batch, state, False))  # "timed out": side effects, no state
        if not broke_dlq and first_bad is not None and any(seq == first_bad for seq, _ in batch):
            broke_dlq = True
            os.environ["DEAD_LETTER_QUEUE_URL"] = queue + "-unreachable"
            try:
                response = module.handler(kinesis_event(batch, state, False))
            except Exception:  # a window result Timestream cannot hold found no queue: Lambda retries it all
                continue
            finally:
                os.environ["DEAD_LETTER_QUEUE_URL"] = queue
            failures = response["batchItemFailures"]
            # the first record with a side output (the poison record, or a late row before it) is reported
            if len(failures) != 1 or failures[0]["itemIdentifier"] > first_bad:
                raise AssertionError(
                    f"the handler should report a record up to {first_bad}, reported {failures}"
                )
            state = response["state"]
            pos = next(i for i, (seq, _) in enumerate(records) if seq == failures[0]["itemIdentifier"])
            continue
        response = module.handler(kinesis_event(batch, state, False))
        state = response["state"]
        if response["batchItemFailures"]:
            failed = response["batchItemFailures"][0]["itemIdentifier"]
            pos = next(i for i, (seq, _) in enumerate(records) if seq == failed)
        else:
            pos += len(batch)
    module.handler(kinesis_event([], state, True))


def _s3_beside(sqs: Any) -> Any:
    """An S3 client at the endpoint and region of a boto3 SQS client.

    Examples
    --------
    >>> import boto3
    >>> sqs = boto3.client("sqs", region_name="eu-west-1", endpoint_url="http://127.0.0.1:1")
    >>> s3 = _s3_beside(sqs)
    >>> s3.meta.region_name, s3.meta.endpoint_url
    ('eu-west-1', 'http://127.0.0.1:1')
    """
    import boto3

    meta = sqs.meta
    return boto3.client("s3", region_name=meta.region_name, endpoint_url=meta.endpoint_url)


def _collect(
    sqs: Any,
    queue: str,
    database: str,
    table: str,
    window: WindowStep,
    parse_step: str,
    key_types: dict[str, str] | None = None,
    rejected: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """The handler's outputs: side outputs from the queue, window results from Timestream, whose
    dimensions are text (``key_types``: the window key columns' types, to read them back; ``rejected``:
    where the writes Timestream would reject are reported)."""
    from streamlab.export.verify import rows_frame
    from streamlab.serde import dump_json

    key_types = key_types or {}

    messages: dict[tuple[str, str], dict[str, Any]] = {}
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
            "Messages", []
        )
        if not got:
            break
        for m in got:
            body = json.loads(m["Body"])
            if "payload_s3" in body:  # an oversized side output, whole in DEAD_LETTER_BUCKET
                where = body["payload_s3"]
                obj = _s3_beside(sqs).get_object(Bucket=where["bucket"], Key=where["key"])
                body = json.loads(obj["Body"].read())
            if body["output"] == f"{window.step_id}.{REJECTED}":  # one per window, the highest version
                ident = (body["output"], dump_json([body.get(k) for k in (*window.keys, "window_start")]))
                held = messages.get(ident)
                if held is None or int(held.get("version") or 0) < int(body.get("version") or 0):
                    messages[ident] = body
                continue
            messages[(body["output"], body["sequenceNumber"])] = body  # at-least-once: one per record
    side: dict[str, list[dict[str, Any]]] = {}
    for (output, _), body in sorted(messages.items(), key=lambda kv: kv[0][1]):
        side.setdefault(output, []).append(body)
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    backend = timestreamwrite_backends[DEFAULT_ACCOUNT_ID][os.environ.get("AWS_DEFAULT_REGION", "us-east-1")]
    stored = list(backend.describe_database(database).describe_table(table).records)
    outputs = {ref: rows_frame(rows) for ref, rows in side.items()}
    measure_types = {a.name: _plan.result_type(a, key_types) for a in window.aggs}
    outputs[window.step_id] = _results_from_timestream(
        stored, tuple(window.keys), key_types, rejected, measure_types
    )
    for ref in (f"{window.step_id}.late", f"{parse_step}.dead_letter"):
        outputs.setdefault(ref, pd.DataFrame())
    return outputs
