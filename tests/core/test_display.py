"""Rich displays: what a notebook shows for a pipeline, a finished run and a running one."""

from __future__ import annotations

from pathlib import Path

from streamlab import DuckDBSink, ManualClock, Pipeline, TumblingWindow, agg
from streamlab.testing import ListSink, ListSource


def _pipeline(db: Path) -> Pipeline:
    p = Pipeline(
        ListSource([b'{"event_id": "a", "event_type": "x", "timestamp": 60}', b"{bad"]), name="shown"
    )
    events = p.parse({"event_id": "string", "event_type": "category", "timestamp": "timestamp"})
    counts = events.dedup("event_id", ttl="1h").window(TumblingWindow("1m"), key="event_type", delay="5s")
    counts.agg(agg.count()).to(DuckDBSink(str(db), "counts"))
    events.dead_letter.to(ListSink())
    return p


def test_pipeline_html_shows_each_steps_parameters(tmp_path: Path) -> None:
    page = _pipeline(tmp_path / "out.duckdb")._repr_html_()
    for shown in ("tumbling 1m", "delay=5s", "ttl=1h", "key=event_type", "table=counts", "out.duckdb"):
        assert shown in page, shown


def test_run_result_html_shows_status_counts_and_watermark(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b'{"timestamp": 60}', b"{bad"]), name="r")
    result = (
        p.parse({"timestamp": "timestamp"})
        .window(TumblingWindow("1m"))
        .agg(agg.count())
        .pipeline.run(clock=ManualClock(0))
    )
    page = result._repr_html_()
    assert "finished" in page and "events in" in page and "1970-01-01T00:01:00" in page
    assert "dead_letter: 1" in page  # the parse step's outputs, counted
    assert "<code>parse.dead_letter</code></td><td>1</td>" in page  # collected, with its rows


def test_run_handle_html_says_where_the_sinks_write(tmp_path: Path) -> None:
    p = _pipeline(tmp_path / "out.duckdb")
    handle = p.start(clock=ManualClock(0))
    handle.wait(timeout=60)
    page = handle._repr_html_()
    assert "Run of pipeline shown" in page and "DuckDBSink(" in page and "counts" in page
    assert handle.status in page
