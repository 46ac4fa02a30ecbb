"""BigQuerySink and the events table against local-bigquery (a real BigQuery REST server on DuckDB).

local-bigquery needs Python >= 3.13 and its own venv, which scripts/test.sh builds before the tests
(scripts/local_bigquery.py); the fixture only finds it, and says what to install when it is missing. The
server then starts in about 2 s on a free loopback port.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlab.connectors.bigquery import (
    REASON_COLUMN,
    BigQuerySink,
    create_events_table,
    events_table,
    make_client,
    stream_requests,
)

from streamlab import Pipeline
from streamlab.cli import main
from streamlab.io import Sink, SinkWriter
from streamlab.local import LocalServer
from streamlab.sources import ReplaySource
from streamlab.testing import ListSink, ListSource, find_free_port

PROJECT = "local-project"


def local_bigquery() -> Path:
    """The local-bigquery command that scripts/local_bigquery.py installed (scripts/test.sh runs it)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "local_bigquery.py"
    spec = importlib.util.spec_from_file_location("local_bigquery", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    command: Path | None = module.installed()
    if command is None:
        pytest.fail(
            f"local-bigquery is not installed in {module.venv_dir()}. {module.HOW_TO_INSTALL}", pytrace=False
        )
    return command


def local_bigquery_server(data: Path) -> LocalServer:
    """A local-bigquery server (not started) keeping its tables in ``data``."""
    binary = local_bigquery()

    def command(port: int) -> list[str]:
        return [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port",
                str(find_free_port()), "--project", PROJECT, "--data-dir", str(data)]  # fmt: skip

    return LocalServer("local-bigquery", command, startup_timeout=60)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with local_bigquery_server(tmp_path_factory.mktemp("bigquery-data")) as server:
        yield {"api_endpoint": f"http://127.0.0.1:{server.port}"}
    assert not server.running


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


def events(ids: list[str]) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "event_id": ids,
            "event_type": ["click", "view"] * (n // 2) + ["click"] * (n % 2),
            "user_id": [f"u{i % 3}" for i in range(n)],
            "timestamp": pd.date_range("2026-01-01T23:59:58Z", periods=n, freq="s"),
            "properties": [{"i": i, "tags": ["a"]} for i in range(n)],
        }
    )


def new_table(endpoint: dict[str, str]) -> str:
    name = f"analytics.events_{uuid.uuid4().hex[:8]}"
    create_events_table(name, project=PROJECT, client_options=endpoint)
    return name


def query(endpoint: dict[str, str], sql: str) -> list[dict[str, Any]]:
    client = make_client(PROJECT, endpoint)
    try:
        return [dict(r) for r in client.query(sql).result(timeout=60)]
    finally:
        client.close()


@pytest.mark.services
def test_events_table_is_partitioned_and_clustered(endpoint: dict[str, str]) -> None:
    name = new_table(endpoint)
    client = make_client(PROJECT, endpoint)
    table = client.get_table(f"{PROJECT}.{name}")
    client.close()
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "timestamp")
    assert table.clustering_fields == ["event_type", "user_id"]
    assert [(f.name, f.field_type) for f in table.schema] == [
        ("event_id", "STRING"),
        ("event_type", "STRING"),
        ("user_id", "STRING"),
        ("timestamp", "TIMESTAMP"),
        ("properties", "JSON"),
    ]
    assert create_events_table(name, project=PROJECT, client_options=endpoint).table_id == table.table_id


@pytest.mark.services
def test_streaming_inserts_dedup_on_insert_ids(endpoint: dict[str, str]) -> None:
    name = new_table(endpoint)
    sink = BigQuerySink(name, project=PROJECT, insert_id="event_id", client_options=endpoint)
    writer = sink.open()
    writer.write_batch(events([f"e{i}" for i in range(6)]))
    writer.flush()
    writer.close()
    replay = sink.open()  # a restart re-sends the events it had not committed, with the same insert ids
    writer_rows = events([f"e{i}" for i in range(6)])
    replay.write_batch(writer_rows.iloc[3:])
    replay.write_batch(events(["e6"]))
    replay.close()
    rows = query(
        endpoint, f"SELECT event_id, timestamp, properties FROM `{PROJECT}.{name}` ORDER BY event_id"
    )
    assert [r["event_id"] for r in rows] == [f"e{i}" for i in range(7)]
    assert rows[2]["timestamp"] == pd.Timestamp("2026-01-02T00:00:00Z")
    assert rows[2]["properties"] == {"i": 2, "tags": ["a"]}
    days = query(
        endpoint, f"SELECT DATE(timestamp) d, COUNT(*) n FROM `{PROJECT}.{name}` GROUP BY d ORDER BY d"
    )
    assert [r["n"] for r in days] == [3, 4]  # e0, e1 and e6 fall on 2026-01-01
    without_ids = BigQuerySink(name, project=PROJECT, client_options=endpoint).open()
    without_ids.write_batch(writer_rows.iloc[:1])
    without_ids.close()
    count = f"SELECT COUNT(*) n FROM `{PROJECT}.{name}` WHERE event_id = 'e0'"
    assert query(endpoint, count) == [{"n": 2}]  # the dedup above came from the insert ids


@pytest.mark.services
def test_refused_rows_go_to_the_dead_letter_sink(endpoint: dict[str, str]) -> None:
    name = new_table(endpoint)
    dead = CollectSink()
    writer = BigQuerySink(
        name, project=PROJECT, insert_id="event_id", client_options=endpoint, dead_letter=dead
    ).open()
    rows = events(["a", "b", "c", "d"]).astype({"event_type": object, "timestamp": object})
    rows.loc[1, "event_type"] = None  # REQUIRED column
    rows.loc[3, "timestamp"] = "not a time"
    writer.write_batch(rows)
    writer.close()
    assert writer.written == 2
    refused = pd.concat(dead.batches)
    assert refused["event_id"].tolist() == ["b", "d"]
    assert "event_type" in refused[REASON_COLUMN].iloc[0] and "timestamp" in refused[REASON_COLUMN].iloc[1]
    assert [
        r["event_id"] for r in query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}` ORDER BY 1")
    ] == [
        "a",
        "c",
    ]

    # without dead_letter= they go to <table>_rejected: the reason and the whole row as JSON text
    default = BigQuerySink(name, project=PROJECT, client_options=endpoint)
    default_writer = default.open()
    default_writer.write_batch(rows.iloc[[1]])
    default_writer.flush()
    default_writer.close()
    kept = query(endpoint, f"SELECT {REASON_COLUMN}, row FROM `{default.rejected_table()}`")
    assert len(kept) == 1 and "event_type" in kept[0][REASON_COLUMN]
    assert json.loads(kept[0]["row"])["event_id"] == "b"


@pytest.mark.services
def test_refused_rows_reach_a_dead_letter_sink_that_publishes_on_commit(
    endpoint: dict[str, str], tmp_path: Path
) -> None:
    # a DuckDBSink without a key stages rows until its commit(), which the runtime never calls on a
    # writer inside another sink: the refused rows never reached its table
    from streamlab.sinks import DuckDBSink

    dead = DuckDBSink(str(tmp_path / "dead.duckdb"), "dead", key=None)
    writer = BigQuerySink(
        new_table(endpoint), project=PROJECT, client_options=endpoint, dead_letter=dead
    ).open()
    rows = events(["a", "b"]).astype({"event_type": object})
    rows.loc[1, "event_type"] = None  # REQUIRED column
    writer.write_batch(rows)
    writer.close()
    assert dead.read()["event_id"].tolist() == ["b"]


@pytest.mark.services
def test_a_row_over_the_insert_limit_goes_to_the_dead_letter_sink_not_in_a_request(
    endpoint: dict[str, str],
) -> None:
    # BigQuery refuses an insertAll request over 10 MB whole: that row failed every retry, and its batch
    name = new_table(endpoint)
    dead = CollectSink()
    writer = BigQuerySink(name, project=PROJECT, client_options=endpoint, dead_letter=dead).open()
    rows = events(["a", "big", "c"])
    rows.at[1, "properties"] = {"blob": "x" * 10_000_000}
    writer.write_batch(rows)
    writer.close()
    assert writer.written == 2
    refused = pd.concat(dead.batches)
    assert refused["event_id"].tolist() == ["big"] and "insertAll" in refused[REASON_COLUMN].iloc[0]
    got = query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}` ORDER BY 1")
    assert [r["event_id"] for r in got] == ["a", "c"]


@pytest.mark.services
def test_without_a_dead_letter_sink_a_row_over_the_insert_limit_goes_to_the_rejected_table(
    endpoint: dict[str, str],
) -> None:
    """The flush raised on such a row, so its batch failed every retry: now the row is kept, whole, in
    <table>_rejected (a load job takes it), and the others are written."""
    name = new_table(endpoint)
    sink = BigQuerySink(name, project=PROJECT, insert_id="event_id", client_options=endpoint)
    writer = sink.open()
    rows = events(["a", "big", "c", "huge"])
    rows.at[1, "properties"] = {"blob": "x" * 10_000_000}
    rows.at[3, "properties"] = {"blob": "y" * 9_500_000}
    writer.write_batch(rows.iloc[:2])
    writer.flush()
    writer.write_batch(rows.iloc[2:])
    writer.close()
    assert writer.written == 2
    got = query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}` ORDER BY 1")
    assert [r["event_id"] for r in got] == ["a", "c"]
    kept = query(endpoint, f"SELECT {REASON_COLUMN}, row FROM `{sink.rejected_table()}`")
    by_id = {json.loads(r["row"])["event_id"]: r for r in kept}
    assert sorted(by_id) == ["big", "huge"] and "insertAll" in by_id["big"][REASON_COLUMN]
    big = json.loads(by_id["big"]["row"])
    assert (
        big["properties"] == {"blob": "x" * 10_000_000} and big["timestamp"] == "2026-01-01T23:59:59.000000Z"
    )


@pytest.mark.services
def test_a_load_job_refused_for_a_row_is_split_until_the_row_is_alone(endpoint: dict[str, str]) -> None:
    """A load job is all or nothing: one bad row used to fail the flush, and every retry of its batch."""
    name = new_table(endpoint)
    dead = ListSink()
    writer = BigQuerySink(
        name, project=PROJECT, mode="load", client_options=endpoint, dead_letter=dead
    ).open()
    writer.write_batch(events([f"l{i}" for i in range(700)]))
    writer.write_batch(events(["l700"]))
    writer.flush()
    assert writer.written == 701
    bad = events([f"x{i}" for i in range(9)]).astype({"timestamp": object})
    bad.loc[[2, 7], "timestamp"] = "not a time"
    writer.write_batch(bad)
    writer.flush()
    writer.close()
    assert writer.written == 708
    assert dead.frame()["event_id"].tolist() == ["x2", "x7"]
    assert dead.frame()["reject_reason"].str.startswith("load job refused the row").all()
    ids = {r["event_id"] for r in query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`")}
    assert len(ids) == 708 and "x2" not in ids and "x7" not in ids and "x8" in ids


@pytest.mark.services
def test_a_missing_table_fails_when_opening(endpoint: dict[str, str]) -> None:
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        BigQuerySink("analytics.missing", project=PROJECT, client_options=endpoint).open()


def test_stream_requests_split_at_500_rows_and_keep_ids() -> None:
    frame = events([f"e{i}" for i in range(1201)])
    requests = stream_requests(frame, "event_id", ("properties",))
    assert [len(rows) for rows, _, _ in requests] == [500, 500, 201]
    rows, ids, positions = requests[1]
    assert ids is not None and ids[0] == "e500" and positions[0] == 500
    assert rows[0]["properties"] == '{"i":500,"tags":["a"]}'
    assert rows[0]["timestamp"] == "2026-01-02T00:08:18.000000Z"
    assert stream_requests(frame.iloc[:2], None)[0][1] is None
    frame.at[3, "properties"] = {"blob": "x" * 10_000_000}
    too_big: list[int] = []
    requests = stream_requests(frame.iloc[:6], "event_id", oversized=too_big)
    assert too_big == [3] and [(ids, positions) for _, ids, positions in requests] == [
        (["e0", "e1", "e2", "e4", "e5"], [0, 1, 2, 4, 5])
    ]


def test_an_insert_id_with_a_lone_surrogate_is_sent_escaped() -> None:
    # an id holding "\ud800" (a json field's, a user function's) made the column's conversion to text
    # raise in write_batch, on every retry: it is the escape \ud800 now, as JSON writes it
    frame = events(["e0", "e1"])
    frame["event_id"] = pd.Series(["e0", "e\ud800"], dtype=object)
    [(rows, ids, positions)] = stream_requests(frame, "event_id")
    assert ids == ["e0", "e\\ud800"] and positions == [0, 1] and len(rows) == 2


def test_events_table_definition_without_a_server() -> None:
    table = events_table("p.d.events", partition_expiration_days=30)
    assert table.time_partitioning.expiration_ms == 30 * 86_400_000
    assert [f.mode for f in table.schema] == ["REQUIRED", "REQUIRED", "NULLABLE", "REQUIRED", "NULLABLE"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: BigQuerySink("events"), "dataset.table"),
        (lambda: BigQuerySink("d.t"), "dataset.table"),
        (lambda: BigQuerySink("p.d.t", mode="batch"), "expected 'stream' or 'load'"),
        (
            lambda: BigQuerySink("p.d.t", mode="load", insert_id="event_id"),
            "works with mode='stream' only",
        ),
        (lambda: BigQuerySink("p.d.t", timeout=None), "expected a positive number of seconds"),
        (lambda: BigQuerySink("p.d.t", timeout=0), "expected a positive number of seconds"),
    ],
)
def test_configuration_errors_say_what_to_fix(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_spec_round_trips_through_the_constructor() -> None:
    sink = BigQuerySink("p.d.t", insert_id="event_id", client_options={"api_endpoint": "http://127.0.0.1:1"})
    params = {k: v for k, v in sink.spec().items() if k != "kind"}
    assert BigQuerySink(**params).spec() == sink.spec()


@pytest.mark.services
def test_pipeline_from_pubsub_to_bigquery_keeps_each_event_once(endpoint: dict[str, str]) -> None:
    import json

    from google.cloud import pubsub_v1
    from streamlab.connectors.pubsub import PubSubSource, create_subscription, create_topic

    from streamlab import ListSink, Pipeline
    from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs
    from streamlab.testing import wait_for

    name = new_table(endpoint)
    with PubSubEmulator() as emulator:
        host = emulator.host
        topic = create_topic("bq", project=PROJECT, emulator_host=host)
        sub = create_subscription("bq", topic, project=PROJECT, retry_min_backoff="0s", emulator_host=host)
        publisher = pubsub_v1.PublisherClient(**emulator_client_kwargs(host, "publisher"))
        good = [
            {"event_id": f"e{i}", "event_type": "click", "user_id": f"u{i % 3}",
             "timestamp": f"2026-01-01T00:00:{i:02d}Z", "properties": {"i": i}}
            for i in range(25)
        ]  # fmt: skip
        payloads = [json.dumps(e).encode() for e in good] + [b"not json"]
        payloads += [json.dumps(good[3]).encode()]  # a producer retry: the same event twice
        for p in payloads:
            publisher.publish(topic, p).result(timeout=10)
        publisher.stop()
        dead = ListSink()

        def build() -> Any:
            pipeline = Pipeline(PubSubSource(sub, emulator_host=host))
            parsed = pipeline.parse()
            parsed.dead_letter.to(dead)
            parsed.ok.to(BigQuerySink(name, project=PROJECT, insert_id="event_id", client_options=endpoint))
            return pipeline

        assert build().run(max_events=9, batch_size=3).status == "stopped"
        handle = build().start(batch_size=3, commit_every="100ms")
        try:

            def all_in() -> bool:
                n = query(endpoint, f"SELECT COUNT(*) n FROM `{PROJECT}.{name}`")[0]["n"]
                return n >= 25 and len(dead.frame()) >= 1

            wait_for(all_in, timeout=30, what="25 rows in BigQuery")
        finally:
            result = handle.stop()
    assert result.metrics["events_in"] + 9 >= 27
    rows = query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}` ORDER BY event_id")
    assert sorted(r["event_id"] for r in rows) == sorted(
        e["event_id"] for e in good
    )  # the duplicate was dropped
    assert dead.frame()["raw"].tolist() == [b"not json"]


@pytest.mark.services
def test_columns_the_table_lacks_are_dropped_or_refused(endpoint: dict[str, str]) -> None:
    name = new_table(endpoint)
    rows = events(["x1"]).assign(message_id="m1", shard_id="s")
    writer = BigQuerySink(name, project=PROJECT, client_options=endpoint).open()
    writer.write_batch(rows)
    writer.close()
    assert query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`") == [{"event_id": "x1"}]
    strict = BigQuerySink(name, project=PROJECT, client_options=endpoint, extra_columns="error").open()
    with pytest.raises(KeyError, match=r"no column\(s\) \['message_id', 'shard_id'\]"):
        strict.write_batch(rows)
    strict.close()


def test_missing_credentials_fail_at_open_naming_the_sink_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """It was google-auth's bare DefaultCredentialsError, naming no sink."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login here
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # nor a metadata server to ask
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:1")
    with pytest.raises(RuntimeError, match=r"BigQuerySink\('p.d.t'.*no Google credentials.*credentials="):
        BigQuerySink("p.d.t").open()


@pytest.fixture
def without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-cloud-bigquery (and the google-auth it brings) as a venv without the extra leaves them."""
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("google", "google.cloud", "google.cloud.bigquery", "google.auth", "google.api_core"):
        monkeypatch.setitem(sys.modules, name, None)


def to_bigquery() -> Pipeline:
    pipeline = Pipeline(ListSource([{"x": 1, "timestamp": "2024-01-01T00:00:00Z"}]))
    pipeline.stream.to(BigQuerySink("p.d.t"))
    return pipeline


EXTRA_MESSAGE = r"google-cloud-bigquery: pip install 'streamlab\[bigquery\]'"


@pytest.mark.parametrize(
    "call",
    [
        lambda: create_events_table("p.d.events"),
        lambda: BigQuerySink("p.d.t").open(),
        lambda: BigQuerySink("p.d.t", mode="load").open(),
        lambda: to_bigquery().run(progress=False),
    ],
    ids=["create", "insert", "load", "run"],
)
def test_without_the_extra_every_path_names_it(without_the_extra: None, call: Any) -> None:
    """The sink's paths raised google.auth's bare ModuleNotFoundError ('No module named google')."""
    with pytest.raises(ImportError, match=EXTRA_MESSAGE):
        call()


def test_without_the_extra_a_spec_run_names_it(
    without_the_extra: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"x": 1, "timestamp": "2024-01-01T00:00:00Z"}\n')
    pipeline = Pipeline(ReplaySource(str(events), speed=None))
    pipeline.stream.to(BigQuerySink("p.d.t"))
    spec = tmp_path / "spec.yaml"
    pipeline.to_yaml(str(spec))
    assert main(["run", str(spec), "--quiet"]) == 2
    assert "pip install 'streamlab[bigquery]'" in capsys.readouterr().err


@pytest.mark.services
def test_a_pipeline_read_back_from_yaml_sends_the_same_rows_to_the_same_dead_letter_sink(
    endpoint: dict[str, str], dead_letters_both_ways: Any
) -> None:
    # to_yaml nested the dead-letter sink's spec, but from_yaml passed it on as a dict, not a sink
    rows = events(["a", "b", "c"]).astype({"event_type": object})
    rows.loc[1, "event_type"] = None  # REQUIRED column
    name = new_table(endpoint)
    built, read_back = dead_letters_both_ways(
        rows, lambda dead: BigQuerySink(name, project=PROJECT, client_options=endpoint, dead_letter=dead)
    )
    assert built["event_id"].tolist() == ["b"] and "event_type" in built[REASON_COLUMN][0]
    pd.testing.assert_frame_equal(read_back, built)
