"""The pipeline model: an inert graph of frozen steps, built with a fluent API.

``Pipeline(source)`` starts a graph; every method of :class:`Stream` adds one frozen step and returns a
new stream (never ``self``). Steps with several outputs return a stream that is their main output and
carries the others as attributes: ``.dead_letter`` after ``parse``, ``.late`` after a window.
The same graph is what the runtime executes, what ``to_yaml`` writes, what the diagram draws and what
the exporters translate.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import numbers
import os
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import pandas as pd

from streamlab import agg as agg_module
from streamlab._coltypes import (
    NOT_NUMERIC,
    aggregator_type_problem,
    declared_type,
    expression_type_problem,
    join_key_type_problem,
)
from streamlab._names import PIPELINE_NAME_FIX, pipeline_name_problem
from streamlab._spec_check import schema_fields
from streamlab._step_codecs import expressions_in
from streamlab._step_kinds import kinds, label_of, params_of
from streamlab._time import Duration, parse_duration
from streamlab.aggregators import Aggregator
from streamlab.clock import Clock
from streamlab.errors import PipelineConfigError, suggest
from streamlab.io import Sink, Source, Upstream, destinations_meet
from streamlab.steps import (
    EVENT_SCHEMA,
    MAX_RECORD_BYTES,
    Columns,
    DedupStep,
    EnrichStep,
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
    UnionStep,
    WindowStep,
    expr_columns,
    partition_columns,
    read_table,
)
from streamlab.windows import Window

if TYPE_CHECKING:
    from streamlab.runtime import RunHandle, RunResult

__all__ = ["EVENT_SCHEMA", "Pipeline", "Stream"]


class Pipeline:
    """A streaming pipeline: sources, steps and sinks as an inert graph.

    Parameters
    ----------
    source
        The first source; more can be added with :meth:`add_source`.
    name
        Used in metrics, thread names and exported code.
    time
        Default event-time column for windows, dedup and joins.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource, ListSink
    >>> events = [
    ...     {"event_type": "click", "timestamp": "2024-01-01T00:00:05Z"},
    ...     {"event_type": "click", "timestamp": "2024-01-01T00:00:50Z"},
    ...     {"event_type": "view", "timestamp": "2024-01-01T00:01:10Z"},
    ... ]
    >>> sink = ListSink()
    >>> p = Pipeline(ListSource(events))
    >>> counts = p.window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    >>> _ = counts.to(sink)
    >>> _ = p.run()
    >>> sink.frame()[["event_type", "count"]].values.tolist()
    [['click', 2], ['view', 1]]
    """

    def __init__(
        self, source: Source | None = None, *, name: str = "pipeline", time: str = "timestamp"
    ) -> None:
        problem = pipeline_name_problem(name)
        if problem is not None:
            raise PipelineConfigError(
                "pipeline", "pipeline", f"name={name!r} is not a name: it {problem}", PIPELINE_NAME_FIX
            )
        if not isinstance(time, str) or not time:
            raise PipelineConfigError(
                "pipeline",
                "pipeline",
                f"time={time!r} is not a column name",
                "name the event-time column, e.g. time='timestamp'",
            )
        self.name = name
        self.time = time
        self.steps: dict[str, Step] = {}
        self._columns: dict[str, Columns] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        self._main: Stream | None = None
        self._unfinished: dict[str, str] = {}  # window step ids still waiting for .agg(...)
        if source is not None:
            self._main = self.add_source(source)

    # -- building --------------------------------------------------------------------------------
    def add_source(self, source: Source, *, step_id: str | None = None) -> Stream:
        """Add a source and return its stream."""
        step = SourceStep(self._new_id(step_id, "source"), (), source=source)
        return self._add(step)

    @property
    def stream(self) -> Stream:
        """The stream of the first source."""
        if self._main is None:
            raise PipelineConfigError(
                "pipeline", "pipeline", "the pipeline has no source", "pass one: Pipeline(source)"
            )
        return self._main

    # -- building: the main stream's methods (see :class:`Stream`) -------------------------------------
    @property
    def step_id(self) -> str:
        """The main stream's ``step_id`` (see :attr:`Stream.step_id`)."""
        return self.stream.step_id

    @property
    def columns(self) -> Columns:
        """The main stream's ``columns`` (see :attr:`Stream.columns`)."""
        return self.stream.columns

    @property
    def keys(self) -> tuple[str, ...]:
        """The main stream's ``keys`` (see :attr:`Stream.keys`)."""
        return self.stream.keys

    def parse(
        self,
        schema: dict[str, Any] | None = None,
        *,
        format: str = "json",
        time: str | None = "timestamp",
        required: Iterable[str] = (),
        value_column: str = "value",
        max_record_bytes: int = MAX_RECORD_BYTES,
        step_id: str | None = None,
    ) -> ParsedStream:
        """``Stream.parse`` on the main stream (see :meth:`Stream.parse`)."""
        return self.stream.parse(
            schema,
            format=format,
            time=time,
            required=required,
            value_column=value_column,
            max_record_bytes=max_record_bytes,
            step_id=step_id,
        )

    def filter(self, expr: str, *, step_id: str | None = None) -> FallibleStream:
        """``Stream.filter`` on the main stream (see :meth:`Stream.filter`)."""
        return self.stream.filter(expr, step_id=step_id)

    def filter_many(self, fn: Callable[[pd.DataFrame], Any], *, step_id: str | None = None) -> FallibleStream:
        """``Stream.filter_many`` on the main stream (see :meth:`Stream.filter_many`)."""
        return self.stream.filter_many(fn, step_id=step_id)

    def filter_one(
        self, fn: Callable[[dict[str, Any]], bool], *, step_id: str | None = None
    ) -> FallibleStream:
        """``Stream.filter_one`` on the main stream (see :meth:`Stream.filter_one`)."""
        return self.stream.filter_one(fn, step_id=step_id)

    def map_many(
        self,
        fn: Callable[[pd.DataFrame], pd.DataFrame],
        *,
        columns: Iterable[str] | None = None,
        step_id: str | None = None,
    ) -> FallibleStream:
        """``Stream.map_many`` on the main stream (see :meth:`Stream.map_many`)."""
        return self.stream.map_many(fn, columns=columns, step_id=step_id)

    def map_one(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        columns: Iterable[str] | None = None,
        step_id: str | None = None,
    ) -> FallibleStream:
        """``Stream.map_one`` on the main stream (see :meth:`Stream.map_one`)."""
        return self.stream.map_one(fn, columns=columns, step_id=step_id)

    def with_columns(self, *, step_id: str | None = None, **exprs: str) -> FallibleStream:
        """``Stream.with_columns`` on the main stream (see :meth:`Stream.with_columns`)."""
        return self.stream.with_columns(step_id=step_id, **exprs)

    def select(
        self, *columns: str | list[str] | tuple[str, ...], step_id: str | None = None, **renames: str
    ) -> Stream:
        """``Stream.select`` on the main stream (see :meth:`Stream.select`)."""
        return self.stream.select(*columns, step_id=step_id, **renames)

    def dedup(
        self,
        id: str = "event_id",
        *,
        ttl: Duration | None = "1h",
        max_ids: int = 1_000_000,
        time: str | None = None,
        step_id: str | None = None,
    ) -> DedupedStream:
        """``Stream.dedup`` on the main stream (see :meth:`Stream.dedup`)."""
        return self.stream.dedup(id, ttl=ttl, max_ids=max_ids, time=time, step_id=step_id)

    def key_by(self, *keys: str, step_id: str | None = None) -> Stream:
        """``Stream.key_by`` on the main stream (see :meth:`Stream.key_by`)."""
        return self.stream.key_by(*keys, step_id=step_id)

    def union(self, *others: Stream, step_id: str | None = None) -> Stream:
        """``Stream.union`` on the main stream (see :meth:`Stream.union`)."""
        return self.stream.union(*others, step_id=step_id)

    def window(
        self,
        window: Window,
        key: str | Iterable[str] | None = None,
        *,
        time: str | None = None,
        delay: Duration = 0,
        lateness: Duration = 0,
        early: bool = False,
        watermark_by: str | Iterable[str] | None = "auto",
        idle_timeout: Duration | None = None,
        step_id: str | None = None,
    ) -> WindowBuilder:
        """``Stream.window`` on the main stream (see :meth:`Stream.window`)."""
        return self.stream.window(
            window,
            key,
            time=time,
            delay=delay,
            lateness=lateness,
            early=early,
            watermark_by=watermark_by,
            idle_timeout=idle_timeout,
            step_id=step_id,
        )

    def join_interval(
        self,
        other: Stream,
        on: str | Iterable[str],
        *,
        lower: Duration,
        upper: Duration,
        time: str | None = None,
        other_time: str | None = None,
        delay: Duration = 0,
        suffixes: tuple[str, str] = ("", "_right"),
        step_id: str | None = None,
    ) -> JoinedStream:
        """``Stream.join_interval`` on the main stream (see :meth:`Stream.join_interval`)."""
        return self.stream.join_interval(
            other,
            on,
            lower=lower,
            upper=upper,
            time=time,
            other_time=other_time,
            delay=delay,
            suffixes=suffixes,
            step_id=step_id,
        )

    def enrich(
        self,
        table: pd.DataFrame | str | Any,
        on: str | Iterable[str],
        *,
        how: str = "left",
        step_id: str | None = None,
    ) -> Stream:
        """``Stream.enrich`` on the main stream (see :meth:`Stream.enrich`)."""
        return self.stream.enrich(table, on, how=how, step_id=step_id)

    def apply(self, config: Any, *, step_id: str | None = None, kind: str | None = None) -> Stream:
        """``Stream.apply`` on the main stream (see :meth:`Stream.apply`)."""
        return self.stream.apply(config, step_id=step_id, kind=kind)

    def detect(
        self,
        detector: Any,
        features: Iterable[str],
        *,
        key: str | None = None,
        learn: str = "all",
        threshold: Any = None,
        max_keys: int = 10_000,
        key_ttl: Duration | None = "1h",
        time: str | None = None,
        step_id: str | None = None,
    ) -> OperatorStream:
        """``Stream.detect`` on the main stream (see :meth:`Stream.detect`)."""
        return self.stream.detect(
            detector,
            features,
            key=key,
            learn=learn,
            threshold=threshold,
            max_keys=max_keys,
            key_ttl=key_ttl,
            time=time,
            step_id=step_id,
        )

    def pattern(
        self,
        key: str,
        steps: Iterable[Any],
        *,
        within: Duration,
        delay: Duration = "0s",
        time: str | None = None,
        name: str = "pattern",
        id_column: str = "event_id",
        step_id: str | None = None,
    ) -> OperatorStream:
        """``Stream.pattern`` on the main stream (see :meth:`Stream.pattern`)."""
        return self.stream.pattern(
            key, steps, within=within, delay=delay, time=time, name=name, id_column=id_column, step_id=step_id
        )

    def to(self, sink: Sink, *, step_id: str | None = None) -> Stream:
        """``Stream.to`` on the main stream (see :meth:`Stream.to`)."""
        return self.stream.to(sink, step_id=step_id)

    def show(self, handle: RunHandle | None = None, **options: Any) -> Any:
        """``Stream.show`` on the main stream (see :meth:`Stream.show`)."""
        return self.stream.show(handle, **options)

    def _new_id(self, wanted: str | None, kind: str) -> str:
        if wanted is not None:
            if wanted in self.steps:
                raise PipelineConfigError(
                    wanted, kind, "this step_id is already used", "choose a unique step_id"
                )
            return wanted
        if kind not in self.steps:
            return kind
        i = 2
        while f"{kind}_{i}" in self.steps:
            i += 1
        return f"{kind}_{i}"

    def _check(self, step: Step) -> list[Columns]:
        """Check a step against the columns of its inputs (when known); returns those columns."""
        for ref in step.inputs:
            read = self.steps.get(ref)
            if isinstance(read, SinkStep):  # a sink passes nothing on: its reader would get no rows
                raise PipelineConfigError(
                    step.step_id,
                    label_of(step),
                    f"{ref!r} is a sink, which has no output to read",
                    f"read the stream that sink reads ({read.inputs[0]!r}): stream.to(a); stream.to(b), "
                    "not stream.to(a).to(b)",
                )
        ins = [self.columns_of(ref) for ref in step.inputs]
        problem = step.input_problem(ins)
        if problem is not None:
            raise PipelineConfigError(step.step_id, label_of(step), *problem)
        if isinstance(step, SinkStep):
            self._check_destination(step)
        if isinstance(step, OperatorStep) and getattr(step.config, "kind", None) == "detect":
            first = unread_detect(self, step.inputs[0])
            if first is not None:
                written = list(getattr(self.steps[first], "config", step.config).added_columns())
                saved = ", ".join(f"{first}_{c}='{c}'" for c in written if c != "detector")
                raise PipelineConfigError(
                    step.step_id,
                    label_of(step),
                    f"it would overwrite the columns {written} that step {first!r} (detect) wrote, which "
                    "nothing has read since: the first detector's scores and flags would be lost",
                    f"keep them under other names before this step, e.g. .with_columns({saved}), or run "
                    "the detectors on branches of the stream (s.detect(a, ...) and s.detect(b, ...))",
                )
        if isinstance(step, WindowStep):
            timed = step.idle_timeout_ns is not None and not step.watermark_by
            if timed and len(self.union_sources(step.inputs[0])) < 2:
                raise PipelineConfigError(
                    step.step_id,
                    step.kind,
                    "idle_timeout needs one watermark per source partition (or per source, after a "
                    "union of sources), and this window has one watermark for the whole stream (no "
                    "partition column found, one source)",
                    "pass watermark_by='<partition column>', or drop idle_timeout",
                )
            for a in step.aggs:  # the types declared upstream (parse, sources), which the step cannot see
                mismatch = aggregator_type_problem(self, step.inputs[0], a) if a.column is not None else None
                if mismatch:
                    raise PipelineConfigError(step.step_id, step.kind, *mismatch)
        for port, column in _event_time_columns(step):
            found = declared_type(self, step.inputs[port], column)
            if found is not None and found[0] == "bool":
                # every row failed the step at run time ("Cannot convert tz-naive timestamps")
                raise PipelineConfigError(
                    step.step_id,
                    label_of(step),
                    f"its event-time column {column!r} is bool (declared by step {found[1]!r}): true and "
                    "false are no times, so the step would fail on its first rows",
                    "name the column holding each event's time with time='<column>' (a timestamp, ISO "
                    "8601 text or epoch seconds/milliseconds)",
                )
        if isinstance(step, (EnrichStep, IntervalJoinStep)):
            mismatch = join_key_type_problem(self, step)
            if mismatch:
                raise PipelineConfigError(step.step_id, label_of(step), *mismatch)
        for what, expr, computed in _expressions(step):  # against the types declared upstream
            mismatch = expression_type_problem(self, step.inputs[0], expr, what, computed)
            if mismatch:
                raise PipelineConfigError(step.step_id, label_of(step), *mismatch)
        if isinstance(step, OperatorStep):
            for column in step.numeric_columns():
                found = declared_type(self, step.inputs[0], column)
                if found is not None and found[0] in NOT_NUMERIC:
                    raise PipelineConfigError(
                        step.step_id,
                        label_of(step),
                        f"{type(step.config).__name__} reads column {column!r} as numbers, but it is "
                        f"{found[0]} (declared by step {found[1]!r}): it would score nothing, or give NaN "
                        "or 0 for every row",
                        "pass a numeric column (int64, float64 or bool), or derive one first with "
                        ".with_columns(...)",
                    )
            for column in step.text_columns():
                found = declared_type(self, step.inputs[0], column)
                if found is not None and found[0] in ("int64", "float64", "bool"):
                    raise PipelineConfigError(
                        step.step_id,
                        label_of(step),
                        f"{type(step.config).__name__} compares column {column!r} with a text, but it is "
                        f"{found[0]} (declared by step {found[1]!r}): a number never equals or orders "
                        "with a text, so every row would get the same answer",
                        "compare it with a number (value=10, not value='10'; in YAML without quotes), or "
                        f"declare {column!r} as string in the schema of step {found[1]!r}",
                    )
        return ins

    def union_sources(self, ref: str) -> tuple[str, ...]:
        """The sources whose events reach stream ``ref`` through unions only (and one-input steps).

        Empty when a step with several inputs other than a union (a join, an enrichment) lies between:
        its output rows are not one source's. A window reading a union of several sources keeps one
        watermark per source.

        Examples
        --------
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline()
        >>> a = p.add_source(ListSource([]), step_id="a")
        >>> b = p.add_source(ListSource([]), step_id="b")
        >>> p.union_sources(a.union(b).filter("x > 0").step_id)
        ('a', 'b')
        """
        found: list[str] = []

        def walk(ref: str) -> bool:
            step = self.steps[ref.partition(".")[0]]
            if isinstance(step, SourceStep):
                found.append(step.step_id)
                return True
            if len(step.inputs) > 1 and step.kind != "union":
                return False
            return all(walk(r) for r in step.inputs)

        return tuple(dict.fromkeys(found)) if walk(ref) else ()

    def _check_destination(self, step: SinkStep) -> None:
        """Refuse a sink step writing where another sink step of the pipeline writes (the same file,
        directory or table): their writers would overwrite each other's files, or truncate them on resume."""
        mine = step.sink.destinations() if isinstance(step.sink, Sink) else ()
        for other in self.steps.values():
            if not isinstance(other, SinkStep) or not isinstance(other.sink, Sink):
                continue
            for a in mine:
                for b in other.sink.destinations():
                    if destinations_meet(a, b):
                        where = a[0] if a[1] is None else f"{a[0]} (table {a[1]!r})"
                        raise PipelineConfigError(
                            step.step_id,
                            label_of(step),
                            f"{step.sink!r} writes to {where}, where step {other.step_id!r} ({other.sink!r}) "
                            "writes too: the two writers would overwrite each other's files and rows would be lost",
                            "give each sink its own path or table, or write both streams with one sink: "
                            "first.union(second).to(...) instead of first.to(...) and second.to(...)",
                        )

    def add_step(self, step: Step) -> Stream:
        """Add a step built directly (not by a :class:`Stream` method): it is checked against its inputs
        as the methods' steps are, and its main output is returned.

        Examples
        --------
        >>> from streamlab.steps import FilterStep
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([{'x': 1}]))
        >>> p.add_step(FilterStep('big', ('source',), expr='x > 0'))
        Stream('big', columns=['x'])
        """
        if step.step_id in self.steps:
            raise PipelineConfigError(
                step.step_id, step.kind, "this step_id is already used", "choose a unique step_id"
            )
        for ref in step.inputs:
            sid, _, out = ref.partition(".")
            if sid not in self.steps or (out and out not in self.outputs_of(sid)):
                raise PipelineConfigError(
                    step.step_id,
                    step.kind,
                    f"input {ref!r} names no step output",
                    suggest(ref, list(self._columns), what="outputs"),
                )
        return self._add(step)

    def _add(
        self, step: Step, keys: tuple[str, ...] | None = None, cls: type[Stream] | None = None
    ) -> Stream:
        ins = self._check(step)
        step = step.bound(ins)
        outs = step.out_columns(ins)
        self.steps[step.step_id] = step
        for out, cols in outs.items():
            self._columns[step.step_id if out == "out" else f"{step.step_id}.{out}"] = cols
        if keys is None:
            keys = step.keys_out(self._keys.get(step.inputs[0], ()) if step.inputs else ())
        self._keys[step.step_id] = keys
        return (cls or Stream)(self, step.step_id)

    def columns_of(self, ref: str) -> Columns:
        """Known column names of a stream reference (``None`` when a user function hides them)."""
        return self._columns.get(ref)

    # -- introspection ---------------------------------------------------------------------------
    def outputs_of(self, step_id: str) -> tuple[str, ...]:
        return self.steps[step_id].outputs

    def consumers(self) -> dict[str, list[tuple[str, int]]]:
        """For each stream reference, the (step_id, input port) pairs reading it."""
        out: dict[str, list[tuple[str, int]]] = {}
        for step in self.steps.values():
            for port, ref in enumerate(step.inputs):
                out.setdefault(ref, []).append((step.step_id, port))
        return out

    def unattached_outputs(self) -> list[str]:
        """Outputs no step reads: the runtime collects them so nothing vanishes."""
        used = self.consumers()
        refs = []
        for sid, step in self.steps.items():
            if isinstance(step, SinkStep):
                continue
            for out in self.outputs_of(sid):
                ref = sid if out == "out" else f"{sid}.{out}"
                if ref not in used:
                    refs.append(ref)
        return refs

    def __repr__(self) -> str:
        """The pipeline's steps, each with what it is (its registered label) when that is not its id.

        Examples
        --------
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([b"{}"]), name="demo")
        >>> _ = p.parse().filter("event_type == 'click'", step_id="clicks")
        >>> p
        Pipeline('demo', steps=[source (ListSource), parse, clicks (filter)])
        """
        named = [sid if label_of(s) == sid else f"{sid} ({label_of(s)})" for sid, s in self.steps.items()]
        return f"Pipeline({self.name!r}, steps=[{', '.join(named)}])"

    # -- serialization and diagram ---------------------------------------------------------------------
    def check_complete(self) -> None:
        """Raise if a step was left unfinished (a ``window(...)`` without ``.agg(...)``).

        ``run()``, ``start()`` and ``to_yaml()`` call it, so a forgotten ``.agg(...)`` is not silently
        a pipeline without that window.

        Examples
        --------
        >>> from streamlab import TumblingWindow
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([{'timestamp': 0}]))
        >>> _ = p.window(TumblingWindow('1m'))
        >>> p.check_complete()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        streamlab.errors.PipelineConfigError: step 'window' (window): the window has no aggregators, ...
        """
        for sid in self._unfinished:
            raise PipelineConfigError(
                sid,
                "window",
                "the window has no aggregators, so it would compute nothing (.window(...) was not "
                "followed by .agg(...))",
                "finish it, e.g. .window(TumblingWindow('1m')).agg(agg.count())",
            )

    def to_dict(self) -> dict[str, Any]:
        self.check_complete()
        from streamlab.spec import pipeline_to_dict

        return pipeline_to_dict(self)

    def to_yaml(self, path: str | None = None) -> str:
        """The pipeline as a YAML spec (``streaming:`` with sources, processing, sinks)."""
        from streamlab.spec import pipeline_to_yaml

        return pipeline_to_yaml(self, path)

    @classmethod
    def from_yaml(cls, text_or_path: str, *, trust: bool = False) -> Pipeline:
        """Rebuild a pipeline from :meth:`to_yaml` output (text or a file path).

        Every problem of the spec is reported at once (``SpecError``); a spec holding code (function
        source, SQL other than a read-only SELECT) needs ``trust=True``. See
        :func:`streamlab.spec.pipeline_from_yaml`.
        """
        from streamlab.spec import pipeline_from_yaml

        return pipeline_from_yaml(text_or_path, trust=trust)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        from streamlab.spec import pipeline_to_mermaid

        return pipeline_to_mermaid(self)

    def _repr_html_(self) -> str:
        from streamlab.spec import pipeline_to_html

        return pipeline_to_html(self)

    # -- running ----------------------------------------------------------------------------------
    def run(self, **options: Any) -> RunResult:
        """Run to the end of input (bounded sources) or until interrupted; see :func:`streamlab.runtime.run`."""
        from streamlab.runtime import run

        self.check_complete()
        check_run_options(options)
        return run(self, **options)

    def start(self, **options: Any) -> RunHandle:
        """Run in the background; returns a handle with ``stop()``, ``pause()``, ``metrics`` (notebooks).

        A pipeline runs once at a time: starting (or running) it while a run of it is open raises
        :class:`~streamlab.errors.PipelineConfigError`; :attr:`running` gives that run's handle.
        """
        from streamlab.runtime import start

        self.check_complete()
        check_run_options(options)
        return start(self, **options)

    @property
    def running(self) -> RunHandle | None:
        """The handle of this pipeline's run in the background (:meth:`start`) while it is open, else None.

        For the run a lost handle still drives (a notebook cell that said ``handle = p.start()`` ran
        again): ``p.running.stop()``.

        Examples
        --------
        >>> from streamlab import ManualClock
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([{"x": 1}]))
        >>> handle = p.start(clock=ManualClock(0), paused=True)
        >>> p.running is handle
        True
        >>> _ = handle.stop()
        >>> p.running is None
        True
        """
        from streamlab.runtime._executor import running_executor

        ex = running_executor(self)
        return None if ex is None else ex.handle

    def head(
        self, n: int = 1_000, *, flush_windows: bool = True, timeout: Duration = "30s"
    ) -> dict[str, pd.DataFrame]:
        """Run the first ``n`` source events and return every output as a DataFrame, for a quick look.

        Nothing leaves the pipeline: sinks are left out (what they would get is returned under the
        reference they read), source positions are not committed, no checkpoint is read or written, and
        the replay runs on a :class:`~streamlab.clock.ManualClock`, so paced replays take no wall time.
        A running pipeline is left alone: a Kafka source is read by a throw-away consumer group from the
        start of each partition to its end (never by the pipeline's own group, whose members would lose
        partitions to the preview). Live sources are waited for at most ``timeout`` (wall time): what
        arrived by then is returned. With ``flush_windows`` the windows still open after ``n`` events
        are closed and included.

        Examples
        --------
        >>> from streamlab import Pipeline, TumblingWindow, agg
        >>> from streamlab.testing import ListSink, ListSource
        >>> events = [{"k": "a", "timestamp": f"2024-01-01T00:00:{s:02d}Z"} for s in range(0, 50, 5)]
        >>> p = Pipeline(ListSource(events))
        >>> _ = p.window(TumblingWindow("20s"), key="k").agg(agg.count()).to(ListSink())
        >>> out = p.head(6)
        >>> sorted(out), out["window"]["count"].tolist()
        (['window', 'window.dead_letter', 'window.early', 'window.late'], [4, 2])
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"head(n={n!r}): n must be a whole number of events, at least 1, e.g. head(100)")
        wait_s = parse_duration(timeout, what="head(timeout=...)") / 1e9
        from streamlab.clock import ManualClock
        from streamlab.profiling import sampling_source
        from streamlab.runtime import Executor

        preview = copy.copy(self)
        preview.steps = {
            sid: dataclasses.replace(st, source=sampling_source(st.source))
            if isinstance(st, SourceStep)
            else st
            for sid, st in self.steps.items()
            if not isinstance(st, SinkStep)
        }
        # a fresh start that neither reads nor writes a checkpoint (a run of this pipeline may hold it)
        ex = Executor(preview, clock=ManualClock(0), resume={"sources": {}, "operators": {}})
        from streamlab.runtime.result import Collector

        for sink in self.steps.values():  # what a sink would get, also where other steps read it too
            for ref in sink.inputs if isinstance(sink, SinkStep) else ():
                if ref not in ex.router.collect:
                    ex.router.collect[ref] = Collector(None, columns=self.columns_of(ref))
        ex.open()
        try:
            ex.limit = n
            deadline = time.monotonic() + wait_s
            while not ex.all_done() and ex.taken < n and time.monotonic() < deadline:
                if not ex.poll_once(ahead=False):
                    ex.wait_for_data()  # (instant on the manual clock: replays' pacing takes no time)
                    if ex.idle_live():
                        time.sleep(0.01)  # a live source with nothing yet: wait for it in wall time
            if flush_windows:
                ex.flush_operators()
            else:
                with ex.lock:
                    ex.deliver_pending()
            return ex.outputs()
        finally:
            ex.close()

    def to_beam(self, path: str, **options: Any) -> Any:
        """Write a standalone Apache Beam module for this pipeline (see ``streamlab.export``)."""
        from streamlab.export import to_beam

        return to_beam(self, path, **options)

    def to_lambda(self, path: str, **options: Any) -> Any:
        """Write an AWS Lambda handler for this pipeline (see ``streamlab.export``)."""
        from streamlab.export import to_lambda

        return to_lambda(self, path, **options)

    def to_flink(self, path: str, **options: Any) -> Any:
        """Write a Flink SQL job and PyFlink script for this pipeline (see ``streamlab.export.flink``)."""
        from streamlab.export.flink import to_flink

        return to_flink(self, path, **options)

    def to_spark(self, path: str, **options: Any) -> Any:
        """Write a PySpark Structured Streaming job for this pipeline (see ``streamlab.export``)."""
        from streamlab.export.spark import to_spark

        return to_spark(self, path, **options)


_C = TypeVar("_C")


def _expressions(step: Step) -> list[tuple[str, str, tuple[str, ...]]]:
    """The expressions ``step`` evaluates over its input rows: ``(what, expression, names the step
    computed before it)`` (a filter's, with_columns' in order, a rule's ``expr``, a pattern's ``where``)."""
    if isinstance(step, FilterStep) and step.expr is not None:
        return [(f"filter({step.expr!r})", step.expr, ())]
    if isinstance(step, MapStep):
        names = tuple(n for n, _ in step.columns)
        return [(f"with_columns({n}={e!r})", e, names[:i]) for i, (n, e) in enumerate(step.columns)]
    if isinstance(step, OperatorStep) and dataclasses.is_dataclass(step.config):
        name = type(step.config).__name__
        found = expressions_in(type(step.config), params_of(step.config))
        return [(f"{name}({path}={e!r})", e, ()) for path, e in found if isinstance(e, str)]
    return []


def _step_config(sid: str, kind: str, build: Callable[[], _C]) -> _C:
    """``build()`` (a step config built by a Stream method), its errors re-raised as
    :class:`PipelineConfigError` naming the step id: a config's own check names only its class (it has
    no step id yet), and a ``TypeError`` from an argument of the wrong kind (``features=3``,
    ``detector=None``) named neither the step nor a fix."""
    try:
        return build()
    except PipelineConfigError as e:
        raise PipelineConfigError(sid, e.kind, e.problem, e.fix) from None
    except (TypeError, ValueError) as e:
        text = str(e)
        where, sep, rest = text.partition(": ")
        if sep and " " not in where:  # "Detect: threshold must be ..."
            text = rest
        problem, sep, fix = text.rpartition("; ")
        if not sep:
            problem, fix = text, f"check the arguments against help(Stream.{kind})"
        raise PipelineConfigError(sid, kind, problem, fix) from None


def _step_duration(sid: str, kind: str, parameter: str, value: Duration) -> int:
    """``value`` read as a duration in nanoseconds; an unreadable one (text, a bool, a list, one too
    long for int64 nanoseconds) raises :class:`PipelineConfigError` naming the step and the parameter,
    as every other mistake in a step's arguments does (a bare ``ValueError`` or ``TypeError`` named
    neither the error class users catch nor a fix)."""
    try:
        return parse_duration(value, what=parameter)
    except (TypeError, ValueError) as e:
        problem, _, fix = str(e).partition(". Fix: ")
        raise PipelineConfigError(
            sid,
            kind,
            problem,
            fix
            or f"write {parameter} as a duration such as '10s', '5m' or '1h' (in Python also a "
            "datetime.timedelta or a number of seconds)",
        ) from None


def _step_names(sid: str, kind: str, parameter: str, value: object) -> tuple[str, ...]:
    """``value`` (a column name or an iterable of them) as a tuple of names; anything else (a number,
    None, a list holding a number) raises :class:`PipelineConfigError` naming the step and the
    parameter, not a ``TypeError`` about iterating an int."""
    names = (value,) if isinstance(value, str) else value
    if isinstance(names, Iterable) and not isinstance(names, (bytes, dict)):
        names = tuple(names)
        if all(isinstance(n, str) and n for n in names):
            return names
    raise PipelineConfigError(
        sid,
        kind,
        f"{parameter}={value!r} is not a column name or a list of column names",
        f"pass {parameter}='user_id' or {parameter}=['user_id', 'country']",
    )


def _step_stream(sid: str, kind: str, parameter: str, value: object) -> Stream:
    """``value`` if it is a :class:`Stream`; anything else raises :class:`PipelineConfigError`."""
    if isinstance(value, Stream):
        return value
    raise PipelineConfigError(
        sid,
        kind,
        f"{parameter} is {type(value).__name__} {value!r}, not a Stream",
        "pass a stream of this pipeline, e.g. p.stream or the result of another step (events.filter(...))",
    )


class Stream:
    """One output of one step, and the fluent API that adds steps after it.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'amount': 5.0}, {'amount': 50.0}]))
    >>> big = p.filter('amount > 10')
    >>> big
    Stream('filter', columns=['amount'])
    >>> big.dead_letter.ref
    'filter.dead_letter'
    """

    def __init__(self, pipeline: Pipeline, ref: str) -> None:
        self.pipeline = pipeline
        self.ref = ref

    if not TYPE_CHECKING:  # (for mypy a stream keeps only the attributes it has)

        def __getattr__(self, name: str) -> Any:
            """An output name this stream's step does not have (``dedup(...).late``) is an AttributeError
            that says which outputs the step has and how to read them, where Python's named only the class.

            Examples
            --------
            >>> from streamlab.testing import ListSource
            >>> Pipeline(ListSource([{'event_id': 'a'}])).dedup(ttl=None).late
            Traceback (most recent call last):
            ...
            AttributeError: step 'dedup' (dedup) has no output 'late'; its outputs: 'out' (the stream itself), 'duplicates' (read it as .duplicates)
            """
            _no_output(self, name)

    @property
    def step_id(self) -> str:
        return self.ref.split(".")[0]

    @property
    def columns(self) -> Columns:
        """Column names, when known at construction."""
        return self.pipeline.columns_of(self.ref)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.pipeline._keys.get(self.step_id, ())

    def _event_time(self) -> str:
        """The event-time column steps default to: the pipeline's ``time``, or, where the stream has no
        such column, the event-time field of the parse it comes from (``parse(time="t")``) if it still
        has that one. A window after ``parse(schema, time="t")`` then runs on ``t``, where it asked for
        ``time="t"`` again; a stream that has the pipeline's column keeps it.

        Examples
        --------
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([b"{}"]))
        >>> p.parse({"t": "timestamp", "x": "float64"}, time="t").filter("x > 0")._event_time()
        't'
        >>> p.parse({"timestamp": "timestamp", "t": "timestamp"}, time="t")._event_time()
        'timestamp'
        """
        time = self.pipeline.time
        columns = self.columns
        if columns is None or time in columns:
            return time
        step = self.pipeline.steps.get(self.step_id)
        while step is not None and not isinstance(step, ParseStep) and step.inputs:
            step = self.pipeline.steps.get(step.inputs[0].split(".")[0])
        if isinstance(step, ParseStep) and step.time is not None and step.time in columns:
            return step.time
        return time

    def __repr__(self) -> str:
        cols = f", columns={list(self.columns)}" if self.columns is not None else ""
        return f"Stream({self.ref!r}{cols})"

    def _sid(self, step_id: str | None, kind: str) -> str:
        return self.pipeline._new_id(step_id, kind)

    # -- steps -----------------------------------------------------------------------------------
    def parse(
        self,
        schema: dict[str, Any] | None = None,
        *,
        format: str = "json",
        time: str | None = "timestamp",
        required: Iterable[str] = (),
        value_column: str = "value",
        max_record_bytes: int = MAX_RECORD_BYTES,
        step_id: str | None = None,
    ) -> ParsedStream:
        """Parse raw JSON records into typed columns; bad records go to ``.dead_letter`` with the reason.

        Parameters
        ----------
        schema
            Output columns and their types (``string``, ``category``, ``int64``, ``float64``, ``bool``,
            ``timestamp``, ``object``, ``json``); ``{"type": ..., "path": "properties.amount"}`` reads a
            nested field: its path is dot-separated keys (one left empty, ``"properties..amount"``, is
            refused), or a list of keys, ``["properties", "user.id"]``, where a key holds a dot.
            Defaults to the product's event schema. ``object`` keeps a nested JSON object as
            a dict, ``json`` any JSON value (both take the slower per-record path).
        time
            Event-time field: required. ``timestamp`` fields take ISO-8601 text (without an offset:
            UTC) or epoch numbers: seconds, or milliseconds for values above 1e11 (exact: an integer
            in integer arithmetic, a float as the exact binary value it holds, to the nearest
            nanosecond); relative words such as ``"now"`` are dead letters (a replay would give other
            times).
        required
            Further fields that must be present and non-null.
        value_column
            Column holding the raw record (bytes or str).
        max_record_bytes
            Larger records are dead letters (a producer bug should not exhaust memory), as are records
            nested deeper than 512 levels or holding a number of more than 500 digits.

        Returns
        -------
        ParsedStream
            The parsed events; ``.dead_letter`` has ``raw``, ``reason``, ``step_id`` and the source's metadata.
        """
        sid = self._sid(step_id, "parse")
        if format != "json":
            raise PipelineConfigError(sid, "parse", f"unsupported format {format!r}", "use format='json'")
        step = ParseStep(
            sid,
            (self.ref,),
            fields=schema_fields(sid, dict(EVENT_SCHEMA) if schema is None else schema),
            value_column=value_column,
            time=time,
            required=tuple(required),
            max_record_bytes=max_record_bytes,
        )
        return self.pipeline._add(step, cls=ParsedStream)  # type: ignore[return-value]

    def filter(self, expr: str, *, step_id: str | None = None) -> FallibleStream:
        """Keep events for which a vectorized pandas expression holds, e.g. ``"amount > 100"``."""
        sid = self._sid(step_id, "filter")
        return self.pipeline._add(FilterStep(sid, (self.ref,), expr=expr), cls=FallibleStream)  # type: ignore[return-value]

    def filter_many(self, fn: Callable[[pd.DataFrame], Any], *, step_id: str | None = None) -> FallibleStream:
        """Keep rows where ``fn(batch)`` (a boolean array per batch) is true; errors go to dead letter."""
        sid = self._sid(step_id, "filter")
        step = FilterStep(sid, (self.ref,), fn=cast(Any, fn), per_event=False)
        return self.pipeline._add(step, cls=FallibleStream)  # type: ignore[return-value]

    def filter_one(
        self, fn: Callable[[dict[str, Any]], bool], *, step_id: str | None = None
    ) -> FallibleStream:
        """Keep events where ``fn(event_dict)`` is true (per-event Python: the slow path)."""
        sid = self._sid(step_id, "filter")
        step = FilterStep(sid, (self.ref,), fn=cast(Any, fn), per_event=True)
        return self.pipeline._add(step, cls=FallibleStream)  # type: ignore[return-value]

    def map_many(
        self,
        fn: Callable[[pd.DataFrame], pd.DataFrame],
        *,
        columns: Iterable[str] | None = None,
        step_id: str | None = None,
    ) -> FallibleStream:
        """Transform each batch with ``fn(batch) -> DataFrame``; declare ``columns`` to keep checks on."""
        sid = self._sid(step_id, "map")
        step = MapStep(
            sid,
            (self.ref,),
            fn=cast(Any, fn),  # the step holds it as a UserFunction
            per_event=False,
            declared=tuple(columns) if columns is not None else None,
        )
        return self.pipeline._add(step, cls=FallibleStream)  # type: ignore[return-value]

    def map_one(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        columns: Iterable[str] | None = None,
        step_id: str | None = None,
    ) -> FallibleStream:
        """Transform each event with ``fn(event_dict) -> dict`` (per-event Python: the slow path)."""
        sid = self._sid(step_id, "map")
        step = MapStep(
            sid,
            (self.ref,),
            fn=cast(Any, fn),  # the step holds it as a UserFunction
            per_event=True,
            declared=tuple(columns) if columns is not None else None,
        )
        return self.pipeline._add(step, cls=FallibleStream)  # type: ignore[return-value]

    def with_columns(self, *, step_id: str | None = None, **exprs: str) -> FallibleStream:
        """Add or replace columns from vectorized expressions: ``with_columns(total="price * qty")``."""
        sid = self._sid(step_id, "with_columns")
        step = MapStep(sid, (self.ref,), columns=tuple(exprs.items()))
        return self.pipeline._add(step, cls=FallibleStream)  # type: ignore[return-value]

    def select(
        self, *columns: str | list[str] | tuple[str, ...], step_id: str | None = None, **renames: str
    ) -> Stream:
        """Keep ``columns`` (and ``new_name="old_name"`` renames); a list of names is read as its names,
        as ``frame[["a", "b"]]`` is."""
        sid = self._sid(step_id, "select")
        names = [c for group in columns for c in (group if isinstance(group, (list, tuple)) else (group,))]
        pairs = [(c, c) for c in names] + [(old, new) for new, old in renames.items()]
        return self.pipeline._add(SelectStep(sid, (self.ref,), columns=tuple(pairs)))

    def dedup(
        self,
        id: str = "event_id",
        *,
        ttl: Duration | None = "1h",
        max_ids: int = 1_000_000,
        time: str | None = None,
        step_id: str | None = None,
    ) -> DedupedStream:
        """Drop repeated event ids; repeats go to ``.duplicates``.

        Memory is bounded twice: an id is remembered while the largest event time seen is within ``ttl``
        of its first occurrence, and at most ``max_ids`` ids are held (the oldest are forgotten first).
        """
        sid = self._sid(step_id, "dedup")
        time = self._event_time() if time is None else time
        ttl_ns = None if ttl is None else _step_duration(sid, "dedup", "ttl", ttl)
        # without a ttl the event time is not needed: a stream without that column still dedups
        cols = self.columns
        use_time = time if cols is None or time in cols or ttl_ns is not None else None
        step = DedupStep(sid, (self.ref,), id_column=id, time=use_time, ttl_ns=ttl_ns, max_ids=max_ids)
        return self.pipeline._add(step, cls=DedupedStream)  # type: ignore[return-value]

    def key_by(self, *keys: str, step_id: str | None = None) -> Stream:
        """Declare the key for later keyed steps: a ``window`` and a ``detect`` given no ``key`` use it
        (``detect``: one model per key; it takes one key column). ``dedup`` is by id over the whole
        stream, and features, rules and patterns name their key themselves."""
        sid = self._sid(step_id, "key_by")
        return self.pipeline._add(KeyByStep(sid, (self.ref,), keys=tuple(keys)))

    def union(self, *others: Stream, step_id: str | None = None) -> Stream:
        """Merge this stream with others (same pipeline) into one.

        Streams split from one stream (``s.filter(a).union(s.filter(b))``) merge back in arrival order:
        in each source batch the union waits for its inputs and passes their rows in the order the shared
        stream had them (a row on both sides: in the order of the inputs), so the steps after it (a
        dedup's first copy, ``first``/``last``, lateness, sessions, patterns) do not depend on the batch
        size. The order is kept through steps that keep or drop rows (filter, with_columns,
        ``map_one``, select, key_by, dedup, union; see ``Operator.process_rows``); a branch through
        another step (``map_many``, a window, a join, a detector) ends the order: the union then passes
        that batch's branches one after another, as they reach it. Rows of independent sources
        interleave as their sources' batches are read. Exported pipelines (Beam, Lambda, Flink, Spark)
        promise no order within a merged stream.

        Examples
        --------
        >>> from streamlab import ManualClock, Pipeline
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([{"x": 5}, {"x": 1}, {"x": 7}]))
        >>> big = p.stream.filter("x > 4")
        >>> _ = big.union(p.stream.filter("x <= 4").with_columns(small="x"), step_id="u")
        >>> p.run(clock=ManualClock(0))["u"]["x"].tolist()
        [5, 1, 7]
        """
        sid = self._sid(step_id, "union")
        for o in others:
            o = _step_stream(sid, "union", "other", o)
            if o.pipeline is not self.pipeline:
                raise PipelineConfigError(
                    sid, "union", "streams from another pipeline", "build both in one Pipeline"
                )
        return self.pipeline._add(UnionStep(sid, (self.ref, *(o.ref for o in others))))

    def window(
        self,
        window: Window,
        key: str | Iterable[str] | None = None,
        *,
        time: str | None = None,
        delay: Duration = 0,
        lateness: Duration = 0,
        early: bool = False,
        watermark_by: str | Iterable[str] | None = "auto",
        idle_timeout: Duration | None = None,
        step_id: str | None = None,
    ) -> WindowBuilder:
        """Group events into event-time windows per key; finish with ``.agg(...)``.

        Parameters
        ----------
        window
            :class:`TumblingWindow`, :class:`SlidingWindow` or :class:`SessionWindow`.
        key
            Key column(s); defaults to the stream's ``key_by`` key (or one global group).
        time
            Event-time column; defaults to the pipeline's ``time`` ("timestamp"), or, where the stream
            has no such column, to the event-time field its parse named (``parse(..., time="t")``).
        delay
            Allowed out-of-orderness: the watermark trails the largest event time by this much.
        lateness
            Allowed lateness: a window stays open this long after the watermark passes its end.
        early
            Also emit partial results of open windows after each batch on the ``.early`` output.
        watermark_by
            Column(s) naming the source partition of each event: each partition gets its own watermark
            and the step's watermark is the smallest, so a consumer reading one partition ahead of the
            others does not make their events late (as Flink and Kafka Streams do). ``"auto"`` uses
            Kafka's ``topic``/``partition`` or Kinesis' ``shard_id`` columns when the stream has them;
            ``None`` keeps one watermark for the whole stream. Without partition columns, a window
            reading a ``union`` of several sources keeps one watermark per source instead (a source
            that has ended holds nothing back). A partition (or source) that stops receiving events
            holds the watermark back until the end of input, unless ``idle_timeout`` is set.
        idle_timeout
            Processing time after which a partition (or a source of a union) without events stops
            holding the watermark back,
            e.g. ``"30s"`` (Flink's ``withIdleness``). Set it when some partitions of a topic may stay
            empty: with few keys, or more partitions than producers. When every partition is idle,
            those that had events last still hold it, so a pause of the whole stream moves nothing.
            When an idle partition has events again it counts again; those of its events that are
            behind the watermark go to ``.late``. Windows close on time also while no data arrives.
            ``None`` (default): a partition is waited for as long as the source is assigned it.
        """
        sid = self._sid(step_id, "window")
        if watermark_by is None:
            by: tuple[str, ...] = ()
        elif watermark_by == "auto":
            by = partition_columns(self.columns)
        else:
            by = _step_names(sid, "window", "watermark_by", watermark_by)
        settings = {
            "window": window,
            "keys": self.keys if key is None else _step_names(sid, "window", "key", key),
            "time": self._event_time() if time is None else time,
            "delay_ns": _step_duration(sid, "window", "delay", delay),
            "lateness_ns": _step_duration(sid, "window", "lateness", lateness),
            "early": early,
            "watermark_by": by,
            "idle_timeout_ns": None
            if idle_timeout is None
            else _step_duration(sid, "window", "idle_timeout", idle_timeout),
        }
        return WindowBuilder(self, sid, settings)

    def join_interval(
        self,
        other: Stream,
        on: str | Iterable[str],
        *,
        lower: Duration,
        upper: Duration,
        time: str | None = None,
        other_time: str | None = None,
        delay: Duration = 0,
        suffixes: tuple[str, str] = ("", "_right"),
        step_id: str | None = None,
    ) -> JoinedStream:
        """Inner-join with ``other`` on keys where ``other.time - self.time`` is within ``[lower, upper]``.

        A row whose key is missing (null, NaN) in any key column pairs with nothing, as in SQL. A row
        without event time goes to ``.late`` (with ``join_side``), as a late row: the join has no
        dead-letter output; filter such rows first (``filter("timestamp.notna()")``) to keep them apart."""
        sid = self._sid(step_id, "join")
        other = _step_stream(sid, "interval_join", "other", other)
        keys = _step_names(sid, "interval_join", "on", on)
        if other_time is None:  # the time given for both sides, or the other side's own event time
            other_time = other._event_time() if time is None else time
        time = self._event_time() if time is None else time
        lo = _step_duration(sid, "interval_join", "lower", lower)
        hi = _step_duration(sid, "interval_join", "upper", upper)
        if not (
            isinstance(suffixes, (tuple, list))
            and len(suffixes) == 2
            and all(isinstance(x, str) for x in suffixes)
        ):
            raise PipelineConfigError(
                sid,
                "interval_join",
                f"suffixes={suffixes!r} is not a pair of texts",
                "pass two suffixes, the left's and the right's, e.g. suffixes=('', '_right')",
            )
        step = IntervalJoinStep(
            sid,
            (self.ref, other.ref),
            on=keys,
            left_time=time,
            right_time=other_time,
            lower_ns=lo,
            upper_ns=hi,
            delay_ns=_step_duration(sid, "interval_join", "delay", delay),
            suffixes=(suffixes[0], suffixes[1]),
        )
        return self.pipeline._add(step, cls=JoinedStream)  # type: ignore[return-value]

    def enrich(
        self,
        table: pd.DataFrame | str | Any,
        on: str | Iterable[str],
        *,
        how: str = "left",
        step_id: str | None = None,
    ) -> Stream:
        """Join each event with a table: a DataFrame, a Parquet/CSV path, or ``DuckDBTable``.

        An event whose key is missing (null, NaN) in any key column matches no row of the table, as in
        SQL: ``how="left"`` keeps it with the table's columns missing, ``how="inner"`` drops it. The table
        holds one row per key (a lookup, as a Kafka Streams KTable or a Beam side input read as a dict):
        a table with a key on two rows is refused, as each matching event would become two rows."""
        sid = self._sid(step_id, "enrich")
        keys = (on,) if isinstance(on, str) else tuple(on)
        ref: str | None = None
        if isinstance(table, str):  # a path or "duckdb:PATH:QUERY": the step loads it
            ref, table = table, None
        elif not isinstance(table, pd.DataFrame) and hasattr(table, "load") and hasattr(table, "ref"):
            ref = str(table.ref)
            table = read_table(sid, ref, table.load)  # a DuckDBTable's missing database names the step
        step = EnrichStep(sid, (self.ref,), table=cast(Any, table), table_ref=ref, on=keys, how=how)
        return self.pipeline._add(step)

    def apply(self, config: Any, *, step_id: str | None = None, kind: str | None = None) -> Stream:
        """Add a step built from any config with ``build() -> Operator`` (detectors, features, patterns)."""
        sid = self._sid(step_id, kind or getattr(config, "kind", None) or type(config).__name__.lower())
        return self.pipeline._add(OperatorStep(sid, (self.ref,), config=config), cls=OperatorStream)

    def detect(
        self,
        detector: Any,
        features: Iterable[str],
        *,
        key: str | None = None,
        learn: str = "all",
        threshold: Any = None,
        max_keys: int = 10_000,
        key_ttl: Duration | None = "1h",
        time: str | None = None,
        step_id: str | None = None,
    ) -> OperatorStream:
        """Score each event with an online anomaly detector (river vocabulary), then learn from it.

        Adds ``score``, ``detector`` and, with a ``threshold`` filter, ``is_anomaly``; see
        :class:`streamlab.detectors.Detect` for the parameters. A second ``detect`` that would
        overwrite a first one's unread ``score``/``is_anomaly`` is refused: keep them under other
        names first (``.with_columns(first_score='score')``) or detect on branches of the stream.
        """
        from streamlab.detectors import Detect

        sid = self._sid(step_id, "detect")
        if not isinstance(features, (str, Iterable)):
            raise PipelineConfigError(
                sid,
                "detect",
                f"features={features!r} is not a column name or a list of column names",
                "pass e.g. features=['amount', 'count_10m']",
            )
        if key is None and self.keys:  # declared by key_by
            if len(self.keys) > 1:
                raise PipelineConfigError(
                    sid,
                    "detect",
                    f"the stream is keyed by {list(self.keys)} (key_by), and a detector keys by one column",
                    f"pass key='{self.keys[0]}' (or one column that combines them, made with with_columns)",
                )
            key = self.keys[0]
        cfg = _step_config(
            sid,
            "detect",
            lambda: Detect(
                detector,
                features=features if isinstance(features, str) else list(features),  # "amount": one column
                key=key,
                learn=learn,
                threshold=threshold,
                max_keys=max_keys,
                key_ttl=key_ttl,
                time=time or self._event_time(),
            ),
        )
        return self.apply(cfg, step_id=sid, kind="detect")  # type: ignore[return-value]

    def pattern(
        self,
        key: str,
        steps: Iterable[Any],
        *,
        within: Duration,
        delay: Duration = "0s",
        time: str | None = None,
        name: str = "pattern",
        id_column: str = "event_id",
        step_id: str | None = None,
    ) -> OperatorStream:
        """Detect a sequence of conditions per key within a time bound on event time (CEP).

        Returns one row per match; ``.late`` holds events older than the watermark. See
        :class:`streamlab.detectors.Pattern`.
        """
        from streamlab.detectors import Pattern

        sid = self._sid(step_id, "pattern")
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
            raise PipelineConfigError(
                sid,
                "pattern",
                f"steps={steps!r} is not a list of pattern steps",
                "pass e.g. [PatternStep('home', 'amount > 0'), PatternStep('abroad', 'amount > 0')]",
            )
        cfg = _step_config(
            sid,
            "pattern",
            lambda: Pattern(
                key=key,
                steps=list(steps),
                within=within,
                time=time or self._event_time(),
                delay=delay,
                name=name,
                id_column=id_column,
            ),
        )
        return self.apply(cfg, step_id=sid, kind="pattern")  # type: ignore[return-value]

    def to(self, sink: Sink, *, step_id: str | None = None) -> Stream:
        """Write this stream to a sink. Returns the sink step's reference."""
        sid = self._sid(step_id, "sink")
        declared = tuple(
            (c, typ[0]) for c in self.columns or () if (typ := declared_type(self.pipeline, self.ref, c))
        )
        keys, reshaped_by = window_rows(self.pipeline, self.ref)
        upstream = Upstream(
            window_keys=keys,
            window_reshaped_by=reshaped_by,
            json_columns=tuple(c for c, t in declared if t in ("json", "object")),
            declared=declared,
            repeats_ids=repeats_ids(self.pipeline, self.ref),
            columns=self.columns,
        )
        added = self.pipeline._add(SinkStep(sid, (self.ref,), sink=sink, upstream=upstream))
        columns = None if self.columns is None else list(self.columns)
        for note in sink.construction_warnings(columns, upstream) if isinstance(sink, Sink) else ():
            warnings.warn(f"step {sid!r}: {note}", UserWarning, stacklevel=2)
        return added

    # -- running (delegates) ---------------------------------------------------------------------------
    def run(self, **options: Any) -> RunResult:
        """Run the whole pipeline (see :meth:`Pipeline.run`)."""
        return self.pipeline.run(**options)

    def start(self, **options: Any) -> RunHandle:
        """Start the whole pipeline in the background (see :meth:`Pipeline.start`)."""
        return self.pipeline.start(**options)

    def show(self, handle: RunHandle | None = None, **options: Any) -> Any:
        """Start the pipeline (or follow ``handle``, or the run already started) and show this stream
        live: a chart or a table.

        See :func:`streamlab.widgets.show` (window results as a chart per key, scored events as an
        anomaly chart, anything else as a table of the newest rows). Returns the widget; in a notebook
        it displays itself.
        """
        from streamlab.widgets import show

        if handle is None:  # the pipeline's open run (another stream shown already started it), or a new one
            handle = self.pipeline.running or self.pipeline.start()
        return show(handle, self.ref, **options)


def _origins(pipeline: Pipeline, ref: str) -> set[str]:
    """The sources a stream's events come from."""
    step = pipeline.steps[ref.partition(".")[0]]
    if isinstance(step, SourceStep):
        return {step.step_id}
    return set().union(*(_origins(pipeline, r) for r in step.inputs))


_WINDOW_BOUNDS = ("window_start", "window_end")


def window_rows(pipeline: Pipeline, ref: str) -> tuple[tuple[str, ...] | None, str | None]:
    """Whether stream ``ref``'s rows are a window's results, one per window and key, and by which columns.

    Returns ``(keys, None)`` when every row of ``ref`` is a row of a window step's results, unchanged in
    the window step's key columns ``keys`` and in ``window_start``/``window_end``: the results
    themselves, or what follows them through steps that keep or drop rows without reshaping them
    (``filter``, ``dedup``, ``key_by``, ``with_columns`` not assigning those columns, ``select`` keeping
    them, a key possibly renamed: ``keys`` are then the names in ``ref``). Returns
    ``(None, step_id)`` when window results reach ``ref`` through a step that may reshape rows (a
    ``map_one``/``map_many``, an operator such as ``detect``, a union, a join, or one of the above
    that changes those columns), naming the first such step after the window; ``(None, None)``
    otherwise. ``DuckDBSink(key='auto')`` upserts by the key and the window bounds in the first case.

    Examples
    --------
    >>> from streamlab import TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'k': 'a', 'timestamp': 0}]))
    >>> w = p.stream.window(TumblingWindow('1m'), key='k').agg(agg.count())
    >>> window_rows(p, w.filter('count > 1').select('window_start', 'window_end', user='k').ref)
    (('user',), None)
    >>> window_rows(p, w.map_one(lambda r: r).ref), window_rows(p, 'source')
    ((None, 'map'), (None, None))
    """
    sid, _, output = ref.partition(".")
    step = pipeline.steps[sid]
    if output and output != "out":
        return None, None
    if isinstance(step, WindowStep):
        return step.keys, None
    if isinstance(step, SourceStep) or not step.inputs:
        return None, None
    found = [window_rows(pipeline, r) for r in step.inputs]
    if all(keys is None for keys, _ in found):  # no window results arrive here, or they were reshaped
        return None, next((by for _, by in found if by is not None), None)
    keys = found[0][0]
    if keys is None or len(step.inputs) > 1:
        return None, sid
    if isinstance(step, (FilterStep, DedupStep, KeyByStep)):  # rows kept or dropped, never changed
        return keys, None
    if isinstance(step, MapStep) and step.columns:  # with_columns: the same rows, columns added
        assigned = {name for name, _ in step.columns}
        return (None, sid) if assigned & {*keys, *_WINDOW_BOUNDS} else (keys, None)
    if isinstance(step, SelectStep):
        renamed = dict(step.columns)  # input name -> output name, as SelectOperator applies it
        if all(renamed.get(c) == c for c in _WINDOW_BOUNDS) and all(k in renamed for k in keys):
            return tuple(renamed[k] for k in keys), None
    return None, sid


_DETECT_RESULTS = {"score", "is_anomaly"}


def unread_detect(pipeline: Pipeline, ref: str) -> str | None:
    """The ``detect`` step whose ``score``/``is_anomaly`` reach stream ``ref`` unread, or None.

    Follows ``ref`` back through steps that keep those columns without reading them (``filter``,
    ``with_columns``, ``select``, ``key_by``, ``dedup``); a step that reads or renames them (a
    ``with_columns(first_score='score')``, a ``filter('~is_anomaly')``) has used them. A second
    ``detect`` on ``ref`` would overwrite them, so the pipeline refuses it.

    Examples
    --------
    >>> from streamlab.detectors import GaussianScorerDetector
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1.0, 'timestamp': 0}]))
    >>> d = p.stream.detect(GaussianScorerDetector(), ['x'])
    >>> unread_detect(p, d.filter('x > 0').ref), unread_detect(p, d.with_columns(s1='score').ref)
    ('detect', None)
    """
    sid, _, output = ref.partition(".")
    step = pipeline.steps[sid]
    if output and output != "out":
        return None
    if isinstance(step, OperatorStep):
        return sid if getattr(step.config, "kind", None) == "detect" else None
    read: set[str] = set()
    if isinstance(step, FilterStep) and step.expr is not None:
        read = expr_columns(step.expr, step.step_id, step.kind)
    elif isinstance(step, MapStep) and step.columns:
        read = set().union(*(expr_columns(e, step.step_id, step.kind) for _, e in step.columns))
        read |= {name for name, _ in step.columns}  # assigned: no longer the detector's
    elif isinstance(step, SelectStep):
        read = {i for i, o in step.columns if i != o}
    elif not isinstance(step, (KeyByStep, DedupStep)):
        return None
    return None if read & _DETECT_RESULTS else unread_detect(pipeline, step.inputs[0])


def _event_time_columns(step: Step) -> list[tuple[int, str]]:
    """``(input port, column)`` of each event-time column ``step`` reads."""
    if isinstance(step, WindowStep):
        return [(0, step.time)]
    if isinstance(step, DedupStep):
        return [(0, step.time)] if step.time is not None else []
    if isinstance(step, IntervalJoinStep):
        return [(0, step.left_time), (1, step.right_time)]
    if isinstance(step, OperatorStep) and isinstance(getattr(step.config, "time", None), str):
        return [(0, step.config.time)]
    return []


def repeats_ids(pipeline: Pipeline, ref: str) -> bool:
    """Whether stream ``ref`` may hold one event in several rows, so ``event_id`` does not identify its
    rows (what ``DuckDBSink(key='auto')`` asks before upserting by it).

    Yes for a side output (``.duplicates``, ``.late``, ``.dead_letter``, ``.early``: every repeat, every
    late row, every failure is a row of its own), for an interval join (an event may match several rows
    of the other side) and a ``map_many`` (a batch function may return an event several times),
    and for a union of streams that repeat ids or share a source (an event may arrive by both ways).
    ``dedup`` on ``event_id`` makes them unique again; a source's events and every other step keep what
    their input has (window results name windows, not events).

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'event_id': 'a', 'timestamp': 0}]))
    >>> d = p.dedup(ttl='10m')
    >>> repeats_ids(p, 'source'), repeats_ids(p, 'dedup'), repeats_ids(p, 'dedup.duplicates')
    (False, False, True)
    >>> repeats_ids(p, p.stream.union(d.duplicates).ref)
    True
    """
    sid, _, output = ref.partition(".")
    step = pipeline.steps[sid]
    if output and output != "out":
        return True
    if isinstance(step, (SourceStep, WindowStep)):
        return False
    if isinstance(step, IntervalJoinStep):  # (an enrich's table holds one row per key: EnrichStep.check)
        return True
    if isinstance(step, MapStep) and step.fn is not None and not step.per_event:
        return True
    if isinstance(step, DedupStep) and step.id_column == "event_id":
        return False
    if any(repeats_ids(pipeline, r) for r in step.inputs):
        return True
    if isinstance(step, UnionStep):
        seen: set[str] = set()
        for r in step.inputs:
            origins = _origins(pipeline, r)
            if origins & seen:
                return True
            seen |= origins
    return False


def check_run_options(options: dict[str, Any]) -> None:
    """Refuse run options that cannot work (a batch size, wait, commit interval, limit or duration that
    is not positive) with the fix, before anything runs (``run``, ``start`` and the executor call it)."""
    b = options.get("batch_size", 1)
    if isinstance(b, bool) or not isinstance(b, numbers.Integral) or b <= 0:
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"batch_size={b!r} is not a positive number of events",
            "pass e.g. batch_size=10_000 (the largest micro-batch taken from a source at once)",
        )
    w = options.get("idle_wait", 0.0)
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not 0 <= float(w) < float("inf"):
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"idle_wait={w!r} is not a number of seconds >= 0",
            "pass e.g. idle_wait=0.01",
        )
    m = options.get("max_collect_rows")
    if m is not None and (isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 0):
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"max_collect_rows={m!r} is not a number of rows >= 0",
            "pass e.g. max_collect_rows=100_000 (the newest rows kept per output without a sink), or None "
            "to keep all",
        )
    c = options.get("commit_every")
    if c is not None and _step_duration("pipeline", "run", "commit_every", c) < 0:
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"commit_every={c!r} is negative",
            "pass e.g. commit_every='5s' (0: a commit point after every batch)",
        )
    clock = options.get("clock")
    if clock is not None and not isinstance(clock, Clock):
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"clock={clock!r} is not a Clock",
            "pass a streamlab Clock: ManualClock('2024-01-01T00:00:00Z') for simulated time, or "
            "SystemClock() (the default)",
        )
    directory = options.get("checkpoint_dir")
    if directory is not None and not (isinstance(directory, (str, os.PathLike)) and str(directory).strip()):
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"checkpoint_dir={directory!r} is not a directory path",
            "pass a directory as text, e.g. checkpoint_dir='checkpoints/fraud', or None",
        )
    n = options.get("max_events")
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0):
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"max_events={n!r} is not a positive number of events",
            "pass e.g. max_events=10_000",
        )
    d = options.get("duration")
    if d is not None and _step_duration("pipeline", "run", "duration", d) <= 0:
        raise PipelineConfigError(
            "pipeline",
            "run",
            f"duration={d!r} is not positive",
            "pass e.g. duration='5m', or None to run to the end",
        )


def _no_output(stream: Stream, name: str) -> NoReturn:
    """Raise the AttributeError of ``stream.<name>``: for an output name, which outputs its step has."""
    pipeline = stream.__dict__.get("pipeline")  # (None while unpickling: no lookups then)
    ref = stream.__dict__.get("ref")
    step = (
        pipeline.steps.get(ref.partition(".")[0]) if pipeline is not None and isinstance(ref, str) else None
    )
    if name.startswith("_") or step is None or name not in _output_names():
        raise AttributeError(f"{type(stream).__name__!r} object has no attribute {name!r}")
    sid, _, port = str(ref).partition(".")
    outs = ", ".join(
        f"{o!r} (the stream itself)" if o == "out" else f"{o!r} (read it as .{o})"
        for o in pipeline.outputs_of(sid)  # type: ignore[union-attr]
    )
    if port:
        raise AttributeError(
            f"{ref!r} is the {port!r} output of step {sid!r}, not a step: it has no output {name!r}. "
            f"The outputs of step {sid!r}: {outs}"
        )
    raise AttributeError(f"step {sid!r} ({label_of(step)}) has no output {name!r}; its outputs: {outs}")


@functools.cache
def _output_names() -> frozenset[str]:
    """Every output name of a registered step kind or config (and the streams' aliases ``ok``,
    ``results``): the attribute names a stream of another step may be asked for by mistake."""
    names = {"ok", "results"}
    for kind in kinds():
        names.update(getattr(kind.cls, "output_names", ()))
    return frozenset(names - {"out"})


class FallibleStream(Stream):
    """Output of a step running user code: failing rows go to ``.dead_letter`` with the error.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> Pipeline(ListSource([{'x': 1}])).map_one(lambda e: e).dead_letter.ref
    'map.dead_letter'
    """

    @property
    def dead_letter(self) -> Stream:
        return Stream(self.pipeline, f"{self.step_id}.dead_letter")


class ParsedStream(FallibleStream):
    """Parsed events; ``.dead_letter`` holds the raw records that failed, with the reason.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> parsed = Pipeline(ListSource([b'{}'])).parse()
    >>> parsed.ok is parsed, parsed.dead_letter.ref
    (True, 'parse.dead_letter')
    """

    @property
    def ok(self) -> Stream:
        return self


class DedupedStream(Stream):
    """First occurrences; ``.duplicates`` holds the repeats.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> Pipeline(ListSource([{'event_id': 'a'}])).dedup(ttl=None).duplicates.ref
    'dedup.duplicates'
    """

    @property
    def duplicates(self) -> Stream:
        return Stream(self.pipeline, f"{self.step_id}.duplicates")


class JoinedStream(Stream):
    """Joined pairs; ``.late`` holds rows that arrived too late to be joined.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'k': 1, 'timestamp': 0}]))
    >>> p.stream.join_interval(p.stream, 'k', lower='-1m', upper='1m').late.ref
    'join.late'
    """

    @property
    def late(self) -> Stream:
        return Stream(self.pipeline, f"{self.step_id}.late")


class OperatorStream(Stream):
    """Output of a config-backed step; other outputs by name: ``stream.output('drift')``.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> from streamlab.detectors import DriftDetector
    >>> s = Pipeline(ListSource([{'score': 1.0, 'timestamp': 0}])).apply(DriftDetector(column='score'))
    >>> s.output('drift').ref
    'drift_detector.drift'
    """

    def output(self, name: str) -> Stream:
        outs = self.pipeline.outputs_of(self.step_id)
        if name not in outs:
            raise PipelineConfigError(
                self.step_id, "operator", f"no output {name!r}", suggest(name, outs, what="outputs")
            )
        return Stream(self.pipeline, self.step_id if name == "out" else f"{self.step_id}.{name}")

    def __getattr__(self, name: str) -> Stream:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.pipeline.outputs_of(self.step_id):
            return self.output(name)
        _no_output(self, name)


class WindowedStream(FallibleStream):
    """Final window results; ``.late`` holds events for windows already closed.

    Examples
    --------
    >>> from streamlab import TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> w = Pipeline(ListSource([{'timestamp': 0}])).window(TumblingWindow('1m')).agg(agg.count())
    >>> w.results is w, w.late.ref
    (True, 'window.late')
    """

    @property
    def results(self) -> Stream:
        return self

    @property
    def late(self) -> Stream:
        return Stream(self.pipeline, f"{self.step_id}.late")

    @property
    def early(self) -> Stream:
        return Stream(self.pipeline, f"{self.step_id}.early")


class WindowBuilder:
    """A window waiting for its aggregators: call :meth:`agg`.

    The window's own settings are checked at once, as the step they will be with a count standing in
    for the aggregators, so a mistake is reported at ``.window(...)``.

    Examples
    --------
    >>> from streamlab import TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> builder = Pipeline(ListSource([{'timestamp': 0}])).window(TumblingWindow('1m'))
    >>> builder.agg(agg.count()).columns
    ('window_start', 'window_end', 'count')
    """

    def __init__(self, stream: Stream, sid: str, settings: dict[str, Any]) -> None:
        self._stream = stream
        self._sid = sid
        self._settings = settings
        stream.pipeline._check(self._step((agg_module.count(name="__aggregators_to_come__"),)))
        stream.pipeline._unfinished[sid] = "window"

    def _step(self, aggs: tuple[Aggregator, ...]) -> WindowStep:
        return WindowStep(self._sid, (self._stream.ref,), aggs=aggs, **self._settings)

    def agg(self, *aggs: Aggregator) -> WindowedStream:
        """Aggregate each window and key, e.g. ``.agg(agg.count(), agg.sum("amount"))``."""
        step = self._step(tuple(aggs))
        self._stream.pipeline._unfinished.pop(self._sid, None)
        return self._stream.pipeline._add(step, cls=WindowedStream)  # type: ignore[return-value]
