"""What an exported job reads when the pipeline replays a file read whole (CSV, Parquet, a JSON file) or a
DataFrame: the texts of the column its parse reads, not the file. Given the replayed CSV file itself
(``--input x.csv``) a job read each of its lines as a JSON record and sent it to dead letter, and no
generated file said so. Each export's README (or module docstring) now says what the job reads and how
to write it (``write_job_input``, ``streamlab export --write-input``), and that file, given to the
exported Beam program on its own command line, gives streamlab's results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab.cli import main
from streamlab.errors import PipelineConfigError
from streamlab.export import verify, write_job_input
from streamlab.export.verify import beam_program_outputs
from streamlab.sinks import ListSink

FIELDS = {"event_id": "string", "user": "string", "timestamp": "timestamp"}
RECORDS = [{"event_id": f"e{i}", "user": "u", "timestamp": f"2024-01-01T00:0{i}:00Z"} for i in range(4)]
TEXTS = [json.dumps(r) for r in RECORDS[:2]] + ["not json"] + [json.dumps(r) for r in RECORDS[2:]]
ROWS = pd.DataFrame({"ts": [f"2024-01-01T00:0{i}:00Z" for i in range(5)], "payload": TEXTS})
GUIDE = {
    "to_beam": "payloads_beam.py",
    "to_spark": "README.md",
    "to_flink": "README.md",
    "to_lambda": "handler.py",
}


def _data(kind: str, tmp_path: Path) -> pd.DataFrame | Path:
    if kind == "csv ;":
        ROWS.to_csv(tmp_path / "x.csv", index=False, sep=";")
        return tmp_path / "x.csv"
    if kind == "parquet":
        ROWS.to_parquet(tmp_path / "x.parquet")
        return tmp_path / "x.parquet"
    if kind == "json read whole":
        ROWS.to_json(tmp_path / "x.jsonl", orient="records", lines=True)
        return tmp_path / "x.jsonl"
    return ROWS


def _pipeline(data: pd.DataFrame | Path) -> Pipeline:
    sep = ";" if isinstance(data, Path) and data.suffix == ".csv" else ","
    p = Pipeline(ReplaySource(data, time="ts", sep=sep), name="payloads")
    p.parse(FIELDS, value_column="payload").window(TumblingWindow("2m"), key="user").agg(agg.count())
    return p


@pytest.mark.parametrize("kind", ["csv ;", "parquet", "json read whole", "frame"])
def test_the_written_input_is_the_parsed_column(tmp_path: Path, kind: str) -> None:
    p = _pipeline(_data(kind, tmp_path))
    out = write_job_input(p, tmp_path / "events.jsonl")
    assert out.read_text() == "".join(t + "\n" for t in TEXTS)


@pytest.mark.parametrize("method", list(GUIDE))
@pytest.mark.parametrize("kind", ["csv ;", "frame"])
def test_each_export_says_what_its_job_reads(tmp_path: Path, method: str, kind: str) -> None:
    files = getattr(_pipeline(_data(kind, tmp_path)), method)(str(tmp_path / "out"))
    text = " ".join(files.read(GUIDE[method]).replace("#", "").split())
    what = "a DataFrame" if kind == "frame" else f"the file {str(tmp_path / 'x.csv')!r}"
    assert f"Input: the pipeline replays {what} (step 'source') and parses its column 'payload'" in text
    assert "streamlab.export.write_job_input(pipeline, 'events.jsonl')" in text


@pytest.mark.parametrize("method", list(GUIDE))
def test_a_raw_json_lines_replay_has_no_such_note(tmp_path: Path, method: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(t + "\n" for t in TEXTS))
    p = Pipeline(ReplaySource(path, raw=True), name="payloads")
    p.parse(FIELDS).window(TumblingWindow("2m"), key="user").agg(agg.count())
    files = getattr(p, method)(str(tmp_path / "out"))
    assert "write_job_input" not in files.read(GUIDE[method])
    with pytest.raises(PipelineConfigError, match=r"write_job_input.*raw JSON-lines replay is already"):
        write_job_input(p, tmp_path / "again.jsonl")


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(st.text(st.sampled_from('a{}"\n\r\ufeff'), max_size=8), min_size=1, max_size=6))
def test_a_record_with_a_line_break_is_written_in_base64(texts: list[str]) -> None:
    import base64
    import tempfile

    p = Pipeline(ReplaySource(pd.DataFrame({"payload": texts})), name="t")
    p.parse({"s": "string"}, value_column="payload", time=None)
    path = Path(tempfile.mkdtemp()) / "in.txt"
    records = [t.encode("utf-8", "surrogatepass") for t in texts]
    # a line break would split a record, a byte order mark starting the file would be skipped
    if any(b"\n" in r or r.endswith(b"\r") for r in records) or records[0].startswith(b"\xef\xbb\xbf"):
        with pytest.raises(ValueError, match="input_format='base64'"):
            write_job_input(p, path)
    else:
        assert path.exists() is False and write_job_input(p, path).read_bytes().split(b"\n")[:-1] == records
    lines = write_job_input(p, path, input_format="base64").read_bytes().split(b"\n")[:-1]
    assert [base64.b64decode(x) for x in lines] == records


def test_streamlab_export_writes_the_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pipeline(_data("csv ;", tmp_path)).to_yaml(str(tmp_path / "spec.yaml"))
    target = tmp_path / "events.jsonl"
    args = ["export", "beam", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "out")]
    assert main([*args, "--write-input", str(target)]) == 0
    assert target.read_text() == "".join(t + "\n" for t in TEXTS)
    assert f"{target}: the records the job reads" in capsys.readouterr().out


@pytest.mark.slow
def test_the_written_input_gives_the_beam_program_streamlabs_results(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    p = _pipeline(_data("csv ;", tmp_path))
    ours = p.run(clock=ManualClock(0))
    files = p.to_beam(str(tmp_path / "beam"))
    events = write_job_input(p, tmp_path / "events.jsonl")
    theirs = beam_program_outputs(files.module, events, tmp_path)
    window = theirs["window"].sort_values("window_start")
    assert window["count"].tolist() == ours["window"]["count"].tolist() == [2, 2]
    assert (
        theirs["parse.dead_letter"]["raw"].tolist()
        == ours["parse.dead_letter"]["raw"].tolist()
        == ["not json"]
    )


# A CSV replay's malformed records (here a line with a field more than the header) go to the replay's own
# dead_letter sink. They were not written, so the job never saw them: its dead letters lacked what
# streamlab's run dead-lettered. They are written now, each where the replay passes it.
MALFORMED = b"2024-01-01T00:02:30Z;x;y"


def _csv_with_a_malformed_line(tmp_path: Path) -> Path:
    path = _data("csv ;", tmp_path)
    assert isinstance(path, Path)
    lines = path.read_bytes().splitlines()
    # after the header and the first three rows (the third is "not json")
    path.write_bytes(b"\n".join([*lines[:4], MALFORMED, *lines[4:]]) + b"\n")
    return path


def _csv_pipeline(path: Path, dead: ListSink) -> Pipeline:
    p = Pipeline(ReplaySource(path, time="ts", sep=";", dead_letter=dead), name="payloads")
    p.parse(FIELDS, value_column="payload").window(TumblingWindow("2m"), key="user").agg(agg.count())
    return p


def test_a_csv_replays_malformed_records_are_written_where_it_passes_them(tmp_path: Path) -> None:
    p = _csv_pipeline(_csv_with_a_malformed_line(tmp_path), ListSink())
    written = write_job_input(p, tmp_path / "events.jsonl").read_bytes().splitlines()
    assert written == [t.encode() for t in TEXTS[:3]] + [MALFORMED] + [t.encode() for t in TEXTS[3:]]


def test_a_malformed_record_that_is_a_json_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(
        b'ts,payload\n1,"{""n"": 1}"\n{"a": 1, "b": 2, "c": 3}\n'
    )  # 3 fields, where the header has 2
    p = Pipeline(ReplaySource(path, time="ts", dead_letter=ListSink()), name="t")
    p.parse({"n": "int64"}, value_column="payload", time=None)
    with pytest.raises(ValueError, match=r"line 3 of the CSV file is malformed .* a JSON object"):
        write_job_input(p, tmp_path / "events.jsonl")


def test_the_note_says_what_a_job_makes_of_a_dataframe(tmp_path: Path) -> None:
    text = " ".join(
        _pipeline(ROWS).to_beam(str(tmp_path / "out")).read(GUIDE["to_beam"]).replace("#", "").split()
    )
    assert "a DataFrame is no input a job reads" in text
    assert "replayed CSV or Parquet file" not in text


@pytest.mark.slow
def test_the_beam_program_dead_letters_what_the_csv_replay_did(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    dead = ListSink()
    p = _csv_pipeline(_csv_with_a_malformed_line(tmp_path), dead)
    ours = p.run(clock=ManualClock(0))
    assert [r["raw"] for r in dead.rows()] == [MALFORMED]
    theirs = beam_program_outputs(
        p.to_beam(str(tmp_path / "beam")).module, write_job_input(p, tmp_path / "e.jsonl"), tmp_path
    )
    assert theirs["window"].sort_values("window_start")["count"].tolist() == ours["window"]["count"].tolist()
    raw = [MALFORMED.decode(), *ours["parse.dead_letter"]["raw"]]
    assert (
        sorted(theirs["parse.dead_letter"]["raw"].tolist())
        == sorted(raw)
        == sorted(["not json", MALFORMED.decode()])
    )


@pytest.mark.slow
def test_a_missing_value_is_dead_lettered_by_the_job_too(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    rows = ROWS.assign(payload=[*TEXTS[:2], None, *TEXTS[3:]])
    p = _pipeline(rows)
    ours = p.run(clock=ManualClock(0))
    theirs = beam_program_outputs(
        p.to_beam(str(tmp_path / "beam")).module, write_job_input(p, tmp_path / "e.jsonl"), tmp_path
    )
    # the job's input lines hold no null: the missing value reaches the job as an empty record, which it
    # dead-letters as such; streamlab says what arrived, a null value (a Kafka tombstone's reason)
    assert theirs["parse.dead_letter"]["reason"].tolist() == ["empty record"]
    assert ours["parse.dead_letter"]["reason"].tolist() == ["null value (tombstone)"]


def test_verify_gives_both_sides_a_missing_value_as_the_empty_record_the_job_reads() -> None:
    # verify(p, rows) with a missing value raised TypeError (bytes(None)) before anything ran; given as it
    # is to streamlab only, it would be a false mismatch ('null value (tombstone)' against the job's
    # 'empty record', which is all a file of lines can hold): both get the empty record, and the report
    # says so
    from streamlab.export.verify import null_value_note, sample_lines

    rows = ROWS.assign(payload=[TEXTS[0], None, float("nan"), *TEXTS[3:]])
    assert sample_lines(rows, "payload") == [TEXTS[0].encode(), b"", b"", *(t.encode() for t in TEXTS[3:])]
    note = null_value_note(rows, "payload")
    assert note is not None and note.startswith("2 records of the sample have no value")
    assert null_value_note(ROWS, "payload") is None


@pytest.mark.slow
def test_verify_of_a_missing_value_is_equal_and_says_why(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    rows = ROWS.assign(payload=[*TEXTS[:2], None, *TEXTS[3:]])
    report = verify(_pipeline(rows), rows, "beam", workdir=tmp_path)
    assert report.equal, report.diff
    assert report.exported["parse.dead_letter"]["reason"].tolist() == ["empty record"]
    assert any(n.startswith("1 record of the sample has no value") for n in report.notes)
