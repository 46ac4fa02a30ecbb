"""Rows as JSON text and bytes: the one encoding of every sink and every export.

Every sink that writes JSON (JSON-lines files, Kafka, Pub/Sub, Kinesis, BigQuery, Redis, alerts) and the
code that the Beam and Lambda exporters generate encode values the same way:

| value | JSON |
| --- | --- |
| text | a string, ASCII with ``\\u`` escapes |
| bool (numpy's too) | ``true`` / ``false`` |
| integer of any size (numpy's too) | a number with every digit |
| float (numpy's too) | the shortest number that reads back the same float |
| None, NaN, infinities, NaT, ``pandas.NA`` | ``null``, at any depth |
| time (``datetime``, ``pandas.Timestamp``, numpy ``datetime64``) | ISO-8601 UTC with microseconds and ``Z``, ``"2024-01-01T00:00:00.000000Z"``: other zones converted, naive times taken as UTC, nanoseconds dropped toward the past |
| duration (``timedelta``) | seconds, a float |
| bytes | base64 text (RFC 4648, padded), as BigQuery and protobuf's JSON mapping write bytes |
| ``date``, ``time`` | ISO-8601 text |
| dict, list, tuple, numpy array | object / array, encoded all the way down (keys as text) |
| set | array, sorted by the elements' text |
| categorical | the category's value |
| anything else (``Decimal``, ...) | ``str(value)`` as a string (a Decimal keeps every digit) |

Messages are compact (``{"a":1}``); JSON-lines files keep ``json.dumps``' default layout
(``{"a": 1}``), ``compact=False``. One field sent as its own bytes (a Kafka key or header) is
:func:`encode_value`. The per-value rules live in ``streamlab._serde_values``, which generated modules
carry verbatim; :func:`rows_to_json` encodes numbers, booleans and times a column at a time and gives
the same text.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from streamlab._serde_values import (
    COMPACT,
    SPACED,
    dump_json,
    encode_value,
    is_missing,
    iso_utc,
    json_default,
)

__all__ = [
    "dump_json",
    "encode_rows",
    "encode_value",
    "encode_values",
    "is_missing",
    "iso_utc",
    "json_column",
    "json_default",
    "rows_to_json",
]


def _value_column(s: pd.Series, compact: bool) -> np.ndarray[Any, np.dtype[Any]]:
    return np.array([dump_json(v, compact) for v in s.tolist()], dtype=object)


def json_column(s: pd.Series, compact: bool = True) -> np.ndarray[Any, np.dtype[Any]]:
    """JSON text of every value of one column; numbers, booleans and times without a Python call per value.

    Parameters
    ----------
    s
        The column.
    compact
        Layout of nested objects and lists (see :func:`dump_json`).

    Returns
    -------
    numpy.ndarray
        One ``str`` per value (an object array), equal to ``dump_json(value)`` of each.

    Examples
    --------
    >>> json_column(pd.Series([1.5, float("nan")])).tolist()
    ['1.5', 'null']
    """
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _value_column(s, compact)
    if pd.api.types.is_bool_dtype(dtype):
        if s.hasnans:
            return _value_column(s, compact)
        return np.where(s.to_numpy(dtype=bool), "true", "false").astype(object)
    if pd.api.types.is_integer_dtype(dtype) and not s.hasnans:
        return s.to_numpy().astype(str).astype(object)
    if pd.api.types.is_float_dtype(dtype):
        f = s.to_numpy(dtype="float64", na_value=np.nan)
        # numpy's str() of a float64 is the shortest text that reads back to the same number, as repr()
        return np.where(np.isfinite(f), f.astype(str), "null").astype(object)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        ts = s if getattr(s.dt, "tz", None) is None else s.dt.tz_convert("UTC").dt.tz_localize(None)
        text = np.datetime_as_string(ts.to_numpy(dtype="datetime64[us]"), unit="us", timezone="UTC")
        quoted = np.char.add(np.char.add('"', text), '"')
        return np.where(ts.isna().to_numpy(), "null", quoted).astype(object)
    return _value_column(s, compact)


def rows_to_json(batch: pd.DataFrame, compact: bool = True) -> list[str]:
    """Each row of ``batch`` as one JSON object, in streamlab's encoding (see the module's table).

    Numeric, boolean and time columns are converted a column at a time; only object columns (text, dicts,
    bytes) are encoded value by value. The text equals ``dump_json(row)`` of each row as a dict.

    Parameters
    ----------
    batch
        Rows to encode; column names become JSON keys.
    compact
        ``{"a":1}`` (messages) or, with ``False``, ``{"a": 1}`` (JSON-lines files).

    Returns
    -------
    list of str
        One JSON object per row, in order; no newline inside (JSON escapes them in strings).

    Examples
    --------
    >>> df = pd.DataFrame({"n": [1], "t": [pd.Timestamp("2024-01-01", tz="UTC")], "p": [{"a": 1}]})
    >>> rows_to_json(df)
    ['{"n":1,"t":"2024-01-01T00:00:00.000000Z","p":{"a":1}}']
    >>> rows_to_json(pd.DataFrame({"raw": [b"\\xff{"], "x": [float("nan")]}), compact=False)
    ['{"raw": "/3s=", "x": null}']
    """
    if len(batch) == 0:
        return []
    comma, colon = COMPACT if compact else SPACED
    out: np.ndarray[Any, np.dtype[Any]] | None = None
    for i, col in enumerate(batch.columns):
        prefix = ("{" if i == 0 else comma) + json.dumps(str(col)) + colon
        part = prefix + json_column(batch.iloc[:, i], compact)
        out = part if out is None else out + part
    if out is None:  # no columns: one empty object per row
        return ["{}"] * len(batch)
    return [text + "}" for text in out.tolist()]


def encode_rows(batch: pd.DataFrame, compact: bool = True) -> list[bytes]:
    """Each row of ``batch`` as one UTF-8 JSON object: :func:`rows_to_json` as message payloads.

    Parameters
    ----------
    batch
        Rows to encode.
    compact
        Layout, as in :func:`rows_to_json`.

    Returns
    -------
    list of bytes
        One payload per row, in order.

    Examples
    --------
    >>> encode_rows(pd.DataFrame({"user_id": ["u1"], "properties": [{"page": "/"}]}))
    [b'{"user_id":"u1","properties":{"page":"/"}}']
    """
    return [text.encode("utf-8") for text in rows_to_json(batch, compact)]


def encode_values(s: pd.Series) -> list[bytes | None]:
    """:func:`encode_value` of every value of a column (Kafka keys, headers, raw values).

    Parameters
    ----------
    s
        The column.

    Returns
    -------
    list
        Bytes per value, ``None`` where it is missing.

    Examples
    --------
    >>> encode_values(pd.Series(["a", None]))
    [b'a', None]
    """
    return [encode_value(v) for v in s.tolist()]


def escape_surrogates(text: str) -> str:
    """``text``, with each lone surrogate (``"\\ud800"``: no UTF-8 form) as the escape ``\\ud800``, the six
    characters JSON writes for it; any other text as it is.

    Examples
    --------
    >>> escape_surrogates("é"), escape_surrogates("a\\ud800")
    ('é', 'a\\\\ud800')
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def text_values(s: pd.Series) -> list[str]:
    """Each value of a column as message text (a missing value empty): Pub/Sub ordering keys and
    attributes, BigQuery insert ids. A lone surrogate (``"\\ud800"``, which a ``json`` field or a user
    function can hold) is written as the escape ``\\ud800``, as JSON writes it: UTF-8 cannot encode it,
    and converting the column raised on every retry.

    Parameters
    ----------
    s
        The column.

    Returns
    -------
    list of str
        Text per value, ``""`` where it is missing.

    Examples
    --------
    >>> text_values(pd.Series(["a\\ud800", None, 1], dtype=object))
    ['a\\\\ud800', '', '1']
    """
    try:
        texts: list[str] = s.astype("string").fillna("").tolist()
    except UnicodeEncodeError:  # pandas' Arrow-backed text cannot hold a lone surrogate: value by value
        missing = s.isna().tolist()
        texts = ["" if m else str(v) for v, m in zip(s.tolist(), missing)]
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        return [escape_surrogates(t) for t in texts]
    return texts
