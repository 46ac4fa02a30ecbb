"""``job.sql`` parses each time field once, in a few kilobytes.

Each part of an ISO-8601 time was read with ``REGEXP_EXTRACT`` of the whole time pattern, and the time
expression was written four times per time field (its column, ``__time_missing`` and twice in
``__mistyped``): a parse of an id and a time gave a ``job.sql`` of 49 KB with 149 regular expressions
and a 24 KB line, which Flink took about a minute to plan. The time expression is now written once
per field, in the table's column; the queries check the column.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.export import to_flink
from streamlab.export.flink import _strip_sql
from streamlab.testing import ListSource

TIME = "REGEXP({}, '^"  # the time expression's pattern match, on the stripped text of a field


def _job_sql(tmp_path: Path, fields: dict[str, str], flink_version: str) -> str:
    p = Pipeline(ListSource([b"{}"]), name="t")
    p.parse(fields).dedup("event_id", ttl="10m", step_id="d")
    return to_flink(p, tmp_path / "out", source="files", flink_version=flink_version).read("job.sql")


@pytest.mark.parametrize("flink_version", ["2.3", "1.18", "1.16"])
def test_job_sql_parses_each_time_field_once_and_small(tmp_path: Path, flink_version: str) -> None:
    one = _job_sql(tmp_path / "one", {"event_id": "string", "timestamp": "timestamp"}, flink_version)
    assert len(one.encode()) < 16_000  # 49 KB before
    assert max(len(line) for line in one.splitlines()) < 8_000  # 24 KB before
    assert one.count("REGEXP") <= 8  # 149 before
    stamp, seen = (_strip_sql(f"JSON_VALUE(`line`, '$.{x}')") for x in ("timestamp", "seen"))
    assert one.count(TIME.format(stamp)) == 1  # the time expression, once
    assert "__mistyped" not in one and "__time_missing" not in one

    # a second time field adds its own expression, once, and nothing to the first
    two = _job_sql(
        tmp_path / "two", {"event_id": "string", "timestamp": "timestamp", "seen": "timestamp"}, flink_version
    )
    assert two.count(TIME.format(seen)) == 1
    assert two.count(TIME.format(stamp)) == 1
    assert len(two.encode()) < 2 * len(one.encode())


@pytest.mark.parametrize("flink_version", ["2.3", "1.18", "1.16"])
def test_job_sql_strips_time_texts_of_every_whitespace_str_strip_removes(
    tmp_path: Path, flink_version: str
) -> None:
    # SQL's TRIM(x) removes spaces alone: "\t2024-01-01T00:00:00Z" was a dead letter of the job that
    # streamlab reads (test_flink_sql_time_text.py runs it on Flink 2.3; this checks each version's text)
    sql = _job_sql(tmp_path, {"event_id": "string", "timestamp": "timestamp"}, flink_version)
    assert "TRIM(JSON_VALUE" not in sql
    stamp = _strip_sql("JSON_VALUE(`line`, '$.timestamp')")
    assert sql.count(TIME.format(stamp)) == 1
    whitespace = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert (
        "\t" in whitespace
        and "\u3000" in whitespace
        and all(f"\\{ord(c):04X}" in _strip_sql("x") for c in whitespace)
    )
    assert _strip_sql("x").count("\\") == len(whitespace)
    assert f"LOWER({stamp}) NOT IN ('', 'nat')" in sql  # "\t" is no time, as "" is
