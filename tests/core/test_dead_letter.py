"""Dead letters: every step's declared dead-letter columns are the columns it writes, in that order."""

from __future__ import annotations

import json
from typing import Any

from river import anomaly

from streamlab import Pipeline, TumblingWindow, agg
from streamlab._dead_letter import (
    DEAD_LETTER_COLUMNS,
    PARSE_DEAD_LETTER_COLUMNS,
    dead_letter_columns,
    dead_letter_row,
    raw_dead_letter_row,
)
from streamlab.testing import ListSource

SCHEMA = {"user_id": "string", "timestamp": "timestamp", "seen": "timestamp", "amount": "float64"}


def _record(i: int, **extra: Any) -> bytes:
    row = {"user_id": f"u{i % 2}", "timestamp": f"2024-01-01T00:00:{i:02d}Z", "amount": float(i), **extra}
    return json.dumps(row).encode()


def _fails_on_three(e: dict[str, Any]) -> Any:
    if e["amount"] == 3.0:
        raise ValueError("three")
    return e


def test_declared_dead_letter_columns_are_the_written_ones() -> None:
    records = [_record(i, seen=f"2024-01-01T00:00:{i:02d}Z") for i in range(8)]
    records += [b"not json", _record(9), _record(10, user_id=None, seen="2024-01-01T00:00:10Z")]
    p = Pipeline(ListSource(records))
    parsed = p.parse(SCHEMA)
    kept = parsed.filter_one(_fails_on_three)
    kept.map_one(lambda e: {**e, "amount": 1 / (e["amount"] - 4)})
    kept.window(TumblingWindow("1m"), key="user_id", time="seen").agg(agg.count())
    kept.detect(anomaly.HalfSpaceTrees(seed=1), features=["amount"], key="user_id")
    result = p.run()
    refs = [r for r in result.outputs if r.endswith(".dead_letter")]
    assert len(refs) == 5
    for ref in refs:
        frame = result[ref]
        assert len(frame) and p.columns_of(ref) is not None, ref
        assert list(frame.columns) == list(p.columns_of(ref) or ()), ref
    assert list(result["parse.dead_letter"].columns[:3]) == list(PARSE_DEAD_LETTER_COLUMNS)
    assert list(result["filter.dead_letter"].columns[:2]) == list(DEAD_LETTER_COLUMNS)
    detect = next(r for r in refs if r.startswith("detect"))
    assert list(result[detect].columns[-2:]) == ["reason", "step_id"]  # detectors: the row first


def test_exported_rows_match_the_runtime_columns() -> None:
    assert list(dead_letter_row("r", "s", {"x": 1})) == list(dead_letter_columns(("x",)) or ())
    assert list(raw_dead_letter_row(b"\xff", "r", "s")) == list(PARSE_DEAD_LETTER_COLUMNS)
    assert raw_dead_letter_row(b"\xff", "r", "s")["raw"] == "\ufffd"
