"""Keyed features, rules, detectors and patterns on a ``json`` key in exported code: ``true``, ``1`` and
``1.0`` are three keys, as in streamlab (they were one key on both sides, but streamlab's batches and the
exported per-record machines kept different ones). The Flink DataStream job's per-event rules, which run
``streamlab._detector_record`` as every exported job does, are run in this process (no JVM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab import detectors as d
from streamlab.export import to_flink
from streamlab.export.flink_datastream import datastream_compared
from streamlab.export.verify import compare, run_local
from streamlab.testing import ListSource

from .test_flink_datastream import run_rules

KEYS = [True, 1, 1.0, "1", None, True, 1, 1.0, "1", 1, True, 1.0, 0, False, 0.0, True]
SEEN = ["a", True, 1, 1.0, "1", None, "b", 1, True, "a", 1.0, 0, False, "x", 0.0, 1]


def keyed() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="json_keys")
    events = p.parse(
        {"event_id": "string", "k": "json", "c": "json", "v": "float64", "timestamp": "timestamp"}
    )
    events.apply(d.VelocityFeature("k", window="1h", value="v"), step_id="velocity")
    events.apply(d.VelocityRule("k", window="1h", max_count=2, name="burst"), step_id="burst")
    events.apply(d.ZScoreFeature("k", "v"), step_id="zscore")
    events.apply(d.RatioToMedianFeature("k", "v", history=3), step_id="ratio")
    events.apply(d.TimeSinceLastFeature("k"), step_id="since")
    events.apply(d.DistinctCountFeature("k", "c", window="1h"), step_id="distinct")
    events.detect(
        d.GaussianScorerDetector(grace_period=1),
        features=["v"],
        key="k",
        threshold=d.FixedThresholdFilter(0.5),
        step_id="detect",
    )
    events.apply(
        d.Pattern(
            key="k",
            steps=[d.PatternStep("first", "v > 0"), d.PatternStep("second", "v >= 0")],
            within="1h",
            delay="0s",
        ),
        step_id="pattern",
    )
    return p


def lines() -> list[bytes]:
    return [
        json.dumps(
            {
                "event_id": f"e{i}",
                "k": k,
                "c": c,
                "v": float(i % 5),
                "timestamp": f"2024-03-01T00:00:{i:02d}Z",
            }
        ).encode()
        for i, (k, c) in enumerate(zip(KEYS, SEEN, strict=True))
    ]


@pytest.mark.parametrize("batch_size", [1, len(KEYS)])
def test_the_exported_per_record_steps_keep_json_keys_apart_as_streamlab(
    batch_size: int, tmp_path: Path
) -> None:
    p = keyed()
    files = to_flink(p, tmp_path, source="files")
    local = run_local(p, lines(), batch_size=batch_size)
    exported = run_rules(files.directory / "datastream.py", lines())
    equal, diff, counts = compare(p, local, exported, "flink", outputs=datastream_compared(p))
    assert equal, diff
    assert counts["velocity"] == {"streamlab": 15, "flink": 15}  # the null key is a dead letter
    counted = dict(zip(local["velocity"]["event_id"], local["velocity"]["count_1h"], strict=True))
    assert [counted[f"e{i}"] for i in (0, 5, 10, 15)] == [1, 2, 3, 4]  # true's events only
    assert [counted[f"e{i}"] for i in (1, 6, 9)] == [1, 2, 3]  # 1's
