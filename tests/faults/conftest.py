"""Fixtures of the fault suite: each test owns its broker (it may freeze, kill and restart it).

Every broker runs on a fixed free port so it can be restarted where clients expect it, and is resumed
(SIGCONT) and stopped by PID whatever the test did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
