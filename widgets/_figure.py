"""The live view of a chart: a small anywidget that holds the whole current figure and redraws it.

Why not plotly's ``FigureWidget``: it ships all of plotly.js (5 MB) as each figure's anywidget module
and, after the first display, sends changes as deltas. On a busy machine anywidget gives up on a
module that takes more than 2 s to load ("[anywidget] Failed to initialize model.") and from then on
drops every message to that model, so a view created then shows the figure as first displayed for
good (empty, in a live notebook), and a missed delta is never repaired. Here the synced state *is*
the current figure: a view created at any time draws it, every redraw sends it whole (arrays as binary
buffers, a few tens of kB), and the module is a few kilobytes. plotly.js goes to the page once, in a
``_PlotlyLibrary`` model shared by every figure of the kernel.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["encode_figure", "live_figure_class", "plotly_library"]

_JS = Path(__file__).with_name("_figure.js")
_TYPED = {"float64", "float32", "int32", "int16", "int8", "uint32", "uint16", "uint8"}


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "b":
            return value.astype(np.uint8) if value.ndim == 1 else value.tolist()
        if value.ndim == 1 and value.dtype.name in _TYPED:
            arr = np.ascontiguousarray(value)
            return {"__ndarray__": arr.dtype.name, "data": arr.data}
        if value.ndim == 1 and value.dtype.kind in "iuf":
            arr = np.ascontiguousarray(value, dtype=np.float64)
            return {"__ndarray__": "float64", "data": arr.data}
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def encode_figure(fig: Any, rev: int = 0) -> dict[str, Any]:
    """A plotly figure as the live view's state: plain JSON with 1-d numeric arrays as binary buffers.

    The layout's ``template`` (a large, constant dict) is left out: the view keeps it in its own trait.

    Examples
    --------
    >>> import plotly.graph_objects as go
    >>> state = encode_figure(go.Figure(go.Scatter(x=np.array([1.0, 2.0]), y=[3, 4])), rev=7)
    >>> state["rev"], state["data"][0]["x"]["__ndarray__"], state["data"][0]["y"], "template" in state["layout"]
    (7, 'float64', [3, 4], False)
    """
    layout = {k: v for k, v in fig._layout.items() if k != "template"}
    return {"data": _encode(fig._data), "layout": _encode(layout), "rev": rev}


@functools.cache
def _plotly_js_gz() -> bytes:
    """plotly.js as shipped with the plotly package, gzipped once per process (4.8 MB -> ~1.4 MB)."""
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return gzip.compress(source.read_bytes(), compresslevel=6, mtime=0)


_library: list[Any] = []


def plotly_library() -> Any:
    """The kernel's one ``_PlotlyLibrary`` widget (plotly.js for every live figure), made on first use."""
    if _library and _library[0].comm is not None:
        return _library[0]
    import ipywidgets
    import traitlets

    class _PlotlyLibrary(ipywidgets.Widget):  # type: ignore[misc]  # ipywidgets is untyped: Widget is Any
        """Never displayed: its state carries plotly.js to the page once for all figures."""

        source = traitlets.Bytes().tag(sync=True)

    _library[:] = [_PlotlyLibrary(source=_plotly_js_gz())]
    return _library[0]


@functools.cache
def live_figure_class() -> type:
    """The live view class: an anywidget whose synced ``figure`` is the complete current figure.

    ``sync()`` sends the figure it was made with (after the chart redrew it); a view created later gets
    the same state from the kernel. ``rendered`` counts the views that drew it (each says so once).

    Examples
    --------
    >>> import plotly.graph_objects as go
    >>> fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    >>> view = live_figure_class()(fig)
    >>> fig.data[0].y = [5, 6]
    >>> view.sync()
    >>> view.figure["data"][0]["y"], view.figure["rev"]
    ([5, 6], 2)
    >>> view.sync()  # unchanged: nothing sent
    >>> view.figure["rev"]
    2
    """
    import anywidget
    import traitlets

    class LiveFigure(anywidget.AnyWidget):
        _esm = traitlets.Unicode(_JS.read_text(encoding="utf-8")).tag(sync=True)
        figure = traitlets.Dict().tag(sync=True)
        template = traitlets.Dict().tag(sync=True)  # the layout's template, sent once (it never changes)
        _lib = traitlets.Unicode("").tag(sync=True)

        def __init__(self, fig: Any, **kwargs: Any) -> None:
            template = _encode(fig._layout.get("template", {}))
            super().__init__(_lib=f"IPY_MODEL_{plotly_library().model_id}", template=template, **kwargs)
            self.fig = fig
            self.rev = 0
            self.rendered = 0
            self.on_msg(self._on_view_msg)
            self.sync()

        def sync(self) -> None:
            """Send the whole current figure to every view (and keep it for views created later).

            Nothing is sent when the figure did not change.
            """
            state = encode_figure(self.fig, self.rev)
            if state != self.figure:
                self.rev += 1
                state["rev"] = self.rev
                self.figure = state

        def _on_view_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
            if isinstance(content, dict) and content.get("event") == "rendered":
                self.rendered += 1

    return LiveFigure
