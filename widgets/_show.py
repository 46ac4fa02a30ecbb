"""One-call live preview of one output of a running pipeline (``stream.show()``, ``handle.show(ref)``)."""

from __future__ import annotations

from typing import Any

from streamlab._coltypes import NUMERIC, declared_type
from streamlab.runtime import RunHandle
from streamlab.steps import WindowStep

from ._base import LiveWidget
from ._charts import AnomalyChart, LiveTable, WindowChart

__all__ = ["show"]


def show(handle: RunHandle, ref: str, *, rows: int = 15, max_fps: float = 5.0, **options: Any) -> LiveWidget:
    """A live, bounded view of output ``ref`` of a running pipeline, chosen from what the output is.

    Window results become a :class:`WindowChart` (one line per key, the first numeric aggregate),
    scored events (``score`` and ``is_anomaly`` columns, and the pipeline's time column) an
    :class:`AnomalyChart`, anything else a :class:`LiveTable` of the newest ``rows`` rows, window
    results without a numeric aggregate too (``agg.last`` of a text column). Every view keeps a fixed
    budget of points or rows however long the run, and shows what the run produced before it was made. ``options`` go to the widget (``value=``,
    ``key=``, ``columns=``, ``title=``...). In a notebook the widget displays itself.

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
    >>> events = pd.DataFrame({"k": ["a", "b", "a"],
    ...                        "timestamp": pd.date_range("2024-01-01", periods=3, freq="20s", tz="UTC")})
    >>> p = Pipeline(ReplaySource(events, speed=None))
    >>> _ = p.window(TumblingWindow("1m"), key="k").agg(agg.count())
    >>> handle = p.start(clock=ManualClock(0))
    >>> chart = show(handle, "window")
    >>> type(chart).__name__, chart.value, chart.key
    ('WindowChart', 'count', 'k')
    >>> type(show(handle, "window.late")).__name__
    'LiveTable'
    >>> _ = handle.wait(30)
    >>> p = Pipeline(ReplaySource(events, speed=None))
    >>> _ = p.window(TumblingWindow("1m"), key="k").agg(agg.last("k"), agg.count())
    >>> show(p.start(clock=ManualClock(0)), "window").value  # last_k is text: no line to draw
    'count'
    """
    if not isinstance(handle, RunHandle):
        raise TypeError(f"show: pass a RunHandle (pipeline.start()), got {type(handle).__name__}")
    pipeline = handle.pipeline
    if pipeline.columns_of(ref) is None and ref not in pipeline.steps:
        known = [r for sid in pipeline.steps for r in _refs(pipeline, sid)]
        raise ValueError(f"show({ref!r}): no such output; outputs are {known}")
    cols = tuple(pipeline.columns_of(ref) or ())
    step = pipeline.steps.get(ref)
    if isinstance(step, WindowStep) and step.aggs:
        value = options.get("value") or _plotted_aggregate(pipeline, ref, step)
        if value is not None:  # else a table: no aggregate a line can show
            options["value"] = value
            options.setdefault("key", step.keys[0] if step.keys else None)
            return WindowChart(handle, ref, max_fps=max_fps, **options)
    elif "score" in cols and "is_anomaly" in cols:
        time = options.get("time", pipeline.time)
        if time in cols or "time" in options:  # a time= given: the chart says what is wrong with it
            options["time"] = time
            return AnomalyChart(handle, ref, max_fps=max_fps, **options)
    return LiveTable(handle, ref, rows=rows, max_fps=max_fps, **options)


def _plotted_aggregate(pipeline: Any, ref: str, step: WindowStep) -> str | None:
    """The name of the window's first aggregate declared numeric, else of its first of unknown type (a
    custom aggregator, or first/last of a column a user function made), else None (text, times)."""
    types = {a.name: declared_type(pipeline, ref, a.name) for a in step.aggs}
    numeric = [name for name, found in types.items() if found is not None and found[0] in NUMERIC]
    unknown = [name for name, found in types.items() if found is None]
    return next(iter(numeric + unknown), None)


def _refs(pipeline: Any, sid: str) -> list[str]:
    return [sid if out == "out" else f"{sid}.{out}" for out in pipeline.outputs_of(sid)]
