"""The per-record evaluator of expressions (``streamlab.export._snippets.eval_expr``, which the exported
Beam, Lambda, Spark and Flink jobs run) on an int beyond a double's range, a 400-digit JSON number.

It asks pandas for a one-row frame's answer there, and pandas 2 could not build the frame
(``pd.DataFrame([row])`` raised OverflowError trying floats), so on pandas 2 such a row went to dead
letter where streamlab's own columns (and pandas 3) compare the Python int.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from streamlab import _detector_record as rec
from streamlab._transforms import FilterOperator
from streamlab.detectors import ThresholdRule
from streamlab.export._detectors import row_step_spec
from streamlab.export._snippets import eval_expr, filter_keeps

HUGE = 10**400


@pytest.mark.parametrize(
    ("expr", "row", "want"),
    [
        ("amount > 100", {"amount": HUGE}, True),
        ("amount > 100", {"amount": -HUGE}, False),
        ("amount != 7", {"amount": HUGE}, True),
        ("amount < 10 or n == 2", {"amount": HUGE, "n": 2}, True),
        ("amount == other", {"amount": HUGE, "other": HUGE}, True),
        ("n > 1", {"amount": HUGE, "n": 2}, True),  # a huge value in a column the expression does not read
    ],
)
def test_an_int_beyond_a_double_is_compared_as_the_int_it_is(
    expr: str, row: dict[str, Any], want: bool
) -> None:
    assert eval_expr(expr, row) is want


def test_the_exported_filter_keeps_what_streamlabs_filter_keeps() -> None:
    amounts = [HUGE, 5, -HUGE, 500]
    frame = pd.DataFrame({"event_id": range(4), "amount": pd.Series(amounts, dtype=object)})
    res = FilterOperator("f", "amount > 100", None, False).process(frame)
    assert res["out"]["event_id"].tolist() == [0, 3]
    assert len(res.get("dead_letter", ())) == 0
    assert [filter_keeps("amount > 100", r) for r in frame.to_dict("records")] == [True, False, False, True]


def test_the_exported_rule_alerts_where_streamlabs_rule_alerts() -> None:
    rule = ThresholdRule("big", expr="amount > 100")
    frame = pd.DataFrame({"event_id": range(4), "amount": pd.Series([HUGE, 5, -HUGE, 500], dtype=object)})
    res = rule.build().process(frame)
    assert res["out"]["is_alert"].tolist() == [True, False, False, True]
    machine = rec.make_step(row_step_spec(rule, "rule"), eval_expr, None, None)
    outputs = [machine.process(r) for r in frame.to_dict("records")]
    assert [o for [(o, _)] in outputs] == ["out"] * 4
    assert [r["is_alert"] for [(_, r)] in outputs] == [True, False, False, True]


def _scaled(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "scaled": event["n"] * 10**400 if event["n"] == 2 else event["n"] / 2}


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_a_per_event_function_returning_a_huge_int_beside_floats_keeps_both(batch_size: int) -> None:
    # pandas 2 (Python 3.10's) could not build the batch's frame from such rows (OverflowError): the
    # whole batch failed on every retry; pandas 3 kept the objects
    from streamlab import ListSink, ListSource, ManualClock, Pipeline

    rows = [{"n": n, "timestamp": "2024-01-01T00:00:00Z"} for n in (1, 2, 3, 4)]
    p = Pipeline(ListSource(rows, batch_size=batch_size))
    out, dead = ListSink(), ListSink()
    mapped = p.map_one(_scaled)
    mapped.to(out)
    mapped.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    assert dead.frame().empty
    got = [v for batch in out.batches for v in batch["scaled"].tolist()]
    assert got == [0.5, 2 * 10**400, 1.5, 2.0] and type(got[1]) is int
