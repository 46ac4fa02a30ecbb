"""Parameters of the wrong type in a spec are problems at their path: a quantile's ``q: '0.5'`` was
reported as "the quantile aggregator needs q" (it was given, as text), ``relative_accuracy: '0.01'`` as a
bare TypeError ("'<' not supported between instances of 'float' and 'str'"), and ``q: true`` was the
maximum (True is 1); a replay's ``time: 5`` was taken."""

from __future__ import annotations

import pytest

from streamlab import Pipeline, ReplaySource, agg
from streamlab.errors import ParameterError, SpecError

SPEC = """\
streaming:
  sources:
  - {{step_id: events, kind: replay, path: '{path}', raw: true{extra_source}}}
  processing:
  - {{step_id: parse, kind: parse, input: events, schema: {{score: float64, timestamp: timestamp}}}}
  - {{step_id: w, kind: window, input: parse, window: {{kind: tumbling, size: 1m}}, aggregate: [{{kind: quantile, column: score, {q}}}]}}
  sinks: []
"""


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"timestamp": "2024-01-01T00:00:00Z", "score": 1.0}\n')
    return path


@pytest.mark.parametrize(
    "q, where, fix",
    [
        ("q: '0.5'", "aggregate[0].q", "write q: 0.5 (a number, without quotes)"),
        ("q: true", "aggregate[0].q", "write q: 0.95 (a number, without quotes)"),
        (
            "q: 0.5, relative_accuracy: '0.01'",
            "aggregate[0].relative_accuracy",
            "write relative_accuracy: 0.01",
        ),
    ],
)
def test_a_quantile_parameter_that_is_no_number_is_a_problem_at_its_path(events, q, where, fix):
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(SPEC.format(path=events, extra_source="", q=q))
    assert [p.path for p in e.value.problems] == [f"streaming.processing[1] (step 'w').{where}"]
    assert e.value.problems[0].problem.startswith("expected a number, got ")
    assert fix in e.value.problems[0].fix


def test_quantile_refuses_a_bool_or_text_in_python_too():
    with pytest.raises(ValueError, match="q must be a number"):
        agg.quantile("x", True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="relative_accuracy must be a number"):
        agg.quantile("x", 0.5, relative_accuracy="0.01")  # type: ignore[arg-type]


def test_a_replay_time_that_is_no_column_name_is_a_problem_at_its_path(events):
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(SPEC.format(path=events, extra_source=", time: 5", q="q: 0.5"))
    assert [p.path for p in e.value.problems] == ["streaming.sources[0] (step 'events').time"]
    with pytest.raises(ParameterError):
        ReplaySource(events, time="")
