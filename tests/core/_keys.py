"""Join keys of every dtype with missing values, and the rule joins follow: a missing key (None, NaN,
``pd.NA``) never matches, as SQL's NULL."""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamlab._detector_record import unjoinable

KEY_VALUES: dict[str, list[Any]] = {
    "object": ["a", "b", None, float("nan")],
    "string": ["a", "b", None],
    "category": ["a", "b", None],
    "Int64": [1, 2, None],
    "float64": [1.0, 2.0, float("nan")],
}
"""Key values by dtype: two keys, then the missing ones."""


def key_column(values: list[Any], dtype: str) -> pd.Series:
    """``values`` as a key column of ``dtype`` (missing values as that dtype holds them)."""
    if dtype == "object":
        return pd.Series(values, dtype=object)
    if dtype == "category":
        return pd.Series(pd.Categorical(values, categories=["a", "b"]))
    return pd.Series(values, dtype=dtype)


def same_key(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """The join's key rule, one pair of keys at a time (the exported code's ``unjoinable``): equal, and
    no part missing. (Keys here are Python values: the dtype's missing value is None or NaN.)"""
    return not unjoinable(a) and not unjoinable(b) and a == b
