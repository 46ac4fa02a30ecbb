"""Widget state driven by real pipelines on a ManualClock: figure data, point budgets, throttling, cleanup."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.widgets import (
    AnomalyChart,
    ControlPanel,
    Dashboard,
    FrameBuffer,
    LagGauge,
    LateDeadLetterCounter,
    LiveTable,
    PipelineDiagram,
    Refresher,
    ThroughputGauge,
    WatermarkDebugger,
    WindowChart,
    show,
)
from streamlab.widgets._monitors import _sampled_times_ns

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._time import NAT_NS, to_utc_ns
from streamlab.testing import wait_for

BASE = pd.Timestamp("2024-03-01T09:00:00Z")
START = "2030-01-01T00:00:00Z"


def events(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Events 50 ms apart, up to 3 s out of order, with every 100th event 40 s late."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 50 - rng.integers(0, 3000, n)
    t[::100] -= 40_000
    t[0] = 0
    return pd.DataFrame(
        {
            "event_type": rng.choice(["click", "view", "buy"], n, p=[0.3, 0.6, 0.1]),
            "timestamp": BASE + pd.to_timedelta(t, unit="ms"),
            "score": rng.random(n),
        }
    )


def window_pipeline(frame: pd.DataFrame, batch_size: int = 250) -> Pipeline:
    # speed=None: a ManualClock run is then exact; processing time moves only when a test advances it.
    p = Pipeline(ReplaySource(frame, speed=None, batch_size=batch_size), name="clicks")
    p.window(TumblingWindow("10s"), key="event_type", delay="5s").agg(agg.count())
    return p


def step(handle, clock: ManualClock, n: int = 1, advance: str = "1s") -> None:
    for _ in range(n):
        before = handle.metrics["batches"]
        clock.advance(advance)
        handle.step()
        wait_for(lambda b=before: handle.metrics["batches"] > b or handle.status != "paused")


def as_json(obj) -> str:
    from plotly.utils import PlotlyJSONEncoder

    return json.dumps(obj, cls=PlotlyJSONEncoder, sort_keys=True)


def streamlab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamlab")]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def paused(clock):
    handle = window_pipeline(events()).start(clock=clock, paused=True)
    yield handle
    if handle.thread.is_alive():
        handle.stop()


# -- buffers and the refresher ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    max_rows=st.integers(1, 30),
)
def test_frame_buffer_keeps_the_newest_rows_within_budget(sizes, max_rows):
    buf = FrameBuffer(max_rows)
    frames, start = [], 0
    for n in sizes:
        frames.append(pd.DataFrame({"x": np.arange(start, start + n)}))
        start += n
        buf.append(frames[-1])
        assert len(buf) < 2 * max_rows + 40  # bounded however much arrives
    out = buf.drain()
    everything = np.arange(start)
    if start == 0:
        assert out is None
    else:
        assert out["x"].tolist() == everything[-max_rows:].tolist()
        assert buf.dropped == start - len(out)
    assert buf.drain() is None


def test_frame_buffer_sample_mode_spans_a_huge_batch():
    buf = FrameBuffer(100, keep="sample")
    buf.append(pd.DataFrame({"x": np.arange(1_000_000)}))
    out = buf.drain()
    assert len(out) == 100
    assert out["x"].iloc[0] == 0 and out["x"].iloc[-1] == 999_999
    with pytest.raises(ValueError, match="keep"):
        FrameBuffer(10, keep="oldest")


def test_frame_buffer_selects_columns_when_drained_not_when_appended():
    buf = FrameBuffer(10, columns=["b", "a", "missing"])
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    buf.append(frame)
    assert buf._frames[0] is frame  # the pipeline thread only keeps a reference (copy-on-write frame)
    buf.append(frame.assign(a=[7, 8]))
    out = buf.drain()
    assert list(out.columns) == ["b", "a"] and out["a"].tolist() == [1, 2, 7, 8]


@pytest.mark.parametrize(
    "times",
    [
        pd.Series(pd.date_range("2024-01-01", periods=500, freq="s", tz="UTC", unit="ns")),
        pd.Series(pd.date_range("2024-01-01", periods=500, freq="s", tz="Europe/Berlin", unit="us")),
        pd.Series(pd.date_range("2024-01-01", periods=500, freq="s", unit="ms")),  # naive: taken as UTC
        pd.Series(pd.to_datetime(["2024-01-01", None] * 250, utc=True).as_unit("us")),  # NaT
        pd.Series([f"2024-01-01T00:00:{i % 60:02d}Z" for i in range(500)]),  # text: the general path
    ],
)
def test_watermark_debugger_samples_event_times_like_to_utc_ns(times):
    got = _sampled_times_ns(times, 200)
    rows = np.linspace(0, len(times) - 1, 200).astype(np.int64)
    assert got.dtype == np.int64 and got.tolist() == to_utc_ns(times.iloc[rows]).tolist()
    assert (_sampled_times_ns(times.head(50), 200) == to_utc_ns(times.head(50))).all()  # under budget: all
    assert (got == NAT_NS).any() == times.isna().any()


def test_times_are_plotted_as_epoch_milliseconds_on_date_axes(clock):
    frame = events(300).assign(is_anomaly=False)
    chart = AnomalyChart(frame, clock=clock, auto_refresh=False)
    fig = chart.figure()
    assert fig.layout.xaxis.type == "date"
    x = fig.data[0].x
    assert x.dtype == np.float64  # one binary buffer to the browser, not a list of strings
    assert pd.to_datetime(x, unit="ms", utc=True).tolist() == frame["timestamp"].dt.floor("ms").tolist()
    x[0] = 0.0  # a figure holds copies: writing into one leaves the chart's state alone
    assert chart.figure().data[0].x[0] != 0.0


def test_refresher_holds_its_rate_on_fixed_deadlines():
    clock = ManualClock(START)
    stamps: list[int] = []
    refresher = Refresher(lambda: None, max_fps=10, clock=clock, mode="thread")

    def tick() -> None:
        stamps.append(clock.now_ns())
        if len(stamps) == 25:
            refresher.stop()

    refresher.callback = tick
    refresher.start()
    wait_for(lambda: not refresher.running)
    gaps = np.diff(stamps)
    assert len(stamps) == 25
    assert set(gaps.tolist()) == {100_000_000}  # exactly max_fps ticks per second of clock time
    assert streamlab_threads() == []


def test_refresher_spaces_ticks_to_its_cpu_share_but_never_below_min_fps():
    clock = ManualClock(START)
    cpu = [0.0]
    cost = [0.004]  # CPU seconds each tick takes, as the fake thread clock reports it
    stamps: list[int] = []
    refresher = Refresher(
        lambda: None, max_fps=10, min_fps=5, cpu_share=0.05, clock=clock, mode="thread",
        cpu_clock=lambda: cpu[0],
    )  # fmt: skip

    def tick() -> None:
        stamps.append(clock.now_ns())
        cpu[0] += cost[0]
        if len(stamps) == 10:
            cost[0] = 0.040  # ticks got expensive: 40 ms would be 40% of a core at 10/s
        if len(stamps) == 30:
            cost[0] = 0.001  # cheap again
        if len(stamps) == 50:
            refresher.stop()

    refresher.callback = tick
    refresher.start()
    wait_for(lambda: not refresher.running)
    gaps = np.diff(stamps) / 1e9
    assert np.allclose(gaps[:9], 0.1)  # 4 ms at 10/s is 4% of a core: within the share, full rate
    assert np.allclose(gaps[20:29], 0.2)  # expensive: slowed, but held at min_fps (not 0.8 s apart)
    assert np.allclose(gaps[-5:], 0.1)  # back to max_fps once ticks are cheap
    assert refresher.fps == 10
    with pytest.raises(ValueError, match="min_fps"):
        Refresher(lambda: None, max_fps=10, min_fps=20)
    with pytest.raises(ValueError, match="cpu_share"):
        Refresher(lambda: None, cpu_share=0)
    assert streamlab_threads() == []


def test_refresher_runs_as_a_task_on_a_running_loop_and_stops():
    ticks: list[int] = []

    async def kernel_like() -> tuple[bool, bool, int]:
        refresher = Refresher(lambda: ticks.append(1), max_fps=100).start()
        as_task = refresher._task is not None
        deadline = asyncio.get_running_loop().time() + 30  # it ticks on real time: bound the wait
        while len(ticks) < 5:
            assert asyncio.get_running_loop().time() < deadline, f"{len(ticks)} of 5 ticks in 30 s"
            await asyncio.sleep(0.005)
        refresher.stop()
        n = len(ticks)
        await asyncio.sleep(0.05)
        return as_task, refresher.running, len(ticks) - n

    as_task, running, after_stop = asyncio.run(kernel_like())
    assert as_task and not running and after_stop == 0
    assert streamlab_threads() == []


def test_refresher_survives_a_failing_callback():
    def boom() -> None:
        raise RuntimeError("bad")

    r = Refresher(boom, max_fps=10, clock=ManualClock(0))
    assert r.tick_once() is False and r.errors == 1
    with pytest.raises(ValueError, match="max_fps"):
        Refresher(boom, max_fps=0)


# -- WindowChart -------------------------------------------------------------------------------------
def test_window_chart_matches_the_batch_result(clock):
    frame = events()
    expected = window_pipeline(frame).run(clock=ManualClock(START))["window"]
    handle = window_pipeline(frame).start(clock=clock, paused=True)  # subscribed before the first batch
    chart = WindowChart(handle, "window", value="count", key="event_type", max_windows=1000, clock=clock)
    handle.resume()
    handle.wait(30)
    assert chart.refresh() is True
    series = chart.series()
    assert sorted(series) == ["buy", "click", "view"]
    for key, s in series.items():
        want = expected[expected["event_type"] == key].set_index("window_start")["count"].sort_index()
        assert s.to_dict() == want.to_dict()
    fig = chart.figure()
    assert {t.name: len(t.x) for t in fig.data} == {k: len(v) for k, v in series.items()}
    chart.close()
    assert handle.pipeline and not handle._ex.subscribers["window"]


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 25), st.integers(0, 50)),
        min_size=1,
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    max_windows=st.integers(1, 10),
    max_keys=st.integers(1, 4),
)
def test_window_chart_pulled_in_pieces_equals_a_pandas_recomputation(rows, cuts, max_windows, max_keys):
    # results out of order, windows re-emitted with new values (early results, lateness), in any pieces
    frame = pd.DataFrame(rows, columns=["k", "w", "count"])
    frame["window_start"] = BASE + pd.to_timedelta(frame["w"] * 10, unit="s")
    chart = WindowChart(
        frame.iloc[:0], value="count", key="k", max_windows=max_windows, max_keys=max_keys, auto_refresh=False
    )
    for lo, hi in zip([0, *sorted(cuts)], [*sorted(cuts), len(frame)]):
        if hi > lo:
            chart._buffer.append(frame.iloc[lo:hi])
            chart.refresh(force=True)
    last = frame.drop_duplicates(["k", "window_start"], keep="last")
    kept = last[last["window_start"].isin(sorted(last["window_start"].unique())[-max_windows:])]
    totals = kept.groupby("k")["count"].sum()
    drawn = chart.series()
    assert len(drawn) == min(max_keys, len(totals))
    assert min(totals[list(drawn)]) >= max(totals.drop(list(drawn)), default=-1)  # the largest totals
    for key, series in drawn.items():
        want = kept[kept["k"] == key].set_index("window_start")["count"].sort_index()
        assert series.tolist() == want.astype(float).tolist()
        assert series.index.equals(pd.DatetimeIndex(want.index, name="window_start"))


def test_window_chart_point_and_trace_budgets(clock, paused):
    chart = WindowChart(
        paused, value="count", key="event_type", max_windows=3, max_keys=2, clock=clock, auto_refresh=False
    )
    step(paused, clock, 12)
    chart.refresh(force=True)
    view = shown(chart)  # the figure the live view shows (no kernel needed)
    assert 1 <= len(view.data) <= 3  # traces are created as keys appear
    drawn = [t for t in view.data if len(t.x)]
    assert len(drawn) == 2
    assert all(len(t.x) <= 3 for t in view.data)
    assert chart.series().keys() == {t.name for t in drawn}
    chart.close()


def test_refresh_is_throttled_on_the_widget_clock(clock, paused):
    chart = WindowChart(paused, value="count", key="event_type", max_fps=10, clock=clock, auto_refresh=False)
    _ = chart.widget
    step(paused, clock, 6)
    assert chart.refresh() is True
    step(paused, clock, 6, advance="10ms")
    assert chart.refresh() is False  # 60 ms after the last redraw: over the 10 fps budget
    clock.advance("40ms")
    assert chart.refresh() is True
    assert chart.refresh(force=True) is False  # nothing new: no redraw even when forced
    assert chart.redraws == 2
    chart.close()


def view_state(view) -> dict:
    """The state a view created now (page reload, Voila) starts from: the kernel's reply to request_state."""
    from ipywidgets.widgets.widget import _put_buffers

    sent = []
    view._send = lambda msg, buffers=None: sent.append((msg, buffers))
    try:
        view._handle_msg({"content": {"data": {"method": "request_state"}}, "buffers": []})
    finally:
        del view._send
    ((msg, buffers),) = sent
    state = msg["state"]
    _put_buffers(state, msg["buffer_paths"], buffers)
    return state


def decoded(obj):
    """A view's figure with its binary arrays ({__ndarray__, data}) turned back into lists."""
    if isinstance(obj, dict) and "__ndarray__" in obj:
        return np.frombuffer(obj["data"], dtype=obj["__ndarray__"]).tolist()
    if isinstance(obj, dict):
        return {k: decoded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [decoded(v) for v in obj]
    return obj


def plain(obj):
    """A plotly figure dict with numpy arrays as lists (what a view decodes)."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def shown(chart):
    """What the chart's live view draws now, as a plotly figure (built from the view's synced state)."""
    import plotly.graph_objects as go

    state = decoded(chart.widget.figure)
    return go.Figure(
        {"data": state["data"], "layout": {**state["layout"], "template": chart.widget.template}}
    )


def sent_messages(view) -> list:
    """Record what the view's model sends to the browser (a list filled as messages go out)."""
    sent = []
    view._send = lambda msg, buffers=None: sent.append(msg)
    return sent


def test_a_view_created_later_gets_the_current_figure(clock, paused):
    chart = WindowChart(paused, value="count", key="event_type", clock=clock, auto_refresh=False)
    view = chart.widget

    def current():
        # the view shows exactly the chart's static figure
        fig = chart.figure()
        layout = {k: v for k, v in fig._layout.items() if k != "template"}  # sent once, on its own
        return plain({"data": fig._data, "layout": layout})

    first = current()
    assert view.template == plain(chart.figure()._layout["template"]) != {}
    for _ in range(3):
        step(paused, clock, 3, advance="100ms")
        assert chart.refresh(force=True) is True
        # The state a new view (page reload, Voila, a second display) starts from is the current figure.
        state = decoded(view_state(view)["figure"])
        assert {"data": state["data"], "layout": state["layout"]} == current() != first
        assert "windows" in state["layout"]["title"]["text"]
        assert state["layout"]["xaxis"]["type"] == "date"  # dates on every update, not epoch numbers
    drawn = sum(len(t["x"]) for t in state["data"])
    assert drawn == sum(len(s) for s in chart.series().values()) > 0


def test_every_redraw_sends_the_whole_figure_so_a_missed_one_is_repaired(clock, paused):
    chart = WindowChart(paused, value="count", key="event_type", clock=clock, auto_refresh=False)
    view = chart.widget
    sent = sent_messages(view)
    step(paused, clock, 3, advance="100ms")
    assert chart.refresh(force=True) is True
    step(paused, clock, 3, advance="100ms")
    assert chart.refresh(force=True) is True
    assert len(sent) == 2 and all(set(m["state"]) == {"figure"} for m in sent)
    # A view that saw only the last message (the first was lost) shows exactly the current figure.
    last = sent[-1]
    from ipywidgets.widgets.widget import _put_buffers

    assert last["buffer_paths"]  # arrays travel as binary buffers, not JSON lists
    state = decoded(view.get_state()["figure"])
    assert state["rev"] == view.rev == 3
    assert [t["name"] for t in state["data"]] == sorted(chart.series())
    assert sum(len(t["x"]) for t in state["data"]) == sum(len(s) for s in chart.series().values())
    assert callable(_put_buffers)
    chart.close()


def test_a_redraw_without_changes_sends_nothing(clock):
    frame = events(600).assign(is_anomaly=False)
    chart = AnomalyChart(frame, threshold=0.5, clock=clock, auto_refresh=False)
    view = chart.widget
    sent = sent_messages(view)
    chart.set_threshold(0.5)  # same threshold: redrawn, but nothing on screen changes...
    assert chart.refresh(force=True) is True
    assert sent == []  # ...so nothing is sent
    chart.set_threshold(0.7)  # the threshold line moves
    assert chart.refresh(force=True) is True
    assert len(sent) == 1
    fig = shown(chart)
    assert fig.layout.shapes[0].y0 == 0.7 and len(fig.layout.shapes) == 1
    chart.set_threshold(None)  # the line goes: fewer shapes
    assert chart.refresh(force=True) is True
    assert shown(chart).layout.shapes == ()
    chart.close()


def test_keys_and_values_with_a_lone_surrogate_are_drawn(clock):
    # a key or value holding "\ud800" (read from JSON, built by a user function): the table's text failed
    # (pandas' Arrow-backed text cannot hold it) and any message naming it failed to send (the kernel
    # packs messages as UTF-8), so the view kept its last figure on every redraw; shown escaped now
    from jupyter_client.session import Session

    frame = events(600).assign(event_type=lambda f: f["event_type"].astype(object))
    frame.loc[frame["event_type"] == "buy", "event_type"] = "b\ud800y"
    handle = window_pipeline(frame).start(clock=clock, paused=True)
    table = LiveTable(
        handle, "window", rows=5, columns=["event_type", "count"], clock=clock, auto_refresh=False
    )
    chart = WindowChart(
        handle, "window", value="count", key="event_type", max_windows=1000, clock=clock, auto_refresh=False
    )
    sent = [sent_messages(table.widget), sent_messages(chart.widget)]
    handle.resume()
    handle.wait(30)
    for widget, messages in zip((table, chart), sent):
        assert widget.refresh(force=True) is True
        assert messages
        for msg in messages:
            Session().pack(msg)  # raised UnicodeEncodeError for such text
    assert "b\\ud800y" in shown(table).data[0].cells.values[0]
    assert "b\\ud800y" in {t.name for t in shown(chart).data}
    from streamlab.widgets._figure import _encode  # text in arrays too (hover texts, categories)

    assert _encode({"text": np.array(["b\ud800y", "é"], dtype=object)}) == {"text": ["b\\ud800y", "é"]}
    times = np.array(["2024-01-01T00:00:00"], dtype="datetime64[ms]")
    assert _encode({"x": times}) == {"x": times.tolist()}
    table.close()
    chart.close()


def test_the_view_counts_views_that_rendered_it():
    chart = LiveTable(pd.DataFrame({"x": [1, 2]}), auto_refresh=False)
    view = chart.widget
    assert view.rendered == 0
    view._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"event": "rendered", "rev": 1}}}, "buffers": []}
    )
    assert view.rendered == 1
    chart.close()


def test_window_chart_validates_columns(paused):
    with pytest.raises(ValueError, match=r"no column\(s\) \['amount'\]"):
        WindowChart(paused, value="amount", key="event_type")
    with pytest.raises(ValueError, match="kind"):
        WindowChart(pd.DataFrame({"window_start": [], "count": []}), kind="bars")
    with pytest.raises(TypeError, match="RunHandle"):
        WindowChart([1, 2], value="count")  # type: ignore[arg-type]


# -- AnomalyChart, LiveTable ----------------------------------------------------------------------------
def test_anomaly_chart_threshold_refilters_without_restart(clock):
    frame = events(2000).assign(is_anomaly=lambda d: d["score"] > 0.95)
    p = Pipeline(ReplaySource(frame, speed=None, batch_size=300), name="scores")
    p.select("timestamp", "score", "is_anomaly", step_id="detect")
    handle = p.start(clock=clock, paused=True)  # subscribed before the first batch
    chart = AnomalyChart(handle, "detect", max_points=500, clock=clock, auto_refresh=False)
    _ = chart.widget
    handle.resume()
    handle.wait(30)
    chart.refresh(force=True)
    fig = shown(chart)
    tail = frame.iloc[-500:]
    assert len(fig.data[0].x) == 500
    assert len(fig.data[1].x) == int(tail["is_anomaly"].sum())
    chart.set_threshold(0.5)
    clock.advance("1s")
    assert chart.refresh() is True
    fig = shown(chart)
    assert len(fig.data[1].x) == int((tail["score"] >= 0.5).sum())
    assert fig.layout.shapes[0].y0 == 0.5
    assert "threshold 0.5" in fig.layout.title.text
    chart.close()
    handle.stop()


def test_live_table_shows_the_newest_rows(clock):
    frame = events(1000)
    handle = window_pipeline(frame).start(clock=clock, paused=True)  # subscribed before the first batch
    table = LiveTable(handle, "window", rows=5, columns=["event_type", "window_start", "count"], clock=clock)
    handle.resume()
    handle.wait(30)
    shown = table.frame()
    result = handle.outputs["window"]
    assert shown.reset_index(drop=True).equals(
        result[["event_type", "window_start", "count"]].tail(5).reset_index(drop=True)
    )
    fig = table.figure()
    assert list(fig.data[0].header.values) == ["event_type", "window_start", "count"]
    assert len(fig.data[0].cells.values[0]) == 5
    table.close()


def test_widgets_created_after_the_results_show_them(clock):
    frame = events(1000)
    handle = window_pipeline(frame).start(clock=clock)
    handle.wait(30)  # finished before any widget exists
    result = handle.outputs["window"]
    table = LiveTable(handle, "window", rows=5, columns=["event_type", "window_start", "count"], clock=clock)
    chart = WindowChart(handle, "window", value="count", key="event_type", max_windows=1000, clock=clock)
    table.refresh(force=True)
    chart.refresh(force=True)
    want = result[["event_type", "window_start", "count"]].tail(5).reset_index(drop=True)
    assert table.frame().reset_index(drop=True).equals(want)
    assert sum(len(s) for s in chart.series().values()) == len(result)
    table.close()
    chart.close()


def test_charts_made_mid_run_or_after_it_show_what_a_sink_already_got(clock):
    """An output with a sink is not collected; a view made late still replays what the run produced."""
    p = Pipeline(ReplaySource(events(), speed=None, batch_size=250), name="clicks")
    sink = ListSink()
    p.window(TumblingWindow("10s"), key="event_type", delay="5s").agg(agg.count()).to(sink)
    handle = p.start(clock=clock, paused=True)
    try:
        step(handle, clock, 6)
        got = len(sink.frame())
        assert got > 0
        mid = show(handle, "window", clock=clock, auto_refresh=False)
        mid.refresh(force=True)
        assert sum(len(s) for s in mid.series().values()) == got
        handle.resume()
        handle.wait(30)
    finally:
        handle.stop()
    after = WindowChart(handle, "window", value="count", key="event_type", clock=clock, auto_refresh=False)
    for chart in (mid, after):
        chart.refresh(force=True)
        assert sum(len(s) for s in chart.series().values()) == len(sink.frame()) > got
        chart.close()


# -- gauges and counters -----------------------------------------------------------------------------
def test_gauges_and_counters_follow_metrics(clock, paused):
    gauge = ThroughputGauge(paused, clock=clock)
    lag = LagGauge(paused, clock=clock)
    counter = LateDeadLetterCounter(paused, clock=clock)
    step(paused, clock, 4, advance="0s")
    clock.advance("2s")
    assert gauge.refresh(force=True)
    assert gauge.rate == pytest.approx(4 * 250 / 2.0)  # 1000 events in 2 s of clock time
    lag.refresh(force=True)
    assert lag.lag == 3000 - 1000
    paused.resume()
    paused.wait(30)
    counter.refresh(force=True)
    m = paused.metrics
    assert counter.counts == {
        "late": m["late"],
        "dead_letter": m["dead_letter"],
        "duplicates": m["duplicates"],
    }
    assert counter.counts["late"] > 0
    fig = counter.figure()
    assert [t.value for t in fig.data] == [m["late"], m["dead_letter"], m["duplicates"]]
    assert ThroughputGauge({"events_in": 10, "events_per_s": 5.0}).figure().data[0].value == 5.0
    for w in (gauge, lag, counter):
        w.close()


# -- WatermarkDebugger --------------------------------------------------------------------------------
def test_watermark_debugger_tracks_watermark_open_windows_and_late_events(clock, paused):
    dbg = WatermarkDebugger(paused, clock=clock, auto_refresh=False)
    _ = dbg.widget
    seen_wm = []
    for _ in range(12):
        step(paused, clock)
        dbg.refresh(force=True)
        seen_wm.append(dbg.watermark)
    fig = shown(dbg)
    state = dbg.state()
    m = paused.metrics
    assert state["watermark"] == m["watermarks"]["window"]
    assert seen_wm == sorted(seen_wm)  # the watermark never goes back
    assert state["late_total"] == m["late"] > 0
    assert len(fig.data[1].x) == state["late"]  # late crosses drawn
    # Every late event is below the watermark line at the time it arrived.
    late_event_times = pd.to_datetime(fig.data[1].y, unit="ms")  # plotted as epoch ms on a date axis
    assert late_event_times.min() >= BASE.tz_localize(None) - pd.Timedelta("1min")
    assert (late_event_times < state["watermark"].tz_localize(None)).all()
    open_windows = paused.open_state["window"]["open_windows"]
    bands = [(pd.Timestamp(b.y0), pd.Timestamp(b.y1)) for b in fig.layout.shapes]
    assert bands == [(a.tz_localize(None), b.tz_localize(None)) for a, b in open_windows[-12:]]
    assert len(bands) > 0
    assert len(fig.data[0].x) <= 2000
    assert f"{len(open_windows[-12:])} open windows" in fig.layout.title.text
    dbg.close()


def test_a_watermark_debugger_made_late_counts_earlier_late_events_without_plotting_them(clock, paused):
    for _ in range(8):
        step(paused, clock)
    before = paused.metrics["late"]
    assert before > 0
    dbg = WatermarkDebugger(paused, clock=clock, auto_refresh=False)
    _ = dbg.widget
    dbg.refresh(force=True)
    fig = shown(dbg)
    assert dbg.state()["late_total"] == before and len(fig.data[1].x) == 0  # arrival times unknown
    for _ in range(4):
        step(paused, clock)
    dbg.refresh(force=True)
    assert dbg.state()["late_total"] == paused.metrics["late"] > before
    dbg.close()


def test_watermark_debugger_needs_a_window_step(clock):
    p = Pipeline(ReplaySource(events(10)), name="plain")
    p.select("timestamp")
    handle = p.start(clock=clock, paused=True)
    try:
        with pytest.raises(ValueError, match="window step"):
            WatermarkDebugger(handle)
    finally:
        handle.stop()


# -- diagram, controls, dashboard -----------------------------------------------------------------------
def test_pipeline_diagram_counts_rows_per_edge(clock):
    handle = window_pipeline(events(1000)).start(clock=clock)
    diagram = PipelineDiagram(handle, auto_refresh=False)
    handle.wait(30)
    diagram.refresh(force=True)
    m = handle.metrics["steps"]
    edges = {(e["from"], e["to"]): e["rows"] for e in diagram.layout()["edges"]}
    assert edges[("source", "window")] == m["source"]["out"]["out"] == 1000
    assert edges[("window", "window.late")] == m["window"]["out"]["late"]
    assert ("window", "window.early") not in edges  # early results are off
    svg = diagram.svg()
    assert svg.startswith("<svg") and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert f"{m['window']['out']['late']:,}" in svg
    view = diagram.widget
    assert view.value == svg
    assert len(diagram.figure().layout.shapes) == len(diagram.layout()["nodes"]) + len(edges)
    diagram.close()


def test_control_panel_buttons_drive_the_pipeline(clock):
    seen: list[tuple[str, float]] = []
    handle = window_pipeline(events()).start(clock=clock, paused=True)
    panel = ControlPanel(
        handle, params={"threshold": (0.0, 1.0, 0.5)}, on_param=lambda n, v: seen.append((n, v))
    )
    controls = panel.controls
    controls["step"].click()
    wait_for(lambda: handle.metrics["batches"] == 1)
    controls["speed"].value = "10x"
    assert handle._ex.readers["source"].speed == 10.0
    controls["speed"].value = "max"
    controls["param:threshold"].value = 0.8
    assert seen == [("threshold", 0.8)]
    controls["play"].click()
    wait_for(lambda: handle.status in ("finished", "stopped"))
    panel.refresh(force=True)
    assert "3,000 events" in controls["status"].value
    controls["stop"].click()
    assert not handle.thread.is_alive()
    with pytest.raises(ValueError, match="on_param"):
        ControlPanel(handle, params={"x": (0, 1, 0.5)})
    with pytest.raises(ValueError, match="min <= initial <= max"):
        ControlPanel(handle, params={"x": (0, 1, 2)}, on_param=print)
    panel.close()


def test_dashboard_drives_children_and_close_leaves_nothing_behind(clock, tmp_path):
    handle = window_pipeline(events()).start(clock=clock, paused=True)
    chart = WindowChart(handle, value="count", key="event_type", clock=clock)
    dash = Dashboard(handle, [chart], stop_pipeline=True)
    names = [type(c).__name__ for c in dash.children]
    assert names == [
        "ControlPanel", "ThroughputGauge", "LagGauge", "LateDeadLetterCounter", "WindowChart",
        "WatermarkDebugger", "PipelineDiagram",
    ]  # fmt: skip
    view = dash.widget
    assert dash.refresher.running and all(c.refresher is None for c in dash.children)
    assert "streamlab-dashboard" in view._dom_classes
    # the refresher ticks on the wall clock; stopped here, so the changes below are left for refresh()
    dash.refresher.stop()
    step(handle, clock, 5)
    assert dash.refresh() >= 4
    dash.to_html(tmp_path / "dash.html")
    page = (tmp_path / "dash.html").read_text()
    assert page.count("<script") >= 1 and '<script src="http' not in page and "<svg" in page
    dash.close()
    assert not dash.refresher.running
    assert not handle.thread.is_alive()
    # every widget's subscription is gone; what is left is the run's own input recorder (to_test)
    left = [f for subs in handle._ex.subscribers.values() for f in subs]
    assert all("InputTape" in getattr(f, "__qualname__", "") for f in left), left
    assert streamlab_threads() == []


def test_dashboard_stop_refresh_keeps_the_final_view(clock):
    handle = window_pipeline(events()).start(clock=clock, paused=True)
    dash = Dashboard(handle, [WindowChart(handle, value="count", key="event_type", clock=clock)])
    view = dash.widget
    step(handle, clock, 5)
    dash.refresh()
    shown = dash.charts[0].figure().data
    dash.stop_refresh()
    assert not dash.refresher.running and not dash.closed
    assert view.comm is not None and all(c.widget.comm is not None for c in dash.charts)  # still on screen
    assert [list(t.x) for t in dash.charts[0].figure().data] == [list(t.x) for t in shown]
    assert streamlab_threads() == [handle.thread]  # only the (paused) pipeline thread is left
    dash.close()
    handle.stop()
    assert view.comm is None and streamlab_threads() == []


def test_a_closed_chart_or_dashboard_displays_as_a_note_and_its_widget_says_it_was_closed(clock):
    """Displayed again after close(), a view shows text saying so, as a closed ipywidget does (it raised a
    TypeError); ``.widget`` raises a clear error instead of handing back the dead view."""
    handle = window_pipeline(events(500)).start(clock=clock, paused=True)
    shown = WindowChart(handle, value="count", key="event_type", clock=clock, auto_refresh=False)
    never_shown = LiveTable(handle, "window", clock=clock, auto_refresh=False)
    dash = Dashboard(handle, [WindowChart(handle, value="count", key="event_type", clock=clock)])
    panel = ControlPanel(handle)
    for view in (shown, dash, panel):
        bundle = view._repr_mimebundle_()  # anywidget's is (data, metadata)
        assert "application/vnd.jupyter.widget-view+json" in (
            bundle[0] if isinstance(bundle, tuple) else bundle
        )
    for view in (shown, never_shown, dash, panel):
        view.close()
        name = type(view).__name__
        note = view._repr_mimebundle_()
        assert list(note) == ["text/plain"]
        assert (
            f"this {name} was closed" in note["text/plain"] and f"{name}(handle, ...)" in note["text/plain"]
        )
        with pytest.raises(RuntimeError, match=f"this {name} was closed: .* Make a new one"):
            _ = view.widget
    handle.stop()


def test_static_figures_outside_a_notebook(tmp_path):
    df = pd.DataFrame(
        {
            "window_start": pd.date_range("2024-01-01", periods=5, freq="min", tz="UTC").repeat(2),
            "event_type": ["a", "b"] * 5,
            "count": np.arange(10),
        }
    )
    chart = WindowChart(df, value="count", key="event_type", kind="area")
    fig = chart.figure()
    assert [t.stackgroup for t in fig.data] == ["one", "one"]
    chart.to_html(tmp_path / "chart.html")
    text = (tmp_path / "chart.html").read_text()
    assert "plotly" in text and '<script src="http' not in text
    assert chart._view is None and chart.refresher is None  # no live view, no refresher


def test_import_does_not_load_plotly_or_ipywidgets():
    code = (
        "import sys\n"
        "for name in ('plotly', 'ipywidgets', 'anywidget'):\n"
        "    sys.modules[name] = None\n"
        "import pandas as pd\n"
        "import streamlab.widgets as w\n"
        "print(w.LiveTable(pd.DataFrame({'x': [1, 2]}), rows=1).frame()['x'].tolist())\n"
        "try:\n"
        "    w.LiveTable(pd.DataFrame({'x': [1]})).widget\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )
    assert out.stdout.splitlines()[0] == "[2]"
    assert "pip install 'streamlab[notebook]'" in out.stdout


# -- one-call preview and threshold sliders -------------------------------------------------------------
def scored_events(n: int = 2000) -> Pipeline:
    from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector

    frame = events(n).rename(columns={"score": "x"})
    p = Pipeline(ReplaySource(frame, speed=None, batch_size=100), name="scores")
    p.stream.detect(
        GaussianScorerDetector(grace_period=5),
        features=["x"],
        threshold=FixedThresholdFilter(0.99),
        step_id="detect",
    )
    return p


def test_show_picks_a_bounded_live_view_per_kind_of_output(clock):
    handle = window_pipeline(events(1000)).start(clock=clock, paused=True)
    chart = handle.show("window", clock=clock, auto_refresh=False)
    assert isinstance(chart, WindowChart) and (chart.value, chart.key) == ("count", "event_type")
    late = handle.show("window.late", rows=4, clock=clock, auto_refresh=False)
    assert isinstance(late, LiveTable) and late.rows == 4
    with pytest.raises(ValueError, match=r"no such output; outputs are \['source', 'window'"):
        handle.show("windw")
    handle.resume()
    handle.wait(30)
    chart.refresh(force=True)
    assert sum(len(s) for s in chart.series().values()) == len(handle.outputs["window"])
    assert len(late.frame()) == min(4, len(handle.outputs["window.late"]))
    scored = scored_events().start(clock=clock)
    spikes = scored.show("detect", auto_refresh=False)
    assert isinstance(spikes, AnomalyChart) and spikes.flag == "is_anomaly"
    scored.wait(30)
    assert spikes.flagged_count() == int(scored.outputs["detect"]["is_anomaly"].tail(2000).sum())
    for w in (chart, late, spikes):
        w.close()


def test_stream_show_starts_the_pipeline_and_follows_that_stream():
    p = Pipeline(ReplaySource(events(500), speed=None, batch_size=250), name="clicks")
    windows = p.window(TumblingWindow("10s"), key="event_type", delay="5s").agg(agg.count())
    table = windows.late.show(rows=3, auto_refresh=False)
    assert isinstance(table, LiveTable) and table.ref == "window.late" and table.rows == 3
    table.source.wait(30)
    table.close()


def test_threshold_slider_moves_the_running_detect_step(clock):
    handle = scored_events().start(clock=clock, paused=True)
    panel = ControlPanel(handle, thresholds={"detect": (0.5, 0.9999)})
    slider = panel.controls["threshold:detect"]
    assert (slider.value, slider.min, slider.max) == (0.99, 0.5, 0.9999)
    assert "streamlab-threshold-detect" in slider._dom_classes
    handle.step(10)
    wait_for(lambda: handle.metrics["events_in"] == 1000)
    slider.value = 0.6  # what the browser does when the reader drags it
    assert handle.thresholds == {"detect": 0.6}
    handle.resume()
    out = handle.wait(30)["detect"]
    assert out["is_anomaly"].iloc[:1000].equals(out["score"].iloc[:1000] > 0.99)
    assert out["is_anomaly"].iloc[1000:].equals(out["score"].iloc[1000:] > 0.6)
    with pytest.raises(ValueError, match="outside the range"):
        ControlPanel(handle, thresholds={"detect": (0.0, 0.5)})
    with pytest.raises(ValueError, match=r"no detect step 'score'"):
        Dashboard(handle, thresholds={"score": (0.0, 1.0)})
    panel.close()


def test_anomaly_chart_reports_alerts_per_second_on_its_clock(clock):
    frame = events(1000).assign(is_anomaly=lambda d: d["score"] > 0.9)
    p = Pipeline(ReplaySource(frame, speed=None, batch_size=100), name="scores")
    p.select("timestamp", "score", "is_anomaly", step_id="detect")
    handle = p.start(clock=clock, paused=True)
    chart = AnomalyChart(handle, "detect", clock=clock, auto_refresh=False)
    for _ in range(4):
        step(handle, clock, 1, advance="0s")
        clock.advance("1s")
        chart.refresh(force=True)
    rate, share = chart.alert_rate()
    flagged = frame["is_anomaly"].iloc[100:400].sum()  # the three batches after the first pull
    assert rate == pytest.approx(flagged / 3.0) and share == pytest.approx(flagged / 300)
    assert "alerts/s" in shown(chart).layout.title.text
    chart.close()
    handle.stop()


def test_window_chart_keys_are_told_apart_by_value_and_type_and_missing_keys_are_one() -> None:
    """As window steps key: ``1`` and ``"1"`` are two keys (their values were merged under the text
    '1', one hidden), the text ``"None"`` is not the missing key, and None, NaN and ``pd.NA`` are the one
    missing key ``None`` (NaN was a trace of its own)."""
    starts = pd.to_datetime(["2024-01-01 00:00"] * 3 + ["2024-01-01 00:01"] * 3, utc=True)
    keys = pd.Series([1, "1", None, float("nan"), "None", pd.NA], dtype=object)
    frame = pd.DataFrame({"window_start": starts, "count": [1, 2, 3, 4, 5, 6], "k": keys})
    series = {name: s.tolist() for name, s in WindowChart(frame, key="k").series().items()}
    assert series == {"1": [1.0], "'1'": [2.0], "None": [3.0, 6.0], "'None'": [5.0]}
    # ...where NaN's window (00:01) holds the missing key's later value: the last row of a window wins
    assert WindowChart(frame, key="k").series()["None"].index[-1] == starts[3]
