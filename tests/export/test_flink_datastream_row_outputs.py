"""verify compares every output the Flink DataStream job writes: the rows of filter, map and select steps
and their dead letters. It compared them only downstream of a detector step, so a pipeline of row steps
(the DataStream job alone: Flink SQL cannot carry filters) was reported equal with its rows unread."""

from __future__ import annotations

import json
from pathlib import Path

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.flink_datastream import datastream_compared
from streamlab.testing import ListSource

SCHEMA = {"k": "string", "n": "int64", "x": "float64", "timestamp": "timestamp"}
LINES = [
    json.dumps({"k": k, "n": n, "x": x, "timestamp": f"2024-01-01T00:00:{s:02d}Z"}).encode()
    for s, (k, n, x) in enumerate([("a", 3, 1e308), ("b", None, 1e308), ("a", 0, 1e308), ("c", -7, None)])
]


def rows() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="rows")
    events = p.parse(SCHEMA)
    events.with_columns(third="n // 3", k2="k + '!'", step_id="computed").filter(
        "10 // n > 1", step_id="kept"
    )
    events.window(TumblingWindow("1m"), key="k", step_id="w").agg(agg.count())
    return p


def test_the_row_outputs_are_among_what_is_compared() -> None:
    compared = datastream_compared(rows())
    assert {"kept", "kept.dead_letter", "computed.dead_letter"} <= set(compared)
    assert "third" in compared["kept"][0] and compared["kept"][1] == {"timestamp"}


def test_the_datastream_jobs_row_outputs_equal_streamlabs(flink_python: str, tmp_path: Path) -> None:
    report = verify(rows(), LINES, target="flink", workdir=tmp_path, flink_python=flink_python)
    assert report.equal, report.diff
    assert report.counts["kept"] == {"streamlab": 2, "flink": 2}
    assert report.counts["kept.dead_letter"] == {"streamlab": 0, "flink": 0}
    wrong = {ref: frame.copy() for ref, frame in report.exported.items()}
    wrong["kept"].loc[0, "k2"] = "b!"  # a value the job got wrong in a row output is a difference
    from streamlab.export.verify import compare

    equal, diff, _ = compare(
        rows(), report.local, wrong, "flink", outputs=datastream_compared(rows()), time_unit_ns=1000
    )
    assert not equal and set(diff["output"]) == {"kept"}
