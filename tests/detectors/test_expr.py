"""Conditions over the columns they name: the same results as ``DataFrame.eval``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streamlab.detectors._expr import eval_condition, expression_names

FRAME = pd.DataFrame(
    {
        "amount": [5.0, 600.0, np.nan, 900.0],
        "country": pd.Series(["FR", "US", None, "DE"], dtype="str"),
        "n": [1, 2, 3, 4],
        "unit price": [1.0, 2.0, 3.0, 4.0],
    },
    index=pd.Index([10, 11, 12, 13], name="row"),
)


@pytest.mark.parametrize(
    "expr",
    [
        "amount > 500",
        "amount >= 500 and country != 'FR'",
        "amount > 10 & n < 4 | country == 'FR'",
        "not (n > 2)",
        "country.str.startswith('D')",
        "country in ['FR', 'DE']",
        "n * 2 + amount > 10",
        "1 < n < 4",
        "`unit price` > 1",  # backticks: DataFrame.eval itself
        "row > 11",  # the index's name: DataFrame.eval itself
        "abs(n - 3) < 1",  # a function: DataFrame.eval itself
    ],
)
def test_condition_equals_dataframe_eval(expr: str) -> None:
    expected = FRAME.eval(expr, engine="python")
    pd.testing.assert_series_equal(eval_condition(FRAME, expr), expected)


def test_names_are_bare_names_only() -> None:
    assert expression_names("a > 1 and b.str.len() > c") == ("a", "b", "c")
    assert expression_names("@x > 1") is None
