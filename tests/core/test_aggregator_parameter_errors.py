"""Aggregators refuse a missing or non-text column or name when built (a sum without a column failed
only on the window's first batch; a name of 3 became an int output column, a name of '' silently the
default), and a spec reports a wrong aggregator name or quantile range at its path, not as a TypeError
('unhashable type: list') from inside the window."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from streamlab import agg
from streamlab.aggregators import Aggregator
from streamlab.errors import ParameterError, SpecError
from streamlab.spec import pipeline_from_dict

CASES: dict[str, tuple[Callable[[], Aggregator], str]] = {
    "sum without column": (lambda: agg.sum(None), "column"),  # type: ignore[arg-type]
    "first without column": (lambda: agg.first(None), "column"),  # type: ignore[arg-type]
    "quantile without column": (lambda: agg.quantile(None, 0.5), "column"),  # type: ignore[arg-type]
    "sum of int column": (lambda: agg.sum(3), "column"),  # type: ignore[arg-type]
    "mean of empty column": (lambda: agg.mean(""), "column"),
    "count named 3": (lambda: agg.count(name=3), "name"),  # type: ignore[arg-type]
    "count named empty": (lambda: agg.count(name=""), "name"),
    "max named list": (lambda: agg.max("x", name=["a"]), "name"),  # type: ignore[arg-type]
    "quantile q out of range": (lambda: agg.quantile("x", 2), "q"),
    "quantile accuracy zero": (lambda: agg.quantile("x", 0.5, relative_accuracy=0), "relative_accuracy"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_wrong_aggregator_parameter_is_refused_when_built(name: str) -> None:
    build, parameter = CASES[name]
    with pytest.raises(ParameterError) as e:
        build()
    assert e.value.parameter == parameter and e.value.fix


def test_the_defaults_still_build() -> None:
    assert [a.name for a in (agg.count(), agg.count("x"), agg.sum("x", name="t"))] == [
        "count",
        "count_x",
        "t",
    ]


SPEC: dict[str, Any] = {
    "streaming": {
        "sources": [{"step_id": "events", "kind": "replay", "path": "missing.jsonl", "raw": True}],
        "processing": [
            {
                "step_id": "parse",
                "kind": "parse",
                "input": "events",
                "schema": {"x": "float64", "timestamp": "timestamp"},
            },
            {
                "step_id": "w",
                "kind": "window",
                "input": "parse",
                "window": {"kind": "tumbling", "size": "1m"},
                "aggregate": [{"kind": "count"}, {"kind": "quantile", "column": "x", "q": 0.5}],
            },
        ],
    }
}


@pytest.mark.parametrize(
    ("index", "key", "value"),
    [
        (0, "name", ["a"]),
        (0, "name", 3),
        (0, "name", ""),
        (1, "column", ""),
        (1, "name", {"a": 1}),
        (1, "q", 2),
        (1, "q", float("nan")),
        (1, "relative_accuracy", 0),
    ],
)
def test_a_spec_reports_a_wrong_aggregator_parameter_at_its_path(index: int, key: str, value: object) -> None:
    data = copy.deepcopy(SPEC)
    data["streaming"]["processing"][1]["aggregate"][index][key] = value
    with pytest.raises(SpecError) as e:
        pipeline_from_dict(data, lazy_sources=True)
    [problem] = e.value.problems
    assert problem.path == f"streaming.processing[1] (step 'w').aggregate[{index}].{key}"
    assert not problem.problem.startswith(("TypeError", "ValueError")) and problem.fix
