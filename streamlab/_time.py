"""One place that turns durations and timestamps into integers of nanoseconds."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Union

import numpy as np
import numpy.typing as npt
import pandas as pd

from streamlab._record import _ISO, epoch_to_ns, iso_to_ns

# the unreadable-time rule lives in _record, which exported programs carry verbatim; named here for the runtime
from streamlab._record import EVENT_TIME_FORMATS as EVENT_TIME_FORMATS
from streamlab._record import unreadable_time_reason as unreadable_time_reason

Duration = Union[str, int, float, timedelta, pd.Timedelta]  # noqa: UP007 - a runtime alias on 3.10

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "min": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
}
MAX_DURATION_NS = 2**62
"""The longest duration (about 146 years): event times are int64 nanoseconds, and a window's size plus its
lateness, or a watermark's delay, must stay far inside that range."""
_DURATION_RE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(ns|us|ms|s|min|m|h|d)\s*$")


def parse_duration(value: Duration, *, what: str = "duration") -> int:
    """Return a duration as an integer number of nanoseconds.

    Parameters
    ----------
    value
        ``"500ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"2d"``, a ``timedelta``, or a number of seconds.
    what
        Name used in the error message, e.g. ``"SlidingWindow(every=...)"``.

    Returns
    -------
    int
        Nanoseconds.

    Examples
    --------
    >>> parse_duration("5m")
    300000000000
    >>> parse_duration(1.5)
    1500000000
    """
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected a duration such as '10s' or '5m', got {value!r}")
    ns: int | None = None
    if isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            raise ValueError(
                f"{what}: {value!r} is not a duration; write it like '10s', '5m', or a number of seconds"
            )
        if isinstance(value, (int, np.integer)):
            ns = int(value) * 1_000_000_000
        elif abs(value) <= MAX_DURATION_NS / 1e9:  # beyond, ``value * 1e9`` may be inf and round() raise
            ns = round(float(value) * 1_000_000_000)
        else:
            ns = MAX_DURATION_NS + 1
    elif isinstance(value, (timedelta, pd.Timedelta)):
        ns = int(pd.Timedelta(value).value)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            # exact (a float would round "9007199254740993ns", which a spec writes for a long odd duration)
            ns = round(Fraction(m.group(1)) * _UNITS_NS[m.group(2)])
    if ns is None:
        raise ValueError(
            f"{what}: cannot read {value!r} as a duration; write it like '500ms', '10s', '5m', '1h', '1d', "
            "a datetime.timedelta, or a number of seconds"
        )
    if abs(ns) > MAX_DURATION_NS:
        # windows, watermarks and timestamps are int64 nanoseconds: a longer duration would overflow them
        # mid-run (a crash, or window ends that wrap round to 1677)
        raise ValueError(
            f"{what}: {value!r} is longer than the {MAX_DURATION_NS // _UNITS_NS['d']:,} days (about 146 "
            "years) a duration can be; timestamps are nanoseconds from 1677 to 2262. Fix: use a shorter "
            "duration, e.g. '365d'"
        )
    return ns


def format_duration(ns: int) -> str:
    """Return the shortest exact text form of a duration given in nanoseconds.

    Examples
    --------
    >>> format_duration(300_000_000_000)
    '5m'
    >>> format_duration(1_500_000_000)
    '1500ms'
    """
    if ns == 0:
        return "0s"
    for unit in ("d", "h", "m", "s", "ms", "us", "ns"):
        size = _UNITS_NS[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"  # pragma: no cover - "ns" always divides


def to_utc_ns(values: pd.Series | np.ndarray | list[object]) -> npt.NDArray[np.int64]:
    """Return event times as int64 nanoseconds since the epoch, UTC; missing values become ``NAT_NS``.

    Accepts datetimes (naive ones are taken as UTC), ISO-8601 strings, and epoch numbers
    (seconds, or milliseconds when larger than 1e11).

    Examples
    --------
    >>> to_utc_ns(pd.Series(["2024-01-01T00:00:01Z", None])).tolist() == [1704067201000000000, NAT_NS]
    True
    >>> to_utc_ns(["now", "today"]).tolist() == [NAT_NS, NAT_NS]  # relative words are no event times
    True
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(s.dtype, pd.DatetimeTZDtype) and s.dtype.unit == "ns":
        ns: npt.NDArray[np.int64] = s.array.asi8  # already int64 ns since the epoch
        return ns
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ts = s if getattr(s.dt, "tz", None) is not None else s.dt.tz_localize("UTC")
        return _datetimes_to_ns(ts)
    if pd.api.types.is_integer_dtype(s.dtype):
        return _epoch_ints_to_ns(s)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        f = s.to_numpy(dtype=np.float64, na_value=np.nan)
        scale = np.where(np.abs(f) > 1e11, 1e6, 1e9)
        out = np.full(len(f), NAT_NS, dtype=np.int64)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isfinite(f) & (np.abs(f) * scale < 9.2e18)  # beyond int64 nanoseconds: missing
        out[ok] = epoch_floats_to_ns(f[ok])
        return out
    try:
        return _text_to_ns(s)
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800"), which pandas' Arrow-backed text cannot hold
        return _text_to_ns(_unencodable_as_missing(s))


def _unencodable_as_missing(s: pd.Series) -> pd.Series:
    """``s`` with each text UTF-8 cannot encode (a lone surrogate: an escaped ``"\\ud800"`` read from JSON)
    as a missing value: no event time, as the parse step judges such text.

    Examples
    --------
    >>> _unencodable_as_missing(pd.Series(["2024", "20\\ud80024", 5], dtype=object)).tolist()
    ['2024', None, 5]
    """
    bad = np.fromiter((isinstance(v, str) and not _encodes(v) for v in s.to_numpy()), bool, len(s))
    return s.astype(object).where(~bad, None)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_to_ns(s: pd.Series) -> npt.NDArray[np.int64]:
    """:func:`to_utc_ns` of a column of text (or of text beside epoch numbers and other objects)."""
    numbers = None
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        # numbers beside text: to_datetime would read 1678 as the year 1678; read them as epochs below
        numbers = np.fromiter((isinstance(v, (int, float, np.number)) for v in s.to_numpy()), bool, len(s))
        s_text = s.where(~numbers, None)
    else:
        s_text = s
    ts = pd.to_datetime(s_text, utc=True, errors="coerce", format="ISO8601")
    parsed = _datetimes_to_ns(ts)
    _as_parse_reads_text(s_text, parsed)
    if numbers is not None and numbers.any():
        _epoch_objects_to_ns(s, numbers, parsed)
    # pandas reads "now" and "today" as the wall clock: not an event time (a replay would differ)
    words = s.astype("string").str.strip().str.lower().isin(_RELATIVE_WORDS).fillna(False)
    parsed[words.to_numpy(dtype=bool)] = NAT_NS
    return parsed


def _as_parse_reads_text(s: pd.Series, out: npt.NDArray[np.int64]) -> None:
    """Correct ``out`` (pandas' ISO-8601 reading of the column ``s``) to the parse rule's reading of text
    (``streamlab._record.iso_to_ns``), so that the same text is the same time whether a window reads it
    from a replayed CSV or frame or a parse step reads it from a record.

    pandas reads more than the rule (``'2024/01/01'``, ``'2024-1-1'``, ``'20240101T000000Z'``): those
    are no time, as in parse. It refuses some of it (a lowercase ``t`` or ``z``, a decimal comma): those
    are read by the rule, one by one. Values that are no text (datetimes) are left as pandas read them.

    Examples
    --------
    >>> times = pd.Series(["2024/01/01", "2024-01-01t00:00:00,5z", "2024-01-01T00:00:01Z"])
    >>> out = _datetimes_to_ns(pd.to_datetime(times, utc=True, errors="coerce", format="ISO8601"))
    >>> _as_parse_reads_text(times, out)
    >>> out.tolist() == [NAT_NS, 1704067200500000000, 1704067201000000000]
    True
    """
    text = s.astype("string").str.strip()
    grammar = text.str.fullmatch(_ISO.pattern).fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        is_text = text.notna().to_numpy(dtype=bool)
    else:
        is_text = np.fromiter((isinstance(v, str) for v in s.to_numpy()), bool, len(s))
    out[is_text & ~grammar] = NAT_NS  # beyond the rule ("", "NaT" and relative words too)
    values = s.to_numpy()
    for i in np.flatnonzero(is_text & grammar & (out == NAT_NS)):
        try:
            ns = iso_to_ns(str(values[i]))
        except ValueError:  # not a date, not a time of day, not an offset
            continue
        if ns is not None and NAT_NS < ns <= np.iinfo(np.int64).max:
            out[i] = ns


def _epoch_objects_to_ns(s: pd.Series, numbers: npt.NDArray[np.bool_], out: npt.NDArray[np.int64]) -> None:
    """Write into ``out`` the epoch numbers of an object column (numbers beside text, as records from
    several producers hold): a column of numbers alone is read as epoch seconds or milliseconds, so one
    mixed with text is too, each number as the per-record rule reads it (``epoch_to_ns``); a boolean is
    no time."""
    values = s.to_numpy()
    for i in np.flatnonzero(numbers).tolist():
        v = values[i]
        out[i] = NAT_NS
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            continue
        number = int(v) if isinstance(v, (int, np.integer)) else float(v)
        if isinstance(number, float) and not math.isfinite(number):
            continue
        ns = epoch_to_ns(number)
        out[i] = ns if NAT_NS < ns <= MAX_NS else NAT_NS


def _datetimes_to_ns(ts: pd.Series) -> npt.NDArray[np.int64]:
    """A datetime column of any unit as int64 UTC nanoseconds; a time nanoseconds cannot hold (after
    2262-04-11 or before 1677-09-21: ``"3000-01-01"``, the ``9999-12-31`` of "valid until further
    notice") is missing, as an unreadable one is, where converting the column raised for all its rows.

    Examples
    --------
    >>> seconds = pd.Series(np.array(["2024-01-01", "9999-12-31"], dtype="datetime64[s]")).dt.tz_localize("UTC")
    >>> _datetimes_to_ns(seconds).tolist() == [1704067200000000000, NAT_NS]
    True
    """
    utc = ts.dt.tz_convert("UTC")
    unit = utc.dtype.unit
    raw: npt.NDArray[np.int64] = utc.array.asi8.copy()
    if unit == "ns":
        return raw
    factor = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}[unit]
    limit = MAX_NS // factor
    ok = (raw != NAT_NS) & (raw >= -limit) & (raw <= limit)
    out = np.full(len(raw), NAT_NS, dtype=np.int64)
    out[ok] = raw[ok] * factor
    return out


def epoch_floats_to_ns(f: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Finite epoch seconds, or milliseconds above 1e11, as nanoseconds: each float's exact binary value
    rounded to the nearest nanosecond (half to even), as ``streamlab._record.epoch_to_ns``.

    The product of doubles is up to 128 ns off (``1704067223.25`` s would be ``...223249999872`` ns). The
    whole part is scaled in integers; the fraction (exact: ``f - floor(f)``) as a double product, whose
    rounding can land on a half but never cross one, so only those few are computed in integers.
    The caller keeps the nanoseconds within int64.

    Examples
    --------
    >>> epoch_floats_to_ns(np.array([1704067223.25, 1700000525610.0, -1.25])).tolist()
    [1704067223250000000, 1700000525610000000, -1250000000]
    """
    ms = np.abs(f) > 1e11
    whole = np.floor(f)
    part = (f - whole) * np.where(ms, 1e6, 1e9)
    out = whole.astype(np.int64) * np.where(ms, 1_000_000, 1_000_000_000) + np.round(part).astype(np.int64)
    for i in np.flatnonzero(part - np.floor(part) == 0.5):
        out[i] = epoch_to_ns(float(f[i]))
    return out


_RELATIVE_WORDS = ("now", "today", "yesterday", "tomorrow")
_MS_FROM = 10**11  # epoch numbers above this (year 5138 in seconds) are milliseconds


def _epoch_ints_to_ns(s: pd.Series) -> npt.NDArray[np.int64]:
    """Integer epoch seconds or milliseconds to nanoseconds in integer arithmetic: exact, never via float.

    A value whose nanoseconds do not fit in int64 (beyond the years 1677-2262) is missing (``NAT_NS``).

    Examples
    --------
    >>> _epoch_ints_to_ns(pd.Series([1700000525610, 1700000525, None], dtype="Int64")).tolist()[:2]
    [1700000525610000000, 1700000525000000000]
    """
    if s.dtype == np.int64 and len(s):  # no missing values: one range check, then one multiplication
        v = s.to_numpy()
        lo, hi = int(v.min()), int(v.max())
        if lo > _MS_FROM and hi <= np.iinfo(np.int64).max // 1_000_000:
            return v * 1_000_000
        if lo >= -_MS_FROM and hi <= _MS_FROM and max(-lo, hi) <= np.iinfo(np.int64).max // 1_000_000_000:
            return v * 1_000_000_000
    missing = s.isna().to_numpy(dtype=bool)
    if s.dtype.kind == "u" or str(s.dtype).startswith("UInt"):
        raw = s.to_numpy(dtype=np.uint64, na_value=0)
        big = raw > np.uint64(np.iinfo(np.int64).max)
        v = np.where(big, 0, raw).astype(np.int64)
        missing = missing | big
    else:
        v = s.to_numpy(dtype=np.int64, na_value=0)
    ms = np.abs(v) > _MS_FROM
    limit = np.where(ms, np.iinfo(np.int64).max // 1_000_000, np.iinfo(np.int64).max // 1_000_000_000)
    missing = missing | (np.abs(v) > limit) | (v == np.iinfo(np.int64).min)
    safe = np.where(missing, 0, v)
    out = np.where(ms, safe * 1_000_000, safe * 1_000_000_000)
    out[missing] = NAT_NS
    return out


NAT_NS: int = int(np.iinfo(np.int64).min)
MAX_NS: int = int(np.iinfo(np.int64).max)  # the latest time int64 nanoseconds hold (2262-04-11)
"""The integer that marks a missing event time (pandas' NaT)."""


def ns_to_timestamp(ns: np.ndarray | int) -> pd.DatetimeIndex | pd.Timestamp:
    """Turn int64 nanoseconds back into timezone-aware UTC timestamps.

    Examples
    --------
    >>> ns_to_timestamp(0)
    Timestamp('1970-01-01 00:00:00+0000', tz='UTC')
    """
    if isinstance(ns, (int, np.integer)):
        return pd.Timestamp(int(ns), tz="UTC")
    return pd.DatetimeIndex(utc_array(np.asarray(ns)))


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def utc_array(ns: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Int64 nanoseconds as a UTC datetime array for a DataFrame column, without copying or validation.

    The cheap construction matters where small result frames are built once per micro-batch.

    Examples
    --------
    >>> pd.Series(utc_array(np.array([0, NAT_NS]))).tolist()
    [Timestamp('1970-01-01 00:00:00+0000', tz='UTC'), NaT]
    """
    values = np.asarray(ns, dtype=np.int64).view("M8[ns]")
    simple_new = getattr(pd.arrays.DatetimeArray, "_simple_new", None)
    if simple_new is not None:
        try:
            arr: pd.api.extensions.ExtensionArray = simple_new(values, dtype=_UTC_NS)
            return arr
        except TypeError:  # a pandas whose private constructor changed: the public path below
            pass
    return pd.DatetimeIndex(values).tz_localize("UTC").array


def utc_now_ns() -> int:
    """Wall-clock time; only clocks may call it (see ``streamlab.clock``)."""
    return int(datetime.now(timezone.utc).timestamp() * 1_000_000_000)
