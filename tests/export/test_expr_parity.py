"""A filter or with_columns expression means in exported code what it means in streamlab's runtime.

The runtime evaluates an expression over a parsed batch (``streamlab._expr``: pandas operations on typed
columns, ``DataFrame.eval`` otherwise, a failing row isolated to dead letter); the generated Beam module and
Lambda handler evaluate it on each parsed row (``_snippets.eval_expr``). The property test runs both on the
same records, parsed by each side's own parser (a schema of ints, floats, bools and strings, values
missing), through the runtime's own filter and map operators, and compares row by row: kept or dropped,
the computed value, or dead letter.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamlab._parse import FieldSpec, ParseOperator
from streamlab._record import parse_record
from streamlab._transforms import FilterOperator, MapOperator
from streamlab.export._plan import numeric_columns, typed_columns
from streamlab.export._snippets import assign_exprs, filter_keeps


def _binary(ops: list[str]) -> Any:
    return lambda x: st.builds(lambda x1, op, x2: f"({x1} {op} {x2})", x, st.sampled_from(ops), x)


_NUMBERS = st.recursive(
    st.sampled_from(["a", "b", "0", "2", "-1", "0.5", "1e308"]), _binary(["+", "-", "*", "/"]), max_leaves=3
)
_COLUMN = st.sampled_from(["a", "b"])
#: text joined with + (a string column with string constants or itself), and text with a number (an error)
_TEXT = st.sampled_from(["s + '!'", "'!' + s", "s + ''", "s + s", "s + '!' + s", "'<' + s + '>'", "s + 1"])
_TESTS = st.one_of(
    st.builds(
        lambda x1, op, x2: f"{x1} {op} {x2}",
        _COLUMN,
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        _NUMBERS,
    ),
    st.builds(lambda x, y, z: f"{x} < {y} <= {z}", _NUMBERS, _COLUMN, _NUMBERS),
    st.builds(
        lambda op, v: f"s {op} {v}",
        st.sampled_from(["==", "!=", "<", ">="]),
        st.sampled_from(["'a'", "'buy'", "''", "b", "1"]),
    ),
    st.builds(
        lambda x, op, v: f"{x} {op} {v}",
        st.sampled_from(["s", "a"]),
        st.sampled_from(["in", "not in"]),
        st.sampled_from(["['a', 'buy']", "[1, 2]", "[]"]),
    ),
    st.sampled_from(["c", "c == True", "c != False"]),
    st.builds(lambda x, v: f"{x} == {v}", _TEXT, st.sampled_from(["'a!'", "'buy'", "'<ab>'"])),
)
_LOGIC = st.recursive(
    _TESTS,
    lambda x: st.one_of(
        _binary(["and", "or", "&", "|"])(x),
        st.builds(lambda op, e: f"{op}({e})", st.sampled_from(["~", "not "]), x),
    ),
    max_leaves=4,
)
#: what streamlab's filters and computed columns are written with: arithmetic on numbers, text joined with +,
#: comparisons (chained too), == 'string', in-lists, bool columns, combined by and/or/&/|/not/~
EXPRESSIONS = st.one_of(_NUMBERS, _LOGIC, _TEXT)

SCHEMA = {"t": "timestamp", "a": "int64", "b": "float64", "c": "bool", "s": "string"}
FIELDS = tuple((f.name, f.type, f.path) for f in (FieldSpec.of(n, s) for n, s in SCHEMA.items()))
NUMERIC, TYPED = numeric_columns(SCHEMA), typed_columns(SCHEMA)

_VALUES = {
    # every int64 (a column with a missing value is nullable Int64 on both sides, and numpy wraps an
    # int64 product in both), doubles of every size, text beyond the constants the expressions name
    "a": st.one_of(
        st.none(),
        st.integers(-5, 5),
        st.integers(-(2**20), 2**20),
        st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([2**63 - 1, -(2**63), 2**53 + 1]),
    ),
    "b": st.one_of(
        st.none(),
        st.floats(-10, 10, width=16),
        st.sampled_from([0.0, -0.0, 0.5, 1e308, -1e308, 5e-324]),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    "c": st.one_of(st.none(), st.booleans()),
    "s": st.one_of(
        st.none(), st.sampled_from(["", "a", "buy", "ab", "1", "\x00", "\U0001f600"]), st.text(max_size=3)
    ),
}


@st.composite
def records(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {"t": 1_704_067_200 + draw(st.integers(0, 100))}
    for name, values in _VALUES.items():
        if draw(st.integers(0, 4)):  # sometimes absent altogether
            obj[name] = draw(values)
    return json.dumps(obj).encode()


def _parsed(recs: list[bytes]) -> pd.DataFrame:
    op = ParseOperator("parse", [FieldSpec.of(n, s) for n, s in SCHEMA.items()], "value", ("t",), 1_000_000)
    frame = pd.DataFrame({"value": pd.Series(recs, dtype=object)})
    frame["_row"] = range(len(frame))
    out = op.process(frame)
    assert "dead_letter" not in out
    return out["out"]


def _kind(v: Any) -> tuple[str, Any]:
    """A value as the column it lands in shows it: missing, a bool, a number (an int64 column with a
    missing value holds floats), a string."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return ("missing", None)
    if isinstance(v, (bool, np.bool_)):
        return ("bool", bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return ("number", float(v))
    return (type(v).__name__, v)


def _runtime_map(frame: pd.DataFrame, expr: str) -> dict[int, tuple[str, Any]]:
    out = MapOperator("cols", None, False, {"x": expr}).process(frame)
    done = out["out"]
    got = {int(r): _kind(x) for r, x in zip(done["_row"], done["x"] if len(done) else [])}
    if "dead_letter" in out:
        got.update({int(r): ("dead", None) for r in out["dead_letter"]["_row"]})
    return got


def _runtime_filter(frame: pd.DataFrame, expr: str) -> dict[int, str]:
    out = FilterOperator("keep", expr, None, False).process(frame)
    got = dict.fromkeys((int(r) for r in frame["_row"]), "dropped")
    got.update(dict.fromkeys((int(r) for r in out["out"]["_row"]), "kept"))
    if "dead_letter" in out:
        got.update(dict.fromkeys((int(r) for r in out["dead_letter"]["_row"]), "dead"))
    return got


def _exported_map(
    row: dict[str, Any], expr: str, numeric: tuple[str, ...] = NUMERIC, typed: Any = TYPED
) -> tuple[str, Any]:
    try:
        return _kind(assign_exprs(row, (("x", expr),), numeric, typed)["x"])
    except Exception:
        return ("dead", None)


def _exported_filter(row: dict[str, Any], expr: str) -> str:
    try:
        return "kept" if filter_keeps(expr, row, NUMERIC, TYPED) else "dropped"
    except Exception:
        return "dead"


def _same(ours: tuple[str, Any], theirs: tuple[str, Any]) -> bool:
    if ours[0] == theirs[0] == "number":
        return ours[1] == theirs[1] or abs(ours[1] - theirs[1]) <= 1e-12 * abs(ours[1])
    return ours == theirs


@settings(max_examples=150, deadline=None)
@given(expr=EXPRESSIONS, recs=st.lists(records(), min_size=1, max_size=6))
@example(expr="a > 1 & s == 'buy'", recs=[b'{"t": 1, "a": 2, "s": "buy"}', b'{"t": 1, "s": null}'])
@example(expr="b * 2 + a", recs=[b'{"t": 1, "a": 2}', b'{"t": 1, "a": 3, "b": 0.5}'])
# a bool field with a missing value elsewhere in the batch: the runtime's column holds Python objects, and
# ~c was pandas' bitwise ~ of each (True -> -2, kept by a filter)
@example(expr="~c", recs=[b'{"t": 1, "c": true}', b'{"t": 1, "c": null}', b'{"t": 1, "c": false}'])
@example(expr="not c | s in ['a']", recs=[b'{"t": 1, "c": true, "s": "b"}', b'{"t": 1}'])
@example(expr="0 < a <= 3 | ~c", recs=[b'{"t": 1, "a": 2, "c": true}', b'{"t": 1, "c": false}'])
@example(expr="s in ['a', 'buy'] and not c", recs=[b'{"t": 1, "s": "a", "c": false}', b'{"t": 1}'])
# a string column plus a string constant: pandas' eval refused the constant, every row went to dead letter
@example(expr="s + '!'", recs=[b'{"t": 1, "s": "a"}', b'{"t": 1, "s": null}', b'{"t": 1}'])
# ... where pandas evaluates the expression: DataFrame.eval in the runtime, pandas_eval in the exported code
@example(expr="s + '!' == 'a!' and a == a / b", recs=[b'{"t": 1, "b": 0.0}', b'{"t": 1, "s": "a", "a": 0}'])
# numpy's floating-point flags (1 / 0, a number compared with NaN among objects) are results on both
# sides: they raised a RuntimeWarning in the runtime, a dead letter where warnings are errors
@example(expr="a < b <= a", recs=[b'{"t": 1}'])
@example(expr="(a / 0) == b", recs=[b'{"t": 1, "a": 1, "b": 1e308}', b'{"t": 1, "b": 2}'])
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_runtime_and_exported_expressions_agree_row_by_row(expr: str, recs: list[bytes]) -> None:
    frame = _parsed(recs)
    rows = [parse_record(r, FIELDS, ("t",), 1_000_000) for r in recs]
    mapped, kept = _runtime_map(frame, expr), _runtime_filter(frame, expr)
    for i, row in enumerate(rows):
        assert _same(mapped[i], _exported_map(row, expr)), (
            expr,
            recs[i],
            mapped[i],
            _exported_map(row, expr),
        )
        assert kept[i] == _exported_filter(row, expr), (expr, recs[i], kept[i], _exported_filter(row, expr))


def test_a_category_column_joined_with_text_is_joined_on_both_sides() -> None:
    # streamlab reads an unordered category column as its values' text in expressions (a string field and
    # a category field give the same results), and the exported code, whose rows hold the value as a
    # plain string, joins it too; a missing value stays missing, as a missing string
    frame = pd.DataFrame({"k": pd.Series(["x", "y", None], dtype="category"), "_row": [0, 1, 2]})
    out = MapOperator("cols", None, False, {"x": "k + '!'"}).process(frame)
    assert out["out"]["x"].tolist()[:2] == ["x!", "y!"] and pd.isna(out["out"]["x"].iloc[2])
    assert len(out.get("dead_letter", ())) == 0
    assert _exported_map({"k": "x"}, "k + '!'", (), (("k", "category"),)) == ("str", "x!")
    assert _exported_map({"k": None}, "k + '!'", (), (("k", "category"),)) == _exported_map(
        {"k": None}, "k + '!'", (), (("k", "string"),)
    )
    assert _exported_map({"k": "x"}, "k + '!'", (), (("k", "string"),)) == ("str", "x!")


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("-1.5 + a", "for +: '<class 'float'>' and 'object'"),
        ("a * -2", "for *: 'object' and '<class 'int'>'"),
        ("(b * 2) + a", "for +: 'float64' and 'object'"),
        ("abs(b) + a", "for +: 'float64' and 'object'"),
        ("a + (-b)", "for +: 'object' and 'float64'"),
    ],
)
def test_a_computed_operand_beside_objects_is_refused_with_pandas_reason(expr: str, says: str) -> None:
    """pandas refuses arithmetic between a number and a column of objects (a ``json`` field), but where the
    number is computed (a negative constant, ``b * 2``) it failed while writing its TypeError, and the dead
    letter's reason read "'UnaryOp' object has no attribute 'type'". Both sides now give the TypeError
    pandas meant, worded as for an operand computed first."""
    schema = {"t": "timestamp", "a": "json", "b": "float64"}
    fields = [FieldSpec.of(n, s) for n, s in schema.items()]
    recs = [
        b'{"t": 1, "a": null, "b": 1.0}',
        b'{"t": 1, "a": {"k": 1}, "b": 2.0}',
        b'{"t": 1, "a": 3, "b": 2.0}',
    ]
    parsed = ParseOperator("parse", fields, "value", ("t",), 1_000_000).process(
        pd.DataFrame({"value": pd.Series(recs, dtype=object)})
    )["out"]
    out = MapOperator("cols", None, False, {"x": expr}).process(parsed)
    reasons = out["dead_letter"]["reason"].tolist()
    assert reasons == [f"with_columns(x={expr!r}) raised TypeError: unsupported operand type(s) {says}"] * 2
    assert out["out"]["x"].notna().all() and len(out["out"]) == 1  # the row holding a number computes
    numeric, typed = numeric_columns(schema), typed_columns(schema)
    for rec in recs[:2]:
        row = parse_record(rec, tuple((f.name, f.type, f.path) for f in fields), ("t",), 1_000_000)
        with pytest.raises(TypeError) as raised:
            assign_exprs(row, (("x", expr),), numeric, typed)
        assert str(raised.value) == f"unsupported operand type(s) {says}"


def test_text_of_a_json_field_is_an_object_on_both_sides() -> None:
    """A json field holding text is a Python object in the runtime's column; the exported code's one-row
    frame made it pandas' str, so pandas' refusal named 'str' there and 'object' in the runtime, and
    ``verify`` reported the dead letters as differing rows."""
    schema = {"t": "timestamp", "a": "json"}
    fields = [FieldSpec.of(n, s) for n, s in schema.items()]
    recs = [b'{"t": 1, "a": "x"}', b'{"t": 1, "a": {"k": 1}}']
    parsed = ParseOperator("parse", fields, "value", ("t",), 1_000_000).process(
        pd.DataFrame({"value": pd.Series(recs, dtype=object)})
    )["out"]
    for expr in ("1.5 + a", "-1.5 + a", "-a"):
        runtime = MapOperator("cols", None, False, {"x": expr}).process(parsed)["dead_letter"]["reason"][0]
        row = parse_record(recs[0], tuple((f.name, f.type, f.path) for f in fields), ("t",), 1_000_000)
        with pytest.raises(TypeError) as raised:
            assign_exprs(row, (("x", expr),), numeric_columns(schema), typed_columns(schema))
        assert runtime == f"with_columns(x={expr!r}) raised TypeError: {raised.value}"
    # text still joins as text
    row = parse_record(recs[0], tuple((f.name, f.type, f.path) for f in fields), ("t",), 1_000_000)
    assert assign_exprs(row, (("x", "a + '!'"),), (), typed_columns(schema))["x"] == "x!"
