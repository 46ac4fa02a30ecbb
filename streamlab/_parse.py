"""Runtime of the parse step: raw JSON records in, typed columns out, bad records to dead letter.

Fast path: pyarrow's multi-threaded JSON reader over a whole chunk with an explicit schema. Arrow is
strict (a type mismatch fails the chunk), so a failing chunk is split until the bad records are isolated;
those are then checked one by one by ``streamlab._record`` (the code exported parsers carry), which also
words the dead-letter reason. Where arrow is more lenient than that checked path (NaN literals, no
nesting or number-length limit, line breaks), vectorized scans send the records concerned to the checked
path before arrow sees them. Fields arrow does not read (json/object values, and a key that two fields
read as different types, which arrow would read in one) are looked up record by record beside its read.
Both paths accept exactly the same records with the same values, so batch boundaries never change results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from streamlab._dead_letter import raw_dead_letter_frame
from streamlab._intcols import nullable_ints
from streamlab._lines import LineArray, file_slice, line_extremes
from streamlab._record import (
    _DECODER,
    MAX_DEPTH,
    MAX_NUMBER_DIGITS,
    BadRecordError,
    check_value,
    field_value,
    read_record,
    record_bytes,
)
from streamlab._time import epoch_floats_to_ns
from streamlab.operators import Operator, Outputs

FIELD_TYPES = ("string", "category", "int64", "float64", "bool", "timestamp", "object", "json")
_ARROW = {
    "string": pa.string(),
    "category": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("ns", tz="UTC"),
}
_DICT = pa.dictionary(pa.int32(), pa.string())
_NEWLINE = pa.scalar(b"\n", pa.binary())
_NOTHING = pa.scalar(b"", pa.binary())
_SMALL_CHUNK = 48
_SPLIT = 8


class FieldSpecError(ValueError):
    """A schema entry that is no field: ``problem`` and its ``fix``, which the parse step's
    :class:`~streamlab.errors.PipelineConfigError` says (``streamlab._spec_check.schema_fields``)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem, self.fix = problem, fix


def _empty_keys(path: str) -> str:
    """What is wrong with the dotted ``path`` that has an empty key.

    Examples
    --------
    >>> _empty_keys(".a..b."), _empty_keys("")
    ('has a leading dot, two dots in a row and a trailing dot, which leave a key empty', 'names no key')
    """
    if not path.strip("."):
        return "names no key"
    found = [
        what
        for what, there in (
            ("a leading dot", path.startswith(".")),
            ("two dots in a row", ".." in path),
            ("a trailing dot", path.endswith(".")),
        )
        if there
    ]
    leave = "leave" if len(found) > 1 else "leaves"
    return (
        "has "
        + ", ".join(found[:-1])
        + " and " * (len(found) > 1)
        + found[-1]
        + f", which {leave} a key empty"
    )


@dataclass(frozen=True)
class FieldSpec:
    """One output column of the parse step: its type and where it is in the JSON object.

    ``path`` holds the keys from the top of the record to the value, each a key as written in the
    JSON (a key may contain a dot). In a schema, a field is ``"name": "type"`` (the top-level key
    ``name``, dots and all: ``"user.id": "string"`` reads the key ``"user.id"``) or
    ``"name": {"type": ..., "path": ...}``, where a path is either text whose dots separate nested keys
    (``"properties.amount"``) or a list of keys taken literally (``["user.id"]``,
    ``["properties", "user.id"]``).

    Examples
    --------
    >>> FieldSpec.of("user.id", "string").path, FieldSpec.of("amount", {"type": "float64", "path": "p.amount"}).path
    (('user.id',), ('p', 'amount'))
    >>> f = FieldSpec.of("uid", {"type": "string", "path": ["p", "user.id"]})
    >>> f.path, f.describe()
    (('p', 'user.id'), {'type': 'string', 'path': ['p', 'user.id']})
    >>> FieldSpec.of("amount", {"type": "float64", "path": "properties..amount"})
    Traceback (most recent call last):
    ...
    streamlab._parse.FieldSpecError: field 'amount': path 'properties..amount' has two dots in a row, which leaves a key empty; a path is dot-separated names: 'properties.amount'; for a key that itself holds a dot, give the path as a list of keys, e.g. ['properties', 'user.id']
    """

    name: str
    type: str
    path: tuple[str, ...]

    @classmethod
    def of(cls, name: str, spec: Any) -> FieldSpec:
        path: Any
        if isinstance(spec, str):
            typ, path = spec, [name]
        elif isinstance(spec, dict):
            typ, path = spec.get("type", "string"), spec.get("path", [name])
        elif isinstance(spec, (tuple, list)) and len(spec) == 2:
            typ, path = spec
        else:
            raise ValueError(
                f"field {name!r}: write its type as a string such as 'float64', or "
                "{'type': 'float64', 'path': 'properties.amount'}"
            )
        if typ not in FIELD_TYPES:
            raise ValueError(f"field {name!r}: unknown type {typ!r}; use one of {', '.join(FIELD_TYPES)}")
        if isinstance(path, str):
            keys = path.split(".")
            if "" in keys:  # read as it stands, it named the key "" (silent nulls, or every record dead)
                meant = ".".join(k for k in keys if k) or name
                raise FieldSpecError(
                    f"field {name!r}: path {path!r} {_empty_keys(path)}",
                    f"a path is dot-separated names: {meant!r}; for a key that itself holds a dot, give "
                    "the path as a list of keys, e.g. ['properties', 'user.id']",
                )
            path = keys
        if not isinstance(path, (list, tuple)) or not path or not all(isinstance(k, str) for k in path):
            raise FieldSpecError(
                f"field {name!r}: path {path!r} is not a path",
                "write it as 'properties.amount' (nested keys) or as a list of keys taken literally, e.g. "
                "['user.id'] for a key with a dot",
            )
        return cls(name, typ, tuple(path))

    def path_spec(self) -> str | list[str]:
        """The path as a schema writes it: dotted text, or a list of keys when a key holds a dot."""
        return list(self.path) if any("." in k for k in self.path) else ".".join(self.path)

    def describe(self) -> Any:
        return self.type if self.path == (self.name,) else {"type": self.type, "path": self.path_spec()}


def _nested_schema(fields: list[FieldSpec], timestamp: pa.DataType | None = None) -> pa.Schema:
    """Arrow's read schema; ``timestamp`` replaces the type of timestamp fields (epoch numbers)."""
    tree: dict[str, Any] = {}
    for f in fields:
        node = tree
        for part in f.path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"field {f.name!r}: path {'.'.join(f.path)} conflicts with another field")
        node[f.path[-1]] = timestamp if timestamp is not None and f.type == "timestamp" else _ARROW[f.type]

    def build(node: dict[str, Any]) -> list[pa.Field]:
        return [pa.field(k, pa.struct(build(v)) if isinstance(v, dict) else v) for k, v in node.items()]

    return pa.schema(build(tree))


def _flat_schema(fields: list[FieldSpec]) -> pa.Schema:
    return pa.schema([pa.field(f.name, _ARROW.get(f.type, pa.string())) for f in fields])


def _mixed_keys(fields: list[FieldSpec]) -> list[FieldSpec]:
    """The fields (of arrow's types) whose value another field reads as another type.

    Arrow reads a key in one type, which would decide the value of every field on it (an epoch read as
    an int64 would be nanoseconds for the timestamp field beside it, a float64 would round its int64):
    the parse step looks these fields up record by record instead, as it does json/object fields.

    Examples
    --------
    >>> fields = [FieldSpec.of("t", "timestamp"), FieldSpec.of("n", {"type": "int64", "path": "t"}),
    ...           FieldSpec.of("c", "category"), FieldSpec.of("s", {"type": "string", "path": "c"})]
    >>> [f.name for f in _mixed_keys(fields)]  # a category is read as the string it is
    ['t', 'n']
    """
    types: dict[tuple[str, ...], set[pa.DataType]] = {}
    for f in fields:
        types.setdefault(f.path, set()).add(_ARROW[f.type])
    return [f for f in fields if len(types[f.path]) > 1]


# one JSON value of each kind some field type reads (text that a timestamp reads too, an integer, a
# fraction, a bool, an object, an array): two types can both hold a value of one key when one of these
# passes both types' per-record check
_SAMPLE_VALUES = ("2024-01-01T00:00:00Z", 7, 7.5, True, {"k": 1}, [1])


def read_together(first: str, second: str) -> bool:
    """Whether fields of types ``first`` and ``second`` on one JSON key can both hold one value.

    Read from the per-record rule itself (``streamlab._record.check_value``): some JSON value passes
    both types. An int64 and a float64 share ``7``, a timestamp and an int64 an epoch, a string and a
    timestamp ISO text; an int64 and a string share none (a string reads text only, an int64 numbers
    only), so every record with a value at that key would be a dead letter.

    Examples
    --------
    >>> read_together("int64", "float64"), read_together("timestamp", "string"), read_together("int64", "string")
    (True, True, False)
    """

    def reads(kind: str, value: Any) -> bool:
        try:
            return check_value("field", kind, value) is not None
        except BadRecordError:
            return False

    return any(reads(first, v) and reads(second, v) for v in _SAMPLE_VALUES)


def _done(outputs: Outputs) -> Callable[[], Outputs]:
    return lambda: outputs


def _is_utf8(buf: bytes | pa.Buffer) -> bool:
    """Whether ``buf`` is valid UTF-8; pure ASCII (the common case) is recognised with one vector pass."""
    if len(buf) == 0 or int(np.frombuffer(buf, dtype=np.uint8).max()) < 0x80:
        return True
    try:
        str(buf, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


_SCAN = 1 << 18  # bytes per step of a scan: its temporaries stay in the CPU's cache


def _count_bytes(view: np.ndarray, compare: np.ufunc, value: int) -> int:
    """How many bytes ``b`` of ``view`` have ``compare(b, value)``, counted a cache-sized step at a time."""
    return sum(
        int(np.count_nonzero(compare(view[lo : lo + _SCAN], value))) for lo in range(0, len(view), _SCAN)
    )


_FIND_PIECE = 1 << 30  # bytes searched at once: a fixed-width string is shorter than 2 GiB


def _holds_byte(view: np.ndarray, value: int) -> bool:
    """Whether the contiguous bytes ``view`` hold the byte ``value``.

    numpy's string search looks for a single byte with ``memchr``, several times faster than a
    comparison over every byte; the bytes are seen as fixed-width strings (up to 1 GiB each), not copied.

    Examples
    --------
    >>> view = np.frombuffer(b'{"a":NaN}', np.uint8)
    >>> _holds_byte(view, ord("N")), _holds_byte(view, ord("I"))
    (True, False)
    """
    if not value:  # a fixed-width string ends at its trailing NULs, and a NUL needle is the empty one
        return bool((view == 0).any())
    needle = bytes([value])
    for lo in range(0, len(view), _FIND_PIECE):
        piece = view[lo : lo + _FIND_PIECE]
        whole: np.ndarray[Any, np.dtype[np.bytes_]] = piece.view(np.dtype((np.bytes_, len(piece))))
        if np.char.find(whole, needle)[0] >= 0:
            return True
    return False


_S_MAX, _MS_MAX = 9_223_372_036, 9_223_372_036_854  # largest |epoch| in int64 nanoseconds


def _odd_records(
    view: np.ndarray, lens: np.ndarray, controls: bool = True, starts: np.ndarray | None = None
) -> np.ndarray | None:
    """Which records of a line-joined buffer arrow's reader must not judge (a bool each), or None.

    ``view`` holds the records of lengths ``lens``, each followed by one separator byte (the last one
    may lack it). Arrow reads NaN/Inf/Infinity literals, has no nesting limit, reads numbers of any
    length and cuts lines at raw line breaks, where the checked path rejects or reads otherwise: records
    that might hold any of these go there. Every test is a vectorized scan, mostly over a few positions.
    ``controls=False`` says the records are known to hold no byte below 0x20 (that scan is left out);
    ``starts``, where each record starts in ``view``, when known (else found from ``lens``).
    """
    n = len(lens)
    if starts is None:
        starts = np.cumsum(lens + 1) - 1 - lens
    ends = starts + lens  # each record's separator
    size = len(view)
    where: list[np.ndarray] = []
    # control bytes other than the separators: raw tabs, carriage returns, NULs, line breaks in a record
    # (counted first, in cache-sized steps: listing where they are is needed only when some are there)
    if controls and _count_bytes(view, np.less, 0x20) != int(np.count_nonzero(ends < size)):
        low = np.flatnonzero(view < 0x20)
        rec = np.searchsorted(starts, low, side="right") - 1
        where.append(rec[low != ends[rec]])
    # NaN, Inf, Infinity where a value can start (arrow's reader takes them, JSON does not); most data
    # (lower-case keys) holds no "N" nor "I" at all, which a byte search rules out
    for first, second, third in ((0x4E, 0x61, 0x4E), (0x49, 0x6E, 0x66)):
        if size <= 3 or not _holds_byte(view[1 : size - 2], first):
            continue
        pos = np.flatnonzero(view[1 : size - 2] == first) + 1
        pos = pos[(view[pos + 1] == second) & (view[pos + 2] == third)]
        before = view[pos - 1]
        pos = pos[
            (before == 0x3A) | (before == 0x2C) | (before == 0x5B) | (before == 0x20) | (before == 0x2D)
        ]
        if len(pos):
            where.append(np.searchsorted(starts, pos, side="right") - 1)
    longest = int(lens.max()) if n else 0
    if longest > 2 * MAX_DEPTH:  # only then can a valid record be nested deeper than MAX_DEPTH
        brackets = np.flatnonzero((view | 0x20) == 0x7B)  # "[" and "{"
        counts = np.bincount(np.searchsorted(starts, brackets, side="right") - 1, minlength=n)
        where.append(np.flatnonzero(counts > MAX_DEPTH))
    if longest > MAX_NUMBER_DIGITS:
        # a run of more than MAX_NUMBER_DIGITS digits covers two neighbouring samples taken every half
        # that length, and all bytes between them: check those few windows
        step = MAX_NUMBER_DIGITS // 2
        digit = (view[::step] - 0x30) < 10
        pairs = np.flatnonzero(digit[:-1] & digit[1:]) * step
        for lo in range(0, len(pairs), 4096):  # bounded memory where digits abound
            some = pairs[lo : lo + 4096]
            window = view[some[:, None] + np.arange(step + 1)]
            full = some[((window - 0x30) < 10).all(axis=1)]
            where.append(np.searchsorted(starts, full, side="right") - 1)
    if not where or not any(len(w) for w in where):
        return None
    odd = np.zeros(n, dtype=bool)
    odd[np.concatenate(where)] = True
    return odd


def _raw_decode(text: str, idx: int) -> tuple[Any, int]:
    return _DECODER.raw_decode(text, idx)


# the strict decoder's scanner alone: records that reach it start with "{" and end with "}", so there
# is no whitespace around them to skip, as decode() would; json.JSONDecoder sets scan_once (undocumented,
# there since Python 2.6), and raw_decode (the documented way, a little slower) stands in without it
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = getattr(_DECODER, "scan_once", None) or _raw_decode


def _decoded_object(rec: bytes | str) -> dict[str, Any] | None:
    """A record's JSON object as the strict decoder reads it, or None when it does not read as one
    object spanning the whole record (the checked path then judges it and words the reason).

    Examples
    --------
    >>> _decoded_object(b'{"a": [1, {"b": null}]}'), _decoded_object('{"a": 1}{}'), _decoded_object(b'{"a": NaN}')
    ({'a': [1, {'b': None}]}, None, None)
    """
    try:
        text = rec if isinstance(rec, str) else rec.decode("utf-8")
        obj, end = _SCAN_JSON(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    return obj if end == len(text) and type(obj) is dict else None


def _odd_rows(table: pa.Table, fields: list[FieldSpec]) -> np.ndarray | None:
    """Rows whose float64 values arrow read as infinite, NaN or -0.0, which the checked path judges or
    reads otherwise (an integer literal such as ``-0`` is +0.0 there); None when there are none."""
    odd: np.ndarray | None = None
    for f in fields:
        if f.type != "float64":
            continue
        values = table.column(f.name).combine_chunks().fill_null(1.0).to_numpy()
        bad = ~np.isfinite(values) | ((values == 0) & np.signbit(values))
        if bad.any():
            odd = bad if odd is None else odd | bad
    return odd


def _epoch_to_timestamps(col: pa.Array) -> pa.Array | None:
    """Epoch seconds, or milliseconds above 1e11, as UTC timestamps, exactly as ``_record.to_ns`` computes
    them (integer arithmetic for integers, a float's exact value rounded half to even); None if a
    value would be out of range or is not finite, so the checked path words the reason."""
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(col.type):
        v = col.fill_null(0).to_numpy().astype(np.int64)
        # no np.abs: int64's -2**63 is its own absolute value, and would pass as in range
        ms = (v > 100_000_000_000) | (v < -100_000_000_000)
        limit = np.where(ms, _MS_MAX, _S_MAX)
        if bool(((v > limit) | (v < -limit)).any()):
            return None
        ns = v * np.where(ms, 1_000_000, 1_000_000_000)
    else:
        f = col.fill_null(0.0).to_numpy()
        if not bool(np.isfinite(f).all()):
            return None
        product = f * np.where(np.abs(f) > 1e11, 1_000_000.0, 1_000_000_000.0)
        # a whole number beyond 2**53 may have been a JSON integer arrow read as a double: the checked
        # path judges it (a batch of integers is read as int64 above)
        if bool(((f == np.floor(f)) & (np.abs(f) >= 2.0**53)).any()):
            return None
        if not bool(((product > -9.2e18) & (product < 9.2e18)).all()):
            return None  # near or beyond int64's nanoseconds: the checked path words it
        ns = epoch_floats_to_ns(f)
    return pa.array(ns, type=pa.timestamp("ns", tz="UTC"), mask=~valid)


def _sorted_categories(col: pa.Array) -> pa.DictionaryArray:
    """``col`` dictionary-encoded with its values sorted, as pandas' ``astype("category")`` orders them.

    Done here, in arrow (the reading thread, without the GIL), so the conversion to pandas finds the
    categories in order and has nothing to reorder.
    """
    encoded = pc.dictionary_encode(col)
    values = encoded.dictionary
    order = pc.sort_indices(values).to_numpy()
    if len(order) < 2 or bool((order[1:] > order[:-1]).all()):
        return encoded
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    codes = encoded.indices.fill_null(0).to_numpy()
    nulls = encoded.indices.is_null().to_numpy(zero_copy_only=False) if encoded.indices.null_count else None
    indices = pa.array(rank[codes], mask=nulls)
    return pa.DictionaryArray.from_arrays(indices, values.take(pa.array(order)))


def _typed_column(kind: str, values: list[Any]) -> pa.Array:
    """The table column of a field of type ``kind`` from its values as ``check_value`` gives them
    (timestamps as epoch nanoseconds); a json/object column says only whether a value is there (the
    values go beside the table).

    Examples
    --------
    >>> _typed_column("timestamp", [1_000, None]).type, _typed_column("category", ["b", "a"]).dictionary.to_pylist()
    (TimestampType(timestamp[ns, tz=UTC]), ['a', 'b'])
    """
    if kind == "timestamp":
        return pa.array(values, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    if kind in ("json", "object"):
        return pa.array(["" if v is not None else None for v in values], type=pa.string())
    arr = pa.array(values, type=_ARROW[kind])
    return _sorted_categories(arr) if kind == "category" else arr


def _raw_records(column: pd.Series, where: np.ndarray) -> list[Any]:
    """The raw records of ``column`` at positions ``where`` (lines of a file cut from its bytes alone)."""
    if isinstance(column.array, LineArray):
        return column.array.records(where)
    return column.iloc[where].tolist()


class ParseOperator(Operator):
    """Parse JSON records of ``value_column`` into typed columns (see ``Stream.parse``)."""

    output_names = ("out", "dead_letter")
    works_ahead = True  # arrow reads the next batch in a worker while the previous one goes downstream

    def __init__(
        self,
        step_id: str,
        fields: list[FieldSpec],
        value_column: str,
        required: tuple[str, ...],
        max_record_bytes: int,
    ) -> None:
        self.step_id = step_id
        self.fields = fields
        self.value_column = value_column
        self.required = required
        self.max_record_bytes = max_record_bytes
        self.record_fields = tuple((f.name, f.type, f.path) for f in fields)
        # json/object fields hold Python values (json.loads'): arrow reads the other fields, and each
        # record those are read from is decoded once more for its Python values (see _with_objects);
        # so are fields on a key that another field reads as another type (_mixed_keys)
        typed = [f for f in fields if f.type not in ("json", "object")]
        mixed = _mixed_keys(typed)
        self.lookup_fields = [f for f in fields if f.type in ("json", "object") or f in mixed]
        self.arrow_fields = [f for f in typed if f not in mixed]
        self.python_only = any(f.type in ("json", "object") for f in fields)
        self.nested_schema = _nested_schema(self.arrow_fields)
        self.flat_schema = _flat_schema(fields)
        # tables carry category fields dictionary-encoded (done in the reading thread, without the GIL)
        self.table_schema = pa.schema(
            [
                pa.field(f.name, _DICT) if f.type == "category" else self.flat_schema.field(f.name)
                for f in fields
            ]
        )
        # what arrow's read gives (the columns of lookup_fields are added after it)
        self.arrow_table_schema = pa.schema([self.table_schema.field(f.name) for f in self.arrow_fields])
        self.parse_options = pj.ParseOptions(
            explicit_schema=self.nested_schema, unexpected_field_behavior="ignore"
        )
        # timestamps given as epoch numbers: read as integers (exact), else as floats, then converted
        self.epoch_options = (
            [
                pj.ParseOptions(
                    explicit_schema=_nested_schema(self.arrow_fields, number),
                    unexpected_field_behavior="ignore",
                )
                for number in (pa.int64(), pa.float64())
            ]
            if any(f.type == "timestamp" for f in self.arrow_fields)
            else []
        )

    # -- arrow path -------------------------------------------------------------------------------
    def _read(self, buf: bytes | pa.Buffer, n_records: int, longest: int) -> pa.Table | None:
        """Arrow's reader over ``n_records`` newline-joined, UTF-8-checked records; None if any fails.

        Runs in arrow's threads, mostly without the GIL: the runtime may call it from a worker thread.
        Timestamps given as epoch numbers (seconds, or milliseconds when larger than 1e11, as the
        record-by-record path reads them) are read as numbers and converted here.
        """
        return self._columns(self._read_json(buf, n_records, longest))

    def _read_json(
        self, buf: bytes | pa.Buffer, n_records: int, longest: int
    ) -> tuple[pa.Table, bool] | None:
        """The first part of :meth:`_read`, arrow's reader alone: its table (nested as the records are),
        and whether timestamps were read as epoch numbers; None if any record fails."""
        read_options = pj.ReadOptions(
            use_threads=len(buf) > (1 << 20), block_size=max(1 << 20, 2 * longest + 2)
        )
        epoch = False
        try:
            table = pj.read_json(
                pa.BufferReader(buf), read_options=read_options, parse_options=self.parse_options
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError) as e:
            if not self.epoch_options or "to number" not in str(e):
                return None
            epoch = True
            for options in self.epoch_options:  # integers first: exact; floats if some are not
                try:
                    table = pj.read_json(
                        pa.BufferReader(buf), read_options=read_options, parse_options=options
                    )
                    break
                except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
                    continue
            else:
                return None
        if table.num_rows != n_records:  # e.g. two objects on one line
            return None
        return table, epoch

    def _columns(self, read: tuple[pa.Table, bool] | None) -> pa.Table | None:
        """The second part of :meth:`_read`: the fields picked out of arrow's table, epoch timestamps
        converted, categories encoded; None when a value must go to the checked path."""
        if read is None:
            return None
        table, epoch = read
        cols = []
        for f in self.arrow_fields:
            col = table.column(f.path[0]).combine_chunks()
            for part in f.path[1:]:
                col = col.field(part)
            if epoch and f.type == "timestamp":
                col = _epoch_to_timestamps(col)
                if col is None:  # some value the checked path must judge (out of range, not finite)
                    return None
            cols.append(_sorted_categories(col) if f.type == "category" else col)
        return pa.table(cols, schema=self.arrow_table_schema)

    # -- python path (isolates and explains bad records) ---------------------------------------------
    def _python_rows(self, recs: list[bytes], idx: Any, good: list[Any], bad: list[Any]) -> None:
        rows, where = [], []
        for i, rec in zip(idx, recs):
            try:
                rows.append(read_record(rec, self.record_fields, self.required, self.max_record_bytes))
                where.append(i)
            except BadRecordError as e:
                bad.append((i, str(e)))
        if rows:
            cols = {f.name: _typed_column(f.type, [r[f.name] for r in rows]) for f in self.fields}
            table = pa.table(cols, schema=self.table_schema)
            if self.python_only:
                json_cols = {
                    f.name: [r[f.name] for r in rows] for f in self.fields if f.type in ("json", "object")
                }
                good.append((np.asarray(where), table, json_cols))
            else:
                good.append((np.asarray(where), table, {}))

    def _size_reason(self, size: int) -> str:
        if size == 0:
            return "empty record"
        return f"record is {size:,} bytes; max_record_bytes is {self.max_record_bytes:,}"

    def _chunk(self, recs: list[bytes], idx: Any, good: list[Any], bad: list[Any]) -> None:
        if len(recs) <= _SMALL_CHUNK:
            self._python_rows(recs, idx, good, bad)
            return
        idx = np.asarray(idx)
        buf = b"\n".join(recs)
        odd = _odd_records(
            np.frombuffer(buf, dtype=np.uint8), np.fromiter(map(len, recs), np.int64, len(recs))
        )
        if odd is not None:
            self._python_rows([recs[i] for i in np.flatnonzero(odd)], idx[odd], good, bad)
            self._chunk([recs[i] for i in np.flatnonzero(~odd)], idx[~odd], good, bad)
            return
        table = self._read(buf, len(recs), max(map(len, recs))) if _is_utf8(buf) else None
        if table is not None:
            self._accept(table, idx, lambda where: [recs[i] for i in where], good, bad)
            return
        self._split(recs, idx, good, bad)

    def _accept(
        self,
        table: pa.Table,
        idx: np.ndarray,
        records: Callable[[np.ndarray], list[bytes]],
        good: list[Any],
        bad: list[Any],
        texts: Callable[[np.ndarray], list[str] | None] | None = None,
    ) -> None:
        """Keep arrow's rows, but let the checked path judge those with values it reads otherwise.

        ``records`` gives the records at table rows as bytes; ``texts``, when given, as text where it
        can (lines of a file known to be ASCII: one decode of their block), for the json/object values.
        """
        odd = _odd_rows(table, self.arrow_fields)
        rows = np.arange(len(idx)) if odd is None else np.flatnonzero(~odd)  # the rows kept, of table
        if odd is not None:
            self._python_rows(records(np.flatnonzero(odd)), idx[odd], good, bad)
            table, idx = table.filter(pa.array(~odd)), idx[~odd]
        if not self.lookup_fields:
            good.append((idx, table, {}))
            return
        recs = texts(rows) if texts is not None else None
        self._with_objects(table, idx, recs if recs is not None else records(rows), good, bad)

    def _with_objects(
        self, table: pa.Table, idx: np.ndarray, recs: Sequence[bytes | str], good: list[Any], bad: list[Any]
    ) -> None:
        """Arrow's table of ``recs`` (at ``idx``) completed with the fields arrow does not read
        (``lookup_fields``: json/object fields, whose Python values also go beside the table, and the
        fields on a key read as two types, ``_mixed_keys``).

        Each record is decoded once more, and only those fields are looked up, as ``read_record``
        does; a record whose lookup fails (a path through a non-object, a value of another type) or
        that the strict decoder refuses goes to the checked path, which words its reason.
        """
        values: dict[str, list[Any]] = {f.name: [] for f in self.lookup_fields}
        ok = np.ones(len(recs), dtype=bool)
        found = [(f.name, f.type, f.path, values[f.name].append) for f in self.lookup_fields]
        if len(found) == 1 and len(found[0][2]) == 1 and found[0][1] in ("json", "object"):
            # the usual shape: one json/object value at a top-level key
            _, kind, (key,), append = found[0]
            for j, rec in enumerate(recs):
                obj = _decoded_object(rec)
                value = obj.get(key) if obj is not None else None
                # check_value's rule for an object field, inlined (the checked path words a refusal)
                if obj is None or (kind == "object" and value is not None and type(value) is not dict):
                    ok[j] = False
                else:
                    append(value)
        else:
            for j, rec in enumerate(recs):
                obj = _decoded_object(rec)
                try:
                    if obj is None:
                        raise BadRecordError("not one JSON object")  # the checked path words the reason
                    got = [field_value(obj, name, kind, path) for name, kind, path, _ in found]
                except BadRecordError:
                    ok[j] = False
                    continue
                for (_, _, _, append), value in zip(found, got):
                    append(value)
        if not ok.all():
            failed = [recs[j] for j in np.flatnonzero(~ok).tolist()]
            self._python_rows([r.encode() if isinstance(r, str) else r for r in failed], idx[~ok], good, bad)
            table, idx = table.filter(pa.array(ok)), idx[ok]
        if not len(idx):
            return
        columns = {
            f.name: _typed_column(f.type, values[f.name]) if f.name in values else table.column(f.name)
            for f in self.fields
        }
        good.append((idx, pa.table(columns, schema=self.table_schema), values))

    def _split(self, recs: list[bytes], idx: Any, good: list[Any], bad: list[Any]) -> None:
        # isolate the bad records: an 8-way split needs few arrow calls (each has a fixed cost)
        step = -(-len(recs) // _SPLIT)
        for lo in range(0, len(recs), step):
            self._chunk(recs[lo : lo + step], idx[lo : lo + step], good, bad)

    # -- operator ------------------------------------------------------------------------------------
    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        return self.begin(batch)()

    def _begin_vectorized(
        self, batch: pd.DataFrame, column: pd.Series, pool: Executor | None
    ) -> Callable[[], Outputs] | None:
        """The common case, in arrow: every record bytes (or text), one JSON object each.

        Returns None when the records are not all bytes-like, so the record-by-record path takes them.
        """
        n = len(column)
        # lines of a file read block by block: the file's bytes, with their lines' lengths, as they are
        lines = column.array.file_bytes() if isinstance(column.array, LineArray) else None
        if lines is not None:
            lens = lines[2]
            if ((lens > self.max_record_bytes) | (lens == 0)).any():
                lines = None  # records for dead letter before arrow: the lines cut out, as below
        if lines is None:
            try:
                arr = pa.array(column, type=pa.binary())
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, UnicodeError):
                return None
            if isinstance(arr, pa.ChunkedArray) or arr.null_count:
                return None
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
            lens = np.diff(offsets).astype(np.int64)
        bad: list[tuple[int, str]] = []
        good: list[Any] = []
        idx = np.arange(n)
        rejected = (lens > self.max_record_bytes) | (lens == 0)
        if lines is None and rejected.any():
            bad.extend((i, self._size_reason(int(lens[i]))) for i in np.flatnonzero(rejected).tolist())
            idx = np.flatnonzero(~rejected)
            if not len(idx):
                return _done(self._assemble(batch, n, column, good, bad))
            arr, lens = arr.take(pa.array(idx)), lens[idx]
        # the read (a table, or None when some record is bad) runs in the pool when there is one
        if lines is not None:  # no byte below 0x20 in the lines (LineArray): no control byte to find
            greatest = 0x7F if lines[3] else 0xFF
            shaped = column.array.shaped  # known from the break search, while the bytes were in the cache
            joined = self._check(lines[0], lens, 0x20, greatest, starts=lines[1], shaped=shaped)
        else:
            joined = self._join_and_check(arr, lens)
        read: Future[tuple[pa.Table, bool] | None] | None = None
        result: pa.Table | np.ndarray | None = joined if not isinstance(joined, pa.Buffer) else None
        if isinstance(joined, pa.Buffer):
            args = (joined, len(lens), int(lens.max()))
            if pool is not None:
                # only arrow's reader in the worker: it goes straight on to the next batch's read, and
                # arrow's threads stay busy while this thread picks the columns (its serial part)
                read = pool.submit(self._read_json, *args)
            else:
                result = self._read(*args)

        def records(where: np.ndarray) -> list[bytes]:
            return [
                r.encode("utf-8") if isinstance(r, str) else bytes(r) for r in _raw_records(column, where)
            ]

        def complete() -> Outputs:
            nonlocal result
            if read is not None:
                result = self._columns(read.result())
            if isinstance(result, pa.Table):
                texts = column.array.texts if isinstance(column.array, LineArray) else None
                self._accept(
                    result,
                    idx,
                    lambda where: records(idx[where]),
                    good,
                    bad,
                    None if texts is None else lambda where: texts(idx[where]),
                )
            elif isinstance(result, np.ndarray):
                # a few records the line reader cannot take: judge them one by one, the rest in arrow
                recs = records(idx)
                multi = [not s or b"\n" in r or b"\r" in r for r, s in zip(recs, result.tolist())]
                one = [(i, r) for i, r, m in zip(idx.tolist(), recs, multi) if not m]
                many = [(i, r) for i, r, m in zip(idx.tolist(), recs, multi) if m]
                if one:
                    self._chunk([r for _, r in one], [i for i, _ in one], good, bad)
                if many:
                    self._python_rows([r for _, r in many], [i for i, _ in many], good, bad)
            else:  # some record is bad (or too few to be worth arrow): isolate it
                self._chunk(records(idx), idx, good, bad)
            return self._assemble(batch, n, column, good, bad)

        return complete if pool is not None else _done(complete())

    def _join_and_check(self, arr: pa.BinaryArray, lens: np.ndarray) -> pa.Buffer | np.ndarray | None:
        """The records of ``arr`` (of lengths ``lens``) as input for arrow's line reader.

        Returns that buffer; or, when some records are not single-line JSON objects, which are (a bool
        per record); or None when arrow should not read them (invalid UTF-8, or too few to be worth it).
        """
        # every record followed by a line break, in one arrow buffer: arrow's line-delimited input; for
        # lines of a file (a raw ReplaySource) the file's own bytes, else the lines joined again
        buf = file_slice(arr)
        known = line_extremes(arr) if buf is not None else None
        if buf is None:
            lines = pc.binary_join_element_wise(arr, _NEWLINE, _NOTHING)
            buf = lines.buffers()[2].slice(0, int(lens.sum()) + len(lens))
        # one reduction over the records' own bytes (no separators) rules out control bytes in most batches
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
        body = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        # (its least byte tells whether any is a control byte, its greatest whether all are ASCII); lines
        # of a file come with bounds measured as their block was split, which settle most batches
        if known is not None and known[0] >= 0x20 and known[1] < 0x80:
            least, greatest = known
        elif len(body):
            least, greatest = (int(v.as_py()) for v in pc.min_max(pa.array(body)).values())
        else:
            least, greatest = 0x20, 0
        return self._check(buf, lens, least, greatest)

    def _check(
        self,
        buf: pa.Buffer,
        lens: np.ndarray,
        least: int,
        greatest: int,
        starts: np.ndarray | None = None,
        shaped: bool = False,
    ) -> pa.Buffer | np.ndarray | None:
        """:meth:`_join_and_check` for the records of ``buf`` (each of ``lens`` bytes followed by one
        ``\\n``, the last may lack it), of bytes no lower than ``least`` and no greater than ``greatest``;
        ``starts``, where each record starts in ``buf``, when known; ``shaped``, that every record is
        known to start with ``{`` and end with ``}``."""
        view = np.frombuffer(buf, dtype=np.uint8)
        if starts is None:
            starts = np.cumsum(lens + 1) - 1 - lens
        # records that start with "{" and end with "}" and hold no control byte (a line break, a carriage
        # return) nor anything else arrow reads otherwise than the checked path (``_odd_records``)
        odd = _odd_records(view, lens, controls=least < 0x20, starts=starts)
        if not shaped or odd is not None:
            good = ~odd if odd is not None else np.ones(len(lens), dtype=bool)
            if not shaped:
                good &= (view[starts] == ord("{")) & (view[starts + lens - 1] == ord("}"))
            if not good.all():
                return good
        if len(lens) <= _SMALL_CHUNK or not (greatest < 0x80 or _is_utf8(buf)):
            return None
        return buf

    def begin(self, batch: pd.DataFrame, pool: Executor | None = None) -> Callable[[], Outputs]:
        """Start parsing ``batch`` and return the function that completes it and gives the outputs.

        The checks run now, in the caller's thread; with a ``pool``, arrow's read of the common case
        (every record bytes, one JSON object per line) runs there, without the GIL, while the caller
        goes on (the runtime delivers the previous batch downstream meanwhile).
        """
        n = len(batch)
        if self.value_column not in batch.columns:
            raise KeyError(
                f"step {self.step_id!r} (parse): the input has no column {self.value_column!r}; "
                f"it has {list(batch.columns)}; pass value_column=... naming the raw record column"
            )
        column = batch[self.value_column]
        if self.arrow_fields and n:
            started = self._begin_vectorized(batch, column, pool)
            if started is not None:
                return started
        raw = column.tolist()
        bad: list[tuple[int, str]] = []
        good: list[Any] = []
        recs = []
        fast_idx: list[int] = []
        slow_idx: list[int] = []
        slow_recs: list[bytes] = []
        for i, r in enumerate(raw):
            if not isinstance(r, bytes):
                try:  # the exported parsers' rule: text as UTF-8, a missing value a tombstone
                    r = record_bytes(r)
                except BadRecordError as e:
                    bad.append((i, str(e)))
                    continue
            if (
                not self.arrow_fields
                or len(r) > self.max_record_bytes
                or r[:1] != b"{"
                or r[-1:] != b"}"
                or b"\n" in r
                or b"\r" in r
            ):  # the checked path judges it (and words the reason for an empty or too large one)
                slow_idx.append(i)
                slow_recs.append(r)
            else:
                fast_idx.append(i)
                recs.append(r)
        if recs:
            self._chunk(recs, fast_idx, good, bad)
        if slow_recs:
            self._python_rows(slow_recs, slow_idx, good, bad)
        return _done(self._assemble(batch, n, column, good, bad))

    def _assemble(
        self, batch: pd.DataFrame, n: int, raw: pd.Series, good: list[Any], bad: list[tuple[int, str]]
    ) -> Outputs:
        passthrough = [c for c in batch.columns if c != self.value_column and c not in self.flat_schema.names]
        if good:
            where = np.concatenate([g[0] for g in good])
            table = pa.concat_tables([g[1] for g in good]) if len(good) > 1 else good[0][1]
            objects = {  # parsed Python values of json/object fields (python_only mode)
                f.name: [v for g in good for v in (g[2][f.name] if g[2] else [None] * len(g[0]))]
                for f in self.fields
                if self.python_only and f.type in ("json", "object")
            }
            keep: np.ndarray | None = None
            if len(where) > 1 and bool((where[1:] < where[:-1]).any()):
                keep = np.argsort(where, kind="stable")
            # required fields, checked on the arrow columns (so both paths agree) and before the
            # conversion to pandas, so rejected records cannot change the accepted ones' dtypes
            missing = np.zeros(len(where), dtype=bool)
            # (an object array per batch costs a fill of every row: made only when a field is required)
            reasons = np.full(len(where), None, dtype=object) if self.required else None
            for name in self.required:
                null = table.column(name).is_null().to_numpy(zero_copy_only=False)
                new = null & ~missing
                assert reasons is not None
                reasons[new] = f"missing required field {name!r}"
                missing |= null
            if reasons is not None and missing.any():
                ok = np.flatnonzero(~missing)
                keep = ok if keep is None else keep[~missing[keep]]
                bad.extend(zip(where[missing].tolist(), reasons[missing].tolist()))
            if keep is not None:
                table = table.take(pa.array(keep))
                where = where[keep]
                objects = {k: [v[i] for i in keep.tolist()] for k, v in objects.items()}
            # in this thread: arrow's pool may be busy reading the next batch (work ahead), and a batch's
            # few columns gain nothing from waiting for it
            frame = table.to_pandas(types_mapper=None, self_destruct=False, use_threads=False)
            for i, f in enumerate(self.fields):
                if f.type == "int64" and table.column(f.name).null_count:
                    # pandas' nullable Int64, as float64 would round integers beyond 2**53
                    frame[f.name] = nullable_ints(table.column(f.name))
                elif f.type == "category":  # categories sorted, as astype("category") gives them
                    # by position: a name would build the new frame's column hash table every batch
                    column = frame.iloc[:, i] if frame.columns[i] == f.name else frame[f.name]
                    cats = column.cat.categories
                    if not cats.is_monotonic_increasing:
                        frame[f.name] = frame[f.name].cat.reorder_categories(cats.sort_values())
                elif f.name in objects:  # as objects: [None, 3] would become floats [NaN, 3.0]
                    frame[f.name] = pd.Series(objects[f.name], dtype=object, index=frame.index)
        else:
            where = np.zeros(0, dtype=np.int64)
            frame = self.flat_schema.empty_table().to_pandas()
        if passthrough:
            extra = batch[passthrough].iloc[where].reset_index(drop=True)
            frame = pd.concat([frame, extra], axis=1)
        out: Outputs = {"out": frame}
        if bad:
            bad.sort()
            bidx = np.array([b[0] for b in bad])
            metadata = batch[passthrough].iloc[bidx] if passthrough else None
            why = [b[1] for b in bad]
            out["dead_letter"] = raw_dead_letter_frame(_raw_records(raw, bidx), why, self.step_id, metadata)
        return out
