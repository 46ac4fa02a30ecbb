"""Widget arguments that cannot work are refused when the widget is made, saying which argument and what
to pass.

Before: ``LiveTable(df, columns=['cnt'])`` (a column the frame lacks) and ``columns='count'`` (one name,
read as its letters) showed a table without columns; ``LiveTable(rows='5')`` was a bare TypeError;
``AnomalyChart(threshold=nan)`` flagged nothing and ``threshold='0.5'`` failed at the first redraw;
``Refresher(5)`` failed on its first tick in its own thread; ``ControlPanel(speeds={'fast': -1})`` failed
when the speed was chosen; ``Dashboard(handle, ['x'])`` was an AttributeError on ``'managed'``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
import streamlab.widgets as widgets
from streamlab.widgets import AnomalyChart, ControlPanel, Dashboard, LiveTable, Refresher, WindowChart

from streamlab import ManualClock, Pipeline
from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector
from streamlab.runtime import RunHandle
from streamlab.testing import ListSource

TABLE = pd.DataFrame({"count": [1, 2], "k": ["a", "b"]})
SCORES = pd.DataFrame(
    {
        "timestamp": pd.date_range("2024-01-01", periods=2, freq="s", tz="UTC"),
        "score": [0.1, 0.9],
        "is_anomaly": [False, True],
    }
)


@pytest.fixture
def handle() -> Iterator[RunHandle]:
    running = Pipeline(ListSource([{"x": 1}])).start(clock=ManualClock(0), paused=True)
    yield running
    running.stop()


#: name -> (make the widget from a run handle, the error's type, text the error holds)
REFUSED: dict[str, tuple[Callable[[RunHandle], Any], type[Exception], str]] = {
    "table column missing": (
        lambda h: LiveTable(TABLE, columns=["cnt"], auto_refresh=False),
        ValueError,
        "has no column(s) ['cnt']",
    ),
    "table rows as text": (
        lambda h: LiveTable(TABLE, rows="5", auto_refresh=False),  # type: ignore[arg-type]
        ValueError,
        "LiveTable(rows='5'): show at least one row, e.g. rows=15",
    ),
    "threshold nan": (
        lambda h: AnomalyChart(SCORES, threshold=float("nan"), auto_refresh=False),
        ValueError,
        "AnomalyChart(threshold=nan): give a finite number",
    ),
    "threshold text": (
        lambda h: AnomalyChart(SCORES, threshold="0.5", auto_refresh=False),  # type: ignore[arg-type]
        ValueError,
        "AnomalyChart(threshold='0.5')",
    ),
    "threshold set to text": (
        lambda h: AnomalyChart(SCORES, auto_refresh=False).set_threshold("0.5"),  # type: ignore[arg-type]
        ValueError,
        "set_threshold(threshold='0.5')",
    ),
    "refresher callback": (lambda h: Refresher(5), TypeError, "pass a function to call"),  # type: ignore[arg-type]
    "panel speed": (
        lambda h: ControlPanel(h, speeds={"fast": -1}, auto_refresh=False),
        ValueError,
        "ControlPanel(speeds={'fast': -1}): a speed is a positive, finite factor",
    ),
    "dashboard chart": (
        lambda h: Dashboard(h, ["x"], controls=False, gauges=False, debugger=False, diagram=False),  # type: ignore[list-item]
        TypeError,
        "a chart is a streamlab widget, got str",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_widget_argument_that_cannot_work_is_refused_when_made(name: str, handle: RunHandle) -> None:
    make, error, says = REFUSED[name]
    with pytest.raises(error) as e:
        make(handle)
    assert says in str(e.value), e.value


def test_one_column_name_is_that_column_and_good_arguments_still_work(handle: RunHandle) -> None:
    assert LiveTable(TABLE, columns="count", auto_refresh=False).frame().columns.tolist() == ["count"]
    assert LiveTable(TABLE, columns=["k"], rows=1, auto_refresh=False).frame()["k"].tolist() == ["b"]
    chart = AnomalyChart(SCORES, threshold=0.5, auto_refresh=False)
    chart.set_threshold(None)
    assert chart.flagged_count() == 1
    ControlPanel(handle, speeds={"slow": 0.5, "max": None}, auto_refresh=False)


def test_a_missing_column_is_hinted_with_the_parameters_of_that_widget() -> None:
    """The hint named value= and key= for every widget: AnomalyChart (on a detect output without a time
    column; show() now gives a LiveTable there) takes neither."""
    p = Pipeline(ListSource([{"v": float(i % 7)} for i in range(20)]))
    p.stream.detect(
        GaussianScorerDetector(), features=["v"], threshold=FixedThresholdFilter(0.99), step_id="detect"
    )
    running = p.start(clock=ManualClock(0), paused=True)
    try:
        with pytest.raises(ValueError, match=r"no column\(s\) \['timestamp'\]") as e:
            AnomalyChart(running, "detect")
        assert str(e.value).endswith("Pick from those with time=..., score=... or flag=...")
        with pytest.raises(ValueError, match=r"Pick from those with value=\.\.\. or key=\.\.\.$"):
            WindowChart(running, "detect", value="v")
        with pytest.raises(ValueError, match=r"Pick from those with columns=\.\.\.$"):
            LiveTable(running, "detect", columns=["ts"])
    finally:
        running.stop()


def test_the_missing_column_hints_name_real_parameters() -> None:
    from streamlab.widgets._base import COLUMN_PARAMETERS

    for name, params in COLUMN_PARAMETERS.items():
        assert set(params) <= set(inspect.signature(getattr(widgets, name)).parameters), name
