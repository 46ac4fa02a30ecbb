"""PagerDutySink / WebhookSink against a real HTTP server on 127.0.0.1 that records every request.

Time is a ManualClock: rate-limit and retry waits advance it instead of sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from streamlab.connectors.alerts import AlertDeliveryError, PagerDutySink, WebhookSink

from streamlab.clock import ManualClock
from streamlab.errors import ParameterError
from streamlab.testing import find_free_port

T0 = "2024-01-01T00:00:00Z"


class Recorder:
    """Requests received, and scripted answers ``(status, headers, body)`` used in order (then 202)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []
        self.script: list[tuple[int, dict[str, str], str]] = []
        self.lock = threading.Lock()


class RecordingServer:
    def __init__(self) -> None:
        self.recorder = Recorder()
        recorder = self.recorder

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with recorder.lock:
                    recorder.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "json": json.loads(body),
                            "size": len(body),
                        }
                    )
                    status, headers, text = (
                        recorder.script.pop(0)
                        if recorder.script
                        else (202, {}, '{"status":"success","message":"Event processed"}')
                    )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                data = text.encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v2/enqueue"

    def __enter__(self) -> RecordingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as s:
        yield s
    assert not s.thread.is_alive()


def alerts(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "detector": ["hst"] * n,
            "user_id": [f"u{i}" for i in range(n)],
            "score": [0.9 + i / 100 for i in range(n)],
            "severity": ["critical", "warning", "bogus"][:n] + ["info"] * max(n - 3, 0),
            "timestamp": pd.date_range(T0, periods=n, freq="s"),
            "properties": [{"page": f"/p{i}"} for i in range(n)],
        }
    )


def test_pagerduty_payload_shape(server: RecordingServer) -> None:
    sink = PagerDutySink(
        "0123456789abcdef0123456789abcdef",
        url=server.url,
        dedup_key="{detector}:{user_id}",
        summary="Anomaly for {user_id}: score {score}",
        source="streamlab/{detector}",
        severity="{severity}",
    )
    writer = sink.open(ManualClock(T0))
    writer.write_batch(alerts(3))
    writer.flush()
    assert writer.sent == 3
    reqs = server.recorder.requests
    assert [r["path"] for r in reqs] == ["/v2/enqueue"] * 3
    assert reqs[0]["headers"]["Content-Type"] == "application/json"  # type: ignore[index]
    first = reqs[0]["json"]
    assert first == {
        "routing_key": "0123456789abcdef0123456789abcdef",
        "event_action": "trigger",
        "dedup_key": "hst:u0",
        "payload": {
            "summary": "Anomaly for u0: score 0.9",
            "source": "streamlab/hst",
            "severity": "critical",
            "timestamp": "2024-01-01T00:00:00.000000Z",
            "custom_details": {
                "detector": "hst",
                "user_id": "u0",
                "score": 0.9,
                "severity": "critical",
                "timestamp": "2024-01-01T00:00:00.000000Z",
                "properties": {"page": "/p0"},
            },
        },
        "client": "streamlab",
    }
    third = reqs[2]["json"]["payload"]  # type: ignore[index]
    assert third["severity"] == "error" and third["custom_details"]["severity_given"] == "bogus"


def test_pagerduty_resolve_rows(server: RecordingServer) -> None:
    sink = PagerDutySink("key", url=server.url, dedup_key="{detector}:{user_id}")
    writer = sink.open(ManualClock(T0))
    rows = alerts(2).assign(action=["trigger", "resolve"])
    writer.write_batch(rows)
    writer.close()
    bodies = [r["json"] for r in server.recorder.requests]
    assert bodies[0]["event_action"] == "trigger"  # type: ignore[index]
    assert bodies[1] == {"routing_key": "key", "event_action": "resolve", "dedup_key": "hst:u1"}


def test_a_resolve_finds_its_trigger_whatever_else_its_batch_holds(server: RecordingServer) -> None:
    # pandas makes an integer column float64 once it meets a missing value: the trigger of the user 7
    # was keyed hst:7 in a batch [7], its resolve hst:7.0 in a batch [7, None], and the incident stayed open
    writer = PagerDutySink("key", url=server.url, dedup_key="{detector}:{user_id}").open(ManualClock(T0))
    writer.write_batch(pd.DataFrame({"detector": ["hst"], "user_id": [7]}))
    writer.write_batch(
        pd.DataFrame({"detector": ["hst"] * 2, "user_id": [7, None], "action": ["resolve", "trigger"]})
    )
    writer.close()
    bodies = [r["json"] for r in server.recorder.requests]
    assert [(b["event_action"], b["dedup_key"]) for b in bodies] == [  # type: ignore[index]
        ("trigger", "hst:7"),
        ("resolve", "hst:7"),
        ("trigger", "hst:None"),  # a missing value, as before
    ]
    assert bodies[2]["payload"]["custom_details"]["user_id"] is None  # type: ignore[index]


def test_a_dedup_key_format_spec_takes_the_integer_or_else_the_float() -> None:
    sink = PagerDutySink("key", dedup_key="{user_id:03d}/{score:.2}/{n!r}")
    # 7.0 as 7: '{user_id:03d}' took 7 and refused 7.0; '.2' takes no integer, so 3.0 keeps its float text
    assert sink.request_body({"user_id": 7.0, "score": 3.0, "n": 2.0})["dedup_key"] == "007/3.0/2"
    assert sink.request_body({"user_id": 7, "score": 3.5, "n": 2})["dedup_key"] == "007/3.5/2"


def test_rate_limit_waits_on_the_injected_clock(server: RecordingServer) -> None:
    clock = ManualClock(T0)
    start = clock.now_ns()
    sink = PagerDutySink("key", url=server.url, rate_limit_per_minute=2)
    writer = sink.open(clock)
    writer.write_batch(alerts(5))
    writer.flush()
    assert len(server.recorder.requests) == 5 and writer.sent == 5
    offsets_s = [(t - start) / 1e9 for t, _ in writer.history]
    assert offsets_s == [0, 0, 60, 60, 120]  # never more than 2 in any rolling minute
    assert clock.now_ns() - start == 120 * 1_000_000_000


def test_retries_on_500_then_succeeds(server: RecordingServer) -> None:
    server.recorder.script = [(500, {}, "oops"), (503, {}, "busy")]
    clock = ManualClock(T0)
    writer = WebhookSink(server.url, max_retries=3).open(clock)
    writer.write_batch(alerts(1))
    writer.flush()
    assert writer.sent == 1 and writer.retries == 2
    assert [s for _, s in writer.history] == [500, 503, 202]
    assert len(server.recorder.requests) == 3
    assert all(r["json"] == server.recorder.requests[0]["json"] for r in server.recorder.requests)
    assert clock.now_ns() - ManualClock(T0).now_ns() == 3 * 1_000_000_000  # backoff 1 s, then 2 s


@pytest.mark.parametrize("retry_after", ["7", "Mon, 01 Jan 2024 00:00:07 GMT"])
def test_429_respects_retry_after(server: RecordingServer, retry_after: str) -> None:
    server.recorder.script = [(429, {"Retry-After": retry_after}, '{"status":"throttled"}')]
    clock = ManualClock(T0)
    writer = PagerDutySink("key", url=server.url).open(clock)
    writer.write_batch(alerts(1))
    writer.flush()
    assert writer.sent == 1 and writer.retries == 1
    assert clock.now_ns() - ManualClock(T0).now_ns() == 7 * 1_000_000_000


def test_retry_after_longer_than_max_backoff_is_reported(server: RecordingServer) -> None:
    server.recorder.script = [(429, {"Retry-After": "3600"}, "slow down")]
    clock = ManualClock(T0)
    writer = WebhookSink(server.url).open(clock)
    writer.write_batch(alerts(1))
    with pytest.raises(AlertDeliveryError, match="retry after 3600s"):
        writer.flush()
    assert clock.now_ns() == ManualClock(T0).now_ns() and len(server.recorder.requests) == 1


def test_rejected_and_exhausted_alerts_make_flush_raise(server: RecordingServer) -> None:
    server.recorder.script = [(400, {}, '{"status":"invalid event","errors":["bad routing key"]}')] + [
        (502, {}, "bad gateway")
    ] * 3
    writer = PagerDutySink("key", url=server.url, max_retries=2).open(ManualClock(T0))
    writer.write_batch(alerts(2))
    with pytest.raises(AlertDeliveryError, match="2 alert"):
        writer.flush()
    assert "rejected: HTTP 400" in writer.failures[0] and "bad routing key" in writer.failures[0]
    assert "failed after 3 attempts: HTTP 502" in writer.failures[1]
    assert len(server.recorder.requests) == 4  # a 400 is not retried
    with pytest.raises(AlertDeliveryError):
        writer.close()  # stays failed


def test_connection_errors_are_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{find_free_port()}/hook"  # nothing listens here
    clock = ManualClock(T0)
    writer = WebhookSink(url, max_retries=2, timeout=2).open(clock)
    writer.write_batch(alerts(1))
    with pytest.raises(AlertDeliveryError, match="connection failed"):
        writer.flush()
    assert [s for _, s in writer.history] == [0, 0, 0]


def test_webhook_templates_and_headers(server: RecordingServer) -> None:
    text = WebhookSink(
        server.url, template=":rotating_light: {user_id} scored {score}", headers={"X-Token": "t0k"}
    )
    body = WebhookSink(
        server.url,
        template={"title": "Alert {user_id}", "fields": [{"name": "score", "value": "{score}"}], "n": 1},
    )
    raw = WebhookSink(server.url)
    clock = ManualClock(T0)
    for sink in (text, body, raw):
        w = sink.open(clock)
        w.write_batch(alerts(1))
        w.close()
    reqs = server.recorder.requests
    assert reqs[0]["json"] == {"text": ":rotating_light: u0 scored 0.9"}
    assert reqs[0]["headers"]["X-Token"] == "t0k"  # type: ignore[index]
    assert reqs[1]["json"] == {"title": "Alert u0", "fields": [{"name": "score", "value": "0.9"}], "n": 1}
    assert reqs[2]["json"]["user_id"] == "u0" and reqs[2]["json"]["properties"] == {"page": "/p0"}  # type: ignore[index]
    assert "t0k" not in repr(text) and "t0k" not in json.dumps(text.spec())


def test_template_naming_a_missing_column_is_reported_not_sent(server: RecordingServer) -> None:
    writer = WebhookSink(server.url, template="{no_such_column}").open(ManualClock(T0))
    writer.write_batch(alerts(1))
    with pytest.raises(AlertDeliveryError, match="no_such_column"):
        writer.flush()
    assert server.recorder.requests == []


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: PagerDutySink(""), "Integration Key"),
        (lambda: PagerDutySink("k", url="ftp://x"), "http"),
        (lambda: PagerDutySink("k", severity="fatal"), "critical, error, warning, info"),
        (lambda: PagerDutySink("k", dedup_key="{"), "literal braces"),
        (lambda: PagerDutySink("k", summary="{}"), "name the column"),
        (lambda: PagerDutySink("k", rate_limit_per_minute=0), "rate_limit_per_minute"),
        (lambda: WebhookSink("https://x", max_retries=-1), "max_retries"),
        (lambda: WebhookSink("https://x", timeout=0), "timeout"),
        (lambda: WebhookSink("https://x", timeout=float("inf")), "a finite number of seconds"),
        (lambda: WebhookSink("https://x", template=3), "a JSON-like mapping"),  # type: ignore[arg-type]
        (lambda: WebhookSink("https://x", template="{user_id.upper}"), "attribute or index access"),
        (lambda: WebhookSink("https://x", template={"t": ["{x[0]}"]}), "attribute or index access"),
        (lambda: PagerDutySink("k", summary="{user_id!z}"), "not a conversion"),
        (lambda: PagerDutySink("k", summary="{score:{width}}"), "cannot hold fields"),
    ],
)
def test_bad_configuration_is_rejected_at_construction(factory: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()  # type: ignore[operator]


def test_resolve_needs_a_dedup_key(server: RecordingServer) -> None:
    writer = PagerDutySink("key", url=server.url).open(ManualClock(T0))
    writer.write_batch(alerts(1).assign(action="resolve"))
    with pytest.raises(AlertDeliveryError, match="without a dedup_key"):
        writer.flush()
    assert server.recorder.requests == []


def test_spec_holds_the_constructor_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_KEY", "0123456789abcdef")
    pd_sink = PagerDutySink(routing_key_env="PD_KEY", dedup_key="{user_id}", severity="{severity}")
    hook = WebhookSink("${HOOK_URL}", template={"text": "{user_id}"}, rate_limit_per_minute=10)
    for component in (pd_sink, hook):
        params = dict(component.spec())
        params.pop("kind")
        assert type(component)(**params) == component
    assert "0123456789abcdef" not in json.dumps(pd_sink.spec())
    assert pd_sink.request_body({"user_id": "u", "severity": "info"})["routing_key"] == "0123456789abcdef"


def test_format_specs_missing_values_and_times_in_a_run(server: RecordingServer) -> None:
    from streamlab import Pipeline
    from streamlab.testing import ListSource

    events = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "score": [0.971, float("nan"), 0.99],
            "timestamp": pd.to_datetime(["2024-01-01T08:30:05Z", "2024-01-01T09:00:00Z", None], utc=True),
        }
    )
    p = Pipeline(ListSource(events))
    p.stream.to(
        WebhookSink(server.url, template="{user_id} scored {score:.2f} at {timestamp:%H:%M} ({timestamp})")
    )
    p.run()
    assert [r["json"]["text"] for r in server.recorder.requests] == [  # type: ignore[index]
        "u1 scored 0.97 at 08:30 (2024-01-01T08:30:05.000000Z)",
        "u2 scored None at 09:00 (2024-01-01T09:00:00.000000Z)",  # a missing value is None, spec or not
        "u3 scored 0.99 at None (None)",
    ]


def test_a_row_its_spec_cannot_format_is_a_failed_alert(server: RecordingServer) -> None:
    writer = WebhookSink(server.url, template="{user_id}: {properties:>20}").open(ManualClock(T0))
    writer.write_batch(alerts(2))  # a JSON object takes no format spec: TypeError inside format()
    with pytest.raises(AlertDeliveryError, match="2 alert") as info:
        writer.flush()
    assert "column 'properties'" in str(info.value) and "cannot be formatted as '{properties:>20}'" in str(
        info.value
    )
    assert server.recorder.requests == []


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        (
            WebhookSink("https://x", template="{user_id}: {nope}"),
            r"WebhookSink\(template='{user_id}: {nope}'\)",
        ),
        (WebhookSink("https://x", template={"t": "{scor:.2f}"}), r"did you mean \['score'\]"),
        (PagerDutySink("k", dedup_key="{detector}:{user}"), r"PagerDutySink\(dedup_key="),
        (PagerDutySink("k", severity="{level}"), r"PagerDutySink\(severity='{level}'\)"),
    ],
)
def test_template_columns_the_stream_lacks_are_refused_at_to(sink: object, message: str) -> None:
    from streamlab import Pipeline
    from streamlab.errors import PipelineConfigError
    from streamlab.testing import ListSource

    p = Pipeline(ListSource(alerts(1)))
    with pytest.raises(PipelineConfigError, match=message) as info:
        p.stream.to(sink, step_id="page")  # type: ignore[arg-type]
    assert "'page'" in str(info.value) and "does not have" in str(info.value)


def test_a_down_endpoint_costs_one_alerts_retries_not_one_per_alert() -> None:
    """Every alert waited out all its retries: 50 alerts to a down endpoint blocked 50 times as long
    (with the defaults, 31 s of backoff each: 26 minutes, more with a stalled one's timeouts)."""
    url = f"http://127.0.0.1:{find_free_port()}/hook"  # nothing listens here
    clock = ManualClock(T0)
    writer = WebhookSink(url, max_retries=2, timeout=2).open(clock)
    writer.write_batch(alerts(50))
    with pytest.raises(AlertDeliveryError, match="50 alert") as info:
        writer.flush()
    assert [s for _, s in writer.history] == [0, 0, 0]  # one alert's attempts
    assert clock.now_ns() - ManualClock(T0).now_ns() == 3 * 1_000_000_000  # its backoff (1 s, 2 s), once
    assert "49 alert(s) not sent" in str(info.value)


def test_alerts_after_an_exhausted_one_count_as_failed_none_vanish(server: RecordingServer) -> None:
    ok = (202, {}, '{"status":"success"}')
    server.recorder.script = [ok, ok] + [(503, {}, "down")] * 3
    writer = PagerDutySink("key", url=server.url, max_retries=2).open(ManualClock(T0))
    writer.write_batch(alerts(2))  # the first is delivered
    writer.write_batch(alerts(3))  # the first of these uses up its retries; the other two are not sent
    writer.write_batch(alerts(1))
    assert writer.sent == 2 and len(server.recorder.requests) == 2 + 3
    with pytest.raises(AlertDeliveryError, match="4 alert"):
        writer.flush()


@pytest.mark.parametrize(
    ("kwargs", "parameter", "words"),
    [
        (
            {"backoff": 120, "max_backoff": 60},
            "backoff",
            "120 seconds is longer than max_backoff (60 seconds)",
        ),
        ({"backoff": 90}, "backoff", "longer than max_backoff (60 seconds)"),
        ({"backoff": -1}, "backoff", "a positive number of seconds"),
        ({"max_backoff": float("inf")}, "max_backoff", "a finite number of seconds"),
        ({"timeout": float("nan")}, "timeout", "a positive number of seconds"),
        ({"max_retries": -1}, "max_retries", "0 or more"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute", "a positive number of requests"),
    ],
)
def test_a_delivery_built_by_hand_is_checked_like_the_sinks_parameters(kwargs, parameter, words) -> None:
    # Delivery(backoff=120, max_backoff=60) was accepted: every retry waited max_backoff
    from streamlab.connectors.alerts.delivery import Delivery

    with pytest.raises(ParameterError) as e:
        Delivery(**kwargs)
    assert (e.value.owner, e.value.parameter) == ("Delivery", parameter) and words in e.value.problem
    assert parameter in e.value.fix
    assert Delivery(backoff=60, max_backoff=60).backoff == 60.0


# -- alerts whose content is refused: a dead letter instead of a run stopped on every restart ---------
def test_alerts_the_endpoint_refuses_for_their_content_go_to_the_dead_letter(server: RecordingServer) -> None:
    # a 413 (a body too large) or 400/422 (not the shape the endpoint takes) is answered again on every
    # retry and restart: the run failed at each flush until the row was mended by hand
    from streamlab.testing import ListSink

    server.recorder.script = [
        (413, {}, "Payload Too Large"),
        (202, {}, "ok"),
        (422, {}, '{"error":"invalid_blocks"}'),
        (400, {}, "no_text"),
    ]
    dead = ListSink()
    writer = WebhookSink(server.url, template="{user_id}: {properties:>5}", dead_letter=dead).open(
        ManualClock(T0)
    )
    rows = alerts(5).assign(properties=["a", "b", {"page": "/p"}, "d", "e"])  # the third cannot be rendered
    writer.write_batch(rows)
    writer.flush()  # raised before: 4 alert(s) not delivered
    writer.close()
    assert (writer.sent, writer.refused) == (1, 4) and len(server.recorder.requests) == 4  # none retried
    got = dead.frame()
    assert got["user_id"].tolist() == ["u0", "u2", "u3", "u4"]
    assert list(got.columns) == [*rows.columns, "reject_reason"]
    reasons = got["reject_reason"].tolist()
    assert reasons[0] == "rejected: HTTP 413 Payload Too Large"
    assert "column 'properties'" in reasons[1] and "cannot be formatted" in reasons[1]
    assert (
        reasons[2] == 'rejected: HTTP 422 {"error":"invalid_blocks"}'
        and reasons[3] == "rejected: HTTP 400 no_text"
    )


def test_without_a_dead_letter_a_refused_alert_fails_the_flush_and_says_how_to_keep_it(
    server: RecordingServer,
) -> None:
    server.recorder.script = [(413, {}, "Payload Too Large")]
    writer = WebhookSink(server.url).open(ManualClock(T0))
    writer.write_batch(alerts(1))
    with pytest.raises(AlertDeliveryError, match="HTTP 413.*pass dead_letter= to keep alerts"):
        writer.flush()


def test_a_wrong_routing_key_fails_the_run_even_with_a_dead_letter(server: RecordingServer) -> None:
    # PagerDuty answers a wrong key with 400 too: a configuration mistake every alert shares, which must
    # stop the run, not fill the dead letter
    from streamlab.testing import ListSink

    body = '{"status":"invalid event","message":"Event object is invalid","errors":["\'routing_key\' is invalid"]}'
    server.recorder.script = [(400, {}, body)]
    dead = ListSink()
    writer = PagerDutySink("wrong", url=server.url, dead_letter=dead).open(ManualClock(T0))
    writer.write_batch(alerts(1))
    with pytest.raises(AlertDeliveryError, match="routing_key") as info:
        writer.flush()
    assert "pass dead_letter=" not in str(info.value) and dead.frame().empty
    server.recorder.script = [(400, {}, body)]
    alone = PagerDutySink("wrong", url=server.url).open(
        ManualClock(T0)
    )  # no dead letter: no such hint either
    alone.write_batch(alerts(1))
    with pytest.raises(AlertDeliveryError, match="routing_key") as info:
        alone.flush()
    assert "pass dead_letter=" not in str(info.value)


def test_an_event_over_pagerdutys_512_kb_is_sent_with_its_details_cut(server: RecordingServer) -> None:
    import hashlib

    rows = alerts(2).assign(note=["x" * 700_000, "short"])
    writer = PagerDutySink("key", url=server.url, summary="{user_id}").open(ManualClock(T0))
    writer.write_batch(rows)
    writer.flush()
    big, small = (r for r in server.recorder.requests)
    assert big["size"] <= 512_000 < 700_000  # type: ignore[operator]
    details = big["json"]["payload"]["custom_details"]  # type: ignore[index]
    # the details as the sink builds them (the row, times as ISO text), compact, are what was cut
    row = {**json.loads(rows.iloc[:1].to_json(orient="records", date_format="iso"))[0]}
    row["timestamp"] = "2024-01-01T00:00:00.000000Z"
    whole = json.dumps(row, separators=(",", ":"))
    assert (
        details["raw_truncated"] is True
        and whole.startswith(details["raw"])
        and len(details["raw"]) > 500_000
    )
    assert (
        details["raw_bytes"] == len(whole)
        and details["raw_sha256"] == hashlib.sha256(whole.encode()).hexdigest()
    )
    assert set(details) == {"raw", "raw_truncated", "raw_bytes", "raw_sha256"}
    assert big["json"]["payload"]["summary"] == "u0"  # type: ignore[index]
    assert small["json"]["payload"]["custom_details"]["note"] == "short"  # type: ignore[index]


def test_a_run_keeps_refused_alerts_in_its_dead_letter_read_back_from_yaml(
    server: RecordingServer, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from streamlab import Pipeline, ReplaySource
    from streamlab.sinks import JsonLinesSink

    out = Path(str(tmp_path)) / "refused.jsonl"
    server.recorder.script = [(202, {}, "ok"), (413, {}, "Payload Too Large")]
    events = Path(str(tmp_path)) / "alerts.jsonl"
    events.write_text(
        "".join(
            json.dumps({"user_id": f"u{i}", "timestamp": f"2024-01-01T00:00:0{i}Z"}) + "\n" for i in range(3)
        )
    )
    p = Pipeline(ReplaySource(events, speed=None))
    p.stream.to(WebhookSink(server.url, template="{user_id}", dead_letter=JsonLinesSink(str(out))))
    monkeypatch.setenv("WEBHOOK_URL", server.url)  # the spec holds a reference to the URL, not the URL
    again = Pipeline.from_yaml(p.to_yaml())
    assert again.run().status == "finished"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["user_id"], r["reject_reason"]) for r in lines] == [
        ("u1", "rejected: HTTP 413 Payload Too Large")
    ]
    assert len(server.recorder.requests) == 3


def test_alert_texts_are_the_same_at_every_batch_size(server: RecordingServer) -> None:
    # pandas makes an integer column float64 once it meets a missing value: in a batch of all three rows
    # user 7 was 7.0, so the summary, source and webhook texts read "user 7.0" there and "user 7" alone
    rows = [
        {"detector": "hst", "user_id": 7, "host": 12, "n": 3},
        {"detector": "hst", "user_id": None, "host": None, "n": 4},
        {"detector": "hst", "user_id": 8, "host": 13, "n": 5},
    ]
    sinks = [
        PagerDutySink(
            "key",
            url=server.url,
            dedup_key="{detector}:{user_id}",
            summary="user {user_id} ({user_id!r}, {user_id:.2}, {user_id:>4}) on {host}",
            source="host-{host}",
        ),
        PagerDutySink("key", url=server.url),  # the default summary: the row's JSON text
        WebhookSink(server.url, template="user {user_id} on {host:d}, n={n}"),
        WebhookSink(server.url, template={"blocks": [{"text": "user {user_id}"}, "{host}"]}),
    ]

    def texts(batches: list[pd.DataFrame]) -> list[object]:
        server.recorder.requests.clear()
        for sink in sinks:
            writer = sink.open(ManualClock(T0))
            for batch in batches:
                writer.write_batch(batch)
            writer.close()
        out: list[object] = []
        for r in server.recorder.requests:
            body = r["json"]
            assert isinstance(body, dict)
            payload = body.get("payload")
            if payload is None:
                out.append(body)  # a webhook's whole body is its texts
            else:
                out.append((body.get("dedup_key"), payload["summary"], payload["source"]))
        return out

    together = pd.DataFrame(rows)
    assert together["user_id"].dtype == "float64" and together["host"].dtype == "float64"
    one_by_one = texts([pd.DataFrame([row]) for row in rows])
    assert texts([together]) == one_by_one
    assert one_by_one[0] == ("hst:7", "user 7 (7, 7.0,    7) on 12", "host-12")
    assert one_by_one[3][1] == 'streamlab alert {"detector":"hst","user_id":7,"host":12,"n":3}'  # type: ignore[index]
    assert one_by_one[6] == {"text": "user 7 on 12, n=3"}
    assert one_by_one[9] == {"blocks": [{"text": "user 7"}, "12"]}
