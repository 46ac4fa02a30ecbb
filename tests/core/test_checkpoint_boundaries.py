"""Checkpoint and restore at batch boundaries, and stops cut short in a sink, equal an uninterrupted run.

Every stateful step at once (dedup, tumbling, sliding windows whose size is not a multiple of their
slide, sessions, every aggregator including a custom one, an interval join, a pattern), over keys of
mixed types, missing keys and category keys; resumed into the same pipeline built again or into one
read back from its ``to_yaml()``.
"""

from __future__ import annotations

import math
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import (
    ListSink,
    ListSource,
    ManualClock,
    Pipeline,
    ReplaySource,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    agg,
)
from streamlab.aggregators import Aggregator
from streamlab.io import Sink, SinkWriter

from ._streams import BASE

# the first run of each pair stops with open state and no checkpoint_dir, on purpose
pytestmark = pytest.mark.filterwarnings("ignore:pipeline 'pipeline' stopped with open state:RuntimeWarning")

KEYSETS: dict[str, list[Any]] = {
    "text": ["a", "b", "c"],
    "mixed": [1, "1", 1.0, True, None, math.nan, "a"],
    "ints": [1, 2, None],
    "category": ["a", "b", "c"],
}


def _sorted(values: tuple[float, ...]) -> tuple[float, ...]:
    """In one order whatever the input's: -0.0 before 0.0."""
    return tuple(sorted(values, key=lambda v: (v, math.copysign(1.0, v))))


class SortedValues(Aggregator):
    """A custom aggregator (commutative merge) that refuses one value (7.0): its rows go to the dead letter."""

    def __init__(self, column: str, refuse: float | None = 7.0) -> None:
        super().__init__(column, name=f"sorted_{column}")
        self.refuse = refuse

    def initial(self) -> tuple[float, ...]:
        return ()

    def add(self, state: tuple[float, ...], values: np.ndarray) -> tuple[float, ...]:
        if self.refuse is not None and any(v == self.refuse for v in values):
            raise ValueError("seven")
        return _sorted(state + tuple(float(v) for v in values if v == v))

    def merge(self, a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
        return _sorted(a + b)

    def result(self, state: tuple[float, ...]) -> str:
        return repr(state)


def builtin_aggs() -> list[Aggregator]:
    return [
        agg.count(),
        agg.sum("value"),
        agg.mean("value"),
        agg.min("value"),
        agg.max("value"),
        agg.count_distinct("label"),
        agg.first("label"),
        agg.last("label"),
        agg.quantile("value", 0.9),
    ]


@st.composite
def streams(draw: st.DrawFn, max_events: int = 30) -> pd.DataFrame:
    """Events with disorder, far-behind arrivals, repeated ids, missing values and hostile keys."""
    n = draw(st.integers(2, max_events))
    steps = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    back = draw(st.lists(st.sampled_from([0] * 6 + [3, 10, 40]), min_size=n, max_size=n))
    keyset = draw(st.sampled_from(sorted(KEYSETS)))
    keys = draw(st.lists(st.sampled_from(KEYSETS[keyset]), min_size=n, max_size=n))
    values = draw(st.lists(st.sampled_from([1.0, 2.5, -3.0, math.nan, 7.0, 0.0]), min_size=n, max_size=n))
    ids = draw(st.lists(st.integers(0, n), min_size=n, max_size=n))
    t = np.cumsum(steps) - np.asarray(back)
    key_column = (
        pd.Categorical(keys, categories=["c", "b", "a", "z"])
        if keyset == "category"
        else pd.Series(keys, dtype=object)
    )
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in ids],
            "key": key_column,
            "value": values,
            "label": [None if v != v else f"l{int(v) % 3}" for v in values],
            "kind": draw(st.lists(st.sampled_from(["buy", "view"]), min_size=n, max_size=n)),
            "timestamp": BASE + pd.to_timedelta(t - t.min(), unit="s"),
        }
    )


def build(
    source: Any, custom: bool = True, sink: type[Sink] | None = None
) -> tuple[Pipeline, dict[str, Any]]:
    """Every stateful step on one source; each output to its own sink (``sink`` wraps the window's)."""
    p = Pipeline(source)
    sinks: dict[str, Any] = {}

    def out(name: str, stream: Any) -> None:
        sinks[name] = ListSink()
        target = sinks[name] if sink is None or name != "tumbling" else sink(sinks[name])
        stream.to(target, step_id=f"to_{name}")

    d = p.stream.dedup(ttl="20s", max_ids=8)
    out("kept", d)
    out("dups", d.duplicates)
    windows = {
        "tumbling": TumblingWindow("10s", offset="3s"),
        "sliding": SlidingWindow("25s", every="10s"),
        "session": SessionWindow("8s"),
    }
    for name, window in windows.items():
        aggs = builtin_aggs() + ([SortedValues("value")] if custom else [])
        w = d.window(window, key="key", delay="4s", lateness="3s", step_id=f"w_{name}").agg(*aggs)
        out(name, w)
        out(f"{name}_late", w.late)
        out(f"{name}_dead", w.dead_letter)
    left = p.stream.filter("kind == 'buy'", step_id="buys")
    right = p.stream.filter("kind == 'view'", step_id="views")
    j = left.join_interval(right, on="key", lower="-5s", upper="5s", delay="6s")
    out("join", j)
    out("join_late", j.late)
    pattern = p.stream.pattern(
        "key", [("view", "kind == 'view'", 2), ("buy", "kind == 'buy'")], within="10s", delay="3s"
    )
    out("pattern", pattern)
    out("pattern_late", pattern.late)
    return p, sinks


def canon(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order, values compared with their types (``1`` and ``True`` are other keys)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    frame = frame.copy()
    for c in frame.columns:
        if not (pd.api.types.is_float_dtype(frame[c]) or pd.api.types.is_datetime64_any_dtype(frame[c])):
            frame[c] = [
                "<missing>" if v is None or v is pd.NA or (isinstance(v, float) and v != v) else repr(v)
                for v in frame[c].astype(object)
            ]
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def outputs(*runs: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Each sink's rows over the runs, in canonical order. The batches are read one by one: a window's
    key 1 alone in a batch is an int64 column, and ``ListSink.frame()`` would join it with a batch's
    float64 key 1.0 as 1.0 (or keep it 1 when a third batch holds True), whatever was restored."""
    got = {}
    for name in runs[0]:
        parts = [canon(b) for r in runs for b in r[name].batches if len(b)]
        got[name] = canon(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame()
    return got


def assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for name, frame in want.items():
        if frame.empty:
            assert got[name].empty, name
        else:
            pdt.assert_frame_equal(got[name], frame, check_dtype=False, obj=name)


def uninterrupted(frame: pd.DataFrame, bs: int) -> dict[str, pd.DataFrame]:
    p, sinks = build(ListSource(frame, batch_size=bs))
    p.run(clock=ManualClock(0), batch_size=bs)
    return outputs(sinks)


@settings(max_examples=12, deadline=None)
@given(streams(), st.integers(1, 8), st.data())
def test_a_restore_at_any_batch_boundary_equals_the_uninterrupted_run(frame, bs, data):
    want = uninterrupted(frame, bs)
    stop = data.draw(st.integers(1, max(1, (len(frame) - 1) // bs))) * bs
    p1, first = build(ListSource(frame, batch_size=bs))
    result = p1.run(clock=ManualClock(0), batch_size=bs, max_events=stop)
    p2, second = build(ListSource(frame, batch_size=bs))
    p2.run(clock=ManualClock(0), batch_size=bs, resume=pickle.loads(pickle.dumps(result.checkpoint)))
    assert_same(outputs(first, second), want)


@pytest.mark.parametrize("bs", [3, 7])
def test_a_restore_at_every_boundary_into_the_pipeline_read_back_from_its_yaml(tmp_path: Path, bs: int):
    frame, n = seeded_stream(), 24
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    p, sinks = build(ReplaySource(path), custom=False)
    p.run(clock=ManualClock(0), batch_size=bs)
    want = outputs(sinks)
    assert all(len(want[k]) for k in ("tumbling_late", "sliding", "session", "join", "pattern", "dups"))
    for stop in range(bs, n, bs):
        p1, first = build(ReplaySource(path), custom=False)
        result = p1.run(clock=ManualClock(0), batch_size=bs, max_events=stop)
        p2 = Pipeline.from_yaml(p1.to_yaml())
        second = {name: p2.steps[f"to_{name}"].sink for name in first}  # type: ignore[attr-defined]
        p2.run(clock=ManualClock(0), batch_size=bs, resume=pickle.loads(pickle.dumps(result.checkpoint)))
        assert_same(outputs(first, second), want)


def acting_at(
    write: int, before: Callable[[], None] | None = None, after: Callable[[], None] | None = None
) -> type[Sink]:
    """A sink wrapper whose ``write``-th ``write_batch`` calls ``before`` before writing and ``after``
    after it (raise an interrupt, send a signal)."""

    class Acting(Sink):
        def __init__(self, inner: ListSink) -> None:
            self.inner = inner

        def open(self, clock: Any = None) -> SinkWriter:
            writer = self.inner.open(clock)
            calls = [0]

            class W(SinkWriter):
                def write_batch(self, batch: pd.DataFrame) -> None:
                    calls[0] += 1
                    if calls[0] == write and before is not None:
                        before()
                    writer.write_batch(batch)
                    if calls[0] == write and after is not None:
                        after()

                def flush(self) -> None:
                    writer.flush()

            return W()

    return Acting


def _interrupt() -> None:
    raise KeyboardInterrupt


def interrupting_at(write: int) -> type[Sink]:
    """A sink wrapper whose ``write``-th ``write_batch`` raises KeyboardInterrupt before writing."""
    return acting_at(write, before=_interrupt)


@settings(max_examples=12, deadline=None)
@given(streams(), st.integers(1, 6), st.integers(1, 12), st.booleans())
def test_an_interrupt_in_a_sink_then_a_resume_equals_the_uninterrupted_run(frame, bs, write, on_disk):
    """A KeyboardInterrupt inside a window's sink (in a batch, or while the end of input emits the open
    windows): the run stops, and resuming its checkpoint gives each sink what it was missing. The
    window state of the in-memory checkpoint (``result.checkpoint``) was the live state, changed by
    the batches after it, and a cut end-of-input emission was committed as delivered: windows were
    lost either way."""
    want = uninterrupted(frame, bs)
    with tempfile.TemporaryDirectory() as cp:
        directory = cp if on_disk else None
        p1, first = build(ListSource(frame, batch_size=bs), sink=interrupting_at(write))
        result = p1.run(clock=ManualClock(0), batch_size=bs, commit_every="0s", checkpoint_dir=directory)
        p2, second = build(ListSource(frame, batch_size=bs))
        resume = None if on_disk else pickle.loads(pickle.dumps(result.checkpoint))
        p2.run(clock=ManualClock(0), batch_size=bs, resume=resume, checkpoint_dir=directory)
    got = outputs(first, second)
    if result.status == "finished":  # fewer writes than `write`: nothing was cut
        assert_same(outputs(first), want)
        return
    assert result.status == "interrupted"
    # the window's sink never got the batch it raised on: exactly the uninterrupted rows, once
    pdt.assert_frame_equal(got["tumbling"], want["tumbling"], check_dtype=False)
    for name, frame_ in want.items():  # the other sinks may get the cut batch twice: nothing is lost
        have = got[name].drop_duplicates() if len(got[name]) else got[name]
        wanted = frame_.drop_duplicates() if len(frame_) else frame_
        assert len(have) == len(wanted), name


def test_a_window_snapshot_is_not_changed_by_later_batches():
    from streamlab._windowing import WindowOperator

    op = WindowOperator(
        "w", TumblingWindow("10s"), ["key"], [agg.count(), agg.sum("value")], "timestamp", 0, 0
    )
    batch = pd.DataFrame({"key": ["a"], "value": [1.0], "timestamp": [BASE]})
    op.process(batch)
    before = pickle.dumps(op.snapshot())
    snap = op.snapshot()
    op.process(batch.assign(timestamp=BASE + pd.Timedelta(seconds=3)))
    op.process(batch.assign(key="b", timestamp=BASE + pd.Timedelta(seconds=30)))
    assert pickle.dumps(snap) == before


@pytest.mark.parametrize("on_disk", [False, True])
def test_an_interrupt_while_the_end_of_input_emits_the_windows_loses_none(tmp_path: Path, on_disk: bool):
    """The sink raised KeyboardInterrupt on the windows the end of input emitted: the stop then
    committed the steps' state as if the sink had them (windows emitted, state empty), so a resume
    emitted nothing; now the last checkpoint is kept, as for a batch cut short, and a resume emits them."""
    frame = pd.DataFrame(
        {"key": ["a", "b"] * 5, "timestamp": BASE + pd.to_timedelta(np.arange(10), unit="s")}
    )

    def build_(sink: Sink) -> Pipeline:
        p = Pipeline(ListSource(frame, batch_size=5))
        p.stream.window(TumblingWindow("1m"), key="key").agg(agg.count()).to(sink, step_id="out")
        return p

    cp = tmp_path / "cp" if on_disk else None
    first = ListSink()
    result = build_(interrupting_at(1)(first)).run(clock=ManualClock(0), commit_every="0s", checkpoint_dir=cp)
    assert result.status == "interrupted" and first.frame().empty
    second = ListSink()
    build_(second).run(clock=ManualClock(0), checkpoint_dir=cp, resume=None if on_disk else result.checkpoint)
    assert sorted(zip(second.frame()["key"], second.frame()["count"])) == [("a", 5), ("b", 5)]


def test_list_sink_batches_keep_the_key_types_its_frame_joins():
    """As docs/semantics.md says: keys 1 and 1.0 emitted in two batches are two keys in
    ``ListSink.batches`` (``frame()`` joins their int64 and float64 columns as float64)."""
    frame = pd.DataFrame(
        {
            "key": pd.Series([1, 1.0, 2], dtype=object),
            "timestamp": BASE + pd.to_timedelta([0, 10, 20], unit="s"),
        }
    )
    p = Pipeline(ListSource(frame, batch_size=1))
    sink = ListSink()
    p.stream.window(TumblingWindow("10s"), key="key").agg(agg.count()).to(sink)
    p.run(clock=ManualClock(0))
    typed = [(type(k).__name__, k) for b in sink.batches for k in b["key"].tolist()]
    assert typed == [("int", 1), ("float", 1.0), ("int", 2)]


def seeded_stream() -> pd.DataFrame:
    rng = np.random.default_rng(4)  # a stream giving every output rows, late ones included
    n = 24
    t = np.cumsum(rng.integers(0, 6, n)) - rng.choice([0] * 6 + [3, 10, 40], n)
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in rng.integers(0, n, n)],
            "key": rng.choice(["a", "b", "c"], n),
            "value": rng.choice([1.0, 2.5, -3.0, np.nan, 7.0], n),
            "label": rng.choice(["x", "y", "z"], n),
            "kind": rng.choice(["buy", "view"], n),
            "timestamp": BASE + pd.to_timedelta(t - t.min(), unit="s"),
        }
    )


def signalling_at(write: int) -> type[Sink]:
    """A sink wrapper that sends this process SIGTERM from inside its ``write``-th ``write_batch``."""
    import os
    import signal

    return acting_at(write, after=lambda: os.kill(os.getpid(), signal.SIGTERM))


@pytest.mark.parametrize("write", [1, 3, 5])
def test_a_sigterm_from_inside_a_sink_stops_at_the_batch_boundary_and_a_resume_completes_it(
    tmp_path: Path, write: int
):
    """run() turns the first SIGTERM into a stop at the next batch boundary: the batch the sink was
    writing is delivered everywhere, committed, and the resumed run gives each sink the rest."""
    frame = seeded_stream()
    want = uninterrupted(frame, 3)
    p1, first = build(ListSource(frame, batch_size=3), sink=signalling_at(write))
    result = p1.run(clock=ManualClock(0), batch_size=3, commit_every="1h", checkpoint_dir=tmp_path)
    assert result.status == "stopped" and result.metrics["events_in"] < len(frame)
    p2, second = build(ListSource(frame, batch_size=3))
    p2.run(clock=ManualClock(0), batch_size=3, checkpoint_dir=tmp_path)
    assert_same(outputs(first, second), want)


def test_a_background_stop_between_any_two_batches_then_a_resume_equals_the_uninterrupted_run(tmp_path: Path):
    from streamlab.runtime import start
    from streamlab.testing import wait_for

    frame = seeded_stream()
    want = uninterrupted(frame, 3)
    for k in range(1, len(frame) // 3):
        cp = tmp_path / f"cp{k}"
        p1, first = build(ListSource(frame, batch_size=3))
        handle = start(p1, clock=ManualClock(0), paused=True, checkpoint_dir=cp, batch_size=3)
        handle.step(k)
        wait_for(lambda h=handle, k=k: h.metrics["events_in"] == 3 * k, timeout=30, what=f"{k} batches")
        handle.stop()
        assert handle.wait(timeout=30) is not None
        p2, second = build(ListSource(frame, batch_size=3))
        p2.run(clock=ManualClock(0), batch_size=3, checkpoint_dir=cp)
        assert_same(outputs(first, second), want)
