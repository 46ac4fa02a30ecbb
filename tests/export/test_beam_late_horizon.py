"""A row later than the Beam export's late horizon (Beam has dropped its window's state) goes to the
``late`` output, as streamlab reports it, where Beam's garbage collection dropped it without a trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, SlidingWindow, TumblingWindow, agg
from streamlab.export import verify
from streamlab.testing import ListSource

LINES = [
    b'{"timestamp": "2024-01-03T00:00:00Z"}',
    b'{"timestamp": "2024-01-02T23:00:00Z"}',  # 1 h late: within the horizon, a late pane
    b'{"timestamp": "2024-01-01T00:00:00Z"}',  # 2 days late: past the 1-day horizon
]


@pytest.mark.slow
@pytest.mark.parametrize("window", [TumblingWindow("1m"), SlidingWindow("2m", "1m")], ids=repr)
def test_rows_past_the_late_horizon_go_to_late_on_beam(tmp_path: Path, window: object) -> None:
    pytest.importorskip("apache_beam")
    p = Pipeline(ListSource([b"{}"]), name="oldlate")
    p.parse({"timestamp": "timestamp"}).window(window, delay="1m").agg(agg.count())  # type: ignore[arg-type]
    report = verify(p, LINES, "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    late = report.exported["window.late"]
    assert len(late) == len(report.local["window.late"]) == (2 if isinstance(window, TumblingWindow) else 4)
