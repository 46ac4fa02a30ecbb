"""Processing time as a column: each batch a source delivers is stamped with the clock's time at its arrival.

streamlab's windows run on a time column; over this stamp (non-decreasing, so no event is late) a
tumbling window is a processing-time window, as Nexmark q12 asks. The clock is the run's (``run(clock=)``),
so a :class:`streamlab.ManualClock` makes the windows deterministic in tests.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamlab.clock import Clock
from streamlab.io import Source, SourceReader, default_clock


class ProcessingTimeSource(Source):
    """``source``'s events with a ``column`` holding the processing time each batch arrived at (UTC).

    Examples
    --------
    >>> from streamlab import ListSource, ManualClock
    >>> clock = ManualClock("2024-01-01T00:00:00Z")
    >>> reader = ProcessingTimeSource(ListSource([{"x": 1}, {"x": 2}], batch_size=1)).open(clock=clock)
    >>> first = reader.poll(10); clock.advance("3s"); second = reader.poll(10)
    >>> [str(t) for t in pd.concat([first, second])["proc_time"]]
    ['2024-01-01 00:00:00+00:00', '2024-01-01 00:00:03+00:00']
    """

    def __init__(self, source: Source, column: str = "proc_time") -> None:
        self.source = source
        self.column = column
        self.columns = None if source.columns is None else (*source.columns, column)

    def open(self, resume: Any = None, clock: Clock | None = None) -> SourceReader:
        clock = default_clock(clock)
        return _StampingReader(self.source.open(resume, clock), clock, self.column)

    def __repr__(self) -> str:
        return f"ProcessingTimeSource({self.source!r}, column={self.column!r})"


class _StampingReader(SourceReader):
    def __init__(self, inner: SourceReader, clock: Clock, column: str) -> None:
        self.inner, self.clock, self.column = inner, clock, column

    def poll(self, max_events: int) -> pd.DataFrame | None:
        batch = self.inner.poll(max_events)
        if batch is None:
            return None
        now = pd.Timestamp(self.clock.now_ns(), unit="ns", tz="UTC")
        return batch.assign(**{self.column: pd.Series(now, index=batch.index, dtype="datetime64[ns, UTC]")})

    @property
    def done(self) -> bool:
        return self.inner.done

    def next_ready_ns(self) -> int | None:
        return self.inner.next_ready_ns()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def commit(self, position: Any) -> None:
        self.inner.commit(position)

    def lag(self) -> int | None:
        return self.inner.lag()

    def partitions(self) -> list[Any] | None:
        return self.inner.partitions()

    def set_speed(self, speed: float | None) -> None:
        self.inner.set_speed(speed)

    def on_resume(self) -> None:
        self.inner.on_resume()

    def close(self) -> None:
        self.inner.close()


__all__ = ["ProcessingTimeSource"]
