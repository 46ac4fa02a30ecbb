"""verify(target="flink", flink_job="sql") compares times at the SQL job's resolution, the millisecond.

``main.py`` holds event times as ``TIMESTAMP_LTZ(3)`` and writes them to the millisecond, truncated toward
the past (its documented semantics), but ``verify`` compared them at the microsecond, the DataStream
job's resolution: a session window starting at an event time with digits below the millisecond
(``...00:00:01.000500Z``, or ``1969-12-31T23:59:59.999999Z``, which the job writes as ``.999Z``) was
reported as differing rows where the job was right. The notes now say which times were compared
truncated to the millisecond.
"""

from __future__ import annotations

import json
from pathlib import Path

from streamlab import Pipeline, SessionWindow, agg
from streamlab.export import verify
from streamlab.testing import ListSource


def _event(i: int, t: str, key: str) -> bytes:
    return json.dumps({"event_id": f"e{i}", "k": key, "timestamp": t}).encode()


def test_sql_job_times_are_compared_to_the_millisecond(flink_python: str, tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="ms")
    events = p.parse({"event_id": "string", "k": "string", "timestamp": "timestamp"})
    events.window(SessionWindow("5s"), key="k", step_id="s").agg(agg.count())
    sample = [
        _event(0, "1969-12-31T23:59:59.999999Z", "a"),
        _event(1, "1970-01-01T00:00:02Z", "a"),
        _event(2, "2024-01-01T00:00:01.000500Z", "b"),
        _event(3, "2024-01-01T00:00:03.250Z", "b"),
        _event(4, "2024-01-01T00:01:00Z", "b"),
    ]
    report = verify(p, sample, target="flink", workdir=tmp_path, flink_python=flink_python, flink_job="sql")
    assert report.counts["s"] == {"streamlab": 3, "flink": 3}
    assert report.equal, report.diff.to_string()
    starts = sorted(report.exported["s"]["window_start"])
    assert starts[0] == "1969-12-31T23:59:59.999Z"  # the job's own time, truncated toward the past
    assert any("digits below the millisecond" in n and "TIMESTAMP_LTZ(3)" in n for n in report.notes), (
        report.notes
    )
