"""The drive loop: one loop, used by ``run()`` in the caller's thread and by ``RunHandle`` in its own.

It polls, waits for data on the run's clock, commits every ``commit_every``, and ends when the
sources end (``"finished"``: operators have emitted what they held), when ``max_events`` or
``duration`` is reached (``"limit"``), or when the executor's ``stop_event`` is set (``"stopped"``).
A :class:`Pacer` (the handle's) can hold the loop paused between batches and step it batch by batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

from streamlab.runtime._executor import Executor

End = Literal["finished", "limit", "stopped"]


class Pacer:
    """Pause, resume and single-step a drive loop from another thread.

    Examples
    --------
    >>> pacer = Pacer(paused=True)
    >>> pacer.running, pacer.take_step()
    (False, False)
    >>> pacer.step(1); pacer.take_step(), pacer.take_step()
    (True, False)
    """

    def __init__(self, paused: bool = False) -> None:
        self._run = threading.Event()
        if not paused:
            self._run.set()
        self._steps = 0
        self._cond = threading.Condition()

    @property
    def running(self) -> bool:
        return self._run.is_set()

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        """Run again, and wake a loop waiting in :meth:`take_step` at once (not at its next turn)."""
        self._run.set()
        with self._cond:
            self._cond.notify_all()

    def step(self, batches: int = 1) -> None:
        if batches < 1:  # a negative count would never come back to 0: every later turn would step
            raise ValueError(f"step(batches={batches!r}): batches must be >= 1")
        with self._cond:
            self._steps += batches
            self._cond.notify_all()

    def release(self) -> None:
        """Let a paused loop see a stop at once."""
        self.resume()

    def take_step(self, wait: float = 0.0) -> bool:
        """Take one pending step, waiting up to ``wait`` seconds for one; False if none came."""
        with self._cond:
            if self._steps == 0 and wait > 0 and not self._run.is_set():
                self._cond.wait(wait)  # resume() and step() notify under this lock: no wake-up is lost
            if self._steps == 0:
                return False
            self._steps -= 1
            return True

    def hold(self, ex: Executor) -> None:
        """One turn of the loop while paused: deliver what was read ahead, then one step if asked for."""
        if ex.ahead.any_pending():  # paused: what was read ahead goes downstream now
            with ex.lock:
                ex.deliver_pending()
        ex.status = "paused"
        if not self.take_step(wait=0.1):
            return
        if not ex.all_done():
            while not ex.poll_once(ahead=False) and not ex.all_done() and not ex.stop_event.is_set():
                ex.wait_for_data()


def drive(ex: Executor, *, pacer: Pacer | None = None, on_moved: Callable[[int], None] | None = None) -> End:
    """Move events through ``ex`` (opened) until the input ends, a limit, or a stop; say which.

    ``on_moved(n)`` is told the events delivered by each poll (a progress bar).

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> ex = Executor(Pipeline(ListSource([{"x": 1}] * 5, batch_size=2)), clock=ManualClock(0), max_events=3)
    >>> ex.open(); drive(ex), ex.taken
    ('limit', 3)
    >>> ex.close()
    """
    while not ex.stop_event.is_set():
        if pacer is not None and not pacer.running:
            pacer.hold(ex)
            continue
        ex.status = "running"
        if ex.all_done():
            ex.flush_operators()
            return "finished"
        before = ex.events_in
        if not ex.poll_once():
            ex.wait_for_data()
        if on_moved is not None:
            on_moved(ex.events_in - before)
        if ex.reached_limit() or ex.past_deadline():
            return "limit"
        ex.maybe_commit()
    return "stopped"
