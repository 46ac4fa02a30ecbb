"""Columns read as float64 the one way every numeric step reads them.

What is not a number becomes NaN (as ``pandas.to_numeric(errors="coerce")``), and an integer beyond a
double's range becomes an infinity of its sign, as the text ``"1e400"`` does. pandas raises
``OverflowError`` on such an integer in an object column (a 400-digit JSON number kept as a Python int)
instead of coercing it; a step that let that escape would fail its batch on every restart. The
per-record code carried into exported programs reads a value the same way
(``streamlab._detector_record.as_number``); a property test holds the two together.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from streamlab._compat import PANDAS_3
from streamlab._detector_record import as_number

__all__ = ["float_values"]


def _clipped(value: Any) -> Any:
    """An int too large for a double as the infinity of its sign; any other value unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def float_values(col: pd.Series) -> np.ndarray:
    """``col`` as a float64 array: numbers as they are, anything else NaN, huge integers ±inf.

    Parameters
    ----------
    col
        Any column: numpy numbers are read without a copy where pandas allows it.

    Returns
    -------
    numpy.ndarray
        float64, one value per row.

    Examples
    --------
    >>> import pandas as pd
    >>> float_values(pd.Series([1, 2])).tolist()
    [1.0, 2.0]
    >>> float_values(pd.Series(["3", "x", None, 10**400, -(10**400), "1e400"], dtype=object)).tolist()
    [3.0, nan, nan, inf, -inf, inf]
    >>> float_values(pd.Series([1.5, 2j], dtype=object)).tolist()
    [1.5, nan]
    """
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return col.to_numpy(dtype=np.float64)
    try:
        numbers = pd.to_numeric(col, errors="coerce")
    except OverflowError:
        clipped = pd.Series([_clipped(v) for v in col.tolist()], index=col.index, dtype=object)
        numbers = pd.to_numeric(clipped, errors="coerce")
    if numbers.dtype.kind in "cO":  # complex numbers (or what pandas left as objects): value by value
        return np.fromiter((as_number(v) for v in col.tolist()), dtype=np.float64, count=len(col))
    out: np.ndarray = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    if not PANDAS_3 and col.dtype == object:
        # pandas 2 reads text beyond a double ("1e400") as missing and rounds the text of an int beyond
        # int64 otherwise than Python: text is read as the per-record rule (and pandas 3) reads it
        values = col.to_numpy()
        for i, v in enumerate(values.tolist()):
            if isinstance(v, str):
                out[i] = as_number(v)
    return out
