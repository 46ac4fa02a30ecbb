"""TimestreamSink against moto's Timestream-write (LocalAWS, in process, so its stored records are readable)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from streamlab.connectors.timestream import REASON_COLUMN, TimestreamSink, build_records

from streamlab.io import Sink, SinkWriter
from streamlab.local import LocalAWS

pytestmark = pytest.mark.services


class CollectSink(Sink):
    """Keeps what it is given (the dead-letter destination in these tests)."""

    def __init__(self) -> None:
        self.batches: list[pd.DataFrame] = []

    def open(self, clock: Any = None) -> SinkWriter:
        sink = self

        class Writer(SinkWriter):
            def write_batch(self, batch: pd.DataFrame) -> None:
                sink.batches.append(batch)

        return Writer()

    def rows(self) -> pd.DataFrame:
        return pd.concat(self.batches, ignore_index=True) if self.batches else pd.DataFrame()


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAWS]:
    with LocalAWS() as local:
        yield local


@pytest.fixture
def table(aws: LocalAWS) -> tuple[str, str]:
    client = aws.client("timestream-write")
    database, name = f"db_{uuid.uuid4().hex[:8]}", "events"
    client.create_database(DatabaseName=database)
    client.create_table(DatabaseName=database, TableName=name)
    client.close()
    return database, name


def stored(database: str, table: str) -> list[dict[str, Any]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    backend = timestreamwrite_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return list(backend.describe_database(database).describe_table(table).records)


def metrics(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
            "event_type": ["click", "view"] * (n // 2) + ["click"] * (n % 2),
            "user_id": [f"u{i % 7}" for i in range(n)],
            "count": list(range(n)),
            "latency": [i / 4 for i in range(n)],
            "ok": [i % 3 != 0 for i in range(n)],
        }
    )


def sink_for(aws: LocalAWS, database: str, table: str, **kw: Any) -> TimestreamSink:
    return TimestreamSink(
        database,
        table,
        dimensions=["event_type", "user_id"],
        measures=["count", "latency", "ok"],
        time="timestamp",
        endpoint_url=aws.endpoint_url,
        **kw,
    )


def count_calls(writer: Any) -> list[int]:
    sizes: list[int] = []
    writer._client.meta.events.register(
        "provide-client-params.timestream-write.WriteRecords",
        lambda params, **_: sizes.append(len(params["Records"])),
    )
    return sizes


def test_writes_multi_measure_records_in_chunks_of_100(aws: LocalAWS, table: tuple[str, str]) -> None:
    writer = sink_for(aws, *table).open()
    sizes = count_calls(writer)
    writer.write_batch(metrics(130))
    assert sizes == [100]  # a full chunk goes out at once, 30 rows wait
    writer.write_batch(metrics(120).iloc[60:])
    writer.close()
    assert sizes == [100, 90]
    records = stored(*table)
    assert len(records) == 190 == writer.written
    first = records[0]
    assert first["MeasureValueType"] == "MULTI" and first["TimeUnit"] == "MILLISECONDS"
    assert first["Time"] == str(pd.Timestamp("2026-01-01", tz="UTC").value // 1_000_000)
    assert first["Dimensions"] == [
        {"Name": "event_type", "Value": "click", "DimensionValueType": "VARCHAR"},
        {"Name": "user_id", "Value": "u0", "DimensionValueType": "VARCHAR"},
    ]
    assert records[5]["MeasureValues"] == [
        {"Name": "count", "Value": "5", "Type": "BIGINT"},
        {"Name": "latency", "Value": "1.25", "Type": "DOUBLE"},
        {"Name": "ok", "Value": "true", "Type": "BOOLEAN"},
    ]


def test_unwritable_rows_go_to_the_dead_letter_sink_with_a_reason(
    aws: LocalAWS, table: tuple[str, str]
) -> None:
    dead = CollectSink()
    writer = sink_for(aws, *table, dead_letter=dead).open()
    rows = metrics(5).astype({"count": "Int64", "latency": "float64", "ok": "boolean"})
    rows.loc[1, "timestamp"] = pd.NaT
    rows.loc[3, ["count", "latency", "ok"]] = [pd.NA, float("nan"), pd.NA]
    rows.loc[4, "user_id"] = None  # a missing dimension is left out, the row is still written
    writer.write_batch(rows)
    writer.close()
    got = dead.rows()
    assert got["event_type"].tolist() == ["view", "view"] and got.loc[1, "count"] is pd.NA
    assert got[REASON_COLUMN].tolist() == [
        "missing or unreadable time in column 'timestamp'",
        "all measures ['count', 'latency', 'ok'] are missing",
    ]
    records = stored(*table)
    assert len(records) == 3 == writer.written
    assert [d["Name"] for d in records[-1]["Dimensions"]] == ["event_type"]


def test_a_dimension_has_one_text_whatever_else_its_batch_holds(
    aws: LocalAWS, table: tuple[str, str]
) -> None:
    # pandas makes an integer column float64 once it meets a missing value: the dimension user_id of the
    # user 7 was '7' in a batch [7] and '7.0' in a batch [7, None], two series of one user
    sink = TimestreamSink(
        *table,
        dimensions=["site", "user_id"],
        measures=["n"],
        time="timestamp",
        endpoint_url=aws.endpoint_url,
    )
    writer = sink.open()
    t = pd.date_range("2026-01-01", periods=3, freq="s", tz="UTC")
    writer.write_batch(pd.DataFrame({"site": ["a"], "user_id": [7], "n": [1], "timestamp": t[:1]}))
    writer.flush()
    writer.write_batch(
        pd.DataFrame({"site": ["a"] * 2, "user_id": [7, None], "n": [2, 3], "timestamp": t[1:]})
    )
    writer.close()
    got = sorted(
        (r["MeasureValues"][0]["Value"], [(d["Name"], d["Value"]) for d in r["Dimensions"]])
        for r in stored(*table)
    )
    # a missing value still leaves its dimension out
    assert got == [
        ("1", [("site", "a"), ("user_id", "7")]),
        ("2", [("site", "a"), ("user_id", "7")]),
        ("3", [("site", "a")]),
    ]
    assert [r["MeasureValues"][0]["Type"] for r in stored(*table)] == ["BIGINT"] * 3


def test_infinite_double_measures_go_to_the_dead_letter_not_as_text(
    aws: LocalAWS, table: tuple[str, str]
) -> None:
    # Timestream cannot hold NaN or infinities in a DOUBLE; the sink sent them as the text "inf", and moto
    # stores whatever it gets, so the records built are what is checked.
    dead = CollectSink()
    sink = sink_for(aws, *table, dead_letter=dead)
    rows = metrics(5)
    rows.loc[1, "latency"] = float("inf")
    rows.loc[3, "latency"] = float("-inf")
    rows.loc[4, "latency"] = float("nan")  # missing: the measure is left out, the row is written
    records, positions, problems = build_records(sink, rows)
    assert positions == [0, 2, 4] and [bool(p) for p in problems] == [False, True, False, True, False]
    sent = [m["Value"] for r in records for m in r["MeasureValues"] if m["Type"] == "DOUBLE"]
    assert sent == ["0.0", "0.5"]
    writer = sink.open()
    writer.write_batch(rows)
    writer.close()
    got = dead.rows()
    assert got["count"].tolist() == [1, 3]
    assert got[REASON_COLUMN].tolist() == [
        "measure(s) ['latency'] are infinite (inf), which a Timestream DOUBLE cannot hold",
        "measure(s) ['latency'] are infinite (-inf), which a Timestream DOUBLE cannot hold",
    ]
    values = [m["Value"] for r in stored(*table) for m in r["MeasureValues"]]
    assert len(stored(*table)) == 3 == writer.written and not {"inf", "-inf", "nan"} & set(values)


def test_text_measures_timestream_refuses_go_to_the_dead_letter_and_the_rest_are_written(
    aws: LocalAWS, table: tuple[str, str]
) -> None:
    # an empty text measure failed botocore's check (min length 1) for the whole request, every retry
    dead = CollectSink()
    sink = TimestreamSink(
        *table,
        dimensions=["user_id"],
        measures=["note", "count"],
        endpoint_url=aws.endpoint_url,
        dead_letter=dead,
    )
    rows = metrics(4).assign(note=["ok", "", "x" * 2049, "é" * 1024])
    writer = sink.open()
    writer.write_batch(rows)
    writer.close()
    assert dead.rows()[REASON_COLUMN].tolist() == [
        "text measure(s) ['note'] are 0 bytes long; Timestream takes 1 to 2,048 bytes (an empty text is refused)",
        "text measure(s) ['note'] are 2,049 bytes long; Timestream takes 1 to 2,048 bytes (an empty text is refused)",
    ]
    assert [r["MeasureValues"][0]["Value"] for r in stored(*table)] == ["ok", "é" * 1024]
    assert writer.written == 2


def test_dimensions_over_timestreams_2_kb_a_series_go_to_the_dead_letter(
    aws: LocalAWS, table: tuple[str, str]
) -> None:
    # Timestream rejects a record whose dimension names and values pass 2 KB; moto took it, so a local
    # run wrote what AWS refuses
    dead = CollectSink()
    sink = TimestreamSink(
        *table,
        dimensions=["user_id", "page"],
        measures=["count"],
        endpoint_url=aws.endpoint_url,
        dead_letter=dead,
    )
    # with the names (7 + 4 bytes): 2,048 bytes fit, 2,049 do not ("é" is two bytes)
    pages = ["a" * (2048 - 11 - 2), "a" * (2048 - 11 - 1), "é" * 1017, "/"]
    rows = metrics(4).assign(user_id="u1", page=pages)
    writer = sink.open()
    writer.write_batch(rows)
    writer.close()
    assert dead.rows()[REASON_COLUMN].tolist() == [
        "dimensions ['user_id', 'page'] are 2,049 bytes with their names; Timestream takes at most 2,048 per series"
    ]
    assert sorted(len(r["Dimensions"][1]["Value"]) for r in stored(*table)) == [1, 1017, 2035]
    assert writer.written == 3


def test_dead_letters_reach_a_sink_that_publishes_on_commit(
    aws: LocalAWS, table: tuple[str, str], tmp_path: Any
) -> None:
    # the dead-letter writer was flushed and closed, never committed: a DuckDBSink without a key stages
    # rows until its commit, so the rejected rows never reached its table
    from streamlab.sinks import DuckDBSink

    db = str(tmp_path / "dead.duckdb")
    dead = DuckDBSink(db, "dead", key=None)
    writer = sink_for(aws, *table, dead_letter=dead).open()
    writer.write_batch(metrics(3).assign(latency=[0.5, float("inf"), 1.0]))
    writer.close()
    got = dead.read()
    assert got[["count", "reject_reason"]].values.tolist() == [
        [1, "measure(s) ['latency'] are infinite (inf), which a Timestream DOUBLE cannot hold"]
    ]


def reject(writer: Any, rejected: list[dict[str, Any]]) -> None:
    """Make Timestream's answer a RejectedRecordsException for the given records (moto never rejects)."""

    def after(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        http_response.status_code = 419
        parsed["Error"] = {
            "Code": "RejectedRecordsException",
            "Message": "One or more records have been rejected.",
        }
        parsed["RejectedRecords"] = rejected

    writer._client.meta.events.register("after-call.timestream-write.WriteRecords", after)


def test_rejected_records_are_reported_with_their_reason(aws: LocalAWS, table: tuple[str, str]) -> None:
    dead = CollectSink()
    writer = sink_for(aws, *table, dead_letter=dead).open()
    reject(writer, [{"RecordIndex": 2, "Reason": "A record with the same dimensions and time exists."}])
    writer.write_batch(metrics(4))
    writer.flush()
    got = dead.rows()
    assert got["count"].tolist() == [2]
    assert got[REASON_COLUMN].tolist() == ["A record with the same dimensions and time exists."]
    assert writer.written == 3
    writer.close()


def test_without_dead_letter_flush_raises_rather_than_losing_rows(
    aws: LocalAWS, table: tuple[str, str]
) -> None:
    writer = sink_for(aws, *table).open()
    reject(writer, [{"RecordIndex": 0, "Reason": "Time is outside the memory store retention."}])
    writer.write_batch(metrics(2))
    with pytest.raises(RuntimeError, match=r"1 rows were rejected.*memory store retention"):
        writer.flush()
    writer._client.meta.events.unregister("after-call.timestream-write.WriteRecords")
    writer.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimensions": "user_id", "measures": ["x"]}, r"dimensions=\.\.\.\): expected a list"),
        ({"dimensions": [], "measures": []}, "no measure column"),
        ({"dimensions": ["x"], "measures": ["x"]}, "used twice"),
        ({"dimensions": [], "measures": ["timestamp"]}, "used twice"),
        # names Timestream refuses for a dimension (every write failed; moto takes them)
        ({"dimensions": ["time"], "measures": ["x"]}, "'time' is a name Timestream reserves"),
        ({"dimensions": ["ts_host"], "measures": ["x"]}, "starts with ts_"),
        ({"dimensions": ["a:b"], "measures": ["x"]}, "holds a colon"),
        ({"dimensions": ["h" * 61], "measures": ["x"]}, "61 bytes long; Timestream takes at most 60"),
    ],
)
def test_configuration_errors_say_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TimestreamSink("db", "t", **kwargs)


def test_missing_columns_are_named(aws: LocalAWS, table: tuple[str, str]) -> None:
    writer = sink_for(aws, *table).open()
    writer.write_batch(metrics(3).drop(columns="latency"))
    with pytest.raises(KeyError, match="latency"):
        writer.flush()


def test_spec_round_trips_through_the_constructor() -> None:
    sink = TimestreamSink(
        "db", "t", dimensions=["user_id"], measures=["count"], endpoint_url="http://127.0.0.1:1"
    )
    params = {k: v for k, v in sink.spec().items() if k != "kind"}
    assert TimestreamSink(**params).spec() == sink.spec()


@pytest.mark.services
def test_pipeline_from_kinesis_to_timestream_writes_each_good_event_once(
    aws: LocalAWS, table: tuple[str, str], tmp_path: Any
) -> None:
    import json

    from streamlab.connectors.kinesis import KinesisSource

    from streamlab import ListSink, Pipeline
    from streamlab.testing import wait_for

    kinesis = aws.client("kinesis")
    stream = f"ts-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    good = [
        {"event_id": f"e{i}", "event_type": "purchase", "user_id": f"u{i % 4}",
         "timestamp": f"2026-01-01T00:00:{i:02d}Z", "properties": {"amount": i * 1.5}}
        for i in range(30)
    ]  # fmt: skip
    records = [{"Data": json.dumps(e).encode(), "PartitionKey": e["user_id"]} for e in good]
    records += [
        {"Data": b"{oops", "PartitionKey": "x"},
        {"Data": b'{"event_id": "late"}', "PartitionKey": "y"},
    ]
    assert kinesis.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0
    kinesis.close()
    schema = {"event_id": "string", "event_type": "string", "user_id": "string", "timestamp": "timestamp",
              "amount": {"type": "float64", "path": "properties.amount"}}  # fmt: skip
    dead, refused = ListSink(), ListSink()

    def build() -> Any:
        pipeline = Pipeline(KinesisSource(stream, endpoint_url=aws.endpoint_url, idle_interval=0))
        parsed = pipeline.parse(schema)
        parsed.dead_letter.to(dead)
        parsed.ok.to(sink_for_amounts(aws, *table, dead_letter=refused))
        return pipeline

    checkpoints = tmp_path / "cp"
    assert build().run(max_events=10, batch_size=4, checkpoint_dir=checkpoints).status == "stopped"
    # The sink buffers up to 100 rows between commit points; commit often so the rows show up soon.
    handle = build().start(batch_size=4, checkpoint_dir=checkpoints, commit_every="100ms")
    try:
        wait_for(lambda: len(stored(*table)) + len(dead.frame()) >= 32, timeout=20, what="all records")
    finally:
        handle.stop()
    rows = stored(*table)
    amounts = sorted(float(r["MeasureValues"][0]["Value"]) for r in rows)
    assert amounts == [i * 1.5 for i in range(30)]  # each good event exactly once
    assert len(dead.frame()) == 2 and refused.frame().empty


def sink_for_amounts(aws: LocalAWS, database: str, table: str, **kw: Any) -> TimestreamSink:
    return TimestreamSink(
        database,
        table,
        dimensions=["event_type", "user_id"],
        measures=["amount"],
        endpoint_url=aws.endpoint_url,
        **kw,
    )


def test_a_missing_database_is_named_with_its_fix(aws: LocalAWS) -> None:
    """It was botocore's bare ResourceNotFoundException ("The database ... does not exist.")."""
    name = f"missing_{uuid.uuid4().hex[:6]}"
    writer = sink_for(aws, name, "t").open()
    writer.write_batch(metrics(3))
    with pytest.raises(
        RuntimeError,
        match=rf"TimestreamSink\('{name}', 't'\): table 't' of database '{name}' "
        "does not exist.*Create it first",
    ):
        writer.flush()


def test_an_unreachable_endpoint_is_named_with_the_sink_and_the_fix() -> None:
    """It was botocore's bare EndpointConnectionError, naming no sink."""
    from streamlab.testing import find_free_port

    url = f"http://127.0.0.1:{find_free_port()}"  # nothing listens here
    sink = TimestreamSink("db", "t", dimensions=["event_type"], measures=["count"], endpoint_url=url)
    writer = sink.open()
    writer.write_batch(metrics(3)[["event_type", "count", "timestamp"]])
    with pytest.raises(
        RuntimeError, match=rf"TimestreamSink\('db', 't'\): Timestream at {url} did not answer"
    ):
        writer.flush()


def test_close_after_a_failed_flush_neither_sends_again_nor_raises_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """close() flushed again: it waited on the failing service a second time (another 3 attempts) and
    raised the same error, which the runtime logged as a second traceback ("closing a sink failed")."""
    import logging

    from streamlab.testing import find_free_port

    url = f"http://127.0.0.1:{find_free_port()}"  # nothing listens here
    sink = TimestreamSink("db", "t", dimensions=["event_type"], measures=["count"], endpoint_url=url)
    writer = sink.open()
    attempts: list[int] = []
    writer._client.meta.events.register(
        "before-send.timestream-write.WriteRecords", lambda **_: attempts.append(1)
    )
    writer.write_batch(metrics(3)[["event_type", "count", "timestamp"]])
    with pytest.raises(RuntimeError, match="did not answer"):
        writer.flush()
    tried = len(attempts)
    assert tried >= 1
    with caplog.at_level(logging.WARNING, logger="streamlab"):
        writer.close()
    assert len(attempts) == tried
    assert "3 row(s) not written" in caplog.text


def test_a_pipeline_read_back_from_yaml_sends_the_same_rows_to_the_same_dead_letter_sink(
    aws: LocalAWS, table: tuple[str, str], dead_letters_both_ways: Any
) -> None:
    # to_yaml nested the dead-letter sink's spec, but from_yaml passed it on as a dict, not a sink
    rows = metrics(4).assign(latency=[0.5, float("inf"), 1.0, float("-inf")])
    built, read_back = dead_letters_both_ways(rows, lambda dead: sink_for(aws, *table, dead_letter=dead))
    assert built["count"].tolist() == [1, 3] and built[REASON_COLUMN].str.contains("infinite").all()
    pd.testing.assert_frame_equal(read_back, built)
