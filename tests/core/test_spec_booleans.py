"""A boolean parameter given as text in a spec (``raw: 'yes'``, ``stop_at_end: 'false'``) is a spec
problem at its path with the fix. Python read any non-empty text as true, so a quoted ``'false'`` or
``'no'`` switched the option on; sources and sinks were checked only by the connector, which took it."""

from __future__ import annotations

import pytest

from streamlab import Pipeline, ReplaySource
from streamlab.errors import SpecError

SPEC = """\
streaming:
  sources:
  - {{step_id: events, kind: {source}}}
  processing:
  - {{step_id: parse, kind: parse, input: events, schema: {{user: string, timestamp: timestamp}}}}
{extra}  sinks: []
"""


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"timestamp": "2024-01-01T00:00:00Z", "user": "a"}\n')
    return path


@pytest.mark.parametrize(
    "given, word", [("'yes'", "true"), ("'false'", "false"), ("'no'", "false"), ("1", "true")]
)
def test_a_replay_raw_given_as_text_is_a_spec_problem_at_its_path(events, given, word):
    text = SPEC.format(source=f"replay, path: '{events}', raw: {given}", extra="")
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(text)
    assert len(e.value.problems) == 1
    problem = e.value.problems[0]
    assert problem.path == "streaming.sources[0] (step 'events').raw"
    assert problem.problem.startswith("expected true or false, got ")
    assert f"write raw: {word} without quotes" in problem.fix


def test_the_connectors_boolean_parameters_are_checked_too():
    text = SPEC.format(
        source="kafka, topics: t, group_id: g, bootstrap_servers: 'localhost:9092', stop_at_end: 'false'",
        extra="",
    )
    with pytest.raises(
        SpecError, match=r"sources\[0\] \(step 'events'\)\.stop_at_end: expected true or false"
    ):
        Pipeline.from_yaml(text)
    sink = "  - {step_id: out, kind: kafka, input: parse, topic: t, bootstrap_servers: 'localhost:9092', idempotence: 'no'}\n"
    text = SPEC.format(
        source="kafka, topics: t, group_id: g, bootstrap_servers: 'localhost:9092'", extra=""
    ).replace("  sinks: []\n", "  sinks:\n" + sink)
    with pytest.raises(SpecError, match=r"sinks\[0\] \(step 'out'\)\.idempotence: expected true or false"):
        Pipeline.from_yaml(text)


def test_a_step_configs_boolean_given_as_text_is_a_spec_problem(events):
    extra = "  - {step_id: t, kind: operator, input: parse, type: AdaptiveThresholdFilter, config: {per_key: 'no', key: user}}\n"
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(SPEC.format(source=f"replay, path: '{events}', raw: true", extra=extra))
    paths = [p.path for p in e.value.problems]
    assert "streaming.processing[1] (step 't').config.per_key" in paths, paths


def test_python_callers_get_the_same_check_and_numpy_booleans_pass(events):
    from streamlab.errors import ParameterError

    with pytest.raises(ParameterError, match=r"ReplaySource\(raw=\.\.\.\): expected true or false"):
        ReplaySource(events, raw="false")
    import numpy as np

    assert ReplaySource(events, raw=np.True_).raw is True


def test_a_step_or_config_flag_given_as_text_in_python_is_refused():
    # window(early='no') turned early results on; AdaptiveThresholdFilter(per_key='no') kept keys apart
    import pandas as pd

    from streamlab import TumblingWindow, agg
    from streamlab.detectors import AdaptiveThresholdFilter
    from streamlab.errors import ParameterError
    from streamlab.testing import ListSource

    p = Pipeline(ListSource([{"timestamp": pd.Timestamp("2024-01-01", tz="UTC"), "x": 1}]))
    with pytest.raises(ParameterError, match=r"WindowStep\(early=\.\.\.\).*in Python pass early=False"):
        p.window(TumblingWindow("1m"), early="no").agg(agg.count())
    with pytest.raises(ParameterError, match=r"per_key=\.\.\.\): expected true or false, got the text 'no'"):
        AdaptiveThresholdFilter(per_key="no", key="x")  # type: ignore[arg-type]
    assert p.window(TumblingWindow("1m"), early=True, step_id="w").agg(agg.count()) is not None


def test_a_steps_flag_given_as_text_names_the_step():
    # two windows are both a WindowStep: the message said which class, not which of the pipeline's steps
    import pandas as pd

    from streamlab import TumblingWindow, agg
    from streamlab.errors import ParameterError
    from streamlab.testing import ListSource

    p = Pipeline(ListSource([{"timestamp": pd.Timestamp("2024-01-01", tz="UTC"), "x": 1}]))
    p.window(TumblingWindow("1m"), step_id="per_minute").agg(agg.count())
    with pytest.raises(ParameterError, match=r"got the text 'no', in step 'per_hour'\. Fix:"):
        p.window(TumblingWindow("1h"), early="no", step_id="per_hour").agg(agg.count())
