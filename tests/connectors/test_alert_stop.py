"""A stop of a run whose alert sink waits (retrying an endpoint that does not answer, or for a
rate-limit slot) returns within the request timeout: before, ``handle.stop()`` waited out every retry
and backoff (91 s with the defaults, over stop's own 60 s) or a minute per slot, and raised
``TimeoutError`` while the run went on. The alerts not sent fail the run; its sources are not committed
past them, so a restart sends them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pandas as pd
import pytest
from streamlab.connectors.alerts import AlertDeliveryError, WebhookSink

from streamlab import Pipeline, ReplaySource
from streamlab.errors import SinkFailedError
from streamlab.testing import wait_for

from .test_alerts import RecordingServer


def _pipeline(sink: WebhookSink, n: int = 50) -> Pipeline:
    times = pd.date_range("2024-01-01", periods=n, freq="s", tz="UTC")
    frame = pd.DataFrame({"timestamp": times, "user_id": [f"u{i}" for i in range(n)]})
    p = Pipeline(ReplaySource(frame, speed=None, batch_size=10), name="alerts")
    p.stream.to(sink, step_id="alerts")
    return p


@pytest.fixture
def unanswering() -> Iterator[socket.socket]:
    """A listening socket that takes connections and never answers (a frozen endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        s.settimeout(20)
        yield s


def test_a_stop_while_an_alert_waits_to_retry_a_frozen_endpoint_returns_within_the_timeout(
    unanswering: socket.socket,
) -> None:
    port = unanswering.getsockname()[1]
    handle = _pipeline(WebhookSink(f"http://127.0.0.1:{port}/hook", timeout=1)).start()
    conn, _ = unanswering.accept()  # the first alert's request is under way
    with conn:
        started = time.monotonic()
        result = handle.stop(timeout=10)  # (6 attempts and 31 s of backoff before)
        took = time.monotonic() - started
    assert took < 5, took  # the request under way times out (1 s), then no retry
    assert result.status == "failed"
    error = handle.error
    assert isinstance(error, SinkFailedError) and isinstance(error.__cause__, AlertDeliveryError)
    assert "the run was stopped" in str(error), error


def test_a_stop_while_an_alert_waits_for_a_rate_limit_slot_returns_at_once() -> None:
    with RecordingServer() as server:
        sink = WebhookSink(server.url, rate_limit_per_minute=1, timeout=5)
        handle = _pipeline(sink).start()
        wait_for(lambda: len(server.recorder.requests) == 1, timeout=20, what="the first alert")
        started = time.monotonic()
        result = handle.stop(timeout=10)  # (the next slot is a minute away)
        took = time.monotonic() - started
    assert took < 5, took
    assert result.status == "failed" and "rate-limit slot" in str(handle.error)
    assert len(server.recorder.requests) == 1


def test_a_stop_while_alerts_are_delivered_is_a_clean_stop() -> None:
    """Nothing waits: every alert taken is sent, and the stop is a stop, not a failure."""
    with RecordingServer() as server:
        times = pd.date_range("2024-01-01", periods=400, freq="s", tz="UTC")
        frame = pd.DataFrame({"timestamp": times, "user_id": [f"u{i}" for i in range(400)]})
        p = Pipeline(ReplaySource(frame, speed=100.0, batch_size=5), name="alerts")  # about 4 s
        p.stream.to(WebhookSink(server.url, timeout=5), step_id="alerts")
        handle = p.start()
        wait_for(lambda: len(server.recorder.requests) >= 10, timeout=20, what="some alerts")
        result = handle.stop(timeout=10)
    assert result.status == "stopped", handle.error
    assert result.metrics["events_in"] == len(server.recorder.requests) < 400
