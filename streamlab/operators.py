"""The contract between a frozen step (configuration) and its runtime state: :class:`Operator`.

A step is an immutable description; ``step.build()`` returns an :class:`Operator`, the mutable, picklable
state the runtime feeds with micro-batches (``pandas.DataFrame``) and which returns its outputs by name
(``"out"``, ``"late"``, ``"dead_letter"``, ...). Subclass it for a custom step (``Stream.apply``); every
optional hook has a no-op default, so a custom operator overrides only :meth:`Operator.process`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Operator", "Outputs"]

Outputs = dict[str, pd.DataFrame]


class Operator:
    """Mutable runtime state of one step.

    Subclasses override :meth:`process`; stateful ones also override :meth:`on_end`, :meth:`snapshot`
    and :meth:`restore`. ``process`` must not mutate the batch it is given. The other methods and
    attributes are optional hooks the runtime calls on every operator; their defaults do nothing.

    Examples
    --------
    A custom step that keeps a running count (state that survives a checkpoint):

    >>> import pandas as pd
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> class RunningCount(Operator):
    ...     def __init__(self):
    ...         self.n = 0
    ...     def process(self, batch, port=0):
    ...         counts = self.n + pd.RangeIndex(1, len(batch) + 1)
    ...         self.n += len(batch)
    ...         return {"out": batch.assign(n=counts)}
    ...     def snapshot(self):
    ...         return self.n
    ...     def restore(self, state):
    ...         self.n = state
    >>> class Counted:  # the step's configuration: build() makes the operator
    ...     def build(self):
    ...         return RunningCount()
    >>> p = Pipeline(ListSource([{"x": 5}, {"x": 7}], batch_size=1))
    >>> _ = p.stream.apply(Counted(), step_id="count")
    >>> p.run(clock=ManualClock(0))["count"]["n"].tolist()
    [1, 2]
    """

    #: Names of the outputs this operator may return from ``process``/``on_end``.
    output_names: tuple[str, ...] = ("out",)

    #: Columns naming the source partition of an event, when the operator keeps one watermark per
    #: partition; the runtime then calls :meth:`expect_partitions`. Empty: one watermark (or none).
    by: Sequence[str] = ()

    #: Processing time (ns) after which a silent partition stops holding the watermark back; when set,
    #: the runtime calls :meth:`on_processing_time` before each batch and while none arrives.
    idle_ns: int | None = None

    #: True when :meth:`begin` does part of a batch's work in a worker (``pool``) while the runtime
    #: delivers the previous batch downstream; the runtime then works ahead on large batches.
    works_ahead: bool = False

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        """Take one micro-batch arriving on input ``port``; return output batches by name."""
        raise NotImplementedError

    def process_rows(self, batch: pd.DataFrame, port: int = 0) -> tuple[Outputs, np.ndarray | None]:
        """:meth:`process`, and which row of ``batch`` each row of its ``"out"`` output is (positions),
        or None when they are not the batch's rows (a window's results, a join's pairs).

        The runtime calls it instead of ``process`` on the way from a stream split in branches to a
        ``union`` of those branches, to merge the branches' rows back in the order the stream had them.
        Steps that keep or drop rows (filter, with_columns, select, dedup) override it; the default says
        None, which ends the order there (the union then passes the branches one after another).
        """
        return self.process(batch, port), None

    def begin(self, batch: pd.DataFrame, pool: Executor | None = None) -> Callable[[], Outputs]:
        """Start processing ``batch`` (input port 0); the returned function completes it.

        Only called when :attr:`works_ahead` is true; the default does all the work on completion.
        """
        return lambda: self.process(batch)

    def on_end(self) -> Outputs:
        """End of input: emit everything still held (open windows, buffered rows)."""
        return {}

    def on_flush(self) -> Outputs:
        """A stop that flushes (``handle.stop(flush_windows=True)``): emit what is held, as at the end of
        input; a window step also moves its watermark past what it emitted, so a resumed run treats
        those windows as closed (their later events go to ``late``) instead of emitting them again."""
        return self.on_end()

    def on_processing_time(self, now_ns: int) -> Outputs:
        """Processing time is ``now_ns`` (before a batch, and while none arrives): emit what is due.

        Only operators with :attr:`idle_ns` set (windows with an ``idle_timeout``) are told.
        """
        return {}

    def expect_partitions(self, partitions: set[Any]) -> None:
        """The partitions the sources are assigned now (see ``SourceReader.partitions``).

        Only operators with :attr:`by` set are told; the default ignores it.
        """

    def follow_sources(self, sources: Sequence[str]) -> bool:
        """The step reads a union of several ``sources``; return True to be told each batch's source.

        The runtime then sets ``origin`` to the id of the source each delivered batch came from (None
        for what a step emits outside a source's batch: at the end, on processing time) and calls
        :meth:`expect_partitions` with the sources still running, before each batch. Windows keep one
        watermark per source this way (``watermark_by`` left to ``"auto"`` on a stream without
        partition columns). The default declines.
        """
        return False

    def snapshot(self) -> Any:
        """Return a picklable copy of the state, enough for :meth:`restore` to resume exactly."""
        return None

    def restore(self, state: Any) -> None:
        """Resume from a value returned by :meth:`snapshot`."""

    def watermark_ns(self) -> int | None:
        """The operator's event-time watermark (int64 ns), if it tracks one."""
        return None

    def open_state(self) -> dict[str, Any]:
        """A small summary of what the operator holds (open windows, keys), for the debugger widget."""
        return {}
