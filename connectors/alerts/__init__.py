"""Alert sinks: PagerDuty Events API v2 and generic JSON webhooks (Slack, Teams, your own service).

Standard library only (``urllib``), so no extra is needed. Each alert row becomes one HTTP request.
Requests are rate limited over a rolling minute of the injected clock (the writer waits for a free
slot rather than dropping alerts), and retried on connection errors, HTTP 429 and 5xx with
exponential backoff, honouring ``Retry-After``. A request that still fails, or is rejected (other
4xx), is recorded and makes ``flush()`` raise, so the runtime does not commit the source past it.

Modules: ``pagerduty``, ``webhook``, ``delivery`` (rate limit, retries, the writer both sinks share) and
the private ``_templates`` (``{column}`` templates).

Examples
--------
>>> from streamlab.connectors.alerts import WebhookSink
>>> WebhookSink("https://hooks.example.com/T0/B0/secret")
WebhookSink(url='https://hooks.example.com/***', rate_limit_per_minute=None)
"""

from __future__ import annotations

from .delivery import AlertDeliveryError, AlertWriter
from .pagerduty import PAGERDUTY_EVENTS_URL, PagerDutySink
from .webhook import WebhookSink

__all__ = [
    "PAGERDUTY_EVENTS_URL",
    "AlertDeliveryError",
    "AlertWriter",
    "PagerDutySink",
    "WebhookSink",
]
