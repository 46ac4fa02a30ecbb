"""The base of every live chart: a plotly figure fed from a running pipeline or a DataFrame."""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from streamlab._time import NAT_NS, to_utc_ns
from streamlab.clock import Clock, SystemClock
from streamlab.runtime import RunHandle, RunMetrics

from ._figure import live_figure_class
from ._refresh import FrameBuffer, Refresher

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "LiveWidget",
    "Metrics",
    "SourceLike",
    "closed_message",
    "columns_of",
    "live_figure_class",
    "plotly_times",
    "require_plotly",
    "require_widgets",
    "resync_figure",
    "times_ns",
]

SourceLike = RunHandle | pd.DataFrame
Metrics = RunHandle | RunMetrics | Mapping[str, Any]  # a handle, or the metrics of a run (RunResult.metrics)


def require_plotly() -> Any:
    """Import ``plotly.graph_objects`` or say which extra installs it."""
    try:
        import plotly.graph_objects as go
    except ImportError as e:  # pragma: no cover - plotly is a core dependency
        raise ImportError("streamlab.widgets needs plotly: pip install 'streamlab[notebook]'") from e
    return go


def require_widgets() -> Any:
    """Import ``ipywidgets`` (and check ``anywidget``, which the live views are built on)."""
    try:
        import anywidget  # noqa: F401
        import ipywidgets
    except ImportError as e:
        raise ImportError(
            f"live widgets need ipywidgets and anywidget ({e.name} is missing): pip install 'streamlab[notebook]'"
        ) from e
    return ipywidgets


def resync_figure(fig: Any) -> None:
    """Copy a plotly ``FigureWidget``'s current data and layout into its synced state.

    plotly sends changes to open views as deltas only and sets the synced state at construction. The
    live widgets do not need this: their view (:func:`~streamlab.widgets._figure.live_figure_class`)
    syncs the whole figure. It stays for plain FigureWidgets. It touches plotly's private attributes.
    """
    if hasattr(fig, "_widget_data"):
        fig._widget_data = _copy_tree(fig._data)
        fig._widget_layout = _copy_tree(fig._layout_obj._props)


def _copy_tree(obj: Any) -> Any:
    """Copy the dicts and lists of a figure; share the arrays, which plotly replaces rather than mutates."""
    if isinstance(obj, dict):
        return {k: _copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_copy_tree(v) for v in obj)
    return obj


def plotly_times(ns: np.ndarray) -> np.ndarray:
    """Epoch nanoseconds (int64, ``NaT`` allowed) as float milliseconds, what plotly.js plots on a date axis.

    Floats travel to the browser as one binary buffer; date strings would be a list of Python strings
    (slow to make, walk and send). Missing times become NaN, a gap.

    Examples
    --------
    >>> plotly_times(np.array([1_700_000_000_123_456_789, NAT_NS])).tolist()
    [1700000000123.0, nan]
    """
    ns = np.asarray(ns, dtype=np.int64)
    ms = (ns // 1_000_000).astype(np.float64)
    ms[ns == NAT_NS] = np.nan
    return ms


_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _sampled_times_ns(col: pd.Series, budget: int) -> np.ndarray:
    """Event times (int64 ns) of an even sample of at most ``budget`` rows of ``col``.

    Runs in the pipeline thread for every batch (the watermark debugger) and on every redraw, so a
    datetime column is sampled and scaled as plain int64 (pandas' per-call overhead is many times the
    work); other columns go through ``to_utc_ns``.

    Examples
    --------
    >>> col = pd.Series(pd.to_datetime(["2024-01-01", None, "2024-01-02"], utc=True)).astype("datetime64[ms, UTC]")
    >>> _sampled_times_ns(col, 3).tolist() == [1704067200 * 10**9, NAT_NS, 1704153600 * 10**9]
    True
    """
    rows = np.linspace(0, len(col) - 1, budget).astype(np.int64) if len(col) > budget else slice(None)
    dtype: Any = col.dtype
    unit: str | None = None
    if isinstance(dtype, pd.DatetimeTZDtype):
        unit = dtype.unit
    elif isinstance(dtype, np.dtype) and dtype.kind == "M":
        unit = np.datetime_data(dtype)[0]
    if unit not in _NS_PER_UNIT:
        return to_utc_ns(col.iloc[rows])
    raw = np.asarray(col.array.asi8[rows], dtype=np.int64)  # epoch in the column's unit; naive = UTC
    if unit == "ns":
        return raw.copy()
    out = raw * _NS_PER_UNIT[unit]
    out[raw == NAT_NS] = NAT_NS
    return out


def times_ns(col: pd.Series) -> np.ndarray:
    """A column of event times as int64 epoch nanoseconds (``NAT_NS`` where missing), cheaply for datetimes.

    Examples
    --------
    >>> times_ns(pd.Series(pd.to_datetime(["2024-01-01T00:00:01"], utc=True))).tolist()
    [1704067201000000000]
    """
    return _sampled_times_ns(col, len(col))


def columns_of(frame: pd.DataFrame, names: Collection[str]) -> dict[str, pd.Series]:
    """The columns of ``frame`` named in ``names`` (those it has), by name.

    Read by position: the first lookup by name on a new frame makes pandas hash its column index
    (for string column names, after converting them), which costs more than reading the columns, and
    every batch is a new frame.

    Examples
    --------
    >>> list(columns_of(pd.DataFrame({"a": [1], "b": [2], "c": [3]}), {"c", "a", "x"}))
    ['a', 'c']
    """
    return {str(name): col for name, col in frame.items() if name in names}


#: the parameters of each widget that name columns, for :func:`_check_columns`' hint (a test checks
#: that each is a parameter of that widget)
COLUMN_PARAMETERS: dict[str, tuple[str, ...]] = {
    "WindowChart": ("value", "key"),
    "AnomalyChart": ("time", "score", "flag"),
    "LiveTable": ("columns",),
}


def _check_columns(handle: RunHandle, ref: str, needed: list[str], who: str) -> None:
    """Refuse columns that output ``ref`` does not have, hinting at the parameters of ``who`` that name them.

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([]))
    >>> _ = p.stream.select("v", step_id="scores")
    >>> handle = p.start(clock=ManualClock(0), paused=True)
    >>> _check_columns(handle, "scores", ["timestamp"], "AnomalyChart")
    Traceback (most recent call last):
    ...
    ValueError: AnomalyChart: output 'scores' has no column(s) ['timestamp']; its columns are ['v']. Pick from those with time=..., score=... or flag=...
    >>> _ = handle.stop()
    """
    try:
        cols = handle.pipeline.columns_of(ref)
    except Exception:
        return
    if not cols:
        return
    missing = [c for c in needed if c not in cols]
    if missing:
        params = [f"{p}=..." for p in COLUMN_PARAMETERS.get(who, ())]
        hint = " or ".join([", ".join(params[:-1]), params[-1]] if len(params) > 1 else params)
        raise ValueError(
            f"{who}: output {ref!r} has no column(s) {missing}; its columns are {list(cols)}. "
            + (f"Pick from those with {hint}" if hint else "Pick from those")
        )


def closed_message(view: object) -> str:
    """What a closed view (a chart's, a dashboard's) says when displayed or used again.

    Examples
    --------
    >>> class WindowChart: ...
    >>> print(closed_message(WindowChart()))
    this WindowChart was closed: close() ended its view and it no longer follows the run. Make a new one (for
    an output: handle.show(ref), or WindowChart(handle, ...)) and display that
    """
    name = type(view).__name__
    return (
        f"this {name} was closed: close() ended its view and it no longer follows the run. Make a new "
        f"one (for an output: handle.show(ref), or {name}(handle, ...)) and display that"
    )


class LiveWidget:
    """Common machinery: subscriptions, throttled :meth:`refresh`, the live view and static export.

    Subclasses implement ``_pull()`` (take buffered data into state; True when something changed),
    ``_init_figure(fig)`` (what never changes: axes, titles, the styled empty traces), ``_traces()``
    (each trace's changing properties, as plain dicts with numpy arrays; entries past the traces made
    by ``_init_figure`` are whole traces with a ``type``) and ``_layout_update()`` (the layout keys that
    change). A redraw builds no plotly object: the live view encodes those dicts straight into its state;
    :meth:`figure` gives the same figure validated by plotly.
    """

    def __init__(
        self, *, max_fps: float = 10.0, clock: Clock | None = None, auto_refresh: bool = True
    ) -> None:
        if not max_fps > 0:
            raise ValueError(f"{type(self).__name__}(max_fps={max_fps}): max_fps must be positive, e.g. 10")
        self.max_fps = float(max_fps)
        self.clock: Clock = clock or SystemClock()
        self.auto_refresh = auto_refresh
        self.redraws = 0
        self.managed = False  # True when a Dashboard drives refreshes
        self._last_draw_ns: int | None = None
        self._dirty = True
        self._skeleton: tuple[list[dict[str, Any]], dict[str, Any]] | None = None
        self._view: Any = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._refresher: Refresher | None = None
        self.closed = False
        self._refresh_lock = threading.RLock()

    # -- feeding --------------------------------------------------------------------------------
    def _feed(self, source: SourceLike, ref: str, buffer: FrameBuffer) -> None:
        """Buffer what ``source`` has on ``ref``.

        A frame is buffered as it is; from a running pipeline, the results it collected so far, then
        every batch as it comes.
        """
        if isinstance(source, pd.DataFrame):
            buffer.append(source)
            return
        if not isinstance(source, RunHandle):
            raise TypeError(
                f"{type(self).__name__}: source must be a RunHandle (pipeline.start()) or a DataFrame, "
                f"got {type(source).__name__}"
            )
        self._unsubscribe.append(source.subscribe(ref, buffer.append, replay=True))

    def _pull(self) -> bool:
        raise NotImplementedError

    def _init_figure(self, fig: Any) -> None:
        raise NotImplementedError

    def _traces(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _layout_update(self) -> dict[str, Any]:
        return {}

    # -- drawing ------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Pull new data and redraw the live view; at most ``max_fps`` times per second of ``clock``.

        Returns True when a redraw happened. ``force=True`` ignores the rate limit (not the change check).
        """
        with self._refresh_lock:  # a script may call refresh() while a thread refresher runs
            return self._refresh(force)

    def _refresh(self, force: bool) -> bool:
        if self.closed:
            return False
        now = self.clock.now_ns()
        if (
            not force
            and self._last_draw_ns is not None
            and now - self._last_draw_ns < int(1e9 / self.max_fps)
        ):
            return False
        changed = self._pull() or self._dirty
        if not changed:
            return False
        if self._view is not None:
            self._redraw()
        self._dirty = False
        self._last_draw_ns = now
        self.redraws += 1
        return True

    def _redraw(self) -> None:
        # the whole figure: a view that missed a redraw is repaired by this one
        self._view.show(self._traces(), self._layout_update())

    def _parts(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The constant traces and layout (``_init_figure``'s figure as plain dicts), made once."""
        if self._skeleton is None:
            go = require_plotly()
            fig = go.Figure()
            self._init_figure(fig)
            # plotly's own property dicts (to_plotly_json would turn arrays into base64 text)
            self._skeleton = (copy.deepcopy(fig._data), copy.deepcopy(fig._layout))
        return self._skeleton

    def _data(self) -> list[dict[str, Any]]:
        """Every trace as a plain dict: the constant properties with the current ones over them."""
        base = self._parts()[0]
        return [{**base[i], **t} if i < len(base) else t for i, t in enumerate(self._traces())]

    def figure(self) -> go.Figure:
        """A static plotly figure of the current state (works outside a notebook)."""
        go = require_plotly()
        self._pull()
        layout = {**self._parts()[1], **self._layout_update()}
        return go.Figure({"data": self._data(), "layout": layout})  # plotly copies the arrays

    def to_html(self, path: str | os.PathLike[str]) -> None:
        """Write the current state as a self-contained HTML file (plotly.js inlined, no network)."""
        self.figure().write_html(os.fspath(path), include_plotlyjs=True, full_html=True)

    def _make_view(self) -> Any:
        require_widgets()
        with self._refresh_lock:
            traces, layout = self._parts()
            layout = dict(layout)
            view = live_figure_class()(template=layout.pop("template", {}), layout=layout, traces=traces)
            self._pull()
            view.show(self._traces(), self._layout_update())
            return view

    @property
    def widget(self) -> Any:
        """The live ipywidget (created on first use; starts the refresher unless a Dashboard drives it).

        Raises ``RuntimeError`` after :meth:`close`: the view is gone and nothing feeds it any more.
        """
        if self.closed:
            raise RuntimeError(closed_message(self))
        if self._view is None:
            self._view = self._make_view()
            if self.auto_refresh and not self.managed and self._has_live_source():
                self.start_refresh()
        return self._view

    def _has_live_source(self) -> bool:
        return bool(self._unsubscribe) or isinstance(getattr(self, "source", None), RunHandle)

    def start_refresh(self) -> Refresher:
        """Start this widget's own refresher (done automatically on display)."""
        if self._refresher is None:
            self._refresher = Refresher(self.refresh, max_fps=self.max_fps)
        return self._refresher.start()

    def stop_refresh(self) -> None:
        """Stop the refresher; the view stays on screen with its last state."""
        if self._refresher is not None:
            self._refresher.stop()

    @property
    def refresher(self) -> Refresher | None:
        return self._refresher

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.closed:  # as ipywidgets shows a closed widget: as text, with no error
            return {"text/plain": closed_message(self)}
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop refreshing, unsubscribe from the pipeline and close the view (for good: display a new one)."""
        self.stop_refresh()
        for unsubscribe in self._unsubscribe:
            with contextlib.suppress(ValueError):  # already removed
                unsubscribe()
        self._unsubscribe.clear()
        if self._view is not None:
            self._view.close()
        self.closed = True

    def __enter__(self) -> LiveWidget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
