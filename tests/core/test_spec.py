"""The YAML spec round-trips and the rebuilt pipeline computes the same results."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from streamlab import DuckDBSink, ManualClock, Pipeline, ReplaySource, SlidingWindow, TumblingWindow, agg
from streamlab.spec import pipeline_to_mermaid


def is_big(batch: pd.DataFrame):
    return batch["amount"] > 10


@pytest.fixture
def events_file(tmp_path):
    lines = [
        json.dumps(
            {
                "event_id": f"e{i % 40}",
                "event_type": "ab"[i % 2],
                "user_id": f"u{i % 3}",
                "timestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                "properties": {"amount": i},
            }
        )
        for i in range(120)
    ]
    lines.insert(5, "not json")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def build(path, db) -> Pipeline:
    p = Pipeline(ReplaySource(path, raw=True), name="spec-test")
    ev = p.parse(
        {
            "event_id": "string",
            "event_type": "string",
            "user_id": "string",
            "timestamp": "timestamp",
            "amount": {"type": "float64", "path": "properties.amount"},
        }
    )
    big = ev.dedup("event_id", ttl="10m").filter_many(is_big).with_columns(double="amount * 2")
    w = big.window(SlidingWindow("2m", every="1m"), key="event_type", delay="5s").agg(
        agg.count(), agg.sum("double"), agg.quantile("amount", 0.5)
    )
    w.to(DuckDBSink(db, "w"))
    ev.window(TumblingWindow("1m"), key=["event_type", "user_id"]).agg(agg.max("amount")).to(
        DuckDBSink(db, "t")
    )
    return p


def test_yaml_round_trip_gives_the_same_spec_and_results(events_file, tmp_path):
    p = build(events_file, str(tmp_path / "a.duckdb"))
    text = p.to_yaml()
    assert text.startswith("streaming:")
    q = Pipeline.from_yaml(text.replace("a.duckdb", "b.duckdb"))
    assert q.to_yaml() == text.replace("a.duckdb", "b.duckdb")
    p.run(clock=ManualClock(0))
    q.run(clock=ManualClock(0))
    for table in ("w", "t"):
        a = p.steps["sink" if table == "w" else "sink_2"].sink.read(order_by="ALL")  # type: ignore[attr-defined]
        b = q.steps["sink" if table == "w" else "sink_2"].sink.read(order_by="ALL")  # type: ignore[attr-defined]
        pd.testing.assert_frame_equal(a, b)
        assert len(a) > 0


def test_spec_refuses_in_memory_data_with_a_fix():
    from streamlab.testing import ListSource

    p = Pipeline(ListSource([{"x": 1}]))
    with pytest.raises(ValueError, match="ReplaySource"):
        p.to_yaml()


def test_diagram_shows_steps_and_side_outputs(events_file, tmp_path):
    text = pipeline_to_mermaid(build(events_file, str(tmp_path / "c.duckdb")))
    assert "parse -->" in text and "dead_letter" in text and "window" in text
