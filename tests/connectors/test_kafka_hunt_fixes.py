"""Fixes from the connectors QA hunt (/tmp/hunt_conn/REPORT.md), each pinned by a test that failed before.

* Brokers separated by ``;`` or whitespace were accepted when a Kafka connector was built; librdkafka
  reads such a list as one host name, and the run failed only after ``connect_timeout``, as "no broker
  answered".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import streamlab.connectors as c

from streamlab.errors import ParameterError

MAKERS: dict[str, Callable[[Any], Any]] = {
    "source": lambda b: c.KafkaSource("t", bootstrap_servers=b, group_id="g"),
    "sink": lambda b: c.KafkaSink("t", bootstrap_servers=b),
    "admin": lambda b: c.KafkaAdmin(b),
}


@pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))
@pytest.mark.parametrize(
    ("servers", "separator", "fix"),
    [
        ("127.0.0.1:9092;127.0.0.1:9093", "a semicolon (';')", "'127.0.0.1:9092,127.0.0.1:9093'"),
        ("127.0.0.1:9092 127.0.0.1:9093", "whitespace", "'127.0.0.1:9092,127.0.0.1:9093'"),
        ("a:9092,b:9093; c:9094", "a semicolon (';')", "'a:9092,b:9093,c:9094'"),
        ("a:9092\tb:9093", "whitespace", "'a:9092,b:9093'"),
        ("host a:9092", "whitespace", "e.g. '127.0.0.1:9092,127.0.0.1:9093'"),
        (["a:9092;b:9093"], "a semicolon (';')", "'a:9092,b:9093'"),
    ],
)
def test_brokers_not_separated_by_commas_are_refused_when_built(
    make: Callable[[Any], Any], servers: Any, separator: str, fix: str
) -> None:
    with pytest.raises(ParameterError, match="bootstrap_servers") as info:
        make(servers)
    text = str(info.value)
    assert f"holds {separator}" in text and "separate brokers with commas" in text
    assert fix in text


@pytest.mark.parametrize(
    "servers",
    ["127.0.0.1:9092", "a:9092,b:9093", "a:9092, b:9093", " a:9092 ", "[::1]:9092", "[::1]:9092,h:1",
     "SASL_SSL://broker:9093", ["a:9092", " b:9093"]],
)  # fmt: skip
def test_comma_separated_brokers_and_ipv6_still_pass(servers: Any) -> None:
    for make in MAKERS.values():
        make(servers)


@pytest.mark.parametrize(("servers", "words"), [(":9092", "is not 'host:port'"), ("a:0", "port 0")])
def test_each_entry_needs_a_host_and_a_port_in_range(servers: str, words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        MAKERS["source"](servers)
