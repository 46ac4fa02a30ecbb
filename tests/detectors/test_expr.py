"""Conditions over the columns they name: the same results as ``DataFrame.eval``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab._compat import PANDAS_2_3, PANDAS_3
from streamlab._expr import (
    _str_methods_read,
    by_presence,
    compile_expression,
    eval_condition,
    eval_expression,
    expression_names,
)

TEXT_AS_PANDAS_3 = pd.StringDtype("python", na_value=np.nan) if PANDAS_2_3 and not PANDAS_3 else None

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
    # the oracle reads text as pandas 3 holds it (a missing string's test is False, streamlab's rule and
    # its exported code's); pandas 2's object text answers None there, which eval_condition reads on
    # pandas 2.3 as pandas 3's text too
    oracle = FRAME if PANDAS_3 or not PANDAS_2_3 else FRAME.astype({"country": TEXT_AS_PANDAS_3})
    expected = oracle.eval(expr, engine="python")
    pd.testing.assert_series_equal(eval_condition(FRAME, expr), expected)


def pandas_3_text(frame: pd.DataFrame, expr: str) -> pd.DataFrame:
    """``frame`` with the text columns whose ``.str`` methods ``expr`` reads as pandas 3 holds text: what
    streamlab evaluates on pandas 2.3 (``as_expression_input``), the oracle's input there."""
    if TEXT_AS_PANDAS_3 is None:
        return frame
    read = [n for n in _str_methods_read(expr) if n in frame.columns and frame[n].dtype == object]
    return frame.astype(dict.fromkeys(read, TEXT_AS_PANDAS_3)) if read else frame


def test_names_are_bare_names_only() -> None:
    assert expression_names("a > 1 and b.str.len() > c") == ("a", "b", "c")
    assert expression_names("@x > 1") is None


# --- the compiled form against DataFrame.eval (the oracle) on random frames and expressions

COLUMNS = {
    "x": st.one_of(st.floats(-5, 5), st.just(float("nan"))),
    "y": st.one_of(st.sampled_from([0.0, 1.0, -2.5]), st.just(float("nan"))),
    "n": st.integers(-3, 3),
    "flag": st.booleans(),
    "s": st.sampled_from(["FR", "US", "DE", None]),
}
NUMBERS = ["x", "y", "n", "2", "0.5", "-1", "x.fillna(1.0)", "s.str.len()", "n.abs()"]
STRINGS = ["s", "'FR'", "'DE'", "s.str.lower()"]
CONSTANTS = {"2", "0.5", "-1"}


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(
        st.sampled_from(["cmp", "str", "flag", "not", "bool", "chain"] if depth < 2 else ["cmp", "str"])
    )
    if kind == "cmp":
        a, b = draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS))
        if draw(st.booleans()):
            c = draw(st.sampled_from(NUMBERS))
            if a in CONSTANTS and c in CONSTANTS:  # pandas folds it; the compiled form leaves it to pandas
                c = "x"
            a = f"({a} {draw(st.sampled_from(['+', '-', '*', '/']))} {c})"
        return f"{a} {draw(st.sampled_from(['<', '<=', '>', '>=', '==', '!=']))} {b}"
    if kind == "str":
        a, b = draw(st.sampled_from(STRINGS)), draw(st.sampled_from(STRINGS))
        return f"{a} {draw(st.sampled_from(['==', '!=']))} {b}"
    if kind == "flag":
        return "flag"
    if kind == "not":
        return f"not ({draw(conditions(depth + 1))})"
    if kind == "chain":
        return f"{draw(st.sampled_from(NUMBERS))} < n <= {draw(st.sampled_from(NUMBERS))}"
    op = draw(st.sampled_from(["and", "or", "&", "|"]))
    return f"{draw(conditions(depth + 1))} {op} {draw(conditions(depth + 1))}"


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    data = {c: draw(st.lists(s, min_size=n, max_size=n)) for c, s in COLUMNS.items()}
    frame = pd.DataFrame(data)
    frame["s"] = frame["s"].astype(draw(st.sampled_from(["str", "object"])))
    return frame.set_axis(pd.RangeIndex(3, 3 + n))


def outcome(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        return type(exc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), expr=st.one_of(conditions(), st.sampled_from(NUMBERS)))
def test_compiled_form_equals_dataframe_eval(frame: pd.DataFrame, expr: str) -> None:
    # rows missing a value the expression computes with are evaluated apart (by_presence), by both
    oracle = pandas_3_text(frame, expr)
    expected = outcome(lambda: by_presence(oracle, expr, lambda part: part.eval(expr, engine="python")))
    fn = compile_expression(expr)
    # the grammar stays inside what the compiled form covers (pandas 2.3 and 3; before, eval decides)
    assert (fn is not None) == PANDAS_2_3, expr
    got = outcome(lambda: eval_expression(frame, expr))
    if isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(got, expected, check_names=False)
    elif isinstance(expected, type):
        assert got is expected
    else:
        assert got == expected
    # the condition form agrees with pandas too (the pattern step's masks; it evaluates the whole batch)
    plain = outcome(lambda: oracle.eval(expr, engine="python"))
    cond = outcome(lambda: eval_condition(frame, expr))
    if isinstance(plain, pd.Series):
        pd.testing.assert_series_equal(cond, plain, check_names=False)


def test_not_compiled_falls_back() -> None:
    for expr in ["n in [1, 2]", "abs(n) > 1", "`unit price` > 1", "@v > 1", "x > 1\ny < 2", "x = 1"]:
        assert compile_expression(expr) is None or expr == "x = 1"
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-02-01"]), "f": np.float32([1, 2])})
    for expr in ["t > '2024-01-15'", "f > 1.1", "f * 1.1"]:
        assert (compile_expression(expr) is not None) == PANDAS_2_3  # those operands: eval when run
        pd.testing.assert_series_equal(eval_expression(frame, expr), frame.eval(expr, engine="python"))


@settings(max_examples=60, deadline=None)
@given(
    a=st.lists(st.one_of(st.none(), st.integers(-(2**62), 2**62)), min_size=1, max_size=40),
    b_missing=st.lists(st.booleans(), min_size=40, max_size=40),
    expr=st.sampled_from(["a + b", "a // 3 + b", "a * b - c", "(a + 1) * 2"]),
)
def test_rows_missing_different_columns_give_what_each_row_gives_alone(
    a: list[int | None], b_missing: list[bool], expr: str
) -> None:
    # rows missing a beside rows missing b (and c): each missing pattern is evaluated apart, in one pass
    # (it recursed on the whole batch when every row missed one column or another)
    n = len(a)
    b = [None if gone else i for i, gone in enumerate(b_missing[:n])]
    c = [None if i % 3 == 0 else i for i in range(n)]
    batch = pd.DataFrame({k: pd.array(v, dtype="Int64") for k, v in {"a": a, "b": b, "c": c}.items()})
    got = eval_expression(batch, expr)
    alone = [eval_expression(batch.iloc[[i]], expr).iloc[0] for i in range(n)]
    assert len(got) == n and got.index.equals(batch.index)
    assert [None if pd.isna(v) else int(v) for v in got] == [None if pd.isna(v) else int(v) for v in alone]
    if any(v is not None for v in got.tolist() if not pd.isna(v)) and got.isna().any():
        assert got.dtype == "Int64"  # integers beside missing values stay integers


def test_rows_each_missing_one_of_two_columns_do_not_recurse() -> None:
    batch = pd.DataFrame(
        {
            "a": pd.array([1, None, 3, 4] * 500, dtype="Int64"),
            "b": pd.array([None, 2, 3, 2**62] * 500, dtype="Int64"),
        }
    )
    got = eval_expression(batch, "a + b")  # raised RecursionError after 1.7 s
    assert got.dtype == "Int64"
    assert got.iloc[:4].tolist() == [pd.NA, pd.NA, 6, 2**62 + 4]
