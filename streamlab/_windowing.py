"""Runtime of tumbling and sliding windows: vectorized, slot-based aggregation on event time.

Each batch is pre-aggregated per (window, key) cell with ``numpy.bincount`` and then folded into
persistent *slots* (one per open window and key), as Flink's local-global aggregation does. Lateness is
decided per event with the watermark as it stood when that event arrived (a running maximum over the
batch), so the result never depends on how the stream was cut into batches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from streamlab._agg_inputs import add_rows, column_values, split_unfit_values
from streamlab._compat import factorize
from streamlab._dead_letter import dead_letter_frame
from streamlab._intcols import result_column
from streamlab._keytable import KeyIndex, SlotTable
from streamlab._time import MAX_NS, NAT_NS, ns_to_timestamp, to_utc_ns, unreadable_time_reason, utc_array
from streamlab.aggregators import Aggregator, _CountStore
from streamlab.operators import Operator, Outputs
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow, Window, floor_div

_NO_WATERMARK = int(np.iinfo(np.int64).min)


def present_codes(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of ``codes`` (all in ``[0, n)``), sorted; each row's position among them; their counts."""
    if n <= 4 * len(codes) + 4096:
        counts = np.bincount(codes, minlength=n)
        present = np.flatnonzero(counts)
        if len(present) == n:
            return present, codes, counts
        compact = np.full(n, -1, dtype=np.int64)
        compact[present] = np.arange(len(present))
        return present, compact[codes], counts[present]
    present, group, sizes = np.unique(codes, return_inverse=True, return_counts=True)
    return present, group, sizes


def running_watermark(ts: np.ndarray, prev_max: int, delay_ns: int) -> tuple[np.ndarray, int]:
    """Watermark at each event's arrival (including itself) and the new maximum event time."""
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64), prev_max
    cm = np.maximum.accumulate(ts)
    if prev_max != _NO_WATERMARK:
        np.maximum(cm, prev_max, out=cm)
    return cm - delay_ns, int(cm[-1])


_BLOCK = 1024


def late_pairs(
    ts: np.ndarray,
    rows: np.ndarray,
    close_at: np.ndarray,
    prev_max: int,
    delay_ns: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Which (row, window) pairs are late: ``close_at <= watermark at the row's arrival``.

    The watermark at arrival is a running maximum, which is slow to compute for every event; block
    maxima bound it from below and above, so only pairs between the bounds need the exact value.
    Returns the positions of the late pairs and the watermark at their arrival. (One pair per row, as
    tumbling windows give: :func:`late_rows`.)
    """
    n = len(ts)
    n_blocks = -(-n // _BLOCK)
    padded = np.full(n_blocks * _BLOCK, np.iinfo(np.int64).min, dtype=np.int64)
    padded[:n] = ts
    block_max = padded.reshape(n_blocks, _BLOCK).max(axis=1)
    upper = np.maximum.accumulate(block_max)
    lower = np.concatenate([[np.iinfo(np.int64).min], upper[:-1]])
    if prev_max != _NO_WATERMARK:
        np.maximum(upper, prev_max, out=upper)
        np.maximum(lower, prev_max, out=lower)
    blk = rows // _BLOCK
    surely = close_at <= lower[blk] - delay_ns
    maybe = ~surely & (close_at <= upper[blk] - delay_ns)
    late = surely
    wm = np.zeros(len(rows), dtype=np.int64)
    wm[surely] = lower[blk[surely]] - delay_ns  # replaced by the exact value below
    need = surely | maybe
    if need.any():
        idx = np.flatnonzero(need)
        exact = watermark_at(ts, rows[idx], prev_max, delay_ns)
        wm[idx] = exact
        late = np.zeros(len(rows), dtype=bool)
        late[idx] = close_at[idx] <= exact
    pos = np.flatnonzero(late)
    return pos, wm[pos]


def late_rows(
    ts: np.ndarray, kwin: np.ndarray, slide_ns: int, close_shift: int, prev_max: int, delay_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are late when each row is in one window (tumbling), closing at ``kwin * slide + close_shift``.

    A row is late when its window closed at or before the watermark at its arrival (the running maximum
    of event times minus ``delay_ns``). Per block of rows, the watermark lies between the running maximum
    before the block and after it, and the earliest window of the block closes first; only blocks where
    that window may have closed need the exact running maximum. Returns the late rows and the watermark at
    their arrival.
    """
    n = len(ts)
    n_full = n // _BLOCK
    tail = n_full * _BLOCK < n
    b_max = np.empty(n_full + tail, dtype=np.int64)
    b_kmin = np.empty(n_full + tail, dtype=np.int64)
    if n_full:
        b_max[:n_full] = ts[: n_full * _BLOCK].reshape(n_full, _BLOCK).max(axis=1)
        b_kmin[:n_full] = kwin[: n_full * _BLOCK].reshape(n_full, _BLOCK).min(axis=1)
    if tail:
        b_max[-1] = ts[n_full * _BLOCK :].max()
        b_kmin[-1] = kwin[n_full * _BLOCK :].min()
    upper = np.maximum.accumulate(b_max)
    if prev_max != _NO_WATERMARK:
        np.maximum(upper, prev_max, out=upper)
    hit = np.flatnonzero(b_kmin * slide_ns + close_shift <= upper - delay_ns).tolist()
    if not hit:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(hit) * 4 > len(upper):  # late rows all over the batch: the exact running maximum everywhere
        wm, _ = running_watermark(ts, prev_max, delay_ns)
        pos = np.flatnonzero(kwin * slide_ns + close_shift <= wm)
        return pos, wm[pos]
    pos_parts, wm_parts = [], []
    for b in hit:
        lo, hi = b * _BLOCK, min((b + 1) * _BLOCK, n)
        seed = int(upper[b - 1]) if b else prev_max
        wm, _ = running_watermark(ts[lo:hi], seed, delay_ns)
        p = np.flatnonzero(kwin[lo:hi] * slide_ns + close_shift <= wm)
        pos_parts.append(p + lo)
        wm_parts.append(wm[p])
    return np.concatenate(pos_parts), np.concatenate(wm_parts)


_NONE = -(2**62)  # "no watermark yet" inside arrays: far below any event time, safe from overflow


def partition_watermarks(
    batch: pd.DataFrame,
    ts: np.ndarray,
    by: list[str],
    state: dict[Any, int],
    floor: int,
    delay_ns: int,
    expected: set[Any] | None = None,
    idle: set[Any] | frozenset[Any] = frozenset(),
    one: Any = None,
) -> tuple[np.ndarray, set[Any]]:
    """Watermark at each event's arrival when every source partition has its own.

    A partition's watermark follows the largest event time seen in it; the step's watermark is the
    smallest over the partitions seen so far, never moving backwards (``floor``). A consumer that reads
    partitions one chunk at a time therefore cannot push the watermark past partitions it has not
    caught up with. ``expected`` partitions (those the source is assigned) that have produced
    nothing yet hold the watermark back. ``idle`` partitions hold nothing back until they have events
    again. ``state`` (partition -> largest event time) is updated in place. Returns the watermarks and
    the partitions present in the batch. Without ``by`` columns (or without them in ``batch``) the
    whole batch is partition ``one`` (the source it came from, when the step follows several).
    """
    uniq: Any
    if not by or any(c not in batch.columns for c in by):
        # data without the partition column (a test replay of a Kafka pipeline, say): one partition
        codes, uniq = np.zeros(len(ts), dtype=np.int64), pd.Index([one], dtype=object)
    elif len(by) == 1:
        codes, uniq = factorize(batch[by[0]], use_na_sentinel=False)
    else:
        codes, uniq = pd.MultiIndex.from_frame(batch[by]).factorize()
    values = [None if (isinstance(v, float) and v != v) else v for v in list(uniq)]
    n = len(ts)
    top = np.iinfo(np.int64).max
    w = np.full(n, top, dtype=np.int64)
    present = set(values)
    if expected is not None:
        # partitions no longer assigned (revoked, or a finished parent shard) stop holding the watermark
        for v in [v for v in state if v not in expected and v not in present]:
            del state[v]
    waiting = {e for e in (expected or ()) if e not in state and e not in idle}  # assigned, never heard from
    hold = n if waiting - present else 0  # no watermark before this position
    for v, latest in state.items():
        if v not in present and v not in idle:
            np.minimum(w, latest, out=w)
    for j, v in enumerate(values):
        mine = codes == j
        if v in waiting:
            hold = max(hold, int(np.argmax(mine)))
        run_max = np.where(mine, ts, _NONE)
        run_max[0] = max(int(run_max[0]), state.get(v, _NONE))
        run_max = np.maximum.accumulate(run_max)
        np.minimum(w, np.where(run_max == _NONE, top, run_max), out=w)
        state[v] = int(run_max[-1])
    w = np.where(w == top, _NONE, w - delay_ns)
    w[:hold] = _NONE
    w = np.maximum.accumulate(np.maximum(w, floor))
    return w, present


class _Watermarks:
    """The watermark of a step: one largest event time, or one per source partition (``by``), or one
    per source when the step reads a union of several sources (``sources``; see :meth:`follow_sources`).
    """

    max_ts: int
    delay_ns: int
    by: Sequence[str]
    part_max: dict[Any, int]
    wm_floor: int

    def _init_watermarks(self, by: list[str] | None, idle_ns: int | None = None) -> None:
        self.by = list(by or [])
        self.sources: tuple[str, ...] = ()
        self.origin: str | None = None
        self.part_max = {}
        self.wm_floor = _NONE
        self.expected_partitions: set[Any] | None = None
        self.idle_ns = idle_ns
        self.now_ns: int | None = None
        # partition -> processing time of its latest event, or of when it was first expected; not
        # checkpointed: after a restore every partition starts a fresh idle timeout
        self.heard_ns: dict[Any, int] = {}

    @property
    def per_partition(self) -> bool:
        """Whether the watermark is the smallest of several (partitions' or sources'), not one maximum."""
        return bool(self.by or self.sources)

    def follow_sources(self, sources: Sequence[str]) -> bool:
        """The step reads a union of ``sources``: keep one watermark per source (unless ``by`` columns
        already name partitions), the step's being the smallest, as Flink and Beam hold a merged
        stream's. The runtime then sets :attr:`origin` to the source of each batch it delivers and
        tells the sources still running through :meth:`expect_partitions`."""
        if self.by:
            return False
        self.sources = tuple(sources)
        if self.wm_floor == _NONE and getattr(self, "max_ts", _NO_WATERMARK) != _NO_WATERMARK:
            self.wm_floor = self.max_ts - self.delay_ns  # restored from a checkpoint of one watermark
        return True

    def expect_partitions(self, partitions: set[Any]) -> None:
        """The partitions the sources are assigned (the runtime tells; see ``SourceReader.partitions``)."""
        self.expected_partitions = partitions

    def idle_partitions(self) -> set[Any]:
        """Partitions without events for ``idle_timeout`` of processing time: they hold no watermark back."""
        if self.idle_ns is None or self.now_ns is None:
            return set()
        now, heard = self.now_ns, self.heard_ns
        if self.expected_partitions is not None:
            for gone in [p for p in heard if p not in self.expected_partitions and p not in self.part_max]:
                del heard[gone]
            for p in self.expected_partitions:
                heard.setdefault(p, now)
        for p in self.part_max:
            heard.setdefault(p, now)
        return {p for p, t in heard.items() if now - t >= self.idle_ns}

    def _advance_idle_watermark(self, now_ns: int) -> bool:
        """Processing time is ``now_ns``: drop idle partitions from the watermark; True if it moved.

        The watermark follows the partitions that had events within ``idle_timeout``; when all are
        idle, the ones that had events most recently. A partition assigned but never heard from
        holds it until it is idle too. Called before each batch and while no data arrives.
        """
        self.now_ns = now_ns
        idle = self.idle_partitions()
        if not idle:
            return False
        if any(p not in self.part_max and p not in idle for p in self.expected_partitions or ()):
            return False
        holders = [m for p, m in self.part_max.items() if p not in idle]
        if not holders and self.part_max:
            latest = max(self.heard_ns[p] for p in self.part_max)
            holders = [m for p, m in self.part_max.items() if self.heard_ns[p] == latest]
        wm = min(holders) - self.delay_ns if holders else _NONE
        if wm <= self.wm_floor:
            return False
        self.wm_floor = wm
        return True

    def watermark_ns(self) -> int | None:
        if self.per_partition:
            return None if self.wm_floor == _NONE else self.wm_floor
        return None if self.max_ts == _NO_WATERMARK else self.max_ts - self.delay_ns

    def _event_watermarks(self, batch: pd.DataFrame, ts: np.ndarray) -> np.ndarray:
        """Watermark at each event's arrival (``_NONE`` while there is none); updates the state."""
        if self.per_partition:
            w, present = partition_watermarks(
                batch,
                ts,
                list(self.by),
                self.part_max,
                self.wm_floor,
                self.delay_ns,
                self.expected_partitions,
                self.idle_partitions(),
                self.origin,
            )
            if self.now_ns is not None:
                for p in present:
                    self.heard_ns[p] = self.now_ns
            self.wm_floor = int(w[-1])
            return w
        w, self.max_ts = running_watermark(ts, self.max_ts, self.delay_ns)
        return w

    def _final_watermark(self) -> int:
        wm = self.watermark_ns()
        return _NONE if wm is None else wm

    def _closed_by_flush(self, outputs: Outputs, lateness_ns: int) -> Outputs:
        """``outputs`` of a flush, the watermark moved to where the windows emitted close (their
        latest end + ``lateness_ns``), so their later events are late, as after any close."""
        frame = outputs.get("out")
        if frame is None or not len(frame) or "window_end" not in frame.columns:
            return outputs
        self._raise_watermark(int(to_utc_ns(frame["window_end"]).max()) + lateness_ns)
        return outputs

    def _raise_watermark(self, at_least: int) -> None:
        """Move the watermark up to ``at_least`` (never down), as if an event had put it there."""
        if self.per_partition:
            self.wm_floor = max(self.wm_floor, at_least)
        elif self.max_ts == _NO_WATERMARK or self.max_ts < at_least + self.delay_ns:
            self.max_ts = at_least + self.delay_ns


def watermark_at(ts: np.ndarray, rows: np.ndarray, prev_max: int, delay_ns: int) -> np.ndarray:
    """Watermark at the arrival of each of ``rows``, without a full running maximum."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(rows) == 1 or bool((rows[1:] > rows[:-1]).all()):
        uniq, inv = rows, None
    else:
        uniq, inv = np.unique(rows, return_inverse=True)
    starts = np.concatenate([[0], uniq[:-1] + 1])
    seg = np.maximum.reduceat(ts[: uniq[-1] + 1], starts)
    pref = np.maximum.accumulate(seg)
    if prev_max != _NO_WATERMARK:
        np.maximum(pref, prev_max, out=pref)
    out = pref - delay_ns
    return out if inv is None else out[inv]


def late_frame(
    batch: pd.DataFrame, rows: np.ndarray, start: np.ndarray, end: np.ndarray, wm: np.ndarray
) -> pd.DataFrame:
    """Rows of ``batch`` that missed a closed window, with that window and the watermark at arrival."""
    late = batch.iloc[rows].reset_index(drop=True)
    late["window_start"] = utc_array(start)
    late["window_end"] = utc_array(end)
    late["watermark"] = utc_array(wm)
    return late


def require_columns(batch: pd.DataFrame, step_id: str, time: str | None, keys: Sequence[str] = ()) -> None:
    """Stop with the fix when ``batch`` lacks the event-time column or a key column the step reads: a step
    before it (``map_many``, ``select``) dropped it, which only a batch can show.

    Examples
    --------
    >>> require_columns(pd.DataFrame({"x": [1]}), "window", "timestamp")
    Traceback (most recent call last):
    ...
    KeyError: "step 'window': the batch has no event-time column 'timestamp' (its columns: ['x']); a step before it (map_many, map_one, select) dropped it. Fix: keep 'timestamp' in that step's output, or pass time='<column>' to this step"
    """
    if time is not None and time not in batch.columns:
        raise KeyError(
            f"step {step_id!r}: the batch has no event-time column {time!r} (its columns: "
            f"{list(batch.columns)}); a step before it (map_many, map_one, select) dropped it. Fix: keep "
            f"{time!r} in that step's output, or pass time='<column>' to this step"
        )
    missing = [k for k in keys if k not in batch.columns]
    if missing:
        raise KeyError(
            f"step {step_id!r}: the batch has no key column {missing[0]!r} (its columns: "
            f"{list(batch.columns)}); a step before it (map_many, map_one, select) dropped it. Fix: keep "
            f"{missing[0]!r} in that step's output, or key the step by a column the stream has"
        )


def split_missing_time(
    batch: pd.DataFrame, time: str, step_id: str, out: Outputs
) -> tuple[pd.DataFrame, np.ndarray]:
    """Event times of ``batch``; rows without one go to ``out["dead_letter"]`` and are removed."""
    require_columns(batch, step_id, time)
    ts = to_utc_ns(batch[time])
    if len(ts) == 0 or int(ts.min()) != NAT_NS:  # NAT_NS is the smallest int64
        return batch, ts
    valid = ts != NAT_NS
    out["dead_letter"] = missing_time_frame(batch, np.flatnonzero(~valid), step_id, time)
    return batch[valid].reset_index(drop=True), ts[valid]


def split_unreadable(
    batch: pd.DataFrame,
    time: str,
    step_id: str,
    out: Outputs,
    aggs: Sequence[Aggregator],
    keys: Sequence[str] = (),
    partitions: Sequence[str] = (),
) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`split_missing_time` after :func:`~streamlab._agg_inputs.split_unfit_values`: the batch as the
    aggregators read it and its event times; rows of either kind go to ``out["dead_letter"]``."""
    require_columns(batch, step_id, time, keys)
    batch, unfit = split_unfit_values(batch, aggs, step_id, keys, partitions)
    batch, ts = split_missing_time(batch, time, step_id, out)
    if unfit is not None:
        untimed = out.get("dead_letter")
        out["dead_letter"] = unfit if untimed is None else pd.concat([unfit, untimed], ignore_index=True)
    return batch, ts


def window_reach_ns(window: Window) -> int:
    """How far past an event's time its window can end (a session's gap; a window's size and offset)."""
    if isinstance(window, SessionWindow):
        return window.gap_ns
    assert isinstance(window, (TumblingWindow, SlidingWindow))
    return window.size_ns + window.offset_ns


def event_time_range(window: Window, delay_ns: int, lateness_ns: int) -> tuple[int, int]:
    """The event times a window step can place: their windows' bounds, close points (end + lateness) and
    watermarks (time - delay) are int64 nanoseconds. Times nearer the ends of that range would wrap
    round (a window ending in 1677), so the step sends them to dead letter instead."""
    reach = window_reach_ns(window)
    if isinstance(window, SessionWindow):
        return NAT_NS + 1 + delay_ns + lateness_ns + reach, MAX_NS - reach - lateness_ns
    assert isinstance(window, (TumblingWindow, SlidingWindow))
    off, every = window.offset_ns, window.slide_ns
    # the last event time whose latest window (start k * every + offset <= t) closes within range
    last_start = MAX_NS - window.size_ns - lateness_ns
    hi = ((last_start - off) // every) * every + off + every - 1
    return NAT_NS + 1 + off + max(window.size_ns, delay_ns + lateness_ns), min(hi, MAX_NS)


def split_out_of_range(
    batch: pd.DataFrame, ts: np.ndarray, span: tuple[int, int], step_id: str, out: Outputs
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose event time is outside ``span`` (:func:`event_time_range`) go to ``out["dead_letter"]``."""
    lo, hi = span
    if len(ts) == 0 or (int(ts.min()) >= lo and int(ts.max()) <= hi):
        return batch, ts
    bad = (ts < lo) | (ts > hi)
    first, last = pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC")
    reason = (
        f"event time outside {first.isoformat()} .. {last.isoformat()}, the times whose window (with its "
        "lateness and the watermark's delay) nanosecond timestamps can hold; timestamps end in 1677 and "
        "2262. Fix: correct the event time at its source, or filter such times out before the window"
    )
    add_dead_letters(out, [dead_letter_frame(batch[bad], reason, step_id)])
    keep = ~bad
    return batch[keep].reset_index(drop=True), ts[keep]


def add_dead_letters(out: Outputs, frames: list[pd.DataFrame]) -> None:
    """Append ``frames`` (rows a custom aggregator failed on) to ``out["dead_letter"]``."""
    if frames:
        have = out.get("dead_letter")
        out["dead_letter"] = pd.concat(([] if have is None else [have]) + frames, ignore_index=True)


def missing_time_frame(batch: pd.DataFrame, rows: np.ndarray, step_id: str, time: str) -> pd.DataFrame:
    """Dead-letter rows whose event time is missing or unreadable."""
    return dead_letter_frame(batch.iloc[rows], unreadable_time_reason(time), step_id)


class WindowOperator(_Watermarks, Operator):
    """Tumbling or sliding windows per key (see ``Stream.window``)."""

    output_names = ("out", "late", "dead_letter", "early")

    def __init__(
        self,
        step_id: str,
        window: TumblingWindow | SlidingWindow,
        keys: list[str],
        aggs: list[Aggregator],
        time: str,
        delay_ns: int,
        lateness_ns: int,
        early: bool = False,
        watermark_by: list[str] | None = None,
        idle_timeout_ns: int | None = None,
    ) -> None:
        self.step_id = step_id
        self.window = window
        self.keys = keys
        self.aggs = aggs
        self.time = time
        self.delay_ns = delay_ns
        self.lateness_ns = lateness_ns
        self.early = early
        self.size_ns = window.size_ns
        self.slide_ns = window.slide_ns
        self.key_index = KeyIndex(len(keys))
        self.slots = SlotTable()
        self.stores = [a.store() for a in aggs]
        self.max_ts = _NO_WATERMARK
        self.span = event_time_range(window, delay_ns, lateness_ns)
        self._init_watermarks(watermark_by, idle_timeout_ns)

    # -- state -------------------------------------------------------------------------------------
    def snapshot(self) -> Any:
        # a copy: the runtime keeps the last snapshot in memory (``result.checkpoint``, the state a cut
        # batch falls back to), and the next batches must not change it
        keep = ("key_index", "slots", "stores", "max_ts", "part_max", "wm_floor")
        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k in keep})

    def restore(self, state: Any) -> None:
        self.__dict__.update(copy.deepcopy(state))

    def open_state(self) -> dict[str, Any]:
        starts = sorted(self.slots.by_window)
        return {
            "open_windows": [(ns_to_timestamp(s), ns_to_timestamp(s + self.size_ns)) for s in starts],
            "open_slots": len(self.slots),
            "keys": len(self.key_index),
        }

    # -- processing --------------------------------------------------------------------------------
    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        out: Outputs = {}
        batch, ts_all = split_unreadable(batch, self.time, self.step_id, out, self.aggs, self.keys, self.by)
        batch, ts_all = split_out_of_range(batch, ts_all, self.span, self.step_id, out)
        if len(batch) == 0:
            return out
        # (row, window) pairs: ``ev`` is each pair's row (None: one pair per row, in order), ``kwin`` its
        # window's index; the window starts at kwin * slide + offset and closes at kwin * slide + close_shift
        ev: np.ndarray | None
        if isinstance(self.window, TumblingWindow):
            off = self.window.offset_ns
            ev, kwin = None, floor_div(ts_all - off if off else ts_all, self.size_ns)
        else:
            ev, kwin = self.window.assign_index(ts_all)
        close_shift = self.window.offset_ns + self.size_ns + self.lateness_ns
        pos = np.zeros(0, dtype=np.int64)
        if self.per_partition:
            wm = self._event_watermarks(batch, ts_all)
            w_final = int(wm[-1])
            wm_pairs = wm if ev is None else wm[ev]
            pos = np.flatnonzero(kwin * self.slide_ns + close_shift <= wm_pairs)
            wm_late = wm_pairs[pos]
        else:
            prev_max = self.max_ts
            batch_max = int(ts_all.max())
            self.max_ts = batch_max if prev_max == _NO_WATERMARK else max(prev_max, batch_max)
            w_final = self.max_ts - self.delay_ns
            # only pairs whose window closes before the final watermark can be late
            if int(kwin.min()) * self.slide_ns + close_shift <= w_final:
                if ev is None:
                    pos, wm_late = late_rows(
                        ts_all, kwin, self.slide_ns, close_shift, prev_max, self.delay_ns
                    )
                else:
                    close_at = kwin * self.slide_ns + close_shift
                    pos, wm_late = late_pairs(ts_all, ev, close_at, prev_max, self.delay_ns)
        if len(pos):
            start = kwin[pos] * self.slide_ns + self.window.offset_ns
            out["late"] = late_frame(
                batch, pos if ev is None else ev[pos], start, start + self.size_ns, wm_late
            )
            keep = np.ones(len(kwin), dtype=bool)
            keep[pos] = False
            ev = np.flatnonzero(keep) if ev is None else ev[keep]
            kwin = kwin[keep]
        if len(kwin):
            failed: list[pd.DataFrame] = []
            touched = self._aggregate(batch, ts_all, ev, kwin, dead=failed)
            add_dead_letters(out, failed)
            if self.early:
                out["early"] = self._emit(touched, final=False)
        closed = self._close(w_final)
        if closed is not None:
            out["out"] = closed
        return out

    def _aggregate(
        self,
        batch: pd.DataFrame,
        ts: np.ndarray,
        ev: np.ndarray | None,
        kwin: np.ndarray,
        keys: tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None = None,
        dead: list[pd.DataFrame] | None = None,
    ) -> np.ndarray:
        """Fold rows into their (window, key) slots; ``ev`` maps pairs to rows (``None``: one pair per row).

        ``kwin`` is each pair's window index: the window starts at ``kwin * slide + offset``. ``keys`` are
        the batch's local key codes (:meth:`KeyIndex.local_codes`), when the caller has them already.
        Rows a custom aggregator fails on are left out, as dead letters appended to ``dead``.
        Returns the slots touched.
        """
        local, ids_of = keys if keys is not None else self.key_index.local_codes(batch, self.keys)
        if ev is not None:
            local = local[ev]
        k0 = int(kwin.min())
        n_w = int(kwin.max()) - k0 + 1
        n_k = int(local.max()) + 1
        if n_k > 64 and n_w * n_k > 4 * len(local) + 4096:
            # few of many possible keys (a large categorical, say): number the ones present densely
            k_present, local, _ = present_codes(local, n_k)
            n_k = len(k_present)
            outer = ids_of
            ids_of = lambda u: outer(k_present[u])
        cell = kwin * n_k
        cell += local
        if k0:
            cell -= k0 * n_k
        present, group, sizes = present_codes(cell, n_w * n_k)
        g_start = (present // n_k + k0) * self.slide_ns + self.window.offset_ns
        g_local = present % n_k
        k_uniq, k_inv, _ = present_codes(g_local, n_k)
        g_key = ids_of(k_uniq)[k_inv]
        slots, new = self.slots.slots_for(g_start, g_key)
        if len(new):
            self.key_index.hold(self.slots.key[new])
            for st in self.stores:
                st.grow(self.slots.size)
        n_groups = len(present)
        ts_rows = ts if ev is None else ts[ev]
        if any(st.user_code for st in self.stores):
            bad, reasons = add_rows(batch, self.aggs, self.stores, group, n_groups, slots, ts_rows, ev)
            if len(bad) and dead is not None:
                dead.append(dead_letter_frame(batch.iloc[bad], reasons, self.step_id))
            return slots
        for agg, st in zip(self.aggs, self.stores):
            if agg.column is None:
                if isinstance(st, _CountStore):
                    st.arrays[0][slots] += sizes
                    continue
                values = None
            else:
                col = column_values(batch, agg)
                values = col if ev is None else col[ev]
            st.add(group, n_groups, slots, values, ts_rows)
        return slots

    def _emit(self, slots: np.ndarray, final: bool) -> pd.DataFrame:
        order = np.lexsort((self.slots.key[slots], self.slots.start[slots]))
        slots = slots[order]
        starts = self.slots.start[slots]
        data: dict[str, Any] = self.key_index.key_columns(self.slots.key[slots], self.keys)
        data["window_start"] = utc_array(starts)
        data["window_end"] = utc_array(starts + self.size_ns)
        for agg, st in zip(self.aggs, self.stores):
            data[agg.name] = result_column(st.results(slots))
        frame = pd.DataFrame(data)
        if not final:
            frame["is_final"] = False
        return frame

    def _close(self, watermark: int) -> pd.DataFrame | None:
        due = [s for s in self.slots.by_window if s + self.size_ns + self.lateness_ns <= watermark]
        if not due:
            return None
        return self._pop(due)

    def _pop(self, starts: list[int]) -> pd.DataFrame:
        slots = self.slots.pop_windows(starts)
        frame = self._emit(slots, final=True)
        for st in self.stores:
            st.clear(slots)
        self.key_index.release(self.slots.key[slots])
        return frame

    def on_end(self) -> Outputs:
        if not self.slots.by_window:
            return {}
        return {"out": self._pop(list(self.slots.by_window))}

    def on_flush(self) -> Outputs:
        return self._closed_by_flush(self.on_end(), self.lateness_ns)

    def on_processing_time(self, now_ns: int) -> Outputs:
        if not self._advance_idle_watermark(now_ns):
            return {}
        closed = self._close(self.wm_floor)
        return {} if closed is None else {"out": closed}


class PanedWindowOperator(WindowOperator):
    """Sliding windows whose size is a multiple of the slide, aggregated per pane.

    Each event is folded once, into its pane (one slide long); a window's result merges its
    ``size / every`` panes when it closes. So the work per event does not grow with the overlap, as it
    does when every (event, window) pair is aggregated. Windows are emitted exactly where the watermark
    crosses their close point, between the events of a batch, so an event arriving after a window closed
    never reaches that window's result even though it shares panes with it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        window = self.window
        assert isinstance(window, SlidingWindow)
        self.every = window.every_ns
        self.offset = window.offset_ns
        self.n = window.size_ns // window.every_ns
        self.emitted_upto: int | None = None  # windows with index <= this are closed

    def snapshot(self) -> Any:
        return {**super().snapshot(), "emitted_upto": self.emitted_upto}

    def open_state(self) -> dict[str, Any]:
        panes = sorted(self.slots.by_window)
        lo = None if self.emitted_upto is None else self.emitted_upto + 1
        starts = sorted({(s - self.offset) // self.every - j for s in panes for j in range(self.n)})
        starts = [w for w in starts if lo is None or w >= lo]
        return {
            "open_windows": [
                (
                    ns_to_timestamp(w * self.every + self.offset),
                    ns_to_timestamp(w * self.every + self.offset + self.size_ns),
                )
                for w in starts
            ],
            "open_slots": len(self.slots),
            "keys": len(self.key_index),
        }

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        out: Outputs = {}
        batch, ts_all = split_unreadable(batch, self.time, self.step_id, out, self.aggs, self.keys, self.by)
        batch, ts_all = split_out_of_range(batch, ts_all, self.span, self.step_id, out)
        if len(batch) == 0:
            return out
        wm = self._event_watermarks(batch, ts_all)
        pane = floor_div(ts_all - self.offset, self.every)
        # windows w <= closed[i] had closed when event i arrived: (w + n) * every + offset + lateness <= wm
        closed = floor_div(wm - self.offset - self.lateness_ns, self.every) - self.n
        first = pane - self.n + 1
        n_late = np.maximum(np.minimum(pane, closed) - first + 1, 0)
        if n_late.any():
            rows = np.repeat(np.arange(len(pane)), n_late)
            within = np.arange(int(n_late.sum())) - np.repeat(np.cumsum(n_late) - n_late, n_late)
            start = (first[rows] + within) * self.every + self.offset
            out["late"] = late_frame(batch, rows, start, start + self.size_ns, wm[rows])
        admitted = pane > closed  # at least one of its windows is still open
        keys = self.key_index.local_codes(batch, self.keys)
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(closed)) + 1, [len(pane)]])
        emitted = []
        failed: list[pd.DataFrame] = []
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            frame = self._emit_upto(int(closed[a]))
            if frame is not None:
                emitted.append(frame)
            sel = np.flatnonzero(admitted[a:b]) + a
            if len(sel):
                self._aggregate(batch, ts_all, sel, pane[sel], keys, dead=failed)
        add_dead_letters(out, failed)
        if emitted:
            out["out"] = emitted[0] if len(emitted) == 1 else pd.concat(emitted, ignore_index=True)
        return out

    def on_processing_time(self, now_ns: int) -> Outputs:
        if not self._advance_idle_watermark(now_ns):
            return {}
        frame = self._emit_upto((self.wm_floor - self.offset - self.lateness_ns) // self.every - self.n)
        return {} if frame is None else {"out": frame}

    def _emit_upto(self, last: int | None) -> pd.DataFrame | None:
        """Emit every window with data and index in (emitted_upto, last]; free panes no window needs."""
        panes_ns = list(self.slots.by_window)
        if not panes_ns:
            if last is not None:
                self.emitted_upto = last if self.emitted_upto is None else max(self.emitted_upto, last)
            return None
        panes = (np.asarray(panes_ns, dtype=np.int64) - self.offset) // self.every
        if last is None:
            last = int(panes.max())
        lo = int(panes.min()) - self.n + 1 if self.emitted_upto is None else self.emitted_upto + 1
        if last < lo:
            return None
        frame = self._merge_windows(np.sort(panes), lo, last)
        done = [s for s, q in zip(panes_ns, panes.tolist()) if q <= last]
        if done:
            slots = self.slots.pop_windows(done)
            for st in self.stores:
                st.clear(slots)
            self.key_index.release(self.slots.key[slots])
        self.emitted_upto = last if self.emitted_upto is None else max(self.emitted_upto, last)
        return frame

    def _merge_windows(self, panes: np.ndarray, lo: int, last: int) -> pd.DataFrame | None:
        """The results of the windows with index in ``[lo, last]`` that hold data, from the open
        ``panes`` (indices, ascending): each pane with data goes to the windows it belongs to, so the
        work follows the panes and windows with data, not windows times panes per window (a one-day
        window sliding by the second has 86,400 panes, nearly all empty)."""
        # every (window, pane slot) pair, pane by pane, then one target per (window, key) in window
        # then key order (a stable sort: within a target, its panes stay in time order)
        w_parts, s_parts = [], []
        for p in panes.tolist():
            first, end = max(p - self.n + 1, lo), min(p, last)
            if end < first:
                continue
            sl = self.slots.window_slots(p * self.every + self.offset)
            if len(sl):
                ws = np.arange(first, end + 1, dtype=np.int64)
                w_parts.append(np.repeat(ws, len(sl)))
                s_parts.append(np.tile(sl, len(ws)))
        if not s_parts:
            return None
        pw, sl = np.concatenate(w_parts), np.concatenate(s_parts)
        pk = self.slots.key[sl]
        order = np.lexsort((pk, pw))
        pw, pk, sl = pw[order], pk[order], sl[order]
        first = np.ones(len(sl), dtype=bool)
        first[1:] = (pw[1:] != pw[:-1]) | (pk[1:] != pk[:-1])
        tg = np.cumsum(first) - 1
        tw, tk = pw[first], pk[first]
        starts = tw * self.every + self.offset
        data: dict[str, Any] = self.key_index.key_columns(tk, self.keys)
        data["window_start"] = utc_array(starts)
        data["window_end"] = utc_array(starts + self.size_ns)
        for agg, st in zip(self.aggs, self.stores):
            res = st.reduce(tg, sl, len(tw))
            data[agg.name] = result_column(np.asarray(res, dtype=object) if isinstance(res, list) else res)
        return pd.DataFrame(data)

    def on_end(self) -> Outputs:
        frame = self._emit_upto(None)
        return {"out": frame} if frame is not None else {}
