"""The contract between a frozen step (configuration) and its runtime state (an operator).

A step is an immutable description. ``step.build()`` returns an :class:`Operator`, the mutable,
picklable state that the runtime feeds with micro-batches (``pandas.DataFrame``). An operator
returns its outputs by name (``"out"``, ``"late"``, ``"dead_letter"``, ...) so that new outputs can
be added later without breaking anybody.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

Outputs = dict[str, pd.DataFrame]


class Operator:
    """Mutable runtime state of one step.

    Subclasses override :meth:`process`; stateful ones also override :meth:`on_end`,
    :meth:`snapshot` and :meth:`restore`. ``process`` must not mutate the batch it is given.
    """

    #: Names of the outputs this operator may return from ``process``/``on_end``.
    output_names: tuple[str, ...] = ("out",)

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        """Take one micro-batch arriving on input ``port``; return output batches by name."""
        raise NotImplementedError

    def on_end(self) -> Outputs:
        """End of input: emit everything still held (open windows, buffered rows)."""
        return {}

    def on_processing_time(self, now_ns: int) -> Outputs:
        """Processing time is ``now_ns`` (before a batch, and while none arrives): emit what is due.

        Only steps whose results depend on processing time (windows with an ``idle_timeout``) are told.
        """
        return {}

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
