"""Per-record rules: one raw record through the parse step's checks, and the dedup step's rule.

The checked path of streamlab's parse and every exported parser (Beam, Lambda) run this code, so their
rows and dead-letter reasons cannot drift; streamlab's dedup step and the exported ones share ``Dedup``.

Standard library only, and no streamlab import: exporters copy everything below the imports into the
generated module verbatim. The limits (record size, nesting depth, digits of a number) make bad input
a dead letter with its reason instead of an exception; timestamps are ISO-8601 text or epoch numbers,
never words such as "now" that would give a replay other values.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
INT64_RANGE = (-(2**63), 2**63 - 1)
MAX_DEPTH = 512  # JSON nesting: deeper input would exhaust the parser's stack
MAX_NUMBER_DIGITS = 500  # digits in a row in a number: below any limit Python's int parsing may have
_EPOCH_DAYS = 719_163  # date(1970, 1, 1).toordinal()
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?)?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)
_RELATIVE = ("now", "today", "yesterday", "tomorrow")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LONG_NUMBER = re.compile(rf"(?<![0-9])[0-9]{{{MAX_NUMBER_DIGITS + 1}}}")
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but brackets, to delete
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


NULL_VALUE_REASON = "null value (tombstone)"
"""The dead-letter reason of a record that arrived without a value (None, NaN, pandas' NA: a Kafka
tombstone, a message without data), apart from an empty one's (``b""``: ``empty record``)."""


class BadRecordError(ValueError):
    """A record that cannot be used; the message is the dead-letter reason."""


def record_bytes(raw: object) -> bytes:
    """A raw record's bytes: text as UTF-8, bytes-like values as bytes. BadRecordError for a record that
    arrived without a value (``NULL_VALUE_REASON``) or one of another type.

    streamlab's parse step and every exported parser judge a raw value by this one rule, so a Kafka
    tombstone is a dead letter with the same reason everywhere (it was a TypeError that failed an
    exported job's bundle, batch or query on every retry).

    Examples
    --------
    >>> record_bytes("{}"), record_bytes(bytearray(b"{}")), record_bytes(memoryview(b"{}"))
    (b'{}', b'{}', b'{}')
    >>> record_bytes(None)
    Traceback (most recent call last):
    ...
    streamlab._record.BadRecordError: null value (tombstone)
    """
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    if isinstance(raw, (bytearray, memoryview)):
        return bytes(raw)
    if is_null_value(raw):
        raise BadRecordError(NULL_VALUE_REASON)
    raise BadRecordError(f"expected bytes or str, got {type(raw).__name__}")


def is_null_value(raw: object) -> bool:
    """Whether a raw record arrived without a value: None, or NaN and pandas' NA (a pandas column's
    missing value; NA told by its type's name, as this module imports no pandas).

    Examples
    --------
    >>> [is_null_value(v) for v in (None, float("nan"), b"", "")]
    [True, True, False, False]
    """
    return raw is None or (isinstance(raw, float) and raw != raw) or type(raw).__name__ == "NAType"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


class _StrictDecoder(json.JSONDecoder):
    """JSON's decoder without NaN and Infinity. One serves every record (json.loads would build one per
    call); it pickles as a new one, for the runners (Beam) that pickle a module's globals."""

    def __init__(self) -> None:
        super().__init__(parse_constant=_reject_constant)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_StrictDecoder, ())


_DECODER = _StrictDecoder()


def _check_limits(text: str) -> None:
    """Dead letter for a record nested deeper than MAX_DEPTH or with a number longer than the limit.

    Cheap for ordinary records: the exact scans run only when a count says the limit may be passed.
    """
    if len(text) > MAX_DEPTH and text.count("[") + text.count("{") > MAX_DEPTH:
        brackets = _STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _BRACKETS)
        # depth after each bracket: the running sum of (2 or 0), minus the number of brackets so far
        depths = map(int.__sub__, accumulate(brackets.translate(_DEPTH_STEP)), range(1, len(brackets) + 1))
        if max(depths, default=0) > MAX_DEPTH:
            raise BadRecordError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if (
        len(text) > MAX_NUMBER_DIGITS
        and _LONG_NUMBER.search(text)
        and _LONG_NUMBER.search(_STRING.sub("", text))
    ):
        raise BadRecordError(f"a number has more than {MAX_NUMBER_DIGITS} digits")


def iso_to_ns(text: str) -> int | None:
    """Epoch nanoseconds of ISO-8601 text (no offset: UTC); None for "" and "NaT" (no time).

    Raises ValueError for anything else, relative words such as "now" included.

    Examples
    --------
    >>> iso_to_ns("1970-01-01T01:00:00.5+01:00")
    500000000
    >>> iso_to_ns("now")
    Traceback (most recent call last):
    ...
    ValueError: not ISO-8601
    """
    text = text.strip()
    if not text or text.lower() == "nat":
        return None
    m = _ISO.fullmatch(text)
    if m is None:
        raise ValueError("not ISO-8601")
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = m.groups()
    days = datetime(int(year), int(month), int(day)).toordinal() - _EPOCH_DAYS  # checks the date
    h, mi, s = int(hour or 0), int(minute or 0), int(second or 0)
    if h > 23 or mi > 59 or s > 59:
        raise ValueError("not a time of day")
    seconds = days * 86_400 + h * 3_600 + mi * 60 + s
    if sign:
        oh, om = int(off_h), int(off_m or 0)
        if oh > 23 or om > 59:
            raise ValueError("not an offset")
        seconds -= (oh * 3_600 + om * 60) * (1 if sign == "+" else -1)
    return seconds * 1_000_000_000 + (int(fraction[:9].ljust(9, "0")) if fraction else 0)


def to_ns(value: Any) -> int:
    """Epoch nanoseconds of an ISO-8601 string, epoch seconds/milliseconds, or an aware datetime."""
    if isinstance(value, datetime):
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(value, bool) or value is None:
        raise TypeError("not a time")
    if isinstance(value, str):
        ns = iso_to_ns(value)
        if ns is None:
            raise ValueError("no time")
        return ns
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return epoch_to_ns(value)
    raise TypeError("not a time")


EVENT_TIME_FORMATS = "ISO 8601 text, or epoch seconds as a number, milliseconds above 1e11"
"""The event times streamlab reads (``streamlab._time.to_utc_ns``, ``epoch_to_ns``), as dead-letter reasons
name them: the same words in every exported program, whose reasons ``verify`` compares."""


def unreadable_time_reason(column: str, needed_for: str | None = None) -> str:
    """The dead-letter reason of a row whose event time in ``column`` is missing or unreadable (one line),
    for a window, a feature, a rule, a detector (``needed_for='key_ttl'``) and a pattern alike: here, so
    that exported programs, which carry this module, give it word for word.

    Examples
    --------
    >>> unreadable_time_reason("timestamp")
    "missing or unreadable event time in column 'timestamp' (expected ISO 8601 text, or epoch seconds as a number, milliseconds above 1e11)"
    >>> unreadable_time_reason("t", "key_ttl")[:67]
    "missing or unreadable event time in column 't' (needed for key_ttl;"
    """
    need = f"needed for {needed_for}; " if needed_for else ""
    return f"missing or unreadable event time in column {column!r} ({need}expected {EVENT_TIME_FORMATS})"


def epoch_to_ns(value: int | float) -> int:
    """Epoch seconds, or milliseconds for values above 1e11, as nanoseconds: exact.

    A float counts as the exact binary value it holds, rounded to the nearest nanosecond (half to even):
    ``1704067223.25`` is ``...223250000000``, where the product of doubles would be 128 ns early.

    Examples
    --------
    >>> epoch_to_ns(1704067223.25), epoch_to_ns(1700000525610)
    (1704067223250000000, 1700000525610000000)
    """
    scale = 1_000_000 if abs(value) > 1e11 else 1_000_000_000
    if isinstance(value, int):
        return value * scale
    num, den = value.as_integer_ratio()
    q, r = divmod(num * scale, den)
    return q + 1 if 2 * r > den or (2 * r == den and q % 2) else q


def from_ns(ns: int) -> datetime:
    """Aware UTC datetime (microsecond precision) of epoch nanoseconds."""
    return EPOCH + timedelta(microseconds=ns // 1_000)


def _bad_value(name: str, kind: str, value: Any, note: str = "") -> BadRecordError:
    shown = str(value)[:40] if not isinstance(value, int) or abs(value) < 10**40 else f"{str(value)[:37]}..."
    return BadRecordError(f"field {name!r}: expected {kind}, got {type(value).__name__} {shown!r}{note}")


def check_value(name: str, kind: str, value: Any) -> Any:
    """The typed value of one field (timestamps as epoch nanoseconds), or BadRecordError with the reason."""
    if value is None or kind == "json":
        return value
    if kind in ("string", "category"):
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise _bad_value(name, kind, value, " (a lone surrogate is not text)") from None
            return value
    elif kind == "float64":
        if isinstance(value, float):
            if math.isfinite(value):
                return value
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # its nearest double would be infinite
                raise _bad_value(name, kind, value, " (out of range)") from None
    elif kind == "int64":
        if isinstance(value, int) and not isinstance(value, bool):
            if INT64_RANGE[0] <= value <= INT64_RANGE[1]:
                return value
            raise _bad_value(name, kind, value, " (out of range)")
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "object":
        if isinstance(value, dict):
            return value
        raise _bad_value(name, "a JSON object", value)
    elif kind == "timestamp":
        if isinstance(value, str) and value.strip().lower() in ("", "nat"):
            return None  # no time, as a missing field (a required one goes to dead letter)
        try:
            ns = to_ns(value)
            if not INT64_RANGE[0] < ns <= INT64_RANGE[1]:  # 64-bit nanoseconds: years 1677-2262
                raise ValueError("out of range")
            return ns
        except (TypeError, ValueError, OverflowError):
            raise BadRecordError(
                f"field {name!r}: expected an ISO-8601 timestamp such as '2024-01-01T00:00:00Z', "
                f"got {type(value).__name__} {str(value)[:40]!r}" + _time_hint(value)
            ) from None
    raise _bad_value(name, kind, value)


def _time_hint(value: Any) -> str:
    """Why a value that looks like a time is not one here, for a dead letter's reason ('' if nothing).

    Examples
    --------
    >>> _time_hint("yesterday"), _time_hint("9999-12-31T00:00:00Z")[:24]
    (' (a relative time is not an event time)', ' (out of the range 64-bi')
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _RELATIVE:
            return " (a relative time is not an event time)"
        try:
            datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
        except ValueError:
            return ""
        return " (out of the range 64-bit nanoseconds hold: years 1677 to 2262)"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (
            " (a number is read as epoch seconds, up to 9,223,372,036, or milliseconds, up to "
            "9,223,372,036,854: send microseconds or nanoseconds as ISO-8601 text)"
        )
    return ""


def read_record(
    raw: object,
    fields: tuple[tuple[str, str, tuple[str, ...]], ...],
    required: tuple[str, ...],
    max_record_bytes: int,
) -> dict[str, Any]:
    """One raw JSON record as a row of typed values (timestamps as epoch nanoseconds).

    ``fields`` holds (name, type, path) per output column; raises BadRecordError with the reason (for a
    raw value that is no text or bytes, ``record_bytes``'s).

    Examples
    --------
    >>> fields = (("t", "timestamp", ("t",)), ("amount", "float64", ("properties", "amount")))
    >>> read_record(b'{"t": 1, "properties": {"amount": 3}}', fields, ("t",), 1000)
    {'t': 1000000000, 'amount': 3.0}
    >>> read_record(b'{"t": "now"}', fields, ("t",), 1000)
    Traceback (most recent call last):
    ...
    streamlab._record.BadRecordError: field 't': expected an ISO-8601 timestamp such as '2024-01-01T00:00:00Z', got str 'now' (a relative time is not an event time)
    """
    raw = record_bytes(raw)
    if len(raw) > max_record_bytes:
        raise BadRecordError(f"record is {len(raw):,} bytes; max_record_bytes is {max_record_bytes:,}")
    if not raw.strip():
        raise BadRecordError("empty record")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRecordError(f"invalid UTF-8: {e}") from None
    _check_limits(text)
    try:
        obj = _DECODER.decode(text)
    except RecursionError:  # not reached below MAX_DEPTH; a safety net for very deep call stacks
        raise BadRecordError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise BadRecordError(f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadRecordError(f"expected a JSON object, got {type(obj).__name__}")
    row = {name: field_value(obj, name, kind, path) for name, kind, path in fields}
    for name in required:
        if row[name] is None:
            raise BadRecordError(f"missing required field {name!r}")
    return row


def field_value(obj: dict[str, Any], name: str, kind: str, path: tuple[str, ...]) -> Any:
    """The typed value of field ``name`` at ``path`` of a decoded record, or BadRecordError with the reason.

    Examples
    --------
    >>> field_value({"p": {"a": 2}}, "a", "float64", ("p", "a")), field_value({}, "a", "object", ("p", "a"))
    (2.0, None)
    """
    node: Any = obj
    for part in path:
        if node is None:
            break
        if not isinstance(node, dict):
            raise BadRecordError(
                f"field {name!r}: expected an object at {part!r} of path {'.'.join(path)}, "
                f"got {type(node).__name__}"
            )
        node = node.get(part)
    return check_value(name, kind, node)


def parse_record(
    raw: object,
    fields: tuple[tuple[str, str, tuple[str, ...]], ...],
    required: tuple[str, ...],
    max_record_bytes: int,
) -> dict[str, Any]:
    """``read_record`` with timestamps as aware UTC datetimes, as exported jobs carry them."""
    row = read_record(raw, fields, required, max_record_bytes)
    for name, kind, _ in fields:
        if kind == "timestamp" and row[name] is not None:
            row[name] = from_ns(row[name])
    return row


class Dedup:
    """The dedup step's rule for one record at a time: is this id a repeat?

    An id is remembered from its first occurrence while the largest event time seen (the watermark)
    is within ``ttl_ns`` of that occurrence's event time, and at most ``max_ids`` ids are remembered
    (the oldest first occurrence is forgotten first). A repeat of a forgotten id passes again and is
    remembered anew. Without ``ttl_ns`` only ``max_ids`` bounds memory; a record without event time
    never moves the watermark and its id is forgotten as soon as there is one (with ``ttl_ns``).

    streamlab's dedup step, the exported Beam module and the Lambda handler all run this class, so
    their duplicates cannot drift. Keys are any hashable values (``dedup_key`` makes one of a column
    value); the state pickles, and ``to_json``/``from_json`` carry it through JSON (Lambda's state).

    Examples
    --------
    >>> d = Dedup(ttl_ns=10, max_ids=2)
    >>> [d.is_duplicate(k, t) for k, t in [("a", 0), ("a", 5), ("b", 20), ("a", 21), ("c", 22), ("b", 23)]]
    [False, True, False, False, False, False]
    """

    def __init__(self, ttl_ns: int | None, max_ids: int) -> None:
        self.ttl_ns = ttl_ns
        self.max_ids = max_ids
        self.seen: dict[Any, int | None] = {}  # id -> event time of its first occurrence, oldest first
        self.max_ns: int | None = None
        self.forgotten = 0
        self._expiry: list[tuple[int, int, Any]] = []  # (time, sequence, id): a heap, with stale entries
        self._order: dict[Any, int] = {}  # id -> sequence of its live heap entry
        self._seq = 0

    def is_duplicate(self, key: Any, ts_ns: int | None, remembered: Any = None) -> bool:
        """Record one occurrence of ``key`` at event time ``ts_ns`` (None: no time); True for a repeat.

        ``remembered(key)``, when given, answers for ids this state does not hold: ``(True, time)``
        for an id remembered elsewhere (Lambda: in an earlier window), ``(False, None)`` otherwise.
        """
        if ts_ns is not None and (self.max_ns is None or ts_ns > self.max_ns):
            self.max_ns = ts_ns
            self._expire()
        if key in self.seen:
            return True  # held ids are live: _expire drops the rest
        if remembered is not None:
            known, first = remembered(key)
            if known and self._live(first):
                return True
        if self._live(ts_ns):
            self._remember(key, ts_ns)
        return False

    def _live(self, first: int | None) -> bool:
        if self.ttl_ns is None or self.max_ns is None:
            return True
        return first is not None and first >= self.max_ns - self.ttl_ns

    def _remember(self, key: Any, ts_ns: int | None) -> None:
        self.seen[key] = ts_ns
        if self.ttl_ns is not None:
            self._seq += 1
            self._order[key] = self._seq
            heapq.heappush(self._expiry, (-(2**63) if ts_ns is None else ts_ns, self._seq, key))
        if len(self.seen) > self.max_ids:
            oldest = next(iter(self.seen))
            self._forget(oldest)

    def _forget(self, key: Any) -> None:
        del self.seen[key]
        self._order.pop(key, None)
        self.forgotten += 1

    def _expire(self) -> None:
        if self.ttl_ns is None or self.max_ns is None:
            return
        # an id without time (kept as -2**63) goes once there is a time, also within the ttl after 1677
        horizon = max(self.max_ns - self.ttl_ns, -(2**63) + 1)
        heap = self._expiry
        while heap and heap[0][0] < horizon:
            _, seq, key = heapq.heappop(heap)
            if self._order.get(key) == seq:
                self._forget(key)

    def to_json(self) -> dict[str, Any]:
        """The state as JSON-ready data (ids must be JSON values)."""
        return {
            "seen": [[k, t] for k, t in self.seen.items()],
            "max_ns": self.max_ns,
            "forgotten": self.forgotten,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, ttl_ns: int | None, max_ids: int) -> Dedup:
        """A state from ``to_json`` output (None: empty)."""
        out = cls(ttl_ns, max_ids)
        data = data or {}
        out.max_ns = data.get("max_ns")
        out.forgotten = data.get("forgotten", 0)
        for k, t in data.get("seen", ()):
            out._remember(tuple(k) if isinstance(k, list) else k, t)  # a typed_id, back from JSON
        return out


def dedup_key(value: Any) -> Any:
    """The id a dedup step remembers for a column value: NaN and None are one missing id, objects and
    arrays their JSON text (they are not hashable), everything else the value itself.

    Examples
    --------
    >>> dedup_key(float("nan")) is None, dedup_key({"b": 1, "a": 2})
    (True, '{"a": 2, "b": 1}')
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    try:
        hash(value)
    except TypeError:  # a set, a bytearray, a tuple holding a list (in-memory records): its text, as above
        return json.dumps(
            sorted(value, key=repr) if isinstance(value, set) else value, sort_keys=True, default=str
        )
    return value


def typed_id(key: Any) -> Any:
    """A ``dedup_key`` told apart by type, as streamlab's dedup step tells ids apart: ``true``, ``1`` and
    ``1.0`` of a ``json`` field are three ids (Python holds them equal), so a bool or a float is the
    pair ``(type name, value)``; other ids are themselves. ``Dedup.from_json`` reads such a pair back from
    the list JSON makes of it. The per-record keyed features, rules, detectors and patterns
    (``streamlab._detector_record``) and interval joins key their state by it too, as windows do.

    Examples
    --------
    >>> [typed_id(dedup_key(v)) for v in (1, 1.0, True, "1", None)]
    [1, ('float', 1.0), ('bool', True), '1', None]
    """
    return (type(key).__name__, key) if isinstance(key, (bool, float)) else key
