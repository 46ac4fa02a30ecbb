"""Which measure values Amazon Timestream cannot hold, and the text of a value as a dimension or a text
measure: one rule for ``TimestreamSink`` and the generated AWS Lambda handler (which carries this module's
code after its imports, copied, not rewritten; it has ``streamlab._serde_values``' code too).

Timestream cannot store NaN or infinities in a ``DOUBLE`` (its data-types page); a text (``VARCHAR``)
value takes 1 to 2,048 bytes (``MeasureValue.Value``: botocore refuses an empty one before sending,
failing the whole request on every retry). A missing value (None) is left out of the record, not a
problem.

A dimension is text too, and part of a series' identity, so a value has one text in every batch: every
sink's key text (``key_text``), by which the ``7.0`` of an integer column that met a missing value is
``7``, as in a batch where the column is int64 (``7.0`` split a series in two). An empty one is left out
of the record, as a missing one: Timestream has no empty dimension value (the AWS SDKs' models of
``Dimension.Value`` had a minimum length of 1), so a query reads that key as null. A ``json`` value (a
``json`` field's first or last, a ``json`` key) is its JSON text, so that ``1``, ``"1"`` and ``true`` stay
apart and ``json.loads`` reads it back; the JSON text of the empty string is ``""``, two bytes, which
Timestream holds.

A time-valued measure (``window_end``, the first/last/min/max of a ``timestamp`` field) is a
``TIMESTAMP``, so a query can use time functions on it: its text is the epoch time in the unit of the
record's ``TimeUnit``, which both writers set to ``MILLISECONDS``. Timestream keeps a ``TIMESTAMP`` to the
nanosecond (its writes data-types page: "nanosecond precision time in UTC, tracking the time since Unix
time", multi-measure records only, 1970-01-01 to 2262-04-11 23:47:16.854775807), but the API documents no
other form of the value than a string, and AWS's own writer (aws-sdk-pandas) sends it in the record's
``TimeUnit``: in milliseconds it is read alike whether Timestream takes the record's unit or always
milliseconds. So **a time measure loses what is below the millisecond** (floored, as the record's time
is); a time outside Timestream's range is a problem, not a write that fails.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from streamlab._serde_values import dump_json, is_float, is_missing, iso_utc, key_text

TEXT_MAX_BYTES = 2048  # bytes of a VARCHAR measure value (MeasureValue.Value: 1..2048; varchar: 2 KB)
DIMENSION_NAME_MAX_BYTES = 60  # Dimension.Name: 1..60
MEASURE_NAME_MAX_BYTES = 256  # a measure name (the record's MeasureName, each multi-measure value's Name)
DIMENSIONS_MAX = 128  # dimensions per table (Timestream's quotas page, a service limit)
SERIES_MAX_BYTES = 2048  # dimension names and values of one series (the quotas page: 2 KB)
RESERVED_DIMENSION_NAMES = ("measure_name", "measure_value", "time")
TIMESTAMP_UNIT_NS = 1_000_000  # nanoseconds per unit of a TIMESTAMP measure and record time (MILLISECONDS)
TIMESTAMP_MAX = 9_223_372_036_854  # 2262-04-11 23:47:16.854 in milliseconds: the last time Timestream writes


def dimension_name_problem(name: str) -> str:
    """Why Timestream refuses ``name`` as a dimension's name, or ``""``: reserved names, the prefixes
    ``ts_`` and ``measure_value``, a colon, more than 60 bytes (Timestream's naming constraints). Such a
    name fails every WriteRecords request (moto, standing in for AWS, takes it).

    Examples
    --------
    >>> dimension_name_problem("host")
    ''
    >>> dimension_name_problem("time")
    "'time' is a name Timestream reserves (measure_name, measure_value, time)"
    >>> dimension_name_problem("ts_id"), dimension_name_problem("a:b")
    ("'ts_id' starts with ts_, which Timestream reserves", "'a:b' holds a colon, which Timestream refuses")
    """
    if name in RESERVED_DIMENSION_NAMES:
        return f"{name!r} is a name Timestream reserves ({', '.join(RESERVED_DIMENSION_NAMES)})"
    for prefix in ("ts_", "measure_value"):
        if name.startswith(prefix):
            return f"{name!r} starts with {prefix}, which Timestream reserves"
    if ":" in name:
        return f"{name!r} holds a colon, which Timestream refuses"
    if utf8_size(name) > DIMENSION_NAME_MAX_BYTES:
        return (
            f"{name!r} is {utf8_size(name)} bytes long; Timestream takes at most {DIMENSION_NAME_MAX_BYTES}"
        )
    return ""


def utf8_size(text: str | None) -> int:
    """Bytes of ``text`` in UTF-8 (a lone surrogate counted as its three bytes)."""
    return len((text or "").encode("utf-8", "surrogatepass"))


def timestamp_text(ns: int) -> str:
    """A time (epoch nanoseconds) as a ``TIMESTAMP`` measure's text: epoch milliseconds, floored (the
    record's ``TimeUnit`` is ``MILLISECONDS``; what is below the millisecond is lost).

    Examples
    --------
    >>> timestamp_text(1_714_521_600_123_456_789), timestamp_text(0)
    ('1714521600123', '0')
    """
    return str(ns // TIMESTAMP_UNIT_NS)


def measure_problem(measures: list[tuple[str, str, str | None]]) -> str:
    """Why Timestream cannot take a record with these ``(name, type, text)`` measure values, or ``""``.

    Examples
    --------
    >>> measure_problem([("cpu", "DOUBLE", "0.5"), ("note", "VARCHAR", "ok")])
    ''
    >>> measure_problem([("cpu", "DOUBLE", "-inf"), ("n", "VARCHAR", None)])
    "measure(s) ['cpu'] are infinite (-inf), which a Timestream DOUBLE cannot hold"
    >>> measure_problem([("note", "VARCHAR", "")])
    "text measure(s) ['note'] are 0 bytes long; Timestream takes 1 to 2,048 bytes (an empty text is refused)"
    >>> measure_problem([("first_t", "TIMESTAMP", "-1")])
    "time measure(s) ['first_t'] are -1 ms, outside the times a Timestream TIMESTAMP holds (1970-01-01 to 2262-04-11)"
    """
    infinite = [
        (name, text)
        for name, kind, text in measures
        if kind == "DOUBLE" and text is not None and math.isinf(float(text))
    ]
    if infinite:
        values = ", ".join(text for _, text in infinite)
        return f"measure(s) {[n for n, _ in infinite]} are infinite ({values}), which a Timestream DOUBLE cannot hold"
    sizes_of = [
        (name, utf8_size(text)) for name, kind, text in measures if kind == "VARCHAR" and text is not None
    ]
    unfit = [(name, size) for name, size in sizes_of if not 1 <= size <= TEXT_MAX_BYTES]
    if unfit:
        sizes = ", ".join(f"{size:,}" for _, size in unfit)
        return (
            f"text measure(s) {[n for n, _ in unfit]} are {sizes} bytes long; Timestream takes 1 to "
            f"{TEXT_MAX_BYTES:,} bytes (an empty text is refused)"
        )
    outside = [
        (name, text)
        for name, kind, text in measures
        if kind == "TIMESTAMP" and text is not None and not 0 <= int(text) <= TIMESTAMP_MAX
    ]
    if outside:
        values = ", ".join(text for _, text in outside)
        return (
            f"time measure(s) {[n for n, _ in outside]} are {values} ms, outside the times a Timestream "
            "TIMESTAMP holds (1970-01-01 to 2262-04-11)"
        )
    return ""


def series_problem(dimensions: list[tuple[str, str]]) -> str:
    """Why Timestream refuses a record with these ``(name, value)`` dimensions, or ``""``: their names and
    values together over 2 KB (the quotas page: "dimension name dimension value pair size per series").
    Moto, standing in for AWS here, takes such a record; Timestream rejects it.

    Examples
    --------
    >>> series_problem([("host", "a" * 100)])
    ''
    >>> series_problem([("host", "a" * 2040), ("zone", "eu-west-1a")])
    "dimensions ['host', 'zone'] are 2,058 bytes with their names; Timestream takes at most 2,048 per series"
    """
    size = sum(utf8_size(name) + utf8_size(value) for name, value in dimensions)
    if size <= SERIES_MAX_BYTES:
        return ""
    return (
        f"dimensions {[name for name, _ in dimensions]} are {size:,} bytes with their names; Timestream "
        f"takes at most {SERIES_MAX_BYTES:,} per series"
    )


def text_value(value: Any, as_json: bool) -> str:
    """A value as a text (``VARCHAR``) measure: a ``json`` value (``as_json``) as its JSON text; text as
    itself; any other value as streamlab's JSON encoding has it, without quotes (``true``, an object as
    JSON, a time in a text column as ISO-8601 text to the microsecond), never Python's ``repr``.

    Examples
    --------
    >>> text_value("", True), text_value("1", True), text_value(1, True), text_value({"k": [1, "x"]}, True)
    ('""', '"1"', '1', '{"k":[1,"x"]}')
    >>> from datetime import datetime, timezone
    >>> text_value("ok", False), text_value(True, False), text_value(datetime(2024, 1, 1, tzinfo=timezone.utc), False)
    ('ok', 'true', '2024-01-01T00:00:00.000000Z')
    """
    if as_json:
        return dump_json(value)
    if isinstance(value, str):
        return value
    text = dump_json(value)
    return str(json.loads(text)) if text.startswith('"') else text


def dimension_text(value: Any, as_json: bool) -> str | None:
    """A value as a dimension's text, or None to leave the dimension out (a missing or empty value).

    Every sink's key text (``key_text``): text as it is, a float that is a whole number as the integer
    it equals (``7.0`` is ``7``, as in a batch where its column is int64; -0.0 is ``0``), a boolean
    ``true`` / ``false``, a time ISO-8601 UTC to the microsecond (as the handler holds it), any other
    value its JSON text; but an infinity is ``inf`` / ``-inf`` (the key text ``null`` would merge them
    with each other and with the text ``"null"``). A ``json`` key (``as_json``) is its JSON text, so that
    keys that print alike stay apart; its float is its key's text, as ``group_key`` has it: -0.0 is 0.0
    (streamlab's keys are values), and its infinities are ``Infinity`` / ``-Infinity``.

    Examples
    --------
    >>> dimension_text("web", False), dimension_text(7.0, False), dimension_text(-0.0, False)
    ('web', '7', '0')
    >>> dimension_text(True, False), dimension_text(7.5, False), dimension_text(float("-inf"), False)
    ('true', '7.5', '-inf')
    >>> dimension_text("", False) is None, dimension_text(None, False) is None, dimension_text("", True)
    (True, True, '""')
    >>> dimension_text(float("inf"), True), dimension_text({"a": 1}, True)
    ('Infinity', '{"a":1}')
    >>> from datetime import timezone
    >>> dimension_text(datetime(2024, 5, 1, tzinfo=timezone.utc), False)
    '2024-05-01T00:00:00.000000Z'
    """
    if is_missing(value):
        return None
    if isinstance(value, datetime):
        return iso_utc(value)
    if not as_json:
        if is_float(value) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return key_text(value) or None
    if isinstance(value, float):
        return json.dumps(float(value) + 0.0)  # -0.0 is 0.0's key
    return dump_json(value) or None
