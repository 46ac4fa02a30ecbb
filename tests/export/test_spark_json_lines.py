"""Spark export: the job's JSON outputs hold the rows streamlab's JSON sinks write.

The job holds a ``json`` or ``object`` field (the event schema's ``properties``) as its JSON text, and
Spark's JSON writer wrote it as a quoted text: ``"properties": "{\\"amount\\": 5}"`` where streamlab
writes ``"properties": {"amount": 5}``. It wrote an infinite or NaN ``DOUBLE`` as the string
``"Infinity"`` (streamlab: null), left a missing field out (streamlab: null), and its Kafka messages
held times to the millisecond. A consumer of the job's output therefore read other values than a
consumer of streamlab's. The job now writes each row's JSON itself (``json_lines``); the test runs it as
the program it is (its own reads, its file sink, its command line) and compares its output files with
streamlab's ``JsonLinesSink`` files, line by line as JSON values.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.verify import load_module
from streamlab.pipeline import EVENT_SCHEMA
from streamlab.sinks import JsonLinesSink
from streamlab.testing import ListSource

# the event schema's shape: properties with nested objects, lists, text beyond ASCII, a 400-digit
# integer, a number beyond a double (1e400: null in streamlab's JSON), null, an empty object, and an
# event without properties; amounts whose sum overflows a double
EVENTS = [
    '{"event_id":"e0","event_type":"buy","user_id":"u0","timestamp":"2024-01-01T00:00:01.123456Z",'
    '"properties":{"amount":5,"tags":["a",{"b":null}],"city":"S\\u00e3o Paulo"}}',
    '{"event_id":"e1","event_type":"buy","user_id":"u1","timestamp":"2024-01-01T00:00:02Z",'
    '"properties":{"big":' + "9" * 400 + ',"huge":1e400,"x":1.5}}',
    '{"event_id":"e2","event_type":"view","user_id":"u0","timestamp":"2024-01-01T00:00:03Z","properties":{}}',
    '{"event_id":"e3","event_type":"buy","user_id":"u1","timestamp":"2024-01-01T00:00:04Z"}',
    '{"event_id":"e4","event_type":"buy","user_id":"u2","timestamp":"2024-01-01T00:00:05Z","properties":null}',
    '{"event_id":"e5","event_type":"buy","user_id":null,"timestamp":"2024-01-01T00:00:06Z",'
    '"properties":{"nested":{"deep":[[[1]]]},"amount":1e308}}',
]


def _strict(text: str) -> Any:
    """A JSON value, refusing the non-JSON literals NaN and Infinity that Python's reader takes."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c} in {text}"))


def _canonical(lines: list[str]) -> Counter[str]:
    """The lines as JSON values with their objects' keys in order: the job wrote json fields with sorted
    keys (``{"amount", "city", "tags"}`` for streamlab's ``{"amount", "tags", "city"}``), which a
    comparison with sorted keys hid (tests/export/test_spark_json_key_order.py)."""
    return Counter(json.dumps(_strict(x)) for x in lines if x.strip())


def test_the_jobs_json_files_hold_streamlabs_rows(tmp_path: Path) -> None:
    local_out = tmp_path / "local"
    local_out.mkdir()
    p = Pipeline(ListSource([x.encode() for x in EVENTS]), name="json_lines")
    events = p.parse()
    events.filter("event_type == 'buy'", step_id="buys").to(JsonLinesSink(str(local_out / "buys.jsonl")))
    events.window(TumblingWindow("1m"), key="event_type", step_id="by_type").agg(
        agg.count(), agg.first("properties"), agg.last("user_id")
    ).to(JsonLinesSink(str(local_out / "by_type.jsonl")))
    p.run()

    report = verify(p, [x.encode() for x in EVENTS], target="spark", workdir=tmp_path / "spark")
    assert report.equal, report.diff.to_string()
    names = load_module(report.files.module).OUTPUTS  # stream -> the job's output directory
    outputs = {d.name: d for d in (tmp_path / "spark").rglob("output/*") if d.is_dir()}
    for ref in ("buys", "by_type"):
        job = [x for f in sorted(outputs[names[ref]].rglob("part-*")) for x in f.read_text().splitlines()]
        mine = (local_out / f"{ref}.jsonl").read_text().splitlines()
        assert len(mine) == len(job) > 0 and _canonical(job) == _canonical(mine), (ref, job, mine)
    parts = outputs[names["buys"]].rglob("part-*")
    buys = [_strict(x) for f in parts for x in f.read_text().splitlines()]
    first = next(r for r in buys if r["event_id"] == "e0")
    assert first["properties"]["tags"] == ["a", {"b": None}]  # nested, not a quoted text
    assert first["timestamp"] == "2024-01-01T00:00:01.123456Z"
    assert next(r for r in buys if r["event_id"] == "e1")["properties"]["huge"] is None
    assert next(r for r in buys if r["event_id"] == "e3")["properties"] is None  # present, null


def test_the_jobs_kafka_messages_hold_streamlabs_rows(tmp_path: Path) -> None:
    """``--sink kafka``: each message is the row's JSON as streamlab's Kafka sink encodes it (the Kafka
    writer itself needs the spark-sql-kafka package, which this machine cannot download: the messages
    are the DataFrame the writer is given)."""
    import math
    from datetime import datetime, timezone

    from pyspark import cloudpickle

    from streamlab.export import to_spark
    from streamlab.export.spark import spark_session
    from streamlab.serde import dump_json

    p = Pipeline(ListSource([b"{}"]), name="k")
    p.parse({**EVENT_SCHEMA, "x": "float64"}).filter("event_type == 'buy'", step_id="buys")
    module = load_module(to_spark(p, tmp_path / "export").module)
    assert module.JSON_COLUMNS["buys"] == ["properties"]
    t = datetime(2024, 1, 1, 0, 0, 1, 123456, tzinfo=timezone.utc)
    rows = [
        ("e0", "buy", "u0", t, '{"a": [1, {"b": null}], "c": "\\u00e9"}', math.inf),
        ("e1", "buy", None, t, None, math.nan),
        ("e2", "buy", 'u"2', t, '"text"', 1.5),
    ]
    frame = spark_session().createDataFrame(
        rows,
        "event_id string, event_type string, user_id string, timestamp timestamp, properties string, x double",
    )
    cloudpickle.register_pickle_by_value(module)
    try:
        values = [r["value"] for r in module.kafka_values(frame, "buys").collect()]
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    expected = [
        dump_json(
            {
                "event_id": e,
                "event_type": k,
                "user_id": u,
                "timestamp": ts,
                "properties": None if props is None else json.loads(props),
                "x": x,
            }
        )
        for e, k, u, ts, props, x in rows
    ]
    assert [_strict(v) for v in values] == [_strict(v) for v in expected]


def test_parquet_and_jdbc_outputs_hold_json_fields_as_json_text(tmp_path: Path) -> None:
    """Parquet files and JDBC tables hold a json field as its text, as streamlab's Parquet sink does; the
    job held it as ``json.dumps`` writes it, with ``Infinity`` for a number beyond a double: no JSON."""
    from pyspark import cloudpickle

    from streamlab.export import to_spark
    from streamlab.export.spark import spark_session

    p = Pipeline(ListSource([b"{}"]), name="pq")
    p.parse().filter("event_type == 'buy'", step_id="buys")
    module = load_module(to_spark(p, tmp_path / "export").module)
    texts = ['{"a": Infinity, "b": [NaN, -Infinity, "NaN text"]}', '{"c": 1}', None]
    frame = spark_session().createDataFrame(
        [(t, "NaN") for t in texts], "properties string, event_type string"
    )
    cloudpickle.register_pickle_by_value(module)
    try:
        rows = module.finite_json_columns(frame, "buys").collect()
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert [r["event_type"] for r in rows] == ["NaN"] * 3  # text columns as they are
    held = [r["properties"] for r in rows]
    assert held[2] is None and [_strict(t) for t in held[:2]] == [
        {"a": None, "b": [None, None, "NaN text"]},
        {"c": 1},
    ]
