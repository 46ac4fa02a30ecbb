"""Expressions of ``filter`` and ``with_columns`` (``streamlab._expr``): what they compute on a batch."""

from __future__ import annotations

import pandas as pd
import pytest

from streamlab import Pipeline
from streamlab._expr import eval_condition, eval_expression
from streamlab.testing import ListSource


@pytest.mark.parametrize("dtype", ["str", object])
def test_text_joined_with_a_string_constant(dtype: object) -> None:
    # pandas' DataFrame.eval refuses a string constant in arithmetic ("unsupported operand type(s) for +:
    # 'str' and '<class 'str'>'"), so every row of with_columns(r="s + '!'") went to dead letter
    batch = pd.DataFrame({"s": pd.Series(["a", None, "b"], dtype=dtype)})  # type: ignore[call-overload]
    for expr, want in [("s + '!'", ["a!", None, "b!"]), ("'<' + s + '>'", ["<a>", None, "<b>"])]:
        got = eval_expression(batch, expr)
        assert [None if pd.isna(v) else v for v in got] == want, expr
    assert eval_expression(batch, "s + '!' == 'a!'").tolist() == [True, False, False]
    with pytest.raises(TypeError):
        eval_expression(batch.fillna("x"), "s + 1")  # text plus a number is still an error


def test_with_columns_joins_a_string_column_and_a_literal() -> None:
    lines = [b'{"timestamp": 1, "s": "a"}', b'{"timestamp": 2, "s": "b"}']
    p = Pipeline(ListSource(lines))
    p.parse({"timestamp": "timestamp", "s": "string"}).with_columns(r="s + '!'", q="s + s")
    out = p.run().outputs
    assert list(out["with_columns"]["r"]) == ["a!", "b!"] and list(out["with_columns"]["q"]) == ["aa", "bb"]
    assert len(out["with_columns.dead_letter"]) == 0


@pytest.mark.parametrize("dtype", ["str", object])
def test_text_joined_where_pandas_evaluates_the_expression(dtype: object) -> None:
    # `in` and constant arithmetic are left to DataFrame.eval, which refused the string constant as well
    batch = pd.DataFrame({"s": pd.Series(["a", None, "b"], dtype=dtype), "n": [0, 1, 2]})  # type: ignore[call-overload]
    assert eval_condition(batch, "s + '!' in ['a!', 'x']").tolist() == [True, False, False]
    assert eval_condition(batch, "s + '!' == 'b!' and n == (1 + 1)").tolist() == [False, False, True]
    assert eval_condition(batch, "s == 'a' + ''").tolist() == [True, False, False]
