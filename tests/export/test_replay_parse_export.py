"""A parse step on a column of replayed rows exports; the chained form is told to export its pipeline.

``Pipeline(ReplaySource(frame))`` followed by ``parse(..., value_column='value')`` is how a notebook
replays raw records held in a frame (notebook 05's Kinesis records): the column's texts are the records
the deployed job is given, one each, so the pipeline exports to every target. (A refusal of every parse
of replayed rows, tried this session, refused notebook 05's Lambda export: it is not made.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline, ReplaySource, TumblingWindow, agg

TARGETS = {"to_beam": "Apache Beam", "to_spark": "Spark", "to_flink": "Flink", "to_lambda": "AWS Lambda"}
FIELDS = {"event_id": "string", "user": "string", "timestamp": "timestamp"}
RECORDS = [{"event_id": f"e{i}", "user": "u", "timestamp": f"2024-01-01T00:00:0{i}Z"} for i in range(3)]
ROWS = pd.DataFrame({"ts": [r["timestamp"] for r in RECORDS], "payload": [json.dumps(r) for r in RECORDS]})


def _data(kind: str, tmp_path: Path) -> pd.DataFrame | Path:
    if kind == "csv":
        ROWS.to_csv(tmp_path / "x.csv", index=False)
        return tmp_path / "x.csv"
    if kind == "parquet directory":
        (tmp_path / "parts").mkdir()
        ROWS.to_parquet(tmp_path / "parts" / "part-0.parquet")
        return tmp_path / "parts"
    if kind == "jsonl read whole":
        (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS.to_dict("records")))
        return tmp_path / "x.jsonl"
    return ROWS


def _separate(data: pd.DataFrame | Path) -> Pipeline:
    p = Pipeline(ReplaySource(data, time="ts"), name="payloads")
    p.parse(FIELDS, value_column="payload").window(TumblingWindow("1m"), key="user").agg(agg.count())
    return p


def _chained(data: pd.DataFrame | Path) -> Pipeline:
    s = Pipeline(ReplaySource(data, time="ts"), name="payloads").parse(FIELDS, value_column="payload")
    s.window(TumblingWindow("1m"), key="user").agg(agg.count())
    return s.pipeline


@pytest.mark.parametrize("build", [_separate, _chained])
@pytest.mark.parametrize("kind", ["csv", "parquet directory", "jsonl read whole", "frame"])
@pytest.mark.parametrize("method", list(TARGETS))
def test_a_parse_of_a_replayed_column_exports(
    tmp_path: Path, method: str, kind: str, build: Callable[[pd.DataFrame | Path], Pipeline]
) -> None:
    p = build(_data(kind, tmp_path))
    assert p.run(clock=ManualClock(0))["window"]["count"].tolist() == [3]  # streamlab reads every row
    files = getattr(p, method)(str(tmp_path / "out"))
    assert files.module.exists()


@pytest.mark.parametrize("method", list(TARGETS))
def test_a_raw_json_lines_replay_still_exports(tmp_path: Path, method: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    p = Pipeline(ReplaySource(path, raw=True), name="raw")
    p.parse(FIELDS).window(TumblingWindow("1m"), key="user").agg(agg.count())
    assert p.run(clock=ManualClock(0))["window"]["count"].tolist() == [3]
    files = getattr(p, method)(str(tmp_path / "out"))
    assert files.module.exists()


@pytest.mark.parametrize("function", ["to_beam", "to_spark", "to_flink", "to_lambda", "verify"])
def test_the_chained_form_is_told_to_export_its_pipeline(tmp_path: Path, function: str) -> None:
    # Pipeline(...).parse(...) holds the parsed stream: the exporters failed on it with AttributeError
    # ('ParsedStream' object has no attribute 'steps'), and a stream has no to_beam method
    from streamlab import export
    from streamlab.export.flink import to_flink

    stream = Pipeline(ReplaySource(_data("csv", tmp_path), time="ts")).parse(FIELDS, value_column="payload")
    call = to_flink if function == "to_flink" else getattr(export, function)
    with pytest.raises(
        TypeError, match=rf"^{function}: expected a Pipeline, got a ParsedStream .*stream\.pipeline"
    ):
        call(stream, *([[b"{}"], "beam"] if function == "verify" else [str(tmp_path / "out")]))
    assert not (tmp_path / "out").exists()
