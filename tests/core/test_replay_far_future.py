"""A paced replay is not held by one row dated far beyond the others (a broken clock): the row is
released with the next row that is not beyond the last row's time. Before, release followed the running
maximum of event times, so one event of 2200 among events of 2024 held every later row until the replay
clock reached 2200 (with a real clock: for ever)."""

from __future__ import annotations

import json

import pandas as pd

from streamlab import Pipeline, ReplaySource
from streamlab.clock import ManualClock
from streamlab.testing import ListSink

TIMES = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:10Z", "2200-01-01T00:00:00Z", "2024-01-01T00:00:20Z",
         "2024-01-01T00:00:15Z", "2024-01-01T00:00:30Z"]  # fmt: skip


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"x": range(len(TIMES)), "timestamp": pd.to_datetime(TIMES, utc=True)})


def test_a_far_future_row_is_released_with_the_next_row_not_after_it():
    clock = ManualClock("2030-01-01T00:00:00Z")
    reader = ReplaySource(_frame(), speed=1.0).open(clock=clock)
    got = []
    for step in ("0s", "10s", "10s", "10s"):
        clock.advance(step)
        batch = reader.poll(100)
        got.append([] if batch is None else batch["x"].tolist())
    # at 0s the first row; at 10s the second; at 20s the 2200 row, its 20s and (late) 15s neighbours
    assert got == [[0], [1], [2, 3, 4], [5]]
    assert reader.done


def test_a_paced_run_takes_the_span_of_the_ordinary_rows(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"x": i, "timestamp": t}) + "\n" for i, t in enumerate(TIMES)))
    for raw in (False, True):
        clock = ManualClock("2030-01-01T00:00:00Z")
        start = clock.now_ns()
        sink = ListSink()
        p = Pipeline(ReplaySource(path, speed=1.0, raw=raw))
        p.to(sink)
        p.run(clock=clock)
        assert len(sink.frame()) == len(TIMES)
        assert (clock.now_ns() - start) / 1e9 <= 30.5, raw  # was 176 years of waiting


def test_ordinary_disorder_keeps_its_pacing():
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-01T00:00:10Z",
                                                       "2024-01-01T00:00:05Z", "2024-01-01T00:00:20Z"], utc=True)})  # fmt: skip
    release = ReplaySource(frame, speed=1.0).release_times()
    assert ((release - release[0]) // 10**9).tolist() == [0, 10, 10, 20]


def test_a_late_last_row_leaves_the_pacing_of_the_rows_before_it():
    # the rule first read "beyond the last row's time": a file whose last row is late lost its pacing
    # (every row after that time was released with the last one); only the newest row before a late
    # tail comes early now
    frame = pd.DataFrame(
        {"timestamp": pd.to_datetime([f"2024-01-01T00:00:{s:02d}Z" for s in (0, 10, 20, 30, 5)])}
    )
    release = ReplaySource(frame, speed=1.0).release_times()
    assert ((release - release[0]) // 10**9).tolist() == [0, 10, 20, 20, 20]


def test_a_cluster_of_far_future_rows_is_released_with_the_next_ordinary_row():
    times = ["2024-01-01T00:00:00Z", "2200-01-01T00:00:00Z", "2200-01-01T00:00:00Z", "2024-01-01T00:00:10Z",
             "2024-01-01T00:00:20Z"]  # fmt: skip
    release = ReplaySource(pd.DataFrame({"timestamp": pd.to_datetime(times)}), speed=1.0).release_times()
    assert ((release - release[0]) // 10**9).tolist() == [0, 10, 10, 10, 20]
