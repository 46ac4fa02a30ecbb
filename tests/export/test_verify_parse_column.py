"""``verify`` of a pipeline whose parse reads a column other than ``value`` (``parse(...,
value_column='payload')`` of replayed rows): streamlab's run was given a ``value`` column and failed
with ``KeyError: the input has no column 'payload'`` before anything was compared. The sample's records
now reach the parse's own column, as the exported jobs are given them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg
from streamlab.export import verify

FIELDS = {"event_id": "string", "user": "string", "timestamp": "timestamp"}
RECORDS = [{"event_id": f"e{i}", "user": "u", "timestamp": f"2024-01-01T00:0{i}:0{i}Z"} for i in range(5)]
ROWS = pd.DataFrame(
    {
        "ts": [r["timestamp"] for r in RECORDS] + ["2024-01-01T00:09:00Z"],
        "payload": [json.dumps(r) for r in RECORDS] + ["oops"],
    }
)


def _pipeline() -> Pipeline:
    p = Pipeline(ReplaySource(ROWS, time="ts"), name="payloads")
    p.parse(FIELDS, value_column="payload").window(TumblingWindow("2m"), key="user").agg(agg.count())
    return p


@pytest.mark.slow
@pytest.mark.parametrize("target", ["beam", "lambda"])
@pytest.mark.parametrize("given", ["replayed rows", "records"])
def test_verify_feeds_the_parsed_column(tmp_path: Path, target: str, given: str) -> None:
    if target == "beam":
        pytest.importorskip("apache_beam")
    sample = ROWS if given == "replayed rows" else ROWS["payload"].tolist()
    report = verify(_pipeline(), sample, target, workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, target: 1}
    assert sorted(report.local["window"]["count"].tolist()) == [1, 2, 2]


@pytest.mark.slow
def test_verify_feeds_the_parsed_column_to_spark(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    report = verify(_pipeline(), ROWS, "spark", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, "spark": 1}


@pytest.mark.slow
def test_verify_feeds_the_parsed_column_to_flink(tmp_path: Path) -> None:
    report = verify(_pipeline(), ROWS, "flink", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, "flink": 1}
