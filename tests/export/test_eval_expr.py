"""The exported per-record evaluator answers as ``pandas.DataFrame([row]).eval(expr)`` does.

``eval_expr`` compiles an expression once; its compiled code answers the cases it is sure of and asks
pandas for the rest. The property test forbids asking pandas, so every answer the compiled code gives
is checked against pandas on random rows (None, NaN, infinities, ints up to int64's edges and beyond,
floats, bools, strings) and random expressions (arithmetic, comparisons, chains, and/or/not, &/|/~, in).
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamlab.export import _snippets
from streamlab.export._snippets import ExprCompiler, eval_expr

COLUMNS = ("a", "b", "c", "s")
_INTS = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**53 + 1, 2**62, 2**63 - 1, -(2**63), 2**63, 2**64, -(2**63) - 1]),
)
_FLOATS = st.one_of(st.floats(-10, 10, width=16), st.floats(), st.sampled_from([0.0, -0.0, 0.5, 1e308]))
_TEXT = st.one_of(
    st.sampled_from(["", "a", "b", "buy", "ab"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=3),
)
VALUES = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(-10, 10, width=16),
    st.booleans(),
    st.sampled_from(["", "a", "buy"]),
    _INTS,
    _FLOATS,
    _TEXT,
)

_CONSTANTS = st.one_of(
    st.integers(-3, 3).map(str),
    st.sampled_from(
        ["0", "2", "0.5", "-1.5", "1e308", "True", "False", "'a'", "'buy'", "''", "2**63", "10**20"]
    ),
)


def _binary(ops: list[str]) -> Any:
    return lambda inner: st.builds(
        lambda x, op, y, wrap: f"({x} {op} {y})" if wrap else f"{x} {op} {y}",
        inner,
        st.sampled_from(ops),
        inner,
        st.booleans(),
    )


def _extend(inner: Any) -> Any:
    arithmetic = _binary(["+", "-", "*", "/", "//", "%", "**"])(inner)
    compare = _binary(["==", "!=", "<", "<=", ">", ">="])(inner)
    logic = _binary(["and", "or", "&", "|"])(inner)
    unary = st.builds(lambda op, x: f"{op}({x})", st.sampled_from(["-", "+", "~", "not "]), inner)
    chain = st.builds(lambda x, y, z: f"{x} < {y} <= {z}", inner, inner, inner)
    member = st.builds(
        lambda x, op, items: f"{x} {op} [{', '.join(items)}]",
        inner,
        st.sampled_from(["in", "not in"]),
        st.lists(_CONSTANTS, max_size=3),
    )
    return st.one_of(arithmetic, compare, logic, unary, chain, member)


_LEAVES = st.one_of(st.sampled_from(COLUMNS), _CONSTANTS)
EXPRESSIONS = st.one_of(
    st.recursive(_LEAVES, _extend, max_leaves=3), st.recursive(_LEAVES, _extend, max_leaves=6)
)


def _pandas(expr: str, row: dict[str, Any], numeric: tuple[str, ...]) -> tuple[str, Any]:
    """pandas' answer on a one-row frame (missing numbers NaN; on a type error every missing value NaN), a
    string constant joined with + read as a column of it (pandas' eval refuses the constant itself)."""
    frame = pd.DataFrame([row])
    frame = frame.astype({c: "float64" for c in numeric if row[c] is None})
    rewritten, texts = ExprCompiler.text_operands(expr)

    def evaluate(frame: pd.DataFrame) -> Any:
        columns = {n: ExprCompiler.constant_column(frame, v, expr) for n, v in texts}
        try:
            return frame.eval(rewritten, resolvers=[columns]) if texts else frame.eval(expr)
        except AttributeError as e:  # pandas failing to write its TypeError (-1.5 + a): that TypeError
            error = ExprCompiler.operand_type_error(e)
            if error is None:
                raise
            raise error from e

    try:
        try:
            value = evaluate(frame)
        except TypeError:
            missing = {c: "float64" for c, v in row.items() if v is None and c not in numeric}
            if not missing:
                raise
            value = evaluate(frame.astype(missing))
    except Exception as e:
        return "error", type(e).__name__
    value = value.iloc[0] if hasattr(value, "iloc") else value
    return "value", value.item() if hasattr(value, "item") else value


class _Asked(Exception):  # noqa: N818 - a signal, not an error
    pass


def _compiled(expr: str, row: dict[str, Any], numeric: tuple[str, ...]) -> tuple[str, Any]:
    def ask(*args: Any) -> Any:
        raise _Asked

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_snippets, "pandas_eval", ask)
        try:
            return "value", ExprCompiler(expr, numeric).function()(row)
        except _Asked:
            return "asked", None


def _same(x: Any, y: Any) -> bool:
    return type(x) is type(y) and (repr(x) == repr(y) or x == y)


@settings(max_examples=int(os.environ.get("EVAL_EXAMPLES", "200")), deadline=None)
@given(
    expr=EXPRESSIONS,
    values=st.fixed_dictionaries({c: VALUES for c in COLUMNS}),
    numeric=st.sets(st.sampled_from(COLUMNS)),
)
# pandas fails with AttributeError while writing this TypeError (a negative constant, objects): the
# compiled NaN is pandas' answer after its retry with NaN for the missing value, as pandas_eval retries
@example(expr="-1.5 + a * a", values=dict.fromkeys(COLUMNS), numeric=set())
def test_every_compiled_answer_is_pandas_answer(expr: str, values: dict[str, Any], numeric: set[str]) -> None:
    cols = tuple(sorted(numeric))
    got = _compiled(expr, values, cols)
    if got[0] == "asked":
        return
    want = _pandas(expr, values, cols)
    assert want[0] == "value", (expr, values, cols, got, want)
    assert _same(got[1], want[1]), (expr, values, cols, got, want)


@pytest.mark.parametrize(
    ("expr", "row", "numeric", "want"),
    [
        ("amount * 100", {"amount": 2.5}, (), 250.0),
        ("amount * 100", {"amount": None}, ("amount",), math.nan),
        ("amount * 100", {"amount": None}, (), math.nan),  # pandas' retry: arithmetic on None reads it as NaN
        ("qty // 2 + 1", {"qty": 7}, (), 4),
        ("qty / 2", {"qty": 7}, (), 3.5),
        ("amount > 10 and event_type == 'buy'", {"amount": 12.0, "event_type": "buy"}, (), True),
        ("amount > 10 | event_type == 'buy'", {"amount": None, "event_type": "buy"}, ("amount",), True),
        ("not (amount > 0) & ~flag", {"amount": math.nan, "flag": False}, ("amount",), True),
        ("event_type in ['buy', 'view']", {"event_type": None}, (), False),
        ("event_type != 'x'", {"event_type": None}, (), True),
        ("0 < amount <= 10", {"amount": 10}, (), True),
    ],
)
def test_the_usual_expressions_are_compiled_not_asked(
    expr: str, row: dict[str, Any], numeric: tuple[str, ...], want: Any
) -> None:
    kind, got = _compiled(expr, row, numeric)
    assert kind == "value"
    assert _same(got, want) or (math.isnan(want) and math.isnan(got))
    assert _same(eval_expr(expr, row, numeric), _pandas(expr, row, numeric)[1]) or math.isnan(got)


@pytest.mark.parametrize(
    ("expr", "row"),
    [
        ("event_type.str.len()", {"event_type": "buy"}),  # a method: pandas evaluates it
        ("a * 4", {"a": 2**62}),  # numpy wraps int64 around
        ("a / 0", {"a": 1}),  # inf, by numpy's rules
        ("a + 1", {"a": 2**63}),  # uint64
        ("s > 1", {"s": "x"}),  # pandas' TypeError, with its message
    ],
)
def test_what_the_compiled_code_is_not_sure_of_is_pandas_answer(expr: str, row: dict[str, Any]) -> None:
    assert _pandas(expr, row, ()) == (
        ("value", eval_expr(expr, row)) if _pandas(expr, row, ())[0] == "value" else _pandas(expr, row, ())
    )
    if _pandas(expr, row, ())[0] == "error":
        with pytest.raises(Exception, match="."):
            eval_expr(expr, row)


def test_generated_code_types_with_columns_from_their_expressions_and_names_numeric_columns(
    tmp_path: Any,
) -> None:
    from streamlab import Pipeline, TumblingWindow, agg
    from streamlab.export import _plan, to_beam, to_lambda
    from streamlab.testing import ListSource

    p = Pipeline(ListSource([b"{}"]), name="flags")
    schema = {"event_id": "string", "timestamp": "timestamp", "event_type": "string", "amount": "float64"}
    events = p.parse(schema).with_columns(
        big="amount > 10 and event_type == 'buy'", cents="amount * 100", step_id="cols"
    )
    events.window(TumblingWindow("5s"), key="event_type", step_id="w").agg(agg.count(), agg.last("big"))
    assert _plan.column_types(p)["cols"] == {**schema, "big": "bool", "cents": "float64"}
    beam = to_beam(p, tmp_path / "beam", sink="bigquery").read("flags_beam.py")
    assert _plan.const_value(beam, "COLS_NUMERIC") == ("amount",)
    tables = _plan.const_value(beam, "BIGQUERY_TABLES")
    assert {f["name"]: f["type"] for f in tables["w"][0]}["last_big"] == "BOOL"
    handler = to_lambda(p, tmp_path / "lambda").read("handler.py")
    assert _plan.const_value(handler, "COLS_NUMERIC") == ("amount",)
    assert dict(_plan.const_value(handler, "MEASURE_TYPES"))["last_big"] == "BOOLEAN"


def test_pandas_failing_to_write_its_type_error_is_that_type_error() -> None:
    """pandas raises AttributeError ("'UnaryOp' object has no attribute 'type'") for the TypeError of a
    negative constant in arithmetic with an object column: pandas_eval retries it with the missing value
    as NaN, as a TypeError, so the expression gives what its compiled form and ``1.5 + a`` give."""
    assert _compiled("-1.5 + a", {"a": None}, ())[0] == "asked"  # pandas decides this one
    got = eval_expr("-1.5 + a", {"a": None})
    assert math.isnan(got) and math.isnan(eval_expr("1.5 + a", {"a": None}))
    assert math.isnan(eval_expr("-1.5 + a * a", {"a": None}))
    with pytest.raises(AttributeError, match="str"):  # any other AttributeError is the expression's
        eval_expr("a.str.len() + -1", {"a": 5})
    # a column of known type keeps its missing value: the TypeError pandas meant, worded as pandas words it
    with pytest.raises(
        TypeError, match=r"^unsupported operand type\(s\) for \+: '<class 'float'>' and 'object'$"
    ):
        eval_expr("-1.5 + a", {"a": None}, (), (("a", "json"),))
    with pytest.raises(TypeError, match=r"for \*: 'object' and 'float64'$"):
        eval_expr("a * (b * 2)", {"a": None, "b": 1.0}, ("b",), (("a", "json"),))
