"""Exported programs cut a file into the records streamlab's raw replay cuts it into: hostile files (a
byte order mark, CRLF and bare CR, empty lines, NUL bytes, bad UTF-8, a last line without its newline)
give the Beam program's, the Spark job's and the Flink jobs' (main.py, datastream.py) line readers the
same records, so their dead letters are streamlab's; and the Beam program and the Flink jobs run on such
a file as deployed keep the record after the mark and a bare CR inside its record."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from apache_beam.io.source_test_utils import read_from_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._lines import file_lines
from streamlab.export import to_beam, to_flink, to_spark, verify
from streamlab.export.verify import input_format, load_module
from streamlab.testing import ListSource

BOM = b"\xef\xbb\xbf"
PIECES = [
    b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:01Z"}',
    b"\n",
    b"\r\n",
    b"\r",
    b"",
    BOM,
    b"\x00",
    b"\xff\xfe",
    b"[1]",
    b"  ",
]


def _pipeline(name: str) -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name=name)
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    return p


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any, Any]:
    """The generated Beam module, Spark module and Flink main.py and datastream.py (their line readers)."""
    work = tmp_path_factory.mktemp("readers")
    beam = load_module(to_beam(_pipeline("lines_beam"), work / "beam").module)
    spark = load_module(to_spark(_pipeline("lines_spark"), work / "spark").module)
    flink = to_flink(_pipeline("lines_flink"), work / "flink", source="files")
    main = load_module(flink.directory / "main.py")
    datastream = load_module(flink.directory / "datastream.py")
    return beam, spark, main, datastream


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.booleans(), st.lists(st.sampled_from(PIECES), max_size=20), st.integers(1, 40), st.booleans())
def test_exported_line_readers_cut_a_file_as_the_raw_replay_does(
    readers: tuple[Any, Any, Any, Any],
    tmp_path_factory: pytest.TempPathFactory,
    bom: bool,
    parts: list[bytes],
    split_bytes: int,
    gz: bool,
) -> None:
    # a file starting with a byte order mark (as Windows tools write it): streamlab's replay leaves the
    # mark out of the first record, Beam's read_lines and Spark's split_lines kept it, so the exported
    # job dead-lettered ("invalid JSON: Expecting value") the record streamlab parsed; Flink's text line
    # format kept it too, and also ended a record at a bare CR (two dead letters for streamlab's one)
    beam, spark, main, datastream = readers
    data = (BOM if bom else b"") + b"".join(parts)
    path = tmp_path_factory.mktemp("file") / "events.jsonl"
    path.write_bytes(data)
    ours = [bytes(x) for x in file_lines(path).tolist()] if data else []
    assert beam.read_lines(str(path)) == ours
    assert spark.split_lines(data) == ours
    # Beam's backfill (--input without --replay) reads the file in ranges, as ReadFromText does
    source = beam.ReadRecords(str(path))._source
    bundles = list(source.split(desired_bundle_size=split_bytes))
    assert [x for b in bundles for x in read_from_source(b.source, b.start_position, b.stop_position)] == ours
    if gz:  # one split of the whole file, read decompressed (streamlab's replay reads a .gz so too)
        path = path.with_name("events.jsonl.gz")
        path.write_bytes(gzip.compress(data))
    for job in (main, datastream):
        # the Flink jobs read a file in ranges of bytes, each record in the range where it starts
        splits = job.file_splits([str(path)], split_bytes)
        assert [line for split in splits for line in job.read_split(split)] == ours


def test_verify_hands_a_first_record_starting_with_a_mark_over_in_base64() -> None:
    # otherwise the file written for the Beam program would start with the mark, which its reader skips
    assert input_format([BOM + b"{}", b"{}"]) == "base64"
    assert input_format([b"{}", BOM + b"{}"]) == "lines"


def _events(n: int, properties: dict[str, Any]) -> list[bytes]:
    return [
        json.dumps(
            {
                "event_id": f"e{i}",
                "event_type": "buy",
                "user_id": "u",
                "timestamp": f"2024-01-01T00:00:{i:02d}Z",
                "properties": properties,
            }
        ).encode()
        for i in range(n)
    ]


def _replayed(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and dead letters of streamlab's raw replay of file ``data``, parsed."""
    q = Pipeline(ReplaySource(data, raw=True))
    parsed = q.parse()
    ok, dead = ListSink(), ListSink()
    parsed.to(ok)
    parsed.dead_letter.to(dead)
    q.run(clock=ManualClock(0))
    return ok.frame(), dead.frame()


def _written(out: Path, outputs: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Each output's rows as an exported program wrote them under ``out``: a directory of files per
    output (streaming), or shards ``name-00000-of-00001.jsonl`` (Beam's backfill)."""
    return {
        ref: [
            json.loads(x)
            for f in sorted([*(out / name).rglob("*"), *out.glob(f"{name}-*")])
            if f.is_file() and not f.name.startswith(".")
            for x in f.read_text().splitlines()
            if x
        ]
        for ref, name in outputs.items()
    }


@pytest.mark.parametrize("replay", [True, False], ids=["replay", "backfill"])
def test_the_beam_program_keeps_the_first_record_of_a_file_with_a_byte_order_mark(
    tmp_path: Path, replay: bool
) -> None:
    # the backfill (--input without --replay) read the file with ReadFromText, which kept the mark: the
    # first record was a dead letter ("invalid JSON") where streamlab parsed it
    p = _pipeline("bom")
    lines = _events(5, {"amount": 1})
    data = tmp_path / "input.jsonl"
    data.write_bytes(BOM + b"\r\n".join(lines) + b"\r\n\r\nnot json")  # CRLF, an empty line, no last newline
    ok, dead = _replayed(data)
    assert len(ok) == 5
    assert sorted(r.split(":")[0] for r in dead["reason"]) == ["empty record", "invalid JSON"]

    files = to_beam(p, tmp_path / "export", runner_source="file")
    out = tmp_path / "out"
    cmd = [sys.executable, str(files.module), "--input", str(data), "--output", str(out)]
    cmd += ["--runner", "DirectRunner", "--direct_num_workers=1"]
    if replay:
        cmd += ["--replay", "--file_window_s", "1e10", "--file_shards", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _written(out, load_module(files.module).OUTPUTS)
    assert sum(r["count"] for r in rows["window"]) == 5
    assert sorted(r["reason"].split(":")[0] for r in rows["parse.dead_letter"]) == [
        "empty record",
        "invalid JSON",
    ]


def test_the_flink_jobs_cut_a_file_as_streamlab_does(flink_python: str, tmp_path: Path) -> None:
    """datastream.py run with its command line on a file that starts with a byte order mark and holds
    a bare CR inside a record, CRLF line ends and an empty line: its rows and dead letters are
    streamlab's (Flink's text line format made the first record and the record holding the CR dead
    letters, and split that record in two)."""
    p = _pipeline("flink_lines")
    lines = _events(4, {"note": "a\rb"})  # an escaped CR inside a text
    lines[2] = lines[2].replace(b'"user_id":', b'"user_id":\r')  # a bare CR between tokens: still JSON
    data = tmp_path / "input.jsonl"
    data.write_bytes(BOM + b"\r\n".join([*lines[:3], b"", b"not\rjson", lines[3]]))
    ok, dead = _replayed(data)
    assert len(ok) == 4
    expected = sorted(dead["raw"])
    assert expected == [b"", b"not\rjson"]

    files = to_flink(p, tmp_path / "export", source="files")
    out = tmp_path / "out"
    cmd = [flink_python, "datastream.py", "--input", str(data), "--output", str(out), "--parallelism", "2"]
    done = subprocess.run(cmd, cwd=files.directory, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _written(out, load_module(files.directory / "datastream.py").OUTPUTS)
    assert sum(r["count"] for r in rows["window"]) == 4
    assert sorted(r["raw"].encode() for r in rows["parse.dead_letter"]) == expected


def test_verify_hands_the_flink_job_records_holding_line_breaks_whole(
    flink_python: str, tmp_path: Path
) -> None:
    # run_flink wrote each record with its LF replaced by a space (and a record ending in CR lost it), so
    # the job's dead letters' raw records were not streamlab's
    p = _pipeline("flink_breaks")
    good = json.dumps(
        {"event_id": "e1", "event_type": "buy", "user_id": "u", "timestamp": "2024-01-01T00:00:01Z"}
    )
    sample = [good.encode(), b"not\njson", b"bad\r", b"x\ry", good.replace(", ", ",\n").encode()]
    report = verify(p, sample, target="flink", workdir=tmp_path, flink_python=flink_python, flink_job="sql")
    assert report.equal, report.diff
    assert sorted(report.exported["parse.dead_letter"]["raw"]) == ["bad\r", "not\njson", "x\ry"]
