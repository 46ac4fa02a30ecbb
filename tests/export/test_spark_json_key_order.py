"""Spark export: a json or object field is written with its keys in the record's order.

The job held such a field as ``json.dumps(value, sort_keys=True)``, so its files held
``"properties": {"alpha": .., "mid": .., "zeta": ..}`` (sorted at every depth) where streamlab's
``JsonLinesSink`` writes ``{"zeta": .., "alpha": .., "mid": ..}``, the record's own order. ``verify``
compared nested values with sorted keys and so reported the two equal. The job now keeps the record's
order; where its dedup runs as ``dropDuplicates`` on such a field (the fallback), it tells objects apart
by their text with sorted keys, as streamlab does (``dedup_key``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import ZScoreFeature
from streamlab.export import verify
from streamlab.export.spark import rule_dedups, to_spark
from streamlab.export.verify import load_module
from streamlab.sinks import JsonLinesSink
from streamlab.testing import ListSource

EVENTS = [
    '{"event_id":"e0","event_type":"buy","user_id":"u0","timestamp":"2024-01-01T00:00:01Z",'
    '"properties":{"zeta":1,"alpha":{"y":1,"b":2},"mid":[{"q":1,"a":2}]}}',
    '{"event_id":"e1","event_type":"buy","user_id":"u1","timestamp":"2024-01-01T00:00:02Z",'
    '"properties":{"b":[],"a":1}}',
]


def _ordered(line: str) -> Any:
    """The JSON value of a line with every object as its list of (key, value) pairs, in their order."""
    return json.loads(line, object_pairs_hook=lambda pairs: [[k, v] for k, v in pairs])


def test_the_jobs_files_keep_the_records_key_order(tmp_path: Path) -> None:
    local_out = tmp_path / "local"
    local_out.mkdir()
    p = Pipeline(ListSource([x.encode() for x in EVENTS]), name="key_order")
    events = p.parse()
    events.filter("event_type == 'buy'", step_id="buys").to(JsonLinesSink(str(local_out / "buys.jsonl")))
    events.window(TumblingWindow("1m"), key="event_type", step_id="by_type").agg(agg.first("properties")).to(
        JsonLinesSink(str(local_out / "by_type.jsonl"))
    )
    p.run()

    report = verify(p, [x.encode() for x in EVENTS], target="spark", workdir=tmp_path / "spark")
    assert report.equal, report.diff.to_string()
    names = load_module(report.files.module).OUTPUTS
    outputs = {d.name: d for d in (tmp_path / "spark").rglob("output/*") if d.is_dir()}
    for ref in ("buys", "by_type"):
        job = [x for f in sorted(outputs[names[ref]].rglob("part-*")) for x in f.read_text().splitlines()]
        mine = (local_out / f"{ref}.jsonl").read_text().splitlines()
        assert sorted(map(str, map(_ordered, job))) == sorted(map(str, map(_ordered, mine))), (ref, job, mine)
    first = next(
        _ordered(x) for f in outputs[names["buys"]].rglob("part-*") for x in f.read_text().splitlines()
    )
    props = dict(first)["properties"]
    assert [k for k, _ in props] == ["zeta", "alpha", "mid"]  # the record's order, not sorted


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
