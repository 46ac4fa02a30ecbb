"""Lambda verify: a ``json`` window key of numbers is read back with each value's type.

The handler writes a json key as its JSON text (a Timestream dimension), and verify read the table back
into a frame where pandas made a column of ints and floats float64: the key ``1`` came back ``1.0``,
which the comparison (json values keep their type: ``1`` and ``1.0`` are two keys) reported as a
difference, for a handler that had it right. ``-0.0`` and ``0.0`` (one key in streamlab, one number)
were told apart the same way.
"""

from __future__ import annotations

from pathlib import Path

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.aws_lambda import _results_from_timestream
from streamlab.export.verify import compare
from streamlab.testing import ListSource


def line(i: int, key: str) -> bytes:
    return f'{{"event_id": "e{i}", "timestamp": "2024-01-01T00:00:0{i}Z", "k": {key}}}'.encode()


def test_json_number_keys_are_read_back_with_their_types() -> None:
    records = [
        {
            "Dimensions": [{"Name": "pipeline", "Value": "p"}, {"Name": "k", "Value": text}],
            "Time": "1704067200000",
            "MeasureName": "window",
            "MeasureValues": [{"Name": "count", "Value": "1", "Type": "BIGINT"}],
        }
        for text in ("1", "2.5", "1.0")
    ]
    frame = _results_from_timestream(records, ("k",), {"k": "json"})
    assert [(type(v).__name__, v) for v in frame["k"]] == [("int", 1), ("float", 2.5), ("float", 1.0)]
    # a column of ints alone stays as it was read (int64)
    frame = _results_from_timestream(records[:1], ("k",), {"k": "json"})
    assert frame["k"].tolist() == [1] and frame["k"].dtype.kind == "i"


def test_verify_of_json_number_keys_is_equal_and_a_changed_type_still_differs(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="json_keys")
    p.parse({"event_id": "string", "timestamp": "timestamp", "k": "json"}).window(
        TumblingWindow("10s"), key="k"
    ).agg(agg.count())
    lines = [line(1, "1"), line(2, "2.5"), line(3, "1.0"), line(4, "null"), line(5, "-0.0"), line(6, "1")]
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff  # before: 1 and 1.0 came back 1.0, -0.0 came back 0.0
    assert report.counts["window"] == {"streamlab": 5, "lambda": 5}
    # the comparison still tells 1 from 1.0: a handler that merged them would differ
    tampered = dict(report.exported)
    frame = tampered["window"].copy()
    frame["k"] = [1.0 if type(v) is int else v for v in frame["k"]]
    tampered["window"] = frame
    equal, diff, _ = compare(p, report.local, tampered, "lambda")
    assert not equal and set(diff["output"]) == {"window"}
