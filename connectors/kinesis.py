"""Amazon Kinesis Data Streams source and sink (boto3).

:class:`KinesisSource` reads every shard with shard iterators, follows resharding (a child shard is read
only after its parents are fully consumed, so per-key order survives splits and merges) and checkpoints one
sequence number per shard. The checkpoint lives in the runtime's snapshot and, when ``checkpoint_path`` is
given, in a local JSON file written on each commit (a DynamoDB lease table, as the KCL uses, is not needed
for one reader). :class:`KinesisSink` writes rows as JSON with ``PutRecords`` and retries only the records
that failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from streamlab.connectors.aws import aws_client

from streamlab._time import Duration, format_duration, parse_duration
from streamlab.clock import Clock
from streamlab.io import Sink, SinkWriter, Source, SourceReader, default_clock
from streamlab.serde import encode_rows

__all__ = ["KinesisSink", "KinesisSource"]

SHARD_END = "SHARD_END"
_SOURCE_COLUMNS = ("value", "partition_key", "sequence_number", "shard_id", "approximate_arrival")
# Kinesis limits: 500 records and 5 MiB per PutRecords call, 1 MiB per record (data + key).
_PUT_MAX_RECORDS = 500
_PUT_MAX_BYTES = 5 * 1024 * 1024
_RECORD_MAX_BYTES = 1024 * 1024
_GET_MAX_RECORDS = 10_000
_THROTTLE_NS = 1_000_000_000


_READ_ATTEMPTS = 2  # few client retries: a throttled shard is skipped for a while instead
_WRITE_ATTEMPTS = 3  # aws_client's default


def _check_timeout(where: str, timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


@contextlib.contextmanager
def _bounded(
    owner: str, endpoint: str | None, operation: str, timeout: float, attempts: int
) -> Iterator[None]:
    """Turn botocore's connection and read timeouts into one error saying what was tried, for how long."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    started = time.monotonic()
    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        where = endpoint or "AWS Kinesis"
        raise RuntimeError(
            f"{owner}: Kinesis at {where} did not answer {operation} ({attempts} attempts, timeout={timeout:g} s "
            f"each, {time.monotonic() - started:.1f} s in all): {exc}. Check endpoint_url/region and that the "
            "service runs"
        ) from exc


def _parse_start(start: Any, where: str) -> tuple[str, pd.Timestamp | None]:
    if isinstance(start, str) and start.upper() in ("TRIM_HORIZON", "LATEST"):
        return start.upper(), None
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: start={start!r} is neither 'TRIM_HORIZON', 'LATEST' nor a timestamp such as "
            "'2026-01-01T00:00:00Z'"
        ) from exc
    if pd.isna(ts):
        raise ValueError(f"{where}: start must not be NaT")
    return "AT_TIMESTAMP", ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class KinesisSource(Source):
    """Read all shards of a Kinesis stream, following resharding, with per-shard checkpoints.

    Parameters
    ----------
    stream
        Stream name.
    endpoint_url
        Endpoint of a local stand-in (``LocalAWS().endpoint_url``, kinesalite); ``None`` for AWS.
    region
        AWS region.
    start
        Where shards without a checkpoint begin: ``"TRIM_HORIZON"`` (oldest retained record),
        ``"LATEST"`` (only new records) or a timestamp. Child shards of a reshard always start at their
        beginning, because their parents were read to the end first.
    checkpoint_path
        JSON file holding the committed sequence number of each shard; read by ``open()`` when no
        ``resume`` position is given, rewritten atomically by every ``commit``.
    records_per_call
        ``Limit`` of each GetRecords call (at most 10,000).
    idle_interval
        After a shard returned nothing new, wait this long (on the injected clock) before asking it again;
        AWS allows 5 GetRecords calls per second and shard.
    shard_refresh
        How often to list shards to discover new ones (also done whenever a shard ends).
    timeout
        Seconds each call to Kinesis may wait for a connection and for each answer; a stalled or
        unreachable endpoint fails the call after its retries (2 attempts) with an error naming the
        endpoint, the call and the time waited.

    Examples
    --------
    >>> source = KinesisSource("clicks", start="2026-01-01T00:00:00Z", checkpoint_path="/tmp/clicks.json")
    >>> source.spec()["start"]
    '2026-01-01T00:00:00+00:00'
    >>> reader = source.open()  # doctest: +SKIP
    """

    columns = _SOURCE_COLUMNS

    def __init__(
        self,
        stream: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        start: str | datetime | pd.Timestamp = "TRIM_HORIZON",
        checkpoint_path: str | os.PathLike[str] | None = None,
        records_per_call: int = 1000,
        idle_interval: Duration = "200ms",
        shard_refresh: Duration = "30s",
        timeout: float = 10.0,
    ) -> None:
        where = f"KinesisSource({stream!r})"
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"{where}: stream must be a non-empty stream name")
        if not isinstance(records_per_call, int) or not 1 <= records_per_call <= _GET_MAX_RECORDS:
            raise ValueError(f"{where}: records_per_call must be 1..10000, got {records_per_call!r}")
        self.stream = stream
        self.endpoint_url = endpoint_url
        self.region = region
        self.start_type, self.start_time = _parse_start(start, where)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.records_per_call = records_per_call
        self.idle_interval_ns = parse_duration(idle_interval, what=f"{where}: idle_interval")
        self.shard_refresh_ns = parse_duration(shard_refresh, what=f"{where}: shard_refresh")
        self.timeout = _check_timeout(where, timeout)

    @property
    def commits_upstream(self) -> bool:
        """Positions are committed to ``checkpoint_path`` when it is set."""
        return self.checkpoint_path is not None

    def open(self, resume: Any = None, clock: Clock | None = None) -> _KinesisReader:
        """Start reading from ``resume`` (a snapshot), else the checkpoint file, else ``start``."""
        if resume is None and self.checkpoint_path is not None:
            resume = load_checkpoint(self.checkpoint_path, self.stream)
        return _KinesisReader(self, dict(resume or {}), default_clock(clock))

    def spec(self) -> dict[str, Any]:
        """YAML-ready description.

        Examples
        --------
        >>> KinesisSource("s").spec()["kind"]
        'kinesis'
        """
        return {
            "kind": "kinesis",
            "stream": self.stream,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "start": self.start_type if self.start_time is None else self.start_time.isoformat(),
            "checkpoint_path": None if self.checkpoint_path is None else str(self.checkpoint_path),
            "records_per_call": self.records_per_call,
            "idle_interval": format_duration(self.idle_interval_ns),
            "shard_refresh": format_duration(self.shard_refresh_ns),
            "timeout": self.timeout,
        }

    def __repr__(self) -> str:
        return f"KinesisSource({self.stream!r}, start={self.spec()['start']!r})"


def load_checkpoint(path: str | os.PathLike[str], stream: str) -> dict[str, str]:
    """Read a checkpoint file written by :class:`KinesisSource`; a missing file means no checkpoint.

    Parameters
    ----------
    path
        The JSON file.
    stream
        Stream the checkpoint must belong to.

    Returns
    -------
    dict
        ``{shard_id: sequence number or "SHARD_END"}``.

    Examples
    --------
    >>> load_checkpoint("/nonexistent/checkpoint.json", "clicks")
    {}
    """
    p = Path(path)
    if not p.exists():
        return {}
    data = json.loads(p.read_text())
    if data.get("stream") != stream:
        raise ValueError(
            f"KinesisSource({stream!r}): checkpoint file {str(p)!r} belongs to stream {data.get('stream')!r}; "
            "use a separate checkpoint_path per stream"
        )
    return {str(k): str(v) for k, v in data.get("shards", {}).items()}


def _write_checkpoint(path: Path, stream: str, shards: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"stream": stream, "shards": dict(shards)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new checkpoint, never half of one


class _KinesisReader(SourceReader):
    """Open reader of a :class:`KinesisSource`."""

    def __init__(self, source: KinesisSource, position: dict[str, str], clock: Clock) -> None:
        self._source = source
        self._clock = clock
        # Few client-side retries: a throttled shard is skipped for a while instead of sleeping inside poll().
        self._client = aws_client(
            "kinesis",
            region=source.region,
            endpoint_url=source.endpoint_url,
            max_attempts=_READ_ATTEMPTS,
            timeout=source.timeout,
        )
        self._position = position  # shard -> last delivered sequence number, or SHARD_END
        self._parents: dict[str, tuple[str, ...]] = {}
        self._iterators: dict[str, str] = {}
        self._not_before: dict[str, int] = {}
        self._next_refresh = 0
        self._rotation = 0
        self._behind_ms: dict[str, int] = {}
        self._known: set[str] = set()
        self._committed: dict[str, str] = dict(position)
        self._refresh_shards()

    def _call(self, operation: str, **kwargs: Any) -> Any:
        src = self._source
        with _bounded(
            f"KinesisSource({src.stream!r})", src.endpoint_url, operation, src.timeout, _READ_ATTEMPTS
        ):
            return getattr(self._client, operation)(**kwargs)

    def _refresh_shards(self) -> None:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self._source.stream}
        while True:
            page = self._call("list_shards", **kwargs)
            shards.extend(page["Shards"])
            token = page.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
        for shard in shards:
            parents = (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
            self._parents[shard["ShardId"]] = tuple(p for p in parents if p)
        self._known = {s["ShardId"] for s in shards}
        self._next_refresh = self._clock.now_ns() + self._source.shard_refresh_ns

    def partitions(self) -> list[str]:
        """Shards being read now: windows keep one watermark per shard (finished parents drop out)."""
        return self._readable()

    def _readable(self) -> list[str]:
        """Shards not finished whose parents are finished (or expired from the stream)."""

        def finished(shard: str) -> bool:
            return self._position.get(shard) == SHARD_END or shard not in self._known

        return [
            s
            for s in sorted(self._parents)
            if s in self._known and not finished(s) and all(finished(p) for p in self._parents[s])
        ]

    def _iterator(self, shard: str) -> str:
        it = self._iterators.get(shard)
        if it is not None:
            return it
        src = self._source
        kwargs: dict[str, Any] = {"StreamName": src.stream, "ShardId": shard}
        seq = self._position.get(shard)
        if seq is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seq)
        elif src.start_type == "TRIM_HORIZON" or any(
            p in self._position for p in self._parents.get(shard, ())
        ):
            # A child of a shard this reader consumed continues where the parent ended: from its start.
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        elif src.start_type == "LATEST" or src.start_time is None:
            kwargs["ShardIteratorType"] = "LATEST"
        else:
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=src.start_time.to_pydatetime())
        it = self._call("get_shard_iterator", **kwargs)["ShardIterator"]
        self._iterators[shard] = it
        return it

    def poll(self, max_events: int) -> pd.DataFrame | None:
        """Read up to ``max_events`` records, visiting each readable shard at most once."""
        now = self._clock.now_ns()
        if now >= self._next_refresh:
            self._refresh_shards()
        shards = self._readable()
        if not shards:
            return None
        # Rotate the starting shard so a busy shard cannot starve the others.
        self._rotation = (self._rotation + 1) % len(shards)
        shards = shards[self._rotation :] + shards[: self._rotation]
        frames: list[pd.DataFrame] = []
        room = max_events
        ended = False
        for shard in shards:
            if room <= 0:
                break
            if self._not_before.get(shard, 0) > now:
                continue
            records, next_it, behind = self._get_records(shard, min(room, self._source.records_per_call))
            self._behind_ms[shard] = behind
            if records:
                frames.append(self._frame(shard, records))
                self._position[shard] = records[-1]["SequenceNumber"]
                room -= len(records)
            if next_it is None:
                self._position[shard] = SHARD_END
                self._iterators.pop(shard, None)
                ended = True
            else:
                self._iterators[shard] = next_it
            if not records:
                wait_until = now + self._source.idle_interval_ns
                self._not_before[shard] = max(self._not_before.get(shard, 0), wait_until)
        if ended:
            self._refresh_shards()  # a finished parent makes its children readable
        if not frames:
            return None
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _get_records(self, shard: str, limit: int) -> tuple[list[dict[str, Any]], str | None, int]:
        errors = self._client.exceptions
        for _ in range(2):
            iterator = self._iterator(shard)
            try:
                r = self._call("get_records", ShardIterator=iterator, Limit=limit)
                return r["Records"], r.get("NextShardIterator"), int(r.get("MillisBehindLatest", 0))
            except errors.ExpiredIteratorException:
                self._iterators.pop(shard, None)  # iterators live 5 minutes; recreate from the position
            except errors.ProvisionedThroughputExceededException:
                # AWS allows 5 reads per second and shard; come back after a second.
                self._not_before[shard] = self._clock.now_ns() + max(
                    self._source.idle_interval_ns, _THROTTLE_NS
                )
                return [], iterator, 0
        raise RuntimeError(
            f"KinesisSource({self._source.stream!r}): shard iterator of {shard} keeps expiring"
        )

    @staticmethod
    def _frame(shard: str, records: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "value": pd.Series([r["Data"] for r in records], dtype=object),
                "partition_key": pd.Series([r["PartitionKey"] for r in records], dtype=object),
                "sequence_number": pd.Series([r["SequenceNumber"] for r in records], dtype=object),
                "shard_id": pd.Series(np.full(len(records), shard, dtype=object)),
                "approximate_arrival": pd.to_datetime(
                    [r["ApproximateArrivalTimestamp"] for r in records], utc=True
                ).astype("datetime64[ns, UTC]"),
            }
        )

    def snapshot(self) -> dict[str, str]:
        """``{shard_id: last delivered sequence number or "SHARD_END"}``."""
        return dict(self._position)

    def commit(self, position: Any) -> None:
        """Record ``position`` as the checkpoint (written to ``checkpoint_path`` when set)."""
        self._committed = dict(position or {})
        if self._source.checkpoint_path is not None:
            _write_checkpoint(self._source.checkpoint_path, self._source.stream, self._committed)

    def lag(self) -> int | None:
        """Unknown in records (Kinesis reports only milliseconds behind; see :meth:`millis_behind`)."""
        return None

    def millis_behind(self) -> int:
        """Largest ``MillisBehindLatest`` reported by the shards read so far."""
        return max(self._behind_ms.values(), default=0)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()


class KinesisSink(Sink):
    """Write rows as JSON records with ``PutRecords``, retrying only the records that failed.

    Parameters
    ----------
    stream
        Stream name.
    partition_key
        Column whose values (as text, 1..256 characters) are the partition keys.
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
    ) -> None:
        where = f"KinesisSink({stream!r})"
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"{where}: stream must be a non-empty stream name")
        if not isinstance(partition_key, str) or not partition_key:
            raise ValueError(f"{where}: partition_key must name a column, got {partition_key!r}")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"{where}: max_attempts must be a positive integer, got {max_attempts!r}")
        self.stream = stream
        self.partition_key = partition_key
        self.endpoint_url = endpoint_url
        self.region = region
        self.max_attempts = max_attempts
        self.backoff_ns = parse_duration(backoff, what=f"{where}: backoff")
        self.max_backoff_ns = parse_duration(max_backoff, what=f"{where}: max_backoff")
        self.timeout = _check_timeout(where, timeout)

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
        }

    def __repr__(self) -> str:
        return f"KinesisSink({self.stream!r}, partition_key={self.partition_key!r})"


class _KinesisWriter(SinkWriter):
    """Open writer of a :class:`KinesisSink`."""

    def __init__(self, sink: KinesisSink, clock: Clock) -> None:
        self._sink = sink
        self._clock = clock
        self._client = aws_client(
            "kinesis", region=sink.region, endpoint_url=sink.endpoint_url, timeout=sink.timeout
        )
        self._buffer: list[dict[str, Any]] = []

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Encode the rows; full chunks of 500 are sent at once, the rest on :meth:`flush`."""
        if batch.empty:
            return
        key = self._sink.partition_key
        if key not in batch.columns:
            raise KeyError(f"{self._sink!r}: the batch has no column {key!r}; it has {list(batch.columns)}")
        keys = batch[key].astype("string")
        lengths = keys.str.len()
        bad = keys.isna() | (lengths < 1) | (lengths > 256)
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
            raise ValueError(
                f"{self._sink!r}: partition keys must be 1..256 characters; rows {rows} have "
                f"{keys[bad].head(5).tolist()!r}. Filter or fill them before the sink."
            )
        payloads = encode_rows(batch)
        for data, pk in zip(payloads, keys.tolist()):
            if len(data) + len(pk.encode()) > _RECORD_MAX_BYTES:
                raise ValueError(f"{self._sink!r}: a row encodes to {len(data)} bytes; Kinesis allows 1 MiB")
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
        pending = records
        wait_ns = self._sink.backoff_ns
        for attempt in range(1, self._sink.max_attempts + 1):
            sink = self._sink
            with _bounded(repr(sink), sink.endpoint_url, "put_records", sink.timeout, _WRITE_ATTEMPTS):
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
        """Send everything buffered; raises if records still fail after ``max_attempts``."""
        while self._buffer:
            self._send(self._take_chunk())

    def close(self) -> None:
        """Flush and release the HTTP connections."""
        try:
            self.flush()
        finally:
            self._client.close()
