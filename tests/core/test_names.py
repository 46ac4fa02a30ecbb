"""Step ids and the pipeline's name are written into exported code, Terraform and shell files, file and
table names: a quote, newline, NUL byte, space or a name too long for a file name is refused when the
step or pipeline is built (a step id of x'''\"\"\" made Beam, Lambda, Flink and Spark code that does not
compile, a 300-character name an OSError mid-export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import ListSource, Pipeline, PipelineConfigError
from streamlab.cli import main
from streamlab.errors import SpecError
from streamlab.spec import pipeline_from_dict

BAD = [
    "x'''\"\"\"",
    "a\nb",
    "nul\x00",
    "my step",
    "a.b",
    "tab\t",
    "back\\slash",
    "$(id)",
    "x" * 101,
    "-x",
    "",
]
GOOD = ["counts", "fraud-alerts", "window_2", "2nd", "é日本"]


def events() -> Pipeline:
    return Pipeline(ListSource([{"x": 1, "timestamp": 0}]))


@pytest.mark.parametrize("sid", BAD)
def test_a_step_id_that_is_not_a_name_is_refused(sid: str) -> None:
    with pytest.raises(PipelineConfigError) as e:
        events().stream.filter("x > 0", step_id=sid)
    assert "step_id" in e.value.problem and "letters, digits" in e.value.fix


@pytest.mark.parametrize("sid", GOOD)
def test_names_of_letters_digits_underscores_and_dashes_are_kept(sid: str) -> None:
    assert events().stream.filter("x > 0", step_id=sid).step_id == sid
    assert Pipeline(name=sid).name == sid


@pytest.mark.parametrize("name", ['idle_timeout="2s"', "no idle_timeout", "a.b", "x'", "$(id)"])
def test_a_pipeline_name_is_a_label_and_may_hold_spaces_and_quotes(name: str) -> None:
    # notebook 03 names its pipelines by their settings
    assert Pipeline(name=name).name == name


BAD_PIPELINE_NAMES = [
    'x"""',
    "x'''",
    "a\nb",
    "nul\x00",
    "tab\t",
    "back\\slash",
    "x" * 101,
    "",
    "   ",
    3,
    None,
]


@pytest.mark.parametrize("name", BAD_PIPELINE_NAMES)
def test_a_pipeline_name_that_would_break_the_text_it_is_written_into_is_refused(name: object) -> None:
    with pytest.raises(PipelineConfigError, match="name="):
        Pipeline(name=name)  # type: ignore[arg-type]


@pytest.mark.parametrize("time", ["", 3, None])
def test_a_pipeline_time_that_is_not_a_column_name_is_refused(time: object) -> None:
    with pytest.raises(PipelineConfigError, match="time="):
        Pipeline(time=time)  # type: ignore[arg-type]


def spec(sid: str, name: str = "small") -> dict[str, object]:
    return {
        "streaming": {
            "name": name,
            "sources": [{"step_id": "events", "kind": "replay", "path": "missing.jsonl", "raw": True}],
            "processing": [
                {
                    "step_id": "parse",
                    "kind": "parse",
                    "input": "events",
                    "schema": {"x": "float64", "timestamp": "timestamp"},
                },
                {"step_id": sid, "kind": "filter", "input": "parse", "expr": "x > 1"},
            ],
            "sinks": [{"step_id": "out", "kind": "jsonl", "input": sid, "path": "out.jsonl"}],
        }
    }


@pytest.mark.parametrize("sid", ["x'''\"\"\"", "nul\x00", "a b"])
def test_a_spec_reports_a_bad_step_id_at_its_path(sid: str) -> None:
    with pytest.raises(SpecError) as e:
        pipeline_from_dict(spec(sid), lazy_sources=True)
    assert any(
        p.path.endswith(".step_id") and p.path.startswith("streaming.processing[1]") for p in e.value.problems
    )


@pytest.mark.parametrize("name", ['x"""\ny = 1\n"""', "x" * 300])
def test_a_spec_reports_a_bad_pipeline_name(name: str) -> None:
    with pytest.raises(SpecError) as e:
        pipeline_from_dict(spec("keep", name), lazy_sources=True)
    assert [p.path for p in e.value.problems] == ["streaming.name"]


@pytest.mark.parametrize("target", ["beam", "lambda", "flink", "spark"])
def test_export_refuses_a_step_id_that_would_break_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    (tmp_path / "e.jsonl").write_text('{"x": 2, "timestamp": 0}\n')
    data = spec("x'''\"\"\"")
    data["streaming"]["sources"][0]["path"] = str(tmp_path / "e.jsonl")  # type: ignore[index]
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    out = tmp_path / "out"
    assert main(["export", target, str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "step_id" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
