"""Flink SQL job: a window after a dedup runs on the input table's watermark, which counts the repeats.

Flink SQL declares a watermark on a table, not on the deduplicated view, so a repeat later than every row
the dedup kept before it moves the job's watermark ahead of streamlab's (which, after the dedup, counts
only the kept rows) and a kept row on time in streamlab is dropped as late by Flink. ``comparable`` used
to claim the job's watermark "never runs ahead of streamlab's" and compared such windows, so verify
reported a difference for a correct-as-documented job; now it finds the repeats that ran ahead
(``watermark_ahead_after_dedup``, streamlab's own parse and dedup rules on the sample) and leaves the
steps after that dedup out, saying why.
"""

from __future__ import annotations

from pathlib import Path

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.flink import comparable, to_flink, watermark_ahead_after_dedup
from streamlab.export.verify import run_local
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "k": "string"}


def line(event_id: str, seconds: int, k: str = "a") -> bytes:
    minutes, sec = divmod(seconds, 60)
    return (
        f'{{"event_id": "{event_id}", "timestamp": "2024-01-01T00:{minutes:02d}:{sec:02d}Z", "k": "{k}"}}'
    ).encode()


# e1 again 49 s after its first copy: Flink's watermark jumps to 0:50, streamlab's (after the dedup)
# stays at 0:05, so e3 and e4 (0:20, 0:21) are on time in streamlab and late in Flink
AHEAD = [line("e1", 1), line("e2", 5), line("e1", 50), line("e3", 20), line("e4", 21), line("e5", 70)]
# the same events with the repeat at its first copy's time: both watermarks are the same
NOT_AHEAD = [line("e1", 1), line("e2", 5), line("e1", 1), line("e3", 20), line("e4", 21), line("e5", 70)]


def pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="dedup_wm")
    events = p.parse(SCHEMA)
    events.dedup("event_id", ttl="10m").window(TumblingWindow("10s"), step_id="window").agg(agg.count())
    events.window(TumblingWindow("10s"), step_id="all").agg(agg.count())  # on every row: compared
    return p


def test_repeats_ahead_of_the_kept_rows_are_found_with_streamlabs_rules() -> None:
    p = pipeline()
    assert watermark_ahead_after_dedup(p, AHEAD) == {"dedup": (1, ["window"])}
    assert watermark_ahead_after_dedup(p, NOT_AHEAD) == {}
    assert watermark_ahead_after_dedup(p, AHEAD[:3]) == {}  # no kept row after the repeat
    # through a select that renames the columns, and a second dedup after the first
    q = Pipeline(ListSource([b"{}"]), name="renamed")
    renamed = q.parse(SCHEMA).select("k", id="event_id", timestamp="timestamp")
    first = renamed.dedup("id", ttl="10m", step_id="first")
    first.dedup("k", ttl="10m", step_id="second").window(TumblingWindow("10s"), step_id="w").agg(agg.count())
    # the first (by id) ran ahead (e1 at 0:50, then e3 kept); the second (by k, all "a") kept only
    # e1 at 0:01, so no kept row follows its repeats
    assert watermark_ahead_after_dedup(q, AHEAD) == {"first": (1, ["w"])}
    assert watermark_ahead_after_dedup(q, [line("e1", 1), line("e2", 50), line("e3", 20, k="c")]) == {
        "second": (1, ["w"])
    }


def test_comparable_leaves_out_the_steps_after_such_a_dedup_and_says_why() -> None:
    p = pipeline()
    local = run_local(p, AHEAD)
    engine = {ref: frame.copy() for ref, frame in local.items()}
    engine["window"] = engine["window"].iloc[[0, 2]]  # what Flink gives: the 0:20 window dropped
    kept, theirs, notes = comparable(p, local, engine, AHEAD)
    assert len(kept["window"]) == len(theirs["window"]) == 0
    assert kept["all"].equals(local["all"])  # the window on every row is compared
    assert notes[0].startswith("window: not compared: 'dedup' dropped 1 repeat(s) later than every row")
    # the docstring's claim holds where no repeat ran ahead: everything compared
    local = run_local(p, NOT_AHEAD)
    kept, theirs, notes = comparable(p, local, dict(local), NOT_AHEAD)
    assert notes == [] and kept["window"].equals(local["window"])
    # without the sample, a dedup that dropped repeats is assumed to have run it ahead
    _, _, notes = comparable(p, local, dict(local))
    assert notes and notes[0].startswith(
        "window: not compared: 'dedup' dropped 1 repeat(s) (times not traced"
    )


def test_the_sql_job_on_flink_drops_what_streamlab_keeps_and_verify_says_so(
    flink_python: str, tmp_path: Path
) -> None:
    """main.py (the SQL queries) on Flink's mini-cluster: before, verify reported the 0:20 window as a
    difference (streamlab 3 windows, Flink 2); now that window's step is named as not compared."""
    p = pipeline()
    files = to_flink(p, tmp_path / "export")
    assert "on a watermark that counts the" in files.read("README.md") + files.read("main.py")
    report = verify(p, AHEAD, "flink", workdir=tmp_path, flink_python=flink_python, flink_job="sql")
    assert report.equal, report.diff
    assert (
        "window" in report.not_compared
        and "later than every row it had kept" in report.not_compared["window"]
    )
    assert "all" not in report.not_compared and report.counts["all"]["flink"] > 0  # on every row: compared
