"""The runtime's written contracts: optional hooks with defaults, one options object, typed metrics,
sinks that stay configuration, a well-behaved SIGTERM handler, and a model that does not load the runtime."""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any

import pandas as pd
import pytest

from streamlab import (
    DuckDBSink,
    ManualClock,
    Operator,
    Pipeline,
    Sink,
    SinkWriter,
    Source,
    SourceReader,
    TumblingWindow,
    agg,
)
from streamlab.clock import Clock
from streamlab.runtime import RunMetrics, RunOptions, _shutdown, run, start
from streamlab.testing import ListSource


# --- optional hooks: a minimal operator, reader and sink define none of them -----------------------------
class Doubling(Operator):
    """Overrides only ``process``: every optional hook keeps its default."""

    def process(self, batch: pd.DataFrame, port: int = 0) -> dict[str, pd.DataFrame]:
        return {"out": batch.assign(x=batch["x"] * 2)}


class Doubled:
    def build(self) -> Operator:
        return Doubling()


class Counting(Source):
    """A bounded source whose reader defines only ``poll`` and ``done``."""

    def __init__(self, n: int, per_poll: int = 2) -> None:
        self.n, self.per_poll = n, per_poll

    def open(self, resume: Any = None, clock: Clock | None = None) -> SourceReader:
        n, per_poll = self.n, self.per_poll

        class Reader(SourceReader):
            sent = 0

            def poll(self, max_events: int) -> pd.DataFrame | None:
                take = min(max_events, per_poll, n - self.sent)
                out = pd.DataFrame({"x": range(self.sent, self.sent + take)})
                self.sent += take
                return out

            @property
            def done(self) -> bool:
                return self.sent >= n

        return Reader()


class Rows(Sink):
    """A sink whose writer defines only ``write_batch``; it has no ``open_for``."""

    def __init__(self) -> None:
        self.got: list[int] = []

    def open(self, clock: Clock | None = None) -> SinkWriter:
        got = self.got

        class Writer(SinkWriter):
            def write_batch(self, batch: pd.DataFrame) -> None:
                got.extend(batch["x"].tolist())

        return Writer()


def minimal() -> tuple[Pipeline, Rows]:
    sink = Rows()
    p = Pipeline(Counting(5))
    p.stream.apply(Doubled(), step_id="double").to(sink)
    return p, sink


def test_the_hooks_default_to_nothing() -> None:
    op, reader = Doubling(), Counting(1).open()
    assert (op.by, op.idle_ns, op.works_ahead) == ((), None, False)
    assert op.expect_partitions({0}) is None and op.on_processing_time(0) == {} and op.on_end() == {}
    assert op.begin(pd.DataFrame({"x": [1]}))()["out"]["x"].tolist() == [2]  # done on completion
    outputs, rows = op.process_rows(pd.DataFrame({"x": [1]}))
    assert outputs["out"]["x"].tolist() == [2] and rows is None  # its rows end a union's order
    assert reader.set_speed(2.0) is None and reader.on_resume() is None and reader.partitions() is None


def test_a_minimal_operator_reader_and_sink_run_through_run() -> None:
    p, sink = minimal()
    result = run(p, clock=ManualClock(0), batch_size=5_000)  # large batches: work ahead is considered
    assert result.status == "finished" and sink.got == [0, 2, 4, 6, 8]
    assert result.metrics["steps"]["double"] == {"kind": "operator", "in": 5, "out": {"out": 5}}


def test_a_minimal_operator_reader_and_sink_run_through_start_with_every_control() -> None:
    p, sink = minimal()
    handle = start(p, clock=ManualClock(0), paused=True)
    handle.set_speed(3.0)  # a reader that does not replay ignores it
    handle.step(1)
    handle.resume()  # calls the reader's on_resume
    done = handle.wait(timeout=30)
    assert done is not None and done.status == "finished" and sink.got == [0, 2, 4, 6, 8]


class AheadDoubling(Doubling):
    """Declares the work-ahead capability; its ``begin`` (the default) completes on delivery."""

    works_ahead = True


def test_work_ahead_is_planned_from_the_operator_capability_not_its_class() -> None:
    from streamlab.runtime import Executor

    results = []
    for op_class in (Doubling, AheadDoubling):
        p = Pipeline(Counting(9_000, per_poll=5_000))
        p.stream.apply(type("Cfg", (), {"build": lambda self, c=op_class: c()})(), step_id="double")
        ex = Executor(p, clock=ManualClock(0), batch_size=5_000)
        ex.open()
        try:
            targets = dict(ex.ahead_targets)
        finally:
            ex.close()
        results.append((targets, run(p, clock=ManualClock(0), batch_size=5_000)["double"]["x"].tolist()))
    (plain, plain_rows), (ahead, ahead_rows) = results
    assert plain == {} and ahead == {"source": "double"}
    assert plain_rows == ahead_rows == [2 * i for i in range(9_000)]


# --- one options object ------------------------------------------------------------------------------
def test_run_and_start_take_the_fields_of_one_options_object() -> None:
    names = [f for f in RunOptions.__dataclass_fields__]
    for fn in (run, start):
        params = inspect.signature(fn).parameters
        assert [n for n in params if n in names] == names
        assert all(params[n].default == RunOptions.__dataclass_fields__[n].default for n in names)
    with pytest.raises(TypeError, match="did you mean 'max_events'"):
        Pipeline(ListSource([{"x": 1}])).run(max_event=3)


def test_run_bounds_collected_outputs_given_as_options_or_keywords() -> None:
    events = [{"x": i} for i in range(10)]
    by_object = run(Pipeline(ListSource(events)), RunOptions(clock=ManualClock(0), max_collect_rows=3))
    by_keyword = Pipeline(ListSource(events)).run(clock=ManualClock(0), max_collect_rows=3)
    for result in (by_object, by_keyword):
        assert result["source"]["x"].tolist() == [7, 8, 9] and result.dropped == {"source": 7}


# --- typed metrics -------------------------------------------------------------------------------------
def test_the_metrics_have_exactly_the_typed_keys() -> None:
    metrics: RunMetrics = Pipeline(ListSource([{"x": 1}])).run(clock=ManualClock(0)).metrics
    assert set(metrics) == RunMetrics.__required_keys__
    handle = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0))
    assert handle.wait(timeout=30) is not None
    assert set(handle.metrics) == RunMetrics.__required_keys__


# --- sinks stay configuration ---------------------------------------------------------------------------
def test_to_leaves_the_sink_unchanged_and_each_pipeline_tells_its_own_writer() -> None:
    sink = DuckDBSink(":memory:", "counts")
    before = pickle.dumps(sink)
    events = [{"k": k, "g": g, "timestamp": t} for t in range(4) for k in "ab" for g in "xy"]
    by_k, by_g = Pipeline(ListSource(events)), Pipeline(ListSource(events))
    by_k.window(TumblingWindow("10s"), key="k").agg(agg.count()).to(sink)
    other = DuckDBSink(":memory:", "counts")
    by_g.window(TumblingWindow("10s"), key="g").agg(agg.count()).to(other)
    assert pickle.dumps(sink) == before  # no binding left on the configuration
    for _ in range(2):  # a re-run upserts by the window step's key: no doubled rows
        by_k.run(clock=ManualClock(0))
        by_g.run(clock=ManualClock(0))
    assert sorted(sink.read()["k"]) == ["a", "b"] and sorted(other.read()["g"]) == ["x", "y"]


# --- SIGTERM: installed from the main thread, chained, restored ---------------------------------------
@pytest.fixture
def own_sigterm():
    """A Python SIGTERM handler for the test that records its calls; the original one comes back."""
    original = signal.getsignal(signal.SIGTERM)
    calls: list[int] = []
    called = threading.Event()

    def previous(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)
        called.set()

    signal.signal(signal.SIGTERM, previous)
    try:
        yield previous, calls, called
    finally:
        signal.signal(signal.SIGTERM, original)


def test_start_installs_a_sigterm_handler_and_the_last_stop_restores_the_previous(own_sigterm) -> None:
    previous, calls, _ = own_sigterm
    first = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0), paused=True)
    second = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0), paused=True)
    assert signal.getsignal(signal.SIGTERM) is _shutdown._on_sigterm
    first.stop()
    assert signal.getsignal(signal.SIGTERM) is _shutdown._on_sigterm  # one handle still lives
    second.stop()
    assert signal.getsignal(signal.SIGTERM) is previous and calls == []


def test_sigterm_stops_live_handles_then_calls_the_previous_handler(own_sigterm) -> None:
    previous, calls, called = own_sigterm
    sink = Rows()
    p = Pipeline(Counting(4))
    p.stream.to(sink)
    handle = p.start(clock=ManualClock(0), paused=True)
    os.kill(os.getpid(), signal.SIGTERM)  # our handler is installed: it runs in this (the main) thread
    assert called.wait(timeout=10)
    assert calls == [signal.SIGTERM] and not handle.thread.is_alive() and handle.status == "stopped"
    assert signal.getsignal(signal.SIGTERM) is previous  # restored: no handle lives


def test_sigterm_with_the_default_handler_before_exits_after_stopping() -> None:
    original = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        handle = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0), paused=True)
        with pytest.raises(SystemExit) as exited:
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(10)  # the handler raises out of this wait
        assert exited.value.code == 128 + signal.SIGTERM and not handle.thread.is_alive()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, original)


def test_start_from_another_thread_leaves_the_signal_handler_alone(own_sigterm) -> None:
    previous, _, _ = own_sigterm
    handles: list[Any] = []
    worker = threading.Thread(
        target=lambda: handles.append(Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0)))
    )
    worker.start()
    worker.join(timeout=30)
    assert handles and signal.getsignal(signal.SIGTERM) is previous
    assert handles[0].wait(timeout=30) is not None


def test_a_run_that_ended_unwaited_does_not_keep_the_next_run_from_its_handler(own_sigterm) -> None:
    """A run nobody waited for (a notebook's bounded replay) left ours marked installed; a handler set
    over it since (a library's, the user's) then kept the next run from ours: a SIGTERM killed that run
    without its flush and commit."""
    _, calls, _ = own_sigterm
    ended = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0))
    ended.thread.join(timeout=30)  # it ends by itself; nobody calls wait() or stop()
    assert not ended.thread.is_alive()

    def theirs(signum: int, frame: FrameType | None) -> None:
        calls.append(-signum)

    signal.signal(signal.SIGTERM, theirs)
    handle = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0), paused=True)
    assert signal.getsignal(signal.SIGTERM) is _shutdown._on_sigterm  # was `theirs`: the run uncovered
    handle.stop()
    assert signal.getsignal(signal.SIGTERM) is theirs and calls == []


def test_a_handler_that_chains_back_to_ours_is_called_once(own_sigterm) -> None:
    """Ours chains to a handler set over it that itself chains to ours: each runs once, no recursion."""
    _, calls, _ = own_sigterm
    first = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0))
    first.thread.join(timeout=30)
    ours = signal.getsignal(signal.SIGTERM)
    assert ours is _shutdown._on_sigterm

    def chaining(signum: int, frame: FrameType | None) -> None:
        calls.append(-signum)
        ours(signum, frame)  # type: ignore[operator]

    signal.signal(signal.SIGTERM, chaining)
    handle = Pipeline(Counting(4)).start(clock=ManualClock(0), paused=True)
    os.kill(os.getpid(), signal.SIGTERM)  # runs in this (the main) thread before kill returns
    assert calls == [-signal.SIGTERM] and not handle.thread.is_alive() and handle.status == "stopped"
    first.wait(timeout=30)


# --- the model does not load the runtime or the exporters ------------------------------------------------
def test_the_model_imports_neither_the_runtime_nor_the_exporters() -> None:
    code = (
        "import sys, streamlab, streamlab.pipeline, streamlab.steps, streamlab.spec\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['streamlab', 'runtime'], "
        "['streamlab', 'export'])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


# --- Pipeline forwards the main stream's methods with their own signatures --------------------------------
def test_pipeline_has_a_typed_delegator_for_every_public_stream_method() -> None:
    from streamlab.pipeline import Stream

    forwarded = {n for n in dir(Stream) if not n.startswith("_")} - {"pipeline", "ref", "run", "start"}
    for name in sorted(forwarded):
        mine, theirs = inspect.getattr_static(Pipeline, name), inspect.getattr_static(Stream, name)
        if isinstance(theirs, property):
            assert isinstance(mine, property), name
        else:
            assert inspect.signature(mine) == inspect.signature(theirs), name
            assert f"Stream.{name}" in (mine.__doc__ or ""), name
    p = Pipeline(ListSource([b'{"timestamp": 0}']))
    parsed = p.parse()
    assert parsed.ref == "parse" and p.step_id == "source" and parsed.dead_letter.ref == "parse.dead_letter"
    with pytest.raises(AttributeError):
        p.no_such_method  # noqa: B018 - nothing is forwarded by name any more
