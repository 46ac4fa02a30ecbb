"""``job.sql`` parses each time field once, in a few kilobytes.

Each part of an ISO-8601 time was read with ``REGEXP_EXTRACT`` of the whole time pattern, and the time
expression was written four times per time field (its column, ``__time_missing`` and twice in
``__mistyped``): a parse of an id and a time gave a ``job.sql`` of 49 KB with 149 regular expressions
and a 24 KB line, which Flink took about a minute to plan. The time expression is now written once
per field, in the table's column; the queries check the column.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.export import to_flink
from streamlab.testing import ListSource


def _job_sql(tmp_path: Path, fields: dict[str, str], flink_version: str) -> str:
    p = Pipeline(ListSource([b"{}"]), name="t")
    p.parse(fields).dedup("event_id", ttl="10m", step_id="d")
    return to_flink(p, tmp_path / "out", source="files", flink_version=flink_version).read("job.sql")


@pytest.mark.parametrize("flink_version", ["2.3", "1.18"])
def test_job_sql_parses_each_time_field_once_and_small(tmp_path: Path, flink_version: str) -> None:
    one = _job_sql(tmp_path / "one", {"event_id": "string", "timestamp": "timestamp"}, flink_version)
    assert len(one.encode()) < 16_000  # 49 KB before
    assert max(len(line) for line in one.splitlines()) < 8_000  # 24 KB before
    assert one.count("REGEXP") <= 8  # 149 before
    assert one.count("REGEXP(TRIM(JSON_VALUE(`line`, '$.timestamp'))") == 1  # the time expression, once
    assert "__mistyped" not in one and "__time_missing" not in one

    # a second time field adds its own expression, once, and nothing to the first
    two = _job_sql(
        tmp_path / "two", {"event_id": "string", "timestamp": "timestamp", "seen": "timestamp"}, flink_version
    )
    assert two.count("REGEXP(TRIM(JSON_VALUE(`line`, '$.seen'))") == 1
    assert two.count("REGEXP(TRIM(JSON_VALUE(`line`, '$.timestamp'))") == 1
    assert len(two.encode()) < 2 * len(one.encode())
