"""select('a', b='a') keeps ``a`` and copies it as ``b`` in the exported code too (the Beam and Lambda
exports read the step's columns as a mapping keyed by the input, so the two outputs of ``a`` collapsed);
the runtime and the spec are tested in tests/core/test_select_one_column_twice.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.testing import ListSource


@pytest.mark.services
def test_the_lambda_export_gives_both_outputs(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="select_twice")
    p.parse({"event_id": "string", "amount": "float64", "timestamp": "timestamp"}).select(
        "event_id", "amount", "timestamp", total="amount", step_id="sel"
    ).window(TumblingWindow("1m"), step_id="w").agg(agg.sum("amount"), agg.sum("total"))
    lines = [
        json.dumps({"event_id": f"e{i}", "amount": 1.5 * i, "timestamp": f"2024-01-01T00:00:0{i}Z"}).encode()
        for i in range(3)
    ]
    report = verify(p, lines, "lambda", workdir=tmp_path, lambda_batch_size=2)
    assert report.equal, report.diff
    assert report.counts["w"] == {"streamlab": 1, "lambda": 1}
    (row,) = report.exported["w"].to_dict("records")
    assert row["sum_amount"] == row["sum_total"] == 4.5
