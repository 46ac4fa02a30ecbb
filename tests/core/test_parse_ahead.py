"""Parse ahead: a source's next batch is parsed in a worker while later steps handle the previous one.

The outputs, their order, the checkpoints and the committed positions must be the same as without it.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from streamlab import ListSink, ListSource, ManualClock, Pipeline, TumblingWindow, agg
from streamlab.io import Sink, SinkWriter
from streamlab.runtime import Executor

SCHEMA = {"event_id": "string", "event_type": "category", "timestamp": "timestamp", "n": "int64"}


def records(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.002:
            out.append(b"{broken")
        else:
            t = 1_704_067_200 + i // 100 - int(rng.integers(0, 30))
            out.append(
                json.dumps(
                    {
                        "event_id": f"e{i}",
                        "event_type": ["a", "b", "c"][i % 3],
                        "timestamp": pd.Timestamp(t, unit="s", tz="UTC").isoformat(),
                        "n": i,
                    }
                ).encode()
            )
    return pd.DataFrame({"value": out, "offset": np.arange(n)})


def build(frame: pd.DataFrame, sink: Any, dead: ListSink, windows: ListSink, late: ListSink) -> Pipeline:
    p = Pipeline(ListSource(frame))
    parsed = p.parse(SCHEMA)
    parsed.to(sink)
    parsed.dead_letter.to(dead)
    counts = parsed.window(TumblingWindow("1m"), key="event_type", delay="10s").agg(agg.count(), agg.sum("n"))
    counts.to(windows)
    counts.late.to(late)
    return p


def run_all(frame: pd.DataFrame, batch_size: int, **kwargs: Any) -> tuple[list[pd.DataFrame], Any]:
    sinks = [ListSink() for _ in range(4)]
    result = build(frame, *sinks).run(clock=ManualClock(0), batch_size=batch_size, **kwargs)
    return [s.frame() for s in sinks], result


def test_the_parse_step_works_ahead_for_large_batches_only():
    frame = records(100)
    # (two pipelines: one pipeline object runs once at a time)
    big, small = (
        Executor(build(frame, *[ListSink() for _ in range(4)]), clock=ManualClock(0), batch_size=10_000),
        Executor(build(frame, *[ListSink() for _ in range(4)]), clock=ManualClock(0), batch_size=100),
    )
    big.open()
    small.open()
    try:
        assert big.ahead_targets == {"source": "parse"}
        assert small.ahead_targets == {}
    finally:
        big.close()
        small.close()


def test_outputs_are_the_same_with_and_without_working_ahead(monkeypatch):
    frame = records(60_000)
    ahead, result = run_all(frame, 8192)
    assert result.metrics["events_in"] == 60_000
    monkeypatch.setattr("streamlab.runtime._ahead._AHEAD_MIN_BATCH", 10**9)
    inline, _ = run_all(frame, 8192)
    for got, want in zip(ahead, inline):
        pd.testing.assert_frame_equal(got, want)
    assert len(ahead[1]) > 0 and len(ahead[3]) > 0  # dead letters and late events were exercised
    assert not [t for t in threading.enumerate() if t.name.endswith("-parse_0")]


class CountingSink(Sink):
    """Records how many rows it holds at each flush, and the source position committed after it."""

    def __init__(self) -> None:
        self.rows = 0
        self.flushed: list[int] = []

    def open(self, clock: Any = None) -> SinkWriter:
        outer = self

        class Writer(SinkWriter):
            def write_batch(self, batch: pd.DataFrame) -> None:
                outer.rows += len(batch)

            def flush(self) -> None:
                outer.flushed.append(outer.rows)

        return Writer()


@pytest.mark.parametrize("max_events", [20_000, 33_333])
def test_a_stop_delivers_what_was_read_ahead_before_committing_and_resume_completes(max_events):
    frame = records(50_000, seed=1)
    first = [CountingSink(), ListSink(), ListSink(), ListSink()]
    result = build(frame, *first).run(clock=ManualClock(0), batch_size=8192, max_events=max_events)
    position = result.checkpoint["sources"]["source"]["position"]
    assert position == max_events == result.metrics["events_in"]
    # everything read was parsed and reached the sinks before the position was committed
    assert first[0].flushed[-1] + len(first[1].frame()) == max_events
    second = [CountingSink(), ListSink(), ListSink(), ListSink()]
    rest = build(frame, *second).run(clock=ManualClock(0), batch_size=8192, resume=result.checkpoint)
    assert rest.metrics["events_in"] == 50_000 - max_events
    assert first[0].rows + second[0].rows + len(first[1].frame()) + len(second[1].frame()) == 50_000


def test_stepping_a_paused_run_delivers_each_batch_it_reads():
    frame = records(30_000, seed=2)
    sink = ListSink()
    p = Pipeline(ListSource(frame), name="ahead-steps")
    p.parse(SCHEMA).to(sink)
    handle = p.start(clock=ManualClock(0), batch_size=10_000, paused=True)
    try:
        handle.step()
        deadline = threading.Event()
        for _ in range(2000):
            if handle.metrics["batches"] == 1 and handle.metrics["steps"]["parse"]["in"] == 10_000:
                break
            deadline.wait(0.005)
        assert handle.metrics["steps"]["parse"]["in"] == 10_000  # read and delivered, not held back
        handle.resume()
        result = handle.wait(timeout=60)
        assert result is not None and result.status == "finished"
    finally:
        handle.stop()
    assert sink.frame()["n"].is_monotonic_increasing


class CommitLoggingSource(ListSource):
    """A list source that records the positions committed to it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__(frame)
        self.committed: list[Any] = []

    def open(self, resume: Any = None, clock: Any = None) -> Any:
        reader = super().open(resume, clock)
        reader.commit = self.committed.append  # type: ignore[method-assign]
        return reader


def test_an_interrupt_inside_a_sink_commits_only_what_was_delivered():
    frame = records(50_000, seed=3)

    class InterruptingSink(CountingSink):
        def open(self, clock: Any = None) -> SinkWriter:
            inner = super().open(clock)
            outer = self

            class Writer(SinkWriter):
                def write_batch(self, batch: pd.DataFrame) -> None:
                    if outer.rows > 7_000 and not getattr(outer, "raised", False):
                        outer.raised = True
                        raise KeyboardInterrupt  # before writing: this batch is not in the sink
                    inner.write_batch(batch)

                def flush(self) -> None:
                    inner.flush()

            return Writer()

    sinks = [InterruptingSink(), ListSink(), ListSink(), ListSink()]
    source = CommitLoggingSource(frame)
    p = Pipeline(source)
    parsed = p.parse(SCHEMA)
    parsed.to(sinks[0])
    parsed.dead_letter.to(sinks[1])
    result = p.run(clock=ManualClock(0), batch_size=8192, commit_every="1h")
    assert result.status == "interrupted"
    # the second batch was cut short in the sink (and the third was read ahead): the position committed
    # is the one before the second batch, so a restart reads both again; nothing is lost
    assert source.committed == [{"position": 8192}]
    good_before = int((frame["value"].iloc[:8192] != b"{broken").sum())
    assert sinks[0].flushed[-1] == good_before
    assert result.checkpoint is None  # no checkpoint holds the steps' state with part of a batch


def test_a_pause_delivers_the_batch_read_ahead():
    frame = records(200_000, seed=4)
    sink = ListSink()
    p = Pipeline(ListSource(frame), name="ahead-pause")
    p.parse(SCHEMA).to(sink)
    handle = p.start(clock=ManualClock(0), batch_size=10_000)
    try:
        handle.pause()
        deadline = threading.Event()
        for _ in range(4000):
            if handle.status == "paused":
                break
            deadline.wait(0.005)
        assert handle.status in ("paused", "finished")
        m = handle.metrics
        assert m["steps"]["parse"]["in"] == m["events_in"]  # nothing read is held back while paused
    finally:
        handle.stop()


def test_events_in_counts_only_what_reached_the_steps() -> None:
    """A batch read ahead is not in ``events_in`` until delivered: at events_in = N the sinks have N."""
    frame = records(20 * 4096)
    rows, dead = ListSink(), ListSink()
    p = Pipeline(ListSource(frame))
    parsed = p.parse(SCHEMA)
    parsed.to(rows)
    parsed.dead_letter.to(dead)
    handle = p.start(clock=ManualClock(0), batch_size=4096)
    samples = 0
    deadline = time.monotonic() + 60  # the run is on its own thread: bound the wait
    try:
        while handle.status in ("created", "running"):
            assert time.monotonic() < deadline, f"still {handle.status} after 60 s: {handle.metrics}"
            seen = handle.metrics["events_in"]
            assert len(rows.frame()) + len(dead.frame()) >= seen
            samples += 1
        result = handle.wait(30)
    finally:
        handle.stop()
    assert samples > 0 and result.metrics["events_in"] == len(frame)
    assert len(rows.frame()) + len(dead.frame()) == len(frame)
