"""JSON lines: serialize events, inject malformed lines for dead-letter demos, and parse them back."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from streamlab._time import NAT_NS, to_utc_ns

from ._common import check_share, utc_column

__all__ = ["to_json_lines"]

#: Records larger than this are rejected, as brokers do (Kafka's default ``message.max.bytes`` is 1 MB).
MAX_RECORD_BYTES = 1_048_576

#: Malformed line kinds that ``to_json_lines`` injects (``huge_record`` is added for application logs).
EVENT_DEFECTS = (
    "truncated_json",
    "plain_text",
    "bad_timestamp",
    "missing_timestamp",
    "wrong_type",
    "non_utf8",
)
_BAD_TIMESTAMPS = ("yesterday", "not a date", "2024-13-45T25:61:00Z", "", "N/A", "soon")


def _iso_column(series: pd.Series) -> list[Any]:
    """ISO-8601 text with ``Z``, at the coarsest of ms/us/ns that is exact; NaT becomes None."""
    ns = to_utc_ns(series)
    valid = ns != NAT_NS
    exact = ns[valid]
    unit: Literal["ms", "us", "ns"] = (
        "ms" if (exact % 1_000_000 == 0).all() else "us" if (exact % 1_000 == 0).all() else "ns"
    )
    as_ns = np.where(valid, ns, 0).astype("datetime64[ns]")
    text = np.datetime_as_string(as_ns.astype(f"datetime64[{unit}]"), unit=unit)
    out: list[Any] = [t + "Z" for t in text.tolist()]
    for i in np.flatnonzero(~valid).tolist():
        out[i] = None
    return out


def _python_column(series: pd.Series) -> list[Any]:
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _iso_column(series)
    values = series.tolist()
    if series.dtype == object or isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        mask = series.isna().to_numpy()
        if mask.any():
            for i in np.flatnonzero(mask).tolist():
                values[i] = None
    elif pd.api.types.is_float_dtype(series.dtype):
        values = [None if v != v else v for v in values]
    return values


def frame_to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: timestamps as ISO-8601 ``Z`` text, missing values as None."""
    cols = [str(c) for c in df.columns]
    lists = [_python_column(df[c]) for c in df.columns]
    return [dict(zip(cols, row)) for row in zip(*lists)]


def dump_record(record: dict[str, Any]) -> bytes:
    """One compact JSON line (no trailing newline)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _wrong_type(value: Any) -> Any:
    # A value of a different JSON type than the field should have.
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value} units"
    if isinstance(value, str):
        return {"value": value}
    if isinstance(value, dict):
        return json.dumps(value)
    return ["unexpected"]


def corrupt_record(defect: str, record: dict[str, Any], rng: np.random.Generator) -> bytes:
    """One malformed line derived from ``record``, damaged in the way ``defect`` names."""
    rec = dict(record)
    if defect == "truncated_json":
        line = dump_record(rec)
        return line[: int(rng.integers(1, max(2, len(line) - 1)))]
    if defect == "plain_text":
        when = rec.get("timestamp") or "2024-01-01T00:00:00Z"
        what = rec.get("event_id") or rec.get("request_id") or "unknown"
        text = f"{when} WARN producer: retrying send of {what} after timeout"
        # One record per line: a newline inside would split it in two.
        return " ".join(text.splitlines()).encode("utf-8", errors="replace")
    if defect == "bad_timestamp":
        rec["timestamp"] = _BAD_TIMESTAMPS[int(rng.integers(0, len(_BAD_TIMESTAMPS)))]
        return dump_record(rec)
    if defect == "missing_timestamp":
        rec.pop("timestamp", None)
        return dump_record(rec)
    if defect == "wrong_type":
        keys = [k for k in rec if k != "timestamp"] or ["timestamp"]
        key = keys[int(rng.integers(0, len(keys)))]
        rec[key] = _wrong_type(rec.get(key))
        return dump_record(rec)
    if defect == "non_utf8":
        # Text written by a producer in Latin-1: "é" becomes the lone byte 0xE9, invalid in UTF-8.
        keys = [k for k, v in rec.items() if isinstance(v, str) and k != "timestamp"]
        key = keys[0] if keys else "note"
        rec[key] = f"{rec.get(key, '')} café".lstrip()
        return json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode("latin-1", errors="replace")
    raise ValueError(f"unknown defect {defect!r}; expected one of {(*EVENT_DEFECTS, 'huge_record')}")


def inject_malformed(
    records: list[dict[str, Any]],
    lines: list[bytes],
    share: float,
    rng: np.random.Generator,
    defects: Sequence[str] = EVENT_DEFECTS,
) -> tuple[list[bytes], list[str]]:
    """Insert malformed lines between good ones so that about ``share`` of the output is malformed.

    Good lines keep their order; each malformed line is a damaged copy of the event that follows it.
    Returns the lines and, per line, ``"none"`` or the defect.
    """
    n = len(lines)
    if share <= 0 or n == 0:
        return list(lines), ["none"] * n
    k = round(share * n / (1.0 - share))
    total = n + k
    bad_pos = np.sort(rng.choice(total, size=k, replace=False))
    is_bad = np.zeros(total, dtype=bool)
    is_bad[bad_pos] = True
    good_before = np.cumsum(~is_bad) - (~is_bad)
    kinds = rng.integers(0, len(defects), k)
    out: list[bytes] = []
    reasons: list[str] = []
    it = iter(lines)
    j = 0
    for pos in range(total):
        if is_bad[pos]:
            defect = defects[int(kinds[j])]
            src = records[min(int(good_before[pos]), n - 1)]
            out.append(corrupt_record(defect, src, rng))
            reasons.append(defect)
            j += 1
        else:
            out.append(next(it))
            reasons.append("none")
    return out, reasons


def to_json_lines(df: pd.DataFrame, *, malformed_share: float = 0.0, seed: int = 0) -> list[bytes]:
    """Serialize events as JSON lines, optionally with malformed lines mixed in (for dead-letter demos).

    Timestamps become ISO-8601 text ending in ``Z`` (millisecond precision when exact), missing values
    ``null``. Malformed lines are *inserted* between the events, so every event still appears once in
    order; each is a damaged copy of the next event: truncated JSON, a plain-text log line, a timestamp
    that is not a date, a missing timestamp, a field of the wrong JSON type, or Latin-1 bytes that are
    not valid UTF-8.

    Parameters
    ----------
    df
        Events; any columns.
    malformed_share
        Share of the returned lines that are malformed (0 to 0.5).
    seed
        Random seed for where malformed lines go and how they are damaged.

    Returns
    -------
    list of bytes
        One JSON document per element, without newline.

    Examples
    --------
    >>> import pandas as pd
    >>> ts = pd.to_datetime([0, 1500], unit="ms", utc=True)
    >>> df = pd.DataFrame({"event_id": ["a", "b"], "timestamp": ts})
    >>> to_json_lines(df)[1]
    b'{"event_id":"b","timestamp":"1970-01-01T00:00:01.500Z"}'
    >>> len(to_json_lines(df, malformed_share=0.5, seed=1))
    4
    """
    share = check_share(malformed_share, "to_json_lines(malformed_share=...)", upper=0.5)
    records = frame_to_records(df)
    lines = [dump_record(r) for r in records]
    if share == 0:
        return lines
    out, _ = inject_malformed(records, lines, share, np.random.default_rng([int(seed), 201]))
    return out


# --------------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------------

#: Field type names understood by :func:`parse_lines`.
FIELD_TYPES = ("str", "ts", "dict", "num", "int", "bool", "int|null")


def _type_ok(kind: str, value: Any) -> bool:
    if kind in ("str", "ts"):
        return isinstance(value, str)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "int|null":
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    raise ValueError(f"unknown field type {kind!r}; expected one of {FIELD_TYPES}")


def check_line(line: bytes, schema: Sequence[tuple[str, str]]) -> tuple[dict[str, Any] | None, str]:
    """Decode and type-check one line; return the record (or None) and ``"ok"`` or why it was rejected."""
    if len(line) > MAX_RECORD_BYTES:
        return None, "too_large"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not_utf8"
    try:
        obj = json.loads(text)
    except ValueError:
        return None, "invalid_json"
    if not isinstance(obj, dict):
        return None, "not_an_object"
    for field, kind in schema:
        if field not in obj:
            return None, f"missing:{field}"
        if not _type_ok(kind, obj[field]):
            return None, f"wrong_type:{field}"
    return obj, "ok"


def parse_lines(
    lines: Sequence[bytes], schema: Sequence[tuple[str, str]]
) -> tuple[pd.DataFrame, Counter[str]]:
    """Parse JSON lines into typed columns; return the good rows and a count of rejections by reason."""
    good: list[dict[str, Any]] = []
    rejected: Counter[str] = Counter()
    for line in lines:
        obj, reason = check_line(line, schema)
        if obj is None:
            rejected[reason] += 1
        else:
            good.append(obj)
    ts_fields = [f for f, kind in schema if kind == "ts"]
    keep = np.ones(len(good), dtype=bool)
    parsed: dict[str, np.ndarray] = {}
    for field in ts_fields:
        ns = to_utc_ns(pd.Series([g[field] for g in good], dtype=object))
        bad = ns == NAT_NS
        if (bad & keep).any():
            rejected[f"bad_timestamp:{field}"] += int((bad & keep).sum())
        keep &= ~bad
        parsed[field] = ns
    rows = [g for g, ok in zip(good, keep.tolist()) if ok]
    columns: dict[str, Any] = {}
    for field, kind in schema:
        if kind == "ts":
            columns[field] = utc_column(parsed[field][keep])
            continue
        values = [r[field] for r in rows]
        if kind == "bool":
            columns[field] = np.array(values, dtype=bool)
        elif kind == "num":
            columns[field] = np.array(values, dtype=np.float64)
        elif kind == "int":
            columns[field] = np.array(values, dtype=np.int64)
        elif kind == "int|null":
            columns[field] = pd.array(values, dtype="Int64")
        elif kind == "dict":
            columns[field] = pd.Series(values, dtype=object)
        else:
            columns[field] = pd.Series(values, dtype="str")
    return pd.DataFrame(columns), rejected
