"""Clocks: the only place streamlab reads time. Inject a :class:`ManualClock` to control time in tests."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

from streamlab._time import Duration, parse_duration, utc_now_ns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock:
    """Processing-time clock contract: ``now_ns()`` and an interruptible ``sleep``.

    Examples
    --------
    >>> isinstance(ManualClock(0), Clock)
    True
    """

    def now_ns(self) -> int:
        """Current processing time, int64 nanoseconds since the epoch (UTC)."""
        raise NotImplementedError

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> None:
        """Wait ``seconds`` of this clock's time; return early when ``interrupt`` is set."""
        raise NotImplementedError


class SystemClock(Clock):
    """Wall-clock time.

    Examples
    --------
    >>> SystemClock().now_ns() > 0
    True
    """

    def now_ns(self) -> int:
        return utc_now_ns()

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> None:
        if seconds <= 0:
            return
        if interrupt is None:
            time.sleep(seconds)
        else:
            interrupt.wait(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock(Clock):
    """A clock that moves only when told to; ``sleep`` advances it instantly (simulated time).

    Parameters
    ----------
    start
        Start time: ISO-8601 text, a ``pandas.Timestamp``, or int nanoseconds.

    Examples
    --------
    >>> clock = ManualClock("2024-01-01T00:00:00Z")
    >>> clock.advance("90s")
    >>> clock.now()
    Timestamp('2024-01-01 00:01:30+0000', tz='UTC')
    """

    def __init__(self, start: str | int | datetime = 0) -> None:

        self._ns = _start_ns(start)
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._ns

    def now(self) -> pd.Timestamp:
        """Current time as a UTC ``pandas.Timestamp``."""
        import pandas as pd

        return pd.Timestamp(self.now_ns(), tz="UTC")

    def advance(self, by: Duration) -> None:
        """Move time forward by a duration such as ``"5s"``."""
        ns = parse_duration(by, what="ManualClock.advance")
        if ns < 0:
            raise ValueError("ManualClock.advance: time only moves forward; pass a positive duration")
        with self._lock:
            self._ns += ns

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> None:
        if seconds > 0:
            with self._lock:
                self._ns += int(seconds * 1_000_000_000)

    def __repr__(self) -> str:
        return f"ManualClock({self.now().isoformat()!r})"


def _start_ns(start: object) -> int:
    """``ManualClock``'s start as int nanoseconds since the epoch; None, a bool, a float (``1.5`` was
    1 ns), text that is not a time, or a time outside the nanosecond range (1677 to 2262) raises ``ParameterError`` (None became
    NaT, the clock then read the smallest int64, a time in 1677)."""
    import numpy as np
    import pandas as pd

    from streamlab.errors import ParameterError

    fix = "pass ISO-8601 text ('2024-01-01T00:00:00Z'), a datetime or pandas.Timestamp, or int nanoseconds"
    if isinstance(start, (int, np.integer)) and not isinstance(start, (bool, np.bool_)):
        if -(2**63) < int(start) < 2**63:
            return int(start)
        raise ParameterError("ManualClock", "start", f"{start} nanoseconds is outside 1677 to 2262", fix)
    if isinstance(start, (float, np.floating)):  # pandas reads 1.5 as 1 ns: seconds were likely meant
        raise ParameterError(
            "ManualClock",
            "start",
            f"the number {start!r} is ambiguous (pandas would read it as {int(start)} nanoseconds)",
            "pass int nanoseconds (int(1.5e9) for 1.5 s after the epoch) or ISO-8601 text",
        )
    try:
        ts = None if isinstance(start, (bool, np.bool_)) else pd.Timestamp(start)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as e:
        raise ParameterError("ManualClock", "start", f"cannot read {start!r} as a time ({e})", fix) from None
    if ts is None or pd.isna(ts):
        raise ParameterError("ManualClock", "start", f"{start!r} is not a time", fix)
    try:
        return int(ts.as_unit("ns").value)
    except (OverflowError, ValueError):
        raise ParameterError("ManualClock", "start", f"{start!r} is outside 1677 to 2262", fix) from None
