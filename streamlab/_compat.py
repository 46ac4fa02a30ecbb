"""What differs between the pandas versions streamlab runs on: pandas 3 (Python 3.11 and later) and
pandas 2.x (Python 3.10, whose newest pandas is 2.3). The rest of the package asks here, not
``pd.__version__``.

Examples
--------
>>> inferred_kind(pd.Series([1.5, None], dtype=object)), inferred_kind([1, 2.5, None])
('floating', 'mixed-integer-float')
>>> text_column(pd.Series([1, None], dtype=object)).isna().tolist()
[False, True]
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PANDAS_2_3",
    "PANDAS_3",
    "arrow_table",
    "as_pandas_3",
    "concat_rows",
    "duplicated_rows",
    "factorize",
    "inferred_kind",
    "object_index",
    "read_json_lines_as_written",
    "text_column",
    "without_python_support_notices",
]

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3
"""pandas >= 3: strings are ``str`` columns, copy-on-write, date-times keep the unit they are read in."""

PANDAS_2_3 = tuple(int(p) for p in pd.__version__.split(".")[:2]) >= (2, 3)
"""pandas >= 2.3 (Python 3.10's newest, and pandas 3): the versions streamlab's compiled expressions are
proven equal to ``DataFrame.eval`` on (``streamlab._expr.compile_expression``)."""

_DATES_LEFT_ALONE = tuple(int(p) for p in pd.__version__.split(".")[:2]) >= (3, 1)


def read_json_lines_as_written(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A JSON-lines file as a frame, each value as written: no dtype nor date guessing.

    pandas 3.1 leaves dates alone with ``dtype=False`` and deprecated ``convert_dates`` (pandas 4
    removes it); before, dates were guessed from column names (``*_time``, ``*_at``, ``date``) unless
    ``convert_dates=False``. ``utf-8-sig``: a byte order mark at the start is no data.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "e.jsonl")
    >>> _ = open(path, "w").write('{"elapsed_time": 40000000}\\n')
    >>> read_json_lines_as_written(path)["elapsed_time"].tolist()
    [40000000]
    """
    if _DATES_LEFT_ALONE:
        return pd.read_json(path, lines=True, dtype=False, encoding="utf-8-sig")
    return pd.read_json(path, lines=True, dtype=False, convert_dates=False, encoding="utf-8-sig")


_NO_DOWNCASTING = not PANDAS_3 and "no_silent_downcasting" in dir(pd.options.future)  # pandas 2.2, 2.3


def as_pandas_3() -> contextlib.AbstractContextManager[Any]:
    """pandas 3's behaviour where pandas 2 has an option for it: an object column's ``fillna``, ``where``
    and ``replace`` keep the objects (pandas 2 casts ``[None].fillna(1.0)`` to float64 and ``fillna(1)``
    to int64, where pandas 3, and the exported code reading a row, keep the float 1.0 and the int 1).

    Examples
    --------
    >>> with as_pandas_3():
    ...     pd.Series([None], dtype=object).fillna(1.0).dtype
    dtype('O')
    """
    if _NO_DOWNCASTING:
        return pd.option_context("future.no_silent_downcasting", True)
    return contextlib.nullcontext()


def inferred_kind(values: Any) -> str:
    """``pd.api.types.infer_dtype(values, skipna=True)`` as pandas 3 answers it.

    pandas 2 reads ``None`` beside floats as an int: ``[1.5, None]`` is ``"mixed-integer-float"`` there
    (``"floating"`` on pandas 3), the answer for ints and floats together, which must keep each value's
    type (``1`` and ``1.0`` are two keys). So on pandas 2 that answer is asked again of the present values.
    """
    kind: str = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "mixed-integer-float" and not PANDAS_3:
        present = np.asarray(values, dtype=object)
        kind = pd.api.types.infer_dtype(present[~pd.isna(present)], skipna=True)
    return kind


def text_column(col: pd.Series) -> pd.Series:
    """``col.astype("str")`` as pandas 3 gives it: each value as text, a missing value still missing.

    pandas 2 writes None as the text ``'None'`` and NaN as ``'nan'`` there; its text column is ``object``,
    with None where a value is missing.
    """
    text = col.astype("str")
    return text if PANDAS_3 else text.where(col.notna(), None)


_APART = object()  # not a string: pandas 2 then numbers the array by its objects


def factorize(values: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
    """``pd.factorize(values, **kwargs)``, each lone surrogate its own value on pandas 2 too.

    pandas 2 numbers an object array of strings alone by their UTF-8 text, which a lone surrogate (an
    escaped ``"\\ud800"`` of JSON) has none of: ``"\\ud800"`` and ``"\\udfff"`` were one key there. With
    one more value that is no string pandas 2 numbers them as Python objects, as pandas 3 does.
    ``sort`` is not supported.

    Examples
    --------
    >>> codes, uniques = factorize(pd.Series(["\\ud800", "\\udfff", "a", "\\ud800"], dtype=object))
    >>> codes.tolist(), len(uniques)
    ([0, 1, 2, 0], 3)
    """
    dtype = getattr(values, "dtype", None)
    if PANDAS_3 or not isinstance(dtype, np.dtype) or dtype.kind != "O" or not _lone_surrogates(values):
        return pd.factorize(values, **kwargs)
    objects = np.empty(len(values) + 1, dtype=object)
    objects[:-1] = values
    objects[-1] = _APART
    codes, uniques = pd.factorize(objects, **kwargs)
    uniques = uniques[:-1]  # _APART, last to appear
    return codes[:-1], pd.Index(uniques, dtype=object) if isinstance(
        values, (pd.Series, pd.Index)
    ) else uniques


def _lone_surrogates(values: Any) -> bool:
    """Whether ``values`` (objects) are strings alone, one of which UTF-8 cannot encode."""
    if pd.api.types.infer_dtype(values, skipna=False) != "string":
        return False
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def duplicated_rows(frame: pd.DataFrame) -> np.ndarray:
    """``frame.duplicated()``, each lone surrogate its own value on pandas 2 too (see :func:`factorize`).

    Examples
    --------
    >>> duplicated_rows(pd.DataFrame({"v": pd.Series(["\\ud800", "\\udfff", "\\ud800"], dtype=object)})).tolist()
    [False, False, True]
    """
    if PANDAS_3 or not len(frame.columns):
        return np.asarray(frame.duplicated(), dtype=bool)
    codes = pd.DataFrame(
        {i: factorize(frame[c], use_na_sentinel=False)[0] for i, c in enumerate(frame.columns)}
    )
    return np.asarray(codes.duplicated(), dtype=bool)


def object_index(values: Any) -> pd.Index:
    """``pd.Index(values, tupleize_cols=False)``, Python ints beyond a double kept as objects on pandas 2 too
    (which raised OverflowError trying floats, where pandas 3 keeps the objects).

    Examples
    --------
    >>> object_index(np.array([10**400, 1], dtype=object)).tolist() == [10**400, 1]
    True
    """
    index: pd.Index
    try:
        index = pd.Index(values, tupleize_cols=False)
    except OverflowError:
        index = pd.Index(values, dtype=object, tupleize_cols=False)
    return index


@contextlib.contextmanager
def without_python_support_notices() -> Iterator[None]:
    """Import Google's client libraries without their notice that this Python is past Google's support
    window (a ``FutureWarning`` from ``google.api_core`` on Python 3.10 since 2026-10, at the first
    import of ``google.pubsub_v1`` or ``google.cloud.bigquery``): streamlab supports the Python it runs
    on, the user can act on the notice only by upgrading Python, and it filled notebook cells that read
    Pub/Sub or BigQuery. Other warnings pass.

    Examples
    --------
    >>> with without_python_support_notices():
    ...     import json
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core")
        yield


def concat_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(parts, ignore_index=True)`` without pandas 2's notice that a part's all-missing column
    will count in the result's type in a future version (a ``FutureWarning`` per batch where some rows of a
    ``with_columns`` lack a value): streamlab keeps pandas 2's result there, as it runs.

    Examples
    --------
    >>> a = pd.DataFrame({"t": pd.to_datetime(["2024-01-01"], utc=True)})
    >>> concat_rows([a, pd.DataFrame({"t": [float("nan")]})])["t"].isna().tolist()
    [False, True]
    """
    if PANDAS_3:
        return pd.concat(parts, ignore_index=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The behavior of DataFrame concatenation with empty", FutureWarning)
        return pd.concat(parts, ignore_index=True)


def arrow_table(frame: pd.DataFrame) -> Any:
    """``pa.Table.from_pandas(frame, preserve_index=False)``, with each time-zone-aware column handed to
    Arrow as its UTC instants and given its zone back: pyarrow reads such a column through
    ``Series.values``, which pandas 3.1 deprecates with a ``Pandas4Warning``, an error where warnings are
    errors (a user's test suite), so a Parquet sink's flush failed there on every retry. The table is
    the same (types, values, zones).

    Examples
    --------
    >>> frame = pd.DataFrame({"t": pd.to_datetime([0, None], unit="s", utc=True).tz_convert("Asia/Kolkata")})
    >>> arrow_table(frame).schema.field("t").type.tz
    'Asia/Kolkata'
    """
    import pyarrow as pa

    zoned = {c: d.tz for c, d in frame.dtypes.items() if isinstance(d, pd.DatetimeTZDtype)}
    if not zoned or not frame.columns.is_unique:
        return pa.Table.from_pandas(frame, preserve_index=False)
    naive = frame.copy(deep=False)
    for c in zoned:
        naive[c] = frame[c].dt.tz_convert(None)
    table = pa.Table.from_pandas(naive, preserve_index=False)
    for c, tz in zoned.items():
        i = table.schema.get_field_index(str(c))
        zone = pa.lib.tzinfo_to_string(tz)
        table = table.set_column(
            i, table.field(i).name, table.column(i).cast(pa.timestamp(table.field(i).type.unit, zone))
        )
    return table
