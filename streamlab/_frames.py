"""Batches of one stream joined into one frame, each column keeping its type across the batches."""

from __future__ import annotations

import contextlib

import pandas as pd

__all__ = ["concat_batches"]


def concat_batches(batches: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(batches, ignore_index=True)``, where a column that is categorical in every batch
    holding it stays categorical (its categories the union of the batches', sorted as each batch's are):
    pandas makes it object when two batches' categories differ, so the result's dtype would depend on
    how the stream was batched.

    Examples
    --------
    >>> a = pd.DataFrame({"c": pd.Categorical(["red"])})
    >>> b = pd.DataFrame({"c": pd.Categorical(["blue"])})
    >>> out = concat_batches([a, b])
    >>> str(out["c"].dtype), out["c"].tolist(), list(out["c"].cat.categories)
    ('category', ['red', 'blue'], ['blue', 'red'])
    """
    if len(batches) == 1:
        return batches[0]
    categorical = {
        c
        for c in batches[0].columns
        if all(c not in b.columns or isinstance(b[c].dtype, pd.CategoricalDtype) for b in batches)
    }
    if categorical:
        union: dict[str, pd.CategoricalDtype] = {}
        for c in categorical:
            cats = pd.Index([]).append([b[c].cat.categories for b in batches if c in b.columns]).unique()
            with contextlib.suppress(TypeError):  # categories of several types: in order of appearance
                cats = cats.sort_values()
            union[c] = pd.CategoricalDtype(cats)
        batches = [b.astype({c: t for c, t in union.items() if c in b.columns}) for b in batches]
    batches = _ints_beside_floats(_integers_beside_gaps(batches))
    return pd.concat(batches, ignore_index=True)


def _integers_beside_gaps(batches: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """``batches`` where a column of integers in some batches and only missing values (float64 NaN)
    in the others is nullable ``Int64`` in each: pandas would join them as float64, rounding integers
    beyond 2**53, so the column's type and digits would depend on how the stream was batched (an
    expression over an integer field gives float64 NaN in a batch where every value is missing).

    Examples
    --------
    >>> a = pd.DataFrame({"n": [2**60 + 1]})
    >>> b = pd.DataFrame({"n": [float("nan")]})
    >>> concat_batches([a, b])["n"].tolist()
    [1152921504606846977, <NA>]
    """

    def integers(s: pd.Series) -> bool:
        return s.dtype.kind == "i"

    def gaps(s: pd.Series) -> bool:
        return s.dtype.kind == "f" and bool(s.isna().all())

    cast = set()
    for c in batches[0].columns:
        held = [b[c] for b in batches if c in b.columns]
        if any(map(integers, held)) and any(map(gaps, held)) and all(integers(s) or gaps(s) for s in held):
            cast.add(c)
    if not cast:
        return batches
    return [b.astype({c: "Int64" for c in cast if c in b.columns}) for b in batches]


def _ints_beside_floats(batches: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """``batches`` where a column of integers in some batches and of floats in others holds Python
    objects, each value of its own type, in each: pandas would join them as float64, rounding integers
    beyond 2**53 and making ``1`` the float ``1.0``. A window's key or ``first`` of a ``json`` field
    holding ``2**60 + 1`` in one window and ``2.5`` in another is such a column when the two windows
    close apart; one frame of both keeps them as objects (``streamlab._intcols.inferred_series``), as
    the exported code writes them.

    Examples
    --------
    >>> a = pd.DataFrame({"k": [2**60 + 1]})
    >>> b = pd.DataFrame({"k": [2.5]})
    >>> concat_batches([a, b])["k"].tolist()
    [1152921504606846977, 2.5]
    """

    def integers(s: pd.Series) -> bool:
        return s.dtype.kind in "iu"

    def floats(s: pd.Series) -> bool:
        return s.dtype.kind == "f" and bool(s.notna().any())

    cast = set()
    for c in dict.fromkeys(c for b in batches for c in b.columns):  # also a column the first lacks
        held = [b[c] for b in batches if c in b.columns]
        if any(map(integers, held)) and any(map(floats, held)):
            cast.add(c)
    if not cast:
        return batches
    return [b.astype({c: object for c in cast if c in b.columns}) for b in batches]
