"""Fixes from the cloud connectors QA hunt (/tmp/hunt_cloud), each pinned by a test that failed before.

* ``BigQuerySink(mode="load")`` uploaded its rows without a timeout and with the client's own upload
  retries: a frozen server hung ``flush()`` forever and a stopped one for about 66 s, whatever
  ``timeout=`` said, ending in requests' bare ``ConnectionError``. The upload and the job's wait now take
  ``timeout`` (retries included) and fail as stream mode does, naming the sink and the endpoint.
* ``client_options={"api_key": ...}`` was written verbatim to ``spec()`` and ``to_yaml()``: it is an
  environment reference now (``${BIGQUERY_API_KEY}``), resolved when the sink connects.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlab.connectors.bigquery import BigQuerySink, create_events_table

from streamlab import Pipeline
from streamlab.errors import SinkFailedError
from streamlab.local import LocalServer
from streamlab.sources import ReplaySource
from streamlab.steps import SinkStep
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
    from google.api_core.exceptions import RetryError
    from requests.exceptions import Timeout

    def create() -> None:
        create_events_table("analytics.frozen", project=PROJECT, client_options=endpoint, timeout=1)

    with frozen(server):
        error, seconds = ended(create, within=30)
    assert isinstance(error, (RetryError, Timeout)), error
    assert seconds < 10


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
