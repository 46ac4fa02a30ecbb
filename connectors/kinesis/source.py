"""``KinesisSource``: read every shard, follow resharding (parents before children), checkpoint per shard."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamlab._kpl import user_records
from streamlab._time import Duration, format_duration
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Source, SourceReader, default_clock

from .._params import check_endpoint_url, check_region, duration_ns, positive_seconds, whole_number
from ..aws import aws_client, bounded
from ._client import READ_ATTEMPTS
from .checkpoint import SHARD_END, load_checkpoint, write_checkpoint

_SOURCE_COLUMNS = (
    "value",
    "partition_key",
    "sequence_number",
    "sub_sequence_number",
    "shard_id",
    "approximate_arrival",
)


_GET_MAX_RECORDS = 10_000
_THROTTLE_NS = 1_000_000_000


def _parse_start(start: Any, owner: str) -> tuple[str, pd.Timestamp | None]:
    if isinstance(start, str) and start.upper() in ("TRIM_HORIZON", "LATEST"):
        return start.upper(), None
    fix = "write 'TRIM_HORIZON' (the oldest record), 'LATEST', or a timestamp such as '2026-01-01T00:00:00Z'"
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            owner, "start", f"{start!r} is neither 'TRIM_HORIZON', 'LATEST' nor a timestamp", fix
        ) from exc
    if pd.isna(ts):
        raise ParameterError(owner, "start", f"got {start!r}, a missing time (NaT)", fix)
    return "AT_TIMESTAMP", ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class KinesisSource(Source):
    """Read all shards of a Kinesis stream, following resharding, with per-shard checkpoints.

    Each row is a user record: a record the Kinesis Producer Library aggregated gives one row per
    record in it (its own partition key, the Kinesis record's sequence number and the place in it,
    ``sub_sequence_number``), as the KCL and Flink's, Spark's and Beam's Kinesis readers deliver them.

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
        where = type(self).__name__
        if not isinstance(stream, str) or not stream:
            raise ParameterError(
                where,
                "stream",
                f"expected a stream name (a non-empty text), got {stream!r}",
                "write the Kinesis stream's name, e.g. stream: events (KinesisSource('events') in Python)",
            )
        if not whole_number(records_per_call, 1, _GET_MAX_RECORDS):
            raise ParameterError(
                where,
                "records_per_call",
                f"expected 1..{_GET_MAX_RECORDS} (GetRecords' limit) for stream {stream!r}, got "
                f"{records_per_call!r}",
                "write a whole number such as records_per_call: 1000 (records_per_call=1000 in Python)",
            )
        self.stream = stream
        self.endpoint_url = check_endpoint_url(where, endpoint_url)
        self.region = check_region(where, region)
        self.start_type, self.start_time = _parse_start(start, where)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.records_per_call = records_per_call
        self.idle_interval_ns = duration_ns(where, "idle_interval", idle_interval)
        self.shard_refresh_ns = duration_ns(where, "shard_refresh", shard_refresh)
        self.timeout = positive_seconds(where, "timeout", timeout, 10, about=f"stream {stream!r}")

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
            max_attempts=READ_ATTEMPTS,
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
        # per shard: the user records read but not delivered yet (see _deliver), the (sequence number,
        # sub-sequence number) of an aggregated record delivered up to there (see _undelivered), and
        # the shards that ended, once their pending records are delivered
        self._pending: dict[str, pd.DataFrame] = {}
        self._skip: dict[str, tuple[str, int]] = {}
        self._ending: set[str] = set()
        self._refresh_shards()

    def _call(self, operation: str, **kwargs: Any) -> Any:
        src = self._source
        with bounded(
            f"KinesisSource({src.stream!r})",
            "Kinesis",
            operation,
            timeout=src.timeout,
            attempts=READ_ATTEMPTS,
            target=f"stream {src.stream!r}",
            region=src.region,
            endpoint_url=src.endpoint_url,
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
        cached = self._iterators.get(shard)
        if cached is not None:
            return cached
        src = self._source
        kwargs: dict[str, Any] = {"StreamName": src.stream, "ShardId": shard}
        seq = self._position.get(shard)
        if seq is not None and ":" in seq:  # within an aggregated record: read it again, skip the delivered
            record, sub = seq.split(":", 1)
            self._skip[shard] = (record, int(sub))
            kwargs.update(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=record)
        elif seq is not None:
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
        it: str = self._call("get_shard_iterator", **kwargs)["ShardIterator"]
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
            rows = self._pending.pop(shard, None)
            if rows is None:  # nothing left of the last read: read on
                if self._not_before.get(shard, 0) > now:
                    continue
                records, next_it, behind = self._get_records(shard, min(room, self._source.records_per_call))
                self._behind_ms[shard] = behind
                if records:
                    rows = self._undelivered(shard, self._frame(shard, records))
                if next_it is None:
                    self._iterators.pop(shard, None)
                    self._ending.add(shard)
                else:
                    self._iterators[shard] = next_it
                if not records:
                    wait_until = now + self._source.idle_interval_ns
                    self._not_before[shard] = max(self._not_before.get(shard, 0), wait_until)
            if rows is not None and len(rows):
                frames.append(self._deliver(shard, rows, room))
                room -= len(frames[-1])
            if shard in self._ending and shard not in self._pending:
                self._ending.discard(shard)
                self._position[shard] = SHARD_END
                ended = True
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

    def _deliver(self, shard: str, rows: pd.DataFrame, room: int) -> pd.DataFrame:
        """The first ``room`` of a shard's ``rows``; the rest wait for the next poll (the user records of
        an aggregated record can outnumber ``room``). The position is the last delivered row's record,
        ``"<sequence number>:<sub-sequence number>"`` while some of that record's rows wait."""
        out = rows.iloc[:room].reset_index(drop=True)
        seq = str(out["sequence_number"].iat[-1])
        sub = int(out["sub_sequence_number"].to_numpy()[-1])
        partial = False
        if len(rows) > room:
            self._pending[shard] = rows.iloc[room:].reset_index(drop=True)
            partial = bool(self._pending[shard]["sequence_number"].iat[0] == seq)
        self._position[shard] = f"{seq}:{sub}" if partial else seq
        return out

    def _undelivered(self, shard: str, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` without the user records a partial position (see :meth:`_deliver`) says were
        delivered: a reader resumed there reads that aggregated record again, from its start."""
        skip = self._skip.pop(shard, None)
        if skip is None:
            return rows
        seq, sub = skip
        done = (rows["sequence_number"] == seq).to_numpy() & (rows["sub_sequence_number"] <= sub).to_numpy()
        return rows[~done].reset_index(drop=True)

    @staticmethod
    def _frame(shard: str, records: list[dict[str, Any]]) -> pd.DataFrame:
        """One row per user record: a record the KPL aggregated gives a row for each record in it, with
        that record's own partition key and its place in it (``sub_sequence_number``, 0 for a record of
        its own), as the KCL delivers them (:mod:`streamlab._kpl`)."""
        values, keys, seqs, subs, arrivals = [], [], [], [], []
        for r in records:
            for sub, (key, value) in enumerate(user_records(r["Data"], r["PartitionKey"])[0]):
                values.append(value)
                keys.append(key)
                seqs.append(r["SequenceNumber"])
                subs.append(sub)
                arrivals.append(r["ApproximateArrivalTimestamp"])
        frame: pd.DataFrame = pd.DataFrame(  # pandas-stubs types the constructor as Any
            {
                "value": pd.Series(values, dtype=object),
                "partition_key": pd.Series(keys, dtype=object),
                "sequence_number": pd.Series(seqs, dtype=object),
                "sub_sequence_number": np.array(subs, dtype=np.int64),
                "shard_id": pd.Series(np.full(len(values), shard, dtype=object)),
                "approximate_arrival": pd.to_datetime(arrivals, utc=True).astype("datetime64[ns, UTC]"),
            }
        )
        return frame

    def snapshot(self) -> dict[str, str]:
        """``{shard_id: last delivered sequence number or "SHARD_END"}`` (``"<sequence number>:<sub>"``
        within an aggregated record delivered in part)."""
        return dict(self._position)

    def commit(self, position: Any) -> None:
        """Record ``position`` as the checkpoint (written to ``checkpoint_path`` when set)."""
        self._committed = dict(position or {})
        if self._source.checkpoint_path is not None:
            write_checkpoint(self._source.checkpoint_path, self._source.stream, self._committed)

    def lag(self) -> int | None:
        """Unknown in records (Kinesis reports only milliseconds behind; see :meth:`millis_behind`)."""
        return None

    def millis_behind(self) -> int:
        """Largest ``MillisBehindLatest`` reported by the shards read so far."""
        return max(self._behind_ms.values(), default=0)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()
