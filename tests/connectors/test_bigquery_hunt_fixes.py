"""Fixes from the cloud connectors QA hunt (/tmp/hunt_cloud), each pinned by a test that failed before.

* ``client_options={"api_key": ...}`` was written verbatim to ``spec()`` and ``to_yaml()``: it is an
  environment reference now (``${BIGQUERY_API_KEY}``), resolved when the sink connects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlab.connectors.bigquery import BigQuerySink

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
