"""A pipeline writing every kind of file and append sink, and readers comparing their contents."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pandas as pd

from streamlab import DuckDBSink, JsonLinesSink, ParquetSink, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab.io import Source

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def raw_events(n: int, seed: int = 0, any_json: bool = False) -> list[bytes]:
    """JSON lines with bad records (dead letters), repeated ids (duplicates), records without an id (the
    keyed DuckDB table cannot take them: its ``_rejected`` table does) and, with ``any_json``, a ``json``
    field of any type (a table's column types come from its first batch, so compare such runs only when
    their batches are the same)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.05:
            out.append(b'{"event_id": "bad", "timestamp": ')  # invalid JSON
            continue
        eid = f"e{rng.randrange(i + 1)}" if rng.random() < 0.1 else f"e{i}"
        t = T0 + pd.Timedelta(i * 100, "ms")
        event = {"event_id": eid, "event_type": "ab"[i % 2], "timestamp": t.isoformat()}
        if rng.random() < 0.04:
            del event["event_id"]
        if (
            any_json and rng.random() < 0.3
        ):  # a JSON value of any type: tables and Parquet parts must take them all
            event["extra"] = rng.choice([1, "x", {"a": 1}, {"a": "s", "b": [1]}, [1, 2], None, 2.5, 10**30])
        out.append(json.dumps(event).encode())
    return out


def write_events(path: Path, n: int, seed: int = 0) -> Path:
    path.write_bytes(b"\n".join(raw_events(n, seed)) + b"\n")
    return path


def build(source: Source, out: Path) -> Pipeline:
    """parse -> dedup -> 10 s windows; events to JSON lines, Parquet and a keyed DuckDB table, the rest to
    DuckDB."""
    db = out / "results.duckdb"
    p = Pipeline(source, name="delivery")
    parsed = p.parse(
        schema={"event_id": "string", "event_type": "string", "timestamp": "timestamp", "extra": "json"}
    )
    parsed.dead_letter.to(DuckDBSink(db, "dead_letters", key=None))
    parsed.to(JsonLinesSink(out / "events.jsonl"))
    parsed.to(ParquetSink(out / "events_parquet"))
    parsed.to(DuckDBSink(db, "events"))  # upserts by event_id; rows without one go to events_rejected
    unique = parsed.dedup("event_id", ttl="1h")
    unique.duplicates.to(DuckDBSink(db, "duplicates", key=None))
    counts = unique.window(TumblingWindow("10s"), key="event_type", delay="2s").agg(agg.count())
    counts.to(DuckDBSink(db, "counts"))
    return p


def replay(path: Path) -> ReplaySource:
    return ReplaySource(path, raw=True, time="timestamp")


def contents(out: Path) -> dict[str, list[str]]:
    """Every sink's rows as sorted JSON strings (a multiset: duplicates show)."""

    def rows(frame: pd.DataFrame) -> list[str]:
        frame = frame.drop(columns=[c for c in frame.columns if c in ("raw", "value")], errors="ignore")
        return sorted(json.dumps(r, sort_keys=True, default=str) for r in frame.to_dict("records"))

    result: dict[str, list[str]] = {}
    jsonl = out / "events.jsonl"
    lines = jsonl.read_text().splitlines() if jsonl.exists() else []
    result["jsonl"] = sorted(lines)
    parts = sorted((out / "events_parquet").glob("part-*.parquet"))
    frame = pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True) if parts else pd.DataFrame()
    result["parquet"] = rows(frame)
    con = duckdb.connect(str(out / "results.duckdb"))  # the config of the sinks' connections
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for table in ("dead_letters", "duplicates", "counts", "events", "events_rejected"):
            # a table is made by its first row
            result[table] = rows(con.execute(f"SELECT * FROM {table}").df()) if table in tables else []
    finally:
        con.close()
    return result
