"""Profile a stream from a bounded sample: its schema, its disorder, and the watermark settings it needs.

:func:`profile` reads at most ``n`` events from any source without committing or acknowledging anything
(Kafka: a throw-away consumer group that never commits; Pub/Sub: what was pulled is nacked on close;
Kinesis: no checkpoint is written) and returns a :class:`Profile`: an inferred parse schema that
``Stream.parse`` accepts, the malformed-record rate with its reasons, how far events arrive behind the
running maximum event time per partition, duplicates, partition skew and silent partitions, and suggested
``delay`` / ``lateness`` / ``idle_timeout`` / dedup ``ttl`` with the late fraction each delay predicts.
The prediction replays the sample through the window step's own watermark rule, so it is exact for the
sample; on the rest of the stream it is as good as the sample is representative.
"""

from __future__ import annotations

import copy
import html
import json
import math
import os
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from streamlab._parse import FieldSpec, ParseOperator
from streamlab._time import NAT_NS, Duration, format_duration, parse_duration, to_utc_ns
from streamlab._windowing import _NONE, partition_watermarks
from streamlab.clock import Clock, SystemClock
from streamlab.errors import closest
from streamlab.io import Source
from streamlab.sources import ListSource, ReplaySource, json_document_file
from streamlab.steps import MAX_RECORD_BYTES
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow, Window

__all__ = ["Profile", "predict_late_fraction", "profile"]

_S = 1_000_000_000
# delays a suggestion may take: round values a person would write
_LADDER = [
    v * u
    for u, vs in (
        (1_000_000, (1, 2, 5, 10, 20, 50, 100, 200, 500)),
        (_S, (1, 2, 3, 5, 10, 15, 20, 30, 45)),
        (60 * _S, (1, 2, 3, 5, 10, 15, 20, 30, 45)),
        (3600 * _S, (1, 2, 3, 6, 12, 24)),
    )
    for v in vs
]
_TIME_NAMES = ("timestamp", "event_time", "time", "ts", "event_timestamp", "created_at", "occurred_at")
_TIME_HINT = re.compile(r"(time|^ts$|_ts$|date|_at$|epoch|timestamp)", re.I)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_EPOCH_RANGES = (("epoch_s", 1e9, 4.1e9), ("epoch_ms", 1e12, 4.1e12), ("epoch_us", 1e15, 4.1e15))
_ID_NAMES = ("event_id", "id", "message_id", "msg_id", "uuid", "transaction_id", "reading_id")
_META = ("key", "headers", "topic", "partition", "offset", "kafka_timestamp", "shard_id", "sequence_number")
_PARTITION_COLUMNS = (("topic", "partition"), ("partition",), ("shard_id",))
_MAX_CATEGORIES = 64


def nice_duration(ns: float) -> int:
    """The smallest round duration (1, 2, 5 ms ... 30 s, 1 m ... 24 h) at or above ``ns`` nanoseconds.

    Examples
    --------
    >>> format_duration(nice_duration(3.2e9)), format_duration(nice_duration(0))
    ('5s', '0s')
    """
    if ns <= 0:
        return 0
    for v in _LADDER:
        if v >= ns:
            return v
    return math.ceil(ns / (3600 * _S)) * 3600 * _S


# -- reading a sample without committing ---------------------------------------------------------------
def sampling_source(source: Source) -> Source:
    """A source reading the same data that commits nothing even if asked: Kafka gets its own group.

    A Kafka reader joining the pipeline's group would take partitions from its live members (a
    rebalance); a fresh group that never commits leaves the group and its offsets alone. The read is
    bounded (``stop_at_end``): each partition up to its end as of the first fetch.
    """
    kafka = sys.modules.get("streamlab.connectors.kafka")
    if kafka is not None and isinstance(source, kafka.KafkaSource):
        # a copy keeps everything else (Event Hubs' endpoint and credentials included)
        clone: Source = copy.copy(source)
        object.__setattr__(clone, "group_id", f"streamlab-profile-{uuid.uuid4().hex[:12]}")
        object.__setattr__(clone, "stop_at_end", True)
        if source.start == "latest":  # a new group starting at the end would read nothing
            object.__setattr__(clone, "start", "earliest")
        return clone
    return source


def _as_source(source: Any) -> Source:
    if isinstance(source, Source):
        return source
    if isinstance(source, pd.DataFrame):
        return ListSource(source)
    if isinstance(source, list):
        return ListSource(source)
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source).lower()
        raw = name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson"))
        # a .json file holding one array, or objects over several lines, is read whole (its objects are
        # the rows), not line by line
        return ReplaySource(source, raw=raw and not json_document_file(Path(os.fspath(source))))
    raise TypeError(
        f"profile: cannot read {type(source).__name__}; pass a Source (KafkaSource, PubSubSource, "
        "ReplaySource, ...), a DataFrame, a list of records or a file path"
    )


def read_sample(
    source: Any, n: int, *, timeout: Duration = "30s", clock: Clock | None = None
) -> tuple[pd.DataFrame, np.ndarray, list[Any] | None]:
    """Read at most ``n`` events; never commit. Returns the rows, their arrival times and the partitions.

    The reader's ``commit`` is never called; ``close`` releases it (Pub/Sub nacks what was pulled, a
    Kafka consumer leaves its group without committing). Stops at ``n`` events, at the end of a bounded
    source, or after ``timeout`` of ``clock`` time.

    Examples
    --------
    >>> rows, arrival, parts = read_sample([{"x": 1}, {"x": 2}, {"x": 3}], 2)
    >>> rows["x"].tolist(), len(arrival), parts
    ([1, 2], 2, None)
    """
    clock = clock or SystemClock()
    src = sampling_source(_as_source(source))
    deadline = clock.now_ns() + parse_duration(timeout, what="profile(timeout=...)")
    reader = src.open(None, clock)
    batches: list[pd.DataFrame] = []
    arrivals: list[np.ndarray] = []
    got = 0
    parts: list[Any] | None = None
    try:
        while got < n:
            batch = reader.poll(n - got)
            if batch is not None and len(batch):
                batches.append(batch)
                arrivals.append(np.full(len(batch), clock.now_ns(), dtype=np.int64))
                got += len(batch)
                continue
            if reader.done or clock.now_ns() >= deadline:
                break
            due = reader.next_ready_ns()
            wait = 0.01 if due is None else max(1e-9, (due - clock.now_ns()) / 1e9)
            clock.sleep(min(wait, max(1e-9, (deadline - clock.now_ns()) / 1e9)))
        parts = reader.partitions()
    finally:
        reader.close()
    if not batches:
        return pd.DataFrame(), np.zeros(0, dtype=np.int64), parts
    frame = pd.concat(batches, ignore_index=True) if len(batches) > 1 else batches[0].reset_index(drop=True)
    return frame, np.concatenate(arrivals), parts


# -- schema inference ---------------------------------------------------------------------------------
def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, dict):
        return "dict"
    if isinstance(v, pd.Timestamp):
        return "timestamp"
    return "list"


@dataclass
class _Values:
    present: int = 0
    values: list[Any] = field(default_factory=list)


def _collect(
    objs: list[dict[str, Any]], prefix: tuple[str, ...], out: dict[tuple[str, ...], _Values]
) -> None:
    for obj in objs:
        for k, v in obj.items():
            path = (*prefix, str(k))
            slot = out.setdefault(path, _Values())
            slot.present += 1
            if v is not None and not (isinstance(v, float) and v != v):
                slot.values.append(v)


def _epoch_format(values: list[Any], name: str, hinted: bool) -> str | None:
    # an integer beyond a double (a 400-digit one) is no epoch time: left out, so the 98% test below fails
    nums = [float(v) for v in values if _kind(v) == "float" or (_kind(v) == "int" and abs(v) < 2**1023)]
    if not nums or len(nums) < 0.98 * len(values):
        return None
    arr = np.abs(np.asarray(nums))
    for fmt, lo, hi in _EPOCH_RANGES:
        if hinted and bool(((arr >= lo) & (arr < hi)).mean() >= 0.98):
            return fmt
    return None


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _infer_type(values: list[Any], name: str) -> tuple[str, str | None]:
    """Parse type of one field from its non-null values, and the time format when it is a time."""
    if not values:
        return "string", None
    kinds = Counter(_kind(v) for v in values)
    total = len(values)

    def share(*ks: str) -> float:
        return sum(kinds[k] for k in ks) / total

    if share("timestamp") >= 0.98:
        return "timestamp", "datetime"
    if share("bool") >= 0.98:
        return "bool", None
    if share("int", "float") >= 0.98:
        fmt = _epoch_format(values, name, bool(_TIME_HINT.search(name)))
        if fmt in ("epoch_s", "epoch_ms"):
            return "timestamp", fmt
        if fmt == "epoch_us":
            return "int64", fmt  # parse reads epoch s or ms only: pipeline() converts microseconds
        if not kinds["float"] and any(
            _kind(v) == "int" and not _INT64_MIN <= v <= _INT64_MAX for v in values
        ):
            return "json", None  # integers beyond 64 bits (uint64 hashes): json keeps each exact
        return ("float64" if kinds["float"] else "int64"), None
    if share("str") >= 0.98:
        texts = [v for v in values if isinstance(v, str)]
        if sum(bool(_ISO.match(t)) for t in texts) >= 0.95 * len(texts):
            return "timestamp", "iso8601"
        distinct = len(set(texts))
        if distinct <= max(1, min(_MAX_CATEGORIES, len(texts) // 5)):
            return "category", None
        return "string", None
    if share("dict") >= 0.98:
        return "object", None
    return "json", None


@dataclass(frozen=True)
class InferredField:
    """One inferred field: parse name, type, JSON path, share of records where it is null or absent.

    Examples
    --------
    >>> InferredField("amount", "float64", "properties.amount", 0.5).spec()
    {'type': 'float64', 'path': 'properties.amount'}
    >>> InferredField("user.id", "string", "user.id", 0.0, keys=("user.id",)).spec()
    'string'
    """

    name: str
    type: str
    path: str
    null_share: float
    time_format: str | None = None
    example: Any = None
    #: the JSON keys of ``path`` (a key may hold a dot, which ``path`` cannot tell); None: ``path``'s parts
    keys: tuple[str, ...] | None = None

    def field_spec(self) -> FieldSpec:
        """The parse step's field that reads it."""
        path = list(self.keys) if self.keys is not None else self.path
        return FieldSpec.of(self.name, {"type": self.type, "path": path})

    def spec(self) -> Any:
        return self.field_spec().describe()


def _infer_fields(objs: list[dict[str, Any]], max_depth: int = 3) -> list[InferredField]:
    slots: dict[tuple[str, ...], _Values] = {}
    _collect(objs, (), slots)
    n = max(len(objs), 1)
    leaves: list[tuple[tuple[str, ...], str, str | None, _Values]] = []
    # descend into fields that are objects: their members become fields with paths (properties.amount)
    queue = sorted(slots.items(), key=lambda kv: kv[0])
    while queue:
        path, slot = queue.pop(0)
        typ, fmt = _infer_type(slot.values, path[-1])
        if typ == "object" and len(path) < max_depth:
            inner: dict[tuple[str, ...], _Values] = {}
            _collect([v for v in slot.values if isinstance(v, dict)], path, inner)
            queue.extend(sorted(inner.items(), key=lambda kv: kv[0]))
            continue
        leaves.append((path, typ, fmt, slot))
    last = Counter(p[-1] for p, *_ in leaves)
    out = []
    for path, typ, fmt, slot in leaves:
        name = path[-1] if last[path[-1]] == 1 else "_".join(path)
        example = slot.values[0] if slot.values else None
        out.append(InferredField(name, typ, ".".join(path), 1 - len(slot.values) / n, fmt, example, path))
    return out


def _frame_fields(frame: pd.DataFrame) -> list[InferredField]:
    """Fields of an already-parsed source: from dtypes, descending into columns of dicts."""
    out: list[InferredField] = []
    for col in frame.columns:
        s = frame[col]
        if str(col).startswith("_arrival") or col in _META:
            continue
        nulls = float(s.isna().mean()) if len(s) else 0.0
        key = (str(col),)  # a column is one key, dots and all ("a." is no path a -> "")
        if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
            out.append(InferredField(str(col), "timestamp", str(col), nulls, "datetime", keys=key))
        elif isinstance(s.dtype, pd.CategoricalDtype):
            out.append(InferredField(str(col), "category", str(col), nulls, keys=key))
        elif pd.api.types.is_bool_dtype(s.dtype):
            out.append(InferredField(str(col), "bool", str(col), nulls, keys=key))
        elif pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype):
            # the missing values (of an Int64 column too) are not values of another kind
            typ, fmt = _infer_type(s.dropna().tolist(), str(col))
            out.append(InferredField(str(col), typ, str(col), nulls, fmt, keys=key))
        else:
            fields = _infer_fields([{str(col): v} for v in s.tolist()])
            out.extend(fields)
    return out


def _time_field(fields: list[InferredField], wanted: str | None) -> InferredField | None:
    if wanted is not None:
        for f in fields:
            if f.name == wanted or f.path == wanted:
                if f.time_format is None:
                    names = [g.name for g in fields if g.time_format is not None]
                    raise ValueError(
                        f"profile(time={wanted!r}): the field holds no times (its values read as {f.type}); "
                        f"fields that hold times: {names or 'none'}"
                    )
                return f
        raise ValueError(f"profile(time={wanted!r}): no such field; fields are {[f.name for f in fields]}")
    timed = [f for f in fields if f.time_format is not None]
    for name in _TIME_NAMES:
        for f in timed:
            if f.name == name:
                return f
    return min(timed, key=lambda f: f.null_share) if timed else None


# -- disorder and prediction ------------------------------------------------------------------------------
def _window_close(
    ts: npt.NDArray[np.int64], window: Window | None, lateness_ns: int
) -> npt.NDArray[np.int64]:
    """When the (first) window of each event closes, before ``delay``: the watermark must reach it."""
    if window is None:
        return ts + lateness_ns
    if isinstance(window, TumblingWindow):
        off = window.offset_ns
        return (np.floor_divide(ts - off, window.size_ns) + 1) * window.size_ns + off + lateness_ns
    if isinstance(window, SlidingWindow):
        # the first window an event belongs to closes first: late for it means late for at least one
        first_end = (np.floor_divide(ts - window.offset_ns, window.every_ns) + 1) * window.every_ns
        return first_end + window.offset_ns + lateness_ns
    assert isinstance(window, SessionWindow)
    return ts + window.gap_ns + lateness_ns


def predict_late_fraction(
    ts: np.ndarray,
    partitions: pd.DataFrame | None,
    delay: Duration,
    *,
    window: Window | None = None,
    lateness: Duration = 0,
    idle_timeout: Duration | None = None,
    processing_ns: np.ndarray | None = None,
) -> float:
    """Share of events a window step with ``delay`` and ``lateness`` would send to ``.late``.

    Replays the events in arrival order through the window step's watermark rule (one watermark per
    partition, the smallest wins). With ``window=None`` an event counts as late when it arrives behind
    the watermark (the limit of a very short window, an upper bound for real ones). For session windows
    the estimate ignores merging. With ``idle_timeout`` the events go through the window step itself,
    told the processing time of each event (``processing_ns``; by default the running maximum event
    time, as a replay in real time delivers them), so partitions that fall silent stop holding it back.

    Examples
    --------
    >>> ts = np.array([10, 20, 5, 30], dtype=np.int64) * 1_000_000_000
    >>> predict_late_fraction(ts, None, "1s"), predict_late_fraction(ts, None, "20s")
    (0.25, 0.0)
    >>> predict_late_fraction(ts, None, 0)  # 10, 20 and 30 each raise the watermark to their own time
    0.25
    """
    delay_ns, lateness_ns = _settings_ns(delay, lateness)
    idle_ns = None if idle_timeout is None else parse_duration(idle_timeout, what="idle_timeout")
    return _predict_ns(ts, partitions, delay_ns, window, lateness_ns, None, idle_ns, processing_ns)


def _settings_ns(delay: Duration, lateness: Duration) -> tuple[int, int]:
    """``delay`` and ``lateness`` in ns, refused when negative, as a window step refuses them."""
    delay_ns = parse_duration(delay, what="delay")
    lateness_ns = parse_duration(lateness, what="lateness")
    if delay_ns < 0 or lateness_ns < 0:
        raise ValueError(
            f"delay={delay!r}, lateness={lateness!r}: delay and lateness must not be negative "
            "(a window step refuses them); use e.g. delay='10s'"
        )
    return delay_ns, lateness_ns


def _predict_ns(
    ts: np.ndarray,
    partitions: pd.DataFrame | None,
    delay_ns: int,
    window: Window | None,
    lateness_ns: int,
    assigned: list[Any] | None = None,
    idle_ns: int | None = None,
    processing_ns: np.ndarray | None = None,
) -> float:
    ok = ts != NAT_NS
    ts = ts[ok]
    if len(ts) == 0:
        return 0.0
    parts = None if partitions is None else partitions[ok].reset_index(drop=True)
    if idle_ns is not None and parts is not None and parts.shape[1]:
        proc = np.maximum.accumulate(ts) if processing_ns is None else processing_ns[ok]
        return _replay_window_step(ts, parts, delay_ns, window, lateness_ns, assigned, idle_ns, proc)
    wm = _watermarks(ts, parts, delay_ns, assigned)
    close = _window_close(ts, window, lateness_ns)
    # a window closes once the watermark reaches its end; without a window (the limit of a very short
    # one) an event is late only when strictly behind the watermark: an event that sets a new largest
    # time with delay 0 brings the watermark to its own time, and is on time
    behind = close < wm if window is None else close <= wm
    return float(np.mean(behind & (wm != _NONE)))


def _expected(parts: pd.DataFrame, assigned: list[Any] | None) -> set[Any] | None:
    """The partitions a reader that reports them (Kafka) holds the watermark back for."""
    if assigned is None:
        return None
    cols = list(parts.columns)
    rows = parts.drop_duplicates()
    seen = {tuple(r) for r in rows.itertuples(index=False)} if len(cols) > 1 else set(rows[cols[0]])
    if len(cols) > 1:
        return seen | {tuple(p) for p in assigned if isinstance(p, (tuple, list)) and len(p) == len(cols)}
    return seen | {p[-1] if isinstance(p, (tuple, list)) else p for p in assigned}


def _watermarks(
    ts: np.ndarray, partitions: pd.DataFrame | None, delay_ns: int, assigned: list[Any] | None = None
) -> np.ndarray:
    if partitions is None or partitions.shape[1] == 0:
        return np.maximum.accumulate(ts) - delay_ns
    # without idle_timeout, only partitions that sent something can hold the watermark: a silent one
    # would hold it for ever, which the suggestion's idle_timeout prevents
    expected = _expected(partitions, []) if assigned is not None else None
    w, _ = partition_watermarks(partitions, ts, list(partitions.columns), {}, _NONE, delay_ns, expected)
    return w


def _replay_window_step(
    ts: np.ndarray,
    parts: pd.DataFrame,
    delay_ns: int,
    window: Window | None,
    lateness_ns: int,
    assigned: list[Any] | None,
    idle_ns: int,
    processing_ns: np.ndarray,
) -> float:
    """Late share from the window step itself, told the processing time: idle partitions drop out.

    Events go in in arrival order, in batches of equal processing time (rounded to a quarter of the
    idle timeout); before each batch the step learns the time, as the runtime tells it.
    """
    from streamlab import agg
    from streamlab.steps import WindowStep

    by = tuple(parts.columns)
    step = WindowStep(
        "profile",
        ("sample",),
        window=window or TumblingWindow("1ns"),
        keys=(),
        aggs=(agg.count(),),
        time="__time",
        delay_ns=delay_ns,
        lateness_ns=lateness_ns,
        watermark_by=by,
        idle_timeout_ns=idle_ns,
    )
    op: Any = step.build()
    expected = _expected(parts, assigned)
    if expected is not None:
        op.expect_partitions(expected)
    frame = parts.assign(__time=pd.to_datetime(ts, utc=True))
    tick = np.floor_divide(processing_ns, max(idle_ns // 4, 1))
    cuts = np.flatnonzero(np.diff(tick)) + 1
    late = 0
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(ts)]])):
        op.on_processing_time(int(processing_ns[lo]))
        out = op.process(frame.iloc[lo:hi].reset_index(drop=True))
        late += len(out.get("late", ()))
    return late / len(ts)


def _behind(ts: np.ndarray, part_codes: np.ndarray) -> np.ndarray:
    """How far each event arrives behind the running maximum event time of its partition (ns)."""
    out = np.zeros(len(ts), dtype=np.int64)
    for code in np.unique(part_codes):
        mine = np.flatnonzero(part_codes == code)
        t = ts[mine]
        out[mine] = np.maximum.accumulate(t) - t
    return out


_QUANTILES = (0.5, 0.9, 0.99, 0.999, 1.0)


# -- the profile ----------------------------------------------------------------------------------------
@dataclass
class Profile:
    """What a sample of a stream looks like and which settings it needs (made by :func:`profile`).

    Attributes
    ----------
    fields
        Inferred fields (name, type, path, null share, time format).
    schema
        The parse schema, ready for ``Stream.parse(profile.schema, time=profile.time_field)``.
    time_field, time_format
        The event-time field and how it is written (``iso8601``, ``epoch_s``, ``epoch_ms``, ``epoch_us``).
    malformed_rate, malformed_reasons
        Share of records ``parse`` would send to dead letter, and counts per reason.
    max_record_bytes
        The parse's ``max_record_bytes`` these count with, which :meth:`pipeline`'s parse step gets.
    value_column
        The column of raw records the sample was read from, which :meth:`pipeline`'s parse step reads.
    disorder
        Per partition: events, and quantiles of how far events arrive behind the running maximum.
    suggestion
        ``delay``, ``lateness``, ``idle_timeout`` and ``ttl`` as duration text (``None``: not needed).
    late_table
        Predicted late fraction and added latency for several delays.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = [{"id": str(i), "timestamp": f"2024-01-01T00:00:{i % 60:02d}Z"} for i in range(40)]
    >>> prof = profile(rows, n=40)
    >>> prof.schema, prof.time_field, prof.time_format
    ({'id': 'string', 'timestamp': 'timestamp'}, 'timestamp', 'iso8601')
    """

    source: Any
    n: int
    raw: bool
    fields: list[InferredField]
    time_field: str | None
    time_format: str | None
    malformed_rate: float
    malformed_reasons: pd.Series
    partition_columns: tuple[str, ...]
    disorder: pd.DataFrame
    behind_ns: np.ndarray
    duplicate_rate: float
    id_field: str | None
    partition_counts: pd.Series
    skew: float
    silent_partitions: list[Any]
    assigned: list[Any] | None
    processing_ns: np.ndarray | None
    offset_gaps: int
    suggestion: dict[str, str | None]
    late_table: pd.DataFrame
    predicted_late_fraction: float
    window: Window | None
    events: pd.DataFrame = field(repr=False)
    max_record_bytes: int = MAX_RECORD_BYTES
    value_column: str = "value"

    @property
    def schema(self) -> dict[str, Any]:
        return {f.name: f.spec() for f in self.fields}

    @property
    def key_candidates(self) -> list[str]:
        """Low-cardinality fields (categories): natural window keys."""
        return [f.name for f in self.fields if f.type == "category"]

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data (JSON-ready)."""
        return {
            "n": self.n,
            "schema": self.schema,
            "time_field": self.time_field,
            "time_format": self.time_format,
            "nullable": [f.name for f in self.fields if f.null_share > 0],
            "malformed_rate": self.malformed_rate,
            "malformed_reasons": {str(k): int(v) for k, v in self.malformed_reasons.items()},
            "duplicate_rate": self.duplicate_rate,
            "id_field": self.id_field,
            "skew": self.skew,
            "silent_partitions": [str(p) for p in self.silent_partitions],
            "suggestion": dict(self.suggestion),
            "predicted_late_fraction": self.predicted_late_fraction,
        }

    def predict(self, delay: Duration, *, lateness: Duration = 0, window: Window | None = None) -> float:
        """Late fraction the sample predicts for these settings (``window`` defaults to the profile's)."""
        if self.time_field is None:
            raise ValueError("profile found no event-time field: pass profile(..., time='<field>')")
        parts = self.events[list(self.partition_columns)] if self.partition_columns else None
        delay_ns, lateness_ns = _settings_ns(delay, lateness)
        return _predict_ns(
            to_utc_ns(self.events["__time"]),
            parts,
            delay_ns,
            window or self.window,
            lateness_ns,
            self.assigned,
            parse_duration(idle)
            if (idle := self.suggestion.get("idle_timeout")) and self.processing_ns is not None
            else None,
            self.processing_ns,
        )

    def pipeline(
        self,
        window: Window | None = None,
        key: str | list[str] | None = None,
        aggs: tuple[Any, ...] | None = None,
        *,
        source: Source | None = None,
        dedup: bool | None = None,
    ) -> Any:
        """A ready :class:`~streamlab.Pipeline`: parse with the inferred schema, dedup, window, aggregate.

        ``window`` defaults to the profile's window or one minute; ``key`` to the first category field;
        ``aggs`` to a count. The window gets the suggested delay, lateness and idle timeout; dedup runs
        when the sample had duplicates. Add sinks with ``.to(...)`` on ``pipeline.steps``' streams, or
        read the collected output ``"window"`` of ``run()``.
        """
        from streamlab import agg
        from streamlab.pipeline import Pipeline, Stream

        if self.time_field is None:
            raise ValueError("profile found no event-time field: pass profile(..., time='<field>')")
        p = Pipeline(source or self.source)
        s: Stream = p.stream
        time = self.time_field
        if self.raw:
            schema = self.schema
            if self.time_format == "epoch_us":
                s = s.parse(
                    schema, time=None, value_column=self.value_column, max_record_bytes=self.max_record_bytes
                )
                s = s.map_many(EpochMicros(time))
            else:
                s = s.parse(
                    schema, time=time, value_column=self.value_column, max_record_bytes=self.max_record_bytes
                )
        sug = self.suggestion
        if dedup if dedup is not None else (self.id_field is not None and sug.get("ttl") is not None):
            s = s.dedup(self.id_field or "event_id", ttl=sug.get("ttl"), time=time)
        keys = key if key is not None else (self.key_candidates[:1] or None)
        s.window(
            window or self.window or TumblingWindow("1m"),
            key=keys,
            time=time,
            delay=sug["delay"] or 0,
            lateness=sug["lateness"] or 0,
            idle_timeout=sug["idle_timeout"] if self.partition_columns else None,
        ).agg(*(aggs or (agg.count(),)))
        return p

    def figure(self) -> Any:
        """A plotly figure: per partition, the quantiles of how far events arrive behind the maximum."""
        import plotly.graph_objects as go

        fig = go.Figure()
        labels = [f"p{q * 100:g}" if q < 1 else "max" for q in _QUANTILES]
        for part, row in self.disorder.iterrows():
            ys = [row[lbl] / 1e9 for lbl in labels]
            fig.add_trace(go.Scatter(x=labels, y=ys, mode="lines+markers", name=str(part)))
        delay = self.suggestion.get("delay")
        if delay:
            fig.add_hline(
                y=parse_duration(delay) / 1e9,
                line_dash="dash",
                annotation_text=f"suggested delay {self.suggestion['delay']}",
            )
        fig.update_layout(
            title="How far events arrive behind the running maximum event time",
            xaxis_title="quantile",
            yaxis_title="seconds behind",
            height=360,
        )
        return fig

    def _repr_html_(self) -> str:
        esc = html.escape

        def table(df: pd.DataFrame) -> str:
            return df.to_html(border=0, classes="streamlab-profile", escape=True)

        fields = pd.DataFrame(
            [
                {
                    "field": f.name,
                    "type": f.type,
                    "path": f.path,
                    "null share": f"{f.null_share:.1%}",
                    "time format": f.time_format or "",
                }
                for f in self.fields
            ],
            columns=["field", "type", "path", "null share", "time format"],  # also when no field was found
        ).set_index("field")
        reasons = self.malformed_reasons.rename("records").to_frame() if len(self.malformed_reasons) else None
        sug = pd.DataFrame(
            [
                {"setting": k, "value": v if v is not None else "not needed"}
                for k, v in self.suggestion.items()
            ]
        ).set_index("setting")
        disorder = self.disorder.copy()
        for c in disorder.columns:
            if c != "events":
                disorder[c] = [format_duration(int(v)) for v in disorder[c]]
        late = self.late_table.copy()
        late["predicted late"] = [f"{v:.3%}" for v in late["predicted late"]]
        parts = [
            "<div class='streamlab-profile'>",
            f"<h4>Stream profile: {self.n:,} events sampled (nothing committed or acknowledged)</h4>",
            f"<p>event time: <b>{esc(str(self.time_field))}</b> ({esc(str(self.time_format))}); "
            f"malformed: <b>{self.malformed_rate:.2%}</b>; duplicates: <b>{self.duplicate_rate:.2%}</b>"
            f" (id: {esc(str(self.id_field))}); partition skew (max/mean): <b>{self.skew:.2f}</b>; "
            f"silent partitions: <b>{esc(', '.join(map(str, self.silent_partitions)) or 'none')}</b></p>",
            "<h5>Schema</h5>",
            table(fields),
        ]
        if reasons is not None:
            parts += ["<h5>Malformed records</h5>", table(reasons)]
        parts += [
            "<h5>Disorder (how far events arrive behind the running maximum)</h5>",
            table(disorder),
            "<h5>Suggested settings</h5>",
            table(sug),
            f"<p>predicted late fraction at the suggestion: <b>{self.predicted_late_fraction:.3%}</b></p>",
            "<h5>Delay vs late events</h5>",
            table(late.set_index("delay")),
            "</div>",
        ]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return (
            f"Profile(n={self.n}, time_field={self.time_field!r}, malformed_rate={self.malformed_rate:.4f}, "
            f"suggestion={self.suggestion})"
        )


@dataclass(frozen=True)
class EpochMicros:
    """Turn an epoch-microseconds column into UTC timestamps (``parse`` reads epoch s and ms only).

    Examples
    --------
    >>> EpochMicros("ts")(pd.DataFrame({"ts": [1_704_067_200_000_000]}))["ts"].tolist()
    [Timestamp('2024-01-01 00:00:00+0000', tz='UTC')]
    """

    column: str

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch.assign(**{self.column: pd.to_datetime(batch[self.column], unit="us", utc=True)})


def _reason_group(reason: str) -> str:
    for prefix in ("invalid JSON", "invalid UTF-8", "expected a JSON object", "record is"):
        if reason.startswith(prefix):
            return prefix
    return reason.split(", got")[0]


def _records(column: pd.Series) -> list[Any]:
    out: list[Any] = []
    for r in column.tolist():
        if isinstance(r, (bytes, bytearray, memoryview)):
            try:
                r = bytes(r).decode("utf-8")
            except UnicodeDecodeError:
                out.append(None)
                continue
        if not isinstance(r, str):
            out.append(None)
            continue
        try:
            obj = json.loads(r)
        except (ValueError, RecursionError):  # nesting deeper than Python's stack: no record, as in parse
            out.append(None)
            continue
        out.append(obj if isinstance(obj, dict) else None)
    return out


def profile(
    source: Any,
    n: int = 10_000,
    *,
    time: str | None = None,
    window: Window | None = None,
    id_field: str | None = None,
    value_column: str = "value",
    max_record_bytes: int = MAX_RECORD_BYTES,
    timeout: Duration = "30s",
    clock: Clock | None = None,
) -> Profile:
    """Profile a bounded sample of a stream; commit and acknowledge nothing.

    Parameters
    ----------
    source
        Any :class:`~streamlab.io.Source` (Kafka, Pub/Sub, Kinesis, Event Hubs, replays, recordings),
        a DataFrame, a list of records, or a file path.
    n
        Largest number of events to read.
    time
        Event-time field; found by name and content when not given.
    window
        The window the pipeline will use: predictions then count exactly the events its window
        step would call late. ``None``: an event is late when it arrives behind the watermark.
    id_field
        Field identifying an event, for duplicates; found by name when not given.
    value_column
        Column of raw records (bytes or text) for sources that deliver them.
    max_record_bytes
        Larger records count as malformed, as the parse step (``Stream.parse``'s ``max_record_bytes``,
        the same default) sends them to dead letter; :meth:`Profile.pipeline` parses with it.
    timeout
        Longest time to wait for ``n`` events (by ``clock``).

    Returns
    -------
    Profile

    Examples
    --------
    >>> import pandas as pd
    >>> rows = [
    ...     b'{"id": "a", "kind": "x", "ts": 1704067200, "p": {"amount": 1.5}}',
    ...     b'{"id": "b", "kind": "x", "ts": 1704067210, "p": {"amount": 2.0}}',
    ...     b'{"id": "c", "kind": "x", "ts": 1704067205, "p": {"amount": null}}',
    ...     b'not json',
    ... ]
    >>> prof = profile(rows)
    >>> prof.schema
    {'id': 'string', 'kind': 'category', 'ts': 'timestamp', 'amount': {'type': 'float64', 'path': 'p.amount'}}
    >>> prof.time_field, prof.time_format, prof.malformed_rate
    ('ts', 'epoch_s', 0.25)
    >>> prof.suggestion["delay"]
    '5s'
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"profile(n={n!r}): read at least one event, e.g. n=10_000")
    if parse_duration(timeout, what="profile(timeout=...)") < 0:  # a live source's sample came out empty
        raise ValueError(f"profile(timeout={timeout!r}): a wait cannot be negative; pass e.g. timeout='30s'")
    src = _as_source(source)
    frame, arrival, assigned = read_sample(src, n, timeout=timeout, clock=clock)
    raw = value_column in frame.columns and (
        frame[value_column].map(lambda v: isinstance(v, (bytes, bytearray, str))).all()
        if len(frame)
        else True
    )
    if len(frame) == 0:
        raise ValueError(f"profile: {src!r} gave no events within {timeout}; is it empty?")
    if raw:
        objs = _records(frame[value_column])
        fields = _infer_fields([o for o in objs if o is not None])
    else:
        fields = _frame_fields(frame)
    tf = _time_field(fields, time)
    if id_field is not None and id_field not in [f.name for f in fields]:
        # its duplicate rate read 0 and the suggested pipeline deduplicated by a field events lack
        names = [f.name for f in fields]
        near = closest(id_field, names)
        raise ValueError(
            f"profile(id_field={id_field!r}): no such field; fields are {names}"
            + (f"; did you mean id_field={near!r}?" if near is not None else "")
        )
    # parse the sample exactly as the parse step will: the malformed share and reasons are its own
    reasons: Counter[str] = Counter()
    if raw:
        specs = [f.field_spec() for f in fields]
        op = ParseOperator(
            "profile",
            specs,
            value_column,
            (tf.name,) if tf is not None and tf.type == "timestamp" else (),
            max_record_bytes,
        )
        out = op.process(frame.assign(__row=np.arange(len(frame))))
        parsed = out["out"]
        for r in out.get("dead_letter", pd.DataFrame({"reason": []}))["reason"].tolist():
            reasons[_reason_group(r)] += 1
        good = parsed["__row"].to_numpy()
        events = parsed.drop(columns=["__row"])
        if tf is not None and tf.time_format == "epoch_us":
            events["__time"] = pd.to_datetime(events[tf.name], unit="us", utc=True)
        elif tf is not None:
            events["__time"] = events[tf.name]
    else:
        good = np.arange(len(frame))
        events = frame.copy()
        if tf is not None:
            ts = to_utc_ns(events[tf.path] if tf.path in events.columns else events[tf.name])
            missing = ts == NAT_NS
            for _ in range(int(missing.sum())):
                reasons[f"missing event time {tf.name!r}"] += 1
            events["__time"] = pd.Series(ts).where(~missing).astype("Int64")
            events = events[~missing].reset_index(drop=True)
            good = good[~missing]
            events["__time"] = pd.to_datetime(events["__time"].astype("int64"), utc=True)
    malformed = sum(reasons.values())
    by = next((c for c in _PARTITION_COLUMNS if all(x in frame.columns for x in c)), ())
    for c in by:
        if c not in events.columns:
            events[c] = frame[c].to_numpy()[good]
    if "_arrival_time" in frame.columns:  # a recording: when each event reached the recorded run
        arrival = to_utc_ns(frame["_arrival_time"])
    events["__arrival"] = arrival[good]
    return _analyse(
        source=src,
        n=len(frame),
        raw=bool(raw),
        fields=fields,
        tf=tf,
        malformed=malformed,
        reasons=reasons,
        events=events,
        by=by,
        assigned=assigned,
        offsets=frame[[*list(by), "offset"]] if "offset" in frame.columns and by else None,
        window=window,
        id_field=id_field,
        max_record_bytes=max_record_bytes,
        value_column=value_column,
    )


def _analyse(
    *,
    source: Any,
    n: int,
    raw: bool,
    fields: list[InferredField],
    tf: InferredField | None,
    malformed: int,
    reasons: Counter[str],
    events: pd.DataFrame,
    by: tuple[str, ...],
    assigned: list[Any] | None,
    offsets: pd.DataFrame | None,
    window: Window | None,
    id_field: str | None,
    max_record_bytes: int,
    value_column: str = "value",
) -> Profile:
    ts = to_utc_ns(events["__time"]) if "__time" in events.columns else np.zeros(0, dtype=np.int64)
    parts = events[list(by)].reset_index(drop=True) if by else None
    if parts is not None and len(by) > 1:
        codes, muniq = pd.MultiIndex.from_frame(parts).factorize()
        labels: list[Any] = [tuple(r) for r in muniq]
    elif parts is not None:
        codes, uniq = pd.factorize(parts[by[0]])
        labels = list(uniq)
    else:
        codes, labels = np.zeros(len(ts), dtype=np.int64), ["all"]
    behind = _behind(ts, codes) if len(ts) else np.zeros(0, dtype=np.int64)
    rows = []
    qlabels = [f"p{q * 100:g}" if q < 1 else "max" for q in _QUANTILES]
    for code, label in enumerate(labels):
        b = behind[codes == code]
        rows.append({"partition": label, "events": len(b), **dict(zip(qlabels, _quantiles(b)))})
    if len(labels) > 1:
        rows.append({"partition": "all", "events": len(behind), **dict(zip(qlabels, _quantiles(behind)))})
    disorder = pd.DataFrame(rows).set_index("partition")
    counts = pd.Series({lbl: int((codes == i).sum()) for i, lbl in enumerate(labels)}, name="events")
    skew = float(counts.max() / counts.mean()) if len(counts) and counts.mean() else 1.0
    seen = {lbl for lbl, c in counts.items() if c}
    silent = [
        p
        for p in (assigned or [])
        if (p if len(by) > 1 else p[-1] if isinstance(p, tuple) else p) not in seen
    ]
    gaps = 0
    if offsets is not None:
        for _, grp in offsets.groupby(list(by), sort=False):
            o = np.sort(grp["offset"].to_numpy())
            gaps += int((np.diff(o) > 1).sum())
    # duplicates: ids seen before in the sample; how far the newest event time had moved meanwhile
    idf = id_field or next((c for c in _ID_NAMES if c in events.columns), None)
    dup_rate, ttl = 0.0, None
    if idf is not None and idf in events.columns and len(events):
        ids = events[idf]
        dup = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
        dup_rate = float(dup.mean())
        if dup.any() and len(ts) == len(ids):  # a ttl only where events have times (else none)
            first_ts = pd.Series(ts).groupby(ids.to_numpy()).transform("first").to_numpy()
            newest = np.maximum.accumulate(ts)
            ttl = format_duration(nice_duration(max(float((newest - first_ts)[dup].max()) * 2, _S)))
    # processing time of each event, for idle timeouts: the arrival times when the sample was read
    # at the stream's pace, else the running maximum event time (as a replay in real time delivers them)
    arrival = events["__arrival"].to_numpy() if "__arrival" in events.columns else None
    span = int(ts.max() - ts.min()) if len(ts) else 0
    proc = arrival if arrival is not None and len(ts) and int(np.ptp(arrival)) >= span // 2 > 0 else None
    # suggestions: delay covers the bulk of the disorder, lateness the tail
    q99 = float(np.quantile(behind, 0.99)) if len(behind) else 0.0
    q999 = float(np.quantile(behind, 0.999)) if len(behind) else 0.0
    delay_ns = nice_duration(q99)
    # lateness only when the tail is close: waiting 12 times longer for 0.1 % of events rarely pays
    late_ns = max(nice_duration(q999) - delay_ns, 0) if nice_duration(q999) <= 3 * max(delay_ns, _S) else 0
    idle, idle_ns_or_none = None, None
    if by and len(ts):
        p99_gaps = []
        for code in range(len(labels)):
            t = np.sort(ts[codes == code])
            if len(t) > 1:
                p99_gaps.append(float(np.quantile(np.diff(t), 0.99)))
        idle_ns = nice_duration(max(3 * max(p99_gaps, default=0.0), _S, delay_ns))
        idle, idle_ns_or_none = format_duration(idle_ns), idle_ns
    # a sample read faster than the stream's pace (a backlog) predicts a run that reads fast too, in
    # which no partition falls idle; one read at the stream's pace, a run at that pace
    idle_sim = idle_ns_or_none if proc is not None else None
    suggestion: dict[str, str | None] = {
        "delay": format_duration(delay_ns),
        "lateness": format_duration(late_ns),
        "idle_timeout": idle,
        "ttl": ttl,
    }
    candidates = [0]
    if len(behind):  # events behind the largest time seen so far (none: no delay is worth a row)
        quantiles = (nice_duration(float(np.quantile(behind, q))) for q in (0.5, 0.9, 0.99, 0.999, 1.0))
        candidates = sorted({0, *quantiles})
    table = pd.DataFrame(
        [
            {
                "delay": format_duration(d),
                "predicted late": _predict_ns(ts, parts, d, window, 0, assigned, idle_sim, proc),
                "added latency": format_duration(d),
            }
            for d in candidates
        ]
    )
    predicted = _predict_ns(ts, parts, delay_ns, window, late_ns, assigned, idle_sim, proc)
    return Profile(
        source=source,
        n=n,
        raw=raw,
        fields=fields,
        time_field=tf.name if tf is not None else None,
        time_format=tf.time_format if tf is not None else None,
        malformed_rate=malformed / n if n else 0.0,
        malformed_reasons=pd.Series(dict(reasons.most_common()), dtype="int64", name="records"),
        partition_columns=by,
        disorder=disorder,
        behind_ns=behind,
        duplicate_rate=dup_rate,
        id_field=idf,
        partition_counts=counts,
        skew=skew,
        silent_partitions=silent,
        assigned=assigned,
        processing_ns=proc,
        offset_gaps=gaps,
        suggestion=suggestion,
        late_table=table,
        predicted_late_fraction=predicted,
        window=window,
        events=events,
        max_record_bytes=max_record_bytes,
        value_column=value_column,
    )


def _quantiles(b: np.ndarray) -> list[int]:
    if len(b) == 0:
        return [0] * len(_QUANTILES)
    return [int(np.quantile(b, q, method="higher")) for q in _QUANTILES]
