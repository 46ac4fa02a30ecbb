"""Runtime of session windows: per-key gap-based sessions on event time.

Sessions are inherently sequential per key, so assignment walks the events of a batch in arrival order
(plain Python over numpy-extracted arrays); aggregation is still vectorized through the aggregator
stores. An event is late when its own session ``[t, t + gap)`` would already be closed, or when it would
join a session of its key that has already been emitted (a closed session is never re-opened, so the
result equals a batch recomputation over the admitted events).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from streamlab._keytable import KeyIndex
from streamlab._time import NAT_NS, utc_array
from streamlab._windowing import _NO_WATERMARK, _Watermarks, late_frame, split_missing_time
from streamlab.aggregators import Aggregator
from streamlab.operators import Operator, Outputs
from streamlab.windows import SessionWindow


class SessionOperator(_Watermarks, Operator):
    """Session windows per key (see ``Stream.window`` with a :class:`SessionWindow`)."""

    output_names = ("out", "late", "dead_letter")

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
        # key id -> list of open sessions [start, last_ts, slot]
        self.open: dict[int, list[list[int]]] = {}
        # key value -> end of its latest emitted session (ids are reused, values are not)
        self.closed_end: dict[Any, int] = {}
        self.free_slots: list[int] = []
        self.n_slots = 0
        self.max_ts = _NO_WATERMARK
        self._init_watermarks(watermark_by, idle_timeout_ns)

    def snapshot(self) -> Any:
        keep = (
            "key_index",
            "stores",
            "open",
            "closed_end",
            "free_slots",
            "n_slots",
            "max_ts",
            "part_max",
            "wm_floor",
        )
        return copy.deepcopy({k: self.__dict__[k] for k in keep})

    def restore(self, state: Any) -> None:
        self.__dict__.update(copy.deepcopy(state))

    def open_state(self) -> dict[str, Any]:
        return {"open_sessions": sum(len(v) for v in self.open.values()), "keys": len(self.open)}

    def _slot(self) -> int:
        if self.free_slots:
            return self.free_slots.pop()
        self.n_slots += 1
        for st in self.stores:
            st.grow(self.n_slots)
        return self.n_slots - 1

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        out: Outputs = {}
        batch, ts_all = split_missing_time(batch, self.time, self.step_id, out)
        if len(batch) == 0:
            return out
        wm = self._event_watermarks(batch, ts_all)
        # ids only for keys that get a session: a key seen only in late rows leaves no state behind
        local, key_values = self.key_index.local_keys(batch, self.keys)
        known = self.key_index.lookup(key_values).tolist()  # code -> id (-1: none yet)
        gap, lat = self.gap, self.lateness_ns
        parent: dict[int, int] = {}  # slot merged into another during this batch

        def find(s: int) -> int:
            while s in parent:
                s = parent[s]
            return s

        row_slot = np.full(len(batch), -1, dtype=np.int64)
        late_rows: list[int] = []
        closed: list[tuple[int, int, int, int]] = []  # (start, end, key, slot)
        for i, (t, code, w) in enumerate(zip(ts_all.tolist(), local.tolist(), wm.tolist())):
            kv = key_values[code]
            k = known[code]
            sessions = self.open.get(k)
            if sessions:
                still = []
                for s in sessions:
                    if s[1] + gap + lat <= w:
                        closed.append((s[0], s[1] + gap, k, s[2]))
                        self.closed_end[kv] = max(self.closed_end.get(kv, NAT_NS), s[1] + gap)
                    else:
                        still.append(s)
                sessions[:] = still
            if t + gap + lat <= w or t < self.closed_end.get(kv, NAT_NS):
                late_rows.append(i)
                continue
            if sessions is None:
                k = known[code] = self.key_index.id_of(kv)
                sessions = self.open[k] = []
                self.key_index.refs[k] += 1
            hits = [s for s in sessions if s[0] < t + gap and t < s[1] + gap]
            if not hits:
                slot = self._slot()
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
        # fold merged slots (state from earlier batches) into their survivors
        for src in list(parent):
            dst = find(src)
            for st in self.stores:
                st.merge(dst, src)
                st.clear(np.array([src]))
            self.free_slots.append(src)
        admitted = np.flatnonzero(row_slot >= 0)
        if len(admitted):
            slots_per_row = np.fromiter((find(s) for s in row_slot[admitted].tolist()), dtype=np.int64)
            uniq, group = np.unique(slots_per_row, return_inverse=True)
            for agg, st in zip(self.aggs, self.stores):
                col = None if agg.column is None else batch[agg.column].to_numpy()[admitted]
                st.add(group, len(uniq), uniq, col, ts_all[admitted])
        if late_rows:
            lr = np.asarray(late_rows)
            out["late"] = late_frame(batch, lr, ts_all[lr], ts_all[lr] + gap, wm[lr])
        self._close_passed(self._final_watermark(), closed)
        if closed:
            out["out"] = self._emit(closed)
        return out

    def _close_passed(self, w_end: int, closed: list[tuple[int, int, int, int]]) -> None:
        """Close the sessions of every key that watermark ``w_end`` passed (appended to ``closed``)."""
        gap, lat, values = self.gap, self.lateness_ns, self.key_index.values
        for k in list(self.open):
            sessions = self.open[k]
            still = []
            for s in sessions:
                if s[1] + gap + lat <= w_end:
                    closed.append((s[0], s[1] + gap, k, s[2]))
                    kv = values[k]
                    self.closed_end[kv] = max(self.closed_end.get(kv, NAT_NS), s[1] + gap)
                else:
                    still.append(s)
            if still:
                self.open[k] = still
            else:
                del self.open[k]
        # a remembered end only matters while an event could still be within one gap of it
        horizon = w_end - gap - lat
        self.closed_end = {k: e for k, e in self.closed_end.items() if e > horizon}

    def on_processing_time(self, now_ns: int) -> Outputs:
        if not self._advance_idle_watermark(now_ns):
            return {}
        closed: list[tuple[int, int, int, int]] = []
        self._close_passed(self.wm_floor, closed)
        return {"out": self._emit(closed)} if closed else {}

    def _emit(self, closed: list[tuple[int, int, int, int]]) -> pd.DataFrame:
        closed.sort(key=lambda c: (c[0], c[2]))
        starts = np.array([c[0] for c in closed], dtype=np.int64)
        ends = np.array([c[1] for c in closed], dtype=np.int64)
        keys = np.array([c[2] for c in closed], dtype=np.int64)
        slots = np.array([c[3] for c in closed], dtype=np.int64)
        data: dict[str, Any] = self.key_index.key_columns(keys, self.keys)
        data["window_start"] = utc_array(starts)
        data["window_end"] = utc_array(ends)
        for agg, st in zip(self.aggs, self.stores):
            data[agg.name] = st.results(slots)
        for st in self.stores:
            st.clear(slots)
        self.free_slots.extend(slots.tolist())
        open_keys = set(self.open)
        gone = np.array([k for k in keys.tolist() if k not in open_keys], dtype=np.int64)
        if len(gone):
            self.key_index.refs[gone] = 1
            self.key_index.release(np.unique(gone))
        return pd.DataFrame(data)

    def on_end(self) -> Outputs:
        closed = [(s[0], s[1] + self.gap, k, s[2]) for k, ss in self.open.items() for s in ss]
        self.open = {}
        return {"out": self._emit(closed)} if closed else {}
