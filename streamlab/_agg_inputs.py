"""The values a window's aggregators read from a batch, and the rows they cannot take.

A column of declared type is checked when the pipeline is built (``streamlab._coltypes``). A column of
Python objects (records from a ``ListSource``, a ``json`` field, a map's output) is read here: a numeric
aggregator (sum, mean, min, max, quantile) takes its numbers as float64 (``streamlab._floats``: text
that reads as a number is that number, an integer beyond a double's range is an infinity), and a row
whose value is present but no number goes to the step's dead letters with the reason, as does a row
whose value ``count_distinct`` cannot hash (a dict, a list). Before this the batch failed, and a
restarted pipeline failed on it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from streamlab._dead_letter import dead_letter_frame
from streamlab._detector_record import unfit_key_reason, unfit_value_reason
from streamlab._floats import float_values
from streamlab._intcols import exact_values
from streamlab._keytable import unhashable_rows
from streamlab.aggregators import (
    Aggregator,
    CountDistinctAggregator,
    MaxAggregator,
    MeanAggregator,
    MinAggregator,
    QuantileAggregator,
    SumAggregator,
)

__all__ = ["NUMERIC_AGGREGATORS", "column_values", "split_unfit_values"]

#: Aggregators that read their column as numbers.
NUMERIC_AGGREGATORS = (SumAggregator, MeanAggregator, MinAggregator, MaxAggregator, QuantileAggregator)


def column_values(batch: pd.DataFrame, agg: Aggregator) -> np.ndarray:
    """The values of ``agg``'s column in ``batch``: as numpy numbers for a numeric aggregator, exact
    (Python ints where a nullable integer column has a missing value) for the others."""
    series = batch[agg.column]
    if isinstance(agg, NUMERIC_AGGREGATORS):
        # an object column (JSON numbers, numeric text) is read as numbers for this aggregator only: the
        # batch keeps its values, so ``first``/``last`` of the same column and the late output keep them
        return float_values(series) if series.dtype == object else series.to_numpy()
    return exact_values(series)


def split_unfit_values(
    batch: pd.DataFrame, aggs: Sequence[Aggregator], step_id: str, keys: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``batch`` without the rows its aggregators cannot take (a value that is not a number for a numeric
    aggregator: :func:`column_values` reads the others as numbers) or whose ``keys`` cannot be a key (a
    dict, a list), and those rows as dead letters (None when there are none).

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import agg
    >>> batch = pd.DataFrame({"x": pd.Series(["2", "n/a", 10**400, None], dtype=object)})
    >>> kept, dead = split_unfit_values(batch, [agg.sum("x")], "w")
    >>> len(kept), column_values(kept, agg.sum("x")).tolist(), dead["reason"].tolist()
    (3, [2.0, inf, nan], ["agg.sum('x') needs a number, got str 'n/a'"])
    >>> kept["x"].iloc[1] == 10**400  # the batch keeps its values (agg.last of the column reads them)
    True
    """
    objects = [
        a
        for a in aggs
        if a.column is not None
        and a.column in batch.columns
        and isinstance(a, (*NUMERIC_AGGREGATORS, CountDistinctAggregator))
        and batch[a.column].dtype == object
    ]
    key_objects = [k for k in keys if k in batch.columns and batch[k].dtype == object]
    if (not objects and not key_objects) or len(batch) == 0:
        return batch, None
    bad = np.zeros(len(batch), dtype=bool)
    reasons = np.full(len(batch), None, dtype=object)
    for k in key_objects:
        wrong = unhashable_rows(batch[k])
        if wrong is not None:
            new = np.flatnonzero(wrong & ~bad)
            values = batch[k].to_numpy()
            reasons[new] = [unfit_key_reason(k, values[i]) for i in new]
            bad[new] = True
    numbers: dict[str, np.ndarray] = {}
    for a in objects:
        col = str(a.column)
        series = batch[col]
        if isinstance(a, NUMERIC_AGGREGATORS):
            if col not in numbers:
                numbers[col] = float_values(series)
            wrong = np.isnan(numbers[col]) & series.notna().to_numpy()
        else:
            found = unhashable_rows(series)
            wrong = np.zeros(len(series), dtype=bool) if found is None else found
        new = np.flatnonzero(wrong & ~bad)
        if len(new):
            values = series.to_numpy()
            numeric = isinstance(a, NUMERIC_AGGREGATORS)
            reasons[new] = [unfit_value_reason(a.kind, col, numeric, values[i]) for i in new]
            bad[new] = True
    dead = (
        dead_letter_frame(batch.iloc[np.flatnonzero(bad)], reasons[bad].tolist(), step_id)
        if bad.any()
        else None
    )
    read = batch
    if dead is not None:
        read = read[~bad].reset_index(drop=True)
    return read, dead
