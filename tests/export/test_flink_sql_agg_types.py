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


def test_sql_job_keys_counts_and_joins_minus_zero_as_zero(flink_python: str, tmp_path: Path) -> None:
    """Windows keyed by a float64 with a distinct count, and an interval join on it, in one job."""
    from streamlab import SessionWindow
    from streamlab.export.verify import verify

    p = Pipeline(ListSource([b"{}"]), name="zeros")
    parsed = p.parse({"timestamp": "timestamp", "k": "float64", "x": "float64", "v": "int64"})
    for window, sid in ((TumblingWindow("1m"), "tumbling"), (SessionWindow("1m"), "session")):
        parsed.window(window, key="k", step_id=sid).agg(agg.count(), agg.count_distinct("x"))
    right = parsed.select(["timestamp", "k", "v"], step_id="right")
    parsed.join_interval(right, on="k", lower="-1m", upper="1m", step_id="j")
    lines = [json.dumps({**e, "v": i}) for i, e in enumerate(ZEROS)]
    report = verify(p, lines, target="flink", flink_job="sql", flink_python=flink_python, workdir=tmp_path)
    for sid in ("tumbling", "session"):
        rows = report.local[sid].sort_values("k").to_dict("records")
        assert [(r["k"], r["count"], r["count_distinct_x"]) for r in rows] == [(0.0, 3, 1), (1.5, 1, 1)]
        assert report.counts[sid] == {"streamlab": 2, "flink": 2}  # Flink had the keys 0.0 and -0.0
    assert report.counts["j"] == {"streamlab": 10, "flink": 10}  # 3 x 3 zeros, 1.5 with itself; Flink: 6
    assert report.equal, report.diff  # and counted -0.0 and 0.0 as two distinct values


def test_sql_pattern_keys_minus_zero_as_zero_and_matches_no_missing_key(
    flink_python: str, tmp_path: Path
) -> None:
    from streamlab.export.verify import verify

    t = "2024-01-01T00:00:0{}Z"
    events = [  # (key, event type): a view then a buy of one key is a match
        (0.0, "view"),
        (-0.0, "buy"),  # the same key as 0.0 in streamlab: a match
        (None, "view"),
        ("absent", "buy"),  # no key: streamlab's dead letters, never a match
        (1.5, "view"),
        (1.5, "buy"),
    ]
    lines = []
    for i, (k, kind) in enumerate(events):
        row: dict[str, object] = {"timestamp": t.format(i + 1), "event_type": kind, "event_id": f"e{i}"}
        if k != "absent":
            row["k"] = k
        lines.append(json.dumps(row))
    p = Pipeline(ListSource([b"{}"]), name="zeropattern")
    p.parse({"timestamp": "timestamp", "k": "float64", "event_type": "string", "event_id": "string"}).pattern(
        "k", [("v", "event_type == 'view'"), ("b", "event_type == 'buy'")], within="1m", step_id="pat"
    )
    report = verify(p, lines, target="flink", flink_job="sql", flink_python=flink_python, workdir=tmp_path)
    assert sorted(map(list, report.local["pat"]["event_ids"])) == [["e0", "e1"], ["e4", "e5"]]
    assert len(report.local["pat.dead_letter"]) == 2  # the rows without a key
    # Flink matched e2, e3 (a NULL partition) and not e0, e1 (-0.0 and 0.0 were two partitions)
    assert sorted(map(list, report.exported["pat"]["event_ids"])) == [["e0", "e1"], ["e4", "e5"]]
    assert set(report.diff["output"]) == {"pat.dead_letter"}  # the SQL job writes no pattern dead letters


def test_sql_dedup_takes_minus_zero_as_a_repeat_of_zero(flink_python: str, tmp_path: Path) -> None:
    from streamlab.export.verify import verify

    t = "2024-01-01T00:00:0{}Z"
    ids: list[object] = [0.0, -0.0, 0, "absent", None]  # two ids in streamlab: 0.0 and None
    lines = [
        json.dumps({"timestamp": t.format(i + 1), "v": i, **({} if x == "absent" else {"id": x})})
        for i, x in enumerate(ids)
    ]
    p = Pipeline(ListSource([b"{}"]), name="zerodedup")
    p.parse({"timestamp": "timestamp", "id": "float64", "v": "int64"}).dedup("id", ttl="10m", step_id="d").to(
        ListSink()
    )
    report = verify(p, lines, target="flink", flink_job="sql", flink_python=flink_python, workdir=tmp_path)
    assert sorted(report.local["d"]["v"]) == [0, 3]
    assert sorted(report.exported["d"]["v"]) == [0, 3]  # Flink kept v=1 (id -0.0) too
    # verify compares no dedup output of the SQL job: it says so, where it reported `equal` as if it had
    assert "processing time" in report.not_compared["d"] and report.counts["d"] == {
        "streamlab": 2,
        "flink": 2,
    }


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
