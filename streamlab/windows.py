"""Window definitions: small immutable configs; the runtime builds window state from them.

Event-time semantics shared by every window: the watermark is the largest event time seen minus the
allowed out-of-orderness (``delay``); a window ``[start, end)`` closes, and emits its final result, once the
watermark reaches ``end + allowed_lateness``; an event that arrives for a window already closed goes to the
window step's ``late`` output; end of input closes every window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streamlab._time import Duration, format_duration, parse_duration
from streamlab.errors import ParameterError

__all__ = ["SessionWindow", "SlidingWindow", "TumblingWindow", "Window"]


class Window:
    """Base class of window definitions.

    Examples
    --------
    >>> isinstance(TumblingWindow('1m'), Window), isinstance(SessionWindow('5m'), Window)
    (True, True)
    """

    kind: str = ""

    def describe(self) -> dict[str, str]:
        """Parameters as text, for YAML and exporters."""
        raise NotImplementedError


def floor_div(x: npt.NDArray[np.int64], d: int) -> npt.NDArray[np.int64]:
    """``x // d`` for int64 arrays: floor division, also for times before the epoch.

    numpy divides int64 arrays by a scalar with a precomputed multiplier (libdivide), which is faster
    than any float trick and exact.

    Examples
    --------
    >>> floor_div(np.array([-7, -1, 0, 59, 60, 10**18 + 61]), 60).tolist() == [-1, -1, 0, 0, 1, (10**18 + 61) // 60]
    True
    """
    return np.floor_divide(x, d)


def _duration(value: Duration, what: str, *, positive: bool = False) -> int:
    """``value`` in nanoseconds; ``what`` is ``"Owner(parameter=...)"``. Unreadable or (when
    ``positive``) not positive raises :class:`ParameterError` (a ``ValueError``) with a fix, where
    parse_duration raised a bare ``ValueError`` or ``TypeError``."""
    owner, _, rest = what.partition("(")
    parameter = rest.partition("=")[0]
    fix = f"write {parameter} as a positive duration such as '10s', '5m' or '1h' (or a datetime.timedelta)"
    try:
        ns = parse_duration(value, what=what)
    except (TypeError, ValueError) as e:
        problem, _, own_fix = str(e).partition(". Fix: ")
        raise ParameterError(owner, parameter, problem.removeprefix(f"{what}: "), own_fix or fix) from None
    if positive and ns <= 0:
        raise ParameterError(owner, parameter, f"must be a positive duration, got {value!r}", fix)
    return ns


def _positive(value: Duration, what: str) -> int:
    return _duration(value, what, positive=True)


@dataclass(frozen=True, repr=False)
class TumblingWindow(Window):
    """Fixed-size, non-overlapping windows ``[k*size + offset, (k+1)*size + offset)``.

    Parameters
    ----------
    size
        Window length, e.g. ``"1m"``.
    offset
        Shift of window boundaries from the epoch, e.g. ``"30s"``.

    Examples
    --------
    >>> TumblingWindow("1m")
    TumblingWindow('1m')
    >>> TumblingWindow("1m").size_ns
    60000000000
    """

    size: Duration
    offset: Duration = 0
    size_ns: int = field(init=False)
    offset_ns: int = field(init=False)
    kind = "tumbling"

    def __post_init__(self) -> None:
        size_ns = _positive(self.size, "TumblingWindow(size=...)")
        offset_ns = _duration(self.offset, "TumblingWindow(offset=...)")
        object.__setattr__(self, "size_ns", size_ns)
        object.__setattr__(self, "offset_ns", offset_ns % size_ns)

    def assign(self, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(event_index, window_start_ns)`` pairs: each event falls in exactly one window.

        Examples
        --------
        >>> idx, start = TumblingWindow("10s").assign(np.array([5, 12_000_000_000]))
        >>> start.tolist()
        [0, 10000000000]
        """
        idx, k = self.assign_index(ts_ns)
        return idx, k * self.size_ns + self.offset_ns

    def assign_index(self, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`assign`, with the window's index ``k`` (start = k * slide + offset) instead of its start."""
        return np.arange(len(ts_ns)), floor_div(ts_ns - self.offset_ns, self.size_ns)

    @property
    def slide_ns(self) -> int:
        return self.size_ns

    def describe(self) -> dict[str, str]:
        d = {"kind": self.kind, "size": format_duration(self.size_ns)}
        if self.offset_ns:
            d["offset"] = format_duration(self.offset_ns)
        return d

    def __repr__(self) -> str:
        off = f", offset={format_duration(self.offset_ns)!r}" if self.offset_ns else ""
        return f"TumblingWindow({format_duration(self.size_ns)!r}{off})"


@dataclass(frozen=True, repr=False)
class SlidingWindow(Window):
    """Overlapping (hopping) windows of length ``size`` starting every ``every``.

    Each event belongs to about ``size / every`` windows.

    Parameters
    ----------
    size
        Window length, e.g. ``"5m"``.
    every
        Distance between window starts, e.g. ``"1m"``; must not exceed ``size``.
    offset
        Shift of window starts from the epoch.

    Examples
    --------
    >>> w = SlidingWindow("5m", every="1m")
    >>> idx, start = w.assign(np.array([90 * 10**9]))
    >>> len(start)
    5
    >>> SlidingWindow("1m", every="5m")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: SlidingWindow(every=...): every='5m' exceeds size='1m': `every` must not exceed `size`, or events between windows would be dropped. Fix: use TumblingWindow('1m') for non-overlapping windows, or make `every` at most '1m'
    """

    size: Duration
    every: Duration
    offset: Duration = 0
    size_ns: int = field(init=False)
    every_ns: int = field(init=False)
    offset_ns: int = field(init=False)
    kind = "sliding"

    def __post_init__(self) -> None:
        size_ns = _positive(self.size, "SlidingWindow(size=...)")
        every_ns = _positive(self.every, "SlidingWindow(every=...)")
        if every_ns > size_ns:
            raise ParameterError(
                "SlidingWindow",
                "every",
                f"every={format_duration(every_ns)!r} exceeds size={format_duration(size_ns)!r}: `every` must "
                "not exceed `size`, or events between windows would be dropped",
                f"use TumblingWindow({format_duration(size_ns)!r}) for non-overlapping windows, "
                f"or make `every` at most {format_duration(size_ns)!r}",
            )
        object.__setattr__(self, "size_ns", size_ns)
        object.__setattr__(self, "every_ns", every_ns)
        object.__setattr__(self, "offset_ns", _duration(self.offset, "SlidingWindow(offset=...)") % every_ns)

    @property
    def slide_ns(self) -> int:
        return self.every_ns

    def assign(self, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(event_index, window_start_ns)`` for every window each event falls in."""
        idx, k = self.assign_index(ts_ns)
        return idx, k * self.every_ns + self.offset_ns

    def assign_index(self, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`assign`, with the window's index ``k`` (start = k * every + offset) instead of its start."""
        base = floor_div(ts_ns - self.offset_ns, self.every_ns)
        n = -(-self.size_ns // self.every_ns)
        positions = np.arange(len(ts_ns))
        if self.size_ns % self.every_ns == 0:
            # every event is in exactly n windows
            return np.tile(positions, n), np.concatenate([base - j for j in range(n)])
        idx_parts, k_parts = [], []
        for j in range(n):
            k = base - j
            ok = k * self.every_ns + self.offset_ns + self.size_ns > ts_ns
            idx_parts.append(positions[ok])
            k_parts.append(k[ok])
        return np.concatenate(idx_parts), np.concatenate(k_parts)

    def describe(self) -> dict[str, str]:
        d = {
            "kind": self.kind,
            "size": format_duration(self.size_ns),
            "every": format_duration(self.every_ns),
        }
        if self.offset_ns:
            d["offset"] = format_duration(self.offset_ns)
        return d

    def __repr__(self) -> str:
        off = f", offset={format_duration(self.offset_ns)!r}" if self.offset_ns else ""
        return (
            f"SlidingWindow({format_duration(self.size_ns)!r}, every={format_duration(self.every_ns)!r}{off})"
        )


@dataclass(frozen=True, repr=False)
class SessionWindow(Window):
    """Per-key activity sessions: events closer than ``gap`` belong to one session.

    A session spans ``[first event time, last event time + gap)``, as in Beam's ``Sessions``.

    Parameters
    ----------
    gap
        Inactivity that ends a session, e.g. ``"30m"``.

    Examples
    --------
    >>> SessionWindow("30m")
    SessionWindow('30m')
    """

    gap: Duration
    gap_ns: int = field(init=False)
    kind = "session"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gap_ns", _positive(self.gap, "SessionWindow(gap=...)"))

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "gap": format_duration(self.gap_ns)}

    def __repr__(self) -> str:
        return f"SessionWindow({format_duration(self.gap_ns)!r})"


def window_from_spec(spec: dict[str, str]) -> Window:
    """Rebuild a window from :meth:`Window.describe` output.

    Examples
    --------
    >>> window_from_spec({"kind": "sliding", "size": "5m", "every": "1m"})
    SlidingWindow('5m', every='1m')
    """
    kind = spec.get("kind")
    args = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "tumbling":
        return TumblingWindow(**args)
    if kind == "sliding":
        return SlidingWindow(**args)
    if kind == "session":
        return SessionWindow(**args)
    raise ValueError(f"unknown window kind {kind!r}; expected one of 'tumbling', 'sliding', 'session'")
