"""The in-process runtime: runs a pipeline graph over micro-batches.

Delivery protocol: a source batch is pushed through every step to the sinks; at each commit point
(every ``commit_every`` of processing time, at the end, and on stop) every sink is flushed, the state
snapshot is saved (to ``checkpoint_dir`` when given), the sinks publish what they staged, and only then
are the sources told to commit their positions. A restart from that checkpoint neither loses nor repeats
sink data: upserting sinks are idempotent, and appending sinks (files, tables without a key) drop on
resume what was written after the checkpoint. A position is committed upstream (a Kafka offset, a
Pub/Sub ack, a Kinesis checkpoint file) only once everything derived from it is in a sink or in a saved
checkpoint: a run of such a source without ``checkpoint_dir`` keeps its checkpoints in a default
directory per pipeline (``streamlab._checkpoint.default_checkpoint_dir``). Outputs that no step reads
(for example a dead-letter output without a sink) are collected up to ``max_collect_rows`` rows each
(the newest), never saved in checkpoints; rows dropped are counted in the metrics.

Parse ahead: when a source feeds a parse step alone (and batches are large), the run owns one worker
thread in which arrow reads the next batch's JSON while the steps after the parse step work on the
previous batch. Batches are still delivered in order, and everything read is delivered before a
commit, a flush or a stop, so results and committed positions do not change; the worker ends with the
run.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import signal
import sys
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from streamlab._checkpoint import (
    CheckpointError,
    default_checkpoint_dir,
    load_checkpoint,
    pipeline_fingerprint,
    save_checkpoint,
)
from streamlab._operator import Operator
from streamlab._parse import ParseOperator
from streamlab._time import Duration, ns_to_timestamp, parse_duration
from streamlab.clock import Clock, SystemClock
from streamlab.errors import StepFailedError
from streamlab.io import SinkWriter, SourceReader
from streamlab.pipeline import Pipeline
from streamlab.steps import OperatorStep, SinkStep, SourceStep

__all__ = ["RunHandle", "RunResult", "run", "start"]

log = logging.getLogger("streamlab")
_COUNTED = ("late", "dead_letter", "duplicates")
_AHEAD_MIN_BATCH = 4096  # below this, handing a batch to another thread costs more than it saves


@dataclass
class RunResult:
    """What a run produced: collected outputs (those without a sink), metrics, and the last checkpoint.

    Index it with a stream reference: ``result["window"]``, ``result["parse.dead_letter"]``.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> result = Pipeline(ListSource([b'{bad'])).parse().run(clock=ManualClock(0))
    >>> result.status, result['parse.dead_letter']['reason'].str[:12].tolist()
    ('finished', ['invalid JSON'])
    """

    outputs: dict[str, pd.DataFrame]
    metrics: dict[str, Any]
    checkpoint: Any
    status: str
    pipeline: Pipeline | None = field(default=None, repr=False, compare=False)
    # the input the run read, with arrival times, for to_test() (see streamlab._to_test)
    tape: Any = field(default=None, repr=False, compare=False)

    def to_test(self, path: str | os.PathLike[str], **options: Any) -> Any:
        """Write a broker-free pytest module replaying a sample of this run's input.

        The sample covers every output (several windows and keys, late events, dead letters,
        duplicates); ``options``: ``keys`` (default 3) and ``max_rows`` (default 1,000). Returns what was
        written (``path``, ``inputs``, ``expected``, ``spec``, and ``exact``: the windows whose results
        are the run's). See ``streamlab._to_test``.

        Examples
        --------
        >>> import os, tempfile
        >>> from streamlab import ManualClock, Pipeline, TumblingWindow, agg
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([{"k": "a", "timestamp": i} for i in range(5)]))
        >>> _ = p.window(TumblingWindow("2s"), key="k").agg(agg.count())
        >>> written = p.run(clock=ManualClock(0)).to_test(os.path.join(tempfile.mkdtemp(), "test_p.py"))
        >>> written.coverage
        {'window': 3}
        """
        from streamlab._to_test import write_test

        return write_test(self.pipeline, self.tape, path, **options)

    def __getitem__(self, ref: str) -> pd.DataFrame:
        if ref not in self.outputs:
            from streamlab.errors import suggest

            raise KeyError(
                f"no collected output {ref!r}; {suggest(ref, self.outputs, what='collected outputs')} "
                "(outputs with a sink are in the sink)"
            )
        return self.outputs[ref]

    @property
    def dropped(self) -> dict[str, int]:
        """Rows dropped per collected output, beyond ``metrics["collect_limit"]`` (the oldest go first)."""
        return dict(self.metrics.get("collected_dropped", {}))

    def __repr__(self) -> str:
        outs = ", ".join(
            f"{k}: {len(v)} rows" + (f" ({self.dropped[k]} dropped)" if self.dropped.get(k) else "")
            for k, v in self.outputs.items()
        )
        return f"RunResult(status={self.status!r}, events_in={self.metrics.get('events_in')}, outputs={{{outs}}})"

    def _repr_html_(self) -> str:
        from streamlab._display import run_html

        p = self.pipeline
        sinks = (
            {} if p is None else {s: repr(st.sink) for s, st in p.steps.items() if isinstance(st, SinkStep)}
        )
        name = "" if p is None else p.name
        return run_html(name, self.metrics, {k: len(v) for k, v in self.outputs.items()}, sinks)


@dataclass
class _Collector:
    max_rows: int | None
    frames: list[pd.DataFrame] = field(default_factory=list)
    rows: int = 0
    dropped: int = 0

    def add(self, frame: pd.DataFrame) -> None:
        self.frames.append(frame)
        self.rows += len(frame)
        if self.max_rows is not None and self.rows > self.max_rows:
            excess = self.rows - self.max_rows  # the oldest rows go first
            while excess:
                first = self.frames[0]
                if len(first) <= excess:
                    self.frames.pop(0)
                    cut = len(first)
                else:
                    self.frames[0] = first.iloc[excess:].reset_index(drop=True)
                    cut = excess
                excess -= cut
                self.rows -= cut
                self.dropped += cut

    def frame(self) -> pd.DataFrame:
        if not self.frames:
            return pd.DataFrame()
        out = pd.concat(self.frames, ignore_index=True) if len(self.frames) > 1 else self.frames[0]
        self.frames = [out]
        return out


class Executor:
    """Runs one pipeline; used by :func:`run` directly and by :class:`RunHandle` in a thread.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> ex = Executor(Pipeline(ListSource([{'x': 1}])), clock=ManualClock(0))
    >>> ex.open(); ex.poll_once(), ex.all_done()
    (True, True)
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        clock: Clock | None = None,
        batch_size: int = 50_000,
        resume: Any = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        commit_every: Duration = "5s",
        max_collect_rows: int | None = 100_000,
        idle_wait: float = 0.01,
        duration: Duration | None = None,
    ) -> None:
        if not pipeline.steps:
            raise ValueError("the pipeline is empty: add a source, e.g. Pipeline(ListSource([...]))")
        if max_collect_rows is not None and (not isinstance(max_collect_rows, int) or max_collect_rows < 0):
            raise ValueError(
                f"max_collect_rows must be a number of rows >= 0 or None (keep all), got {max_collect_rows!r}"
            )
        self.pipeline = pipeline
        self.clock = clock or SystemClock()
        self.batch_size = batch_size
        self.fingerprint, self.step_fingerprints = pipeline_fingerprint(pipeline)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.default_checkpoint_dir = False
        upstream = [
            sid
            for sid, s in pipeline.steps.items()
            if isinstance(s, SourceStep) and s.source.commits_upstream
        ]
        if self.checkpoint_dir is None and resume is None and upstream:
            # a position acknowledged upstream must not have its events only in memory (open windows)
            self.checkpoint_dir = default_checkpoint_dir(pipeline, self.fingerprint)
            self.default_checkpoint_dir = True
        self.commit_every_ns = parse_duration(commit_every, what="commit_every")
        self.idle_wait = idle_wait
        self.duration_ns = None if duration is None else parse_duration(duration, what="duration")
        if resume is None and self.checkpoint_dir is not None:
            resume = load_checkpoint(self.checkpoint_dir, self.fingerprint, self.step_fingerprints)
            if resume is not None and self.default_checkpoint_dir:
                log.warning(
                    "pipeline %r: no checkpoint_dir given; resuming the state kept in %s, because source(s) "
                    "%s committed positions upstream (pass checkpoint_dir= to choose the place)",
                    pipeline.name,
                    self.checkpoint_dir,
                    upstream,
                )
        elif resume is not None and resume.get("fingerprint", self.fingerprint) != self.fingerprint:
            raise CheckpointError(
                "given as resume=",
                f"it was taken from pipeline {resume.get('pipeline')!r}, whose steps or sources differ",
                "resume a checkpoint only with the pipeline that made it; leave resume out to start fresh",
            )
        self.resume = resume
        self.max_collect_rows = max_collect_rows
        self.consumers = pipeline.consumers()
        self.collect = {ref: _Collector(max_collect_rows) for ref in pipeline.unattached_outputs()}
        self.subscribers: dict[str, list[Callable[[pd.DataFrame], None]]] = {}
        from streamlab._to_test import InputTape

        self.tape = InputTape.attach(self)  # keeps the first rows read, with arrival times, for to_test()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.last_checkpoint: Any = resume
        self.status = "created"
        self.error: BaseException | None = None
        # metrics
        self.step_in: dict[str, int] = dict.fromkeys(pipeline.steps, 0)
        self.step_out: dict[str, dict[str, int]] = {sid: {} for sid in pipeline.steps}
        self.events_in = 0  # events delivered to the steps after their source
        self.batches = 0
        self.taken = 0  # events read from sources: events_in plus those read ahead, not yet delivered
        self.started_ns = 0
        self.last_commit_ns = 0
        self.commits = 0
        self.commit_id = int((resume or {}).get("commit", 0))
        self.operators: dict[str, Operator] = {}
        self.partitioned: list[Any] = []
        self.limit: int | None = None  # stop taking events after this many (run(max_events=...))
        self.readers: dict[str, SourceReader] = {}
        self.assigned: dict[str, list[Any]] = {}  # per source: partitions owned at its last poll
        self.timed: dict[str, Operator] = {}  # steps told the processing time (see open)
        self.writers: dict[str, SinkWriter] = {}
        # parse ahead: a source's next batch is parsed in a worker while the steps after the parse
        # step work on the previous one (see _plan_parse_ahead)
        self.ahead_targets: dict[str, str] = {}
        self.pending: dict[str, deque[list[Any]]] = {}  # per source: [batch, parse completion or None]
        # Per source: the position after the last batch read, and the position before each batch read
        # but not yet fully delivered. Only positions before those may be committed: a batch cut short
        # by an exception (a KeyboardInterrupt in a sink, say) is read again on restart.
        self.read_pos: dict[str, Any] = {}
        self.unfinished: dict[str, deque[Any]] = {}
        self.torn = False  # a delivery was cut short: the steps' state holds part of a batch
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Open sources and sinks and build operators; on failure, close what was opened and re-raise."""
        try:
            self._open()
        except BaseException:
            self.status = "failed"
            self.close()
            raise

    def _open(self) -> None:
        state = self.resume or {}
        op_state = state.get("operators", {})
        src_state = state.get("sources", {})
        for sid, step in self.pipeline.steps.items():
            if isinstance(step, SourceStep):
                self.readers[sid] = step.source.open(src_state.get(sid), self.clock)
            elif isinstance(step, SinkStep):
                self.writers[sid] = step.sink.open(self.clock)
            else:
                op = step.build()
                if sid in op_state:
                    op.restore(op_state[sid])
                self.operators[sid] = op
        self.read_pos = {sid: r.snapshot() for sid, r in self.readers.items()}
        self.unfinished = {sid: deque() for sid in self.readers}
        sink_state = state.get("sinks", {})
        for sid, writer in self.writers.items():
            writer.restore(sink_state.get(sid))  # drop what a commit wrote after this checkpoint
        if self.checkpoint_dir is not None and not state:
            # where every sink's output starts: a crash before the first commit is undone on restart too
            self._save(self.snapshot())
        self.partitioned = [op for op in self.operators.values() if getattr(op, "by", None)]
        # steps told the processing time: windows whose idle partitions stop holding the watermark
        self.timed = {sid: op for sid, op in self.operators.items() if getattr(op, "idle_ns", None)}
        self._plan_parse_ahead()
        self.started_ns = self.last_commit_ns = self.clock.now_ns()
        self.status = "running"

    def _plan_parse_ahead(self) -> None:
        """Find sources read by one parse step alone; their next batch can be parsed ahead.

        Parsing is stateless and mostly runs in arrow's threads without the GIL, so parsing batch
        *n + 1* in a worker thread while the later steps handle batch *n* uses the second core. Results
        are delivered in order, and every batch read is delivered before a commit, a flush or a stop, so
        outputs, checkpoints and committed offsets are the same as without it.
        """
        if self.batch_size < _AHEAD_MIN_BATCH:
            return
        for sid in self.readers:
            readers_of = self.consumers.get(sid, [])
            if len(readers_of) != 1:
                continue
            target = readers_of[0][0]
            if (
                isinstance(self.operators.get(target), ParseOperator)
                and len(self.pipeline.steps[target].inputs) == 1
            ):
                self.ahead_targets[sid] = target
        if self.ahead_targets:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"streamlab-{self.pipeline.name}-parse")
            self.pending = {sid: deque() for sid in self.ahead_targets}

    def deliver_pending(self) -> None:
        """Deliver every batch read but not yet delivered (parse ahead); the caller holds ``lock``."""
        for sid, queue in self.pending.items():
            while queue:
                self._enter(sid, *queue.popleft())

    def _enter(
        self, sid: str, batch: pd.DataFrame, parsed: Callable[[], dict[str, pd.DataFrame]] | None = None
    ) -> None:
        """A source's batch enters the pipeline: counted in ``events_in`` as it is delivered.

        If its delivery is cut short (a ``KeyboardInterrupt`` inside a step or sink, say), some routes
        have it and others not: it stays unfinished, so its source's position is not committed past it.
        """
        try:
            self.events_in += len(batch)
            self.batches += 1
            self._emit(sid, batch, parsed)
        except BaseException:
            self.torn = True
            raise
        self.unfinished[sid].popleft()

    def _committable(self, sid: str) -> Any:
        """Where source ``sid`` may be committed: before its oldest batch not fully delivered."""
        unfinished = self.unfinished.get(sid)
        return unfinished[0] if unfinished else self.readers[sid].snapshot()

    def snapshot(self) -> dict[str, Any]:
        """A picklable copy of all state: operators, source positions and where each sink's output ends.

        Collected outputs (those without a sink) are not part of it: they are a view, bounded by
        ``max_collect_rows``, not state.
        """
        return {
            "version": 2,
            "pipeline": self.pipeline.name,
            "fingerprint": self.fingerprint,
            "commit": self.commit_id,
            "operators": {sid: op.snapshot() for sid, op in self.operators.items()},
            "sources": {sid: self._committable(sid) for sid in self.readers},
            "sinks": {sid: w.snapshot() for sid, w in self.writers.items()},
        }

    def _save(self, snap: dict[str, Any]) -> None:
        assert self.checkpoint_dir is not None
        header = {
            "pipeline": self.pipeline.name,
            "fingerprint": self.fingerprint,
            "steps": self.step_fingerprints,
            "commit": snap["commit"],
            "written_by": f"pid {os.getpid()} at {ns_to_timestamp(self.clock.now_ns())}",
        }
        save_checkpoint(self.checkpoint_dir, snap, header)

    def commit(self) -> None:
        """Flush sinks, save the state snapshot, publish what sinks staged, then commit source positions.

        After a batch's delivery was cut short (``torn``), the last checkpoint is kept (the steps' state
        has part of a batch). With a checkpoint directory, sources are committed to that checkpoint's
        positions and staged sink data is not published: a restart resumes exactly from it. Without one,
        each source is committed up to the batches it fully delivered: the cut batch and any read after
        it are read again on restart. Nothing is lost.
        """
        if not self.torn:
            self.deliver_pending()  # the source positions include batches read ahead
        for w in self.writers.values():
            w.flush()
        if self.torn and self.checkpoint_dir is not None:
            last = self.last_checkpoint or {}
            positions = {sid: last.get("sources", {}).get(sid) for sid in self.readers}
            log.warning(
                "pipeline %r: a batch was cut short while being delivered; kept the last checkpoint "
                "(commit %s) and committed its positions: what came after it is read again on restart",
                self.pipeline.name,
                last.get("commit", 0),
            )
            for sid, r in self.readers.items():
                if positions[sid] is not None:
                    r.commit(positions[sid])
            self.last_commit_ns = self.clock.now_ns()
            return
        if self.torn:
            for w in self.writers.values():
                w.commit()
            positions = {sid: self._committable(sid) for sid in self.readers}
            for sid in self.readers:
                if self.unfinished[sid]:
                    log.warning(
                        "pipeline %r: a batch of %r was cut short while being delivered; committed %r, "
                        "the position before it (it is read again on restart), and kept the last "
                        "checkpoint",
                        self.pipeline.name,
                        sid,
                        positions[sid],
                    )
        else:
            self.commit_id += 1
            snap = self.snapshot()
            if self.checkpoint_dir is not None:
                self._save(snap)
            self.last_checkpoint = snap
            for w in self.writers.values():
                w.commit()  # after the checkpoint: a crash before it leaves staged data to drop
            positions = snap["sources"]
        for sid, r in self.readers.items():
            r.commit(positions[sid])
        self.commits += 1
        self.last_commit_ns = self.clock.now_ns()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for queue in self.pending.values():
            queue.clear()
        for r in self.readers.values():
            try:
                r.close()
            except Exception:
                log.exception("closing a source failed")
        for w in self.writers.values():
            try:
                w.close()
            except Exception:
                log.exception("closing a sink failed")

    # -- data flow ---------------------------------------------------------------------------------
    def _emit(
        self, ref: str, frame: pd.DataFrame, parsed: Callable[[], dict[str, pd.DataFrame]] | None = None
    ) -> None:
        """Count, show and deliver ``frame`` on stream ``ref``; ``parsed``: its consumer's work, done ahead."""
        if frame is None or len(frame) == 0:
            return
        sid, _, out = ref.partition(".")
        outs = self.step_out[sid]
        outs[out or "out"] = outs.get(out or "out", 0) + len(frame)
        for fn in self.subscribers.get(ref, ()):
            fn(frame)
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
            self._deliver(target, port, frame, parsed)

    def _deliver(
        self,
        sid: str,
        port: int,
        frame: pd.DataFrame,
        parsed: Callable[[], dict[str, pd.DataFrame]] | None = None,
    ) -> None:
        self.step_in[sid] += len(frame)
        writer = self.writers.get(sid)
        if writer is not None:
            writer.write_batch(frame)
            return
        op = self.operators[sid]
        try:
            outputs = op.process(frame, port) if parsed is None else parsed()
        except Exception as e:
            step = self.pipeline.steps[sid]
            raise StepFailedError(sid, step.kind, e) from e
        self._route(sid, outputs)

    def _route(self, sid: str, outputs: dict[str, pd.DataFrame]) -> None:
        for name, frame in outputs.items():
            if name == "dead_letter" and len(frame) and "step_id" not in frame.columns:
                frame = frame.assign(step_id=sid)
            self._emit(sid if name == "out" else f"{sid}.{name}", frame)

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
                    try:
                        outputs = op.on_processing_time(now)
                    except Exception as e:
                        raise StepFailedError(sid, self.pipeline.steps[sid].kind, e) from e
                    self._route(sid, outputs)

    def poll_once(self, ahead: bool = True) -> bool:
        """Poll every source once and push what arrived; True if any events moved.

        With ``ahead`` (the default), a batch for a parse step that can work ahead is started in the
        worker and delivered on the next call, after the batch read before it; ``ahead=False`` (one
        step at a time) delivers everything read before returning.
        """
        moved = False
        for sid, reader in self.readers.items():
            queue = self.pending.get(sid)
            want = self.batch_size if self.limit is None else min(self.batch_size, self.limit - self.taken)
            batch = reader.poll(want) if want > 0 and not reader.done else None
            parts = reader.partitions()  # read in this thread: a consumer's assignment moves while it polls
            if parts is not None and parts != self.assigned.get(sid):
                with self.lock:
                    self.assigned[sid] = parts
            fresh = batch is not None and len(batch) > 0
            if batch is not None and fresh:
                self.unfinished[sid].append(self.read_pos[sid])  # first: ours from here until delivered
                self.read_pos[sid] = reader.snapshot()
                if self.partitioned:
                    self._tell_partitions()  # after the poll: a consumer learns its assignment while polling
                moved = True
                with self.lock:
                    self.taken += len(batch)
                    if queue is None:
                        self._enter(sid, batch)
                        continue
                    # queued before any work: a batch read is delivered even if what follows is interrupted
                    entry: list[Any] = [batch, None]
                    queue.append(entry)
                    if ahead:
                        op = self.operators[self.ahead_targets[sid]]
                        assert isinstance(op, ParseOperator)
                        entry[1] = op.begin(batch, self._pool)  # arrow reads it in the worker
            if queue:
                keep = 1 if ahead and fresh and queue[-1][1] is not None else 0
                with self.lock:
                    while len(queue) > keep:  # the previous batch goes downstream meanwhile
                        self._enter(sid, *queue.popleft())
                moved = True
        if not moved and self.timed:
            self._tell_partitions()  # no data: idle timeouts still run out
        return moved

    def past_deadline(self) -> bool:
        """True once ``duration`` of processing time has passed since the start."""
        return self.duration_ns is not None and self.clock.now_ns() - self.started_ns >= self.duration_ns

    def all_done(self) -> bool:
        return not any(self.pending.values()) and all(r.done for r in self.readers.values())

    def flush_operators(self) -> None:
        """End of input: let every operator emit what it holds, upstream first."""
        with self.lock:
            self.deliver_pending()
            for sid, op in self.operators.items():
                try:
                    outputs = op.on_end()
                except Exception as e:
                    raise StepFailedError(sid, self.pipeline.steps[sid].kind, e) from e
                self._route(sid, outputs)

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
            self.clock.sleep(self.idle_wait, self.stop_event)

    def maybe_commit(self) -> None:
        if self.clock.now_ns() - self.last_commit_ns >= self.commit_every_ns:
            with self.lock:
                self.commit()

    # -- reporting -----------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock.now_ns()
            elapsed = max((now - self.started_ns) / 1e9, 1e-9) if self.started_ns else 0.0
            counted = dict.fromkeys(_COUNTED, 0)
            for outs in self.step_out.values():
                for name in _COUNTED:
                    counted[name] += outs.get(name, 0)
            watermarks = {}
            for sid, op in self.operators.items():
                wm = op.watermark_ns()
                if wm is not None:
                    watermarks[sid] = ns_to_timestamp(wm)
            lags = [lag for r in self.readers.values() if (lag := r.lag()) is not None]
            sink_rows = sum(self.step_in[s] for s in self.writers)
            return {
                "status": self.status,
                "events_in": self.events_in,
                "events_out": sink_rows,
                "batches": self.batches,
                "events_per_s": self.events_in / elapsed if elapsed else 0.0,
                **counted,
                "watermark": min(watermarks.values()) if watermarks else None,
                "watermarks": watermarks,
                "lag": sum(lags) if lags else None,
                "partitions": {sid: list(parts) for sid, parts in self.assigned.items()},
                "commits": self.commits,
                "processing_time": ns_to_timestamp(now),
                "collect_limit": self.max_collect_rows,
                "collected_dropped": {r: c.dropped for r, c in self.collect.items() if c.dropped},
                "checkpoint_dir": None if self.checkpoint_dir is None else str(self.checkpoint_dir),
                "steps": {
                    sid: {
                        "kind": self.pipeline.steps[sid].kind,
                        "in": self.step_in[sid],
                        "out": dict(self.step_out[sid]),
                    }
                    for sid in self.pipeline.steps
                },
            }

    def open_state(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {sid: op.open_state() for sid, op in self.operators.items()}

    def step_state(self, sid: str) -> tuple[int | None, dict[str, Any]]:
        with self.lock:
            op = self.operators[sid]
            return op.watermark_ns(), op.open_state()

    def outputs(self) -> dict[str, pd.DataFrame]:
        with self.lock:
            return {ref: c.frame() for ref, c in self.collect.items()}

    def result(self) -> RunResult:
        return RunResult(
            self.outputs(), self.metrics(), self.last_checkpoint, self.status, self.pipeline, self.tape
        )

    def finish(self, flush_windows: bool) -> None:
        """Graceful end: optionally flush open windows, then flush sinks and commit."""
        if flush_windows:
            self.flush_operators()
        with self.lock:
            self.commit()
        if self.checkpoint_dir is None and not self.all_done():
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


def run(
    pipeline: Pipeline,
    *,
    clock: Clock | None = None,
    batch_size: int = 50_000,
    resume: Any = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    commit_every: Duration = "5s",
    max_events: int | None = None,
    duration: Duration | None = None,
    max_collect_rows: int | None = 100_000,
    progress: bool | None = None,
) -> RunResult:
    """Run a pipeline in this thread until its sources end, ``max_events`` have been read, or a stop.

    An interrupt (a notebook's interrupt button, Ctrl-C) or SIGTERM stops gracefully at the next batch
    boundary: sinks are flushed and source positions committed; after an interrupt the result's
    ``status`` is ``"interrupted"``. A second interrupt raises ``KeyboardInterrupt`` at once (sinks are
    still flushed and positions committed).

    Parameters
    ----------
    clock
        Processing-time clock; a :class:`~streamlab.clock.ManualClock` makes replays instant and exact.
    batch_size
        Largest micro-batch taken from a source at once.
    resume
        A checkpoint (``RunResult.checkpoint``) to continue from.
    checkpoint_dir
        Directory where checkpoints are saved and, on start, resumed from (only by the same pipeline:
        its fingerprint is checked). Without it, a run whose sources commit upstream (Kafka, Pub/Sub,
        Kinesis with ``checkpoint_path``) keeps its checkpoints in a default directory per pipeline
        (``metrics["checkpoint_dir"]``), so nothing acknowledged lives only in open windows.
    commit_every
        Processing time between commit points.
    max_events
        Stop (gracefully, keeping window state in the checkpoint) after this many source events.
    duration
        Stop gracefully after this much processing time (by ``clock``), e.g. ``"30s"``.
    max_collect_rows
        Rows kept per output without a sink (the newest); ``None`` keeps all. Rows dropped are counted in
        ``metrics["collected_dropped"]`` and :attr:`RunResult.dropped`; attach a sink to keep everything.
    progress
        Show a progress bar (tqdm) with events and rate, and a total and ETA when every source knows
        its length (replays of DataFrames and files). ``None`` (the default): in a terminal or a
        notebook, for runs that last longer than 2 s; ``True``: always; ``False``: never.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> run(Pipeline(ListSource([{'x': 1}, {'x': 2}])), clock=ManualClock(0)).metrics['events_in']
    2
    """
    ex = Executor(
        pipeline,
        clock=clock,
        batch_size=batch_size,
        resume=resume,
        checkpoint_dir=checkpoint_dir,
        commit_every=commit_every,
        max_collect_rows=max_collect_rows,
        duration=duration,
    )
    previous = previous_int = None
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        # the first interrupt stops at the next batch boundary, so no step is cut short mid-batch;
        # a second one raises KeyboardInterrupt as usual (a sink stuck on a remote call, say)
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        ex.stop_event.set()

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: ex.stop_event.set())
        previous_int = signal.signal(signal.SIGINT, on_interrupt)

    def restore_signals() -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)

    try:
        ex.open()
    except BaseException:
        restore_signals()
        raise
    bar = None
    if progress or (progress is None and _interactive()):
        bar = _progress_bar(pipeline, _known_total(ex, max_events), delay=0.0 if progress else 2.0)
    ex.limit = max_events
    try:
        while not ex.stop_event.is_set():
            if ex.all_done():
                ex.flush_operators()
                ex.status = "finished"
                break
            before = ex.events_in
            if not ex.poll_once():
                ex.wait_for_data()
            if bar is not None:
                bar.update(ex.events_in - before)
            if (max_events is not None and ex.taken >= max_events) or ex.past_deadline():
                ex.status = "stopped"
                break
            ex.maybe_commit()
        else:
            ex.status = "interrupted" if interrupted.is_set() else "stopped"
        ex.finish(flush_windows=False)
    except KeyboardInterrupt:
        ex.status = "interrupted"
        ex.finish(flush_windows=False)
    except BaseException:
        ex.status = "failed"
        raise
    finally:
        if bar is not None:
            bar.close()
        # the result is read before the sources close: a closed consumer no longer knows its lag
        result = ex.result() if ex.status != "failed" else None
        ex.close()
        restore_signals()
    assert result is not None
    return result


def _progress_bar(pipeline: Pipeline, total: int | None = None, delay: float = 0.0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(desc=pipeline.name, total=total, unit=" events", unit_scale=True, leave=True, delay=delay)


def _interactive() -> bool:
    """Whether a person is likely watching: an IPython kernel (a notebook) or a terminal on stderr."""
    shell = sys.modules.get("IPython")
    if shell is not None and "ipykernel" in sys.modules:
        ip = shell.get_ipython()
        if ip is not None and getattr(ip, "kernel", None) is not None:
            return True
    return bool(sys.stderr is not None and sys.stderr.isatty())


def _known_total(ex: Executor, max_events: int | None = None) -> int | None:
    """Events the run will read when every source is a replay of a DataFrame or file, else ``None``.

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> ex = Executor(Pipeline(ListSource([{"x": 1}] * 5)), clock=ManualClock(0))
    >>> ex.open(); _known_total(ex), _known_total(ex, max_events=3)
    (5, 3)
    >>> ex.close()
    """
    from streamlab.sources import ListSource, ReplaySource

    left = 0
    for sid, step in ex.pipeline.steps.items():
        if isinstance(step, SourceStep):
            if not isinstance(step.source, (ListSource, ReplaySource)):
                return None
            lag = ex.readers[sid].lag()
            if lag is None:
                return None
            left += lag
    return left if max_events is None else min(left, max_events)


class RunHandle:
    """A pipeline running in a background thread (made by :meth:`Pipeline.start`).

    The kernel stays free: call :meth:`pause`, :meth:`resume`, :meth:`step`, :meth:`set_speed`, read
    :attr:`metrics` and :attr:`outputs`, and :meth:`stop`, which flushes sinks, commits and joins the
    thread. Use it as a context manager to stop on exit.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> handle = Pipeline(ListSource([{'x': 1}])).start(clock=ManualClock(0))
    >>> handle.wait(timeout=30).status
    'finished'
    >>> handle.thread.is_alive()
    False
    """

    def __init__(self, executor: Executor, max_events: int | None = None, paused: bool = False) -> None:
        self._ex = executor
        self._max_events = max_events
        self._run_flag = threading.Event()
        if not paused:
            self._run_flag.set()
        self._steps = 0
        self._flush_windows = False
        self._cond = threading.Condition()
        self._done = threading.Event()
        self._thresholds: dict[str, float] = {}  # detect thresholds moved while running
        self._thread = threading.Thread(
            target=self._loop, name=f"streamlab-{executor.pipeline.name}", daemon=True
        )
        executor.open()  # closes what it opened if it fails
        executor.limit = max_events
        self._thread.start()

    def _loop(self) -> None:
        ex = self._ex
        try:
            while not ex.stop_event.is_set():
                if not self._run_flag.is_set():
                    if any(ex.pending.values()):  # paused: what was read ahead goes downstream now
                        with ex.lock:
                            ex.deliver_pending()
                    with self._cond:
                        if self._steps == 0:
                            ex.status = "paused"
                            self._cond.wait(0.1)
                            continue
                        self._steps -= 1
                    ex.status = "paused"
                    if not ex.all_done():
                        while (
                            not ex.poll_once(ahead=False) and not ex.all_done() and not ex.stop_event.is_set()
                        ):
                            ex.wait_for_data()
                    continue
                ex.status = "running"
                if ex.all_done():
                    ex.flush_operators()
                    ex.status = "finished"
                    ex.finish(flush_windows=False)
                    return
                if not ex.poll_once():
                    ex.wait_for_data()
                if (self._max_events is not None and ex.taken >= self._max_events) or ex.past_deadline():
                    break
                ex.maybe_commit()
            ex.finish(flush_windows=self._flush_windows)
            ex.status = "stopped"
        except BaseException as e:
            ex.error = e
            ex.status = "failed"
            log.error("pipeline %r failed: %s", ex.pipeline.name, e)
        finally:
            ex.close()
            self._done.set()

    # -- control -----------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop taking new events (state and connections are kept)."""
        self._run_flag.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        for r in self._ex.readers.values():
            hook = getattr(r, "on_resume", None)
            if hook is not None:
                hook()
        self._run_flag.set()

    def step(self, batches: int = 1) -> None:
        """While paused, process this many more source batches."""
        with self._cond:
            self._steps += batches
            self._cond.notify_all()

    def set_speed(self, speed: float | None) -> None:
        """Change the replay speed of sources that replay (``None`` = as fast as possible)."""
        for r in self._ex.readers.values():
            setter = getattr(r, "set_speed", None)
            if setter is not None:
                setter(speed)

    def show(self, ref: str, **options: Any) -> Any:
        """A live, bounded chart or table of output ``ref`` (see :func:`streamlab.widgets.show`)."""
        from streamlab.widgets import show

        return show(self, ref, **options)

    def set_threshold(self, step_id: str, value: float) -> None:
        """Move the fixed threshold of a running ``detect`` step; events from the next batch on use it.

        Only a :class:`~streamlab.detectors.FixedThresholdFilter` can move (it keeps no state, so the
        new filter is exact); the pipeline's definition and a checkpoint keep the configured value.

        Examples
        --------
        >>> import pandas as pd
        >>> from streamlab import ManualClock, Pipeline, ReplaySource
        >>> from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector
        >>> p = Pipeline(ReplaySource(pd.DataFrame({"timestamp": pd.date_range("2024", periods=3, tz="UTC"),
        ...                                         "x": [1.0, 2.0, 3.0]}), speed=None))
        >>> _ = p.stream.detect(GaussianScorerDetector(), features=["x"],
        ...                     threshold=FixedThresholdFilter(0.9), step_id="detect")
        >>> handle = p.start(clock=ManualClock(0), paused=True)
        >>> handle.set_threshold("detect", 0.5)
        >>> handle.thresholds
        {'detect': 0.5}
        >>> _ = handle.stop()
        """
        from streamlab.detectors import FixedThresholdFilter
        from streamlab.detectors._detect import Detect

        step = self._ex.pipeline.steps.get(step_id)
        config = step.config if isinstance(step, OperatorStep) else None
        if not isinstance(config, Detect) or not isinstance(config.threshold, FixedThresholdFilter):
            raise ValueError(
                f"set_threshold({step_id!r}): not a detect step with a FixedThresholdFilter; steps with one: "
                f"{list(self.thresholds)}"
            )
        moved = dataclasses.replace(config.threshold, value=float(value))
        with self._ex.lock:  # between batches: a batch is judged by one threshold
            self._ex.operators[step_id].threshold = moved.build(config.key)  # type: ignore[attr-defined]
            self._thresholds[step_id] = float(value)

    @property
    def thresholds(self) -> dict[str, float]:
        """The current value of every fixed detect threshold, by step id (what :meth:`set_threshold` moves)."""
        from streamlab.detectors import FixedThresholdFilter
        from streamlab.detectors._detect import Detect

        return {
            sid: self._thresholds.get(sid, float(step.config.threshold.value))
            for sid, step in self._ex.pipeline.steps.items()
            if isinstance(step, OperatorStep)
            and isinstance(step.config, Detect)
            and isinstance(step.config.threshold, FixedThresholdFilter)
        }

    def stop(self, *, flush_windows: bool = False, timeout: float = 60.0) -> RunResult:
        """Stop gracefully: optionally emit open windows, flush sinks, commit, and join the thread."""
        self._flush_windows = flush_windows
        self._ex.stop_event.set()
        self._run_flag.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"pipeline {self._ex.pipeline.name!r} did not stop within {timeout} s")
        return self._ex.result()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait until the run ends by itself (bounded sources); ``None`` on timeout."""
        if not self._done.wait(timeout):
            return None
        if self._ex.error is not None:
            raise self._ex.error
        return self._ex.result()

    def to_test(self, path: str | os.PathLike[str], **options: Any) -> Any:
        """Write a broker-free pytest module from what this run has read so far (see ``RunResult.to_test``)."""
        from streamlab._to_test import write_test

        with self._ex.lock:
            tape = self._ex.tape.copy()
        return write_test(self._ex.pipeline, tape, path, **options)

    def subscribe(
        self, ref: str, callback: Callable[[pd.DataFrame], None], *, replay: bool = False
    ) -> Callable[[], None]:
        """Call ``callback(frame)`` (in the pipeline's thread) for every batch on output ``ref``.

        With ``replay``, ``callback`` first gets (in the caller's thread) what the run collected on
        ``ref`` before the call, if ``ref`` has no sink: a subscriber that comes late misses nothing, and
        sees no batch twice. Returns a function that unsubscribes. Callbacks must be quick: widgets
        buffer and redraw later.
        """
        if ref.split(".")[0] not in self._ex.pipeline.steps:
            raise KeyError(f"unknown stream {ref!r}; steps are {list(self._ex.pipeline.steps)}")
        with self._ex.lock:  # batches are delivered under this lock: nothing slips in between
            collected = self._ex.collect.get(ref) if replay else None
            if collected is not None:
                earlier = collected.frame()
                if len(earlier):
                    callback(earlier)
            self._ex.subscribers.setdefault(ref, []).append(callback)

        def unsubscribe() -> None:
            with self._ex.lock:
                self._ex.subscribers.get(ref, []).remove(callback)

        return unsubscribe

    # -- state -------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._ex.status

    @property
    def error(self) -> BaseException | None:
        return self._ex.error

    @property
    def metrics(self) -> dict[str, Any]:
        return self._ex.metrics()

    @property
    def outputs(self) -> dict[str, pd.DataFrame]:
        return self._ex.outputs()

    @property
    def open_state(self) -> dict[str, dict[str, Any]]:
        """What each stateful step holds now (open windows, buffered rows)."""
        return self._ex.open_state()

    def step_state(self, step: str) -> tuple[pd.Timestamp | None, dict[str, Any]]:
        """One step's watermark and what it holds, without the cost of every step's (live views poll this).

        Examples
        --------
        >>> from streamlab import ManualClock, ReplaySource, TumblingWindow, agg
        >>> df = pd.DataFrame({"timestamp": pd.date_range("2030-01-01", periods=90, freq="s", tz="UTC")})
        >>> p = Pipeline(ReplaySource(df, batch_size=30), name="doc")
        >>> _ = p.window(TumblingWindow("1min")).agg(agg.count())
        >>> handle = p.start(clock=ManualClock(0))
        >>> handle.wait(timeout=30).metrics["events_in"]
        90
        >>> wm, held = handle.step_state("window")
        >>> str(wm), held["open_windows"]
        ('2030-01-01 00:01:29+00:00', [])
        """
        if step not in self.pipeline.steps:
            raise KeyError(f"step_state({step!r}): no such step; steps are {list(self.pipeline.steps)}")
        wm, held = self._ex.step_state(step)
        return (None if wm is None else pd.Timestamp(wm, tz="UTC")), held

    @property
    def checkpoint(self) -> Any:
        return self._ex.last_checkpoint

    @property
    def pipeline(self) -> Pipeline:
        return self._ex.pipeline

    @property
    def clock(self) -> Clock:
        return self._ex.clock

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop()

    def __repr__(self) -> str:
        m = self.metrics
        return f"RunHandle({self._ex.pipeline.name!r}, status={m['status']!r}, events_in={m['events_in']})"

    def _repr_html_(self) -> str:
        from streamlab._display import run_html

        p = self._ex.pipeline
        sinks = {sid: repr(step.sink) for sid, step in p.steps.items() if isinstance(step, SinkStep)}
        return run_html(p.name, self.metrics, {k: len(v) for k, v in self.outputs.items()}, sinks)


_LIVE: weakref.WeakSet[RunHandle] = weakref.WeakSet()
_PREVIOUS_SIGTERM: Any = None
_HOOKS_INSTALLED = False


def _stop_live_handles() -> None:
    for handle in list(_LIVE):
        if handle.thread.is_alive():
            try:
                handle.stop(timeout=30.0)
            except Exception:  # shutting down: stop the others too
                log.exception("stopping pipeline %r at shutdown failed", handle.pipeline.name)


def _on_sigterm(signum: int, frame: Any) -> None:
    _stop_live_handles()
    previous = _PREVIOUS_SIGTERM
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        raise SystemExit(128 + signum)


def _install_shutdown_hooks() -> None:
    """Background runs stop gracefully (flush, commit) on SIGTERM and at interpreter exit."""
    global _PREVIOUS_SIGTERM, _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    atexit.register(_stop_live_handles)
    if threading.current_thread() is threading.main_thread():
        _PREVIOUS_SIGTERM = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    _HOOKS_INSTALLED = True


def start(
    pipeline: Pipeline,
    *,
    clock: Clock | None = None,
    batch_size: int = 50_000,
    resume: Any = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    commit_every: Duration = "5s",
    max_events: int | None = None,
    duration: Duration | None = None,
    max_collect_rows: int | None = 100_000,
    paused: bool = False,
) -> RunHandle:
    """Start a pipeline in a background thread and return its :class:`RunHandle`.

    Options are those of :func:`run`. Unattached outputs are kept up to ``max_collect_rows`` rows each
    (the newest, as in :func:`run`); drops are counted in ``metrics["collected_dropped"]`` — attach a sink
    to keep everything. With ``paused=True`` nothing is
    read until :meth:`RunHandle.resume` or :meth:`RunHandle.step`.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> with start(Pipeline(ListSource([{'x': 1}])), clock=ManualClock(0), paused=True) as handle:
    ...     handle.status in ('created', 'running', 'paused')
    True
    """
    ex = Executor(
        pipeline,
        clock=clock,
        batch_size=batch_size,
        resume=resume,
        checkpoint_dir=checkpoint_dir,
        commit_every=commit_every,
        max_collect_rows=max_collect_rows,
        duration=duration,
    )
    handle = RunHandle(ex, max_events=max_events, paused=paused)
    _LIVE.add(handle)
    _install_shutdown_hooks()
    return handle
