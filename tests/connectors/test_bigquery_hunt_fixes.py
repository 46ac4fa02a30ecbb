"""Fixes from the cloud connectors QA hunt (/tmp/hunt_cloud), each pinned by a test that failed before.

* ``BigQuerySink(mode="load")`` uploaded its rows without a timeout and with the client's own upload
  retries: a frozen server hung ``flush()`` forever and a stopped one for about 66 s, whatever
  ``timeout=`` said, ending in requests' bare ``ConnectionError``. The upload and the job's wait now take
  ``timeout`` (retries included) and fail as stream mode does, naming the sink and the endpoint.
* ``mode="stream"``: a text value with a lone surrogate (``"\\ud800"``) made insertAll refuse the whole
  request as malformed JSON; the flush raised on every retry and the batch's good rows were never
  written. Such a row is now rejected before the request, and a request BigQuery still refuses whole
  (a 400 naming no row) is sent again in halves until the refused row is alone.
* ``client_options={"api_key": ...}`` was written verbatim to ``spec()`` and ``to_yaml()``: it is an
  environment reference now (``${BIGQUERY_API_KEY}``), resolved when the sink connects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlab.connectors.bigquery import REASON_COLUMN, BigQuerySink, create_events_table

from streamlab import Pipeline
from streamlab.errors import SinkFailedError
from streamlab.local import LocalServer
from streamlab.sources import ReplaySource
from streamlab.steps import SinkStep
from streamlab.testing import ListSink
from tests.connectors.test_bigquery import PROJECT, events, local_bigquery_server, new_table, query

SECRET = "AIzaSyTOPSECRETVALUE123"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_bigquery_server(tmp_path_factory.mktemp("bigquery-data")) as running:
        yield running
    assert not running.running


@pytest.fixture(scope="module")
def endpoint(server: LocalServer) -> dict[str, str]:
    return {"api_endpoint": f"http://127.0.0.1:{server.port}"}


@contextlib.contextmanager
def frozen(server: LocalServer) -> Iterator[None]:
    """The server stopped (SIGSTOP: its port still accepts connections, nothing answers), then resumed."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def ended(call: Callable[[], object], within: float) -> tuple[BaseException | None, float]:
    """What ``call()`` raised (``None`` if it returned) and its seconds; the test fails when it has not
    ended ``within`` seconds (the call is left to its daemon thread)."""
    outcome: list[BaseException | None] = []
    started = time.monotonic()

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert outcome, f"still blocked after {within} s"
    return outcome[0], time.monotonic() - started


@pytest.mark.services
def test_a_load_to_a_frozen_server_fails_within_its_timeout_naming_the_endpoint(
    server: LocalServer, endpoint: dict[str, str]
) -> None:
    writer = BigQuerySink(
        new_table(endpoint), project=PROJECT, mode="load", client_options=endpoint, timeout=2
    ).open()
    writer.write_batch(events(["a"]))
    with frozen(server):
        error, seconds = ended(writer.flush, within=30)
    assert isinstance(error, RuntimeError), error
    assert f"BigQuery at {endpoint['api_endpoint']} did not answer within timeout=2 s" in str(error)
    assert "load 1 rows" in str(error) and str(error).startswith("BigQuerySink(")
    assert seconds < 15
    writer.close()


@pytest.mark.services
def test_a_load_to_a_stopped_server_fails_within_its_timeout(tmp_path: Path) -> None:
    with local_bigquery_server(tmp_path) as doomed:
        endpoint = {"api_endpoint": f"http://127.0.0.1:{doomed.port}"}
        sink = BigQuerySink(
            new_table(endpoint), project=PROJECT, mode="load", client_options=endpoint, timeout=2
        )
        writer = sink.open()
        writer.write_batch(events(["a"]))
        doomed.stop()
        error, seconds = ended(writer.flush, within=30)  # about 66 s before, whatever timeout said
    assert isinstance(error, RuntimeError) and "did not answer within timeout=2 s" in str(error), error
    assert seconds < 15


@pytest.mark.services
def test_creating_the_events_table_on_a_frozen_server_ends_within_its_timeout(
    server: LocalServer, endpoint: dict[str, str]
) -> None:
    def create() -> None:
        create_events_table("analytics.frozen", project=PROJECT, client_options=endpoint, timeout=1)

    with frozen(server):
        error, seconds = ended(create, within=30)
    # google's bare RetryError ('Timeout of 1.0s exceeded, last exception: ...') before: the sink's words
    assert isinstance(error, RuntimeError), error
    assert str(error).startswith(
        f"create_events_table('analytics.frozen'): BigQuery at {endpoint['api_endpoint']} did not answer "
        "within timeout=1 s when asked to create the dataset 'local-project.analytics'"
    ), error
    assert "raise timeout" in str(error)
    assert seconds < 10


PASSWORD = "pw-TOPSECRET-42"


def with_password(endpoint: dict[str, str]) -> dict[str, str]:
    return {"api_endpoint": endpoint["api_endpoint"].replace("http://", f"http://app:{PASSWORD}@")}


def test_an_endpoints_password_is_written_to_the_spec_as_a_reference(tmp_path: Path) -> None:
    sink = BigQuerySink(
        "p.d.t", client_options={"api_endpoint": f"https://app:{PASSWORD}@bq.example:443", "quota": 1}
    )
    assert sink.spec()["client_options"] == {
        "api_endpoint": "https://app:${BIGQUERY_API_ENDPOINT_PASSWORD}@bq.example:443",
        "quota": 1,
    }
    (tmp_path / "e.jsonl").write_text("")
    p = Pipeline(ReplaySource(str(tmp_path / "e.jsonl"), raw=True))
    p.parse().to(sink)
    assert PASSWORD not in p.to_yaml() and PASSWORD not in repr(sink)
    given = {"api_endpoint": "https://app:${MY_PASSWORD}@bq.example"}
    assert BigQuerySink("p.d.t", client_options=given).spec()["client_options"] == given


@pytest.mark.services
def test_an_endpoints_password_resolves_when_connecting_and_never_shows_in_errors(
    server: LocalServer, endpoint: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = new_table(endpoint)
    (tmp_path / "e.jsonl").write_text("")
    built = Pipeline(ReplaySource(str(tmp_path / "e.jsonl")), name="endpoint_password")
    built.to(BigQuerySink(name, project=PROJECT, client_options=with_password(endpoint), timeout=2))
    text = built.to_yaml()
    assert PASSWORD not in text and "${BIGQUERY_API_ENDPOINT_PASSWORD}" in text
    monkeypatch.setenv("BIGQUERY_API_ENDPOINT_PASSWORD", PASSWORD)
    [sink] = [s.sink for s in Pipeline.from_yaml(text).steps.values() if isinstance(s, SinkStep)]
    writer = sink.open()
    writer.write_batch(events(["a", "b"]))
    writer.flush()
    got = query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`")
    assert sorted(r["event_id"] for r in got) == ["a", "b"]
    writer.write_batch(events(["c"]))
    with frozen(server):
        error, _ = ended(writer.flush, within=30)
    assert isinstance(error, RuntimeError) and "did not answer within timeout" in str(error), error
    assert PASSWORD not in str(error) and "app:***@127.0.0.1" in str(error)
    with frozen(server):
        error, _ = ended(
            lambda: create_events_table(
                "analytics.frozen", project=PROJECT, client_options=with_password(endpoint), timeout=1
            ),
            within=30,
        )
    assert isinstance(error, RuntimeError) and PASSWORD not in str(error), error
    writer.close()


@pytest.mark.services
def test_a_load_whose_job_exists_already_fetches_that_job_and_loads_nothing_twice(
    endpoint: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # an attempt whose answer was lost made the job: the next one is answered 409 (job exists) and waits
    # for that job instead of loading the rows again. The seam: the job id, fixed by uuid4 in the module
    import uuid

    from streamlab.connectors import bigquery as module

    fixed = uuid.uuid4()
    monkeypatch.setattr(module.uuid, "uuid4", lambda: fixed)
    name = new_table(endpoint)
    writer = BigQuerySink(name, project=PROJECT, mode="load", client_options=endpoint).open()
    client = writer._client
    calls: list[str] = []
    get_job = client.get_job
    monkeypatch.setattr(client, "get_job", lambda *a, **k: calls.append(a[0]) or get_job(*a, **k))
    writer.write_batch(events(["a", "b"]))
    writer.flush()  # creates the job streamlab_<fixed>
    assert calls == []
    writer.write_batch(events(["a", "b"]))  # the same rows sent again under the same job id
    writer.flush()
    assert calls == [f"streamlab_{fixed.hex}"]  # the 409 branch fetched the existing job
    rows = query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`")
    assert sorted(r["event_id"] for r in rows) == ["a", "b"]  # loaded once
    writer.close()


def with_lone_surrogates(ids: list[str]) -> pd.DataFrame:
    """Rows whose 3rd has a lone surrogate in a text column, and 6th in a key of a JSON column's object."""
    rows = events(ids).astype({"user_id": object})
    rows.at[2, "user_id"] = "u\ud800"
    rows.at[5, "properties"] = {"k\ud800": 1}
    return rows


@pytest.mark.services
def test_a_streamed_row_with_a_lone_surrogate_is_rejected_and_the_others_written(
    endpoint: dict[str, str],
) -> None:
    # insertAll refused the whole request ("Malformed JSON"): the flush raised on every retry, nothing landed
    name = new_table(endpoint)
    dead = ListSink()
    writer = BigQuerySink(name, project=PROJECT, client_options=endpoint, dead_letter=dead).open()
    writer.write_batch(with_lone_surrogates([f"e{i}" for i in range(10)]))
    writer.flush()
    assert writer.written == 8
    refused = dead.frame()
    assert refused["event_id"].tolist() == ["e2", "e5"]
    assert refused[REASON_COLUMN].str.contains("lone surrogate").all()
    got = {r["event_id"] for r in query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`")}
    assert got == {f"e{i}" for i in range(10)} - {"e2", "e5"}
    writer.close()

    # without dead_letter= they go to <table>_rejected, their JSON escaping the surrogate
    sink = BigQuerySink(name, project=PROJECT, client_options=endpoint)
    writer = sink.open()
    writer.write_batch(with_lone_surrogates([f"r{i}" for i in range(6)]))
    writer.close()
    kept = query(endpoint, f"SELECT {REASON_COLUMN}, row FROM `{sink.rejected_table()}`")
    rows = {json.loads(r["row"])["event_id"]: json.loads(r["row"]) for r in kept}
    assert sorted(rows) == ["r2", "r5"] and all("lone surrogate" in r[REASON_COLUMN] for r in kept)
    assert rows["r2"]["user_id"] == "u\ud800" and rows["r5"]["properties"] == {"k\ud800": 1}
    assert writer.written == 4


@pytest.mark.services
def test_a_stream_request_refused_whole_is_sent_again_row_by_row(
    endpoint: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # local-bigquery refuses a request of two bad rows, one for a JSON column's text that is not JSON and
    # one for its timestamp, with a 400 naming no row: the flush raised after the first request (500 rows)
    # had been written, and every retry of the batch wrote those again. Sent alone, each row gets its own
    # answer. No insert ids: local-bigquery keeps those of a request it refused, and then answers a row
    # sent again with its id as written, but drops it (Google's BigQuery dedups written rows only).
    name = new_table(endpoint)
    dead = ListSink()
    writer = BigQuerySink(name, project=PROJECT, client_options=endpoint, dead_letter=dead).open()
    rows = events([f"e{i}" for i in range(502)]).astype({"timestamp": object})
    rows.at[500, "properties"] = "not json"
    rows.at[501, "timestamp"] = "not a time"
    writer.write_batch(rows)
    with caplog.at_level(logging.WARNING, logger="streamlab"):
        writer.flush()
    assert writer.written == 500
    refused = dead.frame()
    assert refused["event_id"].tolist() == ["e500", "e501"]
    json_reason, time_reason = refused[REASON_COLUMN].tolist()
    assert (
        json_reason.startswith("insertAll refused the request of this row alone:") and "JSON" in json_reason
    )
    assert "timestamp" in time_reason
    warned = [r.getMessage() for r in caplog.records if "refused a request of 2 rows whole" in r.getMessage()]
    assert len(warned) == 1 and "sending it again in halves" in warned[0]
    got = {r["event_id"] for r in query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`")}
    assert got == {f"e{i}" for i in range(500)}
    writer.close()


@pytest.mark.services
def test_a_request_refused_whole_is_split_until_the_refused_row_is_alone(endpoint: dict[str, str]) -> None:
    # the request as the server refuses it whole for one row (a lone surrogate, which the sink now keeps
    # out of every request): halving finds that row and writes the 12 others
    name = new_table(endpoint)
    writer = BigQuerySink(name, project=PROJECT, client_options=endpoint).open()
    payload = [
        {"event_id": f"e{i}", "event_type": "click", "timestamp": "2026-01-01T00:00:00.000000Z"}
        for i in range(13)
    ]
    payload[9]["user_id"] = "u\ud800"
    reasons: dict[int, str] = {}
    writer._insert(payload, None, list(range(100, 113)), reasons)
    assert list(reasons) == [109] and "Malformed JSON" in reasons[109]
    assert writer.written == 12
    got = {r["event_id"] for r in query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`")}
    assert got == {f"e{i}" for i in range(13)} - {"e9"}
    writer.close()


def test_credentials_in_client_options_are_written_as_environment_references() -> None:
    sink = BigQuerySink(
        "p.d.t",
        client_options={
            "api_endpoint": "https://bigquery.example",
            "api_key": SECRET,
            "credentials_file": "/keys/sa.json",
        },
    )
    assert sink.spec()["client_options"] == {
        "api_endpoint": "https://bigquery.example",
        "api_key": "${BIGQUERY_API_KEY}",
        "credentials_file": "${BIGQUERY_CREDENTIALS_FILE}",
    }
    given = BigQuerySink("p.d.t", client_options={"api_key": "${MY_KEY}"})
    assert given.spec()["client_options"] == {"api_key": "${MY_KEY}"}


@pytest.mark.services
def test_an_api_key_round_trips_through_yaml_as_a_reference_resolved_when_connecting(
    endpoint: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = new_table(endpoint)
    data = tmp_path / "events.parquet"
    events(["k0", "k1"]).to_parquet(data)
    built = Pipeline(ReplaySource(str(data)), name="api_key")
    built.to(BigQuerySink(name, project=PROJECT, client_options={**endpoint, "api_key": SECRET}))
    text = built.to_yaml()
    assert SECRET not in text and "${BIGQUERY_API_KEY}" in text
    read_back = Pipeline.from_yaml(text)
    with pytest.raises(SinkFailedError, match="environment variable BIGQUERY_API_KEY, which is not set"):
        read_back.run()
    monkeypatch.setenv("BIGQUERY_API_KEY", SECRET)
    read_back.run()
    assert sorted(r["event_id"] for r in query(endpoint, f"SELECT event_id FROM `{PROJECT}.{name}`")) == [
        "k0",
        "k1",
    ]
    [sink] = [s.sink for s in read_back.steps.values() if isinstance(s, SinkStep)]
    writer = sink.open()
    assert writer._client._credentials.token == SECRET  # the key, not anonymous credentials
    writer.close()
