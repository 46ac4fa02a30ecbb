"""``RedisMetricsSink``: per-row metrics added to hashes and announced on a channel, one MULTI/EXEC a batch."""

from __future__ import annotations

import decimal
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from streamlab._secrets import redact_url, url_with_reference
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, SinkWriter, Upstream, missing_columns_problem
from streamlab.serde import dump_json, rows_to_json

from .._params import positive_seconds, whole_number
from ._client import (
    check_url,
    connect,
    escaped_rows,
    execute,
    log_escaped,
    parse_template,
    refused,
    render,
    template_columns,
)

log = logging.getLogger("streamlab.connectors.redis")


_NOT_NUMBERS = ("string", "category", "timestamp")  # declared types no increment adds


@dataclass(frozen=True, repr=False)
class RedisMetricsSink(Sink):
    """Add result rows to Redis hashes and announce each update on a pub/sub channel.

    For every row: the hash named by ``key_template`` gets each field incremented by the row's value
    (``HINCRBY`` for integer columns, ``HINCRBYFLOAT`` for float columns; missing values are skipped),
    then one ``PUBLISH`` on ``channel`` carries ``{"key": ..., "increments": {...}, "labels": {...}}``
    where labels are the template's columns. A row whose template column is missing goes to the key
    with ``None`` in its place (``metrics:None``), the name of a missing key in window results. A batch is one MULTI/EXEC round trip, so a dashboard
    never sees half a batch, and concurrent writers add up exactly. A key holding text that UTF-8
    cannot encode (a lone surrogate such as ``"\\ud800"``) is written with that character as the escape
    ``\\ud800``, the six characters the update message's JSON has for it; such rows are counted in the
    writer's ``escaped`` and logged as warnings (one failed the whole batch on every retry).

    Parameters
    ----------
    url
        ``redis://host:port/db``; a password in it (``redis://:pw@host``) may be a reference
        ``redis://:${REDIS_PASSWORD}@host`` resolved from the environment when connecting. ``spec``
        writes the password only as a reference (``${REDIS_PASSWORD}`` when a value was given);
        ``repr`` shows ``***``.
    key_template
        Hash key per row, with ``{column}`` placeholders filled with every sink's key text
        (:func:`streamlab.serde.key_texts`), the same in every batch: a float that is a whole number as
        that integer (``metrics:7`` whether the column is int64 or, having met a missing value, float64),
        a boolean ``true`` / ``false``, a time ISO-8601 UTC text; a missing value is ``None``.
    fields
        Columns to add: a list (hash field = column name) or a mapping hash field → column. Missing
        values add nothing; values Redis cannot add (integers beyond int64, infinities), increments
        that would take a hash's stored total past int64, and values of an object column that are not
        numbers are not added, are counted in the writer's ``unwritable`` and logged as warnings; the
        rest of the batch is written. The update message of a row whose increment overflowed still
        names it (it is published in the same transaction, before Redis answers). A column of text
        (not an object column) is refused as the wrong column (``TypeError``).
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
        check_url(owner, url)
        parts = parse_template(owner, "key_template", key_template)
        if isinstance(fields, str):
            raise ParameterError(
                owner,
                "fields",
                f"expected a list of columns or a mapping field -> column, got the text {fields!r}",
                f"pass a list, e.g. fields: [{fields}] (fields=[{fields!r}] in Python)",
            )
        mapping = (
            {str(k): str(v) for k, v in fields.items()}
            if isinstance(fields, Mapping)
            else {str(c): str(c) for c in fields}
        )
        if not mapping:
            raise ParameterError(
                owner,
                "fields",
                f"no metric column to add, got {fields!r}",
                "name at least one, e.g. fields: [count] (fields=['count'] in Python)",
            )
        if channel is not None and (not isinstance(channel, str) or not channel):
            raise ParameterError(
                owner,
                "channel",
                f"expected a channel name or None, got {channel!r}",
                "write a channel name such as channel: metrics, or null (None in Python) to not publish",
            )
        if ttl is not None and not whole_number(ttl, 1):
            raise ParameterError(
                owner,
                "ttl",
                f"expected seconds as a positive integer, or None, got {ttl!r}",
                "write a whole number of seconds such as ttl: 3600 (ttl=3600 in Python), or leave it out "
                "(None) for keys that do not expire",
            )
        set_ = object.__setattr__
        set_(self, "url", url)
        set_(self, "key_template", key_template)
        set_(self, "fields", mapping)
        set_(self, "channel", channel)
        set_(self, "ttl", ttl)
        set_(self, "timeout", positive_seconds(owner, "timeout", timeout, 10))
        set_(self, "_parts", parts)

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The metric and template columns the stream lacks, as ``(problem, fix)``, else None.

        Examples
        --------
        >>> sink = RedisMetricsSink("redis://127.0.0.1:6379/0", fields=["count"])
        >>> sink.columns_problem(["event_type", "count"], Upstream()) is None
        True
        >>> sink.columns_problem(["event_type", "n"], Upstream())[0]
        "RedisMetricsSink(fields=['count']) names column(s) ['count'] that the stream does not have (its columns: ['event_type', 'n']); the first write would fail"
        >>> sink.columns_problem(["event_type", "count"], Upstream(declared=(("count", "string"),)))[1]
        'name columns of numbers in fields=[...] (a count, a sum), or cast the column in a step before the sink'
        """
        return (
            missing_columns_problem(
                f"RedisMetricsSink(fields={list(self.fields.values())!r})",
                self.fields.values(),
                columns,
                "name metric columns of the stream in fields=[...] (or {hash_field: column})",
            )
            or missing_columns_problem(
                f"RedisMetricsSink(key_template={self.key_template!r})",
                template_columns(self.__dict__["_parts"]),
                columns,
                "use {column} placeholders naming columns of the stream",
            )
            or self._text_metrics_problem(dict(upstream.declared))
        )

    def _text_metrics_problem(self, declared: dict[str, str]) -> tuple[str, str] | None:
        """Metric columns declared upstream as a type no increment adds (text, a category, a time): the
        wrong column, which failed every batch (pandas 3's text) or was skipped value by value (pandas 2
        holds text as objects), found when the sink is added instead."""
        wrong = {c: declared[c] for c in self.fields.values() if declared.get(c) in _NOT_NUMBERS}
        if not wrong:
            return None
        return (
            f"RedisMetricsSink(fields={list(self.fields.values())!r}): column(s) {wrong} are not numbers "
            "(their types as declared upstream), and HINCRBY/HINCRBYFLOAT add numbers only",
            "name columns of numbers in fields=[...] (a count, a sum), or cast the column in a step before the sink",
        )

    def keys_for(self, batch: pd.DataFrame) -> np.ndarray:
        """The hash key of every row."""
        return render("RedisMetricsSink", self.__dict__["_parts"], batch)

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
        self.sink = sink
        self._client = connect(sink)
        self.updates = 0
        self.published = 0
        #: per metric column, the values no increment can add (beyond int64, infinite): logged, not added
        self.unwritable: dict[str, int] = {}
        #: rows whose key was written with a lone surrogate escaped (``\\ud800``), as UTF-8 cannot encode one
        self.escaped = 0

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
                if s.dtype.kind == "u" or str(s.dtype).startswith("UInt"):  # HINCRBY adds int64 only
                    raw = s.to_numpy(dtype="uint64", na_value=0)
                    too_big = present & (raw > np.uint64(np.iinfo(np.int64).max))
                    self._unwritable(column, int(too_big.sum()), "beyond int64, which HINCRBY adds")
                    present = present & ~too_big
                    values = np.where(too_big, 0, raw).astype("int64")
                else:
                    values = s.fillna(0).astype("int64").to_numpy()
                increments[hash_field] = (values, present, True)
            elif pd.api.types.is_float_dtype(s.dtype):
                values = s.to_numpy(dtype="float64", na_value=np.nan)
                infinite = np.isinf(values)
                self._unwritable(column, int(infinite.sum()), "infinite, which HINCRBYFLOAT refuses")
                increments[hash_field] = (values, np.isfinite(values), False)
            elif s.dtype == object:  # numbers as Python objects (a user function's), maybe among others
                increments[hash_field] = self._object_numbers(column, s)
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
        #: the metric column of each increment queued (None: an EXPIRE or PUBLISH), to judge its answer
        added: list[str | None] = []
        for i, key in enumerate(keys.tolist()):
            for hash_field, values, present, is_int in plain:
                if not present[i]:
                    continue
                if is_int:
                    pipe.hincrby(key, hash_field, values[i])
                else:
                    pipe.hincrbyfloat(key, hash_field, values[i])
                added.append(sink.fields[hash_field])
            if sink.ttl is not None:
                pipe.expire(key, sink.ttl)
                added.append(None)
            if messages is not None:
                pipe.publish(sink.channel, messages[i])
                added.append(None)
        escaped = escaped_rows(keys.tolist())
        answers = execute(sink, self._client, pipe, "HINCRBY/PUBLISH", raise_on_error=False)
        self._judge(answers, added)
        self.escaped += escaped
        log_escaped(sink, escaped, self.escaped)
        self.updates += len(keys)
        self.published += 0 if messages is None else len(messages)

    def _object_numbers(self, column: str, s: pd.Series) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(values, present, is_int)`` of an object column, value by value: integers (and bools) are
        added by HINCRBY when every number of the batch's column is one, else every number by
        HINCRBYFLOAT; values that are not numbers, integers beyond int64 and infinities are counted in
        ``unwritable`` and logged, not added: one such value failed the whole batch on every retry."""
        items = s.tolist()
        missing = s.isna().to_numpy()
        kinds = [
            "missing"
            if gone
            else "int"
            if isinstance(v, (int, np.integer))  # (bool and np.bool_ too)
            else "float"
            if isinstance(v, (numbers.Real, decimal.Decimal))
            else "other"
            for v, gone in zip(items, missing.tolist())
        ]
        is_int = "float" not in kinds
        limit = np.iinfo(np.int64)
        values: list[Any] = []
        present: list[bool] = []
        too_big = infinite = other = 0
        for v, kind in zip(items, kinds):
            ok = kind in ("int", "float")
            if kind == "other":
                other += 1
            elif ok and is_int and not limit.min <= int(v) <= limit.max:
                too_big, ok = too_big + 1, False
            elif ok and not is_int and not math.isfinite(float(v)):
                infinite, ok = infinite + 1, False
            present.append(ok)
            values.append((int(v) if is_int else float(v)) if ok else 0)
        self._unwritable(column, other, "not numbers (text or other objects), which no increment adds")
        self._unwritable(column, too_big, "beyond int64, which HINCRBY adds")
        self._unwritable(column, infinite, "infinite, which HINCRBYFLOAT refuses")
        array = np.array(values, dtype="int64" if is_int else "float64")
        return array, np.array(present, dtype=bool), is_int

    def _judge(self, answers: list[Any], added: list[str | None]) -> None:
        """Count increments Redis refused because the stored total would leave its range; raise for
        any other refusal. Redis applies the rest of a MULTI/EXEC whatever one command answers, so an
        overflow failing the batch would add its other rows again when the batch is written again."""
        overflow: dict[str, int] = {}
        for answer, column in zip(answers, added):
            if not isinstance(answer, Exception):
                continue
            text = str(answer)
            if column is not None and ("would overflow" in text or "NaN or Infinity" in text):
                overflow[column] = overflow.get(column, 0) + 1
                continue
            raise refused(self.sink, self._client, "HINCRBY/PUBLISH", answer) from answer
        for column, n in overflow.items():
            self._unwritable(
                column,
                n,
                "increments that would take the stored total beyond what Redis holds (int64 for HINCRBY); "
                "the hash keeps its total, the other rows are added",
                fix="delete or reset the hash field (HDEL key field) or scale the column in a step "
                "before the sink",
            )

    def _unwritable(
        self, column: str, n: int, why: str, fix: str = "cast or clip the column in a step before the sink"
    ) -> None:
        """Count and log ``n`` values of ``column`` no increment can add (nothing is skipped silently)."""
        if n:
            self.unwritable[column] = self.unwritable.get(column, 0) + n
            log.warning(
                "%r: %d value(s) of metric column %r are %s: not added (%d so far). Fix: %s",
                self.sink,
                n,
                column,
                why,
                self.unwritable[column],
                fix,
            )

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
