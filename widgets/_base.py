"""The base of every live chart: a plotly figure fed from a running pipeline or a DataFrame."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab.clock import Clock, SystemClock
from streamlab.runtime import RunHandle

from ._refresh import FrameBuffer, Refresher

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["LiveWidget", "Metrics", "SourceLike", "require_plotly", "require_widgets", "resync_figure"]

#: Longest interval between full-state syncs of a live figure while its data keeps changing.
RESYNC_EVERY_NS = 1_000_000_000

SourceLike = RunHandle | pd.DataFrame
Metrics = RunHandle | Mapping[str, Any]


def require_plotly() -> Any:
    """Import ``plotly.graph_objects`` or say which extra installs it."""
    try:
        import plotly.graph_objects as go
    except ImportError as e:  # pragma: no cover - plotly is a core dependency
        raise ImportError("streamlab.widgets needs plotly: pip install 'streamlab[notebook]'") from e
    return go


def require_widgets() -> Any:
    """Import ``ipywidgets`` (and check ``anywidget``, which plotly's FigureWidget needs)."""
    try:
        import anywidget  # noqa: F401
        import ipywidgets
    except ImportError as e:
        raise ImportError(
            f"live widgets need ipywidgets and anywidget ({e.name} is missing): pip install 'streamlab[notebook]'"
        ) from e
    return ipywidgets


def resync_figure(fig: Any) -> None:
    """Copy a FigureWidget's current data and layout into its synced state.

    plotly sends changes to views that are open as deltas only; a view created later (a page reload,
    Voila) starts from the synced state, which plotly sets only at construction. Refreshing it after
    each redraw makes late views current. This touches plotly's private attributes (pinned, and
    covered by the browser tests).
    """
    if hasattr(fig, "_widget_data"):
        fig._widget_data = _copy_tree(fig._data)
        fig._widget_layout = _copy_tree(fig._layout_obj._props)


def _copy_tree(obj: Any) -> Any:
    """Copy the dicts and lists of a figure; share the arrays, which plotly replaces rather than mutates.

    Same effect as ``deepcopy`` for the re-sync, without copying every point on every redraw.
    """
    if isinstance(obj, dict):
        return {k: _copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_copy_tree(v) for v in obj)
    return obj


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
    ``_init_figure(fig)`` (axes and empty traces) and ``_apply(fig)`` (write state into traces).
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
        self._resync_pending = False
        self._last_resync_ns = 0

    # -- feeding --------------------------------------------------------------------------------
    def _feed(self, source: SourceLike, ref: str, buffer: FrameBuffer, *, seed: bool = False) -> None:
        if isinstance(source, pd.DataFrame):
            buffer.append(source)
            return
        if not isinstance(source, RunHandle):
            raise TypeError(
                f"{type(self).__name__}: source must be a RunHandle (pipeline.start()) or a DataFrame, "
                f"got {type(source).__name__}"
            )
        self._unsubscribe.append(source.subscribe(ref, buffer.append))
        if seed:
            # Results emitted before this widget existed (collected outputs only).
            earlier = source.outputs.get(ref)
            if earlier is not None and len(earlier):
                buffer.append(earlier)

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
            if self._resync_pending and self._fig is not None:
                # Data has settled: make views created from now on (reload, Voila) exactly current.
                resync_figure(self._fig)
                self._resync_pending = False
                self._last_resync_ns = now
            return False
        if self._fig is not None:
            n_traces = len(self._fig.data)
            self._redraw(self._fig)
            # Views opened later start from the synced state, then follow the deltas. Sending the whole
            # figure on every redraw costs as much as the redraw, so while data streams in it is sent at
            # most once per RESYNC_EVERY_NS (a later view is that stale only until the next delta), and
            # at once when traces were added, which a later view could not learn from deltas.
            if len(self._fig.data) != n_traces or now - self._last_resync_ns >= RESYNC_EVERY_NS:
                resync_figure(self._fig)
                self._resync_pending = False
                self._last_resync_ns = now
            else:
                self._resync_pending = True
        self._dirty = False
        self._last_draw_ns = now
        self.redraws += 1
        return True

    def _redraw(self, fig: Any) -> None:
        self._before_apply(fig)
        with fig.batch_update():
            self._apply(fig)

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
        fig = go.FigureWidget()
        self._init_figure(fig)
        self._pull()
        self._before_apply(fig)
        self._apply(fig)
        resync_figure(fig)
        self._fig = fig
        return fig

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
