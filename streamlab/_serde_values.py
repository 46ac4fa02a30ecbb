"""One value as JSON text or message bytes: the per-value half of ``streamlab.serde``.

Plain Python with no streamlab, numpy or pandas import, and only the imports that the headers of generated
modules have (``streamlab.export._plan.SERDE_IMPORTS``): generated Beam modules and Lambda handlers carry
this module's code (everything after its imports) verbatim, so an export writes values exactly as the
runtime's sinks do. numpy and pandas values are recognised by what they do (``item``, ``astype``,
``dtype.kind``), not by importing their types. The encoding is documented in ``streamlab.serde``.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

COMPACT = (",", ":")
"""Separators of compact JSON (messages: Kafka, Pub/Sub, Kinesis, BigQuery)."""
SPACED = (", ", ": ")
"""Separators of ``json.dumps``' default layout (JSON-lines files)."""


def is_missing(value: Any) -> bool:
    """None, NaN, NaT or ``pandas.NA``: what the encoding writes as ``null``.

    Examples
    --------
    >>> [is_missing(v) for v in (None, float("nan"), 0.0, "")]
    [True, True, False, False]
    """
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    if type(value).__name__ in ("NaTType", "NAType"):
        return True
    # numpy scalars that can be NaN or NaT (float32, datetime64, ...); arrays are values, never missing
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("f", "M", "m") and getattr(value, "shape", None) == () and bool(value != value)


def iso_utc(value: datetime) -> str:
    """ISO-8601 text of a time in UTC with microseconds and ``Z``; a naive time is taken as UTC.

    Nanoseconds (of a ``pandas.Timestamp``) are dropped toward the past, as numpy's cast to microseconds.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> iso_utc(datetime(2024, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=1))))
    '2024-01-01T00:30:00.000000Z'
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(timezone.utc)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def json_default(value: Any) -> Any:
    """The ``default=`` hook of ``json.dumps``: a value JSON does not know, as one it does.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> json_default(datetime(2024, 1, 1, tzinfo=timezone.utc)), json_default(b"\\xff{")
    ('2024-01-01T00:00:00.000000Z', '/3s=')
    """
    if is_missing(value):
        return None
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind in ("M", "m"):  # numpy times: at microseconds, tolist() gives Python datetimes and timedeltas
        return value.astype(("datetime64" if kind == "M" else "timedelta64") + "[us]").tolist()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):  # date, time
        return value.isoformat()
    return str(value)


def _plain(value: Any) -> Any:
    """``value`` with only JSON's own types inside, non-finite floats as None: the slow path of dump_json."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _plain(json_default(value))


def _plain_key(key: Any) -> str:
    # what json.dumps writes for the keys it knows; any other key as the text its value encodes to
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return _plain_key(json_default(key))


def dump_json(value: Any, compact: bool = True) -> str:
    """One value (a row as a dict, a list, a scalar) as JSON text in streamlab's encoding.

    Parameters
    ----------
    value
        What to encode; nested dicts and lists are encoded all the way down.
    compact
        No spaces after ``,`` and ``:`` (messages); ``False`` gives ``json.dumps``' default layout, which
        JSON-lines files use.

    Returns
    -------
    str
        ASCII JSON text; NaN, infinities, NaT and None are ``null`` at any depth.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> dump_json({"t": datetime(2024, 1, 1, tzinfo=timezone.utc), "x": float("nan"), "b": b"hi"})
    '{"t":"2024-01-01T00:00:00.000000Z","x":null,"b":"aGk="}'
    >>> dump_json({"n": [1, 2]}, compact=False)
    '{"n": [1, 2]}'
    """
    separators = COMPACT if compact else SPACED
    try:
        return json.dumps(value, default=json_default, separators=separators, allow_nan=False)
    except (ValueError, TypeError):  # a NaN or infinity inside, or a key JSON has no text for
        return json.dumps(_plain(value), separators=separators, allow_nan=False)


def encode_value(value: Any) -> bytes | None:
    """One field as message bytes (a Kafka key, header or raw value): text as itself, the rest as JSON.

    Bytes stay as they are, text is UTF-8, a time is its ISO-8601 UTC text (no quotes), a missing value
    is ``None`` (no bytes at all), and any other value is its JSON text. A lone surrogate in text (not
    valid Unicode, which UTF-8 cannot encode) is its escape ``\\ud800``, the six characters JSON writes
    for it: a strict encoding failed the whole batch on every retry.

    Examples
    --------
    >>> [encode_value(v) for v in (b"\\xff", "u1", 3, True, None, {"a": 1})]
    [b'\\xff', b'u1', b'3', b'true', None, b'{"a":1}']
    >>> encode_value("a\\ud800")
    b'a\\\\ud800'
    """
    if is_missing(value):
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace")
    plain = _plain(value)
    if isinstance(plain, str):
        return plain.encode("utf-8", "backslashreplace")
    return dump_json(plain).encode("utf-8")


def is_float(value: Any) -> bool:
    """Whether ``value`` is one float: Python's, or a numpy float scalar (``float32``, ...), not an array.

    Examples
    --------
    >>> is_float(1.0), is_float(1), is_float(True), is_float("1.0")
    (True, False, False, False)
    """
    # numpy's float scalars have is_integer; an ndarray has not
    return isinstance(value, float) or (
        getattr(getattr(value, "dtype", None), "kind", None) == "f" and hasattr(value, "is_integer")
    )


def key_value(value: Any) -> Any:
    """A key's value as keys are written: a finite float that is a whole number (numpy's too, any size)
    as the integer it equals, any other value as it is. pandas makes an integer column float64 once it
    meets a missing value, so the key ``7`` arrives as ``7.0`` in some batches only.

    Examples
    --------
    >>> key_value(7.0), key_value(-0.0), key_value(7.5), key_value(True), key_value(float("inf"))
    (7, 0, 7.5, True, inf)
    """
    if is_float(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


def key_text(value: Any) -> str | None:
    """A key as text, the same in every batch: text as it is (a lone surrogate too, for the caller to
    refuse or escape), any other value the text of :func:`encode_value` of :func:`key_value` (``7.0``
    as ``7``, ``true``, a time as ISO-8601 UTC text, bytes that are not UTF-8 with ``\\x`` escapes);
    None for a missing value.

    Examples
    --------
    >>> [key_text(v) for v in ("u1", 7, 7.0, 7.5, True, None, b"\\xff")]
    ['u1', '7', '7', '7.5', 'true', None, '\\\\xff']
    """
    if isinstance(value, str):
        return value
    raw = encode_value(key_value(value))
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def is_utf8_text(text: str) -> bool:
    """Whether UTF-8 can encode ``text``: False for one holding a lone surrogate (``"\\ud800"``, which an
    escaped JSON string may hold, and which no arrow string column, pandas text column or UTF-8 wire takes).

    Examples
    --------
    >>> is_utf8_text("é"), is_utf8_text("a\\ud800")
    (True, False)
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
