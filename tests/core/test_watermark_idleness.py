"""Idle partitions: with ``idle_timeout`` a partition without events stops holding the watermark back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import (
    ListSink,
    ManualClock,
    Pipeline,
    PipelineConfigError,
    ReplaySource,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    agg,
)
from streamlab.spec import pipeline_from_dict, pipeline_to_dict

from ._streams import BASE, event_streams


class AssignedReplaySource(ReplaySource):
    """A real-time replay whose reader, like a Kafka consumer, is assigned ``partitions`` from the start.

    ``open_ended``: like a consumer, the reader never finishes; it waits for more after the last event.
    """

    def __init__(
        self, frame: pd.DataFrame, partitions: list[int], open_ended: bool = False, speed: float | None = 1.0
    ) -> None:
        super().__init__(frame, speed=speed)
        self.assigned = partitions
        self.open_ended = open_ended

    def open(self, resume=None, clock=None):  # type: ignore[no-untyped-def]
        reader = super().open(resume, clock)
        reader.partitions = lambda: list(self.assigned)  # type: ignore[method-assign]
        return _NeverDone(reader) if self.open_ended else reader


class _NeverDone:
    done = False

    def __init__(self, reader: object) -> None:
        self.reader = reader

    def __getattr__(self, name: str) -> object:
        return getattr(self.reader, name)


def events(times: list[int], parts: list[int]) -> pd.DataFrame:
    """Events in arrival order at ``times`` (seconds after BASE) from ``parts``."""
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(times))],
            "key": "k",
            "partition": parts,
            "timestamp": BASE + pd.to_timedelta(np.asarray(times), unit="s"),
        }
    )


def run_counts(
    frame: pd.DataFrame,
    partitions: list[int],
    idle_timeout: str | None,
    window: object = None,
    max_events: int | None = None,
    batch_size: int = 10,
    delay: str = "0s",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = Pipeline(AssignedReplaySource(frame, partitions))
    out = p.window(window or TumblingWindow("1m"), key="key", delay=delay, idle_timeout=idle_timeout).agg(
        agg.count()
    )
    results, late = ListSink(), ListSink()
    out.to(results)
    out.late.to(late)
    p.run(clock=ManualClock(0), max_events=max_events, batch_size=batch_size)
    return results.frame(), late.frame()


def test_partitions_that_never_send_stop_holding_windows_after_the_idle_timeout() -> None:
    # a 3-partition topic whose one key hashes to partition 0: partitions 1 and 2 stay empty
    frame = events(list(range(600)), [0] * 600)
    held, _ = run_counts(frame, [0, 1, 2], None, max_events=300)
    assert held.empty  # Flink's default too: empty partitions hold every window open
    results, late = run_counts(frame, [0, 1, 2], "30s", max_events=300)
    # 300 events = 5 minutes: the windows that ended by the watermark (299 s) are final
    assert list(results["window_end"]) == [BASE + pd.Timedelta(minutes=m) for m in (1, 2, 3, 4)]
    assert (results["count"] == 60).all() and late.empty
    # at the end of input both give every event exactly once
    for idle in (None, "30s"):
        full, late = run_counts(frame, [0, 1, 2], idle)
        assert full["count"].sum() == 600 and late.empty


def test_idle_timeouts_close_windows_while_no_data_arrives() -> None:
    # a burst of 100 s of events, all on partition 0 of 3, read at once; then the topic stays quiet
    frame = events(list(range(100)), [0] * 100)
    for idle, want in ((None, []), ("10s", [BASE + pd.Timedelta(minutes=1)])):
        p = Pipeline(AssignedReplaySource(frame, [0, 1, 2], open_ended=True, speed=None))
        out = p.window(TumblingWindow("1m"), key="key", idle_timeout=idle).agg(agg.count())
        results = ListSink()
        out.to(results)
        clock = ManualClock(0)
        result = p.run(clock=clock, duration="30s")
        assert result.status == "stopped" and clock.now_ns() >= 30 * 10**9
        got = results.frame()
        # all partitions are idle after 10 s: partition 0, heard from last, still holds the watermark
        assert (list(got["window_end"]) if len(got) else []) == want
        assert len(got) == 0 or (got["count"] == 60).all()


def test_a_partition_that_comes_back_counts_again_and_its_stale_events_are_late() -> None:
    # partition 1 sends for two minutes, falls silent, then at 400 s delivers 30 events stamped 120-149 s
    # (a producer that buffered them) and continues with current events
    times, parts = [], []
    for t in range(600):
        if t == 400:
            times += list(range(120, 150))
            parts += [1] * 30
        times.append(t)
        parts.append(0)
        if t < 120 or t >= 400:
            times.append(t)
            parts.append(1)
    frame = events(times, parts)
    results, late = run_counts(frame, [0, 1], "30s")
    assert len(late) == 30 and set(late["partition"]) == {1}  # nothing lost: the stale ones are on .late
    assert (late["timestamp"] < BASE + pd.Timedelta(seconds=150)).all()
    assert results["count"].sum() + len(late) == len(frame)
    # once back, partition 1 holds the watermark again: its current events are on time
    assert (
        not late["event_id"]
        .isin(frame["event_id"][frame["timestamp"] >= BASE + pd.Timedelta(seconds=400)])
        .any()
    )
    # without the timeout the silent partition holds every window: nothing is late, results come late
    waited, none_late = run_counts(frame, [0, 1], None)
    assert none_late.empty and waited["count"].sum() == len(frame)


def test_idleness_works_for_sliding_and_session_windows() -> None:
    steady = events(list(range(0, 600, 2)), [0] * 300)
    bursts = events([60 * k + j for k in range(10) for j in range(5)], [0] * 50)  # one session a minute
    for window, frame, n in (
        (SlidingWindow("2m", every="1m"), steady, 150),
        (SessionWindow("10s"), bursts, 30),
    ):
        held, _ = run_counts(frame, [0, 1], None, window=window, max_events=n)
        results, late = run_counts(frame, [0, 1], "20s", window=window, max_events=n)
        assert held.empty and len(results) > 0 and late.empty


def reference_idle(frame: pd.DataFrame, parts: list[int], size: int, delay: int, idle: int) -> list[bool]:
    """Per event (batches of one): is it late? The documented rule, spelled out.

    A replay at speed 1 releases each event when the clock passes the largest event time so far (a row
    dated at or after every later row with the next one that is not: ``ReplaySource.release_times``):
    that is its processing time. Every assigned partition is first heard of at the first event. Before
    each event, partitions idle for ``idle`` seconds stop holding the watermark (when all are idle,
    those heard from last still hold it); then the event moves its own partition's watermark.
    """
    ts = (frame["timestamp"] - BASE).dt.total_seconds().astype(int).to_numpy()
    now = (ReplaySource(frame).release_times() - BASE.value) // 10**9
    heard = dict.fromkeys(parts, int(now[0]))
    maxes: dict[int, int] = {}
    floor = None

    def advance(holders: list[int]) -> None:
        nonlocal floor
        if holders:
            wm = min(holders) - delay
            floor = wm if floor is None else max(floor, wm)

    out = []
    for t, q, n in zip(ts, frame["partition"], now):
        idle_now = {p for p, h in heard.items() if n - h >= idle}
        if idle_now and all(p in maxes or p in idle_now for p in parts):  # the timer, before the event
            holders = [m for p, m in maxes.items() if p not in idle_now]
            if not holders and maxes:
                latest = max(heard[p] for p in maxes)
                holders = [m for p, m in maxes.items() if heard[p] == latest]
            advance(holders)
        maxes[q] = max(maxes.get(q, t), t)
        if all(p in maxes or p in idle_now for p in parts):  # the event
            advance([m for p, m in maxes.items() if p == q or p not in idle_now])
        end = (t // size) * size + size
        out.append(floor is not None and end <= floor)
        heard[q] = int(n)
    return out


@settings(max_examples=100, deadline=None)
@given(
    event_streams(max_events=50),
    st.integers(1, 3),
    st.integers(1, 25),
    st.integers(0, 5),
    st.randoms(use_true_random=False),
)
def test_idle_watermarks_equal_their_reference(frame, n_parts, idle, delay, rnd) -> None:
    parts = list(range(n_parts))
    # long runs of one partition, so that others fall idle
    run_length = rnd.choice([1, 5, 20])
    frame = frame.assign(partition=[(i // run_length) % n_parts for i in range(len(frame))])
    frame = frame.drop(columns=["value", "label"])
    _, late = run_counts(
        frame, parts, f"{idle}s", window=TumblingWindow("10s"), batch_size=1, delay=f"{delay}s"
    )
    want = reference_idle(frame, parts, 10, delay, idle)
    got = sorted(late["event_id"]) if len(late) else []
    assert got == sorted(frame["event_id"][want])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"idle_timeout": "0s"}, "idle_timeout must be positive"),
        ({"idle_timeout": "soon"}, "idle_timeout"),
        ({"idle_timeout": "30s", "watermark_by": None}, "one watermark for the whole stream"),
    ],
)
def test_idle_timeout_configuration_errors_name_the_step(kwargs: dict, message: str) -> None:
    p = Pipeline(ReplaySource(events([0], [0])))
    with pytest.raises((PipelineConfigError, ValueError), match=message) as info:
        p.window(TumblingWindow("1m"), key="key", step_id="per_minute", **kwargs)
    assert "per_minute" in str(info.value)


def test_idle_timeout_survives_the_spec_round_trip(tmp_path) -> None:
    path = str(tmp_path / "events.parquet")
    events([0], [0]).to_parquet(path)
    p = Pipeline(ReplaySource(path))
    p.window(TumblingWindow("1m"), key="key", idle_timeout="45s").agg(agg.count())
    spec = pipeline_to_dict(p)
    assert spec["streaming"]["processing"][0]["idle_timeout"] == "45s"
    again = pipeline_from_dict(spec)
    assert again.steps["window"].idle_timeout_ns == 45 * 10**9
    assert again.steps["window"].watermark_by == ("partition",)
