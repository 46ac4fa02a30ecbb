"""Every source and sink a spec can name keeps its parameters through ``spec()`` and the spec's reader.

``ReplaySource(batch_size=...)`` was not written by ``spec()``: the pipeline read back from
``to_yaml()`` cut its stream into the run's batches, and gave other results (a window's ``early``
output, ``--max-events``, checkpoint granularity). The generic check builds each built-in kind with a
value other than the default for every parameter of its class, and requires the object read back
from its spec to hold the same state: a parameter added later without ``spec()`` support fails it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from streamlab import ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._checkpoint import pipeline_fingerprint
from streamlab._secrets import resolve
from streamlab._spec_check import load_yaml
from streamlab.io import Sink, Source
from streamlab.sinks import JsonLinesSink
from streamlab.spec import _BUILTIN_SINKS, _BUILTIN_SOURCES, _builtin_factories, _reading_dead_letter

_HUB = "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey=s;EntityPath=clicks"
_PAGERDUTY_KEY = "r" * 32

#: Parameters a spec holds by design in another form (a secret as an environment reference, which
#: the spec's reader resolves when it connects, or not at all); each with why.
_NOT_IN_SPEC = {
    (
        "EventHubSource",
        "connection_string",
    ): "a secret: spec() writes '<redacted>'; connection_string_env is kept",
    (
        "EventHubSink",
        "connection_string",
    ): "a secret: spec() writes '<redacted>'; connection_string_env is kept",
    ("BigQuerySink", "credentials"): "a Python credentials object: see test_bigquery_credentials_are_kept",
}


def _write_events(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes("ts;k;x\n2024-01-01T00:00:00Z;José;1,5\n".encode("cp1252"))
    (tmp_path / "e.jsonl").write_text('{"when": "2024-01-01T00:00:00Z"}\n')


def _cases(tmp_path: Path) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
    """(section, kind) -> [(class name, keyword arguments)], every parameter given a non-default value
    by one of its class's cases (the files they read: ``_write_events``)."""
    dead = JsonLinesSink(tmp_path / "dead.jsonl")
    kafka = {"compression": "gzip", "idempotence": False, "config": {"linger.ms": 3}, "flush_timeout": 3.0}
    consumer = {
        "start": "latest",
        "config": {"fetch.min.bytes": 2},
        "max_batch": 5,
        "poll_timeout": 0.5,
        "max_in_flight": 9,
        "stop_at_end": True,
        "connect_timeout": 3.0,
        "broker_timeout": 4.0,
    }
    hub = {
        "connection_string_env": "HUB_CONNECTION",
        "eventhub": "clicks",
        "bootstrap_servers": "localhost:9",
    }
    hub["security_protocol"] = "PLAINTEXT"
    return {
        ("sources", "replay"): [
            (
                "ReplaySource",
                {
                    "data": tmp_path / "e.csv",
                    "time": "ts",
                    "speed": 2.0,
                    "batch_size": 3,
                    "dead_letter": dead,
                    "sep": ";",
                    "encoding": "cp1252",
                    "decimal": ",",
                },
            ),
            (
                "ReplaySource",
                {"data": tmp_path / "e.jsonl", "time": "when", "speed": 2.0, "raw": True, "batch_size": 1},
            ),
        ],
        ("sources", "synthetic"): [
            (
                "SyntheticSource",
                {
                    "kind": "iot",
                    "n": 5,
                    "events_per_second": 3.0,
                    "seed": 2,
                    "batch_size": 7,
                    "start": "2024-01-01",
                    "n_devices": 3,
                },
            )
        ],
        ("sources", "kafka"): [
            ("KafkaSource", {"topics": ["t1", "t2"], "bootstrap_servers": "h:1", "group_id": "g", **consumer})
        ],
        ("sources", "eventhub"): [("EventHubSource", {**hub, "consumer_group": "cg", **consumer})],
        ("sources", "pubsub"): [
            (
                "PubSubSource",
                {
                    "subscription": "s",
                    "project": "p",
                    "max_messages": 5,
                    "flow_control": {"max_bytes": 10},
                    "emulator_host": "localhost:1",
                    "timeout": 3.0,
                    "service_timeout": 4.0,
                },
            )
        ],
        ("sources", "kinesis"): [
            (
                "KinesisSource",
                {
                    "stream": "s",
                    "endpoint_url": "http://localhost:1",
                    "region": "eu-west-1",
                    "start": "LATEST",
                    "checkpoint_path": tmp_path / "kinesis.json",
                    "records_per_call": 5,
                    "idle_interval": "1s",
                    "shard_refresh": "1m",
                    "timeout": 3.0,
                },
            )
        ],
        ("sinks", "duckdb"): [("DuckDBSink", {"path": tmp_path / "db.duckdb", "table": "t", "key": ["k"]})],
        ("sinks", "parquet"): [("ParquetSink", {"path": tmp_path / "parts"})],
        ("sinks", "jsonl"): [("JsonLinesSink", {"path": tmp_path / "out.jsonl"})],
        ("sinks", "list"): [("ListSink", {})],
        ("sinks", "recording"): [("RecordingSink", {"path": tmp_path / "recording"})],
        ("sinks", "kafka"): [
            (
                "KafkaSink",
                {
                    "topic": "t",
                    "bootstrap_servers": "h:1",
                    "key": "k",
                    "value": "raw",
                    "headers": {"h": "c"},
                    **kafka,
                },
            )
        ],
        ("sinks", "kafka_dead_letter"): [
            ("KafkaDeadLetterSink", {"topic": "t", "bootstrap_servers": "h:1", **kafka})
        ],
        ("sinks", "eventhub"): [
            (
                "EventHubSink",
                {**hub, "key": "k", "value": "raw", "headers": {"h": "c"}, **kafka, "compression": "zstd"},
            )
        ],
        ("sinks", "pubsub"): [
            (
                "PubSubSink",
                {
                    "topic": "t",
                    "project": "p",
                    "ordering_key": "k",
                    "attributes": ["a"],
                    "emulator_host": "localhost:1",
                    "timeout": 3.0,
                    "dead_letter": dead,
                },
            )
        ],
        ("sinks", "kinesis"): [
            (
                "KinesisSink",
                {
                    "stream": "s",
                    "partition_key": "k",
                    "endpoint_url": "http://localhost:1",
                    "region": "eu-west-1",
                    "max_attempts": 2,
                    "backoff": "1s",
                    "max_backoff": "9s",
                    "timeout": 3.0,
                    "dead_letter": dead,
                },
            )
        ],
        ("sinks", "timestream"): [
            (
                "TimestreamSink",
                {
                    "database": "db",
                    "table": "t",
                    "dimensions": ["a"],
                    "measures": ["m"],
                    "time": "ts",
                    "measure_name": "mm",
                    "dead_letter": dead,
                    "endpoint_url": "http://localhost:1",
                    "region": "eu-west-1",
                },
            )
        ],
        ("sinks", "bigquery"): [
            (
                "BigQuerySink",
                {
                    "table": "d.t",
                    "project": "p",
                    "mode": "stream",
                    "insert_id": "id",
                    "client_options": {"api_endpoint": "http://localhost:1"},
                    "dead_letter": dead,
                    "extra_columns": "error",
                    "timeout": 3.0,
                },
            ),
            ("BigQuerySink", {"table": "d.t", "project": "p", "mode": "load"}),  # (insert_id: stream only)
        ],
        ("sinks", "redis_metrics"): [
            (
                "RedisMetricsSink",
                {
                    "url": "redis://localhost:1",
                    "key_template": "m:{k}",
                    "fields": ["a"],
                    "channel": None,
                    "ttl": 5,
                    "timeout": 3.0,
                },
            )
        ],
        ("sinks", "redis_stream"): [
            (
                "RedisStreamSink",
                {"url": "redis://localhost:1", "stream": "st", "columns": ["a"], "maxlen": 5, "timeout": 3.0},
            )
        ],
        ("sinks", "pagerduty"): [
            ("PagerDutySink", {"routing_key": _PAGERDUTY_KEY}),
            (
                "PagerDutySink",
                {
                    "routing_key_env": "PAGERDUTY_KEY_VAR",
                    "url": "http://localhost:1/x",
                    "dedup_key": "k",
                    "summary": "s",
                    "source": "src",
                    "severity": "warning",
                    "action_column": "a",
                    "timestamp_column": "t",
                    "rate_limit_per_minute": 5,
                    "max_retries": 2,
                    "timeout": 3.0,
                    "dead_letter": dead,
                },
            ),
        ],
        ("sinks", "webhook"): [
            (
                "WebhookSink",
                {
                    "url": "http://localhost:1/x",
                    "template": {"a": "{k}"},
                    "headers": {"X": "y"},
                    "rate_limit_per_minute": 5,
                    "max_retries": 2,
                    "timeout": 3.0,
                    "dead_letter": dead,
                },
            )
        ],
    }


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the cases' secrets are read from, and those their specs refer to."""
    monkeypatch.setenv("HUB_CONNECTION", _HUB)
    monkeypatch.setenv("PAGERDUTY_KEY_VAR", _PAGERDUTY_KEY)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", _PAGERDUTY_KEY)
    monkeypatch.setenv("WEBHOOK_URL", "http://localhost:1/x")
    monkeypatch.setenv("WEBHOOK_HEADER_X", "y")


def _class(name: str) -> type:
    import streamlab.connectors
    import streamlab.datasets

    import streamlab.recording
    import streamlab.sinks
    import streamlab.sources

    modules = (
        streamlab.sources,
        streamlab.sinks,
        streamlab.recording,
        streamlab.datasets,
        streamlab.connectors,
    )
    return next(getattr(m, name) for m in modules if hasattr(m, name))


def _factory(section: str, kind: str) -> Callable[..., Any]:
    _builtin_factories()
    kinds = _BUILTIN_SOURCES if section == "sources" else _BUILTIN_SINKS
    return _reading_dead_letter(kind, kinds[kind])


def _state(value: Any) -> Any:
    """What an object holds, comparable: sources and sinks by their attributes, frames by their
    values, locks by their type, and environment references as the values they name."""
    if isinstance(value, (Source, Sink)):
        return (type(value).__name__, {k: _state(v) for k, v in vars(value).items()})
    if isinstance(value, pd.DataFrame):
        return ("DataFrame", list(value.columns), [str(t) for t in value.dtypes], value.to_dict("list"))
    if isinstance(value, dict):
        return {k: _state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_state(v) for v in value)
    if type(value).__name__ in ("lock", "RLock"):
        return type(value).__name__
    if isinstance(value, str):
        return resolve(value)
    return value


def _read_back(section: str, kind: str, obj: Any) -> Any:
    spec = load_yaml(yaml.safe_dump(obj.spec(), sort_keys=False))  # as to_yaml writes it, from_yaml reads it
    assert spec.pop("kind") == kind
    return _factory(section, kind)(**spec)


def test_every_built_in_kind_has_a_case(tmp_path: Path) -> None:
    _builtin_factories()
    kinds = {("sources", k) for k in _BUILTIN_SOURCES} | {("sinks", k) for k in _BUILTIN_SINKS}
    assert kinds == set(_cases(tmp_path)), "add a case for each source and sink kind a spec names"


def test_every_parameter_of_each_class_is_given_a_value_other_than_its_default(tmp_path: Path) -> None:
    given: dict[str, dict[str, list[Any]]] = {}
    for cases in _cases(tmp_path).values():
        for name, kwargs in cases:
            for k, v in kwargs.items():
                given.setdefault(name, {}).setdefault(k, []).append(v)
    lacking = []
    for name in given:
        params = inspect.signature(_class(name).__init__).parameters
        for p in list(params.values())[1:]:
            values = given[name].get(p.name, [])
            if p.kind is p.VAR_KEYWORD:
                if not set(given[name]) - set(params):
                    lacking.append(f"{name}(**{p.name})")
            elif (name, p.name) not in _NOT_IN_SPEC and not any(
                p.default is p.empty or v != p.default for v in values
            ):
                lacking.append(f"{name}({p.name}=...)")
    assert not sorted(set(lacking)), "give these a value other than the default in _cases"


@pytest.mark.usefixtures("secrets")
@pytest.mark.parametrize(
    ("section", "kind", "index"),
    [(s, k, i) for (s, k), cases in _cases(Path("/nonexistent")).items() for i in range(len(cases))],
)
def test_the_object_read_back_from_its_spec_holds_the_same_parameters(
    tmp_path: Path, section: str, kind: str, index: int
) -> None:
    _write_events(tmp_path)
    name, kwargs = _cases(tmp_path)[(section, kind)][index]
    obj = _class(name)(**kwargs)
    back = _read_back(section, kind, obj)
    assert type(back) is type(obj)
    assert _state(back) == _state(obj)


def test_bigquery_credentials_are_refused_by_the_spec(tmp_path: Path) -> None:
    # BigQuerySink.spec() dropped credentials= (a Python object) without a word: the sink read back
    # connected with the default credentials; it is refused, as ListSource refuses its data
    from streamlab.connectors import BigQuerySink

    sink = BigQuerySink("p.d.t", credentials=object())
    with pytest.raises(
        ValueError, match=r"BigQuerySink\(credentials=...\): a Python object.*GOOGLE_APPLICATION"
    ):
        _read_back("sinks", "bigquery", sink)


def _early_counts(p: Pipeline) -> list[int]:
    return p.run(clock=ManualClock(0))["w.early"]["count"].tolist()


def test_a_replay_source_read_back_from_yaml_cuts_the_stream_into_the_same_batches(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps({"k": "a", "timestamp": t}) + "\n" for t in (0, 1, 2, 3, 11)))
    p = Pipeline(ReplaySource(path, batch_size=1))
    p.stream.window(TumblingWindow("10s"), key="k", early=True, step_id="w").agg(agg.count())
    q = Pipeline.from_yaml(p.to_yaml())
    assert q.steps["source"].source.batch_size == 1
    assert _early_counts(q) == _early_counts(p) == [1, 2, 3, 4, 1]
    # without batch_size the spec is as it was: the run's batch size
    assert "batch_size" not in Pipeline(ReplaySource(path)).to_yaml()


def test_a_replay_sources_batch_size_keeps_its_checkpoints_fingerprint(tmp_path: Path) -> None:
    # how the stream is cut into batches does not change what a position means: a run resumed with
    # another batch size (or a checkpoint written before batch_size was in the spec) resumes
    path = tmp_path / "e.parquet"
    pd.DataFrame({"timestamp": pd.to_datetime([0, 1], unit="s", utc=True)}).to_parquet(path)
    prints = {pipeline_fingerprint(Pipeline(ReplaySource(path, batch_size=n)))[0] for n in (None, 1, 500)}
    assert len(prints) == 1
