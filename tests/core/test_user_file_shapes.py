"""Users' own files replayed as they come: every row accounted for, every value as the file holds it.

A replayed CSV, JSON-lines or Parquet file is loaded by pandas, which holds a column of integers with
a missing value as float64: two ids beyond 2**53 that differ in their last digit became one key, their
windows merged. A ``.json`` file holding one JSON array (what most tools export) was read as one row
of dicts, and a JSON-lines file with a number beyond 64 bits (valid JSON) was refused whole.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg, profile

START = 1_704_067_200  # 2024-01-01T00:00:00Z


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` written in the format ``path`` names, as a user's tool would write them."""
    name = path.name
    if name.endswith(".csv"):
        cols = list(rows[0])
        lines = [",".join(cols)] + [",".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif name.endswith(".json.gz"):
        path.write_bytes(gzip.compress(json.dumps(rows, indent=2).encode()))
    elif name.endswith(".json"):
        path.write_text(json.dumps(rows, indent=2))
    else:
        cols = list(rows[0])
        types = {"id": pa.int64(), "ts": pa.int64(), "v": pa.float64()}
        pq.write_table(
            pa.table({c: pa.array([r[c] for r in rows], types.get(c)) for c in cols}),
            path,
            row_group_size=2,
        )


def _counts(path: Path, batch_size: int | None) -> dict[Any, int]:
    p = Pipeline(ReplaySource(path, time="ts", batch_size=batch_size))
    p.stream.window(TumblingWindow("1h"), key="id", time="ts").agg(agg.count())
    result = p.run()
    assert result["window.dead_letter"].empty and result["window.late"].empty
    out = result["window"]
    return {(None if pd.isna(k) else k): int(n) for k, n in zip(out["id"], out["count"])}


IDS = [2**53 + 1, 2**53, None, 2**63 - 1, 2**63 - 2, -(2**62) - 1, -(2**62), 2**53 + 1]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".json"])
@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_ids_beside_a_missing_value_stay_apart_in_windows(
    tmp_path: Path, suffix: str, batch_size: int | None
) -> None:
    path = tmp_path / f"events{suffix}"
    _write(path, [{"ts": START + i, "id": k, "v": 1.0} for i, k in enumerate(IDS)])
    expected: dict[Any, int] = {}
    for k in IDS:
        expected[k] = expected.get(k, 0) + 1
    assert _counts(path, batch_size) == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(st.none() | st.integers(-(2**63) + 1, 2**63 - 1), min_size=1, max_size=12),
    suffix=st.sampled_from([".csv", ".jsonl", ".parquet", ".json"]),
)
def test_a_replayed_file_keeps_every_integer_it_holds(
    tmp_path_factory: pytest.TempPathFactory, ids: list[int | None], suffix: str
) -> None:
    path = tmp_path_factory.mktemp("ints") / f"e{suffix}"
    _write(path, [{"ts": START + i, "id": k} for i, k in enumerate(ids)])
    got = ReplaySource(path, time="ts").frame["id"]
    assert [None if pd.isna(v) else int(v) for v in got] == ids
    assert len(ReplaySource(path, time="ts").frame) == len(ids)  # every row, and no other


def test_csv_columns_of_decimals_or_text_beside_missing_values_are_not_taken_for_integers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.csv"
    path.write_text("ts,a,b,c\n1704067200,1.0,x,\n1704067201,,1,\n1704067202,2,2,\n")
    frame = ReplaySource(path, time="ts").frame
    assert str(frame["a"].dtype) == "float64" and frame["a"].tolist()[::2] == [1.0, 2.0]
    assert frame["b"].tolist() == ["x", "1", "2"]
    assert frame["c"].isna().all() and str(frame["c"].dtype) == "float64"  # no value: as pandas reads it


@pytest.mark.parametrize("name", ["e.json", "e.json.gz"])
def test_a_json_file_holding_one_array_replays_its_objects_as_rows(tmp_path: Path, name: str) -> None:
    rows = [
        {"ts": "2024-01-01T00:00:00Z", "k": "a", "v": 1, "props": {"x": [1, 2]}},
        {"ts": "2024-01-01T00:00:30Z", "k": "a", "v": 2.5},
        {"ts": "2024-01-01T00:01:30Z", "k": "b", "v": None, "extra": True},
    ]
    path = tmp_path / name
    _write(path, rows)
    source = ReplaySource(path, time="ts")
    assert list(source.frame.columns) == ["ts", "k", "v", "props", "extra"]
    assert source.frame["props"].tolist()[0] == {"x": [1, 2]}
    for batch_size in (None, 1, 2):
        p = Pipeline(ReplaySource(path, time="ts", batch_size=batch_size))
        p.stream.window(TumblingWindow("1m"), key="k", time="ts").agg(agg.count(), agg.sum("v"))
        out = p.run()["window"]
        assert out[["k", "count", "sum_v"]].values.tolist() == [["a", 2, 3.5], ["b", 1, 0.0]]


def test_a_json_array_is_refused_for_a_raw_replay_and_profiled_whole(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    _write(path, [{"ts": START + i, "id": f"u{i}"} for i in range(5)])
    with pytest.raises(ValueError, match="holds one JSON array"):
        ReplaySource(path, raw=True)
    prof = profile(str(path))
    assert prof.malformed_rate == 0.0 and prof.time_field == "ts"
    assert prof.pipeline().run()["window"]["count"].sum() == 5


def test_a_json_array_with_an_element_that_is_no_object_names_it(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('[{"ts": 1704067200}, [1, 2]]')
    with pytest.raises(ValueError, match=r"element 1 of the JSON array .* is list \[1, 2\], not an object"):
        ReplaySource(path, time="ts")


@pytest.mark.parametrize("name", ["e.json", "e.json.gz"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_json_file_holding_one_pretty_printed_object_replays_it_as_one_row(
    tmp_path: Path, name: str, bom: bytes
) -> None:
    """It was refused (line 1, "{", is no JSON) with the advice to replay it raw, where every line would
    have been a dead letter; its objects are its rows, as a JSON array's are."""
    row = {"ts": "2024-01-01T00:00:00Z", "id": 2**64, "props": {"x": [1, 2]}}
    data = bom + json.dumps(row, indent=2).encode() + b"\n"
    path = tmp_path / name  # (json.dumps writes 2**64 as it is: valid JSON beyond 64 bits)
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    frame = ReplaySource(path, time="ts").frame
    assert frame["id"].tolist() == [2**64] and frame["props"].tolist() == [{"x": [1, 2]}]
    assert frame["ts"].tolist() == [pd.Timestamp("2024-01-01", tz="UTC")]
    with pytest.raises(
        ValueError, match="holds a JSON object over several lines. Replay it without raw=True"
    ):
        ReplaySource(path, raw=True)
    prof = profile(str(path))  # read whole, not line by line
    assert prof.malformed_rate == 0.0 and prof.time_field == "ts"
    # several objects, each over one line or several, one after another: each is a row
    more = data + b'{"ts": "2024-01-01T00:00:05Z", "id": 1}\n{\n "id": 2}'
    path.write_bytes(gzip.compress(more) if name.endswith(".gz") else more)
    assert ReplaySource(path, time="ts").frame["id"].tolist() == [2**64, 1, 2]
    p = Pipeline(ReplaySource(path, time="ts"))
    p.stream.window(TumblingWindow("1m"), time="ts").agg(agg.count())
    result = p.run()
    assert result["window"]["count"].tolist() == [2] and len(result["window.dead_letter"]) == 1  # no time


def test_a_broken_pretty_printed_json_object_says_to_fix_the_file_not_to_replay_it_raw(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.json"
    path.write_text('{\n  "ts": 1704067200,\n')
    with pytest.raises(ValueError, match="holds a JSON object over several lines that cannot be read") as e:
        ReplaySource(path, time="ts")
    assert "raw=True" not in str(e.value) and "fix the file" in str(e.value)
    path.write_text('{"ts": 1704067200,\n{"ts": 1704067201}\n')  # JSON lines, the first one broken
    with pytest.raises(ValueError, match="line 1 of .* replay it raw"):
        ReplaySource(path, time="ts")
    path.write_text('{\n  "ts": 1704067200\n}\n[1]')
    with pytest.raises(ValueError, match=r"\[1\] at character 23 is list, not an object"):
        ReplaySource(path, time="ts")


def test_a_json_lines_file_with_a_number_beyond_64_bits_is_read_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    big = 99999999999999999999999
    path.write_text(
        f'{{"ts": "2024-01-01T00:00:00Z", "k": "a", "v": {big}}}\n\n{{"ts": "2024-01-01T00:00:01Z", "k": "a", "v": 2}}\n'
    )
    frame = ReplaySource(path, time="ts").frame
    assert frame["v"].tolist() == [big, 2] and frame["ts"].dt.second.tolist() == [0, 1]
    p = Pipeline(ReplaySource(path, time="ts", batch_size=1))
    p.stream.window(TumblingWindow("1m"), key="k", time="ts").agg(agg.count(), agg.sum("v"))
    assert p.run()["window"][["count", "sum_v"]].values.tolist() == [[2, float(big) + 2.0]]


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_list_of_events_keeps_ids_beside_a_missing_value_apart(missing: Any) -> None:
    from streamlab.testing import ListSource

    events = [
        {"ts": START + i, "id": missing if k is None else k} if i % 3 else {"ts": START + i, "id": k}
        for i, k in enumerate(IDS)
    ]
    events.append({"ts": START + 99})  # no id at all: a missing value too
    assert [None if pd.isna(v) else v for v in ListSource(events).frame["id"]] == [*IDS, None]
    p = Pipeline(ListSource(events, batch_size=2))
    p.stream.window(TumblingWindow("1h"), key="id", time="ts").agg(agg.count())
    out = p.run()["window"]
    got = {(None if pd.isna(k) else k): int(n) for k, n in zip(out["id"], out["count"])}
    assert got == {2**53 + 1: 2, 2**53: 1, None: 2, 2**63 - 1: 1, 2**63 - 2: 1, -(2**62) - 1: 1, -(2**62): 1}


def test_a_dataframe_indexed_by_its_event_time_replays_with_that_time() -> None:
    from streamlab.testing import ListSource

    times = pd.date_range("2024-01-01", periods=5, freq="20s", tz="UTC")
    frame = pd.DataFrame({"timestamp": times, "k": list("aabab"), "v": range(5)}).set_index("timestamp")
    expected = (
        frame.reset_index()
        .groupby(["k", frame.index.floor("1min")])
        .size()
        .rename_axis(["k", "window_start"])
        .reset_index(name="count")
        .sort_values(["window_start", "k"])
        .values.tolist()
    )
    for source in (ReplaySource(frame, batch_size=2), ListSource(frame, batch_size=1)):
        assert source.frame.columns.tolist() == ["timestamp", "k", "v"]
        p = Pipeline(source)
        p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count())
        out = p.run()["window"].sort_values(["window_start", "k"])
        assert out[["k", "window_start", "count"]].values.tolist() == expected
    assert profile(frame).time_field == "timestamp"
    filtered = frame.reset_index()[lambda f: f["v"] > 1]  # an unnamed index (row numbers) is no column
    assert ReplaySource(filtered).frame.columns.tolist() == ["timestamp", "k", "v"]


def test_a_parquet_files_nested_integers_keep_their_values(tmp_path: Path) -> None:
    from streamlab import JsonLinesSink

    path = tmp_path / "e.parquet"
    props = [{"n": 1, "id": {"z": 2**60 + 1}}, {"n": None, "id": None}, None]
    tags = [[1, 2], [3, None], None]
    pq.write_table(
        pa.table(
            {"ts": pa.array([START, START + 1, START + 2]), "props": pa.array(props), "tags": pa.array(tags)}
        ),
        path,
    )
    frame = ReplaySource(path, time="ts").frame
    assert frame["props"].tolist() == props and frame["tags"].tolist() == tags
    p = Pipeline(ReplaySource(path, time="ts", batch_size=1))
    p.stream.to(JsonLinesSink(str(tmp_path / "out.jsonl")))
    p.stream.window(TumblingWindow("1m"), time="ts").agg(agg.first("props"), agg.last("tags"))
    out = p.run()["window"]
    assert out[["first_props", "last_tags"]].values.tolist() == [[props[0], None]]
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["props"] for r in written] == props and [r["tags"] for r in written] == tags


def _line(i: int) -> str:
    return json.dumps({"timestamp": f"2024-01-01T00:00:{i:02d}Z", "v": i})


@pytest.mark.parametrize("batch_size", [None, 1, 2])
def test_a_line_being_written_when_a_run_ended_is_read_whole_by_the_next(
    tmp_path: Path, batch_size: int | None
) -> None:
    from streamlab.sinks import ListSink

    path, checkpoints = tmp_path / "e.jsonl", tmp_path / "checkpoints"
    path.write_text("".join(_line(i) + "\n" for i in range(3)) + _line(3)[:10])  # line 4 half written
    got, dead = [], []
    for grow in ("", _line(3)[10:] + "\n" + _line(4) + "\n", _line(5), ""):
        with open(path, "a") as f:
            f.write(grow)
        p = Pipeline(ReplaySource(path, raw=True, batch_size=batch_size))
        ok = ListSink()
        p.stream.parse({"timestamp": "timestamp", "v": "int64"}).to(ok)
        result = p.run(checkpoint_dir=str(checkpoints))
        got += ok.frame()["v"].tolist() if len(ok.frame()) else []
        dead += result["parse.dead_letter"]["raw"].tolist()
    assert got == [0, 1, 2, 3, 4, 5]  # each once: line 6 ends without a break but the file did not grow
    assert dead == [_line(3)[:10].encode()]  # what the first run read of line 4, with its reason


@pytest.mark.parametrize("batch_size", [None, 1, 2])
@pytest.mark.parametrize("cut", [24, 22, 21, 10])  # all but its line break, in the key, after the time, in it
def test_a_csv_row_being_written_when_a_run_ended_is_read_whole_by_the_next(
    tmp_path: Path, batch_size: int | None, cut: int
) -> None:
    from streamlab import JsonLinesSink
    from streamlab.sinks import ListSink

    def row(i: int) -> str:
        return f"2024-01-01T00:00:0{i}Z,a,{i}\n"

    path, checkpoints = tmp_path / "e.csv", tmp_path / "checkpoints"
    path.write_text("timestamp,k,v\n" + row(0) + row(1) + row(2)[:cut])  # row 2 half written
    got: list[int] = []
    for grow in ("", row(2)[cut:] + row(3), ""):
        with open(path, "a") as f:
            f.write(grow)
        dead = JsonLinesSink(str(tmp_path / "dead.jsonl"))
        p = Pipeline(ReplaySource(path, batch_size=batch_size, dead_letter=dead))
        ok = ListSink()
        p.stream.to(ok)
        p.run(checkpoint_dir=str(checkpoints))
        got += ok.frame()["v"].tolist() if len(ok.frame()) else []
    assert got == [0, 1, 2, 3]  # each row once, whole
    dead_file = tmp_path / "dead.jsonl"
    dead_rows = (
        [json.loads(line) for line in dead_file.read_text().splitlines()] if dead_file.exists() else []
    )
    # a row lacking only its line break is whole: read as it is, once
    assert [(r["line"], "cut short" in r["reason"]) for r in dead_rows] == ([] if cut == 24 else [(4, True)])
    if cut == 24:
        return
    path.write_text("timestamp,k,v\n" + row(0) + row(1)[:cut])  # without a dead_letter sink: named
    with pytest.raises(ValueError, match="line 3 .* cut short, or still being written"):
        ReplaySource(path)


def test_a_directory_of_parquet_parts_replays_as_one_table_in_order(tmp_path: Path) -> None:
    from streamlab.sinks import ParquetSink
    from streamlab.testing import ListSource

    ids = [2**53 + 1, None, 2**53, 7]
    events = [{"ts": START + i, "k": "ab"[i % 2], "id": ids[i % 4]} for i in range(23)]
    parts = tmp_path / "parts"
    p = Pipeline(ListSource(events, batch_size=3))
    p.stream.to(ParquetSink(str(parts)))
    p.run(commit_every=0)
    (parts / "_SUCCESS").write_text("")  # what Spark leaves, and a part cut short by a crash
    (parts / "part-999999.tmp").write_bytes(b"PAR1")
    assert len(list(parts.glob("*.parquet"))) > 2
    frame = ReplaySource(parts, time="ts").frame
    assert frame["ts"].tolist() == [e["ts"] for e in events]
    assert [None if pd.isna(v) else v for v in frame["id"]] == [e["id"] for e in events]
    q = Pipeline(ReplaySource(parts, time="ts", batch_size=5))
    q.stream.window(TumblingWindow("1h"), key="k", time="ts").agg(agg.count())
    assert q.run()["window"][["k", "count"]].values.tolist() == [["a", 12], ["b", 11]]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is a directory without .parquet files"):
        ReplaySource(tmp_path / "empty")


def test_parquet_parts_whose_column_changed_type_replay_together_every_row_kept(tmp_path: Path) -> None:
    """ParquetSink types each part by its rows: ``x`` was int64 in one part, text in the next, and the
    directory could not be read (pyarrow: "Failed to parse string: 'a' as a scalar of type int64"); ``y``,
    first written by a later part, was dropped (the dataset took the first part's columns)."""
    from streamlab.sinks import ParquetSink
    from streamlab.testing import ListSource

    xs: list[Any] = [1, 2, "a", None, 2.5, None, None, None, 2**60 + 1, 3, 7, 8]
    events = [{"ts": START + i, "k": "ab"[i % 2], "x": x} for i, x in enumerate(xs)]
    events[-1]["y"] = "late column"
    parts = tmp_path / "parts"
    p = Pipeline(ListSource(events, batch_size=2))  # a part of each type (a part of ints and text is text)
    p.stream.to(ParquetSink(str(parts)))
    p.run(commit_every=0)
    frame = ReplaySource(parts, time="ts").frame
    assert [None if pd.isna(v) else v for v in frame["x"]] == xs
    assert [type(v) for v in frame["x"] if not pd.isna(v)] == [type(x) for x in xs if x is not None]
    assert [None if pd.isna(v) else v for v in frame["y"]] == [None] * (len(xs) - 1) + ["late column"]
    q = Pipeline(ReplaySource(parts, time="ts", batch_size=5))
    q.stream.window(TumblingWindow("1h"), key="k", time="ts").agg(agg.count(), agg.count_distinct("x"))
    out = q.run()["window"]
    assert out[["k", "count"]].values.tolist() == [["a", 6], ["b", 6]]


def test_parquet_parts_keep_their_dtypes_and_a_column_a_later_part_adds(tmp_path: Path) -> None:
    """Parts whose columns agree keep their dtypes (integers with missing values Int64, text as text); a
    column the first part lacks was dropped (pyarrow's dataset took the first part's schema)."""
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(
        pa.table({"id": pa.array([2**53 + 1, None], pa.int64()), "s": ["a", "b"]}), parts / "part-0.parquet"
    )
    later = {"id": pa.array([None, None], pa.null()), "s": ["c", None], "added": [1.5, None]}
    pq.write_table(pa.table(later), parts / "part-1.parquet")
    frame = ReplaySource(parts).frame
    assert list(frame.columns) == ["id", "s", "added"] and frame["added"].tolist()[2] == 1.5
    assert str(frame["id"].dtype) == "Int64" and frame["id"].tolist()[:1] == [2**53 + 1]
    assert frame["s"].dtype == pd.Series(["a"]).dtype and frame["s"].tolist()[:3] == ["a", "b", "c"]


def test_numbers_in_a_json_lines_column_named_like_a_time_stay_numbers(tmp_path: Path) -> None:
    """pandas 2 (Python 3.10) read a column named ``*_time``, ``*_at``, ``modified`` or ``date`` as
    dates: an ``elapsed_time`` of 40000000 (milliseconds) became 1971-04-08 (this fails there only)."""
    path = tmp_path / "e.jsonl"
    rows = [
        {
            "timestamp": "2024-01-01T05:30:00+05:30",
            "elapsed_time": 40000000,
            "created_at": "2024-01-01 10:00",
        },
        {"timestamp": "2024-01-01T00:00:30Z", "elapsed_time": 50000000, "created_at": "x"},
    ]
    _write(path, rows)
    with warnings.catch_warnings():
        # pandas 3.1 deprecated read_json's convert_dates (pandas 4 removes it: a TypeError)
        warnings.simplefilter("error", DeprecationWarning)
        frame = ReplaySource(path).frame
    assert frame["elapsed_time"].tolist() == [40000000, 50000000]
    assert frame["created_at"].tolist() == ["2024-01-01 10:00", "x"]
    assert frame["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01T00:00:00Z"),
        pd.Timestamp("2024-01-01T00:00:30Z"),
    ]
    p = Pipeline(ReplaySource(path, batch_size=1))
    p.stream.window(TumblingWindow("1m")).agg(agg.mean("elapsed_time"))
    assert p.run()["window"]["mean_elapsed_time"].tolist() == [45000000.0]


def test_a_csv_column_with_an_integer_beyond_64_bits_holds_ints_under_any_pandas(tmp_path: Path) -> None:
    """pandas 2 kept such a column as text (agg.sum refused it as a string column); pandas 3 gives
    Python ints beside NaN. Both are Python ints beside None (this fails under pandas 2 only)."""
    path = tmp_path / "e.csv"
    big = 99999999999999999999999
    path.write_text(
        f"timestamp,k,v\n2024-01-01T00:00:00Z,a,{big}\n2024-01-01T00:00:30Z,a,\n2024-01-01T00:00:40Z,a,-3\n"
    )
    assert ReplaySource(path).frame["v"].tolist() == [big, None, -3]
    p = Pipeline(ReplaySource(path, batch_size=1))
    p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count(), agg.sum("v"))
    assert p.run()["window"][["count", "sum_v"]].values.tolist() == [[3, float(big) - 3.0]]


def test_a_json_lines_time_beyond_2262_is_one_dead_letter_under_any_pandas(tmp_path: Path) -> None:
    """pandas 3 keeps 2300-01-01 (the window dead-letters its row); pandas 2 refused the whole file for
    it (this fails under pandas 2 only)."""
    path = tmp_path / "e.jsonl"
    _write(
        path, [{"timestamp": "2024-01-01T00:00:00Z", "v": 1}, {"timestamp": "2300-01-01T00:00:00Z", "v": 2}]
    )
    p = Pipeline(ReplaySource(path, batch_size=1))
    p.stream.window(TumblingWindow("1m")).agg(agg.count())
    result = p.run()
    assert result["window"]["count"].tolist() == [1]
    assert result["window.dead_letter"]["v"].tolist() == [2]
    with pytest.raises(ValueError, match="record 2 .* is 'yesterday'"):  # no time at all: still named
        _write(path, [{"timestamp": "2024-01-01T00:00:00Z"}, {"timestamp": "yesterday"}])
        ReplaySource(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
@pytest.mark.parametrize("word", ["now", "today", "Today ", "yesterday", "tomorrow"])
def test_a_relative_time_in_a_json_file_loaded_whole_is_refused_not_read_as_the_wall_clock(
    tmp_path: Path, suffix: str, word: str
) -> None:
    """pandas' ISO-8601 reader took "now" and "today" for the wall clock: the window opened one in the
    present, its watermark jumped, and every later event of 2024 was late; a replay gave other times.
    parse dead-letters such words and a CSV's window does: a JSON file loaded whole names the record."""
    path = tmp_path / f"e{suffix}"
    _write(
        path,
        [{"timestamp": "2024-01-01T00:00:00Z"}, {"timestamp": word}, {"timestamp": "2024-01-01T00:00:01Z"}],
    )
    with pytest.raises(ValueError, match=f"record 2 .* is {word!r}, not an ISO 8601 time"):
        ReplaySource(path)


def test_a_lone_surrogate_in_a_json_lines_replay_is_kept_not_made_empty(tmp_path: Path) -> None:
    """pandas' JSON reader made the escaped lone surrogate ``"\\ud800"`` (a JavaScript producer cutting
    an emoji in half) an empty string: its rows joined the key ``""``. Python's reader keeps it, as parse
    keeps it in a json field; a DuckDB table, which cannot hold it, gets the row in ``<table>_rejected``
    (DuckDB 1.x failed the run on it)."""
    import duckdb

    from streamlab import DuckDBSink

    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"timestamp": "2024-01-01T00:00:00Z", "k": "\\ud800", "v": 1}\n'
        '{"timestamp": "2024-01-01T00:00:01Z", "k": "", "v": 2}\n'
        '{"timestamp": "2024-01-01T00:00:02Z", "k": "\\ud83d\\ude00", "v": 3}\n'
    )
    assert ReplaySource(path).frame["k"].tolist() == ["\ud800", "", "\U0001f600"]
    db = str(tmp_path / "out.duckdb")
    p = Pipeline(ReplaySource(path, batch_size=2))
    windows = p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count(), agg.sum("v"))
    windows.to(DuckDBSink(db, "w"))
    p.stream.to(DuckDBSink(db, "raw", key=None))
    p.run()
    con = duckdb.connect(db)
    assert sorted(con.execute("SELECT k, count, sum_v FROM w").fetchall()) == [
        ("", 1, 2.0),
        ("\U0001f600", 1, 3.0),
    ]
    assert sorted(con.execute("SELECT k FROM raw").fetchall()) == [("",), ("\U0001f600",)]
    for table in ("w_rejected", "raw_rejected"):
        (reason, row), *others = con.execute(f"SELECT reject_reason, row FROM {table}").fetchall()
        assert not others and "lone surrogate" in reason and json.loads(row)["k"] == "\ud800"


@pytest.mark.parametrize("batch_size", [None, 1])
def test_a_list_of_events_with_a_lone_surrogate_is_taken(batch_size: int | None) -> None:
    """pandas 3 refused the list (its str columns cannot hold ``"\\ud800"``) and ListSource said
    "event 0 is list ..., among events (dicts)": the events were dicts all along."""
    from streamlab.testing import ListSource

    events = [
        {"timestamp": f"2024-01-01T00:00:0{i}Z", "k": k, "v": v}
        for i, (k, v) in enumerate([("\ud800", 1), ("", None), ("\ud800", 3)])
    ]
    frame = ListSource(events).frame
    assert frame["k"].tolist() == ["\ud800", "", "\ud800"] and frame["v"].tolist()[::2] == [1, 3]
    p = Pipeline(ListSource(events, batch_size=batch_size))
    p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count(), agg.sum("v"))
    out = p.run()["window"]
    assert sorted(zip(out["k"], out["count"], out["sum_v"])) == [("", 1, 0.0), ("\ud800", 2, 4.0)]


@pytest.mark.parametrize(
    ("text", "sep", "fix"),
    [
        # Excel's export where the decimal mark is a comma: fields between semicolons
        (
            "timestamp;user;amount\n2024-01-01T00:00:00Z;a;1,5\n2024-01-01T00:00:10Z;b;2,5\n",
            ";",
            "sep=';', decimal=','",
        ),
        ("timestamp;user\n2024-01-01T00:00:00Z;a\n", ";", "sep=';'"),  # read before as one column
        ("timestamp\tuser\tamount\n2024-01-01T00:00:00Z\ta\t1.5\n", "\t", "sep='\\t'"),
        ("timestamp|user\n2024-01-01T00:00:00Z|a\n", "|", "sep='|'"),
    ],
)
def test_a_csv_file_separated_by_another_mark_is_refused_with_the_way_to_read_it(
    tmp_path: Path, text: str, sep: str, fix: str
) -> None:
    """Such a file failed with "line 2 ... 2 fields, where the header has 1", or, without a comma in its
    rows, replayed one column named 'timestamp;user' (the fix said nothing of the separator)."""
    path = tmp_path / "e.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="no comma-separated file") as caught:
        ReplaySource(path)
    assert f"ReplaySource(path, {fix}" in str(caught.value)
    # the way the message gives replays the file (it told to read it with pandas before)
    replay = ReplaySource(path, sep=sep, decimal="," if "decimal" in fix else ".").frame
    assert replay["user"].iloc[0] == "a"
    if "amount" in replay.columns:
        assert replay["amount"].iloc[0] == 1.5


def test_a_comma_separated_file_with_semicolons_in_its_values_replays() -> None:
    """The check reads the header only: semicolons, tabs and bars in values (or quoted names) are data."""
    import tempfile

    path = Path(tempfile.mkdtemp()) / "e.csv"
    path.write_text('timestamp,"a;b",note\n2024-01-01T00:00:00Z,1,x;y|z\ttab\n')
    frame = ReplaySource(path).frame
    assert list(frame.columns) == ["timestamp", "a;b", "note"] and frame["note"].tolist() == ["x;y|z\ttab"]


def test_a_tsv_file_and_a_file_in_another_encoding_are_told_how_to_be_read(tmp_path: Path) -> None:
    tsv = tmp_path / "e.tsv"
    tsv.write_text("timestamp\tuser\n2024-01-01T00:00:00Z\ta\n")
    with pytest.raises(ValueError, match=r"e\.tsv is tab-separated.*ReplaySource\(path, sep='\\t'\)"):
        ReplaySource(tsv)
    assert ReplaySource(tsv, sep="\t").frame["user"].tolist() == ["a"]  # as the message says
    latin = tmp_path / "e.csv"
    latin.write_bytes("timestamp,user\n2024-01-01T00:00:00Z,José\n".encode("cp1252"))
    with pytest.raises(ValueError, match=r"ReplaySource\(path, encoding='cp1252'\)"):
        ReplaySource(latin)
    assert ReplaySource(latin, encoding="cp1252").frame["user"].tolist() == ["José"]
