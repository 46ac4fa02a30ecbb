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
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamlab.serde import escape_surrogates

__all__ = ["live_figure_class", "plotly_library"]

_JS = Path(__file__).with_name("_figure.js")
# dtypes plotly.js reads as typed arrays, by numpy's one-letter code (a cheap lookup on every redraw)
_WIRE = {
    np.dtype(n).char: n for n in ("float64", "float32", "int32", "int16", "int8", "uint32", "uint16", "uint8")
}


def _encode(value: Any) -> Any:
    """Plain JSON for a view; a 1-d numeric array becomes ``{"__ndarray__": dtype, "data": its bytes}``.

    The bytes go as a ``uint8`` memoryview: they travel as one binary buffer, and two states compare
    byte for byte (NaN equals NaN), so an unchanged figure is recognised and not sent again. A NaN or
    infinity outside such an array becomes None (a gap, to plotly.js): the kernel sends messages as
    strict JSON, which has no form for them, and jupyter_client printed a warning into the notebook.

    Examples
    --------
    >>> _encode({"y": [1.5, float("nan"), np.float64("inf")], "text": np.array(["a", np.nan], dtype=object)})
    {'y': [1.5, None, None], 'text': ['a', None]}
    """
    if isinstance(value, float):  # np.float64 too
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        # a lone surrogate as its escape: the kernel sends messages as UTF-8, which has no form for one
        return value if value.isascii() else escape_surrogates(value)
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            return _encode(value.tolist())
        name = _WIRE.get(value.dtype.char)
        if name is None:
            if value.dtype.kind == "b":
                value, name = value.view(np.uint8), "uint8"
            elif value.dtype.kind in "iuf":  # int64 and the like: plotly.js has no typed array for them
                value, name = value.astype(np.float64), "float64"
            elif value.dtype.kind in "OU":  # objects or text: each string checked
                return _encode(value.tolist())
            else:  # times and the like: no text in them
                return value.tolist()
        return {"__ndarray__": name, "data": np.ascontiguousarray(value).view(np.uint8).data}
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return _encode(value.item())
    return value


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

    It is made from a figure's constant parts (``template``, the other layout keys, the traces'
    styles), encoded once; ``show(traces, layout)`` sends the whole figure, with each trace's changing
    properties and the layout keys that change put over them, to every view, and a view created later
    gets the same state from the kernel. No plotly object is involved after construction: a redraw
    encodes arrays straight into the state. ``rendered`` counts the views that drew it (each says so once).

    Examples
    --------
    >>> view = live_figure_class()(layout={"height": 300}, traces=[{"type": "scatter", "mode": "lines"}])
    >>> view.show([{"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0])}], {"title": {"text": "two"}})
    True
    >>> state = view.figure
    >>> state["rev"], state["layout"], state["data"][0]["mode"], np.frombuffer(state["data"][0]["y"]["data"]).tolist()
    (1, {'height': 300, 'title': {'text': 'two'}}, 'lines', [3.0, 4.0])
    >>> view.show([{"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0])}], {"title": {"text": "two"}})
    False
    """
    import anywidget
    import traitlets

    class LiveFigure(anywidget.AnyWidget):
        _esm = traitlets.Unicode(_JS.read_text(encoding="utf-8")).tag(sync=True)
        figure = traitlets.Dict().tag(sync=True)
        template = traitlets.Dict().tag(sync=True)  # the layout's template, sent once (it never changes)
        _lib = traitlets.Unicode("").tag(sync=True)

        def __init__(
            self,
            *,
            template: Mapping[str, Any] | None = None,
            layout: Mapping[str, Any] | None = None,
            traces: Sequence[Mapping[str, Any]] = (),
        ) -> None:
            super().__init__(_lib=f"IPY_MODEL_{plotly_library().model_id}", template=_encode(template or {}))
            # what never changes, encoded once
            self._constant = _encode(layout or {})
            self._styles = [_encode(t) for t in traces]
            self.rev = 0
            self.rendered = 0
            self._shown: dict[str, Any] | None = None
            self.on_msg(self._on_view_msg)

        def show(self, traces: list[Mapping[str, Any]], layout: Mapping[str, Any]) -> bool:
            """Send the whole figure to every view (and keep it for views created later); False if unchanged.

            ``traces`` are each trace's changing properties (arrays as numpy), put over its constant
            ones; entries past the constant traces are whole traces. ``layout`` holds the layout keys
            that change; they replace those of the constant layout.
            """
            styles = self._styles
            data = [
                {**styles[i], **_encode(t)} if i < len(styles) else _encode(t) for i, t in enumerate(traces)
            ]
            state = {"data": data, "layout": {**self._constant, **_encode(layout)}}
            if state == self._shown:
                return False
            self._shown = state
            self.rev += 1
            # "rev" first: traitlets compares old and new state, and stops at the first key
            self.figure = {"rev": self.rev, **state}
            return True

        def _on_view_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
            if isinstance(content, dict) and content.get("event") == "rendered":
                self.rendered += 1

    return LiveFigure
