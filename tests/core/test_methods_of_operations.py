"""A method or attribute of an operation (``(n * 2).fillna(1)``) gives on pandas 2 what it gives on pandas 3.

pandas 2's ``eval`` cannot read an attribute of an operation: it raised "'BinOp' object has no attribute
'value'" (and 'UnaryOp' for ``(-n).abs()``), so every row of such a ``with_columns``, ``filter`` or rule
went to the dead letter, in the runtime and in the exported code alike. The operation is now evaluated
first and read by a name (``ExprCompiler.operations_read``), as pandas 3 evaluates it. These tests run
in the Python 3.10 / pandas 2 venv too (``PANDAS_2_TESTS`` in tests/test_packaging.py).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from streamlab import Pipeline
from streamlab._expr import eval_expression
from streamlab.detectors import ThresholdRule
from streamlab.export._snippets import ExprCompiler, assign_exprs
from streamlab.serde import dump_json
from streamlab.testing import ListSink, ListSource

NS: list[int | None] = [3, None, -2, 2**61 + 1, 0]  # 2**61 + 1: exact only as an integer
EXPRESSIONS = {
    "twice": "(n * 2).fillna(1)",
    "size": "(-n).abs()",
    "big": "(n > 1).astype('int64')",
    "nested": "((n * 2).fillna(1) + 1).abs()",
    "keyword": "(n - 1).fillna(value=0)",
    "text": "(s + '!').str.len()",
}
#: what pandas 3's eval gives, a row at a time (a missing n: NaN in the operation, then filled or missing)
EXPECTED = {
    "twice": [6, 1, -4, 2**62 + 2, 0],
    "size": [3, None, 2, 2**61 + 1, 0],
    "big": [1, 0, 0, 1, 0],
    "nested": [7, 2, 3, 2**62 + 3, 1],
    "keyword": [2, 0, -3, 2**61, -1],
    "text": [2, 2, 2, 2, 2],
}


def _lines() -> list[dict[str, Any]]:
    return [
        {"value": json.dumps({"n": n, "s": "a", "timestamp": 1_704_067_200 + i})} for i, n in enumerate(NS)
    ]


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_methods_of_operations_compute_every_row(batch_size: int | None) -> None:
    p = Pipeline(ListSource(_lines(), batch_size=batch_size) if batch_size else ListSource(_lines()))
    parsed = p.parse({"n": "int64", "s": "string", "timestamp": "timestamp"})
    out, dead, kept = ListSink(), ListSink(), ListSink()
    computed = parsed.with_columns(**EXPRESSIONS)
    computed.to(out)
    computed.dead_letter.to(dead)
    parsed.filter("(n * 2).fillna(1) > 2").to(kept)
    p.run()

    assert dead.rows() == []  # every row was a dead letter on pandas 2
    rows = out.rows()
    for column, want in EXPECTED.items():
        assert [None if pd.isna(r[column]) else r[column] for r in rows] == want, column
    assert [r["n"] for r in kept.rows()] == [3, 2**61 + 1]
    exported = [
        {
            c: v
            for c, v in assign_exprs(
                {"n": n, "s": "a"}, EXPRESSIONS.items(), ("n",), (("n", "int64"),)
            ).items()
            if c in EXPRESSIONS
        }
        for n in NS
    ]
    assert [dump_json({c: r[c] for c in EXPRESSIONS}) for r in rows] == [dump_json(e) for e in exported]


def test_a_rule_over_a_method_of_an_operation_alerts() -> None:
    batch = pd.DataFrame({"amount": [3.0, None, 8.0]})
    result = ThresholdRule("big", expr="(amount * 2).fillna(0) > 10").build().process(batch)
    assert "dead_letter" not in result or result["dead_letter"].empty
    assert result["out"]["is_alert"].tolist() == [False, False, True]


def test_the_operations_are_read_by_name() -> None:
    assert ExprCompiler.operations_read("((n * 2).fillna(1) + 1).abs() > (m > 1).sum()") == (
        "(_streamlab_operand_0).abs() > (_streamlab_operand_1).sum()",
        (("_streamlab_operand_0", "(n * 2).fillna(1) + 1"), ("_streamlab_operand_1", "m > 1")),
    )
    assert ExprCompiler.operations_read("n.mul(2).fillna(1) > m") == ("n.mul(2).fillna(1) > m", ())


@pytest.mark.parametrize("expr", [*EXPRESSIONS.values(), "(n * 2).fillna(1) > 2 & (-n).abs() < 3"])
def test_reading_the_operations_by_name_gives_what_pandas_3_gives(
    monkeypatch: pytest.MonkeyPatch, expr: str
) -> None:
    # on pandas 3 (the main suite), the rewriting pandas 2 needs, applied anyway, changes no value
    batch = pd.DataFrame({"n": pd.array(NS, dtype="Int64"), "s": ["a", "bc", None, "d", ""]})
    plain = eval_expression(batch, expr)
    monkeypatch.setattr(pd, "__version__", "2.3.3")
    pd.testing.assert_series_equal(eval_expression(batch, expr), plain)
