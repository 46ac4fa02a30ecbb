"""Hand-edited YAML that PyYAML reads without complaint but that is a mistake: a key given twice, a
document nested beyond the recursion limit, a one-line spec longer than a file name. Each is a
SpecError with where and how to fix it, and exit status 2 from ``streamlab run``, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.cli import main
from streamlab.errors import SpecError
from streamlab.spec import load_spec

SPEC = """\
streaming:
  name: mistakes
  sources:
  - {step_id: events, kind: replay, path: events.jsonl, raw: true}
  processing:
  - step_id: parse
    kind: parse
    input: events
  - step_id: big
    kind: filter
    input: parse
    expr: amount > 2
{extra}  sinks: []
"""


def test_a_key_given_twice_is_a_problem_naming_both_lines_not_a_silent_overwrite() -> None:
    text = SPEC.replace("{extra}", "    expr: amount > 3\n")
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(text)
    message = str(e.value)
    assert "line 13, column 5" in message and "duplicate key 'expr' (also on line 12)" in message
    assert "remove one of the two 'expr' entries" in message


def test_a_merge_key_may_still_be_overridden() -> None:
    data, _ = load_spec("base: &b {kind: filter, expr: a > 1}\nstep: {<<: *b, expr: a > 2}\n")
    assert data["step"] == {"kind": "filter", "expr": "a > 2"}


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_yaml_nested_beyond_the_recursion_limit_is_a_spec_error(opening: str, closing: str) -> None:
    with pytest.raises(SpecError, match="nested too deeply"):
        Pipeline.from_yaml("streaming: " + opening * 5000 + "1" * (opening != "[") + closing * 5000)


def test_a_one_line_spec_longer_than_a_file_name_is_read_as_text() -> None:
    with pytest.raises(SpecError, match="streaming: expected a mapping"):
        Pipeline.from_yaml("streaming: [" + ", ".join(["x"] * 200) + "]")


@pytest.mark.parametrize(
    "text, problem",
    [
        (SPEC.replace("{extra}", "    expr: amount > 3\n"), "duplicate key 'expr'"),
        ("streaming: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_streamlab_run_exits_2_with_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    assert main(["run", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert problem in err and "Fix:" in err and "Traceback" not in err


JOIN = """\
streaming:
  sources:
  - {step_id: a, kind: replay, path: a.jsonl}
  - {step_id: b, kind: replay, path: b.jsonl}
  processing:
  - step_id: join
    kind: interval_join
    input: [a, b]
    'on': [user_id]
    lower: -1m
    upper: 1m
    delay: tenseconds
    left_time: 5
    suffixes: _l
  - {step_id: d, kind: dedup, input: join, max_ids: 0}
  sinks: []
"""


def test_every_mistake_of_an_interval_join_is_reported_with_its_path_at_once() -> None:
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(JOIN)
    paths = [p.path for p in e.value.problems]
    join = "streaming.processing[0] (step 'join')"
    assert paths == [
        f"{join}.delay",
        f"{join}.left_time",
        f"{join}.suffixes",
        "streaming.processing[1] (step 'd').max_ids",
    ]
    assert "write e.g. suffixes: ['', _right]" in str(e.value)


def test_a_spec_built_in_python_may_give_the_suffixes_as_a_tuple() -> None:
    data, _ = load_spec(JOIN.replace("tenseconds", "10s").replace("left_time: 5", "left_time: t"))
    data["streaming"]["processing"][0]["suffixes"] = ("_l", "_r")
    data["streaming"]["processing"][1]["max_ids"] = 10
    from streamlab.spec import pipeline_from_dict

    p = pipeline_from_dict(data, lazy_sources=True)
    assert p.steps["join"].suffixes == ("_l", "_r")  # type: ignore[attr-defined]


CONNECTORS = """\
streaming:
  sources:
  - {step_id: a, kind: replay, rawr: true}
  - {step_id: b, kind: replay, path: b.jsonl, raww: true}
  processing: []
  sinks:
  - {step_id: out, kind: duckdb, input: b, path: out.duckdb, tabel: counts}
"""


def test_a_connector_parameter_that_is_unknown_or_missing_is_named_at_its_path(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text("")
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(CONNECTORS.replace("b.jsonl", str(tmp_path / "b.jsonl")))
    got = [(p.path, p.problem) for p in e.value.problems]
    assert got == [
        ("streaming.sources[0] (step 'a')", "missing 'path'"),
        ("streaming.sources[1] (step 'b').raww", "unknown parameter 'raww'"),
    ]  # the sink reads a source that failed: not built, not reported
    assert "lambda" not in str(e.value) and "TypeError" not in str(e.value)
    sink = CONNECTORS.replace(", raww: true", "").replace("b.jsonl", str(tmp_path / "b.jsonl"))
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(sink.replace("rawr: true", f"path: {tmp_path / 'b.jsonl'}"))
    assert [(p.path, p.problem) for p in e.value.problems] == [
        ("streaming.sinks[0] (step 'out').tabel", "unknown parameter 'tabel'")
    ]


WINDOW = """\
streaming:
  sources:
  - {step_id: e, kind: replay, path: e.jsonl, raw: true}
  processing:
  - {step_id: p, kind: parse, input: e}
  - step_id: s
    kind: select
    input: p
    columns: {event_id: event_id, timestamp: timestamp, event_type: 5}
  - step_id: w
    kind: window
    input: p
    window: {kind: tumbling, size: 1m}
    aggregate: [{kind: count}]
    watermark_by: 5
    time: 7
  sinks: []
"""


def test_a_select_rename_or_window_column_that_is_no_name_is_a_problem_at_its_path() -> None:
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(WINDOW)
    assert [p.path for p in e.value.problems] == [
        "streaming.processing[1] (step 's').columns.event_type",
        "streaming.processing[2] (step 'w').watermark_by",
        "streaming.processing[2] (step 'w').time",
    ]
    assert "TypeError" not in str(e.value)


def test_a_sink_that_reads_another_sink_is_told_what_to_read_instead() -> None:
    text = """\
streaming:
  sources:
  - {step_id: e, kind: replay, path: e.jsonl, raw: true}
  processing:
  - {step_id: p, kind: parse, input: e}
  sinks:
  - {step_id: out, kind: list, input: p}
  - {step_id: again, kind: list, input: out}
"""
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(text)
    assert [(p.path, p.problem, p.fix) for p in e.value.problems] == [
        (
            "streaming.sinks[1] (step 'again').input",
            "'out' is a sink, which has no output to read",
            "read the stream that sink reads: input: p",
        )
    ]


def test_chaining_a_sink_after_a_sink_is_refused_not_a_second_sink_that_gets_nothing() -> None:
    from streamlab import ListSink
    from streamlab.errors import PipelineConfigError
    from streamlab.testing import ListSource

    p = Pipeline(ListSource([{"x": 1}]))
    first = p.to(ListSink())
    with pytest.raises(PipelineConfigError, match="'sink' is a sink, which has no output to read"):
        first.to(ListSink())
    assert list(p.steps) == ["source", "sink"]  # and so no spec whose second sink reads the first
