"""Spark export of detector, feature, rule, drift and with_columns steps: the fraud and IoT pipelines of
notebooks 08 and 09 (the ones the Beam export verifies) give streamlab's scores, alerts and drifts.

The property test drives the generated group function in this process, with Spark's way of handing
rows over (micro-batches, each shuffled: a shuffle loses arrival order) and a stand-in for its group
state, so the arrival sequence (``_src``, ``_seq``) is what restores streamlab's order; the engine
tests run the jobs on Spark in local mode through ``verify`` (one session for the whole test run).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import GaussianScorerDetector, ZScoreFeature
from streamlab.errors import PipelineConfigError
from streamlab.export import to_spark, verify
from streamlab.export.verify import compare, load_module, run_local
from streamlab.testing import ListSource

from ._detector_samples import (
    BAD,
    IOT_SCHEMA,
    TX_SCHEMA,
    fraud_pipeline,
    fraud_sample,
    iot_pipeline,
    iot_sample,
)


class GroupState:
    """What the generated function uses of Spark's GroupState."""

    def __init__(self) -> None:
        self.value: Any = None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> Any:
        return self.value

    def update(self, value: Any) -> None:
        self.value = value


_MODULES: dict[str, Any] = {}


def _fraud_module() -> Any:
    if "fraud" not in _MODULES:
        import tempfile

        _MODULES["fraud"] = load_module(
            to_spark(fraud_pipeline(), tempfile.mkdtemp(prefix="spark-det-")).module
        )
    return _MODULES["fraud"]


def run_batches(module: Any, lines: list[bytes], batch: int, rng: random.Random) -> pd.DataFrame:
    """The fraud job's detector run over micro-batches of ``batch`` records, each shuffled (as a Spark
    shuffle may hand them over), parsed as the job parses them and stamped with their line numbers."""
    fields = tuple((n, t, (n,)) for n, t in TX_SCHEMA.items())
    rows = []
    for i, raw in enumerate(lines):
        try:
            row = module.parse_record(raw, fields, ("timestamp",), 10**6)
        except module.BadRecordError:
            continue
        rows.append({**row, "_src": "file-a", "_seq": i})
    state, out = GroupState(), []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        rng.shuffle(chunk)
        frame = pd.DataFrame(chunk, columns=[*TX_SCHEMA, "_src", "_seq"])
        # Spark hands timestamps without a zone (UTC), missing numbers as NaN
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ns")
        frame["_group"] = ""
        c = "VELOCITY_FEATURE"
        args = [getattr(module, f"{c}_{n}") for n in ("PLAN", "WANTED", "COLUMNS", "TIMES")]
        out += list(module.run_segment(*args, state, [frame]))
    return pd.concat(out, ignore_index=True)


@settings(max_examples=3, deadline=None, phases=[Phase.generate])
@given(st.integers(0, 10**6), st.integers(3, 40))
def test_generated_group_function_in_shuffled_micro_batches_equals_streamlab(seed: int, batch: int) -> None:
    lines = fraud_sample()[:50] + BAD  # a line that is not JSON, one without card_id
    module = _fraud_module()
    p = fraud_pipeline()
    tagged = run_batches(module, lines, batch, random.Random(seed))
    # as Spark casts the rows to the declared schema and its JSON sink writes them
    from streamlab.export.spark import spark_types

    detect = tagged[tagged["_output"] == "detect"].copy()
    for column, kind in spark_types(p)["detect"].items():
        if kind == "int64":
            detect[column] = detect[column].astype("Int64")
    detect = pd.DataFrame(json.loads(detect.to_json(orient="records", date_format="iso")))
    if "local" not in _MODULES:
        _MODULES["local"] = run_local(p, lines)
    local = _MODULES["local"]
    cols = list(module.SPLIT["detect"])
    names = [b for _, b in cols]
    equal, diff, counts = compare(
        p, local, {"detect": detect}, "spark", outputs={"detect": (names, {"timestamp"})}
    )
    assert equal, diff.head(10).to_string()
    assert counts["detect"] == {"streamlab": 50, "spark": 50}
    dead = tagged[tagged["_output"] == "velocity_feature.dead_letter"]
    assert dead["reason"].tolist() == ["key column 'card_id' is missing"]


def test_fraud_pipeline_on_spark_equals_streamlab(tmp_path: Path) -> None:
    sample = fraud_sample()[:120]
    assert BAD[0] in sample  # a line that is not JSON, one without card_id
    report = verify(fraud_pipeline(), sample, "spark", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["detect"] == {"streamlab": 118, "spark": 118}  # 120 lines, 2 bad
    assert report.counts["velocity_feature.dead_letter"] == {"streamlab": 1, "spark": 1}
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, "spark": 1}
    scored = report.exported["detect"]
    assert (scored["score"] > 0).any() and scored["count_10m"].max() > 1
    exported = scored.sort_values("event_id")
    local = report.local["detect"].sort_values("event_id")
    assert exported["score"].tolist() == pytest.approx(local["score"].tolist(), rel=1e-12)


def test_iot_pipeline_on_spark_equals_streamlab(tmp_path: Path) -> None:
    devices = ["dev-0000", "dev-0007", "dev-0022"]
    sample = iot_sample(devices)
    report = verify(iot_pipeline(devices[:1]), sample, "spark", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["combine"] == {"streamlab": len(sample), "spark": len(sample)}
    scored = report.exported["combine"]
    assert (scored["score_vibration"] > 0.5).any() and (scored["score_temperature"] == 0).any()
    assert report.counts["drift_dev-0000"]["spark"] > 0  # dev-0000's unflagged rows reach the drift step


def test_output_schemas_come_from_the_step_definitions(tmp_path: Path) -> None:
    from streamlab.export import _plan

    files = to_spark(fraud_pipeline(), tmp_path)
    code = files.read("fraud_spark.py")
    schema = _plan.const_value(code, "VELOCITY_FEATURE_SCHEMA")
    for column in (
        "`count_10m` BIGINT",
        "`sum_amount_10m` DOUBLE",
        "`burst_count` BIGINT",
        "`is_alert` BOOLEAN",
        "`score` DOUBLE",
        "`is_anomaly` BOOLEAN",
        "`amount_vs_usual` DOUBLE",
        "`_seq` BIGINT",
    ):
        assert column in schema
    assert "river==" in files.read("requirements.txt")
    assert "applyInPandasWithState" in code and code.count(".applyInPandasWithState(") == 2  # run + pattern
    iot = to_spark(iot_pipeline(["dev-0000"]), tmp_path / "iot").read("iot_spark.py")
    assert "`flag_temperature` BOOLEAN" in _plan.const_value(iot, "SCORE_TEMPERATURE_SCHEMA")
    assert "withColumn('_group', F.lit(''))" in iot  # the drift detector's state spans all devices


def test_a_keyed_run_is_grouped_by_its_key_and_steps_after_it_are_refused(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="keyed")
    s = p.parse(IOT_SCHEMA).apply(ZScoreFeature("device_id", "temperature"), step_id="z")
    s.detect(GaussianScorerDetector(), features=["temperature"], key="device_id", step_id="score")
    code = to_spark(p, tmp_path / "a").read("keyed_spark.py")
    assert ".groupBy('device_id')" in code and "_group" not in code.split("def build(")[1]
    s.window(TumblingWindow("1m"), key="device_id").agg(agg.count())
    with pytest.raises(PipelineConfigError, match=r"step 'window'.*one such stateful operator per query"):
        to_spark(p, tmp_path / "b")
