"""An export to Spark refuses, naming the step that makes it, a column whose name holds '.' or a
backtick: the generated job names columns as text (``select('a.b')``), which Spark reads as the field
``b`` of a struct ``a``, so ``agg.sum('amount', name='a.b')`` exported and the job failed when it
started (``UNRESOLVED_COLUMN``). Spaces, which Spark takes, still export; other targets take both."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import to_beam, to_flink, to_lambda, to_spark
from streamlab.testing import ListSource


def pipeline(name: str, user: str = "user") -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="names")
    events = p.parse({"timestamp": "timestamp", user: "string", "amount": "float64"})
    events.window(TumblingWindow("1m"), key=user, step_id="per_user").agg(agg.sum("amount", name=name))
    return p


@pytest.mark.parametrize(("name", "mark"), [("a.b", "'.'"), ("a`b", "'`'")])
def test_an_aggregator_name_spark_misreads_is_refused_naming_the_step_and_fix(
    tmp_path: Path, name: str, mark: str
) -> None:
    with pytest.raises(PipelineConfigError) as e:
        to_spark(pipeline(name), tmp_path)
    assert e.value.step_id == "per_user" and f"its column {name!r} holds {mark}" in e.value.problem
    assert e.value.fix.startswith("give the column an aggregator's name: agg.sum(..., name='a")
    assert not list(tmp_path.iterdir())  # refused before any file is written


def test_a_dotted_parse_field_is_refused_at_the_parse_step(tmp_path: Path) -> None:
    with pytest.raises(PipelineConfigError) as e:
        to_spark(pipeline("total", user="user.id"), tmp_path)
    assert e.value.step_id == "parse" and "'user.id' holds '.'" in e.value.problem


def test_names_spark_takes_export_and_other_targets_take_dotted_ones(tmp_path: Path) -> None:
    to_spark(pipeline("n events"), tmp_path / "spark")
    for i, export in enumerate((to_beam, to_lambda, to_flink)):
        export(pipeline("a.b"), tmp_path / str(i))
