"""``run()``: a pipeline in the caller's thread, stopped gracefully by an interrupt or SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from streamlab.pipeline import Pipeline
from streamlab.runtime import _progress
from streamlab.runtime._drive import drive
from streamlab.runtime._executor import Executor
from streamlab.runtime.options import RunOptions, takes_run_options
from streamlab.runtime.result import RunResult


@takes_run_options
def run(
    pipeline: Pipeline, options: RunOptions | None = None, /, *, progress: bool | None = None, **fields: Any
) -> RunResult:
    """Run a pipeline in this thread until its sources end, ``max_events`` have been read, or a stop.

    An interrupt (a notebook's interrupt button, Ctrl-C) or SIGTERM stops gracefully at the next batch
    boundary: sinks are flushed and source positions committed; after an interrupt the result's
    ``status`` is ``"interrupted"``. A second interrupt (or SIGTERM) cuts the batch short at once (sinks are
    still flushed and positions committed).

    Parameters
    ----------
    pipeline
        The pipeline to run.
    options
        A :class:`RunOptions`; keyword arguments (``clock``, ``batch_size``, ``resume``,
        ``checkpoint_dir``, ``commit_every``, ``max_events``, ``duration``, ``max_collect_rows``) replace
        its fields; see :class:`RunOptions` for each.
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
    >>> run(Pipeline(ListSource([{'x': i} for i in range(5)])), clock=ManualClock(0),
    ...     max_collect_rows=2)['source']['x'].tolist()
    [3, 4]
    """
    ex = Executor(pipeline, options, **fields)
    previous: Any = None
    previous_int: Any = None
    interrupted, terminated = threading.Event(), threading.Event()

    def stopper(seen: threading.Event) -> Callable[[int, FrameType | None], None]:
        # the first signal stops at the next batch boundary, so no step is cut short mid-batch; a second
        # raises KeyboardInterrupt at once (a sink stuck on a remote call, a step stuck in a long batch)
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if seen.is_set():
                raise KeyboardInterrupt
            seen.set()
            ex.request_stop()

        return on_signal

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, stopper(terminated))
        previous_int = signal.signal(signal.SIGINT, stopper(interrupted))

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
    bar = _progress.progress_bar(ex, progress)
    result: RunResult | None = None
    try:
        end = drive(ex, on_moved=None if bar is None else bar.update)
        if end == "finished":
            ex.status = "finished"
        else:
            ex.status = "interrupted" if end == "stopped" and interrupted.is_set() else "stopped"
        ex.finish(flush_windows=False)
    except KeyboardInterrupt:
        ex.status = "stopped" if terminated.is_set() and not interrupted.is_set() else "interrupted"
        ex.finish(flush_windows=False)
    except BaseException as e:
        ex.status, ex.error = "failed", e
        raise
    finally:
        if bar is not None:
            bar.close()
        # the result is read before the sources close: a closed consumer no longer knows its lag
        result = ex.result() if ex.status != "failed" else None
        ex.close()
        restore_signals()
    assert result is not None  # the run did not fail: a failure re-raised above
    return result
