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
