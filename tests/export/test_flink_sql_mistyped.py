"""Flink SQL export: ``job.sql`` sends the records streamlab's parse refuses for a field's type to its
dead letters, and keeps running.

``job.sql`` read each typed field as ``CAST(JSON_VALUE(...) AS DOUBLE)`` (``BIGINT``, ``BOOLEAN``). A value
of another JSON type is data, not an error, in streamlab: ``true`` in a number field goes to the dead
letters with the reason. The job failed as a whole on it (``NumberFormatException: For input string:
"true"``), read ``"3"`` as the number 3.0, ``7`` as the text "7", ``1e400`` as Infinity and a text in an
object field as null, where streamlab sends each of those records to the dead letters. The test runs
``job.sql`` as the SQL client's stand-in runs it (``run_sql.py``, its file source and sink) and compares
the rows kept and the dead letters' records with streamlab's run of the same records.

It read a field whose JSON key is no plain name (``unit price``, ``x[0]``, ``user-id``) in JSON path dot
notation, which Flink's ``JSON_VALUE`` reads as NULL: the field was lost in every row. And it read time
texts with Flink's ``CAST``, which takes 2024-02-30 as 2024-02-29, 24:00 as the next day, 2024-1-1 and
years 0001 or 9999, and gives NULL (a dead letter) for an offset, a time without seconds, a lowercase t
or z and a decimal comma, all unlike streamlab's rule. It read no epoch number as a time (seconds, or
milliseconds above 1e11: dead letters where streamlab reads them), and took a text holding a lone
surrogate (``"\\ud800"``) as ``"?"`` where streamlab sends the record to the dead letters.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd

from streamlab import Pipeline
from streamlab.export import to_flink
from streamlab.export.flink import _load_constants
from streamlab.testing import ListSink, ListSource

SCHEMA = {
    "event_id": "string",
    "event_type": "category",
    "timestamp": "timestamp",
    "seen": "timestamp",
    "amount": {"type": "float64", "path": "properties.amount"},
    "n": "int64",
    "ok": "bool",
    "properties": "object",
    "j": "json",
}
T = '"timestamp": "2024-01-01T00:00:0{}Z"'
GOOD = [
    '{"event_id": "g0", "event_type": "a", ' + T.format(1) + ', "seen": "2024-01-01T00:00:00Z", '
    '"properties": {"amount": 1.5}, "n": 7, "ok": true, "j": [1, "x"]}',
    '{"event_id": "g1", "event_type": "b", ' + T.format(2) + ', "properties": {"amount": 5}, "n": -3, '
    '"ok": false, "j": "text", "seen": ""}',
    '{"event_id": "g2", "event_type": null, ' + T.format(3) + ', "properties": {}, "n": null, "j": true}',
    '{"event_id": "g3", ' + T.format(4) + ', "properties": {"amount": -1e-300}, "n": 9223372036854775807}',
]
MISTYPED = [  # each refused by streamlab's parse for the type of one field
    '{"event_id": "b0", ' + T.format(1) + ', "properties": {"amount": true}}',
    '{"event_id": "b1", ' + T.format(2) + ', "properties": {"amount": "3"}}',
    '{"event_id": "b2", ' + T.format(3) + ', "properties": {"amount": 1e400}}',
    '{"event_id": "b3", ' + T.format(4) + ', "properties": {"amount": ' + "9" * 400 + "}}",
    '{"event_id": "b4", ' + T.format(5) + ', "n": 2.5}',
    '{"event_id": "b5", ' + T.format(6) + ', "n": 1e2}',
    '{"event_id": "b6", ' + T.format(7) + ', "n": 9223372036854775808}',
    '{"event_id": "b7", ' + T.format(8) + ', "ok": "yes"}',
    '{"event_id": "b8", ' + T.format(9) + ', "ok": 1}',
    '{"event_id": 5, ' + T.format(1) + "}",
    '{"event_id": "b9", "event_type": true, ' + T.format(2) + "}",
    '{"event_id": "c0", ' + T.format(3) + ', "properties": "text"}',
    '{"event_id": "c1", ' + T.format(4) + ', "properties": [1]}',
    '{"event_id": "c2", ' + T.format(5) + ', "seen": "not-a-time"}',
    '{"event_id": "c3", ' + T.format(6) + ', "seen": {"t": 1}}',
    '{"event_id": "c4", "timestamp": true}',
]


def _lines(directory: Path) -> list[str]:
    files = sorted(f for f in directory.rglob("*") if f.is_file() and not f.name.startswith("."))
    return [x for f in files for x in f.read_text().splitlines() if x.strip()]


def _run_job_sql(
    flink_python: str, p: Pipeline, events: list[str], tmp_path: Path
) -> tuple[Path, dict[str, str]]:
    """Export ``p`` and run its job.sql as the SQL client's stand-in does (run_sql.py, a file of
    ``events``, the file sink): the output directory and each output's sink name."""
    files = to_flink(p, tmp_path / "export", source="files")
    sample = tmp_path / "events.jsonl"
    sample.write_text("".join(x + "\n" for x in events))
    output = tmp_path / "out"
    env = {**os.environ, "INPUT_PATH": str(sample), "OUTPUT_PATH": str(output)}
    done = subprocess.run(
        [flink_python, "run_sql.py", "job.sql"],
        cwd=files.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]  # the old job failed on `true` in a number field
    return output, _load_constants(files.directory / "main.py")["OUTPUTS"]


TIME_FIELDS = {"event_id": "string", "timestamp": "timestamp", "seen": "timestamp"}


def _run_streamlab(
    events: list[str], name: str, fields: dict[str, str] = TIME_FIELDS
) -> tuple[Pipeline, pd.DataFrame, list[str]]:
    """streamlab's run of ``events`` through a parse of ``fields`` and a dedup by ``event_id`` (step ``d``):
    the pipeline, the rows kept and the dead letters' event ids, sorted."""
    p = Pipeline(ListSource([x.encode() for x in events]), name=name)
    kept, dead = ListSink(), ListSink()
    parsed = p.parse(fields)
    parsed.dedup("event_id", ttl="10m", step_id="d").to(kept)
    parsed.dead_letter.to(dead)
    p.run()
    return p, kept.frame(), sorted(json.loads(r.decode())["event_id"] for r in dead.frame()["raw"])


def _job_time(t: datetime) -> str:
    """A time as the job writes it: to the millisecond toward the past, with the zone."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


KEYED = {  # JSON keys that are no plain names: Flink's JSON_VALUE read them as NULL in dot notation
    "event_id": "string",
    "timestamp": "timestamp",
    "unit price": "float64",
    "x[0]": "string",
    "user-id": "string",
    "pay": {"type": "int64", "path": "the order.total (net)"},
}
KEYED_EVENTS = [
    '{"event_id": "k0", "timestamp": "2024-01-01T00:00:01Z", "unit price": 2.5, "x[0]": "a", "user-id": "u",'
    ' "the order": {"total (net)": 7}}',
    '{"event_id": "k1", "timestamp": "2024-01-01T00:00:02Z", "unit price": "2.5"}',
]


TIMES = [  # (text, whether streamlab's rule reads it)
    ("2024-01-01T00:00:05Z", True),
    ("2024-01-01T00:06Z", True),  # no seconds
    ("2024-01-01T01:00:07.5+01:00", True),  # an offset
    ("2024-01-01t00:00:08,25z", True),  # lowercase, a decimal comma
    ("2024-01-02", True),  # a date
    ("2024-01-01T00:00:09.123456789Z", True),  # nanoseconds: the job cuts them to the millisecond
    ("2024-02-30T00:00:00Z", False),  # no such day (Flink's CAST: 2024-02-29)
    ("2024-01-01T24:00:00Z", False),  # no such time (Flink's CAST: the next day)
    ("2024-1-1", False),  # outside the grammar (Flink's CAST: a date)
    ("0001-01-01T00:00:00Z", False),  # outside 64-bit nanoseconds
    ("9999-12-31T23:59:59Z", False),
    ("2024-01-01T00:00:00+24:00", False),  # no such offset
    # the parts' places: an hour alone, an offset after the date, offsets without a colon, a fraction
    # shorter than a millisecond before an offset, 06:30 (whose "63" is no offset minute)
    ("2024-01-01T05+01:00", True),
    ("2024-01-02+05:00", True),
    ("2024-01-02-0530", True),
    ("2024-01-01T23:30:00.5-05", True),
    ("2024-01-01 06:30", True),
    ("2024-01-01T00:00:10.12+0100", True),
    ("2024-01-01T00:00:00+23:60", False),
    ("2024-01-01T00:60", False),
    ("2024-01-01T00:00:60", False),
]


EPOCHS = [  # epoch numbers as JSON text: seconds, milliseconds above 1e11, a fraction as its double
    "1704067205",
    "1704067205123",
    "1704067223.001",  # the double ...223.000999927: streamlab's time is 1 ns short of the millisecond
    "1.7040672e9",
    "-0.3",
    "0",
    "1e2",
    "9223372036",  # the last second of 64-bit nanoseconds
    "9223372036854",  # its last millisecond
    "100000000001",  # milliseconds (above 1e11)
    "1700000525610.5",
    "9223372037",  # beyond: dead letters
    "100000000000",  # 1e11 itself: seconds, beyond
    "9223372036855",
    "1E+400",
    "12345678901234567890",
]
TEXTS = ['"\\ud800"', '"x\\udc00"', '"\\ud83d\\ude00"', '"?"', '"\\u00e9"']  # lone surrogates: dead letters


TIME_EVENTS = [json.dumps({"event_id": f"t{i}", "timestamp": t, "seen": t}) for i, (t, _) in enumerate(TIMES)]
TIME_EVENTS += [f'{{"event_id": "e{i}", "timestamp": {t}, "seen": {t}}}' for i, t in enumerate(EPOCHS)]
TIME_EVENTS += [f'{{"event_id": "s{i}", "timestamp": 1704067205, "name": {t}}}' for i, t in enumerate(TEXTS)]

CASES = {  # each case's records, with event ids of their own: one job reads them all
    "mistyped": GOOD + MISTYPED,
    "keyed": KEYED_EVENTS,
    "times": TIME_EVENTS,
}


def test_job_sql_reads_types_keys_times_and_texts_as_streamlab(flink_python: str, tmp_path: Path) -> None:
    """One job (a PyFlink job is about 15 CPU-seconds) for the rules of a field's reading, each a case of
    its own records, read by one parse of every case's fields and told apart by their event ids.

    mistyped: a value of another JSON type than its field's (MISTYPED) is a dead letter, and the job
    keeps running. keyed: JSON keys that are no plain names (KEYED) are read, where the dot notation read
    NULL. times: time texts (TIMES); epoch numbers (EPOCHS), which job.sql read as no time (a dead letter
    where streamlab reads seconds, or milliseconds above 1e11); texts (TEXTS), one with a lone surrogate
    ("\\ud800", which UTF-8 cannot hold) taken as "?" where streamlab sends the record to the dead
    letters."""
    events = [x for records in CASES.values() for x in records]
    case_of = {json.loads(x)["event_id"]: case for case, records in CASES.items() for x in records}
    assert len(case_of) == len(events)  # no event id in two cases
    p = Pipeline(ListSource([x.encode() for x in events]), name="fields")
    kept, dead = ListSink(), ListSink()
    parsed = p.parse({**SCHEMA, **KEYED, "name": "string"})
    parsed.dedup("event_id", ttl="10m", step_id="d").to(kept)
    parsed.dead_letter.to(dead)
    p.run()
    frame = kept.frame()
    local = {case: frame[[case_of[i] == case for i in frame["event_id"]]] for case in CASES}
    raws = [r.decode() for r in dead.frame()["raw"]]
    refused = {case: sorted(x for x in raws if case_of[json.loads(x)["event_id"]] == case) for case in CASES}
    # streamlab's rules, which the job must follow
    assert sorted(local["mistyped"]["event_id"]) == ["g0", "g1", "g2", "g3"], "mistyped"
    assert refused["mistyped"] == sorted(MISTYPED), "mistyped"
    assert local["keyed"]["event_id"].tolist() == ["k0"], "keyed"  # k1: a text in a number field
    read = {f"t{i}" for i, (_, ok) in enumerate(TIMES) if ok}
    read |= {f"e{i}" for i in range(11)} | {"s2", "s3", "s4"}  # the rules, as TIMES, EPOCHS and TEXTS say
    assert set(local["times"]["event_id"]) == read, "times"
    times = {r.event_id: _job_time(r.timestamp) for r in local["times"].itertuples()}
    assert times["e2"] == "2024-01-01T00:00:23.000Z", "times"

    output, sinks = _run_job_sql(flink_python, p, events, tmp_path)
    job_rows = [json.loads(x) for x in _lines(output / sinks["d"])]
    assert {r["event_id"] for r in job_rows} <= set(case_of), job_rows
    rows = {case: [r for r in job_rows if case_of[r["event_id"]] == case] for case in CASES}
    job_raws = [json.loads(x)["raw"] for x in _lines(output / sinks["parse.dead_letter"])]
    assert {json.loads(x)["event_id"] for x in job_raws} <= set(case_of), job_raws
    dead_rows = {
        case: sorted(x for x in job_raws if case_of[json.loads(x)["event_id"]] == case) for case in CASES
    }

    kept_ids = sorted(r["event_id"] for r in rows["mistyped"])
    assert kept_ids == ["g0", "g1", "g2", "g3"], "mistyped"
    by_id = {r["event_id"]: r for r in rows["mistyped"]}
    assert by_id["g1"]["amount"] == 5.0 and by_id["g3"]["n"] == 9223372036854775807, "mistyped"
    assert by_id["g0"]["j"] == [1, "x"] and by_id["g2"]["j"] is True, "mistyped"
    assert dead_rows["mistyped"] == refused["mistyped"], "mistyped"

    assert len(rows["keyed"]) == 1, ("keyed", rows["keyed"])
    row = rows["keyed"][0]
    assert (row["unit price"], row["x[0]"], row["user-id"], row["pay"]) == (2.5, "a", "u", 7), "keyed"
    assert [json.loads(x)["event_id"] for x in dead_rows["keyed"]] == ["k1"], "keyed"

    assert {r["event_id"]: r["timestamp"] for r in rows["times"]} == times, "times"
    timed = [r for r in rows["times"] if not r["event_id"].startswith("s")]
    assert all(r["seen"] == r["timestamp"] for r in timed), "times"
    names = {r["event_id"]: r["name"] for r in rows["times"] if r["event_id"].startswith("s")}
    assert names == {"s2": "\U0001f600", "s3": "?", "s4": "é"}, "times"
    refused_ids = sorted(json.loads(x)["event_id"] for x in refused["times"])
    assert sorted(json.loads(x)["event_id"] for x in dead_rows["times"]) == refused_ids, "times"
