"""The commit log of a run: where checkpoints live, what a snapshot holds, and the commit order.

At each commit point every sink is flushed, the state snapshot is saved (to ``checkpoint_dir`` when
there is one), the sinks publish what they staged, and only then are the sources told to commit their
positions: a position is committed upstream only once everything derived from it is in a sink or in a
saved checkpoint. A source's committable position is the one before its oldest batch read but not
fully delivered (:class:`Positions`), so a batch cut short is read again on restart.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamlab._checkpoint import (
    CheckpointError,
    DirectoryLock,
    default_checkpoint_dir,
    earlier_fingerprints,
    load_checkpoint,
    pipeline_fingerprint,
    save_checkpoint,
)
from streamlab._time import ns_to_timestamp
from streamlab.clock import Clock
from streamlab.errors import SinkFailedError
from streamlab.io import SinkWriter, SourceReader
from streamlab.operators import Operator
from streamlab.pipeline import Pipeline
from streamlab.steps import SinkStep, SourceStep, Step

log = logging.getLogger("streamlab")


class Positions:
    """Per source: the position after the last batch read, and the one before each batch not yet delivered.

    Only positions before those may be committed: a batch cut short by an exception (a
    ``KeyboardInterrupt`` in a sink, say) is read again on restart; ``torn`` records that a delivery
    was cut short, so the steps' state holds part of a batch.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> reader = ListSource([{"x": 1}, {"x": 2}], batch_size=1).open()
    >>> pos = Positions({"s": reader})
    >>> _ = reader.poll(1); pos.read("s")
    >>> pos.committable("s"), pos.delivered("s"), pos.committable("s")
    ({'position': 0}, None, {'position': 1})
    """

    def __init__(self, readers: Mapping[str, SourceReader]) -> None:
        self.readers = readers
        self.read_pos: dict[str, Any] = {sid: r.snapshot() for sid, r in readers.items()}
        self.unfinished: dict[str, deque[Any]] = {sid: deque() for sid in readers}
        self.torn = False

    def read(self, sid: str) -> None:
        """Source ``sid`` returned a batch: it is ours until :meth:`delivered`."""
        self.unfinished[sid].append(self.read_pos[sid])
        self.read_pos[sid] = self.readers[sid].snapshot()

    def delivered(self, sid: str) -> None:
        """The oldest batch of ``sid`` not yet delivered now is."""
        self.unfinished[sid].popleft()

    def committable(self, sid: str) -> Any:
        """Where source ``sid`` may be committed: before its oldest batch not fully delivered."""
        unfinished = self.unfinished.get(sid)
        return unfinished[0] if unfinished else self.readers[sid].snapshot()


class CommitLog:
    """Checkpoints of one run: the directory, the last snapshot, and the flush-save-publish-commit order.

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> log = CommitLog(Pipeline(ListSource([{"x": 1}])), ManualClock(0), checkpoint_dir=None, resume=None)
    >>> log.checkpoint_dir is None, log.commit_id
    (True, 0)
    """

    def __init__(
        self,
        pipeline: Pipeline,
        clock: Clock,
        *,
        checkpoint_dir: str | os.PathLike[str] | None,
        resume: Any,
    ) -> None:
        self.pipeline = pipeline
        self.clock = clock
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
        self.lock: DirectoryLock | None = None
        if self.checkpoint_dir is not None:
            self.lock = DirectoryLock(self.checkpoint_dir, f"pipeline {pipeline.name!r}")
        try:
            resume = self._resumed(resume, upstream)
        except BaseException:
            self.release()  # (a traceback kept by a notebook would otherwise hold the lock)
            raise
        self.resume: Any = resume
        self.last_checkpoint: Any = resume
        self.commit_id = int((resume or {}).get("commit", 0))
        self.commits = 0
        self.last_commit_ns = 0

    def _resumed(self, resume: Any, upstream: list[str]) -> Any:
        """The state to resume: ``resume`` as given, or the checkpoint directory's (checked)."""
        pipeline = self.pipeline
        if resume is None and self.checkpoint_dir is not None:
            resume = load_checkpoint(
                self.checkpoint_dir,
                self.fingerprint,
                self.step_fingerprints,
                earlier_fingerprints(pipeline),
            )
            if resume is not None and self.default_checkpoint_dir:
                log.warning(
                    "pipeline %r: no checkpoint_dir given; resuming the state kept in %s, because source(s) "
                    "%s committed positions upstream (pass checkpoint_dir= to choose the place)",
                    pipeline.name,
                    self.checkpoint_dir,
                    upstream,
                )
        elif resume is not None and (
            not isinstance(resume, dict) or not {"sources", "operators"} & resume.keys()
        ):
            # a path, or some other dict: it was ignored (a fresh start) or failed with AttributeError
            raise CheckpointError(
                "given as resume=",
                f"it is {type(resume).__name__} {str(resume)[:60]!r}, not a checkpoint",
                "pass the checkpoint of an earlier run of this pipeline (result.checkpoint), or "
                "checkpoint_dir='DIR' to resume from the checkpoints saved in a directory",
            )
        elif resume is not None and resume.get("fingerprint", self.fingerprint) != self.fingerprint:
            raise CheckpointError(
                "given as resume=",
                f"it was taken from pipeline {resume.get('pipeline')!r}, whose steps or sources differ",
                "resume a checkpoint only with the pipeline that made it; leave resume out to start fresh",
            )
        return resume

    def release(self) -> None:
        """Let another run use the checkpoint directory (at the end of this one)."""
        if self.lock is not None:
            self.lock.release()

    def snapshot(
        self,
        operators: Mapping[str, Operator],
        positions: Positions,
        writers: Mapping[str, SinkWriter],
    ) -> dict[str, Any]:
        """A picklable copy of all state: operators, source positions and where each sink's output ends.

        Collected outputs (those without a sink) are not part of it: they are a view, bounded by
        ``max_collect_rows``, not state.
        """
        return {
            "version": 2,
            "pipeline": self.pipeline.name,
            "fingerprint": self.fingerprint,
            "commit": self.commit_id,
            "operators": {sid: op.snapshot() for sid, op in operators.items()},
            "sources": {sid: positions.committable(sid) for sid in positions.readers},
            "sinks": {sid: w.snapshot() for sid, w in writers.items()},
            "sink_ids": {sid: sink_identity(self.pipeline.steps[sid]) for sid in writers},
        }

    def save(self, snap: dict[str, Any]) -> None:
        """Write ``snap`` to the checkpoint directory (there must be one)."""
        if self.checkpoint_dir is None:
            raise RuntimeError("CommitLog.save: this run has no checkpoint directory")
        header = {
            "pipeline": self.pipeline.name,
            "fingerprint": self.fingerprint,
            "steps": self.step_fingerprints,
            "commit": snap["commit"],
            "written_by": f"pid {os.getpid()} at {ns_to_timestamp(self.clock.now_ns())}",
        }
        save_checkpoint(self.checkpoint_dir, snap, header)

    def commit(
        self,
        operators: Mapping[str, Operator],
        positions: Positions,
        writers: Mapping[str, SinkWriter],
    ) -> None:
        """Flush sinks, save the state snapshot, publish what sinks staged, then commit source positions.

        The caller has delivered every batch read (unless ``positions.torn``). After a batch's delivery
        was cut short, the last checkpoint is kept (the steps' state has part of a batch). With a
        checkpoint directory, sources are committed to that checkpoint's positions and staged sink data
        is not published: a restart resumes exactly from it. Without one, each source is committed up
        to the batches it fully delivered: the cut batch and any read after it are read again on
        restart. Nothing is lost.
        """
        readers = positions.readers
        for sid, w in writers.items():
            with sink_call(self.pipeline, sid, "flushing at a commit"):  # nothing is committed if it fails
                w.flush()
        if positions.torn and self.checkpoint_dir is not None:
            last = self.last_checkpoint or {}
            kept = {sid: last.get("sources", {}).get(sid) for sid in readers}
            log.warning(
                "pipeline %r: a batch was cut short while being delivered; kept the last checkpoint "
                "(commit %s) and committed its positions: what came after it is read again on restart",
                self.pipeline.name,
                last.get("commit", 0),
            )
            for sid, r in readers.items():
                if kept[sid] is not None:
                    with source_call(self.pipeline, sid, "committing its position"):
                        r.commit(kept[sid])
            self.last_commit_ns = self.clock.now_ns()
            return
        if positions.torn:
            for sid, w in writers.items():
                _publish(self.pipeline, sid, w)
            committed = {sid: positions.committable(sid) for sid in readers}
            for sid in readers:
                if positions.unfinished[sid]:
                    log.warning(
                        "pipeline %r: a batch of %r was cut short while being delivered; committed %r, "
                        "the position before it (it is read again on restart), and kept the last "
                        "checkpoint",
                        self.pipeline.name,
                        sid,
                        committed[sid],
                    )
        else:
            self.commit_id += 1
            snap = self.snapshot(operators, positions, writers)
            if self.checkpoint_dir is not None:
                self.save(snap)
            self.last_checkpoint = snap
            for sid, w in writers.items():
                _publish(self.pipeline, sid, w)  # after the checkpoint: a crash before it drops staged data
            committed = snap["sources"]
        for sid, r in readers.items():
            with source_call(self.pipeline, sid, "committing its position"):
                r.commit(committed[sid])
        self.commits += 1
        self.last_commit_ns = self.clock.now_ns()


def _publish(pipeline: Pipeline, sid: str, writer: SinkWriter) -> None:
    with sink_call(pipeline, sid, "publishing what it staged at a commit"):
        writer.commit()  # the sources stay uncommitted if it fails: a restart writes it again


@contextmanager
def sink_call(pipeline: Pipeline, sid: str, action: str, *, rows: bool = True) -> Iterator[None]:
    """Run a call to the sink of step ``sid``; its failure becomes a :class:`SinkFailedError` naming the
    step, chained to the sink's own exception. An ``ImportError`` (a missing extra, which it names)
    passes as it is.

    Examples
    --------
    >>> from streamlab import ListSink, Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{"x": 1}]))
    >>> _ = p.stream.to(ListSink(), step_id="out")
    >>> try:
    ...     with sink_call(p, "out", "flushing", rows=False):
    ...         raise OSError("disk full")
    ... except SinkFailedError as e:
    ...     print(str(e)[:58], repr(e.__cause__))
    step 'out' (ListSink) failed flushing: OSError: disk full. OSError('disk full')
    """
    try:
        yield
    except (ImportError, SinkFailedError):
        raise
    except Exception as e:
        step = pipeline.steps.get(sid)
        kind = type(step.sink).__name__ if isinstance(step, SinkStep) else "sink"
        raise SinkFailedError(sid, kind, action, e, rows=rows) from e


@contextmanager
def source_call(pipeline: Pipeline, sid: str, action: str) -> Iterator[None]:
    """Run a call to the source of step ``sid``; its failure keeps its type (``KafkaUnreachableError``
    and the others are documented, and caught by their type) and gets a note naming the step, which
    tracebacks and the command line show.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{"x": 1}]))
    >>> try:
    ...     with source_call(p, "source", "polling"):
    ...         raise OSError("gone")
    ... except OSError as e:
    ...     print(e.__notes__)
    ["step 'source' (ListSource) failed polling"]
    """
    try:
        yield
    except Exception as e:
        step = pipeline.steps.get(sid)
        kind = type(step.source).__name__ if isinstance(step, SourceStep) else "source"
        note = f"step {sid!r} ({kind}) failed {action}"
        notes = getattr(e, "__notes__", None)
        if notes is None or note not in notes:
            if hasattr(e, "add_note"):  # Python 3.11+
                e.add_note(note)
            else:  # pragma: no cover - Python 3.10: kept where 3.11's tracebacks would read it
                e.__notes__ = [*(notes or []), note]
        raise


def sink_identity(step: Step) -> str:
    """What a sink step writes to (its kind and settings, as its spec gives them), to tell on resume
    whether a checkpoint's sink state is this sink's: a changed sink must not get another sink's state
    (a JSON-lines file cut to the old file's length, Parquet parts of an existing dataset deleted).

    Examples
    --------
    >>> from streamlab import JsonLinesSink, ListSink, Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{"x": 1}]))
    >>> _ = p.stream.to(JsonLinesSink("out.jsonl"), step_id="a")
    >>> _ = p.stream.to(ListSink(), step_id="b")
    >>> sink_identity(p.steps["a"]), sink_identity(p.steps["b"])
    ('{"kind": "jsonl", "path": "out.jsonl"}', '{"kind": "list"}')
    """
    import json

    if not isinstance(step, SinkStep):
        return ""
    try:
        spec: Any = step.sink.spec()
    except Exception:  # an in-memory sink, say: its class is what can be told
        spec = {"class": f"{type(step.sink).__module__}.{type(step.sink).__qualname__}"}
    return json.dumps(spec, sort_keys=True, default=str)
