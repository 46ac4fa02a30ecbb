"""The demo's HTML report: titled axes, a legend of event types only, whole dead-letter reasons."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from streamlab._report import write_report


def test_report_axes_legend_and_reasons(tmp_path: Path) -> None:
    start = pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"])
    windows = pd.DataFrame({"window_start": start, "event_type": ["click", "view"], "count": [3, 4]})
    late = pd.DataFrame({"window_start": start[:1]})
    dead = pd.DataFrame({"reason": ["missing required field 'timestamp'", "invalid JSON: Expecting value"]})
    page = write_report(
        tmp_path / "r.html",
        title="t",
        windows=windows,
        key="event_type",
        value="count",
        late=late,
        dead_letter=dead,
        metrics={"events_in": 9},
    ).read_text()
    for title in ("window start (UTC)", "late events", "count (stacked by event_type)", "records"):
        assert f'"text":"{title}"' in page, title
    assert "missing required field\\u003cbr\\u003e" in page  # wrapped (<br>, escaped in JSON), not clipped
    assert '"name":"dead letter","orientation":"h","showlegend":false' in page  # titled, not in the legend
    assert "<td>9</td>" in page
