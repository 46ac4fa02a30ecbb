"""Sources and sinks for real providers (the local servers to try them on are in ``streamlab.local``).

Every connector uses the provider's official client, imported only when the connector is used (a missing
client raises an ImportError naming the extra to install). Sources commit offsets or ack messages only
when the runtime says the sinks have the data; poison records reach the pipeline's dead-letter output.

Examples
--------
>>> import streamlab.connectors as c
>>> c.KafkaSource.__name__
'KafkaSource'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # Kafka and Event Hubs (Kafka endpoint)
    "LocalKafkaBroker": "streamlab.local.kafka",
    "KafkaAdmin": "kafka",
    "KafkaSource": "kafka",
    "KafkaSink": "kafka",
    "KafkaDeadLetterSink": "kafka",
    "create_kafka_topic": ("kafka", "create_topic"),
    "EventHubSource": "eventhub",
    "EventHubSink": "eventhub",
    "eventhub_kafka_config": "eventhub",
    "parse_eventhub_connection_string": "eventhub",
    # Google Cloud
    "PubSubEmulator": "streamlab.local.pubsub",
    "PubSubSource": "pubsub",
    "PubSubSink": "pubsub",
    "create_topic": "pubsub",
    "create_subscription": "pubsub",
    "BigQuerySink": "bigquery",
    "create_events_table": "bigquery",
    # AWS
    "LocalAWS": "streamlab.local.aws",
    "KinesisSource": "kinesis",
    "KinesisSink": "kinesis",
    "TimestreamSink": "timestream",
    # Redis, live dashboards and alerts
    "LocalRedis": "streamlab.local.redis",
    "RedisWebSocketRelay": "dashboard",
    "RedisMetricsSink": "redis",
    "RedisStreamSink": "redis",
    "PagerDutySink": "alerts",
    "WebhookSink": "alerts",
}

__all__ = [*sorted(_EXPORTS), "register_spec_kinds"]

_SOURCE_KINDS = {
    "kafka": "KafkaSource",
    "eventhub": "EventHubSource",
    "pubsub": "PubSubSource",
    "kinesis": "KinesisSource",
}
_SINK_KINDS = {
    "kafka": "KafkaSink",
    "kafka_dead_letter": "KafkaDeadLetterSink",
    "eventhub": "EventHubSink",
    "pubsub": "PubSubSink",
    "kinesis": "KinesisSink",
    "timestream": "TimestreamSink",
    "bigquery": "BigQuerySink",
    "redis_metrics": "RedisMetricsSink",
    "redis_stream": "RedisStreamSink",
    "pagerduty": "PagerDutySink",
    "webhook": "WebhookSink",
}


def __getattr__(name: str) -> Any:
    # the connector modules import nothing optional at import time, but stay unloaded until used
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'streamlab.connectors' has no attribute {name!r}")
    module, attr = (target, name) if isinstance(target, str) else target
    # the local servers live in streamlab.local; they stay reachable here under their old names
    path = module if module.startswith("streamlab.") else f"streamlab.connectors.{module}"
    value = getattr(importlib.import_module(path), attr)
    globals()[name] = value
    return value


def register_spec_kinds(register_source: Any, register_sink: Any) -> None:
    """Teach ``Pipeline.from_yaml`` the connector kinds (called by ``streamlab.spec``)."""

    def factory(cls_name: str) -> Any:
        return lambda **params: __getattr__(cls_name)(**params)

    for kind, cls_name in _SOURCE_KINDS.items():
        register_source(kind, factory(cls_name))
    for kind, cls_name in _SINK_KINDS.items():
        register_sink(kind, factory(cls_name))


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
