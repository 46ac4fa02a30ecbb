"""Helpers of the fault suite: brokers a test may freeze, kill and restart, seeded records."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from typing import Any

# tansu answers a subscribing consumer's JoinGroup after session.timeout.ms / 2; keep joins short.
FAST_GROUP = {"session.timeout.ms": 1000, "heartbeat.interval.ms": 250}
EVENT_TYPES = ("click", "view", "buy", "refund")


def make_events(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``n`` keyed JSON events over 30 minutes of event time, a little out of order, seeded."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = i * 1800 // n + rng.randint(-3, 3)
        user = f"u{rng.randrange(40)}"
        event = {
            "event_id": f"e{i}",
            "event_type": EVENT_TYPES[rng.randrange(len(EVENT_TYPES))],
            "user_id": user,
            "timestamp": f"2024-01-01T00:{max(t, 0) // 60:02d}:{max(t, 0) % 60:02d}Z",
            "amount": rng.randint(1, 500) / 10,
        }
        out.append((user.encode(), json.dumps(event).encode()))
    return out


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    errors: list[Any] = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 3})
    deadline = time.monotonic() + 60  # a full queue drains as the broker acknowledges: bounded
    for key, value in records:
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=lambda e, _m: e and errors.append(e))
                break
            except BufferError:
                assert time.monotonic() < deadline, f"the producer's queue stayed full for 60 s ({topic})"
                p.poll(0.05)
    assert p.flush(20) == 0
    assert errors == []


class Broker:
    """A tansu broker owned by one test: freeze/thaw (SIGSTOP/SIGCONT), kill -9, restart on its port."""

    def __init__(self, storage: str = "memory://tansu/", env: dict[str, str] | None = None) -> None:
        from streamlab.testing import find_free_port

        self.port = find_free_port()
        self.storage, self.env = storage, env
        self.server: Any = None
        self.frozen = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        from streamlab.connectors.kafka import LocalKafkaBroker

        self.server = LocalKafkaBroker(self.port, storage=self.storage, env=self.env).start()
        return self

    def freeze(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            os.kill(self.server.pid, signal.SIGCONT)
            self.frozen = False

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as a crashed broker."""
        self.thaw()
        pid = self.server.pid
        os.kill(pid, signal.SIGKILL)
        self.server.stop()  # reaps the process and removes its work directory

    def stop(self) -> None:
        self.thaw()
        if self.server is not None and self.server.running:
            self.server.stop()
