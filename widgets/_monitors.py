"""Run monitors: throughput and lag gauges, late/dead-letter counters and the watermark debugger."""

from __future__ import annotations

import html
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from streamlab._time import NAT_NS, format_duration
from streamlab.clock import Clock
from streamlab.runtime import RunHandle, RunMetrics
from streamlab.steps import WindowStep

from ._base import LiveWidget, Metrics, _sampled_times_ns, plotly_times, require_plotly, require_widgets

__all__ = ["LagGauge", "LateDeadLetterCounter", "ThroughputGauge", "WatermarkDebugger"]


def _metrics_of(source: Metrics) -> RunMetrics:
    # a mapping given by the user is read as the metrics of a run (RunResult.metrics)
    return source.metrics if isinstance(source, RunHandle) else cast(RunMetrics, source)


def _check_metrics_source(source: Any, who: str) -> None:
    if not isinstance(source, (RunHandle, Mapping)):
        raise TypeError(
            f"{who}: pass a RunHandle (pipeline.start()) or a metrics dict (RunResult.metrics), "
            f"got {type(source).__name__}"
        )


class _MetricsWidget(LiveWidget):
    """Metrics read from the handle; the live view is light HTML (no plotly.js), ``figure()`` a plotly Indicator."""

    def __init__(self, source: Metrics, *, max_fps: float, clock: Clock | None, auto_refresh: bool) -> None:
        super().__init__(max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        _check_metrics_source(source, type(self).__name__)
        self.source = source
        self._seen: Any = None

    def readings(self) -> list[tuple[str, float, float | None]]:
        """What the view shows: (label, value, scale maximum or None for a plain counter)."""
        raise NotImplementedError

    def html(self) -> str:
        """The live view's HTML: one meter per reading."""
        cells = []
        for label, value, top in self.readings():
            bar = ""
            if top is not None:
                pct = 0.0 if top <= 0 else min(100.0, 100.0 * value / top)
                bar = (
                    "<div style='background:#e5e5e5;height:8px;border-radius:4px'>"
                    f"<div class='streamlab-bar' style='background:#4c78a8;height:8px;width:{pct:.1f}%;border-radius:4px'>"
                    "</div></div>"
                )
            cells.append(
                f"<div class='streamlab-gauge' style='min-width:150px;padding:4px 12px'>"
                f"<div style='color:#555'>{html.escape(label)}</div>"
                f"<div class='streamlab-value' style='font-size:26px'>{value:,.0f}</div>{bar}</div>"
            )
        return f"<div style='display:flex'>{''.join(cells)}</div>"

    def _make_view(self) -> Any:
        widgets = require_widgets()
        self._pull()
        return widgets.HTML(value=self.html())

    def _redraw(self) -> None:
        self._view.value = self.html()

    def _key(self, m: RunMetrics) -> Any:
        raise NotImplementedError

    def _pull(self) -> bool:
        m = _metrics_of(self.source)
        key = self._key(m)
        if key == self._seen:
            return False
        self._seen = key
        self._take(m)
        return True

    def _take(self, m: RunMetrics) -> None:
        raise NotImplementedError


class ThroughputGauge(_MetricsWidget):
    """Events per second read by the pipeline, measured between refreshes on ``clock``.

    Parameters
    ----------
    source
        A running pipeline, or a metrics dict (then the run's average ``events_per_s`` is shown).
    max_fps, clock, auto_refresh
        Redraw limit, the clock used for the rate and the limit, and whether display starts a refresher.

    Examples
    --------
    >>> gauge = ThroughputGauge({"events_in": 5000, "events_per_s": 2500.0})
    >>> gauge.rate
    2500.0
    """

    def __init__(
        self,
        source: Metrics,
        *,
        title: str = "throughput (events/s)",
        max_fps: float = 10.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(source, max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        self.title = title
        self.rate = 0.0
        self.peak = 0.0
        self._last: tuple[int, int] | None = None
        self._pull()

    def _key(self, m: RunMetrics) -> Any:
        return (m.get("events_in"), self.clock.now_ns())

    def _take(self, m: RunMetrics) -> None:
        now, events = self.clock.now_ns(), int(m.get("events_in") or 0)
        if self._last is None or not isinstance(self.source, RunHandle):
            self.rate = float(m.get("events_per_s") or 0.0)
        elif now > self._last[0]:
            self.rate = (events - self._last[1]) / ((now - self._last[0]) / 1e9)
        self._last = (now, events)
        self.peak = max(self.peak, self.rate)

    def readings(self) -> list[tuple[str, float, float | None]]:
        return [(self.title, self.rate, max(self.peak * 1.2, 1.0))]

    def _init_figure(self, fig: Any) -> None:
        go = require_plotly()
        fig.add_trace(go.Indicator(mode="gauge+number", value=0, title={"text": self.title}))
        fig.update_layout(height=220, margin={"l": 30, "r": 30, "t": 50, "b": 10})

    def _traces(self) -> list[dict[str, Any]]:
        return [{"value": round(self.rate, 1), "gauge": {"axis": {"range": [0, max(self.peak * 1.2, 1.0)]}}}]


class LagGauge(_MetricsWidget):
    """How far the sources are behind (``metrics["lag"]``: records not yet read, per the source).

    Examples
    --------
    >>> LagGauge({"lag": 42}).lag
    42
    """

    def __init__(
        self,
        source: Metrics,
        *,
        title: str = "lag (records behind)",
        max_fps: float = 10.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(source, max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        self.title = title
        self.lag: int | None = None
        self.peak = 0
        self._pull()

    def _key(self, m: RunMetrics) -> Any:
        return m.get("lag")

    def _take(self, m: RunMetrics) -> None:
        self.lag = m.get("lag")
        self.peak = max(self.peak, int(self.lag or 0))

    def readings(self) -> list[tuple[str, float, float | None]]:
        return [(self.title, float(self.lag or 0), max(self.peak * 1.2, 1.0))]

    def _init_figure(self, fig: Any) -> None:
        go = require_plotly()
        fig.add_trace(go.Indicator(mode="gauge+number", value=0, title={"text": self.title}))
        fig.update_layout(height=220, margin={"l": 30, "r": 30, "t": 50, "b": 10})

    def _traces(self) -> list[dict[str, Any]]:
        gauge = {"axis": {"range": [0, max(self.peak * 1.2, 1.0)]}, "bar": {"color": "darkorange"}}
        return [{"value": self.lag or 0, "gauge": gauge}]


class LateDeadLetterCounter(_MetricsWidget):
    """Counters for late events, dead letters and duplicates so far.

    Examples
    --------
    >>> LateDeadLetterCounter({"late": 3, "dead_letter": 1, "duplicates": 0}).counts
    {'late': 3, 'dead_letter': 1, 'duplicates': 0}
    """

    NAMES: tuple[Literal["late", "dead_letter", "duplicates"], ...] = ("late", "dead_letter", "duplicates")

    def __init__(
        self,
        source: Metrics,
        *,
        max_fps: float = 10.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(source, max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        self.counts: dict[str, int] = dict.fromkeys(self.NAMES, 0)
        self._pull()

    def _key(self, m: RunMetrics) -> Any:
        return tuple(m.get(n, 0) for n in self.NAMES)

    def _take(self, m: RunMetrics) -> None:
        self.counts = {n: int(m.get(n) or 0) for n in self.NAMES}

    def readings(self) -> list[tuple[str, float, float | None]]:
        return [(name.replace("_", " "), float(self.counts[name]), None) for name in self.NAMES]

    def _init_figure(self, fig: Any) -> None:
        go = require_plotly()
        for i, name in enumerate(self.NAMES):
            fig.add_trace(
                go.Indicator(
                    mode="number",
                    value=0,
                    title={"text": name.replace("_", " ")},
                    domain={"x": [i / 3, (i + 1) / 3 - 0.02], "y": [0, 1]},
                )
            )
        fig.update_layout(height=160, margin={"l": 10, "r": 10, "t": 40, "b": 10})

    def _traces(self) -> list[dict[str, Any]]:
        return [{"value": self.counts[name]} for name in self.NAMES]


class _PointRing:
    """Thread-safe, bounded (processing time, event times) chunks: the pipeline appends, the widget drains."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self._chunks: deque[np.ndarray] = deque()
        self._n = 0
        self._lock = threading.Lock()

    def append(self, proc_ns: int, event_ns: np.ndarray) -> None:
        if not len(event_ns):
            return
        chunk = np.empty((len(event_ns), 2), dtype=np.int64)
        chunk[:, 0] = proc_ns
        chunk[:, 1] = event_ns
        with self._lock:
            self._chunks.append(chunk)
            self._n += len(chunk)
            while self._n - len(self._chunks[0]) >= self.max_points:
                self._n -= len(self._chunks.popleft())

    def drain(self) -> np.ndarray | None:
        with self._lock:
            if not self._chunks:
                return None
            chunks = list(self._chunks)
            self._chunks.clear()
            self._n = 0
        return np.concatenate(chunks)[-self.max_points :]


def _plotly_time(ts: pd.Timestamp) -> str:
    # Shape coordinates travel as JSON; plotly.js parses this text form on a date axis.
    return str(np.datetime_as_string(np.datetime64(ts.value, "ns"), unit="ms"))


def _sample_ns(values: np.ndarray, budget: int) -> np.ndarray:
    values = values[values != NAT_NS]
    if len(values) > budget:
        values = values[np.linspace(0, len(values) - 1, budget).astype(np.int64)]
    return values


class WatermarkDebugger(LiveWidget):
    """Event time against processing time, with the watermark, open windows and late events.

    Each dot is an event as it reached the window step: x is when it arrived (processing time), y its
    event time. The step line is the step's watermark; shaded bands are the windows still open (they
    close when the watermark passes their end plus the allowed lateness); red crosses are late events,
    below the watermark when they arrived. This is where out-of-order data and ``delay=`` make sense.

    Parameters
    ----------
    handle
        The running pipeline.
    step
        Step id of the window step to debug (the only window step by default).
    max_points
        Most event dots kept (an even sample of each batch beyond the budget).
    max_bands
        Most open windows drawn (the newest).

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
    >>> df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=90, freq="s", tz="UTC")})
    >>> p = Pipeline(ReplaySource(df, batch_size=30), name="wm")
    >>> _ = p.window(TumblingWindow("1m")).agg(agg.count())
    >>> handle = p.start(clock=ManualClock("2030-01-01"), paused=True)
    >>> dbg = WatermarkDebugger(handle)  # subscribe before any event flows
    >>> handle.resume()
    >>> handle.wait(timeout=30).metrics["events_in"]
    90
    >>> dbg.refresh(force=True), dbg.state()["events"], str(dbg.watermark)
    (True, 90, '2024-01-01 00:01:29+00:00')
    >>> dbg.close()
    """

    def __init__(
        self,
        handle: RunHandle,
        step: str | None = None,
        *,
        time: str | None = None,
        max_points: int = 2000,
        max_bands: int = 12,
        per_batch: int = 200,
        max_fps: float = 10.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        if not isinstance(handle, RunHandle):
            raise TypeError(
                "WatermarkDebugger needs a running pipeline: pass handle = pipeline.start(...), "
                f"got {type(handle).__name__}"
            )
        steps = handle.pipeline.steps
        windows = [sid for sid, s in steps.items() if isinstance(s, WindowStep)]
        if step is None:
            if len(windows) != 1:
                raise ValueError(
                    f"WatermarkDebugger: the pipeline has {len(windows)} window steps {windows}; "
                    "pass step='<window step id>'"
                )
            step = windows[0]
        if step not in steps or not isinstance(steps[step], WindowStep):
            raise ValueError(
                f"WatermarkDebugger(step={step!r}): not a window step; window steps are {windows}"
            )
        wstep = cast(WindowStep, steps[step])
        self.source = handle
        self.step = step
        self.time = time or wstep.time
        self.delay = format_duration(wstep.delay_ns)
        self.max_points, self.max_bands, self.per_batch = max_points, max_bands, per_batch
        self._events = _PointRing(max_points)
        self._late = _PointRing(max_points)
        self._ev = np.empty((2, 0), dtype=np.float64)  # rows: arrival, event time (epoch ms, as plotted)
        self._lt = self._ev
        self._wm: deque[tuple[int, int]] = deque(maxlen=max_points)
        self._wm_xy: tuple[np.ndarray, np.ndarray] | None = None  # the watermark line, as plotted
        self._open: list[tuple[pd.Timestamp, pd.Timestamp]] = []
        self._bands: list[dict[str, Any]] = []  # the open windows, as drawn
        self.late_total = 0
        self.watermark: pd.Timestamp | None = None
        self._replaying = False
        self._unsubscribe.append(handle.subscribe(wstep.inputs[0], self._on(self._events)))
        # late events from before this widget count in late_total; their arrival time is unknown, so
        # they are not plotted
        self._replaying = True
        try:
            self._unsubscribe.append(handle.subscribe(f"{step}.late", self._on(self._late), replay=True))
        finally:
            self._replaying = False

    def _on(self, ring: _PointRing) -> Any:
        clock = self.source.clock

        def append(frame: pd.DataFrame) -> None:
            if self._replaying:
                self.late_total += len(frame)
                return
            try:
                col = frame[self.time]
            except KeyError:  # an output without the time column: nothing to plot
                return
            ring.append(clock.now_ns(), _sample_ns(_sampled_times_ns(col, self.per_batch), self.per_batch))
            if ring is self._late:
                self.late_total += len(frame)

        return append

    def _pull(self) -> bool:
        changed = False
        for name, ring in (("_ev", self._events), ("_lt", self._late)):
            new = ring.drain()
            if new is not None:
                # converted to what is plotted once, as they come, not on every redraw
                ms = plotly_times(new.ravel()).reshape(-1, 2).T
                setattr(self, name, np.concatenate([getattr(self, name), ms], axis=1)[:, -self.max_points :])
                changed = True
        wm, state = self.source.step_state(self.step)  # this step only: the runtime's lock, briefly
        if wm is not None and wm != self.watermark:
            self.watermark = wm
            self._wm.append((self.source.clock.now_ns(), wm.value))
            self._wm_xy = None
            changed = True
        opened = list(state.get("open_windows", []))[-self.max_bands :]
        if opened != self._open:
            self._open = opened
            self._bands = [
                {
                    "type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "layer": "below",
                    "y0": _plotly_time(s), "y1": _plotly_time(e),
                    "fillcolor": "rgba(255,165,0,0.15)", "line": {"width": 1, "color": "rgba(255,165,0,0.6)"},
                }
                for s, e in opened
            ]  # fmt: skip
            changed = True
        return changed

    def state(self) -> dict[str, Any]:
        """What is drawn: event and late dot counts, watermark, open windows."""
        self._pull()
        return {
            "events": self._ev.shape[1],
            "late": self._lt.shape[1],
            "late_total": self.late_total,
            "watermark": self.watermark,
            "watermark_points": len(self._wm),
            "open_windows": list(self._open),
        }

    def _init_figure(self, fig: Any) -> None:
        go = require_plotly()
        fig.add_trace(
            go.Scatter(
                name="events",
                mode="markers",
                marker={"size": 4, "color": "#4c78a8", "opacity": 0.6},
                x=[],
                y=[],
            )
        )
        fig.add_trace(
            go.Scatter(
                name="late events",
                mode="markers",
                marker={"size": 9, "color": "red", "symbol": "x"},
                x=[],
                y=[],
            )
        )
        fig.add_trace(
            go.Scatter(
                name="watermark", mode="lines", line={"shape": "hv", "color": "black", "width": 2}, x=[], y=[]
            )
        )
        fig.update_layout(
            title=f"watermark debugger: {self.step} (delay {self.delay})",
            xaxis={"title": {"text": "processing time (arrival)"}, "type": "date"},
            yaxis={"title": {"text": "event time"}, "type": "date"},
            height=380,
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
            legend={"orientation": "h", "y": -0.2},
        )

    def _traces(self) -> list[dict[str, Any]]:
        if self._wm_xy is None:
            wm = np.array(self._wm, dtype="int64").reshape(-1, 2)
            self._wm_xy = (plotly_times(wm[:, 0]), plotly_times(wm[:, 1]))
        return [
            {"x": self._ev[0], "y": self._ev[1]},
            {"x": self._lt[0], "y": self._lt[1]},
            {"x": self._wm_xy[0], "y": self._wm_xy[1]},
        ]

    def _layout_update(self) -> dict[str, Any]:
        wm_text = self.watermark.strftime("%H:%M:%S") if self.watermark is not None else "-"
        title = (
            f"watermark {wm_text} · {len(self._open)} open windows · {self.late_total} late "
            f"(step {self.step}, delay {self.delay})"
        )
        return {"shapes": self._bands, "title": {"text": title}}
