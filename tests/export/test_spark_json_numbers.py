"""Spark export: a window over a ``json`` field takes its values as streamlab does.

The job held a ``json`` field as its JSON text and aggregated ``CAST(j AS DOUBLE)``: under Spark 4's ANSI
mode the text of a string (``'"2"'``), of ``true`` or of an object fails the cast, and the query with
it, on every retry of its micro-batch. streamlab reads ``"2"`` as 2 and ``true`` as 1, and sets aside on
the window's dead letters (``unfit_reason``) a value that is no number, and a key that is an object or
an array, which the job grouped by their text. The job now runs streamlab's rule on such windows
(``unfit_batches``) and aggregates the values it reads.

The job's JSON outputs are written as streamlab's JSON sinks write rows (``json_lines``): Spark's own
writer wrote an infinite ``DOUBLE`` as the string ``"Infinity"``, a json field as a quoted text, and left
missing fields out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_spark, verify
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "user_id": "string", "timestamp": "timestamp", "j": "json", "x": "float64"}
# the JSON texts of ``j``: numbers, a number's text, text, true, an object, a list, a 400-digit integer,
# a number beyond a double (1e400: inf), zeros (-0.0 is the key 0.0, as in streamlab), a missing value and
# a repeat (dropped by the dedup)
VALUES = ["1", '"2"', '"x"', "true", '{"a":1}', "[1]", "9" * 400, "1e400", "0.0", "null", "2.5", "3", "-0.0"]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from streamlab.export import spark as spark_export

    yield spark_export.spark_session()


def lines() -> list[bytes]:
    out = [
        b'{"event_id":"e%d","user_id":"u%d","timestamp":"2024-01-01T00:00:%02dZ","j":%s}'
        % (i, i % 3, i, v.encode())
        for i, v in enumerate(VALUES)
    ]
    out.append(out[1])  # a repeat of e1
    # a window without values of j, whose sum of x overflows to inf
    out.append(b'{"event_id":"z1","user_id":"u1","timestamp":"2024-01-01T00:05:00Z","x":1e308}')
    out.append(b'{"event_id":"z2","user_id":"u1","timestamp":"2024-01-01T00:05:01Z","x":1e308}')
    return out


def pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="json_numbers")
    events = p.parse(SCHEMA).dedup("event_id", ttl="10m")  # rows carry their arrival order
    events.window(TumblingWindow("1m"), key="user_id", step_id="sums").agg(
        agg.count(),
        agg.sum("j"),
        agg.mean("j"),
        agg.min("j"),
        agg.max("j"),
        agg.first("j"),
        agg.sum("x"),
        agg.mean("x"),
    )
    events.window(TumblingWindow("1m"), key="j", step_id="by_j").agg(agg.count(), agg.last("user_id"))
    return p


def test_the_job_sets_aside_what_streamlab_does_and_sums_the_rest(tmp_path: Path) -> None:
    code = to_spark(pipeline(), tmp_path).module.read_text()
    assert "unfit_batches(batches" in code and "def unfit_reason(" in code
    assert "F.sum(F.col('_num_j'))" in code and "cast('double')).alias('sum_j')" not in code


def test_windows_over_a_json_field_on_spark_equal_streamlab(spark: Any, tmp_path: Path) -> None:
    report = verify(pipeline(), lines(), target="spark", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["sums"] == {"streamlab": 4, "spark": 4}
    assert report.counts["sums.dead_letter"] == {"streamlab": 3, "spark": 3}
    assert report.counts["by_j.dead_letter"] == {"streamlab": 2, "spark": 2}
    reasons = sorted(report.exported["by_j.dead_letter"]["reason"])
    assert reasons == [
        "key column 'j' holds dict {'a': 1}, which cannot be a key",
        "key column 'j' holds list [1], which cannot be a key",
    ]
    sums = report.exported["sums"]
    first = sums[sums["window_start"] == sums["window_start"].min()].set_index("user_id")
    # u2: "x" and [1] set aside, 0.0 and 3 taken; u1: "2" (read as 2), 1e400 and 2.5; u0: 1, true and
    # the 400-digit integer (an infinity)
    assert first.loc["u2", "sum_j"] == 3.0 and first.loc["u2", "min_j"] == 0.0
    # the infinities are null in the job's JSON, as in streamlab's JSON sinks
    assert pd.isna(first.loc["u1", "sum_j"]) and pd.isna(first.loc["u0", "max_j"])
    local = report.local["sums"]
    assert math.isinf(local["sum_j"].max())
    last = sums[sums["window_start"] > sums["window_start"].min()]
    assert len(last) == 1 and pd.isna(last["sum_x"].iloc[0]) and last["sum_j"].iloc[0] == 0.0


def test_verify_compares_json_and_object_columns_by_value() -> None:
    # verify left json and object columns out of the Spark comparison: a first(properties) or a json key
    # the job got wrong was never reported. It now compares the values (the job writes them nested).
    from streamlab.export.spark import compare_spark, compared_streams
    from streamlab.export.verify import run_local

    p = Pipeline(ListSource([b"{}"]), name="props")
    p.parse().window(TumblingWindow("1m"), key="user_id", step_id="w").agg(
        agg.first("properties"), agg.count()
    )
    sample = [
        b'{"event_id":"a","user_id":"u","timestamp":"2024-01-01T00:00:01Z","properties":{"k":[1,null],"z":"\\u00e9"}}',
        b'{"event_id":"b","user_id":"v","timestamp":"2024-01-01T00:00:02Z","properties":{}}',
    ]
    local = run_local(p, sample)
    compared = compared_streams(p, ["w", "parse.dead_letter"])
    assert "first_properties" in compared["w"][0]
    written = local["w"].assign(
        first_properties=[json.loads(json.dumps(v)) for v in local["w"]["first_properties"]]
    )
    equal, diff, _, _ = compare_spark(p, local, {"w": written}, compared, {})
    assert equal, diff
    wrong = written.assign(first_properties=[{"k": [1, 2], "z": "\u00e9"}, {}])
    equal, diff, _, _ = compare_spark(p, local, {"w": wrong}, compared, {})
    assert not equal and set(diff["output"]) == {"w"}
