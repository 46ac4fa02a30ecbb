"""What an expression computes from an ``int64`` field is an int or a float in the exported code as it is in
streamlab's column, row by row, whether the field is missing or not.

The runtime types a computed column by batch (``streamlab._expr``): rows missing the field give integers
where rows holding it do (``n.fillna(0)`` is 0, not 0.0, and a window keyed by it is one key), and an
expression that gives a float for a missing field gives floats for every row (``n.fillna(0.5)`` is 7.0
for 7). The exported evaluator (``_snippets.eval_expr``, which the Beam, Lambda and Flink DataStream
programs carry) sees one row at a time and must give the same type; a sink writes ``0`` or ``0.0``, and
Beam's keys told the two apart (two windows where streamlab has one).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamlab._parse import FieldSpec, ParseOperator
from streamlab._record import parse_record
from streamlab._transforms import MapOperator
from streamlab.export._plan import numeric_columns, typed_columns
from streamlab.export._snippets import assign_exprs

SCHEMA = {"t": "timestamp", "n": "int64", "b": "float64"}
FIELDS = tuple((f.name, f.type, f.path) for f in (FieldSpec.of(k, s) for k, s in SCHEMA.items()))
NUMERIC, TYPED = numeric_columns(SCHEMA), typed_columns(SCHEMA)

_FILL = st.sampled_from(["0", "-1", "2", "0.5", "1.0"])
_OPERAND = st.sampled_from(["1", "2", "0.5", "b", "n"])
_BASE = st.one_of(st.just("n"), st.builds(lambda k: f"n.fillna({k})", _FILL))
EXPRESSIONS = st.recursive(
    _BASE,
    lambda x: st.one_of(
        st.builds(lambda e, op, y: f"({e} {op} {y})", x, st.sampled_from(["+", "-", "*", "//"]), _OPERAND),
        st.builds(lambda e: f"-{e}", x),
        st.builds(lambda e: f"({e}) ** 2", x),
        st.builds(lambda e, k: f"({e}).fillna({k})", x, _FILL),
    ),
    max_leaves=3,
)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {"t": 1_704_067_200}
    if draw(st.booleans()):
        obj["n"] = draw(st.one_of(st.none(), st.integers(-1000, 1000)))
    if draw(st.booleans()):
        obj["b"] = draw(st.one_of(st.none(), st.sampled_from([0.5, 2.0, -3.25])))
    return json.dumps(obj).encode()


def _kind(v: Any) -> tuple[str, Any]:
    """A value as a sink writes it: missing, an int, a float (``7`` and ``7.0`` differ), a bool."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return ("missing", None)
    if isinstance(v, (bool, np.bool_)):
        return ("bool", bool(v))
    if isinstance(v, (int, np.integer)):
        return ("int", int(v))
    if isinstance(v, (float, np.floating)):
        return ("float", float(v))
    return (type(v).__name__, v)


def _runtime(recs: list[bytes], expr: str) -> dict[int, tuple[str, Any]]:
    op = ParseOperator("parse", [FieldSpec.of(k, s) for k, s in SCHEMA.items()], "value", ("t",), 10**6)
    frame = pd.DataFrame({"value": pd.Series(recs, dtype=object)})
    frame["_row"] = range(len(frame))
    out = MapOperator("cols", None, False, {"x": expr}).process(op.process(frame)["out"])
    done = out["out"]
    got = {int(r): _kind(x) for r, x in zip(done["_row"], done["x"].tolist() if len(done) else [])}
    if "dead_letter" in out:
        got.update({int(r): ("dead", None) for r in out["dead_letter"]["_row"]})
    return got


def _exported(rec: bytes, expr: str) -> tuple[str, Any]:
    row = parse_record(rec, FIELDS, ("t",), 10**6)
    try:
        return _kind(assign_exprs(row, (("x", expr),), NUMERIC, TYPED)["x"])
    except Exception:
        return ("dead", None)


@settings(max_examples=100, deadline=None)
@given(expr=EXPRESSIONS, recs=st.lists(records(), min_size=1, max_size=5))
@example(expr="n.fillna(0)", recs=[b'{"t": 1, "n": 7}', b'{"t": 1}'])
@example(expr="n.fillna(0)", recs=[b'{"t": 1}'])
@example(expr="n.fillna(0.5)", recs=[b'{"t": 1, "n": 7}'])
@example(expr="n.fillna(1.0)", recs=[b'{"t": 1}'])
@example(expr="(n * 2).fillna(1)", recs=[b'{"t": 1}', b'{"t": 1, "n": 3}'])
@example(expr="-n.fillna(0)", recs=[b'{"t": 1}'])
@example(expr="(n.fillna(0) // 1)", recs=[b'{"t": 1}'])
def test_a_computed_int_is_an_int_on_both_sides(expr: str, recs: list[bytes]) -> None:
    runtime = _runtime(recs, expr)
    for i, rec in enumerate(recs):
        # (+, -, * and // of these small numbers, and squares, are exact in floats: equal, not close)
        assert runtime[i] == _exported(rec, expr), (expr, rec, runtime[i], _exported(rec, expr))


def test_a_window_keyed_by_a_filled_int_is_one_key_in_the_exported_code() -> None:
    """The hunt's case: ``n.fillna(0)`` as a window key gave Beam two keys, 0 and 0.0."""
    keys = {
        assign_exprs(parse_record(r, FIELDS, ("t",), 10**6), (("k", "n.fillna(0)"),), NUMERIC, TYPED)["k"]
        for r in (b'{"t": 1, "n": 0}', b'{"t": 2}')
    }
    assert [(type(k), k) for k in keys] == [(int, 0)]
