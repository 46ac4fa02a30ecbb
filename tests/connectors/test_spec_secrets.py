"""Saved specs, exported code, reprs and logs never hold a secret: specs hold environment references,
resolved when the connector connects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlab.connectors.alerts import PagerDutySink, WebhookSink
from streamlab.connectors.kafka import KafkaSink, KafkaSource
from streamlab.connectors.redis import RedisMetricsSink, RedisStreamSink

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg

SECRETS = {
    "redis": "r3dis-pw",
    "hook": "XoXoTOKEN123",
    "pd": "R0UTINGKEY0123456789",
    "sasl": "kafka-pw-42",
    "oauth": "clientSecret=oauth-s3cret",
    "sslkey": "ssl-key-pw-7",
    "extensions": "apiToken=ext-token-2",
    "kinit": "kinit-pass-6",
    "passphrase": "assert-pass-3",
    "tokenurl": "url-pass-4",
}


def kafka_config() -> dict[str, str]:
    return {
        "security.protocol": "SASL_SSL",
        "sasl.password": SECRETS["sasl"],
        "sasl.oauthbearer.config": SECRETS["oauth"],
        "ssl.key.password": SECRETS["sslkey"],
        "sasl.oauthbearer.extensions": SECRETS["extensions"],
        "sasl.kerberos.kinit.cmd": f"echo {SECRETS['kinit']} | kinit app@EXAMPLE.COM",
        "sasl.oauthbearer.assertion.private.key.passphrase": SECRETS["passphrase"],
        "sasl.oauthbearer.token.endpoint.url": f"https://app:{SECRETS['tokenurl']}@idp.example.com/token",
    }


def pipeline(tmp_path: Path) -> Pipeline:
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_type": "a", "timestamp": "2024-01-01T00:00:00Z"}\n')
    p = Pipeline(ReplaySource(events, raw=True), name="secrets")
    counts = (
        p.parse({"event_type": "string", "timestamp": "timestamp"})
        .window(TumblingWindow("1m"), key="event_type")
        .agg(agg.count())
    )
    counts.to(RedisMetricsSink(f"redis://user:{SECRETS['redis']}@cache:6379/0"), step_id="redis")
    counts.to(RedisStreamSink(f"redis://:{SECRETS['redis']}@cache:6379/0", "s"), step_id="stream")
    counts.to(WebhookSink(f"https://hooks.example.com/services/T0/B0/{SECRETS['hook']}"), step_id="hook")
    counts.to(
        WebhookSink("https://example.com/h", headers={"Authorization": f"Bearer {SECRETS['hook']}"}),
        step_id="hook2",
    )
    counts.to(PagerDutySink(SECRETS["pd"], dedup_key="{event_type}"), step_id="pd")
    counts.to(KafkaSink("out", bootstrap_servers="b:9092", config=kafka_config()), step_id="kafka")
    return p


def assert_no_secret(text: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"the {name} secret leaked"


def test_to_yaml_writes_references_not_secrets(tmp_path: Path) -> None:
    text = pipeline(tmp_path).to_yaml()
    assert_no_secret(text)
    for ref in (
        "redis://user:${REDIS_PASSWORD}@cache:6379/0",
        "url: ${WEBHOOK_URL}",
        "Authorization: ${WEBHOOK_HEADER_AUTHORIZATION}",
        "routing_key: ${PAGERDUTY_ROUTING_KEY}",
        "sasl.password: ${KAFKA_SASL_PASSWORD}",
        "sasl.oauthbearer.config: ${KAFKA_SASL_OAUTHBEARER_CONFIG}",
        "ssl.key.password: ${KAFKA_SSL_KEY_PASSWORD}",
        "sasl.oauthbearer.extensions: ${KAFKA_SASL_OAUTHBEARER_EXTENSIONS}",
        "sasl.kerberos.kinit.cmd: ${KAFKA_SASL_KERBEROS_KINIT_CMD}",
        "sasl.oauthbearer.assertion.private.key.passphrase: ${KAFKA_SASL_OAUTHBEARER_ASSERTION_PRIVATE_KEY_PASSPHRASE}",
        "https://app:${KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL_PASSWORD}@idp.example.com/token",
    ):
        assert ref in text, ref


def test_reprs_hide_secrets(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    shown = " ".join(repr(getattr(s, "sink", s)) for s in p.steps.values())
    assert_no_secret(
        shown + repr(KafkaSource("t", bootstrap_servers="b:1", group_id="g", config=kafka_config()))
    )
    assert "redis://user:***@cache:6379/0" in shown and "https://hooks.example.com/***" in shown


def test_a_saved_spec_runs_with_the_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = pipeline(tmp_path).to_yaml()
    q = Pipeline.from_yaml(text)  # loading needs no secret: references resolve when connecting
    for var, value in {
        "REDIS_PASSWORD": SECRETS["redis"],
        "WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/" + SECRETS["hook"],
        "WEBHOOK_HEADER_AUTHORIZATION": "Bearer " + SECRETS["hook"],
        "PAGERDUTY_ROUTING_KEY": SECRETS["pd"],
        "KAFKA_SASL_PASSWORD": SECRETS["sasl"],
        "KAFKA_SASL_OAUTHBEARER_CONFIG": SECRETS["oauth"],
        "KAFKA_SSL_KEY_PASSWORD": SECRETS["sslkey"],
        "KAFKA_SASL_OAUTHBEARER_EXTENSIONS": SECRETS["extensions"],
        "KAFKA_SASL_KERBEROS_KINIT_CMD": kafka_config()["sasl.kerberos.kinit.cmd"],
        "KAFKA_SASL_OAUTHBEARER_ASSERTION_PRIVATE_KEY_PASSPHRASE": SECRETS["passphrase"],
        "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL_PASSWORD": SECRETS["tokenurl"],
    }.items():
        monkeypatch.setenv(var, value)
    sinks = {sid: q.steps[sid].sink for sid in ("redis", "hook2", "pd", "kafka")}  # type: ignore[attr-defined]
    from streamlab._secrets import resolve

    assert resolve(sinks["redis"].url) == f"redis://user:{SECRETS['redis']}@cache:6379/0"
    assert sinks["hook2"].http_headers()["Authorization"] == "Bearer " + SECRETS["hook"]
    assert sinks["pd"].request_body({"event_type": "a"})["routing_key"] == SECRETS["pd"]
    conf = sinks["kafka"].producer_config()
    assert conf["sasl.password"] == SECRETS["sasl"] and conf["ssl.key.password"] == SECRETS["sslkey"]
    assert conf["sasl.oauthbearer.config"] == SECRETS["oauth"]
    assert {k: conf[k] for k in kafka_config()} == kafka_config()
    # the rebuilt pipeline saves the same references again
    assert q.to_yaml() == text


def test_a_missing_variable_is_named_when_connecting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    q = Pipeline.from_yaml(pipeline(tmp_path).to_yaml())
    with pytest.raises(ValueError, match=r"KAFKA_SASL_PASSWORD.*not set"):
        q.steps["kafka"].sink.producer_config()  # type: ignore[attr-defined]


def test_references_given_by_the_user_are_kept(tmp_path: Path) -> None:
    sink = RedisMetricsSink("redis://:${MY_REDIS_PW}@cache:6379/0")
    hook = WebhookSink("${SLACK_URL}")
    sasl = {"security.protocol": "SASL_SSL", "sasl.password": "${MY_PW}"}
    src = KafkaSource("t", bootstrap_servers="b:1", group_id="g", config=sasl)
    assert sink.spec()["url"] == "redis://:${MY_REDIS_PW}@cache:6379/0"
    assert hook.spec()["url"] == "${SLACK_URL}"
    assert src.spec()["config"] == sasl


def test_exported_code_holds_no_secret(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_type": "a", "timestamp": "2024-01-01T00:00:00Z"}\n')
    p = Pipeline(
        KafkaSource("events", bootstrap_servers="b:9092", group_id="g", config=kafka_config()), name="kx"
    )
    p.parse({"event_type": "string", "timestamp": "timestamp"}).window(TumblingWindow("1m")).agg(agg.count())
    spec = tmp_path / "spec.yaml"
    p.to_yaml(str(spec))
    assert_no_secret(spec.read_text())
    from streamlab.export import export_main

    for target in ("beam", "lambda"):
        assert export_main([target, str(spec), "-o", str(tmp_path / target)]) == 0
        for f in (tmp_path / target).rglob("*"):
            if f.is_file():
                assert_no_secret(f.read_text(errors="replace"))
    assert json.dumps(p.to_dict()).count("${KAFKA_SASL_PASSWORD}") == 1


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache:6379/0?password={pw}",
        "rediss://cache:6380/0?username=app&password={pw}",
        "unix:///run/redis.sock?db=0&password={pw}",
    ],
)
def test_a_redis_password_in_the_urls_query_is_a_reference_too(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py connects with ``?password=``, which to_yaml() and repr() wrote as it was given."""
    pw = SECRETS["redis"]
    given = url.format(pw=pw)
    (tmp_path / "in.jsonl").write_text('{"count": 1, "event_type": "a"}\n')
    for sink in (RedisStreamSink(given, "s"), RedisMetricsSink(given)):
        p = Pipeline(ReplaySource(tmp_path / "in.jsonl"), name="q")
        p.to(sink)
        text = p.to_yaml()
        assert pw not in text and pw not in repr(sink), (text, repr(sink))
        assert url.format(pw="${REDIS_PASSWORD}") in text
        assert url.format(pw="***") in repr(sink)
        monkeypatch.setenv("REDIS_PASSWORD", pw)
        from streamlab._secrets import resolve

        assert resolve(url.format(pw="${REDIS_PASSWORD}")) == given  # what the sink connects with
