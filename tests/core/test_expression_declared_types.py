"""An expression that fails for the declared types of its columns (a text column compared with a number)
stops the pipeline when the step is added, naming the step, the column, who declared it and the fix, on
pandas 3 and pandas 2 alike.

On pandas 2 the parse step's text is a column of Python objects, as a json field is, so a batch could not
tell the failure is the type's: a filter or rule set every row aside as a dead letter there, while pandas 3
stopped a rule's run at its first batch. The parse schema's types decide now, before any batch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

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
        "timestamp > country",  # text holding ISO times compares with times: the rows decide
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


TYPES = {"country": "string", "amount": "float64", "n": "int64", "flag": "bool", "timestamp": "timestamp"}
operands = st.sampled_from([*TYPES, "0", "2", "1.5", "'FR'", "True"])
binary = st.sampled_from(["+", "-", "*", "/", "//", "%", ">", "<=", "==", "!=", "&", "|"])
expressions = st.recursive(
    operands,
    lambda inner: st.tuples(inner, binary, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    max_leaves=4,
)
rows = st.fixed_dictionaries(
    {
        "country": st.sampled_from(["FR", "", "5", "%d", "2024-01-01T00:00:00Z"]),
        "amount": st.sampled_from([0.0, -2.5, 1e300]),
        "n": st.integers(-3, 3),
        "flag": st.booleans(),
        "timestamp": st.sampled_from(["2024-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]),
    }
)


ROW = {"country": "FR", "amount": 1.5, "n": 2, "flag": True, "timestamp": "2024-01-01T00:00:00Z"}


@settings(max_examples=300, deadline=None)
@given(expressions, st.lists(rows, min_size=1, max_size=5))
@example("(timestamp > country)", [{**ROW, "country": "2023-01-01T00:00:00Z"}])  # text holding a time
@example("(country % 2)", [{**ROW, "country": "%d"}])  # no formatting: % on text fails, whatever the text
@example("(country > 5)", [ROW, {**ROW, "country": ""}, {**ROW, "country": "5"}])
def test_an_expression_refused_for_its_types_fails_on_every_row_it_could_be_given(
    expr: str, events: list[dict[str, Any]]
) -> None:
    """No refusal of an expression some row could pass: the filter, given each parsed row alone as the
    runtime holds it (the parse step's dtypes, on pandas 2 or 3), sets it aside."""
    from streamlab._transforms import FilterOperator

    p = Pipeline(ListSource([json.dumps(e).encode() for e in events]), name="p")
    s = p.parse(TYPES)
    try:
        s.filter(expr)
    except PipelineConfigError as e:
        if "compares two constants" in str(e):  # a comparison pandas reads otherwise than Python
            assert "compares two constants, " in str(e) and "'FR'" in str(e)  # the only text operand here
            return
        # refused for its types, or for an operator pandas has no rule for (a number as an operand of &)
        assert any(m in str(e) for m in ("fails on every row for its columns' types", "cannot evaluate"))
        parsed = Pipeline(ListSource([json.dumps(e).encode() for e in events]), name="q").parse(TYPES)
        batch = parsed.pipeline.run()["parse"]
        assert len(batch) == len(events)
        for i in range(len(batch)):
            out = FilterOperator("f", expr, None, False).process(batch.iloc[[i]].reset_index(drop=True))
            assert len(out.get("dead_letter", ())) == 1, (expr, events[i])
