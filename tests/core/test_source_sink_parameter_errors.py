"""Sources and sinks given a parameter of the wrong kind raise ParameterError naming it and a fix (in
a spec: a problem at the parameter's path), not os.fspath's TypeError or a ValueError without a fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import DuckDBSink, JsonLinesSink, ListSource, ParquetSink, ReplaySource
from streamlab.errors import ParameterError, SpecError
from streamlab.recording import RecordingSink
from streamlab.sinks import DuckDBTable
from streamlab.spec import pipeline_from_dict

CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "jsonl path list": (lambda: JsonLinesSink(["a.jsonl"]), "path"),  # type: ignore[arg-type]
    "jsonl path None": (lambda: JsonLinesSink(None), "path"),  # type: ignore[arg-type]
    "parquet path int": (lambda: ParquetSink(3), "path"),  # type: ignore[arg-type]
    "duckdb path dict": (lambda: DuckDBSink({"a": 1}, "t"), "path"),  # type: ignore[arg-type]
    "duckdb table path bool": (lambda: DuckDBTable(True, "select 1"), "path"),  # type: ignore[arg-type]
    "recording path empty": (lambda: RecordingSink(""), "path"),
    "replay data list": (lambda: ReplaySource([1]), "data"),  # type: ignore[arg-type]
    "replay data None": (lambda: ReplaySource(None), "data"),  # type: ignore[arg-type]
    "replay speed zero": (lambda: ReplaySource("x.jsonl", speed=0), "speed"),
    "replay speed text": (lambda: ReplaySource("x.jsonl", speed="10"), "speed"),  # type: ignore[arg-type]
    "replay batch_size float": (lambda: ReplaySource("x.jsonl", batch_size=1.5), "batch_size"),  # type: ignore[arg-type]
    # raw=True is for JSON lines: on a DataFrame it was silently ignored (a CSV refuses it)
    "replay raw frame": (lambda: ReplaySource(pd.DataFrame({"value": ["{}"]}), raw=True), "raw"),
    "list events None": (lambda: ListSource(None), "events"),  # type: ignore[arg-type]
    "list events int": (lambda: ListSource(3), "events"),  # type: ignore[arg-type]
    "list events text": (lambda: ListSource("abc"), "events"),  # type: ignore[arg-type]
    "list batch_size zero": (lambda: ListSource([], batch_size=0), "batch_size"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_wrong_parameter_is_a_parameter_error_with_a_fix(name: str) -> None:
    build, parameter = CASES[name]
    with pytest.raises(ParameterError) as e:
        build()
    assert e.value.parameter == parameter and e.value.fix


def test_a_generator_of_events_keeps_every_event() -> None:
    # the checks of the events consumed a generator: ListSource(gen) held 0 events
    assert len(ListSource({"x": i} for i in range(3)).frame) == 3


def spec(source: dict[str, Any], sink: dict[str, Any]) -> dict[str, Any]:
    return {
        "streaming": {
            "sources": [{"step_id": "events", "kind": "replay", "raw": True, **source}],
            "sinks": [{"step_id": "out", "input": "events", **sink}],
        }
    }


@pytest.mark.parametrize(
    ("source", "sink", "where"),
    [
        (
            {"path": "e.jsonl"},
            {"kind": "jsonl", "path": ["out.jsonl"]},
            "streaming.sinks[0] (step 'out').path",
        ),
        (
            {"path": "e.jsonl"},
            {"kind": "parquet", "path": {"dir": "o"}},
            "streaming.sinks[0] (step 'out').path",
        ),
        ({"path": "e.jsonl", "speed": "-1"}, {"kind": "list"}, "streaming.sources[0] (step 'events').speed"),
        ({"path": {"x": None}}, {"kind": "list"}, "streaming.sources[0] (step 'events').path"),
    ],
)
def test_a_spec_reports_the_parameter_at_its_path(
    tmp_path: Path, source: dict[str, Any], sink: dict[str, Any], where: str
) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text('{"timestamp": 0}\n')
    if source["path"] == "e.jsonl":
        source = {**source, "path": str(events)}
    with pytest.raises(SpecError) as e:
        pipeline_from_dict(spec(source, sink))
    [problem] = e.value.problems
    assert problem.path == where
    assert not problem.problem.startswith(("TypeError", "ValueError")), problem


def test_a_list_sink_refuses_a_parameter_it_does_not_take(tmp_path: Path) -> None:
    # the list sink's factory took **kw and dropped it: a misplaced path: was silently accepted
    events = tmp_path / "e.jsonl"
    events.write_text('{"timestamp": 0}\n')
    with pytest.raises(SpecError) as e:
        pipeline_from_dict(spec({"path": str(events)}, {"kind": "list", "path": "out.jsonl"}))
    [problem] = e.value.problems
    assert problem.path == "streaming.sinks[0] (step 'out').path"
    assert "unknown parameter" in problem.problem
