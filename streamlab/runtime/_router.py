"""Delivery inside a run: a batch on a stream goes to its subscribers, its collector and its readers.

The router counts rows per step and output (the metrics), hands batches to sinks' writers and to
operators, and routes each operator's named outputs on (``"out"`` is the step's own reference, any
other output ``step.output``). It keeps no position: commit bookkeeping is the executor's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import pandas as pd

from streamlab.errors import StepFailedError
from streamlab.io import SinkWriter
from streamlab.operators import Operator, Outputs
from streamlab.pipeline import Pipeline
from streamlab.runtime._commit import sink_call
from streamlab.runtime.result import Collector

log = logging.getLogger("streamlab")

#: work on a batch done ahead (parse ahead): called instead of the consumer's ``process``
Completion = Callable[[], Outputs]


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
        self.subscribers: dict[str, list[Callable[[pd.DataFrame], None]]] = {}
        self.step_in: dict[str, int] = dict.fromkeys(pipeline.steps, 0)
        self.step_out: dict[str, dict[str, int]] = {sid: {} for sid in pipeline.steps}

    def emit(self, ref: str, frame: pd.DataFrame | None, done: Completion | None = None) -> None:
        """Count, show and deliver ``frame`` on stream ``ref``; ``done``: its consumer's work, done ahead."""
        if frame is None or len(frame) == 0:
            return
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
            self.deliver(target, port, frame, done)

    def deliver(self, sid: str, port: int, frame: pd.DataFrame, done: Completion | None = None) -> None:
        """Hand ``frame`` to step ``sid`` on input ``port``: a sink writes it, an operator processes it."""
        self.step_in[sid] += len(frame)
        writer = self.writers.get(sid)
        if writer is not None:
            # if it fails, the batch stays unfinished: its source is not committed past it
            with sink_call(self.pipeline, sid, f"writing a batch of {len(frame)} rows"):
                writer.write_batch(frame)
            return
        op = self.operators[sid]
        try:
            outputs = op.process(frame, port) if done is None else done()
        except Exception as e:
            raise StepFailedError(sid, self.pipeline.steps[sid].kind, e) from e
        self.route(sid, outputs)

    def route(self, sid: str, outputs: Outputs) -> None:
        """Emit each named output of step ``sid``; dead letters are stamped with the step's id."""
        for name, frame in outputs.items():
            if name == "dead_letter" and len(frame) and "step_id" not in frame.columns:
                frame = frame.assign(step_id=sid)
            self.emit(sid if name == "out" else f"{sid}.{name}", frame)

    def call(self, sid: str, hook: Callable[[], Outputs]) -> None:
        """Run an operator hook (``on_end``, ``on_processing_time``) of step ``sid`` and route its outputs."""
        try:
            outputs = hook()
        except Exception as e:
            raise StepFailedError(sid, self.pipeline.steps[sid].kind, e) from e
        self.route(sid, outputs)
