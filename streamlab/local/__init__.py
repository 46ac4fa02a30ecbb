"""Local stand-ins for cloud streaming services, to try pipelines without an account.

Each is an object with ``start()``/``stop()`` and a context manager, bound to ``127.0.0.1`` on a free
port and stopped by its own PID (nothing is matched by name). The servers' clients are imported only
when a server starts, so importing this package loads none of them.

Examples
--------
>>> from streamlab.local import LocalServer, find_free_port
>>> import sys
>>> code = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"
>>> with LocalServer("demo", lambda port: [sys.executable, "-c", code, str(port)]) as server:
...     server.running
True
"""

from __future__ import annotations

from .aws import LocalAWS
from .kafka import LocalKafkaBroker
from .pubsub import PubSubEmulator
from .redis import LocalRedis
from .server import LocalServer, ServerStartError, find_free_port, port_is_open, stop_process, wait_for_port

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
