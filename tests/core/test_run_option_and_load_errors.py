"""Run options and Pipeline.from_yaml given a value of the wrong kind raise the streamlab error with a
fix before anything runs: run(clock='x') raised AttributeError ('str' has no 'now_ns'),
duration='abc' and commit_every='abc' a bare ValueError, checkpoint_dir=3 os.fspath's TypeError;
from_yaml(None) raised "argument of type 'NoneType' is not iterable", and from_yaml('') reported the
working directory ('.: is a directory')."""

from __future__ import annotations

import pytest

from streamlab import ListSource, ManualClock, Pipeline, PipelineConfigError
from streamlab.errors import SpecError


def pipeline() -> Pipeline:
    p = Pipeline(ListSource([{"x": 1, "timestamp": 0}]))
    p.stream.filter("x > 0", step_id="f")
    return p


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("clock", "x"),
        ("clock", 0),
        ("duration", "abc"),
        ("commit_every", "abc"),
        ("checkpoint_dir", 3),
        ("max_collect_rows", -1),  # was a bare ValueError from RunOptions, naming no fix
        ("max_collect_rows", "100"),
    ],
)
def test_a_run_option_of_the_wrong_kind_is_a_config_error(option: str, value: object) -> None:
    with pytest.raises(PipelineConfigError) as e:
        pipeline().run(**{option: value})
    assert option in e.value.problem and e.value.fix


def test_a_clock_still_runs() -> None:
    assert len(pipeline().run(clock=ManualClock(0))["f"]) == 1


@pytest.mark.parametrize("value", [3, None, "", "  ", {"streaming": {}}])
def test_from_yaml_of_something_that_is_not_a_spec_is_a_spec_error(value: object) -> None:
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(value)  # type: ignore[arg-type]
    [problem] = e.value.problems
    assert problem.path == "(spec)" and "directory" not in problem.problem
