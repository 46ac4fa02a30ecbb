"""Beam export of detector, feature, rule, drift and pattern steps: the fraud and IoT pipelines of notebooks
08 and 09, on the bundled datasets' real records, give streamlab's scores, alerts and matches."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlab.datasets import load

from streamlab import Pipeline
from streamlab.detectors import (
    Detect,
    HalfSpaceTreesDetector,
    PatternStep,
    QuantileThresholdFilter,
    RiverDetector,
    VelocityFeature,
)
from streamlab.errors import PipelineConfigError
from streamlab.export import to_beam, verify
from streamlab.export.verify import compare, run_local, sample_lines
from streamlab.testing import ListSource

from ._detector_samples import IOT_SCHEMA, TX_SCHEMA, fraud_pipeline, fraud_sample, iot_pipeline, iot_sample

pytest.importorskip("apache_beam")


@pytest.mark.slow
def test_fraud_pipeline_on_beam_equals_streamlab(tmp_path: Path) -> None:
    sample = fraud_sample()
    report = verify(fraud_pipeline(), sample, "beam", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    scored = report.local["detect"]
    assert report.counts["detect"] == {"streamlab": 400, "beam": 400}
    assert scored["is_anomaly"].any() and scored["is_alert"].any() and (scored["score"] > 0).any()
    assert report.counts["pattern"]["streamlab"] > 0
    assert report.counts["velocity_feature.dead_letter"] == {"streamlab": 1, "beam": 1}  # no card_id
    exported = report.exported["detect"].sort_values("event_id")
    local = scored.sort_values("event_id")
    assert exported["score"].tolist() == pytest.approx(local["score"].tolist(), rel=1e-12)


@pytest.mark.slow
def test_iot_pipeline_on_beam_equals_streamlab(tmp_path: Path) -> None:
    devices = ["dev-0000", "dev-0007", "dev-0022"]
    report = verify(iot_pipeline(devices[:1]), iot_sample(devices), "beam", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    scored = report.local["combine"]
    assert report.counts["combine"] == {"streamlab": 240, "beam": 240}
    assert (scored["score_vibration"] > 0.5).any() and (scored["score_temperature"] == 0).any()  # after grace
    assert report.counts["drift_dev-0000"]["beam"] > 0


@pytest.mark.slow
def test_generated_module_backfills_a_file_of_bytes_through_its_command_line(tmp_path: Path) -> None:
    """``--input`` without ``--replay``: the bounded backfill, read as bytes (an invalid UTF-8 line included),
    through the module's own command line and files sink."""
    import subprocess
    import sys

    lines = [*fraud_sample()[:150], b"\xff\xfe not utf-8"]
    p = Pipeline(ListSource([b"{}"]), name="scores")
    features = p.parse(TX_SCHEMA).apply(VelocityFeature("card_id", window="10m", value="amount"))
    features.detect(
        HalfSpaceTreesDetector(seed=7, window_size=40),
        features=["amount", "count_10m"],
        threshold=QuantileThresholdFilter(0.95, warmup=40),
        step_id="detect",
    )
    files = to_beam(p, tmp_path / "export", runner_source="file")
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cmd = [
        sys.executable,
        str(files.module),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(tmp_path / "out"),
    ]
    done = subprocess.run([*cmd, "--runner", "DirectRunner"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    def rows(name: str) -> pd.DataFrame:
        found = [
            json.loads(x) for f in (tmp_path / "out").glob(f"{name}-*") for x in f.read_text().splitlines()
        ]
        return pd.DataFrame(found)

    exported = {"detect": rows("detect"), "parse.dead_letter": rows("parse_dead_letter")}
    local = run_local(p, lines)
    outputs = {
        "detect": (["event_id", "count_10m", "sum_amount_10m", "score", "is_anomaly"], {"timestamp"}),
        "parse.dead_letter": (["raw", "reason", "step_id"], set()),
    }
    equal, diff, counts = compare(p, local, exported, "beam", outputs=outputs)
    assert equal, diff.head(20).to_string()
    assert counts["detect"] == {"streamlab": 148, "beam": 148}  # 150 lines: one not JSON, one without card_id
    assert counts["parse.dead_letter"] == {"streamlab": 2, "beam": 2}
    assert local["detect"]["is_anomaly"].any()


def test_a_match_only_the_end_of_input_completes_is_written_by_the_streaming_replay(tmp_path: Path) -> None:
    """The last record completes a two-country match: streamlab releases it at the end of its bounded
    source; the module's streaming replay (what verify runs) must write it too, where it once stamped
    it with the end of time and the file sink lost it."""
    p = Pipeline(ListSource([b"{}"]), name="ending")
    p.parse(TX_SCHEMA).pattern(
        "card_id",
        [
            PatternStep("home", "amount > 0"),
            PatternStep("abroad", "amount > 0", differs_from={"country": "home"}),
        ],
        within="1h",
        delay="2s",
        name="two_countries",
        step_id="pattern",
    )
    tx = load("transactions")
    card = tx[tx.card_id == "card-001121"]
    last = int(card.index[card.event_id == "txn-11-0000004162"][0])  # its first abroad transaction
    lines = sample_lines(tx.iloc[last - 30 : last + 1])
    report = verify(p, lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["pattern"] == {"streamlab": 1, "beam": 1}


def test_steps_without_a_per_record_form_are_refused_naming_the_step(tmp_path: Path) -> None:
    from river import anomaly

    p = Pipeline(ListSource([b"{}"]), name="custom")
    p.parse(IOT_SCHEMA).detect(
        RiverDetector(anomaly.HalfSpaceTrees(seed=1)), features=["vibration"], step_id="mine"
    )
    with pytest.raises(PipelineConfigError, match=r"step 'mine' \(RiverDetector\).*arbitrary river model"):
        to_beam(p, tmp_path / "a")
    q = Pipeline(ListSource([b"{}"]), name="unseeded")
    q.parse(IOT_SCHEMA).apply(Detect(HalfSpaceTreesDetector(), features=["vibration"]), step_id="trees")
    with pytest.raises(PipelineConfigError, match=r"step 'trees' .*seed=None.*pass seed=42"):
        to_beam(q, tmp_path / "b")


def test_bigquery_tables_hold_the_columns_detector_steps_add(tmp_path: Path) -> None:
    from streamlab.export import _plan

    files = to_beam(fraud_pipeline(), tmp_path, sink="bigquery")
    tables = _plan.const_value(files.read("fraud_beam.py"), "BIGQUERY_TABLES")
    detect = {f["name"]: f["type"] for f in tables["detect"][0]}
    assert {k: detect[k] for k in ("count_10m", "sum_amount_10m", "burst_count", "rule", "is_alert")} == {
        "count_10m": "INT64",
        "sum_amount_10m": "FLOAT64",
        "burst_count": "INT64",
        "rule": "STRING",
        "is_alert": "BOOL",
    }
    assert (detect["score"], detect["is_anomaly"], detect["timestamp"]) == ("FLOAT64", "BOOL", "TIMESTAMP")
    pattern = {f["name"]: f["type"] for f in tables["pattern"][0]}
    assert pattern == {
        "card_id": "STRING",
        "pattern": "STRING",
        "first_time": "TIMESTAMP",
        "last_time": "TIMESTAMP",
        "event_ids": "JSON",
        "n_events": "INT64",
    }


def test_a_differs_from_value_that_cannot_be_told_apart_goes_to_dead_letter_on_beam(tmp_path: Path) -> None:
    """A dict or a list in a pattern's ``differs_from`` column (a ``json`` field) is a dead letter with
    the same reason in streamlab and on Beam; the other rows still match."""
    p = Pipeline(ListSource([b"{}"]), name="countries")
    schema = {"event_id": "string", "card_id": "string", "country": "json", "timestamp": "timestamp"}
    p.parse(schema).pattern(
        "card_id",
        [
            PatternStep("home", "card_id == card_id"),
            PatternStep("abroad", "card_id == card_id", differs_from={"country": "home"}),
        ],
        within="1h",
        name="two_countries",
        step_id="pattern",
    )
    countries = ["FR", {"c": "US"}, "FR", ["US"], "US", "DE"]
    lines = [
        json.dumps(
            {"event_id": f"e{i}", "card_id": "c1", "country": c, "timestamp": f"2024-03-01T00:00:{i:02d}Z"}
        ).encode()
        for i, c in enumerate(countries)
    ]
    report = verify(p, lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    dead = report.local["pattern.dead_letter"].set_index("event_id")["reason"].to_dict()
    why = "value column 'country' holds a dict or a list, which differs_from cannot tell apart"
    assert dead == {"e1": why, "e3": why}
    assert [list(ids) for ids in report.local["pattern"]["event_ids"]] == [["e0", "e4"]]
