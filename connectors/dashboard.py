"""A websocket relay for live dashboards: Redis pub/sub messages to every connected websocket client.

:class:`~streamlab.connectors.redis.RedisMetricsSink` publishes one message per metric update, but a
browser cannot subscribe to Redis. :class:`RedisWebSocketRelay` subscribes once and forwards each
message, unchanged, to all websocket clients. It runs one asyncio loop in its own thread, started by
``start()`` and ended by ``stop()`` (or a ``with`` block), which leaves no thread or socket behind.
It needs redis-py and ``websockets``: ``pip install 'streamlab[redis]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from streamlab._secrets import redact_url
from streamlab.errors import ParameterError

from ._params import positive_seconds, whole_number

__all__ = ["RedisWebSocketRelay"]

log = logging.getLogger(__name__)


def _import_clients() -> tuple[Any, Any]:
    try:
        import redis.asyncio as redis_asyncio
        import websockets.asyncio.server as ws_server
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "RedisWebSocketRelay needs redis-py and websockets: pip install 'streamlab[redis]'"
        ) from exc
    return redis_asyncio, ws_server


def origin_allowed(origin: str | None, allowed: Sequence[str] = ()) -> bool:
    """Whether a websocket handshake with this ``Origin`` may read the relay: no origin (not a browser),
    a page of this machine (``localhost``, a loopback address such as ``127.0.0.1`` or ``[::1]``), or one of ``allowed`` (``"*"``:
    any).

    Examples
    --------
    >>> origin_allowed(None), origin_allowed("http://localhost:8888"), origin_allowed("https://evil.example")
    (True, True, False)
    >>> origin_allowed("https://dash.example.com", ["https://dash.example.com"])
    True
    >>> origin_allowed("http://localhost.evil.example"), origin_allowed("null"), origin_allowed("http://[::1]:80")
    (False, False, True)
    """
    if origin is None or "*" in allowed or origin.rstrip("/") in allowed:
        return True
    try:
        parts = urlsplit(origin)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: another machine's, as far as the relay knows
        return False


class RedisWebSocketRelay:
    """Forward messages from Redis pub/sub channels to every connected websocket client.

    Each pub/sub message becomes one text frame (UTF-8 payloads as they are, other bytes replaced),
    sent to all clients connected at that moment, in the order Redis delivered them. ``start()``
    returns only once the subscription is confirmed and the port listens, so nothing published
    afterwards is missed. A client whose unsent data exceeds ``max_client_buffer`` bytes (a stalled
    browser tab) is skipped for that message instead of growing the relay's memory; ``skipped``
    counts those. If the Redis connection is lost, the relay disconnects every client (so dashboards
    reconnect and reload the totals), ``running`` turns False and ``error`` holds the reason; call
    ``start()`` again once Redis is back.

    Parameters
    ----------
    redis_url
        ``redis://host:port/db``.
    channels
        Channel name or names to subscribe to (``RedisMetricsSink``'s ``channel``).
    host
        Interface the websocket server listens on; loopback by default.
    port
        TCP port; 0 (default) picks a free one, see :attr:`port` after ``start()``.
    max_client_buffer
        Bytes a client may have waiting to be sent before further messages skip it.
    startup_timeout
        Seconds ``start()`` waits for Redis and the listening socket.
    allowed_origins
        Web origins (``"https://dash.example.com"``) whose pages may connect, beside pages served from
        this machine (``http(s)://localhost``, ``127.0.0.1`` or ``[::1]``, any port) and clients that
        are not browsers (they send no ``Origin``). Browsers let any page open a websocket to
        ``127.0.0.1``, so without this check a site visited while the relay runs could read the
        metrics; another page gets HTTP 403. ``"*"`` allows every origin (a relay reached only
        through your own proxy); ``"null"`` allows pages opened from files.

    Examples
    --------
    >>> relay = RedisWebSocketRelay("redis://127.0.0.1:6379/0", channels=["metrics"])
    >>> relay
    RedisWebSocketRelay(redis_url='redis://127.0.0.1:6379/0', channels=['metrics'], stopped)
    >>> RedisWebSocketRelay("127.0.0.1:6379")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: RedisWebSocketRelay(redis_url=...): expected a Redis URL, got '127.0.0.1:6379'. Fix: write a URL such as 'redis://127.0.0.1:6379/0' (rediss:// for TLS, unix:///path.sock for a socket)
    >>> with RedisWebSocketRelay("redis://127.0.0.1:6379/0") as relay:  # doctest: +SKIP
    ...     print(relay.url)  # connect a browser or websockets.sync.client.connect(relay.url)
    ws://127.0.0.1:...
    """

    def __init__(
        self,
        redis_url: str,
        channels: str | Sequence[str] = "metrics",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_client_buffer: int = 1_000_000,
        startup_timeout: float = 10.0,
        allowed_origins: Sequence[str] = (),
    ) -> None:
        owner = "RedisWebSocketRelay"
        if not isinstance(redis_url, str) or not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ParameterError(
                owner,
                "redis_url",
                f"expected a Redis URL, got {redact_url(redis_url) if isinstance(redis_url, str) else redis_url!r}",
                "write a URL such as 'redis://127.0.0.1:6379/0' (rediss:// for TLS, unix:///path.sock for a "
                "socket)",
            )
        names = [channels] if isinstance(channels, str) else list(channels)
        if not names or not all(isinstance(c, str) and c for c in names):
            raise ParameterError(
                owner,
                "channels",
                f"expected one channel name or a non-empty list of names, got {channels!r}",
                "give a channel name, e.g. channels='metrics' (the channel of RedisMetricsSink), or a list",
            )
        if not whole_number(port, 0, 65535):
            raise ParameterError(
                owner,
                "port",
                f"expected a port number from 0 to 65535, got {port!r}",
                "use 0 for a free port, or a port number up to 65535",
            )
        if not whole_number(max_client_buffer, 0):
            raise ParameterError(
                owner,
                "max_client_buffer",
                f"expected a number of bytes (0 or more), got {max_client_buffer!r}",
                "pass a whole number of bytes, e.g. max_client_buffer=1_000_000",
            )
        startup_timeout = positive_seconds(owner, "startup_timeout", startup_timeout, 10)
        origins = [allowed_origins] if isinstance(allowed_origins, str) else list(allowed_origins)
        if not all(isinstance(o, str) and o for o in origins):
            raise ParameterError(
                owner,
                "allowed_origins",
                f"expected a list of web origins, got {allowed_origins!r}",
                "write origins as a browser sends them, e.g. allowed_origins=['https://dash.example.com'] "
                "(scheme, host and port if not the default; no path)",
            )
        self.allowed_origins: tuple[str, ...] = tuple(o.rstrip("/") for o in origins)
        #: Browser connections refused for their origin.
        self.refused = 0
        self.redis_url = redis_url
        self.channels: tuple[str, ...] = tuple(names)
        self.host = host
        self._wanted_port = port
        self.max_client_buffer = max_client_buffer
        self.startup_timeout = float(startup_timeout)
        #: Messages received from Redis.
        self.forwarded = 0
        #: Frames handed to clients (messages x clients).
        self.sent = 0
        #: Frames not sent because the client's buffer was full.
        self.skipped = 0
        #: The error that ended forwarding (lost Redis connection), if any.
        self.error: BaseException | None = None
        self._port: int | None = None
        self._clients: set[Any] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._lock = threading.Lock()

    # -- properties ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The websocket port (after ``start()``)."""
        if self._port is None:
            raise RuntimeError("RedisWebSocketRelay: not started; call start() or use it in a with block")
        return self._port

    @property
    def url(self) -> str:
        """``ws://host:port`` for clients."""
        return f"ws://{self.host}:{self.port}"

    @property
    def clients(self) -> int:
        """Websocket clients connected now."""
        return len(self._clients)

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> RedisWebSocketRelay:
        """Subscribe, start listening, and return ``self`` once both are ready.

        Raises
        ------
        ImportError
            When redis-py or websockets is missing (names the extra).
        OSError, redis.ConnectionError, TimeoutError
            When Redis cannot be reached or the port cannot be bound.
        """
        with self._lock:
            if self.running:
                return self
            redis_asyncio, ws_server = _import_clients()
            ready = threading.Event()
            failure: list[BaseException] = []
            self.error = None
            loop = asyncio.new_event_loop()
            self._loop = loop
            thread = threading.Thread(
                target=self._run,
                args=(loop, redis_asyncio, ws_server, ready, failure),
                name="streamlab-websocket-relay",
                daemon=True,
            )
            self._thread = thread
            thread.start()
            if not ready.wait(self.startup_timeout):
                self._request_stop()
                thread.join(5)
                self._thread = None
                raise TimeoutError(
                    f"{self!r}: not ready after {self.startup_timeout:g}s (is Redis at {self.redis_url} up?)"
                )
            if failure:
                thread.join(5)
                self._thread = None
                raise failure[0]
            return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every client connection, unsubscribe, and end the thread. Idempotent."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._request_stop()
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"{self!r}: the relay thread did not end within {timeout:g}s")
            self._thread = None
            self._port = None

    def _request_stop(self) -> None:
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            # The loop may close between the check and the call; then there is nothing to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def __enter__(self) -> RedisWebSocketRelay:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the loop (relay thread) ------------------------------------------------------------------------
    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        redis_asyncio: Any,
        ws_server: Any,
        ready: threading.Event,
        failure: list[BaseException],
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(redis_asyncio, ws_server, ready, failure))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(
        self, redis_asyncio: Any, ws_server: Any, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        self._stop_event = asyncio.Event()
        client = redis_asyncio.Redis.from_url(self.redis_url)
        pubsub = client.pubsub()
        server = None
        try:
            await pubsub.subscribe(*self.channels)
            confirmed: set[str] = set()
            while confirmed != set(self.channels):
                # Wait for Redis to confirm each SUBSCRIBE: a publish after start() is then delivered.
                msg = await pubsub.get_message(timeout=self.startup_timeout)
                if msg is None:
                    raise TimeoutError(f"{self!r}: Redis did not confirm the subscription")
                if msg["type"] == "subscribe":
                    name = msg["channel"]
                    confirmed.add(name.decode() if isinstance(name, bytes) else str(name))
            server = await ws_server.serve(
                self._handle, self.host, self._wanted_port, process_request=self._check_origin
            )
            self._port = int(server.sockets[0].getsockname()[1])
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            await self._close(server, pubsub, client)
            return
        ready.set()
        forward = asyncio.create_task(self._forward(pubsub, ws_server.broadcast))
        stop = asyncio.create_task(self._stop_event.wait())
        await asyncio.wait({forward, stop}, return_when=asyncio.FIRST_COMPLETED)
        forward.cancel()
        stop.cancel()
        await asyncio.gather(forward, stop, return_exceptions=True)
        await self._close(server, pubsub, client)

    async def _close(self, server: Any, pubsub: Any, client: Any) -> None:
        if server is not None:
            server.close()  # closes client connections with 1001 (going away)
            await server.wait_closed()
        for closer in (pubsub.aclose, client.aclose):
            try:
                await closer()
            except Exception:  # a dead Redis must not keep the relay from stopping
                log.debug("closing the Redis connection failed", exc_info=True)

    async def _forward(self, pubsub: Any, broadcast: Any) -> None:
        try:
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                data = message["data"]
                text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                self.forwarded += 1
                targets = []
                for conn in list(self._clients):
                    transport = getattr(conn, "transport", None)
                    backlog = transport.get_write_buffer_size() if transport is not None else 0
                    if backlog > self.max_client_buffer:
                        self.skipped += 1
                    else:
                        targets.append(conn)
                if targets:
                    broadcast(targets, text)
                    self.sent += len(targets)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            log.error("%r: forwarding stopped: %s", self, exc)

    def _check_origin(self, connection: Any, request: Any) -> Any:
        """Refuse (HTTP 403) a browser page whose origin :func:`origin_allowed` does not allow."""
        origin = request.headers.get("Origin")
        if origin_allowed(origin, self.allowed_origins):
            return None
        self.refused += 1
        log.warning("%r: refused a websocket from a page of %s (not in allowed_origins)", self, origin)
        return connection.respond(
            403,
            f"origin {origin} may not read this relay: add it to RedisWebSocketRelay(allowed_origins=[...])\n",
        )

    async def _handle(self, connection: Any) -> None:
        self._clients.add(connection)
        try:
            # Clients only listen; anything they send is read and ignored so pings keep working.
            async for _ in connection:
                pass
        except Exception:
            pass
        finally:
            self._clients.discard(connection)

    def __repr__(self) -> str:
        state = f"running on {self.url}, clients={self.clients}" if self.running else "stopped"
        return f"RedisWebSocketRelay(redis_url={self.redis_url!r}, channels={list(self.channels)!r}, {state})"
