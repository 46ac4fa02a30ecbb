"""Delivering alerts over HTTP: a rolling-minute rate limit on the injected clock, retries with backoff
(honouring ``Retry-After``), and an error from ``flush()`` for what could not be delivered.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd

from streamlab._secrets import MASK, is_reference, redact_url, resolve
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import SinkWriter, default_clock, publish_now
from streamlab.serde import rows_to_json

from .._params import positive_seconds, whole_number
from ._templates import Instant

if TYPE_CHECKING:  # the sinks build this writer; it only reads their settings
    from .pagerduty import PagerDutySink
    from .webhook import WebhookSink

log = logging.getLogger("streamlab.connectors.alerts")

_MINUTE_NS = 60_000_000_000


class AlertDeliveryError(RuntimeError):
    """Some alerts could not be delivered; the runtime must not commit the source position.

    Examples
    --------
    >>> issubclass(AlertDeliveryError, RuntimeError)
    True
    """


def check_url(owner: str, url: str) -> str:
    if is_reference(url):  # "${WEBHOOK_URL}": resolved from the environment when sending
        return url
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ParameterError(
            owner,
            "url",
            f"expected an http:// or https:// URL, got {redact_url(url) if isinstance(url, str) else url!r}",
            "write the endpoint's URL such as 'https://hooks.example.com/alerts', or a reference "
            "'${WEBHOOK_URL}' read from the environment when sending",
        )
    return url


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
class Delivery:
    """How requests are sent: shared by both sinks.

    Checked when it is made, as the sinks check their parameters: a ``backoff`` above ``max_backoff``
    was accepted and every retry then waited ``max_backoff`` (the backoff never grew from ``backoff``).

    Examples
    --------
    >>> Delivery(backoff=0.5, max_backoff=30).max_backoff
    30.0
    >>> Delivery(backoff=120, max_backoff=60)
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: Delivery(backoff=...): 120 seconds is longer than max_backoff (60 seconds), so every retry would wait max_backoff. Fix: make backoff at most max_backoff, e.g. Delivery(backoff=1, max_backoff=60)
    """

    rate_limit_per_minute: int | None = None
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_counts(owner, self.rate_limit_per_minute, self.max_retries)
        for parameter, value, example in (
            ("backoff", self.backoff, 1),
            ("max_backoff", self.max_backoff, 60),
            ("timeout", self.timeout, 10),
        ):
            object.__setattr__(self, parameter, positive_seconds(owner, parameter, value, example))
        if self.backoff > self.max_backoff:
            raise ParameterError(
                owner,
                "backoff",
                f"{self.backoff:g} seconds is longer than max_backoff ({self.max_backoff:g} seconds), so every "
                "retry would wait max_backoff",
                "make backoff at most max_backoff, e.g. Delivery(backoff=1, max_backoff=60)",
            )


def _check_counts(owner: str, rate_limit_per_minute: Any, max_retries: Any) -> None:
    if rate_limit_per_minute is not None and not whole_number(rate_limit_per_minute, 1):
        raise ParameterError(
            owner,
            "rate_limit_per_minute",
            f"expected a positive number of requests, or None, got {rate_limit_per_minute!r}",
            "write a whole number such as rate_limit_per_minute: 60 (rate_limit_per_minute=60 in Python), "
            "or leave it out (None) for no limit",
        )
    if not whole_number(max_retries, 0):
        raise ParameterError(
            owner,
            "max_retries",
            f"expected a whole number, 0 or more, got {max_retries!r}",
            "write e.g. max_retries: 3 (max_retries=3 in Python), or 0 to send each alert once",
        )


class AlertWriter(SinkWriter):
    """Sends one JSON request per alert row (created by the sinks' ``open``).

    Once an alert used up its retries on connection errors, 5xx or 429 answers, the endpoint is taken
    for down: later alerts are not sent but count as failed (``flush`` raises; a restart from the last
    commit sends them again), so a batch waits out the retries once, not once per alert.

    Attributes
    ----------
    sent
        Requests answered with 2xx.
    retries
        Requests repeated after a retryable answer.
    failures
        Descriptions of alerts that could not be delivered (first 100).
    refused
        Alerts refused for their content (see :func:`refused_content`): in the dead-letter sink when
        there is one, else among the failures.
    history
        ``(clock time ns, HTTP status or 0 for a connection error)`` of the last 1000 requests.

    Examples
    --------
    >>> from streamlab.clock import ManualClock
    >>> from streamlab.connectors.alerts import WebhookSink
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
        # Why the endpoint is taken for down: an alert used up its retries on connection errors, 5xx or
        # 429. Later alerts are not sent (each would wait out the same retries: a batch of n alerts would
        # block the run n times that long); they count as failed, and a restart sends them again.
        self._down: str | None = None
        self._stopped = threading.Event()  # the run is stopping: no more waiting (interrupt())
        self.history: deque[tuple[int, int]] = deque(maxlen=1000)
        self._window: deque[int] = deque()
        # rows whose content was refused (see refused_content), for the dead-letter sink at flush()
        self._dead_letter = sink.dead_letter.open(clock) if sink.dead_letter is not None else None
        self._refused: list[pd.DataFrame] = []
        self.refused = 0
        self._content_failed = False  # a refused alert failed for want of a dead letter: say so at flush()

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Send every row of ``batch`` (waiting for rate-limit slots and retries as needed)."""
        if len(batch) == 0:
            return
        rows = [json.loads(line) for line in rows_to_json(batch)]
        # timestamps are ISO text in the row (and the JSON body); a template's format spec formats the time
        times = [str(c) for c in batch.columns if pd.api.types.is_datetime64_any_dtype(batch[c].dtype)]
        for i, row in enumerate(rows):
            if self._down is not None:
                self._skip(len(rows) - i)
                return
            for c in times:
                if row[c] is not None:
                    row[c] = Instant(row[c])
            try:
                body = self.sink.request_body(row)
            except (KeyError, ValueError, TypeError) as exc:  # a row that cannot be rendered: refused
                refused: str | None = str(exc.args[0] if exc.args else exc)
                if self._dead_letter is None:
                    refused = f"row {row!r}: {refused}"
            else:
                refused = self._send(body)
            if refused is not None:
                self.refused += 1
                if self._dead_letter is not None:
                    self._refused.append(batch.iloc[[i]].assign(**{REASON_COLUMN: refused}))
                else:
                    self._content_failed = True
                    self._fail(refused)

    # -- HTTP ------------------------------------------------------------------------------------------
    def _wait_for_slot(self) -> bool:
        """Wait for a rate-limit slot and take it; False when the run stopped while it waited."""
        limit = self.sink.delivery.rate_limit_per_minute
        if limit is None:
            return True
        now = self.clock.now_ns()
        while self._window and self._window[0] <= now - _MINUTE_NS:
            self._window.popleft()
        if len(self._window) >= limit:
            wait_ns = self._window[0] + _MINUTE_NS - now
            self.clock.sleep(wait_ns / 1e9, self._stopped)
            if self._stopped.is_set():
                return False
            now = self.clock.now_ns()
            while self._window and self._window[0] <= now - _MINUTE_NS:
                self._window.popleft()
        self._window.append(self.clock.now_ns())
        return True

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

    def _send(self, payload: Mapping[str, Any]) -> str | None:
        """Send one alert; the reason when the endpoint refused its content (:func:`refused_content`),
        else None (sent, or failed and recorded)."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        delivery = self.sink.delivery
        attempt = 0
        while True:
            if not self._wait_for_slot():
                self._stopping("not sent: the run was stopped while it waited for a rate-limit slot")
                return None
            status, text, retry_after = self._post(body)
            self.history.append((self.clock.now_ns(), status))
            if 200 <= status < 300:
                self.sent += 1
                return None
            retryable = status == 0 or status == 429 or status >= 500
            if not retryable and refused_content(status, text):
                return f"rejected: HTTP {status} {text[:300]}"
            if not retryable or attempt >= delivery.max_retries:
                what = "rejected" if not retryable else f"failed after {attempt + 1} attempts"
                self._fail(f"{what}: HTTP {status or '-'} {text[:300]}")
                if retryable:
                    self._down = f"an earlier one used up its retries (HTTP {status or '-'} {text[:100]})"
                return None
            wait = _retry_after_seconds(retry_after, self.clock.now_ns())
            if wait is None:
                wait = min(delivery.backoff * 2**attempt, delivery.max_backoff)
            elif wait > delivery.max_backoff:
                # Retrying earlier than asked would be ignored or punished; blocking the pipeline for
                # longer than max_backoff is worse. Report it instead.
                self._fail(
                    f"HTTP {status}: server asked to retry after {wait:g}s (> {delivery.max_backoff:g}s)"
                )
                return None
            log.info("%r: HTTP %s, retrying in %.1fs", self.sink, status or "connection error", wait)
            self.clock.sleep(wait, self._stopped)
            if self._stopped.is_set():
                self._stopping(
                    f"not retried after {attempt + 1} attempt(s): HTTP {status or '-'} {text[:300]}"
                )
                return None
            attempt += 1
            self.retries += 1

    def _stopping(self, message: str) -> None:
        """The run stopped while an alert waited: it fails, and the alerts after it are not sent."""
        self._fail(message)
        self._down = "the run was stopped while an earlier one waited"

    def _fail(self, message: str) -> None:
        self._failed_total += 1
        if len(self.failures) < 100:
            self.failures.append(message)
        log.warning("%r: %s", self.sink, message)

    def _skip(self, n: int) -> None:
        """``n`` alerts not sent because the endpoint is down: failed, said once (not once each)."""
        self._failed_total += n
        if len(self.failures) < 100:
            self.failures.append(f"{n} alert(s) not sent: {self._down}")
        log.warning(
            "%r: %d alert(s) not sent: %s; the run fails at its next flush and a restart sends them again",
            self.sink,
            n,
            self._down,
        )

    def flush(self) -> None:
        """Hand the refused alerts to the dead-letter sink; raise :class:`AlertDeliveryError` if any alert
        could not be delivered (stays failed)."""
        if self._refused and self._dead_letter is not None:
            refused = pd.concat(self._refused, ignore_index=True)
            self._refused = []
            publish_now(self._dead_letter, refused)
        if self._failed_total:
            hint = (
                "; pass dead_letter= to keep alerts whose content is refused as data instead of failing"
                if self._content_failed
                else ""
            )
            raise AlertDeliveryError(
                f"{self.sink!r}: {self._failed_total} alert(s) not delivered, e.g. {self.failures[:3]}{hint}"
            )

    def close(self) -> None:
        """Report undelivered alerts (requests are sent synchronously; refused ones go to the dead-letter
        sink, which is closed)."""
        try:
            self.flush()
        finally:
            if self._dead_letter is not None:
                self._dead_letter.close()

    def interrupt(self) -> None:
        """The run is stopping: stop waiting for retries and rate-limit slots; the alerts not sent fail
        (the run is not committed past them, and a restart sends them). A request under way ends
        within ``timeout``."""
        self._stopped.set()

    def __repr__(self) -> str:
        return f"AlertWriter({self.sink!r}, sent={self.sent}, failed={self._failed_total})"


REASON_COLUMN = "reject_reason"
"""The column a dead-letter sink gets with the reason an alert was refused."""
_CONTENT_STATUSES = (400, 413, 422)


def refused_content(status: int, text: str) -> bool:
    """Whether an answer refuses the alert's content (it would be refused again on every retry and
    restart): HTTP 400, 413 or 422, unless it blames the routing key (PagerDuty's 400 for a wrong key,
    a configuration mistake that every alert shares).

    Examples
    --------
    >>> refused_content(413, "Payload Too Large"), refused_content(401, "unauthorized")
    (True, False)
    >>> refused_content(400, '{"errors":["routing_key is invalid"]}')
    False
    """
    return status in _CONTENT_STATUSES and "routing_key" not in text and "routing key" not in text


def make_delivery(
    owner: str, rate_limit_per_minute: int | None, max_retries: int, timeout: float
) -> Delivery:
    # checked here first so that a mistake names the sink, not the Delivery it builds
    _check_counts(owner, rate_limit_per_minute, max_retries)
    return Delivery(
        rate_limit_per_minute=rate_limit_per_minute,
        max_retries=max_retries,
        timeout=positive_seconds(owner, "timeout", timeout, 10),
    )


def shown_url(url: str) -> str:
    """A webhook URL for display: scheme and host only (the path and query hold its token)."""
    if is_reference(url):
        return url
    parts = urlsplit(redact_url(url))
    return f"{parts.scheme}://{parts.netloc}/{MASK}" if parts.path.strip("/") or parts.query else url
