"""A connector's pair of settings whose first must not exceed the second is refused when it is built:
``KinesisSink(backoff='10s', max_backoff='1s')`` was accepted (the waits shrank after the first), a Kafka
``config`` with ``reconnect.backoff.ms`` above ``reconnect.backoff.max.ms`` failed only when the client
was made at run time (and ``retry.backoff.ms`` above its max was a librdkafka warning and a static
wait), and a Pub/Sub ``flow_control`` minimum lease extension above its maximum silently won."""

from __future__ import annotations

import pytest
import streamlab.connectors as c
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab.errors import ParameterError


def test_a_kinesis_backoff_longer_than_its_max_is_refused_with_the_fix():
    with pytest.raises(ParameterError) as e:
        c.KinesisSink("alerts", partition_key="user_id", backoff="10s", max_backoff="1s")
    assert e.value.owner == "KinesisSink" and e.value.parameter == "backoff"
    assert "'10s' is longer than max_backoff '1s' (stream 'alerts')" in e.value.problem
    assert e.value.fix.startswith("make backoff at most max_backoff")


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_kinesis_backoffs_are_taken_exactly_when_ordered(backoff_ms, max_ms):
    make = lambda: c.KinesisSink("s", partition_key="k", backoff=f"{backoff_ms}ms", max_backoff=f"{max_ms}ms")
    if backoff_ms <= max_ms:
        assert make().max_backoff_ns == max_ms * 1_000_000
    else:
        with pytest.raises(ParameterError, match="is longer than max_backoff"):
            make()


@pytest.mark.parametrize("kind", ["source", "sink"])
@pytest.mark.parametrize(
    "config, words",
    [
        ({"reconnect.backoff.ms": 5000, "reconnect.backoff.max.ms": 1000}, "'reconnect.backoff.ms': 5000, "),
        (
            {"retry.backoff.ms": "5000", "retry.backoff.max.ms": "1000"},
            "retry.backoff.ms exceeds retry.backoff.max.ms",
        ),
        ({"retry.backoff.ms": 2000}, "(retry.backoff.max.ms is 1000 by default)"),
    ],
)
def test_a_kafka_backoff_above_its_max_is_refused_naming_the_settings(kind, config, words):
    with pytest.raises(ParameterError) as e:
        if kind == "source":
            c.KafkaSource("events", bootstrap_servers="127.0.0.1:9092", group_id="g", config=config)
        else:
            c.KafkaSink("events", bootstrap_servers="127.0.0.1:9092", config=config)
    assert e.value.parameter == "config" and words in e.value.problem
    assert "make " in e.value.fix and "at most" in e.value.fix


def test_ordered_kafka_backoffs_are_taken_and_unreadable_ones_left_to_librdkafka():
    for config in (
        {"retry.backoff.ms": 500, "retry.backoff.max.ms": 500},
        {"reconnect.backoff.max.ms": 50_000},
    ):
        assert c.KafkaSource("e", bootstrap_servers="h:9092", group_id="g", config=config).config == config
    # librdkafka's own check of the value, made when the source is built (test_kafka_config_checks.py)
    with pytest.raises(ParameterError, match='Invalid value for configuration property "retry.backoff.ms"'):
        c.KafkaSource("e", bootstrap_servers="h:9092", group_id="g", config={"retry.backoff.ms": "soon"})


def test_a_pubsub_minimum_lease_extension_above_its_maximum_is_refused():
    flow = {"min_duration_per_lease_extension": 120, "max_duration_per_lease_extension": 60}
    with pytest.raises(ParameterError) as e:
        c.PubSubSource("events-sub", project="demo", flow_control=flow)
    assert (
        e.value.parameter == "flow_control"
        and "120 exceeds max_duration_per_lease_extension 60" in e.value.problem
    )
    ok = {"min_duration_per_lease_extension": 120, "max_duration_per_lease_extension": 0}  # 0: no maximum
    assert c.PubSubSource("events-sub", project="demo", flow_control=ok).flow_control == ok
