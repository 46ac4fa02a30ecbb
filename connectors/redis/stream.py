"""``RedisStreamSink``: rows appended to Redis streams with ``XADD``, one pipelined round trip a batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from streamlab._secrets import redact_url, url_with_reference
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, SinkWriter, Upstream, missing_columns_problem
from streamlab.serde import dump_json, json_column

from .._params import positive_seconds, whole_number
from ._client import (
    check_url,
    connect,
    escaped_rows,
    execute,
    log_escaped,
    parse_template,
    render,
    template_columns,
)


@dataclass(frozen=True, repr=False)
class RedisStreamSink(Sink):
    """Append every row to a Redis stream with ``XADD`` (one pipelined round trip per batch).

    String columns are stored as they are (UTF-8), every other value as JSON text (timestamps
    ISO-8601); missing values are left out of the entry. Text that UTF-8 cannot encode (a lone
    surrogate such as ``"\\ud800"``, which a user function can build) is stored with that character
    as the escape ``\\ud800``, the six characters JSON writes for it, in values and stream names alike;
    such rows are counted in the writer's ``escaped`` and logged as warnings (one failed the whole
    batch on every retry).

    Parameters
    ----------
    url
        ``redis://host:port/db``; a password in it (``redis://:pw@host``) may be a reference
        ``redis://:${REDIS_PASSWORD}@host`` resolved from the environment when connecting. ``spec``
        writes the password only as a reference (``${REDIS_PASSWORD}`` when a value was given);
        ``repr`` shows ``***``.
    stream
        Stream key, optionally with ``{column}`` placeholders (``"events:{event_type}"``), filled with
        every sink's key text (:func:`streamlab.serde.key_texts`), the same in every batch: a float that
        is a whole number as that integer (``events:7`` whether the column is int64 or, having met a
        missing value, float64), a boolean ``true`` / ``false``, a time ISO-8601 UTC text; a missing
        value is ``None`` there (``events:None``), the name of a missing key in window results.
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
        check_url(owner, url)
        parts = parse_template(owner, "stream", stream)
        if maxlen is not None and not whole_number(maxlen, 1):
            raise ParameterError(
                owner,
                "maxlen",
                f"expected a positive number of entries, or None, got {maxlen!r}",
                "write a number such as maxlen: 10000 (maxlen=10_000 in Python), or leave it out (None) "
                "for a stream without a length limit",
            )
        if isinstance(columns, str):
            raise ParameterError(
                owner,
                "columns",
                f"expected a list of columns, got the text {columns!r}",
                f"pass a list, e.g. columns: [{columns}] (columns=[{columns!r}] in Python)",
            )
        set_ = object.__setattr__
        set_(self, "url", url)
        set_(self, "stream", stream)
        set_(self, "columns", tuple(columns) if columns is not None else None)
        set_(self, "maxlen", maxlen)
        set_(self, "timeout", positive_seconds(owner, "timeout", timeout, 10))
        set_(self, "_parts", parts)

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The stream-name and stored columns the stream lacks, as ``(problem, fix)``, else None.

        Examples
        --------
        >>> sink = RedisStreamSink("redis://127.0.0.1:6379/0", "events:{kind}")
        >>> sink.columns_problem(["event_type"], Upstream())[1]
        'use {column} placeholders naming columns of the stream'
        """
        return missing_columns_problem(
            f"RedisStreamSink(stream={self.stream!r})",
            template_columns(self.__dict__["_parts"]),
            columns,
            "use {column} placeholders naming columns of the stream",
        ) or missing_columns_problem(
            f"RedisStreamSink(columns={list(self.columns or ())!r})",
            self.columns or (),
            columns,
            "name columns of the stream in columns=[...], or None for all",
        )

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
        self.sink = sink
        self._client = connect(sink)
        self.ids: list[bytes] = []
        #: rows written with a lone surrogate escaped (``\\ud800``), as UTF-8 cannot encode one
        self.escaped = 0

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
        streams = render("RedisStreamSink", sink.__dict__["_parts"], batch).tolist()
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
        escaped = escaped_rows(streams, *(v for c, v in encoded.items() if batch[c].dtype == object))
        pipe = self._client.pipeline(transaction=False)
        for i, stream in enumerate(streams):
            entry = {c: vals[i] for c, vals in encoded.items() if vals[i] is not None}
            if not entry:
                entry = {"_empty": ""}  # Redis refuses entries without fields
            pipe.xadd(stream, entry, maxlen=sink.maxlen, approximate=True)
        self.ids.extend(execute(sink, self._client, pipe, "XADD"))
        del self.ids[:-10_000]
        self.escaped += escaped
        log_escaped(sink, escaped, self.escaped)

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
