"""Runtime of session windows: per-key gap-based sessions on event time, a micro-batch at a time.

The rule, one event at a time in arrival order (:func:`assign_one_by_one` runs it literally): an event
is late when its own session ``[t, t + gap)`` would already be closed, or when it would join a session
of its key that has already been emitted (a closed session is never re-opened, so the result equals a
batch recomputation over the admitted events); otherwise it joins, and merges, the open sessions of its
key within one gap of it. A session closes once the watermark passes its last event plus gap and
lateness.

Batches are sessionized without a Python step per key: the events of a batch and the open sessions of
their keys are sorted by key and time, and a new session starts wherever the gap to everything before
it (a running maximum) reaches ``gap``. That equals the rule unless an event could join a session that
closed earlier in the same batch, which needs an event behind the watermark by more than the lateness
with another event of its key just before it; the keys of such events (few, and none in a stream whose
disorder stays within the delay) go through :func:`assign_one_by_one`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from streamlab._agg_inputs import add_rows
from streamlab._dead_letter import dead_letter_frame
from streamlab._intcols import result_column
from streamlab._keytable import KeyIndex, grown
from streamlab._time import NAT_NS, utc_array
from streamlab._windowing import (
    _NO_WATERMARK,
    _Watermarks,
    add_dead_letters,
    event_time_range,
    late_frame,
    split_out_of_range,
    split_unreadable,
)
from streamlab.aggregators import Aggregator
from streamlab.operators import Operator, Outputs
from streamlab.windows import SessionWindow

_EMPTY = np.zeros(0, dtype=np.int64)


def _relative(t: np.ndarray) -> tuple[int, np.ndarray, int]:
    """``t`` as offsets from its earliest time, and their span (an offset can wrap round when the times
    lie more than 292 years apart, 1900 and 2200 say: the span, a Python int, says so)."""
    base = int(t.min()) if len(t) else 0
    return base, t - base, int(t.max()) - base + 1 if len(t) else 1


def _key_time_order(code: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Positions sorting by ``code`` then ``t`` (one argsort of a combined key when it fits)."""
    _, rel, span = _relative(t)
    if (int(code.max()) + 1 if len(code) else 1) * span < 2**62:
        order: np.ndarray = np.argsort(code * span + rel)
        return order
    return np.lexsort((t, code))


def near_behind(
    code: np.ndarray, lo: np.ndarray, hi: np.ndarray, p_code: np.ndarray, p_time: np.ndarray
) -> np.ndarray:
    """For each query ``(code, lo, hi)``: is there a point ``(code, time)`` with ``lo < time <= hi``?

    Examples
    --------
    >>> import numpy as np
    >>> near_behind(np.array([0, 1]), np.array([0, 0]), np.array([5, 5]), np.array([0, 1]), np.array([5, 6])).tolist()
    [True, False]
    """
    if len(code) == 0 or len(p_code) == 0:
        return np.zeros(len(code), dtype=bool)
    times, inv = np.unique(np.concatenate([p_time, lo, hi]), return_inverse=True)
    rank = inv.reshape(-1)
    r = len(times) + 1
    n_p, n_q = len(p_code), len(code)
    points = np.sort(p_code * r + rank[:n_p])
    q_lo = code * r + rank[n_p : n_p + n_q]
    q_hi = code * r + rank[n_p + n_q :]
    found: np.ndarray = np.searchsorted(points, q_hi, side="right") > np.searchsorted(
        points, q_lo, side="right"
    )
    return found


def assign_one_by_one(
    rows: list[int],
    ts: list[int],
    wm: list[int],
    keys: list[int],
    gap: int,
    lateness: int,
    open_sessions: dict[int, list[list[int]]],
    closed_end: dict[int, int],
    new_slot: Any,
) -> tuple[dict[int, int], list[int], list[tuple[int, int, int, int]], dict[int, int]]:
    """The session rule, one event at a time: the reference the batch path is proven equal to.

    ``rows`` in arrival order with their event times, watermarks at arrival and keys; the open
    sessions of those keys (key -> ``[start, last, slot]`` lists) and the end of each key's latest
    closed session are updated in place; ``new_slot()`` gives a slot. Returns the slot of each admitted
    row, the late rows, the sessions closed on the way ``(start, end, key, slot)``, and the slots
    merged into another (slot -> the slot it went into).

    Examples
    --------
    >>> slots = iter(range(10))
    >>> opened, ends = {}, {}
    >>> got = assign_one_by_one([0, 1, 2], [0, 4, 30], [0, 4, 30], [7, 7, 7], 10, 0, opened, ends, lambda: next(slots))
    >>> got[0], got[2], opened
    ({0: 0, 1: 0, 2: 1}, [(0, 14, 7, 0)], {7: [[30, 30, 1]]})
    """
    parent: dict[int, int] = {}
    row_slot: dict[int, int] = {}
    late: list[int] = []
    closed: list[tuple[int, int, int, int]] = []
    for i, t, w, k in zip(rows, ts, wm, keys):
        sessions = open_sessions.get(k)
        if sessions:
            still = []
            for s in sessions:
                if s[1] + gap + lateness <= w:
                    closed.append((s[0], s[1] + gap, k, s[2]))
                    closed_end[k] = max(closed_end.get(k, NAT_NS), s[1] + gap)
                else:
                    still.append(s)
            sessions[:] = still
        if t + gap + lateness <= w or t < closed_end.get(k, NAT_NS):
            late.append(i)
            continue
        if sessions is None:
            sessions = open_sessions[k] = []
        hits = [s for s in sessions if s[0] < t + gap and t < s[1] + gap]
        if not hits:
            slot = new_slot()
            sessions.append([t, t, slot])
        else:
            keep = hits[0]
            keep[0] = min([t] + [h[0] for h in hits])
            keep[1] = max([t] + [h[1] for h in hits])
            for h in hits[1:]:
                parent[h[2]] = keep[2]
                sessions.remove(h)
            slot = keep[2]
        row_slot[i] = slot
    return row_slot, late, closed, parent


class SessionOperator(_Watermarks, Operator):
    """Session windows per key (see ``Stream.window`` with a :class:`SessionWindow`).

    State: the open sessions as arrays (key id, start, last event time, slot in the aggregator
    stores), and per key id the end of its latest closed session while an event could still be within
    one gap of it. A key keeps its id while it has either.
    """

    output_names = ("out", "late", "dead_letter")
    one_by_one = False  # True: every key through assign_one_by_one (the reference, for tests)

    def __init__(
        self,
        step_id: str,
        window: SessionWindow,
        keys: list[str],
        aggs: list[Aggregator],
        time: str,
        delay_ns: int,
        lateness_ns: int,
        watermark_by: list[str] | None = None,
        idle_timeout_ns: int | None = None,
    ) -> None:
        self.step_id = step_id
        self.gap = window.gap_ns
        self.keys = keys
        self.aggs = aggs
        self.time = time
        self.delay_ns = delay_ns
        self.lateness_ns = lateness_ns
        self.key_index = KeyIndex(len(keys))
        self.stores = [a.store() for a in aggs]
        self.s_key, self.s_start, self.s_last, self.s_slot = _EMPTY, _EMPTY, _EMPTY, _EMPTY
        self.closed_end = _EMPTY.copy()  # key id -> end of its latest closed session (NAT_NS: none)
        self.free_slots = _EMPTY.copy()
        self.n_slots = 0
        self.max_ts = _NO_WATERMARK
        self.span = event_time_range(window, delay_ns, lateness_ns)
        self._init_watermarks(watermark_by, idle_timeout_ns)

    _STATE = (
        "key_index",
        "stores",
        "s_key",
        "s_start",
        "s_last",
        "s_slot",
        "closed_end",
        "free_slots",
        "n_slots",
        "max_ts",
        "part_max",
        "wm_floor",
    )

    def snapshot(self) -> Any:
        return copy.deepcopy({k: self.__dict__[k] for k in self._STATE})

    def restore(self, state: Any) -> None:
        state = copy.deepcopy(state)
        if isinstance(state.get("open"), dict):  # a checkpoint written before the arrays
            opened = [(k, *s) for k, ss in state.pop("open").items() for s in ss]
            cols = np.array(opened, dtype=np.int64).reshape(-1, 4).T
            state["s_key"], state["s_start"], state["s_last"], state["s_slot"] = (c.copy() for c in cols)
            index: KeyIndex = state["key_index"]
            ends = state.pop("closed_end")
            ids = index.ids_for(np.array(list(ends), dtype=object)) if ends else _EMPTY
            fresh = ids[index.refs[ids] == 0]
            index.hold(fresh)
            state["closed_end"] = np.full(index.n_ids, NAT_NS, dtype=np.int64)
            state["closed_end"][ids] = list(ends.values())
            state["free_slots"] = np.asarray(state["free_slots"], dtype=np.int64)
        self.__dict__.update(state)

    def open_state(self) -> dict[str, Any]:
        return {"open_sessions": len(self.s_key), "keys": len(np.unique(self.s_key))}

    def _take_slots(self, n: int) -> np.ndarray:
        reuse = min(n, len(self.free_slots))
        got = self.free_slots[len(self.free_slots) - reuse :]
        self.free_slots = self.free_slots[: len(self.free_slots) - reuse]
        if reuse < n:
            fresh = np.arange(self.n_slots, self.n_slots + n - reuse, dtype=np.int64)
            self.n_slots += n - reuse
            for st in self.stores:
                st.grow(self.n_slots)
            got = np.concatenate([got, fresh])
        return got

    def _merge_slots(self, dst: np.ndarray, src: np.ndarray) -> None:
        """Fold slots ``src`` into ``dst`` (open sessions an event bridged) and free them."""
        for d, s in zip(dst.tolist(), src.tolist()):
            for st in self.stores:
                st.merge(d, s)
        for st in self.stores:
            st.clear(src)
        self.free_slots = np.concatenate([self.free_slots, src])

    # -- a batch -------------------------------------------------------------------------------------
    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        out: Outputs = {}
        batch, ts = split_unreadable(batch, self.time, self.step_id, out, self.aggs, self.keys, self.by)
        batch, ts = split_out_of_range(batch, ts, self.span, self.step_id, out)
        if len(batch) == 0:
            return out
        wm = self._event_watermarks(batch, ts)
        gap, lat = self.gap, self.lateness_ns
        local, key_values = self.key_index.local_keys(batch, self.keys)
        late_a = ts + gap + lat <= wm
        # every key with an on-time event gets an id now (one pass through the hash table); those left
        # without an open session or a closed one that matters give it back in _close. Keys seen only
        # in late events get none.
        n_codes = len(key_values)
        present = np.flatnonzero(np.bincount(local[~late_a], minlength=n_codes))
        known = np.full(n_codes, -1, dtype=np.int64)  # code -> id
        if len(present):
            known[present] = self.key_index.ids_for(key_values[present], distinct=True)
            self.key_index.hold(known[present][self.key_index.refs[known[present]] == 0])
        self.closed_end = grown(self.closed_end, self.key_index.n_ids, NAT_NS)
        code_of_id = np.full(self.key_index.n_ids, -1, dtype=np.int64)
        code_of_id[known[present]] = present
        # state of the batch's keys: their open sessions, and the ends of closed ones
        s_code = code_of_id[self.s_key] if len(self.s_key) else _EMPTY
        hard = self._hard_codes(local, ts, wm, late_a, s_code, known, n_codes)
        row_hard = hard[local] & (known[local] >= 0)  # keys without an id have late events only
        row_slot = np.full(len(batch), -1, dtype=np.int64)
        closed: list[np.ndarray] = []
        late = np.flatnonzero(late_a & ~row_hard)
        easy_rows = np.flatnonzero(~late_a & ~row_hard)
        if len(easy_rows):
            self._sessionize(local, ts, easy_rows, s_code, hard, known, row_slot)
        if row_hard.any():
            late = np.union1d(
                late, self._one_by_one(np.flatnonzero(row_hard), local, ts, wm, known, row_slot, closed)
            )
        admitted = np.flatnonzero(row_slot >= 0)
        if len(admitted):
            uniq, group = np.unique(row_slot[admitted], return_inverse=True)
            bad, reasons = add_rows(
                batch, self.aggs, self.stores, group.reshape(-1), len(uniq), uniq, ts[admitted], admitted
            )
            if len(bad):
                add_dead_letters(out, [dead_letter_frame(batch.iloc[bad], reasons, self.step_id)])
        if len(late):
            out["late"] = late_frame(batch, late, ts[late], ts[late] + gap, wm[late])
        frame = self._close(self._final_watermark(), closed)
        if frame is not None:
            out["out"] = frame
        return out

    def _hard_codes(
        self,
        local: np.ndarray,
        ts: np.ndarray,
        wm: np.ndarray,
        late_a: np.ndarray,
        s_code: np.ndarray,
        known: np.ndarray,
        n_codes: int,
    ) -> np.ndarray:
        """Keys (batch codes) whose events must go one by one: an event behind the watermark by more
        than the lateness with a point of its key within one gap before it that may be closed by then
        (an event of the batch, the last event of an open session, or the end of a closed one)."""
        hard = np.zeros(n_codes, dtype=bool)
        if self.one_by_one:
            hard[:] = True
            return hard
        q = np.flatnonzero(~late_a & (ts < wm - self.lateness_ns))
        if len(q) == 0:
            return hard
        ok = np.flatnonzero(~late_a)
        in_batch = s_code >= 0
        with_id = np.flatnonzero(known >= 0)
        ends = self.closed_end[known[with_id]]
        has_end = ends != NAT_NS
        p_code = np.concatenate([local[ok], s_code[in_batch], with_id[has_end]])
        p_time = np.concatenate([ts[ok], self.s_last[in_batch], ends[has_end] - self.gap])
        hit = near_behind(local[q], ts[q] - self.gap, wm[q] - self.gap - self.lateness_ns, p_code, p_time)
        hard[local[q[hit]]] = True
        return hard

    def _sessionize(
        self,
        local: np.ndarray,
        ts: np.ndarray,
        rows: np.ndarray,
        s_code: np.ndarray,
        hard: np.ndarray,
        known: np.ndarray,
        row_slot: np.ndarray,
    ) -> None:
        """Admit ``rows`` (none late, no key hard): sessions of them and their keys' open sessions."""
        gap = self.gap
        mine = s_code >= 0
        mine[mine] = ~hard[s_code[mine]]
        st_idx = np.flatnonzero(mine)
        n_r = len(rows)
        code = np.concatenate([local[rows], s_code[st_idx]])
        start = np.concatenate([ts[rows], self.s_start[st_idx]])
        last = np.concatenate([ts[rows], self.s_last[st_idx]])
        order = _key_time_order(code, start)
        code, start, last = code[order], start[order], last[order]
        # the latest last event up to each element within its key: a running maximum of key-major codes
        base, rel, span = _relative(last)
        lasts: np.ndarray | None = None
        if (int(code[-1]) + 1) * span >= 2**62:  # times too far apart to offset by key: their ranks
            lasts, rank = np.unique(last, return_inverse=True)
            rel, span = rank.reshape(-1), len(lasts)
        run = np.maximum.accumulate(code * span + rel)
        run_last = run - code * span  # the running maximum as a (relative or ranked) time
        new = np.ones(len(code), dtype=bool)
        if len(code) > 1:
            before = run_last[:-1] + base if lasts is None else lasts[run_last[:-1]]
            new[1:] = (code[1:] != code[:-1]) | (start[1:] >= before + gap)
        sid = np.cumsum(new) - 1
        firsts = np.flatnonzero(new)
        n_s = len(firsts)
        sess_code = code[firsts]
        sess_start = start[firsts]
        at_end = run_last[np.append(firsts[1:], len(code)) - 1]
        sess_last = at_end + base if lasts is None else lasts[at_end]
        # slots: a session keeps the slot of the first open session in it; the others merge into it
        sess_slot = np.full(n_s, -1, dtype=np.int64)
        el_state = np.flatnonzero(order >= n_r)
        if len(el_state):
            el_slot = self.s_slot[st_idx[order[el_state] - n_r]]
            el_sid = sid[el_state]
            first_of = np.ones(len(el_state), dtype=bool)
            first_of[1:] = el_sid[1:] != el_sid[:-1]
            sess_slot[el_sid[first_of]] = el_slot[first_of]
            if not first_of.all():
                self._merge_slots(sess_slot[el_sid[~first_of]], el_slot[~first_of])
        fresh = sess_slot < 0
        sess_slot[fresh] = self._take_slots(int(fresh.sum()))
        el_row = np.flatnonzero(order < n_r)
        row_slot[rows[order[el_row]]] = sess_slot[sid[el_row]]
        sess_key = known[sess_code]
        keep = np.ones(len(self.s_key), dtype=bool)
        keep[st_idx] = False
        self._set_open(
            np.concatenate([self.s_key[keep], sess_key]),
            np.concatenate([self.s_start[keep], sess_start]),
            np.concatenate([self.s_last[keep], sess_last]),
            np.concatenate([self.s_slot[keep], sess_slot]),
        )

    def _set_open(self, key: np.ndarray, start: np.ndarray, last: np.ndarray, slot: np.ndarray) -> None:
        self.s_key, self.s_start, self.s_last, self.s_slot = key, start, last, slot
        self.closed_end = grown(self.closed_end, self.key_index.n_ids, NAT_NS)

    def _one_by_one(
        self,
        rows: np.ndarray,
        local: np.ndarray,
        ts: np.ndarray,
        wm: np.ndarray,
        known: np.ndarray,
        row_slot: np.ndarray,
        closed: list[np.ndarray],
    ) -> np.ndarray:
        """Rows of hard keys through :func:`assign_one_by_one`; returns the late ones."""
        codes = np.unique(local[rows])
        key_ids = known[codes]
        mine = np.isin(self.s_key, key_ids)
        opened: dict[int, list[list[int]]] = {}
        for k, s, la, sl in zip(
            self.s_key[mine].tolist(),
            self.s_start[mine].tolist(),
            self.s_last[mine].tolist(),
            self.s_slot[mine].tolist(),
        ):
            opened.setdefault(k, []).append([s, la, sl])
        ends = {k: e for k, e in zip(key_ids.tolist(), self.closed_end[key_ids].tolist()) if e != NAT_NS}
        slots: list[int] = []

        def new_slot() -> int:
            slot = int(self._take_slots(1)[0])
            slots.append(slot)
            return slot

        row_keys = known[local[rows]]
        got, late, shut, parent = assign_one_by_one(
            rows.tolist(),
            ts[rows].tolist(),
            wm[rows].tolist(),
            row_keys.tolist(),
            self.gap,
            self.lateness_ns,
            opened,
            ends,
            new_slot,
        )

        def root(s: int) -> int:
            while s in parent:
                s = parent[s]
            return s

        if parent:
            src = np.array(list(parent), dtype=np.int64)
            self._merge_slots(np.array([root(s) for s in src.tolist()], dtype=np.int64), src)
        if got:
            r = np.fromiter(got, dtype=np.int64, count=len(got))
            row_slot[r] = np.array([root(s) for s in got.values()], dtype=np.int64)
        if shut:
            closed.append(np.array(shut, dtype=np.int64).reshape(-1, 4))
        for k, e in ends.items():
            self.closed_end[k] = e
        rest = [(k, *s) for k, ss in opened.items() for s in ss]
        cols = np.array(rest, dtype=np.int64).reshape(-1, 4).T
        self._set_open(
            np.concatenate([self.s_key[~mine], cols[0]]),
            np.concatenate([self.s_start[~mine], cols[1]]),
            np.concatenate([self.s_last[~mine], cols[2]]),
            np.concatenate([self.s_slot[~mine], cols[3]]),
        )
        return np.asarray(late, dtype=np.int64)

    # -- closing -------------------------------------------------------------------------------------
    def _close(self, w_end: int, closed: list[np.ndarray]) -> pd.DataFrame | None:
        """Close the sessions that watermark ``w_end`` passed; emit them with those closed on the way."""
        gap, lat = self.gap, self.lateness_ns
        done = self.s_last + gap + lat <= w_end
        if done.any():
            closed.append(
                np.stack(
                    [self.s_start[done], self.s_last[done] + gap, self.s_key[done], self.s_slot[done]], axis=1
                )
            )
            keep = ~done
            self._set_open(self.s_key[keep], self.s_start[keep], self.s_last[keep], self.s_slot[keep])
        frame = None
        if closed:
            c = np.concatenate(closed)
            np.maximum.at(self.closed_end, c[:, 2], c[:, 1])
            frame = self._emit(c)
        self._forget_keys(w_end - gap - lat)
        return frame

    def _forget_keys(self, horizon: int) -> None:
        """Give back the ids of keys without open sessions whose latest closed one is past ``horizon``:
        an event within one gap of it would be late anyway."""
        n = self.key_index.n_ids
        ends = self.closed_end[:n]
        ends[ends <= horizon] = NAT_NS
        has = ends != NAT_NS
        has[self.s_key] = True
        gone = np.flatnonzero((self.key_index.refs[:n] > 0) & ~has)
        if len(gone):
            self.key_index.release(gone)

    def _emit(self, closed: np.ndarray) -> pd.DataFrame:
        closed = closed[np.lexsort((closed[:, 2], closed[:, 0]))]
        starts, ends, keys, slots = closed[:, 0], closed[:, 1], closed[:, 2], closed[:, 3]
        data: dict[str, Any] = self.key_index.key_columns(keys, self.keys)
        data["window_start"] = utc_array(starts)
        data["window_end"] = utc_array(ends)
        for agg, st in zip(self.aggs, self.stores):
            data[agg.name] = result_column(st.results(slots))
        for st in self.stores:
            st.clear(slots)
        self.free_slots = np.concatenate([self.free_slots, slots])
        return pd.DataFrame(data)

    def on_processing_time(self, now_ns: int) -> Outputs:
        if not self._advance_idle_watermark(now_ns):
            return {}
        frame = self._close(self.wm_floor, [])
        return {} if frame is None else {"out": frame}

    def on_flush(self) -> Outputs:
        """Close every open session as the watermark at the latest one's close would (each key's latest
        closed end is kept), and move the watermark there: a later event that would join a flushed
        session is late, as after any close."""
        if len(self.s_key) == 0:
            return {}
        closing = int(self.s_last.max()) + self.gap + self.lateness_ns
        frame = self._close(closing, [])
        self._raise_watermark(closing)
        return {} if frame is None else {"out": frame}

    def on_end(self) -> Outputs:
        if len(self.s_key) == 0:
            return {}
        c = np.stack([self.s_start, self.s_last + self.gap, self.s_key, self.s_slot], axis=1)
        self._set_open(_EMPTY, _EMPTY, _EMPTY, _EMPTY)
        return {"out": self._emit(c)}
