"""``agg.count_distinct`` compares values as Python and pandas do (``Series.nunique`` on an object
column counts 1, 1.0 and True as one value), in streamlab and in every exported job.

The Flink SQL job compared a ``json`` field's JSON text (``COUNT(DISTINCT)`` of '1', '1.0' and 'true' is
3; ``MIN`` ordered '10' before '9'); such a window now goes to the DataStream job, which runs the
combiners the Beam and Lambda code run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import _snippets, to_flink
from streamlab.testing import ListSource

VALUES = [1, 1.0, True, "1", None, 0, False, -0.0, 0.0, "a", 2.5]


def _pipeline(kind: str, aggregator: agg.Aggregator) -> Pipeline:
    recs = [json.dumps({"timestamp": 1_704_067_200 + i, "v": v}).encode() for i, v in enumerate(VALUES)]
    p = Pipeline(ListSource(recs), name="distinct")
    p.parse({"timestamp": "timestamp", "v": kind}).window(TumblingWindow("1m"), step_id="w").agg(aggregator)
    return p


def test_count_distinct_of_a_json_field_is_pandas_nunique_and_the_exported_combiners():
    expected = pd.Series(VALUES, dtype=object).nunique()  # 1/1.0/True, 0/False/-0.0/0.0, "1", "a", 2.5
    assert expected == 5
    got = _pipeline("json", agg.count_distinct("v")).run().outputs["w"]["count_distinct_v"].tolist()
    assert got == [expected]
    # Beam and the Flink DataStream job add rows one by one; Lambda also carries the state through JSON
    combine = _snippets.CountDistinctCombine("v")
    halves = []
    for part in (VALUES[:4], VALUES[4:]):
        acc = combine.create_accumulator()
        for v in part:
            acc = combine.add_input(acc, {"v": v}, 0)
        halves.append(combine.from_json(json.loads(json.dumps(combine.to_json(acc)))))
    assert combine.extract_output(combine.merge_accumulators(halves)) == expected


@pytest.mark.parametrize("aggregator", [agg.count_distinct("v"), agg.min("v"), agg.max("v")])
def test_flink_sql_leaves_value_comparisons_of_a_json_field_to_the_datastream_job(aggregator, tmp_path: Path):
    files = to_flink(_pipeline("json", aggregator), tmp_path / "json")
    written = {p.name for p in (tmp_path / "json").iterdir()}
    assert "job.sql" not in written and "datastream.py" in written, written
    readme = (tmp_path / "json" / "README.md").read_text()
    assert "over the json field 'v' would compare its JSON text" in readme
    assert files is not None
    # a typed field compares values in SQL as streamlab does: the SQL job is kept
    typed = "string" if aggregator.kind == "count_distinct" else "float64"
    to_flink(_pipeline(typed, aggregator), tmp_path / "typed")
    assert (tmp_path / "typed" / "job.sql").exists()
