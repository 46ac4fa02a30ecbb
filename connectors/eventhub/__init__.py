"""Azure Event Hubs through its Kafka-compatible endpoint.

An Event Hubs namespace speaks the Kafka protocol on ``<namespace>.servicebus.windows.net:9093``
(SASL_SSL, mechanism PLAIN, user name ``$ConnectionString``, password = the connection string); an
event hub is a Kafka topic and an Event Hubs consumer group is a Kafka group id. ``EventHubSource``
and ``EventHubSink`` are therefore :class:`~streamlab.connectors.kafka.KafkaSource` and
:class:`~streamlab.connectors.kafka.KafkaSink` with that configuration filled in from the connection
string, and they need only ``pip install 'streamlab[eventhub]'`` (confluent-kafka).

What is verified locally: the Kafka path, against the tansu broker with a PLAINTEXT override
(``bootstrap_servers=..., security_protocol="PLAINTEXT"``), plus the connection-string parsing and the
generated configuration. Not verified here: TLS/SASL against the real service, and the native AMQP
client (``azure-eventhub``), because no local server speaks Event Hubs' AMQP dialect (generic AMQP
brokers reject its ``$cbs`` links; see ``/work/shared/services/README.md``).

Modules: ``connection`` (connection strings, Kafka settings), ``source``, ``sink`` and the private
``_settings`` (what the two share).

Examples
--------
>>> from streamlab.connectors.eventhub import parse_eventhub_connection_string
>>> conn = parse_eventhub_connection_string(
...     "Endpoint=sb://demo.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc;EntityPath=orders"
... )
>>> conn.entity_path
'orders'
"""

from __future__ import annotations

from .connection import (
    EMULATOR_KAFKA_PORT,
    KAFKA_PORT,
    EventHubConnection,
    eventhub_kafka_config,
    parse_eventhub_connection_string,
)
from .sink import EventHubSink
from .source import EventHubSource

__all__ = [
    "EMULATOR_KAFKA_PORT",
    "KAFKA_PORT",
    "EventHubConnection",
    "EventHubSink",
    "EventHubSource",
    "eventhub_kafka_config",
    "parse_eventhub_connection_string",
]
