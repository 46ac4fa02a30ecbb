"""The handle of a background run (:class:`RunHandle`), and ``start()``, which makes one."""

from __future__ import annotations

import dataclasses
import logging
import numbers
import os
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from streamlab.clock import Clock
from streamlab.pipeline import Pipeline
from streamlab.runtime import _shutdown
from streamlab.runtime._drive import Pacer, drive
from streamlab.runtime._executor import Executor
from streamlab.runtime._tail import REPLAY_ROWS
from streamlab.runtime.metrics import RunMetrics
from streamlab.runtime.options import RunOptions, takes_run_options
from streamlab.runtime.result import RunResult
from streamlab.steps import OperatorStep, SinkStep

__all__ = ["RunHandle", "start"]

log = logging.getLogger("streamlab")


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

    def __init__(self, executor: Executor, *, paused: bool = False) -> None:
        self._ex = executor
        self._pacer = Pacer(paused)
        self._flush_windows = False
        self._done = threading.Event()
        self._thresholds: dict[str, float] = {}  # detect thresholds moved while running
        self._thread = threading.Thread(
            target=self._loop, name=f"streamlab-{executor.pipeline.name}", daemon=True
        )
        executor.handle = self
        # a live view made after rows went by replays them (subscribe(replay=True)), also from a
        # stream with a sink; run() keeps no such tail, so its cost is only here
        executor.router.keep_tails(REPLAY_ROWS)
        executor.open()  # closes what it opened if it fails
        self._thread.start()

    def _loop(self) -> None:
        ex = self._ex
        try:
            if drive(ex, pacer=self._pacer) == "finished":
                ex.status = "finished"
                ex.finish(flush_windows=False)
            else:
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
        self._pacer.pause()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        for r in self._ex.readers.values():
            r.on_resume()
        self._pacer.resume()

    def step(self, batches: int = 1) -> None:
        """While paused, process this many more source batches (a whole number from 1)."""
        if isinstance(batches, bool) or not isinstance(batches, numbers.Integral) or batches < 1:
            raise ValueError(
                f"step(batches={batches!r}): batches must be a whole number of source batches >= 1, e.g. step(1)"
            )
        self._pacer.step(int(batches))

    def set_speed(self, speed: float | None) -> None:
        """Change the replay speed of sources that replay (a positive, finite number; ``None`` = as fast
        as possible). A speed that cannot work raises ``ValueError`` here and the run goes on as it was."""
        from streamlab.sources import replay_speed

        speed = replay_speed("set_speed", speed)
        for r in self._ex.readers.values():
            r.set_speed(speed)

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
        self._ex.request_stop()
        self._pacer.release()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"pipeline {self._ex.pipeline.name!r} did not stop within {timeout} s")
        _shutdown.release()
        return self._ex.result()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait until the run ends by itself (bounded sources); ``None`` on timeout."""
        if not self._done.wait(timeout):
            return None
        # _done is the thread's last step, not its end: on Python 3.13 the thread was often still
        # alive here, so _shutdown.release() kept the SIGTERM handler and the exit hook of a finished run
        self._thread.join(timeout)
        _shutdown.release()
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

        With ``replay``, ``callback`` first gets (in the caller's thread) what the run kept of ``ref``
        before the call: everything it collected if ``ref`` has no sink (up to ``max_collect_rows``),
        the newest 10 000 rows if a sink or a step reads it (:data:`~streamlab.runtime._tail.REPLAY_ROWS`;
        a source's raw records only when a sink reads them). A subscriber that comes late misses nothing
        within those bounds, and sees no batch twice. Returns a function that unsubscribes. Callbacks must
        be quick: widgets buffer and redraw later. A callback that raises is logged and unsubscribed; the
        run goes on.
        """
        if ref.split(".")[0] not in self._ex.pipeline.steps:
            raise KeyError(f"unknown stream {ref!r}; steps are {list(self._ex.pipeline.steps)}")
        with self._ex.lock:  # batches are delivered under this lock: nothing slips in between
            kept = (self._ex.collect.get(ref) or self._ex.router.tails.get(ref)) if replay else None
            if kept is not None:
                earlier = kept.frame()
                if len(earlier):
                    callback(earlier)
            self._ex.subscribers.setdefault(ref, []).append(callback)

        def unsubscribe() -> None:
            with self._ex.lock:
                callbacks = self._ex.subscribers.get(ref, [])
                if callback in callbacks:  # (one that raised is gone already)
                    callbacks.remove(callback)

        return unsubscribe

    # -- state -------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._ex.status

    @property
    def error(self) -> BaseException | None:
        return self._ex.error

    @property
    def metrics(self) -> RunMetrics:
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
        _shutdown.release()

    def __repr__(self) -> str:
        m = self.metrics
        return f"RunHandle({self._ex.pipeline.name!r}, status={m['status']!r}, events_in={m['events_in']})"

    def _repr_html_(self) -> str:
        from streamlab._display import run_html

        p = self._ex.pipeline
        sinks = {sid: repr(step.sink) for sid, step in p.steps.items() if isinstance(step, SinkStep)}
        return run_html(p.name, self.metrics, {k: len(v) for k, v in self.outputs.items()}, sinks)


@takes_run_options
def start(
    pipeline: Pipeline, options: RunOptions | None = None, /, *, paused: bool = False, **fields: Any
) -> RunHandle:
    """Start a pipeline in a background thread and return its :class:`RunHandle`.

    ``options`` and keyword arguments are those of :func:`~streamlab.runtime.run` (a
    :class:`RunOptions`). Unattached outputs are kept up to ``max_collect_rows`` rows each (the newest,
    as in ``run``); drops are counted in ``metrics["collected_dropped"]`` — attach a sink to keep
    everything. Of each stream a sink reads, the newest 10 000 rows are kept too, not as results but
    for live views made later (:meth:`RunHandle.subscribe` with ``replay``). With ``paused=True`` nothing is read until :meth:`RunHandle.resume` or
    :meth:`RunHandle.step`.

    While a handle runs, SIGTERM stops it gracefully and then reaches the handler that was installed
    before (see ``streamlab.runtime._shutdown``); that handler is back once the last handle stopped.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> with start(Pipeline(ListSource([{'x': 1}])), clock=ManualClock(0), paused=True) as handle:
    ...     handle.status in ('created', 'running', 'paused')
    True
    """
    handle = RunHandle(Executor(pipeline, options, **fields), paused=paused)
    _shutdown.register(handle)
    return handle
