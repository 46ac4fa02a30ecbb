"""An expression that fails for the declared types of its columns (a text column compared with a number)
stops the pipeline when the step is added, naming the step, the column, who declared it and the fix, on
pandas 3 and pandas 2 alike.

On pandas 2 the parse step's text is a column of Python objects, as a json field is, so a batch could not
tell the failure is the type's: a filter or rule set every row aside as a dead letter there, while pandas 3
stopped a rule's run at its first batch. The parse schema's types decide now, before any batch."""

from __future__ import annotations

from typing import Any

import pytest

from streamlab import ListSource, Pipeline, PipelineConfigError
from streamlab.detectors import PatternStep, ThresholdRule
from streamlab.testing import ListSink

SCHEMA = {
    "country": "string",
    "amount": "float64",
    "n": "int64",
    "flag": "bool",
    "meta": "json",
    "event_id": "string",
    "timestamp": "timestamp",
}
LINES = [
    b'{"country": "FR", "amount": 7.5, "n": 3, "flag": true, "meta": 7, "event_id": "a", "timestamp": "2024-01-01T00:00:00Z"}',
    b'{"country": "US", "amount": 1.0, "n": 9, "flag": false, "meta": "x", "event_id": "b", "timestamp": "2024-01-01T00:00:01Z"}',
]


def parsed() -> Any:
    return Pipeline(ListSource(LINES), name="p").parse(SCHEMA)


STEPS = {
    "filter": lambda s, e: s.filter(e),
    "with_columns": lambda s, e: s.with_columns(y=e),
    "rule": lambda s, e: s.apply(ThresholdRule("odd", expr=e)),
    "pattern": lambda s, e: s.pattern("country", [PatternStep("a", e)], within="1m"),
}


@pytest.mark.parametrize("kind", list(STEPS))
@pytest.mark.parametrize(
    "expr",
    [
        "country > 5",
        "amount > 1 and country < 2",
        "country + 1 > 0",
        "(n > 1) & (country >= n)",
        "timestamp > 5",
        "timestamp > '2023-12-31'",  # a time without its zone: every row was a dead letter on both pandas
    ],
)
def test_an_expression_failing_for_the_declared_types_stops_at_construction(kind: str, expr: str) -> None:
    with pytest.raises(PipelineConfigError) as caught:
        STEPS[kind](parsed(), expr)
    message = str(caught.value)
    assert f"{expr!r}) fails on every row for its columns' types" in message, message
    assert (
        "declared by step 'parse'" in message
        and "Fix: compare each column with values of its type" in message
    )
    if "timestamp" in expr:
        assert "a timestamp column with a time that names its zone, e.g. '2024-01-01T00:00:00Z'" in message
    if "country" in expr:
        assert (
            "if 'country' holds numbers, declare it as float64 or int64 in the schema of step 'parse'"
            in message
        )


@pytest.mark.parametrize("kind", list(STEPS))
@pytest.mark.parametrize(
    "expr",
    [
        "country == 5",  # equality of any two values is a bool
        "country > 'M' and amount > 5",
        "n * amount > 10 and flag",
        "timestamp > '2023-12-31T00:00:00Z'",
        "meta > 5",  # a json field's values have any type: its rows decide, one by one
        "country.str.len() > 1",
    ],
)
def test_expressions_the_declared_types_allow_are_accepted(kind: str, expr: str) -> None:
    STEPS[kind](parsed(), expr)


def test_only_columns_declared_upstream_are_checked() -> None:
    """A column with_columns computes before (its type unknown) shadows a declared one of that name."""
    s = parsed().with_columns(country="amount * 2", z="country > 5")
    assert s.pipeline.steps["with_columns"].columns[1] == ("z", "country > 5")
    with pytest.raises(PipelineConfigError, match="step 'f' .*filter\\('country > 5'\\)"):
        parsed().select("country", "amount").filter("country > 5", step_id="f")


def test_the_rows_of_an_accepted_expression_still_run() -> None:
    s = parsed()
    sink = ListSink()
    s.filter("country > 'G' and amount > 5").to(sink)
    s.pipeline.run()
    assert [r["country"] for r in sink.rows()] == []
    s2 = parsed()
    sink2 = ListSink()
    s2.filter("country < 'G' and amount > 5").to(sink2)
    s2.pipeline.run()
    assert [r["country"] for r in sink2.rows()] == ["FR"]


@pytest.mark.parametrize("kind", list(STEPS))
def test_the_check_evaluates_no_call(kind: str, tmp_path: Any) -> None:
    """Only names, constants and operators are evaluated when the step is added: a call runs on the rows."""
    out = tmp_path / "written.csv"
    STEPS[kind](parsed(), f"amount.to_csv({str(out)!r}) > 0")
    assert not out.exists()
