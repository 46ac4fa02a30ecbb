"""Live plotly widgets for JupyterLab and Voila, fed by a running pipeline or a DataFrame.

``show(handle, ref)`` (also ``stream.show()`` and ``handle.show(ref)``) picks a live view for one output.
Contract: widgets subscribe to a :class:`~streamlab.RunHandle` (the pipeline thread only appends to
bounded buffers) and redraw at most ``max_fps`` times per second from a :class:`Refresher` object that
``close()`` stops. Outside a notebook every chart gives a static ``figure()`` and ``to_html(path)``.
plotly, ipywidgets and anywidget are imported only when a figure or view is built.

Examples
--------
>>> import pandas as pd
>>> from streamlab.widgets import LiveTable
>>> LiveTable(pd.DataFrame({"x": [1, 2, 3]}), rows=2).frame()["x"].tolist()
[2, 3]
"""

from ._base import LiveWidget, resync_figure
from ._charts import AnomalyChart, LiveTable, WindowChart
from ._diagram import PipelineDiagram
from ._monitors import LagGauge, LateDeadLetterCounter, ThroughputGauge, WatermarkDebugger
from ._panel import ControlPanel, Dashboard
from ._refresh import FrameBuffer, Refresher
from ._show import show

__all__ = [
    "AnomalyChart",
    "ControlPanel",
    "Dashboard",
    "FrameBuffer",
    "LagGauge",
    "LateDeadLetterCounter",
    "LiveTable",
    "LiveWidget",
    "PipelineDiagram",
    "Refresher",
    "ThroughputGauge",
    "WatermarkDebugger",
    "WindowChart",
    "resync_figure",
    "show",
]
