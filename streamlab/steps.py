"""Frozen steps: the nodes of a pipeline graph.

A step is pure configuration with a ``step_id``, the references of its inputs (``"parse"`` for a step's
main output, ``"parse.dead_letter"`` for a named one) and its parameters. ``build()`` creates the
runtime operator; ``params()`` gives the YAML-ready parameters that exporters translate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from streamlab._dead_letter import dead_letter_columns
from streamlab._dedup import DedupOperator
from streamlab._joins import EnrichOperator, IntervalJoinOperator
from streamlab._parse import FieldSpec, ParseOperator
from streamlab._sessions import SessionOperator
from streamlab._time import format_duration
from streamlab._transforms import FilterOperator, MapOperator, PassOperator, SelectOperator
from streamlab._windowing import PanedWindowOperator, WindowOperator
from streamlab.aggregators import Aggregator
from streamlab.clock import Clock
from streamlab.errors import PipelineConfigError
from streamlab.functions import UserFunction
from streamlab.io import Sink, SinkWriter, Source, Upstream
from streamlab.operators import Operator
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow, Window

__all__ = [
    "DedupStep",
    "EnrichStep",
    "FilterStep",
    "IntervalJoinStep",
    "KeyByStep",
    "MapStep",
    "OperatorStep",
    "ParseStep",
    "SelectStep",
    "SinkStep",
    "SourceStep",
    "Step",
    "UnionStep",
    "WindowStep",
]

Columns = tuple[str, ...] | None


@dataclass(frozen=True)
class Step:
    """Base of all steps.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> _ = p.parse()
    >>> step = p.steps['parse']
    >>> step.kind, step.inputs, step.output_names
    ('parse', ('source',), ('out', 'dead_letter'))
    """

    step_id: str
    inputs: tuple[str, ...]
    kind: ClassVar[str] = ""
    output_names: ClassVar[tuple[str, ...]] = ("out",)

    def build(self) -> Operator:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        """Columns of each output, when known, so later steps can be checked at construction."""
        return {"out": columns_in[0] if columns_in else None}


@dataclass(frozen=True)
class SourceStep(Step):
    """Where events enter the graph: wraps a :class:`~streamlab.io.Source`.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> Pipeline(ListSource([{'x': 1}])).steps['source'].kind
    'source'
    """

    source: Source = field(default=None)  # type: ignore[assignment]
    kind: ClassVar[str] = "source"

    def build(self) -> Operator:
        return PassOperator()

    def params(self) -> dict[str, Any]:
        return {"source": self.source.spec()}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        cols = getattr(self.source, "columns", None)
        return {"out": tuple(cols) if cols else None}


@dataclass(frozen=True)
class ParseStep(Step):
    """Raw JSON records to typed columns; bad records to ``dead_letter`` with the reason.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> _ = p.parse({'timestamp': 'timestamp', 'n': 'int64'})
    >>> p.steps['parse'].params()['schema']
    {'timestamp': 'timestamp', 'n': 'int64'}
    """

    fields: tuple[FieldSpec, ...] = ()
    value_column: str = "value"
    time: str | None = "timestamp"
    required: tuple[str, ...] = ()
    max_record_bytes: int = 1_000_000
    kind: ClassVar[str] = "parse"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def build(self) -> Operator:
        req = tuple(dict.fromkeys(((self.time,) if self.time else ()) + self.required))
        return ParseOperator(self.step_id, list(self.fields), self.value_column, req, self.max_record_bytes)

    def params(self) -> dict[str, Any]:
        return {
            "schema": {f.name: f.describe() for f in self.fields},
            "value_column": self.value_column,
            "time": self.time,
            "required": list(self.required),
            "max_record_bytes": self.max_record_bytes,
        }

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        names = tuple(f.name for f in self.fields)
        extra = tuple(c for c in (columns_in[0] or ()) if c != self.value_column and c not in names)
        dl_extra = extra if columns_in[0] is not None else None
        return {
            "out": names + extra if columns_in[0] is not None else None,
            "dead_letter": dead_letter_columns(dl_extra, raw=True),
        }


@dataclass(frozen=True)
class FilterStep(Step):
    """Keep rows by a pandas expression, a batch function or a per-event function.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> _ = p.filter('x > 0')
    >>> p.steps['filter'].params()
    {'expr': 'x > 0'}
    """

    expr: str | None = None
    fn: UserFunction | None = None
    per_event: bool = False
    kind: ClassVar[str] = "filter"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def build(self) -> Operator:
        return FilterOperator(self.step_id, self.expr, self.fn, self.per_event)

    def params(self) -> dict[str, Any]:
        if self.expr is not None:
            return {"expr": self.expr}
        assert self.fn is not None
        return {"fn": self.fn.spec(), "per_event": self.per_event}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        return {"out": c, "dead_letter": dead_letter_columns(c)}


@dataclass(frozen=True)
class MapStep(Step):
    """Add columns from expressions, or transform rows with a batch or per-event function.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> _ = p.with_columns(y='x * 2')
    >>> p.steps['with_columns'].params()
    {'columns': {'y': 'x * 2'}}
    """

    fn: UserFunction | None = None
    per_event: bool = False
    columns: tuple[tuple[str, str], ...] = ()  # with_columns: (name, expression)
    declared: tuple[str, ...] | None = None  # output columns the user declared for a function
    kind: ClassVar[str] = "map"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def build(self) -> Operator:
        return MapOperator(self.step_id, self.fn, self.per_event, dict(self.columns) or None)

    def params(self) -> dict[str, Any]:
        if self.columns:
            return {"columns": dict(self.columns)}
        assert self.fn is not None
        p: dict[str, Any] = {"fn": self.fn.spec(), "per_event": self.per_event}
        if self.declared is not None:
            p["output_columns"] = list(self.declared)
        return p

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        if self.columns:
            out: Columns = None if c is None else tuple(dict.fromkeys(c + tuple(n for n, _ in self.columns)))
        else:
            out = self.declared
        return {"out": out, "dead_letter": dead_letter_columns(c)}


@dataclass(frozen=True)
class SelectStep(Step):
    """Keep and rename columns.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> p.select(y='x').columns
    ('y',)
    """

    columns: tuple[tuple[str, str], ...] = ()  # (input name, output name)
    kind: ClassVar[str] = "select"

    def build(self) -> Operator:
        return SelectOperator(dict(self.columns))

    def params(self) -> dict[str, Any]:
        return {"columns": dict(self.columns)}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        return {"out": tuple(o for _, o in self.columns)}


@dataclass(frozen=True)
class DedupStep(Step):
    """Drop repeated event ids (bounded by ``ttl`` of event time and ``max_ids``).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'event_id': 'a', 'timestamp': 0}]))
    >>> _ = p.dedup(ttl='10m')
    >>> p.steps['dedup'].params()['ttl']
    '10m'
    """

    id_column: str = "event_id"
    time: str | None = "timestamp"
    ttl_ns: int | None = None
    max_ids: int = 1_000_000
    kind: ClassVar[str] = "dedup"
    output_names: ClassVar[tuple[str, ...]] = ("out", "duplicates")

    def __post_init__(self) -> None:
        # checked here, not in Stream.dedup only, so that a step built directly (or read back) is checked too
        if self.ttl_ns is not None:
            if self.ttl_ns <= 0:
                raise PipelineConfigError(
                    self.step_id,
                    "dedup",
                    f"ttl={format_duration(self.ttl_ns)!r} is not positive, so no id would be remembered",
                    "pass a positive duration such as ttl='1h', or ttl=None (bounded by max_ids only)",
                )
            if self.time is None:
                raise PipelineConfigError(
                    self.step_id,
                    "dedup",
                    "ttl needs an event-time column, and the step has none",
                    "pass time='<column>' or ttl=None (bounded by max_ids only)",
                )
        if isinstance(self.max_ids, bool) or not isinstance(self.max_ids, int) or self.max_ids <= 0:
            raise PipelineConfigError(
                self.step_id,
                "dedup",
                f"max_ids={self.max_ids!r} must be a positive integer",
                "pass e.g. max_ids=1_000_000",
            )

    def build(self) -> Operator:
        return DedupOperator(self.step_id, self.id_column, self.time, self.ttl_ns, self.max_ids)

    def params(self) -> dict[str, Any]:
        return {
            "id": self.id_column,
            "time": self.time,
            "ttl": format_duration(self.ttl_ns) if self.ttl_ns is not None else None,
            "max_ids": self.max_ids,
        }

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        return {"out": columns_in[0], "duplicates": columns_in[0]}


@dataclass(frozen=True)
class KeyByStep(Step):
    """Declare the key that later keyed steps use by default.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> Pipeline(ListSource([{'user_id': 'u'}])).key_by('user_id').keys
    ('user_id',)
    """

    keys: tuple[str, ...] = ()
    kind: ClassVar[str] = "key_by"

    def __post_init__(self) -> None:
        if not self.keys or not all(isinstance(k, str) and k for k in self.keys):
            raise PipelineConfigError(
                self.step_id,
                "key_by",
                f"keys={self.keys!r}: no key column given",
                "pass e.g. key_by('user_id')",
            )

    def build(self) -> Operator:
        return PassOperator()

    def params(self) -> dict[str, Any]:
        return {"keys": list(self.keys)}


@dataclass(frozen=True)
class UnionStep(Step):
    """Merge several streams into one.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> p.stream.union(p.stream).step_id
    'union'
    """

    kind: ClassVar[str] = "union"

    def build(self) -> Operator:
        return PassOperator()

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        if any(c is None for c in columns_in):
            return {"out": None}
        return {"out": tuple(dict.fromkeys(c for cols in columns_in for c in cols or ()))}


@dataclass(frozen=True)
class WindowStep(Step):
    """Event-time windows per key with aggregators, watermark delay and allowed lateness.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'timestamp': 0}]))
    >>> _ = p.window(TumblingWindow('1m'), delay='5s').agg(agg.count())
    >>> p.steps['window'].params()['window'], p.steps['window'].params()['delay']
    ({'kind': 'tumbling', 'size': '1m'}, '5s')
    """

    window: Window = field(default=None)  # type: ignore[assignment]
    keys: tuple[str, ...] = ()
    aggs: tuple[Aggregator, ...] = ()
    time: str = "timestamp"
    delay_ns: int = 0
    lateness_ns: int = 0
    early: bool = False
    watermark_by: tuple[str, ...] = ()
    idle_timeout_ns: int | None = None
    kind: ClassVar[str] = "window"
    output_names: ClassVar[tuple[str, ...]] = ("out", "late", "dead_letter", "early")

    def build(self) -> Operator:
        if isinstance(self.window, SessionWindow):
            return SessionOperator(
                self.step_id,
                self.window,
                list(self.keys),
                list(self.aggs),
                self.time,
                self.delay_ns,
                self.lateness_ns,
                watermark_by=list(self.watermark_by),
                idle_timeout_ns=self.idle_timeout_ns,
            )
        assert isinstance(self.window, (TumblingWindow, SlidingWindow))
        paned = (
            isinstance(self.window, SlidingWindow)
            and self.window.size_ns % self.window.every_ns == 0
            and not self.early
        )
        return (PanedWindowOperator if paned else WindowOperator)(
            self.step_id,
            self.window,
            list(self.keys),
            list(self.aggs),
            self.time,
            self.delay_ns,
            self.lateness_ns,
            self.early,
            watermark_by=list(self.watermark_by),
            idle_timeout_ns=self.idle_timeout_ns,
        )

    def params(self) -> dict[str, Any]:
        return {
            "window": self.window.describe(),
            "key": list(self.keys),
            "aggregate": [a.describe() for a in self.aggs],
            "time": self.time,
            "delay": format_duration(self.delay_ns),
            "lateness": format_duration(self.lateness_ns),
            "early": self.early,
            "watermark_by": list(self.watermark_by),
            "idle_timeout": None if self.idle_timeout_ns is None else format_duration(self.idle_timeout_ns),
        }

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        results = (*self.keys, "window_start", "window_end", *(a.name for a in self.aggs))
        return {
            "out": results,
            "early": (*results, "is_final"),
            "late": (*c, "window_start", "window_end", "watermark") if c is not None else None,
            "dead_letter": dead_letter_columns(c),
        }


@dataclass(frozen=True)
class IntervalJoinStep(Step):
    """Join two streams on keys where the right event time is within ``[lower, upper]`` of the left.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'k': 1, 'timestamp': 0}]))
    >>> _ = p.stream.join_interval(p.stream, 'k', lower='-1m', upper='30s')
    >>> p.steps['join'].params()['lower'], p.steps['join'].params()['upper']
    ('-1m', '30s')
    """

    on: tuple[str, ...] = ()
    left_time: str = "timestamp"
    right_time: str = "timestamp"
    lower_ns: int = 0
    upper_ns: int = 0
    delay_ns: int = 0
    suffixes: tuple[str, str] = ("", "_right")
    kind: ClassVar[str] = "interval_join"
    output_names: ClassVar[tuple[str, ...]] = ("out", "late")

    def build(self) -> Operator:
        return IntervalJoinOperator(
            self.step_id,
            list(self.on),
            self.left_time,
            self.right_time,
            self.lower_ns,
            self.upper_ns,
            self.delay_ns,
            self.suffixes,
        )

    def params(self) -> dict[str, Any]:
        return {
            "on": list(self.on),
            "left_time": self.left_time,
            "right_time": self.right_time,
            "lower": format_duration(self.lower_ns)
            if self.lower_ns >= 0
            else "-" + format_duration(-self.lower_ns),
            "upper": format_duration(self.upper_ns)
            if self.upper_ns >= 0
            else "-" + format_duration(-self.upper_ns),
            "delay": format_duration(self.delay_ns),
            "suffixes": list(self.suffixes),
        }

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        left, right = columns_in
        if left is None or right is None:
            return {"out": None, "late": None}
        both = set(left) & set(right) - set(self.on)
        out = [c + self.suffixes[0] if c in both else c for c in left]
        out += [c + self.suffixes[1] if c in both else c for c in right if c not in self.on]
        return {"out": tuple(out), "late": None}


@dataclass(frozen=True)
class EnrichStep(Step):
    """Join each event with a table (DataFrame, file or DuckDB query).

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'k': 1}]))
    >>> p.enrich(pd.DataFrame({'k': [1], 'name': ['one']}), on='k').columns
    ('k', 'name')
    """

    table: pd.DataFrame = field(default=None, compare=False)  # type: ignore[assignment]
    table_ref: str | None = None  # where the table comes from, for YAML: a file path or "duckdb:PATH:QUERY"
    on: tuple[str, ...] = ()
    how: str = "left"
    kind: ClassVar[str] = "enrich"

    def build(self) -> Operator:
        return EnrichOperator(self.table, list(self.on), self.how)

    def params(self) -> dict[str, Any]:
        if self.table_ref is None:
            raise ValueError(
                f"step {self.step_id!r} (enrich): the table is an in-memory DataFrame, which YAML cannot hold; "
                "pass enrich(table='path/to/table.parquet' or a DuckDBTable(...)) to make the pipeline portable"
            )
        return {"table": self.table_ref, "on": list(self.on), "how": self.how}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        if c is None:
            return {"out": None}
        return {"out": tuple(dict.fromkeys(c + tuple(self.table.columns)))}


@dataclass(frozen=True)
class SinkStep(Step):
    """Where a stream leaves the graph: wraps a :class:`~streamlab.io.Sink`.

    Examples
    --------
    >>> from streamlab import Pipeline, ListSink
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> p.stream.to(ListSink()).step_id, p.steps['sink'].params()
    ('sink', {'sink': {'kind': 'list'}})
    """

    sink: Sink = field(default=None)  # type: ignore[assignment]
    #: what the writer learns about the stream written (set by ``Stream.to``; not part of the spec)
    upstream: Upstream = field(default=Upstream(), compare=False)
    kind: ClassVar[str] = "sink"
    output_names: ClassVar[tuple[str, ...]] = ()

    def build(self) -> Operator:
        return PassOperator()

    def open_writer(self, clock: Clock | None = None) -> SinkWriter:
        """The writer of one run: the sink opened for :attr:`upstream`."""
        return self.sink.open_for(self.upstream, clock)

    def params(self) -> dict[str, Any]:
        return {"sink": self.sink.spec()}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        return {}


@dataclass(frozen=True)
class OperatorStep(Step):
    """A step backed by any config object with ``build() -> Operator`` (detectors, features, patterns).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> from streamlab.detectors import DriftDetector
    >>> p = Pipeline(ListSource([{'score': 1.0, 'timestamp': 0}]))
    >>> _ = p.apply(DriftDetector(column='score'), step_id='drift')
    >>> p.steps['drift'].outputs
    ('out', 'drift')
    """

    config: Any = None
    kind: ClassVar[str] = "operator"
    output_names: ClassVar[tuple[str, ...]] = ("out",)

    def build(self) -> Operator:
        return self.config.build()  # type: ignore[no-any-return]

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(getattr(self.config, "output_names", ("out",)))

    def params(self) -> dict[str, Any]:
        describe = getattr(self.config, "describe", None)
        return {"config": describe() if describe else repr(self.config), "type": type(self.config).__name__}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        fn = getattr(self.config, "out_columns", None)
        if fn is not None:
            return fn(columns_in)  # type: ignore[no-any-return]
        return {name: None for name in self.outputs}
