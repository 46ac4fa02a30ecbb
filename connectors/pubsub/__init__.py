"""Google Cloud Pub/Sub source, sink and admin helpers (official ``google-cloud-pubsub`` client).

:class:`PubSubSource` reads a subscription with streaming pull and acknowledges messages only when the
runtime commits (after the sinks flushed); whatever was never committed is nacked on ``close()`` and
redelivered. :class:`PubSubSink` publishes rows as JSON. Locally, point both at
:class:`~streamlab.local.PubSubEmulator` with ``emulator_host=`` (or set
``PUBSUB_EMULATOR_HOST``).

Modules: ``source`` (the source and its streaming-pull reader), ``sink``, ``admin`` (topics and
subscriptions) and the private ``_client`` (client import, emulator channel, resource paths).

Examples
--------
>>> from streamlab.connectors.pubsub import PubSubSource
>>> PubSubSource("orders", project="demo").subscription
'projects/demo/subscriptions/orders'
"""

from __future__ import annotations

from streamlab.serde import encode_rows

from .admin import create_subscription, create_topic
from .sink import PubSubSink
from .source import PubSubSource, PubSubUnreachableError

__all__ = [
    "PubSubSink",
    "PubSubSource",
    "PubSubUnreachableError",
    "create_subscription",
    "create_topic",
    "encode_json_rows",
]

#: One JSON object per row as bytes: :func:`streamlab.serde.encode_rows` (the name this module exported).
encode_json_rows = encode_rows
