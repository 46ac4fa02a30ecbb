"""``PagerDutySink``: alert rows as PagerDuty Events API v2 events (dedup keys, severities, actions)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlab._dead_letter import fit_message
from streamlab._secrets import resolve, secret_reference
from streamlab._serde_values import key_value
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, Upstream

from .._params import sink_or_none
from ._templates import check_template, render, templates_problem
from .delivery import AlertWriter, Delivery, check_url, make_delivery

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_SEVERITIES = ("critical", "error", "warning", "info")
_ACTIONS = ("trigger", "acknowledge", "resolve")
EVENT_MAX_BYTES = 512_000
"""PagerDuty's largest event (Events API v2: 512 KB); a larger one is refused with HTTP 400 or 413."""


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
        Template such as ``"{detector}:{user_id}"`` (templates as :class:`WebhookSink`'s: plain columns,
        checked against the stream's at ``.to(...)``, with optional format specs); rows with the same key update one incident.
        A float that is a whole number is its integer there (``7.0`` as ``7``, as in a batch where the
        column is int64: pandas makes an integer column float64 once it meets a missing value), so a
        resolve finds the incident its trigger opened whatever else their batches held.
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
    dead_letter
        Sink receiving, with a ``reject_reason`` column, the alert rows whose content was refused (see
        :class:`WebhookSink`): a row with an unknown action, one that cannot be rendered, one PagerDuty
        answered with HTTP 400, 413 or 422 (except for its routing key: a configuration mistake, which
        fails the run). ``None``: ``flush()`` raises. An event over PagerDuty's 512 KB is sent with its
        ``custom_details`` cut to fit (``raw_truncated``, ``raw_bytes``, ``raw_sha256``).

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
    delivery: Delivery = field(default_factory=Delivery)
    dead_letter: Sink | None = None

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
        dead_letter: Sink | None = None,
    ) -> None:
        owner = "PagerDutySink"
        if routing_key is not None and routing_key_env is not None:
            raise ParameterError(
                owner,
                "routing_key_env",
                "got both routing_key and routing_key_env",
                "pass one of them: routing_key_env: VAR (routing_key_env='VAR' in Python; keeps the key out "
                "of notebooks and YAML) or routing_key",
            )
        if routing_key_env is not None:
            routing_key = os.environ.get(routing_key_env)
            if not routing_key:
                raise ParameterError(
                    owner,
                    "routing_key_env",
                    f"the environment variable {routing_key_env!r} is not set",
                    f"export {routing_key_env}=<the Integration Key of an 'Events API v2' integration> "
                    "before running",
                )
        if not isinstance(routing_key, str) or not routing_key.strip():
            raise ParameterError(
                owner,
                "routing_key",
                "routing_key is empty"
                if routing_key is None or isinstance(routing_key, str)
                else f"expected the Integration Key as text, got {type(routing_key).__name__}",
                "use the Integration Key of an 'Events API v2' integration, or routing_key_env: VAR naming "
                "the environment variable that holds it",
            )
        check_url(owner, url)
        if isinstance(dedup_key, str) and not dedup_key.strip():
            # PagerDuty would take the empty key as none: every trigger a new incident, no resolve
            raise ParameterError(
                owner,
                "dedup_key",
                f"dedup_key is empty ({dedup_key!r}), so no event could update or resolve an incident",
                "write a template of the columns that name an incident, e.g. dedup_key: '{detector}:{user_id}', "
                "or leave it out (None) for a new incident per trigger",
            )
        for what, tpl in (
            ("dedup_key", dedup_key),
            ("summary", summary),
            ("source", source),
            ("severity", severity),
        ):
            if tpl is not None:
                check_template(owner, what, tpl)
        if "{" not in severity and severity not in _SEVERITIES:
            raise ParameterError(
                owner,
                "severity",
                f"expected one of {', '.join(_SEVERITIES)} or a column template, got {severity!r}",
                f"use one of {', '.join(_SEVERITIES)} or a column template like '{{severity}}'",
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
        set_(self, "delivery", make_delivery(owner, rate_limit_per_minute, max_retries, timeout))
        set_(self, "_routing_key_env", routing_key_env)
        set_(self, "dead_letter", sink_or_none(owner, "dead_letter", dead_letter, about="refused alerts"))

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The templates' columns the stream lacks, as ``(problem, fix)``, else None.

        Examples
        --------
        >>> sink = PagerDutySink("R0UTINGKEY", dedup_key="{detector}:{user}")
        >>> sink.columns_problem(["detector", "user_id"], Upstream())[0]
        "PagerDutySink(dedup_key='{detector}:{user}') names column(s) ['user'] that the stream does not have (its columns: ['detector', 'user_id']); the first write would fail"
        """
        templates = {"dedup_key": self.dedup_key, "summary": self.summary, "source": self.source}
        return templates_problem("PagerDutySink", {**templates, "severity": self.severity}, columns)

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
            event["dedup_key"] = render(self.dedup_key, row)[:255]
        elif action != "trigger":
            raise ValueError(f"cannot {action} without a dedup_key; set PagerDutySink(dedup_key='{{...}}')")
        if action != "trigger":
            return event
        details = dict(row)
        severity = render(self.severity, row).lower()
        if severity not in _SEVERITIES:
            details["severity_given"] = severity
            severity = "error"
        if self.summary is not None:
            summary = render(self.summary, row)
        elif row.get("summary"):
            summary = render("{summary}", row)
        else:  # whole floats as integers, as templates fill them in: one text in every batch
            whole = {k: key_value(v) for k, v in row.items()}
            summary = "streamlab alert " + json.dumps(whole, separators=(",", ":"), default=str)
        payload: dict[str, Any] = {
            "summary": summary[:1024],
            "source": render(self.source, row)[:255] or "streamlab",
            "severity": severity,
            "custom_details": details,
        }
        ts = row.get(self.timestamp_column)
        if ts:
            payload["timestamp"] = str(ts)
        event["payload"] = payload
        event["client"] = "streamlab"
        return _fitted(event)

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
            "dead_letter": None if self.dead_letter is None else self.dead_letter.spec(),
        }

    def __repr__(self) -> str:
        return f"PagerDutySink(url={self.url!r}, dedup_key={self.dedup_key!r}, severity={self.severity!r})"


def _dumped(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)  # as the writer sends it


def _fitted(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with its ``custom_details`` cut (``fit_message``) when it is over :data:`EVENT_MAX_BYTES`
    (a row holding a huge text would be refused on every retry).

    Examples
    --------
    >>> event = _fitted({"payload": {"summary": "s", "custom_details": {"note": "x" * 600_000}}})
    >>> details = event["payload"]["custom_details"]
    >>> len(_dumped(event)) <= EVENT_MAX_BYTES, details["raw_truncated"], details["raw_bytes"]
    (True, True, 600011)
    """
    if len(_dumped(event).encode("utf-8")) <= EVENT_MAX_BYTES:
        return event
    details = event["payload"]["custom_details"]
    rest = len(_dumped({**event, "payload": {**event["payload"], "custom_details": None}}).encode("utf-8"))
    text, _ = fit_message(details, max(EVENT_MAX_BYTES - rest, 1024), _dumped)
    cut = {k: v for k, v in json.loads(text).items() if k in details or k.startswith("raw")}
    return {**event, "payload": {**event["payload"], "custom_details": cut}}
