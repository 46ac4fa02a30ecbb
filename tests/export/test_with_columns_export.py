"""``with_columns`` means in exported code what it means in streamlab: columns are set in order, each
expression seeing the columns before it, and a missing number is NaN in arithmetic, not an error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export._snippets import assign_exprs, eval_expr
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "event_type": "string", "amount": "float64"}


def chained() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="chained")
    events = p.parse(SCHEMA).with_columns(cents="amount * 100", dollars="cents / 100", step_id="cols")
    events.window(TumblingWindow("5s"), key="event_type").agg(
        agg.count(), agg.sum("dollars"), agg.max("cents")
    )
    return p


def lines() -> list[bytes]:
    """Twelve events, every third without an amount."""
    return [
        json.dumps(
            {
                "event_id": f"e{i}",
                "timestamp": 1_700_000_000_000 + i * 1000,
                "event_type": "buy" if i % 2 else "view",
                **({"amount": i * 1.5} if i % 3 else {}),
            }
        ).encode()
        for i in range(12)
    ]


def test_a_column_sees_the_columns_set_before_it_and_a_missing_number_is_nan() -> None:
    row = assign_exprs({"amount": 2.0, "event_type": None}, (("cents", "amount * 100"), ("d", "cents / 100")))
    assert row == {"amount": 2.0, "event_type": None, "cents": 200.0, "d": 2.0}
    missing = assign_exprs({"amount": None}, (("cents", "amount * 100"),))
    assert math.isnan(missing["cents"])
    assert eval_expr("amount > 0", {"amount": None}) is False  # a comparison with a missing value
    with pytest.raises(TypeError):  # a real type error still is one (the row goes to dead letter)
        eval_expr("name * 2.5", {"name": "x", "amount": None})


@pytest.mark.parametrize("target", ["lambda", "beam"])
def test_chained_columns_over_missing_amounts_export_equal(target: str, tmp_path: Path) -> None:
    report = verify(chained(), lines(), target, workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["window"] == {"streamlab": 6, target: 6}


def test_chained_columns_export_equal_on_spark(tmp_path: Path) -> None:
    """On Spark the step once ran in ``mapInPandas``: its ``reason`` column, without a value in a batch
    without dead letters, failed PySpark's conversion to Arrow (``TypeError: Cannot convert
    pyarrow.lib.ChunkedArray to pyarrow.lib.Array``), and with it every with_columns step; and the
    end-of-input row (at the year 3000, beyond pandas' nanoseconds) stopped before the step, so the
    window after it never closed its last window (10s-15s) in a bounded run."""
    report = verify(chained(), lines(), "spark", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["window"] == {"streamlab": 6, "spark": 6}
    assert report.counts["cols.dead_letter"] == {"streamlab": 0, "spark": 0}


def test_rows_with_columns_fails_on_go_to_its_dead_letter_on_spark(tmp_path: Path) -> None:
    """A batch the expressions fail on is evaluated row by row, a missing number NaN as in streamlab:
    the rows without an amount are dead letters with streamlab's reason, the others are counted."""
    p = Pipeline(ListSource([b"{}"]), name="casts")
    p.parse(SCHEMA).with_columns(whole="amount.astype('int64')", step_id="cols").window(
        TumblingWindow("5s"), key="event_type"
    ).agg(agg.count(), agg.sum("whole"))
    report = verify(p, lines(), "spark", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["cols.dead_letter"] == {"streamlab": 4, "spark": 4}
    assert report.counts["window"] == {"streamlab": 6, "spark": 6}


def test_spark_with_columns_keeps_big_integers_and_joins_text(tmp_path: Path) -> None:
    """A pass-through int64 column with a missing value in the batch went through pandas as float64:
    2**63 - 1 failed the job (ArrowInvalid), smaller ones were rounded; a text joined with ``+`` to a
    string constant was typed a double and dead-lettered by pandas' eval. Both as in streamlab now. So are
    columns computed from such a field (``j``, ``k``: pandas rounded them and 2**63 - 1 failed the job),
    and ``i.fillna(0)`` of the missing one is the int 0 (a window key)."""
    p = Pipeline(ListSource([b"{}"]), name="bigints")
    cols = p.parse({"event_id": "string", "timestamp": "timestamp", "i": "int64"}).with_columns(
        m="event_id + '_x'", j="i.fillna(0)", k="i - 1", step_id="cols"
    )
    cols.window(TumblingWindow("10s"), key="i").agg(agg.count(), agg.first("m"))
    cols.window(TumblingWindow("10s"), key="j", step_id="by_j").agg(agg.count(), agg.first("k"))
    sample = [
        b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:01Z", "i": 9223372036854775807}',
        b'{"event_id": "e2", "timestamp": "2024-01-01T00:00:02Z"}',
        b'{"event_id": "e3", "timestamp": "2024-01-01T00:00:03Z", "i": 9007199254740993}',
    ]
    report = verify(p, sample, "spark", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["cols.dead_letter"] == {"streamlab": 0, "spark": 0}
    assert report.counts["window"] == {"streamlab": 3, "spark": 3}
    assert sorted(report.exported["by_j"]["first_k"].dropna().tolist()) == [2**53, 2**63 - 2], (
        report.exported["by_j"]
    )
    assert sorted(report.exported["by_j"]["j"].tolist()) == [0, 2**53 + 1, 2**63 - 1]


@pytest.mark.parametrize("expr", ["-1.5 + a", "1.5 + a", "(b * 2) + a"])
def test_arithmetic_refused_on_a_json_field_dead_letters_alike_on_beam(expr: str, tmp_path: Path) -> None:
    """A json field holding text, an object or null beside numbers: those rows go to the dead letter with
    pandas' reason on both sides, worded alike ('object', not the garbled "'UnaryOp' object has no
    attribute 'type'", nor 'str' in the exported code's one-row frame), and the numbers compute."""
    values: list[object] = ["x", None, 3, {"k": 1}, 2.5]
    sample = [json.dumps({"t": i + 1, "a": v, "b": 1.0}).encode() for i, v in enumerate(values)]
    p = Pipeline(ListSource(sample))
    p.parse({"t": "timestamp", "a": "json", "b": "float64"}, time="t").with_columns(x=expr, step_id="named")
    report = verify(p, sample, "beam", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["named.dead_letter"] == {"streamlab": 3, "beam": 3}
    assert report.counts["named"] == {"streamlab": 2, "beam": 2}
    reasons = set(report.local["named.dead_letter"]["reason"])
    assert all(" raised TypeError: unsupported operand type(s) for " in r for r in reasons), reasons


@pytest.mark.parametrize("expr", ["a * 2", "-a", "a.str.len()", "a + '!'"])
def test_a_json_field_of_mixed_values_exports_equal_on_beam(expr: str, tmp_path: Path) -> None:
    """A json field holding an int, a float, a bool, null, text and an object in one batch: each row
    computes as it does alone, in the runtime as in the exported code, which reads a row at a time (the
    runtime made 3 * 2 a float beside 2.5, -True -1.0, a number's .str NaN beside text, and the export
    refused null joined with text)."""
    values: list[object] = [3, 2.5, True, None, "x", {"k": 1}]
    sample = [json.dumps({"t": i + 1, "a": v}).encode() for i, v in enumerate(values)]
    p = Pipeline(ListSource(sample))
    p.parse({"t": "timestamp", "a": "json"}, time="t").with_columns(x=expr, step_id="named")
    report = verify(p, sample, "beam", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
