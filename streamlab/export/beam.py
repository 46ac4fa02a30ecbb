"""Export a pipeline to a standalone Apache Beam module, plus its deployment files.

The generated module imports Apache Beam only (no streamlab): helpers are copied in from
``streamlab.export._snippets``. Semantics and where Beam differs are written into the module's
docstring; the short version:

* streamlab's watermark is tracked per window step: the largest event time among the rows that reach
  the step, minus its ``delay``. The generated replay source (``replay_stream``, a ``TestStream``)
  runs each record through the steps before each window step (parse, filters, maps, dedup, the
  window's own dead-letter checks: ``replay_steps``) and holds Beam's watermark at the smallest of
  those, so it never runs ahead of a window step's watermark; a window step after a detector, feature
  or pattern step or another window is followed by every parsed record instead, and the module's
  docstring says so (``replay_unfollowed``). On Pub/Sub, Dataflow estimates the watermark from publish
  times (or a timestamp attribute) instead.
* A window emits one final result once the watermark reaches ``end + lateness``. The generated code
  shifts event times forward by the lateness (plus any delay beyond the pipeline's watermark delay),
  windows with ``AfterWatermark(late=AfterCount(1))`` in discarding mode, and turns the on-time pane
  into the result (aggregated by a CombineFn). Which rows are late is streamlab's rule, applied before
  Beam sees them (``StampEventTime``, against the largest event time its worker has seen at the step,
  which never runs ahead of streamlab's watermark): a row goes to ``late`` with each window that is
  closed, and Beam puts it only into its other windows (``ListedWindows``: a sliding window's row can
  be late for one window and counted in another). Where Beam's watermark is estimated (Pub/Sub), a row
  Beam finds late first still reaches ``late`` through a late pane; Beam keeps a closed window's state
  ``late_horizon`` long, and on several workers a row later than that whose own worker has not yet
  seen the newer events is dropped by Beam: keep ``late_horizon`` above the lateness you expect.
* Session windows use the same panes over Beam's merging ``Sessions``, with streamlab's session rule
  (``assign_one_by_one``, copied): a row whose own session has closed, or that would join a session
  already emitted, goes to ``late`` before Beam sees it. Beam merging such a row into a fired session
  would re-open it (streamlab never does), and its watermark hold is never released, so the
  DirectRunner stops with "pipeline stall". The rule's state is per process.
* Times are microseconds in Beam (element timestamps, the rows' datetimes, JSON and BigQuery outputs),
  where streamlab keeps nanoseconds: digits below the microsecond are truncated at parse, as
  streamlab's own JSON sinks write them (``verify`` compares such times at the microsecond and says
  so), and a window whose size, offset, gap, lateness or delay is not whole microseconds is refused.
"""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamlab._coltypes import declared_type
from streamlab._step_kinds import label_of
from streamlab._time import parse_duration
from streamlab.errors import PipelineConfigError
from streamlab.export import _detectors, _plan, _registry
from streamlab.export._input import replay_input_block
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
    WindowStep,
)
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow

__all__ = ["ExportedFiles", "to_beam"]

BEAM_VERSION = "2.77.0"
_BQ_TYPES = {
    "string": "STRING",
    "category": "STRING",
    "int64": "INT64",
    "float64": "FLOAT64",
    "bool": "BOOL",
    "timestamp": "TIMESTAMP",
    "object": "JSON",
    "json": "JSON",
    "bytes": "BYTES",
}


@dataclass
class ExportedFiles:
    """The files an export wrote.

    Parameters
    ----------
    directory
        Where they are.
    module
        The generated Python module (the Beam pipeline or the Lambda handler).
    files
        Every file written, by name.
    target
        ``"beam"``, ``"lambda"``, ``"flink"`` or ``"spark"``.

    Examples
    --------
    >>> ExportedFiles(Path("out"), Path("out/job.py"), {"job.py": Path("out/job.py")}, "beam")
    ExportedFiles(beam: out/job.py)
    >>> import tempfile
    >>> out = ExportedFiles.at(tempfile.mkdtemp(), "job.py", "spark")
    >>> out.write("job.py", "print(1)").name, out.read("job.py"), sorted(out.files)
    ('job.py', 'print(1)', ['job.py'])
    """

    directory: Path
    module: Path
    files: dict[str, Path] = field(default_factory=dict)
    target: str = "beam"

    @classmethod
    def at(cls, path: str | Path, module: str, target: str) -> ExportedFiles:
        """An empty export in directory ``path`` (created), whose generated module will be ``module``."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory, directory / module, {}, target)

    def write(self, name: str, text: str) -> Path:
        """Write one file of the export and record it."""
        target = self.directory / name
        target.write_text(text)
        self.files[name] = target
        return target

    def read(self, name: str) -> str:
        """Text of one written file, e.g. ``read("main.tf")``."""
        return self.files[name].read_text()

    def __repr__(self) -> str:
        return f"ExportedFiles({self.target}: {self.module})"

    def _repr_html_(self) -> str:
        items = "".join(
            f"<li><code>{n}</code> ({p.stat().st_size:,} bytes)</li>" for n, p in self.files.items()
        )
        return f"<div><b>{self.target} export</b> in <code>{self.directory}</code><ul>{items}</ul></div>"


# ------------------------------------------------------------------------------------------------
_HEADER = '''"""Apache Beam pipeline {name!r}, exported from streamlab.

Steps: {steps}.

{replay_input}Run it
------
Streaming from Pub/Sub (Dataflow)::

    python {module} --subscription projects/PROJECT/subscriptions/SUB {sink_args} \\
        --runner DataflowRunner --project PROJECT --region REGION --temp_location gs://BUCKET/tmp

{shipped}Backfill from a file of JSON lines (one raw record per line)::

    python {module} --input events.jsonl {sink_args} --runner DirectRunner

Records that hold line breaks: write each record's bytes in base64, one per line, and add
``--input_format base64`` (Pub/Sub messages are records as they are).

Nothing is late in a backfill (below). To get streamlab's results on a file, late rows included (what
``streamlab.export.verify`` runs), replay it in order as a stream::

    python {module} --input events.jsonl --replay {sink_args} --runner DirectRunner

Tests: ``replay_stream(lines)`` builds a TestStream that replays records in arrival order with a
watermark that never runs ahead of streamlab's (see its docstring), and ``build(raw)`` returns every
stream by streamlab reference.

Semantics (streamlab -> Beam)
-----------------------------
* Parse: the same checks and dead-letter reasons as streamlab; dead letters carry ``raw``, ``reason``
  and ``step_id`` on the ``dead_letter`` output.
* Watermark: streamlab keeps one per window step, the largest event time among the rows that reach
  the step (not those a filter, a dedup or the step's own dead letters removed; after a map, at the
  time it gave) minus the step's delay. ``replay_stream`` runs each record through the steps before
  each window step and holds Beam's watermark at the smallest of those (rounded down to milliseconds,
  TestStream's resolution), so it never runs ahead of a window step's watermark. On Pub/Sub, Dataflow
  estimates the watermark from publish times unless publishers set an event-time attribute
  (``--timestamp_attribute``).
{unfollowed}* A bounded file (``--input``) advances Beam's watermark only once the whole file is read, so nothing
  is late in a backfill and every window is complete.
* Windows: one final result per window and key once the watermark reaches ``end + lateness``. Event
  times are shifted forward by the lateness so that Beam's on-time pane (``AfterWatermark``) fires
  then. Which rows are late is streamlab's rule, applied by ``StampEventTime`` against the largest
  event time this worker saw at the step minus the delay (never ahead of streamlab's watermark): a
  row goes to ``late`` with each of its windows that is closed, without streamlab's ``watermark``
  column, and Beam puts it only into the others (``ListedWindows``; a sliding window's row can be late
  for one window and counted in another). In the replay Beam's own watermark trails that rule, so
  every late row is found there. On Pub/Sub, where Beam's watermark is estimated and a worker sees only
  its own rows, a row Beam finds late first still goes to ``late`` through a late pane
  (``AfterCount(1)``, discarding); Beam keeps a closed window's state LATE_HORIZON_S long, and on several
  workers a row later than that whose own worker has not yet seen the newer events is dropped by Beam.
* Sessions: the same panes over Beam's merging ``Sessions``; which rows are late is streamlab's session
  rule (``assign_one_by_one``), run by ``StampEventTime`` against this process's largest event time at
  the step, so late rows never reach Beam's merging windows (a merge into a fired session would re-open
  it, and hold Beam's watermark for good). Its per-key state (open sessions, the end of the latest
  closed one) lives in the worker's memory.
* Times are microseconds here (Beam's element timestamps, the rows' datetimes, the JSON and BigQuery
  ``TIMESTAMP`` outputs); streamlab keeps nanoseconds. An event time with digits below the microsecond
  is truncated toward the past at parse, so a window bound or event time is written as streamlab's own
  JSON sinks write it, and events less than a microsecond apart are ordered (``first``, ``last``) and
  merged into sessions at the microsecond. Window sizes, offsets, gaps, lateness and delays are whole
  microseconds (the exporter refuses others).
* Dedup: streamlab's own rule (``Dedup``): an id is remembered while the largest event time seen is
  within ttl of its first occurrence, at most ``max_ids`` ids, the oldest forgotten first. The rule
  spans all ids, so every row reaches it under one key (one worker at a time).
"""

# ruff: noqa: B008 - Beam declares state, timer and window parameters as argument defaults

from __future__ import annotations

import argparse
import base64
import heapq
import json
import logging
import math
import re
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import BooleanCoder, BytesCoder, PickleCoder
from apache_beam.coders.coders import IntervalWindowCoder
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms import trigger, userstate
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming
'''

_DOFNS = {
    "parse": '''
class ParseRecords(beam.DoFn):
    """Raw JSON records to typed rows stamped with their event time; bad records to ``dead_letter``."""

    def __init__(self, step_id, fields, required, max_record_bytes, time):
        self.step_id = step_id
        self.fields = fields
        self.required = required
        self.max_record_bytes = max_record_bytes
        self.time = time

    def process(self, raw):
        try:
            row = parse_record(raw, self.fields, self.required, self.max_record_bytes)
        except BadRecordError as e:
            yield pvalue.TaggedOutput("dead_letter", raw_dead_letter_row(raw, str(e), self.step_id))
            return
        if self.time is None:
            yield row
        else:
            yield beam_window.TimestampedValue(row, Timestamp(micros=to_ns(row[self.time]) // 1_000))
''',
    "filter": '''
class FilterRows(beam.DoFn):
    """Keep rows for which the predicate holds; rows it fails on go to ``dead_letter`` with the error."""

    def __init__(self, step_id, what, predicate):
        self.step_id = step_id
        self.what = what
        self.predicate = predicate

    def process(self, row):
        try:
            keep = bool(self.predicate(row))
        except Exception as e:
            reason = f"{self.what} raised {type(e).__name__}: {e}"
            yield pvalue.TaggedOutput("dead_letter", dead_letter_row(reason, self.step_id, row))
            return
        if keep:
            yield row
''',
    "map": '''
class MapRows(beam.DoFn):
    """Transform each row; rows the function fails on go to ``dead_letter`` with the error."""

    def __init__(self, step_id, what, transform):
        self.step_id = step_id
        self.what = what
        self.transform = transform

    def process(self, row):
        try:
            rows = self.transform(row)
        except Exception as e:
            reason = f"{self.what} raised {type(e).__name__}: {e}"
            yield pvalue.TaggedOutput("dead_letter", dead_letter_row(reason, self.step_id, row))
            return
        yield from rows
''',
    "frames": '''
TEXT_DTYPE = pandas.Series(["text"]).dtype  # pandas' own for text: str on pandas 3 (NaN missing), else object


def typed_frame(rows, types):
    """``rows`` as the frame streamlab hands a ``map_many`` or ``filter_many`` function: a column of a known
    streamlab type (``types``: column -> type) in the dtype streamlab's columns have (float64 with NaN for a
    missing number; int64, nullable Int64 with a missing value; bool, objects with a missing value;
    pandas' text dtype; category; datetime64[ns, UTC]; objects for json and object fields), any other
    column as pandas infers it. A frame of the bare rows would type a missing value as an object None, so
    ``fillna(0) * 100`` of a float64 column would give the int 0 where streamlab gives 0.0."""
    frame = pandas.DataFrame(rows)
    for column, kind in types.items():
        if column not in frame.columns:
            continue
        values = [row.get(column) for row in rows]
        missing = any(v is None for v in values)
        if kind == "float64":
            dtype = "float64"
        elif kind == "int64":
            dtype = "Int64" if missing else "int64"
        elif kind == "bool":
            dtype = object if missing else "bool"
        elif kind == "string":
            dtype = TEXT_DTYPE
        elif kind == "category":
            dtype = "category"
        elif kind == "timestamp":
            dtype = "datetime64[ns, UTC]"
        elif kind in ("json", "object"):
            dtype = object
        else:
            continue
        frame[column] = pandas.Series(values, dtype=dtype, index=frame.index)
    return frame


def frame_rows(frame):
    """A function's frame as rows, with a missing value as the rows carry one: None for pandas' NA, NaT and
    the NaN of a column that is not float (text, category, objects); a float column keeps its NaN."""
    floats = {c for c, dtype in frame.dtypes.items() if dtype.kind == "f"}
    rows = frame.to_dict("records")
    for row in rows:
        for column, value in row.items():
            if value is pandas.NA or value is pandas.NaT:
                row[column] = None
            elif type(value) is float and value != value and column not in floats:
                row[column] = None
    return rows
''',
    "dedup": '''
class DropDuplicates(beam.DoFn):
    """streamlab's dedup rule (``Dedup``, copied from streamlab) over every row; repeats to ``duplicates``.

    The rule reads the largest event time seen and the order of first occurrences across all ids, so
    rows reach it under one key and it runs on one worker at a time. Its Beam state is a log: every
    row's (id, event time) since a snapshot of the rule, compacted into a new snapshot once the log
    outgrows the rule. The worker keeps the rule in memory while TOKEN (rewritten with each row) says
    the state is the one it wrote; after a retry or a move to another worker it replays the log.
    Each row costs one append and one small write, whatever the number of ids remembered.
    """

    LOG = userstate.BagStateSpec("log", PickleCoder())
    TOKEN = userstate.ReadModifyWriteStateSpec("token", PickleCoder())

    def __init__(self, step_id, id_column, time, ttl_ns, max_ids):
        self.step_id = step_id
        self.id_column = id_column
        self.time = time
        self.ttl_ns = ttl_ns
        self.max_ids = max_ids

    def setup(self):
        self.rule, self.token, self.logged = None, None, 0

    def replay(self, log):
        rule, logged = Dedup(self.ttl_ns, self.max_ids), 0
        for entry in log:
            if isinstance(entry, Dedup):
                rule = entry
            else:
                rule.is_duplicate(*entry)
            logged += 1
        return rule, logged

    def process(self, element, log=beam.DoFn.StateParam(LOG), token=beam.DoFn.StateParam(TOKEN)):
        from os import urandom

        _, row = element
        if self.rule is None or self.token is None or token.read() != self.token:
            self.rule, self.logged = self.replay(log.read())
        entry = dedup_entry(row, self.id_column, self.time)
        repeat = self.rule.is_duplicate(*entry)
        if self.logged >= 2 * len(self.rule.seen) + 1_000:
            log.clear()
            log.add(Dedup.from_json(self.rule.to_json(), self.ttl_ns, self.max_ids))  # a copy: runners may encode later
            self.logged = 1
        else:
            log.add(entry)
            self.logged += 1
        self.token = urandom(8)
        token.write(self.token)
        if repeat:
            yield pvalue.TaggedOutput("duplicates", row)
        else:
            yield row


def dedup_entry(row, id_column, time):
    """What the dedup rule reads of a row: its id (typed, as the rule tells ids apart) and event time in ns."""
    value = row.get(time) if time else None
    return typed_id(dedup_key(row.get(id_column))), None if value is None else to_ns(value)


def first_occurrences(id_column, time, ttl_ns, max_ids):
    """``DropDuplicates`` as the replay runs it, in arrival order: a row to [row], or [] for a repeat."""
    rule = Dedup(ttl_ns, max_ids)

    def run(row):
        return [] if rule.is_duplicate(*dedup_entry(row, id_column, time)) else [row]

    return run
''',
    "stamp": '''
class StampEventTime(beam.DoFn):
    """Re-stamp rows with the window's event-time column (plus ``shift_ns``); rows without one, and rows
    the window's aggregators cannot take (``unfit_reason``: ``keys``, ``checks``), to ``dead_letter``.

    Which rows are late is streamlab's rule, decided here against SEEN, this process's largest event
    time among the rows that reached the step (streamlab's watermark is SEEN minus the step's delay):
    ``closing`` is (size, slide, offset, gap, lateness, delay) in ns, size None for sessions. A row goes
    to ``late`` with each of its windows that is closed (watermark at or past end + lateness); it goes
    on, as ``(row, starts)``, with the starts of the windows it still counts in, which ``ListedWindows``
    assigns: Beam counts it in those windows only. At a session step the test is streamlab's session
    rule (``assign_one_by_one``). Beam's own watermark never decides it in the replay (it trails every
    step's watermark there); on Pub/Sub, a row Beam's estimated watermark finds late that this process
    did not becomes a late pane (``EmitPanes``).
    """

    # step id -> the largest event time (ns) this process saw at the step; shared by the DoFn's
    # instances, as runners may build one per bundle
    SEEN = {}
    # session steps: step id -> (open sessions, end of the latest closed session), by key; and the
    # number of keys with a closed session at which to forget the keys that decide nothing
    SESSIONS = {}
    PRUNE_AT = {}

    def __init__(self, step_id, time, shift_ns=0, keys=(), checks=(), closing=None):
        self.step_id = step_id
        self.time = time
        self.shift_ns = shift_ns
        self.keys = keys
        self.checks = checks
        self.closing = closing

    def event_time(self, row):
        """(event time in ns, None) of a row the step takes, or (None, the dead-letter reason)."""
        unfit = unfit_reason(row, self.keys, self.checks) if self.keys or self.checks else None
        if unfit is not None:
            return None, unfit
        try:
            return to_ns(row.get(self.time)), None
        except (TypeError, ValueError, OverflowError):
            return None, unreadable_time_reason(self.time)

    def seen(self, ts):
        """The largest event time at the step, ``ts`` included."""
        seen = max(self.SEEN.get(self.step_id, ts), ts)
        self.SEEN[self.step_id] = seen
        return seen

    def closed_windows(self, ts):
        """The row's windows as (start, end) in ns: those streamlab has closed, and the others."""
        size, slide, offset, _, lateness, delay = self.closing
        watermark = self.seen(ts) - delay
        spans = [(s, s + size) for s in window_starts(ts, size, slide, offset)]
        closed = [(s, e) for s, e in spans if e + lateness <= watermark]
        return closed, [(s, e) for s, e in spans if e + lateness > watermark]

    def late_session(self, row, ts):
        """Whether streamlab reports ``row`` late at a session step (``assign_one_by_one``, its rule): its own
        session already closed, or it would join a session already emitted. Such a row never reaches Beam's
        merging ``Sessions``, where a late row merging into a fired session holds the watermark for good
        (the DirectRunner then stops with "pipeline stall") and re-opens a session streamlab keeps closed."""
        _, _, _, gap, lateness, delay = self.closing
        seen = self.seen(ts)
        opened, ends = self.SESSIONS.setdefault(self.step_id, ({}, {}))
        key = group_key(row, self.keys)
        late = assign_one_by_one([0], [ts], [seen - delay], [key], gap, lateness, opened, ends, lambda: 0)[1]
        if len(ends) >= self.PRUNE_AT.get(self.step_id, 10_000):  # forget what decides nothing: a key
            # without open sessions whose last one ended over gap + lateness ago acts as an unseen key
            # (a row before that end is late by its own session's end anyway)
            for k in [k for k, e in ends.items() if not opened.get(k) and e + gap + lateness <= seen - delay]:
                del ends[k]
                opened.pop(k, None)
            self.PRUNE_AT[self.step_id] = max(10_000, 2 * len(ends))  # amortized: the size doubles first
        return bool(late)

    def late(self, row, start, end):
        """A row of the ``late`` output, stamped at the largest event time seen: not late for the sinks."""
        late = {**row, "window_start": from_ns(start), "window_end": from_ns(end)}
        stamp = Timestamp(micros=(self.SEEN[self.step_id] + self.shift_ns) // 1_000)
        return pvalue.TaggedOutput("late", beam_window.TimestampedValue(late, stamp))

    def process(self, row):
        ts, reason = self.event_time(row)
        if ts is None:
            yield pvalue.TaggedOutput("dead_letter", dead_letter_row(reason, self.step_id, row))
            return
        stamp = Timestamp(micros=(ts + self.shift_ns) // 1_000)
        if self.closing[0] is None:
            if self.late_session(row, ts):
                yield self.late(row, ts, ts + self.closing[3])
            else:
                yield beam_window.TimestampedValue(row, stamp)
            return
        closed, kept = self.closed_windows(ts)
        for start, end in closed:
            yield self.late(row, start, end)
        if kept:
            yield beam_window.TimestampedValue((row, tuple(s for s, _ in kept)), stamp)


class ListedWindows(beam_window.NonMergingWindowFn):
    """Tumbling or sliding windows as ``StampEventTime`` lists them on each element ``(row, starts)``: the
    windows ``[start, start + size_ns)``, moved forward by ``shift_ns``, that streamlab counts the row in.
    (Beam's ``SlidingWindows`` would put a row into every window holding its time, also into one that
    streamlab closed before the row came but Beam's watermark has not reached.)"""

    def __init__(self, size_ns, shift_ns):
        self.size_ns = size_ns
        self.shift_ns = shift_ns

    def assign(self, context):
        _, starts = context.element
        bounds = [(s + self.shift_ns) // 1_000 for s in starts]
        size = self.size_ns // 1_000
        return [beam_window.IntervalWindow(Timestamp(micros=b), Timestamp(micros=b + size)) for b in bounds]

    def get_window_coder(self):
        return IntervalWindowCoder()


def event_times(stamp):
    """``StampEventTime.event_time`` as the replay runs it: a row to [its event time], or [] when the
    step sends it to ``dead_letter``."""

    def run(row):
        ts, _ = stamp.event_time(row)
        return [] if ts is None else [ts]

    return run
''',
    "combine": '''
class WindowCombineFn(beam.CombineFn):
    """streamlab's aggregators of one window step as a Beam CombineFn over (row, event time ns)."""

    def __init__(self, aggregators):
        self.rows = RowCombine(aggregators)

    def create_accumulator(self):
        return self.rows.create_accumulator()

    def add_input(self, acc, element):
        row, ts_ns = element
        return self.rows.add_input(acc, row, ts_ns)

    def merge_accumulators(self, accs):
        return self.rows.merge_accumulators(accs)

    def extract_output(self, acc):
        return self.rows.extract_output(acc)


def key_values(keys, key):
    """The key columns of a result row from a ``group_key`` string."""
    return dict(zip(keys, json.loads(key)))
''',
    "window": '''
class EmitPanes(beam.DoFn):
    """Window panes to results: the on-time pane is the window's one final result; late panes hold rows
    that arrived after the window closed, which go to the ``late`` output, as in streamlab.

    Event times were shifted forward by ``shift_ns`` (the window's lateness plus its extra delay) so
    that Beam's on-time pane fires when the watermark reaches ``end + lateness``; bounds shift back here.
    """

    def __init__(self, step_id, keys, time, aggregators, shift_ns):
        self.step_id = step_id
        self.keys = keys
        self.time = time
        self.combine = WindowCombineFn(aggregators)
        self.shift_ns = shift_ns

    def process(self, element, window=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        key, rows = element
        start = from_ns(window.start.micros * 1_000 - self.shift_ns)
        end = from_ns(window.end.micros * 1_000 - self.shift_ns)
        if pane.timing == PaneInfoTiming.LATE:
            for row in rows:
                yield pvalue.TaggedOutput("late", {**row, "window_start": start, "window_end": end})
            return
        acc = self.combine.create_accumulator()
        for row in rows:
            acc = self.combine.add_input(acc, (row, to_ns(row[self.time])))
        result = self.combine.extract_output(acc)
        yield {**key_values(self.keys, key), "window_start": start, "window_end": end, **result}
''',
}

_ROW_DOFNS = {
    "rows": '''
class RunRowSteps(beam.DoFn):
    """A detector, feature, drift or pattern step: streamlab's per-record state machine
    (``make_step``, copied from streamlab) over the rows of one state key, in the order they arrive.

    The machine (models, per-key history, the pattern's buffer) is this key's Beam state, checkpointed
    with the job and moving with the key: a log of the rows since a snapshot of the machine (a pickle),
    compacted into a new snapshot every SNAPSHOT_EVERY rows; the machines are deterministic, so
    replaying the log rebuilds the state exactly. The worker keeps the machine in memory while TOKEN
    (rewritten with each row) says the state is the one it wrote; after a retry or a move to another
    worker it replays the log. Each row costs one append and one small write, whatever the model's size.
    What a machine holds back (a pattern's events behind no watermark yet) is released by an event-time
    timer just after the key's latest element: it fires at the end of a bounded input, as streamlab
    releases everything at the end of a bounded source, or once a streaming input's watermark passes
    that element (an idle stream), where streamlab would wait for later events.
    """

    LOG = userstate.BagStateSpec("log", PickleCoder())
    TOKEN = userstate.ReadModifyWriteStateSpec("token", PickleCoder())
    END = userstate.TimerSpec("end", TimeDomain.WATERMARK)
    SNAPSHOT_EVERY = 1_000
    # (step id, key) -> (token, machine, log length), shared by this process's instances of the DoFn:
    # runners may build a new instance per bundle, and the token tells whether the state moved on since
    HELD = {}

    def __init__(self, step_id, spec):
        self.step_id = step_id
        self.spec = spec

    def fresh(self):
        return make_step(self.spec, eval_expr, to_ns, from_ns)

    def machine(self, key, log, stamp):
        """The key's machine and log length: the one in memory, or rebuilt from the log; None for a new key.

        ``stamp`` is the key's TOKEN: (random bytes, its latest element timestamp in microseconds) or None.
        """
        held = self.HELD.get((self.step_id, key))
        if held is not None and stamp is not None and stamp[0] == held[0]:
            return held[1], held[2]
        machine, logged = None, 0
        for entry in log.read():
            if isinstance(entry, RowStep):
                machine = entry
                machine.bind(eval_expr, to_ns, from_ns)
            else:
                machine = machine or self.fresh()
                machine.process(entry)
            logged += 1
        return machine, logged

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        log=beam.DoFn.StateParam(LOG),
        token=beam.DoFn.StateParam(TOKEN),
        end=beam.DoFn.TimerParam(END),
    ):
        from os import urandom

        key, row = element
        stamp = token.read()
        machine, logged = self.machine(key, log, stamp)
        if machine is None:
            machine = self.fresh()
        latest = int(timestamp.micros) if stamp is None else max(int(timestamp.micros), stamp[1])
        if type(machine).finish is not RowStep.finish:
            # what the machine holds back (a pattern's events) is released once the watermark passes
            # the key's latest element: at the end of a bounded input, or after a streaming input idles.
            # The timer's time stamps the released rows and holds the watermark, so sinks downstream
            # (their event-time windows) still take them.
            end.set(Timestamp(micros=latest) + Duration(micros=1))
        outputs = machine.process(row)
        if logged >= self.SNAPSHOT_EVERY:
            log.clear()
            log.add(pickle.loads(pickle.dumps(machine)))  # a copy: runners may encode later
            logged = 1
        else:
            log.add(row)
            logged += 1
        stamp = (urandom(8), latest)
        token.write(stamp)
        self.HELD[self.step_id, key] = (stamp[0], machine, logged)
        yield from self.emit(outputs)

    def emit(self, outputs):
        """Each output to its tag; dead letters carry the step id."""
        for name, out in outputs:
            if name == "out":
                yield out
            else:
                yield pvalue.TaggedOutput(name, {**out, "step_id": self.step_id} if name == "dead_letter" else out)

    @userstate.on_timer(END)
    def flush(self, key=beam.DoFn.KeyParam, log=beam.DoFn.StateParam(LOG), token=beam.DoFn.StateParam(TOKEN)):
        machine, _ = self.machine(key, log, token.read())
        if machine is not None:
            yield from self.emit(machine.finish())
''',
    "rule": '''
class ApplyRule(beam.DoFn):
    """A hand-written rule (``ThresholdRule``): stateless, so rows need no key and no order."""

    def __init__(self, step_id, spec):
        self.step_id = step_id
        self.spec = spec
        self.rule = None

    def process(self, row):
        if self.rule is None:
            self.rule = make_step(self.spec, eval_expr, to_ns, from_ns)
        for name, out in self.rule.process(row):
            if name == "out":
                yield out
            else:  # a row whose condition cannot be evaluated
                yield pvalue.TaggedOutput(name, {**out, "step_id": self.step_id})
''',
}

_ROW_SEMANTICS = """
Detectors, features, rules, drift and patterns
----------------------------------------------
* Each runs streamlab's own per-record state machine (``make_step``: the code of
  ``streamlab._detector_record``, copied below): score-then-learn with river's models, the threshold's
  rule, the features' windows, the pattern's watermark. Its state is Beam state of a stateful DoFn
  (``RunRowSteps``): a log of rows since a pickled snapshot, checkpointed with the job.
* State keys: a step whose state splits by key (features, rules over a key, a detect step with ``key``
  and a fixed or per-key threshold) is keyed by that column, so keys spread over workers; the others (a
  pattern, a drift detector, an unkeyed detect step, a detect step whose quantile threshold learns from
  every key) run under one key. Split by key, a key's history is kept against that key's own newest
  event (streamlab: against the whole stream's), so results differ only for events later than
  ``allowed_lateness`` behind the stream; ``max_keys`` and ``key_ttl`` bound each key's state alone.
* Order: streamlab processes events in arrival order. Beam does not order a PCollection: each state key
  sees its rows in the order the runner delivers them. On the DirectRunner with one worker (``--input``,
  ``--input --replay``; what ``streamlab.export.verify`` runs) that is the file's order, verified equal to
  streamlab's results. On Dataflow, rows of one key published close together may be delivered out of
  publish order, and those rows are then scored in delivery order.
* Rules and conditions (``ThresholdRule``, pattern steps) are evaluated with pandas on one row, as the
  filters are. A pattern's buffered events are released by an event-time timer just after its latest
  event: at the end of a bounded input, as streamlab does at the end of a bounded source, and on a
  streaming input once the watermark passes that event (an idle stream), where streamlab would wait.
"""

_REPLAY = '''

def event_time_ns(raw):
    """Event time of a raw record as the parse step reads it, or None for records it rejects."""
    try:
        row = parse_record(raw, {const}_FIELDS, {const}_REQUIRED, {max_bytes})
    except BadRecordError:
        return None
    {ret}


def passed(dofn):
    """A DoFn of ``build`` as the replay runs it: one row to the rows of its main output (side outputs and
    element timestamps left out)."""

    def run(row):
        out = []
        for x in dofn.process(row):
            if not isinstance(x, pvalue.TaggedOutput):
                out.append(x.value if isinstance(x, beam_window.TimestampedValue) else x)
        return out

    return run


def replay_steps():
    """What decides which rows reach the window steps of REPLAY_WINDOWS, run by the replay record by record
    with ``build``'s own DoFns and rules: the source's reference, and (stream reference, input reference,
    one row to the rows the step passes on; for a window step, to the event times of the rows it takes)."""
    return {source!r}, [{plan}
    ]


def replay_times(raw, plan):
    """Window step -> event times (ns) of the rows of one raw record that reach it and that it takes (not
    its dead letters), by ``plan`` (``replay_steps()``)."""
    source, steps = plan
    rows, times = {{source: [raw]}}, {{}}
    for ref, src, run in steps:
        out = [x for row in rows.get(src, ()) for x in run(row)]
        if ref in REPLAY_WINDOWS:
            times[ref] = out
        else:
            rows[ref] = out
    return times


def replay_watermark(parsed_max, seen):
    """The replay's watermark (ns): the smallest largest event time it follows minus WATERMARK_DELAY_NS;
    None while one of them has none yet. It follows each window step of REPLAY_WINDOWS by the rows that
    reach it (``seen``: step -> largest event time), and every parsed record (``parsed_max``) when
    REPLAY_PARSED; so it never runs ahead of the watermark of a step it follows."""
    followed = [*seen.values(), parsed_max] if REPLAY_PARSED else list(seen.values())
    if not followed or any(t is None for t in followed):
        return None
    return min(followed) - WATERMARK_DELAY_NS


def closes_between(before_ms, after_ms):
    """Whether moving the replay watermark from ``before_ms`` to ``after_ms`` closes a window or ends
    a closed window's late horizon (None: not advanced yet). WINDOW_CLOSINGS lists, per window step,
    the period and phase (ns) of the watermarks at which its windows close; None for sessions, whose
    ends depend on the data, so any advance may close one."""
    if before_ms is None:
        return True
    if after_ms <= before_ms:
        return False
    low, high = before_ms * 1_000_000 - 1_000_000, after_ms * 1_000_000 + 1_000_000  # TestStream's ms
    for closing in WINDOW_CLOSINGS:
        if closing is None:
            return True
        period, phase = closing
        if (high - phase) // period > (low - phase) // period:
            return True
    return False


def replay_stream(lines):
    """A TestStream of raw records in arrival order, with a watermark that never runs ahead of streamlab's.

    Beam's DirectRunner advances a bounded source's watermark to +inf only at the end, so a file alone
    never makes anything late. This replays the records in order and advances the watermark as they
    come. streamlab tracks a watermark per window step, the largest event time among the rows that
    reach the step (not those a filter, a dedup or the step's own dead letters removed; after a map,
    at the time it gave) minus the step's delay. The replay runs each record through the steps before
    each window step (``replay_steps``) and holds the watermark at the smallest of those largest times
    minus WATERMARK_DELAY_NS (``replay_watermark``; rounded down to milliseconds, TestStream's
    resolution), so Beam's watermark trails every window step's and Beam finds no row late that
    streamlab keeps. The rows streamlab finds late are sent to ``late`` by ``StampEventTime``, by
    streamlab's rule. A window step whose rows it cannot follow (REPLAY_PARSED: after a detector,
    feature or pattern step, or after another window) is followed by every parsed record instead.
    The replay calls the steps' functions (filters, maps) once more per record, besides Beam.

    Each watermark advance costs the runner a round of work, so advances are batched: the watermark
    is brought up to date only before a record with an event time behind it (its parse time or the
    time of one of its rows at a window step) and only if the advance closes a window (or ends its
    late horizon) on the way. A record at or ahead of the watermark belongs to no window the watermark
    could have closed (a window ends after its records), and an advance that closes nothing changes no
    record's fate, so the results are those of advancing after every record.
    """
    from apache_beam.testing.test_stream import TestStream

    plan = replay_steps()
    stream = TestStream()
    parsed_max = None  # largest event time of the parsed records
    seen = dict.fromkeys(REPLAY_WINDOWS)  # window step -> largest event time of the rows that reached it
    watermark_ms = None  # what the stream has advanced to
    pending = []
    for raw in lines:
        ts_ns = event_time_ns(raw)
        times = replay_times(raw, plan)
        own = [t for step_times in times.values() for t in step_times]
        if ts_ns is not None:
            own.append(ts_ns)
        due = replay_watermark(parsed_max, seen)
        if own and due is not None:
            due_ms = due // 1_000_000
            if min(own) < (due_ms + 1) * 1_000_000 and closes_between(watermark_ms, due_ms):
                if pending:
                    stream = stream.add_elements(pending)
                    pending = []
                stream = stream.advance_watermark_to(Timestamp(micros=due_ms * 1_000))
                watermark_ms = due_ms
        stamp = ts_ns if ts_ns is not None else (parsed_max if parsed_max is not None else 0)
        pending.append(beam_window.TimestampedValue(raw, Timestamp(micros=stamp // 1_000)))
        if ts_ns is not None:
            parsed_max = ts_ns if parsed_max is None else max(parsed_max, ts_ns)
        for step, step_times in times.items():
            if step_times:
                seen[step] = max(step_times) if seen[step] is None else max(seen[step], *step_times)
    if pending:
        stream = stream.add_elements(pending)
    due = replay_watermark(parsed_max, seen)
    if due is not None and (watermark_ms is None or due // 1_000_000 > watermark_ms):
        stream = stream.advance_watermark_to(Timestamp(micros=due // 1_000_000 * 1_000))
    latest = max((t for t in [parsed_max, *seen.values()] if t is not None), default=None)
    if latest is not None:
        # past the last record, still finite: what row steps hold back is released by their timers now,
        # in windows that sinks can still close (at +inf they could not)
        stream = stream.advance_watermark_to(Timestamp(micros=(latest // 1_000_000 + 1) * 1_000))
    return stream.advance_watermark_to_infinity()
'''

_RUN = '''

def to_json_row(row, json_columns=(), streaming=False):
    """A row as JSON-ready values (timestamps as ISO-8601 UTC, raw bytes as text).

    Values of BigQuery JSON columns (``object`` and ``json`` fields) stay parsed for file loads; streaming
    inserts take them as JSON text.
    """
    out = json.loads(dump_json(row))
    if streaming:
        for c in json_columns:
            if out.get(c) is not None:
                out[c] = json.dumps(out[c])
    return out


def file_naming(name):
    """Streaming file names: window, pane and shard, so a window's late panes never overwrite its files."""

    def naming(window, pane, shard_index, total_shards, compression, destination):
        start = window.start.to_utc_datetime().strftime("%Y%m%dT%H%M%S")
        index = pane.index if pane is not None else 0
        return f"{{name}}-{{start}}-pane{{index}}-{{shard_index:05d}}-of-{{total_shards:05d}}.jsonl"

    return naming


def write_files(pcoll, name, output, streaming, window_s=FILE_WINDOW_S, shards=None):
    lines = pcoll | f"{{name}}: to json" >> beam.Map(lambda row: dump_json(row, compact=False))
    if not streaming:
        return lines | f"{{name}}: write" >> beam.io.WriteToText(f"{{output}}/{{name}}", file_name_suffix=".jsonl")
    from apache_beam.io import fileio

    return (
        lines
        # late rows and dead letters carry event times behind the watermark: keep their file windows open
        | f"{{name}}: file windows" >> beam.WindowInto(
            beam_window.FixedWindows(window_s), allowed_lateness=Duration(seconds=FILE_LATENESS_S)
        )
        | f"{{name}}: write" >> fileio.WriteToFiles(
            path=f"{{output}}/{{name}}", file_naming=file_naming(name), shards=shards
        )
    )


BIGQUERY_ROW_LIMIT = 8_000_000
"""Largest side-output row sent to BigQuery, as JSON text: streaming inserts refuse a row of 10 MB, and Beam
sets a row over its 9 MiB insert payload aside (out of every table). A larger row is cut to fit."""


def fit_side_row(row, output, limit):
    """A dead letter or late row as it fits ``limit`` bytes of JSON: the row itself, or its reason, step and
    ``raw`` text cut to fit, with ``raw_truncated``, ``raw_bytes`` and ``raw_sha256`` (an error is logged)."""
    text, cut = fit_message(row, limit, dump_json)
    if not cut:
        return row
    logging.getLogger(__name__).error(
        "%s row of step %s is over the %s-byte row limit: written truncated (raw_truncated, raw_bytes, "
        "raw_sha256)", output, row.get("step_id"), limit,
    )
    return json.loads(text)


def write_bigquery(pcoll, name, project, dataset, streaming, side=False):
    schema, partition_field, clustering = BIGQUERY_TABLES[name]
    json_columns = tuple(f["name"] for f in schema if f["type"] == "JSON")
    extra = {{"timePartitioning": {{"type": "DAY", "field": partition_field}}}}
    if clustering:
        extra["clustering"] = {{"fields": list(clustering)}}
    if side:
        pcoll = pcoll | f"{{name}}: fit" >> beam.Map(fit_side_row, name, BIGQUERY_ROW_LIMIT)
    return (
        pcoll
        | f"{{name}}: to json" >> beam.Map(to_json_row, json_columns, streaming)
        | f"{{name}}: write" >> beam.io.WriteToBigQuery(
            table=f"{{project}}:{{dataset}}.{{name}}" if project else f"{{dataset}}.{{name}}",
            schema={{"fields": schema}},
            additional_bq_parameters=extra,
            create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
            write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND,
            method="STREAMING_INSERTS" if streaming else "FILE_LOADS",
        )
    )


PUBSUB_MESSAGE_LIMIT = 9_900_000
"""Largest dead-letter message data: Beam and the Pub/Sub client refuse a serialized message or request
over 10,000,000 bytes; the rest is room for the message's framing. A larger dead letter is cut to fit."""


def pubsub_message(row, output):
    """A side output's row as a Pub/Sub message. A row over Pub/Sub's limit (a record of nearly 10 MB
    grows with its JSON escapes) would fail its bundle on every retry: it is sent cut to fit, with
    ``raw_truncated``, ``raw_bytes`` and ``raw_sha256`` saying what was cut, and an error is logged."""
    text, cut = fit_message(row, PUBSUB_MESSAGE_LIMIT, lambda r: dump_json(r, compact=False))
    if cut:
        logging.getLogger(__name__).error(
            "%s row of step %s is over Pub/Sub's %s-byte message limit: sent truncated (raw_truncated, "
            "raw_bytes, raw_sha256)", output, row.get("step_id"), PUBSUB_MESSAGE_LIMIT,
        )
    return text.encode("utf-8")


INPUT_FORMATS = ("lines", "base64")
"""How ``--input`` files hold records: ``lines``, one raw record per line; ``base64``, one record's bytes
in base64 per line, so a record holding a line break (or ending in a carriage return) stays one record
(``streamlab.export.verify`` writes a sample holding one so)."""


def read_lines(pattern, input_format="lines"):
    """Raw records of the files matching ``pattern``, as bytes, split as ``ReadFromText`` splits them
    (at each LF or CRLF; no record after a final newline), files in name order; a UTF-8 byte order mark
    that starts a file is not part of its first record (as in streamlab's replay); in ``base64`` format
    (``INPUT_FORMATS``) each line is decoded to the record it holds."""
    from apache_beam.io.filesystems import FileSystems

    lines = []
    for match in FileSystems.match([pattern]):
        for meta in sorted(match.metadata_list, key=lambda m: m.path):
            with FileSystems.open(meta.path) as f:
                data = f.read().removeprefix(b"\\xef\\xbb\\xbf")
            parts = data.split(b"\\n")
            if parts and parts[-1] == b"":
                parts.pop()
            lines += [x[:-1] if x.endswith(b"\\r") else x for x in parts]
    return [base64.b64decode(x) for x in lines] if input_format == "base64" else lines


class RecordSource(beam.io.textio._TextSource):
    """``ReadFromText``'s source, cutting a file as streamlab's replay does: a UTF-8 byte order mark that
    starts a file is not part of its first record, and a last record without its newline loses one
    carriage return at its end as the others do (``ReadFromText`` kept both). Only the record that starts
    at byte 0 can hold the mark, so the files are still read in parallel ranges."""

    def _read_record(self, file_to_read, read_buffer):
        start = file_to_read.tell() - len(read_buffer.data) + read_buffer.position
        record, to_next = super()._read_record(file_to_read, read_buffer)
        if start == 0:
            record = record.removeprefix(b"\\xef\\xbb\\xbf")  # a file of only the mark has no record
        if to_next < 0 and record.endswith(b"\\r"):
            record = record[:-1]
            if not record:  # an empty last record would be taken for the end of the file: one byte on
                return record, 1
        return record, to_next


class ReadRecords(beam.io.ReadFromText):
    """The raw records of files, as bytes (a line that is not UTF-8 is a dead letter of the parse step,
    not a crash), cut as streamlab's replay cuts them (``RecordSource``, ``read_lines``)."""

    _source_class = RecordSource

    def __init__(self, file_pattern):
        super().__init__(file_pattern, coder=BytesCoder())


def run(argv=None):
    """Read from Pub/Sub (``--subscription``) or a file (``--input``), write every output to the sink.

    ``--input FILES --replay`` replays the files' records in order as a stream, with a watermark that
    never runs ahead of streamlab's (``replay_stream``): what the live job does with those arrivals, late rows included,
    where a plain ``--input`` backfill sees every window complete. ``verify()`` runs the module so.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--subscription", help="projects/PROJECT/subscriptions/NAME (streaming)")
    source.add_argument("--input", help="file pattern of raw JSON lines (backfill, bounded)")
    parser.add_argument(
        "--replay",
        action="store_true",
        help="with --input: replay the records in order as a stream, late rows as in streamlab",
    )
    parser.add_argument(
        "--input_format",
        choices=INPUT_FORMATS,
        default="lines",
        help="with --input: one raw record per line, or (base64) one record's bytes in base64 per line",
    )
    parser.add_argument("--sink", choices=("files", "bigquery"), default={sink!r})
    parser.add_argument("--output", help="directory (or gs:// prefix) for --sink files")
    parser.add_argument(
        "--file_window_s", type=float, default=FILE_WINDOW_S, help="streaming --sink files: seconds per set of files"
    )
    parser.add_argument("--file_shards", type=int, default=None, help="streaming --sink files: files per window")
    parser.add_argument("--bigquery_project", default=None, help="project of the dataset (default: job's)")
    parser.add_argument("--dataset", help="BigQuery dataset for --sink bigquery")
    parser.add_argument("--dead_letter_topic", help="Pub/Sub topic for dead letters and late rows")
    parser.add_argument(
        "--timestamp_attribute",
        help="Pub/Sub attribute holding each message's event time, so the watermark follows event time",
    )
    known, beam_args = parser.parse_known_args(argv)
    if known.sink == "files" and not known.output:
        parser.error("--sink files needs --output DIR")
    if known.sink == "bigquery" and not known.dataset:
        parser.error("--sink bigquery needs --dataset NAME")
    if known.sink == "bigquery" and BIGQUERY_REFUSED:
        parser.error("--sink bigquery: " + "; ".join(BIGQUERY_REFUSED))
    if known.replay and not known.input:
        parser.error("--replay needs --input FILES")
    if known.input_format != "lines" and not known.input:
        parser.error("--input_format needs --input FILES")
    options = PipelineOptions(beam_args)
    streaming = known.subscription is not None or known.replay
    options.view_as(StandardOptions).streaming = streaming
    with beam.Pipeline(options=options) as pipeline:
        if known.replay:
            raw = pipeline | "source" >> replay_stream(read_lines(known.input, known.input_format))
        elif streaming:
            raw = pipeline | "source" >> beam.io.ReadFromPubSub(
                subscription=known.subscription, timestamp_attribute=known.timestamp_attribute
            )
        else:
            raw = pipeline | "source" >> ReadRecords(known.input)
            if known.input_format == "base64":
                raw = raw | "decode base64" >> beam.Map(base64.b64decode)
        streams = build(raw)
        for ref, name in OUTPUTS.items():
            pcoll = streams[ref]
            if known.dead_letter_topic and ref in SIDE_OUTPUTS:
                (
                    pcoll
                    | f"{{name}}: to message" >> beam.Map(pubsub_message, name)
                    | f"{{name}}: publish" >> beam.io.WriteToPubSub(known.dead_letter_topic)
                )
            elif known.sink == "bigquery":
                side = ref in SIDE_OUTPUTS
                write_bigquery(pcoll, name, known.bigquery_project, known.dataset, streaming, side)
            else:
                write_files(pcoll, name, known.output, streaming, known.file_window_s, known.file_shards)


if __name__ == "__main__":
    run()
'''


_OUTPUTS = {
    "parse": ("out", "dead_letter"),
    "filter": ("out", "dead_letter"),
    "map": ("out", "dead_letter"),
    "dedup": ("out", "duplicates"),
    "window": ("out", "late", "dead_letter"),
}


def _duration_s(ns: int) -> str:
    return repr(ns / 1e9)


def _session_fn(w: SessionWindow) -> str:
    return f"beam_window.Sessions({_duration_s(w.gap_ns)})"


def _check_microseconds(step: WindowStep, watermark_delay_ns: int) -> None:
    """Refuse a window whose geometry Beam cannot hold: Beam's windows and timestamps are microseconds,
    so a size, slide, offset, gap, lateness or delay with digits below the microsecond would give other
    windows than streamlab's."""
    parts = _plan.window_geometry(step)
    if (parts["delay"] - watermark_delay_ns) % 1_000 == 0:
        del parts["delay"]  # (the part of it beyond the pipeline's watermark delay is what Beam shifts by)
    why = "Beam's windows and element timestamps are microseconds, so its windows would not be streamlab's"
    _plan.refuse_finer_than(step, parts, "us", "Apache Beam", why)


class _Generator:
    def __init__(self, p: Pipeline, *, sink: str, late_horizon_ns: int) -> None:
        self.p = p
        self.sink = sink
        self.late_horizon_ns = late_horizon_ns
        self.snippets: set[str] = {"json_default", "dead_letter_row"}
        self.dofns: list[str] = []
        self.user_imports: list[str] = []
        self.user_code: list[str] = []
        self.consts: list[str] = []
        self.body: list[str] = []
        self.row_steps = False
        # step id -> (input reference, the step as a function of one row to the rows it passes on) for the
        # steps the replay can run record by record (None: the source); the window steps give event times
        self.replay: dict[str, tuple[str, str] | None] = {}
        windows = [s for s in p.steps.values() if isinstance(s, WindowStep)]
        self.delay_ns = min((w.delay_ns for w in windows), default=0)
        self.types = _detectors.output_types(p, _plan.column_types(p))
        self.parse: ParseStep = next(s for s in p.steps.values() if isinstance(s, ParseStep))

    def need(self, *dofns: str) -> None:
        for d in dofns:
            if d not in self.dofns:
                self.dofns.append(d)

    def var(self, ref: str) -> str:
        return _plan.step_ref_name(ref)

    def emit(self, line: str = "") -> None:
        self.body.append(("    " + line) if line else "")

    # -- steps ----------------------------------------------------------------------------------
    def step(self, step: Any) -> None:
        v = self.var(step.step_id)
        src = self.var(step.inputs[0]) if step.inputs else "raw"
        _registry.emitter_for("beam", step)(self, step, v, src)

    def _need_pandas(self) -> None:
        if "import pandas" not in self.user_imports:
            self.user_imports.append("import pandas")

    def frame_types(self, step: FilterStep | MapStep) -> str:
        """The constant naming the streamlab type of each column of ``step``'s input whose type is known
        (``declared_type``: not one a user function or an expression made), which ``typed_frame`` gives
        the frame it hands ``step``'s function; ``typed_frame`` and ``frame_rows`` are needed."""
        self._need_pandas()
        self.need("frames")
        ref = step.inputs[0]
        types = {}
        for column in self.types.get(ref, {}):
            found = declared_type(self.p, ref, column)
            if found is not None:
                types[column] = found[0]
        name = f"{_plan.ident(step.step_id).upper()}_TYPES"
        self.consts.append(f"{name} = {types!r}  # the input's columns of known type: dtypes of the frame")
        return name

    def user_code_modules(self) -> dict[str, Path | None]:
        """The user's own modules the user functions' imports need (top-level names, from
        :func:`user_modules`), with the file or package directory to copy (None: none to copy)."""
        return user_modules(self.user_imports)[1]

    def _fn(self, fn: Any, sid: str, kind: str) -> str:
        code = _plan.function_code(fn, sid, kind)
        for imp in code.imports:
            if imp not in self.user_imports:
                self.user_imports.append(imp)
        if code.source:
            self.user_code.append(
                f"# step {sid!r}: the user's function, copied from the notebook\n{code.source}"
            )
        return code.name

    def _window(self, step: WindowStep, v: str, src: str) -> None:
        sid = step.step_id
        _check_microseconds(step, self.delay_ns)
        self.snippets.update({"to_ns", "from_ns", "RowCombine", "group_key", "window_starts"})
        self.need("stamp", "combine", "window")
        aggs = []
        for a in step.aggs:
            cls, expr = _plan.aggregator_code(a, sid, step.time)
            self.snippets.add(cls)
            aggs.append(f"({a.name!r}, {expr})")
        c = _plan.ident(sid).upper()
        self.consts.append(f"{c}_AGGREGATES = [" + ", ".join(aggs) + "]")
        keys = tuple(step.keys)
        shift = step.lateness_ns + step.delay_ns - self.delay_ns
        self.consts.append(
            f"{c}_SHIFT_NS = {shift:_}  # lateness + this window's delay beyond WATERMARK_DELAY_NS"
        )
        self.consts.append(
            f"{c}_UNFIT_CHECKS = {_plan.unfit_checks(step)!r}  # (aggregator, column, numeric)"
        )
        w = step.window
        geometry: tuple[int | None, int | None, int, int]
        if isinstance(w, SlidingWindow):
            geometry = (w.size_ns, w.every_ns, w.offset_ns, 0)
        elif isinstance(w, TumblingWindow):
            geometry = (w.size_ns, w.size_ns, w.offset_ns, 0)
        else:
            assert isinstance(w, SessionWindow)
            geometry = (None, None, 0, w.gap_ns)
        closing = (*geometry, step.lateness_ns, step.delay_ns)
        self.consts.append(f"{c}_CLOSING = {closing!r}  # size, slide, offset, gap, lateness, delay (ns)")
        stamp = (
            f"StampEventTime({sid!r}, {step.time!r}, {c}_SHIFT_NS, {keys!r}, {c}_UNFIT_CHECKS, {c}_CLOSING)"
        )
        self.replay[sid] = (step.inputs[0], f"event_times({stamp})")
        self.emit(f"{v} = {src} | '{sid}: event time' >> beam.ParDo(")
        self.emit(f"    {stamp}")
        self.emit(').with_outputs("dead_letter", "late", main="out")')
        self.emit(f"{self.var(sid + '.dead_letter')} = {v}.dead_letter")
        self.emit(f"{c.lower()}_expired = {v}.late")
        horizon = self.late_horizon_ns
        if isinstance(w, SessionWindow):
            window_fn, arg, row = _session_fn(w), "row", "row"
        else:  # elements (row, starts): the windows streamlab counts the row in
            window_fn, arg, row = f"ListedWindows({geometry[0]:_}, {c}_SHIFT_NS)", "element", "element[0]"
        self.emit(f"{v} = (")
        self.emit(f"    {v}.out")
        self.emit(f"    | '{sid}: windows' >> beam.WindowInto(")
        self.emit(f"        {window_fn},")
        self.emit("        trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),")
        self.emit("        accumulation_mode=trigger.AccumulationMode.DISCARDING,")
        self.emit(f"        allowed_lateness=Duration(micros={horizon // 1_000:_}),")
        self.emit("    )")
        self.emit(
            f"    | '{sid}: key' >> beam.Map(lambda {arg}: (group_key({row}, {keys!r}), {row})).with_output_types(KeyedRow)"
        )
        self.emit(f"    | '{sid}: group' >> beam.GroupByKey()")
        self.emit(
            f"    | {sid!r} >> beam.ParDo(EmitPanes({sid!r}, {keys!r}, {step.time!r}, {c}_AGGREGATES, {c}_SHIFT_NS))"
            '.with_outputs("late", main="out")'
        )
        self.emit(")")
        self.emit(
            f"{self.var(sid + '.late')} = ({v}.late, {c.lower()}_expired) | '{sid}: late' >> beam.Flatten()"
        )
        self.emit(f"{v} = {v}.out")

    def replay_plan(self) -> tuple[str, str]:
        """The source's id and the entries of ``replay_steps()``: the steps before the window steps the
        replay follows (``replay_unfollowed``), in the pipeline's order."""
        unfollowed = replay_unfollowed(self.p)
        needed: set[str] = set()
        for sid, step in reversed(self.p.steps.items()):  # upstream of the followed windows
            if (isinstance(step, WindowStep) and sid not in unfollowed) or sid in needed:
                needed.add(sid)
                needed.update(step.inputs)
        source, lines = "", []
        for sid in self.p.steps:
            if sid not in needed:
                continue
            entry = self.replay[sid]
            if entry is None:
                source = sid
                continue
            src, run = entry
            lines.append(f"\n        ({sid!r}, {src!r}, {run}),")
        return source, "".join(lines)

    def closings(self) -> list[tuple[int, int] | None]:
        """Per window step, the watermarks at which its windows close (and their late horizon ends) as
        (period, phase) in ns, in the replay's watermark (largest event time - WATERMARK_DELAY_NS)."""
        out: list[tuple[int, int] | None] = []
        for step in self.p.steps.values():
            if not isinstance(step, WindowStep):
                continue
            w = step.window
            shift = step.lateness_ns + step.delay_ns - self.delay_ns
            if isinstance(w, TumblingWindow):
                period, end = w.size_ns, w.offset_ns + w.size_ns
            elif isinstance(w, SlidingWindow):
                period, end = w.every_ns, w.offset_ns + w.size_ns
            else:
                out.append(None)
                continue
            for extra in (0, self.late_horizon_ns):
                out.append((period, (end + shift + extra) % period))
        return out

    def tables(self) -> dict[str, Any]:
        """BigQuery table of each output: (schema, partition field, clustering fields)."""
        tables = {}
        for ref, name in _plan.sink_outputs(self.p).items():
            types = self.types.get(ref, {})
            schema = [
                {"name": c, "type": _BQ_TYPES.get(t, "STRING"), "mode": "NULLABLE"} for c, t in types.items()
            ]
            part = "window_start" if "window_start" in types else (self.parse.time or "")
            if ref.endswith(".dead_letter") or part not in types:
                part = ""
            clustering = tuple(c for c in ("event_type", "user_id") if c in types)
            if ref.split(".", 1)[-1] in ("dead_letter", "late"):  # what fit_side_row may write instead
                have = {f["name"] for f in schema}
                cut = {"raw": "STRING", "raw_truncated": "BOOL", "raw_bytes": "INT64", "raw_sha256": "STRING"}
                schema += [
                    {"name": c, "type": t, "mode": "NULLABLE"} for c, t in cut.items() if c not in have
                ]
            tables[name] = (schema, part or None, clustering)
        return tables

    def module(self, module_name: str) -> str:
        for step in self.p.steps.values():
            self.step(step)
        self.emit("streams = {}")
        for sid, step in self.p.steps.items():
            if isinstance(step, SinkStep):
                continue
            names = step.outputs if isinstance(step, OperatorStep) else _OUTPUTS.get(step.kind, ("out",))
            for out in names:
                ref = sid if out == "out" else f"{sid}.{out}"
                self.emit(f"streams[{ref!r}] = {self.var(ref)}")
        self.emit("return streams")
        body = self.body
        outputs = _plan.sink_outputs(self.p)
        side = sorted(r for r in outputs if "." in r and r.split(".", 1)[1] in ("dead_letter", "late"))
        tables = self.tables()
        steps = " -> ".join(self.p.steps)
        sink_args = "--sink bigquery --dataset DATASET" if self.sink == "bigquery" else "--output OUT_DIR"
        unfollowed = replay_unfollowed(self.p)
        unfollowed_text = "".join(
            textwrap.fill(
                f"Window step {sid!r}: {why}, so the replay cannot follow its rows record by record; its "
                "watermark follows every parsed record there, and Beam may close its windows at other "
                "times than streamlab (results may differ).",
                104,
                initial_indent="* ",
                subsequent_indent="  ",
            )
            + "\n"
            for sid, why in unfollowed.items()
        )
        shipped_modules = self.user_code_modules()
        shipped = textwrap.fill(
            "The user's own modules this module imports ("
            + ", ".join(sorted(shipped_modules))
            + ") are copied beside it (requirements.txt lists installed distributions only); Dataflow "
            "installs them on its workers when the command above adds::",
            104,
        )
        shipped += "\n\n    --setup_file ./setup.py"
        header = _HEADER.format(
            name=self.p.name,
            steps=steps,
            module=module_name,
            shipped=shipped + "\n\n" if shipped_modules else "",
            sink_args=sink_args,
            unfollowed=unfollowed_text,
            replay_input=replay_input_block(
                self.p,
                f"give that file to --input: python {module_name} --input "
                f"events.jsonl --replay {sink_args} --runner DirectRunner",
            ),
        )
        if self.row_steps:
            header = header.replace('\n"""\n\n# ruff: noqa', _ROW_SEMANTICS + '"""\n\n# ruff: noqa', 1)
            header = header.replace("import base64\n", "import base64\nimport bisect\n", 1)
            header = header.replace("import math\n", "import math\nimport pickle\n", 1)
            header = header.replace(
                "from datetime import", "from collections import OrderedDict, deque\nfrom datetime import", 1
            )
        parts = [header]
        if self.user_imports:
            parts.append("\n".join(sorted(self.user_imports)) + "\n")
        parts.append(f"PIPELINE_NAME = {self.p.name!r}")
        parts.append(
            "KeyedRow = beam.typehints.Tuple[str, beam.typehints.Any]  # text keys: a deterministic coder"
        )
        parts.append(f"WATERMARK_DELAY_NS = {self.delay_ns!r}  # the windows' allowed out-of-orderness")
        parts.append("# watermarks (ns) at which windows close or leave the late horizon: (period, phase)")
        parts.append(_plan.const("WINDOW_CLOSINGS", self.closings()))
        followed = tuple(
            s for s, x in self.p.steps.items() if isinstance(x, WindowStep) and s not in unfollowed
        )
        parts.append(
            f"REPLAY_WINDOWS = {followed!r}  # window steps the replay's watermark follows by the rows reaching them"
        )
        parts.append(
            f"REPLAY_PARSED = {bool(unfollowed) or not followed!r}  # whether it follows every parsed record too"
        )
        parts.append(
            f"LATE_HORIZON_S = {self.late_horizon_ns / 1e9!r}  # how long closed windows still report late rows"
        )
        parts.append("FILE_WINDOW_S = 60  # streaming file output: one set of files per minute")
        parts.append(
            "FILE_LATENESS_S = LATE_HORIZON_S + 3600  # rows stamped further behind the watermark are not written"
        )
        parts.append("# where run() writes each stream: reference -> table or directory name")
        parts.append(_plan.const("OUTPUTS", outputs))
        parts.append(_plan.const("SIDE_OUTPUTS", tuple(side)))
        parts.append(
            "# BigQuery tables: name -> (schema fields, day-partitioning column, clustering columns)"
        )
        parts.append(_plan.const("BIGQUERY_TABLES", tables))
        refused = [str(e) for e in bigquery_refusals(self.p, tables)]
        parts.append("# why --sink bigquery cannot write these outputs (columns BigQuery refuses)")
        parts.append(_plan.const("BIGQUERY_REFUSED", refused))
        parts.append("\n\n# -- helpers copied from streamlab: this module must not import it\n")
        parts.append(_plan.snippet_source(self.snippets))
        if self.row_steps:
            parts.append(
                "\n\n# -- streamlab._detector_record: per-record detectors, features, rules and patterns\n"
            )
            parts.append(_detectors.detector_record_source())
        elif any(isinstance(s, WindowStep) for s in self.p.steps.values()):
            parts.append(
                "\n\n# -- from streamlab._detector_record: the rows a window's aggregators cannot take\n"
            )
            parts.append(_plan.unfit_source())
        if "stamp" in self.dofns:  # StampEventTime applies it at session steps
            parts.append("\n\n# -- from streamlab._sessions: the session rule, which rows are late\n")
            parts.append(_plan.session_rule_source())
        parts.append("\n\n# -- step settings\n")
        parts += self.consts
        for code in self.user_code:
            parts.append("\n\n" + code)
        for d in self.dofns:
            parts.append("\n" + {**_DOFNS, **_ROW_DOFNS}[d])
        parts.append(
            "\n\ndef build(raw):\n"
            '    """Every stream of the pipeline by streamlab reference (``"window"``, ``"parse.dead_letter"``)."""\n'
            + "\n".join(body)
            + "\n"
        )
        t = self.parse.time
        ret = "return None" if t is None else f"return None if row.get({t!r}) is None else to_ns(row[{t!r}])"
        const = _plan.ident(self.parse.step_id).upper()
        source, plan = self.replay_plan()
        parts.append(
            _REPLAY.format(
                const=const, max_bytes=self.parse.max_record_bytes, ret=ret, source=source, plan=plan
            )
        )
        parts.append(_RUN.format(sink=self.sink))
        text = "\n".join(parts)
        return _tidy(_drop_unused_imports(_drop_unused_noqa(text)))


# -- what each step kind becomes in the module (see streamlab.export._registry)


@_registry.emits("beam", SourceStep)
def _beam_source(gen: _Generator, step: SourceStep, v: str, src: str) -> None:
    gen.replay[step.step_id] = None
    gen.emit(f"{v} = raw")


@_registry.emits("beam", ParseStep)
def _beam_parse(gen: _Generator, step: ParseStep, v: str, src: str) -> None:
    sid = step.step_id
    label = step.step_id
    gen.snippets.update({"parse_record", "to_ns"})
    gen.need("parse")
    fields = tuple((f.name, f.type, f.path) for f in step.fields)
    req = tuple(dict.fromkeys(((step.time,) if step.time else ()) + step.required))
    c = _plan.ident(sid).upper()
    gen.consts += [_plan.const(f"{c}_FIELDS", fields), _plan.const(f"{c}_REQUIRED", req)]
    dofn = f"ParseRecords({sid!r}, {c}_FIELDS, {c}_REQUIRED, {step.max_record_bytes!r}, {step.time!r})"
    gen.replay[sid] = (step.inputs[0], f"passed({dofn})")
    gen.emit(f"{v} = {src} | {label!r} >> beam.ParDo(")
    gen.emit(f"    {dofn}")
    gen.emit(').with_outputs("dead_letter", main="out")')
    gen.emit(f"{gen.var(sid + '.dead_letter')} = {v}.dead_letter")
    gen.emit(f"{v} = {v}.out")


@_registry.emits("beam", FilterStep)
def _beam_filter(gen: _Generator, step: FilterStep, v: str, src: str) -> None:
    sid = step.step_id
    label = step.step_id
    gen.need("filter")
    if step.expr is not None:
        gen.snippets.add("filter_keeps")
        c = _plan.ident(sid).upper()
        gen.consts.append(f"{c}_NUMERIC = {_plan.numeric_columns(gen.types.get(step.inputs[0], {}))!r}")
        gen.consts.append(f"{c}_TYPED = {_plan.typed_columns(gen.types.get(step.inputs[0], {}))!r}")
        pred = f"lambda row: filter_keeps({step.expr!r}, row, {c}_NUMERIC, {c}_TYPED)"
        what = f"filter {step.expr!r}"
    else:
        assert step.fn is not None
        fc = gen._fn(step.fn, sid, "filter")
        if step.per_event:
            pred, what = fc, f"filter_one({step.fn.name})"
        else:
            types = gen.frame_types(step)
            pred = f"lambda row: bool(list({fc}(typed_frame([row], {types})))[0])"
            what = f"filter_many({step.fn.name})"
    dofn = f"FilterRows({sid!r}, {what!r}, {pred})"
    gen.replay[sid] = (step.inputs[0], f"passed({dofn})")
    gen.emit(f"{v} = {src} | {label!r} >> beam.ParDo(")
    gen.emit(f"    {dofn}")
    gen.emit(').with_outputs("dead_letter", main="out")')
    gen.emit(f"{gen.var(sid + '.dead_letter')} = {v}.dead_letter")
    gen.emit(f"{v} = {v}.out")


@_registry.emits("beam", MapStep)
def _beam_map(gen: _Generator, step: MapStep, v: str, src: str) -> None:
    sid = step.step_id
    label = step.step_id
    gen.need("map")
    if step.columns:
        gen.snippets.add("assign_exprs")
        c = _plan.ident(sid).upper()
        gen.consts.append(f"{c}_COLUMNS = {step.columns!r}")
        gen.consts.append(f"{c}_NUMERIC = {_plan.numeric_columns(gen.types.get(step.inputs[0], {}))!r}")
        gen.consts.append(f"{c}_TYPED = {_plan.typed_columns(gen.types.get(step.inputs[0], {}))!r}")
        fn = f"lambda row: [assign_exprs(row, {c}_COLUMNS, {c}_NUMERIC, {c}_TYPED)]"
        what = "with_columns(" + ", ".join(f"{k}={e!r}" for k, e in step.columns) + ")"
    else:
        assert step.fn is not None
        fc = gen._fn(step.fn, sid, "map")
        if step.per_event:
            fn, what = f"lambda row: [{fc}(row)]", f"map_one({step.fn.name})"
        else:
            types = gen.frame_types(step)
            fn = f"lambda row: frame_rows({fc}(typed_frame([row], {types})))"
            what = f"map_many({step.fn.name})"
    dofn = f"MapRows({sid!r}, {what!r}, {fn})"
    gen.replay[sid] = (step.inputs[0], f"passed({dofn})")
    gen.emit(f"{v} = {src} | {label!r} >> beam.ParDo(")
    gen.emit(f"    {dofn}")
    gen.emit(').with_outputs("dead_letter", main="out")')
    gen.emit(f"{gen.var(sid + '.dead_letter')} = {v}.dead_letter")
    gen.emit(f"{v} = {v}.out")


@_registry.emits("beam", SelectStep)
def _beam_select(gen: _Generator, step: SelectStep, v: str, src: str) -> None:
    label = step.step_id
    select = f"{{new: row.get(old) for old, new in {list(step.columns)!r}}}"
    gen.replay[step.step_id] = (step.inputs[0], f"lambda row: [{select}]")
    gen.emit(f"{v} = {src} | {label!r} >> beam.Map(lambda row: {select})")


@_registry.emits("beam", KeyByStep)
def _beam_key_by(gen: _Generator, step: KeyByStep, v: str, src: str) -> None:
    gen.replay[step.step_id] = (step.inputs[0], "lambda row: [row]")
    gen.emit(f"{v} = {src}  # key_by {list(step.keys)}: windows below group by these columns")


@_registry.emits("beam", DedupStep)
def _beam_dedup(gen: _Generator, step: DedupStep, v: str, src: str) -> None:
    sid = step.step_id
    label = step.step_id
    gen.snippets.add("to_ns")
    gen.need("dedup")
    args = f"{step.id_column!r}, {step.time!r}, {step.ttl_ns!r}, {step.max_ids!r}"
    rule = f"DropDuplicates({sid!r}, {args})"
    gen.replay[sid] = (step.inputs[0], f"first_occurrences({args})")
    gen.emit(f"{v} = (")
    gen.emit(f"    {src}")
    gen.emit(f"    | '{sid}: one key' >> beam.Map(lambda row: ('', row)).with_output_types(KeyedRow)")
    gen.emit(f'    | {label!r} >> beam.ParDo({rule}).with_outputs("duplicates", main="out")')
    gen.emit(")")
    gen.emit(f"{gen.var(sid + '.duplicates')} = {v}.duplicates")
    gen.emit(f"{v} = {v}.out")


@_registry.emits("beam", WindowStep)
def _beam_window(gen: _Generator, step: WindowStep, v: str, src: str) -> None:
    gen._window(step, v, src)


@_registry.emits("beam", OperatorStep)
def _beam_row_step(gen: _Generator, step: OperatorStep, v: str, src: str) -> None:
    from streamlab.detectors import ThresholdRule

    sid = step.step_id
    spec = _detectors.row_step_spec(step.config, sid)
    gen.row_steps = True
    gen.snippets.update({"to_ns", "from_ns", "eval_expr", "group_key"})
    c = _plan.ident(sid).upper()
    gen.consts.append(_plan.const(f"{c}_SPEC", spec))
    if isinstance(step.config, ThresholdRule):
        gen.need("rule")
        gen.emit(
            f"{v} = {src} | {sid!r} >> beam.ParDo(ApplyRule({sid!r}, {c}_SPEC)).with_outputs('dead_letter', main='out')"
        )
        gen.emit(f"{gen.var(sid + '.dead_letter')} = {v}.dead_letter")
        gen.emit(f"{v} = {v}.out")
        return
    gen.need("rows")
    key = _detectors.state_key(step.config)
    keyed = "''" if key is None else f"group_key(row, {(key,)!r})"
    side = [o for o in step.outputs if o != "out"]
    gen.emit(f"{v} = (")
    gen.emit(f"    {src}")
    gen.emit(f"    | '{sid}: key' >> beam.Map(lambda row: ({keyed}, row)).with_output_types(KeyedRow)")
    outs = "".join(f"{o!r}, " for o in side)
    gen.emit(f"    | {sid!r} >> beam.ParDo(RunRowSteps({sid!r}, {c}_SPEC)).with_outputs({outs}main='out')")
    gen.emit(")")
    for o in side:
        gen.emit(f"{gen.var(sid + '.' + o)} = {v}.{o}")
    gen.emit(f"{v} = {v}.out")


@_registry.emits("beam", SinkStep)
def _beam_sink(gen: _Generator, step: SinkStep, v: str, src: str) -> None:
    pass  # the sink's input is written by run()


_REPLAYED = (SourceStep, ParseStep, FilterStep, MapStep, SelectStep, KeyByStep, DedupStep)
"""Steps the replay runs record by record (``replay_steps`` in the module) to follow a window's watermark."""


def replay_unfollowed(p: Pipeline) -> dict[str, str]:
    """Window steps whose rows the Beam module's replay cannot follow record by record, with why: their
    rows come through a step of another kind (a detector, feature or pattern step, another window) or a
    side output. Its watermark follows every parsed record for them, as streamlab's does not.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> counts = p.parse().filter("user_id != 'bot'").window(TumblingWindow("1m")).agg(agg.count())
    >>> _ = counts.window(TumblingWindow("1h"), time="window_start", step_id="hourly").agg(agg.count())
    >>> replay_unfollowed(p)
    {'hourly': "its rows come from window step 'window'"}
    """
    why: dict[str, str] = {}  # step id -> why its rows cannot be followed ("": they can)
    for sid, step in p.steps.items():  # in the pipeline's order: inputs first
        reasons = []
        for ref in step.inputs:
            base, _, side = ref.partition(".")
            if side:
                reasons.append(f"its rows come from the {side!r} output of step {base!r}")
            elif why.get(base):
                reasons.append(why[base])
            elif not isinstance(p.steps[base], _REPLAYED):
                up = p.steps[base]
                kind = type(up.config).__name__ if isinstance(up, OperatorStep) else up.kind
                reasons.append(f"its rows come from {kind} step {base!r}")
        why[sid] = reasons[0] if reasons else ""
    return {sid: w for sid, w in why.items() if w and isinstance(p.steps[sid], WindowStep)}


def _drop_unused_imports(text: str) -> str:
    """Remove names of the header's Beam imports that this pipeline does not use."""
    import re

    lines = text.split("\n")
    out = []
    for line in lines:
        m = re.match(r"^from (apache_beam[\w.]*) import (.+)$", line)
        if m:
            names = [n.strip() for n in m.group(2).split(",")]
            rest = "\n".join(x for x in lines if x != line)
            used = [n for n in names if re.search(rf"\b{re.escape(n.split(' as ')[-1])}\b", rest)]
            if not used:
                continue
            line = f"from {m.group(1)} import {', '.join(used)}"
        out.append(line)
    return "\n".join(out)


_NOQA_B008 = "# ruff: noqa: B008 - Beam declares state, timer and window parameters as argument defaults\n"


def _drop_unused_noqa(text: str) -> str:
    r"""The module without its file-wide ``noqa: B008`` when no parameter default calls ``beam.DoFn``'s
    ``StateParam``/``TimerParam`` (a module without a stateful step): ruff's RUF100 reports an unused
    ``noqa``, and the generated code is meant to pass the project's lint rules.

    Examples
    --------
    >>> _drop_unused_noqa(_NOQA_B008 + "x = 1\n")
    'x = 1\n'
    """
    if re.search(r"=\s*beam\.DoFn\.\w+Param\(", text):
        return text
    return text.replace(_NOQA_B008, "", 1)


def _tidy(text: str) -> str:
    """Normalise blank lines so the module reads (and lints) like hand-written code."""
    import re

    text = re.sub(r"\n{4,}", "\n\n\n", text)
    text = re.sub(r"\n\n\n+(\s+)", r"\n\n\1", text)
    return text.strip() + "\n"


def _terraform(p: Pipeline, tables: dict[str, Any], sink: str, source: str) -> str:
    name = _plan.ident(p.name).replace("_", "-")
    lines = [
        "# Pub/Sub, BigQuery and a Dataflow flex-template job for the exported pipeline.",
        "# No credentials here: Terraform uses the caller's Google credentials (gcloud auth application-default login).",
        "",
        'terraform {\n  required_providers {\n    google = {\n      source  = "hashicorp/google"\n      version = ">= 5.0"\n    }\n  }\n}',
        "",
        'variable "project" {\n  type        = string\n  description = "GCP project id"\n}',
        'variable "region" {\n  type    = string\n  default = "europe-west1"\n}',
        f'variable "name" {{\n  type    = string\n  default = "{name}"\n}}',
        'variable "template_gcs_path" {\n  type        = string\n  description = "gs:// path of the flex-template spec built from this directory"\n}',
        'variable "temp_location" {\n  type        = string\n  description = "gs:// prefix for Dataflow temp files"\n}',
        'variable "max_delivery_attempts" {\n  type    = number\n  default = 5\n}',
        'variable "dataset" {\n  type    = string\n  default = "streamlab"\n}',
        "",
        'provider "google" {\n  project = var.project\n  region  = var.region\n}',
        "",
        'data "google_project" "this" {}',
        "",
        'resource "google_pubsub_topic" "events" {\n  name = "${var.name}-events"\n}',
        "",
        'resource "google_pubsub_topic" "dead_letter" {\n  name = "${var.name}-dead-letter"\n}',
        "",
        'resource "google_pubsub_subscription" "events" {',
        '  name                 = "${var.name}-events"',
        "  topic                = google_pubsub_topic.events.id",
        "  ack_deadline_seconds = 60",
        "  dead_letter_policy {",
        "    dead_letter_topic     = google_pubsub_topic.dead_letter.id",
        "    max_delivery_attempts = var.max_delivery_attempts",
        "  }",
        "  retry_policy {",
        '    minimum_backoff = "10s"',
        '    maximum_backoff = "600s"',
        "  }",
        "}",
        "",
        "# Pub/Sub forwards undeliverable messages itself: its service agent must publish to the DLQ topic",
        "# and acknowledge on the subscription.",
        'resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {',
        "  topic  = google_pubsub_topic.dead_letter.id",
        '  role   = "roles/pubsub.publisher"',
        '  member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"',
        "}",
        "",
        'resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {',
        "  subscription = google_pubsub_subscription.events.id",
        '  role         = "roles/pubsub.subscriber"',
        '  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"',
        "}",
        "",
        'resource "google_bigquery_dataset" "this" {\n  dataset_id = var.dataset\n  location   = var.region\n}',
    ]
    for table, (schema, part, clustering) in tables.items():
        lines += [
            "",
            f'resource "google_bigquery_table" "{table}" {{',
            "  dataset_id          = google_bigquery_dataset.this.dataset_id",
            f'  table_id            = "{table}"',
            "  deletion_protection = true",
        ]
        if part:
            lines += ["  time_partitioning {", '    type  = "DAY"', f'    field = "{part}"', "  }"]
        if clustering:
            lines.append("  clustering = [" + ", ".join(f'"{c}"' for c in clustering) + "]")
        lines.append(f"  schema = jsonencode({json.dumps(schema)})")
        lines.append("}")
    first = (
        "    subscription      = google_pubsub_subscription.events.id"
        if source == "pubsub"
        else "    input             = var.input"
    )
    if source == "file":
        lines.insert(
            next(i for i, line in enumerate(lines) if line.startswith('variable "dataset"')) + 1,
            'variable "input" {\n  type        = string\n  description = "gs:// pattern of raw JSON lines to backfill"\n}',
        )
    params = [
        first,
        "    dead_letter_topic = google_pubsub_topic.dead_letter.id",
        f'    sink              = "{sink}"',
    ]
    if sink == "bigquery":
        params.append("    dataset           = google_bigquery_dataset.this.dataset_id")
    else:
        params.append('    output            = "${var.temp_location}/output"')
    lines += [
        "",
        'resource "google_dataflow_flex_template_job" "pipeline" {',
        "  provider                = google-beta",
        '  name                    = "${var.name}"',
        "  region                  = var.region",
        "  container_spec_gcs_path = var.template_gcs_path",
        '  on_delete               = "drain"',
        "  parameters = {",
        *params,
        "    temp_location     = var.temp_location",
        "  }",
        "}",
    ]
    text = "\n".join(lines) + "\n"
    # the flex-template job lives in the google-beta provider
    return text.replace(
        '    google = {\n      source  = "hashicorp/google"\n      version = ">= 5.0"\n    }',
        '    google = {\n      source  = "hashicorp/google"\n      version = ">= 5.0"\n    }\n'
        '    google-beta = {\n      source  = "hashicorp/google-beta"\n      version = ">= 5.0"\n    }',
    )


def _metadata(p: Pipeline, sink: str, source: str) -> dict[str, Any]:
    first: dict[str, Any] = (
        {
            "name": "subscription",
            "label": "Pub/Sub subscription",
            "helpText": "projects/PROJECT/subscriptions/NAME with the raw JSON events",
            "regexes": ["^projects/[^/]+/subscriptions/[^/]+$"],
        }
        if source == "pubsub"
        else {
            "name": "input",
            "label": "Input files",
            "helpText": "gs:// pattern of raw JSON lines (one record per line) to backfill",
            "regexes": ["^gs://.+$"],
        }
    )
    params = [
        first,
        {
            "name": "dead_letter_topic",
            "label": "Dead-letter topic",
            "helpText": "projects/PROJECT/topics/NAME receiving dead letters and late rows as JSON",
            "isOptional": True,
            "regexes": ["^projects/[^/]+/topics/[^/]+$"],
        },
        {"name": "sink", "label": "Sink", "helpText": "files or bigquery", "isOptional": True},
        {"name": "dataset", "label": "BigQuery dataset", "helpText": "for sink=bigquery", "isOptional": True},
        {
            "name": "output",
            "label": "Output prefix",
            "helpText": "gs:// prefix for sink=files",
            "isOptional": True,
        },
    ]
    return {
        "name": p.name,
        "description": f"streamlab pipeline {p.name!r} exported to Apache Beam (default sink: {sink})",
        "streaming": source == "pubsub",
        "parameters": params,
    }


_BQ_SPECIALS = frozenset("&%=+:'<>#| ")
"""Characters of a BigQuery column name (flexible column names) besides letters, marks, digits, connectors
such as ``_`` and dashes: not ``.``, ``!``, ``"``, ``$``, ``(``, ``)``, ``*``, ``,``, ``/``, ``;``,
``?``, ``@``, brackets, braces, backslash, ``^``, backtick or ``~``."""
_BQ_RESERVED = ("_TABLE_", "_FILE_", "_PARTITION", "_ROW_TIMESTAMP", "__ROOT__", "_COLIDENTIFIER")


def bigquery_column_problem(name: str) -> str | None:
    """Why BigQuery refuses ``name`` as a column name, or None.

    Examples
    --------
    >>> bigquery_column_problem("user_id") is None, bigquery_column_problem("prix en €") is None
    (True, False)
    >>> bigquery_column_problem("user.id")
    "it holds '.'"
    """
    if not name or len(name) > 300:
        return "a name is 1 to 300 characters"
    for c in name:
        if (
            c not in _BQ_SPECIALS
            and unicodedata.category(c)[0] not in "LMN"
            and unicodedata.category(c) not in ("Pc", "Pd")
        ):
            return f"it holds {c!r}"
    if name.upper().startswith(_BQ_RESERVED):
        return f"it starts with a prefix BigQuery reserves ({', '.join(_BQ_RESERVED)})"
    return None


def check_bigquery_columns(pipeline: Pipeline, tables: dict[str, Any]) -> None:
    """Refuse, naming the step, an output whose BigQuery table would have a column BigQuery refuses (its
    name, or two names equal but for case): the job would fail creating the table, or terraform would.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse({"user.id": "string", "timestamp": "timestamp"}).filter("timestamp == timestamp", step_id="kept")
    >>> import tempfile
    >>> to_beam(p, tempfile.mkdtemp(), sink="bigquery")
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: step 'kept' (filter): cannot write column 'user.id' to BigQuery table 'kept': it holds '.'. Fix: give the column a name BigQuery takes, e.g. in the parse schema {'user_id': {'type': ..., 'path': ['user.id']}} or with select(user_id='user.id'), or export with sink='files'
    """
    refused = bigquery_refusals(pipeline, tables)
    if refused:
        raise refused[0]


def bigquery_refusals(pipeline: Pipeline, tables: dict[str, Any]) -> list[PipelineConfigError]:
    """The columns of ``tables`` BigQuery refuses, one error naming its step each (see
    :func:`check_bigquery_columns`); a module exported for files refuses ``--sink bigquery`` with them."""
    out = []
    for ref, table in _plan.sink_outputs(pipeline).items():
        step = pipeline.steps[ref.split(".")[0]]
        seen: dict[str, str] = {}
        for column in tables.get(table, ((), None, ()))[0]:
            col = column["name"]
            why = bigquery_column_problem(col)
            if why is None and col.lower() in seen:
                why = f"BigQuery names are case-insensitive, and {seen[col.lower()]!r} is a column too"
            seen.setdefault(col.lower(), col)
            if why is not None:
                fixed = re.sub(r"\W", "_", col)
                out.append(
                    PipelineConfigError(
                        step.step_id,
                        label_of(step),
                        f"cannot write column {col!r} to BigQuery table {table!r}: {why}",
                        f"give the column a name BigQuery takes, e.g. in the parse schema {{{fixed!r}: {{'type': "
                        f"..., 'path': [{col!r}]}}}} or with select({fixed}={col!r}), or export with sink='files'",
                    )
                )
    return out


def user_modules(imports: list[str]) -> tuple[list[str], dict[str, Path | None]]:
    """What the user functions' imports (``import x`` / ``from x.y import f as g`` lines) need: the
    installed distributions that provide their top-level modules, pinned at their installed version
    (``importlib.metadata.packages_distributions``), and the user's own modules, which no distribution
    provides, with the file or package directory to copy beside the module (None when there is none:
    an extension module). The standard library and pandas (listed apart) need nothing. A module of the
    user's is never a requirement: ``pip install -r`` would fail on it, or, for a common name such as
    ``utils``, install someone else's package of that name."""
    import sys
    from importlib.metadata import packages_distributions, version
    from importlib.util import find_spec

    tops = sorted({imp.split()[1].split(".")[0] for imp in imports} - {"pandas"} - sys.stdlib_module_names)
    provided = packages_distributions() if tops else {}  # (it reads every installed distribution)
    distributions: dict[str, str] = {}
    local: dict[str, Path | None] = {}
    for top in tops:
        if top in provided:
            for dist in provided[top]:
                distributions.setdefault(dist.lower(), f"{dist}=={version(dist)}")
            continue
        spec = find_spec(top)
        if spec is not None and spec.submodule_search_locations:
            local[top] = Path(next(iter(spec.submodule_search_locations)))
        elif spec is not None and spec.origin and spec.origin.endswith(".py"):
            local[top] = Path(spec.origin)
        else:
            local[top] = None
    return [distributions[k] for k in sorted(distributions)], local


_SETUP = '''"""Ships the user's own modules that {module} imports ({names}), copied beside it, to Beam's workers:
run it with ``--setup_file ./setup.py`` (Dataflow installs this on each worker)."""

import setuptools

setuptools.setup(
    name={dist},
    version="0.0.0",
    py_modules={modules},
    packages=setuptools.find_packages(include={packages}),
)
'''


def _ship_user_modules(out: ExportedFiles, local: dict[str, Path | None], module: str) -> None:
    """Copy the user's own modules beside the generated ``module`` (:func:`copy_user_modules`) and write
    ``setup.py``, which ships them to Dataflow's workers (``--setup_file``), as Beam ships code of more
    than one file."""
    modules, packages = copy_user_modules(out, local, module)
    names = ", ".join(sorted(local))
    dist = f"{Path(module).stem.replace('_', '-')}-user-code"
    setup = _SETUP.format(
        module=module,
        names=names,
        dist=json.dumps(dist),
        modules=json.dumps(modules),
        packages=json.dumps(packages),
    )
    out.write("setup.py", setup)


def copy_user_modules(
    out: ExportedFiles, local: dict[str, Path | None], module: str
) -> tuple[list[str], list[str]]:
    """Copy the user's own modules (:func:`user_modules`) beside the generated ``module``, where it
    imports them from (the script's directory leads its Python path); returns the single-file modules
    and the packages (with their subpackages' patterns) copied. Only the modules the user functions come
    from are copied, not the user's modules those import."""
    import shutil

    modules, packages = [], []
    for top, source in sorted(local.items()):
        if source is None:
            continue
        target = out.directory / (source.name if source.is_file() else top)
        if target.name == module or target.name in out.files:
            raise PipelineConfigError(
                "pipeline",
                "export",
                f"the user's module {source} would be copied over the export's own {target.name}",
                "rename the module, or export with module_name=... naming another file",
            )
        if source.is_file():
            modules.append(top)
            if not target.exists() or not target.samefile(source):
                shutil.copyfile(source, target)
            out.files[target.name] = target
            continue
        packages += [top, f"{top}.*"]
        if not target.exists() or not target.samefile(source):
            shutil.copytree(
                source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True
            )
        for path in sorted(p for p in target.rglob("*") if p.is_file()):
            out.files[path.relative_to(out.directory).as_posix()] = path
    return modules, packages


def to_beam(
    pipeline: Pipeline,
    path: str | Path,
    *,
    runner_source: str = "pubsub",
    sink: str = "files",
    module_name: str | None = None,
    late_horizon: str | int = "1d",
) -> ExportedFiles:
    """Write a standalone Apache Beam module for ``pipeline`` and its deployment files into ``path``.

    Parameters
    ----------
    pipeline
        The pipeline (one source, a parse step, then filters, maps, dedup and windows).
    path
        Directory to write (created if missing).
    runner_source
        What the deployment reads: ``"pubsub"`` (a streaming job on a subscription) or ``"file"`` (a
        backfill job over a bounded file of raw JSON lines). The module accepts both ``--subscription``
        and ``--input``; this chooses the flex-template parameters and the Terraform job's input.
    sink
        Default sink of the module: ``"files"`` (JSON lines) or ``"bigquery"`` (day-partitioned,
        clustered tables; Terraform creates them).
    module_name
        File name of the module; defaults to ``<pipeline name>_beam.py``.
    late_horizon
        How long Beam keeps a closed window's state for late panes; a row later than that is sent to
        ``late`` by the generated code itself (see the module's docstring for the multi-worker limit).

    Returns
    -------
    ExportedFiles
        The module, ``requirements.txt``, ``metadata.json`` (flex template) and ``main.tf``.

    Examples
    --------
    >>> import tempfile
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']), name="demo")
    >>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    >>> out = to_beam(p, tempfile.mkdtemp())
    >>> sorted(out.files)
    ['demo_beam.py', 'main.tf', 'metadata.json', 'requirements.txt']
    >>> "class EmitPanes(beam.DoFn)" in out.read("demo_beam.py")
    True
    """
    _plan.check_pipeline(pipeline, "to_beam")
    if runner_source not in ("pubsub", "file"):
        raise PipelineConfigError(
            "pipeline", "export", f"runner_source={runner_source!r}", "use runner_source='pubsub' or 'file'"
        )
    if sink not in ("files", "bigquery"):
        raise PipelineConfigError("pipeline", "export", f"sink={sink!r}", "use sink='files' or 'bigquery'")
    _plan.check_steps(pipeline, "Apache Beam", operators=True)
    horizon_ns = parse_duration(late_horizon, what="to_beam(late_horizon=...)")
    gen = _Generator(pipeline, sink=sink, late_horizon_ns=horizon_ns)
    name = module_name or f"{_plan.ident(pipeline.name)}_beam.py"
    if sink == "bigquery":
        check_bigquery_columns(pipeline, gen.tables())
    code = gen.module(name)
    out = ExportedFiles.at(path, name, "beam")
    write = out.write
    write(name, code)
    reqs = [f"apache-beam[gcp]=={BEAM_VERSION}"]
    if "import pandas" in code or "eval_expr(" in code:
        reqs.append("pandas>=2.0")
    if "from river import" in code:
        from importlib.metadata import version

        reqs.append(f"river=={version('river')}")
    distributions, local = user_modules(gen.user_imports)
    reqs += distributions
    write("requirements.txt", "\n".join(reqs) + "\n")
    if local:
        _ship_user_modules(out, local, name)
    write("metadata.json", json.dumps(_metadata(pipeline, sink, runner_source), indent=2) + "\n")
    tables = gen.tables()
    write("main.tf", _terraform(pipeline, tables, sink, runner_source))
    return out
