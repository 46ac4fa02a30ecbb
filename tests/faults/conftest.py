"""Fixtures of the fault suite: each test owns its broker or emulator process (it may freeze, kill and
restart it).

Every broker runs on a fixed free port so it can be restarted where clients expect it, and is resumed
(SIGCONT) and stopped by PID whatever the test did.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamlab.local import LocalServer

from ._kafka import Broker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.services)


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A private in-memory broker."""
    b = Broker().start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def pubsub_process() -> Iterator[LocalServer]:
    """streamlab's Pub/Sub emulator in a process of its own, which a test may stop or freeze (SIGSTOP)."""
    server = LocalServer(
        "pubsub-emulator",
        lambda port: [sys.executable, "-m", "streamlab.connectors.pubsub_emulator", "--port", str(port)],
    ).start()
    try:
        yield server
    finally:
        if server.running:
            assert server.pid is not None
            os.kill(server.pid, signal.SIGCONT)  # a frozen process would not see the SIGTERM
            server.stop()


@pytest.fixture
def moto() -> Iterator[LocalServer]:
    """moto_server (Kinesis) in a process of its own, which a test may freeze."""
    exe = Path(sys.executable).with_name("moto_server")
    server = LocalServer("moto", lambda port: [str(exe), "-H", "127.0.0.1", "-p", str(port)]).start()
    try:
        yield server
    finally:
        if server.running:
            assert server.pid is not None
            os.kill(server.pid, signal.SIGCONT)
            server.stop()
