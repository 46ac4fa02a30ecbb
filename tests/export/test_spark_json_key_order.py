"""Spark export: a json or object field is written with its keys in the record's order.

The job held such a field as ``json.dumps(value, sort_keys=True)``, so its files held
``"properties": {"alpha": .., "mid": .., "zeta": ..}`` (sorted at every depth) where streamlab's
``JsonLinesSink`` writes ``{"zeta": .., "alpha": .., "mid": ..}``, the record's own order. ``verify``
compared nested values with sorted keys and so reported the two equal; test_spark_json_lines.py now
compares the job's files with JsonLinesSink's keys in order. The job keeps the record's order; where
its dedup runs as ``dropDuplicates`` on such a field (the fallback), it tells objects apart by their
text with sorted keys, as streamlab does (``dedup_key``), which the test here checks.
"""

from __future__ import annotations

from pathlib import Path

from streamlab import Pipeline
from streamlab.detectors import ZScoreFeature
from streamlab.export import verify
from streamlab.export.spark import rule_dedups, to_spark
from streamlab.testing import ListSource


def test_the_fallback_dedup_tells_objects_apart_as_streamlab_does(tmp_path: Path) -> None:
    """A dedup sharing its query with a feature step is Spark's dropDuplicates: on an object id, two
    records whose objects differ in key order only are one id, in streamlab and in the job."""
    p = Pipeline(ListSource([b"{}"]), name="object_ids")
    uniq = p.parse({"k": "object", "timestamp": "timestamp", "x": "float64"}).dedup("k", ttl="1h")
    uniq.apply(ZScoreFeature("x", "x"), step_id="z")
    assert rule_dedups(p) == set()  # the fallback
    assert "sorted_json(" in to_spark(p, tmp_path / "code").module.read_text()
    sample = [
        b'{"k": {"a": 1, "b": 2}, "timestamp": "2024-01-01T00:00:01Z", "x": 1.0}',
        b'{"k": {"b": 2, "a": 1}, "timestamp": "2024-01-01T00:00:02Z", "x": 2.0}',
        b'{"k": {"a": 2}, "timestamp": "2024-01-01T00:00:03Z", "x": 3.0}',
    ]
    report = verify(p, sample, target="spark", workdir=tmp_path / "spark")
    assert report.counts["z"] == {"streamlab": 2, "spark": 2}
    assert report.equal, report.diff.to_string()
