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
from streamlab._detector_record import shown_value, unfit_key_reason, unfit_value_reason
from streamlab._floats import float_values
from streamlab._intcols import exact_values
from streamlab._keytable import unhashable_rows
from streamlab.aggregators import (
    Aggregator,
    AggregatorStore,
    CountDistinctAggregator,
    MaxAggregator,
    MeanAggregator,
    MinAggregator,
    QuantileAggregator,
    SumAggregator,
)

__all__ = ["NUMERIC_AGGREGATORS", "add_rows", "column_values", "split_unfit_values"]

#: Aggregators that read their column as numbers.
NUMERIC_AGGREGATORS = (SumAggregator, MeanAggregator, MinAggregator, MaxAggregator, QuantileAggregator)


def column_values(batch: pd.DataFrame, agg: Aggregator) -> np.ndarray:
    """The values of ``agg``'s column in ``batch``: as numpy numbers for a numeric aggregator, exact
    (Python ints where a nullable integer column has a missing value) for the others."""
    series = batch[agg.column]
    if isinstance(agg, NUMERIC_AGGREGATORS):
        # an object column (JSON numbers, numeric text) is read as numbers for this aggregator only: the
        # batch keeps its values, so ``first``/``last`` of the same column and the late output keep them
        # so is a nullable column (boolean, Int64, Float64): its missing values are NaN, as a float
        # column's (a nullable boolean's ``to_numpy()`` holds ``pd.NA``, which no float() reads)
        dtype = series.dtype
        nullable = isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "biuf"
        return float_values(series) if nullable or series.dtype == object else series.to_numpy()
    return exact_values(series)


def split_unfit_values(
    batch: pd.DataFrame,
    aggs: Sequence[Aggregator],
    step_id: str,
    keys: Sequence[str] = (),
    partitions: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``batch`` without the rows its aggregators cannot take (a value that is not a number for a numeric
    aggregator: :func:`column_values` reads the others as numbers) or whose ``keys`` cannot be a key (a
    dict, a list), and those rows as dead letters (None when there are none). So are rows whose
    ``partitions`` (the ``watermark_by`` columns) hold such a value: no watermark can be kept for it.

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
    key_objects = [k for k in (*keys, *partitions) if k in batch.columns and batch[k].dtype == object]
    if (not objects and not key_objects) or len(batch) == 0:
        return batch, None
    bad = np.zeros(len(batch), dtype=bool)
    reasons = np.full(len(batch), None, dtype=object)
    for k in key_objects:
        wrong = unhashable_rows(batch[k])
        if wrong is not None:
            new = np.flatnonzero(wrong & ~bad)
            values = batch[k].to_numpy()
            if k in keys:
                reasons[new] = [unfit_key_reason(k, values[i]) for i in new]
            else:
                reasons[new] = [
                    f"watermark_by column {k!r} holds {shown_value(values[i])}, which cannot be a partition"
                    for i in new
                ]
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


def add_rows(
    batch: pd.DataFrame,
    aggs: Sequence[Aggregator],
    stores: Sequence[AggregatorStore],
    group: np.ndarray,
    n_groups: int,
    slots: np.ndarray,
    ts: np.ndarray,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Add the (row, window) pairs of ``batch`` to ``stores``: pair ``i`` is row ``rows[i]`` (row ``i``
    when ``rows`` is None), in group ``group[i]`` whose slot is ``slots[group[i]]``.

    Custom aggregators (user code, ``AggregatorStore.user_code``) go first; the rows their ``add``
    raises on are left out of every aggregator after them and returned, with the reason, for the
    step's dead letters (sorted batch positions). A row that a second custom aggregator fails on stays
    in the first one's state.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from streamlab import agg
    >>> from streamlab.aggregators import Aggregator
    >>> class Positive(Aggregator):
    ...     def initial(self):
    ...         return 0.0
    ...     def add(self, state, values):
    ...         if (values < 0).any():
    ...             raise ValueError("negative")
    ...         return state + float(values.sum())
    >>> aggs = [agg.count(), Positive("x")]
    >>> stores = [a.store() for a in aggs]
    >>> for st in stores:
    ...     st.grow(1)
    >>> batch = pd.DataFrame({"x": [1.0, -2.0, 3.0]})
    >>> g = np.zeros(3, dtype=np.int64)
    >>> add_rows(batch, aggs, stores, g, 1, np.array([0]), np.zeros(3, dtype=np.int64))
    (array([1]), ["Positive('x').add raised ValueError: negative"])
    >>> stores[0].results(np.array([0])).tolist(), stores[1].states[0]
    ([2], 4.0)
    """
    pair_rows = np.arange(len(group)) if rows is None else rows
    failed: dict[int, str] = {}
    keep: np.ndarray | None = None
    known = 0  # how many failed rows ``keep`` leaves out
    for i in sorted(range(len(aggs)), key=lambda i: not stores[i].user_code):
        agg, st = aggs[i], stores[i]
        if len(failed) != known:
            keep, known = (
                ~np.isin(pair_rows, np.fromiter(failed, dtype=np.int64, count=len(failed))),
                len(failed),
            )
        values = None
        if agg.column is not None:
            col = column_values(batch, agg)
            values = col if rows is None else col[rows]
            if keep is not None:
                values = values[keep]
        if keep is None:
            st.add(group, n_groups, slots, values, ts)
        else:
            st.add(group[keep], n_groups, slots, values, ts[keep])
        if st.user_code and st.failed:
            kept_rows = pair_rows if keep is None else pair_rows[keep]
            for pos, reason in st.failed:
                failed.setdefault(int(kept_rows[pos]), reason)
    bad = np.array(sorted(failed), dtype=np.int64)
    return bad, [failed[int(r)] for r in bad]
