"""Start and stop local server processes (brokers, emulators) on free 127.0.0.1 ports.

The base of the local stand-ins (``LocalKafkaBroker``, ``LocalRedis``) and of test fixtures that wrap
any other binary. A :class:`LocalServer` is an object with ``start()``/``stop()`` and a context manager;
it owns exactly one child process (in its own process group) and stops it by PID: SIGTERM first,
SIGKILL after a grace period, so nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from streamlab._polling import wait_for

__all__ = [
    "LocalServer",
    "ServerStartError",
    "find_free_port",
    "port_is_open",
    "stop_process",
    "wait_for_port",
]

LOOPBACK = "127.0.0.1"

_S = TypeVar("_S", bound="LocalServer")


class ServerStartError(RuntimeError):
    """A local server did not come up in time or exited early; the message carries its log tail.

    Examples
    --------
    >>> import sys
    >>> never = LocalServer("never", lambda port: [sys.executable, "-c", "pass"], startup_timeout=5)
    >>> try:
    ...     never.start()
    ... except ServerStartError as exc:
    ...     print("exited with 0 before" in str(exc))
    True
    """


def find_free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The port is only free at the time of the call; a server started right after almost always gets it,
    and :class:`LocalServer` retries on another port when it does not.

    Parameters
    ----------
    host
        Interface to probe; only loopback is used in this project.

    Returns
    -------
    int
        A port number.

    Examples
    --------
    >>> 1024 <= find_free_port() <= 65535
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """Return True when a TCP connection to ``host:port`` succeeds.

    Parameters
    ----------
    port
        TCP port.
    host
        Host to connect to.
    timeout
        Connect timeout in seconds.

    Returns
    -------
    bool
        Whether something accepts connections there.

    Examples
    --------
    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0)); s.listen(1)
    ...     port_is_open(s.getsockname()[1])
    True
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    host: str = LOOPBACK,
    *,
    timeout: float = 10.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until ``host:port`` accepts TCP connections.

    Parameters
    ----------
    port
        TCP port.
    host
        Host to connect to.
    timeout
        Deadline in seconds.
    process
        When given, stop waiting (with :class:`ServerStartError`) as soon as this process exits.

    Examples
    --------
    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0)); s.listen(1)
    ...     wait_for_port(s.getsockname()[1], timeout=2)
    """

    def ready() -> bool:
        if process is not None and process.poll() is not None:
            raise ServerStartError(
                f"process {process.pid} exited with {process.returncode} before {host}:{port} opened"
            )
        return port_is_open(port, host)

    wait_for(ready, timeout=timeout, what=f"{host}:{port} to accept connections")


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> int | None:
    """Stop ``process`` by its PID: SIGTERM to its process group, then SIGKILL after ``grace`` seconds.

    Only the given process (and the group it leads, when it was started with ``start_new_session``)
    is signalled; nothing is matched by name.

    Parameters
    ----------
    process
        A child started with :class:`subprocess.Popen`.
    grace
        Seconds to wait after SIGTERM before SIGKILL.

    Returns
    -------
    int or None
        The exit code (negative for a signal), or None if it could not be reaped.

    Examples
    --------
    >>> import sys
    >>> p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> stop_process(p, grace=5) is not None
    True
    >>> p.poll() is not None
    True

    A process that ignores SIGTERM is killed after the grace period:

    >>> code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
    >>> p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    >>> p.stdout.readline()  # it has installed its handler
    b'1\\n'
    >>> stop_process(p, grace=0.2)
    -9
    >>> p.stdout.close()
    """
    if process.poll() is not None:
        return process.returncode
    _signal(process, signal.SIGTERM)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        try:
            return process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
            return None


def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        # Only signal the group when the child leads its own one; otherwise we would hit ourselves.
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except ProcessLookupError:
        pass


class LocalServer:
    """One server process on a free loopback port, with ``start()``/``stop()`` and a context manager.

    ``command`` is a callable receiving the chosen port (and returning the argv), so any binary can be
    wrapped. Output goes to a log file whose tail is included in start-up errors. If the port was taken
    between choosing and binding (a race with other processes), start-up retries on a new port.

    Parameters
    ----------
    name
        Human-readable name for messages and ``repr``.
    command
        ``command(port) -> argv``.
    port
        Fixed port; default: a free one is chosen.
    env
        Extra environment variables for the process.
    startup_timeout
        Seconds to wait for the port to open.
    stop_grace
        Seconds between SIGTERM and SIGKILL.
    ready
        Extra readiness check ``ready(port) -> bool`` polled after the port opens (e.g. a PING).
    cwd
        Working directory; default: a fresh temporary directory removed on ``stop()``.

    Examples
    --------
    >>> import sys
    >>> code = (
    ...     "import socket, sys, time; s = socket.socket(); "
    ...     "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"
    ... )
    >>> with LocalServer("demo", lambda port: [sys.executable, "-c", code, str(port)]) as server:
    ...     port_is_open(server.port)
    True
    >>> server.running
    False
    """

    def __init__(
        self,
        name: str,
        command: Callable[[int], Sequence[str]],
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 15.0,
        stop_grace: float = 5.0,
        ready: Callable[[int], bool] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        if startup_timeout <= 0:
            raise ValueError(
                f"LocalServer({name!r}): startup_timeout must be positive, got {startup_timeout!r}"
            )
        self.name = name
        self._command = command
        self._fixed_port = port
        self._env = dict(env or {})
        self._startup_timeout = startup_timeout
        self._stop_grace = stop_grace
        self._ready = ready
        self._cwd = Path(cwd) if cwd is not None else None
        self._tmpdir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._port: int | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The TCP port the server listens on (only while running)."""
        if self._port is None:
            raise RuntimeError(f"{self.name}: not started; call start() or use it as a context manager")
        return self._port

    @property
    def host(self) -> str:
        """Always ``127.0.0.1``."""
        return LOOPBACK

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the server process while running."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def workdir(self) -> Path:
        """Working directory of the process (a temporary one unless ``cwd`` was given)."""
        if self._cwd is not None:
            return self._cwd
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix=f"streamlab-{self.name}-")
        return Path(self._tmpdir)

    def log_tail(self, n_bytes: int = 4000) -> str:
        """The last ``n_bytes`` of the server's combined stdout/stderr."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        data = self._log_path.read_bytes()[-n_bytes:]
        return data.decode("utf-8", "replace")

    def start(self: _S) -> _S:
        """Start the process and wait until its port accepts connections; return ``self``."""
        with self._lock:
            if self.running:
                return self
            attempts = 1 if self._fixed_port is not None else 3
            last_error: Exception | None = None
            for _ in range(attempts):
                port = self._fixed_port if self._fixed_port is not None else find_free_port()
                try:
                    self._launch(port)
                    return self
                except (ServerStartError, TimeoutError) as exc:
                    last_error = exc
                    self._terminate()
            message = f"{self.name} did not start: {last_error}\n--- log tail ---\n{self.log_tail()}"
            self._remove_tmpdir()  # the log tail is in the message; leave nothing behind
            raise ServerStartError(message) from last_error

    def _launch(self, port: int) -> None:
        argv = [str(a) for a in self._command(port)]
        workdir = self.workdir
        self._log_path = workdir / f"{self.name}.log"
        env = {**os.environ, **self._env}
        with open(self._log_path, "ab") as log:
            # A new session makes the server its own process group, so stop() can reach its
            # children without touching ours.
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        self._port = port
        wait_for_port(port, timeout=self._startup_timeout, process=self._process)
        if self._process.poll() is not None:
            # Someone else answered on the port while our process died binding it.
            raise ServerStartError(f"process exited with {self._process.returncode} right after start")
        if self._ready is not None:
            ready = self._ready
            wait_for(lambda: ready(port), timeout=self._startup_timeout, what=f"{self.name} to be ready")

    def _terminate(self) -> None:
        if self._process is not None:
            stop_process(self._process, grace=self._stop_grace)
        self._process = None
        self._port = None

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove the temporary directory. Idempotent."""
        with self._lock:
            self._terminate()
            self._remove_tmpdir()

    def _remove_tmpdir(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort so an abandoned object in a notebook does not leak a broker process.
        try:
            if self._process is not None and self._process.poll() is None:
                stop_process(self._process, grace=1.0)
        except Exception:
            pass

    def __repr__(self) -> str:
        state = f"running on {LOOPBACK}:{self._port} (pid {self.pid})" if self.running else "stopped"
        return f"LocalServer({self.name!r}, {state})"
