"""Flink SQL export: a window's ``min`` and ``max`` are doubles, as streamlab's are, and every double is
written as a JSON float.

streamlab's numeric aggregators compute in float64 (docs/semantics.md, "Integers"). The SQL job read
``MIN(n)``/``MAX(n)`` of a BIGINT field as a BIGINT: ``2**53 + 1`` kept every digit where streamlab has
``2**53``, and ``-5`` was written where streamlab writes ``-5.0``. Of a BOOLEAN field the job did not
start: its float64 output column's check (``ABS``) refused a BOOLEAN. And Flink's ``JSON_STRING`` writes a
DOUBLE as its decimal's text, so a sum or a min of 12345678.0 was written ``12345678``, which a JSON
reader takes as an int. Both jobs (``main.py`` by its documented command line, ``job.sql`` as
``run_sql.py`` runs it) run on the same events and their lines are compared with streamlab's values and
types. A float64 key or distinct count took -0.0 and 0.0 as two (Flink compares a DOUBLE's bits).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pandas as pd

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_flink
from streamlab.export.flink import _load_constants
from streamlab.testing import ListSink, ListSource

EVENTS = [
    {"timestamp": "2024-01-01T00:00:01Z", "k": 1, "b": True, "n": 2**53 + 1},
    {"timestamp": "2024-01-01T00:00:02Z", "k": 1, "b": False, "n": 2},
    {"timestamp": "2024-01-01T00:00:03Z", "k": 1, "b": None},
    {"timestamp": "2024-01-01T00:01:03Z", "k": 2, "b": True, "n": 12345678},
    {"timestamp": "2024-01-01T00:01:04Z", "k": 2, "n": -5},
]
AGGS = ["min_n", "max_n", "sum_n", "min_b", "max_b", "sum_b", "mean_b"]


def _pipeline(lines: list[bytes]) -> tuple[Pipeline, ListSink]:
    p = Pipeline(ListSource(lines), name="aggtypes")
    out = ListSink()
    p.parse({"timestamp": "timestamp", "k": "int64", "b": "bool", "n": "int64"}).window(
        TumblingWindow("1m"), key="k", step_id="w"
    ).agg(
        agg.min("n"), agg.max("n"), agg.sum("n"), agg.min("b"), agg.max("b"), agg.sum("b"), agg.mean("b")
    ).to(out)
    return p, out


def _rows(directory: Path) -> list[dict[str, object]]:
    files = sorted(f for f in directory.rglob("*") if f.is_file() and not f.name.startswith("."))
    lines = [x for f in files for x in f.read_text().splitlines() if x.strip()]
    return sorted((json.loads(x) for x in lines), key=lambda r: str(r["k"]))


def test_sql_jobs_min_and_max_are_doubles_written_as_floats(flink_python: str, tmp_path: Path) -> None:
    lines = [json.dumps(e).encode() for e in EVENTS]
    p, out = _pipeline(lines)
    p.run()
    expected = [{a: r[a] for a in AGGS} for r in out.frame().sort_values("k").to_dict("records")]
    assert expected[0]["max_n"] == 2.0**53 and expected[1]["min_n"] == -5.0  # streamlab: float64
    assert expected[1]["max_n"] == 12345678.0 and expected[0]["min_b"] == 0.0

    sample = tmp_path / "events.jsonl"
    sample.write_bytes(b"".join(x + b"\n" for x in lines))
    files = to_flink(p, tmp_path / "export", source="files")
    sink = _load_constants(files.directory / "main.py")["OUTPUTS"]["w"]
    runs = {  # main.py by the README's command; job.sql as run_sql.py (the SQL client's stand-in) runs it
        "main.py": (
            [flink_python, "main.py", "--input", str(sample), "--output", str(tmp_path / "main")],
            {},
        ),
        "job.sql": (
            [flink_python, "run_sql.py", "job.sql"],
            {"INPUT_PATH": str(sample), "OUTPUT_PATH": str(tmp_path / "sql")},
        ),
    }
    for job, (cmd, env) in runs.items():
        done = subprocess.run(
            cmd, cwd=files.directory, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{job}: {done.stderr[-3000:]}"  # job.sql: ABS(<BOOLEAN>) refused
        rows = _rows(tmp_path / ("main" if job == "main.py" else "sql") / sink)
        got = [{a: r[a] for a in AGGS} for r in rows]
        assert got == expected, job  # 2**53 + 1 was kept, where streamlab's double is 2**53
        # every value a float, as streamlab's JSON sinks write them (12345678.0, not 12345678)
        assert {type(v) for r in got for v in r.values()} == {float}, (job, rows)


ZEROS = [  # one key and one distinct value in streamlab (-0.0 == 0.0 == 0); Flink compares a DOUBLE's bits
    {"timestamp": "2024-01-01T00:00:01Z", "k": 0.0, "x": -0.0},
    {"timestamp": "2024-01-01T00:00:02Z", "k": -0.0, "x": 0.0},
    {"timestamp": "2024-01-01T00:00:03Z", "k": 0, "x": 0},
    {"timestamp": "2024-01-01T00:00:04Z", "k": 1.5, "x": -0.0},
]
PATTERN_EVENTS = [  # (key, event type): a view then a buy of one key is a match
    (0.0, "view"),
    (-0.0, "buy"),  # the same key as 0.0 in streamlab: a match
    (None, "view"),
    ("absent", "buy"),  # no key: streamlab's dead letters, never a match
    (1.5, "view"),
    (1.5, "buy"),
]
DEDUP_IDS: list[object] = [0.0, -0.0, 0, "absent", None]  # two ids in streamlab: 0.0 and None
MINUTES = {"zeros": 0, "pattern": 10, "dedup": 20}  # each case's rows in a minute of its own


def _at(case: str, second: int) -> str:
    return f"2024-01-01T00:{MINUTES[case]:02d}:{second:02d}Z"


def _zero_lines() -> list[str]:
    """The three cases' records, each case in its minute (MINUTES), times ascending. The records of the
    zeros and pattern cases have ids of their own (100 + i, 200 + i), so that the dedup sees no repeat
    but the dedup case's."""
    lines = [json.dumps({**e, "v": i, "id": 100 + i}) for i, e in enumerate(ZEROS)]
    for i, (k, kind) in enumerate(PATTERN_EVENTS):
        row: dict[str, object] = {"timestamp": _at("pattern", i + 1), "event_type": kind}
        row |= {"event_id": f"e{i}", "id": 200 + i, **({} if k == "absent" else {"k": k})}
        lines.append(json.dumps(row))
    lines += [
        json.dumps({"timestamp": _at("dedup", i + 1), "v": i, **({} if x == "absent" else {"id": x})})
        for i, x in enumerate(DEDUP_IDS)
    ]
    return lines


def _of_case(frame: pd.DataFrame, column: str, case: str) -> pd.DataFrame:
    """The rows of ``frame`` whose time ``column`` falls in ``case``'s minute."""
    start = pd.Timestamp("2024-01-01T00:00:00Z") + pd.Timedelta(minutes=MINUTES[case])
    times = pd.to_datetime(frame[column], utc=True)
    return frame[(times >= start) & (times < start + pd.Timedelta(minutes=1))]


def test_sql_job_keys_counts_joins_matches_and_dedups_minus_zero_as_zero(
    flink_python: str, tmp_path: Path
) -> None:
    """One job for three cases of a float64 key, each its own records in a minute of its own:

    zeros: windows keyed by a float64 with a distinct count, and an interval join on it (Flink had the
    keys 0.0 and -0.0, and counted -0.0 and 0.0 as two distinct values); pattern: a pattern keyed by it
    matches -0.0 with 0.0 and matches no missing key (Flink matched a NULL partition and not 0.0, -0.0);
    dedup: a dedup takes -0.0 as a repeat of 0.0 (Flink kept both)."""
    from streamlab import SessionWindow
    from streamlab.export.verify import verify

    p = Pipeline(ListSource([b"{}"]), name="zeros")
    parsed = p.parse(
        {
            "timestamp": "timestamp",
            "k": "float64",
            "x": "float64",
            "v": "int64",
            "event_type": "string",
            "event_id": "string",
            "id": "float64",
        }
    )
    for window, sid in ((TumblingWindow("1m"), "tumbling"), (SessionWindow("1m"), "session")):
        parsed.window(window, key="k", step_id=sid).agg(agg.count(), agg.count_distinct("x"))
    right = parsed.select(["timestamp", "k", "v"], step_id="right")
    parsed.join_interval(right, on="k", lower="-1m", upper="1m", step_id="j")
    parsed.pattern(
        "k", [("v", "event_type == 'view'"), ("b", "event_type == 'buy'")], within="1m", step_id="pat"
    )
    parsed.dedup("id", ttl="10m", step_id="d").to(ListSink())
    report = verify(
        p, _zero_lines(), target="flink", flink_job="sql", flink_python=flink_python, workdir=tmp_path
    )
    sides = {"streamlab": report.local, "flink": report.exported}

    def counts(ref: str, column: str, case: str) -> dict[str, int]:
        return {side: len(_of_case(frames[ref], column, case)) for side, frames in sides.items()}

    for sid in ("tumbling", "session"):
        rows = _of_case(report.local[sid], "window_start", "zeros").sort_values("k").to_dict("records")
        got = [(r["k"], r["count"], r["count_distinct_x"]) for r in rows]
        assert got == [(0.0, 3, 1), (1.5, 1, 1)], ("zeros", sid)
        # Flink had the keys 0.0 and -0.0
        assert counts(sid, "window_start", "zeros") == {"streamlab": 2, "flink": 2}, ("zeros", sid)
    # 3 x 3 zeros, 1.5 with itself; Flink: 6
    assert counts("j", "timestamp", "zeros") == {"streamlab": 10, "flink": 10}, "zeros"

    assert sorted(map(list, report.local["pat"]["event_ids"])) == [["e0", "e1"], ["e4", "e5"]], "pattern"
    assert len(_of_case(report.local["pat.dead_letter"], "timestamp", "pattern")) == 2, "pattern"  # no key
    # Flink matched e2, e3 (a NULL partition) and not e0, e1 (-0.0 and 0.0 were two partitions)
    assert sorted(map(list, report.exported["pat"]["event_ids"])) == [["e0", "e1"], ["e4", "e5"]], "pattern"

    assert sorted(_of_case(report.local["d"], "timestamp", "dedup")["v"]) == [0, 3], "dedup"
    # Flink kept v=1 (id -0.0) too
    assert sorted(_of_case(report.exported["d"], "timestamp", "dedup")["v"]) == [0, 3], "dedup"
    # verify compares no dedup output of the SQL job: it says so, where it reported `equal` as if it had
    assert "processing time" in report.not_compared["d"], "dedup"
    assert counts("d", "timestamp", "dedup") == {"streamlab": 2, "flink": 2}, "dedup"

    # every output equal (the zeros case's windows, distinct counts and join), but the pattern's dead
    # letters, which the SQL job does not write
    assert set(report.diff["output"]) == {"pat.dead_letter"}, report.diff


def test_sql_job_takes_intervals_of_100_days_and_more(flink_python: str, tmp_path: Path) -> None:
    """A year's window and a delay of years were DAY TO SECOND literals of Flink's default two-digit day
    precision: the job failed at validation ('Interval field value 365 exceeds precision of DAY(2)')."""
    from streamlab.export.verify import verify

    p = Pipeline(ListSource([b"{}"]), name="longintervals")
    parsed = p.parse({"timestamp": "timestamp", "k": "string"})
    parsed.window(TumblingWindow(timedelta(days=365, seconds=1)), key="k", delay="3000d", step_id="year").agg(
        agg.count()
    )
    lines = [
        json.dumps({"timestamp": t, "k": "a"})
        for t in ("2024-01-01T00:00:00Z", "2020-06-01T00:00:00Z", "2024-12-31T00:00:00Z")
    ]
    report = verify(p, lines, target="flink", flink_job="sql", flink_python=flink_python, workdir=tmp_path)
    assert report.counts["year"] == {"streamlab": 3, "flink": 3} and report.equal, report.diff


def test_sql_job_refuses_windows_of_999_days_and_more(tmp_path: Path) -> None:
    from streamlab.export.flink import sql_refusal

    p = Pipeline(ListSource([b"{}"]), name="tooLong")
    p.parse({"timestamp": "timestamp"}).window(TumblingWindow("1000d"), step_id="w").agg(agg.count())
    refusal = sql_refusal(p)
    assert refusal is not None and refusal.step_id == "w" and "999 days" in str(refusal)
