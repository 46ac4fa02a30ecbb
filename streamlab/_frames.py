"""Batches of one stream joined into one frame, each column keeping its type across the batches."""

from __future__ import annotations

import contextlib
from typing import Any

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
    types = [dict(zip(b.columns, b.dtypes)) for b in batches]  # one look at each batch's types
    columns = list(dict.fromkeys(c for t in types for c in t))  # also a column the first batch lacks
    categorical = {
        c
        for c in columns
        if all(isinstance(t.get(c, pd.CategoricalDtype()), pd.CategoricalDtype) for t in types)
    }
    union: dict[str, pd.CategoricalDtype] = {}
    for c in categorical:
        cats = pd.Index([]).append([t[c].categories for t in types if c in t]).unique()
        with contextlib.suppress(TypeError):  # categories of several types: in order of appearance
            cats = cats.sort_values()
        union[c] = pd.CategoricalDtype(cats)
    recasts = [{c: u for c, u in union.items() if c in t and not _same_categories(t[c], u)} for t in types]
    # a batch whose categories are already the union's, in its order and type, as it is
    batches = [b.astype(recast) if recast else b for b, recast in zip(batches, recasts)]
    batches = _ints_beside_floats(_integers_beside_gaps(batches, types, columns), types, columns)
    return pd.concat(batches, ignore_index=True)


def _same_categories(dtype: Any, union: pd.CategoricalDtype) -> bool:
    """Whether ``dtype`` holds the categories of ``union`` in its order and of its type (``Index.equals``
    takes ``'a'`` as text and as an object, or ``1`` and ``1.0``, for the same; pandas joins such
    columns as objects)."""
    cats = getattr(dtype, "categories", None)
    return cats is not None and cats.dtype == union.categories.dtype and cats.equals(union.categories)


def _integers_beside_gaps(
    batches: list[pd.DataFrame], types: list[dict[str, Any]], columns: list[str]
) -> list[pd.DataFrame]:
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

    cast = set()
    for c in columns:
        held = [(b, t[c]) for b, t in zip(batches, types) if c in t]
        ints = [t.kind == "i" for _, t in held]
        if not any(ints) or not all(i or t.kind == "f" for i, (_, t) in zip(ints, held)):
            continue
        gaps = [not i and bool(b[c].isna().all()) for i, (b, _) in zip(ints, held)]
        if any(gaps) and all(i or g for i, g in zip(ints, gaps)):
            cast.add(c)
    if not cast:
        return batches
    return [b.astype({c: "Int64" for c in cast if c in b.columns}) for b in batches]


def _ints_beside_floats(
    batches: list[pd.DataFrame], types: list[dict[str, Any]], columns: list[str]
) -> list[pd.DataFrame]:
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

    cast = set()
    for c in columns:
        held = [(b, t[c]) for b, t in zip(batches, types) if c in t]
        if any(t.kind in "iu" for _, t in held) and any(
            t.kind == "f" and b[c].notna().any() for b, t in held
        ):
            cast.add(c)
    if not cast:
        return batches
    return [b.astype({c: object for c in cast if c in b.columns}) for b in batches]
