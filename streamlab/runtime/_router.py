"""Delivery inside a run: a batch on a stream goes to its subscribers, its collector or tail and its readers.

The router counts rows per step and output (the metrics), hands batches to sinks' writers and to
operators, and routes each operator's named outputs on (``"out"`` is the step's own reference, any
other output ``step.output``). It keeps no position: commit bookkeeping is the executor's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import pandas as pd

from streamlab._frames import concat_batches
from streamlab.errors import StepFailedError
from streamlab.io import SinkWriter
from streamlab.operators import Operator, Outputs
from streamlab.pipeline import Pipeline
from streamlab.runtime._commit import sink_call
from streamlab.runtime._tail import Tail
from streamlab.runtime.result import Collector
from streamlab.steps import SinkStep, SourceStep

log = logging.getLogger("streamlab")

#: work on a batch done ahead (parse ahead): called instead of the consumer's ``process``
Completion = Callable[[], Outputs]

#: where a frame's rows stood: the stream they were numbered on, and each row's number there (its
#: rows in the order that stream emitted them while the runtime delivers one source batch)
Arrival = tuple[str, np.ndarray]


def merging_unions(pipeline: Pipeline) -> tuple[tuple[str, ...], frozenset[str]]:
    """The unions that merge their inputs' rows back into arrival order, and the streams they read from.

    A union merges when two of its inputs share an upstream stream (branches split from one source, or
    from one step's output): in each source batch it waits for all its inputs and passes their rows in
    the order the shared stream had them. The streams from which such a union reads (however far up)
    number their rows, and the steps between keep the numbers (``Operator.process_rows``).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([]))
    >>> _ = p.stream.filter("x > 0", step_id="a").union(p.stream.filter("x <= 0", step_id="b"))
    >>> unions, numbered = merging_unions(p)
    >>> unions, sorted(numbered)
    (('union',), ['a', 'b', 'source'])
    """
    memo: dict[str, frozenset[str]] = {}

    def upstream(ref: str) -> frozenset[str]:  # the stream and every stream it is made from
        if ref not in memo:
            step = pipeline.steps[ref.partition(".")[0]]
            memo[ref] = frozenset({ref}).union(*(upstream(r) for r in step.inputs))
        return memo[ref]

    unions: list[str] = []
    numbered: set[str] = set()
    for sid, step in pipeline.steps.items():  # in the order added: a union's inputs before it
        if step.kind != "union":
            continue
        ups = [upstream(r) for r in step.inputs]
        if any(a & b for i, a in enumerate(ups) for b in ups[i + 1 :]):
            unions.append(sid)
            numbered.update(*ups)
    return tuple(unions), frozenset(numbered)


class Router:
    """Moves batches along the pipeline's edges, in order, in the caller's thread.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([]))
    >>> router = Router(p, {}, {}, max_collect_rows=10)
    >>> router.emit("source", pd.DataFrame({"x": [1, 2]}))
    >>> router.collect["source"].frame()["x"].tolist(), router.step_out["source"]
    ([1, 2], {'out': 2})
    """

    def __init__(
        self,
        pipeline: Pipeline,
        operators: Mapping[str, Operator],
        writers: Mapping[str, SinkWriter],
        *,
        max_collect_rows: int | None,
    ) -> None:
        self.pipeline = pipeline
        self.operators = operators
        self.writers = writers
        self.max_collect_rows = max_collect_rows
        self.consumers = pipeline.consumers()
        self.collect = {
            ref: Collector(max_collect_rows, columns=pipeline.columns_of(ref))
            for ref in pipeline.unattached_outputs()
        }
        #: the newest rows of each stream a sink reads, for late subscribers (:meth:`keep_tails`)
        self.tails: dict[str, Tail] = {}
        self.subscribers: dict[str, list[Callable[[pd.DataFrame], None]]] = {}
        self.step_in: dict[str, int] = dict.fromkeys(pipeline.steps, 0)
        self.step_out: dict[str, dict[str, int]] = {sid: {} for sid in pipeline.steps}
        self.merging, self.numbered = merging_unions(pipeline)
        #: the steps whose main output is numbered: asked which input row each output row is
        self.keeping = frozenset(r for r in self.numbered if "." not in r)
        #: while one source batch (or one hook's output) is delivered: the merging unions' inputs so far
        self.held: dict[str, list[tuple[int, pd.DataFrame, Arrival | None]]] | None = None
        self.counted: dict[str, int] = {}  # rows each numbered stream emitted in that delivery

    def keep_tails(self, max_rows: int) -> None:
        """Keep the newest ``max_rows`` rows of every stream a sink or a step reads (and that is not
        collected already), so a subscriber that comes late can replay them (a background run's live
        views: ``show(handle, "parse")`` of a parse step that feeds a window).

        A source's own stream is kept only when a sink reads it: its batches are raw records, often a
        file's lines held as the file's bytes (``LineArray``), which cutting out a tail would copy
        line by line on every batch.

        Examples
        --------
        >>> from streamlab import Pipeline
        >>> from streamlab.testing import ListSink, ListSource
        >>> p = Pipeline(ListSource([]))
        >>> _ = p.stream.to(ListSink())
        >>> router = Router(p, {}, {}, max_collect_rows=10)
        >>> router.keep_tails(3)
        >>> list(router.tails), list(router.collect)
        (['source'], [])
        """
        steps = self.pipeline.steps
        for step in steps.values():
            for ref in step.inputs:
                if ref in self.collect:
                    continue
                if isinstance(step, SinkStep) or not isinstance(steps.get(ref.split(".")[0]), SourceStep):
                    self.tails.setdefault(ref, Tail(max_rows))

    def enter(self, ref: str, frame: pd.DataFrame, done: Completion | None = None) -> None:
        """A source batch on stream ``ref``: :meth:`emit` it; the unions merging branches of a stream pass
        what they received of it, in the order the stream had those rows, once everything else has."""
        if not self.merging:
            self.emit(ref, frame, done)
            return
        with self.holding():
            self.emit(ref, frame, done)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Unions that merge (:func:`merging_unions`) hold their inputs until the end of the block."""
        if not self.merging or self.held is not None:
            yield
            return
        self.held, self.counted = {}, {}
        try:
            yield
            for sid in self.merging:  # in the order added: what one passes may reach a later one
                parts = self.held.pop(sid, None)
                if parts:
                    self._merge(sid, parts)
        finally:
            self.held = None

    def _merge(self, sid: str, parts: list[tuple[int, pd.DataFrame, Arrival | None]]) -> None:
        """Pass union ``sid``'s inputs of one delivery: in arrival order when every part's rows are
        numbered on one stream, else part after part as they came (the order ends at a step that does not
        keep rows, such as a window: see ``Operator.process_rows``)."""
        op = self.operators[sid]
        # by input (an input that is itself a merging union arrives when that one passes, after the
        # others): a row that reaches the union by several inputs comes first by the first
        parts = sorted(parts, key=lambda part: part[0])
        try:
            outs = [(op.process(frame, port)["out"], rows) for port, frame, rows in parts]
        except Exception as e:
            raise StepFailedError(sid, self.pipeline.steps[sid].kind, e) from e
        first = outs[0]
        origin = None if first[1] is None else first[1][0]
        if len(outs) == 1 or origin is None or not all(r is not None and r[0] == origin for _, r in outs):
            for frame, rows in outs:
                self.emit(sid, frame, rows=rows)
            return
        numbers = np.concatenate([r[1] for _, r in outs if r is not None])
        order = np.argsort(numbers, kind="stable")
        frames = [f for f, _ in outs]
        columns = first[0].columns
        if not all(f.columns.equals(columns) for f in frames):
            # columns a user function hides (the union could not align them when built): each row has
            # every part's columns, missing where its part lacks one, as aligned unions' rows have
            columns = pd.Index(list(dict.fromkeys(c for f in frames for c in f.columns)))
            frames = [f if f.columns.equals(columns) else f.reindex(columns=columns) for f in frames]
        dtypes = frames[0].dtypes
        # parts of one type per column join as they are; otherwise each column keeps its values' type
        # across the parts as across batches (``concat_batches``)
        alike = all(f.dtypes.equals(dtypes) for f in frames[1:])
        joined = pd.concat(frames, ignore_index=True) if alike else concat_batches(frames)
        merged = joined.take(order).reset_index(drop=True)
        self.emit(sid, merged, rows=(origin, numbers[order]))

    def emit(
        self,
        ref: str,
        frame: pd.DataFrame | None,
        done: Completion | None = None,
        rows: Arrival | None = None,
    ) -> None:
        """Count, show and deliver ``frame`` on stream ``ref``; ``done``: its consumer's work, done ahead;
        ``rows``: where its rows stood (see :data:`Arrival`), for the unions that merge."""
        if frame is None or len(frame) == 0:
            return
        if self.held is not None and ref in self.numbered and rows is None:
            start = self.counted.get(ref, 0)
            self.counted[ref] = start + len(frame)
            rows = (ref, np.arange(start, start + len(frame)))
        sid, _, out = ref.partition(".")
        outs = self.step_out[sid]
        outs[out or "out"] = outs.get(out or "out", 0) + len(frame)
        for fn in list(self.subscribers.get(ref, ())):
            try:
                fn(frame)
            except Exception:  # an observer's bug (a chart's, say) must not stop the data or the sinks
                log.exception(
                    "pipeline %r: a subscriber of %r raised; it is unsubscribed, the run goes on",
                    self.pipeline.name,
                    ref,
                )
                self.subscribers[ref].remove(fn)
        tail = self.tails.get(ref)
        if tail is not None:
            tail.add(frame)
        collector = self.collect.get(ref)
        if collector is not None:
            had_dropped = collector.dropped
            collector.add(frame)
            if collector.dropped and not had_dropped:
                log.warning(
                    "pipeline %r: output %r has no sink; only its newest %s rows are kept "
                    "(max_collect_rows; metrics['collected_dropped'] counts the rest). Attach a sink to keep "
                    "everything: .to(JsonLinesSink(...)) or DuckDBSink(...)",
                    self.pipeline.name,
                    ref,
                    self.max_collect_rows,
                )
        for target, port in self.consumers.get(ref, ()):
            self.deliver(target, port, frame, done, rows)

    def deliver(
        self,
        sid: str,
        port: int,
        frame: pd.DataFrame,
        done: Completion | None = None,
        rows: Arrival | None = None,
    ) -> None:
        """Hand ``frame`` to step ``sid`` on input ``port``: a sink writes it, an operator processes it
        (a union that merges holds it: see :meth:`holding`)."""
        self.step_in[sid] += len(frame)
        writer = self.writers.get(sid)
        if writer is not None:
            # if it fails, the batch stays unfinished: its source is not committed past it
            with sink_call(self.pipeline, sid, f"writing a batch of {len(frame)} rows"):
                writer.write_batch(frame)
            return
        held = self.held
        if held is not None and sid in self.merging:
            held.setdefault(sid, []).append((port, frame, rows))
            return
        op = self.operators[sid]
        kept: Arrival | None = None
        try:
            if done is not None:
                outputs = done()
            elif rows is not None and sid in self.keeping:
                outputs, where = op.process_rows(frame, port)
                kept = None if where is None else (rows[0], rows[1][where])
            else:
                outputs = op.process(frame, port)
        except Exception as e:
            raise StepFailedError(sid, self.pipeline.steps[sid].kind, e) from e
        self.route(sid, outputs, kept)

    def route(self, sid: str, outputs: Outputs, rows: Arrival | None = None) -> None:
        """Emit each named output of step ``sid``; dead letters are stamped with the step's id.
        ``rows``: where the rows of its ``"out"`` stood (see :data:`Arrival`)."""
        for name, frame in outputs.items():
            if name == "dead_letter" and len(frame) and "step_id" not in frame.columns:
                frame = frame.assign(step_id=sid)
            self.emit(sid if name == "out" else f"{sid}.{name}", frame, rows=rows if name == "out" else None)

    def call(self, sid: str, hook: Callable[[], Outputs]) -> None:
        """Run an operator hook (``on_end``, ``on_processing_time``) of step ``sid`` and route its outputs."""
        with self.holding():
            try:
                outputs = hook()
            except Exception as e:
                raise StepFailedError(sid, self.pipeline.steps[sid].kind, e) from e
            self.route(sid, outputs)
