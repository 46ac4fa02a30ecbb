"""Helpers shared by the generators: rates, start times, block layout and timestamp columns."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from streamlab._time import parse_duration

#: Events per generation block. Every stream is cut into blocks of this many rows, each generated from
#: its own random stream ``(seed, kind, block)``, so a live source can produce block ``k`` without
#: generating blocks ``0..k-1`` and a generated frame of ``n`` rows is a prefix of the endless stream.
BLOCK = 16_384
NS = 1_000_000_000
MS = 1_000_000
INT_MIN = int(np.iinfo(np.int64).min)

Rate = str | float | int
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|min|m|h|d)\s*$")
_PER_SECOND = {"ms": 1000.0, "s": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600, "d": 1 / 86400}


def resolve_rate(rate: Rate | None, events_per_second: float | None, default: float, what: str) -> float:
    """Return events per second from either ``rate="100/s"`` or ``events_per_second=100.0``."""
    if rate is not None and events_per_second is not None:
        raise ValueError(f"{what}: pass either rate= or events_per_second=, not both")
    if events_per_second is not None:
        value = float(events_per_second)
    elif rate is None:
        value = default
    elif isinstance(rate, str):
        m = _RATE_RE.match(rate)
        if not m:
            raise ValueError(
                f"{what}: cannot read rate={rate!r}; write it like '100/s', '5/ms', '600/m' or '20/h', "
                "or pass events_per_second=100.0"
            )
        value = float(m.group(1)) * _PER_SECOND[m.group(2)]
    elif isinstance(rate, (int, float)) and not isinstance(rate, bool):
        value = float(rate)
    else:
        raise TypeError(f"{what}: rate must be text such as '100/s' or a number of events per second")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"{what}: the event rate must be a positive number of events per second, got {value}"
        )
    return value


def resolve_start(start: str | int | pd.Timestamp, what: str) -> int:
    """Return a start time as int ns UTC; naive times are taken as UTC."""
    try:
        ts = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{what}: cannot read start={start!r} as a time; write it like '2024-01-01T00:00:00Z'"
        ) from exc
    if pd.isna(ts):  # pandas-stubs types Timestamp(...) as a Timestamp, but it can be NaT
        raise ValueError(f"{what}: start must be a time, got NaT")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.tz_convert("UTC").as_unit("ns").value)


def resolve_ms_duration(value: object, what: str, *, allow_zero: bool = True) -> int:
    """Return a non-negative duration in ns, rounded down to whole milliseconds.

    Event times are whole milliseconds, so bounds expressed in milliseconds stay exact.
    """
    ns = parse_duration(value, what=what)  # type: ignore[arg-type]  # user input: it reports other types
    ns = (ns // MS) * MS
    if ns < 0 or (ns == 0 and not allow_zero):
        raise ValueError(f"{what}: must be {'at least 1ms' if not allow_zero else 'zero or positive'}")
    return ns


def check_share(value: float, what: str, *, upper: float = 1.0) -> float:
    """Validate a probability-like share."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{what}: expected a number between 0 and {upper}, got {value!r}")
    v = float(value)
    if not (0.0 <= v <= upper):
        raise ValueError(f"{what}: must be between 0 and {upper}, got {v}")
    return v


#: the last time int64 nanoseconds hold, less a day for the disorder, lateness and bursts a stream adds
_LAST_NS = np.iinfo(np.int64).max - 86_400 * NS


def check_span(n: int, rate: float, start_ns: int, what: str) -> None:
    """Refuse ``n`` events at ``rate`` per second from ``start_ns`` when they would run past what int64
    nanoseconds hold (2262-04-11), naming the parameters, instead of overflowing while generating.

    Examples
    --------
    >>> check_span(10, 1e-9, 0, "generate_clickstream")
    Traceback (most recent call last):
    ...
    ValueError: generate_clickstream: 10 events at 1e-09 events/s from 1970-01-01T00:00:00 would run past 2262-04-10, the last time 64-bit nanoseconds hold; lower n, raise the rate or start earlier
    """
    if start_ns + n / rate * NS > _LAST_NS:
        start = np.datetime64(int(start_ns), "ns").astype("datetime64[s]")
        raise ValueError(
            f"{what}: {n} events at {rate:g} events/s from {start} would run past "
            f"{np.datetime64(_LAST_NS, 'ns').astype('datetime64[D]')}, the last time 64-bit nanoseconds "
            "hold; lower n, raise the rate or start earlier"
        )


def check_count(n: object, what: str) -> int:
    """Validate a row count."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{what}: n must be a whole number of events, got {n!r}")
    if int(n) < 0:
        raise ValueError(f"{what}: n must be zero or positive, got {n}")
    return int(n)


def block_rng(seed: int, kind_code: int, block: int) -> np.random.Generator:
    """The random stream of one block; independent of every other block."""
    return np.random.default_rng([int(seed), kind_code, int(block)])


def block_bounds(start_ns: int, rate: float, block: int) -> tuple[int, int]:
    """Processing-time interval ``[t0, t1)`` covered by the arrivals of ``block``."""
    t0 = start_ns + round(block * BLOCK * NS / rate)
    t1 = start_ns + round((block + 1) * BLOCK * NS / rate)
    return t0, max(t1, t0 + 1)


def utc_column(ns: np.ndarray) -> pd.Series:
    """Timezone-aware UTC timestamps with nanosecond unit from int64 ns."""
    return pd.Series(pd.DatetimeIndex(np.asarray(ns, dtype="datetime64[ns]")).tz_localize("UTC"))


def labelled_ids(prefix: str, index: np.ndarray) -> np.ndarray:
    """Stable text ids such as ``clk-0-0000000042`` for global row numbers."""
    return np.array([f"{prefix}{i:010d}" for i in index.tolist()], dtype=object)
