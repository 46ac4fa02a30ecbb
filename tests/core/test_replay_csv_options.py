"""ReplaySource's ``sep``, ``encoding`` and ``decimal``: CSV files as Excel and other tools write them.

A file with semicolons between its fields and decimal commas (Excel's export on a German or French
Windows, in cp1252), or a tab-separated one, was refused with a message telling the user to read it with
pandas themselves, and then it could not have its malformed records sent to ``dead_letter``, be resumed
from a checkpoint or be named in a spec. The oracle: the same rows written the usual way (commas, UTF-8,
decimal points) replay as the same frame, and the same records go to dead letter with the file's bytes.
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab.cli import main
from streamlab.errors import ParameterError
from streamlab.spec import pipeline_from_yaml, pipeline_to_yaml

NOTES = ["plain", "José", "a;b|c\td", 'say "hi"', "two\nlines", "", "Ærø 3,5 £"]
AMOUNTS = [1.5, 2.0, -3.25, 1234.125, 0.001]
# (sep, encoding, decimal) as users' tools write them
SHAPES = [
    (";", "cp1252", ","),  # Excel on a German or French Windows
    (";", "utf-8", ","),
    ("\t", "utf-8", "."),  # a tab-separated export
    ("|", "latin-1", "."),
    (",", "cp1252", "."),  # commas, in Excel's encoding
]
UNDEFINED = {"cp1252": b"\x81", "utf-8": b"\xff"}  # a byte the encoding does not define


def _row_values(i: int, note: str, amount: float) -> list[str]:
    return [f"2024-01-01T00:00:{i % 60:02d}Z", f"u{i % 3}", repr(amount), note]


def _csv_bytes(rows: list[list[str]], sep: str, encoding: str, decimal: str) -> list[bytes]:
    """Each row as one CSV record in the shape (quoted where needed), the header first."""
    out = []
    for n, row in enumerate([["timestamp", "user_id", "amount", "note"], *rows]):
        buf = io.StringIO()
        fields = [f.replace(".", decimal) if i == 2 and n else f for i, f in enumerate(row)]
        csv.writer(buf, delimiter=sep, lineterminator="\n").writerow(fields)
        out.append(buf.getvalue().encode(encoding))
    return out


def _bad(kind: str, sep: str, encoding: str) -> bytes:
    if kind == "fields":
        return sep.join(["2024-01-01T00:00:09Z", "u9", "9", "x", "extra"]).encode() + b"\n"
    if kind == "nul":
        return sep.join(["2024-01-01T00:00:09Z", "u9", "9", "x\x00y"]).encode() + b"\n"
    return sep.join(["2024-01-01T00:00:09Z", "u9", "9", "caf"]).encode() + UNDEFINED[encoding] + b"\n"


def replay(path: Path, batch_size: int | None, **kw: Any) -> pd.DataFrame:
    ok = ListSink()
    p = Pipeline(ReplaySource(path, batch_size=batch_size, **kw))
    p.to(ok)
    assert p.run(clock=ManualClock(0)).status == "finished"
    return ok.frame()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.sampled_from(SHAPES),
    rows=st.lists(st.tuples(st.sampled_from(NOTES), st.sampled_from(AMOUNTS)), min_size=1, max_size=8),
    bad=st.lists(st.tuples(st.integers(0, 8), st.sampled_from(["fields", "nul", "bytes"])), max_size=3),
    batch_size=st.sampled_from([1, 2, 3, None]),
)
def test_a_file_in_any_shape_replays_as_the_same_rows_written_with_commas(
    tmp_path: Path,
    shape: tuple[str, str, str],
    rows: list[tuple[str, float]],
    bad: list[tuple[int, str]],
    batch_size: int | None,
) -> None:
    sep, encoding, decimal = shape
    if encoding not in UNDEFINED:
        bad = [(at, kind) for at, kind in bad if kind != "bytes"]  # latin-1 defines every byte
    values = [_row_values(i, note, amount) for i, (note, amount) in enumerate(rows)]
    usual = tmp_path / "usual.csv"
    usual.write_bytes(b"".join(_csv_bytes(values, ",", "utf-8", ".")))
    lines = _csv_bytes(values, sep, encoding, decimal)
    bad_lines = []
    for at, kind in sorted(bad, reverse=True):
        bad_lines.append(_bad(kind, sep, encoding))
        lines.insert(1 + min(at, len(lines) - 1), bad_lines[-1])
    path = tmp_path / "shaped.csv"
    path.write_bytes(b"".join(lines))
    dead = ListSink()
    got = replay(path, batch_size, sep=sep, encoding=encoding, decimal=decimal, dead_letter=dead)
    pd.testing.assert_frame_equal(got, replay(usual, batch_size))
    assert sorted(dead.frame()["raw"].tolist() if bad else []) == sorted(b.rstrip(b"\n") for b in bad_lines)
    if any(kind == "bytes" for _, kind in bad):
        assert f"invalid {'UTF-8' if encoding == 'utf-8' else encoding} (byte 0x" in " ".join(
            dead.frame()["reason"]
        )


EXCEL_ROWS = [_row_values(i, n, a) for i, (n, a) in enumerate(zip(NOTES, AMOUNTS * 2))]
EXCEL = b"".join(_csv_bytes(EXCEL_ROWS, ";", "cp1252", ","))
OPTIONS: dict[str, Any] = {"sep": ";", "encoding": "cp1252", "decimal": ","}


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_a_run_stopped_at_any_batch_and_resumed_writes_every_row_and_dead_letter_once(
    tmp_path: Path, batch_size: int
) -> None:
    path = tmp_path / "excel.csv"
    head, first, rest = EXCEL.split(b"\n", 2)
    path.write_bytes(
        head + b"\n" + _bad("bytes", ";", "cp1252") + first + b"\n" + _bad("fields", ";", "cp1252") + rest
    )

    def run(**kw: Any) -> tuple[Any, pd.DataFrame, list[int]]:
        ok, dead = ListSink(), ListSink()
        p = Pipeline(ReplaySource(path, dead_letter=dead, **OPTIONS))
        p.to(ok)
        result = p.run(clock=ManualClock(0), batch_size=batch_size, **kw)
        return result, ok.frame(), dead.frame()["line"].tolist() if len(dead.frame()) else []

    _, want_rows, want_dead = run()
    assert want_rows["note"].tolist()[:2] == ["plain", "José"] and want_rows["amount"].tolist()[0] == 1.5
    assert want_dead == [2, 4]
    for stop in range(batch_size, len(want_rows), batch_size):
        first_run, rows_1, dead_1 = run(max_events=stop)
        _, rows_2, dead_2 = run(resume=pickle.loads(pickle.dumps(first_run.checkpoint)))
        pd.testing.assert_frame_equal(pd.concat([rows_1, rows_2], ignore_index=True), want_rows)
        assert dead_1 + dead_2 == want_dead


def test_a_paced_replay_reads_the_file_in_its_shape(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(EXCEL)
    clock = ManualClock("2030-01-01T00:00:00Z")
    reader = ReplaySource(path, speed=1.0, **OPTIONS).open(clock=clock)
    assert reader.poll(100)["user_id"].tolist() == ["u0"]
    clock.advance("1s")
    assert reader.poll(100)["note"].tolist() == ["José"]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_spec_names_the_options_and_streamlab_run_reads_the_file_with_them(
    tmp_path: Path, sep: str
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(EXCEL.replace(b";", sep.encode()))
    p = Pipeline(ReplaySource(path, sep=sep, encoding="cp1252", decimal=","), name="excel")
    p.stream.window(TumblingWindow("1m"), key="user_id").agg(agg.sum("amount"))
    text = pipeline_to_yaml(p)
    again = pipeline_from_yaml(text)
    assert again.steps["source"].source.spec() == p.steps["source"].source.spec()  # type: ignore[attr-defined]
    want = p.run(clock=ManualClock(0))["window"]
    pd.testing.assert_frame_equal(again.run(clock=ManualClock(0))["window"], want)
    sums: dict[str, float] = {}
    for row in EXCEL_ROWS:
        sums[row[1]] = sums.get(row[1], 0.0) + float(row[2])
    assert dict(zip(want["user_id"], want["sum_amount"].round(6))) == {
        k: round(v, 6) for k, v in sums.items()
    }
    # the CLI runs the spec as written
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        text.replace(
            "sinks: []",
            f"sinks: [{{step_id: out, kind: jsonl, input: window, path: {tmp_path / 'out.jsonl'}}}]",
        )
    )
    assert main(["run", str(spec)]) == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == len(want)


def test_earlier_specs_stay_as_they_were() -> None:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "e.csv"
    path.write_bytes(b"timestamp,x\n2024-01-01T00:00:00Z,1\n")
    assert not {"sep", "encoding", "decimal"} & set(ReplaySource(path).spec())


@pytest.mark.parametrize(
    ("kw", "problem", "fix"),
    [
        ({"sep": ";;"}, "must be one character", "sep=';'"),
        ({"sep": ""}, "must be one character", "sep=';'"),
        ({"sep": '"'}, "other than a quote", "sep=';'"),
        ({"sep": 59}, "got 59", "sep=';'"),
        ({"decimal": ","}, "also the separator", "sep=';', decimal=','"),
        ({"sep": ";", "decimal": ";"}, "also the separator", "sep=';', decimal=','"),
        ({"decimal": "5"}, "is a digit", "decimal=','"),
        ({"encoding": "no-such"}, "unknown encoding 'no-such'", "encoding='cp1252'"),
        ({"encoding": "utf-16"}, "UTF-16 and UTF-32 do not", "re-save a UTF-16 file as UTF-8"),
        ({"encoding": None}, "no text encoding", "encoding='cp1252'"),
    ],
)
def test_a_wrong_option_is_refused_at_construction_with_the_fix(
    tmp_path: Path, kw: dict[str, Any], problem: str, fix: str
) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"timestamp,x\n2024-01-01T00:00:00Z,1\n")
    with pytest.raises(ParameterError, match=r"ReplaySource\((sep|encoding|decimal)=\.\.\.\)") as caught:
        ReplaySource(path, **kw)
    assert problem in str(caught.value) and fix in str(caught.value)


@pytest.mark.parametrize("what", ["frame", "events.jsonl", "events.parquet"])
def test_the_options_are_refused_where_no_csv_is_read(tmp_path: Path, what: str) -> None:
    frame = pd.DataFrame({"timestamp": ["2024-01-01T00:00:00Z"], "x": [1]})
    data: Any = frame
    if what != "frame":
        data = tmp_path / what
        frame.to_parquet(data) if what.endswith(".parquet") else frame.to_json(
            data, orient="records", lines=True
        )
    with pytest.raises(ParameterError, match=r"sep=';' is for reading a CSV file.*Fix: drop it"):
        ReplaySource(data, sep=";")


_GUIDE = {
    "to_beam": "payloads_beam.py",
    "to_spark": "README.md",
    "to_flink": "README.md",
    "to_lambda": "handler.py",
}


@pytest.mark.parametrize("target", ["to_beam", "to_spark", "to_flink", "to_lambda"])
def test_a_replay_read_with_the_options_exports_as_one_read_with_commas(tmp_path: Path, target: str) -> None:
    """The exported jobs never read the CSV file (they read the parsed column's texts), so its options do
    not change what they read: such a replay was refused while the same replay with commas exported.
    Both export now, with the same guidance on what the job reads."""
    texts = {}
    for sep in (";", ","):
        path = tmp_path / f"payloads{sep == ';'}.csv"
        record = '"{""user"": ""a"", ""timestamp"": ""2024-01-01T00:00:00Z"", ""n"": 1}"'
        path.write_text(f"ts{sep}payload\n2024-01-01T00:00:00Z{sep}{record}\n")
        p = Pipeline(ReplaySource(path, time="ts", sep=sep), name="payloads")
        p.parse({"user": "string", "timestamp": "timestamp", "n": "int64"}, value_column="payload").window(
            TumblingWindow("1m"), key="user"
        ).agg(agg.count())
        assert p.run(clock=ManualClock(0))["window"]["count"].tolist() == [1]  # streamlab reads it
        files = getattr(p, target)(str(tmp_path / f"out{sep == ';'}"))
        text = files.read(_GUIDE[target]).replace(str(path), "PATH")
        texts[sep] = " ".join(text.replace("#", "").split())
    assert texts[";"] == texts[","]  # one rule: the same export, the same guidance
    assert "parses its column 'payload'" in texts[";"] and "write_job_input(pipeline" in texts[";"]
