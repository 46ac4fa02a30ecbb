"""ReplaySource of a CSV file with malformed records: the good rows replay, the others go to ``dead_letter``.

One malformed line refused the whole file. The oracle for the good rows is the same file without the
malformed records, replayed as before.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import JsonLinesSink, ListSink, ManualClock, Pipeline, ReplaySource
from streamlab.errors import ParameterError
from streamlab.spec import pipeline_to_yaml

HEADER = b"timestamp,user_id,amount,note\n"
ROWS = [
    b"2024-01-01T00:00:00Z,u1,1.5,plain\n",
    b'2024-01-01T00:00:01Z,u2,2,"a quoted note\nspanning two lines, with a comma"\n',
    b"2024-01-01T00:00:02Z,u3,3.25,\n",
    b'2024-01-01T00:00:03Z,u4,4,"say ""hi"""\n',
    b"2024-01-01T00:00:04Z,u5,5,last\n",
]
BAD = {
    "too many fields": (b"2024-01-01T00:00:09Z,u9,9,x,extra\n", "5 fields, where the header has 4"),
    "bad UTF-8": (b"2024-01-01T00:00:09Z,u9,9,caf\xe9\n", "invalid UTF-8 (byte 0xe9"),
    "NUL byte": (b"2024-01-01T00:00:09Z,u9,9,x\x00y\n", "NUL byte"),
    "NULs only": (b"\x00\x00\x00\x00\n", "NUL byte"),
    "bad UTF-8 in a quoted field spanning lines": (
        b'2024-01-01T00:00:09Z,u9,9,"two\n\xff lines"\n',
        "invalid UTF-8 (byte 0xff",
    ),
}


def replay(path: Path, batch_size: int | None, **kw: object) -> pd.DataFrame:
    ok = ListSink()
    p = Pipeline(ReplaySource(path, batch_size=batch_size, **kw))  # type: ignore[arg-type]
    p.to(ok)
    assert p.run(clock=ManualClock(0)).status == "finished"
    return ok.frame()


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
@pytest.mark.parametrize("at", [0, 2, 5])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_the_good_rows_replay_and_the_malformed_record_goes_to_dead_letter(
    tmp_path: Path, kind: str, at: int, batch_size: int
) -> None:
    line, reason = BAD[kind]
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(HEADER + b"".join(ROWS))
    bad.write_bytes(HEADER + b"".join(ROWS[:at]) + line + b"".join(ROWS[at:]))
    with pytest.raises(ValueError, match=r"line \d+ of .*bad.csv cannot be read.*dead_letter="):
        ReplaySource(bad)  # without a place for the record: refused, naming it and the way out
    dead = ListSink()
    got = replay(bad, batch_size, dead_letter=dead)
    pd.testing.assert_frame_equal(got, replay(good, batch_size))
    assert len(got) == len(ROWS)
    [record] = dead.rows()
    assert record["raw"] == line.rstrip(b"\n") and reason in record["reason"]
    assert record["line"] == 2 + at + (at > 1)  # the header, the rows before it, ROWS[1] spans two lines


def test_a_quoted_field_the_file_never_closes_is_the_dead_letter_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes(HEADER + b"".join(ROWS[:3]) + b'2024-01-01T00:00:09Z,u9,9,"never closed\nmore')
    dead = ListSink()
    got = replay(path, 2, dead_letter=dead)
    assert got["user_id"].tolist() == ["u1", "u2", "u3"]
    [record] = dead.rows()
    assert record["raw"] == b'2024-01-01T00:00:09Z,u9,9,"never closed\nmore'
    assert record["reason"] == "a quoted field is not closed before the end of the file"
    assert record["line"] == 6


@pytest.mark.parametrize(
    "last",
    [
        b'2024-01-01T00:00:09Z,u9,"9"0,"never closed\nmore',  # a field quoted then going on unquoted
        b'2024-01-01T00:00:09Z,u9,"x"y"z,"never closed\n',
        b'2024-01-01T00:00:09Z,u9,9,"ends in a doubled quote""\n',
    ],
)
def test_a_quote_never_closed_after_a_field_that_goes_on_past_its_quotes_is_a_dead_letter(
    tmp_path: Path, last: bytes
) -> None:
    # csv's strict mode, which told the unclosed quote, stops earlier at "9"0 (a quoted field going on
    # unquoted, which pandas and csv read as 90): the record stayed with the good ones, and pandas
    # refused the whole file (EOF inside string)
    path = tmp_path / "cut.csv"
    path.write_bytes(HEADER + b"".join(ROWS[:3]) + last)
    dead = ListSink()
    got = replay(path, 2, dead_letter=dead)
    assert got["user_id"].tolist() == ["u1", "u2", "u3"]
    [record] = dead.rows()
    assert record["raw"] == last.rstrip(b"\n") and record["line"] == 6
    assert record["reason"] == "a quoted field is not closed before the end of the file"


def test_dead_letters_are_written_as_the_replay_passes_them_and_not_again_on_resume(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(HEADER + ROWS[0] + BAD["NUL byte"][0] + ROWS[2] + ROWS[3] + BAD["too many fields"][0])
    dead = ListSink()
    source = ReplaySource(path, dead_letter=dead, speed=1.0)
    clock = ManualClock("2030-01-01T00:00:00Z")
    reader = source.open(clock=clock)
    assert len(reader.poll(10)) == 1 and dead.frame().empty  # row 0 is due; the NUL line comes after it
    clock.advance("2s")
    assert len(reader.poll(10)) == 1 and len(dead.frame()) == 1  # row 2 (t=2s), and the record before it
    clock.advance("1s")
    assert len(reader.poll(10)) == 1 and len(dead.frame()) == 2  # the last row, then the last record
    assert reader.poll(10) is None and reader.done
    reader.close()
    again = ListSink()
    resumed = ReplaySource(path, dead_letter=again).open(resume={"position": 2})
    assert len(resumed.poll(10)) == 1 and again.rows()[0]["reason"].startswith("5 fields")
    assert len(again.frame()) == 1  # the NUL line was before the checkpoint's position
    resumed.close()


def test_dead_letters_reach_a_json_lines_file_with_their_raw_bytes(tmp_path: Path) -> None:
    path, out = tmp_path / "e.csv.gz", tmp_path / "dead.jsonl"
    path.write_bytes(gzip.compress(HEADER + ROWS[0] + BAD["bad UTF-8"][0]))
    got = replay(path, None, dead_letter=JsonLinesSink(out))
    assert got["user_id"].tolist() == ["u1"]
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["line"] == 3 and record["reason"].startswith("invalid UTF-8")
    p = Pipeline(ReplaySource(path, dead_letter=JsonLinesSink(out)))
    p.to(ListSink())
    spec = pipeline_to_yaml(p)
    assert "dead_letter" in spec and pipeline_to_yaml(Pipeline.from_yaml(spec)) == spec


def test_dead_letter_is_refused_where_it_would_never_be_used(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"timestamp": "2024-01-01T00:00:00Z"}\n')
    with pytest.raises(ParameterError, match="raw=True"):
        ReplaySource(path, dead_letter=ListSink())
    with pytest.raises(ParameterError, match="a sink"):
        ReplaySource(tmp_path / "e.csv", dead_letter="bad.jsonl")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.sampled_from(ROWS), min_size=1, max_size=8),
    bad=st.lists(st.tuples(st.integers(0, 8), st.sampled_from(sorted(BAD))), max_size=4),
    batch_size=st.integers(1, 5),
)
def test_any_mix_of_malformed_records_loses_nothing(
    tmp_path: Path, rows: list[bytes], bad: list[tuple[int, str]], batch_size: int
) -> None:
    lines = list(rows)
    for at, kind in sorted(bad, reverse=True):
        lines.insert(min(at, len(lines)), BAD[kind][0])
    good, path = tmp_path / "good.csv", tmp_path / "mixed.csv"
    good.write_bytes(HEADER + b"".join(rows))
    path.write_bytes(HEADER + b"".join(lines))
    dead = ListSink()
    got = replay(path, batch_size, dead_letter=dead)
    pd.testing.assert_frame_equal(got, replay(good, batch_size))
    want = sorted(line.rstrip(b"\n") for line in lines if line not in ROWS)
    assert sorted(dead.frame()["raw"].tolist() if bad else []) == want


def test_dead_letters_reach_a_sink_that_publishes_on_commit(tmp_path: Path) -> None:
    # a DuckDBSink without a key stages rows until its commit(), which only the source's reader can call
    from streamlab import DuckDBSink

    path = tmp_path / "e.csv"
    path.write_bytes(HEADER + ROWS[0] + BAD["too many fields"][0])
    dead = DuckDBSink(str(tmp_path / "dead.duckdb"), "dead", key=None)
    assert replay(path, None, dead_letter=dead)["user_id"].tolist() == ["u1"]
    assert dead.read()["line"].tolist() == [3]


def test_a_nested_dead_letter_of_an_unknown_kind_is_named_at_its_path(tmp_path: Path) -> None:
    from streamlab.errors import SpecError
    from streamlab.spec import pipeline_from_dict

    path = tmp_path / "e.csv"
    path.write_bytes(HEADER + ROWS[0])
    source = {"step_id": "e", "kind": "replay", "path": str(path), "dead_letter": {"kind": "nope"}}
    with pytest.raises(SpecError, match=r"sources\[0\] \(step 'e'\)\.dead_letter: expected a sink's spec"):
        pipeline_from_dict({"streaming": {"sources": [source]}})


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_blank_and_whitespace_lines_are_skipped_as_pandas_skips_them(tmp_path: Path, newline: bytes) -> None:
    # a blank line before the header was taken as a header of no fields, so every row was "malformed"
    # and the file refused; a line of spaces counted as a row, so the records after it were written a
    # row late
    blank = [b"", b"  \t"]
    head = [line + newline for line in blank] + [HEADER.replace(b"\n", newline)]
    rows = [ROWS[0], b"   \n", ROWS[2], ROWS[4]]
    good, path = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(b"".join(head + rows))
    bad_line = BAD["too many fields"][0]
    path.write_bytes(b"".join(head + rows[:2] + [bad_line] + rows[2:]))
    dead = ListSink()
    pd.testing.assert_frame_equal(replay(path, 1, dead_letter=dead), replay(good, 1))
    [record] = dead.rows()
    assert record["raw"] == bad_line.rstrip(b"\n") and record["line"] == 6
    reader = ReplaySource(path, dead_letter=(seen := ListSink()), batch_size=1).open()
    written = []
    while (batch := reader.poll(10)) is not None:
        written.append((batch["user_id"].tolist(), len(seen.frame())))
    reader.close()
    # the record comes after u1 and the blank line: written when u3, the row after it, is delivered
    assert written == [(["u1"], 0), (["u3"], 1), (["u5"], 1)]


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_a_run_stopped_at_any_batch_and_resumed_writes_every_row_and_dead_letter_once(
    tmp_path: Path, batch_size: int
) -> None:
    path = tmp_path / "e.csv"
    bad = [BAD["too many fields"][0], BAD["bad UTF-8"][0], BAD["NUL byte"][0]]
    path.write_bytes(HEADER + bad[0] + b"".join(ROWS[:2]) + bad[1] + b"".join(ROWS[2:]) + bad[2])

    def run(**kw: object) -> tuple[Any, pd.DataFrame, list[int]]:
        ok, dead = ListSink(), ListSink()
        p = Pipeline(ReplaySource(path, dead_letter=dead))
        p.to(ok)
        result = p.run(clock=ManualClock(0), batch_size=batch_size, **kw)
        return result, ok.frame(), dead.frame()["line"].tolist() if len(dead.frame()) else []

    _, want_rows, want_dead = run()
    assert len(want_rows) == len(ROWS) and len(want_dead) == 3
    for stop in range(batch_size, len(ROWS), batch_size):
        first, rows_1, dead_1 = run(max_events=stop)
        _, rows_2, dead_2 = run(resume=pickle.loads(pickle.dumps(first.checkpoint)))
        pd.testing.assert_frame_equal(pd.concat([rows_1, rows_2], ignore_index=True), want_rows)
        assert dead_1 + dead_2 == want_dead


@pytest.mark.parametrize("speed", [None, 1.0])
def test_a_file_without_good_rows_sends_every_record_to_dead_letter_once(
    tmp_path: Path, speed: float | None
) -> None:
    # the reader was done from the start (no rows to replay), so the runtime never polled it and its
    # records, written at a poll, vanished
    path = tmp_path / "e.csv"
    lines = [BAD["too many fields"][0], BAD["NUL byte"][0], BAD["bad UTF-8"][0]]
    path.write_bytes(HEADER + b"".join(lines))

    def run(**kw: object) -> tuple[Any, list[bytes]]:
        ok, dead = ListSink(), ListSink()
        p = Pipeline(ReplaySource(path, dead_letter=dead, speed=speed))
        p.to(ok)
        result = p.run(clock=ManualClock(0), **kw)
        assert result.status == "finished" and ok.frame().empty
        return result, dead.frame()["raw"].tolist() if len(dead.frame()) else []

    first, written = run()
    assert written == [line.rstrip(b"\n") for line in lines]
    _, again = run(resume=pickle.loads(pickle.dumps(first.checkpoint)))
    assert again == []  # a resume from the finished run's checkpoint writes none twice


PIECES = [
    b"a",
    b"1",
    b"2.5",
    b",",
    b'"',
    b'""',
    b'"x"y',
    b',"x"y',
    b',"',
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
    b"NA",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_any_bytes_after_a_header_replay_or_go_to_dead_letter_and_never_refuse_the_file(
    pieces: list[bytes],
) -> None:
    from streamlab._csv_records import split_csv

    data = b"h1,h2,h3\n" + b"".join(pieces)
    got = split_csv(data)  # a good header: whatever follows, the file is read
    assert got.bad["reason"].astype(bool).all() and len(got.before) == len(got.bad)
    assert all(raw in data for raw in got.bad["raw"])
    if not len(got.bad):  # nothing set aside: exactly what pandas reads of the whole file
        # (pandas' float64 for integers beside missing values is kept exact as Int64: the same numbers)
        ints = {c: "float64" for c, t in got.frame.dtypes.items() if str(t) == "Int64"}
        pd.testing.assert_frame_equal(got.frame.astype(ints), pd.read_csv(io.BytesIO(data)))


@pytest.mark.parametrize(
    "content", [b"", b"\n\n", b"\xef\xbb\xbf", b" \r\n\t\n"], ids=["empty", "blank", "bom", "space"]
)
@pytest.mark.parametrize("speed", [None, 1.0])
def test_a_file_without_a_header_yet_replays_no_rows_and_a_resume_reads_what_is_written_later(
    tmp_path: Path, content: bytes, speed: float | None
) -> None:
    # pandas refuses such a file ("No columns to parse from file"), so the source refused it at
    # construction, where an empty JSON-lines file replays no rows: a writer may not have written yet
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    ok, dead = ListSink(), ListSink()
    p = Pipeline(ReplaySource(path, dead_letter=dead, speed=speed))
    p.to(ok)
    first = p.run(clock=ManualClock(0))
    assert first.status == "finished" and ok.frame().empty and dead.frame().empty
    path.write_bytes(HEADER + ROWS[0] + ROWS[2])
    again = ListSink()
    p2 = Pipeline(ReplaySource(path, dead_letter=ListSink(), speed=speed))
    p2.to(again)
    p2.run(clock=ManualClock(0), resume=pickle.loads(pickle.dumps(first.checkpoint)))
    assert again.frame()["user_id"].tolist() == ["u1", "u3"]


def test_the_dead_letter_sink_of_a_clean_file_is_written_empty(tmp_path: Path) -> None:
    # it was never opened, so reading it after the run warned "its pipeline has not run"
    path = tmp_path / "e.csv"
    path.write_bytes(HEADER + ROWS[0])
    ok, dead = ListSink(), ListSink()
    p = Pipeline(ReplaySource(path, dead_letter=dead))
    p.to(ok)
    p.run(clock=ManualClock(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dead.frame().empty and len(ok.frame()) == 1


@pytest.mark.parametrize("raw", [False, True])
def test_an_empty_json_lines_file_replays_paced_with_no_rows(tmp_path: Path, raw: bool) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"")
    p = Pipeline(ReplaySource(path, speed=1.0, raw=raw))
    p.to(ListSink())
    assert p.run(clock=ManualClock(0)).metrics["events_in"] == 0
