"""``n.where(...)`` and ``n.mask(...)`` of an ``int64`` field keep its integers whatever the batch size.

pandas gives float64 for ``n.where(n > 0)`` in a batch where a row is masked (``3.0``, and every integer
beyond 2**53 rounded: ``2**53 + 1`` came out as ``9007199254740992.0``) and int64 in one where none is,
so a sink wrote ``3`` or ``3.0`` by how the rows were cut into batches; the exported code, a row at a
time, writes the integers. The rows kept and the rows masked are now evaluated apart (as rows missing an
``int64`` field are for ``n.fillna(...)``): kept integers beside masked rows make a nullable ``Int64``
column, as do masked rows alone.
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

from streamlab import Pipeline
from streamlab._parse import FieldSpec, ParseOperator
from streamlab._record import parse_record
from streamlab._transforms import MapOperator
from streamlab.export._plan import numeric_columns, typed_columns
from streamlab.export._snippets import assign_exprs
from streamlab.serde import dump_json
from streamlab.testing import ListSink, ListSource

SCHEMA = {"t": "timestamp", "n": "int64", "b": "float64"}
FIELDS = tuple((f.name, f.type, f.path) for f in (FieldSpec.of(k, s) for k, s in SCHEMA.items()))
NUMERIC, TYPED = numeric_columns(SCHEMA), typed_columns(SCHEMA)
BIG = [2**53 + 1, 2**62 + 1, 2**63 - 1, -(2**63), -(2**53) - 3]

#: each gives an integer or a missing value for every row
INTEGER_EXPRESSIONS = {
    "kept": "n.where(n > 0)",
    "masked": "n.mask(n > 0)",
    "twice": "n.where(n > 0) * 2",
    "half": "(n // 2).mask(n < 0)",
    "both": "n.where(n > 0).where(n < 4611686018427387904)",
    "other": "n.where(n != 3, -1)",
}


def _lines(ns: list[Any]) -> list[bytes]:
    """One record per value: ``"absent"`` leaves ``n`` out, None writes it null."""
    return [
        json.dumps({"t": 1_704_067_200 + i, "b": 0.5, **({} if n == "absent" else {"n": n})}).encode()
        for i, n in enumerate(ns)
    ]


def _exported(rec: bytes, exprs: dict[str, str]) -> dict[str, Any]:
    row = parse_record(rec, FIELDS, ("t",), 10**6)
    return {c: v for c, v in assign_exprs(row, exprs.items(), NUMERIC, TYPED).items() if c in exprs}


@pytest.mark.parametrize("batch_size", [1, 2, 7, None])
def test_where_and_mask_keep_every_digit_at_every_batch_size(batch_size: int | None) -> None:
    ns: list[Any] = [*BIG, -3, 3, None, "absent", 0, 7, -7]
    lines = _lines(ns)
    p = Pipeline(ListSource(lines, batch_size=batch_size) if batch_size else ListSource(lines))
    sink = ListSink()
    p.parse(SCHEMA, time="t").with_columns(**INTEGER_EXPRESSIONS).to(sink)
    p.run()

    assert len(sink.batches) == (math.ceil(len(ns) / batch_size) if batch_size else 1)
    for batch in sink.batches:  # never float64: an integer beyond 2**53 would be rounded there
        for column in INTEGER_EXPRESSIONS:
            assert str(batch[column].dtype) in ("int64", "Int64"), (column, batch[column].dtype)
    written = [dump_json({c: r[c] for c in INTEGER_EXPRESSIONS}) for r in sink.rows()]
    assert written == [dump_json(_exported(rec, INTEGER_EXPRESSIONS)) for rec in lines]
    kept = [r["kept"] for r in sink.rows()]
    assert [None if v is pd.NA else v for v in kept] == [
        n if isinstance(n, int) and n > 0 else None for n in ns
    ]
    assert type(kept[0]) is int and kept[0] == 2**53 + 1


def test_a_batch_whose_rows_are_all_masked_is_a_nullable_integer_column() -> None:
    from streamlab._expr import eval_expression

    batch = pd.DataFrame({"n": np.array([-3, -(2**63)], dtype=np.int64)})
    assert str(eval_expression(batch, "n.where(n > 0)").dtype) == "Int64"
    assert str(eval_expression(batch, "n.mask(n < 0) + 1").dtype) == "Int64"
    assert eval_expression(batch, "(n / 2).where(n > 0)").dtype == np.float64  # a float where kept too


def _written(v: Any) -> str:
    """A value as a sink writes it (``7`` and ``7.0`` differ; NaN and ``pd.NA`` are null)."""
    return dump_json({"x": v})


def _runtime(recs: list[bytes], expr: str, size: int) -> dict[int, str]:
    """``expr`` by streamlab's map operator over the parsed records, ``size`` rows a batch."""
    parse = ParseOperator("parse", [FieldSpec.of(k, s) for k, s in SCHEMA.items()], "value", ("t",), 10**6)
    got: dict[int, str] = {}
    for start in range(0, len(recs), size):
        frame = pd.DataFrame({"value": pd.Series(recs[start : start + size], dtype=object)})
        frame["_row"] = range(start, start + len(frame))
        out = MapOperator("cols", None, False, {"x": expr}).process(parse.process(frame)["out"])
        done = out["out"]
        got.update({int(r): _written(x) for r, x in zip(done["_row"], done["x"].tolist())})
        if "dead_letter" in out:
            got.update({int(r): "dead" for r in out["dead_letter"]["_row"]})
    return got


def _exported_written(rec: bytes, expr: str) -> str:
    try:
        return _written(_exported(rec, {"x": expr})["x"])
    except Exception:
        return "dead"


_BOUND = st.sampled_from(["0", "3", "-2", "b", "4611686018427387904"])
_CONDITION = st.builds(lambda op, k: f"n {op} {k}", st.sampled_from([">", "<", "!=", ">="]), _BOUND)
_OTHER = st.sampled_from(["", ", 0", ", -1", ", 0.5"])
_BASE = st.sampled_from(["n", "n.fillna(0)", "(n // 2)", "(n * 2)"])
EXPRESSIONS = st.recursive(
    st.builds(
        lambda v, m, c, o: f"{v}.{m}({c}{o})", _BASE, st.sampled_from(["where", "mask"]), _CONDITION, _OTHER
    ),
    lambda x: st.one_of(
        st.builds(
            lambda e, op, y: f"({e} {op} {y})",
            x,
            st.sampled_from(["+", "-", "*", "//"]),
            st.sampled_from(["1", "2", "n"]),
        ),
        st.builds(lambda e: f"-{e}", x),
        st.builds(lambda e, m, c: f"({e}).{m}({c})", x, st.sampled_from(["where", "mask"]), _CONDITION),
    ),
    max_leaves=3,
)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {"t": 1_704_067_200}
    if draw(st.booleans()):
        obj["n"] = draw(st.one_of(st.none(), st.sampled_from(BIG), st.integers(-1000, 1000)))
    if draw(st.booleans()):
        obj["b"] = draw(st.one_of(st.none(), st.sampled_from([0.5, 2.0, -3.25])))
    return json.dumps(obj).encode()


@settings(max_examples=25, deadline=None)
@given(expr=EXPRESSIONS, recs=st.lists(records(), min_size=1, max_size=7))
@example(expr="n.where(n > 0)", recs=_lines([2**53 + 1, -3, 3]))
@example(expr="n.mask(n > 0)", recs=_lines([None, 3, -(2**63)]))
@example(expr="(n * 2).where(n > 0)", recs=_lines([2**61 + 1, -1]))
def test_where_and_mask_give_each_row_what_the_exported_code_gives(expr: str, recs: list[bytes]) -> None:
    want = {i: _exported_written(rec, expr) for i, rec in enumerate(recs)}
    for size in sorted({1, 2, 7, len(recs)}):
        got = _runtime(recs, expr, size)
        assert got == want, (expr, size, {i: (got[i], want[i]) for i in want if got[i] != want[i]})
