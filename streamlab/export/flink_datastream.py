"""The PyFlink DataStream job of a Flink export: late rows as a side output, streamlab's rules in keyed state.

Flink SQL drops rows behind its watermark and emits that watermark periodically, so ``main.py`` and
``job.sql`` cannot report streamlab's ``late`` output. ``datastream.py``, written next to them when
the pipeline's steps allow it, can: one ``KeyedProcessFunction`` runs streamlab's per-event rules
(the dedup rule of ``streamlab._record`` and the window assignment, lateness test and aggregators of
``streamlab.export._snippets``, copied in), keeps their state in Flink keyed state (checkpointed
with the job), and sends every output, late rows included, to its own ``OutputTag``.

streamlab's watermark is one per step over the whole stream, updated by every record, so the
function runs under one key: the job's parallelism is for parsing and writing, the stateful steps run
in one task. Translated: parse, dedup, select, key_by, tumbling, sliding and session windows (with
the aggregators the SQL job takes), interval joins, filters and ``with_columns`` with expressions, and
the detector, feature, rule, drift and pattern steps that have a per-record form
(``streamlab.export._detectors``), in any tree after one parse; others make :func:`datastream_refusal`
name the step, and ``datastream.py`` is not written. A pipeline with a step Flink SQL cannot say is
exported as ``datastream.py`` alone (``streamlab.export.flink.to_flink``).

Examples
--------
>>> from streamlab import Pipeline, SessionWindow, TumblingWindow, agg
>>> from streamlab.testing import ListSource
>>> p = Pipeline(ListSource([b"{}"]), name="demo")
>>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
>>> datastream_refusal(p) is None, "OutputTag" in datastream_py(p, "files", "files")
(True, True)
>>> q = Pipeline(ListSource([b"{}"]), name="sessions")
>>> _ = q.parse().window(SessionWindow("5m"), key="user_id", step_id="visits").agg(agg.count())
>>> datastream_refusal(q), "def session_row(" in datastream_py(q, "files", "files")
(None, True)
"""

from __future__ import annotations

import json

from streamlab._dead_letter import PARSE_DEAD_LETTER_COLUMNS
from streamlab.errors import PipelineConfigError
from streamlab.export import _detectors, _plan
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
    Step,
    WindowStep,
)
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow

__all__ = ["DATASTREAM_SEMANTICS", "datastream_py", "datastream_refusal", "wants_datastream"]

DATASTREAM_SEMANTICS = """\
What differs from streamlab (datastream.py)
-------------------------------------------
* Nothing in which rows reach which output: the watermark of each window and dedup step is
  streamlab's (the largest event time the step has seen, minus its delay, after every record), a row
  is late for a window when ``end + lateness`` is at or behind it, and late rows go to the step's
  ``late`` output (one row per closed window it missed, with ``window_start``, ``window_end`` and the
  ``watermark``), repeats to ``duplicates``. A row is late for a session window when its own session
  ``[t, t + gap)`` is closed or it would join a session of its key already written.
* Interval joins judge each row as it arrives: late (to ``late``, with ``join_side``) when it is behind
  the smaller of the two sides' largest event times minus the delay. streamlab judges the rows of a
  batch against the watermark before the batch, so the two agree when streamlab runs one record per
  batch (what ``verify`` does for pipelines with a join).
* To keep that one stream-wide watermark, the stateful steps run under one key (one task, whatever
  the parallelism); each step's state is one keyed value, read and written per record, so this job
  is for the volumes of one core. Flink's own watermark is only used at the end of a bounded input,
  whose final watermark closes every window.
* Results are written when a window closes, not at the end of the run; a checkpoint commits the file
  sinks' part files.
* Detectors, features, rules, drift detectors and patterns run streamlab's own per-record state
  machines (``make_step`` of ``streamlab._detector_record``, copied below): score-then-learn with
  river's models, the thresholds, the features' windows, the pattern's watermark. Under the one key
  each machine sees the whole stream, as streamlab's operator does (retention, ``max_keys`` and
  ``key_ttl`` reckoned over the whole stream), in the order records reach the keyed function: one
  file (one reader), one Kafka partition or one Kinesis shard keeps its order (Flink keeps the order
  of each channel); records of several partitions interleave as they arrive, as they do when streamlab
  reads those partitions. Filters and ``with_columns`` evaluate their pandas expressions on one row.
* A pattern's held-back events are released by the final watermark of a bounded input, as streamlab
  releases them at the end of a bounded source; on an unbounded input they wait for later events.
* river is pinned to the newest release that installs next to ``apache-flink`` (requirements.txt);
  ``verify(target="flink")`` checks that its models score as streamlab's river does.
"""

_TRANSLATED = (
    SourceStep,
    ParseStep,
    DedupStep,
    SelectStep,
    KeyByStep,
    SinkStep,
    WindowStep,
    IntervalJoinStep,
    FilterStep,
    MapStep,
    OperatorStep,
)


def wants_datastream(p: Pipeline) -> bool:
    """True when the pipeline has an output Flink SQL cannot give (a window's or a join's ``late``, a
    dedup's ``duplicates``) or a step SQL cannot say (a detector, feature, rule or drift step, a filter or
    a map): the DataStream job is written for it, when :func:`datastream_refusal` allows.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> wants_datastream(p), wants_datastream(p.parse().dedup("event_id").pipeline)
    (False, True)
    """
    if any(isinstance(s, (WindowStep, DedupStep, IntervalJoinStep)) for s in p.steps.values()):
        return True
    return any(
        isinstance(s, (FilterStep, MapStep)) or (isinstance(s, OperatorStep) and not _plan.is_pattern_step(s))
        for s in p.steps.values()
    )


def datastream_refusal(p: Pipeline) -> str | None:
    """Why ``datastream.py`` cannot be written for ``p`` (naming the step), or None when it can.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> events = p.parse()
    >>> datastream_refusal(events.filter("user_id == 'u1'").pipeline) is None
    True
    >>> _ = events.window(TumblingWindow("1m"), watermark_by="event_type", step_id="w").agg(agg.count())
    >>> datastream_refusal(p)
    "step 'w': early results and per-partition watermarks are not translated"
    """
    parses = [s for s in p.steps.values() if isinstance(s, ParseStep)]
    if len(parses) != 1 or parses[0].time is None:
        return "the pipeline needs exactly one parse step, with an event-time field"
    for step in p.steps.values():
        if isinstance(step, (FilterStep, MapStep)) and step.fn is not None:
            what = f"{step.kind} steps with a Python function run user code"
            return f"step {step.step_id!r}: {what}, which the DataStream job does not carry"
        if isinstance(step, OperatorStep):
            error = row_step_error(step)
            if error is not None:
                return f"step {step.step_id!r}: {error.problem}"
        if not isinstance(step, _TRANSLATED):
            what = {
                "interval_join": "interval joins pair two streams",
            }.get(step.kind, f"{step.kind} steps are not translated")
            return f"step {step.step_id!r}: {what}, which the DataStream job does not carry"
        if isinstance(step, WindowStep):
            if step.early or step.watermark_by:
                return f"step {step.step_id!r}: early results and per-partition watermarks are not translated"
            for a in step.aggs:
                try:
                    _plan.aggregator_code(a, step.step_id, step.time)
                except Exception:
                    return f"step {step.step_id!r}: aggregator {a.describe()} has no generated code"
    return None


def row_step_error(step: OperatorStep) -> PipelineConfigError | None:
    """Why a detector, feature, rule, drift or pattern step has no per-record form (naming the step and
    the fix), or None: the DataStream job runs those that have one.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.detectors import HalfSpaceTreesDetector
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse({"amount": "float64", "timestamp": "timestamp"}).detect(
    ...     HalfSpaceTreesDetector(), features=["amount"], step_id="trees"
    ... )
    >>> print(row_step_error(p.steps["trees"]))
    step 'trees' (HalfSpaceTreesDetector): the detector has seed=None: its random trees or features would differ between the notebook and the exported job. Fix: pass seed=42 (any int) to HalfSpaceTreesDetector
    """
    try:
        _detectors.row_step_spec(step.config, step.step_id)
    except PipelineConfigError as e:
        return e
    return None


_HEADER = '''"""PyFlink DataStream job {name!r}, exported from streamlab (Flink {version}): late rows as side outputs.

Steps: {steps}.

    python datastream.py --input events.jsonl --output out/            # Flink's local mini-cluster
    flink run -py datastream.py -- --source kafka --sink files --output s3://bucket/out/

Every record is parsed with streamlab's parser; the steps after it run in one ``KeyedProcessFunction``
with streamlab's per-event rules (copied below) and their state in Flink keyed state; each output
(window results, late rows, duplicates, dead letters) is its own ``OutputTag`` and its own sink.

{semantics}"""

from __future__ import annotations

import argparse
import base64
import glob
import heapq
import json
import math
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any
'''

_BODY = '''

END_OF_TIME = 2**63 - 2  # an event-time timer that only the final watermark of a bounded input fires


def parse_line(line, emit):
    """One raw record: its row (timestamps as UTC datetimes), or None after emitting its dead letter."""
    try:
        return parse_record(line, FIELDS, REQUIRED, MAX_RECORD_BYTES)
    except BadRecordError as e:
        emit(PARSE_STEP + ".dead_letter", raw_dead_letter_row(line, str(e), PARSE_STEP))
        return None


def event_time(row, step, time, emit):
    """A window step's event time of the row (ns), or None after sending the row to its dead letters."""
    try:
        return to_ns(row[time])
    except (KeyError, TypeError, ValueError, OverflowError):
        emit(step + ".dead_letter", dead_letter_row(unreadable_time_reason(time), step, row))
        return None


def unfit_row(row, step, keys, emit):
    """Whether the window step sets the row aside: a key that cannot be a key (a dict, a list) or a value
    its aggregators cannot take (``unfit_reason``, streamlab's rule) sends it to ``<step>.dead_letter``
    with streamlab's reason, before its event time is read."""
    unfit = unfit_reason(row, keys, UNFIT_CHECKS[step])
    if unfit is not None:
        emit(step + ".dead_letter", dead_letter_row(unfit, step, row))
    return unfit is not None


def window_row(row, step, state, emit):
    """streamlab's window rule for one row: unfit rows to ``<step>.dead_letter``, late pairs to
    ``<step>.late``, the rest into accumulators. A window's key is ``group_key``'s JSON text of the key
    values, so ``true``, ``1``, ``1.0`` and ``"1"`` of a ``json`` field are four keys, as in streamlab
    (Python holds the first three equal)."""
    keys, size, slide, offset, delay, lateness, time = WINDOWS[step]
    if unfit_row(row, step, keys, emit):
        return
    ts = event_time(row, step, time, emit)
    if ts is None:
        return
    held = state.setdefault(step, {"max_ns": None, "windows": {}})
    held["max_ns"] = ts if held["max_ns"] is None else max(held["max_ns"], ts)
    watermark = held["max_ns"] - delay
    for start in window_starts(ts, size, slide, offset):
        if start + size + lateness <= watermark:
            window = {"window_start": from_ns(start), "window_end": from_ns(start + size)}
            emit(step + ".late", {**row, **window, "watermark": from_ns(watermark)})
            continue
        slot = (start, group_key(row, keys))
        acc = held["windows"].get(slot)
        combine = COMBINES[step]
        held["windows"][slot] = combine.add_input(
            acc if acc is not None else combine.create_accumulator(), row, ts
        )
    close_windows(step, state, emit, final=False)


def close_windows(step, state, emit, final):
    """Emit the results of the windows the step's watermark closed (all of them when ``final``)."""
    keys, size, _, _, delay, lateness, _ = WINDOWS[step]
    held = state.get(step)
    if not held or held["max_ns"] is None:
        return
    watermark = held["max_ns"] - delay
    for slot in sorted(held["windows"], key=repr):
        start, key = slot
        if final or start + size + lateness <= watermark:
            result = COMBINES[step].extract_output(held["windows"].pop(slot))
            bounds = {"window_start": from_ns(start), "window_end": from_ns(start + size)}
            emit(step, {**dict(zip(keys, json.loads(key))), **bounds, **result})


def session_row(row, step, state, emit):
    """streamlab's session rule for one row: late when its own session ``[t, t + gap)`` is closed or it
    would join a session of its key already emitted; else it opens a session or merges those it touches.
    Unfit rows go to ``<step>.dead_letter``; keys are ``group_key``'s JSON text, as in ``window_row``."""
    keys, gap, delay, lateness, time = SESSIONS[step]
    if unfit_row(row, step, keys, emit):
        return
    ts = event_time(row, step, time, emit)
    if ts is None:
        return
    held = state.setdefault(step, {"max_ns": None, "open": {}, "closed_end": {}})
    held["max_ns"] = ts if held["max_ns"] is None else max(held["max_ns"], ts)
    watermark = held["max_ns"] - delay
    close_sessions(step, state, emit, final=False)
    key = group_key(row, keys)
    if ts + gap + lateness <= watermark or ts < held["closed_end"].get(key, ts):
        bounds = {"window_start": from_ns(ts), "window_end": from_ns(ts + gap)}
        emit(step + ".late", {**row, **bounds, "watermark": from_ns(watermark)})
        return
    sessions = held["open"].setdefault(key, [])
    hits = [s for s in sessions if s[0] < ts + gap and ts < s[1] + gap]
    combine = COMBINES[step]
    for s in hits:
        sessions.remove(s)
    start, last = min([ts] + [s[0] for s in hits]), max([ts] + [s[1] for s in hits])
    acc = combine.merge_accumulators([s[2] for s in hits]) if hits else combine.create_accumulator()
    sessions.append([start, last, combine.add_input(acc, row, ts)])


def close_sessions(step, state, emit, final):
    """Emit the sessions the step's watermark closed (all of them when ``final``), remembering where
    each key's last one ended."""
    keys, gap, delay, lateness, _ = SESSIONS[step]
    held = state.get(step)
    if not held or held["max_ns"] is None:
        return
    watermark = held["max_ns"] - delay
    for key in sorted(held["open"], key=repr):
        still = []
        for start, last, acc in held["open"][key]:
            if final or last + gap + lateness <= watermark:
                bounds = {"window_start": from_ns(start), "window_end": from_ns(last + gap)}
                emit(step, {**dict(zip(keys, json.loads(key))), **bounds, **COMBINES[step].extract_output(acc)})
                held["closed_end"][key] = max(held["closed_end"].get(key, last + gap), last + gap)
            else:
                still.append([start, last, acc])
        if still:
            held["open"][key] = still
        else:
            del held["open"][key]
    # a remembered end only matters while a row could still be within one gap of it
    horizon = watermark - gap - lateness
    held["closed_end"] = {k: e for k, e in held["closed_end"].items() if e > horizon}


def join_row(row, step, port, state):
    """streamlab's interval join for one row of side ``port`` (0 left, 1 right): the late row (behind
    the smaller of the two sides' largest event times minus the delay, or without time) to
    ``<step>.late``, else the pairs it makes with the other side's rows held; then rows no later row
    can pair with are dropped. Returns ``(pairs, late row or None)``."""
    on, times, lower, upper, delay, suffixes, typed = JOINS[step]
    held = state.setdefault(step, {"max_ns": [None, None], "rows": [[], []]})
    maxes = held["max_ns"]
    try:
        ts = to_ns(row[times[port]])
    except (KeyError, TypeError, ValueError, OverflowError):
        ts = None
    watermark = None if None in maxes else min(maxes) - delay
    if ts is None or (watermark is not None and ts < watermark):
        return [], {"join_side": "right" if port else "left", **row}
    maxes[port] = ts if maxes[port] is None else max(maxes[port], ts)
    key = [row.get(k) for k in on]
    pairs = []
    if not unjoinable(tuple(key)):  # a missing key (None, NaN), a dict or a list matches nothing and is not held, as in streamlab
        # a json key matches one of the same value and type (true, 1 and 1.0 are three keys), as in streamlab
        key = [typed_id(v) if t else v for v, t in zip(key, typed)]
        for other_ts, other in held["rows"][1 - port]:
            if [typed_id(other.get(k)) if t else other.get(k) for k, t in zip(on, typed)] != key:
                continue
            mine, theirs = (ts, row), (other_ts, other)
            (lts, left), (rts, right) = (mine, theirs) if port == 0 else (theirs, mine)
            if lower <= rts - lts <= upper:
                both = set(left) & set(right) - set(on)
                pair = {(c + suffixes[0] if c in both else c): v for c, v in left.items()}
                pair.update({(c + suffixes[1] if c in both else c): v for c, v in right.items() if c not in on})
                pairs.append(pair)
        held["rows"][port].append((ts, row))
    if None not in maxes:
        watermark = min(maxes) - delay
        held["rows"][0] = [(t, r) for t, r in held["rows"][0] if t + upper >= watermark]
        held["rows"][1] = [(t, r) for t, r in held["rows"][1] if t - lower >= watermark]
    return pairs, None


def dedup_row(row, step, state, emit):
    """streamlab's dedup rule (``Dedup``): True when the row passes, False for a repeat."""
    column, time, ttl_ns, max_ids = DEDUPS[step]
    rule = Dedup.from_json(state.get(step), ttl_ns, max_ids)
    ts = None if time is None or row.get(time) is None else to_ns(row[time])
    repeat = rule.is_duplicate(typed_id(dedup_key(row.get(column))), ts)
    state[step] = rule.to_json()
    if repeat:
        emit(step + ".duplicates", row)
    return not repeat


@STEPS@


def build(raw):
    """Every output of the job as a DataStream of JSON lines, by stream reference."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag
    from pyflink.datastream.state import ValueStateDescriptor

    tags = {ref: OutputTag(ref.replace(".", "_"), Types.STRING()) for ref in OUTPUTS}

    class Steps(KeyedProcessFunction):
        """streamlab's per-event rules after the parse; every step's state is one keyed value."""

        def open(self, runtime_context):
            descriptor = ValueStateDescriptor("streamlab-steps", Types.PICKLED_BYTE_ARRAY())
            self.state = runtime_context.get_state(descriptor)

        def process_element(self, line, ctx):
            state = self.state.value()
            if state is None:
                state = {}
                ctx.timer_service().register_event_time_timer(END_OF_TIME)
            out = []
            row = parse_line(line, lambda ref, r: out.append((ref, r)))
            if row is not None:
                after_parse(row, state, lambda ref, r: out.append((ref, r)))
            self.state.update(state)
            for ref, r in out:
                if ref in tags:
                    yield tags[ref], dump_json(r, compact=False)  # NaN and infinities as null, as every JSON sink

        def on_timer(self, timestamp, ctx):
            state = self.state.value() or {}
            out = []
            finish_rows(state, lambda ref, r: out.append((ref, r)))
            for step in WINDOWS:
                close_windows(step, state, lambda ref, r: out.append((ref, r)), final=True)
            for step in SESSIONS:
                close_sessions(step, state, lambda ref, r: out.append((ref, r)), final=True)
            self.state.update(state)
            for ref, r in out:
                if ref in tags:
                    yield tags[ref], dump_json(r, compact=False)  # NaN and infinities as null, as every JSON sink

    # streamlab's watermark is one per step over the whole stream: the stateful steps run under one key
    steps = raw.key_by(lambda _: 0, key_type=Types.INT()).process(Steps(), output_type=Types.STRING())
    return {ref: steps.get_side_output(tag) for ref, tag in tags.items()}


KAFKA_MESSAGE_LIMIT = 1_000_000 - 1024
"""Largest record sent to Kafka: producers and brokers refuse records over 1 MB by default, and a refused
record would fail the job on every restart from its checkpoint."""


def fit_kafka_value(value):
    """A JSON row cut to KAFKA_MESSAGE_LIMIT when it is larger (``fit_message``: its reason, step and the start
    of its ``raw`` text, with ``raw_truncated``, ``raw_bytes`` and ``raw_sha256``); others unchanged."""
    if len(value) <= KAFKA_MESSAGE_LIMIT // 4 or len(value.encode("utf-8")) <= KAFKA_MESSAGE_LIMIT:
        return value
    return fit_message(json.loads(value), KAFKA_MESSAGE_LIMIT, lambda r: json.dumps(r, separators=(",", ":")))[0]


def sink(stream, name, args):
    """Write one output: JSON lines under ``--output/<name>`` or a Kafka topic named ``name`` (rows over
    Kafka's record limit cut to fit)."""
    if args.sink == "kafka":
        from pyflink.common import Types
        from pyflink.common.serialization import SimpleStringSchema
        from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

        serializer = (
            KafkaRecordSerializationSchema.builder()
            .set_topic(name)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        target = (
            KafkaSink.builder()
            .set_bootstrap_servers(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
            .set_record_serializer(serializer)
            .build()
        )
        stream.map(fit_kafka_value, output_type=Types.STRING()).sink_to(target).name(name)
        return
    from pyflink.common.serialization import Encoder
    from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink

    target = (
        FileSink.for_row_format(f"{args.output.rstrip('/')}/{name}", Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    stream.sink_to(target).name(name)


@RAW_STREAM@def run(argv=None):
    """Parse the command line, build the job and run it (until the input ends, for files)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("files", "kafka", "eventhubs", "kinesis"), default=None)
    parser.add_argument("--input", nargs="+", help="files (or glob patterns) of raw JSON lines")
    parser.add_argument(
        "--input_format",
        choices=INPUT_FORMATS,
        default="lines",
        help="with --input: one raw record per line, or (base64) one record's bytes in base64 per line",
    )
    parser.add_argument("--sink", choices=("files", "kafka"), default="files")
    parser.add_argument("--output", help="directory (or s3:// prefix) for --sink files")
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--checkpoint-interval-ms", type=int, default=CHECKPOINT_INTERVAL_MS)
    args = parser.parse_args(argv)
    if args.source is None:
        args.source = "files" if args.input else DEFAULT_SOURCE
    if args.source == "files" and not args.input:
        parser.error("--source files needs --input FILE [FILE ...]")
    if args.input_format != "lines" and args.source != "files":
        parser.error("--input_format needs --input FILES")
    if args.sink == "files" and not args.output:
        parser.error("--sink files needs --output DIR")
    from pyflink.common import Configuration
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from pyflink.util.java_utils import get_j_env_configuration, is_local_deployment

    env = StreamExecutionEnvironment.get_execution_environment()
    if args.source == "files":
        env.configure(Configuration().set_string("restart-strategy.type", "none"))  # fail, not restart
    # on the local mini-cluster the Python workers run this Python, as PyFlink's TableEnvironment
    # arranges for its own jobs (the DataStream API leaves it to "python" on the PATH)
    j_config = get_j_env_configuration(env._j_stream_execution_environment)
    if is_local_deployment(j_config) and not j_config.containsKey("python.executable"):
        env.set_python_executable(sys.executable)
    if args.parallelism:
        env.set_parallelism(args.parallelism)
    env.enable_checkpointing(args.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    for ref, stream in build(raw_stream(env, args)).items():
        sink(stream, OUTPUTS[ref], args)
    env.execute(PIPELINE_NAME + " (datastream)")


if __name__ == "__main__":
    run()
'''


_EXPR_HELPERS = '''

def transform_row(row, step, what, emit, transform):
    """A filter's or with_columns' ``transform`` on one row; a row it raises on goes to the step's
    dead letters with streamlab's reason (and None is returned)."""
    try:
        return transform(row, step)
    except Exception as e:
        emit(step + ".dead_letter", dead_letter_row(f"{what} raised {type(e).__name__}: {e}", step, row))
        return None


def keep_row(row, step):
    """Whether the filter's expression (pandas, as streamlab evaluates it) holds for the row."""
    return filter_keeps(FILTERS[step], row, NUMERIC[step], TYPED[step])


def map_row(row, step):
    """The row with the step's columns added, each expression seeing the columns before it."""
    for name, expr in MAPS[step]:
        row = {**row, name: eval_expr(expr, row, NUMERIC[step], TYPED[step])}
    return row
'''

_ROW_HELPERS = '''

def row_machine(step, state):
    """The step's per-record state machine (``make_step`` of streamlab._detector_record, below), kept in
    the job's keyed state; one read back from a checkpoint gets its helpers again."""
    machine = state.get(step)
    if machine is None:
        machine = state[step] = make_step(ROW_SPECS[step], eval_expr, to_ns, from_ns)
    else:
        machine.bind(eval_expr, to_ns, from_ns)
    return machine
'''


def _steps_code(p: Pipeline) -> str:
    """``after_parse(row, state, emit)`` and one function per step, calling the steps that read it."""
    consumers = p.consumers()
    lines: list[str] = []

    def calls(ref: str, indent: str = "    ") -> list[str]:
        out = [f"{indent}emit({ref!r}, row)"]
        for sid, port in consumers.get(ref, []):
            if isinstance(p.steps[sid], IntervalJoinStep):
                out.append(f"{indent}step_{_plan.ident(sid)}(row, state, emit, {port})")
            elif not isinstance(p.steps[sid], SinkStep):
                out.append(f"{indent}step_{_plan.ident(sid)}(row, state, emit)")
        return out

    parse = next(s for s in p.steps.values() if isinstance(s, ParseStep))
    lines += ["def after_parse(row, state, emit):", '    """The steps reading the parse step\'s rows."""']
    lines += calls(parse.step_id)
    for sid, step in p.steps.items():
        head = [
            "",
            "",
            f"def step_{_plan.ident(sid)}(row, state, emit):",
            f'    """Step {sid!r} ({step.kind})."""',
        ]
        if isinstance(step, DedupStep):
            lines += [*head, f"    if not dedup_row(row, {sid!r}, state, emit):", "        return"]
            lines += calls(sid)
        elif isinstance(step, SelectStep):
            lines += [*head, f"    row = {{new: row.get(old) for old, new in {list(step.columns)!r}}}"]
            lines += calls(sid)
        elif isinstance(step, KeyByStep):
            lines += [*head, f"    # key_by {list(step.keys)}: the windows below group by these columns"]
            lines += calls(sid)
        elif isinstance(step, WindowStep):
            rule = "session_row" if isinstance(step.window, SessionWindow) else "window_row"
            lines += [*head, f"    {rule}(row, {sid!r}, state, emit)"]
        elif isinstance(step, IntervalJoinStep):
            head[2] = f"def step_{_plan.ident(sid)}(row, state, emit, port):"
            lines += [*head, f"    pairs, late = join_row(row, {sid!r}, port, state)"]
            lines += ["    if late is not None:", f"        emit({sid + '.late'!r}, late)"]
            lines += ["    for row in pairs:", *calls(sid, "        ")]
        elif isinstance(step, FilterStep):
            lines += [*head, f"    keep = transform_row(row, {sid!r}, {_what(step)!r}, emit, keep_row)"]
            lines += ["    if not keep:", "        return"]
            lines += calls(sid)
        elif isinstance(step, MapStep):
            lines += [*head, f"    row = transform_row(row, {sid!r}, {_what(step)!r}, emit, map_row)"]
            lines += ["    if row is None:", "        return"]
            lines += calls(sid)
        elif isinstance(step, OperatorStep):
            lines += [
                *head,
                f"    route_{_plan.ident(sid)}(row_machine({sid!r}, state).process(row), state, emit)",
            ]
            lines += [
                "",
                "",
                f"def route_{_plan.ident(sid)}(outputs, state, emit):",
                f'    """Step {sid!r}\'s outputs: its rows to the steps reading them, the others to their outputs."""',
                "    for name, row in outputs:",
                '        if name == "out":',
                *calls(sid, "            "),
                '        elif name == "dead_letter":',
                f'            emit({sid + ".dead_letter"!r}, {{**row, "step_id": {sid!r}}})',
                "        else:",
                f'            emit({sid!r} + "." + name, row)',
            ]
    rows = [sid for sid, step in p.steps.items() if isinstance(step, OperatorStep)]
    lines += [
        "",
        "",
        "def finish_rows(state, emit):",
        '    """At the end of a bounded input: what the row steps hold back (a pattern\'s events), in order."""',
        *(f"    route_{_plan.ident(sid)}(row_machine({sid!r}, state).finish(), state, emit)" for sid in rows),
        *([] if rows else ["    return None"]),
    ]
    return "\n".join(lines)


def _what(step: FilterStep | MapStep) -> str:
    """How streamlab names a filter or with_columns step in its dead letters' reasons."""
    if isinstance(step, FilterStep):
        return f"filter {step.expr!r}"
    return "with_columns(" + ", ".join(f"{k}={v!r}" for k, v in step.columns) + ")"


def _consts(p: Pipeline) -> tuple[list[str], set[str]]:
    consts: list[str] = []
    snippets = {"window_starts", "RowCombine", "json_default", "dump_json", "dead_letter_row", "group_key"}
    windows: dict[str, tuple[object, ...]] = {}
    checks: dict[str, tuple[tuple[str, str, bool], ...]] = {}
    combines: list[str] = []
    dedups: dict[str, tuple[object, ...]] = {}
    sessions: dict[str, tuple[object, ...]] = {}
    joins: dict[str, tuple[object, ...]] = {}
    field_types = _plan.column_types(p)
    for sid, step in p.steps.items():
        if isinstance(step, WindowStep):
            w = step.window
            if isinstance(w, SessionWindow):
                sessions[sid] = (tuple(step.keys), w.gap_ns, step.delay_ns, step.lateness_ns, step.time)
            else:
                assert isinstance(w, (TumblingWindow, SlidingWindow))
                slide = w.every_ns if isinstance(w, SlidingWindow) else w.size_ns
                windows[sid] = (
                    tuple(step.keys),
                    w.size_ns,
                    slide,
                    w.offset_ns,
                    step.delay_ns,
                    step.lateness_ns,
                    step.time,
                )
            checks[sid] = _plan.unfit_checks(step)
            aggs = []
            for a in step.aggs:
                cls, expr = _plan.aggregator_code(a, sid, step.time)
                snippets.add(cls)
                aggs.append(f"({a.name!r}, {expr})")
            combines.append(f"    {sid!r}: RowCombine([{', '.join(aggs)}]),")
        elif isinstance(step, DedupStep):
            dedups[sid] = (step.id_column, step.time, step.ttl_ns, step.max_ids)
        elif isinstance(step, IntervalJoinStep):
            times = (step.left_time, step.right_time)
            # key columns compared by value and type: those a json field (Python objects) fills on either side
            sides = [field_types.get(r, {}) for r in step.inputs]
            by_type = tuple(any(t.get(c) in ("json", "object") for t in sides) for c in step.on)
            joins[sid] = (
                tuple(step.on),
                times,
                step.lower_ns,
                step.upper_ns,
                step.delay_ns,
                step.suffixes,
                by_type,
            )
    consts.append("# window step -> (keys, size, slide, offset, delay, lateness, time column), in ns")
    consts.append(_plan.const("WINDOWS", windows))
    consts += ["COMBINES = {", *combines, "}"]
    consts.append("# window step -> what unfit_reason checks: (aggregator, column, numeric) triples")
    consts.append(_plan.const("UNFIT_CHECKS", checks))
    consts.append("# dedup step -> (id column, time column, ttl ns, max ids)")
    consts.append(_plan.const("DEDUPS", dedups))
    consts.append("# session window step -> (keys, gap, delay, lateness, time column), in ns")
    consts.append(_plan.const("SESSIONS", sessions))
    consts.append(
        "# interval join step -> (keys, (left, right time), lower, upper, delay, suffixes, keys compared"
        " by type), ns"
    )
    consts.append(_plan.const("JOINS", joins))
    filters = {sid: s.expr for sid, s in p.steps.items() if isinstance(s, FilterStep)}
    maps = {sid: s.columns for sid, s in p.steps.items() if isinstance(s, MapStep)}
    rows = {
        sid: _detectors.row_step_spec(s.config, sid)
        for sid, s in p.steps.items()
        if isinstance(s, OperatorStep)
    }
    if filters or maps:
        snippets.update({"eval_expr", "filter_keeps"})
        consts.append("# filter step -> expression; with_columns step -> (column, expression), in order")
        consts += [_plan.const("FILTERS", filters), _plan.const("MAPS", maps)]
        types = _detectors.output_types(p, _plan.column_types(p))
        numeric = {
            sid: _plan.numeric_columns(types.get(p.steps[sid].inputs[0], {})) for sid in [*filters, *maps]
        }
        consts.append("# filter and with_columns step -> the input's numeric columns (a missing one is NaN)")
        consts.append(_plan.const("NUMERIC", numeric))
        typed = {sid: _plan.typed_columns(types.get(p.steps[sid].inputs[0], {})) for sid in [*filters, *maps]}
        consts.append("# filter and with_columns step -> (column, type) of the input's other typed columns")
        consts.append(_plan.const("TYPED", typed))
    if rows:
        snippets.update({"eval_expr", "to_ns", "from_ns"})
        consts.append(
            "# detector, feature, rule, drift and pattern step -> its spec (streamlab.export._detectors)"
        )
        consts.append(_plan.const("ROW_SPECS", rows))
    return consts, snippets


def datastream_py(p: Pipeline, source: str, sink: str, version: str = "2.3.0") -> str:
    """The text of ``datastream.py`` for ``p`` (check :func:`datastream_refusal` first).

    Examples
    --------
    >>> from streamlab import Pipeline, SlidingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]), name="demo")
    >>> _ = p.parse().dedup("event_id").window(SlidingWindow("2m", every="1m")).agg(agg.count())
    >>> text = datastream_py(p, "kafka", "files")
    >>> "def step_window(row, state, emit):" in text, "'window.late'" in text
    (True, True)
    """
    from streamlab.export.flink import raw_stream_code

    parse = next(s for s in p.steps.values() if isinstance(s, ParseStep))
    header = _HEADER.format(
        name=p.name, version=version, steps=" -> ".join(p.steps), semantics=DATASTREAM_SEMANTICS.strip()
    )
    fields = tuple((f.name, f.type, f.path) for f in parse.fields)
    req = tuple(dict.fromkeys(((parse.time,) if parse.time else ()) + parse.required))
    consts, snippets = _consts(p)
    outputs = datastream_outputs(p)
    rows = any(isinstance(s, OperatorStep) for s in p.steps.values())
    helpers = _EXPR_HELPERS if any(isinstance(s, (FilterStep, MapStep)) for s in p.steps.values()) else ""
    helpers += _ROW_HELPERS if rows else ""
    steps = helpers.lstrip("\n") + ("\n\n" if helpers else "") + _steps_code(p)
    body = _BODY.replace("@STEPS@", steps).replace("@RAW_STREAM@", raw_stream_code(version))
    if rows:
        header = header.replace("import base64\n", "import base64\nimport bisect\n", 1)
        header = header.replace(
            "from datetime import", "from collections import OrderedDict, deque\nfrom datetime import", 1
        )
    parts = [
        header,
        "# -- streamlab's record parser and per-event rules, copied: this module must not import streamlab\n",
        _plan.snippet_source(snippets),
        *(
            [
                "\n\n# -- streamlab._detector_record: per-record detectors, features, rules and patterns\n",
                _detectors.detector_record_source(),
            ]
            if rows
            else [
                "\n\n# -- streamlab._detector_record's tests of keys and values (windows, interval joins)\n",
                _plan.unfit_source(),
            ]
        ),
        "\n\n# -- the pipeline\n",
        f"PIPELINE_NAME = {p.name!r}",
        f"PARSE_STEP = {parse.step_id!r}",
        _plan.const("FIELDS", fields),
        _plan.const("REQUIRED", req),
        f"MAX_RECORD_BYTES = {parse.max_record_bytes!r}",
        "CHECKPOINT_INTERVAL_MS = 10_000",
        f"DEFAULT_SOURCE = {json.dumps(source)}  # what the deployment reads without --input",
        *consts,
        "# output reference -> sink name (every output, late rows and duplicates included)",
        _plan.const("OUTPUTS", outputs),
        body,
    ]
    return "\n".join(parts)


def datastream_outputs(p: Pipeline) -> dict[str, str]:
    """Every output ``datastream.py`` writes: stream reference -> sink name.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().window(TumblingWindow("1m")).agg(agg.count())
    >>> datastream_outputs(p)
    {'parse.dead_letter': 'parse_dead_letter', 'window': 'window', 'window.late': 'window_late', 'window.dead_letter': 'window_dead_letter'}
    """
    out: dict[str, str] = {}
    for ref, name in _plan.sink_outputs(p).items():
        step: Step = p.steps[ref.partition(".")[0]]
        if not isinstance(step, (SourceStep, SinkStep)):
            out[ref] = name
    return out


def datastream_compared(p: Pipeline) -> dict[str, tuple[list[str], set[str]]]:
    """What ``verify`` compares of the DataStream job: every output it writes, on the columns that must
    be equal to streamlab's (and which of them are times).

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    >>> datastream_compared(p)["window.late"][0]
    ['event_type', 'timestamp', 'window_start', 'window_end', 'watermark']
    """
    out: dict[str, tuple[list[str], set[str]]] = {}
    for sid, step in p.steps.items():
        if isinstance(step, ParseStep):
            out[f"{sid}.dead_letter"] = (list(PARSE_DEAD_LETTER_COLUMNS), set())
        elif isinstance(step, DedupStep):
            cols = [step.id_column] + ([step.time] if step.time else [])
            out[f"{sid}.duplicates"] = (cols, {step.time} if step.time else set())
        elif isinstance(step, WindowStep):
            bounds = ["window_start", "window_end"]
            given = _plan.column_types(p).get(step.inputs[0], {})
            timed = {a.name for a in step.aggs if _plan.result_type(a, given) == "timestamp"}  # first/last
            out[sid] = ([*step.keys, *bounds, *(a.name for a in step.aggs)], {*bounds, *timed})
            late = [*step.keys, step.time, *bounds, "watermark"]
            out[f"{sid}.late"] = (late, {step.time, *bounds, "watermark"})
            # rows whose key or aggregated values the window cannot take, with streamlab's reason
            out[f"{sid}.dead_letter"] = (["reason", "step_id", *step.keys, step.time], {step.time})
        elif isinstance(step, IntervalJoinStep):
            types = _plan.column_types(p)
            cols = list(p.columns_of(sid) or ())
            stamps = {c for ref in step.inputs for c, t in types.get(ref, {}).items() if t == "timestamp"}
            suffixed = {c + x for c in stamps for x in step.suffixes}
            out[sid] = (cols, {c for c in cols if c in stamps | suffixed})
            left, right = (list(p.columns_of(ref) or ()) for ref in step.inputs)
            common = [c for c in left if c in right]  # what a late row of either side has
            out[f"{sid}.late"] = (["join_side", *common], {c for c in common if c in stamps})
    written = datastream_outputs(p)

    kinds = _plan.column_types(p)
    for ref in written:  # row outputs (filters, maps, selects, dedups, detectors) on all their columns
        step = p.steps[ref.partition(".")[0]]
        if not isinstance(step, WindowStep) and ref not in out:
            cols = list(p.columns_of(ref) or ())
            timed = _plan.row_times(p, ref, kinds)  # by name, and renamed or copied times
            out[ref] = (cols, {c for c in cols if c in timed})
    return {ref: spec for ref, spec in out.items() if ref in written}
