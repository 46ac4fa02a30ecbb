"""A row later than the Beam export's late horizon (Beam has dropped its window's state) goes to the
``late`` output, as streamlab reports it, where Beam's garbage collection dropped it without a trace;
a late row of a session window goes there before Beam's merging windows see it."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
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


def _at(second: int, user: str = "u") -> bytes:
    return b'{"timestamp": "2024-01-01T00:%02d:%02dZ", "user_id": "%s"}' % (
        second // 60,
        second % 60,
        user.encode(),
    )


# u: [0, 55) closes at 60; 50 would join it (late in streamlab, a merge into a fired session in Beam);
# 30 and 150 come after their own sessions closed; v likewise
SESSION_LINES = [_at(0), _at(10), _at(0, "v"), _at(60), _at(50), _at(200), _at(30), _at(230, "v"), _at(150)]
SESSION_LINES += [_at(20, "v"), _at(400)]


@pytest.mark.slow
def test_late_rows_of_sessions_go_to_late_on_beam(tmp_path: Path) -> None:
    """streamlab's session rule (``assign_one_by_one``) decides which rows are late before Beam's merging
    ``Sessions`` see them: a late row merged into a fired session held the watermark for good and the
    DirectRunner stopped ("pipeline stall", reported as "TypeError: exceptions must derive from
    BaseException")."""
    pytest.importorskip("apache_beam")
    p = Pipeline(ListSource([b"{}"]), name="sesslate")
    ev = p.parse({"timestamp": "timestamp", "user_id": "string"})
    ev.window(SessionWindow("45s"), key="user_id").agg(agg.count())
    report = verify(p, SESSION_LINES, "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["window"] == {"streamlab": 6, "beam": 6}
    assert report.counts["window.late"] == {"streamlab": 4, "beam": 4}
