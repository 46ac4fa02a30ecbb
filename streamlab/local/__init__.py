"""Local stand-ins for cloud streaming services, to try pipelines without an account.

Each is an object with ``start()``/``stop()`` and a context manager, bound to ``127.0.0.1`` on a free
port and stopped by its own PID (nothing is matched by name). Each module loads when first used, and the
servers' clients only when a server starts, so importing this package loads none of them.

Examples
--------
>>> from streamlab.local import LocalServer
>>> import sys
>>> code = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"
>>> with LocalServer("demo", lambda port: [sys.executable, "-c", code, str(port)]) as server:
...     server.running
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aws import LocalAWS
    from .kafka import LocalKafkaBroker
    from .pubsub import PubSubEmulator
    from .redis import LocalRedis
    from .server import (
        LocalServer,
        ServerStartError,
        find_free_port,
        port_is_open,
        stop_process,
        wait_for_port,
    )

_EXPORTS = {
    "LocalAWS": "aws",
    "LocalKafkaBroker": "kafka",
    "LocalRedis": "redis",
    "LocalServer": "server",
    "PubSubEmulator": "pubsub",
    "ServerStartError": "server",
    "find_free_port": "server",
    "port_is_open": "server",
    "stop_process": "server",
    "wait_for_port": "server",
}

__all__ = [
    "LocalAWS",
    "LocalKafkaBroker",
    "LocalRedis",
    "LocalServer",
    "PubSubEmulator",
    "ServerStartError",
    "find_free_port",
    "port_is_open",
    "stop_process",
    "wait_for_port",
]


def __getattr__(name: str) -> Any:
    # lazy, so that ``python -m streamlab.local.pubsub`` does not find its module already imported
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamlab.local' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"streamlab.local.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
