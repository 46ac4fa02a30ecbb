"""A spec built without its data file (``lazy_sources=True``, as ``streamlab export`` builds it) checks a
replay's CSV options as a spec with its file does.

Two gaps: a ``.tsv`` or ``.tab`` file named without ``sep='\\t'`` was refused only when the file was read
(with the file absent the spec built, and ``streamlab run`` failed later, when the file arrived); and
the export refusals of a replay read with ``sep``/``encoding``/``decimal``, or parsed from a column of its
rows, looked at ``ReplaySource`` only, so the placeholder a lazy spec holds for the absent file exported
a job that would not read that file as streamlab does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamlab import ReplaySource
from streamlab.cli import main
from streamlab.errors import ParameterError, SpecError
from streamlab.spec import pipeline_from_dict

PARSE = {"step_id": "parse", "kind": "parse", "input": "e", "schema": {"timestamp": "timestamp"}}


def _spec(source: dict[str, Any], *processing: dict[str, Any]) -> dict[str, Any]:
    return {
        "streaming": {
            "sources": [{"step_id": "e", "kind": "replay", **source}],
            "processing": list(processing),
        }
    }


@pytest.mark.parametrize("name", ["absent.tsv", "absent.TAB", "absent.tsv.gz"])
def test_a_tab_separated_file_without_its_separator_is_refused_when_made(tmp_path: Path, name: str) -> None:
    with pytest.raises(ParameterError, match=r"ReplaySource\(sep=\.\.\.\): .*tab-separated by its name"):
        ReplaySource(tmp_path / name)
    with pytest.raises(SpecError, match=r"streaming\.sources\[0\] \(step 'e'\)\.sep: .*sep='\\t'"):
        pipeline_from_dict(_spec({"path": str(tmp_path / name)}), lazy_sources=True)
    lazy = pipeline_from_dict(_spec({"path": str(tmp_path / name), "sep": "\t"}), lazy_sources=True)
    assert list(lazy.steps) == ["e"]  # named: the spec builds without its file


@pytest.mark.parametrize("method", ["to_beam", "to_spark", "to_flink", "to_lambda"])
@pytest.mark.parametrize("source", [{"sep": ";", "decimal": ","}, {"encoding": "cp1252"}, {}])
def test_a_lazy_spec_exports_as_with_its_file(tmp_path: Path, method: str, source: dict[str, Any]) -> None:
    """The CSV options do not change what the exported job reads (the parsed column's texts): a lazy spec
    with them exports, as one without them does (they were refused)."""
    window = {
        "step_id": "w",
        "kind": "window",
        "input": "parse",
        "window": {"kind": "tumbling", "size": "1m"},
    }
    spec = _spec(
        {"path": str(tmp_path / "absent.csv"), **source},
        {**PARSE, "value_column": "payload"},
        {**window, "aggregate": [{"kind": "count", "name": "count"}]},
    )
    p = pipeline_from_dict(spec, lazy_sources=True)
    files = getattr(p, method)(str(tmp_path / "out"))
    assert files.module.exists()


def test_streamlab_export_says_what_the_job_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "streaming:\n"
        "  sources:\n"
        f"    - {{step_id: e, kind: replay, path: {tmp_path / 'absent.csv'}, sep: ';'}}\n"
        "  processing:\n"
        "    - {step_id: parse, kind: parse, input: e, value_column: payload}\n"
    )
    assert main(["export", "beam", str(spec), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Input: the pipeline replays the file" in out and "--write-input events.jsonl" in out


def test_a_lazy_raw_json_lines_spec_still_exports(tmp_path: Path) -> None:
    spec = _spec({"path": str(tmp_path / "absent.jsonl"), "raw": True}, PARSE)
    files = pipeline_from_dict(spec, lazy_sources=True).to_beam(str(tmp_path / "out"))
    assert files.module.exists()
