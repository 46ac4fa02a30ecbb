"""Record any live source to local Parquet files, and replay the recording deterministically.

A recording keeps every column the source produced (raw ``value`` bytes, keys, offsets, ...) plus the
processing time at which each batch arrived (``_arrival_time``) and a sequence number
(``_arrival_seq``). Replaying paces events by their original arrival (or by event time) at any speed,
so a live cloud stream becomes a repeatable test input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamlab._time import Duration, ns_to_timestamp
from streamlab.clock import Clock
from streamlab.errors import check_path
from streamlab.io import Sink, SinkWriter, Source, default_clock, file_destination
from streamlab.sinks import _ParquetWriter
from streamlab.sources import ReplaySource

__all__ = ["RecordingSink", "RecordingSummary", "record", "replay_recording"]

ARRIVAL = "_arrival_time"
SEQ = "_arrival_seq"


class _RecordingWriter(_ParquetWriter):
    def __init__(self, sink: RecordingSink, clock: Clock) -> None:
        super().__init__(sink)  # type: ignore[arg-type]  # a RecordingSink has the ParquetSink fields it uses
        parts = sorted(Path(sink.path).glob("part-*.parquet"))
        self.seq = int(pd.read_parquet(parts[-1], columns=[SEQ])[SEQ].max()) + 1 if parts else 0
        self.clock = clock

    def write_batch(self, batch: pd.DataFrame) -> None:
        now = ns_to_timestamp(self.clock.now_ns())
        seq = np.arange(self.seq, self.seq + len(batch), dtype=np.int64)
        self.seq += len(batch)
        super().write_batch(batch.assign(**{ARRIVAL: now, SEQ: seq}))


class RecordingSink(Sink):
    """Write batches with their arrival time to a directory of Parquet files (one per commit).

    Examples
    --------
    >>> import tempfile
    >>> from streamlab.clock import ManualClock
    >>> d = tempfile.mkdtemp()
    >>> w = RecordingSink(d).open(ManualClock("2024-01-01T00:00:00Z"))
    >>> w.write_batch(pd.DataFrame({"value": [b"{}"]}))
    >>> w.flush()
    >>> list(pd.read_parquet(d).columns)
    ['value', '_arrival_time', '_arrival_seq']
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_path("RecordingSink", "path", path)

    def open(self, clock: Clock | None = None) -> SinkWriter:
        return _RecordingWriter(self, default_clock(clock))

    def destinations(self) -> tuple[tuple[str, str | None], ...]:
        """The directory (see :meth:`Sink.destinations`)."""
        return ((file_destination(self.path), None),)

    def spec(self) -> dict[str, Any]:
        return {"kind": "recording", "path": self.path}

    def __repr__(self) -> str:
        return f"RecordingSink({self.path!r})"


@dataclass(frozen=True)
class RecordingSummary:
    """What :func:`record` captured.

    Examples
    --------
    >>> RecordingSummary('rec', 0, None, None).events
    0
    """

    path: str
    events: int
    first_arrival: pd.Timestamp | None
    last_arrival: pd.Timestamp | None


def record(
    source: Source,
    path: str | os.PathLike[str],
    *,
    max_events: int | None = None,
    duration: Duration | None = None,
    clock: Clock | None = None,
) -> RecordingSummary:
    """Record ``source`` into ``path`` until it ends, ``max_events`` arrived, or ``duration`` passed.

    The source's offsets are committed after each flushed part, as for any sink, so recording a Kafka
    topic with its own consumer group picks up where the last recording stopped.

    Examples
    --------
    >>> import tempfile
    >>> from streamlab.clock import ManualClock
    >>> from streamlab.sources import ListSource
    >>> info = record(ListSource([b'{"a": 1}', b"oops"]), tempfile.mkdtemp(), clock=ManualClock(0))
    >>> info.events
    2
    """
    from streamlab.pipeline import Pipeline

    if max_events is None and duration is None and not hasattr(source, "frame"):
        raise ValueError(
            "record(): a live source never ends by itself; pass max_events=... or duration='30s'"
        )

    def seq_so_far() -> int:
        parts = sorted(Path(path).glob("part-*.parquet"))
        return int(pd.read_parquet(parts[-1], columns=[SEQ])[SEQ].max()) + 1 if parts else 0

    before = seq_so_far()
    p = Pipeline(source, name="recording")
    p.stream.to(RecordingSink(path))
    p.run(clock=clock, max_events=max_events, duration=duration)
    if not any(Path(path).glob("part-*.parquet")):
        return RecordingSummary(os.fspath(path), 0, None, None)
    frame = pd.read_parquet(path, columns=[ARRIVAL, SEQ])
    frame = frame[frame[SEQ] >= before]  # this call's records, not earlier sessions'
    if frame.empty:
        return RecordingSummary(os.fspath(path), 0, None, None)
    return RecordingSummary(os.fspath(path), len(frame), frame[ARRIVAL].min(), frame[ARRIVAL].max())


def _read_parts(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The recording's parts as one frame, each part read by itself: a session's part may type a column
    its values never filled otherwise than another's (Arrow ``null`` in recordings made before such
    columns were written as text), and reading the directory as one dataset would refuse the rest."""
    parts = sorted(Path(path).glob("part-*.parquet"))
    if not parts:
        return pd.read_parquet(path)  # the error (or empty frame) pandas gives for the directory
    frames = [pd.read_parquet(p) for p in parts]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def replay_recording(
    path: str | os.PathLike[str], *, speed: float | None = 1.0, pace: str = "arrival", time: str = "timestamp"
) -> ReplaySource:
    """A source replaying a recording in its original order.

    ``pace="arrival"`` reproduces the original gaps between arrivals (scaled by ``speed``);
    ``pace="event"`` paces by the event-time column ``time`` instead (after parsing is not needed:
    use it for recordings of already-parsed sources).

    Examples
    --------
    >>> import tempfile
    >>> from streamlab.clock import ManualClock
    >>> from streamlab.sources import ListSource
    >>> d = tempfile.mkdtemp()
    >>> _ = record(ListSource([b"x", b"y"]), d, clock=ManualClock(0))
    >>> replay_recording(d, speed=None).frame["value"].tolist()
    [b'x', b'y']
    """
    if pace not in ("arrival", "event"):
        raise ValueError(f"replay_recording(pace={pace!r}): use 'arrival' or 'event'")
    frame = _read_parts(path).sort_values(SEQ, kind="stable").reset_index(drop=True)
    return ReplaySource(frame, time=ARRIVAL if pace == "arrival" else time, speed=speed)
