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
(``{"a": 1}``), ``compact=False``. One field sent as its own bytes (a Kafka raw value) is
:func:`encode_value`. A key or any other identifier made of a value (a Kafka key or header, Kinesis
partition key, Pub/Sub ordering key or attribute, BigQuery insert id, Timestream dimension, Redis key or
stream name) is :func:`encode_keys` / :func:`key_texts` (``key_text`` value by value): the same, except
that a float that is a whole number is the integer it equals, so a key keeps its text whether pandas made
its column int64 or float64. The per-value rules live in ``streamlab._serde_values``, which generated modules
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
    key_text,
    key_value,
)

__all__ = [
    "dump_json",
    "encode_keys",
    "encode_rows",
    "encode_value",
    "encode_values",
    "is_missing",
    "iso_utc",
    "json_column",
    "json_default",
    "key_texts",
    "rows_to_json",
    "text_values",
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
    """:func:`encode_value` of every value of a column (Kafka raw values; keys and headers are
    :func:`encode_keys`).

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


def encode_keys(s: pd.Series) -> list[bytes | None]:
    """Keys of a column as bytes (Kafka record keys): :func:`encode_value` of each value, but a finite
    float that is a whole number is written as that integer's text, so a key keeps its bytes (and its
    partition) whether its column is int64 or float64 (an integer column that met a missing value).

    Bytes stay as they are, text is UTF-8, a time is ISO-8601 UTC text, any other value its JSON text
    (``true``, ``1.5``, ``null`` for an infinity); a missing value is ``None``. A float keeps only the
    integer it holds: ``2**63 + 1`` in a float64 column is the float ``2.0**63``, written
    ``9223372036854775808``.

    Examples
    --------
    >>> encode_keys(pd.Series([1.0, -0.0, 1.5, float("nan"), 2.0**70]))
    [b'1', b'0', b'1.5', None, b'1180591620717411303424']
    >>> encode_keys(pd.Series([1, "1.0", True], dtype=object))
    [b'1', b'1.0', b'true']
    """
    texts = _key_column(s)
    if texts is not None:
        return [None if t is None else t.encode("ascii") for t in texts]
    return [encode_value(key_value(v)) for v in s.tolist()]


def key_texts(s: pd.Series) -> list[str | None]:
    """Keys of a column as text (Kinesis partition keys; Pub/Sub ordering keys and BigQuery insert ids
    through :func:`text_values`): the text of :func:`encode_keys`, ``None`` where a value is missing.

    Text is kept as it is (a lone surrogate too, for the caller to refuse or escape); bytes that are not
    UTF-8 are read with ``\\x`` escapes.

    Examples
    --------
    >>> key_texts(pd.Series([7.0, None]))
    ['7', None]
    >>> key_texts(pd.Series([True, pd.Timestamp("2024-01-01 00:00:04"), b"\\xff", "u\\ud800"], dtype=object))
    ['true', '2024-01-01T00:00:04.000000Z', '\\\\xff', 'u\\ud800']
    """
    texts = _key_column(s)
    if texts is not None:
        return texts
    return [key_text(v) for v in s.tolist()]


def _key_column(s: pd.Series) -> list[str | None] | None:
    """:func:`key_texts` of a boolean, integer or float column a column at a time (equal to the rule
    value by value); None for any other column."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_integer_dtype(dtype)
        or pd.api.types.is_float_dtype(dtype)
    ):
        return None
    missing = s.isna().to_numpy(dtype=bool)
    if pd.api.types.is_bool_dtype(dtype):
        text = np.where(s.to_numpy(dtype=bool, na_value=False), "true", "false").astype(object)
    elif pd.api.types.is_integer_dtype(dtype):
        wide = "uint64" if pd.api.types.is_unsigned_integer_dtype(dtype) else "int64"
        numbers = s.to_numpy(dtype=wide, na_value=0)
        text = numbers.astype(str).astype(object)
    else:
        f = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(f)
        whole = finite & (np.floor(f) == f)
        exact = whole & (np.abs(f) < 2.0**63)  # int64 holds it: below, each whole float is an int64
        text = np.full(len(f), "null", dtype=object)  # an infinity is JSON's null
        text[exact] = f[exact].astype(np.int64).astype(str)
        for i in np.flatnonzero(whole & ~exact).tolist():
            text[i] = str(int(f[i]))
        fraction = finite & ~whole
        # numpy's str() of a float64 is its shortest text, as repr() and JSON
        text[fraction] = f[fraction].astype(str)
    text[missing] = None
    texts: list[str | None] = text.tolist()
    return texts


def text_values(s: pd.Series) -> list[str]:
    """Each value of a column as message text (a missing value empty): Pub/Sub ordering keys and
    attributes, BigQuery insert ids. The text is :func:`key_texts`' (a float that is a whole number as
    its integer, so ``7`` and ``7.0`` are the same key in every batch; ``true``; a time in ISO-8601 UTC),
    with a lone surrogate (``"\\ud800"``, which a ``json`` field or a user function can hold) written as
    the escape ``\\ud800``, as JSON writes it: UTF-8 cannot encode it.

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
    >>> text_values(pd.Series(["a\\ud800", None, 1, 1.0], dtype=object))
    ['a\\\\ud800', '', '1', '1']
    """
    texts = ["" if text is None else text for text in key_texts(s)]
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        return [escape_surrogates(t) for t in texts]
    return texts
