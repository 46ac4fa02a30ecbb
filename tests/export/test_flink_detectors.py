"""Flink export of detector, feature, rule, drift and pattern steps: the DataStream job alone.

Flink SQL cannot say these steps, so ``to_flink`` writes ``datastream.py`` alone, which runs streamlab's
per-record state machines (``streamlab._detector_record``) in keyed state. The engine tests run the fraud
and IoT pipelines of notebooks 08 and 09 (as test_beam_detectors.py builds them) on Flink's mini-cluster,
in PyFlink's own environment with river, on small samples of the bundled datasets' real records.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from streamlab.datasets import load

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import HalfSpaceTreesDetector, RiverDetector, ZScoreFeature
from streamlab.errors import PipelineConfigError
from streamlab.export import to_flink, verify
from streamlab.export.flink import FLINK_RIVER_VERSION, flink_env_dir, flink_requirements
from streamlab.export.verify import sample_lines
from streamlab.testing import ListSource

from ._detector_samples import BAD, IOT_SCHEMA, fraud_pipeline, iot_pipeline
from ._samples import SCHEMA

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def fraud_sample() -> list[bytes]:
    """60 transactions around the second geo-jump incident (a two-country match, anomalies once the
    quantile has warmed up, alerts), with a record that is not JSON and one without a card."""
    tx = load("transactions")
    start = int(tx.index[tx.fraud_pattern.eq("geo_jump")][1]) - 30
    lines = sample_lines(tx.iloc[start : start + 60])
    return lines[:20] + BAD + lines[20:]


def iot_sample() -> list[bytes]:
    """Two devices' first 25 readings each (a Gaussian scorer's grace period is 20)."""
    readings = load("iot")
    return sample_lines(readings[readings.device_id.isin(["dev-0000", "dev-0007"])].head(50))


@pytest.mark.integration  # PyFlink's mini-cluster (a JVM)
def test_fraud_and_iot_pipelines_on_the_flink_engine_equal_streamlab(
    flink_python: str, tmp_path: Path
) -> None:
    """Both jobs at once (the JVM's start dominates each), through ``verify``."""
    pool = ThreadPoolExecutor(1)
    iot = pool.submit(
        verify,
        iot_pipeline(["dev-0000"]),
        iot_sample(),
        "flink",
        workdir=tmp_path / "iot",
        flink_python=flink_python,
    )
    try:
        report = verify(
            fraud_pipeline(), fraud_sample(), "flink", workdir=tmp_path / "fraud", flink_python=flink_python
        )
        iot_report = iot.result(timeout=600)
    finally:
        pool.shutdown(wait=True)
    assert report.equal, report.diff.head(20).to_string()
    assert sorted(report.files.files) == ["README.md", "datastream.py", "main.tf", "requirements.txt"]
    assert report.counts["detect"] == {"streamlab": 60, "flink": 60}
    scored = report.local["detect"]
    assert scored["is_anomaly"].sum() > 0 and scored["is_alert"].sum() > 0
    assert report.counts["pattern"] == {"streamlab": 1, "flink": 1}  # released at the end of the input
    assert report.counts["velocity_feature.dead_letter"] == {"streamlab": 1, "flink": 1}  # no card_id
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, "flink": 1}
    exported = report.exported["detect"].sort_values("event_id")
    assert exported["score"].tolist() == pytest.approx(scored.sort_values("event_id")["score"].tolist())
    assert any(f"river {FLINK_RIVER_VERSION}" in n for n in report.notes)
    assert any("datastream.py alone" in n and "'velocity_feature'" in n for n in report.notes)
    # IoT: a Gaussian scorer per device and metric, filters and with_columns, ADWIN on one device
    assert iot_report.equal, iot_report.diff.head(20).to_string()
    combined = iot_report.local["combine"]
    assert iot_report.counts["combine"] == {"streamlab": 50, "flink": 50}
    assert (combined["score_vibration"] > 0.5).any() and (combined["score_temperature"] == 0).any()
    assert iot_report.counts["drift_dev-0000"]["flink"] == 25  # one device's unflagged readings


def test_the_datastream_only_export_says_why_and_lists_river(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="scores")
    p.parse(IOT_SCHEMA).apply(ZScoreFeature("device_id", "temperature")).detect(
        HalfSpaceTreesDetector(seed=7), features=["temperature"], step_id="trees"
    )
    out = to_flink(p, tmp_path, source="kafka", sink="kafka")
    assert out.module.name == "datastream.py" and "main.py" not in out.files
    assert out.read("requirements.txt").endswith(f"\napache-flink==2.2.*\nriver=={FLINK_RIVER_VERSION}\n")
    readme = out.read("README.md")
    assert "**Why no Flink SQL job (`job.sql`, `main.py`)**: step `zscore_feature` (ZScoreFeature)" in readme
    assert "flink run -py datastream.py" in readme and "`trees` (detect)" in readme
    assert 'python  = "datastream.py"' in out.read("main.tf")
    text = out.read("datastream.py")
    assert "class Steps(KeyedProcessFunction)" in text and "def make_step(" in text
    assert "\nimport streamlab" not in text and "\nfrom streamlab" not in text
    lint = [sys.executable, "-m", "ruff", "check", "--config", str(PYPROJECT), str(out.module)]
    result = subprocess.run(lint, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    with pytest.raises(PipelineConfigError, match=r"no SQL job \(main\.py\).*'zscore_feature'"):
        verify(p, [], target="flink", workdir=tmp_path / "v", flink_job="sql")


def test_an_aggregator_sql_lacks_moves_the_window_to_the_datastream_job(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="firsts")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type").agg(agg.first("user_id"))
    out = to_flink(p, tmp_path)
    assert "main.py" not in out.files and "datastream.py" in out.files
    why = " ".join(out.read("README.md").split())
    assert "step `window` (window): cannot export to Flink SQL: aggregator" in why
    assert "'kind': 'first'" in why and "has no Flink SQL equal" in why
    assert out.read("requirements.txt").endswith("\napache-flink==2.2.*\n")


def test_steps_neither_job_runs_are_refused_naming_the_step(tmp_path: Path) -> None:
    from river import anomaly

    p = Pipeline(ListSource([b"{}"]), name="custom")
    p.parse(IOT_SCHEMA).detect(
        RiverDetector(anomaly.HalfSpaceTrees(seed=1)), features=["vibration"], step_id="mine"
    )
    with pytest.raises(PipelineConfigError, match=r"step 'mine' \(RiverDetector\).*arbitrary river model"):
        to_flink(p, tmp_path / "a")
    q = Pipeline(ListSource([b"{}"]), name="unseeded")
    q.parse(IOT_SCHEMA).detect(HalfSpaceTreesDetector(), features=["vibration"], step_id="trees")
    with pytest.raises(PipelineConfigError, match=r"step 'trees' .*seed=None.*pass seed=42"):
        to_flink(q, tmp_path / "b")


def test_the_environment_is_rebuilt_when_its_requirements_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlab.export import flink

    assert flink_requirements() == ["apache-flink==2.3.0", f"river=={FLINK_RIVER_VERSION}"]
    before = flink_env_dir()
    monkeypatch.setattr(flink, "FLINK_RIVER_VERSION", "0.22.0")
    assert flink_env_dir() != before and flink_env_dir().name.startswith("pyflink-2.3.0-")
