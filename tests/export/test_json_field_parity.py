"""An expression over a ``json`` field whose values are of several types gives each row what the row gives
alone, in the runtime and in the exported code.

A json field holds Python values (``json.loads``'): numbers, bools, text, objects, arrays or null, mixed
within one batch. The runtime evaluates a batch at once; the exported code one row at a time. Each row's
result must not depend on its neighbours: an int computed beside floats stayed an int (``3 * 2`` is ``6``,
not ``6.0``), a bool beside numbers a bool (``-True`` is ``False`` as on a bool column), a number beside text
refused ``.str`` as alone, and a null joined with text is missing on both sides. The property test compares,
row by row, the runtime over the whole batch, the runtime over the row alone and the exported evaluator.
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
from streamlab._transforms import FilterOperator, MapOperator
from streamlab.export._plan import numeric_columns, typed_columns
from streamlab.export._snippets import assign_exprs, filter_keeps

SCHEMA = {"t": "timestamp", "a": "json", "b": "float64", "s": "string"}
SPECS = [FieldSpec.of(n, s) for n, s in SCHEMA.items()]
FIELDS = tuple((f.name, f.type, f.path) for f in SPECS)
NUMERIC, TYPED = numeric_columns(SCHEMA), typed_columns(SCHEMA)

VALUES = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**63, -(2**70)]),  # beyond int64: Python ints on both sides
    st.floats(-10, 10, width=16),
    st.sampled_from([0.0, -0.0, 2.5, 1e308]),
    st.booleans(),
    st.sampled_from(["", "x", "ab", "1", "True"]),
    st.sampled_from([{}, {"k": 1}, [], [1, "a"]]),
)
EXPRESSIONS = st.sampled_from(
    [
        "a * 2",
        "-a",
        "~a",
        "a + a",
        "a + 1.5",
        "-1.5 + a",
        "a / 2",
        "a // 2",
        "a % 2",
        "a + b",
        "(b * 2) + a",
        "abs(a)",
        "a + '!'",
        "'<' + a + '>'",
        "a.str.len()",
        "a.str.upper()",
        "a > 1",
        "a == 'x'",
        "a == True",
        "a != a",
        "a in [1, 'x', True]",
        "not a",
        "a & True",
        "a > 1 | b > 1",
        "a + s",
        "s + a",
        "a + s + '!'",
        "a == s",
    ]
)
TEXTS = st.sampled_from([None, "", "y"])  # a string field beside it


def _kind(v: Any) -> tuple[Any, ...]:
    """A value as a sink writes it: missing, or its type and value (6 and 6.0 differ in JSON)."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return ("missing",)
    if isinstance(v, np.generic):
        v = v.item()
    return (type(v).__name__, v)


def _record(value: Any, text: str | None) -> bytes:
    return json.dumps({"t": 1, "a": value, "b": 1.5, "s": text}).encode()


def _parsed(values: list[Any], texts: list[str | None]) -> pd.DataFrame:
    recs = [_record(v, s) for v, s in zip(values, texts)]
    op = ParseOperator("parse", SPECS, "value", ("t",), 1_000_000)
    frame = op.process(pd.DataFrame({"value": pd.Series(recs, dtype=object)}))["out"]
    frame["_row"] = range(len(frame))
    return frame


def _runtime_map(frame: pd.DataFrame, expr: str) -> list[tuple[Any, ...]]:
    out = MapOperator("cols", None, False, {"x": expr}).process(frame)
    done = out["out"]
    got = {int(r): _kind(x) for r, x in zip(done["_row"], done["x"])} if len(done) else {}
    if "dead_letter" in out:
        got.update({int(r): ("dead",) for r in out["dead_letter"]["_row"]})
    return [got[i] for i in range(len(frame))]


def _runtime_filter(frame: pd.DataFrame, expr: str) -> list[str]:
    out = FilterOperator("keep", expr, None, False).process(frame)
    got = dict.fromkeys(range(len(frame)), "dropped")
    got.update(dict.fromkeys((int(r) for r in out["out"]["_row"]), "kept"))
    if "dead_letter" in out:
        got.update(dict.fromkeys((int(r) for r in out["dead_letter"]["_row"]), "dead"))
    return [got[i] for i in range(len(frame))]


def _row(value: Any, text: str | None) -> dict[str, Any]:
    return parse_record(_record(value, text), FIELDS, ("t",), 1_000_000)


def _exported_map(value: Any, text: str | None, expr: str) -> tuple[Any, ...]:
    try:
        return _kind(assign_exprs(_row(value, text), (("x", expr),), NUMERIC, TYPED)["x"])
    except Exception:
        return ("dead",)


def _exported_filter(value: Any, text: str | None, expr: str) -> str:
    try:
        return "kept" if filter_keeps(expr, _row(value, text), NUMERIC, TYPED) else "dropped"
    except Exception:
        return "dead"


def _same(x: tuple[Any, ...], y: tuple[Any, ...]) -> bool:
    if x[0] == y[0] == "float":
        return x[1] == y[1] or abs(x[1] - y[1]) <= 1e-12 * abs(x[1])
    return x == y


@settings(max_examples=120, deadline=None)
@given(expr=EXPRESSIONS, rows=st.lists(st.tuples(VALUES, TEXTS), min_size=1, max_size=7))
@example(expr="a * 2", rows=[(3, "y"), (2.5, "y")])  # 3 * 2 was 6.0 beside a float: 6 alone and exported
@example(expr="-a", rows=[(True, "y"), (2.5, "y")])  # -True was -1.0 beside a float: False alone, exported
@example(expr="~a", rows=[(True, "y"), (3, "y"), ("x", "y")])  # ~True was 0: the parts joined as ints
@example(expr="a.str.len()", rows=[(3, "y"), ("x", "y")])  # NaN beside text: refused alone and exported
@example(expr="a + '!'", rows=[(None, "y")])  # missing in the runtime, refused in the export
@example(expr="a + s", rows=[(None, "y"), ("x", "y")])  # null + 'y' was NaN beside text, refused alone
@example(expr="-a", rows=[(-(2**63), None), (2**63, None)])  # int64's minimum: 2**63 beside a big int
def test_each_row_gives_what_it_gives_alone_on_both_sides(expr: str, rows: list[tuple[Any, Any]]) -> None:
    values, texts = [v for v, _ in rows], [t for _, t in rows]
    frame = _parsed(values, texts)
    whole, kept = _runtime_map(frame, expr), _runtime_filter(frame, expr)
    for i, (v, s) in enumerate(rows):
        alone = _runtime_map(frame.iloc[[i]].reset_index(drop=True).assign(_row=0), expr)[0]
        exported = _exported_map(v, s, expr)
        case = (expr, rows, i)
        assert _same(whole[i], alone) and _same(alone, exported), (*case, whole[i], alone, exported)
        assert kept[i] == _exported_filter(v, s, expr), (*case, kept[i])
