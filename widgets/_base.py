"""The base of every live chart: a plotly figure fed from a running pipeline or a DataFrame."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from streamlab._time import NAT_NS
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
    "live_figure_class",
    "plotly_times",
    "require_plotly",
    "require_widgets",
    "resync_figure",
    "update_figure",
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


def update_figure(
    fig: Any, traces: Mapping[int, Mapping[str, Any]], layout: Mapping[str, Any] | None = None
) -> None:
    """Set trace and layout properties of ``fig``: one ``plotly_update`` for a ``FigureWidget``.

    ``traces`` maps trace index to properties (``{"x": array, "y": array}``), ``layout`` maps layout
    paths (``"title.text"``) to values. On a ``FigureWidget`` (one message to its views) plotly keeps
    and sends only the values that changed; a plain figure (what the live charts' views hold) gets
    the values written into its property dicts, without plotly's update machinery. The values
    skip plotly's validators, which cost more than the rest of a redraw: pass what a validator would
    produce (contiguous numeric arrays, plain dicts). ``layout["shapes"]`` is a list of shape dicts; when
    the number of shapes changes they go through the validating setter, which plotly needs to rebuild
    its shape objects.

    Examples
    --------
    >>> import plotly.graph_objects as go
    >>> fig = go.Figure(go.Scatter(x=[], y=[]))
    >>> update_figure(fig, {0: {"y": np.array([1.0, 2.0])}}, {"title.text": "two points"})
    >>> fig.data[0].y.tolist(), fig.layout.title.text
    ([1.0, 2.0], 'two points')
    >>> update_figure(fig, {}, {"shapes": [{"type": "line", "y0": 1, "y1": 1}]})
    >>> update_figure(fig, {}, {"shapes": [{"type": "line", "y0": 2, "y1": 2}]})
    >>> fig.layout.shapes[0].y0, fig.to_dict()["layout"]["shapes"][0]["y1"]
    (2, 2)
    """
    relayout = dict(layout or {})
    shapes: Sequence[Mapping[str, Any]] | None = relayout.pop("shapes", None)
    if shapes is not None and len(fig.layout.shapes) != len(shapes):
        fig.layout.shapes = shapes  # plotly rebuilds its shape objects: the validating setter
        shapes = None
    if not hasattr(fig, "_widget_data"):
        _write_figure(fig, traces, relayout, shapes)
        return
    from plotly.basedatatypes import Undefined

    if shapes is not None:
        relayout["shapes"] = list(shapes)  # same count: plotly's shape objects read the new dicts
    # plotly sends a property for every trace once it changed in one; only changed values go here.
    changed = {
        i: {prop: _frozen(v) for prop, v in props.items() if not _same(fig.data[i][prop], v)}
        for i, props in traces.items()
    }
    index = sorted(i for i, props in changed.items() if props)
    restyle = {
        prop: [changed[i].get(prop, Undefined) for i in index]
        for prop in sorted({p for i in index for p in changed[i]})
    }
    if restyle or relayout:
        fig.plotly_update(restyle_data=restyle, relayout_data=relayout, trace_indexes=index)


def _write_figure(
    fig: Any,
    traces: Mapping[int, Mapping[str, Any]],
    relayout: Mapping[str, Any],
    shapes: Sequence[Mapping[str, Any]] | None,
) -> None:
    """Write values straight into a plain figure's property dicts (what its trace objects read).

    A plain ``go.Figure`` has no views to notify, so plotly's update machinery (path parsing, change
    events) only costs time; a live chart's view encodes the whole figure and sends it if it changed.
    """
    for i, props in traces.items():
        data = fig._data[i]
        for prop, value in props.items():
            data[prop] = _frozen(value)
    for path, value in relayout.items():
        node = fig._layout
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    if shapes is not None:
        for props, new in zip(fig._layout.get("shapes", ()), shapes):
            props.clear()  # in place: plotly's shape objects keep reading these dicts
            props.update(new)


def _same(old: Any, new: Any) -> bool:
    if isinstance(new, np.ndarray):
        if not isinstance(old, np.ndarray):
            return len(new) == 0 and old is not None and len(old) == 0
        if old.shape != new.shape or old.dtype != new.dtype:
            return False
        return bool(np.array_equal(old, new, equal_nan=new.dtype.kind in "fc"))
    return bool(old == new)


def _frozen(value: Any) -> Any:
    """A contiguous read-only view of an array (what plotly's validators would store), else the value."""
    if not isinstance(value, np.ndarray):
        return value
    value = np.ascontiguousarray(value).view()
    value.flags.writeable = False
    return value


def _check_columns(handle: RunHandle, ref: str, needed: list[str], who: str) -> None:
    try:
        cols = handle.pipeline.columns_of(ref)
    except Exception:
        return
    if not cols:
        return
    missing = [c for c in needed if c not in cols]
    if missing:
        raise ValueError(
            f"{who}: output {ref!r} has no column(s) {missing}; its columns are {list(cols)}. "
            f"Pick one of those (e.g. value=..., key=...)"
        )


class LiveWidget:
    """Common machinery: subscriptions, throttled :meth:`refresh`, the live view and static export.

    Subclasses implement ``_pull()`` (take buffered data into state; True when something changed),
    ``_init_figure(fig)`` (axes and empty traces) and ``_apply(fig)`` (write state into traces, with
    :func:`update_figure` where redraws must be cheap).
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
        self._fig: Any = None
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

    def _apply(self, fig: Any) -> None:
        raise NotImplementedError

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
        if self._fig is not None:
            self._redraw(self._fig)
        self._dirty = False
        self._last_draw_ns = now
        self.redraws += 1
        return True

    def _redraw(self, fig: Any) -> None:
        self._before_apply(fig)
        self._apply(fig)
        if self._view is not None:
            self._view.sync()  # the whole figure: a view that missed a redraw is repaired by this one

    def _before_apply(self, fig: Any) -> None:
        """Structural changes (adding traces) that plotly does not allow inside ``batch_update``."""

    def figure(self) -> go.Figure:
        """A static plotly figure of the current state (works outside a notebook)."""
        go = require_plotly()
        self._pull()
        fig = go.Figure()
        self._init_figure(fig)
        self._before_apply(fig)
        self._apply(fig)
        return fig

    def to_html(self, path: str | os.PathLike[str]) -> None:
        """Write the current state as a self-contained HTML file (plotly.js inlined, no network)."""
        self.figure().write_html(os.fspath(path), include_plotlyjs=True, full_html=True)

    def _make_view(self) -> Any:
        require_widgets()
        go = require_plotly()
        with self._refresh_lock:
            fig = go.Figure()
            self._init_figure(fig)
            self._pull()
            self._before_apply(fig)
            self._apply(fig)
            self._fig = fig
            return live_figure_class()(fig)

    @property
    def widget(self) -> Any:
        """The live ipywidget (created on first use; starts the refresher unless a Dashboard drives it)."""
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
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop refreshing, unsubscribe from the pipeline and close the view."""
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
