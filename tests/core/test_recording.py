"""Record a source and replay it: same records, same order, original arrival gaps."""

from __future__ import annotations

import pandas as pd

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource
from streamlab.recording import record, replay_recording


def test_record_then_replay_by_arrival_reproduces_records_and_gaps(tmp_path):
    events = pd.DataFrame(
        {
            "value": [b'{"n": %d}' % i for i in range(6)],
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta([0, 1, 2, 10, 11, 30], unit="s"),
        }
    )
    clock = ManualClock("2030-01-01T00:00:00Z")
    info = record(ReplaySource(events, speed=1.0, batch_size=2), tmp_path / "rec", clock=clock)
    assert info.events == 6
    assert (info.last_arrival - info.first_arrival).total_seconds() == 30

    replay_clock = ManualClock("2031-01-01T00:00:00Z")
    start = replay_clock.now_ns()
    sink = ListSink()
    p = Pipeline(replay_recording(tmp_path / "rec", speed=2.0))
    p.stream.to(sink)
    p.run(clock=replay_clock)
    assert sink.frame()["value"].tolist() == events["value"].tolist()
    assert abs((replay_clock.now_ns() - start) / 1e9 - 15.0) < 0.01


def test_record_bounded_by_max_events_and_appends(tmp_path):
    events = pd.DataFrame({"value": [b"a", b"b", b"c", b"d"]})
    record(ReplaySource(events, batch_size=1), tmp_path / "r", max_events=2, clock=ManualClock(0))
    record(ReplaySource(events.iloc[2:], batch_size=1), tmp_path / "r", clock=ManualClock(0))
    frame = pd.read_parquet(tmp_path / "r").sort_values("_arrival_seq")
    assert frame["value"].tolist() == [b"a", b"b", b"c", b"d"]
    assert frame["_arrival_seq"].tolist() == [0, 1, 2, 3]


def test_run_duration_bounds_a_live_run():
    events = pd.DataFrame(
        {"timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(range(100), unit="s")}
    )
    clock = ManualClock("2030-01-01T00:00:00Z")
    result = Pipeline(ReplaySource(events, speed=1.0)).run(clock=clock, duration="10s")
    assert result.status == "stopped"
    assert 10 <= result.metrics["events_in"] <= 12
