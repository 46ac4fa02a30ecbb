"""A pipeline object runs once at a time.

Running a notebook cell ``handle = p.start()`` again started a second run of the same pipeline beside
the first, whose handle was then lost: both read the same sources and wrote the same sinks (a JSON-lines
or list sink got every row twice, a Kafka group two consumers). A second ``start()`` or ``run()`` while
a run is open is now refused with the fix, ``Pipeline.running`` gives the open run's handle, and
``Stream.show()`` without a handle follows the open run instead of starting another.
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline, PipelineConfigError
from streamlab.io import Sink, SinkWriter
from streamlab.testing import ListSink, ListSource


def pipeline(sink: object | None = None) -> Pipeline:
    p = Pipeline(ListSource([{"x": i} for i in range(10)], batch_size=2), name="clicks")
    p.stream.to(sink if sink is not None else ListSink())
    return p


def test_a_second_start_or_run_while_one_is_open_is_refused_with_the_fix() -> None:
    p = pipeline()
    first = p.start(clock=ManualClock(0), paused=True)
    try:
        assert p.running is first
        for again in (lambda: p.start(clock=ManualClock(0)), lambda: p.run(clock=ManualClock(0))):
            with pytest.raises(PipelineConfigError) as e:
                again()
            text = str(e.value)
            assert "pipeline 'clicks' is already running" in text
            assert "handle.stop()" in text and "pipeline.running.stop()" in text
        assert p.running is first  # the refused attempts left the open run as it was
    finally:
        first.stop()
    assert p.running is None
    assert p.run(clock=ManualClock(0)).metrics["events_in"] == 10  # free again once stopped


def test_a_run_that_ended_by_itself_frees_the_pipeline() -> None:
    p = pipeline()
    handle = p.start(clock=ManualClock(0))
    assert handle.wait(timeout=60).status == "finished"
    assert p.running is None
    assert p.start(clock=ManualClock(0)).wait(timeout=60).status == "finished"


class FailsOpening(Sink):
    def open(self, clock: object = None) -> SinkWriter:
        raise OSError("disk full")


def test_a_run_that_failed_to_open_frees_the_pipeline() -> None:
    p = pipeline(FailsOpening())
    for _ in range(2):  # the second attempt gets the sink's error again, not "already running"
        with pytest.raises(Exception, match="disk full"):
            p.start(clock=ManualClock(0))
    assert p.running is None


def test_other_pipelines_and_head_run_beside_an_open_run() -> None:
    p, q = pipeline(), pipeline()
    q.name = "other"  # (the same name and steps would be warned of: the next test)
    handle = p.start(clock=ManualClock(0), paused=True)
    try:
        assert q.run(clock=ManualClock(0)).metrics["events_in"] == 10
        assert p.head(4)["source"]["x"].tolist() == [0, 1, 2, 3]  # a preview runs a copy, without sinks
        assert p.running is handle
    finally:
        handle.stop()


class HeldSink(Sink):
    """A sink whose writes wait until ``free`` is set: the run stays open meanwhile."""

    def __init__(self) -> None:
        self.free = threading.Event()

    def open(self, clock: object = None) -> SinkWriter:
        sink = self

        class Writer(SinkWriter):
            def write_batch(self, batch: pd.DataFrame) -> None:
                assert sink.free.wait(timeout=60), "the test never freed the sink"

        return Writer()


def test_show_without_a_handle_follows_the_open_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlab.widgets

    shown: list[object] = []
    monkeypatch.setattr(streamlab.widgets, "show", lambda handle, ref, **options: shown.append(handle))
    sink = HeldSink()
    p = pipeline(sink)
    p.stream.show()  # starts the pipeline, whose first write waits
    try:
        assert p.running is not None
        p.stream.show()  # a second cell showing the stream: the same run, not a second one
        assert shown == [p.running, p.running]
    finally:
        sink.free.set()
        if p.running is not None:
            p.running.stop()


def test_the_same_pipeline_built_again_and_started_warns_and_open_runs_finds_the_lost_run() -> None:
    # the cell `p = build(); handle = p.start()` run again: a new pipeline object, the old run still
    # open with neither its pipeline nor its handle in reach
    import warnings

    from streamlab.runtime import open_runs

    first = pipeline().start(clock=ManualClock(0), paused=True)
    try:
        with pytest.warns(
            RuntimeWarning, match=r"another run of pipeline 'clicks' with the same sources and steps"
        ) as said:
            second = pipeline().start(clock=ManualClock(0), paused=True)
        assert said[0].filename == __file__  # the user's line, not streamlab's
        assert open_runs() == [first, second]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # another name, or other steps: no warning
            Pipeline(ListSource([{"x": 1}]), name="other").start(clock=ManualClock(0), paused=True).stop()
            q = pipeline()
            q.stream.filter("x > 1").to(ListSink())
            q.start(clock=ManualClock(0), paused=True).stop()
    finally:
        for h in open_runs():
            h.stop()
    assert open_runs() == []
