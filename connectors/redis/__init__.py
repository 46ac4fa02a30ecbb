"""Redis sinks for live dashboards (the local redis-server is ``streamlab.local.LocalRedis``).

``RedisMetricsSink`` adds each result row's metrics to a hash (``HINCRBY``/``HINCRBYFLOAT``) and
announces every update on a pub/sub channel, all in one MULTI/EXEC round trip per batch, so a
dashboard server can subscribe to the channel and read totals with ``HGETALL``. ``RedisStreamSink``
appends rows to a Redis stream (``XADD``). ``redis`` (redis-py) is imported when a sink is opened:
``pip install 'streamlab[redis]'``.

Modules: ``metrics``, ``stream`` and the private ``_client`` (client import, URL and template checks).

Examples
--------
>>> from streamlab.connectors.redis import RedisStreamSink
>>> RedisStreamSink("redis://127.0.0.1:6379/0", "alerts:{severity}").stream
'alerts:{severity}'
"""

from __future__ import annotations

from streamlab.local.redis import LocalRedis

from .metrics import RedisMetricsSink, RedisMetricsWriter
from .stream import RedisStreamSink, RedisStreamWriter

__all__ = ["LocalRedis", "RedisMetricsSink", "RedisMetricsWriter", "RedisStreamSink", "RedisStreamWriter"]
