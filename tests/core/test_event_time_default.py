"""Steps after ``parse(schema, time="t")`` default to ``t`` as their event time.

A window, dedup, join, detector or pattern without ``time=`` took the pipeline's ``time`` ("timestamp")
even when the stream had no such column and its parse had named another event-time field: the user
said ``time="t"`` at the parse and was told at the next step that there is no column 'timestamp'. They
now take the parse's field where the stream has no column of the pipeline's name; a stream that has one
keeps it, and ``time=`` given to the step wins.
"""

from __future__ import annotations

import json

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

LINES = [
    json.dumps({"id": f"e{i % 4}", "x": float(i), "t": f"2024-01-01T00:0{i // 3}:{i:02d}Z"}).encode()
    for i in range(9)
]
SCHEMA = {"id": "string", "x": "float64", "t": "timestamp"}


def test_a_window_and_a_dedup_after_parse_take_its_event_time() -> None:
    p = Pipeline(ListSource(LINES), name="t")
    events = p.parse(SCHEMA, time="t").filter("x >= 0")
    deduped = events.dedup("id", ttl="10m")
    deduped.window(TumblingWindow("1m")).agg(agg.count())
    assert p.steps["dedup"].time == "t" and p.steps["window"].time == "t"


def test_results_equal_those_with_the_time_given() -> None:
    from streamlab.export.verify import run_local

    outs = []
    for explicit in (False, True):
        p = Pipeline(ListSource(LINES), name="t")
        kw = {"time": "t"} if explicit else {}
        events = p.parse(SCHEMA, time="t").dedup("id", ttl="10m", **kw)
        events.window(TumblingWindow("1m"), **kw).agg(agg.count(), agg.sum("x"))
        outs.append({ref: frame.to_dict("records") for ref, frame in run_local(p, LINES).items()})
    assert outs[0] == outs[1] and [w["count"] for w in outs[0]["window"]] == [3, 1]


def test_a_join_takes_each_sides_event_time() -> None:
    p = Pipeline(ListSource(LINES), name="t")
    left = p.parse(SCHEMA, time="t", step_id="left")
    right = p.parse({"id": "string", "y": "float64", "u": "timestamp"}, time="u", step_id="right")
    left.join_interval(right, on="id", lower="-1m", upper="1m", step_id="join")
    step = p.steps["join"]
    assert (step.left_time, step.right_time) == ("t", "u")


def test_the_pipelines_time_column_is_kept_where_the_stream_has_it() -> None:
    p = Pipeline(ListSource(LINES), name="t")
    p.parse({**SCHEMA, "timestamp": "timestamp"}, time="t").window(TumblingWindow("1m")).agg(agg.count())
    assert p.steps["window"].time == "timestamp"


def test_a_time_given_to_the_step_wins() -> None:
    p = Pipeline(ListSource(LINES), name="t")
    with pytest.raises(PipelineConfigError, match="unknown column 'when'"):
        p.parse(SCHEMA, time="t").window(TumblingWindow("1m"), time="when").agg(agg.count())


def test_a_detector_and_a_pattern_take_the_parses_event_time() -> None:
    from streamlab.detectors import GaussianScorerDetector

    p = Pipeline(ListSource(LINES), name="t")
    events = p.parse(SCHEMA, time="t")
    events.detect(GaussianScorerDetector(), ["x"], key="id", step_id="scores")
    events.pattern("id", [("one", "x > 1"), ("two", "x > 2")], within="5m", id_column="id", step_id="twice")
    assert p.steps["scores"].config.time == "t" and p.steps["twice"].config.time == "t"
