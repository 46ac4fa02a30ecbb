"""A step whose event-time column is declared bool is refused when it is added, naming the step: each of
window, dedup, join_interval, detect, the keyed features and pattern took ``time='flag'`` and then failed
on its first rows ("TypeError: Cannot convert tz-naive timestamps"). Text (ISO times) and numbers (epoch
times) stay accepted: their values decide."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamlab import Pipeline, PipelineConfigError, TumblingWindow, agg
from streamlab.detectors import GaussianScorerDetector, PatternStep, VelocityFeature
from streamlab.testing import ListSource

RAW = [
    b'{"t":"2024-01-01T00:00:00Z","s":"2024-01-01T00:00:00Z","user":"u","flag":true,"x":1.0,"event_id":"e"}'
]
SCHEMA = {
    "t": "timestamp",
    "s": "string",
    "user": "string",
    "flag": "bool",
    "x": "float64",
    "event_id": "string",
}

STEPS: dict[str, Callable[[Any, str], Any]] = {
    "window": lambda s, t: s.window(TumblingWindow("1m"), key="user", time=t).agg(agg.count()),
    "dedup": lambda s, t: s.dedup("event_id", ttl="1h", time=t),
    "join": lambda s, t: s.join_interval(s, "user", lower="0s", upper="1m", time=t, other_time="t"),
    "detect": lambda s, t: s.detect(GaussianScorerDetector(), ["x"], key="user", time=t),
    "velocity_feature": lambda s, t: s.apply(VelocityFeature("user", window="1m", time=t)),
    "pattern": lambda s, t: s.pattern(
        "user", [PatternStep("a", "x > 0"), PatternStep("b", "x > 0")], within="1m", time=t
    ),
}


def parsed() -> tuple[Pipeline, Any]:
    p = Pipeline(ListSource(RAW))
    return p, p.parse(SCHEMA, time="t")


@pytest.mark.parametrize("kind", sorted(STEPS))
def test_a_bool_event_time_column_is_refused_naming_the_step(kind: str) -> None:
    _, stream = parsed()
    with pytest.raises(PipelineConfigError) as e:
        STEPS[kind](stream, "flag")
    assert e.value.step_id == kind
    assert "its event-time column 'flag' is bool (declared by step 'parse')" in e.value.problem
    assert "time='<column>'" in e.value.fix


def test_an_event_time_column_of_iso_text_still_runs() -> None:
    p, stream = parsed()
    STEPS["window"](stream, "s")
    assert p.run()["window"]["count"].tolist() == [1]


def test_a_parse_without_its_event_time_field_points_to_the_schemas_timestamp_field() -> None:
    # Pipeline(time='t').parse({'t': 'timestamp', ...}) said only "add 'timestamp': 'timestamp' to the
    # schema, or pass time=None", though the schema's own timestamp field was meant
    with pytest.raises(PipelineConfigError) as e:
        Pipeline(ListSource(RAW), time="t").parse({"t": "timestamp", "x": "float64"})
    assert "(its timestamp fields: ['t'])" in e.value.problem
    assert e.value.fix.startswith("pass time='t' to read the event time from it")
