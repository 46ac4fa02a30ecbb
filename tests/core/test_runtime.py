"""Runtime behaviour: restore equals an uninterrupted run, background handles, pacing, commit order."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlab import (
    DuckDBSink,
    ListSink,
    ListSource,
    ManualClock,
    Pipeline,
    ReplaySource,
    SessionWindow,
    SlidingWindow,
    Source,
    SourceReader,
    TumblingWindow,
    agg,
)
from streamlab.io import Sink, SinkWriter
from streamlab.testing import wait_for

from ._streams import BASE, event_streams


def build(frame: pd.DataFrame, window, sink: ListSink, late: ListSink) -> Pipeline:
    p = Pipeline(ListSource(frame, batch_size=4))
    d = p.dedup("event_id", ttl="10m")
    out = d.window(window, key="key", delay="5s").agg(
        agg.count(), agg.sum("value"), agg.count_distinct("label")
    )
    out.to(sink)
    out.late.to(late)
    return p


def canon(f: pd.DataFrame) -> pd.DataFrame:
    return f.sort_values(["key", "window_start"]).reset_index(drop=True) if len(f) else f


@given(
    event_streams(),
    st.sampled_from([TumblingWindow("10s"), SlidingWindow("30s", every="10s"), SessionWindow("10s")]),
    st.integers(1, 60),
)
def test_snapshot_and_restore_mid_stream_equals_uninterrupted_run(frame, window, stop_after):
    full, full_late = ListSink(), ListSink()
    build(frame, window, full, full_late).run(clock=ManualClock(0))

    first, first_late = ListSink(), ListSink()
    r1 = build(frame, window, first, first_late).run(clock=ManualClock(0), max_events=stop_after)
    cp = pickle_roundtrip(r1.checkpoint)
    second, second_late = ListSink(), ListSink()
    build(frame, window, second, second_late).run(clock=ManualClock(0), resume=cp)

    combined = pd.concat([first.frame(), second.frame()], ignore_index=True)
    pdt.assert_frame_equal(canon(combined), canon(full.frame()), check_dtype=False)
    n_late = len(first_late.frame()) + len(second_late.frame())
    assert n_late == len(full_late.frame())


def pickle_roundtrip(obj: Any) -> Any:
    import pickle

    return pickle.loads(pickle.dumps(obj))


def test_checkpoint_dir_resumes_after_a_stop(tmp_path):
    frame = pd.DataFrame(
        {
            "key": "a",
            "event_id": [f"e{i}" for i in range(100)],
            "value": 1.0,
            "label": "x",
            "timestamp": BASE + pd.to_timedelta(np.arange(100), unit="s"),
        }
    )
    db = tmp_path / "out.duckdb"

    def pipeline() -> tuple[Pipeline, DuckDBSink]:
        p = Pipeline(ListSource(frame, batch_size=10))
        sink = DuckDBSink(db, "counts")
        p.window(TumblingWindow("30s"), key="key").agg(agg.count()).to(sink)
        return p, sink

    p, sink = pipeline()
    r = p.run(clock=ManualClock(0), checkpoint_dir=tmp_path / "cp", max_events=45)
    assert r.status == "stopped"
    sink.close()
    p, sink = pipeline()
    r = p.run(clock=ManualClock(0), checkpoint_dir=tmp_path / "cp")
    assert r.status == "finished"
    counts = sink.read(order_by="window_start")["count"].tolist()
    sink.close()
    assert counts == [30, 30, 30, 10]
    # running again from scratch into the same table never doubles rows
    p, sink = pipeline()
    p.run(clock=ManualClock(0))
    assert sink.read(order_by="window_start")["count"].tolist() == [30, 30, 30, 10]
    sink.close()


def streamlab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamlab")]


def test_background_handle_under_a_running_event_loop_leaves_no_thread():
    # 10 ms between events at real-time speed: reading 200 of them takes about 2 s, so the loop ticks
    frame = pd.DataFrame(
        {"x": np.arange(2000), "timestamp": BASE + pd.to_timedelta(np.arange(2000) * 10, unit="ms")}
    )
    ticks = []

    async def kernel_like() -> dict[str, Any]:
        p = Pipeline(ReplaySource(frame, speed=1.0, batch_size=50), name="bg")
        sink = ListSink()
        p.filter("x % 2 == 0").to(sink)
        handle = p.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60  # the replay runs in real time: bound the wait, fail with a message
        try:
            while handle.metrics["events_in"] < 200:
                assert loop.time() < deadline, f"{handle.metrics['events_in']} of 200 events read in 60 s"
                ticks.append(1)  # the loop keeps running: the pipeline does not block it
                await asyncio.sleep(0.01)
        finally:
            result = handle.stop()
        return {"result": result, "rows": len(sink.frame()), "alive": handle.thread.is_alive()}

    out = asyncio.run(kernel_like())
    assert out["alive"] is False
    assert streamlab_threads() == []
    assert len(ticks) >= 2
    assert out["result"].status == "stopped"
    assert out["rows"] == out["result"].metrics["steps"]["filter"]["out"]["out"]


def test_pause_step_resume_with_a_controllable_clock():
    frame = pd.DataFrame({"x": np.arange(30), "timestamp": BASE + pd.to_timedelta(np.arange(30), unit="s")})
    clock = ManualClock("2030-01-01T00:00:00Z")
    p = Pipeline(ReplaySource(frame, speed=1.0, batch_size=5), name="steps")
    sink = ListSink()
    p.stream.to(sink)
    handle = p.start(clock=clock, paused=True)
    try:
        assert handle.metrics["events_in"] == 0
        handle.step()
        wait_for(lambda: handle.metrics["batches"] == 1)
        assert handle.metrics["batches"] == 1
        handle.resume()
        result = handle.wait(timeout=30)
        assert result is not None and result.status == "finished"
        assert sink.frame()["x"].tolist() == list(range(30))
    finally:
        handle.stop()
    assert streamlab_threads() == []


def test_resume_wakes_a_paused_loop_at_once_and_never_reports_paused_after_it():
    """A paused loop waits on the pacer; resume() wakes it (it does not sleep out its wait), and a loop
    that reaches its pause turn after a resume goes on instead of showing "paused" (a live status line
    read just after pause(); play() showed a stale "paused")."""
    from streamlab.runtime._drive import Pacer

    pacer = Pacer(paused=True)
    waiter = threading.Thread(target=pacer.take_step, kwargs={"wait": 600.0})
    waiter.start()
    wait_for(lambda: bool(pacer._cond._waiters), timeout=30)  # type: ignore[attr-defined]
    pacer.resume()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert pacer.take_step(wait=600.0) is False  # running: returns at once, no step taken

    frame = pd.DataFrame({"x": np.arange(30), "timestamp": BASE + pd.to_timedelta(np.arange(30), unit="s")})
    handle = Pipeline(ReplaySource(frame, speed=None, batch_size=5)).start(clock=ManualClock(0), paused=True)
    try:
        wait_for(lambda: handle.status == "paused")
        handle.pause()
        handle.resume()
        assert handle.wait(timeout=30).status == "finished"
    finally:
        handle.stop()
    assert streamlab_threads() == []


def test_replay_speed_honours_event_time_gaps():
    frame = pd.DataFrame({"x": [1, 2, 3], "timestamp": BASE + pd.to_timedelta([0, 60, 100], unit="s")})
    clock = ManualClock("2030-01-01T00:00:00Z")
    start = clock.now_ns()
    Pipeline(ReplaySource(frame, speed=10.0)).run(clock=clock)
    assert abs((clock.now_ns() - start) / 1e9 - 10.0) < 0.1
    clock2 = ManualClock("2030-01-01T00:00:00Z")
    Pipeline(ReplaySource(frame, speed=None)).run(clock=clock2)
    assert clock2.now_ns() - start < 10**9


class RecordingSource(Source):
    def __init__(self, log: list[str], n: int) -> None:
        self.log, self.n = log, n

    def open(self, resume: Any = None, clock: Any = None) -> SourceReader:
        log, n = self.log, self.n

        class Reader(SourceReader):
            pos = resume or 0

            def poll(self, max_events: int) -> pd.DataFrame | None:
                if self.pos >= n:
                    return None
                self.pos += 1
                log.append(f"poll {self.pos}")
                return pd.DataFrame({"i": [self.pos]})

            @property
            def done(self) -> bool:
                return self.pos >= n

            def snapshot(self) -> Any:
                return self.pos

            def commit(self, position: Any) -> None:
                log.append(f"commit {position}")

        return Reader()


class RecordingSink(Sink):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def open(self, clock: Any = None) -> SinkWriter:
        log = self.log

        class Writer(SinkWriter):
            def write_batch(self, batch: pd.DataFrame) -> None:
                log.append(f"write {batch['i'].iloc[0]}")

            def flush(self) -> None:
                log.append("flush")

        return Writer()


def test_offsets_are_committed_only_after_the_sink_flushed():
    log: list[str] = []
    p = Pipeline(RecordingSource(log, 3))
    p.stream.to(RecordingSink(log))
    p.run(clock=ManualClock(0), commit_every="0s")
    for i, entry in enumerate(log):
        if entry.startswith("commit"):
            k = int(entry.split()[1])
            assert f"write {k}" in log[:i] and log[i - 1] == "flush"
    commits = [i for i, e in enumerate(log) if e.startswith("commit")]
    assert log[commits[-1]] == "commit 3" and log[commits[-1] - 1] == "flush"


def test_keyboard_interrupt_in_a_sink_flushes_and_commits_what_was_delivered():
    log: list[str] = []

    class Interrupting(RecordingSink):
        def open(self, clock: Any = None) -> SinkWriter:
            inner = super().open(clock)

            class W(SinkWriter):
                def write_batch(self, batch: pd.DataFrame) -> None:
                    inner.write_batch(batch)
                    if batch["i"].iloc[0] == 2:
                        raise KeyboardInterrupt

                def flush(self) -> None:
                    inner.flush()

            return W()

    p = Pipeline(RecordingSource(log, 5))
    p.stream.to(Interrupting(log))
    result = p.run(clock=ManualClock(0), commit_every="1h")
    assert result.status == "interrupted"
    commits = [i for i, e in enumerate(log) if e.startswith("commit")]
    # the sink raised on batch 2: whether it holds it is unknown, so batch 2 is read again on restart
    assert log[commits[-1]] == "commit 1" and log[commits[-1] - 1] == "flush"
    assert "poll 3" not in log  # the run stopped at the interrupt


def test_a_second_interrupt_mid_batch_keeps_the_last_good_checkpoint(tmp_path):
    """Each batch goes to two sinks; an interrupt between them must not commit that batch."""
    log: list[str] = []

    class FailsOnThird(RecordingSink):
        def open(self, clock: Any = None) -> SinkWriter:
            inner = super().open(clock)

            class W(SinkWriter):
                def write_batch(self, batch: pd.DataFrame) -> None:
                    if batch["i"].iloc[0] == 3:
                        raise KeyboardInterrupt
                    inner.write_batch(batch)

                def flush(self) -> None:
                    inner.flush()

            return W()

    first, second = ListSink(), FailsOnThird(log)
    p = Pipeline(RecordingSource(log, 5))
    p.stream.to(first)
    p.stream.to(second)
    result = p.run(clock=ManualClock(0), commit_every="0s", checkpoint_dir=tmp_path)
    assert result.status == "interrupted"
    assert first.frame()["i"].tolist() == [1, 2, 3] and "write 3" not in log  # batch 3 is torn
    assert [e for e in log if e.startswith("commit")][-1] == "commit 2"
    assert result.checkpoint["sources"]["source"] == 2  # the checkpoint after batch 2 is kept
    again = Pipeline(RecordingSource(log, 5))
    again.stream.to(ListSink())
    rest = again.run(clock=ManualClock(0), checkpoint_dir=tmp_path)
    assert rest.metrics["events_in"] == 3  # batches 3, 4 and 5: batch 3 again, nothing lost


def test_unattached_outputs_are_collected_not_dropped():
    recs = [
        b"bad",
        b'{"event_id":"a","event_type":"x","user_id":"u","timestamp":"2024-01-01T00:00:00Z","properties":{}}',
    ]
    result = Pipeline(ListSource(recs)).parse().run(clock=ManualClock(0))
    assert result["parse.dead_letter"]["raw"].tolist() == [b"bad"]
    assert result["parse"]["properties"].tolist() == [{}]


def test_replay_pacing_with_a_simulated_clock_never_stalls():
    # event times near 1.7e18 ns: float64 cannot represent every nanosecond there
    ts = pd.Timestamp("2024-03-01T09:00:00.123456789Z") + pd.to_timedelta(
        np.arange(200) * 333_333_337, unit="ns"
    )
    frame = pd.DataFrame({"x": np.arange(200), "timestamp": ts})
    for speed in (1.0, 3.0, 7.3, 0.5):
        clock = ManualClock("2030-01-01T00:00:00.000000001Z")
        sink = ListSink()
        p = Pipeline(ReplaySource(frame, speed=speed, batch_size=7))
        p.stream.to(sink)
        result = p.run(clock=clock)
        assert result.status == "finished" and len(sink.frame()) == 200


def test_sigterm_stops_a_background_run_gracefully(tmp_path):
    import signal as sig
    import subprocess
    import sys

    script = tmp_path / "bg.py"
    out = tmp_path / "out.jsonl"
    ready = tmp_path / "ready"
    script.write_text(f"""
import pathlib, numpy as np, pandas as pd
from streamlab import JsonLinesSink, Pipeline, ReplaySource
frame = pd.DataFrame({{"x": np.arange(100_000), "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(100_000), unit="s")}})
p = Pipeline(ReplaySource(frame, speed=1000.0, batch_size=10))
p.stream.to(JsonLinesSink({str(out)!r}))
handle = p.start(commit_every="1h")
while handle.metrics["events_in"] < 50:
    pass
staged = pathlib.Path({str(ready)!r} + ".tmp")  # written, then renamed: the test never sees it half written
staged.write_text(str(handle.metrics["events_in"]))
staged.rename({str(ready)!r})
handle.wait()
""")
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        wait_for(ready.exists, timeout=60)
        proc.send_signal(sig.SIGTERM)
        assert proc.wait(timeout=60) == 128 + sig.SIGTERM
    finally:
        proc.kill()
    # the sink was flushed on the way out: everything read before the signal is in the file
    assert len(out.read_text().splitlines()) >= int(ready.read_text())


def test_a_sink_that_fails_to_open_leaves_no_source_open():
    closed: list[str] = []

    class ClosingSource(Source):
        def open(self, resume: Any = None, clock: Any = None) -> SourceReader:
            class Reader(SourceReader):
                def poll(self, max_events: int) -> pd.DataFrame | None:
                    return None

                def close(self) -> None:
                    closed.append("source")

            return Reader()

    class BrokenSink(Sink):
        def open(self, clock: Any = None) -> SinkWriter:
            raise ImportError("pip install 'streamlab[kafka]'")

    p = Pipeline(ClosingSource())
    p.stream.to(BrokenSink())
    import pytest

    with pytest.raises(ImportError):
        p.run(clock=ManualClock(0))
    with pytest.raises(ImportError):
        p.start(clock=ManualClock(0))
    assert closed == ["source", "source"]
    assert streamlab_threads() == []


def test_max_events_is_exact_even_with_large_source_batches():
    frame = pd.DataFrame({"x": np.arange(1000)})
    sink = ListSink()
    p = Pipeline(ListSource(frame))
    p.stream.to(sink)
    result = p.run(clock=ManualClock(0), max_events=123)
    assert result.metrics["events_in"] == 123 and len(sink.frame()) == 123


def test_duckdb_sink_takes_new_categories_in_later_batches():
    sink = DuckDBSink(":memory:", "t", key=None)
    w = sink.open()
    w.write_batch(pd.DataFrame({"event_type": pd.Categorical(["click"])}))
    w.write_batch(pd.DataFrame({"event_type": pd.Categorical(["purchase"])}))
    w.flush()
    w.commit()  # appends are staged until the commit
    assert sorted(sink.read()["event_type"]) == ["click", "purchase"]


def test_an_interrupt_signal_stops_at_a_batch_boundary_and_commits(tmp_path):
    import os
    import signal

    frame = pd.DataFrame({"x": np.arange(10_000)})
    seen: list[int] = []

    class SignallingSink(Sink):
        def open(self, clock: Any = None) -> SinkWriter:
            class Writer(SinkWriter):
                def write_batch(self, batch: pd.DataFrame) -> None:
                    seen.extend(batch["x"].tolist())
                    if len(seen) == 3000:  # the interrupt button, pressed mid-run
                        os.kill(os.getpid(), signal.SIGINT)

            return Writer()

    p = Pipeline(ListSource(frame, batch_size=1000))
    p.stream.to(SignallingSink())
    before = signal.getsignal(signal.SIGINT)
    result = p.run(clock=ManualClock(0), checkpoint_dir=tmp_path)
    assert result.status == "interrupted"
    position = result.checkpoint["sources"]["source"]["position"]
    assert seen == list(range(position)) and 3000 <= position < 10_000  # whole batches, all delivered
    assert signal.getsignal(signal.SIGINT) is before
    rest = Pipeline(ListSource(frame, batch_size=1000))
    rest.stream.to(SignallingSink())
    assert rest.run(clock=ManualClock(0), checkpoint_dir=tmp_path).status == "finished"
    assert seen == list(range(10_000))


def test_a_late_subscriber_with_replay_sees_every_batch_once() -> None:
    frame = pd.DataFrame({"n": np.arange(20_000)})
    p = Pipeline(ListSource(frame, batch_size=100), name="counting")
    p.select("n", step_id="out")
    handle = p.start(clock=ManualClock(0), paused=True)
    seen: list[pd.DataFrame] = []
    try:
        handle.step(3)
        wait_for(lambda: handle.metrics["events_in"] == 300)
        # three batches went by before the subscription: they come first, then the rest as it flows
        handle.subscribe("out", seen.append, replay=True)
        assert pd.concat(seen)["n"].tolist() == list(range(300))
        handle.resume()
        handle.wait(30)
    finally:
        handle.stop()
    got = pd.concat(seen, ignore_index=True)["n"]
    assert got.tolist() == list(range(20_000))  # nothing missed, nothing twice, in order
    late: list[pd.DataFrame] = []
    handle.subscribe("out", late.append, replay=True)  # after the end: the whole collected output
    assert pd.concat(late)["n"].tolist() == list(range(20_000))


def test_a_late_subscriber_to_a_stream_with_a_sink_replays_its_newest_rows() -> None:
    """A background run keeps the newest REPLAY_ROWS rows of each stream a sink reads, for live views
    made late; the results (what ``run()`` returns and ``handle.outputs``) still hold no such stream."""
    from streamlab.runtime._tail import REPLAY_ROWS

    frame = pd.DataFrame({"n": np.arange(REPLAY_ROWS + 5_000)})
    p = Pipeline(ListSource(frame, batch_size=700))
    sink = ListSink()
    p.select("n", step_id="out").to(sink)
    handle = p.start(clock=ManualClock(0), paused=True)
    mid: list[pd.DataFrame] = []
    try:
        handle.step(2)
        wait_for(lambda: handle.metrics["events_in"] == 1400)
        handle.subscribe("out", mid.append, replay=True)  # mid-run: what the sink got so far, then the rest
        assert pd.concat(mid)["n"].tolist() == list(range(1400))
        handle.resume()
        handle.wait(30)
    finally:
        handle.stop()
    assert pd.concat(mid, ignore_index=True)["n"].tolist() == list(range(len(frame)))  # once each, in order
    assert handle._ex.router.tails["out"].rows < REPLAY_ROWS + 700  # bounded: whole batches, the oldest go
    late: list[pd.DataFrame] = []
    handle.subscribe("out", late.append, replay=True)  # after the end: the newest REPLAY_ROWS rows
    assert pd.concat(late)["n"].tolist() == list(range(5_000, len(frame)))
    assert "out" not in handle.outputs and "out" not in handle.wait(1).outputs
    assert len(sink.frame()) == len(frame)
    assert "out" not in p.run(clock=ManualClock(0)).outputs  # run() keeps no tail


def test_a_late_subscriber_to_a_stream_a_step_reads_replays_it_and_raw_records_are_not_kept() -> None:
    """``show(handle, "parse")`` of a parse step feeding a window replayed nothing: only streams a sink
    reads had a tail. The source's raw records, read by the parse step alone, keep none."""
    records = [f'{{"n": {i}, "timestamp": "2024-01-01T00:00:{i % 60:02d}Z"}}'.encode() for i in range(3000)]
    p = Pipeline(ListSource(pd.DataFrame({"value": records}), batch_size=500))
    p.parse({"n": "int64", "timestamp": "timestamp"}).window(TumblingWindow("10s")).agg(agg.count()).to(
        ListSink()
    )
    handle = p.start(clock=ManualClock(0), paused=True)
    mid: list[pd.DataFrame] = []
    try:
        handle.step(2)
        wait_for(lambda: handle.metrics["events_in"] == 1000)
        handle.subscribe("parse", mid.append, replay=True)
        assert pd.concat(mid)["n"].tolist() == list(range(1000))
        handle.resume()
        handle.wait(30)
    finally:
        handle.stop()
    assert pd.concat(mid, ignore_index=True)["n"].tolist() == list(range(3000))  # once each, in order
    assert "source" not in handle._ex.router.tails and "parse" not in handle.outputs


def test_an_interrupt_between_reading_and_delivering_a_batch_does_not_commit_it(monkeypatch):
    """A second Ctrl-C can land anywhere: here after batch 3 was read and before it was delivered."""
    from streamlab.runtime import Executor

    log: list[str] = []
    enter = Executor._enter

    def interrupted_enter(self, sid, batch, parsed=None):  # type: ignore[no-untyped-def]
        if batch["i"].iloc[0] == 3:
            raise KeyboardInterrupt
        enter(self, sid, batch, parsed)

    monkeypatch.setattr(Executor, "_enter", interrupted_enter)
    sink = ListSink()
    p = Pipeline(RecordingSource(log, 5))
    p.stream.to(sink)
    result = p.run(clock=ManualClock(0), commit_every="1h")
    assert result.status == "interrupted" and sink.frame()["i"].tolist() == [1, 2]
    assert [e for e in log if e.startswith("commit")] == ["commit 2"]  # batch 3 is read again
    assert result.checkpoint["sources"]["source"] == 2


@pytest.mark.parametrize("speed", [0, -1, float("nan"), float("inf"), "fast", True])
def test_a_replay_speed_that_cannot_work_is_refused_at_the_call_and_the_run_goes_on(speed) -> None:
    # set_speed(0) used to fail the run with ZeroDivisionError, nan and inf with a conversion error,
    # and -1 stalled it for good; ReplaySource let nan and inf through to the run
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2024-01-01", periods=100, freq="s", tz="UTC"), "n": range(100)}
    )
    with pytest.raises(ValueError, match="speed must be a positive, finite number"):
        ReplaySource(frame, speed=speed)
    p = Pipeline(ReplaySource(frame, speed=None, batch_size=10))
    p.select("n", step_id="out")
    handle = p.start(clock=ManualClock(0), paused=True)
    try:
        handle.step(1)
        wait_for(lambda: handle.metrics["events_in"] == 10)
        with pytest.raises(ValueError, match=r"set_speed\(speed=.*positive, finite number"):
            handle.set_speed(speed)
        handle.set_speed(None)
        handle.resume()
        result = handle.wait(30)
    finally:
        handle.stop()
    assert result.status == "finished" and result["out"]["n"].tolist() == list(range(100))


@pytest.mark.parametrize("batches", [0, -1, 1.5, "2", True])
def test_stepping_a_paused_run_takes_a_whole_number_of_batches_from_one(batches) -> None:
    # step(-1) used to un-pause the run for good: the pending count never came back to 0
    p = Pipeline(ListSource(pd.DataFrame({"n": range(100)}), batch_size=10))
    p.select("n", step_id="out")
    handle = p.start(clock=ManualClock(0), paused=True)
    try:
        with pytest.raises(ValueError, match="batches must be a whole number of source batches >= 1"):
            handle.step(batches)
        handle.step(2)
        wait_for(lambda: handle.metrics["events_in"] == 20)
        assert handle.metrics["events_in"] == 20 and handle.status == "paused"
    finally:
        handle.stop()


def test_a_second_sigterm_cuts_a_long_batch_short_and_the_run_still_flushes(tmp_path) -> None:
    """A step stuck in a long batch ignored every SIGTERM until the batch ended (a sliding window closing
    86,400 panes a window ran for an hour): the first SIGTERM asks for a stop at the next batch boundary,
    a second cuts the batch short, as a second Ctrl-C does; what was delivered before is flushed."""
    import signal as sig
    import subprocess
    import sys

    script = tmp_path / "fg.py"
    out = tmp_path / "out.jsonl"
    ready = tmp_path / "ready"
    script.write_text(f"""
import pathlib, pandas as pd
from streamlab import JsonLinesSink, ListSource, ManualClock, Pipeline
p = Pipeline(ListSource(pd.DataFrame({{"x": range(30)}}), batch_size=10))
def stuck(df):
    if df["x"].iloc[0] == 20:  # the third batch never ends by itself
        pathlib.Path({str(ready)!r}).touch()
        while True:
            pass
    return df
p.stream.map_many(stuck).to(JsonLinesSink({str(out)!r}))
print(p.run(clock=ManualClock(0), commit_every=0).status, flush=True)
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(ready.exists, timeout=60)
        proc.send_signal(sig.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)  # the first asks for a stop at the batch boundary, which never comes
        proc.send_signal(sig.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and stdout.strip() == "stopped"
    assert len(out.read_text().splitlines()) == 20  # the two batches delivered before, flushed


def test_a_map_many_result_with_repeated_column_names_goes_to_dead_letter():
    # two columns named v were passed on: a window's agg.sum('v') then failed with "'DataFrame' object
    # has no attribute 'dtype'" and DuckDB/Parquet sinks stopped the run
    from streamlab import ListSink, ManualClock, Pipeline, TumblingWindow, agg

    ts = pd.Timestamp("2024-01-01", tz="UTC")
    p = Pipeline(ListSource([{"v": float(i), "timestamp": ts} for i in range(5)], batch_size=2))
    mapped = p.stream.map_many(lambda d: pd.concat([d, d[["v"]] * 10], axis=1))
    counts, dead = ListSink(), ListSink()
    mapped.window(TumblingWindow("1m")).agg(agg.sum("v")).to(counts)
    mapped.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    assert counts.frame().empty
    assert len(dead.frame()) == 5  # every row, with the reason
    assert dead.frame()["reason"].str.contains(r"repeated column names \['v'\]").all()


def test_a_subscriber_that_raises_is_unsubscribed_and_the_run_and_its_sinks_go_on(caplog):
    # the callback's error failed the run, and the sink on the same output got none of the rows
    from streamlab import ListSink, ManualClock, Pipeline
    from streamlab.runtime import start

    p = Pipeline(ListSource([{"x": i} for i in range(10)], batch_size=2))
    sink = ListSink()
    kept = p.stream.filter("x >= 0")
    kept.to(sink)
    handle = start(p, clock=ManualClock(0), paused=True)
    calls = []

    def broken(frame: pd.DataFrame) -> None:
        calls.append(len(frame))
        raise RuntimeError("my callback bug")

    unsubscribe = handle.subscribe("filter", broken)
    handle.resume()
    with caplog.at_level("ERROR", logger="streamlab"):
        result = handle.wait(timeout=30)
    assert result is not None and result.status == "finished"
    assert len(sink.frame()) == 10 and calls == [2]  # called once, then unsubscribed
    assert any("a subscriber of 'filter' raised" in r.getMessage() for r in caplog.records)
    unsubscribe()  # no error: it is gone already


def test_a_run_result_has_the_events_in_its_repr_shows() -> None:
    # the repr said events_in=2, and result.events_in raised AttributeError
    result = Pipeline(ListSource([{"x": 1}, {"x": 2}])).run(clock=ManualClock(0))
    assert "events_in=2" in repr(result) and result.events_in == 2 == result.metrics["events_in"]


def test_a_step_added_to_the_pipeline_after_start_leaves_the_run_as_it_was_built() -> None:
    """A notebook cell that adds a step while a background run goes on made its metrics, and so
    ``wait()``, raise KeyError: they listed the pipeline's steps now, not the run's."""
    sink = ListSink()
    p = Pipeline(ListSource(pd.DataFrame({"n": range(1000)}), batch_size=100))
    p.stream.to(sink, step_id="sink")
    handle = p.start(clock=ManualClock(0), paused=True)
    try:
        handle.step(1)
        p.select("n", step_id="later")  # not part of the run started above
        assert set(handle.metrics["steps"]) == {"source", "sink"}
        handle.resume()
        result = handle.wait(30)
    finally:
        handle.stop()
    assert result.status == "finished" and len(sink.frame()) == 1000
    assert set(result.metrics["steps"]) == {"source", "sink"}
