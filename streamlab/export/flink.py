"""Export a pipeline to Apache Flink: a Flink SQL job and a PyFlink script, plus deployment files.

``to_flink`` writes:

* ``job.sql``: the job for Flink's SQL client. The source table declares ``WATERMARK FOR ... AS ... -
  INTERVAL ...``; windows are the table-valued functions ``TUMBLE``, ``HOP`` and ``SESSION``; dedup is
  ``ROW_NUMBER() OVER (PARTITION BY id ORDER BY proctime)``; interval joins are ``BETWEEN`` on event
  times. Records are read with SQL's ``JSON_VALUE`` (``JSON_QUERY`` for json and object fields, as their
  JSON text), so a bad record is a dead letter with a coarser
  reason than streamlab's; and its ``raw`` format decodes UTF-8 replacing invalid bytes with U+FFFD, so
  a record with invalid UTF-8 is read, where streamlab (and ``main.py``, ``datastream.py``, which read
  bytes) sends it to the parse step's dead letters.
* ``main.py``: the same queries run by a PyFlink ``StreamTableEnvironment``, fed by a DataStream that
  parses every record with streamlab's own parser (copied from ``streamlab._record``), so rows and
  dead-letter reasons are streamlab's; dead letters go to their own sink. ``python main.py --input
  FILES --output DIR`` runs it on Flink's local mini-cluster; ``flink run -py main.py`` on a cluster.
* ``run_sql.py``: runs ``job.sql`` through a PyFlink ``TableEnvironment`` (PyPI's apache-flink has
  no SQL gateway for ``sql-client.sh``).
* ``datastream.py`` (when the pipeline has late or duplicates outputs and its steps allow it): a PyFlink
  DataStream job sending late rows and duplicates to side outputs (``streamlab.export.flink_datastream``);
  the only job of a pipeline with steps SQL cannot say (below).
* ``README.md`` (submit commands, connector jars, semantic differences), ``requirements.txt`` and
  ``main.tf`` (AWS Managed Service for Apache Flink).

Pattern steps become ``MATCH_RECOGNIZE`` where that is exact (``streamlab.export.flink_pattern``).
A pipeline with steps SQL cannot say (detectors, features, rules, drift detectors, patterns without an
exact form, filters and ``with_columns`` expressions, order-dependent aggregators) is exported as
``datastream.py`` alone, with streamlab's per-record code in keyed state, when the DataStream job can
run every step; its README names the step SQL could not say. What neither job can run (Python
functions, enrichment, arbitrary river models, unseeded random detectors) is refused at export time
with the step named.

Examples
--------
>>> import tempfile
>>> from streamlab import Pipeline, TumblingWindow, agg
>>> from streamlab.testing import ListSource
>>> p = Pipeline(ListSource([b"{}"]), name="demo")
>>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
>>> out = to_flink(p, tempfile.mkdtemp())
>>> sorted(out.files)
['README.md', 'datastream.py', 'job.sql', 'main.py', 'main.tf', 'requirements.txt', 'run_sql.py']
>>> "TABLE(TUMBLE(TABLE `parse`, DESCRIPTOR(`timestamp`), INTERVAL '1' MINUTE))" in out.read("job.sql")
True
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamlab import _pyast
from streamlab._dead_letter import PARSE_DEAD_LETTER_COLUMNS
from streamlab._pythons import runs_as, uv_python
from streamlab._step_kinds import label_of
from streamlab._time import parse_duration
from streamlab.aggregators import (
    Aggregator,
    CountAggregator,
    CountDistinctAggregator,
    MaxAggregator,
    MeanAggregator,
    MinAggregator,
    SumAggregator,
)
from streamlab.errors import PipelineConfigError
from streamlab.export import _plan
from streamlab.export._input import replay_input_block
from streamlab.export.beam import ExportedFiles
from streamlab.pipeline import Pipeline
from streamlab.steps import (
    DedupStep,
    IntervalJoinStep,
    KeyByStep,
    OperatorStep,
    ParseStep,
    SelectStep,
    SinkStep,
    SourceStep,
    WindowStep,
)
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow

__all__ = ["FLINK_RIVER_VERSION", "FLINK_VERSION", "SINKS", "SOURCES", "to_flink"]

FLINK_VERSION = "2.3.0"
"""The PyFlink release the generated job is written for and verified with (``apache-flink`` on PyPI)."""
FLINK_RIVER_VERSION = "0.23.0"
"""The river release next to PyFlink: the newest one that installs with ``apache-flink`` 2.3.0 (which pins
apache-beam<=2.61, so numpy<2.2; river 0.24 and later need numpy>=2.3.4). ``verify(target="flink")``
proves its models score as streamlab's river does on the exported detectors."""
SOURCES = ("kafka", "kinesis", "eventhubs", "files")
"""What the generated job can read: Kafka, Kinesis, Event Hubs (its Kafka endpoint) or files."""
SINKS = ("files", "kafka", "jdbc")
"""Where it writes every output: JSON-lines files, Kafka topics or JDBC tables."""

_SQL_TYPES = {
    "string": "STRING",
    "category": "STRING",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP_LTZ(3)",
    "object": "STRING",
    "json": "STRING",
    "bytes": "STRING",
}
_KINESIS_NOTE_1 = "(main.py's FlinkKinesisConsumer, job.sql's 'kinesis' table)"
_KINESIS_NOTE_2 = "(the 'kinesis' table of job.sql and of main.py's reader)"
_JDBC_NOTE = "(+ your database's JDBC driver)"
# Flink 1: the Kafka, AWS (Kinesis) and JDBC connector releases built for each minor version, as
# flink.apache.org's downloads and AWS's "Use Apache Flink connectors with Managed Service for Apache
# Flink" list them: a connector is built against one minor version (its "-1.NN" suffix) and a build for
# another may not load. Up to 1.16 the connectors were released with Flink itself (its own version).
_FLINK_1_CONNECTORS = {
    20: ("3.3.0-1.20", "5.0.0-1.20", "3.3.0-1.20"),
    19: ("3.3.0-1.19", "5.0.0-1.19", "3.2.0-1.19"),
    18: ("3.2.0-1.18", "4.3.0-1.18", "3.2.0-1.18"),
    17: ("3.1.0-1.17", "4.2.0-1.17", "3.1.2-1.17"),
    16: ("1.16.3", "1.16.3", "1.16.3"),
    15: ("1.15.4", "1.15.4", "1.15.4"),
}
_FLINK_2_CONNECTORS = {
    "kafka": "org.apache.flink:flink-sql-connector-kafka:4.0.1-2.0",
    "eventhubs": "org.apache.flink:flink-sql-connector-kafka:4.0.1-2.0",
    "kinesis": f"org.apache.flink:flink-sql-connector-aws-kinesis-streams:6.0.0-2.0 {_KINESIS_NOTE_2}",
    "jdbc": f"org.apache.flink:flink-connector-jdbc-core:4.0.0-2.0 {_JDBC_NOTE}",
}


def _connector_builds(flink_version: str) -> dict[str, str]:
    """The connector jars (Maven coordinates, with a note) built for ``flink_version``'s major and minor."""
    major, minor = _major_minor(flink_version)
    if major >= 2:
        return _FLINK_2_CONNECTORS
    kafka, aws, jdbc = _FLINK_1_CONNECTORS[
        min(max(minor, min(_FLINK_1_CONNECTORS)), max(_FLINK_1_CONNECTORS))
    ]
    return {
        "kafka": f"org.apache.flink:flink-sql-connector-kafka:{kafka}",
        "eventhubs": f"org.apache.flink:flink-sql-connector-kafka:{kafka}",
        "kinesis": f"org.apache.flink:flink-sql-connector-kinesis:{aws} {_KINESIS_NOTE_1}",
        "jdbc": f"org.apache.flink:flink-connector-jdbc:{jdbc} {_JDBC_NOTE}",
    }


def connector_jars(flink_version: str, connectors: tuple[str, ...]) -> list[str]:
    """The connector jars a job for ``flink_version`` needs for ``connectors`` (source and sink names),
    built for the job's Flink version (its major, and on Flink 1 its minor version).

    Examples
    --------
    >>> connector_jars("2.3.0", ("kinesis", "files"))
    ["org.apache.flink:flink-sql-connector-aws-kinesis-streams:6.0.0-2.0 (the 'kinesis' table of job.sql and of main.py's reader)"]
    >>> connector_jars("1.20", ("kafka",)), connector_jars("1.18.1", ("kafka",))
    (['org.apache.flink:flink-sql-connector-kafka:3.3.0-1.20'], ['org.apache.flink:flink-sql-connector-kafka:3.2.0-1.18'])
    """
    jars = _connector_builds(flink_version)
    return sorted({jars[x] for x in connectors if x in jars})


_PROC = "__proc"
_TRANSLATED = (
    SourceStep,
    ParseStep,
    DedupStep,
    KeyByStep,
    SinkStep,
    WindowStep,
    IntervalJoinStep,
    SelectStep,
)
_REFUSED = {
    "filter": (
        "filters and maps run Python code (or pandas expressions) on each row, which the SQL job "
        "cannot carry (the DataStream job carries expressions)",
        "apply it before the events reach Flink, or export to Beam (to_beam), which copies the "
        "function into the job",
    ),
    "operator": (
        "detectors, features, rules and drift detectors keep per-key models and history in streamlab "
        "code, which Flink SQL has no equal for",
        "the export writes the DataStream job (datastream.py) alone, which runs them in keyed state",
    ),
    "enrich": (
        "enrich joins with a table held in memory, which the exported job cannot ship",
        "load the table into Flink as a lookup (JDBC) table and join it in SQL by hand",
    ),
    "union": ("union of several streams is not translated", "export one stream per job"),
}

SEMANTICS = """\
What differs from streamlab's per-event semantics
-------------------------------------------------
* Watermark: streamlab's is the largest event time seen minus the window's delay, updated after every
  record. Flink computes the same expression (``WATERMARK FOR ts AS ts - INTERVAL ...``: delay plus
  allowed lateness plus 1 ms, because Flink fires a window once the watermark reaches its end minus
  1 ms, where streamlab waits for the end) but emits it periodically
  (``pipeline.auto-watermark-interval``, 200 ms). ``job.sql``'s Kafka and Kinesis tables keep one
  watermark per partition or shard and the smallest drives the job (streamlab's ``watermark_by``
  rule); ``main.py`` assigns it after the parse, one per parallel instance, the smallest driving the
  windows (with parallelism 1: streamlab's single stream-wide watermark).
* Late rows: Flink SQL drops rows behind the watermark silently; there is no ``late`` output. Windows
  close when the watermark passes ``end + lateness`` (the lateness is folded into the watermark delay),
  so results of inputs without late rows are streamlab's; with late rows, which rows Flink still
  counts depends on when it emitted its last watermark.
* A bounded input (``--input`` files) ends with a final watermark that closes every window.
* Event times are milliseconds (``TIMESTAMP_LTZ(3)``); streamlab keeps nanoseconds.
* Outputs (files, Kafka) are JSON lines, as streamlab's JSON sinks write rows: json and object fields
  nested, NaN and infinities null, missing values null, times ISO-8601 in UTC to the millisecond
  (``2024-01-01T00:00:05.123Z``). In ``job.sql``, a json field's text is Flink's (``JSON_QUERY``): a
  number no double holds (``1e400``) keeps its text where streamlab writes null.
* Dedup keeps the first arrival of each id (``ROW_NUMBER`` over processing time) for as long as Flink
  keeps its state (``table.exec.state.ttl``, set from the step's ttl); streamlab forgets an id by event
  time and also bounds the ids held (``max_ids``). Repeats are dropped: no ``duplicates`` output.
* The job's one watermark is the source table's (Flink SQL declares watermarks on tables, not on the
  deduplicated view), so a window, join or pattern after a dedup runs on a watermark that counts the
  repeats it dropped; streamlab's counts only the rows the dedup kept. A repeat later than every row
  kept before it moves Flink's ahead, and a kept row behind it can be dropped as late where streamlab
  counts it on time. ``datastream.py`` runs streamlab's per-step watermark.
* Interval joins drop rows behind the join's watermark (streamlab reports them on ``late``).
* Patterns (``MATCH_RECOGNIZE``) drop rows behind the watermark (streamlab reports them on ``late``);
  the matches of inputs without late rows are streamlab's (see ``streamlab.export.flink_pattern``).
* Parse (``main.py``, ``datastream.py``): streamlab's parser, copied, so dead-letter rows and reasons
  are streamlab's; records are read as bytes, and files are cut into records as streamlab's replay cuts
  them (at each LF, one CR before it dropped, a bare CR part of its record, a UTF-8 byte order mark
  that starts a file skipped). ``job.sql`` (SQL client) reads fields with ``JSON_VALUE`` and its dead
  letters carry a coarse reason; a value of another JSON type than its field's (``true`` or ``"3"`` in
  a number field), a number no double holds, an int64 that is no integer in range and a text field
  holding a lone surrogate (``"\\\\ud800"``) are dead letters there too. Times are read by streamlab's
  rule at the millisecond: texts, and epoch numbers (seconds, or milliseconds above 1e11 in magnitude;
  a fraction as the double streamlab reads). Where Flink SQL cannot follow streamlab, ``job.sql``
  differs (``main.py`` and ``datastream.py`` do not): a record nested deeper than 512 levels is read
  (streamlab's dead letter "JSON nested deeper than 512 levels"; Flink's JSON functions stop at 1,000
  levels, so deeper records are dead letters in both); a UTF-8 byte order mark that starts a file stays
  on its first record, a dead letter (the filesystem connector's reader cannot tell a file's first
  record; it cuts at LF as streamlab does otherwise); a number no double holds inside a json or object
  field (``{"x": 1E+400}``) keeps its text (``1E+400``) where streamlab reads infinity and writes null.
"""


@dataclass
class _Col:
    name: str
    kind: str


def _q(name: str) -> str:
    """A quoted Flink SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def _touch_ns(w: SessionWindow) -> int:
    """How much shorter the job's session gap is (ns): Flink merges session windows that touch (an event
    exactly ``gap`` after the last), where streamlab's session is ``[first, last + gap)``; one millisecond,
    Flink SQL's resolution, unless the gap is not longer than that."""
    return 1_000_000 if w.gap_ns >= 2_000_000 else 0


def _interval(ns: int) -> str:
    """A Flink SQL interval literal of a (millisecond-precision) duration.

    Examples
    --------
    >>> _interval(5_000_000_000), _interval(-120_000_000_000), _interval(90_500_000_000)
    ("INTERVAL '5' SECOND", "INTERVAL '-2' MINUTE", "INTERVAL '0 00:01:30.500' DAY TO SECOND(3)")
    >>> _interval(365 * 86_400 * 10**9), _interval(2000 * 86_400 * 10**9 + 10**6)
    ("INTERVAL '365' DAY(3)", "(INTERVAL '2 00:00:00.001' DAY TO SECOND(3) + INTERVAL '999' DAY(3) * 2)")
    """
    if ns % 1_000_000:
        raise ValueError("Flink intervals have millisecond precision")
    ms = ns // 1_000_000
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    for unit, size in (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000), ("SECOND", 1000)):
        if ms % size == 0 and ms // size < 100:  # the default leading precision is two digits
            return f"INTERVAL '{sign}{ms // size}' {unit}"
    days, rest = divmod(ms, 86_400_000)
    if days >= _MAX_INTERVAL_DAYS:
        # Flink's day-time intervals hold at most 999 days (DAY(3)); a longer one (a delay of years) is a
        # product, which a watermark, a join's bounds and WITHIN take (a window's size must be a literal:
        # _Generator.check refuses such windows)
        whole, days = divmod(days, _MAX_INTERVAL_DAYS)
        return f"({_interval(int(sign + '1') * (days * 86_400_000 + rest) * 1_000_000)} + INTERVAL '{sign}{_MAX_INTERVAL_DAYS}' DAY(3) * {whole})"
    h, rest = divmod(rest, 3_600_000)
    m, rest = divmod(rest, 60_000)
    sec, milli = divmod(rest, 1000)
    if not (h or m or sec or milli):
        return f"INTERVAL '{sign}{days}' DAY(3)"
    # DAY TO SECOND's default leading precision is two digits: 100 days and more need DAY(3), without
    # which the job failed at validation ('Interval field value 365 exceeds precision of DAY(2) field')
    lead = "DAY(3)" if days >= 100 else "DAY"
    return f"INTERVAL '{sign}{days} {h:02d}:{m:02d}:{sec:02d}.{milli:03d}' {lead} TO SECOND(3)"


_MAX_INTERVAL_DAYS = 999
"""The longest Flink day-time interval literal, in days: Flink takes day precision 3 at most."""


def _agg_sql(a: Aggregator, step: WindowStep, kinds: dict[str, str] | None = None) -> str:
    col = _q(a.column) if a.column else None
    kind = (kinds or {}).get(a.column or "")
    if kind in ("json", "object") and isinstance(a, (CountDistinctAggregator, MinAggregator, MaxAggregator)):
        # the SQL column holds the field's JSON text: COUNT(DISTINCT) would count 1, 1.0 and true as three
        # values where streamlab (and pandas' nunique) count one, MIN/MAX would order '10' before '9'
        raise _plan.unsupported(
            step,
            "Flink SQL",
            f"aggregator {a.describe()} over the {kind} field {a.column!r} would compare its JSON text, "
            "where streamlab compares the values (1, 1.0 and true are one distinct value; 9 < 10)",
            f"declare {a.column!r} as int64, float64, string or bool in the parse schema, or export to Beam "
            "(to_beam); the Flink DataStream job runs streamlab's own aggregators",
        )
    if kind in ("json", "object") and isinstance(a, (SumAggregator, MeanAggregator)):
        # CAST of the JSON text to DOUBLE throws on any value that is no number's text ('"2"', 'true',
        # '{"a": 1}'): the job fails, and fails again on every restart. streamlab reads "2" as 2 and sets
        # the others aside on the window's dead letters (unfit_reason), as the DataStream job does
        raise _plan.unsupported(
            step,
            "Flink SQL",
            f"aggregator {a.describe()} over the {kind} field {a.column!r} would CAST its JSON text to "
            "DOUBLE, which fails the job on a value that is no number's text (a string, true, an object), "
            "where streamlab reads the text '2' as 2 and sets the rest aside on the window's dead letters",
            f"declare {a.column!r} as int64 or float64 in the parse schema, or export to Beam (to_beam); "
            "the Flink DataStream job runs streamlab's own aggregators",
        )
    if isinstance(a, CountAggregator):
        expr = f"COUNT({col})" if col else "COUNT(*)"
    elif isinstance(a, CountDistinctAggregator):
        # -0.0 and 0.0 are one value in streamlab (Python's ==), two to Flink's DISTINCT (a DOUBLE's bits)
        expr = f"COUNT(DISTINCT {_zero(col) if col and kind == 'float64' else col})"
    elif isinstance(a, SumAggregator):
        expr = f"COALESCE(SUM(CAST({col} AS DOUBLE)), 0.0)"  # streamlab: a sum of no values is 0.0
    elif isinstance(a, MeanAggregator):
        expr = f"AVG(CAST({col} AS DOUBLE))"
    elif isinstance(a, (MinAggregator, MaxAggregator)):
        # streamlab's min and max are doubles (result_type float64), as sum and mean are: MIN of a BIGINT
        # kept every digit (2**53 + 1, where streamlab has 2**53) and wrote -5 for -5.0, and MIN of a
        # BOOLEAN failed the job's validation (its float64 output column applied ABS to a BOOLEAN)
        expr = f"{'MIN' if isinstance(a, MinAggregator) else 'MAX'}(CAST({col} AS DOUBLE))"
    else:
        raise _plan.unsupported(
            step,
            "Flink SQL",
            f"aggregator {a.describe()} has no Flink SQL equal (first/last follow streamlab's arrival "
            "order, quantiles its sketch)",
            "use count, sum, mean, min, max or count_distinct in the exported pipeline, or export to "
            "Beam (to_beam), which runs streamlab's aggregators",
        )
    return f"{expr} AS {_q(a.name)}"


def _zero(col: str) -> str:
    """The SQL expression of a DOUBLE column with -0.0 as 0.0: Flink groups and counts distinct DOUBLEs by
    their bits, streamlab by value (one key, one distinct value).

    Examples
    --------
    >>> _zero("`x`")
    'CASE WHEN `x` = 0 THEN 0.0 ELSE `x` END'
    """
    return f"CASE WHEN {col} = 0 THEN 0.0 ELSE {col} END"


class _Generator:
    def __init__(self, p: Pipeline, flink_version: tuple[int, int] = (2, 3)) -> None:
        self.p = p
        self.legacy_sessions = flink_version < (1, 19)
        self.flink_version = ".".join(map(str, flink_version))
        self.views: list[tuple[str, str]] = []  # (view name, SELECT)
        self.columns: dict[str, list[_Col]] = {}
        parses = [s for s in p.steps.values() if isinstance(s, ParseStep)]
        if not parses:
            raise PipelineConfigError(
                "pipeline",
                "pipeline",
                "cannot export to Flink SQL: the pipeline has no parse step",
                "exported jobs read raw records; add .parse(schema) after the source",
            )
        self.parse = parses[0]
        windows = [s for s in p.steps.values() if isinstance(s, WindowStep)]
        self.delay_ns = max((w.delay_ns + w.lateness_ns for w in windows), default=0)
        joins = [s for s in p.steps.values() if isinstance(s, IntervalJoinStep)]
        self.delay_ns = max([self.delay_ns, *(j.delay_ns for j in joins)])
        self.patterns = {sid: s.config for sid, s in p.steps.items() if _plan.is_pattern_step(s)}
        self.delay_ns = max([self.delay_ns, *(parse_duration(c.delay) for c in self.patterns.values())])
        dedups = [s for s in p.steps.values() if isinstance(s, DedupStep)]
        ttls = [d.ttl_ns for d in dedups if d.ttl_ns is not None]
        self.state_ttl_ms = max(ttls) // 1_000_000 if ttls and len(ttls) == len(dedups) else None

    def check(self) -> None:
        sources = [s for s in self.p.steps.values() if isinstance(s, SourceStep)]
        if len(sources) != 1:
            raise PipelineConfigError(
                "pipeline",
                "pipeline",
                f"cannot export to Flink SQL: the pipeline has {len(sources)} sources",
                "export pipelines with exactly one source",
            )
        for step in self.p.steps.values():
            if _plan.is_pattern_step(step):
                from streamlab.export.flink_pattern import pattern_refusal

                refusal = pattern_refusal(step.config)
                if refusal is not None:
                    raise _plan.unsupported(
                        step,
                        "Flink SQL",
                        f"the pattern has no exact MATCH_RECOGNIZE form: {refusal}",
                        "run the pattern in streamlab (streamlab run SPEC), or write its conditions as "
                        "column == 'value' on one column, a different value per step, without differs_from",
                    )
                continue
            if not isinstance(step, _TRANSLATED):
                why, fix = _REFUSED.get(step.kind, _REFUSED["filter"])
                raise _plan.unsupported(step, "Flink SQL", why, fix)
            if isinstance(step, ParseStep) and step is not self.parse:
                raise _plan.unsupported(
                    step, "Flink SQL", "the job has one parse step", "parse once, right after the source"
                )
            if isinstance(step, WindowStep):
                if step.early:
                    raise _plan.unsupported(
                        step,
                        "Flink SQL",
                        "early results are not exported",
                        "drop early=True before exporting",
                    )
                kinds = _plan.column_types(self.p).get(step.inputs[0], {})
                for a in step.aggs:
                    _agg_sql(a, step, kinds)
                for key in step.keys:
                    if kinds.get(key) in ("json", "object"):
                        # the SQL column holds the field's JSON text: the job would group objects and arrays
                        # (streamlab's dead letters) and write every key as text ('"s"', 'true', '1')
                        raise _plan.unsupported(
                            step,
                            "Flink SQL",
                            f"its key {key!r} is a {kinds[key]} field, which SQL holds as JSON text: it would "
                            "group objects and arrays by their text, where streamlab sets such rows aside on "
                            "the window's dead letters, and write each key as text (1 as '1', \"s\" as "
                            "'\"s\"')",
                            f"declare {key!r} as string, int64, float64 or bool in the parse schema, or export "
                            "to Beam (to_beam); the Flink DataStream job keys windows as streamlab does",
                        )
                w = step.window
                sizes = [getattr(w, n, 0) for n in ("size_ns", "every_ns", "gap_ns", "offset_ns")]
                if any(s >= _MAX_INTERVAL_DAYS * 86_400 * 10**9 for s in sizes):
                    raise _plan.unsupported(
                        step,
                        "Flink SQL",
                        f"window sizes, slides, gaps and offsets of {_MAX_INTERVAL_DAYS} days or more have no "
                        "Flink interval literal (Flink's day-time intervals hold at most 999 days)",
                        f"use a window shorter than {_MAX_INTERVAL_DAYS} days, or export to Beam (to_beam)",
                    )
                if any(s % 1_000_000 for s in [*sizes, step.delay_ns, step.lateness_ns]):
                    raise _plan.unsupported(
                        step,
                        "Flink SQL",
                        "window sizes and delays below a millisecond have no Flink interval",
                        "use durations in whole milliseconds",
                    )
        if self.parse.time is None:
            raise _plan.unsupported(
                self.parse,
                "Flink SQL",
                "the parse step has no event-time field, so the job has no watermark",
                "parse with time='<field>'",
            )

    # -- SQL ----------------------------------------------------------------------------------------
    def parse_columns(self) -> list[_Col]:
        return [_Col(f.name, f.type) for f in self.parse.fields]

    def build(self) -> None:
        for sid, step in self.p.steps.items():
            if isinstance(step, ParseStep):
                self.columns[sid] = self.parse_columns()
            elif isinstance(step, (KeyByStep, SinkStep)):
                if isinstance(step, KeyByStep):
                    self.columns[sid] = self.columns[step.inputs[0]]
                    self.views.append((sid, f"SELECT * FROM {_q(step.inputs[0])}"))
            elif isinstance(step, SelectStep):
                src = self.columns[step.inputs[0]]
                kinds = {c.name: c.kind for c in src}
                self.columns[sid] = [_Col(new, kinds.get(old, "string")) for old, new in step.columns]
                cols = ", ".join(f"{_q(old)} AS {_q(new)}" for old, new in step.columns)
                self.views.append((sid, f"SELECT {cols}, {_q(_PROC)} FROM {_q(step.inputs[0])}"))
            elif isinstance(step, DedupStep):
                self.columns[sid] = self.columns[step.inputs[0]]
                cols = ", ".join(_q(c.name) for c in self.columns[sid])
                source = self.zeroed_keys(sid, step.inputs[0], [step.id_column])  # -0.0 repeats 0.0
                self.views.append(
                    (
                        sid,
                        f"SELECT {cols}, {_q(_PROC)} FROM (\n"
                        f"  SELECT *, ROW_NUMBER() OVER (PARTITION BY {_q(step.id_column)} "
                        f"ORDER BY {_q(_PROC)} ASC) AS __rn\n"
                        f"  FROM {source}\n) WHERE __rn = 1",
                    )
                )
            elif isinstance(step, WindowStep):
                self.window(sid, step)
            elif isinstance(step, IntervalJoinStep):
                self.join(sid, step)
            elif sid in self.patterns:
                from streamlab.export.flink_pattern import match_recognize

                cfg = self.patterns[sid]
                within = _interval(parse_duration(cfg.within) + 1_000_000)
                source = self.zeroed_keys(sid, step.inputs[0], [cfg.key])
                self.views.append((sid, match_recognize(cfg, source, within)))
                kinds = {c.name: c.kind for c in self.columns[step.inputs[0]]}
                self.columns[sid] = [
                    _Col(cfg.key, kinds.get(cfg.key, "string")),
                    _Col("pattern", "string"),
                    _Col("first_time", "timestamp"),
                    _Col("last_time", "timestamp"),
                    _Col("event_ids", "array"),
                    _Col("n_events", "int64"),
                ]

    def zeroed_keys(self, sid: str, ref: str, keys: Sequence[str]) -> str:
        """The (quoted) view a step keyed by ``keys`` reads ``ref`` through: Flink groups, partitions and
        joins a DOUBLE by its bits, so -0.0 and 0.0 were two keys, where streamlab's are one (as Python
        holds them equal). With a float64 key, a view of ``ref`` with that key's zeros made 0.0."""
        columns = self.columns[ref]
        if not any(c.kind == "float64" and c.name in keys for c in columns):
            return _q(ref)
        cols = [
            f"{_zero(_q(c.name))} AS {_q(c.name)}" if c.kind == "float64" and c.name in keys else _q(c.name)
            for c in columns
        ]
        self.views.append((f"{sid}__keys", f"SELECT {', '.join(cols)}, {_q(_PROC)} FROM {_q(ref)}"))
        return _q(f"{sid}__keys")

    def window(self, sid: str, step: WindowStep) -> None:
        src = _q(step.inputs[0])
        t = _q(step.time)
        w = step.window
        keys = [_q(k) for k in step.keys]
        kinds = {c.name: c.kind for c in self.columns[step.inputs[0]]}
        src = self.zeroed_keys(sid, step.inputs[0], step.keys)
        if isinstance(w, TumblingWindow):
            off = f", {_interval(w.offset_ns)}" if w.offset_ns else ""
            tvf = f"TUMBLE(TABLE {src}, DESCRIPTOR({t}), {_interval(w.size_ns)}{off})"
        elif isinstance(w, SlidingWindow):
            off = f", {_interval(w.offset_ns)}" if w.offset_ns else ""
            tvf = f"HOP(TABLE {src}, DESCRIPTOR({t}), {_interval(w.every_ns)}, {_interval(w.size_ns)}{off})"
        else:
            assert isinstance(w, SessionWindow)
            part = f" PARTITION BY {', '.join(keys)}" if keys else ""
            # a session is [first, last + gap): an event at last + gap starts a new one (as Beam's Sessions);
            # Flink merges session windows that touch, so it gets a gap 1 ms (its resolution) shorter and
            # window_end back 1 ms later
            tvf = f"SESSION(TABLE {src}{part}, DESCRIPTOR({t}), {_interval(w.gap_ns - _touch_ns(w))})"
        aggs = ",\n  ".join(_agg_sql(a, step, kinds) for a in step.aggs)
        if isinstance(w, SessionWindow) and self.legacy_sessions:
            # before Flink 1.19 the SESSION table function does not run on streams: the group window
            gap = _interval(w.gap_ns - _touch_ns(w))
            end = f"SESSION_END({t}, {gap})" + (f" + {_interval(_touch_ns(w))}" if _touch_ns(w) else "")
            bounds = f"SESSION_START({t}, {gap}) AS window_start, {end} AS window_end"
            group = ", ".join([*keys, f"SESSION({t}, {gap})"])
            self.views.append(
                (sid, f"SELECT {', '.join([*keys, bounds])},\n  {aggs}\nFROM {src}\nGROUP BY {group}")
            )
            self.window_columns(sid, step)
            return
        group = ", ".join([*keys, "window_start", "window_end"])
        end = "window_end"
        if isinstance(w, SessionWindow) and _touch_ns(w):
            end = f"window_end + {_interval(_touch_ns(w))} AS window_end"
        select = ", ".join([*keys, "window_start", end])
        self.views.append(
            (sid, f"SELECT {select},\n  {aggs}\nFROM TABLE({tvf})\nGROUP BY {group}"),
        )
        self.window_columns(sid, step)

    def window_columns(self, sid: str, step: WindowStep) -> None:
        kinds = {c.name: c.kind for c in self.columns[step.inputs[0]]}
        cols = [_Col(k, kinds.get(k, "string")) for k in step.keys]
        cols += [_Col("window_start", "window"), _Col("window_end", "window")]
        cols += [_Col(a.name, _plan.result_type(a, kinds)) for a in step.aggs]
        self.columns[sid] = cols

    def join(self, sid: str, step: IntervalJoinStep) -> None:
        left, right = (self.columns[r] for r in step.inputs)
        both = {c.name for c in left} & {c.name for c in right} - set(step.on)
        out: list[_Col] = []
        sel = []
        for c in left:
            name = c.name + step.suffixes[0] if c.name in both else c.name
            out.append(_Col(name, c.kind))
            sel.append(f"L.{_q(c.name)} AS {_q(name)}")
        for c in right:
            if c.name in step.on:
                continue
            name = c.name + step.suffixes[1] if c.name in both else c.name
            out.append(_Col(name, c.kind))
            sel.append(f"R.{_q(c.name)} AS {_q(name)}")
        kinds = {c.name: c.kind for c in left}
        right_kinds = {c.name: c.kind for c in right}

        def side(alias: str, k: str, of: dict[str, str]) -> str:
            # Flink's join keys a DOUBLE by its bits: -0.0 paired with no 0.0, where SQL's = (and
            # streamlab) holds them equal
            return _zero(f"{alias}.{_q(k)}") if of.get(k) == "float64" else f"{alias}.{_q(k)}"

        on = " AND ".join(
            [f"{side('L', k, kinds)} = {side('R', k, right_kinds)}" for k in step.on]
            + _plan.keyable_join_sql(step.on, kinds, "L")
        )
        lt, rt = f"L.{_q(step.left_time)}", f"R.{_q(step.right_time)}"
        lo, hi = _interval(step.lower_ns), _interval(step.upper_ns)
        self.views.append(
            (
                sid,
                f"SELECT {', '.join(sel)}, L.{_q(_PROC)}\n"
                f"FROM {_q(step.inputs[0])} L, {_q(step.inputs[1])} R\n"
                f"WHERE {on}\n  AND {rt} BETWEEN {lt} + {lo} AND {lt} + {hi}",
            )
        )
        self.columns[sid] = out

    def outputs(self) -> dict[str, str]:
        """Stream reference -> sink name, for every output the job writes."""
        out: dict[str, str] = {}
        for ref, name in _plan.sink_outputs(self.p).items():
            base, _, side = ref.partition(".")
            if side and not (side == "dead_letter" and base == self.parse.step_id):
                continue  # late, duplicates and per-step dead letters have no Flink SQL equal
            out[ref] = name
        return out

    def sink_columns(self, ref: str) -> list[_Col]:
        if ref == f"{self.parse.step_id}.dead_letter":
            return [_Col(c, "string") for c in PARSE_DEAD_LETTER_COLUMNS]
        return self.columns[ref]


def _sink_type(c: _Col) -> str:
    """Flink SQL type of a sink column: event times and window bounds as UTC TIMESTAMP(3)."""
    if c.kind in ("window", "timestamp"):
        return "TIMESTAMP(3)"
    if c.kind == "array":
        return "ARRAY<STRING>"
    return _SQL_TYPES.get(c.kind, "STRING")


def _json_line(cols: list[_Col]) -> str:
    """The SQL expression of a row's JSON text, as streamlab's JSON sinks write rows: a json or object
    field (held as its JSON text) nested as the value, not quoted; NaN and the infinities null; times
    ISO-8601 in UTC with their zone (Flink's JSON format wrote them without one, which a reader takes
    as local time); missing values null. File and Kafka sinks write it with the ``raw`` format.

    Built with ``CONCAT`` and ``JSON_STRING`` (Flink 1.15 on; ``JSON()`` inside ``JSON_OBJECT`` would
    need Flink 2.1), the fields in the row's order.

    Examples
    --------
    >>> print(_json_line([_Col("id", "string"), _Col("properties", "object")]))
    CONCAT('{"id":', COALESCE(JSON_STRING(`id`), 'null'), ',"properties":', COALESCE(`properties`, 'null'), '}')
    """
    parts = []
    for i, c in enumerate(cols):
        col = _q(c.name)
        if c.kind in ("object", "json"):
            value = col  # JSON text already
        elif c.kind in ("timestamp", "window"):
            value = f"JSON_STRING(DATE_FORMAT({col}, {_TIME_TEXT}))"
        elif c.kind == "float64":
            text = f"JSON_STRING(CASE WHEN {col} <> {col} OR ABS({col}) = CAST('Infinity' AS DOUBLE) THEN NULL ELSE {col} END)"
            # JSON_STRING writes a DOUBLE as its decimal's text: 12345678.0 as 12345678, which a reader
            # takes as an int (streamlab writes 12345678.0); a fraction keeps it a float, as streamlab's
            value = f"CASE WHEN REGEXP({text}, '^-?[0-9]+$') THEN CONCAT({text}, '.0') ELSE {text} END"
        else:
            value = f"JSON_STRING({col})"
        key = ("{" if i == 0 else ",") + json.dumps(c.name) + ":"
        parts += [_sql_text(key), f"COALESCE({value}, 'null')"]
    return "CONCAT(" + ", ".join(parts or ["'{'"]) + ", '}')"


def _sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


#: DATE_FORMAT's pattern of a time in JSON outputs: ISO-8601 to the millisecond (Flink SQL's resolution) in UTC
_TIME_TEXT = _sql_text("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")


# -- job.sql (SQL client) -----------------------------------------------------------------------------
def _source_with(source: str, name: str) -> list[str]:
    if source == "kafka":
        return [
            "'connector' = 'kafka'",
            "'topic' = '${KAFKA_TOPIC}'",
            "'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP_SERVERS}'",
            f"'properties.group.id' = '{name}'",
            "'scan.startup.mode' = 'group-offsets'",
            "'properties.auto.offset.reset' = 'earliest'",
            "'format' = 'raw'",
        ]
    if source == "eventhubs":
        return [
            "'connector' = 'kafka'",
            "'topic' = '${EVENTHUB_NAME}'",
            "'properties.bootstrap.servers' = '${EVENTHUBS_NAMESPACE}.servicebus.windows.net:9093'",
            f"'properties.group.id' = '{name}'",
            "'properties.security.protocol' = 'SASL_SSL'",
            "'properties.sasl.mechanism' = 'PLAIN'",
            "'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule "
            'required username="$ConnectionString" password="${EVENTHUBS_CONNECTION_STRING}";\'',
            "'scan.startup.mode' = 'group-offsets'",
            "'properties.auto.offset.reset' = 'earliest'",
            "'format' = 'raw'",
        ]
    if source == "kinesis":
        return [
            "'connector' = 'kinesis'",
            "'stream.arn' = '${KINESIS_STREAM_ARN}'",
            "'aws.region' = '${AWS_REGION}'",
            "'source.init.position' = 'TRIM_HORIZON'",
            "'format' = 'raw'",
        ]
    return ["'connector' = 'filesystem'", "'path' = '${INPUT_PATH}'", "'format' = 'raw'"]


def _sink_with(sink: str, name: str) -> list[str]:
    if sink == "kafka":
        return [
            "'connector' = 'kafka'",
            f"'topic' = '{name}'",
            "'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP_SERVERS}'",
            "'format' = 'raw'",  # the row's JSON text (_json_line)
        ]
    if sink == "jdbc":
        return [
            "'connector' = 'jdbc'",
            "'url' = '${JDBC_URL}'",
            f"'table-name' = '{name}'",
            "'username' = '${JDBC_USER}'",
            "'password' = '${JDBC_PASSWORD}'",
        ]
    return [
        "'connector' = 'filesystem'",
        f"'path' = '${{OUTPUT_PATH}}/{name}'",
        "'format' = 'raw'",  # the row's JSON text (_json_line)
    ]


def _with(options: list[str]) -> str:
    return "WITH (\n  " + ",\n  ".join(options) + "\n)"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _json_path(path: tuple[str, ...]) -> str:
    """The JSON path of a field's keys, written inside a SQL string literal: a key that is not a plain
    name (a dot, read literally as the parse step does, a space, brackets, a dash) in bracket notation,
    its quotes doubled for SQL. In dot notation, Flink's JSON_VALUE read ``$.unit price`` and
    ``$.x[0]`` as NULL: the field was lost.

    Examples
    --------
    >>> _json_path(("properties", "amount")), _json_path(("user.id",)), _json_path(("unit price",))
    ('$.properties.amount', "$[''user.id'']", "$[''unit price'']")
    """
    return "$" + "".join(
        f".{k}" if _PLAIN_KEY.fullmatch(k) else "[''" + k.replace("'", "\\''") + "'']" for k in path
    )


def _json_value(c: _Col, path: tuple[str, ...]) -> str:
    """The SQL expression reading field ``c`` at ``path`` from the raw line (``job.sql``).

    A ``json`` or ``object`` field is its JSON text: ``JSON_VALUE`` gives NULL for an object or an array
    (every event's ``properties`` was lost), so it is read with ``JSON_QUERY``; a JSON scalar, which
    ``JSON_QUERY`` gives only inside an array wrapper, is taken out of it.

    Examples
    --------
    >>> _json_value(_Col("properties", "object"), ("properties",))
    "JSON_QUERY(`line`, '$.properties')"
    """
    jp = _json_path(path)
    text = f"JSON_VALUE(`line`, '{jp}')"
    if c.kind in ("object", "json"):
        whole = f"JSON_QUERY(`line`, '{jp}')"
        if c.kind == "object":
            return whole
        wrapped = f"JSON_QUERY(`line`, '{jp}' WITH CONDITIONAL ARRAY WRAPPER)"
        return f"COALESCE({whole}, SUBSTRING({wrapped} FROM 2 FOR CHAR_LENGTH({wrapped}) - 2))"
    if c.kind == "timestamp":  # ISO-8601 text or an epoch number, by streamlab's rule
        first = f"SUBSTRING(JSON_QUERY(`line`, '{jp}' WITH UNCONDITIONAL ARRAY WRAPPER) FROM 2 FOR 1)"
        return f"CASE WHEN {first} IN {_NUMBER_START} THEN {_epoch_time_sql(text)} ELSE {_iso_time_sql(text)} END"
    t = _SQL_TYPES.get(c.kind, "STRING")
    # TRY_CAST: a value of another JSON type (``true`` in a number field) is a dead letter
    # (:func:`_json_mistyped`), and CAST would fail the whole job on it
    return text if t == "STRING" else f"TRY_CAST({text} AS {t})"


def _ms_text(ns: int) -> str:
    """A SQL timestamp literal's text of epoch nanoseconds, to the millisecond toward the past."""
    from datetime import datetime, timedelta, timezone

    t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ns // 1_000_000)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


@functools.cache
def _spaces_literal() -> str:
    """A SQL Unicode literal (``U&'...'``) of the characters Python's ``str.strip()`` removes: the
    whitespace of streamlab's time rule (``streamlab._record.iso_to_ns`` strips the text).

    SQL's ``TRIM(x)`` removes spaces alone; a time text padded with a tab, a line break, a form feed or a
    no-break space (``"\\t2024-01-01T00:00:00Z"``) was a dead letter of ``job.sql`` that streamlab read.

    Examples
    --------
    >>> print(_spaces_literal()[:23])
    U&'\\0009\\000A\\000B\\000C
    """
    codes = [c for c in range(0x110000) if chr(c).isspace()]  # every code point
    return "U&'" + "".join(f"\\{c:04X}" if c <= 0xFFFF else f"\\+{c:06X}" for c in codes) + "'"


def _strip_sql(text: str) -> str:
    """The SQL expression of ``text`` without the leading and trailing characters that Python's
    ``str.strip()`` removes, as streamlab's time rule strips a time text (``job.sql``).

    Flink's ``TRIM(BOTH chars FROM x)`` removes every character of ``chars`` from both ends, in any order.

    Examples
    --------
    >>> print(_strip_sql("x")[:23], "...", _strip_sql("x")[-14:])
    TRIM(BOTH U&'\\0009\\000A ... \\3000' FROM x)
    """
    return f"TRIM(BOTH {_spaces_literal()} FROM {text})"


def _iso_time_sql(text: str) -> str:
    """The SQL expression of ISO-8601 ``text`` as a ``TIMESTAMP_LTZ(3)`` by streamlab's time rule
    (``streamlab._record.iso_to_ns``), NULL where the rule has no time (``job.sql``).

    The rule's own pattern (``_ISO``) is matched once; its parts are then read at their places, which the
    grammar fixes: the date in characters 1-10, then the clock (``Thh:mm:ss.fff``, each part after the
    hour optional) up to the offset, which starts at the only ``Z``, ``+`` or ``-`` after the date. Reading
    each part with ``REGEXP_EXTRACT`` of the whole pattern wrote the pattern about 37 times per field:
    ``job.sql`` had 24 KB lines that Flink took about a minute to plan. A date or time of day that does
    not exist is refused by reading the assembled text back, an offset is subtracted and times outside
    64-bit nanoseconds (years 1677-2262) are refused, as in streamlab. Flink's ``CAST`` alone read
    2024-02-30 as 2024-02-29, 24:00 as the next day and 2024-1-1 as a date, took years 0001 and 9999, and
    gave NULL for an offset, a time without seconds, a lowercase t or z and a decimal comma. The fraction
    is cut to the millisecond toward the past, Flink SQL's resolution. No part fails on any text
    (``TRY_CAST``; Flink's ``SUBSTRING`` gives NULL for a negative length), as Flink may read the parts of
    a text that does not match the pattern.

    Examples
    --------
    >>> sql = _iso_time_sql("x")
    >>> f"REGEXP({_strip_sql('x')}, '^([0-9]{{4}})-" in sql, sql.count("REGEXP"), len(sql) < 8000
    (True, 4, True)
    """
    from streamlab._record import _ISO, INT64_RANGE

    t = _strip_sql(text)
    # after the pattern's match, no 'Z', '+' or '-' follows the date but an offset's first character
    rest = f"SUBSTRING({t} FROM 11)"  # [Tt ]hh:mm:ss.fff and the offset, each optional
    clock = f"REGEXP_REPLACE({rest}, '[Zz+-].*', '')"  # '', Thh, Thh:mm, Thh:mm:ss or Thh:mm:ss.f...
    # the clock laid over midnight fills in what it leaves out (2024-01-02T05 is 05:00:00.000); with a
    # character before it, as Flink's OVERLAY gives '' for an empty text laid over
    filled = f"REPLACE(OVERLAY('< 00:00:00.000' PLACING CONCAT('<', {clock}) FROM 1), ',', '.')"
    wall = f"CONCAT(SUBSTRING({t} FROM 1 FOR 10), ' ', SUBSTRING({filled} FROM 3 FOR 12))"
    local = f"TRY_CAST({wall} AS TIMESTAMP(3))"
    exists = f"DATE_FORMAT({local}, 'yyyy-MM-dd HH:mm:ss') = SUBSTRING({wall} FROM 1 FOR 19)"
    # the offset (+hh, +hhmm, or +00 where none), its sign the first '+' or '-' of the rest
    signed = f"CONCAT(REPLACE({rest}, ':', ''), '+00')"
    off = f"SUBSTRING({signed} FROM POSITION('+' IN REPLACE({signed}, '-', '+')) + 1)"
    off_h = f"TRY_CAST(SUBSTRING({off} FROM 1 FOR 2) AS INT)"
    off_m = f"COALESCE(TRY_CAST(SUBSTRING({off} FROM 3 FOR 2) AS INT), 0)"  # the '+0' of '+00' is 0
    east = f"CASE WHEN POSITION('-' IN {rest}) > 0 THEN 1 ELSE -1 END"
    utc = f"TIMESTAMPADD(MINUTE, {east} * ({off_h} * 60 + {off_m}), {local})"
    ok = f"REGEXP({t}, '^{_ISO.pattern}$') AND {exists} AND {off_h} <= 23 AND {off_m} <= 59"
    # times of 64-bit nanoseconds only: a time beyond them is clamped to the first millisecond outside,
    # which NULLIF then takes; ``BETWEEN`` wrote the whole time out once more (7 more copies of the text)
    below, above = (
        f"TIMESTAMP '{_ms_text(ns)}'" for ns in (INT64_RANGE[0] + 1 - 1_000_000, INT64_RANGE[1] + 1_000_000)
    )
    clamped = f"GREATEST(LEAST(CASE WHEN {ok} THEN {utc} END, {above}), {below})"
    return f"CAST(NULLIF(NULLIF({clamped}, {above}), {below}) AS TIMESTAMP_LTZ(3))"


_NUMBER_START = "('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"


def _epoch_time_sql(text: str) -> str:
    """The SQL expression of a JSON number's ``text`` as a ``TIMESTAMP_LTZ(3)`` by streamlab's rule
    (``streamlab._record.epoch_to_ns``): epoch seconds, or milliseconds above 1e11 in magnitude; NULL
    outside the times of 64-bit nanoseconds, as in streamlab (``job.sql``).

    An integer (no ``.``, no exponent: Flink gives a fraction or an exponent as ``BigDecimal`` text, as
    ``1E+2``) is exact. A fraction is read as the double streamlab reads, cut to the millisecond toward
    the past: the double's whole seconds, and its fraction's nanoseconds rounded (``1704067223.001`` is
    the double ``...223.000999927``, 1 ns short of the millisecond that its decimal text would give).

    Examples
    --------
    >>> "TO_TIMESTAMP_LTZ(" in _epoch_time_sql("x")
    True
    """
    i, d = f"TRY_CAST({text} AS BIGINT)", f"TRY_CAST({text} AS DOUBLE)"
    whole = f"POSITION('.' IN {text}) = 0 AND POSITION('E' IN UPPER({text})) = 0"
    ms = "9223372036854"  # the milliseconds of 64-bit nanoseconds (years 1677-2262), at the millisecond
    seconds = f"FLOOR({d}) * 1000 + FLOOR(ROUND(({d} - FLOOR({d})) * 1E9, 0) / 1E6)"
    tiny = f"FLOOR(ROUND({d} * 1E9, 0) / 1E6)"  # below a second: no whole seconds to take apart
    float_ms = f"CASE WHEN ABS({d}) > 1E11 THEN FLOOR({d}) WHEN ABS({d}) < 1 THEN {tiny} ELSE {seconds} END"
    cases = [
        f"WHEN {whole} AND {i} BETWEEN -9223372036 AND 9223372036 THEN {i} * 1000",
        f"WHEN {whole} AND ({i} BETWEEN -{ms} AND -100000000001 OR {i} BETWEEN 100000000001 AND {ms}) THEN {i}",
        f"WHEN NOT ({whole}) AND ABS({d}) <= 1E13 AND {float_ms} BETWEEN -{int(ms) + 1} AND {ms} "
        f"THEN CAST({float_ms} AS BIGINT)",
    ]
    return f"TO_TIMESTAMP_LTZ(CASE {' '.join(cases)} END, 3)"


_JSON_START = {  # the first character of a value's JSON text, by field type
    "string": "('\"')",
    "category": "('\"')",
    "bool": "('t', 'f')",
    "object": "('{')",
    "float64": _NUMBER_START,
    "int64": _NUMBER_START,
    "timestamp": ("('\"', " + _NUMBER_START[1:]),
}


def _json_mistyped(c: _Col, path: tuple[str, ...], value: str | None = None) -> str | None:
    """A SQL condition (TRUE or FALSE, never NULL) that field ``c`` at ``path`` holds a value streamlab's
    parse refuses for its type (``job.sql``): a value of another JSON type (``true`` or ``"3"`` in a
    number field, ``7`` in a text field, a text in an object field), a number no double holds (``1e400``,
    a 400-digit integer), an int64 that is no integer in range, or a time text the job cannot read. streamlab sends such a record to the
    dead letters; JSON_VALUE gave its text, which CAST read (``"3"`` as 3.0) or failed the whole job on
    (``true``). None for a ``json`` field, which takes any value. The value's type is the first
    character of its JSON text, which ``JSON_QUERY`` gives inside an array wrapper (NULL for null or
    missing, as streamlab's missing value). ``value`` is the SQL expression of the field's typed value
    (:func:`_json_value`; ``job.sql`` passes its column, so the time parse is not written out again).

    Examples
    --------
    >>> print(_json_mistyped(_Col("ok", "bool"), ("ok",)))
    CASE WHEN JSON_QUERY(`line`, '$.ok' WITH UNCONDITIONAL ARRAY WRAPPER) IS NULL THEN FALSE WHEN SUBSTRING(JSON_QUERY(`line`, '$.ok' WITH UNCONDITIONAL ARRAY WRAPPER) FROM 2 FOR 1) NOT IN ('t', 'f') THEN TRUE ELSE FALSE END
    >>> _json_mistyped(_Col("j", "json"), ("j",)) is None
    True
    """
    if c.kind not in _JSON_START:
        return None
    jp = _json_path(path)
    wrapped = f"JSON_QUERY(`line`, '{jp}' WITH UNCONDITIONAL ARRAY WRAPPER)"
    text = f"JSON_VALUE(`line`, '{jp}')"
    value = value or _json_value(c, path)
    cases = [
        f"WHEN {wrapped} IS NULL THEN FALSE",
        f"WHEN SUBSTRING({wrapped} FROM 2 FOR 1) NOT IN {_JSON_START[c.kind]} THEN TRUE",
    ]
    if c.kind == "timestamp":  # a text the time reader takes ('' and 'NaT' are no time, as in streamlab)
        no_time = f"LOWER({_strip_sql(text)}) NOT IN ('', 'nat') AND {value} IS NULL"
        cases.append(f"WHEN SUBSTRING({wrapped} FROM 2 FOR 1) = '\"' AND {no_time} THEN TRUE")
        # a number that is no time of 64-bit nanoseconds (1e400, 1e20)
        cases.append(f"WHEN SUBSTRING({wrapped} FROM 2 FOR 1) <> '\"' AND {value} IS NULL THEN TRUE")
    if c.kind in ("string", "category"):  # a lone surrogate ("\\ud800") is no text: UTF-8 cannot hold it
        cases.append(f"WHEN REGEXP({text}, '[\\uD800-\\uDFFF]') THEN TRUE")
    if c.kind == "float64":  # finite as a double: streamlab refuses 1e400 and integers beyond a double
        cases.append(f"WHEN ABS(TRY_CAST({text} AS DOUBLE)) <= 1.7976931348623157E308 THEN FALSE")
    elif c.kind == "int64":  # a JSON integer (no fraction, no exponent) within BIGINT's range
        whole = f"POSITION('.' IN {text}) = 0 AND POSITION('E' IN UPPER({text})) = 0"
        cases.append(f"WHEN {whole} AND TRY_CAST({text} AS BIGINT) IS NOT NULL THEN FALSE")
    # a number field's value is refused unless a WHEN above accepted it
    return f"CASE {' '.join(cases)} ELSE {str(c.kind in ('float64', 'int64')).upper()} END"


_NO_TIME = "TO_TIMESTAMP_LTZ(-30000000000000, 3)"
"""``job.sql``'s rowtime of a record without a readable time: in the year 1019, before any time of 64-bit
nanoseconds (years 1677-2262), so no record's time is it, and too early to move the watermark."""


def _job_sql(gen: _Generator, source: str, sink: str) -> str:
    p, parse = gen.p, gen.parse
    time = parse.time or ""
    lines = [
        f"-- Flink SQL job {p.name!r}, exported from streamlab (Flink {FLINK_VERSION}).",
        "-- Run: envsubst < job.sql > job.resolved.sql && sql-client.sh -f job.resolved.sql",
        "-- Placeholders ${NAME} are environment variables (secrets by reference, never written here).",
        "-- Where the SQL client is missing (pip's apache-flink has no SQL gateway): python run_sql.py job.sql",
        "-- The PyFlink script main.py runs the same queries with streamlab's parser (exact dead-letter",
        "-- reasons); this script reads fields with JSON_VALUE. See README.md for the semantics.",
        "",
        "SET 'table.local-time-zone' = 'UTC';",
        "SET 'execution.checkpointing.interval' = '10s';",
    ]
    if gen.state_ttl_ms is not None:
        lines.append(f"SET 'table.exec.state.ttl' = '{gen.state_ttl_ms} ms';")
    cols = ["  `line` STRING"]
    # The checks of the typed fields are written in the queries, on the table's columns: a computed
    # column cannot use another, and each written out its field's time parse again (four copies of it per
    # time field made 40 KB lines that Flink took a minute to plan).
    values = {f.name: _q(f.name) for f in parse.fields}
    if time:
        # a rowtime must not be null: unreadable times become _NO_TIME (such rows are dead letters), a time
        # that no readable one is, so that the queries can tell them apart
        values[time] = f"NULLIF({_q(time)}, {_NO_TIME})"
    mistyped = [
        m for f in parse.fields if (m := _json_mistyped(_Col(f.name, f.type), f.path, values[f.name]))
    ]
    for f in parse.fields:
        expr = _json_value(_Col(f.name, f.type), f.path)
        if f.name == time:
            expr = f"COALESCE({expr}, {_NO_TIME})"
        cols.append(f"  {_q(f.name)} AS {expr}")
    cols.append(f"  {_q(_PROC)} AS PROCTIME()")
    wm = f"  WATERMARK FOR {_q(time)} AS {_q(time)} - {_interval(gen.delay_ns + 1_000_000)}"
    lines += [
        "",
        "-- raw records; typed fields are computed columns; the watermark trails the largest event time",
        "CREATE TABLE `raw_records` (\n"
        + ",\n".join([*cols, wm])
        + "\n) "
        + _with(_source_with(source, p.name))
        + ";",
    ]
    fields = ", ".join(_q(f.name) for f in parse.fields)
    req = [f.name for f in parse.fields if f.name != time and f.name in parse.required]
    ok = " AND ".join(
        [
            f"{_q(time)} <> {_NO_TIME}",
            *([f"NOT ({' OR '.join(mistyped)})"] if mistyped else []),
            *(f"{_q(r)} IS NOT NULL" for r in req),
        ]
    )
    lines += [
        "",
        f"CREATE TEMPORARY VIEW {_q(parse.step_id)} AS\nSELECT {fields}, {_q(_PROC)} FROM `raw_records` WHERE {ok};",
    ]
    for name, select in gen.views:
        lines += ["", f"CREATE TEMPORARY VIEW {_q(name)} AS\n{select};"]
    outputs = gen.outputs()
    for ref, name in outputs.items():
        cols_ = gen.sink_columns(ref)
        ddl = (
            ",\n".join(f"  {_q(c.name)} {_sink_type(c)}" for c in cols_)
            if sink == "jdbc"
            else "  `line` STRING"
        )
        lines += ["", f"CREATE TABLE {_q('sink_' + name)} (\n{ddl}\n) {_with(_sink_with(sink, name))};"]
    lines += ["", "EXECUTE STATEMENT SET BEGIN"]
    for ref, name in outputs.items():
        cols_ = gen.sink_columns(ref)
        if ref.endswith(".dead_letter"):
            reason = "'unreadable record: not JSON, or a required field missing or mistyped'"
            rows = f"SELECT `line` AS `raw`, {reason} AS `reason`, '{parse.step_id}' AS `step_id` FROM `raw_records`"
            rows += f" WHERE NOT ({ok})"
            sel = "*" if sink == "jdbc" else _json_line(cols_)
            lines.append(f"INSERT INTO {_q('sink_' + name)} SELECT {sel} FROM ({rows});")
        elif sink != "jdbc":
            lines.append(f"INSERT INTO {_q('sink_' + name)} SELECT {_json_line(cols_)} FROM {_q(ref)};")
        else:
            sel = ", ".join(
                f"CAST({_q(c.name)} AS TIMESTAMP(3))" if c.kind == "timestamp" else _q(c.name) for c in cols_
            )
            lines.append(f"INSERT INTO {_q('sink_' + name)} SELECT {sel} FROM {_q(ref)};")
    lines.append("END;")
    return "\n".join(lines) + "\n"


# -- main.py (PyFlink) --------------------------------------------------------------------------------
_MAIN_HEADER = '''"""PyFlink job {name!r}, exported from streamlab (Flink {version}).

Steps: {steps}.

Run it
------
Locally, on Flink's mini-cluster (``pip install -r requirements.txt``; Java 11 or 17)::

    python main.py --input events.jsonl --output out/

On a cluster (connector jars in ``lib/`` or passed with ``--jarfile``)::

    flink run -py main.py -- --source kafka --sink files --output s3://bucket/out/

Records are parsed with streamlab's parser (copied below), so rows and dead-letter reasons are
streamlab's; the windows, dedup and joins are the Flink SQL queries in ``QUERIES`` (the same text
as ``job.sql``). Secrets are read from environment variables, never written here.

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
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any
'''

RAW_STREAM = '''INPUT_FORMATS = ("lines", "base64")
"""How ``--input`` files hold records: ``lines``, one raw record per line; ``base64``, one record's bytes
in base64 per line, so a record holding a line break (or ending in a carriage return) stays one record
(``streamlab.export.verify`` writes a sample holding one so)."""

FILE_SPLIT_BYTES = 64 * 1024 * 1024
"""Bytes of an uncompressed input file per split: the splits of a file are read in parallel (a compressed
file is one split)."""

BOM = b"\\xef\\xbb\\xbf"  # UTF-8's byte order mark, which some tools write at the start of a file
DECOMPRESS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}  # files read decompressed, as Flink's FileSource


def _open_input(path):
    """A binary file object of ``path``: a local file, or a URI (``s3://``, ``gs://``, ``hdfs://``) through
    pyarrow's file systems."""
    import io

    if "://" not in path or path.startswith("file://"):
        return open(path.removeprefix("file://"), "rb")
    from pyarrow import fs

    filesystem, name = fs.FileSystem.from_uri(path)
    return io.BufferedReader(filesystem.open_input_file(name))


def _input_files(pattern):
    """(path, size) of the files of one ``--input`` argument: a glob pattern's matches, a file, or a
    directory's files (recursively, without those whose names start with ``.`` or ``_``, as Flink's
    FileSource), in name order."""
    if "://" in pattern and not pattern.startswith("file://"):
        from pyarrow import fs

        filesystem, name = fs.FileSystem.from_uri(pattern)
        scheme = pattern[: pattern.index("://") + 3]
        info = filesystem.get_file_info(name)
        if info.type == fs.FileType.File:
            return [(pattern, info.size)]
        if info.type != fs.FileType.Directory:
            raise FileNotFoundError(f"--input {pattern}: no such file or directory")
        found = filesystem.get_file_info(fs.FileSelector(name, recursive=True))
        files = [f for f in found if f.type == fs.FileType.File]
        visible = [f for f in files if not any(x[:1] in "._" for x in f.path[len(name):].split("/") if x)]
        return sorted((scheme + f.path, f.size) for f in visible)
    local = pattern.removeprefix("file://")
    out = []
    for path in sorted(glob.glob(local)) or [local]:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d[:1] not in "._")
                out += [(os.path.join(root, n), None) for n in sorted(names) if n[:1] not in "._"]
        elif os.path.exists(path):
            out.append((path, None))
        else:
            raise FileNotFoundError(f"--input {pattern}: no such file, directory or match of the pattern")
    return [(p, os.path.getsize(p)) for p, _ in out]


def file_splits(patterns, split_bytes=FILE_SPLIT_BYTES):
    """(path, start, end) byte ranges of the input files, files in the order given (each pattern's in
    name order), each file cut into ranges of ``split_bytes`` (a compressed file is one range, end None).
    A range holds the lines that start in it (:func:`read_split`)."""
    splits = []
    for pattern in patterns:
        for path, size in _input_files(pattern):
            if os.path.splitext(path)[1] in DECOMPRESS:
                splits.append((path, 0, None))
            else:
                splits += [(path, s, min(s + split_bytes, size)) for s in range(0, size, split_bytes)]
    return splits


def read_split(split, input_format="lines"):
    """The raw records of one range of a file (:func:`file_splits`), as bytes, cut as streamlab's replay
    cuts a file: at each LF, without one carriage return before it, no record after a final LF; a bare CR
    is part of its record; a UTF-8 byte order mark that starts the file is not part of its first record.
    A record belongs to the range where its first byte is. In ``base64`` format (``INPUT_FORMATS``) each
    line is decoded to the record it holds."""
    path, start, end = split
    with _open_input(path) as raw:
        if end is None:
            import importlib

            f = importlib.import_module(DECOMPRESS[os.path.splitext(path)[1]]).open(raw)
        else:
            f = raw
        if start == 0:
            if f.read(len(BOM)) != BOM:
                f.seek(0)
            at = 0  # the first record starts the file, its mark left out
        else:
            f.seek(start - 1)
            if f.read(1) != b"\\n":
                f.readline()  # the record that started in the range before
            at = f.tell()
        while end is None or at < end:
            line = f.readline()
            if not line:
                break
            at = None if end is None else f.tell()
            line = line[:-1] if line.endswith(b"\\n") else line
            line = line[:-1] if line.endswith(b"\\r") else line
            yield base64.b64decode(line) if input_format == "base64" else line


def raw_stream(env, args):
    """The raw records as a DataStream of bytes, from files, Kafka, Event Hubs or Kinesis.

    Bytes, not text: streamlab's parser sends a record with invalid UTF-8 to the dead letters, which a
    text reader (replacing bad bytes with U+FFFD) would hide. Files are cut into records as streamlab
    cuts them (:func:`read_split`: Flink's text line format would also end a record at a bare CR, and keep
    a byte order mark): a checkpointed sequence of split numbers, each read by a Python function, so the
    splits of the files are read in parallel and a restored job goes on after the last split it
    committed. Kafka uses ``ByteArraySchema``, Kinesis ``ByteArraySchema`` before Flink 2 and the raw
    format's ``BYTES`` from Flink 2 on.
    """
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.common.serialization import ByteArraySchema

    if args.source == "files":
        from pyflink.datastream.connectors.number_seq import NumberSequenceSource

        splits = file_splits(args.input)
        input_format = args.input_format
        numbers = NumberSequenceSource(0, max(len(splits), 1) - 1)
        index = env.from_source(numbers, WatermarkStrategy.no_watermarks(), "files")

        def read(i):
            return read_split(splits[i], input_format) if i < len(splits) else ()

        return index.flat_map(read, output_type=Types.PRIMITIVE_ARRAY(Types.BYTE()))
    if args.source in ("kafka", "eventhubs"):
        from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource

        builder = KafkaSource.builder().set_group_id(PIPELINE_NAME).set_value_only_deserializer(
            ByteArraySchema()
        )
        builder = builder.set_starting_offsets(KafkaOffsetsInitializer.earliest())
        if args.source == "kafka":
            builder = builder.set_bootstrap_servers(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
            builder = builder.set_topics(os.environ["KAFKA_TOPIC"])
        else:
            namespace = os.environ["EVENTHUBS_NAMESPACE"]
            builder = builder.set_bootstrap_servers(f"{namespace}.servicebus.windows.net:9093")
            builder = builder.set_topics(os.environ["EVENTHUB_NAME"])
            builder = builder.set_property("security.protocol", "SASL_SSL")
            builder = builder.set_property("sasl.mechanism", "PLAIN")
            secret = os.environ["EVENTHUBS_CONNECTION_STRING"]
            builder = builder.set_property(
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="$ConnectionString" password="{secret}";',
            )
        return env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), args.source)
@KINESIS@

'''
"""The generated ``raw_stream(env, args)``: records as bytes from files, Kafka, Event Hubs or Kinesis (main.py
and datastream.py share it; :func:`raw_stream_code` fills in the Kinesis reader of the job's Flink)."""

_KINESIS_FLINK_1 = """    from pyflink.datastream.connectors.kinesis import FlinkKinesisConsumer

    props = {"aws.region": os.environ["AWS_REGION"], "flink.stream.initpos": "TRIM_HORIZON"}
    return env.add_source(FlinkKinesisConsumer(os.environ["KINESIS_STREAM"], ByteArraySchema(), props))
"""


_KINESIS_FLINK_2 = """    # Flink 2 removed SourceFunction, and with it the FlinkKinesisConsumer; PyFlink 2 wraps no
    # KinesisStreamsSource, so the records come through the Table API's 'kinesis' table (as job.sql's)
    from pyflink.table import StreamTableEnvironment

    t_env = StreamTableEnvironment.create(env)
    options = {
        "connector": "kinesis",
        "stream.arn": os.environ["KINESIS_STREAM_ARN"],
        "aws.region": os.environ["AWS_REGION"],
        "source.init.position": "TRIM_HORIZON",
        "format": "raw",
    }
    with_options = ", ".join(f"'{k}' = '{v}'" for k, v in options.items())
    t_env.execute_sql(f"CREATE TEMPORARY TABLE `kinesis_raw` (`data` BYTES) WITH ({with_options})")
    rows = t_env.to_data_stream(t_env.from_path("kinesis_raw"))
    return rows.map(lambda row: bytes(row[0]), output_type=Types.PRIMITIVE_ARRAY(Types.BYTE()))
"""


def raw_stream_code(flink_version: str) -> str:
    """:data:`RAW_STREAM` for a job written for ``flink_version``, with the Kinesis reader that Flink has:
    the ``FlinkKinesisConsumer`` before Flink 2 (stream ``KINESIS_STREAM``), the Table API's ``'kinesis'``
    table from Flink 2 on (stream ``KINESIS_STREAM_ARN``), which removed the consumer with
    ``SourceFunction``, so a Flink 2 connector jar has no such class.

    Examples
    --------
    >>> "FlinkKinesisConsumer(" in raw_stream_code("1.20"), "FlinkKinesisConsumer(" in raw_stream_code("2.3")
    (True, False)
    """
    kinesis = _KINESIS_FLINK_1 if _major_minor(flink_version)[0] < 2 else _KINESIS_FLINK_2
    return RAW_STREAM.replace("@KINESIS@", kinesis)


_MAIN_BODY = '''

KAFKA_MESSAGE_LIMIT = 1_000_000 - 1024
"""Largest dead letter sent to Kafka (``--sink kafka``): producers and brokers refuse records over 1 MB by
default, and a refused record would fail the job on every restart from its checkpoint."""


def parse_line(line, dead_letter_limit=None):
    """(row values, None) of a good record or (None, dead-letter values) of a bad one.

    With ``dead_letter_limit`` (bytes), a dead letter whose JSON is larger keeps the start of its raw record
    that fits, and its reason says so: the whole record's UTF-8 length and SHA-256 (``fit_message``).
    """
    try:
        row = read_record(line, FIELDS, REQUIRED, MAX_RECORD_BYTES)
    except BadRecordError as e:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        dead = {"raw": text, "reason": str(e), "step_id": PARSE_STEP}
        if dead_letter_limit is not None:
            text, cut = fit_message(dead, dead_letter_limit - 256, lambda r: json.dumps(r, separators=(",", ":")))
            if cut:
                fitted = json.loads(text)
                dead["raw"] = fitted["raw"]
                dead["reason"] = (
                    f"{fitted['reason']} [raw truncated: {fitted['raw_bytes']} bytes, sha256 {fitted['raw_sha256']}]"
                )
        return None, (dead["raw"], dead["reason"], PARSE_STEP)
    values = []
    for name, kind, _ in FIELDS:
        v = row[name]
        if kind == "timestamp" and v is not None:
            v = v // 1_000_000  # epoch milliseconds: Flink's TIMESTAMP_LTZ(3)
        elif kind in ("object", "json") and v is not None:
            v = dump_json(v)  # JSON text (NaN and infinities null), which the sinks nest as it is
        values.append(v)
    return values, None


def flink_types():
    from pyflink.common import Types

    by_kind = {
        "int64": Types.LONG(),
        "float64": Types.DOUBLE(),
        "bool": Types.BOOLEAN(),
        "timestamp": Types.LONG(),
    }
    names = [ms_column(n) if k == "timestamp" else n for n, k, _ in FIELDS]
    return Types.ROW_NAMED(names, [by_kind.get(k, Types.STRING()) for _, k, _ in FIELDS])


def ms_column(name):
    return f"__{name}_ms"


@RAW_STREAM@def build(env, t_env, raw, dead_letter_limit=None):
    """Register every stream as a view; returns the view name of each output by reference. Dead letters are
    cut to ``dead_letter_limit`` bytes of JSON (``parse_line``)."""
    from pyflink.common import Row, Types
    from pyflink.datastream import OutputTag, ProcessFunction
    from pyflink.table import DataTypes, Schema

    dead_columns = list(PARSE_DEAD_LETTER_COLUMNS)
    dead = OutputTag("dead_letter", Types.ROW_NAMED(dead_columns, [Types.STRING()] * len(dead_columns)))
    row_type = flink_types()

    class Parse(ProcessFunction):
        def process_element(self, line, ctx):
            values, bad = parse_line(line, dead_letter_limit)
            if bad is not None:
                yield dead, Row(*bad)
            else:
                yield Row(*values)

    parsed = raw.process(Parse(), output_type=row_type)
    sql_types = {"int64": DataTypes.BIGINT(), "float64": DataTypes.DOUBLE(), "bool": DataTypes.BOOLEAN()}
    schema = Schema.new_builder()
    for name, kind, _ in FIELDS:
        if kind == "timestamp":
            schema = schema.column(ms_column(name), DataTypes.BIGINT())
        else:
            schema = schema.column(name, sql_types.get(kind, DataTypes.STRING()))
    for name, kind, _ in FIELDS:
        if kind == "timestamp":
            schema = schema.column_by_expression(name, f"TO_TIMESTAMP_LTZ(`{ms_column(name)}`, 3)")
    schema = schema.column_by_expression("@PROC@", "PROCTIME()")
    schema = schema.watermark(TIME_FIELD, f"`{TIME_FIELD}` - {WATERMARK_DELAY}")
    t_env.create_temporary_view("__parsed", t_env.from_data_stream(parsed, schema.build()))
    fields = ", ".join(f"`{n}`" for n, _, _ in FIELDS)
    t_env.create_temporary_view(PARSE_STEP, t_env.sql_query(f"SELECT {fields}, `@PROC@` FROM `__parsed`"))
    t_env.create_temporary_view("__dead_letter", t_env.from_data_stream(parsed.get_side_output(dead)))
    for name, select in QUERIES:
        t_env.create_temporary_view(name, t_env.sql_query(select))
    return {ref: "__dead_letter" if ref == PARSE_STEP + ".dead_letter" else ref for ref in OUTPUTS}


def sink_options(sink, name, output):
    """WITH options of one sink table; secrets from the environment."""
    if sink == "kafka":
        return {
            "connector": "kafka",
            "topic": name,
            "properties.bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "format": "raw",  # the row's JSON text (JSON_LINES)
        }
    if sink == "jdbc":
        return {
            "connector": "jdbc",
            "url": os.environ["JDBC_URL"],
            "table-name": name,
            "username": os.environ["JDBC_USER"],
            "password": os.environ["JDBC_PASSWORD"],
        }
    return {
        "connector": "filesystem",
        "path": f"{output.rstrip('/')}/{name}",
        "format": "raw",  # the row's JSON text (JSON_LINES)
    }


def run(argv=None):
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
    parser.add_argument("--sink", choices=("files", "kafka", "jdbc"), default=@SINK@)
    parser.add_argument("--output", help="directory (or s3:// prefix) for --sink files")
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument(
        "--checkpoint-interval-ms",
        type=int,
        default=CHECKPOINT_INTERVAL_MS,
        help="checkpoints commit the file sinks' output (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.source is None:
        args.source = "files" if args.input else DEFAULT_SOURCE
    if args.source == "files" and not args.input:
        parser.error("--source files needs --input FILE [FILE ...]")
    if args.input_format != "lines" and args.source != "files":
        parser.error("--input_format needs --input FILES")
    if args.sink == "files" and not args.output:
        parser.error("--sink files needs --output DIR")
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    if args.parallelism:
        env.set_parallelism(args.parallelism)
    env.enable_checkpointing(args.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    t_env = StreamTableEnvironment.create(env)
    config = t_env.get_config()
    config.set("table.local-time-zone", "UTC")
    if args.source == "files":
        config.set("restart-strategy.type", "none")  # a backfill fails with its error, not restarts
    if STATE_TTL_MS is not None:
        config.set("table.exec.state.ttl", f"{STATE_TTL_MS} ms")
    views = build(env, t_env, raw_stream(env, args), KAFKA_MESSAGE_LIMIT if args.sink == "kafka" else None)
    statements = t_env.create_statement_set()
    for ref, name in OUTPUTS.items():
        columns = SINK_COLUMNS[name]
        ddl = ", ".join(f"`{c}` {t}" for c, t in columns)
        select = ", ".join(select_list(columns))
        if args.sink != "jdbc":  # one JSON text a row, as streamlab's JSON sinks write it
            ddl, select = "`line` STRING", JSON_LINES[name]
        options = ", ".join(f"'{k}' = '{v}'" for k, v in sink_options(args.sink, name, args.output).items())
        t_env.execute_sql(f"CREATE TEMPORARY TABLE `sink_{name}` ({ddl}) WITH ({options})")
        statements.add_insert_sql(f"INSERT INTO `sink_{name}` SELECT {select} FROM `{views[ref]}`")
    statements.execute().wait()


def select_list(columns):
    """The sink's columns, event times as TIMESTAMP(3) in UTC (what file, Kafka and JDBC sinks take)."""
    return [f"CAST(`{c}` AS TIMESTAMP(3))" if t == "TIMESTAMP(3)" else f"`{c}`" for c, t in columns]


if __name__ == "__main__":
    run()
'''


def _main_py(gen: _Generator, source: str, sink: str) -> str:
    p, parse = gen.p, gen.parse
    header = _MAIN_HEADER.format(
        name=p.name,
        version=gen.flink_version,
        steps=" -> ".join(p.steps),
        semantics=SEMANTICS.strip(),
    )
    fields = tuple((f.name, f.type, f.path) for f in parse.fields)
    req = tuple(dict.fromkeys(((parse.time,) if parse.time else ()) + parse.required))
    outputs = gen.outputs()
    sink_columns = {
        name: [(c.name, _sink_type(c)) for c in gen.sink_columns(ref)] for ref, name in outputs.items()
    }
    parts = [
        header,
        "# -- streamlab's record parser (streamlab._record), copied: this module must not import streamlab\n",
        _plan.record_source(),
        "\n# -- streamlab's dead letters cut to a size limit (streamlab._dead_letter.fit_message), copied\n",
        _plan.dead_letter_source(),
        "\n# -- streamlab's row encoding (streamlab._serde_values: dump_json), copied\n",
        _plan.serde_source(),
        "\n# -- the pipeline\n",
        f"PIPELINE_NAME = {p.name!r}",
        f"PARSE_STEP = {parse.step_id!r}",
        f"PARSE_DEAD_LETTER_COLUMNS = {PARSE_DEAD_LETTER_COLUMNS!r}  # streamlab._dead_letter",
        _plan.const("FIELDS", fields),
        _plan.const("REQUIRED", req),
        f"MAX_RECORD_BYTES = {parse.max_record_bytes!r}",
        f"TIME_FIELD = {parse.time!r}",
        f"WATERMARK_DELAY = {_interval(gen.delay_ns + 1_000_000)!r}  # delay + lateness + 1 ms (see below)",
        f"STATE_TTL_MS = {gen.state_ttl_ms!r}  # dedup: how long Flink keeps seen ids",
        "CHECKPOINT_INTERVAL_MS = 10_000",
        f"DEFAULT_SOURCE = {json.dumps(source)}  # what the deployment reads without --input",
        "# output reference -> sink name",
        _plan.const("OUTPUTS", outputs),
        "# sink name -> (column, Flink SQL type): the columns of a JDBC table",
        _plan.const("SINK_COLUMNS", sink_columns),
        "# sink name -> the SQL expression of a row's JSON text: what file and Kafka sinks write (raw format)",
        _plan.const("JSON_LINES", {name: _json_line(gen.sink_columns(ref)) for ref, name in outputs.items()}),
        "# the views, in order: (name, SELECT); the same queries as job.sql",
        "QUERIES = [",
    ]
    for name, select in gen.views:
        parts.append(f"    ({name!r}, {select!r}),")
    parts.append("]")
    body = _MAIN_BODY.replace("@PROC@", _PROC).replace("@SINK@", json.dumps(sink))
    body = body.replace("@RAW_STREAM@", raw_stream_code(gen.flink_version))
    parts.append(body)
    return "\n".join(parts)


_RUN_SQL = '''"""Run job.sql with PyFlink's TableEnvironment, statement by statement, as Flink's SQL client would.

pip's apache-flink has no SQL gateway, which ``sql-client.sh`` needs; this runs the same script on the
local mini-cluster (or, under ``flink run -py run_sql.py``, on the cluster). ``${NAME}`` placeholders
are filled from the environment, like ``envsubst``::

    INPUT_PATH=events.jsonl OUTPUT_PATH=out python run_sql.py job.sql
"""

from __future__ import annotations

import os
import sys


def statements(text):
    """The script's statements; an ``EXECUTE STATEMENT SET BEGIN ... END;`` block is one statement."""
    out, current, in_set = [], [], False
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        if line.strip().upper() == "EXECUTE STATEMENT SET BEGIN":
            in_set = True
        if line.rstrip().endswith(";") and (not in_set or line.strip().upper() == "END;"):
            out.append("\\n".join(current).rstrip().rstrip(";"))
            current, in_set = [], False
    return out


def run(path, parallelism=None):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    with open(path) as f:
        text = os.path.expandvars(f.read())
    code = "\\n".join(x for x in text.splitlines() if not x.lstrip().startswith("--"))
    missing = sorted({w.split("}")[0] for w in code.split("${")[1:] if "}" in w})
    if missing:
        sys.exit(f"unset environment variables: {', '.join(missing)}")
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    if parallelism:
        t_env.get_config().set("parallelism.default", str(parallelism))
    t_env.get_config().set("restart-strategy.type", "none")  # fail with the error instead of restarting
    result = None
    for statement in statements(text):
        head = statement.split(None, 1)[0].upper()
        if head == "SET":  # the SQL client's SET 'key' = 'value'; TableEnvironment takes it as config
            key, value = (x.strip().strip("'") for x in statement.split(None, 1)[1].split("=", 1))
            t_env.get_config().set(key, value)
        elif head == "EXECUTE":  # EXECUTE STATEMENT SET BEGIN INSERT ...; ... END
            inserts = statement.split("\\n")[1:-1]
            statement_set = t_env.create_statement_set()
            for insert in inserts:
                statement_set.add_insert_sql(insert.rstrip().rstrip(";"))
            result = statement_set.execute()
        else:
            result = t_env.execute_sql(statement)
    if result is not None:
        result.wait()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", nargs="?", default="job.sql")
    parser.add_argument("--parallelism", type=int, default=None)
    args = parser.parse_args()
    run(args.script, args.parallelism)
'''


# -- README, requirements, Terraform ------------------------------------------------------------------
def _runtime_text(gen: _Generator) -> str:
    """The README's sentence on main.tf's runtime (:func:`managed_flink_runtime`)."""
    runtime, why = managed_flink_runtime(gen.flink_version)
    text = f"runtime `{runtime}` ({why})."
    if not why.startswith("the job is written for"):
        text += (
            f" The job was written and verified for Flink {gen.flink_version}; `requirements.txt` pins the "
            "runtime's PyFlink, and its connector jars are builds for the same major version. To write the job "
            f'for the service\'s version itself, export with `to_flink(..., flink_version="{runtime.removeprefix("FLINK-").replace("_", ".")}")`.'
        )
    return text


def _readme_run(job: str, flink_version: str, source: str, sink: str, p: Pipeline | None = None) -> str:
    """The README's "Run" section: ``job`` on the local mini-cluster from files, then on a cluster (first,
    when ``p`` replays a file read whole or a DataFrame, what the job reads: :func:`replay_input_note`)."""
    note = (
        ""
        if p is None
        else replay_input_block(p, f"give that file to --input: python {job} --input events.jsonl")
    )
    return f"""## Run

{note}Locally on Flink's mini-cluster, from files of raw JSON lines:

```
python {job} --input events.jsonl --output out/
```

On a cluster (Flink {flink_version}), reading the deployed source (`{source}`):

```
flink run -py {job} -pyfs {job} -- --source {source} --sink {sink} --output s3://BUCKET/out/
```"""


def _kinesis_env(gen: _Generator, script: str) -> str:
    """The README's Kinesis stream variables: the PyFlink scripts read ``KINESIS_STREAM`` (a name) through
    the FlinkKinesisConsumer before Flink 2, and ``KINESIS_STREAM_ARN`` through the ``'kinesis'`` table, as
    job.sql does, from Flink 2 on (:func:`raw_stream_code`)."""
    if _major_minor(gen.flink_version)[0] >= 2:
        return "`KINESIS_STREAM_ARN`"
    return (
        f"`KINESIS_STREAM` for {script}, `KINESIS_STREAM_ARN` for job.sql" if script else "`KINESIS_STREAM`"
    )


def _job_sql_placeholders(gen: _Generator, source: str, sink: str) -> list[str]:
    """The environment variables job.sql's statements name (``${NAME}``), in order, comments left out."""
    text = "\n".join(x for x in _job_sql(gen, source, sink).splitlines() if not x.lstrip().startswith("--"))
    return list(dict.fromkeys(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)))


def _run_sql_command(gen: _Generator, source: str, sink: str) -> str:
    """README's command for run_sql.py: the file paths job.sql reads and writes on its command line (it
    wrote INPUT_PATH for a job reading Kafka, whose KAFKA_* placeholders then stopped run_sql.py)."""
    paths = {"INPUT_PATH": "events.jsonl", "OUTPUT_PATH": "out"}
    names = _job_sql_placeholders(gen, source, sink)
    return " ".join([*(f"{n}={paths[n]}" for n in names if n in paths), "python run_sql.py job.sql"])


def _run_sql_env(gen: _Generator, source: str, sink: str) -> str:
    others = [n for n in _job_sql_placeholders(gen, source, sink) if n not in ("INPUT_PATH", "OUTPUT_PATH")]
    return f", with {', '.join(f'`{n}`' for n in others)} set in the environment:" if others else ":"


def _readme(gen: _Generator, source: str, sink: str) -> str:
    p = gen.p
    jars = connector_jars(gen.flink_version, (source, sink))
    jar_lines = "\n".join(f"* `{j}`" for j in jars) or "* none: files need no connector jar"
    outputs = "\n".join(f"* `{name}`: `{ref}`" for ref, name in gen.outputs().items())
    from streamlab.export import flink_datastream as ds

    refusal = ds.datastream_refusal(p)
    if not ds.wants_datastream(p):
        datastream = "* no `datastream.py`: the pipeline has no late or duplicates output."
    elif refusal is None:
        datastream = (
            "* `datastream.py`: PyFlink DataStream job that also writes what SQL cannot: late rows and\n"
            "  duplicates, each as a side output (`OutputTag`) to its own sink, with streamlab's per-event\n"
            '  rules in keyed state. This is the job `verify(..., target="flink")` runs when it is here:\n'
            "  `python datastream.py --input events.jsonl --output out/`, on a cluster\n"
            "  `flink run -py datastream.py -- --source kafka --sink kafka`. Outputs: "
            + ", ".join(f"`{n}`" for n in ds.datastream_outputs(p).values())
            + "."
        )
    else:
        datastream = f"* no `datastream.py` (the DataStream job with late rows as side outputs): {refusal}."
    return f"""# Flink job `{p.name}` (exported from streamlab)

Steps: {" -> ".join(p.steps)}. Written for Apache Flink {gen.flink_version} (PyFlink from PyPI:
`pip install -r requirements.txt`, Java 11 or 17).

* `main.py`: PyFlink. Parses each record with streamlab's parser (a DataStream `ProcessFunction`,
  dead letters as a side output with streamlab's reasons), then runs the SQL queries below through a
  `StreamTableEnvironment`.
* `job.sql`: the same queries for Flink's SQL client; fields are read with `JSON_VALUE` (json and
  object fields with `JSON_QUERY`), so its dead
  letters have one coarse reason, and where Flink SQL cannot follow streamlab's parse it differs (JSON
  nested 513 to 1,000 levels deep is read, a byte order mark that starts a file is kept, a number no
  double holds inside a json or object field keeps its text: see Semantics). `run_sql.py` runs it
  with PyFlink where the SQL client is missing.
{datastream}

Outputs of main.py and job.sql (sink names):

{outputs}

{_readme_run("main.py", gen.flink_version, source, sink, p)}

With the SQL client (placeholders `${{NAME}}` are environment variables, filled by `envsubst`):

```
envsubst < job.sql > job.resolved.sql
sql-client.sh -f job.resolved.sql
```

PyPI's `apache-flink` has no SQL gateway, which `sql-client.sh` needs; `run_sql.py` runs the same
script statement by statement through a PyFlink `TableEnvironment` (as the SQL client would){_run_sql_env(gen, source, sink)}

```
{_run_sql_command(gen, source, sink)}
```

## Connectors

Sources: `--source files` (built in), `kafka` (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`),
`eventhubs` (Event Hubs' Kafka endpoint: `EVENTHUBS_NAMESPACE`, `EVENTHUB_NAME`,
`EVENTHUBS_CONNECTION_STRING`), `kinesis` ({_kinesis_env(gen, "main.py")}, `AWS_REGION`; credentials from the default AWS chain). Pub/Sub has no Flink SQL or PyFlink connector (Google's connector is Java
DataStream only): bridge it to Kafka, or use streamlab's Beam export on Dataflow.
Sinks: `--sink files` (JSON lines per output), `kafka` (one topic per output), `jdbc` (`JDBC_URL`,
`JDBC_USER`, `JDBC_PASSWORD`; one table per output). Secrets are read from the environment only.

Connector jars this deployment needs (put them in Flink's `lib/` or pass `--jarfile`):

{jar_lines}

**Verified here on files only.** The Kafka, Kinesis and JDBC connector jars cannot be fetched on the
machine that verifies exports, so `verify(target="flink")` runs `main.py` on Flink's local
mini-cluster with a file source and file sinks. The connector paths are generated and documented,
not executed.

## AWS Managed Service for Apache Flink

`main.tf` creates the application: {_runtime_text(gen)} Zip this directory with the connector jars under `lib/` and upload it
to the code bucket; secrets go to the application's environment properties by reference to AWS
Secrets Manager, never into the zip.

```
zip -r job.zip main.py lib/
terraform init && terraform apply -var code_bucket=BUCKET -var code_key=job.zip
```

## Semantics

{SEMANTICS}"""


def _readme_datastream(gen: _Generator, source: str, sink: str, why: PipelineConfigError) -> str:
    """README of a DataStream-only export: which step Flink SQL cannot say, how to run and deploy."""
    from streamlab.export import flink_datastream as ds

    p = gen.p
    jars = connector_jars(gen.flink_version, (source,) if sink == "jdbc" else (source, sink))
    jar_lines = "\n".join(f"* `{j}`" for j in jars) or "* none: files need no connector jar"
    outputs = "\n".join(f"* `{name}`: `{ref}`" for ref, name in ds.datastream_outputs(p).items())
    rows = [f"`{sid}` ({s.config.kind})" for sid, s in p.steps.items() if isinstance(s, OperatorStep)]
    carried = f" Row steps in keyed state: {', '.join(rows)}." if rows else ""
    return f"""# Flink job `{p.name}` (exported from streamlab): DataStream API only

Steps: {" -> ".join(p.steps)}. Written for Apache Flink {gen.flink_version} (PyFlink from PyPI:
`pip install -r requirements.txt`, Java 11 or 17).

**Why no Flink SQL job (`job.sql`, `main.py`)**: step `{why.step_id}` ({why.kind}): {why.problem}.
The whole pipeline runs in `datastream.py` instead: a PyFlink DataStream job that parses each record
with streamlab's parser and runs every step after it with streamlab's own per-record code (copied in,
not rewritten) in one `KeyedProcessFunction`, its state in Flink keyed state (checkpointed with the
job); each output, dead letters and late rows included, is a side output (`OutputTag`) with its own
sink.{carried}

Outputs (sink names):

{outputs}

{_readme_run("datastream.py", gen.flink_version, source, "kafka" if sink == "kafka" else "files", p)}

`requirements.txt` lists what the Python workers need (river at the version verified here: the newest
that installs next to `apache-flink`); ship it with `-pyreq requirements.txt`.

## Connectors

Sources: `--source files` (built in), `kafka` (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`),
`eventhubs` (Event Hubs' Kafka endpoint: `EVENTHUBS_NAMESPACE`, `EVENTHUB_NAME`,
`EVENTHUBS_CONNECTION_STRING`), `kinesis` ({_kinesis_env(gen, "")}, `AWS_REGION`; credentials from the default
AWS chain). Sinks: `--sink files` (JSON lines per output) or `kafka` (one topic per output); the
DataStream job has no JDBC sink. Secrets are read from the environment only.

Connector jars this deployment needs (put them in Flink's `lib/` or pass `--jarfile`):

{jar_lines}

**Verified here on files only.** The Kafka and Kinesis connector jars cannot be fetched on the machine
that verifies exports, so `verify(target="flink")` runs `datastream.py` on Flink's local mini-cluster
with a file source and file sinks. The connector paths are generated and documented, not executed.

## AWS Managed Service for Apache Flink

`main.tf` creates the application running `datastream.py`: {_runtime_text(gen)}

```
zip -r job.zip datastream.py requirements.txt lib/
terraform init && terraform apply -var code_bucket=BUCKET -var code_key=job.zip
```

## Semantics

{ds.DATASTREAM_SEMANTICS}"""


MANAGED_FLINK_RUNTIMES = ((1, 11), (1, 13), (1, 15), (1, 18), (1, 19), (1, 20), (2, 2))
"""The Flink versions AWS Managed Service for Apache Flink offers as runtimes (``FLINK-<major>_<minor>``)."""


def _major_minor(flink_version: str) -> tuple[int, int]:
    try:
        major, minor = (int(x) for x in flink_version.split(".")[:2])
    except ValueError:
        raise PipelineConfigError(
            "pipeline", "export", f"flink_version={flink_version!r}", "pass a version such as '1.20' or '2.3'"
        ) from None
    return major, minor


def managed_flink_runtime(flink_version: str) -> tuple[str, str]:
    """The Managed Service for Apache Flink runtime for a job written for ``flink_version``, and why.

    The same major version always (a job for Flink 2 uses 2.x APIs and 2.x connector jars, which do not
    load on 1.x): the version itself when the service offers it, else the newest offered below it,
    else the oldest above it.

    Raises
    ------
    PipelineConfigError
        When the service offers no runtime of that major version.

    Examples
    --------
    >>> managed_flink_runtime("2.3.0")[0], managed_flink_runtime("1.20")[0], managed_flink_runtime("1.17")[0]
    ('FLINK-2_2', 'FLINK-1_20', 'FLINK-1_15')
    >>> managed_flink_runtime("2.3")[1]
    'the newest Flink 2 runtime the service offers: the job is written for Flink 2.3'
    """
    major, minor = _major_minor(flink_version)
    same = [v for v in MANAGED_FLINK_RUNTIMES if v[0] == major]
    if not same:
        offered = ", ".join(f"{a}.{b}" for a, b in MANAGED_FLINK_RUNTIMES)
        raise PipelineConfigError(
            "pipeline",
            "export",
            f"flink_version={flink_version!r}: AWS Managed Service for Apache Flink has no Flink {major} runtime "
            f"(it offers {offered}), so main.tf cannot deploy the job",
            "export for a version the service offers, e.g. flink_version='2.2'",
        )
    below = [v for v in same if v <= (major, minor)]
    chosen = below[-1] if below else same[0]
    runtime = f"FLINK-{chosen[0]}_{chosen[1]}"
    if chosen == (major, minor):
        return runtime, f"the job is written for Flink {major}.{minor}"
    where = "newest" if below else "oldest"
    return (
        runtime,
        f"the {where} Flink {major} runtime the service offers: the job is written for Flink {major}.{minor}",
    )


def _terraform(gen: _Generator, source: str, sink: str, job: str = "main.py") -> str:
    name = _plan.ident(gen.p.name).replace("_", "-")
    runtime, why = managed_flink_runtime(gen.flink_version)
    return f"""# AWS Managed Service for Apache Flink application running {job}.
# No credentials here: Terraform uses the caller's AWS credentials; secrets stay in Secrets Manager.

terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }}
  }}
}}

variable "name" {{
  type    = string
  default = "{name}"
}}
variable "code_bucket" {{
  type        = string
  description = "S3 bucket holding job.zip ({job} and lib/*.jar)"
}}
variable "code_key" {{
  type    = string
  default = "job.zip"
}}
variable "service_role_arn" {{
  type        = string
  description = "IAM role the application assumes (read the source, write the sinks, read the secret)"
}}
variable "secret_arn" {{
  type        = string
  default     = ""
  description = "Secrets Manager secret with connection strings or passwords, read by reference"
}}
variable "parallelism" {{
  type    = number
  default = 1
}}

resource "aws_kinesisanalyticsv2_application" "job" {{
  name                   = var.name
  # {why}
  runtime_environment    = "{runtime}"
  service_execution_role = var.service_role_arn

  application_configuration {{
    application_code_configuration {{
      code_content_type = "ZIPFILE"
      code_content {{
        s3_content_location {{
          bucket_arn = "arn:aws:s3:::${{var.code_bucket}}"
          file_key   = var.code_key
        }}
      }}
    }}

    environment_properties {{
      property_group {{
        property_group_id = "kinesis.analytics.flink.run.options"
        property_map = {{
          python  = "{job}"
          jarfile = "lib/connectors.jar"
        }}
      }}
      property_group {{
        property_group_id = "streamlab.job"
        property_map = {{
          source     = "{source}"
          sink       = "{sink}"
          secret_arn = var.secret_arn
        }}
      }}
    }}

    flink_application_configuration {{
      checkpoint_configuration {{
        configuration_type = "CUSTOM"
        checkpointing_enabled = true
        checkpoint_interval   = 10000
      }}
      parallelism_configuration {{
        configuration_type   = "CUSTOM"
        parallelism          = var.parallelism
        auto_scaling_enabled = false
      }}
    }}
  }}
}}
"""


def to_flink(
    pipeline: Pipeline,
    path: str | Path,
    *,
    source: str = "kafka",
    sink: str = "files",
    flink_version: str = FLINK_VERSION,
) -> ExportedFiles:
    """Write a Flink SQL job and a PyFlink script for ``pipeline``, with their deployment files.

    Parameters
    ----------
    pipeline
        One source, one parse step, then dedup, key_by, select, tumbling/sliding/session windows
        (count, sum, mean, min, max, count_distinct), interval joins and patterns that map exactly
        to ``MATCH_RECOGNIZE`` become the SQL job. A pipeline with detector, feature, rule, drift or
        other pattern steps, or filters and ``with_columns`` expressions, becomes ``datastream.py``
        alone (the DataStream job, see ``streamlab.export.flink_datastream``). Steps neither can run
        are refused with a :class:`~streamlab.errors.PipelineConfigError` naming the step and the
        alternative.
    path
        Directory to write (created if missing).
    source
        What the deployed job reads: ``"kafka"``, ``"kinesis"``, ``"eventhubs"`` or ``"files"``.
        ``main.py`` also takes ``--input FILES`` whatever is chosen here.
    sink
        Where every output goes: ``"files"`` (JSON lines), ``"kafka"`` or ``"jdbc"``.
    flink_version
        The Flink the job will run on. Before 1.19 the ``SESSION`` window table function does not run on
        streams, so session windows use the group window (``GROUP BY SESSION(ts, gap)``) instead. The
        connector jars the README lists are builds for its major version (:func:`connector_jars`), and
        the PyFlink scripts read Kinesis as that Flink can (:func:`raw_stream_code`); ``requirements.txt``
        pins the PyFlink of the Managed Flink runtime ``main.tf`` deploys to, saying so where the service
        offers no runtime of ``flink_version`` itself (2.3: the job runs on ``FLINK-2_2``).

    Returns
    -------
    ExportedFiles
        ``main.py`` (the module), ``job.sql``, ``README.md``, ``requirements.txt`` and ``main.tf``; or
        ``datastream.py`` (the module), ``README.md``, ``requirements.txt`` and ``main.tf``.

    Examples
    --------
    >>> import tempfile
    >>> from streamlab import Pipeline, SessionWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]), name="s")
    >>> _ = p.parse().window(SessionWindow("5m"), key="user_id").agg(agg.count())
    >>> out = to_flink(p, tempfile.mkdtemp(), source="kinesis")
    >>> "SESSION(TABLE `parse` PARTITION BY `user_id`" in out.read("main.py")
    True
    >>> to_flink(p, tempfile.mkdtemp(), source="pubsub")
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: step 'pipeline' (export): source='pubsub' has no Flink SQL or PyFlink connector. Fix: use source='kafka', 'kinesis', 'eventhubs' or 'files' (bridge Pub/Sub to Kafka), or to_beam for Dataflow
    """
    _plan.check_pipeline(pipeline, "to_flink")
    if source not in SOURCES:
        raise PipelineConfigError(
            "pipeline",
            "export",
            f"source={source!r} has no Flink SQL or PyFlink connector",
            "use source='kafka', 'kinesis', 'eventhubs' or 'files' (bridge Pub/Sub to Kafka), or "
            "to_beam for Dataflow",
        )
    if sink not in SINKS:
        raise PipelineConfigError(
            "pipeline", "export", f"sink={sink!r}", "use sink='files', 'kafka' or 'jdbc'"
        )
    major, minor = _major_minor(flink_version)
    managed_flink_runtime(flink_version)  # refused before anything is written
    _refuse_what_flinks_river_cannot_run(pipeline)
    from streamlab.export import flink_datastream as ds

    gen = _Generator(pipeline, (major, minor))
    try:
        gen.check()
    except PipelineConfigError as sql_error:
        refusal = ds.datastream_refusal(pipeline)
        if refusal is None:  # the DataStream job says what SQL cannot
            return _datastream_only(gen, path, source, sink, flink_version, sql_error)
        for step in pipeline.steps.values():  # a row step's own reason names the fix
            if isinstance(step, OperatorStep) and (error := ds.row_step_error(step)) is not None:
                raise error from None
        raise PipelineConfigError(
            sql_error.step_id,
            sql_error.kind,
            f"{sql_error.problem}; nor can the DataStream job run the pipeline ({refusal})",
            sql_error.fix,
        ) from None
    gen.build()
    out = ExportedFiles.at(path, "main.py", "flink")
    write = out.write
    write("main.py", _main_py(gen, source, sink))
    write("job.sql", _job_sql(gen, source, sink))
    write("run_sql.py", _RUN_SQL)
    write("README.md", _readme(gen, source, sink))
    write("requirements.txt", _requirements(pipeline, flink_version))
    write("main.tf", _terraform(gen, source, sink))
    if ds.wants_datastream(pipeline) and ds.datastream_refusal(pipeline) is None:
        write("datastream.py", ds.datastream_py(pipeline, source, sink, flink_version))
    return out


def _datastream_only(
    gen: _Generator, path: str | Path, source: str, sink: str, flink_version: str, why: PipelineConfigError
) -> ExportedFiles:
    """The export of a pipeline with a step Flink SQL cannot say (``why``) that the DataStream job runs:
    ``datastream.py`` alone, with its README, requirements and Terraform."""
    from streamlab.export import flink_datastream as ds

    out = ExportedFiles.at(path, "datastream.py", "flink")
    out.write("datastream.py", ds.datastream_py(gen.p, source, sink, flink_version))
    out.write("README.md", _readme_datastream(gen, source, sink, why))
    out.write("requirements.txt", _requirements(gen.p, flink_version))
    out.write("main.tf", _terraform(gen, source, sink, job="datastream.py"))
    return out


def _requirements(p: Pipeline, flink_version: str) -> str:
    """requirements.txt: PyFlink, and river when the DataStream job runs a model, a quantile threshold or a
    drift detector (streamlab's features, rules and patterns need no more than the standard library).

    PyFlink is pinned to the Flink of the Managed Flink runtime main.tf deploys the job to (a PyFlink
    client of another version than its cluster fails the job), with a comment saying so where that is not
    the version the job is written for (``apache-flink`` 2.3 has no runtime; 2.2.1 pins the same
    dependencies, so river's pin installs beside both).
    """
    from streamlab.detectors import Detect, DriftDetector

    runtime, _ = managed_flink_runtime(flink_version)
    deployed = runtime.removeprefix("FLINK-").replace("_", ".")
    written = ".".join(flink_version.split(".")[:2])
    header = ""
    if deployed == written:
        pin = flink_version if flink_version.count(".") >= 2 else f"{flink_version}.*"
    else:
        pin = f"{deployed}.*"
        header = (
            f"# apache-flink {deployed}: the PyFlink of {runtime}, the Managed Flink runtime main.tf deploys this\n"
            f"# job to (the service offers no Flink {written}); the job is written for and verified on Flink\n"
            f"# {flink_version}. For a local run on that version: pip install apache-flink=={flink_version}\n"
        )
    river = any(
        isinstance(s, OperatorStep) and isinstance(s.config, (Detect, DriftDetector))
        for s in p.steps.values()
    )
    return header + f"apache-flink=={pin}\n" + (f"river=={FLINK_RIVER_VERSION}\n" if river else "")


def _refuse_what_flinks_river_cannot_run(p: Pipeline) -> None:
    """Refuse a drift step whose ADWIN :data:`FLINK_RIVER_VERSION` cannot run: with ``max_buckets=1`` its
    ADWIN divides by zero after 11 values, whatever they are, which would stop the deployed job (a newer
    river, where streamlab runs, takes it; ``DriftDetector`` refuses it where the local river fails)."""
    from streamlab.detectors import DriftDetector

    for step in p.steps.values():
        config = getattr(step, "config", None)
        if (
            isinstance(step, OperatorStep)
            and isinstance(config, DriftDetector)
            and config.method == "adwin"
            and config.params.get("max_buckets") == 1
            and not isinstance(config.params.get("max_buckets"), bool)
        ):
            raise PipelineConfigError(
                step.step_id,
                label_of(config),
                f"ADWIN with max_buckets=1 divides by zero in river {FLINK_RIVER_VERSION}, the river the Flink "
                "job runs (after 11 values, whatever they are), which would stop the deployed job",
                "pass e.g. params={'max_buckets': 2} (river's default is 5)",
            )


# -- the PyFlink environment and running the job --------------------------------------------------------
def flink_requirements() -> list[str]:
    """What the PyFlink environment (and a generated job's ``requirements.txt``) installs: PyFlink, and
    river for the detectors the DataStream job carries (:data:`FLINK_RIVER_VERSION`).

    Examples
    --------
    >>> flink_requirements()
    ['apache-flink==2.3.0', 'river==0.23.0']
    """
    return [f"apache-flink=={FLINK_VERSION}", f"river=={FLINK_RIVER_VERSION}"]


def flink_env_dir() -> Path:
    """Where the PyFlink virtual environment is cached: ``$STREAMLAB_CACHE/pyflink-<version>-<key>``.

    ``apache-flink`` pins apache-beam, pandas and pyarrow versions that conflict with streamlab's Beam
    export, so it lives in its own virtual environment, built once and reused. ``<key>`` is a digest of
    :func:`flink_requirements`: changing a requirement (river's version) builds a new environment.

    Examples
    --------
    >>> flink_env_dir().name.startswith("pyflink-2.3.0-")
    True
    """
    import hashlib

    from streamlab._checkpoint import cache_dir

    cache = cache_dir()
    key = hashlib.sha256("\n".join(flink_requirements()).encode()).hexdigest()[:10]
    return cache / f"pyflink-{FLINK_VERSION}-{key}"


FLINK_PYTHONS = ((3, 12), (3, 11), (3, 10))
"""The Pythons PyPI's ``apache-flink`` 2.3.0 has wheels for (of streamlab's), newest first: on 3.13 pip
tries its source release, which fails to build."""


def flink_base_python(versions: Sequence[tuple[int, int]] = FLINK_PYTHONS, *, timeout: float = 600) -> str:
    """The Python that creates PyFlink's virtual environment: this one when it is one of ``versions``,
    else the first ``pythonX.Y`` of ``versions`` found on ``PATH`` or under ``~/.pyenv/versions`` that
    runs and is that version, else the newest of ``versions`` installed by ``uv`` (the ``dev`` extra
    brings it; on a machine whose only Python is newer, as Ubuntu 26.04's 3.14). Raises RuntimeError
    saying what to install when there is none.

    Examples
    --------
    >>> import sys
    >>> flink_base_python([sys.version_info[:2]]) == sys.executable
    True
    """
    import glob
    import shutil
    import sys

    if tuple(sys.version_info[:2]) in versions:
        return sys.executable
    for major, minor in versions:
        name = f"python{major}.{minor}"
        pyenv = Path.home() / ".pyenv" / "versions" / f"{major}.{minor}*" / "bin" / name
        for candidate in [shutil.which(name) or "", *sorted(glob.glob(str(pyenv)), reverse=True)]:
            if runs_as(candidate, major, minor):
                return candidate
    wanted = ", ".join(f"{major}.{minor}" for major, minor in versions)
    newest = "{}.{}".format(*versions[0])
    found, why = uv_python(versions[0], timeout)
    if found is not None:
        return found
    raise RuntimeError(
        f"cannot install PyFlink {FLINK_VERSION}: it installs on Python {wanted} only, this is "
        f"{sys.version_info[0]}.{sys.version_info[1]}, none of those was found on PATH or under "
        f"~/.pyenv/versions, and {why}. Fix: install one (pyenv install {newest}, or uv python install "
        f"{newest}), or build PyFlink's environment yourself (python{newest} -m venv DIR && DIR/bin/pip "
        f"install {' '.join(flink_requirements())}) and set STREAMLAB_FLINK_PYTHON=DIR/bin/python"
    )


def ensure_flink_python(*, timeout: float = 900) -> str:
    """The Python of a virtual environment with PyFlink, built under :func:`flink_env_dir` if missing.

    ``$STREAMLAB_FLINK_PYTHON`` overrides it. Concurrent callers (the background build of
    ``scripts/test.sh`` and a test) wait for one another on a file lock, so it is built once. Raises
    RuntimeError with pip's output when it cannot be installed.

    Examples
    --------
    >>> ensure_flink_python  # doctest: +ELLIPSIS
    <function ensure_flink_python at ...>
    """
    import fcntl
    import os
    import shutil
    import subprocess
    import time

    override = os.environ.get("STREAMLAB_FLINK_PYTHON")
    if override:
        return override
    home = flink_env_dir()
    home.mkdir(parents=True, exist_ok=True)
    requirements = flink_requirements()
    venv = home / "venv"
    python = venv / "bin" / "python"
    ready = home / "ready"
    with open(home / "lock", "w") as lock:
        # another process (scripts/test.sh's background build) may be installing: wait for it, bounded
        deadline = time.monotonic() + 2 * timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another process has been installing PyFlink into {venv} for over "
                        f"{2 * timeout:.0f} s (scripts/test.sh logs it to build/pyflink-env.log)"
                    ) from None
                time.sleep(1)  # a lock held by another process: nothing to wait on but time
        wanted = "".join(f"{r}\n" for r in requirements)
        archive, failed = flink_class_archive(), _class_archive_failure()
        if ready.exists() and ready.read_text() == wanted and python.exists():
            if not archive.exists() and not failed.exists():
                _archive_flink_classes(python)  # an environment built before archives
            return str(python)
        shutil.rmtree(venv, ignore_errors=True)
        for old in (archive, failed):
            old.unlink(missing_ok=True)
        steps = [
            [flink_base_python(FLINK_PYTHONS), "-m", "venv", str(venv)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *requirements,
            ],
            [str(python), "-c", "import pyflink.table, pyflink.datastream, river"],
        ]
        for cmd in steps:
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(
                    f"cannot install PyFlink {FLINK_VERSION} into {venv}: {' '.join(cmd[:4])} did not "
                    f"finish in {timeout:g} s and was stopped. Fix: make PyPI reachable (or faster), "
                    f"call ensure_flink_python(timeout=...) with more time, or build it yourself "
                    f"(python3 -m venv DIR && DIR/bin/pip install {' '.join(requirements)}) and set "
                    "STREAMLAB_FLINK_PYTHON=DIR/bin/python"
                ) from None
            if done.returncode != 0:
                said = "\n".join(
                    x for x in (done.stdout + done.stderr).splitlines() if not x.startswith("WARNING")
                )
                raise RuntimeError(
                    f"cannot install PyFlink {FLINK_VERSION} into {venv}: {' '.join(cmd[:4])} failed "
                    f"(exit {done.returncode}):\n{said[-3000:]}\nFix: make PyPI "
                    f"reachable, or build it yourself (python3 -m venv DIR && DIR/bin/pip install "
                    f"{' '.join(requirements)}) and set STREAMLAB_FLINK_PYTHON=DIR/bin/python"
                )
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise RuntimeError(
                "PyFlink needs Java 11 or 17: install a JDK (apt-get install openjdk-17-jre-headless)"
            )
        ready.write_text(wanted)
        _archive_flink_classes(python)
    return str(python)


def flink_class_archive() -> Path:
    """PyFlink's class-data archive (see :mod:`streamlab._jvm`), beside its environment: the classes a
    short SQL job and a short DataStream job loaded, which the short runs of ``verify`` map instead of
    loading them from the jars; :func:`ensure_flink_python` writes it once (``classes.failed`` says why
    it could not).

    Examples
    --------
    >>> flink_class_archive().name
    'classes.jsa'
    """
    return flink_env_dir() / "classes.jsa"


def _class_archive_failure() -> Path:
    """Beside :func:`flink_class_archive`: why it could not be written (then it is not tried again)."""
    return flink_class_archive().with_name("classes.failed")


# Run in the PyFlink environment by _archive_flink_classes: both kinds of exported job in one JVM, which
# then exits by itself (System.exit) so that it writes its class-data archive; the gateway JVM is this
# process's child, reaped here. Python's own exit would stop it before the archive is written.
_ARCHIVE_JOBS = """
import os, runpy, sys, time
for job, out in (("main.py", "sql"), ("datastream.py", "datastream")):
    runpy.run_path(job)["run"](["--input", "in.jsonl", "--output", out, "--parallelism", "1"])
from pyflink.java_gateway import get_gateway
jvm = get_gateway().jvm
pid = jvm.java.lang.ProcessHandle.current().pid()
try:
    jvm.java.lang.System.exit(0)
except Exception:
    pass  # the connection ends with the JVM
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
    time.sleep(0.2)
"""


def _archive_flink_classes(python: Path, timeout: float = 300) -> None:
    """Write :func:`flink_class_archive` by one short run of a small exported SQL and DataStream job with
    ``-XX:ArchiveClassesAtExit`` (about 20 s, once per environment). Best effort: without it the jobs load
    their classes as usual, so a failure is written to :func:`_class_archive_failure` and not raised."""
    import os
    import subprocess
    import tempfile

    from streamlab import Pipeline, TumblingWindow, agg
    from streamlab._jvm import SHORT_RUN_OPTIONS
    from streamlab.testing import ListSource

    archive, failed = flink_class_archive(), _class_archive_failure()
    if any(c.isspace() for c in str(archive)):  # JVM_ARGS is split at white space: it could not be mapped
        failed.write_text(f"white space in the archive's path {archive}\n")
        return
    part = archive.with_name(archive.name + ".part")
    part.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="streamlab-flink-classes-") as name:
        work = Path(name)
        p = Pipeline(ListSource([b"{}"]), name="classes")
        p.parse({"timestamp": "timestamp", "k": "string", "n": "float64"}).window(
            TumblingWindow("1m"), key="k"
        ).agg(agg.count(), agg.sum("n"))
        to_flink(p, work, source="files")
        (work / "in.jsonl").write_text(
            '{"timestamp": 1, "k": "a", "n": 1.5}\n{"timestamp": 2, "k": "b", "n": 2}\n'
        )
        env = {
            **os.environ,
            "JVM_ARGS": f"{SHORT_RUN_OPTIONS} -XX:ArchiveClassesAtExit={part} -Xlog:cds*=off",
        }
        try:
            done = subprocess.run(
                [str(python), "-c", _ARCHIVE_JOBS, str(timeout / 5)],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            said = done.stderr[-2000:] if done.returncode else ""
        except subprocess.TimeoutExpired:
            said = f"the jobs did not end in {timeout:g} s"
    if said or not part.is_file():
        part.unlink(missing_ok=True)
        failed.write_text(said or "the jobs ended but wrote no archive\n")
        return
    os.replace(part, archive)


def read_outputs(output: Path, outputs: dict[str, str]) -> dict[str, Any]:
    """Rows the job wrote per output reference (finished JSON-lines part files of each sink).

    The lines are read as strict JSON, as a consumer of the job's output reads them: a ``NaN`` or
    ``Infinity`` literal (which Python's ``json`` would take) raises ValueError naming the file.
    """
    from streamlab.export.verify import rows_frame

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    frames = {}
    for ref, name in outputs.items():
        rows = []
        for part in sorted((output / name).glob("*")) if (output / name).exists() else []:
            if part.is_file() and not part.name.startswith("."):
                for x in part.read_text().splitlines():
                    if not x.strip():
                        continue
                    try:
                        rows.append(json.loads(x, parse_constant=refuse))
                    except ValueError as e:
                        raise ValueError(
                            f"the Flink job wrote a line that is not JSON to {part}: {e}: {x[:200]}"
                        ) from None
        frames[ref] = rows_frame(rows)
    return frames


def run_flink(
    files: ExportedFiles,
    lines: list[bytes],
    *,
    python: str | None = None,
    timeout: float = 600,
    job: str = "main.py",
) -> dict[str, Any]:
    """Run the exported ``main.py`` (or ``job="datastream.py"``) on Flink's local mini-cluster over
    ``lines`` written to a file.

    One job, parallelism 1, file source and file sinks; returns every output's rows by reference. Its
    JVM runs with the options of a short run (:mod:`streamlab._jvm`).
    The job runs in a directory of its own and is handed absolute paths only; it is stopped after
    ``timeout`` seconds with a TimeoutError saying so.

    Examples
    --------
    >>> run_flink  # doctest: +ELLIPSIS
    <function run_flink at ...>
    """
    import base64
    import os
    import subprocess
    import tempfile

    from streamlab._jvm import short_run_env

    python = python or ensure_flink_python()
    if os.sep in python:  # a path, not a name looked up on PATH: not relative to the job's cwd
        python = os.path.abspath(python)  # not resolved: a virtual environment's python is a symlink
    script = (files.directory / job).resolve()
    module = _load_constants(script)
    with tempfile.TemporaryDirectory(prefix="streamlab-flink-run-") as name:
        tmp = Path(name).resolve()
        from streamlab.export.verify import input_format

        sample = tmp / "sample.jsonl"
        framing = input_format(lines)
        if framing == "base64":  # a line break inside a record would split it in two: one record per line
            sample.write_bytes(b"".join(base64.b64encode(x) + b"\n" for x in lines))
        else:
            sample.write_bytes(b"".join(x + b"\n" for x in lines))
        out = tmp / "out"
        cmd = [python, str(script), "--input", str(sample), "--output", str(out), "--input_format", framing]
        cmd += ["--parallelism", "1", "--checkpoint-interval-ms", "500"]
        try:
            # a short local run: the client compiler, the serial collector, PyFlink's classes archived
            env = short_run_env(archive=flink_class_archive())
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp, env=env)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"verify(target='flink'): the Flink job {job} did not finish in {timeout:g} s and was "
                f"stopped ({' '.join(cmd)}). Fix: verify a smaller sample, or allow it longer with "
                "verify(..., timeout_s=...)"
            ) from None
        if done.returncode != 0:
            err = "\n".join(x for x in done.stderr.splitlines() if not x.lstrip().startswith("at "))
            raise RuntimeError(f"the Flink job failed (exit {done.returncode}):\n{err[-4000:]}")
        return read_outputs(out, module["OUTPUTS"])


def _load_constants(path: Path) -> dict[str, Any]:
    """The ``OUTPUTS`` constant of a generated main.py, read without importing PyFlink."""
    import ast

    tree = _pyast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "OUTPUTS":
            return {"OUTPUTS": ast.literal_eval(node.value)}
    raise ValueError(f"{path} has no OUTPUTS")


def _main(argv: list[str] | None = None) -> int:
    """``python -m streamlab.export.flink --prepare``: build the cached PyFlink environment."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m streamlab.export.flink")
    parser.add_argument("--prepare", action="store_true", help="build the PyFlink virtual environment")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 2
    t0 = time.monotonic()
    try:
        python = ensure_flink_python()
    except RuntimeError as e:
        print(f"PyFlink environment: FAILED after {time.monotonic() - t0:.0f} s: {e}")
        return 1
    print(f"PyFlink environment ready in {time.monotonic() - t0:.0f} s: {python}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


def comparable(
    pipeline: Pipeline, local: dict[str, Any], exported: dict[str, Any], lines: Sequence[bytes] | None = None
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Both runs' outputs without the rows that may rightly differ, and notes saying what was left out.

    The SQL job has one watermark, declared on its input table (Flink SQL cannot declare one on a view):
    it counts every parsed row. For a step that reads every parsed row (no dedup before it) that is
    what streamlab's per-event watermark of the step counts, and Flink emits it periodically, so it
    never runs ahead of streamlab's: a row Flink drops as late is late in streamlab too, while a row
    streamlab reports late may still be counted by Flink. So a tumbling or sliding window that got no
    late row in streamlab must be equal; windows that got late rows (by key and start) are left out of
    the comparison. A late row can merge only sessions of its own key, so the sessions of keys that got
    late rows are left out; joins with late rows can pair differently, so such outputs are not compared
    at all (``_late``).

    After a dedup that is not so: streamlab's watermark there counts only the rows the dedup kept,
    Flink's also the repeats it dropped, so a repeat later than every row kept before it runs Flink's
    ahead and a kept row on time in streamlab can be late in Flink. The windows, joins and patterns
    after a dedup where that happened on ``lines`` (the sample, in arrival order:
    :func:`watermark_ahead_after_dedup`), or after any dedup that dropped repeats when ``lines`` is not
    given, are not compared, and a note says why.

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    >>> t0, t1 = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-01 00:01", tz="UTC")
    >>> local = {
    ...     "window": pd.DataFrame({"event_type": ["a", "a"], "window_start": [t0, t1], "count": [1, 2]}),
    ...     "window.late": pd.DataFrame({"event_type": ["a"], "window_start": [t0]}),
    ... }
    >>> exported = {"window": pd.DataFrame({"event_type": ["a", "a"], "window_start": [t0, t1], "count": [2, 2]})}
    >>> kept, theirs, notes = comparable(p, local, exported)
    >>> kept["window"]["count"].tolist(), theirs["window"]["count"].tolist()
    ([2], [2])
    >>> notes
    ['window: 1 window(s) with late rows in streamlab left out (Flink may still count their late rows)']
    """
    import pandas as pd

    from streamlab.export._late import leave_out_late_windows

    local, exported = dict(local), dict(exported)
    if lines is not None:
        ahead = watermark_ahead_after_dedup(pipeline, lines)
    else:  # no sample: every dedup that dropped repeats may have run the watermark ahead
        ahead = {
            sid: (len(local[f"{sid}.duplicates"]), _after(pipeline, sid))
            for sid, step in pipeline.steps.items()
            if isinstance(step, DedupStep)
            and len(local.get(f"{sid}.duplicates", ()))
            and _after(pipeline, sid)
        }
    notes: list[str] = []
    for dedup, (n_ahead, after) in ahead.items():
        for sid in after:
            if any(n.startswith(f"{sid}: not compared:") for n in notes):
                continue  # after two dedups that both ran it ahead: said once
            for name in pipeline.steps[sid].outputs:
                ref = sid if name == "out" else f"{sid}.{name}"
                if ref in local or ref in exported:
                    local[ref], exported[ref] = pd.DataFrame(), pd.DataFrame()
            what = (
                "later than every row it had kept" if lines is not None else "(times not traced: no sample)"
            )
            notes.append(
                f"{sid}: not compared: {dedup!r} dropped {n_ahead} repeat(s) {what}; Flink SQL's "
                "watermark (on the input table) counts them, streamlab's after the dedup does not, so rows "
                "on time in streamlab may be late in Flink (datastream.py runs streamlab's watermark per step)"
            )
    skipped = {n.split(":", 1)[0] for n in notes}  # not compared at all: their late rows do not matter
    steps = [sid for sid in pipeline.steps if sid not in skipped]
    local, exported, late_notes = leave_out_late_windows(pipeline, local, exported, "Flink", steps)
    return local, exported, notes + late_notes


def _after(pipeline: Pipeline, dedup: str) -> list[str]:
    """The windows, joins and patterns downstream of ``dedup`` (they run on the SQL job's watermark)."""
    below = {dedup}
    for sid, step in pipeline.steps.items():  # inputs come before the steps that read them
        if any(ref.split(".", 1)[0] in below for ref in step.inputs):
            below.add(sid)
    return [
        sid
        for sid in below
        if isinstance(pipeline.steps[sid], (WindowStep, IntervalJoinStep))
        or _plan.is_pattern_step(pipeline.steps[sid])
    ]


def watermark_ahead_after_dedup(
    pipeline: Pipeline, lines: Sequence[bytes]
) -> dict[str, tuple[int, list[str]]]:
    """Dedup steps whose repeats ran the SQL job's watermark ahead of streamlab's after the dedup.

    The sample's records in arrival order through streamlab's own parse rule (``read_record``) and
    dedup rule (``Dedup``): a repeat later than every row the dedup kept before it, followed by a kept
    row, moves Flink SQL's watermark (over every row) ahead of the one streamlab's steps after the
    dedup run on (over the kept rows). Between the parse and the dedup the SQL job has only selects,
    key_by and other dedup steps, which are followed too. A step after two dedups is named under each
    that ran ahead (conservative: a row the first kept may be dropped by the second).

    Returns
    -------
    dict
        Dedup step id -> (the number of such repeats, the windows, joins and patterns after it), for
        the dedup steps with at least one that have such steps after them.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse({"event_id": "string", "timestamp": "timestamp"}).dedup().window(TumblingWindow("10s")).agg(agg.count())
    >>> def line(i, s):
    ...     return b'{"event_id": "e%d", "timestamp": "2024-01-01T00:00:%02dZ"}' % (i, s)
    >>> watermark_ahead_after_dedup(p, [line(1, 1), line(1, 50), line(2, 20)])  # e1 again, 49 s later
    {'dedup': (1, ['window'])}
    >>> watermark_ahead_after_dedup(p, [line(1, 1), line(2, 20), line(1, 20)])  # e1 again, not ahead
    {}
    """
    from streamlab._record import BadRecordError, Dedup, dedup_key, read_record, typed_id

    steps = pipeline.steps
    parse = next(s for s in steps.values() if isinstance(s, ParseStep))
    fields = tuple((f.name, f.type, f.path) for f in parse.fields)
    required = tuple(dict.fromkeys(((parse.time,) if parse.time else ()) + parse.required))
    parsed = []
    for raw in lines:
        try:
            parsed.append(read_record(raw, fields, required, parse.max_record_bytes))
        except BadRecordError:
            continue  # a dead letter: it reaches neither watermark
    # the rows of each stream as (arrival position, row) through the selects, key_by and dedup steps
    streams: dict[str, list[tuple[int, dict[str, Any]]]] = {parse.step_id: list(enumerate(parsed))}
    found: dict[str, tuple[int, list[str]]] = {}
    for sid, step in steps.items():
        rows = streams.get(step.inputs[0]) if step.inputs else None
        if rows is None:
            continue
        if isinstance(step, SelectStep):
            streams[sid] = [(i, {new: r.get(old) for old, new in step.columns}) for i, r in rows]
        elif isinstance(step, KeyByStep):
            streams[sid] = rows
        elif isinstance(step, DedupStep):
            rule = Dedup(step.ttl_ns, step.max_ids)
            time = step.time
            streams[sid] = [
                (i, r)
                for i, r in rows
                if not rule.is_duplicate(
                    typed_id(dedup_key(r.get(step.id_column))), r.get(time) if time else None
                )
            ]
            after = _after(pipeline, sid)
            if not after or parse.time is None:
                continue
            # Flink's watermark: every parsed row's time; streamlab's after the dedup: the kept rows'
            kept = {i for i, _ in streams[sid]}
            max_kept: int | None = None
            ahead = pending = 0
            for i, r in enumerate(parsed):
                t = r.get(parse.time)
                if i in kept:
                    ahead += pending  # a kept row after repeats ahead of it: it may be late in Flink
                    pending = 0
                    if t is not None:
                        max_kept = t if max_kept is None else max(max_kept, t)
                elif t is not None and (max_kept is None or t > max_kept):
                    pending += 1
            if ahead:
                found[sid] = (ahead, after)
    return found


def verify_flink(
    pipeline: Pipeline,
    lines: list[bytes],
    local: dict[str, Any],
    workdir: str | Path,
    *,
    flink_python: str | None = None,
    flink_job: str = "auto",
    timeout_s: float = 600.0,
    **options: Any,
) -> tuple[
    ExportedFiles, dict[str, Any], dict[str, Any], list[str], dict[str, tuple[list[str], set[str]]], int
]:
    """Export to Flink, run one generated job on the mini-cluster and say what to compare.

    ``flink_job``: ``"datastream"`` runs ``datastream.py`` (every output compared, late rows and
    duplicates included), ``"sql"`` runs ``main.py`` (its SQL queries; late rows are dropped, so the
    windows they touch are left out), ``"auto"`` the DataStream job when the export has one.
    ``timeout_s``: how long the job may run (:func:`run_flink`).

    Returns
    -------
    tuple
        ``(files, local, exported, notes, compared, unit_ns)``: ``local`` without the rows left out, the
        compared outputs with their columns and the resolution of the job's times (for
        :func:`streamlab.export.verify.compare`: microseconds for ``datastream.py``, milliseconds for
        ``main.py``).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> verify_flink(Pipeline(ListSource([b"{}"])), [], {}, ".", flink_job="storm")
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: step 'pipeline' (verify): flink_job='storm'. Fix: use flink_job='auto', 'datastream' or 'sql'
    """
    from streamlab.export import flink_datastream as ds
    from streamlab.export.verify import compared_outputs

    if flink_job not in ("auto", "datastream", "sql"):
        raise PipelineConfigError(
            "pipeline", "verify", f"flink_job={flink_job!r}", "use flink_job='auto', 'datastream' or 'sql'"
        )
    files = to_flink(pipeline, workdir, **options)
    has_datastream = "datastream.py" in files.files
    if flink_job == "sql" and "main.py" not in files.files:
        raise PipelineConfigError(
            "pipeline",
            "verify",
            f"the Flink export has no SQL job (main.py): {sql_refusal(pipeline)}",
            "verify the DataStream job (flink_job='auto' or 'datastream')",
        )
    if flink_job == "datastream" and not has_datastream:
        why = ds.datastream_refusal(pipeline) or "the pipeline has no late or duplicates output"
        raise PipelineConfigError(
            "pipeline",
            "verify",
            f"the Flink export has no datastream.py: {why}",
            "verify the SQL job (flink_job='sql'), or change the step named",
        )
    if has_datastream and flink_job != "sql":
        exported = run_flink(files, lines, python=flink_python, timeout=timeout_s, job="datastream.py")
        notes = [
            "Flink ran datastream.py (DataStream API: streamlab's per-event rules in keyed state, late rows "
            "and duplicates as side outputs) on its local mini-cluster with a file source (connector jars "
            "cannot be fetched here); every output compared, late rows included"
        ]
        rows = [sid for sid, s in pipeline.steps.items() if isinstance(s, OperatorStep)]
        if rows:
            notes.append(
                f"row steps {', '.join(rows)} ran streamlab's per-record state machines in Flink keyed state "
                f"(river {FLINK_RIVER_VERSION} in PyFlink's environment), records in the file's order"
            )
        if "main.py" not in files.files:
            notes.append(
                f"the export is datastream.py alone, Flink SQL cannot run the pipeline: {sql_refusal(pipeline)}"
            )
        if any(isinstance(s, IntervalJoinStep) for s in pipeline.steps.values()):
            from streamlab.export.verify import run_local

            # streamlab's interval join judges a batch's rows against the watermark before the batch;
            # the DataStream job judges each row as it arrives, which is streamlab's one record per batch
            local = run_local(pipeline, lines, batch_size=1)
            notes.append(
                "streamlab ran one record per batch (its interval join judges the rows of a batch against "
                "the watermark before it; the DataStream job each row as it arrives)"
            )
        from streamlab.export.verify import TIME_UNIT_NS, finer_time_notes

        compared = ds.datastream_compared(pipeline)
        notes += finer_time_notes(local, compared, "flink", TIME_UNIT_NS["flink"])
        return files, local, exported, notes, compared, TIME_UNIT_NS["flink"]
    from streamlab.export.verify import finer_time_notes

    exported = run_flink(files, lines, python=flink_python, timeout=timeout_s)
    local, exported, left_out = comparable(pipeline, local, exported, lines)
    compared = compared_outputs(pipeline, "flink")
    for sid, step in pipeline.steps.items():
        if _plan.is_pattern_step(step):  # MATCH_RECOGNIZE's matches
            key = step.config.key
            cols = [key, "pattern", "first_time", "last_time", "event_ids", "n_events"]
            compared[sid] = (cols, {"first_time", "last_time"})
    unchecked = []  # what the job wrote that is compared nowhere: said, so that `equal` claims nothing of it
    for ref in _plan.sink_outputs(pipeline):
        if ref in compared or ref not in exported or ref.endswith(".late") or ref.endswith(".duplicates"):
            continue
        step = pipeline.steps[ref.split(".")[0]]
        why = "verify compares the SQL job's window, join and pattern outputs and the parse's dead letters"
        if isinstance(step, DedupStep):
            why = (
                "the SQL job's dedup forgets an id by processing time (its state TTL), streamlab's by event "
                "time (ttl behind the newest event), so a repeat later than the ttl may be kept by one only"
            )
        unchecked.append(f"{ref}: not compared: {why}")
    # main.py holds milliseconds (TIMESTAMP_LTZ(3)): compared at the microsecond, an event time with
    # digits below the millisecond (a session's start, a join's times) differed where the job is right
    finer = finer_time_notes(local, compared, "flink", SQL_TIME_UNIT_NS, SQL_TIME_UNIT_WHY)
    notes = flink_notes(pipeline, local) + left_out + unchecked + finer
    return files, local, exported, notes, compared, SQL_TIME_UNIT_NS


SQL_TIME_UNIT_NS = 1_000_000
"""The resolution (ns) of the times the SQL jobs (``main.py``, ``job.sql``) hold and write."""

SQL_TIME_UNIT_WHY = "main.py's TIMESTAMP_LTZ(3), its JSON lines"
"""Why the SQL jobs' times are as coarse as :data:`SQL_TIME_UNIT_NS` says."""


def sql_refusal(pipeline: Pipeline) -> PipelineConfigError | None:
    """Why the pipeline has no Flink SQL job (the step SQL cannot say), or None when it has one.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().filter("user_id == 'u1'", step_id="mine")
    >>> sql_refusal(p).step_id
    'mine'
    """
    try:
        _Generator(pipeline).check()
    except PipelineConfigError as e:
        return e
    return None


def flink_notes(pipeline: Pipeline, local: dict[str, Any]) -> list[str]:
    """What ``verify(target="flink")`` did not compare, and why.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> flink_notes(Pipeline(ListSource([b"{}"])), {})[0]
    'Flink ran main.py on its local mini-cluster with a file source (connector jars cannot be fetched here)'
    """
    notes = [
        "Flink ran main.py on its local mini-cluster with a file source (connector jars cannot be fetched here)",
        "late rows are not compared: Flink SQL drops them (no late output); dedup's duplicates are dropped too",
    ]
    late = {ref: len(f) for ref, f in local.items() if ref.endswith(".late") and len(f)}
    if late:
        notes.append(
            f"streamlab reported late rows ({', '.join(f'{r}: {n}' for r, n in late.items())}): Flink "
            "drops rows behind its periodic watermark, which trails streamlab's, so the windows and "
            "joins they touch are left out of the comparison (a sample without late data compares all)"
        )
    return notes
