"""The exported Lambda handler and TimestreamSink write the same Timestream records from the same events.

The handler runs as the program it is (its module loaded, its environment set, invoked with a Kinesis
event) and the pipeline runs in streamlab with a ``TimestreamSink`` on its window; both write to moto,
whose stored records are compared.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.aggregators import Aggregator
from streamlab.export import to_lambda, verify
from streamlab.export.aws_lambda import kinesis_event
from streamlab.export.verify import load_module
from streamlab.testing import ListSink, ListSource

from ._lambda_env import handler_env

pytest.importorskip("moto")

pytestmark = pytest.mark.services

Record = tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str, str], ...]]


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    from streamlab.local import LocalAWS

    with LocalAWS() as local:
        yield local


def event(i: int, second: int, **fields: Any) -> bytes:
    stamp = f"2024-01-01T00:00:{second:02d}Z"
    return json.dumps({"event_id": f"e{i}", "timestamp": stamp, **fields}).encode()


def stored(database: str) -> list[Record]:
    """The table's records, the handler's ``pipeline`` dimension and versions aside, measures in order."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    table = timestreamwrite_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].describe_database(database)
    out = []
    for rec in table.describe_table("window").records:
        dims = tuple(sorted((d["Name"], d["Value"]) for d in rec["Dimensions"] if d["Name"] != "pipeline"))
        measures = tuple(sorted((m["Name"], m["Type"], m["Value"]) for m in rec["MeasureValues"]))
        out.append((rec["Time"], dims, measures))
    return sorted(out)


def both_ways(
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    schema: dict[str, str],
    keys: list[str],
    aggs: Callable[[], list[Aggregator]],
    lines: list[bytes],
) -> tuple[list[Record], list[Record], pd.DataFrame]:
    """(TimestreamSink's records, the handler's records, the sink's dead letters) of ``lines``."""
    from streamlab.connectors.timestream import TimestreamSink

    tag = uuid.uuid4().hex[:8]
    ts, sqs = aws.client("timestream-write"), aws.client("sqs")
    for database in (f"sink_{tag}", f"handler_{tag}"):
        ts.create_database(DatabaseName=database)
        ts.create_table(DatabaseName=database, TableName="window")
    queue = sqs.create_queue(QueueName=f"dead-{tag}")["QueueUrl"]

    def pipeline() -> tuple[Pipeline, Any]:
        p = Pipeline(ListSource(lines), name="parity")
        return p, p.parse(schema).window(TumblingWindow("10s"), key=keys or None).agg(*aggs())

    p, window = pipeline()
    dead = ListSink()
    names = [a.name for a in aggs()]
    window.to(
        TimestreamSink(
            f"sink_{tag}",
            "window",
            dimensions=keys,
            measures=[*names, "window_end"],
            time="window_start",
            measure_name="window",
            dead_letter=dead,
            endpoint_url=aws.endpoint_url,
        )
    )
    p.run()
    handler_env(
        aws,
        monkeypatch,
        TIMESTREAM_DATABASE=f"handler_{tag}",
        TIMESTREAM_TABLE="window",
        DEAD_LETTER_QUEUE_URL=queue,
    )
    module = load_module(to_lambda(pipeline()[0], tmp_path).module)
    response = module.handler(kinesis_event([(f"{i:03d}", line) for i, line in enumerate(lines)], None, True))
    assert response["batchItemFailures"] == []
    return stored(f"sink_{tag}"), stored(f"handler_{tag}"), dead.frame()


JSON_SCHEMA = {"event_id": "string", "timestamp": "timestamp", "host": "string", "props": "json"}
JSON_LINES = [
    event(0, 1, host="a", props=""),  # the empty json string
    event(1, 11, host="b", props={"k": [1, "x"]}),
    event(2, 12, host="b", props=1),
    event(3, 21, host="c", props="1"),
    event(4, 22, host="c", props=True),
    event(5, 31, host="d", props=None),
    event(6, 41, host="", props=[None, 2.5, "é"]),  # an empty key
]


def test_json_values_are_their_json_text_on_both_sides_and_the_empty_json_string_is_written(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # TimestreamSink wrote a json first/last as Python's str: {'k': [1, 'x']}, True, and "1" as 1; the
    # empty json string was an empty text, which it dead-lettered with the window's other measures, where
    # the handler wrote its JSON text "" (two bytes, which Timestream holds). The sink now writes JSON text.
    sink, handler, dead = both_ways(
        aws,
        monkeypatch,
        tmp_path,
        JSON_SCHEMA,
        ["host"],
        lambda: [agg.first("props"), agg.last("props"), agg.count()],
        JSON_LINES,
    )
    assert sink == handler and dead.empty
    by_host = {dict(dims).get("host"): dict((m[0], m[2]) for m in ms) for _, dims, ms in sink}
    assert by_host["a"]["first_props"] == '""'
    assert (by_host["b"]["first_props"], by_host["b"]["last_props"]) == ('{"k":[1,"x"]}', "1")
    assert (by_host["c"]["first_props"], by_host["c"]["last_props"]) == ('"1"', "true")


def test_an_empty_key_is_left_out_of_the_record_by_both(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the handler sent an empty key as an empty dimension value, which Timestream does not hold (the
    # SDKs' models had a minimum length of 1); TimestreamSink leaves it out, so the key reads as null
    sink, handler, _ = both_ways(
        aws, monkeypatch, tmp_path, JSON_SCHEMA, ["host"], lambda: [agg.count()], JSON_LINES
    )
    assert sink == handler
    [(_, dims, _)] = [r for r in handler if r[0] == "1704067240000"]
    assert dims == ()


def test_typed_results_with_missing_values_keep_their_types_in_every_batch(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a window whose first(b) is missing made the results an object column: TimestreamSink then wrote
    # the bool as the text "True" and the json 1 as BIGINT in one batch, text in another (Timestream
    # refuses a measure whose type changes); the handler types them by the schema, as the sink now does
    schema = {"event_id": "string", "timestamp": "timestamp", "b": "bool", "n": "int64", "j": "json"}
    lines = [
        event(0, 1, b=True, n=1, j=1),
        event(1, 11, b=None, n=None, j=None),
        event(2, 21, b=False, n=2, j=2),
    ]
    sink, handler, _ = both_ways(
        aws,
        monkeypatch,
        tmp_path,
        schema,
        [],
        lambda: [agg.first("b"), agg.first("n"), agg.first("j")],
        lines,
    )
    assert sink == handler
    types = {m[0]: m[1] for _, _, ms in sink for m in ms}
    assert (types["first_b"], types["first_n"], types["first_j"]) == ("BOOLEAN", "BIGINT", "VARCHAR")


def test_verify_compares_the_empty_json_string_and_the_empty_key(tmp_path: Path) -> None:
    # verify reported the handler's "" against the sink's dead letter, and its empty key against streamlab's
    p = Pipeline(ListSource([b"{}"]), name="parity")
    p.parse(JSON_SCHEMA).window(TumblingWindow("10s"), key="host").agg(agg.first("props"), agg.count())
    report = verify(p, JSON_LINES, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["window"] == {"streamlab": 5, "lambda": 5}


def test_verify_keeps_the_empty_key_of_a_dead_lettered_result(tmp_path: Path) -> None:
    # the dead letter carries the result as it was (its key ""): only a written key reads back missing
    p = Pipeline(ListSource([b"{}"]), name="parity")
    p.parse(JSON_SCHEMA).window(TumblingWindow("10s"), key="host").agg(agg.first("host"), agg.count())
    lines = [event(0, 1, host="", props=1), event(1, 2, host="a", props=1)]
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    [dead] = report.exported["window.timestream_dead_letter"].to_dict("records")
    assert dead["host"] == "" and "first_host" in dead["reject_reason"]


def test_the_default_schemas_properties_object_is_written_as_json_text(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the handler (and TimestreamSink) wrote first(properties), an ``object`` field, as Python's str:
    # {'k': 1}, [None], which no JSON reader takes; verify reported every such window as differing
    lines = [
        event(0, 1, event_type="a", user_id="u", properties={"k": 1}),
        event(1, 11, event_type="b", user_id="v", properties={"x": "", "y": [None], "big": 10**30}),
        event(2, 21, event_type="b", user_id="w", properties={}),
    ]
    p = Pipeline(ListSource([b"{}"]), name="parity")
    p.parse().window(TumblingWindow("10s"), key="event_type").agg(agg.first("properties"), agg.count())
    report = verify(p, lines, "lambda", workdir=tmp_path / "verify")
    assert report.equal, report.diff.to_string()
    assert report.counts["window"] == {"streamlab": 3, "lambda": 3}
    schema = {"event_id": "string", "timestamp": "timestamp", "event_type": "string", "properties": "object"}
    sink, handler, _ = both_ways(
        aws, monkeypatch, tmp_path, schema, ["event_type"], lambda: [agg.first("properties")], lines
    )
    assert sink == handler
    texts = sorted(m[2] for _, _, ms in handler for m in ms if m[0] == "first_properties")
    assert texts == sorted(["{}", '{"k":1}', '{"x":"","y":[null],"big":1000000000000000000000000000000}'])


def test_a_time_key_is_the_same_iso_text_on_both_sides(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # TimestreamSink wrote a time key as pandas' str (2024-05-01 00:00:00.500000+00:00), the handler as
    # streamlab's encoding (2024-05-01T00:00:00.500000Z): one key, two series
    schema = {"event_id": "string", "timestamp": "timestamp", "t": "timestamp", "c": "category"}
    lines = [
        event(0, 1, t="2024-05-01T00:00:00Z", c="x"),
        event(1, 2, t="2024-05-01T00:00:00.123456Z", c=""),
        event(2, 3, t=None, c=None),
        event(3, 4, t=1714521600.5, c="y"),
    ]
    sink, handler, _ = both_ways(aws, monkeypatch, tmp_path, schema, ["t", "c"], lambda: [agg.count()], lines)
    assert sink == handler
    assert sorted(dict(dims).get("t", "") for _, dims, _ in sink) == [
        "",
        "2024-05-01T00:00:00.000000Z",
        "2024-05-01T00:00:00.123456Z",
        "2024-05-01T00:00:00.500000Z",
    ]


TIME_SCHEMA = {"event_id": "string", "timestamp": "timestamp", "host": "string", "t": "timestamp"}
TIME_LINES = [
    event(0, 1, host="a", t="2024-05-01T00:00:00.123456Z"),
    event(1, 2, host="a", t="2024-05-01T00:00:07.999999Z"),
    event(2, 11, host="b", t=None),
    event(3, 12, host="b", t="2024-05-01T00:00:00Z"),
]


def test_a_time_valued_result_is_a_timestamp_measure_on_both_sides(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the handler wrote first/last of a time as a VARCHAR of ISO text to the microsecond, TimestreamSink as
    # a TIMESTAMP in epoch milliseconds: one pipeline, two schemas, and a query written against one
    # (time functions on a timestamp, or text comparisons) failed on the other. Both now write a TIMESTAMP.
    sink, handler, dead = both_ways(
        aws,
        monkeypatch,
        tmp_path,
        TIME_SCHEMA,
        ["host"],
        lambda: [agg.first("t"), agg.last("t"), agg.count()],
        TIME_LINES,
    )
    assert sink == handler and dead.empty
    by_host = {dict(dims)["host"]: {m[0]: (m[1], m[2]) for m in ms} for _, dims, ms in handler}
    assert by_host["a"]["first_t"] == ("TIMESTAMP", "1714521600123")  # .123456 floored to the millisecond
    assert by_host["a"]["last_t"] == ("TIMESTAMP", "1714521607999")
    assert by_host["b"]["last_t"] == ("TIMESTAMP", "1714521600000")


def test_verify_compares_time_valued_results_to_the_millisecond(tmp_path: Path) -> None:
    # both programs write a time-valued result to the millisecond: streamlab's microseconds are not a difference
    p = Pipeline(ListSource([b"{}"]), name="parity")
    p.parse(TIME_SCHEMA).window(TumblingWindow("10s"), key="host").agg(agg.first("t"), agg.last("t"))
    report = verify(p, TIME_LINES, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["window"] == {"streamlab": 2, "lambda": 2}
    written = report.exported["window"].set_index("host")
    assert written.loc["a", "first_t"] == pd.Timestamp("2024-05-01T00:00:00.123Z")


def test_a_time_before_1970_is_a_dead_letter_on_both_sides(tmp_path: Path) -> None:
    # a TIMESTAMP measure holds 1970-01-01 to 2262-04-11 (Timestream's writes): written, the record would be
    # rejected by Timestream; both writers send it to the dead letter with measure_problem's reason
    p = Pipeline(ListSource([b"{}"]), name="parity")
    p.parse(TIME_SCHEMA).window(TumblingWindow("10s"), key="host").agg(agg.first("t"))
    lines = [
        event(0, 1, host="a", t="1969-12-31T23:59:59.999Z"),
        event(1, 2, host="b", t="1970-01-01T00:00:00Z"),
    ]
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    [dead] = report.exported["window.timestream_dead_letter"].to_dict("records")
    assert dead["host"] == "a" and "outside the times a Timestream TIMESTAMP holds" in dead["reject_reason"]
    assert report.exported["window"]["first_t"].tolist() == [pd.Timestamp("1970-01-01", tz="UTC")]


def test_a_key_over_timestreams_2_kb_a_series_is_a_dead_letter_on_both_sides(tmp_path: Path) -> None:
    # Timestream rejects a record whose dimensions (the handler's "pipeline" and the keys, with their
    # names) pass 2 KB; moto took it. Both writers now send it to the dead letter with series_problem's
    # reason, and the key that fits is written
    p = Pipeline(ListSource([b"{}"]), name="parity")
    p.parse(JSON_SCHEMA).window(TumblingWindow("10s"), key="host").agg(agg.count())
    fits = "a" * (2048 - len("pipeline") - len("parity") - len("host"))
    lines = [event(0, 1, host=fits), event(1, 2, host=fits + "a"), event(2, 3, host="b")]
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    [dead] = report.exported["window.timestream_dead_letter"].to_dict("records")
    assert dead["host"] == fits + "a"
    assert dead["reject_reason"] == (
        "dimensions ['pipeline', 'host'] are 2,049 bytes with their names; Timestream takes at most 2,048 "
        "per series"
    )
    assert sorted(report.exported["window"]["host"].str.len()) == [1, len(fits)]
