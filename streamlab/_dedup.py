"""Runtime of dedup: drop repeated event ids with bounded memory, a micro-batch at a time.

The rule is ``streamlab._record.Dedup`` (one record at a time, as the exported jobs run it). Here the
same rule runs on whole batches: :class:`DedupTable` keeps the remembered ids in a :class:`KeyIndex`
with their first event time and insertion order in arrays, and decides a batch with sorts and searches
over its rows, never a Python step per id. Only a batch that pushes the table past ``max_ids`` while a
``ttl`` also applies, or in which an id evicted for ``max_ids`` comes back, goes through the per-record
rule itself. Property tests prove the batch path equal to the rule.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from streamlab._keytable import KeyIndex, Keys, grown, object_array
from streamlab._record import Dedup, dedup_key
from streamlab._time import NAT_NS, to_utc_ns
from streamlab.operators import Operator, Outputs

_NO_TIME = int(np.iinfo(np.int64).min)  # a record without event time; also "no watermark yet"


def dedup_codes(index: KeyIndex, frame: pd.DataFrame, column: str) -> tuple[np.ndarray, Keys]:
    """Batch-local codes of the ids in ``frame[column]`` and the id (``dedup_key``) of each code.

    Missing values are the id ``None``; objects and arrays (unhashable) are their JSON text.
    """
    try:
        return index.local_keys(frame, [column])
    except TypeError:  # dicts or lists: the rule remembers their JSON text
        keys = object_array([dedup_key(v) for v in frame[column].tolist()])
        return index.local_keys(pd.DataFrame({column: keys}), [column])


class DedupTable:
    """The state of a dedup step, deciding whole batches (``Dedup``'s rule, vectorized).

    Examples
    --------
    >>> import numpy as np
    >>> table = DedupTable(ttl_ns=10, max_ids=2)
    >>> keys = np.array(["a", "a", "b", "a", "c", "b"], dtype=object)
    >>> table.is_duplicate_many(keys, np.array([0, 5, 20, 21, 22, 23])).tolist()
    [False, True, False, False, False, False]
    """

    def __init__(self, ttl_ns: int | None, max_ids: int) -> None:
        self.ttl_ns = ttl_ns
        self.max_ids = max_ids
        self.index = KeyIndex(1)
        self.first = np.zeros(0, dtype=np.int64)  # id -> event time of its remembered occurrence
        self.seq = np.zeros(0, dtype=np.int64)  # id -> insertion number (the eviction order)
        self.fifo = np.zeros(0, dtype=np.int64)  # ids in insertion order; stale where seq differs
        self.fifo_seq = np.zeros(0, dtype=np.int64)
        self.head = 0  # entries before head are all stale
        self.tail = 0
        self.next_seq = 0
        self.max_ns = _NO_TIME
        self.forgotten = 0

    def __len__(self) -> int:
        """The number of ids remembered."""
        return len(self.index)

    # -- conversion to and from the per-record rule ------------------------------------------------
    def _held(self) -> tuple[np.ndarray, np.ndarray]:
        """The remembered ids in insertion order, and their first times."""
        ids = self.fifo[self.head : self.tail]
        live = self.index.entry_of[ids] >= 0
        live &= self.seq[ids] == self.fifo_seq[self.head : self.tail]
        ids = ids[live]
        return ids, self.first[ids]

    def to_rule(self) -> Dedup:
        """The same state as a per-record :class:`Dedup`."""
        rule = Dedup(self.ttl_ns, self.max_ids)
        ids, first = self._held()
        for key, t in zip(self.index.key_values(ids).tolist(), first.tolist()):
            rule._remember(key, None if t == _NO_TIME else t)
        rule.max_ns = None if self.max_ns == _NO_TIME else self.max_ns
        rule.forgotten = self.forgotten
        return rule

    @classmethod
    def from_rule(cls, rule: Dedup) -> DedupTable:
        """The state of a per-record :class:`Dedup` (a checkpoint written before tables)."""
        table = cls(rule.ttl_ns, rule.max_ids)
        keys = object_array(list(rule.seen))
        times = np.array([_NO_TIME if t is None else t for t in rule.seen.values()], dtype=np.int64)
        table._insert(table.index.ids_for(keys), times)
        table.max_ns = _NO_TIME if rule.max_ns is None else rule.max_ns
        table.forgotten = rule.forgotten
        return table

    # -- state changes -----------------------------------------------------------------------------
    def _insert(self, ids: np.ndarray, times: np.ndarray) -> None:
        """Remember the keys of distinct ``ids`` with first times ``times``, in this order."""
        if len(ids) == 0:
            return
        fresh = self.index.refs[ids] == 0
        self.index.hold(ids[fresh])
        n = self.index.n_ids
        self.first = grown(self.first, n, 0)
        self.seq = grown(self.seq, n, -1)
        seqs = np.arange(self.next_seq, self.next_seq + len(ids), dtype=np.int64)
        self.next_seq += len(ids)
        self.first[ids] = times
        self.seq[ids] = seqs
        self._compact(len(ids))
        self.fifo[self.tail : self.tail + len(ids)] = ids
        self.fifo_seq[self.tail : self.tail + len(ids)] = seqs
        self.tail += len(ids)

    def _compact(self, room: int) -> None:
        """Room for ``room`` more FIFO entries; stale entries dropped once they are most of it."""
        if self.tail + room <= len(self.fifo):
            return
        ids, _ = self._held()
        if 2 * (len(ids) + room) <= len(self.fifo):
            self.fifo[: len(ids)] = ids
            self.fifo_seq[: len(ids)] = self.seq[ids]
        else:
            size = max(64, 2 * (len(ids) + room))
            fifo, fifo_seq = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)
            fifo[: len(ids)], fifo_seq[: len(ids)] = ids, self.seq[ids]
            self.fifo, self.fifo_seq = fifo, fifo_seq
        self.head, self.tail = 0, len(ids)

    def _forget(self, ids: np.ndarray) -> None:
        if len(ids):
            self.seq[ids] = -1
            self.index.release(ids)
            self.forgotten += len(ids)

    def _expire(self) -> None:
        """Forget the ids whose first time is ttl behind the watermark."""
        if self.ttl_ns is None or self.max_ns == _NO_TIME:
            return
        # saturating: within the ttl after 1677-09-21, max - ttl would wrap round to 2262
        horizon = max(self.max_ns - self.ttl_ns, _NO_TIME + 1)
        n = self.index.n_ids
        live = self.index.entry_of[:n] >= 0
        self._forget(np.flatnonzero(live & (self.first[:n] < horizon)))

    def _evict(self, n: int) -> np.ndarray:
        """Forget the ``n`` oldest remembered ids; returns them."""
        ids, _ = self._held()
        gone = ids[:n]
        self._forget(gone)
        return gone

    # -- a batch -------------------------------------------------------------------------------------
    def is_duplicate_many(self, keys: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Record the occurrences ``keys`` (an object array of ids) at ``times`` (int64 ns, or the
        int64 minimum for no time), in order; True for each repeat.

        """
        codes, values = dedup_codes(self.index, pd.DataFrame({"id": keys}), "id")
        return self.decide(codes, values, times)

    def decide(self, codes: np.ndarray, values: Keys, times: np.ndarray) -> np.ndarray:
        """``is_duplicate_many`` on batch-local ``codes`` (row -> index in ``values``, the distinct ids)."""
        n = len(codes)
        if n == 0:
            return np.zeros(0, dtype=bool)
        times = np.asarray(times, dtype=np.int64)
        run_max = np.maximum.accumulate(times)
        np.maximum(run_max, self.max_ns, out=run_max)
        if self.ttl_ns is None:
            horizon = np.full(n, _NO_TIME, dtype=np.int64)
        else:
            # saturating: within the ttl after 1677-09-21, ``run_max - ttl`` would wrap round to 2262; the
            # horizon stays above _NO_TIME, so an occurrence without time is never live once there is one
            horizon = np.maximum(run_max, _NO_TIME + 1 + self.ttl_ns) - self.ttl_ns
            horizon[run_max == _NO_TIME] = _NO_TIME
        # one pass through the hash table: every id of the batch gets a number now, and the ones that
        # end up remembered by nobody give it back in _commit
        ids = self.index.ids_for(values, distinct=True)
        self.first = grown(self.first, self.index.n_ids, 0)
        self.seq = grown(self.seq, self.index.n_ids, -1)
        held_ids = np.where(self.index.refs[ids] > 0, ids, -1)  # -1: not remembered
        quick = self._decide_in_order(codes, times, horizon, ids, held_ids, run_max)
        if quick is not None:
            return quick
        # occurrences grouped by id, in arrival order within each id
        order = np.argsort(codes, kind="stable")
        grp = codes[order]
        t = times[order]
        live = t >= horizon[order]
        bounds = np.searchsorted(grp, np.arange(len(values) + 1))
        g_end = bounds[1:]
        # per occurrence: the next occurrence of its id at or after it that could be remembered
        idx = np.where(live, np.arange(n), n)
        next_live = np.minimum.accumulate(idx[::-1])[::-1]
        next_live = np.minimum(next_live, np.repeat(g_end, np.diff(bounds)))
        sort_code = grp * (n + 1) + order  # increasing: ids, then arrival position
        dup_mark = np.zeros(n + 1, dtype=np.int64)  # +1 where a run of repeats starts, -1 after it
        anchors: list[np.ndarray] = []  # occurrences remembered (indices into the sorted order)
        held = held_ids >= 0
        first = np.zeros(len(values), dtype=np.int64)
        first[held] = self.first[held_ids[held]]
        groups = np.arange(len(values))
        # ids remembered (g, f: first time, c: next occurrence) repeat until they expire; the others
        # look for their next occurrence that can be remembered (s: from where)
        g, f, c = groups[held], first[held], bounds[:-1][held]
        s_g, s_c = groups[~held], bounds[:-1][~held]
        while len(g) or len(s_g):
            if len(g):
                expires = np.searchsorted(horizon, f, side="right")  # first position past f + ttl
                stop = np.minimum(np.searchsorted(sort_code, g * (n + 1) + expires), g_end[g])
                dup_mark += np.bincount(c, minlength=n + 1)
                dup_mark -= np.bincount(stop, minlength=n + 1)
                s_g, s_c = np.concatenate([s_g, g]), np.concatenate([s_c, stop])
            more = s_c < g_end[s_g]
            s_g, s_c = s_g[more], s_c[more]
            a = next_live[s_c]
            found = a < g_end[s_g]
            g, a = s_g[found], a[found]
            anchors.append(a)
            f, c = t[a], a + 1
            s_g, s_c = groups[:0], groups[:0]
        dup_sorted = np.cumsum(dup_mark[:n]) > 0
        dup = np.empty(n, dtype=bool)
        dup[order] = dup_sorted
        anchor = np.concatenate(anchors) if anchors else np.zeros(0, dtype=np.int64)
        return self._commit(dup, anchor, order, grp, g_end, t, ids, held_ids, values, codes, times, run_max)

    def _decide_in_order(
        self,
        codes: np.ndarray,
        times: np.ndarray,
        horizon: np.ndarray,
        ids: np.ndarray,
        held_ids: np.ndarray,
        run_max: np.ndarray,
    ) -> np.ndarray | None:
        """The batch decided in arrival order, without grouping it by id, where nothing is forgotten
        during it (the usual batch); None otherwise, and :meth:`decide` groups it.

        If no remembered id expires and none is evicted, an occurrence is a repeat exactly when its id
        was remembered before the batch or occurred earlier in it, and each new id is remembered from its
        first occurrence. That holds when every occurrence is within the ttl of its id's remembered time
        (``horizon <= first``: the same test :meth:`decide` applies) and the new ids fit in ``max_ids``.
        Needs batch codes numbered in order of first sight (what the key index gives strings and
        numbers); checked, not assumed.
        """
        n = len(codes)
        new = held_ids < 0
        # the batch's ids are numbered already: len(self) counts the remembered ones and the new ones
        if len(self) > self.max_ids or codes[0] != 0:
            return None
        seen = np.maximum.accumulate(codes)
        first_row = np.empty(n, dtype=bool)
        first_row[0] = True
        np.greater(seen[1:], seen[:-1], out=first_row[1:])
        rows = np.flatnonzero(first_row)
        if len(rows) != len(held_ids) or int(seen[-1]) != len(held_ids) - 1:
            return None  # codes not in order of first sight
        if self.ttl_ns is not None:  # (without one, nothing expires)
            # each id's remembered time: from before the batch, or its first occurrence's
            remembered = times[rows]
            remembered[~new] = self.first[held_ids[~new]]
            if not bool((horizon <= remembered[codes]).all()):
                return None  # something expires within the batch
        self.index.hold(ids[new])
        arrivals = rows[new]  # new ids, in arrival order: the eviction order
        self._insert(ids[codes[arrivals]], times[arrivals])
        self.max_ns = int(run_max[-1])
        self._expire()
        repeat: np.ndarray = ~first_row | ~new[codes]
        return repeat

    def _commit(
        self,
        dup: np.ndarray,
        anchor: np.ndarray,
        order: np.ndarray,
        grp: np.ndarray,
        g_end: np.ndarray,
        t: np.ndarray,
        ids: np.ndarray,
        held_ids: np.ndarray,
        values: Keys,
        codes: np.ndarray,
        times: np.ndarray,
        run_max: np.ndarray,
    ) -> np.ndarray:
        """Apply the batch's decisions to the state, or hand the batch to the per-record rule."""
        unheld = ids[held_ids < 0]
        self.index.hold(unheld)  # numbered in decide, remembered by nobody yet
        if len(self) - len(unheld) + len(anchor) > self.max_ids and not self._evictions_agree(
            anchor, order, grp, g_end, held_ids
        ):
            self.index.release(unheld)
            return self._per_record(values[codes], times)
        # each id's last remembered occurrence is what stays; the earlier ones of the batch expired
        pos = order[anchor]
        by_pos = np.argsort(pos, kind="stable")
        a_grp, a_t = grp[anchor][by_pos], t[anchor][by_pos]
        last = np.zeros(len(a_grp), dtype=bool)
        if len(a_grp):
            _, last_rev = np.unique(a_grp[::-1], return_index=True)
            last[len(a_grp) - 1 - last_rev] = True
        self.forgotten += int((~last).sum())  # remembered and expired within the batch
        replaced = held_ids[a_grp[last]]
        self._forget(replaced[replaced >= 0])
        kept = np.zeros(len(ids), dtype=bool)
        kept[a_grp[last]] = True
        self.index.release(ids[(held_ids < 0) & ~kept])
        final = ids[a_grp[last]]
        again = held_ids[a_grp[last]] >= 0
        if again.any():  # the ids of replaced keys were given back: number them again
            final[again] = self.index.ids_for(values[a_grp[last][again]], distinct=True)
        self._insert(final, a_t[last])  # in arrival order: the eviction order
        self.max_ns = int(run_max[-1])
        self._expire()
        over = len(self) - self.max_ids
        if over > 0:
            self._evict(over)
        return dup

    def _evictions_agree(
        self, anchor: np.ndarray, order: np.ndarray, grp: np.ndarray, g_end: np.ndarray, held_ids: np.ndarray
    ) -> bool:
        """Whether evicting at the end of the batch decides it as the rule does, evicting as it goes.

        Without a ttl the remembered ids only leave by eviction, oldest first: the q-th oldest goes with
        the (q + max_ids - held + 1)-th new id of the batch. That changes nothing in the batch unless
        the id occurs again after that point. With a ttl, ids also expire in between: the rule decides.
        """
        if self.ttl_ns is not None:
            return False
        ids, _ = self._held()
        n_held = len(ids)
        pos = np.sort(order[anchor])  # the batch's new ids, in arrival order
        n_out = n_held + len(pos) - self.max_ids
        # when the q-th oldest (old ids first, then the batch's new ones) is evicted
        q = np.arange(n_out)
        at = pos[q + self.max_ids - n_held]
        last_seen = order[g_end - 1]  # each id's last occurrence in the batch
        # the group of each evicted id: old ids through their batch code, new ids by their anchor
        group_of = np.full(self.index.n_ids, -1, dtype=np.int64)
        group_of[held_ids[held_ids >= 0]] = np.flatnonzero(held_ids >= 0)
        old_groups = group_of[ids[: min(n_out, n_held)]]
        new_groups = grp[anchor][np.argsort(order[anchor], kind="stable")][: max(0, n_out - n_held)]
        groups = np.concatenate([old_groups, new_groups])
        present = groups >= 0
        return not bool((last_seen[groups[present]] > at[present]).any())

    def _per_record(self, keys: Keys, times: np.ndarray) -> np.ndarray:
        """The batch through the per-record rule (the state goes over and back)."""
        rule = self.to_rule()
        seen = rule.is_duplicate
        dup = np.fromiter(
            (seen(k, None if t == _NO_TIME else t) for k, t in zip(keys.tolist(), times.tolist())),
            dtype=bool,
            count=len(keys),
        )
        back = DedupTable.from_rule(rule)
        self.__dict__.update(back.__dict__)
        return dup


class DedupOperator(Operator):
    """Pass the first event of each id; later ones go to the ``duplicates`` output.

    The rule is ``streamlab._record.Dedup`` (one record at a time, as the exported jobs run it): an id is
    remembered while the watermark (largest event time seen) is within ``ttl`` of its first occurrence's
    event time, and at most ``max_ids`` ids are held, the oldest forgotten first. A duplicate arriving
    after its id was forgotten passes again. :class:`DedupTable` runs it on whole batches.
    """

    output_names = ("out", "duplicates")

    def __init__(
        self, step_id: str, id_column: str, time: str | None, ttl_ns: int | None, max_ids: int
    ) -> None:
        self.step_id = step_id
        self.id_column = id_column
        self.time = time
        self.table = DedupTable(ttl_ns, max_ids)

    def snapshot(self) -> Any:
        return copy.deepcopy(self.table)

    def restore(self, state: Any) -> None:
        ttl_ns, max_ids = self.table.ttl_ns, self.table.max_ids
        if isinstance(state, dict):  # a checkpoint written before the rule was shared: ids and times
            rule = Dedup(ttl_ns, max_ids)
            held = state.get("seen", {})
            rule.max_ns = max((t for t in held.values() if t != NAT_NS), default=None)
            rule.forgotten = int(state.get("evicted", 0))
            for k, t in held.items():
                if rule._live(None if t == NAT_NS else t):
                    rule._remember(k, None if t == NAT_NS else t)
            state = rule
        if isinstance(state, Dedup):  # a checkpoint written before the table
            self.table = DedupTable.from_rule(state)
            return
        self.table = copy.deepcopy(state)

    def open_state(self) -> dict[str, Any]:
        return {"remembered_ids": len(self.table), "forgotten_ids": self.table.forgotten}

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        return self._dedup(batch)[0]

    def process_rows(self, batch: pd.DataFrame, port: int = 0) -> tuple[Outputs, np.ndarray | None]:
        out, dup = self._dedup(batch)
        return out, np.flatnonzero(~dup)

    def _dedup(self, batch: pd.DataFrame) -> tuple[Outputs, np.ndarray]:
        """The outputs, and which rows are repeats."""
        n = len(batch)
        if self.time is not None:
            times = to_utc_ns(batch[self.time])
            times = np.where(times == NAT_NS, _NO_TIME, times)
        else:
            times = np.full(n, _NO_TIME, dtype=np.int64)
        codes, values = dedup_codes(self.table.index, batch, self.id_column)
        dup = self.table.decide(codes, values, times)
        out: Outputs = {"out": batch[~dup].reset_index(drop=True) if dup.any() else batch}
        if dup.any():
            out["duplicates"] = batch[dup].reset_index(drop=True)
        return out, dup
