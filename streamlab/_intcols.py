"""Integer columns that keep every digit when some values are missing.

pandas stores integers with a missing value as float64, which rounds every integer beyond 2**53
(``2**60 + 1`` becomes ``1152921504606846976``): an id or an epoch in nanoseconds would change on
its way through a pipeline, and would no longer equal the exported code's result. These functions
give such columns pandas' nullable ``Int64`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from streamlab._compat import inferred_kind

__all__ = [
    "exact_values",
    "inferred_series",
    "nullable_int_dtypes",
    "nullable_ints",
    "numpy_ints",
    "result_column",
]

_INT64 = pd.Int64Dtype()


def nullable_ints(column: pa.Array | pa.ChunkedArray) -> pd.Series:
    """An arrow int64 column as a pandas ``Int64`` Series (missing values ``pd.NA``).

    Examples
    --------
    >>> import pyarrow as pa
    >>> nullable_ints(pa.array([2**60 + 1, None])).tolist()
    [1152921504606846977, <NA>]
    """
    series: pd.Series = column.to_pandas(types_mapper={pa.int64(): _INT64}.get)
    return series


def inferred_series(values: np.ndarray | list[Any]) -> pd.Series:
    """A Series of ``values`` with the dtype pandas infers, except integers with missing values, and
    values of several types.

    Integers with missing values are ``Int64`` (when they all fit in 64 bits) rather than float64, so
    every digit is kept; ints and floats together (keys of a ``json`` field: ``1`` and ``1.0`` are two
    keys) stay Python objects, each of its own type.

    Examples
    --------
    >>> inferred_series([2**60 + 1, None]).tolist()
    [1152921504606846977, <NA>]
    >>> str(inferred_series([1.5, None]).dtype), inferred_series(["a", None]).dtype == pd.Series(["a"]).dtype
    ('float64', True)
    >>> inferred_series([1, 1.0]).tolist()
    [1, 1.0]
    >>> str(inferred_series(["a", "\\ud800"]).dtype), inferred_series([10**400]).tolist() == [10**400]
    ('object', True)
    """
    series = pd.Series(values, dtype=object, copy=False)
    kind = inferred_kind(series)
    if kind.startswith("mixed"):
        return series
    try:
        inferred = series.infer_objects()
    except UnicodeEncodeError:  # a lone surrogate (an escaped "\ud800" of JSON): no str column holds it
        return series
    except OverflowError:  # pandas 2 on an int beyond a double (pandas 3 keeps the objects): the ints
        return series
    if inferred.dtype.kind == "f" and kind == "integer":
        try:
            return pd.Series(pd.array(series.where(series.notna(), None).tolist(), dtype=_INT64))
        except (OverflowError, TypeError, ValueError):  # beyond 64 bits: the Python ints themselves
            return series
    return inferred


def exact_values(series: pd.Series, missing: Any = None) -> np.ndarray:
    """A column's values as a numpy array, a nullable integer column's as Python ints and ``missing``.

    ``Series.to_numpy`` gives such a column as float64 when a value is missing, rounding integers
    beyond 2**53: two ids would become one value to ``count_distinct``, ``first`` would change one.

    Examples
    --------
    >>> exact_values(pd.Series([2**60 + 1, None], dtype="Int64")).tolist()
    [1152921504606846977, None]
    >>> exact_values(pd.Series([1.5, None])).dtype
    dtype('float64')
    """
    dtype = series.dtype
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iu" and series.hasnans:
        values = np.asarray(series.array, dtype=object)  # Python ints, pd.NA where missing
        values[series.isna().to_numpy()] = missing
        return values
    return series.to_numpy()


def nullable_int_dtypes(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """For ``frame.astype``: each numpy integer column of ``frame`` (but ``exclude``) to its nullable twin.

    A left join fills an unmatched row's table columns with missing values, which would turn a numpy
    integer column into float64.

    Examples
    --------
    >>> frame = pd.DataFrame({"k": [1], "v": [2**60 + 1], "x": [0.5]})
    >>> nullable_int_dtypes(frame, exclude=["k"])
    {'v': Int64Dtype()}
    """
    return {
        str(name): pd.api.types.pandas_dtype(
            ("UInt" if dtype.kind == "u" else "Int") + str(dtype.itemsize * 8)
        )
        for name, dtype in frame.dtypes.items()
        if name not in exclude and isinstance(dtype, np.dtype) and dtype.kind in "iu"
    }


def result_column(values: Any) -> Any:
    """An aggregator's results as a result frame's column: an object array (``first``, ``last``) with the
    dtype pandas infers from its values (:func:`inferred_series`), any other array as it is.

    Examples
    --------
    >>> import numpy as np
    >>> str(result_column(np.array([2**60 + 1, None], dtype=object)).dtype)
    'Int64'
    >>> result_column(np.array([1.5])).tolist()
    [1.5]
    """
    if isinstance(values, np.ndarray) and values.dtype == object:
        return inferred_series(values)
    return values


def numpy_ints(series: pd.Series) -> pd.Series:
    """A nullable integer column without a missing value as its numpy twin (int64 for ``Int64``), so
    compiled paths that take numpy integers still apply; any other column as it is.

    Examples
    --------
    >>> numpy_ints(pd.Series([2**60 + 1], dtype="Int64")).dtype
    dtype('int64')
    >>> str(numpy_ints(pd.Series([1, None], dtype="Int64")).dtype)
    'Int64'
    """
    dtype = series.dtype
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iu" and not series.hasnans:
        return series.astype(dtype.numpy_dtype)  # type: ignore[attr-defined]
    return series


def frame_of_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``pd.DataFrame.from_records(rows)``, or, where pandas 2 cannot build a column (an int beyond a
    double beside floats raises OverflowError there; pandas 3 keeps the objects), each column by
    :func:`inferred_series`: a per-event function's or an export's 400-digit number failed its whole
    batch on Python 3.10's pandas.

    Examples
    --------
    >>> frame_of_rows([{"a": 1.5}, {"a": 10**400}, {}])["a"].iloc[:2].tolist() == [1.5, 10**400]
    True
    """
    try:
        return pd.DataFrame.from_records(rows)
    except OverflowError:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        return pd.DataFrame({c: inferred_series([r.get(c) for r in rows]) for c in columns}, columns=columns)
