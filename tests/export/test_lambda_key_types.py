"""A Lambda window keyed by an int64 (or bool) column verifies equal: Timestream holds the key as a
dimension, text by design, and ``verify`` reads it back as the key column's type."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.aws_lambda import _results_from_timestream
from streamlab.testing import ListSource

BIG = 2**62 + 3


def test_dimensions_read_back_as_the_key_types() -> None:
    dims = [{"Name": "n", "Value": str(BIG)}, {"Name": "b", "Value": "True"}, {"Name": "s", "Value": "7"}]
    rec = {"Dimensions": dims, "Time": "0", "MeasureName": "window", "MeasureValues": []}
    got = _results_from_timestream([rec], ("n", "b", "s"), {"n": "int64", "b": "bool", "s": "string"})
    assert got[["n", "b", "s"]].to_dict("records") == [{"n": BIG, "b": True, "s": "7"}]


@pytest.mark.services
def test_an_int_keyed_window_on_lambda_verifies_equal(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    lines = [b'{"timestamp": 1, "n": 7}', b'{"timestamp": 2, "n": 7}', b'{"timestamp": 3, "n": %d}' % BIG]
    p = Pipeline(ListSource([b"{}"]), name="intkey")
    p.parse({"timestamp": "timestamp", "n": "int64"}).window(TumblingWindow("1m"), key="n").agg(agg.count())
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert sorted(report.exported["window"]["n"].tolist()) == [7, BIG]
