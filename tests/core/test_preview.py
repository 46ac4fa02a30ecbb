"""Quick looks at a pipeline: head(n), progress by default, and thresholds moved while it runs."""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector, QuantileThresholdFilter
from streamlab.io import Source, SourceReader
from streamlab.runtime import _progress as rt
from streamlab.testing import wait_for

BASE = pd.Timestamp("2024-03-01T00:00:00Z")


def clicks(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "k": rng.choice(["a", "b", "c"], n),
            "timestamp": BASE + pd.to_timedelta(np.sort(rng.integers(0, 600_000, n)), unit="ms"),
            "x": rng.normal(size=n),
        }
    )


def windowed(frame: pd.DataFrame, speed: float | None = None) -> tuple[Pipeline, ListSink]:
    sink = ListSink()
    p = Pipeline(ReplaySource(frame, speed=speed, batch_size=37), name="clicks")
    p.window(TumblingWindow("1m"), key="k").agg(agg.count()).to(sink)
    return p, sink


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 400))
def test_head_equals_a_full_run_of_the_first_n_events(n):
    frame = clicks(400)
    p, sink = windowed(frame)
    got = p.head(n)["window"].sort_values(["window_start", "k"]).reset_index(drop=True)
    # Oracle: the first n events replayed to the end (every window closed).
    q, q_sink = windowed(frame.head(n))
    q.run(clock=ManualClock(0))
    want = q_sink.frame().sort_values(["window_start", "k"]).reset_index(drop=True)
    assert got[["k", "window_start", "count"]].equals(want[["k", "window_start", "count"]])
    assert sink.frame().empty  # head() never writes to sinks


def test_head_is_instant_on_a_paced_replay_and_can_leave_windows_open():
    p, _ = windowed(clicks(300), speed=1.0)  # ten minutes of events at real speed
    done = threading.Event()
    out: dict[str, pd.DataFrame] = {}
    worker = threading.Thread(target=lambda: (out.update(p.head(300, flush_windows=False)), done.set()))
    worker.start()
    assert done.wait(30)  # a ManualClock replay takes no wall time
    assert int(out["window"]["count"].sum()) < 300  # the last window is still open
    with pytest.raises(ValueError, match="at least 1"):
        p.head(0)


def test_progress_shows_total_and_eta_for_replays(monkeypatch):
    bars = []

    class Bar(io.StringIO):
        def __init__(self, **kw):
            super().__init__()
            self.kw, self.n = kw, 0
            bars.append(self)

        def update(self, k):
            self.n += k

    monkeypatch.setattr("tqdm.auto.tqdm", Bar)
    p, _ = windowed(clicks(250))
    p.run(clock=ManualClock(0), progress=True)
    assert bars[-1].kw["total"] == 250 and bars[-1].n == 250 and bars[-1].kw["delay"] == 0.0
    p.run(clock=ManualClock(0), progress=True, max_events=100)
    assert bars[-1].kw["total"] == 100
    # By default: only where someone watches (a terminal or a notebook), and only past 2 s.
    monkeypatch.setattr(rt, "_interactive", lambda: False)
    n = len(bars)
    p.run(clock=ManualClock(0))
    assert len(bars) == n
    monkeypatch.setattr(rt, "_interactive", lambda: True)
    p.run(clock=ManualClock(0))
    assert len(bars) == n + 1 and bars[-1].kw["delay"] == 2.0 and bars[-1].kw["total"] == 250


def test_progress_has_no_total_when_a_source_cannot_know_it():
    class Endless(ReplaySource.__mro__[1]):  # a Source that is not a replay
        def open(self, resume=None, clock=None):
            return ReplaySource(clicks(5), speed=None).open(resume, clock)

    ex = rt.Executor(Pipeline(Endless(), name="x"), clock=ManualClock(0))
    ex.open()
    try:
        assert rt._known_total(ex) is None
    finally:
        ex.close()


def scored_pipeline(frame: pd.DataFrame, threshold=None) -> Pipeline:
    p = Pipeline(ReplaySource(frame, speed=None, batch_size=50), name="scores")
    p.stream.detect(
        GaussianScorerDetector(grace_period=5),
        features=["x"],
        threshold=threshold or FixedThresholdFilter(0.999),
        step_id="detect",
    )
    return p


def test_set_threshold_moves_a_running_detect_step_from_the_next_batch():
    frame = clicks(1000)
    handle = scored_pipeline(frame).start(clock=ManualClock(0), paused=True)
    handle.step(10)
    wait_for(lambda: handle.metrics["events_in"] == 500)
    handle.set_threshold("detect", 0.5)
    assert handle.thresholds == {"detect": 0.5}
    handle.resume()
    out = handle.wait(30)["detect"]
    before, after = out.iloc[:500], out.iloc[500:]
    assert before["is_anomaly"].equals(before["score"] > 0.999)
    assert after["is_anomaly"].equals(after["score"] > 0.5)
    assert after["is_anomaly"].mean() > 10 * max(before["is_anomaly"].mean(), 0.001)


def test_set_threshold_names_the_steps_that_can_move():
    handle = scored_pipeline(clicks(10), QuantileThresholdFilter(0.9)).start(
        clock=ManualClock(0), paused=True
    )
    try:
        with pytest.raises(ValueError, match=r"FixedThresholdFilter; steps with one: \[\]"):
            handle.set_threshold("detect", 0.5)
        with pytest.raises(ValueError, match="not a detect step"):
            handle.set_threshold("source", 0.5)
    finally:
        handle.stop()


def test_head_returns_what_every_sink_would_get_even_where_a_step_reads_it_too() -> None:
    """A sink on the source stream (an archive of raw events) or on a filter that a window also reads:
    head() returns those rows under the reference the sink reads (they were missing: only streams no
    step reads were collected)."""
    from streamlab.testing import ListSource

    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    df = pd.DataFrame({"v": range(20), "timestamp": [t0 + pd.Timedelta(seconds=i) for i in range(20)]})
    p = Pipeline(ListSource(df))
    p.stream.to(ListSink())
    big = p.stream.filter("v > 5")
    big.to(ListSink())
    big.window(TumblingWindow("1m")).agg(agg.count()).to(ListSink())
    out = p.head(10)
    assert out["source"]["v"].tolist() == list(range(10))
    assert out["filter"]["v"].tolist() == [6, 7, 8, 9]
    assert out["window"]["count"].tolist() == [4]


@pytest.mark.parametrize("n", [0, -1, 1.5, "10", True])
def test_head_of_no_whole_positive_number_says_how_to_call_it(n):
    # head(1.5) raised "TypeError: slice indices must be integers or None ..." from inside pandas
    p = Pipeline(ListSource([{"k": "a", "timestamp": "2024-01-01T00:00:00Z"}]))
    with pytest.raises(ValueError, match=r"head\(n=.*\): n must be a whole number of events, at least 1"):
        p.head(n)


class _QuietLiveSource(Source):
    """A live source (a subscription, a stream) that has one event, then nothing for now."""

    def open(self, resume: object = None, clock: object = None) -> SourceReader:
        class Reader(SourceReader):
            sent = False

            def poll(self, max_events: int) -> pd.DataFrame | None:
                if self.sent:
                    return None
                self.sent = True
                return pd.DataFrame({"k": ["a"], "timestamp": [BASE]})

        return Reader()


def test_head_of_a_quiet_live_source_returns_what_arrived_within_its_timeout() -> None:
    """head(n) waited for n events forever on a live source that had fewer (a kernel that never came back)."""
    p = Pipeline(_QuietLiveSource(), name="quiet")
    p.window(TumblingWindow("1m"), key="k").agg(agg.count()).to(ListSink())
    done: list[dict[str, pd.DataFrame]] = []
    worker = threading.Thread(target=lambda: done.append(p.head(100, timeout="200ms")), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done, "head() did not return"
    assert done[0]["window"]["count"].tolist() == [1]


def test_head_refuses_a_timeout_that_is_no_duration() -> None:
    p = Pipeline(ListSource([{"k": "a", "timestamp": BASE}]))
    with pytest.raises(ValueError, match=r"head\(timeout=\.\.\.\)"):
        p.head(5, timeout="soon")
