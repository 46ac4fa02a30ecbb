"""RedisWebSocketRelay against a real redis-server and real websocket clients on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from typing import Any

import pandas as pd
import pytest
from streamlab.connectors.dashboard import RedisWebSocketRelay
from streamlab.connectors.redis import LocalRedis, RedisMetricsSink

from streamlab.testing import port_is_open, wait_for


def connect(relay: RedisWebSocketRelay) -> Any:
    """A real websocket client (use it in a ``with`` block)."""
    from websockets.sync.client import connect as ws_connect

    return ws_connect(relay.url, open_timeout=5)


def receive(conn: Any, n: int, timeout: float = 10) -> list[str]:
    got: list[str] = []

    def more() -> bool:
        with contextlib.suppress(TimeoutError):
            got.append(conn.recv(timeout=0.05))
        return len(got) >= n

    wait_for(more, timeout=timeout, interval=0.001, what=f"{n} websocket messages")
    return got


def test_every_message_reaches_every_client_in_order(redis_server: LocalRedis, redis_client: object) -> None:
    with RedisWebSocketRelay(redis_server.url, channels=["a", "b"]) as relay:
        with connect(relay) as first, connect(relay) as second:
            wait_for(lambda: relay.clients == 2, timeout=5, what="two clients")
            sent = [f"msg-{i}" for i in range(200)]
            for i, text in enumerate(sent):
                redis_client.publish("a" if i % 2 else "b", text)  # type: ignore[attr-defined]
            redis_client.publish("other", "not subscribed")  # type: ignore[attr-defined]
            assert receive(first, 200) == sent
            assert receive(second, 200) == sent
            with pytest.raises(TimeoutError):
                first.recv(timeout=0.2)  # type: ignore[attr-defined]
        wait_for(lambda: relay.clients == 0, timeout=5, what="clients to leave")
        assert relay.forwarded == 200 and relay.sent == 400 and relay.skipped == 0
    assert not relay.running


def test_metrics_sink_updates_arrive_as_published(redis_server: LocalRedis, redis_client: object) -> None:
    with RedisWebSocketRelay(redis_server.url, channels="metrics") as relay, connect(relay) as conn:
        wait_for(lambda: relay.clients == 1, timeout=5, what="the client")
        writer = RedisMetricsSink(redis_server.url, fields=["count"]).open()
        writer.write_batch(pd.DataFrame({"event_type": ["click", "view", "click"], "count": [3, 1, 2]}))
        writer.close()
        updates = [json.loads(m) for m in receive(conn, 3)]
    assert [u["labels"]["event_type"] for u in updates] == ["click", "view", "click"]
    assert [u["increments"]["count"] for u in updates] == [3, 1, 2]
    totals: dict[str, int] = {}
    for u in updates:
        totals[u["key"]] = totals.get(u["key"], 0) + u["increments"]["count"]
    stored = {k: int(redis_client.hget(k, "count")) for k in totals}  # type: ignore[attr-defined]
    assert totals == stored == {"metrics:click": 5, "metrics:view": 1}


def test_stop_closes_clients_port_and_thread(redis_server: LocalRedis) -> None:
    relay = RedisWebSocketRelay(redis_server.url).start()
    port = relay.port
    from websockets.exceptions import ConnectionClosed

    with connect(relay) as conn:
        wait_for(lambda: relay.clients == 1, timeout=5, what="the client")
        relay.stop()
        relay.stop()  # idempotent
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=5)  # type: ignore[attr-defined]
    assert not relay.running and not port_is_open(port)
    assert not [t for t in threading.enumerate() if t.name == "streamlab-websocket-relay"]
    with pytest.raises(RuntimeError, match="not started"):
        relay.url  # noqa: B018


def test_restart_after_stop(redis_server: LocalRedis, redis_client: object) -> None:
    relay = RedisWebSocketRelay(redis_server.url, channels="again")
    for round_ in range(2):
        with relay, connect(relay) as conn:
            wait_for(lambda: relay.clients == 1, timeout=5, what="the client")
            redis_client.publish("again", f"round {round_}")  # type: ignore[attr-defined]
            assert receive(conn, 1) == [f"round {round_}"]
    assert relay.forwarded == 2


def test_stalled_client_is_skipped_not_buffered_forever(
    redis_server: LocalRedis, redis_client: object
) -> None:
    """A client that never reads: once its unsent data passes the limit, messages skip it."""
    with RedisWebSocketRelay(redis_server.url, channels="big", max_client_buffer=64_000) as relay:
        stalled = socket.create_connection(("127.0.0.1", relay.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        try:
            wait_for(lambda: relay.clients == 1, timeout=5, what="the stalled client")
            payload = "x" * 100_000
            pipe = redis_client.pipeline()  # type: ignore[attr-defined]
            for _ in range(200):  # 20 MB: far more than the kernel's socket buffers hold
                pipe.publish("big", payload)
            pipe.execute()
            wait_for(lambda: relay.forwarded == 200, timeout=20, what="all messages to be handled")
            assert relay.skipped > 0 and relay.sent + relay.skipped == 200
        finally:
            stalled.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"redis_url": "localhost:6379"}, "expected a Redis URL"),
        ({"channels": []}, "channel name"),
        ({"channels": ["ok", ""]}, "channel name"),
        ({"port": 70000}, "port"),
        ({"max_client_buffer": -1}, "max_client_buffer"),
        ({"startup_timeout": 0}, "startup_timeout"),
    ],
)
def test_rejects_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"redis_url": "redis://127.0.0.1:6379/0"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RedisWebSocketRelay(**args)  # type: ignore[arg-type]


def test_unreachable_redis_fails_start_and_leaves_nothing() -> None:
    from streamlab.testing import find_free_port

    relay = RedisWebSocketRelay(f"redis://127.0.0.1:{find_free_port()}/0", startup_timeout=5)
    with pytest.raises(Exception, match=r"(?i)connect"):
        relay.start()
    assert not relay.running
    assert not [t for t in threading.enumerate() if t.name == "streamlab-websocket-relay"]


def test_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "websockets.asyncio.server", None)
    with pytest.raises(ImportError, match=r"streamlab\[redis\]"):
        RedisWebSocketRelay("redis://127.0.0.1:6379/0").start()


def test_lost_redis_ends_the_relay_and_disconnects_clients() -> None:
    from websockets.exceptions import ConnectionClosed

    server = LocalRedis().start()
    try:
        relay = RedisWebSocketRelay(server.url).start()
        with connect(relay) as conn:
            wait_for(lambda: relay.clients == 1, timeout=5, what="the client")
            server.stop()
            wait_for(lambda: not relay.running, timeout=20, what="the relay to notice")
            with pytest.raises(ConnectionClosed):
                conn.recv(timeout=5)
        assert relay.error is not None
        relay.stop()  # still safe to call
    finally:
        server.stop()


def test_a_page_of_another_site_cannot_read_the_relay(redis_server: LocalRedis, redis_client: object) -> None:
    # browsers let any page open a websocket to 127.0.0.1 and send its origin: without a check, a site
    # visited while the relay ran could read every metric (cross-site websocket hijacking)
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    with RedisWebSocketRelay(
        redis_server.url, channels="m", allowed_origins=["https://dash.example.com"]
    ) as relay:
        for origin in ("https://evil.example", "http://localhost.evil.example", "null"):
            with pytest.raises(InvalidStatus) as info, ws_connect(relay.url, origin=origin, open_timeout=5):
                pass
            assert info.value.response.status_code == 403
            assert b"allowed_origins" in info.value.response.body
        assert relay.refused == 3 and relay.clients == 0
        allowed = (
            "http://localhost:8888",
            "http://127.0.0.1:8000",
            "http://[::1]:3000",
            "https://dash.example.com",
        )
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(ws_connect(relay.url, origin=o, open_timeout=5)) for o in allowed]
            clients.append(stack.enter_context(connect(relay)))  # a script: no origin at all
            wait_for(lambda: relay.clients == 5, timeout=10, what="five clients")
            redis_client.publish("m", "hello")  # type: ignore[attr-defined]
            assert [receive(c, 1) for c in clients] == [["hello"]] * 5
    anywhere = RedisWebSocketRelay(redis_server.url, channels="m", allowed_origins="*")
    with anywhere, ws_connect(anywhere.url, origin="https://anywhere.example", open_timeout=5):
        wait_for(lambda: anywhere.clients == 1, timeout=10, what="the client")
    with pytest.raises(ValueError, match="allowed_origins"):
        RedisWebSocketRelay(redis_server.url, allowed_origins=[""])
