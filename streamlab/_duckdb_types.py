"""How DuckDBSink types a column the stream does not declare, whatever the batches it arrives in.

A new table's column takes the type of its first batch's values, which may show one kind of value of
several (text only, where later batches hold numbers too). So a batch whose values are of another
kind than the table's column widens that column to the type the whole stream written at once would
have given it: ``JSON`` for values of several kinds, ``DOUBLE`` for an integer column meeting
fractions. The type is then a function of the values written, not of how the stream was cut.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["JSON_KINDS", "value_family", "widened_type"]

#: pandas' inferred kinds of an object column that holds JSON values: objects and arrays ("mixed"),
#: values of several types, or numbers as Python objects (a ``json`` field whose batch held only numbers)
JSON_KINDS = ("mixed", "mixed-integer", "mixed-integer-float", "integer", "floating", "decimal")

#: the family of each kind pandas infers for a column of Python objects (other kinds: unknown)
_OBJECT_FAMILIES = {
    "string": "text",
    "bytes": "blob",
    "date": "date",
    "time": "time",
    "timedelta": "interval",
    "datetime": "timestamp",
    "datetime64": "timestamp",
    "boolean": "bool",
    **dict.fromkeys(JSON_KINDS, "json"),
}

#: the family of each DuckDB type a column of the sink's tables can have (others: unknown)
_TABLE_FAMILIES = {
    "VARCHAR": "text",
    "JSON": "json",
    "BLOB": "blob",
    "DATE": "date",
    "TIME": "time",
    "TIME WITH TIME ZONE": "time",
    "INTERVAL": "interval",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "BOOLEAN": "bool",
    "FLOAT": "float",
    "DOUBLE": "float",
    **dict.fromkeys(
        ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"),
        "int",
    ),
    "UBIGINT": "int",
    "UHUGEINT": "int",
}


def value_family(col: pd.Series) -> str | None:
    """The family of the values of one batch's column (``"text"``, ``"int"``, ``"json"``...), from its
    dtype or, for Python objects, their kind; None when it holds no value or values of an unknown kind.

    Examples
    --------
    >>> value_family(pd.Series(["a", None], dtype=object)), value_family(pd.Series(["a", 5], dtype=object))
    ('text', 'json')
    >>> value_family(pd.Series([1.5, None])), value_family(pd.Series([None, None], dtype=object))
    ('float', None)
    """
    dtype = col.dtype
    if not len(col) or bool(col.isna().all()):
        return None
    if isinstance(dtype, pd.CategoricalDtype):
        return value_family(pd.Series(dtype.categories))  # DuckDB gets its values, not an ENUM
    kind = dtype.kind
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    if kind == "b":
        return "bool"
    if kind == "M":
        return "timestamp"
    if kind == "m":
        return "interval"
    if kind == "c":
        return "json"
    if isinstance(dtype, pd.StringDtype):
        return "text"
    if not isinstance(dtype, np.dtype):  # another extension dtype (Arrow's, say): text or unknown
        return "text" if pd.api.types.is_string_dtype(dtype) else None
    return _OBJECT_FAMILIES.get(pd.api.types.infer_dtype(col, skipna=True))


def _whole_int64s(col: pd.Series) -> bool:
    """Whether every value of a float column is missing or a whole number an integer column takes."""
    f = col.to_numpy(dtype="float64", na_value=np.nan)
    f = f[~np.isnan(f)]
    return bool(np.all(np.isfinite(f) & (f == np.floor(f)) & (np.abs(f) < 2.0**63)))


def widened_type(table_type: str, col: pd.Series) -> str | None:
    """The type a table's column of ``table_type`` must take to hold the values of one batch's ``col``
    as the whole stream written at once would: None when they fit it (values of its family, or any
    value in a ``JSON`` column); ``DOUBLE`` for an integer column meeting numbers that are not whole
    (DuckDB would round them); ``JSON`` for values of another family (text in a ``DATE`` column, numbers
    in a ``VARCHAR`` one). A column of an unknown type (a ``STRUCT``...) or values of an unknown kind:
    None, left to the insert (which rejects what it cannot cast).

    Examples
    --------
    >>> widened_type("VARCHAR", pd.Series(["a", 5], dtype=object)), widened_type("JSON", pd.Series([5]))
    ('JSON', None)
    >>> widened_type("BIGINT", pd.Series([1.0, None])), widened_type("BIGINT", pd.Series([2.5]))
    (None, 'DOUBLE')
    >>> widened_type("DATE", pd.Series(["2024-01-02"])), widened_type("DOUBLE", pd.Series([7]))
    ('JSON', None)
    """
    table = _TABLE_FAMILIES.get(table_type)
    values = value_family(col)
    if table is None or values is None or table in ("json", values):
        return None
    if table == "float" and values == "int":
        return None  # pandas' own union of the two: floats
    if table == "int" and values == "float":
        return None if _whole_int64s(col) else "DOUBLE"
    return "JSON"
