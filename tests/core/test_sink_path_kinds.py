"""A file sink whose path exists as the wrong kind is refused when the sink is made, with the fix: a
directory where a JSON-lines or DuckDB file goes, a file where Parquet's parts directory goes, a file as
one of the path's folders. Before, each was accepted and the run failed when the sink opened
(IsADirectoryError, FileExistsError, NotADirectoryError, DuckDB's "cannot open file")."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.errors import ParameterError, SpecError
from streamlab.sinks import DuckDBSink, JsonLinesSink, ParquetSink

MAKERS = {
    "JsonLinesSink": lambda path: JsonLinesSink(path),
    "DuckDBSink": lambda path: DuckDBSink(path, "t"),
    "ParquetSink": lambda path: ParquetSink(path),
}


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile.jsonl").write_text('{"x": 1}\n')
    return {"dir": tmp_path / "adir", "file": tmp_path / "afile.jsonl"}


@pytest.mark.parametrize(
    "owner, wrong, words, fix",
    [
        ("JsonLinesSink", "dir", "is a directory, where JsonLinesSink writes one file", "adir/out.jsonl"),
        ("DuckDBSink", "dir", "is a directory, where DuckDBSink writes one file", "adir/results.duckdb"),
        (
            "ParquetSink",
            "file",
            "is a file, where ParquetSink writes its part files into a directory",
            "afile_parts",
        ),
    ],
)
def test_a_path_of_the_wrong_kind_is_refused_when_the_sink_is_made(places, owner, wrong, words, fix):
    with pytest.raises(ParameterError) as e:
        MAKERS[owner](places[wrong])
    assert e.value.owner == owner and e.value.parameter == "path"
    assert words in e.value.problem and repr(str(places[wrong])) in e.value.problem
    assert e.value.fix.endswith(fix)


@pytest.mark.parametrize("owner", sorted(MAKERS))
def test_a_file_as_a_folder_of_the_path_is_refused_naming_it(places, owner):
    inner = places["file"] / "deeper" / "out"
    with pytest.raises(ParameterError) as e:
        MAKERS[owner](inner)
    assert f"{str(places['file'])!r}, a folder of path" in e.value.problem and "is a file" in e.value.problem
    assert e.value.fix.endswith(str(places["file"].parent / "afile_out" / "deeper" / "out"))


@pytest.mark.parametrize("owner", sorted(MAKERS))
def test_paths_that_are_right_or_not_there_yet_are_taken(places, owner, tmp_path):
    assert MAKERS[owner](tmp_path / "new" / "folders" / "out").path.endswith("out")  # made when opened
    right = {
        "ParquetSink": places["dir"],
        "JsonLinesSink": places["file"],
        "DuckDBSink": tmp_path / "r.duckdb",
    }
    assert MAKERS[owner](right[owner]).path == str(right[owner])


def test_a_spec_reports_it_at_the_sink_path(places, tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_text('{"timestamp": "2024-01-01T00:00:00Z"}\n')
    spec = (
        "streaming:\n  sources:\n"
        f"  - {{step_id: events, kind: replay, path: '{events}'}}\n"
        "  processing: []\n  sinks:\n"
        f"  - {{step_id: out, input: events, kind: jsonl, path: '{places['dir']}'}}\n"
    )
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(spec)
    assert [p.path for p in e.value.problems] == ["streaming.sinks[0] (step 'out').path"]
    assert "is a directory" in e.value.problems[0].problem
