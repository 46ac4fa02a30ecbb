"""A window after a union of several sources keeps one watermark per source, the smallest being the
step's (as Flink and Beam hold a merged stream's): how the runtime interleaves the sources' batches no
longer decides which events are late."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ManualClock, Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.sources import ListSource

from ._streams import BASE

WINDOWS = {
    "tumbling": TumblingWindow("10s"),
    "sliding": SlidingWindow("20s", "10s"),
    "session": SessionWindow("7s"),
}


def frame(seconds: list[int], source: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": [BASE + pd.Timedelta(seconds=s) for s in seconds],
            "key": [f"k{s % 3}" for s in seconds],
            "value": [float(s) for s in seconds],
            "source": source,
        }
    )


def run(a: pd.DataFrame, b: pd.DataFrame, window: str, batch_a: int, batch_b: int) -> dict[str, pd.DataFrame]:
    p = Pipeline()
    first = p.add_source(ListSource(a, batch_size=batch_a), step_id="a")
    other = p.add_source(ListSource(b, batch_size=batch_b), step_id="b")
    first.union(other).window(WINDOWS[window], key="key").agg(agg.count(), agg.sum("value"))
    result = p.run(clock=ManualClock(0))
    return {name: result[name] for name in ("window", "window.late")}


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) == 0:
        return df.reset_index(drop=True)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_in_order_sources_have_no_late_events_whatever_the_batch_sizes(window: str) -> None:
    # source a holds the first minutes, b the same minutes: read in batches of 100, the runtime hands
    # the window all of a before any of b; one largest event time made b's events late (all but the
    # last window's)
    a = frame(list(range(0, 120, 2)), "a")
    b = frame(list(range(1, 120, 2)), "b")
    reference = run(a, b, window, 1, 1)
    assert len(reference["window.late"]) == 0
    assert reference["window"]["count"].sum() >= 120
    for batch_a, batch_b in [(100, 100), (7, 3), (1, 100), (100, 1)]:
        got = run(a, b, window, batch_a, batch_b)
        assert len(got["window.late"]) == 0, (batch_a, batch_b)
        pd.testing.assert_frame_equal(canonical(got["window"]), canonical(reference["window"]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=40),
    st.lists(st.integers(0, 9), min_size=1, max_size=40),
    st.sampled_from(sorted(WINDOWS)),
    st.integers(1, 50),
    st.integers(1, 50),
)
def test_window_after_union_does_not_depend_on_batch_sizes(
    gaps_a: list[int], gaps_b: list[int], window: str, batch_a: int, batch_b: int
) -> None:
    """Each source in time order (random gaps, ties): the same windows for any cut of either, none late."""
    a = frame(np.cumsum(gaps_a).tolist(), "a")
    b = frame(np.cumsum(gaps_b).tolist(), "b")
    reference = run(a, b, window, 1, 1)
    got = run(a, b, window, batch_a, batch_b)
    assert len(reference["window.late"]) == 0 and len(got["window.late"]) == 0
    pd.testing.assert_frame_equal(canonical(got["window"]), canonical(reference["window"]))
    assert got["window"]["count"].sum() >= len(a) + len(b)


def test_an_ended_source_stops_holding_the_watermark() -> None:
    # a ends after its one event at 0 s; b's event at 50 s after its 200 s is then late by b's own
    # watermark (a finished source holds nothing back, as a bounded source's final watermark in Flink)
    a = frame([0], "a")
    b = frame([100, 200, 50], "b")
    got = run(a, b, "tumbling", 1, 1)
    assert got["window.late"]["value"].tolist() == [50.0]
    assert got["window"]["count"].sum() == 3


def test_a_source_that_has_not_started_holds_the_watermark() -> None:
    # b's first batch arrives after a's whole stream: a's events, far ahead, do not make b's late
    a = frame([100, 200, 300], "a")
    b = frame([1, 2, 3], "b")
    got = run(a, b, "tumbling", 100, 100)
    assert len(got["window.late"]) == 0
    assert got["window"]["count"].sum() == 6


def test_a_union_of_one_source_split_in_two_keeps_one_watermark() -> None:
    # both sides come from one source: the step keeps the stream's one watermark (and the union passes
    # their rows in arrival order: tests/core/test_union_arrival_order.py)
    events = frame([0, 30, 5], "a")
    p = Pipeline(ListSource(events, batch_size=1))
    big = p.stream.filter("value >= 10", step_id="big")
    big.union(p.stream.filter("value < 10", step_id="small")).window(TumblingWindow("10s"), key="key").agg(
        agg.count()
    )
    result = p.run(clock=ManualClock(0))
    assert result["window.late"]["value"].tolist() == [5.0]


class _SilentSource(ListSource):
    """A source that never delivers and never ends (a subscription nobody publishes to)."""

    def open(self, resume=None, clock=None):  # type: ignore[no-untyped-def]
        return _Silent(super().open(resume, clock))


class _Silent:
    done = False

    def __init__(self, reader: object) -> None:
        self.reader = reader

    def poll(self, n: int) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        return getattr(self.reader, name)


@pytest.mark.filterwarnings("ignore:pipeline .* stopped with open state")
@pytest.mark.parametrize(("idle", "want"), [(None, []), ("10s", [BASE + pd.Timedelta(minutes=1)])])
def test_a_silent_source_holds_the_windows_until_its_idle_timeout(idle: str | None, want: list) -> None:
    from streamlab import ListSink

    p = Pipeline()
    busy = p.add_source(ListSource(frame(list(range(100)), "a")), step_id="a")
    silent = p.add_source(_SilentSource(frame([], "b")), step_id="b")
    results = ListSink()
    busy.union(silent).window(TumblingWindow("1m"), key="source", idle_timeout=idle).agg(agg.count()).to(
        results
    )
    clock = ManualClock(0)
    result = p.run(clock=clock, duration="30s")
    assert result.status == "stopped"
    got = results.frame()
    assert (list(got["window_end"]) if len(got) else []) == want
    assert len(got) == 0 or got["count"].tolist() == [60]


def test_idle_timeout_needs_partitions_or_several_sources() -> None:
    from streamlab import PipelineConfigError

    p = Pipeline(ListSource(frame([0], "a")))
    with pytest.raises(PipelineConfigError, match="one watermark for the whole stream"):
        p.window(TumblingWindow("1m"), key="key", idle_timeout="10s", step_id="w").agg(agg.count())


@pytest.mark.filterwarnings("ignore:pipeline .* stopped with open state")
@pytest.mark.parametrize("stop_after", [1, 5, 33, 70])
def test_a_run_stopped_and_resumed_gives_the_uninterrupted_windows(stop_after: int) -> None:
    # the per-source watermarks are part of the checkpoint: resumed, nothing becomes late that was not
    a = frame(list(range(0, 120, 2)), "a")
    b = frame(list(range(1, 120, 2)), "b")

    def pipeline() -> Pipeline:
        p = Pipeline()
        first = p.add_source(ListSource(a, batch_size=7), step_id="a")
        other = p.add_source(ListSource(b, batch_size=3), step_id="b")
        first.union(other).window(TumblingWindow("10s"), key="key").agg(agg.count(), agg.sum("value"))
        return p

    whole = pipeline().run(clock=ManualClock(0))
    part = pipeline().run(clock=ManualClock(0), max_events=stop_after)
    rest = pipeline().run(clock=ManualClock(0), resume=part.checkpoint)
    got = pd.concat([f for f in (part["window"], rest["window"]) if len(f)], ignore_index=True)
    assert len(part["window.late"]) == 0 and len(rest["window.late"]) == 0
    pd.testing.assert_frame_equal(canonical(got), canonical(whole["window"]))


def joined(a: pd.DataFrame, b: pd.DataFrame, batch_a: int, batch_b: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = Pipeline()
    left = p.add_source(ListSource(a.rename(columns={"value": "left"}), batch_size=batch_a), step_id="a")
    right = p.add_source(ListSource(b.rename(columns={"value": "right"}), batch_size=batch_b), step_id="b")
    left.join_interval(right, "key", lower="-5s", upper="5s", step_id="join")
    result = p.run(clock=ManualClock(0))
    return result["join"], result["join.late"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=40),
    st.lists(st.integers(0, 9), min_size=1, max_size=40),
    st.integers(1, 50),
    st.integers(1, 50),
)
def test_interval_join_of_two_sources_does_not_depend_on_batch_sizes(
    gaps_a: list[int], gaps_b: list[int], batch_a: int, batch_b: int
) -> None:
    """The join already holds the smaller of its two sides' watermarks: sides in time order pair alike
    however the runtime interleaves them, and nothing is late."""
    a = frame(np.cumsum(gaps_a).tolist(), "a")
    b = frame(np.cumsum(gaps_b).tolist(), "b")
    reference, ref_late = joined(a, b, 1, 1)
    got, late = joined(a, b, batch_a, batch_b)
    assert len(ref_late) == 0 and len(late) == 0
    pd.testing.assert_frame_equal(canonical(got), canonical(reference))
