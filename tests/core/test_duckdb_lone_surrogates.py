"""DuckDBSink keeps a row holding a lone surrogate anywhere in a JSON object aside, whatever the batch.

A lone surrogate (an escaped ``"\\ud800"`` in JSON: valid JSON, no UTF-8 form) in a text value went to
``<table>_rejected``, but one in an object's key (``{"properties": {"\\udc00": 1}}``, the default
schema's object field) failed the run with DuckDB's ``cannot encode str as UTF-8`` whenever the row was
in the batch that created the table (DuckDB described the raw dicts), and so on every restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from streamlab import DuckDBSink, Pipeline
from streamlab.testing import ListSource

GOOD = [
    json.dumps({"event_id": f"g{i}", "timestamp": "2024-01-01T00:00:00Z", "properties": {"a": i}}).encode()
    for i in range(3)
]
HOSTILE = {
    "object key": b'{"\\udc00": 1}',
    "nested key": b'{"a": {"\\ud800": 1}}',
    "list value": b'{"a": ["\\ud800"]}',
    "nested value": b'{"a": {"b": "\\udbff"}}',
}


@pytest.mark.parametrize("batch_size", [1, 2, None])
def test_a_lone_surrogate_goes_to_rejected_at_any_batch_size(tmp_path: Path, batch_size: int | None) -> None:
    # a bad row first (in the batch that creates the table), between good ones, and last
    bad = [
        b'{"event_id": "%s", "timestamp": "2024-01-01T00:00:00Z", "properties": %s}' % (name.encode(), value)
        for name, value in HOSTILE.items()
    ]
    events = [bad[0], GOOD[0], bad[1], GOOD[1], bad[2], GOOD[2], bad[3]]
    path = tmp_path / "o.duckdb"
    p = Pipeline(ListSource(events))
    p.parse().to(DuckDBSink(path, "events", key=None))
    p.run(batch_size=batch_size) if batch_size else p.run()
    with duckdb.connect(str(path), read_only=True) as con:
        kept = sorted(r[0] for r in con.execute("SELECT event_id FROM events").fetchall())
        rejected = con.execute("SELECT reject_reason, row FROM events_rejected").fetchall()
    assert kept == ["g0", "g1", "g2"]
    assert sorted(json.loads(row)["event_id"] for _, row in rejected) == sorted(HOSTILE)
    assert all("lone surrogate" in reason for reason, _ in rejected)
