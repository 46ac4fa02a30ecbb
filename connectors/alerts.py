"""Alert sinks: PagerDuty Events API v2 and generic JSON webhooks (Slack, Teams, your own service).

Standard library only (``urllib``), so no extra is needed. Each alert row becomes one HTTP request.
Requests are rate limited over a rolling minute of the injected clock (the writer waits for a free
slot rather than dropping alerts), and retried on connection errors, HTTP 429 and 5xx with
exponential backoff, honouring ``Retry-After``. A request that still fails, or is rejected (other
4xx), is recorded and makes ``flush()`` raise, so the runtime does not commit the source past it.
"""

from __future__ import annotations

import json
import logging
import os
import string
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from streamlab._secrets import MASK, env_name, is_reference, redact_url, resolve, secret_reference
from streamlab.clock import Clock
from streamlab.io import Sink, SinkWriter, default_clock
from streamlab.serde import rows_to_json

__all__ = [
    "PAGERDUTY_EVENTS_URL",
    "AlertDeliveryError",
    "AlertWriter",
    "PagerDutySink",
    "WebhookSink",
]

log = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_SEVERITIES = ("critical", "error", "warning", "info")
_ACTIONS = ("trigger", "acknowledge", "resolve")
_MINUTE_NS = 60_000_000_000


class AlertDeliveryError(RuntimeError):
    """Some alerts could not be delivered; the runtime must not commit the source position.

    Examples
    --------
    >>> issubclass(AlertDeliveryError, RuntimeError)
    True
    """


def _check_url(owner: str, url: str) -> str:
    if is_reference(url):  # "${WEBHOOK_URL}": resolved from the environment when sending
        return url
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{owner}(url={url!r}): expected an http:// or https:// URL")
    return url


def _check_template(owner: str, what: str, template: str) -> str:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(
            f"{owner}({what}={template!r}): {exc}; write literal braces as '{{{{' and '}}}}'"
        ) from exc
    if any(not f for f in fields):
        raise ValueError(
            f"{owner}({what}={template!r}): name the column in every placeholder, e.g. '{{user_id}}'"
        )
    return template


class _Fields(dict):  # type: ignore[type-arg]
    """Row values for ``str.format_map`` with an error that names the missing column."""

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"template needs column {key!r}; the alert rows have {sorted(self)}")


def _render(template: str, row: Mapping[str, Any]) -> str:
    return template.format_map(_Fields(row))


def _render_any(template: Any, row: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        return _render(template, row)
    if isinstance(template, Mapping):
        return {k: _render_any(v, row) for k, v in template.items()}
    if isinstance(template, list):
        return [_render_any(v, row) for v in template]
    return template


def _retry_after_seconds(value: str | None, now_ns: int) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now_ns / 1e9, 0.0)


@dataclass(frozen=True)
class _Delivery:
    """How requests are sent: shared by both sinks."""

    rate_limit_per_minute: int | None = None
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 10.0


class AlertWriter(SinkWriter):
    """Sends one JSON request per alert row (created by the sinks' ``open``).

    Attributes
    ----------
    sent
        Requests answered with 2xx.
    retries
        Requests repeated after a retryable answer.
    failures
        Descriptions of alerts that could not be delivered (first 100).
    history
        ``(clock time ns, HTTP status or 0 for a connection error)`` of the last 1000 requests.

    Examples
    --------
    >>> from streamlab.clock import ManualClock
    >>> writer = WebhookSink("http://127.0.0.1:9/hook").open(ManualClock(0))
    >>> writer.write_batch(pd.DataFrame({"user_id": []}))  # no rows, no requests
    >>> writer.flush()
    >>> writer.sent, writer.failures
    (0, [])
    """

    def __init__(self, sink: PagerDutySink | WebhookSink, clock: Clock | None) -> None:
        self.sink = sink
        self.clock = default_clock(clock)
        self.sent = 0
        self.retries = 0
        self.failures: list[str] = []
        self._failed_total = 0
        self.history: deque[tuple[int, int]] = deque(maxlen=1000)
        self._window: deque[int] = deque()

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Send every row of ``batch`` (waiting for rate-limit slots and retries as needed)."""
        if len(batch) == 0:
            return
        rows = [json.loads(line) for line in rows_to_json(batch)]
        for row in rows:
            try:
                body = self.sink.request_body(row)
            except (KeyError, ValueError) as exc:
                self._fail(f"row {row!r}: {exc.args[0] if exc.args else exc}")
                continue
            self._send(body)

    # -- HTTP ------------------------------------------------------------------------------------------
    def _wait_for_slot(self) -> None:
        limit = self.sink.delivery.rate_limit_per_minute
        if limit is None:
            return
        now = self.clock.now_ns()
        while self._window and self._window[0] <= now - _MINUTE_NS:
            self._window.popleft()
        if len(self._window) >= limit:
            wait_ns = self._window[0] + _MINUTE_NS - now
            self.clock.sleep(wait_ns / 1e9)
            now = self.clock.now_ns()
            while self._window and self._window[0] <= now - _MINUTE_NS:
                self._window.popleft()
        self._window.append(self.clock.now_ns())

    def _post(self, body: bytes) -> tuple[int, str, str | None]:
        headers = {"Content-Type": "application/json", "User-Agent": "streamlab", **self.sink.http_headers()}
        url = resolve(self.sink.url, f"{type(self.sink).__name__} url")
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.sink.delivery.timeout) as resp:
                return int(resp.status), resp.read(2000).decode("utf-8", "replace"), None
        except urllib.error.HTTPError as exc:
            text = exc.read(2000).decode("utf-8", "replace") if exc.fp is not None else ""
            return int(exc.code), text, exc.headers.get("Retry-After") if exc.headers else None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return 0, f"connection failed: {reason}", None

    def _send(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        delivery = self.sink.delivery
        attempt = 0
        while True:
            self._wait_for_slot()
            status, text, retry_after = self._post(body)
            self.history.append((self.clock.now_ns(), status))
            if 200 <= status < 300:
                self.sent += 1
                return
            retryable = status == 0 or status == 429 or status >= 500
            if not retryable or attempt >= delivery.max_retries:
                what = "rejected" if not retryable else f"failed after {attempt + 1} attempts"
                self._fail(f"{what}: HTTP {status or '-'} {text[:300]}")
                return
            wait = _retry_after_seconds(retry_after, self.clock.now_ns())
            if wait is None:
                wait = min(delivery.backoff * 2**attempt, delivery.max_backoff)
            elif wait > delivery.max_backoff:
                # Retrying earlier than asked would be ignored or punished; blocking the pipeline for
                # longer than max_backoff is worse. Report it instead.
                self._fail(
                    f"HTTP {status}: server asked to retry after {wait:g}s (> {delivery.max_backoff:g}s)"
                )
                return
            log.info("%r: HTTP %s, retrying in %.1fs", self.sink, status or "connection error", wait)
            self.clock.sleep(wait)
            attempt += 1
            self.retries += 1

    def _fail(self, message: str) -> None:
        self._failed_total += 1
        if len(self.failures) < 100:
            self.failures.append(message)
        log.warning("%r: %s", self.sink, message)

    def flush(self) -> None:
        """Raise :class:`AlertDeliveryError` if any alert could not be delivered (stays failed)."""
        if self._failed_total:
            raise AlertDeliveryError(
                f"{self.sink!r}: {self._failed_total} alert(s) not delivered, e.g. {self.failures[:3]}"
            )

    def close(self) -> None:
        """Report undelivered alerts (requests are sent synchronously, nothing is buffered)."""
        self.flush()

    def __repr__(self) -> str:
        return f"AlertWriter({self.sink!r}, sent={self.sent}, failed={self._failed_total})"


def _delivery(owner: str, rate_limit_per_minute: int | None, max_retries: int, timeout: float) -> _Delivery:
    if rate_limit_per_minute is not None and (
        not isinstance(rate_limit_per_minute, int) or rate_limit_per_minute < 1
    ):
        raise ValueError(
            f"{owner}(rate_limit_per_minute={rate_limit_per_minute!r}): a positive number of requests, or None"
        )
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"{owner}(max_retries={max_retries!r}): must be 0 or more")
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"{owner}(timeout={timeout!r}): seconds, greater than 0")
    return _Delivery(
        rate_limit_per_minute=rate_limit_per_minute, max_retries=max_retries, timeout=float(timeout)
    )


@dataclass(frozen=True, repr=False)
class PagerDutySink(Sink):
    """Trigger (and resolve) PagerDuty incidents from alert rows, through the Events API v2.

    Each row becomes one event: ``{"routing_key", "event_action", "dedup_key", "payload": {"summary",
    "source", "severity", "timestamp", "custom_details"}}``; custom details carry the whole row.
    A row whose ``action_column`` says ``"resolve"`` (or ``"acknowledge"``) sends that action for its
    dedup key instead. Unknown severities are sent as ``"error"`` (the original value is kept in
    ``custom_details``); rows with an unknown action are not sent and count as failures.

    Parameters
    ----------
    routing_key
        The integration key of a PagerDuty service, or a reference ``"${PD_KEY}"`` to an environment
        variable resolved when sending. Kept out of ``repr``; ``spec`` writes only a reference
        (``${PAGERDUTY_ROUTING_KEY}`` when a value was given).
    routing_key_env
        Instead: the name of an environment variable holding it (kept in ``spec``).
    url
        Events API endpoint.
    dedup_key
        Template such as ``"{detector}:{user_id}"``; rows with the same key update one incident.
        None lets PagerDuty create a new incident per trigger (and makes resolve impossible).
    summary
        Template for the one-line summary (max 1024 characters); default: the row's ``summary``
        column if there is one, else the row as compact JSON.
    source
        Template for the affected system.
    severity
        ``"critical"``, ``"error"``, ``"warning"``, ``"info"``, or a template like ``"{severity}"``.
    action_column
        Column that may hold ``trigger`` / ``acknowledge`` / ``resolve``; missing column = trigger.
    timestamp_column
        Column with the alert's time (ISO-8601 in the event); missing column = none sent.
    rate_limit_per_minute
        Requests per rolling minute (PagerDuty throttles an integration key at about 120).
    max_retries
        Retries on connection errors, 429 and 5xx.
    timeout
        Seconds per HTTP request.

    Examples
    --------
    >>> sink = PagerDutySink("R0UTINGKEY", dedup_key="{detector}:{user_id}", severity="{severity}")
    >>> row = {"detector": "hst", "user_id": "u1", "severity": "critical", "score": 0.97,
    ...        "timestamp": "2024-01-01T00:00:00.000000Z"}
    >>> event = sink.request_body(row)
    >>> event["event_action"], event["dedup_key"], event["payload"]["severity"]
    ('trigger', 'hst:u1', 'critical')
    >>> sink.request_body({**row, "action": "resolve"})
    {'routing_key': 'R0UTINGKEY', 'event_action': 'resolve', 'dedup_key': 'hst:u1'}
    >>> "R0UTINGKEY" in repr(sink)
    False
    """

    routing_key: str = field(repr=False)
    url: str = PAGERDUTY_EVENTS_URL
    dedup_key: str | None = None
    summary: str | None = None
    source: str = "streamlab"
    severity: str = "error"
    action_column: str = "action"
    timestamp_column: str = "timestamp"
    delivery: _Delivery = field(default_factory=_Delivery)

    def __init__(
        self,
        routing_key: str | None = None,
        *,
        routing_key_env: str | None = None,
        url: str = PAGERDUTY_EVENTS_URL,
        dedup_key: str | None = None,
        summary: str | None = None,
        source: str = "streamlab",
        severity: str = "error",
        action_column: str = "action",
        timestamp_column: str = "timestamp",
        rate_limit_per_minute: int | None = 120,
        max_retries: int = 5,
        timeout: float = 10.0,
    ) -> None:
        owner = "PagerDutySink"
        if routing_key is not None and routing_key_env is not None:
            raise ValueError(f"{owner}: pass routing_key or routing_key_env, not both")
        if routing_key_env is not None:
            routing_key = os.environ.get(routing_key_env)
            if not routing_key:
                raise ValueError(
                    f"{owner}(routing_key_env={routing_key_env!r}): that environment variable is not set; "
                    "export the Integration Key of an 'Events API v2' integration"
                )
        if not isinstance(routing_key, str) or not routing_key.strip():
            raise ValueError(
                f"{owner}: routing_key is empty; use the Integration Key of an 'Events API v2' integration"
            )
        _check_url(owner, url)
        for what, tpl in (
            ("dedup_key", dedup_key),
            ("summary", summary),
            ("source", source),
            ("severity", severity),
        ):
            if tpl is not None:
                _check_template(owner, what, tpl)
        if "{" not in severity and severity not in _SEVERITIES:
            raise ValueError(
                f"{owner}(severity={severity!r}): use one of {', '.join(_SEVERITIES)} or a column template "
                "like '{severity}'"
            )
        set_ = object.__setattr__
        set_(self, "routing_key", routing_key.strip())
        set_(self, "url", url)
        set_(self, "dedup_key", dedup_key)
        set_(self, "summary", summary)
        set_(self, "source", source)
        set_(self, "severity", severity)
        set_(self, "action_column", action_column)
        set_(self, "timestamp_column", timestamp_column)
        set_(self, "delivery", _delivery(owner, rate_limit_per_minute, max_retries, timeout))
        set_(self, "_routing_key_env", routing_key_env)

    def http_headers(self) -> dict[str, str]:
        """Extra HTTP headers (none for PagerDuty)."""
        return {}

    def request_body(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The Events API v2 event for one alert row (JSON-ready values)."""
        action = str(row.get(self.action_column) or "trigger").lower()
        if action not in _ACTIONS:
            raise ValueError(f"{self.action_column}={action!r} is not one of {', '.join(_ACTIONS)}")
        key = resolve(self.routing_key, "PagerDutySink routing_key")
        event: dict[str, Any] = {"routing_key": key, "event_action": action}
        if self.dedup_key is not None:
            event["dedup_key"] = _render(self.dedup_key, row)[:255]
        elif action != "trigger":
            raise ValueError(f"cannot {action} without a dedup_key; set PagerDutySink(dedup_key='{{...}}')")
        if action != "trigger":
            return event
        details = dict(row)
        severity = _render(self.severity, row).lower()
        if severity not in _SEVERITIES:
            details["severity_given"] = severity
            severity = "error"
        if self.summary is not None:
            summary = _render(self.summary, row)
        elif row.get("summary"):
            summary = str(row["summary"])
        else:
            summary = "streamlab alert " + json.dumps(row, separators=(",", ":"), default=str)
        payload: dict[str, Any] = {
            "summary": summary[:1024],
            "source": _render(self.source, row)[:255] or "streamlab",
            "severity": severity,
            "custom_details": details,
        }
        ts = row.get(self.timestamp_column)
        if ts:
            payload["timestamp"] = str(ts)
        event["payload"] = payload
        event["client"] = "streamlab"
        return event

    def open(self, clock: Clock | None = None) -> AlertWriter:
        """Start sending; ``clock`` drives rate limiting and retry waits."""
        return AlertWriter(self, clock)

    def spec(self) -> dict[str, Any]:
        """YAML-ready description; the routing key is written as an environment reference, by default
        ``${PAGERDUTY_ROUTING_KEY}`` (set it where the spec runs), never as its value."""
        return {
            "kind": "pagerduty",
            **(
                {"routing_key_env": self.__dict__["_routing_key_env"]}
                if self.__dict__["_routing_key_env"]
                else {"routing_key": secret_reference(self.routing_key, "PAGERDUTY_ROUTING_KEY")}
            ),
            "url": self.url,
            "dedup_key": self.dedup_key,
            "summary": self.summary,
            "source": self.source,
            "severity": self.severity,
            "action_column": self.action_column,
            "timestamp_column": self.timestamp_column,
            "rate_limit_per_minute": self.delivery.rate_limit_per_minute,
            "max_retries": self.delivery.max_retries,
            "timeout": self.delivery.timeout,
        }

    def __repr__(self) -> str:
        return f"PagerDutySink(url={self.url!r}, dedup_key={self.dedup_key!r}, severity={self.severity!r})"


@dataclass(frozen=True, repr=False)
class WebhookSink(Sink):
    """POST each alert row as JSON to a webhook.

    Parameters
    ----------
    url
        Webhook URL (Slack/Teams/Mattermost incoming webhook, or your own endpoint), or a reference
        ``"${SLACK_WEBHOOK_URL}"`` to an environment variable holding it. The URL carries the webhook's
        token, so ``spec()`` writes only a reference (``${WEBHOOK_URL}`` when a value was given) and
        ``repr`` shows only the host.
    template
        None: the row itself as a JSON object. A string: ``{"text": <rendered string>}``, the shape
        Slack-style incoming webhooks take. A mapping: that JSON body, with ``{column}`` placeholders
        filled in every string value.
    headers
        Extra HTTP headers (e.g. an ``Authorization`` token; kept out of ``repr`` and ``spec``).
    rate_limit_per_minute
        Requests per rolling minute of the injected clock; None for no limit.
    max_retries
        Retries on connection errors, 429 and 5xx.
    timeout
        Seconds per HTTP request.

    Examples
    --------
    >>> sink = WebhookSink("https://hooks.example.com/T0/B0", template="{user_id} scored {score}")
    >>> sink.request_body({"user_id": "u1", "score": 0.97})
    {'text': 'u1 scored 0.97'}
    >>> WebhookSink("https://example.com/hook").request_body({"user_id": "u1"})
    {'user_id': 'u1'}
    """

    url: str
    template: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delivery: _Delivery = field(default_factory=_Delivery)

    def __init__(
        self,
        url: str,
        *,
        template: str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        rate_limit_per_minute: int | None = None,
        max_retries: int = 5,
        timeout: float = 10.0,
    ) -> None:
        owner = "WebhookSink"
        _check_url(owner, url)
        if template is not None and not isinstance(template, (str, Mapping)):
            raise ValueError(
                f"{owner}(template=...): a string, a JSON-like mapping, or None (the row as JSON)"
            )
        if isinstance(template, str):
            _check_template(owner, "template", template)
        elif isinstance(template, Mapping):
            _check_nested(owner, template)
        set_ = object.__setattr__
        set_(self, "url", url)
        set_(self, "template", template)
        set_(self, "headers", {str(k): str(v) for k, v in (headers or {}).items()})
        set_(self, "delivery", _delivery(owner, rate_limit_per_minute, max_retries, timeout))

    def http_headers(self) -> dict[str, str]:
        """The configured extra headers (``${NAME}`` references resolved from the environment)."""
        return {k: resolve(v, f"WebhookSink header {k!r}") for k, v in self.headers.items()}

    def request_body(self, row: Mapping[str, Any]) -> Any:
        """The JSON body for one row."""
        if self.template is None:
            return dict(row)
        if isinstance(self.template, str):
            return {"text": _render(self.template, row)}
        return _render_any(self.template, row)

    def open(self, clock: Clock | None = None) -> AlertWriter:
        """Start sending; ``clock`` drives rate limiting and retry waits."""
        return AlertWriter(self, clock)

    def spec(self) -> dict[str, Any]:
        """YAML-ready description without secrets: a webhook URL carries its token, so it is written as
        an environment reference (``${WEBHOOK_URL}`` unless given as one), and so is each header value
        (``${WEBHOOK_HEADER_<NAME>}``); set them where the spec runs."""
        return {
            "kind": "webhook",
            "url": secret_reference(self.url, "WEBHOOK_URL"),
            "template": self.template,
            "headers": {
                k: secret_reference(v, env_name("webhook_header", k)) for k, v in self.headers.items()
            },
            "rate_limit_per_minute": self.delivery.rate_limit_per_minute,
            "max_retries": self.delivery.max_retries,
            "timeout": self.delivery.timeout,
        }

    def __repr__(self) -> str:
        return f"WebhookSink(url={_shown_url(self.url)!r}, rate_limit_per_minute={self.delivery.rate_limit_per_minute!r})"


def _shown_url(url: str) -> str:
    """A webhook URL for display: scheme and host only (the path and query hold its token)."""
    if is_reference(url):
        return url
    parts = urlsplit(redact_url(url))
    return f"{parts.scheme}://{parts.netloc}/{MASK}" if parts.path.strip("/") or parts.query else url


def _check_nested(owner: str, template: Any) -> None:
    if isinstance(template, str):
        _check_template(owner, "template", template)
    elif isinstance(template, Mapping):
        for v in template.values():
            _check_nested(owner, v)
    elif isinstance(template, list):
        for v in template:
            _check_nested(owner, v)
