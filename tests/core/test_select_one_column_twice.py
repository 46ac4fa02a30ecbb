"""select('a', b='a') keeps ``a`` and copies it as ``b``: the run, the spec and the exports give both.

The step reported its out_columns as ('a', 'timestamp', 'b'), but it was built as
``SelectOperator(dict(self.columns))`` and written to the spec as a mapping keyed by the input name, so
the two outputs of ``a`` collapsed into the last one: the run and the reloaded spec had no ``a``, and a
downstream ``with_columns(c='a + 1')``, which construction accepted, dead-lettered every row. The Beam and
Lambda exports read the same mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import ManualClock, Pipeline, ReplaySource
from streamlab._step_kinds import ReadContext, from_params, params_of
from streamlab.steps import SelectStep


def _events(tmp_path: Path) -> str:
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps({"a": i, "x": 10 * i, "timestamp": i}) + "\n" for i in range(3)))
    return str(path)


def _pipeline(path: str) -> Pipeline:
    p = Pipeline(ReplaySource(path))
    p.stream.select("a", "timestamp", b="a", step_id="sel").with_columns(step_id="w", c="a + b")
    return p


def test_the_run_gives_every_output_the_step_reports(tmp_path: Path) -> None:
    p = _pipeline(_events(tmp_path))
    assert p.columns_of("sel") == ("a", "timestamp", "b")
    result = p.run(clock=ManualClock(0))
    assert len(result["w.dead_letter"]) == 0
    w = result["w"]
    assert tuple(w.columns) == ("a", "timestamp", "b", "c")
    assert w["a"].tolist() == w["b"].tolist() == [0, 1, 2]
    assert w["c"].tolist() == [0, 2, 4]


def test_the_spec_entry_keeps_both_outputs_of_one_input() -> None:
    step = SelectStep("sel", ("source",), columns=(("a", "a"), ("timestamp", "timestamp"), ("a", "b")))
    params = params_of(step)
    assert params["columns"] == [{"a": "a"}, {"timestamp": "timestamp"}, {"a": "b"}]
    back = from_params(SelectStep, params, ReadContext(), step_id="sel", inputs=("source",))
    assert back.columns == step.columns


def test_the_saved_pipeline_reloads_with_both_outputs(tmp_path: Path) -> None:
    p = _pipeline(_events(tmp_path))
    text = p.to_yaml()
    q = Pipeline.from_yaml(text)
    assert q.columns_of("sel") == ("a", "timestamp", "b")
    assert q.to_yaml() == text
    w = q.run(clock=ManualClock(0))["w"]
    assert tuple(w.columns) == ("a", "timestamp", "b", "c") and w["c"].tolist() == [0, 2, 4]


def test_a_spec_list_item_that_is_not_a_column_is_named_when_read(tmp_path: Path) -> None:
    text = _pipeline(_events(tmp_path)).to_yaml().replace("- a: b", "- a: [b]")
    with pytest.raises(Exception, match=r"columns\[2\].*expected a column's name"):
        Pipeline.from_yaml(text)


def test_a_spec_of_distinct_inputs_is_written_and_read_as_before(tmp_path: Path) -> None:
    p = Pipeline(ReplaySource(_events(tmp_path)))
    p.stream.select("a", "timestamp", y="x", step_id="sel")
    text = p.to_yaml()
    assert "columns:\n      a: a\n      timestamp: timestamp\n      x: y\n" in text
    q = Pipeline.from_yaml(text)
    assert q.columns_of("sel") == ("a", "timestamp", "y")
    assert q.run(clock=ManualClock(0))["sel"]["y"].tolist() == [0, 10, 20]


def test_a_list_item_that_is_not_a_column_is_refused() -> None:
    with pytest.raises(Exception, match="is not a column name"):
        from_params(SelectStep, {"columns": ["a", {"a": "b", "x": "y"}]}, step_id="sel", inputs=("source",))
