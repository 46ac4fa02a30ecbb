"""Run controls and the dashboard that composes all widgets under one refresher."""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamlab.clock import Clock
from streamlab.runtime import RunHandle
from streamlab.sources import replay_speed
from streamlab.steps import WindowStep

from ._base import LiveWidget, closed_message, require_plotly, require_widgets
from ._diagram import PipelineDiagram
from ._monitors import LagGauge, LateDeadLetterCounter, ThroughputGauge, WatermarkDebugger
from ._refresh import Refresher

__all__ = ["ControlPanel", "Dashboard"]

DEFAULT_SPEEDS: dict[str, float | None] = {"1x": 1.0, "10x": 10.0, "100x": 100.0, "max": None}
Param = tuple[float, float, float]
_AS_STARTED = "as started"


class ControlPanel(LiveWidget):
    """Play, pause, step one batch, stop, replay speed and live parameter sliders for a running pipeline.

    Threshold sliders move the fixed threshold of a running ``detect`` step directly
    (:meth:`~streamlab.RunHandle.set_threshold`): events from the next batch on are flagged by the new
    value, no callback needed. Parameter sliders call ``on_param(name, value)`` while the pipeline runs,
    e.g. to move an :class:`AnomalyChart` threshold or a filter the user reads in a callback. Every
    control is also a method (:meth:`play`, :meth:`pause`, :meth:`step`, :meth:`stop`,
    :meth:`set_speed`, :meth:`set_threshold`, :meth:`set_param`), so scripts and tests drive the same
    code as the buttons.

    Parameters
    ----------
    handle
        The running pipeline.
    speeds
        Speed choices, label to factor (``None`` = as fast as possible).
    thresholds
        Threshold sliders: ``detect`` step id to ``(min, max)``; each starts at the step's current value.
    params
        Sliders: name to ``(min, max, initial)``.
    on_param
        Called with ``(name, value)`` when a slider moves.

    Examples
    --------
    >>> from streamlab import ListSource, ManualClock, Pipeline
    >>> handle = Pipeline(ListSource([{"x": 1}] * 10, batch_size=5)).start(clock=ManualClock(0), paused=True)
    >>> seen = []
    >>> panel = ControlPanel(handle, params={"threshold": (0.0, 1.0, 0.5)},
    ...                      on_param=lambda name, value: seen.append((name, value)))
    >>> panel.set_param("threshold", 0.8)
    >>> seen, panel.params["threshold"]
    ([('threshold', 0.8)], 0.8)
    >>> panel.stop().status
    'stopped'
    """

    def __init__(
        self,
        handle: RunHandle,
        *,
        speeds: Mapping[str, float | None] | None = None,
        thresholds: Mapping[str, tuple[float, float]] | None = None,
        params: Mapping[str, Param] | None = None,
        on_param: Callable[[str, float], Any] | None = None,
        max_fps: float = 4.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        if not isinstance(handle, RunHandle):
            raise TypeError(f"ControlPanel: pass a RunHandle (pipeline.start()), got {type(handle).__name__}")
        self.handle = handle
        self.source = handle
        self.speeds = dict(speeds if speeds is not None else DEFAULT_SPEEDS)
        for label, speed in self.speeds.items():  # refused when chosen, after the panel was shown
            try:
                replay_speed("ControlPanel", speed)
            except ValueError:
                raise ValueError(
                    f"ControlPanel(speeds={{{label!r}: {speed!r}}}): a speed is a positive, finite factor of "
                    "event time (10: ten times faster) or None (as fast as possible)"
                ) from None
        self.params: dict[str, float] = {}
        self.ranges: dict[str, Param] = {}
        for name, rng in (params or {}).items():
            if len(rng) != 3 or not rng[0] <= rng[2] <= rng[1]:
                raise ValueError(
                    f"ControlPanel(params={{{name!r}: {rng!r}}}): give (min, max, initial) with min <= initial <= max"
                )
            self.ranges[name] = (float(rng[0]), float(rng[1]), float(rng[2]))
            self.params[name] = float(rng[2])
        if self.params and on_param is None:
            raise ValueError(
                "ControlPanel: params were given without on_param; pass on_param=lambda name, value: ..."
            )
        self.on_param = on_param
        self.threshold_ranges: dict[str, tuple[float, float]] = {}
        current = handle.thresholds if thresholds else {}
        for sid, (lo, hi) in (thresholds or {}).items():
            if sid not in current:
                raise ValueError(
                    f"ControlPanel(thresholds={{{sid!r}: ...}}): no detect step {sid!r} with a "
                    f"FixedThresholdFilter; those with one: {list(current)}"
                )
            if not lo <= current[sid] <= hi:
                raise ValueError(
                    f"ControlPanel(thresholds={{{sid!r}: ({lo}, {hi})}}): the step's threshold "
                    f"{current[sid]} is outside the range"
                )
            self.threshold_ranges[sid] = (float(lo), float(hi))
        self.speed: float | None = None
        self.status_text = ""
        self._controls: dict[str, Any] = {}

    # -- actions (what the buttons call) ----------------------------------------------------------
    def play(self) -> None:
        """Resume the pipeline."""
        self.handle.resume()
        self._dirty = True

    def pause(self) -> None:
        """Pause the pipeline (state is kept)."""
        self.handle.pause()
        self._dirty = True

    def step(self, batches: int = 1) -> None:
        """Pause and process ``batches`` more source batches."""
        self.handle.pause()
        self.handle.step(batches)
        self._dirty = True

    def stop(self) -> Any:
        """Stop the pipeline gracefully (flush sinks, commit)."""
        result = self.handle.stop()
        self._dirty = True
        self._sync_status()
        return result

    def set_speed(self, speed: float | None) -> None:
        """Change the replay speed (``None``: as fast as possible)."""
        self.handle.set_speed(speed)  # refuses a speed that cannot work before the panel shows it
        self.speed = speed
        self._dirty = True

    def set_threshold(self, step_id: str, value: float) -> None:
        """Move the running ``detect`` step's threshold (and its slider)."""
        self.handle.set_threshold(step_id, value)
        slider = self._controls.get(f"threshold:{step_id}")
        if slider is not None and slider.value != value:
            slider.value = value
        self._dirty = True

    def set_param(self, name: str, value: float) -> None:
        """Set a live parameter and call ``on_param(name, value)``."""
        if name not in self.params:
            raise KeyError(f"ControlPanel: unknown parameter {name!r}; parameters are {list(self.params)}")
        self.params[name] = float(value)
        if self.on_param is not None:
            self.on_param(name, float(value))
        slider = self._controls.get(f"param:{name}")
        if slider is not None and slider.value != value:
            slider.value = value

    def _on_speed(self, change: dict[str, Any]) -> None:
        if change["new"] in self.speeds:
            self.set_speed(self.speeds[change["new"]])

    # -- view ---------------------------------------------------------------------------------------
    def _pull(self) -> bool:
        m = self.handle.metrics
        text = f"{m['status']} · {m['events_in']:,} events · {m['batches']:,} batches"
        if text == self.status_text:
            return False
        self.status_text = text
        return True

    def _sync_status(self) -> None:
        self._pull()
        label = self._controls.get("status")
        if label is not None:
            label.value = f"<span class='streamlab-status'>{html.escape(self.status_text)}</span>"

    def _redraw(self) -> None:
        self._sync_status()

    def _make_view(self) -> Any:
        w = require_widgets()

        def button(label: str, tip: str, action: Callable[[], Any]) -> Any:
            b = w.Button(description=label, tooltip=tip, layout=w.Layout(width="90px"))
            b.add_class(f"streamlab-{tip.split()[0].lower()}")
            b.on_click(lambda _b: action())
            self._controls[tip.split()[0].lower()] = b
            return b

        buttons = [
            button("▶ play", "Play (resume)", self.play),
            button("❚❚ pause", "Pause", self.pause),
            button("▶| step", "Step one batch", self.step),
            button("■ stop", "Stop (flush and commit)", self.stop),
        ]
        # The first entry leaves the speed the pipeline was started with untouched.
        labels = [_AS_STARTED, *self.speeds]
        speed = w.Dropdown(
            options=labels, value=_AS_STARTED, description="speed", layout=w.Layout(width="200px")
        )
        speed.add_class("streamlab-speed")
        speed.observe(self._on_speed, names="value")
        self._controls["speed"] = speed
        status = w.HTML(value="")
        self._controls["status"] = status
        rows = [w.HBox([*buttons, speed, status])]
        for sid, (lo, hi) in self.threshold_ranges.items():
            slider = w.FloatSlider(
                value=self.handle.thresholds[sid], min=lo, max=hi, step=(hi - lo) / 1000 or 0.001,
                description=f"{sid} threshold", continuous_update=False, readout_format=".6g",
                style={"description_width": "initial"}, layout=w.Layout(width="520px"),
            )  # fmt: skip
            slider.add_class(f"streamlab-threshold-{sid}")
            slider.observe(lambda ch, s=sid: self.set_threshold(s, ch["new"]), names="value")
            self._controls[f"threshold:{sid}"] = slider
            rows.append(slider)
        for name, (lo, hi, init) in self.ranges.items():
            slider = w.FloatSlider(value=init, min=lo, max=hi, step=(hi - lo) / 100 or 0.01, description=name,
                                   continuous_update=True, readout_format=".3g")  # fmt: skip
            slider.add_class(f"streamlab-param-{name}")
            slider.observe(lambda ch, n=name: self.set_param(n, ch["new"]), names="value")
            self._controls[f"param:{name}"] = slider
            rows.append(slider)
        self._sync_status()
        return w.VBox(rows)

    def figure(self) -> Any:
        """Controls have no figure; the status as a plotly title-only figure (for static exports)."""
        go = require_plotly()
        self._pull()
        return go.Figure(layout={"title": self.status_text, "height": 80})

    @property
    def controls(self) -> dict[str, Any]:
        """The view's ipywidgets by name (``play``, ``pause``, ``step``, ``stop``, ``speed``, ``threshold:<step>``, ``param:<name>``)."""
        _ = self.widget
        return self._controls


class Dashboard:
    """Controls, gauges, charts, the watermark debugger and the pipeline diagram, under ONE refresher.

    The dashboard drives every child's :meth:`~LiveWidget.refresh` at ``max_fps`` (children do not start
    their own refreshers), and :meth:`close` stops the refresher, unsubscribes and closes every child;
    with ``stop_pipeline=True`` it also stops the pipeline. Display it in JupyterLab or serve the
    notebook with Voila.

    Parameters
    ----------
    handle
        The running pipeline.
    charts
        Extra widgets to show (e.g. :class:`WindowChart`, :class:`AnomalyChart`, :class:`LiveTable`).
    controls, gauges, debugger, diagram
        Include the control panel, the throughput/lag/late gauges, the watermark debugger (when the
        pipeline has exactly one window step) and the pipeline diagram.
    thresholds, params, on_param
        Threshold sliders (``detect`` step id to ``(min, max)``) and other live parameter sliders for
        the control panel.
    stop_pipeline
        Whether :meth:`close` also stops the pipeline.

    Examples
    --------
    >>> from streamlab import ListSource, ManualClock, Pipeline
    >>> handle = Pipeline(ListSource([{"x": 1}] * 10)).start(clock=ManualClock(0))
    >>> with Dashboard(handle, stop_pipeline=True) as dash:
    ...     [type(c).__name__ for c in dash.children]
    ['ControlPanel', 'ThroughputGauge', 'LagGauge', 'LateDeadLetterCounter', 'PipelineDiagram']
    >>> handle.thread.is_alive()
    False
    """

    def __init__(
        self,
        handle: RunHandle,
        charts: Sequence[LiveWidget] = (),
        *,
        title: str | None = None,
        controls: bool = True,
        gauges: bool = True,
        debugger: bool = True,
        diagram: bool = True,
        thresholds: Mapping[str, tuple[float, float]] | None = None,
        params: Mapping[str, Param] | None = None,
        on_param: Callable[[str, float], Any] | None = None,
        speeds: Mapping[str, float | None] | None = None,
        max_fps: float = 10.0,
        stop_pipeline: bool = False,
    ) -> None:
        if not isinstance(handle, RunHandle):
            raise TypeError(f"Dashboard: pass a RunHandle (pipeline.start()), got {type(handle).__name__}")
        self.handle = handle
        self.title = title or f"streamlab · {handle.pipeline.name}"
        self.max_fps = float(max_fps)
        self.stop_pipeline = stop_pipeline
        self.panel: ControlPanel | None = None
        self.children: list[LiveWidget] = []
        if controls:
            self.panel = ControlPanel(
                handle, speeds=speeds, thresholds=thresholds, params=params, on_param=on_param
            )
            self.children.append(self.panel)
        if gauges:
            self.children += [ThroughputGauge(handle), LagGauge(handle), LateDeadLetterCounter(handle)]
        self.charts = list(charts)
        for chart in self.charts:  # one that is not failed with an AttributeError on 'managed'
            if not isinstance(chart, LiveWidget):
                raise TypeError(
                    f"Dashboard(charts=[..., {chart!r}]): a chart is a streamlab widget, got "
                    f"{type(chart).__name__}; pass e.g. [WindowChart(handle, 'window')]"
                )
        self.children += self.charts
        windows = [sid for sid, s in handle.pipeline.steps.items() if isinstance(s, WindowStep)]
        self.debugger: WatermarkDebugger | None = None
        if debugger and len(windows) == 1:
            self.debugger = WatermarkDebugger(handle, windows[0])
            self.children.append(self.debugger)
        self.diagram: PipelineDiagram | None = PipelineDiagram(handle) if diagram else None
        if self.diagram is not None:
            self.children.append(self.diagram)
        for child in self.children:
            child.managed = True
            child.stop_refresh()  # a chart displayed before joining the dashboard hands its refreshes over
        self.refresher = Refresher(self.refresh, max_fps=self.max_fps)
        self._view: Any = None
        self.closed = False

    def refresh(self) -> int:
        """Refresh every child (each redraws only when its data changed); returns how many redrew."""
        return sum(bool(child.refresh(force=True)) for child in self.children)

    @property
    def widget(self) -> Any:
        """The composed ipywidget; creating it starts the refresher. Raises ``RuntimeError`` after :meth:`close`."""
        if self.closed:
            raise RuntimeError(closed_message(self))
        if self._view is None:
            w = require_widgets()
            rows: list[Any] = [w.HTML(f"<h3 class='streamlab-title'>{html.escape(self.title)}</h3>")]
            if self.panel is not None:
                rows.append(self.panel.widget)
            gauges = [
                c.widget
                for c in self.children
                if isinstance(c, (ThroughputGauge, LagGauge, LateDeadLetterCounter))
            ]
            if gauges:
                rows.append(w.HBox(gauges, layout=w.Layout(flex_flow="row wrap")))
            rows += [c.widget for c in self.charts]
            if self.debugger is not None:
                rows.append(self.debugger.widget)
            if self.diagram is not None:
                rows.append(self.diagram.widget)
            self._view = w.VBox(rows)
            self._view.add_class("streamlab-dashboard")
            self.refresher.start()
        return self._view

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.closed:  # as ipywidgets shows a closed widget: as text, with no error
            return {"text/plain": closed_message(self)}
        return self.widget._repr_mimebundle_(**kwargs)

    def figures(self) -> list[Any]:
        """Static plotly figures of every chart (outside a notebook)."""
        return [c.figure() for c in self.children if not isinstance(c, ControlPanel)]

    def to_html(self, path: str | os.PathLike[str]) -> None:
        """Write all charts to one self-contained HTML page (plotly.js inlined once, no network)."""
        parts = [f"<h3>{html.escape(self.title)}</h3>"]
        first = True
        for child in self.children:
            if isinstance(child, ControlPanel):
                continue
            if isinstance(child, PipelineDiagram):
                parts.append(child.svg())
                continue
            parts.append(child.figure().to_html(full_html=False, include_plotlyjs=first))
            first = False
        page = (
            "<!doctype html><html><head><meta charset='utf-8'></head><body>"
            + "".join(parts)
            + "</body></html>"
        )
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write(page)

    def stop_refresh(self) -> None:
        """Stop redrawing; the dashboard stays on screen with its last state, the pipeline is untouched.

        For the end of a notebook: the final charts stay visible, also when the notebook is served
        with Voila (after :meth:`close` a view has nothing left to show). ``refresh()`` still redraws.
        """
        self.refresher.stop()

    def close(self) -> None:
        """Stop the refresher, close every child (and stop the pipeline when ``stop_pipeline``)."""
        self.refresher.stop()
        for child in self.children:
            child.close()
        if self._view is not None:
            self._view.close()
        if self.stop_pipeline and self.handle.thread.is_alive():
            self.handle.stop()
        self.closed = True

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
