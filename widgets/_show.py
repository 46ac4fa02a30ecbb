"""One-call live preview of one output of a running pipeline (``stream.show()``, ``handle.show(ref)``)."""

from __future__ import annotations

from typing import Any

from streamlab.runtime import RunHandle
from streamlab.steps import WindowStep

from ._base import LiveWidget
from ._charts import AnomalyChart, LiveTable, WindowChart

__all__ = ["show"]


def show(handle: RunHandle, ref: str, *, rows: int = 15, max_fps: float = 5.0, **options: Any) -> LiveWidget:
    """A live, bounded view of output ``ref`` of a running pipeline, chosen from what the output is.

    Window results become a :class:`WindowChart` (one line per key, the first aggregate), scored
    events (``score`` and ``is_anomaly`` columns) an :class:`AnomalyChart`, anything else a :class:`LiveTable` of the
    newest ``rows`` rows. Every view keeps a fixed budget of points or rows however long the run, and
    shows what the run produced before it was made. ``options`` go to the widget (``value=``,
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
        options.setdefault("value", step.aggs[0].name)
        options.setdefault("key", step.keys[0] if step.keys else None)
        return WindowChart(handle, ref, max_fps=max_fps, **options)
    if "score" in cols and "is_anomaly" in cols:
        options.setdefault("time", pipeline.time)
        return AnomalyChart(handle, ref, max_fps=max_fps, **options)
    return LiveTable(handle, ref, rows=rows, max_fps=max_fps, **options)


def _refs(pipeline: Any, sid: str) -> list[str]:
    return [sid if out == "out" else f"{sid}.{out}" for out in pipeline.outputs_of(sid)]
