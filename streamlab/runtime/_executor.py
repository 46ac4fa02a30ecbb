"""The executor: one run of one pipeline, built from its parts.

It opens sources, sinks and operators (resuming a checkpoint), polls sources into the
:class:`~streamlab.runtime._router.Router`, tells operators the time and their partitions through their
optional hooks, works ahead where an operator can (:mod:`streamlab.runtime._ahead`), commits through
the :class:`~streamlab.runtime._commit.CommitLog`, and reports metrics. The drive loop
(:mod:`streamlab.runtime._drive`) decides when.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab.clock import Clock, SystemClock
from streamlab.errors import PipelineConfigError, SinkFailedError
from streamlab.io import SinkWriter, SourceReader
from streamlab.operators import Operator, Outputs
from streamlab.pipeline import Pipeline, check_run_options
from streamlab.runtime._ahead import Pending, WorkAhead
from streamlab.runtime._commit import CommitLog, Positions, sink_call, sink_identity, source_call
from streamlab.runtime._router import Completion, Router
from streamlab.runtime.metrics import RunMetrics, measure
from streamlab.runtime.options import RunOptions
from streamlab.runtime.result import Collector, RunResult
from streamlab.steps import SinkStep, SourceStep

if TYPE_CHECKING:
    from streamlab.runtime.handle import RunHandle

_log = logging.getLogger("streamlab")

#: the runs whose sources and sinks are open, by their pipeline object's id: a pipeline runs once at a
#: time (a notebook cell that starts it again would read its sources and write its sinks twice)
_OPEN: dict[int, Executor] = {}
_OPEN_LOCK = threading.Lock()


def _user_frame_level() -> int:
    """The ``stacklevel`` of the first caller outside the streamlab package (for a warning to name the
    user's line, whichever of run(), start() or show() led to it)."""
    import os
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame: FrameType | None = sys._getframe(1)  # the caller of this function: the warning's own frame
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def running_executor(pipeline: Pipeline) -> Executor | None:
    """The run of ``pipeline`` whose sources and sinks are open, if any."""
    with _OPEN_LOCK:
        return _OPEN.get(id(pipeline))


def open_runs() -> list[RunHandle]:
    """The handles of the runs open in the background in this process (:meth:`Pipeline.start`), oldest
    first: for stopping runs whose handles and pipelines were lost, say by running a notebook cell that
    builds and starts a pipeline again (``for h in open_runs(): h.stop()``).

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> handle = Pipeline(ListSource([{"x": 1}]), name="lost").start(clock=ManualClock(0), paused=True)
    >>> [h.pipeline.name for h in open_runs()]
    ['lost']
    >>> _ = handle.stop()
    >>> open_runs()
    []
    """
    with _OPEN_LOCK:
        return [ex.handle for ex in _OPEN.values() if ex.handle is not None]


class Executor:
    """Runs one pipeline; driven by :func:`~streamlab.runtime.run` in this thread or a ``RunHandle``'s.

    ``options`` is a :class:`~streamlab.runtime.RunOptions`; keyword arguments replace its fields.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> ex = Executor(Pipeline(ListSource([{'x': 1}])), clock=ManualClock(0))
    >>> ex.open(); ex.poll_once(), ex.all_done()
    (True, True)
    >>> ex.close()
    """

    def __init__(self, pipeline: Pipeline, options: RunOptions | None = None, **fields: Any) -> None:
        if not pipeline.steps:
            raise ValueError("the pipeline is empty: add a source, e.g. Pipeline(ListSource([...]))")
        self.options = opts = RunOptions.of(options, **fields)
        check_run_options({f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)})
        self.pipeline = pipeline
        self.clock: Clock = opts.clock or SystemClock()
        self.batch_size = opts.batch_size
        self.commit_every_ns = opts.commit_every_ns
        self.duration_ns = opts.duration_ns
        self.max_collect_rows = opts.max_collect_rows
        self.limit: int | None = opts.max_events  # stop taking events after this many
        self.log = CommitLog(pipeline, self.clock, checkpoint_dir=opts.checkpoint_dir, resume=opts.resume)
        self.readers: dict[str, SourceReader] = {}
        self.writers: dict[str, SinkWriter] = {}
        self.operators: dict[str, Operator] = {}
        self.router = Router(pipeline, self.operators, self.writers, max_collect_rows=opts.max_collect_rows)
        self.positions = Positions(self.readers)
        self.ahead = WorkAhead({}, self.operators, pipeline.name)
        from streamlab._to_test import InputTape

        self.tape = InputTape.attach(self)  # keeps the first rows read, with arrival times, for to_test()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.status = "created"
        self.error: BaseException | None = None
        self.handle: RunHandle | None = None  # the handle driving this run in the background, if any
        self.events_in = 0  # events delivered to the steps after their source
        self.batches = 0
        self.taken = 0  # events read from sources: events_in plus those read ahead, not yet delivered
        self.started_ns = 0
        self.assigned: dict[str, list[Any]] = {}  # per source: partitions owned at its last poll
        self.partitioned: list[Operator] = []  # steps told the partitions (Operator.by)
        # steps told the source of each batch (Operator.follow_sources), with the sources they read
        self.by_source: dict[str, tuple[Operator, tuple[str, ...]]] = {}
        self.timed: dict[str, Operator] = {}  # steps told the processing time (Operator.idle_ns)

    # -- views of the parts (names tests, widgets and the debugger read) ----------------------------
    @property
    def checkpoint_dir(self) -> Any:
        return self.log.checkpoint_dir

    @property
    def last_checkpoint(self) -> Any:
        return self.log.last_checkpoint

    @property
    def collect(self) -> dict[str, Collector]:
        return self.router.collect

    @property
    def subscribers(self) -> dict[str, list[Callable[[pd.DataFrame], None]]]:
        return self.router.subscribers

    @property
    def ahead_targets(self) -> dict[str, str]:
        return self.ahead.targets

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Open sources and sinks and build operators; on failure, close what was opened and re-raise.

        A pipeline whose other run is still open is refused (:class:`~streamlab.errors.PipelineConfigError`).
        """
        self._claim()
        try:
            self._warn_of_twins()
            self._open()
        except BaseException:
            self.status = "failed"
            self.close()
            raise

    def _open(self) -> None:
        state = self.log.resume or {}
        op_state = state.get("operators", {})
        src_state = state.get("sources", {})
        for sid, step in self.pipeline.steps.items():
            if isinstance(step, SourceStep):
                with source_call(self.pipeline, sid, "opening"):
                    self.readers[sid] = step.source.open(src_state.get(sid), self.clock)
            elif isinstance(step, SinkStep):
                with sink_call(self.pipeline, sid, "opening", rows=False):
                    self.writers[sid] = step.open_writer(self.clock)
            else:
                op = step.build()
                if sid in op_state:
                    op.restore(op_state[sid])
                self.operators[sid] = op
        self.positions = Positions(self.readers)
        sink_state = state.get("sinks", {})
        sink_ids = state.get("sink_ids")  # (None in checkpoints before sink identities were kept)
        for sid, writer in self.writers.items():
            saved = sink_state.get(sid)
            if (
                saved is not None
                and sink_ids is not None
                and sink_ids.get(sid) != sink_identity(self.pipeline.steps[sid])
            ):
                _log.warning(
                    "pipeline %r: the sink of step %r changed since the checkpoint (it was %s); it starts "
                    "as a new sink, and what the old one wrote is left as it is",
                    self.pipeline.name,
                    sid,
                    sink_ids.get(sid, "not there"),
                )
                saved = None
            with sink_call(self.pipeline, sid, "restoring its checkpoint", rows=False):
                writer.restore(saved)  # drop what a commit wrote after this checkpoint
        if self.log.checkpoint_dir is not None and not state:
            # where every sink's output starts: a crash before the first commit is undone on restart too
            self.log.save(self.log.snapshot(self.operators, self.positions, self.writers))
        self.partitioned = [op for op in self.operators.values() if op.by]
        for sid, op in self.operators.items():
            ins = self.pipeline.steps[sid].inputs
            sources = self.pipeline.union_sources(ins[0]) if len(ins) == 1 else ()
            if len(sources) > 1 and op.follow_sources(sources):
                self.by_source[sid] = (op, sources)
        # steps told the processing time: windows whose idle partitions stop holding the watermark
        self.timed = {sid: op for sid, op in self.operators.items() if op.idle_ns}
        self.ahead = WorkAhead.plan(self.pipeline, self.readers, self.operators, batch_size=self.batch_size)
        self.started_ns = self.log.last_commit_ns = self.clock.now_ns()
        self.status = "running"

    def _claim(self) -> None:
        """Mark this run as the pipeline's open one, or refuse when another is."""
        with _OPEN_LOCK:
            other = _OPEN.get(id(self.pipeline))
            if other is not None and other is not self:
                raise PipelineConfigError(
                    "pipeline",
                    "run",
                    f"pipeline {self.pipeline.name!r} is already running ({other.status}, "
                    f"{other.events_in:,} events in): a second run at the same time would read its sources "
                    "and write its sinks twice",
                    "stop the running one first with handle.stop() (pipeline.running.stop() if the handle "
                    "from start() was lost, say by running the cell again), then run or start again",
                )
            _OPEN[id(self.pipeline)] = self

    def _warn_of_twins(self) -> None:
        """Warn when another pipeline object with this one's name, sources and steps has a run open (not
        for a run without sinks: ``head()``'s preview)."""
        if not any(isinstance(step, SinkStep) for step in self.pipeline.steps.values()):
            return
        with _OPEN_LOCK:
            twins = [
                ex
                for ex in _OPEN.values()
                if ex is not self
                and ex.pipeline.name == self.pipeline.name
                and ex.log.fingerprint == self.log.fingerprint
            ]
        if twins:
            # most often a notebook cell that builds and starts a pipeline, run again (consumer-group
            # members are meant to run side by side, so this is no error)
            warnings.warn(
                f"another run of pipeline {self.pipeline.name!r} with the same sources and steps is open "
                f"in this process ({twins[0].status}, {twins[0].events_in:,} events in): both read the "
                "same sources and write the same sinks. If a notebook cell that builds and starts the "
                "pipeline ran again, stop the old run (for h in streamlab.runtime.open_runs(): h.stop(), "
                "before starting); if both are meant to run, give them different names",
                RuntimeWarning,
                stacklevel=_user_frame_level(),
            )

    def _release(self) -> None:
        with _OPEN_LOCK:
            if _OPEN.get(id(self.pipeline)) is self:
                del _OPEN[id(self.pipeline)]

    def close(self) -> None:
        """End the worker and close sources and sinks (errors are logged: the others still close)."""
        try:
            self._close()
        finally:
            self._release()

    def _close(self) -> None:
        self.ahead.close()
        for sid, r in self.readers.items():
            try:
                r.close()
            except Exception:
                _log.exception("pipeline %r: closing the source of step %r failed", self.pipeline.name, sid)
        # the sink the run failed on: that error is raised (or kept in the handle) already, and a close
        # that reports the same failure again (an alert sink's, a custom sink's) adds a second traceback
        failed = self.error.step_id if isinstance(self.error, SinkFailedError) else None
        for sid, w in self.writers.items():
            try:
                with sink_call(self.pipeline, sid, "closing", rows=False):  # after the last commit
                    w.close()
            except Exception as e:
                if sid == failed:
                    _log.debug("pipeline %r, after it failed: %s", self.pipeline.name, e)
                else:
                    _log.error("pipeline %r: %s", self.pipeline.name, e, exc_info=e)
        self.log.release()

    def request_stop(self) -> None:
        """Stop at the next batch boundary, and tell the sinks to stop waiting (``SinkWriter.interrupt``):
        an alert sink retrying an endpoint that is down held a stop for minutes."""
        self.stop_event.set()
        for sid, w in list(self.writers.items()):
            try:
                w.interrupt()
            except Exception:
                _log.exception(
                    "pipeline %r: interrupting the sink of step %r failed", self.pipeline.name, sid
                )

    # -- data flow ---------------------------------------------------------------------------------
    def deliver_pending(self) -> None:
        """Deliver every batch read but not yet delivered (work ahead); the caller holds ``lock``."""
        for sid, queue in self.ahead.pending.items():
            while queue:
                entry = queue.popleft()
                self._enter(sid, entry.batch, entry.done)

    def _enter(self, sid: str, batch: pd.DataFrame, parsed: Completion | None = None) -> None:
        """A source's batch enters the pipeline: counted in ``events_in`` as it is delivered.

        If its delivery is cut short (a ``KeyboardInterrupt`` inside a step or sink, say), some routes
        have it and others not: it stays unfinished, so its source's position is not committed past it.
        """
        for op, sources in self.by_source.values():
            op.origin = sid if sid in sources else None  # type: ignore[attr-defined]
            # a source stops holding the watermark once it has ended and all it read was delivered
            op.expect_partitions({s for s in sources if s == sid or not self._ended(s)})
        try:
            self.events_in += len(batch)
            self.batches += 1
            self.router.enter(sid, batch, parsed)
        except BaseException:
            self.positions.torn = True
            raise
        finally:
            for op, _ in self.by_source.values():
                op.origin = None  # type: ignore[attr-defined]
        self.positions.delivered(sid)

    def _ended(self, sid: str) -> bool:
        """Source ``sid`` has nothing more to deliver: it is done and no batch of it waits."""
        return self.readers[sid].done and not self.ahead.pending.get(sid)

    def _tell_partitions(self) -> None:
        """Give per-partition watermarked steps the partitions the sources are assigned, and the time.

        Assignments are those ``poll_once`` recorded at each source's last poll.
        """
        if len(self.assigned) == len(self.readers):  # every source knows its partitions
            known = {p for parts in self.assigned.values() for p in parts}
            for op in self.partitioned:
                op.expect_partitions(known)
        if self.timed:
            now = self.clock.now_ns()
            with self.lock:
                for sid, op in self.timed.items():  # upstream first: what one emits reaches the next
                    self._emit_held(sid, lambda op=op: op.on_processing_time(now))  # type: ignore[misc]

    def poll_once(self, ahead: bool = True) -> bool:
        """Poll every source once and push what arrived; True if any events moved.

        With ``ahead`` (the default), a batch for a step that works ahead is started in the worker and
        delivered on the next call, after the batch read before it; ``ahead=False`` (one step at a
        time) delivers everything read before returning.
        """
        moved = False
        for sid, reader in self.readers.items():
            queue = self.ahead.pending.get(sid)
            want = self.batch_size if self.limit is None else min(self.batch_size, self.limit - self.taken)
            with source_call(self.pipeline, sid, "polling"):
                batch = reader.poll(want) if want > 0 and not reader.done else None
            parts = reader.partitions()  # read in this thread: a consumer's assignment moves while it polls
            if parts is not None and parts != self.assigned.get(sid):
                with self.lock:
                    self.assigned[sid] = parts
            fresh = batch is not None and len(batch) > 0
            if batch is not None and fresh:
                self.positions.read(sid)  # first: ours from here until delivered
                if self.partitioned:
                    self._tell_partitions()  # after the poll: a consumer learns its assignment while polling
                moved = True
                with self.lock:
                    self.taken += len(batch)
                    if queue is None:
                        self._enter(sid, batch)
                        continue
                    # queued before any work: a batch read is delivered even if what follows is interrupted
                    entry = Pending(batch)
                    queue.append(entry)
                    if ahead:
                        self.ahead.begin(sid, entry)  # e.g. arrow reads it in the worker
            if queue:
                keep = 1 if ahead and fresh and queue[-1].done is not None else 0
                with self.lock:
                    while len(queue) > keep:  # the previous batch goes downstream meanwhile
                        entry = queue.popleft()
                        self._enter(sid, entry.batch, entry.done)
                moved = True
        if not moved and self.timed:
            self._tell_partitions()  # no data: idle timeouts still run out
        return moved

    def past_deadline(self) -> bool:
        """True once ``duration`` of processing time has passed since the start."""
        return self.duration_ns is not None and self.clock.now_ns() - self.started_ns >= self.duration_ns

    def reached_limit(self) -> bool:
        """True once ``max_events`` events have been read."""
        return self.limit is not None and self.taken >= self.limit

    def all_done(self) -> bool:
        return not self.ahead.any_pending() and all(r.done for r in self.readers.values())

    def flush_operators(self) -> None:
        """End of input: let every operator emit what it holds, upstream first."""
        with self.lock:
            self.deliver_pending()
            for sid, op in self.operators.items():
                self._emit_held(sid, op.on_end)

    def _emit_held(self, sid: str, hook: Callable[[], Outputs]) -> None:
        """Call an operator hook that emits state it held (``on_end``, ``on_flush``,
        ``on_processing_time``) and deliver what it emits downstream.

        If that delivery is cut short (a ``KeyboardInterrupt`` in a sink, say), the step's state no longer
        holds what the sink may not have: as with a batch cut short, the last checkpoint is kept, so a
        resume emits it again instead of losing it.
        """
        try:
            self.router.call(sid, hook)
        except BaseException:
            self.positions.torn = True
            raise

    def idle_live(self) -> bool:
        """Whether every source not yet done is a live one with nothing due (no replay time to move to).

        Examples
        --------
        >>> from streamlab import Pipeline
        >>> from streamlab.clock import ManualClock
        >>> from streamlab.testing import ListSource
        >>> ex = Executor(Pipeline(ListSource([{"x": 1}])), clock=ManualClock(0))
        >>> ex.open(); _ = ex.poll_once(); ex.idle_live()
        False
        >>> ex.close()
        """
        waiting = [r for r in self.readers.values() if not r.done]
        return bool(waiting) and all(r.next_ready_ns() is None for r in waiting)

    def wait_for_data(self) -> None:
        now = self.clock.now_ns()
        due = [t for r in self.readers.values() if not r.done and (t := r.next_ready_ns()) is not None]
        if due:
            # at least 1 ns, so a simulated clock always moves forward
            wait = max(1e-9, (min(due) - now) / 1e9)
            if isinstance(self.clock, SystemClock):
                wait = min(wait, 0.25)  # stay responsive to stop/pause
            self.clock.sleep(wait, self.stop_event)
        else:
            self.clock.sleep(self.options.idle_wait, self.stop_event)

    # -- commits -------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A picklable copy of all state (see ``CommitLog.snapshot``)."""
        return self.log.snapshot(self.operators, self.positions, self.writers)

    def commit(self) -> None:
        """Deliver what was read ahead, then commit (see ``CommitLog.commit``); the caller holds ``lock``."""
        if not self.positions.torn:
            self.deliver_pending()  # the source positions include batches read ahead
        self.log.commit(self.operators, self.positions, self.writers)

    def maybe_commit(self) -> None:
        if self.clock.now_ns() - self.log.last_commit_ns >= self.commit_every_ns:
            with self.lock:
                self.commit()

    def finish(self, flush_windows: bool) -> None:
        """Graceful end: optionally flush open windows (closing them: see ``Operator.on_flush``), then
        flush sinks and commit."""
        if flush_windows:
            with self.lock:
                self.deliver_pending()
                for sid, op in self.operators.items():
                    self._emit_held(sid, op.on_flush)
        with self.lock:
            self.commit()
        if self.log.checkpoint_dir is None and not self.all_done():
            self.warn_dropped_state()

    def warn_dropped_state(self) -> None:
        """A stop without a checkpoint directory drops the steps' open state: say so."""
        held = {}
        for sid, op in self.operators.items():
            summary = {k: (len(v) if isinstance(v, list) else v) for k, v in op.open_state().items()}
            if any(v for v in summary.values() if isinstance(v, int | float)):
                held[sid] = summary
        if held:
            warnings.warn(
                f"pipeline {self.pipeline.name!r} stopped with open state {held} and no checkpoint_dir: that "
                "state (windows not yet emitted, buffered rows) is only in memory (the result's checkpoint, "
                "usable as resume=); a new run without it starts again from its sources' beginning. Pass "
                "checkpoint_dir= (--checkpoint-dir) to keep it on disk, or let the input end (or "
                "handle.stop(flush_windows=True)) to emit it",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- reporting -----------------------------------------------------------------------------------
    def metrics(self) -> RunMetrics:
        """What the run has done so far (see :class:`~streamlab.runtime.RunMetrics`)."""
        with self.lock:
            return measure(self)

    def open_state(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {sid: op.open_state() for sid, op in self.operators.items()}

    def step_state(self, sid: str) -> tuple[int | None, dict[str, Any]]:
        with self.lock:
            op = self.operators[sid]
            return op.watermark_ns(), op.open_state()

    def outputs(self) -> dict[str, pd.DataFrame]:
        with self.lock:
            return {ref: c.frame() for ref, c in self.router.collect.items()}

    def result(self) -> RunResult:
        return RunResult(
            self.outputs(), self.metrics(), self.log.last_checkpoint, self.status, self.pipeline, self.tape
        )
