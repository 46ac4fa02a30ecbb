"""Every connector refuses a bad parameter with a ParameterError naming the connector, the parameter, the
problem and a fix, when it is built (before connecting: no server is needed); a spec reports it at the
parameter's path with that fix. A plain ValueError left in connectors/ must be a run-time error (a row's
data, a service's answer) listed in ALLOWED with its reason."""

from __future__ import annotations

import ast
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import streamlab.connectors as c
import yaml
from streamlab.connectors.eventhub import parse_eventhub_connection_string
from streamlab.connectors.kafka import KafkaAdmin
from streamlab.connectors.pubsub import create_subscription, create_topic

from streamlab.errors import ParameterError, SpecError
from streamlab.spec import pipeline_from_yaml

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"

#: (file under connectors/, enclosing function) -> why its ``raise ValueError`` is not a configuration check
ALLOWED = {
    ("alerts/_templates.py", "_format"): "a row's value that its template's format spec cannot format: "
    "data at run time (the alert is recorded as failed with it)",
    ("alerts/pagerduty.py", "PagerDutySink.request_body"): "a row's action column holds an unknown action, "
    "or asks to acknowledge/resolve without a dedup_key: data at run time, per alert",
    ("kinesis/sink.py", "_KinesisWriter.write_batch"): "rows whose partition keys Kinesis cannot take, "
    "with no dead_letter sink: data at run time",
}


def _value_error_raises(tree: ast.Module) -> list[tuple[str, int]]:
    """``(enclosing function's qualified name, line)`` of each ``raise ValueError``/``ValueError(...)``."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                if isinstance(exc, ast.Name) and exc.id == "ValueError":
                    found.append((".".join(scope) or "<module>", child.lineno))
            visit(child, scope)

    visit(tree, [])
    return found


def test_no_plain_value_error_is_left_in_a_configuration_check() -> None:
    seen: set[tuple[str, str]] = set()
    unexpected = []
    for path in sorted(CONNECTORS.rglob("*.py")):
        rel = path.relative_to(CONNECTORS).as_posix()
        for scope, line in _value_error_raises(ast.parse(path.read_text(), str(path))):
            seen.add((rel, scope))
            if (rel, scope) not in ALLOWED:
                unexpected.append(f"connectors/{rel}:{line} in {scope}")
    assert not unexpected, (
        "raise ParameterError(owner, parameter, problem, fix) for a configuration check, or add the site to "
        f"ALLOWED with the reason it is not configuration: {unexpected}"
    )
    # an entry whose raise is gone would hide the next one added there
    assert set(ALLOWED) <= seen, sorted(set(ALLOWED) - seen)


def test_the_scan_finds_a_raise_in_a_constructor() -> None:
    tree = ast.parse("class S:\n    def __init__(self):\n        raise ValueError('x')\n")
    assert _value_error_raises(tree) == [("S.__init__", 3)]


KAFKA = {"bootstrap_servers": "127.0.0.1:9092"}
SOURCE_REQUIRED: dict[str, dict[str, Any]] = {
    "kafka": {"topics": "events", "group_id": "g", **KAFKA},
    "pubsub": {"subscription": "events-sub", "project": "demo"},
    "kinesis": {"stream": "events"},
    "eventhub": {
        "connection_string": "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=S3CRET",
        "eventhub": "events",
    },
}
SINK_REQUIRED: dict[str, dict[str, Any]] = {
    "kafka": {"topic": "events", **KAFKA},
    "kafka_dead_letter": {"topic": "dead", **KAFKA},
    "eventhub": SOURCE_REQUIRED["eventhub"],
    "pubsub": {"topic": "alerts", "project": "demo"},
    "kinesis": {"stream": "events", "partition_key": "user_id"},
    "timestream": {
        "database": "analytics",
        "table": "events",
        "dimensions": ["event_type"],
        "measures": ["value"],
    },
    "bigquery": {"table": "demo.analytics.events"},
    "redis_metrics": {"url": "redis://127.0.0.1:6379/0"},
    "redis_stream": {"url": "redis://127.0.0.1:6379/0", "stream": "events"},
    "pagerduty": {"routing_key": "R0UTINGKEY"},
    "webhook": {"url": "https://hooks.example.com/alerts"},
}
UNSET = "STREAMLAB_TEST_VARIABLE_NOBODY_SETS"

#: (role, kind, the bad parameters over the required ones, the parameter the error names); a None value
#: removes a required parameter
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("source", "kafka", {"topics": ""}, "topics"),
    ("source", "kafka", {"topics": ["my events"]}, "topics"),
    ("source", "kafka", {"group_id": ""}, "group_id"),
    ("source", "kafka", {"start": "yesterday"}, "start"),
    # these were taken: '' became NaT's smallest int64, -1 librdkafka's "end of the partition"
    ("source", "kafka", {"start": ""}, "start"),
    ("source", "kafka", {"start": -1}, "start"),
    ("source", "kafka", {"start": "1969-12-31"}, "start"),
    ("source", "kafka", {"max_batch": 0}, "max_batch"),
    # a bool (YAML's yes) was taken as the number 1
    ("source", "kafka", {"max_batch": True}, "max_batch"),
    ("source", "kafka", {"poll_timeout": True}, "poll_timeout"),
    ("source", "kafka", {"max_in_flight": True}, "max_in_flight"),
    ("source", "kafka", {"poll_timeout": 10}, "poll_timeout"),
    ("source", "kafka", {"max_in_flight": 0}, "max_in_flight"),
    ("source", "kafka", {"connect_timeout": 0}, "connect_timeout"),
    ("source", "kafka", {"bootstrap_servers": ""}, "bootstrap_servers"),
    ("source", "kafka", {"bootstrap_servers": "http://broker:9092"}, "bootstrap_servers"),
    ("source", "kafka", {"bootstrap_servers": "broker:99999"}, "bootstrap_servers"),
    ("source", "kafka", {"config": {"group.id": "other"}}, "config"),
    # a config that is no mapping, or has a key that is no text, was a TypeError (at the entry in a spec)
    ("source", "kafka", {"config": "sasl.password=S3CRET"}, "config"),
    ("sink", "kafka", {"config": {5: "ms"}}, "config"),
    ("source", "eventhub", {"config": ["linger.ms", 5]}, "config"),
    ("source", "kafka", {"stop_at_end": True, "config": {"enable.partition.eof": False}}, "config"),
    ("sink", "kafka", {"topic": "my events"}, "topic"),
    ("sink", "kafka", {"topic": "^events.*"}, "topic"),
    ("sink", "kafka", {"compression": "brotli"}, "compression"),
    ("sink", "kafka", {"key": ""}, "key"),
    ("sink", "kafka", {"value": ""}, "value"),
    ("sink", "kafka", {"headers": "kind"}, "headers"),
    ("sink", "kafka", {"flush_timeout": 0}, "flush_timeout"),
    ("sink", "kafka", {"flush_timeout": True}, "flush_timeout"),  # was taken as 1 second
    # inf was taken: librdkafka read it as a negative wait, a socket refuses it (OverflowError)
    ("sink", "kafka", {"flush_timeout": float("inf")}, "flush_timeout"),
    ("source", "kafka", {"broker_timeout": float("inf")}, "broker_timeout"),
    ("sink", "kafka", {"bootstrap_servers": "broker"}, "bootstrap_servers"),
    ("sink", "kafka_dead_letter", {"topic": ""}, "topic"),
    ("source", "eventhub", {"connection_string": None}, "connection_string"),
    ("source", "eventhub", {"connection_string_env": UNSET}, "connection_string_env"),
    (
        "source",
        "eventhub",
        {"connection_string": "Endpoint=sb://ns1.servicebus.windows.net/"},
        "connection_string",
    ),
    (
        "source",
        "eventhub",
        {"connection_string": "Endpoint=http//ns1;SharedAccessKeyName=k;SharedAccessKey=S3CRET"},
        "connection_string",
    ),
    ("source", "eventhub", {"security_protocol": "TLS"}, "security_protocol"),
    ("source", "eventhub", {"config": {"sasl.password": "x"}}, "config"),
    (
        "sink",
        "eventhub",
        {"eventhub": None, "connection_string": "Endpoint=sb://ns1.x/;SharedAccessSignature=sig"},
        "eventhub",
    ),
    (
        "sink",
        "eventhub",
        {"connection_string": "Endpoint=sb://ns1.x/;SharedAccessSignature=sig;EntityPath=hub1"},
        "eventhub",
    ),
    ("source", "pubsub", {"subscription": "a/b"}, "subscription"),
    ("source", "pubsub", {"subscription": "projects/demo/topics/t"}, "subscription"),
    ("source", "pubsub", {"project": ""}, "project"),
    ("source", "pubsub", {"max_messages": 0}, "max_messages"),
    ("source", "pubsub", {"max_messages": True}, "max_messages"),
    ("sink", "pubsub", {"project": 42}, "project"),  # was projects/42/topics/...: YAML read it as a number
    ("source", "pubsub", {"flow_control": {"max_messagez": 1}}, "flow_control"),
    ("source", "pubsub", {"service_timeout": 0}, "service_timeout"),
    ("sink", "pubsub", {"topic": ""}, "topic"),
    ("sink", "pubsub", {"ordering_key": ""}, "ordering_key"),
    ("sink", "pubsub", {"attributes": "event_type"}, "attributes"),
    ("sink", "pubsub", {"attributes": {"source": 1}}, "attributes"),
    # PubSubSink took any timeout: 0 failed every flush at once, a quoted '60' with a TypeError there
    ("sink", "pubsub", {"timeout": 0}, "timeout"),
    ("sink", "pubsub", {"timeout": float("inf")}, "timeout"),
    ("sink", "pubsub", {"timeout": "60"}, "timeout"),
    ("source", "kinesis", {"stream": ""}, "stream"),
    ("source", "kinesis", {"records_per_call": 0}, "records_per_call"),
    ("source", "kinesis", {"records_per_call": True}, "records_per_call"),
    ("source", "kinesis", {"shard_refresh": "-1s"}, "shard_refresh"),
    ("source", "kinesis", {"start": "not a time"}, "start"),
    ("source", "kinesis", {"idle_interval": "soon"}, "idle_interval"),
    ("source", "kinesis", {"timeout": 0}, "timeout"),
    ("sink", "kinesis", {"partition_key": ""}, "partition_key"),
    ("sink", "kinesis", {"max_attempts": 0}, "max_attempts"),
    ("sink", "kinesis", {"max_attempts": True}, "max_attempts"),
    ("sink", "kinesis", {"backoff": -0.1}, "backoff"),
    ("sink", "kinesis", {"backoff": "later"}, "backoff"),
    ("sink", "kinesis", {"dead_letter": "dead.jsonl"}, "dead_letter"),
    ("sink", "timestream", {"database": ""}, "database"),
    ("sink", "timestream", {"table": ["events"]}, "table"),
    # a dead_letter that is no sink was taken, and failed when opened or written to YAML
    ("sink", "timestream", {"dead_letter": "dead.jsonl"}, "dead_letter"),
    ("sink", "bigquery", {"dead_letter": "dead.jsonl"}, "dead_letter"),
    ("sink", "timestream", {"dimensions": "event_type"}, "dimensions"),
    ("sink", "timestream", {"measures": []}, "measures"),
    ("sink", "timestream", {"dimensions": ["ts_host"]}, "dimensions"),
    ("sink", "timestream", {"dimensions": ["value"]}, "measures"),
    ("sink", "bigquery", {"table": "events"}, "table"),
    ("sink", "bigquery", {"mode": "batch"}, "mode"),
    ("sink", "bigquery", {"mode": "load", "insert_id": "event_id"}, "insert_id"),
    ("sink", "bigquery", {"extra_columns": "keep"}, "extra_columns"),
    ("sink", "bigquery", {"timeout": 0}, "timeout"),
    ("sink", "redis_metrics", {"url": "http://127.0.0.1:6379"}, "url"),
    ("sink", "redis_metrics", {"url": "redis://127.0.0.1:port/0"}, "url"),
    ("sink", "redis_metrics", {"fields": "count"}, "fields"),
    ("sink", "redis_metrics", {"fields": []}, "fields"),
    ("sink", "redis_metrics", {"channel": ""}, "channel"),
    ("sink", "redis_metrics", {"ttl": 0}, "ttl"),
    ("sink", "redis_metrics", {"ttl": True}, "ttl"),
    ("sink", "redis_metrics", {"key_template": "metrics:{event_type:>5}"}, "key_template"),
    ("sink", "redis_metrics", {"timeout": 0}, "timeout"),
    ("sink", "redis_metrics", {"timeout": float("inf")}, "timeout"),
    ("sink", "redis_stream", {"url": "redis://127.0.0.1:6379/zero"}, "url"),
    ("sink", "redis_stream", {"stream": ""}, "stream"),
    ("sink", "redis_stream", {"maxlen": 0}, "maxlen"),
    ("sink", "redis_stream", {"maxlen": True}, "maxlen"),
    ("sink", "redis_stream", {"columns": "user_id"}, "columns"),
    ("sink", "pagerduty", {"routing_key": ""}, "routing_key"),
    ("sink", "pagerduty", {"routing_key_env": "PD_KEY"}, "routing_key_env"),
    ("sink", "pagerduty", {"routing_key": None, "routing_key_env": UNSET}, "routing_key_env"),
    ("sink", "pagerduty", {"severity": "fatal"}, "severity"),
    ("sink", "pagerduty", {"summary": "{user.name}"}, "summary"),
    ("sink", "pagerduty", {"dedup_key": "{"}, "dedup_key"),
    ("sink", "pagerduty", {"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
    ("sink", "webhook", {"url": "ftp://example.com"}, "url"),
    ("sink", "webhook", {"template": 3}, "template"),
    ("sink", "webhook", {"template": "{user_id!z}"}, "template"),
    ("sink", "webhook", {"max_retries": -1}, "max_retries"),
    ("sink", "webhook", {"max_retries": True}, "max_retries"),
    ("sink", "pagerduty", {"rate_limit_per_minute": True}, "rate_limit_per_minute"),
    ("sink", "webhook", {"timeout": 0}, "timeout"),
    ("sink", "pagerduty", {"timeout": True}, "timeout"),  # was taken as 1 second
    # taken of any type, and failed (or went elsewhere) when the first client was made
    ("source", "kinesis", {"region": 5}, "region"),
    ("sink", "kinesis", {"region": ""}, "region"),
    ("sink", "timestream", {"region": "eu west 1"}, "region"),
    ("source", "kinesis", {"endpoint_url": "localhost:4567"}, "endpoint_url"),
    ("sink", "kinesis", {"endpoint_url": 4567}, "endpoint_url"),
    ("sink", "timestream", {"endpoint_url": "http://:80"}, "endpoint_url"),
    ("source", "pubsub", {"emulator_host": 8085}, "emulator_host"),
    ("sink", "pubsub", {"emulator_host": "http://127.0.0.1:8085"}, "emulator_host"),
    # an empty name: every record's time column or MeasureName was ''
    ("sink", "timestream", {"time": ""}, "time"),
    ("sink", "timestream", {"measure_name": ""}, "measure_name"),
    # a mapping gave its keys, a set its names in an order of its own
    ("source", "kafka", {"topics": {"events": "clicks"}}, "topics"),
    # (a set of one: the order of several, in the test's id, differs between xdist's workers)
    ("source", "kafka", {"topics": {"events"}}, "topics"),
    # PagerDuty takes an empty key as none: no event could update or resolve an incident
    ("sink", "pagerduty", {"dedup_key": ""}, "dedup_key"),
]
CLASSES = {
    ("source", "kafka"): "KafkaSource",
    ("source", "eventhub"): "EventHubSource",
    ("source", "pubsub"): "PubSubSource",
    ("source", "kinesis"): "KinesisSource",
    ("sink", "kafka"): "KafkaSink",
    ("sink", "kafka_dead_letter"): "KafkaDeadLetterSink",
    ("sink", "eventhub"): "EventHubSink",
    ("sink", "pubsub"): "PubSubSink",
    ("sink", "kinesis"): "KinesisSink",
    ("sink", "timestream"): "TimestreamSink",
    ("sink", "bigquery"): "BigQuerySink",
    ("sink", "redis_metrics"): "RedisMetricsSink",
    ("sink", "redis_stream"): "RedisStreamSink",
    ("sink", "pagerduty"): "PagerDutySink",
    ("sink", "webhook"): "WebhookSink",
}


def _params(role: str, kind: str, bad: dict[str, Any]) -> dict[str, Any]:
    base = (SOURCE_REQUIRED if role == "source" else SINK_REQUIRED)[kind]
    merged = {**base, **bad}
    return {k: v for k, v in merged.items() if v is not None}


def _check(error: ParameterError, owner: str, parameter: str) -> None:
    assert (error.owner, error.parameter) == (owner, parameter), str(error)
    assert error.problem.strip() and error.fix.strip(), str(error)
    assert str(error) == f"{owner}({parameter}=...): {error.problem}. Fix: {error.fix}"
    assert "S3CRET" not in str(error)  # a connection string's key is never echoed
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.parameter, again.fix) == (ParameterError, parameter, error.fix)


def _id(case: tuple[str, str, dict[str, Any], str]) -> str:
    role, kind, bad, _ = case
    return f"{role}-{kind}-" + ",".join(f"{k}={v!r}"[:40] for k, v in bad.items())


def test_every_spec_kind_of_the_connectors_has_cases() -> None:
    assert {(role, kind) for role, kind, _, _ in CASES} == set(CLASSES)
    for role, kind in CLASSES:  # the required parameters alone build the connector
        getattr(c, CLASSES[role, kind])(**_params(role, kind, {}))


@pytest.mark.parametrize("case", CASES, ids=[_id(x) for x in CASES])
def test_a_bad_parameter_in_python_is_a_parameter_error(
    case: tuple[str, str, dict[str, Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    role, kind, bad, parameter = case
    monkeypatch.delenv(UNSET, raising=False)
    owner = CLASSES[role, kind]
    with pytest.raises(ParameterError) as e:
        getattr(c, owner)(**_params(role, kind, bad))
    _check(e.value, owner, parameter)


def _spec(tmp_path: Path, role: str, kind: str, params: dict[str, Any]) -> str:
    if role == "source":
        streaming: dict[str, Any] = {"sources": [{"step_id": "s", "kind": kind, **params}]}
    else:
        events = tmp_path / "events.jsonl"
        events.write_text('{"timestamp": 0, "user_id": "u1", "event_type": "click", "value": 1}\n')
        streaming = {
            "sources": [{"step_id": "events", "kind": "replay", "path": str(events)}],
            "sinks": [{"step_id": "out", "kind": kind, "input": "events", **params}],
        }
    return yaml.safe_dump({"streaming": {"name": "p", **streaming}}, sort_keys=False)


@pytest.mark.parametrize("case", CASES, ids=[_id(x) for x in CASES])
def test_a_bad_parameter_in_a_spec_is_reported_at_its_path_with_the_fix(
    case: tuple[str, str, dict[str, Any], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role, kind, bad, parameter = case
    monkeypatch.delenv(UNSET, raising=False)
    params = _params(role, kind, bad)
    with pytest.raises(ParameterError) as built:
        getattr(c, CLASSES[role, kind])(**params)
    with pytest.raises(SpecError) as e:
        pipeline_from_yaml(_spec(tmp_path, role, kind, params))
    [problem] = e.value.problems
    where = "streaming.sources[0] (step 's')" if role == "source" else "streaming.sinks[0] (step 'out')"
    assert problem.path == f"{where}.{parameter}"
    assert (problem.problem, problem.fix) == (built.value.problem, built.value.fix)
    assert str(problem) in str(e.value)


def test_a_reported_problem_reads_path_problem_and_fix(tmp_path: Path) -> None:
    text = _spec(tmp_path, "sink", "redis_stream", {**SINK_REQUIRED["redis_stream"], "maxlen": 0})
    with pytest.raises(SpecError) as e:
        pipeline_from_yaml(text)
    assert str(e.value) == (
        "streaming.sinks[0] (step 'out').maxlen: expected a positive number of entries, or None, got 0. "
        "Fix: write a number such as maxlen: 10000 (maxlen=10_000 in Python), or leave it out (None) for a "
        "stream without a length limit"
    )


#: connectors and helpers a spec does not build: (call, owner, parameter)
PYTHON_ONLY: dict[str, tuple[Callable[[], object], str, str]] = {
    "relay url": (lambda: c.RedisWebSocketRelay("127.0.0.1:6379"), "RedisWebSocketRelay", "redis_url"),
    "relay channels": (lambda: c.RedisWebSocketRelay("redis://h:1/0", []), "RedisWebSocketRelay", "channels"),
    "relay port": (lambda: c.RedisWebSocketRelay("redis://h:1/0", port=70000), "RedisWebSocketRelay", "port"),
    "relay buffer": (
        lambda: c.RedisWebSocketRelay("redis://h:1/0", max_client_buffer=-1),
        "RedisWebSocketRelay",
        "max_client_buffer",
    ),
    "relay startup": (
        lambda: c.RedisWebSocketRelay("redis://h:1/0", startup_timeout=0),
        "RedisWebSocketRelay",
        "startup_timeout",
    ),
    "relay startup flag": (
        lambda: c.RedisWebSocketRelay("redis://h:1/0", startup_timeout=True),
        "RedisWebSocketRelay",
        "startup_timeout",
    ),
    "admin partitions": (
        lambda: KafkaAdmin("127.0.0.1:9092").create_topic("t", partitions=0),
        "KafkaAdmin.create_topic",
        "partitions",
    ),
    "admin partitions flag": (
        lambda: KafkaAdmin("127.0.0.1:9092").create_topic("t", partitions=True),
        "KafkaAdmin.create_topic",
        "partitions",
    ),
    "relay buffer flag": (
        lambda: c.RedisWebSocketRelay("redis://h:1/0", max_client_buffer=True),
        "RedisWebSocketRelay",
        "max_client_buffer",
    ),
    "subscription ack flag": (
        lambda: create_subscription("s", "t", project="demo", ack_deadline=True),
        "create_subscription",
        "ack_deadline",
    ),
    "admin name": (lambda: KafkaAdmin("127.0.0.1:9092").create_topic(""), "KafkaAdmin.create_topic", "name"),
    "create_topic servers": (
        lambda: c.create_kafka_topic("nonsense", "events"),
        "create_topic",
        "bootstrap_servers",
    ),
    "subscription ack": (
        lambda: create_subscription("s", "t", project="demo", ack_deadline=5),
        "create_subscription",
        "ack_deadline",
    ),
    "subscription backoff": (
        lambda: create_subscription(
            "s", "t", project="demo", retry_min_backoff="1m", retry_max_backoff="10s"
        ),
        "create_subscription",
        "retry_min_backoff",
    ),
    "subscription backoff range": (
        lambda: create_subscription("s", "t", project="demo", retry_max_backoff="11m"),
        "create_subscription",
        "retry_max_backoff",
    ),
    "subscription attempts": (
        lambda: create_subscription(
            "s", "t", project="demo", dead_letter_topic="dead", max_delivery_attempts=1
        ),
        "create_subscription",
        "max_delivery_attempts",
    ),
    "topic emulator": (
        lambda: create_topic("t", project="demo", emulator_host="localhost"),
        "create_topic",
        "emulator_host",
    ),
    "subscription emulator": (
        lambda: create_subscription("s", "t", project="demo", emulator_host="http://localhost:8085"),
        "create_subscription",
        "emulator_host",
    ),
    "subscription timeout": (
        lambda: create_subscription("s", "t", project="demo", timeout=0),
        "create_subscription",
        "timeout",
    ),
    "subscription topic": (
        lambda: create_subscription("s", "a/b", project="demo"),
        "create_subscription",
        "topic",
    ),
    "eventhub twice": (
        lambda: parse_eventhub_connection_string("Endpoint=sb://a/;Endpoint=sb://b/;SharedAccessSignature=s"),
        "parse_eventhub_connection_string",
        "connection_string",
    ),
    "eventhub key name only": (
        lambda: parse_eventhub_connection_string("Endpoint=sb://a/;SharedAccessKeyName=k"),
        "parse_eventhub_connection_string",
        "connection_string",
    ),
    "eventhub key only": (
        lambda: parse_eventhub_connection_string("Endpoint=sb://a/;SharedAccessKey=S3CRET"),
        "parse_eventhub_connection_string",
        "connection_string",
    ),
    "eventhub segment": (
        lambda: parse_eventhub_connection_string("Endpoint=sb://a/;S3CRET"),
        "parse_eventhub_connection_string",
        "connection_string",
    ),
    "eventhub key without its '='": (
        lambda: parse_eventhub_connection_string(
            "Endpoint=sb://a/;SharedAccessKeyName=k;SharedAccessKey:S3CRET"
        ),
        "parse_eventhub_connection_string",
        "connection_string",
    ),
    "eventhub emulator flag": (
        lambda: parse_eventhub_connection_string(
            "Endpoint=sb://a/;SharedAccessSignature=s;UseDevelopmentEmulator=yes"
        ),
        "parse_eventhub_connection_string",
        "connection_string",
    ),
    "eventhub kafka protocol": (
        lambda: c.eventhub_kafka_config("Endpoint=sb://a/;SharedAccessSignature=s", security_protocol="TLS"),
        "eventhub_kafka_config",
        "security_protocol",
    ),
}


@pytest.mark.parametrize("name", list(PYTHON_ONLY))
def test_a_bad_argument_of_a_helper_is_a_parameter_error(name: str) -> None:
    call, owner, parameter = PYTHON_ONLY[name]
    with pytest.raises(ParameterError) as e:
        call()
    _check(e.value, owner, parameter)


def test_a_checkpoint_of_another_stream_names_checkpoint_path(tmp_path: Path) -> None:
    from streamlab.connectors.kinesis.checkpoint import load_checkpoint, write_checkpoint

    path = tmp_path / "cp.json"
    write_checkpoint(path, "clicks", {"shard-0": "1"})
    with pytest.raises(ParameterError) as e:
        load_checkpoint(path, "orders")
    _check(e.value, "KinesisSource", "checkpoint_path")
    assert "'clicks'" in e.value.problem and "'orders'" in e.value.problem


@pytest.mark.parametrize(
    ("kind", "dead_letter", "parameter"),
    [
        ("kinesis", {"kind": "jsonl", "path": 3}, "dead_letter.path"),
        (
            "timestream",
            {"kind": "kinesis", "stream": "dead", "partition_key": ""},
            "dead_letter.partition_key",
        ),
        (
            "bigquery",
            {"kind": "kinesis", "stream": "d", "partition_key": "u", "max_attempts": 0},
            "dead_letter.max_attempts",
        ),
        (
            "kinesis",
            {"kind": "kinesis", "stream": "d", "partition_key": "u", "dead_letter": {"kind": "nope"}},
            "dead_letter.dead_letter",
        ),
        ("pubsub", {"kind": "kinesis", "stream": "dead", "partition_key": ""}, "dead_letter.partition_key"),
    ],
)
def test_a_bad_parameter_of_a_dead_letter_sink_is_reported_at_its_own_path(
    tmp_path: Path, kind: str, dead_letter: dict[str, Any], parameter: str
) -> None:
    # it was reported at the outer sink's parameter of that name (streaming.sinks[0].path), which the
    # outer sink may not even have
    text = _spec(tmp_path, "sink", kind, {**SINK_REQUIRED[kind], "dead_letter": dead_letter})
    with pytest.raises(SpecError) as e:
        pipeline_from_yaml(text)
    [problem] = e.value.problems
    assert problem.path == f"streaming.sinks[0] (step 'out').{parameter}"
    assert problem.fix and not problem.problem.startswith("ValueError")


@pytest.mark.parametrize(
    ("dead_letter", "where", "problem"),
    [
        ({"kind": "jsonl", "paht": "dead.jsonl"}, ".dead_letter.paht", "unknown parameter 'paht'"),
        ({"kind": "jsonl"}, ".dead_letter", "missing 'path'"),
    ],
)
def test_a_parameter_a_dead_letter_sink_does_not_take_or_lacks_is_reported_at_its_path(
    tmp_path: Path, dead_letter: dict[str, Any], where: str, problem: str
) -> None:
    # they were reported at the outer sink (streaming.sinks[0].paht, streaming.sinks[0]: missing 'path')
    text = _spec(tmp_path, "sink", "kinesis", {**SINK_REQUIRED["kinesis"], "dead_letter": dead_letter})
    with pytest.raises(SpecError) as e:
        pipeline_from_yaml(text)
    [reported] = e.value.problems
    assert (reported.path, reported.problem) == (f"streaming.sinks[0] (step 'out'){where}", problem)


def test_a_plain_value_error_of_a_users_factory_is_still_read_from_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlab import spec

    def my_sink(limit: int = 1) -> Any:
        raise ValueError(f"MySink(limit={limit!r}): must be positive; write limit: 10")

    monkeypatch.setitem(spec._SINKS, "my_sink", my_sink)
    with pytest.raises(SpecError) as e:
        pipeline_from_yaml(_spec(tmp_path, "sink", "my_sink", {"limit": 0}))
    [problem] = e.value.problems
    assert str(problem) == "streaming.sinks[0] (step 'out').limit: must be positive. Fix: write limit: 10"
