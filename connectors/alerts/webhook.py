"""``WebhookSink``: alert rows POSTed as JSON to a webhook (Slack, Teams, your own service)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlab._secrets import env_name, resolve, secret_reference
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, Upstream

from .._params import sink_or_none
from ._templates import check_nested, check_template, render, render_any, templates_problem
from .delivery import AlertWriter, Delivery, check_url, make_delivery, shown_url


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
        filled in every string value. A placeholder is a column, optionally with a conversion and a
        format spec (``{score:.2f}``; a missing value is ``None`` whatever the spec); a timestamp column
        is ISO-8601 UTC text (``2024-01-01T08:30:00.000000Z``) as in the JSON body, or formatted by
        ``strftime`` codes (``{timestamp:%H:%M}``). Attribute and index access (``{user_id.upper}``)
        is refused: compute such values in a step. Columns are checked against the stream's at
        ``.to(...)``; a row that cannot be rendered (a spec its value does not take) is a failed alert
        with the reason, like an undelivered one.
    headers
        Extra HTTP headers (e.g. an ``Authorization`` token; kept out of ``repr`` and ``spec``).
    rate_limit_per_minute
        Requests per rolling minute of the injected clock; None for no limit.
    max_retries
        Retries on connection errors, 429 and 5xx.
    timeout
        Seconds per HTTP request.
    dead_letter
        Sink receiving, with a ``reject_reason`` column, the alert rows whose content was refused: a
        row that cannot be rendered, or one the endpoint answered with HTTP 400, 413 or 422 (a body too
        large or not the shape it takes). Such an alert fails again on every retry and restart, so
        without a dead letter the run stops until the row is mended; ``None``: ``flush()`` raises, as
        for undelivered alerts (the source is not committed past them).

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
    delivery: Delivery = field(default_factory=Delivery)
    dead_letter: Sink | None = None

    def __init__(
        self,
        url: str,
        *,
        template: str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        rate_limit_per_minute: int | None = None,
        max_retries: int = 5,
        timeout: float = 10.0,
        dead_letter: Sink | None = None,
    ) -> None:
        owner = "WebhookSink"
        check_url(owner, url)
        if template is not None and not isinstance(template, (str, Mapping)):
            raise ParameterError(
                owner,
                "template",
                f"expected a text, a JSON-like mapping, or None, got {type(template).__name__} {template!r}",
                "write a text template such as '{user_id} scored {score}', a mapping of templates, or leave "
                "it out (None) to send the row as JSON",
            )
        if isinstance(template, str):
            check_template(owner, "template", template)
        elif isinstance(template, Mapping):
            check_nested(owner, template)
        set_ = object.__setattr__
        set_(self, "url", url)
        set_(self, "template", template)
        set_(self, "headers", {str(k): str(v) for k, v in (headers or {}).items()})
        set_(self, "delivery", make_delivery(owner, rate_limit_per_minute, max_retries, timeout))
        set_(self, "dead_letter", sink_or_none(owner, "dead_letter", dead_letter, about="refused alerts"))

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The template's columns the stream lacks, as ``(problem, fix)``, else None.

        Examples
        --------
        >>> sink = WebhookSink("https://example.com/hook", template="{user} scored {score:.2f}")
        >>> sink.columns_problem(["user_id", "score"], Upstream())[1]
        "did you mean ['user_id']? use {column} placeholders naming columns of the stream"
        """
        return templates_problem("WebhookSink", {"template": self.template}, columns)

    def http_headers(self) -> dict[str, str]:
        """The configured extra headers (``${NAME}`` references resolved from the environment)."""
        return {k: resolve(v, f"WebhookSink header {k!r}") for k, v in self.headers.items()}

    def request_body(self, row: Mapping[str, Any]) -> Any:
        """The JSON body for one row."""
        if self.template is None:
            return dict(row)
        if isinstance(self.template, str):
            return {"text": render(self.template, row)}
        return render_any(self.template, row)

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
            "dead_letter": None if self.dead_letter is None else self.dead_letter.spec(),
        }

    def __repr__(self) -> str:
        return f"WebhookSink(url={shown_url(self.url)!r}, rate_limit_per_minute={self.delivery.rate_limit_per_minute!r})"
