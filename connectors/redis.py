"""Redis sinks for live dashboards (the local redis-server is ``streamlab.local.LocalRedis``).

``RedisMetricsSink`` adds each result row's metrics to a hash (``HINCRBY``/``HINCRBYFLOAT``) and
announces every update on a pub/sub channel, all in one MULTI/EXEC round trip per batch, so a
dashboard server can subscribe to the channel and read totals with ``HGETALL``. ``RedisStreamSink``
appends rows to a Redis stream (``XADD``). ``redis`` (redis-py) is imported when a sink is opened:
``pip install 'streamlab[redis]'``.
"""

from __future__ import annotations

import shutil  # noqa: F401  (tests patch shutil.which through this module's name)
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from streamlab._secrets import redact_url, resolve, url_with_reference
from streamlab.clock import Clock
from streamlab.io import Sink, SinkWriter
from streamlab.local.redis import LocalRedis
from streamlab.serde import dump_json, json_column, rows_to_json

__all__ = ["LocalRedis", "RedisMetricsSink", "RedisMetricsWriter", "RedisStreamSink", "RedisStreamWriter"]


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("Redis sinks need redis-py: pip install 'streamlab[redis]'") from exc
    return redis


def _check_timeout(owner: str, timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{owner}(timeout={timeout!r}): a positive number of seconds")
    return float(timeout)


def _execute(sink: Any, client: Any, pipe: Any, what: str) -> Any:
    """Run a pipeline; a server that does not answer within the sink's timeout is an error naming it."""
    redis = _import_redis()
    try:
        return pipe.execute()
    except (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError) as exc:
        kw = client.connection_pool.connection_kwargs
        where = (
            kw.get("path") or f"{kw.get('host')}:{kw.get('port')}"
        )  # never the URL: it may hold a password
        raise RuntimeError(
            f"{type(sink).__name__}: Redis at {where} did not complete {what} within {sink.timeout:g} s "
            f"(timeout): {exc}. Is the server running and reachable?"
        ) from exc


def _check_url(owner: str, url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"{owner}(url={redact_url(url) if isinstance(url, str) else url!r}): expected a Redis URL such as 'redis://127.0.0.1:6379/0' "
            "(rediss:// for TLS, unix:///path.sock for a socket)"
        )
    return url


def _parse_template(owner: str, what: str, template: str) -> tuple[tuple[str, str | None], ...]:
    """Split ``"metrics:{event_type}"`` into ``(literal, column)`` pairs; only plain ``{column}`` fields."""
    if not isinstance(template, str) or not template:
        raise ValueError(
            f"{owner}({what}={template!r}): give a non-empty template such as 'metrics:{{event_type}}'"
        )
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"{owner}({what}={template!r}): {exc}; write literal braces as '{{{{' and '}}}}'"
        ) from exc
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conv in parts:
        if name is not None and (not name or spec or conv):
            raise ValueError(
                f"{owner}({what}={template!r}): fields must be plain column names like {{event_type}}; "
                "format the column in a step before the sink instead"
            )
        out.append((literal, name))
    return tuple(out)


def _render(owner: str, parts: tuple[tuple[str, str | None], ...], batch: pd.DataFrame) -> np.ndarray:
    """The template filled in for every row, column by column."""
    missing = [c for _, c in parts if c is not None and c not in batch.columns]
    if missing:
        raise KeyError(
            f"{owner}: the template needs column(s) {missing}; the batch has {list(batch.columns)}"
        )
    out = np.full(len(batch), "", dtype=object)
    for literal, column in parts:
        if literal:
            out = out + literal
        if column is not None:
            out = out + batch[column].astype(str).to_numpy(dtype=object)
    return out


@dataclass(frozen=True, repr=False)
class RedisMetricsSink(Sink):
    """Add result rows to Redis hashes and announce each update on a pub/sub channel.

    For every row: the hash named by ``key_template`` gets each field incremented by the row's value
    (``HINCRBY`` for integer columns, ``HINCRBYFLOAT`` for float columns; missing values are skipped),
    then one ``PUBLISH`` on ``channel`` carries ``{"key": ..., "increments": {...}, "labels": {...}}``
    where labels are the template's columns. A batch is one MULTI/EXEC round trip, so a dashboard
    never sees half a batch, and concurrent writers add up exactly.

    Parameters
    ----------
    url
        ``redis://host:port/db``; a password in it (``redis://:pw@host``) may be a reference
        ``redis://:${REDIS_PASSWORD}@host`` resolved from the environment when connecting. ``spec``
        writes the password only as a reference (``${REDIS_PASSWORD}`` when a value was given);
        ``repr`` shows ``***``.
    key_template
        Hash key per row, with ``{column}`` placeholders.
    fields
        Columns to add: a list (hash field = column name) or a mapping hash field → column.
    channel
        Pub/sub channel for update messages; None to not publish.
    ttl
        Seconds after the last update until a hash expires; None keeps it.
    timeout
        Seconds to connect and to wait for each answer (redis-py waits forever by default); a server
        that does not answer in time fails the write with an error naming it.

    Examples
    --------
    >>> sink = RedisMetricsSink("redis://127.0.0.1:6379/0", fields=["count", "revenue"])
    >>> sink
    RedisMetricsSink(url='redis://127.0.0.1:6379/0', key_template='metrics:{event_type}', fields=['count', 'revenue'], channel='metrics')
    >>> sink.keys_for(pd.DataFrame({"event_type": ["click", "buy"]})).tolist()
    ['metrics:click', 'metrics:buy']
    >>> writer = sink.open()  # doctest: +SKIP
    """

    url: str
    key_template: str = "metrics:{event_type}"
    fields: Mapping[str, str] = field(default_factory=lambda: {"count": "count"})
    channel: str | None = "metrics"
    ttl: int | None = None
    timeout: float = 10.0

    def __init__(
        self,
        url: str,
        *,
        key_template: str = "metrics:{event_type}",
        fields: Sequence[str] | Mapping[str, str] = ("count",),
        channel: str | None = "metrics",
        ttl: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        owner = "RedisMetricsSink"
        _check_url(owner, url)
        parts = _parse_template(owner, "key_template", key_template)
        if isinstance(fields, str):
            raise ValueError(f"{owner}(fields={fields!r}): pass a list of columns, e.g. fields=[{fields!r}]")
        mapping = (
            {str(k): str(v) for k, v in fields.items()}
            if isinstance(fields, Mapping)
            else {str(c): str(c) for c in fields}
        )
        if not mapping:
            raise ValueError(
                f"{owner}(fields=...): name at least one metric column to add, e.g. fields=['count']"
            )
        if channel is not None and (not isinstance(channel, str) or not channel):
            raise ValueError(f"{owner}(channel={channel!r}): a channel name, or None to not publish")
        if ttl is not None and (not isinstance(ttl, int) or ttl <= 0):
            raise ValueError(f"{owner}(ttl={ttl!r}): seconds as a positive integer, or None")
        set_ = object.__setattr__
        set_(self, "url", url)
        set_(self, "key_template", key_template)
        set_(self, "fields", mapping)
        set_(self, "channel", channel)
        set_(self, "ttl", ttl)
        set_(self, "timeout", _check_timeout(owner, timeout))
        set_(self, "_parts", parts)

    def keys_for(self, batch: pd.DataFrame) -> np.ndarray:
        """The hash key of every row."""
        return _render("RedisMetricsSink", self.__dict__["_parts"], batch)

    def open(self, clock: Clock | None = None) -> RedisMetricsWriter:
        """Connect (lazily, on the first batch)."""
        return RedisMetricsWriter(self)

    def spec(self) -> dict[str, Any]:
        """YAML-ready description."""
        return {
            "kind": "redis_metrics",
            "url": url_with_reference(self.url, "REDIS_PASSWORD"),
            "key_template": self.key_template,
            "fields": dict(self.fields),
            "channel": self.channel,
            "ttl": self.ttl,
            "timeout": self.timeout,
        }

    def __repr__(self) -> str:
        shown: Any = list(self.fields) if all(k == v for k, v in self.fields.items()) else dict(self.fields)
        return (
            f"RedisMetricsSink(url={redact_url(self.url)!r}, key_template={self.key_template!r}, fields={shown!r}, "
            f"channel={self.channel!r})"
        )


class RedisMetricsWriter(SinkWriter):
    """Open connection of a :class:`RedisMetricsSink`; each ``write_batch`` is applied before it returns.

    Examples
    --------
    >>> writer = RedisMetricsSink("redis://127.0.0.1:6379/0").open()  # connects on first use
    >>> writer.write_batch(pd.DataFrame({"event_type": ["click"], "count": [1]}))  # doctest: +SKIP
    >>> writer.updates
    0
    >>> writer.close()
    """

    def __init__(self, sink: RedisMetricsSink) -> None:
        redis = _import_redis()
        self.sink = sink
        self._client = redis.Redis.from_url(
            resolve(sink.url, f"{type(sink).__name__} url"),
            socket_timeout=sink.timeout,
            socket_connect_timeout=sink.timeout,
        )
        self.updates = 0
        self.published = 0

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Increment and publish every row in one MULTI/EXEC round trip."""
        if len(batch) == 0:
            return
        sink = self.sink
        missing = [c for c in sink.fields.values() if c not in batch.columns]
        if missing:
            raise KeyError(
                f"{sink!r}: metric column(s) {missing} are not in the batch; it has {list(batch.columns)}"
            )
        keys = sink.keys_for(batch)
        increments: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
        for hash_field, column in sink.fields.items():
            s = batch[column]
            if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype):
                present = s.notna().to_numpy()
                values = s.fillna(0).astype("int64").to_numpy()
                increments[hash_field] = (values, present, True)
            elif pd.api.types.is_float_dtype(s.dtype):
                values = s.to_numpy(dtype="float64", na_value=np.nan)
                increments[hash_field] = (values, np.isfinite(values), False)
            else:
                raise TypeError(
                    f"{sink!r}: metric column {column!r} holds {s.dtype} values; HINCRBY needs numbers. "
                    "Cast it in a step before the sink"
                )
        messages: list[bytes] | None = None
        if sink.channel is not None:
            messages = self._messages(batch, keys, increments)
        # Plain Python lists: indexing them per row is far cheaper than numpy scalar access.
        plain = [(f, v.tolist(), p.tolist(), is_int) for f, (v, p, is_int) in increments.items()]
        pipe = self._client.pipeline(transaction=True)
        for i, key in enumerate(keys.tolist()):
            for hash_field, values, present, is_int in plain:
                if not present[i]:
                    continue
                if is_int:
                    pipe.hincrby(key, hash_field, values[i])
                else:
                    pipe.hincrbyfloat(key, hash_field, values[i])
            if sink.ttl is not None:
                pipe.expire(key, sink.ttl)
            if messages is not None:
                pipe.publish(sink.channel, messages[i])
        _execute(sink, self._client, pipe, "HINCRBY/PUBLISH")
        self.updates += len(keys)
        self.published += 0 if messages is None else len(messages)

    def _messages(
        self,
        batch: pd.DataFrame,
        keys: np.ndarray,
        increments: Mapping[str, tuple[np.ndarray, np.ndarray, bool]],
    ) -> list[bytes]:
        cols: dict[str, Any] = {}
        for f, (values, present, is_int) in increments.items():
            if is_int:
                cols[f] = pd.arrays.IntegerArray(values.astype("int64"), mask=~present)
            else:
                cols[f] = np.where(present, values, np.nan)
        inc_frame = pd.DataFrame(cols)
        inc_text = _object_json(inc_frame)
        labels = [c for _, c in self.sink.__dict__["_parts"] if c is not None]
        label_text = _object_json(batch[list(dict.fromkeys(labels))].reset_index(drop=True))
        key_text = np.array([dump_json(k) for k in keys.tolist()], dtype=object)
        out = '{"key":' + key_text + ',"increments":' + inc_text + ',"labels":' + label_text + "}"
        return [m.encode("utf-8") for m in out.tolist()]

    def flush(self) -> None:
        """Nothing buffered: each batch was applied by ``write_batch``."""

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisMetricsWriter({self.sink!r}, updates={self.updates})"


def _object_json(frame: pd.DataFrame) -> np.ndarray:
    """One JSON object per row of ``frame`` (as str), built column by column."""
    return np.array(rows_to_json(frame), dtype=object)


@dataclass(frozen=True, repr=False)
class RedisStreamSink(Sink):
    """Append every row to a Redis stream with ``XADD`` (one pipelined round trip per batch).

    String columns are stored as they are, every other value as JSON text (timestamps ISO-8601);
    missing values are left out of the entry.

    Parameters
    ----------
    url
        ``redis://host:port/db``; a password in it (``redis://:pw@host``) may be a reference
        ``redis://:${REDIS_PASSWORD}@host`` resolved from the environment when connecting. ``spec``
        writes the password only as a reference (``${REDIS_PASSWORD}`` when a value was given);
        ``repr`` shows ``***``.
    stream
        Stream key, optionally with ``{column}`` placeholders (``"events:{event_type}"``).
    columns
        Columns to store; default: all.
    maxlen
        Trim the stream to about this many entries (``MAXLEN ~``); None keeps everything.
    timeout
        Seconds to connect and to wait for each answer (redis-py waits forever by default); a server
        that does not answer in time fails the write with an error naming it.

    Examples
    --------
    >>> RedisStreamSink("redis://127.0.0.1:6379/0", "alerts", maxlen=10_000)
    RedisStreamSink(url='redis://127.0.0.1:6379/0', stream='alerts', maxlen=10000)
    """

    url: str
    stream: str
    columns: tuple[str, ...] | None = None
    maxlen: int | None = None
    timeout: float = 10.0

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        columns: Sequence[str] | None = None,
        maxlen: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        owner = "RedisStreamSink"
        _check_url(owner, url)
        parts = _parse_template(owner, "stream", stream)
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen <= 0):
            raise ValueError(f"{owner}(maxlen={maxlen!r}): a positive number of entries, or None")
        if isinstance(columns, str):
            raise ValueError(f"{owner}(columns={columns!r}): pass a list, e.g. columns=[{columns!r}]")
        set_ = object.__setattr__
        set_(self, "url", url)
        set_(self, "stream", stream)
        set_(self, "columns", tuple(columns) if columns is not None else None)
        set_(self, "maxlen", maxlen)
        set_(self, "timeout", _check_timeout(owner, timeout))
        set_(self, "_parts", parts)

    def open(self, clock: Clock | None = None) -> RedisStreamWriter:
        """Connect."""
        return RedisStreamWriter(self)

    def spec(self) -> dict[str, Any]:
        """YAML-ready description."""
        return {
            "kind": "redis_stream",
            "url": url_with_reference(self.url, "REDIS_PASSWORD"),
            "stream": self.stream,
            "columns": list(self.columns) if self.columns else None,
            "maxlen": self.maxlen,
            "timeout": self.timeout,
        }

    def __repr__(self) -> str:
        return (
            f"RedisStreamSink(url={redact_url(self.url)!r}, stream={self.stream!r}, maxlen={self.maxlen!r})"
        )


class RedisStreamWriter(SinkWriter):
    """Open connection of a :class:`RedisStreamSink`.

    Examples
    --------
    >>> writer = RedisStreamSink("redis://127.0.0.1:6379/0", "alerts").open()  # connects on first use
    >>> writer.write_batch(pd.DataFrame({"user_id": ["u1"]}))  # doctest: +SKIP
    >>> writer.ids
    []
    >>> writer.close()
    """

    def __init__(self, sink: RedisStreamSink) -> None:
        redis = _import_redis()
        self.sink = sink
        self._client = redis.Redis.from_url(
            resolve(sink.url, f"{type(sink).__name__} url"),
            socket_timeout=sink.timeout,
            socket_connect_timeout=sink.timeout,
        )
        self.ids: list[bytes] = []

    def write_batch(self, batch: pd.DataFrame) -> None:
        """XADD every row (pipelined); the entry ids are kept in ``ids`` (last 10,000)."""
        if len(batch) == 0:
            return
        sink = self.sink
        cols = list(sink.columns) if sink.columns else [str(c) for c in batch.columns]
        missing = [c for c in cols if c not in batch.columns]
        if missing:
            raise KeyError(
                f"{sink!r}: column(s) {missing} are not in the batch; it has {list(batch.columns)}"
            )
        streams = _render("RedisStreamSink", sink.__dict__["_parts"], batch).tolist()
        encoded: dict[str, list[Any]] = {}
        for c in cols:
            s = batch[c]
            if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
                # Text stays as it is (no JSON quotes); anything else in the column becomes JSON.
                encoded[c] = [
                    v if isinstance(v, str) else (None if dump_json(v) == "null" else dump_json(v))
                    for v in s.tolist()
                ]
            else:
                text = json_column(s)
                encoded[c] = [None if t == "null" else t for t in text.tolist()]
        pipe = self._client.pipeline(transaction=False)
        for i, stream in enumerate(streams):
            entry = {c: vals[i] for c, vals in encoded.items() if vals[i] is not None}
            if not entry:
                entry = {"_empty": ""}  # Redis refuses entries without fields
            pipe.xadd(stream, entry, maxlen=sink.maxlen, approximate=True)
        self.ids.extend(_execute(sink, self._client, pipe, "XADD"))
        del self.ids[:-10_000]

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
