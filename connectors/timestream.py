"""Amazon Timestream sink: rows become multi-measure records, written 100 per ``WriteRecords`` call.

Records Timestream rejects (a version conflict, a time outside the memory-store retention, ...) and rows
that cannot become a record at all (no time, no measure, an infinite ``DOUBLE`` measure, a text measure
that is empty or over 2 KB, dimensions over the 2 KB Timestream holds a series) are never dropped
silently: they go to the ``dead_letter`` sink with a ``reject_reason`` column, or, without one,
``flush()`` raises and lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from streamlab._time import NAT_NS, to_utc_ns
from streamlab._timestream_values import (
    DIMENSIONS_MAX,
    MEASURE_NAME_MAX_BYTES,
    TIMESTAMP_UNIT_NS,
    dimension_name_problem,
    dimension_text,
    measure_problem,
    series_problem,
    text_value,
    utf8_size,
)
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, SinkWriter, Upstream, default_clock, missing_columns_problem, publish_now

from ._params import check_endpoint_url, check_region, sink_or_none
from .aws import aws_client, bounded

__all__ = ["TimestreamSink"]

log = logging.getLogger("streamlab")
_BATCH = 100  # the WriteRecords limit
_TIMEOUT, _ATTEMPTS = 10.0, 3  # each request, and botocore's tries of it
REASON_COLUMN = "reject_reason"


_DECLARED_KINDS = {"int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}
#: the streamlab type a writer notes for a measure it typed from the values: later batches type it alike
_KIND_TYPES = {
    "BIGINT": "int64",
    "DOUBLE": "float64",
    "BOOLEAN": "bool",
    "TIMESTAMP": "timestamp",
    "VARCHAR": "string",
}


def _whole(values: pd.Series) -> np.ndarray:
    """Which values of a float column are whole numbers an ``int64`` holds (missing ones count as whole)."""
    f = values.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(f) & (f == np.floor(f)) & (np.abs(f) < 2.0**63)
    return np.asarray(whole | np.isnan(f), dtype=bool)


def _measure_type(values: pd.Series, declared: str | None = None) -> str:
    """Timestream's type of a measure column: its declared streamlab type's, else its values'. A declared
    type keeps every batch alike: a ``bool`` or ``int64`` result with a missing value is an object
    column, which would otherwise be text in that batch only (and Timestream refuses a measure whose
    type changes). Undeclared, a float column holding a missing value and otherwise only whole numbers
    is ``BIGINT``: pandas makes an integer column float64 once it meets a missing value (``[7, None]``),
    and ``[7]`` alone is ``BIGINT``; a float column without missing values, or with a fraction, is
    ``DOUBLE`` (a genuine ``7.5``).

    Examples
    --------
    >>> _measure_type(pd.Series([7])), _measure_type(pd.Series([7, None])), _measure_type(pd.Series([7.5, None]))
    ('BIGINT', 'BIGINT', 'DOUBLE')
    >>> _measure_type(pd.Series([7.0])), _measure_type(pd.Series([float("nan")])), _measure_type(pd.Series([7]), "float64")
    ('DOUBLE', 'DOUBLE', 'DOUBLE')
    """
    dtype = values.dtype
    if declared is not None:
        return _DECLARED_KINDS.get(declared, "VARCHAR")
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        missing = values.isna()
        return "BIGINT" if missing.any() and not missing.all() and _whole(values).all() else "DOUBLE"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "TIMESTAMP"
    return "VARCHAR"


def _as_text(values: pd.Series, kind: str, as_json: bool = False) -> list[str | None]:
    """Timestream's text form of each value; None where the value is missing. Text (``VARCHAR``) is
    ``text_value``'s, the rule the Lambda handler shares: a ``json`` column's values (``as_json``) as
    their JSON text, any value that is not text as streamlab's encoding has it."""
    missing = values.isna().to_numpy()
    if kind == "TIMESTAMP":
        # epoch milliseconds, floored: the record's TimeUnit (timestamp_text, the handler's rule)
        text = pd.Series((to_utc_ns(values) // TIMESTAMP_UNIT_NS).astype(str), index=values.index)
    elif kind == "BOOLEAN":
        flags = values.fillna(False).to_numpy(dtype=bool)
        text = pd.Series(np.where(flags, "true", "false"), index=values.index)
    elif kind == "DOUBLE":
        floats = values.to_numpy(dtype="float64", na_value=np.nan)
        text = pd.Series(floats.astype(str), index=values.index)  # shortest round-trip form
    elif kind == "BIGINT" and values.dtype.kind == "f":  # an int64 with missing values (NaN)
        # a fraction is not cut to an integer: left out here, build_records says why the row is not written
        whole = _whole(values)
        text = pd.Series(
            [None if m or not w else str(int(v)) for v, m, w in zip(values, missing, whole)],
            index=values.index,
        )
    elif kind == "VARCHAR" and (as_json or values.dtype == object):
        text = pd.Series(
            [None if m else text_value(v, as_json) for v, m in zip(values.tolist(), missing)],
            index=values.index,
            dtype=object,
        )
    else:
        text = values.astype("string")
    out = text.astype(object).to_numpy(copy=True)
    out[missing] = None
    return list(out)


class TimestreamSink(Sink):
    """Write rows to a Timestream table as ``MULTI`` measure records.

    Parameters
    ----------
    database, table
        Destination.
    dimensions
        Columns written as dimensions, as text: every sink's key text
        (:func:`streamlab.serde.key_texts`), so that a value has one text, and its series one identity,
        in every batch: a float that is a whole number as that integer (``7.0`` as ``"7"``, the text of
        the integer ``7``: pandas makes an integer column float64 once it meets a missing value), a
        boolean as ``true`` / ``false``, a time as ISO-8601 UTC text to the microsecond, an infinity as
        ``inf`` / ``-inf``, a ``json`` column's values as their JSON text (see
        ``streamlab._timestream_values.dimension_text``); a missing or empty value leaves that dimension
        out of the record (Timestream has no empty dimension value). At most 128 (Timestream's dimensions
        per table), each name at most 60 bytes.
    measures
        Columns written as measures of one multi-measure record; their types come from the columns'
        types declared upstream in a pipeline (a parse schema, a window's results), else from the dtypes
        (int → BIGINT, float → DOUBLE, bool → BOOLEAN, datetime → TIMESTAMP, else VARCHAR), so that a
        measure has one type whatever its batch holds (Timestream refuses a measure whose type changes):
        a float column with a missing value and otherwise whole numbers is BIGINT (pandas makes ``[7,
        None]`` float64; ``[7]`` is int64), and a measure typed from its values keeps that type in the
        writer's later batches (a BIGINT measure's row holding a fraction then goes to ``dead_letter``;
        declare the column ``float64`` to write fractions). A genuine ``7.5`` is DOUBLE. A time is a
        ``TIMESTAMP`` in epoch milliseconds, as the record's time (``TimeUnit`` ``MILLISECONDS``): what is
        below the millisecond is lost (floored), and a time before 1970 goes to ``dead_letter`` (the
        generated Lambda handler writes the same; see ``streamlab._timestream_values``). A ``json``
        value is written as its JSON text (``1`` and ``"1"`` stay apart; ``""`` is two bytes), any other
        value that is not text as streamlab's JSON encoding has it. A missing
        value (None, NaN, NaT) leaves that measure out of the record. Timestream cannot store NaN or
        infinities in a ``DOUBLE`` ("you cannot write those values to Timestream", its data-types page),
        so a row with an infinite float measure is not written: it goes to ``dead_letter`` with the
        reason, as does a row with a text measure that is empty or over 2,048 bytes (Timestream's
        limits for a value; botocore refuses an empty one before sending, failing the whole request).
    time
        Column with the record time (any form ``to_utc_ns`` reads); written in milliseconds.
    measure_name
        ``MeasureName`` of the records: at most 256 bytes, as each measure column's name (Timestream's
        measure name length).
    dead_letter
        Sink receiving rejected rows with a ``reject_reason`` column; ``None``: ``flush()`` raises.
    endpoint_url
        Endpoint of a local stand-in (``LocalAWS().endpoint_url``); ``None`` for AWS.
    region
        AWS region.

    Examples
    --------
    >>> sink = TimestreamSink("analytics", "events", dimensions=["event_type"], measures=["value"], time="timestamp")
    >>> sink.spec()["measures"]
    ['value']
    """

    def __init__(
        self,
        database: str,
        table: str,
        *,
        dimensions: Sequence[str],
        measures: Sequence[str],
        time: str = "timestamp",
        measure_name: str = "metrics",
        dead_letter: Sink | None = None,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        where = type(self).__name__
        target = f"table {database}.{table}"
        for label, name in (("database", database), ("table", table)):
            if not isinstance(name, str) or not name:
                raise ParameterError(
                    where,
                    label,
                    f"expected a non-empty {label} name, got {name!r}",
                    f"write the Timestream {label}'s name, e.g. TimestreamSink('analytics', 'events', ...) "
                    "in Python, database: analytics and table: events in a spec",
                )
        for label, cols in (("dimensions", dimensions), ("measures", measures)):
            if isinstance(cols, str) or not all(isinstance(c, str) and c for c in cols):
                raise ParameterError(
                    where,
                    label,
                    f"expected a list of column names for {target}, got {cols!r}",
                    f"write a list, e.g. {label}: [event_type] ({label}=['event_type'] in Python)",
                )
        if not measures:
            raise ParameterError(
                where,
                "measures",
                f"no measure column for {target}; a record without measures is invalid",
                "name at least one, e.g. measures: [value] (measures=['value'] in Python)",
            )
        for name in dimensions:
            problem = dimension_name_problem(name)
            if problem:
                raise ParameterError(
                    where,
                    "dimensions",
                    f"dimension {problem}, so every write to {target} would fail",
                    "rename the column in a step before the sink (with_columns), then name the new one",
                )
        for label, name in (("time", time), ("measure_name", measure_name)):
            if not isinstance(name, str) or not name:
                what = (
                    "the event-time column's name" if label == "time" else "the multi-measure records' name"
                )
                example = "timestamp" if label == "time" else "metrics"
                raise ParameterError(
                    where,
                    label,
                    f"expected {what} (a non-empty text) for {target}, got {name!r}",
                    f"write e.g. {label}: {example} ({label}='{example}' in Python), or leave it out for "
                    f"'{example}'",
                )
        if len(set(dimensions)) > DIMENSIONS_MAX:
            raise ParameterError(
                where,
                "dimensions",
                f"{len(set(dimensions))} dimensions for {target}; a Timestream table takes at most "
                f"{DIMENSIONS_MAX}, so every write would fail",
                f"name at most {DIMENSIONS_MAX} dimension columns; write the others as measures",
            )
        named = [("measure_name", measure_name)] + [("measures", m) for m in measures]
        for label, name in named:
            if utf8_size(name) > MEASURE_NAME_MAX_BYTES:
                what = "measure_name" if label == "measure_name" else f"measure column {name[:40]!r}..."
                raise ParameterError(
                    where,
                    label,
                    f"{what} is {utf8_size(name)} bytes long for {target}; Timestream takes a measure name "
                    f"of at most {MEASURE_NAME_MAX_BYTES} bytes, so every write would fail",
                    f"use a name of at most {MEASURE_NAME_MAX_BYTES} bytes"
                    + ("" if label == "measure_name" else " (rename the column in a step before the sink)"),
                )
        overlap = set(dimensions) & set(measures) | ({time} & (set(dimensions) | set(measures)))
        if overlap:
            raise ParameterError(
                where,
                "measures" if set(dimensions) & set(measures) else "time",
                f"columns {sorted(overlap)} are used twice among dimensions/measures/time for {target}",
                "name each column in one of dimensions, measures and time only",
            )
        self.database, self.table = database, table
        self.dimensions, self.measures = tuple(dimensions), tuple(measures)
        self.time, self.measure_name = time, measure_name
        self.dead_letter = sink_or_none(where, "dead_letter", dead_letter, about=target)
        self.endpoint_url = check_endpoint_url(where, endpoint_url)
        self.region = check_region(where, region)

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The ``dimensions``, ``measures`` and ``time`` columns the stream lacks (the first write failed
        on them), as ``(problem, fix)``, else None.

        Examples
        --------
        >>> sink = TimestreamSink("d", "t", dimensions=["host"], measures=["cpu"])
        >>> sink.columns_problem(["host", "cpu_pct", "timestamp"], Upstream())[1]
        "did you mean ['cpu_pct']? name columns of the stream in dimensions, measures and time"
        """
        return missing_columns_problem(
            repr(self),
            [*self.dimensions, *self.measures, self.time],
            columns,
            "name columns of the stream in dimensions, measures and time",
        )

    def open(self, clock: Clock | None = None) -> _TimestreamWriter:
        """Create the client (and open the dead-letter sink)."""
        return _TimestreamWriter(self, default_clock(clock))

    def open_for(self, upstream: Upstream, clock: Clock | None = None) -> _TimestreamWriter:
        """Open for a pipeline's stream: its declared column types type the measures in every batch."""
        return _TimestreamWriter(self, default_clock(clock), dict(upstream.declared))

    def spec(self) -> dict[str, Any]:
        """YAML-ready description.

        Examples
        --------
        >>> TimestreamSink("d", "t", dimensions=[], measures=["x"]).spec()["kind"]
        'timestream'
        """
        return {
            "kind": "timestream",
            "database": self.database,
            "table": self.table,
            "dimensions": list(self.dimensions),
            "measures": list(self.measures),
            "time": self.time,
            "measure_name": self.measure_name,
            "dead_letter": None if self.dead_letter is None else self.dead_letter.spec(),
            "region": self.region,
            "endpoint_url": self.endpoint_url,
        }

    def __repr__(self) -> str:
        return f"TimestreamSink({self.database!r}, {self.table!r})"


def build_records(
    sink: TimestreamSink, batch: pd.DataFrame, types: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """Turn rows into WriteRecords records.

    Parameters
    ----------
    sink
        The sink configuration.
    batch
        Rows to convert.
    types
        streamlab types of columns declared upstream (``Upstream.declared``): a measure's type, and
        whether a column holds ``json`` values (written as JSON text); the values decide the others
        (:func:`measure_types`).

    Returns
    -------
    tuple
        ``(records, row_positions, problems)``: the records with the batch position of each, and one
        reason per row position that could not become a record (``""`` for rows that did).

    Examples
    --------
    >>> sink = TimestreamSink("d", "t", dimensions=["host"], measures=["cpu"], time="ts")
    >>> rows = pd.DataFrame({"host": ["a"], "cpu": [0.5], "ts": ["2026-01-01T00:00:00Z"]})
    >>> records, positions, problems = build_records(sink, rows)
    >>> records[0]["MeasureValues"], records[0]["Time"]
    ([{'Name': 'cpu', 'Value': '0.5', 'Type': 'DOUBLE'}], '1767225600000')
    >>> build_records(sink, rows.assign(cpu=[float("inf")]))[2]
    ["measure(s) ['cpu'] are infinite (inf), which a Timestream DOUBLE cannot hold"]
    """
    missing = [c for c in (*sink.dimensions, *sink.measures, sink.time) if c not in batch.columns]
    if missing:
        raise KeyError(f"{sink!r}: the batch has no column(s) {missing}; it has {list(batch.columns)}")
    times = to_utc_ns(batch[sink.time])
    time_text = (times // TIMESTAMP_UNIT_NS).astype(str).tolist()
    types = types or {}
    dims = {
        c: [dimension_text(v, types.get(c) == "json") for v in batch[c].tolist()] for c in sink.dimensions
    }
    kinds = measure_types(sink, batch, types)
    values = {c: _as_text(batch[c], kinds[c], types.get(c) == "json") for c in sink.measures}
    # a BIGINT measure (declared int64, or integers in an earlier batch) meeting a fraction: Timestream
    # refuses a measure whose type changes, and cutting 7.5 to 7 would write a wrong value
    fractions = {
        c: ~_whole(batch[c]) for c in sink.measures if kinds[c] == "BIGINT" and batch[c].dtype.kind == "f"
    }
    records: list[dict[str, Any]] = []
    positions: list[int] = []
    problems = [""] * len(batch)
    for i in range(len(batch)):
        if times[i] == NAT_NS:
            problems[i] = f"missing or unreadable time in column {sink.time!r}"
            continue
        cut = [c for c, f in fractions.items() if f[i]]
        if cut:
            problems[i] = (
                f"measure(s) {cut} are BIGINT (declared int64, or integers in earlier rows) and "
                f"{', '.join(str(batch[c].iloc[i]) for c in cut)} is not a whole number: Timestream refuses "
                "a measure whose type changes; declare the column float64 (or cast it) to write fractions"
            )
            continue
        # the rule the Lambda handler carries too: an infinite DOUBLE, an empty or oversized VARCHAR
        problems[i] = measure_problem([(c, kinds[c], values[c][i]) for c in sink.measures])
        if problems[i]:
            continue
        measures = [
            {"Name": c, "Value": values[c][i], "Type": kinds[c]}
            for c in sink.measures
            if values[c][i] is not None
        ]
        if not measures:
            problems[i] = f"all measures {list(sink.measures)} are missing"
            continue
        named = [(c, text) for c in sink.dimensions if (text := dims[c][i])]  # an empty one is left out
        problems[i] = series_problem(named)
        if problems[i]:
            continue
        dimensions = [{"Name": c, "Value": text, "DimensionValueType": "VARCHAR"} for c, text in named]
        records.append(
            {
                "Dimensions": dimensions,
                "MeasureName": sink.measure_name,
                "MeasureValueType": "MULTI",
                "MeasureValues": measures,
                "Time": time_text[i],
                "TimeUnit": "MILLISECONDS",
            }
        )
        positions.append(i)
    return records, positions, problems


def measure_types(
    sink: TimestreamSink, batch: pd.DataFrame, types: dict[str, str] | None = None
) -> dict[str, str]:
    """Timestream's type of each of ``sink``'s measures in ``batch``: the type declared upstream
    (``types``, streamlab types), else the one its values show (see ``build_records``).

    Examples
    --------
    >>> sink = TimestreamSink("d", "t", dimensions=[], measures=["n", "x"], time="ts")
    >>> measure_types(sink, pd.DataFrame({"n": [7, None], "x": [7.5, None]}))
    {'n': 'BIGINT', 'x': 'DOUBLE'}
    """
    types = types or {}
    return {c: _measure_type(batch[c], types.get(c)) for c in sink.measures}


class _TimestreamWriter(SinkWriter):
    """Open writer of a :class:`TimestreamSink`."""

    def __init__(self, sink: TimestreamSink, clock: Clock, types: dict[str, str] | None = None) -> None:
        self._sink = sink
        self._types = types or {}
        self._client = aws_client(
            "timestream-write",
            region=sink.region,
            endpoint_url=sink.endpoint_url,
            max_attempts=_ATTEMPTS,
            timeout=_TIMEOUT,
        )
        self._dead_letter = sink.dead_letter.open(clock) if sink.dead_letter is not None else None
        self._buffer: list[pd.DataFrame] = []
        self._rejected: list[pd.DataFrame] = []
        self._failed = False  # a flush raised: close() neither waits on the service again nor re-raises
        self.written = 0

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Buffer rows; whole chunks of 100 are written at once, the rest on :meth:`flush`."""
        if not batch.empty:
            self._buffer.append(batch)
            if sum(len(b) for b in self._buffer) >= _BATCH:
                self._write(final=False)

    def _write(self, final: bool) -> None:
        rows = pd.concat(self._buffer, ignore_index=True) if len(self._buffer) > 1 else self._buffer[0]
        rows = rows.reset_index(drop=True)
        records, positions, problems = build_records(self._sink, rows, self._types)
        # a measure typed from its values keeps that type in the run's later batches, as Timestream keeps
        # it: a BIGINT measure's batch that pandas made float64 by a missing value stays BIGINT
        for c, kind in measure_types(self._sink, rows, self._types).items():
            if c not in self._types and rows[c].notna().any():
                self._types[c] = _KIND_TYPES[kind]
        n_send = len(records) if final else len(records) - len(records) % _BATCH
        keep_from = positions[n_send] if n_send < len(records) else len(rows)
        reasons = pd.Series(problems, index=rows.index)
        for start in range(0, n_send, _BATCH):
            chunk = records[start : start + _BATCH]
            for index, reason in self._send(chunk):
                reasons.iloc[positions[start + index]] = reason
        done = rows.iloc[:keep_from]
        bad = reasons.iloc[:keep_from] != ""
        if bad.any():
            self._rejected.append(
                done[bad.to_numpy()].assign(**{REASON_COLUMN: reasons.iloc[:keep_from][bad]})
            )
        self._buffer = [rows.iloc[keep_from:]] if keep_from < len(rows) else []

    def _send(self, chunk: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Write one chunk; return (index in chunk, reason) of each record Timestream rejected."""
        sink = self._sink
        try:
            with bounded(
                repr(sink),
                "Timestream",
                "write_records",
                timeout=_TIMEOUT,
                attempts=_ATTEMPTS,
                target=f"table {sink.table!r} of database {sink.database!r}",
                region=sink.region,
                endpoint_url=sink.endpoint_url,
            ):
                self._client.write_records(DatabaseName=sink.database, TableName=sink.table, Records=chunk)
        except self._client.exceptions.RejectedRecordsException as exc:
            # The other records of the request were written; only these were not.
            rejected = exc.response.get("RejectedRecords", [])
            self.written += len(chunk) - len(rejected)
            return [(int(r["RecordIndex"]), str(r.get("Reason", "rejected"))) for r in rejected]
        self.written += len(chunk)
        return []

    def flush(self) -> None:
        """Write everything buffered; hand rejected rows to the dead-letter sink, or raise without one."""
        try:
            self._flush()
        except Exception:
            self._failed = True
            raise

    def _flush(self) -> None:
        if self._buffer:
            self._write(final=True)
        if not self._rejected:
            return
        rejected = pd.concat(self._rejected, ignore_index=True)
        self._rejected = []
        if self._dead_letter is not None:
            publish_now(self._dead_letter, rejected)
            return
        reasons = rejected[REASON_COLUMN].value_counts().head(5).to_dict()
        raise RuntimeError(
            f"{self._sink!r}: {len(rejected)} rows were rejected ({reasons}); pass dead_letter= to keep "
            "them as data instead of failing"
        )

    def close(self) -> None:
        """Flush, close the dead-letter sink and release the HTTP connections.

        After a flush failed, the rows still buffered are dropped, not sent again (the run failed on
        that flush and did not commit past them: a restart writes them); its error is not raised twice.
        """
        try:
            if self._failed:
                left = sum(len(b) for b in self._buffer)
                if left:
                    log.warning(
                        "%r: %d row(s) not written (a flush failed); a restart writes them", self._sink, left
                    )
                self._buffer = []
            else:
                self.flush()
        finally:
            if self._dead_letter is not None:
                self._dead_letter.close()
            self._client.close()
