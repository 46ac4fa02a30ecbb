"""The exported Lambda handler's Timestream record of a window result equals TimestreamSink's, for any
values (a property test of the rule they share, streamlab/_timestream_values.py; no AWS needed)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_lambda
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

SCHEMA = {
    "event_id": "string",
    "timestamp": "timestamp",
    "k": "string",
    "jk": "json",
    "j": "json",
    "b": "bool",
    "n": "int64",
    "x": "float64",
    "s": "string",
}
AGGS = [agg.first("j"), agg.last("s"), agg.first("b"), agg.first("n"), agg.sum("x"), agg.count()]
TYPES = {"first_j": "json", "last_s": "string", "first_b": "bool", "first_n": "int64"}
TYPES.update(sum_x="float64", count="int64", k="string", jk="json", window_end="timestamp")

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 1e308, 5e-324])
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | floats | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Any:
    p = Pipeline(ListSource([b"{}"]), name="rule")
    p.parse(SCHEMA).window(TumblingWindow("10s"), key=["k", "jk"]).agg(*AGGS)
    return load_module(to_lambda(p, tmp_path_factory.mktemp("rule")).module)


def result_rows() -> st.SearchStrategy[list[dict[str, Any]]]:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    row = st.fixed_dictionaries(
        {
            # a key near the 2 KB Timestream holds of a series' dimensions (with their names and the
            # handler's "pipeline" dimension; "é" is two bytes)
            "k": st.none()
            | texts
            | st.builds(lambda a, e: "a" * a + "é" * e, st.integers(1990, 2040), st.integers(0, 5)),
            "jk": st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | texts,
            "first_j": json_values,
            "last_s": st.none() | texts,
            "first_b": st.none() | st.booleans(),
            "first_n": st.none() | st.integers(-(2**63), 2**63 - 1),
            "sum_x": floats,
            "count": st.integers(1, 10**6),
        }
    )
    return st.lists(row, min_size=1, max_size=4).map(
        lambda rows: [
            {
                **r,
                "window_start": start + pd.Timedelta(seconds=10 * i),
                "window_end": start + pd.Timedelta(seconds=10 * i + 10),
            }
            for i, r in enumerate(rows)
        ]
    )


def as_sink_sees_it(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as streamlab's window output holds them: a missing int or bool makes an object column."""
    frame = pd.DataFrame(rows)
    for c in ("first_n", "first_b", "first_j", "jk"):
        frame[c] = pd.Series([r[c] for r in rows], dtype=object)
    return frame


def canonical(record: dict[str, Any]) -> tuple[Any, ...]:
    dims = sorted((d["Name"], d["Value"]) for d in record["Dimensions"] if d["Name"] != "pipeline")
    measures = sorted((m["Name"], m["Type"], m["Value"]) for m in record["MeasureValues"])
    return record["Time"], tuple(dims), tuple(measures)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=result_rows())
def test_the_handlers_record_and_problem_equal_timestream_sinks(
    handler: Any, rows: list[dict[str, Any]]
) -> None:
    from streamlab.connectors.timestream import TimestreamSink, build_records

    measures = [a.name for a in AGGS] + ["window_end"]
    # the handler's dimensions: the pipeline's name, then the keys
    sink = TimestreamSink(
        "d", "t", dimensions=["pipeline", "k", "jk"], measures=measures, time="window_start"
    )
    records, positions, problems = build_records(sink, as_sink_sees_it(rows).assign(pipeline="rule"), TYPES)
    by_position = dict(zip(positions, records))
    for i, row in enumerate(rows):
        handler_row = {
            c: (None if isinstance(v, float) and math.isnan(v) and c != "sum_x" else v)
            for c, v in row.items()
        }
        record = handler.timestream_record(handler_row)
        problem = handler.measure_problem(
            [(m["Name"], m["Type"], m["Value"]) for m in record["MeasureValues"]]
        ) or handler.series_problem([(d["Name"], d["Value"]) for d in record["Dimensions"]])
        assert problem == problems[i]
        if not problem:
            assert canonical(record) == canonical(by_position[i])
