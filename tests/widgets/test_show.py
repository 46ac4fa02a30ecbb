"""show() picks a view that can draw the output: a numeric aggregate for a chart, else a table."""

from __future__ import annotations

import pandas as pd
from streamlab.widgets import AnomalyChart, LiveTable, WindowChart, show

from streamlab import ListSource, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector

EVENTS = pd.DataFrame(
    {
        "k": ["a", "b"] * 150,
        "status": ["ok", "err"] * 150,
        "amount": [1.5, 2.5] * 150,
        "timestamp": pd.date_range("2024-01-01", periods=300, freq="s", tz="UTC"),
    }
)


def finished_window(*aggs: agg.Aggregator) -> Pipeline:
    p = Pipeline(ReplaySource(EVENTS, speed=None, batch_size=100))
    p.window(TumblingWindow("1m"), key="k").agg(*aggs)
    return p


def test_show_draws_the_first_numeric_aggregate_of_a_window_and_tables_text_only_windows() -> None:
    # agg.last("status") first: show() drew its text as a WindowChart of 0 points, count beside it unused
    handle = finished_window(agg.last("status"), agg.last("timestamp"), agg.count(), agg.sum("amount")).start(
        clock=ManualClock(0)
    )
    handle.wait(30)
    chart = show(handle, "window", auto_refresh=False)
    assert isinstance(chart, WindowChart) and (chart.value, chart.key) == ("count", "k")
    assert {k: s.tolist() for k, s in chart.series().items()} == {"a": [30.0] * 5, "b": [30.0] * 5}
    chosen = show(handle, "window", value="last_status", auto_refresh=False)  # asked for: as asked
    assert isinstance(chosen, WindowChart) and chosen.value == "last_status"
    for widget in (chart, chosen):
        widget.close()

    texts = finished_window(agg.last("status"), agg.first("timestamp")).start(clock=ManualClock(0))
    texts.wait(30)
    table = show(texts, "window", rows=4, auto_refresh=False)
    assert isinstance(table, LiveTable) and table.rows == 4
    assert table.frame().equals(texts.outputs["window"].tail(4).reset_index(drop=True))
    table.close()


def scored(other: str) -> Pipeline:
    """Readings with a column ``other`` beside the feature, scored and flagged by a detect step."""
    p = Pipeline(ListSource([{"v": float(i % 7), other: i} for i in range(200)], batch_size=50))
    p.stream.detect(
        GaussianScorerDetector(grace_period=5),
        features=["v"],
        threshold=FixedThresholdFilter(0.99),
        step_id="detect",
    )
    return p


def test_show_tables_scored_events_without_a_time_column() -> None:
    # the scores had no timestamp column: show() made an AnomalyChart, which raised "no column(s) ['timestamp']"
    handle = scored("k").start(clock=ManualClock(0))
    handle.wait(30)
    table = show(handle, "detect", auto_refresh=False)
    assert isinstance(table, LiveTable)
    assert {"score", "is_anomaly"} <= set(table.frame().columns) and len(table.frame()) == 15
    table.close()

    handle = scored("timestamp").start(clock=ManualClock(0))
    handle.wait(30)
    chart = show(handle, "detect", auto_refresh=False)
    assert isinstance(chart, AnomalyChart) and chart.time == "timestamp"
    chart.close()
