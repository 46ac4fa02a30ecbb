"""Built-in sinks: an in-memory list, DuckDB with idempotent upserts, Parquet and JSON lines files.

Exactly once across crashes (with a checkpoint directory): DuckDB tables with a key upsert; DuckDB tables
without one stage each commit and publish it, with a commit ledger, in one transaction after the
checkpoint; Parquet writes one part file per commit by rename and JSON lines appends, and both drop on
resume what was written after the checkpoint resumed. :class:`ListSink` lives in memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamlab._compat import PANDAS_3, arrow_table, text_column
from streamlab._duckdb_types import JSON_KINDS, widened_type
from streamlab._files import sync_directory, write_replacing
from streamlab._frames import concat_batches
from streamlab._gzip import GzipMemberWriter, gzip_end, is_gzip_name
from streamlab._serde_values import dump_json, is_utf8_text
from streamlab.clock import Clock
from streamlab.errors import ParameterError, PipelineConfigError, check_path
from streamlab.io import Sink, SinkWriter, Upstream, file_destination, missing_columns_problem
from streamlab.serde import json_column, rows_to_json

__all__ = ["DuckDBSink", "DuckDBTable", "JsonLinesSink", "ListSink", "ParquetSink"]

log = logging.getLogger("streamlab")


def _check_destination_kind(owner: str, path: str, want: str, example: str) -> None:
    """Refuse ``path`` when it, or a folder on the way to it, exists as the wrong kind: a directory where
    ``owner`` writes a file (``want="file"``), a file where it writes a directory of parts
    (``want="directory"``), a file as one of its folders. Opening the sink failed on these, after the run
    had begun; a path that does not exist yet is made when the sink opens.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _check_destination_kind("JsonLinesSink", d, "file", "out.jsonl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: JsonLinesSink(path=...): '...' is a directory, where JsonLinesSink writes one file. Fix: name a file, e.g. path: .../out.jsonl
    """
    target = Path(path)
    if target.exists():
        if want == "file" and target.is_dir():
            raise ParameterError(
                owner,
                "path",
                f"{path!r} is a directory, where {owner} writes one file",
                f"name a file, e.g. path: {target / example}",
            )
        if want == "directory" and not target.is_dir():
            raise ParameterError(
                owner,
                "path",
                f"{path!r} is a file, where {owner} writes its part files into a directory",
                f"name a directory that does not exist yet or holds {owner}'s parts, e.g. path: "
                f"{target.with_suffix('')}_parts",
            )
        return
    for folder in target.parents:
        if folder.exists():
            if not folder.is_dir():
                instead = Path(f"{folder.with_suffix('')}_out") / target.relative_to(folder)
                raise ParameterError(
                    owner,
                    "path",
                    f"{str(folder)!r}, a folder of path {path!r}, is a file: the {want} cannot be made in it",
                    f"choose a path whose folders are directories, e.g. path: {instead}",
                )
            return


class _ListWriter(SinkWriter):
    def __init__(self, sink: ListSink) -> None:
        self.sink = sink

    def write_batch(self, batch: pd.DataFrame) -> None:
        with self.sink._lock:
            self.sink.batches.append(batch)


class ListSink(Sink):
    """Collects every batch in memory; read them with :meth:`frame` or :meth:`rows`.

    Examples
    --------
    >>> sink = ListSink()
    >>> w = sink.open()
    >>> w.write_batch(pd.DataFrame({"x": [1, 2]}))
    >>> sink.rows()
    [{'x': 1}, {'x': 2}]

    A run that writes no rows leaves the stream's columns (when known at construction):

    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> empty = ListSink()
    >>> _ = p.stream.filter('x > 5').to(empty)
    >>> _ = p.run()
    >>> list(empty.frame().columns), len(empty.frame())
    (['x'], 0)
    """

    def __init__(self) -> None:
        self.batches: list[pd.DataFrame] = []
        self._lock = threading.Lock()
        self._opened = False
        self._columns: tuple[str, ...] | None = None

    def open(self, clock: Clock | None = None) -> SinkWriter:
        self._opened = True
        return _ListWriter(self)

    def open_for(self, upstream: Upstream, clock: Clock | None = None) -> SinkWriter:
        """A writer for ``upstream``: the sink keeps its columns, for :meth:`frame` when no row came."""
        self._columns = upstream.columns
        return self.open(clock)

    def frame(self) -> pd.DataFrame:
        """All rows written so far, as one DataFrame; with no row, an empty one with the stream's
        columns (when known), and a warning before any run opened it."""
        with self._lock:
            if not self.batches:
                if not self._opened:
                    warnings.warn(
                        "this ListSink has not been written yet: its pipeline has not run. Call p.run() "
                        "(or p.start() in a notebook) before reading it",
                        UserWarning,
                        stacklevel=2,
                    )
                return pd.DataFrame(columns=list(self._columns or ()))
            return concat_batches(self.batches)

    def rows(self) -> list[dict[str, Any]]:
        """All rows written so far, as dicts."""
        return self.frame().to_dict("records")  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self.batches.clear()

    def spec(self) -> dict[str, Any]:
        return {"kind": "list"}

    def __repr__(self) -> str:
        return f"ListSink({sum(len(b) for b in self.batches)} rows)"

    def __reduce__(self) -> Any:  # a ListSink in a pickled pipeline starts empty
        return (ListSink, ())


#: DuckDB errors that come from the rows of an insert (their values, types or shapes), not from the
#: database (I/O, memory, a closed connection), which are raised
_ROW_ERRORS = (
    "BinderException",
    "ConstraintException",
    "ConversionException",
    "InvalidInputException",
    "NotImplementedException",
    "OutOfRangeException",
    "TypeMismatchException",
)


def _lone_surrogate_rows(batch: pd.DataFrame) -> np.ndarray:
    """Which rows of ``batch`` hold, in a column of Python objects, text with a lone surrogate
    (``"\\ud800"``, valid escaped JSON without a UTF-8 form). A string column holds none."""
    lone = np.zeros(len(batch), dtype=bool)
    for i in range(len(batch.columns)):
        column = batch.iloc[:, i]
        if column.dtype == object:
            lone |= np.fromiter((_lone_surrogate(v) for v in column.tolist()), dtype=bool, count=len(batch))
    return lone


def _lone_surrogates_within(batch: pd.DataFrame, text: dict[Any, pd.Series]) -> np.ndarray:
    """Which rows of ``batch`` hold a lone surrogate inside a value written as JSON ``text`` (a column
    each): in an object's key or a nested value, which the JSON text escapes (``"\\ud800"``) and DuckDB's
    JSON type refuses. Only rows whose text holds such an escape are looked at value by value."""
    lone = np.zeros(len(batch), dtype=bool)
    for c, t in text.items():
        escaped = np.asarray(t.str.contains("\\ud", regex=False).fillna(False), dtype=bool)
        if escaped.any():
            values = batch[c].tolist()
            for i in np.flatnonzero(escaped).tolist():
                lone[i] |= _holds_lone_surrogate(values[i])
    return lone


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether ``value`` (text, or a JSON object or array, nested to any depth) holds text with a lone
    surrogate, in a key or a value.

    Examples
    --------
    >>> _holds_lone_surrogate({"a": [{chr(0xDC00): 1}]}), _holds_lone_surrogate({"a": [chr(0x1F600)]})
    (True, False)
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _lone_surrogate(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def _lone_surrogate(value: Any) -> bool:
    return isinstance(value, str) and not value.isascii() and not is_utf8_text(value)


def _row_error(e: BaseException) -> bool:
    """Whether an insert failed for its rows (a DuckDB error of their values, or Python's while DuckDB
    read them from pandas: an int beyond 64 bits, an object it cannot convert)."""
    if isinstance(e, (OverflowError, TypeError, ValueError)):
        return True
    return type(e).__module__.startswith(("duckdb", "_duckdb")) and type(e).__name__ in _ROW_ERRORS


#: DuckDB column types of parse's field types
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "category": "VARCHAR",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}


#: DuckDB's integer types, as it describes pandas' integer columns (numpy's or nullable, of each width)
_DUCKDB_INTS = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
)


def _column_type(described: str, declared: str | None = None, empty: bool = False) -> str:
    """The type a new table's column gets from DuckDB's description of a batch: for a column of missing
    values only (``empty``, or described as ``"NULL"``, quoted, which takes no value later) the type of
    its declared parse type (pandas makes an all-missing column float64, described DOUBLE), else
    VARCHAR for ``"NULL"``; VARCHAR for a category column (an ENUM of this batch's values alone); else
    the type described. A column declared ``int64`` (a parse field, or any integer column of a source's
    frame) that the batch holds as an integer dtype keeps that dtype's type, missing values or not: a
    ``UInt64`` key column is ``UBIGINT``, which takes keys beyond 2**63 - 1 where ``BIGINT`` does not.

    Examples
    --------
    >>> _column_type('"NULL"', "bool"), _column_type('"NULL"'), _column_type("BIGINT", "int64")
    ('BOOLEAN', 'VARCHAR', 'BIGINT')
    >>> _column_type("DOUBLE", "string", empty=True), _column_type("DOUBLE", "string")
    ('VARCHAR', 'DOUBLE')
    >>> _column_type("UBIGINT", "int64", empty=True), _column_type("DOUBLE", "int64", empty=True)
    ('UBIGINT', 'BIGINT')
    """
    if empty and declared == "int64" and described in _DUCKDB_INTS:
        return described
    if empty and declared in _DUCKDB_TYPES:
        return _DUCKDB_TYPES[declared]
    if described.strip('"') == "NULL":
        return _DUCKDB_TYPES.get(declared or "", "VARCHAR")
    return "VARCHAR" if described.startswith("ENUM") else described


def _unnamed(columns: pd.Index) -> str:
    """The name a column without one (``""``) is written under: ``_``, or more underscores if taken.

    Examples
    --------
    >>> _unnamed(pd.Index(["", "a"])), _unnamed(pd.Index(["", "_", "__"]))
    ('_', '___')
    """
    taken = {str(c).lower() for c in columns}  # DuckDB's names ignore case
    name = "_"
    while name in taken:
        name += "_"
    return name


def _json_valued(col: pd.Series) -> bool:
    """Whether ``col`` holds Python objects DuckDB cannot type by sampling: JSON objects or arrays
    (dicts, lists: DuckDB would make a STRUCT of the first one's keys, then refuse or cut the others),
    values of several types, or numbers of a field whose other batches may hold anything; or complex
    numbers, which DuckDB has no type for."""
    if col.dtype.kind == "c":  # complex numbers: no DuckDB type takes them (DESCRIBE itself fails)
        return True
    return col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in JSON_KINDS


def _json_text(col: pd.Series) -> pd.Series:
    """Each value of ``col`` as JSON text (:mod:`streamlab.serde`'s encoding), missing where it is: a
    text column even when every value is missing (Arrow would type it null, and parts would disagree)."""
    text = pd.Series(json_column(col), index=col.index, dtype=object)
    return text_column(text.where(col.notna(), None))


def _json_of(value: Any) -> str:
    """One value as streamlab's JSON text (a DuckDB function of one argument: ``dump_json`` has two)."""
    return dump_json(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _schema_and_name(table: str) -> tuple[str, str]:
    """The schema (``main`` when not given) and the name of a sink's ``table`` (``"schema.table"``)."""
    schema, dot, name = table.partition(".")
    return (schema, name) if dot else ("main", table)


def _table_ref(table: str) -> str:
    """A sink's ``table`` (``"counts"`` or ``"schema.counts"``) quoted for SQL, schema and name apart.

    Examples
    --------
    >>> _table_ref("counts"), _table_ref('an"alytics.counts')
    ('"counts"', '"an""alytics"."counts"')
    """
    schema, dot, name = table.partition(".")
    return f"{_quote(schema)}.{_quote(name)}" if dot else _quote(table)


_LEDGER = "__streamlab_commits"


class _DuckDBWriter(SinkWriter):
    """Upserts go straight to the table (idempotent); appends are staged until the checkpoint is saved.

    Staged rows live in ``__streamlab_staged_<table>``; ``flush`` records them in the ledger as commit
    *n*, and ``commit`` (after the checkpoint) moves them into the table and marks *n* published, in one
    transaction. On resume, staged rows of the checkpoint's commit are published and any others dropped.
    """

    def __init__(self, sink: DuckDBSink, upstream: Upstream | None = None) -> None:
        upstream = upstream or Upstream()
        self.sink = sink
        self.upstream = upstream  # what the stream written is: window results (their key), repeated ids
        self.declared = dict(upstream.declared)  # parse types of the stream's columns
        self.con = sink._acquire()
        self._closed = False
        self.ready = False
        self._unnamed: str | None = None  # the column a column without a name is written to
        schema, name = _schema_and_name(sink.table)
        # beside the table, in its schema
        self.staged = ("" if "." not in sink.table else f"{schema}.") + f"__streamlab_staged_{name}"
        self.prepared = 0  # the commit number of the rows last recorded as staged
        self.appends = False  # rows were staged since the last commit
        self._rejects: _DuckDBWriter | None = None  # rows without their key, appended to <table>_rejected
        self.declared_json = set(upstream.json_columns)  # declared json or object upstream
        self.json_columns: set[str] = set()  # columns written as JSON text: declared, or JSON in the table
        self.table_types: dict[str, str] = {}  # the table's columns and their types, once it exists
        # a window's key columns in a results table's key: a missing key is the key None, a valid row
        self.nullable_key = tuple(upstream.window_keys or ()) if sink.key == "auto" else ()

    @property
    def rejects(self) -> _DuckDBWriter:
        """The writer of the rows the table cannot take: appended, exactly once, to ``<table>_rejected``
        in the same database (:meth:`DuckDBSink.rejected_sink`)."""
        if self._rejects is None:
            self._rejects = _DuckDBWriter(self.sink.rejected_sink())
        return self._rejects

    def _ledger(self) -> tuple[int, int] | None:
        """``(staged, published)`` commit numbers recorded for this table, if any."""
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {_LEDGER} "
            "(tbl VARCHAR PRIMARY KEY, staged BIGINT NOT NULL, published BIGINT NOT NULL)"
        )
        row = self.con.execute(
            f"SELECT staged, published FROM {_LEDGER} WHERE tbl = ?", [self.sink.table]
        ).fetchall()
        return (int(row[0][0]), int(row[0][1])) if row else None

    def _has_staging(self) -> bool:
        found = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            list(_schema_and_name(self.staged)),
        ).fetchall()
        return bool(found[0][0])

    def restore(self, state: Any) -> None:
        if isinstance(state, dict):  # rows were rejected before the checkpoint: both tables' commits
            self.rejects.restore(state["rejected"])
            state = state["prepared"]
        elif self.sink.key is not None:  # none then: rejected rows staged after it are dropped (read again)
            self.rejects.restore(None)
        with self.sink._lock:
            if not self._has_staging():
                return
            staged, published = self._ledger() or (0, 0)
            want = int(state) if state is not None else None
            if want is not None and published < staged <= want:
                self.prepared = staged
                self._publish()  # the checkpoint landed, the publish did not: finish it
            self.con.execute(
                f"DELETE FROM {_table_ref(self.staged)}"
            )  # later commits: replayed from the checkpoint
            self.prepared = want if want is not None else published
            self.con.execute(f"UPDATE {_LEDGER} SET staged = published WHERE tbl = ?", [self.sink.table])

    def _column_types(self, batch: pd.DataFrame) -> list[tuple[str, str]]:
        """``(column, DuckDB type)`` of each column of ``batch``, as a new table gets them."""
        # DuckDB infers object columns by sampling values, so describe the real batch, not an empty one;
        # but not the columns written as JSON text (their type is JSON whatever DuckDB would say): DuckDB
        # cannot even describe complex numbers, and fails on a dict key without a UTF-8 form
        json = self.declared_json | {c for c in batch.columns if _json_valued(batch[c])}
        shown = {c: pd.Series(None, index=batch.index, dtype=object) for c in batch.columns if c in json}
        self.con.register("__streamlab_batch", batch.assign(**shown) if shown else batch)
        try:
            cols = self.con.execute("DESCRIBE SELECT * FROM __streamlab_batch").fetchall()
        finally:
            self.con.unregister("__streamlab_batch")
        # an empty column has no type yet, and a category column would become an ENUM of this batch's values
        empty = {c for c in batch.columns if batch[c].isna().all()}
        return [
            (
                name,
                "JSON" if name in json else _column_type(described, self.declared.get(name), name in empty),
            )
            for name, described, *_ in cols
        ]

    def _create(self, batch: pd.DataFrame) -> None:
        self._create_table(self._column_types(batch), list(batch.columns))

    def _create_table(self, types: list[tuple[str, str]], columns: list[str]) -> None:
        """Create the table (and its schema, and the staging table of appends) if missing, with the
        columns ``types`` (``(column, DuckDB type)``), then learn the table's own types."""
        con, t = self.con, _table_ref(self.sink.table)
        defs = [f"{_quote(name)} {typ}" for name, typ in types]
        key = self.sink.resolved_key(columns, self.upstream)
        if key:
            missing = [k for k in key if k not in columns]
            if missing:
                raise ValueError(
                    f"DuckDBSink({self.sink.table!r}): key column(s) {missing} are not in the data "
                    f"({columns}); pass key=[...] naming existing columns"
                )
            # a PRIMARY KEY column cannot hold NULL; a UNIQUE one can (rows with NULL upsert by delete)
            unique = "UNIQUE" if set(self.nullable_key) & set(key) else "PRIMARY KEY"
            defs.append(f"{unique} (" + ", ".join(_quote(k) for k in key) + ")")
        if "." in self.sink.table:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(_schema_and_name(self.sink.table)[0])}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {t} ({', '.join(defs)})")
        if not key:
            con.execute(f"CREATE TABLE IF NOT EXISTS {_table_ref(self.staged)} AS SELECT * FROM {t} LIMIT 0")
        # the table's own types: it may have been created by an earlier run
        typed = con.execute(f"DESCRIBE {t}").fetchall()
        self.json_columns = self.declared_json | {c[0] for c in typed if c[1] == "JSON"}
        self.table_types = {str(c[0]): str(c[1]) for c in typed}
        self.ready = True

    def _add_columns(self, batch: pd.DataFrame) -> None:
        """Columns of ``batch`` the table lacks (an earlier run wrote fewer: an aggregator was added)
        are added to it, typed as a new table would type them, NULL in the rows already there; one
        warning says so. DuckDB matches column names without regard to case, and so does this."""
        have = {c.lower() for c in self.table_types}
        new = [str(c) for c in batch.columns if str(c).lower() not in have]
        if not new:
            return
        types = dict(self._column_types(batch[new]))
        targets = [self.sink.table] + ([self.staged] if self._has_staging() else [])
        with self.sink._lock:
            for target in targets:
                for c in new:
                    self.con.execute(f"ALTER TABLE {_table_ref(target)} ADD COLUMN {_quote(c)} {types[c]}")
        log.warning(
            "%r: table %r has no column(s) %s, which the stream has: added them (%s), NULL in the rows "
            "written before",
            self.sink,
            self.sink.table,
            new,
            ", ".join(f"{c} {types[c]}" for c in new),
        )
        self.table_types.update(types)
        self.json_columns |= {c for c in new if types[c] == "JSON"}

    def _widen_columns(self, batch: pd.DataFrame) -> None:
        """Widen the table's columns whose type cannot hold ``batch``'s values to the type the whole
        stream written at once would give them (:func:`streamlab._duckdb_types.widened_type`), so that
        the table does not depend on how the stream was cut into batches: a column holding no value yet
        (made from missing values only) takes the type of the first values instead. Columns declared
        upstream and key columns keep their type (the insert rejects what they cannot take)."""
        if not self.table_types:
            return
        key = {str(k).lower() for k in self.sink.resolved_key(list(batch.columns), self.upstream)}
        names = {c.lower(): c for c in self.table_types}
        for column in batch.columns:
            name = names.get(str(column).lower())
            if (
                name is None
                or name.lower() in key
                or column in self.declared_json
                or self.declared.get(column) in _DUCKDB_TYPES
            ):
                continue
            typ = widened_type(self.table_types[name], batch[column])
            if typ is not None:
                self._retype(name, typ, batch[[column]])

    def _retype(self, column: str, typ: str, values: pd.DataFrame) -> None:
        """Change ``column`` of the table (and of its staged rows) to ``typ``, its values converted:
        to streamlab's JSON text for ``JSON`` (as the batches' values are written), by DuckDB's cast
        otherwise; a column holding no value yet takes the type a new table would give ``values``. A
        change DuckDB refuses (a view depends on the table, say) leaves the column as it is."""
        targets = [self.sink.table] + ([self.staged] if self._has_staging() else [])
        was = self.table_types[column]
        with self.sink._lock:
            held = sum(
                int(self.con.execute(f"SELECT count({_quote(column)}) FROM {_table_ref(t)}").fetchall()[0][0])
                for t in targets
            )
            if not held:
                typ = self._column_types(values)[0][1]
                if typ == was:
                    return
            function = "__streamlab_json_of_" + "".join(ch if ch.isalnum() else "_" for ch in was)
            using = f" USING {function}({_quote(column)})" if held and typ == "JSON" else ""
            if using:
                self.con.create_function(function, _json_of, [was], "VARCHAR", side_effects=False)
            try:
                for t in targets:
                    self.con.execute(
                        f"ALTER TABLE {_table_ref(t)} ALTER COLUMN {_quote(column)} SET DATA TYPE {typ}{using}"
                    )
            except Exception as e:
                if not type(e).__module__.startswith(("duckdb", "_duckdb")):
                    raise
                log.warning(
                    "%r: column %r of table %r is %s and could not become %s for values of the stream's "
                    "%s column (%s); rows it cannot take go to %r",
                    self.sink,
                    column,
                    self.sink.table,
                    was,
                    typ,
                    values.iloc[:, 0].dtype,
                    " ".join(str(e).split()),
                    self.rejects.sink.table,
                )
                return
            finally:
                if using:
                    self.con.remove_function(function)
        if held:
            log.warning(
                "%r: column %r of table %r was %s, and the stream's values include ones of another kind "
                "(values of dtype %s, e.g. %r): it is now %s, the values written before converted",
                self.sink,
                column,
                self.sink.table,
                was,
                values.iloc[:, 0].dtype,
                values.iloc[:, 0].dropna().iloc[0],
                typ,
            )
        self.table_types[column] = typ
        if typ == "JSON":
            self.json_columns.add(column)

    def write_batch(self, batch: pd.DataFrame) -> None:
        if len(batch) == 0:
            return
        if "" in batch.columns:  # a JSON key "" of a file replayed whole: DuckDB has no empty column name
            name = self._unnamed or _unnamed(batch.columns)
            if name.lower() in {str(c).lower() for c in batch.columns}:  # taken in this batch: another
                name = _unnamed(batch.columns)
            batch = batch.rename(columns={"": name})
            if self._unnamed is None:
                self._unnamed = name  # later batches write it to the same column
                log.warning(
                    '%r: a column without a name (a JSON key "") is written to column %r, as DuckDB '
                    "columns need a name",
                    self.sink,
                    name,
                )
        batch = self._without_lone_surrogates(batch)
        if len(batch) == 0:
            return
        if not self.ready:
            self._create(batch)
        self._add_columns(batch)
        self._widen_columns(batch)
        # JSON objects, arrays and mixed values as JSON text: in a JSON column (made for such a column of
        # the first batch), or in a text column, instead of Python's repr or a STRUCT of one row's keys
        text = {
            c: _json_text(batch[c]) for c in batch.columns if c in self.json_columns or _json_valued(batch[c])
        }
        if text:
            lone = _lone_surrogates_within(batch, text)
            if lone.any():
                batch = self._without_rows(batch, lone)
                if len(batch) == 0:
                    return
                text = {c: t[~lone] for c, t in text.items()}
            batch = batch.assign(**text)
        key = self.sink.resolved_key(list(batch.columns), self.upstream)
        if key:
            strict = [k for k in key if k not in self.nullable_key]
            missing: np.ndarray = np.asarray(batch[strict].isna().to_numpy().any(axis=1), dtype=bool)
            if missing.any():  # no key to upsert by: kept aside rather than failing every retry
                why = f"a key column ({', '.join(key)}) is missing: table {self.sink.table!r} upserts rows by their key"
                self._reject(batch.iloc[np.flatnonzero(missing)], why)
                batch = batch.iloc[np.flatnonzero(~missing)]
                if len(batch) == 0:
                    return
            # the last row per key wins within a batch, as it would across batches
            batch = batch.drop_duplicates(subset=key, keep="last")
            none_key = np.asarray(batch[key].isna().to_numpy().any(axis=1), dtype=bool)
            if none_key.any():  # the window key None: NULL matches no key in SQL, so no INSERT OR REPLACE
                self._upsert_null_safe(key, batch.iloc[np.flatnonzero(none_key)])
                batch = batch.iloc[np.flatnonzero(~none_key)]
                if len(batch) == 0:
                    return
        verb = "INSERT OR REPLACE INTO" if key else "INSERT INTO"
        target = self.sink.table if key else self.staged
        with self.sink._lock:
            self._insert_or_reject(verb, target, batch)
            self.appends = self.appends or not key

    def _without_lone_surrogates(self, batch: pd.DataFrame) -> pd.DataFrame:
        """``batch`` without its rows holding text with a lone surrogate, which go to the rejected table
        before DuckDB sees them: DuckDB 1.x fails its database on them, and DuckDB 2 the insert."""
        lone = _lone_surrogate_rows(batch)
        return self._without_rows(batch, lone) if lone.any() else batch

    def _without_rows(self, batch: pd.DataFrame, lone: np.ndarray) -> pd.DataFrame:
        """``batch`` without the rows ``lone`` marks, which go to the rejected table as holding text
        with a lone surrogate."""
        self._reject(
            batch.iloc[np.flatnonzero(lone)],
            "a text value holds a lone surrogate (such as an escaped '\\ud800' in JSON), which has no "
            f"UTF-8 form: table {self.sink.table!r} cannot hold it (the row's JSON here escapes it)",
        )
        return batch.iloc[np.flatnonzero(~lone)]

    def _upsert_null_safe(self, key: list[str], rows: pd.DataFrame) -> None:
        """Upsert ``rows`` whose window key is missing (the key None, NULL in the table): the table's
        rows with the same key, compared with ``IS NOT DISTINCT FROM`` (NULL matches NULL), are deleted
        and ``rows`` inserted, in one transaction, so a re-run replaces them as it replaces the others."""
        t = _table_ref(self.sink.table)
        same = " AND ".join(f"{t}.{_quote(k)} IS NOT DISTINCT FROM b.{_quote(k)}" for k in key)
        delete = f"DELETE FROM {t} USING __streamlab_keys AS b WHERE {same}"
        with self.sink._lock:
            # registered outside the transaction: a failed statement aborts it, and unregister with it
            self.con.register("__streamlab_keys", rows[key].reset_index(drop=True))
            self.con.register("__streamlab_rows", rows)
            try:
                self.con.execute("BEGIN TRANSACTION")
                try:
                    self.con.execute(delete)
                    self.con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM __streamlab_rows")
                    self.con.execute("COMMIT")
                    return
                except Exception as e:
                    self.con.execute("ROLLBACK")
                    if not _row_error(e):
                        raise
                # rows the table refuses (a value of another type, NULL in a table made with a PRIMARY
                # KEY by an earlier version): the others written, those rejected with the reason
                self.con.execute(delete)
            finally:
                self.con.unregister("__streamlab_keys")
                self.con.unregister("__streamlab_rows")
            self._insert_or_reject("INSERT INTO", self.sink.table, rows)

    def _insert(self, verb: str, target: str, part: pd.DataFrame) -> None:
        self.con.register("__streamlab_batch", part)
        try:
            self.con.execute(f"{verb} {_table_ref(target)} BY NAME SELECT * FROM __streamlab_batch")
        finally:
            self.con.unregister("__streamlab_batch")

    def _insert_or_reject(self, verb: str, target: str, batch: pd.DataFrame) -> None:
        """Insert ``batch``; rows the table cannot take (a value of another type than its column's, a
        JSON object of another shape) go to the rejected table, each with the error of its own insert,
        so the rest is written and no retry meets them again.

        A refused batch is first cast to the table's column types in one query: the rows with a value
        its column cannot hold (the stream's type of that column changed since the table was made) go
        to the rejected table in one go, with one reason per column. Each insert is all or nothing and
        a row's fate is its own, so the rest, when still refused, is searched from its start: a part
        is tried, and the next part is twice as large when it was written, half as large when it was
        refused (a refused single row is rejected); a few bad rows among many cost a few inserts each."""
        if self._insert_or_fail(verb, target, batch, reject=False):
            return
        batch = self._reject_uncastable(batch)  # a column's type changed: its rows in one go
        if len(batch) == 0 or self._insert_or_fail(verb, target, batch) or len(batch) == 1:
            return
        at, size = 0, 1  # the batch is refused somewhere: its first row alone first
        while at < len(batch):
            part = batch.iloc[at : at + size]
            if self._insert_or_fail(verb, target, part):
                at, size = at + len(part), 2 * size
            elif len(part) == 1:
                at += 1
            else:
                size = len(part) // 2

    def _reject_uncastable(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The rows of a refused ``batch`` whose values its table's column types can hold; the others go
        to the rejected table in one go per column, with one reason (the column's type changed since
        the table was created, say), instead of one refused insert each. One query casts them all."""
        names = {str(c).lower(): str(c) for c in batch.columns}
        common = [(names[c.lower()], t) for c, t in self.table_types.items() if c.lower() in names]
        if not common:
            return batch
        tests = ", ".join(
            f"{_quote(c)} IS NOT NULL AND TRY_CAST({_quote(c)} AS {t}) IS NULL" for c, t in common
        )
        self.con.register("__streamlab_batch", batch)
        try:
            flags = np.array(
                self.con.execute(f"SELECT {tests} FROM __streamlab_batch").fetchall(), dtype=bool
            ).reshape(len(batch), len(common))
        except Exception as e:
            if not _row_error(e):
                raise
            return batch  # not a question of types: the rows are tried one by one
        finally:
            self.con.unregister("__streamlab_batch")
        done = np.zeros(len(batch), dtype=bool)
        for j, (column, typ) in enumerate(common):
            rows = flags[:, j] & ~done
            if not rows.any():
                continue
            given = batch[column].iloc[np.flatnonzero(rows)]
            self._reject(
                batch.iloc[np.flatnonzero(rows)],
                f"table {self.sink.table!r} column {column!r} is {typ}, and these values of the stream's "
                f"{given.dtype} column cannot be cast to it (e.g. {given.iloc[0]!r}): the column's type "
                "changed since the table was created? Write to a new table, or cast the column in a step",
            )
            done |= rows
        return batch.iloc[np.flatnonzero(~done)]

    def _insert_or_fail(self, verb: str, target: str, part: pd.DataFrame, reject: bool = True) -> bool:
        """Insert ``part``: True when written; False when the table refused its rows (a single row goes
        to the rejected table with the reason, unless ``reject`` is False); an error of another kind is
        raised."""
        try:
            self._insert(verb, target, part)
        except Exception as e:
            if not _row_error(e):
                raise
            if len(part) == 1 and reject:
                why = " ".join(str(e).split())
                self._reject(
                    part, f"table {self.sink.table!r} cannot take this row: {type(e).__name__}: {why}"
                )
            return False
        return True

    def _reject(self, rows: pd.DataFrame, reason: str) -> None:
        """``rows`` to the rejected table: the reason and each whole row as JSON text (a table of two text
        columns takes any row, whatever its columns and types)."""
        log.warning(
            "%r: %d row(s) written to table %r: %s", self.sink, len(rows), self.rejects.sink.table, reason
        )
        texts = rows_to_json(rows.reset_index(drop=True))
        self.rejects.write_batch(pd.DataFrame({"reject_reason": reason, "row": texts}, dtype=object))

    def flush(self) -> None:
        if self._rejects is not None:
            self._rejects.flush()
        with self.sink._lock:
            if self.appends:
                self.prepared += 1
                self._ledger()
                self.con.execute(
                    f"INSERT INTO {_LEDGER} VALUES (?, ?, 0) ON CONFLICT (tbl) DO UPDATE SET staged = excluded.staged",
                    [self.sink.table, self.prepared],
                )
            self.con.execute("CHECKPOINT") if self.sink.path != ":memory:" else None

    def snapshot(self) -> Any:
        if self._rejects is None:
            return self.prepared
        return {"prepared": self.prepared, "rejected": self._rejects.snapshot()}

    def commit(self) -> None:
        if self._rejects is not None:
            self._rejects.commit()
        with self.sink._lock:
            if self.appends:
                self._publish()
                self.appends = False

    def _publish(self) -> None:
        t, staged = _table_ref(self.sink.table), _table_ref(self.staged)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM {staged}")
            self.con.execute(f"DELETE FROM {staged}")
            self.con.execute(
                f"UPDATE {_LEDGER} SET published = ? WHERE tbl = ?", [self.prepared, self.sink.table]
            )
            self.con.execute("COMMIT")  # durable in the write-ahead log
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Create the table of a run that wrote no rows when every column's type is declared upstream
        (a parse schema, a window's results...), so a query after a quiet run finds it empty rather than
        missing; else it stays missing, as :meth:`DuckDBSink.read` says. Then let go of the sink's
        connection: the last writer open on a database file closes it, so that the file is free for
        others (a read-only connection, another process) once the run is over. Rows staged and never
        committed stay staged, and the next run drops them: their source positions were not committed
        either."""
        if self._closed:
            return
        self._closed = True
        try:
            types = None if self.ready else self._declared_types()
            if types is not None:
                with self.sink._lock:
                    self._create_table(types, [c for c, _ in types])
        finally:
            try:
                if self._rejects is not None:  # it shares the connection: released by both
                    self._rejects.close()
            finally:
                self.sink._release()

    def _declared_types(self) -> list[tuple[str, str]] | None:
        """``(column, DuckDB type)`` of every column of the stream, when each one's type is declared."""
        columns = self.upstream.columns
        if not columns:
            return None
        types = []
        for c in columns:
            declared = self.declared.get(c)
            if c in self.declared_json or declared in ("json", "object"):
                types.append((c, "JSON"))
            elif declared in _DUCKDB_TYPES:
                types.append((c, _DUCKDB_TYPES[declared]))
            else:
                return None
        return types


def _duckdb_key(key: Any) -> str | list[str] | None:
    """``key`` as the sink holds it (a tuple as a list), or a PipelineConfigError: a key of another kind
    (``5``, a tuple) was taken as ``'auto'``, and one naming a column twice failed on the first write."""
    if key is None or (isinstance(key, str) and key):
        return key
    if isinstance(key, (list, tuple)) and all(isinstance(k, str) and k for k in key):
        repeated = sorted({k for k in key if list(key).count(k) > 1})
        if not repeated:
            return list(key)
        problem = f"key={key!r} names {', '.join(map(repr, repeated))} twice"
    else:
        problem = f"key={key!r} is not a column name, a list of them, 'auto' or None"
    raise PipelineConfigError(
        "DuckDBSink",
        "duckdb",
        problem,
        "pass key='event_id', key=['user_id', 'window_start'] (each column once), key='auto' (the window "
        "columns and key, or event_id) or key=None (append)",
    )


class DuckDBSink(Sink):
    """Write rows to a DuckDB table, upserting by key so a re-run never doubles rows.

    Parameters
    ----------
    path
        Database file, or ``":memory:"``.
    table
        Table name, in the database's main schema, or ``"schema.table"`` (the schema is created if
        missing; its staging and ``<table>_rejected`` tables are in that schema too). The table is
        created from the first batch's columns; a run that writes no rows creates it at its end when
        every column's type is declared upstream (a parse schema, a window's results), and otherwise
        leaves it missing (:meth:`read` says why). A name with two dots (another database's table)
        is refused, and so is a name that itself holds a dot.
    key
        Columns identifying a row; rows with an existing key replace it. ``"auto"`` (the default) uses
        the window columns plus the window step's key for window results, also after steps that keep
        their rows and those columns (``filter``, ``dedup``, ``with_columns`` not assigning them,
        ``select`` keeping them, a key possibly renamed; see :func:`streamlab.pipeline.window_rows`);
        after a step that may reshape rows (``map_one``, ``map_many``, ``detect``, a union) window
        results are appended, with a warning when the sink is attached; ``event_id`` for events where
        it identifies a row (a re-delivered event replaces itself); and plain appends otherwise, which
        includes every stream that may hold one event in several rows, where upserting by ``event_id``
        would keep one of them: side outputs (``.duplicates``, ``.late``, ``.dead_letter``), what
        follows an interval join, an enrich or a ``map_many``, and a union of streams sharing a source
        (unless a ``dedup('event_id')`` follows; see :func:`streamlab.pipeline.repeats_ids`). ``None`` always appends: appended rows are staged and become visible in
        the table at each commit, exactly once (a commit ledger in the database, ``__streamlab_commits``,
        records the last commit published, in the same transaction as the rows). A row the table cannot
        take (its key missing, a value of another type than its column's) is appended, exactly once
        too, to ``<table>_rejected`` (:meth:`rejected_sink`) with a ``reject_reason``, and a warning
        says so. A window's missing key is not missing: it is the key ``None``, and ``"auto"`` keeps
        its result in the table (the key is ``UNIQUE``, not a ``PRIMARY KEY``, which cannot hold NULL;
        such a row replaces the one of the same window whose key is NULL too).

    Notes
    -----
    A column declared ``json`` or ``object`` by a parse upstream, and any column of JSON objects,
    arrays or values of several types, is a ``JSON`` column holding streamlab's JSON text
    (:mod:`streamlab.serde`): ``properties->>'page'`` reads it, and its type does not depend on the
    first batch's values. An ``int64`` field keeps every digit (``BIGINT``), missing values or not.

    A column the stream does not declare gets the type of its values, whatever batches they come in:
    ``VARCHAR`` for text, ``DATE``, ``BLOB``, ``INTERVAL``, ``BOOLEAN``, ``TIMESTAMP`` for dates, bytes,
    durations, booleans, times; ``JSON`` for values of several kinds (text and numbers, dates and text),
    for JSON objects and arrays, and for numbers held as Python objects. The table is made from the
    first batch, so a later batch holding values of another kind widens the column to what the whole
    stream written at once would have made it: ``JSON``, the values written before converted to the
    same JSON text, or ``DOUBLE`` for an integer column meeting numbers that are not whole (which DuckDB
    would round); a column holding no value yet (its batches held missing values only) takes the type
    of its first values. A warning says so. A column whose type is declared upstream (a parse schema,
    a source's frame: a text column is ``VARCHAR``) and a key column keep their type: a value they
    cannot take goes to ``<table>_rejected`` with the reason, never failing the run.

    Examples
    --------
    >>> sink = DuckDBSink(":memory:", "counts", key=["k"])
    >>> w = sink.open()
    >>> w.write_batch(pd.DataFrame({"k": ["a"], "n": [1]}))
    >>> w.write_batch(pd.DataFrame({"k": ["a"], "n": [2]}))
    >>> sink.read().values.tolist()
    [['a', 2]]

    Text first, a number later: the column is ``JSON``, as both in one batch would make it.

    >>> sink = DuckDBSink(":memory:", "events", key=["k"])
    >>> w = sink.open()
    >>> w.write_batch(pd.DataFrame({"k": ["a"], "v": pd.Series(["x"], dtype=object)}))
    >>> w.write_batch(pd.DataFrame({"k": ["b"], "v": pd.Series([5], dtype=object)}))
    >>> sink.query("SELECT k, typeof(v) AS t, v FROM events ORDER BY k").values.tolist()
    [['a', 'JSON', '"x"'], ['b', 'JSON', '5']]
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        table: str = "results",
        *,
        key: str | list[str] | None = "auto",
    ) -> None:
        if not isinstance(table, str) or not table:
            raise PipelineConfigError(
                "DuckDBSink", "duckdb", f"table={table!r} is not a table name", "pass e.g. table='counts'"
            )
        if "." in table:
            parts = table.split(".")
            if len(parts) > 2 or not all(parts):
                name = next((p for p in reversed(parts) if p), "counts")
                raise PipelineConfigError(
                    "DuckDBSink",
                    "duckdb",
                    f"table={table!r} is not 'table' or 'schema.table'"
                    + (
                        ": a table of another database (catalog) is not written"
                        if len(parts) > 2 and all(parts)
                        else ""
                    ),
                    f"name the table {name!r}, or {name!r} in a schema, e.g. table={'analytics.' + name!r} "
                    "(the schema is created if missing); a name holding a dot is not supported",
                )
        self.path = check_path("DuckDBSink", "path", path)
        if self.path != ":memory:":
            _check_destination_kind("DuckDBSink", self.path, "file", "results.duckdb")
        self.table = table
        self.key = _duckdb_key(key)
        self._con: Any = None
        self._writers = 0  # writers open on the connection (a run's, its rejected rows' share this sink's)
        self._owner: DuckDBSink | None = None  # the sink whose connection this one uses (rejected rows)
        self._lock = threading.RLock()

    def rejected_sink(self) -> DuckDBSink:
        """The table that keeps rows this sink cannot write (a key column missing, a value its column's
        type cannot hold): ``<table>_rejected``, with ``reject_reason`` and the whole ``row`` as JSON text
        (streamlab's encoding), appended (no key) on this sink's own connection.

        Examples
        --------
        >>> sink = DuckDBSink(":memory:", "events")
        >>> w = sink.open()
        >>> w.write_batch(pd.DataFrame({"event_id": ["e1", None], "n": [1, 2]}))
        >>> w.flush(); w.commit()
        >>> sink.read().values.tolist(), sink.rejected_sink().read().values.tolist()
        ([['e1', 1]], [["a key column (event_id) is missing: table 'events' upserts rows by their key", '{"event_id":null,"n":2}']])
        """
        rejected = DuckDBSink(self.path, f"{self.table}_rejected", key=None)
        rejected._owner, rejected._lock = self._owner or self, self._lock
        return rejected

    def resolved_key(self, columns: list[str], upstream: Upstream | None = None) -> list[str]:
        """The key columns for rows with ``columns`` of the stream ``upstream`` describes (``key='auto'``
        decides from it: see the class docstring).

        Examples
        --------
        >>> sink = DuckDBSink(":memory:", "t")
        >>> sink.resolved_key(["event_id", "n"]), sink.resolved_key(["event_id", "n"], Upstream(repeats_ids=True))
        (['event_id'], [])
        >>> sink.resolved_key(["k", "window_start", "window_end", "count"], Upstream(window_keys=("k",)))
        ['k', 'window_start', 'window_end']
        """
        upstream = upstream or Upstream()
        if self.key is None:
            return []
        if isinstance(self.key, str) and self.key != "auto":
            return [self.key]
        if isinstance(self.key, list):
            return self.key
        if upstream.window_keys is not None and "window_start" in columns:
            return [*upstream.window_keys, "window_start", "window_end"]
        if "event_id" in columns and not upstream.repeats_ids:
            return ["event_id"]
        return []

    def construction_warnings(self, columns: list[str] | None, upstream: Upstream) -> list[str]:
        """With ``key='auto'``, window results that reach the sink through a step that may reshape rows
        are appended (a re-run adds them again): say so and how to upsert them
        (see :meth:`Sink.construction_warnings`).

        Examples
        --------
        >>> DuckDBSink(":memory:", "t").construction_warnings(None, Upstream(window_reshaped_by="map"))
        ["DuckDBSink('t') key='auto' appends these window results (each re-run adds them again): they pass through step 'map', which may reshape rows, so the window columns may not identify a row. Fix: to upsert, pass key=[...] naming the columns that identify a row (e.g. the window key columns, 'window_start', 'window_end'); or key=None to append without this warning"]
        """
        if self.key != "auto" or upstream.window_reshaped_by is None:
            return []
        if columns is not None and (
            not {"window_start", "window_end"} & set(columns) or self.resolved_key(columns, upstream)
        ):
            return []  # rows that are no longer window results, or rows with a key of their own
        return [
            f"DuckDBSink({self.table!r}) key='auto' appends these window results (each re-run adds them "
            f"again): they pass through step {upstream.window_reshaped_by!r}, which may reshape rows, so "
            "the window columns may not identify a row. Fix: to upsert, pass key=[...] naming the columns that "
            "identify a row (e.g. the window key columns, 'window_start', 'window_end'); or key=None to "
            "append without this warning"
        ]

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The key columns the stream lacks, as ``(problem, fix)`` (see :meth:`Sink.columns_problem`).

        Examples
        --------
        >>> DuckDBSink(":memory:", "t", key="id").columns_problem(["user_id", "n"], Upstream())[0]
        "DuckDBSink('t') key='id' names column(s) ['id'] that the stream does not have (its columns: ['user_id', 'n']); the first write would fail"
        """
        missing = missing_columns_problem(
            f"DuckDBSink({self.table!r}) key={self.key!r}",
            self.resolved_key(columns, upstream),
            columns,
            "pass key=[...] naming columns of the stream, key='auto' for the window columns and key "
            "(or event_id), or key=None to append rows without upserting",
        )
        if missing is not None:
            return missing
        seen: dict[str, str] = {}
        for c in columns:
            other = seen.setdefault(str(c).lower(), str(c))
            if other != str(c):  # DuckDB renamed the second one ('a' became 'a_1'): readers got the first
                return (
                    f"DuckDBSink({self.table!r}): the stream's columns {other!r} and {c!r} differ only in "
                    "case, and DuckDB's column names ignore case: one of them would be written under "
                    "another name",
                    f"rename one before the sink, e.g. .select(<the other columns>, {c}_2={c!r})",
                )
        return None

    def connection(self) -> Any:
        """The sink's DuckDB connection (one per sink, shared by the writer and readers), opened if none
        is. A run's writers close a database file's connection at the end of the run (an in-memory
        database's stays open: it holds the rows); one opened here stays open until :meth:`close`.

        Examples
        --------
        >>> DuckDBSink(":memory:", "t").connection().execute("select 42").fetchall()
        [(42,)]
        """
        if self._owner is not None:
            return self._owner.connection()
        with self._lock:
            if self._con is None:
                self._con = self._connect()
            return self._con

    def _connect(self) -> Any:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = _connect_writer(self.path)
        if self.path != ":memory:":
            _check_database_file(self, con)
        return con

    def _acquire(self) -> Any:
        """The connection, for a writer that will :meth:`_release` it when it closes."""
        if self._owner is not None:
            return self._owner._acquire()
        with self._lock:
            con = self.connection()
            self._writers += 1
            return con

    def _release(self) -> None:
        """A writer is done: the last one closes a database file's connection, so that the file is no
        longer locked by this process once a run is over (the next run opens it again)."""
        if self._owner is not None:
            self._owner._release()
            return
        with self._lock:
            self._writers = max(self._writers - 1, 0)
            if not self._writers and self.path != ":memory:":
                self.close()

    def open(self, clock: Clock | None = None) -> SinkWriter:
        return _DuckDBWriter(self)

    def open_for(self, upstream: Upstream, clock: Clock | None = None) -> SinkWriter:
        """A writer for ``upstream``: window results get ``key='auto'`` from the window step's key."""
        return _DuckDBWriter(self, upstream)

    def read(self, order_by: str | None = None) -> pd.DataFrame:
        """The table's rows; a table no run has written yet is an error that says so.

        Examples
        --------
        >>> DuckDBSink(":memory:", "counts").read()
        Traceback (most recent call last):
        ...
        LookupError: DuckDBSink(':memory:', 'counts', key='auto'): table 'counts' does not exist yet: its pipeline has written no rows to it (a run creates the table with its first rows, or at its end when the stream's column types are all declared, by a parse schema say; run the pipeline with p.run(), or p.start() in a notebook, and check that rows reach this sink); tables in ':memory:': none
        """
        import duckdb

        sql = f"SELECT * FROM {_table_ref(self.table)}" + (f" ORDER BY {order_by}" if order_by else "")
        try:
            return self.query(sql)
        except duckdb.CatalogException:
            found = self.query(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "ORDER BY table_schema <> 'main', table_schema, table_name"
            ).itertuples(index=False)
            tables = [str(n) if s == "main" else f"{s}.{n}" for s, n in found]
            if self.table in set(tables):
                raise  # the table exists: the error is about the query (order_by), say it as DuckDB does
            held = ", ".join(repr(t) for t in tables if "__streamlab" not in t) or "none"
            raise LookupError(
                f"{self!r}: table {self.table!r} does not exist yet: its pipeline has written no rows to it "
                "(a run creates the table with its first rows, or at its end when the stream's column types "
                "are all declared, by a parse schema say; run the pipeline with p.run(), or p.start() in a "
                f"notebook, and check that rows reach this sink); tables in {self.path!r}: {held}"
            ) from None

    def query(self, sql: str) -> pd.DataFrame:
        """Run SQL on the sink's database: on the connection a run holds, or else on one opened for this
        query and closed after it (the file stays free for others between runs).

        Examples
        --------
        >>> DuckDBSink(":memory:", "t").query("select 42 as n").values.tolist()
        [[42]]
        """
        if self._owner is not None:
            return self._owner.query(sql)
        with self._lock:
            if self._con is not None or self.path == ":memory:":
                frame: pd.DataFrame = self.connection().cursor().execute(sql).df()
                return frame
            con = self._connect()
            try:
                frame = con.execute(sql).df()
                return frame
            finally:
                con.close()

    def close(self) -> None:
        """Close the sink's connection, if open (an in-memory database's rows are then gone). A run
        closes a database file's connection itself when it ends."""
        if self._owner is not None:
            return
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def destinations(self) -> tuple[tuple[str, str | None], ...]:
        """The table and its ``<table>_rejected`` in the database file (an in-memory database is this
        sink's own; see :meth:`Sink.destinations`).

        Examples
        --------
        DuckDB's names are case-insensitive and a name without schema is in ``main``: ``Counts``,
        ``counts`` and ``main.counts`` are one table.

        >>> [t for _, t in DuckDBSink("out.duckdb", "Main.Counts").destinations()]
        ['counts', 'counts_rejected']
        """
        path = f":memory:{id(self)}" if self.path == ":memory:" else file_destination(self.path)
        table = self.table.lower().removeprefix("main.")
        return ((path, table), (path, f"{table}_rejected"))

    def spec(self) -> dict[str, Any]:
        return {"kind": "duckdb", "path": self.path, "table": self.table, "key": self.key}

    def __repr__(self) -> str:
        return f"DuckDBSink({self.path!r}, {self.table!r}, key={self.key!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_con": None, "_lock": None, "_writers": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_writers": 0, "_owner": None, **state})
        self._lock = self._owner._lock if self._owner is not None else threading.RLock()


def _connect_writer(path: str) -> Any:
    """``duckdb.connect(path)``; a file another process holds gets the remedy as its error's ``fix``.

    DuckDB lets one process write a database file, and no other process open it meanwhile (not even
    read-only): the usual cause is a notebook or a DuckDB shell still connected to the results.

    Examples
    --------
    >>> _connect_writer(":memory:").execute("select 42").fetchall()
    [(42,)]
    """
    import duckdb

    try:
        return duckdb.connect(path)
    except duckdb.ConnectionException as e:
        if "different configuration" in str(e):
            e.fix = (  # type: ignore[attr-defined]
                f"this process has {path!r} open already, read-only say (duckdb.connect(path, "
                "read_only=True) to look at the results): close that connection (con.close()) and run "
                "again"
            )
        raise
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            e.fix = (  # type: ignore[attr-defined]
                f"another process has {path!r} open (DuckDB lets one process use a database file at a "
                "time): close its connection (con.close(), or end that notebook's kernel or DuckDB "
                "shell) and run again; to look at results while a pipeline writes them, query the file "
                "from the pipeline's own process, or give the sink another file"
            )
        raise


def _check_database_file(sink: DuckDBSink, con: Any) -> None:
    """Refuse (closing ``con``) a path DuckDB opened as a view of a data file rather than as a database
    file: DuckDB 2 opens an existing CSV, JSON or Parquet file as a database of that file's rows, held
    in memory, where every table the sink creates and every row it writes vanish at the end of the run
    while it reports success."""
    found = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    rows = found.fetchall()
    if rows and rows[0][0] is None:
        con.close()
        raise ValueError(
            f"{sink!r}: {sink.path!r} is not a DuckDB database file but a data file (CSV, JSON or "
            "Parquet, say), which DuckDB opens as a view held in memory: the rows written would vanish "
            "at the end of the run. Fix: give a database file path, e.g. 'out.duckdb' (to write rows as "
            "JSON lines or Parquet, use JsonLinesSink or ParquetSink)"
        )


def _part_number(path: Path) -> int | None:
    stem = path.name.removeprefix("part-").removesuffix(".parquet")
    return int(stem) if stem.isdigit() else None


def _arrow_types() -> dict[str, Any]:
    """The Arrow type of each declared column type, as every Parquet part writes it."""
    import pyarrow as pa

    text = pa.large_string() if PANDAS_3 else pa.string()  # as pandas' text columns convert (str; objects)
    return {
        **dict.fromkeys(("string", "category", "json", "object"), text),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("ns", tz="UTC"),
    }


class _ParquetWriter(SinkWriter):
    def __init__(self, sink: ParquetSink, upstream: Upstream | None = None) -> None:
        upstream = upstream or Upstream()
        self.sink = sink
        self.json_columns = upstream.json_columns  # declared json or object upstream: JSON text in every part
        self.declared = dict(
            upstream.declared
        )  # parse types: a part where a column has no value keeps its type
        self.columns = upstream.columns  # the stream's columns when known: an empty run's part has them
        self.pending: list[pd.DataFrame] = []
        self.failed = False  # a flush raised (a disk full): close() neither writes again nor raises again
        Path(sink.path).mkdir(parents=True, exist_ok=True)
        numbers = [n for f in Path(sink.path).glob("part-*.parquet") if (n := _part_number(f)) is not None]
        self.part = max(numbers, default=-1) + 1

    def snapshot(self) -> Any:
        return self.part

    def restore(self, state: Any) -> None:
        directory = Path(self.sink.path)
        for pattern in (".part-*.tmp", "part-*.tmp"):  # (the second: the name it had before)
            for tmp in directory.glob(pattern):
                tmp.unlink()  # a write cut short
        if state is None:
            return
        for f in directory.glob("part-*.parquet"):
            n = _part_number(f)
            if n is not None and n >= int(state):
                f.unlink()  # written by a commit whose checkpoint never landed: its events come again
        self.part = int(state)

    def write_batch(self, batch: pd.DataFrame) -> None:
        self.pending.append(batch)

    def _convertible(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each column Arrow cannot convert (values of mixed types, JSON objects of
        different shapes, an int beyond 64 bits, complex numbers) as JSON text (streamlab's encoding;
        missing stays missing), instead of a flush that fails on every retry. Decided part by part,
        from the part's own rows, so a restarted run writes each part as an uninterrupted one does."""
        import pyarrow as pa

        out = frame
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                continue  # (Arrow takes it; arrow_table hands it over)
            try:
                pa.array(frame[col], from_pandas=True)
                continue
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as e:
                log.warning(
                    "%r: column %r of part %d written as JSON text (%s)", self.sink, col, self.part, e
                )
            if out is frame:
                out = frame.copy(deep=False)
            out[col] = _json_text(frame[col])
        return out

    def _declared_types(self, table: Any) -> Any:
        """``table`` with its declared columns in one Arrow type in every part: a category as text (its
        dictionary's index width depends on the part's categories) and a column without a value in
        this part (typed ``null`` by Arrow, or ``double`` from pandas' all-NaN column) as its declared
        type's, so readers can read the parts as one. A column without a value and without a declared
        type is written as text rather than Arrow's ``null`` (which no later part's values cast to)."""
        import pyarrow as pa

        arrow_types = _arrow_types()
        text = arrow_types["string"]
        for i, field in enumerate(table.schema):
            typ = self.declared.get(field.name)
            empty = table.column(i).null_count == len(table)
            if typ == "category" and pa.types.is_dictionary(field.type):
                table = table.set_column(i, field.name, table.column(i).cast(text))
            elif typ in arrow_types and empty and field.type != arrow_types[typ]:
                table = table.set_column(i, field.name, pa.nulls(len(table), arrow_types[typ]))
            elif typ is None and pa.types.is_null(field.type):
                table = table.set_column(i, field.name, pa.nulls(len(table), text))
        return table

    def flush(self) -> None:
        try:
            self._flush()
        except Exception:
            self.failed = True
            raise

    def _flush(self) -> None:
        if not self.pending:
            return
        import pyarrow as pa

        frame = concat_batches(self.pending)  # a json field's 2**60 + 1 beside 2.5 stays exact
        declared = {c: _json_text(frame[c]) for c in self.json_columns if c in frame.columns}
        if declared:  # one type in every part, whatever a part's values look like
            frame = frame.assign(**declared)
        try:
            table = arrow_table(frame)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            table = arrow_table(self._convertible(frame))  # (only the part Arrow refused)
        self._write_part(self._declared_types(table))
        self.pending = []

    def _write_part(self, table: Any) -> None:
        import pyarrow.parquet as pq

        target = Path(self.sink.path) / f"part-{self.part:06d}.parquet"
        write_replacing(target, lambda f: pq.write_table(table, f))
        self.part += 1

    def close(self) -> None:
        """Flush; then, when the directory holds no part at all (no run wrote a row to it) and every
        column's type is declared upstream (a parse schema, a window's results), write one part of no
        rows with those columns, so a reader of the directory finds the columns rather than no file.
        A run resuming an earlier checkpoint deletes it as any part written after that checkpoint.

        After a flush that raised (a disk full), nothing is written: its rows are past the checkpoint
        (the sources were not committed past them), and the failure is not reported a second time."""
        if self.failed:
            return
        self.flush()
        if not self.columns or any(Path(self.sink.path).glob("part-*.parquet")):
            return
        types = _arrow_types()
        if not all(self.declared.get(c) in types for c in self.columns):
            return
        import pyarrow as pa

        schema = pa.schema([(c, types[self.declared[c]]) for c in self.columns])
        self._write_part(schema.empty_table())


class ParquetSink(Sink):
    """Write each commit's rows as one Parquet part file in a directory.

    Part files are numbered and written by rename; the checkpoint records the next number, and a run
    resuming it deletes parts numbered from there (written after it), so a crash never doubles rows.
    A column declared ``json`` or ``object`` by a parse upstream is written as JSON text (streamlab's
    encoding, :mod:`streamlab.serde`) in every part, so the parts agree on its type whatever the shapes
    of its values. Another object column Arrow cannot convert (values of mixed types, JSON objects of
    different shapes, an int beyond 64 bits) is written as JSON text in that part, and a warning names it.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> w = ParquetSink(d).open()
    >>> w.write_batch(pd.DataFrame({"x": [1]}))
    >>> w.flush()
    >>> pd.read_parquet(d)["x"].tolist()
    [1]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_path("ParquetSink", "path", path)
        _check_destination_kind("ParquetSink", self.path, "directory", "parts")

    def open(self, clock: Clock | None = None) -> SinkWriter:
        return _ParquetWriter(self)

    def open_for(self, upstream: Upstream, clock: Clock | None = None) -> SinkWriter:
        """A writer for ``upstream``: its ``json``/``object`` columns become JSON text in every part."""
        return _ParquetWriter(self, upstream)

    def destinations(self) -> tuple[tuple[str, str | None], ...]:
        """The directory (see :meth:`Sink.destinations`)."""
        return ((file_destination(self.path), None),)

    def spec(self) -> dict[str, Any]:
        return {"kind": "parquet", "path": self.path}

    def __repr__(self) -> str:
        return f"ParquetSink({self.path!r})"


def _keep_whole_members(path: str) -> bool:
    """Make the gzip file at ``path`` end with a whole member, and say whether its text ends a line.

    A write cut short (a crash, a full disk) leaves a partial member at the end, past every checkpoint;
    appended after it, the new members could not be read (every reader stops at the damage). That
    tail is moved to ``<path>.damaged-<offset>`` (nothing is deleted) and the file cut back to its
    last whole member.
    """
    end, newline, error = gzip_end(path)
    size = os.path.getsize(path)
    if error is not None and end < size:
        aside = f"{path}.damaged-{end}"
        with open(path, "r+b") as f:
            f.seek(end)
            tail = f.read()
            with open(aside, "wb") as out:
                out.write(tail)
                out.flush()
                os.fsync(out.fileno())
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        log.warning(
            "JsonLinesSink: %s ended in a gzip member cut short (%s): its last %s bytes, written after "
            "the last whole member, were moved to %s and new lines are appended after that member",
            path,
            error,
            f"{size - end:,}",
            aside,
        )
    return newline


def _ends_with_newline(path: str | os.PathLike[str]) -> bool:
    """Whether the (non-empty) file at ``path`` ends with a line break."""
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class _JsonLinesWriter(SinkWriter):
    def __init__(self, sink: JsonLinesSink) -> None:
        Path(sink.path).parent.mkdir(parents=True, exist_ok=True)
        self.path = sink.path
        #: the file is new: its directory is fsynced at the first flush (its name must outlive a power loss)
        self.created = not os.path.exists(sink.path)
        self.gzip: GzipMemberWriter | None = None
        newline = True
        if is_gzip_name(sink.path):  # one gzip member per flush, so a checkpoint's length is a member's end
            newline = _keep_whole_members(sink.path) if not self.created else True
            self.f: Any = open(sink.path, "ab")  # noqa: SIM115 - closed in close()
            self.gzip = GzipMemberWriter(self.f)
        else:
            self.f = open(sink.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            newline = not self.f.tell() or _ends_with_newline(sink.path)
        if not newline:  # a file written by other hands: the first record starts a line of its own
            if self.gzip is not None:
                self.gzip.write("\n")
                self.gzip.finish()  # (a member of its own: the file's length is a member's end)
            else:
                self.f.write("\n")
        self.end = self.f.tell()
        self.failed = False  # a write or flush raised (a disk full): close() does not write again

    def snapshot(self) -> Any:
        return self.end

    def restore(self, state: Any) -> None:
        if state is None:
            return
        size = os.path.getsize(self.path)
        if size > int(state):  # lines written after the checkpoint: their events come again
            self.f.truncate(int(state))
        elif size < int(state):
            log.warning("%s is shorter than its checkpoint recorded (%s < %s bytes)", self.path, size, state)
        self.f.seek(0, os.SEEK_END)
        self.end = self.f.tell()

    def write_batch(self, batch: pd.DataFrame) -> None:
        try:
            if self.gzip is not None:
                self.gzip.write("".join(line + "\n" for line in rows_to_json(batch, compact=False)))
            else:
                self.f.writelines(line + "\n" for line in rows_to_json(batch, compact=False))
        except OSError:  # (a full buffer is written out here too)
            self.failed = True
            raise

    def flush(self) -> None:
        try:
            if self.gzip is not None:
                self.gzip.finish()
            self.f.flush()
            os.fsync(self.f.fileno())
        except OSError:
            self.failed = True
            raise
        if self.created:
            sync_directory(Path(self.path).parent)
            self.created = False
        self.end = self.f.tell()

    def close(self) -> None:
        """Flush and close; after a write or flush that raised, only close: the lines still buffered
        are past the checkpoint (a restart writes them again), and the failure was reported once."""
        if self.failed:
            with contextlib.suppress(OSError):
                self.f.close()  # (closing flushes the buffer, and fails as the flush did)
            return
        self.flush()
        self.f.close()


class JsonLinesSink(Sink):
    """Append rows as JSON lines in ``streamlab.serde``'s encoding (times as ISO-8601 UTC, bytes as base64).

    The checkpoint records the file's length at each commit; a run resuming it truncates the file to
    that length first, so lines written after the checkpoint (a crash before it landed) are not doubled.
    A path ending with ``.gz`` is written gzipped, one gzip member per commit (``gzip``, ``zcat`` and
    ``ReplaySource`` read the members as one file); a member that a crash cut short at the file's end is
    moved aside to ``<path>.damaged-<offset>`` when the sink opens the file again.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    >>> w = JsonLinesSink(path).open()
    >>> w.write_batch(pd.DataFrame({"x": [1]}))
    >>> w.close()
    >>> open(path).read()
    '{"x": 1}\\n'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_path("JsonLinesSink", "path", path)
        _check_destination_kind("JsonLinesSink", self.path, "file", "out.jsonl")

    def open(self, clock: Clock | None = None) -> SinkWriter:
        return _JsonLinesWriter(self)

    def destinations(self) -> tuple[tuple[str, str | None], ...]:
        """The file (see :meth:`Sink.destinations`)."""
        return ((file_destination(self.path), None),)

    def spec(self) -> dict[str, Any]:
        return {"kind": "jsonl", "path": self.path}

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.path!r})"


class DuckDBTable:
    """A table for ``Stream.enrich``, read from a DuckDB database by a query (portable in YAML specs).

    ``trusted=False`` (what a spec loaded without ``trust=True`` gets) allows only a single read-only
    SELECT, run on a read-only connection that cannot touch other files, the network or extensions
    (see ``streamlab._sql``); a table you build in Python runs its query as written.

    Examples
    --------
    >>> import duckdb, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ref.duckdb")
    >>> con = duckdb.connect(path)
    >>> _ = con.execute("create table users as select 'u1' as user_id, 'gold' as tier")
    >>> con.close()
    >>> DuckDBTable(path, "select * from users").load().values.tolist()
    [['u1', 'gold']]
    >>> DuckDBTable(path, "copy users to 'x.csv'", trusted=False).load()
    Traceback (most recent call last):
    ...
    ValueError: DuckDBTable: refusing to run "copy users to 'x.csv'" from an untrusted spec: it is a COPY statement, and only a single read-only SELECT (or WITH ... SELECT) query may run
    """

    def __init__(self, path: str | os.PathLike[str], query: str, *, trusted: bool = True) -> None:
        self.path = check_path("DuckDBTable", "path", path)
        if not isinstance(query, str) or not query.strip():
            given = f"an empty query {query!r}" if isinstance(query, str) else f"a {type(query).__name__}"
            raise ValueError(
                f"DuckDBTable({self.path!r}, query): got {given}; pass the SELECT query that reads the "
                "table, e.g. DuckDBTable(path, 'select * from users')"
            )
        self.query = query
        self.trusted = trusted

    @property
    def ref(self) -> str:
        return f"duckdb:{self.path}:{self.query}"

    def load(self) -> pd.DataFrame:
        import duckdb

        from streamlab._sql import connect_restricted, read_only_problem

        if self.trusted:
            con = duckdb.connect(self.path, read_only=True)
        else:
            why = read_only_problem(self.query)
            if why:
                raise ValueError(f"DuckDBTable: refusing to run {self.query!r} from an untrusted spec: {why}")
            con = connect_restricted(self.path)
        try:
            return con.execute(self.query).df()
        except duckdb.Error as e:
            raise ValueError(f"DuckDBTable({self.path!r}): the query {self.query!r} failed: {e}") from e
        finally:
            con.close()

    def __repr__(self) -> str:
        return f"DuckDBTable({self.path!r}, {self.query!r})"
