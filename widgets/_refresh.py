"""Bounded buffers and the throttled refresher that pulls pipeline output into widgets.

The pipeline thread only appends to a :class:`FrameBuffer` (cheap, bounded); a :class:`Refresher` owned by
a widget pulls from it at most ``max_fps`` times per second on the kernel's event loop (or, outside a
kernel, on its own thread) so a fast pipeline can neither flood the browser nor block the kernel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from streamlab.clock import Clock, SystemClock

__all__ = ["FrameBuffer", "Refresher"]

log = logging.getLogger("streamlab.widgets")


class FrameBuffer:
    """A thread-safe ring buffer of DataFrame rows that keeps at most ``max_rows`` (the newest).

    ``append`` is called in the pipeline thread and does O(1) work (it keeps a reference: pandas
    copy-on-write means the pipeline cannot change a frame it emitted) plus, for a batch larger than
    ``max_rows``, one vectorized down-sample; ``drain`` hands everything buffered to the reader and does
    the pandas work there (concatenation, column selection), off the pipeline thread.

    Parameters
    ----------
    max_rows
        Most rows held; older whole frames are dropped first (counted in ``dropped``).
    columns
        The columns ``drain`` returns (those of them a frame has).
    keep
        For a single batch larger than ``max_rows``: keep its ``"newest"`` rows or an even ``"sample"``.

    Examples
    --------
    >>> buf = FrameBuffer(max_rows=3)
    >>> buf.append(pd.DataFrame({"x": [1, 2]}))
    >>> buf.append(pd.DataFrame({"x": [3, 4]}))
    >>> buf.drain()["x"].tolist(), buf.dropped
    ([2, 3, 4], 1)
    """

    def __init__(self, max_rows: int, columns: list[str] | None = None, keep: str = "newest") -> None:
        if max_rows < 1:
            raise ValueError(f"FrameBuffer(max_rows={max_rows}): must be at least 1")
        if keep not in ("newest", "sample"):
            raise ValueError(f"FrameBuffer(keep={keep!r}): use 'newest' or 'sample'")
        self.keep = keep
        self.max_rows = max_rows
        self.columns = columns
        self._frames: deque[pd.DataFrame] = deque()
        self._rows = 0
        self._lock = threading.Lock()
        self.dropped = 0
        self.appended = 0

    def append(self, frame: pd.DataFrame) -> None:
        """Add a frame (cuts a batch that alone exceeds ``max_rows``)."""
        n = len(frame)
        if n == 0:
            return
        if n > self.max_rows and self.keep == "sample":
            # An even sample keeps the shape of a huge batch without holding all of it.
            frame = frame.iloc[np.linspace(0, n - 1, self.max_rows).astype(np.int64)]
        elif n > self.max_rows:
            frame = frame.iloc[n - self.max_rows :]
        with self._lock:
            self.appended += n
            self.dropped += n - len(frame)
            self._frames.append(frame)
            self._rows += len(frame)
            while self._rows - len(self._frames[0]) >= self.max_rows and len(self._frames) > 1:
                old = self._frames.popleft()
                self._rows -= len(old)
                self.dropped += len(old)

    def drain_frames(self) -> list[pd.DataFrame]:
        """Every frame buffered since the last drain, oldest first, with at most ``max_rows`` rows in all.

        The buffer is emptied. The frames are the pipeline's own (all columns, their own index): no
        pandas work is done, so a reader that needs a few columns as arrays takes them frame by frame.

        Examples
        --------
        >>> buf = FrameBuffer(max_rows=3)
        >>> buf.append(pd.DataFrame({"x": [1, 2]}))
        >>> buf.append(pd.DataFrame({"x": [3, 4]}))
        >>> [f["x"].tolist() for f in buf.drain_frames()], buf.drain_frames()
        ([[2], [3, 4]], [])
        """
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
            self._rows = 0
            # append keeps fewer than max_rows rows after the oldest frame: cutting that one is enough
            excess = sum(len(f) for f in frames) - self.max_rows
            if excess > 0:
                self.dropped += excess
                frames[0] = frames[0].iloc[excess:]
        return frames

    def drain(self) -> pd.DataFrame | None:
        """Everything buffered since the last drain as one frame (``None`` when empty); the buffer is emptied."""
        frames = self.drain_frames()
        if not frames:
            return None
        out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
        if self.columns is not None:
            # Selected once per drain, not per batch: pandas' per-call overhead stays off the pipeline thread.
            out = out[[c for c in self.columns if c in out.columns]]
        return out

    def __len__(self) -> int:
        with self._lock:
            return self._rows


class Refresher:
    """Calls ``callback()`` up to ``max_fps`` times per second until :meth:`stop`; an object, never a hidden loop.

    In a Jupyter kernel (a running asyncio loop in this thread) it is a task on that loop, so widget
    messages are sent from the kernel's own thread between cells. Without a running loop it is a
    thread named ``streamlab-widgets-refresher``. Ticks are scheduled on fixed deadlines, so the rate
    holds at ``max_fps`` even when a callback takes a while (a late tick is skipped, not queued).

    Redraws must not slow the pipeline they show: the refresher measures the CPU time its callback
    takes (``cpu_clock``, the thread's CPU time) and, when ticking at ``max_fps`` would use more than
    ``cpu_share`` of a core, spaces the ticks out so it uses that share, but never below ``min_fps``.
    ``fps`` is the rate it currently aims at.

    Parameters
    ----------
    callback
        Called on every tick; exceptions are logged and the refresher keeps going.
    max_fps
        Ticks per second.
    clock
        Where time comes from (a :class:`~streamlab.clock.SystemClock` by default).
    mode
        ``"auto"`` (asyncio when a loop runs here, else thread), ``"asyncio"`` or ``"thread"``.
    min_fps
        The lowest rate the CPU budget may slow it to (default ``min(6, max_fps)``: live charts redraw at
        least 5 times a second, with a margin for ticks that land late).
    cpu_share
        The share of one core the callbacks may use before the rate drops towards ``min_fps``
        (default 0.03); ``None`` keeps ``max_fps`` whatever a tick costs.
    cpu_clock
        Seconds of CPU time of the calling thread (``time.thread_time``); tests pass a fake.

    Examples
    --------
    >>> from streamlab.clock import ManualClock
    >>> r = Refresher(lambda: None, max_fps=10, clock=ManualClock(0))
    >>> r.tick_once(), r.ticks, r.running
    (True, 1, False)

    A tick that costs 8 ms of CPU at 10 per second would use 8% of a core; with a 5% share the
    refresher slows to 6.25 per second:

    >>> cpu = iter([0.0, 0.008])
    >>> r = Refresher(lambda: None, max_fps=10, cpu_share=0.05, cpu_clock=lambda: next(cpu))
    >>> r.tick_once(), r.fps
    (True, 6.25)
    >>> with Refresher(lambda: None, max_fps=50, mode="thread") as live:
    ...     live.running
    True
    >>> live.running
    False
    """

    def __init__(
        self,
        callback: Callable[[], Any],
        *,
        max_fps: float = 10.0,
        clock: Clock | None = None,
        mode: str = "auto",
        min_fps: float | None = None,
        cpu_share: float | None = 0.03,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        if not callable(callback):  # it failed on the first tick, in the refresher's thread
            raise TypeError(
                f"Refresher(callback={callback!r}): pass a function to call, e.g. Refresher(widget.refresh)"
            )
        if not max_fps > 0:
            raise ValueError(f"Refresher(max_fps={max_fps}): max_fps must be positive, e.g. 10")
        if mode not in ("auto", "asyncio", "thread"):
            raise ValueError(f"Refresher(mode={mode!r}): use 'auto', 'asyncio' or 'thread'")
        min_fps = min(6.0, float(max_fps)) if min_fps is None else float(min_fps)
        if not 0 < min_fps <= max_fps:
            raise ValueError(f"Refresher(min_fps={min_fps}): must be positive and at most max_fps={max_fps}")
        if cpu_share is not None and not 0 < cpu_share <= 1:
            raise ValueError(f"Refresher(cpu_share={cpu_share}): a share of one core in (0, 1], e.g. 0.05")
        self.callback = callback
        self.max_fps = float(max_fps)
        self.min_fps = min_fps
        self.cpu_share = cpu_share
        self.cpu_clock = cpu_clock
        self.fps = self.max_fps
        self._cost = 0.0  # smoothed CPU seconds per tick
        self.clock = clock or SystemClock()
        self.mode = mode
        self.ticks = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def interval_ns(self) -> int:
        """Nanoseconds between ticks at the current rate ``fps``."""
        return int(1e9 / self.fps)

    @property
    def running(self) -> bool:
        """Whether the background task or thread is alive."""
        if self._task is not None:
            return not self._task.done()
        return self._thread is not None and self._thread.is_alive()

    def tick_once(self) -> bool:
        """Run the callback once now (what each scheduled tick does)."""
        self.ticks += 1
        started = self.cpu_clock()
        try:
            self.callback()
        except Exception:
            self.errors += 1
            log.exception("widget refresh failed")
            return False
        finally:
            self._pace(self.cpu_clock() - started)
        return True

    def _pace(self, cost: float) -> None:
        """Set ``fps`` from the CPU time ticks take (smoothed; the first tick counts whole)."""
        if self.cpu_share is None:
            return
        self._cost = cost if self.ticks == 1 else 0.7 * self._cost + 0.3 * cost
        affordable = self.cpu_share / self._cost if self._cost > 0 else self.max_fps
        self.fps = max(self.min_fps, min(self.max_fps, affordable))

    def start(self) -> Refresher:
        """Start ticking (idempotent); returns ``self`` so ``with Refresher(...).start()`` reads well."""
        if self.running:
            return self
        self._stop.clear()
        loop = None
        if self.mode in ("auto", "asyncio"):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                if self.mode == "asyncio":
                    raise RuntimeError(
                        "Refresher(mode='asyncio') needs a running asyncio loop in this thread "
                        "(a Jupyter kernel has one); use mode='thread' in scripts"
                    ) from None
        if loop is not None:
            self._task = loop.create_task(self._run_async())
        else:
            self._thread = threading.Thread(
                target=self._run_thread, name="streamlab-widgets-refresher", daemon=True
            )
            self._thread.start()
        return self

    def _next_deadline(self, deadline: int) -> tuple[int, float]:
        now = self.clock.now_ns()
        deadline += self.interval_ns
        if deadline < now:  # fell behind: skip the missed ticks rather than bursting
            deadline = now + self.interval_ns - (now - deadline) % self.interval_ns
        return deadline, max(0.0, (deadline - now) / 1e9)

    async def _run_async(self) -> None:
        deadline = self.clock.now_ns()
        while not self._stop.is_set():
            self.tick_once()
            deadline, wait = self._next_deadline(deadline)
            await asyncio.sleep(wait)

    def _run_thread(self) -> None:
        deadline = self.clock.now_ns()
        while not self._stop.is_set():
            self.tick_once()
            deadline, wait = self._next_deadline(deadline)
            self.clock.sleep(wait, self._stop)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ticking and wait for the thread (if any) to end."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._thread is not None:
            if self._thread is not threading.current_thread():
                self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Refresher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Refresher(max_fps={self.max_fps}, fps={self.fps:.1f}, running={self.running}, ticks={self.ticks})"
