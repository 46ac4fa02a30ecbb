"""An export to BigQuery refuses, before writing any file and naming the step, a column BigQuery would
refuse: the generated job (or terraform) failed creating the table once deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import to_beam
from streamlab.export.beam import bigquery_column_problem
from streamlab.testing import ListSource


def pipeline(*fields: str) -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="bq")
    schema = {f: "string" for f in fields} | {"timestamp": "timestamp"}
    p.parse(schema).window(TumblingWindow("1m"), key=list(fields), step_id="per_key").agg(agg.count())
    return p


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (("user.id",), "it holds '.'"),
        (("price$",), "it holds '$'"),
        (("Country", "country"), "case-insensitive, and 'Country' is a column too"),
        (("_PARTITIONTIME",), "prefix BigQuery reserves"),
    ],
)
def test_a_column_bigquery_refuses_is_refused_at_export(
    fields: tuple[str, ...], why: str, tmp_path: Path
) -> None:
    with pytest.raises(PipelineConfigError, match=r"step 'per_key' \(window\): cannot write column") as e:
        to_beam(pipeline(*fields), tmp_path / "out", sink="bigquery")
    assert why in str(e.value) and "sink='files'" in str(e.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_names_bigquery_takes_and_the_files_sink_are_exported(tmp_path: Path) -> None:
    fields = ("user_id", "é", "prix total", "a-b", "x:y", "1st")
    assert [bigquery_column_problem(f) for f in fields] == [None] * len(fields)
    assert to_beam(pipeline(*fields), tmp_path / "bq", sink="bigquery").files
    assert to_beam(pipeline("user.id"), tmp_path / "files", sink="files").files


def test_a_module_exported_for_files_refuses_sink_bigquery_with_the_reason(tmp_path: Path) -> None:
    """Its ``--sink bigquery`` (a run-time choice) started the job, which failed creating the table."""
    import subprocess
    import sys

    module = to_beam(pipeline("user.id"), tmp_path, sink="files").module
    cmd = [sys.executable, str(module), "--input", str(tmp_path / "in.jsonl"), "--sink", "bigquery"]
    done = subprocess.run([*cmd, "--dataset", "d"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--sink bigquery: step 'per_key' (window): cannot write column 'user.id'" in done.stderr
