"""``KinesisSink``: rows as JSON records with ``PutRecords``, retrying only the records that failed."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from streamlab._dead_letter import fit_payload
from streamlab._time import Duration, format_duration
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, SinkWriter, Upstream, default_clock, missing_columns_problem, publish_now
from streamlab.serde import encode_rows, key_texts

from .._params import (
    check_endpoint_url,
    check_region,
    duration_ns,
    positive_seconds,
    sink_or_none,
    whole_number,
)
from ..aws import aws_client, bounded
from ._client import WRITE_ATTEMPTS

# Kinesis limits: 500 records and 5 MiB per PutRecords call, 1 MiB per record (data + key).
log = logging.getLogger("streamlab")
_PUT_MAX_RECORDS = 500
_PUT_MAX_BYTES = 5 * 1024 * 1024
_RECORD_MAX_BYTES = 1024 * 1024
_KEY_MAX_CHARS = 256
REASON_COLUMN = "reject_reason"


class KinesisSink(Sink):
    """Write rows as JSON records with ``PutRecords``, retrying only the records that failed.

    Parameters
    ----------
    stream
        Stream name.
    partition_key
        Column whose values (as text, 1..256 characters) are the partition keys, encoded as every
        sink's keys (:func:`streamlab.serde.key_texts`): a float that is a whole number as that integer
        (``7.0`` as ``"7"``, the key of the integer ``7``: pandas makes an integer column float64 once it
        meets a missing value), a boolean as ``true`` / ``false``, a time as ISO-8601 UTC text. A row
        whose key is missing, empty, longer than 256 characters or not UTF-8 text (a lone surrogate such as
        ``"\\ud800"``) cannot be put: Kinesis refuses the whole ``PutRecords`` call, so it would fail
        the batch on every retry. Such a row goes to ``dead_letter``; without one, ``write_batch``
        raises before any row of the batch is sent.
    endpoint_url
        Endpoint of a local stand-in; ``None`` for AWS.
    region
        AWS region.
    max_attempts
        Attempts per record (the first try included) before ``flush()`` raises.
    backoff, max_backoff
        Wait before the first retry, doubling up to ``max_backoff`` (on the injected clock).
    timeout
        Seconds each ``PutRecords`` call may wait for a connection and for its answer; a stalled or
        unreachable endpoint fails ``flush()`` after botocore's 3 attempts with an error naming it.
    dead_letter
        Sink receiving the rows that cannot be put (their partition key), each with a ``reject_reason``
        column, on ``flush()``; the other rows are written. ``None``: such a row fails ``write_batch``.

    Examples
    --------
    >>> sink = KinesisSink("alerts", partition_key="user_id", max_attempts=3)
    >>> sink.spec()["partition_key"]
    'user_id'
    """

    def __init__(
        self,
        stream: str,
        *,
        partition_key: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        max_attempts: int = 5,
        backoff: Duration = "100ms",
        max_backoff: Duration = "5s",
        timeout: float = 10.0,
        dead_letter: Sink | None = None,
    ) -> None:
        where = type(self).__name__
        if not isinstance(stream, str) or not stream:
            raise ParameterError(
                where,
                "stream",
                f"expected a stream name (a non-empty text), got {stream!r}",
                "write the Kinesis stream's name, e.g. stream: events (KinesisSink('events', ...) in Python)",
            )
        if not isinstance(partition_key, str) or not partition_key:
            raise ParameterError(
                where,
                "partition_key",
                f"expected a column name for stream {stream!r}, got {partition_key!r}",
                "name the column whose values become partition keys, e.g. partition_key: user_id "
                "(partition_key='user_id' in Python)",
            )
        if not whole_number(max_attempts, 1):
            raise ParameterError(
                where,
                "max_attempts",
                f"expected a positive integer for stream {stream!r}, got {max_attempts!r}",
                "write a whole number such as max_attempts: 5 (max_attempts=5 in Python)",
            )
        self.stream = stream
        self.partition_key = partition_key
        self.endpoint_url = check_endpoint_url(where, endpoint_url)
        self.region = check_region(where, region)
        self.max_attempts = max_attempts
        self.backoff_ns = duration_ns(where, "backoff", backoff)
        self.max_backoff_ns = duration_ns(where, "max_backoff", max_backoff)
        if self.backoff_ns > self.max_backoff_ns:  # the first wait was backoff, every later one max_backoff
            raise ParameterError(
                where,
                "backoff",
                f"{backoff!r} is longer than max_backoff {max_backoff!r} (stream {stream!r}): the waits "
                "between retries would shrink after the first instead of growing up to max_backoff",
                "make backoff at most max_backoff, e.g. backoff: 100ms with max_backoff: 5s "
                "(backoff='100ms', max_backoff='5s' in Python)",
            )
        self.timeout = positive_seconds(where, "timeout", timeout, 10, about=f"stream {stream!r}")
        self.dead_letter = sink_or_none(where, "dead_letter", dead_letter, about=f"stream {stream!r}")

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The ``partition_key`` column, when the stream lacks it (the first write failed on it).

        Examples
        --------
        >>> KinesisSink("s", partition_key="user").columns_problem(["user_id"], Upstream())[0]
        "KinesisSink('s', partition_key='user') names column(s) ['user'] that the stream does not have (its columns: ['user_id']); the first write would fail"
        """
        return missing_columns_problem(
            repr(self), [self.partition_key], columns, "name the column whose values become partition keys"
        )

    def open(self, clock: Clock | None = None) -> _KinesisWriter:
        """Create the client."""
        return _KinesisWriter(self, default_clock(clock))

    def spec(self) -> dict[str, Any]:
        """YAML-ready description.

        Examples
        --------
        >>> KinesisSink("s", partition_key="k").spec()["kind"]
        'kinesis'
        """
        return {
            "kind": "kinesis",
            "stream": self.stream,
            "partition_key": self.partition_key,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "max_attempts": self.max_attempts,
            "backoff": format_duration(self.backoff_ns),
            "max_backoff": format_duration(self.max_backoff_ns),
            "timeout": self.timeout,
            "dead_letter": None if self.dead_letter is None else self.dead_letter.spec(),
        }

    def __repr__(self) -> str:
        return f"KinesisSink({self.stream!r}, partition_key={self.partition_key!r})"


def unusable_keys(keys: pd.Series) -> pd.Series:
    """Why each partition key (its text, :func:`~streamlab.serde.key_texts`) cannot be put (``""``: it
    can): missing, empty, over 256 characters, or not UTF-8 text (a lone surrogate), which botocore
    cannot send.

    Examples
    --------
    >>> unusable_keys(pd.Series(["u1", None, "", "x" * 257, "\\ud800"], dtype=object)).tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['', 'the partition key is missing', 'the partition key is empty',
     'the partition key has 257 characters, over 256',
     'the partition key is not UTF-8 text (surrogates not allowed at character 0)']
    """
    missing = keys.isna().to_numpy()
    reasons: list[str] = []
    for value, gone in zip(keys.tolist(), missing.tolist()):
        text = "" if gone else str(value)
        if gone:
            reasons.append("the partition key is missing")
        elif not text:
            reasons.append("the partition key is empty")
        elif len(text) > _KEY_MAX_CHARS:
            reasons.append(f"the partition key has {len(text)} characters, over {_KEY_MAX_CHARS}")
        elif text.isascii():
            reasons.append("")
        else:
            try:
                text.encode("utf-8")
                reasons.append("")
            except UnicodeEncodeError as e:
                reasons.append(f"the partition key is not UTF-8 text ({e.reason} at character {e.start})")
    return pd.Series(reasons, index=keys.index, dtype=object)


class _KinesisWriter(SinkWriter):
    """Open writer of a :class:`KinesisSink`."""

    def __init__(self, sink: KinesisSink, clock: Clock) -> None:
        self._sink = sink
        self._clock = clock
        self._client = aws_client(
            "kinesis", region=sink.region, endpoint_url=sink.endpoint_url, timeout=sink.timeout
        )
        self._dead_letter = sink.dead_letter.open(clock) if sink.dead_letter is not None else None
        self._rejected: list[pd.DataFrame] = []
        self._buffer: list[dict[str, Any]] = []
        self._failed = False  # a send raised: close() neither waits on the service again nor re-raises

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Encode the rows; full chunks of 500 are sent at once, the rest on :meth:`flush`.

        Rows whose partition key cannot be put are kept for the dead-letter sink (or raise without one).
        """
        if batch.empty:
            return
        key = self._sink.partition_key
        if key not in batch.columns:
            raise KeyError(f"{self._sink!r}: the batch has no column {key!r}; it has {list(batch.columns)}")
        texts = pd.Series(key_texts(batch[key]), dtype=object)
        reasons = unusable_keys(texts)
        bad = (reasons != "").to_numpy()
        if bad.any():
            if self._dead_letter is None:
                rows = np.flatnonzero(bad)[:5].tolist()
                raise ValueError(
                    f"{self._sink!r}: partition keys must be 1..256 characters of UTF-8 text; rows {rows} "
                    f"have {[str(v)[:40] for v in batch[key].iloc[rows]]!r} ({sorted(set(reasons[bad]))[:3]}). Filter or "
                    "fill them before the sink, or pass dead_letter= to keep them as data"
                )
            rows_all = batch.reset_index(drop=True)
            self._rejected.append(rows_all[bad].assign(**{REASON_COLUMN: reasons[bad].tolist()}))
            batch = rows_all[~bad]
            texts = texts[~bad]
            if batch.empty:
                return
        payloads = encode_rows(batch)
        for data, pk in zip(payloads, texts.tolist()):
            if len(data) + len(pk.encode()) > _RECORD_MAX_BYTES:
                limit = _RECORD_MAX_BYTES - len(pk.encode()) - 256
                data = fit_payload(data, limit, repr(self._sink), "Kinesis' 1 MiB record")
            self._buffer.append({"Data": data, "PartitionKey": pk})
        while len(self._buffer) >= _PUT_MAX_RECORDS:
            self._send(self._take_chunk())

    def _take_chunk(self) -> list[dict[str, Any]]:
        size, n = 0, 0
        for record in self._buffer[:_PUT_MAX_RECORDS]:
            size += len(record["Data"]) + len(record["PartitionKey"])
            if n and size > _PUT_MAX_BYTES:
                break
            n += 1
        chunk, self._buffer = self._buffer[:n], self._buffer[n:]
        return chunk

    def _send(self, records: list[dict[str, Any]]) -> None:
        try:
            self._put(records)
        except Exception:
            self._failed = True
            raise

    def _put(self, records: list[dict[str, Any]]) -> None:
        pending = records
        wait_ns = self._sink.backoff_ns
        for attempt in range(1, self._sink.max_attempts + 1):
            sink = self._sink
            with bounded(
                repr(sink),
                "Kinesis",
                "put_records",
                timeout=sink.timeout,
                attempts=WRITE_ATTEMPTS,
                target=f"stream {sink.stream!r}",
                region=sink.region,
                endpoint_url=sink.endpoint_url,
            ):
                response = self._client.put_records(StreamName=sink.stream, Records=pending)
            if not response.get("FailedRecordCount"):
                return
            results = response["Records"]
            failed = [(rec, res) for rec, res in zip(pending, results) if res.get("ErrorCode")]
            if attempt == self._sink.max_attempts:
                codes = sorted({res["ErrorCode"] for _, res in failed})
                raise RuntimeError(
                    f"{self._sink!r}: {len(failed)} records still failed after {attempt} attempts "
                    f"(error codes {codes}; first: {failed[0][1].get('ErrorMessage')!r}). Raise the stream's "
                    "shard count or max_attempts."
                )
            pending = [rec for rec, _ in failed]
            self._clock.sleep(wait_ns / 1e9)
            wait_ns = min(wait_ns * 2, self._sink.max_backoff_ns)

    def flush(self) -> None:
        """Send everything buffered; raises if records still fail after ``max_attempts``. Then hand the
        rows whose partition key cannot be put to the dead-letter sink."""
        while self._buffer:
            self._send(self._take_chunk())
        if self._rejected and self._dead_letter is not None:
            rejected = pd.concat(self._rejected, ignore_index=True)
            self._rejected = []
            publish_now(self._dead_letter, rejected)

    def close(self) -> None:
        """Flush and release the HTTP connections.

        After a send failed, the records still buffered are dropped, not sent again (the run failed on
        it and did not commit past them: a restart sends them); its error is not raised twice.
        """
        try:
            if self._failed:
                if self._buffer or self._rejected:
                    log.warning(
                        "%r: %d record(s) not sent (a send failed); a restart sends them",
                        self._sink,
                        len(self._buffer) + sum(len(r) for r in self._rejected),
                    )
                self._buffer, self._rejected = [], []
            else:
                self.flush()
        finally:
            if self._dead_letter is not None:
                self._dead_letter.close()
            self._client.close()
